//! Who may subscribe by signature on the WebSocket API: the API key is
//! checked as on REST (`X-MBX-APIKEY`'s rules, [`auth::api_key`]) and the
//! signature over the sorted parameters ([`wsapi::signed_payloads`]) with
//! REST's timestamp, `recvWindow` and key rules ([`auth::check_signed`]): the
//! account's own secret when one is configured (`--account-secret`), else
//! the simulator's HMAC secret or Ed25519 public key. Without any key to check
//! against, a signature must be present but is taken as is.

use serde_json::{Map, Value};

use super::auth::{self, Verifier};
use super::http::{Reply, SimRequest};
use super::shared::Shared;
use super::wsapi::{self, ApiError};

/// A REST error answer as a WebSocket API error.
fn from_reply(r: &Reply) -> ApiError {
    let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    ApiError {
        status: r.status,
        code: v["code"].as_i64().unwrap_or(-1000),
        msg: v["msg"].as_str().unwrap_or("An unknown error occurred.").to_owned(),
    }
}

/// Checks `userDataStream.subscribe.signature`'s parameters; the account (API key) on success.
pub fn check_signature(sh: &Shared, params: &Map<String, Value>) -> Result<String, ApiError> {
    let api_key = wsapi::text_param(params, "apiKey")?;
    let probe = SimRequest::new("POST", "/ws-api/v3", None, String::new(), Some(api_key.clone()));
    let account = auth::api_key(&probe, &sh.api_keys).map_err(|r| from_reply(&r))?;
    wsapi::text_param(params, "timestamp")?;
    let (payloads, signature) = wsapi::signed_payloads(params);
    let Some(signature) = signature.filter(|s| !s.is_empty()) else {
        return Err(ApiError::mandatory("signature"));
    };
    let own;
    let verifier = match sh.account_secrets.iter().find(|(k, _)| *k == account) {
        Some((_, secret)) => {
            own = Verifier::new(Some(secret), None);
            &own
        }
        None => &sh.verifier,
    };
    let now = sh.server_now();
    let mut first_err = None;
    for payload in payloads {
        let query = format!("{payload}&signature={signature}");
        let req = SimRequest::new("POST", "/ws-api/v3", Some(&query), String::new(), None);
        let checked = if verifier.enabled() {
            auth::check_signed(verifier, &req, now)
        } else {
            auth::check_token_request(verifier, false, &req, now)
        };
        match checked {
            Ok(()) => return Ok(account),
            Err(r) => {
                first_err.get_or_insert(r);
            }
        }
    }
    Err(first_err.map_or_else(|| ApiError::mandatory("signature"), |r| from_reply(&r)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use serde_json::json;

    fn sim(secret: Option<&str>) -> Shared {
        Shared::new(
            std::sync::Arc::new(|| 1_800_000_000_000),
            0,
            60_000,
            Vec::new(),
            Verifier::new(secret, None),
            Vec::new(),
        )
    }

    fn sign(secret: &str, payload: &str) -> String {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(payload.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn signatures_are_checked_like_rest() {
        let sh = sim(Some("s3cret"));
        let ts = 1_800_000_000_000i64;
        let sig = sign("s3cret", &format!("apiKey=k&timestamp={ts}"));
        let ok = json!({"apiKey": "k", "timestamp": ts, "signature": sig});
        assert_eq!(check_signature(&sh, ok.as_object().unwrap()), Ok("k".to_owned()));
        let bad = json!({"apiKey": "k", "timestamp": ts, "signature": "00"});
        assert_eq!(check_signature(&sh, bad.as_object().unwrap()).unwrap_err().code, -1022);
        let old = json!({"apiKey": "k", "timestamp": ts - 10_000, "signature": sig});
        assert_eq!(check_signature(&sh, old.as_object().unwrap()).unwrap_err().code, -1021);
        let unsigned = json!({"apiKey": "k", "timestamp": ts});
        assert_eq!(
            check_signature(&sh, unsigned.as_object().unwrap()).unwrap_err().code,
            -1102
        );
        let no_key = json!({"timestamp": ts, "signature": sig});
        assert_eq!(
            check_signature(&sh, no_key.as_object().unwrap()).unwrap_err().code,
            -1102
        );
        let python = sign("s3cret", &format!("apiKey=k&returnRateLimits=False&timestamp={ts}"));
        let p = json!({"apiKey": "k", "timestamp": ts, "returnRateLimits": false, "signature": python});
        assert!(check_signature(&sh, p.as_object().unwrap()).is_ok());
        let unchecked = sim(None);
        assert!(check_signature(&unchecked, bad.as_object().unwrap()).is_ok());
    }
}
