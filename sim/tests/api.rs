//! The simulator over real HTTP: Binance's listen-key and listen-token
//! semantics, signatures and clock skew, faults, revocation, expiry, and the
//! `/_sim/` admin endpoint. Requests are signed here with HMAC-SHA256 as
//! Binance documents it, independently of the keeper's signer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use listenkeyd_sim::{self as sim, Fault, SimConfig, SimHandle};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A running simulator and a client for it; the simulator stops when this is dropped.
struct Sim {
    /// The simulator.
    h: SimHandle,
    /// A client that bypasses any proxy.
    client: reqwest::Client,
    /// Stops the simulator on drop.
    _guard: tokio_util::sync::DropGuard,
}

/// An answer: status, `Retry-After` if any, body as JSON.
struct Answer {
    /// HTTP status.
    status: u16,
    /// The `Retry-After` header.
    retry_after: Option<String>,
    /// The body, parsed (an HTML page becomes a JSON string).
    json: Value,
    /// Every header.
    headers: reqwest::header::HeaderMap,
}

async fn sim(cfg: SimConfig) -> Sim {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cancel = CancellationToken::new();
    let h = sim::start(listener, cfg, cancel.clone()).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    Sim {
        h,
        client,
        _guard: cancel.drop_guard(),
    }
}

impl Sim {
    async fn try_send(&self, method: &str, path_and_query: &str, api_key: Option<&str>) -> reqwest::Result<Answer> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.client.request(method, format!("{}{path_and_query}", self.h.url()));
        if let Some(k) = api_key {
            rb = rb.header("X-MBX-APIKEY", k);
        }
        let resp = rb.send().await?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let headers = resp.headers().clone();
        let html = headers["content-type"] == "text/html";
        if !html {
            assert_eq!(headers["content-type"], "application/json");
        }
        let text = resp.text().await?;
        let json = if html {
            Value::String(text)
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?} is not JSON: {e}"))
        };
        Ok(Answer {
            status,
            retry_after,
            json,
            headers,
        })
    }

    /// Sends with the API key `k1`.
    async fn send(&self, method: &str, path_and_query: &str) -> Answer {
        self.try_send(method, path_and_query, Some("k1")).await.unwrap()
    }

    async fn admin(&self, method: &str, path: &str, body: &str) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = self
            .client
            .request(method, format!("{}{path}", self.h.url()))
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        serde_json::from_str(&resp.text().await.unwrap()).unwrap()
    }
}

fn code(a: &Answer) -> i64 {
    a.json["code"].as_i64().unwrap_or(0)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// `query` with Binance's HMAC-SHA256 `signature` of it appended.
fn signed(query: &str, secret: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(query.as_bytes());
    let sig = hex::encode(mac.finalize().into_bytes());
    format!("{query}&signature={sig}")
}

#[tokio::test]
async fn listen_keys_follow_binance() {
    // The 2025 profile: the original margin listen keys are served.
    let s = sim(SimConfig::binance_2025()).await;
    let a = s.send("POST", "/fapi/v1/listenKey").await;
    assert_eq!(a.status, 200);
    let key = a.json["listenKey"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 60);
    let expiry = s.h.active()[0].expires_at_ms;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        s.send("POST", "/fapi/v1/listenKey").await.json["listenKey"],
        key.as_str(),
        "POST returns the same key"
    );

    // USD-M PUT echoes the key; the other families answer {}.
    let put = s.send("PUT", "/fapi/v1/listenKey").await;
    assert_eq!((put.status, put.json["listenKey"].as_str()), (200, Some(key.as_str())));
    assert!(s.h.active()[0].expires_at_ms > expiry, "PUT extends");
    assert_eq!(
        s.send("PUT", "/dapi/v1/listenKey").await.json["code"],
        -1125,
        "no COIN-M key yet"
    );
    s.send("POST", "/dapi/v1/listenKey").await;
    assert_eq!(s.send("PUT", "/dapi/v1/listenKey").await.json, serde_json::json!({}));
    assert_ne!(
        s.try_send("POST", "/fapi/v1/listenKey", Some("k2")).await.unwrap().json["listenKey"],
        key.as_str()
    );

    // Isolated margin: per symbol, PUT/DELETE name the key.
    let iso = s
        .send("POST", "/sapi/v1/userDataStream/isolated?symbol=BTCUSDT")
        .await
        .json["listenKey"]
        .clone();
    let iso = iso.as_str().unwrap();
    assert_eq!(
        s.send(
            "PUT",
            &format!("/sapi/v1/userDataStream/isolated?symbol=BTCUSDT&listenKey={iso}")
        )
        .await
        .json,
        serde_json::json!({})
    );
    let wrong = s
        .send(
            "PUT",
            &format!("/sapi/v1/userDataStream/isolated?symbol=ETHUSDT&listenKey={iso}"),
        )
        .await;
    assert_eq!((wrong.status, code(&wrong)), (400, -1125));
    let unknown = s
        .send("PUT", "/sapi/v1/userDataStream/isolated?symbol=BTCUSDT&listenKey=nope")
        .await;
    assert_eq!(
        (unknown.status, unknown.json["msg"].as_str()),
        (400, Some("This listenKey does not exist."))
    );
    assert_eq!(
        code(&s.send("PUT", "/sapi/v1/userDataStream/isolated?symbol=BTCUSDT").await),
        -1102
    );
    assert_eq!(
        code(&s.send("POST", "/sapi/v1/userDataStream/isolated?symbol=btc").await),
        -1102
    );
    assert_eq!(code(&s.send("POST", "/sapi/v1/userDataStream/isolated").await), -1102);
    assert_eq!(
        s.send(
            "DELETE",
            &format!("/sapi/v1/userDataStream/isolated?symbol=BTCUSDT&listenKey={iso}")
        )
        .await
        .status,
        200
    );
    assert!(!s.h.is_live(iso));

    // Cross margin.
    let cross = s.send("POST", "/sapi/v1/userDataStream").await.json["listenKey"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        s.send("PUT", &format!("/sapi/v1/userDataStream?listenKey={cross}"))
            .await
            .status,
        200
    );

    // API key, unknown path, server time.
    let none = s.try_send("POST", "/fapi/v1/listenKey", None).await.unwrap();
    assert_eq!((none.status, code(&none)), (401, -2014));
    let nf = s.send("GET", "/fapi/v1/nothing").await;
    assert_eq!(nf.status, 404);
    assert!(
        nf.json.as_str().unwrap().contains("<title>404 Not Found</title>"),
        "{}",
        nf.json
    );
    let t = s.try_send("GET", "/api/v3/time", None).await.unwrap();
    assert!((t.json["serverTime"].as_i64().unwrap() - now_ms()).abs() < 5_000);
}

#[tokio::test]
async fn accepted_api_keys_are_enforced() {
    let s = sim(SimConfig {
        api_keys: vec!["good".into()],
        ..SimConfig::default()
    })
    .await;
    let bad = s.try_send("POST", "/fapi/v1/listenKey", Some("bad")).await.unwrap();
    assert_eq!((bad.status, code(&bad)), (401, -2015));
    assert_eq!(
        s.try_send("POST", "/fapi/v1/listenKey", Some("good"))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn unsigned_tokens_when_no_secret_is_configured() {
    let s = sim(SimConfig::default()).await;
    let a = s.send("POST", "/sapi/v1/userListenToken?validity=60000").await;
    assert_eq!(a.status, 200);
    let exp = a.json["expirationTime"].as_i64().unwrap();
    assert!((exp - now_ms() - 60_000).abs() < 5_000);
    let t1 = a.json["token"].as_str().unwrap().to_owned();
    let b = s
        .send("POST", "/sapi/v1/userListenToken?symbol=BTCUSDT&isIsolated=true")
        .await;
    let t2 = b.json["token"].as_str().unwrap();
    assert_ne!(t1, t2, "each call mints a new token");
    assert!(s.h.is_live(&t1) && s.h.is_live(t2));
    let scopes: Vec<String> = s.h.active().into_iter().map(|c| c.scope).collect();
    assert_eq!(scopes, ["cross-margin", "isolated-margin:BTCUSDT"]);
    assert_eq!(
        code(&s.send("POST", "/sapi/v1/userListenToken?validity=86400001").await),
        -1102
    );
    assert_eq!(
        code(&s.send("POST", "/sapi/v1/userListenToken?validity=0").await),
        -1102
    );
    assert_eq!(
        code(&s.send("POST", "/sapi/v1/userListenToken?isIsolated=true").await),
        -1102
    );
}

#[tokio::test]
async fn signed_tokens_and_clock_skew() {
    let s = sim(SimConfig {
        hmac_secret: Some("s3cret".into()),
        require_signature: true,
        ..SimConfig::default()
    })
    .await;
    let unsigned = s.send("POST", "/sapi/v1/userListenToken?validity=60000").await;
    assert_eq!((unsigned.status, code(&unsigned)), (400, -1102));

    let q = signed(&format!("validity=60000&timestamp={}", now_ms()), "s3cret");
    let ok = s.send("POST", &format!("/sapi/v1/userListenToken?{q}")).await;
    assert_eq!(ok.status, 200, "{}", ok.json);
    assert!(ok.json["token"].is_string());

    let q = signed(&format!("validity=60000&timestamp={}", now_ms()), "wrong");
    assert_eq!(
        code(&s.send("POST", &format!("/sapi/v1/userListenToken?{q}")).await),
        -1022
    );

    s.h.set_clock_skew_ms(30_000);
    let q = signed(&format!("validity=60000&timestamp={}", now_ms()), "s3cret");
    let skewed = s.send("POST", &format!("/sapi/v1/userListenToken?{q}")).await;
    assert_eq!((skewed.status, code(&skewed)), (400, -1021));
    // A client that syncs with the server time gets through.
    let server = s.send("GET", "/sapi/v1/time").await.json["serverTime"]
        .as_i64()
        .unwrap();
    assert!(server - now_ms() > 25_000);
    let q = signed(&format!("validity=60000&timestamp={server}"), "s3cret");
    assert_eq!(
        s.send("POST", &format!("/sapi/v1/userListenToken?{q}")).await.status,
        200
    );
}

#[tokio::test]
async fn tokens_come_signed_or_unsigned_unless_a_signature_is_required() {
    let s = sim(SimConfig {
        hmac_secret: Some("s3cret".into()),
        ..SimConfig::default()
    })
    .await;
    let unsigned = s.send("POST", "/sapi/v1/userListenToken?validity=60000").await;
    assert_eq!(unsigned.status, 200, "unsigned, as ccxt and nautilus send it");
    let q = signed(&format!("validity=60000&timestamp={}", now_ms()), "s3cret");
    assert_eq!(
        s.send("POST", &format!("/sapi/v1/userListenToken?{q}")).await.status,
        200,
        "signed, as python-binance sends it"
    );
    let q = signed(&format!("validity=60000&timestamp={}", now_ms()), "wrong");
    assert_eq!(
        code(&s.send("POST", &format!("/sapi/v1/userListenToken?{q}")).await),
        -1022,
        "a signature that is present is checked"
    );
}

#[tokio::test]
async fn binance_today_retires_spot_and_margin_listen_keys() {
    let s = sim(SimConfig::default()).await;
    for (method, path) in [
        ("POST", "/api/v3/userDataStream"),
        ("PUT", "/api/v3/userDataStream?listenKey=k"),
        ("POST", "/sapi/v1/userDataStream"),
        ("DELETE", "/sapi/v1/userDataStream?listenKey=k"),
        ("POST", "/sapi/v1/userDataStream/isolated?symbol=BTCUSDT"),
        ("PUT", "/sapi/v1/userDataStream/isolated?symbol=BTCUSDT&listenKey=k"),
    ] {
        let a = s.send(method, path).await;
        assert_eq!(a.status, 410, "{method} {path}");
        assert!(
            a.json.as_str().unwrap().contains("<title>410 Gone</title>"),
            "{}",
            a.json
        );
    }
    assert!(s.h.active().is_empty());
    // The 2025 profile still serves them, spot included.
    let old = sim(SimConfig::binance_2025()).await;
    let spot = old.send("POST", "/api/v3/userDataStream").await;
    assert!(spot.json["listenKey"].is_string(), "{}", spot.json);
    assert_eq!(old.h.active()[0].scope, "spot");
}

#[tokio::test]
async fn every_family_answers_ping_and_time_with_weight_headers() {
    let s = sim(SimConfig::default()).await;
    for fam in ["/api/v3", "/fapi/v1", "/dapi/v1", "/eapi/v1", "/papi/v1"] {
        let ping = s.try_send("GET", &format!("{fam}/ping"), None).await.unwrap();
        assert_eq!((ping.status, &ping.json), (200, &serde_json::json!({})), "{fam}");
        let time = s.try_send("GET", &format!("{fam}/time"), None).await.unwrap();
        let server = time.json["serverTime"].as_i64().unwrap();
        assert!((server - now_ms()).abs() < 5_000, "{fam}");
        // Ping then time: weight 2 this minute, unless the minute turned between them.
        let weight = &time.headers["x-mbx-used-weight-1m"];
        let turned = server % 60_000 < 1_000;
        assert!(weight == "2" || (turned && weight == "1"), "{fam}: weight {weight:?}");
    }
    let token = s.send("POST", "/sapi/v1/userListenToken").await;
    assert_eq!(token.headers["x-sapi-used-ip-weight-1m"], "1");
    assert_eq!(token.headers["x-sapi-used-uid-weight-1m"], "1");
    assert!(!token.headers.contains_key("x-mbx-used-weight-1m"));
}

#[tokio::test]
async fn margin_risk_keys_and_the_stated_options_expiry() {
    let s = sim(SimConfig::default()).await;
    let key = s.send("POST", "/sapi/v1/margin/listen-key").await.json["listenKey"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(s.h.active()[0].scope, "margin-risk");
    let v2 = s.send("POST", "/sapi/v2/margin/listen-key").await;
    assert_eq!(v2.json["listenKey"], key.as_str(), "v2 is the same stream");
    let put = s
        .send("PUT", &format!("/sapi/v1/margin/listen-key?listenKey={key}"))
        .await;
    assert_eq!((put.status, &put.json), (200, &serde_json::json!({})));
    let wrong = s.send("PUT", "/sapi/v1/margin/listen-key?listenKey=nope").await;
    assert_eq!(code(&wrong), -1125);
    assert_eq!(s.send("DELETE", "/sapi/v1/margin/listen-key").await.status, 200);
    assert!(!s.h.is_live(&key));
    assert_eq!(code(&s.send("PUT", "/sapi/v1/margin/listen-key").await), -1125);

    let opt = s.send("POST", "/eapi/v1/listenKey").await;
    let stated = opt.json["expiration"].as_i64().unwrap();
    assert!((stated - now_ms() - 3_600_000).abs() < 5_000, "{}", opt.json);
    assert_eq!(
        stated,
        s.h.active()
            .iter()
            .find(|c| c.scope == "options")
            .unwrap()
            .expires_at_ms
    );
}

#[tokio::test]
async fn drop_fault_closes_the_connection() {
    let s = sim(SimConfig::default()).await;
    s.h.add_fault(Fault::parse("PUT * drop count=1").unwrap());
    s.send("POST", "/fapi/v1/listenKey").await;
    let err = s
        .try_send("PUT", "/fapi/v1/listenKey", Some("k1"))
        .await
        .err()
        .expect("the connection is dropped");
    assert!(!err.is_status(), "{err}");
    assert_eq!(
        s.send("PUT", "/fapi/v1/listenKey").await.status,
        200,
        "the fault is spent"
    );
    let statuses: Vec<Option<u16>> = s.h.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(200), None, Some(200)]);
}

#[tokio::test]
async fn status_and_delay_faults() {
    let s = sim(SimConfig {
        faults: vec![Fault::parse("POST * status=429 header=Retry-After:5 count=1").unwrap()],
        ..SimConfig::default()
    })
    .await;
    let limited = s.send("POST", "/fapi/v1/listenKey").await;
    assert_eq!(
        (limited.status, limited.retry_after.as_deref(), code(&limited)),
        (429, Some("5"), -1003)
    );
    assert_eq!(s.send("POST", "/fapi/v1/listenKey").await.status, 200);

    s.h.add_fault(Fault::parse("* /sapi/v1/userDataStream/isolated status=410").unwrap());
    assert_eq!(
        s.send("POST", "/sapi/v1/userDataStream/isolated?symbol=BTCUSDT")
            .await
            .status,
        410
    );

    s.h.add_fault(Fault::parse(r#"PUT /fapi status=200 body={"code":-1125,"msg":"x"}"#).unwrap());
    let a = s.send("PUT", "/fapi/v1/listenKey").await;
    assert_eq!((a.status, code(&a)), (200, -1125));

    s.h.clear_faults();
    s.h.add_fault(Fault::parse("PUT * delay=150ms count=1").unwrap());
    let started = std::time::Instant::now();
    assert_eq!(
        s.send("PUT", "/fapi/v1/listenKey").await.status,
        200,
        "delay alone handles normally"
    );
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn revocation_makes_put_fail_and_post_create() {
    let s = sim(SimConfig::default()).await;
    let k1 = s.send("POST", "/fapi/v1/listenKey").await.json["listenKey"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(s.h.revoke_scope("usdm-futures"));
    let put = s.send("PUT", "/fapi/v1/listenKey").await;
    assert_eq!((put.status, code(&put)), (400, -1125));
    let k2 = s.send("POST", "/fapi/v1/listenKey").await.json["listenKey"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(k1, k2);

    // Over the admin endpoint, by value.
    assert_eq!(
        s.admin("POST", "/_sim/revoke", &format!(r#"{{"value":"{k2}"}}"#)).await["revoked"],
        true
    );
    assert_eq!(code(&s.send("PUT", "/fapi/v1/listenKey").await), -1125);

    // As a fault: the key vanishes just before the PUT is handled.
    s.send("POST", "/fapi/v1/listenKey").await;
    s.h.add_fault(Fault::parse("PUT /fapi/v1/listenKey revoke count=1").unwrap());
    assert_eq!(code(&s.send("PUT", "/fapi/v1/listenKey").await), -1125);
}

#[tokio::test]
async fn keys_expire_after_the_ttl() {
    let s = sim(SimConfig {
        listen_key_ttl: Duration::from_secs(1),
        ..SimConfig::default()
    })
    .await;
    let k1 = s.send("POST", "/eapi/v1/listenKey").await.json["listenKey"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(s.h.is_live(&k1), "live until its TTL");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(!s.h.is_live(&k1));
    assert_eq!(code(&s.send("PUT", "/eapi/v1/listenKey").await), -1125);
    let k2 = s.send("POST", "/eapi/v1/listenKey").await.json["listenKey"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(k1, k2);
}

#[tokio::test]
async fn admin_endpoint() {
    let s = sim(SimConfig::default()).await;
    assert_eq!(
        s.admin(
            "POST",
            "/_sim/faults",
            "PUT /papi status=503 count=1\nPOST * after=5 drop"
        )
        .await["added"],
        2
    );
    assert_eq!(
        s.admin("POST", "/_sim/faults", r#"[{"method":"DELETE","status":500}]"#)
            .await["added"],
        1
    );
    assert_eq!(s.admin("GET", "/_sim/faults", "").await.as_array().unwrap().len(), 3);

    let key = s.send("POST", "/papi/v1/listenKey").await.json["listenKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = s.send("PUT", "/papi/v1/listenKey").await;
    assert_eq!((a.status, code(&a)), (503, -1001));
    let faults = s.admin("GET", "/_sim/faults", "").await;
    assert_eq!(
        (faults[0]["seen"].as_u64(), faults[0]["applied"].as_u64()),
        (Some(1), Some(1))
    );
    s.admin("DELETE", "/_sim/faults", "").await;

    let keys = s.admin("GET", "/_sim/keys", "").await;
    assert_eq!(keys[0]["scope"], "portfolio-margin");
    assert_eq!(keys[0]["kind"], "listen-key");
    assert_eq!(keys[0]["value"], key.as_str());

    let reqs = s.admin("GET", "/_sim/requests", "").await;
    assert_eq!(reqs.as_array().unwrap().len(), 2, "admin requests are not recorded");
    assert_eq!(reqs[1]["status"], 503);
    assert_eq!(reqs[0]["api_key_present"], true);
    // The first four bytes of the key's SHA-256, in hex: what the keeper's `status` shows too.
    use sha2::Digest;
    assert_eq!(
        reqs[0]["api_key_fingerprint"],
        hex::encode(&sha2::Sha256::digest(b"k1")[..4]).as_str()
    );
    s.admin("DELETE", "/_sim/requests", "").await;
    assert!(s.h.requests().is_empty());

    let clock = s.admin("POST", "/_sim/clock", r#"{"skew_ms":-60000}"#).await;
    assert!((clock["serverTime"].as_i64().unwrap() - (now_ms() - 60_000)).abs() < 5_000);
    assert_eq!(
        s.admin("POST", "/_sim/revoke", r#"{"scope":"portfolio-margin"}"#).await["revoked"],
        true
    );
    assert!(s.h.active().is_empty());
}

#[tokio::test]
async fn run_serves_until_cancelled() {
    use clap::Parser;
    /// The simulator flags alone.
    #[derive(Parser)]
    struct Cli {
        /// The flags.
        #[command(flatten)]
        sim: sim::SimArgs,
    }
    // A free port, so the test knows where the simulator listens.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let listen = addr.to_string();
    let args = Cli::try_parse_from(["sim", "--listen", &listen, "--fault", "* * status=503"])
        .unwrap()
        .sim;
    let cancel = CancellationToken::new();
    let task = tokio::spawn(sim::run(args, cancel.clone()));
    // It serves, with the faults given as flags.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let url = format!("http://{addr}/fapi/v1/listenKey");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Ok(r) = client.post(&url).header("X-MBX-APIKEY", "k").send().await {
            break r.status().as_u16();
        }
        assert!(std::time::Instant::now() < deadline, "never served");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(status, 503, "the --fault flag is applied");
    cancel.cancel();
    task.await.unwrap().unwrap();
    // Once cancelled, the port is closed.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "still listening after cancel");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
