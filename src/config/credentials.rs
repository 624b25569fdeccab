//! The API key and the signing key: where they come from and how they are read.
//!
//! API key, first found wins: `binance.api_key` (from the file or from
//! `LISTENKEYD__BINANCE__API_KEY`, which overrides the file), then
//! `binance.api_key_file`, then `$CREDENTIALS_DIRECTORY/binance_api_key` (systemd
//! `LoadCredential=`). Signing key: an HMAC secret from `secret_key`,
//! `secret_key_file` or `$CREDENTIALS_DIRECTORY/binance_secret_key`, or an
//! Ed25519 key from `private_key_file`; configuring both kinds is an error.
//! An `[[accounts]]` entry reads the same keys from its own table, and
//! `$CREDENTIALS_DIRECTORY/{name}_api_key` and `{name}_secret_key`.
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

use super::context::Context;
use super::raw::RawBinance;
use super::{Binance, ConfigError};
use crate::exchange::sign::Signer;
use crate::secret::Secret;

/// The systemd credential holding the API key.
const API_KEY_CREDENTIAL: &str = "binance_api_key";
/// The systemd credential holding the HMAC secret.
const SECRET_KEY_CREDENTIAL: &str = "binance_secret_key";

/// The longest API key accepted, in bytes (Binance's are 64 characters).
const MAX_API_KEY_LEN: usize = 512;

/// Where one account's credentials may come from.
pub(crate) struct Sources<'a> {
    /// The key path of the table (`binance`, `accounts[1]`).
    pub at: &'a str,
    /// The API key inline.
    pub api_key: &'a Option<String>,
    /// A file holding the API key.
    pub api_key_file: &'a Option<PathBuf>,
    /// The HMAC secret inline.
    pub secret_key: &'a Option<String>,
    /// A file holding the HMAC secret.
    pub secret_key_file: &'a Option<PathBuf>,
    /// A file holding an Ed25519 private key.
    pub private_key_file: &'a Option<PathBuf>,
    /// The systemd credentials looked for: the API key's and the secret's names.
    pub credentials: (String, String),
    /// What the "no API key" error lists.
    pub missing: String,
}

impl<'a> Sources<'a> {
    /// The single-account form's `[binance]`.
    pub fn binance(raw: &'a RawBinance) -> Sources<'a> {
        Sources {
            at: "binance",
            api_key: &raw.api_key,
            api_key_file: &raw.api_key_file,
            secret_key: &raw.secret_key,
            secret_key_file: &raw.secret_key_file,
            private_key_file: &raw.private_key_file,
            credentials: (API_KEY_CREDENTIAL.to_owned(), SECRET_KEY_CREDENTIAL.to_owned()),
            missing:
                "set api_key, api_key_file, LISTENKEYD__BINANCE__API_KEY or $CREDENTIALS_DIRECTORY/binance_api_key"
                    .to_owned(),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.at)
    }
}

/// Fills `binance.api_key` and `binance.signer`; returns the warnings about
/// file modes. `config_file` is the file the config was read from, if any.
pub(crate) fn resolve(
    raw: &RawBinance,
    ctx: &Context<'_>,
    config_file: Option<&Path>,
    binance: &mut Binance,
) -> Result<Vec<String>, ConfigError> {
    let mut warnings = Vec::new();
    let (api_key, signer) = read(&Sources::binance(raw), ctx, config_file, &mut warnings)?;
    binance.api_key = api_key;
    binance.signer = signer;
    Ok(warnings)
}

/// One account's API key and signing key, read and checked; file-mode
/// warnings go to `warnings`.
pub(crate) fn read(
    src: &Sources<'_>,
    ctx: &Context<'_>,
    config_file: Option<&Path>,
    warnings: &mut Vec<String>,
) -> Result<(Secret, Option<Signer>), ConfigError> {
    let api_key = api_key(src, ctx, warnings)?;
    let signer = signer(src, ctx, warnings)?;
    if let Some(file) = config_file {
        for (key, inline) in [
            (src.key("api_key"), src.api_key),
            (src.key("secret_key"), src.secret_key),
        ] {
            // A key set from the environment is not in the file.
            if inline.is_some() && ctx.env_override(&key).is_none() {
                warnings.extend(check_mode(&key, file)?);
            }
        }
    }
    Ok((api_key, signer))
}

fn api_key(src: &Sources<'_>, ctx: &Context<'_>, warnings: &mut Vec<String>) -> Result<Secret, ConfigError> {
    let (key, secret) = if let Some(inline) = src.api_key {
        let key = src.key("api_key");
        let text = ctx.env_override(&key).unwrap_or(inline);
        (key, Secret::new(text))
    } else if let Some(file) = src.api_key_file {
        let key = src.key("api_key_file");
        let secret = read_secret(&key, &ctx.path(file), warnings)?;
        (key, secret)
    } else if let Some(path) = credential(ctx, &src.credentials.0) {
        let key = src.key("api_key");
        let secret = read_secret(&key, &path, warnings)?;
        (key, secret)
    } else {
        return Err(ConfigError::new(
            src.key("api_key"),
            format!("no API key: {}", src.missing),
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

fn signer(src: &Sources<'_>, ctx: &Context<'_>, warnings: &mut Vec<String>) -> Result<Option<Signer>, ConfigError> {
    let hmac_given = src.secret_key.is_some() || src.secret_key_file.is_some();
    if let Some(file) = src.private_key_file {
        let key = src.key("private_key_file");
        if hmac_given {
            return Err(ConfigError::new(
                key,
                "set either an HMAC secret (secret_key, secret_key_file) or an Ed25519 private_key_file, not both",
            ));
        }
        let path = ctx.path(file);
        warnings.extend(check_mode(&key, &path)?);
        let pem = read_file(&key, &path)?;
        return Signer::ed25519_from_pem(&pem)
            .map(Some)
            .map_err(|e| ConfigError::new(key, format!("{}: {e}", path.display())));
    }
    let (key, secret) = if let Some(inline) = src.secret_key {
        let key = src.key("secret_key");
        let text = ctx.env_override(&key).unwrap_or(inline);
        (key, Secret::new(text))
    } else if let Some(file) = src.secret_key_file {
        let key = src.key("secret_key_file");
        let secret = read_secret(&key, &ctx.path(file), warnings)?;
        (key, secret)
    } else if let Some(path) = credential(ctx, &src.credentials.1) {
        let key = src.key("secret_key");
        let secret = read_secret(&key, &path, warnings)?;
        (key, secret)
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
fn read_file(key: &str, path: &Path) -> Result<String, ConfigError> {
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
    let secret = Secret::new(read_file(key, path)?);
    if secret.is_empty() {
        return Err(ConfigError::new(key, format!("{} is empty", path.display())));
    }
    Ok(secret)
}
