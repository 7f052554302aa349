//! The retire-old step of a live swap, after health: the old add-on's notification setting put
//! back, then the old add-on destroyed (`--retire-old now`) or kept for a grace period so that a
//! person can still go back to it.

use super::StepCtx;
use crate::playbook::RetireOld;
use crate::runner::ledger::Ledger;
use crate::runner::record::Record;
use crate::runner::{RunEvent, StepError, error_chain};

/// What happened to the old add-ons.
pub(in crate::runner) struct Retired {
    pub note: String,
}

/// Never fails the run: by now the app runs on the new add-on with its data proven, so a
/// failure here is reported as a warning with the command to finish by hand.
///
/// # Guarantees
/// Idempotent; an old add-on is destroyed only when nothing but its parking attachment points
/// at it any more.
pub(in crate::runner) async fn run(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
) -> Result<Retired, StepError> {
    let mut notes = Vec::new();
    for t in ctx.targets() {
        match super::copy_live::restore_notifications_of(ctx, log, &t).await {
            Ok(()) => {}
            Err(StepError::Failed { message, .. }) => {
                let before = ctx
                    .known
                    .notifications_before
                    .get(&t.name)
                    .map_or("", String::as_str);
                warn(
                    ctx,
                    format!(
                        "could not put the keyspace notifications of the old add-on {} back to \
                         \"{before}\" ({message}): heroku redis:keyspace-notifications {} -c \
                         \"{before}\" -a {}",
                        t.name,
                        t.name,
                        ctx.app()
                    ),
                );
            }
            Err(other) => return Err(other),
        }
        let destroy = format!(
            "heroku addons:destroy {} -a {} --confirm {}",
            t.name,
            ctx.app(),
            ctx.app()
        );
        match ctx.request.params.retire_old {
            RetireOld::Now => match retire(ctx, &t.name).await {
                Ok(()) => {
                    log.record(Record::Effect {
                        what: format!("the old add-on {} of {} destroyed", t.name, t.label),
                        request_id: None,
                    })?;
                    notes.push(format!("{} destroyed", t.name));
                }
                Err(why) => {
                    warn(
                        ctx,
                        format!(
                            "the old add-on {} was not destroyed: {why}; {destroy}",
                            t.name
                        ),
                    );
                    notes.push(format!("{} kept ({why})", t.name));
                }
            },
            RetireOld::Never => {
                log.record(Record::Retained {
                    addon: t.name.clone(),
                    until: None,
                })?;
                notes.push(format!("{} kept; destroy it with: {destroy}", t.name));
            }
            RetireOld::After(grace) => {
                let until = jiff::Timestamp::now()
                    .checked_add(jiff::SignedDuration::try_from(grace).unwrap_or_default())
                    .map(|t| t.to_string())
                    .ok();
                log.record(Record::Retained {
                    addon: t.name.clone(),
                    until: until.clone(),
                })?;
                notes.push(format!(
                    "{} kept until {}; to go back, run a live swap to it or attach it again; \
                     then: {destroy}",
                    t.name,
                    until.as_deref().unwrap_or("later")
                ));
            }
        }
    }
    Ok(Retired {
        note: notes.join("; "),
    })
}

/// Destroys an old add-on nothing points at any more.
async fn retire(ctx: &StepCtx<'_>, addon: &str) -> Result<(), String> {
    let old = ctx
        .known
        .capture
        .as_ref()
        .ok_or_else(|| "no captured facts".to_owned())?
        .found()
        .find(|a| a.name == addon)
        .map(|a| a.id.clone())
        .ok_or_else(|| "it is not in the capture".to_owned())?;
    let users = ctx
        .client()
        .addon_attachments(&old)
        .await
        .map_err(|e| error_chain(&e))?;
    if let Some(a) = users.iter().find(|a| !super::live::ours(&a.name)) {
        return Err(format!("{} still attaches it as {}", a.app.name, a.name));
    }
    ctx.client()
        .destroy_addon(ctx.app(), &old)
        .await
        .map_err(|e| error_chain(&e))
}

fn warn(ctx: &StepCtx<'_>, message: String) {
    ctx.report(&RunEvent::Warning { message });
}
