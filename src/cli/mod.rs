//! The command line: parses arguments with clap and dispatches to the
//! commands. Every command returns an exit code; configuration errors are
//! reported as one line on stderr with exit code [`EX_CONFIG`].

/// `println!` that survives a closed stdout: a reader piped into `head -1`
/// or `grep -q` closes the pipe early, and `println!` would panic on EPIPE.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod daemon;
#[cfg(feature = "sim")]
mod demo;
mod read;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// sysexits' EX_CONFIG: the configuration is invalid.
pub const EX_CONFIG: u8 = 78;
/// A command line that asks for something contradictory (clap's own code).
const EX_USAGE: u8 = 2;

/// Keeps Binance listen keys and listen tokens fresh and publishes them locally.
#[derive(Debug, Parser)]
#[command(name = "listenkeyd", version, about, long_about = None)]
pub struct Cli {
    /// The config file (default: $LISTENKEYD_CONFIG, else /etc/listenkeyd/listenkeyd.toml).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run,
    /// Load and validate the config, print the resolved streams with secrets masked.
    CheckConfig,
    /// Print a stream's current value alone on stdout; non-zero if missing, expired or failed.
    Get {
        /// The stream id, e.g. `isolated-margin:BTCUSDT` or `usdm-futures`.
        stream_id: String,
        /// Read this state file instead of the config's.
        #[arg(long, value_name = "PATH")]
        state_file: Option<PathBuf>,
    },
    /// Print a table of every stream: status, generation, expiry, last error.
    Status {
        /// Read this state file instead of the config's.
        #[arg(long, value_name = "PATH")]
        state_file: Option<PathBuf>,
    },
    /// Exit 0 when every stream holds an unexpired value (for health checks).
    Health {
        /// Read this state file instead of the config's.
        #[arg(long, value_name = "PATH")]
        state_file: Option<PathBuf>,
    },
    /// Run the simulator and the keeper together with lifetimes of seconds, printing every rotation.
    #[cfg(feature = "sim")]
    Demo {
        /// How long to run.
        #[arg(long, default_value = "32s", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
    },
    /// Serve a simulated Binance (every listen-key and listen-token endpoint, with fault injection).
    #[cfg(feature = "sim")]
    Sim(listenkeyd_sim::SimArgs),
}

/// Parses the arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = cli.config.as_deref();
    let command = cli.command.unwrap_or(Command::Run);
    if let Some(problem) = contradiction(config.is_some(), &command) {
        eprintln!("listenkeyd: {problem}");
        return ExitCode::from(EX_USAGE);
    }
    match command {
        Command::Run => run::run(config),
        Command::CheckConfig => run::check_config(config),
        Command::Get { stream_id, state_file } => read::get(config, state_file.as_deref(), &stream_id),
        Command::Status { state_file } => read::status(config, state_file.as_deref()),
        Command::Health { state_file } => read::health(config, state_file.as_deref()),
        #[cfg(feature = "sim")]
        Command::Sim(args) => sim(args),
        #[cfg(feature = "sim")]
        Command::Demo { duration } => block_on(demo::run(duration)),
    }
}

/// What is wrong with combining `--config` and `command`, if anything: the
/// simulator and the demo read no config, and a reader given both `--config`
/// and `--state-file` would have to ignore one of them.
fn contradiction(config: bool, command: &Command) -> Option<&'static str> {
    match command {
        #[cfg(feature = "sim")]
        Command::Sim(_) if config => Some("sim reads no config file; drop --config (see `listenkeyd sim --help`)"),
        #[cfg(feature = "sim")]
        Command::Demo { .. } if config => Some("demo makes its own config; drop --config"),
        Command::Get {
            state_file: Some(_), ..
        }
        | Command::Status { state_file: Some(_) }
        | Command::Health { state_file: Some(_) }
            if config =>
        {
            Some("--config and --state-file both name the state file; give one of them")
        }
        _ => None,
    }
}

/// How long the runtime may take to wind down its blocking threads (a hung
/// DNS lookup, a slow fsync) once a command has finished.
pub const RUNTIME_SHUTDOWN: std::time::Duration = std::time::Duration::from_millis(200);

/// Runs `f` on a fresh runtime and winds the runtime down within [`RUNTIME_SHUTDOWN`].
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let rt = runtime();
    let out = rt.block_on(f);
    rt.shutdown_timeout(RUNTIME_SHUTDOWN);
    out
}

/// Builds the tokio runtime the async commands run on.
fn runtime() -> tokio::runtime::Runtime {
    // One thread runs every task: a keeper waits almost all the time, and a
    // worker thread of its own would cost a stack and a malloc arena. File
    // writes go to the blocking pool, which keeps its threads only while busy.
    tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
}

/// `sim`: serves the simulator until SIGTERM or SIGINT.
#[cfg(feature = "sim")]
fn sim(args: listenkeyd_sim::SimArgs) -> ExitCode {
    crate::logging::init(&crate::config::Log {
        format: crate::config::LogFormat::Auto,
        level: "info".into(),
    });
    block_on(async move {
        let cancel = tokio_util::sync::CancellationToken::new();
        let (stop, stopping) = (cancel.clone(), run::shutdown_signal());
        tokio::spawn(async move {
            stopping.await;
            stop.cancel();
        });
        match listenkeyd_sim::run(args, cancel).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("listenkeyd sim: {e}");
                ExitCode::from(EX_CONFIG)
            }
        }
    })
}
