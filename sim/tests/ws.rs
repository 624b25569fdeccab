//! The simulator's user-data WebSockets over real sockets on 127.0.0.1: the
//! WebSocket API (signature and listen-token subscriptions, unsubscribe,
//! session status), the futures private stream, events on demand, on a
//! schedule and from a test order, expiry, pong timeout, maximum age, cuts,
//! the connection rules and hostile frames.
//!
//! Every wait is on a frame or the end of the stream, bounded by [`WAIT`].

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use listenkeyd_sim::{self as sim, SimConfig, SimHandle, WsConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use tokio_util::sync::{CancellationToken, DropGuard};

/// The longest any single wait in these tests lasts.
const WAIT: Duration = Duration::from_secs(2);
const SECRET: &str = "ws-test-secret";
const KEY: &str = "ws-test-api-key";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn start(cfg: SimConfig) -> (SimHandle, DropGuard) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cancel = CancellationToken::new();
    let cfg = SimConfig {
        hmac_secret: Some(SECRET.into()),
        ..cfg
    };
    (sim::start(listener, cfg, cancel.clone()).await, cancel.drop_guard())
}

fn ws_cfg(ws: WsConfig) -> SimConfig {
    SimConfig {
        ws,
        ..SimConfig::default()
    }
}

async fn connect(h: &SimHandle, path: &str) -> Ws {
    let url = format!("ws://{}{path}", h.addr());
    timeout(WAIT, connect_async(url)).await.unwrap().unwrap().0
}

/// The next text frame as JSON, answering pings on the way; `None` when the stream ends.
async fn next(ws: &mut Ws) -> Option<Value> {
    loop {
        match timeout(WAIT, ws.next()).await.expect("a frame in time") {
            Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// Reads to the close frame; its code.
async fn closed_with(ws: &mut Ws) -> Option<CloseCode> {
    loop {
        match timeout(WAIT, ws.next()).await.expect("the close in time") {
            Some(Ok(Message::Close(f))) => return f.map(|f| f.code),
            None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

async fn call(ws: &mut Ws, req: Value) -> Value {
    ws.send(Message::text(req.to_string())).await.unwrap();
    next(ws).await.expect("an answer")
}

fn signed_params(api_key: &str, ts: i64) -> Value {
    let payload = format!("apiKey={api_key}&timestamp={ts}");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(payload.as_bytes());
    json!({ "apiKey": api_key, "timestamp": ts, "signature": hex::encode(mac.finalize().into_bytes()) })
}

async fn subscribe(ws: &mut Ws, h: &SimHandle, api_key: &str) -> Value {
    let params = signed_params(api_key, h.server_time_ms());
    call(
        ws,
        json!({"id": "s", "method": "userDataStream.subscribe.signature", "params": params}),
    )
    .await
}

async fn rest(h: &SimHandle, method: &str, path: &str, body: &str) -> Value {
    let c = reqwest::Client::builder().no_proxy().timeout(WAIT).build().unwrap();
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let r = c
        .request(m, format!("{}{path}", h.url()))
        .header("X-MBX-APIKEY", KEY)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null)
}

/// The event times of `frames`' events strictly increase.
fn increasing(frames: &[Value]) {
    let times: Vec<i64> = frames
        .iter()
        .map(|f| f.get("event").unwrap_or(f)["E"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
}

#[tokio::test]
async fn a_signature_subscription_gets_events_wrapped_with_its_id() {
    let (h, _g) = start(SimConfig::default()).await;
    let mut ws = connect(&h, "/ws-api/v3").await;
    let a = subscribe(&mut ws, &h, KEY).await;
    assert_eq!((a["id"].as_str(), a["status"].as_u64()), (Some("s"), Some(200)), "{a}");
    assert_eq!(a["result"]["subscriptionId"], json!(0));
    let again = subscribe(&mut ws, &h, KEY).await;
    assert_eq!(
        again["error"]["code"],
        json!(-2035),
        "one subscription per account: {again}"
    );
    let status = call(&mut ws, json!({"id": 1, "method": "session.status"})).await;
    assert_eq!(status["result"]["userDataStream"], json!(true), "{status}");
    let r = rest(
        &h,
        "POST",
        "/_sim/events",
        r#"{"scope":"spot","type":"executionReport","count":3}"#,
    )
    .await;
    assert_eq!(r["emitted"].as_array().map(Vec::len), Some(3), "{r}");
    let mut frames = Vec::new();
    for _ in 0..3 {
        let f = next(&mut ws).await.unwrap();
        assert_eq!(
            (f["subscriptionId"].as_u64(), f["event"]["e"].as_str()),
            (Some(0), Some("executionReport")),
            "{f}"
        );
        frames.push(f);
    }
    increasing(&frames);
    let un = call(&mut ws, json!({"id": 2, "method": "userDataStream.unsubscribe"})).await;
    assert_eq!(un["status"], json!(200), "{un}");
    let end = next(&mut ws).await.unwrap();
    assert_eq!(end["event"]["e"], json!("eventStreamTerminated"), "{end}");
    let log = h.ws_log();
    assert!(
        log.iter().any(|e| e.what == "subscribe" && !e.detail.contains(KEY)),
        "{log:?}"
    );
}

#[tokio::test]
async fn a_bad_signature_is_refused() {
    let (h, _g) = start(SimConfig::default()).await;
    let mut ws = connect(&h, "/ws-api/v3").await;
    let mut params = signed_params(KEY, h.server_time_ms());
    params["signature"] = json!("00");
    let a = call(
        &mut ws,
        json!({"id": 1, "method": "userDataStream.subscribe.signature", "params": params}),
    )
    .await;
    assert_eq!(
        (a["status"].as_u64(), a["error"]["code"].as_i64()),
        (Some(400), Some(-1022)),
        "{a}"
    );
}

#[tokio::test]
async fn a_listen_token_subscription_renews_and_ends_with_its_token() {
    let (h, _g) = start(SimConfig::default()).await;
    let mut ws = connect(&h, "/ws-api/v3").await;
    let bad = call(
        &mut ws,
        json!({"id": 1, "method": "userDataStream.subscribe.listenToken", "params": {"listenToken": "nope"}}),
    )
    .await;
    assert_eq!(bad["error"]["code"], json!(-1209), "{bad}");
    let first = rest(&h, "POST", "/sapi/v1/userListenToken?validity=60000", "").await;
    let p = json!({"listenToken": first["token"]});
    let a = call(
        &mut ws,
        json!({"id": 2, "method": "userDataStream.subscribe.listenToken", "params": p}),
    )
    .await;
    assert_eq!(a["result"]["subscriptionId"], json!(0), "{a}");
    // A new, shorter token renews the same subscription, which then ends with it.
    let second = rest(&h, "POST", "/sapi/v1/userListenToken?validity=300", "").await;
    let p = json!({"listenToken": second["token"]});
    let b = call(
        &mut ws,
        json!({"id": 3, "method": "userDataStream.subscribe.listenToken", "params": p}),
    )
    .await;
    assert_eq!(b["result"]["subscriptionId"], json!(0), "{b}");
    assert_eq!(b["result"]["expirationTime"], second["expirationTime"]);
    let end = next(&mut ws).await.unwrap();
    assert_eq!(
        (end["subscriptionId"].as_u64(), end["event"]["e"].as_str()),
        (Some(0), Some("eventStreamTerminated")),
        "{end}"
    );
    let status = call(&mut ws, json!({"id": 4, "method": "session.status"})).await;
    assert_eq!(
        status["result"]["userDataStream"],
        json!(false),
        "the connection stays open: {status}"
    );
}

#[tokio::test]
async fn a_futures_test_order_makes_its_events_on_the_private_stream() {
    let (h, _g) = start(SimConfig::default()).await;
    let key = rest(&h, "POST", "/fapi/v1/listenKey", "").await["listenKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ws = connect(&h, &format!("/private/ws?listenKey={key}")).await;
    let ack = rest(
        &h,
        "POST",
        "/fapi/v1/order",
        "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=2&price=100",
    )
    .await;
    assert_eq!(ack["status"], json!("NEW"), "{ack}");
    let frames = [
        next(&mut ws).await.unwrap(),
        next(&mut ws).await.unwrap(),
        next(&mut ws).await.unwrap(),
    ];
    let seen: Vec<(&str, &str)> = frames
        .iter()
        .map(|f| (f["e"].as_str().unwrap(), f["o"]["x"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        seen,
        [
            ("ORDER_TRADE_UPDATE", "NEW"),
            ("ORDER_TRADE_UPDATE", "TRADE"),
            ("ACCOUNT_UPDATE", "")
        ]
    );
    assert_eq!(frames[1]["o"]["i"], ack["orderId"]);
    assert_eq!(frames[1]["o"]["z"], json!("2"));
    increasing(&frames);
    // The path form serves the same key; another family's path refuses it.
    let mut by_path = connect(&h, &format!("/private/ws/{key}")).await;
    rest(&h, "POST", "/_sim/events", r#"{"type":"ACCOUNT_UPDATE"}"#).await;
    assert_eq!(next(&mut by_path).await.unwrap()["e"], json!("ACCOUNT_UPDATE"));
    let refused = connect_async(format!("ws://{}/pm/ws/{key}", h.addr())).await;
    assert!(refused.is_err(), "a USD-M key on the portfolio-margin path");
}

#[tokio::test]
async fn scheduled_events_reach_a_coin_m_stream() {
    let (h, _g) = start(ws_cfg(WsConfig {
        events_every: Some(Duration::from_millis(50)),
        ..WsConfig::default()
    }))
    .await;
    let key = rest(&h, "POST", "/dapi/v1/listenKey", "").await["listenKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ws = connect(&h, &format!("/ws/{key}")).await;
    let frames = [next(&mut ws).await.unwrap(), next(&mut ws).await.unwrap()];
    let kinds: Vec<&str> = frames.iter().map(|f| f["e"].as_str().unwrap()).collect();
    assert!(
        kinds
            .iter()
            .all(|k| ["ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE"].contains(k)),
        "{kinds:?}"
    );
    increasing(&frames);
}

#[tokio::test]
async fn an_expired_or_deleted_listen_key_ends_its_stream() {
    // The simulator's clock stands still until the test moves it past the
    // key's lifetime: a slow handshake cannot expire the key first.
    let now_ms = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    ));
    let clock = {
        let now_ms = now_ms.clone();
        std::sync::Arc::new(move || now_ms.load(std::sync::atomic::Ordering::SeqCst))
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cancel = CancellationToken::new();
    let cfg = SimConfig {
        listen_key_ttl: Duration::from_secs(60),
        hmac_secret: Some(SECRET.into()),
        ..SimConfig::default()
    };
    let h = sim::start_with_clock(listener, cfg, cancel.clone(), clock);
    let _g = cancel.drop_guard();
    let key = rest(&h, "POST", "/fapi/v1/listenKey", "").await["listenKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ws = connect(&h, &format!("/private/ws/{key}")).await;
    now_ms.fetch_add(61_000, std::sync::atomic::Ordering::SeqCst);
    let f = next(&mut ws).await.unwrap();
    assert_eq!(
        (f["e"].as_str(), f["listenKey"].as_str()),
        (Some("listenKeyExpired"), Some(key.as_str()))
    );
    assert_eq!(closed_with(&mut ws).await, Some(CloseCode::Normal));
    let risk = rest(&h, "POST", "/sapi/v1/margin/listen-key", "").await["listenKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ws = connect(&h, &format!("/ws/{risk}")).await;
    rest(
        &h,
        "POST",
        "/_sim/events",
        r#"{"scope":"margin-risk","type":"MARGIN_LEVEL_STATUS_CHANGE"}"#,
    )
    .await;
    assert_eq!(next(&mut ws).await.unwrap()["e"], json!("MARGIN_LEVEL_STATUS_CHANGE"));
    rest(
        &h,
        "DELETE",
        &format!("/sapi/v1/margin/listen-key?listenKey={risk}"),
        "",
    )
    .await;
    assert_eq!(next(&mut ws).await.unwrap()["e"], json!("listenKeyExpired"));
}

/// Opens a WebSocket by hand and never answers anything, reading until the server ends it.
async fn silent_client(h: &SimHandle, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(h.addr()).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        h.addr()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut all = Vec::new();
    timeout(WAIT, s.read_to_end(&mut all))
        .await
        .expect("the server ends it")
        .ok();
    all
}

#[tokio::test]
async fn a_connection_that_does_not_pong_is_closed() {
    let (h, _g) = start(ws_cfg(WsConfig {
        ping_every: Some(Duration::from_millis(100)),
        pong_timeout: Some(Duration::from_millis(600)),
        ..WsConfig::default()
    }))
    .await;
    let bytes = silent_client(&h, "/ws-api/v3").await;
    assert!(
        bytes.starts_with(b"HTTP/1.1 101"),
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
    // A close frame (0x88) carrying 1008 (0x03f0).
    assert!(
        bytes.windows(4).any(|w| w[0] == 0x88 && w[2..] == [0x03, 0xf0]),
        "no close frame"
    );
    assert!(
        h.ws_log()
            .iter()
            .any(|e| e.what == "cut" && e.detail == "no pong in time")
    );
    // A client that answers pings (tungstenite does, as it reads) stays past the deadline.
    let mut ws = connect(&h, "/ws-api/v3").await;
    let mut pings = 0;
    while pings < 5 {
        match timeout(WAIT, ws.next()).await.expect("a ping in time") {
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("expected pings, got {other:?}"),
        }
    }
    assert_eq!(
        call(&mut ws, json!({"id": 2, "method": "time"})).await["status"],
        json!(200)
    );
}

#[tokio::test]
async fn the_maximum_age_ends_a_connection_after_server_shutdown() {
    let (h, _g) = start(ws_cfg(WsConfig {
        max_connection_age: Duration::from_millis(300),
        shutdown_notice: true,
        ..WsConfig::default()
    }))
    .await;
    let mut ws = connect(&h, "/ws-api/v3").await;
    let f = next(&mut ws).await.unwrap();
    assert_eq!(f["event"]["e"], json!("serverShutdown"), "{f}");
    assert_eq!(closed_with(&mut ws).await, Some(CloseCode::Away));
}

#[tokio::test]
async fn a_cut_resets_and_terminate_ends_subscriptions() {
    let (h, _g) = start(SimConfig::default()).await;
    let mut a = connect(&h, "/ws-api/v3").await;
    subscribe(&mut a, &h, KEY).await;
    rest(&h, "POST", "/_sim/ws/terminate", r#"{"scope":"spot"}"#).await;
    assert_eq!(
        next(&mut a).await.unwrap()["event"]["e"],
        json!("eventStreamTerminated")
    );
    let r = rest(&h, "POST", "/_sim/ws/cut", r#"{"reset":true}"#).await;
    assert_eq!(r["connections"], json!(1), "{r}");
    let end = timeout(WAIT, a.next()).await.expect("the cut in time");
    assert!(matches!(end, None | Some(Err(_))), "no close frame on a reset: {end:?}");
}

#[tokio::test]
async fn hostile_frames_get_error_answers() {
    let (h, _g) = start(SimConfig::default()).await;
    let mut ws = connect(&h, "/ws-api/v3").await;
    for (frame, code) in [
        (Message::text("{not json"), -1135),
        (Message::text(r#"{"id":1,"method":"order.place","params":{}}"#), -1020),
        (Message::text(r#"{"id":1,"method":"ping","params":[]}"#), -1135),
        (Message::binary(vec![0u8, 159, 146, 150]), -1135),
        (
            Message::text(r#"{"id":1,"method":"userDataStream.subscribe.signature","params":{}}"#),
            -1102,
        ),
    ] {
        ws.send(frame).await.unwrap();
        let a = next(&mut ws).await.unwrap();
        assert_eq!(
            (a["status"].as_u64(), a["error"]["code"].as_i64()),
            (Some(400), Some(code)),
            "{a}"
        );
    }
    ws.send(Message::text("x".repeat(100_000))).await.unwrap();
    let a = next(&mut ws).await.unwrap();
    assert_eq!(a["error"]["code"], json!(-1135), "{a}");
    // Then the connection ends (with 1009 when the socket still takes a close frame).
    let end = closed_with(&mut ws).await;
    assert!(matches!(end, Some(CloseCode::Size) | None), "{end:?}");
    // The simulator is still up.
    let mut again = connect(&h, "/ws-api/v3").await;
    assert_eq!(
        call(&mut again, json!({"id": 1, "method": "ping"})).await["status"],
        json!(200)
    );
}

#[tokio::test]
async fn connection_rules() {
    let (h, _g) = start(ws_cfg(WsConfig {
        attempts_per_ip: 3,
        max_subscriptions: 2,
        ..WsConfig::default()
    }))
    .await;
    let mut ws = connect(&h, "/ws-api/v3").await;
    for (i, key) in ["k1", "k2", "k3"].iter().enumerate() {
        let a = subscribe(&mut ws, &h, key).await;
        if i < 2 {
            assert_eq!(a["result"]["subscriptionId"], json!(i), "{a}");
        } else {
            assert_eq!(a["error"]["code"], json!(-1013), "{a}");
        }
    }
    let unknown = connect_async(format!("ws://{}/private/ws/nope", h.addr())).await;
    assert!(unknown.is_err(), "an unknown listen key is refused");
    // That was the second attempt; the third is served, the fourth refused with 429.
    let _third = connect(&h, "/ws-api/v3").await;
    match connect_async(format!("ws://{}/ws-api/v3", h.addr())).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 429),
        other => panic!("expected a 429, got {other:?}"),
    }
}

#[tokio::test]
async fn a_combined_stream_carries_several_keys_and_survives_one_expiring() {
    let (h, _g) = start(SimConfig::default()).await;
    let k1 = rest(&h, "POST", "/fapi/v1/listenKey", "").await["listenKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = reqwest::Client::builder().no_proxy().timeout(WAIT).build().unwrap();
    let other = c
        .post(format!("{}/fapi/v1/listenKey", h.url()))
        .header("X-MBX-APIKEY", "another-account")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let k2 = serde_json::from_str::<Value>(&other).unwrap()["listenKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ws = connect(&h, &format!("/private/stream?streams={k1}")).await;
    let sub = call(
        &mut ws,
        json!({"method": "SUBSCRIBE", "params": [k2, "btcusdt@aggTrade"], "id": 1}),
    )
    .await;
    assert_eq!(sub, json!({"result": null, "id": 1}));
    let list = call(&mut ws, json!({"method": "LIST_SUBSCRIPTIONS", "id": 2})).await;
    assert_eq!(list["result"], json!([k1, k2]), "{list}");
    rest(&h, "POST", "/_sim/events", r#"{"type":"ACCOUNT_UPDATE"}"#).await;
    let mut streams = vec![];
    for _ in 0..2 {
        let f = next(&mut ws).await.unwrap();
        assert_eq!(f["data"]["e"], json!("ACCOUNT_UPDATE"), "{f}");
        streams.push(f["stream"].as_str().unwrap().to_owned());
    }
    streams.sort();
    let mut both = vec![k1.clone(), k2.clone()];
    both.sort();
    assert_eq!(streams, both);
    rest(&h, "DELETE", "/fapi/v1/listenKey", "").await;
    let f = next(&mut ws).await.unwrap();
    assert_eq!(
        (f["stream"].as_str(), f["data"]["e"].as_str()),
        (Some(k1.as_str()), Some("listenKeyExpired")),
        "{f}"
    );
    rest(&h, "POST", "/_sim/events", r#"{"type":"ORDER_TRADE_UPDATE"}"#).await;
    let f = next(&mut ws).await.unwrap();
    assert_eq!(
        (f["stream"].as_str(), f["data"]["e"].as_str()),
        (Some(k2.as_str()), Some("ORDER_TRADE_UPDATE")),
        "{f}"
    );
    // Market-data paths open and stay quiet.
    let mut market = connect(&h, "/market/stream").await;
    let answer = call(
        &mut market,
        json!({"method": "SUBSCRIBE", "params": ["btcusdt@markPrice"], "id": 3}),
    )
    .await;
    assert_eq!(answer["id"], json!(3));
}

#[tokio::test]
async fn an_outage_resets_open_websockets() {
    let (h, _g) = start(SimConfig::default()).await;
    let mut ws = connect(&h, "/ws-api/v3").await;
    h.refuse_connections(Duration::from_millis(200));
    let end = timeout(WAIT, ws.next()).await.expect("the outage in time");
    assert!(
        matches!(end, None | Some(Err(_))),
        "no close frame in an outage: {end:?}"
    );
    assert!(h.ws_log().iter().any(|e| e.what == "close" && e.detail == "reset"));
}

/// Opens a WebSocket by hand and sends only unsolicited (empty, masked) pongs
/// every 50 ms, `n` times; true when the server has not ended it by then.
async fn unsolicited_pongs(h: &SimHandle, path: &str, n: usize) -> bool {
    let mut s = TcpStream::connect(h.addr()).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        h.addr()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    for _ in 0..n {
        tick.tick().await;
        if s.write_all(&[0x8a, 0x80, 0, 0, 0, 0]).await.is_err() {
            break;
        }
    }
    cut_for_no_pong(h)
}

/// Whether the simulator's log shows a connection cut for want of a pong.
fn cut_for_no_pong(h: &SimHandle) -> bool {
    h.ws_log()
        .iter()
        .any(|e| e.what == "cut" && e.detail == "no pong in time")
}

#[tokio::test]
async fn unsolicited_pongs_keep_a_stream_but_not_a_ws_api_session() {
    // Pongs every 50 ms against a deadline of a second: only a stall of
    // twenty ticks could look like silence.
    let (h, _g) = start(ws_cfg(WsConfig {
        ping_every: Some(Duration::from_millis(100)),
        pong_timeout: Some(Duration::from_secs(1)),
        ..WsConfig::default()
    }))
    .await;
    let key = rest(&h, "POST", "/dapi/v1/listenKey", "").await["listenKey"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !unsolicited_pongs(&h, &format!("/ws/{key}"), 30).await,
        "a stream took them as keepalives"
    );
    // The WebSocket API is cut a second after its first unanswered ping, pongs or not.
    unsolicited_pongs(&h, "/ws-api/v3", 30).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cut_for_no_pong(&h) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the WebSocket API took them as keepalives"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn session_logon_subscribes_and_logout_ends_only_that_subscription() {
    let (h, _g) = start(SimConfig::default()).await;
    let mut ws = connect(&h, "/ws-api/v3").await;
    let early = call(&mut ws, json!({"id": 1, "method": "userDataStream.subscribe"})).await;
    assert_eq!(early["error"]["code"], json!(-1002), "not logged on: {early}");
    let params = signed_params(KEY, h.server_time_ms());
    let logon = call(&mut ws, json!({"id": 2, "method": "session.logon", "params": params})).await;
    assert_eq!(logon["result"]["apiKey"], json!(KEY), "{logon}");
    let sub = call(&mut ws, json!({"id": 3, "method": "userDataStream.subscribe"})).await;
    assert_eq!(sub["result"]["subscriptionId"], json!(0), "{sub}");
    assert_eq!(
        subscribe(&mut ws, &h, "other-account").await["result"]["subscriptionId"],
        json!(1)
    );
    let out = call(&mut ws, json!({"id": 4, "method": "session.logout"})).await;
    assert_eq!(out["status"], json!(200), "{out}");
    let end = next(&mut ws).await.unwrap();
    assert_eq!(
        (end["subscriptionId"].as_u64(), end["event"]["e"].as_str()),
        (Some(0), Some("eventStreamTerminated")),
        "{end}"
    );
    let status = call(&mut ws, json!({"id": 5, "method": "session.status"})).await;
    assert_eq!(
        (
            status["result"]["apiKey"].is_null(),
            &status["result"]["userDataStream"]
        ),
        (true, &json!(true)),
        "{status}"
    );
    let subs = call(&mut ws, json!({"id": 6, "method": "session.subscriptions"})).await;
    assert_eq!(
        subs["result"],
        json!([{"subscriptionId": 1}]),
        "the signature subscription stays"
    );
}

#[tokio::test]
async fn the_connection_list_follows_subscriptions() {
    let (h, _g) = start(SimConfig::default()).await;
    let mut ws = connect(&h, "/ws-api/v3").await;
    subscribe(&mut ws, &h, KEY).await;
    let subs = |h: &SimHandle| h.ws_connections().iter().map(|c| c.subscriptions.len()).sum::<usize>();
    assert_eq!(subs(&h), 1);
    rest(&h, "POST", "/_sim/ws/terminate", "").await;
    assert_eq!(
        next(&mut ws).await.unwrap()["event"]["e"],
        json!("eventStreamTerminated")
    );
    assert_eq!(subs(&h), 0, "a terminated subscription is no longer listed");
    let listed = rest(&h, "GET", "/_sim/ws", "").await;
    assert_eq!(listed[0]["path"], json!("/ws-api/v3"), "{listed}");
    assert!(!listed.to_string().contains(KEY), "no full key in the listing");
}

#[tokio::test]
async fn a_stream_client_past_ten_messages_a_second_is_disconnected() {
    let (h, _g) = start(SimConfig::default()).await;
    let key = rest(&h, "POST", "/dapi/v1/listenKey", "").await["listenKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ws = connect(&h, &format!("/stream?streams={key}")).await;
    for i in 0..11 {
        ws.send(Message::text(
            json!({"method": "LIST_SUBSCRIPTIONS", "id": i}).to_string(),
        ))
        .await
        .unwrap();
    }
    let mut answers = 0;
    loop {
        match timeout(WAIT, ws.next()).await.expect("a frame in time") {
            Some(Ok(Message::Text(_))) => answers += 1,
            Some(Ok(Message::Close(f))) => {
                assert_eq!(f.map(|f| f.code), Some(CloseCode::Policy));
                break;
            }
            other => panic!("expected answers then a close, got {other:?}"),
        }
    }
    assert_eq!(answers, 10, "the first ten are answered");
}
