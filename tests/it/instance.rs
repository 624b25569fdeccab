//! One instance per state file, and signals that must not stop the daemon:
//! a second `run` on the same state file refuses to start, names the first,
//! and leaves its file and API socket alone; SIGHUP is logged and survived;
//! a clean stop writes the state file a last time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::common::*;
use listenkeyd::state::parse_rfc3339;

/// Two listen-key streams kept alive rarely: after the first publication the
/// state file does not change on its own.
const QUIET: &str = "[timing]\nkeepalive_interval = \"30m\"\nlisten_key_validity = \"60m\"\njitter = 0.1\n\n[[streams]]\nkind = \"usdm-futures\"\n\n[[streams]]\nkind = \"coinm-futures\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_refuses_the_state_file_and_leaves_file_and_socket_alone() {
    let sim = sim_with_ttl(Duration::from_secs(3600)).await;
    let s = setup(&sim.handle.url(), QUIET);
    let sock = s.dir.path().join("api.sock");
    let text =
        std::fs::read_to_string(&s.config).unwrap() + &format!("\n[api]\nlisten = \"unix:{}\"\n", sock.display());
    std::fs::write(&s.config, text).unwrap();
    let mut first = spawn_daemon(&s);
    wait_published(&s.state, &["usdm-futures", "coinm-futures"], Duration::from_secs(5)).await;

    // Every read of the file while the second instance tries must parse.
    let (stop, bad, reads) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let reader = {
        let (stop, bad, reads, path) = (stop.clone(), bad.clone(), reads.clone(), s.state.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let ok = std::fs::read(&path)
                    .ok()
                    .is_some_and(|b| serde_json::from_slice::<serde_json::Value>(&b).is_ok());
                if !ok {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let second = bin().arg("run").arg("--config").arg(&s.config).output().unwrap();
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();

    assert_eq!(second.status.code(), Some(1), "the second instance exits 1");
    let err = String::from_utf8_lossy(&second.stderr);
    let pid = format!("pid {}", first.child.id());
    let lines: Vec<&str> = err.lines().filter(|l| l.contains(&pid)).collect();
    assert_eq!(lines.len(), 1, "one line names the holder: {err}");
    assert!(lines[0].contains("keys.json"), "{err}");
    assert!(reads.load(Ordering::Relaxed) > 0);
    assert_eq!(bad.load(Ordering::Relaxed), 0, "the file stayed whole");
    assert_eq!(
        crate::common::calls(&sim.handle)
            .iter()
            .filter(|r| r.method == "POST")
            .count(),
        2,
        "the second instance sent nothing"
    );
    // The first instance's socket was neither unlinked nor replaced.
    let mut c = std::os::unix::net::UnixStream::connect(&sock).expect("the first socket still answers");
    use std::io::{Read, Write};
    c.write_all(b"GET /livez HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    first.signal("TERM");
    assert_eq!(first.wait_exit(Duration::from_secs(5)).0, Some(0));
    assert!(!sock.exists(), "the socket is removed by its owner on exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_is_survived_and_a_clean_stop_writes_the_file_a_last_time() {
    let sim = sim_with_ttl(Duration::from_secs(3600)).await;
    let s = setup(&sim.handle.url(), QUIET);
    let mut d = spawn_daemon(&s);
    let doc = wait_published(&s.state, &["usdm-futures", "coinm-futures"], Duration::from_secs(5)).await;
    eventually(Duration::from_secs(5), "both streams fresh", || {
        read_state(&s.state).filter(|d| d.streams.values().all(|e| e.status.to_string() == "fresh"))
    })
    .await;

    d.signal("HUP");
    eventually(Duration::from_secs(5), "the SIGHUP logged", || {
        d.log_text().contains("SIGHUP received").then_some(())
    })
    .await;
    assert!(d.child.try_wait().unwrap().is_none(), "SIGHUP did not stop the daemon");

    let before_stop = SystemTime::now();
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(5)).0, Some(0));
    let last = read_state(&s.state).unwrap();
    let stopped_at = parse_rfc3339(&last.updated_at).unwrap();
    assert!(
        stopped_at >= before_stop,
        "the last write happened on stop: {} then {}",
        doc.updated_at,
        last.updated_at
    );
    for (id, e) in &doc.streams {
        assert_eq!(last.streams[id].value, e.value, "{id}: nothing was lost");
    }
}
