//! Log setup: `tracing` to stderr, pretty on a terminal and JSON otherwise
//! (journald and container runtimes collect stderr), at the configured level.
//!
//! What is logged is decided where it happens: stream lines carry `stream` and a
//! credential `fp` (fingerprint), never a full key, token, API key or secret.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{Log, LogFormat};

/// Installs the global subscriber. `level` is a tracing filter such as `info`
/// or `listenkeyd=debug`. Calling it twice is harmless (the second is ignored).
pub fn init(log: &Log) {
    let filter = EnvFilter::try_new(&log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match log.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).with_current_span(false).try_init()
    } else {
        builder.compact().try_init()
    };
}
