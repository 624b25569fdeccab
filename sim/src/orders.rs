//! Test orders: `POST /api/v3/order` (spot), `/sapi/v1/margin/order`
//! (margin; `isIsolated=TRUE` for isolated), `/fapi/v1/order`,
//! `/dapi/v1/order`, `/papi/v1/um/order`, `/papi/v1/margin/order` and
//! `/eapi/v1/order` take an order
//! and answer as the exchange acknowledges one, and the account's open
//! user-data streams and subscriptions of that family report it: a `NEW`
//! then a `TRADE` that fills it whole, then the balance change
//! (`outboundAccountPosition` or `ACCOUNT_UPDATE`).
//!
//! Nothing is matched or kept: it is a way for a test to make the events of
//! an order it placed. A signature that is present is checked as on the
//! listen-token endpoint; `POST /api/v3/order/test` validates only, as on
//! Binance, and makes no events.

use serde_json::json;

use super::auth;
use super::events::Order;
use super::http::{Reply, SimRequest};
use super::hub::Target;
use super::shared::Shared;

/// The scope whose streams report an order placed at `path`, if it is an order endpoint.
fn scope_of(path: &str, req: &SimRequest) -> Option<String> {
    Some(match path.trim_end_matches('/') {
        "/api/v3/order" => "spot".to_owned(),
        "/sapi/v1/margin/order" => match req.param("isIsolated") {
            Some(v) if v.eq_ignore_ascii_case("true") => {
                format!("isolated-margin:{}", req.param("symbol").unwrap_or(""))
            }
            _ => "cross-margin".to_owned(),
        },
        "/fapi/v1/order" => "usdm-futures".to_owned(),
        "/dapi/v1/order" => "coinm-futures".to_owned(),
        "/papi/v1/um/order" | "/papi/v1/margin/order" => "portfolio-margin".to_owned(),
        "/eapi/v1/order" => "options".to_owned(),
        _ => return None,
    })
}

/// Answers an order request, or `None` when `req` is not one.
pub fn handle(sh: &Shared, req: &SimRequest) -> Option<Reply> {
    if req.method != "POST" {
        return None;
    }
    let test_only = req.path.trim_end_matches('/') == "/api/v3/order/test";
    let scope = if test_only {
        Some("spot".to_owned())
    } else {
        scope_of(&req.path, req)
    }?;
    let account = match auth::api_key(req, &sh.api_keys) {
        Ok(a) => a,
        Err(r) => return Some(r),
    };
    if let Err(r) = auth::check_token_request(&sh.verifier, false, req, sh.server_now()) {
        return Some(r);
    }
    let Some(symbol) = req.param("symbol").filter(|s| !s.is_empty()) else {
        return Some(Reply::mandatory("symbol"));
    };
    let Some(side) = req
        .param("side")
        .map(str::to_ascii_uppercase)
        .filter(|s| s == "BUY" || s == "SELL")
    else {
        return Some(Reply::mandatory("side"));
    };
    if test_only {
        return Some(Reply::raw(200, "{}"));
    }
    let seq = sh.hub.next_seq();
    let mut order = Order {
        symbol: symbol.to_owned(),
        side,
        order_type: req.param("type").unwrap_or("LIMIT").to_ascii_uppercase(),
        quantity: req.param("quantity").unwrap_or("1").to_owned(),
        price: req.param("price").unwrap_or("0").to_owned(),
        order_id: seq,
        client_order_id: req
            .param("newClientOrderId")
            .map_or_else(|| format!("sim-{seq}"), str::to_owned),
        execution: "NEW".into(),
    };
    let target = Target {
        account: Some(account),
        scope: Some(scope),
        conn: None,
    };
    let spot_like = ["/api/", "/sapi/", "/papi/v1/margin/"]
        .iter()
        .any(|p| req.path.starts_with(p));
    let (order_kind, balance_kind) = if spot_like {
        ("executionReport", "outboundAccountPosition")
    } else {
        ("ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE")
    };
    sh.hub.emit(&target, Some(order_kind), 1, Some(&order));
    let mut filled = order.clone();
    filled.execution = "TRADE".into();
    sh.hub.emit(&target, Some(order_kind), 1, Some(&filled));
    sh.hub.emit(&target, Some(balance_kind), 1, Some(&filled));
    order.execution = "NEW".into();
    let now = sh.server_now();
    Some(Reply::json(
        200,
        json!({
            "symbol": order.symbol, "orderId": order.order_id, "orderListId": -1,
            "clientOrderId": order.client_order_id, "transactTime": now, "updateTime": now,
            "price": order.price, "origQty": order.quantity, "executedQty": "0", "status": "NEW",
            "timeInForce": "GTC", "type": order.order_type, "side": order.side
        }),
    ))
}
