//! What the WebSocket sessions share: their timing rules ([`WsConfig`]), the
//! bus that carries events and control orders to every open session
//! ([`Hub::emit`], [`Hub::control`]), the list of open connections, the
//! per-IP connection-attempt budget, and the WebSocket log (connections,
//! subscriptions, pings and cuts; credentials as fingerprints only).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::events::Order;
use super::shared::lock;

/// How many events and control orders a slow session may fall behind before it misses some.
const BUS_DEPTH: usize = 4096;

/// The most WebSocket log entries kept (the oldest are dropped).
const MAX_LOG: usize = 10_000;

/// The WebSocket rules a simulator applies.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// Ping interval override (default: 20 s on the WebSocket API, 3 min on listen-key streams).
    pub ping_every: Option<Duration>,
    /// Pong deadline override (default: 60 s on the WebSocket API, 10 min on listen-key streams).
    pub pong_timeout: Option<Duration>,
    /// Connections end at this age (Binance: 24 h).
    pub max_connection_age: Duration,
    /// Send `serverShutdown` before ending a connection at its maximum age (WebSocket API only).
    pub shutdown_notice: bool,
    /// Scheduled events: one per live subscription at this interval.
    pub events_every: Option<Duration>,
    /// Connection attempts per IP address per [`WsConfig::attempts_window`] (Binance: 300).
    pub attempts_per_ip: u32,
    /// The window of the attempt budget (Binance: 5 minutes).
    pub attempts_window: Duration,
    /// Active subscriptions per WebSocket API session (Binance: 1,000).
    pub max_subscriptions: usize,
}

impl Default for WsConfig {
    fn default() -> WsConfig {
        WsConfig {
            ping_every: None,
            pong_timeout: None,
            max_connection_age: Duration::from_secs(24 * 3600),
            shutdown_notice: false,
            events_every: None,
            attempts_per_ip: 300,
            attempts_window: Duration::from_secs(300),
            max_subscriptions: 1_000,
        }
    }
}

/// Which events reach which subscriptions: `None` fields match any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The API key (account) whose subscriptions get it.
    pub account: Option<String>,
    /// The scope (stream id: `spot`, `usdm-futures`, `cross-margin`, …).
    pub scope: Option<String>,
    /// One connection, by its id.
    pub conn: Option<u64>,
}

impl Target {
    /// Whether a subscription of `account` to `scope` on connection `conn` is targeted.
    pub fn matches(&self, account: &str, scope: &str, conn: u64) -> bool {
        self.account.as_deref().is_none_or(|a| a == account)
            && self.scope.as_deref().is_none_or(|s| s == scope)
            && self.conn.is_none_or(|c| c == conn)
    }
}

/// What travels on the bus.
#[derive(Debug, Clone)]
pub enum Bus {
    /// Data events: `kind` (`None`: the family's next in turn) for `order`, `seq` numbering them.
    Event {
        /// Who gets it.
        target: Target,
        /// The event type, or the family's next in turn.
        kind: Option<String>,
        /// The order reported, for order events.
        order: Box<Order>,
        /// The simulator-wide event number.
        seq: u64,
    },
    /// Ends the targeted listen-key streams with `listenKeyExpired`.
    ExpireKey(Target),
    /// Ends the targeted WebSocket API subscriptions with `eventStreamTerminated`.
    Terminate(Target),
    /// Ends the targeted connections: abruptly (a TCP reset) or cleanly, after `serverShutdown` if asked.
    Cut {
        /// Who.
        target: Target,
        /// A TCP reset, no close frame.
        reset: bool,
        /// Send `serverShutdown` first (WebSocket API connections).
        server_shutdown: bool,
    },
}

/// An open connection, as `GET /_sim/ws` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnInfo {
    /// Its id.
    pub id: u64,
    /// The path it was opened on.
    pub path: String,
    /// The peer's IP address.
    pub peer: String,
    /// When it opened, ms on the simulator's clock.
    pub opened_at_ms: i64,
    /// Its live subscriptions: scope and account fingerprint.
    pub subscriptions: Vec<(String, String)>,
}

/// One WebSocket log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WsLogEntry {
    /// When, ms on the simulator's clock.
    pub at_ms: i64,
    /// The connection.
    pub conn: u64,
    /// What happened: `open`, `refused`, `subscribe`, `unsubscribe`, `ping`, `pong`, `event`, `close`, `cut`, `error`.
    pub what: String,
    /// Details (fingerprints only).
    pub detail: String,
}

/// The state the WebSocket sessions share.
pub struct Hub {
    /// Its rules.
    pub cfg: WsConfig,
    /// Events and control orders.
    bus: broadcast::Sender<Bus>,
    /// The next connection id.
    next_conn: AtomicU64,
    /// The next event number.
    next_seq: AtomicU64,
    /// Open connections.
    conns: Mutex<BTreeMap<u64, ConnInfo>>,
    /// Recent connection attempts per IP.
    attempts: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
    /// The WebSocket log.
    log: Mutex<VecDeque<WsLogEntry>>,
}

impl Hub {
    /// A hub with rules `cfg`.
    pub fn new(cfg: WsConfig) -> Hub {
        Hub {
            cfg,
            bus: broadcast::Sender::new(BUS_DEPTH),
            next_conn: AtomicU64::new(1),
            next_seq: AtomicU64::new(1),
            conns: Mutex::new(BTreeMap::new()),
            attempts: Mutex::new(HashMap::new()),
            log: Mutex::new(VecDeque::new()),
        }
    }

    /// A receiver of everything sent on the bus from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Bus> {
        self.bus.subscribe()
    }

    /// The next event number.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `count` events of `kind` (or each family's next) to `target`; returns their numbers.
    pub fn emit(&self, target: &Target, kind: Option<&str>, count: u32, order: Option<&Order>) -> Vec<u64> {
        (0..count)
            .map(|_| {
                let seq = self.next_seq();
                let order = Box::new(order.cloned().unwrap_or_else(|| Order::synthetic(seq)));
                // No receiver is not an error: nobody is listening.
                let _ = self.bus.send(Bus::Event {
                    target: target.clone(),
                    kind: kind.map(str::to_owned),
                    order,
                    seq,
                });
                seq
            })
            .collect()
    }

    /// Sends a control order; returns how many sessions are open to see it.
    pub fn control(&self, order: Bus) -> usize {
        let _ = self.bus.send(order);
        lock(&self.conns).len()
    }

    /// Counts an attempt from `ip`; false when it is over the budget.
    pub fn attempt(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut all = lock(&self.attempts);
        let seen = all.entry(ip).or_default();
        while seen
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.cfg.attempts_window)
        {
            seen.pop_front();
        }
        if seen.len() >= self.cfg.attempts_per_ip as usize {
            return false;
        }
        seen.push_back(now);
        true
    }

    /// Registers a new connection; returns its id.
    pub fn open(&self, path: &str, peer: IpAddr, at_ms: i64) -> u64 {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let info = ConnInfo {
            id,
            path: path.to_owned(),
            peer: peer.to_string(),
            opened_at_ms: at_ms,
            subscriptions: Vec::new(),
        };
        lock(&self.conns).insert(id, info);
        id
    }

    /// Updates the subscriptions listed for connection `id`.
    pub fn set_subscriptions(&self, id: u64, subs: Vec<(String, String)>) {
        if let Some(c) = lock(&self.conns).get_mut(&id) {
            c.subscriptions = subs;
        }
    }

    /// Forgets connection `id`.
    pub fn close(&self, id: u64) {
        lock(&self.conns).remove(&id);
    }

    /// The open connections.
    pub fn connections(&self) -> Vec<ConnInfo> {
        lock(&self.conns).values().cloned().collect()
    }

    /// Appends to the WebSocket log; returns the entry (for printing).
    pub fn log(&self, at_ms: i64, conn: u64, what: &str, detail: String) -> WsLogEntry {
        let entry = WsLogEntry {
            at_ms,
            conn,
            what: what.to_owned(),
            detail,
        };
        let mut log = lock(&self.log);
        if log.len() >= MAX_LOG {
            log.pop_front();
        }
        log.push_back(entry.clone());
        entry
    }

    /// The WebSocket log, oldest first.
    pub fn entries(&self) -> Vec<WsLogEntry> {
        lock(&self.log).iter().cloned().collect()
    }

    /// Forgets the WebSocket log.
    pub fn clear_log(&self) {
        lock(&self.log).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_bounded_per_ip() {
        let hub = Hub::new(WsConfig {
            attempts_per_ip: 2,
            ..WsConfig::default()
        });
        let (a, b): (IpAddr, IpAddr) = ([127, 0, 0, 1].into(), [127, 0, 0, 2].into());
        assert!(hub.attempt(a) && hub.attempt(a));
        assert!(!hub.attempt(a));
        assert!(hub.attempt(b));
    }

    #[test]
    fn targets() {
        let t = Target {
            scope: Some("spot".into()),
            ..Target::default()
        };
        assert!(t.matches("k", "spot", 1) && !t.matches("k", "usdm-futures", 1));
        assert!(Target::default().matches("any", "any", 9));
    }
}
