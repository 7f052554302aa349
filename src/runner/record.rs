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
    /// The server behind an add-on's config var before its plan change (recorded when the
    /// drain ends): the wait after the change demands a different one.
    OldServer {
        addon: String,
        identity: crate::plan::facts::ServerIdentity,
        /// Its write counter (`rdb_changes_since_last_save`) when the drain ended: journaled so that a resumed run still
        /// checks that nothing wrote to it since (absent in journals of older versions).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        writes: Option<u64>,
        /// The full write evidence when the drain ended, which a background save cannot
        /// wipe (see [`crate::verify::writemark`]); absent in journals of older versions,
        /// whose `writes` is then the mark. `writes` stays for older versions resuming.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mark: Option<crate::verify::WriteMark>,
    },
    /// Live swap: the new add-on of `addon` exists (its create was acknowledged), attached to
    /// the app under the temporary name `attachment`.
    NewAddon {
        addon: String,
        new_addon: String,
        new_id: String,
        attachment: String,
    },
    /// Live swap: the old add-on's `notify_keyspace_events` before the run turned the
    /// notifications on (recorded before the change, so a rollback can put it back).
    Notifications { addon: String, before: String },
    /// Live swap: the catch-up proved the new server equal to the old one, which held `keys`
    /// keys; the attachment move then demands this server behind every moved name.
    NewServer {
        addon: String,
        identity: crate::plan::facts::ServerIdentity,
        keys: u64,
    },
    /// Live swap: the old add-on is kept after success, until `until` (RFC 3339) or, with
    /// none, until a person destroys it.
    Retained {
        addon: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<String>,
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
        /// The server verify judged: the writers come back only while the config var still
        /// leads to it (absent in journals of older versions, which then skip that check).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server: Option<VerifiedServer>,
        /// The server a repair wrote to, when `repaired` > 0: `host:port/db`, never the
        /// password. Forensics (absent in older journals).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        repaired_server: Option<String>,
        /// That server's `run_id` when a repair wrote to it (absent otherwise).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
    },
    /// A step refused the server behind `addon`'s config var as not proven the add-on's
    /// (another add-on's server, a database heroku-redis does not have, data the add-on never
    /// held): nothing was written there, and the to-do list must not send anyone to repair it
    /// through that config var.
    ForeignServer { addon: String },
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

/// The server behind an add-on's config var when verify judged its data: host and port (never
/// the URL, which holds the password) and its INFO identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedServer {
    pub endpoint: String,
    pub identity: crate::plan::facts::ServerIdentity,
}
