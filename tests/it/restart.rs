//! Restarts of the real binary against the simulator (Binance as it is today):
//! a listen token that still has hours left, minted with the same API key for
//! the same stream, survives a restart untouched (same value, same generation,
//! no mint request), while one minted with another API key is re-minted.

use std::time::Duration;

use crate::common::{API_KEY, Setup, eventually, read_state, setup, spawn_daemon, start_sim, wait_published};
use listenkeyd::secret::fingerprint;
use listenkeyd::state::{Document, Status};
use listenkeyd_sim::SimConfig;

/// Tokens of six hours, renewed one hour ahead: hours left after a restart.
const STREAMS: &str = "[timing]\nkeepalive_interval = \"10s\"\nlisten_key_validity = \"30s\"\ntoken_validity = \"6h\"\ntoken_renew_before = \"1h\"\n\n[[streams]]\nkind = \"cross-margin\"\n\n[[streams]]\nkind = \"isolated-margin\"\nsymbols = [\"BTCUSDT\"]\n\n[[streams]]\nkind = \"usdm-futures\"\n";

const TOKENS: [&str; 2] = ["cross-margin", "isolated-margin:BTCUSDT"];
const IDS: [&str; 3] = ["cross-margin", "isolated-margin:BTCUSDT", "usdm-futures"];

/// Runs the daemon until every stream is published, stops it, and returns the state file.
async fn first_run(s: &Setup) -> Document {
    let mut d = spawn_daemon(s);
    wait_published(&s.state, &IDS, Duration::from_secs(5)).await;
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(3)).0, Some(0));
    read_state(&s.state).unwrap()
}

/// Waits until a restarted daemon has confirmed the USD-M key (its POST comes at start-up).
async fn restarted(s: &Setup, before: &Document) -> Document {
    eventually(Duration::from_secs(5), "the restart published", || {
        read_state(&s.state).filter(|doc| {
            let usdm = &doc.streams["usdm-futures"];
            usdm.status == Status::Fresh && usdm.refreshed_at > before.updated_at
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_with_hours_left_survive_a_restart() {
    let sim = start_sim(SimConfig::default()).await;
    let s = setup(&sim.handle.url(), STREAMS);
    let before = first_run(&s).await;
    let file = std::fs::read_to_string(&s.state).unwrap();
    assert!(!file.contains(API_KEY), "never the API key itself");
    for id in TOKENS {
        assert_eq!(
            before.streams[id].api_key_fp.as_deref(),
            Some(fingerprint(API_KEY).as_str())
        );
    }
    sim.handle.clear_requests();

    let mut d = spawn_daemon(&s);
    let after = restarted(&s, &before).await;
    eventually(Duration::from_secs(5), "both tokens kept", || {
        (d.log_text().matches("kept the token from the previous run").count() == 2).then_some(())
    })
    .await;
    for id in TOKENS {
        let (b, a) = (&before.streams[id], &after.streams[id]);
        assert_eq!(a.value, b.value, "{id}: the same token");
        assert_eq!(a.generation, b.generation, "{id}: no new generation");
        assert_eq!((&a.obtained_at, &a.expires_at), (&b.obtained_at, &b.expires_at), "{id}");
        assert_eq!(a.status, Status::Fresh, "{id}");
    }
    let reqs = crate::common::calls(&sim.handle);
    assert!(
        reqs.iter().all(|r| r.path != "/sapi/v1/userListenToken"),
        "no mint request: {reqs:?}"
    );
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(3)).0, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_minted_with_another_api_key_is_reminted() {
    let sim = start_sim(SimConfig::default()).await;
    let s = setup(&sim.handle.url(), STREAMS);
    let before = first_run(&s).await;
    let other = "another-api-key-0c9d8e7f6a5b4c3d2e1f";
    let text = std::fs::read_to_string(&s.config).unwrap().replace(API_KEY, other);
    std::fs::write(&s.config, text).unwrap();
    sim.handle.clear_requests();

    let mut d = spawn_daemon(&s);
    let after = eventually(Duration::from_secs(5), "both tokens re-minted", || {
        read_state(&s.state).filter(|doc| {
            TOKENS.iter().all(|id| {
                doc.streams[*id].value != before.streams[*id].value && doc.streams[*id].status == Status::Fresh
            })
        })
    })
    .await;
    for id in TOKENS {
        assert_eq!(after.streams[id].generation, before.streams[id].generation + 1, "{id}");
        assert_eq!(
            after.streams[id].api_key_fp.as_deref(),
            Some(fingerprint(other).as_str())
        );
    }
    let mints: Vec<_> = crate::common::calls(&sim.handle)
        .into_iter()
        .filter(|r| r.path == "/sapi/v1/userListenToken")
        .collect();
    assert_eq!(mints.len(), 2, "{mints:?}");
    assert!(
        mints
            .iter()
            .all(|r| r.api_key_fingerprint.as_deref() == Some(fingerprint(other).as_str()))
    );
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(3)).0, Some(0));
}
