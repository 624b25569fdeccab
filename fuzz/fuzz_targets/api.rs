//! Fuzzes the local API's request handling: the axum router `serve` uses,
//! driven in-process with `tower::ServiceExt::oneshot`, over a hub holding a
//! fresh stream, an expired one and one still pending.
//!
//! Input: requests in the text form of `common/request.rs`. Time is tokio's
//! paused clock, so a long-poll's `wait` passes at once; event streams are read
//! for a few frames, then dropped. Beyond "never panics" it checks that an
//! error answer (4xx, 5xx other than a readiness or pending-stream 503) never
//! carries a credential value.
#![no_main]

#[path = "../common/request.rs"]
mod request;
#[path = "../common/text.rs"]
mod text;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use listenkeyd::publishers::api::{ApiState, router};
use listenkeyd::clock::Clock;
use listenkeyd::publishers::metrics::Metrics;
use listenkeyd::publishers::state_file::writer::{WriteError, WriterStatus};
use listenkeyd::hub::{Hub, Publisher};
use listenkeyd::state::{Held, Status, StreamState};
use listenkeyd::stream::{CredentialKind, Kind, StreamSpec};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The credential values the hub holds; no error answer may show one.
const VALUES: [&str; 2] = ["lk-FUZZ-fresh-4b1d2c", "tok-FUZZ-expired-9e8f7a"];

/// A wall clock that stands still, so every input sees the same states.
#[derive(Debug)]
struct Fixed(SystemTime);

impl Clock for Fixed {
    fn now(&self) -> SystemTime {
        self.0
    }
}

/// What stays alive across inputs: the runtime, the router, the publishers
/// (a dropped publisher would close its stream's channel).
struct World {
    rt: Runtime,
    app: Router,
    _publishers: Vec<Publisher>,
    _writer: watch::Sender<WriterStatus>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let held = |value: &str, generation, expires_at| Held {
            value: value.to_owned(),
            generation,
            obtained_at: now - Duration::from_secs(7200),
            refreshed_at: now - Duration::from_secs(600),
            expires_at,
            api_key_fp: Some("0a1b2c3d".to_owned()),
        };
        let spec = |kind, symbol: Option<&str>, credential| {
            Arc::new(StreamSpec::new(kind, symbol.map(str::to_owned), credential))
        };
        let fresh = StreamState {
            held: Some(held(VALUES[0], 3, now + Duration::from_secs(3000))),
            status: Status::Fresh,
            next_at: Some(now + Duration::from_secs(1200)),
            ..StreamState::starting(spec(Kind::IsolatedMargin, Some("BTCUSDT"), CredentialKind::ListenKey))
        };
        let expired = StreamState {
            held: Some(held(VALUES[1], 7, now - Duration::from_secs(5))),
            status: Status::Stale,
            last_error: Some("transient: HTTP 503: server error".into()),
            next_at: Some(now + Duration::from_secs(2)),
            ..StreamState::starting(spec(Kind::UsdmFutures, None, CredentialKind::ListenToken))
        };
        let pending = StreamState {
            status: Status::Failed,
            last_error: Some("auth: HTTP 401 code -2015: Invalid API-key, IP, or permissions".into()),
            ..StreamState::starting(spec(Kind::Options, None, CredentialKind::ListenKey))
        };
        let (hub, publishers) = Hub::new(vec![fresh, expired, pending]);
        let (writer_tx, writer) = watch::channel(WriterStatus {
            writes: 4,
            last_error: Some(WriteError::Io {
                path: "/var/lib/listenkeyd/keys.json".into(),
                error: "No space left on device".to_owned(),
            }),
        });
        let state = ApiState {
            hub,
            writer,
            metrics: Metrics::new(),
            clock: Arc::new(Fixed(now)),
            cancel: CancellationToken::new(),
            // Standalone: no replica roles to report.
            roles: Vec::new(),
        };
        World {
            rt,
            app: router(state),
            _publishers: publishers,
            _writer: writer_tx,
        }
    })
}

/// Frames of one answer read at most; an event stream never ends by itself.
const MAX_FRAMES: usize = 8;

fuzz_target!(|data: &[u8]| {
    let w = world();
    for req in request::parse_all(data) {
        let path = req.uri().path().to_owned();
        w.rt.block_on(async {
            let req = req.map(axum::body::Body::from);
            let resp = w.app.clone().oneshot(req).await.expect("the router is infallible");
            let status = resp.status();
            let mut body = resp.into_body();
            let mut bytes = Vec::new();
            for _ in 0..MAX_FRAMES {
                match tokio::time::timeout(Duration::from_secs(3600), body.frame()).await {
                    Ok(Some(Ok(frame))) => {
                        if let Some(d) = frame.data_ref() {
                            bytes.extend_from_slice(d);
                        }
                    }
                    Ok(Some(Err(e))) => panic!("answer body failed: {e}"),
                    Ok(None) | Err(_) => break,
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            // A 503 from a stream or readiness is a state report, not an error about the request.
            let report = status.as_u16() == 503 && (path.starts_with("/v1/streams/") || path == "/readyz");
            if (status.is_client_error() || status.is_server_error()) && !report {
                for v in VALUES {
                    assert!(!text.contains(v), "{status} on {path:?} shows a credential: {text}");
                }
            }
        });
    }
});
