//! Running it where users run it: the local API (streams, long-poll, events,
//! readiness, metrics) over real sockets, hooks as real processes, the
//! systemd notify protocol on a real datagram socket, and idle clients that
//! must not delay a refresh.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::common::*;

/// A setup whose config also serves the API on a loopback port and runs a hook.
fn api_setup(sim: &Sim, extra: &str) -> (Setup, String) {
    let port = free_port();
    let s = setup(
        &sim.handle.url(),
        &format!(
            "[timing]\nkeepalive_interval = \"1s\"\nlisten_key_validity = \"6s\"\n\n[api]\nlisten = \"127.0.0.1:{port}\"\n\n[[streams]]\nkind = \"usdm-futures\"\n\n[[streams]]\nkind = \"isolated-margin\"\nsymbols = [\"BTCUSDT\"]\n{extra}"
        ),
    );
    (s, format!("http://127.0.0.1:{port}"))
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_follows_the_state_file_and_announces_new_generations() {
    let sim = sim_with_ttl(Duration::from_secs(6)).await;
    let hook_dir = tempfile::tempdir().unwrap();
    let hook = format!(
        "\n[[hooks]]\nexec = [\"sh\", \"-c\", \"cp \\\"$LISTENKEYD_STATE_FILE\\\" \\\"{}/$LISTENKEYD_STREAM-$LISTENKEYD_GENERATION.json\\\"\"]\nstreams = [\"usdm-futures\"]\ntimeout = \"5s\"\n",
        hook_dir.path().display()
    );
    let (s, api) = api_setup(&sim, &hook);
    let d = spawn_daemon(&s);
    let doc = wait_published(
        &s.state,
        &["usdm-futures", "isolated-margin:BTCUSDT"],
        Duration::from_secs(5),
    )
    .await;

    // The streams equal the state file.
    let (code, body) = get(&format!("{api}/v1/streams")).await;
    assert_eq!(code, 200);
    let served: listenkeyd::state::Document = serde_json::from_str(&body).unwrap();
    for (id, e) in &doc.streams {
        assert_eq!(served.streams[id].value, e.value);
        assert_eq!(served.streams[id].generation, e.generation);
    }
    assert_eq!(get(&format!("{api}/readyz")).await.0, 200);
    assert_eq!(get(&format!("{api}/livez")).await.0, 200);
    let (code, body) = get(&format!("{api}/v1/streams/usdm-futures")).await;
    assert_eq!(code, 200);
    let one: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(one["stream"], "usdm-futures");
    assert_eq!(one["value"], doc.streams["usdm-futures"].value.as_str());
    assert_eq!(get(&format!("{api}/v1/streams/no-such-stream")).await.0, 404);
    assert_eq!(
        get(&format!("{api}/v1/streams/usdm-futures?after_generation=x"))
            .await
            .0,
        400
    );

    // Metrics carry per-stream series and nothing secret.
    let (code, metrics) = get(&format!("{api}/metrics")).await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("listenkeyd_stream_generation{stream=\"usdm-futures\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("listenkeyd_stream_expiry_seconds{stream=\"isolated-margin:BTCUSDT\"}"));
    assert!(metrics.contains("listenkeyd_stream_status{status=\"fresh\",stream=\"usdm-futures\"} 1"));
    assert!(metrics.contains("listenkeyd_refresh_total{outcome=\"ok\",stream=\"usdm-futures\"}"));
    assert!(metrics.contains("process_resident_memory_bytes"));
    let values: Vec<String> = doc.streams.values().map(|e| e.value.clone()).collect();
    assert_no_secrets(&metrics, &values);

    // A long-poll and an event stream, then the exchange silently drops the key.
    let poll = tokio::spawn({
        let url = format!("{api}/v1/streams/usdm-futures?after_generation=1&wait=20s");
        async move {
            let started = Instant::now();
            let (code, body) = get(&url).await;
            (code, body, started.elapsed())
        }
    });
    let mut events = reqwest::get(format!("{api}/v1/events")).await.unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    sim.handle.revoke_scope("usdm-futures");
    let revoked = Instant::now();
    let (code, body, took) = poll.await.unwrap();
    assert_eq!(code, 200);
    let new: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(new["generation"], 2, "{body}");
    assert!(
        took < Duration::from_secs(10),
        "the long-poll answered at the change, not at the wait"
    );
    assert!(revoked.elapsed() < Duration::from_secs(5));
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = events.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen
                .lines()
                .any(|l| l.starts_with("data:") && l.contains("\"generation\":2") && l.contains("usdm-futures"))
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "an event with the new generation: {seen}");
    assert!(
        seen.lines().filter(|l| l.starts_with("data:")).count() >= 3,
        "a snapshot first, then changes"
    );

    // The hook ran with the stream and generation, after the file held them.
    let copy = hook_dir.path().join("usdm-futures-2.json");
    // `cp` may still be writing when the file first appears: a whole copy parses.
    let copied: listenkeyd::state::Document = eventually(Duration::from_secs(5), "the hook's whole copy", || {
        serde_json::from_str(&std::fs::read_to_string(&copy).ok()?).ok()
    })
    .await;
    assert_eq!(copied.streams["usdm-futures"].generation, 2);
    assert!(
        !hook_dir.path().join("isolated-margin:BTCUSDT-1.json").exists(),
        "the streams filter applies"
    );
    assert_no_secrets(&d.log_text(), &values);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_event_clients_never_delay_a_refresh() {
    use tokio::io::AsyncWriteExt;
    let sim = sim_with_ttl(Duration::from_secs(6)).await;
    let (s, api) = api_setup(&sim, "");
    let _d = spawn_daemon(&s);
    wait_published(&s.state, &["usdm-futures"], Duration::from_secs(5)).await;
    let addr = api.trim_start_matches("http://").to_owned();
    // Clients that ask for events and then never read a byte: the first 256
    // (the cap) hold event streams, the others hold connections answered 503.
    let mut idle = Vec::new();
    for _ in 0..1000 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(format!("GET /v1/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        idle.push(c);
    }
    sim.handle.revoke_scope("usdm-futures");
    let revoked = Instant::now();
    eventually(Duration::from_secs(5), "a new generation despite idle clients", || {
        read_state(&s.state).filter(|d| d.streams["usdm-futures"].generation == 2)
    })
    .await;
    assert!(revoked.elapsed() < Duration::from_secs(3));
    // And the API still answers others.
    assert_eq!(get(&format!("{api}/readyz")).await.0, 200);
    drop(idle);
}

#[test]
fn a_unix_socket_api_is_0660_and_removed_on_exit() {
    use std::io::{Read, Write};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim = rt.block_on(sim_with_ttl(Duration::from_secs(60)));
    let s = setup(&sim.handle.url(), "[[streams]]\nkind = \"options\"\n");
    let sock = s.dir.path().join("run/api.sock");
    let text =
        std::fs::read_to_string(&s.config).unwrap() + &format!("\n[api]\nlisten = \"unix:{}\"\n", sock.display());
    std::fs::write(&s.config, text).unwrap();
    let mut d = spawn_daemon(&s);
    let start = Instant::now();
    // The daemon binds, then sets the mode: in between the socket has the
    // umask's mode, which gives no one else the write bit a connect needs.
    let mode = |p: &std::path::Path| std::fs::metadata(p).ok().map(|m| m.permissions().mode() & 0o777);
    while mode(&sock) != Some(0o660) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "socket created with mode 0660, not {:?}",
            mode(&sock).map(|m| format!("{m:o}"))
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    c.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(3)).0, Some(0));
    assert!(!sock.exists(), "the socket is removed on exit");
}

#[test]
fn a_non_loopback_api_address_needs_allow_remote() {
    let s = setup(
        "http://127.0.0.1:9",
        "[[streams]]\nkind = \"usdm-futures\"\n\n[api]\nlisten = \"0.0.0.0:9750\"\n",
    );
    let out = run_cli(&["run", "--config", s.config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("api.listen"));
}

/// One line received on the notify socket, with when it arrived.
type Notification = (Instant, String);

#[test]
fn the_notify_protocol_from_ready_to_stopping() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim = rt.block_on(sim_with_ttl(Duration::from_secs(60)));
    let s = setup(
        &sim.handle.url(),
        "[[streams]]\nkind = \"usdm-futures\"\n\n[[streams]]\nkind = \"cross-margin\"\n",
    );
    let path = s.dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let log = s.dir.path().join("notify-daemon.log");
    let child = bin()
        .args(["run", "--config", s.config.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "2000000")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut d = Daemon { child, log };
    let mut messages: Vec<Notification> = Vec::new();
    let recv_until = |messages: &mut Vec<Notification>, stop: &dyn Fn(&[Notification]) -> bool, limit| {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        while !stop(messages) {
            assert!(start.elapsed() < limit, "notify messages so far: {messages:?}");
            if let Ok(n) = sock.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                for line in text.lines() {
                    messages.push((Instant::now(), line.to_owned()));
                }
            }
        }
    };
    recv_until(
        &mut messages,
        &|m| m.iter().any(|(_, l)| l == "READY=1"),
        Duration::from_secs(5),
    );
    let ready_at = messages.iter().find(|(_, l)| l == "READY=1").unwrap().0;
    assert!(
        messages.iter().any(|(_, l)| l.starts_with("STATUS=2/2 streams fresh")),
        "{messages:?}"
    );
    // At least three watchdog pings within five seconds.
    recv_until(
        &mut messages,
        &|m| m.iter().filter(|(_, l)| l == "WATCHDOG=1").count() >= 3,
        Duration::from_secs(5),
    );
    let third = messages.iter().filter(|(_, l)| l == "WATCHDOG=1").nth(2).unwrap().0;
    assert!(third.duration_since(ready_at) < Duration::from_secs(5));
    d.signal("TERM");
    recv_until(
        &mut messages,
        &|m| m.iter().any(|(_, l)| l == "STOPPING=1"),
        Duration::from_secs(3),
    );
    assert_eq!(d.wait_exit(Duration::from_secs(3)).0, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_that_cannot_be_written_is_kept_reported_and_retried() {
    let sim = sim_with_ttl(Duration::from_secs(6)).await;
    let (s, _api) = api_setup(&sim, "");
    let d = spawn_daemon(&s);
    let before = wait_published(&s.state, &["usdm-futures"], Duration::from_secs(5)).await;
    // A directory where the temporary file must go makes every write fail, even for root.
    let blocker = s
        .state
        .parent()
        .unwrap()
        .join(format!(".keys.json.{}.tmp", d.child.id()));
    // The daemon may be mid-write, its temporary file briefly in the way: try again.
    eventually(Duration::from_secs(5), "the blocker in place", || {
        std::fs::create_dir(&blocker).ok()
    })
    .await;
    std::fs::write(blocker.join("x"), "x").unwrap();
    sim.handle.revoke_scope("usdm-futures");
    let config = s.config.to_str().unwrap().to_owned();
    let status = eventually(Duration::from_secs(8), "status reporting the write error", || {
        let out = run_cli(&["status", "--config", &config]);
        let text = String::from_utf8(out.stdout).unwrap();
        text.contains("daemon: not ready: state file: cannot write")
            .then_some(text)
    })
    .await;
    assert!(status.contains("usdm-futures"));
    let out = run_cli(&["health", "--config", &config]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let kept = read_state(&s.state).unwrap();
    assert_eq!(
        kept.streams["usdm-futures"].value, before.streams["usdm-futures"].value,
        "the previous file is intact"
    );
    assert!(d.log_text().contains("cannot write"), "the error is logged");
    // Once the directory is usable again, the retry writes the new generation.
    std::fs::remove_dir_all(&blocker).unwrap();
    eventually(Duration::from_secs(10), "the retried write", || {
        read_state(&s.state).filter(|doc| doc.streams["usdm-futures"].generation == 2)
    })
    .await;
    // The file lands a moment before the writer reports success to /readyz.
    eventually(Duration::from_secs(5), "health once the write succeeded", || {
        run_cli(&["health", "--config", &config]).status.success().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_api_requests_are_refused_without_touching_the_schedulers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = sim_with_ttl(Duration::from_secs(6)).await;
    let (s, api) = api_setup(&sim, "");
    let d = spawn_daemon(&s);
    wait_published(&s.state, &["usdm-futures"], Duration::from_secs(5)).await;
    let addr = api.trim_start_matches("http://").to_owned();

    // Slow clients: one that never finishes its headers, one that sends a byte at a time.
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stalled
        .write_all(format!("GET /v1/streams HTTP/1.1\r\nHost: {addr}\r\n").as_bytes())
        .await
        .unwrap();
    let trickle = tokio::spawn({
        let addr = addr.clone();
        async move {
            let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
            for b in format!("GET /livez HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes() {
                if c.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });

    // Bad ids and parameters are answered with a client error that echoes nothing back.
    let http = reqwest::Client::new();
    for (path, expect) in [
        ("/v1/streams/%00%ff", 400),
        ("/v1/streams/usdm-futures%2F..%2F..%2Fetc%2Fpasswd", 404),
        ("/v1/streams/usdm-futures?after_generation=-1", 400),
        ("/v1/streams/usdm-futures?wait=forever", 400),
        ("/v1/nothing-here", 404),
    ] {
        let r = http.get(format!("{api}{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), expect, "{path}");
        assert!(!r.text().await.unwrap().contains("passwd"));
    }
    // A huge stream id and a huge query string: refused (4xx) or the connection closed, never served.
    let huge_id = "x".repeat(200_000);
    let huge_query = format!("after_generation=1&pad={}", "y".repeat(1_000_000));
    for path in [
        format!("/v1/streams/{huge_id}"),
        format!("/v1/streams/usdm-futures?{huge_query}"),
    ] {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let _ = c
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await;
        let mut answer = vec![0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut answer))
            .await
            .unwrap()
            .unwrap_or(0);
        let head = String::from_utf8_lossy(&answer[..n]).into_owned();
        assert!(n == 0 || head.starts_with("HTTP/1.1 4"), "{head}");
    }

    // Meanwhile the schedulers carry on: a dropped key is replaced within seconds.
    sim.handle.revoke_scope("usdm-futures");
    let revoked = Instant::now();
    eventually(Duration::from_secs(5), "a new generation", || {
        read_state(&s.state).filter(|doc| doc.streams["usdm-futures"].generation == 2)
    })
    .await;
    assert!(revoked.elapsed() < Duration::from_secs(3));
    assert_eq!(get(&format!("{api}/readyz")).await.0, 200);
    trickle.await.unwrap();
    drop(stalled);
    assert!(
        d.log_text().lines().all(|l| !l.contains("\"level\":\"ERROR\"")),
        "no error logged"
    );
}
