//! Secrets never leak: the real binary at trace level for every crate (the
//! directive `trace,listenkeyd=trace`, since a bare level keeps dependencies
//! at warn) through signed token requests, a clock-skew resync, 5xx,
//! resets, hung requests, a 429, keys dropped server-side and error answers
//! that echo the key; then the log, `status`, `health`, `get` errors,
//! `check-config` and every `last_error` are scanned for the API key, the
//! secret and every full listen key or token the exchange ever handed out, as
//! are the local API's metrics, health and error answers.
//! And the state file is private from its first byte: a watcher lists the
//! state directory continuously and never sees a file readable by others.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use listenkeyd_sim::{Fault, SimConfig};

const SECRET: &str = "secrets-test-hmac-9f8e7d6c5b4a";

const STREAMS: &str = r#"
[[streams]]
kind = "isolated-margin"
symbols = ["BTCUSDT"]
credential = "listen-key"

[[streams]]
kind = "isolated-margin"
symbols = ["ETHUSDT"]

[[streams]]
kind = "cross-margin"

[[streams]]
kind = "usdm-futures"

[[streams]]
kind = "coinm-futures"

[[streams]]
kind = "options"
"#;

const IDS: [&str; 6] = [
    "isolated-margin:BTCUSDT",
    "isolated-margin:ETHUSDT",
    "cross-margin",
    "usdm-futures",
    "coinm-futures",
    "options",
];

fn fault(spec: &str) -> Fault {
    Fault::parse(spec).unwrap()
}

/// Every file that ever appears in `dir` (the temporary one included) must have no group or other bits.
fn mode_watcher(dir: std::path::PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, Vec<String>)> {
    std::thread::spawn(move || {
        let (mut seen, mut bad) = (0u64, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    if let Ok(m) = e.metadata() {
                        seen += 1;
                        let mode = m.permissions().mode() & 0o777;
                        if mode & 0o077 != 0 {
                            bad.push(format!("{:?} mode {mode:o} at {} bytes", e.file_name(), m.len()));
                        }
                    }
                }
            }
            std::thread::yield_now();
        }
        (seen, bad)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_full_credential_appears_anywhere_at_trace_level() {
    let sim = start_sim(SimConfig {
        listen_key_ttl: Duration::from_secs(6),
        hmac_secret: Some(SECRET.into()),
        clock_skew_ms: 20_000,
        ..SimConfig::binance_2025()
    })
    .await;
    let s = setup(
        &sim.handle.url(),
        &format!(
            "{STREAMS}\n[timing]\nkeepalive_interval = \"1s\"\nlisten_key_validity = \"6s\"\ntoken_validity = \"6s\"\ntoken_renew_before = \"3s\"\n"
        ),
    );
    let api_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replacen("[binance]\n", &format!("[binance]\nsecret_key = \"{SECRET}\"\n"), 1)
        .replace("level = \"debug\"", "level = \"trace,listenkeyd=trace\"")
        + &format!("\n[api]\nlisten = \"127.0.0.1:{api_port}\"\n");
    std::fs::write(&s.config, text).unwrap();
    let state_dir = s.state.parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&state_dir).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = mode_watcher(state_dir, stop.clone());

    let mut d = spawn_daemon(&s);
    let first = wait_published(&s.state, &IDS, Duration::from_secs(8)).await;
    let usdm = first.streams["usdm-futures"].value.clone();
    let btc = first.streams["isolated-margin:BTCUSDT"].value.clone();
    // Error answers that echo the key in full; failures of every transport kind.
    for spec in [
        format!(
            r#"PUT /fapi/v1/listenKey status=400 count=1 revoke body={{"code":-1125,"msg":"listenKey {usdm} does not exist."}}"#
        ),
        format!(
            r#"PUT /sapi/v1/userDataStream/isolated status=500 count=1 body={{"code":-1001,"msg":"internal error for {btc}"}}"#
        ),
        "PUT /dapi/v1/listenKey status=503 count=2".to_owned(),
        "PUT /eapi/v1/listenKey reset count=1".to_owned(),
        "PUT /sapi/v1/userDataStream/isolated delay=3s count=1".to_owned(),
        "POST /sapi/v1/userListenToken status=200 count=1 body=garbage".to_owned(),
        "PUT /eapi/v1/listenKey status=429 header=Retry-After:1 count=1".to_owned(),
    ] {
        sim.handle.add_fault(fault(&spec));
    }
    eventually(Duration::from_secs(20), "faults spent and streams fresh", || {
        let doc = read_state(&s.state)?;
        (sim.handle.faults_spent()
            && doc.pending.is_empty()
            && doc
                .streams
                .values()
                .all(|e| e.status == listenkeyd::state::Status::Fresh)
            && doc.streams["usdm-futures"].generation >= 2)
            .then_some(())
    })
    .await;
    sim.handle.revoke_scope("coinm-futures");
    eventually(Duration::from_secs(5), "coinm replaced", || {
        read_state(&s.state).filter(|d| d.streams["coinm-futures"].generation >= 2)
    })
    .await;

    // Everything the exchange ever handed out.
    let mut values: Vec<String> = sim.handle.active().into_iter().map(|c| c.value).collect();
    values.push(usdm);
    values.push(btc);
    values.extend(first.streams.values().map(|e| e.value.clone()));
    let doc = read_state(&s.state).unwrap();
    values.extend(doc.streams.values().map(|e| e.value.clone()));
    values.sort();
    values.dedup();
    assert!(values.len() >= 8);

    let scan = |what: &str, text: &str| {
        assert!(!text.contains(SECRET), "{what}: the secret leaked");
        assert!(!text.contains(API_KEY), "{what}: the API key leaked");
        for v in &values {
            assert!(!text.contains(v.as_str()), "{what}: a credential leaked in full");
        }
    };
    let config = s.config.to_str().unwrap();
    let state = s.state.to_str().unwrap();
    for args in [
        vec!["status", "--config", config],
        vec!["status", "--state-file", state],
        vec!["health", "--config", config],
        vec!["check-config", "--config", config],
        vec!["get", "no-such-stream", "--config", config],
    ] {
        let out = run_cli(&args);
        scan(&format!("{args:?} stdout"), &String::from_utf8_lossy(&out.stdout));
        scan(&format!("{args:?} stderr"), &String::from_utf8_lossy(&out.stderr));
    }
    // The local API: metrics, health and error answers (the stream documents carry values by design).
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for path in [
        "/metrics",
        "/readyz",
        "/livez",
        "/v1/streams/no-such-stream",
        "/v1/streams/%00%ff",
        "/v1/streams/usdm-futures?after_generation=x&wait=forever",
    ] {
        let r = http
            .get(format!("http://127.0.0.1:{api_port}{path}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        scan(&format!("GET {path}"), &r.text().await.unwrap());
    }
    // Error messages as published.
    let errors: String = doc
        .streams
        .values()
        .filter_map(|e| e.last_error.clone())
        .chain(doc.pending.values().filter_map(|p| p.last_error.clone()))
        .collect();
    scan("last_error", &errors);

    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(5)).0, Some(0));
    stop.store(true, Ordering::Relaxed);
    let (seen, bad) = watcher.join().unwrap();
    assert!(seen > 0);
    assert!(bad.is_empty(), "a state file was readable by others: {bad:?}");
    let log = d.log_text();
    assert!(log.contains("TRACE"), "the log is at trace level");
    assert!(log.contains("re-synced server time"), "the -1021 path ran");
    assert!(log.contains("credential gone"), "the -1125 path ran");
    scan("log", &log);
}
