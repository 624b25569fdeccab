//! The simulator's reliability faults over real HTTP: a TCP reset instead of
//! an answer, a padded (oversized) answer, and an outage during which the
//! port refuses connections and after which the same port answers again.

use std::time::{Duration, Instant};

use listenkeyd_sim::{self as sim, Fault, SimConfig, SimHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const KEY: &str = "sim-faults-api-key";

async fn start(faults: &[&str]) -> (SimHandle, tokio_util::sync::DropGuard) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cancel = CancellationToken::new();
    let cfg = SimConfig {
        faults: faults.iter().map(|f| Fault::parse(f).unwrap()).collect(),
        ..SimConfig::default()
    };
    (sim::start(listener, cfg, cancel.clone()).await, cancel.drop_guard())
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap()
}

async fn post(c: &reqwest::Client, h: &SimHandle) -> reqwest::Result<(u16, String)> {
    let r = c
        .post(format!("{}/fapi/v1/listenKey", h.url()))
        .header("X-MBX-APIKEY", KEY)
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.text().await?))
}

#[tokio::test]
async fn reset_aborts_the_connection_and_later_requests_are_served() {
    let (h, _g) = start(&["POST /fapi/v1/listenKey reset count=1"]).await;
    let c = client();
    let e = post(&c, &h).await.unwrap_err();
    assert!(!e.is_timeout(), "a reset is immediate: {e:?}");
    let (status, body) = post(&c, &h).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let reqs = h.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].status, None, "no answer was sent to the reset request");
}

#[tokio::test]
async fn pad_makes_the_real_answer_oversized_but_valid() {
    let (h, _g) = start(&["POST /fapi/v1/listenKey pad=70000 count=1"]).await;
    let c = client();
    let (status, body) = post(&c, &h).await.unwrap();
    assert_eq!(status, 200);
    assert!(body.len() > 70_000);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let key = v["listenKey"].as_str().unwrap();
    assert!(h.is_live(key), "the padded answer still did its work");
}

#[tokio::test]
async fn an_outage_refuses_connections_then_the_same_port_answers() {
    let (h, _g) = start(&[]).await;
    let c = client();
    assert_eq!(post(&c, &h).await.unwrap().0, 200);
    let started = Instant::now();
    h.refuse_connections(Duration::from_millis(800));
    // The pooled connection is aborted too: a request now fails fast, without an answer.
    let e = loop {
        match post(&c, &h).await {
            Err(e) => break e,
            Ok(_) => {
                assert!(started.elapsed() < Duration::from_millis(500), "still served");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    assert!(e.is_connect() || e.is_request(), "{e:?}");
    assert!(!e.is_timeout());
    let fresh = client();
    assert!(post(&fresh, &h).await.unwrap_err().is_connect(), "refused");
    // After it, the same address is served again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok((200, _)) = post(&fresh, &h).await {
            break;
        }
        assert!(Instant::now() < deadline, "the port never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(800));
}

#[tokio::test]
async fn the_admin_endpoint_starts_an_outage() {
    let (h, _g) = start(&[]).await;
    let c = client();
    let r = c
        .post(format!("{}/_sim/outage", h.url()))
        .body(r#"{"duration":"300ms"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let deadline = Instant::now() + Duration::from_secs(3);
    while !post(&client(), &h).await.is_err_and(|e| e.is_connect()) {
        assert!(Instant::now() < deadline, "never refused");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let bad = loop {
        if let Ok(r) = client()
            .post(format!("{}/_sim/outage", h.url()))
            .body(r#"{"duration":"soon"}"#)
            .send()
            .await
        {
            break r;
        }
        assert!(Instant::now() < deadline, "the port never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(bad.status().as_u16(), 400);
}
