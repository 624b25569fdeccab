//! The simulated Binance endpoints: listen keys (futures, portfolio margin,
//! options, the margin risk stream, and, in the `binance-2025` profile, spot
//! and margin), listen tokens, ping and server time, with Binance's answers
//! and error codes (see `binance-api.md`). Retired endpoints answer 410 and
//! unknown paths 404, both with the HTML page Binance's front servers send.

use serde_json::json;

use super::auth;
use super::http::{Reply, SimRequest};
use super::profile::Profile;
use super::shared::{Shared, lock};
use crate::secret::fingerprint;
use crate::stream::{Kind, StreamId, valid_symbol};

/// The longest listen-token validity, ms (24 h); also the default.
const MAX_TOKEN_VALIDITY: i64 = 86_400_000;

/// The paths that answer `{"serverTime": ms}`.
const TIME_PATHS: [&str; 6] = [
    "/api/v3/time",
    "/sapi/v1/time",
    "/fapi/v1/time",
    "/dapi/v1/time",
    "/papi/v1/time",
    "/eapi/v1/time",
];

/// The paths that answer `{}` (connectivity checks).
const PING_PATHS: [&str; 5] = [
    "/api/v3/ping",
    "/fapi/v1/ping",
    "/dapi/v1/ping",
    "/papi/v1/ping",
    "/eapi/v1/ping",
];

/// The scope of the spot listen key (Binance retired it on 2026-02-20).
const SPOT_SCOPE: &str = "spot";

/// A credential endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `/sapi/v1/userDataStream/isolated`: a listen key per symbol (retired today).
    IsolatedKey,
    /// `/sapi/v1/userDataStream`: the cross-margin listen key (retired today).
    CrossKey,
    /// `/api/v3/userDataStream`: the spot listen key (retired today).
    SpotKey,
    /// `/{fapi,dapi,papi,eapi}/v1/listenKey`: the account's listen key.
    AccountKey(Kind),
    /// `/sapi/v1/userListenToken`: mint a listen token.
    Token,
}

impl Route {
    /// The route serving `path`, if any.
    fn of(path: &str) -> Option<Route> {
        Some(match path.trim_end_matches('/') {
            "/sapi/v1/userDataStream/isolated" => Route::IsolatedKey,
            "/sapi/v1/userDataStream" => Route::CrossKey,
            "/api/v3/userDataStream" => Route::SpotKey,
            "/sapi/v1/margin/listen-key" | "/sapi/v2/margin/listen-key" => Route::AccountKey(Kind::MarginRisk),
            "/fapi/v1/listenKey" => Route::AccountKey(Kind::UsdmFutures),
            "/dapi/v1/listenKey" => Route::AccountKey(Kind::CoinmFutures),
            "/papi/v1/listenKey" => Route::AccountKey(Kind::PortfolioMargin),
            "/eapi/v1/listenKey" => Route::AccountKey(Kind::Options),
            "/sapi/v1/userListenToken" => Route::Token,
            _ => return None,
        })
    }

    /// Whether `profile` has retired this endpoint.
    fn retired_in(self, profile: Profile) -> bool {
        matches!(self, Route::IsolatedKey | Route::CrossKey | Route::SpotKey) && !profile.serves_margin_listen_keys()
    }

    /// The scope (stream id) the request addresses, or the -1102 answer for a bad symbol.
    fn scope(self, req: &SimRequest) -> Result<String, Reply> {
        let symbol = || match req.param("symbol") {
            Some(s) if valid_symbol(s) => Ok(StreamId::new(Kind::IsolatedMargin, Some(s)).to_string()),
            _ => Err(Reply::mandatory("symbol")),
        };
        match self {
            Route::IsolatedKey => symbol(),
            Route::CrossKey => Ok(Kind::CrossMargin.to_string()),
            Route::SpotKey => Ok(SPOT_SCOPE.to_owned()),
            Route::AccountKey(kind) => Ok(kind.to_string()),
            Route::Token if req.param("isIsolated").is_some_and(|v| v.eq_ignore_ascii_case("true")) => symbol(),
            Route::Token => Ok(Kind::CrossMargin.to_string()),
        }
    }
}

/// Answers an exchange request (anything outside `/_sim/`).
pub fn handle(sh: &Shared, req: &SimRequest) -> Reply {
    if req.method == "GET" && TIME_PATHS.contains(&req.path.as_str()) {
        return Reply::json(200, json!({ "serverTime": sh.server_now() }));
    }
    if req.method == "GET" && PING_PATHS.contains(&req.path.as_str()) {
        return Reply::raw(200, "{}");
    }
    let Some(route) = Route::of(&req.path) else {
        return Reply::not_found();
    };
    if route.retired_in(sh.profile) {
        return Reply::gone();
    }
    if !matches!(req.method.as_str(), "POST" | "PUT" | "DELETE") || (route == Route::Token && req.method != "POST") {
        return Reply::not_found();
    }
    let account = match auth::api_key(req, &sh.api_keys) {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let scope = match route.scope(req) {
        Ok(s) => s,
        Err(reply) => return reply,
    };
    match route {
        Route::Token => mint(sh, req, &account, &scope),
        _ => listen_key(sh, req, route, &account, &scope),
    }
}

/// The stream id a request addresses, when it is a credential request (for the request log).
pub fn scope_of(req: &SimRequest) -> Option<String> {
    Route::of(&req.path)?.scope(req).ok()
}

/// Removes the account's credential for the request's scope (the `revoke` fault); false when nothing matched.
pub fn revoke_for(sh: &Shared, req: &SimRequest) -> bool {
    let (Some(route), Some(account)) = (Route::of(&req.path), req.api_key.as_deref()) else {
        return false;
    };
    let Ok(scope) = route.scope(req) else {
        return false;
    };
    lock(&sh.store).revoke_account_scope(account.trim(), &scope)
}

/// POST, PUT and DELETE on a listen-key endpoint.
fn listen_key(sh: &Shared, req: &SimRequest, route: Route, account: &str, scope: &str) -> Reply {
    let (now, ttl) = (sh.now(), sh.ttl_ms);
    // The spot and margin endpoints name the key; the others act on the
    // account's key (the risk stream's PUT names it too, and it must match then).
    let named = !matches!(route, Route::AccountKey(_));
    let key = match (named, req.param("listenKey")) {
        (true, Some(k)) if !k.is_empty() => Some(k),
        (true, _) if req.method != "POST" => return Reply::mandatory("listenKey"),
        (false, Some(k)) if !k.is_empty() && route == Route::AccountKey(Kind::MarginRisk) => Some(k),
        _ => None,
    };
    let mut store = lock(&sh.store);
    match req.method.as_str() {
        "POST" => {
            let (value, new) = store.create_or_extend(account, scope, now, ttl);
            drop(store);
            tracing::debug!(scope, key = %fingerprint(&value), new, "sim: listen key created or extended");
            if route == Route::AccountKey(Kind::Options) {
                // Binance's options answer states the expiry.
                Reply::json(
                    200,
                    json!({ "listenKey": value, "expiration": now + ttl + sh.skew_ms() }),
                )
            } else {
                Reply::json(200, json!({ "listenKey": value }))
            }
        }
        "PUT" => match store.extend(account, scope, key, now, ttl) {
            Some(value) if route == Route::AccountKey(Kind::UsdmFutures) => {
                Reply::json(200, json!({ "listenKey": value }))
            }
            Some(_) => Reply::raw(200, "{}"),
            None => Reply::no_such_key(),
        },
        _ => {
            let deleted = store.delete(account, scope, key, now);
            if deleted || !named {
                Reply::raw(200, "{}")
            } else {
                Reply::no_such_key()
            }
        }
    }
}

/// POST on the listen-token endpoint.
fn mint(sh: &Shared, req: &SimRequest, account: &str, scope: &str) -> Reply {
    let validity = match req.param("validity") {
        None => MAX_TOKEN_VALIDITY,
        Some(v) => match v.parse::<i64>() {
            Ok(ms) if ms > 0 && ms <= MAX_TOKEN_VALIDITY => ms,
            _ => {
                return Reply::error(
                    400,
                    -1102,
                    "Parameter 'validity' was malformed: it must be a number of ms in 1..=86400000.",
                );
            }
        },
    };
    if let Err(reply) = auth::check_token_request(&sh.verifier, sh.require_signature, req, sh.server_now()) {
        return reply;
    }
    let (token, expires_at) = lock(&sh.store).mint_token(account, scope, sh.now(), validity);
    tracing::debug!(scope, token = %fingerprint(&token), "sim: listen token minted");
    Reply::json(
        200,
        json!({ "token": token, "expirationTime": expires_at.saturating_add(sh.skew_ms()) }),
    )
}
