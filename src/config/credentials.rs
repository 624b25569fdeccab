//! The API key and the signing key: where they come from and how they are read.
//!
//! API key, first found wins: `binance.api_key` (from the file or from
//! `LISTENKEYD__BINANCE__API_KEY`, which overrides the file), then
//! `binance.api_key_file`, then `$CREDENTIALS_DIRECTORY/binance_api_key` (systemd
//! `LoadCredential=`). Signing key: an HMAC secret from `secret_key`,
//! `secret_key_file` or `$CREDENTIALS_DIRECTORY/binance_secret_key`, or an
//! Ed25519 key from `private_key_file`; configuring both kinds is an error.
//! Files are read once, here, so a missing or malformed key stops the daemon
//! before its first request.

use std::path::{Path, PathBuf};

use super::raw::RawBinance;
use super::resolve::Context;
use super::{Binance, ConfigError};
use crate::binance::sign::Signer;
use crate::secret::Secret;

/// The systemd credential holding the API key.
const API_KEY_CREDENTIAL: &str = "binance_api_key";
/// The systemd credential holding the HMAC secret.
const SECRET_KEY_CREDENTIAL: &str = "binance_secret_key";

/// Fills `binance.api_key` and `binance.signer`.
pub(crate) fn resolve(raw: &RawBinance, ctx: &Context<'_>, binance: &mut Binance) -> Result<(), ConfigError> {
    binance.api_key = api_key(raw, ctx)?;
    binance.signer = signer(raw, ctx)?;
    Ok(())
}

fn api_key(raw: &RawBinance, ctx: &Context<'_>) -> Result<Secret, ConfigError> {
    let (key, secret) = if let Some(inline) = &raw.api_key {
        let text = ctx.env_override("binance.api_key").unwrap_or(inline);
        ("binance.api_key", Secret::new(text))
    } else if let Some(file) = &raw.api_key_file {
        (
            "binance.api_key_file",
            read_secret("binance.api_key_file", &ctx.path(file))?,
        )
    } else if let Some(path) = credential(ctx, API_KEY_CREDENTIAL) {
        ("binance.api_key", read_secret("binance.api_key", &path)?)
    } else {
        return Err(ConfigError::new(
            "binance.api_key",
            "no API key: set api_key, api_key_file, LISTENKEYD__BINANCE__API_KEY or $CREDENTIALS_DIRECTORY/binance_api_key",
        ));
    };
    if secret.is_empty() {
        return Err(ConfigError::new(key, "the API key is empty"));
    }
    if !secret.expose().bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::new(
            key,
            "the API key contains spaces or control characters",
        ));
    }
    Ok(secret)
}

fn signer(raw: &RawBinance, ctx: &Context<'_>) -> Result<Option<Signer>, ConfigError> {
    let hmac_given = raw.secret_key.is_some() || raw.secret_key_file.is_some();
    if let Some(file) = &raw.private_key_file {
        if hmac_given {
            return Err(ConfigError::new(
                "binance.private_key_file",
                "set either an HMAC secret (secret_key, secret_key_file) or an Ed25519 private_key_file, not both",
            ));
        }
        let key = "binance.private_key_file";
        let path = ctx.path(file);
        let pem = read(key, &path)?;
        return Signer::ed25519_from_pem(&pem)
            .map(Some)
            .map_err(|e| ConfigError::new(key, format!("{}: {e}", path.display())));
    }
    let (key, secret) = if let Some(inline) = &raw.secret_key {
        let text = ctx.env_override("binance.secret_key").unwrap_or(inline);
        ("binance.secret_key", Secret::new(text))
    } else if let Some(file) = &raw.secret_key_file {
        (
            "binance.secret_key_file",
            read_secret("binance.secret_key_file", &ctx.path(file))?,
        )
    } else if let Some(path) = credential(ctx, SECRET_KEY_CREDENTIAL) {
        ("binance.secret_key", read_secret("binance.secret_key", &path)?)
    } else {
        return Ok(None);
    };
    Signer::hmac(secret).map(Some).map_err(|e| ConfigError::new(key, e))
}

/// `$CREDENTIALS_DIRECTORY/name`, when the variable is set and the file exists.
fn credential(ctx: &Context<'_>, name: &str) -> Option<PathBuf> {
    let path = Path::new(ctx.var("CREDENTIALS_DIRECTORY")?).join(name);
    path.exists().then_some(path)
}

/// A file's text, or an error naming `key` and the file.
fn read(key: &str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))
}

/// A secret file's content, trimmed, refusing an empty file.
fn read_secret(key: &str, path: &Path) -> Result<Secret, ConfigError> {
    let secret = Secret::new(read(key, path)?);
    if secret.is_empty() {
        return Err(ConfigError::new(key, format!("{} is empty", path.display())));
    }
    Ok(secret)
}
