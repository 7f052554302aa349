//! The live compare: every key of both servers compared while the app writes, so the bulk
//! copy is proven before the cutover and the cutover only proves the keys written since.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{DirtyWatch, KeyPages, copy_keys};
use crate::verify::{RedisUrl, VerifyError, VerifyOptions};

/// Compares every key of both servers while the app runs, a SCAN page at a time, with the
/// canonical digest ([`verify::compare_keys`]). A key that differs because the app wrote it
/// meanwhile is named by the watch and re-copied with the others it named; a key that differs
/// and was not written is a copy defect: copied again and counted. Returns (keys compared,
/// defects). This proves the bulk copy before the cutover, so the cutover only has to prove
/// the keys written since.
///
/// # Errors
/// Connection or command failures on either server.
pub async fn compare_live(
    old: &RedisUrl,
    new: &RedisUrl,
    opts: &VerifyOptions,
    watch: &DirtyWatch,
    sync_timeout: Duration,
) -> Result<(u64, u64), VerifyError> {
    let mut pages = KeyPages::open(old, opts).await?;
    let (mut compared, mut defects) = (0_u64, 0_u64);
    while let Some(keys) = pages.next().await? {
        compared += keys.len() as u64;
        let report = crate::verify::compare_keys(old, new, &keys, opts).await?;
        if report.is_equal() {
            continue;
        }
        let differing: Vec<Vec<u8>> = if report.diff.truncated {
            keys.clone()
        } else {
            report
                .diff
                .differences
                .iter()
                .map(|d| d.key_bytes.clone())
                .collect()
        };
        if watch.sync(sync_timeout).await.is_err() {
            // The cutover compares every key; nothing more to learn here.
            return Ok((compared, defects));
        }
        let Ok(dirty) = watch.take() else {
            return Ok((compared, defects));
        };
        defects += differing.iter().filter(|k| !dirty.contains(*k)).count() as u64;
        let mut again: BTreeSet<Vec<u8>> = dirty;
        again.extend(differing);
        let again: Vec<Vec<u8>> = again.into_iter().collect();
        copy_keys(old, new, opts, &again).await?;
    }
    Ok((compared, defects))
}
