//! The Redis publisher against a real `redis-server` and the real binary:
//! every stream lands at `{prefix}:stream:{id}` as the state file's JSON with
//! a TTL at its expiry, each rotation is announced on `{prefix}:events`, a
//! restarted Redis holds the values again within seconds, and a Redis that
//! does not answer delays nothing local. The lease's fencing script is checked
//! against the same server.

use std::time::Duration;

use crate::common::redis_server::RedisServer;
use crate::common::{self, Setup, eventually, read_state, setup, sim_with_ttl, spawn_daemon};
use futures_util::StreamExt;

/// Fast rotation: 3 s keys kept alive every second, 2 s tokens re-minted 1 s ahead.
const FAST: &str = "[timing]\nkeepalive_interval = \"1s\"\nlisten_key_validity = \"3s\"\ntoken_validity = \"2s\"\ntoken_renew_before = \"1s\"\njitter = 0.1\n";

const STREAMS: &str = "[[streams]]\nkind = \"usdm-futures\"\n\n[[streams]]\nkind = \"isolated-margin\"\nsymbols = [\"BTCUSDT\"]\ncredential = \"listen-token\"\n";

const IDS: [&str; 2] = ["usdm-futures", "isolated-margin:BTCUSDT"];

fn config(sim_url: &str, redis: &RedisServer, prefix: &str) -> Setup {
    setup(
        sim_url,
        &format!(
            "{FAST}\n{STREAMS}\n[redis]\nurl = \"{}\"\nprefix = \"{prefix}\"\n",
            redis.url()
        ),
    )
}

/// Whether Redis holds, for every stream, exactly the state file's JSON with
/// a TTL ending at its `expires_at`.
fn redis_matches_state_file(redis: &RedisServer, s: &Setup, prefix: &str) -> bool {
    let Some(doc) = read_state(&s.state) else { return false };
    IDS.iter().all(|id| {
        let Some(entry) = doc.streams.get(*id) else {
            return false;
        };
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
    eventually(
        Duration::from_secs(5),
        "Redis to hold the state file's JSON with its expiry",
        || redis_matches_state_file(&redis, &s, "lk1").then_some(()),
    )
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
    assert!(
        redis.get("lk2:stream:usdm-futures").is_none(),
        "a restarted Redis starts empty"
    );
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
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    // Rotations go on locally while Redis stays silent.
    let g0 = first.streams["isolated-margin:BTCUSDT"].generation;
    eventually(
        Duration::from_secs(4),
        "two more token generations in the state file",
        || {
            let doc = read_state(&s.state)?;
            (doc.streams["isolated-margin:BTCUSDT"].generation >= g0 + 2).then_some(())
        },
    )
    .await;
    redis.signal("CONT");
    eventually(Duration::from_secs(8), "Redis to catch up once it answers", || {
        redis_matches_state_file(&redis, &s, "lk3").then_some(())
    })
    .await;
}

fn redis_config(redis: &RedisServer, prefix: &str) -> listenkeyd::config::Redis {
    listenkeyd::config::Redis {
        url: listenkeyd::secret::Secret::new(redis.url()),
        shown: redis.url(),
        tls: false,
        ca: None,
        prefix: prefix.to_owned(),
        sentinel: None,
    }
}

#[tokio::test]
async fn a_write_with_a_superseded_fencing_token_is_refused() {
    use listenkeyd::publishers::redis::{Record, Written, write};
    use listenkeyd::replicas::{Keys, Link};
    let Some(redis) = RedisServer::start("a_write_with_a_superseded_fencing_token_is_refused") else {
        return;
    };
    let mut link = Link::new(&redis_config(&redis, "lk4"), Duration::from_secs(1)).unwrap();
    let keys = Keys::new("lk4");
    let mut c = redis.connection();
    let incr = |c: &mut redis::Connection| -> u64 { redis::cmd("INCR").arg("lk4:fence:default").query(c).unwrap() };
    let later = listenkeyd::clock::epoch_ms(std::time::SystemTime::now()) + 60_000;
    let old = incr(&mut c);
    let w = write(
        &mut link,
        &keys,
        &Record {
            id: "usdm-futures",
            account: "default",
            json: "{\"g\":1}",
            expires_ms: later,
            generation: 1,
        },
        Some(old),
    )
    .await;
    assert_eq!(w.unwrap(), Written::Stored);
    // Another replica takes the lease: the counter moves past `old`.
    let new = incr(&mut c);
    let w = write(
        &mut link,
        &keys,
        &Record {
            id: "usdm-futures",
            account: "default",
            json: "{\"g\":0}",
            expires_ms: later,
            generation: 0,
        },
        Some(old),
    )
    .await;
    assert_eq!(w.unwrap(), Written::Fenced);
    assert_eq!(redis.get("lk4:stream:usdm-futures").as_deref(), Some("{\"g\":1}"));
    let w = write(
        &mut link,
        &keys,
        &Record {
            id: "usdm-futures",
            account: "default",
            json: "{\"g\":2}",
            expires_ms: later + 1,
            generation: 2,
        },
        Some(new),
    )
    .await;
    assert_eq!(w.unwrap(), Written::Stored);
    assert_eq!(redis.get("lk4:stream:usdm-futures").as_deref(), Some("{\"g\":2}"));
    assert_eq!(redis.expire_time_ms("lk4:stream:usdm-futures"), later + 1);
}

#[tokio::test]
async fn one_replica_holds_a_lease_and_a_clean_stop_hands_it_over() {
    use listenkeyd::replicas::lease::{Lease, Role};
    use listenkeyd::replicas::{Keys, Link};
    let Some(redis) = RedisServer::start("one_replica_holds_a_lease_and_a_clean_stop_hands_it_over") else {
        return;
    };
    let ttl = Duration::from_millis(600);
    let metrics = listenkeyd::publishers::metrics::Metrics::new();
    let start = |name: &str| {
        let (tx, rx) = tokio::sync::watch::channel(Role::Standby);
        let cancel = tokio_util::sync::CancellationToken::new();
        let lease = Lease {
            link: Link::new(&redis_config(&redis, "lk5"), Duration::from_millis(150)).unwrap(),
            keys: Keys::new("lk5"),
            account: "default".into(),
            ttl,
            replica: name.into(),
            metrics: metrics.clone(),
        };
        (tokio::spawn(lease.run(tx, cancel.clone())), rx, cancel)
    };
    let (a_task, a, a_stop) = start("a");
    let (b_task, b, b_stop) = start("b");
    let holder = |r: &tokio::sync::watch::Receiver<Role>| matches!(*r.borrow(), Role::Holder { .. });
    eventually(Duration::from_secs(2), "one holder", || {
        (holder(&a) != holder(&b)).then_some(())
    })
    .await;
    let (task, stop, first, second) = if holder(&a) {
        (a_task, a_stop, &a, &b)
    } else {
        (b_task, b_stop, &b, &a)
    };
    let Role::Holder { token: t1, .. } = *first.borrow() else {
        unreachable!()
    };
    // Renewals keep it for several TTLs, and the standby stays a standby.
    let until = std::time::Instant::now() + ttl * 3;
    while std::time::Instant::now() < until {
        assert!(holder(first) && *second.borrow() == Role::Standby);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    stop.cancel();
    task.await.unwrap();
    assert!(redis.get("lk5:lease:default").is_none(), "released on a clean stop");
    eventually(
        Duration::from_millis(400),
        "the standby to take over well before the TTL",
        || match *second.borrow() {
            Role::Holder { token, .. } => (token > t1).then_some(()),
            _ => None,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_from_url_file_is_used_and_never_shown() {
    use std::os::unix::fs::PermissionsExt;
    let Some(mut redis) = RedisServer::start("a_password_from_url_file_is_used_and_never_shown") else {
        return;
    };
    const PASSWORD: &str = "pw-4f1c9e7a2b";
    redis.require_password(PASSWORD);
    let sim = sim_with_ttl(Duration::from_secs(3)).await;
    let s = setup(
        &sim.handle.url(),
        &format!("{FAST}\n{STREAMS}\n[redis]\nurl_file = \"redis-url\"\nprefix = \"lk6\"\n"),
    );
    let url_file = s.dir.path().join("redis-url");
    std::fs::write(&url_file, format!("{}\n", redis.url())).unwrap();
    std::fs::set_permissions(&url_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let check = common::run_cli(&["check-config", "--config", s.config.to_str().unwrap()]);
    let shown = String::from_utf8_lossy(&check.stdout).into_owned() + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{shown}");
    assert!(shown.contains("***@127.0.0.1:") && !shown.contains(PASSWORD), "{shown}");
    let mut daemon = spawn_daemon(&s);
    eventually(Duration::from_secs(5), "Redis to hold every stream", || {
        redis_matches_state_file(&redis, &s, "lk6").then_some(())
    })
    .await;
    // A restart on the same password: the values come back, nothing leaks.
    redis.restart();
    eventually(Duration::from_secs(4), "the values to be written again", || {
        redis_matches_state_file(&redis, &s, "lk6").then_some(())
    })
    .await;
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(5));
    let log = daemon.log_text();
    assert!(log.contains("publishing to Redis") && !log.contains(PASSWORD), "{log}");
}

#[test]
fn a_bad_redis_or_ha_key_is_refused_before_any_request() {
    for (body, key) in [
        ("[redis]\nurl = \"http://127.0.0.1:6379\"\n", "redis.url"),
        ("[redis]\nurl = \"redis://127.0.0.1\"\ndatabase = 1\n", "redis.database"),
        ("[ha]\nmode = \"lease\"\n", "ha.mode"),
        (
            "[redis]\nurl = \"redis://127.0.0.1\"\n[ha]\nmode = \"lease\"\nlease_ttl = \"1ms\"\n",
            "ha.lease_ttl",
        ),
    ] {
        let s = setup("http://127.0.0.1:9", &format!("{STREAMS}\n{body}"));
        let out = common::run_cli(&["check-config", "--config", s.config.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{body}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!("listenkeyd: config error: {key}:")),
            "{body}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_land_over_tls_with_a_private_ca() {
    let Some(redis) = RedisServer::start_tls("values_land_over_tls_with_a_private_ca") else {
        return;
    };
    let sim = sim_with_ttl(Duration::from_secs(3)).await;
    let ca = redis.ca.clone().unwrap();
    let s = setup(
        &sim.handle.url(),
        &format!(
            "{FAST}\n{STREAMS}\n[redis]\nurl = \"{}\"\nca_file = \"{}\"\nprefix = \"lk7\"\n",
            redis.url(),
            ca.display()
        ),
    );
    let _daemon = spawn_daemon(&s);
    eventually(Duration::from_secs(5), "Redis (TLS) to hold every stream", || {
        redis_matches_state_file(&redis, &s, "lk7").then_some(())
    })
    .await;
}

/// `n` isolated-margin streams, each with a value expiring in an hour, and
/// the Redis publisher writing them (standalone: no lease) until `cancel`.
fn publisher_for(
    redis: &RedisServer,
    prefix: &str,
    n: usize,
    cancel: &tokio_util::sync::CancellationToken,
) -> (
    listenkeyd::Hub,
    Vec<listenkeyd::hub::Publisher>,
    std::sync::Arc<listenkeyd::publishers::metrics::Metrics>,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use listenkeyd::publishers::redis::Publisher;
    use listenkeyd::replicas::{Keys, Link};
    use listenkeyd::state::{Held, Status, StreamState};
    use listenkeyd::stream::StreamSpec;
    let now = std::time::SystemTime::now();
    let states = (0..n)
        .map(|i| {
            let mut s = StreamState::starting(std::sync::Arc::new(StreamSpec::isolated_margin(format!("S{i:05}USDT"))));
            s.status = Status::Fresh;
            s.held = Some(Held {
                value: format!("token-{i:05}-{}", "x".repeat(40)),
                generation: 1,
                obtained_at: now,
                refreshed_at: now,
                expires_at: now + Duration::from_secs(3600),
                api_key_fp: None,
            });
            s
        })
        .collect();
    let (hub, publishers) = listenkeyd::Hub::new(states);
    let metrics = listenkeyd::publishers::metrics::Metrics::new();
    let rendered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let p = Publisher {
        link: Link::new(&redis_config(redis, prefix), Duration::from_secs(1)).unwrap(),
        keys: Keys::new(prefix),
        hub: hub.clone(),
        gates: std::collections::HashMap::new(),
        metrics: metrics.clone(),
        rendered: rendered.clone(),
    };
    tokio::spawn(p.run(cancel.clone()));
    (hub, publishers, metrics, rendered)
}

/// `listenkeyd_redis_writes_total{outcome="ok"}`.
fn writes_ok(metrics: &std::sync::Arc<listenkeyd::publishers::metrics::Metrics>, hub: &listenkeyd::Hub) -> u64 {
    let text = metrics.render(hub, std::time::SystemTime::now());
    text.lines()
        .find_map(|l| l.strip_prefix("listenkeyd_redis_writes_total{outcome=\"ok\"} "))
        .map_or(0, |n| n.parse().unwrap())
}

/// The CPU time this process has used (user + system), from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest.split(' ').map(|x| x.parse().unwrap_or(0)).collect();
    // Fields 14 and 15 (utime, stime), counted from `state` as field 3.
    Duration::from_millis((f[11] + f[12]) * 1000 / 100)
}

/// Publishes a keepalive on stream `k`: its expiry a minute later.
fn keepalive(publishers: &[listenkeyd::hub::Publisher], k: usize) {
    let mut s = publishers[k].current();
    let h = s.held.as_mut().unwrap();
    h.expires_at += Duration::from_secs(60);
    h.refreshed_at += Duration::from_secs(60);
    publishers[k].publish(s);
}

#[tokio::test]
async fn one_change_among_many_streams_serializes_and_writes_that_stream_only() {
    use std::sync::atomic::Ordering;
    let Some(mut redis) = RedisServer::start("one_change_among_many_streams_serializes_and_writes_that_stream_only")
    else {
        return;
    };
    const N: usize = 500;
    let cancel = tokio_util::sync::CancellationToken::new();
    let (hub, publishers, metrics, rendered) = publisher_for(&redis, "lkc", N, &cancel);
    let key = |k: usize| format!("lkc:stream:{}", publishers[k].current().spec.id.as_str());
    eventually(Duration::from_secs(30), "every stream written", || {
        (writes_ok(&metrics, &hub) == N as u64).then_some(())
    })
    .await;
    let before = rendered.load(Ordering::Relaxed);
    assert_eq!(before, N as u64, "the first pass serializes each stream once");
    // Probes pass while nothing changes (a PING a second): no stream is
    // looked at again. Two probes seen at the server, then the count.
    let pings = redis.pings();
    eventually(Duration::from_secs(10), "two probes", || {
        (redis.pings() >= pings + 2).then_some(())
    })
    .await;
    assert_eq!(
        rendered.load(Ordering::Relaxed),
        before,
        "an idle probe serialized a stream"
    );
    // One keepalive: one serialization, one write, of that stream.
    let old = redis.get(&key(7));
    keepalive(&publishers, 7);
    eventually(Duration::from_secs(10), "the keepalive written", || {
        (redis.get(&key(7)) != old).then_some(())
    })
    .await;
    // The counter moves once the script has answered, just after the value lands.
    eventually(Duration::from_secs(10), "the write counted", || {
        (writes_ok(&metrics, &hub) == N as u64 + 1).then_some(())
    })
    .await;
    assert_eq!(rendered.load(Ordering::Relaxed), before + 1);
    let expires = publishers[7].current().held.unwrap().expires_at;
    assert_eq!(redis.expire_time_ms(&key(7)), listenkeyd::clock::epoch_ms(expires));
    // Redis dies; a change made while it is down lands once it is back, with
    // every other value (a new connection: everything is rewritten).
    redis.stop();
    keepalive(&publishers, 9);
    redis.restart();
    eventually(Duration::from_secs(20), "every value back", || {
        (writes_ok(&metrics, &hub) > 2 * N as u64).then_some(())
    })
    .await;
    for k in [0, 7, 9, N - 1] {
        let held = publishers[k].current().held.unwrap();
        assert_eq!(
            redis.expire_time_ms(&key(k)),
            listenkeyd::clock::epoch_ms(held.expires_at),
            "stream {k}"
        );
    }
    cancel.cancel();
}

/// Prints what one keepalive costs the publisher at 10,000 streams (CPU of
/// this process per change, writes included); a measure, not a check: run
/// alone with `--ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measure: prints figures"]
async fn measure_one_change_at_ten_thousand_streams() {
    let Some(redis) = RedisServer::start("measure_one_change_at_ten_thousand_streams") else {
        return;
    };
    const N: usize = 10_000;
    let cancel = tokio_util::sync::CancellationToken::new();
    let rss = || -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let (hub, publishers, metrics, _) = publisher_for(&redis, "lkm", N, &cancel);
    let rss_before = rss();
    eventually(Duration::from_secs(60), "every stream written", || {
        (writes_ok(&metrics, &hub) == N as u64).then_some(())
    })
    .await;
    const CHANGES: usize = 200;
    let start = cpu_time();
    let wall = std::time::Instant::now();
    for k in 0..CHANGES {
        let key = format!("lkm:stream:{}", publishers[k].current().spec.id.as_str());
        let before = redis.get(&key);
        keepalive(&publishers, k);
        eventually(Duration::from_secs(60), "the change written", || {
            (redis.get(&key) != before).then_some(())
        })
        .await;
    }
    let cpu = cpu_time() - start;
    eprintln!(
        "resident memory grown by the publisher's first pass and {CHANGES} changes: {} KiB",
        rss() - rss_before
    );
    eprintln!(
        "one change at N = {N}: {:?} CPU, {:?} wall (mean of {CHANGES})",
        cpu / CHANGES as u32,
        wall.elapsed() / CHANGES as u32
    );
    assert_eq!(writes_ok(&metrics, &hub), (N + CHANGES) as u64);
    cancel.cancel();
}
