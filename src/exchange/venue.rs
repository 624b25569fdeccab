//! Venue profiles: everything that differs between the exchanges that hand out
//! listen keys, as data. A profile names the venue's kinds and, per kind, the
//! endpoint, the credential's shape (extendable key, listen token, rotating
//! key) and the production base URL; then the API-key header, how calls are
//! signed, what "key unknown" and rate limits look like, and where the
//! credential sits in a success answer. The scheduler, the client and the
//! config read these tables; none of them branches on a venue's name.
//!
//! The facts come from `venues.md`. Where it marks a detail uncertain (a
//! header name, a signing rule, an answer field), the detail is listed in
//! [`Venue::uncertain`] and the two that matter most, the API-key header and
//! the signing rule, can be overridden per account (`api_key_header`,
//! `signing`); the value here is the documented one.

use std::fmt;

use crate::reason::ErrorClass;
use crate::stream::{CredentialKind, Kind};

/// Which base URL of an account serves a route: the config key that sets it
/// (`usdm_url`), `base_url` setting all of them at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// Binance `/sapi` (isolated and cross margin, margin risk).
    Margin,
    /// Binance `/fapi`.
    Usdm,
    /// Binance `/dapi`.
    Coinm,
    /// Binance `/papi`.
    PortfolioMargin,
    /// Binance `/eapi`.
    Options,
    /// A venue's spot (or account-wide) REST host.
    Spot,
    /// A venue's futures REST host.
    Futures,
}

impl Family {
    /// Every family, in config order.
    pub const ALL: [Family; 7] = [
        Family::Margin,
        Family::Usdm,
        Family::Coinm,
        Family::PortfolioMargin,
        Family::Options,
        Family::Spot,
        Family::Futures,
    ];

    /// The config key that sets this family's URL.
    pub fn key(self) -> &'static str {
        match self {
            Family::Margin => "margin_url",
            Family::Usdm => "usdm_url",
            Family::Coinm => "coinm_url",
            Family::PortfolioMargin => "portfolio_margin_url",
            Family::Options => "options_url",
            Family::Spot => "spot_url",
            Family::Futures => "futures_url",
        }
    }
}

/// How a venue's calls are authenticated beyond the API-key header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// Unsigned; a configured secret signs nothing.
    None,
    /// Binance's rule: listen-token calls are signed (`timestamp`, `signature`
    /// in the query; HMAC-SHA256 hex or Ed25519) when a key is configured;
    /// listen-key calls are not.
    TokensOnly,
    /// Every call carries `timestamp` and an HMAC-SHA256 hex `signature` of
    /// the query (MEXC, Toobit, HashKey); a secret key is required.
    Query,
    /// WOO X's v3 rule: headers `x-api-timestamp` and `x-api-signature`, the
    /// HMAC-SHA256 hex of `timestamp + METHOD + path + body`; a secret key is required.
    Headers,
}

impl Signing {
    /// Every rule, as the config spells them.
    pub const ALL: [Signing; 4] = [Signing::None, Signing::TokensOnly, Signing::Query, Signing::Headers];

    /// The config spelling (`signing = "query-hmac"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Signing::None => "none",
            Signing::TokensOnly => "tokens",
            Signing::Query => "query-hmac",
            Signing::Headers => "header-hmac",
        }
    }

    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<Signing> {
        Signing::ALL.into_iter().find(|g| g.as_str() == s)
    }

    /// Whether every call needs a secret key.
    pub fn needs_secret(self) -> bool {
        matches!(self, Signing::Query | Signing::Headers)
    }
}

impl fmt::Display for Signing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whose budget a rate-limit answer spends, and so what it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The host (Binance's limits are per IP): every account calling it waits.
    Host,
    /// The account alone (WOO X's 5 requests per 10 s): other accounts go on.
    Account,
}

/// One kind a venue serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The kind (`kind` in the config).
    pub kind: Kind,
    /// The credential kept when the config names none.
    pub credential: CredentialKind,
    /// Whether a listen token may be chosen instead (Binance margin).
    pub tokens: bool,
    /// Which of the account's URLs serves it.
    pub family: Family,
    /// The production base URL of that family.
    pub production: &'static str,
    /// The listen-key endpoint.
    pub path: &'static str,
    /// Fixed query parameters every call carries (`category=USDC`).
    pub params: &'static [(&'static str, &'static str)],
    /// Whether keepalive and close name the key (`listenKey=`) in the query.
    pub key_param: bool,
    /// A fixed JSON body of the create call (WOO X's `{"type":"WEBSOCKET"}`).
    pub create_body: Option<&'static str>,
    /// The server-time endpoint (re-synced on a clock-skew answer).
    pub time_path: &'static str,
}

/// A venue: its kinds and the rules its answers follow.
#[derive(Debug, PartialEq, Eq)]
pub struct Venue {
    /// The config spelling (`venue = "mexc"`).
    pub name: &'static str,
    /// The venue's name for people.
    pub title: &'static str,
    /// Every kind it serves, in docs order.
    pub routes: &'static [Route],
    /// The header carrying the API key.
    pub api_key_header: &'static str,
    /// How calls are signed.
    pub signing: Signing,
    /// The venue's own error codes (of either sign) and their classes, over
    /// Binance's table: "key unknown" codes are gone keys.
    pub(crate) codes: &'static [(i64, ErrorClass)],
    /// HTTP statuses that mean the same on a keepalive (BingX's 404).
    pub gone_statuses: &'static [u16],
    /// What a 429/418 closes.
    pub rate_limit_scope: Scope,
    /// Where the credential is in a create answer (`data.authKey`).
    pub value_field: &'static str,
    /// Where its expiry is, in epoch ms, if the venue states one.
    pub expiry_field: &'static str,
    /// How sure our facts are, one line.
    pub confidence: &'static str,
    /// The settings taken from a source `venues.md` calls uncertain.
    pub uncertain: &'static [&'static str],
}

impl Venue {
    /// The route of `kind`, if the venue serves it.
    pub fn route(&self, kind: Kind) -> Option<&'static Route> {
        self.routes.iter().find(|r| r.kind == kind)
    }

    /// The venue's kinds, comma-separated, for messages.
    pub fn kinds(&self) -> String {
        self.routes
            .iter()
            .map(|r| r.kind.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Looks a venue up by its config spelling.
    pub fn by_name(name: &str) -> Option<&'static Venue> {
        VENUES.iter().copied().find(|v| v.name == name)
    }

    /// Every venue's config spelling, comma-separated.
    pub fn names() -> String {
        VENUES.iter().map(|v| v.name).collect::<Vec<_>>().join(", ")
    }
}

/// A listen-key route with the Binance defaults; the tables below override fields.
const fn key(
    kind: Kind,
    family: Family,
    production: &'static str,
    path: &'static str,
    time_path: &'static str,
) -> Route {
    Route {
        kind,
        credential: CredentialKind::ListenKey,
        tokens: false,
        family,
        production,
        path,
        params: &[],
        key_param: true,
        create_body: None,
        time_path,
    }
}

const BINANCE_SPOT: &str = "https://api.binance.com";

/// Binance: the kinds and endpoints of `binance-api.md`.
pub static BINANCE: Venue = Venue {
    name: "binance",
    title: "Binance",
    routes: &[
        Route {
            credential: CredentialKind::ListenToken,
            tokens: true,
            ..key(
                Kind::IsolatedMargin,
                Family::Margin,
                BINANCE_SPOT,
                "/sapi/v1/userDataStream/isolated",
                "/api/v3/time",
            )
        },
        Route {
            credential: CredentialKind::ListenToken,
            tokens: true,
            ..key(
                Kind::CrossMargin,
                Family::Margin,
                BINANCE_SPOT,
                "/sapi/v1/userDataStream",
                "/api/v3/time",
            )
        },
        Route {
            key_param: false,
            ..key(
                Kind::UsdmFutures,
                Family::Usdm,
                "https://fapi.binance.com",
                "/fapi/v1/listenKey",
                "/fapi/v1/time",
            )
        },
        Route {
            key_param: false,
            ..key(
                Kind::CoinmFutures,
                Family::Coinm,
                "https://dapi.binance.com",
                "/dapi/v1/listenKey",
                "/dapi/v1/time",
            )
        },
        Route {
            key_param: false,
            ..key(
                Kind::PortfolioMargin,
                Family::PortfolioMargin,
                "https://papi.binance.com",
                "/papi/v1/listenKey",
                "/papi/v1/time",
            )
        },
        Route {
            key_param: false,
            ..key(
                Kind::Options,
                Family::Options,
                "https://eapi.binance.com",
                "/eapi/v1/listenKey",
                "/eapi/v1/time",
            )
        },
        key(
            Kind::MarginRisk,
            Family::Margin,
            BINANCE_SPOT,
            "/sapi/v1/margin/listen-key",
            "/api/v3/time",
        ),
    ],
    api_key_header: "X-MBX-APIKEY",
    signing: Signing::TokensOnly,
    codes: &[],
    gone_statuses: &[],
    rate_limit_scope: Scope::Host,
    value_field: "listenKey",
    expiry_field: "expiration",
    confidence: "solid: Binance's API docs",
    uncertain: &[],
};

/// Binance.US: Binance's spot listen keys, still served there.
pub static BINANCE_US: Venue = Venue {
    name: "binance-us",
    title: "Binance.US",
    routes: &[key(
        Kind::Spot,
        Family::Spot,
        "https://api.binance.us",
        "/api/v3/userDataStream",
        "/api/v3/time",
    )],
    api_key_header: "X-MBX-APIKEY",
    signing: Signing::None,
    codes: &[(-1125, ErrorClass::Gone)],
    gone_statuses: &[],
    rate_limit_scope: Scope::Host,
    value_field: "listenKey",
    expiry_field: "expiration",
    confidence: "medium: binance-us-api-docs of 2024-06-17",
    uncertain: &["endpoints and lifetime (docs of 2024, 2026 status unverified)"],
};

/// MEXC spot: its own header, every call signed.
pub static MEXC: Venue = Venue {
    name: "mexc",
    title: "MEXC",
    routes: &[key(
        Kind::Spot,
        Family::Spot,
        "https://api.mexc.com",
        "/api/v3/userDataStream",
        "/api/v3/time",
    )],
    api_key_header: "X-MEXC-APIKEY",
    signing: Signing::Query,
    codes: &[
        (-1125, ErrorClass::Gone),
        (700_001, ErrorClass::Auth),
        (700_002, ErrorClass::Auth),
        (700_003, ErrorClass::ClockSkew),
    ],
    gone_statuses: &[],
    rate_limit_scope: Scope::Host,
    value_field: "listenKey",
    expiry_field: "expiration",
    confidence: "solid for lifetime and limits (60 keys per account); medium for signing",
    uncertain: &[
        "signing (query-hmac on every call)",
        "the \"key unknown\" code (Binance's -1125 assumed) and the error codes 700001-700003",
    ],
};

/// BingX: one endpoint for spot and perpetual, unsigned.
pub static BINGX: Venue = Venue {
    name: "bingx",
    title: "BingX",
    routes: &[
        key(
            Kind::Spot,
            Family::Spot,
            "https://open-api.bingx.com",
            "/openApi/user/auth/userDataStream",
            "/openApi/swap/v2/server/time",
        ),
        key(
            Kind::Perpetual,
            Family::Futures,
            "https://open-api.bingx.com",
            "/openApi/user/auth/userDataStream",
            "/openApi/swap/v2/server/time",
        ),
    ],
    api_key_header: "X-BX-APIKEY",
    signing: Signing::None,
    codes: &[],
    gone_statuses: &[404],
    rate_limit_scope: Scope::Host,
    value_field: "listenKey",
    expiry_field: "expiration",
    confidence: "medium: bingx-api docs, page dated 2022",
    uncertain: &[
        "signing (none)",
        "whether spot and perpetual share one key (same endpoint)",
    ],
};

/// Aster v1: Binance-compatible.
pub static ASTER: Venue = Venue {
    name: "aster",
    title: "Aster",
    routes: &[
        Route {
            key_param: false,
            ..key(
                Kind::Futures,
                Family::Futures,
                "https://fapi.asterdex.com",
                "/fapi/v1/listenKey",
                "/fapi/v1/time",
            )
        },
        key(
            Kind::Spot,
            Family::Spot,
            "https://sapi.asterdex.com",
            "/api/v1/listenKey",
            "/api/v1/time",
        ),
    ],
    api_key_header: "X-MBX-APIKEY",
    signing: Signing::None,
    codes: &[(-1125, ErrorClass::Gone)],
    gone_statuses: &[],
    rate_limit_scope: Scope::Host,
    value_field: "listenKey",
    expiry_field: "expiration",
    confidence: "solid: asterdex api-docs (v1 futures, spot)",
    uncertain: &["spot's API-key header (X-MBX-APIKEY assumed)"],
};

/// Toobit: spot, USDT-M and USDC-M futures, signed.
pub static TOOBIT: Venue = Venue {
    name: "toobit",
    title: "Toobit",
    routes: &[
        key(
            Kind::Spot,
            Family::Spot,
            "https://api.toobit.com",
            "/api/v1/userDataStream",
            "/api/v1/time",
        ),
        key(
            Kind::Futures,
            Family::Futures,
            "https://api.toobit.com",
            "/api/v1/listenKey",
            "/api/v1/time",
        ),
        Route {
            params: &[("category", "USDC")],
            ..key(
                Kind::UsdcFutures,
                Family::Futures,
                "https://api.toobit.com",
                "/api/v1/listenKey",
                "/api/v1/time",
            )
        },
    ],
    api_key_header: "X-BB-APIKEY",
    signing: Signing::Query,
    codes: &[(-1125, ErrorClass::Gone)],
    gone_statuses: &[],
    rate_limit_scope: Scope::Host,
    value_field: "listenKey",
    expiry_field: "expiration",
    confidence: "solid for endpoints and signing (Toobit API docs)",
    uncertain: &["the API-key header (X-BB-APIKEY assumed)", "the \"key unknown\" code"],
};

/// HashKey Global: one key per account, signed.
pub static HASHKEY: Venue = Venue {
    name: "hashkey",
    title: "HashKey",
    routes: &[key(
        Kind::Account,
        Family::Spot,
        "https://api-glb.hashkey.com",
        "/api/v1/userDataStream",
        "/api/v1/time",
    )],
    api_key_header: "X-HK-APIKEY",
    signing: Signing::Query,
    codes: &[(-1125, ErrorClass::Gone)],
    gone_statuses: &[],
    rate_limit_scope: Scope::Host,
    value_field: "listenKey",
    expiry_field: "expiration",
    confidence: "solid for endpoints and signing (HashKey Pro and Global docs)",
    uncertain: &[
        "the API-key header (X-HK-APIKEY assumed)",
        "the base URL (Global; Pro users set base_url)",
    ],
};

/// WOO X: a 24-hour key per account that a new mint kills.
pub static WOOX: Venue = Venue {
    name: "woox",
    title: "WOO X",
    routes: &[Route {
        credential: CredentialKind::RotatingKey,
        key_param: false,
        create_body: Some(r#"{"type":"WEBSOCKET"}"#),
        ..key(
            Kind::Account,
            Family::Spot,
            "https://api.woox.io",
            "/v3/account/listenKey",
            "/v1/public/system_info",
        )
    }],
    api_key_header: "x-api-key",
    signing: Signing::Headers,
    codes: &[
        (-1001, ErrorClass::Auth),
        (-1002, ErrorClass::Auth),
        (-1003, ErrorClass::RateLimited),
    ],
    gone_statuses: &[],
    rate_limit_scope: Scope::Account,
    value_field: "data.authKey",
    expiry_field: "data.expiredTime",
    confidence: "solid: WOO X API reference \"listen key\"",
    uncertain: &["the answer's field names (data.authKey, data.expiredTime) and error codes"],
};

/// Every venue, in docs order.
pub static VENUES: [&Venue; 8] = [&BINANCE, &BINANCE_US, &MEXC, &BINGX, &ASTER, &TOOBIT, &HASHKEY, &WOOX];

/// A family's documented per-IP request-weight limit: (family, weight, window in seconds).
pub type DocumentedLimit = (&'static str, u64, u64);

/// Binance's per-IP request-weight limits as documented: `api` 6,000 a
/// minute (FAQ 360004492232), `sapi` 12,000 a minute for each IP-limited
/// endpoint, `fapi` 2,400 a minute (futures rate-limit FAQ), `dapi` 2,400 (a
/// WebSocket API answer's example; sources conflict), `papi` 6,000 and `eapi`
/// 3,000 (not published by Binance: what maintained clients apply).
const BINANCE_WEIGHT_LIMITS: &[DocumentedLimit] = &[
    ("api", 6_000, 60),
    ("sapi", 12_000, 60),
    ("fapi", 2_400, 60),
    ("dapi", 2_400, 60),
    ("papi", 6_000, 60),
    ("eapi", 3_000, 60),
];

/// Binance's families that publish their limits at `GET {family}/exchangeInfo`:
/// (family, path, the call's weight).
const BINANCE_EXCHANGE_INFO: &[(&str, &str, u64)] = &[
    ("api", "/api/v3/exchangeInfo", 20),
    ("fapi", "/fapi/v1/exchangeInfo", 1),
    ("dapi", "/dapi/v1/exchangeInfo", 1),
    ("eapi", "/eapi/v1/exchangeInfo", 1),
];

impl Venue {
    /// The per-IP request-weight limits the venue documents, by family
    /// (a call path's first segment); empty where none is known, and then
    /// only `Retry-After` paces the keeper.
    pub fn weight_limits(&self) -> &'static [DocumentedLimit] {
        match self.name {
            "binance" => BINANCE_WEIGHT_LIMITS,
            _ => &[],
        }
    }

    /// The path and weight of `family`'s `exchangeInfo`, where the venue publishes its limits there.
    pub fn exchange_info(&self, family: &str) -> Option<(&'static str, u64)> {
        let published: &[(&str, &str, u64)] = match self.name {
            "binance" => BINANCE_EXCHANGE_INFO,
            _ => &[],
        };
        published.iter().find(|(f, _, _)| *f == family).map(|(_, p, w)| (*p, *w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_venue_is_found_by_name_and_its_routes_are_whole() {
        for v in VENUES {
            assert_eq!(Venue::by_name(v.name), Some(v));
            assert!(!v.routes.is_empty(), "{}", v.name);
            for r in v.routes {
                assert!(
                    r.path.starts_with('/') && r.production.starts_with("https://"),
                    "{}",
                    v.name
                );
                assert!(url::Url::parse(r.production).is_ok());
                assert_eq!(v.route(r.kind), Some(r));
            }
        }
        assert_eq!(Venue::by_name("kraken"), None);
        for s in Signing::ALL {
            assert_eq!(Signing::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn binance_keeps_its_families() {
        assert_eq!(BINANCE.route(Kind::Spot), None);
        assert_eq!(BINANCE.route(Kind::MarginRisk).unwrap().family, Family::Margin);
        assert!(BINANCE.route(Kind::CrossMargin).unwrap().tokens);
        assert_eq!(
            WOOX.route(Kind::Account).unwrap().credential,
            CredentialKind::RotatingKey
        );
    }
}
