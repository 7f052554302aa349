//! The journal's record schema for runs. Versioned by the journal's envelope; every field is
//! secret-free by construction (names, plans, quantities, digests, request ids).

use serde::{Deserialize, Serialize};

use crate::engine::{Event, Outcome};
use crate::plan::RunRequest;
use crate::plan::facts::Capture;
use crate::plan::guards::Guard;

/// One line of a run's journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Record {
    /// The run began: what was asked, by whom.
    Started {
        run_id: String,
        request: RunRequest,
        host: String,
        pid: u32,
        version: String,
    },
    /// The facts captured before any write; restore uses these, never what it sees later.
    Captured { capture: Capture },
    /// Every guard's verdict.
    Guards { guards: Vec<Guard> },
    /// A state-machine event (replayed on resume).
    Engine { event: Event },
    /// A write to the platform, after it was acknowledged.
    Effect {
        what: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    /// A snapshot was written.
    Snapshot {
        addon: String,
        file: String,
        keys: u64,
        digest: String,
    },
    /// Verification of one add-on after the change.
    Verified {
        addon: String,
        keys: u64,
        digest_equal: bool,
        differences: u64,
        repaired: u64,
        /// Up to 20 differing keys, lossy UTF-8, for the report.
        examples: Vec<String>,
    },
    /// The writers stopped (first scale-down acknowledged) or came back.
    Downtime { started: bool },
    /// A line for the operator.
    Note { message: String },
    /// The run will overrun (`expected`) or has overrun its maintenance window, by `by_ms`.
    /// Data, not rendered text: the runner does not format for people.
    WindowOverrun {
        window: String,
        ends_at: String,
        by_ms: u64,
        expected: bool,
    },
    /// The run ended.
    Finished {
        outcome: Outcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
}
