//! `listenkeyd run` and `listenkeyd check-config`.
//!
//! `run` loads and validates the whole config before anything is sent, starts
//! the keeper (with systemd notify on: every publisher starts inside it), and stops on SIGTERM or SIGINT: the schedulers stop, the state
//! file is written a last time, and the process exits 0. Keys are not closed
//! unless `close_on_exit` asks for it. SIGHUP (sent by terminals that close and
//! by habit to "reload") is logged and otherwise ignored: dying on it would
//! re-mint every token at the next start. A second `run` on the same state file
//! exits 1 naming the instance that holds it.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::{EX_CONFIG, block_on};
use crate::config::Config;
use crate::{Keeper, Options, logging};

/// How long shutdown may take before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Loads the config or prints its one-line error.
pub(super) fn load(path: Option<&Path>) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("listenkeyd: {e}");
        ExitCode::from(EX_CONFIG)
    })
}

/// `check-config`: validates, checks that the state file's directory can be
/// written, and prints the resolved config.
pub(super) fn check_config(path: Option<&Path>) -> ExitCode {
    match load(path) {
        Ok(config) => {
            if let Err(e) = writable_dir(&config.state.file) {
                eprintln!("listenkeyd: state.file: {e}");
                return ExitCode::from(EX_CONFIG);
            }
            for w in &config.warnings {
                eprintln!("listenkeyd: warning: {w}");
            }
            {
                use std::io::Write as _;
                let _ = write!(std::io::stdout().lock(), "{}", config.describe());
            }
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// Why the state file could not be created where the config puts it.
#[derive(Debug, thiserror::Error)]
enum Unwritable {
    /// The nearest existing ancestor is a file.
    #[error("{} is not a directory", .0.display())]
    NotADirectory(std::path::PathBuf),
    /// Creating a file there failed.
    #[error("cannot create files in {}: {error}", .dir.display())]
    Create {
        /// The directory.
        dir: std::path::PathBuf,
        /// The operating system's error.
        #[source]
        error: std::io::Error,
    },
}

/// Whether the state file can be created where the config puts it: a file is
/// created and removed in its directory, or, while that directory does not
/// exist yet (the daemon creates it), in the nearest ancestor that does.
fn writable_dir(state_file: &Path) -> Result<(), Unwritable> {
    let dir = state_file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let existing = dir
        .ancestors()
        .find(|a| std::fs::symlink_metadata(a).is_ok())
        .unwrap_or(Path::new("/"));
    if !existing.is_dir() {
        return Err(Unwritable::NotADirectory(existing.to_path_buf()));
    }
    let probe = existing.join(format!(".listenkeyd-check-{}", std::process::id()));
    // Private like the state file itself: nothing in its directory is ever readable by others.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(Unwritable::Create {
            dir: existing.to_path_buf(),
            error: e,
        }),
    }
}

/// `run`: the daemon.
pub(super) fn run(path: Option<&Path>) -> ExitCode {
    block_on(async move {
        // First of all: from here on SIGTERM is a clean stop, even one sent
        // while the config is still being read (`systemctl stop` right after
        // `start`); before, its default action would kill the process.
        let stopping = shutdown_signal();
        let config = match load(path) {
            Ok(c) => c,
            Err(code) => return code,
        };
        logging::init(&config.log);
        for w in &config.warnings {
            tracing::warn!("{w}");
        }
        raise_fd_limit();
        let cancel = CancellationToken::new();
        let options = Options {
            systemd: true,
            ..Options::default()
        };
        let keeper = match Keeper::start_with(&config, options, cancel.clone()) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(
            streams = config.streams.len(),
            state_file = %config.state.file.display(),
            version = env!("CARGO_PKG_VERSION"),
            "listenkeyd started"
        );
        // The keeper and its publishers hold what they need; the parsed
        // config's copy of every stream would only take room from here on.
        drop(config);
        let signal = stopping.await;
        tracing::info!(signal, "stopping");
        cancel.cancel();
        if tokio::time::timeout(SHUTDOWN_GRACE, keeper.join()).await.is_err() {
            tracing::warn!("shutdown took longer than {SHUTDOWN_GRACE:?}; exiting anyway");
        }
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// Installs the SIGTERM, SIGINT and SIGHUP handlers now, and returns a future
/// that resolves at the first SIGTERM or SIGINT, naming it; each SIGHUP is
/// logged and survived.
pub(super) fn shutdown_signal() -> impl Future<Output = &'static str> + Send + 'static {
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler installs");
    async move {
        loop {
            tokio::select! {
                _ = term.recv() => return "SIGTERM",
                _ = int.recv() => return "SIGINT",
                _ = hup.recv() => tracing::warn!(
                    "SIGHUP received and ignored: the configuration is not reloaded; restart listenkeyd to apply changes"
                ),
            }
        }
    }
}

/// Raises the soft open-file limit to the hard one: each API client is a
/// socket, and systemd's default soft limit (1024) is below what a thousand
/// idle event subscribers need.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(error = %e, soft, hard, "cannot raise the open-file limit");
            }
        }
        _ => {}
    }
}
