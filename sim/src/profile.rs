//! Which Binance the simulator plays: Binance as it is today (the default),
//! or Binance before the 2026-02-20 retirement of spot and margin listen keys.
//!
//! The profile decides only which endpoints exist; every live endpoint behaves
//! the same in both. Today, `/api/v3/userDataStream`,
//! `/sapi/v1/userDataStream` and `/sapi/v1/userDataStream/isolated` answer
//! HTTP 410, as Binance does; `binance-2025` still serves them, for
//! Binance-compatible venues and deployments that keep the original flow.

use std::fmt;
use std::str::FromStr;

/// The Binance a simulator plays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Profile {
    /// Binance today: spot and margin listen keys retired (HTTP 410).
    #[default]
    Binance,
    /// Binance before 2026-02-20: spot and margin listen keys served.
    Binance2025,
}

impl Profile {
    /// Every profile, as `--profile` spells them.
    pub const ALL: [Profile; 2] = [Profile::Binance, Profile::Binance2025];

    /// The `--profile` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Binance => "binance",
            Profile::Binance2025 => "binance-2025",
        }
    }

    /// Whether the spot and margin listen-key endpoints are served.
    pub fn serves_margin_listen_keys(self) -> bool {
        self == Profile::Binance2025
    }

    /// One line on what the profile serves, for the simulator's banner.
    pub fn describe(self) -> &'static str {
        match self {
            Profile::Binance => {
                "Binance today: spot and margin listen keys retired (410); listen tokens, futures, options, \
                 portfolio-margin and margin-risk listen keys live"
            }
            Profile::Binance2025 => {
                "Binance before 2026-02-20: spot, cross- and isolated-margin listen keys served beside \
                 everything that is live today"
            }
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Profile, String> {
        match s.trim() {
            "binance" | "binance-2026" => Ok(Profile::Binance),
            "binance-2025" => Ok(Profile::Binance2025),
            other => Err(format!(
                "unknown profile {other:?} (one of {})",
                Profile::ALL.map(Profile::as_str).join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        for p in Profile::ALL {
            assert_eq!(p.as_str().parse::<Profile>(), Ok(p));
        }
        assert_eq!(Profile::default(), Profile::Binance);
        assert!("binance-2024".parse::<Profile>().is_err());
        assert!(!Profile::Binance.serves_margin_listen_keys());
        assert!(Profile::Binance2025.serves_margin_listen_keys());
    }
}
