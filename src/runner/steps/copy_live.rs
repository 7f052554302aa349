//! The copy-live step of a live swap, and its compensation, restore-notifications: keyspace
//! notifications on for the old add-on, a watch of its changed keys, a full copy to the new
//! add-on while the app writes, its Data API settings copied, and rounds of re-copying what
//! changed, so the cutover has little left to do.

use std::sync::Arc;
use std::time::Duration;

use super::live;
use super::{StepCtx, Target};
use crate::heroku::models::RedisConfigValues;
use crate::runner::ledger::{Learned, Ledger};
use crate::runner::record::Record;
use crate::runner::{RunEvent, StepError};
use crate::swap::{self, DirtyWatch};

/// Rounds of re-copying changed keys while the app runs; each round copies what the last one
/// saw change, so with a steady write rate the set left for the cutover shrinks to what the
/// app writes in one round.
const ROUNDS: usize = 5;
/// A dirty set this small is left to the cutover.
const SMALL: usize = 100;
/// How long a barrier may take to come back through the watch before it counts as lost.
pub(super) const SYNC_TIMEOUT: Duration = Duration::from_secs(5);

/// What the copy did.
pub(in crate::runner) struct Copied {
    pub note: String,
}

/// Copies every target's old add-on to its new one while the app runs.
///
/// # Guarantees
/// The old add-on's data is only read. Its notification setting is journaled before it is
/// changed, so restore-notifications can put it back after any crash. Repeating the step
/// copies again (RESTORE ... REPLACE), which is harmless.
pub(in crate::runner) async fn run(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
) -> Result<Copied, StepError> {
    let mut notes = Vec::new();
    for t in ctx.targets() {
        let new = live::new_addon(ctx, &t)?.clone();
        let config = ctx.client().redis_config(&t.name).await?.values();
        // The journaled value wins: after a crash past the change, the live one is this
        // run's own, and copying it would leave the new add-on with the watch's flags.
        let before = if let Some(before) = ctx.known.notifications_before.get(&t.name) {
            before.clone()
        } else {
            let before = config.notify_keyspace_events.clone().unwrap_or_default();
            log.record(Record::Notifications {
                addon: t.name.clone(),
                before: before.clone(),
            })?;
            before
        };
        let now = config.notify_keyspace_events.clone().unwrap_or_default();
        if !swap::flags_suffice(&now) {
            let flags = merged_flags(&now);
            let request_id = set_notifications(ctx, &t.name, &flags).await?;
            log.record(Record::Effect {
                what: format!(
                    "keyspace notifications of {} set to \"{flags}\" (was \"{now}\")",
                    t.label
                ),
                request_id: Some(request_id),
            })?;
            applied(ctx, &t.name, &t.label).await?;
        }
        let old_url = ctx.current_url(&t).await?;
        let new_url = live::new_url(ctx, &new).await?;
        room(
            ctx,
            &t.label,
            &old_url,
            &live::options(ctx, &t.from, "copy"),
        )
        .await?;
        // One connection per reader: the app still runs on the old add-on, and the guard
        // reserved only COPY_CONNECTIONS of its plan's limit for this step.
        let opts = crate::verify::VerifyOptions {
            max_connections: 1,
            ..live::options(ctx, &t.from, "copy")
        };
        let watch = Arc::new(DirtyWatch::start(&old_url, &opts).await?);
        log.learn(Learned::Watch {
            addon: t.name.clone(),
            watch: Arc::clone(&watch),
        });
        let progress = ctx.progress(&format!("copy {} -> {}", t.label, new.name));
        let copied = swap::copy_all(&old_url, &new_url, &opts, &progress).await?;
        // The settings travel with the data; the new add-on keeps the old one's notification
        // setting, not the one this run needs for its watch.
        let settings = RedisConfigValues {
            maxmemory_policy: config.maxmemory_policy.clone(),
            timeout: config.timeout,
            notify_keyspace_events: Some(before.clone()),
        };
        ctx.client()
            .update_redis_config(&new.name, &settings)
            .await?;
        let mut recopied = 0_u64;
        let mut left = None;
        for _ in 0..ROUNDS {
            if watch.sync(SYNC_TIMEOUT).await.is_err() {
                break;
            }
            let Ok(dirty) = watch.take() else { break };
            let keys: Vec<Vec<u8>> = dirty.into_iter().collect();
            let done = swap::copy_keys(&old_url, &new_url, &opts, &keys).await?;
            recopied += done.copied + done.deleted;
            left = Some(keys.len());
            if keys.len() <= SMALL {
                break;
            }
        }
        let mut checked = None;
        if !watch.is_lost() {
            let (compared, defects) =
                swap::compare_live(&old_url, &new_url, &opts, &watch, SYNC_TIMEOUT).await?;
            if defects > 0 {
                ctx.report(&RunEvent::Warning {
                    message: format!(
                        "{}: {defects} key(s) differed on the new add-on although nothing \
                         wrote them since the copy: copied again",
                        t.label
                    ),
                });
            }
            checked = Some((compared, defects));
        }
        if watch.is_lost() {
            ctx.report(&RunEvent::Warning {
                message: format!(
                    "the keyspace-notification watch of {} was lost: the cutover compares \
                     every key instead of the changed ones",
                    t.label
                ),
            });
        }
        notes.push(format!(
            "{}: {} keys copied to {}, {recopied} re-copied{}{}",
            t.label,
            copied.copied,
            new.name,
            left.map(|n| format!(", {n} changed in the last round"))
                .unwrap_or_default(),
            checked
                .map(|(n, d)| format!(", {n} compared while live ({d} copied again)"))
                .unwrap_or_default()
        ));
    }
    Ok(Copied {
        note: notes.join("; "),
    })
}

/// Waits until the Data API reads the notification flags back: Heroku applies settings
/// through it (the server refuses `CONFIG`), and a watch started before they apply would miss
/// writes. The server itself cannot be asked; the Data API's word is the best evidence there is.
async fn applied(ctx: &StepCtx<'_>, addon: &str, label: &str) -> Result<(), StepError> {
    let mut pacer = ctx.pacer(Duration::from_secs(60), true);
    loop {
        let now = ctx.client().redis_config(addon).await?.values();
        if swap::flags_suffice(now.notify_keyspace_events.as_deref().unwrap_or("")) {
            return Ok(());
        }
        if !ctx.pace(&mut pacer).await? {
            return Err(StepError::failed(format!(
                "the Data API still does not show keyspace notifications on for {label} a \
                 minute after they were set: the watch cannot be trusted; nothing was copied \
                 into use"
            )));
        }
    }
}

/// Waits until the old add-on has room for the copy's connections. Attaching the new add-on
/// was a release: the app's dynos restart, and while the old ones finish (Heroku gives them up
/// to 30 s after SIGTERM) and the new ones open their pools, the old add-on can be full for a
/// while. Waiting it out is cheap; connecting into a full server fails the run.
async fn room(
    ctx: &StepCtx<'_>,
    label: &str,
    url: &crate::verify::RedisUrl,
    opts: &crate::verify::VerifyOptions,
) -> Result<(), StepError> {
    let need = u64::from(crate::plan::swap_guards::COPY_CONNECTIONS);
    let mut pacer = ctx.pacer(Duration::from_secs(120), true);
    // Room, with the same client count, over this long: pools still opening do not count.
    let steady_for = Duration::from_secs(2);
    let mut steady: Option<(std::time::Instant, u64)> = None;
    loop {
        let status = match crate::verify::server_info(url, opts).await {
            Ok(info) => match info.maxclients {
                Some(max) if info.connected_clients + need > max => {
                    steady = None;
                    format!("{} of {max} connections in use", info.connected_clients)
                }
                _ => match steady {
                    Some((since, n)) if n == info.connected_clients => {
                        if since.elapsed() >= steady_for {
                            return Ok(());
                        }
                        format!("{n} connections in use, holding")
                    }
                    _ => {
                        steady = Some((std::time::Instant::now(), info.connected_clients));
                        format!("{} connections in use", info.connected_clients)
                    }
                },
            },
            Err(e) => {
                steady = None;
                crate::runner::error_chain(&e)
            }
        };
        ctx.report(&RunEvent::Waiting {
            subject: format!("room on {label} for the copy"),
            status: status.clone(),
        });
        if !ctx.pace(&mut pacer).await? {
            return Err(StepError::failed(format!(
                "{label} has had no room for the copy's {need} connections for 2 minutes \
                 ({status}): use --strategy in-place, which stops the writers first"
            )));
        }
    }
}

/// `before` plus the flags the watch needs, each once.
fn merged_flags(before: &str) -> String {
    let mut flags: String = before.chars().filter(|c| *c != 'K' && *c != 'A').collect();
    flags.insert_str(0, swap::KEYSPACE_FLAGS);
    let mut seen = std::collections::BTreeSet::new();
    flags.chars().filter(|c| seen.insert(*c)).collect()
}

/// Puts each old add-on's notification setting back to its value before the run.
///
/// # Guarantees
/// Idempotent: it writes the journaled value, whatever is set now.
pub(in crate::runner) async fn restore_notifications(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
) -> Result<(), StepError> {
    for t in ctx.targets() {
        restore_notifications_of(ctx, log, &t).await?;
    }
    Ok(())
}

/// Puts `t`'s old add-on's notification setting back to its journaled value before the run,
/// if one was journaled, and journals the effect: the compensation above and the retire-old
/// step (which only warns on a failure) share it.
///
/// # Errors
/// The Data API refuses the change, or the journal cannot be written.
pub(in crate::runner) async fn restore_notifications_of(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
    t: &Target,
) -> Result<(), StepError> {
    let Some(before) = ctx.known.notifications_before.get(&t.name) else {
        return Ok(());
    };
    let request_id = set_notifications(ctx, &t.name, before).await?;
    log.record(Record::Effect {
        what: format!("keyspace notifications of {} back to \"{before}\"", t.label),
        request_id: Some(request_id),
    })?;
    Ok(())
}

/// Sets `notify_keyspace_events` of `addon` through the Data API (Heroku refuses `CONFIG`);
/// returns the request id for the journal.
async fn set_notifications(
    ctx: &StepCtx<'_>,
    addon: &str,
    flags: &str,
) -> Result<String, StepError> {
    let written = ctx
        .client()
        .update_redis_config(
            addon,
            &RedisConfigValues {
                notify_keyspace_events: Some(flags.to_owned()),
                ..RedisConfigValues::default()
            },
        )
        .await?;
    Ok(written.request_id)
}

#[cfg(test)]
mod tests {
    use super::merged_flags;

    #[test]
    fn the_watch_flags_are_added_and_the_others_kept() {
        assert_eq!(merged_flags(""), "KA");
        assert_eq!(merged_flags("Ex"), "KAEx");
        assert_eq!(merged_flags("KEA"), "KAE");
        assert!(crate::swap::flags_suffice(&merged_flags("Elg")));
    }
}
