//! The local side of the config: the state file (`[state]`), the HTTP API
//! (`[api]`: its address and bearer token) and logging (`[log]`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use super::context::Context;
use super::raw::{RawApi, RawLog, RawState};
use super::{Api, ApiLimits, ApiListen, ConfigError, DEFAULT_STATE_FILE, Log, LogFormat, StateSettings};
use crate::secret::Secret;

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

/// The `[api]` section: where to listen, and the bearer token, which a
/// non-loopback listener (`allow_remote`) requires.
pub(crate) fn api(raw: &RawApi, ctx: &Context<'_>) -> Result<Api, ConfigError> {
    let listen = listen(raw, ctx)?;
    let token = token(raw, ctx)?;
    if raw.allow_remote && token.is_none() {
        return Err(ConfigError::new(
            "api.token_file",
            "must be set when api.allow_remote = true: whoever reaches the port would otherwise read every credential",
        ));
    }
    Ok(Api {
        listen,
        allow_remote: raw.allow_remote,
        token,
        limits: ApiLimits::default(),
    })
}

/// `""` (off), `unix:/path` or `host:port`; a non-loopback address needs `allow_remote`.
pub(crate) fn listen(raw: &RawApi, ctx: &Context<'_>) -> Result<Option<ApiListen>, ConfigError> {
    let key = "api.listen";
    let text = raw.listen.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Some(path) = text.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(ConfigError::new(
                key,
                "\"unix:\" needs a socket path, e.g. \"unix:/run/listenkeyd/api.sock\"",
            ));
        }
        return Ok(Some(ApiListen::Unix(ctx.path(Path::new(path)))));
    }
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
    Ok(Some(ApiListen::Tcp(addr)))
}

/// The shortest token accepted: anything shorter is guessable.
const MIN_TOKEN_LEN: usize = 16;

/// The bearer token read from `token_file` (surrounding whitespace trimmed):
/// at least [`MIN_TOKEN_LEN`] visible ASCII characters, so a client can send
/// it in a header. Errors name the file, never its contents.
fn token(raw: &RawApi, ctx: &Context<'_>) -> Result<Option<Secret>, ConfigError> {
    let key = "api.token_file";
    let Some(file) = &raw.token_file else {
        return Ok(None);
    };
    if file.as_os_str().is_empty() {
        return Err(ConfigError::new(key, "must not be empty"));
    }
    let path = ctx.path(file);
    let text =
        std::fs::read(&path).map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8(text).map_err(|_| ConfigError::new(key, format!("{} is not text", path.display())))?;
    let token = Secret::new(text);
    if token.is_empty() {
        return Err(ConfigError::new(key, format!("{} is empty", path.display())));
    }
    if !token.expose().bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::new(
            key,
            format!(
                "the token in {} must be visible ASCII without spaces (e.g. `openssl rand -hex 32`)",
                path.display()
            ),
        ));
    }
    if token.expose().len() < MIN_TOKEN_LEN {
        return Err(ConfigError::new(
            key,
            format!(
                "the token in {} is shorter than {MIN_TOKEN_LEN} characters (e.g. `openssl rand -hex 32`)",
                path.display()
            ),
        ));
    }
    Ok(Some(token))
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

/// Format and level; the level is a level or `target=level` directives
/// (`tracing_subscriber::filter::Targets`).
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
    // A bare word is a target to a filter, so "inf" would silently mean
    // "only the target inf": bare words must be levels.
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    for part in level.split(',').map(str::trim) {
        if !part.contains('=') && !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(part)) {
            return Err(ConfigError::new(
                "log.level",
                format!("{part:?} is not a level (trace, debug, info, warn, error, off) nor a target=level directive"),
            ));
        }
    }
    level.parse::<tracing_subscriber::filter::Targets>().map_err(|e| {
        ConfigError::new(
            "log.level",
            format!("{level:?} is not a level (trace, debug, info, warn, error) or target=level directives: {e}"),
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
    fn tokens() {
        let dir = tempfile::tempdir().unwrap();
        let env = std::collections::HashMap::new();
        let ctx = Context {
            env: &env,
            base_dir: dir.path(),
        };
        let raw = |file: Option<&str>, allow_remote| RawApi {
            listen: "127.0.0.1:9750".into(),
            allow_remote,
            token_file: file.map(PathBuf::from),
        };
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("good", "0123456789abcdef0123\n");
        write("short", "0123456789abcde");
        write("spaced", "0123456789 abcdef0123");
        write("blank", " \n");
        let good = api(&raw(Some("good"), true), &ctx).unwrap();
        assert_eq!(good.token.unwrap().expose(), "0123456789abcdef0123");
        assert_eq!(good.limits, ApiLimits::default());
        assert!(api(&raw(None, false), &ctx).unwrap().token.is_none());
        for (file, allow_remote) in [
            (None, true),
            (Some("short"), false),
            (Some("spaced"), false),
            (Some("blank"), false),
            (Some("missing"), false),
            (Some(""), false),
        ] {
            let e = api(&raw(file, allow_remote), &ctx).unwrap_err();
            assert_eq!(e.key, "api.token_file", "{file:?}");
            assert!(!e.message.contains("0123456789"), "{e}");
        }
    }

    #[test]
    fn the_production_limits() {
        let l = ApiLimits::default();
        assert_eq!(l.header_read_timeout, std::time::Duration::from_secs(10));
        assert!(
            l.max_connections > 1000,
            "a thousand idle clients leave room for others"
        );
        assert!(l.max_event_streams < l.max_connections);
    }

    #[test]
    fn api_addresses() {
        assert_eq!(socket_addr("localhost:9750"), Some("127.0.0.1:9750".parse().unwrap()));
        assert_eq!(socket_addr("[::1]:9750"), Some("[::1]:9750".parse().unwrap()));
        assert_eq!(socket_addr("example.com:9750"), None);
        assert_eq!(socket_addr("9750"), None);
    }
}
