//! The one formation-update builder, shared by the scale step (writers to 0) and the restore
//! (writers back to exactly what was captured), and the one call that sends and journals it.

use super::StepCtx;
use crate::heroku::models::FormationUpdate;
use crate::plan::facts::Capture;
use crate::runner::StepError;
use crate::runner::ledger::Ledger;
use crate::runner::record::Record;

/// Where the writers go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Writers {
    /// To 0 dynos (size left as it is).
    Stopped,
    /// Back to exactly the captured quantity and size.
    Captured,
}

/// One update per writer process type the capture found, in the order `--writers` names them;
/// a writer type the app does not run is left out (there is nothing to stop or restore).
pub(super) fn updates(capture: &Capture, writers: &[String], to: Writers) -> Vec<FormationUpdate> {
    writers
        .iter()
        .filter_map(|w| capture.formation.iter().find(|p| &p.process_type == w))
        .map(|p| FormationUpdate {
            process_type: p.process_type.clone(),
            quantity: Some(match to {
                Writers::Stopped => 0,
                Writers::Captured => p.quantity,
            }),
            size: match to {
                Writers::Stopped => None,
                Writers::Captured => Some(p.size.clone()),
            },
        })
        .collect()
}

/// Sends one batch formation update (absolute, so repeatable) and journals it with its
/// request id. Returns the `type=quantity[:size]` summary.
pub(super) async fn apply(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
    updates: &[FormationUpdate],
    label: &str,
) -> Result<String, StepError> {
    let what = updates
        .iter()
        .map(|u| {
            let size = u.size.as_deref().map_or(String::new(), |s| format!(":{s}"));
            format!("{}={}{size}", u.process_type, u.quantity.unwrap_or(0))
        })
        .collect::<Vec<_>>()
        .join(" ");
    let w = ctx.client().update_formation(ctx.app(), updates).await?;
    log.record(Record::Effect {
        what: format!("{label} {what}"),
        request_id: Some(w.request_id),
    })?;
    Ok(what)
}
