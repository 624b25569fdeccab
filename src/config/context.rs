//! What every section's resolution shares: the resolution context
//! (environment, base directory), the bound on durations, and the check of a
//! base URL. Each section's module reads these; none of them reads another.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::{Host, Url};

use super::{ConfigError, ENV_PREFIX, ENV_SEPARATOR};
use crate::exchange::dns::is_loopback_name;

/// The longest `request_timeout` accepted: a request still unanswered after
/// five minutes is lost, and a longer wait would outlast short-lived keys.
pub(crate) const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Refuses a duration above `max`, naming `key` and the bound.
pub(crate) fn at_most(key: &str, d: Duration, max: Duration, why: &str) -> Result<(), ConfigError> {
    if d > max {
        return Err(ConfigError::new(
            key,
            format!(
                "{} is more than {}: {why}",
                humantime::format_duration(d),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(())
}

/// What resolution needs besides the raw values: the environment and the
/// directory relative paths are resolved against.
pub(crate) struct Context<'a> {
    /// Stand-in for the process environment.
    pub env: &'a HashMap<String, String>,
    /// The config file's directory.
    pub base_dir: &'a Path,
}

impl Context<'_> {
    /// `p`, made absolute against the config file's directory.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// The exact text of the `LISTENKEYD__…` variable that sets `key`, if any.
    ///
    /// The `config` crate parses variables that look like numbers or booleans
    /// (`0123` becomes `123`, `TRUE` becomes `true`); secrets must reach the
    /// request byte for byte, so they are taken from here instead.
    pub fn env_override(&self, key: &str) -> Option<&str> {
        let var = env_var_name(key);
        self.env
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&var))
            .map(|(_, v)| v.as_str())
    }

    /// A non-empty environment variable.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// `binance.api_key` -> `LISTENKEYD__BINANCE__API_KEY`.
pub(crate) fn env_var_name(key: &str) -> String {
    format!("{ENV_PREFIX}{ENV_SEPARATOR}{}", key.replace('.', ENV_SEPARATOR)).to_ascii_uppercase()
}

/// An `http(s)` base URL; plain `http` only to a loopback host.
pub(crate) fn url(key: &str, text: &str) -> Result<Url, ConfigError> {
    let hint = scheme_hint(text.trim());
    let u = Url::parse(text.trim()).map_err(|e| ConfigError::new(key, format!("{text:?} is not a URL: {e}{hint}")))?;
    match u.scheme() {
        "https" => {}
        "http" if u.host().is_some_and(|h| is_loopback_host(&h)) => {}
        "http" => {
            return Err(ConfigError::new(
                key,
                "plain http:// is only allowed to a loopback host",
            ));
        }
        other => {
            return Err(ConfigError::new(
                key,
                format!("scheme {other:?} is not supported: use https://{hint}"),
            ));
        }
    }
    if u.host().is_none() {
        return Err(ConfigError::new(key, format!("{text:?} has no host")));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(ConfigError::new(key, "credentials in the URL are not supported"));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(ConfigError::new(
            key,
            format!("{text:?}: a base URL takes no query or fragment"),
        ));
    }
    Ok(u)
}

/// For a URL written without `scheme://`: ` (did you mean http://…?)` with
/// plain http for a loopback host and https otherwise; empty when a scheme is there.
fn scheme_hint(text: &str) -> String {
    if text.contains("://") || text.is_empty() {
        return String::new();
    }
    let host = text.split(['/', '?', '#']).next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let loopback = Url::parse(&format!("http://{host}/"))
        .ok()
        .and_then(|u| u.host().map(|h| is_loopback_host(&h)))
        .unwrap_or(false);
    let scheme = if loopback { "http" } else { "https" };
    format!(" (did you mean {scheme}://{text}?)")
}

/// 127.0.0.0/8, ::1, `localhost` and the names under it (RFC 6761; the
/// client connects to those on loopback addresses only, see `exchange::dns`).
fn is_loopback_host(h: &Host<&str>) -> bool {
    match h {
        Host::Domain(d) => is_loopback_name(d),
        Host::Ipv4(a) => a.is_loopback(),
        Host::Ipv6(a) => a.is_loopback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_scheme_gets_a_hint() {
        for (text, hint) in [
            ("127.0.0.1:9000", "did you mean http://127.0.0.1:9000?"),
            ("localhost:9000", "did you mean http://localhost:9000?"),
            ("fapi.binance.com", "did you mean https://fapi.binance.com?"),
            ("fapi.binance.com/x", "did you mean https://fapi.binance.com/x?"),
        ] {
            let e = url("binance.base_url", text).unwrap_err();
            assert!(e.message.contains(hint), "{text}: {}", e.message);
        }
        assert!(!url("k", "ftp://x").unwrap_err().message.contains("did you mean"));
    }

    #[test]
    fn loopback_urls() {
        for ok in [
            "https://fapi.binance.com",
            "http://127.0.0.1:9000",
            "http://127.8.9.10",
            "http://[::1]:1",
            "http://LOCALHOST",
            "http://sim.localhost:9000",
        ] {
            assert!(url("k", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1",
            "http://example.com",
            "http://localhost.example.com",
            "http://[::2]",
            "ws://127.0.0.1",
            "https://u:p@x.com",
            "/x",
        ] {
            assert!(url("k", bad).is_err(), "{bad}");
        }
    }
}
