//! What to keep and how: the configuration, loaded once at start and validated
//! before the first request is sent. A [`Config`] comes from a TOML file
//! ([`Config::load`]), from TOML text ([`Config::from_toml`]) or from Rust
//! values ([`Config::builder`]); all three pass the same checks.
//!
//! Loading layers built-in defaults, the TOML file and `LISTENKEYD__SECTION__KEY`
//! environment variables (in that order, later wins), deserializes the result
//! into raw structs that mirror the file (unknown keys are errors), and resolves them
//! into [`Config`]: streams expanded to one [`StreamSpec`] per stream id, URLs
//! chosen, secrets read, every value checked. Any problem is a [`ConfigError`]:
//! one line, the key path first (`streams[1].symbols[0]: "btcusdt" is not a
//! valid symbol …`), which `main` prints before exiting with 78 (EX_CONFIG).
//!
//! Relative paths in the config (`api_key_file`, `secret_key_file`,
//! `private_key_file`, `state.file`, a `unix:` API socket, a hook's `pid_file`)
//! resolve against the directory of the config file, wherever they were set,
//! so a config and the files beside it can move together.

mod accounts;
mod builder;
mod context;
mod credentials;
mod describe;
mod local;
mod raw;
mod redis;
mod resolve;
mod streams;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::Secret;
use crate::stream::{Kind, StreamId, StreamSpec};

pub use crate::exchange::account::Account;
pub use crate::exchange::budget::{Limits, WeightLimit};
pub use crate::exchange::sign::{Signer, SignerError};
pub use builder::{AccountSpec, ConfigBuilder};
pub use raw::{ENV_PREFIX, ENV_SEPARATOR};
pub(crate) use redis::Target;
pub use redis::{Ha, HaMode, Redis, Sentinel};
pub use url::Url;

/// The config file read when neither `--config` nor `$LISTENKEYD_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/listenkeyd/listenkeyd.toml";
/// The environment variable naming the config file.
pub const CONFIG_PATH_ENV: &str = "LISTENKEYD_CONFIG";
/// The state file when `state.file` is unset and `$STATE_DIRECTORY` is not set.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/listenkeyd/keys.json";

/// The resolved, validated configuration: the interface the rest of the daemon uses.
#[derive(Debug, Clone)]
pub struct Config {
    /// The single-account form's `[binance]`: how to reach Binance and
    /// authenticate. In the `[[accounts]]` form it holds the defaults and no
    /// key; read [`Config::accounts`] instead.
    pub binance: Binance,
    /// Every account kept, in config order: the `[[accounts]]` entries, or the
    /// single-account form's one Binance account, named
    /// [`DEFAULT_ACCOUNT`](crate::stream::DEFAULT_ACCOUNT).
    pub accounts: Vec<Account>,
    /// Every stream to keep, one per stream id, in config order.
    pub streams: Vec<StreamSpec>,
    /// Refresh schedule.
    pub timing: Timing,
    /// Where the state file goes.
    pub state: StateSettings,
    /// The local HTTP API.
    pub api: Api,
    /// Logging.
    pub log: Log,
    /// Hooks run after a stream's value changes, in config order.
    pub hooks: Vec<Hook>,
    /// `[redis]`: where every stream is also published, when set.
    pub redis: Option<Redis>,
    /// `[ha]`: how replicas share the work.
    pub ha: Ha,
    /// `[limits]`: how much of each venue's per-IP request-weight limit the keeper spends.
    pub limits: Limits,
    /// The config file this was loaded from (absolute), `None` when built from text.
    pub source: Option<PathBuf>,
    /// Problems that do not stop the daemon (a key file readable by every
    /// user), one line each, naming the file; logged at start.
    pub warnings: Vec<String>,
}

/// `[binance]`: endpoints and credentials.
#[derive(Debug, Clone)]
pub struct Binance {
    /// Isolated and cross margin (`/sapi`).
    pub margin_url: Url,
    /// USD-M futures (`/fapi`).
    pub usdm_url: Url,
    /// COIN-M futures (`/dapi`).
    pub coinm_url: Url,
    /// Portfolio margin (`/papi`).
    pub portfolio_margin_url: Url,
    /// Options (`/eapi`).
    pub options_url: Url,
    /// The API key sent as `X-MBX-APIKEY`; never empty.
    pub api_key: Secret,
    /// Signs listen-token requests when a secret or private key is configured.
    pub signer: Option<Signer>,
    /// Timeout of every request to Binance; never zero.
    pub request_timeout: Duration,
    /// DELETE listen keys on shutdown.
    pub close_on_exit: bool,
}

impl Binance {
    /// The base URL serving streams of `kind`.
    pub fn url_for(&self, kind: Kind) -> &Url {
        match kind {
            Kind::IsolatedMargin | Kind::CrossMargin | Kind::MarginRisk => &self.margin_url,
            Kind::UsdmFutures => &self.usdm_url,
            Kind::CoinmFutures => &self.coinm_url,
            Kind::PortfolioMargin => &self.portfolio_margin_url,
            Kind::Options => &self.options_url,
            // Other venues' kinds: not served by `[binance]`; its margin host stands in.
            Kind::Spot | Kind::Futures | Kind::Perpetual | Kind::UsdcFutures | Kind::Account => &self.margin_url,
        }
    }
}

/// `[timing]`: the refresh schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// Listen-key keepalive period; at most half of `listen_key_validity`.
    pub keepalive_interval: Duration,
    /// How long a listen key lives after a POST or PUT.
    pub listen_key_validity: Duration,
    /// Requested listen-token validity; in (0, 24 h].
    pub token_validity: Duration,
    /// Mint the next token when this much validity is left; below `token_validity`.
    pub token_renew_before: Duration,
    /// ± fraction applied to every scheduled refresh; in [0, 0.5].
    pub jitter: f64,
}

/// `[state]`: the state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSettings {
    /// Absolute path of the state file.
    pub file: PathBuf,
    /// Its permission bits (e.g. `0o600`); never grants anything to others.
    pub mode: u32,
}

/// `[api]`: the local HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    /// Where to listen; `None` when the API is off.
    pub listen: Option<ApiListen>,
    /// Whether a non-loopback address was explicitly allowed.
    pub allow_remote: bool,
    /// The bearer token every `/v1/*` request must carry (read from
    /// `token_file`); `None` when no token is configured.
    pub token: Option<Secret>,
    /// Timeouts and caps; fixed, not read from the file.
    pub limits: ApiLimits,
}

/// How much the API lets its clients hold. Not configurable from the file:
/// [`ApiLimits::default`] is the product's value; embedders and tests may
/// lower them in [`Api::limits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiLimits {
    /// A request's headers must arrive within this long of its first byte
    /// being awaited (also bounds how long an idle keep-alive connection stays).
    pub header_read_timeout: Duration,
    /// Open connections at most; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Concurrent `GET /v1/events` streams at most; further ones get 503.
    pub max_event_streams: usize,
}

impl Default for ApiLimits {
    fn default() -> ApiLimits {
        ApiLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_event_streams: 256,
        }
    }
}

/// Where the API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiListen {
    /// A TCP address; loopback unless `allow_remote`.
    Tcp(SocketAddr),
    /// A Unix socket path (absolute).
    Unix(PathBuf),
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// Output format.
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive, e.g. `info` or `info,listenkeyd=debug`.
    pub level: String,
}

/// Log output format (`log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// The journal under systemd, pretty on a terminal, JSON otherwise.
    Auto,
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
    /// The systemd journal's native protocol, each level as a syslog priority.
    Journal,
}

impl LogFormat {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Auto => "auto",
            LogFormat::Pretty => "pretty",
            LogFormat::Json => "json",
            LogFormat::Journal => "journal",
        }
    }
}

/// One `[[hooks]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// What to do.
    pub action: HookAction,
    /// How long the action may take; never zero.
    pub timeout: Duration,
    /// Stream ids this hook fires for; `None` means all. Every id is configured.
    pub streams: Option<Vec<StreamId>>,
}

impl Hook {
    /// Whether this hook fires for stream `id`.
    pub fn matches(&self, id: &StreamId) -> bool {
        self.streams.as_ref().is_none_or(|ids| ids.contains(id))
    }
}

/// What a hook does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookAction {
    /// Run this argv (no shell); never empty.
    Exec(Vec<String>),
    /// Send a signal to the pid read from `pid_file` at every send.
    Signal {
        /// The signal.
        signal: HookSignal,
        /// Absolute path of the pid file.
        pid_file: PathBuf,
    },
}

/// A signal a hook may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookSignal {
    /// `SIGHUP`: the usual "reload".
    Hup,
    /// `SIGINT`.
    Int,
    /// `SIGQUIT`.
    Quit,
    /// `SIGTERM`.
    Term,
    /// `SIGUSR1`.
    Usr1,
    /// `SIGUSR2`.
    Usr2,
    /// `SIGCONT`.
    Cont,
    /// `SIGWINCH`.
    Winch,
}

impl HookSignal {
    /// Every signal a hook may send, in [`SIGNALS`] order.
    pub const ALL: [HookSignal; 8] = [
        HookSignal::Hup,
        HookSignal::Int,
        HookSignal::Quit,
        HookSignal::Term,
        HookSignal::Usr1,
        HookSignal::Usr2,
        HookSignal::Cont,
        HookSignal::Winch,
    ];

    /// Its name, `SIGHUP` form.
    pub const fn name(self) -> &'static str {
        match self {
            HookSignal::Hup => "SIGHUP",
            HookSignal::Int => "SIGINT",
            HookSignal::Quit => "SIGQUIT",
            HookSignal::Term => "SIGTERM",
            HookSignal::Usr1 => "SIGUSR1",
            HookSignal::Usr2 => "SIGUSR2",
            HookSignal::Cont => "SIGCONT",
            HookSignal::Winch => "SIGWINCH",
        }
    }

    /// `SIGHUP`, `sighup` or `HUP`; `None` for any other name.
    pub fn parse(name: &str) -> Option<HookSignal> {
        let upper = name.trim().to_ascii_uppercase();
        let full = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        HookSignal::ALL.into_iter().find(|s| s.name() == full)
    }
}

impl std::fmt::Display for HookSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The names of the signals a hook may send ([`HookSignal::ALL`]).
pub const SIGNALS: &[&str] = &SIGNAL_NAMES;

/// [`HookSignal::ALL`]'s names, in order.
const SIGNAL_NAMES: [&str; HookSignal::ALL.len()] = {
    let mut names = [""; HookSignal::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = HookSignal::ALL[i].name();
        i += 1;
    }
    names
};

/// A configuration problem: `key` is the path of the offending key
/// (`binance.usdm_url`, `streams[1].symbols[0]`) or, for a file that cannot be
/// read or parsed, the file's path. The message is a single line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config error: {}: {}", shown_key(.key), one_line(.message))]
pub struct ConfigError {
    /// Where the problem is.
    pub key: String,
    /// What is wrong, on one line.
    pub message: String,
}

impl ConfigError {
    /// An error at `key`; line breaks in `message` are folded so it stays on one line.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        let message: String = message.into();
        let message = message
            .split(['\n', '\r'])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>();
        ConfigError {
            key: key.into(),
            message: message.join("; "),
        }
    }
}

/// The key as an error shows it: as it is when it reads as one word (a key
/// path such as `streams[1].symbols[0]`, a file's path), else quoted as TOML
/// quotes a key, with `"`, `\\` and control characters escaped. A key can be
/// any quoted TOML key or environment name: the empty one (`"" = 1`,
/// `LISTENKEYD__=1`), one with spaces, or one starting `: ` would otherwise
/// leave no telling where the key ends and the message starts.
fn shown_key(key: &str) -> std::borrow::Cow<'_, str> {
    let plain = |c: char| !c.is_whitespace() && !matches!(c, ':' | '"') && !breaks(c);
    if !key.is_empty() && key.chars().all(plain) {
        return key.into();
    }
    let mut out = String::with_capacity(key.len() + 2);
    out.push('"');
    for c in key.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if breaks(c) || c == '\t' => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out.push('"');
    out.into()
}

/// Whether `c` would break an error's line: a control character other than a
/// tab, or a Unicode line or paragraph separator.
fn breaks(c: char) -> bool {
    (c.is_control() && c != '\t') || matches!(c, '\u{2028}' | '\u{2029}')
}

/// `s` with line breaks and other control characters escaped (`\n`,
/// `\u{85}`): a message can quote any TOML key or value, and the error must
/// still print on one line.
fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(breaks) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if breaks(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

impl Config {
    /// Loads the config from `path` (`--config`), else `$LISTENKEYD_CONFIG`,
    /// else [`DEFAULT_CONFIG_PATH`], with the process environment as the
    /// top layer.
    ///
    /// ```no_run
    /// let config = listenkeyd::config::Config::load(Some("/etc/listenkeyd/listenkeyd.toml".as_ref()))?;
    /// for warning in &config.warnings {
    ///     eprintln!("warning: {warning}");
    /// }
    /// # Ok::<(), listenkeyd::config::ConfigError>(())
    /// ```
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with_env(path, std::env::vars().collect())
    }

    /// [`Config::load`] with `env` standing in for the process environment
    /// (for `LISTENKEYD_CONFIG`, `LISTENKEYD__…` overrides,
    /// `CREDENTIALS_DIRECTORY` and `STATE_DIRECTORY`).
    pub fn load_with_env(path: Option<&Path>, env: HashMap<String, String>) -> Result<Config, ConfigError> {
        let path = config_path(path, &env);
        let text = read_config(&path)?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut config = resolve::load(Some((&path, &text)), &env, &base_dir)?;
        config.source = Some(path);
        Ok(config)
    }

    /// What `get`, `status` and `health` need from a config (the state file
    /// and the API address), without resolving credentials or streams:
    /// consumers run those commands without access to the API key. The API
    /// token is not read either: they only ask `/readyz`, which needs none.
    pub(crate) fn for_readers(path: Option<&Path>) -> Result<(PathBuf, Option<ApiListen>), ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let path = config_path(path, &env);
        let text = read_config(&path)?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let ctx = context::Context {
            env: &env,
            base_dir: &base_dir,
        };
        let raw = raw::layered(Some((&path, &text)), &env)?;
        Ok((local::state(&raw.state, &ctx)?.file, local::listen(&raw.api, &ctx)?))
    }

    /// Builds a config from TOML `text` and `env` without a file; relative
    /// paths resolve against the current directory. For embedding and tests.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use listenkeyd::config::Config;
    ///
    /// let text = r#"
    ///     [binance]
    ///     api_key = "my-api-key"
    ///     [[streams]]
    ///     kind = "isolated-margin"
    ///     symbols = ["BTCUSDT", "ETHUSDT"]
    /// "#;
    /// let config = Config::from_toml(text, HashMap::new()).unwrap();
    /// assert_eq!(config.streams.len(), 2);
    /// let env = HashMap::from([("LISTENKEYD__TIMING__JITTER".to_owned(), "0.7".to_owned())]);
    /// let e = Config::from_toml(text, env).unwrap_err();
    /// assert_eq!(e.key, "timing.jitter");
    /// ```
    pub fn from_toml(text: &str, env: HashMap<String, String>) -> Result<Config, ConfigError> {
        let base_dir = std::env::current_dir().unwrap_or_default();
        resolve::load(Some((Path::new("<config text>"), text)), &env, &base_dir)
    }

    /// A human summary for `listenkeyd check-config`: streams with their
    /// credential and URL, timing, state file, API and hooks. Secrets are
    /// masked: the API key shows only its length, the signer only its algorithm.
    pub fn describe(&self) -> String {
        describe::describe(self)
    }
}

/// `path` (`--config`), else `$LISTENKEYD_CONFIG`, else [`DEFAULT_CONFIG_PATH`], made absolute.
fn config_path(path: Option<&Path>, env: &HashMap<String, String>) -> PathBuf {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => match env.get(CONFIG_PATH_ENV).filter(|p| !p.is_empty()) {
            Some(p) => PathBuf::from(p),
            None => PathBuf::from(DEFAULT_CONFIG_PATH),
        },
    };
    std::path::absolute(&path).unwrap_or(path)
}

/// The config file's text, or an error naming the file.
fn read_config(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(path.display().to_string(), format!("cannot read the config file: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_signals_parse_in_every_spelling_and_match_their_names() {
        for s in HookSignal::ALL {
            let short = s.name().trim_start_matches("SIG");
            for spelling in [s.name().to_owned(), short.to_owned(), short.to_ascii_lowercase()] {
                assert_eq!(HookSignal::parse(&spelling), Some(s), "{spelling}");
            }
        }
        assert_eq!(HookSignal::ALL.map(HookSignal::name).as_slice(), SIGNALS);
        for bad in ["", "SIG", "KILL", "SIGKILL", "9", "SIGSIGHUP"] {
            assert_eq!(HookSignal::parse(bad), None, "{bad}");
        }
    }

    /// Found by the `config` fuzz target: a quoted TOML key holding a line
    /// break made the error two lines, and the empty key made it name none.
    #[test]
    fn an_error_about_a_quoted_key_stays_on_one_line() {
        let e = Config::from_toml("\"a\\nb\" = 1\n", HashMap::new()).unwrap_err();
        let line = e.to_string();
        assert!(!line.contains('\n'), "{line:?}");
        assert!(line.contains(r"a\nb"), "{line}");
        let e = Config::from_toml(
            "[[streams]]\nkind = \"usdm-futures\"\n",
            HashMap::from([("LISTENKEYD__".into(), "1".into())]),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with(r#"config error: "": unknown key"#), "{e}");
        let e = ConfigError::new("k\u{2028}ey", "x");
        assert_eq!(e.to_string(), r#"config error: "k\u{2028}ey": x"#);
    }

    /// Found with the `config` fuzz target (seeds `toml-key-huge-index`,
    /// `env-key-huge-index`): the `config` crate read `[N]` in a top-level
    /// key or a variable name as an array index and grew an array to N.
    #[test]
    fn a_key_with_an_index_is_refused_before_it_is_read() {
        let stream = "[[streams]]\nkind = \"usdm-futures\"\n";
        let toml = format!("\"pid[9999999999999]\" = 2\n{stream}");
        let e = Config::from_toml(&toml, HashMap::new()).unwrap_err();
        assert_eq!(e.key, "pid[9999999999999]", "{e}");
        let env = HashMap::from([("LISTENKEYD__API[3668001390948282865].X".into(), "1".into())]);
        let e = Config::from_toml(stream, env).unwrap_err();
        assert_eq!(e.key, "LISTENKEYD__API[3668001390948282865].X", "{e}");
        // Other variables are not the daemon's to judge.
        let env = HashMap::from([("OTHER[1]".into(), "1".into())]);
        let other = Config::from_toml(stream, env).err().map(|e| e.key);
        assert_ne!(other.as_deref(), Some("OTHER[1]"));
    }

    /// Found with the `config` fuzz target (seed `env-key-starting-with-colon`):
    /// `LISTENKEYD__: account=1` printed `config error: : account: unknown key`,
    /// where no reader can tell the key. A key that is not one plain word is
    /// quoted; a key path or a file's path is shown as it is.
    #[test]
    fn a_key_that_is_not_one_word_is_quoted() {
        let stream = "[[streams]]\nkind = \"usdm-futures\"\n";
        let env = HashMap::from([("LISTENKEYD__: account".into(), "1".into())]);
        let e = Config::from_toml(stream, env).unwrap_err();
        assert!(
            e.to_string().starts_with(r#"config error: ": account": unknown key"#),
            "{e}"
        );
        let e = Config::from_toml(&format!("\"a \\\"b\\\"\" = 1\n{stream}"), HashMap::new()).unwrap_err();
        assert!(
            e.to_string().starts_with(r#"config error: "a \"b\"": unknown key"#),
            "{e}"
        );
        for (key, shown) in [
            ("streams[1].symbols[0]", "streams[1].symbols[0]"),
            ("/etc/listenkeyd/listenkeyd.toml", "/etc/listenkeyd/listenkeyd.toml"),
            ("/home/a b/x.toml", "\"/home/a b/x.toml\""),
            ("a\tb", r#""a\tb""#),
        ] {
            assert_eq!(
                ConfigError::new(key, "x").to_string(),
                format!("config error: {shown}: x")
            );
        }
    }
}
