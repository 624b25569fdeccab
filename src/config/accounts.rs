//! `[[accounts]]`: several accounts, each on its venue, with its own
//! credentials, URLs and `[[accounts.streams]]`.
//!
//! The two forms do not mix: with `[[accounts]]`, top-level `[[streams]]` and
//! `[binance]`'s credentials and URLs are refused (naming the key), since it
//! would be unclear which account they belong to; `[binance]`'s
//! `request_timeout` and `close_on_exit` remain the accounts' defaults. An
//! account's name is `[a-z0-9-]{1,32}` and unique; its kinds are its venue's.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use reqwest::header::HeaderName;
use url::Url;

use super::context::{Context, MAX_REQUEST_TIMEOUT, at_most, url};
use super::credentials::{self, Sources};
use super::raw::{RawAccount, RawConfig};
use super::streams::{self, Owner};
use super::{Account, Binance, ConfigError};
use crate::exchange::sign::Signer;
use crate::exchange::venue::{Family, Signing, Venue};
use crate::stream::StreamSpec;

/// The longest account name.
const MAX_NAME_LEN: usize = 32;

/// Refuses the single-account form's keys beside `[[accounts]]`.
pub(crate) fn forms_not_mixed(raw: &RawConfig) -> Result<(), ConfigError> {
    if !raw.streams.is_empty() {
        return Err(ConfigError::new(
            "streams",
            "top-level [[streams]] belong to the single-account form; with [[accounts]], list each account's \
             streams under [[accounts.streams]]",
        ));
    }
    let b = &raw.binance;
    let set = [
        ("api_key", b.api_key.is_some()),
        ("api_key_file", b.api_key_file.is_some()),
        ("secret_key", b.secret_key.is_some()),
        ("secret_key_file", b.secret_key_file.is_some()),
        ("private_key_file", b.private_key_file.is_some()),
        ("base_url", b.base_url.is_some()),
        ("margin_url", b.margin_url.is_some()),
        ("usdm_url", b.usdm_url.is_some()),
        ("coinm_url", b.coinm_url.is_some()),
        ("portfolio_margin_url", b.portfolio_margin_url.is_some()),
        ("options_url", b.options_url.is_some()),
    ];
    if let Some((key, _)) = set.iter().find(|(_, set)| *set) {
        return Err(ConfigError::new(
            format!("binance.{key}"),
            "belongs to the single-account form; with [[accounts]], set it in the account's table",
        ));
    }
    Ok(())
}

/// The account's venue, its name checked (`[a-z0-9-]{1,32}`, unique).
fn identity<'a>(
    at: &str,
    raw: &'a RawAccount,
    names: &mut HashMap<&'a str, String>,
) -> Result<(&'a str, &'static Venue), ConfigError> {
    let Some(name) = raw.name.as_deref() else {
        return Err(ConfigError::new(
            format!("{at}.name"),
            "required: the account's name, [a-z0-9-]{1,32}, e.g. name = \"main\"",
        ));
    };
    let ok = (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(ConfigError::new(
            format!("{at}.name"),
            format!("{name:?} is not a valid account name ([a-z0-9-]{{1,32}})"),
        ));
    }
    if let Some(first) = names.get(name) {
        return Err(ConfigError::new(
            format!("{at}.name"),
            format!("duplicate account name {name:?} (already used by {first})"),
        ));
    }
    names.insert(name, at.to_owned());
    let venue = match raw.venue.as_deref() {
        None => {
            return Err(ConfigError::new(
                format!("{at}.venue"),
                format!("required (one of {})", Venue::names()),
            ));
        }
        Some(v) => Venue::by_name(v).ok_or_else(|| {
            ConfigError::new(
                format!("{at}.venue"),
                format!("unknown venue {v:?} (one of {})", Venue::names()),
            )
        })?,
    };
    Ok((name, venue))
}

/// Every account's streams, ids prefixed with the account's name.
pub(crate) fn streams(raw: &[RawAccount]) -> Result<Vec<StreamSpec>, ConfigError> {
    let mut names = HashMap::new();
    let mut seen = HashMap::new();
    let mut specs = Vec::new();
    for (i, account) in raw.iter().enumerate() {
        let at = format!("accounts[{i}]");
        let (name, venue) = identity(&at, account, &mut names)?;
        let owner = Owner {
            at: &format!("{at}.streams"),
            venue,
            account: Some(name),
        };
        specs.extend(streams::streams(&account.streams, owner, &mut seen)?);
    }
    Ok(specs)
}

/// Every account: URLs, overrides and credentials (read last: they touch files).
pub(crate) fn resolve(
    raw: &[RawAccount],
    defaults: &Binance,
    ctx: &Context<'_>,
    config_file: Option<&Path>,
) -> Result<(Vec<Account>, Vec<String>), ConfigError> {
    let mut accounts = Vec::new();
    let mut warnings = Vec::new();
    // The config file's mode is checked once, for the first account keeping a secret inline.
    let mut config_checked = false;
    for (i, r) in raw.iter().enumerate() {
        let at = format!("accounts[{i}]");
        // Checked by `streams` already; repeated here for the values.
        let (name, venue) = identity(&at, r, &mut HashMap::new())?;
        let urls = urls(&at, r, venue)?;
        let request_timeout = request_timeout(&at, r.request_timeout.unwrap_or(defaults.request_timeout))?;
        let api_key_header = api_key_header(&at, r.api_key_header.as_deref(), venue)?;
        let signing = signing(&at, r.signing.as_deref(), venue)?;
        let sources = Sources {
            at: &at,
            api_key: &r.api_key,
            api_key_file: &r.api_key_file,
            secret_key: &r.secret_key,
            secret_key_file: &r.secret_key_file,
            private_key_file: &r.private_key_file,
            credentials: (format!("{name}_api_key"), format!("{name}_secret_key")),
            missing: format!("set api_key_file or api_key, or provide $CREDENTIALS_DIRECTORY/{name}_api_key"),
        };
        let inline = r.api_key.is_some() || r.secret_key.is_some();
        let check = config_file.filter(|_| inline && !config_checked);
        config_checked |= check.is_some();
        let (api_key, signer) = credentials::read(&sources, ctx, check, &mut warnings)?;
        signer_fits(&at, signing, signer.as_ref(), venue)?;
        accounts.push(Account {
            name: name.to_owned(),
            venue,
            urls,
            api_key,
            signer,
            api_key_header,
            signing,
            request_timeout,
            close_on_exit: r.close_on_exit.unwrap_or(defaults.close_on_exit),
            egress: egress(&at, r.egress.as_deref())?,
        });
    }
    Ok((accounts, warnings))
}

/// `request_timeout`: above zero, at most [`MAX_REQUEST_TIMEOUT`].
fn request_timeout(at: &str, t: Duration) -> Result<Duration, ConfigError> {
    let key = format!("{at}.request_timeout");
    if t.is_zero() {
        return Err(ConfigError::new(key, "must be greater than zero"));
    }
    at_most(&key, t, MAX_REQUEST_TIMEOUT, "a request unanswered that long is lost")?;
    Ok(t)
}

/// `api_key_header`: the venue's, or a valid HTTP header name.
fn api_key_header(at: &str, given: Option<&str>, venue: &'static Venue) -> Result<String, ConfigError> {
    match given {
        None => Ok(venue.api_key_header.to_owned()),
        Some(h) if HeaderName::from_bytes(h.as_bytes()).is_ok() => Ok(h.to_owned()),
        Some(h) => Err(ConfigError::new(
            format!("{at}.api_key_header"),
            format!("{h:?} is not an HTTP header name"),
        )),
    }
}

/// `signing`: the venue's rule, or one named.
fn signing(at: &str, given: Option<&str>, venue: &'static Venue) -> Result<Signing, ConfigError> {
    match given {
        None => Ok(venue.signing),
        Some(s) => Signing::parse(s).ok_or_else(|| {
            ConfigError::new(
                format!("{at}.signing"),
                format!(
                    "unknown signing {s:?} (one of {})",
                    Signing::ALL.map(Signing::as_str).join(", ")
                ),
            )
        }),
    }
}

/// A venue that signs every call needs an HMAC secret.
fn signer_fits(at: &str, signing: Signing, signer: Option<&Signer>, venue: &'static Venue) -> Result<(), ConfigError> {
    if !signing.needs_secret() {
        return Ok(());
    }
    match signer {
        None => Err(ConfigError::new(
            format!("{at}.secret_key_file"),
            format!(
                "{} signs every call ({signing}): set secret_key_file or secret_key",
                venue.name
            ),
        )),
        Some(s) if s.algorithm() != "hmac-sha256" => Err(ConfigError::new(
            format!("{at}.private_key_file"),
            format!(
                "{} signs with HMAC ({signing}): set secret_key_file instead",
                venue.name
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// `egress`: a local IP address the account's calls are sent from.
fn egress(at: &str, given: Option<&str>) -> Result<Option<std::net::IpAddr>, ConfigError> {
    given
        .map(|text| {
            text.trim().parse().map_err(|_| {
                ConfigError::new(
                    format!("{at}.egress"),
                    format!("{text:?} is not an IP address (write e.g. \"203.0.113.7\" or \"2001:db8::7\")"),
                )
            })
        })
        .transpose()
}

/// The URL of each family the venue uses: its own key, else `base_url`, else
/// production. A family key the venue has no use for is refused.
fn urls(at: &str, r: &RawAccount, venue: &'static Venue) -> Result<BTreeMap<Family, Url>, ConfigError> {
    let given = |f: Family| match f {
        Family::Margin => &r.margin_url,
        Family::Usdm => &r.usdm_url,
        Family::Coinm => &r.coinm_url,
        Family::PortfolioMargin => &r.portfolio_margin_url,
        Family::Options => &r.options_url,
        Family::Spot => &r.spot_url,
        Family::Futures => &r.futures_url,
    };
    let used = |f: Family| venue.routes.iter().any(|route| route.family == f);
    if let Some(f) = Family::ALL.into_iter().find(|f| !used(*f) && given(*f).is_some()) {
        let keys: Vec<&str> = Family::ALL.into_iter().filter(|f| used(*f)).map(Family::key).collect();
        return Err(ConfigError::new(
            format!("{at}.{}", f.key()),
            format!(
                "{} has no use for it (its URL keys: base_url, {})",
                venue.name,
                keys.join(", ")
            ),
        ));
    }
    let base = r
        .base_url
        .as_deref()
        .map(|u| url(&format!("{at}.base_url"), u))
        .transpose()?;
    let mut urls = BTreeMap::new();
    for route in venue.routes {
        let f = route.family;
        let u = match (given(f), &base) {
            (Some(u), _) => url(&format!("{at}.{}", f.key()), u)?,
            (None, Some(b)) => b.clone(),
            (None, None) => url(&format!("{at}.{}", f.key()), route.production)?,
        };
        urls.insert(f, u);
    }
    Ok(urls)
}
