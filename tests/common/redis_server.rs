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
            };
            if server.try_run() {
                return Some(server);
            }
        }
        panic!("{test}: redis-server did not start on any of 5 free ports");
    }

    /// `redis://127.0.0.1:PORT/0`, with the password when one is required.
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
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
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
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
        let client = redis::Client::open(self.url())?;
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
