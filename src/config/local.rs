//! The local side of the config: the state file (`[state]`), the HTTP API
//! address (`[api]`) and logging (`[log]`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use super::raw::{RawApi, RawLog, RawState};
use super::resolve::Context;
use super::{Api, ApiListen, ConfigError, DEFAULT_STATE_FILE, Log, LogFormat, StateSettings};

/// The state file (explicit, else `$STATE_DIRECTORY/keys.json`, else the
/// default) and its mode.
pub(crate) fn state(raw: &RawState, ctx: &Context<'_>) -> Result<StateSettings, ConfigError> {
    let file = match &raw.file {
        Some(f) if f.as_os_str().is_empty() => {
            return Err(ConfigError::new("state.file", "must not be empty"));
        }
        Some(f) => ctx.path(f),
        None => match ctx
            .var("STATE_DIRECTORY")
            .and_then(|d| d.split(':').next())
            .filter(|d| !d.is_empty())
        {
            Some(dir) => ctx.path(&Path::new(dir).join("keys.json")),
            None => PathBuf::from(DEFAULT_STATE_FILE),
        },
    };
    Ok(StateSettings {
        file,
        mode: mode(&raw.mode)?,
    })
}

/// An octal mode such as `"0600"`: owner read and write, nothing for others.
fn mode(text: &str) -> Result<u32, ConfigError> {
    let key = "state.mode";
    let digits = text.trim();
    let digits = digits.strip_prefix("0o").unwrap_or(digits);
    let mode = match u32::from_str_radix(digits, 8) {
        Ok(m) if !digits.is_empty() && m <= 0o777 => m,
        _ => {
            return Err(ConfigError::new(
                key,
                format!("{text:?} is not an octal file mode such as \"0600\""),
            ));
        }
    };
    if mode & 0o007 != 0 {
        return Err(ConfigError::new(
            key,
            format!("{text:?} gives other users access to bearer credentials; use \"0600\" (or \"0640\" with a group)"),
        ));
    }
    if mode & 0o600 != 0o600 {
        return Err(ConfigError::new(
            key,
            format!("{text:?} must let the owner read and write the file"),
        ));
    }
    Ok(mode)
}

/// `""` (off), `unix:/path` or `host:port`; a non-loopback address needs `allow_remote`.
pub(crate) fn api(raw: &RawApi, ctx: &Context<'_>) -> Result<Api, ConfigError> {
    let key = "api.listen";
    let text = raw.listen.trim();
    let listen = if text.is_empty() {
        None
    } else if let Some(path) = text.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(ConfigError::new(
                key,
                "\"unix:\" needs a socket path, e.g. \"unix:/run/listenkeyd/api.sock\"",
            ));
        }
        Some(ApiListen::Unix(ctx.path(Path::new(path))))
    } else {
        let addr = socket_addr(text).ok_or_else(|| {
            ConfigError::new(
                key,
                format!("{text:?} is not an address: use \"127.0.0.1:9750\", \"unix:/path/api.sock\" or \"\" (off)"),
            )
        })?;
        if !addr.ip().is_loopback() && !raw.allow_remote {
            return Err(ConfigError::new(
                key,
                format!("{addr} is not a loopback address; set api.allow_remote = true to expose the API"),
            ));
        }
        Some(ApiListen::Tcp(addr))
    };
    Ok(Api {
        listen,
        allow_remote: raw.allow_remote,
    })
}

/// A socket address; `localhost:PORT` means 127.0.0.1.
fn socket_addr(text: &str) -> Option<SocketAddr> {
    if let Ok(a) = text.parse() {
        return Some(a);
    }
    let (host, port) = text.rsplit_once(':')?;
    let port = port.parse().ok()?;
    match host {
        "localhost" => Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)),
        "[::1]" => Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port)),
        _ => None,
    }
}

/// Format and level; the level is any `tracing_subscriber::EnvFilter` directive.
pub(crate) fn log(raw: &RawLog) -> Result<Log, ConfigError> {
    let format = match raw.format.trim() {
        "auto" => LogFormat::Auto,
        "pretty" => LogFormat::Pretty,
        "json" => LogFormat::Json,
        "journal" => LogFormat::Journal,
        other => {
            return Err(ConfigError::new(
                "log.format",
                format!("{other:?} is not one of auto, pretty, json, journal"),
            ));
        }
    };
    let level = raw.level.trim();
    if level.is_empty() {
        return Err(ConfigError::new("log.level", "must not be empty (e.g. \"info\")"));
    }
    // A bare word is a target to EnvFilter, so "inf" would silently mean
    // "only the target inf": bare words must be levels.
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    for part in level.split(',').map(str::trim) {
        if !part.contains(['=', '[']) && !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(part)) {
            return Err(ConfigError::new(
                "log.level",
                format!("{part:?} is not a level (trace, debug, info, warn, error, off) nor a target=level directive"),
            ));
        }
    }
    tracing_subscriber::EnvFilter::builder().parse(level).map_err(|e| {
        ConfigError::new(
            "log.level",
            format!("{level:?} is not a level (trace, debug, info, warn, error) or a tracing filter directive: {e}"),
        )
    })?;
    Ok(Log {
        format,
        level: level.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(mode("0600").unwrap(), 0o600);
        assert_eq!(mode("600").unwrap(), 0o600);
        assert_eq!(mode("0o640").unwrap(), 0o640);
        for bad in ["", "0", "0644", "0602", "0400", "0800", "01600", "rw", "-600"] {
            assert!(mode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn api_addresses() {
        assert_eq!(socket_addr("localhost:9750"), Some("127.0.0.1:9750".parse().unwrap()));
        assert_eq!(socket_addr("[::1]:9750"), Some("[::1]:9750".parse().unwrap()));
        assert_eq!(socket_addr("example.com:9750"), None);
        assert_eq!(socket_addr("9750"), None);
    }
}
