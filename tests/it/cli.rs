//! The command line as users meet it: every config fixture through the real
//! binary (exit 78 and one line naming the key, before any request), the
//! simulator and the demo as processes (the default `sim` feature), and their
//! absence from the lean build (`--no-default-features`).

#[cfg(feature = "sim")]
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;

fn fixtures(kind: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(kind);
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_invalid_fixture_exits_78_with_one_line_naming_the_key() {
    let files = fixtures("invalid");
    assert!(files.len() >= 20);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let expect = text.lines().next().unwrap().strip_prefix("# expect: ").unwrap().trim();
        for cmd in ["check-config", "run"] {
            let out = run_cli(&[cmd, "--config", f.to_str().unwrap()]);
            let stderr = String::from_utf8(out.stderr).unwrap();
            assert_eq!(out.status.code(), Some(78), "{cmd} {}: {stderr}", f.display());
            assert_eq!(stderr.lines().count(), 1, "{}: one line, got {stderr:?}", f.display());
            assert!(
                stderr.contains(expect),
                "{}: expected {expect:?} in {stderr:?}",
                f.display()
            );
            assert!(stderr.starts_with("listenkeyd: config error: "), "{stderr}");
        }
    }
}

#[test]
fn every_valid_fixture_checks_and_masks_its_secrets() {
    for f in fixtures("valid") {
        let out = run_cli(&["check-config", "--config", f.to_str().unwrap()]);
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("streams") || stdout.contains("Streams"), "{stdout}");
        assert!(
            !stdout.contains("fixture-key"),
            "{}: the API key is printed",
            f.display()
        );
        let secrets = f.parent().unwrap().join("secrets");
        for s in std::fs::read_dir(secrets).unwrap() {
            let secret = std::fs::read_to_string(s.unwrap().path()).unwrap();
            for line in secret.lines().filter(|l| l.len() > 8 && !l.starts_with("-----")) {
                assert!(
                    !stdout.contains(line),
                    "{}: a secret file's content is printed",
                    f.display()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_sends_no_request() {
    let sim = sim_with_ttl(Duration::from_secs(60)).await;
    for (body, key) in [
        ("[[streams]]\nkind = \"spot\"\n", "streams[0].kind"),
        ("[[streams]]\nkind = \"usdm-futures\"\nbogus = 1\n", "streams[0].bogus"),
        (
            "[[streams]]\nkind = \"isolated-margin\"\nsymbols = [\"BTCUSDT\", \"btcusdt\"]\n",
            "streams[0].symbols[1]",
        ),
        (
            "[timing]\nkeepalive_interval = \"40m\"\n[[streams]]\nkind = \"usdm-futures\"\n",
            "timing.keepalive_interval",
        ),
    ] {
        let s = setup(&sim.handle.url(), body);
        // The default subcommand is run.
        let out = bin().arg("--config").arg(&s.config).output().unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(78), "{stderr}");
        assert!(stderr.contains(key), "{stderr}");
        assert!(!s.state.exists(), "no state file written");
    }
    assert!(
        crate::common::calls(&sim.handle).is_empty(),
        "no request before the config is valid"
    );
}

#[cfg(feature = "sim")]
#[test]
fn the_simulator_runs_as_a_process_and_stops_on_sigterm() {
    let mut child = bin()
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--listen-key-ttl",
            "5s",
            "--fault",
            "PUT * status=503 count=1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    let mut profile = String::new();
    out.read_line(&mut profile).unwrap();
    assert!(profile.starts_with("profile binance: "), "{profile}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let time = http.get(format!("{url}/fapi/v1/time")).send().await.unwrap();
        assert_eq!(time.status(), 200);
        let post = http
            .post(format!("{url}/fapi/v1/listenKey"))
            .header("X-MBX-APIKEY", "k")
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), 200);
        let put = http
            .put(format!("{url}/fapi/v1/listenKey"))
            .header("X-MBX-APIKEY", "k")
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 503, "the --fault flag is armed");
    });
    // One line per request, with fingerprints only.
    let mut log = Vec::new();
    for _ in 0..3 {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        log.push(l.trim_end().to_owned());
    }
    let fp = listenkeyd::secret::fingerprint("k");
    assert_eq!(log[0], "GET    /fapi/v1/time 200 api-key=none");
    assert!(
        log[1].starts_with(&format!(
            "POST   /fapi/v1/listenKey 200 stream=usdm-futures api-key={fp} key="
        )),
        "{log:?}"
    );
    assert_eq!(
        log[2],
        format!("PUT    /fapi/v1/listenKey 503 stream=usdm-futures api-key={fp}")
    );
    let ok = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(ok.success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[cfg(feature = "sim")]
#[test]
fn the_demo_runs_and_shows_keys_being_kept_and_its_hint_works_as_printed() {
    // The demo's directory goes under TMPDIR: this test leaves nothing in /tmp.
    let tmp = tempfile::tempdir().unwrap();
    let mut child = bin()
        .args(["demo", "--duration", "6s"])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdout = String::new();
    let mut hint = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        stdout.push_str(&line);
        stdout.push('\n');
        if let Some(cmd) = line.trim().strip_prefix("try") {
            hint = Some(cmd.trim().trim_end_matches("(while the demo runs)").trim().to_owned());
        }
        if line.contains("usdm-futures") && line.contains("new key") {
            break;
        }
    }
    // Run the hint exactly as printed, from where `cargo run` would be run,
    // with no listenkeyd on the PATH; the file may lag the printed line a little.
    let hint = hint.expect("the demo prints a hint");
    let start = std::time::Instant::now();
    let run = loop {
        let run = std::process::Command::new("sh")
            .arg("-c")
            .arg(&hint)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        if run.status.success() || start.elapsed() > Duration::from_secs(3) {
            break run;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(run.status.success(), "{hint}: {}", String::from_utf8_lossy(&run.stderr));
    assert!(
        String::from_utf8(run.stdout).unwrap().trim().len() >= 16,
        "{hint} printed a key"
    );
    for line in lines {
        stdout.push_str(&line.unwrap());
        stdout.push('\n');
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "the demo's own directory, under TMPDIR");
    assert!(
        stdout.contains("new key") && stdout.contains("generation 1"),
        "{stdout}"
    );
    assert!(stdout.contains("kept alive"), "{stdout}");
    assert!(stdout.contains("0 stream failures"), "{stdout}");
    assert!(stdout.contains("profile    binance-2025"), "{stdout}");
    assert!(stdout.contains("margin-risk"), "{stdout}");
}

#[test]
fn contradictory_flags_are_refused_not_ignored() {
    let mut cases = vec![
        &["get", "usdm-futures", "--config", "x.toml", "--state-file", "k.json"][..],
        &["status", "--config", "x.toml", "--state-file", "k.json"],
        &["health", "--state-file", "k.json", "--config", "x.toml"],
    ];
    if cfg!(feature = "sim") {
        cases.extend([&["sim", "--config", "x.toml"][..], &["demo", "--config", "x.toml"]]);
    }
    for args in cases {
        let out = run_cli(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("--config"), "{args:?}: {err}");
    }
}

/// The lean build (`--no-default-features`) is the daemon and its readers
/// alone: `sim` and `demo` are unknown subcommands there, refused by clap.
#[cfg(not(feature = "sim"))]
#[test]
fn the_lean_build_has_neither_sim_nor_demo() {
    for command in ["sim", "demo"] {
        let out = run_cli(&[command]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {err}");
        assert!(err.contains("unrecognized subcommand"), "{command}: {err}");
    }
    let help = String::from_utf8_lossy(&run_cli(&["--help"]).stdout).into_owned();
    assert!(help.contains("check-config") && !help.contains("demo"), "{help}");
}

#[test]
fn status_calls_an_expired_value_expired_whatever_the_file_says() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("keys.json");
    let entry = |expires: &str| {
        format!(
            r#"{{"kind": "usdm-futures", "credential": "listen-key", "value": "k3yk3yk3yk3yk3yk3yk3y", "generation": 3,
              "obtained_at": "2026-01-01T00:00:00Z", "refreshed_at": "2026-01-01T00:00:00Z", "expires_at": "{expires}",
              "status": "fresh", "last_error": null}}"#
        )
    };
    let doc = format!(
        r#"{{"version": 1, "updated_at": "2026-01-01T00:00:00Z", "streams": {{"usdm-futures": {}, "coinm-futures": {}}}}}"#,
        entry("2026-01-01T01:00:00Z"),
        entry("2999-01-01T00:00:00Z")
    );
    std::fs::write(&state, doc).unwrap();
    let out = run_cli(&["status", "--state-file", state.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    let row = |id: &str| text.lines().find(|l| l.starts_with(id)).unwrap().to_owned();
    let usdm = row("usdm-futures");
    assert!(usdm.split_whitespace().nth(1) == Some("expired"), "{text}");
    assert!(
        row("coinm-futures").split_whitespace().nth(1) == Some("fresh"),
        "{text}"
    );
}

#[test]
fn check_config_refuses_a_state_file_that_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("plain-file");
    std::fs::write(&not_a_dir, "x").unwrap();
    // Below a regular file, and on a file system that takes no new files: both fail, even for root.
    for state in [not_a_dir.join("keys.json"), "/proc/listenkeyd/keys.json".into()] {
        let s = setup("http://127.0.0.1:9", "[[streams]]\nkind = \"usdm-futures\"\n");
        let text = std::fs::read_to_string(&s.config)
            .unwrap()
            .replace(&s.state.display().to_string(), &state.display().to_string());
        std::fs::write(&s.config, text).unwrap();
        let out = run_cli(&["check-config", "--config", s.config.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{}: {err}", state.display());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("listenkeyd: state.file: "), "{err}");
    }
    // A directory that does not exist yet, below a writable one, is fine: run creates it.
    let s = setup("http://127.0.0.1:9", "[[streams]]\nkind = \"usdm-futures\"\n");
    let out = run_cli(&["check-config", "--config", s.config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!s.state.parent().unwrap().exists(), "check-config creates nothing");
}

#[test]
fn a_reader_whose_stdout_is_closed_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("keys.json");
    std::fs::write(
        &state,
        r#"{"version": 1, "updated_at": "2026-01-01T00:00:00Z", "streams": {}}"#,
    )
    .unwrap();
    for cmd in ["status", "health"] {
        // A pipe whose reading end is already closed: every write fails with EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = bin()
            .args([cmd, "--state-file", state.to_str().unwrap()])
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{cmd}: {err}");
        assert_ne!(out.status.code(), Some(101), "{cmd}: {err}");
    }
}
