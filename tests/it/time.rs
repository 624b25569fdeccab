//! Time and supervision, in process: a keeper on a [`ManualClock`] against the
//! simulator, with wall-clock jumps moved through the time seam, and a panic
//! injected into one stream's task through the attempt hook.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use crate::common::{Sim, eventually, sim_with_ttl};
use listenkeyd::clock::ManualClock;
use listenkeyd::config::{Config, Url};
use listenkeyd::secret::Secret;
use listenkeyd::state::Status;
use listenkeyd::stream::{CredentialKind, Kind, StreamSpec};
use listenkeyd::{AttemptHook, Keeper, Options};
use tokio_util::sync::CancellationToken;

const IDS: [&str; 3] = ["usdm-futures", "isolated-margin:BTCUSDT", "cross-margin"];

fn config(sim: &Sim) -> Config {
    Config::builder()
        .base_url(Url::parse(&sim.handle.url()).unwrap())
        .api_key(Secret::new("time-test-key"))
        .stream(StreamSpec::account_wide(Kind::UsdmFutures))
        .stream(StreamSpec::isolated_margin("BTCUSDT").with_credential(CredentialKind::ListenKey))
        .stream(StreamSpec::account_wide(Kind::CrossMargin))
        .keepalive_interval(Duration::from_secs(20))
        .listen_key_validity(Duration::from_secs(60))
        .token_validity(Duration::from_secs(3600))
        .token_renew_before(Duration::from_secs(600))
        .build()
        .unwrap()
}

/// Starts a keeper on a manual clock that checks for jumps every 100 ms.
fn start(config: &Config, clock: Arc<ManualClock>, hook: Option<AttemptHook>) -> (Keeper, CancellationToken) {
    let cancel = CancellationToken::new();
    let options = Options {
        clock,
        state_file: false,
        jump_check_every: Duration::from_millis(100),
        before_attempt: hook,
        ..Options::default()
    };
    (Keeper::start_with(config, options, cancel.clone()).unwrap(), cancel)
}

async fn all_fresh(k: &Keeper) {
    eventually(Duration::from_secs(5), "every stream fresh", || {
        IDS.iter()
            .all(|id| k.subscribe(id).unwrap().borrow().status == Status::Fresh)
            .then_some(())
    })
    .await;
}

fn generation(k: &Keeper, id: &str) -> u64 {
    k.subscribe(id).unwrap().borrow().held.as_ref().unwrap().generation
}

/// Waits until no stream plans an attempt within the next 5 s on the keeper's
/// clock: from then on, with every stream fresh, no burst of requests is still
/// to come, and the requests counted so far are all there will be.
async fn nothing_due_soon(k: &Keeper, clock: &ManualClock) {
    eventually(Duration::from_secs(3), "nothing planned within 5 s", || {
        let now = listenkeyd::clock::Clock::now(clock);
        IDS.iter()
            .all(|id| {
                k.subscribe(id)
                    .unwrap()
                    .borrow()
                    .next_at
                    .is_some_and(|next| next.duration_since(now).unwrap_or_default() > Duration::from_secs(5))
            })
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_suspend_each_stream_acts_once_on_the_real_expiry() {
    let sim = sim_with_ttl(Duration::from_secs(60)).await;
    let clock = ManualClock::new(SystemTime::now());
    let (k, cancel) = start(&config(&sim), clock.clone(), None);
    all_fresh(&k).await;
    // Quiet while nothing is due: five jump checks, no request.
    sim.handle.clear_requests();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        crate::common::calls(&sim.handle).is_empty(),
        "no periodic traffic while nothing is due"
    );

    // The host sleeps for two hours: wall time moves, tokio's clock does not.
    clock.jump_ms(2 * 3600 * 1000);
    eventually(Duration::from_secs(3), "one request per stream", || {
        (crate::common::calls(&sim.handle).len() >= IDS.len()).then_some(())
    })
    .await;
    all_fresh(&k).await;
    nothing_due_soon(&k, &clock).await;
    let reqs = crate::common::calls(&sim.handle);
    assert_eq!(
        reqs.len(),
        IDS.len(),
        "exactly one refresh per stream, not a burst: {reqs:?}"
    );
    // Every value expired by then (60 s keys, a 1 h token): each stream re-creates with POST.
    assert!(reqs.iter().all(|r| r.method == "POST"), "{reqs:?}");
    cancel.cancel();
    k.join().await;
}

/// Time left on a stream's value, on the keeper's clock.
fn left(k: &Keeper, clock: &ManualClock, id: &str) -> Duration {
    let exp = k.subscribe(id).unwrap().borrow().held.as_ref().unwrap().expires_at;
    exp.duration_since(listenkeyd::clock::Clock::now(clock))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_clock_steps_back_keys_are_kept_alive_and_the_token_is_kept() {
    let sim = sim_with_ttl(Duration::from_secs(60)).await;
    let clock = ManualClock::new(SystemTime::now());
    let (k, cancel) = start(&config(&sim), clock.clone(), None);
    all_fresh(&k).await;
    let token_gen = generation(&k, "cross-margin");
    let token_left = left(&k, &clock, "cross-margin");
    sim.handle.clear_requests();

    clock.jump_ms(-2 * 3600 * 1000);
    eventually(Duration::from_secs(3), "a keepalive per listen key", || {
        (crate::common::calls(&sim.handle).len() >= 2).then_some(())
    })
    .await;
    // The token's expiry moves back with the clock: the same time is left on it.
    eventually(Duration::from_secs(3), "the token re-planned", || {
        let now_left = left(&k, &clock, "cross-margin");
        (now_left.abs_diff(token_left) < Duration::from_secs(5)).then_some(())
    })
    .await;
    all_fresh(&k).await;
    nothing_due_soon(&k, &clock).await;
    let reqs = crate::common::calls(&sim.handle);
    // Listen keys are still valid: a keepalive each. The token is not re-minted.
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert!(reqs.iter().all(|r| r.method == "PUT"), "{reqs:?}");
    assert_eq!(generation(&k, "usdm-futures"), 1);
    assert_eq!(
        generation(&k, "cross-margin"),
        token_gen,
        "no new generation for consumers"
    );
    cancel.cancel();
    k.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_stream_task_is_restarted_and_the_others_carry_on() {
    let sim = sim_with_ttl(Duration::from_secs(60)).await;
    let attempts = Arc::new(AtomicUsize::new(0));
    let hook: AttemptHook = {
        let attempts = attempts.clone();
        Arc::new(move |spec| {
            if spec.id.as_str() == "usdm-futures" && attempts.fetch_add(1, Ordering::SeqCst) < 3 {
                panic!("injected panic in the usdm-futures scheduler");
            }
        })
    };
    let clock = ManualClock::new(SystemTime::now());
    let (k, cancel) = start(&config(&sim), clock, Some(hook));
    // The other streams are published while usdm-futures keeps panicking.
    eventually(Duration::from_secs(3), "healthy streams published", || {
        ["isolated-margin:BTCUSDT", "cross-margin"]
            .iter()
            .all(|id| k.subscribe(id).unwrap().borrow().status == Status::Fresh)
            .then_some(())
    })
    .await;
    // After three panics (and three restarts, one second apart) it gets its key.
    eventually(Duration::from_secs(8), "usdm-futures after restarts", || {
        (k.subscribe("usdm-futures").unwrap().borrow().status == Status::Fresh).then_some(())
    })
    .await;
    assert_eq!(attempts.load(Ordering::SeqCst), 4);
    let posts = crate::common::calls(&sim.handle)
        .iter()
        .filter(|r| r.path == "/fapi/v1/listenKey")
        .count();
    assert_eq!(posts, 1, "a panic before the call sends nothing");
    cancel.cancel();
    k.join().await;
}
