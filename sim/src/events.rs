//! User-data events with the exchange's field names and types: spot and
//! margin (`executionReport`, `outboundAccountPosition`, `balanceUpdate`),
//! futures (`ORDER_TRADE_UPDATE`, `ACCOUNT_UPDATE`), the margin risk stream
//! (`MARGIN_LEVEL_STATUS_CHANGE`, `USER_LIABILITY_CHANGE`) and the stream's
//! own (`listenKeyExpired`, `eventStreamTerminated`, `serverShutdown`).
//!
//! Which events a stream carries follows its family ([`Family`], from the
//! scope of the key or token). COIN-M and options carry the USD-M shapes
//! (close enough for a client's plumbing, not for its maths); portfolio
//! margin carries both the futures events, marked `"fs": "UM"`, and the
//! margin ones.
//! Prices and quantities are strings and ids are numbers, as on Binance.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The event shapes a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Spot, cross and isolated margin: `executionReport` and friends.
    Spot,
    /// USD-M, COIN-M, portfolio margin, options: `ORDER_TRADE_UPDATE`, `ACCOUNT_UPDATE`.
    Futures,
    /// The margin risk stream.
    Risk,
    /// Portfolio margin: futures events marked `"fs": "UM"`, and margin events.
    PortfolioMargin,
}

impl Family {
    /// The family of a scope (stream id).
    pub fn of_scope(scope: &str) -> Family {
        match scope {
            "spot" | "cross-margin" => Family::Spot,
            s if s.starts_with("isolated-margin") => Family::Spot,
            "margin-risk" => Family::Risk,
            "portfolio-margin" => Family::PortfolioMargin,
            _ => Family::Futures,
        }
    }

    /// The event types it carries, in the order the schedule cycles through them.
    pub fn kinds(self) -> &'static [&'static str] {
        match self {
            Family::Spot => &["executionReport", "outboundAccountPosition", "balanceUpdate"],
            Family::Futures => &["ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE"],
            Family::Risk => &["MARGIN_LEVEL_STATUS_CHANGE", "USER_LIABILITY_CHANGE"],
            Family::PortfolioMargin => &[
                "ORDER_TRADE_UPDATE",
                "ACCOUNT_UPDATE",
                "executionReport",
                "outboundAccountPosition",
                "balanceUpdate",
            ],
        }
    }
}

/// The event types `POST /_sim/events` may name that end something rather than carry data.
pub const CONTROL_KINDS: [&str; 3] = ["listenKeyExpired", "eventStreamTerminated", "serverShutdown"];

/// Whether `kind` is an event type the simulator can produce.
pub fn known_kind(kind: &str) -> bool {
    CONTROL_KINDS.contains(&kind)
        || [Family::Spot, Family::Futures, Family::Risk, Family::PortfolioMargin]
            .iter()
            .any(|f| f.kinds().contains(&kind))
}

/// An order whose events a stream reports (from a test order or made up by the schedule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The symbol, e.g. `BTCUSDT`.
    pub symbol: String,
    /// `BUY` or `SELL`.
    pub side: String,
    /// `LIMIT`, `MARKET`, …
    pub order_type: String,
    /// The quantity, as sent.
    pub quantity: String,
    /// The price, as sent (`0` for market orders).
    pub price: String,
    /// The exchange's order id.
    pub order_id: u64,
    /// The client's order id.
    pub client_order_id: String,
    /// `NEW` or `TRADE` (a fill of the whole quantity).
    pub execution: String,
}

impl Order {
    /// A made-up order with id `seq`, for scheduled and on-demand events.
    pub fn synthetic(seq: u64) -> Order {
        Order {
            symbol: "BTCUSDT".into(),
            side: if seq % 2 == 0 { "BUY" } else { "SELL" }.into(),
            order_type: "LIMIT".into(),
            quantity: "0.001".into(),
            price: "60000.00".into(),
            order_id: seq,
            client_order_id: format!("sim-{seq}"),
            execution: "NEW".into(),
        }
    }

    /// Its status for its execution type.
    fn status(&self) -> &'static str {
        if self.execution == "TRADE" { "FILLED" } else { "NEW" }
    }

    /// The quantity filled by this event, and in total.
    fn filled(&self) -> &str {
        if self.execution == "TRADE" { &self.quantity } else { "0" }
    }
}

/// The event of type `kind` at event time `e` (ms), the `seq`-th the
/// simulator produced; `order` is reported by order events. `None` when the
/// family does not carry that type.
pub fn build(family: Family, kind: &str, e: i64, seq: u64, order: &Order) -> Option<Value> {
    if !family.kinds().contains(&kind) {
        return None;
    }
    if family == Family::PortfolioMargin {
        let mut ev =
            build(Family::Futures, kind, e, seq, order).or_else(|| build(Family::Spot, kind, e, seq, order))?;
        if let (true, Some(obj)) = (
            kind.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
            ev.as_object_mut(),
        ) {
            obj.insert("fs".into(), json!("UM"));
        }
        return Some(ev);
    }
    let filled = order.filled();
    let last_price = if order.execution == "TRADE" {
        order.price.as_str()
    } else {
        "0"
    };
    let trade_id: i64 = if order.execution == "TRADE" { seq as i64 } else { -1 };
    Some(match kind {
        "executionReport" => json!({
            "e": "executionReport", "E": e, "s": order.symbol, "c": order.client_order_id,
            "S": order.side, "o": order.order_type, "f": "GTC", "q": order.quantity, "p": order.price,
            "P": "0.00000000", "F": "0.00000000", "g": -1, "C": "", "x": order.execution,
            "X": order.status(), "r": "NONE", "i": order.order_id, "l": filled, "z": filled,
            "L": last_price, "n": "0", "N": null, "T": e, "t": trade_id, "v": 0, "I": seq,
            "w": order.execution != "TRADE", "m": false, "M": order.execution == "TRADE", "O": e,
            "Z": "0.00000000", "Y": "0.00000000", "Q": "0.00000000", "W": e, "V": "EXPIRE_MAKER"
        }),
        "outboundAccountPosition" => json!({
            "e": "outboundAccountPosition", "E": e, "u": e,
            "B": [
                { "a": "BTC", "f": "1.00000000", "l": "0.00000000" },
                { "a": "USDT", "f": "10000.00000000", "l": "0.00000000" }
            ]
        }),
        "balanceUpdate" => json!({ "e": "balanceUpdate", "E": e, "a": "USDT", "d": "100.00000000", "T": e }),
        "ORDER_TRADE_UPDATE" => json!({
            "e": "ORDER_TRADE_UPDATE", "E": e, "T": e,
            "o": {
                "s": order.symbol, "c": order.client_order_id, "S": order.side, "o": order.order_type,
                "f": "GTC", "q": order.quantity, "p": order.price, "ap": last_price, "sp": "0",
                "x": order.execution, "X": order.status(), "i": order.order_id, "l": filled, "z": filled,
                "L": last_price, "N": "USDT", "n": "0", "T": e, "t": trade_id.max(0), "b": "0", "a": "0",
                "m": false, "R": false, "wt": "CONTRACT_PRICE", "ot": order.order_type, "ps": "BOTH",
                "cp": false, "rp": "0", "pP": false, "si": 0, "ss": 0, "V": "EXPIRE_TAKER",
                "pm": "NONE", "gtd": 0
            }
        }),
        "ACCOUNT_UPDATE" => json!({
            "e": "ACCOUNT_UPDATE", "E": e, "T": e,
            "a": {
                "m": "ORDER",
                "B": [{ "a": "USDT", "wb": "10000.00000000", "cw": "10000.00000000", "bc": "0" }],
                "P": [{ "s": order.symbol, "pa": filled, "ep": last_price, "cr": "0", "up": "0",
                        "mt": "cross", "iw": "0", "ps": "BOTH", "bep": last_price }]
            }
        }),
        "MARGIN_LEVEL_STATUS_CHANGE" => json!({
            "e": "MARGIN_LEVEL_STATUS_CHANGE", "E": e, "l": "1.25", "s": "MARGIN_CALL"
        }),
        "USER_LIABILITY_CHANGE" => json!({
            "e": "USER_LIABILITY_CHANGE", "E": e, "a": "USDT", "t": "BORROW", "T": seq,
            "p": "100.00000000", "i": "0.00100000"
        }),
        _ => return None,
    })
}

/// `listenKeyExpired` for `key` at `e`.
pub fn listen_key_expired(e: i64, key: &str) -> Value {
    json!({ "e": "listenKeyExpired", "E": e, "listenKey": key })
}

/// `eventStreamTerminated` at `e` (wrapped with its subscription id by the session).
pub fn event_stream_terminated(e: i64) -> Value {
    json!({ "e": "eventStreamTerminated", "E": e })
}

/// The `serverShutdown` frame at `e`, as the WebSocket API sends it.
pub fn server_shutdown(e: i64) -> Value {
    json!({ "event": { "e": "serverShutdown", "E": e } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_carry_their_own_events() {
        let o = Order::synthetic(4);
        let r = build(Family::Spot, "executionReport", 10, 1, &o).unwrap();
        assert_eq!(
            (r["e"].as_str(), r["E"].as_i64(), r["i"].as_u64()),
            (Some("executionReport"), Some(10), Some(4))
        );
        assert!(r["q"].is_string() && r["w"].is_boolean());
        assert!(build(Family::Spot, "ORDER_TRADE_UPDATE", 10, 1, &o).is_none());
        let f = build(Family::Futures, "ORDER_TRADE_UPDATE", 11, 2, &o).unwrap();
        assert_eq!(f["o"]["i"], json!(4));
        assert_eq!(Family::of_scope("isolated-margin:BTCUSDT"), Family::Spot);
        assert_eq!(Family::of_scope("margin-risk"), Family::Risk);
        assert_eq!(Family::of_scope("coinm-futures"), Family::Futures);
        assert!(known_kind("serverShutdown") && known_kind("ACCOUNT_UPDATE") && !known_kind("x"));
        let pm = build(Family::PortfolioMargin, "ORDER_TRADE_UPDATE", 12, 3, &o).unwrap();
        assert_eq!((pm["fs"].as_str(), pm["o"]["i"].as_u64()), (Some("UM"), Some(4)));
        let pm = build(Family::PortfolioMargin, "executionReport", 13, 4, &o).unwrap();
        assert!(pm.get("fs").is_none());
    }

    #[test]
    fn a_fill_reports_its_quantity() {
        let mut o = Order::synthetic(1);
        o.execution = "TRADE".into();
        let r = build(Family::Spot, "executionReport", 1, 9, &o).unwrap();
        assert_eq!(
            (r["X"].as_str(), r["z"].as_str(), r["t"].as_i64()),
            (Some("FILLED"), Some("0.001"), Some(9))
        );
    }
}
