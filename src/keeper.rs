//! The keeper: the library's entry point, which wires a config into running
//! tasks.
//!
//! [`Keeper::start`] builds one exchange client per account (its key, venue
//! rules and rate-limit window; hosts' windows, the request-weight budgets
//! and the HTTP connections, per egress address, are shared), takes the state file's
//! instance lock, reads the previous state file (so restarts keep
//! generations), creates the hub, starts the publishers (all of them in
//! [`crate::publishers::start`]), then one supervised scheduler task per
//! stream and the clock-jump watcher, and hands back `watch` receivers for
//! programs that embed it. Shutdown is the caller's `CancellationToken`;
//! [`Keeper::join`] waits for the schedulers and the publishers, then has the
//! state-file writer write a last time, then releases the lock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::exchange::Client;
use crate::stream::plausible_credential;
use crate::exchange::client::HostGates;
use crate::clock::{self, SharedClock, SystemClock};
use crate::config::Config;
use crate::hub::Hub;
use crate::publishers::state_file::file;
use crate::publishers::{self, Running};
use crate::scheduler::{AttemptHook, Shared, StreamTask};
use crate::state::{Document, Status, StreamState};
use crate::stream::StreamSpec;

/// How long a supervisor waits before restarting a task that panicked.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// How a keeper runs, besides its config.
///
/// ```
/// // An embedded keeper whose `watch` channels are the only output.
/// let options = listenkeyd::Options {
///     state_file: false,
///     ..listenkeyd::Options::default()
/// };
/// assert!(!options.systemd);
/// ```
#[derive(Clone)]
pub struct Options {
    /// Write the state file named in the config, holding its instance lock
    /// (on by default).
    pub state_file: bool,
    /// Speak systemd's notify protocol (`READY=1`, `STATUS=`, the watchdog)
    /// when `$NOTIFY_SOCKET` is set: the daemon turns it on; off by default,
    /// so that a program that embeds the keeper keeps its own.
    pub systemd: bool,
    /// How often wall and monotonic time are compared (clock-jump detection).
    #[cfg(feature = "test-seams")]
    pub jump_check_every: Duration,
    /// The time seam; the system clock by default.
    #[cfg(feature = "test-seams")]
    pub clock: SharedClock,
    /// Runs before every attempt a scheduler makes (it may panic, to prove
    /// that supervision restarts the task).
    #[cfg(feature = "test-seams")]
    pub before_attempt: Option<AttemptHook>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("state_file", &self.state_file)
            .field("systemd", &self.systemd)
            .finish_non_exhaustive()
    }
}

impl Default for Options {
    fn default() -> Options {
        Options {
            state_file: true,
            systemd: false,
            #[cfg(feature = "test-seams")]
            jump_check_every: clock::JUMP_CHECK_EVERY,
            #[cfg(feature = "test-seams")]
            clock: Arc::new(SystemClock),
            #[cfg(feature = "test-seams")]
            before_attempt: None,
        }
    }
}

impl Options {
    /// The seams: `(clock, jump check period, attempt hook)`.
    fn seams(&self) -> (SharedClock, Duration, Option<AttemptHook>) {
        #[cfg(feature = "test-seams")]
        return (self.clock.clone(), self.jump_check_every, self.before_attempt.clone());
        #[cfg(not(feature = "test-seams"))]
        (Arc::new(SystemClock), clock::JUMP_CHECK_EVERY, None)
    }
}

/// A running set of stream schedulers and their publishers.
///
/// Start one with [`Keeper::start`], follow a stream with
/// [`Keeper::subscribe`], stop it by cancelling the token it was started with
/// and waiting for [`Keeper::join`]. It must be started inside a tokio runtime.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use listenkeyd::config::Config;
/// use listenkeyd::secret::Secret;
/// use listenkeyd::stream::{Kind, StreamSpec};
/// use listenkeyd::{Keeper, Options};
/// use tokio_util::sync::CancellationToken;
///
/// let config = Config::builder()
///     .api_key(Secret::new(std::env::var("BINANCE_API_KEY")?))
///     .stream(StreamSpec::account_wide(Kind::UsdmFutures))
///     .build()?;
/// let options = Options { state_file: false, ..Options::default() };
/// let cancel = CancellationToken::new();
/// let keeper = Keeper::start_with(&config, options, cancel.clone())?;
/// let mut usdm = keeper.subscribe("usdm-futures").expect("configured");
/// while usdm.changed().await.is_ok() {
///     if let Some(held) = &usdm.borrow_and_update().held {
///         println!("generation {}: connect to wss://fstream.binance.com/ws/<value>", held.generation);
///     }
/// #   break;
/// }
/// cancel.cancel();
/// keeper.join().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Keeper {
    hub: Hub,
    /// The schedulers.
    tasks: JoinSet<()>,
    /// The publishers.
    publishers: Running,
    state_path: Option<PathBuf>,
    /// The number of scheduler tasks running.
    #[cfg_attr(not(feature = "test-seams"), allow(dead_code))]
    live: Arc<AtomicUsize>,
    /// The state file's instance lock, released after the last write.
    lock: Option<crate::publishers::state_file::lock::InstanceLock>,
}

/// Why a keeper could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The HTTP client could not be built (TLS roots, …).
    #[error(transparent)]
    Client(#[from] crate::exchange::ClientError),
    /// The local API could not listen.
    #[error("api.listen: cannot listen: {0}")]
    Api(std::io::Error),
    /// Another instance keeps the same state file, or its lock cannot be taken.
    #[error(transparent)]
    Locked(#[from] crate::publishers::state_file::lock::LockError),
    /// The Redis client could not be set up.
    #[error("redis: {0}")]
    Redis(String),
    /// A stream names an account the config does not list (a config put
    /// together by hand; a loaded or built one never does).
    #[error("stream {stream}: no account {account:?} is configured")]
    UnknownAccount {
        /// The stream's id.
        stream: String,
        /// The account it names.
        account: String,
    },
}

impl Keeper {
    /// Starts keeping every stream of `config` with the default [`Options`]
    /// (a state file, no systemd notify), until `cancel` fires.
    pub fn start(config: &Config, cancel: CancellationToken) -> Result<Keeper, StartError> {
        Keeper::start_with(config, Options::default(), cancel)
    }

    /// Starts with explicit [`Options`] (no state file, systemd notify, …).
    pub fn start_with(config: &Config, options: Options, cancel: CancellationToken) -> Result<Keeper, StartError> {
        let (clock, jump_check_every, before_attempt) = options.seams();
        let metrics = crate::publishers::metrics::Metrics::new();
        // A config built by hand may list no account: the single-account form's.
        let single = [crate::config::Account::from_binance(&config.binance)];
        let accounts = if config.accounts.is_empty() {
            &single[..]
        } else {
            &config.accounts[..]
        };
        let hosts = Arc::new(HostGates::new(config.limits.clone()));
        metrics.budgets(hosts.budgets().clone());
        let clients = clients(accounts, &config.streams, &clock, &hosts)?;
        let state_path = options.state_file.then(|| config.state.file.clone());
        // Locked before anything else touches the state file or the API socket:
        // a second instance leaves both to the first.
        let lock = state_path.as_deref().map(claim_state_file).transpose()?;
        // Bound next: a taken port fails start-up before anything runs.
        let api = config
            .api
            .listen
            .as_ref()
            .map(crate::publishers::api::Bound::bind)
            .transpose()
            .map_err(StartError::Api)?;
        let prior = state_path.as_deref().and_then(read_prior);
        let floors = generation_floors(prior.as_ref());
        let fingerprints: std::collections::HashMap<&str, Arc<str>> = accounts
            .iter()
            .map(|a| (a.name.as_str(), Arc::from(a.api_key.fingerprint())))
            .collect();
        let fp_of = |s: &StreamSpec| fingerprints.get(s.account.as_str()).cloned().unwrap_or_else(|| Arc::from(""));
        // One spec per stream, shared by its state, its task and the hub.
        let specs: Vec<Arc<StreamSpec>> = config.streams.iter().cloned().map(Arc::new).collect();
        let initial = specs
            .iter()
            .map(|s| {
                let api_key_fp = fp_of(s);
                let keep = Keep {
                    api_key_fp: &api_key_fp,
                    renew_before: config.timing.token_renew_before,
                };
                seed(s.clone(), prior.as_ref(), clock.now(), keep)
            })
            .collect();
        let (hub, stream_publishers) = Hub::new(initial);
        let mut tasks = JoinSet::new();
        // Replicas: the lease per account and what the holder writes to Redis,
        // which decide when a scheduler may call the exchange.
        let mut replicas = match &config.redis {
            Some(redis) => crate::replicas::start_replicas(redis, &config.ha, &hub, metrics.clone(), cancel.clone(), &mut tasks)
                .map_err(|e| StartError::Redis(e.to_string()))?,
            None => crate::replicas::Replicas::default(),
        };
        // Every publisher subscribes before the first scheduler publishes.
        let publishers = publishers::start(publishers::Context {
            config,
            hub: &hub,
            metrics: &metrics,
            clock: &clock,
            cancel: &cancel,
            state_file: state_path.clone().map(|p| (p, prior)),
            api,
            systemd: options.systemd,
            roles: &replicas.roles,
        });
        let jumps = clock::spawn_jump_watcher(clock.clone(), jump_check_every, cancel.clone());
        let live = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            timing: config.timing.clone(),
            clock: clock.clone(),
            cancel: cancel.clone(),
            metrics: metrics.clone(),
            before_attempt: before_attempt.clone(),
            live: live.clone(),
        });
        let leaders = shared_key_leaders(&specs, &clients);
        for (spec, publisher) in specs.into_iter().zip(stream_publishers) {
            let Some(client) = clients.get(&spec.account) else {
                continue; // Checked above.
            };
            if let Some(leader) = leaders.get(spec.id.as_str()).and_then(|l| hub.subscribe(l)) {
                tasks.spawn(
                    crate::scheduler::follow::Follower {
                        generation_floor: floors.get(spec.id.as_str()).copied().unwrap_or(0),
                        spec,
                        leader,
                        publisher,
                        cancel: cancel.clone(),
                        live: live.clone(),
                    }
                    .run(),
                );
                continue;
            }
            tasks.spawn(supervise(StreamTask {
                generation_floor: floors.get(spec.id.as_str()).copied().unwrap_or(0),
                lease: replicas.leases.remove(&spec.id).map(Box::new),
                api_key_fp: fp_of(&spec),
                client: client.clone(),
                shared: shared.clone(),
                publisher: Arc::new(publisher),
                jumps: jumps.clone(),
                close_on_exit: client.account().close_on_exit,
                spec,
            }));
        }
        Ok(Keeper {
            hub,
            tasks,
            publishers,
            state_path,
            live,
            lock,
        })
    }

    /// A receiver of one stream's state, by stream id (`usdm-futures`,
    /// `isolated-margin:BTCUSDT`); `None` for a stream not configured.
    pub fn subscribe(&self, id: &str) -> Option<watch::Receiver<StreamState>> {
        self.hub.subscribe(id)
    }

    /// The ids of the streams of `account` (its `[[accounts]]` name, or
    /// [`DEFAULT_ACCOUNT`](crate::stream::DEFAULT_ACCOUNT) in the
    /// single-account form), in config order.
    pub fn streams_of(&self, account: &str) -> Vec<String> {
        self.hub
            .snapshot()
            .iter()
            .filter(|s| s.spec.account == account)
            .map(|s| s.spec.id.to_string())
            .collect()
    }

    /// The hub: every stream's channel, a snapshot of all of them, and the
    /// stream of changes.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The state file written, if any.
    pub fn state_path(&self) -> Option<&std::path::Path> {
        self.state_path.as_deref()
    }

    /// The number of stream scheduler tasks running now: one per stream once
    /// started, briefly fewer while a panicked task awaits its restart.
    #[cfg(feature = "test-seams")]
    #[doc(hidden)]
    pub fn live_tasks(&self) -> usize {
        self.live.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits for every scheduler and publisher to finish (after the cancel
    /// token fired), then for the last state-file write, then releases the
    /// state file's lock.
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
        while self.publishers.tasks.join_next().await.is_some() {}
        self.publishers.writer_stop.cancel();
        while self.publishers.writer.join_next().await.is_some() {}
        drop(self.lock.take());
    }
}

/// For each stream whose key another stream of its account keeps (kinds that
/// share one key upstream, see [`crate::venue::Venue::shared_keys`]), the id
/// of that stream: the first of the group in config order.
fn shared_key_leaders(
    specs: &[Arc<StreamSpec>],
    clients: &std::collections::HashMap<String, Arc<Client>>,
) -> std::collections::HashMap<String, String> {
    let mut leaders = std::collections::HashMap::new();
    for (i, spec) in specs.iter().enumerate() {
        let Some(venue) = clients.get(&spec.account).map(|c| c.account().venue) else {
            continue;
        };
        let Some(group) = venue.shared_with(spec.kind) else {
            continue;
        };
        let leader = specs[..i].iter().find(|l| {
            l.account == spec.account
                && group.contains(&l.kind)
                && l.credential == spec.credential
                && spec.credential == crate::stream::CredentialKind::ListenKey
        });
        if let Some(l) = leader {
            tracing::info!(stream = %spec.id, keeper = %l.id, "shares one key with another stream of its account");
            leaders.insert(spec.id.to_string(), l.id.to_string());
        }
    }
    leaders
}

/// Runs a stream task, restarting it if it panics, until it returns.
///
/// The panic is caught around the task's future, as tokio catches it around
/// a task's: one task per stream instead of a supervisor task and a worker
/// task (~900 bytes a stream). The panicked future is dropped before the
/// restart delay, so `live_tasks` shows the gap.
async fn supervise(mut task: StreamTask) {
    use futures_util::FutureExt;
    loop {
        let outcome = std::panic::AssertUnwindSafe(task.run()).catch_unwind().await;
        if outcome.is_ok() {
            return;
        }
        tracing::error!(stream = %task.spec.id, "scheduler task panicked; restarting it");
        tokio::select! {
            _ = task.shared.cancel.cancelled() => return,
            _ = tokio::time::sleep(RESTART_DELAY) => {}
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

/// One client per account (its key, header, signing and own rate-limit
/// window), all sharing the hosts' rate-limit windows, by account name. A
/// stream naming an account that is not listed is refused before anything
/// starts.
fn clients(
    accounts: &[crate::config::Account],
    streams: &[StreamSpec],
    clock: &SharedClock,
    hosts: &Arc<HostGates>,
) -> Result<std::collections::HashMap<String, Arc<Client>>, StartError> {
    let mut clients = std::collections::HashMap::new();
    for account in accounts {
        let client = Client::for_account(account.clone(), clock.clone(), hosts.clone())?;
        clients.insert(account.name.clone(), Arc::new(client));
    }
    if let Some(s) = streams.iter().find(|s| !clients.contains_key(&s.account)) {
        return Err(StartError::UnknownAccount {
            stream: s.id.to_string(),
            account: s.account.clone(),
        });
    }
    Ok(clients)
}

/// The generation each stream had in the previous run's file: a new value
/// continues above it, so generations never go back across restarts.
fn generation_floors(prior: Option<&Document>) -> std::collections::HashMap<String, u64> {
    prior
        .iter()
        .flat_map(|d| d.streams.iter().map(|(id, e)| (id.clone(), e.generation)))
        .collect()
}

/// Takes the state file's instance lock, then sweeps the temporary files an
/// earlier crash left beside it.
fn claim_state_file(path: &Path) -> Result<crate::publishers::state_file::lock::InstanceLock, StartError> {
    let lock = crate::publishers::state_file::lock::InstanceLock::acquire(path)?;
    let swept = file::remove_stale_temps(path);
    if swept > 0 {
        tracing::info!(swept, "removed temporary files left by an earlier crash");
    }
    Ok(lock)
}

/// A stream's starting state: the previous run's value for the same stream and
/// credential, so a restart never blanks the file and generations carry on;
/// otherwise nothing yet.
///
/// A listen token minted with the same API key that still has more than
/// `token_renew_before` left is kept as it is (`fresh`, same generation): its
/// scheduler re-mints it on schedule, not at start-up. Anything else is seeded
/// `stale` (or `failed` once expired) and refreshed at once; a listen key's
/// POST then returns the same key when the exchange still has it, and on a
/// venue whose create mints a new key (MEXC) the kept key is extended instead.
fn seed(spec: Arc<StreamSpec>, prior: Option<&Document>, now: SystemTime, keep: Keep<'_>) -> StreamState {
    let entry = prior
        .and_then(|d| d.streams.get(spec.id.as_str()))
        // The file is outside the process: a value that cannot be a credential is not carried on.
        .filter(|e| e.kind == spec.kind && e.credential == spec.credential && plausible_credential(&e.value));
    let Some(e) = entry else {
        return StreamState::starting(spec);
    };
    let held = e.held();
    // Tokens and rotating keys are kept; re-minting a rotating key would kill
    // the one consumers hold.
    let kept = !spec.credential.extendable()
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
        error_class: None,
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
