//! The classification of a venue's answers into the error classes of
//! `binance-api.md`, each of which the scheduler answers differently.
//!
//! Classification looks at the HTTP status and at the body's code, read
//! through the venue's [`Errors`] table: the field it is in, which codes mark
//! an error (Binance's negative ones; any non-zero one elsewhere, integer or
//! string), a `success: false` flag, and the class of each code. A body
//! with an error code is an error even under status 200; a venue's code
//! decides the class even under a 400 (HashKey's rate limit is HTTP 400 with
//! `"0003"`).

use std::time::{Duration, SystemTime};

use crate::exchange::venue::{self, Errors};
use crate::reason::{ApiError, ErrorClass};

/// Classifies an answer by Binance's rules. `Ok` holds the parsed JSON body of a success.
///
/// `retry_after` is the parsed `Retry-After` header; `listen_key_path` says whether
/// the call went to a listen-key endpoint (where 404 means retired). The
/// client classifies through its venue's table ([`classify_with`]); this is
/// Binance's, for tests.
#[cfg(any(test, feature = "test-seams"))]
pub fn classify(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    listen_key_path: bool,
) -> Result<serde_json::Value, ApiError> {
    classify_with(&venue::BINANCE.errors, status, retry_after, body, listen_key_path)
}

/// Classifies an answer by the rules of a venue's [`Errors`] table.
pub fn classify_with(
    errors: &Errors,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    listen_key_path: bool,
) -> Result<serde_json::Value, ApiError> {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| json.as_ref().and_then(|v| v.get(name));
    let code_text = field(errors.code_field).and_then(venue::code_text);
    let failed_flag = errors
        .success_field
        .and_then(field)
        .and_then(serde_json::Value::as_bool)
        == Some(false);
    let error_code = code_text.as_deref().filter(|c| errors.is_error(c));
    // The code as a number where it is one as written; a code with leading
    // zeros or letters ("0003") is kept in the message instead.
    let code = error_code
        .and_then(|c| c.parse::<i64>().ok().filter(|n| n.to_string() == c));
    let msg = field(errors.message_field)
        .and_then(|m| m.as_str())
        // Kept whole: the client scrubs credentials out of it, then cuts it
        // (`redact::tidy`); cutting here would keep half a key.
        .map(str::to_owned);
    let msg = match (error_code, code) {
        (Some(text), None) => Some(format!("code {text}: {}", msg.as_deref().unwrap_or("error"))),
        _ => msg,
    };
    let err = |class: ErrorClass, default: &str| ApiError {
        class,
        status: Some(status),
        code,
        retry_after: None,
        message: msg.clone().unwrap_or_else(|| default.to_owned()),
    };
    let class = match status {
        429 | 418 => {
            let default = if status == 418 { 120 } else { 60 };
            let mut e = err(
                ErrorClass::RateLimited,
                if status == 418 {
                    "IP banned"
                } else {
                    "too many requests"
                },
            );
            e.retry_after = Some(retry_after.unwrap_or(Duration::from_secs(default)));
            return Err(e);
        }
        403 => Some(ErrorClass::Forbidden),
        410 => Some(ErrorClass::Retired),
        404 if listen_key_path => Some(ErrorClass::Retired),
        _ => None,
    };
    if let Some(class) = class {
        return Err(err(class, "refused"));
    }
    if error_code.is_some() || failed_flag {
        let class = error_code.and_then(|c| errors.class_of(c)).unwrap_or(match status {
            400..=499 => ErrorClass::Rejected,
            _ => ErrorClass::Transient,
        });
        let mut e = err(class, "error");
        if class == ErrorClass::RateLimited {
            e.retry_after = Some(retry_after.unwrap_or(Duration::from_secs(60)));
        }
        return Err(e);
    }
    match status {
        200..=299 => match json {
            Some(v @ serde_json::Value::Object(_)) => Ok(v),
            _ => Err(err(ErrorClass::Transient, "malformed answer: not a JSON object")),
        },
        401 => Err(err(ErrorClass::Auth, "unauthorized")),
        300..=399 => Err(err(
            ErrorClass::Rejected,
            "unexpected redirect (not followed: it would resend the API key)",
        )),
        408 | 500..=599 => Err(err(ErrorClass::Transient, "server error")),
        _ => Err(err(ErrorClass::Rejected, "unexpected status")),
    }
}

/// The longest wait a `Retry-After` may ask for: Binance's longest IP ban.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3 * 24 * 3600);

/// Parses `Retry-After`, at most [`MAX_RETRY_AFTER`]: seconds (Binance's
/// form; a decimal fraction is accepted) or an HTTP-date, counted from `now`
/// (a date already past is zero). Anything else (negative, NaN, words, a
/// malformed date) is `None`, and the caller waits its default instead.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty() {
        // Digits only: any length, saturating (u64 parsing fails on overflow).
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64())));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(status: u16, body: &str, lk: bool) -> ErrorClass {
        classify(status, None, body.as_bytes(), lk).unwrap_err().class
    }

    #[test]
    fn codes_beat_status_200() {
        assert_eq!(
            class(200, r#"{"code":-1125,"msg":"This listenKey does not exist."}"#, true),
            ErrorClass::Gone
        );
        assert_eq!(class(400, r#"{"code":-1209,"msg":"x"}"#, false), ErrorClass::Gone);
        assert_eq!(class(400, r#"{"code":-1021,"msg":"x"}"#, false), ErrorClass::ClockSkew);
        assert_eq!(class(401, r#"{"code":-2015,"msg":"x"}"#, false), ErrorClass::Auth);
        assert_eq!(class(400, r#"{"code":-3003,"msg":"x"}"#, false), ErrorClass::Rejected);
        assert_eq!(class(200, r#"{"code":-9999,"msg":"x"}"#, false), ErrorClass::Transient);
    }

    #[test]
    fn statuses() {
        assert_eq!(class(503, "", true), ErrorClass::Transient);
        assert_eq!(class(408, "", true), ErrorClass::Transient);
        assert_eq!(class(403, "<html>", true), ErrorClass::Forbidden);
        assert_eq!(class(410, "", true), ErrorClass::Retired);
        assert_eq!(class(404, "", true), ErrorClass::Retired);
        assert_eq!(class(404, "", false), ErrorClass::Rejected);
        assert_eq!(class(302, "", true), ErrorClass::Rejected);
        assert_eq!(class(200, "not json", true), ErrorClass::Transient);
        assert_eq!(class(200, "[1]", true), ErrorClass::Transient);
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let e = classify(429, parse_retry_after("7", now), b"{}", true).unwrap_err();
        assert_eq!(
            (e.class, e.retry_after),
            (ErrorClass::RateLimited, Some(Duration::from_secs(7)))
        );
        assert_eq!(parse_retry_after("18446744073709551615", now), Some(MAX_RETRY_AFTER));
        let e = classify(418, None, b"", true).unwrap_err();
        assert_eq!(e.retry_after, Some(Duration::from_secs(120)));
    }

    #[test]
    fn absurd_retry_after_values_are_bounded_or_ignored() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let p = |v: &str| parse_retry_after(v, now);
        assert_eq!(p(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(p("0"), Some(Duration::ZERO));
        assert_eq!(p("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(p(&"9".repeat(400)), Some(MAX_RETRY_AFTER));
        assert_eq!(p("1e300"), Some(MAX_RETRY_AFTER));
        for ignored in [
            "-5",
            "-0.5",
            "NaN",
            "inf",
            "-inf",
            "soon",
            "",
            "0x10",
            "5 s",
            "Sun, 99 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(p(ignored), None, "{ignored:?}");
        }
        // HTTP-dates count from now; a past one is zero, a far one is capped.
        let in_90s = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(p(&in_90s), Some(Duration::from_secs(90)));
        assert_eq!(p("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        assert_eq!(p("Fri, 31 Dec 9999 23:59:59 GMT"), Some(MAX_RETRY_AFTER));
        // Without a usable value a 429 waits the default minute.
        let e = classify(429, p("-5"), b"{}", true).unwrap_err();
        assert_eq!(e.retry_after, Some(Duration::from_secs(60)));
    }

    #[test]
    fn success_is_the_object() {
        let v = classify(200, None, br#"{"listenKey":"abc"}"#, true).unwrap();
        assert_eq!(v["listenKey"], "abc");
        assert!(classify(200, None, br#"{"code":0,"msg":"ok"}"#, true).is_ok());
    }
}
