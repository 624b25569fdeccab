//! The timing decisions of a scheduler, as pure functions: when the next
//! keepalive or mint is due, and the failure ladder, a table from each class
//! of error to what the scheduler does about it (how long it waits, what it
//! publishes, whether the value is dropped, what the operator is told).
//!
//! Kept apart from the task so that every rule can be tested with plain
//! numbers: the random input `r` (uniform in `[0, 1)`) is a parameter.

use std::time::{Duration, SystemTime};

use crate::clock::until;
use crate::reason::{ApiError, ErrorClass, Hint};
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

    /// The failure ladder, row by row, through [`decide`] with real classified answers.
    mod ladder {
        use super::*;
        use crate::exchange::error::{classify, parse_retry_after};

        const MS: fn(u64) -> Duration = Duration::from_millis;
        const HOUR: Duration = Duration::from_secs(3600);

        /// The error Binance's answer is classified as.
        fn answer(status: u16, body: &str, retry_after: Option<Duration>) -> ApiError {
            classify(status, retry_after, body.as_bytes(), true).unwrap_err()
        }

        /// A listen key with `left` to live, whose keepalive failed after `failures` backoffs.
        fn keepalive(left: Duration, failures: u32) -> Situation {
            Situation {
                call: Action::Keepalive,
                left: Some(left),
                held: true,
                lifetime: HOUR,
                failures,
                has_tokens: false,
            }
        }

        /// The wait after `e` at the low end (r = 0) and the high end (r = 1) of the jitter.
        fn waits(e: &ApiError, s: &Situation) -> (Duration, Duration) {
            (decide(e, s, 0.0).wait, decide(e, s, 1.0).wait)
        }

        #[test]
        fn every_error_class_has_its_row() {
            use ErrorClass as C;
            let k = Action::Keepalive;
            assert_eq!(rung(C::Gone, k).wait, Wait::Now);
            assert_eq!(rung(C::Gone, k).value, Value::Dropped);
            assert_eq!(rung(C::Gone, Action::Obtain).wait, Wait::Backoff);
            for (class, wait, status, hint, level) in [
                (C::Transient, Wait::Backoff, Publish::Degraded, None, Level::Warn),
                (C::ClockSkew, Wait::Backoff, Publish::Degraded, None, Level::Warn),
                (C::RateLimited, Wait::RetryAfter, Publish::Degraded, None, Level::Warn),
                (
                    C::Forbidden,
                    Wait::Fixed(FORBIDDEN_RETRY),
                    Publish::Degraded,
                    Some(Hint::Firewall),
                    Level::Error,
                ),
                (
                    C::Retired,
                    Wait::Fixed(RETIRED_RETRY),
                    Publish::Failed,
                    Some(Hint::Retired),
                    Level::Error,
                ),
                (
                    C::Auth,
                    Wait::Fixed(SLOW_RETRY),
                    Publish::Failed,
                    Some(Hint::Auth),
                    Level::Error,
                ),
                (
                    C::Rejected,
                    Wait::Fixed(SLOW_RETRY),
                    Publish::Failed,
                    Some(Hint::Rejected),
                    Level::Error,
                ),
            ] {
                for call in [Action::Keepalive, Action::Obtain] {
                    let r = rung(class, call);
                    assert_eq!(
                        (r.wait, r.status, r.value, r.hint, r.level),
                        (wait, status, Value::Kept, hint, level),
                        "{class} on {call:?}"
                    );
                }
            }
        }

        #[test]
        fn key_gone_on_keepalive_is_dropped_and_created_again_now() {
            for body in [
                r#"{"code":-1125,"msg":"This listenKey does not exist."}"#,
                r#"{"code":-1209,"msg":"x"}"#,
            ] {
                // Under 200 as well as 400: a negative code is an error.
                for status in [200, 400] {
                    let e = answer(status, body, None);
                    let d = decide(&e, &keepalive(S(1800), 5), 0.7);
                    assert_eq!(d.rung.value, Value::Dropped, "{body}");
                    assert_eq!(
                        (d.wait, d.next, d.status),
                        (Duration::ZERO, Action::Obtain, Status::Refreshing)
                    );
                    assert_eq!((d.failures, d.hint), (0, None), "the backoff starts over");
                }
            }
        }

        #[test]
        fn a_token_gone_on_mint_backs_off_and_keeps_the_held_token() {
            // -1209 on a mint: the held token is still valid; mint again soon.
            let e = answer(400, r#"{"code":-1209,"msg":"Invalid listen token."}"#, None);
            let s = Situation {
                call: Action::Obtain,
                left: Some(S(8 * 3600)),
                lifetime: S(24 * 3600),
                ..keepalive(S(0), 0)
            };
            let d = decide(&e, &s, 0.0);
            assert_eq!(
                (d.wait, d.next, d.status, d.failures),
                (MS(500), Action::Obtain, Status::Stale, 1)
            );
            assert_eq!(d.rung.value, Value::Kept);
        }

        #[test]
        fn transient_failures_back_off_doubling_up_to_the_cap() {
            let e = answer(503, "", None);
            // 40 minutes left: the quarter (10 min) is above MAX_BACKOFF.
            let lows: Vec<_> = (0..8).map(|f| decide(&e, &keepalive(S(2400), f), 0.0).wait).collect();
            let highs: Vec<_> = (0..8).map(|f| decide(&e, &keepalive(S(2400), f), 1.0).wait).collect();
            assert_eq!(lows, [MS(500), S(1), S(2), S(4), S(8), S(16), S(30), S(30)]);
            assert_eq!(highs, [S(1), S(2), S(4), S(8), S(16), S(32), S(60), S(60)]);
            let d = decide(&e, &keepalive(S(2400), 3), 0.5);
            assert_eq!(
                (d.next, d.status, d.failures, d.hint),
                (Action::Keepalive, Status::Stale, 4, None)
            );
            // The count saturates instead of overflowing.
            assert_eq!(decide(&e, &keepalive(S(2400), u32::MAX), 1.0).wait, S(60));
        }

        #[test]
        fn transient_waits_are_capped_at_a_quarter_of_the_remaining_life() {
            for e in [
                answer(500, "", None),
                answer(408, "", None),
                answer(200, "not json", None),
                answer(200, "[1,2,3]", None),
                answer(200, r#"{"code":-1001,"msg":"Internal error"}"#, None),
                ApiError::local(ErrorClass::Transient, "connection failed (127.0.0.1:9)"),
            ] {
                assert_eq!(e.class, ErrorClass::Transient, "{e}");
                // 8 s left, sixth failure (32 s uncapped): at most 2 s, at least 1 s.
                assert_eq!(waits(&e, &keepalive(S(8), 5)), (S(1), S(2)), "{e}");
                // 400 ms left: a quarter is 100 ms, but never under MIN_GAP.
                assert_eq!(waits(&e, &keepalive(MS(400), 5)), (MIN_GAP, MIN_GAP), "{e}");
            }
        }

        #[test]
        fn without_a_valid_value_the_cap_is_a_quarter_of_the_lifetime() {
            let e = answer(502, "", None);
            let short = Duration::from_secs(8);
            // Expired value: failed, and the next call creates (no keepalive on a dead key).
            let expired = Situation {
                left: None,
                lifetime: short,
                ..keepalive(S(0), 5)
            };
            let d = decide(&e, &expired, 1.0);
            assert_eq!((d.wait, d.next, d.status), (S(2), Action::Obtain, Status::Failed));
            // Nothing held yet: refreshing, same cap.
            let none = Situation {
                call: Action::Obtain,
                held: false,
                ..expired
            };
            let d = decide(&e, &none, 0.0);
            assert_eq!((d.wait, d.next, d.status), (S(1), Action::Obtain, Status::Refreshing));
            // A real lifetime: MAX_BACKOFF rules, not the quarter hour.
            let hour = Situation {
                lifetime: HOUR,
                failures: 6,
                ..none
            };
            assert_eq!(waits(&e, &hour), (S(30), S(60)));
        }

        #[test]
        fn clock_skew_is_retried_like_a_transient_failure() {
            let e = answer(
                400,
                r#"{"code":-1021,"msg":"Timestamp for this request is outside of the recvWindow."}"#,
                None,
            );
            assert_eq!(e.class, ErrorClass::ClockSkew);
            let d = decide(&e, &keepalive(S(2400), 0), 0.0);
            assert_eq!(
                (d.wait, d.status, d.failures, d.hint),
                (MS(500), Status::Stale, 1, None)
            );
        }

        #[test]
        fn rate_limits_wait_out_retry_after_even_past_the_quarter_life() {
            let now = SystemTime::UNIX_EPOCH + S(1_700_000_000);
            // 429 with Retry-After: 7, a key with 8 s left (its quarter is 2 s): 7 s it is.
            let e = answer(429, "{}", parse_retry_after("7", now));
            assert_eq!(waits(&e, &keepalive(S(8), 0)), (S(7) + MIN_GAP, S(7) + 5 * MIN_GAP));
            let d = decide(&e, &keepalive(S(8), 3), 0.5);
            assert_eq!(
                (d.next, d.status, d.failures, d.hint),
                (Action::Keepalive, Status::Stale, 3, None)
            );
            // -1003 under 400 is a rate limit too.
            let e = answer(
                400,
                r#"{"code":-1003,"msg":"Too many requests."}"#,
                parse_retry_after("3", now),
            );
            assert_eq!(decide(&e, &keepalive(S(2400), 0), 0.0).wait, S(3) + MIN_GAP);
            // No usable Retry-After: a minute for 429, two for a 418 ban.
            let e = answer(429, "{}", parse_retry_after("soon", now));
            assert_eq!(decide(&e, &keepalive(S(2400), 0), 0.0).wait, S(60) + MIN_GAP);
            let e = answer(418, "", None);
            assert_eq!(decide(&e, &keepalive(S(2400), 0), 0.0).wait, S(120) + MIN_GAP);
            // A ban longer than Binance's longest is clamped to three days.
            let e = answer(418, "", parse_retry_after("99999999999", now));
            let three_days = S(3 * 24 * 3600);
            assert_eq!(
                waits(&e, &keepalive(S(2400), 0)),
                (three_days + MIN_GAP, three_days + 5 * MIN_GAP)
            );
            // The client's own gate carries the window left; without one, MAX_BACKOFF.
            let gate = ApiError {
                retry_after: Some(MS(1500)),
                ..ApiError::local(ErrorClass::RateLimited, "not sent: host is rate-limited for 2s more")
            };
            assert_eq!(decide(&gate, &keepalive(S(2400), 0), 0.0).wait, MS(1700));
            let bare = ApiError::local(ErrorClass::RateLimited, "x");
            assert_eq!(decide(&bare, &keepalive(S(2400), 0), 0.0).wait, MAX_BACKOFF + MIN_GAP);
            // Without a valid value: failed, and the next call creates.
            let expired = Situation {
                left: None,
                ..keepalive(S(0), 0)
            };
            let d = decide(&answer(418, "", None), &expired, 0.0);
            assert_eq!((d.next, d.status), (Action::Obtain, Status::Failed));
        }

        #[test]
        fn a_firewall_403_waits_two_minutes_and_keeps_the_value_stale() {
            let e = answer(403, "<html>blocked</html>", None);
            assert_eq!(waits(&e, &keepalive(S(2400), 0)), (S(108), S(132)));
            let d = decide(&e, &keepalive(S(2400), 2), 0.5);
            assert_eq!(d.wait, S(120));
            assert_eq!((d.next, d.status, d.failures), (Action::Keepalive, Status::Stale, 2));
            assert_eq!(d.hint, Some(Hint::Firewall));
            // Not capped by the life left: a key with 8 s still waits minutes.
            assert_eq!(decide(&e, &keepalive(S(8), 0), 0.5).wait, S(120));
        }

        #[test]
        fn a_retired_endpoint_fails_the_stream_and_is_retried_hourly() {
            for (status, hint, has_tokens) in [
                (410, Hint::RetiredUseToken, true),
                (404, Hint::RetiredUseToken, true),
                (410, Hint::Retired, false),
            ] {
                let e = answer(status, "", None);
                let s = Situation {
                    has_tokens,
                    ..keepalive(S(2400), 0)
                };
                assert_eq!(waits(&e, &s), (S(3240), S(3960)), "{status}");
                let d = decide(&e, &s, 0.5);
                assert_eq!(
                    (d.wait, d.status, d.hint),
                    (HOUR, Status::Failed, Some(hint)),
                    "{status}"
                );
                assert_eq!((d.next, d.rung.value), (Action::Keepalive, Value::Kept));
            }
            // 404 off a listen-key path is this stream's request refused, not a retirement.
            let e = classify(404, None, b"", false).unwrap_err();
            assert_eq!(decide(&e, &keepalive(S(2400), 0), 0.5).hint, Some(Hint::Rejected));
        }

        #[test]
        fn auth_errors_fail_the_stream_and_retry_every_five_minutes() {
            for (status, body) in [
                (400, r#"{"code":-2014,"msg":"API-key format invalid."}"#),
                (
                    401,
                    r#"{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}"#,
                ),
                (
                    400,
                    r#"{"code":-1002,"msg":"You are not authorized to execute this request."}"#,
                ),
                (
                    400,
                    r#"{"code":-1022,"msg":"Signature for this request is not valid."}"#,
                ),
                (401, ""),
            ] {
                let e = answer(status, body, None);
                assert_eq!(e.class, ErrorClass::Auth, "{body}");
                assert_eq!(waits(&e, &keepalive(S(2400), 0)), (S(270), S(330)), "{body}");
                let d = decide(&e, &keepalive(S(2400), 4), 0.5);
                assert_eq!(
                    (d.wait, d.status, d.hint, d.failures),
                    (S(300), Status::Failed, Some(Hint::Auth), 4)
                );
                // Fixed: neither the life left nor the failures shorten it.
                assert_eq!(decide(&e, &keepalive(S(8), 0), 0.5).wait, S(300));
            }
        }

        #[test]
        fn stream_config_errors_fail_only_that_stream_every_five_minutes() {
            for body in [
                r#"{"code":-1121,"msg":"Invalid symbol."}"#,
                r#"{"code":-3003,"msg":"Margin account does not exist."}"#,
                r#"{"code":-11001,"msg":"Isolated margin account does not exist."}"#,
                r#"{"code":-1102,"msg":"Mandatory parameter was not sent."}"#,
            ] {
                let e = answer(400, body, None);
                assert_eq!(e.class, ErrorClass::Rejected, "{body}");
                let s = Situation {
                    call: Action::Obtain,
                    left: None,
                    held: false,
                    ..keepalive(S(0), 0)
                };
                assert_eq!(waits(&e, &s), (S(270), S(330)), "{body}");
                let d = decide(&e, &s, 0.5);
                assert_eq!(
                    (d.wait, d.status, d.hint),
                    (S(300), Status::Failed, Some(Hint::Rejected))
                );
                assert_eq!(d.next, Action::Obtain);
            }
        }
    }

    /// Each venue's error codes, written as the venue writes them, walked
    /// down the ladder: the class its table gives, then the rung of that
    /// class, on a keepalive and on a create.
    mod venues {
        use super::*;
        use crate::exchange::error::classify_with;
        use crate::exchange::venue::{self, Venue};

        fn keepalive(left: Duration, failures: u32) -> Situation {
            Situation {
                call: Action::Keepalive,
                left: Some(left),
                held: true,
                lifetime: Duration::from_secs(3600),
                failures,
                has_tokens: false,
            }
        }

        /// The answer body `venue` sends for `code` (as written, integer or
        /// string), in its shape.
        fn body(v: &Venue, code: &serde_json::Value) -> String {
            let e = &v.errors;
            let mut b = serde_json::Map::new();
            b.insert(e.code_field.into(), code.clone());
            b.insert(e.message_field.into(), "the venue's words".into());
            if let Some(f) = e.success_field {
                b.insert(f.into(), false.into());
            }
            serde_json::Value::Object(b).to_string()
        }

        /// Every code of `v`'s table, under HTTP 200 and 400, as an integer
        /// where the venue could write it as one and as a string, lands on
        /// its class's rung; a rate limit waits a minute, a gone key is
        /// replaced now.
        fn walk(v: &Venue) {
            assert!(!v.errors.codes.is_empty() || v.errors.binance_codes, "{}", v.name);
            let table = v.errors.codes.iter().copied().chain(
                [("-1125", ErrorClass::Gone), ("-1021", ErrorClass::ClockSkew)]
                    .into_iter()
                    .filter(|_| v.errors.binance_codes),
            );
            for (code, class) in table {
                let mut forms = vec![serde_json::Value::String(code.to_owned())];
                if let Ok(n) = code.parse::<i64>()
                    && n.to_string() == code
                {
                    forms.push(n.into());
                }
                for form in &forms {
                    for status in [200, 400] {
                        let text = body(v, form);
                        let e = classify_with(&v.errors, status, None, text.as_bytes(), true).unwrap_err();
                        assert_eq!(e.class, class, "{} {status} {text}", v.name);
                        assert!(e.to_string().contains(code), "{} shows its code: {e}", v.name);
                        for call in [Action::Keepalive, Action::Obtain] {
                            let s = Situation {
                                call,
                                ..keepalive(S(1800), 2)
                            };
                            let d = decide(&e, &s, 0.5);
                            assert_eq!(d.rung, rung(class, call), "{} {code} {call:?}", v.name);
                            match (class, call) {
                                (ErrorClass::Gone, Action::Keepalive) => {
                                    assert_eq!((d.wait, d.next), (Duration::ZERO, Action::Obtain))
                                }
                                (ErrorClass::RateLimited, _) => assert!(d.wait >= S(60), "{}", v.name),
                                (ErrorClass::Auth | ErrorClass::Rejected, _) => {
                                    assert_eq!((d.wait, d.status), (S(300), Status::Failed))
                                }
                                _ => assert_eq!(d.status, Status::Stale),
                            }
                        }
                    }
                }
            }
            // A success stays one: no code, or a code the venue writes for success.
            for ok in [r#"{"listenKey":"k"}"#, r#"{"code":0,"listenKey":"k"}"#] {
                assert!(classify_with(&v.errors, 200, None, ok.as_bytes(), true).is_ok(), "{}", v.name);
            }
            for ok in v.errors.ok_codes {
                let b = format!(r#"{{"code":"{ok}","listenKey":"k"}}"#);
                assert!(classify_with(&v.errors, 200, None, b.as_bytes(), true).is_ok(), "{}", v.name);
            }
        }

        #[test]
        fn binance_and_the_binance_compatible_venues() {
            for v in [&venue::BINANCE, &venue::BINANCE_US, &venue::ASTER, &venue::TOOBIT] {
                walk(v);
            }
        }

        #[test]
        fn mexc_writes_positive_codes_730708_a_gone_key() {
            walk(&venue::MEXC);
            let e = classify_with(
                &venue::MEXC.errors,
                400,
                None,
                br#"{"code":"730708","msg":"listen key information error"}"#,
                true,
            )
            .unwrap_err();
            assert_eq!((e.class, e.code), (ErrorClass::Gone, Some(730_708)));
        }

        #[test]
        fn bingx_writes_positive_codes_under_200_and_404_for_a_gone_key() {
            walk(&venue::BINGX);
            assert_eq!(venue::BINGX.gone_statuses, [404]);
            let e = classify_with(&venue::BINGX.errors, 200, None, br#"{"code":100410,"msg":"slow"}"#, true)
                .unwrap_err();
            assert_eq!(e.retry_after, Some(S(60)));
        }

        #[test]
        fn hashkey_writes_string_codes_and_limits_with_a_400() {
            walk(&venue::HASHKEY);
            let e = classify_with(
                &venue::HASHKEY.errors,
                400,
                None,
                br#"{"code":"0003","msg":"Rate limit exceeded"}"#,
                true,
            )
            .unwrap_err();
            assert_eq!((e.class, e.code), (ErrorClass::RateLimited, None));
            assert_eq!(e.to_string(), "rate-limited: HTTP 400: code 0003: Rate limit exceeded");
        }

        #[test]
        fn woox_says_success_false() {
            walk(&venue::WOOX);
            // success: false is an error whatever the code, even none.
            let e = classify_with(&venue::WOOX.errors, 200, None, br#"{"success":false,"message":"no"}"#, true)
                .unwrap_err();
            assert_eq!((e.class, e.message.as_str()), (ErrorClass::Transient, "no"));
            assert!(classify_with(&venue::WOOX.errors, 200, None, br#"{"success":true,"data":{}}"#, true).is_ok());
        }

        #[test]
        fn every_venue_is_walked() {
            for v in venue::VENUES {
                walk(v);
            }
        }
    }
}
