//! The fleet side of the config: `[redis]` (where consumers on other hosts
//! and replicas meet) and `[ha]` (how replicas share the work).
//!
//! The Redis URL may carry a password, so it is a [`Secret`]: it is read from
//! `url` or from the file `url_file` names, and only [`Redis::shown`] (the URL
//! with any user name and password masked) ever reaches a log or an error.

use std::time::Duration;

use url::Url;

use super::context::Context;
use super::raw::{RawHa, RawRedis};
use super::{ConfigError, credentials};
use crate::secret::Secret;

/// The shortest lease accepted: renewals (a third of it) must outrun a slow Redis call.
const MIN_LEASE_TTL: Duration = Duration::from_millis(300);
/// The longest lease accepted: a dead holder's accounts wait this long for a standby.
const MAX_LEASE_TTL: Duration = Duration::from_secs(10 * 60);
/// The lease when `[ha] lease_ttl` is not set.
const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
/// The key prefix when `[redis] prefix` is not set.
const DEFAULT_PREFIX: &str = "listenkeyd";

/// `[redis]`: the Redis server every stream is published to.
#[derive(Debug, Clone)]
pub struct Redis {
    /// The URL, password included: handed to the client and nowhere else.
    pub url: Secret,
    /// The URL as logs show it: any user name and password replaced by `***`.
    pub shown: String,
    /// Whether the connection uses TLS (`rediss://`).
    pub tls: bool,
    /// The CA certificates (PEM) trusted for the server instead of the
    /// system's roots, from `ca_file`.
    pub ca: Option<Vec<u8>>,
    /// The prefix of every key and channel (`{prefix}:stream:{id}`, `{prefix}:events`).
    pub prefix: String,
}

impl Redis {
    /// The Redis crate's client for this server (no connection is made yet).
    pub(crate) fn client(&self) -> redis::RedisResult<redis::Client> {
        client(self.url.expose(), self.ca.as_deref())
    }
}

/// A client for `url`, trusting `ca` (PEM) instead of the system's roots when
/// given: the one place a Redis URL becomes a client, so validation and the
/// connection agree on what a valid URL is.
fn client(url: &str, ca: Option<&[u8]>) -> redis::RedisResult<redis::Client> {
    match ca {
        None => redis::Client::open(url),
        Some(pem) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            },
        ),
    }
}

/// How replicas of one configuration share the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaMode {
    /// Every instance keeps its streams on its own (the default).
    Standalone,
    /// One lease per account in Redis: only its holder calls the exchange.
    Lease,
}

/// `[ha]`: replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ha {
    /// `standalone` or `lease`.
    pub mode: HaMode,
    /// How long a lease lasts unless renewed; renewed at a third of it.
    pub lease_ttl: Duration,
}

impl Default for Ha {
    fn default() -> Ha {
        Ha {
            mode: HaMode::Standalone,
            lease_ttl: DEFAULT_LEASE_TTL,
        }
    }
}

/// Resolves `[redis]` (absent: no Redis) and `[ha]`, which needs `[redis]` for leases.
pub(crate) fn resolve(
    redis: Option<&RawRedis>,
    ha: Option<&RawHa>,
    ctx: &Context<'_>,
    warnings: &mut Vec<String>,
) -> Result<(Option<Redis>, Ha), ConfigError> {
    let redis = redis.map(|r| redis_section(r, ctx, warnings)).transpose()?;
    let ha = ha.map(ha_section).transpose()?.unwrap_or_default();
    if ha.mode == HaMode::Lease && redis.is_none() {
        return Err(ConfigError::new(
            "ha.mode",
            "\"lease\" needs a [redis] section: the lease is held in Redis",
        ));
    }
    Ok((redis, ha))
}

fn redis_section(raw: &RawRedis, ctx: &Context<'_>, warnings: &mut Vec<String>) -> Result<Redis, ConfigError> {
    let (key, text) = match (&raw.url, &raw.url_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new("redis.url_file", "set url or url_file, not both"));
        }
        (Some(u), None) => ("redis.url", Secret::new(u.as_str())),
        (None, Some(f)) => (
            "redis.url_file",
            credentials::read_secret("redis.url_file", &ctx.path(f), warnings)?,
        ),
        (None, None) => {
            return Err(ConfigError::new(
                "redis.url",
                "required key is missing (or set url_file)",
            ));
        }
    };
    // The text may hold a password: errors quote the masked form only.
    let u = Url::parse(text.expose()).map_err(|e| ConfigError::new(key, format!("not a URL: {e}")))?;
    let shown = masked(&u);
    let tls = match u.scheme() {
        "redis" => false,
        "rediss" => true,
        other => {
            return Err(ConfigError::new(
                key,
                format!("scheme {other:?} is not supported: use redis:// or rediss:// (TLS)"),
            ));
        }
    };
    if u.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new(key, format!("{shown} has no host")));
    }
    let db = u.path().trim_start_matches('/');
    if !db.is_empty() && db.parse::<u16>().is_err() {
        return Err(ConfigError::new(
            key,
            format!("{shown}: the path must be a database number"),
        ));
    }
    let ca = match &raw.ca_file {
        None => None,
        Some(_) if !tls => {
            return Err(ConfigError::new("redis.ca_file", "only with a rediss:// (TLS) url"));
        }
        Some(f) => {
            let path = ctx.path(f);
            let pem = std::fs::read(&path)
                .map_err(|e| ConfigError::new("redis.ca_file", format!("cannot read {}: {e}", path.display())))?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(ConfigError::new(
                    "redis.ca_file",
                    format!("{} holds no PEM certificate", path.display()),
                ));
            }
            Some(pem)
        }
    };
    if client(text.expose(), ca.as_deref()).is_err() {
        return Err(ConfigError::new(key, format!("{shown} is not a Redis URL")));
    }
    if u.password().is_some() && key == "redis.url" {
        warnings.push("redis.url: the URL carries a password; keep it in a file named by redis.url_file".to_owned());
    }
    let prefix = raw.prefix.clone().unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '{' | '}');
    if prefix.is_empty() || prefix.len() > 64 || !prefix.chars().all(valid) {
        return Err(ConfigError::new(
            "redis.prefix",
            format!("{prefix:?} must be 1 to 64 of A-Z a-z 0-9 - _ . : {{ }}"),
        ));
    }
    Ok(Redis {
        url: text,
        shown,
        tls,
        ca,
        prefix,
    })
}

/// The URL with its user name and password replaced by `***`.
fn masked(u: &Url) -> String {
    let mut m = u.clone();
    if !m.username().is_empty() {
        let _ = m.set_username("***");
    }
    if m.password().is_some() {
        let _ = m.set_password(Some("***"));
    }
    m.to_string()
}

fn ha_section(raw: &RawHa) -> Result<Ha, ConfigError> {
    let mode = match raw.mode.as_deref().map(str::trim) {
        None | Some("standalone") => HaMode::Standalone,
        Some("lease") => HaMode::Lease,
        Some(other) => {
            return Err(ConfigError::new(
                "ha.mode",
                format!("{other:?} is not a mode: standalone or lease"),
            ));
        }
    };
    let lease_ttl = match &raw.lease_ttl {
        None => DEFAULT_LEASE_TTL,
        Some(t) => humantime::parse_duration(t.trim()).map_err(|e| {
            ConfigError::new(
                "ha.lease_ttl",
                format!("invalid duration {t:?}: {e} (write e.g. \"10s\")"),
            )
        })?,
    };
    if lease_ttl < MIN_LEASE_TTL || lease_ttl > MAX_LEASE_TTL {
        return Err(ConfigError::new(
            "ha.lease_ttl",
            format!(
                "{} is outside {} to {}",
                humantime::format_duration(lease_ttl),
                humantime::format_duration(MIN_LEASE_TTL),
                humantime::format_duration(MAX_LEASE_TTL)
            ),
        ));
    }
    Ok(Ha { mode, lease_ttl })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_text(redis: Option<RawRedis>, ha: Option<RawHa>) -> Result<(Option<Redis>, Ha), ConfigError> {
        let env = std::collections::HashMap::new();
        let ctx = Context {
            env: &env,
            base_dir: std::path::Path::new("/"),
        };
        resolve(redis.as_ref(), ha.as_ref(), &ctx, &mut Vec::new())
    }

    fn url(u: &str) -> RawRedis {
        RawRedis {
            url: Some(u.to_owned()),
            ..RawRedis::default()
        }
    }

    #[test]
    fn a_password_never_reaches_an_error_or_the_shown_url() {
        let (r, _) = resolve_text(Some(url("rediss://user:hunter2@cache.example:6380/2")), None).unwrap();
        let r = r.unwrap();
        assert!(r.tls);
        assert!(
            !r.shown.contains("hunter2") && !format!("{r:?}").contains("hunter2"),
            "{r:?}"
        );
        let e = resolve_text(Some(url("http://user:hunter2@cache.example")), None).unwrap_err();
        assert_eq!(e.key, "redis.url");
        assert!(!e.message.contains("hunter2"), "{e:?}");
        let e = resolve_text(Some(url("redis://:hunter2@cache.example/x")), None).unwrap_err();
        assert!(!e.message.contains("hunter2"), "{e:?}");
    }

    #[test]
    fn each_bad_value_names_its_key() {
        let cases: Vec<(Option<RawRedis>, Option<RawHa>, &str)> = vec![
            (Some(RawRedis::default()), None, "redis.url"),
            (Some(url("redis://")), None, "redis.url"),
            (
                Some(RawRedis {
                    prefix: Some("has space".into()),
                    ..url("redis://127.0.0.1")
                }),
                None,
                "redis.prefix",
            ),
            (
                None,
                Some(RawHa {
                    mode: Some("lease".into()),
                    lease_ttl: None,
                }),
                "ha.mode",
            ),
            (
                Some(url("redis://127.0.0.1")),
                Some(RawHa {
                    mode: Some("active".into()),
                    lease_ttl: None,
                }),
                "ha.mode",
            ),
            (
                Some(url("redis://127.0.0.1")),
                Some(RawHa {
                    mode: Some("lease".into()),
                    lease_ttl: Some("10ms".into()),
                }),
                "ha.lease_ttl",
            ),
        ];
        for (r, h, key) in cases {
            assert_eq!(resolve_text(r, h).unwrap_err().key, key);
        }
        let (r, ha) = resolve_text(
            Some(url("redis://127.0.0.1:6379/0")),
            Some(RawHa {
                mode: Some("lease".into()),
                lease_ttl: Some("2s".into()),
            }),
        )
        .unwrap();
        assert_eq!(r.unwrap().prefix, "listenkeyd");
        assert_eq!(ha.lease_ttl, Duration::from_secs(2));
    }
}
