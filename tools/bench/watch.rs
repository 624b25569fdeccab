//! Watching the published files with inotify: every rename into the watched
//! directory is time-stamped the moment the kernel reports it and the file is
//! read at once; a second thread parses it and keeps only what changed (which
//! streams got a new `refreshed_at`), so memory stays proportional to the
//! number of refreshes, not of writes times streams.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use inotify::{Inotify, WatchMask};

use crate::now_us;

/// The file name whose rename stops the watcher.
const STOP: &str = ".bench-stop";

/// One rename of a watched file, reduced.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When inotify reported it, µs since the epoch.
    pub at_us: i64,
    /// Which file.
    pub name: String,
    /// Streams with a non-empty value in it.
    pub complete: usize,
    /// Streams whose `refreshed_at` (or value) differs from the previous version.
    pub changed: Vec<String>,
}

/// A running watcher; [`Watcher::stop`] returns everything seen.
pub struct Watcher {
    dir: PathBuf,
    seen: Arc<Mutex<Vec<Seen>>>,
    threads: Vec<thread::JoinHandle<()>>,
}

/// What a stream entry looks like to us: the daemon's objects or python's plain strings.
fn entry_mark(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Object(o) => {
            let value = o.get("value")?.as_str().filter(|s| !s.is_empty())?;
            let at = o.get("refreshed_at").and_then(|r| r.as_str()).unwrap_or("");
            Some(format!("{value}@{at}"))
        }
        _ => None,
    }
}

impl Watcher {
    /// Starts watching `dir` for renames (create the directory first).
    pub fn start(dir: &Path) -> std::io::Result<Watcher> {
        let mut inotify = Inotify::init()?;
        inotify.watches().add(dir, WatchMask::MOVED_TO)?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<(i64, String, Vec<u8>)>();
        let d = dir.to_path_buf();
        let reader = thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let Ok(events) = inotify.read_events_blocking(&mut buf) else {
                    return;
                };
                let at_us = now_us();
                let names: Vec<OsString> = events.filter_map(|e| e.name.map(|n| n.to_os_string())).collect();
                for name in names {
                    let name = name.to_string_lossy().into_owned();
                    if name == STOP {
                        return;
                    }
                    if let Ok(bytes) = std::fs::read(d.join(&name)) {
                        let _ = tx.send((at_us, name, bytes));
                    }
                }
            }
        });
        let sink = seen.clone();
        let parser = thread::spawn(move || {
            let mut last: HashMap<String, HashMap<String, String>> = HashMap::new();
            for (at_us, name, bytes) in rx {
                let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                    continue;
                };
                let Some(streams) = doc.get("streams").and_then(|s| s.as_object()) else {
                    continue;
                };
                let prev = last.entry(name.clone()).or_default();
                let mut changed = Vec::new();
                let mut now = HashMap::with_capacity(streams.len());
                for (id, v) in streams {
                    if let Some(mark) = entry_mark(v) {
                        if prev.get(id) != Some(&mark) {
                            changed.push(id.clone());
                        }
                        now.insert(id.clone(), mark);
                    }
                }
                let complete = now.len();
                *prev = now;
                sink.lock().expect("seen lock").push(Seen {
                    at_us,
                    name,
                    complete,
                    changed,
                });
            }
        });
        Ok(Watcher {
            dir: dir.to_path_buf(),
            seen,
            threads: vec![reader, parser],
        })
    }

    /// A copy of what was seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }

    /// Stops the threads and returns everything seen.
    pub fn stop(self) -> Vec<Seen> {
        let tmp = self.dir.join(".bench-stop.tmp");
        if std::fs::write(&tmp, b"").is_ok() {
            let _ = std::fs::rename(&tmp, self.dir.join(STOP));
        }
        for t in self.threads {
            let _ = t.join();
        }
        self.seen.lock().expect("seen lock").clone()
    }
}
