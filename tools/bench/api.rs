//! Clients of the daemon's local HTTP API: a probe, a load of concurrent
//! `GET /v1/streams/{id}` clients, and a server-sent-events subscriber that
//! time-stamps every `data:` line of `GET /v1/events` as it arrives.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::now_us;

/// Whether the API answers `GET /livez` at `base`.
pub async fn probe(base: &str) -> bool {
    let client = reqwest::Client::new();
    for _ in 0..20 {
        let r = client
            .get(format!("{base}/livez"))
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        if r.is_ok_and(|r| r.status().is_success()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The size of one `GET /metrics` answer, in bytes.
pub async fn metrics(base: &str) -> Option<usize> {
    let r = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .ok()?;
    r.bytes().await.ok().map(|b| b.len())
}

/// Latencies (µs) of `GET /v1/streams/{id}` from `clients` concurrent clients
/// for `for_`, cycling through `ids`; and the number of non-200 answers.
pub async fn load(base: &str, ids: &[String], clients: usize, for_: Duration) -> (Vec<u64>, usize) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("client builds");
    let ids = Arc::new(ids.to_vec());
    let end = Instant::now() + for_;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, ids, base) = (client.clone(), ids.clone(), base.to_owned());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut bad, mut i) = (Vec::new(), 0usize, c);
            while Instant::now() < end {
                let url = format!("{base}/v1/streams/{}", ids[i % ids.len()]);
                i += clients;
                let t = Instant::now();
                match client.get(url).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                    _ => bad += 1,
                }
            }
            (lat, bad)
        }));
    }
    let (mut all, mut bad) = (Vec::new(), 0);
    for t in tasks {
        if let Ok((l, b)) = t.await {
            all.extend(l);
            bad += b;
        }
    }
    (all, bad)
}

/// Everything received on `GET /v1/events`: (arrival µs, the `data:` JSON).
pub type Events = Arc<Mutex<Vec<(i64, serde_json::Value)>>>;

/// Subscribes to `GET /v1/events`; the task runs until aborted.
pub async fn subscribe(base: &str) -> Option<(Events, tokio::task::JoinHandle<()>)> {
    let resp = reqwest::Client::new()
        .get(format!("{base}/v1/events"))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let events: Events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let task = tokio::spawn(async move {
        let mut resp = resp;
        let mut pending = String::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            let at = now_us();
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(nl) = pending.find('\n') {
                let line: String = pending.drain(..=nl).collect();
                if let Some(data) = line.trim_end().strip_prefix("data:") {
                    if let Ok(v) = serde_json::from_str(data.trim()) {
                        sink.lock().expect("events lock").push((at, v));
                    }
                }
            }
        }
    });
    Some((events, task))
}
