//! Where each kind of stream lives on Binance: method, path and parameters of
//! the calls that create, keep alive and close its credential.
//!
//! This is the table of `binance-api.md` in code; nothing else in the crate
//! spells an endpoint path.

use std::time::Duration;

use reqwest::Method;

use crate::stream::{CredentialKind, Kind, StreamSpec};

/// One request to make: everything but the host, the API key and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// HTTP method.
    pub method: Method,
    /// Path below the family's base URL.
    pub path: &'static str,
    /// Query parameters, in order.
    pub params: Vec<(&'static str, String)>,
    /// Whether the call is signed (`timestamp` and `signature`) when a signer is configured.
    pub signable: bool,
    /// Whether the path is a listen-key endpoint (a 404/410 there means "retired").
    pub listen_key_path: bool,
}

/// The listen-key path of `kind`.
fn listen_key_path(kind: Kind) -> &'static str {
    match kind {
        Kind::IsolatedMargin => "/sapi/v1/userDataStream/isolated",
        Kind::CrossMargin => "/sapi/v1/userDataStream",
        Kind::UsdmFutures => "/fapi/v1/listenKey",
        Kind::CoinmFutures => "/dapi/v1/listenKey",
        Kind::PortfolioMargin => "/papi/v1/listenKey",
        Kind::Options => "/eapi/v1/listenKey",
        Kind::MarginRisk => "/sapi/v1/margin/listen-key",
    }
}

/// The path of the listen-token endpoint (margin only).
pub const LISTEN_TOKEN_PATH: &str = "/sapi/v1/userListenToken";

/// The server-time path of `kind`'s family.
pub fn time_path(kind: Kind) -> &'static str {
    match kind {
        Kind::IsolatedMargin | Kind::CrossMargin | Kind::MarginRisk => "/api/v3/time",
        Kind::UsdmFutures => "/fapi/v1/time",
        Kind::CoinmFutures => "/dapi/v1/time",
        Kind::PortfolioMargin => "/papi/v1/time",
        Kind::Options => "/eapi/v1/time",
    }
}

/// Listen-key calls of the sapi endpoints carry the key (as Binance's margin
/// SDK sends it to the risk stream too); futures ones do not.
fn key_params(spec: &StreamSpec, key: Option<&str>) -> Vec<(&'static str, String)> {
    let mut params = Vec::new();
    if let Some(symbol) = &spec.symbol {
        params.push(("symbol", symbol.clone()));
    }
    if let (Some(key), Kind::IsolatedMargin | Kind::CrossMargin | Kind::MarginRisk) = (key, spec.kind) {
        params.push(("listenKey", key.to_owned()));
    }
    params
}

/// The call that creates (or, for listen keys, re-fetches and extends) the credential.
pub fn obtain(spec: &StreamSpec, token_validity: Duration) -> Call {
    match spec.credential {
        CredentialKind::ListenKey => Call {
            method: Method::POST,
            path: listen_key_path(spec.kind),
            params: key_params(spec, None),
            signable: false,
            listen_key_path: true,
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
            }
        }
    }
}

/// The keepalive call for a listen key; `None` for tokens, which are re-minted instead.
pub fn keepalive(spec: &StreamSpec, key: &str) -> Option<Call> {
    (spec.credential == CredentialKind::ListenKey).then(|| Call {
        method: Method::PUT,
        path: listen_key_path(spec.kind),
        params: key_params(spec, Some(key)),
        signable: false,
        listen_key_path: true,
    })
}

/// The call that closes a listen key; `None` for tokens, which cannot be closed.
pub fn close(spec: &StreamSpec, key: &str) -> Option<Call> {
    (spec.credential == CredentialKind::ListenKey).then(|| Call {
        method: Method::DELETE,
        path: listen_key_path(spec.kind),
        params: key_params(spec, Some(key)),
        signable: false,
        listen_key_path: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: Kind, symbol: Option<&str>, cred: CredentialKind) -> StreamSpec {
        StreamSpec::new(kind, symbol.map(str::to_owned), cred)
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
        assert_eq!(time_path(Kind::MarginRisk), "/api/v3/time");
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
}
