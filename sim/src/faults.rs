//! Fault injection: what a fault is, how it is written on the command line,
//! and which request it applies to.
//!
//! A [`Fault`] names the requests it matches (method, path prefix) and what
//! happens to them (a delay, a dropped or reset connection, a silently revoked
//! key, a canned answer, a padded answer). `after` skips the first matching
//! requests and `count` bounds how many it applies to; a spent fault stays
//! listed but does nothing. Faults are tried in the order they were added and the first applicable one
//! wins; later faults do not see that request.
//!
//! Text form (the `--fault` flag, and `POST /_sim/faults` with a non-JSON body):
//!
//! ```text
//! METHOD PATH [status=N] [count=N] [after=N] [delay=DUR] [header=Name:Value]... [drop] [reset] [revoke] [limit] [pad=BYTES] [body64=BASE64] [body=REST]
//! ```
//!
//! `limit` answers as the request's venue answers a rate limit, in its own
//! shape (Binance's 429 with -1003, HashKey's 400 with `"0003"`, BingX's
//! `100410`, …); `header=` adds to it (`Retry-After`).
//!
//! `body64=` gives the answer's body as base64-encoded bytes, sent as they
//! are: a body that is not UTF-8, or holds control characters a text form
//! cannot carry. With `status` and `header=` it serves any answer at all.
//!
//! `drop` closes the connection without an answer (a FIN); `reset` aborts it
//! (a TCP RST, what a crashing proxy or a stateful firewall sends). `pad=N`
//! appends N spaces to the answer's body (the canned one, or the real answer
//! when no `status` is given), which keeps it valid JSON but oversized; at
//! most [`MAX_PAD`] bytes, so a fault cannot make the simulator itself run out
//! of memory.
//!
//! `delay=` is at most [`MAX_DELAY`] (an hour).
//!
//! `METHOD` and `PATH` may be `*` (any). `PATH` is a prefix. `body=` takes the
//! rest of the line, spaces included, so it comes last.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// One injected fault, as given on the command line or to `POST /_sim/faults`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// The HTTP method it matches (upper case); `None` matches any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The path prefix it matches; `None` matches any path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// How many matching requests it applies to before it is spent; `None` is forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// How many matching requests it lets through untouched before it starts applying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// The status to answer instead of handling the request normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The body sent with `status` (a JSON value is accepted and serialized); default per status.
    #[serde(
        default,
        deserialize_with = "string_or_json",
        skip_serializing_if = "Option::is_none"
    )]
    pub body: Option<String>,
    /// The body as base64 bytes (standard alphabet), sent as is instead of `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// Extra response headers sent with `status`, e.g. `Retry-After`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A wait before answering (or dropping), e.g. `"2s"`, at most [`MAX_DELAY`].
    #[serde(
        default,
        serialize_with = "humantime_serde::serialize",
        deserialize_with = "bounded_delay",
        skip_serializing_if = "Option::is_none"
    )]
    pub delay: Option<Duration>,
    /// Close the connection without any answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drop: bool,
    /// Abort the connection with a TCP reset, without any answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
    /// Spaces appended to the answer's body (an oversized but well-formed answer), at most [`MAX_PAD`].
    #[serde(default, deserialize_with = "bounded_pad", skip_serializing_if = "Option::is_none")]
    pub pad: Option<usize>,
    /// Silently remove the account's credential for the request's scope, then carry on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoke: bool,
    /// Answer as the request's venue answers a rate limit, in its own shape.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub limit: bool,
}

/// The largest `pad` a fault may ask for: far past any client's answer limit
/// (the keeper reads at most 64 KiB), small enough to build in memory.
pub const MAX_PAD: usize = 16 * 1024 * 1024;

/// Refuses a `pad` over [`MAX_PAD`] in the JSON form, as the text form does.
fn bounded_pad<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    match Option::<usize>::deserialize(d)? {
        Some(n) if n > MAX_PAD => Err(serde::de::Error::custom(format!("pad {n} is over {MAX_PAD} bytes"))),
        n => Ok(n),
    }
}

/// The longest `delay` a fault may ask for: an hour, far past any client's
/// request timeout. A longer one would only hold the connection and its task.
pub const MAX_DELAY: Duration = Duration::from_secs(60 * 60);

/// Refuses a `delay` over [`MAX_DELAY`] in the JSON form, as the text form does.
fn bounded_delay<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match humantime_serde::deserialize::<Option<Duration>, D>(d)? {
        Some(t) if t > MAX_DELAY => Err(serde::de::Error::custom(format!(
            "delay {} is over {}",
            humantime::format_duration(t),
            humantime::format_duration(MAX_DELAY)
        ))),
        t => Ok(t),
    }
}

/// Accepts `"body": "text"` as is and any other JSON value in its serialized form.
fn string_or_json<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(v) => Some(v.to_string()),
    })
}

impl Fault {
    /// Parses the text form, e.g. `PUT /fapi/v1/listenKey status=503 count=3`.
    pub fn parse(spec: &str) -> Result<Fault, String> {
        let spec = spec.trim();
        let (method, rest) = split_word(spec);
        let (path, mut rest) = split_word(rest);
        if method.is_empty() || path.is_empty() {
            return Err(format!(
                "fault {spec:?}: expected `METHOD PATH [options]` (use * for any)"
            ));
        }
        let mut f = Fault {
            method: (method != "*").then(|| method.to_ascii_uppercase()),
            path: (path != "*").then(|| path.to_owned()),
            ..Fault::default()
        };
        if let Some(p) = &f.path
            && !p.starts_with('/')
        {
            return Err(format!("fault {spec:?}: the path must start with / (or be *)"));
        }
        while !rest.is_empty() {
            if let Some(body) = rest.strip_prefix("body=") {
                f.body = Some(body.to_owned());
                break;
            }
            let (word, tail) = split_word(rest);
            rest = tail;
            let bad = |what: &str| format!("fault {spec:?}: {what} in {word:?}");
            match word.split_once('=') {
                None if word == "drop" => f.drop = true,
                None if word == "reset" => f.reset = true,
                Some(("pad", v)) => match v.parse() {
                    Ok(n) if n <= MAX_PAD => f.pad = Some(n),
                    Ok(_) => return Err(bad("pad over 16 MiB")),
                    Err(_) => return Err(bad("not a size in bytes")),
                },
                None if word == "revoke" => f.revoke = true,
                None if word == "limit" => f.limit = true,
                Some(("status", v)) => {
                    let s: u16 = v.parse().map_err(|_| bad("not a status"))?;
                    if !(100..=999).contains(&s) {
                        return Err(bad("status out of range"));
                    }
                    f.status = Some(s);
                }
                Some(("body64", v)) => {
                    raw_bytes(v).map_err(|_| bad("not base64"))?;
                    f.body_base64 = Some(v.to_owned());
                }
                Some(("count", v)) => f.count = Some(v.parse().map_err(|_| bad("not a count"))?),
                Some(("after", v)) => f.after = Some(v.parse().map_err(|_| bad("not a count"))?),
                Some(("delay", v)) => match humantime::parse_duration(v) {
                    Ok(t) if t <= MAX_DELAY => f.delay = Some(t),
                    Ok(_) => return Err(bad("delay over 1 h")),
                    Err(_) => return Err(bad("not a duration")),
                },
                Some(("header", v)) => {
                    let (name, value) = v.split_once(':').ok_or_else(|| bad("expected Name:Value"))?;
                    if name.is_empty() {
                        return Err(bad("empty header name"));
                    }
                    f.headers.insert(name.to_owned(), value.trim().to_owned());
                }
                _ => return Err(bad("unknown option")),
            }
        }
        if (f.body.is_some() || f.body_base64.is_some()) && f.status.is_none() {
            f.status = Some(200);
        }
        Ok(f)
    }

    /// Checks what the JSON form's types leave open and the text form checks
    /// as it parses: a status from 100 to 999 and a `body_base64` that is base64.
    pub fn check(&self) -> Result<(), String> {
        if let Some(s) = self.status
            && !(100..=999).contains(&s)
        {
            return Err(format!("status {s} is not from 100 to 999"));
        }
        if self.body_base64.as_deref().is_some_and(|b| raw_bytes(b).is_err()) {
            return Err("body_base64 is not base64".into());
        }
        Ok(())
    }

    /// The raw body bytes of `body_base64`, if given and valid.
    pub fn raw_body(&self) -> Option<Vec<u8>> {
        self.body_base64.as_deref().and_then(|b| raw_bytes(b).ok())
    }

    /// Whether it names this request (ignoring `after` and `count`).
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.path.as_deref().is_none_or(|p| path.starts_with(p))
    }
}

/// Decodes standard base64.
fn raw_bytes(b64: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(b64)
}

/// The first whitespace-separated word and the trimmed rest.
fn split_word(s: &str) -> (&str, &str) {
    match s.split_once(char::is_whitespace) {
        Some((w, rest)) => (w, rest.trim_start()),
        None => (s, ""),
    }
}

/// The body Binance sends with `status` when a fault names none.
pub fn default_body(status: u16) -> &'static str {
    match status {
        200 => "{}",
        404 => r#"{"code":-5,"msg":"not found"}"#,
        401 => r#"{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}"#,
        408 => {
            r#"{"code":-1007,"msg":"Timeout waiting for response from backend server. Send status unknown; execution status unknown."}"#
        }
        410 => r#"{"code":-5,"msg":"This endpoint has been retired."}"#,
        418 => r#"{"code":-1003,"msg":"Way too many requests; IP banned."}"#,
        429 => r#"{"code":-1003,"msg":"Too many requests."}"#,
        500..=599 => {
            r#"{"code":-1001,"msg":"Internal error; unable to process your request. Please try your request again."}"#
        }
        _ => r#"{"code":-1000,"msg":"An unknown error occurred while processing the request."}"#,
    }
}

/// A fault with its counters, as kept by the simulator and listed by `GET /_sim/faults`.
#[derive(Debug, Clone, Serialize)]
pub struct ArmedFault {
    /// The fault as given.
    #[serde(flatten)]
    pub fault: Fault,
    /// Matching requests seen so far.
    pub seen: u64,
    /// Requests it has been applied to so far.
    pub applied: u64,
}

impl ArmedFault {
    /// Arms `fault` with zeroed counters.
    pub fn new(fault: Fault) -> ArmedFault {
        ArmedFault {
            fault,
            seen: 0,
            applied: 0,
        }
    }
}

/// The first fault that applies to this request, counting it; `None` lets it through.
pub fn take(faults: &mut [ArmedFault], method: &str, path: &str) -> Option<Fault> {
    for a in faults.iter_mut() {
        if !a.fault.matches(method, path) {
            continue;
        }
        a.seen += 1;
        if a.seen <= a.fault.after.unwrap_or(0) {
            continue;
        }
        if a.fault.count.is_some_and(|c| a.applied >= c) {
            continue;
        }
        a.applied += 1;
        return Some(a.fault.clone());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_examples() {
        let f = Fault::parse("PUT /fapi/v1/listenKey status=503 count=3").unwrap();
        assert_eq!(f.method.as_deref(), Some("PUT"));
        assert_eq!(f.path.as_deref(), Some("/fapi/v1/listenKey"));
        assert_eq!((f.status, f.count), (Some(503), Some(3)));

        let f = Fault::parse("POST * status=429 header=Retry-After:5 count=1").unwrap();
        assert_eq!(f.path, None);
        assert_eq!(f.headers.get("Retry-After").map(String::as_str), Some("5"));

        let f = Fault::parse("* /sapi/v1/userDataStream/isolated status=410").unwrap();
        assert_eq!((f.method, f.status), (None, Some(410)));

        let f = Fault::parse("PUT * drop count=2").unwrap();
        assert!(f.drop && f.count == Some(2));

        let f = Fault::parse("put * delay=15s after=1 revoke").unwrap();
        assert_eq!(f.method.as_deref(), Some("PUT"));
        assert_eq!(
            (f.delay, f.after, f.revoke),
            (Some(Duration::from_secs(15)), Some(1), true)
        );

        let f = Fault::parse("PUT * reset count=1").unwrap();
        assert!(f.reset && !f.drop);

        let f = Fault::parse("POST * pad=70000").unwrap();
        assert_eq!((f.status, f.pad), (None, Some(70_000)), "pads the real answer");

        let f = Fault::parse("POST * header=Retry-After:-5 body64=/w==").unwrap();
        assert_eq!((f.status, f.raw_body()), (Some(200), Some(vec![0xff])));

        let f = Fault::parse(r#"POST * status=200 body={"code":-1125,"msg":"x y"}"#).unwrap();
        assert_eq!(f.body.as_deref(), Some(r#"{"code":-1125,"msg":"x y"}"#));
    }

    #[test]
    fn refuses_bad_specs() {
        for bad in [
            "",
            "PUT",
            "PUT fapi status=503",
            "PUT * status=abc",
            "PUT * frob",
            "PUT * header=x",
            "PUT * pad=big",
            "PUT * pad=16777217",
            "PUT * body64=!!",
            "* * delay=soon",
        ] {
            assert!(Fault::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn pad_is_bounded_in_both_forms() {
        let json = |n: usize| serde_json::from_str::<Fault>(&format!(r#"{{"pad":{n}}}"#));
        assert_eq!(json(MAX_PAD).map(|f| f.pad).ok(), Some(Some(MAX_PAD)));
        assert!(json(MAX_PAD + 1).is_err(), "a JSON pad past the bound was accepted");
        assert!(Fault::parse(&format!("PUT * pad={MAX_PAD}")).is_ok());
    }

    #[test]
    fn delay_is_bounded_in_both_forms() {
        let json = |d: &str| serde_json::from_str::<Fault>(&format!(r#"{{"delay":"{d}"}}"#)).map(|f| f.delay);
        assert_eq!(json("1h").ok(), Some(Some(MAX_DELAY)));
        for far in ["61m", "200years", "18446744073709551615s"] {
            assert!(json(far).is_err(), "a JSON delay of {far} was accepted");
            assert!(
                Fault::parse(&format!("PUT * delay={far}")).is_err(),
                "delay={far} was accepted"
            );
        }
        assert_eq!(Fault::parse("PUT * delay=60m").map(|f| f.delay), Ok(Some(MAX_DELAY)));
        assert_eq!(serde_json::from_str::<Fault>("{}").map(|f| f.delay).ok(), Some(None));
    }

    #[test]
    fn json_form_round_trips() {
        let f: Fault = serde_json::from_str(
            r#"{"method":"PUT","path":"/fapi","status":503,"delay":"2s","headers":{"Retry-After":"5"},"body":{"code":-1}}"#,
        )
        .unwrap();
        assert_eq!(f.delay, Some(Duration::from_secs(2)));
        assert_eq!(f.body.as_deref(), Some(r#"{"code":-1}"#));
        let back: Fault = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
        assert!(serde_json::from_str::<Fault>(r#"{"stauts":503}"#).is_err());
    }

    #[test]
    fn after_and_count_bound_the_fault() {
        let mut faults = vec![ArmedFault::new(
            Fault::parse("PUT /fapi status=503 after=1 count=2").unwrap(),
        )];
        let hits: Vec<bool> = (0..5)
            .map(|_| take(&mut faults, "PUT", "/fapi/v1/listenKey").is_some())
            .collect();
        assert_eq!(hits, [false, true, true, false, false]);
        assert!(take(&mut faults, "POST", "/fapi/v1/listenKey").is_none());
        assert_eq!((faults[0].seen, faults[0].applied), (5, 2));
    }

    #[test]
    fn first_applicable_fault_wins() {
        let mut faults = vec![
            ArmedFault::new(Fault::parse("* * status=429 count=1").unwrap()),
            ArmedFault::new(Fault::parse("* * status=503").unwrap()),
        ];
        assert_eq!(take(&mut faults, "GET", "/x").unwrap().status, Some(429));
        assert_eq!(take(&mut faults, "GET", "/x").unwrap().status, Some(503));
    }
}
