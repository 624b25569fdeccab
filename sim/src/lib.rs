//! A simulated Binance for demos and tests: every listen-key and listen-token
//! endpoint of `binance-api.md` with Binance's semantics and error codes,
//! and the user-data WebSockets those credentials open (the WebSocket API
//! and the listen-key streams, see [`ws`] and [`session`]), served on a real
//! TCP address, plus fault injection and a test-control endpoint under
//! `/_sim/`. By default it plays Binance as it is today (spot
//! and margin listen keys answer 410); [`Profile::Binance2025`] serves the
//! original margin listen keys (see [`profile`]).
//!
//! Start it in-process with [`start`] and steer it through the returned
//! [`SimHandle`], or run it as `listenkeyd sim` ([`run`]) and steer it
//! over HTTP (see [`admin`]). Each distinct API key is its own account; listen
//! keys live `listen_key_ttl` after their last POST or PUT; tokens live for the
//! validity they were minted with. Times the simulator shows (`serverTime`,
//! `expirationTime`, `expires_at_ms`, `at_ms`) are on its clock: real time plus
//! a settable skew. Expiry runs on the unskewed clock, so moving the skew never
//! expires a key.
//!
//! It is its own package and knows nothing of listenkeyd's code: paths,
//! scopes and checks are written from the exchange's side.
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod auth;
pub mod cli;
pub mod events;
pub mod faults;
pub mod http;
pub mod hub;
pub mod log;
pub mod orders;
pub mod profile;
pub mod server;
pub mod session;
pub mod shared;
pub mod state;
pub mod venue;
pub mod weight;
pub mod ws;
pub mod wsadmin;
pub mod wsapi;
pub mod wsauth;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use cli::{SimArgs, run};
pub use faults::{ArmedFault, Fault};
pub use hub::WsConfig;
pub use profile::Profile;
pub use shared::RecordedRequest;
pub use state::ActiveCredential;
pub use venue::Venue;

use shared::{Clock, Shared, lock};

/// How a simulator behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Listen-key lifetime after each POST or PUT (Binance: 60 minutes).
    pub listen_key_ttl: Duration,
    /// Accepted API keys; empty accepts any non-empty key.
    pub api_keys: Vec<String>,
    /// HMAC secret; when set (or `ed25519_public_pem` is), token requests must be signed.
    pub hmac_secret: Option<String>,
    /// Ed25519 public key (SPKI PEM) that token-request signatures may be checked against.
    pub ed25519_public_pem: Option<String>,
    /// Per-API-key HMAC secrets (API key, secret) that other venues' signed
    /// calls are checked against; `hmac_secret` for the keys not listed.
    pub account_secrets: Vec<(String, String)>,
    /// The venue played at paths without a venue prefix (`/mexc/…` is always MEXC).
    pub venue: Venue,
    /// Added to real time to give the simulator's clock, ms.
    pub clock_skew_ms: i64,
    /// Faults armed from the start.
    pub faults: Vec<Fault>,
    /// Which Binance to play: today's (the default) or the one before 2026-02-20.
    pub profile: Profile,
    /// Refuse unsigned listen-token requests (by default both signed and unsigned ones are accepted).
    pub require_signature: bool,
    /// Print one line per exchange request on stdout (`listenkeyd sim` does, unless `--quiet`).
    pub log_requests: bool,
    /// Request-weight limits per client IP and API family, and the other clients' load (see [`weight`]).
    pub weights: weight::Rules,
    /// The WebSocket rules: pings, maximum age, scheduled events, limits.
    pub ws: WsConfig,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            listen_key_ttl: Duration::from_secs(60 * 60),
            api_keys: Vec::new(),
            hmac_secret: None,
            ed25519_public_pem: None,
            account_secrets: Vec::new(),
            venue: Venue::Binance,
            clock_skew_ms: 0,
            faults: Vec::new(),
            profile: Profile::default(),
            require_signature: false,
            log_requests: false,
            weights: weight::Rules::default(),
            ws: WsConfig::default(),
        }
    }
}

impl SimConfig {
    /// Today's Binance with margin listen keys still served: [`Profile::Binance2025`].
    pub fn binance_2025() -> SimConfig {
        SimConfig {
            profile: Profile::Binance2025,
            ..SimConfig::default()
        }
    }

    /// Checks what [`start`] cannot report: an unreadable Ed25519 public key, a
    /// zero TTL, or a signature demanded with no key to check it against.
    pub fn validate(&self) -> Result<(), String> {
        if self.listen_key_ttl.is_zero() {
            return Err("the listen-key TTL must be positive".into());
        }
        let has_key =
            self.hmac_secret.as_deref().is_some_and(|s| !s.trim().is_empty()) || self.ed25519_public_pem.is_some();
        if self.require_signature && !has_key {
            return Err("requiring signatures needs a secret key or an Ed25519 public key to check them".into());
        }
        if let Some(pem) = &self.ed25519_public_pem {
            auth::parse_public_pem(pem)?;
        }
        Ok(())
    }

    /// The shared state for this configuration, on `clock`.
    fn into_shared(self, clock: Clock) -> Shared {
        if let Err(e) = self.validate() {
            tracing::error!(error = %e, "sim: bad configuration; signed token requests will be refused");
        }
        let verifier = auth::Verifier::new(self.hmac_secret.as_deref(), self.ed25519_public_pem.as_deref());
        let ttl_ms = i64::try_from(self.listen_key_ttl.as_millis())
            .unwrap_or(i64::MAX / 4)
            .max(1);
        let faults = self.faults.into_iter().map(ArmedFault::new).collect();
        let mut shared = Shared::new(clock, self.clock_skew_ms, ttl_ms, self.api_keys, verifier, faults);
        shared.profile = self.profile;
        shared.venue = self.venue;
        shared.account_secrets = self.account_secrets;
        shared.require_signature = self.require_signature;
        shared.log_requests = self.log_requests;
        shared.weights = std::sync::Mutex::new(weight::Weights::new(self.weights));
        shared.hub = hub::Hub::new(self.ws);
        shared
    }
}

/// Starts a simulator on `listener` (serving until `cancel` fires) and returns its handle.
pub async fn start(listener: TcpListener, cfg: SimConfig, cancel: CancellationToken) -> SimHandle {
    start_with_clock(listener, cfg, cancel, shared::system_clock())
}

/// [`start`] on a given clock (ms since the epoch), for tests that move time.
pub fn start_with_clock(listener: TcpListener, cfg: SimConfig, cancel: CancellationToken, clock: Clock) -> SimHandle {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let shared = Arc::new(cfg.into_shared(clock));
    tokio::spawn(server::serve(listener, shared.clone(), cancel));
    SimHandle { addr, shared }
}

/// Steers a running simulator; cheap to clone.
#[derive(Clone)]
pub struct SimHandle {
    /// Where it listens.
    addr: SocketAddr,
    /// Its state.
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, e.g. `http://127.0.0.1:9000`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every recorded exchange request, oldest first (admin requests are not recorded).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The WebSocket log (connections, subscriptions, pings, events, cuts), oldest first.
    pub fn ws_log(&self) -> Vec<hub::WsLogEntry> {
        self.shared.hub.entries()
    }

    /// The open WebSocket connections.
    pub fn ws_connections(&self) -> Vec<hub::ConnInfo> {
        self.shared.hub.connections()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Arms a fault after those already armed.
    pub fn add_fault(&self, f: Fault) {
        lock(&self.shared.faults).push(ArmedFault::new(f));
    }

    /// The armed faults with their counters (`seen`, `applied`), in order.
    pub fn faults(&self) -> Vec<ArmedFault> {
        lock(&self.shared.faults).clone()
    }

    /// Whether every armed fault with a `count` has been applied that many times.
    pub fn faults_spent(&self) -> bool {
        lock(&self.shared.faults)
            .iter()
            .all(|a| a.fault.count.is_none_or(|c| a.applied >= c))
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Every live listen key and token.
    pub fn active(&self) -> Vec<ActiveCredential> {
        let (now, skew) = (self.shared.now(), self.shared.skew_ms());
        lock(&self.shared.store).active(now, skew)
    }

    /// Whether `value` is a live listen key or token.
    pub fn is_live(&self, value: &str) -> bool {
        let now = self.shared.now();
        lock(&self.shared.store).is_live(value, now)
    }

    /// Silently removes every key and token of `scope` (a stream id); false if there was none.
    pub fn revoke_scope(&self, scope: &str) -> bool {
        lock(&self.shared.store).revoke_scope(scope)
    }

    /// Silently removes the key or token equal to `value`; false if there was none.
    pub fn revoke_value(&self, value: &str) -> bool {
        lock(&self.shared.store).revoke_value(value)
    }

    /// Closes the listening socket and aborts every open connection for
    /// `length`, then listens on the same address again: clients meet
    /// "connection refused" meanwhile. Returns at once.
    pub fn refuse_connections(&self, length: Duration) {
        self.shared.outages.send_replace(length);
    }

    /// Sets the clock skew, ms: any value, unlike `POST /_sim/clock` (server times saturate).
    pub fn set_clock_skew_ms(&self, ms: i64) {
        self.shared.set_skew_ms(ms);
    }

    /// The profile it plays.
    pub fn profile(&self) -> Profile {
        self.shared.profile
    }

    /// The simulator's current server time, ms since the epoch.
    pub fn server_time_ms(&self) -> i64 {
        self.shared.server_now()
    }

    /// Every client IP's request weight in its current window, with its refusals.
    pub fn weight_usage(&self) -> Vec<weight::Usage> {
        lock(&self.shared.weights).usage(self.shared.server_now())
    }

    /// Adds `weight` to `ip`'s current window of `family`: a burst by the other clients of that IP.
    pub fn add_weight(&self, ip: std::net::IpAddr, family: &str, weight: u64) {
        lock(&self.shared.weights).add(self.shared.server_now(), ip, family, weight);
    }
}
