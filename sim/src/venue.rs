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
//! Toobit's spot and USDT-M futures endpoints, and BingX's one endpoint for
//! all its kinds, serve one key per account (scope `toobit/user`,
//! `bingx/user`): a DELETE on either ends both. MEXC's POST mints a new key every time, beside the live ones, each living
//! `listen_key_ttl` from its last POST or PUT, at most [`MEXC_KEY_CAP`] per
//! account; past the cap a create fails.
//!
//! Errors come in each venue's own shape: BingX's positive codes under HTTP
//! 200, MEXC's `7xxxxx`, HashKey's string codes (a rate limit is HTTP 400
//! with `"0003"`), WOO X's `success: false`. So does the server time: WOO X's
//! system info carries `timestamp`, BingX's nests `data.serverTime`.

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

/// The most live listen keys one MEXC account may hold.
pub const MEXC_KEY_CAP: usize = 60;

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
            // Spot and USDT-M futures share one key per account (as the
            // maintained clients treat it); USDC-M is its own.
            Venue::Toobit => &[
                Route {
                    path: "/api/v1/userDataStream",
                    kind: "user",
                    named: true,
                },
                Route {
                    path: "/api/v1/listenKey",
                    kind: "user",
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
            // The one listen-key error a MEXC user reported, a string code
            // (its HTTP status is not known).
            Venue::Mexc => Reply::json(400, json!({ "code": "730708", "msg": "listen key information error" })),
            _ => Reply::no_such_key(),
        }
    }

    /// The answer to a create past MEXC's cap of live keys. MEXC documents the
    /// cap but not its answer: its listen-key error stands in.
    fn too_many_keys(self) -> Reply {
        Reply::json(
            400,
            json!({ "code": "730708", "msg": "listen key information error: too many listen keys" }),
        )
    }

    /// The answer to a timestamp outside the receive window, in the venue's
    /// own shape (Binance's -1021 where the venue writes Binance's codes).
    fn clock_skew(self, binance: Reply) -> Reply {
        match self {
            Venue::Mexc => Reply::json(
                400,
                json!({ "code": 700003, "msg": "Timestamp for this request is outside of the recvWindow." }),
            ),
            _ => binance,
        }
    }

    /// The answer to a rate-limited request, in the venue's own shape.
    pub fn rate_limited(self) -> Reply {
        match self {
            Venue::Binance | Venue::BinanceUs | Venue::Aster | Venue::Toobit => {
                Reply::error(429, -1003, "Too many requests.")
            }
            Venue::Mexc => Reply::json(429, json!({ "code": 429, "msg": "Too many requests" })),
            Venue::Bingx => Reply::json(
                200,
                json!({ "code": 100410, "msg": "The endpoint trigger frequency limit rule is currently in the disabled period" }),
            ),
            Venue::Hashkey => Reply::json(400, json!({ "code": "0003", "msg": "Rate limit exceeded" })),
            Venue::Woox => Reply::json(
                429,
                json!({ "success": false, "code": -1003, "message": "too many requests" }),
            ),
        }
    }

    /// The answer to a missing or unknown API key, in the venue's own shape.
    fn bad_api_key(self, binance: Reply) -> Reply {
        match self {
            Venue::Mexc if binance.body.contains("-2014") => {
                Reply::json(400, json!({ "code": 400, "msg": "api key required" }))
            }
            Venue::Mexc => Reply::json(400, json!({ "code": 700001, "msg": "API-key format invalid." })),
            Venue::Bingx => Reply::json(200, json!({ "code": 100413, "msg": "Incorrect apiKey" })),
            Venue::Hashkey => Reply::json(400, json!({ "code": "0102", "msg": "Invalid APIKey" })),
            Venue::Woox => Reply::json(
                401,
                json!({ "success": false, "code": -1002, "message": "the api key is invalid" }),
            ),
            _ => binance,
        }
    }

    /// The venue's server-time endpoint and its answer at `now` (server ms).
    fn time(self, path: &str, now: i64) -> Option<Reply> {
        match self {
            Venue::Woox if path == "/v1/public/system_info" || path == "/v3/public/systemInfo" => Some(Reply::json(
                200,
                json!({ "success": true, "data": { "status": 0, "msg": "System is functioning properly." }, "timestamp": now }),
            )),
            Venue::Bingx if path == "/openApi/swap/v2/server/time" || path == "/openApi/spot/v1/server/time" => Some(
                Reply::json(200, json!({ "code": 0, "msg": "", "data": { "serverTime": now } })),
            ),
            Venue::Woox | Venue::Bingx => None,
            _ if path.ends_with("/time") => Some(Reply::json(200, json!({ "serverTime": now }))),
            _ => None,
        }
    }

    /// The answer to a bad or missing signature.
    fn bad_signature(self) -> Reply {
        match self {
            Venue::Mexc => Reply::json(
                400,
                json!({ "code": 700002, "msg": "Signature for this request is not valid." }),
            ),
            Venue::Hashkey => Reply::json(400, json!({ "code": "0002", "msg": "Incorrect signature" })),
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
        (Venue::Toobit, _, Some(c)) if r.path == "/api/v1/listenKey" && c.eq_ignore_ascii_case("USDC") => {
            "usdc-futures"
        }
        (_, k, _) => k,
    };
    format!("{venue}/{kind}")
}

/// Answers a request to `venue` (never [`Venue::Binance`], which `api` serves).
pub fn handle(sh: &Shared, venue: Venue, req: &SimRequest) -> Reply {
    if req.method == "GET"
        && let Some(reply) = venue.time(req.path.trim_end_matches('/'), sh.server_now())
    {
        return reply;
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
        Err(reply) => return venue.bad_api_key(reply),
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
    if venue == Venue::Mexc {
        return mint_per_create(sh, req, &account, &scope, key);
    }
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

/// MEXC: every POST a new key beside the live ones (up to the cap), PUT
/// and DELETE on the key named.
fn mint_per_create(sh: &Shared, req: &SimRequest, account: &str, scope: &str, key: Option<&str>) -> Reply {
    let venue = Venue::Mexc;
    let (now, ttl) = (sh.now(), sh.ttl_ms);
    let mut store = lock(&sh.store);
    match (req.method.as_str(), key) {
        ("POST", _) => match store.create_new(account, scope, now, ttl, MEXC_KEY_CAP) {
            Some(value) => {
                drop(store);
                tracing::debug!(%scope, key = %fingerprint(&value), "sim: a new MEXC listen key");
                Reply::json(200, json!({ "listenKey": value }))
            }
            None => venue.too_many_keys(),
        },
        ("PUT", Some(k)) if store.extend_one(account, scope, k, now, ttl) => {
            Reply::json(200, json!({ "listenKey": k }))
        }
        ("DELETE", Some(k)) if store.delete_one(account, scope, k, now) => Reply::json(200, json!({ "listenKey": k })),
        _ => venue.no_such_key(),
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
                    400 if r.body.contains("-1021") => venue.clock_skew(r),
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

    #[test]
    fn mexc_mints_a_new_key_per_post_up_to_sixty_and_names_a_gone_key_730708() {
        let sh = shared();
        let path = "/api/v3/userDataStream";
        let call = |method: &str, extra: &str| {
            let q = if extra.is_empty() {
                "timestamp=1700000000000".to_owned()
            } else {
                format!("{extra}&timestamp=1700000000000")
            };
            let query = format!("{q}&signature={}", hmac("ms", &q));
            handle(&sh, Venue::Mexc, &request(Venue::Mexc, method, path, &query, "mk"))
        };
        let key = |r: Reply| -> String {
            assert_eq!(r.status, 200, "{}", r.body);
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            v["listenKey"].as_str().unwrap().to_owned()
        };
        let first = key(call("POST", ""));
        let second = key(call("POST", ""));
        assert_ne!(first, second, "every POST is a new key");
        assert_eq!(lock(&sh.store).active(0, 0).len(), 2, "and the first stays alive");
        assert_eq!(key(call("PUT", &format!("listenKey={first}"))), first);
        assert_eq!(key(call("DELETE", &format!("listenKey={first}"))), first);
        let gone = call("PUT", &format!("listenKey={first}"));
        assert_eq!(gone.status, 400);
        assert!(gone.body.contains(r#""730708""#), "{}", gone.body);
        for _ in 1..MEXC_KEY_CAP {
            key(call("POST", ""));
        }
        assert_eq!(lock(&sh.store).active(0, 0).len(), MEXC_KEY_CAP);
        let refused = call("POST", "");
        assert_eq!(refused.status, 400, "the 61st key is refused");
        // Another account has its own sixty.
        let q = "timestamp=1700000000000";
        let other = handle(
            &sh,
            Venue::Mexc,
            &request(
                Venue::Mexc,
                "POST",
                path,
                &format!("{q}&signature={}", hmac("x", q)),
                "other",
            ),
        );
        assert_eq!(other.status, 200, "{}", other.body);
    }

    #[test]
    fn rate_limits_and_bad_keys_come_in_each_venues_shape() {
        let limited = |v: Venue| {
            let r = v.rate_limited();
            (r.status, serde_json::from_str::<serde_json::Value>(&r.body).unwrap())
        };
        let (status, body) = limited(Venue::Hashkey);
        assert_eq!((status, body["code"].as_str()), (400, Some("0003")));
        let (status, body) = limited(Venue::Bingx);
        assert_eq!((status, body["code"].as_i64()), (200, Some(100_410)));
        let (status, body) = limited(Venue::Woox);
        assert_eq!((status, body["success"].as_bool()), (429, Some(false)));
        assert_eq!(limited(Venue::Binance).1["code"], -1003);
        let mut sh = shared();
        sh.api_keys = vec!["known".into()];
        let r = request(Venue::Bingx, "POST", "/openApi/user/auth/userDataStream", "", "unknown");
        let reply = handle(&sh, Venue::Bingx, &r);
        assert_eq!(reply.status, 200);
        assert!(reply.body.contains("100413"), "{}", reply.body);
    }

    #[test]
    fn each_venue_answers_its_time_endpoint_in_its_shape() {
        let sh = shared();
        let get = |v: Venue, path: &str| {
            let reply = handle(&sh, v, &request(v, "GET", path, "", ""));
            assert_eq!(reply.status, 200, "{v} {path}");
            serde_json::from_str::<serde_json::Value>(&reply.body).unwrap()
        };
        let now = sh.server_now();
        assert_eq!(get(Venue::Woox, "/v1/public/system_info")["timestamp"], now);
        assert_eq!(get(Venue::Woox, "/v3/public/systemInfo")["timestamp"], now);
        assert_eq!(
            get(Venue::Bingx, "/openApi/swap/v2/server/time")["data"]["serverTime"],
            now
        );
        for (v, path) in [
            (Venue::BinanceUs, "/api/v3/time"),
            (Venue::Mexc, "/api/v3/time"),
            (Venue::Aster, "/fapi/v1/time"),
            (Venue::Toobit, "/api/v1/time"),
            (Venue::Hashkey, "/api/v1/time"),
        ] {
            assert_eq!(get(v, path)["serverTime"], now, "{v}");
        }
    }
}
