//! The daemon end to end: the real binary against the simulator on 127.0.0.1,
//! with lifetimes of seconds. Each test names the behaviour it proves.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::*;
use listenkeyd::reason::ErrorClass;
use listenkeyd::state::Status;
use listenkeyd_sim::{Fault, SimConfig};

const ALL_KINDS: &str = r#"
[[streams]]
kind = "isolated-margin"
symbols = ["BTCUSDT", "ETHUSDT"]
credential = "listen-key"

[[streams]]
kind = "isolated-margin"
symbols = ["SOLUSDT"]

[[streams]]
kind = "cross-margin"

[[streams]]
kind = "usdm-futures"

[[streams]]
kind = "coinm-futures"

[[streams]]
kind = "portfolio-margin"

[[streams]]
kind = "options"
"#;

const ALL_IDS: [&str; 8] = [
    "isolated-margin:BTCUSDT",
    "isolated-margin:ETHUSDT",
    "isolated-margin:SOLUSDT",
    "cross-margin",
    "usdm-futures",
    "coinm-futures",
    "portfolio-margin",
    "options",
];

fn fault(spec: &str) -> Fault {
    Fault::parse(spec).unwrap()
}

/// The requests the simulator saw for one method and path.
fn count(sim: &Sim, method: &str, path: &str) -> usize {
    crate::common::calls(&sim.handle)
        .iter()
        .filter(|r| r.method == method && r.path == path)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_every_kind_fresh_for_three_lifetimes_and_stops_cleanly() {
    // 2 s keys kept alive every half second, 3 s tokens renewed 1 s ahead.
    let sim = sim_with_ttl(Duration::from_secs(2)).await;
    let s = setup(
        &sim.handle.url(),
        &format!(
            "[timing]\nkeepalive_interval = \"500ms\"\nlisten_key_validity = \"2s\"\ntoken_validity = \"3s\"\ntoken_renew_before = \"1s\"\njitter = 0.1\n{ALL_KINDS}"
        ),
    );
    let mut d = spawn_daemon(&s);
    wait_published(&s.state, &ALL_IDS, Duration::from_secs(5)).await;
    let started = Instant::now();

    // Three listen-key lifetimes (2 s each), checking all along that nothing expired.
    let mut seen_values = Vec::new();
    while started.elapsed() < Duration::from_secs(6) {
        let doc = read_state(&s.state).unwrap();
        for id in ALL_IDS {
            let e = &doc.streams[id];
            assert!(!e.value.is_empty());
            assert!(
                sim.handle.is_live(&e.value),
                "{id}: the published value is not live on the exchange"
            );
            seen_values.push(e.value.clone());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let requests = crate::common::calls(&sim.handle);
    assert!(
        requests.iter().all(|r| r.api_key_present),
        "every request carries X-MBX-APIKEY"
    );
    assert!(
        requests.iter().all(|r| r.status == Some(200)),
        "no request failed (no key expired): {:?}",
        requests.iter().filter(|r| r.status != Some(200)).collect::<Vec<_>>()
    );

    let doc = read_state(&s.state).unwrap();
    // Listen keys: one POST each, then PUTs that carry the right parameters; never a new key.
    for (id, path) in [
        ("usdm-futures", "/fapi/v1/listenKey"),
        ("coinm-futures", "/dapi/v1/listenKey"),
        ("portfolio-margin", "/papi/v1/listenKey"),
        ("options", "/eapi/v1/listenKey"),
    ] {
        assert_eq!(count(&sim, "POST", path), 1, "{id}: one POST");
        assert!(
            count(&sim, "PUT", path) >= 9,
            "{id}: kept alive about every half second"
        );
        assert_eq!(doc.streams[id].generation, 1, "{id}: the key never changed");
        assert!(requests.iter().filter(|r| r.path == path).all(|r| r.params.is_empty()));
    }
    for symbol in ["BTCUSDT", "ETHUSDT"] {
        let id = format!("isolated-margin:{symbol}");
        let key = &doc.streams[&id].value;
        let mine: Vec<_> = requests
            .iter()
            .filter(|r| {
                r.path == "/sapi/v1/userDataStream/isolated"
                    && r.params.get("symbol").map(String::as_str) == Some(symbol)
            })
            .collect();
        assert_eq!(mine.iter().filter(|r| r.method == "POST").count(), 1);
        let puts: Vec<_> = mine.iter().filter(|r| r.method == "PUT").collect();
        assert!(puts.len() >= 9);
        assert!(
            puts.iter().all(|r| r.params.get("listenKey") == Some(key)),
            "PUT names the key"
        );
        assert_eq!(doc.streams[&id].generation, 1);
    }
    // Tokens: minted with symbol, isIsolated and the configured validity; renewed before expiry.
    let tokens: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/sapi/v1/userListenToken")
        .collect();
    let iso: Vec<_> = tokens
        .iter()
        .filter(|r| r.params.get("symbol").map(String::as_str) == Some("SOLUSDT"))
        .collect();
    assert!(
        iso.iter()
            .all(|r| r.params.get("isIsolated").map(String::as_str) == Some("true"))
    );
    assert!(
        tokens
            .iter()
            .all(|r| r.params.get("validity").map(String::as_str) == Some("3000"))
    );
    assert!(
        iso.len() >= 3,
        "a 3 s token renewed 1 s ahead is minted at least 3 times in 6 s"
    );
    assert!(
        doc.streams["isolated-margin:SOLUSDT"].generation >= 3,
        "each token is a new generation"
    );
    assert_eq!(doc.streams["isolated-margin:SOLUSDT"].status, Status::Fresh);

    // `get` prints each value alone.
    for id in ALL_IDS {
        let out = run_cli(&["get", id, "--state-file", s.state.to_str().unwrap()]);
        assert!(out.status.success());
        let printed = String::from_utf8(out.stdout).unwrap();
        assert!(printed == format!("{}\n", read_state(&s.state).unwrap().streams[id].value));
    }

    // SIGTERM: exit 0 within a second, no DELETE, no secret in the log.
    d.signal("TERM");
    let (code, took) = d.wait_exit(Duration::from_secs(3));
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_millis(1500), "stopped in {took:?}");
    assert!(
        crate::common::calls(&sim.handle).iter().all(|r| r.method != "DELETE"),
        "no key closed on exit"
    );
    let log = d.log_text();
    assert!(log.contains("new credential published"));
    seen_values.sort();
    seen_values.dedup();
    assert_no_secrets(&log, &seen_values);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_streams_reach_the_file_get_and_health_and_the_log_keeps_the_api_key() {
    // The ladder's decisions (one request, then hourly or 5-minute retries) are
    // checked in process by the fault matrix; here, what the binary shows.
    let sim = start_sim(SimConfig {
        listen_key_ttl: Duration::from_secs(3),
        faults: vec![fault("* /sapi/v1/userDataStream/isolated status=410")],
        ..SimConfig::binance_2025()
    })
    .await;
    let futures = start_sim(SimConfig {
        api_keys: vec!["some-other-key".into()],
        ..SimConfig::binance_2025()
    })
    .await;
    let s = setup(
        &sim.handle.url(),
        "[[streams]]\nkind = \"isolated-margin\"\nsymbols = [\"BTCUSDT\"]\ncredential = \"listen-key\"\n\n[[streams]]\nkind = \"usdm-futures\"\n\n[[streams]]\nkind = \"coinm-futures\"\n",
    );
    add_to_binance(&s, &format!("usdm_url = \"{}\"", futures.handle.url()));
    let d = spawn_daemon(&s);
    let doc = eventually(Duration::from_secs(5), "two streams failed, one fresh", || {
        read_state(&s.state).filter(|d| {
            ["isolated-margin:BTCUSDT", "usdm-futures"]
                .iter()
                .all(|id| d.pending.get(*id).is_some_and(|p| p.status == Status::Failed))
                && d.streams
                    .get("coinm-futures")
                    .is_some_and(|e| e.status == Status::Fresh)
        })
    })
    .await;
    let retired = doc.pending["isolated-margin:BTCUSDT"].last_error.clone().unwrap();
    assert!(retired.contains("credential = \"listen-token\""), "{retired}");
    let rejected = doc.pending["usdm-futures"].last_error.clone().unwrap();
    assert!(rejected.contains("-2015"), "{rejected}");
    // Beside each text, its class, for programs.
    assert_eq!(
        doc.pending["isolated-margin:BTCUSDT"].error_class,
        Some(ErrorClass::Retired)
    );
    assert_eq!(doc.pending["usdm-futures"].error_class, Some(ErrorClass::Auth));
    assert_eq!(doc.streams["coinm-futures"].error_class, None);
    let state = s.state.to_str().unwrap();
    for id in ["isolated-margin:BTCUSDT", "usdm-futures"] {
        let out = run_cli(&["get", id, "--state-file", state]);
        assert!(!out.status.success(), "{id}: `get` of a failed stream fails");
        assert!(out.stdout.is_empty());
    }
    let out = run_cli(&["get", "coinm-futures", "--state-file", state]);
    assert!(out.status.success());
    let out = run_cli(&["health", "--state-file", state]);
    assert!(!out.status.success(), "`health` fails while a stream is failed");
    assert_no_secrets(&d.log_text(), &[doc.streams["coinm-futures"].value.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reuses_keys_and_keeps_generations() {
    let sim = sim_with_ttl(Duration::from_secs(30)).await;
    let s = setup(
        &sim.handle.url(),
        "[timing]\nkeepalive_interval = \"10s\"\nlisten_key_validity = \"30s\"\n\n[[streams]]\nkind = \"usdm-futures\"\n\n[[streams]]\nkind = \"isolated-margin\"\nsymbols = [\"XRPUSDT\"]\ncredential = \"listen-key\"\n",
    );
    let ids = ["usdm-futures", "isolated-margin:XRPUSDT"];
    let mut d = spawn_daemon(&s);
    wait_published(&s.state, &ids, Duration::from_secs(5)).await;
    // Make the first generation 2, so "kept" differs from "restarted at 1".
    sim.handle.revoke_scope("usdm-futures");
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(3)).0, Some(0));
    let before = read_state(&s.state).unwrap();

    let mut d = spawn_daemon(&s);
    let after = eventually(Duration::from_secs(5), "republished after restart", || {
        read_state(&s.state).filter(|doc| {
            doc.pending.is_empty()
                && doc
                    .streams
                    .values()
                    .all(|e| e.status == Status::Fresh && e.refreshed_at > before.updated_at)
        })
    })
    .await;
    let id = "isolated-margin:XRPUSDT";
    assert_eq!(
        after.streams[id].value, before.streams[id].value,
        "{id}: POST returned the same key"
    );
    assert_eq!(after.streams[id].generation, before.streams[id].generation);
    assert_eq!(after.streams[id].obtained_at, before.streams[id].obtained_at);
    // The revoked one got a new key: its generation moved forward, never back.
    assert_eq!(
        after.streams["usdm-futures"].generation,
        before.streams["usdm-futures"].generation + 1
    );
    d.signal("INT");
    assert_eq!(d.wait_exit(Duration::from_secs(3)).0, Some(0));
    assert!(crate::common::calls(&sim.handle).iter().all(|r| r.method != "DELETE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_on_exit_deletes_keys_only_when_asked() {
    let sim = sim_with_ttl(Duration::from_secs(30)).await;
    let s = setup(
        &sim.handle.url(),
        "[timing]\nkeepalive_interval = \"10s\"\nlisten_key_validity = \"30s\"\n\n[[streams]]\nkind = \"options\"\n",
    );
    add_to_binance(&s, "close_on_exit = true");
    let mut d = spawn_daemon(&s);
    let doc = wait_published(&s.state, &["options"], Duration::from_secs(5)).await;
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(3)).0, Some(0));
    let deletes: Vec<_> = crate::common::calls(&sim.handle)
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].path, "/eapi/v1/listenKey");
    assert!(!sim.handle.is_live(&doc.streams["options"].value));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_file_is_private_and_never_torn() {
    use std::os::unix::fs::PermissionsExt;
    let sim = sim_with_ttl(Duration::from_secs(3)).await;
    let symbols: Vec<String> = (0..40).map(|i| format!("\"SYM{i:02}USDT\"")).collect();
    let s = setup(
        &sim.handle.url(),
        &format!(
            "[[streams]]\nkind = \"isolated-margin\"\nsymbols = [{}]\ncredential = \"listen-key\"\n",
            symbols.join(", ")
        ),
    );
    let mut d = spawn_daemon(&s);
    // A reader parses the file as fast as it can while keys churn.
    let path = s.state.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(bytes) = std::fs::read(&path) {
                    let doc: listenkeyd::state::Document =
                        serde_json::from_slice(&bytes).expect("never a torn or empty file");
                    assert!(doc.streams.values().all(|e| !e.value.is_empty()));
                    reads += 1;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            reads
        })
    };
    wait_published(
        &s.state,
        &["isolated-margin:SYM00USDT", "isolated-margin:SYM39USDT"],
        Duration::from_secs(5),
    )
    .await;
    for i in 0..10 {
        sim.handle.revoke_scope(&format!("isolated-margin:SYM{i:02}USDT"));
    }
    eventually(Duration::from_secs(5), "ten new generations", || {
        read_state(&s.state).filter(|d| d.streams.values().filter(|e| e.generation == 2).count() == 10)
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().expect("the reader never saw a bad file");
    assert!(reads > 100);
    // After a clean stop, no temporary file is left beside it; the lock file stays.
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(3)).0, Some(0));
    let mode = std::fs::metadata(&s.state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let names: BTreeMap<_, _> = std::fs::read_dir(s.state.parent().unwrap())
        .unwrap()
        .map(|e| (e.unwrap().file_name().into_string().unwrap(), ()))
        .collect();
    assert_eq!(names.keys().collect::<Vec<_>>(), vec!["keys.json", "keys.json.lock"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_health_describe_the_streams_without_printing_keys() {
    let sim = sim_with_ttl(Duration::from_secs(30)).await;
    let s = setup(
        &sim.handle.url(),
        "[timing]\nkeepalive_interval = \"10s\"\nlisten_key_validity = \"30s\"\n\n[[streams]]\nkind = \"usdm-futures\"\n\n[[streams]]\nkind = \"cross-margin\"\n",
    );
    let _d = spawn_daemon(&s);
    let doc = wait_published(&s.state, &["usdm-futures", "cross-margin"], Duration::from_secs(5)).await;
    let config = s.config.to_str().unwrap();
    let out = run_cli(&["health", "--config", config]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let out = run_cli(&["status", "--config", config]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("usdm-futures") && table.contains("fresh"));
    let values: Vec<String> = doc.streams.values().map(|e| e.value.clone()).collect();
    assert_no_secrets(&table, &values);
    assert!(table.contains(&listenkeyd::secret::fingerprint(&values[0])));
    let out = run_cli(&["get", "no-such-stream", "--config", config]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let out = run_cli(&["get", "usdm-futures", "--config", config]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        doc.streams["usdm-futures"].value
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_signed_tokens_are_accepted() {
    use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePublicKey};
    let pem_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid/secrets/ed25519.pem");
    let private = ed25519_dalek::SigningKey::from_pkcs8_pem(&std::fs::read_to_string(&pem_path).unwrap()).unwrap();
    let public = private.verifying_key().to_public_key_pem(Default::default()).unwrap();
    let sim = start_sim(SimConfig {
        ed25519_public_pem: Some(public),
        ..SimConfig::binance_2025()
    })
    .await;
    let s = setup(&sim.handle.url(), "[[streams]]\nkind = \"cross-margin\"\n");
    add_to_binance(&s, &format!("private_key_file = \"{}\"", pem_path.display()));
    let _d = spawn_daemon(&s);
    let doc = wait_published(&s.state, &["cross-margin"], Duration::from_secs(5)).await;
    assert!(sim.handle.is_live(&doc.streams["cross-margin"].value));
    let reqs = crate::common::calls(&sim.handle);
    assert!(
        reqs.iter()
            .all(|r| r.status == Some(200) && r.params.contains_key("signature"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_key_expires_in_an_outage_retries_back_off_instead_of_hammering() {
    let sim = sim_with_ttl(Duration::from_secs(4)).await;
    let s = setup(
        &sim.handle.url(),
        "[timing]\nkeepalive_interval = \"1s\"\nlisten_key_validity = \"4s\"\n\n[[streams]]\nkind = \"usdm-futures\"\n",
    );
    let _d = spawn_daemon(&s);
    wait_published(&s.state, &["usdm-futures"], Duration::from_secs(5)).await;
    sim.handle.add_fault(fault("* * status=503"));
    let expired = eventually(Duration::from_secs(10), "the key expiring in the outage", || {
        read_state(&s.state).filter(|d| d.streams["usdm-futures"].status == Status::Failed)
    })
    .await;
    let since = listenkeyd::state::parse_rfc3339(&expired.updated_at).unwrap();
    let since_ms = listenkeyd::clock::epoch_ms(since);
    // Still retrying: wait for three attempts after the expiry, then look at their gaps.
    let after = eventually(Duration::from_secs(8), "three retries after the expiry", || {
        let after: Vec<_> = crate::common::calls(&sim.handle)
            .into_iter()
            .filter(|r| r.at_ms > since_ms)
            .collect();
        (after.len() >= 3).then_some(after)
    })
    .await;
    // A quarter of the 4 s lifetime between retries (between half and all of
    // 1 s with jitter), not the 200 ms minimum gap.
    let gaps: Vec<i64> = after.windows(2).map(|w| w[1].at_ms - w[0].at_ms).collect();
    assert!(gaps.iter().all(|g| *g >= 450), "retry gaps after expiry: {gaps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_credential_kinds_never_moves_a_generation_back() {
    // The default timing of `setup`: the dropped key is found at the next keepalive, within a second.
    let sim = sim_with_ttl(Duration::from_secs(3)).await;
    let body = "[[streams]]\nkind = \"isolated-margin\"\nsymbols = [\"DOTUSDT\"]\ncredential = \"listen-key\"\n";
    let s = setup(&sim.handle.url(), body);
    let id = "isolated-margin:DOTUSDT";
    let mut d = spawn_daemon(&s);
    wait_published(&s.state, &[id], Duration::from_secs(5)).await;
    sim.handle.revoke_scope(id);
    let before = eventually(Duration::from_secs(5), "generation 2", || {
        read_state(&s.state).filter(|doc| doc.streams[id].generation == 2)
    })
    .await;
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(3)).0, Some(0));
    // The operator moves the stream to listen tokens.
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("\"listen-key\"", "\"listen-token\"");
    std::fs::write(&s.config, text).unwrap();
    let _d = spawn_daemon(&s);
    let after = eventually(Duration::from_secs(5), "the token", || {
        read_state(&s.state).filter(|doc| {
            doc.streams
                .get(id)
                .is_some_and(|e| e.credential != before.streams[id].credential)
        })
    })
    .await;
    assert_eq!(
        after.streams[id].generation, 3,
        "above every generation published before"
    );
}

/// A key's fingerprint in the keeper's `status` and log is the one the
/// simulator's request log shows, so a user can match the two.
#[test]
fn the_keepers_fingerprints_match_the_simulators_request_log() {
    for value in ["k1", "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"] {
        assert_eq!(
            listenkeyd::secret::fingerprint(value),
            listenkeyd_sim::log::fingerprint(value)
        );
    }
}
