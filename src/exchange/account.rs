//! An account as the exchange side sees it: which venue, where each API
//! family is reached, the credentials and signing rule, and the request
//! timeout. The configuration resolves `[[accounts]]` (and the single-account
//! `[binance]` form) into these; the client calls for exactly one.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use url::Url;

use crate::secret::Secret;
use crate::exchange::sign::Signer;
use crate::stream::Kind;
use crate::exchange::venue::{Family, Signing, Venue};

/// One account on one venue: where to reach it, its credentials, and the
/// venue profile's rules with the account's overrides.
#[derive(Debug, Clone)]
pub struct Account {
    /// `[a-z0-9-]{1,32}`; prefixes its stream ids (unless it is the
    /// single-account form's [`DEFAULT_ACCOUNT`](crate::stream::DEFAULT_ACCOUNT)).
    pub name: String,
    /// The venue profile.
    pub venue: &'static Venue,
    /// The base URL of each family the venue's kinds use.
    pub urls: BTreeMap<Family, Url>,
    /// The API key; never empty.
    pub api_key: Secret,
    /// Signs calls, when a secret or private key is configured.
    pub signer: Option<Signer>,
    /// The header carrying the API key (the venue's unless overridden).
    pub api_key_header: String,
    /// How calls are signed (the venue's rule unless overridden).
    pub signing: Signing,
    /// Timeout of every request; never zero.
    pub request_timeout: Duration,
    /// DELETE listen keys on shutdown.
    pub close_on_exit: bool,
    /// The local source address of its calls (`egress`); the system's choice when `None`.
    pub egress: Option<IpAddr>,
}

impl Account {
    /// The base URL serving streams of `kind`; `None` when the venue has no such kind.
    pub fn url_for(&self, kind: Kind) -> Option<&Url> {
        self.urls.get(&self.venue.route(kind)?.family)
    }

    /// A Binance account whose families are all served at `url`, without a
    /// signer (for this module's tests).
    #[cfg(test)]
    pub(crate) fn binance_at(url: &Url, api_key: &str, request_timeout: Duration) -> Account {
        use crate::stream::DEFAULT_ACCOUNT;
        use crate::exchange::venue::BINANCE;
        let families = [Family::Margin, Family::Usdm, Family::Coinm, Family::PortfolioMargin, Family::Options];
        Account {
            name: DEFAULT_ACCOUNT.to_owned(),
            venue: &BINANCE,
            urls: families.into_iter().map(|f| (f, url.clone())).collect(),
            api_key: Secret::new(api_key),
            signer: None,
            api_key_header: BINANCE.api_key_header.to_owned(),
            signing: BINANCE.signing,
            request_timeout,
            close_on_exit: false,
            egress: None,
        }
    }
}
