//! The maintenance step (the app's maintenance mode on) and its compensation (the flag back
//! to its captured value).

use super::StepCtx;
use crate::runner::StepError;
use crate::runner::ledger::Ledger;
use crate::runner::record::Record;

/// What the maintenance step did, for its line.
pub(in crate::runner) struct Maintained {
    pub note: &'static str,
}

/// Turns maintenance mode on when the playbook asks for it.
///
/// # Guarantees
/// Reads the flag first: a flag already on is left alone, so repeating it writes nothing.
pub(in crate::runner) async fn run(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
) -> Result<Maintained, StepError> {
    if !ctx.request.params.maintenance {
        return Ok(Maintained {
            note: "not requested",
        });
    }
    let app = ctx.client().app(ctx.app()).await?;
    if app.maintenance {
        return Ok(Maintained { note: "already on" });
    }
    let w = ctx.client().set_maintenance(ctx.app(), true).await?;
    log.record(Record::Effect {
        what: "maintenance on".into(),
        request_id: Some(w.request_id),
    })?;
    Ok(Maintained {
        note: "maintenance on",
    })
}

/// Puts the maintenance flag back to its captured value (the compensation, and the second
/// half of the restore-formation step).
///
/// # Guarantees
/// Reads the flag first and writes the captured value only when it differs: repeatable.
pub(in crate::runner) async fn restore(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
) -> Result<(), StepError> {
    let want = ctx.capture()?.maintenance;
    let app = ctx.client().app(ctx.app()).await?;
    if app.maintenance != want {
        let w = ctx.client().set_maintenance(ctx.app(), want).await?;
        log.record(Record::Effect {
            what: format!("maintenance {}", if want { "on" } else { "off" }),
            request_id: Some(w.request_id),
        })?;
    }
    Ok(())
}
