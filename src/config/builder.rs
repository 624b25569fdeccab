//! A [`Config`] from Rust values, for programs that embed the keeper and for
//! tests: [`Config::builder`].
//!
//! The builder fills the same raw layer a TOML file fills (built-in defaults
//! first) and resolves it with the same checks, so a value the file would
//! refuse is refused here too, with the same one-line [`ConfigError`] naming
//! the key (`streams[0].symbols[0]: …`). Nothing is read from the process
//! environment: no `LISTENKEYD__…` override, no systemd credentials directory,
//! no `$STATE_DIRECTORY`. Relative paths resolve against the current directory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::raw::{self, RawAccount, RawConfig, RawHook, RawStream};
use super::{ApiLimits, ApiListen, Config, ConfigError, Hook, HookAction, Log, Timing, resolve};
use crate::exchange::sign::Signer;
use crate::exchange::venue::Family;
use crate::secret::Secret;
use crate::stream::{Kind, StreamSpec};

/// One `[[accounts]]` entry for [`ConfigBuilder::account`]: a name, a
/// venue, its credentials and URL, and its streams.
///
/// ```
/// use listenkeyd::config::{AccountSpec, Config, Url};
/// use listenkeyd::secret::Secret;
/// use listenkeyd::stream::{Kind, StreamSpec};
///
/// let config = Config::builder()
///     .account(AccountSpec::new("main", "binance", Secret::new("main-key")).stream(StreamSpec::account_wide(Kind::UsdmFutures)))
///     .account(
///         AccountSpec::new("mm", "mexc", Secret::new("mexc-key"))
///             .secret_key(Secret::new("mexc-secret"))
///             .base_url(Url::parse("http://127.0.0.1:9000/mexc").unwrap())
///             .stream(StreamSpec::account_wide(Kind::Spot)),
///     )
///     .build()
///     .unwrap();
/// assert_eq!(config.streams[1].id.as_str(), "mm/spot");
/// assert_eq!(config.accounts[1].api_key_header, "X-MEXC-APIKEY");
/// ```
#[derive(Debug, Clone)]
pub struct AccountSpec {
    name: String,
    venue: String,
    api_key: Secret,
    secret_key: Option<Secret>,
    base_url: Option<Url>,
    egress: Option<std::net::IpAddr>,
    streams: Vec<StreamSpec>,
}

impl AccountSpec {
    /// The account `name` (`[a-z0-9-]{1,32}`) on `venue` (`binance`, `mexc`, …), with its API key.
    pub fn new(name: impl Into<String>, venue: impl Into<String>, api_key: Secret) -> AccountSpec {
        AccountSpec {
            name: name.into(),
            venue: venue.into(),
            api_key,
            secret_key: None,
            base_url: None,
            egress: None,
            streams: Vec::new(),
        }
    }

    /// The HMAC secret: signs every call on venues that sign them, listen-token calls on Binance.
    pub fn secret_key(self, secret: Secret) -> AccountSpec {
        AccountSpec {
            secret_key: Some(secret),
            ..self
        }
    }

    /// Serves every family of the account (a simulator, a proxy); production otherwise.
    pub fn base_url(self, url: Url) -> AccountSpec {
        AccountSpec {
            base_url: Some(url),
            ..self
        }
    }

    /// `egress`: the local source address of the account's calls.
    pub fn egress(self, ip: std::net::IpAddr) -> AccountSpec {
        AccountSpec {
            egress: Some(ip),
            ..self
        }
    }

    /// One more stream: its kind, symbol and credential (its id is prefixed with the account's name).
    pub fn stream(mut self, spec: StreamSpec) -> AccountSpec {
        self.streams.push(spec);
        self
    }
}

/// Builds a [`Config`] from Rust values; see [`Config::builder`].
pub struct ConfigBuilder {
    /// The file's keys, defaults filled in.
    raw: Result<RawConfig, ConfigError>,
    /// A signer given as a value, set after resolution.
    signer: Option<Signer>,
    /// API limits, set after resolution (the file has none).
    api_limits: Option<ApiLimits>,
    /// An `api_listen` that cannot be written as the file's text.
    listen_error: Option<ConfigError>,
}

impl std::fmt::Debug for ConfigBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The raw layer holds the API key in the clear: never shown.
        f.debug_struct("ConfigBuilder").finish_non_exhaustive()
    }
}

impl Config {
    /// A builder holding the built-in defaults: no streams, no API key, the
    /// production URLs, `[timing]` as documented, the default state file, no
    /// API, no hooks.
    ///
    /// ```
    /// use std::time::Duration;
    /// use listenkeyd::config::{Config, Url};
    /// use listenkeyd::secret::Secret;
    /// use listenkeyd::stream::{Kind, StreamSpec};
    ///
    /// let config = Config::builder()
    ///     .base_url(Url::parse("http://127.0.0.1:9000").unwrap())
    ///     .api_key(Secret::new("my-api-key"))
    ///     .stream(StreamSpec::account_wide(Kind::UsdmFutures))
    ///     .stream(StreamSpec::isolated_margin("BTCUSDT"))
    ///     .keepalive_interval(Duration::from_secs(20 * 60))
    ///     .state_file("/tmp/listenkeyd-example/keys.json")
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.streams[1].id.as_str(), "isolated-margin:BTCUSDT");
    ///
    /// // The file's checks hold: a symbol must be upper case.
    /// let e = Config::builder()
    ///     .api_key(Secret::new("my-api-key"))
    ///     .stream(StreamSpec::isolated_margin("btcusdt"))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(e.key, "streams[0].symbols[0]");
    /// ```
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder {
            raw: raw::layered(None, &HashMap::new()),
            signer: None,
            api_limits: None,
            listen_error: None,
        }
    }
}

impl ConfigBuilder {
    /// Applies `f` to the raw layer (unless an earlier step failed).
    fn with(mut self, f: impl FnOnce(&mut RawConfig)) -> ConfigBuilder {
        if let Ok(raw) = &mut self.raw {
            f(raw);
        }
        self
    }

    /// `binance.base_url`: serves every API family whose own URL is not set
    /// (a simulator, a proxy).
    pub fn base_url(self, url: Url) -> ConfigBuilder {
        self.with(|r| r.binance.base_url = Some(url.into()))
    }

    /// The URL of the API family serving streams of `kind`
    /// (`binance.margin_url`, `usdm_url`, …); wins over [`Self::base_url`].
    /// A kind Binance does not have (another venue's) sets nothing: a stream
    /// of that kind is refused by [`Self::build`].
    pub fn family_url(self, kind: Kind, url: Url) -> ConfigBuilder {
        let Some(family) = crate::exchange::venue::BINANCE.route(kind).map(|r| r.family) else {
            return self;
        };
        self.with(|r| {
            let b = &mut r.binance;
            let slot = match family {
                Family::Usdm => &mut b.usdm_url,
                Family::Coinm => &mut b.coinm_url,
                Family::PortfolioMargin => &mut b.portfolio_margin_url,
                Family::Options => &mut b.options_url,
                Family::Margin | Family::Spot | Family::Futures => &mut b.margin_url,
            };
            *slot = Some(url.into());
        })
    }

    /// `binance.api_key`: sent as `X-MBX-APIKEY`.
    pub fn api_key(self, key: Secret) -> ConfigBuilder {
        self.with(|r| r.binance.api_key = Some(key.expose().to_owned()))
    }

    /// The key that signs listen-token requests (the file's `secret_key` or
    /// `private_key_file`).
    pub fn signer(mut self, signer: Signer) -> ConfigBuilder {
        self.signer = Some(signer);
        self
    }

    /// `binance.request_timeout`: the timeout of every request to the exchange.
    pub fn request_timeout(self, timeout: Duration) -> ConfigBuilder {
        self.with(|r| r.binance.request_timeout = timeout)
    }

    /// `binance.close_on_exit`: DELETE listen keys on shutdown.
    pub fn close_on_exit(self, close: bool) -> ConfigBuilder {
        self.with(|r| r.binance.close_on_exit = close)
    }

    /// `[limits]`: the keeper's share of each per-IP weight limit, the
    /// ceiling, and limits per family (checked as the file's are).
    pub fn limits(self, limits: super::Limits) -> ConfigBuilder {
        self.with(|r| {
            r.limits = Some(raw::RawLimits {
                share: Some(limits.share),
                ceiling: Some(limits.ceiling),
                weight_limits: Some(
                    limits
                        .weight_limits
                        .iter()
                        .map(|(f, l)| (f.clone(), format!("{}/{}s", l.limit, l.window.as_secs())))
                        .collect(),
                ),
            })
        })
    }

    /// One more stream to keep (a `[[streams]]` entry of its own).
    pub fn stream(self, spec: StreamSpec) -> ConfigBuilder {
        self.with(|r| r.streams.push(raw_stream(spec)))
    }

    /// One more `[[accounts]]` entry; the accounts form does not mix with
    /// [`Self::stream`] and the `[binance]` credentials and URLs (as in a file).
    pub fn account(self, account: AccountSpec) -> ConfigBuilder {
        self.with(|r| {
            r.accounts.push(RawAccount {
                name: Some(account.name),
                venue: Some(account.venue),
                base_url: account.base_url.map(Into::into),
                margin_url: None,
                usdm_url: None,
                coinm_url: None,
                portfolio_margin_url: None,
                options_url: None,
                spot_url: None,
                futures_url: None,
                api_key: Some(account.api_key.expose().to_owned()),
                api_key_file: None,
                secret_key: account.secret_key.map(|s| s.expose().to_owned()),
                secret_key_file: None,
                private_key_file: None,
                api_key_header: None,
                signing: None,
                request_timeout: None,
                close_on_exit: None,
                egress: account.egress.map(|ip| ip.to_string()),
                streams: account
                    .streams
                    .into_iter()
                    .map(|spec| {
                        // The kind's default credential is left to the venue
                        // (a WOO X key rotates).
                        let default = spec.credential == spec.kind.default_credential();
                        let mut raw = raw_stream(spec);
                        if default {
                            raw.credential = None;
                        }
                        raw
                    })
                    .collect(),
            })
        })
    }

    /// More streams to keep, in order.
    pub fn streams(self, specs: impl IntoIterator<Item = StreamSpec>) -> ConfigBuilder {
        specs.into_iter().fold(self, ConfigBuilder::stream)
    }

    /// The whole `[timing]` section.
    pub fn timing(self, timing: Timing) -> ConfigBuilder {
        self.with(|r| {
            let t = &mut r.timing;
            t.keepalive_interval = timing.keepalive_interval;
            t.listen_key_validity = timing.listen_key_validity;
            t.token_validity = timing.token_validity;
            t.token_renew_before = timing.token_renew_before;
            t.jitter = timing.jitter;
        })
    }

    /// `timing.keepalive_interval`: the listen-key keepalive period.
    pub fn keepalive_interval(self, d: Duration) -> ConfigBuilder {
        self.with(|r| r.timing.keepalive_interval = d)
    }

    /// `timing.listen_key_validity`: how long a listen key lives after a POST or PUT.
    pub fn listen_key_validity(self, d: Duration) -> ConfigBuilder {
        self.with(|r| r.timing.listen_key_validity = d)
    }

    /// `timing.token_validity`: the listen-token validity requested.
    pub fn token_validity(self, d: Duration) -> ConfigBuilder {
        self.with(|r| r.timing.token_validity = d)
    }

    /// `timing.token_renew_before`: mint the next token when this much validity is left.
    pub fn token_renew_before(self, d: Duration) -> ConfigBuilder {
        self.with(|r| r.timing.token_renew_before = d)
    }

    /// `timing.jitter`: the ± fraction applied to every scheduled refresh.
    pub fn jitter(self, jitter: f64) -> ConfigBuilder {
        self.with(|r| r.timing.jitter = jitter)
    }

    /// `state.file`: where the state file goes.
    pub fn state_file(self, path: impl Into<PathBuf>) -> ConfigBuilder {
        let path = path.into();
        self.with(|r| r.state.file = Some(path))
    }

    /// `state.mode`: the state file's permission bits, e.g. `0o640`.
    pub fn state_mode(self, mode: u32) -> ConfigBuilder {
        self.with(|r| r.state.mode = format!("{mode:o}"))
    }

    /// `api.listen`: serve the local HTTP API there (loopback or a Unix socket).
    pub fn api_listen(mut self, listen: ApiListen) -> ConfigBuilder {
        let text = match &listen {
            ApiListen::Tcp(addr) => Some(addr.to_string()),
            ApiListen::Unix(path) => path.to_str().map(|p| format!("unix:{p}")),
        };
        match text {
            Some(text) => self.with(|r| r.api.listen = text),
            None => {
                self.listen_error = Some(ConfigError::new("api.listen", "the socket path is not UTF-8"));
                self
            }
        }
    }

    /// The API's timeouts and caps (not in the file; [`ApiLimits::default`] otherwise).
    pub fn api_limits(mut self, limits: ApiLimits) -> ConfigBuilder {
        self.api_limits = Some(limits);
        self
    }

    /// `[log]`: format and level, as the daemon applies them (a program that
    /// embeds the keeper sets up its own `tracing` subscriber).
    pub fn log(self, log: Log) -> ConfigBuilder {
        self.with(|r| {
            r.log.format = log.format.as_str().to_owned();
            r.log.level = log.level;
        })
    }

    /// One more `[[hooks]]` entry.
    pub fn hook(self, hook: Hook) -> ConfigBuilder {
        self.with(|r| {
            let (exec, signal, pid_file) = match hook.action {
                HookAction::Exec(argv) => (Some(argv), None, None),
                HookAction::Signal { signal, pid_file } => (None, Some(signal.name().to_owned()), Some(pid_file)),
            };
            r.hooks.push(RawHook {
                exec,
                signal,
                pid_file,
                timeout: hook.timeout,
                streams: hook
                    .streams
                    .map(|ids| ids.iter().map(|id| id.as_str().to_owned()).collect()),
            })
        })
    }

    /// Checks every value as a config file's would be, and resolves them.
    pub fn build(self) -> Result<Config, ConfigError> {
        if let Some(e) = self.listen_error {
            return Err(e);
        }
        let base_dir = std::env::current_dir().unwrap_or_default();
        let mut config = resolve::from_raw(self.raw?, &HashMap::new(), &base_dir)?;
        if let Some(signer) = self.signer {
            config.binance.signer = Some(signer);
            // The single-account form's one account follows `[binance]`.
            config.accounts = vec![super::Account::from_binance(&config.binance)];
        }
        if let Some(limits) = self.api_limits {
            config.api.limits = limits;
        }
        Ok(config)
    }
}

/// A stream as the file writes it.
fn raw_stream(spec: StreamSpec) -> RawStream {
    RawStream {
        kind: Some(spec.kind.as_str().to_owned()),
        symbols: spec.symbol.map(|s| vec![s]),
        credential: Some(spec.credential.as_str().to_owned()),
    }
}
