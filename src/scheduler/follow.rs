//! A stream whose key is another stream's: on a venue where kinds share one
//! key upstream (Toobit spot and futures, BingX's kinds), the streams of one
//! account in a group are one credential. The first stream of the group in
//! config order keeps it (one create, one keepalive, one close); each of the
//! others follows it: it publishes the same value under its own id and calls
//! the exchange for nothing, so it never closes a key another stream holds.
//!
//! A follower's generations stay its own: they never go back below what the
//! previous run published for its id, and a new value is a new generation.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::LiveGuard;
use crate::hub::Publisher;
use crate::state::StreamState;
use crate::stream::StreamSpec;

/// A stream that publishes what the stream keeping its shared key publishes.
pub struct Follower {
    /// The stream followed for.
    pub spec: Arc<StreamSpec>,
    /// The state of the stream that keeps the key.
    pub leader: watch::Receiver<StreamState>,
    /// Where this stream's states go.
    pub publisher: Publisher,
    /// The highest generation a previous run published for this id.
    pub generation_floor: u64,
    /// Fired on shutdown.
    pub cancel: CancellationToken,
    /// The number of stream tasks running.
    pub live: Arc<std::sync::atomic::AtomicUsize>,
}

impl Follower {
    /// Mirrors the leader's states until cancelled or the leader is gone.
    pub async fn run(mut self) {
        let _live = LiveGuard::new(&self.live);
        let seeded = self.publisher.current();
        // The value last published and its generation here.
        let mut mine: Option<(String, u64)> = seeded.held.map(|h| (h.value, h.generation));
        let mut floor = self.generation_floor.max(mine.as_ref().map_or(0, |m| m.1));
        tracing::debug!(stream = %self.spec.id, "sharing its account's key with another stream");
        loop {
            let mut state = self.leader.borrow_and_update().clone();
            state.spec = self.spec.clone();
            if let Some(h) = state.held.as_mut() {
                let generation = match &mine {
                    Some((value, generation)) if *value == h.value => *generation,
                    _ => (floor + 1).max(h.generation),
                };
                floor = floor.max(generation);
                h.generation = generation;
                mine = Some((h.value.clone(), generation));
            }
            self.publisher.publish(state);
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                r = self.leader.changed() => if r.is_err() { break },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::hub::Hub;
    use crate::state::{Held, Status};
    use crate::stream::{CredentialKind, Kind};

    fn held(value: &str, generation: u64) -> Held {
        let now = SystemTime::now();
        Held {
            value: value.to_owned(),
            generation,
            obtained_at: now,
            refreshed_at: now,
            expires_at: now + Duration::from_secs(60),
            api_key_fp: None,
        }
    }

    /// The generation and status the follower publishes with `want`.
    async fn next(seen: &mut watch::Receiver<StreamState>, want: &str) -> (u64, Status) {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let s = seen.borrow_and_update().clone();
                if let Some(h) = s.held.as_ref().filter(|h| h.value == want) {
                    assert_eq!(s.spec.kind, Kind::Futures, "under the follower's own id");
                    return (h.generation, s.status);
                }
                seen.changed().await.unwrap();
            }
        })
        .await
        .unwrap()
    }

    /// The follower publishes the leader's value under its own id, with
    /// generations that never go below its previous run's.
    #[tokio::test]
    async fn a_follower_publishes_the_leaders_value_with_its_own_generations() {
        let spec = |k| Arc::new(StreamSpec::new(k, None, CredentialKind::ListenKey));
        let (leader_spec, follower_spec) = (spec(Kind::Spot), spec(Kind::Futures));
        let (hub, mut publishers) = Hub::new(vec![
            StreamState::starting(leader_spec.clone()),
            StreamState::starting(follower_spec.clone()),
        ]);
        let follower_pub = publishers.pop().unwrap();
        let leader_pub = publishers.pop().unwrap();
        let mut seen = hub.subscribe(follower_spec.id.as_str()).unwrap();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(
            Follower {
                spec: follower_spec.clone(),
                leader: hub.subscribe(leader_spec.id.as_str()).unwrap(),
                publisher: follower_pub,
                generation_floor: 5,
                cancel: cancel.clone(),
                live: Arc::default(),
            }
            .run(),
        );
        let publish = |value: &str, generation: u64| {
            let mut s = StreamState::starting(leader_spec.clone());
            s.held = Some(held(value, generation));
            s.status = Status::Fresh;
            leader_pub.publish(s);
        };
        publish("k1", 1);
        assert_eq!(next(&mut seen, "k1").await, (6, Status::Fresh), "above the previous run's 5");
        publish("k2", 2);
        assert_eq!(next(&mut seen, "k2").await.0, 7);
        publish("k3", 40);
        assert_eq!(next(&mut seen, "k3").await.0, 40, "never below the leader's");
        cancel.cancel();
        task.await.unwrap();
    }
}
