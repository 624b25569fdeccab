//! Request weight, as Binance counts and enforces it: per client IP and API
//! family (`api`, `sapi`, `fapi`, `dapi`, `papi`, `eapi`), in fixed windows
//! aligned to the clock (a minute by default, seconds in tests). Every answer
//! carries the weight the IP has used in the current window
//! (`X-MBX-USED-WEIGHT-<n><unit>`; on `/sapi`, `X-SAPI-USED-IP-WEIGHT-1M` and,
//! per API key, `X-SAPI-USED-UID-WEIGHT-1M`). A request that would take the
//! IP past its family's limit is refused with 429, `Retry-After` and `-1003`,
//! and the IP must wait until the window ends; a request sent during that
//! back-off earns an IP ban, answered 418 with a `Retry-After` that doubles
//! with every ban (2 minutes at first, at most 3 days), except on `/sapi`,
//! which answers 429 only. Refused requests are not charged.
//!
//! The weight of other clients on the same IP (the trading bots beside the
//! keeper) is modelled as a background load spread evenly over each window
//! (`--background-weight`) and as bursts added through `POST /_sim/weight`.
//! Venues other than Binance are counted but not limited unless a limit is
//! given for their prefixed family (`mexc/api`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Value, json};

/// The longest ban: Binance bans "from 2 minutes to 3 days".
pub const MAX_BAN: Duration = Duration::from_secs(3 * 24 * 60 * 60);

/// The first ban's length, doubled for each later one (`--ban-base`).
pub const DEFAULT_BAN_BASE: Duration = Duration::from_secs(2 * 60);

/// The longest window a limit may have (Binance's longest interval is a day).
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// The largest weight one admin request or background load may add.
pub const MAX_ADDED: u64 = 1 << 40;

/// A weight limit: at most `limit` weight in each window of `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The weight allowed per window.
    pub limit: u64,
    /// The window, a whole number of seconds.
    pub window: Duration,
}

impl Limit {
    /// `N/DUR`, e.g. `2400/1m` or `50/2s`; the window is whole seconds, at most a day.
    pub fn parse(s: &str) -> Result<Limit, String> {
        let (n, d) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: expected N/DURATION"))?;
        let limit = n
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("{s:?}: {n:?} is not a weight"))?;
        let window = humantime::parse_duration(d.trim()).map_err(|e| format!("{s:?}: {e}"))?;
        if limit == 0 || limit > MAX_ADDED {
            return Err(format!("{s:?}: the limit must be in 1..={MAX_ADDED}"));
        }
        if window.is_zero() || window > MAX_WINDOW || window.subsec_nanos() != 0 {
            return Err(format!("{s:?}: the window must be whole seconds, at most a day"));
        }
        Ok(Limit { limit, window })
    }

    /// The window, ms.
    fn window_ms(self) -> i64 {
        self.window.as_millis() as i64
    }

    /// The interval as `exchangeInfo` states it: (`SECOND` | `MINUTE` | `HOUR` | `DAY`, count).
    pub fn interval(self) -> (&'static str, u64) {
        let s = self.window.as_secs();
        for (unit, len) in [("DAY", 86_400), ("HOUR", 3_600), ("MINUTE", 60)] {
            if s % len == 0 {
                return (unit, s / len);
            }
        }
        ("SECOND", s)
    }

    /// The suffix of the used-weight header: `1M`, `5S`, `1H`, `1D`.
    pub fn header_suffix(self) -> String {
        let (unit, n) = self.interval();
        format!("{n}{}", &unit[..1])
    }
}

/// `FAMILY=N/DUR` (`--weight-limit fapi=50/2s`).
pub fn parse_family_limit(s: &str) -> Result<(String, Limit), String> {
    let (family, limit) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected FAMILY=N/DURATION"))?;
    Ok((family_name(family)?, Limit::parse(limit)?))
}

/// `FAMILY=N` (`--background-weight fapi=1800`): weight per window.
pub fn parse_family_weight(s: &str) -> Result<(String, u64), String> {
    let (family, n) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected FAMILY=N"))?;
    let n = n
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("{s:?}: {n:?} is not a weight"))?;
    if n > MAX_ADDED {
        return Err(format!("{s:?}: at most {MAX_ADDED}"));
    }
    Ok((family_name(family)?, n))
}

/// A family name as given: lower-case letters, digits, `-` and one `/` (a venue prefix).
fn family_name(s: &str) -> Result<String, String> {
    let s = s.trim();
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.split('/').count() <= 2
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'/');
    match ok {
        true => Ok(s.to_owned()),
        false => Err(format!("{s:?} is not an API family (fapi, sapi, mexc/api, …)")),
    }
}

/// The family of a request: its path's first segment (`/fapi/v1/ping` →
/// `fapi`), after the venue prefix when there is one (`/mexc` → `mexc/api`).
pub fn family(prefix: &str, path: &str) -> String {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match prefix.trim_start_matches('/') {
        "" => first.to_owned(),
        venue => format!("{venue}/{first}"),
    }
}

/// Binance's published per-IP request-weight limits, per family. `api`:
/// 6,000 a minute (spot `exchangeInfo`, FAQ 360004492232); `sapi`: 12,000 a
/// minute for each IP-limited endpoint; `fapi`: 2,400 a minute (futures FAQ);
/// `dapi`: 2,400 (what a WebSocket API answer shows; sources conflict);
/// `papi`: 6,000 and `eapi`: 3,000 (not published by Binance: what
/// maintained clients apply).
pub fn published_limit(family: &str) -> Option<Limit> {
    let per_minute = |limit| {
        Some(Limit {
            limit,
            window: Duration::from_secs(60),
        })
    };
    match family {
        "api" | "papi" => per_minute(6_000),
        "sapi" => per_minute(12_000),
        "fapi" | "dapi" => per_minute(2_400),
        "eapi" => per_minute(3_000),
        _ => None,
    }
}

/// What a request weighs: spot's `exchangeInfo` 20, everything else the
/// simulator serves 1 (listen keys, listen tokens, ping, time).
pub fn weight_of(family: &str, path: &str) -> u64 {
    match (family, path) {
        ("api", "/api/v3/exchangeInfo") => 20,
        _ => 1,
    }
}

/// The rules the counters are kept by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Enforce the limits (429 and 418); when false, weight is only counted and reported.
    pub enforce: bool,
    /// Limits that replace the published ones, per family.
    pub limits: Vec<(String, Limit)>,
    /// Weight other clients of each IP spend per window, per family, spread evenly over it.
    pub background: Vec<(String, u64)>,
    /// The first ban's length; each later ban of the same IP and family doubles it, up to [`MAX_BAN`].
    pub ban_base: Duration,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            enforce: true,
            limits: Vec::new(),
            background: Vec::new(),
            ban_base: DEFAULT_BAN_BASE,
        }
    }
}

impl Rules {
    /// The limit of `family`: a given one, else the published one.
    pub fn limit(&self, family: &str) -> Option<Limit> {
        self.limits
            .iter()
            .rev()
            .find(|(f, _)| f == family)
            .map(|(_, l)| *l)
            .or_else(|| published_limit(family))
    }

    /// The background weight of `family` per window.
    fn background(&self, family: &str) -> u64 {
        self.background
            .iter()
            .rev()
            .find(|(f, _)| f == family)
            .map_or(0, |(_, w)| *w)
    }

    /// `rateLimits` of an `exchangeInfo` answer for `family`.
    pub fn rate_limits(&self, family: &str) -> Value {
        let Some(l) = self.limit(family) else {
            return json!([]);
        };
        let (interval, n) = l.interval();
        json!([
            { "rateLimitType": "REQUEST_WEIGHT", "interval": interval, "intervalNum": n, "limit": l.limit },
            { "rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100 },
            { "rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61_000 },
        ])
    }
}

/// Weight used in one window.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    /// Start of the window counted, ms on the simulator's clock.
    start_ms: i64,
    /// Weight charged in it, added bursts included.
    used: u64,
}

impl Window {
    /// Starts a new window if `now_ms` is past this one.
    fn roll(&mut self, now_ms: i64, window_ms: i64) {
        let start = now_ms - now_ms.rem_euclid(window_ms);
        if start != self.start_ms {
            *self = Window {
                start_ms: start,
                used: 0,
            };
        }
    }
}

/// An IP's back-off after a 429, or its ban after a 418.
#[derive(Debug, Clone, Copy, Default)]
struct Penalty {
    /// Until when, ms on the simulator's clock.
    until_ms: i64,
    /// Bans so far (each doubles the next one).
    bans: u32,
}

/// The decision on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Served; its answer carries these weight headers.
    Allowed(Vec<(String, String)>),
    /// Refused with this status (429 or 418), body and headers (`Retry-After` included).
    Refused {
        /// 429 or 418.
        status: u16,
        /// Binance's error JSON.
        body: String,
        /// `Retry-After` and the weight headers.
        headers: Vec<(String, String)>,
    },
}

/// A snapshot of one IP's window, for `GET /_sim/weight` and tests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// The client IP.
    pub ip: String,
    /// The API family.
    pub family: String,
    /// Weight used in the current window, background included.
    pub used: u64,
    /// The family's limit per window, when it has one.
    pub limit: Option<u64>,
    /// Requests refused with 429 so far.
    pub refused_429: u64,
    /// Requests refused with 418 so far.
    pub refused_418: u64,
    /// Ms until the IP's back-off or ban ends, 0 when it has none.
    pub penalty_ms: i64,
}

/// One IP's counters for one family.
#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    /// The current window.
    window: Window,
    /// Back-off or ban.
    penalty: Penalty,
    /// 429s answered.
    refused_429: u64,
    /// 418s answered.
    refused_418: u64,
}

/// Every IP's weight, by the rules.
#[derive(Debug, Default)]
pub struct Weights {
    /// The rules.
    rules: Rules,
    /// Per (client IP, family).
    ip: HashMap<(IpAddr, String), Counter>,
    /// `/sapi` weight per API key, a minute at a time.
    uid: HashMap<String, Window>,
}

/// The window used when a family has no limit: a minute, as Binance reports.
const MINUTE_MS: i64 = 60_000;

impl Weights {
    /// Counters kept by `rules`.
    pub fn new(rules: Rules) -> Weights {
        Weights {
            rules,
            ..Weights::default()
        }
    }

    /// The rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Decides on one request of `weight` from `peer` to `family` at `now_ms`
    /// (with `api_key`, if sent), and charges it when it is served.
    pub fn admit(&mut self, now_ms: i64, peer: IpAddr, family: &str, api_key: Option<&str>, weight: u64) -> Verdict {
        let limit = self.rules.limit(family);
        let window_ms = limit.map_or(MINUTE_MS, Limit::window_ms);
        let background = self.background_at(family, now_ms, window_ms);
        let enforce = self.rules.enforce;
        let ban_base = self.rules.ban_base;
        let c = self.ip.entry((peer, family.to_owned())).or_default();
        c.window.roll(now_ms, window_ms);
        let used = c.window.used.saturating_add(background);
        let sapi = family == "sapi";

        if enforce && now_ms < c.penalty.until_ms {
            if sapi {
                c.refused_429 += 1;
                let wait = c.penalty.until_ms - now_ms;
                return refusal(
                    429,
                    too_many(peer, limit),
                    wait,
                    used_headers(family, limit, used, None),
                );
            }
            // Sending on during a back-off or a ban: a (longer) ban.
            c.penalty.bans = c.penalty.bans.saturating_add(1);
            let factor = 1u32.checked_shl(c.penalty.bans - 1).unwrap_or(u32::MAX);
            let ban = ban_base.saturating_mul(factor).min(MAX_BAN);
            c.penalty.until_ms = now_ms.saturating_add(ban.as_millis() as i64);
            c.refused_418 += 1;
            let body = json!({
                "code": -1003,
                "msg": format!(
                    "Way too many requests; IP({peer}) banned until {}. Please use the websocket for live updates to avoid bans.",
                    c.penalty.until_ms
                ),
            });
            return refusal(
                418,
                body,
                ban.as_millis() as i64,
                used_headers(family, limit, used, None),
            );
        }
        if let Some(l) = limit.filter(|l| enforce && used.saturating_add(weight) > l.limit) {
            let window_end = c.window.start_ms + window_ms;
            c.penalty.until_ms = window_end;
            c.refused_429 += 1;
            return refusal(
                429,
                too_many(peer, Some(l)),
                window_end - now_ms,
                used_headers(family, limit, used, None),
            );
        }
        c.window.used = c.window.used.saturating_add(weight);
        let used = used.saturating_add(weight);
        let uid = match api_key.map(str::trim).filter(|k| sapi && !k.is_empty()) {
            Some(key) => {
                let w = self.uid.entry(key.to_owned()).or_default();
                w.roll(now_ms, MINUTE_MS);
                w.used = w.used.saturating_add(weight);
                Some(w.used)
            }
            None => None,
        };
        Verdict::Allowed(used_headers(family, limit, used, uid))
    }

    /// Adds `weight` to `peer`'s current window of `family`: a burst by the other clients of that IP.
    pub fn add(&mut self, now_ms: i64, peer: IpAddr, family: &str, weight: u64) {
        let window_ms = self.rules.limit(family).map_or(MINUTE_MS, Limit::window_ms);
        let c = self.ip.entry((peer, family.to_owned())).or_default();
        c.window.roll(now_ms, window_ms);
        c.window.used = c.window.used.saturating_add(weight.min(MAX_ADDED));
    }

    /// Every IP's counters at `now_ms`, sorted by IP and family.
    pub fn usage(&self, now_ms: i64) -> Vec<Usage> {
        let mut out: Vec<Usage> = self
            .ip
            .iter()
            .map(|((ip, family), c)| {
                let limit = self.rules.limit(family);
                let window_ms = limit.map_or(MINUTE_MS, Limit::window_ms);
                let mut w = c.window;
                w.roll(now_ms, window_ms);
                Usage {
                    ip: ip.to_string(),
                    family: family.clone(),
                    used: w.used.saturating_add(self.background_at(family, now_ms, window_ms)),
                    limit: limit.map(|l| l.limit),
                    refused_429: c.refused_429,
                    refused_418: c.refused_418,
                    penalty_ms: (c.penalty.until_ms - now_ms).max(0),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.ip, &a.family).cmp(&(&b.ip, &b.family)));
        out
    }

    /// The background load's weight spent so far in the window holding `now_ms`.
    fn background_at(&self, family: &str, now_ms: i64, window_ms: i64) -> u64 {
        let per_window = self.rules.background(family);
        let into = now_ms.rem_euclid(window_ms) as u128;
        (u128::from(per_window) * into / window_ms as u128) as u64
    }
}

/// Binance's 429 body.
fn too_many(peer: IpAddr, limit: Option<Limit>) -> Value {
    let (interval, n, limit) = match limit {
        Some(l) => {
            let (interval, n) = l.interval();
            (interval, n, l.limit)
        }
        None => ("MINUTE", 1, 0),
    };
    json!({
        "code": -1003,
        "msg": format!(
            "Too many requests; current limit of IP({peer}) request weight per {n} {interval} is {limit}. \
             Please use WebSocket Streams for live updates to avoid polling the API."
        ),
    })
}

/// A refusal with `Retry-After` in whole seconds, rounded up.
fn refusal(status: u16, body: Value, wait_ms: i64, mut headers: Vec<(String, String)>) -> Verdict {
    let secs = (wait_ms.max(0) + 999) / 1000;
    headers.push(("Retry-After".into(), secs.max(1).to_string()));
    Verdict::Refused {
        status,
        body: body.to_string(),
        headers,
    }
}

/// The used-weight headers of an answer.
fn used_headers(family: &str, limit: Option<Limit>, used: u64, uid: Option<u64>) -> Vec<(String, String)> {
    if family != "sapi" {
        let suffix = limit.map_or_else(|| "1M".to_owned(), Limit::header_suffix);
        return vec![(format!("X-MBX-USED-WEIGHT-{suffix}"), used.to_string())];
    }
    let mut headers = vec![("X-SAPI-USED-IP-WEIGHT-1M".to_owned(), used.to_string())];
    if let Some(uid) = uid {
        headers.push(("X-SAPI-USED-UID-WEIGHT-1M".to_owned(), uid.to_string()));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));

    fn rules(limit: &str) -> Rules {
        Rules {
            limits: vec![parse_family_limit(limit).unwrap()],
            ban_base: Duration::from_secs(4),
            ..Rules::default()
        }
    }

    fn header(v: &Verdict, name: &str) -> Option<String> {
        let headers = match v {
            Verdict::Allowed(h) => h,
            Verdict::Refused { headers, .. } => headers,
        };
        headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }

    fn status(v: &Verdict) -> u16 {
        match v {
            Verdict::Allowed(_) => 200,
            Verdict::Refused { status, .. } => *status,
        }
    }

    #[test]
    fn counts_per_family_and_minute() {
        let mut w = Weights::default();
        let v = w.admit(0, A, "fapi", None, 1);
        assert_eq!(
            v,
            Verdict::Allowed(vec![("X-MBX-USED-WEIGHT-1M".to_owned(), "1".to_owned())])
        );
        assert_eq!(
            header(&w.admit(1, A, "fapi", Some("k"), 1), "X-MBX-USED-WEIGHT-1M").unwrap(),
            "2"
        );
        assert_eq!(
            header(&w.admit(2, A, "dapi", None, 1), "X-MBX-USED-WEIGHT-1M").unwrap(),
            "1"
        );
        let sapi = w.admit(3, A, "sapi", Some("k"), 1);
        assert_eq!(header(&sapi, "X-SAPI-USED-IP-WEIGHT-1M").unwrap(), "1");
        assert_eq!(header(&sapi, "X-SAPI-USED-UID-WEIGHT-1M").unwrap(), "1");
        assert_eq!(
            header(&w.admit(60_000, A, "fapi", None, 1), "X-MBX-USED-WEIGHT-1M").unwrap(),
            "1"
        );
        assert_eq!(
            header(&w.admit(60_001, B, "fapi", None, 1), "X-MBX-USED-WEIGHT-1M").unwrap(),
            "1",
            "per IP"
        );
    }

    #[test]
    fn limits_parse_and_name_their_interval() {
        let l = Limit::parse("50/2s").unwrap();
        assert_eq!(
            (l.limit, l.interval(), l.header_suffix()),
            (50, ("SECOND", 2), "2S".to_owned())
        );
        assert_eq!(Limit::parse("2400/1m").unwrap().header_suffix(), "1M");
        assert_eq!(Limit::parse("100/2h").unwrap().interval(), ("HOUR", 2));
        assert_eq!(Limit::parse("100/1day").unwrap().header_suffix(), "1D");
        for bad in ["", "50", "0/1m", "x/1m", "5/0s", "5/1500ms", "5/2days", "5/soon"] {
            assert!(Limit::parse(bad).is_err(), "{bad}");
        }
        assert!(parse_family_limit("FAPI=5/1s").is_err());
        assert_eq!(parse_family_limit("mexc/api=5/1s").unwrap().0, "mexc/api");
        assert_eq!(parse_family_weight("fapi=1800"), Ok(("fapi".into(), 1800)));
        assert!(parse_family_weight("fapi=-1").is_err());
    }

    #[test]
    fn over_the_limit_is_429_until_the_window_ends_then_418_for_whoever_keeps_sending() {
        let mut w = Weights::new(rules("fapi=3/10s"));
        for t in 0..3 {
            assert_eq!(status(&w.admit(t, A, "fapi", None, 1)), 200);
        }
        let v = w.admit(2_500, A, "fapi", None, 1);
        assert_eq!(status(&v), 429);
        assert_eq!(
            header(&v, "Retry-After").unwrap(),
            "8",
            "to the window's end, rounded up"
        );
        assert_eq!(
            header(&v, "X-MBX-USED-WEIGHT-10S").unwrap(),
            "3",
            "the refused request is not charged"
        );
        assert!(matches!(&v, Verdict::Refused { body, .. } if body.contains("-1003")));
        assert_eq!(
            status(&w.admit(2_600, B, "fapi", None, 1)),
            200,
            "another IP is untouched"
        );
        let banned = w.admit(3_000, A, "fapi", None, 1);
        assert_eq!(status(&banned), 418);
        assert_eq!(header(&banned, "Retry-After").unwrap(), "4");
        assert_eq!(
            status(&w.admit(10_000, A, "fapi", None, 1)),
            200,
            "the ban is over, a new window"
        );
        // Another overrun, then sending on: the second ban is twice as long.
        for t in 10_001..10_003 {
            w.admit(t, A, "fapi", None, 1);
        }
        assert_eq!(status(&w.admit(10_004, A, "fapi", None, 1)), 429);
        let second = w.admit(10_005, A, "fapi", None, 1);
        assert_eq!(
            (status(&second), header(&second, "Retry-After").unwrap()),
            (418, "8".to_owned())
        );
        let u = w.usage(10_006);
        let a = u.iter().find(|u| u.ip == A.to_string()).unwrap();
        assert_eq!((a.refused_429, a.refused_418, a.limit), (2, 2, Some(3)));
        assert!(a.penalty_ms > 7_000);
    }

    #[test]
    fn sapi_answers_429_only() {
        let mut w = Weights::new(rules("sapi=1/10s"));
        assert_eq!(status(&w.admit(0, A, "sapi", Some("k"), 1)), 200);
        for t in 1..5 {
            assert_eq!(status(&w.admit(t, A, "sapi", Some("k"), 1)), 429);
        }
    }

    #[test]
    fn background_weight_fills_the_window_evenly_and_bursts_add_to_it() {
        let mut r = rules("fapi=100/10s");
        r.background = vec![("fapi".into(), 80)];
        let mut w = Weights::new(r);
        let v = w.admit(5_000, A, "fapi", None, 1);
        assert_eq!(
            header(&v, "X-MBX-USED-WEIGHT-10S").unwrap(),
            "41",
            "half the window: 40 of the bots' 80"
        );
        w.add(5_000, A, "fapi", 50);
        assert_eq!(status(&w.admit(5_001, A, "fapi", None, 10)), 429, "91 + 10 > 100");
        assert_eq!(w.usage(5_001)[0].used, 91);
    }

    #[test]
    fn not_enforced_when_off_and_unknown_families_are_counted_only() {
        let mut w = Weights::new(Rules {
            enforce: false,
            ..rules("fapi=1/10s")
        });
        for t in 0..5 {
            assert_eq!(status(&w.admit(t, A, "fapi", None, 1)), 200);
        }
        let mut w = Weights::default();
        for t in 0..5 {
            assert_eq!(status(&w.admit(t, A, "mexc/api", None, 1_000_000)), 200);
        }
        assert_eq!(family("/mexc", "/api/v3/userDataStream"), "mexc/api");
        assert_eq!(family("", "/fapi/v1/listenKey"), "fapi");
    }

    #[test]
    fn rate_limits_state_the_rules() {
        let r = rules("fapi=50/2s");
        let v = r.rate_limits("fapi");
        assert_eq!(v[0]["rateLimitType"], "REQUEST_WEIGHT");
        assert_eq!(
            (v[0]["interval"].as_str(), v[0]["intervalNum"].as_u64()),
            (Some("SECOND"), Some(2))
        );
        assert_eq!(v[0]["limit"], 50);
        assert_eq!(r.rate_limits("api")[0]["limit"], 6000);
        assert_eq!(r.rate_limits("mexc/api"), json!([]));
    }
}
