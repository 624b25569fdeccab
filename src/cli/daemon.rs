//! Asking a running daemon how it is, through its local API: `status` and
//! `health` use it to report what the state file cannot carry (a state file
//! the daemon fails to write). One `GET /readyz` over the configured TCP
//! address or Unix socket, bounded by [`TIMEOUT`]; no answer is not an error.
//! `/readyz` needs no bearer token, so these commands never read the token
//! file (a consumer may not be allowed to).

use std::io::{Read, Write};
use std::time::Duration;

use crate::config::ApiListen;
use crate::publishers::api::NotReady;

/// The bound on connecting to, writing to and reading from the daemon.
pub const TIMEOUT: Duration = Duration::from_secs(1);
/// The most of an answer read.
const MAX_ANSWER: u64 = 64 * 1024;

/// What `/readyz` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Why the daemon is not ready; empty when it is.
    pub reasons: Vec<NotReady>,
    /// Replicas: this daemon's role per account (`holder`, `standby`, `alone`).
    pub accounts: Vec<(String, String)>,
    /// What is wrong without making it unready (an account kept without its lease).
    pub warnings: Vec<String>,
}

/// Sends `GET /readyz` and reads the answer, or `None` if the daemon does not answer.
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
    let text = String::from_utf8_lossy(&answer);
    let (_, body) = text.split_once("\r\n\r\n")?;
    let json: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
    let reasons = json
        .get("reasons")
        .and_then(|r| r.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str().map(NotReady::parse)).collect())
        .unwrap_or_default();
    let accounts = json
        .get("accounts")
        .and_then(|a| a.as_object())
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("?").to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let warnings = json
        .get("warnings")
        .and_then(|r| r.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    Some(Readiness {
        reasons,
        accounts,
        warnings,
    })
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
    fn reasons_are_read_once_and_written_back_as_they_came() {
        let write = "state file: cannot write /var/lib/listenkeyd/keys.json: No space left on device (os error 28)";
        let r = NotReady::parse(write);
        assert_eq!(
            r,
            NotReady::StateFile(
                "cannot write /var/lib/listenkeyd/keys.json: No space left on device (os error 28)".into()
            )
        );
        assert_eq!(r.to_string(), write);
        for other in ["usdm-futures: expired", "options: no value (refreshing)", "no streams"] {
            assert_eq!(NotReady::parse(other), NotReady::Other(other.into()));
            assert_eq!(NotReady::parse(other).to_string(), other);
        }
        // A stream's reason that mentions the state file is still the stream's.
        let stream = "x: no value (state file: y)";
        assert_eq!(NotReady::parse(stream), NotReady::Other(stream.into()));
    }
}
