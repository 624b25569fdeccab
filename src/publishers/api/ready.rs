//! How `/readyz` words its reasons, in one place: the API writes them and
//! `status` and `health` read them back (the state file's own trouble is the
//! one reason the state file cannot carry).

/// How `/readyz` introduces a state file the daemon cannot write.
const STATE_FILE: &str = "state file: ";

/// One reason `/readyz` gave, read once from its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    /// The daemon cannot write the state file (`state file: …`): the one
    /// thing the state file itself cannot tell its readers.
    StateFile(String),
    /// Anything else: a stream without an unexpired value, no streams.
    Other(String),
}

impl NotReady {
    /// Reads one reason as `/readyz` words it.
    pub fn parse(text: &str) -> NotReady {
        match text.strip_prefix(STATE_FILE) {
            Some(why) => NotReady::StateFile(why.to_owned()),
            None => NotReady::Other(text.to_owned()),
        }
    }
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::StateFile(why) => write!(f, "{STATE_FILE}{why}"),
            NotReady::Other(text) => f.write_str(text),
        }
    }
}
