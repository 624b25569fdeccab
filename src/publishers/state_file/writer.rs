//! The state-file writer task: when the hub's changes fall due, writes the
//! whole document (on a blocking thread, so the runtime never waits on the
//! disk); a keepalive waits for the others due within its delay, so one write
//! serves thousands of them. It retries a failed write with backoff while
//! keeping the previous file intact. After each write it publishes the
//! generations now on disk ([`OnDisk`]), so that whoever must not act before
//! the file holds a value (the hooks) can wait for it. When told to stop
//! (after the schedulers have stopped), it writes the document a last time.
//! [`supervised`] restarts it if it ever panics, so one bad document cannot end
//! every later write in silence.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::due::Changes;
use super::{file, render};
use crate::hub::Hub;
use crate::clock::{SharedClock, until};
use crate::state::Document;

#[cfg(doc)]
use super::due::FileChange;

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

    /// Records the generations a write put on disk (`fresh`, in the hub's
    /// order); whether any moved.
    fn record_written(&mut self, hub: &Hub, fresh: &[Option<u64>]) -> bool {
        let mut moved = false;
        for (i, g) in fresh.iter().enumerate() {
            if let (Some(g), Some(id)) = (g, hub.id(i)) {
                moved |= self.set(id.as_str(), *g);
            }
        }
        moved
    }
}

/// How long the supervisor waits before restarting a writer that panicked.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// Told the outcome of every write (`true` when it succeeded): how the
/// writer's caller counts writes and failures without the writer knowing
/// who counts them.
#[derive(Clone)]
pub struct WriteOutcomes(Arc<dyn Fn(bool) + Send + Sync>);

impl WriteOutcomes {
    /// Calls `f` after every write.
    pub fn new(f: impl Fn(bool) + Send + Sync + 'static) -> WriteOutcomes {
        WriteOutcomes(Arc::new(f))
    }

    /// Reports one write.
    fn record(&self, ok: bool) {
        (self.0)(ok)
    }
}

impl std::fmt::Debug for WriteOutcomes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteOutcomes")
    }
}

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
    pub outcomes: WriteOutcomes,
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

/// Writes the state file when the hub's changes fall due ([`FileChange`]: a
/// new value or status at once, a keepalive within its delay), until
/// cancelled; then writes a last time. The first write happens at once.
pub async fn run(hub: Hub, w: Writer, cancel: CancellationToken, status: watch::Sender<WriterStatus>) {
    let Writer {
        path,
        mode,
        clock,
        outcomes,
        on_disk,
        prior,
    } = w;
    let mut changes = Changes::follow(&hub);
    if let Some(prior) = &prior {
        on_disk.send_if_modified(|d| d.record(prior));
    }
    drop(prior);
    let mut due = Some(SystemTime::UNIX_EPOCH);
    let mut retry: Option<Duration> = None;
    loop {
        let stopping = cancel.is_cancelled();
        if let Some(at) = changes.take(&hub) {
            due = Some(due.map_or(at, |d| d.min(at)));
        }
        let now = clock.now();
        // The last write happens even without a change: `updated_at` then says
        // when the keeper stopped, and nothing pending is left unwritten.
        if stopping || due.is_some_and(|d| d <= now) {
            due = None;
            let outcome = write(&path, mode, &hub, now).await;
            outcomes.record(outcome.is_ok());
            match outcome {
                Ok(fresh) => {
                    on_disk.send_if_modified(|d| d.record_written(&hub, &fresh));
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
                    due = Some(now + delay);
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
        let wait = due.map(|d| until(clock.now(), d));
        tokio::select! {
            biased;
            _ = cancel.cancelled() => {}
            at = changes.next(&hub) => {
                if let Some(at) = at {
                    due = Some(due.map_or(at, |d| d.min(at)));
                }
            }
            _ = tokio::time::sleep(wait.unwrap_or(Duration::MAX / 4)), if wait.is_some() => {}
        }
    }
}

/// Writes the document of `hub` at `now` to `path`, off the runtime's
/// threads; returns the generation each stream's entry shows on disk.
async fn write(path: &std::path::Path, mode: u32, hub: &Hub, now: SystemTime) -> std::io::Result<Vec<Option<u64>>> {
    let (p, h) = (path.to_path_buf(), hub.clone());
    tokio::task::spawn_blocking(move || {
        let mut fresh = vec![None; h.len()];
        file::write_with(&p, mode, |out| render::document(&h, now, out, &mut fresh)).map(|()| fresh)
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::clock::{Clock, ManualClock, SystemClock};
    use crate::publishers::state_file::due::KEEPALIVE_WRITE_DELAY;
    use crate::hub::Publisher;
    use crate::state::{Held, Status, StreamState};
    use crate::stream::{CredentialKind, Kind, StreamSpec};

    const MIN: Duration = Duration::from_secs(60);

    /// One listen-key stream holding `value` (generation 1), refreshed at `at`, living 60 minutes.
    fn held(at: SystemTime, lifetime: Duration) -> StreamState {
        let spec = Arc::new(StreamSpec::new(Kind::UsdmFutures, None, CredentialKind::ListenKey));
        StreamState {
            held: Some(Held {
                value: "k".repeat(64),
                generation: 1,
                obtained_at: at,
                refreshed_at: at,
                expires_at: at + lifetime,
                api_key_fp: Some("0a1b2c3d".into()),
            }),
            status: Status::Fresh,
            ..StreamState::starting(spec)
        }
    }

    /// The state after a keepalive at `at`: a new expiry, nothing else.
    fn kept_alive(s: &StreamState, at: SystemTime, lifetime: Duration) -> StreamState {
        let mut s = s.clone();
        if let Some(h) = s.held.as_mut() {
            h.refreshed_at = at;
            h.expires_at = at + lifetime;
        }
        s
    }

    /// A writer over one stream on the paused clock, after its first write.
    struct Running {
        clock: Arc<ManualClock>,
        path: PathBuf,
        publisher: Publisher,
        state: StreamState,
        status: watch::Receiver<WriterStatus>,
        cancel: CancellationToken,
        _dir: tempfile::TempDir,
    }

    async fn running(lifetime: Duration) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let state = held(clock.now(), lifetime);
        let (hub, mut publishers) = Hub::new(vec![state.clone()]);
        let (tx, mut status) = watch::channel(WriterStatus::default());
        let cancel = CancellationToken::new();
        let w = Writer {
            clock: clock.clone(),
            ..writer(path.clone())
        };
        tokio::spawn(run(hub, w, cancel.clone(), tx));
        status.wait_for(|s| s.writes == 1).await.unwrap();
        Running {
            clock,
            path,
            publisher: publishers.remove(0),
            state,
            status,
            cancel,
            _dir: dir,
        }
    }

    impl Running {
        /// The expiry the file shows.
        fn file_expiry(&self) -> SystemTime {
            file::read(&self.path).unwrap().streams["usdm-futures"]
                .expires()
                .unwrap()
        }

        /// Publishes `state`, then waits for the next write (or `limit`);
        /// returns how long the write took to come, if it came.
        async fn publish(&mut self, state: StreamState, limit: Duration) -> Option<Duration> {
            let writes = self.status.borrow().writes;
            self.state = state.clone();
            let t0 = tokio::time::Instant::now();
            self.publisher.publish(state);
            let written = tokio::time::timeout(limit, self.status.wait_for(|s| s.writes > writes)).await;
            written.ok().map(|_| t0.elapsed())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_keepalive_reaches_the_file_within_its_delay_and_the_file_stays_healthy_meanwhile() {
        let mut r = running(60 * MIN).await;
        let old = r.file_expiry();
        // Halfway through the key's life, a keepalive moves the expiry 30 minutes later.
        tokio::time::advance(30 * MIN).await;
        let kept = kept_alive(&r.state, r.clock.now(), 60 * MIN);
        let new = kept.held.as_ref().unwrap().expires_at;
        let nearly = KEEPALIVE_WRITE_DELAY - Duration::from_secs(1);
        assert_eq!(r.publish(kept, nearly).await, None, "the keepalive was written at once");
        // Meanwhile the file under-states the expiry, and health on it is still true.
        assert_eq!(r.file_expiry(), old);
        let doc = file::read(&r.path).unwrap();
        assert_eq!(doc.problems(r.clock.now()), Vec::<String>::new());
        // It lands when its delay is over.
        r.status.wait_for(|s| s.writes == 2).await.unwrap();
        assert_eq!(r.file_expiry(), new);
        r.cancel.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn keepalives_close_to_the_old_expiry_are_written_before_half_its_time_is_gone() {
        // Keys of 8 s kept alive every 4 s: the file may lag 2 s at most.
        let mut r = running(Duration::from_secs(8)).await;
        tokio::time::advance(Duration::from_secs(4)).await;
        let kept = kept_alive(&r.state, r.clock.now(), Duration::from_secs(8));
        let took = r.publish(kept, MIN).await.expect("written");
        assert_eq!(took, Duration::from_secs(2));
        assert!(r.file_expiry() > r.clock.now() + Duration::from_secs(4));
        r.cancel.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_value_a_status_change_and_an_earlier_expiry_are_written_at_once() {
        let mut r = running(60 * MIN).await;
        tokio::time::advance(10 * MIN).await;
        // A keepalive waits...
        let kept = kept_alive(&r.state, r.clock.now(), 60 * MIN);
        let new = kept.held.as_ref().unwrap().expires_at;
        assert_eq!(r.publish(kept, Duration::from_secs(1)).await, None);
        // ...and a new value takes it along at once (no time passes).
        let mut new_value = r.state.clone();
        if let Some(h) = new_value.held.as_mut() {
            h.value = "n".repeat(64);
            h.generation = 2;
        }
        assert_eq!(r.publish(new_value, Duration::from_secs(1)).await, Some(Duration::ZERO));
        let doc = file::read(&r.path).unwrap();
        assert_eq!(doc.streams["usdm-futures"].generation, 2);
        assert_eq!(r.file_expiry(), new, "the waiting keepalive came along");
        // A status change, at once.
        let mut stale = r.state.clone();
        stale.status = Status::Stale;
        assert_eq!(r.publish(stale, Duration::from_secs(1)).await, Some(Duration::ZERO));
        assert_eq!(
            file::read(&r.path).unwrap().streams["usdm-futures"].status,
            Status::Stale
        );
        // An expiry moved earlier (a value the exchange dropped), at once.
        let mut dropped = r.state.clone();
        if let Some(h) = dropped.held.as_mut() {
            h.expires_at = r.clock.now();
        }
        assert_eq!(r.publish(dropped, Duration::from_secs(1)).await, Some(Duration::ZERO));
        assert_eq!(r.file_expiry(), r.clock.now());
        // A change the file does not show (the next planned call) writes nothing.
        let mut planned = r.state.clone();
        planned.next_at = Some(r.clock.now() + MIN);
        assert_eq!(r.publish(planned, 2 * KEEPALIVE_WRITE_DELAY).await, None);
        r.cancel.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_writes_a_waiting_keepalive() {
        let mut r = running(60 * MIN).await;
        tokio::time::advance(30 * MIN).await;
        let kept = kept_alive(&r.state, r.clock.now(), 60 * MIN);
        let new = kept.held.as_ref().unwrap().expires_at;
        assert_eq!(r.publish(kept, Duration::from_secs(1)).await, None);
        r.cancel.cancel();
        r.status.wait_for(|s| s.writes == 2).await.unwrap();
        assert_eq!(r.file_expiry(), new);
    }

    fn writer(path: PathBuf) -> Writer {
        Writer {
            path,
            mode: 0o600,
            clock: Arc::new(SystemClock),
            outcomes: WriteOutcomes::new(|_| {}),
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
