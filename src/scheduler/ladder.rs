//! The timing decisions of a scheduler, as pure functions: when the next
//! keepalive or mint is due, and how long to wait after each class of failure.
//!
//! Kept apart from the task so that every rule can be tested with plain
//! numbers: the random input `r` (uniform in `[0, 1)`) is a parameter.

use std::time::{Duration, SystemTime};

use crate::clock::until;

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
