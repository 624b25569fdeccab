//! The reliability harness: a keeper started in process against the
//! simulator, with its state file in a temporary directory, and a monitor that
//! samples every few milliseconds what consumers see (the `watch` channels and
//! the state file) and what the exchange knows (the simulator's live keys),
//! recording every broken invariant instead of failing at the first one, so a
//! test can assert all of them at the end with a readable report.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use listenkeyd::config::Config;
use listenkeyd::state::{Status, StreamState};
use listenkeyd::stream::plausible_credential;
use listenkeyd::{AttemptHook, Keeper, Options};
use listenkeyd_sim::{Fault, RecordedRequest, SimConfig};
use tokio_util::sync::CancellationToken;

use crate::common::{API_KEY, Sim, start_sim};

/// The longest a published value may have left: the longest lifetime a config accepts.
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600 + 60);

/// How often the monitor samples.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// Short lifetimes: 6 s listen keys kept alive every 2 s, 8 s tokens renewed 3 s ahead.
pub const TIMING_6S: &str = "[timing]\nkeepalive_interval = \"2s\"\nlisten_key_validity = \"6s\"\ntoken_validity = \"8s\"\ntoken_renew_before = \"3s\"\njitter = 0.1\n";

/// What the monitor saw.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    /// Samples taken.
    pub samples: u64,
    /// State-file reads that parsed.
    pub file_reads: u64,
    /// Broken invariants, in the order seen (empty or invalid file, empty or implausible value or
    /// expiry, generation going back).
    pub violations: Vec<String>,
    /// Streams published as expired (`failed` with an `expired:` error), with when.
    pub expirations: Vec<(String, Instant)>,
    /// Samples where a listen key or token published as fresh or stale was not live on the exchange.
    pub dead: Vec<(String, Instant)>,
    /// The highest generation seen per stream.
    pub generations: BTreeMap<String, u64>,
}

impl Observed {
    /// Dead samples of one stream after `t`.
    pub fn dead_after(&self, id: &str, t: Instant) -> usize {
        self.dead.iter().filter(|(i, at)| i == id && *at > t).count()
    }
}

/// A keeper, its simulator and its monitor.
pub struct Run {
    /// The simulator.
    pub sim: Sim,
    /// The keeper (taken by [`Run::stop`]).
    pub keeper: Option<Keeper>,
    /// Stops the keeper.
    pub cancel: CancellationToken,
    /// Holds the state directory.
    pub dir: Arc<tempfile::TempDir>,
    /// The state file.
    pub state: PathBuf,
    /// The stream ids, in config order.
    pub ids: Vec<String>,
    /// What the monitor has seen so far.
    pub seen: Arc<Mutex<Observed>>,
    /// Values the test revoked on purpose: not counted as dead.
    pub revoked: Arc<Mutex<HashSet<String>>>,
    monitor: CancellationToken,
    /// When the keeper started.
    pub started: Instant,
}

/// The config for `streams` (TOML `[[streams]]` tables) against `url`, with `extra` appended.
pub fn config_text(url: &str, state: &std::path::Path, streams: &str, extra: &str) -> String {
    let timing = if extra.contains("[timing]") { "" } else { TIMING_6S };
    let binance_extra = extra
        .lines()
        .take_while(|l| !l.starts_with('['))
        .collect::<Vec<_>>()
        .join("\n");
    let rest: String = extra
        .lines()
        .skip_while(|l| !l.starts_with('['))
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        "[binance]\nbase_url = \"{url}\"\napi_key = \"{API_KEY}\"\nrequest_timeout = \"2s\"\n{binance_extra}\n\n[state]\nfile = \"{}\"\n\n{timing}\n{rest}\n\n{streams}\n",
        state.display()
    )
}

/// Starts a simulator with `sim_cfg` and a keeper for `streams`; `extra` is
/// TOML: lines before the first table go into `[binance]`, tables follow.
pub async fn start(sim_cfg: SimConfig, streams: &str, extra: &str) -> Run {
    start_with(sim_cfg, streams, extra, None).await
}

/// [`start`] with an attempt hook.
pub async fn start_with(sim_cfg: SimConfig, streams: &str, extra: &str, hook: Option<AttemptHook>) -> Run {
    let sim = start_sim(sim_cfg).await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let state = dir.path().join("state/keys.json");
    let text = config_text(&sim.handle.url(), &state, streams, extra);
    let config = Config::from_toml(&text, HashMap::new()).unwrap_or_else(|e| panic!("{e}\n{text}"));
    launch(sim, dir, state, &config, hook, &[])
}

/// Starts a keeper for `config` against an existing simulator and state
/// directory; `revoked` lists values already revoked on purpose.
pub fn launch(
    sim: Sim,
    dir: Arc<tempfile::TempDir>,
    state: PathBuf,
    config: &Config,
    hook: Option<AttemptHook>,
    revoked: &[String],
) -> Run {
    let cancel = CancellationToken::new();
    let options = Options {
        before_attempt: hook,
        ..Options::default()
    };
    let keeper = Keeper::start_with(config, options, cancel.clone()).unwrap();
    let ids: Vec<String> = config.streams.iter().map(|s| s.id.to_string()).collect();
    let seen = Arc::new(Mutex::new(Observed::default()));
    let revoked = Arc::new(Mutex::new(revoked.iter().cloned().collect::<HashSet<_>>()));
    let monitor = CancellationToken::new();
    let receivers: Vec<_> = ids.iter().map(|id| keeper.subscribe(id).unwrap()).collect();
    tokio::spawn(watch_loop(
        receivers,
        state.clone(),
        sim.handle.clone(),
        seen.clone(),
        revoked.clone(),
        monitor.clone(),
    ));
    Run {
        sim,
        keeper: Some(keeper),
        cancel,
        dir,
        state,
        ids,
        seen,
        revoked,
        monitor,
        started: Instant::now(),
    }
}

/// Samples every [`SAMPLE_EVERY`] until cancelled.
async fn watch_loop(
    receivers: Vec<tokio::sync::watch::Receiver<StreamState>>,
    state: PathBuf,
    sim: listenkeyd_sim::SimHandle,
    seen: Arc<Mutex<Observed>>,
    revoked: Arc<Mutex<HashSet<String>>>,
    stop: CancellationToken,
) {
    let mut expired_now: HashSet<String> = HashSet::new();
    while !stop.is_cancelled() {
        {
            let now = Instant::now();
            let states: Vec<StreamState> = receivers.iter().map(|r| r.borrow().clone()).collect();
            let file = std::fs::read(&state).ok();
            let mut o = seen.lock().unwrap();
            o.samples += 1;
            for s in &states {
                let id = s.spec.id.to_string();
                if let Some(h) = &s.held {
                    if h.value.is_empty() {
                        o.violations.push(format!("{id}: empty value published"));
                    } else if !plausible_credential(&h.value) {
                        o.violations
                            .push(format!("{id}: implausible value published ({} bytes)", h.value.len()));
                    }
                    if h.expires_at > std::time::SystemTime::now() + MAX_LIFETIME {
                        o.violations.push(format!("{id}: implausible expiry published"));
                    }
                    let top = o.generations.get(&id).copied().unwrap_or_default();
                    if h.generation < top {
                        o.violations
                            .push(format!("{id}: generation went back from {top} to {}", h.generation));
                    }
                    o.generations.insert(id.clone(), top.max(h.generation));
                    let live_status = matches!(s.status, Status::Fresh | Status::Stale);
                    if live_status && !sim.is_live(&h.value) && !revoked.lock().unwrap().contains(&h.value) {
                        o.dead.push((id.clone(), now));
                    }
                }
                let expired =
                    s.status == Status::Failed && s.last_error.as_deref().is_some_and(|e| e.starts_with("expired"));
                if expired && expired_now.insert(id.clone()) {
                    let why = s.last_error.clone().unwrap_or_default();
                    o.expirations.push((format!("{id} ({why})"), now));
                } else if !expired {
                    expired_now.remove(&id);
                }
            }
            if let Some(bytes) = file {
                match serde_json::from_slice::<listenkeyd::state::Document>(&bytes) {
                    Ok(doc) => {
                        o.file_reads += 1;
                        for (id, e) in &doc.streams {
                            if e.value.is_empty() {
                                o.violations.push(format!("{id}: empty value in the state file"));
                            } else if !plausible_credential(&e.value) {
                                o.violations.push(format!("{id}: implausible value in the state file"));
                            }
                            let latest = std::time::SystemTime::now() + MAX_LIFETIME;
                            if e.expires().is_none_or(|t| t > latest) {
                                o.violations.push(format!(
                                    "{id}: implausible expiry in the state file: {:?}",
                                    e.expires_at
                                ));
                            }
                        }
                    }
                    Err(e) => o
                        .violations
                        .push(format!("state file invalid ({} bytes): {e}", bytes.len())),
                }
            }
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

impl Run {
    /// The current state of stream `id`.
    pub fn stream(&self, id: &str) -> StreamState {
        self.keeper.as_ref().unwrap().subscribe(id).unwrap().borrow().clone()
    }

    /// The current value of stream `id`, if any.
    pub fn value(&self, id: &str) -> Option<String> {
        self.stream(id).held.map(|h| h.value)
    }

    /// The current generation of stream `id` (0 without a value).
    pub fn generation(&self, id: &str) -> u64 {
        self.stream(id).held.map_or(0, |h| h.generation)
    }

    /// Waits until every stream is fresh.
    pub async fn all_fresh(&self, limit: Duration) {
        let ids = self.ids.clone();
        crate::common::eventually(limit, "every stream fresh", || {
            ids.iter()
                .all(|id| self.stream(id).status == Status::Fresh)
                .then_some(())
        })
        .await;
    }

    /// Arms a fault given in text form.
    pub fn fault(&self, spec: &str) {
        self.sim.handle.add_fault(Fault::parse(spec).unwrap());
    }

    /// Revokes stream `id`'s current value on the exchange, on purpose.
    pub fn revoke(&self, id: &str) {
        if let Some(v) = self.value(id) {
            self.revoked.lock().unwrap().insert(v);
        }
        assert!(self.sim.handle.revoke_scope(id), "{id} had nothing to revoke");
    }

    /// The keeper's calls the simulator saw so far (the budget's
    /// `exchangeInfo` questions left out).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        crate::common::calls(&self.sim.handle)
    }

    /// The requests whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }

    /// A copy of what the monitor has seen.
    pub fn observed(&self) -> Observed {
        self.seen.lock().unwrap().clone()
    }

    /// Stops the keeper and the monitor; returns what the monitor saw.
    pub async fn stop(&mut self) -> Observed {
        // Let the monitor see the latest state before the keeper goes.
        let n = self.seen.lock().unwrap().samples;
        crate::common::eventually(Duration::from_secs(2), "two more samples", || {
            (self.seen.lock().unwrap().samples >= n + 2).then_some(())
        })
        .await;
        self.cancel.cancel();
        if let Some(k) = self.keeper.take() {
            k.join().await;
        }
        self.monitor.cancel();
        self.observed()
    }

    /// Stops and asserts the invariants every scenario shares: no invalid
    /// file, no empty value, no generation going back, no expiry, and no
    /// published value dead on the exchange (except values revoked on purpose).
    pub async fn stop_and_check(&mut self) -> Observed {
        let o = self.stop().await;
        check(&o);
        o
    }
}

/// Asserts the shared invariants on `o`.
pub fn check(o: &Observed) {
    assert!(o.violations.is_empty(), "invariants broken: {:#?}", o.violations);
    assert!(o.expirations.is_empty(), "values expired: {:?}", o.expirations);
    assert!(
        o.dead.is_empty(),
        "{} samples saw a published value that was not live on the exchange: first {:?}",
        o.dead.len(),
        o.dead.first()
    );
    assert!(o.samples > 0, "the monitor ran");
}

/// The `[[streams]]` table for one kind (a listen-key stream unless it has no other credential).
pub fn stream(kind: &str) -> String {
    format!("[[streams]]\nkind = \"{kind}\"\n")
}

/// Isolated-margin streams for `symbols` with `credential`.
pub fn isolated(symbols: &[&str], credential: &str) -> String {
    let list: Vec<String> = symbols.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "[[streams]]\nkind = \"isolated-margin\"\nsymbols = [{}]\ncredential = \"{credential}\"\n",
        list.join(", ")
    )
}

/// Milliseconds between two recorded requests.
pub fn gap_ms(a: &RecordedRequest, b: &RecordedRequest) -> i64 {
    b.at_ms - a.at_ms
}
