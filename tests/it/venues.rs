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
        "toobit/futures",
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
    ]
    .join("\n");
    let (k, cancel) = start(&text);
    for id in ["mm/spot", "woo/account"] {
        let rx = k.subscribe(id).unwrap();
        let s = eventually(Duration::from_secs(5), id, || {
            let s = rx.borrow().clone();
            (s.status == Status::Failed && s.started()).then_some(s)
        })
        .await;
        let error = s.last_error.unwrap_or_default();
        assert!(error.contains("auth"), "{id}: {error}");
        assert!(
            !["not-the-secret", "mm-key", "woo-key"]
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
    cancel.cancel();
    k.join().await;
}
