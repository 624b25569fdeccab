//! The state file: one JSON document replaced atomically.
//!
//! A temporary file is created in the same directory with the final mode
//! (set before the first byte is written), filled, fsynced, renamed over the
//! target, and the directory is fsynced, so a reader sees the old document or
//! the new one, never a torn or empty file, even across a crash or power loss.

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

/// The temporary file used while replacing `path`.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Replaces `path` with `doc`, atomically and durably, with permissions `mode`.
pub fn write(path: &Path, mode: u32, doc: &Document) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.exists() {
        fs::DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
    }
    let tmp = temp_path(path);
    // A leftover from a crash may carry another mode: start from nothing.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        // The umask may have narrowed the mode; set it exactly before writing.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        // Serialized straight into the file: no second copy of a document that
        // is ~440 KB at 1000 streams (it was the writer's largest allocation).
        let mut out = io::BufWriter::with_capacity(64 * 1024, &mut f);
        serde_json::to_writer_pretty(&mut out, doc).map_err(io::Error::other)?;
        out.write_all(b"\n")?;
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
    fn failed_write_keeps_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let doc = Document::build([], SystemTime::now());
        write(&path, 0o600, &doc).unwrap();
        let before = fs::read(&path).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o500)).unwrap();
        let outcome = write(&path, 0o600, &doc);
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        // Root ignores directory permissions; the file must be intact either way.
        if outcome.is_err() {
            assert_eq!(fs::read(&path).unwrap(), before);
        }
    }
}
