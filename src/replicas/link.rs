//! One connection to Redis, and the names of everything this daemon keeps
//! there: what the Redis publisher, the lease and the follower share.
//!
//! Every Redis call goes through a [`Link`], which bounds it with a timeout
//! ([`CALL_TIMEOUT`] per command, at most a quarter of `lease_ttl` in lease
//! mode; [`CONNECT_TIMEOUT`] or twice the call timeout, whichever is shorter,
//! to connect) and reconnects after any failure.

use std::time::Duration;

use redis::aio::MultiplexedConnection;

use crate::config::Redis;
use crate::config::Target;

/// How long connecting to Redis (TCP, TLS, AUTH, SELECT) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command may take before it counts as failed. In lease mode it
/// is at most a quarter of `lease_ttl`, so a renewal always answers (or fails)
/// well before the lease lapses.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(1);

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
/// With Sentinel, each new connection goes to the primary the Sentinels name
/// then, so a promoted replica is followed without a restart.
pub struct Link {
    target: Target,
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
            target: redis.target()?,
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
        let target = &mut self.target;
        let connect = async move {
            target
                .client()
                .await?
                .get_multiplexed_async_connection_with_config(&config)
                .await
        };
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
        let target = &mut self.target;
        let subscribe = async move {
            let mut pubsub = target.client().await?.get_async_pubsub().await?;
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
                // An error reply (a script error, a wrong type) leaves the connection usable;
                // READONLY means the server is now a replica: connect again (to the new
                // primary, with Sentinel).
                let readonly = matches!(e.kind(), redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly));
                if readonly
                    || !matches!(e.kind(), redis::ErrorKind::Server(_))
                    || e.is_io_error()
                    || e.is_connection_dropped()
                {
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

