//! The state-file writer task: after each change, writes the whole document
//! (on a blocking thread, so the runtime never waits on the disk), skips writes
//! that would not change the content, and retries a failed write with backoff
//! while keeping the previous file intact. Once a document with a new
//! generation is on disk, it hands the change to the hooks.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Hub, file};
use crate::clock::SharedClock;
use crate::hooks::Hooks;
use crate::metrics::Metrics;
use crate::state::Document;
use crate::stream::StreamId;

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

/// What the writer needs besides the hub.
#[derive(Debug)]
pub struct Writer {
    /// The state file.
    pub path: PathBuf,
    /// Its permissions.
    pub mode: u32,
    /// The time seam.
    pub clock: SharedClock,
    /// Counts writes and failures.
    pub metrics: Arc<Metrics>,
    /// Run after a new generation is on disk.
    pub hooks: Option<Arc<Hooks>>,
    /// The previous run's document: the baseline for "a generation moved".
    pub prior: Option<Document>,
}

/// Writes the state file whenever the hub reports a change, until cancelled;
/// then writes a last time.
pub async fn run(hub: Hub, w: Writer, cancel: CancellationToken, status: watch::Sender<WriterStatus>) {
    let Writer {
        path,
        mode,
        clock,
        metrics,
        hooks,
        prior,
    } = w;
    let notify = hub.notifier();
    let mut last: Option<Document> = None;
    let mut generations: HashMap<String, u64> = prior
        .iter()
        .flat_map(|d| d.streams.iter().map(|(id, e)| (id.clone(), e.generation)))
        .collect();
    let mut retry: Option<Duration> = None;
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let doc = Document::build(&hub.snapshot(), clock.now());
        if last.as_ref().is_none_or(|l| !l.same_content(&doc)) {
            // The document moves to the blocking thread and back: no clone of every stream per write.
            let p = path.clone();
            let outcome = tokio::task::spawn_blocking(move || file::write(&p, mode, &doc).map(|()| doc))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            metrics.state_write(outcome.is_ok());
            match outcome {
                Ok(doc) => {
                    for (id, e) in &doc.streams {
                        if generations.insert(id.clone(), e.generation) != Some(e.generation) {
                            if let Some(h) = &hooks {
                                h.changed(&StreamId::from_string(id.clone()), e.generation);
                            }
                        }
                    }
                    last = Some(doc);
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
