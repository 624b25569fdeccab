//! The Redis publisher against a real `redis-server` and the real binary:
//! every stream lands at `{prefix}:stream:{id}` as the state file's JSON with
//! a TTL at its expiry, each rotation is announced on `{prefix}:events`, a
//! restarted Redis holds the values again within seconds, and a Redis that
//! does not answer delays nothing local. The lease's fencing script is checked
//! against the same server.

mod common;

use std::time::Duration;

use common::redis_server::RedisServer;
use common::{Setup, eventually, read_state, setup, sim_with_ttl, spawn_daemon};
use futures_util::StreamExt;

/// Fast rotation: 3 s keys kept alive every second, 2 s tokens re-minted 1 s ahead.
const FAST: &str = "[timing]\nkeepalive_interval = \"1s\"\nlisten_key_validity = \"3s\"\ntoken_validity = \"2s\"\ntoken_renew_before = \"1s\"\njitter = 0.1\n";

const STREAMS: &str = "[[streams]]\nkind = \"usdm-futures\"\n\n[[streams]]\nkind = \"isolated-margin\"\nsymbols = [\"BTCUSDT\"]\ncredential = \"listen-token\"\n";

const IDS: [&str; 2] = ["usdm-futures", "isolated-margin:BTCUSDT"];

fn config(sim_url: &str, redis: &RedisServer, prefix: &str) -> Setup {
    setup(
        sim_url,
        &format!("{FAST}\n{STREAMS}\n[redis]\nurl = \"{}\"\nprefix = \"{prefix}\"\n", redis.url()),
    )
}

/// Whether Redis holds, for every stream, exactly the state file's JSON with
/// a TTL ending at its `expires_at`.
fn redis_matches_state_file(redis: &RedisServer, s: &Setup, prefix: &str) -> bool {
    let Some(doc) = read_state(&s.state) else { return false };
    IDS.iter().all(|id| {
        let Some(entry) = doc.streams.get(*id) else { return false };
        let key = format!("{prefix}:stream:{id}");
        let Some(text) = redis.get(&key) else { return false };
        let stored: serde_json::Value = serde_json::from_str(&text).expect("Redis holds JSON");
        let expires_ms = listenkeyd::clock::epoch_ms(entry.expires().unwrap());
        stored == serde_json::to_value(entry).unwrap() && redis.expire_time_ms(&key) == expires_ms
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_and_ttls_land_and_every_rotation_is_announced() {
    let Some(redis) = RedisServer::start("values_and_ttls_land_and_every_rotation_is_announced") else {
        return;
    };
    let sim = sim_with_ttl(Duration::from_secs(3)).await;
    let s = config(&sim.handle.url(), &redis, "lk1");
    let client = redis::Client::open(redis.url()).unwrap();
    let mut events = client.get_async_pubsub().await.unwrap();
    events.subscribe("lk1:events").await.unwrap();
    let mut daemon = spawn_daemon(&s);
    eventually(Duration::from_secs(5), "Redis to hold the state file's JSON with its expiry", || {
        redis_matches_state_file(&redis, &s, "lk1").then_some(())
    })
    .await;
    // Rotations: the token is re-minted every second or so; each new
    // generation is announced with the stream and its generation.
    let mut seen = std::collections::BTreeSet::new();
    let mut messages = events.on_message();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    while seen.len() < 3 {
        let msg = tokio::time::timeout_at(deadline, messages.next())
            .await
            .expect("three token generations announced within 6 s")
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&msg.get_payload::<String>().unwrap()).unwrap();
        let stream = v["stream"].as_str().unwrap().to_owned();
        assert!(IDS.contains(&stream.as_str()), "{v}");
        let generation = v["generation"].as_u64().expect("a generation");
        if stream == "isolated-margin:BTCUSDT" {
            seen.insert(generation);
            // The value is in Redis before its announcement.
            let key = "lk1:stream:isolated-margin:BTCUSDT";
            let stored: serde_json::Value = serde_json::from_str(&redis.get(key).unwrap()).unwrap();
            assert!(stored["generation"].as_u64().unwrap() >= generation);
        }
    }
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)).0, Some(0));
    common::assert_no_secrets(&daemon.log_text(), &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_holds_the_values_again_within_seconds() {
    let Some(mut redis) = RedisServer::start("a_restarted_redis_holds_the_values_again_within_seconds") else {
        return;
    };
    let sim = sim_with_ttl(Duration::from_secs(3)).await;
    let s = config(&sim.handle.url(), &redis, "lk2");
    let _daemon = spawn_daemon(&s);
    eventually(Duration::from_secs(5), "Redis to hold every stream", || {
        redis_matches_state_file(&redis, &s, "lk2").then_some(())
    })
    .await;
    redis.restart();
    assert!(redis.get("lk2:stream:usdm-futures").is_none(), "a restarted Redis starts empty");
    eventually(Duration::from_secs(4), "the values to be written again", || {
        redis_matches_state_file(&redis, &s, "lk2").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_does_not_answer_delays_nothing_local() {
    let Some(redis) = RedisServer::start("a_redis_that_does_not_answer_delays_nothing_local") else {
        return;
    };
    // Stopped, the server still accepts connections (the kernel does) but
    // never answers: every call can only end by its timeout.
    redis.signal("STOP");
    let sim = sim_with_ttl(Duration::from_secs(3)).await;
    let s = config(&sim.handle.url(), &redis, "lk3");
    let started = std::time::Instant::now();
    let _daemon = spawn_daemon(&s);
    let first = eventually(Duration::from_secs(3), "the state file", || {
        let doc = read_state(&s.state)?;
        IDS.iter().all(|id| doc.streams.contains_key(*id)).then_some(doc)
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    // Rotations go on locally while Redis stays silent.
    let g0 = first.streams["isolated-margin:BTCUSDT"].generation;
    eventually(Duration::from_secs(4), "two more token generations in the state file", || {
        let doc = read_state(&s.state)?;
        (doc.streams["isolated-margin:BTCUSDT"].generation >= g0 + 2).then_some(())
    })
    .await;
    redis.signal("CONT");
    eventually(Duration::from_secs(8), "Redis to catch up once it answers", || {
        redis_matches_state_file(&redis, &s, "lk3").then_some(())
    })
    .await;
}
