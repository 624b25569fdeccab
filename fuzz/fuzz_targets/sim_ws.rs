//! Fuzzes the simulator's WebSocket request parsers: `ws::route` (the
//! upgrade path and query), `wsapi::parse` (a WebSocket API text frame into
//! a call or an error answer) and the parameter readers that follow it
//! (`text_param`, `subscription_id`, `rate_limits_wanted`,
//! `signed_payloads`, and `wsauth::check_signature` against a simulator that
//! checks HMAC signatures), `wsapi::stream_request` (a frame on a listen-key
//! stream), `events::build` for every event type, and the WebSocket admin
//! bodies (`wsadmin::handle` for `/_sim/events`, `/_sim/ws/cut` and
//! `/_sim/ws/terminate`).
//!
//! Input: lines. The first is an upgrade target (`PATH[?QUERY]`); every
//! other line is one frame, given to each parser in turn. Checks: nothing
//! panics, every answer is a JSON object that echoes a well-formed id, an
//! error answer carries a negative code, and an accepted signature names the
//! API key the frame sent.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use listenkeyd_sim::auth::Verifier;
use listenkeyd_sim::events::{self, Family, Order};
use listenkeyd_sim::http::SimRequest;
use listenkeyd_sim::shared::Shared;
use listenkeyd_sim::{ws, wsadmin, wsapi, wsauth};
use serde_json::Value;

/// The simulator's clock: a fixed instant, so every run of an input agrees.
const NOW_MS: i64 = 1_800_000_000_000;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let target = lines.next().unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if let Some(ws::Route::Stream { keys, combined, .. }) = ws::route(path, query) {
        assert!(keys.iter().all(|k| !k.is_empty() && !k.contains('/')), "{keys:?}");
        assert!(combined || keys.len() == 1, "a raw stream names one key");
    }
    let sh = Shared::new(
        Arc::new(|| NOW_MS),
        0,
        3_600_000,
        Vec::new(),
        Verifier::new(Some("fuzz-secret"), None),
        Vec::new(),
    );
    for frame in lines {
        api_frame(&sh, frame);
        match wsapi::stream_request(frame) {
            Ok(call) => assert!(call.params.len() <= wsapi::MAX_STREAM_PARAMS),
            Err(answer) => assert!(answer["error"]["code"].is_u64() && answer.get("id").is_some(), "{answer}"),
        }
        for path in ["/_sim/events", "/_sim/ws/cut", "/_sim/ws/terminate"] {
            let req = SimRequest::new("POST", path, None, frame.to_owned(), None);
            let reply = wsadmin::handle(&sh, &req).expect("an admin path");
            assert!(reply.status == 200 || reply.status == 400, "{path}: {}", reply.status);
        }
    }
});

/// One WebSocket API frame through the parser and the parameter readers.
fn api_frame(sh: &Shared, frame: &str) {
    let call = match wsapi::parse(frame) {
        Ok(call) => call,
        Err((id, e)) => {
            assert!(e.code < 0 && e.status >= 400, "{e:?}");
            assert!(matches!(id, Value::Null | Value::String(_) | Value::Number(_)));
            let answer = e.answer(&id);
            assert!(answer.is_object());
            return;
        }
    };
    let _ = wsapi::rate_limits_wanted(&call.params);
    let _ = wsapi::subscription_id(&call.params);
    let (payloads, _sig) = wsapi::signed_payloads(&call.params);
    assert!(!payloads.is_empty() && payloads.len() <= 4, "{payloads:?}");
    match wsauth::check_signature(sh, &call.params) {
        Ok(account) => {
            let sent = wsapi::text_param(&call.params, "apiKey").expect("an accepted call named its key");
            assert_eq!(account, sent.trim());
        }
        Err(e) => assert!(e.code < 0, "{e:?}"),
    }
    let _ = wsapi::text_param(&call.params, "listenToken");
    let answer = wsapi::ok_answer(&call.id, Value::Null, Some(2));
    assert_eq!(answer["id"], call.id);
    let seq = frame.len() as u64;
    let order = Order::synthetic(seq);
    for family in [Family::Spot, Family::Futures, Family::Risk, Family::PortfolioMargin] {
        for kind in family.kinds() {
            let ev = events::build(family, kind, NOW_MS, seq, &order).expect("a family's own kind");
            assert_eq!(ev["e"].as_str(), Some(*kind));
        }
    }
}
