//! The settle-plan compensation of the change-plan step: a plan change cannot be undone in
//! place, so a rollback past the point of no return waits until each add-on settles wherever
//! the platform puts it, then verifies and repairs its data there (unless it never left the
//! server drained before the change, whose data is then newer than the snapshot).

use std::time::Duration;

use super::{StepCtx, verify, wait_provisioned, wait_text};
use crate::engine::Action;
use crate::heroku::models::AddOnState;
use crate::plan::facts::DataPolicy;
use crate::plans;
use crate::runner::evidence::Verdict;
use crate::runner::ledger::{Learned, Ledger};
use crate::runner::{RunEvent, StepError};

/// Settles every add-on, then checks its data against the snapshot and repairs it. The plan
/// each one settled on goes to the ledger, so a rollback that kept a new plan says so.
///
/// # Guarantees
/// Never sends a plan change: it waits, verifies and repairs, all of which converge when repeated.
pub(in crate::runner) async fn run(ctx: &StepCtx<'_>, log: &mut Ledger) -> Result<(), StepError> {
    let timeout = ctx
        .request
        .playbook
        .step(Action::WaitProvisioned)
        .map_or(Duration::from_secs(2700), |s| s.timeout);
    let mut pacer = ctx.pacer(timeout, false);
    for t in ctx.targets() {
        loop {
            let addon = ctx.client().addon(ctx.app(), &t.name).await?;
            let wait = ctx.client().redis_wait(&t.name).await?;
            // On the target plan, "settled" needs the same proof as the wait: the
            // platform may say provisioned while the old server still serves.
            // A server that cannot be read at all is left to verify, which then fails
            // and keeps the writers stopped; only a server known to be the old one (or
            // a platform and Data API that disagree) holds the settle up.
            let on_target = plans::bare_name(&addon.plan.name) == t.to;
            let proven = !on_target
                || !matches!(
                    wait_provisioned::judge(ctx, &t, &addon, &wait).await,
                    Ok(Verdict::NotYet { .. })
                );
            if !wait.waiting && addon.state != AddOnState::Provisioning && proven {
                let plan = plans::bare_name(&addon.plan.name).to_owned();
                log.learn(Learned::Settled {
                    addon: t.name.clone(),
                    plan: plan.clone(),
                });
                ctx.report(&RunEvent::Warning {
                    message: format!("{} settled on {plan} ({})", t.label, addon.state),
                });
                break;
            }
            ctx.report(&RunEvent::Waiting {
                subject: t.label.clone(),
                status: wait_text(&wait),
            });
            if !ctx.pace(&mut pacer).await? {
                return Err(StepError::Failed {
                    message: format!(
                        "{} is still provisioning after {}: wait with `heroku redis:wait {} -a {}`, then check its data",
                        t.label,
                        crate::playbook::duration::format(timeout),
                        t.name,
                        ctx.app()
                    ),
                    data_unsafe: t.policy == DataPolicy::Critical,
                    transient: None,
                });
            }
        }
        if never_moved(ctx, &t).await {
            ctx.report(&RunEvent::Warning {
                message: format!(
                    "{}: still on the server drained before the plan change; its data never \
                     moved, so it is kept as it is (not repaired from the older snapshot)",
                    t.label
                ),
            });
        } else if ctx.known.snapshots.contains_key(&t.name) {
            verify::target(ctx, log, &t).await?;
        }
    }
    Ok(())
}

/// Whether the add-on's URL still leads to the server drained before the plan change (the
/// same `run_id`): the change never happened (the check before the PATCH stopped the run, or
/// the platform refused it), so that server's data is the truth and newer than the snapshot.
/// A repair from the snapshot there would delete whatever was written since, the very write
/// the check before the PATCH stopped the run for. Anything else (no identity to compare, an
/// unreadable server, another server) verifies and repairs as before.
async fn never_moved(ctx: &StepCtx<'_>, t: &super::Target) -> bool {
    let Some(drained) = ctx.known.old_servers.get(&t.name) else {
        return false;
    };
    if drained.run_id.is_empty() {
        return false;
    }
    let Ok(url) = ctx.current_url(t).await else {
        return false;
    };
    let opts = crate::runner::capture::verify_options(&ctx.config().verify, &t.from, "check");
    crate::verify::server_info(&url, &opts)
        .await
        .is_ok_and(|info| info.run_id == drained.run_id)
}
