//! Files that hold a secret are checked for their mode, through the real
//! binary: readable by every user (or writable by the group) is a warning on
//! stderr naming the file and its mode, for `check-config` and in the log of
//! `run`; writable by every user is refused with exit 78 and one line naming
//! the key; owner-only and group-readable files pass silently. No message
//! ever carries the secret.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::common::*;

const KEY: &str = "file-api-key-0123456789abcdef";
const HMAC: &str = "file-hmac-secret-fedcba9876543210";
const PEM: &str = include_str!("../fixtures/valid/secrets/ed25519.pem");

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A config in `dir` whose `[binance]` section is `binance`, owner-only itself.
fn config(dir: &Path, binance: &str) -> std::path::PathBuf {
    let path = dir.join("listenkeyd.toml");
    fs::write(
        &path,
        format!("[binance]\n{binance}\n\n[[streams]]\nkind = \"isolated-margin\"\nsymbols = [\"BTCUSDT\"]\n"),
    )
    .unwrap();
    chmod(&path, 0o600);
    path
}

/// `check-config` on `path`: exit code and stderr.
fn check(path: &Path) -> (Option<i32>, String) {
    let out = run_cli(&["check-config", "--config", path.to_str().unwrap()]);
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn key_files_readable_by_everyone_are_named_with_their_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (key, secret, pem) = (
        dir.path().join("api_key"),
        dir.path().join("hmac"),
        dir.path().join("ed.pem"),
    );
    fs::write(&key, KEY).unwrap();
    fs::write(&secret, HMAC).unwrap();
    fs::write(&pem, PEM).unwrap();

    for (binance, file, secret_file) in [
        ("api_key_file = \"api_key\"\nsecret_key_file = \"hmac\"", &key, &secret),
        ("api_key_file = \"api_key\"\nprivate_key_file = \"ed.pem\"", &key, &pem),
    ] {
        let cfg = config(dir.path(), binance);
        for (mode, what) in [
            (0o644, "readable by every user"),
            (0o604, "readable by every user"),
            (0o620, "writable by its group"),
        ] {
            chmod(file, mode);
            chmod(secret_file, mode);
            let (code, stderr) = check(&cfg);
            assert_eq!(code, Some(0), "{stderr}");
            for f in [file, secret_file] {
                let line = stderr
                    .lines()
                    .find(|l| l.contains(&*f.display().to_string()))
                    .unwrap_or_else(|| panic!("no warning names {} at {mode:o}: {stderr}", f.display()));
                assert!(line.starts_with("listenkeyd: warning: binance."), "{line}");
                assert!(line.contains(what) && line.contains(&format!("{mode:04o}")), "{line}");
            }
            assert!(!stderr.contains(KEY) && !stderr.contains(HMAC) && !stderr.contains("PRIVATE"));
        }
        // Owner-only and group-readable: silent.
        for mode in [0o600, 0o400, 0o640, 0o440] {
            chmod(file, mode);
            chmod(secret_file, mode);
            let (code, stderr) = check(&cfg);
            assert_eq!((code, stderr.as_str()), (Some(0), ""), "mode {mode:o}");
        }
        chmod(secret_file, 0o600);
    }
}

#[test]
fn a_world_writable_key_file_is_refused_with_78() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("api_key");
    fs::write(&key, KEY).unwrap();
    chmod(&key, 0o666);
    let cfg = config(dir.path(), "api_key_file = \"api_key\"");
    for cmd in ["check-config", "run"] {
        let out = run_cli(&[cmd, "--config", cfg.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{cmd}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("listenkeyd: config error: binance.api_key_file: ")
                && stderr.contains("writable by every user (mode 0666)")
                && !stderr.contains(KEY),
            "{stderr}"
        );
    }
}

#[test]
fn a_config_file_holding_the_key_inline_is_checked_too() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &format!("api_key = \"{KEY}\""));
    chmod(&cfg, 0o644);
    let (code, stderr) = check(&cfg);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: binance.api_key: ") && stderr.contains(&*cfg.display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("0644") && !stderr.contains(KEY), "{stderr}");
    // The same file without the key inline (it comes from the environment): no warning.
    let cfg = config(dir.path(), "");
    chmod(&cfg, 0o644);
    let out = bin()
        .args(["check-config", "--config", cfg.to_str().unwrap()])
        .env("LISTENKEYD__BINANCE__API_KEY", KEY)
        .output()
        .unwrap();
    assert_eq!(
        (out.status.code(), String::from_utf8_lossy(&out.stderr).as_ref()),
        (Some(0), "")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_logs_the_warning_at_start() {
    let sim = sim_with_ttl(Duration::from_secs(60)).await;
    let s = setup(&sim.handle.url(), "[[streams]]\nkind = \"usdm-futures\"\n");
    let key = s.dir.path().join("api_key");
    fs::write(&key, KEY).unwrap();
    chmod(&key, 0o644);
    let text = fs::read_to_string(&s.config).unwrap();
    fs::write(
        &s.config,
        text.replace(&format!("api_key = \"{API_KEY}\""), "api_key_file = \"api_key\""),
    )
    .unwrap();
    chmod(&s.config, 0o600);
    let mut d = spawn_daemon(&s);
    let line = eventually(Duration::from_secs(10), "the warning in the log", || {
        d.log_text()
            .lines()
            .find(|l| l.contains("WARN") && l.contains(&*key.display().to_string()))
            .map(str::to_owned)
    })
    .await;
    assert!(line.contains("0644") && !line.contains(KEY), "{line}");
    // Stopped while it may still be starting: a clean stop all the same.
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(5)).0, Some(0));
}
