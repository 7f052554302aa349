//! The two strategies a plan change can take (which built-in playbook runs), and what a live
//! swap does with the old add-on afterwards.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BUILTIN_NAME, LIVE_SWAP_NAME, Playbook, duration};
use crate::engine::Action;

/// How a plan changes: which built-in playbook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Heroku's own plan change with the writers stopped for all of it (provisioning, snapshot,
    /// verify): the default, because it needs nothing but the add-on itself.
    #[default]
    InPlace,
    /// A second add-on on the target plan, copied while the app runs; the writers stop only
    /// for the last changes and the attachment move.
    LiveSwap,
}

impl Strategy {
    /// The built-in playbook of this strategy.
    pub fn playbook_name(self) -> &'static str {
        match self {
            Self::InPlace => BUILTIN_NAME,
            Self::LiveSwap => LIVE_SWAP_NAME,
        }
    }

    /// The strategy a playbook's steps implement: live swap when it moves attachments.
    pub fn of(playbook: &Playbook) -> Self {
        if playbook.step(Action::MoveAttachments).is_some() {
            Self::LiveSwap
        } else {
            Self::InPlace
        }
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::InPlace => "in-place",
            Self::LiveSwap => "live-swap",
        }
    }
}

/// What happens to the old add-on after a successful live swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RetireOld {
    /// Destroy it as the run's last step.
    Now,
    /// Keep it until a person destroys it.
    Never,
    /// Keep it for this long (a person can go back meanwhile); `upshift runs` shows it.
    After(Duration),
}

/// The default grace: a day, long enough to notice a problem the checks could not see.
pub const DEFAULT_RETIRE_OLD: RetireOld = RetireOld::After(Duration::from_secs(24 * 3600));

impl RetireOld {
    /// Parses `now`, `never` or a duration (`1d`, `12h`).
    ///
    /// # Errors
    /// A message saying what to write instead.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "now" => Ok(Self::Now),
            "never" => Ok(Self::Never),
            other => duration::parse(other)
                .map(Self::After)
                .map_err(|e| format!("retire_old {other:?}: {e}; or write \"now\" or \"never\"")),
        }
    }
}

impl fmt::Display for RetireOld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Now => f.write_str("now"),
            Self::Never => f.write_str("never"),
            Self::After(d) => f.write_str(&duration::format(*d)),
        }
    }
}

impl TryFrom<String> for RetireOld {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<RetireOld> for String {
    fn from(r: RetireOld) -> Self {
        r.to_string()
    }
}
