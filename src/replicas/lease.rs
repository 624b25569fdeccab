//! One lease per account, held in Redis, so that replicas of one
//! configuration never call the exchange for one account at once.
//!
//! - **Acquire**: `SET {prefix}:lease:{account} <replica> NX PX <ttl>`; the
//!   replica that sets it bumps `{prefix}:fence:{account}` in the same script
//!   and holds the new value as its fencing token.
//! - **Renew** every third of the TTL, only while the key still names this
//!   replica (a script: GET, compare, PEXPIRE). A renewal that finds another
//!   name means the lease was lost: the replica stands by at once.
//! - **Release** on a clean stop (the same compare, then DEL), so a standby
//!   takes over at its next attempt rather than after the TTL.
//! - **Fencing**: every stream write checks the token against the counter in
//!   the same script (the Redis publisher's); a holder that was paused past its
//!   lease and wakes up late finds a higher counter and writes nothing.
//! - **Local expiry**: the holder counts its lease from the moment it *sent*
//!   the renewal, on the monotonic clock (which runs on while the process is
//!   stopped), and calls the exchange only while that is in the future
//!   ([`Role::active`]).
//! - **Redis unreachable**: a holder keeps holding until its lease would have
//!   lapsed, then goes on alone; a standby waits one TTL (the holder may be
//!   fine), then goes on alone too. Alone, the replica keeps its accounts
//!   alive itself (availability over uniqueness: two replicas may then mint
//!   for one account), says so with a warning and `listenkeyd_ha_role`, and
//!   returns to the lease as soon as Redis answers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Keys, Link};

/// Where a lease reports what the metrics show (`listenkeyd_ha_role`,
/// `listenkeyd_redis_up`), so that this room does not import the publisher
/// that renders them.
pub trait LeaseGauges: Send + Sync + std::fmt::Debug {
    /// This replica's role for `account` is now `role` (its label).
    fn ha_role(&self, account: &str, role: &'static str);
    /// Whether the last call reached Redis.
    fn redis_up(&self, up: bool);
}

/// This replica's role for one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// This replica holds the lease.
    Holder {
        /// The fencing token: the counter's value when the lease was taken.
        token: u64,
        /// When the lease lapses unless renewed, on this host's monotonic clock.
        until: Instant,
    },
    /// Another replica holds the lease (or none could be taken yet).
    Standby,
    /// Redis is unreachable: this replica keeps the account on its own.
    Alone,
}

impl Role {
    /// Whether this replica may call the exchange for the account at `now`.
    pub fn active(&self, now: Instant) -> bool {
        match self {
            Role::Holder { until, .. } => now < *until,
            Role::Standby => false,
            Role::Alone => true,
        }
    }

    /// The label of `listenkeyd_ha_role`.
    pub fn label(&self) -> &'static str {
        match self {
            Role::Holder { .. } => "holder",
            Role::Standby => "standby",
            Role::Alone => "alone",
        }
    }
}

/// A name for this replica, unique per process: host, pid and a random part.
pub fn replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("{host}:{}:{:08x}", std::process::id(), rand::random::<u32>())
}

/// Takes the lease when it is free (or already ours) and returns the fencing
/// token, or 0 when another replica holds it.
const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('GET', KEYS[2]) or '0')
end
return 0
";

/// Extends the lease if it still names this replica (1), else 0.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Deletes the lease if it still names this replica.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// One account's lease keeper.
#[derive(Debug)]
pub struct Lease {
    /// Its own connection.
    pub link: Link,
    /// Key names.
    pub keys: Keys,
    /// The account.
    pub account: String,
    /// How long the lease lasts unless renewed.
    pub ttl: Duration,
    /// This replica's name, stored in the lease key.
    pub replica: String,
    /// `listenkeyd_ha_role`, `listenkeyd_redis_up`.
    pub metrics: Arc<dyn LeaseGauges>,
}

impl Lease {
    /// Acquires and renews the lease every third of its TTL, publishing this
    /// replica's role on `role`, until `cancel` fires; then releases it.
    pub async fn run(mut self, role: watch::Sender<Role>, cancel: CancellationToken) {
        let every = self.ttl / 3;
        let (acquire, renew) = (redis::Script::new(ACQUIRE), redis::Script::new(RENEW));
        let ttl_ms = self.ttl.as_millis().to_string();
        let (lease_key, fence_key) = (self.keys.lease(&self.account), self.keys.fence(&self.account));
        // Until Redis first answers, this replica stands by: unreachable from the start counts.
        let mut unreachable_since = Some(Instant::now());
        self.metrics.ha_role(&self.account, Role::Standby.label());
        loop {
            let sent = Instant::now();
            let current = *role.borrow();
            let answer = match current {
                Role::Holder { token, .. } => self
                    .link
                    .eval::<u64>(&renew, &[&lease_key], &[&self.replica, &ttl_ms])
                    .await
                    .map(|ok| (ok == 1).then_some(token)),
                _ => self
                    .link
                    .eval::<u64>(&acquire, &[&lease_key, &fence_key], &[&self.replica, &ttl_ms])
                    .await
                    .map(|t| (t > 0).then_some(t)),
            };
            let reached = answer.is_ok();
            self.metrics.redis_up(reached);
            let next = match answer {
                Ok(Some(token)) => Role::Holder {
                    token,
                    until: sent + self.ttl,
                },
                Ok(None) => Role::Standby,
                Err(e) => {
                    let since = *unreachable_since.get_or_insert(sent);
                    let next = match current {
                        Role::Holder { until, .. } if Instant::now() < until => current,
                        Role::Standby if since.elapsed() < self.ttl => Role::Standby,
                        _ => Role::Alone,
                    };
                    if next == Role::Alone && current != Role::Alone {
                        tracing::warn!(account = %self.account, error = %e,
                            "Redis unreachable: keeping this account alive without the lease (another replica may do the same)");
                    } else {
                        tracing::debug!(account = %self.account, error = %e, "lease call failed");
                    }
                    next
                }
            };
            if reached {
                unreachable_since = None;
            }
            self.announce(current, next);
            // A renewal only moves `until`: stored without waking every
            // scheduler, unless the lease had lapsed here (a pause) and is
            // valid again.
            role.send_if_modified(|r| {
                let wake = match (*r, next) {
                    (Role::Holder { token: a, until }, Role::Holder { token: b, .. }) => {
                        a != b || until <= Instant::now()
                    }
                    (a, b) => a != b,
                };
                *r = next;
                wake
            });
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
        if matches!(*role.borrow(), Role::Holder { .. }) {
            let release = redis::Script::new(RELEASE);
            match self.link.eval::<u64>(&release, &[&lease_key], &[&self.replica]).await {
                Ok(_) => tracing::info!(account = %self.account, "released the lease"),
                Err(e) => {
                    tracing::warn!(account = %self.account, error = %e, "could not release the lease; it lapses on its own")
                }
            }
        }
    }

    /// Logs a change of role and sets the metric.
    fn announce(&self, from: Role, to: Role) {
        if from.label() == to.label()
            && !matches!((from, to), (Role::Holder { token: a, .. }, Role::Holder { token: b, .. }) if a != b)
        {
            return;
        }
        self.metrics.ha_role(&self.account, to.label());
        match (from, to) {
            (Role::Alone, Role::Holder { token, .. }) => tracing::info!(account = %self.account, token,
                "Redis reachable again: holding the lease; this replica keeps the account"),
            (_, Role::Holder { token, .. }) => {
                tracing::info!(account = %self.account, token, "holding the lease: this replica keeps the account")
            }
            (Role::Holder { .. }, Role::Standby) => tracing::warn!(account = %self.account,
                "lost the lease to another replica: standing by"),
            (Role::Alone, Role::Standby) => tracing::info!(account = %self.account,
                "Redis reachable again: another replica holds the lease; standing by"),
            (_, Role::Standby) => {
                tracing::info!(account = %self.account, "another replica holds the lease: standing by")
            }
            (_, Role::Alone) => {}
        }
    }
}
