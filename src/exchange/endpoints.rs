//! The calls that create, keep alive and close a stream's credential: method,
//! path and parameters, read from the stream's venue route
//! ([`crate::exchange::venue::Route`]). Binance's routes are the table of
//! `binance-api.md`; nothing else in the crate spells an endpoint path.

use std::time::Duration;

use reqwest::Method;

use crate::stream::{CredentialKind, StreamSpec};
use crate::exchange::venue::Route;

/// One request to make: everything but the host, the API key and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// HTTP method.
    pub method: Method,
    /// Path below the family's base URL.
    pub path: &'static str,
    /// Query parameters, in order.
    pub params: Vec<(&'static str, String)>,
    /// Whether the call is signed under Binance's rule (listen-token calls,
    /// when a signer is configured); venues that sign every call ignore it.
    pub signable: bool,
    /// Whether the path is a listen-key endpoint (a 404/410 there means "retired").
    pub listen_key_path: bool,
    /// A JSON body, for venues whose create call takes one.
    pub body: Option<&'static str>,
}

/// The path of the listen-token endpoint (Binance margin only).
pub const LISTEN_TOKEN_PATH: &str = "/sapi/v1/userListenToken";

/// The route's fixed parameters, the symbol, and on keepalive and close the
/// key when the route names it in the query.
fn key_params(route: &Route, spec: &StreamSpec, key: Option<&str>) -> Vec<(&'static str, String)> {
    let mut params: Vec<(&'static str, String)> = route.params.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    if let Some(symbol) = &spec.symbol {
        params.push(("symbol", symbol.clone()));
    }
    if let (Some(key), true) = (key, route.key_param) {
        params.push(("listenKey", key.to_owned()));
    }
    params
}

/// The call that creates (or, for listen keys, re-fetches and extends) the credential.
pub fn obtain(route: &Route, spec: &StreamSpec, token_validity: Duration) -> Call {
    match spec.credential {
        CredentialKind::ListenKey | CredentialKind::RotatingKey => Call {
            method: Method::POST,
            path: route.path,
            params: key_params(route, spec, None),
            signable: false,
            listen_key_path: true,
            body: route.create_body,
        },
        CredentialKind::ListenToken => {
            let mut params = Vec::new();
            if let Some(symbol) = &spec.symbol {
                params.push(("symbol", symbol.clone()));
                params.push(("isIsolated", "true".to_owned()));
            }
            params.push(("validity", token_validity.as_millis().to_string()));
            Call {
                method: Method::POST,
                path: LISTEN_TOKEN_PATH,
                params,
                signable: true,
                listen_key_path: false,
                body: None,
            }
        }
    }
}

/// The keepalive call for a listen key; `None` for credentials that are re-minted instead.
pub fn keepalive(route: &Route, spec: &StreamSpec, key: &str) -> Option<Call> {
    spec.credential.extendable().then(|| Call {
        method: Method::PUT,
        path: route.path,
        params: key_params(route, spec, Some(key)),
        signable: false,
        listen_key_path: true,
        body: None,
    })
}

/// The call that closes a listen key; `None` for credentials that cannot be closed.
pub fn close(route: &Route, spec: &StreamSpec, key: &str) -> Option<Call> {
    spec.credential.extendable().then(|| Call {
        method: Method::DELETE,
        path: route.path,
        params: key_params(route, spec, Some(key)),
        signable: false,
        listen_key_path: true,
        body: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::Kind;
    use crate::exchange::venue;

    fn spec(kind: Kind, symbol: Option<&str>, cred: CredentialKind) -> StreamSpec {
        StreamSpec::new(kind, symbol.map(str::to_owned), cred)
    }

    fn r(kind: Kind) -> &'static Route {
        venue::BINANCE.route(kind).unwrap()
    }

    fn obtain(s: &StreamSpec, v: Duration) -> Call {
        super::obtain(r(s.kind), s, v)
    }

    fn keepalive(s: &StreamSpec, k: &str) -> Option<Call> {
        super::keepalive(r(s.kind), s, k)
    }

    fn close(s: &StreamSpec, k: &str) -> Option<Call> {
        super::close(r(s.kind), s, k)
    }

    #[test]
    fn isolated_listen_key_calls_carry_symbol_and_key() {
        let s = spec(Kind::IsolatedMargin, Some("BTCUSDT"), CredentialKind::ListenKey);
        let post = obtain(&s, Duration::from_secs(1));
        assert_eq!(
            (post.method, post.path),
            (Method::POST, "/sapi/v1/userDataStream/isolated")
        );
        assert_eq!(post.params, vec![("symbol", "BTCUSDT".to_owned())]);
        let put = keepalive(&s, "K").unwrap();
        assert_eq!(put.method, Method::PUT);
        assert_eq!(
            put.params,
            vec![("symbol", "BTCUSDT".to_owned()), ("listenKey", "K".to_owned())]
        );
        assert_eq!(close(&s, "K").unwrap().method, Method::DELETE);
    }

    #[test]
    fn futures_keepalive_has_no_params() {
        let s = spec(Kind::UsdmFutures, None, CredentialKind::ListenKey);
        let put = keepalive(&s, "K").unwrap();
        assert_eq!((put.path, put.params.len()), ("/fapi/v1/listenKey", 0));
    }

    #[test]
    fn margin_risk_keys_live_under_sapi_margin() {
        let s = spec(Kind::MarginRisk, None, CredentialKind::ListenKey);
        let post = obtain(&s, Duration::from_secs(1));
        assert_eq!(
            (post.method, post.path, post.params.len()),
            (Method::POST, "/sapi/v1/margin/listen-key", 0)
        );
        let put = keepalive(&s, "K").unwrap();
        assert_eq!(put.params, vec![("listenKey", "K".to_owned())]);
        assert!(put.listen_key_path);
        assert_eq!(close(&s, "K").unwrap().method, Method::DELETE);
        assert_eq!(r(Kind::MarginRisk).time_path, "/api/v3/time");
    }

    #[test]
    fn tokens_are_minted_with_validity() {
        let s = spec(Kind::IsolatedMargin, Some("ETHUSDT"), CredentialKind::ListenToken);
        let c = obtain(&s, Duration::from_secs(86_400));
        assert_eq!(c.path, LISTEN_TOKEN_PATH);
        assert!(c.signable);
        assert_eq!(
            c.params,
            vec![
                ("symbol", "ETHUSDT".to_owned()),
                ("isIsolated", "true".to_owned()),
                ("validity", "86400000".to_owned())
            ]
        );
        assert!(keepalive(&s, "T").is_none());
        let cross = spec(Kind::CrossMargin, None, CredentialKind::ListenToken);
        assert_eq!(
            obtain(&cross, Duration::from_secs(60)).params,
            vec![("validity", "60000".to_owned())]
        );
    }

    #[test]
    fn other_venues_calls_come_from_their_routes() {
        let toobit = venue::TOOBIT.route(Kind::UsdcFutures).unwrap();
        let s = StreamSpec::in_account("tb", "toobit", Kind::UsdcFutures, None, CredentialKind::ListenKey);
        let put = super::keepalive(toobit, &s, "K").unwrap();
        assert_eq!(put.path, "/api/v1/listenKey");
        assert_eq!(
            put.params,
            vec![("category", "USDC".to_owned()), ("listenKey", "K".to_owned())]
        );
        let woox = venue::WOOX.route(Kind::Account).unwrap();
        let s = StreamSpec::in_account("w", "woox", Kind::Account, None, CredentialKind::RotatingKey);
        let post = super::obtain(woox, &s, Duration::from_secs(1));
        assert_eq!(
            (post.method, post.path, post.body),
            (Method::POST, "/v3/account/listenKey", Some(r#"{"type":"WEBSOCKET"}"#))
        );
        assert!(
            super::keepalive(woox, &s, "K").is_none(),
            "rotating keys are never extended"
        );
        assert!(super::close(woox, &s, "K").is_none());
    }
}
