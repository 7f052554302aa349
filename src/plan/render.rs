//! Renders a plan for people: changes, guards with their figures, steps with the point of no
//! return marked, the estimate, and the verdict.

use std::fmt::Write;

use crate::plan::Plan;
use crate::plan::guards::Verdict;
use crate::printable::text;

/// The plan as text (stdout of `upshift plan`, and the wizard's review screen), without colour.
pub fn render(plan: &Plan) -> String {
    render_with(plan, |_, label| label.to_owned())
}

/// The plan as text, each verdict label (already padded) passed through `paint`: the display
/// decides colour, so this stays pure and one BLOCKED among many PASS can be made to stand out.
/// Every name and detail goes through [`text`]: they quote the API (add-on, plan, process type
/// and dyno size names), which may hold control characters; the plan itself keeps them exact
/// for `--json`.
pub fn render_with(plan: &Plan, paint: impl Fn(Verdict, &str) -> String) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Plan for {} (playbook {}, {})",
        text(&plan.app),
        text(&plan.playbook),
        text(&plan.playbook_origin)
    );
    let _ = writeln!(out, "\nChanges");
    for c in &plan.changes {
        let keys = c.keys.map_or(String::new(), |k| format!(", {k} keys"));
        let _ = writeln!(
            out,
            "  {:<22} {:<22} {} -> {}  ({}{keys})",
            text(&c.label),
            text(&c.addon),
            text(&c.from),
            text(&c.to),
            c.policy.name()
        );
    }
    let _ = writeln!(out, "\nGuards");
    for g in &plan.guards {
        let subject = g
            .subject
            .as_deref()
            .map_or(String::new(), |s| format!("{}: ", text(s)));
        let label = paint(g.verdict, &format!("{:<7}", g.verdict.label()));
        let _ = writeln!(out, "  {label} {}{}", subject, text(&g.detail));
    }
    let _ = writeln!(out, "\nSteps");
    for s in &plan.steps {
        let mut marks = Vec::new();
        if s.starts_downtime {
            marks.push("downtime starts".to_owned());
        }
        if s.point_of_no_return {
            marks.push("POINT OF NO RETURN".to_owned());
        }
        if s.ends_downtime {
            marks.push("downtime ends".to_owned());
        }
        if s.skipped {
            marks.push("skipped".to_owned());
        }
        // What a rollback does is part of what the reviewer approves.
        if let Some(c) = s.compensation {
            marks.push(format!("compensation: {}", c.name()));
        }
        let marks = if marks.is_empty() {
            String::new()
        } else {
            format!("  [{}]", marks.join(", "))
        };
        let _ = writeln!(
            out,
            "  {:>2}. {:<18} {}{marks}",
            s.number,
            s.action.name(),
            text(&s.detail)
        );
    }
    let _ = writeln!(
        out,
        "\nEstimated downtime: {} (provisioning {} from {}; the writers are stopped from step {} to step {})",
        crate::units::duration(plan.estimate.downtime),
        crate::units::duration(plan.estimate.provisioning),
        plan.estimate.source,
        plan.steps
            .iter()
            .find(|s| s.starts_downtime)
            .map_or(0, |s| s.number),
        plan.steps
            .iter()
            .find(|s| s.ends_downtime)
            .map_or(0, |s| s.number),
    );
    if plan.estimate.run > std::time::Duration::ZERO {
        let _ = writeln!(
            out,
            "Estimated run: {} ({}); worst-case rollback after the point of no return: {}",
            crate::units::duration(plan.estimate.run),
            plan.estimate.run_source,
            crate::units::duration(plan.estimate.rollback),
        );
    }
    let blocking = plan
        .guards
        .iter()
        .filter(|g| g.verdict == Verdict::Block)
        .count();
    if blocking > 0 {
        let _ = writeln!(
            out,
            "\n{} by {blocking} guard(s): nothing will be written. Fix what they say and plan again.",
            paint(Verdict::Block, "BLOCKED")
        );
    } else {
        let _ = writeln!(
            out,
            "\nReady: `upshift run` with the same arguments executes these steps."
        );
    }
    out
}
