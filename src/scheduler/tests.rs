//! The failure ladder as a stream task applies it: a held value with so much
//! time left, an answer of each error class, and what the task plans and
//! publishes. Time is tokio's paused clock behind a [`ManualClock`].

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Action, Plan, Shared, StreamTask, Wake};
use crate::exchange::error::{classify, parse_retry_after};
use crate::exchange::{Client, Issued};
use crate::reason::{ApiError, ErrorClass};
use crate::clock::{Clock, ManualClock, until};
use crate::config::Config;
use crate::hub::Hub;
use crate::reason::{Hint, Reason};
use crate::secret::Secret;
use crate::state::{Held, Status, StreamState};
use crate::stream::{CredentialKind, Kind, StreamSpec};

const S: fn(u64) -> Duration = Duration::from_secs;
const MS: fn(u64) -> Duration = Duration::from_millis;

/// A stream task whose client points at a closed loopback port (nothing is sent).
struct Fixture {
    task: StreamTask,
    clock: Arc<ManualClock>,
    /// Kept alive: a closed jump channel ends the task's waits.
    _jumps: watch::Sender<u64>,
}

/// Counts nothing: these tests read the published states instead.
struct Uncounted;

impl super::RefreshCounter for Uncounted {
    fn refresh(&self, _stream: &str, _outcome: &'static str) {}
}

fn fixture(kind: Kind, credential: CredentialKind) -> Fixture {
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + S(1_700_000_000));
    let config = Config::builder()
        .base_url("http://127.0.0.1:9".parse().unwrap())
        .api_key(Secret::new("k".repeat(64)))
        .stream(StreamSpec::account_wide(Kind::UsdmFutures))
        .build()
        .unwrap();
    let symbol = kind.per_symbol().then(|| "BTCUSDT".to_owned());
    let spec = Arc::new(StreamSpec::new(kind, symbol, credential));
    let (_hub, mut publishers) = Hub::new(vec![StreamState::starting(spec.clone())]);
    let (jumps_tx, jumps) = watch::channel(0);
    let task = StreamTask {
        spec,
        client: Arc::new(Client::for_account(crate::config::Account::from_binance(&config.binance), clock.clone(), Arc::default()).unwrap()),
        shared: Arc::new(Shared {
            timing: config.timing.clone(),
            clock: clock.clone(),
            cancel: CancellationToken::new(),
            metrics: Arc::new(Uncounted),
            before_attempt: None,
            live: Arc::new(AtomicUsize::new(0)),
        }),
        publisher: Arc::new(publishers.remove(0)),
        jumps,
        close_on_exit: false,
        generation_floor: 0,
        api_key_fp: "00000000".into(),
        lease: None,
    };
    Fixture {
        task,
        clock,
        _jumps: jumps_tx,
    }
}

/// The task's stream holding a value with `left` to live (generation 1).
fn holding(task: &StreamTask, now: SystemTime, left: Duration) -> StreamState {
    StreamState {
        held: Some(Held {
            value: "v".repeat(60),
            generation: 1,
            obtained_at: now,
            refreshed_at: now,
            expires_at: now + left,
            api_key_fp: None,
        }),
        status: Status::Fresh,
        ..StreamState::starting(task.spec.clone())
    }
}

/// Binance's answer, classified as the client classifies it (on a listen-key path).
fn answer(status: u16, body: &str, retry_after: Option<Duration>) -> ApiError {
    classify(status, retry_after, body.as_bytes(), true).unwrap_err()
}

/// What one failure leads to: the plan, relative to now.
fn after(
    f: &Fixture,
    state: &mut StreamState,
    call: Action,
    e: ApiError,
    failures: &mut u32,
    r: f64,
) -> (Action, Duration) {
    let now = f.clock.now();
    let Plan { action, at } = f.task.fail(state, call, e, failures, now, r);
    (action, until(now, at))
}

#[tokio::test(start_paused = true)]
async fn every_error_class_on_a_listen_keys_keepalive_with_40_minutes_left() {
    let now = SystemTime::UNIX_EPOCH + S(1_700_000_000);
    let ra = |v: &str| parse_retry_after(v, now);
    let firewall = "(HTTP 403: the exchange's firewall blocks this host)";
    let auth =
        "(the API key or signature was refused: check api_key, its permissions and IP whitelist, and the secret)";
    let rejected = "(the exchange refused this stream's request: check the symbol and that the account has it enabled)";
    // (answer, r, next call, wait, status, last_error)
    let rows: Vec<(ApiError, f64, Action, Duration, Status, String)> = vec![
        (
            answer(503, "", None),
            1.0,
            Action::Keepalive,
            S(1),
            Status::Stale,
            "transient: HTTP 503: server error".into(),
        ),
        (
            answer(408, "", None),
            0.0,
            Action::Keepalive,
            MS(500),
            Status::Stale,
            "transient: HTTP 408: server error".into(),
        ),
        (
            answer(200, "[1]", None),
            0.0,
            Action::Keepalive,
            MS(500),
            Status::Stale,
            "transient: HTTP 200: malformed answer: not a JSON object".into(),
        ),
        (
            ApiError::local(ErrorClass::Transient, "timed out after 2s"),
            1.0,
            Action::Keepalive,
            S(1),
            Status::Stale,
            "transient: timed out after 2s".into(),
        ),
        (
            answer(400, r#"{"code":-1021,"msg":"Timestamp outside recvWindow."}"#, None),
            1.0,
            Action::Keepalive,
            S(1),
            Status::Stale,
            "clock-skew: HTTP 400 code -1021: Timestamp outside recvWindow.".into(),
        ),
        (
            answer(400, r#"{"code":-1125,"msg":"This listenKey does not exist."}"#, None),
            0.5,
            Action::Obtain,
            Duration::ZERO,
            Status::Refreshing,
            "gone: HTTP 400 code -1125: This listenKey does not exist.".into(),
        ),
        (
            answer(429, "{}", ra("7")),
            0.0,
            Action::Keepalive,
            MS(7200),
            Status::Stale,
            "rate-limited: HTTP 429: too many requests".into(),
        ),
        (
            answer(418, "", ra("Fri, 31 Dec 9999 23:59:59 GMT")),
            1.0,
            Action::Keepalive,
            S(3 * 24 * 3600) + S(1),
            Status::Stale,
            "rate-limited: HTTP 418: IP banned".into(),
        ),
        (
            answer(403, "<html>", None),
            0.5,
            Action::Keepalive,
            S(120),
            Status::Stale,
            format!("forbidden: HTTP 403: refused {firewall}"),
        ),
        (
            answer(410, "", None),
            0.0,
            Action::Keepalive,
            S(3240),
            Status::Failed,
            "retired: HTTP 410: refused. The endpoint appears to be retired.".into(),
        ),
        (
            answer(
                401,
                r#"{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}"#,
                None,
            ),
            1.0,
            Action::Keepalive,
            S(330),
            Status::Failed,
            format!("auth: HTTP 401 code -2015: Invalid API-key, IP, or permissions for action. {auth}"),
        ),
        (
            answer(
                400,
                r#"{"code":-1022,"msg":"Signature for this request is not valid."}"#,
                None,
            ),
            0.5,
            Action::Keepalive,
            S(300),
            Status::Failed,
            format!("auth: HTTP 400 code -1022: Signature for this request is not valid. {auth}"),
        ),
        (
            answer(400, r#"{"code":-3003,"msg":"Margin account does not exist."}"#, None),
            0.0,
            Action::Keepalive,
            S(270),
            Status::Failed,
            format!("rejected: HTTP 400 code -3003: Margin account does not exist. {rejected}"),
        ),
    ];
    for (e, r, next, wait, status, text) in rows {
        let f = fixture(Kind::UsdmFutures, CredentialKind::ListenKey);
        let now = f.clock.now();
        let mut state = holding(&f.task, now, S(2400));
        let class = e.class;
        let mut failures = 0;
        assert_eq!(
            after(&f, &mut state, Action::Keepalive, e, &mut failures, r),
            (next, wait),
            "{text}"
        );
        assert_eq!(state.status, status, "{text}");
        assert_eq!(state.last_error.as_deref(), Some(text.as_str()));
        assert_eq!(
            state.reason.as_ref().and_then(Reason::error).map(|e| e.class),
            Some(class)
        );
        // Only a gone key is dropped; every other class keeps the value until it expires.
        let left = until(now, state.held.as_ref().unwrap().expires_at);
        let dropped = class == ErrorClass::Gone;
        assert_eq!(left, if dropped { Duration::ZERO } else { S(2400) }, "{text}");
        assert_eq!(failures, u32::from(wait < S(2) && !dropped), "{text}: backoffs counted");
    }
}

#[tokio::test(start_paused = true)]
async fn a_retired_margin_listen_key_names_listen_tokens() {
    let f = fixture(Kind::IsolatedMargin, CredentialKind::ListenKey);
    let mut state = holding(&f.task, f.clock.now(), S(2400));
    let plan = after(&f, &mut state, Action::Keepalive, answer(404, "", None), &mut 0, 0.5);
    assert_eq!(plan, (Action::Keepalive, S(3600)));
    assert_eq!(state.status, Status::Failed);
    assert_eq!(
        state.last_error.as_deref(),
        Some(
            "retired: HTTP 404: refused. Binance retired margin listen keys on 2026-02-20: \
             set credential = \"listen-token\" for this stream."
        )
    );
    assert!(matches!(
        state.reason,
        Some(Reason::Refresh {
            hint: Some(Hint::RetiredUseToken),
            ..
        })
    ));
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_is_capped_at_a_quarter_of_the_life_left_and_restarts_after_a_gone_key() {
    let f = fixture(Kind::UsdmFutures, CredentialKind::ListenKey);
    let mut state = holding(&f.task, f.clock.now(), S(60));
    let mut failures = 0;
    let mut waits = Vec::new();
    for _ in 0..7 {
        let (next, wait) = after(
            &f,
            &mut state,
            Action::Keepalive,
            answer(502, "", None),
            &mut failures,
            1.0,
        );
        assert_eq!((next, state.status), (Action::Keepalive, Status::Stale));
        waits.push(wait);
        tokio::time::advance(wait).await;
    }
    // 1, 2, 4, 8 s; then 16 s is more than a quarter of the 45 s left, and so on.
    let quarter = |ns: u64| Duration::from_nanos(ns);
    assert_eq!(
        waits,
        [
            S(1),
            S(2),
            S(4),
            S(8),
            quarter(11_250_000_000),
            quarter(8_437_500_000),
            quarter(6_328_125_000)
        ]
    );
    assert_eq!(failures, 7);
    // The key vanishes: dropped, replaced now, and the count starts over.
    let gone = answer(200, r#"{"code":-1125,"msg":"This listenKey does not exist."}"#, None);
    assert_eq!(
        after(&f, &mut state, Action::Keepalive, gone, &mut failures, 1.0),
        (Action::Obtain, Duration::ZERO)
    );
    assert_eq!((state.status, failures), (Status::Refreshing, 0));
    // Its creation fails: the dead key is published failed, and the backoff
    // (a quarter of the hour's lifetime at most) starts from 1 s again.
    let plan = after(
        &f,
        &mut state,
        Action::Obtain,
        answer(500, "", None),
        &mut failures,
        1.0,
    );
    assert_eq!(plan, (Action::Obtain, S(1)));
    assert_eq!((state.status, failures), (Status::Failed, 1));
}

#[tokio::test(start_paused = true)]
async fn without_a_value_yet_failures_publish_refreshing_and_back_off_on_the_lifetime() {
    let f = fixture(Kind::CrossMargin, CredentialKind::ListenToken);
    let mut state = StreamState::starting(f.task.spec.clone());
    let mut failures = 8;
    // A 24 h token's quarter is 6 h: MAX_BACKOFF (60 s) rules.
    let plan = after(
        &f,
        &mut state,
        Action::Obtain,
        answer(503, "", None),
        &mut failures,
        1.0,
    );
    assert_eq!(plan, (Action::Obtain, S(60)));
    assert_eq!(state.status, Status::Refreshing);
    // A rejected stream is failed even before its first value.
    let e = answer(
        400,
        r#"{"code":-11001,"msg":"Isolated margin account does not exist."}"#,
        None,
    );
    assert_eq!(
        after(&f, &mut state, Action::Obtain, e, &mut failures, 0.5),
        (Action::Obtain, S(300))
    );
    assert_eq!(state.status, Status::Failed);
    assert!(state.last_error.as_deref().unwrap().contains("check the symbol"));
}

#[tokio::test(start_paused = true)]
async fn an_expiry_before_the_refresh_is_published_with_the_failure_that_caused_it() {
    let f = fixture(Kind::UsdmFutures, CredentialKind::ListenKey);
    let mut task = f.task.clone();
    let start = f.clock.now();
    let mut state = holding(&task, start, S(2));
    after(&f, &mut state, Action::Keepalive, answer(503, "", None), &mut 0, 1.0);
    assert_eq!(state.status, Status::Stale);
    // Waiting for a retry planned past the expiry: the expiry is published on time.
    assert_eq!(task.wait(start + S(10), &mut state).await, Wake::Due);
    assert_eq!(f.clock.now(), start + S(10));
    let published = task.publisher.current();
    assert_eq!(published.status, Status::Failed);
    assert_eq!(
        published.last_error.as_deref(),
        Some("expired: transient: HTTP 503: server error")
    );
    assert!(published.expired() && state.expired());
    assert_eq!(
        published.reason.as_ref().and_then(Reason::error).map(|e| e.status),
        Some(Some(503))
    );
    // With no failure before it, the expiry says so.
    let now = f.clock.now();
    let mut quiet = holding(&task, now, S(1));
    assert_eq!(task.wait(now + S(5), &mut quiet).await, Wake::Due);
    assert_eq!(
        quiet.last_error.as_deref(),
        Some("expired: no successful refresh in time")
    );
    assert_eq!(quiet.reason, Some(Reason::Expired(None)));
}

#[tokio::test(start_paused = true)]
async fn a_success_clears_the_reason_and_the_backoff() {
    let f = fixture(Kind::UsdmFutures, CredentialKind::ListenKey);
    let now = f.clock.now();
    let mut state = holding(&f.task, now, S(2400));
    let mut failures = 0;
    after(
        &f,
        &mut state,
        Action::Keepalive,
        answer(503, "", None),
        &mut failures,
        1.0,
    );
    assert!(state.reason.is_some() && failures == 1);
    let value = state.held.as_ref().unwrap().value.clone();
    let ok = Ok(Issued {
        value,
        expires_at: None,
    });
    f.task
        .apply(&mut state, Action::Keepalive, ok, &mut failures, &mut None);
    assert_eq!((state.status, failures), (Status::Fresh, 0));
    assert_eq!((state.reason, state.last_error), (None, None));
    assert_eq!(
        state.held.as_ref().unwrap().generation,
        1,
        "a keepalive is not a new generation"
    );
}

/// A task in lease mode, standing by, that counts its attempts.
fn standing_by(
    kind: Kind,
    credential: CredentialKind,
) -> (
    Fixture,
    Arc<AtomicUsize>,
    watch::Sender<crate::replicas::Role>,
    watch::Sender<Option<crate::state::Entry>>,
) {
    let mut f = fixture(kind, credential);
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = attempts.clone();
    Arc::get_mut(&mut f.task.shared).expect("not shared yet").before_attempt = Some(Arc::new(move |_| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }));
    let (gate_tx, gate) = watch::channel(crate::replicas::Role::Standby);
    let (mirror_tx, mirror) = watch::channel(None);
    f.task.lease = Some(Box::new(crate::replicas::StreamLease {
        gate,
        mirror,
        account: "default".into(),
    }));
    (f, attempts, gate_tx, mirror_tx)
}

/// What Redis would hold for the task's stream: a value with `left` to live.
fn stored(task: &StreamTask, now: SystemTime, left: Duration) -> crate::state::Entry {
    let doc = crate::state::Document::build([&holding(task, now, left)], now);
    doc.streams.into_values().next().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_standby_serves_the_holders_token_and_keeps_it_when_it_takes_over() {
    use std::sync::atomic::Ordering::SeqCst;
    let (f, attempts, gate, mirror) = standing_by(Kind::IsolatedMargin, CredentialKind::ListenToken);
    let publisher = f.task.publisher.clone();
    let entry = stored(&f.task, f.clock.now(), S(20 * 3600));
    let run = tokio::spawn({
        let mut t = f.task.clone();
        async move { t.run().await }
    });
    mirror.send(Some(entry.clone())).unwrap();
    tokio::time::sleep(S(1)).await;
    let served = publisher.current();
    assert_eq!(
        served.held.as_ref().map(|h| h.value.as_str()),
        Some(entry.value.as_str())
    );
    assert_eq!(served.status, Status::Fresh);
    // An hour of standing by: not one call to the exchange.
    tokio::time::sleep(S(3600)).await;
    assert_eq!(attempts.load(SeqCst), 0);
    // The lease comes to this replica: the token, 20 h from its expiry, is kept.
    let lease_until = tokio::time::Instant::now() + S(1_000_000);
    gate.send(crate::replicas::Role::Holder {
        token: 2,
        until: lease_until,
    })
    .unwrap();
    tokio::time::sleep(S(60)).await;
    assert_eq!(attempts.load(SeqCst), 0, "a token with time left is not re-minted");
    let kept = publisher.current();
    assert_eq!(kept.held.as_ref().map(|h| h.generation), Some(1));
    let next = kept.next_at.expect("the next mint is planned");
    let expires = kept.held.as_ref().unwrap().expires_at;
    let lead = until(next, expires);
    assert!(
        lead >= S(7 * 3600) && lead <= S(9 * 3600),
        "the next mint is planned 8 h ± 10 % before expiry, not {lead:?}"
    );
    f.task.shared.cancel.cancel();
    run.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_standby_taking_over_a_listen_key_refetches_it_at_once() {
    use std::sync::atomic::Ordering::SeqCst;
    let (f, attempts, gate, mirror) = standing_by(Kind::UsdmFutures, CredentialKind::ListenKey);
    mirror.send(Some(stored(&f.task, f.clock.now(), S(3000)))).unwrap();
    let run = tokio::spawn({
        let mut t = f.task.clone();
        async move { t.run().await }
    });
    tokio::time::sleep(S(600)).await;
    assert_eq!(attempts.load(SeqCst), 0);
    let lease_until = tokio::time::Instant::now() + S(1_000_000);
    gate.send(crate::replicas::Role::Holder {
        token: 1,
        until: lease_until,
    })
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    assert_eq!(attempts.load(SeqCst), 1, "a POST re-fetches the same key at once");
    // A lease that lapses here (the holder was paused) stops the calls.
    gate.send(crate::replicas::Role::Holder {
        token: 1,
        until: tokio::time::Instant::now(),
    })
    .unwrap();
    let before = attempts.load(SeqCst);
    tokio::time::sleep(S(3600)).await;
    assert_eq!(attempts.load(SeqCst), before, "no call while the lease has lapsed");
    f.task.shared.cancel.cancel();
    run.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn every_error_class_on_a_tokens_mint_with_no_value_yet_and_with_two_hours_left() {
    let now = SystemTime::UNIX_EPOCH + S(1_700_000_000);
    // (answer, r, wait, status with no value yet, status while a token is held)
    let rows: Vec<(ApiError, f64, Duration, Status, Status)> = vec![
        (answer(503, "", None), 1.0, S(1), Status::Refreshing, Status::Stale),
        (
            answer(400, r#"{"code":-1021,"msg":"Timestamp outside recvWindow."}"#, None),
            0.0,
            MS(500),
            Status::Refreshing,
            Status::Stale,
        ),
        // A mint answered "gone" is retried with backoff, never "replaced now".
        (
            answer(400, r#"{"code":-1209,"msg":"Invalid listenToken."}"#, None),
            1.0,
            S(1),
            Status::Refreshing,
            Status::Stale,
        ),
        (
            answer(429, "{}", parse_retry_after("7", now)),
            0.0,
            MS(7200),
            Status::Refreshing,
            Status::Stale,
        ),
        (answer(403, "", None), 0.5, S(120), Status::Refreshing, Status::Stale),
        (answer(410, "", None), 0.0, S(3240), Status::Failed, Status::Failed),
        (
            answer(400, r#"{"code":-2014,"msg":"API-key format invalid."}"#, None),
            1.0,
            S(330),
            Status::Failed,
            Status::Failed,
        ),
        (
            answer(400, r#"{"code":-1121,"msg":"Invalid symbol."}"#, None),
            0.5,
            S(300),
            Status::Failed,
            Status::Failed,
        ),
    ];
    let classes: std::collections::HashSet<_> = rows.iter().map(|r| r.0.class).collect();
    assert_eq!(classes.len(), 8, "every error class: {classes:?}");
    for (e, r, wait, none_yet, held) in rows {
        let class = e.class;
        // No value yet: the next call mints again, the status says why there is none.
        let f = fixture(Kind::CrossMargin, CredentialKind::ListenToken);
        let mut state = StreamState::starting(f.task.spec.clone());
        let plan = after(&f, &mut state, Action::Obtain, e.clone(), &mut 0, r);
        assert_eq!(plan, (Action::Obtain, wait), "{class}");
        assert_eq!(state.status, none_yet, "{class}");
        assert!(state.held.is_none(), "{class}");
        assert_eq!(state.reason.as_ref().and_then(Reason::error).map(|e| e.class), Some(class));
        // A token with two hours left: kept whatever the class, and minted again on the same plan.
        let f = fixture(Kind::CrossMargin, CredentialKind::ListenToken);
        let start = f.clock.now();
        let mut state = holding(&f.task, start, S(7200));
        let plan = after(&f, &mut state, Action::Obtain, e, &mut 0, r);
        assert_eq!(plan, (Action::Obtain, wait), "{class}");
        assert_eq!(state.status, held, "{class}");
        assert_eq!(state.held.as_ref().map(|h| h.expires_at), Some(start + S(7200)), "{class}");
    }
}

/// A waiting stream's task is most of what one stream costs, and a keeper
/// runs thousands: what every task shares sits behind one pointer, and the
/// futures that only lease mode or an attempt needs are boxed. These bounds
/// (about 10 % above today's sizes) catch a change that puts them back inline.
#[test]
fn a_waiting_streams_task_stays_small() {
    let f = fixture(Kind::UsdmFutures, CredentialKind::ListenKey);
    let task = std::mem::size_of::<StreamTask>();
    assert!(task <= 96, "StreamTask is {task} bytes");
    let mut t = f.task.clone();
    let run = std::mem::size_of_val(&t.run());
    assert!(run <= 864, "a stream's scheduler future is {run} bytes");
}
