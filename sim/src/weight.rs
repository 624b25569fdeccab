//! Request weight, as Binance reports it in every answer's headers: the weight
//! used in the current minute, per IP (`X-MBX-USED-WEIGHT-1M`) and, on `/sapi`,
//! per IP and per account (`X-SAPI-USED-IP-WEIGHT-1M`,
//! `X-SAPI-USED-UID-WEIGHT-1M`). Every request weighs 1, as the listen-key and
//! listen-token endpoints do. The simulator has one client IP in mind (the
//! counts are per API family, not per peer); the counters start over each
//! minute of the simulator's clock.

use std::collections::HashMap;

/// Weight used in the current minute.
#[derive(Debug, Default)]
pub struct Weights {
    /// The minute counted (ms since the epoch / 60 000).
    minute: i64,
    /// Weight per API family (`api`, `sapi`, `fapi`, …).
    ip: HashMap<String, u64>,
    /// `/sapi` weight per API key.
    uid: HashMap<String, u64>,
}

/// The family of `path`: its first segment (`/fapi/v1/ping` → `fapi`).
fn family(path: &str) -> &str {
    path.trim_start_matches('/').split('/').next().unwrap_or("")
}

impl Weights {
    /// Counts one request to `path` at `now_ms` (by `api_key`, if sent) and
    /// returns the weight headers of its answer.
    pub fn charge(&mut self, now_ms: i64, path: &str, api_key: Option<&str>) -> Vec<(String, String)> {
        let minute = now_ms.div_euclid(60_000);
        if minute != self.minute {
            self.minute = minute;
            self.ip.clear();
            self.uid.clear();
        }
        let fam = family(path);
        let ip = self.ip.entry(fam.to_owned()).or_default();
        *ip += 1;
        let ip = *ip;
        if fam != "sapi" {
            return vec![("X-MBX-USED-WEIGHT-1M".into(), ip.to_string())];
        }
        let mut headers = vec![("X-SAPI-USED-IP-WEIGHT-1M".into(), ip.to_string())];
        if let Some(key) = api_key.map(str::trim).filter(|k| !k.is_empty()) {
            let uid = self.uid.entry(key.to_owned()).or_default();
            *uid += 1;
            headers.push(("X-SAPI-USED-UID-WEIGHT-1M".into(), uid.to_string()));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_family_and_minute() {
        let mut w = Weights::default();
        assert_eq!(
            w.charge(0, "/fapi/v1/ping", None),
            vec![("X-MBX-USED-WEIGHT-1M".to_owned(), "1".to_owned())]
        );
        assert_eq!(w.charge(1, "/fapi/v1/listenKey", Some("k"))[0].1, "2");
        assert_eq!(w.charge(2, "/dapi/v1/ping", None)[0].1, "1");
        let sapi = w.charge(3, "/sapi/v1/userListenToken", Some("k"));
        assert_eq!(sapi[0], ("X-SAPI-USED-IP-WEIGHT-1M".to_owned(), "1".to_owned()));
        assert_eq!(sapi[1], ("X-SAPI-USED-UID-WEIGHT-1M".to_owned(), "1".to_owned()));
        assert_eq!(w.charge(60_000, "/fapi/v1/ping", None)[0].1, "1", "a new minute");
    }
}
