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
}
