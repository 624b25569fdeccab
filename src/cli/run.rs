//! `listenkeyd run` and `listenkeyd check-config`.
//!
//! `run` loads and validates the whole config before anything is sent, starts
//! the keeper, and stops on SIGTERM or SIGINT: the schedulers stop, the state
//! file is written a last time, and the process exits 0. Keys are not closed
//! unless `close_on_exit` asks for it.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::{EX_CONFIG, block_on};
use crate::config::Config;
use crate::{Keeper, logging};

/// How long shutdown may take before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Loads the config or prints its one-line error.
pub(super) fn load(path: Option<&Path>) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("listenkeyd: {e}");
        ExitCode::from(EX_CONFIG)
    })
}

/// `check-config`: validates and prints the resolved config.
pub(super) fn check_config(path: Option<&Path>) -> ExitCode {
    match load(path) {
        Ok(config) => {
            for w in &config.warnings {
                eprintln!("listenkeyd: warning: {w}");
            }
            print!("{}", config.describe());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// `run`: the daemon.
pub(super) fn run(path: Option<&Path>) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    logging::init(&config.log);
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    raise_fd_limit();
    block_on(async move {
        let cancel = CancellationToken::new();
        let stopping = shutdown_signal();
        let keeper = match Keeper::start(&config, cancel.clone()) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                return ExitCode::FAILURE;
            }
        };
        let notifier = tokio::spawn(crate::systemd::run(
            keeper.hub().clone(),
            keeper.writer_status(),
            std::sync::Arc::new(crate::clock::SystemClock),
            cancel.clone(),
        ));
        tracing::info!(
            streams = config.streams.len(),
            state_file = %config.state.file.display(),
            version = env!("CARGO_PKG_VERSION"),
            "listenkeyd started"
        );
        let signal = stopping.await;
        tracing::info!(signal, "stopping");
        cancel.cancel();
        let stopped = async {
            let _ = notifier.await;
            keeper.join().await;
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, stopped).await.is_err() {
            tracing::warn!("shutdown took longer than {SHUTDOWN_GRACE:?}; exiting anyway");
        }
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// Installs the SIGTERM and SIGINT handlers now, and returns a future that
/// resolves at the first of them, naming it.
pub(super) fn shutdown_signal() -> impl Future<Output = &'static str> + Send + 'static {
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
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
