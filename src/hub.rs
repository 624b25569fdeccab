//! The hub: every stream's `watch` channel, between the schedulers that
//! publish into it and the publishers that read it; it knows no consumer.
//!
//! Each stream has a `watch` channel holding its latest [`StreamState`]. A
//! scheduler publishes through its [`Publisher`], which replaces the value and
//! wakes the [`Hub`]'s listeners; `watch` never blocks the sender, so a slow
//! consumer can never delay a refresh. Bursts coalesce: a listener that wakes
//! reads the newest state of every stream at once.
//!
//! Every change is also sent, in order, to the hub's event broadcast
//! ([`Hub::events`]), which publishers that need each change (the state-file
//! writer, hooks, the API's event stream, Redis) follow.

use std::sync::Arc;

use tokio::sync::{Notify, broadcast, watch};

use crate::state::StreamState;
use crate::stream::StreamId;

/// A scheduler's handle for publishing its stream's state.
#[derive(Debug)]
pub struct Publisher {
    tx: watch::Sender<StreamState>,
    changed: Arc<Notify>,
    events: broadcast::Sender<StreamState>,
}

/// How many changes the event stream buffers for a slow subscriber before it
/// lags (a lagging subscriber is sent a fresh snapshot instead).
pub const EVENT_BUFFER: usize = 256;

impl Publisher {
    /// Publishes `state` if it differs from the current one.
    pub fn publish(&self, state: StreamState) {
        let changed = self.tx.send_if_modified(|cur| {
            if *cur == state {
                false
            } else {
                *cur = state;
                true
            }
        });
        if changed {
            self.changed.notify_waiters();
            // Clone only for subscribers (the API's event streams); a full
            // buffer drops the oldest for laggards.
            if self.events.receiver_count() > 0 {
                let _ = self.events.send(self.tx.borrow().clone());
            }
        }
    }

    /// The state last published.
    pub fn current(&self) -> StreamState {
        self.tx.borrow().clone()
    }
}

/// Every stream's channel, in config order, and the change signal: what a
/// program that embeds the keeper follows ([`crate::Keeper::hub`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use listenkeyd::config::{Config, Url};
/// use listenkeyd::secret::Secret;
/// use listenkeyd::state::Status;
/// use listenkeyd::stream::{Kind, StreamSpec};
/// use listenkeyd::{Keeper, Options};
/// use tokio_util::sync::CancellationToken;
///
/// let config = Config::builder()
///     .base_url(Url::parse("http://127.0.0.1:9")?) // nothing listens: fine for this example
///     .api_key(Secret::new("my-api-key"))
///     .streams([StreamSpec::account_wide(Kind::UsdmFutures), StreamSpec::isolated_margin("BTCUSDT")])
///     .build()?;
/// let cancel = CancellationToken::new();
/// let keeper = Keeper::start_with(&config, Options { state_file: false, ..Options::default() }, cancel.clone())?;
/// let hub = keeper.hub();
/// let ids: Vec<&str> = hub.ids().map(|id| id.as_str()).collect();
/// assert_eq!(ids, ["usdm-futures", "isolated-margin:BTCUSDT"]);
/// // Before the first answer every stream is `refreshing`, without a value.
/// assert!(hub.snapshot().iter().all(|s| s.status == Status::Refreshing && s.held.is_none()));
/// let mut events = hub.events(); // every change from now on, in order
/// # drop(events.try_recv());
/// cancel.cancel();
/// keeper.join().await;
/// # Ok(())
/// # }
/// ```
///
/// Inside the crate, listeners create and `enable()` a `Notified` from the
/// hub's change signal before reading [`Hub::snapshot`], so no change between
/// the two is missed; a program outside follows [`Hub::subscribe`]'s `watch`
/// receivers or [`Hub::events`].
#[derive(Debug, Clone)]
pub struct Hub {
    streams: Arc<Vec<(StreamId, watch::Receiver<StreamState>)>>,
    changed: Arc<Notify>,
    events: broadcast::Sender<StreamState>,
    /// Stream positions sorted by id: the state file's order.
    by_id: Arc<Vec<usize>>,
}

impl Hub {
    /// A hub for `initial` states; returns it with one publisher per stream, in the same order.
    #[cfg(feature = "test-seams")]
    pub fn new(initial: Vec<StreamState>) -> (Hub, Vec<Publisher>) {
        Hub::create(initial)
    }

    /// A hub for `initial` states; returns it with one publisher per stream, in the same order.
    #[cfg(not(feature = "test-seams"))]
    pub(crate) fn new(initial: Vec<StreamState>) -> (Hub, Vec<Publisher>) {
        Hub::create(initial)
    }

    /// [`Hub::new`].
    fn create(initial: Vec<StreamState>) -> (Hub, Vec<Publisher>) {
        let changed = Arc::new(Notify::new());
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let mut streams = Vec::with_capacity(initial.len());
        let mut publishers = Vec::with_capacity(initial.len());
        for state in initial {
            let id = state.spec.id.clone();
            let (tx, rx) = watch::channel(state);
            streams.push((id, rx));
            publishers.push(Publisher {
                tx,
                changed: changed.clone(),
                events: events.clone(),
            });
        }
        let mut by_id: Vec<usize> = (0..streams.len()).collect();
        by_id.sort_by(|a, b| streams[*a].0.cmp(&streams[*b].0));
        (
            Hub {
                streams: Arc::new(streams),
                changed,
                events,
                by_id: Arc::new(by_id),
            },
            publishers,
        )
    }

    /// A receiver for one stream's state.
    pub fn subscribe(&self, id: &str) -> Option<watch::Receiver<StreamState>> {
        let i = self.position(id)?;
        self.streams.get(i).map(|(_, rx)| rx.clone())
    }

    /// The position (config order) of stream `id`, found in the sorted index
    /// without a scan.
    pub fn position(&self, id: &str) -> Option<usize> {
        let k = self.by_id.binary_search_by(|&i| self.streams[i].0.as_str().cmp(id)).ok()?;
        self.by_id.get(k).copied()
    }

    /// The id of the stream at position `i` (config order).
    pub fn id(&self, i: usize) -> Option<&StreamId> {
        self.streams.get(i).map(|(id, _)| id)
    }

    /// The stream ids, in config order.
    pub fn ids(&self) -> impl Iterator<Item = &StreamId> {
        self.streams.iter().map(|(id, _)| id)
    }

    /// A copy of every stream's current state.
    pub fn snapshot(&self) -> Vec<StreamState> {
        self.streams.iter().map(|(_, rx)| rx.borrow().clone()).collect()
    }

    /// Every change published from now on, in order (for the event stream).
    pub fn events(&self) -> broadcast::Receiver<StreamState> {
        self.events.subscribe()
    }

    /// The number of streams.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether there are no streams.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Stream positions (config order) sorted by stream id: the state file's order.
    pub fn by_id(&self) -> &[usize] {
        &self.by_id
    }

    /// Runs `f` on the current state of the stream at position `i` (config
    /// order), borrowed, not cloned; the stream's publisher waits while `f`
    /// runs, so `f` must be short. `None` if there is no such stream.
    pub fn with<R>(&self, i: usize, f: impl FnOnce(&StreamState) -> R) -> Option<R> {
        self.streams.get(i).map(|(_, rx)| f(&rx.borrow()))
    }

    /// The notifier, for listeners that need to register before checking state.
    pub(crate) fn notifier(&self) -> Arc<Notify> {
        self.changed.clone()
    }
}
