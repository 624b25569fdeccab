//! Who may call: the `X-MBX-APIKEY` check every exchange endpoint makes, and
//! the signature and timestamp check of the listen-token endpoint.
//!
//! The signed payload is Binance's `totalParams`: the raw query string
//! followed directly by the raw body, each without its `signature=` pair.
//! HMAC signatures are hex; Ed25519 signatures are base64 (url-encoded).

use base64::Engine;
use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::http::{Reply, SimRequest};

/// The default `recvWindow`, ms.
const DEFAULT_RECV_WINDOW: i64 = 5_000;
/// The largest `recvWindow` Binance accepts, ms.
const MAX_RECV_WINDOW: i64 = 60_000;

/// The keys signatures are checked against; with neither, requests need no
/// signature. `Debug` says which keys are set, never the HMAC secret.
#[derive(Default)]
pub struct Verifier {
    /// The HMAC secret, trimmed (files usually end in a newline).
    pub hmac: Option<String>,
    /// The Ed25519 public key; `Some(None)` when one was configured but could not be read.
    pub ed25519: Option<Option<VerifyingKey>>,
}

impl Verifier {
    /// A verifier from the configured secret and public key PEM.
    pub fn new(hmac_secret: Option<&str>, ed25519_public_pem: Option<&str>) -> Verifier {
        Verifier {
            hmac: hmac_secret.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned),
            ed25519: ed25519_public_pem.map(|pem| parse_public_pem(pem).ok()),
        }
    }

    /// Whether signed requests are required.
    pub fn enabled(&self) -> bool {
        self.hmac.is_some() || self.ed25519.is_some()
    }

    /// Whether `signature` (as sent, still url-encoded) signs `payload` under a configured key.
    pub fn verify(&self, payload: &str, signature: &str) -> bool {
        let sig = percent_encoding::percent_decode_str(signature).decode_utf8_lossy();
        let hmac_ok = self.hmac.as_ref().is_some_and(|secret| {
            let Ok(bytes) = hex::decode(sig.as_bytes()) else {
                return false;
            };
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
            mac.update(payload.as_bytes());
            mac.verify_slice(&bytes).is_ok()
        });
        hmac_ok
            || self.ed25519.as_ref().and_then(Option::as_ref).is_some_and(|key| {
                let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(sig.as_bytes()) else {
                    return false;
                };
                let Ok(sig) = Signature::from_slice(&bytes) else {
                    return false;
                };
                key.verify(payload.as_bytes(), &sig).is_ok()
            })
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("hmac", &self.hmac.as_ref().map(|_| "********"))
            .field("ed25519", &self.ed25519)
            .finish()
    }
}

/// Reads an Ed25519 public key in SPKI PEM form.
pub fn parse_public_pem(pem: &str) -> Result<VerifyingKey, String> {
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|_| "not an Ed25519 public key in PEM (SPKI) form".into())
}

/// The API key of the request, or Binance's -2014/-2015 answer.
pub fn api_key(req: &SimRequest, accepted: &[String]) -> Result<String, Reply> {
    let key = req.api_key.as_deref().map(str::trim).unwrap_or("");
    if key.is_empty() {
        return Err(Reply::error(401, -2014, "API-key format invalid."));
    }
    if !accepted.is_empty() && !accepted.iter().any(|k| k == key) {
        return Err(Reply::error(
            401,
            -2015,
            "Invalid API-key, IP, or permissions for action.",
        ));
    }
    Ok(key.to_owned())
}

/// `s` without its `signature=` pair, and the raw signature value if there was one.
fn split_signature(s: &str) -> (String, Option<String>) {
    let mut sig = None;
    let kept: Vec<&str> = s
        .split('&')
        .filter(|pair| match pair.strip_prefix("signature=") {
            Some(v) => {
                sig = Some(v.to_owned());
                false
            }
            None => true,
        })
        .collect();
    (kept.join("&"), sig)
}

/// Whether the request carries a `signature` (in the query or a form body).
pub fn has_signature(req: &SimRequest) -> bool {
    req.param("signature").is_some()
}

/// The listen-token endpoint's rule, as Binance applies it today: a request
/// may come signed or unsigned (clients disagree on whether it must be
/// signed); a signature that is present is checked against the configured
/// key, and `require` demands one. Without a configured key a signature
/// cannot be checked and is taken as is.
pub fn check_token_request(v: &Verifier, require: bool, req: &SimRequest, now: i64) -> Result<(), Reply> {
    match (has_signature(req), v.enabled()) {
        (false, _) if require => Err(Reply::mandatory("signature")),
        (true, true) => check_signed(v, req, now),
        _ => Ok(()),
    }
}

/// Checks the signature and timestamp of a signed request against the server time `now`.
pub fn check_signed(v: &Verifier, req: &SimRequest, now: i64) -> Result<(), Reply> {
    let bad_signature = || Reply::error(400, -1022, "Signature for this request is not valid.");
    let (query, query_sig) = split_signature(&req.query);
    let body_is_form = !req.body.trim_start().starts_with(['{', '[']);
    let (body, body_sig) = if body_is_form {
        split_signature(&req.body)
    } else {
        (req.body.clone(), None)
    };
    let Some(signature) = query_sig.or(body_sig) else {
        return Err(bad_signature());
    };

    let timestamp: i64 = req
        .param("timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| Reply::mandatory("timestamp"))?;
    let window = match req.param("recvWindow") {
        None => DEFAULT_RECV_WINDOW,
        Some(w) => w.parse().map_err(|_| Reply::mandatory("recvWindow"))?,
    };
    if !(0..=MAX_RECV_WINDOW).contains(&window) {
        return Err(Reply::error(400, -1131, "recvWindow must be less than 60000"));
    }
    // Saturating: the timestamp is the client's, and may be i64::MIN.
    if timestamp > now.saturating_add(1_000) || now.saturating_sub(timestamp) > window {
        return Err(Reply::error(
            400,
            -1021,
            "Timestamp for this request is outside of the recvWindow.",
        ));
    }
    if !v.verify(&format!("{query}{body}"), &signature) {
        return Err(bad_signature());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `payload`'s HMAC-SHA256 under `secret`, in hex, as a client signs it.
    fn hmac_hex(secret: &str, payload: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(payload.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn signed(query: &str, secret: &str) -> String {
        format!("{query}&signature={}", hmac_hex(secret, query))
    }

    fn req(query: &str) -> SimRequest {
        SimRequest::new(
            "POST",
            "/sapi/v1/userListenToken",
            Some(query),
            String::new(),
            Some("k".into()),
        )
    }

    #[test]
    fn hmac_signatures() {
        let v = Verifier::new(Some("s3cret"), None);
        let now = 1_700_000_000_000;
        let ok = signed(&format!("validity=60000&timestamp={now}"), "s3cret");
        assert_eq!(check_signed(&v, &req(&ok), now), Ok(()));
        let wrong = signed(&format!("validity=60000&timestamp={now}"), "other");
        assert_eq!(
            check_signed(&v, &req(&wrong), now).unwrap_err().body,
            r#"{"code":-1022,"msg":"Signature for this request is not valid."}"#
        );
        let unsigned = format!("validity=60000&timestamp={now}");
        assert!(
            check_signed(&v, &req(&unsigned), now)
                .unwrap_err()
                .body
                .contains("-1022")
        );
    }

    #[test]
    fn token_requests_may_be_signed_or_not() {
        let v = Verifier::new(Some("s3cret"), None);
        let now = 1_700_000_000_000;
        let unsigned = req("validity=60000");
        assert_eq!(check_token_request(&v, false, &unsigned, now), Ok(()));
        assert!(
            check_token_request(&v, true, &unsigned, now)
                .unwrap_err()
                .body
                .contains("'signature'")
        );
        let ok = req(&signed(&format!("validity=60000&timestamp={now}"), "s3cret"));
        assert_eq!(check_token_request(&v, true, &ok, now), Ok(()));
        let wrong = req(&signed(&format!("validity=60000&timestamp={now}"), "other"));
        assert!(
            check_token_request(&v, false, &wrong, now)
                .unwrap_err()
                .body
                .contains("-1022"),
            "a signature that is present is checked"
        );
        let unchecked = Verifier::new(None, None);
        assert_eq!(check_token_request(&unchecked, false, &wrong, now), Ok(()));
    }

    #[test]
    fn timestamps_outside_the_window() {
        let v = Verifier::new(Some("s3cret"), None);
        let now = 1_700_000_000_000;
        let late = signed(&format!("timestamp={}", now - 5_001), "s3cret");
        assert!(check_signed(&v, &req(&late), now).unwrap_err().body.contains("-1021"));
        let early = signed(&format!("timestamp={}", now + 1_001), "s3cret");
        assert!(check_signed(&v, &req(&early), now).unwrap_err().body.contains("-1021"));
        for absurd in [i64::MIN, i64::MAX] {
            let r = signed(&format!("timestamp={absurd}"), "s3cret");
            assert!(check_signed(&v, &req(&r), now).unwrap_err().body.contains("-1021"));
        }
        let wide = signed(&format!("timestamp={}&recvWindow=10000", now - 9_000), "s3cret");
        assert_eq!(check_signed(&v, &req(&wide), now), Ok(()));
        let too_wide = signed(&format!("timestamp={now}&recvWindow=60001"), "s3cret");
        assert!(
            check_signed(&v, &req(&too_wide), now)
                .unwrap_err()
                .body
                .contains("-1131")
        );
        let none = signed("validity=1", "s3cret");
        assert!(check_signed(&v, &req(&none), now).unwrap_err().body.contains("-1102"));
    }

    /// Found with the `sim` fuzz target: a timestamp of i64::MIN (or a clock
    /// skewed to the end of time) overflowed the window check.
    #[test]
    fn extreme_timestamps_are_outside_the_window() {
        let v = Verifier::new(Some("s3cret"), None);
        for (ts, now) in [
            (i64::MIN, 1_700_000_000_000),
            (i64::MAX, 1_700_000_000_000),
            (0, i64::MAX),
            (0, i64::MIN),
        ] {
            let q = signed(&format!("timestamp={ts}"), "s3cret");
            assert!(
                check_signed(&v, &req(&q), now).unwrap_err().body.contains("-1021"),
                "{ts} at {now}"
            );
        }
    }

    #[test]
    fn body_params_are_part_of_the_payload() {
        let v = Verifier::new(Some("s3cret"), None);
        let now = 1_700_000_000_000;
        let body = format!("timestamp={now}");
        let sig = hmac_hex("s3cret", &format!("validity=60000{body}"));
        let r = SimRequest::new(
            "POST",
            "/x",
            Some(&format!("validity=60000&signature={sig}")),
            body,
            None,
        );
        assert_eq!(check_signed(&v, &r, now), Ok(()));
    }

    #[test]
    fn ed25519_signatures() {
        use ed25519_dalek::pkcs8::EncodePublicKey;
        use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let pem = sk.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
        let v = Verifier::new(None, Some(&pem));
        assert!(v.enabled());
        let now = 1_700_000_000_000;
        let query = format!("timestamp={now}");
        let sig = base64::engine::general_purpose::STANDARD
            .encode(ed25519_dalek::Signer::sign(&sk, query.as_bytes()).to_bytes());
        let enc = percent_encoding::utf8_percent_encode(&sig, percent_encoding::NON_ALPHANUMERIC).to_string();
        assert_eq!(check_signed(&v, &req(&format!("{query}&signature={enc}")), now), Ok(()));
        assert!(check_signed(&v, &req(&format!("timestamp={}&signature={enc}", now + 1)), now).is_err());
        assert!(!Verifier::new(None, Some("junk")).verify("x", "y"));
    }

    #[test]
    fn api_keys() {
        assert!(
            api_key(&SimRequest::new("GET", "/", None, String::new(), None), &[])
                .unwrap_err()
                .body
                .contains("-2014")
        );
        let r = SimRequest::new("GET", "/", None, String::new(), Some("abc".into()));
        assert_eq!(api_key(&r, &[]), Ok("abc".to_owned()));
        assert!(api_key(&r, &["xyz".to_owned()]).unwrap_err().body.contains("-2015"));
    }
}
