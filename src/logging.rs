//! Log setup: `tracing` to stderr, pretty on a terminal and JSON otherwise
//! (journald and container runtimes collect stderr), at the configured level.
//!
//! What is logged is decided where it happens: stream lines carry `stream` and a
//! credential `fp` (fingerprint), never a full key, token, API key or secret.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{Log, LogFormat};

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

/// Installs the global subscriber at the configured level (see
/// [`filter_directive`]). Calling it twice is harmless (the second is ignored).
pub fn init(log: &Log) {
    let filter = EnvFilter::try_new(filter_directive(&log.level)).unwrap_or_else(|_| EnvFilter::new("info"));
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

#[cfg(test)]
mod tests {
    use super::filter_directive;

    #[test]
    fn bare_levels_apply_to_listenkeyd_only() {
        assert_eq!(filter_directive("trace"), "warn,listenkeyd=trace");
        assert_eq!(filter_directive("INFO"), "warn,listenkeyd=info");
        assert_eq!(
            filter_directive("listenkeyd=debug,hyper=trace"),
            "listenkeyd=debug,hyper=trace"
        );
    }
}
