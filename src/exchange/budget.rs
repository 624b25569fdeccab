//! The request-weight budget: how much of a venue's per-IP weight limit the
//! keeper may spend, and when a request may go. Every venue limits request
//! weight per source IP and API family (`api`, `sapi`, `fapi`, … : a call
//! path's first segment), in fixed windows aligned to the clock, and the
//! trading bots on the same IP draw on the same limit. For each (host, egress
//! address) and family the budget keeps the limit (from `[limits]
//! weight_limits`, else what the exchange publishes in `exchangeInfo`, else
//! the venue profile's documented value), the weight the whole IP has used in
//! the current window (as the last answer's `X-MBX-USED-WEIGHT-<n><unit>` or
//! `X-SAPI-USED-IP-WEIGHT-1M` header reported it, plus the keeper's own sends
//! since), and the keeper's own spend in the window.
//!
//! A request waits in its (host, egress) queue, ordered by how soon its
//! credential expires (earliest first; a request waits only behind earlier
//! ones of its own family, since another family has another limit), until it
//! fits both `share × limit` (the keeper's own spend) and `ceiling × limit`
//! (the IP's used weight, bots included). Which hold applies is decided by one
//! ordered table ([`RULES`]), each row a typed [`Hold`]. A 429 or 418 closes
//! the family for its `Retry-After` and is counted. Windows are read from the
//! crate's clock seam and waits are tokio sleeps, so tests run on paused time.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::clock::{SharedClock, epoch_ms};

/// How long a limit learned from the exchange is kept before it is asked again.
pub const RELEARN_EVERY: Duration = Duration::from_secs(3600);

/// The longest window a limit may have (the exchange's longest interval is a day).
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The largest weight limit accepted.
pub const MAX_LIMIT: u64 = 1 << 40;

/// A weight limit: at most `limit` weight in each window of `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightLimit {
    /// The weight allowed per window; never zero.
    pub limit: u64,
    /// The window: whole seconds, at most a day.
    pub window: Duration,
}

impl WeightLimit {
    /// `N/DURATION`, e.g. `2400/1m` or `50/2s`.
    pub fn parse(s: &str) -> Result<WeightLimit, String> {
        let (n, d) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not N/DURATION (write e.g. \"2400/1m\")"))?;
        let limit = n
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("{s:?}: {n:?} is not a weight"))?;
        let window = humantime::parse_duration(d.trim()).map_err(|e| format!("{s:?}: {e}"))?;
        WeightLimit::new(limit, window).ok_or_else(|| {
            format!("{s:?}: the limit must be in 1..={MAX_LIMIT} and the window whole seconds, at most a day")
        })
    }

    /// A limit, when `limit` is in `1..=MAX_LIMIT` and `window` whole seconds in `(0, 1 day]`.
    pub fn new(limit: u64, window: Duration) -> Option<WeightLimit> {
        let ok = (1..=MAX_LIMIT).contains(&limit)
            && !window.is_zero()
            && window <= MAX_WINDOW
            && window.subsec_nanos() == 0;
        ok.then_some(WeightLimit { limit, window })
    }

    fn window_ms(self) -> i64 {
        self.window.as_millis() as i64
    }
}

impl std::fmt::Display for WeightLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.limit, humantime::format_duration(self.window))
    }
}

/// `[limits]`: the share of each family's limit the keeper may spend, the
/// ceiling it keeps the whole IP under, and limits given per family.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// At most this fraction of a family's per-IP limit is spent by the keeper; in (0, `ceiling`].
    pub share: f64,
    /// No request is sent that would take the IP's used weight above this fraction; in [`share`, 1].
    ///
    /// [`share`]: Limits::share
    pub ceiling: f64,
    /// Limits per family (`fapi`, `sapi`, …) over what the exchange publishes or the profile documents.
    pub weight_limits: Vec<(String, WeightLimit)>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            share: 0.25,
            ceiling: 0.9,
            weight_limits: Vec::new(),
        }
    }
}

impl Limits {
    /// The limit configured for `family`, if any.
    fn configured(&self, family: &str) -> Option<WeightLimit> {
        self.weight_limits.iter().rev().find(|(f, _)| f == family).map(|(_, l)| *l)
    }
}

/// Whether `s` is a family name: 1 to 32 lower-case letters, digits or `-`.
pub fn is_family(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The family of a call path: its first segment (`/fapi/v1/listenKey` → `fapi`).
pub fn family_of(path: &str) -> &str {
    path.trim_start_matches('/').split('/').next().unwrap_or("")
}

/// Where a family's limit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `[limits] weight_limits`.
    Config,
    /// The exchange's `exchangeInfo`.
    Exchange,
    /// The venue profile's documented value.
    Profile,
}

impl Source {
    /// The name shown in `status` and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Exchange => "exchange",
            Source::Profile => "profile",
        }
    }
}

/// Why a request is held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The family answered 429 or 418; its `Retry-After` has not passed.
    RateLimited,
    /// The family's limit is being asked of the exchange.
    Learning,
    /// A request of the same family whose credential expires sooner is waiting.
    Queued,
    /// The keeper's own spend in the window would pass `share` of the limit.
    Share,
    /// The IP's used weight (bots included) would pass `ceiling` of the limit.
    Ceiling,
}

impl Hold {
    /// The name shown in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Hold::RateLimited => "rate-limited",
            Hold::Learning => "learning",
            Hold::Queued => "queued",
            Hold::Share => "share",
            Hold::Ceiling => "ceiling",
        }
    }
}

/// The decision table: checked top to bottom, the first hold that applies
/// decides; a request none applies to is sent.
pub const RULES: [Hold; 5] = [Hold::RateLimited, Hold::Learning, Hold::Queued, Hold::Share, Hold::Ceiling];

/// Until when a hold lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// A tokio instant (a `Retry-After`).
    Instant(Instant),
    /// The end of the current window, epoch ms on the clock seam.
    WindowEnd(i64),
    /// Until something changes (a request ahead leaves the queue, a limit is learned).
    Change,
}

/// One family's budget on one (host, egress).
#[derive(Debug, Default)]
struct Family {
    /// The exchange's limit, once learned.
    learned: Option<WeightLimit>,
    /// When it was last asked (success or not), on the monotonic clock: a
    /// wall-clock step does not make a limit stale.
    asked_at: Option<Instant>,
    /// Whether a request is asking it now.
    learning: bool,
    /// Start of the window counted, epoch ms.
    window_start_ms: i64,
    /// The keeper's own weight sent in the window.
    own: u64,
    /// The IP's used weight in the window: the last report plus own sends since.
    ip_used: u64,
    /// Weight sent and not yet answered.
    in_flight: u64,
    /// Closed until then by a 429 or 418.
    closed_until: Option<Instant>,
    /// Waiting requests: (credential expiry, ticket).
    queue: BTreeSet<(SystemTime, u64)>,
    /// The limit in force and its source (kept for status).
    limit: Option<(WeightLimit, Source)>,
}

impl Family {
    /// Starts a new window when `now_ms` is past the current one.
    fn roll(&mut self, now_ms: i64) {
        let Some((limit, _)) = self.limit else { return };
        let w = limit.window_ms();
        let start = now_ms - now_ms.rem_euclid(w);
        if start != self.window_start_ms {
            self.window_start_ms = start;
            self.own = 0;
            // What is in flight was sent in the old window but may be counted in the new one.
            self.ip_used = self.in_flight;
        }
    }

    /// The limit in force: configured, else learned, else documented.
    fn resolve(&mut self, configured: Option<WeightLimit>, documented: Option<WeightLimit>) {
        let limit = configured
            .map(|l| (l, Source::Config))
            .or(self.learned.map(|l| (l, Source::Exchange)))
            .or(documented.map(|l| (l, Source::Profile)));
        if limit.map(|l| l.0.window) != self.limit.map(|l| l.0.window) {
            // Another window: count afresh.
            self.window_start_ms = 0;
        }
        self.limit = limit;
    }

    /// Takes in the used weight an answer reported for the limit's window:
    /// never below what the keeper itself has sent and not seen counted.
    fn report(&mut self, used: &[(Duration, u64)]) {
        if let Some((limit, _)) = self.limit
            && let Some((_, reported)) = used.iter().find(|(w, _)| *w == limit.window)
        {
            self.ip_used = self.ip_used.max(reported.saturating_add(self.in_flight));
        }
    }

    /// Whether hold `hold` applies to the request (`ticket`, `weight`), and until when.
    fn check(&self, hold: Hold, ticket: (SystemTime, u64), weight: u64, policy: &Limits, now: Instant) -> Option<Until> {
        let window_end = |l: WeightLimit| Until::WindowEnd(self.window_start_ms + l.window_ms());
        match hold {
            Hold::RateLimited => self.closed_until.filter(|u| *u > now).map(Until::Instant),
            Hold::Learning => (self.learning && self.learned.is_none()).then_some(Until::Change),
            Hold::Queued => self.queue.first().filter(|first| **first < ticket).map(|_| Until::Change),
            Hold::Share => {
                let (l, _) = self.limit?;
                // A lone request always fits an empty window, however small the share.
                let fits = self.own == 0 || (self.own + weight) as f64 <= policy.share * l.limit as f64;
                (!fits).then(|| window_end(l))
            }
            Hold::Ceiling => {
                let (l, _) = self.limit?;
                let fits = (self.ip_used + weight) as f64 <= policy.ceiling * l.limit as f64;
                (!fits).then(|| window_end(l))
            }
        }
    }

    /// The first hold of [`RULES`] that applies.
    fn decide(&self, ticket: (SystemTime, u64), weight: u64, policy: &Limits, now: Instant) -> Option<(Hold, Until)> {
        RULES
            .iter()
            .find_map(|hold| self.check(*hold, ticket, weight, policy, now).map(|u| (*hold, u)))
    }
}

/// A family's budget as `status` and the metrics show it.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilyView {
    /// `host:port`.
    pub host: String,
    /// The egress address, when one is set.
    pub egress: Option<IpAddr>,
    /// The family (`fapi`, …).
    pub family: String,
    /// The limit in force and where it came from, once known.
    pub limit: Option<(WeightLimit, Source)>,
    /// The keeper's weight spent in the current window.
    pub own: u64,
    /// The IP's used weight in the current window, as estimated.
    pub ip_used: u64,
    /// Requests waiting.
    pub queued: usize,
}

/// The budget of one (host, egress).
#[derive(Debug)]
pub struct HostBudget {
    host: String,
    egress: Option<IpAddr>,
    policy: Arc<Limits>,
    clock: SharedClock,
    families: Mutex<HashMap<String, Family>>,
    changed: Notify,
    tickets: AtomicU64,
    rate_limited: Arc<AtomicU64>,
}

/// What a request asks of the budget.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The call's family.
    pub family: &'a str,
    /// Its weight.
    pub weight: u64,
    /// When the credential it keeps expires (a creation: when the new one would).
    pub expires: SystemTime,
    /// The venue profile's documented limit of the family, if any.
    pub documented: Option<WeightLimit>,
}

impl HostBudget {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Family>> {
        // A panic while held leaves counters that are still usable: take the lock over.
        self.families.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> i64 {
        epoch_ms(self.clock.now())
    }

    /// Whether the caller should ask the exchange for `family`'s limit now
    /// (it is published there and not asked within [`RELEARN_EVERY`], and
    /// nobody is asking). `true` marks it as being asked: the caller must
    /// answer with [`HostBudget::learned`].
    pub fn should_learn(&self, family: &str) -> bool {
        if self.policy.configured(family).is_some() {
            return false;
        }
        let now = Instant::now();
        let mut families = self.lock();
        let f = families.entry(family.to_owned()).or_default();
        let stale = f.asked_at.is_none_or(|at| now.duration_since(at) >= RELEARN_EVERY);
        if f.learning || !stale {
            return false;
        }
        f.learning = true;
        f.asked_at = Some(now);
        true
    }

    /// What asking for `family`'s limit gave (`None`: no answer or no
    /// `REQUEST_WEIGHT` limit in it; the documented value stays in force),
    /// the weight the question cost and the used weight its answer reported.
    pub fn learned(&self, family: &str, limit: Option<WeightLimit>, spent: u64, used: &[(Duration, u64)], documented: Option<WeightLimit>) {
        let now_ms = self.now_ms();
        {
            let mut families = self.lock();
            let f = families.entry(family.to_owned()).or_default();
            f.learning = false;
            if limit.is_some() {
                f.learned = limit;
                tracing::info!(host = %self.host, family, limit = %limit.map(|l| l.to_string()).unwrap_or_default(),
                    "learned the family's request-weight limit from the exchange");
            }
            f.resolve(self.policy.configured(family), documented);
            f.roll(now_ms);
            f.own += spent;
            f.ip_used += spent;
            f.report(used);
        }
        self.changed.notify_waiters();
    }

    /// Waits until the request fits the budget (see the module docs), then
    /// counts it as sent. Dropping the future leaves the queue.
    pub async fn acquire(self: &Arc<Self>, ask: Ask<'_>) -> Permit {
        let ticket = (ask.expires, self.tickets.fetch_add(1, Ordering::Relaxed));
        let family = ask.family.to_owned();
        let configured = self.policy.configured(&family);
        self.lock().entry(family.clone()).or_default().queue.insert(ticket);
        let mut queued = Queued {
            budget: self,
            family: &family,
            ticket: Some(ticket),
        };
        let mut logged = None;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now_ms = self.now_ms();
            let decision = {
                let mut families = self.lock();
                let f = families.entry(family.clone()).or_default();
                f.resolve(configured, ask.documented);
                f.roll(now_ms);
                match f.decide(ticket, ask.weight, &self.policy, Instant::now()) {
                    None => {
                        f.queue.remove(&ticket);
                        f.own += ask.weight;
                        f.ip_used += ask.weight;
                        f.in_flight += ask.weight;
                        None
                    }
                    Some(d) => Some(d),
                }
            };
            let Some((hold, until)) = decision else {
                queued.ticket = None;
                self.changed.notify_waiters();
                return Permit {
                    budget: self.clone(),
                    family: family.clone(),
                    weight: ask.weight,
                    answered: false,
                };
            };
            if logged != Some(hold) && matches!(hold, Hold::Share | Hold::Ceiling | Hold::RateLimited) {
                tracing::debug!(host = %self.host, family = %family, hold = hold.as_str(), "request waits for the weight budget");
                logged = Some(hold);
            }
            match until {
                Until::Change => notified.await,
                Until::Instant(at) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                Until::WindowEnd(end_ms) => {
                    let wait = Duration::from_millis(end_ms.saturating_sub(now_ms).max(1) as u64);
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// Every family's budget, for `status` and the metrics.
    pub fn view(&self) -> Vec<FamilyView> {
        let now_ms = self.now_ms();
        let mut families = self.lock();
        let mut out: Vec<FamilyView> = families
            .iter_mut()
            .map(|(name, f)| {
                f.roll(now_ms);
                FamilyView {
                    host: self.host.clone(),
                    egress: self.egress,
                    family: name.clone(),
                    limit: f.limit,
                    own: f.own,
                    ip_used: f.ip_used,
                    queued: f.queue.len(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.family.cmp(&b.family));
        out
    }
}

/// A question for a family's limit under way (after
/// [`HostBudget::should_learn`]): dropped unanswered, it gives the question
/// up, so requests held for the answer go on with the documented limit.
#[derive(Debug)]
pub struct Asking<'a> {
    budget: &'a HostBudget,
    family: &'a str,
    answered: bool,
}

impl<'a> Asking<'a> {
    /// The question for `family`'s limit on `budget`.
    pub fn new(budget: &'a HostBudget, family: &'a str) -> Asking<'a> {
        Asking {
            budget,
            family,
            answered: false,
        }
    }

    /// The answer came (and goes to [`HostBudget::learned`]).
    pub fn answered(&mut self) {
        self.answered = true;
    }
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        if !self.answered {
            if let Some(f) = self.budget.lock().get_mut(self.family) {
                f.learning = false;
            }
            self.budget.changed.notify_waiters();
        }
    }
}

/// A request's place in the queue; leaves it when dropped.
struct Queued<'a> {
    budget: &'a HostBudget,
    family: &'a str,
    ticket: Option<(SystemTime, u64)>,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            if let Some(f) = self.budget.lock().get_mut(self.family) {
                f.queue.remove(&ticket);
            }
            self.budget.changed.notify_waiters();
        }
    }
}

/// A request counted as sent; tell it the answer with [`Permit::answered`].
#[derive(Debug)]
pub struct Permit {
    budget: Arc<HostBudget>,
    family: String,
    weight: u64,
    answered: bool,
}

impl Permit {
    /// Reads the IP's used weight from the answer's headers and, on a 429 or
    /// 418, counts it and (when the venue counts its limits per IP,
    /// `per_ip`) closes the family for `retry_after`.
    pub fn answered(mut self, status: u16, headers: &reqwest::header::HeaderMap, retry_after: Option<Duration>, per_ip: bool) {
        self.answered = true;
        let used = used_weights(headers);
        let now_ms = self.budget.now_ms();
        let limited = matches!(status, 429 | 418);
        {
            let mut families = self.budget.lock();
            let f = families.entry(self.family.clone()).or_default();
            f.in_flight = f.in_flight.saturating_sub(self.weight);
            f.roll(now_ms);
            f.report(&used);
            if limited && per_ip {
                let until = Instant::now() + retry_after.unwrap_or(Duration::from_secs(60)).min(super::error::MAX_RETRY_AFTER);
                f.closed_until = Some(f.closed_until.map_or(until, |u| u.max(until)));
            }
        }
        if limited {
            self.budget.rate_limited.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(host = %self.budget.host, egress = ?self.budget.egress, family = %self.family, status,
                retry_after_s = retry_after.map(|d| d.as_secs()), "the exchange answered {status}: this family waits out its Retry-After");
        }
        self.budget.changed.notify_waiters();
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.answered {
            let mut families = self.budget.lock();
            if let Some(f) = families.get_mut(&self.family) {
                f.in_flight = f.in_flight.saturating_sub(self.weight);
            }
        }
    }
}

/// A budget's key: `host:port` and the egress address.
type HostKey = (String, Option<IpAddr>);

/// Every (host, egress) budget of the keeper, with the policy they share.
#[derive(Debug, Default)]
pub struct Budgets {
    policy: Arc<Limits>,
    hosts: Mutex<HashMap<HostKey, Arc<HostBudget>>>,
    rate_limited: Arc<AtomicU64>,
}

impl Budgets {
    /// Budgets kept by `limits`.
    pub fn new(limits: Limits) -> Budgets {
        Budgets {
            policy: Arc::new(limits),
            ..Budgets::default()
        }
    }

    /// The budget of (`host`, `egress`), made on first use.
    pub fn host(&self, host: &str, egress: Option<IpAddr>, clock: &SharedClock) -> Arc<HostBudget> {
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        hosts
            .entry((host.to_owned(), egress))
            .or_insert_with(|| {
                Arc::new(HostBudget {
                    host: host.to_owned(),
                    egress,
                    policy: self.policy.clone(),
                    clock: clock.clone(),
                    families: Mutex::default(),
                    changed: Notify::new(),
                    tickets: AtomicU64::new(0),
                    rate_limited: self.rate_limited.clone(),
                })
            })
            .clone()
    }

    /// 429 and 418 answers received, in all.
    pub fn rate_limited_total(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// Every family's budget on every (host, egress), sorted.
    pub fn view(&self) -> Vec<FamilyView> {
        let hosts: Vec<Arc<HostBudget>> = self
            .hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let mut out: Vec<FamilyView> = hosts.iter().flat_map(|h| h.view()).collect();
        out.sort_by(|a, b| (&a.host, a.egress, &a.family).cmp(&(&b.host, b.egress, &b.family)));
        out
    }
}

/// Every used-weight header of an answer: (window, weight used). Reads
/// `X-MBX-USED-WEIGHT-<n><s|m|h|d>` and `X-SAPI-USED-IP-WEIGHT-<n><unit>` in
/// any case; anything else (the bare `X-MBX-USED-WEIGHT`, a UID header, a
/// value that is not a number) is ignored.
pub fn used_weights(headers: &reqwest::header::HeaderMap) -> Vec<(Duration, u64)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            let name = name.as_str().to_ascii_lowercase();
            let suffix = name
                .strip_prefix("x-mbx-used-weight-")
                .or_else(|| name.strip_prefix("x-sapi-used-ip-weight-"))?;
            let window = interval(suffix)?;
            let used = value.to_str().ok()?.trim().parse::<u64>().ok()?;
            Some((window, used))
        })
        .collect()
}

/// `1m`, `10s`, `1h`, `1d` as a window.
fn interval(suffix: &str) -> Option<Duration> {
    let unit = suffix.chars().last()?;
    let n: u64 = suffix[..suffix.len() - unit.len_utf8()].parse().ok()?;
    let secs = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    let window = Duration::from_secs(n.checked_mul(secs)?);
    (!window.is_zero() && window <= MAX_WINDOW).then_some(window)
}

/// `{"rateLimits": […]}` from the first bytes of an `exchangeInfo` answer,
/// once they hold the whole `rateLimits` array (the answer goes on with
/// every symbol, megabytes of them): the whole answer when it parses, else
/// the array that follows the first `"rateLimits"` key.
pub fn leading_rate_limits(prefix: &[u8]) -> Option<serde_json::Value> {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(prefix) {
        return Some(v);
    }
    const KEY: &[u8] = b"\"rateLimits\"";
    let at = prefix.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &prefix[at..];
    let colon = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    if rest[colon] != b':' {
        return None;
    }
    let mut values = serde_json::Deserializer::from_slice(&rest[colon + 1..]).into_iter::<serde_json::Value>();
    match values.next()? {
        Ok(limits @ serde_json::Value::Array(_)) => Some(serde_json::json!({ "rateLimits": limits })),
        _ => None,
    }
}

/// The `REQUEST_WEIGHT` limit of an `exchangeInfo` answer (`rateLimits[]`:
/// `interval` SECOND/MINUTE/HOUR/DAY, `intervalNum`, `limit`). With several,
/// the one that allows the least weight per second.
pub fn request_weight_limit(body: &serde_json::Value) -> Option<WeightLimit> {
    let limits = body.get("rateLimits")?.as_array()?;
    limits
        .iter()
        .filter(|l| l.get("rateLimitType").and_then(|t| t.as_str()) == Some("REQUEST_WEIGHT"))
        .filter_map(|l| {
            let unit = match l.get("interval")?.as_str()? {
                "SECOND" => 1,
                "MINUTE" => 60,
                "HOUR" => 3600,
                "DAY" => 86_400,
                _ => return None,
            };
            let n = l.get("intervalNum")?.as_u64()?;
            let limit = l.get("limit")?.as_u64()?;
            WeightLimit::new(limit, Duration::from_secs(n.checked_mul(unit)?))
        })
        .min_by(|a, b| {
            let rate = |l: &WeightLimit| l.limit as f64 / l.window.as_secs_f64();
            rate(a).total_cmp(&rate(b))
        })
}

#[cfg(test)]
mod tests;
