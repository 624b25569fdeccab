//! Name lookups for the exchange client. Names go to the system's resolver
//! (`getaddrinfo`, so `/etc/hosts` and the host's NSS modules such as
//! `myhostname` apply, as for every other program on the host), with one
//! rule on top: a name RFC 6761 keeps for loopback (`localhost` and
//! `*.localhost`) is only ever connected to on a loopback address. The config
//! allows plain `http://` to such a name, so an answer that points one
//! elsewhere (a resolver that forwards `*.localhost` to DNS) must not carry
//! the API key off the host in clear text.

use std::io;
use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `host` is a name RFC 6761 reserves for loopback: `localhost` or a
/// name under it, any case, with or without the root's trailing dot.
pub fn is_loopback_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let lower = host.to_ascii_lowercase();
    lower == "localhost" || (lower.ends_with(".localhost") && lower.len() > ".localhost".len())
}

/// The system resolver, with loopback names held to loopback addresses.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // The port is replaced by the connector; getaddrinfo wants one.
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let addrs = keep_allowed(&host, found)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The addresses the client may connect to for `host`: all of them, or for a
/// loopback name its loopback ones, failing when there are none.
fn keep_allowed(host: &str, found: Vec<SocketAddr>) -> io::Result<Vec<SocketAddr>> {
    if !is_loopback_name(host) {
        return Ok(found);
    }
    let kept: Vec<SocketAddr> = found.into_iter().filter(|a| a.ip().is_loopback()).collect();
    if kept.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("{host} resolved to no loopback address; a *.localhost name is only used on loopback"),
        ));
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names() {
        for yes in ["localhost", "LOCALHOST", "localhost.", "sim.localhost", "a.b.Localhost."] {
            assert!(is_loopback_name(yes), "{yes}");
        }
        for no in ["", ".localhost", "localhost.com", "notlocalhost", "fapi.binance.com", "localhost.."] {
            assert!(!is_loopback_name(no), "{no}");
        }
    }

    #[test]
    fn a_loopback_name_keeps_only_loopback_addresses() {
        let addrs = |s: &[&str]| s.iter().map(|a| a.parse::<SocketAddr>().unwrap()).collect::<Vec<_>>();
        let found = addrs(&["203.0.113.7:0", "127.0.0.1:0", "[::1]:0"]);
        assert_eq!(keep_allowed("sim.localhost", found.clone()).unwrap(), addrs(&["127.0.0.1:0", "[::1]:0"]));
        assert_eq!(keep_allowed("fapi.binance.com", found.clone()).unwrap(), found);
        let err = keep_allowed("sim.localhost", addrs(&["203.0.113.7:0"])).unwrap_err();
        assert!(err.to_string().contains("no loopback address"), "{err}");
    }

    #[tokio::test]
    async fn localhost_resolves_to_loopback_through_the_system() {
        let name: Name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = SystemResolver.resolve(name).await.unwrap().collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
