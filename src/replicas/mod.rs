//! Replicas: a lease per account held in Redis, so that replicas of one
//! configuration share the work, and the follower that reads what the holder
//! wrote for the schedulers of the accounts this replica stands by for. This
//! room stands between Redis and the schedulers; the Redis publisher (in
//! `publishers/`) shares its [`link`].
//!
//! In lease mode [`start_replicas`] spawns one [`lease`] task per account and
//! a [`follow`] task. None of them is ever awaited by a scheduler or a
//! publisher: a Redis that is down or slow costs retries here and nothing
//! elsewhere.

pub mod follow;
pub mod lease;
pub mod link;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Ha, HaMode, Redis};
use crate::hub::Hub;
use crate::state::Entry;
use crate::stream::StreamId;

pub use lease::{LeaseGauges, Role};
pub use link::{CALL_TIMEOUT, Keys, Link, RemoteError};

/// The account a stream belongs to, whose lease it follows: the part of its
/// id before `/`, or `default` for the unprefixed ids of the single-account
/// configuration.
pub fn account_of(id: &StreamId) -> &str {
    id.account()
}

/// What a stream's scheduler needs in lease mode.
#[derive(Debug, Clone)]
pub struct StreamLease {
    /// The role of this replica for the stream's account.
    pub gate: watch::Receiver<Role>,
    /// What Redis holds for the stream, as the holder wrote it.
    pub mirror: watch::Receiver<Option<Entry>>,
    /// The account, for logs.
    pub account: String,
}

/// This replica's role per account, in lease mode (empty otherwise).
pub type Roles = Vec<(String, watch::Receiver<Role>)>;

/// What [`start_replicas`] hands back.
#[derive(Debug, Default)]
pub struct Replicas {
    /// Each stream's [`StreamLease`] by stream id, for its scheduler (lease mode).
    pub leases: HashMap<StreamId, StreamLease>,
    /// Each account's role, for the publisher and `/readyz` (lease mode).
    pub roles: Roles,
}

/// The call timeout for `ha` (see [`CALL_TIMEOUT`]).
pub(crate) fn call_timeout(ha: &Ha) -> Duration {
    match ha.mode {
        HaMode::Standalone => CALL_TIMEOUT,
        HaMode::Lease => CALL_TIMEOUT.min(ha.lease_ttl / 4),
    }
}

/// In lease mode, starts one [`lease`] task per account and the [`follow`]
/// task on `tasks`, and returns each stream's [`StreamLease`] and each
/// account's role; outside it, nothing.
pub fn start_replicas(
    redis: &Redis,
    ha: &Ha,
    hub: &Hub,
    metrics: Arc<dyn LeaseGauges>,
    cancel: CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<Replicas, RemoteError> {
    if ha.mode != HaMode::Lease {
        return Ok(Replicas::default());
    }
    let keys = Keys::new(&redis.prefix);
    let timeout = call_timeout(ha);
    let replica = lease::replica_id();
    tracing::info!(replica = %replica, lease_ttl = ?ha.lease_ttl, "replica sharing accounts through leases");
    let mut gates: HashMap<String, watch::Receiver<Role>> = HashMap::new();
    let mut leases = HashMap::new();
    let mut mirrors = Vec::new();
    for id in hub.ids() {
        let account = account_of(id).to_owned();
        let gate = match gates.get(&account) {
            Some(g) => g.clone(),
            None => {
                let (tx, rx) = watch::channel(Role::Standby);
                let l = lease::Lease {
                    link: Link::new(redis, timeout)?,
                    keys: keys.clone(),
                    account: account.clone(),
                    ttl: ha.lease_ttl,
                    replica: replica.clone(),
                    metrics: metrics.clone(),
                };
                tasks.spawn(l.run(tx, cancel.clone()));
                gates.insert(account.clone(), rx.clone());
                rx
            }
        };
        let (mtx, mrx) = watch::channel(None);
        mirrors.push((id.clone(), mtx));
        leases.insert(
            id.clone(),
            StreamLease {
                gate,
                mirror: mrx,
                account,
            },
        );
    }
    let mut roles: Roles = gates.iter().map(|(a, g)| (a.clone(), g.clone())).collect();
    roles.sort_by(|a, b| a.0.cmp(&b.0));
    let f = follow::Follow {
        link: Link::new(redis, timeout)?,
        keys,
        mirrors,
        gates,
    };
    tasks.spawn(f.run(cancel));
    Ok(Replicas { leases, roles })
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;

    #[test]
    fn every_key_is_named_as_the_contract_says() {
        let keys = Keys::new("lk");
        assert_eq!(keys.stream("main/usdm-futures"), "lk:stream:main/usdm-futures");
        assert_eq!(keys.events(), "lk:events");
        assert_eq!(keys.lease("main"), "lk:lease:main");
        assert_eq!(keys.fence("main"), "lk:fence:main");
    }

    #[test]
    fn a_call_answers_well_inside_a_short_lease() {
        let ha = |mode, secs| Ha {
            mode,
            lease_ttl: Duration::from_secs(secs),
        };
        assert_eq!(call_timeout(&ha(HaMode::Standalone, 2)), CALL_TIMEOUT);
        assert_eq!(call_timeout(&ha(HaMode::Lease, 10)), CALL_TIMEOUT);
        assert_eq!(call_timeout(&ha(HaMode::Lease, 2)), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_holder_calls_the_exchange_only_until_its_lease_lapses_on_the_monotonic_clock() {
        let start = Instant::now();
        let holder = Role::Holder {
            token: 7,
            until: start + Duration::from_secs(10),
        };
        assert!(holder.active(Instant::now()));
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(holder.active(Instant::now()));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!holder.active(Instant::now()), "a lapsed lease is not used, renewed or not");
        assert!(!Role::Standby.active(Instant::now()));
        assert!(Role::Alone.active(Instant::now()), "alone, the replica keeps the account");
    }

    #[tokio::test(start_paused = true)]
    async fn any_role_change_wakes_and_no_gate_never_does() {
        let wait = Duration::from_secs(3600);
        assert!(tokio::time::timeout(wait, any_changed(&mut [])).await.is_err());
        let (a_tx, a) = watch::channel(Role::Standby);
        let (b_tx, b) = watch::channel(Role::Standby);
        let mut gates = [a, b];
        let changed = tokio::spawn(async move { any_changed(&mut gates).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!changed.is_finished());
        b_tx.send(Role::Alone).unwrap();
        tokio::time::timeout(wait, changed).await.unwrap().unwrap();
        // Closed gates (their lease tasks gone) never wake a listener.
        drop((a_tx, b_tx));
        let (_, a) = watch::channel(Role::Standby);
        let mut closed = [a];
        assert!(tokio::time::timeout(wait, any_changed(&mut closed)).await.is_err());
    }
}
