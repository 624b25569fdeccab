//! The accept loop and the per-request pipeline: read the request, send
//! `/_sim/` to the admin endpoint, otherwise record it, apply the first
//! matching fault (delay, drop, revoke, canned answer) and hand the rest to
//! the exchange endpoints.
//!
//! Connections are served with hyper-util directly (not through a router) so
//! that a `drop` fault can make the service fail, which makes hyper close the
//! connection without writing any answer.

use std::io;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::faults::{self, default_body};
use super::http::{Reply, SimRequest};
use super::shared::{Shared, lock};
use super::{admin, api};

/// The largest request body read, bytes.
const MAX_BODY: usize = 1 << 20;

/// Accepts connections on `listener` until `cancel` fires; each connection runs in its own task.
pub async fn serve(listener: TcpListener, sh: Arc<Shared>, cancel: CancellationToken) {
    loop {
        let (stream, _peer) = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "sim: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (sh, cancel) = (sh.clone(), cancel.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(sh.clone(), req));
            let builder = Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                () = cancel.cancelled() => {}
                res = conn => if let Err(e) = res {
                    tracing::trace!(error = %e, "sim: connection ended");
                },
            }
        });
    }
}

/// One request, start to finish; `Err` closes the connection without an answer.
async fn handle(sh: Arc<Shared>, req: Request<Incoming>) -> Result<Response<String>, io::Error> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(axum::body::Body::new(body), MAX_BODY)
        .await
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
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
        return Ok(admin::handle(&sh, &req).into_response());
    }

    let id = sh.record_start(&req);
    let fault = faults::take(&mut lock(&sh.faults), &req.method, &req.path);
    let mut reply = None;
    if let Some(f) = fault {
        tracing::debug!(method = %req.method, path = %req.path, "sim: fault applies");
        if let Some(d) = f.delay {
            tokio::time::sleep(d).await;
        }
        if f.drop {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "sim: dropped by fault",
            ));
        }
        if f.revoke {
            api::revoke_for(&sh, &req);
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
    let reply = reply.unwrap_or_else(|| api::handle(&sh, &req));
    sh.record_status(id, reply.status);
    Ok(reply.into_response())
}
