//! Reading a process's resource use from /proc: memory (`VmHWM`, `VmRSS`),
//! bytes written (`/proc/PID/io`: `wchar`, every byte handed to `write`, and
//! `write_bytes`, the bytes it sent to storage), CPU time (per-thread `schedstat` in ns, and `utime + stime` in clock
//! ticks as a cross-check) and context switches per thread, the proxy used for
//! wakeups. Threads that exit between two samples take their counts with them;
//! [`Usage::since`] counts a thread that appeared in full.

use std::collections::HashMap;
use std::fs;

/// One sample of a process.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// Peak resident set, KiB.
    pub hwm_kib: u64,
    /// Current resident set, KiB.
    pub rss_kib: u64,
    /// utime + stime of the whole process, clock ticks.
    pub ticks: u64,
    /// Bytes passed to write(2) and friends (`wchar`).
    pub wchar: u64,
    /// Bytes sent to storage (`write_bytes`).
    pub write_bytes: u64,
    /// Per thread: (run time ns, voluntary + involuntary context switches).
    pub threads: HashMap<u32, (u64, u64)>,
}

/// Differences between two samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delta {
    /// CPU time, ns (from schedstat).
    pub cpu_ns: u64,
    /// CPU time, clock ticks (from stat).
    pub ticks: u64,
    /// Context switches, all threads.
    pub switches: u64,
    /// Bytes passed to write(2) (`wchar`).
    pub wchar: u64,
    /// Bytes sent to storage (`write_bytes`).
    pub write_bytes: u64,
}

/// A `Key:   123 kB` field of a status file.
fn status_field(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Samples process `pid`; `None` once it is gone.
pub fn sample(pid: u32) -> Option<Usage> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: state is field 3, utime 14, stime 15.
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let mut threads = HashMap::new();
    for entry in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let dir = entry.path();
        let (Ok(st), Ok(sched)) = (
            fs::read_to_string(dir.join("status")),
            fs::read_to_string(dir.join("schedstat")),
        ) else {
            continue;
        };
        let ns = sched
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let sw = status_field(&st, "voluntary_ctxt_switches") + status_field(&st, "nonvoluntary_ctxt_switches");
        threads.insert(tid, (ns, sw));
    }
    let io = fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    Some(Usage {
        hwm_kib: status_field(&status, "VmHWM"),
        rss_kib: status_field(&status, "VmRSS"),
        ticks,
        wchar: status_field(&io, "wchar"),
        write_bytes: status_field(&io, "write_bytes"),
        threads,
    })
}

impl Usage {
    /// What happened between `before` and this sample.
    pub fn since(&self, before: &Usage) -> Delta {
        let mut d = Delta {
            ticks: self.ticks.saturating_sub(before.ticks),
            wchar: self.wchar.saturating_sub(before.wchar),
            write_bytes: self.write_bytes.saturating_sub(before.write_bytes),
            ..Delta::default()
        };
        for (tid, (ns, sw)) in &self.threads {
            let (ns0, sw0) = before.threads.get(tid).copied().unwrap_or((0, 0));
            d.cpu_ns += ns.saturating_sub(ns0);
            d.switches += sw.saturating_sub(sw0);
        }
        d
    }
}
