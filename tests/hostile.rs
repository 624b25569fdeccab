//! Hostile answers, end to end: a keeper in process against the simulator over
//! HTTP, where the exchange answers with absurd expiries (year 10000, negative,
//! zero, strings, fractions), keys that are not keys (control characters, line
//! breaks, 10 KB and 300 KB, numbers, empty), deeply nested or non-UTF-8
//! bodies, messages that carry a key past the 160-character cut, and absurd
//! `Retry-After` values. Each test asserts that nothing panicked (every stream
//! task alive throughout, no panic anywhere in the process), that the
//! neighbouring streams were not disturbed (fresh, same generation, no error),
//! that nothing implausible was published (the harness monitor checks every
//! watch value and every state-file read), and that the stream is fresh again
//! once the answers are sane. RELIABILITY.md lists them.

mod common;
mod harness;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, SystemTime};

use base64::Engine;
use common::{eventually, start_sim};
use harness::*;
use listenkeyd::state::Status;
use listenkeyd_sim::{Fault, SimConfig};

/// Panics on the runtime's worker threads (where the keeper's tasks run; a
/// failing assertion runs on the test's own thread), counted by a hook
/// installed once.
static PANICS: AtomicUsize = AtomicUsize::new(0);
static HOOK: Once = Once::new();

fn count_panics() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some("tokio-runtime-worker") {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

fn sim_with(faults: &[Fault]) -> SimConfig {
    count_panics();
    SimConfig {
        listen_key_ttl: Duration::from_secs(6),
        faults: faults.to_vec(),
        ..SimConfig::default()
    }
}

/// A 200 answer with `body` (JSON text) for the first matching request.
fn once(method_path: &str, body: &str) -> Fault {
    Fault::parse(&format!("{method_path} status=200 count=1 body={body}")).unwrap()
}

/// An answer of raw `bytes` with `status` for the first matching request.
fn raw(method_path: &str, status: u16, bytes: &[u8]) -> Fault {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    Fault::parse(&format!("{method_path} status={status} count=1 body64={b64}")).unwrap()
}

/// A plausible key the exchange never issued: publishing it would be caught as dead.
fn fake(n: u32) -> String {
    format!("hostileKey{n:054}")
}

/// Milliseconds since 1970, `ahead` from now: a sane `expirationTime`.
fn ms_from_now(ahead: Duration) -> u128 {
    (SystemTime::now() + ahead)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Asserts that every stream task is running and nothing panicked.
fn alive(run: &Run) {
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "something panicked");
    assert_eq!(
        run.keeper.as_ref().unwrap().live_tasks(),
        run.ids.len(),
        "a stream task died"
    );
}

/// Starts the keeper of [`harness::start`] and waits until every stream task runs.
async fn begin(sim: SimConfig, streams: &str, extra: &str) -> Run {
    let run = start(sim, streams, extra).await;
    eventually(Duration::from_secs(5), "every stream task running", || {
        (run.keeper.as_ref().unwrap().live_tasks() == run.ids.len()).then_some(())
    })
    .await;
    run
}

/// Polls `f` until it holds, checking [`alive`] at every poll.
async fn until(run: &Run, limit: Duration, what: &str, f: impl Fn(&Run) -> bool) {
    eventually(limit, what, || {
        alive(run);
        f(run).then_some(())
    })
    .await;
}

/// The `last_error` of every failed attempt stream `id` publishes from now on
/// (one per attempt: each plans its own next one).
fn errors_of(run: &Run, id: &str) -> Arc<Mutex<Vec<String>>> {
    let mut rx = run.keeper.as_ref().unwrap().subscribe(id).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    tokio::spawn(async move {
        let mut last = None;
        loop {
            let s = rx.borrow_and_update().clone();
            if let Some(e) = s.last_error.clone() {
                let this = Some((e.clone(), s.next_at));
                if last != this {
                    out.lock().unwrap().push(e);
                    last = this;
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
    seen
}

/// How many recorded errors contain `what`.
fn count(errors: &Arc<Mutex<Vec<String>>>, what: &str) -> usize {
    errors.lock().unwrap().iter().filter(|e| e.contains(what)).count()
}

/// Waits until every armed fault was applied and every stream is fresh.
async fn spent_and_fresh(run: &Run, limit: Duration) {
    until(run, limit, "faults spent and every stream fresh", |r| {
        r.sim.handle.faults_spent() && r.ids.iter().all(|id| r.stream(id).status == Status::Fresh)
    })
    .await;
}

/// Stops the run and asserts the harness invariants (values checked for
/// plausibility by the monitor) and that nothing panicked.
async fn finish(run: &mut Run) {
    alive(run);
    run.stop_and_check().await;
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "something panicked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_expiries_are_malformed_answers_and_never_published() {
    let lk = |n: u32, expiration: &str| format!(r#"{{"listenKey":"{}","expiration":{expiration}}}"#, fake(n));
    let tok = |n: u32, expiration: &str| format!(r#"{{"token":"{}","expirationTime":{expiration}}}"#, fake(n));
    let mut run = begin(
        sim_with(&[
            // Year 10000, then year 33658 (the answer that made the task panic).
            once("POST /eapi/v1/listenKey", &lk(1, "253402300800000")),
            once("POST /eapi/v1/listenKey", &lk(2, "999999999999999")),
            once("POST /papi/v1/listenKey", &lk(3, "-1")),
            once("POST /papi/v1/listenKey", &lk(4, "0")),
            once("POST /dapi/v1/listenKey", &lk(5, r#""1758792204196""#)),
            once("POST /dapi/v1/listenKey", &lk(6, "1758792204196.5")),
            once("POST /sapi/v1/userListenToken", &tok(7, "999999999999999")),
            once("POST /sapi/v1/userListenToken", &tok(8, r#""soon""#)),
            once("POST /sapi/v1/userListenToken", &tok(9, "1e300")),
        ]),
        &[
            stream("usdm-futures"),
            stream("options"),
            stream("portfolio-margin"),
            stream("coinm-futures"),
            stream("cross-margin"),
        ]
        .concat(),
        "",
    )
    .await;
    let errors: Vec<_> = run.ids.iter().map(|id| (id.clone(), errors_of(&run, id))).collect();
    spent_and_fresh(&run, Duration::from_secs(15)).await;
    for (id, e) in &errors[1..] {
        let n = if id == "cross-margin" { 3 } else { 2 };
        assert_eq!(count(e, "malformed answer"), n, "{id}: {:?}", e.lock().unwrap());
    }

    // A keepalive echoing the key with an expiry in year 33658, twice: the key is kept.
    let key = run.value("options").unwrap();
    let generation = run.generation("options");
    let echo = format!(r#"{{"listenKey":"{key}","expiration":999999999999999}}"#);
    run.sim
        .handle
        .add_fault(Fault::parse(&format!("PUT /eapi/v1/listenKey status=200 count=2 body={echo}")).unwrap());
    spent_and_fresh(&run, Duration::from_secs(10)).await;
    assert_eq!(count(&errors[1].1, "malformed answer"), 4);
    assert_eq!(
        (run.value("options").unwrap(), run.generation("options")),
        (key, generation)
    );

    // The neighbour never saw an error and kept its first key.
    assert!(errors[0].1.lock().unwrap().is_empty());
    let o = run.observed();
    assert_eq!(o.generations["usdm-futures"], 1);
    finish(&mut run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_are_not_keys_are_malformed_answers_and_never_published() {
    let sane = ms_from_now(Duration::from_secs(8));
    let tok = |value: &str| format!(r#"{{"token":{value},"expirationTime":{sane}}}"#);
    let mut run = begin(
        sim_with(&[
            once("POST /fapi/v1/listenKey", r#"{"listenKey":"ab\u0001cd0123456789"}"#),
            once("POST /fapi/v1/listenKey", r#"{"listenKey":"ab\ncd0123456789"}"#),
            once("POST /fapi/v1/listenKey", r#"{"listenKey":12345}"#),
            once(
                "POST /fapi/v1/listenKey",
                &format!(r#"{{"listenKey":"{}"}}"#, "a".repeat(300 * 1024)),
            ),
            once(
                "POST /sapi/v1/userListenToken",
                &tok(&format!("\"{}\"", "a".repeat(10 * 1024))),
            ),
            once("POST /sapi/v1/userListenToken", &tok(r#""""#)),
            once("POST /sapi/v1/userListenToken", &tok(r#""tok en0123456789""#)),
        ]),
        &[
            stream("usdm-futures"),
            stream("cross-margin"),
            stream("coinm-futures"),
            stream("options"),
        ]
        .concat(),
        "",
    )
    .await;
    let errors: Vec<_> = run.ids.iter().map(|id| (id.clone(), errors_of(&run, id))).collect();
    spent_and_fresh(&run, Duration::from_secs(15)).await;
    assert_eq!(
        count(&errors[0].1, "malformed answer"),
        3,
        "{:?}",
        errors[0].1.lock().unwrap()
    );
    assert_eq!(count(&errors[0].1, "answer larger than"), 1, "the 300 KB key");
    assert_eq!(
        count(&errors[1].1, "malformed answer"),
        3,
        "{:?}",
        errors[1].1.lock().unwrap()
    );
    assert!(errors[2].1.lock().unwrap().is_empty(), "the neighbours saw no error");
    assert!(errors[3].1.lock().unwrap().is_empty(), "the neighbours saw no error");
    assert_eq!(run.observed().generations["options"], 1);
    finish(&mut run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_echoes_that_are_not_keys_are_malformed_and_the_key_is_kept() {
    let mut run = begin(
        sim_with(&[]),
        &[stream("coinm-futures"), stream("options")].concat(),
        "",
    )
    .await;
    let errors: Vec<_> = run.ids.iter().map(|id| (id.clone(), errors_of(&run, id))).collect();
    until(&run, Duration::from_secs(5), "every stream fresh", |r| {
        r.ids.iter().all(|id| r.stream(id).status == Status::Fresh)
    })
    .await;
    // Keepalive echoes that are not keys: the held key is kept, same generation.
    let generation = run.generation("coinm-futures");
    for body in [
        r#"{"listenKey":"\u001b[2J0123456789"}"#,
        r#"{"listenKey":null}"#,
        r#"{"listenKey":"clé0123456789"}"#,
    ] {
        run.sim.handle.add_fault(once("PUT /dapi/v1/listenKey", body));
    }
    spent_and_fresh(&run, Duration::from_secs(10)).await;
    assert_eq!(
        count(&errors[0].1, "malformed answer"),
        3,
        "{:?}",
        errors[0].1.lock().unwrap()
    );
    assert_eq!(run.generation("coinm-futures"), generation);
    assert!(errors[1].1.lock().unwrap().is_empty(), "the neighbour saw no error");
    assert_eq!(run.observed().generations["options"], 1);
    finish(&mut run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_non_utf8_bodies_and_key_bearing_messages_are_survived() {
    let mut nested = String::from(r#"{"listenKey":"k0123456789","x":"#);
    nested.push_str(&"[".repeat(50_000));
    let mut run = begin(
        sim_with(&[
            once("POST /eapi/v1/listenKey", &nested),
            raw(
                "POST /eapi/v1/listenKey",
                200,
                b"{\"listenKey\":\"\xff\xfe\xfd0123456789\"}",
            ),
            raw(
                "POST /eapi/v1/listenKey",
                200,
                b"{\"listenKey\":\"ab\x01cd0123456789\"}",
            ),
        ]),
        &[stream("options"), stream("usdm-futures"), stream("coinm-futures")].concat(),
        "",
    )
    .await;
    let errors: Vec<_> = run.ids.iter().map(|id| (id.clone(), errors_of(&run, id))).collect();
    spent_and_fresh(&run, Duration::from_secs(15)).await;
    assert_eq!(
        count(&errors[0].1, "not a JSON object"),
        3,
        "{:?}",
        errors[0].1.lock().unwrap()
    );

    // Error answers whose message carries the held key past the 160-character
    // cut, with terminal escapes; and a 500 whose body is not UTF-8.
    let key = run.value("usdm-futures").unwrap();
    let generation = run.generation("usdm-futures");
    let msg = format!("{} {key} \\u001b[31mred", "x".repeat(129));
    run.sim.handle.add_fault(
        Fault::parse(&format!(
            r#"PUT /fapi/v1/listenKey status=503 count=1 body={{"code":-1001,"msg":"{msg}"}}"#
        ))
        .unwrap(),
    );
    run.sim.handle.add_fault(raw(
        "PUT /fapi/v1/listenKey",
        500,
        b"{\"code\":-1001,\"msg\":\"\xff\xfe\"}",
    ));
    spent_and_fresh(&run, Duration::from_secs(10)).await;
    let seen = errors[1].1.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for e in &seen {
        assert!(
            (0..=key.len() - 8).all(|i| !e.contains(&key[i..i + 8])),
            "part of the key leaked: {e}"
        );
        assert!(!e.chars().any(char::is_control), "control characters kept: {e:?}");
    }
    assert_eq!(run.generation("usdm-futures"), generation);
    assert!(errors[2].1.lock().unwrap().is_empty(), "the neighbour saw no error");
    finish(&mut run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_retry_after_values_are_bounded_and_survived() {
    // Each victim family on its own simulator: a rate limit closes its host only.
    let (b1, b2, b3) = (
        start_sim(sim_with(&[])).await,
        start_sim(sim_with(&[])).await,
        start_sim(sim_with(&[])).await,
    );
    let extra = format!(
        "options_url = \"{}\"\nportfolio_margin_url = \"{}\"\ncoinm_url = \"{}\"",
        b1.handle.url(),
        b2.handle.url(),
        b3.handle.url()
    );
    let mut run = begin(
        sim_with(&[]),
        &[
            stream("cross-margin"),
            stream("usdm-futures"),
            stream("options"),
            stream("portfolio-margin"),
            stream("coinm-futures"),
        ]
        .concat(),
        &extra,
    )
    .await;
    until(&run, Duration::from_secs(10), "every stream fresh", |r| {
        r.ids.iter().all(|id| r.stream(id).status == Status::Fresh)
    })
    .await;
    let errors: Vec<_> = run.ids.iter().map(|id| (id.clone(), errors_of(&run, id))).collect();
    let generations: Vec<u64> = run.ids.iter().map(|id| run.generation(id)).collect();
    let too_many = |path: &str, retry_after: &str| -> Fault {
        serde_json::from_value(serde_json::json!({
            "method": "PUT", "path": path, "status": 429, "count": 1,
            "headers": { "Retry-After": retry_after },
        }))
        .unwrap()
    };
    run.sim
        .handle
        .add_fault(too_many("/fapi/v1/listenKey", "Sun, 06 Nov 1994 08:49:37 GMT"));
    b1.handle.add_fault(too_many("/eapi/v1/listenKey", "-5"));
    b2.handle.add_fault(too_many("/papi/v1/listenKey", "soon"));
    b3.handle
        .add_fault(too_many("/dapi/v1/listenKey", "99999999999999999999"));

    // Each waits what its header allows: a past date nothing, a meaningless
    // value the default minute, a huge one the longest ban (3 days), plus the
    // scheduler's spread of 0.2 to 1 s. Read from the next planned attempt.
    let minute = Duration::from_secs(60);
    let three_days = Duration::from_secs(3 * 24 * 3600);
    for (id, wait) in [
        ("options", minute),
        ("portfolio-margin", minute),
        ("coinm-futures", three_days),
    ] {
        until(&run, Duration::from_secs(8), "rate-limited", |r| {
            r.stream(id).last_error.is_some_and(|e| e.contains("rate-limited"))
        })
        .await;
        let s = run.stream(id);
        let left = s.next_at.unwrap().duration_since(SystemTime::now()).unwrap();
        assert!(
            left > wait - Duration::from_millis(500) && left <= wait + Duration::from_secs(1),
            "{id}: next attempt in {left:?}, expected {wait:?}"
        );
        assert_eq!(s.status, Status::Stale, "{id}: the key is kept while valid");
    }
    // The past date: fresh again within a second or so, same key.
    until(&run, Duration::from_secs(5), "usdm-futures fresh again", |r| {
        count(&errors[1].1, "rate-limited") == 1 && r.stream("usdm-futures").status == Status::Fresh
    })
    .await;
    assert_eq!(run.generation("usdm-futures"), generations[1]);
    // The neighbour on the main host carried on.
    assert!(errors[0].1.lock().unwrap().is_empty());
    assert_eq!(run.stream("cross-margin").status, Status::Fresh);
    alive(&run);
    // Keys on the silenced hosts expire (honestly) while their hosts are
    // silenced: check everything but that.
    let o = run.stop().await;
    assert!(o.violations.is_empty(), "{:#?}", o.violations);
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "something panicked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_error_names_the_address_it_tried() {
    // A port on 127.0.0.2, where nothing else in the suite listens: once this
    // listener is dropped, no parallel test can take the address over.
    let closed = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let mut run = begin(
        sim_with(&[]),
        &[stream("usdm-futures"), isolated(&["BTCUSDT"], "listen-key")].concat(),
        &format!("margin_url = \"http://{addr}\""),
    )
    .await;
    let id = "isolated-margin:BTCUSDT";
    until(&run, Duration::from_secs(5), "a connection error", |r| {
        r.stream(id).last_error.is_some()
    })
    .await;
    let e = run.stream(id).last_error.unwrap();
    assert!(e.contains(&format!("connection failed ({addr}")), "{e}");
    assert!(!e.contains('?') && !e.contains("symbol="), "no query string: {e}");
    alive(&run);
    run.stop().await;
}
