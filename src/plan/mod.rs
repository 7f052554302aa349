//! The plan as data: a pure function of the request and the captured facts. `upshift plan`
//! renders it; `upshift run` executes the same steps. No I/O here.

pub mod choices;
pub mod drift;
pub mod facts;
#[cfg(test)]
mod fixture;
pub mod guards;
mod render;
pub mod review;
pub mod suggest;
pub mod swap_guards;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::{Action, Compensation};
use crate::playbook::{Params, Playbook};
use facts::{AddonLookup, Capture, ChangeRequest, DataPolicy};
use guards::Guard;

pub use render::{render, render_with};

/// What the user asked for, bound to a playbook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    pub app: String,
    pub changes: Vec<ChangeRequest>,
    /// Playbook parameters with the command line's overrides applied.
    pub params: Params,
    pub playbook: Playbook,
}

impl RunRequest {
    /// Validates a request read back from a plan file or a journal: its playbook's safety
    /// structure and every bound, as when it was first parsed.
    ///
    /// # Errors
    /// The first problem, naming the playbook.
    pub fn validate(&self) -> Result<(), crate::playbook::PlaybookError> {
        self.playbook.validate()?;
        self.playbook.validate_params(
            &self.params,
            self.changes.iter().filter_map(|c| c.connections_per_dyno),
        )
    }
}

/// One add-on's planned change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlannedChange {
    pub label: String,
    pub addon: String,
    pub from: String,
    pub to: String,
    pub policy: DataPolicy,
    pub keys: Option<u64>,
}

/// One step as it would run now.
// Independent flags of a serialised output, not a state in disguise.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlannedStep {
    pub number: usize,
    pub action: Action,
    /// What it does to which resource.
    pub detail: String,
    /// The first step that cannot simply be undone.
    pub point_of_no_return: bool,
    /// The writers stop here (downtime starts).
    pub starts_downtime: bool,
    /// The writers come back here.
    pub ends_downtime: bool,
    /// The step does nothing for this request (e.g. maintenance mode not asked for).
    pub skipped: bool,
    /// What undoes the step in a rollback: part of what was reviewed, so `run --plan` refuses
    /// a plan whose compensations are not the reviewed ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensation: Option<Compensation>,
}

/// Where an estimate came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
///
/// Durations are whole milliseconds named `…_ms`, as in every JSON document; plan files saved
/// before the rename (`downtime`, `provisioning`, `run`, `rollback`) read back through the
/// aliases, and their content hash still holds (it is computed on the JSON as read).
pub struct Estimate {
    /// Writers stopped, start to end.
    #[serde(
        rename = "downtime_ms",
        alias = "downtime",
        with = "crate::plan::duration_ms"
    )]
    #[schemars(with = "u64")]
    pub downtime: Duration,
    /// The platform's provisioning share of it.
    #[serde(
        rename = "provisioning_ms",
        alias = "provisioning",
        with = "crate::plan::duration_ms"
    )]
    #[schemars(with = "u64")]
    pub provisioning: Duration,
    /// Where the provisioning figure came from ("playbook default", "median of 3 runs").
    pub source: String,
    /// The whole run, capture to health: the median of earlier successful runs of the same
    /// plan changes on this machine, else the downtime plus the steps around it.
    #[serde(
        default,
        rename = "run_ms",
        alias = "run",
        with = "crate::plan::duration_ms"
    )]
    #[schemars(with = "u64")]
    pub run: Duration,
    /// Where `run` came from ("median of 3 earlier runs", "playbook default").
    #[serde(default)]
    pub run_source: String,
    /// A worst-case rollback after the point of no return (see `unattended::gate`).
    #[serde(
        default,
        rename = "rollback_ms",
        alias = "rollback",
        with = "crate::plan::duration_ms"
    )]
    #[schemars(with = "u64")]
    pub rollback: Duration,
}

/// Capture, guards and the health wait around the downtime, for the default run estimate.
const RUN_OVERHEAD: Duration = Duration::from_secs(30);

/// The plan: what `plan` prints and `run` executes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Plan {
    pub app: String,
    pub playbook: String,
    pub playbook_origin: String,
    pub changes: Vec<PlannedChange>,
    pub writers: Vec<String>,
    pub guards: Vec<Guard>,
    pub blocked: bool,
    pub steps: Vec<PlannedStep>,
    pub estimate: Estimate,
    pub capture: Capture,
}

/// Verify and snapshot read about this many keys a second (measured; see `bench/verify`).
const KEYS_PER_SECOND: u64 = 100_000;
/// Time for dynos to stop and connections to drain.
const DRAIN_ESTIMATE: Duration = Duration::from_secs(5);
/// A live swap's cutover after the drain: the changed keys, and the attachment move (one
/// release per attachment).
const MOVE_ESTIMATE: Duration = Duration::from_secs(10);

/// Builds the plan. Pure.
pub fn build(request: &RunRequest, capture: &Capture, provisioning: (Duration, String)) -> Plan {
    let guards = guards::evaluate(request, capture);
    let blocked = guards::blocked(&guards);
    let changes: Vec<PlannedChange> = request
        .changes
        .iter()
        .zip(&capture.addons)
        .map(|(c, lookup)| match lookup {
            AddonLookup::Found(a) => PlannedChange {
                label: a.label().to_owned(),
                addon: a.name.clone(),
                from: a.plan.clone(),
                to: crate::plans::bare_name(&c.plan).to_owned(),
                policy: c.policy,
                keys: a.redis.as_ref().map(|r| r.keys),
            },
            AddonLookup::Missing { requested_as, .. } => PlannedChange {
                label: requested_as.clone(),
                addon: requested_as.clone(),
                from: "?".into(),
                to: crate::plans::bare_name(&c.plan).to_owned(),
                policy: c.policy,
                keys: None,
            },
        })
        .collect();
    let keys: u64 = changes.iter().filter_map(|c| c.keys).sum();
    let data = Duration::from_millis(keys * 1000 / KEYS_PER_SECOND);
    let live =
        crate::playbook::Strategy::of(&request.playbook) == crate::playbook::Strategy::LiveSwap;
    // In place, the writers are stopped through provisioning, snapshot and verify. In a live
    // swap, provisioning and the copy happen while the app runs; the downtime is the drain, the
    // changed keys and the attachment move.
    let (downtime, run, rollback) = if live {
        let downtime = DRAIN_ESTIMATE + MOVE_ESTIMATE;
        (
            downtime,
            provisioning.0 + data + downtime + RUN_OVERHEAD,
            MOVE_ESTIMATE,
        )
    } else {
        let downtime = DRAIN_ESTIMATE + provisioning.0 + data * 2;
        (downtime, downtime + RUN_OVERHEAD, downtime)
    };
    let estimate = Estimate {
        downtime,
        provisioning: provisioning.0,
        run,
        run_source: provisioning.1.clone(),
        rollback,
        source: provisioning.1,
    };
    let steps = request
        .playbook
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let (detail, skipped) = describe(step.action, request, capture, &changes);
            PlannedStep {
                number: i + 1,
                action: step.action,
                detail,
                point_of_no_return: step.action.at_risk(),
                starts_downtime: step.action == Action::Scale,
                ends_downtime: step.action == Action::RestoreFormation,
                skipped,
                compensation: step.compensation,
            }
        })
        .collect();
    Plan {
        app: request.app.clone(),
        playbook: request.playbook.name.clone(),
        playbook_origin: request.playbook.origin.clone(),
        changes,
        writers: request.params.writers.clone(),
        guards,
        blocked,
        steps,
        estimate,
        capture: capture.clone(),
    }
}

fn formation_line(request: &RunRequest, capture: &Capture, to_zero: bool) -> String {
    request
        .params
        .writers
        .iter()
        .map(|w| {
            let q = capture.quantity(w);
            let size = capture
                .formation
                .iter()
                .find(|p| &p.process_type == w)
                .map_or("?", |p| p.size.as_str());
            if to_zero {
                format!("{w} {q} -> 0")
            } else {
                format!("{w} 0 -> {q} ({size})")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(
    action: Action,
    request: &RunRequest,
    capture: &Capture,
    changes: &[PlannedChange],
) -> (String, bool) {
    let addons = changes
        .iter()
        .map(|c| c.label.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    match action {
        Action::Capture => (
            format!(
                "read formation, maintenance flag, add-ons and Redis INFO of {}",
                capture.app
            ),
            false,
        ),
        Action::Guard => ("evaluate every guard (below)".into(), false),
        Action::Maintenance => {
            if request.params.maintenance {
                (
                    format!("turn maintenance mode on for {}", capture.app),
                    false,
                )
            } else {
                (
                    "maintenance mode stays as it is (not requested)".into(),
                    true,
                )
            }
        }
        Action::Scale => (
            format!(
                "scale {} in one call",
                formation_line(request, capture, true)
            ),
            false,
        ),
        Action::WaitDrained => (
            format!(
                "wait until no {} dyno is listed and {addons} show no client but upshift",
                request.params.writers.join("/")
            ),
            false,
        ),
        Action::Snapshot => (
            format!(
                "snapshot and digest {}",
                changes
                    .iter()
                    .map(|c| match c.keys {
                        Some(k) => format!("{} ({k} keys)", c.label),
                        None => c.label.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            false,
        ),
        Action::ChangePlan => (
            changes
                .iter()
                .map(|c| format!("{} {} -> {}", c.label, c.from, c.to))
                .collect::<Vec<_>>()
                .join("; "),
            false,
        ),
        Action::WaitProvisioned => (
            format!(
                "wait until {addons} are provisioned on their new plans and answer as primary, \
                 the proof holding for {} (settle)",
                crate::units::duration(request.params.settle)
            ),
            false,
        ),
        Action::Verify => (
            format!(
                "digest {addons} through the current config var URLs and compare with the snapshots{}",
                if changes.iter().any(|c| c.policy == DataPolicy::Critical) {
                    "; repair critical data from the snapshot"
                } else {
                    ""
                }
            ),
            false,
        ),
        Action::RestoreFormation => {
            let mut s = format!("scale {}", formation_line(request, capture, false));
            if request.params.maintenance && !capture.maintenance {
                s.push_str("; maintenance mode off");
            }
            (s, false)
        }
        Action::Health => (
            format!(
                "wait until {} dynos are up and Redis clients are back under each plan's limit",
                request.params.writers.join("/")
            ),
            false,
        ),
        Action::ProvisionNew => (
            format!(
                "provision a new add-on per change ({}), the app running",
                changes
                    .iter()
                    .map(|c| format!("{} on {}", c.label, c.to))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            false,
        ),
        Action::CopyLive => (
            format!(
                "keyspace notifications on for {addons}; copy every key and the settings to the                  new add-ons while the app runs"
            ),
            false,
        ),
        Action::CatchUp => (
            "copy the keys changed since, compare them and the key counts on both sides".into(),
            false,
        ),
        Action::MoveAttachments => (
            format!("point every attachment of {addons} at its new add-on"),
            false,
        ),
        Action::RetireOld => (
            format!(
                "notifications back on the old add-ons; retire them: {}",
                request.params.retire_old
            ),
            false,
        ),
    }
}

/// Serialises a `Duration` as whole milliseconds.
pub mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests;
