//! The soak: a simulator and a keeper in one process, hundreds of streams with
//! lifetimes of seconds, and random faults (5xx, 408, resets, drops, hung
//! requests, garbage and oversized answers, -1125, -1209, keys dropped
//! server-side, short bans, short outages, panics inside scheduler tasks) for
//! a configurable time. It checks the reliability invariants all along and
//! prints them as a table; it exits 1 if one was violated.
//!
//! ```sh
//! cargo run --release -p listenkeyd-tools --bin soak -- --streams 200 --duration 60s
//! ```
//!
//! The simulator enforces Binance's per-IP weight limits at the soak's time
//! scale (900 times real time, in windows of a second) with bots spending 60 %
//! of each: a 429 or 418 for weight is an invariant violated.
//!
//! An expiry counts against the keeper only when the exchange was reachable:
//! expiries within one key lifetime after a ban (429) or an outage are
//! reported apart, as excused.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use listenkeyd::Keeper;
use listenkeyd::config::{Config, Limits, Url, WeightLimit};
use listenkeyd::secret::Secret;
use listenkeyd::state::Status;
use listenkeyd::stream::{CredentialKind, Kind, StreamSpec};
use listenkeyd::{AttemptHook, Options};
use listenkeyd_sim::{self as sim, Fault, SimConfig, SimHandle};
use rand::Rng;
use tokio_util::sync::CancellationToken;

/// Listen-key and token lifetime in the soak.
const LIFETIME: Duration = Duration::from_secs(4);
/// How much faster than real time the soak runs: 60-minute lifetimes in 4 s.
const TIME_SCALE: u64 = 900;

/// Binance's per-IP weight limits per minute (the simulator's published
/// ones), which the soak enforces scaled by [`TIME_SCALE`] into windows of a
/// second, and whether the family publishes its own in `exchangeInfo` (the
/// others are given to the keeper in `[limits] weight_limits`, as an
/// operator would for a simulator).
const LIMITS_PER_MINUTE: [(&str, u64, bool); 6] = [
    ("api", 6_000, true),
    ("sapi", 12_000, false),
    ("fapi", 2_400, true),
    ("dapi", 2_400, true),
    ("papi", 6_000, false),
    ("eapi", 3_000, true),
];

/// The weight the bots beside the keeper spend: 60 % of each limit.
const BOTS_SHARE: f64 = 0.6;

/// A family's limit at the soak's time scale: weight per second.
fn scaled(per_minute: u64) -> u64 {
    per_minute * TIME_SCALE / 60
}

/// Memory growth beyond which the soak fails, MiB.
const MAX_GROWTH_MIB: f64 = 64.0;

/// `soak` flags.
#[derive(Parser, Debug)]
#[command(about = "Drive many streams through random faults and check the reliability invariants")]
struct Args {
    /// Number of streams.
    #[arg(long, default_value_t = 200)]
    streams: usize,
    /// How long to inject faults (humantime).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Probability that an attempt panics inside its scheduler task.
    #[arg(long, default_value_t = 0.0005)]
    panic_rate: f64,
}

/// What the monitor counts.
#[derive(Debug, Default)]
struct Tally {
    samples: u64,
    file_reads: u64,
    invalid_files: u64,
    empty: u64,
    generation_back: u64,
    dead_fresh: u64,
    expired_reachable: Vec<String>,
    expired_excused: u64,
    tasks_min: usize,
    tasks_max: usize,
}

/// Resident memory of this process, MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The config: symbols S0000USDT…, three quarters listen keys, a quarter tokens, plus two futures accounts.
fn config(url: &str, state: &std::path::Path, n: usize) -> Config {
    let symbols: Vec<String> = (0..n.saturating_sub(2)).map(|i| format!("S{i:04}USDT")).collect();
    let keys = symbols.len() * 3 / 4;
    let isolated = symbols.into_iter().enumerate().map(|(i, symbol)| {
        let spec = StreamSpec::isolated_margin(symbol);
        if i < keys {
            spec.with_credential(CredentialKind::ListenKey)
        } else {
            spec
        }
    });
    Config::builder()
        .base_url(Url::parse(url).expect("the simulator's URL parses"))
        .api_key(Secret::new("soak-api-key"))
        .request_timeout(Duration::from_secs(1))
        .state_file(state)
        .keepalive_interval(Duration::from_secs(1))
        .listen_key_validity(Duration::from_secs(4))
        .token_validity(Duration::from_secs(4))
        .token_renew_before(Duration::from_secs(2))
        .jitter(0.1)
        .stream(StreamSpec::account_wide(Kind::UsdmFutures))
        .stream(StreamSpec::account_wide(Kind::CoinmFutures))
        .streams(isolated)
        .limits(Limits {
            weight_limits: LIMITS_PER_MINUTE
                .iter()
                .filter(|(_, _, published)| !published)
                .filter_map(|(family, per_minute, _)| {
                    Some((
                        family.to_string(),
                        WeightLimit::new(scaled(*per_minute), Duration::from_secs(1))?,
                    ))
                })
                .collect(),
            ..Limits::default()
        })
        .build()
        .expect("the soak config is valid")
}

/// One random fault against a random family.
fn random_fault(rng: &mut impl Rng) -> Fault {
    let path = [
        "/sapi/v1/userDataStream/isolated",
        "/sapi/v1/userListenToken",
        "/fapi/",
        "/dapi/",
        "*",
    ][rng.random_range(0..5)];
    let count = rng.random_range(1..=3);
    let spec = match rng.random_range(0..11) {
        0 => format!("* {path} status=503 count={count}"),
        1 => format!(
            "* {path} status={} count={count}",
            [500, 502, 504, 408][rng.random_range(0..4)]
        ),
        2 => format!("* {path} reset count={count}"),
        3 => format!("* {path} drop count={count}"),
        4 => format!("* {path} delay=1500ms count=1"),
        5 => format!("* {path} status=200 count={count} body=<html>garbage</html>"),
        6 => format!("* {path} pad=70000 count={count}"),
        7 => format!("* {path} status=200 count={count} body={{\"listenKey\":12}}"),
        8 => format!(
            r#"PUT {path} status=400 count={count} body={{"code":-1125,"msg":"This listenKey does not exist."}}"#
        ),
        9 => format!(
            r#"POST /sapi/v1/userListenToken status=400 count={count} body={{"code":-1209,"msg":"Invalid listen token."}}"#
        ),
        _ => format!("* {path} status=200 count={count} body={{\"code\":-1001,\"msg\":\"Internal error\"}}"),
    };
    Fault::parse(&spec).expect("a valid fault")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = Args::parse();
    let n = args.streams.max(3);
    let dir = std::env::temp_dir().join(format!("listenkeyd-soak-{}", std::process::id()));
    let state = dir.join("keys.json");
    let code = run(&args, n, &state).await;
    let _ = std::fs::remove_dir_all(&dir);
    std::process::exit(code);
}

async fn run(args: &Args, n: usize, state: &std::path::Path) -> i32 {
    let sim_cancel = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let sim = sim::start(
        listener,
        SimConfig {
            listen_key_ttl: LIFETIME,
            // Lifetimes of seconds: the limits are enforced at the same time
            // scale, with bots spending most of them.
            weights: sim::weight::Rules {
                limits: LIMITS_PER_MINUTE
                    .iter()
                    .map(|(family, per_minute, _)| {
                        let limit = sim::weight::Limit {
                            limit: scaled(*per_minute),
                            window: Duration::from_secs(1),
                        };
                        (family.to_string(), limit)
                    })
                    .collect(),
                background: LIMITS_PER_MINUTE
                    .iter()
                    .map(|(family, per_minute, _)| {
                        (family.to_string(), (scaled(*per_minute) as f64 * BOTS_SHARE) as u64)
                    })
                    .collect(),
                ..sim::weight::Rules::default()
            },
            ..SimConfig::binance_2025()
        },
        sim_cancel.clone(),
    )
    .await;
    let config = config(&sim.url(), state, n);
    let panics = Arc::new(AtomicU64::new(0));
    let hook: AttemptHook = {
        let (panics, rate) = (panics.clone(), args.panic_rate);
        Arc::new(move |_| {
            if rand::random::<f64>() < rate {
                panics.fetch_add(1, Ordering::Relaxed);
                panic!("soak: injected scheduler panic");
            }
        })
    };
    // Injected panics are expected: keep their messages out of the report.
    std::panic::set_hook(Box::new(|info| {
        if !info.to_string().contains("soak: injected") {
            eprintln!("{info}");
        }
    }));
    let cancel = CancellationToken::new();
    let options = Options {
        before_attempt: Some(hook),
        ..Options::default()
    };
    let keeper = Arc::new(Keeper::start_with(&config, options, cancel.clone()).expect("the keeper starts"));
    let started = Instant::now();
    println!(
        "soak: {n} streams, lifetimes {}s, faults for {}s",
        LIFETIME.as_secs(),
        args.duration.as_secs()
    );

    // Unreachable windows (bans, outages) and values revoked on purpose.
    let unreachable: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();
    let revoked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let tally = Arc::new(Mutex::new(Tally {
        tasks_min: usize::MAX,
        ..Tally::default()
    }));
    let requests = Arc::new(AtomicU64::new(0));
    let stop_monitor = CancellationToken::new();
    let monitor = tokio::spawn(monitor(
        keeper.clone(),
        sim.clone(),
        state.to_path_buf(),
        tally.clone(),
        unreachable.clone(),
        revoked.clone(),
        requests.clone(),
        stop_monitor.clone(),
    ));

    // Warm up: every stream published once.
    let warm = wait_fresh(&keeper, Duration::from_secs(30)).await;
    let rss_warm = rss_mib();
    let mut injected = 0u64;
    let chaos_until = Instant::now() + args.duration;
    let mut tick = 0u64;
    while Instant::now() < chaos_until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        tick += 1;
        let mut rng = rand::rng();
        sim.add_fault(random_fault(&mut rng));
        // Keys dropped server-side, silently.
        let ids: Vec<String> = keeper.hub().ids().map(|i| i.to_string()).collect();
        for _ in 0..rng.random_range(0..=2) {
            let id = &ids[rng.random_range(0..ids.len())];
            if let Some(h) = keeper.subscribe(id).and_then(|rx| rx.borrow().held.clone()) {
                revoked.lock().unwrap().insert(h.value);
            }
            sim.revoke_scope(id);
        }
        // Every 10 s a one-second ban; every 15 s a 300 ms outage.
        if tick % 40 == 20 {
            sim.add_fault(Fault::parse("PUT * status=429 header=Retry-After:1 count=1").expect("valid"));
            let now = Instant::now();
            unreachable.lock().unwrap().push((now, now + Duration::from_secs(3)));
        }
        if tick % 60 == 30 {
            sim.refuse_connections(Duration::from_millis(300));
            let now = Instant::now();
            unreachable.lock().unwrap().push((now, now + Duration::from_secs(2)));
        }
        // Forget spent faults, counting what they did.
        if tick % 8 == 0 {
            injected += sim.faults().iter().map(|f| f.applied).sum::<u64>();
            sim.clear_faults();
        }
    }
    injected += sim.faults().iter().map(|f| f.applied).sum::<u64>();
    sim.clear_faults();
    let chaos = started.elapsed();

    // Recovery: everything fresh again, one task per stream.
    let recovered = wait_fresh(&keeper, Duration::from_secs(20)).await;
    let tasks_end = {
        let deadline = Instant::now() + Duration::from_secs(3);
        while keeper.live_tasks() != n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        keeper.live_tasks()
    };
    let rss_end = rss_mib();
    stop_monitor.cancel();
    let _ = monitor.await;
    cancel.cancel();
    if let Ok(k) = Arc::try_unwrap(keeper) {
        k.join().await;
    }
    let final_ok = listenkeyd::publishers::state_file::file::read(state).is_ok_and(|d| d.streams.len() == n);
    // Refused for weight (not the injected 429s, which are faults): the keeper's own doing.
    let (weight_429, weight_418) = sim
        .weight_usage()
        .iter()
        .fold((0, 0), |(a, b), u| (a + u.refused_429, b + u.refused_418));
    sim_cancel.cancel();

    let t = tally.lock().unwrap();
    let total = requests.load(Ordering::Relaxed);
    let secs = chaos.as_secs_f64().max(1.0);
    let keys = (n - 2) * 3 / 4 + 2;
    let ideal = keys as f64 / 0.9 + (n - keys) as f64 / 1.8;
    let bound = ideal * secs * 1.2 + injected as f64 * 2.0 + n as f64 * 2.0;
    let growth = rss_end - rss_warm;
    let rows: Vec<(&str, String, String, bool)> = vec![
        (
            "streams published at warm-up",
            format!("{warm:?}"),
            "≤ 30s".into(),
            warm.is_some(),
        ),
        (
            "expirations while reachable",
            t.expired_reachable.len().to_string(),
            "0".into(),
            t.expired_reachable.is_empty(),
        ),
        (
            "expirations excused (ban/outage)",
            t.expired_excused.to_string(),
            "-".into(),
            true,
        ),
        ("empty publications", t.empty.to_string(), "0".into(), t.empty == 0),
        (
            "invalid state-file reads",
            format!("{} of {}", t.invalid_files, t.file_reads + t.invalid_files),
            "0".into(),
            t.invalid_files == 0,
        ),
        (
            "generations going back",
            t.generation_back.to_string(),
            "0".into(),
            t.generation_back == 0,
        ),
        (
            "fresh values dead on the exchange",
            t.dead_fresh.to_string(),
            "0".into(),
            t.dead_fresh == 0,
        ),
        (
            "scheduler tasks min/max/end",
            format!("{}/{}/{tasks_end}", t.tasks_min, t.tasks_max),
            format!("max {n}, end {n}"),
            t.tasks_max <= n && tasks_end == n,
        ),
        (
            "panics injected",
            panics.load(Ordering::Relaxed).to_string(),
            "-".into(),
            true,
        ),
        ("faults applied", injected.to_string(), "-".into(), true),
        (
            "keys dropped server-side",
            revoked.lock().unwrap().len().to_string(),
            "-".into(),
            true,
        ),
        (
            "requests (per s)",
            format!("{total} ({:.0}/s)", total as f64 / secs),
            format!("≤ {bound:.0}"),
            (total as f64) <= bound,
        ),
        (
            "429/418 for request weight",
            format!("{weight_429}/{weight_418}"),
            "0/0".into(),
            weight_429 + weight_418 == 0,
        ),
        (
            "recovered after faults",
            format!("{recovered:?}"),
            "≤ 20s".into(),
            recovered.is_some(),
        ),
        (
            "RSS warm → end (MiB)",
            format!("{rss_warm:.1} → {rss_end:.1} ({growth:+.1})"),
            format!("≤ +{MAX_GROWTH_MIB}"),
            growth <= MAX_GROWTH_MIB,
        ),
        (
            "final state file valid, all streams",
            final_ok.to_string(),
            "true".into(),
            final_ok,
        ),
        ("monitor samples", t.samples.to_string(), "-".into(), t.samples > 0),
    ];
    println!("{:<36} {:>24}  {:>16}  result", "invariant", "observed", "limit");
    let mut ok = true;
    for (name, value, limit, pass) in &rows {
        ok &= pass;
        println!(
            "{name:<36} {value:>24}  {limit:>16}  {}",
            if *pass { "ok" } else { "VIOLATED" }
        );
    }
    for e in t.expired_reachable.iter().take(10) {
        println!("  expired while reachable: {e}");
    }
    println!(
        "soak: {}",
        if ok {
            "all invariants held"
        } else {
            "INVARIANT VIOLATED"
        }
    );
    if ok { 0 } else { 1 }
}

/// Waits until every stream is fresh; returns how long it took.
async fn wait_fresh(keeper: &Keeper, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if keeper.hub().snapshot().iter().all(|s| s.status == Status::Fresh) {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Samples every 50 ms until cancelled.
#[allow(clippy::too_many_arguments)]
async fn monitor(
    keeper: Arc<Keeper>,
    sim: SimHandle,
    state: PathBuf,
    tally: Arc<Mutex<Tally>>,
    unreachable: Arc<Mutex<Vec<(Instant, Instant)>>>,
    revoked: Arc<Mutex<HashSet<String>>>,
    requests: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    let mut top: HashMap<String, u64> = HashMap::new();
    let mut expired: HashSet<String> = HashSet::new();
    while !stop.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = Instant::now();
        let snapshot = keeper.hub().snapshot();
        let tasks = keeper.live_tasks();
        let file = std::fs::read(&state).ok();
        // Count and forget the simulator's request log so it does not grow.
        requests.fetch_add(sim.requests().len() as u64, Ordering::Relaxed);
        sim.clear_requests();
        let excused = unreachable
            .lock()
            .unwrap()
            .iter()
            .any(|(from, to)| *from <= now && now <= *to + LIFETIME);
        let mut t = tally.lock().unwrap();
        t.samples += 1;
        t.tasks_min = t.tasks_min.min(tasks);
        t.tasks_max = t.tasks_max.max(tasks);
        for s in &snapshot {
            let id = s.spec.id.to_string();
            if let Some(h) = &s.held {
                if h.value.is_empty() {
                    t.empty += 1;
                }
                let g = top.entry(id.clone()).or_default();
                if h.generation < *g {
                    t.generation_back += 1;
                }
                *g = (*g).max(h.generation);
                if s.status == Status::Fresh
                    && !sim.is_live(&h.value)
                    && !revoked.lock().unwrap().contains(&h.value)
                    && !excused
                {
                    t.dead_fresh += 1;
                }
            }
            let is_expired = s.expired();
            if is_expired && expired.insert(id.clone()) {
                if excused {
                    t.expired_excused += 1;
                } else {
                    t.expired_reachable
                        .push(format!("{id}: {}", s.last_error.clone().unwrap_or_default()));
                }
            } else if !is_expired {
                expired.remove(&id);
            }
        }
        if let Some(bytes) = file {
            match serde_json::from_slice::<listenkeyd::state::Document>(&bytes) {
                Ok(_) => t.file_reads += 1,
                Err(_) => t.invalid_files += 1,
            }
        }
    }
}
