//! The systemd notify protocol (`Type=notify`), through the `sd-notify` crate.
//!
//! `READY=1` once every stream's scheduler has made its first attempt and the
//! state file (when the keeper writes one) holds the result; `STATUS=` a one-line summary whenever it
//! changes (at most once a second); `WATCHDOG=1` every half of
//! `WATCHDOG_USEC`, but only while the schedulers make progress, that is while
//! no stream is more than [`STUCK_AFTER`] past its planned call, so systemd
//! restarts a daemon whose schedulers hang; `STOPPING=1` on shutdown. Without
//! `NOTIFY_SOCKET` nothing is sent.

use std::time::{Duration, SystemTime};

use sd_notify::NotifyState;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::hub::Hub;
use crate::publishers::state_file::writer::WriterStatus;
use crate::state::{Status, StreamState};

/// A stream this far past its planned call counts as stuck (no watchdog ping).
pub const STUCK_AFTER: Duration = Duration::from_secs(60);
/// The shortest interval between two `STATUS=` lines.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Whether systemd is listening.
pub fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Sends `states`, logging a failure once at debug level (systemd may be gone).
fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// The one-line summary: fresh/total and the next planned refresh; with
/// `[[accounts]]`, how many accounts and which ones have failed streams.
pub fn summary(states: &[StreamState]) -> String {
    let fresh = states.iter().filter(|s| s.status == Status::Fresh).count();
    let failed: Vec<&StreamState> = states.iter().filter(|s| s.status == Status::Failed).collect();
    let next = states.iter().filter_map(|s| s.next_at).min();
    let mut line = format!("{fresh}/{} streams fresh", states.len());
    let named = states.iter().any(|s| s.spec.named_account());
    if named {
        let accounts: std::collections::BTreeSet<&str> = states.iter().map(|s| s.spec.account.as_str()).collect();
        line.push_str(&format!(" in {} accounts", accounts.len()));
    }
    if !failed.is_empty() {
        line.push_str(&format!(", {} failed", failed.len()));
        if named {
            let accounts: std::collections::BTreeSet<&str> = failed.iter().map(|s| s.spec.account.as_str()).collect();
            line.push_str(&format!(" ({})", accounts.into_iter().collect::<Vec<_>>().join(", ")));
        }
    }
    if let Some(n) = next {
        // Absolute, so the line changes only when something happened.
        line.push_str(&format!("; next refresh at {}", crate::clock::rfc3339_seconds(n)));
    }
    line
}

/// Whether every started stream is at most [`STUCK_AFTER`] past its plan.
pub fn progressing(states: &[StreamState], now: SystemTime) -> bool {
    states
        .iter()
        .filter_map(|s| s.next_at)
        .all(|at| now <= at + STUCK_AFTER)
}

/// Speaks the notify protocol until `cancel` fires, then sends `STOPPING=1`.
/// `writer` is the state-file writer's health, `None` without a state file.
pub async fn run(
    hub: Hub,
    mut writer: Option<watch::Receiver<WriterStatus>>,
    clock: SharedClock,
    cancel: CancellationToken,
) {
    if !enabled() {
        return;
    }
    let watchdog = sd_notify::watchdog_enabled().map(|usec| usec / 2);
    let notify = hub.notifier();
    let mut ready = false;
    let mut last_status = String::new();
    let mut last_sent: Option<tokio::time::Instant> = None;
    let mut writer_open = writer.is_some();
    let mut ping = watchdog.map(|every| tokio::time::interval(every.max(Duration::from_millis(100))));
    loop {
        let changed = notify.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let states = hub.snapshot();
        let written = writer.as_mut().is_none_or(|w| w.borrow_and_update().writes > 0);
        if !ready && states.iter().all(StreamState::started) && written {
            ready = true;
            send(&[NotifyState::Ready, NotifyState::Status(&summary(&states))]);
            tracing::info!("ready: every stream has been published once");
        }
        let line = summary(&states);
        let mut pending = None;
        if ready && line != last_status {
            match last_sent
                .map(|t| t + STATUS_EVERY)
                .filter(|due| *due > tokio::time::Instant::now())
            {
                Some(due) => pending = Some(due),
                None => {
                    send(&[NotifyState::Status(&line)]);
                    last_status = line;
                    last_sent = Some(tokio::time::Instant::now());
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = &mut changed => {}
            r = async { writer.as_mut().expect("guarded").changed().await }, if writer_open => writer_open = r.is_ok(),
            _ = async { ping.as_mut().expect("guarded").tick().await }, if ping.is_some() => {
                if progressing(&hub.snapshot(), clock.now()) {
                    send(&[NotifyState::Watchdog]);
                } else {
                    tracing::error!("a scheduler is stuck past its deadline; withholding the watchdog ping");
                }
            }
            // A line held back by the rate limit goes out when it expires.
            _ = tokio::time::sleep_until(pending.unwrap_or_else(tokio::time::Instant::now)), if pending.is_some() => {}
        }
    }
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::stream::{CredentialKind, Kind, StreamSpec};

    fn state(spec: StreamSpec, status: Status) -> StreamState {
        StreamState {
            status,
            ..StreamState::starting(Arc::new(spec))
        }
    }

    #[test]
    fn the_summary_names_failed_accounts_only_with_accounts() {
        let single = [state(
            StreamSpec::new(Kind::UsdmFutures, None, CredentialKind::ListenKey),
            Status::Failed,
        )];
        assert_eq!(summary(&single), "0/1 streams fresh, 1 failed");
        let named = |account: &str, status| {
            let spec = StreamSpec::in_account(account, "binance", Kind::UsdmFutures, None, CredentialKind::ListenKey);
            state(spec, status)
        };
        let many = [
            named("main", Status::Fresh),
            named("desk2", Status::Failed),
            named("us", Status::Fresh),
        ];
        assert_eq!(summary(&many), "2/3 streams fresh in 3 accounts, 1 failed (desk2)");
    }
}
