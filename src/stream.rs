//! The vocabulary every other module speaks: what a stream is (its kind, its
//! symbol for isolated margin, the credential it keeps) and how it is named.
//!
//! A stream id is the public name of one credential: `isolated-margin:BTCUSDT`
//! for a symbol, or the kind alone (`usdm-futures`) for an account-wide stream.
//! Streams of a named account (`[[accounts]]`) carry its name first:
//! `main/usdm-futures`, `main/isolated-margin:BTCUSDT`. The single-account form
//! (`[binance]` plus `[[streams]]`) keeps unprefixed ids; its account is
//! called [`DEFAULT_ACCOUNT`] internally.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The product a stream belongs to (`kind` in the config): Binance's API
/// families, and the product names other venues use (see the venue profiles, `listenkeyd::venue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Isolated margin, one stream per symbol (`/sapi`).
    IsolatedMargin,
    /// Cross margin, one stream per account (`/sapi`).
    CrossMargin,
    /// USD-M futures (`/fapi`).
    UsdmFutures,
    /// COIN-M futures (`/dapi`).
    CoinmFutures,
    /// Portfolio margin (`/papi`).
    PortfolioMargin,
    /// European options (`/eapi`).
    Options,
    /// The margin risk data stream (margin calls, liabilities), one per account (`/sapi/v1/margin/listen-key`).
    MarginRisk,
    /// A venue's spot account (Binance.US, MEXC, BingX, Aster, Toobit).
    Spot,
    /// A venue's (USDT-margined) futures (Aster, Toobit).
    Futures,
    /// A venue's perpetual swaps (BingX).
    Perpetual,
    /// USDC-margined futures (Toobit).
    UsdcFutures,
    /// One key for the whole account (HashKey, WOO X).
    Account,
}

impl Kind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [Kind; 12] = [
        Kind::IsolatedMargin,
        Kind::CrossMargin,
        Kind::UsdmFutures,
        Kind::CoinmFutures,
        Kind::PortfolioMargin,
        Kind::Options,
        Kind::MarginRisk,
        Kind::Spot,
        Kind::Futures,
        Kind::Perpetual,
        Kind::UsdcFutures,
        Kind::Account,
    ];

    /// The config spelling, e.g. `isolated-margin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::IsolatedMargin => "isolated-margin",
            Kind::CrossMargin => "cross-margin",
            Kind::UsdmFutures => "usdm-futures",
            Kind::CoinmFutures => "coinm-futures",
            Kind::PortfolioMargin => "portfolio-margin",
            Kind::Options => "options",
            Kind::MarginRisk => "margin-risk",
            Kind::Spot => "spot",
            Kind::Futures => "futures",
            Kind::Perpetual => "perpetual",
            Kind::UsdcFutures => "usdc-futures",
            Kind::Account => "account",
        }
    }

    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether streams of this kind are per symbol.
    pub fn per_symbol(self) -> bool {
        self == Kind::IsolatedMargin
    }

    /// Whether this kind can use a listen token (margin only).
    pub fn supports_token(self) -> bool {
        matches!(self, Kind::IsolatedMargin | Kind::CrossMargin)
    }

    /// The credential used when the config names none.
    pub fn default_credential(self) -> CredentialKind {
        if self.supports_token() {
            CredentialKind::ListenToken
        } else {
            CredentialKind::ListenKey
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which credential a stream keeps fresh (`credential` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    /// A listen key: 60 minutes, extended by PUT.
    ListenKey,
    /// A listen token: up to 24 hours, replaced by minting a new one.
    ListenToken,
    /// A key with a fixed lifetime that cannot be extended, and that minting a
    /// new one kills at once (WOO X): replaced before it expires.
    RotatingKey,
}

impl CredentialKind {
    /// The config spelling, e.g. `listen-token`.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::ListenKey => "listen-key",
            CredentialKind::ListenToken => "listen-token",
            CredentialKind::RotatingKey => "rotating-key",
        }
    }

    /// Whether the credential is extended in place (a keepalive) rather than
    /// replaced by a new mint.
    pub fn extendable(self) -> bool {
        self == CredentialKind::ListenKey
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The account of the single-account form (`[binance]` plus `[[streams]]`),
/// whose stream ids carry no prefix.
pub const DEFAULT_ACCOUNT: &str = "default";

/// The public name of a stream: `kind` or `kind:SYMBOL`, after `account/`
/// for a named account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamId(String);

impl StreamId {
    /// The id of the stream of `kind` for `symbol` (ignored unless per symbol).
    pub fn new(kind: Kind, symbol: Option<&str>) -> StreamId {
        match symbol {
            Some(s) if kind.per_symbol() => StreamId(format!("{kind}:{s}")),
            _ => StreamId(kind.as_str().to_owned()),
        }
    }

    /// The id of a named account's stream: `account/kind[:SYMBOL]`.
    pub fn in_account(account: &str, kind: Kind, symbol: Option<&str>) -> StreamId {
        StreamId(format!("{account}/{}", StreamId::new(kind, symbol).0))
    }

    /// The account the stream belongs to: the prefix before `/`, or
    /// [`DEFAULT_ACCOUNT`] for an unprefixed id.
    pub fn account(&self) -> &str {
        self.0.split_once('/').map_or(DEFAULT_ACCOUNT, |(a, _)| a)
    }

    /// An id from its text form (as found in a state file).
    pub fn from_string(id: String) -> StreamId {
        StreamId(id)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One resolved stream: everything the scheduler needs to know about what it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// The public name.
    pub id: StreamId,
    /// The API family.
    pub kind: Kind,
    /// The isolated-margin symbol, `None` for account-wide streams.
    pub symbol: Option<String>,
    /// The credential kept for this stream.
    pub credential: CredentialKind,
    /// The account it belongs to ([`DEFAULT_ACCOUNT`] in the single-account form).
    pub account: String,
    /// The account's venue (`binance`, `mexc`, …).
    pub venue: &'static str,
}

impl StreamSpec {
    /// The account-wide stream of `kind` with the kind's default credential
    /// (a listen token for cross margin, a listen key otherwise).
    ///
    /// ```
    /// use listenkeyd::stream::{CredentialKind, Kind, StreamSpec};
    ///
    /// let usdm = StreamSpec::account_wide(Kind::UsdmFutures);
    /// assert_eq!(usdm.id.as_str(), "usdm-futures");
    /// assert_eq!(usdm.credential, CredentialKind::ListenKey);
    /// let legacy = StreamSpec::account_wide(Kind::CrossMargin).with_credential(CredentialKind::ListenKey);
    /// assert_eq!(legacy.id.as_str(), "cross-margin");
    /// ```
    pub fn account_wide(kind: Kind) -> StreamSpec {
        StreamSpec::new(kind, None, kind.default_credential())
    }

    /// The isolated-margin stream of `symbol`, with a listen token. The
    /// symbol is checked when the config is built.
    ///
    /// ```
    /// use listenkeyd::stream::StreamSpec;
    ///
    /// assert_eq!(StreamSpec::isolated_margin("BTCUSDT").id.as_str(), "isolated-margin:BTCUSDT");
    /// ```
    pub fn isolated_margin(symbol: impl Into<String>) -> StreamSpec {
        let kind = Kind::IsolatedMargin;
        StreamSpec::new(kind, Some(symbol.into()), kind.default_credential())
    }

    /// The same stream with another credential.
    pub fn with_credential(self, credential: CredentialKind) -> StreamSpec {
        StreamSpec { credential, ..self }
    }

    /// A stream of the single-account form: a Binance stream with an unprefixed id.
    pub fn new(kind: Kind, symbol: Option<String>, credential: CredentialKind) -> StreamSpec {
        StreamSpec {
            id: StreamId::new(kind, symbol.as_deref()),
            kind,
            symbol,
            credential,
            account: DEFAULT_ACCOUNT.to_owned(),
            venue: "binance",
        }
    }

    /// A stream of the named `account` on `venue`, its id prefixed with the name.
    pub fn in_account(
        account: &str,
        venue: &'static str,
        kind: Kind,
        symbol: Option<String>,
        credential: CredentialKind,
    ) -> StreamSpec {
        StreamSpec {
            id: StreamId::in_account(account, kind, symbol.as_deref()),
            kind,
            symbol,
            credential,
            account: account.to_owned(),
            venue,
        }
    }

    /// Whether the stream belongs to a named account (its id is prefixed).
    pub fn named_account(&self) -> bool {
        self.id.as_str().contains('/')
    }
}

/// Whether `s` is a well-formed symbol: upper-case `[A-Z0-9]{5,20}`.
pub(crate) fn valid_symbol(s: &str) -> bool {
    (5..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// The longest credential accepted, in bytes: eight times the longest Binance
/// issues (64-character listen keys, ~70-character tokens), small enough for
/// one header line, one argv entry and one log field.
pub const MAX_CREDENTIAL_LEN: usize = 512;

/// Whether `s` can be a listen key or token: 1 to [`MAX_CREDENTIAL_LEN`]
/// bytes, each printable ASCII other than space.
pub fn plausible_credential(s: &str) -> bool {
    (1..=MAX_CREDENTIAL_LEN).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(
            StreamId::new(Kind::IsolatedMargin, Some("BTCUSDT")).as_str(),
            "isolated-margin:BTCUSDT"
        );
        assert_eq!(StreamId::new(Kind::UsdmFutures, None).as_str(), "usdm-futures");
        assert_eq!(Kind::parse("coinm-futures"), Some(Kind::CoinmFutures));
        assert_eq!(Kind::parse("margin-risk"), Some(Kind::MarginRisk));
        assert_eq!(StreamId::new(Kind::MarginRisk, None).as_str(), "margin-risk");
        assert_eq!(Kind::parse("spot"), Some(Kind::Spot));
        assert_eq!(StreamId::new(Kind::UsdmFutures, None).account(), DEFAULT_ACCOUNT);
        let id = StreamId::in_account("main", Kind::IsolatedMargin, Some("BTCUSDT"));
        assert_eq!((id.as_str(), id.account()), ("main/isolated-margin:BTCUSDT", "main"));
    }

    #[test]
    fn symbols() {
        assert!(valid_symbol("BTCUSDT"));
        assert!(!valid_symbol("btcusdt"));
        assert!(!valid_symbol("BTC"));
        assert!(!valid_symbol("BTC-USDT"));
    }
}
