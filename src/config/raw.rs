//! The raw layer: serde structs that mirror the TOML file key for key, and the
//! layering that fills them (built-in defaults, then the file, then
//! `LISTENKEYD__SECTION__KEY` environment variables).
//!
//! Nothing here judges values beyond their type: every field is deserialized
//! as the user wrote it, with the key path kept by `serde_path_to_error`, and
//! [`super::resolve`] turns it into the validated [`super::Config`]. Serde's and
//! the `config` crate's error texts are rewritten here into one line that
//! starts with the key path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::config::{Config as Layers, Environment, File, FileFormat};
use serde::Deserialize;

use super::ConfigError;

/// The environment prefix: `LISTENKEYD__BINANCE__API_KEY` sets `binance.api_key`.
pub const ENV_PREFIX: &str = "LISTENKEYD";
/// Separates the prefix, the section and the key in environment variable names.
pub const ENV_SEPARATOR: &str = "__";

/// Built-in defaults, the lowest layer. Per-family URLs and `state.file` are
/// deliberately absent: whether the user set them changes how they resolve.
const STRING_DEFAULTS: &[(&str, &str)] = &[
    ("binance.request_timeout", "10s"),
    ("timing.keepalive_interval", "30m"),
    ("timing.listen_key_validity", "60m"),
    ("timing.token_validity", "24h"),
    ("timing.token_renew_before", "8h"),
    ("state.mode", "0600"),
    ("api.listen", ""),
    ("log.format", "auto"),
    ("log.level", "info"),
];

/// The whole file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    /// `[binance]`.
    pub binance: RawBinance,
    /// `[[streams]]`.
    #[serde(default)]
    pub streams: Vec<RawStream>,
    /// `[timing]`.
    pub timing: RawTiming,
    /// `[state]`.
    pub state: RawState,
    /// `[api]`.
    pub api: RawApi,
    /// `[log]`.
    pub log: RawLog,
    /// `[[hooks]]`.
    #[serde(default)]
    pub hooks: Vec<RawHook>,
    /// `[redis]`.
    #[serde(default)]
    pub redis: Option<RawRedis>,
    /// `[ha]`.
    #[serde(default)]
    pub ha: Option<RawHa>,
    /// `[[accounts]]`.
    #[serde(default)]
    pub accounts: Vec<RawAccount>,
    /// `[limits]`.
    #[serde(default)]
    pub limits: Option<RawLimits>,
}

/// `[limits]`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    /// The fraction of each family's per-IP weight limit the keeper may spend.
    pub share: Option<f64>,
    /// The fraction of it the IP's used weight is never taken above.
    pub ceiling: Option<f64>,
    /// `family = "N/DURATION"`, over what the exchange publishes or the profile documents.
    pub weight_limits: Option<std::collections::BTreeMap<String, String>>,
}

/// One `[[accounts]]` entry, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccount {
    /// `[a-z0-9-]{1,32}`; prefixes the account's stream ids.
    pub name: Option<String>,
    /// A venue profile's name.
    pub venue: Option<String>,
    /// Serves every family whose own URL is not set.
    pub base_url: Option<String>,
    /// Binance `/sapi`.
    pub margin_url: Option<String>,
    /// Binance `/fapi`.
    pub usdm_url: Option<String>,
    /// Binance `/dapi`.
    pub coinm_url: Option<String>,
    /// Binance `/papi`.
    pub portfolio_margin_url: Option<String>,
    /// Binance `/eapi`.
    pub options_url: Option<String>,
    /// A venue's spot (or account-wide) host.
    pub spot_url: Option<String>,
    /// A venue's futures host.
    pub futures_url: Option<String>,
    /// The API key inline.
    pub api_key: Option<String>,
    /// A file holding the API key.
    pub api_key_file: Option<PathBuf>,
    /// The HMAC secret inline.
    pub secret_key: Option<String>,
    /// A file holding the HMAC secret.
    pub secret_key_file: Option<PathBuf>,
    /// A file holding an Ed25519 private key (PKCS#8 PEM).
    pub private_key_file: Option<PathBuf>,
    /// Overrides the venue's API-key header name.
    pub api_key_header: Option<String>,
    /// Overrides the venue's signing rule.
    pub signing: Option<String>,
    /// Timeout of every request; `[binance].request_timeout` when unset.
    #[serde(default, deserialize_with = "opt_duration")]
    pub request_timeout: Option<Duration>,
    /// DELETE listen keys on shutdown; `[binance].close_on_exit` when unset.
    pub close_on_exit: Option<bool>,
    /// The local source address of the account's calls.
    pub egress: Option<String>,
    /// `[[accounts.streams]]`.
    #[serde(default)]
    pub streams: Vec<RawStream>,
}

/// `[binance]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBinance {
    /// Serves every family whose own URL is not set.
    pub base_url: Option<String>,
    /// `/sapi` (isolated and cross margin).
    pub margin_url: Option<String>,
    /// `/fapi`.
    pub usdm_url: Option<String>,
    /// `/dapi`.
    pub coinm_url: Option<String>,
    /// `/papi`.
    pub portfolio_margin_url: Option<String>,
    /// `/eapi`.
    pub options_url: Option<String>,
    /// The API key inline (or from `LISTENKEYD__BINANCE__API_KEY`).
    pub api_key: Option<String>,
    /// A file holding the API key.
    pub api_key_file: Option<PathBuf>,
    /// The HMAC secret inline.
    pub secret_key: Option<String>,
    /// A file holding the HMAC secret.
    pub secret_key_file: Option<PathBuf>,
    /// A file holding an Ed25519 private key (PKCS#8 PEM).
    pub private_key_file: Option<PathBuf>,
    /// Timeout of every request to Binance.
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// DELETE listen keys on shutdown.
    #[serde(default)]
    pub close_on_exit: bool,
}

/// One `[[streams]]` entry, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStream {
    /// The API family (required; checked in resolve for a better message).
    pub kind: Option<String>,
    /// Isolated-margin symbols.
    pub symbols: Option<Vec<String>>,
    /// `listen-token` or `listen-key`.
    pub credential: Option<String>,
}

/// `[timing]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTiming {
    /// Listen-key keepalive period.
    #[serde(deserialize_with = "duration")]
    pub keepalive_interval: Duration,
    /// How long a listen key lives after a POST or PUT.
    #[serde(deserialize_with = "duration")]
    pub listen_key_validity: Duration,
    /// Requested listen-token validity.
    #[serde(deserialize_with = "duration")]
    pub token_validity: Duration,
    /// Mint the next token when this much validity is left.
    #[serde(deserialize_with = "duration")]
    pub token_renew_before: Duration,
    /// ± fraction applied to every scheduled refresh.
    #[serde(default = "default_jitter")]
    pub jitter: f64,
}

/// `[state]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawState {
    /// The state file; `None` picks `$STATE_DIRECTORY/keys.json` or the default.
    pub file: Option<PathBuf>,
    /// Octal file mode.
    pub mode: String,
}

/// `[api]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    /// `""`, `host:port` or `unix:/path`.
    pub listen: String,
    /// Accept a non-loopback address.
    #[serde(default)]
    pub allow_remote: bool,
    /// A file holding the bearer token `/v1/*` requests must carry.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// `[log]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    /// `auto`, `pretty` or `json`.
    pub format: String,
    /// A level or an `EnvFilter` directive.
    pub level: String,
}

/// `[redis]`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedis {
    /// `redis://…` or `rediss://…`, possibly with a password.
    pub url: Option<String>,
    /// A file holding the URL (for a URL that carries a password).
    pub url_file: Option<PathBuf>,
    /// The prefix of every key and channel.
    pub prefix: Option<String>,
    /// PEM certificates of the CA that signed a `rediss://` server's certificate.
    pub ca_file: Option<PathBuf>,
    /// Sentinel nodes (`redis://host:26379`) that name the primary, instead of the URL's host.
    pub sentinel: Option<Vec<String>>,
    /// The name the Sentinels know the primary by.
    pub master_name: Option<String>,
}

/// `[ha]`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHa {
    /// `standalone` or `lease`.
    pub mode: Option<String>,
    /// How long a lease lasts unless renewed (humantime).
    pub lease_ttl: Option<String>,
}

/// One `[[hooks]]` entry, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHook {
    /// argv to run.
    pub exec: Option<Vec<String>>,
    /// Signal to send instead.
    pub signal: Option<String>,
    /// Where the pid to signal is read.
    pub pid_file: Option<PathBuf>,
    /// How long a hook may run.
    #[serde(default = "default_hook_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Stream-id filter.
    pub streams: Option<Vec<String>>,
}

fn default_jitter() -> f64 {
    0.1
}

fn default_hook_timeout() -> Duration {
    Duration::from_secs(10)
}

/// A humantime duration ("500ms", "30m"), with an error that quotes the value.
fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(text.trim()).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {text:?}: {e} (write e.g. \"500ms\", \"30s\", \"10m\", \"1h\")"
        ))
    })
}

/// An optional humantime duration.
fn opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// Layers defaults, the file's text (when there is a file) and `env`, then
/// deserializes the result. `origin` names the file in parse errors.
pub(crate) fn layered(text: Option<(&Path, &str)>, env: &HashMap<String, String>) -> Result<RawConfig, ConfigError> {
    refuse_indexed_keys(text.map(|(_, t)| t), env)?;
    let internal = |e: ::config::ConfigError| ConfigError::new("config", one_line(&e.to_string()));
    let mut builder = Layers::builder();
    for (key, value) in STRING_DEFAULTS {
        builder = builder.set_default(*key, *value).map_err(internal)?;
    }
    builder = builder
        .set_default("binance.close_on_exit", false)
        .and_then(|b| b.set_default("timing.jitter", default_jitter()))
        .and_then(|b| b.set_default("api.allow_remote", false))
        .map_err(internal)?;
    if let Some((_, text)) = text {
        builder = builder.add_source(File::from_str(text, FileFormat::Toml));
    }
    let env_map: ::config::Map<String, String> = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    builder = builder.add_source(
        Environment::with_prefix(ENV_PREFIX)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            .try_parsing(true)
            .source(Some(env_map)),
    );
    let layers = builder.build().map_err(|e| match (text, &e) {
        (Some((path, _)), ::config::ConfigError::FileParse { .. }) => parse_error(path, &e),
        _ => ConfigError::new("environment", one_line(&e.to_string())),
    })?;
    serde_path_to_error::deserialize(layers).map_err(|e| serde_error(&e))
}

/// Refuses what the `config` crate would read as an array index: a top-level
/// key of the file or a `LISTENKEYD__` variable name holding `[` or `]`.
/// Given `"streams[99999999999]" = 1` or `LISTENKEYD__API[99999999999]=1`,
/// it grows an array to that index and runs out of memory (found by the
/// `config` fuzz target), so such a key never reaches it. A file that is not
/// TOML is left to `config`, which reports where.
fn refuse_indexed_keys(text: Option<&str>, env: &HashMap<String, String>) -> Result<(), ConfigError> {
    let indexed = |k: &str| k.contains(['[', ']']);
    if let Some(table) = text.and_then(|t| t.parse::<toml::Table>().ok())
        && let Some(key) = table.keys().find(|k| indexed(k))
    {
        return Err(ConfigError::new(
            key.clone(),
            "unknown key at the top level (a key holds no [index])",
        ));
    }
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}");
    let ours = |k: &str| k.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(&prefix));
    if let Some(name) = env.keys().find(|k| ours(k) && indexed(k)) {
        return Err(ConfigError::new(
            name.clone(),
            "not a configuration variable: its name holds `[` or `]`",
        ));
    }
    Ok(())
}

/// A TOML syntax error, on one line: `path: TOML parse error at line 3, column 7: …`.
fn parse_error(path: &Path, e: &::config::ConfigError) -> ConfigError {
    let text = match e {
        ::config::ConfigError::FileParse { cause, .. } => cause.to_string(),
        other => other.to_string(),
    };
    // toml's message is a header, a source excerpt with `|` gutters, then the
    // explanation: keep the header and the explanation.
    let kept: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && !is_excerpt_line(l))
        .collect();
    ConfigError::new(path.display().to_string(), kept.join(": "))
}

/// Whether `l` is a numbered source line of a TOML error excerpt (`12 | key = …`).
fn is_excerpt_line(l: &str) -> bool {
    match l.split_once(" |") {
        Some((n, _)) => !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// Rewrites a deserialization error as `key.path: message`.
fn serde_error(e: &serde_path_to_error::Error<::config::ConfigError>) -> ConfigError {
    let path = e.path().to_string();
    let mut path = if path == "." { String::new() } else { path };
    let message = config_message(e.inner());
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        // Depending on where the failure surfaces, the path may already end
        // with the unknown key: keep only the table that holds it.
        if path == field {
            path.clear();
        } else if let Some(parent) = path.strip_suffix(&format!(".{field}")) {
            path = parent.to_owned();
        }
        let join = |key: &str| {
            if path.is_empty() {
                key.to_owned()
            } else {
                format!("{path}.{key}")
            }
        };
        let valid = expected
            .trim_start_matches(", expected one of ")
            .trim_start_matches(", expected ")
            .replace('`', "");
        let place = match path.as_str() {
            "" => "at the top level".to_owned(),
            p if p.ends_with(']') => format!("in {p}"),
            p => format!("in [{p}]"),
        };
        return ConfigError::new(join(field), format!("unknown key {place} (valid keys: {valid})"));
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        let key = if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
        return ConfigError::new(key, "required key is missing");
    }
    let key = if path.is_empty() { "config".to_owned() } else { path };
    ConfigError::new(key, message)
}

/// The `config` crate's message without the `for key … in origin` suffix,
/// which would repeat (less precisely) what the key path already says.
fn config_message(e: &::config::ConfigError) -> String {
    match e {
        ::config::ConfigError::Type {
            unexpected, expected, ..
        } => toml_words(&format!("invalid type: {unexpected}, expected {expected}")),
        ::config::ConfigError::At { error, .. } => config_message(error),
        other => toml_words(&one_line(&other.to_string())),
    }
}

/// Serde's words for types in TOML's words: a struct or map is a table, a
/// sequence an array (`invalid type: map, expected struct RawBinance` becomes
/// `invalid type: table, expected a table`).
fn toml_words(message: &str) -> String {
    let Some(rest) = message.strip_prefix("invalid type: ") else {
        return message.to_owned();
    };
    let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
    let word = |w: &str| match w {
        "map" => "table".to_owned(),
        "sequence" => "array".to_owned(),
        "a map" => "a table".to_owned(),
        "a sequence" => "an array".to_owned(),
        w if w.starts_with("struct ") => "a table".to_owned(),
        w => w.to_owned(),
    };
    format!("invalid type: {}, expected {}", word(found), word(expected))
}

/// `s` with line breaks folded into `; `.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
