//! The fault matrix: one test per way the exchange misbehaves, each
//! run against the simulator with lifetimes of seconds and checked by the
//! harness monitor (no value expires while the exchange is reachable, nothing
//! empty or invalid is ever published, generations never go back) plus
//! explicit upper bounds on the requests sent, computed from the timing.
//! RELIABILITY.md lists these tests with the behaviour each proves.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::common::eventually;
use crate::harness::*;
use listenkeyd::AttemptHook;
use listenkeyd::config::Config;
use listenkeyd::state::Status;
use listenkeyd_sim::{Fault, RecordedRequest, SimConfig};

/// 10 s listen keys kept alive every 2 s, 12 s tokens renewed 4 s ahead: room for 2 s request timeouts.
const TIMING_10S: &str = "[timing]\nkeepalive_interval = \"2s\"\nlisten_key_validity = \"10s\"\ntoken_validity = \"12s\"\ntoken_renew_before = \"4s\"\njitter = 0.1\n";

fn sim_ttl(secs: u64, faults: &[&str]) -> SimConfig {
    SimConfig {
        listen_key_ttl: Duration::from_secs(secs),
        faults: faults.iter().map(|f| Fault::parse(f).unwrap()).collect(),
        ..SimConfig::binance_2025()
    }
}

/// The most requests `n` listen-key streams kept alive every `every` (jitter 0.1) may send in `d`
/// when nothing fails: one POST each, then one PUT per 0.9 interval, plus one in flight.
fn keepalive_bound(n: usize, every: Duration, d: Duration) -> usize {
    n * (2 + (d.as_secs_f64() / (every.as_secs_f64() * 0.9)).ceil() as usize)
}

/// Waits until every counted fault was applied and every stream is fresh again.
async fn spent_and_fresh(run: &Run, limit: Duration) {
    eventually(limit, "faults spent", || run.sim.handle.faults_spent().then_some(())).await;
    run.all_fresh(limit).await;
}

fn failed(reqs: &[RecordedRequest]) -> usize {
    reqs.iter().filter(|r| r.status != Some(200)).count()
}

/// The largest gap between a failed request and the next request on the same path and method.
fn max_retry_gap_ms(reqs: &[RecordedRequest]) -> i64 {
    reqs.windows(2)
        .filter(|w| w[0].status != Some(200))
        .map(|w| gap_ms(&w[0], &w[1]))
        .max()
        .unwrap_or(0)
}

/// How far ahead a stream's next attempt is planned; at least `min`.
fn planned_at_least(run: &Run, id: &str, min: Duration) -> Duration {
    let next = run.stream(id).next_at.expect("a planned attempt");
    let left = next.duration_since(SystemTime::now()).unwrap_or_default();
    assert!(left >= min, "{id}: next attempt in {left:?}, expected at least {min:?}");
    left
}

fn on(reqs: &[RecordedRequest], method: &str, path: &str) -> Vec<RecordedRequest> {
    reqs.iter()
        .filter(|r| r.method == method && r.path == path)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_bursts_are_retried_within_seconds_and_no_key_expires() {
    // The options stream meets three 503s on its very first POST.
    let mut run = start(
        sim_ttl(6, &["POST /eapi/v1/listenKey status=503 count=3"]),
        &[
            stream("usdm-futures"),
            stream("coinm-futures"),
            stream("options"),
            stream("cross-margin"),
        ]
        .concat(),
        "",
    )
    .await;
    run.all_fresh(Duration::from_secs(8)).await;
    run.fault("PUT /fapi/v1/listenKey status=503 count=4");
    run.fault("PUT /dapi/v1/listenKey status=500 count=2");
    run.fault("POST /sapi/v1/userListenToken status=502 count=3");
    spent_and_fresh(&run, Duration::from_secs(15)).await;
    let elapsed = run.started.elapsed();
    let o = run.stop_and_check().await;

    let reqs = run.requests();
    assert_eq!(failed(&reqs), 12);
    for (m, p) in [
        ("PUT", "/fapi/v1/listenKey"),
        ("PUT", "/dapi/v1/listenKey"),
        ("POST", "/sapi/v1/userListenToken"),
    ] {
        let gap = max_retry_gap_ms(&on(&reqs, m, p));
        assert!(gap < 1600, "{m} {p}: a retry waited {gap} ms (never a whole interval)");
    }
    // Without a value to lose, the first POST backs off 1, 2, 4 s (equal jitter).
    let gaps: Vec<i64> = on(&reqs, "POST", "/eapi/v1/listenKey")
        .windows(2)
        .map(|w| gap_ms(&w[0], &w[1]))
        .collect();
    assert!(
        gaps.len() == 3 && gaps.iter().zip([1100, 2100, 4100]).all(|(g, b)| *g < b),
        "{gaps:?}"
    );
    assert_eq!(o.generations["usdm-futures"], 1, "the key survived its 503s");
    assert_eq!(o.generations["coinm-futures"], 1);
    let bound = keepalive_bound(3, Duration::from_secs(2), elapsed) + (elapsed.as_secs() as usize / 4 + 2) + 12;
    assert!(reqs.len() <= bound, "{} requests, bound {bound}", reqs.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_408_and_hung_requests_are_retried_before_the_key_expires() {
    let mut run = start(
        sim_ttl(10, &[]),
        &[stream("usdm-futures"), stream("coinm-futures"), stream("cross-margin")].concat(),
        // Tokens minted 8 s ahead of their 12 s: the hung mint comes 4 s in, not 8.
        "[timing]\nkeepalive_interval = \"2s\"\nlisten_key_validity = \"10s\"\ntoken_validity = \"12s\"\ntoken_renew_before = \"8s\"\njitter = 0.1\n",
    )
    .await;
    run.all_fresh(Duration::from_secs(5)).await;
    run.fault("PUT /fapi/v1/listenKey status=408 count=2");
    // Hung for longer than request_timeout (2 s): the client gives up at 2 s.
    run.fault("PUT /dapi/v1/listenKey delay=3s count=2");
    run.fault("POST /sapi/v1/userListenToken delay=3s count=1");
    spent_and_fresh(&run, Duration::from_secs(25)).await;
    // A request the client gave up on is never answered (the simulator drops it with the connection).
    let reqs = run.requests();
    let elapsed = run.started.elapsed();
    let o = run.stop_and_check().await;
    assert_eq!(o.generations["usdm-futures"], 1);
    assert_eq!(
        o.generations["coinm-futures"], 1,
        "the key outlived two hung keepalives"
    );
    let dapi = on(&reqs, "PUT", "/dapi/v1/listenKey");
    // The two hung PUTs and the retries after them: each retry within timeout + backoff.
    let hung: Vec<_> = dapi.windows(2).map(|w| gap_ms(&w[0], &w[1])).collect();
    assert!(hung.iter().all(|g| *g < 3200), "retry gaps {hung:?}");
    let bound = keepalive_bound(2, Duration::from_secs(2), elapsed) + elapsed.as_secs() as usize / 6 + 2 + 5;
    assert!(reqs.len() <= bound, "{} requests, bound {bound}", reqs.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_and_drops_are_transient() {
    let mut run = start(
        sim_ttl(6, &["POST /dapi/v1/listenKey reset count=2"]),
        &[
            stream("portfolio-margin"),
            stream("options"),
            stream("coinm-futures"),
            stream("cross-margin"),
        ]
        .concat(),
        "",
    )
    .await;
    run.all_fresh(Duration::from_secs(6)).await;
    run.fault("PUT /papi/v1/listenKey reset count=3");
    run.fault("PUT /eapi/v1/listenKey drop count=3");
    run.fault("POST /sapi/v1/userListenToken reset count=2");
    spent_and_fresh(&run, Duration::from_secs(15)).await;
    let elapsed = run.started.elapsed();
    let o = run.stop_and_check().await;
    for id in ["portfolio-margin", "options", "coinm-futures"] {
        assert_eq!(o.generations[id], 1, "{id} kept its key");
    }
    let reqs = run.requests();
    assert_eq!(
        reqs.iter().filter(|r| r.status.is_none()).count(),
        10,
        "ten unanswered requests"
    );
    for (m, p) in [("PUT", "/papi/v1/listenKey"), ("PUT", "/eapi/v1/listenKey")] {
        let gap = max_retry_gap_ms(&on(&reqs, m, p));
        assert!(gap < 1600, "{p}: retry gap {gap} ms");
    }
    let bound = keepalive_bound(3, Duration::from_secs(2), elapsed) + elapsed.as_secs() as usize / 4 + 2 + 10;
    assert!(reqs.len() <= bound, "{} requests, bound {bound}", reqs.len());
}

/// An attempt counter per stream, through the keeper's attempt hook.
fn attempt_counter() -> (AttemptHook, Arc<Mutex<HashMap<String, usize>>>) {
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let hook: AttemptHook = {
        let counts = counts.clone();
        Arc::new(move |spec| *counts.lock().unwrap().entry(spec.id.to_string()).or_insert(0) += 1)
    };
    (hook, counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_scaled_the_keys_survive_and_attempts_stay_few() {
    // A 4 s outage against 10 s keys: the same proportions as a minute against
    // a key refreshed 30 min before (see `refused_connections_for_two_thirds_of_a_key_lifetime`).
    let (hook, attempts) = attempt_counter();
    let mut run = start_with(
        sim_ttl(10, &[]),
        &[
            stream("usdm-futures"),
            stream("options"),
            isolated(&["BTCUSDT"], "listen-key"),
        ]
        .concat(),
        TIMING_10S,
        Some(hook),
    )
    .await;
    run.all_fresh(Duration::from_secs(5)).await;
    let before: HashMap<String, usize> = attempts.lock().unwrap().clone();
    let outage = Duration::from_secs(4);
    run.sim.handle.refuse_connections(outage);
    let start = Instant::now();
    // Some stream must have tried (and failed) meanwhile.
    eventually(Duration::from_secs(5), "a stream noticed the outage", || {
        run.ids
            .iter()
            .any(|id| run.stream(id).status == Status::Stale)
            .then_some(())
    })
    .await;
    eventually(outage + Duration::from_secs(6), "everything fresh again", || {
        (start.elapsed() > outage && run.ids.iter().all(|id| run.stream(id).status == Status::Fresh)).then_some(())
    })
    .await;
    let recovered_after = start.elapsed() - outage;
    assert!(
        recovered_after < Duration::from_secs(3),
        "recovered {recovered_after:?} after the outage"
    );
    let o = run.stop_and_check().await;
    assert!(
        o.generations.values().all(|g| *g == 1),
        "no key was lost: {:?}",
        o.generations
    );
    let after = attempts.lock().unwrap().clone();
    for id in &run.ids {
        let n = after[id] - before[id];
        assert!(n <= 8, "{id}: {n} attempts around a 4 s outage");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_for_two_thirds_of_a_key_lifetime() {
    // A minute against 90 s keys, scaled to 8 s against 12 s keys kept alive
    // every second: the same proportion of the life is spent refused, so the
    // backoff runs through its doubling (1, 2, 4 s) into the cap of a quarter
    // of the time left, and the key must still be saved once the port is back.
    let (hook, attempts) = attempt_counter();
    let mut run = start_with(
        sim_ttl(12, &[]),
        &[
            stream("usdm-futures"),
            stream("coinm-futures"),
            isolated(&["ETHUSDT"], "listen-key"),
        ]
        .concat(),
        "[timing]\nkeepalive_interval = \"1s\"\nlisten_key_validity = \"12s\"\njitter = 0.1\n",
        Some(hook),
    )
    .await;
    run.all_fresh(Duration::from_secs(5)).await;
    let before: HashMap<String, usize> = attempts.lock().unwrap().clone();
    let outage = Duration::from_secs(8);
    run.sim.handle.refuse_connections(outage);
    let start = Instant::now();
    eventually(
        outage + Duration::from_secs(4),
        "everything fresh after the outage",
        || (start.elapsed() > outage && run.ids.iter().all(|id| run.stream(id).status == Status::Fresh)).then_some(()),
    )
    .await;
    let recovered_after = start.elapsed() - outage;
    let o = run.stop_and_check().await;
    assert!(
        o.generations.values().all(|g| *g == 1),
        "no key lost: {:?}",
        o.generations
    );
    // Waits of 1, 2, 4 s (each between half and all of it), then at least an
    // eighth of the time left: about eight tries, never the 200 ms minimum gap.
    let after = attempts.lock().unwrap().clone();
    for id in &run.ids {
        let n = after[id] - before[id];
        assert!(n <= 12, "{id}: {n} attempts in 8 s of refused connections");
    }
    // The last wait is at most a quarter of the little life left (< 1 s).
    assert!(
        recovered_after < Duration::from_secs(2),
        "recovered {recovered_after:?} after"
    );
}

/// Requests that arrived within `window` after `at_ms`, ignoring the first
/// `grace_ms` (requests already on the wire when the 429 was answered).
fn inside(reqs: &[RecordedRequest], at_ms: i64, grace_ms: i64, window_ms: i64) -> Vec<RecordedRequest> {
    reqs.iter()
        .filter(|r| r.at_ms > at_ms + grace_ms && r.at_ms < at_ms + window_ms)
        .cloned()
        .collect()
}

async fn host_is_silenced(status: u16, retry_after: u64, path: &str) {
    let mut run = start(
        sim_ttl(10, &[]),
        &[
            stream("usdm-futures"),
            stream("coinm-futures"),
            stream("options"),
            isolated(&["BNBUSDT"], "listen-key"),
            stream("cross-margin"),
        ]
        .concat(),
        TIMING_10S,
    )
    .await;
    run.all_fresh(Duration::from_secs(5)).await;
    run.fault(&format!(
        "PUT {path} status={status} header=Retry-After:{retry_after} count=1"
    ));
    let banned_at = eventually(Duration::from_secs(5), "the ban", || {
        run.requests()
            .into_iter()
            .find(|r| r.status == Some(status))
            .map(|r| r.at_ms)
    })
    .await;
    let window = retry_after as i64 * 1000;
    eventually(Duration::from_secs(retry_after + 5), "traffic after the window", || {
        run.requests().into_iter().find(|r| r.at_ms > banned_at + window)
    })
    .await;
    run.all_fresh(Duration::from_secs(5)).await;
    let o = run.stop_and_check().await;
    let reqs = run.requests();
    let during = inside(&reqs, banned_at, 50, window);
    assert!(during.is_empty(), "requests to the host inside the window: {during:?}");
    assert!(
        o.generations.values().all(|g| *g == 1 || *g == 2),
        "{:?}",
        o.generations
    );
    assert_eq!(o.generations["usdm-futures"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_silences_the_host_for_every_stream_until_retry_after() {
    host_is_silenced(429, 3, "/fapi/v1/listenKey").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_418_ban_silences_the_host_for_every_stream_until_retry_after() {
    host_is_silenced(418, 4, "/dapi/v1/listenKey").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_backs_off_for_minutes_keeping_the_value_published() {
    let mut run = start(
        sim_ttl(10, &[]),
        &[stream("usdm-futures"), stream("options")].concat(),
        TIMING_10S,
    )
    .await;
    run.all_fresh(Duration::from_secs(5)).await;
    run.fault("PUT /fapi/v1/listenKey status=403 body=<html>Forbidden</html> count=1");
    let at = eventually(Duration::from_secs(5), "the 403", || {
        run.requests()
            .into_iter()
            .find(|r| r.status == Some(403))
            .map(|r| r.at_ms)
    })
    .await;
    // The simulator records the 403 as it answers; the keeper publishes once it has read it.
    let s = eventually(Duration::from_secs(2), "the 403 published", || {
        let s = run.stream("usdm-futures");
        s.last_error.as_ref().is_some_and(|e| e.contains("403")).then_some(s)
    })
    .await;
    assert_eq!(s.status, Status::Stale, "still valid, marked stale");
    // No retry for 2 minutes (±10 %), read from the planned attempt.
    planned_at_least(&run, "usdm-futures", Duration::from_secs(100));
    // The other stream carries on meanwhile: two more keepalives, and still no retry.
    eventually(Duration::from_secs(6), "two keepalives of the other stream", || {
        (on(&run.requests(), "PUT", "/eapi/v1/listenKey").len() >= 2).then_some(())
    })
    .await;
    let o = run.stop_and_check().await;
    let reqs = run.requests();
    let again: Vec<_> = reqs
        .iter()
        .filter(|r| r.path == "/fapi/v1/listenKey" && r.at_ms > at)
        .collect();
    assert!(again.is_empty(), "retried a 403 within seconds: {again:?}");
    assert!(
        on(&reqs, "PUT", "/eapi/v1/listenKey").len() >= 2,
        "the other stream carried on"
    );
    assert_eq!(o.generations["usdm-futures"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minus_1125_on_keepalive_and_a_silently_dropped_key_are_replaced_at_once() {
    let mut run = start(
        sim_ttl(6, &[]),
        &[
            stream("usdm-futures"),
            stream("coinm-futures"),
            isolated(&["LTCUSDT"], "listen-key"),
        ]
        .concat(),
        "",
    )
    .await;
    run.all_fresh(Duration::from_secs(5)).await;
    // -1125 answered (with the key really gone).
    run.revoked.lock().unwrap().insert(run.value("usdm-futures").unwrap());
    run.fault(r#"PUT /fapi/v1/listenKey status=400 revoke count=1 body={"code":-1125,"msg":"This listenKey does not exist."}"#);
    // Dropped server-side with no error until the next call.
    let dropped = Instant::now();
    run.revoke("coinm-futures");
    run.revoke("isolated-margin:LTCUSDT");
    eventually(Duration::from_secs(5), "three new generations", || {
        ["usdm-futures", "coinm-futures", "isolated-margin:LTCUSDT"]
            .iter()
            .all(|id| run.generation(id) == 2 && run.stream(id).status == Status::Fresh)
            .then_some(())
    })
    .await;
    assert!(
        dropped.elapsed() < Duration::from_millis(2800),
        "at the next keepalive, not later"
    );
    let o = run.stop_and_check().await;
    let reqs = run.requests();
    for path in [
        "/fapi/v1/listenKey",
        "/dapi/v1/listenKey",
        "/sapi/v1/userDataStream/isolated",
    ] {
        let mine: Vec<_> = reqs.iter().filter(|r| r.path == path).cloned().collect();
        let gone = mine.iter().position(|r| r.status == Some(400)).expect("a -1125");
        let next = &mine[gone + 1];
        assert_eq!(next.method, "POST", "{path}: re-created right after the -1125");
        assert!(
            gap_ms(&mine[gone], next) < 400,
            "{path}: POST {} ms later",
            gap_ms(&mine[gone], next)
        );
        assert_eq!(mine.iter().filter(|r| r.status == Some(400)).count(), 1);
    }
    // The published value went from the old key to the new one; never empty.
    for id in ["usdm-futures", "coinm-futures", "isolated-margin:LTCUSDT"] {
        assert_eq!(o.generations[id], 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_returning_a_different_key_after_a_restart_is_a_new_generation() {
    let streams = [stream("usdm-futures"), isolated(&["XRPUSDT"], "listen-key")].concat();
    let mut run = start(sim_ttl(30, &[]), &streams, "").await;
    run.all_fresh(Duration::from_secs(5)).await;
    let first = run.stop_and_check().await;
    let Run { sim, dir, state, .. } = run;
    let before = listenkeyd::publishers::state_file::file::read(&state).unwrap();
    // While the daemon was down the exchange dropped one key: POST will return another.
    let old = before.streams["usdm-futures"].value.clone();
    assert!(sim.handle.revoke_scope("usdm-futures"));
    let text = config_text(&sim.handle.url(), &state, &streams, "");
    let config = Config::from_toml(&text, HashMap::new()).unwrap();
    // The restart publishes the previous value as stale until its first POST: revoked on purpose here.
    let mut run = launch(sim, dir, state, &config, None, std::slice::from_ref(&old));
    run.all_fresh(Duration::from_secs(5)).await;
    let usdm = run.stream("usdm-futures").held.unwrap();
    assert_ne!(usdm.value, old);
    assert_eq!(usdm.generation, first.generations["usdm-futures"] + 1);
    let xrp = run.stream("isolated-margin:XRPUSDT").held.unwrap();
    assert_eq!(
        xrp.value, before.streams["isolated-margin:XRPUSDT"].value,
        "same key reused"
    );
    assert_eq!(xrp.generation, before.streams["isolated-margin:XRPUSDT"].generation);
    run.stop_and_check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_body_under_status_200_is_never_taken_for_a_success() {
    let mut run = start(
        sim_ttl(
            6,
            &[r#"POST /eapi/v1/listenKey status=200 count=2 body={"code":-1001,"msg":"Internal error"}"#],
        ),
        &[
            stream("portfolio-margin"),
            stream("coinm-futures"),
            stream("options"),
            stream("cross-margin"),
        ]
        .concat(),
        "",
    )
    .await;
    run.all_fresh(Duration::from_secs(6)).await;
    run.fault(r#"PUT /papi/v1/listenKey status=200 count=2 body={"code":-1001,"msg":"Internal error; unable to process your request."}"#);
    run.revoked.lock().unwrap().insert(run.value("coinm-futures").unwrap());
    run.fault(r#"PUT /dapi/v1/listenKey status=200 revoke count=1 body={"code":-1125,"msg":"This listenKey does not exist."}"#);
    run.fault(r#"POST /sapi/v1/userListenToken status=200 count=2 body={"code":-1001,"msg":"Internal error"}"#);
    spent_and_fresh(&run, Duration::from_secs(15)).await;
    let o = run.stop_and_check().await;
    assert_eq!(o.generations["portfolio-margin"], 1, "retried, the key kept");
    assert_eq!(o.generations["coinm-futures"], 2, "-1125 under 200: replaced");
    assert_eq!(o.generations["options"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_answers_are_transient_and_never_published() {
    let mut run = start(
        sim_ttl(
            6,
            &[
                r#"POST /eapi/v1/listenKey status=200 count=2 body={"listenKey":""}"#,
                "POST /papi/v1/listenKey pad=70000 count=2",
                r#"POST /sapi/v1/userListenToken status=200 count=1 body={"token":"abc"#,
            ],
        ),
        &[
            stream("usdm-futures"),
            stream("coinm-futures"),
            stream("options"),
            stream("portfolio-margin"),
            stream("cross-margin"),
        ]
        .concat(),
        "",
    )
    .await;
    run.all_fresh(Duration::from_secs(8)).await;
    run.fault("PUT /fapi/v1/listenKey status=200 count=2 body=<html>502 Bad Gateway</html>");
    run.fault("PUT /dapi/v1/listenKey pad=70000 count=2");
    run.fault("PUT /eapi/v1/listenKey status=200 count=1 body=[1,2,3]");
    run.fault("PUT /papi/v1/listenKey status=503 count=1 pad=200000");
    run.fault(r#"POST /sapi/v1/userListenToken status=200 count=1 body={"token":"   ","expirationTime":1}"#);
    spent_and_fresh(&run, Duration::from_secs(15)).await;
    let o = run.stop_and_check().await;
    for id in ["usdm-futures", "coinm-futures", "options", "portfolio-margin"] {
        assert_eq!(o.generations[id], 1, "{id}: garbage answers never changed the key");
    }
    let tokens = on(&run.requests(), "POST", "/sapi/v1/userListenToken");
    assert!(tokens.len() <= 6, "{} token requests", tokens.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_on_a_retired_endpoint_fails_only_that_stream_and_is_not_hammered() {
    let mut run = start(
        sim_ttl(6, &["* /sapi/v1/userDataStream status=410"]),
        &[isolated(&["BTCUSDT"], "listen-key"), stream("usdm-futures")].concat(),
        "",
    )
    .await;
    // cross-margin with listen keys too, retired mid-run is the same class; here from the start.
    eventually(Duration::from_secs(5), "the retired stream failed", || {
        (run.stream("isolated-margin:BTCUSDT").status == Status::Failed
            && run.stream("usdm-futures").status == Status::Fresh)
            .then_some(())
    })
    .await;
    let err = run.stream("isolated-margin:BTCUSDT").last_error.unwrap();
    assert!(err.contains("credential = \"listen-token\""), "{err}");
    // Retried hourly (±10 %), read from the planned attempt.
    planned_at_least(&run, "isolated-margin:BTCUSDT", Duration::from_secs(3200));
    run.stop_and_check().await;
    assert_eq!(
        run.requests_to("/sapi/v1/userDataStream").len(),
        1,
        "retried hourly, not now"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_api_key_gets_one_request_per_stream_then_slow_retries() {
    let mut run = start(
        SimConfig {
            api_keys: vec!["some-other-key".into()],
            ..SimConfig::binance_2025()
        },
        &[
            stream("usdm-futures"),
            stream("cross-margin"),
            stream("options"),
            isolated(&["DOGEUSDT"], "listen-token"),
        ]
        .concat(),
        "",
    )
    .await;
    eventually(Duration::from_secs(5), "every stream failed", || {
        run.ids
            .iter()
            .all(|id| run.stream(id).status == Status::Failed)
            .then_some(())
    })
    .await;
    assert!(run.stream("usdm-futures").last_error.unwrap().contains("-2015"));
    // SLOW_RETRY is 5 min (±10 %): one request per stream per 4.5 min at most.
    for id in &run.ids {
        planned_at_least(&run, id, Duration::from_secs(265));
    }
    run.stop_and_check().await;
    assert_eq!(run.requests().len(), 4, "{:?}", run.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minus_1021_from_a_skewed_clock_resyncs_once_and_tokens_stay_valid() {
    const SECRET: &str = "fault-matrix-hmac-secret-0123";
    let mut run = start(
        SimConfig {
            hmac_secret: Some(SECRET.into()),
            clock_skew_ms: 30_000,
            ..SimConfig::binance_2025()
        },
        &[
            stream("cross-margin"),
            isolated(&["SOLUSDT", "ADAUSDT"], "listen-token"),
            stream("usdm-futures"),
        ]
        .concat(),
        &format!("secret_key = \"{SECRET}\"\n"),
    )
    .await;
    run.all_fresh(Duration::from_secs(5)).await;
    let skewed = |run: &Run| {
        run.requests_to("/sapi/v1/userListenToken")
            .iter()
            .filter(|r| r.status == Some(400))
            .count()
    };
    let first = skewed(&run);
    assert!((1..=3).contains(&first), "{first} -1021 answers at start");
    // The exchange's clock moves the other way: the next mints meet -1021 again and resync.
    run.sim.handle.set_clock_skew_ms(-45_000);
    eventually(Duration::from_secs(12), "a resync after the skew moved", || {
        (skewed(&run) > first).then_some(())
    })
    .await;
    let gens: Vec<u64> = ["cross-margin", "isolated-margin:SOLUSDT"]
        .iter()
        .map(|id| run.generation(id))
        .collect();
    eventually(Duration::from_secs(12), "tokens minted again", || {
        ["cross-margin", "isolated-margin:SOLUSDT"]
            .iter()
            .zip(&gens)
            .all(|(id, g)| run.generation(id) > *g && run.stream(id).status == Status::Fresh)
            .then_some(())
    })
    .await;
    let o = run.stop_and_check().await;
    let reqs = run.requests();
    let times = reqs.iter().filter(|r| r.path.ends_with("/time")).count();
    let total_1021 = skewed(&run);
    assert!(
        times <= total_1021 && total_1021 <= 6,
        "{times} time fetches, {total_1021} -1021s"
    );
    assert_eq!(o.generations["usdm-futures"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minus_1209_on_a_token_mints_a_new_one_within_seconds() {
    let mut run = start(
        sim_ttl(6, &[]),
        &[stream("cross-margin"), isolated(&["TRXUSDT"], "listen-token")].concat(),
        "",
    )
    .await;
    run.all_fresh(Duration::from_secs(5)).await;
    let g = run.generation("cross-margin");
    run.fault(r#"POST /sapi/v1/userListenToken status=400 count=2 body={"code":-1209,"msg":"Invalid listen token."}"#);
    spent_and_fresh(&run, Duration::from_secs(15)).await;
    eventually(Duration::from_secs(8), "a new token", || {
        (run.generation("cross-margin") > g).then_some(())
    })
    .await;
    run.stop_and_check().await;
    let posts = run.requests_to("/sapi/v1/userListenToken");
    let gap = max_retry_gap_ms(&posts);
    assert!(gap < 1600, "retried {gap} ms after -1209");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_for_one_stream_does_not_disturb_the_others() {
    // One stream drowns in every kind of garbage for seconds; its neighbours keep their rhythm.
    let mut run = start(
        sim_ttl(10, &[]),
        &[stream("usdm-futures"), stream("coinm-futures"), stream("options")].concat(),
        TIMING_10S,
    )
    .await;
    run.all_fresh(Duration::from_secs(5)).await;
    for spec in [
        "PUT /fapi/v1/listenKey status=200 count=2 body=\u{0}\u{1}garbage",
        "PUT /fapi/v1/listenKey status=200 count=2 body={\"listenKey\":12}",
        "PUT /fapi/v1/listenKey status=599 count=2",
        "PUT /fapi/v1/listenKey status=200 count=2 pad=100000",
    ] {
        run.fault(spec);
    }
    spent_and_fresh(&run, Duration::from_secs(20)).await;
    let elapsed = run.started.elapsed();
    let o = run.stop_and_check().await;
    let reqs = run.requests();
    for path in ["/dapi/v1/listenKey", "/eapi/v1/listenKey"] {
        let puts = on(&reqs, "PUT", path);
        assert!(puts.iter().all(|r| r.status == Some(200)));
        let gaps: Vec<i64> = puts.windows(2).map(|w| gap_ms(&w[0], &w[1])).collect();
        assert!(
            gaps.iter().all(|g| *g <= 2300),
            "{path}: its rhythm was disturbed: {gaps:?}"
        );
        assert!(puts.len() as f64 >= elapsed.as_secs_f64() / 2.2 - 2.0);
    }
    assert!(o.generations.values().all(|g| *g == 1));
}
