//! Prometheus metrics, rendered in the text exposition format by the
//! `prometheus` crate.
//!
//! Counters are bumped where things happen (a scheduler's outcome, a state-file
//! write, a hook run). Per-stream gauges (seconds to expiry, generation,
//! status) are derived from the hub's snapshot at scrape time, so they cost
//! nothing between scrapes. Process metrics (CPU, RSS, open fds) come from the
//! crate's process collector. No label or value ever carries a credential.

use std::sync::Arc;
use std::time::SystemTime;

use prometheus::{Encoder, GaugeVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::state::{Status, StreamState};

/// Every status, for the one-hot status gauge.
const STATUSES: [Status; 4] = [Status::Fresh, Status::Refreshing, Status::Stale, Status::Failed];

/// The daemon's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    refreshes: IntCounterVec,
    writes: IntCounter,
    write_errors: IntCounter,
    hook_runs: IntCounterVec,
    expiry: GaugeVec,
    generation: IntGaugeVec,
    status: IntGaugeVec,
    redis_writes: IntCounterVec,
    redis_up: prometheus::IntGauge,
    ha_role: IntGaugeVec,
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Arc<Metrics> {
        let registry = Registry::new_custom(Some("listenkeyd".into()), None).expect("valid prefix");
        let refreshes = IntCounterVec::new(
            Opts::new(
                "refresh_total",
                "Refresh attempts by stream and outcome (ok or the error class)",
            ),
            &["stream", "outcome"],
        )
        .expect("valid metric");
        let writes = IntCounter::new("state_file_writes_total", "State-file documents written").expect("valid metric");
        let write_errors =
            IntCounter::new("state_file_write_errors_total", "Failed state-file writes").expect("valid metric");
        let hook_runs = IntCounterVec::new(
            Opts::new("hook_runs_total", "Hook runs by hook index and result"),
            &["hook", "result"],
        )
        .expect("valid metric");
        let expiry = GaugeVec::new(
            Opts::new(
                "stream_expiry_seconds",
                "Seconds until the stream's value expires (0 when expired or absent)",
            ),
            &["stream"],
        )
        .expect("valid metric");
        let generation = IntGaugeVec::new(Opts::new("stream_generation", "The stream's generation"), &["stream"])
            .expect("valid metric");
        let status = IntGaugeVec::new(
            Opts::new("stream_status", "1 for the stream's current status, 0 for the others"),
            &["stream", "status"],
        )
        .expect("valid metric");
        let redis_writes = IntCounterVec::new(
            Opts::new(
                "redis_writes_total",
                "Stream writes to Redis by outcome (ok, error, fenced: refused because another replica took the lease)",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let redis_up = prometheus::IntGauge::new("redis_up", "1 while the last Redis call succeeded, else 0")
            .expect("valid metric");
        let ha_role = IntGaugeVec::new(
            Opts::new(
                "ha_role",
                "1 for the account's current role (holder, standby, alone: Redis unreachable, kept without a lease), 0 for the others",
            ),
            &["account", "role"],
        )
        .expect("valid metric");
        for c in [
            Box::new(redis_writes.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(redis_up.clone()),
            Box::new(ha_role.clone()),
            Box::new(refreshes.clone()),
            Box::new(writes.clone()),
            Box::new(write_errors.clone()),
            Box::new(hook_runs.clone()),
            Box::new(expiry.clone()),
            Box::new(generation.clone()),
            Box::new(status.clone()),
        ] {
            registry.register(c).expect("metrics register once");
        }
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("process collector registers once");
        Arc::new(Metrics {
            registry,
            refreshes,
            writes,
            write_errors,
            hook_runs,
            expiry,
            generation,
            status,
            redis_writes,
            redis_up,
            ha_role,
        })
    }

    /// Counts one stream write to Redis (`ok`, `error` or `fenced`).
    pub fn redis_write(&self, outcome: &str) {
        self.redis_writes.with_label_values(&[outcome]).inc();
    }

    /// Records whether the last Redis call succeeded.
    pub fn redis_up(&self, up: bool) {
        self.redis_up.set(i64::from(up));
    }

    /// Sets an account's one-hot role gauge.
    pub fn ha_role(&self, account: &str, role: &str) {
        for r in ["holder", "standby", "alone"] {
            self.ha_role.with_label_values(&[account, r]).set(i64::from(r == role));
        }
    }

    /// Counts one refresh outcome (`ok` or an error class).
    pub fn refresh(&self, stream: &str, outcome: &str) {
        self.refreshes.with_label_values(&[stream, outcome]).inc();
    }

    /// Counts one state-file write attempt.
    pub fn state_write(&self, ok: bool) {
        if ok { self.writes.inc() } else { self.write_errors.inc() }
    }

    /// Counts one hook run (`ok`, `failed`, `timeout`, or `merged` when a change replaced one still waiting).
    pub fn hook_run(&self, hook: usize, result: &str) {
        self.hook_runs.with_label_values(&[&hook.to_string(), result]).inc();
    }

    /// The text exposition, with per-stream gauges taken from `streams` at `now`.
    pub fn render(&self, streams: &[StreamState], now: SystemTime) -> String {
        for s in streams {
            let id = s.spec.id.as_str();
            let left = s
                .held
                .as_ref()
                .and_then(|h| h.expires_at.duration_since(now).ok())
                .map_or(0.0, |d| d.as_secs_f64());
            self.expiry.with_label_values(&[id]).set(left);
            self.generation
                .with_label_values(&[id])
                .set(s.held.as_ref().map_or(0, |h| h.generation as i64));
            for st in STATUSES {
                self.status
                    .with_label_values(&[id, st.as_str()])
                    .set(i64::from(s.status == st));
            }
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding never fails");
        String::from_utf8(out).expect("the exposition is UTF-8")
    }
}
