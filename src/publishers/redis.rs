//! The Redis publisher: writes each stream's state-file JSON to
//! `{prefix}:stream:{id}` with a TTL ending at its expiry (`SET … PXAT`), and
//! announces each write on `{prefix}:events` as `{"stream": id, "generation": n}`,
//! both in one script so a reader never sees the message before the value.
//!
//! It runs on its own task and follows the hub's event stream: schedulers and
//! local publishers never wait for it, and a change costs the work of its own
//! stream (its current state serialized, compared with a 64-bit hash of what
//! Redis holds, written if different), not of every stream. Every stream is
//! gone through at start, after a reconnection, a role change or a failed
//! write, and when the event stream lagged (more than
//! [`EVENT_BUFFER`](crate::hub::EVENT_BUFFER) changes while a write
//! waited): those are rare, and a full pass is what makes them safe. A failed write is
//! retried with backoff ([`FIRST_RETRY`] doubling to [`MAX_RETRY`]); a pass
//! stops at the first failure, so a Redis that is down costs one timeout per
//! retry, not one per stream. Redis is probed every [`PROBE_EVERY`]: after
//! any reconnection (a Redis that restarted empty, a failover) every current
//! value is written again, so a restarted Redis holds them within seconds.
//!
//! In lease mode only the streams of accounts this replica holds are written,
//! each with the lease's fencing token, which the script checks against the
//! account's counter: a write from a holder that lost its lease is refused
//! (`listenkeyd_redis_writes_total{outcome="fenced"}`).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{Ha, Redis};
use crate::replicas::{Keys, Link, RemoteError, Role, Roles, account_of, any_changed, call_timeout};
use crate::publishers::metrics::Metrics;
use crate::hub::Hub;
use crate::secret::fingerprint;
use crate::state::StreamState;

/// How often Redis is pinged to notice a restart while nothing changes.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// The first retry delay after a failed write.
pub const FIRST_RETRY: Duration = Duration::from_millis(200);
/// The longest delay between retries while Redis fails.
pub const MAX_RETRY: Duration = Duration::from_secs(5);

/// Stores the value and announces it; refused (0) when a fencing token is
/// given and the account's counter has moved past it.
const WRITE: &str = r"
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[3] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
";

/// What a write achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Stored and announced.
    Stored,
    /// Refused: another replica took the lease since `token` was issued.
    Fenced,
}

/// One stream's record as Redis stores it.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The stream id.
    pub id: &'a str,
    /// Its account (whose fencing counter guards the write).
    pub account: &'a str,
    /// The state file's JSON for the stream.
    pub json: &'a str,
    /// When the value expires, in ms since the epoch: the key's TTL ends then.
    pub expires_ms: i64,
    /// The generation announced on the events channel.
    pub generation: u64,
}

/// Stores `r` and announces it, fenced by `token` when given.
pub async fn write(
    link: &mut Link,
    keys: &Keys,
    r: &Record<'_>,
    token: Option<u64>,
) -> Result<Written, RemoteError> {
    let event = serde_json::json!({"stream": r.id, "generation": r.generation}).to_string();
    let token = token.map(|t| t.to_string()).unwrap_or_default();
    let script = redis::Script::new(WRITE);
    let stored: u64 = link
        .eval(
            &script,
            &[&keys.stream(r.id), &keys.fence(r.account)],
            &[r.json, &r.expires_ms.max(1).to_string(), &token, &keys.events(), &event],
        )
        .await?;
    Ok(if stored == 1 { Written::Stored } else { Written::Fenced })
}

/// The publisher task's parts.
#[derive(Debug)]
pub struct Publisher {
    /// Its own connection.
    pub link: Link,
    /// Key names.
    pub keys: Keys,
    /// Where states come from.
    pub hub: Hub,
    /// In lease mode, this replica's role per account; empty when standalone.
    pub gates: HashMap<String, watch::Receiver<Role>>,
    /// Write outcomes.
    pub metrics: Arc<Metrics>,
    /// How many stream states it has serialized to compare with what Redis
    /// holds: the work a change costs (a measure, read by tests).
    pub rendered: Arc<AtomicU64>,
}

/// One stream's write, taken from its state while borrowed from the hub.
struct Job {
    /// The stream id.
    id: String,
    /// Its account.
    account: String,
    /// The state file's JSON for it.
    json: String,
    /// When it expires, in ms since the epoch.
    expires_ms: i64,
    /// The value's generation.
    generation: u64,
    /// The fencing token it is written with (lease mode).
    token: Option<u64>,
    /// The value's fingerprint, for the debug log (empty when that is off).
    fp: String,
}

/// What Redis holds for each stream, by hub position: a hash of the JSON,
/// the token and the connection it was written with (`None`: not written).
/// Sixteen bytes a stream instead of a copy of its JSON.
type Stored = Vec<Option<u64>>;

/// What a pass has to look at.
#[derive(Debug, Default)]
struct Todo {
    /// Every stream: at start, after a reconnection, a role change, a failure
    /// or a lagged event stream.
    full: bool,
    /// The positions of the streams that changed since the last pass.
    dirty: Vec<usize>,
}

impl Todo {
    /// Notes one event from the hub's event stream.
    fn note(&mut self, hub: &Hub, event: Result<StreamState, broadcast::error::RecvError>) {
        match event {
            Ok(state) => {
                if let Some(i) = hub.position(state.spec.id.as_str()) {
                    self.dirty.push(i);
                }
            }
            // Changes were dropped: only a full pass is sure to see them.
            Err(_) => self.full = true,
        }
    }

    /// Takes every event already waiting.
    fn drain(&mut self, hub: &Hub, events: &mut broadcast::Receiver<StreamState>) {
        loop {
            match events.try_recv() {
                Ok(state) => self.note(hub, Ok(state)),
                Err(broadcast::error::TryRecvError::Empty) => return,
                Err(broadcast::error::TryRecvError::Lagged(n)) => self.note(hub, Err(broadcast::error::RecvError::Lagged(n))),
                Err(broadcast::error::TryRecvError::Closed) => return,
            }
        }
    }
}

impl Publisher {
    /// Writes every change until `cancel` fires.
    ///
    /// It follows the hub's event stream, so a change costs the work of its
    /// own stream: that stream's state is read (the current one, never the
    /// event's copy, so a late event cannot write an older value), serialized
    /// and written if Redis does not already hold it. Every stream is gone
    /// through at start, after a reconnection, a role change, a failed write
    /// and when the event stream lagged.
    pub async fn run(mut self, cancel: CancellationToken) {
        // Subscribed before the first pass: no change falls between the two.
        let mut events = self.hub.events();
        let mut stored: Stored = vec![None; self.hub.len()];
        let mut todo = Todo {
            full: true,
            dirty: Vec::new(),
        };
        // The connection every stored value was checked against by the last full pass.
        let mut synced: Option<u64> = None;
        let mut failures = 0u32;
        let mut probe = tokio::time::interval(PROBE_EVERY);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut gates: Vec<watch::Receiver<Role>> = self.gates.values().cloned().collect();
        let mut buf = Vec::with_capacity(512);
        loop {
            todo.drain(&self.hub, &mut events);
            if synced != Some(self.link.connections()) {
                todo.full = true;
            }
            let failed = tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                failed = self.catch_up(&mut todo, &mut stored, &mut buf, &mut synced) => failed,
            };
            if !failed && synced != Some(self.link.connections()) {
                // Reconnected while writing the changes: rewrite everything now.
                continue;
            }
            if failed {
                failures = failures.saturating_add(1);
            } else {
                failures = 0;
            }
            let retry = FIRST_RETRY
                .saturating_mul(1 << failures.saturating_sub(1).min(8))
                .min(MAX_RETRY);
            tokio::select! {
                _ = cancel.cancelled() => return,
                e = events.recv() => match e {
                    Err(broadcast::error::RecvError::Closed) => return, // the hub is gone: no more changes
                    e => todo.note(&self.hub, e),
                },
                _ = any_changed(&mut gates) => todo.full = true,
                _ = tokio::time::sleep(retry), if failed => {}
                _ = probe.tick(), if !failed => {
                    let ping = redis::cmd("PING");
                    let up = tokio::select! {
                        _ = cancel.cancelled() => return,
                        r = self.link.query::<String>(&ping) => r.is_ok(),
                    };
                    self.metrics.redis_up(up);
                }
            }
        }
    }

    /// Writes what `todo` holds: every stream when a full pass is due (and
    /// then marks this connection `synced`), else the changed ones. Returns
    /// whether a write failed (a full pass is then due).
    async fn catch_up(
        &mut self,
        todo: &mut Todo,
        stored: &mut Stored,
        buf: &mut Vec<u8>,
        synced: &mut Option<u64>,
    ) -> bool {
        if todo.full {
            todo.dirty.clear();
            let all: Vec<usize> = (0..self.hub.len()).collect();
            let ok = self.pass(&all, stored, buf).await;
            if ok {
                *synced = Some(self.link.connections());
                todo.full = false;
            }
            return !ok;
        }
        if todo.dirty.is_empty() {
            return false;
        }
        let mut dirty = std::mem::take(&mut todo.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        let ok = self.pass(&dirty, stored, buf).await;
        dirty.clear();
        todo.dirty = dirty;
        if !ok {
            todo.full = true;
        }
        !ok
    }

    /// Writes each stream of `positions` whose value Redis does not hold yet
    /// (under this connection and token); stops at the first failure.
    /// Returns whether all succeeded.
    async fn pass(&mut self, positions: &[usize], stored: &mut Stored, buf: &mut Vec<u8>) -> bool {
        for &i in positions {
            let conn = self.link.connections();
            let known = if self.link.connected() { stored.get(i).copied().flatten() } else { None };
            let Some(job) = self.hub.with(i, |s| self.job(s, known, conn, buf)).flatten() else {
                continue;
            };
            let record = Record {
                id: &job.id,
                account: &job.account,
                json: &job.json,
                expires_ms: job.expires_ms,
                generation: job.generation,
            };
            match write(&mut self.link, &self.keys, &record, job.token).await {
                Ok(w) => {
                    self.metrics.redis_up(true);
                    if w == Written::Fenced {
                        self.metrics.redis_write("fenced");
                        tracing::warn!(stream = %job.id, token = job.token, "write to Redis fenced off: another replica took the lease");
                    } else {
                        self.metrics.redis_write("ok");
                        tracing::debug!(stream = %job.id, fp = %job.fp, generation = job.generation, "written to Redis");
                    }
                    if let Some(slot) = stored.get_mut(i) {
                        *slot = Some(stored_hash(job.json.as_bytes(), job.token, self.link.connections()));
                    }
                }
                Err(e) => {
                    self.metrics.redis_up(false);
                    self.metrics.redis_write("error");
                    tracing::warn!(stream = %job.id, error = %e, "cannot write to Redis; retrying");
                    return false;
                }
            }
        }
        true
    }

    /// What to write for `state`: `None` when it has no value, belongs to an
    /// account this replica does not hold, or Redis holds it already
    /// (`known` is what was stored through connection `conn`).
    fn job(&self, state: &StreamState, known: Option<u64>, conn: u64, buf: &mut Vec<u8>) -> Option<Job> {
        let held = state.held.as_ref()?;
        let account = account_of(&state.spec.id);
        let token = match self.gates.get(account) {
            None => None,
            Some(g) => match *g.borrow() {
                Role::Holder { token, .. } => Some(token),
                _ => return None,
            },
        };
        buf.clear();
        crate::publishers::state_file::render::fields(state, buf).ok()?;
        self.rendered.fetch_add(1, Ordering::Relaxed);
        if known == Some(stored_hash(buf, token, conn)) {
            return None;
        }
        Some(Job {
            id: state.spec.id.as_str().to_owned(),
            account: account.to_owned(),
            json: String::from_utf8(buf.clone()).ok()?,
            expires_ms: crate::clock::epoch_ms(held.expires_at),
            generation: held.generation,
            token,
            // A SHA-256 for a debug line: only when that line is logged.
            fp: match tracing::enabled!(tracing::Level::DEBUG) {
                true => fingerprint(&held.value),
                false => String::new(),
            },
        })
    }
}

/// What [`Stored`] keeps for a value: a 64-bit hash of its JSON, the token
/// and the connection it was written with.
fn stored_hash(json: &[u8], token: Option<u64>, conn: u64) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    json.hash(&mut h);
    token.hash(&mut h);
    conn.hash(&mut h);
    h.finish()
}

/// The Redis publisher's task: in lease mode it writes only the accounts
/// `roles` says this replica holds, fenced by their tokens.
pub fn publisher_task(
    redis: &Redis,
    ha: &Ha,
    hub: &Hub,
    roles: &Roles,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> Result<impl Future<Output = ()> + Send + 'static, RemoteError> {
    tracing::info!(redis = %redis.shown, prefix = %redis.prefix, ha = ?ha.mode, "publishing to Redis");
    let p = Publisher {
        link: Link::new(redis, call_timeout(ha))?,
        keys: Keys::new(&redis.prefix),
        hub: hub.clone(),
        gates: roles.iter().cloned().collect(),
        metrics,
        rendered: Arc::default(),
    };
    Ok(p.run(cancel))
}
