//! Hooks: commands run, or signals sent, when a stream's value changes.
//!
//! Hooks follow the hub on their own ([`start`]): a dispatcher task reads its event
//! broadcast and notes every stream whose generation moved. When the keeper
//! writes a state file, a change waits until the writer reports that
//! generation on disk ([`OnDisk`]), so a hook that reads the file sees the new
//! value (while writes fail, hooks wait with them); without a state file it
//! goes out at once, and hooks work the same for a program that embeds the
//! keeper without a state file. Each hook has its own worker task and a set of pending changes holding at
//! most one entry per stream: a change that arrives while an earlier one for
//! the same stream still waits replaces it (the hook runs once, for the newest
//! generation), so a slow hook merges rotations instead of dropping them, and
//! the set never outgrows the number of streams. A slow or hanging hook delays
//! only its own later runs, never a scheduler or another hook.
//!
//! A command runs in a process group of its own; when it outlives its
//! `timeout` the whole group is killed, grandchildren included. It succeeds
//! when its own process exits 0, even if it left work running in the
//! background. At most [`STDERR_KEPT`] bytes of its stderr are kept (the rest
//! is read and discarded so the hook never blocks on a full pipe). A signal
//! hook re-reads its pid file at every send and refuses a pid whose process
//! started after the pid file was written: that process is not the one the
//! file names, but a stranger that was given a recycled pid. Failures are
//! logged and counted, never fatal. Hook commands get `LISTENKEYD_STREAM`,
//! `LISTENKEYD_ACCOUNT` (the stream's account, `default` in the
//! single-account form), `LISTENKEYD_GENERATION` and, with a state file,
//! `LISTENKEYD_STATE_FILE`; never a credential.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{Hook, HookAction, HookSignal};
use crate::publishers::metrics::Metrics;
use crate::hub::Hub;
use crate::publishers::procfs;
use crate::publishers::state_file::writer::OnDisk;
use crate::state::StreamState;
use crate::stream::StreamId;

/// The most of a hook's stderr kept for the log.
pub const STDERR_KEPT: usize = 4096;
/// The longest stderr excerpt put in a log line.
const STDERR_EXCERPT: usize = 512;
/// How long stderr is still read after the hook's process exited (a
/// background child may hold the pipe open for ever).
const STDERR_GRACE: Duration = Duration::from_millis(200);

/// The changes waiting for one hook: the newest generation per stream.
#[derive(Debug, Default)]
struct Pending {
    /// Stream → newest generation not yet acted on.
    changes: Mutex<BTreeMap<StreamId, u64>>,
    /// Wakes the worker.
    wake: Notify,
}

impl Pending {
    /// The set, even if a panic elsewhere poisoned its lock (the map is valid
    /// after any interrupted insert or take).
    fn lock(&self) -> MutexGuard<'_, BTreeMap<StreamId, u64>> {
        self.changes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a change; returns true when it replaced a waiting one.
    fn push(&self, stream: &StreamId, generation: u64) -> bool {
        let merged = {
            let mut map = self.lock();
            match map.get_mut(stream) {
                Some(g) => {
                    *g = (*g).max(generation);
                    true
                }
                None => {
                    map.insert(stream.clone(), generation);
                    false
                }
            }
        };
        self.wake.notify_one();
        merged
    }

    /// Takes every waiting change.
    fn take(&self) -> BTreeMap<StreamId, u64> {
        std::mem::take(&mut *self.lock())
    }
}

/// The running hooks' queues.
#[derive(Debug)]
struct Hooks {
    workers: Vec<(usize, Hook, Arc<Pending>)>,
    metrics: Arc<Metrics>,
}

/// Starts a worker per hook and the dispatcher that feeds them from `hub`;
/// nothing when there are no hooks. `state_file` is the file the keeper writes
/// and the generations its writer reports on disk.
pub fn start(
    hooks: &[Hook],
    hub: &Hub,
    state_file: Option<(PathBuf, watch::Receiver<OnDisk>)>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    if hooks.is_empty() {
        return;
    }
    let (path, on_disk) = state_file.unzip();
    let mut workers = Vec::new();
    for (index, hook) in hooks.iter().enumerate() {
        let pending = Arc::new(Pending::default());
        tokio::spawn(worker(
            index,
            hook.clone(),
            pending.clone(),
            path.clone(),
            metrics.clone(),
            cancel.clone(),
        ));
        workers.push((index, hook.clone(), pending));
    }
    let hooks = Hooks { workers, metrics };
    // Subscribed and baselined now, before any scheduler runs: no change is missed.
    let events = hub.events();
    let mut seen = HashMap::new();
    for state in hub.snapshot() {
        note(&mut seen, &mut BTreeMap::new(), &state);
    }
    tokio::spawn(dispatch(hooks, hub.clone(), events, seen, on_disk, cancel));
}

impl Hooks {
    /// Queues a run of every hook whose filter admits `stream`; never waits.
    pub fn changed(&self, stream: &StreamId, generation: u64) {
        for (index, hook, pending) in &self.workers {
            if hook.matches(stream) && pending.push(stream, generation) {
                tracing::debug!(hook = index, stream = %stream, generation, "hook busy; change merged with a waiting one");
                self.metrics.hook_run(*index, "merged");
            }
        }
    }
}

/// Records `state`'s generation in `seen`; a moved one waits in `waiting`.
fn note(seen: &mut HashMap<StreamId, u64>, waiting: &mut BTreeMap<StreamId, u64>, state: &StreamState) {
    let Some(held) = &state.held else { return };
    let id = &state.spec.id;
    let moved = match seen.get_mut(id) {
        Some(g) if *g == held.generation => false,
        Some(g) => {
            *g = held.generation;
            true
        }
        None => {
            seen.insert(id.clone(), held.generation);
            true
        }
    };
    if moved {
        let g = waiting.entry(id.clone()).or_insert(held.generation);
        *g = (*g).max(held.generation);
    }
}

/// Follows the hub until cancelled: every new generation goes to the hooks
/// once `on_disk` (when there is a state file) says the file holds it.
async fn dispatch(
    hooks: Hooks,
    hub: Hub,
    mut events: broadcast::Receiver<StreamState>,
    mut seen: HashMap<StreamId, u64>,
    mut on_disk: Option<watch::Receiver<OnDisk>>,
    cancel: CancellationToken,
) {
    let mut waiting: BTreeMap<StreamId, u64> = BTreeMap::new();
    let mut disk_open = on_disk.is_some();
    loop {
        {
            let disk = on_disk.as_mut().map(|rx| rx.borrow_and_update());
            waiting.retain(|id, generation| {
                let written = disk.as_ref().is_none_or(|d| d.holds(id.as_str(), *generation));
                if written {
                    hooks.changed(id, *generation);
                }
                !written
            });
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            event = events.recv() => match event {
                Ok(state) => note(&mut seen, &mut waiting, &state),
                // Too far behind to know which changes were missed: compare every stream.
                Err(RecvError::Lagged(_)) => {
                    for state in hub.snapshot() {
                        note(&mut seen, &mut waiting, &state);
                    }
                }
                Err(RecvError::Closed) => return,
            },
            r = async { on_disk.as_mut().expect("guarded").changed().await }, if disk_open => {
                // The writer is gone (shutdown): what is not on disk by now never will be.
                disk_open = r.is_ok();
            }
        }
    }
}

/// Runs one hook's pending changes, one at a time, until cancelled.
async fn worker(
    index: usize,
    hook: Hook,
    pending: Arc<Pending>,
    state_file: Option<PathBuf>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = pending.wake.notified() => {}
        }
        for (stream, generation) in pending.take() {
            if cancel.is_cancelled() {
                return;
            }
            let result = match &hook.action {
                HookAction::Exec(argv) => exec(argv, &stream, generation, state_file.as_deref(), hook.timeout).await,
                HookAction::Signal { signal, pid_file } => send_signal(*signal, pid_file).await,
            };
            let label = match &result {
                Ok(()) => "ok",
                Err(HookError::Timeout) => "timeout",
                Err(_) => "failed",
            };
            metrics.hook_run(index, label);
            match result {
                Ok(()) => tracing::debug!(hook = index, stream = %stream, generation, "hook ran"),
                Err(e) => tracing::warn!(hook = index, stream = %stream, generation, error = %e, "hook failed"),
            }
        }
    }
}

/// Why a hook run failed.
#[derive(Debug, thiserror::Error)]
enum HookError {
    /// It outlived its timeout and its process group was killed.
    #[error("timed out; its process group was killed")]
    Timeout,
    /// The argv is empty (the config refuses one; kept total here).
    #[error("empty argv")]
    EmptyArgv,
    /// The program could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program (the argv's first word).
        program: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Waiting for the program failed.
    #[error("waiting for {program}: {source}")]
    Wait {
        /// The program (the argv's first word).
        program: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The program exited non-zero.
    #[error("{program} exited with {status}: {stderr}")]
    Exit {
        /// The program (the argv's first word).
        program: String,
        /// How it exited.
        status: std::process::ExitStatus,
        /// An excerpt of its stderr.
        stderr: String,
    },
    /// The pid file could not be read (`what` is `read` or `stat`).
    #[error("cannot {what} {}: {source}", .path.display())]
    PidFile {
        /// What failed.
        what: &'static str,
        /// The pid file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The pid file does not hold the pid of another process.
    #[error("{} does not hold another process's pid", .0.display())]
    NotAPid(PathBuf),
    /// The pid belongs to a process started after the pid file was written.
    #[error(
        "pid {pid} in {} belongs to a process started after the file was written (a recycled pid); not signalled",
        .path.display()
    )]
    Recycled {
        /// The pid read.
        pid: i32,
        /// The pid file.
        path: PathBuf,
    },
    /// The signal could not be sent.
    #[error("kill -{signal} {pid}: {source}")]
    Kill {
        /// The signal.
        signal: HookSignal,
        /// The pid.
        pid: i32,
        /// The operating system's error.
        source: nix::Error,
    },
}

/// Runs `argv` (no shell) in a process group of its own with the change in its
/// environment, within `timeout`.
async fn exec(
    argv: &[String],
    stream: &StreamId,
    generation: u64,
    state_file: Option<&Path>,
    timeout: Duration,
) -> Result<(), HookError> {
    let (program, args) = argv
        .split_first()
        .ok_or(HookError::EmptyArgv)?;
    let mut command = tokio::process::Command::new(program);
    match state_file {
        Some(path) => command.env("LISTENKEYD_STATE_FILE", path),
        None => command.env_remove("LISTENKEYD_STATE_FILE"),
    };
    let mut child = command
        .args(args)
        .env("LISTENKEYD_STREAM", stream.as_str())
        .env("LISTENKEYD_ACCOUNT", stream.account())
        .env("LISTENKEYD_GENERATION", generation.to_string())
        .env_remove("LISTENKEYD__BINANCE__API_KEY")
        .env_remove("LISTENKEYD__BINANCE__SECRET_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| HookError::Spawn {
            program: program.clone(),
            source,
        })?;
    // The group's id is the child's pid (process_group(0)).
    let group = child.id().and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw);
    let stderr = child
        .stderr
        .take()
        .map(|err| tokio::spawn(read_bounded(err, STDERR_KEPT)));
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            if let Some(g) = group {
                let _ = killpg(g, Signal::SIGKILL);
            }
            let _ = child.kill().await;
            if let Some(r) = stderr {
                r.abort();
            }
            return Err(HookError::Timeout);
        }
    };
    let status = status.map_err(|source| HookError::Wait {
        program: program.clone(),
        source,
    })?;
    if status.success() {
        // Work it left in the background may keep the pipe open: not our concern.
        if let Some(r) = stderr {
            r.abort();
        }
        return Ok(());
    }
    let kept = match stderr {
        Some(mut r) => match tokio::time::timeout(STDERR_GRACE, &mut r).await {
            Ok(Ok(kept)) => kept.0,
            _ => {
                r.abort();
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let text = String::from_utf8_lossy(&kept);
    let excerpt: String = text.trim().chars().take(STDERR_EXCERPT).collect();
    Err(HookError::Exit {
        program: program.clone(),
        status,
        stderr: excerpt,
    })
}

/// Reads `r` to its end, keeping at most `limit` bytes; returns them and the
/// total number of bytes read.
async fn read_bounded<R: AsyncRead + Unpin>(mut r: R, limit: usize) -> (Vec<u8>, u64) {
    let mut kept = Vec::new();
    let mut total = 0u64;
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, total),
            Ok(n) => {
                total += n as u64;
                let room = limit.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&buf[..room]);
            }
        }
    }
}

/// Sends `signal` to the process named by `pid_file`, read afresh each time.
async fn send_signal(signal: HookSignal, pid_file: &Path) -> Result<(), HookError> {
    let unreadable = |what| {
        move |source| HookError::PidFile {
            what,
            path: pid_file.to_path_buf(),
            source,
        }
    };
    let text = tokio::fs::read_to_string(pid_file).await.map_err(unreadable("read"))?;
    let written = tokio::fs::metadata(pid_file)
        .await
        .and_then(|m| m.modified())
        .map_err(unreadable("stat"))?;
    let pid: i32 = text
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 1 && u32::try_from(*p).is_ok_and(|p| p != std::process::id()))
        .ok_or_else(|| HookError::NotAPid(pid_file.to_path_buf()))?;
    let sig = nix_signal(signal);
    if let Some(started) = process_start(pid) {
        // Start times are known to the second (the boot time's precision).
        if started > written + Duration::from_secs(1) {
            return Err(HookError::Recycled {
                pid,
                path: pid_file.to_path_buf(),
            });
        }
    }
    kill(Pid::from_raw(pid), sig).map_err(|source| HookError::Kill { signal, pid, source })
}

/// The operating system's signal for a hook's.
fn nix_signal(s: HookSignal) -> Signal {
    match s {
        HookSignal::Hup => Signal::SIGHUP,
        HookSignal::Int => Signal::SIGINT,
        HookSignal::Quit => Signal::SIGQUIT,
        HookSignal::Term => Signal::SIGTERM,
        HookSignal::Usr1 => Signal::SIGUSR1,
        HookSignal::Usr2 => Signal::SIGUSR2,
        HookSignal::Cont => Signal::SIGCONT,
        HookSignal::Winch => Signal::SIGWINCH,
    }
}

/// When process `pid` started, from `/proc`; `None` when it cannot be told
/// (no such process, no procfs, a hidden pid).
fn process_start(pid: i32) -> Option<SystemTime> {
    procfs::Stat::read(Some(pid))?.start_time(procfs::boot_time()?, procfs::clock_ticks()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> StreamId {
        StreamId::from_string(s.to_owned())
    }

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    /// Whether `pid` is gone (or a zombie nobody reaped yet).
    fn gone(pid: i32) -> bool {
        procfs::Stat::read(Some(pid)).is_none_or(|s| s.state() == Some("Z"))
    }

    async fn wait_for_file(path: &Path) -> String {
        for _ in 0..500 {
            if let Ok(t) = std::fs::read_to_string(path) {
                if t.ends_with('\n') {
                    return t;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} never written", path.display());
    }

    /// A hook's queue watched by a dispatcher on `hub`, without a worker.
    fn dispatched(hub: &Hub, on_disk: Option<watch::Receiver<OnDisk>>, cancel: &CancellationToken) -> Arc<Pending> {
        let pending = Arc::new(Pending::default());
        let hook = Hook {
            action: HookAction::Exec(vec!["true".into()]),
            timeout: Duration::from_secs(1),
            streams: None,
        };
        let hooks = Hooks {
            workers: vec![(0, hook, pending.clone())],
            metrics: Metrics::new(),
        };
        let seen = HashMap::new();
        tokio::spawn(dispatch(hooks, hub.clone(), hub.events(), seen, on_disk, cancel.clone()));
        pending
    }

    /// `state` holding a value of `generation`.
    fn holding(state: &StreamState, generation: u64) -> StreamState {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        StreamState {
            held: Some(crate::state::Held {
                value: format!("key{generation}"),
                generation,
                obtained_at: now,
                refreshed_at: now,
                expires_at: now + Duration::from_secs(3600),
                api_key_fp: None,
            }),
            status: crate::state::Status::Fresh,
            ..state.clone()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_generation_reaches_hooks_at_once_without_a_state_file_and_once_on_disk_with_one() {
        let spec = Arc::new(crate::stream::StreamSpec::account_wide(crate::stream::Kind::UsdmFutures));
        let (hub, publishers) = Hub::new(vec![StreamState::starting(spec)]);
        let start = hub.snapshot().remove(0);
        let (disk_tx, disk_rx) = watch::channel(OnDisk::default());
        let cancel = CancellationToken::new();
        let without = dispatched(&hub, None, &cancel);
        let with = dispatched(&hub, Some(disk_rx), &cancel);
        let settle = || tokio::time::sleep(Duration::from_millis(10));

        let first = holding(&start, 1);
        publishers[0].publish(first.clone());
        settle().await;
        let usdm = || id("usdm-futures");
        assert_eq!(without.take(), BTreeMap::from([(usdm(), 1)]));
        assert!(with.take().is_empty(), "ran before the state file held generation 1");
        // A keepalive (same generation) is no change for hooks.
        publishers[0].publish(StreamState {
            next_at: Some(SystemTime::UNIX_EPOCH),
            ..first.clone()
        });
        settle().await;
        assert!(without.take().is_empty());

        disk_tx.send_modify(|d| {
            d.record(&crate::state::Document::build([&first], SystemTime::UNIX_EPOCH));
        });
        settle().await;
        assert_eq!(with.take(), BTreeMap::from([(usdm(), 1)]));
        cancel.cancel();
    }

    #[test]
    fn waiting_changes_merge_per_stream_and_keep_the_newest() {
        let p = Pending::default();
        assert!(!p.push(&id("a"), 1));
        for g in 2..=1000 {
            assert!(p.push(&id("a"), g));
        }
        assert!(!p.push(&id("b"), 7));
        assert!(p.push(&id("b"), 3), "an older generation never wins");
        let taken: Vec<_> = p.take().into_iter().collect();
        assert_eq!(taken, vec![(id("a"), 1000), (id("b"), 7)]);
        assert!(p.take().is_empty());
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild");
        let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let r = exec(&sh(&script), &id("s"), 1, Some(dir.path()), Duration::from_millis(300)).await;
        assert!(matches!(r, Err(HookError::Timeout)), "{r:?}");
        let pid: i32 = wait_for_file(&pid_file).await.trim().parse().unwrap();
        let mut dead = false;
        for _ in 0..200 {
            if gone(pid) {
                dead = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(dead, "the grandchild {pid} survived the timeout");
    }

    #[tokio::test]
    async fn a_hook_that_leaves_work_in_the_background_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("background");
        // The background sleep inherits stderr: waiting for its end would time out.
        let script = format!("sleep 30 & echo $! > {}", pid_file.display());
        let r = exec(&sh(&script), &id("s"), 1, Some(dir.path()), Duration::from_secs(5)).await;
        assert!(r.is_ok(), "{r:?}");
        let pid: i32 = wait_for_file(&pid_file).await.trim().parse().unwrap();
        assert!(!gone(pid), "background work is left alone");
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }

    #[tokio::test]
    async fn stderr_is_kept_bounded_and_a_failure_names_the_exit() {
        let (kept, total) = read_bounded(&[b'x'; 100_000][..], STDERR_KEPT).await;
        assert_eq!((kept.len(), total), (STDERR_KEPT, 100_000));
        let dir = tempfile::tempdir().unwrap();
        let script = "head -c 3000000 /dev/zero | tr '\\0' e >&2; exit 3";
        let r = exec(&sh(script), &id("s"), 1, Some(dir.path()), Duration::from_secs(10)).await;
        let Err(e @ HookError::Exit { .. }) = r else {
            panic!("{r:?}")
        };
        let msg = e.to_string();
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert!(msg.len() < STDERR_EXCERPT + 100, "{} bytes", msg.len());
    }

    #[tokio::test]
    async fn a_recycled_pid_is_not_signalled() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("bot.pid");
        let mut stranger = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(&pid_file, format!("{}\n", stranger.id())).unwrap();
        // The file was written an hour before this process started: its pid was recycled.
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&pid_file)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
        let r = send_signal(HookSignal::Term, &pid_file).await;
        assert!(
            matches!(&r, Err(HookError::Recycled { pid, .. }) if u32::try_from(*pid) == Ok(stranger.id())),
            "{r:?}"
        );
        assert!(stranger.try_wait().unwrap().is_none(), "the stranger was not signalled");
        // The same pid, written after it started, is signalled.
        std::fs::write(&pid_file, format!("{}\n", stranger.id())).unwrap();
        send_signal(HookSignal::Term, &pid_file).await.unwrap();
        let status = stranger.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(15));
    }
}
