//! `[[streams]]` and `[[hooks]]`: expanding stream entries into one
//! [`StreamSpec`] per stream id, and checking hooks against them.
//!
//! An isolated-margin entry becomes one stream per symbol; every other kind is
//! one stream per account. A stream id may appear only once across all entries.
//! Which kinds and credentials an entry may name comes from its account's
//! venue profile ([`crate::exchange::venue`]); the single-account form is Binance.

use std::collections::HashMap;

use super::context::Context;
use super::raw::{RawHook, RawStream};
use super::{ConfigError, Hook, HookAction, HookSignal, SIGNALS};
use crate::exchange::venue::{Route, Venue};
use crate::stream::{CredentialKind, Kind, StreamSpec, valid_symbol};

/// The longest a hook may be given to run.
const MAX_HOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Whose streams are being expanded: the single-account form's top-level
/// `[[streams]]`, or one `[[accounts]]` entry's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner<'a> {
    /// The key path of the entries (`streams`, `accounts[1].streams`).
    pub at: &'a str,
    /// The venue whose kinds are allowed.
    pub venue: &'static Venue,
    /// The account's name, which prefixes ids; `None` in the single-account form.
    pub account: Option<&'a str>,
}

/// Every configured stream of one owner, in config order. `seen` maps the
/// stream ids already defined (by any owner) to the key that defined them.
pub(crate) fn streams(
    raw: &[RawStream],
    owner: Owner<'_>,
    seen: &mut HashMap<String, String>,
) -> Result<Vec<StreamSpec>, ConfigError> {
    if raw.is_empty() {
        let example = match owner.account {
            None => "at least one [[streams]] entry is required, e.g. [[streams]] kind = \"usdm-futures\"".to_owned(),
            Some(_) => format!(
                "at least one [[accounts.streams]] entry is required (kinds of {}: {})",
                owner.venue.name,
                owner.venue.kinds()
            ),
        };
        return Err(ConfigError::new(owner.at, example));
    }
    let mut specs = Vec::new();
    for (i, entry) in raw.iter().enumerate() {
        let at = format!("{}[{i}]", owner.at);
        let route = route(&at, owner.venue, entry.kind.as_deref())?;
        let kind = route.kind;
        let credential = credential(&at, route, entry.credential.as_deref())?;
        let mut add = |key: String, symbol: Option<String>| {
            let spec = match owner.account {
                None => StreamSpec::new(kind, symbol, credential),
                Some(name) => StreamSpec::in_account(name, owner.venue.name, kind, symbol, credential),
            };
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

/// The venue's route for the kind, with a dedicated explanation for Binance's `spot`.
fn route(at: &str, venue: &'static Venue, text: Option<&str>) -> Result<&'static Route, ConfigError> {
    let key = format!("{at}.kind");
    let valid = venue.kinds();
    let Some(text) = text else {
        return Err(ConfigError::new(key, format!("required (one of {valid})")));
    };
    if venue.name == "binance" && text.trim().eq_ignore_ascii_case("spot") {
        return Err(ConfigError::new(
            key,
            "Binance retired spot listen keys on 2026-02-20; spot users subscribe on the WebSocket API with \
             userDataStream.subscribe.signature, so there is nothing to keep fresh",
        ));
    }
    match Kind::parse(text) {
        Some(kind) => venue
            .route(kind)
            .ok_or_else(|| ConfigError::new(key, format!("{} has no kind {text:?} (its kinds: {valid})", venue.name))),
        None => Err(ConfigError::new(
            key,
            format!("unknown kind {text:?} (valid kinds: {valid})"),
        )),
    }
}

/// The credential, defaulting per route; only routes with tokens offer a choice.
fn credential(at: &str, route: &Route, text: Option<&str>) -> Result<CredentialKind, ConfigError> {
    let key = format!("{at}.credential");
    let kind = route.kind;
    let credential = match text {
        None => return Ok(route.credential),
        Some("listen-key") => CredentialKind::ListenKey,
        Some("listen-token") => CredentialKind::ListenToken,
        Some("rotating-key") => CredentialKind::RotatingKey,
        Some(other) => {
            return Err(ConfigError::new(
                key,
                format!("unknown credential {other:?} (valid: listen-token, listen-key)"),
            ));
        }
    };
    if credential == route.credential {
        return Ok(credential);
    }
    if credential == CredentialKind::ListenToken && !route.tokens {
        return Err(ConfigError::new(
            key,
            format!("{kind} has no listen tokens; only isolated-margin and cross-margin do (use listen-key)"),
        ));
    }
    if credential == CredentialKind::ListenKey && route.tokens {
        return Ok(credential);
    }
    Err(ConfigError::new(
        key,
        format!("{kind} keeps a {} (the only credential it has)", route.credential),
    ))
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
    super::context::at_most(
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
    // Every id was found among the configured streams above.
    let ids = raw.streams.as_ref().map(|filter| {
        filter
            .iter()
            .filter_map(|id| streams.iter().find(|s| s.id.as_str() == id).map(|s| s.id.clone()))
            .collect()
    });
    Ok(Hook {
        action,
        timeout: raw.timeout,
        streams: ids,
    })
}

/// `SIGHUP`, `sighup` or `HUP`.
fn signal(key: &str, name: &str) -> Result<HookSignal, ConfigError> {
    HookSignal::parse(name).ok_or_else(|| {
        ConfigError::new(
            key,
            format!("{name:?} is not a supported signal (one of {})", SIGNALS.join(", ")),
        )
    })
}
