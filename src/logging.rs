//! Log setup: `tracing` at the configured level, to the systemd journal when
//! the daemon runs under systemd, else to stderr (pretty on a terminal, JSON
//! otherwise, which container runtimes collect).
//!
//! Under systemd, stderr is a stream into journald, which would store every
//! line at one priority; writing to the journal's native socket instead keeps
//! each event's level as its syslog priority (`journalctl -p warning` finds the
//! warnings) and its fields as journal fields. `format = "auto"` chooses the
//! journal exactly when `$JOURNAL_STREAM` names the file stderr is, as
//! systemd's documentation asks (stderr redirected elsewhere keeps stderr).
//!
//! What is logged is decided where it happens: stream lines carry `stream` and a
//! credential `fp` (fingerprint), never a full key, token, API key or secret.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Log, LogFormat};

/// Where the log lines go, once the format and the environment are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// Human-readable lines on stderr.
    Pretty,
    /// One JSON object per line on stderr.
    Json,
    /// The journal's native protocol, with priorities.
    Journal,
}

/// The filter for a configured level: a bare level (`debug`) applies to
/// listenkeyd alone, with dependencies kept at `warn` (their debug output is
/// noise, and request URLs can carry a listen key); a full directive such as
/// `listenkeyd=trace,hyper=debug` is taken as written.
pub fn filter_directive(level: &str) -> String {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let bare = level.trim().to_ascii_lowercase();
    if LEVELS.contains(&bare.as_str()) {
        format!("warn,listenkeyd={bare}")
    } else {
        level.to_owned()
    }
}

/// Whether `$JOURNAL_STREAM` (`DEVICE:INODE`, set by systemd when it connects
/// stdout/stderr to journald) names the file open as stderr.
pub fn stderr_is_journal() -> bool {
    let Some(var) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = var.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    match std::fs::File::from(fd).metadata() {
        Ok(meta) => meta.dev() == dev && meta.ino() == ino,
        Err(_) => false,
    }
}

/// The sink for a configured format: `auto` is the journal under systemd,
/// pretty on a terminal, JSON otherwise.
pub fn sink(format: LogFormat, journal_on_stderr: bool, terminal: bool) -> Sink {
    match format {
        LogFormat::Json => Sink::Json,
        LogFormat::Pretty => Sink::Pretty,
        LogFormat::Journal => Sink::Journal,
        LogFormat::Auto if journal_on_stderr => Sink::Journal,
        LogFormat::Auto if terminal => Sink::Pretty,
        LogFormat::Auto => Sink::Json,
    }
}

/// Level to syslog priority: error 3, warn 4, info 6, debug and trace 7.
fn priorities() -> PriorityMappings {
    PriorityMappings {
        error: Priority::Error,
        warn: Priority::Warning,
        info: Priority::Informational,
        debug: Priority::Debug,
        trace: Priority::Debug,
    }
}

/// Installs the global subscriber at the configured level (see
/// [`filter_directive`]). Calling it twice is harmless (the second is ignored).
/// When the journal cannot be reached, the lines go to stderr as JSON, after a
/// warning that says why.
pub fn init(log: &Log) {
    // `Targets` (target=level directives) rather than `EnvFilter`, whose span
    // and field filters compile regular expressions at start-up: the regex
    // engine's code was ~150 KiB of the daemon's resident pages.
    let filter = || {
        filter_directive(&log.level)
            .parse::<Targets>()
            .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO))
    };
    let mut sink = sink(log.format, stderr_is_journal(), std::io::stderr().is_terminal());
    let mut journal_error = None;
    if sink == Sink::Journal {
        match tracing_journald::layer() {
            Ok(layer) => {
                let layer = layer
                    .with_syslog_identifier("listenkeyd".to_owned())
                    .with_priority_mappings(priorities());
                let _ = tracing_subscriber::registry().with(filter()).with(layer).try_init();
                return;
            }
            Err(e) => {
                journal_error = Some(e);
                sink = Sink::Json;
            }
        }
    }
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter());
    let _ = if sink == Sink::Json {
        registry
            .with(fmt.json().flatten_event(true).with_current_span(false))
            .try_init()
    } else {
        registry.with(fmt.compact()).try_init()
    };
    if let Some(e) = journal_error {
        tracing::warn!(error = %e, "the journal is not reachable; logging JSON to stderr");
    }
}

#[cfg(test)]
mod tests {
    use super::{Sink, filter_directive, sink};
    use crate::config::LogFormat;

    #[test]
    fn bare_levels_apply_to_listenkeyd_only() {
        assert_eq!(filter_directive("trace"), "warn,listenkeyd=trace");
        assert_eq!(filter_directive("INFO"), "warn,listenkeyd=info");
        assert_eq!(
            filter_directive("listenkeyd=debug,hyper=trace"),
            "listenkeyd=debug,hyper=trace"
        );
    }

    #[test]
    fn auto_prefers_the_journal_then_the_terminal() {
        assert_eq!(sink(LogFormat::Auto, true, true), Sink::Journal);
        assert_eq!(sink(LogFormat::Auto, false, true), Sink::Pretty);
        assert_eq!(sink(LogFormat::Auto, false, false), Sink::Json);
        assert_eq!(sink(LogFormat::Json, true, false), Sink::Json);
        assert_eq!(sink(LogFormat::Pretty, true, false), Sink::Pretty);
        assert_eq!(sink(LogFormat::Journal, false, true), Sink::Journal);
    }
}
