//! The state one simulator instance shares between its connections, its admin
//! endpoint and its [`super::SimHandle`]: the store of keys and tokens, the
//! request log, the armed faults, the clock, outage requests and the fixed
//! configuration.
//!
//! Each piece sits behind its own `std::sync::Mutex`, held only for a few
//! statements and never across an `.await`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::auth::Verifier;
use super::faults::ArmedFault;
use super::http::SimRequest;
use super::profile::Profile;
use super::state::Store;
use super::weight::Weights;

/// The largest clock skew, either way, that `POST /_sim/clock` and
/// `--clock-skew` accept, in ms: 366 days. Far past any skew a client must
/// survive, and it keeps every server time the simulator shows within a
/// year of the real one. A skew set through [`super::SimHandle`] is not
/// bounded; the server times saturate instead.
pub const MAX_SKEW_MS: i64 = 366 * 24 * 3_600_000;

/// A clock giving ms since the epoch; injectable so tests can move time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The real clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    })
}

/// One request as the simulator saw it (`GET /_sim/requests`, [`super::SimHandle::requests`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// A sequence number, increasing in arrival order.
    pub id: u64,
    /// Arrival time, ms since the epoch on the simulator's (skewed) clock.
    pub at_ms: i64,
    /// The method, upper case.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// Query and form-body parameters, decoded (the query wins).
    pub params: BTreeMap<String, String>,
    /// The venue the request went to (`binance`, `mexc`, …).
    #[serde(default)]
    pub venue: String,
    /// Whether the venue's API-key header (`X-MBX-APIKEY` on Binance) was sent.
    pub api_key_present: bool,
    /// The fingerprint of the API key, when one was sent.
    pub api_key_fingerprint: Option<String>,
    /// The status answered; `None` while pending or when the connection was dropped.
    pub status: Option<u16>,
    /// When the answer was handed to the connection, µs since the epoch on the real
    /// (unskewed) wall clock: the benchmark's reference for publish latency.
    #[serde(default)]
    pub answered_us: Option<i64>,
}

/// Everything a simulator instance shares.
pub struct Shared {
    /// Outage requests: each new value closes the listener for that long.
    pub outages: tokio::sync::watch::Sender<std::time::Duration>,
    /// Keys and tokens.
    pub store: Mutex<Store>,
    /// The request log, oldest first.
    pub requests: Mutex<Vec<RecordedRequest>>,
    /// The next request id.
    next_id: AtomicI64,
    /// Armed faults, in the order they were added.
    pub faults: Mutex<Vec<ArmedFault>>,
    /// The unskewed clock.
    clock: Clock,
    /// Added to the clock for everything the simulator shows or checks.
    skew_ms: AtomicI64,
    /// Listen-key lifetime after each POST or PUT, in ms.
    pub ttl_ms: i64,
    /// Accepted API keys; empty accepts any non-empty key.
    pub api_keys: Vec<String>,
    /// Checks listen-token request signatures when a key is configured.
    pub verifier: Verifier,
    /// Which Binance it plays.
    pub profile: Profile,
    /// The venue played at unprefixed paths.
    pub venue: crate::venue::Venue,
    /// Per-API-key HMAC secrets for other venues' signed calls.
    pub account_secrets: Vec<(String, String)>,
    /// Whether unsigned listen-token requests are refused.
    pub require_signature: bool,
    /// Whether each exchange request is printed on stdout.
    pub log_requests: bool,
    /// Request weight per client IP and family: the weight headers, 429s and 418s.
    pub weights: Mutex<Weights>,
    /// The WebSocket sessions' shared state.
    pub hub: crate::hub::Hub,
}

/// Locks `m`, carrying on if a panicking holder poisoned it (the data stays usable).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// A fresh instance.
    pub fn new(
        clock: Clock,
        skew_ms: i64,
        ttl_ms: i64,
        api_keys: Vec<String>,
        verifier: Verifier,
        faults: Vec<ArmedFault>,
    ) -> Shared {
        Shared {
            outages: tokio::sync::watch::Sender::new(std::time::Duration::ZERO),
            store: Mutex::new(Store::default()),
            requests: Mutex::new(Vec::new()),
            next_id: AtomicI64::new(1),
            faults: Mutex::new(faults),
            clock,
            skew_ms: AtomicI64::new(skew_ms),
            ttl_ms,
            api_keys,
            verifier,
            profile: Profile::default(),
            venue: crate::venue::Venue::default(),
            account_secrets: Vec::new(),
            require_signature: false,
            log_requests: false,
            weights: Mutex::new(Weights::default()),
            hub: crate::hub::Hub::new(crate::hub::WsConfig::default()),
        }
    }

    /// The unskewed time, used for expiry.
    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// The clock skew in ms.
    pub fn skew_ms(&self) -> i64 {
        self.skew_ms.load(Ordering::Relaxed)
    }

    /// Sets the clock skew.
    pub fn set_skew_ms(&self, ms: i64) {
        self.skew_ms.store(ms, Ordering::Relaxed);
    }

    /// The simulator's server time: the clock plus the skew.
    pub fn server_now(&self) -> i64 {
        // Saturating: the skew is whatever `POST /_sim/clock` was sent.
        self.now().saturating_add(self.skew_ms())
    }

    /// Logs the arrival of `req` and returns its id.
    pub fn record_start(&self, req: &SimRequest) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) as u64;
        let rec = RecordedRequest {
            id,
            at_ms: self.server_now(),
            method: req.method.clone(),
            path: format!("{}{}", req.prefix, req.path),
            query: req.query.clone(),
            params: req.params.clone(),
            venue: req.venue.to_string(),
            api_key_present: req.api_key.is_some(),
            api_key_fingerprint: req.api_key.as_deref().map(crate::log::fingerprint),
            status: None,
            answered_us: None,
        };
        lock(&self.requests).push(rec);
        id
    }

    /// Notes the status answered to request `id`.
    pub fn record_status(&self, id: u64, status: u16) {
        let mut log = lock(&self.requests);
        if let Some(rec) = log.iter_mut().rev().find(|r| r.id == id) {
            rec.status = Some(status);
            rec.answered_us = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|d| d.as_micros() as i64);
        }
    }
}
