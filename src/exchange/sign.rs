//! Request signing for listen-token requests: the key that signs, built once
//! from the config (or by an embedding program) and used by the Binance client.
//!
//! Binance signs `totalParams` (the query string followed by the body, without
//! the signature) with HMAC-SHA256 (hex signature) or Ed25519 (base64
//! signature). Keys are loaded once, at config time, so a bad key is a
//! configuration error and never a runtime surprise.

use std::fmt;

use base64::Engine;
use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

/// Why a signing key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    /// The HMAC secret is empty (or only white space).
    #[error("the HMAC secret is empty")]
    EmptySecret,
    /// The text is not an Ed25519 private key in PKCS#8 PEM form.
    #[error("not an Ed25519 private key in PKCS#8 PEM form")]
    NotEd25519Pem,
}

/// A key that signs listen-token requests.
///
/// ```
/// use listenkeyd::config::Signer;
/// use listenkeyd::secret::Secret;
///
/// let hmac = Signer::hmac(Secret::new("my-secret-key")).unwrap();
/// assert_eq!(hmac.algorithm(), "hmac-sha256");
/// assert!(Signer::hmac(Secret::new("  ")).is_err());
/// assert!(Signer::ed25519_from_pem("not a key").is_err());
/// ```
#[derive(Clone)]
pub enum Signer {
    /// HMAC-SHA256 with the account's secret key.
    Hmac(Secret),
    /// Ed25519 with the account's private key.
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

impl Signer {
    /// An HMAC signer; refuses an empty secret.
    pub fn hmac(secret: Secret) -> Result<Signer, SignerError> {
        if secret.is_empty() {
            return Err(SignerError::EmptySecret);
        }
        Ok(Signer::Hmac(secret))
    }

    /// An Ed25519 signer from a PKCS#8 PEM private key.
    pub fn ed25519_from_pem(pem: &str) -> Result<Signer, SignerError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem.trim())
            .map(|k| Signer::Ed25519(Box::new(k)))
            .map_err(|_| SignerError::NotEd25519Pem)
    }

    /// The signature of `payload`, ready to be url-encoded into the query.
    pub fn sign(&self, payload: &str) -> String {
        match self {
            Signer::Hmac(secret) => {
                let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
                    .expect("HMAC accepts keys of any length");
                mac.update(payload.as_bytes());
                hex::encode(mac.finalize().into_bytes())
            }
            Signer::Ed25519(key) => {
                base64::engine::general_purpose::STANDARD.encode(key.sign(payload.as_bytes()).to_bytes())
            }
        }
    }

    /// `hmac` or `ed25519`, for check-config.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Signer::Hmac(_) => "hmac-sha256",
            Signer::Ed25519(_) => "ed25519",
        }
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({}, ********)", self.algorithm())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_binance_example() {
        // The example from Binance's "SIGNED endpoint security" documentation.
        let s = Signer::hmac(Secret::new(
            "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
        ))
        .unwrap();
        let payload = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        assert_eq!(
            s.sign(payload),
            "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        );
    }

    #[test]
    fn bad_pem_is_refused() {
        assert!(Signer::ed25519_from_pem("nope").is_err());
        assert!(Signer::hmac(Secret::new("  ")).is_err());
    }
}
