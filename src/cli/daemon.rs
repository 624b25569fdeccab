//! Asking a running daemon how it is, through its local API: `status` and
//! `health` use it to report what the state file cannot carry (a state file
//! the daemon fails to write). One `GET /readyz` over the configured TCP
//! address or Unix socket, bounded by [`TIMEOUT`]; no answer is not an error.
//! `/readyz` needs no bearer token, so these commands never read the token
//! file (a consumer may not be allowed to).

use std::io::{Read, Write};
use std::time::Duration;

use crate::config::ApiListen;
use crate::publishers::api::Readiness;

/// The bound on connecting to, writing to and reading from the daemon.
pub const TIMEOUT: Duration = Duration::from_secs(1);
/// The most of an answer read.
const MAX_ANSWER: u64 = 64 * 1024;

/// Sends `GET /readyz` and reads its JSON answer, or `None` if the daemon
/// does not answer (or not with the answer's JSON).
pub fn readiness(listen: &ApiListen) -> Option<Readiness> {
    let answer = match listen {
        ApiListen::Tcp(addr) => {
            let s = std::net::TcpStream::connect_timeout(addr, TIMEOUT).ok()?;
            s.set_read_timeout(Some(TIMEOUT)).ok()?;
            s.set_write_timeout(Some(TIMEOUT)).ok()?;
            ask(s, &addr.to_string())?
        }
        ApiListen::Unix(path) => {
            let s = std::os::unix::net::UnixStream::connect(path).ok()?;
            s.set_read_timeout(Some(TIMEOUT)).ok()?;
            s.set_write_timeout(Some(TIMEOUT)).ok()?;
            ask(s, "localhost")?
        }
    };
    body(&answer)
}

/// The [`Readiness`] in an HTTP answer's body.
fn body(answer: &[u8]) -> Option<Readiness> {
    let at = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    serde_json::from_slice(&answer[at + 4..]).ok()
}

/// Sends the request on a connected stream and reads the whole answer.
/// `host` is the `Host` the API accepts: the TCP address connected to
/// (`127.0.0.1:9750`, `[::1]:9750`), anything on a Unix socket.
fn ask<S: Read + Write>(mut s: S, host: &str) -> Option<Vec<u8>> {
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    s.take(MAX_ANSWER).read_to_end(&mut answer).ok()?;
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_read_as_json() {
        let answer = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\r\n\
            {\"ready\":false,\"reasons\":[\"state file: disk full\"],\"state_file_error\":\"disk full\",\
            \"accounts\":{\"main\":\"alone\"},\"warnings\":[\"w\"]}\n";
        let r = body(answer).unwrap();
        assert!(!r.ready);
        assert_eq!(r.state_file_error.as_deref(), Some("disk full"));
        assert_eq!(r.reasons, ["state file: disk full"]);
        assert_eq!(r.accounts["main"], "alone");
        assert_eq!(r.warnings, ["w"]);
        assert_eq!(body(b"HTTP/1.1 200 OK\r\n\r\nnot json"), None);
    }
}
