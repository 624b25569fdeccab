//! Fuzzes the simulator's request handling: the per-request pipeline of
//! `sim::server` (admin endpoint, request log, faults, exchange endpoints)
//! over its public parts, `SimRequest::new` (query and form parsing),
//! `admin::handle`, `faults::take`, `api::handle` and `venue::handle`
//! (routing, API key and signature checks, key store), `Weights::admit`,
//! `log::line` and `Reply::into_response`.
//!
//! Input: requests in the text form of `common/request.rs`, run in order
//! against one fresh simulator, so an input can arm a fault, skew the clock or
//! create a key and then meet it. An input starting with `!` gets a simulator
//! that checks HMAC signatures and accepts only the API keys `fuzz-key` (signed
//! with `fuzz-secret`) and `fuzz-key-2` (with its own secret, `fuzz-secret-2`),
//! and limits `fapi` and `sapi` to 3 weight a second, so that an input meets
//! the 429 and 418 answers; requests come from 127.0.0.1.
//! A venue prefix (`/mexc/…`, `/woox/…`) sends a request to that venue's
//! endpoints (`venue::handle`) with its own API-key and signing headers, as
//! the server does; `body64=` answers, the weight headers and the request log
//! line are built too. Differences from the server, where no socket is
//! involved: a fault's delay is not slept, a `drop`/`reset` fault ends the
//! request without an answer, and the log line is not printed.
#![no_main]

#[path = "../common/request.rs"]
mod request;
#[path = "../common/text.rs"]
mod text;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use listenkeyd_sim::auth::Verifier;
use listenkeyd_sim::faults::{self, default_body};
use listenkeyd_sim::http::{Reply, SimRequest};
use listenkeyd_sim::shared::{Shared, lock};
use listenkeyd_sim::venue::{self, Venue};
use listenkeyd_sim::{admin, api, weight};

/// The simulator's clock: a fixed instant, so every run of an input agrees.
const NOW_MS: i64 = 1_800_000_000_000;

fuzz_target!(|data: &[u8]| {
    let strict = data.first() == Some(&b'!');
    let data = if strict { &data[1..] } else { data };
    let (keys, verifier) = if strict {
        let keys = vec!["fuzz-key".to_owned(), "fuzz-key-2".to_owned()];
        (keys, Verifier::new(Some("fuzz-secret"), None))
    } else {
        (Vec::new(), Verifier::new(None, None))
    };
    let mut sh = Shared::new(Arc::new(|| NOW_MS), 0, 3_600_000, keys, verifier, Vec::new());
    if strict {
        // An account with its own secret (`--account-secret`), for the other venues.
        sh.account_secrets = vec![("fuzz-key-2".to_owned(), "fuzz-secret-2".to_owned())];
        let tight = |family: &str| (family.to_owned(), weight::Limit::parse("3/1s").expect("a limit"));
        sh.weights = Mutex::new(weight::Weights::new(weight::Rules {
            limits: vec![tight("fapi"), tight("sapi")],
            ..weight::Rules::default()
        }));
    }
    for req in request::parse_all(data) {
        let _ = handle(&sh, req);
    }
});

/// One request as `sim::server` handles it once the body is read; `None`
/// where the server would close the connection without an answer.
fn handle(sh: &Shared, req: axum::http::Request<bytes::Bytes>) -> Option<axum::http::Response<Vec<u8>>> {
    let (parts, body) = req.into_parts();
    // A venue prefix (`/mexc/…`) picks the venue; otherwise the default one.
    let full_path = parts.uri.path();
    let (venue, prefix, path) = match Venue::split_prefix(full_path) {
        Some((v, below)) => (v, &full_path[..full_path.len() - below.len()], below),
        None => (sh.venue, "", full_path),
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let mut req = SimRequest::new(
        parts.method.as_str(),
        path,
        parts.uri.query(),
        String::from_utf8_lossy(&body).into_owned(),
        header(venue.api_key_header()),
    );
    req.venue = venue;
    req.prefix = prefix.to_owned();
    for name in ["x-api-timestamp", "x-api-signature"] {
        if let Some(v) = header(name) {
            req.headers.insert(name.to_owned(), v);
        }
    }
    if req.path == "/_sim" || req.path.starts_with("/_sim/") {
        return Some(admin::handle(sh, &req).into_response().map(String::into_bytes));
    }
    let id = sh.record_start(&req);
    let family = weight::family(&req.prefix, &req.path);
    let verdict = lock(&sh.weights).admit(
        sh.server_now(),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        &family,
        req.api_key.as_deref(),
        weight::weight_of(&family, &req.path),
    );
    let weight_headers = match verdict {
        weight::Verdict::Allowed(headers) => headers,
        weight::Verdict::Refused { status, body, headers } => {
            sh.record_status(id, status);
            return Some(Reply { status, headers, body }.into_response().map(String::into_bytes));
        }
    };
    let fault = faults::take(
        &mut lock(&sh.faults),
        &req.method,
        &format!("{}{}", req.prefix, req.path),
    );
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
        if let (Some(status), Some(mut raw)) = (f.status, f.raw_body()) {
            raw.extend(std::iter::repeat_n(b' ', f.pad.unwrap_or(0)));
            sh.record_status(id, status);
            let headers = f.headers.into_iter().collect();
            let resp = Reply {
                status,
                headers,
                body: String::new(),
            }
            .into_response();
            return Some(resp.map(|_| raw));
        }
        if let Some(status) = f.status {
            let body = f.body.unwrap_or_else(|| default_body(status).to_owned());
            reply = Some(Reply {
                status,
                headers: f.headers.into_iter().collect(),
                body,
            });
        } else if f.limit {
            let mut limited = req.venue.rate_limited();
            limited.headers.extend(f.headers);
            reply = Some(limited);
        }
    }
    let mut reply = reply.unwrap_or_else(|| match req.venue {
        Venue::Binance => api::handle(sh, &req),
        v => venue::handle(sh, v, &req),
    });
    if let Some(n) = pad {
        reply.body.push_str(&" ".repeat(n));
    }
    for (name, value) in weight_headers {
        if !reply.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            reply.headers.push((name, value));
        }
    }
    // The request log line the server prints (here built, not printed).
    let _ = listenkeyd_sim::log::line(&req, Some(&reply), scope_of(&req).as_deref());
    sh.record_status(id, reply.status);
    Some(reply.into_response().map(String::into_bytes))
}

/// The scope a request addresses, on its venue, for the request log.
fn scope_of(req: &SimRequest) -> Option<String> {
    match req.venue {
        Venue::Binance => api::scope_of(req),
        v => venue::scope_of(v, req),
    }
}
