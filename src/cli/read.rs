//! The commands that read the state file: `get`, `status` and `health`.
//!
//! They never talk to the exchange and need no API key: consumers run them.
//! The file is found with `--state-file`, else through the config's
//! `[state] file` (read leniently, so a consumer without access to the API
//! key can still use them).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use super::{EX_CONFIG, daemon};
use crate::clock::until;
use crate::config::{ApiListen, Config};
use crate::publishers::state_file::file;
use crate::secret::fingerprint;
use crate::state::{Document, Status};

/// Exit code when the stream is missing, expired, failed, or the file unreadable.
const NOT_AVAILABLE: u8 = 1;

/// Where to read: the state file, and the daemon's API when the config names one.
fn sources(config: Option<&Path>, state_file: Option<&Path>) -> Result<(PathBuf, Option<ApiListen>), ExitCode> {
    match state_file {
        Some(p) => Ok((p.to_owned(), None)),
        None => Config::for_readers(config).map_err(|e| {
            eprintln!("listenkeyd: {e}");
            ExitCode::from(EX_CONFIG)
        }),
    }
}

/// Reads and parses the state file.
fn read_doc(path: &Path) -> Result<Document, ExitCode> {
    file::read(path).map_err(|e| {
        eprintln!("listenkeyd: cannot read {}: {e}", path.display());
        ExitCode::from(NOT_AVAILABLE)
    })
}

/// What a reader command works from.
struct Read {
    /// The state file.
    path: PathBuf,
    /// The daemon's API, when the config names one.
    api: Option<ApiListen>,
    /// The state file's document.
    doc: Document,
}

/// Finds and reads the state file.
fn document(config: Option<&Path>, state_file: Option<&Path>) -> Result<Read, ExitCode> {
    let (path, api) = sources(config, state_file)?;
    let doc = read_doc(&path)?;
    Ok(Read { path, api, doc })
}

/// `get ID`: prints the value alone, or explains on stderr why it cannot.
pub(super) fn get(config: Option<&Path>, state_file: Option<&Path>, id: &str) -> ExitCode {
    let Read { path, doc, .. } = match document(config, state_file) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let Some(entry) = doc.streams.get(id) else {
        match doc.pending.get(id) {
            Some(p) => eprintln!(
                "listenkeyd: {id} has no value yet ({}: {})",
                p.status,
                p.last_error.as_deref().unwrap_or("starting")
            ),
            None => eprintln!("listenkeyd: no stream {id} in {}", path.display()),
        }
        return ExitCode::from(NOT_AVAILABLE);
    };
    if entry.expires().is_none_or(|e| e <= SystemTime::now()) {
        eprintln!("listenkeyd: {id} expired at {}", entry.expires_at);
        return ExitCode::from(NOT_AVAILABLE);
    }
    if entry.status == Status::Failed {
        eprintln!(
            "listenkeyd: {id} failed: {}",
            entry.last_error.as_deref().unwrap_or("unknown error")
        );
        return ExitCode::from(NOT_AVAILABLE);
    }
    // The value is the whole answer: if it cannot be written, say so in the exit code.
    use std::io::Write as _;
    match writeln!(std::io::stdout().lock(), "{}", entry.value) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(NOT_AVAILABLE),
    }
}

/// Formats a remaining duration as `12m03s`.
fn short(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// `status`: a table of every stream, and the daemon's own reasons when its API is configured.
pub(super) fn status(config: Option<&Path>, state_file: Option<&Path>) -> ExitCode {
    let Read { path, api, doc } = match document(config, state_file) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let now = SystemTime::now();
    let width = doc
        .streams
        .keys()
        .chain(doc.pending.keys())
        .map(|k| k.len())
        .max()
        .unwrap_or(6)
        .max(6);
    say!(
        "{:width$}  {:10}  {:>4}  {:8}  {:>10}  LAST ERROR",
        "STREAM",
        "STATUS",
        "GEN",
        "KEY",
        "EXPIRES IN"
    );
    for (id, e) in &doc.streams {
        let left = e.expires().filter(|t| *t > now).map(|t| short(until(now, t)));
        // A value past its expiry is expired, whatever the daemon last wrote
        // (it may have stopped, or be unable to write).
        let status = match (&left, e.status) {
            (None, Status::Failed) => Status::Failed.as_str(),
            (None, _) => "expired",
            (Some(_), s) => s.as_str(),
        };
        let expires = left.unwrap_or_else(|| "expired".into());
        say!(
            "{id:width$}  {:10}  {:>4}  {:8}  {:>10}  {}",
            status,
            e.generation,
            fingerprint(&e.value),
            expires,
            e.last_error.as_deref().unwrap_or("-")
        );
    }
    for (id, p) in &doc.pending {
        say!(
            "{id:width$}  {:10}  {:>4}  {:8}  {:>10}  {}",
            p.status.as_str(),
            "-",
            "-",
            "-",
            p.last_error.as_deref().unwrap_or("starting")
        );
    }
    // Per account, the facts of its venue the sources do not settle.
    let mut accounts: Vec<(&str, &str)> = doc
        .streams
        .values()
        .filter_map(|e| Some((e.account.as_deref()?, e.venue.as_deref()?)))
        .collect();
    accounts.sort_unstable();
    accounts.dedup();
    for (account, venue) in accounts {
        let Some(v) = crate::venue::Venue::by_name(venue) else {
            continue;
        };
        for u in v.unverified {
            say!(
                "unverified: account {account} ({venue}): {} (override: {})",
                u.fact,
                u.override_with
            );
        }
    }
    say!("\n{} (updated {})", path.display(), doc.updated_at);
    if let Some(listen) = api {
        let readiness = daemon::readiness(&listen);
        match &readiness {
            Some(r) if r.ready => say!("daemon: ready"),
            Some(r) => say!("daemon: not ready: {}", r.reasons.join("; ")),
            None => say!("daemon: not answering on its API"),
        }
        if let Some(r) = readiness {
            for (account, role) in &r.accounts {
                say!("replica: account {account}: {role}");
            }
            for w in &r.warnings {
                say!("warning: {w}");
            }
            if r.rate_limited > 0 {
                say!("rate limited: {} answers 429 or 418 received", r.rate_limited);
            }
            for b in &r.budgets {
                say!("budget: {}", b.line());
            }
        }
    }
    ExitCode::SUCCESS
}

/// `health`: exit 0 when every stream holds an unexpired value (and, when the
/// API is configured and answers, the daemon itself is ready: a state file it
/// cannot write shows up there).
pub(super) fn health(config: Option<&Path>, state_file: Option<&Path>) -> ExitCode {
    let Read { api, doc, .. } = match document(config, state_file) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let mut reasons = doc.problems(SystemTime::now());
    if let Some(r) = api.as_ref().and_then(daemon::readiness) {
        // The streams' reasons come from the file; only the daemon knows it cannot write it.
        let unwritten = r
            .state_file_error
            .as_deref()
            .map(crate::publishers::api::state_file_reason);
        reasons.extend(unwritten);
    }
    if reasons.is_empty() {
        say!("healthy: {} streams hold unexpired values", doc.streams.len());
        ExitCode::SUCCESS
    } else {
        say!("unhealthy: {}", reasons.join("; "));
        ExitCode::from(NOT_AVAILABLE)
    }
}
