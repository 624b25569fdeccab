//! Who may ask: every request passes [`Access::refusal`] before it reaches a
//! route.
//!
//! - A request carrying an `Origin` header comes from a web page (browsers add
//!   it to cross-origin and to most same-origin requests; programs do not):
//!   403 on every path and every listener.
//! - On TCP, the `Host` (and the authority of an absolute-form target) must
//!   name the address the client connected to, or `localhost`, with the
//!   listener's port: a page that rebinds its own DNS name to 127.0.0.1 still
//!   sends its own name, so it gets 403 and no credential. A port may be left
//!   out only where it is 80, the default that HTTP clients omit. A Unix
//!   socket needs no such check: a browser cannot connect to one, and the
//!   socket file's mode decides who can.
//! - With a bearer token configured, every path but `/livez`, `/readyz` and
//!   `/metrics` needs `Authorization: Bearer <token>`, compared in constant
//!   time: 401 with `WWW-Authenticate: Bearer` otherwise.
//!
//! Refusals are JSON like the routes' errors and never echo the request.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// The paths that need no token: probes and metrics carry no credential.
const OPEN_PATHS: [&str; 3] = ["/livez", "/readyz", "/metrics"];

/// The listener a connection arrived on.
#[derive(Debug, Clone, Copy)]
pub(super) enum Listener {
    /// TCP, with the local address the client connected to.
    Tcp(SocketAddr),
    /// A Unix socket.
    Unix,
}

/// Why a request is refused; each maps to one answer in [`Refusal::response`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// It carries an `Origin` header: it comes from a web page.
    Origin,
    /// It has no `Host`, or more than one.
    NoHost,
    /// Its `Host` or target authority names another server.
    ForeignHost,
    /// It lacks the bearer token, or carries a wrong one.
    Token,
}

impl Refusal {
    /// The answer: status, and a reason that never echoes the request.
    fn response(self) -> Response {
        let (status, why) = match self {
            Refusal::Origin => (
                StatusCode::FORBIDDEN,
                "requests from web pages (with an Origin header) are refused",
            ),
            Refusal::NoHost => (StatusCode::BAD_REQUEST, "a request needs exactly one Host header"),
            Refusal::ForeignHost => (
                StatusCode::FORBIDDEN,
                "the Host must be this listener's address or localhost, with its port",
            ),
            Refusal::Token => (StatusCode::UNAUTHORIZED, "a valid bearer token is required"),
        };
        let body = format!("{}\n", serde_json::json!({ "error": why }));
        let mut r = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        if self == Refusal::Token {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// The access rules of one API.
#[derive(Debug, Clone)]
pub(super) struct Access {
    /// SHA-256 of the bearer token, when one is configured; comparing digests
    /// keeps the comparison's time independent of the token's length too.
    token: Option<[u8; 32]>,
}

impl Access {
    /// Rules with `token` required on `/v1/*` (and every other non-open path) when set.
    pub(super) fn new(token: Option<&Secret>) -> Access {
        Access {
            token: token.map(|t| digest(t.expose().as_bytes())),
        }
    }

    /// The answer refusing `req`, or `None` when it may proceed.
    pub(super) fn refusal<B>(&self, req: &Request<B>, listener: Listener) -> Option<Response> {
        self.check(req, listener).err().map(Refusal::response)
    }

    /// The first rule `req` breaks, in the order the module documents.
    fn check<B>(&self, req: &Request<B>, listener: Listener) -> Result<(), Refusal> {
        if req.headers().contains_key(header::ORIGIN) {
            return Err(Refusal::Origin);
        }
        if let Listener::Tcp(local) = listener {
            let mut hosts = req.headers().get_all(header::HOST).iter();
            let (Some(host), None) = (hosts.next(), hosts.next()) else {
                return Err(Refusal::NoHost);
            };
            let own = |a: &str| names_listener(a, local);
            if !host.to_str().is_ok_and(own) || req.uri().authority().is_some_and(|a| !own(a.as_str())) {
                return Err(Refusal::ForeignHost);
            }
        }
        let Some(expected) = &self.token else {
            return Ok(());
        };
        let valid = |t: &[u8]| bool::from(digest(t).ct_eq(expected));
        if OPEN_PATHS.contains(&req.uri().path()) || bearer(req.headers()).is_some_and(valid) {
            Ok(())
        } else {
            Err(Refusal::Token)
        }
    }
}

/// SHA-256 of `bytes`.
fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The token of the one `Authorization: Bearer …` header (the scheme is
/// case-insensitive), or `None`.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (all.next(), all.next()) else {
        return None;
    };
    let value = value.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(token.trim_ascii())
}

/// Whether `authority` (`host[:port]`) names the listener at `local`: the
/// host is `localhost` or the IP literal `local` has, and the port is
/// `local`'s (or absent when that is 80).
fn names_listener(authority: &str, local: SocketAddr) -> bool {
    let Ok(a) = authority.parse::<axum::http::uri::Authority>() else {
        return false;
    };
    if a.as_str().contains('@') {
        return false;
    }
    let port_ok = match a.port_u16() {
        Some(p) => p == local.port(),
        None => local.port() == 80 && !a.as_str().ends_with(':'),
    };
    let host = a.host();
    let host_ok = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical() == local.ip().to_canonical());
    port_ok && host_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)], uri: &str) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    const V4: &str = "127.0.0.1:9750";

    fn tcp(addr: &str) -> Listener {
        Listener::Tcp(addr.parse().unwrap())
    }

    #[test]
    fn hosts() {
        let v4: SocketAddr = V4.parse().unwrap();
        let v6: SocketAddr = "[::1]:9750".parse().unwrap();
        for ok in ["127.0.0.1:9750", "localhost:9750", "LocalHost:9750"] {
            assert!(names_listener(ok, v4), "{ok}");
        }
        assert!(names_listener("[::1]:9750", v6));
        assert!(names_listener("localhost:9750", v6));
        for bad in [
            "127.0.0.1",
            "127.0.0.1:",
            "127.0.0.1:80",
            "127.0.0.1:9751",
            "127.0.0.2:9750",
            "[::1]:9750",
            "evil.example:9750",
            "localhost.evil.example:9750",
            "127.0.0.1.nip.io:9750",
            "user@127.0.0.1:9750",
            "",
        ] {
            assert!(!names_listener(bad, v4), "{bad}");
        }
        // Only port 80 may be left out.
        assert!(names_listener("127.0.0.1", "127.0.0.1:80".parse().unwrap()));
        // A dual-stack listener sees IPv4 clients as mapped addresses.
        assert!(names_listener(
            "127.0.0.1:9750",
            "[::ffff:127.0.0.1]:9750".parse().unwrap()
        ));
    }

    #[test]
    fn the_rules_in_order() {
        let open = Access::new(None);
        let host = ("host", V4);
        assert_eq!(open.check(&req(&[host], "/v1/streams"), tcp(V4)), Ok(()));
        assert_eq!(
            open.check(&req(&[host, ("origin", "http://127.0.0.1:9750")], "/readyz"), tcp(V4)),
            Err(Refusal::Origin)
        );
        assert_eq!(
            open.check(&req(&[("origin", "null")], "/livez"), Listener::Unix),
            Err(Refusal::Origin)
        );
        assert_eq!(open.check(&req(&[], "/livez"), tcp(V4)), Err(Refusal::NoHost));
        assert_eq!(open.check(&req(&[host, host], "/livez"), tcp(V4)), Err(Refusal::NoHost));
        assert_eq!(
            open.check(&req(&[("host", "evil.example:9750")], "/livez"), tcp(V4)),
            Err(Refusal::ForeignHost)
        );
        assert_eq!(
            open.check(&req(&[host], "http://evil.example:9750/v1/streams"), tcp(V4)),
            Err(Refusal::ForeignHost)
        );
        assert_eq!(open.check(&req(&[], "/v1/streams"), Listener::Unix), Ok(()));
    }

    #[test]
    fn tokens() {
        let secret = Secret::new("0123456789abcdef0123");
        let a = Access::new(Some(&secret));
        let host = ("host", V4);
        let with = |auth: &str, path: &str| a.check(&req(&[host, ("authorization", auth)], path), tcp(V4));
        assert_eq!(with("Bearer 0123456789abcdef0123", "/v1/streams"), Ok(()));
        assert_eq!(with("bearer 0123456789abcdef0123", "/v1/events"), Ok(()));
        assert_eq!(with("Bearer 0123456789abcdef012", "/v1/streams"), Err(Refusal::Token));
        assert_eq!(with("Bearer 0123456789abcdef01234", "/v1/streams"), Err(Refusal::Token));
        assert_eq!(with("Basic 0123456789abcdef0123", "/v1/streams"), Err(Refusal::Token));
        assert_eq!(with("Bearer", "/v1/streams"), Err(Refusal::Token));
        assert_eq!(with("Bearer 0123456789abcdef0123", "/v2"), Ok(()));
        assert_eq!(a.check(&req(&[host], "/v1/streams/x"), tcp(V4)), Err(Refusal::Token));
        assert_eq!(a.check(&req(&[host], "/nothing"), tcp(V4)), Err(Refusal::Token));
        for open in OPEN_PATHS {
            assert_eq!(a.check(&req(&[host], open), tcp(V4)), Ok(()), "{open}");
        }
        assert_eq!(
            a.check(&req(&[], "/v1/streams"), Listener::Unix),
            Err(Refusal::Token),
            "a Unix socket needs the token too"
        );
        let r = Refusal::Token.response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
