//! `listenkeyd demo`: the simulator and the keeper in one process, with
//! lifetimes of seconds and a script of exchange faults, printing every
//! refresh and rotation as it happens. It is what a newcomer runs first, and
//! it needs no account: nothing leaves 127.0.0.1.
//!
//! The simulator plays the `binance-2025` profile, which still serves the
//! isolated-margin listen keys (POST/PUT `/sapi/v1/userDataStream/isolated`
//! per symbol) that compatible venues and older deployments use, so the demo
//! shows that flow beside listen tokens, USD-M futures and the margin risk
//! stream; the banner names the profile.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::Keeper;
use crate::clock::until;
use crate::config::Config;
use crate::secret::fingerprint;
use crate::state::{Status, StreamState};
use listenkeyd_sim::{self as sim, Fault, Profile, SimConfig};

/// Listen-key lifetime in the demo.
const KEY_TTL: Duration = Duration::from_secs(8);

/// The Binance the demo's simulator plays: the one that still serves
/// isolated-margin listen keys per symbol.
const PROFILE: Profile = Profile::Binance2025;

/// The demo's config: every kind, with lifetimes of seconds.
fn demo_config(url: &str, state_file: &std::path::Path) -> String {
    format!(
        r#"
[binance]
base_url = "{url}"
api_key = "demo-api-key"
request_timeout = "2s"

[[streams]]
kind = "isolated-margin"
symbols = ["BTCUSDT", "ETHUSDT"]
credential = "listen-key"

[[streams]]
kind = "isolated-margin"
symbols = ["SOLUSDT"]

[[streams]]
kind = "usdm-futures"

[[streams]]
kind = "cross-margin"

[[streams]]
kind = "margin-risk"

[timing]
keepalive_interval = "3s"
listen_key_validity = "{}s"
token_validity = "12s"
token_renew_before = "4s"
jitter = 0.1

[state]
file = "{}"
"#,
        KEY_TTL.as_secs(),
        state_file.display()
    )
}

/// What the exchange does to the demo, and when (seconds after start).
fn script() -> Vec<(u64, &'static str, Fault)> {
    let f = |s: &str| Fault::parse(s).expect("demo faults parse");
    vec![
        (
            7,
            "the exchange silently drops the USD-M listen key",
            f("PUT /fapi/v1/listenKey revoke count=1"),
        ),
        (
            13,
            "three 503s on the isolated-margin keepalives",
            f("PUT /sapi/v1/userDataStream/isolated status=503 count=3"),
        ),
        (
            19,
            "a 429 with Retry-After: 3 (nothing may be sent to the host for 3 s)",
            f("PUT /fapi/v1/listenKey status=429 header=Retry-After:3 count=1"),
        ),
        (
            25,
            "a 200 whose body is -1125 (an error, whatever the status says)",
            f(
                r#"PUT /sapi/v1/userDataStream/isolated status=200 revoke count=1 body={"code":-1125,"msg":"This listenKey does not exist."}"#,
            ),
        ),
    ]
}

/// How a user at this shell runs this binary: `listenkeyd` when that name on
/// the PATH is this very program, else its path (relative to the working
/// directory when below it, as after `cargo run`).
fn this_program() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "listenkeyd".into();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            std::fs::canonicalize(dir.join("listenkeyd"))
                .is_ok_and(|p| std::fs::canonicalize(&exe).is_ok_and(|e| e == p))
        })
    });
    if on_path {
        return "listenkeyd".into();
    }
    let relative = std::env::current_dir()
        .ok()
        .and_then(|cwd| exe.strip_prefix(cwd).ok().map(|p| p.to_path_buf()));
    relative.unwrap_or(exe).display().to_string()
}

/// `s` quoted for a POSIX shell when it holds anything but plain path characters.
fn shell_word(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:=@%,".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Colours when stdout is a terminal.
struct Paint(bool);

impl Paint {
    fn c(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
}

/// Describes the change from `old` to `new`, or `None` if nothing worth printing changed.
fn describe(old: &StreamState, new: &StreamState, p: &Paint) -> Option<String> {
    let now = SystemTime::now();
    let left = |s: &StreamState| {
        s.held
            .as_ref()
            .map(|h| format!("{:.1}s", until(now, h.expires_at).as_secs_f64()))
            .unwrap_or_default()
    };
    let what = match (&old.held, &new.held) {
        (o, Some(n)) if o.as_ref().is_none_or(|o| o.value != n.value) && new.status == Status::Fresh => {
            let noun = if new.spec.credential == crate::stream::CredentialKind::ListenToken {
                "token"
            } else {
                "key"
            };
            p.c(
                "1;32",
                &format!(
                    "● new {noun} {} (generation {}), expires in {}",
                    fingerprint(&n.value),
                    n.generation,
                    left(new)
                ),
            )
        }
        (Some(o), Some(n)) if new.status == Status::Fresh && n.refreshed_at != o.refreshed_at => {
            let recovered = if old.status != Status::Fresh {
                " (recovered)"
            } else {
                ""
            };
            p.c("32", &format!("↻ kept alive, expires in {}{recovered}", left(new)))
        }
        _ if new.status != Status::Fresh && (new.status, &new.last_error) != (old.status, &old.last_error) => {
            let err = new.last_error.as_deref().unwrap_or("");
            let colour = if new.status == Status::Failed { "1;31" } else { "33" };
            p.c(colour, &format!("✗ {}: {err}", new.status))
        }
        _ => return None,
    };
    Some(what)
}

/// Runs the demo for `duration`, or until Ctrl-C.
pub(super) async fn run(duration: Duration) -> std::process::ExitCode {
    let p = Paint(std::io::stdout().is_terminal());
    let cancel = CancellationToken::new();
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("listenkeyd demo: cannot bind 127.0.0.1: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let sim = sim::start(
        listener,
        SimConfig {
            listen_key_ttl: KEY_TTL,
            profile: PROFILE,
            ..SimConfig::default()
        },
        cancel.clone(),
    )
    .await;
    // A directory of its own: a recycled pid must not find an earlier demo's generations.
    let stamp_ms = crate::clock::epoch_ms(SystemTime::now());
    let dir = std::env::temp_dir().join(format!("listenkeyd-demo-{}-{stamp_ms}", std::process::id()));
    let state_file = dir.join("keys.json");
    let config =
        Config::from_toml(&demo_config(&sim.url(), &state_file), HashMap::new()).expect("the demo config is valid");
    let keeper = Keeper::start(&config, cancel.clone()).expect("the demo keeper starts");
    banner(&p, &sim.url(), &state_file);

    let start = Instant::now();
    let failures = follow(&keeper, &config, start, &p, &cancel);
    play(&sim, duration, start, &p).await;
    cancel.cancel();
    keeper.join().await;
    let reqs = sim.requests();
    say!("");
    let deletes = reqs.iter().filter(|r| r.method == "DELETE").count();
    say!(
        "{} requests in {:.0}s; {} stream failures; {} keys closed on exit.",
        reqs.len(),
        start.elapsed().as_secs_f64(),
        failures.load(std::sync::atomic::Ordering::Relaxed),
        deletes
    );
    say!("The state file stays at {} for you to read.", state_file.display());
    std::process::ExitCode::SUCCESS
}

/// What the demo runs against, and what to try while it runs.
fn banner(p: &Paint, sim_url: &str, state_file: &std::path::Path) {
    say!(
        "{}",
        p.c("1", "listenkeyd demo: a simulated Binance, lifetimes in seconds")
    );
    say!("  exchange   {sim_url} (listenkeyd sim, in this process)");
    say!(
        "  profile    {PROFILE} (isolated-margin listen keys per symbol still served; \
         `listenkeyd sim` alone plays Binance as it is today)"
    );
    say!(
        "  keys       live {}s, kept alive every ~3s;  tokens live 12s, re-minted 4s ahead",
        KEY_TTL.as_secs()
    );
    say!("  state file {}", state_file.display());
    say!(
        "  try        {} get usdm-futures --state-file {}   (while the demo runs)",
        shell_word(&this_program()),
        shell_word(&state_file.display().to_string())
    );
    say!("");
}

/// Prints every stream's refreshes and rotations as they happen, until
/// `cancel`; returns the count of streams that failed.
fn follow(
    keeper: &Keeper,
    config: &Config,
    start: Instant,
    p: &Paint,
    cancel: &CancellationToken,
) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    let failures = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let width = config.streams.iter().map(|s| s.id.as_str().len()).max().unwrap_or(0);
    for spec in &config.streams {
        let mut rx = keeper.subscribe(spec.id.as_str()).expect("configured stream");
        let (id, p, cancel, failures) = (spec.id.to_string(), Paint(p.0), cancel.clone(), failures.clone());
        // Compared with the state every stream starts in (the demo's state file
        // is new), so a first key that arrived before this task ran is shown too.
        let mut old = StreamState::starting(std::sync::Arc::new(spec.clone()));
        tokio::spawn(async move {
            loop {
                let new = rx.borrow_and_update().clone();
                if new.status == Status::Failed && old.status != Status::Failed {
                    failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                if let Some(line) = describe(&old, &new, &p) {
                    say!("{}  {id:width$}  {line}", stamp(&p, start));
                }
                old = new;
                if !tokio::select! { r = rx.changed() => r.is_ok(), _ = cancel.cancelled() => false } {
                    break;
                }
            }
        });
    }
    failures
}

/// Seconds since `start`, dimmed: the first column of every line.
fn stamp(p: &Paint, start: Instant) -> String {
    p.c("2", &format!("{:6.2}", start.elapsed().as_secs_f64()))
}

/// Arms the script's faults at their times, until `duration` has passed or Ctrl-C.
async fn play(sim: &sim::SimHandle, duration: Duration, start: Instant, p: &Paint) {
    let mut script = script().into_iter().peekable();
    let stop = crate::cli::run::shutdown_signal();
    tokio::pin!(stop);
    loop {
        let next = script
            .peek()
            .map(|(at, _, _)| Duration::from_secs(*at))
            .unwrap_or(duration)
            .min(duration);
        tokio::select! {
            _ = tokio::time::sleep(next.saturating_sub(start.elapsed())) => {}
            _ = &mut stop => break,
        }
        if start.elapsed() >= duration {
            break;
        }
        if let Some((_, what, fault)) = script.next() {
            say!("{}  {}", stamp(p, start), p.c("1;35", &format!("⚡ {what}")));
            sim.add_fault(fault);
        }
    }
}
