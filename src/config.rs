//! STUB: replaced by the real config module when it lands.
use crate::binance::sign::Signer;
use crate::secret::Secret;
use crate::stream::{Kind, StreamSpec};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

#[derive(Debug, Clone)]
pub struct Config {
    pub binance: Binance,
    pub streams: Vec<StreamSpec>,
    pub timing: Timing,
    pub state: StateSettings,
    pub api: Api,
    pub log: Log,
    pub hooks: Vec<Hook>,
    pub source: Option<PathBuf>,
}
#[derive(Debug, Clone)]
pub struct Binance {
    pub margin_url: Url,
    pub usdm_url: Url,
    pub coinm_url: Url,
    pub portfolio_margin_url: Url,
    pub options_url: Url,
    pub api_key: Secret,
    pub signer: Option<Signer>,
    pub request_timeout: Duration,
    pub close_on_exit: bool,
}
impl Binance {
    pub fn url_for(&self, kind: Kind) -> &Url {
        match kind {
            Kind::IsolatedMargin | Kind::CrossMargin => &self.margin_url,
            Kind::UsdmFutures => &self.usdm_url,
            Kind::CoinmFutures => &self.coinm_url,
            Kind::PortfolioMargin => &self.portfolio_margin_url,
            Kind::Options => &self.options_url,
        }
    }
}
#[derive(Debug, Clone)]
pub struct Timing {
    pub keepalive_interval: Duration,
    pub listen_key_validity: Duration,
    pub token_validity: Duration,
    pub token_renew_before: Duration,
    pub jitter: f64,
}
#[derive(Debug, Clone)]
pub struct StateSettings {
    pub file: PathBuf,
    pub mode: u32,
}
#[derive(Debug, Clone)]
pub struct Api {
    pub listen: Option<ApiListen>,
    pub allow_remote: bool,
}
#[derive(Debug, Clone)]
pub enum ApiListen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}
#[derive(Debug, Clone)]
pub struct Log {
    pub format: LogFormat,
    pub level: String,
}
#[derive(Debug, Clone, Copy)]
pub enum LogFormat {
    Auto,
    Pretty,
    Json,
}
#[derive(Debug, Clone)]
pub struct Hook {
    pub action: HookAction,
    pub timeout: Duration,
    pub streams: Option<Vec<String>>,
}
#[derive(Debug, Clone)]
pub enum HookAction {
    Exec(Vec<String>),
    Signal { signal: String, pid_file: PathBuf },
}
#[derive(Debug, thiserror::Error)]
#[error("config error: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}
impl Config {
    pub fn load(_path: Option<&Path>) -> Result<Config, ConfigError> {
        Err(ConfigError {
            key: "stub".into(),
            message: "stub".into(),
        })
    }
    pub fn describe(&self) -> String {
        String::new()
    }
}
pub fn state_file_path(_path: Option<&Path>) -> Result<PathBuf, ConfigError> {
    Err(ConfigError {
        key: "stub".into(),
        message: "stub".into(),
    })
}
