//! The test-control endpoint under `/_sim/`: read and clear the request log,
//! add, list and clear faults, list live credentials, revoke one, skew the
//! clock, start an outage (refused connections for a while), and read or add
//! to every IP's request weight; the WebSocket controls are in
//! [`super::wsadmin`]. It needs no API key and is never recorded or faulted.

use serde::Deserialize;
use serde_json::json;

use super::faults::{ArmedFault, Fault};
use super::http::{Reply, SimRequest};
use super::shared::{MAX_SKEW_MS, Shared, lock};
use super::weight;

/// `POST /_sim/revoke` body: a scope or a value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    /// Every key and token of this stream id.
    scope: Option<String>,
    /// The key or token with this value.
    value: Option<String>,
}

/// `POST /_sim/clock` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    /// The new skew, ms (negative puts the simulator behind), at most [`MAX_SKEW_MS`] either way.
    skew_ms: i64,
}

/// The longest outage `POST /_sim/outage` starts: a day. An outage cannot be
/// ended early (the admin endpoint is refused with the rest), so a longer
/// one would only stop the simulator for good.
pub const MAX_OUTAGE: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// `POST /_sim/outage` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutageBody {
    /// How long to refuse connections, e.g. `"60s"`, at most [`MAX_OUTAGE`].
    #[serde(with = "humantime_serde")]
    duration: std::time::Duration,
}

/// `POST /_sim/weight` body: weight the other clients of an IP spend now.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightBody {
    /// The API family (`fapi`, `sapi`, `mexc/api`, …).
    family: String,
    /// The weight to add to the IP's current window.
    weight: u64,
    /// The client IP; 127.0.0.1 when absent.
    #[serde(default = "loopback")]
    ip: std::net::IpAddr,
}

/// 127.0.0.1.
fn loopback() -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
}

/// A 400 naming what was wrong with an admin request.
fn bad(msg: impl std::fmt::Display) -> Reply {
    Reply::json(400, json!({ "error": msg.to_string() }))
}

/// Faults from a JSON object, a JSON list, or text specs one per line.
pub fn parse_faults(body: &str) -> Result<Vec<Fault>, String> {
    let t = body.trim();
    let json = if t.starts_with('[') {
        serde_json::from_str(t).map_err(|e| e.to_string())?
    } else if t.starts_with('{') {
        serde_json::from_str(t).map(|f| vec![f]).map_err(|e| e.to_string())?
    } else {
        return t.lines().filter(|l| !l.trim().is_empty()).map(Fault::parse).collect();
    };
    json.iter().try_for_each(Fault::check)?;
    Ok(json)
}

/// Answers a request under `/_sim/`.
pub fn handle(sh: &Shared, req: &SimRequest) -> Reply {
    let ok = || Reply::json(200, json!({ "ok": true }));
    match (req.method.as_str(), req.path.trim_end_matches('/')) {
        ("GET", "/_sim/requests") => Reply::json(200, json!(*lock(&sh.requests))),
        ("DELETE", "/_sim/requests") => {
            lock(&sh.requests).clear();
            ok()
        }
        ("GET", "/_sim/faults") => Reply::json(200, json!(*lock(&sh.faults))),
        ("POST", "/_sim/faults") => match parse_faults(&req.body) {
            Ok(faults) => {
                let n = faults.len();
                lock(&sh.faults).extend(faults.into_iter().map(ArmedFault::new));
                Reply::json(200, json!({ "added": n }))
            }
            Err(e) => bad(e),
        },
        ("DELETE", "/_sim/faults") => {
            lock(&sh.faults).clear();
            ok()
        }
        ("GET", "/_sim/keys") => {
            let (now, skew) = (sh.now(), sh.skew_ms());
            Reply::json(200, json!(lock(&sh.store).active(now, skew)))
        }
        ("POST", "/_sim/revoke") => match serde_json::from_str::<RevokeBody>(&req.body) {
            Ok(RevokeBody {
                scope: Some(s),
                value: None,
            }) => Reply::json(200, json!({ "revoked": lock(&sh.store).revoke_scope(&s) })),
            Ok(RevokeBody {
                scope: None,
                value: Some(v),
            }) => Reply::json(200, json!({ "revoked": lock(&sh.store).revoke_value(&v) })),
            Ok(_) => bad("give exactly one of \"scope\" or \"value\""),
            Err(e) => bad(e),
        },
        ("GET", "/_sim/clock") => Reply::json(200, json!({ "skew_ms": sh.skew_ms(), "serverTime": sh.server_now() })),
        ("POST", "/_sim/clock") => match serde_json::from_str::<ClockBody>(&req.body) {
            Ok(b) if b.skew_ms.unsigned_abs() > MAX_SKEW_MS.unsigned_abs() => bad(format_args!(
                "skew_ms {} is more than {MAX_SKEW_MS} ms (366 days) either way",
                b.skew_ms
            )),
            Ok(b) => {
                sh.set_skew_ms(b.skew_ms);
                Reply::json(200, json!({ "skew_ms": b.skew_ms, "serverTime": sh.server_now() }))
            }
            Err(e) => bad(e),
        },
        ("POST", "/_sim/outage") => match serde_json::from_str::<OutageBody>(&req.body) {
            Ok(b) if b.duration > MAX_OUTAGE => bad(format_args!(
                "an outage of {} is over {}",
                humantime::format_duration(b.duration),
                humantime::format_duration(MAX_OUTAGE)
            )),
            // Answered before the listener closes: the outage starts when the serve loop sees it.
            Ok(b) => {
                sh.outages.send_replace(b.duration);
                Reply::json(200, json!({ "refusing_ms": b.duration.as_millis() as u64 }))
            }
            Err(e) => bad(e),
        },
        ("GET", "/_sim/weight") => Reply::json(200, json!(lock(&sh.weights).usage(sh.server_now()))),
        ("POST", "/_sim/weight") => match serde_json::from_str::<WeightBody>(&req.body) {
            Ok(b) if b.weight > weight::MAX_ADDED => bad(format_args!("weight is over {}", weight::MAX_ADDED)),
            Ok(b) => {
                lock(&sh.weights).add(sh.server_now(), b.ip, &b.family, b.weight);
                Reply::json(200, json!(lock(&sh.weights).usage(sh.server_now())))
            }
            Err(e) => bad(e),
        },
        _ => super::wsadmin::handle(sh, req).unwrap_or_else(Reply::not_found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulator whose clock stands at 1 800 000 000 000 ms, with 60 s keys.
    fn sim() -> Shared {
        Shared::new(
            std::sync::Arc::new(|| 1_800_000_000_000),
            0,
            60_000,
            Vec::new(),
            Default::default(),
            Vec::new(),
        )
    }

    /// Found with the `sim` fuzz target: a skew of i64::MAX overflowed every
    /// server time shown afterwards; the options endpoint's stated expiry
    /// still overflowed after that fix.
    #[test]
    fn an_extreme_clock_skew_saturates() {
        let sh = sim();
        for skew in [i64::MAX, i64::MIN] {
            // `POST /_sim/clock` refuses such a skew now; `SimHandle` still takes it.
            sh.set_skew_ms(skew);
            let time = SimRequest::new("GET", "/fapi/v1/time", None, String::new(), None);
            let expected = 1_800_000_000_000i64.saturating_add(skew);
            assert_eq!(
                super::super::api::handle(&sh, &time).body,
                format!(r#"{{"serverTime":{expected}}}"#)
            );
            let mint = SimRequest::new(
                "POST",
                "/sapi/v1/userListenToken",
                None,
                String::new(),
                Some("k".into()),
            );
            assert_eq!(super::super::api::handle(&sh, &mint).status, 200);
            // The options endpoint states the key's expiry, on the skewed clock.
            let options = SimRequest::new("POST", "/eapi/v1/listenKey", None, String::new(), Some("k".into()));
            let reply = super::super::api::handle(&sh, &options);
            assert_eq!(reply.status, 200, "{}", reply.body);
            let expiration = serde_json::from_str::<serde_json::Value>(&reply.body).unwrap()["expiration"].as_i64();
            assert_eq!(expiration, Some(1_800_000_060_000i64.saturating_add(skew)));
            let keys = SimRequest::new("GET", "/_sim/keys", None, String::new(), None);
            assert_eq!(handle(&sh, &keys).status, 200);
        }
    }

    /// `POST /_sim/clock` takes a skew up to a year either way and refuses
    /// a larger one with a 400 that names it, leaving the clock as it was.
    #[test]
    fn a_skew_past_a_year_is_refused() {
        let sh = sim();
        let set = |skew: i64| {
            let req = SimRequest::new("POST", "/_sim/clock", None, format!(r#"{{"skew_ms":{skew}}}"#), None);
            handle(&sh, &req)
        };
        for skew in [MAX_SKEW_MS, -MAX_SKEW_MS, 0, -1500] {
            assert_eq!(set(skew).status, 200, "{skew}");
            assert_eq!(sh.skew_ms(), skew);
        }
        for skew in [MAX_SKEW_MS + 1, -MAX_SKEW_MS - 1, i64::MAX, i64::MIN] {
            let reply = set(skew);
            assert_eq!(reply.status, 400, "{skew}");
            assert!(reply.body.contains(&skew.to_string()), "{}", reply.body);
            assert_eq!(sh.skew_ms(), -1500, "a refused skew changed the clock");
        }
    }

    /// `POST /_sim/outage` starts an outage of up to a day and refuses a
    /// longer one with a 400, starting none.
    #[test]
    fn an_outage_past_a_day_is_refused() {
        let sh = sim();
        let outage = |duration: &str| {
            let body = format!(r#"{{"duration":"{duration}"}}"#);
            handle(&sh, &SimRequest::new("POST", "/_sim/outage", None, body, None))
        };
        for far in ["24h 1ms", "500years"] {
            let reply = outage(far);
            assert_eq!(reply.status, 400, "{far}: {}", reply.body);
            assert!(reply.body.contains("over 1day"), "{}", reply.body);
            assert_eq!(
                *sh.outages.borrow(),
                std::time::Duration::ZERO,
                "a refused outage started"
            );
        }
        assert_eq!(outage("18446744073709551616s").status, 400, "past a Duration");
        let reply = outage("24h");
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, r#"{"refusing_ms":86400000}"#)
        );
        assert_eq!(*sh.outages.borrow(), MAX_OUTAGE);
    }

    #[test]
    fn fault_bodies() {
        assert_eq!(parse_faults(r#"{"status":503}"#).unwrap().len(), 1);
        assert_eq!(parse_faults(r#"[{"status":503},{"drop":true}]"#).unwrap().len(), 2);
        assert_eq!(parse_faults("PUT * drop\n\nPOST * status=429\n").unwrap().len(), 2);
        assert!(parse_faults("PUT").is_err());
        // The JSON form is held to the text form's rules: no status the HTTP
        // layer would turn into a 500 unasked, no body that would be dropped.
        assert!(parse_faults(r#"{"status":599,"body_base64":"/w=="}"#).is_ok());
        for bad in [
            r#"{"status":0}"#,
            r#"[{"status":503},{"status":1000}]"#,
            r#"{"status":200,"body_base64":"!!"}"#,
        ] {
            assert!(parse_faults(bad).is_err(), "{bad} was accepted");
        }
    }
}
