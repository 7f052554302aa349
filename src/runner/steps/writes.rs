//! Writes since the drain: the snapshot and the plan change check that nothing wrote to Redis
//! after the writers stopped, so a writer slower than the drain's quiet period is still caught
//! before the point of no return.

use super::StepCtx;
use crate::heroku::models::AddOnState;
use crate::runner::StepError;
use crate::runner::capture::verify_options;
use crate::verify::{self, CommandClasses, RedisUrl, WriteVerdict};

/// Fails when a server saw writes since the drain ended: something still writes, and the
/// snapshot, the plan change or the live swap's move would lose it. Before the point of no
/// return, so the run rolls back cleanly onto the server that holds the write. Also fails when
/// nothing can prove the server quiet (a save reset its write counter and it hides the
/// per-command counts, or its statistics were reset): failing open there loses the write that
/// a background save hid (see [`verify::writemark`]).
///
/// The mark is journaled with the drained server's identity, so a resumed run checks as the
/// first process would have. Skipped where there is nothing to compare: an add-on without a
/// mark (a journal of an older version), or one whose URL now leads to another server than the
/// drained one (its `run_id`) because the plan change or the move has begun: from there,
/// verify and the move's proof judge the data, not these counts. Another server with nothing
/// of the run begun (a restart, a failover) restarted its counts too: that fails closed.
pub(super) async fn check_none_since_drain(ctx: &StepCtx<'_>, when: &str) -> Result<(), StepError> {
    for t in ctx.targets() {
        let Some(mark) = ctx.known.write_marks.get(&t.name) else {
            continue;
        };
        // Per server: one may refuse COMMAND where another answers.
        let mut classes = CommandClasses::default();
        let url = drained_url(ctx, &t).await?;
        let opts = verify_options(&ctx.config().verify, &t.from, "check");
        let (info, now) = verify::writemark::read(&url, &opts, &mut classes).await?;
        let drained = ctx.known.old_servers.get(&t.name);
        if let Some(d) = drained.filter(|d| !d.run_id.is_empty() && d.run_id != info.run_id) {
            if moved_on(ctx, &t, &info.run_id).await? {
                continue;
            }
            // Same URL, another process, and nothing of the run put it there: the drained
            // server restarted or failed over, and every count started again with it.
            return Err(StepError::failed(format!(
                "upshift cannot prove that nothing wrote to {} {when}: the server behind it is \
                 no longer the one drained (run_id {} -> {}) although no plan change or move \
                 has begun (a restart or a failover), and its write counts started again; \
                 make sure every other client of it is stopped, then run again",
                t.label, d.run_id, info.run_id
            )));
        }
        match verify::writemark::judge(mark, &now, |name| classes.is_write(name)) {
            WriteVerdict::Quiet => {}
            WriteVerdict::Written(evidence) => {
                return Err(StepError::failed(format!(
                    "{} was written to {when} although the writers are stopped ({evidence}): \
                     something else writes to it; find it with `CLIENT LIST`, add its process \
                     type to --writers or stop it, then run again",
                    t.label
                )));
            }
            WriteVerdict::Unprovable(why) => {
                return Err(StepError::failed(format!(
                    "upshift cannot prove that nothing wrote to {} {when}: {why}; make sure \
                     every other client of it is stopped, then run again (the drain takes a \
                     new mark)",
                    t.label
                )));
            }
        }
    }
    Ok(())
}

/// Whether a server other than the drained one behind the URL is the run's own doing: the
/// live swap's new server (the one the catch-up proved) once the move has begun, or, in place,
/// the plan change under way or done (a resumed `change-plan` after a crash that followed the
/// PATCH). The platform is asked, not the journal: a crash between the PATCH and its record
/// leaves the journal behind.
async fn moved_on(ctx: &StepCtx<'_>, t: &super::Target, run_id: &str) -> Result<bool, StepError> {
    if ctx
        .known
        .new_servers
        .get(&t.name)
        .is_some_and(|(new, _)| new.run_id == run_id)
    {
        return Ok(true);
    }
    let addon = ctx.client().addon(ctx.app(), &t.name).await?;
    let wait = ctx.client().redis_wait(&t.name).await?;
    Ok(change_begun(
        crate::plans::bare_name(&addon.plan.name),
        &t.to,
        &addon.state,
        wait.waiting,
    ))
}

/// Whether the platform shows a plan change of an add-on begun or done: on the target plan,
/// or not plainly provisioned (Heroku says `provisioning` during a change, some accounts
/// while still naming the old plan), or the Data API still waiting. Pure.
fn change_begun(plan: &str, to: &str, state: &AddOnState, data_waiting: bool) -> bool {
    plan == to || *state != AddOnState::Provisioned || data_waiting
}

/// Where the drained server answers: the target's config var, or, while a live swap's move
/// has detached that name and not yet re-attached it (Heroku refuses a taken name under some
/// accounts, so the move detaches first), the run's parking attachment of the old add-on.
/// Without the fallback a retry or a resume in that gap failed on the missing var and rolled
/// a finishable move back.
async fn drained_url(ctx: &StepCtx<'_>, t: &super::Target) -> Result<RedisUrl, StepError> {
    match ctx.current_url(t).await {
        Ok(url) => Ok(url),
        Err(first) => {
            let park = format!("{}_URL", super::live::park_attachment(ctx.run_id, &t.label));
            super::live::url_of(ctx, ctx.app(), &park)
                .await
                .map_err(|_| first)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::change_begun;
    use crate::heroku::models::AddOnState;

    #[test]
    fn only_an_add_on_plainly_on_its_old_plan_has_no_change_begun() {
        let p = AddOnState::Provisioned;
        assert!(!change_begun("premium-0", "premium-1", &p, false));
        // Done, under way (either plan named), or the Data API not caught up yet.
        assert!(change_begun("premium-1", "premium-1", &p, false));
        assert!(change_begun(
            "premium-0",
            "premium-1",
            &AddOnState::Provisioning,
            false
        ));
        assert!(change_begun(
            "premium-1",
            "premium-1",
            &AddOnState::Provisioning,
            false
        ));
        assert!(change_begun("premium-0", "premium-1", &p, true));
    }
}
