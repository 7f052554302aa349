//! The move-attachments step of a live swap, its point of no return, and its compensation,
//! move-back: every attachment of the old add-on (to this app and to others) is pointed at the
//! new add-on under the same name, so the app's config vars (`ENKETO_REDIS_MAIN_URL`) lead to
//! the new server; the temporary attachment goes.

use super::{StepCtx, Target, live, writes};
use crate::heroku::HerokuError;
use crate::plan::facts::AttachmentRef;
use crate::runner::StepError;
use crate::runner::ledger::Ledger;
use crate::runner::record::Record;

/// Every attachment moved and proven.
pub(in crate::runner) struct Moved {
    pub note: String,
}

/// Moves every attachment the capture listed to the new add-on, removes the temporary one, and
/// proves each moved name: its config var leads to the server the catch-up proved equal (its
/// `run_id`). That proof is what lets the writers come back. First, as the catch-up did, it
/// checks the old server's write evidence against the mark journaled at the drain: a resumed
/// run finds a write that landed after the catch-up and moves nothing.
///
/// # Guarantees
/// Idempotent: a name already on the new add-on is left; each attach re-derives after a lost
/// answer. Heroku replaces a name in one release when asked with `confirm`; where it refuses a
/// taken name, the old attachment is detached first (a moment with no config var, while the
/// writers are stopped).
pub(in crate::runner) async fn run(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
) -> Result<Moved, StepError> {
    // The catch-up checked too, but a crash between it and this step leaves time for a late
    // write that no copy would carry: the app must not be moved off a server that has one.
    writes::check_none_since_drain(ctx, "since the catch-up").await?;
    let mut notes = Vec::new();
    for t in ctx.targets() {
        let new = live::new_addon(ctx, &t)?.clone();
        let (identity, _) = ctx.known.new_servers.get(&t.name).cloned().ok_or_else(|| {
            StepError::failed(format!(
                "this run's journal has no catch-up proof for {}: nothing is moved without one",
                t.label
            ))
        })?;
        let names = attachments(ctx, &t)?;
        let old_id = old_id(ctx, &t)?;
        // Parked first: the old add-on keeps an attachment through the move, so no detach
        // below is ever of an add-on's last attachment, and it stays on the app afterwards.
        ensure_attached(
            ctx,
            log,
            &old_id,
            &t.name,
            &live::park_attachment(ctx.run_id, &t.label),
        )
        .await?;
        for a in &names {
            point(ctx, log, a, &new.id, &new.name, &t.label).await?;
        }
        if let Some(temp) = ctx.client().attached_as(ctx.app(), &new.attachment).await
            && temp.addon.id == new.id
        {
            ctx.client().detach(&temp.id).await?;
            log.record(Record::Effect {
                what: format!("temporary attachment {} removed", new.attachment),
                request_id: None,
            })?;
        }
        for a in &names {
            // The identity, not the key count: keys with a TTL keep expiring on both servers
            // while the writers are stopped, and nothing else writes (checked at catch-up).
            live::leads_to(ctx, &a.app, &a.name, &identity.run_id, &t.to).await?;
        }
        notes.push(format!(
            "{}: {} now on {} ({})",
            t.label,
            names
                .iter()
                .map(|a| format!("{}/{}", a.app, a.name))
                .collect::<Vec<_>>()
                .join(", "),
            new.name,
            t.to
        ));
    }
    Ok(Moved {
        note: notes.join("; "),
    })
}

/// Every attachment back on the old add-on, whose data nobody wrote since the drain, proven by
/// the server behind each name (the old one's identity journaled at the drain).
///
/// # Guarantees
/// Refused (the data is then unsafe to guess about) while a writer runs: it may have written to
/// the new add-on, and moving back would lose that. Idempotent otherwise.
pub(in crate::runner) async fn move_back(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
) -> Result<(), StepError> {
    writers_stopped(ctx).await?;
    for t in ctx.targets() {
        let names = attachments(ctx, &t)?;
        let old_id = old_id(ctx, &t)?;
        // The new add-on keeps its temporary name through the move back, for the same reason
        // the old one was parked.
        if let Some(new) = ctx.known.new_addons.get(&t.name) {
            ensure_attached(ctx, log, &new.id, &new.name, &new.attachment).await?;
        }
        for a in &names {
            point(ctx, log, a, &old_id, &t.name, &t.label).await?;
        }
        if let Some(old) = ctx.known.old_servers.get(&t.name) {
            for a in &names {
                live::leads_to(ctx, &a.app, &a.name, &old.run_id, &t.from).await?;
            }
        }
        // The app is back on the old add-on: a parking name left over is a config var too
        // many, not a reason to keep the writers stopped.
        let park = live::park_attachment(ctx.run_id, &t.label);
        if let Some(parked) = ctx.client().attached_as(ctx.app(), &park).await
            && parked.addon.id == old_id
        {
            match ctx.client().detach(&parked.id).await {
                Ok(()) => log.record(Record::Effect {
                    what: format!("parking attachment {park} removed"),
                    request_id: None,
                })?,
                Err(e) => ctx.report(&crate::runner::RunEvent::Warning {
                    message: format!(
                        "the parking attachment {park} of {} was not removed ({}): heroku \
                         addons:detach {park} -a {}",
                        t.name,
                        crate::runner::error_chain(&e),
                        ctx.app()
                    ),
                }),
            }
        }
    }
    Ok(())
}

/// The old add-on's id, from the capture.
fn old_id(ctx: &StepCtx<'_>, t: &Target) -> Result<String, StepError> {
    ctx.capture()?
        .found()
        .find(|a| a.name == t.name)
        .map(|a| a.id.clone())
        .ok_or_else(|| StepError::failed(format!("{} is not in the capture", t.label)))
}

/// Attaches add-on `id` to the app as `name` unless it already is.
async fn ensure_attached(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
    id: &str,
    addon: &str,
    name: &str,
) -> Result<(), StepError> {
    if ctx
        .client()
        .attached_as(ctx.app(), name)
        .await
        .is_some_and(|a| a.addon.id == id)
    {
        return Ok(());
    }
    let written = ctx.client().attach_addon(id, ctx.app(), name, None).await?;
    log.record(Record::Effect {
        what: format!("{addon} attached as {name}"),
        request_id: Some(written.request_id),
    })?;
    Ok(())
}

/// The attachments of a target as the capture listed them.
fn attachments(ctx: &StepCtx<'_>, t: &Target) -> Result<Vec<AttachmentRef>, StepError> {
    ctx.capture()?
        .found()
        .find(|a| a.name == t.name)
        .and_then(|a| a.attachments.clone())
        .filter(|list| !list.is_empty())
        .ok_or_else(|| {
            StepError::failed(format!(
                "the capture could not list the attachments of {}: nothing is moved",
                t.label
            ))
        })
}

/// Points attachment `a` at add-on `to_id`: one attach with `confirm` (Heroku replaces the
/// name in one release), or, where a taken name is refused, detach then attach.
async fn point(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
    a: &AttachmentRef,
    to_id: &str,
    to_name: &str,
    label: &str,
) -> Result<(), StepError> {
    let current = ctx.client().attached_as(&a.app, &a.name).await;
    if current.as_ref().is_some_and(|c| c.addon.id == to_id) {
        return Ok(());
    }
    let written = match ctx
        .client()
        .attach_addon(to_id, &a.app, &a.name, Some(&a.app))
        .await
    {
        Ok(w) => w,
        Err(e) if refused(&e) => {
            if let Some(c) = &current {
                ctx.client().detach(&c.id).await?;
                log.record(Record::Effect {
                    what: format!("{}/{} detached from {}", a.app, a.name, c.addon.name),
                    request_id: None,
                })?;
            }
            ctx.client()
                .attach_addon(to_id, &a.app, &a.name, None)
                .await?
        }
        Err(e) => return Err(e.into()),
    };
    log.record(Record::Effect {
        what: format!("{}/{} ({label}) now points at {to_name}", a.app, a.name),
        request_id: Some(written.request_id),
    })?;
    Ok(())
}

/// Whether Heroku refused the attach because the name is taken (it does not replace here).
fn refused(e: &HerokuError) -> bool {
    matches!(e.status(), Some(409 | 422))
}

/// Fails, marking the data unsafe, when a writer process type has dynos.
async fn writers_stopped(ctx: &StepCtx<'_>) -> Result<(), StepError> {
    let formation = ctx.client().formation(ctx.app()).await?;
    let running: Vec<String> = formation
        .iter()
        .filter(|f| ctx.request.params.writers.contains(&f.process_type) && f.quantity > 0)
        .map(|f| format!("{}={}", f.process_type, f.quantity))
        .collect();
    if running.is_empty() {
        return Ok(());
    }
    Err(StepError::Failed {
        message: format!(
            "writers run ({}): they may have written to the new add-on, so the attachments \
             are not moved back; check which add-on holds the latest data before moving \
             anything",
            running.join(", ")
        ),
        data_unsafe: true,
        transient: None,
    })
}
