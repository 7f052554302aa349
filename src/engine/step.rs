//! The fixed registry of actions a playbook can name, and the compensation each one needs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One kind of step. Playbooks name these in kebab-case (`change-plan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Read the formation, maintenance flag, add-ons, Redis INFO. Read-only.
    Capture,
    /// Evaluate every guard on the captured facts. Read-only; blocks the run when one fails.
    Guard,
    /// Turn the app's maintenance mode on.
    Maintenance,
    /// Scale the writer process types to 0 in one batch call.
    Scale,
    /// Wait until no writer dyno is listed and Redis shows no client but upshift's own.
    WaitDrained,
    /// Stream every key to a local snapshot file and digest it. Read-only on the platform.
    Snapshot,
    /// Request the plan change of every add-on in the run (concurrently).
    ChangePlan,
    /// Wait until every add-on is provisioned on its target plan and its Redis answers.
    WaitProvisioned,
    /// Recompute the digest through the current config var URL and compare; repair from the
    /// snapshot when a critical add-on differs.
    Verify,
    /// Scale back to exactly the captured formation and restore the maintenance flag.
    RestoreFormation,
    /// Dynos reach `up`; Redis clients come back under the plan's limit.
    Health,
    /// Live swap: provision a second add-on on the target plan under a temporary attachment
    /// name and wait until its Redis answers. The app keeps running.
    ProvisionNew,
    /// Live swap: turn keyspace notifications on for the old add-on, watch its changed keys,
    /// copy every key to the new add-on and its Data API settings, while the app runs.
    CopyLive,
    /// Live swap, writers stopped: copy what changed since the copy, and prove both servers
    /// equal (the changed keys and the key counts, or every key when the watch was lost).
    CatchUp,
    /// Live swap, the point of no return: every attachment of the old add-on now points at the
    /// new one, proven by the server behind each config var.
    MoveAttachments,
    /// Live swap, after health: put the old add-on's notification setting back, and keep it
    /// for the grace period (or destroy it with `--retire-old now`).
    RetireOld,
}

/// Every action, in the order of the built-in playbook.
pub const ALL_ACTIONS: [Action; 16] = [
    Action::Capture,
    Action::Guard,
    Action::Maintenance,
    Action::Scale,
    Action::WaitDrained,
    Action::Snapshot,
    Action::ChangePlan,
    Action::WaitProvisioned,
    Action::Verify,
    Action::RestoreFormation,
    Action::Health,
    Action::ProvisionNew,
    Action::CopyLive,
    Action::CatchUp,
    Action::MoveAttachments,
    Action::RetireOld,
];

/// What undoes (or settles) a step's effect during a rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Compensation {
    /// Maintenance flag back to its captured value.
    RestoreMaintenance,
    /// Formation back to exactly the captured quantities and sizes.
    RestoreFormation,
    /// Bring each add-on to a settled state (wait out provisioning), verify its data against
    /// the snapshot and repair it; the plan stays where the platform settled it.
    SettlePlan,
    /// Live swap: destroy the new add-on (refused while anything but its temporary
    /// attachment points at it).
    DestroyNew,
    /// Live swap: the old add-on's `notify_keyspace_events` back to its value before the run.
    RestoreNotifications,
    /// Live swap: every attachment back on the old add-on, whose data was never touched;
    /// refused while a writer could have written to the new one.
    MoveBack,
}

/// Every compensation.
pub const ALL_COMPENSATIONS: [Compensation; 6] = [
    Compensation::RestoreMaintenance,
    Compensation::RestoreFormation,
    Compensation::SettlePlan,
    Compensation::DestroyNew,
    Compensation::RestoreNotifications,
    Compensation::MoveBack,
];

impl Action {
    /// The kebab-case name used in playbooks and journals.
    pub fn name(self) -> &'static str {
        match self {
            Self::Capture => "capture",
            Self::Guard => "guard",
            Self::Maintenance => "maintenance",
            Self::Scale => "scale",
            Self::WaitDrained => "wait-drained",
            Self::Snapshot => "snapshot",
            Self::ChangePlan => "change-plan",
            Self::WaitProvisioned => "wait-provisioned",
            Self::Verify => "verify",
            Self::RestoreFormation => "restore-formation",
            Self::Health => "health",
            Self::ProvisionNew => "provision-new",
            Self::CopyLive => "copy-live",
            Self::CatchUp => "catch-up",
            Self::MoveAttachments => "move-attachments",
            Self::RetireOld => "retire-old",
        }
    }

    /// The compensation this action requires, if it changes anything on the platform.
    pub fn compensation(self) -> Option<Compensation> {
        match self {
            Self::Maintenance => Some(Compensation::RestoreMaintenance),
            Self::Scale => Some(Compensation::RestoreFormation),
            Self::ChangePlan => Some(Compensation::SettlePlan),
            Self::ProvisionNew => Some(Compensation::DestroyNew),
            Self::CopyLive => Some(Compensation::RestoreNotifications),
            Self::MoveAttachments => Some(Compensation::MoveBack),
            _ => None,
        }
    }

    /// Whether the action writes to the platform or to Redis.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Self::Maintenance
                | Self::Scale
                | Self::ChangePlan
                | Self::Verify
                | Self::RestoreFormation
                | Self::ProvisionNew
                | Self::CopyLive
                | Self::CatchUp
                | Self::MoveAttachments
                | Self::RetireOld
        )
    }

    /// Whether starting this action puts critical data past the point of no return: the
    /// writers may then come back only once a later success proves the data whole
    /// ([`Action::proves`]) or a compensation does ([`Compensation::proves`]).
    pub fn at_risk(self) -> bool {
        matches!(self, Self::ChangePlan | Self::MoveAttachments)
    }

    /// Whether this action's success proves the critical data whole: a verify against the
    /// snapshot, or an attachment move that checked the server behind every moved name is the
    /// one the catch-up proved equal.
    pub fn proves(self) -> bool {
        matches!(self, Self::Verify | Self::MoveAttachments)
    }

    /// Whether finishing this action settles the run: the app is back on verified data, so
    /// there is nothing left to compensate.
    pub fn settles(self) -> bool {
        self == Self::RestoreFormation
    }

    /// What the action does, for `upshift playbooks`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Capture => "read formation, maintenance flag, add-ons and Redis INFO",
            Self::Guard => "evaluate every guard before anything is written",
            Self::Maintenance => "turn maintenance mode on",
            Self::Scale => "scale the writer process types to 0 in one call",
            Self::WaitDrained => "wait until writer dynos are gone and Redis has no other client",
            Self::Snapshot => "snapshot and digest every key of every add-on",
            Self::ChangePlan => "request the plan change of every add-on",
            Self::WaitProvisioned => "wait until every add-on is provisioned on its target plan",
            Self::Verify => "verify the data through the current URL; repair from the snapshot",
            Self::RestoreFormation => "restore the exact captured formation and maintenance flag",
            Self::Health => "dynos up, Redis clients back under the plan's limit",
            Self::ProvisionNew => "provision a new add-on on the target plan, the app running",
            Self::CopyLive => {
                "copy every key to the new add-on while the app runs, watching changes"
            }
            Self::CatchUp => "copy what changed since, and prove both servers equal",
            Self::MoveAttachments => "move every attachment to the new add-on (point of no return)",
            Self::RetireOld => "restore the old add-on's settings; keep or retire it",
        }
    }
}

impl Compensation {
    /// The kebab-case name used in playbooks and journals.
    pub fn name(self) -> &'static str {
        match self {
            Self::RestoreMaintenance => "restore-maintenance",
            Self::RestoreFormation => "restore-formation",
            Self::SettlePlan => "settle-plan",
            Self::DestroyNew => "destroy-new",
            Self::RestoreNotifications => "restore-notifications",
            Self::MoveBack => "move-back",
        }
    }

    /// Whether this compensation's success proves the critical data whole (see
    /// [`Action::proves`]): a settle verifies against the snapshot; a move back puts every
    /// attachment on the old add-on, whose data no one wrote since the drain.
    pub fn proves(self) -> bool {
        matches!(self, Self::SettlePlan | Self::MoveBack)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Compensation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Action {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        ALL_ACTIONS.into_iter().find(|a| a.name() == s).ok_or(())
    }
}

impl FromStr for Compensation {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        ALL_COMPENSATIONS
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or(())
    }
}
