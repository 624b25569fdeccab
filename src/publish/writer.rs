//! The state-file writer task: after each change, writes the whole document
//! (on a blocking thread, so the runtime never waits on the disk), skips writes
//! that would not change the content, and retries a failed write with backoff
//! while keeping the previous file intact. After each write it publishes the
//! generations now on disk ([`OnDisk`]), so that whoever must not act before
//! the file holds a value (the hooks) can wait for it. When told to stop
//! (after the schedulers have stopped), it writes the document a last time.
//! [`supervised`] restarts it if it ever panics, so one bad document cannot end
//! every later write in silence.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Hub, file};
use crate::clock::SharedClock;
use crate::metrics::Metrics;
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
    pub last_error: Option<WriteError>,
}

/// Why the state file is not being written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// The writer panicked and is being restarted.
    Panicked {
        /// The state file.
        path: PathBuf,
    },
    /// A write failed; the previous file is left as it was.
    Io {
        /// The state file.
        path: PathBuf,
        /// The operating system's error.
        error: String,
    },
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Panicked { path } => write!(f, "the writer of {} panicked; restarting it", path.display()),
            WriteError::Io { path, error } => write!(f, "cannot write {}: {error}", path.display()),
        }
    }
}

/// The generation of every stream in the state file on disk, by stream id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnDisk(HashMap<String, u64>);

impl OnDisk {
    /// Whether the file on disk holds stream `id` at `generation` or later.
    pub fn holds(&self, id: &str, generation: u64) -> bool {
        self.0.get(id).is_some_and(|g| *g >= generation)
    }

    /// Records that the file holds stream `id` at `generation`; returns whether that moved.
    pub fn set(&mut self, id: &str, generation: u64) -> bool {
        match self.0.get_mut(id) {
            Some(g) if *g == generation => false,
            Some(g) => {
                *g = generation;
                true
            }
            None => {
                self.0.insert(id.to_owned(), generation);
                true
            }
        }
    }

    /// Records `doc`'s generations; returns whether any moved.
    pub fn record(&mut self, doc: &Document) -> bool {
        let mut moved = false;
        for (id, e) in &doc.streams {
            moved |= self.set(id, e.generation);
        }
        moved
    }
}

/// How long the supervisor waits before restarting a writer that panicked.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// What the writer needs besides the hub.
#[derive(Debug, Clone)]
pub struct Writer {
    /// The state file.
    pub path: PathBuf,
    /// Its permissions.
    pub mode: u32,
    /// The time seam.
    pub clock: SharedClock,
    /// Counts writes and failures.
    pub metrics: Arc<Metrics>,
    /// Told the generations on disk after every write.
    pub on_disk: watch::Sender<OnDisk>,
    /// The previous run's document: what is on disk before the first write.
    pub prior: Option<Document>,
}

/// Runs the writer on its own task and restarts it after [`RESTART_DELAY`]
/// whenever it panics, with the file on disk as its baseline; the
/// panic is reported through `status` (so `/readyz` and `status` say so) until
/// a write succeeds again. Returns once the writer has stopped.
pub async fn supervised(hub: Hub, w: Writer, cancel: CancellationToken, status: watch::Sender<WriterStatus>) {
    supervise_with(hub, w, cancel, status, |hub, w, cancel, status| {
        run(hub, w, cancel, status)
    })
    .await
}

/// [`supervised`] over any writer body (the seam its tests use).
async fn supervise_with<F, Fut>(
    hub: Hub,
    mut w: Writer,
    cancel: CancellationToken,
    status: watch::Sender<WriterStatus>,
    mut body: F,
) where
    F: FnMut(Hub, Writer, CancellationToken, watch::Sender<WriterStatus>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let task = tokio::spawn(body(hub.clone(), w.clone(), cancel.clone(), status.clone()));
        match task.await {
            Err(e) if e.is_panic() => {
                let error = WriteError::Panicked { path: w.path.clone() };
                tracing::error!("{error}");
                status.send_modify(|s| s.last_error = Some(error));
                // A panic while stopping gets no second chance: stop must end.
                if cancel.is_cancelled() {
                    return;
                }
                w.prior = file::read(&w.path).ok();
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep(RESTART_DELAY) => {}
                }
            }
            _ => return,
        }
    }
}

/// Writes the state file whenever the hub reports a change, until cancelled;
/// then writes a last time.
pub async fn run(hub: Hub, w: Writer, cancel: CancellationToken, status: watch::Sender<WriterStatus>) {
    let Writer {
        path,
        mode,
        clock,
        metrics,
        on_disk,
        prior,
    } = w;
    let notify = hub.notifier();
    let mut last: Option<Document> = None;
    if let Some(prior) = &prior {
        on_disk.send_if_modified(|d| d.record(prior));
    }
    let mut retry: Option<Duration> = None;
    loop {
        let stopping = cancel.is_cancelled();
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let doc = Document::build(&hub.snapshot(), clock.now());
        // The last write happens even without a change: `updated_at` then says
        // when the keeper stopped, and nothing pending is left unwritten.
        if stopping || last.as_ref().is_none_or(|l| !l.same_content(&doc)) {
            // The document moves to the blocking thread and back: no clone of every stream per write.
            let p = path.clone();
            let outcome = tokio::task::spawn_blocking(move || file::write(&p, mode, &doc).map(|()| doc))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            metrics.state_write(outcome.is_ok());
            match outcome {
                Ok(doc) => {
                    on_disk.send_if_modified(|d| d.record(&doc));
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
                    let error = WriteError::Io {
                        path: path.clone(),
                        error: e.to_string(),
                    };
                    tracing::error!(
                        retry_in_ms = delay.as_millis() as u64,
                        "{error}; the previous file is left as it was"
                    );
                    status.send_modify(|s| s.last_error = Some(error));
                }
            }
        }
        if stopping {
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::clock::SystemClock;

    fn writer(path: PathBuf) -> Writer {
        Writer {
            path,
            mode: 0o600,
            clock: Arc::new(SystemClock),
            metrics: Metrics::new(),
            on_disk: watch::channel(OnDisk::default()).0,
            prior: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_writer_that_panics_is_restarted_and_its_panic_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let (hub, _publishers) = Hub::new(Vec::new());
        let (tx, mut rx) = watch::channel(WriterStatus::default());
        let cancel = CancellationToken::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let sup = tokio::spawn(supervise_with(
            hub,
            writer(path.clone()),
            cancel.clone(),
            tx,
            move |h, w, c, s| {
                let n = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        panic!("an impossible document");
                    }
                    run(h, w, c, s).await
                }
            },
        ));
        // The panic is reported before the restart delay has passed...
        let reported = rx
            .wait_for(|s| matches!(&s.last_error, Some(WriteError::Panicked { .. })))
            .await
            .unwrap()
            .clone();
        let text = format!("the writer of {} panicked; restarting it", path.display());
        assert_eq!(reported.last_error.unwrap().to_string(), text);
        assert!(!path.exists());
        // ...and the restarted writer writes and clears it.
        rx.wait_for(|s| s.writes == 1 && s.last_error.is_none()).await.unwrap();
        assert!(file::read(&path).is_ok());
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        cancel.cancel();
        sup.await.unwrap();
        assert_eq!(rx.borrow().writes, 2, "one last write on stop");
    }
}
