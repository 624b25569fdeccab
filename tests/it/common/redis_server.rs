//! A real `redis-server` for tests: started on a free 127.0.0.1 port with its
//! own temporary directory and no persistence, stopped (SIGKILL) and restarted
//! on the same port on demand. Without `redis-server` on the PATH a test that
//! needs one is skipped with a loud message, except under `CI=true`, where a
//! missing server fails the test (`.ci/run` installs it).
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started server may take to answer PING.
const READY_WITHIN: Duration = Duration::from_secs(5);

/// A running (or stopped) `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    /// The password clients must give (`requirepass`), if any.
    pub password: Option<String>,
    /// With TLS: the CA certificate (PEM) that signed the server's certificate.
    pub ca: Option<std::path::PathBuf>,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl RedisServer {
    /// Starts a server, or returns `None` (after saying so on stderr) when
    /// `redis-server` is not installed and `CI` is not `true`.
    pub fn start(test: &str) -> Option<RedisServer> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: redis-server is not installed, and CI=true: .ci/run must install it"
            );
            eprintln!(
                "\n\n*** SKIPPED {test}: redis-server is not installed (apt-get install redis-server); CI=true makes this a failure ***\n\n"
            );
            return None;
        }
        for _ in 0..5 {
            let mut server = RedisServer {
                child: None,
                port: super::free_port(),
                dir: tempfile::tempdir().unwrap(),
                password: None,
                ca: None,
            };
            if server.try_run() {
                return Some(server);
            }
        }
        panic!("{test}: redis-server did not start on any of 5 free ports");
    }

    /// `redis://127.0.0.1:PORT/0` (`rediss://` with TLS), with the password when one is required.
    pub fn url(&self) -> String {
        let scheme = if self.ca.is_some() { "rediss" } else { "redis" };
        match &self.password {
            Some(p) => format!("{scheme}://:{p}@127.0.0.1:{}/0", self.port),
            None => format!("{scheme}://127.0.0.1:{}/0", self.port),
        }
    }

    /// A server that speaks TLS only, with a certificate for 127.0.0.1 signed
    /// by a CA made for it (`openssl`); `None` as [`RedisServer::start`] when
    /// `redis-server` is missing.
    pub fn start_tls(test: &str) -> Option<RedisServer> {
        let mut server = RedisServer::start(test)?;
        server.stop();
        let dir = server.dir.path().to_owned();
        let openssl = |args: &str| {
            let ok = Command::new("sh")
                .arg("-c")
                .arg(format!("openssl {args}"))
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "{test}: openssl {args} failed");
        };
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        openssl(&format!(
            "req -x509 {ec} -days 1 -subj /CN=test-ca -keyout ca.key -out ca.crt"
        ));
        openssl(&format!(
            "req {ec} -subj /CN=127.0.0.1 -keyout server.key -out server.csr"
        ));
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(
            "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile san.ext -out server.crt",
        );
        server.ca = Some(dir.join("ca.crt"));
        server.restart();
        Some(server)
    }

    /// From now on (restarts included) clients must give `password`.
    pub fn require_password(&mut self, password: &str) {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("requirepass")
            .arg(password)
            .query(&mut self.connection())
            .unwrap();
        self.password = Some(password.to_owned());
    }

    /// Starts the server process on `self.port`; whether it answered PING in time.
    fn try_run(&mut self) -> bool {
        let port = self.port.to_string();
        let ports: Vec<&str> = match &self.ca {
            None => vec!["--port", &port],
            Some(_) => vec![
                "--port",
                "0",
                "--tls-port",
                &port,
                "--tls-cert-file",
                "server.crt",
                "--tls-key-file",
                "server.key",
                "--tls-ca-cert-file",
                "ca.crt",
                "--tls-auth-clients",
                "no",
            ],
        };
        let child = Command::new("redis-server")
            .current_dir(self.dir.path())
            .args(["--bind", "127.0.0.1"])
            .args(ports)
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args(self.password.iter().flat_map(|p| ["--requirepass", p.as_str()]))
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::fs::File::create(self.dir.path().join("redis.log")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server spawns");
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < READY_WITHIN {
            if let Some(c) = self.child.as_mut()
                && c.try_wait().unwrap().is_some()
            {
                self.child = None;
                return false;
            }
            if self.ping() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }

    /// Whether the server answers PING now.
    pub fn ping(&self) -> bool {
        let Ok(mut c) = self.try_connection() else { return false };
        redis::cmd("PING").query::<String>(&mut c).is_ok()
    }

    fn try_connection(&self) -> redis::RedisResult<redis::Connection> {
        let client = match &self.ca {
            None => redis::Client::open(self.url())?,
            Some(ca) => redis::Client::build_with_tls(
                self.url(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(std::fs::read(ca).unwrap()),
                },
            )?,
        };
        client.get_connection_with_timeout(Duration::from_secs(1))
    }

    /// A plain connection for the test's own reads.
    pub fn connection(&self) -> redis::Connection {
        let c = self.try_connection().expect("redis answers");
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c
    }

    /// `GET key`.
    pub fn get(&self, key: &str) -> Option<String> {
        redis::cmd("GET").arg(key).query(&mut self.connection()).unwrap()
    }

    /// How many `PING`s the server has answered (`INFO commandstats`).
    pub fn pings(&self) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.connection())
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_ping:calls="))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().unwrap())
    }

    /// `PEXPIRETIME key`: the key's expiry in ms since the epoch (-1 none, -2 no key).
    pub fn expire_time_ms(&self, key: &str) -> i64 {
        redis::cmd("PEXPIRETIME")
            .arg(key)
            .query(&mut self.connection())
            .unwrap()
    }

    /// Kills the server (SIGKILL: what a crash does); its data is gone.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `sig` (e.g. "STOP", "CONT") to the server.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} redis-server failed");
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        for _ in 0..50 {
            if self.try_run() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
        panic!("redis-server did not restart on port {}: {log}", self.port);
    }
}

/// A TCP relay in front of a server, which a test can cut (every open
/// connection dropped, new ones closed at once) and mend: one replica cut off
/// from Redis while the others still reach it.
pub struct Relay {
    /// The relay's own address.
    pub addr: std::net::SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    epoch: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// Relays 127.0.0.1:(a free port) to `target`.
    pub async fn start(target: std::net::SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (epoch, _) = tokio::sync::watch::channel(0u64);
        let (cut2, epoch2) = (cut.clone(), epoch.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if cut2.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let mut cut_off = epoch2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_off.changed() => {}
                    }
                });
            }
        });
        Relay { addr, cut, epoch, task }
    }

    /// Drops every relayed connection and refuses new ones until [`Relay::mend`].
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Relays again.
    pub fn mend(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}
