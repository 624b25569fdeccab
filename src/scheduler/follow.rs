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
