//! Prometheus metrics, written in the text exposition format (0.0.4).
//!
//! Counters are bumped where things happen (a scheduler's outcome, a state-file
//! write, a hook run) and kept as plain numbers. Per-stream gauges (seconds to
//! expiry, generation, status) are read from the hub while the body is written,
//! so they cost nothing between scrapes and nothing stays behind after one: a
//! scrape's memory is its body. Process metrics (CPU, memory, threads, open
//! fds) are read from `/proc/self` at scrape time, under the names the
//! Prometheus client libraries use. No label or value ever carries a credential.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use crate::publish::Hub;
use crate::state::Status;

/// Every status, for the one-hot status gauge.
const STATUSES: [Status; 4] = [Status::Fresh, Status::Refreshing, Status::Stale, Status::Failed];

/// The prefix of the daemon's own metric names.
const PREFIX: &str = "listenkeyd_";

/// The daemon's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Refresh outcomes: stream id → (outcome, count), sorted by outcome.
    refreshes: Mutex<BTreeMap<String, Vec<(&'static str, u64)>>>,
    /// State-file documents written.
    writes: AtomicU64,
    /// Failed state-file writes.
    write_errors: AtomicU64,
    /// Hook runs by (hook index, result).
    hook_runs: Mutex<BTreeMap<(usize, &'static str), u64>>,
}

/// Takes a lock whose holder cannot have left it inconsistent (every update
/// is one insert or one addition), poisoned or not.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `name` with its `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {PREFIX}{name} {help}\n# TYPE {PREFIX}{name} {kind}");
}

/// A label value, escaped as the exposition format requires.
struct Label<'a>(&'a str);

impl std::fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

impl Metrics {
    /// Every counter at zero.
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// Counts one refresh outcome (`ok` or an error class).
    pub fn refresh(&self, stream: &str, outcome: &'static str) {
        let mut map = lock(&self.refreshes);
        let counts = match map.get_mut(stream) {
            Some(c) => c,
            None => map.entry(stream.to_owned()).or_default(),
        };
        // Kept sorted by outcome, the order the body lists them in.
        match counts.binary_search_by(|(o, _)| o.cmp(&outcome)) {
            Ok(i) => counts[i].1 += 1,
            Err(i) => counts.insert(i, (outcome, 1)),
        }
    }

    /// Counts one state-file write attempt.
    pub fn state_write(&self, ok: bool) {
        let counter = if ok { &self.writes } else { &self.write_errors };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one hook run (`ok`, `failed`, `timeout`, or `merged` when a change replaced one still waiting).
    pub fn hook_run(&self, hook: usize, result: &'static str) {
        *lock(&self.hook_runs).entry((hook, result)).or_default() += 1;
    }

    /// The text exposition, with per-stream gauges read from `hub` at `now`.
    pub fn render(&self, hub: &Hub, now: SystemTime) -> String {
        // About 600 bytes per stream: the body is written once, without regrowing.
        let mut out = String::with_capacity(4096 + 600 * hub.len());
        family(
            &mut out,
            "hook_runs_total",
            "counter",
            "Hook runs by hook index and result",
        );
        for ((hook, result), n) in lock(&self.hook_runs).iter() {
            let _ = writeln!(
                out,
                "{PREFIX}hook_runs_total{{hook=\"{hook}\",result=\"{result}\"}} {n}"
            );
        }
        family(
            &mut out,
            "refresh_total",
            "counter",
            "Refresh attempts by stream and outcome (ok or the error class)",
        );
        {
            let map = lock(&self.refreshes);
            for (stream, counts) in map.iter() {
                for (outcome, n) in counts {
                    let _ = writeln!(
                        out,
                        "{PREFIX}refresh_total{{outcome=\"{outcome}\",stream=\"{}\"}} {n}",
                        Label(stream)
                    );
                }
            }
        }
        family(
            &mut out,
            "state_file_write_errors_total",
            "counter",
            "Failed state-file writes",
        );
        let _ = writeln!(
            out,
            "{PREFIX}state_file_write_errors_total {}",
            self.write_errors.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "state_file_writes_total",
            "counter",
            "State-file documents written",
        );
        let _ = writeln!(
            out,
            "{PREFIX}state_file_writes_total {}",
            self.writes.load(Ordering::Relaxed)
        );
        self.streams(&mut out, hub, now);
        process(&mut out);
        out
    }

    /// The per-stream gauges, one family after the other, in stream-id order.
    fn streams(&self, out: &mut String, hub: &Hub, now: SystemTime) {
        family(
            out,
            "stream_expiry_seconds",
            "gauge",
            "Seconds until the stream's value expires (0 when expired or absent)",
        );
        for &i in hub.by_id() {
            hub.with(i, |s| {
                let left = s
                    .held
                    .as_ref()
                    .and_then(|h| h.expires_at.duration_since(now).ok())
                    .map_or(0.0, |d| d.as_secs_f64());
                let _ = writeln!(
                    out,
                    "{PREFIX}stream_expiry_seconds{{stream=\"{}\"}} {left}",
                    Label(s.spec.id.as_str())
                );
            });
        }
        family(out, "stream_generation", "gauge", "The stream's generation");
        for &i in hub.by_id() {
            hub.with(i, |s| {
                let g = s.held.as_ref().map_or(0, |h| h.generation);
                let _ = writeln!(
                    out,
                    "{PREFIX}stream_generation{{stream=\"{}\"}} {g}",
                    Label(s.spec.id.as_str())
                );
            });
        }
        family(
            out,
            "stream_status",
            "gauge",
            "1 for the stream's current status, 0 for the others",
        );
        for &i in hub.by_id() {
            hub.with(i, |s| {
                for st in STATUSES {
                    let _ = writeln!(
                        out,
                        "{PREFIX}stream_status{{status=\"{st}\",stream=\"{}\"}} {}",
                        Label(s.spec.id.as_str()),
                        u8::from(s.status == st)
                    );
                }
            });
        }
    }
}

/// The standard process metrics, from `/proc/self` (nothing where it is absent).
fn process(out: &mut String) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // Field n of stat(5) (1-based) is fields[n - 3].
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let tck = clock_ticks();
    let page = page_size();
    let mut gauge = |name: &str, kind: &str, help: &str, v: Option<f64>| {
        if let Some(v) = v {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }
    };
    gauge(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        field(14).zip(field(15)).map(|(u, s)| (u + s) as f64 / tck),
    );
    let max_fds = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft as f64);
    gauge(
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
        max_fds,
    );
    let open = std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as f64);
    gauge("process_open_fds", "gauge", "Number of open file descriptors.", open);
    gauge(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        field(24).map(|p| (p * page) as f64),
    );
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<u64>().ok())
    });
    gauge(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        boot.zip(field(22)).map(|(b, t)| b as f64 + t as f64 / tck),
    );
    gauge(
        "process_threads",
        "gauge",
        "Number of OS threads in the process.",
        field(20).map(|v| v as f64),
    );
    gauge(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        field(23).map(|v| v as f64),
    );
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`; 100 on every Linux port we know).
fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |v| v as f64)
}

/// The page size, for `rss` in `/proc/self/stat`.
fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |v| v as u64)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::state::{Held, StreamState};
    use crate::stream::{CredentialKind, Kind, StreamSpec};

    #[test]
    fn the_body_lists_counters_gauges_and_process_figures_in_the_exposition_format() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let spec =
            |k, sym: Option<&str>| Arc::new(StreamSpec::new(k, sym.map(str::to_owned), CredentialKind::ListenKey));
        let mut usdm = StreamState::starting(spec(Kind::UsdmFutures, None));
        usdm.held = Some(Held {
            value: "secret-listen-key".into(),
            generation: 3,
            obtained_at: now,
            refreshed_at: now,
            expires_at: now + Duration::from_millis(1500),
            api_key_fp: None,
        });
        usdm.status = Status::Fresh;
        let btc = StreamState::starting(spec(Kind::IsolatedMargin, Some("BTCUSDT")));
        let (hub, _p) = Hub::new(vec![usdm, btc]);
        let m = Metrics::new();
        m.refresh("usdm-futures", "transient");
        m.refresh("usdm-futures", "ok");
        m.refresh("usdm-futures", "ok");
        m.state_write(true);
        m.hook_run(0, "ok");
        let body = m.render(&hub, now);
        for line in [
            "# TYPE listenkeyd_refresh_total counter",
            "listenkeyd_refresh_total{outcome=\"ok\",stream=\"usdm-futures\"} 2\nlistenkeyd_refresh_total{outcome=\"transient\",stream=\"usdm-futures\"} 1\n",
            "listenkeyd_state_file_writes_total 1\n",
            "listenkeyd_state_file_write_errors_total 0\n",
            "listenkeyd_hook_runs_total{hook=\"0\",result=\"ok\"} 1\n",
            "listenkeyd_stream_expiry_seconds{stream=\"isolated-margin:BTCUSDT\"} 0\nlistenkeyd_stream_expiry_seconds{stream=\"usdm-futures\"} 1.5\n",
            "listenkeyd_stream_generation{stream=\"usdm-futures\"} 3\n",
            "listenkeyd_stream_status{status=\"refreshing\",stream=\"isolated-margin:BTCUSDT\"} 1\n",
            "listenkeyd_stream_status{status=\"fresh\",stream=\"usdm-futures\"} 1\n",
            "listenkeyd_stream_status{status=\"failed\",stream=\"usdm-futures\"} 0\n",
            "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes ",
            "\nprocess_open_fds ",
        ] {
            assert!(body.contains(line), "{line:?} missing from\n{body}");
        }
        assert!(!body.contains("secret-listen-key"));
        // Every sample line is `name{labels} value` or `name value` with a number.
        for l in body.lines().filter(|l| !l.starts_with('#')) {
            let value = l.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{l}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(Label("a\"b\\c\nd").to_string(), "a\\\"b\\\\c\\nd");
    }
}
