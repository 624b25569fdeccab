//! What standbys serve: the values the holder wrote to Redis, read back with
//! one `MGET` of every configured stream every third of the lease TTL (at most
//! [`MAX_EVERY`]) while this replica stands by for at least one account, and
//! handed to each stream's scheduler through its mirror channel. A value that
//! is missing, unreadable or not a credential is left out: the scheduler keeps
//! what it had.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Keys, Link, Role};
use crate::binance::answer::plausible_credential;
use crate::state::Entry;
use crate::stream::StreamId;

/// The longest interval between two reads.
pub const MAX_EVERY: Duration = Duration::from_secs(1);

/// The follower's parts.
#[derive(Debug)]
pub struct Follow {
    /// Its own connection.
    pub link: Link,
    /// Key names.
    pub keys: Keys,
    /// How often Redis is read.
    pub every: Duration,
    /// Each stream's mirror, in config order.
    pub mirrors: Vec<(StreamId, watch::Sender<Option<Entry>>)>,
    /// This replica's role per account.
    pub gates: HashMap<String, watch::Receiver<Role>>,
}

impl Follow {
    /// Reads Redis while standing by, until `cancel` fires.
    pub async fn run(mut self, cancel: CancellationToken) {
        let keys: Vec<String> = self
            .mirrors
            .iter()
            .map(|(id, _)| self.keys.stream(id.as_str()))
            .collect();
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            if !standing_by(&self.gates) {
                continue;
            }
            let mut mget = redis::cmd("MGET");
            for k in &keys {
                mget.arg(k);
            }
            let values: Vec<Option<String>> = tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.link.query(&mget) => match r {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot read the holder's values from Redis");
                        continue;
                    }
                },
            };
            for ((id, tx), value) in self.mirrors.iter().zip(values) {
                let Some(text) = value else { continue };
                let entry = match serde_json::from_str::<Entry>(&text) {
                    Ok(e) if plausible_credential(&e.value) => e,
                    _ => {
                        tracing::warn!(stream = %id, "Redis holds an unreadable value for this stream; ignored");
                        continue;
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
    }
}

/// Whether some account waits on another replica.
fn standing_by(gates: &HashMap<String, watch::Receiver<Role>>) -> bool {
    gates.values().any(|g| *g.borrow() == Role::Standby)
}
