//! The guards: pure checks on captured facts, all evaluated before anything is written, each
//! with the figures that decided it. `plan` shows them; `run` stops at the first `Block`.

use serde::{Deserialize, Serialize};

use crate::heroku::models::AddOnState;
use crate::plan::RunRequest;
use crate::plan::facts::{
    AddonFacts, AddonLookup, Capture, ChangeRequest, DataPolicy, UnreadableReason,
};
use crate::plans;

/// A guard's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    /// Worth knowing, not blocking.
    Warn,
    Block,
}

impl Verdict {
    /// The label in the rendered plan.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Warn => "WARN",
            Self::Block => "BLOCKED",
        }
    }
}

/// A guard's stable id. Scripts read it from `plan --json` and journals keep it, so the wire
/// form is the kebab-case string; code compares variants, never text. An id this version does
/// not know (a newer journal) is kept as `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GuardId {
    NoOtherRun,
    WritersRunning,
    WriterExists,
    AddonExists,
    AddonIsHerokuRedis,
    AddonProvisioned,
    NoPlatformMaintenance,
    TargetPlanExists,
    TargetPlanDiffers,
    SamePlanFamily,
    RedisReachable,
    MemoryFits,
    ConnectionsFit,
    DiskSpace,
    WindowCutoff,
    PlanDrift,
    PlanReviewed,
    CopyConnections,
    NotificationsSettable,
    AttachmentsKnown,
    OnlyThisApp,
    TwoAddons,
    RetireOldNow,
    Other(String),
}

impl GuardId {
    /// The wire string (`connections-fit`).
    pub fn as_str(&self) -> &str {
        match self {
            Self::NoOtherRun => "no-other-run",
            Self::WritersRunning => "writers-running",
            Self::WriterExists => "writer-exists",
            Self::AddonExists => "addon-exists",
            Self::AddonIsHerokuRedis => "addon-is-heroku-redis",
            Self::AddonProvisioned => "addon-provisioned",
            Self::NoPlatformMaintenance => "no-platform-maintenance",
            Self::TargetPlanExists => "target-plan-exists",
            Self::TargetPlanDiffers => "target-plan-differs",
            Self::SamePlanFamily => "same-plan-family",
            Self::RedisReachable => "redis-reachable",
            Self::MemoryFits => "memory-fits",
            Self::ConnectionsFit => "connections-fit",
            Self::DiskSpace => "disk-space",
            Self::WindowCutoff => "window-cutoff",
            Self::PlanDrift => "plan-drift",
            Self::PlanReviewed => "plan-reviewed",
            Self::CopyConnections => "copy-connections",
            Self::NotificationsSettable => "notifications-settable",
            Self::AttachmentsKnown => "attachments-known",
            Self::OnlyThisApp => "only-this-app",
            Self::TwoAddons => "two-addons",
            Self::RetireOldNow => "retire-old-now",
            Self::Other(s) => s,
        }
    }
}

impl From<&str> for GuardId {
    fn from(s: &str) -> Self {
        match s {
            "no-other-run" => Self::NoOtherRun,
            "writers-running" => Self::WritersRunning,
            "writer-exists" => Self::WriterExists,
            "addon-exists" => Self::AddonExists,
            "addon-is-heroku-redis" => Self::AddonIsHerokuRedis,
            "addon-provisioned" => Self::AddonProvisioned,
            "no-platform-maintenance" => Self::NoPlatformMaintenance,
            "target-plan-exists" => Self::TargetPlanExists,
            "target-plan-differs" => Self::TargetPlanDiffers,
            "same-plan-family" => Self::SamePlanFamily,
            "redis-reachable" => Self::RedisReachable,
            "memory-fits" => Self::MemoryFits,
            "connections-fit" => Self::ConnectionsFit,
            "disk-space" => Self::DiskSpace,
            "window-cutoff" => Self::WindowCutoff,
            "plan-drift" => Self::PlanDrift,
            "plan-reviewed" => Self::PlanReviewed,
            "copy-connections" => Self::CopyConnections,
            "notifications-settable" => Self::NotificationsSettable,
            "attachments-known" => Self::AttachmentsKnown,
            "only-this-app" => Self::OnlyThisApp,
            "two-addons" => Self::TwoAddons,
            "retire-old-now" => Self::RetireOldNow,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl std::fmt::Display for GuardId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tests and scripts name guards by their wire id.
impl PartialEq<&str> for GuardId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for GuardId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A string: its wire id (`connections-fit`); ids of later versions read back as they are.
impl schemars::JsonSchema for GuardId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "GuardId".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string" })
    }
}

impl<'de> Deserialize<'de> for GuardId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Self::from(s.as_str()))
    }
}

/// One evaluated guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Guard {
    /// Stable id (`connections-fit`), for scripts.
    pub id: GuardId,
    /// The add-on it is about (its label), when it is about one.
    pub subject: Option<String>,
    pub verdict: Verdict,
    /// The figures and the reason, e.g. "2 web x 26 = 52 > premium-0 limit 40".
    pub detail: String,
}

pub(super) fn guard(id: GuardId, subject: Option<&str>, verdict: Verdict, detail: String) -> Guard {
    Guard {
        id,
        subject: subject.map(str::to_owned),
        verdict,
        detail,
    }
}

const MB: f64 = 1024.0 * 1024.0;

/// Evaluates every guard. Pure: the same facts give the same verdicts.
pub fn evaluate(request: &RunRequest, capture: &Capture) -> Vec<Guard> {
    let mut out = Vec::new();
    out.push(no_other_run(capture));
    out.extend(writers_known(request, capture));
    for (change, lookup) in request.changes.iter().zip(&capture.addons) {
        match lookup {
            AddonLookup::Missing {
                requested_as,
                message,
            } => out.push(guard(
                GuardId::AddonExists,
                Some(requested_as),
                Verdict::Block,
                format!("no add-on {requested_as} on app {}: {message}", capture.app),
            )),
            AddonLookup::Found(addon) => out.extend(addon_guards(request, capture, change, addon)),
        }
    }
    if crate::playbook::Strategy::of(&request.playbook) == crate::playbook::Strategy::LiveSwap {
        out.extend(super::swap_guards::evaluate(request, capture));
    }
    out.push(disk_space(capture));
    out
}

/// Whether any guard blocks.
pub fn blocked(guards: &[Guard]) -> bool {
    guards.iter().any(|g| g.verdict == Verdict::Block)
}

fn no_other_run(capture: &Capture) -> Guard {
    if capture.unfinished_runs.is_empty() {
        guard(
            GuardId::NoOtherRun,
            None,
            Verdict::Pass,
            format!("no unfinished run for {}", capture.app),
        )
    } else {
        guard(
            GuardId::NoOtherRun,
            None,
            Verdict::Block,
            format!(
                "unfinished run {} for {}: finish it with `upshift resume` or `upshift rollback` first",
                capture.unfinished_runs.join(", "),
                capture.app
            ),
        )
    }
}

/// A writer type already at 0 when the run captures the formation: someone else (another run,
/// another machine with its own state dir, a person) may be mid-change. Restoring "the exact
/// previous formation" would then restore their 0 and keep the app down, so it blocks unless
/// the operator says 0 is the type's normal state.
fn stopped_writer(w: &str, allowed: bool) -> Guard {
    if allowed {
        guard(
            GuardId::WritersRunning,
            Some(w),
            Verdict::Warn,
            format!(
                "writer {w} is at 0 dynos now and --allow-stopped-writers was given: it stays at 0 after the run"
            ),
        )
    } else {
        guard(
            GuardId::WritersRunning,
            Some(w),
            Verdict::Block,
            format!(
                "writer {w} is at 0 dynos now: another run, machine or person may be mid-change, and this run would restore 0 at its end; find out who stopped it and scale it back (`heroku ps`), or pass --allow-stopped-writers if 0 is its normal state"
            ),
        )
    }
}

fn writers_known(request: &RunRequest, capture: &Capture) -> Vec<Guard> {
    request
        .params
        .writers
        .iter()
        .map(|w| {
            let exists = capture.formation.iter().any(|p| &p.process_type == w);
            if exists && capture.quantity(w) == 0 {
                stopped_writer(w, request.params.allow_stopped_writers)
            } else if exists {
                guard(
                    GuardId::WriterExists,
                    None,
                    Verdict::Pass,
                    format!(
                        "writer {w}: {} dyno(s) to stop and restore",
                        capture.quantity(w)
                    ),
                )
            } else {
                let known: Vec<&str> = capture
                    .formation
                    .iter()
                    .map(|p| p.process_type.as_str())
                    .collect();
                guard(
                    GuardId::WriterExists,
                    None,
                    Verdict::Block,
                    format!(
                        "writer {w} is not a process type of {} (it has: {}); fix --writers",
                        capture.app,
                        known.join(", ")
                    ),
                )
            }
        })
        .collect()
}

fn addon_guards(
    request: &RunRequest,
    capture: &Capture,
    change: &ChangeRequest,
    addon: &AddonFacts,
) -> Vec<Guard> {
    let label = addon.label();
    let s = Some(label);
    let mut out = Vec::new();
    out.push(guard(
        GuardId::AddonExists,
        s,
        Verdict::Pass,
        format!("is add-on {} ({})", addon.name, addon.service),
    ));
    if addon.service != plans::HEROKU_REDIS {
        out.push(guard(
            GuardId::AddonIsHerokuRedis,
            s,
            Verdict::Block,
            format!(
                "is a {} add-on; upshift changes heroku-redis plans only",
                addon.service
            ),
        ));
        return out;
    }
    // The Data API is how a plan change is watched to its end (`/wait`, the server's plan):
    // when it does not answer now, a run would stop the app and pass the point of no return,
    // then wait blind. Block before anything is written.
    if let Some(answered) = addon.waiting.as_ref() {
        addon_provisioned(&mut out, addon, s, answered);
    } else {
        out.push(guard(
            GuardId::AddonProvisioned,
            s,
            Verdict::Block,
            format!(
                "the Redis Data API did not answer for {} (GET /redis/v0/databases/{}/wait): \
                 upshift watches the plan change through it, so it would pass the point of no \
                 return blind; check `heroku redis:info -a APP` (and HEROKU_DATA_URL if set), \
                 then plan again",
                addon.name, addon.name
            ),
        ));
    }
    if let Some(status) = addon.maintenance {
        out.push(guard(
            GuardId::NoPlatformMaintenance,
            s,
            if status.blocks_change() { Verdict::Block } else { Verdict::Pass },
            if status.blocks_change() {
                format!("a platform maintenance is {}: let it finish (`heroku redis:maintenance`) before changing the plan", format!("{status:?}").to_lowercase())
            } else {
                "no platform maintenance pending".to_owned()
            },
        ));
    }
    let current = plans::find(&addon.plan);
    let Some(target) = plans::find(&change.plan) else {
        out.push(guard(
            GuardId::TargetPlanExists,
            s,
            Verdict::Block,
            format!(
                "no heroku-redis plan {}: use one of mini, premium-0..14, private-N, shield-N",
                change.plan
            ),
        ));
        return out;
    };
    if addon.plan == target.name {
        out.push(guard(
            GuardId::TargetPlanDiffers,
            s,
            Verdict::Block,
            format!("already on {}: nothing to change", target.name),
        ));
        return out;
    }
    out.push(guard(
        GuardId::TargetPlanDiffers,
        s,
        Verdict::Pass,
        format!("{} -> {}", addon.plan, target.name),
    ));
    if let Some(current) = current
        && plans::family(&current) != plans::family(&target)
    {
        out.push(guard(
            GuardId::SamePlanFamily,
            s,
            Verdict::Warn,
            format!(
                "moves from the {} family to {}: check that the app's space allows it",
                plans::family(&current),
                plans::family(&target)
            ),
        ));
    }
    let clients_now = addon.redis.as_ref().map(|r| r.connected_clients);
    out.push(memory_fits(request, addon, current.as_ref(), &target));
    out.push(connections_fit(
        request,
        capture,
        change,
        addon,
        clients_now,
        &target,
    ));
    if addon.redis.is_none() {
        let (error, reason) = addon.redis_error.as_ref().map_or(
            ("no URL in the config vars", UnreadableReason::NoUrl),
            |e| (e.detail.as_str(), e.reason),
        );
        if reason == UnreadableReason::ForeignServer {
            // Proven at capture, before anything is written: a run would stop the writers
            // only to refuse the server at the drain and keep the app down (hostile pass 5, #9).
            out.push(guard(
                GuardId::RedisReachable,
                s,
                Verdict::Block,
                format!(
                    "{error}; a run would stop the app for nothing: fix the attachment, then plan again"
                ),
            ));
            return out;
        }
        if matches!(reason, UnreadableReason::NoUrl | UnreadableReason::BadUrl) {
            // Not a moment's trouble (a full connection limit frees up once the writers stop):
            // no snapshot, no verify can ever connect through this config var, so a run would
            // stop the app only to fail and roll back. Block before anything is written.
            out.push(guard(
                GuardId::RedisReachable,
                s,
                Verdict::Block,
                format!(
                    "{error}: upshift snapshots and verifies the data through it, so a run could only stop the app and roll back; set it to the add-on's redis:// or rediss:// URL (`heroku config -a {}`), then plan again",
                    request.app
                ),
            ));
            return out;
        }
        let full = reason == UnreadableReason::ConnectionLimit;
        out.push(guard(
            GuardId::RedisReachable,
            s,
            Verdict::Warn,
            if full {
                format!(
                    "refuses connections now ({error}): the app is over {}'s limit already; the change runs with the writers stopped, which frees the slots",
                    addon.plan
                )
            } else {
                format!(
                    "cannot read Redis INFO now ({error}); at a full connection limit that is expected: the writers stop before snapshot and verify connect"
                )
            },
        ));
    }
    out
}

fn memory_fits(
    request: &RunRequest,
    addon: &AddonFacts,
    current: Option<&plans::Plan>,
    target: &plans::Plan,
) -> Guard {
    let label = addon.label();
    let margin = request.params.memory_margin;
    let allowed = target.memory_bytes as f64 * margin;
    let Some(redis) = &addon.redis else {
        // Without INFO only an upgrade can be judged: the data fits its current plan.
        return match current {
            Some(c) if c.memory_bytes <= target.memory_bytes => guard(
                GuardId::MemoryFits,
                Some(label),
                Verdict::Pass,
                format!(
                    "upgrade: the data fits {} ({:.0} MB) <= {} {:.0} MB",
                    c.name,
                    c.memory_bytes as f64 / MB,
                    target.name,
                    target.memory_bytes as f64 / MB
                ),
            ),
            _ => guard(
                GuardId::MemoryFits,
                Some(label),
                Verdict::Block,
                format!(
                    "a downgrade to {} needs the used memory, and Redis INFO cannot be read now: {}",
                    target.name,
                    addon
                        .redis_error
                        .as_ref()
                        .map_or("unknown error", |e| e.detail.as_str())
                ),
            ),
        };
    };
    let used_f = redis.used_memory as f64;
    let fits = used_f <= allowed;
    guard(
        GuardId::MemoryFits,
        Some(label),
        if fits { Verdict::Pass } else { Verdict::Block },
        format!(
            "used memory {:.1} MB {} {} {:.0} MB x {margin} = {:.1} MB",
            used_f / MB,
            if fits { "<=" } else { ">" },
            target.name,
            target.memory_bytes as f64 / MB,
            allowed / MB
        ),
    )
}

/// Connections after restore: the restored writer dynos times what each opens, plus the
/// clients that are not writers, against the target's limit.
fn connections_fit(
    request: &RunRequest,
    capture: &Capture,
    change: &ChangeRequest,
    addon: &AddonFacts,
    clients_now: Option<u32>,
    target: &plans::Plan,
) -> Guard {
    // u64 and saturating sums: figures come from flags and the platform, and a wrapped
    // product (2 x 2147483648 = 0 in u32) would pass a plan that cannot hold the app.
    let restored: u64 = request
        .params
        .writers
        .iter()
        .map(|w| u64::from(capture.quantity(w)))
        .fold(0, u64::saturating_add);
    // Only dynos up for a while have opened all their connections: measure only when every
    // writer dyno is steady, and say so when the playbook's figure stands in.
    let unsteady: Vec<String> = request
        .params
        .writers
        .iter()
        .filter(|w| capture.steady(w) < capture.quantity(w))
        .map(|w| {
            format!(
                "{} of {} {w} dyno(s) up for {}s",
                capture.steady(w),
                capture.quantity(w),
                crate::plan::facts::STEADY_AGE.as_secs()
            )
        })
        .collect();
    let all_up = unsteady.is_empty();
    let running: u64 = request
        .params
        .writers
        .iter()
        .map(|w| u64::from(capture.steady(w)))
        .fold(0, u64::saturating_add);
    // A highly available plan's standby replica holds one connection on its primary (its
    // replication link), one of the plan's maxclients: not the app's, measured on the current
    // server, and needed again on the target.
    let standby_now = plans::find(&addon.plan).is_some_and(|p| p.is_ha());
    let standby_after = u64::from(target.is_ha());
    let (per_dyno, source) = if let Some(n) = change.connections_per_dyno {
        (u64::from(n), "given".to_owned())
    } else if let Some(clients) = clients_now
        .filter(|c| all_up && running > 0 && c.saturating_sub(u32::from(standby_now)) > 0)
    {
        let app = clients.saturating_sub(u32::from(standby_now));
        (
            u64::from(app).div_ceil(running),
            if standby_now {
                format!("measured: {clients} clients less the HA standby / {running} dynos")
            } else {
                format!("measured: {clients} clients / {running} dynos")
            },
        )
    } else {
        let n = match change.policy {
            DataPolicy::Critical => request.params.connections_per_dyno,
            DataPolicy::Cache => request.params.cache_connections_per_dyno,
        };
        let source = if all_up || restored == 0 {
            "playbook default".to_owned()
        } else {
            format!(
                "playbook default, not measured: {}; measure later with `upshift plan`",
                unsteady.join(", ")
            )
        };
        (u64::from(n), source)
    };
    let total = restored
        .saturating_mul(per_dyno)
        .saturating_add(standby_after);
    let writers = request.params.writers.join("+");
    let standby = if standby_after > 0 {
        " + 1 HA standby"
    } else {
        ""
    };
    let fits = total <= u64::from(target.max_clients);
    guard(
        GuardId::ConnectionsFit,
        Some(addon.label()),
        if fits { Verdict::Pass } else { Verdict::Block },
        format!(
            "connections after restore: {restored} {writers} x {per_dyno}{standby} = {total} {} {} limit {} ({source})",
            if fits { "<=" } else { ">" },
            target.name,
            target.max_clients
        ),
    )
}

fn disk_space(capture: &Capture) -> Guard {
    // A snapshot holds DUMP payloads, which are compact; used memory x 1.2 leaves room for the
    // records and the file's own overhead.
    let need: u64 = capture
        .found()
        .filter_map(|a| {
            a.redis
                .as_ref()
                .map(|r| r.used_memory)
                .or_else(|| plans::find(&a.plan).map(|p| p.memory_bytes))
        })
        .map(|used| used + used / 5)
        .sum();
    match capture.local_free_bytes {
        Some(free) if free >= need => guard(
            GuardId::DiskSpace,
            None,
            Verdict::Pass,
            format!(
                "snapshots need about {}, {} free",
                crate::units::bytes(need),
                crate::units::bytes(free)
            ),
        ),
        Some(free) => guard(
            GuardId::DiskSpace,
            None,
            Verdict::Block,
            format!(
                "snapshots need about {} but only {} is free: free space or set UPSHIFT_STATE_DIR elsewhere",
                crate::units::bytes(need),
                crate::units::bytes(free)
            ),
        ),
        None => guard(
            GuardId::DiskSpace,
            None,
            Verdict::Warn,
            "could not measure free disk space".into(),
        ),
    }
}

/// The `addon-provisioned` guard from the Data API's `/wait` answer.
fn addon_provisioned(
    out: &mut Vec<Guard>,
    addon: &AddonFacts,
    s: Option<&str>,
    answered: &(bool, String),
) {
    let waiting = Some(answered).filter(|(w, _)| *w);
    let provisioned = addon.state == AddOnState::Provisioned && waiting.is_none();
    out.push(guard(
        GuardId::AddonProvisioned,
        s,
        if provisioned {
            Verdict::Pass
        } else {
            Verdict::Block
        },
        match waiting {
            Some((_, msg)) => format!(
                "is {} and its Redis is busy ({msg}): wait until `heroku redis:wait` returns",
                addon.state
            ),
            None if provisioned => "provisioned and available".to_owned(),
            None => format!("is {}, not provisioned: wait until it is", addon.state),
        },
    ));
}
