//! What is known about each stream, and the state-file document built from it.
//!
//! A scheduler owns one [`StreamState`] and sends every new version into its
//! `watch` channel; the publishers turn the set of them into a [`Document`],
//! the JSON that the state file and the API serve. `generation` moves only when
//! the value changes; a stream without a value yet is listed under `pending`,
//! never with an empty value.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::reason::{ErrorClass, Reason};
use crate::stream::{CredentialKind, Kind, StreamSpec};

/// How a stream is doing, as consumers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The last refresh succeeded.
    Fresh,
    /// The value is known to be gone and a new one is being obtained.
    Refreshing,
    /// The last refresh failed, the value is still valid, retries are under way.
    Stale,
    /// No valid value, or an error that needs the operator (auth, config, retired endpoint).
    Failed,
}

impl Status {
    /// The lower-case label.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Fresh => "fresh",
            Status::Refreshing => "refreshing",
            Status::Stale => "stale",
            Status::Failed => "failed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A credential value held for a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The listen key or token; never empty.
    pub value: String,
    /// Bumped each time `value` changes.
    pub generation: u64,
    /// When this value was first obtained.
    pub obtained_at: SystemTime,
    /// When it was last created, extended or confirmed.
    pub refreshed_at: SystemTime,
    /// When it stops working unless refreshed.
    pub expires_at: SystemTime,
    /// The fingerprint of the API key it was obtained with (never the key):
    /// a restart keeps a token only if the key is still the same.
    pub api_key_fp: Option<String>,
}

/// Everything published about one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamState {
    /// Which stream this is.
    pub spec: Arc<StreamSpec>,
    /// The current value, once there has been one.
    pub held: Option<Held>,
    /// How the stream is doing.
    pub status: Status,
    /// Why the stream is not `fresh`, cleared on success; set with
    /// [`StreamState::set_reason`], which keeps `last_error` its text.
    pub reason: Option<Reason>,
    /// The text of `reason`: the state file's `last_error`.
    pub last_error: Option<String>,
    /// The class of the error behind `last_error` (none without one, or for
    /// an expiry before any refresh failed): the state file's `error_class`.
    pub error_class: Option<ErrorClass>,
    /// When the scheduler plans its next call (not in the state file; for
    /// `STATUS=` and the watchdog's progress check).
    pub next_at: Option<SystemTime>,
}

impl StreamState {
    /// The state of a stream before its first answer.
    pub fn starting(spec: Arc<StreamSpec>) -> StreamState {
        StreamState {
            spec,
            held: None,
            status: Status::Refreshing,
            reason: None,
            last_error: None,
            error_class: None,
            next_at: None,
        }
    }

    /// Sets why the stream is in its status, and `last_error` to its text.
    pub fn set_reason(&mut self, reason: Option<Reason>) {
        self.last_error = reason.as_ref().map(Reason::to_string);
        self.error_class = reason.as_ref().and_then(Reason::error).map(|e| e.class);
        self.reason = reason;
    }

    /// Whether the value expired before it could be refreshed.
    pub fn expired(&self) -> bool {
        self.status == Status::Failed && self.reason.as_ref().is_some_and(Reason::is_expiry)
    }

    /// Whether this run's scheduler has made its first attempt (a seeded value
    /// from the previous run does not count).
    pub fn started(&self) -> bool {
        self.next_at.is_some()
    }

    /// This stream as the API shows it: `{"stream": id, …}` with the state-file
    /// fields (`value` and times only once there is a value).
    pub(crate) fn view(&self, now: SystemTime) -> serde_json::Value {
        let doc = Document::build([self], now);
        let id = self.spec.id.as_str();
        // Entries are strings, numbers and enums: serializing them cannot fail.
        let mut v = match (doc.streams.get(id), doc.pending.get(id)) {
            (Some(e), _) => serde_json::to_value(e).unwrap_or_default(),
            (None, Some(p)) => serde_json::to_value(p).unwrap_or_default(),
            (None, None) => serde_json::Value::Null,
        };
        if !v.is_object() {
            v = serde_json::json!({});
        }
        v["stream"] = serde_json::Value::String(id.to_owned());
        v
    }

    /// Whether the stream holds a value that has not expired at `now`.
    pub fn valid_at(&self, now: SystemTime) -> bool {
        self.held.as_ref().is_some_and(|h| h.expires_at > now)
    }
}

/// Formats a time as RFC 3339 UTC with milliseconds; never panics (a time
/// before 1970 or after the year 9999 is clamped to the nearest writable one).
pub fn rfc3339(t: SystemTime) -> String {
    crate::clock::rfc3339_millis(t)
}

/// Parses an RFC 3339 time written by [`rfc3339`].
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}

/// The state file's format version.
pub const VERSION: u32 = 1;

/// The state file and `/v1/streams` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Format version, 1.
    pub version: u32,
    /// When the document was written.
    pub updated_at: String,
    /// Streams that hold a value, by stream id.
    pub streams: BTreeMap<String, Entry>,
    /// Streams with no value yet, by stream id, with the reason.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending: BTreeMap<String, Pending>,
}

/// One stream with a value: the state file's entry under `streams`.
///
/// Defined once for both directions: read as `Entry` (owned text and times
/// as written), and written straight from the hub with borrowed text and
/// typed times (`S` = `&str`, `T` = a time that serializes as RFC 3339), so
/// the two can never disagree on a field or its order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<S = String, T = String> {
    /// The stream's kind.
    pub kind: Kind,
    /// The isolated-margin symbol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<S>,
    /// `listen-key`, `listen-token` or `rotating-key`.
    pub credential: CredentialKind,
    /// The listen key or token.
    pub value: S,
    /// Moves whenever `value` changes.
    pub generation: u64,
    /// When this value was first obtained.
    pub obtained_at: T,
    /// When it was last created or extended.
    pub refreshed_at: T,
    /// When it expires unless refreshed.
    pub expires_at: T,
    /// fresh | refreshing | stale | failed.
    pub status: Status,
    /// The last error, or null.
    pub last_error: Option<S>,
    /// The class of the last error (`auth`, `transient`, …), or null;
    /// absent in files from older versions.
    #[serde(default)]
    pub error_class: Option<ErrorClass>,
    /// The fingerprint (truncated SHA-256) of the API key the value was
    /// obtained with, never the key; absent in files from older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_fp: Option<S>,
    /// The `[[accounts]]` name; absent in the single-account form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<S>,
    /// The account's venue; absent in the single-account form (Binance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venue: Option<S>,
}

/// One stream without a value yet: the state file's entry under `pending`
/// (read as `Pending`, written from the hub with borrowed text, as [`Entry`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending<S = String> {
    /// The stream's kind.
    pub kind: Kind,
    /// The isolated-margin symbol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<S>,
    /// `listen-key`, `listen-token` or `rotating-key`.
    pub credential: CredentialKind,
    /// refreshing or failed.
    pub status: Status,
    /// Why there is no value yet.
    pub last_error: Option<S>,
    /// The class of that error, or null; absent in files from older versions.
    #[serde(default)]
    pub error_class: Option<ErrorClass>,
    /// The `[[accounts]]` name; absent in the single-account form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<S>,
    /// The account's venue; absent in the single-account form (Binance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venue: Option<S>,
}

impl Entry {
    /// The value as a [`Held`] (a time that does not parse reads as the epoch:
    /// expired, so it is refreshed rather than trusted).
    pub fn held(&self) -> Held {
        let time = |s: &str| parse_rfc3339(s).unwrap_or(SystemTime::UNIX_EPOCH);
        Held {
            value: self.value.clone(),
            generation: self.generation,
            obtained_at: time(&self.obtained_at),
            refreshed_at: time(&self.refreshed_at),
            expires_at: time(&self.expires_at),
            api_key_fp: self.api_key_fp.clone(),
        }
    }

    /// The expiry as a time, if it parses.
    pub fn expires(&self) -> Option<SystemTime> {
        parse_rfc3339(&self.expires_at)
    }
}

impl Document {
    /// The document for a set of stream states, stamped `now`.
    pub fn build<'a>(states: impl IntoIterator<Item = &'a StreamState>, now: SystemTime) -> Document {
        let mut doc = Document {
            version: VERSION,
            updated_at: rfc3339(now),
            streams: BTreeMap::new(),
            pending: BTreeMap::new(),
        };
        for s in states {
            let spec = &s.spec;
            let id = spec.id.to_string();
            let named = spec.named_account();
            let account = named.then(|| spec.account.clone());
            let venue = named.then(|| spec.venue.to_owned());
            match &s.held {
                Some(h) => {
                    doc.streams.insert(
                        id,
                        Entry {
                            kind: spec.kind,
                            symbol: spec.symbol.clone(),
                            credential: spec.credential,
                            value: h.value.clone(),
                            generation: h.generation,
                            obtained_at: rfc3339(h.obtained_at),
                            refreshed_at: rfc3339(h.refreshed_at),
                            expires_at: rfc3339(h.expires_at),
                            status: s.status,
                            last_error: s.last_error.clone(),
                            error_class: s.error_class,
                            api_key_fp: h.api_key_fp.clone(),
                            account,
                            venue,
                        },
                    );
                }
                None => {
                    doc.pending.insert(
                        id,
                        Pending {
                            kind: spec.kind,
                            symbol: spec.symbol.clone(),
                            credential: spec.credential,
                            status: s.status,
                            last_error: s.last_error.clone(),
                            error_class: s.error_class,
                            account,
                            venue,
                        },
                    );
                }
            }
        }
        doc
    }

    /// Why the document is not healthy at `now`: expired values and streams
    /// without a value (empty when every stream holds an unexpired value).
    ///
    /// ```
    /// use listenkeyd::state::Document;
    ///
    /// let text = r#"{"version": 1, "updated_at": "2026-11-23T10:00:00.123Z", "streams": {
    ///     "usdm-futures": {"kind": "usdm-futures", "credential": "listen-key", "value": "k1",
    ///         "generation": 3, "obtained_at": "2026-11-23T09:00:00Z",
    ///         "refreshed_at": "2026-11-23T09:30:00Z", "expires_at": "2026-11-23T10:30:00Z",
    ///         "status": "fresh", "last_error": null}}}"#;
    /// let doc: Document = serde_json::from_str(text).unwrap();
    /// let at = |s| listenkeyd::state::parse_rfc3339(s).unwrap();
    /// assert!(doc.problems(at("2026-11-23T10:00:00Z")).is_empty());
    /// assert_eq!(doc.problems(at("2026-11-23T11:00:00Z")), ["usdm-futures: expired"]);
    /// ```
    pub fn problems(&self, now: SystemTime) -> Vec<String> {
        let mut reasons = Vec::new();
        for (id, e) in &self.streams {
            if e.expires().is_none_or(|t| t <= now) {
                reasons.push(format!("{id}: expired"));
            }
        }
        for (id, p) in &self.pending {
            let why = p.last_error.as_deref().unwrap_or(p.status.as_str());
            reasons.push(format!("{id}: no value ({why})"));
        }
        if self.streams.is_empty() && self.pending.is_empty() {
            reasons.push("no streams".to_owned());
        }
        reasons
    }

    /// Whether two documents differ in anything but `updated_at`.
    pub fn same_content(&self, other: &Document) -> bool {
        self.version == other.version && self.streams == other.streams && self.pending == other.pending
    }
}
