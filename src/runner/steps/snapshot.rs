//! The snapshot step: every key of every add-on streamed to a local file and digested; the
//! reference verify and every repair compare against.

use futures::future::join_all;

use super::StepCtx;
use super::writes::check_none_since_drain;
use crate::runner::StepError;
use crate::runner::capture::verify_options;
use crate::runner::ledger::Ledger;
use crate::runner::record::Record;
use crate::verify;

/// What the snapshot step wrote, for its line; each file is journaled as it completes.
pub(in crate::runner) struct Snapshotted {
    /// `label N keys` per add-on.
    pub note: String,
}

/// Snapshots every add-on concurrently, journals each file, then checks that nothing wrote
/// to Redis meanwhile.
///
/// # Guarantees
/// Read-only on Redis; a file is renamed into place only when complete, so repeating the step
/// after a crash writes it again whole.
pub(in crate::runner) async fn run(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
) -> Result<Snapshotted, StepError> {
    let dir = ctx.config().state.run_dir(ctx.run_id);
    let mut jobs = Vec::new();
    for t in ctx.targets() {
        let url = ctx.current_url(&t).await?;
        let opts = verify_options(&ctx.config().verify, &t.from, "snapshot");
        let file = dir.join(format!("snapshot-{}.ups", t.name));
        let progress = ctx.progress(&t.label);
        jobs.push(async move {
            let summary = verify::snapshot(&url, &file, &opts, &progress).await;
            (t, file, summary)
        });
    }
    let mut notes = Vec::new();
    for (t, file, summary) in join_all(jobs).await {
        let summary = summary?;
        // Journaled before the check below can fail: the file exists, and a needs-attention
        // message or a resume must know where.
        log.record(Record::Snapshot {
            addon: t.name.clone(),
            file: file.display().to_string(),
            keys: summary.keys,
            digest: summary.digest.clone(),
        })?;
        notes.push(format!("{} {} keys", t.label, summary.keys));
    }
    check_none_since_drain(ctx, "during the snapshot").await?;
    Ok(Snapshotted {
        note: notes.join(", "),
    })
}
