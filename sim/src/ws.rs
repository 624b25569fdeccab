//! WebSocket upgrades on the REST port: which path serves what ([`route`]),
//! and the handshake ([`accept`]) that answers 101 and starts the session
//! once hyper hands the connection over.
//!
//! Production paths, one host standing in for them all:
//!
//! | path | serves |
//! |---|---|
//! | `/ws-api/v3` | the WebSocket API (spot signature and margin listen-token subscriptions) |
//! | `/private/ws?listenKey=K`, `/private/ws/K` | USD-M (`fstream.binance.com/private`, since 2026-04-23), and COIN-M and options, whose pages now give that address too |
//! | `/pm/ws/K` | portfolio margin (`fstream.binance.com/pm/ws`) |
//! | `/eoptions/ws/K` | options (`nbstream.binance.com/eoptions/ws`, where python-binance connects) |
//! | `/ws/K`, `/ws?listenKey=K` | COIN-M (`dstream`), the margin risk stream (`margin-stream`), and any other listen key but USD-M's, whose old address is retired |
//! | `/private/stream`, `/pm/stream`, `/eoptions/stream`, `/stream` `?streams=K1/K2` | the same keys as combined streams: several keys on one connection, added and removed with `SUBSCRIBE` / `UNSUBSCRIBE` |
//! | `/market/stream`, `/public/stream` | USD-M market data: accepted (clients open them beside `/private`), nothing sent |
//!
//! A raw stream's listen key that is unknown, expired, or of another family
//! than the path serves is refused before the upgrade (400, -1125); a
//! combined stream ignores such names (they may be market streams). Every handshake
//! goes through the REST pipeline first, so it is recorded and faults match it
//! by method (`GET`) and path.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use hyper::HeaderMap;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;

use super::http::{Reply, SimRequest};
use super::log::fingerprint;
use super::session::{self, Kind, StreamKey};
use super::shared::{Shared, lock};
use super::wsapi::MAX_FRAME;

/// How long hyper may take to hand over an upgraded connection (the 101 written) before it is given up.
const UPGRADE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The scope of USD-M listen keys, served only under `/private`.
const USDM: &str = "usdm-futures";

/// The keys `fstream.binance.com/private` serves: USD-M's, and options' (Binance's
/// options page gives that address now; COIN-M's page does too, beside `dstream`).
const PRIVATE: &[&str] = &[USDM, "coinm-futures", "options"];

/// Portfolio margin's keys (`fstream.binance.com/pm`).
const PM: &[&str] = &["portfolio-margin"];

/// Options' keys at python-binance's `nbstream.binance.com/eoptions` address.
const OPTIONS: &[&str] = &["options"];

/// Which listen keys a stream path serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// Only these scopes' (a family's own path).
    Only(&'static [&'static str]),
    /// Any listen key but USD-M's (`/ws`, `/stream`: the other hosts' paths).
    AnyButUsdm,
    /// None: a market-data path, served so that clients that open it connect.
    Nothing,
}

impl Allowed {
    /// Whether a listen key of `scope` is served here.
    pub fn admits(self, scope: &str) -> bool {
        match self {
            Allowed::Only(scopes) => scopes.contains(&scope),
            Allowed::AnyButUsdm => scope != USDM,
            Allowed::Nothing => false,
        }
    }
}

/// What a WebSocket path serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The WebSocket API.
    Api,
    /// Listen-key streams: a raw stream (`…/ws/<key>`: one key, bare events)
    /// or a combined one (`…/stream?streams=k1/k2`: events wrapped as
    /// `{"stream": key, "data": …}`, keys added and removed with `SUBSCRIBE`).
    Stream {
        /// The listen keys named by the path or the query (a combined stream's may be none).
        keys: Vec<String>,
        /// Which keys the path serves.
        allowed: Allowed,
        /// A combined stream.
        combined: bool,
    },
}

/// The raw-stream paths and the keys they serve.
const RAW: [(&str, Allowed); 4] = [
    ("/private/ws", Allowed::Only(PRIVATE)),
    ("/pm/ws", Allowed::Only(PM)),
    ("/eoptions/ws", Allowed::Only(OPTIONS)),
    ("/ws", Allowed::AnyButUsdm),
];

/// The combined-stream paths and the keys they serve.
const COMBINED: [(&str, Allowed); 6] = [
    ("/private/stream", Allowed::Only(PRIVATE)),
    ("/pm/stream", Allowed::Only(PM)),
    ("/eoptions/stream", Allowed::Only(OPTIONS)),
    ("/stream", Allowed::AnyButUsdm),
    ("/market/stream", Allowed::Nothing),
    ("/public/stream", Allowed::Nothing),
];

/// The route of `path` with `query`, if it serves WebSockets.
pub fn route(path: &str, query: &str) -> Option<Route> {
    let path = path.trim_end_matches('/');
    if path == "/ws-api/v3" {
        return Some(Route::Api);
    }
    let param = |name: &str| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    if let Some((_, allowed)) = COMBINED.iter().find(|(p, _)| *p == path) {
        let keys = param("streams")
            .map(|s| {
                s.split('/')
                    .filter(|k| !k.is_empty())
                    .take(super::wsapi::MAX_STREAM_PARAMS)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        return Some(Route::Stream {
            keys,
            allowed: *allowed,
            combined: true,
        });
    }
    for (prefix, allowed) in RAW {
        let key = if path == prefix {
            param("listenKey")
        } else if let Some(k) = path.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) {
            Some(k.to_owned())
        } else {
            continue;
        };
        return match key {
            Some(key) if !key.is_empty() && !key.contains('/') => Some(Route::Stream {
                keys: vec![key],
                allowed,
                combined: false,
            }),
            _ => None,
        };
    }
    None
}

/// The live listen keys among `keys` that `allowed` admits, with their account and scope.
pub fn live_keys(sh: &Shared, keys: &[String], allowed: Allowed) -> Vec<StreamKey> {
    let now = sh.now();
    let mut store = lock(&sh.store);
    keys.iter()
        .filter_map(|key| {
            let l = store.lookup(key, now)?;
            (!l.token && allowed.admits(&l.scope)).then(|| StreamKey {
                key: key.clone(),
                account: l.account,
                scope: l.scope,
            })
        })
        .collect()
}

/// Whether a request asks for a WebSocket upgrade.
pub fn wants_upgrade(method: &hyper::Method, headers: &HeaderMap) -> bool {
    let has = |name: &str, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    method == hyper::Method::GET && has("upgrade", "websocket") && has("connection", "upgrade")
}

/// What the connection's task hands the handshake.
pub struct Upgrade {
    /// hyper's promise of the raw connection.
    pub on_upgrade: OnUpgrade,
    /// `Sec-WebSocket-Key`.
    pub key: Option<String>,
    /// The peer.
    pub peer: IpAddr,
    /// Set to end the connection with a TCP reset.
    pub reset: Arc<AtomicBool>,
    /// Cancelled when an outage starts.
    pub open: CancellationToken,
}

/// Answers an upgrade request: 101 and a session started, or the refusal.
pub fn accept(sh: &Arc<Shared>, req: &SimRequest, up: Upgrade) -> Reply {
    let Some(key) = up.key.as_deref().filter(|k| !k.trim().is_empty()) else {
        return Reply::error(400, -1102, "Mandatory header 'Sec-WebSocket-Key' was not sent.");
    };
    let Some(route) = route(&req.path, &req.query) else {
        return Reply::not_found();
    };
    if !sh.hub.attempt(up.peer) {
        let cfg = &sh.hub.cfg;
        let msg = format!(
            "Too many connection attempts from IP; current limit is {} per {}.",
            cfg.attempts_per_ip,
            humantime::format_duration(cfg.attempts_window)
        );
        sh.hub.log(sh.server_now(), 0, "refused", format!("{} {msg}", req.path));
        return Reply::error(429, -1003, &msg);
    }
    let kind = match route {
        Route::Api => Kind::Api,
        Route::Stream {
            keys,
            allowed,
            combined,
        } => {
            let live = live_keys(sh, &keys, allowed);
            // A raw stream's key must be live; a combined stream's names may be
            // market streams, which it ignores.
            if !combined && live.is_empty() {
                let detail = format!("{} key={}", req.path, fingerprint(&keys.concat()));
                sh.hub.log(sh.server_now(), 0, "refused", detail);
                return Reply::no_such_key();
            }
            Kind::Stream {
                keys: live,
                allowed,
                combined,
            }
        }
    };
    // On the bus before the 101 goes out: whatever a client does once it has
    // the 101 (a test order, `POST /_sim/events`) reaches this connection.
    let bus = sh.hub.subscribe();
    let conn = sh.hub.open(&req.path, up.peer, sh.server_now());
    let detail = match &kind {
        Kind::Api => format!("{} peer={}", req.path, up.peer),
        Kind::Stream { keys, .. } => {
            let named: Vec<String> = keys
                .iter()
                .map(|k| format!("stream={} key={}", k.scope, fingerprint(&k.key)))
                .collect();
            format!("{} peer={} {}", req.path, up.peer, named.join(" "))
        }
    };
    session::print(sh, &sh.hub.log(sh.server_now(), conn, "open", detail));
    let (sh2, on_upgrade) = (sh.clone(), up.on_upgrade);
    let (reset, open) = (up.reset, up.open);
    tokio::spawn(async move {
        match tokio::time::timeout(UPGRADE_TIMEOUT, on_upgrade).await {
            Ok(Ok(upgraded)) => {
                let cfg = WebSocketConfig::default()
                    .max_message_size(Some(MAX_FRAME))
                    .max_frame_size(Some(MAX_FRAME));
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(cfg)).await;
                session::run(sh2, conn, kind, (ws, bus), reset, open).await;
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "sim: websocket upgrade failed");
                sh2.hub.close(conn);
            }
            Err(_) => {
                tracing::debug!("sim: websocket upgrade timed out");
                sh2.hub.close(conn);
            }
        }
    });
    let mut reply = Reply::raw(101, String::new());
    reply.headers = vec![
        ("Upgrade".into(), "websocket".into()),
        ("Connection".into(), "Upgrade".into()),
        ("Sec-WebSocket-Accept".into(), derive_accept_key(key.trim().as_bytes())),
    ];
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/ws-api/v3", ""), Some(Route::Api));
        let raw = |key: &str, allowed| {
            Some(Route::Stream {
                keys: vec![key.into()],
                allowed,
                combined: false,
            })
        };
        assert_eq!(
            route("/private/ws", "listenKey=abc"),
            raw("abc", Allowed::Only(PRIVATE))
        );
        assert_eq!(route("/private/ws/abc", ""), raw("abc", Allowed::Only(PRIVATE)));
        assert_eq!(route("/pm/ws/abc", ""), raw("abc", Allowed::Only(PM)));
        assert_eq!(route("/eoptions/ws/abc", ""), raw("abc", Allowed::Only(OPTIONS)));
        assert_eq!(
            route("/ws/abc", "timeUnit=MILLISECOND"),
            raw("abc", Allowed::AnyButUsdm)
        );
        assert_eq!(route("/ws", "listenKey=abc"), raw("abc", Allowed::AnyButUsdm));
        assert_eq!(
            route("/private/stream", "streams=k1/k2"),
            Some(Route::Stream {
                keys: vec!["k1".into(), "k2".into()],
                allowed: Allowed::Only(PRIVATE),
                combined: true
            })
        );
        assert!(matches!(
            route("/market/stream", ""),
            Some(Route::Stream {
                allowed: Allowed::Nothing,
                ..
            })
        ));
        for none in [
            "/ws",
            "/ws/",
            "/ws/a/b",
            "/private",
            "/api/v3/ping",
            "/wsx/abc",
            "/streams",
        ] {
            assert_eq!(route(none, ""), None, "{none}");
        }
        assert!(Allowed::AnyButUsdm.admits("coinm-futures") && !Allowed::AnyButUsdm.admits(USDM));
    }
}
