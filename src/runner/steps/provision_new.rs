//! The provision-new step of a live swap, and its compensation, destroy-new: a second add-on on
//! the target plan, attached under a temporary name while the app keeps running on the old one.

use std::time::Duration;

use super::live::{self, temp_attachment};
use super::{StepCtx, Target};
use crate::heroku::models::AddOnState;
use crate::runner::ledger::{Ledger, NewAddon};
use crate::runner::record::Record;
use crate::runner::{RunEvent, StepError};
use crate::verify;

/// Every new add-on provisioned and answering.
pub(in crate::runner) struct Provisioned {
    pub note: String,
}

/// Creates each target's new add-on (`POST /apps/{app}/addons` with a temporary attachment
/// name) and waits until the platform says provisioned, the Data API is not waiting, and its
/// Redis answers as a primary through the temporary config var.
///
/// # Guarantees
/// At most one new add-on per target, across retries and crashes: an add-on already recorded
/// is reused, and before creating one the temporary attachment name (derived from the run id)
/// is looked up, so a create whose record was lost to a crash is found, not repeated.
pub(in crate::runner) async fn run(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
    timeout: Duration,
) -> Result<Provisioned, StepError> {
    let mut pacer = ctx.pacer(timeout, true);
    let mut notes = Vec::new();
    for t in ctx.targets() {
        let new = if let Some(new) = ctx.known.new_addons.get(&t.name) {
            new.clone()
        } else {
            let new = create(ctx, &t).await?;
            log.record(Record::NewAddon {
                addon: t.name.clone(),
                new_addon: new.name.clone(),
                new_id: new.id.clone(),
                attachment: new.attachment.clone(),
            })?;
            new
        };
        loop {
            match ready(ctx, &t, &new).await? {
                None => break,
                Some(status) => {
                    ctx.report(&RunEvent::Waiting {
                        subject: format!("{} ({} on {})", new.name, t.label, t.to),
                        status,
                    });
                    if !ctx.pace(&mut pacer).await? {
                        return Err(StepError::failed(format!(
                            "the new add-on {} of {} was not ready within {}",
                            new.name,
                            t.label,
                            super::duration_text(timeout)
                        )));
                    }
                }
            }
        }
        notes.push(format!("{}: {} on {}", t.label, new.name, t.to));
    }
    Ok(Provisioned {
        note: notes.join("; "),
    })
}

async fn create(ctx: &StepCtx<'_>, t: &Target) -> Result<NewAddon, StepError> {
    let attachment = temp_attachment(ctx.run_id, &t.label);
    if let Some(existing) = ctx.client().attached_as(ctx.app(), &attachment).await {
        return Ok(NewAddon {
            name: existing.addon.name,
            id: existing.addon.id,
            attachment,
        });
    }
    let plan = format!("heroku-redis:{}", t.to);
    let created = ctx
        .client()
        .create_addon(ctx.app(), &plan, &attachment)
        .await?;
    Ok(NewAddon {
        name: created.value.name,
        id: created.value.id,
        attachment,
    })
}

/// `None` when the new add-on is ready, else what it waits for.
async fn ready(ctx: &StepCtx<'_>, t: &Target, new: &NewAddon) -> Result<Option<String>, StepError> {
    let addon = ctx.client().addon(ctx.app(), &new.id).await?;
    match addon.state {
        AddOnState::Provisioned => {}
        AddOnState::Provisioning => return Ok(Some("provisioning".into())),
        other => {
            return Err(StepError::failed(format!(
                "the new add-on {} of {} is {}: the platform gave up provisioning it",
                new.name,
                t.label,
                other.as_str()
            )));
        }
    }
    if let Ok(wait) = ctx.client().redis_wait(&new.name).await
        && wait.waiting
    {
        return Ok(Some(super::wait_text(&wait)));
    }
    let Ok(url) = live::new_url(ctx, new).await else {
        return Ok(Some(format!("no {}_URL yet", new.attachment)));
    };
    match verify::server_info(&url, &live::options(ctx, &t.to, "provision")).await {
        Ok(info) if info.is_primary() => Ok(None),
        Ok(_) => Ok(Some("its Redis is not a primary yet".into())),
        Err(e) => Ok(Some(format!(
            "its Redis does not answer yet ({})",
            crate::runner::error_chain(&e)
        ))),
    }
}

/// Destroys each target's new add-on, unless something other than its temporary attachment
/// points at it: then the app (or another) may already use it, and destroying it would take
/// their data; the compensation fails and the run needs a person.
///
/// # Guarantees
/// Idempotent: an add-on already gone counts as destroyed, and one the journal does not name
/// is looked up by its temporary attachment name (a crash right after the create).
pub(in crate::runner) async fn destroy(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
) -> Result<(), StepError> {
    for t in ctx.targets() {
        let attachment = temp_attachment(ctx.run_id, &t.label);
        let (id, name) = match ctx.known.new_addons.get(&t.name) {
            Some(new) => (new.id.clone(), new.name.clone()),
            None => match ctx.client().attached_as(ctx.app(), &attachment).await {
                Some(found) => (found.addon.id, found.addon.name),
                None => continue,
            },
        };
        let users = match ctx.client().addon_attachments(&id).await {
            Ok(list) => list,
            Err(e) if e.status() == Some(404) => continue,
            Err(e) => return Err(e.into()),
        };
        if let Some(used) = users
            .iter()
            .find(|a| !a.name.eq_ignore_ascii_case(&attachment))
        {
            return Err(StepError::failed(format!(
                "the new add-on {name} is attached to {} as {}, so it may be in use: it was not \
                 destroyed; move that attachment back to {} and destroy {name} by hand \
                 (heroku addons:destroy {name} -a {})",
                used.app.name,
                used.name,
                t.name,
                ctx.app()
            )));
        }
        ctx.client().destroy_addon(ctx.app(), &id).await?;
        log.record(Record::Effect {
            what: format!("destroyed the new add-on {name} of {}", t.label),
            request_id: None,
        })?;
    }
    Ok(())
}
