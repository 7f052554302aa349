//! The reviewed plan against the plan as it would be built now: the pure comparison behind
//! `upshift run --plan PLAN.json`. The run rebuilds the plan from the request stored in the file
//! and a fresh capture of the platform, and refuses (exit 3) when it is not the plan a person
//! reviewed.
//!
//! [`drift`](crate::unattended::drift) asks "has the platform moved?"; this asks "would the run
//! do what was reviewed?". The run executes the stored *request*, so an edit to it (a target
//! raised from premium-1 to premium-5, a policy switched to cache, a compensation removed)
//! shows up here as a difference from the stored *plan*, even when the file was resealed with a
//! new hash.
//!
//! # Must be identical
//! The app and its id, the playbook and where it came from, the writers to stop, each change
//! (add-on, its id, current and target plan, data policy), and each step (action, compensation,
//! point of no return, where the downtime starts and ends, skipped or not).
//!
//! # Tolerated
//! Live figures, which move while the app runs: key counts, the estimate, the steps' wording
//! (it quotes key counts and formation quantities) and the guards' figures. The guards are
//! evaluated again on the new figures anyway, and the formation, maintenance flag, memory and
//! clients are judged, with their own tolerances, by the drift check.

use std::fmt;

use crate::plan::facts::AddonLookup;
use crate::plan::guards::{Guard, GuardId, Verdict};
use crate::plan::{Plan, PlannedChange, PlannedStep};

/// One way the plan built now differs from the reviewed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanDifference {
    /// What it is about: `target of ENKETO_REDIS_MAIN`, `step 4`, `writers`.
    pub what: String,
    /// As reviewed (in the file's plan).
    pub reviewed: String,
    /// As the run would do it now.
    pub now: String,
}

impl fmt::Display for PlanDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: reviewed {}, now {}",
            self.what, self.reviewed, self.now
        )
    }
}

fn differ(
    out: &mut Vec<PlanDifference>,
    what: impl Into<String>,
    reviewed: impl fmt::Display,
    now: impl fmt::Display,
) {
    let (reviewed, now) = (reviewed.to_string(), now.to_string());
    if reviewed != now {
        out.push(PlanDifference {
            what: what.into(),
            reviewed,
            now,
        });
    }
}

/// Every difference between the `reviewed` plan and the plan built `now`, outside the
/// tolerances (see the module docs), in a stable order: app, playbook, writers, changes, steps.
pub fn compare(reviewed: &Plan, now: &Plan) -> Vec<PlanDifference> {
    let mut out = Vec::new();
    differ(&mut out, "app", &reviewed.app, &now.app);
    differ(
        &mut out,
        "app id",
        &reviewed.capture.app_id,
        &now.capture.app_id,
    );
    differ(&mut out, "playbook", &reviewed.playbook, &now.playbook);
    differ(
        &mut out,
        "playbook origin",
        &reviewed.playbook_origin,
        &now.playbook_origin,
    );
    differ(
        &mut out,
        "writers to stop",
        list(&reviewed.writers),
        list(&now.writers),
    );
    changes(&mut out, reviewed, now);
    let count = reviewed.steps.len().max(now.steps.len());
    for number in 1..=count {
        // Steps are keyed by their number: their order is what runs.
        let find = |p: &Plan| p.steps.iter().find(|s| s.number == number).map(step);
        differ(
            &mut out,
            format!("step {number}"),
            find(reviewed).unwrap_or_else(|| "no such step".into()),
            find(now).unwrap_or_else(|| "no such step".into()),
        );
    }
    out
}

/// The changes, keyed by the add-on's label (never by position: a change left out must not
/// shift the others).
fn changes(out: &mut Vec<PlanDifference>, reviewed: &Plan, now: &Plan) {
    let id = |p: &Plan, label: &str| {
        p.capture
            .addons
            .iter()
            .find_map(|a| match a {
                AddonLookup::Found(f) if f.label() == label => Some(f.id.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "not found".into())
    };
    // Who uses the add-on: a live swap moves every attachment it has, so one added since the
    // review would move a config var no one reviewed (an in-place change is unaffected, but the
    // list is the reviewed world either way). Unknown (not read) is left to the guards.
    let attachments = |p: &Plan, label: &str| {
        p.capture.addons.iter().find_map(|a| match a {
            AddonLookup::Found(f) if f.label() == label => f.attachments.as_ref().map(|list| {
                let mut names: Vec<String> = list
                    .iter()
                    .map(|a| format!("{}/{}", a.app, a.name))
                    .collect();
                names.sort();
                names.join(", ")
            }),
            _ => None,
        })
    };
    for r in &reviewed.changes {
        match now.changes.iter().find(|n| n.label == r.label) {
            None => differ(
                out,
                format!("change of {}", r.label),
                change(r),
                "not planned",
            ),
            Some(n) => {
                let label = &r.label;
                differ(out, format!("add-on of {label}"), &r.addon, &n.addon);
                differ(
                    out,
                    format!("add-on id of {label}"),
                    id(reviewed, label),
                    id(now, label),
                );
                if let (Some(before), Some(after)) =
                    (attachments(reviewed, label), attachments(now, label))
                {
                    differ(out, format!("attachments of {label}"), before, after);
                }
                differ(out, format!("current plan of {label}"), &r.from, &n.from);
                differ(out, format!("target of {label}"), &r.to, &n.to);
                differ(
                    out,
                    format!("data policy of {label}"),
                    r.policy.name(),
                    n.policy.name(),
                );
            }
        }
    }
    for n in &now.changes {
        if !reviewed.changes.iter().any(|r| r.label == n.label) {
            differ(
                out,
                format!("change of {}", n.label),
                "not planned",
                change(n),
            );
        }
    }
}

fn change(c: &PlannedChange) -> String {
    format!("{} {} -> {} ({})", c.addon, c.from, c.to, c.policy.name())
}

/// A step in words, with everything that must match and nothing that may move.
fn step(s: &PlannedStep) -> String {
    let mut text = s.action.name().to_owned();
    match s.compensation {
        Some(c) => {
            text.push_str(", compensation ");
            text.push_str(c.name());
        }
        None => text.push_str(", no compensation"),
    }
    for (flag, words) in [
        (s.point_of_no_return, "point of no return"),
        (s.starts_downtime, "stops the writers"),
        (s.ends_downtime, "restarts the writers"),
        (s.skipped, "skipped"),
    ] {
        if flag {
            text.push_str(", ");
            text.push_str(words);
        }
    }
    text
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// The differences as guards: one blocking guard each, or one passing guard.
pub fn guards(differences: &[PlanDifference], plan_file: &str) -> Vec<Guard> {
    if differences.is_empty() {
        return vec![Guard {
            id: GuardId::PlanReviewed,
            subject: None,
            verdict: Verdict::Pass,
            detail: format!("the run is the plan reviewed in {plan_file}"),
        }];
    }
    differences
        .iter()
        .map(|d| Guard {
            id: GuardId::PlanReviewed,
            subject: None,
            verdict: Verdict::Block,
            detail: format!(
                "{d} (the run would not be the plan reviewed in {plan_file}; run `upshift plan … \
                 --out` again and review the new plan)"
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::{Action, Compensation};
    use crate::plan::facts::DataPolicy;
    use crate::plan::{Estimate, PlannedStep};

    fn planned_step(
        number: usize,
        action: Action,
        compensation: Option<Compensation>,
    ) -> PlannedStep {
        PlannedStep {
            number,
            action,
            detail: format!("{action} of 1000 keys"),
            point_of_no_return: action.at_risk(),
            starts_downtime: action == Action::Scale,
            ends_downtime: action == Action::RestoreFormation,
            skipped: false,
            compensation,
        }
    }

    fn plan() -> Plan {
        Plan {
            app: "enketo-demo".into(),
            playbook: "heroku-redis-plan-change".into(),
            playbook_origin: "builtin".into(),
            changes: vec![PlannedChange {
                label: "ENKETO_REDIS_MAIN".into(),
                addon: "redis-cubed-1".into(),
                from: "premium-0".into(),
                to: "premium-1".into(),
                policy: DataPolicy::Critical,
                keys: Some(1000),
            }],
            writers: vec!["web".into()],
            guards: vec![],
            blocked: false,
            steps: vec![
                planned_step(1, Action::Scale, Some(Compensation::RestoreFormation)),
                planned_step(2, Action::ChangePlan, Some(Compensation::SettlePlan)),
                planned_step(3, Action::RestoreFormation, None),
            ],
            estimate: Estimate {
                downtime: Duration::from_secs(60),
                provisioning: Duration::from_secs(50),
                source: "playbook default".into(),
                run: Duration::from_secs(90),
                run_source: "playbook default".into(),
                rollback: Duration::from_secs(60),
            },
            capture: {
                // The fixture, with the formation as a web-only app shows it.
                let mut capture = crate::plan::fixture::enketo_capture();
                capture.formation.truncate(1);
                capture
            },
        }
    }

    fn lines(now: &Plan) -> Vec<String> {
        compare(&plan(), now)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn live_figures_may_move() {
        let mut now = plan();
        now.changes[0].keys = Some(1500);
        now.steps[0].detail = "scale web 3 -> 0".into();
        now.estimate.run = Duration::from_secs(300);
        now.estimate.run_source = "median of 3 earlier runs".into();
        now.guards.push(Guard {
            id: GuardId::MemoryFits,
            subject: None,
            verdict: Verdict::Pass,
            detail: "12 MB".into(),
        });
        now.capture.captured_at = "2026-11-29T01:00:00Z".into();
        now.capture.formation[0].quantity = 3;
        assert_eq!(lines(&now), Vec::<String>::new());
        let g = guards(&[], "plan.json");
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].verdict, Verdict::Pass);
    }

    #[test]
    fn an_attachment_added_since_the_review_is_a_difference() {
        use crate::plan::facts::{AddonLookup, AttachmentRef};
        let with = |names: &[&str]| {
            let mut p = plan();
            if let AddonLookup::Found(f) = &mut p.capture.addons[0] {
                f.attachments = Some(
                    names
                        .iter()
                        .map(|n| AttachmentRef {
                            app: "enketo-demo".into(),
                            name: (*n).into(),
                        })
                        .collect(),
                );
            }
            p
        };
        let reviewed = with(&["ENKETO_REDIS_MAIN"]);
        let now = with(&["ENKETO_REDIS_MAIN", "EXTRA_REDIS"]);
        let said: Vec<String> = compare(&reviewed, &now)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].contains("attachments of ENKETO_REDIS_MAIN"),
            "{said:?}"
        );
        assert!(said[0].contains("EXTRA_REDIS"), "{said:?}");
        // The same set in another order, or not read on one side, is no difference.
        let reordered = with(&["ENKETO_REDIS_MAIN"]);
        assert!(compare(&reviewed, &reordered).is_empty());
        assert!(compare(&plan(), &now).is_empty());
    }

    #[test]
    fn an_edited_target_policy_or_compensation_is_named_with_both_values() {
        let mut now = plan();
        now.changes[0].to = "premium-5".into();
        now.changes[0].policy = DataPolicy::Cache;
        now.steps[0].compensation = None;
        assert_eq!(
            lines(&now),
            vec![
                "target of ENKETO_REDIS_MAIN: reviewed premium-1, now premium-5",
                "data policy of ENKETO_REDIS_MAIN: reviewed critical, now cache",
                "step 1: reviewed scale, compensation restore-formation, stops the writers, now \
                 scale, no compensation, stops the writers",
            ]
        );
        let d = compare(&plan(), &now);
        let g = guards(&d, "plan.json");
        assert_eq!(g.len(), 3);
        assert!(g.iter().all(|g| g.verdict == Verdict::Block));
        assert!(g[0].detail.contains("plan.json"), "{}", g[0].detail);
        assert!(g[0].detail.contains("upshift plan"), "{}", g[0].detail);
    }

    #[test]
    fn identity_writers_and_steps_must_match() {
        let mut now = plan();
        now.app = "other-app".into();
        now.capture.app_id = "app-2".into();
        now.playbook_origin = "./mine.toml".into();
        now.writers = vec!["web".into(), "worker".into()];
        if let AddonLookup::Found(a) = &mut now.capture.addons[0] {
            a.id = "addon-9".into();
        }
        now.steps.pop();
        now.steps[1].point_of_no_return = false;
        assert_eq!(
            lines(&now),
            vec![
                "app: reviewed enketo-demo, now other-app",
                "app id: reviewed app-1, now app-2",
                "playbook origin: reviewed builtin, now ./mine.toml",
                "writers to stop: reviewed web, now web, worker",
                "add-on id of ENKETO_REDIS_MAIN: reviewed addon-1, now addon-9",
                "step 2: reviewed change-plan, compensation settle-plan, point of no return, now \
                 change-plan, compensation settle-plan",
                "step 3: reviewed restore-formation, no compensation, restarts the writers, now \
                 no such step",
            ]
        );
    }

    #[test]
    fn changes_are_paired_by_add_on_not_position() {
        let mut now = plan();
        let mut cache = now.changes[0].clone();
        cache.label = "ENKETO_REDIS_CACHE".into();
        cache.addon = "redis-cache-2".into();
        cache.policy = DataPolicy::Cache;
        // A change planned in front of the reviewed one does not shift it.
        now.changes.insert(0, cache);
        assert_eq!(
            lines(&now),
            vec![
                "change of ENKETO_REDIS_CACHE: reviewed not planned, now redis-cache-2 premium-0 \
                 -> premium-1 (cache)"
            ]
        );
        now.changes.remove(1);
        assert_eq!(
            lines(&now)[0],
            "change of ENKETO_REDIS_MAIN: reviewed redis-cubed-1 premium-0 -> premium-1 \
             (critical), now not planned"
        );
    }
}
