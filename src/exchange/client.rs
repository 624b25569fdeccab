//! The HTTP client of one account: builds each call's URL, puts the account's
//! API key in its venue's header, signs the call by its venue's rule, sends it
//! within `request_timeout`, reads at most [`MAX_BODY`] bytes of the answer and
//! classifies it by its venue's error table (and its "key gone" statuses).
//!
//! It also holds the state that belongs to a host or an account rather than a
//! stream: the rate-limit gates (after a 429 or 418 nothing is sent to that
//! host, by any stream of any account sharing [`HostGates`], until
//! `Retry-After` has passed; a venue whose limits are per account closes only
//! the account's gate) and the server-time offset used to timestamp signed
//! requests (re-synced on -1021). A semaphore bounds the requests in flight,
//! so a thousand streams share a handful of pooled connections. Before it is
//! sent, every request waits for the request-weight [`budget`](super::budget)
//! of its (host, egress) and family, in order of its credential's expiry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use reqwest::Method;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use url::Url;

use super::account::Account;
use super::admission::{Admission, Admitted};
use super::answer;
use super::budget::{self, Ask, Budgets, Limits, WeightLimit};
use super::endpoints::{self, Call};
use super::error::{classify_with, parse_retry_after};
use super::dns::SystemResolver;
use super::redact;
use crate::exchange::sign::Signer;
use crate::clock::{SharedClock, epoch_ms, later};
use crate::reason::{ApiError, ErrorClass};
use crate::stream::{CredentialKind, StreamSpec};
use crate::exchange::venue::{Route, Scope, Signing};

/// The largest answer body read; anything longer is a malformed answer.
pub const MAX_BODY: usize = 64 * 1024;

/// Requests in flight at once, across all streams of all accounts sharing
/// an HTTP client (one egress address and request timeout).
pub const MAX_IN_FLIGHT: usize = 16;

/// Attempts under way at once, across all streams (see [`Client::admit`]):
/// twice the requests in flight, so the next ones are ready when a slot frees.
pub const MAX_ADMITTED: usize = 2 * MAX_IN_FLIGHT;

/// A credential as the exchange handed it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The listen key or token.
    pub value: String,
    /// The expiry the exchange stated, if it stated one.
    pub expires_at: Option<SystemTime>,
}

/// The rate-limit windows of hosts, shared by the clients of every account
/// that calls them (host:port, with the egress address when one is set → the
/// instant until which nothing may be sent there), and the request-weight budgets of every (host, egress).
/// It also holds the HTTP clients the accounts share: one per (egress
/// address, request timeout), each with its connection pool (per host) and
/// TLS configuration, so a thousand accounts keep a few connections, not a
/// thousand.
#[derive(Debug, Default)]
pub struct HostGates {
    windows: Mutex<HashMap<String, Instant>>,
    budgets: Arc<Budgets>,
    http: Mutex<HashMap<(Option<std::net::IpAddr>, Duration), Shared>>,
}

impl HostGates {
    /// Gates whose budgets are kept by `limits`.
    pub fn new(limits: Limits) -> HostGates {
        HostGates {
            budgets: Arc::new(Budgets::new(limits)),
            ..HostGates::default()
        }
    }

    /// The shared HTTP client of (`egress`, `timeout`) and its bound on
    /// requests in flight, built on first use: every request bounded by
    /// `timeout` (connect included, at most 5 s of it), connections pooled,
    /// redirects never followed.
    fn http(&self, egress: Option<std::net::IpAddr>, timeout: Duration) -> Result<Shared, ClientError> {
        let mut clients = self.http.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = clients.get(&(egress, timeout)) {
            return Ok(c.clone());
        }
        let http = reqwest::Client::builder()
            .local_address(egress)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(MAX_IN_FLIGHT)
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("listenkeyd/", env!("CARGO_PKG_VERSION")))
            // A redirect would resend X-MBX-APIKEY to wherever it points: never follow one.
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(SystemResolver))
            .build()
            .map_err(ClientError)?;
        let shared = Shared {
            http,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        };
        clients.insert((egress, timeout), shared.clone());
        Ok(shared)
    }

    /// The request-weight budgets.
    pub fn budgets(&self) -> &Arc<Budgets> {
        &self.budgets
    }
}

/// An HTTP client the accounts of one (egress, timeout) share, with its bound
/// on requests in flight.
#[derive(Debug, Clone)]
struct Shared {
    http: reqwest::Client,
    in_flight: Arc<Semaphore>,
}

/// The REST client of one account, shared by its streams.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    account: Account,
    clock: SharedClock,
    /// host:port → the instant until which nothing may be sent there.
    gate: Arc<HostGates>,
    /// Until when this account may send nothing (limits counted per account).
    account_gate: Mutex<Option<Instant>>,
    /// Server time minus local time, in ms, for signed requests.
    time_offset_ms: AtomicI64,
    /// Bounds the requests in flight on the shared HTTP client.
    in_flight: Arc<Semaphore>,
    /// Bounds the attempts that exist at once (see [`Client::admit`]).
    admission: Admission,
}

/// The `host:port` key of a URL, for the rate-limit gate.
fn host_key(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ClientError(#[source] reqwest::Error);

impl Client {
    /// A client for `account`, sharing host rate-limit windows, budgets and
    /// HTTP connections (per egress address) through `hosts`. Every request
    /// is bounded by `account.request_timeout` (connect included);
    /// connections are pooled.
    pub fn for_account(
        account: Account,
        clock: SharedClock,
        hosts: Arc<HostGates>,
    ) -> Result<Client, ClientError> {
        let Shared { http, in_flight } = hosts.http(account.egress, account.request_timeout)?;
        Ok(Client {
            http,
            account,
            clock,
            gate: hosts,
            account_gate: Mutex::new(None),
            time_offset_ms: AtomicI64::new(0),
            in_flight,
            admission: Admission::new(MAX_ADMITTED),
        })
    }

    /// The account this client calls for.
    pub fn account(&self) -> &Account {
        &self.account
    }

    /// The venue route of the stream's kind.
    fn route(&self, spec: &StreamSpec) -> Result<&'static Route, ApiError> {
        self.account.venue.route(spec.kind).ok_or_else(|| {
            ApiError::local(
                ErrorClass::Rejected,
                format!("{} has no kind {}", self.account.venue.name, spec.kind),
            )
        })
    }

    /// Waits until a stream may start an attempt (at most [`MAX_ADMITTED`]
    /// at once, the credential expiring first admitted first; `by` is when
    /// it expires). A scheduler builds its attempt only once admitted:
    /// thousands of streams due together then hold a few dozen request
    /// futures between them instead of one each.
    pub async fn admit(&self, by: SystemTime) -> Admitted {
        self.admission.admit(by).await
    }

    /// Creates the stream's credential; for listen keys, POST returns the
    /// account's active key (extended) when there is one. `by` is when the
    /// credential it replaces expires (a first creation: when the new one
    /// would): requests wait for the weight budget in that order.
    pub async fn obtain(&self, spec: &StreamSpec, token_validity: Duration, by: SystemTime) -> Result<Issued, ApiError> {
        let route = self.route(spec)?;
        let call = endpoints::obtain(route, spec, token_validity);
        let body = self.send(route, &call, None, by).await?;
        let venue = self.account.venue;
        match spec.credential {
            CredentialKind::ListenKey | CredentialKind::RotatingKey => {
                let (holder, name) = field(&body, venue.value_field);
                let value = answer::credential(holder, name)?;
                let (holder, name) = field(&body, venue.expiry_field);
                let expires_at = answer::stated_time(holder, name)?;
                Ok(Issued { value, expires_at })
            }
            CredentialKind::ListenToken => {
                let value = answer::credential(&body, "token")?;
                let expires_at = answer::stated_time(&body, "expirationTime")?
                    .or_else(|| Some(later(self.clock.now(), token_validity)));
                Ok(Issued { value, expires_at })
            }
        }
    }

    /// Extends a listen key that expires at `by`. Returns the key the
    /// exchange echoed, if it echoed one.
    pub async fn keepalive(&self, spec: &StreamSpec, key: &str, by: SystemTime) -> Result<Option<Issued>, ApiError> {
        let route = self.route(spec)?;
        let Some(call) = endpoints::keepalive(route, spec, key) else {
            return Err(ApiError::local(ErrorClass::Rejected, "listen tokens have no keepalive"));
        };
        let body = self.send(route, &call, Some(key), by).await?;
        // A stated expiry is checked even without an echo; an echo that is not
        // a key (a number, null, blank, control characters) is a malformed
        // answer, not a success.
        let expires_at = answer::stated_time(&body, "expiration")?;
        if body.get("listenKey").is_none() {
            return Ok(None);
        }
        let value = answer::credential(&body, "listenKey")?;
        Ok(Some(Issued { value, expires_at }))
    }

    /// Closes a listen key (only when the operator asked for it).
    pub async fn close(&self, spec: &StreamSpec, key: &str) -> Result<(), ApiError> {
        let route = self.route(spec)?;
        if let Some(call) = endpoints::close(route, spec, key) {
            // Closing is the least urgent call there is.
            let by = later(self.clock.now(), budget::MAX_WINDOW * 365);
            self.send(route, &call, Some(key), by).await?;
        }
        Ok(())
    }

    /// Sends `call`, signed by the account's rule; a -1021 answer re-syncs
    /// the server-time offset and retries once.
    async fn send(
        &self,
        route: &Route,
        call: &Call,
        key: Option<&str>,
        by: SystemTime,
    ) -> Result<serde_json::Value, ApiError> {
        let Some(base) = self.account.urls.get(&route.family).cloned() else {
            return Err(ApiError::local(ErrorClass::Rejected, "no URL configured for this kind"));
        };
        let signer = match self.account.signing {
            Signing::None => None,
            Signing::TokensOnly => self.account.signer.as_ref().filter(|_| call.signable),
            Signing::Query | Signing::Headers => self.account.signer.as_ref(),
        };
        let first = self.send_once(&base, call, signer, key, by).await;
        match (&first, signer) {
            (Err(e), Some(_)) if e.class == ErrorClass::ClockSkew => {
                self.sync_time(&base, route.time_path, by).await?;
                self.send_once(&base, call, signer, key, by).await
            }
            _ => first,
        }
    }

    /// The rate-limit gate. A panic while it was held (none is known) leaves
    /// a map of instants that is still consistent, so a poisoned lock is taken
    /// over rather than passed on as a panic to every stream.
    fn gate(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        self.gate.windows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The account's own gate (poison taken over, as for [`Client::gate`]).
    fn account_gate(&self) -> MutexGuard<'_, Option<Instant>> {
        self.account_gate.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses to send while the host's or the account's rate-limit window is open.
    fn check_gate(&self, host: &str) -> Result<(), ApiError> {
        let host_until = self.gate().get(host).copied();
        let account_until = *self.account_gate();
        let closed = |until: Option<Instant>, what: &str| match until {
            Some(until) if until > Instant::now() => {
                let left = until - Instant::now();
                Err(ApiError {
                    retry_after: Some(left),
                    ..ApiError::local(
                        ErrorClass::RateLimited,
                        format!("not sent: {what} is rate-limited for {}s more", left.as_secs() + 1),
                    )
                })
            }
            _ => Ok(()),
        };
        closed(host_until, host)?;
        closed(account_until, &format!("account {}", self.account.name))
    }

    /// Closes the host's gate (or, for a venue counting per account, the
    /// account's) for `for_`, keeping the later of two windows.
    fn close_gate(&self, host: String, for_: Duration) {
        let now = Instant::now();
        let until = now.checked_add(for_.min(super::error::MAX_RETRY_AFTER)).unwrap_or(now);
        if self.account.venue.rate_limit_scope == Scope::Account {
            let mut gate = self.account_gate();
            *gate = Some(gate.map_or(until, |u| u.max(until)));
            return;
        }
        let mut gate = self.gate();
        let slot = gate.entry(host).or_insert(until);
        *slot = (*slot).max(until);
    }

    /// How long until `url`'s host may be called again (zero when open).
    #[cfg(any(test, feature = "test-seams"))]
    pub fn gate_remaining(&self, url: &Url) -> Duration {
        let gate = self.gate();
        gate.get(&host_key(url))
            .map(|u| u.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    }

    async fn send_once(
        &self,
        base: &Url,
        call: &Call,
        signer: Option<&Signer>,
        key: Option<&str>,
        by: SystemTime,
    ) -> Result<serde_json::Value, ApiError> {
        let headers_signed = self.account.signing == Signing::Headers;
        let url = join_query(base, call.path, &self.query(call, signer.filter(|_| !headers_signed)));
        let mut extra = Vec::new();
        if let (Some(signer), true) = (signer, headers_signed) {
            // WOO X v3: HMAC of timestamp + METHOD + path (with query) + body.
            let ts = self.timestamp().to_string();
            let target = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            };
            let payload = format!("{ts}{}{target}{}", call.method, call.body.unwrap_or(""));
            extra.push(("x-api-timestamp", ts));
            extra.push(("x-api-signature", signer.sign(&payload)));
        }
        let request = Outgoing {
            method: call.method.clone(),
            url,
            with_api_key: true,
            listen_key_path: call.listen_key_path,
            headers: extra,
            body: call.body,
            by,
            base: base.clone(),
            family: budget::family_of(call.path),
        };
        self.exchange(request, key).await
    }

    /// One request to a host: refused while its rate-limit window is open,
    /// sent when an in-flight permit is free, its answer read up to
    /// [`MAX_BODY`] and classified; a 429/418 closes the host's window.
    /// `key` is scrubbed from any error message.
    async fn exchange(&self, out: Outgoing, key: Option<&str>) -> Result<serde_json::Value, ApiError> {
        let Outgoing {
            method,
            url,
            with_api_key,
            listen_key_path,
            headers,
            body: request_body,
            by,
            base,
            family,
        } = out;
        let keepalive = method == Method::PUT;
        let host = host_key(&url);
        // A ban is per source address: the window of an egress address is its own.
        let gate_key = match self.account.egress {
            Some(ip) => format!("{host} from {ip}"),
            None => host.clone(),
        };
        self.check_gate(&gate_key)?;
        let family = family.to_owned();
        let budget = self.gate.budgets.host(&host, self.account.egress, &self.clock);
        let documented = self.documented_limit(&family);
        if let Some((path, weight)) = self.account.venue.exchange_info(&family)
            && budget.should_learn(&family)
        {
            // Dropped before the answer (shutdown, a panic): the others stop waiting for it.
            let mut asking = budget::Asking::new(&budget, &family);
            let (limit, used) = self.learn_limit(&base, path).await;
            asking.answered();
            budget.learned(&family, limit, weight, &used, documented);
        }
        let permit = budget
            .acquire(Ask {
                family: &family,
                weight: 1,
                expires: by,
                documented,
            })
            .await;
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| ApiError::local(ErrorClass::Transient, "not sent: the client is shutting down"))?;
        // A window may have opened while this request queued for a permit.
        self.check_gate(&gate_key)?;

        let mut request = self.http.request(method, url);
        if with_api_key {
            request = request.header(self.account.api_key_header.as_str(), self.account.api_key.expose());
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(b) = request_body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        let tidy = |text: &str| redact::tidy(text, key.as_slice(), Some(self.account.api_key.expose()));
        let mut resp = request.send().await.map_err(|e| transport_error(&e, &host, &tidy))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, self.clock.now()));
        let per_ip = self.account.venue.rate_limit_scope == Scope::Host;
        permit.answered(status, resp.headers(), retry_after, per_ip);
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(&e, &host, &tidy))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(ApiError {
                    status: Some(status),
                    ..ApiError::local(ErrorClass::Transient, format!("answer larger than {MAX_BODY} bytes"))
                });
            }
            body.extend_from_slice(&chunk);
        }
        let outcome = classify_with(&self.account.venue.errors, status, retry_after, &body, listen_key_path)
            .map_err(|e| self.venue_status(e, status, keepalive));
        if let Err(e) = &outcome {
            if e.class == ErrorClass::RateLimited {
                self.close_gate(gate_key, e.retry_after.unwrap_or(Duration::from_secs(60)));
            }
        }
        outcome.map_err(|mut e| {
            e.message = tidy(&e.message);
            e
        })
    }

    /// The venue's own statuses over the classification: on a keepalive,
    /// those that mean the key is gone (BingX's 404). A 429/418 stays a
    /// rate limit.
    fn venue_status(&self, mut e: ApiError, status: u16, keepalive: bool) -> ApiError {
        if keepalive && e.class != ErrorClass::RateLimited && self.account.venue.gone_statuses.contains(&status) {
            e.class = ErrorClass::Gone;
        }
        e
    }

    /// Now on the server's clock, in epoch ms.
    fn timestamp(&self) -> i64 {
        epoch_ms(self.clock.now()).saturating_add(self.time_offset_ms.load(Ordering::Relaxed))
    }

    /// The query string of `call`, with `timestamp` and `signature` when signed.
    fn query(&self, call: &Call, signer: Option<&Signer>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &call.params {
            query.append_pair(k, v);
        }
        let Some(signer) = signer else {
            return query.finish();
        };
        let ts = self.timestamp();
        query.append_pair("timestamp", &ts.to_string());
        let payload = query.finish();
        let mut signed = url::form_urlencoded::Serializer::new(payload.clone());
        signed.append_pair("signature", &signer.sign(&payload));
        signed.finish()
    }

    /// Re-syncs the server-time offset through `kind`'s time endpoint, as a
    /// clock-skew answer does, and returns it (ms).
    #[cfg(any(test, feature = "test-seams"))]
    pub async fn resync(&self, kind: crate::stream::Kind) -> Result<i64, ApiError> {
        let spec = StreamSpec::new(kind, None, CredentialKind::ListenKey);
        let route = self.route(&spec)?;
        let Some(base) = self.account.urls.get(&route.family).cloned() else {
            return Err(ApiError::local(ErrorClass::Rejected, "no URL configured for this kind"));
        };
        self.sync_time(&base, route.time_path, self.clock.now()).await?;
        Ok(self.time_offset_ms.load(Ordering::Relaxed))
    }

    /// The venue profile's documented weight limit of `family`.
    fn documented_limit(&self, family: &str) -> Option<WeightLimit> {
        self.account
            .venue
            .weight_limits()
            .iter()
            .find(|(f, _, _)| *f == family)
            .and_then(|(_, limit, secs)| WeightLimit::new(*limit, Duration::from_secs(*secs)))
    }

    /// Asks `path` (a family's `exchangeInfo`, under `base`) for the
    /// family's `REQUEST_WEIGHT` limit, within the account's request
    /// timeout, reading at most [`MAX_BODY`] of the answer; also returns the
    /// used weight its answer reported. Any
    /// failure is logged and gives no limit (the documented one stays).
    async fn learn_limit(&self, base: &Url, path: &str) -> (Option<WeightLimit>, Vec<(Duration, u64)>) {
        let info = join(base, path);
        let asked = async {
            let _permit = self.in_flight.acquire().await.ok()?;
            let mut resp = self.http.get(info).send().await.ok()?;
            let used = budget::used_weights(resp.headers());
            let ok = resp.status().is_success();
            // The whole answer lists every symbol (megabytes); `rateLimits`
            // comes near its start: read until it can be taken, at most MAX_BODY.
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.ok()? {
                body.extend_from_slice(&chunk);
                if !ok || body.len() >= MAX_BODY || budget::leading_rate_limits(&body).is_some() {
                    break;
                }
            }
            let limit = ok
                .then(|| budget::leading_rate_limits(&body))
                .flatten()
                .and_then(|v| budget::request_weight_limit(&v));
            Some((limit, used))
        };
        match tokio::time::timeout(self.account.request_timeout, asked).await {
            Ok(Some((limit, used))) => {
                if limit.is_none() {
                    tracing::warn!(path, "exchangeInfo stated no request-weight limit; the documented one stays");
                }
                (limit, used)
            }
            _ => {
                tracing::warn!(path, "could not read the request-weight limit from exchangeInfo; the documented one stays");
                (None, Vec::new())
            }
        }
    }

    /// Fetches the server time (at the venue's `time_field`) and keeps the
    /// offset for signed requests; `by` orders the call in its queue.
    async fn sync_time(&self, base: &Url, time_path: &'static str, by: SystemTime) -> Result<(), ApiError> {
        let before = self.clock.now();
        let request = Outgoing {
            method: Method::GET,
            url: join(base, time_path),
            with_api_key: false,
            listen_key_path: false,
            headers: Vec::new(),
            body: None,
            by,
            base: base.clone(),
            family: budget::family_of(time_path),
        };
        let json = self.exchange(request, None).await?;
        let path = self.account.venue.time_field;
        let (holder, name) = field(&json, path);
        let server = answer::epoch_ms(holder, name)?
            .ok_or_else(|| ApiError::local(ErrorClass::Transient, format!("malformed answer: no `{path}`")))?;
        let after = self.clock.now();
        // Both terms lie in [0, MAX_EPOCH_MS]: neither the mean nor the difference can overflow.
        let local_mid = epoch_ms(before) / 2 + epoch_ms(after) / 2;
        let offset = server - local_mid;
        self.time_offset_ms.store(offset, Ordering::Relaxed);
        tracing::info!(offset_ms = offset, "re-synced server time for signed requests");
        Ok(())
    }
}

/// One request as [`Client::exchange`] sends it.
struct Outgoing {
    method: Method,
    url: Url,
    /// Whether the account's API-key header goes with it.
    with_api_key: bool,
    /// Whether the path is a listen-key endpoint.
    listen_key_path: bool,
    /// Extra headers (a header signature).
    headers: Vec<(&'static str, String)>,
    /// A JSON body.
    body: Option<&'static str>,
    /// When the credential it keeps expires: its place in the budget's queue.
    by: SystemTime,
    /// The family's base URL (a path prefix included): where its `exchangeInfo` is asked.
    base: Url,
    /// The call's family: its path's first segment after the base URL's path.
    family: &'static str,
}

/// The object holding the (possibly dotted) field `path` of `body`, and the
/// field's last name: `data.authKey` is `authKey` of `body.data`.
fn field<'a, 'p>(body: &'a serde_json::Value, path: &'p str) -> (&'a serde_json::Value, &'p str) {
    match path.rsplit_once('.') {
        None => (body, path),
        Some((parents, last)) => {
            let holder = parents
                .split('.')
                .try_fold(body, |v, k| v.get(k))
                .unwrap_or(&serde_json::Value::Null);
            (holder, last)
        }
    }
}

/// `base` with `path` appended to its own path.
fn join(base: &Url, path: &str) -> Url {
    join_query(base, path, "")
}

/// `base` with `path` appended to its own path and `query` (already encoded,
/// may be empty) as its query, built in one pass: `set_path` and `set_query`
/// would each re-serialize the whole URL.
fn join_query(base: &Url, path: &str, query: &str) -> Url {
    let root = &base[..url::Position::BeforePath];
    let text = format!(
        "{root}{}{path}{}{query}",
        base.path().trim_end_matches('/'),
        if query.is_empty() { "" } else { "?" }
    );
    // The base is a valid URL and path and query are ours, so this parses;
    // were it not to, the slower way gives the same URL.
    Url::parse(&text).unwrap_or_else(|_| {
        let mut url = base.clone();
        url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
        url.set_query((!query.is_empty()).then_some(query));
        url
    })
}

/// A transport failure (timeout, refused, reset): always transient. The
/// message names the address tried (`host:port`, never the URL, whose query
/// may hold a listen key) and the innermost cause, made safe by `tidy`.
fn transport_error(e: &reqwest::Error, host: &str, tidy: &dyn Fn(&str) -> String) -> ApiError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "answer cut off"
    } else {
        "request failed"
    };
    // reqwest's message includes the URL, whose query may hold a listen key: keep the kind only.
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    let message = if detail.is_empty() {
        format!("{what} ({host})")
    } else {
        format!("{what} ({host}: {})", tidy(&detail))
    };
    ApiError::local(ErrorClass::Transient, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    fn client() -> Client {
        let url = Url::parse("http://127.0.0.1:9").unwrap();
        let account = Account::binance_at(&url, "k", Duration::from_secs(10));
        Client::for_account(account, std::sync::Arc::new(SystemClock), Default::default()).unwrap()
    }

    /// Accounts with the same egress address and timeout share one HTTP
    /// client (its pool, its TLS configuration) and its bound on requests
    /// in flight; another egress address has its own.
    #[test]
    fn accounts_share_connections_per_egress_address() {
        let url = Url::parse("http://127.0.0.1:9").unwrap();
        let hosts = Arc::new(HostGates::default());
        let clock: SharedClock = Arc::new(SystemClock);
        let make = |name: &str, egress: Option<&str>| {
            let mut account = Account::binance_at(&url, "k", Duration::from_secs(10));
            account.name = name.to_owned();
            account.egress = egress.map(|e| e.parse().unwrap());
            Client::for_account(account, clock.clone(), hosts.clone()).unwrap()
        };
        let (a, b, c) = (make("a", None), make("b", None), make("c", Some("127.0.0.2")));
        assert!(Arc::ptr_eq(&a.in_flight, &b.in_flight));
        assert!(!Arc::ptr_eq(&a.in_flight, &c.in_flight));
        assert_eq!(hosts.http.lock().unwrap().len(), 2);
    }

    #[test]
    fn urls_join_the_base_path_and_the_query_in_one_pass() {
        let base = Url::parse("http://127.0.0.1:9000/proxy/").unwrap();
        let url = join_query(&base, "/sapi/v1/userDataStream", "symbol=BTCUSDT&listenKey=a%2Bb");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9000/proxy/sapi/v1/userDataStream?symbol=BTCUSDT&listenKey=a%2Bb"
        );
        let bare = Url::parse("https://fapi.binance.com").unwrap();
        assert_eq!(
            join(&bare, "/fapi/v1/listenKey").as_str(),
            "https://fapi.binance.com/fapi/v1/listenKey"
        );
    }

    #[test]
    fn a_poisoned_gate_is_recovered_not_propagated() {
        let client = std::sync::Arc::new(client());
        let c = client.clone();
        let poisoner = std::thread::spawn(move || {
            let _held = c.gate.windows.lock().unwrap();
            panic!("poison the gate on purpose");
        });
        assert!(poisoner.join().is_err());
        assert!(client.gate.windows.is_poisoned());
        client.close_gate("h:1".into(), Duration::from_secs(5));
        assert!(client.check_gate("h:1").is_err(), "the window is still kept");
        assert!(client.check_gate("h:2").is_ok());
        let url = Url::parse("http://h:1/").unwrap();
        assert!(client.gate_remaining(&url) > Duration::from_secs(4));
    }
}

#[cfg(test)]
mod echo_tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::SystemClock;
    use listenkeyd_sim::{Fault, SimConfig};

    const API_KEY: &str = "client-test-api-key-5d4c3b2a19";

    /// Behind a base URL with a path (a proxy), a call keeps its family
    /// (`fapi`, not the prefix) and exchangeInfo is asked under the base.
    #[tokio::test]
    async fn a_base_url_with_a_path_keeps_the_calls_family() {
        let sim = listenkeyd_sim::start(
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            SimConfig::default(),
            tokio_util::sync::CancellationToken::new(),
        )
        .await;
        let url = Url::parse(&format!("{}/binance", sim.url())).unwrap();
        let account = Account::binance_at(&url, API_KEY, Duration::from_secs(5));
        let hosts = Arc::new(HostGates::default());
        let client = Client::for_account(account, Arc::new(SystemClock), hosts.clone()).unwrap();
        let spec = StreamSpec::new(crate::stream::Kind::UsdmFutures, None, CredentialKind::ListenKey);
        client
            .obtain(&spec, Duration::from_secs(60), SystemTime::now())
            .await
            .unwrap();
        let paths: Vec<String> = sim.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(paths, ["/binance/fapi/v1/exchangeInfo", "/binance/fapi/v1/listenKey"]);
        let view = hosts.budgets().view();
        assert_eq!(view.len(), 1);
        assert_eq!((view[0].family.as_str(), view[0].own), ("fapi", 2));
        assert!(view[0].limit.is_some(), "{view:?}");
    }

    /// Found by the `answer` fuzz target: an error answer whose message echoes
    /// the API key put it, whole, into the error (and so into logs and
    /// `last_error`).
    #[tokio::test]
    async fn an_answer_echoing_the_api_key_does_not_put_it_in_the_error() {
        let body = format!(r#"{{"code":-2015,"msg":"Invalid API-key {API_KEY}, IP, or permissions for action."}}"#);
        let sim = listenkeyd_sim::start(
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            SimConfig {
                faults: vec![Fault::parse(&format!("* * status=401 body={body}")).unwrap()],
                ..SimConfig::default()
            },
            tokio_util::sync::CancellationToken::new(),
        )
        .await;
        let url = Url::parse(&sim.url()).unwrap();
        let account = Account::binance_at(&url, API_KEY, Duration::from_secs(5));
        let client = Client::for_account(account, Arc::new(SystemClock), Arc::default()).unwrap();
        let spec = StreamSpec::new(crate::stream::Kind::UsdmFutures, None, CredentialKind::ListenKey);
        let e = client.keepalive(&spec, "some-listen-key", SystemTime::now()).await.unwrap_err();
        assert_eq!((e.class, e.status), (ErrorClass::Auth, Some(401)));
        assert!(!e.to_string().contains(API_KEY), "{e}");
        assert!(e.message.contains("Invalid API-key <api key>, IP"), "{e}");
    }
}
