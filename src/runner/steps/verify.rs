//! The verify step: each add-on's data read back through its current URL and compared with
//! its snapshot; critical data that differs is repaired and compared again. The settle
//! compensation verifies through [`target`] too.

use super::{StepCtx, Target};
use crate::plan::facts::DataPolicy;
use crate::plans;
use crate::runner::capture::verify_options;
use crate::runner::ledger::{Learned, Ledger};
use crate::runner::record::{Record, VerifiedServer};
use crate::runner::{AddonReport, RunEvent, StepError};
use crate::verify::{self, RestoreSelection};

/// Keys to name in journals and messages.
const EXAMPLES: usize = 20;

/// Every add-on verified (or, for a cache, tolerated).
pub(in crate::runner) struct Verified {
    /// One phrase per add-on.
    pub note: String,
}

/// Verifies every add-on, then checks its Redis settings survived the change.
///
/// # Guarantees
/// A repair writes only snapshot values over differing keys, so repeating the step converges
/// on the snapshot; the settings are put back only when they differ.
pub(in crate::runner) async fn run(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
) -> Result<Verified, StepError> {
    let mut notes = Vec::new();
    for t in ctx.targets() {
        let note = match target(ctx, log, &t).await {
            Ok(note) => note,
            // A cache keeps its looser rule: an unreadable cache is reported, not fatal
            // (its loss is tolerated). Critical data has no such escape: an error is a
            // failure, and the engine keeps the writers stopped until a verify succeeds.
            Err(StepError::Failed { message, .. }) if t.policy == DataPolicy::Cache => {
                ctx.report(&RunEvent::Warning {
                    message: format!(
                        "{} (cache) could not be verified ({message}); tolerated by its data policy",
                        t.label
                    ),
                });
                format!("{} (cache) not verified, tolerated", t.label)
            }
            Err(e) => return Err(e),
        };
        notes.push(note);
        check_redis_settings(ctx, log, &t).await?;
    }
    Ok(Verified {
        note: notes.join("; "),
    })
}

/// Compares one add-on with its snapshot; repairs critical data. Journals the verdict and
/// hands the add-on's report to the ledger. `Ok` with a note when the data is whole (or a
/// cache), a data-unsafe failure otherwise.
pub(super) async fn target(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
    t: &Target,
) -> Result<String, StepError> {
    let file = ctx
        .known
        .snapshots
        .get(&t.name)
        .cloned()
        .ok_or_else(|| StepError::Failed {
            message: format!(
                "no snapshot of {} in this run: its data cannot be checked",
                t.label
            ),
            data_unsafe: t.policy == DataPolicy::Critical,
            transient: None,
        })?;
    let url = ctx.current_url(t).await?;
    let plan = ctx.client().addon(ctx.app(), &t.name).await.map_or_else(
        |_| t.to.clone(),
        |a| plans::bare_name(&a.plan.name).to_owned(),
    );
    let opts = verify_options(&ctx.config().verify, &plan, "verify");
    // Who answers behind the URL as verify reads it: the restore brings the writers back only
    // onto this server (hostile pass 5, #6).
    let server = verify::server_info(&url, &opts)
        .await
        .ok()
        .map(|info| VerifiedServer {
            endpoint: url.endpoint(),
            identity: crate::runner::evidence::identity(&info),
        });
    let progress = ctx.progress(&t.label);
    let diff = verify::diff(&url, &file, &opts, &progress).await?;
    let differences = diff.counts.failures();
    let examples: Vec<String> = diff
        .differences
        .iter()
        .filter(|d| d.kind.is_failure())
        .take(EXAMPLES)
        .map(|d| {
            format!(
                "{} ({})",
                crate::printable::key(&d.key_bytes),
                d.kind.label()
            )
        })
        .collect();
    let mut repaired = 0;
    let mut whole = diff.is_equal();
    if !whole && t.policy == DataPolicy::Critical {
        refuse_repair_while_writers_run(ctx, t, differences, &examples).await?;
        refuse_repair_over_keys_not_snapshotted(t, &diff)?;
        // A truncated list names only some keys: then every key is restored from the snapshot.
        let how = if diff.truncated {
            format!(
                "restoring every key from the snapshot (the list of differences stops at {})",
                diff.differences.len()
            )
        } else {
            "repairing from the snapshot".to_owned()
        };
        ctx.report(&RunEvent::Warning {
            message: format!(
                "{}: {differences} key(s) differ from the snapshot ({}); {how}",
                t.label,
                examples.join(", ")
            ),
        });
        let selection = if diff.truncated {
            RestoreSelection::All
        } else {
            RestoreSelection::Keys(
                diff.differences
                    .iter()
                    .filter(|d| d.kind.is_failure())
                    .map(|d| d.key_bytes.clone())
                    .collect(),
            )
        };
        let summary = verify::restore(&url, &file, selection, &opts, &verify::NoProgress).await?;
        // The keys that differed and no longer do. Not the keys written: a truncated list
        // restores every key of the snapshot, most of which were already right.
        repaired = differences.saturating_sub(summary.remaining.counts.failures());
        whole = summary.remaining.is_equal();
    }
    log.record(Record::Verified {
        addon: t.name.clone(),
        keys: diff.before_keys,
        digest_equal: diff.is_equal(),
        differences,
        repaired,
        examples: examples.clone(),
        server,
    })?;
    log.learn(Learned::Report(AddonReport {
        label: t.label.clone(),
        addon: t.name.clone(),
        from: t.from.clone(),
        to: plan.clone(),
        keys_verified: diff.before_keys,
        bytes_verified: progress.bytes(),
        differences,
        repaired,
    }));
    match (whole, t.policy) {
        (true, _) if differences == 0 => Ok(format!("{} {} keys equal", t.label, diff.before_keys)),
        (true, _) => Ok(format!(
            "{} {} keys equal after repairing {repaired}",
            t.label, diff.before_keys
        )),
        (false, DataPolicy::Cache) => {
            ctx.report(&RunEvent::Warning {
                message: format!(
                    "{} (cache): {differences} key(s) differ from the snapshot; tolerated by its data policy",
                    t.label
                ),
            });
            Ok(format!(
                "{} (cache) {differences} keys differ, tolerated",
                t.label
            ))
        }
        (false, DataPolicy::Critical) => Err(StepError::Failed {
            message: format!(
                "{} still differs from its snapshot after repair: {differences} key(s), e.g. {}",
                t.label,
                examples.join(", ")
            ),
            data_unsafe: true,
            transient: None,
        }),
    }
}

/// A repair writes snapshot values over the keys that differ and deletes the extra ones: right
/// only while nothing else writes. If the writers came back meanwhile (a person, an autoscaler,
/// another upshift run from another machine), the differences may be their acknowledged writes,
/// and a repair would revert or delete them. So before repairing, the platform is asked again:
/// any writer process type scaled above zero, or any of its dynos listed, and the repair is
/// refused. The data is then neither proven nor repaired: a person has to look.
async fn refuse_repair_while_writers_run(
    ctx: &StepCtx<'_>,
    t: &Target,
    differences: u64,
    examples: &[String],
) -> Result<(), StepError> {
    let writers = &ctx.request.params.writers;
    let mut running: Vec<String> = ctx
        .client()
        .formation(ctx.app())
        .await?
        .into_iter()
        .filter(|f| writers.contains(&f.process_type) && f.quantity > 0)
        .map(|f| format!("{}={}", f.process_type, f.quantity))
        .collect();
    if running.is_empty() {
        running = ctx
            .client()
            .dynos(ctx.app())
            .await?
            .into_iter()
            .filter(|d| writers.contains(&d.process_type))
            .map(|d| format!("{} ({})", d.name, d.state))
            .collect();
    }
    if running.is_empty() {
        return Ok(());
    }
    Err(StepError::Failed {
        message: format!(
            "{}: {differences} key(s) differ from the snapshot (e.g. {}), but the writers are \
             running again ({}) although this run stopped them: someone or something scaled \
             them back. Not repairing: the differences may be their writes, and a repair would \
             revert or delete them. Compare the data with the snapshot (`upshift diff`) and \
             decide by hand",
            t.label,
            examples.join(", "),
            running.join(", ")
        ),
        data_unsafe: true,
        transient: None,
    })
}

/// A repair makes the server equal to the snapshot: it overwrites the keys that differ and
/// deletes the keys the snapshot does not hold. Keys the snapshot does not hold cannot come from
/// the plan change (it copies the data the writers left, and they were stopped and drained
/// before the snapshot): either something wrote to the server since, or the URL leads to a
/// server that is not this add-on's (a config var pointing at another add-on's Redis, which a
/// `run_id` different from the old one does not rule out). Either way the data there is someone
/// else's, and a repair would destroy it (hostile pass 4: a whole cache overwritten, exit 0).
/// So a server holding any such key is not repaired: the run ends needing attention, nothing
/// written, the writers still stopped, the snapshot kept.
fn refuse_repair_over_keys_not_snapshotted(
    t: &Target,
    diff: &verify::DiffReport,
) -> Result<(), StepError> {
    let extra = diff.counts.extra;
    if extra == 0 {
        return Ok(());
    }
    let named: Vec<String> = diff
        .differences
        .iter()
        .filter(|d| matches!(d.kind, verify::DifferenceKind::Extra))
        .take(5)
        .map(|d| crate::printable::key(&d.key_bytes))
        .collect();
    let named = if named.is_empty() {
        String::new()
    } else {
        format!(" (e.g. {})", named.join(", "))
    };
    Err(StepError::Failed {
        message: format!(
            "{}: the server behind its URL holds {extra} key(s) the snapshot does not{named}, \
             of {} key(s) there. The plan change cannot have put them there: something wrote \
             to it after the writers stopped, or the URL leads to another add-on's server. Not \
             repairing: a repair would delete or overwrite data upshift never held. Check where \
             the config var leads (`heroku config -a APP`) and compare with the snapshot \
             (`upshift diff`)",
            t.label, diff.after_keys
        ),
        data_unsafe: true,
        transient: None,
    })
}

/// The Data API settings must survive the change; a lost one is put back and reported.
async fn check_redis_settings(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
    t: &Target,
) -> Result<(), StepError> {
    let Some(before) = ctx
        .capture()?
        .found()
        .find(|a| a.name == t.name)
        .and_then(|a| a.redis_config.clone())
    else {
        return Ok(());
    };
    let now = ctx.client().redis_config(&t.name).await?.values();
    if now != before {
        let w = ctx.client().update_redis_config(&t.name, &before).await?;
        log.record(Record::Effect {
            what: format!("redis settings of {} restored", t.label),
            request_id: Some(w.request_id),
        })?;
        ctx.report(&RunEvent::Warning {
            message: format!(
                "{}: the plan change lost Redis settings ({now:?} instead of {before:?}); restored",
                t.label
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::refuse_repair_over_keys_not_snapshotted;
    use crate::plan::facts::DataPolicy;
    use crate::runner::StepError;
    use crate::runner::target::Target;
    use crate::verify::{DiffCounts, DiffReport, Difference, DifferenceKind};

    fn target() -> Target {
        Target {
            label: "MAIN".into(),
            name: "redis-a".into(),
            from: "premium-0".into(),
            to: "premium-1".into(),
            policy: DataPolicy::Critical,
            url_var: Some("MAIN_URL".into()),
            own_vars: vec!["MAIN_URL".into()],
        }
    }

    fn report(extra: u64, value_changed: u64, listed: Vec<Difference>) -> DiffReport {
        DiffReport {
            before_keys: 10,
            after_keys: 10 + extra,
            counts: DiffCounts {
                extra,
                value_changed,
                ..DiffCounts::default()
            },
            differences: listed,
            truncated: false,
        }
    }

    /// Keys lost or changed by the migration are repaired; a key the snapshot never held (a
    /// write since the drain, or another add-on's server) stops the repair, named escaped.
    #[test]
    fn a_key_the_snapshot_never_held_stops_the_repair() {
        assert!(refuse_repair_over_keys_not_snapshotted(&target(), &report(0, 3, vec![])).is_ok());
        let extra = Difference {
            key: "other:\u{1b}[2J".into(),
            key_bytes: b"other:\x1b[2J".to_vec(),
            kind: DifferenceKind::Extra,
        };
        let refused =
            refuse_repair_over_keys_not_snapshotted(&target(), &report(1, 3, vec![extra]));
        let Err(StepError::Failed {
            message,
            data_unsafe,
            ..
        }) = refused
        else {
            panic!("{refused:?}");
        };
        assert!(data_unsafe);
        assert!(
            message.contains("holds 1 key(s) the snapshot does not"),
            "{message}"
        );
        assert!(message.contains("Not repairing"), "{message}");
        assert!(
            message.contains("other:\\x1b[2J") && !message.contains('\u{1b}'),
            "{message}"
        );
    }
}
