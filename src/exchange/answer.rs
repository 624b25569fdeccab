//! Reading the fields of a success answer, each checked before anything else
//! sees it: a credential must look like one, a stated time must be a plausible
//! instant. An answer that fails a check is a malformed answer (transient:
//! retried with backoff, the last good value kept), never a value to publish.
//!
//! The checks are deliberately narrow. A listen key is 64 characters and a
//! listen token about 70: a credential is accepted when it is 1 to
//! [`MAX_CREDENTIAL_LEN`] bytes of printable ASCII without spaces, which keeps
//! control characters, line breaks and megabytes out of the state file, HTTP
//! headers, hook arguments and logs. A time is an integer count of
//! milliseconds after 1970 and no later than year 9999 (the last instant
//! RFC 3339 can write); whether it is plausible *relative to now* is the
//! scheduler's decision.

use std::time::SystemTime;

use serde_json::Value;

use crate::clock::{MAX_EPOCH_MS, from_epoch_ms};
use crate::reason::{ApiError, ErrorClass};
use crate::stream::{MAX_CREDENTIAL_LEN, plausible_credential};

/// A malformed-answer error.
fn malformed(what: String) -> ApiError {
    ApiError::local(ErrorClass::Transient, format!("malformed answer: {what}"))
}

/// What a JSON value is, for an error message; never its text, which could
/// be a credential or megabytes.
fn shape(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(n) if n.is_f64() => "a fractional number".into(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("a string of {} bytes", s.len()),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// The credential in field `name`, checked by [`plausible_credential`].
pub fn credential(body: &Value, name: &str) -> Result<String, ApiError> {
    match body.get(name) {
        None => Err(malformed(format!("no `{name}`"))),
        Some(Value::String(s)) if plausible_credential(s) => Ok(s.clone()),
        Some(Value::String(s)) if s.len() > MAX_CREDENTIAL_LEN => Err(malformed(format!(
            "`{name}` is {} bytes long (at most {MAX_CREDENTIAL_LEN})",
            s.len()
        ))),
        Some(Value::String(_)) => Err(malformed(format!(
            "`{name}` is empty or holds spaces, control or non-ASCII characters"
        ))),
        Some(v) => Err(malformed(format!("`{name}` is {}, not a key", shape(v)))),
    }
}

/// The time in field `name` (ms since 1970), `None` when absent or null; a
/// value that is not an integer in `1..=`[`MAX_EPOCH_MS`] is malformed.
pub fn stated_time(body: &Value, name: &str) -> Result<Option<SystemTime>, ApiError> {
    epoch_ms(body, name).map(|ms| ms.map(from_epoch_ms))
}

/// The integer ms field `name`, checked like [`stated_time`].
pub fn epoch_ms(body: &Value, name: &str) -> Result<Option<i64>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(ms) if (1..=MAX_EPOCH_MS).contains(&ms) => Ok(Some(ms)),
            _ => Err(malformed(format!(
                "`{name}` is {}, not a time in ms between 1970 and 9999",
                shape(v)
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn credentials_must_look_like_credentials() {
        let ok = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1";
        assert_eq!(credential(&json!({ "k": ok }), "k").unwrap(), ok);
        assert!(credential(&json!({ "k": "6xXx+ePXw/Z=" }), "k").is_ok());
        let long = "a".repeat(300 * 1024);
        for bad in [
            json!({}),
            json!({ "k": "" }),
            json!({ "k": "   " }),
            json!({ "k": "ab\ncd" }),
            json!({ "k": "ab\u{0}cd" }),
            json!({ "k": "ab\u{1b}[2Jcd" }),
            json!({ "k": "ab cd" }),
            json!({ "k": "clé" }),
            json!({ "k": long }),
            json!({ "k": 12 }),
            json!({ "k": null }),
            json!({ "k": ["x"] }),
            json!({ "k": { "x": 1 } }),
        ] {
            let e = credential(&bad, "k").unwrap_err();
            assert_eq!(e.class, ErrorClass::Transient, "{bad}");
            assert!(e.message.starts_with("malformed answer"), "{}", e.message);
            assert!(e.message.len() < 200, "the message never quotes the value");
        }
        assert!(credential(&json!({ "k": "a".repeat(512) }), "k").is_ok());
        assert!(credential(&json!({ "k": "a".repeat(513) }), "k").is_err());
    }

    #[test]
    fn times_must_be_plausible_instants() {
        let t = stated_time(&json!({ "t": 1_758_792_204_196_i64 }), "t").unwrap();
        assert_eq!(t, Some(from_epoch_ms(1_758_792_204_196)));
        assert_eq!(stated_time(&json!({}), "t").unwrap(), None);
        assert_eq!(stated_time(&json!({ "t": null }), "t").unwrap(), None);
        assert!(stated_time(&json!({ "t": MAX_EPOCH_MS }), "t").unwrap().is_some());
        for bad in [
            json!({ "t": 999_999_999_999_999_i64 }),
            json!({ "t": MAX_EPOCH_MS + 1 }),
            json!({ "t": u64::MAX }),
            json!({ "t": -1 }),
            json!({ "t": i64::MIN }),
            json!({ "t": 0 }),
            json!({ "t": "1758792204196" }),
            json!({ "t": 1_758_792_204_196.5 }),
            json!({ "t": 1e300 }),
            json!({ "t": true }),
            json!({ "t": [1] }),
        ] {
            let e = stated_time(&bad, "t").unwrap_err();
            assert_eq!(e.class, ErrorClass::Transient, "{bad}");
            assert!(e.message.starts_with("malformed answer"), "{}", e.message);
        }
    }
}
