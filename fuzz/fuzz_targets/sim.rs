//! Fuzzes the simulator's request handling: the per-request pipeline of
//! `sim::server` (admin endpoint, request log, faults, exchange endpoints)
//! over its public parts, `SimRequest::new` (query and form parsing),
//! `admin::handle`, `faults::take`, `api::handle` (routing, API key and
//! signature checks, key store) and `Reply::into_response`.
//!
//! Input: requests in the text form of `common/request.rs`, run in order
//! against one fresh simulator, so an input can arm a fault, skew the clock or
//! create a key and then meet it. An input starting with `!` gets a simulator
//! that checks HMAC signatures and accepts only the API key `fuzz-key`.
//! Differences from the server, where no socket is involved: a fault's delay
//! is not slept and a `drop`/`reset` fault ends the request without an answer.
#![no_main]

#[path = "../common/request.rs"]
mod request;
#[path = "../common/text.rs"]
mod text;

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use listenkeyd_sim::auth::Verifier;
use listenkeyd_sim::faults::{self, default_body};
use listenkeyd_sim::http::{Reply, SimRequest};
use listenkeyd_sim::shared::{Shared, lock};
use listenkeyd_sim::{admin, api};

/// The simulator's clock: a fixed instant, so every run of an input agrees.
const NOW_MS: i64 = 1_800_000_000_000;

fuzz_target!(|data: &[u8]| {
    let strict = data.first() == Some(&b'!');
    let data = if strict { &data[1..] } else { data };
    let (keys, verifier) = if strict {
        (vec!["fuzz-key".to_owned()], Verifier::new(Some("fuzz-secret"), None))
    } else {
        (Vec::new(), Verifier::new(None, None))
    };
    let sh = Shared::new(Arc::new(|| NOW_MS), 0, 3_600_000, keys, verifier, Vec::new());
    for req in request::parse_all(data) {
        let _ = handle(&sh, req);
    }
});

/// One request as `sim::server` handles it once the body is read; `None`
/// where the server would close the connection without an answer.
fn handle(sh: &Shared, req: axum::http::Request<bytes::Bytes>) -> Option<axum::http::Response<String>> {
    let (parts, body) = req.into_parts();
    let api_key = parts
        .headers
        .get("x-mbx-apikey")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let req = SimRequest::new(
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query(),
        String::from_utf8_lossy(&body).into_owned(),
        api_key,
    );
    if req.path == "/_sim" || req.path.starts_with("/_sim/") {
        return Some(admin::handle(sh, &req).into_response());
    }
    let id = sh.record_start(&req);
    let fault = faults::take(&mut lock(&sh.faults), &req.method, &req.path);
    let mut reply = None;
    let mut pad = None;
    if let Some(f) = fault {
        if f.reset || f.drop {
            return None;
        }
        pad = f.pad;
        if f.revoke {
            api::revoke_for(sh, &req);
        }
        if let Some(status) = f.status {
            let body = f.body.unwrap_or_else(|| default_body(status).to_owned());
            reply = Some(Reply {
                status,
                headers: f.headers.into_iter().collect(),
                body,
            });
        }
    }
    let mut reply = reply.unwrap_or_else(|| api::handle(sh, &req));
    if let Some(n) = pad {
        reply.body.push_str(&" ".repeat(n));
    }
    sh.record_status(id, reply.status);
    Some(reply.into_response())
}
