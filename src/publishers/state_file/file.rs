//! The state file: one JSON document replaced atomically.
//!
//! A temporary file is created in the same directory with the final mode
//! (set before the first byte is written), filled, fsynced, renamed over the
//! target, and the directory is fsynced, so a reader sees the old document or
//! the new one, never a torn or empty file, even across a crash or power loss.
//! The temporary name carries the writer's pid, so two processes can never
//! write through one temporary file; leftovers of a crashed writer are removed
//! by the next instance once it holds the state file's lock.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::state::Document;

/// Reads and parses a state file.
pub fn read(path: &Path) -> io::Result<Document> {
    let bytes = fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The temporary file this process uses while replacing `path`: `.keys.json.<pid>.tmp`.
pub fn temp_path(path: &Path) -> PathBuf {
    let (prefix, suffix) = temp_affixes(path);
    path.with_file_name(format!("{prefix}{}{suffix}", std::process::id()))
}

/// What every writer's temporary name for `path` starts and ends with.
fn temp_affixes(path: &Path) -> (String, &'static str) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (format!(".{name}."), ".tmp")
}

/// Removes temporary files that crashed writers left beside `path`; call it
/// only while holding the state file's lock. Returns how many were removed.
pub fn remove_stale_temps(path: &Path) -> usize {
    let (prefix, suffix) = temp_affixes(path);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(&prefix) && name.ends_with(suffix) && e.file_type().is_ok_and(|t| t.is_file())
        })
        .filter(|e| fs::remove_file(e.path()).is_ok())
        .count()
}

/// Replaces `path` with `doc`, atomically and durably, with permissions `mode`.
#[cfg(any(test, feature = "test-seams"))]
pub fn write(path: &Path, mode: u32, doc: &Document) -> io::Result<()> {
    write_with(path, mode, |out| super::render::write_document(doc, out))
}

/// Replaces `path` with what `fill` writes, atomically and durably, with
/// permissions `mode`; `fill` writes through a 64 KiB buffer.
pub fn write_with(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut io::BufWriter<&mut File>) -> io::Result<()>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = create_temp(dir, &tmp, mode)?;
        // The umask may have narrowed the mode; set it exactly before writing.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        // Serialized straight into the file: no copy of a document that is
        // megabytes at thousands of streams.
        let mut out = io::BufWriter::with_capacity(64 * 1024, &mut f);
        fill(&mut out)?;
        out.flush()?;
        drop(out);
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates the temporary file `tmp` afresh with `mode`. The common case costs
/// one `open`: the directory is created only when the open finds it missing,
/// and a leftover temporary file (a crash of an earlier process with this
/// pid, or a failed removal; it may carry another mode) is removed only when
/// the open finds one.
fn create_temp(dir: &Path, tmp: &Path, mode: u32) -> io::Result<File> {
    let open = || OpenOptions::new().write(true).create_new(true).mode(mode).open(tmp);
    match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
            open()
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(tmp)?;
            open()
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    #[test]
    fn writes_atomically_with_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/keys.json");
        let doc = Document::build([], SystemTime::now());
        write(&path, 0o600, &doc).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(read(&path).unwrap(), doc);
        write(&path, 0o640, &doc).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["keys.json"], "no temporary file left behind");
    }

    #[test]
    fn temporary_names_are_per_process_and_leftovers_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let mine = temp_path(&path);
        assert_eq!(
            mine.file_name().unwrap().to_string_lossy(),
            format!(".keys.json.{}.tmp", std::process::id())
        );
        fs::write(dir.path().join(".keys.json.1.tmp"), b"torn").unwrap();
        fs::write(dir.path().join(".keys.json.99999.tmp"), b"torn").unwrap();
        fs::write(dir.path().join("other.tmp"), b"not ours").unwrap();
        assert_eq!(remove_stale_temps(&path), 2);
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec!["other.tmp"]);
    }

    #[test]
    fn failed_write_keeps_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        write(&path, 0o600, &Document::build([], t0)).unwrap();
        let before = fs::read(&path).unwrap();
        // A directory squats the temporary file's name: the write fails even
        // for root, which ignores permission bits.
        fs::create_dir(temp_path(&path)).unwrap();
        let newer = Document::build([], t0 + std::time::Duration::from_secs(60));
        assert!(write(&path, 0o600, &newer).is_err(), "the write had to fail");
        assert_eq!(fs::read(&path).unwrap(), before, "the previous file is intact");
        // Once the name is free, the newer document lands.
        fs::remove_dir(temp_path(&path)).unwrap();
        write(&path, 0o600, &newer).unwrap();
        assert_eq!(read(&path).unwrap(), newer);
    }
}
