//! The WebSocket half of the test-control endpoint:
//!
//! - `POST /_sim/events` `{"account", "scope", "conn", "type", "count"}`: sends
//!   `count` (default 1, at most 1,000) events of `type` (default: each
//!   family's next in turn) to the matching subscriptions and streams (all
//!   fields optional; `account` is the API key). `type` may also be
//!   `listenKeyExpired` (ends a stream), `eventStreamTerminated` (ends a
//!   WebSocket API subscription) or `serverShutdown`. Answers the events'
//!   numbers.
//! - `POST /_sim/ws/cut` `{"account", "scope", "conn", "reset", "server_shutdown"}`:
//!   ends the matching connections: with a TCP reset (`reset`), else with a
//!   close frame, after `serverShutdown` if asked.
//! - `POST /_sim/ws/terminate` `{"account", "scope", "conn"}`: ends the
//!   matching subscriptions (`eventStreamTerminated`) and listen-key streams
//!   (`listenKeyExpired`), keeping WebSocket API connections open.
//! - `GET /_sim/ws`: the open connections; `GET`/`DELETE /_sim/ws/log`: the
//!   WebSocket log.

use serde::Deserialize;
use serde_json::json;

use super::events;
use super::http::{Reply, SimRequest};
use super::hub::{Bus, Target};
use super::shared::Shared;

/// The most events one `POST /_sim/events` sends.
const MAX_EVENTS: u32 = 1_000;

/// `POST /_sim/events` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsBody {
    /// Who gets them.
    #[serde(flatten)]
    target: Target,
    /// The event type.
    #[serde(rename = "type")]
    kind: Option<String>,
    /// How many.
    count: Option<u32>,
}

/// `POST /_sim/ws/cut` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CutBody {
    /// Who.
    #[serde(flatten)]
    target: Target,
    /// A TCP reset instead of a close frame.
    #[serde(default)]
    reset: bool,
    /// `serverShutdown` first.
    #[serde(default)]
    server_shutdown: bool,
}

/// A body, where an empty one means every field's default.
fn body<'a, T: Deserialize<'a> + Default>(text: &'a str) -> Result<T, Reply> {
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(text).map_err(|e| Reply::json(400, json!({ "error": e.to_string() })))
}

/// Answers the WebSocket admin requests; `None` for any other path.
pub fn handle(sh: &Shared, req: &SimRequest) -> Option<Reply> {
    let hub = &sh.hub;
    Some(match (req.method.as_str(), req.path.trim_end_matches('/')) {
        ("POST", "/_sim/events") => match body::<EventsBody>(&req.body) {
            Ok(b) if b.kind.as_deref().is_some_and(|k| !events::known_kind(k)) => Reply::json(
                400,
                json!({ "error": format!("unknown event type {:?}", b.kind.unwrap_or_default()) }),
            ),
            Ok(b) if b.count.is_some_and(|n| n == 0 || n > MAX_EVENTS) => {
                Reply::json(400, json!({ "error": format!("count must be 1..={MAX_EVENTS}") }))
            }
            Ok(b) => {
                let seqs = hub.emit(&b.target, b.kind.as_deref(), b.count.unwrap_or(1), None);
                Reply::json(200, json!({ "emitted": seqs, "connections": hub.connections().len() }))
            }
            Err(r) => r,
        },
        ("POST", "/_sim/ws/cut") => match body::<CutBody>(&req.body) {
            Ok(b) => {
                let n = hub.control(Bus::Cut {
                    target: b.target,
                    reset: b.reset,
                    server_shutdown: b.server_shutdown,
                });
                Reply::json(200, json!({ "connections": n }))
            }
            Err(r) => r,
        },
        ("POST", "/_sim/ws/terminate") => match body::<Target>(&req.body) {
            Ok(t) => {
                hub.control(Bus::Terminate(t.clone()));
                let n = hub.control(Bus::ExpireKey(t));
                Reply::json(200, json!({ "connections": n }))
            }
            Err(r) => r,
        },
        ("GET", "/_sim/ws") => Reply::json(200, json!(hub.connections())),
        ("GET", "/_sim/ws/log") => Reply::json(200, json!(hub.entries())),
        ("DELETE", "/_sim/ws/log") => {
            hub.clear_log();
            Reply::json(200, json!({ "ok": true }))
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim() -> Shared {
        Shared::new(
            std::sync::Arc::new(|| 1_800_000_000_000),
            0,
            60_000,
            Vec::new(),
            Default::default(),
            Vec::new(),
        )
    }

    fn post(sh: &Shared, path: &str, body: &str) -> Reply {
        handle(sh, &SimRequest::new("POST", path, None, body.to_owned(), None)).unwrap()
    }

    #[test]
    fn bodies_are_checked() {
        let sh = sim();
        assert_eq!(post(&sh, "/_sim/events", "").status, 200);
        assert_eq!(
            post(&sh, "/_sim/events", r#"{"type":"ACCOUNT_UPDATE","count":3}"#).status,
            200
        );
        for bad in [
            r#"{"type":"nope"}"#,
            r#"{"count":0}"#,
            r#"{"count":1001}"#,
            r#"{"x":1}"#,
            "[",
        ] {
            assert_eq!(post(&sh, "/_sim/events", bad).status, 400, "{bad}");
        }
        assert_eq!(post(&sh, "/_sim/ws/cut", r#"{"reset":true,"conn":3}"#).status, 200);
        assert_eq!(post(&sh, "/_sim/ws/terminate", r#"{"scope":"spot"}"#).status, 200);
        assert!(handle(&sh, &SimRequest::new("GET", "/_sim/nope", None, String::new(), None)).is_none());
    }
}
