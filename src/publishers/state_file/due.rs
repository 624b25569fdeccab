//! When the state file must next be written: the writer follows every change
//! the hub publishes and sorts it ([`FileChange`]). A new value or status must
//! reach the file at once, while a keepalive that only moves `expires_at`
//! later may wait (the file then under-states the expiry, which is always
//! safe), so thousands of keepalives share one write of the file.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use crate::hub::Hub;
use crate::state::StreamState;
use crate::stream::StreamSpec;

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

/// What the writer remembers of a stream's last state: enough to sort the
/// next change, a few dozen bytes instead of a copy of the state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    /// Which stream (the hub's own, shared spec).
    spec: Arc<StreamSpec>,
    /// A hash of everything whose change must reach the file at once: the
    /// status, the error and its class, and the held value's identity (the
    /// value, its generation, when it was obtained, the key's fingerprint).
    identity: u64,
    /// The held value's `refreshed_at` and `expires_at`, when there is one.
    times: Option<(SystemTime, SystemTime)>,
}

impl Seen {
    /// What to remember of `s`.
    fn of(s: &StreamState) -> Seen {
        let mut h = std::hash::DefaultHasher::new();
        (s.status.as_str(), &s.last_error, s.error_class).hash(&mut h);
        s.held
            .as_ref()
            .map(|v| (&v.value, v.generation, v.obtained_at, &v.api_key_fp))
            .hash(&mut h);
        Seen {
            spec: s.spec.clone(),
            identity: h.finish(),
            times: s.held.as_ref().map(|v| (v.refreshed_at, v.expires_at)),
        }
    }

    /// How the state file must follow the change from `self` to `new`.
    ///
    /// A keepalive-only change is due after half of the time the old expiry
    /// still had left, at most [`KEEPALIVE_WRITE_DELAY`] after the keepalive:
    /// until then the file keeps the old, earlier expiry, which stays in the
    /// future, so `listenkeyd health` on the file stays true.
    fn change_to(&self, new: &Seen) -> FileChange {
        if self.spec != new.spec || self.identity != new.identity {
            return FileChange::Now;
        }
        match (self.times, new.times) {
            (None, None) => FileChange::None,
            (Some((a_refreshed, a_expires)), Some((b_refreshed, b_expires))) => {
                if a_refreshed == b_refreshed && a_expires == b_expires {
                    return FileChange::None;
                }
                if b_expires < a_expires {
                    return FileChange::Now;
                }
                let from = b_refreshed.max(a_refreshed);
                match a_expires.duration_since(from) {
                    Ok(left) if !left.is_zero() => FileChange::By(from + (left / 2).min(KEEPALIVE_WRITE_DELAY)),
                    _ => FileChange::Now,
                }
            }
            _ => FileChange::Now,
        }
    }
}

/// The writer's view of the hub's changes: what it remembers of each
/// stream's last published state, and the broadcast that brings the next ones.
#[derive(Debug)]
pub(crate) struct Changes {
    events: broadcast::Receiver<StreamState>,
    seen: Vec<Seen>,
}

impl Changes {
    /// Follows `hub` from now on.
    pub(crate) fn follow(hub: &Hub) -> Changes {
        let events = hub.events();
        Changes {
            events,
            seen: hub.snapshot().iter().map(Seen::of).collect(),
        }
    }

    /// The time by which the file must show the changes received since the
    /// last call (`None`: nothing to show); the epoch means at once.
    pub(crate) fn take(&mut self, hub: &Hub) -> Option<SystemTime> {
        let mut due = None;
        loop {
            let at = match self.events.try_recv() {
                Ok(state) => self.sort(hub, &state),
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
            Ok(state) => self.sort(hub, &state),
            Err(RecvError::Lagged(_)) => self.lagged(hub),
            Err(RecvError::Closed) => std::future::pending().await,
        }
    }

    /// Sorts one change against the stream's previous state.
    fn sort(&mut self, hub: &Hub, state: &StreamState) -> Option<SystemTime> {
        let i = hub.position(state.spec.id.as_str())?;
        let old = self.seen.get_mut(i)?;
        let new = Seen::of(state);
        let change = old.change_to(&new);
        *old = new;
        match change {
            FileChange::None => None,
            FileChange::By(at) => Some(at),
            FileChange::Now => Some(SystemTime::UNIX_EPOCH),
        }
    }

    /// Changes were missed: take every state afresh and write at once.
    fn lagged(&mut self, hub: &Hub) -> Option<SystemTime> {
        self.seen = hub.snapshot().iter().map(Seen::of).collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reason::ErrorClass;
    use crate::state::{Held, Status};
    use crate::stream::{CredentialKind, Kind};

    fn change(old: &StreamState, new: &StreamState) -> FileChange {
        Seen::of(old).change_to(&Seen::of(new))
    }

    #[test]
    fn each_change_is_sorted_as_the_file_needs_it() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let min = Duration::from_secs(60);
        let spec = Arc::new(StreamSpec::new(Kind::UsdmFutures, None, CredentialKind::ListenKey));
        let mut old = StreamState::starting(spec);
        old.status = Status::Fresh;
        old.held = Some(Held {
            value: "k".repeat(64),
            generation: 1,
            obtained_at: t,
            refreshed_at: t,
            expires_at: t + 60 * min,
            api_key_fp: None,
        });
        let with = |f: &dyn Fn(&mut StreamState)| {
            let mut s = old.clone();
            f(&mut s);
            s
        };
        // Only the plan moved: nothing to write.
        assert_eq!(change(&old, &with(&|s| s.next_at = Some(t))), FileChange::None);
        // A keepalive 30 minutes in: due after half of the 30 minutes left, at most 5 minutes.
        let kept = with(&|s| {
            let h = s.held.as_mut().unwrap();
            h.refreshed_at = t + 30 * min;
            h.expires_at = t + 90 * min;
        });
        assert_eq!(change(&old, &kept), FileChange::By(t + 30 * min + KEEPALIVE_WRITE_DELAY));
        // A new value, an earlier expiry, a status, an error class: at once.
        let new_value = with(&|s| s.held.as_mut().unwrap().value = "n".repeat(64));
        let earlier = with(&|s| s.held.as_mut().unwrap().expires_at = t + 10 * min);
        let stale = with(&|s| s.status = Status::Stale);
        let classed = with(&|s| s.error_class = Some(ErrorClass::Transient));
        for new in [new_value, earlier, stale, classed] {
            assert_eq!(change(&old, &new), FileChange::Now, "{new:?}");
        }
    }
}
