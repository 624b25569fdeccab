//! Why a stream is not `fresh`, as a type: the classified error of the last
//! refresh with the operator's hint, or an expiry that came first.
//!
//! Other modules match on these variants, never on text. The text (the
//! [`Display`](fmt::Display) form) is the state file's and the API's
//! `last_error`, a public contract: `expired: …`, `auth: HTTP 401 code -2015: …
//! (the API key or signature was refused: …)`. It must not change.

use std::fmt;
use std::time::Duration;

/// What kind of failure an answer is, which decides what the scheduler does next.
///
/// Serialized as its label ([`ErrorClass::as_str`]): the state file's and the
/// API's `error_class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// The credential is unknown or expired (-1125, -1209): obtain a new one now.
    Gone,
    /// Outcome unknown (5xx, 408, timeout, reset, malformed answer): retry soon with backoff.
    Transient,
    /// 429 or 418: send nothing to that host until the window has passed.
    RateLimited,
    /// 403, a firewall block: back off long.
    Forbidden,
    /// 410, or 404 on a listen-key path: the endpoint is retired.
    Retired,
    /// The API key or signature is rejected (-2014, -2015, -1002, -1022, 401).
    Auth,
    /// The request is refused for this stream (bad symbol, no margin account, …).
    Rejected,
    /// -1021: the timestamp is outside recvWindow; resync the clock and retry.
    ClockSkew,
}

impl ErrorClass {
    /// The label used in logs, `last_error` and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Gone => "gone",
            ErrorClass::Transient => "transient",
            ErrorClass::RateLimited => "rate-limited",
            ErrorClass::Forbidden => "forbidden",
            ErrorClass::Retired => "retired",
            ErrorClass::Auth => "auth",
            ErrorClass::Rejected => "rejected",
            ErrorClass::ClockSkew => "clock-skew",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed call, classified. Once out of the client, its message is one
/// short line that never carries a credential (the client redacts them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// What the scheduler should do about it.
    pub class: ErrorClass,
    /// The HTTP status, when an answer arrived.
    pub status: Option<u16>,
    /// The venue's error code, when the body carried one that is a number as
    /// written (Binance's -1125, MEXC's 730708); a code with leading zeros or
    /// letters (HashKey's `"0003"`) is at the head of the message instead.
    pub code: Option<i64>,
    /// How long the host asked us to wait (`Retry-After`), for rate limits.
    pub retry_after: Option<Duration>,
    /// A short human description.
    pub message: String,
}

impl ApiError {
    /// An error that happened before or instead of an answer.
    pub fn local(class: ErrorClass, message: impl Into<String>) -> ApiError {
        ApiError {
            class,
            status: None,
            code: None,
            retry_after: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.class)?;
        if let Some(s) = self.status {
            write!(f, ": HTTP {s}")?;
        }
        if let Some(c) = self.code {
            write!(f, " code {c}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ApiError {}

/// What the operator should do about a failure, appended to its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hint {
    /// 403: the exchange's firewall blocks this host.
    Firewall,
    /// A retired listen-key endpoint of a kind that has listen tokens.
    RetiredUseToken,
    /// A retired endpoint with no replacement in this keeper.
    Retired,
    /// The API key, its permissions or the signature were refused.
    Auth,
    /// The stream's own request was refused (symbol, account).
    Rejected,
}

impl Hint {
    /// The text appended to the error, separator included.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Hint::Firewall => " (HTTP 403: the exchange's firewall blocks this host)",
            Hint::RetiredUseToken => {
                ". Binance retired margin listen keys on 2026-02-20: set credential = \"listen-token\" for this stream."
            }
            Hint::Retired => ". The endpoint appears to be retired.",
            Hint::Auth => {
                " (the API key or signature was refused: check api_key, its permissions and IP whitelist, and the secret)"
            }
            Hint::Rejected => {
                " (the exchange refused this stream's request: check the symbol and that the account has it enabled)"
            }
        }
    }

    /// The hint alone, for a log line.
    pub fn text(self) -> &'static str {
        self.suffix().trim_start_matches([' ', '.', '(']).trim_end_matches(')')
    }
}

/// Why a stream is in its current status (cleared when a refresh succeeds).
///
/// A program reacts to the variant and the error's class; the text is for people.
///
/// ```
/// use listenkeyd::reason::{ErrorClass, Reason};
/// use listenkeyd::state::StreamState;
///
/// fn needs_the_operator(state: &StreamState) -> bool {
///     let class = state.reason.as_ref().and_then(Reason::error).map(|e| e.class);
///     matches!(class, Some(ErrorClass::Auth | ErrorClass::Retired))
/// }
/// assert_eq!(Reason::Expired(None).to_string(), "expired: no successful refresh in time");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The last refresh failed with this error.
    Refresh {
        /// The classified error.
        error: ApiError,
        /// What the operator should do, when the error's class calls for it.
        hint: Option<Hint>,
    },
    /// The value expired before a refresh succeeded, after this failure (none
    /// when no refresh had failed yet).
    Expired(Option<Box<Reason>>),
}

impl Reason {
    /// Whether the value expired before it could be refreshed.
    pub fn is_expiry(&self) -> bool {
        matches!(self, Reason::Expired(_))
    }

    /// The error of the last failed refresh, through an expiry.
    pub fn error(&self) -> Option<&ApiError> {
        match self {
            Reason::Refresh { error, .. } => Some(error),
            Reason::Expired(cause) => cause.as_deref().and_then(Reason::error),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Refresh { error, hint } => {
                write!(f, "{error}{}", hint.map_or("", Hint::suffix))
            }
            Reason::Expired(Some(cause)) => write!(f, "expired: {cause}"),
            Reason::Expired(None) => f.write_str("expired: no successful refresh in time"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(class: ErrorClass, status: u16, code: Option<i64>, msg: &str) -> ApiError {
        ApiError {
            class,
            status: Some(status),
            code,
            retry_after: None,
            message: msg.to_owned(),
        }
    }

    #[test]
    fn the_text_is_the_state_files_last_error() {
        let auth = Reason::Refresh {
            error: error(
                ErrorClass::Auth,
                401,
                Some(-2015),
                "Invalid API-key, IP, or permissions for action.",
            ),
            hint: Some(Hint::Auth),
        };
        assert_eq!(
            auth.to_string(),
            "auth: HTTP 401 code -2015: Invalid API-key, IP, or permissions for action. (the API key or \
             signature was refused: check api_key, its permissions and IP whitelist, and the secret)"
        );
        let retired = Reason::Refresh {
            error: error(ErrorClass::Retired, 410, None, "refused"),
            hint: Some(Hint::RetiredUseToken),
        };
        assert_eq!(
            retired.to_string(),
            "retired: HTTP 410: refused. Binance retired margin listen keys on 2026-02-20: set credential = \
             \"listen-token\" for this stream."
        );
        let plain = Reason::Refresh {
            error: error(ErrorClass::Transient, 503, None, "server error"),
            hint: None,
        };
        assert_eq!(plain.to_string(), "transient: HTTP 503: server error");
        let expired = Reason::Expired(Some(Box::new(plain.clone())));
        assert_eq!(expired.to_string(), "expired: transient: HTTP 503: server error");
        assert_eq!(
            Reason::Expired(None).to_string(),
            "expired: no successful refresh in time"
        );
        assert!(expired.is_expiry() && !plain.is_expiry());
        assert_eq!(expired.error().map(|e| e.class), Some(ErrorClass::Transient));
        assert_eq!(Reason::Expired(None).error(), None);
    }

    #[test]
    fn a_hint_alone_has_no_separator() {
        assert_eq!(
            Hint::Firewall.text(),
            "HTTP 403: the exchange's firewall blocks this host"
        );
        assert!(Hint::RetiredUseToken.text().starts_with("Binance retired"));
        assert!(Hint::Auth.text().starts_with("the API key") && !Hint::Auth.text().ends_with(')'));
    }
}
