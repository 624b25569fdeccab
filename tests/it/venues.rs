//! Every venue profile against the simulator's stand-in for that venue, in
//! one keeper: the right endpoint, header and signing for each (a wrong one is
//! refused by the simulator), BingX's 404 for an unknown key taken as "key
//! gone", WOO X's rotating keys replaced before they expire with the new one
//! published at once, and rate-limit windows per host or per account.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::common::{eventually, start_sim};
use listenkeyd::Keeper;
use listenkeyd::config::Config;
use listenkeyd::keeper::Options;
use listenkeyd::state::Status;
use listenkeyd_sim::{Fault, SimConfig};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "venue-secret-55aa66bb77cc88dd";

/// An account on `venue` with key `name-key`, every URL under the venue's prefix.
fn account(url: &str, name: &str, venue: &str, kinds: &[&str]) -> String {
    let mut t = format!(
        "[[accounts]]\nname = \"{name}\"\nvenue = \"{venue}\"\nbase_url = \"{url}/{venue}\"\napi_key = \"{name}-key\"\nsecret_key = \"{SECRET}\"\n"
    );
    for k in kinds {
        t.push_str(&format!("[[accounts.streams]]\nkind = \"{k}\"\n"));
    }
    t
}

const TIMING: &str = "[binance]\nrequest_timeout = \"2s\"\n[timing]\nkeepalive_interval = \"1s\"\nlisten_key_validity = \"4s\"\ntoken_validity = \"6s\"\ntoken_renew_before = \"3s\"\njitter = 0.0\n";

fn start(text: &str) -> (Keeper, CancellationToken) {
    let config = Config::from_toml(text, HashMap::new()).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let cancel = CancellationToken::new();
    let options = Options {
        state_file: false,
        ..Options::default()
    };
    (Keeper::start_with(&config, options, cancel.clone()).unwrap(), cancel)
}

async fn fresh(k: &Keeper, id: &str) -> (String, u64) {
    let rx = k.subscribe(id).unwrap_or_else(|| panic!("no stream {id}"));
    eventually(Duration::from_secs(5), id, || {
        let s = rx.borrow().clone();
        let h = s.held.as_ref()?;
        (s.status == Status::Fresh).then(|| (h.value.clone(), h.generation))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_venue_is_kept_with_its_own_rules() {
    let sim = start_sim(SimConfig {
        listen_key_ttl: Duration::from_secs(4),
        hmac_secret: Some(SECRET.to_owned()),
        ..SimConfig::default()
    })
    .await;
    let url = sim.handle.url();
    let text = [
        TIMING.to_owned(),
        account(&url, "bx", "bingx", &["spot"]),
        account(&url, "as", "aster", &["futures", "spot"]),
        account(&url, "tb", "toobit", &["spot", "futures", "usdc-futures"]),
        account(&url, "hk", "hashkey", &["account"]),
        account(&url, "woo", "woox", &["account"]),
    ]
    .join("\n");
    let (k, cancel) = start(&text);
    let ids = [
        "bx/spot",
        "as/futures",
        "as/spot",
        "tb/spot",
        "tb/futures",
        "tb/usdc-futures",
        "hk/account",
        "woo/account",
    ];
    for id in ids {
        let (value, _) = fresh(&k, id).await;
        assert!(sim.handle.is_live(&value), "{id}");
    }
    assert_eq!(k.streams_of("tb"), ["tb/spot", "tb/futures", "tb/usdc-futures"]);
    let scopes: Vec<String> = sim.handle.active().into_iter().map(|c| c.scope).collect();
    for scope in [
        "toobit/usdc-futures",
        "toobit/user",
        "woox/account",
        "hashkey/account",
        "aster/futures",
    ] {
        assert!(scopes.iter().any(|s| s == scope), "{scope} not in {scopes:?}");
    }
    // Nothing was refused: each venue's header and signature were right.
    let requests = crate::common::calls(&sim.handle);
    assert!(requests.iter().all(|r| r.status == Some(200)), "{requests:?}");
    for r in &requests {
        let signed = ["toobit", "hashkey"].contains(&r.venue.as_str());
        assert_eq!(r.params.contains_key("signature"), signed, "{r:?}");
    }

    // BingX: the key dropped, its PUT answers 404, a new key follows.
    let (old, generation) = fresh(&k, "bx/spot").await;
    assert!(sim.handle.revoke_value(&old));
    let rx = k.subscribe("bx/spot").unwrap();
    let (new, _) = eventually(Duration::from_secs(5), "bx/spot replaced", || {
        let s = rx.borrow().clone();
        let h = s.held.as_ref()?;
        (h.generation > generation && s.status == Status::Fresh).then(|| (h.value.clone(), h.generation))
    })
    .await;
    assert_ne!(new, old);
    assert!(
        crate::common::calls(&sim.handle)
            .iter()
            .any(|r| r.venue == "bingx" && r.method == "PUT" && r.status == Some(404))
    );

    // WOO X: 4 s keys, re-minted with 3 s left; each mint kills the previous
    // key, and the keeper publishes the new one at once. Over 4 s, every value
    // it shows is live at the exchange, except in the instant between the
    // mint and its publication.
    let rx = k.subscribe("woo/account").unwrap();
    let start_gen = rx.borrow().held.as_ref().unwrap().generation;
    let until = Instant::now() + Duration::from_secs(4);
    let mut dead = 0;
    let mut samples = 0;
    while Instant::now() < until {
        let s = rx.borrow().clone();
        let h = s.held.as_ref().unwrap();
        samples += 1;
        if !sim.handle.is_live(&h.value) {
            dead += 1;
        }
        assert_ne!(s.status, Status::Failed, "{:?}", s.last_error);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let end_gen = rx.borrow().held.as_ref().unwrap().generation;
    assert!(end_gen >= start_gen + 2, "{start_gen} -> {end_gen}");
    assert!(
        dead * 20 < samples,
        "{dead} of {samples} samples showed a dead WOO X key"
    );
    let woox_posts = crate::common::calls(&sim.handle)
        .iter()
        .filter(|r| r.venue == "woox")
        .all(|r| r.method == "POST");
    assert!(woox_posts, "WOO X keys are never extended");
    cancel.cancel();
    k.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_close_the_host_for_binance_and_the_account_for_woox() {
    let cfg = || SimConfig {
        listen_key_ttl: Duration::from_secs(4),
        hmac_secret: Some(SECRET.to_owned()),
        ..SimConfig::default()
    };
    let (sim, other) = (start_sim(cfg()).await, start_sim(cfg()).await);
    let (url, other_url) = (sim.handle.url(), other.handle.url());
    let binance = |name: &str, url: &str, kind: &str| {
        format!(
            "[[accounts]]\nname = \"{name}\"\nvenue = \"binance\"\nbase_url = \"{url}\"\napi_key = \"{name}-key\"\n[[accounts.streams]]\nkind = \"{kind}\"\n"
        )
    };
    let text = [
        TIMING.to_owned(),
        binance("a", &url, "usdm-futures"),
        binance("b", &url, "coinm-futures"),
        binance("c", &other_url, "usdm-futures"),
        account(&other_url, "w1", "woox", &["account"]),
        account(&other_url, "w2", "woox", &["account"]),
    ]
    .join("\n");
    // Binance's 429 on the first keepalive of a: b (same host) waits too; c
    // (another host) does not.
    sim.handle
        .add_fault(Fault::parse("PUT /fapi/v1/listenKey status=429 header=Retry-After:30 count=1").unwrap());
    // WOO X's 429 on the first re-mint, whichever account makes it: the other
    // account, on the same host, goes on.
    other.handle.add_fault(
        Fault::parse("POST /woox/v3/account/listenKey status=429 header=Retry-After:30 count=1 after=2").unwrap(),
    );
    let (k, cancel) = start(&text);
    for id in [
        "a/usdm-futures",
        "b/coinm-futures",
        "c/usdm-futures",
        "w1/account",
        "w2/account",
    ] {
        fresh(&k, id).await;
    }
    // The 429, and the requests that arrived well after it was answered (one
    // already on its way while the answer travelled is not held back).
    let limited = |h: &listenkeyd_sim::SimHandle| {
        let reqs = h.requests();
        let hit = reqs.iter().find(|r| r.status == Some(429))?.clone();
        let answered_ms = hit.answered_us? / 1000;
        let later = reqs
            .into_iter()
            .filter(|r| r.at_ms > answered_ms + 200)
            .collect::<Vec<_>>();
        Some((hit, later))
    };
    let (_, after) = eventually(Duration::from_secs(5), "the Binance 429", || limited(&sim.handle)).await;
    let (hit, _) = eventually(Duration::from_secs(5), "the WOO X 429", || limited(&other.handle)).await;
    // Three more keepalive periods and a WOO X lifetime.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, after_binance) = limited(&sim.handle).unwrap();
    assert!(after.len() <= after_binance.len());
    assert!(
        after_binance.is_empty(),
        "the host stayed closed to every account: {after_binance:?}"
    );
    let (_, after_woox) = limited(&other.handle).unwrap();
    let from = |fp: Option<&String>| {
        after_woox
            .iter()
            .filter(|r| r.api_key_fingerprint.as_ref() == fp)
            .count()
    };
    assert_eq!(
        from(hit.api_key_fingerprint.as_ref()),
        0,
        "the limited WOO X account waits out its window"
    );
    let others: Vec<_> = after_woox
        .iter()
        .filter(|r| r.api_key_fingerprint != hit.api_key_fingerprint)
        .collect();
    assert!(
        others.iter().any(|r| r.venue == "woox"),
        "the other WOO X account goes on: {others:?}"
    );
    assert!(
        others.iter().any(|r| r.path == "/fapi/v1/listenKey"),
        "c, on this host, goes on"
    );
    cancel.cancel();
    k.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_an_auth_failure_in_the_venues_own_codes() {
    let sim = start_sim(SimConfig {
        hmac_secret: Some(SECRET.to_owned()),
        ..SimConfig::default()
    })
    .await;
    let url = sim.handle.url();
    let wrong = |name: &str, venue: &str, kind: &str| {
        format!(
            "[[accounts]]\nname = \"{name}\"\nvenue = \"{venue}\"\nbase_url = \"{url}/{venue}\"\napi_key = \"{name}-key\"\nsecret_key = \"not-the-secret\"\n[[accounts.streams]]\nkind = \"{kind}\"\n"
        )
    };
    let text = [
        TIMING.to_owned(),
        wrong("mm", "mexc", "spot"),
        wrong("woo", "woox", "account"),
        wrong("hk", "hashkey", "account"),
        wrong("tb", "toobit", "spot"),
    ]
    .join("\n");
    let (k, cancel) = start(&text);
    for id in ["mm/spot", "woo/account", "hk/account", "tb/spot"] {
        let rx = k.subscribe(id).unwrap();
        let s = eventually(Duration::from_secs(5), id, || {
            let s = rx.borrow().clone();
            (s.status == Status::Failed && s.started()).then_some(s)
        })
        .await;
        let error = s.last_error.unwrap_or_default();
        assert!(error.contains("auth"), "{id}: {error}");
        assert!(
            !["not-the-secret", "mm-key", "woo-key", "hk-key", "tb-key"]
                .iter()
                .any(|s| error.contains(s)),
            "{error}"
        );
    }
    let codes: Vec<(String, Option<u16>)> = crate::common::calls(&sim.handle)
        .into_iter()
        .map(|r| (r.venue, r.status))
        .collect();
    assert!(codes.contains(&("mexc".to_owned(), Some(400))), "{codes:?}");
    assert!(codes.contains(&("woox".to_owned(), Some(401))), "{codes:?}");
    // HashKey's refusal is a string code under 400, read as an auth failure.
    let hk = k
        .subscribe("hk/account")
        .unwrap()
        .borrow()
        .last_error
        .clone()
        .unwrap_or_default();
    assert!(hk.starts_with("auth: HTTP 400: code 0002: Incorrect signature"), "{hk}");
    cancel.cancel();
    k.join().await;
}

/// Each venue's own error shapes, answered by the simulator's stand-in for
/// it, walk the failure ladder: its rate limit (Binance's 429, MEXC's 429,
/// BingX's `100410` under 200, HashKey's 400 with `"0003"`, WOO X's
/// `success: false`) is waited out and the stream recovers; its "key gone"
/// (MEXC's `730708`, BingX's 404, -1125 elsewhere) is replaced at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_venue_is_read_in_its_own_error_shapes() {
    use listenkeyd::reason::ErrorClass;
    // One simulator per venue: a rate limit closes its host, and the others must not see it.
    let venues = [
        ("us", "binance-us", "spot", "PUT", "-1003"),
        ("mm", "mexc", "spot", "PUT", "429"),
        ("bx", "bingx", "spot", "PUT", "100410"),
        ("as", "aster", "futures", "PUT", "-1003"),
        ("tb", "toobit", "spot", "PUT", "-1003"),
        ("hk", "hashkey", "account", "PUT", "code 0003"),
        ("woo", "woox", "account", "POST", "-1003"),
    ];
    let mut sims = Vec::new();
    let mut text = TIMING.to_owned();
    for (name, venue, kind, method, _) in venues {
        let sim = start_sim(SimConfig {
            listen_key_ttl: Duration::from_secs(4),
            hmac_secret: Some(SECRET.to_owned()),
            ..SimConfig::default()
        })
        .await;
        // The first keepalive (WOO X: the first re-mint) is rate-limited, in the venue's shape.
        sim.handle.add_fault(
            Fault::parse(&format!(
                "{method} /{venue}/ limit header=Retry-After:1 count=1 after=1"
            ))
            .unwrap(),
        );
        text.push('\n');
        text.push_str(&account(&sim.handle.url(), name, venue, &[kind]));
        sims.push(sim);
    }
    let (k, cancel) = start(&text);
    // Every state each stream publishes, from the start: the windows pass
    // while the others are checked.
    let mut seen = Vec::new();
    for (name, _, kind, _, _) in venues {
        let mut rx = k.subscribe(&format!("{name}/{kind}")).unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let into = log.clone();
        tokio::spawn(async move {
            loop {
                let s = rx.borrow_and_update().clone();
                into.lock().unwrap().push((s.status, s.error_class, s.last_error));
                if rx.changed().await.is_err() {
                    break;
                }
            }
        });
        seen.push(log);
    }
    for (((name, venue, kind, _, code), sim), log) in venues.into_iter().zip(&sims).zip(&seen) {
        let id = format!("{name}/{kind}");
        let rx = k.subscribe(&id).unwrap();
        let (status, error) = eventually(Duration::from_secs(8), &format!("{id} rate-limited"), || {
            let log = log.lock().unwrap();
            log.iter()
                .find(|(_, class, _)| *class == Some(ErrorClass::RateLimited))
                .map(|(status, _, error)| (*status, error.clone().unwrap_or_default()))
        })
        .await;
        assert!(error.contains(code), "{venue}: {error}");
        assert_eq!(status, Status::Stale, "{venue}: the value is kept");
        let (value, generation) = eventually(Duration::from_secs(8), &format!("{id} recovered"), || {
            let s = rx.borrow().clone();
            let h = s.held.as_ref()?;
            (s.status == Status::Fresh && s.error_class.is_none()).then(|| (h.value.clone(), h.generation))
        })
        .await;
        if venue == "woox" {
            continue; // Rotating keys are never extended, so never found gone.
        }
        // The key dropped at the venue: its keepalive answers the venue's
        // "key gone", and a new key follows at once.
        assert!(sim.handle.revoke_value(&value), "{id}");
        let new = eventually(Duration::from_secs(8), &format!("{id} replaced"), || {
            let s = rx.borrow().clone();
            let h = s.held.as_ref()?;
            (h.generation > generation && s.status == Status::Fresh).then(|| h.value.clone())
        })
        .await;
        assert!(sim.handle.is_live(&new), "{id}");
        let refused: Vec<_> = sim
            .handle
            .requests()
            .into_iter()
            .filter(|r| r.method == "PUT" && r.status != Some(200))
            .map(|r| r.status)
            .collect();
        let gone_status = match venue {
            "bingx" => 404,
            _ => 400,
        };
        assert!(refused.contains(&Some(gone_status)), "{venue}: {refused:?}");
    }
    cancel.cancel();
    k.join().await;
}

/// The server time, where each venue puts it: `serverTime`, BingX's
/// `data.serverTime`, WOO X's `timestamp`. On a venue that signs by query, a
/// request stamped two minutes behind the exchange's clock is refused in the
/// venue's own code (MEXC's 700003, -1021 elsewhere); the keeper re-syncs
/// from the venue's time endpoint and the retry is accepted. Every venue's
/// client re-syncs from its own time answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_venue_re_syncs_its_clock_from_its_own_time_answer() {
    use listenkeyd::exchange::client::{Client, HostGates};
    const SKEW_MS: i64 = 120_000;
    let sim = start_sim(SimConfig {
        hmac_secret: Some(SECRET.to_owned()),
        clock_skew_ms: SKEW_MS,
        ..SimConfig::default()
    })
    .await;
    let url = sim.handle.url();
    let signed = [
        ("mm", "mexc", "spot"),
        ("tb", "toobit", "spot"),
        ("hk", "hashkey", "account"),
    ];
    let text = [TIMING.to_owned()]
        .into_iter()
        .chain(signed.iter().map(|(n, v, k)| account(&url, n, v, &[k])))
        .collect::<Vec<_>>()
        .join("\n");
    let (k, cancel) = start(&text);
    for (name, venue, kind) in signed {
        let (value, _) = fresh(&k, &format!("{name}/{kind}")).await;
        assert!(sim.handle.is_live(&value), "{venue}");
        let requests: Vec<_> = sim.handle.requests().into_iter().filter(|r| r.venue == venue).collect();
        let skewed = requests.iter().position(|r| r.status == Some(400));
        let synced = requests.iter().position(|r| r.method == "GET" && r.status == Some(200));
        assert!(skewed.is_some() && skewed < synced, "{venue}: {requests:?}");
    }
    cancel.cancel();
    k.join().await;

    // Each venue's client, at its time endpoint, learns the exchange's offset.
    let binance = format!(
        "[[accounts]]\nname = \"bn\"\nvenue = \"binance\"\nbase_url = \"{url}\"\napi_key = \"bn-key\"\n[[accounts.streams]]\nkind = \"usdm-futures\"\n"
    );
    let text = [
        binance,
        account(&url, "us", "binance-us", &["spot"]),
        account(&url, "mm", "mexc", &["spot"]),
        account(&url, "bx", "bingx", &["perpetual"]),
        account(&url, "as", "aster", &["futures"]),
        account(&url, "tb", "toobit", &["futures"]),
        account(&url, "hk", "hashkey", &["account"]),
        account(&url, "woo", "woox", &["account"]),
    ]
    .join("\n");
    let config = Config::from_toml(&text, HashMap::new()).unwrap();
    let hosts = std::sync::Arc::new(HostGates::default());
    for (account, stream) in config.accounts.iter().zip(&config.streams) {
        let client = Client::for_account(
            account.clone(),
            std::sync::Arc::new(listenkeyd::clock::SystemClock),
            hosts.clone(),
        )
        .unwrap();
        let offset = client
            .resync(stream.kind)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", account.venue.name));
        assert!((offset - SKEW_MS).abs() < 5_000, "{}: {offset}", account.venue.name);
    }
}

/// MEXC mints a new key on every create, at most 60 live per account. Five
/// starts of the keeper against the simulator's MEXC leave one live key: each
/// restart keeps alive the key the previous run persisted (one POST in all).
/// Keepalives failing until the keeper's value lapses (while the key lives on
/// at the exchange) make it create another, and it closes the one it replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mexc_account_holds_one_live_key_across_restarts_and_re_obtains() {
    let sim = start_sim(SimConfig {
        // Longer than the keeper's 4 s: a key it gave up on lives on.
        listen_key_ttl: Duration::from_secs(60),
        hmac_secret: Some(SECRET.to_owned()),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{TIMING}\n[state]\nfile = \"{}\"\n{}",
        dir.path().join("keys.json").display(),
        account(&sim.handle.url(), "mm", "mexc", &["spot"])
    );
    let config = Config::from_toml(&text, HashMap::new()).unwrap();
    let live = || {
        sim.handle
            .active()
            .into_iter()
            .filter(|c| c.scope == "mexc/spot")
            .count()
    };
    let posts = || {
        sim.handle
            .requests()
            .into_iter()
            .filter(|r| r.venue == "mexc" && r.method == "POST")
            .count()
    };
    let mut first = None;
    for run in 0..5 {
        let cancel = CancellationToken::new();
        let k = Keeper::start_with(&config, Options::default(), cancel.clone()).unwrap();
        let rx = k.subscribe("mm/spot").unwrap();
        // Fresh, and confirmed by this run (a keepalive or a create).
        let (value, _) = eventually(Duration::from_secs(5), "mm/spot fresh", || {
            let s = rx.borrow().clone();
            let h = s.held.as_ref()?;
            (s.status == Status::Fresh && s.next_at.is_some()).then(|| (h.value.clone(), h.generation))
        })
        .await;
        let first = first.get_or_insert(value.clone());
        assert_eq!(&value, first, "run {run}: the persisted key is kept");
        assert_eq!(live(), 1, "run {run}");
        cancel.cancel();
        k.join().await;
    }
    assert_eq!(posts(), 1, "only the first start creates");

    // Keepalives refused until the keeper's 4 s value lapses: it creates a new
    // key, then closes the old one, still alive at the exchange.
    let cancel = CancellationToken::new();
    let k = Keeper::start_with(&config, Options::default(), cancel.clone()).unwrap();
    let rx = k.subscribe("mm/spot").unwrap();
    eventually(Duration::from_secs(5), "mm/spot fresh", || {
        (rx.borrow().status == Status::Fresh).then_some(())
    })
    .await;
    sim.handle.add_fault(Fault::parse("PUT /mexc/ status=503").unwrap());
    let old = first.unwrap();
    let new = eventually(Duration::from_secs(10), "a new key", || {
        let s = rx.borrow().clone();
        let h = s.held.as_ref()?;
        (h.value != old && s.status == Status::Fresh).then(|| h.value.clone())
    })
    .await;
    sim.handle.clear_faults();
    eventually(Duration::from_secs(5), "the replaced key closed", || {
        (!sim.handle.is_live(&old)).then_some(())
    })
    .await;
    assert!(sim.handle.is_live(&new));
    eventually(Duration::from_secs(5), "one live key", || (live() == 1).then_some(())).await;
    let deletes = sim
        .handle
        .requests()
        .into_iter()
        .filter(|r| r.venue == "mexc" && r.method == "DELETE" && r.status == Some(200))
        .count();
    assert!(deletes >= 1, "the replaced key was closed, not left to lapse");
    cancel.cancel();
    k.join().await;
}

/// Toobit's spot and futures streams of one account, and BingX's spot,
/// perpetual and coin-M streams, share one key upstream: each group is one
/// credential. One stream creates and keeps it alive, the value is published
/// under every id of the group, a key dropped at the exchange is replaced for
/// all of them, and on exit it is closed once (Toobit's USDC-M key, its own,
/// once too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinds_sharing_one_key_upstream_are_one_credential() {
    let sim = start_sim(SimConfig {
        listen_key_ttl: Duration::from_secs(4),
        hmac_secret: Some(SECRET.to_owned()),
        ..SimConfig::default()
    })
    .await;
    let url = sim.handle.url();
    // Each account closes its keys on exit.
    let closing = |name: &str, venue: &str, kinds: &[&str]| {
        account(&url, name, venue, kinds).replacen(
            "[[accounts.streams]]",
            "close_on_exit = true\n[[accounts.streams]]",
            1,
        )
    };
    let text = [
        TIMING.to_owned(),
        closing("tb", "toobit", &["spot", "futures", "usdc-futures"]),
        closing("bx", "bingx", &["spot", "perpetual", "coinm-futures"]),
    ]
    .join("\n");
    let (k, cancel) = start(&text);
    let groups: [&[&str]; 2] = [
        &["tb/spot", "tb/futures"],
        &["bx/spot", "bx/perpetual", "bx/coinm-futures"],
    ];
    let mut shared = Vec::new();
    for group in groups {
        let mut values = Vec::new();
        for id in group {
            values.push(fresh(&k, id).await.0);
        }
        assert!(values.windows(2).all(|w| w[0] == w[1]), "{group:?}: {values:?}");
        assert!(sim.handle.is_live(&values[0]));
        shared.push(values[0].clone());
    }
    let (usdc, _) = fresh(&k, "tb/usdc-futures").await;
    assert_ne!(usdc, shared[0], "USDC-M has its own key");

    // Three keepalive periods: one keepalive a period per key, not one per stream.
    sim.handle.clear_requests();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let requests = sim.handle.requests();
    let puts = |venue: &str, path: &str| {
        requests
            .iter()
            .filter(|r| {
                r.venue == venue && r.method == "PUT" && r.path.ends_with(path) && !r.params.contains_key("category")
            })
            .count()
    };
    assert!((2..=4).contains(&puts("bingx", "userDataStream")), "{requests:?}");
    assert!(
        (2..=4).contains(&puts("toobit", "/api/v1/userDataStream")),
        "{requests:?}"
    );
    assert_eq!(
        puts("toobit", "/api/v1/listenKey"),
        0,
        "the futures stream calls nothing"
    );
    assert!(requests.iter().all(|r| r.method != "DELETE"), "{requests:?}");

    // The shared key dropped at the exchange: a new one for the whole group.
    let rx: Vec<_> = groups[1].iter().map(|id| k.subscribe(id).unwrap()).collect();
    let before: Vec<u64> = rx
        .iter()
        .map(|r| r.borrow().held.as_ref().unwrap().generation)
        .collect();
    assert!(sim.handle.revoke_value(&shared[1]));
    let new = eventually(Duration::from_secs(5), "the BingX group's new key", || {
        let states: Vec<_> = rx.iter().map(|r| r.borrow().clone()).collect();
        let values: Vec<_> = states
            .iter()
            .zip(&before)
            .filter(|(s, g)| s.status == Status::Fresh && s.held.as_ref().is_some_and(|h| h.generation > **g))
            .map(|(s, _)| s.held.as_ref().unwrap().value.clone())
            .collect();
        (values.len() == states.len() && values.windows(2).all(|w| w[0] == w[1])).then(|| values[0].clone())
    })
    .await;
    assert_ne!(new, shared[1]);
    assert!(sim.handle.is_live(&new));

    // On exit each key is closed once.
    sim.handle.clear_requests();
    cancel.cancel();
    k.join().await;
    let deletes: Vec<_> = sim
        .handle
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| (r.venue, r.path, r.params.contains_key("category")))
        .collect();
    assert_eq!(deletes.len(), 3, "{deletes:?}");
    assert!(sim.handle.active().is_empty(), "{:?}", sim.handle.active());
}
