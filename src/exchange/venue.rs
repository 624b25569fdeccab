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
//! [`Venue::unverified`] with the setting that overrides it (the API-key
//! header and the signing rule can be overridden per account,
//! `api_key_header` and `signing`), or, where none does, a request to report
//! what the venue answers; the value here is the documented one.

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

/// Which `code`s in an answer body mark an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRule {
    /// Binance's: a negative integer code (a positive one, such as a
    /// `{"code":200}`, is not an error).
    Negative,
    /// Any code but zero (`0`, `"0000"`), of either sign, integer or string:
    /// BingX's `100413`, MEXC's `730708`, HashKey's `"0003"`.
    NonZero,
}

/// How a venue writes an error answer, and what each of its codes means: the
/// table the client's classification reads. Codes are matched as the venue
/// writes them, an integer and a string of the same digits alike (`730708`
/// and `"730708"`), leading zeros kept (`"0003"` is not `3`).
#[derive(Debug, PartialEq, Eq)]
pub struct Errors {
    /// The body field holding the code (`code`).
    pub code_field: &'static str,
    /// The body field holding the message (`msg`; WOO X `message`).
    pub message_field: &'static str,
    /// A field that is `false` on every error, whatever the code (WOO X
    /// `success`).
    pub success_field: Option<&'static str>,
    /// Which codes mark an error.
    pub rule: CodeRule,
    /// The venue's own codes and their classes, looked up first.
    pub codes: &'static [(&'static str, ErrorClass)],
    /// Whether Binance's code table applies to the codes the venue's own
    /// table does not list (the Binance-compatible venues).
    pub binance_codes: bool,
    /// Codes that mark a success though [`Errors::rule`] would not (HashKey's `200`).
    pub ok_codes: &'static [&'static str],
}

impl Errors {
    /// The class of `code` (as the venue wrote it, see [`code_text`]), if
    /// the venue's table (or Binance's, where it applies) gives it one.
    pub fn class_of(&self, code: &str) -> Option<ErrorClass> {
        self.codes
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, class)| *class)
            .or_else(|| {
                self.binance_codes
                    .then(|| code.parse::<i64>().ok().and_then(binance_class))
                    .flatten()
            })
    }

    /// Whether `code` (as written) marks an error under [`Errors::rule`].
    pub fn is_error(&self, code: &str) -> bool {
        let digits = code.strip_prefix('-').unwrap_or(code);
        if self.ok_codes.contains(&code) {
            return false;
        }
        match self.rule {
            CodeRule::Negative => code.starts_with('-') && code.parse::<i64>().is_ok_and(|c| c < 0),
            CodeRule::NonZero => !digits.is_empty() && !digits.bytes().all(|b| b == b'0'),
        }
    }
}

/// A code as the venue wrote it: an integer's digits, or a short string of
/// letters, digits, `-` and `_` (anything else, or longer than 24 bytes, is
/// no code: it is neither looked up nor shown).
pub fn code_text(v: &serde_json::Value) -> Option<String> {
    let text = match v {
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        _ => return None,
    };
    let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    (!text.is_empty() && text.len() <= 24 && text.bytes().all(plain)).then_some(text)
}

/// Binance's error codes and their classes (`binance-api.md`).
pub fn binance_class(code: i64) -> Option<ErrorClass> {
    Some(match code {
        -1125 | -1209 => ErrorClass::Gone,
        -1021 => ErrorClass::ClockSkew,
        -1022 | -2014 | -2015 | -1002 => ErrorClass::Auth,
        -1003 => ErrorClass::RateLimited,
        -1121 | -3003 | -11001 | -1102 | -1100 | -1101 | -1104 | -1105 | -1106 => ErrorClass::Rejected,
        -1000 | -1001 | -1006 | -1007 | -1008 | -1016 => ErrorClass::Transient,
        _ => return None,
    })
}

/// Binance's error shape: `{"code":-1125,"msg":"…"}`, negative codes, its own table.
const BINANCE_ERRORS: Errors = Errors {
    code_field: "code",
    message_field: "msg",
    success_field: None,
    rule: CodeRule::Negative,
    codes: &[],
    binance_codes: true,
    ok_codes: &[],
};

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
    /// How its error answers are written and what their codes mean.
    pub errors: Errors,
    /// HTTP statuses that mean the same on a keepalive (BingX's 404).
    pub gone_statuses: &'static [u16],
    /// What a 429/418 closes.
    pub rate_limit_scope: Scope,
    /// Whether a create (POST) returns the account's active listen key,
    /// extended, when it has one (Binance), rather than minting a new key
    /// beside it (MEXC). Where it does not, the keeper keeps alive the key it
    /// persisted instead of creating one on start, and closes (DELETE) a key
    /// it replaces, so an account holds one live key of ours.
    pub create_returns_active_key: bool,
    /// Kinds served by one key upstream: the streams of one account in a
    /// group are kept as one credential (one create and keepalive, the value
    /// published under each stream's id, never closed while another holds it).
    pub shared_keys: &'static [&'static [Kind]],
    /// Where the credential is in a create answer (`data.authKey`).
    pub value_field: &'static str,
    /// Where its expiry is, in epoch ms, if the venue states one.
    pub expiry_field: &'static str,
    /// Where the server time (epoch ms) is in the answer of a route's
    /// `time_path` (`serverTime`; BingX `data.serverTime`, WOO X `timestamp`).
    pub time_field: &'static str,
    /// How sure our facts are, one line.
    pub confidence: &'static str,
    /// The facts the sources do not settle, one line each (as
    /// [`Venue::unverified`] states them).
    pub uncertain: &'static [&'static str],
    /// The facts the sources do not settle, each with how to override it.
    pub unverified: &'static [Unverified],
}

/// A fact of a profile that the sources do not settle, and what a user can
/// do about it.
#[derive(Debug, PartialEq, Eq)]
pub struct Unverified {
    /// The fact as the profile states it.
    pub fact: &'static str,
    /// The setting that overrides it, or what to do where none does.
    pub override_with: &'static str,
}

/// What to do about a fact no setting overrides.
const REPORT: &str = "no setting: please report what the venue answers (compare with the request log of `listenkeyd sim`)";

/// How to keep apart kinds a profile says share one key.
const SEPARATE: &str = "give the kind its own [[accounts]] entry to keep it apart";

impl Venue {
    /// The route of `kind`, if the venue serves it.
    pub fn route(&self, kind: Kind) -> Option<&'static Route> {
        self.routes.iter().find(|r| r.kind == kind)
    }

    /// The kinds that share one key with `kind` upstream (itself included),
    /// if any do.
    pub fn shared_with(&self, kind: Kind) -> Option<&'static [Kind]> {
        self.shared_keys.iter().copied().find(|g| g.contains(&kind))
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
    errors: BINANCE_ERRORS,
    gone_statuses: &[],
    rate_limit_scope: Scope::Host,
    create_returns_active_key: true,
    shared_keys: &[],
    value_field: "listenKey",
    expiry_field: "expiration",
    time_field: "serverTime",
    confidence: "solid: Binance's API docs",
    uncertain: &[],
    unverified: &[],
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
    errors: BINANCE_ERRORS,
    gone_statuses: &[],
    rate_limit_scope: Scope::Host,
    create_returns_active_key: true,
    shared_keys: &[],
    value_field: "listenKey",
    expiry_field: "expiration",
    time_field: "serverTime",
    confidence: "medium: binance-us-api-docs, last updated 2024-06-17; 2026 status unverified",
    uncertain: &[
        "endpoints and lifetime (docs of 2024-06-17; whether Binance.US followed Binance's 2026-02-20 spot retirement is unknown)",
    ],
    unverified: &[
        Unverified {
            fact: "endpoints and lifetime (docs of 2024-06-17; whether Binance.US followed Binance's 2026-02-20 spot retirement is unknown)",
            override_with: "base_url (or spot_url); listen_key_validity and keepalive_interval under [timing]",
        },
    ],
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
    errors: Errors {
        rule: CodeRule::NonZero,
        // MEXC spot v3 "error code" list; 730708 from a user's report of an
        // expired key (the only listen-key error witnessed).
        codes: &[
            ("730708", ErrorClass::Gone),
            ("-1125", ErrorClass::Gone),
            ("400", ErrorClass::Auth),
            ("401", ErrorClass::Auth),
            ("602", ErrorClass::Auth),
            ("700001", ErrorClass::Auth),
            ("700002", ErrorClass::Auth),
            ("700003", ErrorClass::ClockSkew),
            ("700006", ErrorClass::Auth),
            ("700007", ErrorClass::Auth),
            ("429", ErrorClass::RateLimited),
        ],
        binance_codes: false,
        ok_codes: &["200"],
        ..BINANCE_ERRORS
    },
    gone_statuses: &[],
    // Keyed endpoints are counted per account (UID), not per IP.
    rate_limit_scope: Scope::Account,
    create_returns_active_key: false,
    shared_keys: &[],
    value_field: "listenKey",
    expiry_field: "expiration",
    time_field: "serverTime",
    confidence: "medium: endpoints, header, signing, lifetime and the 60-key cap confirmed (MEXC docs, official demo); a create mints a new key; limits per account",
    uncertain: &[
        "the \"key unknown\" answer: 730708 \"listen key information error\" (one report; HTTP status unknown; -1125 kept)",
        "the answer to a create past the 60-key cap (not documented)",
    ],
    unverified: &[
        Unverified {
            fact: "the \"key unknown\" answer: 730708 \"listen key information error\" (one report; HTTP status unknown; -1125 kept)",
            override_with: REPORT,
        },
        Unverified {
            fact: "the answer to a create past the 60-key cap (not documented)",
            override_with: REPORT,
        },
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
        // Coin-M perpetuals (`cswap`): the same key serves them.
        key(
            Kind::CoinmFutures,
            Family::Futures,
            "https://open-api.bingx.com",
            "/openApi/user/auth/userDataStream",
            "/openApi/swap/v2/server/time",
        ),
    ],
    api_key_header: "X-BX-APIKEY",
    signing: Signing::None,
    errors: Errors {
        rule: CodeRule::NonZero,
        // Positive codes under HTTP 200 (BingX's error-code list).
        codes: &[
            ("100001", ErrorClass::Auth),
            ("100413", ErrorClass::Auth),
            ("100419", ErrorClass::Auth),
            ("100410", ErrorClass::RateLimited),
            ("100421", ErrorClass::ClockSkew),
            ("100500", ErrorClass::Transient),
            ("100503", ErrorClass::Transient),
        ],
        binance_codes: false,
        ..BINANCE_ERRORS
    },
    gone_statuses: &[404],
    rate_limit_scope: Scope::Host,
    create_returns_active_key: true,
    shared_keys: &[&[Kind::Spot, Kind::Perpetual, Kind::CoinmFutures]],
    value_field: "listenKey",
    expiry_field: "expiration",
    time_field: "data.serverTime",
    confidence: "medium-high: BingX docs of 2025-10 and a 2026 client (endpoints, header, no signing, lifetime, 404 for an unknown key)",
    uncertain: &[
        "the keepalive answer's body (the docs give only statuses)",
        "spot, perpetual and coin-M share one key (one endpoint; coin-M per a 2026 client)",
        "the error codes 100001, 100410, 100413, 100419, 100421, 100500, 100503",
        "rate limits per account and endpoint plus an IP cap (kept per host)",
    ],
    unverified: &[
        Unverified {
            fact: "the keepalive answer's body (the docs give only statuses)",
            override_with: REPORT,
        },
        Unverified {
            fact: "spot, perpetual and coin-M share one key (one endpoint; coin-M per a 2026 client)",
            override_with: SEPARATE,
        },
        Unverified {
            fact: "the error codes 100001, 100410, 100413, 100419, 100421, 100500, 100503",
            override_with: REPORT,
        },
        Unverified {
            fact: "rate limits per account and endpoint plus an IP cap (kept per host)",
            override_with: REPORT,
        },
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
    errors: BINANCE_ERRORS,
    gone_statuses: &[],
    rate_limit_scope: Scope::Host,
    create_returns_active_key: true,
    shared_keys: &[],
    value_field: "listenKey",
    expiry_field: "expiration",
    time_field: "serverTime",
    confidence: "high for existing V1 keys (asterdex api-docs, 2026-06-30); low for new users: no new V1 API key since 2026-03-25",
    uncertain: &[
        "V1 only: V3's API-wallet signing is not served, and no new V1 key can be created since 2026-03-25",
    ],
    unverified: &[
        Unverified {
            fact: "V1 only: V3's API-wallet signing is not served, and no new V1 key can be created since 2026-03-25",
            override_with: "none: existing V1 keys keep working",
        },
    ],
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
    errors: BINANCE_ERRORS,
    gone_statuses: &[],
    rate_limit_scope: Scope::Host,
    create_returns_active_key: true,
    shared_keys: &[&[Kind::Spot, Kind::Futures]],
    value_field: "listenKey",
    expiry_field: "expiration",
    time_field: "serverTime",
    confidence: "high: Toobit API docs and official SDK",
    uncertain: &[
        "spot and futures share one key (the maintained clients treat it so)",
        "the rate-limit scope (not documented; kept per host)",
    ],
    unverified: &[
        Unverified {
            fact: "spot and futures share one key (the maintained clients treat it so)",
            override_with: SEPARATE,
        },
        Unverified {
            fact: "the rate-limit scope (not documented; kept per host)",
            override_with: REPORT,
        },
    ],
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
    errors: Errors {
        rule: CodeRule::NonZero,
        // String codes (HashKey Pro's "error codes" page): a rate limit is
        // HTTP 400 with "0003". Its negative codes follow Binance's.
        codes: &[
            ("0001", ErrorClass::Rejected),
            ("0002", ErrorClass::Auth),
            ("0003", ErrorClass::RateLimited),
            ("0102", ErrorClass::Auth),
            ("0103", ErrorClass::Auth),
            ("0104", ErrorClass::Auth),
            ("0202", ErrorClass::Auth),
            ("-1000", ErrorClass::Transient),
            ("-1001", ErrorClass::Transient),
            ("-1002", ErrorClass::Auth),
        ],
        binance_codes: true,
        ok_codes: &["200"],
        ..BINANCE_ERRORS
    },
    gone_statuses: &[],
    rate_limit_scope: Scope::Host,
    create_returns_active_key: true,
    shared_keys: &[],
    value_field: "listenKey",
    expiry_field: "expiration",
    time_field: "serverTime",
    confidence: "medium: endpoints, header, signing, lifetime and base URL from clients and partial official pages",
    uncertain: &[
        "the \"key unknown\" code (Binance's -1125 assumed)",
        "DELETE /api/v1/userDataStream (no source shows it)",
        "the signature error's code (\"0002\" assumed: the Pro page lists \"0001\" twice)",
        "the base URL (Global; Pro users set base_url)",
    ],
    unverified: &[
        Unverified {
            fact: "the \"key unknown\" code (Binance's -1125 assumed)",
            override_with: REPORT,
        },
        Unverified {
            fact: "DELETE /api/v1/userDataStream (no source shows it)",
            override_with: "close_on_exit = false (the default) sends none",
        },
        Unverified {
            fact: "the signature error's code (\"0002\" assumed: the Pro page lists \"0001\" twice)",
            override_with: REPORT,
        },
        Unverified {
            fact: "the base URL (Global; Pro users set base_url)",
            override_with: "base_url",
        },
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
    errors: Errors {
        message_field: "message",
        success_field: Some("success"),
        rule: CodeRule::NonZero,
        // `{"success":false,"code":-1003,"message":"…"}`, the code an integer
        // or a string (WOO X API reference, "error codes").
        codes: &[
            ("-1000", ErrorClass::Transient),
            ("-1001", ErrorClass::Auth),
            ("-1002", ErrorClass::Auth),
            ("-1003", ErrorClass::RateLimited),
            ("-1004", ErrorClass::Rejected),
            ("-1005", ErrorClass::Rejected),
        ],
        binance_codes: false,
        ..BINANCE_ERRORS
    },
    gone_statuses: &[],
    rate_limit_scope: Scope::Account,
    create_returns_active_key: false,
    shared_keys: &[],
    value_field: "data.authKey",
    expiry_field: "data.expiredTime",
    time_field: "timestamp",
    confidence: "medium: endpoint, body, rotation, 24 h, limit, header and signing confirmed (WOO X API reference); data.authKey by two clients",
    uncertain: &[
        "data.expiredTime as an integer in epoch ms (only the field name is witnessed)",
        "the error codes -1000 to -1005, and no clock-skew code",
    ],
    unverified: &[
        Unverified {
            fact: "data.expiredTime as an integer in epoch ms (only the field name is witnessed)",
            override_with: REPORT,
        },
        Unverified {
            fact: "the error codes -1000 to -1005, and no clock-skew code",
            override_with: REPORT,
        },
    ],
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

    #[test]
    fn mexc_mints_per_create_and_counts_limits_per_account() {
        assert!(!MEXC.create_returns_active_key);
        assert_eq!(MEXC.rate_limit_scope, Scope::Account);
        assert!(BINANCE.create_returns_active_key && BINANCE_US.create_returns_active_key);
        assert_eq!(MEXC.errors.class_of("730708"), Some(ErrorClass::Gone));
        assert_eq!(HASHKEY.errors.class_of("0003"), Some(ErrorClass::RateLimited));
        assert_eq!(HASHKEY.errors.class_of("3"), None, "leading zeros are the code's");
        assert_eq!((BINGX.time_field, WOOX.time_field), ("data.serverTime", "timestamp"));
    }

    #[test]
    fn every_uncertain_fact_says_how_to_override_it() {
        for v in VENUES {
            let facts: Vec<&str> = v.unverified.iter().map(|u| u.fact).collect();
            assert_eq!(v.uncertain, facts.as_slice(), "{}", v.name);
            assert!(v.unverified.iter().all(|u| !u.override_with.is_empty()), "{}", v.name);
        }
        // Sharing is a guess where the profile shares: said so.
        for v in [&TOOBIT, &BINGX] {
            assert!(v.uncertain.iter().any(|f| f.contains("share one key")), "{}", v.name);
        }
    }
}
