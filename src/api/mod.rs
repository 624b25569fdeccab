//! The local HTTP API (`[api] listen`): the streams as JSON, long-poll for a
//! new generation, server-sent events, liveness, readiness and metrics.
//!
//! It listens on a loopback address or a Unix socket (mode 0660, removed on
//! exit); the config refuses other addresses unless `allow_remote` is set.
//! Handlers only read the hub's `watch` channels and its event broadcast, so
//! no client, however slow or numerous, can delay a scheduler. The listener is
//! bound synchronously at start, so a taken port fails start-up loudly.

mod routes;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::ApiListen;
use crate::metrics::Metrics;
use crate::publish::Hub;
use crate::publish::writer::WriterStatus;

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
}

/// A bound, not yet serving, listener.
#[derive(Debug)]
pub enum Bound {
    /// A TCP listener.
    Tcp(std::net::TcpListener),
    /// A Unix socket listener and its path (removed on exit).
    Unix(std::os::unix::net::UnixListener, PathBuf),
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
                Ok(Bound::Unix(l, path.clone()))
            }
        }
    }

    /// The address, for logs.
    pub fn describe(&self) -> String {
        match self {
            Bound::Tcp(l) => l.local_addr().map(|a| format!("http://{a}")).unwrap_or_default(),
            Bound::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }
}

/// Removes a socket file left by a previous run; refuses to remove anything else.
fn remove_stale_socket(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The API's routes over `state`, without a listener: for in-process
/// drivers (the fuzz targets) that send requests with `tower::ServiceExt`.
#[doc(hidden)]
pub fn router(state: ApiState) -> axum::Router {
    routes::router(state)
}

/// Serves the API on `bound` until `state.cancel` fires.
pub async fn serve(bound: Bound, state: ApiState) {
    let cancel = state.cancel.clone();
    let app = routes::router(state);
    let result = match bound {
        Bound::Tcp(l) => match tokio::net::TcpListener::from_std(l) {
            Ok(l) => {
                axum::serve(l, app)
                    .with_graceful_shutdown(cancel.cancelled_owned())
                    .await
            }
            Err(e) => Err(e),
        },
        Bound::Unix(l, path) => {
            let r = match tokio::net::UnixListener::from_std(l) {
                Ok(l) => {
                    axum::serve(l, app)
                        .with_graceful_shutdown(cancel.cancelled_owned())
                        .await
                }
                Err(e) => Err(e),
            };
            let _ = std::fs::remove_file(&path);
            r
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "the local API stopped");
    }
}
