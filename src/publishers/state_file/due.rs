//! When the state file must next be written: the writer follows every change
//! the hub publishes and sorts it ([`FileChange`]). A new value or status must
//! reach the file at once, while a keepalive that only moves `expires_at`
//! later may wait (the file then under-states the expiry, which is always
//! safe), so thousands of keepalives share one write of the file.

use std::time::{Duration, SystemTime};

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use crate::hub::Hub;
use crate::state::StreamState;

/// The longest a keepalive-only change waits before the state file shows it.
pub const KEEPALIVE_WRITE_DELAY: Duration = Duration::from_secs(300);

/// What a change means for the state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileChange {
    /// Nothing the file shows changed (only the scheduler's own plan).
    None,
    /// Only `refreshed_at` and a later `expires_at` changed: the file must show
    /// it by this time, before the expiry it still shows comes near.
    By(SystemTime),
    /// A new value, status or error, or an earlier expiry: the file must show it at once.
    Now,
}

impl FileChange {
    /// How the state file must follow the change from `old` to `new`.
    ///
    /// A keepalive-only change is due after half of the time the old expiry
    /// still had left, at most [`KEEPALIVE_WRITE_DELAY`] after the keepalive:
    /// until then the file keeps the old, earlier expiry, which stays in the
    /// future, so `listenkeyd health` on the file stays true.
    pub fn between(old: &StreamState, new: &StreamState) -> FileChange {
        if old.spec != new.spec || old.status != new.status || old.last_error != new.last_error
            || old.error_class != new.error_class
        {
            return FileChange::Now;
        }
        match (&old.held, &new.held) {
            (None, None) => FileChange::None,
            (Some(a), Some(b))
                if a.value == b.value
                    && a.generation == b.generation
                    && a.obtained_at == b.obtained_at
                    && a.api_key_fp == b.api_key_fp =>
            {
                if a.refreshed_at == b.refreshed_at && a.expires_at == b.expires_at {
                    return FileChange::None;
                }
                if b.expires_at < a.expires_at {
                    return FileChange::Now;
                }
                let from = b.refreshed_at.max(a.refreshed_at);
                match a.expires_at.duration_since(from) {
                    Ok(left) if !left.is_zero() => FileChange::By(from + (left / 2).min(KEEPALIVE_WRITE_DELAY)),
                    _ => FileChange::Now,
                }
            }
            _ => FileChange::Now,
        }
    }
}

/// The writer's view of the hub's changes: each stream's state as last
/// published, and the broadcast that brings the next ones.
#[derive(Debug)]
pub(crate) struct Changes {
    events: broadcast::Receiver<StreamState>,
    seen: Vec<StreamState>,
}

impl Changes {
    /// Follows `hub` from now on.
    pub(crate) fn follow(hub: &Hub) -> Changes {
        let events = hub.events();
        Changes {
            events,
            seen: hub.snapshot(),
        }
    }

    /// The time by which the file must show the changes received since the
    /// last call (`None`: nothing to show); the epoch means at once.
    pub(crate) fn take(&mut self, hub: &Hub) -> Option<SystemTime> {
        let mut due = None;
        loop {
            let at = match self.events.try_recv() {
                Ok(state) => self.sort(hub, state),
                Err(TryRecvError::Lagged(_)) => self.lagged(hub),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return due,
            };
            due = earliest(due, at);
        }
    }

    /// Waits for the next change and returns when the file must show it
    /// (`None`: it shows nothing new). Cancel safe: a change is taken only
    /// when this returns.
    pub(crate) async fn next(&mut self, hub: &Hub) -> Option<SystemTime> {
        match self.events.recv().await {
            Ok(state) => self.sort(hub, state),
            Err(RecvError::Lagged(_)) => self.lagged(hub),
            Err(RecvError::Closed) => std::future::pending().await,
        }
    }

    /// Sorts one change against the stream's previous state.
    fn sort(&mut self, hub: &Hub, state: StreamState) -> Option<SystemTime> {
        let i = hub.position(state.spec.id.as_str())?;
        let old = self.seen.get_mut(i)?;
        let change = FileChange::between(old, &state);
        *old = state;
        match change {
            FileChange::None => None,
            FileChange::By(at) => Some(at),
            FileChange::Now => Some(SystemTime::UNIX_EPOCH),
        }
    }

    /// Changes were missed: take every state afresh and write at once.
    fn lagged(&mut self, hub: &Hub) -> Option<SystemTime> {
        self.seen = hub.snapshot();
        Some(SystemTime::UNIX_EPOCH)
    }
}

/// The earlier of two due times.
fn earliest(a: Option<SystemTime>, b: Option<SystemTime>) -> Option<SystemTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
