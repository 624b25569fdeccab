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
//!
//! Every file that holds a secret (the three key files, a systemd credential,
//! and the config file itself when it holds `api_key` or `secret_key` inline)
//! has its mode checked: writable by every user is refused (anyone could swap
//! the key, and consumers would then follow streams of someone else's
//! account); readable by every user, or writable by the group, is accepted
//! with a warning naming the file and its mode. Readable by the group is
//! accepted silently: `root:listenkeyd 0640` and Kubernetes' `0440` with an
//! `fsGroup` are the usual ways to hand a key to a service user.

use std::path::{Path, PathBuf};

use super::raw::RawBinance;
use super::resolve::Context;
use super::{Binance, ConfigError};
use crate::secret::Secret;
use crate::sign::Signer;

/// The systemd credential holding the API key.
const API_KEY_CREDENTIAL: &str = "binance_api_key";
/// The systemd credential holding the HMAC secret.
const SECRET_KEY_CREDENTIAL: &str = "binance_secret_key";

/// The longest API key accepted, in bytes (Binance's are 64 characters).
const MAX_API_KEY_LEN: usize = 512;

/// Fills `binance.api_key` and `binance.signer`; returns the warnings about
/// file modes. `config_file` is the file the config was read from, if any.
pub(crate) fn resolve(
    raw: &RawBinance,
    ctx: &Context<'_>,
    config_file: Option<&Path>,
    binance: &mut Binance,
) -> Result<Vec<String>, ConfigError> {
    let mut warnings = Vec::new();
    binance.api_key = api_key(raw, ctx, &mut warnings)?;
    binance.signer = signer(raw, ctx, &mut warnings)?;
    if let Some(file) = config_file {
        for (key, inline) in [
            ("binance.api_key", &raw.api_key),
            ("binance.secret_key", &raw.secret_key),
        ] {
            // A key set from the environment is not in the file.
            if inline.is_some() && ctx.env_override(key).is_none() {
                warnings.extend(check_mode(key, file)?);
            }
        }
    }
    Ok(warnings)
}

fn api_key(raw: &RawBinance, ctx: &Context<'_>, warnings: &mut Vec<String>) -> Result<Secret, ConfigError> {
    let (key, secret) = if let Some(inline) = &raw.api_key {
        let text = ctx.env_override("binance.api_key").unwrap_or(inline);
        ("binance.api_key", Secret::new(text))
    } else if let Some(file) = &raw.api_key_file {
        (
            "binance.api_key_file",
            read_secret("binance.api_key_file", &ctx.path(file), warnings)?,
        )
    } else if let Some(path) = credential(ctx, API_KEY_CREDENTIAL) {
        ("binance.api_key", read_secret("binance.api_key", &path, warnings)?)
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
    if secret.expose().len() > MAX_API_KEY_LEN {
        return Err(ConfigError::new(
            key,
            format!(
                "the API key is {} bytes long (at most {MAX_API_KEY_LEN}; Binance's are 64)",
                secret.expose().len()
            ),
        ));
    }
    Ok(secret)
}

fn signer(raw: &RawBinance, ctx: &Context<'_>, warnings: &mut Vec<String>) -> Result<Option<Signer>, ConfigError> {
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
        warnings.extend(check_mode(key, &path)?);
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
            read_secret("binance.secret_key_file", &ctx.path(file), warnings)?,
        )
    } else if let Some(path) = credential(ctx, SECRET_KEY_CREDENTIAL) {
        (
            "binance.secret_key",
            read_secret("binance.secret_key", &path, warnings)?,
        )
    } else {
        return Ok(None);
    };
    Signer::hmac(secret)
        .map(Some)
        .map_err(|e| ConfigError::new(key, e.to_string()))
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

/// What is wrong with the mode of `path`, a file holding a secret: an error
/// when every user may write it, a warning when every user may read it or
/// its group may write it, nothing otherwise (or when it cannot be stat'ed:
/// reading it reports that).
pub(crate) fn check_mode(key: &str, path: &Path) -> Result<Option<String>, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(None);
    };
    let mode = meta.permissions().mode() & 0o7777;
    let file = path.display();
    if mode & 0o002 != 0 {
        return Err(ConfigError::new(
            key,
            format!(
                "{file} holds a secret and is writable by every user (mode {mode:04o}): anyone could replace it; chmod 0600 it"
            ),
        ));
    }
    let problem = if mode & 0o004 != 0 {
        "readable by every user"
    } else if mode & 0o020 != 0 {
        "writable by its group"
    } else {
        return Ok(None);
    };
    Ok(Some(format!(
        "{key}: {file} holds a secret and is {problem} (mode {mode:04o}); chmod 0600 it (0640 to share it with a group)"
    )))
}

/// A secret file's content, trimmed, refusing an empty file; its mode is checked first.
pub(crate) fn read_secret(key: &str, path: &Path, warnings: &mut Vec<String>) -> Result<Secret, ConfigError> {
    warnings.extend(check_mode(key, path)?);
    let secret = Secret::new(read(key, path)?);
    if secret.is_empty() {
        return Err(ConfigError::new(key, format!("{} is empty", path.display())));
    }
    Ok(secret)
}
