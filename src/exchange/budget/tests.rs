//! The budget on paused time: pacing by share and ceiling, the queue's order,
//! a 429's back-off, and the readers of headers and `exchangeInfo`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;

use super::*;
use crate::clock::{ManualClock, SharedClock};

/// A window boundary: every test starts at the beginning of a window.
fn origin() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn budgets(share: f64, ceiling: f64, limit: &str) -> (Budgets, SharedClock) {
    let limits = Limits {
        share,
        ceiling,
        weight_limits: vec![("fapi".into(), WeightLimit::parse(limit).unwrap())],
    };
    (Budgets::new(limits), ManualClock::new(origin()))
}

fn ask(expires: SystemTime) -> Ask<'static> {
    Ask {
        family: "fapi",
        weight: 1,
        expires,
        documented: None,
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    h
}

#[test]
fn used_weight_headers_are_read_whatever_their_interval_and_case() {
    let h = headers(&[
        ("X-MBX-USED-WEIGHT-1M", "17"),
        ("x-mbx-used-weight-10s", "3"),
        ("X-Mbx-Used-Weight-2H", "40"),
        ("X-MBX-USED-WEIGHT", "99"),
        ("X-SAPI-USED-IP-WEIGHT-1M", "5"),
        ("X-SAPI-USED-UID-WEIGHT-1M", "7"),
        ("X-MBX-USED-WEIGHT-1X", "8"),
        ("X-MBX-USED-WEIGHT-1D", "lots"),
    ]);
    let mut got = used_weights(&h);
    got.sort();
    assert_eq!(
        got,
        [
            (Duration::from_secs(10), 3),
            (Duration::from_secs(60), 5),
            (Duration::from_secs(60), 17),
            (Duration::from_secs(7200), 40),
        ]
    );
}

#[test]
fn exchange_info_states_the_request_weight_limit() {
    let body = serde_json::json!({"rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
    ]});
    assert_eq!(request_weight_limit(&body), WeightLimit::new(2400, Duration::from_secs(60)));
    let seconds = serde_json::json!({"rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "SECOND", "intervalNum": 2, "limit": 50},
    ]});
    assert_eq!(request_weight_limit(&seconds), WeightLimit::new(50, Duration::from_secs(2)));
    for bad in [
        serde_json::json!({}),
        serde_json::json!({"rateLimits": "x"}),
        serde_json::json!({"rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "WEEK", "intervalNum": 1, "limit": 9}]}),
        serde_json::json!({"rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 0}]}),
    ] {
        assert_eq!(request_weight_limit(&bad), None, "{bad}");
    }
}

/// A real `exchangeInfo` is megabytes of symbols after `rateLimits`: the
/// limit is taken from the first bytes, as soon as they hold the array.
#[test]
fn the_limit_is_read_from_the_start_of_a_long_answer() {
    let head = r#"{"timezone":"UTC","serverTime":1,"rateLimits" : [{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":2400}],"symbols":[{"symbol":"BTCUSDT"},{"sym"#;
    let v = leading_rate_limits(head.as_bytes()).unwrap();
    assert_eq!(request_weight_limit(&v), WeightLimit::new(2400, Duration::from_secs(60)));
    let cut = &head[..head.find("\"limit\"").unwrap()];
    assert_eq!(leading_rate_limits(cut.as_bytes()), None, "not yet the whole array");
    assert_eq!(leading_rate_limits(br#"{"timezone":"UTC","symbols":[{"#), None);
    let whole = br#"{"rateLimits":[]}"#;
    assert_eq!(leading_rate_limits(whole), Some(serde_json::json!({"rateLimits": []})));
}

#[test]
fn weight_limits_parse_and_refuse() {
    assert_eq!(WeightLimit::parse("2400/1m"), Ok(WeightLimit { limit: 2400, window: Duration::from_secs(60) }));
    assert_eq!(WeightLimit::parse(" 50 / 2s ").map(|l| l.to_string()), Ok("50/2s".to_owned()));
    for bad in ["2400", "0/1m", "x/1m", "10/0s", "10/2d", "10/1500ms", "10/soon"] {
        assert!(WeightLimit::parse(bad).is_err(), "{bad}");
    }
    assert!(is_family("fapi") && is_family("mexc-api") && !is_family("FAPI") && !is_family("") && !is_family("a/b"));
    assert_eq!(family_of("/fapi/v1/listenKey"), "fapi");
}

/// Limit 20 per second, share 0.25: the keeper sends 5 a window, so 20
/// requests take four windows, the last sent at the start of the fourth.
#[tokio::test(start_paused = true)]
async fn the_keeper_spends_its_share_a_window_and_no_more() {
    let (budgets, clock) = budgets(0.25, 0.9, "20/1s");
    let host = budgets.host("h:1", None, &clock);
    let start = Instant::now();
    let mut sent_at = Vec::new();
    for _ in 0..20 {
        let p = host.acquire(ask(origin() + Duration::from_secs(60))).await;
        p.answered(200, &HeaderMap::new(), None, true);
        sent_at.push(start.elapsed().as_secs());
    }
    for (window, chunk) in sent_at.chunks(5).enumerate() {
        assert!(chunk.iter().all(|s| *s == window as u64), "{sent_at:?}");
    }
    let view = budgets.view();
    assert_eq!((view[0].own, view[0].queued), (5, 0));
    assert_eq!(view[0].limit.map(|(l, s)| (l.limit, s)), Some((20, Source::Config)));
}

/// The bots have used 17 of 20 (reported by an answer): with ceiling 0.9
/// only one more fits this window, whatever the share.
#[tokio::test(start_paused = true)]
async fn the_ips_used_weight_is_kept_under_the_ceiling() {
    let (budgets, clock) = budgets(0.9, 0.9, "20/1s");
    let host = budgets.host("h:1", None, &clock);
    let start = Instant::now();
    let p = host.acquire(ask(origin())).await;
    p.answered(200, &headers(&[("X-MBX-USED-WEIGHT-1S", "16")]), None, true);
    let p = host.acquire(ask(origin())).await;
    assert_eq!(start.elapsed(), Duration::ZERO, "17 of 20: still under 18");
    p.answered(200, &headers(&[("X-MBX-USED-WEIGHT-1S", "18")]), None, true);
    let _p = host.acquire(ask(origin())).await;
    assert_eq!(start.elapsed(), Duration::from_secs(1), "the next window");
}

/// With the share spent, a creation queues first and a keepalive whose key
/// expires sooner queues after it: the keepalive goes first.
#[tokio::test(start_paused = true)]
async fn the_credential_expiring_first_is_served_first() {
    let (budgets, clock) = budgets(0.25, 0.9, "4/1s");
    let host = budgets.host("h:1", None, &clock);
    host.acquire(ask(origin())).await.answered(200, &HeaderMap::new(), None, true);
    let order = Arc::new(Mutex::new(Vec::new()));
    let spawn = |name: &'static str, expires: SystemTime| {
        let (host, order) = (host.clone(), order.clone());
        tokio::spawn(async move {
            let _p = host.acquire(ask(expires)).await;
            order.lock().unwrap().push(name);
        })
    };
    let creation = spawn("creation", origin() + Duration::from_secs(3600));
    tokio::task::yield_now().await;
    let keepalive = spawn("keepalive", origin() + Duration::from_secs(60));
    tokio::task::yield_now().await;
    assert_eq!(budgets.view()[0].queued, 2);
    creation.await.unwrap();
    keepalive.await.unwrap();
    assert_eq!(*order.lock().unwrap(), ["keepalive", "creation"]);
}

/// A 429 closes the family for its Retry-After (and is counted); a request
/// that gives up waiting leaves the queue.
#[tokio::test(start_paused = true)]
async fn a_429_closes_the_family_for_its_retry_after() {
    let (budgets, clock) = budgets(1.0, 1.0, "1000/1m");
    let host = budgets.host("h:1", None, &clock);
    let start = Instant::now();
    host.acquire(ask(origin()))
        .await
        .answered(429, &HeaderMap::new(), Some(Duration::from_secs(7)), true);
    assert_eq!(budgets.rate_limited_total(), 1);
    let gave_up = tokio::time::timeout(Duration::from_secs(1), host.acquire(ask(origin()))).await;
    assert!(gave_up.is_err());
    assert_eq!(budgets.view()[0].queued, 0);
    let _p = host.acquire(ask(origin())).await;
    assert_eq!(start.elapsed(), Duration::from_secs(7));
    // Another egress address has a budget of its own.
    let other = budgets.host("h:1", Some("127.0.0.3".parse().unwrap()), &clock);
    let before = Instant::now();
    let _q = other.acquire(ask(origin())).await;
    assert_eq!(before.elapsed(), Duration::ZERO);
}

/// A family the exchange publishes is asked once; requests wait for the
/// answer, which then replaces the documented limit.
#[tokio::test(start_paused = true)]
async fn a_learned_limit_replaces_the_documented_one() {
    let budgets = Budgets::new(Limits::default());
    let clock: SharedClock = ManualClock::new(origin());
    let host = budgets.host("h:1", None, &clock);
    let documented = WeightLimit::new(2400, Duration::from_secs(60));
    assert!(host.should_learn("fapi"));
    assert!(!host.should_learn("fapi"), "one question at a time");
    let waiting = {
        let host = host.clone();
        tokio::spawn(async move {
            host.acquire(Ask {
                documented,
                ..ask(origin())
            })
            .await
            .answered(200, &HeaderMap::new(), None, true)
        })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!waiting.is_finished(), "held while learning");
    host.learned("fapi", WeightLimit::new(8, Duration::from_secs(2)), 1, &[], documented);
    waiting.await.unwrap();
    let view = budgets.view();
    assert_eq!(view[0].limit.map(|(l, s)| (l.limit, s)), Some((8, Source::Exchange)));
    assert_eq!(view[0].own, 2);
    assert!(!host.should_learn("fapi"), "kept for an hour");
    tokio::time::advance(RELEARN_EVERY).await;
    assert!(host.should_learn("fapi"));
    // A question given up unanswered holds nobody.
    drop(Asking::new(&host, "fapi"));
    let _p = host.acquire(Ask { documented, ..ask(origin()) }).await;
}

/// The first question for a family given up (its caller gone) releases the
/// requests held for it: they go on with the documented limit.
#[tokio::test(start_paused = true)]
async fn a_question_given_up_releases_the_waiting() {
    let budgets = Budgets::new(Limits::default());
    let clock: SharedClock = ManualClock::new(origin());
    let host = budgets.host("h:1", None, &clock);
    let documented = WeightLimit::new(2400, Duration::from_secs(60));
    assert!(host.should_learn("fapi"));
    let asking = Asking::new(&host, "fapi");
    let waiting = {
        let host = host.clone();
        tokio::spawn(async move { host.acquire(Ask { documented, ..ask(origin()) }).await.answered(200, &HeaderMap::new(), None, true) })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!waiting.is_finished());
    drop(asking);
    waiting.await.unwrap();
    assert_eq!(budgets.view()[0].limit.map(|(_, s)| s), Some(Source::Profile));
}
