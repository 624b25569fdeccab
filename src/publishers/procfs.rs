//! The one place `/proc` is read: a process's `stat` line (stat(5)), the boot
//! time, and the system constants that turn their numbers into seconds and
//! bytes. The hooks use it to tell a recycled pid from the process a pid file
//! named; the metrics use it for the standard `process_*` metrics. Every
//! reader returns `None` where procfs is absent or hides the process.

use std::time::{Duration, SystemTime};

/// A process's `stat` line, split into its fields.
#[derive(Debug, Clone)]
pub(crate) struct Stat {
    /// The fields after the command name (field 3 onwards).
    rest: Vec<String>,
}

impl Stat {
    /// The stat line of process `pid`, or of this process when `None`.
    pub(crate) fn read(pid: Option<i32>) -> Option<Stat> {
        let path = match pid {
            Some(pid) => format!("/proc/{pid}/stat"),
            None => "/proc/self/stat".to_owned(),
        };
        Stat::parse(&std::fs::read_to_string(path).ok()?)
    }

    /// Splits a stat line. The command name (field 2) may hold spaces and
    /// parentheses: fields are counted from the last `)`.
    pub(crate) fn parse(line: &str) -> Option<Stat> {
        let rest = &line[line.rfind(')')? + 1..];
        Some(Stat {
            rest: rest.split_whitespace().map(str::to_owned).collect(),
        })
    }

    /// Field `n` of stat(5) (1-based, from 3 on), as a number.
    pub(crate) fn field(&self, n: usize) -> Option<u64> {
        self.rest.get(n.checked_sub(3)?)?.parse().ok()
    }

    /// The process's state (field 3: `R`, `S`, `Z`, …).
    #[cfg(test)]
    pub(crate) fn state(&self) -> Option<&str> {
        self.rest.first().map(String::as_str)
    }

    /// When the process started: field 22 (clock ticks since boot) after
    /// `boot` (seconds since the epoch).
    pub(crate) fn start_time(&self, boot: u64, ticks_per_second: u64) -> Option<SystemTime> {
        let ticks = self.field(22)?;
        let since_boot = Duration::from_millis(ticks.checked_mul(1000)? / ticks_per_second.max(1));
        SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_secs(boot))?
            .checked_add(since_boot)
    }
}

/// The boot time in seconds since the epoch (`btime` in `/proc/stat`).
pub(crate) fn boot_time() -> Option<u64> {
    btime(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// `btime` from the text of `/proc/stat`.
fn btime(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// How many file descriptors this process has open.
pub(crate) fn open_fds() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count())
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of the stat
/// line's times.
pub(crate) fn clock_ticks() -> Option<u64> {
    let v = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    u64::try_from(v).ok()
}

/// The page size (`sysconf(_SC_PAGESIZE)`), the unit of the stat line's `rss`.
pub(crate) fn page_size() -> Option<u64> {
    let v = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()??;
    u64::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_are_read_past_odd_command_names() {
        let stat = Stat::parse("42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 250 1000 10").unwrap();
        let boot = btime("cpu 1 2\nbtime 1000\n").unwrap();
        let t = stat.start_time(boot, 100).unwrap();
        assert_eq!(t, SystemTime::UNIX_EPOCH + Duration::from_millis(1_002_500));
        assert!(Stat::parse("garbage").is_none());
        assert_eq!(btime("cpu 1"), None);
    }
}
