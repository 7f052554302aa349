//! The capture step: the facts every later step and every compensation works from (formation,
//! maintenance flag, add-ons, Redis INFO), journaled before anything is written.

use super::StepCtx;
use crate::runner::ledger::Ledger;
use crate::runner::record::Record;
use crate::runner::{StepError, error_chain, unfinished_runs};

/// What the capture step reports back; the capture itself is journaled, so the driver knows it
/// from the journal (as a resumed run does).
pub(in crate::runner) struct Captured {
    /// The formation as `type=quantity:size`, for the step's line.
    pub formation: String,
}

/// Reads the platform and journals what it found.
///
/// # Guarantees
/// Read-only on the platform; repeating it journals a fresh capture, which a resume then uses.
pub(in crate::runner) async fn run(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
) -> Result<Captured, StepError> {
    let config = ctx.config();
    let unfinished: Vec<String> = unfinished_runs(&config.state, ctx.app())
        .map_err(|e| StepError::failed(error_chain(&e)))?
        .into_iter()
        .filter(|id| id != ctx.run_id)
        .collect();
    let capture = crate::runner::capture::capture(
        ctx.client(),
        ctx.request,
        config.state.root(),
        unfinished,
        jiff::Timestamp::now(),
    )
    .await?;
    let formation = capture
        .formation
        .iter()
        .map(|p| format!("{}={}:{}", p.process_type, p.quantity, p.size))
        .collect::<Vec<_>>()
        .join(" ");
    log.record(Record::Captured { capture })?;
    Ok(Captured { formation })
}
