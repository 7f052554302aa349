//! The catch-up step of a live swap, the writers stopped: copy what changed since the live copy
//! and prove the two servers equal, so the attachment move hands the app the same data.

use super::copy_live::SYNC_TIMEOUT;
use super::{StepCtx, Target, live, writes};
use crate::runner::evidence;
use crate::runner::ledger::{Ledger, NewAddon};
use crate::runner::record::Record;
use crate::runner::{AddonReport, RunEvent, StepError};
use crate::swap;
use crate::verify::{self, RedisUrl, VerifyOptions};

/// Full compare-and-copy passes before the catch-up gives up: each pass copies every key it
/// found different, and with the writers stopped the second finds none.
const FULL_PASSES: usize = 3;

/// Both servers proven equal.
pub(in crate::runner) struct CaughtUp {
    pub note: String,
}

/// For each target: with the watch alive, copies the keys it saw change, compares exactly those
/// on both servers, and checks both hold the same number of keys; with the watch lost (or gone
/// with a crashed process), compares every key and copies the differences until a pass finds
/// none. Records the new server's identity and key count for the move's proof.
///
/// # Guarantees
/// The old add-on is only read; nothing may have written to it since the drain (checked before
/// and after). Repeating the step after a crash compares every key again.
pub(in crate::runner) async fn run(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
) -> Result<CaughtUp, StepError> {
    writes::check_none_since_drain(ctx, "before the catch-up").await?;
    let mut notes = Vec::new();
    for t in ctx.targets() {
        let new = live::new_addon(ctx, &t)?.clone();
        let old_url = ctx.current_url(&t).await?;
        let new_url = live::new_url(ctx, &new).await?;
        let opts = live::options(ctx, &t.to, "catch-up");
        let by_watch = watched(ctx, &t, &old_url, &new_url, &opts).await?;
        let (how, copied) = if let Some(copied) = by_watch {
            ("changed keys", copied)
        } else {
            let copied = full(ctx, &t, &old_url, &new_url, &opts).await?;
            ("every key", copied)
        };
        let keys = proven(&t, &new, &old_url, &new_url, &opts, log).await?;
        log.learn(crate::runner::ledger::Learned::Report(AddonReport {
            label: t.label.clone(),
            addon: t.name.clone(),
            from: t.from.clone(),
            to: t.to.clone(),
            keys_verified: keys,
            bytes_verified: 0,
            differences: copied,
            repaired: copied,
        }));
        notes.push(format!(
            "{}: {copied} key(s) copied after comparing {how}; {keys} keys equal on {}",
            t.label, new.name
        ));
    }
    writes::check_none_since_drain(ctx, "during the catch-up").await?;
    Ok(CaughtUp {
        note: notes.join("; "),
    })
}

/// With this process's watch alive: copies and compares the keys changed since the last
/// round. `None` when there is no complete set (no watch, or it was lost).
async fn watched(
    ctx: &StepCtx<'_>,
    t: &Target,
    old: &RedisUrl,
    new: &RedisUrl,
    opts: &VerifyOptions,
) -> Result<Option<u64>, StepError> {
    let Some(watch) = ctx.known.watches.get(&t.name) else {
        return Ok(None);
    };
    if watch.sync(SYNC_TIMEOUT).await.is_err() {
        return Ok(None);
    }
    let Ok(dirty) = watch.take() else {
        return Ok(None);
    };
    let keys: Vec<Vec<u8>> = dirty.into_iter().collect();
    let copied = swap::copy_keys(old, new, opts, &keys).await?;
    let report = verify::compare_keys(old, new, &keys, opts).await?;
    if !report.is_equal() {
        return Err(StepError::failed(format!(
            "{} still differs on {} of the {} changed key(s) after copying them: the old \
             server is being written to; nothing was moved",
            t.label,
            report.diff.counts.failures(),
            keys.len()
        )));
    }
    let (old_keys, new_keys) = (key_count(old, opts).await?, key_count(new, opts).await?);
    if old_keys != new_keys {
        ctx.report(&RunEvent::Warning {
            message: format!(
                "{}: the key counts differ although every changed key is equal: comparing \
                 every key",
                t.label
            ),
        });
        return Ok(None);
    }
    Ok(Some(copied.copied + copied.deleted))
}

/// Compares every key and copies the differences until a pass finds none.
async fn full(
    ctx: &StepCtx<'_>,
    t: &Target,
    old: &RedisUrl,
    new: &RedisUrl,
    opts: &VerifyOptions,
) -> Result<u64, StepError> {
    let mut copied = 0;
    for _ in 0..FULL_PASSES {
        let progress = ctx.progress(&format!("compare {}", t.label));
        let report = verify::compare(old, new, opts, &progress).await?;
        if report.is_equal() {
            return Ok(copied);
        }
        let keys: Vec<Vec<u8>> = report
            .diff
            .differences
            .iter()
            .map(|d| d.key_bytes.clone())
            .collect();
        if keys.is_empty() {
            break;
        }
        let done = swap::copy_keys(old, new, opts, &keys).await?;
        copied += done.copied + done.deleted;
    }
    Err(StepError::failed(format!(
        "{} still differs from its new add-on after {FULL_PASSES} compare-and-copy passes: \
         something writes to one of them; nothing was moved",
        t.label
    )))
}

/// Records the new server's identity and its key count, equal to the old one's.
async fn proven(
    t: &Target,
    new: &NewAddon,
    old_url: &RedisUrl,
    new_url: &RedisUrl,
    opts: &VerifyOptions,
    log: &mut Ledger,
) -> Result<u64, StepError> {
    let keys = key_count(old_url, opts).await?;
    let info = verify::server_info(new_url, opts).await?;
    let new_keys = db_keys(&info, new_url);
    if new_keys != keys {
        return Err(StepError::failed(format!(
            "{} holds {keys} keys and its new add-on {} holds {new_keys}: nothing was moved",
            t.label, new.name
        )));
    }
    log.record(Record::NewServer {
        addon: t.name.clone(),
        identity: evidence::identity(&info),
        keys,
    })?;
    Ok(keys)
}

async fn key_count(url: &RedisUrl, opts: &VerifyOptions) -> Result<u64, StepError> {
    let info = verify::server_info(url, opts).await?;
    Ok(db_keys(&info, url))
}

/// The keys of `url`'s database as INFO keyspace counts them.
fn db_keys(info: &verify::ServerInfo, url: &RedisUrl) -> u64 {
    u32::try_from(url.db())
        .ok()
        .and_then(|db| info.keyspace.get(&db))
        .map_or(0, |k| k.keys)
}
