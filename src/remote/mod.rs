//! Redis: every stream published for consumers on other hosts, and a lease per
//! account so that replicas of one configuration share the work.
//!
//! [`start`] spawns, next to the local publishers, a [`publisher`] task that
//! writes each stream to `{prefix}:stream:{id}` (the state file's JSON, with a
//! TTL ending at its expiry) and announces it on `{prefix}:events`; in lease
//! mode also one [`lease`] task per account and a [`follow`] task that reads
//! what the holder wrote, for the schedulers of accounts this replica stands by
//! for. None of them is ever awaited by a scheduler or a local publisher: a
//! Redis that is down or slow costs retries here and nothing elsewhere.
//!
//! Every Redis call goes through a [`Link`], which bounds it with a timeout
//! ([`CALL_TIMEOUT`] per command, at most a quarter of `lease_ttl` in lease
//! mode; [`CONNECT_TIMEOUT`] or twice the call timeout, whichever is shorter,
//! to connect) and reconnects after any failure.

pub mod follow;
pub mod lease;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Ha, HaMode, Redis};
use crate::publishers::metrics::Metrics;
use crate::hub::Hub;
use crate::state::Entry;
use crate::stream::StreamId;

pub use lease::Role;

/// How long connecting to Redis (TCP, TLS, AUTH, SELECT) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command may take before it counts as failed. In lease mode it
/// is at most a quarter of `lease_ttl`, so a renewal always answers (or fails)
/// well before the lease lapses.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(1);

/// The account a stream belongs to, whose lease it follows: the part of its
/// id before `/`, or `default` for the unprefixed ids of the single-account
/// configuration.
pub fn account_of(id: &StreamId) -> &str {
    id.account()
}

/// The names of everything this daemon keeps in Redis.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Names under `prefix`.
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// `{prefix}:stream:{id}`: the stream's state-file JSON.
    pub fn stream(&self, id: &str) -> String {
        format!("{}:stream:{id}", self.prefix)
    }

    /// `{prefix}:events`: one JSON message per change.
    pub fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// `{prefix}:lease:{account}`: the holder's replica id, with a TTL.
    pub fn lease(&self, account: &str) -> String {
        format!("{}:lease:{account}", self.prefix)
    }

    /// `{prefix}:fence:{account}`: the fencing counter, bumped at every acquisition.
    pub fn fence(&self, account: &str) -> String {
        format!("{}:fence:{account}", self.prefix)
    }
}

/// Why a Redis call failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The client's error (connection refused, reset, an error reply, …).
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
}

/// One connection to Redis, made on first use and remade after any failure.
pub struct Link {
    client: redis::Client,
    conn: Option<MultiplexedConnection>,
    /// Bumped at every new connection: a new connection may be to a Redis that
    /// restarted empty.
    connections: u64,
    timeout: Duration,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl Link {
    /// A link to `redis` whose commands time out after `timeout`.
    pub fn new(redis: &Redis, timeout: Duration) -> Result<Link, RemoteError> {
        Ok(Link {
            client: redis.client()?,
            conn: None,
            connections: 0,
            timeout,
        })
    }

    /// Whether a connection is open (none yet, or dropped after a failure).
    pub fn connected(&self) -> bool {
        self.conn.is_some()
    }

    /// How many connections were made so far.
    pub fn connections(&self) -> u64 {
        self.connections
    }

    /// How long connecting may take: [`CONNECT_TIMEOUT`], or twice the call
    /// timeout when that is shorter (short leases).
    fn connect_timeout(&self) -> Duration {
        CONNECT_TIMEOUT.min(self.timeout * 2)
    }

    async fn conn(&mut self) -> Result<MultiplexedConnection, RemoteError> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        let within = self.connect_timeout();
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(within))
            .set_response_timeout(Some(self.timeout));
        let connect = self.client.get_multiplexed_async_connection_with_config(&config);
        let c = tokio::time::timeout(within, connect)
            .await
            .map_err(|_| RemoteError::Timeout(within))??;
        self.conn = Some(c.clone());
        self.connections += 1;
        Ok(c)
    }

    /// Runs `script` with `keys` and `args`, within the timeout.
    pub async fn eval<T: redis::FromRedisValue>(
        &mut self,
        script: &redis::Script,
        keys: &[&str],
        args: &[&str],
    ) -> Result<T, RemoteError> {
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(*k);
        }
        for a in args {
            inv.arg(*a);
        }
        let mut c = self.conn().await?;
        let r = tokio::time::timeout(self.timeout, inv.invoke_async(&mut c)).await;
        self.settle(r)
    }

    /// A subscription to `channel` on a connection of its own, made within
    /// the connect timeout; its messages end when that connection drops.
    pub async fn subscribe(&mut self, channel: &str) -> Result<redis::aio::PubSubStream, RemoteError> {
        let within = self.connect_timeout();
        let subscribe = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok::<_, redis::RedisError>(pubsub.into_on_message())
        };
        Ok(tokio::time::timeout(within, subscribe)
            .await
            .map_err(|_| RemoteError::Timeout(within))??)
    }

    /// Runs one command, within the timeout.
    pub async fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<T, RemoteError> {
        let mut c = self.conn().await?;
        let r = tokio::time::timeout(self.timeout, cmd.query_async(&mut c)).await;
        self.settle(r)
    }

    /// Drops the connection after a failure that may have broken it.
    fn settle<T>(&mut self, r: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>) -> Result<T, RemoteError> {
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                // An error reply (a script error, a wrong type) leaves the connection usable.
                if !matches!(e.kind(), redis::ErrorKind::Server(_)) || e.is_io_error() || e.is_connection_dropped() {
                    self.conn = None;
                }
                Err(e.into())
            }
            Err(_) => {
                self.conn = None;
                Err(RemoteError::Timeout(self.timeout))
            }
        }
    }
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
    metrics: Arc<Metrics>,
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
