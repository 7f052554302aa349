//! What the runner tells the outside while it works. The UI implements [`Reporter`] (spinners on
//! a terminal, plain or JSON lines elsewhere); the runner never draws anything itself.

use std::time::Duration;

use crate::engine::{Action, Compensation, Outcome};

/// An event worth showing.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// The run has an id and a journal.
    Started { run_id: String, journal: String },
    /// A step began.
    StepStarted {
        number: usize,
        action: Action,
        detail: String,
    },
    /// A step ended well.
    StepDone {
        number: usize,
        action: Action,
        elapsed: Duration,
        note: Option<String>,
    },
    /// A step failed.
    StepFailed {
        number: usize,
        action: Action,
        message: String,
    },
    /// A wait is still waiting; `status` is the platform's own message.
    Waiting { subject: String, status: String },
    /// Keys read so far by a snapshot or verify.
    Keys {
        subject: String,
        done: u64,
        total: u64,
    },
    /// The writers are stopped (downtime clock starts) or back (it stops).
    Downtime { started: bool },
    /// A compensation began or ended.
    Compensating {
        compensation: Compensation,
        done: bool,
        message: Option<String>,
    },
    /// Something the operator should read.
    Warning { message: String },
    /// The run is over.
    Finished { outcome: Outcome },
}

/// Receives run events. Must not block.
pub trait Reporter: Send + Sync {
    fn report(&self, event: &RunEvent);
}

/// Discards everything (tests, `--quiet`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Reporter for Silent {
    fn report(&self, _event: &RunEvent) {}
}
