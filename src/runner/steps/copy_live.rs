//! The copy-live step of a live swap, and its compensation, restore-notifications: keyspace
//! notifications on for the old add-on, a watch of its changed keys, a full copy to the new
//! add-on while the app writes, its Data API settings copied, and rounds of re-copying what
//! changed, so the cutover has little left to do.

use std::sync::Arc;
use std::time::Duration;

use super::StepCtx;
use super::live;
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
            let written = ctx
                .client()
                .update_redis_config(
                    &t.name,
                    &RedisConfigValues {
                        notify_keyspace_events: Some(flags.clone()),
                        ..RedisConfigValues::default()
                    },
                )
                .await?;
            log.record(Record::Effect {
                what: format!(
                    "keyspace notifications of {} set to \"{flags}\" (was \"{now}\")",
                    t.label
                ),
                request_id: Some(written.request_id),
            })?;
            applied(ctx, &t.name, &t.label).await?;
        }
        let old_url = ctx.current_url(&t).await?;
        let new_url = live::new_url(ctx, &new).await?;
        let opts = live::options(ctx, &t.from, "copy");
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
            "{}: {} keys copied to {}, {recopied} re-copied{}",
            t.label,
            copied.copied,
            new.name,
            left.map(|n| format!(", {n} changed in the last round"))
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
        let Some(before) = ctx.known.notifications_before.get(&t.name) else {
            continue;
        };
        let written = ctx
            .client()
            .update_redis_config(
                &t.name,
                &RedisConfigValues {
                    notify_keyspace_events: Some(before.clone()),
                    ..RedisConfigValues::default()
                },
            )
            .await?;
        log.record(Record::Effect {
            what: format!("keyspace notifications of {} back to \"{before}\"", t.label),
            request_id: Some(written.request_id),
        })?;
    }
    Ok(())
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
