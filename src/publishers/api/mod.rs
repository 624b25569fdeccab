//! The local HTTP API (`[api] listen`): the streams as JSON, long-poll for a
//! new generation, server-sent events, liveness, readiness and metrics.
//!
//! It listens on a loopback address or a Unix socket (mode 0660, removed on
//! exit); the config refuses other addresses unless `allow_remote` is set,
//! which in turn needs a bearer token. Every request passes the access rules
//! of [`access`] (no web page, no foreign `Host`, the token) before a route.
//! Handlers only read the hub's `watch` channels and its event broadcast, so
//! no client, however slow or numerous, can delay a scheduler; and none can
//! hold the server: headers must arrive within a timeout, and connections and
//! event streams are capped ([`crate::config::ApiLimits`]). The listener is
//! bound synchronously at start, so a taken port fails start-up loudly.

mod access;
mod ready;
mod routes;

pub use ready::{Readiness, state_file_reason};

use std::convert::Infallible;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::clock::SharedClock;
use crate::config::{Api, ApiListen};
use crate::publishers::metrics::Metrics;
use crate::hub::Hub;
use crate::publishers::state_file::writer::WriterStatus;

/// What the handlers read.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// Every stream's state.
    pub hub: Hub,
    /// The state-file writer's health (for `/readyz`).
    pub writer: watch::Receiver<WriterStatus>,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// The time seam.
    pub clock: SharedClock,
    /// Fired on shutdown: open long-polls and event streams end.
    pub cancel: CancellationToken,
    /// In lease mode, this replica's role per account (for `/readyz`).
    pub roles: crate::replicas::Roles,
}

/// A bound, not yet serving, listener.
#[derive(Debug)]
pub enum Bound {
    /// A TCP listener.
    Tcp(std::net::TcpListener),
    /// A Unix socket listener, its path and the socket file's inode (the file
    /// is removed on exit only if it is still that inode: ours).
    Unix(std::os::unix::net::UnixListener, PathBuf, u64),
}

impl Bound {
    /// Binds `listen`; a Unix socket gets mode 0660 and replaces a stale socket file.
    pub fn bind(listen: &ApiListen) -> std::io::Result<Bound> {
        match listen {
            ApiListen::Tcp(addr) => {
                let l = std::net::TcpListener::bind(addr)?;
                l.set_nonblocking(true)?;
                Ok(Bound::Tcp(l))
            }
            ApiListen::Unix(path) => {
                remove_stale_socket(path)?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let l = std::os::unix::net::UnixListener::bind(path)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
                l.set_nonblocking(true)?;
                let inode = std::fs::symlink_metadata(path)?.ino();
                Ok(Bound::Unix(l, path.clone(), inode))
            }
        }
    }

    /// The address, for logs.
    pub fn describe(&self) -> String {
        match self {
            Bound::Tcp(l) => l.local_addr().map(|a| format!("http://{a}")).unwrap_or_default(),
            Bound::Unix(_, p, _) => format!("unix:{}", p.display()),
        }
    }
}

/// Removes a socket file left by a previous run; refuses to remove anything
/// else, and refuses to remove a socket that another process still serves on.
fn remove_stale_socket(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is served by another running process", path.display()),
            )),
            Err(_) => std::fs::remove_file(path),
        },
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A listener being served.
enum Listening {
    /// TCP.
    Tcp(tokio::net::TcpListener),
    /// A Unix socket.
    Unix(tokio::net::UnixListener),
}

/// An accepted connection.
enum Accepted {
    /// TCP.
    Tcp(tokio::net::TcpStream),
    /// A Unix socket.
    Unix(tokio::net::UnixStream),
}

impl Listening {
    /// The next connection.
    async fn accept(&self) -> std::io::Result<Accepted> {
        match self {
            Listening::Tcp(l) => l.accept().await.map(|(s, _)| Accepted::Tcp(s)),
            Listening::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
        }
    }
}

/// How long to pause after a failed `accept`, by error class: a connection
/// that died before it was accepted costs nothing; a lack of descriptors or
/// memory is waited out rather than spun on.
fn accept_pause(e: &std::io::Error) -> Option<Duration> {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock => None,
        _ => Some(Duration::from_millis(100)),
    }
}

/// The API's routes over `state`, without a listener or the access rules:
/// for in-process drivers (the fuzz targets) that send requests with
/// `tower::ServiceExt`.
#[cfg(feature = "test-seams")]
pub fn router(state: ApiState) -> axum::Router {
    routes::router(state, crate::config::ApiLimits::default().max_event_streams)
}

/// Serves the API on `bound` with `api`'s token and limits until
/// `state.cancel` fires, then lets open connections finish.
///
/// Each connection holds one of `max_connections` slots; at the cap the loop
/// stops accepting and further clients wait in the kernel's listen backlog
/// until a slot frees, rather than being turned away. Slots free steadily:
/// a connection whose next request's headers do not arrive within
/// `header_read_timeout` is closed (so is an idle keep-alive one), a
/// long-poll lasts at most its `wait`, and event streams have their own cap.
pub async fn serve(bound: Bound, state: ApiState, api: Api) {
    let cancel = state.cancel.clone();
    let limits = api.limits;
    let router = routes::router(state, limits.max_event_streams);
    let access = Arc::new(access::Access::new(api.token.as_ref()));
    let slots = limits
        .max_connections
        .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let conns = Arc::new(Semaphore::new(slots));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let http = Arc::new(http);
    let (listening, socket) = match bound {
        Bound::Tcp(l) => (tokio::net::TcpListener::from_std(l).map(Listening::Tcp), None),
        Bound::Unix(l, path, inode) => (
            tokio::net::UnixListener::from_std(l).map(Listening::Unix),
            Some((path, inode)),
        ),
    };
    match listening {
        Ok(listening) => loop {
            let permit = tokio::select! {
                p = conns.clone().acquire_owned() => p,
                _ = cancel.cancelled() => break,
            };
            let Ok(permit) = permit else { break };
            let accepted = tokio::select! {
                a = listening.accept() => a,
                _ = cancel.cancelled() => break,
            };
            let conn = Conn {
                http: http.clone(),
                router: router.clone(),
                access: access.clone(),
                cancel: cancel.clone(),
                permit,
            };
            match accepted {
                Ok(Accepted::Tcp(s)) => match s.local_addr() {
                    Ok(local) => conn.spawn(s, access::Listener::Tcp(local)),
                    Err(e) => tracing::debug!(error = %e, "an API connection closed before it was served"),
                },
                Ok(Accepted::Unix(s)) => conn.spawn(s, access::Listener::Unix),
                Err(e) => match accept_pause(&e) {
                    None => tracing::debug!(error = %e, "an API connection failed before it was accepted"),
                    Some(pause) => {
                        tracing::warn!(error = %e, "the local API cannot accept connections");
                        tokio::time::sleep(pause).await;
                    }
                },
            }
        },
        Err(e) => tracing::error!(error = %e, "the local API stopped"),
    }
    // Nobody new can connect: the socket file goes now, even if a client
    // that stopped reading keeps its connection past the shutdown grace.
    // Another process may have replaced it since: never unlink a socket file
    // that is not the one we bound.
    if let Some((path, _)) = socket.filter(|(p, i)| std::fs::symlink_metadata(p).is_ok_and(|m| m.ino() == *i)) {
        let _ = std::fs::remove_file(&path);
    }
    // Every connection holds a slot until it ends: all slots back means all ended.
    let _ = conns.acquire_many(slots as u32).await;
}

/// What serving one connection needs.
struct Conn {
    /// The HTTP/1 settings (header timeout, timer).
    http: Arc<http1::Builder>,
    /// The routes.
    router: axum::Router,
    /// The access rules, checked before any route.
    access: Arc<access::Access>,
    /// Shutdown: the connection finishes its request in flight and closes.
    cancel: CancellationToken,
    /// The connection's slot, given back when it ends.
    permit: OwnedSemaphorePermit,
}

impl Conn {
    /// Serves `io`, which arrived on `listener`, on its own task.
    fn spawn<I>(self, io: I, listener: access::Listener)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            http,
            router,
            access,
            cancel,
            permit,
        } = self;
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let refusal = access.refusal(&req, listener);
            let router = router.clone();
            async move {
                match refusal {
                    Some(r) => Ok::<_, Infallible>(r),
                    None => router.oneshot(req.map(axum::body::Body::new)).await,
                }
            }
        });
        tokio::spawn(async move {
            let _slot = permit;
            let conn = http.serve_connection(TokioIo::new(io), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "an API connection ended");
            }
        });
    }
}
