//! Masked secrets and credential fingerprints.
//!
//! An API key, an HMAC secret and a private key are wrapped in [`Secret`], whose
//! `Debug` and `Display` print `********`; the only way to the text is
//! [`Secret::expose`], which is called where a request is built and nowhere else.
//! Listen keys and tokens are bearer credentials: [`fingerprint`] gives the
//! short, irreversible name that logs and error messages use instead.

use std::fmt;

use sha2::{Digest, Sha256};

/// A string that must never be printed: `Debug` and `Display` mask it.
///
/// ```
/// use listenkeyd::secret::Secret;
///
/// let key = Secret::new("my-api-key\n");
/// assert_eq!(format!("{key} {key:?}"), "******** Secret(********)");
/// assert_eq!(key.expose(), "my-api-key");
/// assert_eq!(key.fingerprint().len(), 8);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `s`, trimming surrounding whitespace (files usually end in a newline).
    pub fn new(s: impl Into<String>) -> Secret {
        let s: String = s.into();
        Secret(s.trim().to_owned())
    }

    /// The secret text, for building a request header or signature.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret's [`fingerprint`]: enough to tell two API keys apart (the
    /// state file records which key minted a token), nothing to recover it by.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.0)
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(********)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// A short fingerprint of a listen key or token: the first 8 hex digits of its SHA-256.
///
/// Consumers can compare it with `listenkeyd get ID | tr -d '\n' | sha256sum | cut -c1-8`.
pub fn fingerprint(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    hex::encode(&digest[..4])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        let s = Secret::new("hunter2\n");
        assert_eq!(format!("{s} {s:?}"), "******** Secret(********)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn fingerprints_are_short_and_stable() {
        let fp = fingerprint("pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1");
        assert_eq!(fp.len(), 8);
        assert_eq!(
            fp,
            fingerprint("pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1")
        );
        assert!(!"pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1".contains(&fp));
    }
}
