//! Redis Sentinel with real servers: a primary, its replica and a Sentinel
//! (`redis-server --sentinel`) on loopback ports, the real binary configured
//! with `[redis] sentinel` and `master_name`. The primary is killed
//! (SIGKILL); the Sentinel promotes the replica, and the daemon, without a
//! restart, writes the next generations to the promoted server.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::redis_server::RedisServer;
use crate::common::{eventually, free_port, read_state, setup, sim_with_ttl, spawn_daemon};

/// Fast rotation: tokens of 2 s re-minted 1 s ahead, so a new generation comes about every second.
const FAST: &str = "[timing]\nkeepalive_interval = \"1s\"\nlisten_key_validity = \"3s\"\ntoken_validity = \"2s\"\ntoken_renew_before = \"1s\"\njitter = 0.1\n";

const STREAM: &str = "isolated-margin:BTCUSDT";

/// A `redis-server` process of the test's own (a replica or a Sentinel), killed on drop.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `redis-server` on a free port with `args` (a config file first, if any, relative to its directory).
    fn start(args: &[String], conf: Option<String>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = Command::new("redis-server");
        cmd.current_dir(dir.path());
        if let Some(text) = conf {
            std::fs::write(dir.path().join("sentinel.conf"), format!("port {port}\n{text}")).unwrap();
            cmd.arg("sentinel.conf").arg("--sentinel");
        } else {
            cmd.args(["--port", &port.to_string(), "--save", "", "--appendonly", "no"]);
        }
        let child = cmd
            .args(["--bind", "127.0.0.1", "--protected-mode", "no"])
            .args(args)
            .stdout(std::fs::File::create(dir.path().join("redis.log")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server spawns");
        Server { child, port, _dir: dir }
    }

    /// One command on a fresh connection; `None` while the server does not answer.
    fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Option<T> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/0", self.port)).ok()?;
        let mut c = client.get_connection_with_timeout(Duration::from_secs(1)).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        cmd.query(&mut c).ok()
    }
}

/// The generation of `STREAM` that `server` holds under `prefix`, if any.
fn generation_on(server: &Server, prefix: &str) -> Option<u64> {
    let text: Option<String> = server.query(redis::cmd("GET").arg(format!("{prefix}:stream:{STREAM}")))?;
    let v: serde_json::Value = serde_json::from_str(&text?).ok()?;
    v["generation"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_replica_is_followed_without_a_restart() {
    let Some(mut primary) = RedisServer::start("a_promoted_replica_is_followed_without_a_restart") else {
        return;
    };
    let replica = Server::start(
        &["--replicaof".into(), "127.0.0.1".into(), primary.port.to_string()],
        None,
    );
    let sentinel = Server::start(
        &[],
        Some(format!(
            "sentinel monitor lkprimary 127.0.0.1 {} 1\nsentinel down-after-milliseconds lkprimary 500\nsentinel failover-timeout lkprimary 5000\n",
            primary.port
        )),
    );
    // The replica follows the primary, and the Sentinel knows it.
    eventually(Duration::from_secs(10), "the replica in sync", || {
        let info: String = replica.query(redis::cmd("INFO").arg("replication"))?;
        info.contains("master_link_status:up").then_some(())
    })
    .await;
    eventually(Duration::from_secs(15), "the Sentinel to know the replica", || {
        let replicas: Vec<redis::Value> = sentinel.query(redis::cmd("SENTINEL").arg("REPLICAS").arg("lkprimary"))?;
        (!replicas.is_empty()).then_some(())
    })
    .await;

    let sim = sim_with_ttl(Duration::from_secs(3)).await;
    let s = setup(
        &sim.handle.url(),
        &format!(
            "{FAST}\n[[streams]]\nkind = \"isolated-margin\"\nsymbols = [\"BTCUSDT\"]\ncredential = \"listen-token\"\n\n\
             [redis]\nsentinel = [\"redis://127.0.0.1:{}\"]\nmaster_name = \"lkprimary\"\nprefix = \"lks\"\n",
            sentinel.port
        ),
    );
    let mut daemon = spawn_daemon(&s);
    eventually(Duration::from_secs(10), "the primary to hold the stream", || {
        primary.get(&format!("lks:stream:{STREAM}")).map(|_| ())
    })
    .await;

    // Kill the primary: the last generation written to it is at most the state file's now.
    let before = read_state(&s.state)
        .and_then(|d| d.streams.get(STREAM).map(|e| e.generation))
        .unwrap_or(0);
    primary.stop();
    eventually(Duration::from_secs(20), "the replica promoted", || {
        let role: Vec<redis::Value> = replica.query(&redis::cmd("ROLE"))?;
        matches!(role.first(), Some(redis::Value::BulkString(b)) if b == b"master").then_some(())
    })
    .await;
    // A generation two past the last one the primary could have had can only
    // have been written to the promoted server by the daemon, after the failover.
    let after = eventually(
        Duration::from_secs(15),
        "a new generation on the promoted server",
        || generation_on(&replica, "lks").filter(|g| *g >= before + 2),
    )
    .await;
    assert!(daemon.child.try_wait().unwrap().is_none(), "the daemon kept running");
    let log = daemon.log_text();
    assert!(!log.contains("panicked"), "{log}");
    eprintln!("generation {before} when the primary died, {after} on the promoted replica");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).0, Some(0), "a clean stop");
}
