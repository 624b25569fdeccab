//! The Redis publisher: writes each stream's state-file JSON to
//! `{prefix}:stream:{id}` with a TTL ending at its expiry (`SET … PXAT`), and
//! announces each write on `{prefix}:events` as `{"stream": id, "generation": n}`,
//! both in one script so a reader never sees the message before the value.
//!
//! It runs on its own task and reads the hub like the state-file writer:
//! schedulers and local publishers never wait for it. A failed write is
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
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Keys, Link, Role, account_of};
use crate::metrics::Metrics;
use crate::publish::Hub;
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
) -> Result<Written, super::RemoteError> {
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
}

/// What was last stored for a stream: its JSON, the token it was written
/// with, and the connection it went through.
type Stored = (String, Option<u64>, u64);

impl Publisher {
    /// Writes every change until `cancel` fires.
    pub async fn run(mut self, cancel: CancellationToken) {
        let notify = self.hub.notifier();
        let mut stored: HashMap<String, Stored> = HashMap::new();
        let mut failures = 0u32;
        let mut probe = tokio::time::interval(PROBE_EVERY);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut gates: Vec<watch::Receiver<Role>> = self.gates.values().cloned().collect();
        loop {
            let changed = notify.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let failed = tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                f = self.pass(&mut stored) => f,
            };
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
                _ = &mut changed => {}
                _ = any_changed(&mut gates) => {}
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

    /// Writes every stream whose stored copy is missing or out of date; stops
    /// at the first failure. Returns whether one failed.
    async fn pass(&mut self, stored: &mut HashMap<String, Stored>) -> bool {
        for state in self.hub.snapshot() {
            let id = state.spec.id.as_str().to_owned();
            let Some(held) = &state.held else { continue };
            let token = match self.gates.get(account_of(&state.spec.id)) {
                None => None,
                Some(g) => match *g.borrow() {
                    Role::Holder { token, .. } => Some(token),
                    _ => continue,
                },
            };
            let Some(entry) = entry_json(&state) else { continue };
            let conn = self.link.connections();
            if self.link.connected()
                && stored
                    .get(&id)
                    .is_some_and(|(j, t, c)| *j == entry && *t == token && *c == conn)
            {
                continue;
            }
            let account = account_of(&state.spec.id).to_owned();
            let record = Record {
                id: &id,
                account: &account,
                json: &entry,
                expires_ms: crate::clock::epoch_ms(held.expires_at),
                generation: held.generation,
            };
            let r = write(&mut self.link, &self.keys, &record, token).await;
            match r {
                Ok(w) => {
                    self.metrics.redis_up(true);
                    if w == Written::Fenced {
                        self.metrics.redis_write("fenced");
                        tracing::warn!(stream = %id, token, "write to Redis fenced off: another replica took the lease");
                    } else {
                        self.metrics.redis_write("ok");
                        tracing::debug!(stream = %id, fp = %fingerprint(&held.value), generation = held.generation,
                            "written to Redis");
                    }
                    stored.insert(id, (entry, token, self.link.connections()));
                }
                Err(e) => {
                    self.metrics.redis_up(false);
                    self.metrics.redis_write("error");
                    tracing::warn!(stream = %id, error = %e, "cannot write to Redis; retrying");
                    return true;
                }
            }
        }
        false
    }
}

/// The stream's JSON exactly as the state file has it under `streams`
/// (written by the state file's own serializer); `None` without a value.
pub fn entry_json(state: &StreamState) -> Option<String> {
    state.held.as_ref()?;
    let mut out = Vec::with_capacity(512);
    crate::publish::render::fields(state, &mut out).ok()?;
    String::from_utf8(out).ok()
}

/// Resolves when any of `gates` changes (never when there are none, or once
/// all are closed).
pub(crate) async fn any_changed(gates: &mut [watch::Receiver<Role>]) {
    if gates.is_empty() {
        return std::future::pending().await;
    }
    let waits = gates.iter_mut().map(|g| Box::pin(g.changed()));
    match futures_util::future::select_all(waits).await {
        (Ok(()), _, _) => {}
        (Err(_), _, _) => std::future::pending().await,
    }
}
