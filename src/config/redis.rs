//! The fleet side of the config: `[redis]` (where consumers on other hosts
//! and replicas meet) and `[ha]` (how replicas share the work).
//!
//! The Redis URL may carry a password, so it is a [`Secret`]: it is read from
//! `url` or from the file `url_file` names, and only [`Redis::shown`] (the URL
//! with any user name and password masked) ever reaches a log or an error.
//!
//! With `sentinel` and `master_name`, Redis Sentinel names the primary: the
//! client asks the Sentinels for it at every (re)connection, so a promoted
//! replica is followed without a restart. The URL, optional then, gives the
//! primary's scheme, user name, password and database; its host is not used.

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
    /// The Sentinels that name the primary, when `sentinel` is set.
    pub sentinel: Option<Sentinel>,
}

/// `[redis] sentinel` and `master_name`: where to find the primary.
#[derive(Debug, Clone)]
pub struct Sentinel {
    /// The Sentinel nodes' URLs (any password in them stays here).
    pub nodes: Vec<Secret>,
    /// The name the Sentinels know the primary by.
    pub master_name: String,
}

/// Where the Redis crate connects: one server, or the primary the Sentinels name.
pub(crate) enum Target {
    /// The server of `url`.
    Direct(Box<redis::Client>),
    /// The primary named by the Sentinels, asked at every connection.
    Sentinel(Box<redis::sentinel::SentinelClient>),
}

impl Redis {
    /// The Redis crate's client for this server (no connection is made yet).
    pub(crate) fn client(&self) -> redis::RedisResult<redis::Client> {
        client(self.url.expose(), self.ca.as_deref())
    }

    /// Where to connect: the URL's server, or the Sentinels' primary.
    pub(crate) fn target(&self) -> redis::RedisResult<Target> {
        match &self.sentinel {
            None => self.client().map(|c| Target::Direct(Box::new(c))),
            Some(s) => sentinel_client(s, self.url.expose(), self.tls).map(|c| Target::Sentinel(Box::new(c))),
        }
    }
}

impl Target {
    /// A client for the server to connect to now: the URL's, or the primary
    /// the Sentinels name at this moment.
    pub(crate) async fn client(&mut self) -> redis::RedisResult<redis::Client> {
        match self {
            Target::Direct(c) => Ok((**c).clone()),
            Target::Sentinel(s) => s.async_get_client().await,
        }
    }
}

/// A Sentinel client for the primary `s.master_name`, connecting to it with
/// the user name, password, database and TLS of `url`.
fn sentinel_client(s: &Sentinel, url: &str, tls: bool) -> redis::RedisResult<redis::sentinel::SentinelClient> {
    use redis::IntoConnectionInfo;
    let settings = url.into_connection_info()?.redis_settings().clone();
    let mut node = redis::sentinel::SentinelNodeConnectionInfo::default().set_redis_connection_info(settings);
    if tls {
        node = node.set_tls_mode(redis::TlsMode::Secure);
    }
    let nodes: Vec<&str> = s.nodes.iter().map(Secret::expose).collect();
    redis::sentinel::SentinelClient::build(
        nodes,
        s.master_name.clone(),
        Some(node),
        redis::sentinel::SentinelServerType::Master,
    )
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
    let (key, text) = url_text(raw, ctx, warnings)?;
    // The text may hold a password: errors quote the masked form only.
    let u = Url::parse(text.expose()).map_err(|e| ConfigError::new(key, format!("not a URL: {e}")))?;
    let mut shown = masked(&u);
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
    let ca = ca_section(raw, ctx, tls)?;
    if client(text.expose(), ca.as_deref()).is_err() {
        return Err(ConfigError::new(key, format!("{shown} is not a Redis URL")));
    }
    if u.password().is_some() && key == "redis.url" {
        warnings.push("redis.url: the URL carries a password; keep it in a file named by redis.url_file".to_owned());
    }
    let prefix = prefix_section(raw)?;
    let sentinel = sentinel_section(raw)?;
    if let Some(s) = &sentinel {
        if sentinel_client(s, text.expose(), tls).is_err() {
            return Err(ConfigError::new(
                "redis.sentinel",
                "the Sentinel client cannot be built from these URLs",
            ));
        }
        let nodes: Vec<String> = s
            .nodes
            .iter()
            .filter_map(|n| Url::parse(n.expose()).ok())
            .map(|u| masked(&u))
            .collect();
        shown = format!("the primary {:?} named by Sentinel {}", s.master_name, nodes.join(", "));
    }
    Ok(Redis {
        url: text,
        shown,
        tls,
        ca,
        prefix,
        sentinel,
    })
}

/// The URL's text and the key it came from: `url`, or the file `url_file`
/// names; with Sentinels and neither, a URL that only names database 0.
fn url_text(
    raw: &RawRedis,
    ctx: &Context<'_>,
    warnings: &mut Vec<String>,
) -> Result<(&'static str, Secret), ConfigError> {
    match (&raw.url, &raw.url_file) {
        (Some(_), Some(_)) => Err(ConfigError::new("redis.url_file", "set url or url_file, not both")),
        (Some(u), None) => Ok(("redis.url", Secret::new(u.as_str()))),
        (None, Some(f)) => Ok((
            "redis.url_file",
            credentials::read_secret("redis.url_file", &ctx.path(f), warnings)?,
        )),
        // With Sentinels, the URL only carries the primary's credentials and database.
        (None, None) if raw.sentinel.is_some() => Ok(("redis.url", Secret::new("redis://sentinel-primary/0"))),
        (None, None) => Err(ConfigError::new(
            "redis.url",
            "required key is missing (or set url_file, or sentinel and master_name)",
        )),
    }
}

/// `ca_file`: the PEM certificates trusted instead of the system's roots (TLS only).
fn ca_section(raw: &RawRedis, ctx: &Context<'_>, tls: bool) -> Result<Option<Vec<u8>>, ConfigError> {
    let Some(f) = &raw.ca_file else {
        return Ok(None);
    };
    if !tls {
        return Err(ConfigError::new("redis.ca_file", "only with a rediss:// (TLS) url"));
    }
    let path = ctx.path(f);
    let pem = std::fs::read(&path)
        .map_err(|e| ConfigError::new("redis.ca_file", format!("cannot read {}: {e}", path.display())))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(ConfigError::new(
            "redis.ca_file",
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(Some(pem))
}

/// `prefix`, 1 to 64 characters that are safe in a key (a `{hash tag}` included).
fn prefix_section(raw: &RawRedis) -> Result<String, ConfigError> {
    let prefix = raw.prefix.clone().unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '{' | '}');
    if prefix.is_empty() || prefix.len() > 64 || !prefix.chars().all(valid) {
        return Err(ConfigError::new(
            "redis.prefix",
            format!("{prefix:?} must be 1 to 64 of A-Z a-z 0-9 - _ . : {{ }}"),
        ));
    }
    Ok(prefix)
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

/// The most Sentinel nodes accepted.
const MAX_SENTINELS: usize = 16;

/// `sentinel` and `master_name`: both or neither; every node a `redis://` or
/// `rediss://` URL with a host; the name as Sentinel accepts it.
fn sentinel_section(raw: &RawRedis) -> Result<Option<Sentinel>, ConfigError> {
    let (nodes, name) = match (&raw.sentinel, &raw.master_name) {
        (None, None) => return Ok(None),
        (Some(_), None) => return Err(ConfigError::new("redis.master_name", "required with redis.sentinel")),
        (None, Some(_)) => return Err(ConfigError::new("redis.sentinel", "required with redis.master_name")),
        (Some(n), Some(m)) => (n, m.trim()),
    };
    if nodes.is_empty() || nodes.len() > MAX_SENTINELS {
        return Err(ConfigError::new(
            "redis.sentinel",
            format!("list 1 to {MAX_SENTINELS} Sentinel URLs"),
        ));
    }
    let mut secrets = Vec::with_capacity(nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        let bad = |why: &str| ConfigError::new("redis.sentinel", format!("entry {}: {why}", i + 1));
        // A node URL may carry a password: errors never quote it.
        let u = Url::parse(node.trim()).map_err(|e| bad(&format!("not a URL: {e}")))?;
        if !matches!(u.scheme(), "redis" | "rediss") {
            return Err(bad("use redis:// or rediss://"));
        }
        if u.host_str().is_none_or(str::is_empty) {
            return Err(bad(&format!("{} has no host", masked(&u))));
        }
        secrets.push(Secret::new(node.trim()));
    }
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 64 || !name.chars().all(valid) {
        return Err(ConfigError::new(
            "redis.master_name",
            format!("{name:?} must be 1 to 64 of A-Z a-z 0-9 - _ ."),
        ));
    }
    Ok(Some(Sentinel {
        nodes: secrets,
        master_name: name.to_owned(),
    }))
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
