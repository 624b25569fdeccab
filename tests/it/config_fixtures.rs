//! The config contract, through the library: every file in
//! `tests/fixtures/valid` loads, every file in `tests/fixtures/invalid` fails
//! with the one-line error its first line (`# expect: …`) announces, and the
//! shipped `config/listenkeyd.toml` is valid. Environment layering, URL
//! precedence, systemd directories and secret masking are checked beside them.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use listenkeyd::config::{ApiListen, Config, ConfigError, HookAction, LogFormat};
use listenkeyd::stream::{CredentialKind, Kind};

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(dir);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Writes `text` as `listenkeyd.toml` in a fresh directory.
fn write_config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("listenkeyd.toml");
    fs::write(&path, text).unwrap();
    (dir, path)
}

fn load(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let (_dir, path) = write_config(text);
    Config::load_with_env(Some(&path), env(vars))
}

const MINIMAL: &str = "[binance]\napi_key = \"fixture-key\"\n\n[[streams]]\nkind = \"usdm-futures\"\n";

#[test]
fn valid_fixtures_load() {
    let files = fixtures("valid");
    assert!(files.len() >= 6, "too few valid fixtures: {files:?}");
    for file in files {
        if let Err(e) = Config::load_with_env(Some(&file), HashMap::new()) {
            panic!("{} should be valid, got: {e}", file.display());
        }
    }
}

#[test]
fn invalid_fixtures_fail_with_their_expected_line() {
    let files = fixtures("invalid");
    assert!(files.len() >= 20, "too few invalid fixtures: {files:?}");
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks a `# expect: ` first line", file.display()));
        let err = match Config::load_with_env(Some(&file), HashMap::new()) {
            Ok(_) => panic!("{} should be invalid", file.display()),
            Err(e) => e,
        };
        let line = err.to_string();
        assert!(!line.contains('\n'), "{}: not one line: {line}", file.display());
        assert_eq!(line, format!("config error: {}: {}", err.key, err.message));
        assert!(
            !err.key.is_empty() && !err.key.contains(' '),
            "{}: odd key in {line}",
            file.display()
        );
        assert!(
            format!("{}: {}", err.key, err.message).contains(expect),
            "{}:\n  expected: {expect}\n  got:      {line}",
            file.display()
        );
    }
}

#[test]
fn shipped_config_is_valid_with_an_api_key_from_env() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/listenkeyd.toml");
    let config = Config::load_with_env(Some(&path), env(&[("LISTENKEYD__BINANCE__API_KEY", "k")])).unwrap();
    let ids: Vec<&str> = config.streams.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        ["isolated-margin:BTCUSDT", "isolated-margin:ETHUSDT", "usdm-futures"]
    );
    // The shipped file shows the defaults; loading it must give the same values
    // as loading nothing but streams.
    let bare = load(MINIMAL, &[]).unwrap();
    assert_eq!(config.timing, bare.timing);
    assert_eq!(config.state, bare.state);
    assert_eq!(config.api, bare.api);
    assert_eq!(config.log, bare.log);
    assert_eq!(config.binance.request_timeout, bare.binance.request_timeout);
    assert_eq!(config.binance.usdm_url, bare.binance.usdm_url);
}

#[test]
fn defaults() {
    let c = load(MINIMAL, &[]).unwrap();
    assert_eq!(c.binance.margin_url.as_str(), "https://api.binance.com/");
    assert_eq!(c.binance.usdm_url.as_str(), "https://fapi.binance.com/");
    assert_eq!(c.binance.coinm_url.as_str(), "https://dapi.binance.com/");
    assert_eq!(c.binance.portfolio_margin_url.as_str(), "https://papi.binance.com/");
    assert_eq!(c.binance.options_url.as_str(), "https://eapi.binance.com/");
    assert_eq!(c.binance.request_timeout, Duration::from_secs(10));
    assert!(!c.binance.close_on_exit);
    assert!(c.binance.signer.is_none());
    assert_eq!(c.timing.keepalive_interval, Duration::from_secs(30 * 60));
    assert_eq!(c.timing.listen_key_validity, Duration::from_secs(60 * 60));
    assert_eq!(c.timing.token_validity, Duration::from_secs(24 * 3600));
    assert_eq!(c.timing.token_renew_before, Duration::from_secs(8 * 3600));
    assert_eq!(c.timing.jitter, 0.1);
    assert_eq!(c.state.file, Path::new("/var/lib/listenkeyd/keys.json"));
    assert_eq!(c.state.mode, 0o600);
    assert_eq!(c.api.listen, None);
    assert_eq!(c.log.format, LogFormat::Auto);
    assert_eq!(c.log.level, "info");
    assert!(c.hooks.is_empty());
    assert!(c.source.as_ref().unwrap().is_absolute());
}

#[test]
fn streams_expand_with_default_credentials() {
    let c = Config::load_with_env(Some(&fixture("valid/every-kind.toml")), HashMap::new()).unwrap();
    let got: Vec<(&str, Kind, Option<&str>, CredentialKind)> = c
        .streams
        .iter()
        .map(|s| (s.id.as_str(), s.kind, s.symbol.as_deref(), s.credential))
        .collect();
    assert_eq!(
        got,
        [
            (
                "isolated-margin:BTCUSDT",
                Kind::IsolatedMargin,
                Some("BTCUSDT"),
                CredentialKind::ListenToken
            ),
            (
                "isolated-margin:ETHBTC",
                Kind::IsolatedMargin,
                Some("ETHBTC"),
                CredentialKind::ListenToken
            ),
            ("cross-margin", Kind::CrossMargin, None, CredentialKind::ListenKey),
            ("usdm-futures", Kind::UsdmFutures, None, CredentialKind::ListenKey),
            ("coinm-futures", Kind::CoinmFutures, None, CredentialKind::ListenKey),
            (
                "portfolio-margin",
                Kind::PortfolioMargin,
                None,
                CredentialKind::ListenKey
            ),
            ("options", Kind::Options, None, CredentialKind::ListenKey),
            ("margin-risk", Kind::MarginRisk, None, CredentialKind::ListenKey),
        ]
    );
}

#[test]
fn env_overrides_the_file() {
    let c = load(
        MINIMAL,
        &[
            ("LISTENKEYD__BINANCE__API_KEY", "from-env"),
            ("LISTENKEYD__TIMING__KEEPALIVE_INTERVAL", "10s"),
            ("LISTENKEYD__TIMING__JITTER", "0.25"),
            ("LISTENKEYD__LOG__LEVEL", "debug"),
            ("LISTENKEYD__LOG__FORMAT", "json"),
            ("LISTENKEYD__BINANCE__CLOSE_ON_EXIT", "true"),
            ("LISTENKEYD__STATE__MODE", "0640"),
            ("LISTENKEYD__API__LISTEN", "127.0.0.1:9750"),
            ("LISTENKEYD_CONFIG", "/ignored/because/a/path/was/given.toml"),
            ("UNRELATED", "x"),
        ],
    )
    .unwrap();
    assert_eq!(c.binance.api_key.expose(), "from-env");
    assert_eq!(c.timing.keepalive_interval, Duration::from_secs(10));
    assert_eq!(c.timing.jitter, 0.25);
    assert_eq!(c.log.level, "debug");
    assert_eq!(c.log.format, LogFormat::Json);
    assert!(c.binance.close_on_exit);
    assert_eq!(c.state.mode, 0o640);
    assert_eq!(c.api.listen, Some(ApiListen::Tcp("127.0.0.1:9750".parse().unwrap())));
}

#[test]
fn env_keeps_the_case_of_values() {
    let text = "[binance]\napi_key = \"k\"\n[[streams]]\nkind = \"isolated-margin\"\nsymbols = [\"BTCUSDT\"]\n";
    let c = load(
        text,
        &[
            ("LISTENKEYD__BINANCE__API_KEY", "MiXeD-Case-KEY"),
            ("LISTENKEYD__LOG__LEVEL", "INFO"),
        ],
    )
    .unwrap();
    assert_eq!(c.binance.api_key.expose(), "MiXeD-Case-KEY");
    assert_eq!(c.streams[0].id.as_str(), "isolated-margin:BTCUSDT");
    assert_eq!(c.log.level, "INFO");
}

#[test]
fn env_secrets_that_look_like_numbers_stay_verbatim() {
    let c = load(
        "[[streams]]\nkind = \"cross-margin\"\n",
        &[
            ("LISTENKEYD__BINANCE__API_KEY", "00123"),
            ("LISTENKEYD__BINANCE__SECRET_KEY", "TRUE"),
        ],
    )
    .unwrap();
    assert_eq!(c.binance.api_key.expose(), "00123");
    let hmac = listenkeyd::config::Signer::hmac(listenkeyd::secret::Secret::new("TRUE")).unwrap();
    assert_eq!(c.binance.signer.unwrap().sign("x"), hmac.sign("x"));
}

#[test]
fn env_errors_name_the_key_and_the_variable() {
    let e = load(MINIMAL, &[("LISTENKEYD__TIMING__KEEPALIVE_INTERVAL", "soon")]).unwrap_err();
    assert_eq!(e.key, "timing.keepalive_interval");
    assert!(e.message.starts_with("invalid duration \"soon\""), "{e}");
    assert!(
        e.message.ends_with("(from $LISTENKEYD__TIMING__KEEPALIVE_INTERVAL)"),
        "{e}"
    );

    let e = load(MINIMAL, &[("LISTENKEYD__BINANCE__BOGUS", "1")]).unwrap_err();
    assert_eq!(e.key, "binance.bogus");
    assert!(e.message.starts_with("unknown key in [binance]"), "{e}");

    let e = load(MINIMAL, &[("LISTENKEYD__API__LISTEN", "0.0.0.0:9750")]).unwrap_err();
    assert_eq!(e.key, "api.listen");
}

#[test]
fn env_names_the_config_file() {
    let (_dir, path) = write_config(MINIMAL);
    let c = Config::load_with_env(None, env(&[("LISTENKEYD_CONFIG", path.to_str().unwrap())])).unwrap();
    assert_eq!(c.source.as_deref(), Some(path.as_path()));

    let e = Config::load_with_env(None, env(&[("LISTENKEYD_CONFIG", "/nonexistent/x.toml")])).unwrap_err();
    assert_eq!(e.key, "/nonexistent/x.toml");
    assert!(e.message.starts_with("cannot read the config file: "), "{e}");
}

#[test]
fn base_url_serves_families_without_their_own_url() {
    let text = "[binance]\napi_key = \"k\"\nbase_url = \"http://127.0.0.1:9000\"\nusdm_url = \"https://fapi.example.com\"\n\
                [[streams]]\nkind = \"usdm-futures\"\n";
    let c = load(text, &[("LISTENKEYD__BINANCE__OPTIONS_URL", "http://localhost:9100")]).unwrap();
    assert_eq!(c.binance.usdm_url.as_str(), "https://fapi.example.com/");
    assert_eq!(c.binance.options_url.as_str(), "http://localhost:9100/");
    for kind in [
        Kind::IsolatedMargin,
        Kind::CrossMargin,
        Kind::CoinmFutures,
        Kind::PortfolioMargin,
    ] {
        assert_eq!(c.binance.url_for(kind).as_str(), "http://127.0.0.1:9000/", "{kind}");
    }
    assert_eq!(
        c.binance.url_for(Kind::UsdmFutures).as_str(),
        "https://fapi.example.com/"
    );
    assert_eq!(c.binance.url_for(Kind::Options).as_str(), "http://localhost:9100/");

    // base_url from the environment too.
    let c = load(MINIMAL, &[("LISTENKEYD__BINANCE__BASE_URL", "http://127.0.0.1:9000")]).unwrap();
    assert_eq!(c.binance.url_for(Kind::UsdmFutures).as_str(), "http://127.0.0.1:9000/");
}

#[test]
fn credentials_directory_supplies_keys() {
    let creds = tempfile::tempdir().unwrap();
    fs::write(creds.path().join("binance_api_key"), "cred-api-key\n").unwrap();
    fs::write(creds.path().join("binance_secret_key"), "cred-secret\n").unwrap();
    let text = "[[streams]]\nkind = \"cross-margin\"\n";
    let dir = creds.path().to_str().unwrap();
    let c = load(text, &[("CREDENTIALS_DIRECTORY", dir)]).unwrap();
    assert_eq!(c.binance.api_key.expose(), "cred-api-key");
    assert_eq!(c.binance.signer.as_ref().map(|s| s.algorithm()), Some("hmac-sha256"));

    // An explicit key wins over the credential.
    let c = load(
        text,
        &[
            ("CREDENTIALS_DIRECTORY", dir),
            ("LISTENKEYD__BINANCE__API_KEY", "env-key"),
        ],
    )
    .unwrap();
    assert_eq!(c.binance.api_key.expose(), "env-key");

    // No credential file: the "no API key" error.
    let empty = tempfile::tempdir().unwrap();
    let e = load(text, &[("CREDENTIALS_DIRECTORY", empty.path().to_str().unwrap())]).unwrap_err();
    assert_eq!(e.key, "binance.api_key");
    assert!(e.message.starts_with("no API key"), "{e}");
}

#[test]
fn api_key_file_is_read_and_trimmed_relative_to_the_config() {
    let (dir, path) = write_config("[binance]\napi_key_file = \"key.txt\"\n[[streams]]\nkind = \"options\"\n");
    fs::write(dir.path().join("key.txt"), "  file-key \n").unwrap();
    let c = Config::load_with_env(Some(&path), HashMap::new()).unwrap();
    assert_eq!(c.binance.api_key.expose(), "file-key");
}

#[test]
fn state_directory_sets_the_default_state_file() {
    let c = load(
        MINIMAL,
        &[("STATE_DIRECTORY", "/var/lib/private/listenkeyd:/var/lib/other")],
    )
    .unwrap();
    assert_eq!(c.state.file, Path::new("/var/lib/private/listenkeyd/keys.json"));

    // An explicit state.file wins; a relative one resolves against the config's directory.
    let (dir, path) = write_config(&format!("{MINIMAL}\n[state]\nfile = \"run/keys.json\"\n"));
    let c = Config::load_with_env(Some(&path), env(&[("STATE_DIRECTORY", "/var/lib/listenkeyd")])).unwrap();
    assert_eq!(c.state.file, dir.path().join("run/keys.json"));
}

#[test]
fn hooks_resolve() {
    let c = Config::load_with_env(Some(&fixture("valid/unix-api-hooks.toml")), HashMap::new()).unwrap();
    assert_eq!(c.api.listen, Some(ApiListen::Unix("/run/listenkeyd/api.sock".into())));
    assert_eq!(c.hooks.len(), 2);
    assert_eq!(
        c.hooks[0].action,
        HookAction::Exec(vec!["systemctl".into(), "reload".into(), "my-bot".into()])
    );
    assert_eq!(c.hooks[0].timeout, Duration::from_secs(5));
    assert!(c.hooks[0].matches(&c.streams[0].id));
    assert_eq!(
        c.hooks[1].action,
        HookAction::Signal {
            signal: listenkeyd::config::HookSignal::Hup,
            pid_file: "/run/my-bot.pid".into()
        }
    );
    assert_eq!(c.hooks[1].timeout, Duration::from_secs(10));
    assert!(!c.hooks[1].matches(&c.streams[0].id));
    assert!(c.hooks[1].matches(&c.streams[1].id));
}

#[test]
fn describe_masks_secrets() {
    let secret = "very-secret-api-key-0123456789";
    let c = Config::load_with_env(
        Some(&fixture("valid/signed-hmac.toml")),
        env(&[("LISTENKEYD__BINANCE__API_KEY", secret)]),
    )
    .unwrap();
    let text = c.describe();
    assert!(!text.contains(secret), "{text}");
    assert!(!text.contains("fixture-hmac-secret"), "{text}");
    assert!(text.contains("********"), "{text}");
    assert!(text.contains(&format!("({} characters)", secret.len())), "{text}");
    assert!(text.contains("hmac-sha256"), "{text}");
    assert!(
        text.contains("cross-margin  kind=cross-margin symbol=- credential=listen-token url=https://api.binance.com/")
    );
    assert!(
        text.contains("state: /var/lib/listenkeyd/keys.json (mode 0600)"),
        "{text}"
    );
}

#[test]
fn debug_does_not_leak_secrets() {
    let secret = "very-secret-api-key-0123456789";
    for file in ["valid/signed-hmac.toml", "valid/signed-ed25519.toml"] {
        let c = Config::load_with_env(Some(&fixture(file)), env(&[("LISTENKEYD__BINANCE__API_KEY", secret)])).unwrap();
        let debug = format!("{c:?} {c:#?}");
        assert!(!debug.contains(secret), "{debug}");
        assert!(!debug.contains("fixture-hmac-secret"), "{debug}");
        assert!(!debug.contains("MC4CAQAw"), "{debug}");
    }
}

#[test]
fn from_toml_builds_without_a_file() {
    let c = Config::from_toml(MINIMAL, HashMap::new()).unwrap();
    assert!(c.source.is_none());
    assert_eq!(c.streams.len(), 1);
}

#[test]
fn accounts_prefix_their_stream_ids_and_carry_their_venue() {
    let c = Config::load_with_env(Some(&fixture("valid/accounts.toml")), HashMap::new()).unwrap();
    let ids: Vec<(&str, &str, &str)> = c
        .streams
        .iter()
        .map(|s| (s.id.as_str(), s.account.as_str(), s.venue))
        .collect();
    assert_eq!(
        ids,
        [
            ("main/usdm-futures", "main", "binance"),
            ("main/isolated-margin:BTCUSDT", "main", "binance"),
            ("desk-2/usdm-futures", "desk-2", "binance"),
            ("us/spot", "us", "binance-us"),
            ("mm2/spot", "mm2", "mexc"),
            ("woo/account", "woo", "woox"),
        ]
    );
    assert_eq!(c.streams[4].id.account(), "mm2");
    assert_eq!(c.streams[5].credential, CredentialKind::RotatingKey);
    let names: Vec<&str> = c.accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["main", "desk-2", "us", "mm2", "woo"]);
    let (main, desk, us, mexc) = (&c.accounts[0], &c.accounts[1], &c.accounts[2], &c.accounts[3]);
    assert_eq!(main.api_key.expose(), "main-fixture-key");
    assert_eq!(desk.api_key.expose(), "desk2-fixture-key");
    assert_eq!(
        main.url_for(Kind::UsdmFutures).unwrap().as_str(),
        "https://fapi.binance.com/"
    );
    assert_eq!(
        desk.url_for(Kind::UsdmFutures).unwrap().as_str(),
        "http://127.0.0.1:9000/"
    );
    assert_eq!(us.url_for(Kind::Spot).unwrap().as_str(), "https://api.binance.us/");
    assert_eq!(mexc.url_for(Kind::Spot).unwrap().as_str(), "http://127.0.0.1:9001/mexc");
    assert_eq!(mexc.api_key_header, "X-MEXC-APIKEY");
    assert_eq!(mexc.signing.as_str(), "query-hmac");
    assert!(mexc.url_for(Kind::UsdmFutures).is_none());
    // Defaults of the accounts come from [binance].
    assert_eq!(us.request_timeout, Duration::from_secs(10));

    let text = c.describe();
    for line in [
        "account main: venue binance (Binance)",
        "account mm2: venue mexc (MEXC)",
        "api key header: X-MEXC-APIKEY",
        "accounts (5): main, desk-2, us, mm2, woo",
        "mm2/spot  kind=spot symbol=- credential=listen-key url=http://127.0.0.1:9001/mexc",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    for secret in ["main-fixture-key", "mexc-fixture-secret", "woox-fixture-secret"] {
        assert!(!text.contains(secret), "{secret} shown");
    }
}

#[test]
fn the_single_account_form_keeps_unprefixed_ids_under_the_default_account() {
    let c = load(MINIMAL, &[]).unwrap();
    assert_eq!(c.streams[0].id.as_str(), "usdm-futures");
    assert_eq!(c.streams[0].id.account(), "default");
    assert_eq!(c.accounts.len(), 1);
    assert_eq!(
        (c.accounts[0].name.as_str(), c.accounts[0].venue.name),
        ("default", "binance")
    );
    assert_eq!(c.accounts[0].api_key_header, "X-MBX-APIKEY");
}

#[test]
fn an_account_reads_its_keys_from_its_own_systemd_credentials() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [("mm_api_key", "cred-api"), ("mm_secret_key", "cred-secret")] {
        let p = dir.path().join(name);
        fs::write(&p, value).unwrap();
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    let text = "[[accounts]]\nname = \"mm\"\nvenue = \"mexc\"\n[[accounts.streams]]\nkind = \"spot\"\n";
    let c = load(text, &[("CREDENTIALS_DIRECTORY", dir.path().to_str().unwrap())]).unwrap();
    assert_eq!(c.accounts[0].api_key.expose(), "cred-api");
    assert!(c.accounts[0].signer.is_some());
}

#[test]
fn the_shipped_two_account_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/listenkeyd.toml");
    let text = fs::read_to_string(path).unwrap();
    let block: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "# BEGIN accounts example")
        .skip(1)
        .take_while(|l| *l != "# END accounts example")
        .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
        .collect();
    assert!(block.len() > 10, "the example is missing");
    let secrets = tempfile::tempdir().unwrap();
    for name in ["main_api_key", "main_secret_key", "mexc_api_key", "mexc_secret_key"] {
        let p = secrets.path().join(name);
        fs::write(&p, format!("{name}-value")).unwrap();
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    let example = block
        .join("\n")
        .replace("/run/secrets", secrets.path().to_str().unwrap());
    let c = load(&example, &[]).unwrap_or_else(|e| panic!("{e}\n{example}"));
    let ids: Vec<&str> = c.streams.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["main/usdm-futures", "main/isolated-margin:BTCUSDT", "mm2/spot"]);
    let venues: Vec<&str> = c.accounts.iter().map(|a| a.venue.name).collect();
    assert_eq!(venues, ["binance", "mexc"]);
}

/// The same settings as TOML text and as Rust values resolve to the same
/// config, and the builder is held to the file's checks.
#[test]
fn a_config_built_from_rust_values_resolves_like_the_same_text() {
    use listenkeyd::config::{Hook, Log, Signer, Url};
    use listenkeyd::secret::Secret;
    use listenkeyd::stream::StreamSpec;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("keys.json");
    let socket = dir.path().join("api.sock");
    let text = format!(
        r#"
[binance]
base_url = "http://127.0.0.1:9000"
usdm_url = "http://127.0.0.1:9001"
api_key = "fixture-key"
secret_key = "fixture-secret"
request_timeout = "3s"
close_on_exit = true
[[streams]]
kind = "usdm-futures"
[[streams]]
kind = "isolated-margin"
symbols = ["BTCUSDT"]
credential = "listen-key"
[[streams]]
kind = "cross-margin"
[timing]
keepalive_interval = "20m"
listen_key_validity = "60m"
token_validity = "12h"
token_renew_before = "2h"
jitter = 0.2
[state]
file = "{}"
mode = "0640"
[api]
listen = "unix:{}"
[log]
format = "json"
level = "debug"
[[hooks]]
exec = ["true"]
timeout = "5s"
streams = ["usdm-futures"]
"#,
        state.display(),
        socket.display()
    );
    let from_text = Config::from_toml(&text, HashMap::new()).unwrap();
    let url = |s: &str| Url::parse(s).unwrap();
    let built = Config::builder()
        .base_url(url("http://127.0.0.1:9000"))
        .family_url(Kind::UsdmFutures, url("http://127.0.0.1:9001"))
        .api_key(Secret::new("fixture-key"))
        .signer(Signer::hmac(Secret::new("fixture-secret")).unwrap())
        .request_timeout(Duration::from_secs(3))
        .close_on_exit(true)
        .stream(StreamSpec::account_wide(Kind::UsdmFutures))
        .stream(StreamSpec::isolated_margin("BTCUSDT").with_credential(CredentialKind::ListenKey))
        .stream(StreamSpec::account_wide(Kind::CrossMargin))
        .keepalive_interval(Duration::from_secs(20 * 60))
        .listen_key_validity(Duration::from_secs(3600))
        .token_validity(Duration::from_secs(12 * 3600))
        .token_renew_before(Duration::from_secs(2 * 3600))
        .jitter(0.2)
        .state_file(&state)
        .state_mode(0o640)
        .api_listen(ApiListen::Unix(socket.clone()))
        .log(Log {
            format: LogFormat::Json,
            level: "debug".into(),
        })
        .hook(Hook {
            action: HookAction::Exec(vec!["true".into()]),
            timeout: Duration::from_secs(5),
            streams: Some(vec![listenkeyd::stream::StreamId::new(
                listenkeyd::stream::Kind::UsdmFutures,
                None,
            )]),
        })
        .build()
        .unwrap();
    assert_eq!(built.describe(), from_text.describe());
    assert_eq!(built.streams, from_text.streams);
    assert_eq!(built.timing, from_text.timing);
    assert_eq!(
        (&built.state, &built.api, &built.log),
        (&from_text.state, &from_text.api, &from_text.log)
    );
    assert_eq!(built.hooks, from_text.hooks);

    // The file's checks, with the file's key names.
    let base = || Config::builder().api_key(Secret::new("fixture-key"));
    let e = base().build().unwrap_err();
    assert_eq!(e.key, "streams");
    let twice = StreamSpec::account_wide(Kind::UsdmFutures);
    let e = base().streams([twice.clone(), twice]).build().unwrap_err();
    assert_eq!(e.key, "streams[1].kind");
    let e = base()
        .stream(StreamSpec::account_wide(Kind::UsdmFutures).with_credential(CredentialKind::ListenToken))
        .build()
        .unwrap_err();
    assert_eq!(e.key, "streams[0].credential");
    let e = base()
        .stream(StreamSpec::account_wide(Kind::UsdmFutures))
        .state_mode(0o644)
        .build()
        .unwrap_err();
    assert_eq!(e.key, "state.mode");
    let e = Config::builder()
        .stream(StreamSpec::account_wide(Kind::UsdmFutures))
        .build()
        .unwrap_err();
    assert!(e.key.starts_with("binance.api_key"), "{e}");
}

#[test]
fn accounts_built_from_rust_values_equal_the_same_toml() {
    use listenkeyd::config::{AccountSpec, Url};
    use listenkeyd::secret::Secret;
    use listenkeyd::stream::StreamSpec;
    let built = Config::builder()
        .account(
            AccountSpec::new("main", "binance", Secret::new("main-key"))
                .secret_key(Secret::new("main-secret"))
                .stream(StreamSpec::account_wide(Kind::UsdmFutures))
                .stream(StreamSpec::isolated_margin("BTCUSDT")),
        )
        .account(
            AccountSpec::new("woo", "woox", Secret::new("woo-key"))
                .secret_key(Secret::new("woo-secret"))
                .base_url(Url::parse("http://127.0.0.1:9000/woox").unwrap())
                .stream(StreamSpec::account_wide(Kind::Account)),
        )
        .build()
        .unwrap();
    let text = r#"
[[accounts]]
name = "main"
venue = "binance"
api_key = "main-key"
secret_key = "main-secret"
[[accounts.streams]]
kind = "usdm-futures"
[[accounts.streams]]
kind = "isolated-margin"
symbols = ["BTCUSDT"]

[[accounts]]
name = "woo"
venue = "woox"
api_key = "woo-key"
secret_key = "woo-secret"
base_url = "http://127.0.0.1:9000/woox"
[[accounts.streams]]
kind = "account"
"#;
    let parsed = Config::from_toml(text, HashMap::new()).unwrap();
    assert_eq!(built.streams, parsed.streams);
    assert_eq!(built.streams[2].credential, CredentialKind::RotatingKey);
    let urls = |c: &Config| c.accounts.iter().map(|a| a.urls.clone()).collect::<Vec<_>>();
    assert_eq!(urls(&built), urls(&parsed));
    // The file's checks hold: a kind the venue lacks is refused, naming the key.
    let e = Config::builder()
        .account(AccountSpec::new("woo", "woox", Secret::new("k")).stream(StreamSpec::account_wide(Kind::Spot)))
        .build()
        .unwrap_err();
    assert_eq!(e.key, "accounts[0].streams[0].kind");
}

#[test]
fn limits_and_egress_resolve() {
    let config = Config::load_with_env(Some(&fixture("valid/limits.toml")), HashMap::new()).unwrap();
    assert_eq!((config.limits.share, config.limits.ceiling), (0.2, 0.8));
    let fapi = config.limits.weight_limits.iter().find(|(f, _)| f == "fapi").unwrap().1;
    assert_eq!((fapi.limit, fapi.window), (4800, std::time::Duration::from_secs(60)));
    let egress: Vec<String> = config.accounts.iter().map(|a| format!("{:?}", a.egress)).collect();
    assert_eq!(egress, ["Some(127.0.0.2)", "Some(::1)"]);
    let defaults = load(
        "[[streams]]\nkind = \"usdm-futures\"\n",
        &[("LISTENKEYD__BINANCE__API_KEY", "k")],
    )
    .unwrap();
    assert_eq!(defaults.limits, listenkeyd::config::Limits::default());
    assert_eq!((defaults.limits.share, defaults.limits.ceiling), (0.25, 0.9));
    let e = load(
        "[[streams]]\nkind = \"usdm-futures\"\n",
        &[
            ("LISTENKEYD__BINANCE__API_KEY", "k"),
            ("LISTENKEYD__LIMITS__CEILING", "0.1"),
        ],
    )
    .unwrap_err();
    assert_eq!(e.key, "limits.ceiling", "{e}");
}
