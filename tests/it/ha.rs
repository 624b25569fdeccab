//! Replicas sharing one configuration through a lease in Redis, with real
//! parts only: the binary, the simulator, a real `redis-server`, real signals.
//!
//! Two replicas keep a USD-M listen key and an isolated-margin listen token.
//! A monitor samples, every 50 ms, what Redis holds and asks the simulator
//! whether each value is live: no listen key may expire and no token lapse
//! while replicas are killed (SIGKILL), paused past their lease (SIGSTOP) or
//! cut off from Redis. The simulator's request log counts the token mints.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::redis_server::RedisServer;
use crate::common::{self, Daemon, Setup, Sim, eventually, read_state, setup, sim_with_ttl, spawn_daemon};
use listenkeyd::state::Entry;

/// 4 s keys kept alive every 1.5 s; 4 s tokens re-minted 1.5 s ahead (one
/// mint every 2.35 s or more); a 1 s lease renewed every 333 ms.
const TIMING: &str = "[timing]\nkeepalive_interval = \"1500ms\"\nlisten_key_validity = \"4s\"\ntoken_validity = \"4s\"\ntoken_renew_before = \"1500ms\"\njitter = 0.1\n";

const STREAMS: &str = "[[streams]]\nkind = \"usdm-futures\"\n\n[[streams]]\nkind = \"isolated-margin\"\nsymbols = [\"BTCUSDT\"]\ncredential = \"listen-token\"\n";

const KEY: &str = "usdm-futures";
const TOKEN: &str = "isolated-margin:BTCUSDT";

/// The shortest gap between two mints of one keeper: 4 s less 1.5 s × 1.1,
/// less slack for the requests themselves.
const MIN_MINT_GAP_MS: i64 = 2_000;

struct Replicas {
    redis: RedisServer,
    sim: Sim,
    prefix: String,
    setups: Vec<Setup>,
    daemons: Vec<Option<Daemon>>,
    /// Each replica's API address.
    apis: Vec<String>,
}

impl Replicas {
    async fn start(test: &str, prefix: &str) -> Option<Replicas> {
        let redis = RedisServer::start(test)?;
        let urls = [redis.url(), redis.url()];
        Replicas::start_with(redis, urls, prefix).await
    }

    /// Two replicas, each reaching Redis at its own URL.
    async fn start_with(redis: RedisServer, urls: [String; 2], prefix: &str) -> Option<Replicas> {
        let sim = sim_with_ttl(Duration::from_secs(4)).await;
        let apis: Vec<String> = (0..2).map(|_| format!("127.0.0.1:{}", common::free_port())).collect();
        let setups: Vec<Setup> = apis
            .iter()
            .zip(&urls)
            .map(|(api, url)| {
                let body = format!(
                    "{TIMING}\n{STREAMS}\n[redis]\nurl = \"{url}\"\nprefix = \"{prefix}\"\n\n[ha]\nmode = \"lease\"\nlease_ttl = \"1s\"\n\n[api]\nlisten = \"{api}\"\n"
                );
                setup(&sim.handle.url(), &body)
            })
            .collect();
        let daemons = setups.iter().map(|s| Some(spawn_daemon(s))).collect();
        Some(Replicas {
            redis,
            sim,
            apis,
            prefix: prefix.to_owned(),
            setups,
            daemons,
        })
    }

    /// What Redis holds for `id`.
    fn stored(&self, id: &str) -> Option<Entry> {
        let text = self.redis.get(&format!("{}:stream:{id}", self.prefix))?;
        Some(serde_json::from_str(&text).expect("Redis holds the state file's JSON"))
    }

    /// The index of the replica holding the lease, read from the lease key.
    fn holder(&self) -> Option<usize> {
        let name = self.redis.get(&format!("{}:lease:default", self.prefix))?;
        let pid: u32 = name.split(':').nth(1)?.parse().ok()?;
        self.daemons
            .iter()
            .position(|d| d.as_ref().is_some_and(|d| d.child.id() == pid))
    }

    /// The fencing counter.
    fn fence(&self) -> u64 {
        self.redis
            .get(&format!("{}:fence:default", self.prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Whether replica `i` serves (in its state file) the values Redis holds.
    fn serves_redis(&self, i: usize) -> bool {
        let Some(doc) = read_state(&self.setups[i].state) else {
            return false;
        };
        [KEY, TOKEN]
            .iter()
            .all(|id| match (doc.streams.get(*id), self.stored(id)) {
                (Some(local), Some(remote)) => local.value == remote.value,
                _ => false,
            })
    }

    /// SIGKILLs replica `i`.
    fn kill(&mut self, i: usize) {
        let mut d = self.daemons[i].take().expect("running");
        d.child.kill().unwrap();
        d.child.wait().unwrap();
    }

    /// Successful token mints at the simulator, in order, as ms since the epoch.
    fn mints(&self) -> Vec<i64> {
        crate::common::calls(&self.sim.handle)
            .iter()
            .filter(|r| r.method == "POST" && r.path == listenkeyd::exchange::endpoints::LISTEN_TOKEN_PATH)
            .filter(|r| r.status == Some(200))
            .map(|r| r.at_ms)
            .collect()
    }
}

/// Samples what Redis holds every 50 ms and records each moment a stream is
/// missing from Redis or holds a value the exchange no longer knows, and each
/// generation that goes back.
struct Monitor {
    stop: Arc<std::sync::atomic::AtomicBool>,
    violations: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Monitor {
    fn start(r: &Replicas) -> Monitor {
        Monitor::watch(r.redis.url(), r.prefix.clone(), r.sim.handle.clone(), &[KEY, TOKEN])
    }

    /// Watches `ids` under `prefix` in the Redis at `url`, against `sim`.
    fn watch(url: String, prefix: String, sim: listenkeyd_sim::SimHandle, ids: &[&str]) -> Monitor {
        let ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let (stop2, v2) = (stop.clone(), violations.clone());
        let thread = std::thread::spawn(move || {
            let client = redis::Client::open(url).unwrap();
            let mut conn = client.get_connection().unwrap();
            let mut last_gen = std::collections::HashMap::new();
            let start = Instant::now();
            while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                for id in &ids {
                    let id = id.as_str();
                    let text: Option<String> = redis::cmd("GET")
                        .arg(format!("{prefix}:stream:{id}"))
                        .query(&mut conn)
                        .unwrap_or(None);
                    let at = start.elapsed();
                    let Some(text) = text else {
                        v2.lock().unwrap().push(format!("{at:?}: {id} missing from Redis"));
                        continue;
                    };
                    let e: Entry = serde_json::from_str(&text).unwrap();
                    if !sim.is_live(&e.value) {
                        v2.lock().unwrap().push(format!(
                            "{at:?}: {id} generation {} not live at the exchange",
                            e.generation
                        ));
                    }
                    let g = last_gen.entry(id.to_owned()).or_insert(e.generation);
                    if e.generation < *g {
                        v2.lock()
                            .unwrap()
                            .push(format!("{at:?}: {id} generation went back to {}", e.generation));
                    }
                    *g = e.generation.max(*g);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Monitor {
            stop,
            violations,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        self.violations.lock().unwrap().clone()
    }
}

/// Asserts that no two token mints came closer than one keeper's schedule allows.
fn assert_one_minter(mints: &[i64]) {
    for w in mints.windows(2) {
        assert!(
            w[1] - w[0] >= MIN_MINT_GAP_MS,
            "two mints {} ms apart: replicas minted at once ({mints:?})",
            w[1] - w[0]
        );
    }
}

/// Waits until both replicas serve Redis's values and one holds the lease.
/// The deadline covers two daemons starting while the rest of the suite runs
/// beside them on two cores; a settled pair meets it in about a second.
async fn settled(r: &Replicas, replicas: &[usize]) -> usize {
    eventually(
        Duration::from_secs(15),
        "one holder, every replica serving Redis's values",
        || {
            let h = r.holder()?;
            replicas.iter().all(|i| r.serves_redis(*i)).then_some(h)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_each_replica_in_turn_loses_nothing_and_one_mints() {
    let Some(mut r) = Replicas::start("killing_each_replica_in_turn_loses_nothing_and_one_mints", "ha1").await else {
        return;
    };
    // Every announcement on the events channel, from the start.
    let client = redis::Client::open(r.redis.url()).unwrap();
    let mut events = client.get_async_pubsub().await.unwrap();
    events.subscribe("ha1:events").await.unwrap();
    let first = settled(&r, &[0, 1]).await;
    // Redis holds each stream as the holder's state file has it, with its TTL at the expiry.
    eventually(
        Duration::from_secs(3),
        "Redis to hold the holder's JSON with its expiry",
        || {
            let doc = read_state(&r.setups[first].state)?;
            [KEY, TOKEN]
                .iter()
                .all(|id| {
                    let key = format!("ha1:stream:{id}");
                    let stored: Option<serde_json::Value> =
                        r.redis.get(&key).and_then(|t| serde_json::from_str(&t).ok());
                    let local = doc.streams.get(*id);
                    local.is_some_and(|e| {
                        stored == serde_json::to_value(e).ok()
                            && r.redis.expire_time_ms(&key) == listenkeyd::clock::epoch_ms(e.expires().unwrap())
                    })
                })
                .then_some(())
        },
    )
    .await;
    let key = r.stored(KEY).unwrap().value;
    let monitor = Monitor::start(&r);

    // SIGKILL the holder: the other takes over from what Redis holds.
    let killed = Instant::now();
    r.kill(first);
    let other = 1 - first;
    let refreshed_before = r.stored(KEY).unwrap().refreshed_at;
    eventually(
        Duration::from_secs(5),
        "the other replica to take over and refresh",
        || (r.holder() == Some(other) && r.stored(KEY)?.refreshed_at != refreshed_before).then_some(()),
    )
    .await;
    let takeover = killed.elapsed();

    // The first comes back as a standby, then the new holder is killed too.
    r.daemons[first] = Some(spawn_daemon(&r.setups[first]));
    assert_eq!(settled(&r, &[first, other]).await, other);
    let refreshed_before = r.stored(KEY).unwrap().refreshed_at;
    r.kill(other);
    eventually(Duration::from_secs(5), "the restarted replica to take over", || {
        (r.holder() == Some(first) && r.stored(KEY)?.refreshed_at != refreshed_before).then_some(())
    })
    .await;
    // And it goes on minting on schedule.
    let g = r.stored(TOKEN).unwrap().generation;
    eventually(Duration::from_secs(5), "the next token", || {
        (r.stored(TOKEN)?.generation > g).then_some(())
    })
    .await;

    let violations = monitor.finish();
    assert!(violations.is_empty(), "{violations:#?}");
    assert_eq!(
        r.stored(KEY).unwrap().value,
        key,
        "the listen key was re-fetched, never replaced"
    );
    // Every token generation Redis held was announced, in order.
    let last = r.stored(TOKEN).unwrap().generation;
    let mut announced = std::collections::BTreeSet::new();
    let mut messages = events.on_message();
    while announced.last() != Some(&last) {
        let m = tokio::time::timeout(Duration::from_secs(2), futures_util::StreamExt::next(&mut messages))
            .await
            .expect("announcements up to the last generation")
            .unwrap();
        let e: serde_json::Value = serde_json::from_str(&m.get_payload::<String>().unwrap()).unwrap();
        if e["stream"] == TOKEN {
            announced.insert(e["generation"].as_u64().unwrap());
        }
    }
    let first_seen = *announced.first().unwrap();
    assert_eq!(
        announced.into_iter().collect::<Vec<_>>(),
        (first_seen..=last).collect::<Vec<_>>(),
        "a rotation was not announced"
    );
    assert_one_minter(&r.mints());
    eprintln!("takeover after SIGKILL: {takeover:?}; mints: {}", r.mints().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_paused_past_its_lease_wakes_as_a_standby_and_is_fenced_off() {
    let Some(r) = Replicas::start(
        "a_holder_paused_past_its_lease_wakes_as_a_standby_and_is_fenced_off",
        "ha2",
    )
    .await
    else {
        return;
    };
    let paused = settled(&r, &[0, 1]).await;
    let other = 1 - paused;
    let monitor = Monitor::start(&r);
    let fence_before = r.fence();
    r.daemons[paused].as_ref().unwrap().signal("STOP");
    let refreshed_before = r.stored(KEY).unwrap().refreshed_at;
    eventually(
        Duration::from_secs(5),
        "the other replica to take the lease and write",
        || (r.holder() == Some(other) && r.stored(KEY)?.refreshed_at != refreshed_before).then_some(()),
    )
    .await;
    let fence = r.fence();
    assert!(fence > fence_before, "a new acquisition bumps the fencing counter");
    let log_before = r.daemons[paused].as_ref().unwrap().log_text().len();
    r.daemons[paused].as_ref().unwrap().signal("CONT");

    // Awake, it learns it lost the lease and serves the holder's values.
    eventually(Duration::from_secs(5), "the woken replica to stand by", || {
        let log = r.daemons[paused].as_ref().unwrap().log_text();
        log[log_before..].contains("lost the lease").then_some(())
    })
    .await;
    let g = r.stored(TOKEN).unwrap().generation;
    eventually(Duration::from_secs(5), "the next token, served by both", || {
        (r.stored(TOKEN)?.generation > g && r.serves_redis(paused)).then_some(())
    })
    .await;
    assert_eq!(r.holder(), Some(other));
    assert_eq!(r.fence(), fence, "the woken replica never took the lease back");
    // Nothing it did after waking reached the exchange.
    let log = r.daemons[paused].as_ref().unwrap().log_text();
    let late = &log[log_before..];
    for line in late.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        if v["target"] == "listenkeyd::scheduler" {
            let m = v["message"].as_str().unwrap_or_default();
            assert!(
                m != "refreshed" && m != "new credential published",
                "called after waking: {line}"
            );
        }
    }
    let violations = monitor.finish();
    assert!(violations.is_empty(), "{violations:#?}");
    assert_one_minter(&r.mints());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_replica_keeps_its_accounts_and_returns_to_the_lease() {
    let Some(mut r) = Replicas::start(
        "without_redis_each_replica_keeps_its_accounts_and_returns_to_the_lease",
        "ha3",
    )
    .await
    else {
        return;
    };
    settled(&r, &[0, 1]).await;
    r.redis.stop();
    // Each says so loudly, and keeps the streams alive at the exchange.
    eventually(Duration::from_secs(5), "both replicas to go on alone", || {
        r.daemons
            .iter()
            .all(|d| d.as_ref().unwrap().log_text().contains("Redis unreachable"))
            .then_some(())
    })
    .await;
    // /readyz stays ready (the values are kept) and says why, as does the metric.
    for api in &r.apis {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let ready = reqwest::get(format!("http://{api}/readyz")).await.unwrap();
            let (code, body) = (ready.status().as_u16(), ready.text().await.unwrap());
            let metrics = reqwest::get(format!("http://{api}/metrics"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if body.contains("\"default\":\"alone\"")
                && metrics.contains("listenkeyd_ha_role{account=\"default\",role=\"alone\"} 1")
            {
                assert_eq!(code, 200, "{body}");
                assert!(body.contains("Redis unreachable"), "{body}");
                break;
            }
            assert!(Instant::now() < deadline, "{api}: not reported alone: {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let status = common::run_cli(&["status", "--config", r.setups[0].config.to_str().unwrap()]);
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(
        shown.contains("replica: account default: alone")
            && shown.contains("warning: account default: Redis unreachable"),
        "{shown}"
    );
    let g = read_state(&r.setups[0].state).unwrap().streams[TOKEN].generation;
    eventually(Duration::from_secs(6), "a token minted without Redis", || {
        let doc0 = read_state(&r.setups[0].state)?;
        let doc1 = read_state(&r.setups[1].state)?;
        let live = [&doc0, &doc1].iter().all(|d| {
            [KEY, TOKEN]
                .iter()
                .all(|id| r.sim.handle.is_live(&d.streams[*id].value))
        });
        assert!(live, "a replica published a value the exchange does not know");
        (doc0.streams[TOKEN].generation > g).then_some(())
    })
    .await;
    r.redis.restart();
    let holder = settled(&r, &[0, 1]).await;
    assert!(r.daemons[holder].is_some());
    let _ = &mut r;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_from_redis_keeps_its_streams_and_rejoins_as_a_standby() {
    let test = "a_replica_cut_off_from_redis_keeps_its_streams_and_rejoins_as_a_standby";
    let Some(redis) = RedisServer::start(test) else { return };
    let relay = common::redis_server::Relay::start(format!("127.0.0.1:{}", redis.port).parse().unwrap()).await;
    let urls = [redis.url(), format!("redis://{}/0", relay.addr)];
    let r = Replicas::start_with(redis, urls, "ha4").await.unwrap();
    settled(&r, &[0, 1]).await;
    let monitor = Monitor::start(&r);
    // Replica 1 loses Redis; replica 0 still reaches it.
    relay.cut();
    eventually(Duration::from_secs(5), "replica 0 holding, replica 1 alone", || {
        let alone = r.daemons[1].as_ref().unwrap().log_text().contains("Redis unreachable");
        (alone && r.holder() == Some(0)).then_some(())
    })
    .await;
    // Alone, replica 1 keeps its own values live at the exchange.
    let g = read_state(&r.setups[1].state).unwrap().streams[TOKEN].generation;
    eventually(Duration::from_secs(6), "replica 1 to rotate its token alone", || {
        let doc = read_state(&r.setups[1].state)?;
        for id in [KEY, TOKEN] {
            assert!(
                r.sim.handle.is_live(&doc.streams[id].value),
                "replica 1 published a dead {id}"
            );
        }
        (doc.streams[TOKEN].generation > g).then_some(())
    })
    .await;
    relay.mend();
    eventually(
        Duration::from_secs(5),
        "replica 1 back as a standby serving the holder's values",
        || {
            let log = r.daemons[1].as_ref().unwrap().log_text();
            (log.contains("Redis reachable again") && r.holder() == Some(0) && r.serves_redis(1)).then_some(())
        },
    )
    .await;
    let violations = monitor.finish();
    assert!(violations.is_empty(), "{violations:#?}");
    // Generations never went back in replica 1's file across the switch.
    let doc = read_state(&r.setups[1].state).unwrap();
    assert!(doc.streams[TOKEN].generation > g);
}

const MAIN_KEY: &str = "main-api-key-0a1b2c3d4e5f60718293";
const DESK_KEY: &str = "desk-api-key-1122334455667788aabb";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_account_has_its_own_lease_and_a_killed_holder_hands_over_all_of_them() {
    let test = "each_account_has_its_own_lease_and_a_killed_holder_hands_over_all_of_them";
    let Some(redis) = RedisServer::start(test) else { return };
    let sim = common::start_sim(listenkeyd_sim::SimConfig {
        listen_key_ttl: Duration::from_secs(4),
        api_keys: [MAIN_KEY, DESK_KEY].map(str::to_owned).to_vec(),
        ..listenkeyd_sim::SimConfig::default()
    })
    .await;
    let url = sim.handle.url();
    let accounts = format!(
        "[[accounts]]\nname = \"main\"\nvenue = \"binance\"\nbase_url = \"{url}\"\napi_key = \"{MAIN_KEY}\"\n\n[[accounts.streams]]\nkind = \"usdm-futures\"\n\n[[accounts.streams]]\nkind = \"isolated-margin\"\nsymbols = [\"BTCUSDT\"]\n\n[[accounts]]\nname = \"desk2\"\nvenue = \"binance\"\nbase_url = \"{url}\"\napi_key = \"{DESK_KEY}\"\n\n[[accounts.streams]]\nkind = \"usdm-futures\"\n"
    );
    let ids = [
        "main/usdm-futures",
        "main/isolated-margin:BTCUSDT",
        "desk2/usdm-futures",
    ];
    let mut setups = Vec::new();
    let mut daemons = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("keys.json");
        let config = dir.path().join("listenkeyd.toml");
        let text = format!(
            "[binance]\nrequest_timeout = \"2s\"\n\n{accounts}\n{TIMING}\n[state]\nfile = \"{}\"\n\n[log]\nformat = \"json\"\nlevel = \"debug\"\n\n[redis]\nurl = \"{}\"\nprefix = \"ha5\"\n\n[ha]\nmode = \"lease\"\nlease_ttl = \"1s\"\n",
            state.display(),
            redis.url()
        );
        std::fs::write(&config, text).unwrap();
        std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let setup = Setup { dir, config, state };
        daemons.push(Some(spawn_daemon(&setup)));
        setups.push(setup);
    }
    let holder_of = |account: &str, daemons: &[Option<Daemon>]| -> Option<usize> {
        let name = redis.get(&format!("ha5:lease:{account}"))?;
        let pid: u32 = name.split(':').nth(1)?.parse().ok()?;
        daemons
            .iter()
            .position(|d| d.as_ref().is_some_and(|d| d.child.id() == pid))
    };
    // One lease per account, and both replicas serving every stream from Redis.
    eventually(
        Duration::from_secs(8),
        "a lease per account and every stream served",
        || {
            holder_of("main", &daemons)?;
            holder_of("desk2", &daemons)?;
            let all = setups.iter().all(|s| {
                read_state(&s.state).is_some_and(|doc| {
                    ids.iter().all(|id| {
                        let stored = redis.get(&format!("ha5:stream:{id}"));
                        let stored: Option<Entry> = stored.and_then(|t| serde_json::from_str(&t).ok());
                        doc.streams
                            .get(*id)
                            .zip(stored)
                            .is_some_and(|(l, r)| l.value == r.value)
                    })
                })
            });
            all.then_some(())
        },
    )
    .await;
    let monitor = Monitor::watch(redis.url(), "ha5".into(), sim.handle.clone(), &ids);
    let killed = holder_of("main", &daemons).unwrap();
    let survivor = 1 - killed;
    let mut d = daemons[killed].take().unwrap();
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    eventually(Duration::from_secs(5), "the survivor to hold every account", || {
        (holder_of("main", &daemons) == Some(survivor) && holder_of("desk2", &daemons) == Some(survivor)).then_some(())
    })
    .await;
    // A token rotation on the survivor's watch.
    let g = redis
        .get("ha5:stream:main/isolated-margin:BTCUSDT")
        .and_then(|t| serde_json::from_str::<Entry>(&t).ok())
        .unwrap()
        .generation;
    eventually(Duration::from_secs(5), "the next token", || {
        let t = redis.get("ha5:stream:main/isolated-margin:BTCUSDT")?;
        (serde_json::from_str::<Entry>(&t).ok()?.generation > g).then_some(())
    })
    .await;
    let violations = monitor.finish();
    assert!(violations.is_empty(), "{violations:#?}");
}
