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
    let mut run_id = None;
    let mut whole = diff.is_equal();
    if !whole && t.policy == DataPolicy::Critical {
        refuse_repair_while_writers_run(ctx, t, differences, &examples).await?;
        refuse_repair_over_keys_not_snapshotted(t, &diff, ctx.app())?;
        refuse_repair_over_changed_values(t, &diff, ctx.app(), &url)?;
        // The identity the repair is about to write to: journaled (forensics), and checked
        // against every other add-on's server.
        run_id = verify::server_info(&url, &opts)
            .await
            .ok()
            .map(|info| info.run_id);
        if let Some(id) = &run_id {
            refuse_repair_on_another_addons_server(ctx, t, &url, id, &opts).await?;
        }
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
        repaired_server: (repaired > 0).then(|| server_text(&url)),
        run_id,
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
    app: &str,
) -> Result<(), StepError> {
    let extra = diff.counts.extra;
    if extra == 0 {
        return Ok(());
    }
    let named = named_keys(diff, |k| matches!(k, verify::DifferenceKind::Extra));
    Err(StepError::NotTheAddons {
        addon: t.name.clone(),
        message: format!(
            "{}: the server behind its URL holds {extra} key(s) the snapshot does not{named}, \
             of {} key(s) there. The plan change cannot have put them there: something wrote \
             to it after the writers stopped, or the URL leads to another add-on's server. Not \
             repairing: a repair would delete or overwrite data upshift never held. Check where \
             the config var leads (`heroku addons -a {app}`, `heroku config -a {app}`) and \
             compare with the snapshot (`upshift diff`)",
            t.label, diff.after_keys
        ),
    })
}

/// Keys whose value or type differs from the snapshot's record are no migration outcome
/// either. Heroku's plan change copies the data by replication: it can lose keys (the Enketo
/// premium-0 -> premium-1 incident lost all of them) but never turns one value into another,
/// and a write after the drain is refused by the write checks before and after the snapshot.
/// So changed values mean the server's data is not this add-on's (a forwarder, another app's
/// add-on, a retired or foreign server whose key names the snapshot happens to know: hostile
/// pass 5 saw a whole cache overwritten, exit 0), or was written after the drain. A repair
/// would overwrite it: refused like keys the snapshot never held. Missing keys alone (an empty
/// or partly emptied server) stay repairable: that is the loss the tool exists for.
///
/// An expiry-only difference (`TtlChanged`, same type and value) does not stop the repair:
/// the value is byte-equal to the snapshot's, so the key is this add-on's and a repair writes
/// back the value it already holds; expiries are the part a copy may shift (absolute times
/// carried between hosts whose clocks differ, a key refreshed or persisted by the platform).
fn refuse_repair_over_changed_values(
    t: &Target,
    diff: &verify::DiffReport,
    app: &str,
    url: &verify::RedisUrl,
) -> Result<(), StepError> {
    let changed = diff.counts.value_changed + diff.counts.type_changed;
    if changed == 0 {
        return Ok(());
    }
    let named = named_keys(diff, |k| {
        matches!(
            k,
            verify::DifferenceKind::ValueChanged | verify::DifferenceKind::TypeChanged { .. }
        )
    });
    Err(StepError::NotTheAddons {
        addon: t.name.clone(),
        message: format!(
            "{}: the server behind its URL ({}) holds {changed} key(s) whose value or type \
             differs from the snapshot{named}, of {} key(s) there. A plan change copies the \
             data by replication: it can lose keys, never change a value, and writes after the \
             drain were checked for. The server's data is not this add-on's data, or was \
             written after the drain. Not repairing: a repair would overwrite data upshift \
             never held. Check where the config var leads (`heroku addons -a {app}`, \
             `heroku config -a {app}`) and compare with the snapshot (`upshift diff`)",
            t.label,
            server_text(url),
            diff.after_keys
        ),
    })
}

/// A repair would write to a server that answers with another add-on's `run_id`: that server
/// is the other add-on's, whatever address the URL reached it by and whatever it holds.
async fn refuse_repair_on_another_addons_server(
    ctx: &StepCtx<'_>,
    t: &Target,
    url: &verify::RedisUrl,
    run_id: &str,
    opts: &verify::VerifyOptions,
) -> Result<(), StepError> {
    let app = ctx.app();
    let Some(foreign) =
        crate::runner::identity::run_id_owner(ctx.client(), app, &t.name, run_id, opts).await?
    else {
        return Ok(());
    };
    Err(StepError::NotTheAddons {
        addon: t.name.clone(),
        message: format!(
            "{}: the server behind its URL ({}) is the server behind {}, which add-on {} \
             exposes (the same run_id), reached by another address. It is {}'s server, not \
             {}'s: not repairing, a repair would write this add-on's snapshot into another \
             add-on's data. Check where the config var leads (`heroku addons -a {app}`, \
             `heroku config -a {app}`)",
            t.label,
            server_text(url),
            foreign.other_var,
            foreign.owner,
            foreign.owner,
            t.label,
        ),
    })
}

/// ` (e.g. k1, k2, …)`: up to five keys of the differences of a kind `which` picks, escaped
/// for printing; empty when there is none.
fn named_keys(
    diff: &verify::DiffReport,
    which: impl Fn(&verify::DifferenceKind) -> bool,
) -> String {
    let named: Vec<String> = diff
        .differences
        .iter()
        .filter(|d| which(&d.kind))
        .take(5)
        .map(|d| crate::printable::key(&d.key_bytes))
        .collect();
    if named.is_empty() {
        String::new()
    } else {
        format!(" (e.g. {})", named.join(", "))
    }
}

/// `host:port/db` of a URL: names the server in journals and messages, never the password.
fn server_text(url: &verify::RedisUrl) -> String {
    format!("{}/{}", url.endpoint(), url.db())
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
    use super::{refuse_repair_over_changed_values, refuse_repair_over_keys_not_snapshotted};
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
                missing: 4,
                ttl_changed: 2,
                ..DiffCounts::default()
            },
            differences: listed,
            truncated: false,
        }
    }

    /// Keys lost by the migration are repaired; a key the snapshot never held (a write since
    /// the drain, or another add-on's server) stops the repair, named escaped.
    #[test]
    fn a_key_the_snapshot_never_held_stops_the_repair() {
        assert!(
            refuse_repair_over_keys_not_snapshotted(&target(), &report(0, 3, vec![]), "app")
                .is_ok()
        );
        let extra = Difference {
            key: "other:\u{1b}[2J".into(),
            key_bytes: b"other:\x1b[2J".to_vec(),
            kind: DifferenceKind::Extra,
        };
        let refused =
            refuse_repair_over_keys_not_snapshotted(&target(), &report(1, 3, vec![extra]), "app");
        let Err(StepError::NotTheAddons { message, addon }) = refused else {
            panic!("{refused:?}");
        };
        assert_eq!(addon, "redis-a");
        assert!(
            message.contains("holds 1 key(s) the snapshot does not"),
            "{message}"
        );
        assert!(message.contains("Not repairing"), "{message}");
        assert!(message.contains("`heroku addons -a app`"), "{message}");
        assert!(
            message.contains("other:\\x1b[2J") && !message.contains('\u{1b}'),
            "{message}"
        );
    }

    /// Missing keys and expiry-only differences stay repairable (the value held is the
    /// snapshot's); a changed value or type stops the repair, its keys named escaped, the
    /// server named without its password.
    #[test]
    fn a_changed_value_or_type_stops_the_repair_and_missing_keys_do_not() {
        let url: crate::verify::RedisUrl = "redis://h:s3cretpw@127.0.0.1:7777".parse().unwrap();
        // 4 missing and 2 expiries changed, nothing else.
        assert!(
            refuse_repair_over_changed_values(&target(), &report(0, 0, vec![]), "app", &url)
                .is_ok()
        );
        let changed = Difference {
            key: "ca:\u{1b}]0;x\u{7}".into(),
            key_bytes: b"ca:\x1b]0;x\x07".to_vec(),
            kind: DifferenceKind::ValueChanged,
        };
        let refused =
            refuse_repair_over_changed_values(&target(), &report(0, 3, vec![changed]), "app", &url);
        let Err(StepError::NotTheAddons { message, addon }) = refused else {
            panic!("{refused:?}");
        };
        assert_eq!(addon, "redis-a");
        assert!(
            message.contains("holds 3 key(s) whose value or type differs from the snapshot"),
            "{message}"
        );
        assert!(message.contains("(127.0.0.1:7777/0)"), "{message}");
        assert!(
            message.contains("not this add-on's data, or was written after the drain"),
            "{message}"
        );
        assert!(message.contains("Not repairing"), "{message}");
        assert!(
            message.contains("ca:\\x1b]0;x\\x07") && !message.contains('\u{1b}'),
            "{message}"
        );
        assert!(!message.contains("s3cretpw"), "{message}");
        // A type change counts the same.
        let mut typed = report(0, 0, vec![]);
        typed.counts.type_changed = 1;
        assert!(refuse_repair_over_changed_values(&target(), &typed, "app", &url).is_err());
    }
}
