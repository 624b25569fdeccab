//! Hooks: commands run, or signals sent, when a stream's value changes.
//!
//! The state-file writer calls [`Hooks::changed`] after a document with a new
//! generation is on disk, so a hook that reads the file sees the new value.
//! Each hook has its own worker task and a bounded queue: a slow or hanging
//! hook delays only its own later runs, never a scheduler or another hook.
//! A hook that outlives its `timeout` is killed; failures are logged and
//! counted, never fatal. Hook commands get `LISTENKEYD_STREAM`,
//! `LISTENKEYD_GENERATION` and `LISTENKEYD_STATE_FILE`, never a credential.

use std::path::PathBuf;
use std::process::Stdio;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{Hook, HookAction};
use crate::metrics::Metrics;
use crate::stream::StreamId;

/// Changes a hook may have queued before new ones are dropped (and counted).
const QUEUE: usize = 256;

/// One change to act on.
#[derive(Debug, Clone)]
struct Change {
    stream: StreamId,
    generation: u64,
}

/// The running hooks.
#[derive(Debug)]
pub struct Hooks {
    queues: Vec<(usize, Hook, mpsc::Sender<Change>)>,
    metrics: Arc<Metrics>,
}

impl Hooks {
    /// Starts a worker per hook; `None` when there are no hooks.
    pub fn start(
        hooks: &[Hook],
        state_file: PathBuf,
        metrics: Arc<Metrics>,
        cancel: CancellationToken,
    ) -> Option<Arc<Hooks>> {
        if hooks.is_empty() {
            return None;
        }
        let mut queues = Vec::new();
        for (index, hook) in hooks.iter().enumerate() {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(worker(
                index,
                hook.clone(),
                rx,
                state_file.clone(),
                metrics.clone(),
                cancel.clone(),
            ));
            queues.push((index, hook.clone(), tx));
        }
        Some(Arc::new(Hooks { queues, metrics }))
    }

    /// Queues a run of every hook whose filter admits `stream`; never waits.
    pub fn changed(&self, stream: &StreamId, generation: u64) {
        for (index, hook, tx) in &self.queues {
            if !hook.matches(stream) {
                continue;
            }
            let change = Change {
                stream: stream.clone(),
                generation,
            };
            if tx.try_send(change).is_err() {
                tracing::warn!(hook = index, stream = %stream, "hook queue full; change dropped");
                self.metrics.hook_run(*index, "dropped");
            }
        }
    }
}

/// Runs one hook's queue, one change at a time, until cancelled.
async fn worker(
    index: usize,
    hook: Hook,
    mut rx: mpsc::Receiver<Change>,
    state_file: PathBuf,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    loop {
        let change = tokio::select! {
            _ = cancel.cancelled() => return,
            c = rx.recv() => match c { Some(c) => c, None => return },
        };
        let result = match &hook.action {
            HookAction::Exec(argv) => exec(argv, &change, &state_file, hook.timeout).await,
            HookAction::Signal { signal, pid_file } => send_signal(signal, pid_file).await,
        };
        let label = match &result {
            Ok(()) => "ok",
            Err(HookError::Timeout) => "timeout",
            Err(HookError::Failed(_)) => "failed",
        };
        metrics.hook_run(index, label);
        match result {
            Ok(()) => {
                tracing::debug!(hook = index, stream = %change.stream, generation = change.generation, "hook ran")
            }
            Err(e) => {
                tracing::warn!(hook = index, stream = %change.stream, generation = change.generation, error = %e, "hook failed")
            }
        }
    }
}

/// Why a hook run failed.
#[derive(Debug, thiserror::Error)]
enum HookError {
    /// It outlived its timeout and was killed.
    #[error("timed out and was killed")]
    Timeout,
    /// It could not run, or exited non-zero.
    #[error("{0}")]
    Failed(String),
}

/// The longest stderr excerpt kept from a failed hook.
const STDERR_EXCERPT: usize = 512;

/// Runs `argv` (no shell) with the change in its environment, within `timeout`.
async fn exec(
    argv: &[String],
    change: &Change,
    state_file: &std::path::Path,
    timeout: Duration,
) -> Result<(), HookError> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| HookError::Failed("empty argv".into()))?;
    let child = tokio::process::Command::new(program)
        .args(args)
        .env("LISTENKEYD_STREAM", change.stream.as_str())
        .env("LISTENKEYD_GENERATION", change.generation.to_string())
        .env("LISTENKEYD_STATE_FILE", state_file)
        .env_remove("LISTENKEYD__BINANCE__API_KEY")
        .env_remove("LISTENKEYD__BINANCE__SECRET_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| HookError::Failed(format!("cannot run {program}: {e}")))?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        // Dropping the future drops the child, which kill_on_drop kills.
        Err(_) => Err(HookError::Timeout),
        Ok(Err(e)) => Err(HookError::Failed(e.to_string())),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let excerpt: String = stderr.trim().chars().take(STDERR_EXCERPT).collect();
            Err(HookError::Failed(format!(
                "{program} exited with {}: {excerpt}",
                out.status
            )))
        }
    }
}

/// Sends `signal` to the process named by `pid_file`, read afresh each time.
async fn send_signal(signal: &str, pid_file: &std::path::Path) -> Result<(), HookError> {
    let text = tokio::fs::read_to_string(pid_file)
        .await
        .map_err(|e| HookError::Failed(format!("cannot read {}: {e}", pid_file.display())))?;
    let pid: i32 = text
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 1)
        .ok_or_else(|| HookError::Failed(format!("{} does not hold a pid", pid_file.display())))?;
    let sig = Signal::from_str(signal).map_err(|_| HookError::Failed(format!("unknown signal {signal}")))?;
    kill(Pid::from_raw(pid), sig).map_err(|e| HookError::Failed(format!("kill -{signal} {pid}: {e}")))
}
