//! Crash safety of the state file, with the real binary: `kill -9` at random
//! moments while hundreds of streams publish and a reader parses the file
//! every few milliseconds; then restarts that reuse the same keys with
//! generations that never go back. And writes that fail (an unwritable
//! temporary path, a file-size limit standing in for a full disk): the
//! previous file stays intact, the error is logged, and the write is retried.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::*;
use listenkeyd::state::{Document, Status};

/// `n` isolated-margin listen-key streams: 8 s keys kept alive every second.
fn many(n: usize, prefix: &str) -> (String, Vec<String>) {
    let symbols: Vec<String> = (0..n).map(|i| format!("{prefix}{i:03}USDT")).collect();
    let list: Vec<String> = symbols.iter().map(|s| format!("\"{s}\"")).collect();
    let body = format!(
        "[timing]\nkeepalive_interval = \"1s\"\nlisten_key_validity = \"8s\"\njitter = 0.1\n\n[[streams]]\nkind = \"isolated-margin\"\nsymbols = [{}]\ncredential = \"listen-key\"\n",
        list.join(", ")
    );
    (body, symbols.iter().map(|s| format!("isolated-margin:{s}")).collect())
}

/// A reader thread parsing the file every 3 ms; returns (reads, highest generation per stream).
fn reader(path: std::path::PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, BTreeMap<String, u64>)> {
    std::thread::spawn(move || {
        let mut reads = 0u64;
        let mut top: BTreeMap<String, u64> = BTreeMap::new();
        while !stop.load(Ordering::Relaxed) {
            if let Ok(bytes) = std::fs::read(&path) {
                assert!(!bytes.is_empty(), "an empty state file");
                let doc: Document = serde_json::from_slice(&bytes)
                    .unwrap_or_else(|e| panic!("a torn or invalid state file ({} bytes): {e}", bytes.len()));
                for (id, e) in doc.streams {
                    assert!(!e.value.is_empty(), "{id}: empty value");
                    let t = top.entry(id.clone()).or_default();
                    assert!(
                        e.generation >= *t,
                        "{id}: generation went back from {t} to {}",
                        e.generation
                    );
                    *t = e.generation;
                }
                reads += 1;
            }
            std::thread::sleep(Duration::from_millis(3));
        }
        (reads, top)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_never_tears_the_file_and_restarts_reuse_keys() {
    const N: usize = 300;
    let sim = sim_with_ttl(Duration::from_secs(8)).await;
    let (body, ids) = many(N, "K");
    let s = setup(&sim.handle.url(), &body);
    let stop = Arc::new(AtomicBool::new(false));
    let reading = reader(s.state.clone(), stop.clone());
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();

    let mut kills = 0;
    for round in 0..6u64 {
        let mut d = spawn_daemon(&s);
        if round == 0 {
            wait_published(&s.state, &id_refs, Duration::from_secs(10)).await;
        }
        if round == 2 {
            // Some keys vanish server-side: new generations get written (or not) before the next kill.
            for id in &ids[..10] {
                sim.handle.revoke_scope(id);
            }
        }
        // A random moment: anywhere from start-up to a keepalive round in (every second).
        let ms = 100 + rand::random::<u64>() % 1500;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        d.child.kill().unwrap(); // SIGKILL
        d.child.wait().unwrap();
        kills += 1;
    }
    let before = read_state(&s.state).expect("a state file after the kills");

    // A last restart: every stream published again, keys reused, generations not behind.
    let mut d = spawn_daemon(&s);
    let after = eventually(Duration::from_secs(10), "every stream fresh after restart", || {
        read_state(&s.state).filter(|doc| {
            doc.updated_at != before.updated_at
                && doc.pending.is_empty()
                && doc.streams.len() == N
                && doc.streams.values().all(|e| e.status == Status::Fresh)
        })
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let (reads, _) = reading.join().expect("the reader never saw a bad file");
    assert!(reads > 300, "{reads} reads");
    let mut reused = 0;
    for (id, e) in &before.streams {
        let now = &after.streams[id];
        assert!(now.generation >= e.generation, "{id}: generation went back");
        if now.value == e.value {
            assert_eq!(now.generation, e.generation, "{id}: same key, same generation");
            reused += 1;
        }
    }
    // Keys live 8 s and the daemon was down for milliseconds: POST hands every key back.
    assert_eq!(reused, before.streams.len(), "every key was reused after {kills} kills");
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(5)).0, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_state_path_keeps_the_previous_file_logs_and_retries() {
    let sim = sim_with_ttl(Duration::from_secs(8)).await;
    let (body, ids) = many(5, "W");
    let s = setup(&sim.handle.url(), &body);
    let d = spawn_daemon(&s);
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    wait_published(&s.state, &id_refs, Duration::from_secs(5)).await;
    // A directory where the daemon's temporary file goes: every write fails, whatever our privileges.
    let tmp = s.state.with_file_name(format!(".keys.json.{}.tmp", d.child.id()));
    // The daemon may be mid-write, its temporary file there for a moment: try again.
    eventually(Duration::from_secs(3), "the temporary name squatted", || {
        std::fs::create_dir(&tmp).ok()
    })
    .await;
    std::fs::write(tmp.join("occupied"), b"x").unwrap();
    let d_log = || {
        std::fs::read_dir(s.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("daemon-"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<String>()
    };
    eventually(Duration::from_secs(5), "the write error logged", || {
        d_log().contains("cannot write").then_some(())
    })
    .await;
    let frozen = std::fs::read(&s.state).unwrap();
    let revoked_at = listenkeyd::clock::epoch_ms(std::time::SystemTime::now());
    sim.handle.revoke_scope(&ids[0]);
    // The new generation cannot be written; the old file stays whole. Wait
    // until the new key was created and three more keepalives changed the
    // document after it, so the writer has tried (and failed) since.
    let symbol = ids[0].trim_start_matches("isolated-margin:").to_owned();
    eventually(Duration::from_secs(8), "a new key and keepalives after it", || {
        let reqs = crate::common::calls(&sim.handle);
        let created = reqs.iter().position(|r| {
            r.at_ms > revoked_at
                && r.method == "POST"
                && r.status == Some(200)
                && r.params.get("symbol") == Some(&symbol)
        })?;
        let later = reqs[created..]
            .iter()
            .filter(|r| r.method == "PUT" && r.status == Some(200))
            .count();
        (later >= 3).then_some(())
    })
    .await;
    assert_eq!(std::fs::read(&s.state).unwrap(), frozen, "the previous file is intact");
    std::fs::remove_dir_all(&tmp).unwrap();
    let doc = eventually(Duration::from_secs(10), "the write retried", || {
        read_state(&s.state).filter(|d| d.streams[&ids[0]].generation == 2)
    })
    .await;
    assert!(sim.handle.is_live(&doc.streams[&ids[0]].value));
    eventually(Duration::from_secs(3), "the recovery logged", || {
        d_log().contains("state file written again").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_keeps_the_previous_file_and_the_keys_fresh() {
    let sim = sim_with_ttl(Duration::from_secs(8)).await;
    let (body, ids) = many(40, "F");
    let s = setup(&sim.handle.url(), &body);
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut d = spawn_daemon(&s);
    wait_published(&s.state, &id_refs, Duration::from_secs(5)).await;
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(3)).0, Some(0));
    let previous = std::fs::read(&s.state).unwrap();
    assert!(previous.len() > 8 * 1024);

    // A file-size limit of a few KiB, with SIGXFSZ ignored: writes fail with EFBIG, like ENOSPC.
    // The log goes through a pipe: the file-size limit would cut a log file short.
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 4; exec \"$0\" run --config {}",
            s.config.display()
        ))
        .arg(env!("CARGO_BIN_EXE_listenkeyd"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    {
        let (log, mut err) = (log.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 8192];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                log.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    eventually(Duration::from_secs(5), "the write error logged", || {
        log.lock().unwrap().contains("cannot write").then_some(())
    })
    .await;
    assert!(log.lock().unwrap().contains("File too large"));
    // Keepalives go on (the keys stay live) while the file cannot be replaced.
    sim.handle.clear_requests();
    eventually(Duration::from_secs(5), "the schedulers carrying on", || {
        (crate::common::calls(&sim.handle)
            .iter()
            .filter(|r| r.status == Some(200))
            .count()
            >= 40)
            .then_some(())
    })
    .await;
    assert_eq!(
        std::fs::read(&s.state).unwrap(),
        previous,
        "the previous file is intact"
    );
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    // Listed once the daemon has stopped: while it runs, a retry's temporary
    // file exists for the moment between its creation and its removal.
    let names: Vec<_> = std::fs::read_dir(s.state.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "keys.json.lock")
        .collect();
    assert_eq!(names, vec!["keys.json"], "no partial temporary file left");
    assert_eq!(
        std::fs::read(&s.state).unwrap(),
        previous,
        "the last write failed whole"
    );
}
