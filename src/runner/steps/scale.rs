//! The scale step: the writer process types to 0 in one batch call, which starts the downtime.

use super::StepCtx;
use super::formation::{self, Writers};
use crate::runner::ledger::Ledger;
use crate::runner::record::Record;
use crate::runner::{RunEvent, StepError};

/// What the scale step sent, for its line.
pub(in crate::runner) struct Scaled {
    /// `type=0` per writer type.
    pub formation: String,
}

/// Scales the writers to 0 and journals when the downtime began.
///
/// # Guarantees
/// Absolute quantities: repeating it sends the same update; the downtime starts once.
pub(in crate::runner) async fn run(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
) -> Result<Scaled, StepError> {
    let updates = formation::updates(
        ctx.capture()?,
        &ctx.request.params.writers,
        Writers::Stopped,
    );
    let formation = formation::apply(ctx, log, &updates, "scale").await?;
    if ctx.known.downtime_since.is_none() {
        log.record(Record::Downtime { started: true })?;
        ctx.report(&RunEvent::Downtime { started: true });
    }
    Ok(Scaled { formation })
}
