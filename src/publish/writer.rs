//! The state-file writer task: after each change, writes the whole document
//! (on a blocking thread, so the runtime never waits on the disk), skips writes
//! that would not change the content, and retries a failed write with backoff
//! while keeping the previous file intact.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Hub, file};
use crate::clock::SharedClock;
use crate::state::Document;

/// The first retry delay after a failed write; doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// The longest delay between write attempts while writes fail.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// The writer's health, for `/readyz`, `status` and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterStatus {
    /// Documents written so far.
    pub writes: u64,
    /// The last write error, cleared by the next success.
    pub last_error: Option<String>,
}

/// Writes the state file whenever the hub reports a change, until cancelled;
/// then writes a last time.
pub async fn run(
    hub: Hub,
    path: PathBuf,
    mode: u32,
    clock: SharedClock,
    cancel: CancellationToken,
    status: watch::Sender<WriterStatus>,
) {
    let notify = hub.notifier();
    let mut last: Option<Document> = None;
    let mut retry: Option<Duration> = None;
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let doc = Document::build(&hub.snapshot(), clock.now());
        if last.as_ref().is_none_or(|l| !l.same_content(&doc)) {
            // The document moves to the blocking thread and back: no clone of every stream per write.
            let p = path.clone();
            let (outcome, doc) = match tokio::task::spawn_blocking(move || (file::write(&p, mode, &doc), doc)).await {
                Ok((outcome, doc)) => (outcome, Some(doc)),
                Err(e) => (Err(std::io::Error::other(e)), None),
            };
            match outcome {
                Ok(()) => {
                    last = doc;
                    if retry.take().is_some() {
                        tracing::info!(path = %path.display(), "state file written again");
                    }
                    status.send_modify(|s| {
                        s.writes += 1;
                        s.last_error = None;
                    });
                }
                Err(e) => {
                    let delay = retry.map_or(FIRST_RETRY, |d| (d * 2).min(MAX_RETRY));
                    retry = Some(delay);
                    let msg = format!("cannot write {}: {e}", path.display());
                    tracing::error!(
                        retry_in_ms = delay.as_millis() as u64,
                        "{msg}; the previous file is left as it was"
                    );
                    status.send_modify(|s| s.last_error = Some(msg));
                }
            }
        }
        if cancel.is_cancelled() {
            return;
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => {}
            _ = &mut notified => {}
            _ = tokio::time::sleep(retry.unwrap_or(Duration::MAX / 4)), if retry.is_some() => {}
        }
    }
}
