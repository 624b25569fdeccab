//! From the raw layer to [`Config`]: the resolution context (environment,
//! base directory), the order of the checks, and the `[binance]` URLs and
//! `[timing]` rules; the other sections have their own modules.
//!
//! Checks run section by section in file order, so the first problem reported
//! is usually the first one a reader of the file would meet; credentials come
//! last because they read files and the systemd credentials directory.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use url::Url;

use super::context::{Context, MAX_REQUEST_TIMEOUT, at_most, env_var_name, url};
use super::raw::{self, RawBinance, RawTiming};
use super::{Account, Binance, Config, ConfigError, Timing, accounts, credentials, local, streams};
use crate::exchange::budget::{self, Limits, WeightLimit};
use crate::exchange::venue::{self, Family};
use crate::stream::DEFAULT_ACCOUNT;

/// Listen tokens live at most this long (Binance's maximum).
const MAX_TOKEN_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// The longest listen-key lifetime accepted: Binance's is 60 minutes; a day
/// leaves room for compatible venues while keeping every deadline computed
/// from it (now + lifetime, jittered) far inside what time arithmetic holds.
const MAX_LISTEN_KEY_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// Layers, deserializes and resolves; an error whose key was set from the
/// environment says which variable set it.
pub(crate) fn load(
    text: Option<(&Path, &str)>,
    env: &HashMap<String, String>,
    base_dir: &Path,
) -> Result<Config, ConfigError> {
    let ctx = Context { env, base_dir };
    let file = text.map(|(path, _)| path);
    raw::layered(text, env)
        .and_then(|raw| resolve(raw, &ctx, file))
        .map_err(|e| name_env_origin(e, env))
}

/// Resolves raw values that did not come from text (the builder's).
pub(crate) fn from_raw(
    raw: raw::RawConfig,
    env: &HashMap<String, String>,
    base_dir: &Path,
) -> Result<Config, ConfigError> {
    resolve(raw, &Context { env, base_dir }, None)
}

/// Appends ` (from LISTENKEYD__SECTION__KEY)` when that variable is set.
fn name_env_origin(mut e: ConfigError, env: &HashMap<String, String>) -> ConfigError {
    let var = env_var_name(&e.key);
    if let Some(name) = env.keys().find(|k| k.eq_ignore_ascii_case(&var)) {
        e.message = format!("{} (from ${name})", e.message);
    }
    e
}

/// Every section, checked and resolved.
fn resolve(raw: raw::RawConfig, ctx: &Context<'_>, file: Option<&Path>) -> Result<Config, ConfigError> {
    let mut binance = binance(&raw.binance)?;
    let single = raw.accounts.is_empty();
    let streams = if single {
        let owner = streams::Owner {
            at: "streams",
            venue: &crate::exchange::venue::BINANCE,
            account: None,
        };
        streams::streams(&raw.streams, owner, &mut HashMap::new())?
    } else {
        accounts::forms_not_mixed(&raw)?;
        accounts::streams(&raw.accounts)?
    };
    let timing = timing(&raw.timing)?;
    let state = local::state(&raw.state, ctx)?;
    let api = local::api(&raw.api, ctx)?;
    let log = local::log(&raw.log)?;
    let hooks = streams::hooks(&raw.hooks, &streams, ctx)?;
    let (accounts, mut warnings) = if single {
        let warnings = credentials::resolve(&raw.binance, ctx, file, &mut binance)?;
        (vec![super::Account::from_binance(&binance)], warnings)
    } else {
        accounts::resolve(&raw.accounts, &binance, ctx, file)?
    };
    let (redis, ha) = super::redis::resolve(raw.redis.as_ref(), raw.ha.as_ref(), ctx, &mut warnings)?;
    let limits = limits(raw.limits.as_ref())?;
    Ok(Config {
        binance,
        accounts,
        streams,
        timing,
        state,
        api,
        log,
        hooks,
        redis,
        ha,
        limits,
        source: None,
        warnings,
    })
}

/// URLs, timeout and shutdown behaviour; credentials are filled in later by
/// [`credentials::resolve`] (the key starts empty).
fn binance(raw: &RawBinance) -> Result<Binance, ConfigError> {
    if raw.request_timeout.is_zero() {
        return Err(ConfigError::new("binance.request_timeout", "must be greater than zero"));
    }
    at_most(
        "binance.request_timeout",
        raw.request_timeout,
        MAX_REQUEST_TIMEOUT,
        "a request unanswered that long is lost",
    )?;
    let base = raw
        .base_url
        .as_deref()
        .map(|u| url("binance.base_url", u))
        .transpose()?;
    let family = |key: &str, given: &Option<String>, production: &str| -> Result<Url, ConfigError> {
        match (given, &base) {
            (Some(u), _) => url(&format!("binance.{key}"), u),
            (None, Some(b)) => Ok(b.clone()),
            (None, None) => Ok(Url::parse(production).expect("production URLs parse")),
        }
    };
    Ok(Binance {
        margin_url: family("margin_url", &raw.margin_url, "https://api.binance.com")?,
        usdm_url: family("usdm_url", &raw.usdm_url, "https://fapi.binance.com")?,
        coinm_url: family("coinm_url", &raw.coinm_url, "https://dapi.binance.com")?,
        portfolio_margin_url: family(
            "portfolio_margin_url",
            &raw.portfolio_margin_url,
            "https://papi.binance.com",
        )?,
        options_url: family("options_url", &raw.options_url, "https://eapi.binance.com")?,
        api_key: crate::secret::Secret::new(""),
        signer: None,
        request_timeout: raw.request_timeout,
        close_on_exit: raw.close_on_exit,
    })
}

/// `[limits]`: 0 < share <= ceiling <= 1; each weight limit `N/DURATION` of a family.
fn limits(raw: Option<&raw::RawLimits>) -> Result<Limits, ConfigError> {
    let defaults = Limits::default();
    let Some(raw) = raw else { return Ok(defaults) };
    let share = raw.share.unwrap_or(defaults.share);
    let ceiling = raw.ceiling.unwrap_or(defaults.ceiling);
    if !(share > 0.0 && share <= 1.0) {
        return Err(ConfigError::new("limits.share", format!("{share} is outside (0, 1]")));
    }
    if !(ceiling > 0.0 && ceiling <= 1.0) {
        return Err(ConfigError::new(
            "limits.ceiling",
            format!("{ceiling} is outside (0, 1]"),
        ));
    }
    if share > ceiling {
        let key = if raw.share.is_some() {
            "limits.share"
        } else {
            "limits.ceiling"
        };
        return Err(ConfigError::new(
            key,
            format!("share ({share}) is above ceiling ({ceiling}): the keeper alone would pass the ceiling"),
        ));
    }
    let mut weight_limits = Vec::new();
    for (family, text) in raw.weight_limits.iter().flatten() {
        let key = format!("limits.weight_limits.{family}");
        if !budget::is_family(family) {
            return Err(ConfigError::new(
                key,
                "not an API family: a call path's first segment in lower case (api, sapi, fapi, dapi, papi, eapi, …)",
            ));
        }
        let limit = WeightLimit::parse(text).map_err(|e| ConfigError::new(&key, e))?;
        weight_limits.push((family.clone(), limit));
    }
    Ok(Limits {
        share,
        ceiling,
        weight_limits,
    })
}

fn timing(raw: &RawTiming) -> Result<Timing, ConfigError> {
    let show = |d: Duration| humantime::format_duration(d).to_string();
    if raw.listen_key_validity.is_zero() {
        return Err(ConfigError::new(
            "timing.listen_key_validity",
            "must be greater than zero",
        ));
    }
    at_most(
        "timing.listen_key_validity",
        raw.listen_key_validity,
        MAX_LISTEN_KEY_VALIDITY,
        "Binance's listen keys live 60m",
    )?;
    if raw.keepalive_interval.is_zero() {
        return Err(ConfigError::new(
            "timing.keepalive_interval",
            "must be greater than zero",
        ));
    }
    if raw.keepalive_interval > raw.listen_key_validity / 2 {
        return Err(ConfigError::new(
            "timing.keepalive_interval",
            format!(
                "{} is more than half of timing.listen_key_validity ({}); a key must get two chances to be kept alive",
                show(raw.keepalive_interval),
                show(raw.listen_key_validity)
            ),
        ));
    }
    if raw.token_validity.is_zero() || raw.token_validity > MAX_TOKEN_VALIDITY {
        return Err(ConfigError::new(
            "timing.token_validity",
            format!(
                "{} is outside (0, 24h]: Binance grants listen tokens for at most 24h",
                show(raw.token_validity)
            ),
        ));
    }
    if raw.token_renew_before.is_zero() || raw.token_renew_before >= raw.token_validity {
        return Err(ConfigError::new(
            "timing.token_renew_before",
            format!(
                "{} must be greater than zero and less than timing.token_validity ({})",
                show(raw.token_renew_before),
                show(raw.token_validity)
            ),
        ));
    }
    if !(0.0..=0.5).contains(&raw.jitter) {
        return Err(ConfigError::new(
            "timing.jitter",
            format!("{} is outside [0, 0.5]", raw.jitter),
        ));
    }
    Ok(Timing {
        keepalive_interval: raw.keepalive_interval,
        listen_key_validity: raw.listen_key_validity,
        token_validity: raw.token_validity,
        token_renew_before: raw.token_renew_before,
        jitter: raw.jitter,
    })
}

impl Account {
    /// The single-account form's account: Binance, from `[binance]`.
    pub fn from_binance(binance: &Binance) -> Account {
        let urls = [
            (Family::Margin, &binance.margin_url),
            (Family::Usdm, &binance.usdm_url),
            (Family::Coinm, &binance.coinm_url),
            (Family::PortfolioMargin, &binance.portfolio_margin_url),
            (Family::Options, &binance.options_url),
        ]
        .into_iter()
        .map(|(f, u)| (f, u.clone()))
        .collect();
        Account {
            name: DEFAULT_ACCOUNT.to_owned(),
            venue: &venue::BINANCE,
            urls,
            api_key: binance.api_key.clone(),
            signer: binance.signer.clone(),
            api_key_header: venue::BINANCE.api_key_header.to_owned(),
            signing: venue::BINANCE.signing,
            request_timeout: binance.request_timeout,
            close_on_exit: binance.close_on_exit,
            egress: None,
        }
    }
}
