//! What the runner tells the outside while it works. The UI implements [`Reporter`] (spinners on
//! a terminal, plain or JSON lines elsewhere); the runner never draws anything itself.
//!
//! A leaf: it depends on the engine's types only, so the runner, the UI and the unattended
//! reporters all depend on it and none on each other.

use std::time::Duration;

use crate::engine::{Action, Compensation, Outcome};
pub mod watch;

use watch::WatchKind;

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
    /// `--wait-for-window` is sleeping until the window opens (a heartbeat every few minutes).
    WindowWait {
        window: String,
        /// For people: the window's own zone, to the minute.
        opens_at: String,
        /// For machines (the JSON log's RFC 3339 `opens_at`).
        opens_at_utc: jiff::Timestamp,
        remaining: Duration,
    },
    /// The run is past its point of no return and past (or, with `expected`, projected past) its
    /// window's end; it still finishes or rolls back.
    WindowOverrun {
        window: String,
        /// For people: the window's own zone, to the minute.
        ends_at: String,
        /// For machines (the JSON log's RFC 3339 `ends_at`).
        ends_at_utc: jiff::Timestamp,
        by: Duration,
        expected: bool,
    },
    /// The post-change log watch began.
    WatchStarted { duration: Duration },
    /// A log line matched one of the watched errors (the line is redacted).
    WatchHit {
        kind: WatchKind,
        line: String,
        count: usize,
    },
    /// The watch ended with this many hits; with `needs_attention` the playbook
    /// (`on_watch_hit = "needs-attention"`) turns them into a needs-attention exit.
    WatchDone { hits: usize, needs_attention: bool },
    /// Webhook delivery at exit, reported when some notifications failed or were dropped.
    NotificationsDone {
        delivered: usize,
        failed: usize,
        dropped: usize,
        /// Of the failed, those answered by a redirect (webhooks are not redirected).
        redirected: usize,
    },
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
