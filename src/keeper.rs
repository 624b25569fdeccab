//! The keeper: the library entry point that wires a config into running tasks.
//!
//! [`Keeper::start`] builds the Binance client, takes the state file's
//! instance lock, reads the previous state file (so restarts keep
//! generations), spawns one supervised scheduler task per stream, the
//! clock-jump watcher and the supervised state-file writer, and hands back
//! `watch` receivers for programs that embed it. Shutdown is the caller's
//! `CancellationToken`; [`Keeper::join`] waits for the schedulers, then has the
//! writer write a last time, then releases the lock.
//!
//! ```no_run
//! # async fn demo(config: listenkeyd::config::Config) {
//! use tokio_util::sync::CancellationToken;
//! let cancel = CancellationToken::new();
//! let keeper = listenkeyd::Keeper::start(&config, cancel.clone()).unwrap();
//! let mut rx = keeper.subscribe("usdm-futures").unwrap();
//! rx.changed().await.unwrap();
//! println!("generation {:?}", rx.borrow().held.as_ref().map(|h| h.generation));
//! cancel.cancel();
//! keeper.join().await;
//! # }
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::binance::Client;
use crate::binance::answer::plausible_credential;
use crate::clock::{self, SharedClock, SystemClock};
use crate::config::Config;
use crate::hooks::Hooks;
use crate::publish::writer::{self, WriterStatus};
use crate::publish::{Hub, file};
use crate::scheduler::StreamTask;
use crate::state::{Document, Status, StreamState};
use crate::stream::{CredentialKind, StreamSpec};

/// How long a supervisor waits before restarting a task that panicked.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// A test hook run before every attempt a scheduler makes (it may panic, to
/// prove that supervision restarts the task).
pub type AttemptHook = Arc<dyn Fn(&StreamSpec) + Send + Sync>;

/// Options for embedding programs and tests.
#[derive(Clone)]
pub struct Options {
    /// The time seam; the system clock by default.
    pub clock: SharedClock,
    /// Write the state file named in the config (on by default).
    pub state_file: bool,
    /// How often wall and monotonic time are compared (clock-jump detection).
    pub jump_check_every: Duration,
    /// Runs before every attempt; `None` outside tests.
    pub before_attempt: Option<AttemptHook>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("clock", &self.clock)
            .field("state_file", &self.state_file)
            .field("jump_check_every", &self.jump_check_every)
            .field("before_attempt", &self.before_attempt.is_some())
            .finish()
    }
}

impl Default for Options {
    fn default() -> Options {
        Options {
            clock: Arc::new(SystemClock),
            state_file: true,
            jump_check_every: clock::JUMP_CHECK_EVERY,
            before_attempt: None,
        }
    }
}

/// A running set of stream schedulers and their publishers.
#[derive(Debug)]
pub struct Keeper {
    hub: Hub,
    metrics: Arc<crate::metrics::Metrics>,
    tasks: JoinSet<()>,
    writer: watch::Receiver<WriterStatus>,
    state_path: Option<PathBuf>,
    live: Arc<AtomicUsize>,
    /// The state-file writer, stopped only after the schedulers (so its last
    /// write holds their last states); dropping the set aborts it.
    writer_task: JoinSet<()>,
    /// Tells the writer to write a last time and stop.
    writer_stop: CancellationToken,
    /// The state file's instance lock, released after the last write.
    lock: Option<crate::lock::InstanceLock>,
}

/// Why a keeper could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The HTTP client could not be built (TLS roots, …).
    #[error("{0}")]
    Client(String),
    /// The local API could not listen.
    #[error("api.listen: cannot listen: {0}")]
    Api(std::io::Error),
    /// The Redis client could not be set up.
    #[error("redis: {0}")]
    Redis(String),
    /// Another instance keeps the same state file, or its lock cannot be taken.
    #[error(transparent)]
    Locked(#[from] crate::lock::LockError),
}

impl Keeper {
    /// Starts keeping every stream of `config`, until `cancel` fires.
    pub fn start(config: &Config, cancel: CancellationToken) -> Result<Keeper, StartError> {
        Keeper::start_with(config, Options::default(), cancel)
    }

    /// Starts with explicit options (a test clock, no state file, …).
    pub fn start_with(config: &Config, options: Options, cancel: CancellationToken) -> Result<Keeper, StartError> {
        let clock = options.clock;
        let metrics = crate::metrics::Metrics::new();
        let client = Arc::new(Client::new(config.binance.clone(), clock.clone()).map_err(StartError::Client)?);
        let state_path = options.state_file.then(|| config.state.file.clone());
        // Locked before anything else touches the state file or the API socket:
        // a second instance leaves both to the first.
        let lock = state_path
            .as_deref()
            .map(crate::lock::InstanceLock::acquire)
            .transpose()?;
        if let Some(path) = &state_path {
            let swept = file::remove_stale_temps(path);
            if swept > 0 {
                tracing::info!(swept, "removed temporary files left by an earlier crash");
            }
        }
        // Bound next: a taken port fails start-up before anything runs.
        let api = config
            .api
            .listen
            .as_ref()
            .map(crate::api::Bound::bind)
            .transpose()
            .map_err(StartError::Api)?;
        let prior = state_path.as_deref().and_then(read_prior);
        let floors: std::collections::HashMap<String, u64> = prior
            .iter()
            .flat_map(|d| d.streams.iter().map(|(id, e)| (id.clone(), e.generation)))
            .collect();
        let api_key_fp = config.binance.api_key.fingerprint();
        let initial = config
            .streams
            .iter()
            .map(|s| {
                let keep = Keep {
                    api_key_fp: &api_key_fp,
                    renew_before: config.timing.token_renew_before,
                };
                seed(Arc::new(s.clone()), prior.as_ref(), clock.now(), keep)
            })
            .collect();
        let (hub, publishers) = Hub::new(initial);
        let jumps = clock::spawn_jump_watcher(clock.clone(), options.jump_check_every, cancel.clone());

        let mut tasks = JoinSet::new();
        let live = Arc::new(AtomicUsize::new(0));
        let (writer_tx, writer_rx) = watch::channel(WriterStatus::default());
        let mut writer_task = JoinSet::new();
        let writer_stop = CancellationToken::new();
        if let Some(path) = &state_path {
            let hooks = Hooks::start(&config.hooks, path.clone(), metrics.clone(), cancel.clone());
            let w = writer::Writer {
                path: path.clone(),
                mode: config.state.mode,
                clock: clock.clone(),
                metrics: metrics.clone(),
                hooks,
                prior,
            };
            writer_task.spawn(writer::supervised(hub.clone(), w, writer_stop.clone(), writer_tx));
        }
        // Redis, when configured, is one more publisher beside the state file;
        // in lease mode it also decides which replica calls the exchange.
        let mut remote = match &config.redis {
            Some(redis) => crate::remote::start(
                redis,
                &config.ha,
                &hub,
                clock.clone(),
                metrics.clone(),
                cancel.clone(),
                &mut tasks,
            )
            .map_err(|e| StartError::Redis(e.to_string()))?,
            None => crate::remote::Started::default(),
        };
        if let Some(bound) = api {
            tracing::info!(listen = %bound.describe(), "local API listening");
            let state = crate::api::ApiState {
                hub: hub.clone(),
                writer: writer_rx.clone(),
                metrics: metrics.clone(),
                clock: clock.clone(),
                cancel: cancel.clone(),
                roles: remote.roles.clone(),
            };
            tasks.spawn(crate::api::serve(bound, state, config.api.clone()));
        }
        for (spec, publisher) in config.streams.iter().zip(publishers) {
            let task = StreamTask {
                spec: Arc::new(spec.clone()),
                client: client.clone(),
                timing: config.timing.clone(),
                clock: clock.clone(),
                publisher: Arc::new(publisher),
                jumps: jumps.clone(),
                cancel: cancel.clone(),
                close_on_exit: config.binance.close_on_exit,
                metrics: metrics.clone(),
                generation_floor: floors.get(spec.id.as_str()).copied().unwrap_or(0),
                api_key_fp: api_key_fp.clone(),
                before_attempt: options.before_attempt.clone(),
                live: live.clone(),
                lease: remote.leases.remove(&spec.id),
            };
            tasks.spawn(supervise(task));
        }
        Ok(Keeper {
            hub,
            metrics,
            tasks,
            writer: writer_rx,
            state_path,
            live,
            writer_task,
            writer_stop,
            lock,
        })
    }

    /// A receiver of one stream's state, by stream id.
    pub fn subscribe(&self, id: &str) -> Option<watch::Receiver<StreamState>> {
        self.hub.subscribe(id)
    }

    /// The hub, for publishers (API, hooks, systemd).
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// The state-file writer's health.
    pub fn writer_status(&self) -> watch::Receiver<WriterStatus> {
        self.writer.clone()
    }

    /// The state file written, if any.
    pub fn state_path(&self) -> Option<&std::path::Path> {
        self.state_path.as_deref()
    }

    /// The number of stream scheduler tasks running now: one per stream once
    /// started, briefly fewer while a panicked task awaits its restart.
    pub fn live_tasks(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Waits for every task to finish (after the cancel token fired), then for
    /// the last state-file write, then releases the state file's lock.
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
        self.writer_stop.cancel();
        while self.writer_task.join_next().await.is_some() {}
        drop(self.lock.take());
    }
}

/// Runs a stream task, restarting it if it panics, until it returns.
async fn supervise(task: StreamTask) {
    loop {
        match tokio::spawn(task.clone().run()).await {
            Ok(()) => return,
            Err(e) if e.is_panic() => {
                tracing::error!(stream = %task.spec.id, "scheduler task panicked; restarting it");
                tokio::select! {
                    _ = task.cancel.cancelled() => return,
                    _ = tokio::time::sleep(RESTART_DELAY) => {}
                }
            }
            Err(_) => return,
        }
    }
}

/// The previous run's document, if there is a readable one.
fn read_prior(path: &std::path::Path) -> Option<Document> {
    match file::read(path) {
        Ok(doc) => Some(doc),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "previous state file unreadable; generations restart");
            None
        }
    }
}

/// What decides whether a token from the previous run is kept.
#[derive(Debug, Clone, Copy)]
struct Keep<'a> {
    /// The fingerprint of the configured API key.
    api_key_fp: &'a str,
    /// A token with less validity left than this is re-minted at once.
    renew_before: Duration,
}

/// A stream's starting state: the previous run's value for the same stream and
/// credential, so a restart never blanks the file and generations carry on;
/// otherwise nothing yet.
///
/// A listen token minted with the same API key that still has more than
/// `token_renew_before` left is kept as it is (`fresh`, same generation): its
/// scheduler re-mints it on schedule, not at start-up. Anything else is seeded
/// `stale` (or `failed` once expired) and refreshed at once; a listen key's
/// POST then returns the same key when the exchange still has it.
fn seed(spec: Arc<StreamSpec>, prior: Option<&Document>, now: SystemTime, keep: Keep<'_>) -> StreamState {
    let entry = prior
        .and_then(|d| d.streams.get(spec.id.as_str()))
        // The file is outside the process: a value that cannot be a credential is not carried on.
        .filter(|e| e.kind == spec.kind && e.credential == spec.credential && plausible_credential(&e.value));
    let Some(e) = entry else {
        return StreamState::starting(spec);
    };
    let held = e.held();
    let kept = spec.credential == CredentialKind::ListenToken
        && e.api_key_fp.as_deref() == Some(keep.api_key_fp)
        && held.expires_at > now + keep.renew_before;
    let status = if kept {
        Status::Fresh
    } else if held.expires_at > now {
        Status::Stale
    } else {
        Status::Failed
    };
    StreamState {
        spec,
        held: Some(held),
        status,
        reason: None,
        last_error: None,
        next_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Held;
    use crate::stream::Kind;

    #[test]
    fn an_implausible_value_in_the_previous_file_is_not_seeded() {
        let spec = Arc::new(StreamSpec::new(
            Kind::UsdmFutures,
            None,
            Kind::UsdmFutures.default_credential(),
        ));
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let held = |value: &str| StreamState {
            held: Some(Held {
                value: value.to_owned(),
                generation: 3,
                obtained_at: now,
                refreshed_at: now,
                expires_at: now + std::time::Duration::from_secs(60),
                api_key_fp: None,
            }),
            ..StreamState::starting(spec.clone())
        };
        let keep = Keep {
            api_key_fp: "00000000",
            renew_before: std::time::Duration::from_secs(1),
        };
        let good = Document::build([&held("k0123456789")], now);
        assert_eq!(
            seed(spec.clone(), Some(&good), now, keep).held.map(|h| h.generation),
            Some(3)
        );
        for bad in ["ab\ncd", "", "a b"] {
            let doc = Document::build([&held(bad)], now);
            assert!(seed(spec.clone(), Some(&doc), now, keep).held.is_none(), "{bad:?}");
        }
    }
}
