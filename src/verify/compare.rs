//! Two live servers compared key by key: the canonical record of every key on each side,
//! merge-joined into named differences.
//!
//! Why a function of its own: a snapshot diff compares a server with a file taken earlier,
//! while a live swap (and `upshift digest --against-url`) must prove that a second server holds
//! exactly the first one's data now. Both sides are scanned at once, each with its own
//! connections and half the memory budget; equal data written differently (another encoding,
//! a replica promoted, a RESTORE) compares equal because the records are canonical.

use serde::Serialize;

use crate::verify::collect::scan_into;
use crate::verify::conn::Session;
use crate::verify::diff::{DiffReport, merge_join};
use crate::verify::error::VerifyError;
use crate::verify::scan::{Fallbacks, ScanOutcome, read_listed, scan};
use crate::verify::store::RecordSet;
use crate::verify::{Progress, RedisUrl, VerifyOptions, record_pusher, spill_err};

/// The result of [`compare`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareReport {
    /// The differences, with the first server as "before" and the second as "after": a key
    /// only on the first is `missing`, a key only on the second is `extra`.
    pub diff: DiffReport,
    /// Keys of the first server read with commands instead of a decoded DUMP, by reason.
    pub fallbacks_a: Fallbacks,
    /// The same for the second server.
    pub fallbacks_b: Fallbacks,
}

impl CompareReport {
    /// True when both servers hold the same data (keys, types, values and expiries).
    pub fn is_equal(&self) -> bool {
        self.diff.is_equal()
    }
}

/// Compares the whole database of server `a` with that of server `b`, key by key.
///
/// Both must be quiet (no writers): each scan is gated as a digest's is. A key that expired
/// on `b` before its scan ended counts as expired in the window, not as missing.
///
/// # Errors
/// As [`crate::verify::digest`], for either server.
pub async fn compare(
    a: &RedisUrl,
    b: &RedisUrl,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<CompareReport, VerifyError> {
    let half = opts.memory_budget / 2;
    let (side_a, side_b) = tokio::try_join!(
        read_side(a, opts, half, progress),
        read_side(b, opts, half, &crate::verify::NoProgress),
    )?;
    let (outcome_a, set_a) = side_a;
    let (outcome_b, set_b) = side_b;
    let diff = merge_join(
        set_a.into_sorted(),
        set_b.into_sorted(),
        outcome_b.end_server_ms,
        opts.max_listed_differences,
    )
    .map_err(spill_err(&opts.spill_dir))?;
    outcome_a.check_complete(diff.before_keys)?;
    outcome_b.check_complete(diff.after_keys)?;
    Ok(CompareReport {
        diff,
        fallbacks_a: outcome_a.fallbacks,
        fallbacks_b: outcome_b.fallbacks,
    })
}

/// One side: every key's record, in a record set.
async fn read_side(
    url: &RedisUrl,
    opts: &VerifyOptions,
    budget: usize,
    progress: &dyn Progress,
) -> Result<(ScanOutcome, RecordSet), VerifyError> {
    let session = Session::open(url, opts, opts.max_connections).await?;
    scan_into(
        RecordSet::new(budget, &opts.spill_dir),
        record_pusher(&opts.spill_dir),
        |tx| scan(&session, opts, progress, false, tx),
    )
    .await
}

/// Compares only the keys named, on both servers: for a live swap's keys written meanwhile, or
/// a second look at the keys a full compare named. A key absent from both is equal; one absent
/// from one side is missing (or extra). No DBSIZE gate: the rest of either database may move.
///
/// # Errors
/// Connection or command failures on either server, or the spill directory failing.
pub async fn compare_keys(
    a: &RedisUrl,
    b: &RedisUrl,
    keys: &[Vec<u8>],
    opts: &VerifyOptions,
) -> Result<CompareReport, VerifyError> {
    let half = opts.memory_budget / 2;
    let (side_a, side_b) = tokio::try_join!(
        read_listed_side(a, keys, opts, half),
        read_listed_side(b, keys, opts, half),
    )?;
    let ((fallbacks_a, set_a), (fallbacks_b, set_b)) = (side_a, side_b);
    let b_session_time = Session::open(b, opts, 1).await?.server_time_ms().await?;
    let diff = merge_join(
        set_a.into_sorted(),
        set_b.into_sorted(),
        b_session_time,
        opts.max_listed_differences,
    )
    .map_err(spill_err(&opts.spill_dir))?;
    Ok(CompareReport {
        diff,
        fallbacks_a,
        fallbacks_b,
    })
}

async fn read_listed_side(
    url: &RedisUrl,
    keys: &[Vec<u8>],
    opts: &VerifyOptions,
    budget: usize,
) -> Result<(Fallbacks, RecordSet), VerifyError> {
    let session = Session::open(url, opts, opts.max_connections).await?;
    scan_into(
        RecordSet::new(budget, &opts.spill_dir),
        record_pusher(&opts.spill_dir),
        |feed| read_listed(&session, opts, keys, feed),
    )
    .await
}
