//! The time seam: every module asks [`Clock`] for the wall-clock time, and the
//! clock-jump watcher tells the schedulers when wall time moved in a way the
//! monotonic timer did not see (suspend/resume, an NTP step, a manual change).
//!
//! Deadlines are kept in wall time because that is what the exchange's expiry
//! is measured in; sleeping is done with tokio's timer, which does not advance
//! while the host is suspended. The watcher closes that gap: it compares both
//! clocks every [`JUMP_CHECK_EVERY`] and bumps a counter that every scheduler
//! watches, so each re-evaluates its deadline against real time within that
//! period of a jump. Tests swap in [`ManualClock`], which follows tokio's
//! (pausable) clock plus an offset they can move.

use std::sync::Arc;

use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often the clock-jump watcher compares wall and monotonic time.
pub const JUMP_CHECK_EVERY: Duration = Duration::from_secs(10);

/// A difference between the two clocks above this is reported as a jump.
pub const JUMP_THRESHOLD: Duration = Duration::from_secs(2);

/// A source of wall-clock time.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The real system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock for tests: a fixed origin plus tokio's elapsed time plus an offset
/// that a test moves to simulate a suspend or a wall-clock step.
#[cfg(any(test, feature = "test-seams"))]
#[derive(Debug)]
pub struct ManualClock {
    origin: SystemTime,
    start: tokio::time::Instant,
    offset_ms: std::sync::atomic::AtomicI64,
}

#[cfg(any(test, feature = "test-seams"))]
impl ManualClock {
    /// A clock that reads `origin` now and advances with tokio's clock.
    pub fn new(origin: SystemTime) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            origin,
            start: tokio::time::Instant::now(),
            offset_ms: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// Moves wall time by `ms` (negative: backwards) without moving tokio's clock.
    pub fn jump_ms(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(any(test, feature = "test-seams"))]
impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        let base = self.origin + self.start.elapsed();
        let off = self.offset_ms.load(std::sync::atomic::Ordering::SeqCst);
        if off >= 0 {
            base + Duration::from_millis(off as u64)
        } else {
            base - Duration::from_millis(off.unsigned_abs())
        }
    }
}

/// The last millisecond of year 9999, in ms since the Unix epoch: the latest
/// time RFC 3339 can write, and the latest time any answer may state.
pub const MAX_EPOCH_MS: i64 = 253_402_300_799_999;

/// The latest time this crate handles ([`MAX_EPOCH_MS`]); later times are clamped to it.
pub fn latest() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(MAX_EPOCH_MS as u64)
}

/// `t + d`, clamped to [`latest`] instead of overflowing.
pub fn later(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d).map_or_else(latest, |x| x.min(latest()))
}

/// `t` as RFC 3339 UTC with milliseconds. Total: a time before 1970 or after
/// year 9999 (which RFC 3339 cannot write, and humantime would panic on) is
/// clamped to the nearest writable one.
pub fn rfc3339_millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t.clamp(SystemTime::UNIX_EPOCH, latest())).to_string()
}

/// `t` as RFC 3339 UTC to the second; total, like [`rfc3339_millis`].
pub fn rfc3339_seconds(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t.clamp(SystemTime::UNIX_EPOCH, latest())).to_string()
}

/// Milliseconds since the Unix epoch of `t`, clamped to `0..=`[`MAX_EPOCH_MS`].
pub fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis().min(MAX_EPOCH_MS as u128) as i64)
        .unwrap_or(0)
}

/// The wall time `ms` milliseconds after the Unix epoch, clamped to
/// [1970, [`latest`]].
pub fn from_epoch_ms(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms.clamp(0, MAX_EPOCH_MS) as u64)
}

/// Time from `now` until `t`, zero if `t` has passed.
pub fn until(now: SystemTime, t: SystemTime) -> Duration {
    t.duration_since(now).unwrap_or(Duration::ZERO)
}

/// Watches for wall-clock jumps and bumps the returned counter on each one.
///
/// Runs until `cancel` fires. One wakeup every `every` ([`JUMP_CHECK_EVERY`]
/// in the daemon) for the whole process, however many streams there are.
pub fn spawn_jump_watcher(clock: SharedClock, every: Duration, cancel: CancellationToken) -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(0u64);
    tokio::spawn(async move {
        let mut wall = clock.now();
        let mut mono = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let (wall_now, mono_now) = (clock.now(), tokio::time::Instant::now());
            let mono_elapsed = mono_now - mono;
            let drift = match wall_now.duration_since(wall) {
                Ok(w) => w.abs_diff(mono_elapsed),
                Err(back) => back.duration() + mono_elapsed,
            };
            if drift > JUMP_THRESHOLD {
                tracing::info!(
                    drift_ms = drift.as_millis() as u64,
                    "wall clock jumped; re-evaluating every deadline"
                );
                tx.send_modify(|n| *n += 1);
            }
            (wall, mono) = (wall_now, mono_now);
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_is_total() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 40);
        assert_eq!(rfc3339_millis(far), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_seconds(far), "9999-12-31T23:59:59Z");
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(rfc3339_millis(before), "1970-01-01T00:00:00.000Z");
        assert_eq!(from_epoch_ms(999_999_999_999_999), latest());
        assert_eq!(from_epoch_ms(-5), SystemTime::UNIX_EPOCH);
        assert_eq!(later(far, Duration::MAX), latest());
    }

    #[tokio::test(start_paused = true)]
    async fn watcher_reports_a_jump_within_one_period() {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
        let cancel = CancellationToken::new();
        let mut rx = spawn_jump_watcher(clock.clone(), JUMP_CHECK_EVERY, cancel.clone());
        tokio::time::sleep(JUMP_CHECK_EVERY * 3).await;
        assert_eq!(*rx.borrow_and_update(), 0, "no jump while both clocks agree");
        clock.jump_ms(3_600_000);
        tokio::time::timeout(JUMP_CHECK_EVERY + Duration::from_secs(1), rx.changed())
            .await
            .expect("jump seen within one period")
            .unwrap();
        clock.jump_ms(-7_200_000);
        tokio::time::timeout(JUMP_CHECK_EVERY + Duration::from_secs(1), rx.changed())
            .await
            .expect("backward jump seen too")
            .unwrap();
        cancel.cancel();
    }
}
