//! The restore-formation step (the writers back to exactly the captured formation, the
//! maintenance flag back) and the formation compensation, which is its first half.

use super::formation::{self, Writers};
use super::{StepCtx, maintenance};
use crate::runner::ledger::Ledger;
use crate::runner::record::Record;
use crate::runner::{RunEvent, StepError};

/// What the restore sent, for its line.
pub(in crate::runner) struct Restored {
    /// `type=quantity:size` per writer type.
    pub formation: String,
}

/// Restores the formation, then the maintenance flag.
///
/// # Guarantees
/// Absolute values and a re-read flag: repeatable.
pub(in crate::runner) async fn run(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
) -> Result<Restored, StepError> {
    let formation = writers(ctx, log).await?;
    maintenance::restore(ctx, log).await?;
    Ok(Restored { formation })
}

/// Scales the writers back to exactly the captured quantities and sizes and journals the end
/// of the downtime (the restore-formation compensation).
///
/// # Guarantees
/// Absolute, so it is safe to repeat; the downtime ends once.
pub(in crate::runner) async fn writers(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
) -> Result<String, StepError> {
    let updates = formation::updates(
        ctx.capture()?,
        &ctx.request.params.writers,
        Writers::Captured,
    );
    let what = formation::apply(ctx, log, &updates, "restore formation").await?;
    if ctx.known.downtime_since.is_some() {
        log.record(Record::Downtime { started: false })?;
        ctx.report(&RunEvent::Downtime { started: false });
    }
    Ok(what)
}
