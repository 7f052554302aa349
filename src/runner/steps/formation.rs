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

#[cfg(test)]
mod tests {
    use super::{Writers, updates};
    use crate::plan::facts::{Capture, ProcessFacts};

    fn capture() -> Capture {
        let process = |t: &str, quantity: u32, size: &str| ProcessFacts {
            process_type: t.to_owned(),
            quantity,
            size: size.to_owned(),
        };
        Capture {
            app: "app".into(),
            app_id: "id".into(),
            maintenance: false,
            formation: vec![
                process("web", 3, "standard-2x"),
                process("worker", 2, "standard-1x"),
                process("clock", 1, "basic"),
            ],
            running: Vec::new(),
            steady: Vec::new(),
            addons: Vec::new(),
            local_free_bytes: None,
            unfinished_runs: Vec::new(),
            captured_at: "2026-01-01T00:00:00Z".into(),
            preboot: None,
            plan_prices: std::collections::BTreeMap::new(),
        }
    }

    fn summary(updates: &[crate::heroku::models::FormationUpdate]) -> Vec<String> {
        updates
            .iter()
            .map(|u| format!("{}={:?}:{:?}", u.process_type, u.quantity, u.size))
            .collect()
    }

    /// Stopping and restoring touch the same writer types, in `--writers` order, and skip a
    /// type the app does not run: the restore can only bring back what the scale stopped.
    #[test]
    fn stop_and_restore_name_the_same_writers() {
        let writers = ["worker".to_owned(), "missing".to_owned(), "web".to_owned()];
        let stopped = updates(&capture(), &writers, Writers::Stopped);
        let restored = updates(&capture(), &writers, Writers::Captured);
        assert_eq!(
            summary(&stopped),
            ["worker=Some(0):None", "web=Some(0):None"]
        );
        assert_eq!(
            summary(&restored),
            [
                "worker=Some(2):Some(\"standard-1x\")",
                "web=Some(3):Some(\"standard-2x\")"
            ]
        );
    }
}
