//! `cargo run --release --bin bench`: starts the simulator and the daemon as
//! separate processes on loopback and measures them for 1, 100, 1000 and
//! 10 000 isolated-margin listen-key streams, next to a keeper written with
//! python-binance (`tools/bench/python_keeper.py`) at the same sizes, in the same run.
//!
//! For each size there are two runs. The production run (30 m keepalive,
//! 60 m keys) measures the time from exec to a state file holding every value,
//! memory without API load, the CPU time and context switches of an idle
//! window, then `GET /v1/streams/{id}` latency under 100 concurrent clients,
//! memory with that load, and the memory one `/metrics` scrape costs. The
//! accelerated run (keepalive every max(3 s, N × 6 ms), keys living twice that:
//! the same 1:2 ratio) produces keepalives for at least a minute to measure
//! CPU and state-file bytes written per keepalive, publish latency (the
//! simulator's answer time against the inotify-reported rename of the state
//! file and the arrival of the API event), and requests per key-hour.
//! `--exe PATH` measures a given `listenkeyd` binary instead of building one.
//! PERFORMANCE.md explains every number. Not part of `cargo test`.

mod api;
mod procfs;
mod watch;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use watch::Watcher;

/// The idle window of the production run.
const IDLE: Duration = Duration::from_secs(20);
/// How long after the last state-file write the idle window starts (tokio's
/// blocking threads, used for the write, linger 10 s).
const SETTLE: Duration = Duration::from_secs(11);
/// The accelerated run's shortest measuring window, after the first
/// keepalives: a minute, over which bytes written per keepalive are averaged.
const ACCEL_WINDOW: Duration = Duration::from_secs(60);
/// Accelerated timing: keepalive every `max(3 s, N × 6 ms)`, keys living
/// twice that (production: 30 m / 60 m), so that the keepalive rate stays at or
/// under ~170 per second (60 to 300 times the production rate) at every N.
fn accel_interval_s(n: usize) -> u64 {
    (n as u64 * 6 / 1000).max(3)
}
/// The accelerated run's jitter: the largest allowed, so that keys obtained
/// together spread over a whole interval at once, as they do in production
/// after a few rounds; the mean interval does not depend on it.
const ACCEL_JITTER: f64 = 0.5;
/// Concurrent API clients.
const API_CLIENTS: usize = 100;
/// How long the API load runs.
const API_LOAD: Duration = Duration::from_secs(3);
/// How long anything may take to publish every value.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// µs since the epoch, now.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// A free loopback port.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Sends SIGTERM and waits up to 3 s, then kills.
fn stop(mut child: Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Percentile `p` (0–100) of sorted values.
fn pct(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    Some(sorted[i.min(sorted.len() - 1)])
}

/// A running simulator.
struct Sim {
    child: Child,
    url: String,
}

impl Sim {
    fn start(exe: &Path, ttl: &str) -> Result<Sim, String> {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut child = Command::new(exe)
            // binance-2025: the benchmark keeps isolated-margin listen keys; quiet: nobody reads the log;
            // no weight limits: a cold start of N streams is measured as fast as the keeper makes it.
            // Enforced, the keeper paces a cold start to its share of /sapi's 12,000 a minute (3.3 min
            // for 10,000 streams at the default 0.25, past START_TIMEOUT), and the python keeper it is
            // compared with does not budget and would be banned. The paced cold start against enforced
            // limits is measured by the `budget` integration tests instead; the config below tells the
            // keeper so (share and ceiling 1, /sapi unlimited).
            .args([
                "sim",
                "--no-weight-limits",
                "--listen",
                &addr,
                "--listen-key-ttl",
                ttl,
                "--profile",
                "binance-2025",
                "--quiet",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the simulator: {e}"))?;
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().expect("piped"));
        out.read_line(&mut line).map_err(|e| e.to_string())?;
        if !line.contains("listening") {
            let _ = child.kill();
            return Err(format!("simulator did not start: {line:?}"));
        }
        // Whatever it prints later is drained: a closed pipe would end it.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Ok(Sim {
            child,
            url: format!("http://{addr}"),
        })
    }

    /// (method, symbol, status, answered µs) of every exchange request so far.
    async fn requests(&self) -> Vec<(String, String, u16, i64)> {
        let Ok(r) = reqwest::get(format!("{}/_sim/requests", self.url)).await else {
            return Vec::new();
        };
        let bytes = r.bytes().await.unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| {
                Some((
                    r.get("method")?.as_str()?.to_owned(),
                    r.get("params")?.get("symbol")?.as_str()?.to_owned(),
                    r.get("status")?.as_u64()? as u16,
                    r.get("answered_us")?.as_i64()?,
                ))
            })
            .collect()
    }
}

/// What the harness found out about its environment.
struct Env {
    exe: PathBuf,
    python: Result<PathBuf, String>,
    keeper_py: PathBuf,
}

/// The `/sapi` weight limit the daemon under test is told, per second: the
/// simulator enforces none here (see [`Sim::start`]), so the budget must not
/// pace the cold start either.
const UNLIMITED: u64 = 1 << 30;

/// The config of the daemon under test.
fn config(dir: &Path, sim: &str, symbols: &[String], timing: (&str, &str, f64), api_port: u16) -> PathBuf {
    let (keepalive, validity, jitter) = timing;
    let list = symbols
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        "[binance]\nbase_url = \"{sim}\"\napi_key = \"benchkey\"\n\n\
         [[streams]]\nkind = \"isolated-margin\"\ncredential = \"listen-key\"\nsymbols = [{list}]\n\n\
         [timing]\nkeepalive_interval = \"{keepalive}\"\nlisten_key_validity = \"{validity}\"\njitter = {jitter}\n\n\
         [limits]\nshare = 1.0\nceiling = 1.0\nweight_limits = {{ sapi = \"{UNLIMITED}/1s\" }}\n\n\
         [state]\nfile = \"{}\"\n\n[api]\nlisten = \"127.0.0.1:{api_port}\"\n\n[log]\nformat = \"json\"\n",
        dir.join("keys.json").display()
    );
    let path = dir.join("listenkeyd.toml");
    std::fs::write(&path, text).expect("config written");
    path
}

/// Waits until the watcher saw `name` with `n` complete streams; returns that time.
fn wait_complete(w: &Watcher, name: &str, n: usize, child: &mut Child) -> Result<i64, String> {
    let end = Instant::now() + START_TIMEOUT;
    while Instant::now() < end {
        if let Some(s) = w.seen().iter().find(|s| s.name == name && s.complete >= n) {
            return Ok(s.at_us);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited early ({status})"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(format!("{name} not complete within {START_TIMEOUT:?}"))
}

/// The production-timing measurements of one process.
#[derive(Debug, Default, Clone)]
struct Proc {
    start_ms: f64,
    /// Peak RSS after the start and the idle window, before any API request.
    hwm_kib: u64,
    /// Current RSS at the end of the idle window.
    rss_kib: u64,
    idle_cpu_ms_per_10s: f64,
    idle_ticks: u64,
    idle_wakeups_per_min: f64,
}

/// Everything measured at one size.
#[derive(Debug, Default)]
struct Row {
    n: usize,
    daemon: Option<Proc>,
    python: Option<Proc>,
    errors: Vec<String>,
    api: bool,
    get: Option<(u64, u64, f64, usize)>,
    /// Peak RSS after 100 API clients' load.
    hwm_api_kib: Option<u64>,
    /// One `/metrics` scrape before any other API request: (peak and RSS
    /// before, peak and RSS 1 s after, KiB; body bytes).
    scrape: Option<(u64, u64, u64, u64, usize)>,
    accel_hwm_kib: u64,
    cpu_us_per_refresh: Option<f64>,
    /// State-file bytes per keepalive in the accelerated window: (`wchar`, `write_bytes`).
    bytes_per_keepalive: Option<(f64, f64)>,
    /// Keepalives and the length (s) of the accelerated window.
    accel_window: Option<(usize, f64)>,
    file_lat: Vec<u64>,
    event_lat: Vec<u64>,
    puts_per_key_hour: Option<f64>,
    accel_interval_s: u64,
}

fn main() -> ExitCode {
    // The workspace root: the daemon is built there, into the shared target/.
    let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = tools.parent().map(Path::to_path_buf).unwrap_or(tools);
    let mut sizes = vec![1usize, 100, 1000, 10_000];
    let mut given_exe = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--sizes" => {
                sizes = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|s| s.trim().parse().ok())
                    .collect()
            }
            "--exe" => given_exe = args.next().map(PathBuf::from),
            _ => {
                eprintln!(
                    "usage: cargo run --release -p listenkeyd-tools --bin bench [-- --sizes 1,100,1000,10000] [--exe PATH]"
                );
                return ExitCode::from(2);
            }
        }
    }
    let built = match given_exe {
        Some(exe) if exe.exists() => Ok(exe),
        Some(exe) => Err(format!("{} does not exist", exe.display())),
        None => build_daemon(&root),
    };
    let exe = match built {
        Ok(e) => e,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let env = Env {
        exe,
        python: python_env(&root),
        keeper_py: root.join("tools/bench/python_keeper.py"),
    };
    if let Err(e) = &env.python {
        eprintln!("bench: the python-binance baseline is skipped: {e}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // One untimed exec first, so the first size does not pay for a cold page cache, and a
    // sync, so the first fsync does not wait for the build's gigabytes of dirty pages.
    let _ = Command::new(&env.exe).arg("--version").stdout(Stdio::null()).status();
    let _ = Command::new("sync").status();
    let began = Instant::now();
    let mut rows = Vec::new();
    for &n in &sizes {
        eprintln!("bench: N = {n} …");
        rows.push(rt.block_on(measure(&env, n)));
    }
    println!("{}", report(&env, &rows, began.elapsed()));
    ExitCode::SUCCESS
}

/// Builds the daemon as the package and the image ship it (`cargo build
/// --release --locked`: the release profile, linked against the system's C
/// library) with the cargo that runs us; returns its path,
/// target/release/listenkeyd.
fn build_daemon(root: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = Command::new(cargo)
        .args(["build", "--release", "--locked", "--quiet", "--bin", "listenkeyd"])
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?
        .success();
    if !ok {
        return Err("cargo build --release failed".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let exe = target.join("release/listenkeyd");
    match exe.exists() {
        true => Ok(exe),
        false => Err(format!("cargo build --release made no {}", exe.display())),
    }
}

/// A python with python-binance: `target/bench-venv`, created on first use.
fn python_env(root: &Path) -> Result<PathBuf, String> {
    let venv = root.join("target/bench-venv");
    let py = venv.join("bin/python");
    let has = |py: &Path| {
        Command::new(py)
            .args(["-c", "import binance.client"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if has(&py) {
        return Ok(py);
    }
    eprintln!("bench: installing python-binance into {} (once) …", venv.display());
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .map_err(|e| format!("python3 -m venv: {e}"))?;
    if !made.success() {
        return Err("python3 -m venv failed".into());
    }
    let out = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "-r"])
        .arg(root.join("tools/bench/requirements.txt"))
        .output()
        .map_err(|e| format!("pip: {e}"))?;
    if !out.status.success() || !has(&py) {
        return Err(format!(
            "pip install -r tools/bench/requirements.txt failed: {}",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        ));
    }
    Ok(py)
}

/// Both runs at size `n`.
async fn measure(env: &Env, n: usize) -> Row {
    let mut row = Row { n, ..Row::default() };
    let symbols: Vec<String> = (0..n).map(|i| format!("B{i:04}USDT")).collect();
    let base = std::env::temp_dir().join(format!("listenkeyd-bench-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    if let Err(e) = production(env, &symbols, &base.join("prod"), &mut row).await {
        row.errors.push(format!("production run: {e}"));
    }
    if let Err(e) = accelerated(env, &symbols, &base.join("accel"), &mut row).await {
        row.errors.push(format!("accelerated run: {e}"));
    }
    let _ = std::fs::remove_dir_all(&base);
    row
}

/// Spawns the daemon with `config`, its log in `dir`.
fn spawn_daemon(exe: &Path, config: &Path, dir: &Path) -> Result<Child, String> {
    let log = std::fs::File::create(dir.join("daemon.log")).map_err(|e| e.to_string())?;
    Command::new(exe)
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start the daemon: {e}"))
}

/// The production run: start time, memory, idle cost, API GET latency, for
/// the daemon and the python keeper.
async fn production(env: &Env, symbols: &[String], dir: &Path, row: &mut Row) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let n = symbols.len();
    let sim = Sim::start(&env.exe, "60m")?;
    let api_port = free_port();
    let cfg = config(dir, &sim.url, symbols, ("30m", "60m", 0.1), api_port);
    let watcher = Watcher::start(dir).map_err(|e| format!("inotify: {e}"))?;
    let t0 = now_us();
    let mut daemon = spawn_daemon(&env.exe, &cfg, dir)?;
    let pid = daemon.id();
    let done = wait_complete(&watcher, "keys.json", n, &mut daemon);
    let mut d = Proc::default();
    let result = match done {
        Ok(at) => {
            d.start_ms = (at - t0) as f64 / 1000.0;
            let mut py = None;
            if let Ok(python) = &env.python {
                let t0 = now_us();
                let mut child = Command::new(python)
                    .arg(&env.keeper_py)
                    .args(["--sim", &sim.url, "--out"])
                    .arg(dir.join("python.json"))
                    .arg("--symbols")
                    .arg(symbols.join(","))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| format!("python: {e}"))?;
                match wait_complete(&watcher, "python.json", n, &mut child) {
                    Ok(at) => {
                        py = Some((
                            child,
                            Proc {
                                start_ms: (at - t0) as f64 / 1000.0,
                                ..Proc::default()
                            },
                        ))
                    }
                    Err(e) => {
                        row.errors.push(format!("python keeper: {e}"));
                        stop(child);
                    }
                }
            }
            // Idle: production timing sends nothing for ~27 minutes.
            let last_write = watcher.seen().last().map_or(0, |s| s.at_us);
            let settle_until = last_write + SETTLE.as_micros() as i64;
            let wait = (settle_until - now_us()).max(0) as u64;
            tokio::time::sleep(Duration::from_micros(wait)).await;
            let before = procfs::sample(pid);
            let py_before = py.as_ref().and_then(|(c, _)| procfs::sample(c.id()));
            tokio::time::sleep(IDLE).await;
            let scale10 = 10.0 / IDLE.as_secs_f64();
            let scale60 = 60.0 / IDLE.as_secs_f64();
            let idle = |p: &mut Proc, before: Option<procfs::Usage>, pid: u32| {
                if let (Some(b), Some(a)) = (before, procfs::sample(pid)) {
                    let delta = a.since(&b);
                    p.idle_cpu_ms_per_10s = delta.cpu_ns as f64 / 1e6 * scale10;
                    p.idle_ticks = delta.ticks;
                    p.idle_wakeups_per_min = delta.switches as f64 * scale60;
                    p.hwm_kib = a.hwm_kib;
                    p.rss_kib = a.rss_kib;
                }
            };
            idle(&mut d, before, pid);
            if let Some((child, mut p)) = py {
                idle(&mut p, py_before, child.id());
                row.python = Some(p);
                stop(child);
            }
            // Then the API: one /metrics scrape, then 100 clients.
            let api_base = format!("http://127.0.0.1:{api_port}");
            row.api = api::probe(&api_base).await;
            if row.api {
                let quiet = procfs::sample(pid);
                let body = api::metrics(&api_base).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                if let (Some(b), Some(a), Some(body)) = (quiet, procfs::sample(pid), body) {
                    row.scrape = Some((b.hwm_kib, b.rss_kib, a.hwm_kib, a.rss_kib, body));
                }
                let ids: Vec<String> = symbols.iter().map(|s| format!("isolated-margin:{s}")).collect();
                let (mut lat, bad) = api::load(&api_base, &ids, API_CLIENTS, API_LOAD).await;
                lat.sort_unstable();
                let rps = lat.len() as f64 / API_LOAD.as_secs_f64();
                if let (Some(p50), Some(p99)) = (pct(&lat, 50.0), pct(&lat, 99.0)) {
                    row.get = Some((p50, p99, rps, bad));
                }
                row.hwm_api_kib = procfs::sample(pid).map(|u| u.hwm_kib);
            }
            row.daemon = Some(d);
            Ok(())
        }
        Err(e) => Err(format!("daemon: {e} (log: {})", dir.join("daemon.log").display())),
    };
    stop(daemon);
    watcher.stop();
    stop(sim.child);
    result
}

/// The stream id an API event is about.
fn event_stream(v: &serde_json::Value) -> Option<String> {
    for key in ["id", "stream_id", "stream"] {
        match v.get(key) {
            Some(serde_json::Value::String(s)) => return Some(s.clone()),
            Some(o @ serde_json::Value::Object(_)) => {
                if let Some(s) = event_stream(o) {
                    return Some(s);
                }
            }
            _ => {}
        }
    }
    None
}

/// The accelerated run: CPU per refresh, publish latency, requests per key-hour.
async fn accelerated(env: &Env, symbols: &[String], dir: &Path, row: &mut Row) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let n = symbols.len();
    let interval_s = accel_interval_s(n);
    row.accel_interval_s = interval_s;
    let sim = Sim::start(&env.exe, &format!("{}s", 2 * interval_s))?;
    let api_port = free_port();
    let cfg = config(
        dir,
        &sim.url,
        symbols,
        (&format!("{interval_s}s"), &format!("{}s", 2 * interval_s), ACCEL_JITTER),
        api_port,
    );
    let watcher = Watcher::start(dir).map_err(|e| format!("inotify: {e}"))?;
    let mut daemon = spawn_daemon(&env.exe, &cfg, dir)?;
    let pid = daemon.id();
    let api_base = format!("http://127.0.0.1:{api_port}");
    let mut sse = None;
    if row.api && api::probe(&api_base).await {
        sse = api::subscribe(&api_base).await;
    }
    let result = match wait_complete(&watcher, "keys.json", n, &mut daemon) {
        Ok(at) => {
            // The first keepalives come 0.5–1.5 intervals after the POSTs; measure from there.
            let interval_us = interval_s as i64 * 1_000_000;
            let w0 = at + interval_us / 2;
            let w1 = w0 + (ACCEL_WINDOW.as_micros() as i64).max(interval_us);
            tokio::time::sleep(Duration::from_micros((w0 - now_us()).max(0) as u64)).await;
            let before = procfs::sample(pid);
            tokio::time::sleep(Duration::from_micros((w1 - now_us()).max(0) as u64)).await;
            let after = procfs::sample(pid);
            // Let the last publications of the window land.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let reqs = sim.requests().await;
            let mut answers: HashMap<String, Vec<i64>> = HashMap::new();
            let mut puts = 0usize;
            for (method, symbol, status, at) in &reqs {
                if *status == 200 {
                    answers
                        .entry(format!("isolated-margin:{symbol}"))
                        .or_default()
                        .push(*at);
                    if method == "PUT" && (w0..w1).contains(at) {
                        puts += 1;
                    }
                }
            }
            for v in answers.values_mut() {
                v.sort_unstable();
            }
            let latency = |id: &str, seen_at: i64| -> Option<u64> {
                let v = answers.get(id)?;
                let i = v.partition_point(|a| *a <= seen_at);
                (i > 0).then(|| (seen_at - v[i - 1]) as u64)
            };
            for s in watcher.seen() {
                if s.name == "keys.json" && (w0..w1).contains(&s.at_us) {
                    row.file_lat
                        .extend(s.changed.iter().filter_map(|id| latency(id, s.at_us)));
                }
            }
            if let Some((events, task)) = sse.take() {
                task.abort();
                for (at, v) in events.lock().expect("events lock").iter() {
                    if (w0..w1).contains(at) {
                        if let Some(l) = event_stream(v).and_then(|id| latency(&id, *at)) {
                            row.event_lat.push(l);
                        }
                    }
                }
            }
            row.file_lat.sort_unstable();
            row.event_lat.sort_unstable();
            // Every gap between two successful calls of a key is one keepalive interval;
            // a key-"hour" is one key lifetime (2 intervals here, 60 m in production).
            // Only the rounds that every key finished before the end count, or long
            // intervals would be cut off and the mean biased short.
            let longest = (1.0 + ACCEL_JITTER) * interval_us as f64;
            let rounds = ((now_us() - 300_000 - at) as f64 / longest).floor() as usize;
            let gaps: Vec<i64> = answers
                .values()
                .flat_map(|v| v.windows(2).take(rounds).map(|w| w[1] - w[0]))
                .collect();
            if !gaps.is_empty() {
                let mean_s = gaps.iter().sum::<i64>() as f64 / gaps.len() as f64 / 1e6;
                row.puts_per_key_hour = Some(2.0 * interval_s as f64 / mean_s);
            }
            if let (Some(b), Some(a)) = (before, after) {
                let delta = a.since(&b);
                if puts > 0 {
                    row.cpu_us_per_refresh = Some(delta.cpu_ns as f64 / 1e3 / puts as f64);
                    row.bytes_per_keepalive =
                        Some((delta.wchar as f64 / puts as f64, delta.write_bytes as f64 / puts as f64));
                }
                row.accel_window = Some((puts, (w1 - w0) as f64 / 1e6));
                row.accel_hwm_kib = a.hwm_kib;
            }
            Ok(())
        }
        Err(e) => Err(format!("daemon: {e}")),
    };
    if let Some((_, task)) = sse {
        task.abort();
    }
    stop(daemon);
    watcher.stop();
    stop(sim.child);
    result
}

/// A number or "n/a".
fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "n/a".into(), f)
}

/// Whether an ELF64 executable names a program interpreter (ld.so), i.e. is
/// dynamically linked; `None` when the file is not one this reads.
fn asks_for_interpreter(exe: &Path) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    let b = std::fs::read(exe).ok()?;
    let u16_at = |o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
    // ELF magic, 64-bit, little-endian.
    if b.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let (phoff, phentsize, phnum) = (
        usize::try_from(u64_at(0x20)?).ok()?,
        usize::from(u16_at(0x36)?),
        u16_at(0x38)?,
    );
    Some((0..usize::from(phnum)).any(|i| u32_at(phoff + i * phentsize) == Some(PT_INTERP)))
}

/// The whole report, in Markdown.
fn report(env: &Env, rows: &[Row], took: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", machine());
    let size = std::fs::metadata(&env.exe).map(|m| m.len()).unwrap_or(0);
    let linked = match asks_for_interpreter(&env.exe) {
        Some(false) => "C library linked in",
        Some(true) => "dynamically linked",
        None => "linkage unknown",
    };
    let _ = writeln!(
        out,
        "listenkeyd binary ({}; release profile, strip = \"symbols\", {linked}): {:.2} MiB\n",
        env.exe.display(),
        size as f64 / 1048576.0
    );
    let head: Vec<String> = rows.iter().map(|r| format!("N = {}", r.n)).collect();
    let _ = writeln!(out, "| | {} |", head.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(rows.len()));
    let mut line = |name: &str, f: &dyn Fn(&Row) -> String| {
        let cells: Vec<String> = rows.iter().map(f).collect();
        let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
    };
    let d = |r: &Row| r.daemon.clone();
    let p = |r: &Row| r.python.clone();
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.1}×", a / b),
        _ => "n/a".into(),
    };
    line("exec → every value in the state file (ms)", &|r| {
        opt(d(r), |p| format!("{:.0}", p.start_ms))
    });
    line("  python-binance keeper (ms)", &|r| {
        opt(p(r), |p| format!("{:.0}", p.start_ms))
    });
    line("  ratio python / listenkeyd", &|r| {
        ratio(p(r).map(|p| p.start_ms), d(r).map(|p| p.start_ms))
    });
    line("peak RSS without API load, VmHWM after start + idle (MiB)", &|r| {
        opt(d(r), |p| format!("{:.1}", p.hwm_kib as f64 / 1024.0))
    });
    line("steady RSS without API load, VmRSS when idle (MiB)", &|r| {
        opt(d(r), |p| format!("{:.1}", p.rss_kib as f64 / 1024.0))
    });
    line("peak RSS with API load, VmHWM after 100 clients (MiB)", &|r| {
        opt(r.hwm_api_kib, |k| format!("{:.1}", k as f64 / 1024.0))
    });
    line(
        "one /metrics scrape: body (KiB) / peak RSS + (MiB) / RSS 1 s after + (MiB)",
        &|r| {
            opt(r.scrape, |(hwm0, rss0, hwm1, rss1, body)| {
                let mib = |a: u64, b: u64| (a as f64 - b as f64) / 1024.0;
                format!(
                    "{:.0} / {:+.1} / {:+.1}",
                    body as f64 / 1024.0,
                    mib(hwm1, hwm0),
                    mib(rss1, rss0)
                )
            })
        },
    );
    line("  python-binance peak / steady (MiB)", &|r| {
        opt(p(r), |p| {
            format!("{:.1} / {:.1}", p.hwm_kib as f64 / 1024.0, p.rss_kib as f64 / 1024.0)
        })
    });
    line("  ratio python / listenkeyd (peak)", &|r| {
        ratio(p(r).map(|p| p.hwm_kib as f64), d(r).map(|p| p.hwm_kib as f64))
    });
    line("peak RSS in the accelerated run, no API load (MiB)", &|r| {
        format!("{:.1}", r.accel_hwm_kib as f64 / 1024.0)
    });
    line("idle CPU, 30 m keepalive (ms per 10 s)", &|r| {
        opt(d(r), |p| format!("{:.2}", p.idle_cpu_ms_per_10s))
    });
    line("  python-binance (ms per 10 s)", &|r| {
        opt(p(r), |p| format!("{:.2}", p.idle_cpu_ms_per_10s))
    });
    line("  ratio python / listenkeyd", &|r| {
        ratio(p(r).map(|p| p.idle_cpu_ms_per_10s), d(r).map(|p| p.idle_cpu_ms_per_10s))
    });
    line("idle wakeups, context switches (per min)", &|r| {
        opt(d(r), |p| format!("{:.0}", p.idle_wakeups_per_min))
    });
    line("  python-binance (per min)", &|r| {
        opt(p(r), |p| format!("{:.0}", p.idle_wakeups_per_min))
    });
    line("CPU per keepalive (µs)", &|r| {
        opt(r.cpu_us_per_refresh, |v| format!("{v:.0}"))
    });
    line("bytes written to storage per keepalive (write_bytes)", &|r| {
        opt(r.bytes_per_keepalive, |(_, w)| format!("{w:.0}"))
    });
    line(
        "  bytes passed to write(2) per keepalive, HTTP included (wchar)",
        &|r| opt(r.bytes_per_keepalive, |(c, _)| format!("{c:.0}")),
    );
    line("accelerated window: keepalives / seconds", &|r| {
        opt(r.accel_window, |(k, s)| format!("{k} / {s:.0}"))
    });
    let lat = |v: &[u64]| match (pct(v, 50.0), pct(v, 99.0)) {
        (Some(a), Some(b)) => format!("{:.2} / {:.2} ({})", a as f64 / 1e3, b as f64 / 1e3, v.len()),
        _ => "n/a".into(),
    };
    line(
        "publish latency answer → renamed file, p50 / p99 ms (samples)",
        &|r| lat(&r.file_lat),
    );
    line("publish latency answer → API event, p50 / p99 ms (samples)", &|r| {
        if r.api {
            lat(&r.event_lat)
        } else {
            "n/a (no API)".into()
        }
    });
    line(
        "GET /v1/streams/{id}, 100 clients, p50 / p99 ms (req/s)",
        &|r| match r.get {
            Some((a, b, rps, bad)) => format!(
                "{:.2} / {:.2} ({rps:.0}{})",
                a as f64 / 1e3,
                b as f64 / 1e3,
                if bad > 0 {
                    format!(", {bad} failed")
                } else {
                    String::new()
                }
            ),
            None => "n/a (no API)".into(),
        },
    );
    line("accelerated keepalive / key lifetime (s)", &|r| {
        format!("{} / {}", r.accel_interval_s, 2 * r.accel_interval_s)
    });
    line("keepalives per key-lifetime (≙ key-hour), measured", &|r| {
        opt(r.puts_per_key_hour, |v| format!("{v:.2}"))
    });
    let _ = writeln!(
        out,
        "\nkeepalives per key-hour at 30 m / 60 m, derived from the scheduler's rule: {:.3} (python-binance: 2.000; minimum: 2 at Binance's recommended 30 m, strictly more than 1 to keep a 60 m key alive)",
        derived_rate()
    );
    for r in rows {
        for e in &r.errors {
            let _ = writeln!(out, "N = {}: {e}", r.n);
        }
    }
    let _ = writeln!(out, "\nwhole run: {:.0} s", took.as_secs_f64());
    out
}

/// Keepalives per hour at the defaults (30 m ± 10 %, 60 m keys), from
/// `ladder::next_keepalive` itself: the mean interval over a fine grid of the
/// random input.
fn derived_rate() -> f64 {
    use listenkeyd::scheduler::ladder::next_keepalive;
    let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
    let steps = 10_000;
    let mean: f64 = (0..steps)
        .map(|i| {
            let r = (i as f64 + 0.5) / steps as f64;
            let at = next_keepalive(now, now + Duration::from_secs(3600), Duration::from_secs(1800), 0.1, r);
            at.duration_since(now).map_or(0.0, |d| d.as_secs_f64())
        })
        .sum::<f64>()
        / steps as f64;
    3600.0 / mean
}

/// The machine, for the report.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|k| k.parse::<u64>().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "machine: {cores} cores ({cpu}), {:.0} GiB, Linux {}",
        mem as f64 / 1048576.0,
        kernel.trim()
    )
}
