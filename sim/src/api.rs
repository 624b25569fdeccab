//! The simulated Binance endpoints: listen keys (futures, portfolio margin,
//! options, the margin risk stream, and, in the `binance-2025` profile, spot
//! and margin), listen tokens, ping and server time, with Binance's answers
//! and error codes (see `binance-api.md`). Retired endpoints answer 410 and
//! unknown paths 404, both with the HTML page Binance's front servers send.

use serde_json::json;

use super::auth;
use super::http::{Reply, SimRequest};
use super::log::fingerprint;
use super::profile::Profile;
use super::shared::{Shared, lock};

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

/// The families' `exchangeInfo`, which states their per-IP limits in
/// `rateLimits` (portfolio margin and `/sapi` publish none).
const EXCHANGE_INFO_PATHS: [&str; 4] = [
    "/api/v3/exchangeInfo",
    "/fapi/v1/exchangeInfo",
    "/dapi/v1/exchangeInfo",
    "/eapi/v1/exchangeInfo",
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
/// The scope of the cross-margin listen key and of unisolated listen tokens.
const CROSS_MARGIN_SCOPE: &str = "cross-margin";
/// The prefix of an isolated-margin scope: `isolated-margin:BTCUSDT`.
const ISOLATED_MARGIN_SCOPE: &str = "isolated-margin";

/// An account-wide listen key: one per account and API family, PUT and
/// DELETE act on it without naming it. Scopes are the names listenkeyd's
/// stream ids use, so the request log and `/_sim/keys` read the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Account {
    /// `/fapi`: USDⓈ-M futures.
    UsdmFutures,
    /// `/dapi`: COIN-M futures.
    CoinmFutures,
    /// `/papi`: portfolio margin.
    PortfolioMargin,
    /// `/eapi`: options.
    Options,
    /// `/sapi/v{1,2}/margin/listen-key`: the margin risk stream.
    MarginRisk,
}

impl Account {
    /// The scope its key is kept under.
    fn scope(self) -> &'static str {
        match self {
            Account::UsdmFutures => "usdm-futures",
            Account::CoinmFutures => "coinm-futures",
            Account::PortfolioMargin => "portfolio-margin",
            Account::Options => "options",
            Account::MarginRisk => "margin-risk",
        }
    }
}

/// Whether Binance takes `s` as a symbol here: upper-case letters and digits, 5 to 20 of them.
fn symbol_ok(s: &str) -> bool {
    (5..=20).contains(&s.len()) && s.bytes().all(|b| matches!(b, b'A'..=b'Z' | b'0'..=b'9'))
}

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
    AccountKey(Account),
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
            "/sapi/v1/margin/listen-key" | "/sapi/v2/margin/listen-key" => Route::AccountKey(Account::MarginRisk),
            "/fapi/v1/listenKey" => Route::AccountKey(Account::UsdmFutures),
            "/dapi/v1/listenKey" => Route::AccountKey(Account::CoinmFutures),
            "/papi/v1/listenKey" => Route::AccountKey(Account::PortfolioMargin),
            "/eapi/v1/listenKey" => Route::AccountKey(Account::Options),
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
            Some(s) if symbol_ok(s) => Ok(format!("{ISOLATED_MARGIN_SCOPE}:{s}")),
            _ => Err(Reply::mandatory("symbol")),
        };
        match self {
            Route::IsolatedKey => symbol(),
            Route::CrossKey => Ok(CROSS_MARGIN_SCOPE.to_owned()),
            Route::SpotKey => Ok(SPOT_SCOPE.to_owned()),
            Route::AccountKey(account) => Ok(account.scope().to_owned()),
            Route::Token if req.param("isIsolated").is_some_and(|v| v.eq_ignore_ascii_case("true")) => symbol(),
            Route::Token => Ok(CROSS_MARGIN_SCOPE.to_owned()),
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
    if req.method == "GET" && EXCHANGE_INFO_PATHS.contains(&req.path.as_str()) {
        let family = crate::weight::family("", &req.path);
        let rate_limits = lock(&sh.weights).rules().rate_limits(&family);
        return Reply::json(
            200,
            json!({
                "timezone": "UTC",
                "serverTime": sh.server_now(),
                "rateLimits": rate_limits,
                "exchangeFilters": [],
                "symbols": [],
            }),
        );
    }
    if let Some(reply) = super::orders::handle(sh, req) {
        return reply;
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
        (false, Some(k)) if !k.is_empty() && route == Route::AccountKey(Account::MarginRisk) => Some(k),
        _ => None,
    };
    let mut store = lock(&sh.store);
    match req.method.as_str() {
        "POST" => {
            let (value, new) = store.create_or_extend(account, scope, now, ttl);
            drop(store);
            tracing::debug!(scope, key = %fingerprint(&value), new, "sim: listen key created or extended");
            if route == Route::AccountKey(Account::Options) {
                // Binance's options answer states the expiry.
                Reply::json(
                    200,
                    // Saturating, as every server time: the skew may be extreme.
                    json!({ "listenKey": value, "expiration": now.saturating_add(ttl).saturating_add(sh.skew_ms()) }),
                )
            } else {
                Reply::json(200, json!({ "listenKey": value }))
            }
        }
        "PUT" => match store.extend(account, scope, key, now, ttl) {
            Some(value) if route == Route::AccountKey(Account::UsdmFutures) => {
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
