//! Fuzzes the config loader: TOML text plus `LISTENKEYD__SECTION__KEY`
//! environment overrides (and `CREDENTIALS_DIRECTORY`, `STATE_DIRECTORY`)
//! through `Config::from_toml`, the loader `Config::load` uses after reading
//! the file.
//!
//! Input: the TOML text, then optionally a NUL byte and environment lines
//! `NAME=value`. Beyond "never panics" it checks what the loader promises:
//! an error is one line and names a key, and the API key set from the
//! environment never appears in an error or in `describe()`.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use listenkeyd::config::Config;

/// An API key value the loader must never print.
const SECRET: &str = "ak-FUZZ-SECRET-7f3a9c1e5b";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        // A config file that is not UTF-8 is refused when it is read, before parsing.
        return;
    };
    let (toml, env_text) = text.split_once('\0').unwrap_or((text, ""));
    let mut env = HashMap::new();
    for line in env_text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            // `$SECRET` stands for the marker, so inputs can route it anywhere.
            env.insert(k.to_owned(), v.replace("$SECRET", SECRET));
        }
    }
    // The marker may be printed only where the input itself put it in plain view.
    let secret_elsewhere = toml.contains(SECRET)
        || env.iter().any(|(k, v)| {
            k.contains(SECRET) || (v.contains(SECRET) && !k.eq_ignore_ascii_case("LISTENKEYD__BINANCE__API_KEY"))
        });
    match Config::from_toml(toml, env) {
        Ok(config) => {
            let described = config.describe();
            assert!(
                secret_elsewhere || !described.contains(SECRET),
                "describe() shows the API key: {described}"
            );
        }
        Err(e) => {
            let line = e.to_string();
            let breaks = |c: char| (c.is_control() && c != '\t') || matches!(c, '\u{2028}' | '\u{2029}');
            assert!(!line.contains(breaks), "error spans lines: {line:?}");
            assert!(!line.starts_with("config error: : "), "error names no key: {line}");
            assert!(
                secret_elsewhere || !line.contains(SECRET),
                "error shows the API key: {line}"
            );
        }
    }
});
