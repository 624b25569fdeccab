//! Several accounts on several venues, through the real binary against the
//! simulator (which serves Binance at its root and the other venues under
//! their prefixes): two Binance accounts with their own API keys (a USD-M key
//! each, an isolated-margin token on one), a Binance.US spot account and a
//! MEXC spot account (its own header, every call signed), all kept fresh over
//! three key lifetimes under account-prefixed ids. The simulator checks that
//! each request carries its own account's key (and MEXC's signature with that
//! account's secret); a key dropped on one account is replaced on that
//! account's stream alone; nothing expires; no secret reaches the log.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use crate::common::{self, eventually, read_state, spawn_daemon, start_sim};
use listenkeyd::secret::fingerprint;
use listenkeyd::state::Status;
use listenkeyd_sim::SimConfig;

const MAIN_KEY: &str = "main-api-key-0a1b2c3d4e5f60718293";
const MAIN_SECRET: &str = "main-secret-9f8e7d6c5b4a39281706";
const DESK_KEY: &str = "desk-api-key-1122334455667788aabb";
const US_KEY: &str = "us-api-key-ccddeeff0011223344556";
const MEXC_KEY: &str = "mexc-api-key-66778899aabbccddeeff";
const MEXC_SECRET: &str = "mexc-secret-0f1e2d3c4b5a69788796";

/// The stream ids, in config order.
const IDS: [&str; 5] = [
    "main/usdm-futures",
    "main/isolated-margin:BTCUSDT",
    "desk2/usdm-futures",
    "us/spot",
    "mm/spot",
];

/// Keys live 4 s on the simulator and are kept alive every second (a loaded
/// machine may stall the daemon a moment: 3 s of margin); tokens live 6 s and
/// are re-minted with 3 s left.
const LIFETIME: Duration = Duration::from_secs(4);

fn config(url: &str, state: &std::path::Path, api_port: u16) -> String {
    format!(
        r#"[binance]
request_timeout = "2s"

[[accounts]]
name = "main"
venue = "binance"
base_url = "{url}"
api_key = "{MAIN_KEY}"
secret_key = "{MAIN_SECRET}"

[[accounts.streams]]
kind = "usdm-futures"

[[accounts.streams]]
kind = "isolated-margin"
symbols = ["BTCUSDT"]

[[accounts]]
name = "desk2"
venue = "binance"
base_url = "{url}"
api_key = "{DESK_KEY}"

[[accounts.streams]]
kind = "usdm-futures"

[[accounts]]
name = "us"
venue = "binance-us"
base_url = "{url}/binance-us"
api_key = "{US_KEY}"

[[accounts.streams]]
kind = "spot"

[[accounts]]
name = "mm"
venue = "mexc"
base_url = "{url}/mexc"
api_key = "{MEXC_KEY}"
secret_key = "{MEXC_SECRET}"

[[accounts.streams]]
kind = "spot"

[timing]
keepalive_interval = "1s"
listen_key_validity = "4s"
token_validity = "6s"
token_renew_before = "3s"
jitter = 0.0

[state]
file = "{}"

[api]
listen = "127.0.0.1:{api_port}"

[[hooks]]
exec = ["sh", "-c", "echo \"$LISTENKEYD_ACCOUNT $LISTENKEYD_STREAM\" >> \"$(dirname \"$LISTENKEYD_STATE_FILE\")/hooks.txt\""]
streams = ["mm/spot", "us/spot", "main/usdm-futures"]
"#,
        state.display()
    )
}

/// The API key each request must carry, by the path it went to.
fn expected_key(path: &str) -> &'static [&'static str] {
    if path.starts_with("/binance-us/") {
        &[US_KEY]
    } else if path.starts_with("/mexc/") {
        &[MEXC_KEY]
    } else if path.starts_with("/sapi/") {
        &[MAIN_KEY]
    } else {
        &[MAIN_KEY, DESK_KEY]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_accounts_on_three_venues_stay_fresh_each_with_its_own_key() {
    let sim = start_sim(SimConfig {
        listen_key_ttl: LIFETIME,
        api_keys: [MAIN_KEY, DESK_KEY, US_KEY, MEXC_KEY].map(str::to_owned).to_vec(),
        hmac_secret: Some(MAIN_SECRET.to_owned()),
        account_secrets: vec![(MEXC_KEY.to_owned(), MEXC_SECRET.to_owned())],
        require_signature: true,
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("keys.json");
    let path = dir.path().join("listenkeyd.toml");
    let api_port = common::free_port();
    std::fs::write(&path, config(&sim.handle.url(), &state, api_port)).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let setup = common::Setup {
        dir,
        config: path,
        state: state.clone(),
    };
    let mut daemon = spawn_daemon(&setup);

    let doc = eventually(Duration::from_secs(10), "every stream published fresh", || {
        let doc = read_state(&state)?;
        IDS.iter()
            .all(|id| doc.streams.get(*id).is_some_and(|e| e.status == Status::Fresh))
            .then_some(doc)
    })
    .await;
    // The state file names each stream's account and venue.
    let named: Vec<(&str, &str)> = IDS
        .iter()
        .map(|id| {
            let e = &doc.streams[*id];
            (e.account.as_deref().unwrap(), e.venue.as_deref().unwrap())
        })
        .collect();
    assert_eq!(
        named,
        [
            ("main", "binance"),
            ("main", "binance"),
            ("desk2", "binance"),
            ("us", "binance-us"),
            ("mm", "mexc")
        ]
    );
    assert_eq!(
        doc.streams["main/isolated-margin:BTCUSDT"].credential.as_str(),
        "listen-token"
    );

    // Three lifetimes, watched every 20 ms: every value published is live on
    // the simulator and unexpired. After the first, desk2's key is dropped.
    let started = Instant::now();
    let mut values: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut dropped: Option<(String, u64, String, u64)> = None;
    let mut seen_values: Vec<String> = Vec::new();
    while started.elapsed() < 3 * LIFETIME + Duration::from_millis(500) {
        let doc = read_state(&state).expect("the state file stays");
        let now = SystemTime::now();
        for id in IDS {
            let e = doc
                .streams
                .get(id)
                .unwrap_or_else(|| panic!("{id} left the state file"));
            // The key dropped at the exchange is published as gone (expiring
            // now) until its replacement arrives: that is not an expiry.
            let replacing = dropped.as_ref().is_some_and(|(old, ..)| *old == e.value);
            if !replacing {
                assert!(e.expires().is_some_and(|t| t > now), "{id} expired: {e:?}");
            }
            assert_ne!(e.status, Status::Failed, "{id}: {:?}", e.last_error);
            let v = values.entry(id).or_default();
            if v.last() != Some(&e.value) {
                v.push(e.value.clone());
                seen_values.push(e.value.clone());
            }
        }
        if dropped.is_none() && started.elapsed() > LIFETIME {
            let (desk, main) = (&doc.streams["desk2/usdm-futures"], &doc.streams["main/usdm-futures"]);
            assert!(sim.handle.revoke_value(&desk.value));
            dropped = Some((desk.value.clone(), desk.generation, main.value.clone(), main.generation));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (old_desk, desk_gen, main_value, main_gen) = dropped.expect("the drop happened");

    // desk2's stream got a new key, a new generation; main's USD-M key, on
    // the same venue and host, kept its value and generation.
    let doc = read_state(&state).unwrap();
    let desk = &doc.streams["desk2/usdm-futures"];
    assert_ne!(desk.value, old_desk);
    assert!(desk.generation > desk_gen, "{desk:?}");
    assert!(sim.handle.is_live(&desk.value));
    let main = &doc.streams["main/usdm-futures"];
    assert_eq!((main.value.as_str(), main.generation), (main_value.as_str(), main_gen));
    for id in ["us/spot", "mm/spot", "main/usdm-futures"] {
        assert_eq!(values[id].len(), 1, "{id} changed value: {:?}", values[id].len());
    }
    // Tokens are re-minted with 3 s of their 6 s left: two or more over 12 s.
    assert!(values["main/isolated-margin:BTCUSDT"].len() >= 2);

    // At the simulator: every request carried its own account's key, in its
    // venue's header, and was answered 200 (but desk2's keepalive of the
    // dropped key); MEXC's calls were signed with the MEXC account's secret.
    let fp: HashMap<String, &str> = [MAIN_KEY, DESK_KEY, US_KEY, MEXC_KEY]
        .into_iter()
        .map(|k| (fingerprint(k), k))
        .collect();
    let requests = crate::common::calls(&sim.handle);
    let mut by_key: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut refused = Vec::new();
    for r in &requests {
        let key = r
            .api_key_fingerprint
            .as_ref()
            .and_then(|f| fp.get(f).copied())
            .unwrap_or_else(|| panic!("{} {} carried no known key", r.method, r.path));
        assert!(
            expected_key(&r.path).contains(&key),
            "{} {} carried {key}",
            r.method,
            r.path
        );
        let venue = match r.venue.as_str() {
            "binance" if r.path.starts_with("/sapi/") => "binance-token",
            v => v,
        };
        *by_key.entry((venue, key)).or_default() += 1;
        if r.path.starts_with("/mexc/") || r.path.starts_with("/sapi/") {
            assert!(
                r.params.contains_key("signature") && r.params.contains_key("timestamp"),
                "{r:?}"
            );
        }
        if r.status != Some(200) {
            refused.push((r.method.clone(), r.path.clone(), key, r.status));
        }
    }
    for pair in [
        ("binance", MAIN_KEY),
        ("binance", DESK_KEY),
        ("binance-token", MAIN_KEY),
        ("binance-us", US_KEY),
        ("mexc", MEXC_KEY),
    ] {
        assert!(by_key.get(&pair).is_some_and(|n| *n >= 3), "{pair:?}: {by_key:?}");
    }
    assert!(
        refused
            .iter()
            .all(|(m, p, k, s)| m == "PUT" && p == "/fapi/v1/listenKey" && *k == DESK_KEY && *s == Some(400)),
        "{refused:?}"
    );
    assert_eq!(refused.len(), 1, "{refused:?}");
    // The MEXC requests went in MEXC's header: the simulator reads only
    // X-MEXC-APIKEY there, and refused none.
    assert!(requests.iter().any(|r| r.venue == "mexc" && r.method == "PUT"));

    // The API serves a named account's stream at its path, and the metrics
    // label each stream with its account and venue.
    let http = reqwest::Client::new();
    let api = format!("http://127.0.0.1:{api_port}");
    let one = http
        .get(format!("{api}/v1/streams/mm/spot"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let one: serde_json::Value = serde_json::from_str(&one).unwrap();
    assert_eq!(one["stream"], "mm/spot");
    assert!(sim.handle.is_live(one["value"].as_str().unwrap()));
    let metrics = http
        .get(format!("{api}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"listenkeyd_stream_info{account="mm",kind="spot",stream="mm/spot",venue="mexc"} 1"#),
        "{metrics}"
    );
    // The budget: no 429 received, and the USD-M limit the simulator publishes, learned.
    assert!(metrics.contains("listenkeyd_rate_limited_total 0\n"), "{metrics}");
    assert!(
        metrics.contains(r#"family="fapi","#) && metrics.contains(r#"source="exchange",window_seconds="60"} 2400"#),
        "{metrics}"
    );

    // get and status, through the config, name the prefixed ids.
    let config = setup.config.to_str().unwrap();
    let got = common::run_cli(&["get", "--config", config, "mm/spot"]);
    let value = String::from_utf8_lossy(&got.stdout).trim().to_owned();
    assert!(got.status.success() && sim.handle.is_live(&value), "{got:?}");
    let status = common::run_cli(&["status", "--config", config]);
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    for id in IDS {
        assert!(status.contains(id), "{id} not in {status}");
    }
    assert!(
        status.contains("unverified: account mm (mexc): the answer to a create past the 60-key cap"),
        "{status}"
    );
    assert!(
        !status.contains("account main (binance)"),
        "Binance's facts are settled: {status}"
    );
    assert!(
        status.contains("budget: ") && status.contains("fapi: limit 2400/60s (exchange)"),
        "{status}"
    );

    daemon.signal("TERM");
    let (code, _) = daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    let log = daemon.log_text();
    for secret in [MAIN_KEY, MAIN_SECRET, DESK_KEY, US_KEY, MEXC_KEY, MEXC_SECRET] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
    for v in &seen_values {
        assert!(!log.contains(v.as_str()), "a credential reached the log in full");
    }
    assert!(!log.contains("expired"), "{log}");

    // Hooks learn the account of the stream that changed.
    let hooks = std::fs::read_to_string(setup.dir.path().join("hooks.txt")).unwrap();
    for line in ["mm mm/spot", "us us/spot", "main main/usdm-futures"] {
        assert!(hooks.lines().any(|l| l == line), "{line:?} not in {hooks:?}");
    }
}

#[test]
fn check_config_lists_the_accounts_and_refuses_a_bad_one_with_78() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let out = common::run_cli(&[
        "check-config",
        "--config",
        fixtures.join("valid/accounts.toml").to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("accounts (5): main, desk-2, us, mm2, woo"), "{text}");
    assert!(text.contains("mm2/spot"), "{text}");
    // Each account's unverified facts, and how to override each.
    assert!(
        text.contains("    unverified: the answer to a create past the 60-key cap (not documented) (override: no setting: please report"),
        "{text}"
    );
    assert!(text.contains("(override: base_url (or spot_url);"), "{text}");
    assert!(!text.contains("mexc-fixture-key"), "{text}");
    let bad = fixtures.join("invalid/accounts-kind-not-on-venue.toml");
    let out = common::run_cli(&["check-config", "--config", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("accounts[0].streams[0].kind: mexc has no kind \"usdm-futures\""),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_single_account_form_runs_unchanged() {
    let sim = common::sim_with_ttl(Duration::from_secs(3)).await;
    let setup = common::setup(&sim.handle.url(), "[[streams]]\nkind = \"usdm-futures\"\n");
    let mut daemon = spawn_daemon(&setup);
    let doc = common::wait_published(&setup.state, &["usdm-futures"], Duration::from_secs(10)).await;
    let e = &doc.streams["usdm-futures"];
    assert_eq!((e.account.as_deref(), e.venue.as_deref()), (None, None));
    let text = std::fs::read_to_string(&setup.state).unwrap();
    assert!(!text.contains("\"account\"") && !text.contains("\"venue\""), "{text}");
    assert!(
        crate::common::calls(&sim.handle)
            .iter()
            .all(|r| r.api_key_fingerprint.as_deref() == Some(&fingerprint(common::API_KEY)))
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).0, Some(0));
}

/// `listenkeyd sim --venue mexc`: MEXC at the root, in its own header and
/// with its own signing rule; other venues under their prefixes. The
/// subcommand is part of the default `sim` feature.
#[cfg(feature = "sim")]
#[test]
fn the_simulator_plays_a_venue_from_the_command_line() {
    use std::io::{BufRead, BufReader};
    let mut child = common::bin()
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--venue",
            "mexc",
            "--secret-key",
            MEXC_SECRET,
            "--quiet",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut line, mut banner) = (String::new(), String::new());
    out.read_line(&mut line).unwrap();
    out.read_line(&mut banner).unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(banner.starts_with("venue mexc at unprefixed paths"), "{banner}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let statuses = rt.block_on(async {
        let http = reqwest::Client::new();
        let post = |path: &str, header: &str, query: &str| {
            http.post(format!("{url}{path}?{query}"))
                .header(header, MEXC_KEY)
                .send()
        };
        let ts = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let payload = format!("timestamp={ts}");
        let signed = format!(
            "{payload}&signature={}",
            listenkeyd::config::Signer::hmac(listenkeyd::secret::Secret::new(MEXC_SECRET))
                .unwrap()
                .sign(&payload)
        );
        let mut statuses = Vec::new();
        for (path, header, query) in [
            ("/api/v3/userDataStream", "X-MEXC-APIKEY", signed.as_str()),
            ("/api/v3/userDataStream", "X-MEXC-APIKEY", ""),
            ("/api/v3/userDataStream", "X-MBX-APIKEY", signed.as_str()),
            ("/binance-us/api/v3/userDataStream", "X-MBX-APIKEY", ""),
        ] {
            statuses.push(post(path, header, query).await.unwrap().status().as_u16());
        }
        statuses
    });
    // Signed in MEXC's header: a key. Unsigned: 400. In Binance's header:
    // no key (MEXC's 400 "api key required"). Binance.US under its prefix:
    // unsigned, X-MBX-APIKEY.
    assert_eq!(statuses, [200, 400, 400, 200]);
    let _ = std::process::Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}
