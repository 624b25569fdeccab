//! Asking a running daemon how it is, through its local API: `status` and
//! `health` use it to report what the state file cannot carry (a state file
//! the daemon fails to write). One `GET /readyz` over the configured TCP
//! address or Unix socket, bounded by [`TIMEOUT`]; no answer is not an error.

use std::io::{Read, Write};
use std::time::Duration;

use crate::config::ApiListen;

/// The bound on connecting to, writing to and reading from the daemon.
pub const TIMEOUT: Duration = Duration::from_secs(1);
/// The most of an answer read.
const MAX_ANSWER: u64 = 64 * 1024;

/// What `/readyz` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Why the daemon is not ready; empty when it is.
    pub reasons: Vec<String>,
}

/// Sends `GET /readyz` and reads the answer, or `None` if the daemon does not answer.
pub fn readiness(listen: &ApiListen) -> Option<Readiness> {
    let answer = match listen {
        ApiListen::Tcp(addr) => {
            let s = std::net::TcpStream::connect_timeout(addr, TIMEOUT).ok()?;
            s.set_read_timeout(Some(TIMEOUT)).ok()?;
            s.set_write_timeout(Some(TIMEOUT)).ok()?;
            ask(s)?
        }
        ApiListen::Unix(path) => {
            let s = std::os::unix::net::UnixStream::connect(path).ok()?;
            s.set_read_timeout(Some(TIMEOUT)).ok()?;
            s.set_write_timeout(Some(TIMEOUT)).ok()?;
            ask(s)?
        }
    };
    let text = String::from_utf8_lossy(&answer);
    let (_, body) = text.split_once("\r\n\r\n")?;
    let json: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
    let reasons = json
        .get("reasons")
        .and_then(|r| r.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    Some(Readiness { reasons })
}

/// Sends the request on a connected stream and reads the whole answer.
fn ask<S: Read + Write>(mut s: S) -> Option<Vec<u8>> {
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: listenkeyd\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut answer = Vec::new();
    s.take(MAX_ANSWER).read_to_end(&mut answer).ok()?;
    Some(answer)
}
