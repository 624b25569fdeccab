//! One instance per state file.
//!
//! Two keepers writing one state file would fight over its generations and
//! each other's API socket, so `run` (and every embedded keeper that writes a
//! state file) first takes an exclusive `flock` on `<state file>.lock` and
//! writes its pid into it. The lock lives as long as the [`InstanceLock`]; the
//! kernel releases it when the process dies, however it dies, so a crash never
//! leaves a stale lock behind. The lock file itself is never removed: removing
//! it would let a third instance lock a new inode while the second still holds
//! the old one.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The exclusive lock on a state file, held until dropped.
#[derive(Debug)]
pub struct InstanceLock {
    /// The locked lock file.
    _file: Flock<File>,
    /// Its path.
    #[cfg(test)]
    path: PathBuf,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("{state} is kept by another listenkeyd ({holder}); lock file {lock}")]
    Held {
        /// The state file.
        state: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// "pid N", or what is known of the holder.
        holder: String,
    },
    /// The lock file could not be created or locked.
    #[error("cannot lock {lock}: {source}")]
    Io {
        /// The lock file.
        lock: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// The lock file that guards `state_file`: `keys.json` → `keys.json.lock`.
pub fn lock_path(state_file: &Path) -> PathBuf {
    let mut name = state_file.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    state_file.with_file_name(name)
}

impl InstanceLock {
    /// Takes the lock for `state_file` without waiting, creating its directory
    /// (mode 0755) and the lock file (mode 0600, like the state file) if needed,
    /// and records our pid.
    pub fn acquire(state_file: &Path) -> Result<InstanceLock, LockError> {
        let lock = lock_path(state_file);
        let io = |source| LockError::Io {
            lock: lock.clone(),
            source,
        };
        if let Some(dir) = lock.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(io)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock)
            .map_err(io)?;
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(f) => f,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                return Err(LockError::Held {
                    state: state_file.to_path_buf(),
                    lock,
                    holder: holder(&mut file),
                });
            }
            Err((_, errno)) => return Err(io(errno.into())),
        };
        let write_pid = |f: &mut File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.rewind()?;
            writeln!(f, "{}", std::process::id())?;
            f.sync_data()
        };
        write_pid(&mut file).map_err(io)?;
        Ok(InstanceLock {
            _file: file,
            #[cfg(test)]
            path: lock,
        })
    }

    /// The lock file's path.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Names the holder from the pid it wrote, read without trusting the file.
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let read = file.take(32).read_to_string(&mut text);
    match (read, text.trim().parse::<u32>()) {
        (Ok(_), Ok(pid)) => format!("pid {pid}"),
        _ => "pid not yet recorded".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_state_file_names_the_first_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("sub/keys.json");
        let first = InstanceLock::acquire(&state).unwrap();
        assert_eq!(first.path(), dir.path().join("sub/keys.json.lock"));
        let err = InstanceLock::acquire(&state).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, LockError::Held { .. }), "{text}");
        assert!(text.contains(&format!("pid {}", std::process::id())), "{text}");
        drop(first);
        let again = InstanceLock::acquire(&state).unwrap();
        let pid = std::fs::read_to_string(again.path()).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
    }
}
