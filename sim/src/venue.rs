//! The other venues that hand out listen keys, each in its own terms: its
//! endpoints, the header its API key travels in, whether and how its calls
//! are signed, and its error answers (`venues.md`). One simulator plays one
//! venue by default (`--venue mexc`) and every venue at once under a path
//! prefix: `/mexc/api/v3/userDataStream` is MEXC, `/woox/v3/account/listenKey`
//! is WOO X, whatever the default. Binance itself is [`super::api`].
//!
//! Keys are kept in the same store as Binance's, under the scope
//! `venue/kind` (`mexc/spot`), per API key: two accounts on one venue never
//! share a key. WOO X's keys rotate: each POST mints a new key and expires the
//! previous one at once, and a key lives `listen_key_ttl` with no extension.

use std::fmt;
use std::str::FromStr;

use serde_json::json;

use super::auth::{self, Verifier};
use super::http::{Reply, SimRequest};
use super::log::fingerprint;
use super::shared::{Shared, lock};

/// A venue the simulator plays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Venue {
    /// Binance ([`super::api`], as the profile says).
    #[default]
    Binance,
    /// Binance.US: Binance's spot listen keys, unsigned.
    BinanceUs,
    /// MEXC spot: `X-MEXC-APIKEY`, every call signed.
    Mexc,
    /// BingX: `X-BX-APIKEY`, unsigned; PUT of an unknown key is a 404.
    Bingx,
    /// Aster v1: Binance-compatible futures and spot.
    Aster,
    /// Toobit: every call signed.
    Toobit,
    /// HashKey: every call signed.
    Hashkey,
    /// WOO X: header-signed, rotating 24-hour keys.
    Woox,
}

/// How a venue's calls are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signed {
    /// Not at all.
    No,
    /// `timestamp` and an HMAC-SHA256 hex `signature` of the query, on every call.
    Query,
    /// WOO X: `x-api-timestamp` and `x-api-signature`, the HMAC-SHA256 hex of
    /// `timestamp + METHOD + path?query + body`.
    Headers,
}

/// One listen-key endpoint of a venue.
#[derive(Debug, Clone, Copy)]
struct Route {
    /// The path.
    path: &'static str,
    /// The kind the key serves (the second half of its scope).
    kind: &'static str,
    /// Whether PUT and DELETE name the key (`listenKey=`).
    named: bool,
}

impl Venue {
    /// Every venue, as `--venue` and path prefixes spell them.
    pub const ALL: [Venue; 8] = [
        Venue::Binance,
        Venue::BinanceUs,
        Venue::Mexc,
        Venue::Bingx,
        Venue::Aster,
        Venue::Toobit,
        Venue::Hashkey,
        Venue::Woox,
    ];

    /// The spelling: `binance-us`, `mexc`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Venue::Binance => "binance",
            Venue::BinanceUs => "binance-us",
            Venue::Mexc => "mexc",
            Venue::Bingx => "bingx",
            Venue::Aster => "aster",
            Venue::Toobit => "toobit",
            Venue::Hashkey => "hashkey",
            Venue::Woox => "woox",
        }
    }

    /// The header the venue reads the API key from.
    pub fn api_key_header(self) -> &'static str {
        match self {
            Venue::Binance | Venue::BinanceUs | Venue::Aster => "x-mbx-apikey",
            Venue::Mexc => "x-mexc-apikey",
            Venue::Bingx => "x-bx-apikey",
            Venue::Toobit => "x-bb-apikey",
            Venue::Hashkey => "x-hk-apikey",
            Venue::Woox => "x-api-key",
        }
    }

    fn signed(self) -> Signed {
        match self {
            Venue::Mexc | Venue::Toobit | Venue::Hashkey => Signed::Query,
            Venue::Woox => Signed::Headers,
            _ => Signed::No,
        }
    }

    fn routes(self) -> &'static [Route] {
        match self {
            Venue::Binance => &[],
            Venue::BinanceUs | Venue::Mexc => &[Route {
                path: "/api/v3/userDataStream",
                kind: "spot",
                named: true,
            }],
            Venue::Bingx => &[Route {
                path: "/openApi/user/auth/userDataStream",
                kind: "user",
                named: true,
            }],
            Venue::Aster => &[
                Route {
                    path: "/fapi/v1/listenKey",
                    kind: "futures",
                    named: false,
                },
                Route {
                    path: "/api/v1/listenKey",
                    kind: "spot",
                    named: true,
                },
            ],
            Venue::Toobit => &[
                Route {
                    path: "/api/v1/userDataStream",
                    kind: "spot",
                    named: true,
                },
                Route {
                    path: "/api/v1/listenKey",
                    kind: "futures",
                    named: true,
                },
            ],
            Venue::Hashkey => &[Route {
                path: "/api/v1/userDataStream",
                kind: "account",
                named: true,
            }],
            Venue::Woox => &[Route {
                path: "/v3/account/listenKey",
                kind: "account",
                named: false,
            }],
        }
    }

    /// The venue a path prefix names (`/mexc/…`), and the path below it.
    pub fn split_prefix(path: &str) -> Option<(Venue, &str)> {
        let rest = path.strip_prefix('/')?;
        let (first, below) = rest.split_once('/')?;
        let venue = first.parse::<Venue>().ok()?;
        (!below.is_empty()).then_some((venue, &path[first.len() + 1..]))
    }

    /// The answer to a request for an unknown listen key.
    fn no_such_key(self) -> Reply {
        match self {
            Venue::Bingx => Reply::json(404, json!({ "code": 100404, "msg": "listenKey not exist" })),
            _ => Reply::no_such_key(),
        }
    }

    /// The answer to a bad or missing signature.
    fn bad_signature(self) -> Reply {
        match self {
            Venue::Mexc => Reply::json(
                400,
                json!({ "code": 700002, "msg": "Signature for this request is not valid." }),
            ),
            Venue::Woox => Reply::json(
                401,
                json!({ "success": false, "code": -1002, "message": "invalid signature" }),
            ),
            _ => Reply::error(400, -1022, "Signature for this request is not valid."),
        }
    }
}

impl fmt::Display for Venue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Venue {
    type Err = String;

    fn from_str(s: &str) -> Result<Venue, String> {
        Venue::ALL.into_iter().find(|v| v.as_str() == s.trim()).ok_or_else(|| {
            format!(
                "unknown venue {s:?} (one of {})",
                Venue::ALL.map(Venue::as_str).join(", ")
            )
        })
    }
}

/// The scope a request addresses on `venue`, for the request log.
pub fn scope_of(venue: Venue, req: &SimRequest) -> Option<String> {
    let r = venue
        .routes()
        .iter()
        .find(|r| r.path == req.path.trim_end_matches('/'))?;
    Some(scope(venue, r, req))
}

fn scope(venue: Venue, r: &Route, req: &SimRequest) -> String {
    let kind = match (venue, r.kind, req.param("category")) {
        (Venue::Toobit, "futures", Some(c)) if c.eq_ignore_ascii_case("USDC") => "usdc-futures",
        (_, k, _) => k,
    };
    format!("{venue}/{kind}")
}

/// Answers a request to `venue` (never [`Venue::Binance`], which `api` serves).
pub fn handle(sh: &Shared, venue: Venue, req: &SimRequest) -> Reply {
    if req.method == "GET" && req.path.ends_with("/time") {
        return Reply::json(200, json!({ "serverTime": sh.server_now() }));
    }
    let Some(r) = venue.routes().iter().find(|r| r.path == req.path.trim_end_matches('/')) else {
        return Reply::not_found();
    };
    let allowed = match venue {
        Venue::Woox => req.method == "POST",
        _ => matches!(req.method.as_str(), "POST" | "PUT" | "DELETE"),
    };
    if !allowed {
        return Reply::not_found();
    }
    let account = match auth::api_key(req, &sh.api_keys) {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    if let Err(reply) = check_signature(sh, venue, req, &account) {
        return reply;
    }
    let scope = scope(venue, r, req);
    if venue == Venue::Woox {
        return rotate(sh, req, &account, &scope);
    }
    let key = match (r.named, req.param("listenKey")) {
        (true, Some(k)) if !k.is_empty() => Some(k),
        (true, _) if req.method != "POST" => return Reply::mandatory("listenKey"),
        _ => None,
    };
    let (now, ttl) = (sh.now(), sh.ttl_ms);
    let mut store = lock(&sh.store);
    match req.method.as_str() {
        "POST" => {
            let (value, new) = store.create_or_extend(&account, &scope, now, ttl);
            drop(store);
            tracing::debug!(%scope, key = %fingerprint(&value), new, "sim: listen key created or extended");
            Reply::json(200, json!({ "listenKey": value }))
        }
        "PUT" => match store.extend(&account, &scope, key, now, ttl) {
            Some(_) => Reply::raw(200, "{}"),
            None => venue.no_such_key(),
        },
        _ => {
            if store.delete(&account, &scope, key, now) || !r.named {
                Reply::raw(200, "{}")
            } else {
                venue.no_such_key()
            }
        }
    }
}

/// The secret `account`'s signatures are checked against: its own
/// (`--account-secret`), else the simulator's.
fn verifier(sh: &Shared, account: &str) -> Option<Verifier> {
    let secret = sh
        .account_secrets
        .iter()
        .find(|(k, _)| k == account)
        .map(|(_, s)| s.as_str())
        .or(sh.verifier.hmac.as_deref())?;
    Some(Verifier::new(Some(secret), None))
}

/// The venue's signature rule; a venue that signs refuses an unsigned call.
fn check_signature(sh: &Shared, venue: Venue, req: &SimRequest, account: &str) -> Result<(), Reply> {
    match venue.signed() {
        Signed::No => Ok(()),
        Signed::Query => {
            if !auth::has_signature(req) {
                return Err(venue.bad_signature());
            }
            match verifier(sh, account) {
                // No secret to check against: a signature is taken as it is.
                None => Ok(()),
                Some(v) => auth::check_signed(&v, req, sh.server_now()).map_err(|r| match r.status {
                    400 if r.body.contains("-1022") => venue.bad_signature(),
                    _ => r,
                }),
            }
        }
        Signed::Headers => {
            let (Some(ts), Some(sig)) = (req.header("x-api-timestamp"), req.header("x-api-signature")) else {
                return Err(venue.bad_signature());
            };
            let Some(v) = verifier(sh, account) else {
                return Ok(());
            };
            // The path as sent, venue prefix included.
            let path = format!("{}{}", req.prefix, req.path);
            let target = if req.query.is_empty() {
                path
            } else {
                format!("{path}?{}", req.query)
            };
            let payload = format!("{ts}{}{target}{}", req.method, req.body);
            let fresh = ts.parse::<i64>().is_ok_and(|t| sh.server_now().abs_diff(t) <= 5_000);
            if fresh && v.verify(&payload, sig) {
                Ok(())
            } else {
                Err(venue.bad_signature())
            }
        }
    }
}

/// WOO X: a new key for the account, the previous one expired at once.
fn rotate(sh: &Shared, req: &SimRequest, account: &str, scope: &str) -> Reply {
    let body: Option<serde_json::Value> = serde_json::from_str(&req.body).ok();
    let kind = body.as_ref().and_then(|b| b.get("type")).and_then(|t| t.as_str());
    if kind != Some("WEBSOCKET") {
        return Reply::json(
            400,
            json!({ "success": false, "code": -1102, "message": "type must be WEBSOCKET" }),
        );
    }
    let now = sh.now();
    let mut store = lock(&sh.store);
    store.revoke_account_scope(account, scope);
    let (value, _) = store.create_or_extend(account, scope, now, sh.ttl_ms);
    drop(store);
    tracing::debug!(scope, key = %fingerprint(&value), "sim: rotating key minted");
    Reply::json(
        200,
        json!({
            "success": true,
            // Saturating, as every server time: the skew may be extreme.
            "data": {
                "authKey": value,
                "expiredTime": now.saturating_add(sh.ttl_ms).saturating_add(sh.skew_ms()),
            },
            "timestamp": sh.server_now(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_spellings() {
        for v in Venue::ALL {
            assert_eq!(v.as_str().parse::<Venue>(), Ok(v));
        }
        assert_eq!(
            Venue::split_prefix("/mexc/api/v3/userDataStream"),
            Some((Venue::Mexc, "/api/v3/userDataStream"))
        );
        assert_eq!(Venue::split_prefix("/fapi/v1/listenKey"), None);
        assert_eq!(Venue::split_prefix("/mexc/"), None);
        assert!("kraken".parse::<Venue>().is_err());
    }

    fn shared() -> Shared {
        let clock: crate::shared::Clock = std::sync::Arc::new(|| 1_700_000_000_000);
        let mut sh = Shared::new(clock, 0, 60_000, Vec::new(), Verifier::default(), Vec::new());
        sh.account_secrets = vec![("mk".into(), "ms".into()), ("wk".into(), "ws".into())];
        sh
    }

    fn request(venue: Venue, method: &str, path: &str, query: &str, key: &str) -> SimRequest {
        let mut r = SimRequest::new(method, path, Some(query), String::new(), Some(key.into()));
        r.venue = venue;
        r
    }

    fn hmac(secret: &str, payload: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(payload.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn mexc_wants_every_call_signed_with_the_accounts_secret() {
        let sh = shared();
        let path = "/api/v3/userDataStream";
        let q = "timestamp=1700000000000";
        let post = |query: String| handle(&sh, Venue::Mexc, &request(Venue::Mexc, "POST", path, &query, "mk"));
        assert_eq!(post(String::new()).status, 400);
        assert!(
            post(format!("{q}&signature={}", hmac("other", q)))
                .body
                .contains("700002")
        );
        let ok = post(format!("{q}&signature={}", hmac("ms", q)));
        assert_eq!(ok.status, 200, "{}", ok.body);
        assert_eq!(lock(&sh.store).active(0, 0)[0].scope, "mexc/spot");
    }

    #[test]
    fn bingx_answers_404_for_an_unknown_key_and_woox_rotates() {
        let sh = shared();
        let put = request(
            Venue::Bingx,
            "PUT",
            "/openApi/user/auth/userDataStream",
            "listenKey=nope",
            "bk",
        );
        assert_eq!(handle(&sh, Venue::Bingx, &put).status, 404);

        let mint = || {
            let mut r = request(Venue::Woox, "POST", "/v3/account/listenKey", "", "wk");
            r.body = r#"{"type":"WEBSOCKET"}"#.into();
            let ts = "1700000000000".to_owned();
            let sig = hmac("ws", &format!("{ts}POST/v3/account/listenKey{}", r.body));
            r.headers.insert("x-api-timestamp".into(), ts);
            r.headers.insert("x-api-signature".into(), sig);
            let reply = handle(&sh, Venue::Woox, &r);
            assert_eq!(reply.status, 200, "{}", reply.body);
            let v: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
            v["data"]["authKey"].as_str().unwrap().to_owned()
        };
        let first = mint();
        assert!(lock(&sh.store).is_live(&first, 0));
        let second = mint();
        assert_ne!(first, second);
        assert!(!lock(&sh.store).is_live(&first, 0), "a new WOO X key kills the old one");
        assert!(lock(&sh.store).is_live(&second, 0));
    }

    /// WOO X states a new key's expiry on the skewed clock; an extreme skew
    /// overflowed it.
    #[test]
    fn a_woox_expiry_saturates_under_an_extreme_skew() {
        let sh = shared();
        for skew in [i64::MAX, i64::MIN] {
            sh.set_skew_ms(skew);
            // No secret for this API key: the signature headers are taken as they are.
            let mut r = request(Venue::Woox, "POST", "/v3/account/listenKey", "", "other");
            r.body = r#"{"type":"WEBSOCKET"}"#.into();
            r.headers.insert("x-api-timestamp".into(), "0".into());
            r.headers.insert("x-api-signature".into(), "00".into());
            let reply = handle(&sh, Venue::Woox, &r);
            assert_eq!(reply.status, 200, "{}", reply.body);
            let v: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
            let expected = 1_700_000_060_000i64.saturating_add(skew);
            assert_eq!(v["data"]["expiredTime"].as_i64(), Some(expected));
        }
    }
}
