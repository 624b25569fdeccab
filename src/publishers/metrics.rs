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
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use crate::exchange::budget::Budgets;
use crate::hub::Hub;
use crate::publishers::procfs;
use crate::state::{Status, StreamState};

/// Every status, for the one-hot status gauge.
const STATUSES: [Status; 4] = [Status::Fresh, Status::Refreshing, Status::Stale, Status::Failed];

/// The prefix of the daemon's own metric names.
const PREFIX: &str = "listenkeyd_";

/// The daemon's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Refresh outcomes: stream id → (outcome, count), sorted by outcome.
    refreshes: Mutex<BTreeMap<String, Vec<(&'static str, u64)>>>,
    /// State-file documents written.
    writes: AtomicU64,
    /// Failed state-file writes.
    write_errors: AtomicU64,
    /// Hook runs by (hook index, result).
    hook_runs: Mutex<BTreeMap<(usize, &'static str), u64>>,
    /// Stream writes to Redis by outcome (`ok`, `error`, `fenced`).
    redis_writes: Mutex<BTreeMap<&'static str, u64>>,
    /// Whether the last Redis call succeeded: 1, 0, or [`UNSET`] before any (or without Redis).
    redis_up: AtomicU64,
    /// Each account's replica role (`holder`, `standby`, `alone`), in lease mode.
    ha_roles: Mutex<BTreeMap<String, &'static str>>,
    /// The request-weight budgets, once the keeper has its clients.
    budgets: std::sync::OnceLock<Arc<Budgets>>,
}

/// `redis_up` before any Redis call: the family is not written.
const UNSET: u64 = u64::MAX;

/// Every replica role, for the one-hot role gauge.
const ROLES: [&str; 3] = ["alone", "holder", "standby"];

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
        Arc::new(Metrics {
            refreshes: Mutex::default(),
            writes: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            hook_runs: Mutex::default(),
            redis_writes: Mutex::default(),
            redis_up: AtomicU64::new(UNSET),
            ha_roles: Mutex::default(),
            budgets: std::sync::OnceLock::new(),
        })
    }

    /// Shows `budgets` (429s and 418s received, each family's limit, spend,
    /// IP usage and queue) from now on; the first call wins.
    pub fn budgets(&self, budgets: Arc<Budgets>) {
        let _ = self.budgets.set(budgets);
    }

    /// Counts one stream write to Redis (`ok`, `error` or `fenced`).
    pub fn redis_write(&self, outcome: &'static str) {
        *lock(&self.redis_writes).entry(outcome).or_default() += 1;
    }

    /// Records whether the last Redis call succeeded.
    pub fn redis_up(&self, up: bool) {
        self.redis_up.store(u64::from(up), Ordering::Relaxed);
    }

    /// Records an account's replica role (`holder`, `standby` or `alone`).
    pub fn ha_role(&self, account: &str, role: &'static str) {
        lock(&self.ha_roles).insert(account.to_owned(), role);
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

    /// The budgets' 429/418 count and every family's budget, once known.
    pub fn budget_view(&self) -> Option<(u64, Vec<crate::exchange::budget::FamilyView>)> {
        self.budgets.get().map(|b| (b.rate_limited_total(), b.view()))
    }

    /// The whole text exposition at once (see [`Metrics::body`]).
    #[cfg(any(test, feature = "test-seams"))]
    pub fn render(self: &Arc<Self>, hub: &Hub, now: SystemTime) -> String {
        self.body(hub.clone(), now).collect()
    }

    /// The text exposition as chunks of about [`CHUNK`] bytes, written as
    /// they are taken: a scrape holds one chunk at a time, however many
    /// streams there are. Per-stream gauges are read from `hub` at `now`.
    pub fn body(self: &Arc<Self>, hub: Hub, now: SystemTime) -> Body {
        Body {
            metrics: self.clone(),
            hub,
            now,
            part: Part::Counters,
        }
    }
}

/// About how many bytes each chunk of a [`Body`] holds.
pub const CHUNK: usize = 32 * 1024;

/// Where a [`Body`] goes on from.
#[derive(Debug)]
enum Part {
    /// The hook and state-file counters, and the refresh counters' head.
    Counters,
    /// The refresh counters after this stream id (`None`: from the first).
    Refreshes(Option<String>),
    /// Per-stream family `family` from position `at` of the hub's id order.
    Streams { family: usize, at: usize },
    /// The process figures.
    Process,
    /// Nothing more.
    Done,
}

/// The per-stream gauge families, in the order they are written.
const STREAM_FAMILIES: [(&str, &str); 4] = [
    (
        "stream_expiry_seconds",
        "Seconds until the stream's value expires (0 when expired or absent)",
    ),
    ("stream_generation", "The stream's generation"),
    ("stream_status", "1 for the stream's current status, 0 for the others"),
    (
        "stream_info",
        "1 for each stream, labelled with its account, venue and kind",
    ),
];

/// The text exposition of a [`Metrics`], chunk by chunk (an iterator).
#[derive(Debug)]
pub struct Body {
    metrics: Arc<Metrics>,
    hub: Hub,
    now: SystemTime,
    part: Part,
}

impl Iterator for Body {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let mut out = String::with_capacity(CHUNK + 1024);
        let m = &self.metrics;
        self.part = match std::mem::replace(&mut self.part, Part::Done) {
            Part::Counters => {
                family(
                    &mut out,
                    "hook_runs_total",
                    "counter",
                    "Hook runs by hook index and result",
                );
                for ((hook, result), n) in lock(&m.hook_runs).iter() {
                    let _ = writeln!(
                        out,
                        "{PREFIX}hook_runs_total{{hook=\"{hook}\",result=\"{result}\"}} {n}"
                    );
                }
                for (name, help, n) in [
                    (
                        "state_file_write_errors_total",
                        "Failed state-file writes",
                        &m.write_errors,
                    ),
                    ("state_file_writes_total", "State-file documents written", &m.writes),
                ] {
                    family(&mut out, name, "counter", help);
                    let _ = writeln!(out, "{PREFIX}{name} {}", n.load(Ordering::Relaxed));
                }
                redis(&mut out, m);
                if let Some(b) = m.budgets.get() {
                    budget_lines(&mut out, b);
                }
                family(
                    &mut out,
                    "refresh_total",
                    "counter",
                    "Refresh attempts by stream and outcome (ok or the error class)",
                );
                Part::Refreshes(None)
            }
            Part::Refreshes(after) => {
                let map = lock(&m.refreshes);
                let from = match &after {
                    Some(id) => Bound::Excluded(id.as_str()),
                    None => Bound::Unbounded,
                };
                let mut last = None;
                for (stream, counts) in map.range::<str, _>((from, Bound::Unbounded)) {
                    for (outcome, n) in counts {
                        let _ = writeln!(
                            out,
                            "{PREFIX}refresh_total{{outcome=\"{outcome}\",stream=\"{}\"}} {n}",
                            Label(stream)
                        );
                    }
                    last = Some(stream);
                    if out.len() >= CHUNK {
                        break;
                    }
                }
                match last {
                    Some(id) if out.len() >= CHUNK => Part::Refreshes(Some(id.clone())),
                    _ => Part::Streams { family: 0, at: 0 },
                }
            }
            Part::Streams { family: f, at } => {
                let Some((name, help)) = STREAM_FAMILIES.get(f) else {
                    return self.next_part(Part::Process, out);
                };
                if at == 0 {
                    family(&mut out, name, "gauge", help);
                }
                let ids = self.hub.by_id();
                let mut i = at;
                while i < ids.len() && out.len() < CHUNK {
                    self.hub.with(ids[i], |s| stream_line(&mut out, f, s, self.now));
                    i += 1;
                }
                if i < ids.len() {
                    Part::Streams { family: f, at: i }
                } else {
                    Part::Streams { family: f + 1, at: 0 }
                }
            }
            Part::Process => {
                process(&mut out);
                Part::Done
            }
            Part::Done => return None,
        };
        Some(out)
    }
}

impl Body {
    /// Goes on at `part`, keeping what `out` holds so far.
    fn next_part(&mut self, part: Part, out: String) -> Option<String> {
        self.part = part;
        let mut more = self.next().unwrap_or_default();
        more.insert_str(0, &out);
        Some(more)
    }
}

/// The request-weight families: 429/418 answers received, and each (host,
/// egress, family)'s limit, the keeper's spend and the IP's used weight in
/// the current window, and the requests waiting.
fn budget_lines(out: &mut String, b: &Budgets) {
    family(
        out,
        "rate_limited_total",
        "counter",
        "429 and 418 answers received (each one a failure of the keeper's budget)",
    );
    let _ = writeln!(out, "{PREFIX}rate_limited_total {}", b.rate_limited_total());
    let views = b.view();
    let labels = |v: &crate::exchange::budget::FamilyView| {
        let egress = v.egress.map(|e| e.to_string()).unwrap_or_default();
        format!(
            "egress=\"{}\",family=\"{}\",host=\"{}\"",
            Label(&egress),
            Label(&v.family),
            Label(&v.host)
        )
    };
    family(
        out,
        "weight_limit",
        "gauge",
        "Per-IP request-weight limit per window, by host, egress and family, labelled with its source and window",
    );
    for v in &views {
        if let Some((l, source)) = v.limit {
            let _ = writeln!(
                out,
                "{PREFIX}weight_limit{{{},source=\"{}\",window_seconds=\"{}\"}} {}",
                labels(v),
                source.as_str(),
                l.window.as_secs(),
                l.limit
            );
        }
    }
    for (name, help, value) in [
        (
            "weight_spent",
            "Request weight the keeper spent in the current window",
            (|v: &crate::exchange::budget::FamilyView| v.own) as fn(&crate::exchange::budget::FamilyView) -> u64,
        ),
        (
            "weight_ip_used",
            "The IP's used request weight in the current window (bots included), as last reported plus the keeper's sends since",
            |v| v.ip_used,
        ),
        ("weight_queue", "Requests waiting for the weight budget", |v| v.queued as u64),
    ] {
        family(out, name, "gauge", help);
        for v in &views {
            let _ = writeln!(out, "{PREFIX}{name}{{{}}} {}", labels(v), value(v));
        }
    }
}

/// The Redis and replica families, when Redis is in use.
fn redis(out: &mut String, m: &Metrics) {
    let roles = lock(&m.ha_roles);
    if !roles.is_empty() {
        family(
            out,
            "ha_role",
            "gauge",
            "1 for the account's current role (holder, standby, alone: Redis unreachable, kept without the lease), 0 for the others",
        );
        for (account, role) in roles.iter() {
            for r in ROLES {
                let _ = writeln!(
                    out,
                    "{PREFIX}ha_role{{account=\"{}\",role=\"{r}\"}} {}",
                    Label(account),
                    u8::from(*role == r)
                );
            }
        }
    }
    let up = m.redis_up.load(Ordering::Relaxed);
    if up == UNSET {
        return;
    }
    family(out, "redis_up", "gauge", "1 while the last Redis call succeeded, else 0");
    let _ = writeln!(out, "{PREFIX}redis_up {up}");
    family(
        out,
        "redis_writes_total",
        "counter",
        "Stream writes to Redis by outcome (ok, error, fenced: refused because another replica took the lease)",
    );
    for (outcome, n) in lock(&m.redis_writes).iter() {
        let _ = writeln!(out, "{PREFIX}redis_writes_total{{outcome=\"{outcome}\"}} {n}");
    }
}

/// Stream `s`'s line(s) of per-stream family `f` (see [`STREAM_FAMILIES`]).
fn stream_line(out: &mut String, f: usize, s: &StreamState, now: SystemTime) {
    let id = Label(s.spec.id.as_str());
    match f {
        0 => {
            let left = s
                .held
                .as_ref()
                .and_then(|h| h.expires_at.duration_since(now).ok())
                .map_or(0.0, |d| d.as_secs_f64());
            let _ = writeln!(out, "{PREFIX}stream_expiry_seconds{{stream=\"{id}\"}} {left}");
        }
        1 => {
            let g = s.held.as_ref().map_or(0, |h| h.generation);
            let _ = writeln!(out, "{PREFIX}stream_generation{{stream=\"{id}\"}} {g}");
        }
        2 => {
            for st in STATUSES {
                let _ = writeln!(
                    out,
                    "{PREFIX}stream_status{{status=\"{st}\",stream=\"{id}\"}} {}",
                    u8::from(s.status == st)
                );
            }
        }
        _ => {
            let (account, venue) = (Label(&s.spec.account), Label(s.spec.venue));
            let _ = writeln!(
                out,
                "{PREFIX}stream_info{{account=\"{account}\",kind=\"{}\",stream=\"{id}\",venue=\"{venue}\"}} 1",
                s.spec.kind
            );
        }
    }
}

/// The standard process metrics, from `/proc/self` (nothing where it is absent).
fn process(out: &mut String) {
    let Some(stat) = procfs::Stat::read(None) else {
        return;
    };
    let field = |n: usize| stat.field(n);
    // Clock ticks per second: 100 on every Linux port we know.
    let tck = procfs::clock_ticks().unwrap_or(100) as f64;
    let page = procfs::page_size().unwrap_or(4096);
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
    let open = procfs::open_fds().map(|n| n as f64);
    gauge("process_open_fds", "gauge", "Number of open file descriptors.", open);
    gauge(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        field(24).map(|p| (p * page) as f64),
    );
    gauge(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        procfs::boot_time().zip(field(22)).map(|(b, t)| b as f64 + t as f64 / tck),
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

impl crate::scheduler::RefreshCounter for Metrics {
    fn refresh(&self, stream: &str, outcome: &'static str) {
        Metrics::refresh(self, stream, outcome)
    }
}

impl crate::replicas::LeaseGauges for Metrics {
    fn ha_role(&self, account: &str, role: &'static str) {
        Metrics::ha_role(self, account, role)
    }

    fn redis_up(&self, up: bool) {
        Metrics::redis_up(self, up)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::state::Held;
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
    fn thousands_of_streams_come_in_bounded_chunks_with_every_line_once() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let n = 3000;
        let states: Vec<StreamState> = (0..n)
            .map(|i| {
                let sym = format!("S{i:05}USDT");
                StreamState::starting(Arc::new(StreamSpec::new(
                    Kind::IsolatedMargin,
                    Some(sym),
                    CredentialKind::ListenKey,
                )))
            })
            .collect();
        let (hub, _p) = Hub::new(states);
        let m = Metrics::new();
        for i in 0..n {
            m.refresh(&format!("isolated-margin:S{i:05}USDT"), "ok");
        }
        let chunks: Vec<String> = m.body(hub.clone(), now).collect();
        assert!(chunks.len() > 10, "{} chunks", chunks.len());
        for c in &chunks {
            assert!(c.len() < CHUNK + 1024, "a chunk of {} bytes", c.len());
            assert!(c.is_empty() || c.ends_with('\n'), "chunks end at a line's end");
        }
        let body = chunks.concat();
        for family in ["refresh_total", "stream_expiry_seconds", "stream_generation"] {
            let lines = body
                .lines()
                .filter(|l| l.starts_with(&format!("listenkeyd_{family}{{")))
                .count();
            assert_eq!(lines, n, "{family}");
        }
        let status = body
            .lines()
            .filter(|l| l.starts_with("listenkeyd_stream_status{"))
            .count();
        assert_eq!(status, 4 * n);
        assert_eq!(body.matches("# TYPE listenkeyd_stream_generation gauge").count(), 1);
        assert!(body.contains("listenkeyd_refresh_total{outcome=\"ok\",stream=\"isolated-margin:S02999USDT\"} 1\n"));
        // The same as all at once, up to the process figures (which move).
        let own = |b: &str| b.split("# HELP process_").next().unwrap_or_default().to_owned();
        assert_eq!(own(&body), own(&m.render(&hub, now)));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(Label("a\"b\\c\nd").to_string(), "a\\\"b\\\\c\\nd");
    }
}
