//! What standbys serve: the values the holder wrote to Redis, handed to each
//! stream's scheduler through its mirror channel.
//!
//! The follower subscribes to `{prefix}:events` and, while this replica
//! stands by for the stream's account, reads each announced stream with one
//! `GET`: a rotation reaches a standby within a round trip. Announcements are
//! at most once (a dropped connection loses them), so every configured stream
//! is also read with one `MGET` after each (re)subscription, whenever an
//! account turns standby, and every [`RESYNC_EVERY`]. A value that is
//! missing, unreadable or not a credential is left out: the scheduler keeps
//! what it had.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Keys, Link, Role, account_of};
use crate::stream::plausible_credential;
use crate::state::Entry;
use crate::stream::StreamId;

/// How often every stream is read again, announcements or not.
pub const RESYNC_EVERY: Duration = Duration::from_secs(10);
/// The first delay before subscribing again after a failure; doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(200);
/// The longest delay between subscription attempts.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// The follower's parts.
#[derive(Debug)]
pub struct Follow {
    /// Its own connection for reads (the subscription has another).
    pub link: Link,
    /// Key names.
    pub keys: Keys,
    /// Each stream's mirror, in config order.
    pub mirrors: Vec<(StreamId, watch::Sender<Option<Entry>>)>,
    /// This replica's role per account.
    pub gates: HashMap<String, watch::Receiver<Role>>,
}

impl Follow {
    /// Follows the holder's writes until `cancel` fires.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut failures = 0u32;
        let mut gates: Vec<watch::Receiver<Role>> = self.gates.values().cloned().collect();
        let channel = self.keys.events();
        loop {
            let subscribed = tokio::select! {
                _ = cancel.cancelled() => return,
                s = self.link.subscribe(&channel) => s,
            };
            let mut messages = match subscribed {
                Ok(m) => {
                    failures = 0;
                    m
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::debug!(error = %e, "cannot subscribe to the events channel; retrying");
                    let wait = FIRST_RETRY.saturating_mul(1 << failures.min(5)).min(MAX_RETRY);
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(wait) => continue,
                    }
                }
            };
            let mut resync = tokio::time::interval(RESYNC_EVERY);
            resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let connections = self.link.connections();
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = resync.tick() => self.read_all().await,
                    _ = super::any_changed(&mut gates) => self.read_all().await,
                    m = messages.next() => match m {
                        Some(m) => self.announced(&m.get_payload::<String>().unwrap_or_default()).await,
                        None => break,
                    },
                }
                // The reads reconnected (a restarted Redis): the subscription
                // may be dead without knowing it.
                if self.link.connections() != connections && self.link.connections() > 1 {
                    break;
                }
            }
        }
    }

    /// Whether this replica stands by for `id`'s account.
    fn standing_by(&self, id: &StreamId) -> bool {
        self.gates
            .get(account_of(id))
            .is_some_and(|g| *g.borrow() == Role::Standby)
    }

    /// Reads every stream of an account this replica stands by for.
    async fn read_all(&mut self) {
        let wanted: Vec<usize> = (0..self.mirrors.len())
            .filter(|i| self.standing_by(&self.mirrors[*i].0))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let mut mget = redis::cmd("MGET");
        for i in &wanted {
            mget.arg(self.keys.stream(self.mirrors[*i].0.as_str()));
        }
        match self.link.query::<Vec<Option<String>>>(&mget).await {
            Ok(values) => {
                for (i, v) in wanted.into_iter().zip(values) {
                    self.offer(i, v.as_deref());
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the holder's values from Redis"),
        }
    }

    /// Reads the stream an event names, if it is one this replica stands by for.
    async fn announced(&mut self, payload: &str) {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(payload) else {
            return;
        };
        let Some(name) = event["stream"].as_str() else { return };
        let Some(i) = self.mirrors.iter().position(|(id, _)| id.as_str() == name) else {
            return;
        };
        if !self.standing_by(&self.mirrors[i].0) {
            return;
        }
        let get = redis::cmd("GET").arg(self.keys.stream(name)).clone();
        match self.link.query::<Option<String>>(&get).await {
            Ok(v) => self.offer(i, v.as_deref()),
            Err(e) => tracing::debug!(error = %e, "cannot read an announced value from Redis"),
        }
    }

    /// Hands a value read from Redis to stream `i`'s mirror.
    fn offer(&self, i: usize, text: Option<&str>) {
        let Some(text) = text else { return };
        let (id, tx) = &self.mirrors[i];
        let entry = match serde_json::from_str::<Entry>(text) {
            Ok(e) if plausible_credential(&e.value) => e,
            _ => {
                tracing::warn!(stream = %id, "Redis holds an unreadable value for this stream; ignored");
                return;
            }
        };
        tx.send_if_modified(|cur| {
            let changed = cur.as_ref() != Some(&entry);
            if changed {
                *cur = Some(entry);
            }
            changed
        });
    }
}
