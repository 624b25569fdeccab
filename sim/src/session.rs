//! One WebSocket connection, from the 101 to its end: a WebSocket API session
//! (requests, subscriptions, events wrapped with their `subscriptionId`) or a
//! listen-key stream (bare events on a raw stream, `{"stream", "data"}` on a
//! combined one). Both ping on the exchange's schedule and end a connection
//! whose pongs stop, end at the maximum connection age, and obey the bus's
//! control orders (cut, terminate, expire); an outage resets them.
//!
//! Every wait is bounded: the loop wakes at least every [`TICK`] to check
//! expiries, the pong deadline and the connection's age, and a send that
//! does not complete within [`SEND_TIMEOUT`] ends the connection.
//!
//! Each connection stamps its events with strictly increasing `E` times
//! (the server time, or one ms past the previous event when the clock has
//! not moved): within a connection, `E` orders events and tells a repeat.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, interval_at, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use super::events::{self, Family, Order};
use super::hub::{Bus, WsLogEntry};
use super::log::fingerprint;
use super::shared::{Shared, lock};
use super::ws::{Allowed, live_keys};
use super::wsapi::{self, ApiError, Call, Method};

/// How often a session checks expiries, its pong deadline and its age.
pub const TICK: Duration = Duration::from_millis(50);

/// The longest a frame may take to be written before the connection is given up.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The WebSocket API's ping interval and pong deadline (Binance: 20 s, 1 minute).
const API_PING: (Duration, Duration) = (Duration::from_secs(20), Duration::from_secs(60));

/// Listen-key streams' ping interval and pong deadline (Binance futures: 3 and 10 minutes).
const STREAM_PING: (Duration, Duration) = (Duration::from_secs(180), Duration::from_secs(600));

/// Options streams' ping interval and pong deadline (Binance options: 5 and 15 minutes).
const OPTIONS_PING: (Duration, Duration) = (Duration::from_secs(300), Duration::from_secs(900));

/// Incoming messages a listen-key stream takes per second (Binance futures: 10).
const STREAM_MESSAGES_PER_SECOND: usize = 10;

/// Subscriptions one WebSocket API session may open over its life (Binance: 65,535).
const LIFETIME_SUBSCRIPTIONS: u32 = 65_535;

/// The socket a session speaks on.
type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// A listen key a stream serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamKey {
    /// The listen key.
    pub key: String,
    /// Its account (API key).
    pub account: String,
    /// Its scope.
    pub scope: String,
}

/// What a connection is.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A WebSocket API session.
    Api,
    /// Listen-key streams: one key with bare events (raw), or any number with
    /// events wrapped in `{"stream": key, "data": …}` (combined).
    Stream {
        /// The keys served.
        keys: Vec<StreamKey>,
        /// Which keys `SUBSCRIBE` may add.
        allowed: Allowed,
        /// A combined stream.
        combined: bool,
    },
}

/// Where an event goes: a WebSocket API subscription or a stream's key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    /// A subscription, by id.
    Sub(u32),
    /// A listen key of a stream.
    Key(String),
}

/// One subscription of a WebSocket API session.
#[derive(Debug, Clone)]
struct Sub {
    /// Made with `userDataStream.subscribe` on a logged-on session (ends at `session.logout`).
    logon: bool,
    /// Its account (API key).
    account: String,
    /// Its scope: `spot`, `cross-margin`, `isolated-margin:SYM`.
    scope: String,
    /// The listen token and its expiry (unskewed ms), for token subscriptions.
    token: Option<(String, i64)>,
}

/// Why a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Keep going.
    No,
    /// Close with this code and reason.
    Close(CloseCode, &'static str),
    /// Abort: a TCP reset, no close frame.
    Reset,
    /// The peer sent a close frame (answered as the connection ends).
    PeerClosed,
    /// The peer went away or the socket failed.
    Gone,
}

/// Prints a WebSocket log entry as a request-log line, when the simulator prints them.
pub fn print(sh: &Shared, e: &WsLogEntry) {
    if sh.log_requests {
        // A closed stdout must not end the session.
        let _ = writeln!(
            std::io::stdout().lock(),
            "WS     conn={} {} {}",
            e.conn,
            e.what,
            e.detail
        );
    }
}

/// A connection's state.
struct Session {
    /// The simulator.
    sh: Arc<Shared>,
    /// The connection id.
    conn: u64,
    /// What it is.
    kind: Kind,
    /// The last event time sent.
    last_e: i64,
    /// Live subscriptions (WebSocket API).
    subs: BTreeMap<u32, Sub>,
    /// The next subscription id.
    next_sub: u32,
    /// Request weight spent.
    weight: u32,
    /// When it opened, server ms.
    opened_at_ms: i64,
    /// The logged-on API key and since when (server ms), after `session.logon`.
    logon: Option<(String, i64)>,
    /// Frames to send, in order.
    out: Vec<Message>,
}

impl Session {
    /// Logs and prints.
    fn log(&self, what: &str, detail: String) {
        let e = self.sh.hub.log(self.sh.server_now(), self.conn, what, detail);
        print(&self.sh, &e);
    }

    /// The next event time: the server time, or one past the last.
    fn stamp(&mut self) -> i64 {
        let e = self.sh.server_now().max(self.last_e.saturating_add(1));
        self.last_e = e;
        e
    }

    /// Queues a JSON frame.
    fn send(&mut self, v: Value) {
        self.out.push(Message::text(v.to_string()));
    }

    /// Queues an event for `slot`: wrapped with its subscription id on the
    /// WebSocket API, with its key on a combined stream, bare on a raw one.
    fn send_event(&mut self, slot: &Slot, event: Value) {
        let framed = match (slot, &self.kind) {
            (Slot::Sub(id), _) => json!({ "subscriptionId": id, "event": event }),
            (Slot::Key(key), Kind::Stream { combined: true, .. }) => json!({ "stream": key, "data": event }),
            (Slot::Key(_), _) => event,
        };
        self.send(framed);
    }

    /// Every subscription or key as (slot, account, scope).
    fn targets(&self) -> Vec<(Slot, String, String)> {
        match &self.kind {
            Kind::Api => self
                .subs
                .iter()
                .map(|(id, s)| (Slot::Sub(*id), s.account.clone(), s.scope.clone()))
                .collect(),
            Kind::Stream { keys, .. } => keys
                .iter()
                .map(|k| (Slot::Key(k.key.clone()), k.account.clone(), k.scope.clone()))
                .collect(),
        }
    }

    /// Tells the hub which subscriptions are live.
    fn publish_subs(&self) {
        let subs = self
            .targets()
            .into_iter()
            .map(|(_, a, s)| (s, fingerprint(&a)))
            .collect();
        self.sh.hub.set_subscriptions(self.conn, subs);
    }

    /// Ends subscription `id` with `eventStreamTerminated`.
    fn terminate(&mut self, id: u32, why: &str) {
        if let Some(s) = self.subs.remove(&id) {
            let e = self.stamp();
            self.send_event(&Slot::Sub(id), events::event_stream_terminated(e));
            self.log("terminated", format!("id={id} stream={} ({why})", s.scope));
            self.publish_subs();
        }
    }

    /// Ends a stream's `key` with `listenKeyExpired`: a raw stream closes,
    /// a combined one drops the key and stays open.
    fn expire_key(&mut self, key: &str) -> End {
        let e = self.stamp();
        let combined = match &mut self.kind {
            Kind::Stream { keys, combined, .. } => {
                keys.retain(|k| k.key != key);
                *combined
            }
            Kind::Api => return End::No,
        };
        self.send_event(&Slot::Key(key.to_owned()), events::listen_key_expired(e, key));
        self.log("expired", format!("key={}", fingerprint(key)));
        self.publish_subs();
        if combined {
            End::No
        } else {
            End::Close(CloseCode::Normal, "listenKey expired")
        }
    }

    /// Ends each of a stream's `matching` keys; the first close it leads to ends the rest.
    fn expire_matching(&mut self, matching: Vec<String>) -> End {
        for key in matching {
            let end = self.expire_key(&key);
            if end != End::No {
                return end;
            }
        }
        End::No
    }

    /// Acts on something from the bus.
    fn on_bus(&mut self, msg: Bus) -> End {
        let conn = self.conn;
        match msg {
            Bus::Event {
                target,
                kind,
                order,
                seq,
            } => {
                let matched: Vec<(Slot, String)> = self
                    .targets()
                    .into_iter()
                    .filter(|(_, a, s)| target.matches(a, s, conn))
                    .map(|(slot, _, s)| (slot, s))
                    .collect();
                for (slot, scope) in matched {
                    match (kind.as_deref(), &slot) {
                        (Some("listenKeyExpired"), Slot::Key(k)) => {
                            let end = self.expire_key(&k.clone());
                            if end != End::No {
                                return end;
                            }
                        }
                        (Some("eventStreamTerminated"), Slot::Sub(id)) => self.terminate(*id, "on demand"),
                        (Some("listenKeyExpired" | "eventStreamTerminated"), _) => {}
                        (Some("serverShutdown"), _) => {
                            let e = self.stamp();
                            self.send(events::server_shutdown(e));
                            self.log("event", "serverShutdown".into());
                        }
                        (k, _) => self.data_event(&slot, &scope, k, &order, seq),
                    }
                }
                End::No
            }
            Bus::ExpireKey(t) => {
                let matching = self
                    .targets()
                    .into_iter()
                    .filter(|(_, a, s)| t.matches(a, s, conn))
                    .filter_map(|(slot, _, _)| match slot {
                        Slot::Key(k) => Some(k),
                        Slot::Sub(_) => None,
                    })
                    .collect();
                self.expire_matching(matching)
            }
            Bus::Terminate(t) => {
                let ids: Vec<u32> = self
                    .subs
                    .iter()
                    .filter(|(_, s)| t.matches(&s.account, &s.scope, conn))
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.terminate(id, "on demand");
                }
                End::No
            }
            Bus::Cut {
                target,
                reset,
                server_shutdown,
            } => {
                let hit = target.conn.is_none_or(|c| c == conn)
                    && (target.account.is_none() && target.scope.is_none()
                        || self.targets().iter().any(|(_, a, s)| target.matches(a, s, conn)));
                if !hit {
                    return End::No;
                }
                if server_shutdown {
                    let e = self.stamp();
                    self.send(events::server_shutdown(e));
                }
                self.log("cut", if reset { "reset" } else { "close" }.into());
                if reset {
                    End::Reset
                } else {
                    End::Close(CloseCode::Away, "")
                }
            }
        }
    }

    /// Queues a data event of `kind` (or the family's turn) for `slot`.
    fn data_event(&mut self, slot: &Slot, scope: &str, kind: Option<&str>, order: &Order, seq: u64) {
        let family = Family::of_scope(scope);
        let kinds = family.kinds();
        let kind = kind.unwrap_or(kinds[(seq as usize) % kinds.len()]);
        let e = self.stamp();
        if let Some(ev) = events::build(family, kind, e, seq, order) {
            self.send_event(slot, ev);
            let to = match slot {
                Slot::Sub(id) => format!("id={id}"),
                Slot::Key(k) => format!("key={}", fingerprint(k)),
            };
            self.log("event", format!("{to} stream={scope} e={kind} E={e} seq={seq}"));
        }
    }

    /// Checks expiries: a stream's keys, the session's tokens.
    fn check_expiry(&mut self) -> End {
        let now = self.sh.now();
        if let Kind::Stream { keys, .. } = &self.kind {
            let dead = {
                let mut store = lock(&self.sh.store);
                keys.iter()
                    .filter(|k| {
                        store
                            .lookup(&k.key, now)
                            .is_none_or(|l| l.account != k.account || l.scope != k.scope)
                    })
                    .map(|k| k.key.clone())
                    .collect()
            };
            return self.expire_matching(dead);
        }
        let dead: Vec<u32> = {
            let mut store = lock(&self.sh.store);
            self.subs
                .iter()
                .filter(|(_, s)| {
                    s.token
                        .as_ref()
                        .is_some_and(|(t, exp)| *exp <= now || store.lookup(t, now).is_none())
                })
                .map(|(id, _)| *id)
                .collect()
        };
        for id in dead {
            self.terminate(id, "listen token expired");
        }
        End::No
    }

    /// Answers one WebSocket API request frame.
    fn on_text(&mut self, text: &str) {
        if let Kind::Stream { .. } = self.kind {
            let answer = match wsapi::stream_request(text) {
                Ok(call) => self.stream_call(call),
                Err(answer) => answer,
            };
            self.send(answer);
            return;
        }
        match wsapi::parse(text) {
            Ok(call) => {
                let (id, wanted) = (call.id.clone(), wsapi::rate_limits_wanted(&call.params));
                self.weight = self.weight.saturating_add(call.method.weight());
                let limits = wanted.then_some(self.weight);
                let method = call.method;
                let answer = match self.call(call) {
                    Ok(result) => wsapi::ok_answer(&id, result, limits),
                    Err(e) => {
                        self.log("error", format!("{method:?} {} {}", e.code, e.msg));
                        e.answer(&id)
                    }
                };
                // The answer goes before any event the call produced.
                self.out.insert(0, Message::text(answer.to_string()));
            }
            Err((id, e)) => {
                self.log("error", format!("{} {}", e.code, e.msg));
                self.send(e.answer(&id));
            }
        }
    }

    /// Answers a stream's `SUBSCRIBE` (which adds the live listen keys the
    /// path serves), `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS` and the rest.
    fn stream_call(&mut self, call: wsapi::StreamCall) -> Value {
        let Kind::Stream { allowed, .. } = self.kind else {
            return Value::Null;
        };
        let result = match call.method {
            "SUBSCRIBE" => {
                let added = live_keys(&self.sh, &call.params, allowed);
                if let Kind::Stream { keys, .. } = &mut self.kind {
                    for k in added {
                        if keys.len() >= wsapi::MAX_STREAM_PARAMS {
                            return json!({
                                "error": { "code": 2, "msg": "Invalid request: a connection listens to at most 1024 streams" },
                                "id": call.id
                            });
                        }
                        if !keys.iter().any(|have| have.key == k.key) {
                            keys.push(k);
                        }
                    }
                }
                self.publish_subs();
                self.log("subscribe", format!("{} name(s)", call.params.len()));
                Value::Null
            }
            "UNSUBSCRIBE" => {
                if let Kind::Stream { keys, .. } = &mut self.kind {
                    keys.retain(|k| !call.params.contains(&k.key));
                }
                self.publish_subs();
                self.log("unsubscribe", format!("{} name(s)", call.params.len()));
                Value::Null
            }
            "LIST_SUBSCRIPTIONS" => match &self.kind {
                Kind::Stream { keys, .. } => json!(keys.iter().map(|k| k.key.as_str()).collect::<Vec<_>>()),
                Kind::Api => Value::Null,
            },
            "REQUEST" => json!([]),
            _ => Value::Null,
        };
        json!({ "result": result, "id": call.id })
    }

    /// Runs one request; events it produces are queued, the result returned.
    fn call(&mut self, c: Call) -> Result<Value, ApiError> {
        let sh = self.sh.clone();
        match c.method {
            Method::Ping => Ok(json!({})),
            Method::Time => Ok(json!({ "serverTime": sh.server_now() })),
            Method::SessionStatus => Ok(self.status()),
            Method::SessionLogon => {
                let account = super::wsauth::check_signature(&sh, &c.params)?;
                self.log("logon", format!("api-key={}", fingerprint(&account)));
                self.logon = Some((account, sh.server_now()));
                Ok(self.status())
            }
            Method::SessionLogout => {
                self.logon = None;
                let ids: Vec<u32> = self.subs.iter().filter(|(_, s)| s.logon).map(|(id, _)| *id).collect();
                for id in ids {
                    self.terminate(id, "session.logout");
                }
                self.publish_subs();
                Ok(self.status())
            }
            Method::SessionSubscriptions => Ok(Value::Array(
                self.subs.keys().map(|id| json!({ "subscriptionId": id })).collect(),
            )),
            Method::SubscribeLogon => {
                let Some((account, _)) = self.logon.clone() else {
                    return Err(ApiError {
                        status: 401,
                        code: -1002,
                        msg: "You are not authorized to execute this request.".into(),
                    });
                };
                let id = self.add_sub(account, "spot".into(), None)?;
                if let Some(s) = self.subs.get_mut(&id) {
                    s.logon = true;
                }
                Ok(json!({ "subscriptionId": id }))
            }
            Method::Unsubscribe => {
                let ids: Vec<u32> = match wsapi::subscription_id(&c.params)? {
                    Some(id) if self.subs.contains_key(&id) => vec![id],
                    Some(_) => return Err(ApiError::bad(-2036, "User Data Stream subscription not active.")),
                    None => self.subs.keys().copied().collect(),
                };
                for id in ids {
                    self.terminate(id, "unsubscribed");
                }
                self.publish_subs();
                Ok(json!({}))
            }
            Method::SubscribeSignature => {
                let account = super::wsauth::check_signature(&sh, &c.params)?;
                let id = self.add_sub(account, "spot".into(), None)?;
                Ok(json!({ "subscriptionId": id }))
            }
            Method::SubscribeListenToken => {
                let token = wsapi::text_param(&c.params, "listenToken")?;
                let found = lock(&sh.store).lookup(&token, sh.now());
                let Some(l) = found.filter(|l| l.token) else {
                    return Err(ApiError::bad(-1209, "Invalid listenToken."));
                };
                let expiration = l.expires_at.saturating_add(sh.skew_ms());
                // A new token for a subscribed account renews that subscription.
                let renewed = self
                    .subs
                    .iter_mut()
                    .find(|(_, s)| s.account == l.account && s.scope == l.scope && s.token.is_some());
                if let Some((id, s)) = renewed {
                    s.token = Some((token.clone(), l.expires_at));
                    let id = *id;
                    self.log(
                        "subscribe",
                        format!("id={id} stream={} renewed token={}", l.scope, fingerprint(&token)),
                    );
                    return Ok(json!({ "subscriptionId": id, "expirationTime": expiration }));
                }
                let id = self.add_sub(l.account, l.scope, Some((token, l.expires_at)))?;
                Ok(json!({ "subscriptionId": id, "expirationTime": expiration }))
            }
        }
    }

    /// `session.status`'s result (also `session.logon`'s and `session.logout`'s).
    fn status(&self) -> Value {
        let (key, since) = match &self.logon {
            Some((k, t)) => (json!(k), json!(t)),
            None => (Value::Null, Value::Null),
        };
        json!({
            "apiKey": key, "authorizedSince": since, "connectedSince": self.opened_at_ms,
            "returnRateLimits": true, "serverTime": self.sh.server_now(),
            "userDataStream": !self.subs.is_empty()
        })
    }

    /// Adds a subscription under the session's rules; returns its id.
    fn add_sub(&mut self, account: String, scope: String, token: Option<(String, i64)>) -> Result<u32, ApiError> {
        if self.subs.values().any(|s| s.account == account && s.scope == scope) {
            return Err(ApiError::bad(-2035, "User Data Stream subscription already active."));
        }
        if self.subs.len() >= self.sh.hub.cfg.max_subscriptions {
            return Err(ApiError::bad(
                -1013,
                format!(
                    "Too many active subscriptions; current limit is {} per session.",
                    self.sh.hub.cfg.max_subscriptions
                ),
            ));
        }
        if self.next_sub >= LIFETIME_SUBSCRIPTIONS {
            return Err(ApiError::bad(
                -1013,
                "This session has reached its 65535 subscriptions.",
            ));
        }
        let id = self.next_sub;
        self.next_sub += 1;
        let how = match &token {
            Some((t, _)) => format!("token={}", fingerprint(t)),
            None => "signed".into(),
        };
        self.log(
            "subscribe",
            format!("id={id} stream={scope} api-key={} {how}", fingerprint(&account)),
        );
        self.subs.insert(
            id,
            Sub {
                logon: false,
                account,
                scope,
                token,
            },
        );
        self.publish_subs();
        Ok(id)
    }
}

/// Writes the queued frames; false when the socket failed or stalled.
async fn flush(ws: &mut Socket, s: &mut Session) -> bool {
    for msg in std::mem::take(&mut s.out) {
        if !matches!(timeout(SEND_TIMEOUT, ws.send(msg)).await, Ok(Ok(()))) {
            return false;
        }
    }
    true
}

/// Serves connection `conn` (its socket, and its receiver on the bus) until
/// it ends; `reset` makes its socket end with a TCP reset.
pub async fn run(
    sh: Arc<Shared>,
    conn: u64,
    kind: Kind,
    (mut ws, mut bus): (Socket, Receiver<Bus>),
    reset: Arc<AtomicBool>,
    open: CancellationToken,
) {
    let cfg = sh.hub.cfg.clone();
    let api = matches!(kind, Kind::Api);
    let options_only =
        matches!(&kind, Kind::Stream { keys, .. } if !keys.is_empty() && keys.iter().all(|k| k.scope == "options"));
    let (ping_default, pong_default) = match (api, options_only) {
        (true, _) => API_PING,
        (false, true) => OPTIONS_PING,
        (false, false) => STREAM_PING,
    };
    let ping_every = cfg.ping_every.unwrap_or(ping_default).max(Duration::from_millis(10));
    let pong_timeout = cfg.pong_timeout.unwrap_or(pong_default);
    let start = Instant::now();
    let mut ping = interval_at(start + ping_every, ping_every);
    let mut tick = interval_at(start + TICK, TICK);
    let mut scheduled = cfg.events_every.map(|d| {
        let d = d.max(Duration::from_millis(10));
        interval_at(start + d, d)
    });
    let age_limit = start + cfg.max_connection_age;
    // Payloads of unanswered pings, and when the oldest was sent.
    let mut unanswered: VecDeque<Vec<u8>> = VecDeque::new();
    let mut waiting_since: Option<Instant> = None;
    // When the last incoming messages came, for the streams' rate limit.
    let mut incoming: VecDeque<Instant> = VecDeque::new();
    let mut pings: u64 = 0;
    let mut s = Session {
        opened_at_ms: sh.server_now(),
        sh,
        conn,
        kind,
        last_e: 0,
        subs: BTreeMap::new(),
        next_sub: 0,
        weight: 2,
        logon: None,
        out: Vec::new(),
    };
    s.publish_subs();
    let end = loop {
        let mut end = End::No;
        tokio::select! {
            () = open.cancelled() => end = End::Reset,
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    // Streams take at most 10 incoming messages a second (Binance
                    // disconnects a client past that); the WebSocket API is bounded by weight.
                    let now = Instant::now();
                    incoming.push_back(now);
                    while incoming.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
                        incoming.pop_front();
                    }
                    if !api && incoming.len() > STREAM_MESSAGES_PER_SECOND {
                        s.log("cut", "more than 10 incoming messages in a second".into());
                        end = End::Close(CloseCode::Policy, "too many messages");
                    } else {
                        s.on_text(t.as_str());
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    s.log("error", "binary frame".into());
                    if api {
                        s.send(ApiError::bad(-1135, "Invalid JSON Request").answer(&Value::Null));
                    } else {
                        if let Err(answer) = wsapi::stream_request("") {
                            s.send(answer);
                        }
                    }
                }
                Some(Ok(Message::Ping(_))) => s.log("ping", "from client".into()),
                Some(Ok(Message::Pong(p))) => {
                    // The WebSocket API counts only a pong that echoes a ping;
                    // futures streams take unsolicited pongs as keepalives too.
                    if let Some(i) = unanswered.iter().position(|u| u.as_slice() == p.as_ref()) {
                        unanswered.drain(..=i);
                        waiting_since = None;
                        s.log("pong", String::new());
                    } else if !api {
                        unanswered.clear();
                        waiting_since = None;
                        s.log("pong", "unsolicited (a keepalive on streams)".into());
                    } else {
                        s.log("pong", "unsolicited (does not count)".into());
                    }
                }
                Some(Ok(Message::Close(_))) => end = End::PeerClosed,
                None => end = End::Gone,
                Some(Ok(Message::Frame(_))) => {}
                Some(Err(WsError::Capacity(e))) => {
                    s.log("error", format!("frame too large: {e}"));
                    if api {
                        s.send(ApiError::bad(-1135, "Invalid JSON Request: message too large").answer(&Value::Null));
                    }
                    end = End::Close(CloseCode::Size, "message too large");
                }
                Some(Err(e)) => {
                    s.log("error", format!("protocol: {e}"));
                    end = End::Gone;
                }
            },
            msg = bus.recv() => match msg {
                Ok(m) => end = s.on_bus(m),
                Err(RecvError::Lagged(n)) => s.log("error", format!("fell behind: {n} events and orders missed")),
                Err(RecvError::Closed) => end = End::Gone,
            },
            _ = ping.tick() => {
                pings += 1;
                let payload = pings.to_string().into_bytes();
                unanswered.push_back(payload.clone());
                if unanswered.len() > 64 {
                    unanswered.pop_front();
                }
                waiting_since.get_or_insert_with(Instant::now);
                s.out.push(Message::Ping(payload.into()));
                s.log("ping", format!("#{pings}"));
            }
            _ = async { match scheduled.as_mut() { Some(i) => { i.tick().await; } None => std::future::pending().await } } => {
                let seq = s.sh.hub.next_seq();
                let order = Order::synthetic(seq);
                for (slot, _, scope) in s.targets() {
                    s.data_event(&slot, &scope, None, &order, seq);
                }
            }
            _ = tick.tick() => {
                end = s.check_expiry();
                if end == End::No && waiting_since.is_some_and(|t| t.elapsed() >= pong_timeout) {
                    s.log("cut", "no pong in time".into());
                    end = End::Close(CloseCode::Policy, "pong timeout");
                }
                if end == End::No && Instant::now() >= age_limit {
                    if api && cfg.shutdown_notice {
                        let e = s.stamp();
                        s.send(events::server_shutdown(e));
                    }
                    s.log("cut", "maximum connection age".into());
                    end = End::Close(CloseCode::Away, "maximum connection age");
                }
            }
        }
        if matches!(end, End::Reset | End::Gone | End::PeerClosed) {
            break end;
        }
        if !flush(&mut ws, &mut s).await {
            break End::Gone;
        }
        if end != End::No {
            break end;
        }
    };
    match end {
        End::Close(code, reason) => {
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            // Bounded: a peer that stops reading must not hold the task.
            let _ = timeout(SEND_TIMEOUT, ws.close(Some(frame))).await;
            s.log("close", format!("{code} {reason}"));
        }
        End::Reset => {
            reset.store(true, Ordering::SeqCst);
            s.log("close", "reset".into());
        }
        End::PeerClosed => {
            // The close frame's answer, queued by the protocol, goes out now.
            let _ = timeout(SEND_TIMEOUT, ws.flush()).await;
            s.log("close", "by peer".into());
        }
        End::Gone | End::No => s.log("close", "connection lost".into()),
    }
    s.sh.hub.close(conn);
}
