//! The simulator's request-weight limits over real HTTP, from real loopback
//! addresses: `exchangeInfo` states the limits, every answer carries the used
//! weight, a client over the limit gets 429 with `Retry-After` and `-1003`,
//! one that keeps sending gets 418, another address is untouched, `/sapi`
//! answers 429 only, and the other clients' weight (`POST /_sim/weight`)
//! counts against the same limit.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use listenkeyd_sim::weight::{Limit, Rules};
use listenkeyd_sim::{self as sim, SimConfig, SimHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const KEY: &str = "sim-weight-api-key";

/// A simulator with `fapi` and `sapi` limited to `limit` a minute, on a clock
/// that stands still half-way through a minute, so no test meets a new window.
async fn start(limit: u64) -> (SimHandle, tokio_util::sync::DropGuard) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cancel = CancellationToken::new();
    let limit = Limit {
        limit,
        window: Duration::from_secs(60),
    };
    let cfg = SimConfig {
        weights: Rules {
            limits: vec![("fapi".into(), limit), ("sapi".into(), limit)],
            ..Rules::default()
        },
        ..SimConfig::default()
    };
    let clock = std::sync::Arc::new(|| 1_800_000_030_000);
    (
        sim::start_with_clock(listener, cfg, cancel.clone(), clock),
        cancel.drop_guard(),
    )
}

/// A client whose connections leave from `from` (a loopback address).
fn client(from: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(IpAddr::V4(Ipv4Addr::from(from)))
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap()
}

/// The simulator's URL.
fn url(h: &SimHandle, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", h.addr().port())
}

/// One request; (status, named header, body).
async fn send(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    header: &str,
) -> (u16, Option<String>, String) {
    let r = c.request(method, url).header("X-MBX-APIKEY", KEY).send().await.unwrap();
    let status = r.status().as_u16();
    let value = r.headers().get(header).and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, value, r.text().await.unwrap())
}

#[tokio::test]
async fn exchange_info_states_the_limit_and_every_answer_the_used_weight() {
    let (h, _g) = start(5).await;
    let c = client([127, 0, 0, 2]);
    let (status, used, body) = send(
        &c,
        reqwest::Method::GET,
        url(&h, "/fapi/v1/exchangeInfo"),
        "x-mbx-used-weight-1m",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(used.as_deref(), Some("1"));
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    let weight = &info["rateLimits"][0];
    assert_eq!(weight["rateLimitType"], "REQUEST_WEIGHT");
    assert_eq!(
        (weight["interval"].as_str(), weight["intervalNum"].as_u64()),
        (Some("MINUTE"), Some(1))
    );
    assert_eq!(weight["limit"], 5);
    let (_, spot, _) = send(
        &c,
        reqwest::Method::GET,
        url(&h, "/api/v3/exchangeInfo"),
        "x-mbx-used-weight-1m",
    )
    .await;
    assert_eq!(spot.as_deref(), Some("20"), "spot's exchangeInfo weighs 20");
}

#[tokio::test]
async fn over_the_limit_429_then_418_and_another_address_is_untouched() {
    let (h, _g) = start(3).await;
    let (a, b) = (client([127, 0, 0, 2]), client([127, 0, 0, 3]));
    let post = reqwest::Method::POST;
    for n in 1..=3 {
        let (status, used, body) = send(&a, post.clone(), url(&h, "/fapi/v1/listenKey"), "x-mbx-used-weight-1m").await;
        assert_eq!((status, used), (200, Some(n.to_string())), "{body}");
    }
    let (status, retry, body) = send(&a, post.clone(), url(&h, "/fapi/v1/listenKey"), "retry-after").await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("-1003") && body.contains("127.0.0.2"), "{body}");
    let retry: u64 = retry.unwrap().parse().unwrap();
    assert!(
        (1..=60).contains(&retry),
        "Retry-After {retry}: to the end of the minute"
    );
    let (status, _, body) = send(&b, post.clone(), url(&h, "/fapi/v1/listenKey"), "retry-after").await;
    assert_eq!(status, 200, "127.0.0.3 has its own budget: {body}");
    let (status, retry, body) = send(&a, post.clone(), url(&h, "/fapi/v1/listenKey"), "retry-after").await;
    assert_eq!(status, 418, "sent during the back-off: {body}");
    assert_eq!(retry.as_deref(), Some("120"), "the first ban is 2 minutes");
    assert!(body.contains("banned until"), "{body}");
    let usage = h.weight_usage();
    let of = |ip: &str| usage.iter().find(|u| u.ip == ip && u.family == "fapi").unwrap();
    assert_eq!((of("127.0.0.2").refused_429, of("127.0.0.2").refused_418), (1, 1));
    assert_eq!((of("127.0.0.3").refused_429, of("127.0.0.3").used), (0, 1));
}

#[tokio::test]
async fn sapi_answers_429_only() {
    let (h, _g) = start(1).await;
    let c = client([127, 0, 0, 2]);
    let mint = || url(&h, "/sapi/v1/userListenToken");
    let (status, uid, _) = send(&c, reqwest::Method::POST, mint(), "x-sapi-used-uid-weight-1m").await;
    assert_eq!((status, uid.as_deref()), (200, Some("1")));
    for _ in 0..3 {
        let (status, _, body) = send(&c, reqwest::Method::POST, mint(), "retry-after").await;
        assert_eq!(status, 429, "{body}");
    }
}

#[tokio::test]
async fn the_other_clients_weight_counts_against_the_same_limit() {
    let (h, _g) = start(10).await;
    let c = client([127, 0, 0, 2]);
    let admin = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = admin
        .post(url(&h, "/_sim/weight"))
        .body(r#"{"family":"fapi","weight":9,"ip":"127.0.0.2"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (status, used, _) = send(
        &c,
        reqwest::Method::PUT,
        url(&h, "/fapi/v1/listenKey"),
        "x-mbx-used-weight-1m",
    )
    .await;
    assert_eq!(used.as_deref(), Some("10"), "the bots' 9 and this request");
    assert_ne!(status, 429);
    let (status, _, _) = send(&c, reqwest::Method::PUT, url(&h, "/fapi/v1/listenKey"), "retry-after").await;
    assert_eq!(status, 429);
    let r = admin
        .post(url(&h, "/_sim/weight"))
        .body(r#"{"family":"fapi"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "a weight is required");
}
