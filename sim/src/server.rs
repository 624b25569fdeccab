//! The accept loop and the per-request pipeline: read the request, send
//! `/_sim/` to the admin endpoint, otherwise record it, apply the first
//! matching fault (delay, drop, reset, revoke, canned or padded answer), hand
//! the rest to the exchange endpoints, add the weight headers and print the
//! request's log line (when asked to).
//!
//! Connections are served with hyper-util directly (not through a router) so
//! that a `drop` fault can make the service fail, which makes hyper close the
//! connection without writing any answer. Each connection's socket is wrapped
//! in [`Abortable`], so a `reset` fault or an outage can abort it with a TCP
//! reset instead of a clean close.
//!
//! A `GET` asking for a WebSocket upgrade goes through the same pipeline
//! (recorded, faults applied) and is then answered by [`ws::accept`] instead
//! of the exchange endpoints; hyper hands the connection to the session once
//! the 101 is out (`serve_connection(…).with_upgrades()`).
//!
//! An outage ([`super::SimHandle::refuse_connections`], `POST /_sim/outage`)
//! closes the listening socket and aborts every open connection, so clients
//! meet "connection refused" (not a hung or half-open socket); when it ends the
//! same address is bound again.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::faults::{self, default_body};
use super::http::{Reply, SimRequest};
use super::shared::{Shared, lock};
use super::venue::{self, Venue};
use super::weight::{self, Verdict};
use super::{admin, api, ws};

/// The largest request body read, bytes.
const MAX_BODY: usize = 1 << 20;

/// How long after an outage is asked for it starts.
const OUTAGE_GRACE: Duration = Duration::from_millis(20);

/// How long re-binding the address after an outage is retried before giving up.
const REBIND_FOR: Duration = Duration::from_secs(10);

/// A connection's socket that can be aborted with a TCP reset: when its flag
/// is set, it refuses the orderly shutdown and sets a zero linger before the
/// socket is closed, so the peer gets an RST instead of a FIN.
struct Abortable {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Abortable {
    /// Arms the abort if the flag is set; true when it is.
    fn arm(&self) -> bool {
        let armed = self.reset.load(Ordering::SeqCst);
        if armed {
            let _ = self.inner.set_zero_linger();
        }
        armed
    }
}

impl Drop for Abortable {
    fn drop(&mut self) {
        self.arm();
    }
}

impl AsyncRead for Abortable {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Abortable {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.arm() {
            // No FIN: the socket is closed with an RST when dropped.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Accepts connections on `listener` until `cancel` fires; each connection
/// runs in its own task. Outages close the listener and re-bind its address.
pub async fn serve(listener: TcpListener, sh: Arc<Shared>, cancel: CancellationToken) {
    let addr = listener.local_addr().ok();
    let mut listener = listener;
    let mut outages = sh.outages.subscribe();
    outages.mark_unchanged();
    // Cancelled (aborting every open connection) when an outage starts.
    let mut open = cancel.child_token();
    loop {
        let (stream, peer) = tokio::select! {
            () = cancel.cancelled() => return,
            changed = outages.changed() => {
                if changed.is_err() {
                    return;
                }
                let length = *outages.borrow_and_update();
                // Let the answer to an admin request that asked for it get out first.
                tokio::time::sleep(OUTAGE_GRACE).await;
                drop(listener);
                open.cancel();
                open = cancel.child_token();
                tracing::info!(for_ms = length.as_millis() as u64, "sim: outage: refusing connections");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(length) => {}
                }
                match rebind(addr).await {
                    Some(l) => listener = l,
                    None => return,
                }
                tracing::info!("sim: outage over: accepting connections again");
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "sim: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (sh, open) = (sh.clone(), open.clone());
        tokio::spawn(async move {
            let reset = Arc::new(AtomicBool::new(false));
            let io = Abortable {
                inner: stream,
                reset: reset.clone(),
            };
            let service = {
                let (reset, open) = (reset.clone(), open.clone());
                service_fn(move |req| {
                    let conn = Conn {
                        peer: peer.ip(),
                        reset: reset.clone(),
                        open: open.clone(),
                    };
                    handle(sh.clone(), conn, req)
                })
            };
            // HTTP/1.1 only, as Binance's REST clients speak it (and
            // listenkeyd is built without HTTP/2): no h2 code in the binary.
            let conn = http1::Builder::new()
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            tokio::select! {
                () = open.cancelled() => reset.store(true, Ordering::SeqCst),
                res = conn => if let Err(e) = res {
                    tracing::trace!(error = %e, "sim: connection ended");
                },
            }
        });
    }
}

/// Binds `addr` again after an outage, retrying while the port is not yet free.
async fn rebind(addr: Option<SocketAddr>) -> Option<TcpListener> {
    let addr = addr?;
    let start = tokio::time::Instant::now();
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Some(l),
            Err(e) if start.elapsed() < REBIND_FOR => {
                tracing::debug!(error = %e, "sim: re-binding after the outage");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                tracing::error!(%addr, error = %e, "sim: cannot listen again after the outage; stopping");
                return None;
            }
        }
    }
}

/// The scope a request addresses, on its venue, for the request log.
fn scope_of(req: &SimRequest) -> Option<String> {
    match req.venue {
        Venue::Binance => api::scope_of(req),
        v => venue::scope_of(v, req),
    }
}

/// The connection a request came on.
struct Conn {
    /// The peer's address.
    peer: std::net::IpAddr,
    /// Set to end the connection with a TCP reset.
    reset: Arc<AtomicBool>,
    /// Cancelled when an outage starts.
    open: CancellationToken,
}

/// One request on `conn`, start to finish; `Err` closes the connection without an answer.
async fn handle(sh: Arc<Shared>, conn: Conn, req: Request<Incoming>) -> Result<Response<Body>, io::Error> {
    let reset = conn.reset.clone();
    let (mut parts, body) = req.into_parts();
    let upgrade = ws::wants_upgrade(&parts.method, &parts.headers)
        .then(|| parts.extensions.remove::<hyper::upgrade::OnUpgrade>())
        .flatten()
        .map(|on_upgrade| ws::Upgrade {
            on_upgrade,
            key: parts
                .headers
                .get("sec-websocket-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            peer: conn.peer,
            reset: conn.reset.clone(),
            open: conn.open.clone(),
        });
    let body = axum::body::to_bytes(axum::body::Body::new(body), MAX_BODY)
        .await
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
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
        return Ok(admin::handle(&sh, &req).into_response().map(Body::from));
    }

    let id = sh.record_start(&req);
    let stream = sh.log_requests.then(|| scope_of(&req)).flatten();
    let print = |reply: Option<&Reply>| {
        if sh.log_requests {
            // A closed stdout (the reader went away) must not fail the request.
            let _ = writeln!(
                io::stdout().lock(),
                "{}",
                super::log::line(&req, reply, stream.as_deref())
            );
        }
    };
    // The IP's request weight first: a refused request reaches no endpoint and no fault.
    let family = weight::family(&req.prefix, &req.path);
    let peer = conn.peer;
    let verdict = lock(&sh.weights).admit(
        sh.server_now(),
        peer,
        &family,
        req.api_key.as_deref(),
        weight::weight_of(&family, &req.path),
    );
    let weight_headers = match verdict {
        Verdict::Allowed(headers) => headers,
        Verdict::Refused { status, body, headers } => {
            let reply = Reply { status, headers, body };
            tracing::debug!(%peer, family, status, "sim: request weight over the limit");
            print(Some(&reply));
            sh.record_status(id, status);
            return Ok(reply.into_response().map(Body::from));
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
        tracing::debug!(method = %req.method, path = %req.path, "sim: fault applies");
        if let Some(d) = f.delay {
            tokio::time::sleep(d).await;
        }
        if f.reset {
            print(None);
            reset.store(true, Ordering::SeqCst);
            return Err(io::Error::new(io::ErrorKind::ConnectionReset, "sim: reset by fault"));
        }
        if f.drop {
            print(None);
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "sim: dropped by fault",
            ));
        }
        pad = f.pad;
        if f.revoke {
            api::revoke_for(&sh, &req);
        }
        if let (Some(status), Some(mut raw)) = (f.status, f.raw_body()) {
            // Bytes sent as they are: the answer need not be UTF-8, nor JSON.
            raw.extend(std::iter::repeat_n(b' ', f.pad.unwrap_or(0)));
            sh.record_status(id, status);
            let headers = f.headers.into_iter().collect();
            let resp = Reply {
                status,
                headers,
                body: String::new(),
            }
            .into_response();
            return Ok(resp.map(|_| Body::from(raw)));
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
    let mut reply = reply.unwrap_or_else(|| match (req.venue, upgrade) {
        (Venue::Binance, Some(up)) => ws::accept(&sh, &req, up),
        (Venue::Binance, None) => api::handle(&sh, &req),
        (v, _) => venue::handle(&sh, v, &req),
    });
    if let Some(n) = pad {
        reply.body.push_str(&" ".repeat(n));
    }
    // Weight headers as Binance sends them, unless a fault set its own.
    for (name, value) in weight_headers {
        if !reply.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            reply.headers.push((name, value));
        }
    }
    print(Some(&reply));
    sh.record_status(id, reply.status);
    Ok(reply.into_response().map(Body::from))
}
