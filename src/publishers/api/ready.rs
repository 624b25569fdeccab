//! The `/readyz` answer as a type: the API writes it, and `status` and
//! `health` (through the CLI's client, `cli/daemon.rs`) read it back as JSON, never by
//! its wording.
//!
//! `reasons` keeps every reason as text, the state file's own trouble
//! included (`state file: …`); `state_file_error` carries that trouble apart,
//! since it is the one reason the state file cannot tell its readers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How `/readyz`'s `reasons` introduce a state file the daemon cannot write.
const STATE_FILE: &str = "state file: ";

/// What `GET /readyz` answers (200 when `ready`, else 503).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    /// Whether every stream holds an unexpired value and the state file is
    /// being written.
    pub ready: bool,
    /// Why not, one line each; absent when ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Why the daemon cannot write the state file, when it cannot (also
    /// among `reasons`, as `state file: …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_file_error: Option<String>,
    /// Replicas: this daemon's role per account (`holder`, `standby`, `alone`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub accounts: BTreeMap<String, String>,
    /// What is wrong without making it unready (an account kept without its lease).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// 429 and 418 answers the keeper received since it started.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rate_limited: u64,
    /// The request-weight budget of every (host, egress, family) called so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<Budget>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One family's request-weight budget on one (host, egress), as `/readyz` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// `host:port`.
    pub host: String,
    /// The egress address, when one is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<String>,
    /// The API family (`fapi`, …).
    pub family: String,
    /// The per-IP limit per window, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Its window, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_s: Option<u64>,
    /// Where the limit came from: `config`, `exchange` or `profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Weight the keeper spent in the current window.
    pub spent: u64,
    /// The IP's used weight in the current window (bots included), as estimated.
    pub ip_used: u64,
    /// Requests waiting for the budget.
    pub queued: usize,
}

impl Budget {
    /// One line for `status`.
    pub fn line(&self) -> String {
        let at = match &self.egress {
            Some(e) => format!("{} from {e}", self.host),
            None => self.host.clone(),
        };
        let limit = match (self.limit, self.window_s, &self.source) {
            (Some(l), Some(w), Some(s)) => format!("limit {l}/{w}s ({s})"),
            _ => "no known limit".to_owned(),
        };
        format!(
            "{at} {}: {limit}, keeper spent {}, IP used {}, {} queued",
            self.family, self.spent, self.ip_used, self.queued
        )
    }
}

impl Readiness {
    /// The answer for these stream `reasons` and, when the writer fails,
    /// its error.
    pub fn new(mut reasons: Vec<String>, state_file_error: Option<String>) -> Readiness {
        if let Some(e) = &state_file_error {
            reasons.push(state_file_reason(e));
        }
        Readiness {
            ready: reasons.is_empty(),
            reasons,
            state_file_error,
            ..Readiness::default()
        }
    }
}

/// The line `reasons` gives for a state file the daemon cannot write.
pub fn state_file_reason(error: &str) -> String {
    format!("{STATE_FILE}{error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_keeps_its_reasons_and_names_the_state_file_apart() {
        let ready = Readiness::new(Vec::new(), None);
        assert_eq!(serde_json::to_string(&ready).unwrap(), r#"{"ready":true}"#);
        let e = "cannot write /var/lib/listenkeyd/keys.json: No space left on device (os error 28)";
        let not = Readiness::new(vec!["usdm-futures: expired".into()], Some(e.into()));
        let text = serde_json::to_string(&not).unwrap();
        assert_eq!(
            text,
            format!(r#"{{"ready":false,"reasons":["usdm-futures: expired","state file: {e}"],"state_file_error":"{e}"}}"#)
        );
        assert_eq!(serde_json::from_str::<Readiness>(&text).unwrap(), not);
    }

    #[test]
    fn budgets_and_rate_limits_are_shown_and_read_back() {
        let b = Budget {
            host: "fapi.binance.com:443".into(),
            egress: Some("203.0.113.7".into()),
            family: "fapi".into(),
            limit: Some(2400),
            window_s: Some(60),
            source: Some("exchange".into()),
            spent: 12,
            ip_used: 1500,
            queued: 3,
        };
        assert_eq!(
            b.line(),
            "fapi.binance.com:443 from 203.0.113.7 fapi: limit 2400/60s (exchange), keeper spent 12, IP used 1500, 3 queued"
        );
        let r = Readiness {
            rate_limited: 2,
            budgets: vec![b],
            ..Readiness::new(Vec::new(), None)
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""rate_limited":2"#), "{text}");
        assert_eq!(serde_json::from_str::<Readiness>(&text).unwrap(), r);
        // An answer from before budgets reads as none.
        let old: Readiness = serde_json::from_str(r#"{"ready":true}"#).unwrap();
        assert_eq!((old.rate_limited, old.budgets.len()), (0, 0));
    }
}
