//! Who can read a credential through the local API, and how much a client
//! can hold: web pages (an `Origin` header) and foreign `Host`s get nothing,
//! a configured bearer token guards `/v1/*`, headers must arrive in time,
//! connections and event streams are capped. Over real sockets, against the
//! real binary where the product's limits are cheap to reach, and in process
//! (a keeper with lowered limits) where waiting for them would be slow.

mod common;

use std::time::{Duration, Instant};

use common::*;
use listenkeyd::config::{ApiLimits, ApiListen, Config, Url};
use listenkeyd::secret::Secret;
use listenkeyd::stream::{Kind, StreamSpec};
use listenkeyd::{Keeper, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// How long a raw exchange may take before the test gives up reading.
const READ_LIMIT: Duration = Duration::from_secs(5);

/// A daemon serving the API on a loopback port, with `api_extra` added to
/// `[api]`; returns the setup and `127.0.0.1:PORT`.
fn api_setup(sim: &Sim, api_extra: &str) -> (Setup, String) {
    let port = free_port();
    let s = setup(
        &sim.handle.url(),
        &format!(
            "[timing]\nkeepalive_interval = \"10s\"\nlisten_key_validity = \"60s\"\n\n[api]\nlisten = \"127.0.0.1:{port}\"\n{api_extra}\n\n[[streams]]\nkind = \"usdm-futures\"\n"
        ),
    );
    (s, format!("127.0.0.1:{port}"))
}

/// An answer read off a raw connection.
struct Answer {
    /// The status code; 0 when no status line arrived.
    status: u16,
    /// Everything received (head and body).
    text: String,
}

/// Sends `GET path` with `headers` (each `Name: value`) and `Connection:
/// close` on a new connection to `addr`, and reads until the server closes
/// or [`READ_LIMIT`] passes (an event stream never closes by itself).
async fn raw_get(addr: &str, path: &str, headers: &[String]) -> Answer {
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    c.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(READ_LIMIT, async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = c.read(&mut buf).await {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer { status, text }
}

/// Reads from `c` until the answer's head (through the blank line) is in.
async fn read_head(c: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(READ_LIMIT, async {
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = c.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the head");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("an answer's head");
    String::from_utf8_lossy(&got).into_owned()
}

/// Every credential the state file holds.
fn values(s: &Setup) -> Vec<String> {
    read_state(&s.state)
        .unwrap()
        .streams
        .values()
        .map(|e| e.value.clone())
        .collect()
}

/// The paths whose answers carry a credential; the long-poll waits for a
/// generation that does not come, so it answers at its `wait` with the value.
const CREDENTIAL_PATHS: [&str; 4] = [
    "/v1/streams",
    "/v1/streams/usdm-futures",
    "/v1/streams/usdm-futures?after_generation=1&wait=1s",
    "/v1/events",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_page_or_a_foreign_host_reads_no_credential() {
    let sim = sim_with_ttl(Duration::from_secs(60)).await;
    let (s, addr) = api_setup(&sim, "");
    let d = spawn_daemon(&s);
    wait_published(&s.state, &["usdm-futures"], Duration::from_secs(5)).await;
    let values = values(&s);
    let port = addr.rsplit_once(':').unwrap().1.to_owned();
    let host = format!("Host: {addr}");

    // The listener's own address and localhost, with the port, are served.
    for own in [
        host.clone(),
        format!("Host: localhost:{port}"),
        format!("Host: LOCALHOST:{port}"),
    ] {
        let a = raw_get(&addr, "/v1/streams", std::slice::from_ref(&own)).await;
        assert_eq!(a.status, 200, "{own}: {}", a.text);
        assert!(a.text.contains(values[0].as_str()), "{own}");
    }

    let refused: [(&str, Vec<String>); 6] = [
        ("a rebound DNS name", vec![format!("Host: evil.example:{port}")]),
        (
            "a loopback-looking name",
            vec![format!("Host: 127.0.0.1.nip.io:{port}")],
        ),
        (
            "another port",
            vec![format!("Host: 127.0.0.1:{}", port.parse::<u16>().unwrap() ^ 1)],
        ),
        ("no port (means 80)", vec!["Host: 127.0.0.1".to_owned()]),
        (
            "a same-origin page",
            vec![host.clone(), format!("Origin: http://{addr}")],
        ),
        ("a sandboxed page", vec![host.clone(), "Origin: null".to_owned()]),
    ];
    for path in CREDENTIAL_PATHS.iter().chain(&["/readyz", "/metrics", "/livez"]) {
        for (what, headers) in &refused {
            let a = raw_get(&addr, path, headers).await;
            assert_eq!(a.status, 403, "{what} on {path}: {}", a.text);
            assert_no_secrets(&a.text, &values);
        }
    }
    // No Host at all is a bad request, and gets nothing either.
    let a = raw_get(&addr, "/v1/streams", &[]).await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_no_secrets(&a.text, &values);
    // An absolute-form target naming another server is refused too.
    let a = raw_get(&addr, &format!("http://evil.example:{port}/v1/streams"), &[host]).await;
    assert_eq!(a.status, 403, "{}", a.text);
    assert_no_secrets(&d.log_text(), &values);
}

#[test]
fn a_unix_socket_refuses_web_pages_and_needs_no_host() {
    use std::io::{Read, Write};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim = rt.block_on(sim_with_ttl(Duration::from_secs(60)));
    let s = setup(&sim.handle.url(), "[[streams]]\nkind = \"usdm-futures\"\n");
    let sock = s.dir.path().join("api.sock");
    let text =
        std::fs::read_to_string(&s.config).unwrap() + &format!("\n[api]\nlisten = \"unix:{}\"\n", sock.display());
    std::fs::write(&s.config, text).unwrap();
    let _d = spawn_daemon(&s);
    rt.block_on(wait_published(&s.state, &["usdm-futures"], Duration::from_secs(5)));
    let values = values(&s);
    let ask = |headers: &str| {
        let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        c.set_read_timeout(Some(READ_LIMIT)).unwrap();
        c.write_all(format!("GET /v1/streams HTTP/1.1\r\n{headers}Connection: close\r\n\r\n").as_bytes())
            .unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        answer
    };
    let served = ask("Host: whatever.example\r\n");
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    assert!(served.contains(values[0].as_str()));
    let refused = ask("Host: localhost\r\nOrigin: http://localhost\r\n");
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert_no_secrets(&refused, &values);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_guards_every_credential_path() {
    const TOKEN: &str = "b6f1c0de29a84e7f9d3c51a0e8b2f4c7";
    let sim = sim_with_ttl(Duration::from_secs(60)).await;
    let port = free_port();
    let s = setup(
        &sim.handle.url(),
        &format!(
            "[timing]\nkeepalive_interval = \"10s\"\nlisten_key_validity = \"60s\"\n\n[api]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = \"api_token\"\n\n[[streams]]\nkind = \"usdm-futures\"\n"
        ),
    );
    std::fs::write(s.dir.path().join("api_token"), format!("{TOKEN}\n")).unwrap();
    let addr = format!("127.0.0.1:{port}");
    let d = spawn_daemon(&s);
    wait_published(&s.state, &["usdm-futures"], Duration::from_secs(5)).await;
    let values = values(&s);
    let host = format!("Host: {addr}");

    for path in CREDENTIAL_PATHS {
        for (what, auth) in [
            ("no token", None),
            ("a wrong token", Some(format!("Bearer {}", TOKEN.replace('b', "c")))),
            ("a longer token", Some(format!("Bearer {TOKEN}0"))),
            ("another scheme", Some(format!("Basic {TOKEN}"))),
        ] {
            let headers: Vec<String> = [Some(host.clone()), auth.map(|a| format!("Authorization: {a}"))]
                .into_iter()
                .flatten()
                .collect();
            let a = raw_get(&addr, path, &headers).await;
            assert_eq!(a.status, 401, "{what} on {path}: {}", a.text);
            assert!(a.text.contains("www-authenticate: Bearer\r\n"), "{}", a.text);
            assert_no_secrets(&a.text, &values);
        }
        let a = raw_get(&addr, path, &[host.clone(), format!("Authorization: Bearer {TOKEN}")]).await;
        assert_eq!(a.status, 200, "the token on {path}: {}", a.text);
        assert!(a.text.contains(values[0].as_str()), "{path}");
    }
    // The scheme is case-insensitive, as HTTP says.
    let a = raw_get(
        &addr,
        "/v1/streams",
        &[host.clone(), format!("Authorization: bearer {TOKEN}")],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    // Probes and metrics stay open.
    for path in ["/livez", "/readyz", "/metrics"] {
        assert_eq!(
            raw_get(&addr, path, std::slice::from_ref(&host)).await.status,
            200,
            "{path}"
        );
    }
    // status asks /readyz without the token, and it answers.
    let out = run_cli(&["status", "--config", s.config.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("daemon: ready"), "{text}");
    // The token is a secret: not in the log, not in check-config.
    let check = run_cli(&["check-config", "--config", s.config.to_str().unwrap()]);
    let described = String::from_utf8_lossy(&check.stdout);
    assert!(described.contains("bearer token"), "{described}");
    for text in [described.as_ref(), d.log_text().as_str()] {
        assert!(!text.contains(TOKEN), "the token leaked");
    }
}

#[test]
fn a_remote_listener_without_a_token_and_a_bad_token_file_are_refused_before_start() {
    for (api, token) in [
        // A documentation address: never bindable here, so even a daemon that
        // wrongly started could not listen beyond loopback.
        ("listen = \"192.0.2.1:9750\"\nallow_remote = true\n", None),
        ("listen = \"127.0.0.1:9750\"\ntoken_file = \"missing_token\"\n", None),
        ("listen = \"127.0.0.1:9750\"\ntoken_file = \"api_token\"\n", Some("")),
        (
            "listen = \"127.0.0.1:9750\"\ntoken_file = \"api_token\"\n",
            Some("short-secret"),
        ),
    ] {
        let s = setup(
            "http://127.0.0.1:9",
            &format!("[[streams]]\nkind = \"usdm-futures\"\n\n[api]\n{api}"),
        );
        if let Some(t) = token {
            std::fs::write(s.dir.path().join("api_token"), t).unwrap();
        }
        let out = run_within(
            &["run", "--config", s.config.to_str().unwrap()],
            Duration::from_secs(10),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{api}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("api.token_file"), "{err}");
        assert!(!err.contains("short-secret"), "{err}");
    }
}

/// Runs the binary with `args`, killing it if it is still running after `limit`.
fn run_within(args: &[&str], limit: Duration) -> std::process::Output {
    let mut child = bin()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

/// A keeper serving the API in process on a loopback port with `limits`;
/// returns it, its cancel token and `127.0.0.1:PORT`.
async fn in_process(sim: &Sim, limits: ApiLimits) -> (Keeper, CancellationToken, String) {
    let port = free_port();
    let config = Config::builder()
        .base_url(Url::parse(&sim.handle.url()).unwrap())
        .api_key(Secret::new(API_KEY))
        .stream(StreamSpec::account_wide(Kind::UsdmFutures))
        .api_listen(ApiListen::Tcp(([127, 0, 0, 1], port).into()))
        .api_limits(limits)
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let options = Options {
        state_file: false,
        ..Options::default()
    };
    let k = Keeper::start_with(&config, options, cancel.clone()).unwrap();
    (k, cancel, format!("127.0.0.1:{port}"))
}

/// Reads from `c` until the server closes it; how long that took.
async fn closed_within(c: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the server closes the connection");
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_do_not_arrive_in_time_lose_the_connection() {
    assert_eq!(
        ApiLimits::default().header_read_timeout,
        Duration::from_secs(10),
        "the product's value"
    );
    let sim = sim_with_ttl(Duration::from_secs(60)).await;
    let limits = ApiLimits {
        header_read_timeout: Duration::from_secs(1),
        ..ApiLimits::default()
    };
    let (_k, cancel, addr) = in_process(&sim, limits).await;
    let host = format!("Host: {addr}\r\n");
    // Unfinished headers; no bytes at all; a finished request, then nothing
    // (an idle keep-alive connection waits for its next headers).
    let mut unfinished = TcpStream::connect(&addr).await.unwrap();
    unfinished
        .write_all(format!("GET /v1/streams HTTP/1.1\r\n{host}").as_bytes())
        .await
        .unwrap();
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(format!("GET /livez HTTP/1.1\r\n{host}\r\n").as_bytes())
        .await
        .unwrap();
    assert!(read_head(&mut idle).await.starts_with("HTTP/1.1 200"));
    for c in [&mut unfinished, &mut silent, &mut idle] {
        closed_within(c, Duration::from_secs(10)).await;
    }
    // A trickle that finishes in time is served.
    let mut trickle = TcpStream::connect(&addr).await.unwrap();
    for chunk in ["GET /livez HTTP/1.1\r\n", &host, "\r\n"] {
        trickle.write_all(chunk.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(read_head(&mut trickle).await.starts_with("HTTP/1.1 200"));
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_in_the_backlog_until_a_slot_frees() {
    let sim = sim_with_ttl(Duration::from_secs(60)).await;
    let timeout = Duration::from_secs(1);
    let limits = ApiLimits {
        header_read_timeout: timeout,
        max_connections: 4,
        ..ApiLimits::default()
    };
    let (_k, cancel, addr) = in_process(&sim, limits).await;
    let mut holders = Vec::new();
    for _ in 0..4 {
        holders.push(TcpStream::connect(&addr).await.unwrap());
    }
    // The fifth connects (the kernel queues it) but is served only once the
    // header timeout has closed one of the four silent ones.
    let started = Instant::now();
    let mut fifth = TcpStream::connect(&addr).await.unwrap();
    fifth
        .write_all(format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut fifth).await;
    let waited = started.elapsed();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        waited >= timeout / 2,
        "served after {waited:?}: the cap held it until a slot freed"
    );
    cancel.cancel();
}

/// Raises this process's soft open-file limit to the hard one (the daemon
/// does the same for itself), so a thousand client sockets fit.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
    assert!(
        hard >= 2200,
        "the test needs about 2100 descriptors, the hard limit is {hard}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_silent_connections_leave_readyz_answering() {
    raise_fd_limit();
    let sim = sim_with_ttl(Duration::from_secs(60)).await;
    let (s, addr) = api_setup(&sim, "");
    let _d = spawn_daemon(&s);
    wait_published(&s.state, &["usdm-futures"], Duration::from_secs(5)).await;
    let mut silent = Vec::new();
    for _ in 0..1000 {
        silent.push(TcpStream::connect(&addr).await.unwrap());
    }
    let started = Instant::now();
    let a = raw_get(&addr, "/readyz", &[format!("Host: {addr}")]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at once, not when the silent ones timed out"
    );
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_over_the_cap_are_refused_and_the_rest_keeps_answering() {
    raise_fd_limit();
    let sim = sim_with_ttl(Duration::from_secs(60)).await;
    let (s, addr) = api_setup(&sim, "");
    let _d = spawn_daemon(&s);
    wait_published(&s.state, &["usdm-futures"], Duration::from_secs(5)).await;
    let cap = ApiLimits::default().max_event_streams;
    let request = format!("GET /v1/events HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut streams = Vec::new();
    for i in 0..cap {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        c.write_all(request.as_bytes()).await.unwrap();
        let head = read_head(&mut c).await;
        assert!(head.starts_with("HTTP/1.1 200"), "stream {i}: {head}");
        streams.push(c);
    }
    let over = raw_get(&addr, "/v1/events", &[format!("Host: {addr}")]).await;
    assert_eq!(over.status, 503, "{}", over.text);
    assert!(over.text.contains("retry-after: 15\r\n"), "{}", over.text);
    let values = values(&s);
    assert_no_secrets(&over.text, &values);
    // Everything else still answers.
    assert_eq!(raw_get(&addr, "/readyz", &[format!("Host: {addr}")]).await.status, 200);
    let a = raw_get(&addr, "/v1/streams/usdm-futures", &[format!("Host: {addr}")]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    // A subscriber that leaves gives its slot back.
    drop(streams.pop());
    let started = Instant::now();
    loop {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        c.write_all(request.as_bytes()).await.unwrap();
        let head = read_head(&mut c).await;
        if head.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "no slot freed: {head}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(streams);
}
