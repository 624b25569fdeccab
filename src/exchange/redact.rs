//! Making text from outside safe to log: an exchange's error message or a
//! transport error's detail becomes one short line with no credential in it.
//!
//! The order matters and is fixed here: credentials are scrubbed out of the
//! *whole* text first (the known ones by value, anything that looks like one
//! by shape), control characters are folded, and only then is the result cut
//! to [`MAX_MESSAGE`] characters on a character boundary. Cutting first would
//! keep the head of a key that straddles the cut, which no scrubbing of the
//! full key can then find.

use crate::secret::fingerprint;

/// The longest message kept, in characters.
pub const MAX_MESSAGE: usize = 160;

/// A run of at least this many key-alphabet characters (letters, digits and
/// `+/=_-`), with both a letter and a digit in it, is taken for a credential.
/// Listen keys are 64 such characters, tokens ~70, API keys 64; English words
/// and Binance's messages have no such runs.
const CREDENTIAL_RUN: usize = 24;

/// `text` with every occurrence of a credential in `keys` replaced by its
/// fingerprint, the API key `api_key` replaced by `<api key>`, every other
/// credential-looking run replaced by `<redacted>`, control characters folded
/// into spaces, and the result cut to [`MAX_MESSAGE`] characters.
pub fn tidy(text: &str, keys: &[&str], api_key: Option<&str>) -> String {
    let mut text = text.to_owned();
    if let Some(k) = api_key.filter(|k| !k.is_empty()) {
        text = text.replace(k, "<api key>");
    }
    for k in keys.iter().filter(|k| !k.is_empty()) {
        if text.contains(k) {
            text = text.replace(k, &format!("<key {}>", fingerprint(k)));
        }
    }
    let text = redact_runs(&text);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE)
        .collect();
    if text.chars().nth(MAX_MESSAGE).is_some() {
        out.push('…');
    }
    out
}

/// Whether `c` can be part of a listen key, token or API key.
fn key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-')
}

/// `text` with each credential-looking run (see [`CREDENTIAL_RUN`]) replaced by `<redacted>`.
fn redact_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let looks_like_key = run.chars().count() >= CREDENTIAL_RUN
            && run.chars().any(|c| c.is_ascii_digit())
            && run.chars().any(|c| c.is_ascii_alphabetic());
        out.push_str(if looks_like_key { "<redacted>" } else { run });
        run.clear();
    };
    for c in text.chars() {
        if key_char(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1";

    /// Whether any 8-character piece of `key` appears in `text`.
    fn leaks_part(text: &str, key: &str) -> bool {
        (0..=key.len() - 8).any(|i| text.contains(&key[i..i + 8]))
    }

    #[test]
    fn a_key_straddling_the_cut_leaks_nothing() {
        // The key starts at character 130: a cut at 160 would keep its first 30 characters.
        let msg = format!("{} {KEY} is not valid", "x".repeat(129));
        let out = tidy(&msg, &[KEY], None);
        assert!(!leaks_part(&out, KEY), "{out}");
        assert!(out.chars().count() <= MAX_MESSAGE + 1);
        // The same for an unknown key (found by its shape), and for the API key.
        let out = tidy(&msg, &[], None);
        assert!(!leaks_part(&out, KEY), "{out}");
        let out = tidy(&msg, &[], Some(KEY));
        assert!(!leaks_part(&out, KEY) && !out.contains("<key"), "{out}");
    }

    #[test]
    fn known_keys_become_fingerprints_and_others_are_redacted() {
        let token = "6xXxePXwZRjVSHKhzUCCGnmN3fkvMTXru+pYJS8RwijXk9Vcyr3rkwfVOTcP2OkONqciYA";
        let out = tidy(&format!("key {KEY} and token {token}."), &[KEY], None);
        assert_eq!(out, format!("key <key {}> and token <redacted>.", fingerprint(KEY)));
        let plain = "Mandatory parameter 'listenKey' was not sent, was empty/null, or malformed.";
        assert_eq!(tidy(plain, &[KEY], None), plain);
    }

    #[test]
    fn control_characters_are_folded_and_the_cut_respects_characters() {
        assert_eq!(tidy("a\nb\r\u{1b}[2Jc", &[], None), "a b  [2Jc");
        let long = "é".repeat(400);
        let out = tidy(&long, &[], None);
        assert_eq!(out.chars().count(), MAX_MESSAGE + 1);
        assert!(out.ends_with('…'));
    }
}
