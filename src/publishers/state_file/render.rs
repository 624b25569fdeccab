//! The state file's bytes, written straight from the hub.
//!
//! Each stream's state is borrowed from its channel just long enough to
//! serialize its entry into a small reusable buffer, so a write costs no copy
//! of every stream (no snapshot, no [`Document`], no timestamp strings): the
//! writer's memory does not grow with the number of streams. The JSON is the
//! [`Document`]'s, compact, with one stream per line so that it stays readable
//! and diffable; streams are in id order, as [`Document`] keeps them.

use std::io::{self, Write};
use std::time::SystemTime;

use serde::{Serialize, Serializer};

use crate::hub::Hub;
use crate::clock::latest;
#[cfg(any(test, doc, feature = "test-seams"))]
use crate::state::Document;
use crate::state::{Entry, Pending, StreamState, VERSION};


/// A time written as [`crate::state::rfc3339`] writes it, without a `String`.
struct Time(SystemTime);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(
            self.0.clamp(SystemTime::UNIX_EPOCH, latest()),
        ))
    }
}

/// Serializes `"id":{…}` for `s`: into `line` (cleared first) when it
/// holds a value, else appended to `pending` after a separator. Returns the
/// generation of the value, if there is one.
fn entry(s: &StreamState, line: &mut Vec<u8>, pending: &mut Vec<u8>) -> io::Result<Option<u64>> {
    let spec = &s.spec;
    let out = match &s.held {
        Some(_) => {
            line.clear();
            line
        }
        None => {
            pending.extend_from_slice(if pending.is_empty() { b"\n" } else { b",\n" });
            pending
        }
    };
    serde_json::to_writer(&mut *out, spec.id.as_str())?;
    out.push(b':');
    fields(s, out)
}

/// Serializes the `{…}` object the state file holds for `s` (under `streams`
/// when it has a value, else under `pending`) to `out`. Returns the
/// generation of the value, if there is one.
pub(crate) fn fields(s: &StreamState, out: &mut Vec<u8>) -> io::Result<Option<u64>> {
    let spec = &s.spec;
    let symbol = spec.symbol.as_deref();
    let last_error = s.last_error.as_deref();
    // A named account's stream says whose it is; the single-account form's do not.
    let named = spec.named_account();
    let account = named.then_some(spec.account.as_str());
    let venue = named.then_some(spec.venue);
    match &s.held {
        Some(h) => {
            serde_json::to_writer(
                out,
                &Entry::<&str, Time> {
                    kind: spec.kind,
                    symbol,
                    credential: spec.credential,
                    value: &h.value,
                    generation: h.generation,
                    obtained_at: Time(h.obtained_at),
                    refreshed_at: Time(h.refreshed_at),
                    expires_at: Time(h.expires_at),
                    status: s.status,
                    last_error,
                    error_class: s.error_class,
                    api_key_fp: h.api_key_fp.as_deref(),
                    account,
                    venue,
                },
            )?;
            Ok(Some(h.generation))
        }
        None => {
            serde_json::to_writer(
                out,
                &Pending::<&str> {
                    kind: spec.kind,
                    symbol,
                    credential: spec.credential,
                    status: s.status,
                    last_error,
                    error_class: s.error_class,
                    account,
                    venue,
                },
            )?;
            Ok(None)
        }
    }
}

/// Writes the document of every stream in `hub`, stamped `now`, to `out`,
/// and each stream's generation (config order; `None` without a value) to
/// `generations`. A stream's state is borrowed only while its line is
/// serialized into a small buffer, never while `out` is written. Streams that
/// have no value yet are gathered apart (about a hundred bytes each, usually
/// none) so that every stream appears exactly once, as it was when read.
pub fn document(hub: &Hub, now: SystemTime, out: &mut impl Write, generations: &mut [Option<u64>]) -> io::Result<()> {
    out.write_all(b"{\"version\":")?;
    serde_json::to_writer(&mut *out, &VERSION)?;
    out.write_all(b",\"updated_at\":")?;
    serde_json::to_writer(&mut *out, &Time(now))?;
    out.write_all(b",\"streams\":{")?;
    let mut line = Vec::with_capacity(512);
    let mut pending = Vec::new();
    let mut first = true;
    for &i in hub.by_id() {
        let Some(generation) = hub.with(i, |s| entry(s, &mut line, &mut pending)).transpose()? else {
            continue;
        };
        if let Some(g) = generations.get_mut(i) {
            *g = generation;
        }
        if generation.is_some() {
            out.write_all(if first { b"\n" } else { b",\n" })?;
            out.write_all(&line)?;
            first = false;
        }
    }
    out.write_all(if first { b"}" } else { b"\n}" })?;
    if !pending.is_empty() {
        out.write_all(b",\"pending\":{")?;
        out.write_all(&pending)?;
        out.write_all(b"\n}")?;
    }
    out.write_all(b"}\n")
}

/// Writes `doc` in the same form as [`document`] (for tests and tools that
/// hold a [`Document`] rather than a hub).
#[cfg(any(test, feature = "test-seams"))]
pub fn write_document(doc: &Document, out: &mut impl Write) -> io::Result<()> {
    out.write_all(b"{\"version\":")?;
    serde_json::to_writer(&mut *out, &doc.version)?;
    out.write_all(b",\"updated_at\":")?;
    serde_json::to_writer(&mut *out, &doc.updated_at)?;
    out.write_all(b",\"streams\":{")?;
    for (n, (id, e)) in doc.streams.iter().enumerate() {
        out.write_all(if n == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut *out, id)?;
        out.write_all(b":")?;
        serde_json::to_writer(&mut *out, e)?;
    }
    out.write_all(if doc.streams.is_empty() { b"}" } else { b"\n}" })?;
    if !doc.pending.is_empty() {
        out.write_all(b",\"pending\":{")?;
        for (n, (id, p)) in doc.pending.iter().enumerate() {
            out.write_all(if n == 0 { b"\n" } else { b",\n" })?;
            serde_json::to_writer(&mut *out, id)?;
            out.write_all(b":")?;
            serde_json::to_writer(&mut *out, p)?;
        }
        out.write_all(b"\n}")?;
    }
    out.write_all(b"}\n")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::reason::ErrorClass;
    use crate::state::{Held, Status};
    use crate::stream::{CredentialKind, Kind, StreamSpec};

    #[test]
    fn the_hub_renders_the_document_it_would_build_one_stream_per_line() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let spec =
            |k, sym: Option<&str>| Arc::new(StreamSpec::new(k, sym.map(str::to_owned), CredentialKind::ListenKey));
        let mut btc = StreamState::starting(spec(Kind::IsolatedMargin, Some("BTCUSDT")));
        btc.held = Some(Held {
            value: "v\"1".into(),
            generation: 4,
            obtained_at: t,
            refreshed_at: t + Duration::from_secs(1),
            expires_at: t + Duration::from_secs(3600),
            api_key_fp: Some("0a1b2c3d".into()),
        });
        btc.status = Status::Stale;
        btc.last_error = Some("timed out".into());
        let mut usdm = StreamState::starting(spec(Kind::UsdmFutures, None));
        usdm.last_error = Some("auth".into());
        usdm.error_class = Some(ErrorClass::Auth);
        let mut coinm = btc.clone();
        coinm.spec = spec(Kind::CoinmFutures, None);
        // Config order is not id order: the file is in id order, as Document keeps it.
        let states = vec![usdm, btc, coinm];
        let (hub, _p) = Hub::new(states.clone());
        let mut out = Vec::new();
        let mut generations = vec![Some(9); 3];
        document(&hub, t, &mut out, &mut generations).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        let parsed: Document = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed, Document::build(&states, t));
        assert_eq!(generations, vec![None, Some(4), Some(4)]);
        let ids: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with('"'))
            .filter_map(|l| l.split('"').nth(1))
            .collect();
        assert_eq!(ids, ["coinm-futures", "isolated-margin:BTCUSDT", "usdm-futures"]);
        assert!(text.contains("\n},\"pending\":{\n\"usdm-futures\":{"), "{text}");
        // Beside `last_error`, its class: null without one.
        assert!(text.contains(r#""last_error":"auth","error_class":"auth""#), "{text}");
        assert!(text.contains(r#""last_error":"timed out","error_class":null"#), "{text}");
        // A Document is written in the same bytes.
        let mut again = Vec::new();
        write_document(&parsed, &mut again).unwrap();
        assert_eq!(String::from_utf8(again).unwrap(), text);
    }

    #[test]
    fn a_named_accounts_streams_carry_their_account_and_venue() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let spec = |kind, credential| Arc::new(StreamSpec::in_account("mm", "mexc", kind, None, credential));
        let mut spot = StreamState::starting(spec(Kind::Spot, CredentialKind::ListenKey));
        spot.held = Some(Held {
            value: "k1".into(),
            generation: 1,
            obtained_at: t,
            refreshed_at: t,
            expires_at: t + Duration::from_secs(60),
            api_key_fp: None,
        });
        let pending = StreamState::starting(spec(Kind::Account, CredentialKind::RotatingKey));
        let states = vec![spot, pending];
        let (hub, _p) = Hub::new(states.clone());
        let mut out = Vec::new();
        document(&hub, t, &mut out, &mut [None; 2]).unwrap();
        let parsed: Document = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed, Document::build(&states, t));
        let e = &parsed.streams["mm/spot"];
        assert_eq!((e.account.as_deref(), e.venue.as_deref()), (Some("mm"), Some("mexc")));
        assert_eq!(parsed.pending["mm/account"].account.as_deref(), Some("mm"));
    }
}
