//! The guard step: every guard evaluated on the captured facts, the last step before the
//! first write. It also decides the maintenance window the run is admitted into.

use super::StepCtx;
use crate::plan::guards;
use crate::runner::RunEvent;
use crate::runner::ledger::Ledger;
use crate::runner::record::Record;
use crate::window::gate;

/// The guards' verdict.
pub(in crate::runner) struct Guarded {
    /// A guard blocks (or there is nothing to judge): nothing may be written.
    pub blocked: bool,
    /// The window opening the run was admitted into, for the driver's overrun notices; `None`
    /// when blocked: a run that never stopped the writers cannot overrun.
    pub window: Option<gate::Admitted>,
}

/// Evaluates the guards and journals their verdicts. A journal that cannot take them blocks.
///
/// # Guarantees
/// Read-only on the platform; repeating it judges the same capture again.
pub(in crate::runner) fn run(ctx: &StepCtx<'_>, log: &mut Ledger) -> Guarded {
    let blocked_without_window = Guarded {
        blocked: true,
        window: None,
    };
    let Some(capture) = ctx.known.capture.as_ref() else {
        return blocked_without_window;
    };
    let mut guards = guards::evaluate(ctx.request, capture);
    // The window cutoff is decided here, the last step before the first write: once the
    // writers stop, the run finishes or rolls back whatever the clock says.
    let now = jiff::Timestamp::now();
    let estimate = ctx.runner.estimate(ctx.request, capture);
    guards.extend(
        ctx.runner
            .unattended_guards(ctx.request, capture, &estimate, now, false),
    );
    let blocked = guards::blocked(&guards);
    let window = match &ctx.config().window {
        Some(window) if !blocked => match gate::gate(window, now) {
            gate::Gate::Open(occ) => Some(gate::Admitted {
                occ,
                estimate: estimate.run,
                rollback: gate::worst_case_rollback(&estimate),
            }),
            _ => None,
        },
        _ => None,
    };
    for g in guards.iter().filter(|g| g.verdict != guards::Verdict::Pass) {
        let subject = g
            .subject
            .as_deref()
            .map_or(String::new(), |s| format!("{s}: "));
        // A warning is already shown as one ("warning: …"); only a block says its verdict.
        let verdict = match g.verdict {
            guards::Verdict::Warn => String::new(),
            v => format!("{} ", v.label()),
        };
        ctx.report(&RunEvent::Warning {
            message: format!("{verdict}{subject}{}", g.detail),
        });
    }
    if log.record(Record::Guards { guards }).is_err() {
        return blocked_without_window;
    }
    Guarded { blocked, window }
}
