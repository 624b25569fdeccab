//! `[[streams]]` and `[[hooks]]`: expanding stream entries into one
//! [`StreamSpec`] per stream id, and checking hooks against them.
//!
//! An isolated-margin entry becomes one stream per symbol; every other kind is
//! one stream per account. A stream id may appear only once across all entries.

use std::collections::HashMap;

use super::raw::{RawHook, RawStream};
use super::resolve::Context;
use super::{ConfigError, Hook, HookAction, SIGNALS};
use crate::stream::{CredentialKind, Kind, StreamSpec, valid_symbol};

/// The longest a hook may be given to run.
const MAX_HOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Every configured stream, in config order.
pub(crate) fn streams(raw: &[RawStream]) -> Result<Vec<StreamSpec>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::new(
            "streams",
            "at least one [[streams]] entry is required, e.g. [[streams]] kind = \"usdm-futures\"",
        ));
    }
    let mut specs = Vec::new();
    // Stream id -> the key that defined it, to name both in a duplicate error.
    let mut seen: HashMap<String, String> = HashMap::new();
    for (i, entry) in raw.iter().enumerate() {
        let at = format!("streams[{i}]");
        let kind = kind(&at, entry.kind.as_deref())?;
        let credential = credential(&at, kind, entry.credential.as_deref())?;
        let mut add = |key: String, symbol: Option<String>| {
            let spec = StreamSpec::new(kind, symbol, credential);
            if let Some(first) = seen.get(spec.id.as_str()) {
                return Err(ConfigError::new(
                    key,
                    format!(
                        "duplicate stream id {:?} (already defined at {first})",
                        spec.id.as_str()
                    ),
                ));
            }
            seen.insert(spec.id.as_str().to_owned(), key);
            specs.push(spec);
            Ok(())
        };
        match (&entry.symbols, kind.per_symbol()) {
            (None, true) => {
                return Err(ConfigError::new(
                    format!("{at}.symbols"),
                    "isolated-margin needs symbols, e.g. symbols = [\"BTCUSDT\"]",
                ));
            }
            (Some(s), true) if s.is_empty() => {
                return Err(ConfigError::new(
                    format!("{at}.symbols"),
                    "must list at least one symbol",
                ));
            }
            (Some(symbols), true) => {
                for (j, symbol) in symbols.iter().enumerate() {
                    let key = format!("{at}.symbols[{j}]");
                    if !valid_symbol(symbol) {
                        return Err(ConfigError::new(
                            key,
                            format!("{symbol:?} is not a valid symbol (upper-case [A-Z0-9]{{5,20}})"),
                        ));
                    }
                    add(key, Some(symbol.clone()))?;
                }
            }
            (Some(_), false) => {
                return Err(ConfigError::new(
                    format!("{at}.symbols"),
                    format!("only isolated-margin streams take symbols; {kind} is one stream per account"),
                ));
            }
            (None, false) => add(format!("{at}.kind"), None)?,
        }
    }
    Ok(specs)
}

/// The kind, with a dedicated explanation for `spot`.
fn kind(at: &str, text: Option<&str>) -> Result<Kind, ConfigError> {
    let key = format!("{at}.kind");
    let valid = Kind::ALL.map(Kind::as_str).join(", ");
    let Some(text) = text else {
        return Err(ConfigError::new(key, format!("required (one of {valid})")));
    };
    if text.trim().eq_ignore_ascii_case("spot") {
        return Err(ConfigError::new(
            key,
            "Binance retired spot listen keys on 2026-02-20; spot users subscribe on the WebSocket API with \
             userDataStream.subscribe.signature, so there is nothing to keep fresh",
        ));
    }
    Kind::parse(text).ok_or_else(|| ConfigError::new(key, format!("unknown kind {text:?} (valid kinds: {valid})")))
}

/// The credential, defaulting per kind; futures and options have only listen keys.
fn credential(at: &str, kind: Kind, text: Option<&str>) -> Result<CredentialKind, ConfigError> {
    let key = format!("{at}.credential");
    let credential = match text {
        None => return Ok(kind.default_credential()),
        Some("listen-key") => CredentialKind::ListenKey,
        Some("listen-token") => CredentialKind::ListenToken,
        Some(other) => {
            return Err(ConfigError::new(
                key,
                format!("unknown credential {other:?} (valid: listen-token, listen-key)"),
            ));
        }
    };
    if credential == CredentialKind::ListenToken && !kind.supports_token() {
        return Err(ConfigError::new(
            key,
            format!("{kind} has no listen tokens; only isolated-margin and cross-margin do (use listen-key)"),
        ));
    }
    Ok(credential)
}

/// Every hook, checked against the configured stream ids.
pub(crate) fn hooks(raw: &[RawHook], streams: &[StreamSpec], ctx: &Context<'_>) -> Result<Vec<Hook>, ConfigError> {
    raw.iter()
        .enumerate()
        .map(|(i, h)| hook(&format!("hooks[{i}]"), h, streams, ctx))
        .collect()
}

fn hook(at: &str, raw: &RawHook, streams: &[StreamSpec], ctx: &Context<'_>) -> Result<Hook, ConfigError> {
    let action = match (&raw.exec, &raw.signal) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                at,
                "set either exec or signal (with pid_file), not both",
            ));
        }
        (None, None) => {
            return Err(ConfigError::new(
                at,
                "set exec = [\"program\", …] or signal with pid_file",
            ));
        }
        (Some(argv), None) => {
            if argv.is_empty() || argv[0].trim().is_empty() {
                return Err(ConfigError::new(
                    format!("{at}.exec"),
                    "must name a program: exec = [\"program\", …]",
                ));
            }
            if raw.pid_file.is_some() {
                return Err(ConfigError::new(
                    format!("{at}.pid_file"),
                    "only goes with signal, not exec",
                ));
            }
            HookAction::Exec(argv.clone())
        }
        (None, Some(name)) => {
            let signal = signal(&format!("{at}.signal"), name)?;
            let pid_file = match &raw.pid_file {
                Some(p) if !p.as_os_str().is_empty() => ctx.path(p),
                _ => {
                    return Err(ConfigError::new(format!("{at}.pid_file"), "is required with signal"));
                }
            };
            HookAction::Signal { signal, pid_file }
        }
    };
    if raw.timeout.is_zero() {
        return Err(ConfigError::new(format!("{at}.timeout"), "must be greater than zero"));
    }
    super::resolve::at_most(
        &format!("{at}.timeout"),
        raw.timeout,
        MAX_HOOK_TIMEOUT,
        "a hook that runs longer is stuck",
    )?;
    if let Some(filter) = &raw.streams {
        for (j, id) in filter.iter().enumerate() {
            if !streams.iter().any(|s| s.id.as_str() == id) {
                return Err(ConfigError::new(
                    format!("{at}.streams[{j}]"),
                    format!("{id:?} is not a configured stream id"),
                ));
            }
        }
    }
    Ok(Hook {
        action,
        timeout: raw.timeout,
        streams: raw.streams.clone(),
    })
}

/// `SIGHUP`, `sighup` or `HUP`, normalized to `SIGHUP`.
fn signal(key: &str, name: &str) -> Result<String, ConfigError> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    if SIGNALS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(ConfigError::new(
            key,
            format!("{name:?} is not a supported signal (one of {})", SIGNALS.join(", ")),
        ))
    }
}
