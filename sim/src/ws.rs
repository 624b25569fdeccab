//! WebSocket upgrades on the REST port: which path serves what ([`route`]),
//! and the handshake ([`accept`]) that answers 101 and starts the session
//! once hyper hands the connection over.
//!
//! Production paths, one host standing in for them all:
//!
//! | path | serves |
//! |---|---|
//! | `/ws-api/v3` | the WebSocket API (spot signature and margin listen-token subscriptions) |
//! | `/private/ws?listenKey=K`, `/private/ws/K` | USD-M (`fstream.binance.com/private`, since 2026-04-23) |
//! | `/pm/ws/K` | portfolio margin (`fstream.binance.com/pm/ws`) |
//! | `/eoptions/ws/K` | options (`nbstream.binance.com/eoptions/ws`) |
//! | `/ws/K`, `/ws?listenKey=K` | COIN-M (`dstream`), the margin risk stream (`margin-stream`), and any other listen key but USD-M's, whose old address is retired |
//!
//! A listen key that is unknown, expired, or of another family than the
//! path serves is refused before the upgrade (400, -1125). Every handshake
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
use super::session::{self, Kind};
use super::shared::{Shared, lock};
use super::wsapi::MAX_FRAME;

/// The scope of USD-M listen keys, served only under `/private`.
const USDM: &str = "usdm-futures";

/// What a WebSocket path serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The WebSocket API.
    Api,
    /// A listen-key stream: the key, and the scope the path requires (`None`: any but USD-M).
    Stream {
        /// The listen key named by the path or the query.
        key: String,
        /// The only scope served there, if the path is a family's own.
        scope: Option<&'static str>,
    },
}

/// The route of `path` with `query`, if it serves WebSockets.
pub fn route(path: &str, query: &str) -> Option<Route> {
    let path = path.trim_end_matches('/');
    if path == "/ws-api/v3" {
        return Some(Route::Api);
    }
    let in_query = || {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "listenKey")
            .map(|(_, v)| v.into_owned())
    };
    for (prefix, scope) in [
        ("/private/ws", Some(USDM)),
        ("/pm/ws", Some("portfolio-margin")),
        ("/eoptions/ws", Some("options")),
        ("/ws", None),
    ] {
        let key = if path == prefix {
            in_query()
        } else if let Some(k) = path.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) {
            Some(k.to_owned())
        } else {
            continue;
        };
        return match key {
            Some(key) if !key.is_empty() && !key.contains('/') => Some(Route::Stream { key, scope }),
            _ => None,
        };
    }
    None
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
        Route::Stream { key, scope } => {
            let found = lock(&sh.store).lookup(&key, sh.now());
            match found {
                Some(l) if !l.token && scope.map_or(l.scope != USDM, |s| s == l.scope) => Kind::Stream {
                    key,
                    account: l.account,
                    scope: l.scope,
                },
                _ => {
                    let detail = format!("{} key={}", req.path, fingerprint(&key));
                    sh.hub.log(sh.server_now(), 0, "refused", detail);
                    return Reply::no_such_key();
                }
            }
        }
    };
    // On the bus before the 101 goes out: whatever a client does once it has
    // the 101 (a test order, `POST /_sim/events`) reaches this connection.
    let bus = sh.hub.subscribe();
    let conn = sh.hub.open(&req.path, up.peer, sh.server_now());
    let detail = match &kind {
        Kind::Api => format!("{} peer={}", req.path, up.peer),
        Kind::Stream { key, scope, .. } => {
            format!("{} peer={} stream={scope} key={}", req.path, up.peer, fingerprint(key))
        }
    };
    session::print(sh, &sh.hub.log(sh.server_now(), conn, "open", detail));
    let (sh2, on_upgrade) = (sh.clone(), up.on_upgrade);
    let (reset, open) = (up.reset, up.open);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let cfg = WebSocketConfig::default()
                    .max_message_size(Some(MAX_FRAME))
                    .max_frame_size(Some(MAX_FRAME));
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(cfg)).await;
                session::run(sh2, conn, kind, (ws, bus), reset, open).await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "sim: websocket upgrade failed");
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
        let s = |key: &str, scope| Some(Route::Stream { key: key.into(), scope });
        assert_eq!(route("/private/ws", "listenKey=abc"), s("abc", Some(USDM)));
        assert_eq!(route("/private/ws/abc", ""), s("abc", Some(USDM)));
        assert_eq!(route("/pm/ws/abc", ""), s("abc", Some("portfolio-margin")));
        assert_eq!(route("/eoptions/ws/abc", ""), s("abc", Some("options")));
        assert_eq!(route("/ws/abc", "timeUnit=MILLISECOND"), s("abc", None));
        assert_eq!(route("/ws", "listenKey=abc"), s("abc", None));
        for none in [
            "/ws",
            "/ws/",
            "/ws/a/b",
            "/stream",
            "/private",
            "/api/v3/ping",
            "/wsx/abc",
        ] {
            assert_eq!(route(none, ""), None, "{none}");
        }
    }
}
