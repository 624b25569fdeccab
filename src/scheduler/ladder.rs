//! The timing decisions of a scheduler, as pure functions: when the next
//! keepalive or mint is due, and the failure ladder, a table from each class
//! of error to what the scheduler does about it (how long it waits, what it
//! publishes, whether the value is dropped, what the operator is told).
//!
//! Kept apart from the task so that every rule can be tested with plain
//! numbers: the random input `r` (uniform in `[0, 1)`) is a parameter.

use std::time::{Duration, SystemTime};

use crate::binance::{ApiError, ErrorClass};
use crate::clock::until;
use crate::reason::Hint;
use crate::state::Status;

/// The first retry delay after a transient failure.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest retry delay after transient failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The shortest delay between two attempts of one stream.
pub const MIN_GAP: Duration = Duration::from_millis(200);
/// The retry delay after the API key or the stream's parameters were refused.
pub const SLOW_RETRY: Duration = Duration::from_secs(5 * 60);
/// The retry delay after a 403 (firewall) answer.
pub const FORBIDDEN_RETRY: Duration = Duration::from_secs(2 * 60);
/// The retry delay after a retired endpoint answered 410/404.
pub const RETIRED_RETRY: Duration = Duration::from_secs(60 * 60);

/// `d` scaled by a factor in `[1 - jitter, 1 + jitter)`.
pub fn jittered(d: Duration, jitter: f64, r: f64) -> Duration {
    d.mul_f64((1.0 + jitter * (2.0 * r - 1.0)).max(0.0))
}

/// The delay before retry number `failures` (1 for the first) after a
/// transient failure: exponential from [`FIRST_BACKOFF`] to [`MAX_BACKOFF`],
/// never more than `cap`, with "equal jitter" (between half and all of it),
/// and at least [`MIN_GAP`]. The scheduler passes a quarter of the time left
/// while the value is valid (retry often enough to save it), and a quarter of
/// the credential's lifetime once there is no valid value (nothing left to
/// save: back off, in proportion to the timescale of the stream).
pub fn backoff(failures: u32, cap: Duration, r: f64) -> Duration {
    let exp = FIRST_BACKOFF.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    exp.min(MAX_BACKOFF).min(cap).mul_f64(0.5 + 0.5 * r).max(MIN_GAP)
}

/// When to send the next keepalive: the interval, shortened to half the key's
/// remaining life if that is less, then jittered around that centre. Jittering
/// after the cap keeps the mean interval at the configured one (2 keepalives
/// per key-hour at 30 m, not 2.05) and keeps keys obtained together from
/// falling into lockstep at the cap; the latest keepalive still leaves
/// `(1 - jitter) / 2` of the life (27 of 60 minutes by default) for retries.
pub fn next_keepalive(now: SystemTime, expires_at: SystemTime, interval: Duration, jitter: f64, r: f64) -> SystemTime {
    let half_left = until(now, expires_at) / 2;
    now + jittered(interval.min(half_left), jitter, r).max(MIN_GAP)
}

/// When to mint the next token: `renew_before` (jittered) ahead of its expiry,
/// or halfway through its remaining life when the exchange gave a shorter token.
pub fn next_mint(now: SystemTime, expires_at: SystemTime, renew_before: Duration, jitter: f64, r: f64) -> SystemTime {
    let left = until(now, expires_at);
    let lead = jittered(renew_before, jitter, r).min(left / 2);
    now + (left - lead).max(MIN_GAP)
}

/// The next call a stream will make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// POST: create, or re-fetch and extend (listen keys), or mint (tokens).
    Obtain,
    /// PUT: extend the listen key.
    Keepalive,
}

/// How long a rung of the ladder waits before the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// No wait: the value is known dead, its replacement is due now.
    Now,
    /// [`backoff`] by the failures in a row, capped at a quarter of the valid
    /// value's remaining life (a quarter of the lifetime once there is none).
    Backoff,
    /// The host's `Retry-After` ([`MAX_BACKOFF`] if it named none), plus
    /// 1 to 5 × [`MIN_GAP`] so the silenced streams do not return together.
    RetryAfter,
    /// This long, ±10 %.
    Fixed(Duration),
}

/// The status a rung publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// `stale` while the value is valid, `refreshing` when there has been
    /// none yet, `failed` once it has expired.
    Degraded,
    /// `refreshing`: the value is dead and its replacement under way.
    Refreshing,
    /// `failed`: the operator has to act (credentials, config, a retired endpoint).
    Failed,
}

/// What a rung does with the held value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// Kept and published while it is valid; the next attempt extends it if it still is.
    Kept,
    /// Dropped (it expires now) and created again by the next attempt.
    Dropped,
}

/// How loudly a rung is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// A failure the ladder absorbs.
    Warn,
    /// A failure the operator should look at.
    Error,
}

/// One row of the failure ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rung {
    /// How long to wait before the next attempt.
    pub wait: Wait,
    /// The status published.
    pub status: Publish,
    /// What becomes of the held value.
    pub value: Value,
    /// The hint appended to `last_error` ([`Hint::Retired`] names listen
    /// tokens for the kinds that have them, see [`decide`]).
    pub hint: Option<Hint>,
    /// The log level.
    pub level: Level,
    /// The log line.
    pub log: &'static str,
}

/// The failure ladder of `binance-api.md`: what a failed `call` of each
/// error class leads to. One row per class (two for `Gone`: a key gone on
/// keepalive is replaced now, a failed create is retried with backoff).
pub const fn rung(class: ErrorClass, call: Action) -> Rung {
    use ErrorClass as C;
    const fn row(wait: Wait, status: Publish, hint: Option<Hint>, level: Level, log: &'static str) -> Rung {
        Rung {
            wait,
            status,
            value: Value::Kept,
            hint,
            level,
            log,
        }
    }
    match (class, call) {
        // -1125, -1209: the key or token vanished server-side; get the next one now.
        (C::Gone, Action::Keepalive) => Rung {
            value: Value::Dropped,
            ..row(
                Wait::Now,
                Publish::Refreshing,
                None,
                Level::Warn,
                "credential gone; obtaining a new one now",
            )
        },
        // 5xx, 408, timeouts, resets, malformed answers; -1021 (the client has
        // resynced its clock); a create answered "gone".
        (C::Transient | C::ClockSkew, _) | (C::Gone, Action::Obtain) => row(
            Wait::Backoff,
            Publish::Degraded,
            None,
            Level::Warn,
            "refresh failed; retrying",
        ),
        // 429, 418: nothing to the host until the window ends.
        (C::RateLimited, _) => row(
            Wait::RetryAfter,
            Publish::Degraded,
            None,
            Level::Warn,
            "rate-limited; sending nothing to this host until the window ends",
        ),
        // 403: back off long, keep the value while it lasts.
        (C::Forbidden, _) => row(
            Wait::Fixed(FORBIDDEN_RETRY),
            Publish::Degraded,
            Some(Hint::Firewall),
            Level::Error,
            "blocked by the exchange's firewall (403); backing off",
        ),
        // 410, 404 on a listen-key path: stop calling it (hourly), name the replacement.
        (C::Retired, _) => row(
            Wait::Fixed(RETIRED_RETRY),
            Publish::Failed,
            Some(Hint::Retired),
            Level::Error,
            "listen-key endpoint retired",
        ),
        // -2014, -2015, -1002, -1022, 401: configuration or permission; retry slowly.
        (C::Auth, _) => row(
            Wait::Fixed(SLOW_RETRY),
            Publish::Failed,
            Some(Hint::Auth),
            Level::Error,
            "the API key or signature was refused",
        ),
        // -1121, -3003, -11001, other 4xx: this stream's configuration; retry slowly.
        (C::Rejected, _) => row(
            Wait::Fixed(SLOW_RETRY),
            Publish::Failed,
            Some(Hint::Rejected),
            Level::Error,
            "the exchange refused this stream's request",
        ),
    }
}

/// What the stream knows when a call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Situation {
    /// The call that failed.
    pub call: Action,
    /// The time left on the held value, if it is still valid.
    pub left: Option<Duration>,
    /// Whether a value is held at all (valid or expired).
    pub held: bool,
    /// The credential's lifetime (asked for or assumed).
    pub lifetime: Duration,
    /// Failures in a row before this one that backed off.
    pub failures: u32,
    /// Whether the stream's kind can use listen tokens instead.
    pub has_tokens: bool,
}

/// What the scheduler does after a failure: the rung, applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The row of the ladder applied.
    pub rung: Rung,
    /// How long to wait before the next call.
    pub wait: Duration,
    /// The next call.
    pub next: Action,
    /// The status to publish.
    pub status: Status,
    /// The hint to publish with the error.
    pub hint: Option<Hint>,
    /// Failures in a row that backed off, this one included.
    pub failures: u32,
}

/// Looks `error` up in the ladder and applies its row to `s`; `r` is uniform in `[0, 1)`.
pub fn decide(error: &ApiError, s: &Situation, r: f64) -> Decision {
    let rung = rung(error.class, s.call);
    let (wait, failures) = match rung.wait {
        Wait::Now => (Duration::ZERO, 0),
        Wait::Backoff => {
            // While the value is valid, retry often enough to save it; once it
            // is gone, back off in proportion to the credential's lifetime.
            let cap = s.left.unwrap_or(s.lifetime) / 4;
            let failures = s.failures.saturating_add(1);
            (backoff(failures, cap, r), failures)
        }
        Wait::RetryAfter => (
            error.retry_after.unwrap_or(MAX_BACKOFF) + MIN_GAP.mul_f64(1.0 + 4.0 * r),
            s.failures,
        ),
        Wait::Fixed(d) => (jittered(d, 0.1, r), s.failures),
    };
    let status = match rung.status {
        Publish::Refreshing => Status::Refreshing,
        Publish::Failed => Status::Failed,
        Publish::Degraded if s.left.is_some() => Status::Stale,
        Publish::Degraded if !s.held => Status::Refreshing,
        Publish::Degraded => Status::Failed,
    };
    let next = match (rung.value, s.left) {
        (Value::Kept, Some(_)) => s.call,
        _ => Action::Obtain,
    };
    let hint = match rung.hint {
        Some(Hint::Retired) if s.has_tokens => Some(Hint::RetiredUseToken),
        h => h,
    };
    Decision {
        rung,
        wait,
        next,
        status,
        hint,
        failures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn backoff_grows_and_is_capped() {
        let none = MAX_BACKOFF;
        assert_eq!(backoff(1, none, 0.999_999).as_millis(), 999);
        assert_eq!(backoff(1, none, 0.0), S(1) / 2);
        assert_eq!(backoff(3, none, 0.999_999).as_secs(), 3);
        assert!(backoff(30, none, 0.999_999) <= MAX_BACKOFF);
        // Capped: 8 s left means at most 2 s.
        assert!(backoff(10, S(8) / 4, 0.999_999) <= S(2));
        assert_eq!(backoff(10, Duration::ZERO, 0.5), MIN_GAP);
    }

    #[test]
    fn keepalive_jitters_around_the_interval_capped_at_half_the_life() {
        let now = SystemTime::UNIX_EPOCH + S(1000);
        assert_eq!(next_keepalive(now, now + S(3600), S(1800), 0.0, 0.5), now + S(1800));
        let j = next_keepalive(now, now + S(3600), S(1800), 0.1, 0.0);
        assert_eq!(j, now + S(1620));
        assert_eq!(next_keepalive(now, now + S(3600), S(1800), 0.1, 1.0), now + S(1980));
        // A key with 10 minutes left: around 5 minutes, never past 5.5.
        assert_eq!(next_keepalive(now, now + S(600), S(1800), 0.1, 0.5), now + S(300));
        assert!(next_keepalive(now, now + S(600), S(1800), 0.1, 0.999) < now + S(330));
    }

    #[test]
    fn keepalive_mean_is_the_interval() {
        let now = SystemTime::UNIX_EPOCH + S(1000);
        let n = 10_000;
        let total: f64 = (0..n)
            .map(|i| {
                let r = (i as f64 + 0.5) / n as f64;
                let at = next_keepalive(now, now + S(3600), S(1800), 0.1, r);
                at.duration_since(now).unwrap().as_secs_f64()
            })
            .sum();
        assert!((total / n as f64 - 1800.0).abs() < 0.5, "2 keepalives per key-hour");
    }

    #[test]
    fn mint_ahead_of_expiry() {
        let now = SystemTime::UNIX_EPOCH + S(1000);
        let day = S(86_400);
        assert_eq!(next_mint(now, now + day, S(8 * 3600), 0.0, 0.5), now + S(16 * 3600));
        // A token shorter than renew_before is renewed halfway.
        assert_eq!(next_mint(now, now + S(60), S(8 * 3600), 0.0, 0.5), now + S(30));
        assert_eq!(next_mint(now, now, S(10), 0.0, 0.5), now + MIN_GAP);
    }
}
