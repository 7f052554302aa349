//! The change-plan step: the point of no return. One PATCH per add-on, concurrently, each
//! journaled with its request id as soon as the platform accepted it.

use futures::future::join_all;

use super::StepCtx;
use super::writes::check_none_since_drain;
use crate::plans;
use crate::runner::StepError;
use crate::runner::ledger::Ledger;
use crate::runner::record::Record;

/// What the plan changes did, for the step's line.
pub(in crate::runner) struct PlanChanged {
    /// `label -> plan` or `label already on plan` per add-on.
    pub note: String,
}

/// Checks once more that nothing wrote since the drain, then requests every plan change.
///
/// # Guarantees
/// Re-reads each add-on's plan first and skips one already on its target, so repeating the
/// step never asks for a second change.
pub(in crate::runner) async fn run(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
) -> Result<PlanChanged, StepError> {
    check_none_since_drain(ctx, "after the snapshot").await?;
    let client = ctx.client();
    let app = ctx.app();
    let jobs = ctx.targets().into_iter().map(|t| async move {
        let current = client.addon(app, &t.name).await?;
        if plans::bare_name(&current.plan.name) == t.to {
            return Ok::<_, StepError>((t, None));
        }
        let full = format!("{}:{}", plans::HEROKU_REDIS, t.to);
        let w = client.change_addon_plan(app, &t.name, &full).await?;
        Ok((t, Some(w.request_id)))
    });
    let mut notes = Vec::new();
    let mut first_error = None;
    let results = join_all(jobs).await;
    // Test builds only: die after the platform accepted the PATCH and before the journal
    // says so, the one window a crash leaves the journal behind the platform.
    #[cfg(feature = "failpoints")]
    if std::env::var_os("UPSHIFT_FAILPOINT_AFTER_PATCH").is_some()
        && results.iter().any(|r| matches!(r, Ok((_, Some(_)))))
    {
        std::process::abort();
    }
    for result in results {
        match result {
            Ok((t, Some(request_id))) => {
                log.record(Record::Effect {
                    what: format!("plan change {} {} -> {}", t.label, t.from, t.to),
                    request_id: Some(request_id),
                })?;
                notes.push(format!("{} -> {}", t.label, t.to));
            }
            Ok((t, None)) => notes.push(format!("{} already on {}", t.label, t.to)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(PlanChanged {
            note: notes.join(", "),
        }),
    }
}
