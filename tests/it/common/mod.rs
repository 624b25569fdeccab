//! Shared test harness: a simulator on 127.0.0.1, config files written to a
//! temporary directory, the real `listenkeyd` binary spawned against them, and
//! helpers that wait for a condition with a deadline (never a bare sleep).
#![allow(dead_code)]

pub mod redis_server;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use listenkeyd::state::Document;
use listenkeyd_sim::{self as sim, SimConfig, SimHandle};
use tokio_util::sync::CancellationToken;

/// The API key every test config uses.
pub const API_KEY: &str = "test-api-key-7f3e9a1c5b2d4e6f8a0b";

/// A simulator running on the test's runtime.
pub struct Sim {
    /// The handle for inspecting and steering it.
    pub handle: SimHandle,
    cancel: CancellationToken,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Starts a simulator on an ephemeral loopback port.
pub async fn start_sim(cfg: SimConfig) -> Sim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cancel = CancellationToken::new();
    let handle = sim::start(listener, cfg, cancel.clone()).await;
    Sim { handle, cancel }
}

/// A simulator with the given listen-key TTL and otherwise default behaviour.
pub async fn sim_with_ttl(ttl: Duration) -> Sim {
    start_sim(SimConfig {
        listen_key_ttl: ttl,
        ..SimConfig::binance_2025()
    })
    .await
}

/// A temporary directory holding a config and the state file.
pub struct Setup {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
    /// The state file the config names.
    pub state: PathBuf,
}

/// Writes a config pointing every family at `url`, with `body` appended
/// (streams, timing overrides, …). Timing defaults are short: 3 s keys
/// kept alive every second, 6 s tokens renewed 2 s ahead.
pub fn setup(url: &str, body: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state/keys.json");
    let config = dir.path().join("listenkeyd.toml");
    let has_timing = body.contains("[timing]");
    let timing = if has_timing {
        String::new()
    } else {
        "[timing]\nkeepalive_interval = \"1s\"\nlisten_key_validity = \"3s\"\ntoken_validity = \"6s\"\ntoken_renew_before = \"2s\"\njitter = 0.1\n".to_owned()
    };
    let text = format!(
        "[binance]\nbase_url = \"{url}\"\napi_key = \"{API_KEY}\"\nrequest_timeout = \"2s\"\n\n[state]\nfile = \"{}\"\n\n[log]\nformat = \"json\"\nlevel = \"debug\"\n\n{timing}\n{body}\n",
        state.display()
    );
    std::fs::write(&config, text).unwrap();
    Setup { dir, config, state }
}

/// Adds `line` (e.g. `close_on_exit = true`) to the `[binance]` section of the setup's config.
pub fn add_to_binance(s: &Setup, line: &str) {
    let text = std::fs::read_to_string(&s.config).unwrap();
    let text = text.replacen("[binance]\n", &format!("[binance]\n{line}\n"), 1);
    std::fs::write(&s.config, text).unwrap();
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `listenkeyd` binary under test.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_listenkeyd"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LISTENKEYD") || k == "STATE_DIRECTORY" || k == "CREDENTIALS_DIRECTORY" || k == "NOTIFY_SOCKET"
        {
            c.env_remove(k);
        }
    }
    c
}

/// A running daemon; killed on drop if still running.
pub struct Daemon {
    /// The child process.
    pub child: Child,
    /// Where its stderr (the log) goes.
    pub log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Sends `sig` (e.g. "TERM") to the daemon with kill(1).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit, up to `limit`; returns its exit code and how long it took.
    pub fn wait_exit(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), start.elapsed());
            }
            assert!(start.elapsed() < limit, "daemon did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The log written so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Spawns `listenkeyd run --config CONFIG`, logging to a file beside it.
pub fn spawn_daemon(s: &Setup) -> Daemon {
    let log = s
        .dir
        .path()
        .join(format!("daemon-{}.log", Instant::now().elapsed().as_nanos()));
    let log = unique(log);
    let child = bin()
        .arg("run")
        .arg("--config")
        .arg(&s.config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Daemon { child, log }
}

/// A path that does not exist yet, derived from `p`.
fn unique(p: PathBuf) -> PathBuf {
    let mut n = 0;
    loop {
        let candidate = p.with_extension(format!("{n}.log"));
        if !candidate.exists() {
            return candidate;
        }
        n += 1;
    }
}

/// Runs the binary with `args` and returns its output.
pub fn run_cli(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

/// Reads the state file, `None` if absent.
pub fn read_state(path: &Path) -> Option<Document> {
    let bytes = std::fs::read(path).ok()?;
    Some(serde_json::from_slice(&bytes).expect("the state file is always valid JSON"))
}

/// Polls `f` every 20 ms until it returns `Some`, failing the test after `limit`.
pub async fn eventually<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the state file holds a fresh value for each id in `ids`.
pub async fn wait_published(state: &Path, ids: &[&str], limit: Duration) -> Document {
    eventually(limit, "every stream published", || {
        let doc = read_state(state)?;
        ids.iter().all(|id| doc.streams.contains_key(*id)).then_some(doc)
    })
    .await
}

/// Asserts that `text` contains neither the API key nor any of `values` in full.
pub fn assert_no_secrets(text: &str, values: &[String]) {
    assert!(!text.contains(API_KEY), "the API key leaked");
    for v in values {
        assert!(!text.contains(v.as_str()), "a credential leaked in full");
    }
}

/// The keeper's calls the simulator saw, oldest first: every recorded
/// request except the budget's `exchangeInfo` questions (which ask a
/// family's weight limit, at start and hourly).
pub fn calls(handle: &SimHandle) -> Vec<sim::RecordedRequest> {
    handle
        .requests()
        .into_iter()
        .filter(|r| !r.path.ends_with("/exchangeInfo"))
        .collect()
}
