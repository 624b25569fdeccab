//! The API's routes. Every answer is built from the hub's current states; a
//! credential appears only as the `value` of a stream, exactly as in the state
//! file, and never in an error message or a metric.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiState;
use crate::state::{Document, StreamState};

/// The default long-poll wait.
const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// The longest long-poll wait a client may ask for.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// How often an idle event stream sends a comment, so proxies keep it open.
const SSE_KEEPALIVE: Duration = Duration::from_secs(15);

/// The event streams' slots: each open stream holds one until it ends.
#[derive(Debug, Clone)]
struct EventSlots(Arc<Semaphore>);

/// The routes; at most `max_event_streams` event streams at a time.
pub(super) fn router(state: ApiState, max_event_streams: usize) -> Router {
    let slots = EventSlots(Arc::new(Semaphore::new(max_event_streams.min(Semaphore::MAX_PERMITS))));
    Router::new()
        .route("/v1/streams", get(streams))
        .route("/v1/streams/{id}", get(stream))
        .route("/v1/streams/{account}/{id}", get(account_stream))
        .route("/v1/events", get(events).layer(Extension(slots)))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { json(StatusCode::NOT_FOUND, serde_json::json!({"error": "no such path"})) })
        .with_state(state)
}

/// A JSON answer.
fn json(status: StatusCode, v: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], format!("{v}\n")).into_response()
}

/// `GET /v1/streams`: the state-file document.
async fn streams(State(st): State<ApiState>) -> Response {
    let doc = Document::build(&st.hub.snapshot(), st.clock.now());
    json(StatusCode::OK, serde_json::to_value(doc).expect("documents serialize"))
}

/// `GET /v1/streams/{id}[?after_generation=N&wait=30s]`: one stream, after
/// waiting (at most `wait`) for a generation above N when asked.
async fn stream(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(mut rx) = st.hub.subscribe(&id) else {
        return json(StatusCode::NOT_FOUND, serde_json::json!({"error": "no such stream"}));
    };
    let after = match q.get("after_generation").map(|v| v.parse::<u64>()) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => return bad_request("after_generation must be a non-negative integer"),
    };
    let wait = match q.get("wait").map(|v| humantime::parse_duration(v)) {
        None => DEFAULT_WAIT,
        Some(Ok(d)) => d.min(MAX_WAIT),
        Some(Err(_)) => return bad_request("wait must be a duration such as 30s"),
    };
    if let Some(n) = after {
        let newer = |s: &StreamState| s.held.as_ref().is_some_and(|h| h.generation > n);
        tokio::select! {
            _ = tokio::time::timeout(wait, rx.wait_for(newer)) => {}
            _ = st.cancel.cancelled() => {}
        }
    }
    let state = rx.borrow().clone();
    let status = if state.held.is_some() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, state.view(st.clock.now()))
}

/// `GET /v1/streams/{account}/{id}`: a named account's stream
/// (`main/usdm-futures`), as [`stream`] serves it.
async fn account_stream(
    st: State<ApiState>,
    Path((account, id)): Path<(String, String)>,
    q: Query<HashMap<String, String>>,
) -> Response {
    stream(st, Path(format!("{account}/{id}")), q).await
}

/// A 400 with a reason that never echoes the request.
fn bad_request(why: &str) -> Response {
    json(StatusCode::BAD_REQUEST, serde_json::json!({"error": why}))
}

/// `GET /v1/events`: every stream's current state, then each change as it is
/// published, one `data:` JSON line each. A client that falls behind is sent
/// a fresh snapshot instead of the changes it missed.
/// Over the cap, 503: retrying later is the fix.
async fn events(State(st): State<ApiState>, Extension(slots): Extension<EventSlots>) -> Response {
    let Ok(slot) = slots.0.try_acquire_owned() else {
        let mut r = json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"error": "too many event streams are open; retry later"}),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("15"));
        return r;
    };
    event_stream(st, slot).into_response()
}

/// The events of [`events`]; the stream holds `slot` until it is dropped.
fn event_stream(st: ApiState, slot: OwnedSemaphorePermit) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = st.hub.events();
    let (clock, hub, cancel) = (st.clock.clone(), st.hub.clone(), st.cancel.clone());
    let event = move |s: &StreamState, now| Ok(Event::default().data(s.view(now).to_string()));
    let snapshot: Vec<_> = hub.snapshot().iter().map(|s| event(s, clock.now())).collect();
    let changes = futures_util::stream::unfold((rx, Vec::new(), slot), move |(mut rx, mut backlog, slot)| {
        let (clock, hub, cancel) = (clock.clone(), hub.clone(), cancel.clone());
        async move {
            loop {
                if let Some(e) = backlog.pop() {
                    return Some((e, (rx, backlog, slot)));
                }
                let next = tokio::select! {
                    r = rx.recv() => r,
                    _ = cancel.cancelled() => return None,
                };
                match next {
                    Ok(s) => return Some((event(&s, clock.now()), (rx, backlog, slot))),
                    Err(RecvError::Lagged(_)) => {
                        backlog = hub.snapshot().iter().rev().map(|s| event(s, clock.now())).collect();
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    let all = futures_util::StreamExt::chain(futures_util::stream::iter(snapshot), changes);
    Sse::new(all).keep_alive(KeepAlive::new().interval(SSE_KEEPALIVE))
}

/// `GET /readyz`: 200 when every stream holds an unexpired value and the state
/// file is being written; else 503 with the reasons.
async fn readyz(State(st): State<ApiState>) -> Response {
    let doc = Document::build(&st.hub.snapshot(), st.clock.now());
    let writer = st.writer.borrow().last_error.as_ref().map(ToString::to_string);
    let mut answer = super::Readiness::new(doc.problems(st.clock.now()), writer);
    // Replicas: each account's role, and a warning for those kept without the
    // lease (Redis unreachable), which stay ready: their values are kept alive.
    for (account, role) in st.roles.iter() {
        let (label, alone) = {
            let role = role.borrow();
            (role.label(), *role == crate::replicas::Role::Alone)
        };
        answer.accounts.insert(account.clone(), label.to_owned());
        if alone {
            answer.warnings.push(format!(
                "account {account}: Redis unreachable; kept by this replica without the lease"
            ));
        }
    }
    if let Some((rate_limited, views)) = st.metrics.budget_view() {
        answer.rate_limited = rate_limited;
        answer.budgets = views
            .into_iter()
            .map(|v| super::ready::Budget {
                host: v.host,
                egress: v.egress.map(|e| e.to_string()),
                family: v.family,
                limit: v.limit.map(|(l, _)| l.limit),
                window_s: v.limit.map(|(l, _)| l.window.as_secs()),
                source: v.limit.map(|(_, s)| s.as_str().to_owned()),
                spent: v.own,
                ip_used: v.ip_used,
                queued: v.queued,
            })
            .collect();
    }
    let status = if answer.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, serde_json::to_value(answer).expect("readiness serializes"))
}

/// `GET /metrics`: the Prometheus text exposition.
async fn metrics(State(st): State<ApiState>) -> Response {
    // Written chunk by chunk as the connection takes it: a scrape's memory
    // does not grow with the number of streams.
    let chunks = st.metrics.body(st.hub.clone(), st.clock.now());
    let body = axum::body::Body::from_stream(futures_util::stream::iter(chunks.map(Ok::<_, Infallible>)));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
