//! The restore-formation step (the writers back to exactly the captured formation, the
//! maintenance flag back) and the formation compensation, which is its first half.

use super::formation::{self, Writers};
use super::{StepCtx, maintenance};
use crate::runner::capture::verify_options;
use crate::runner::ledger::Ledger;
use crate::runner::record::{Record, VerifiedServer};
use crate::runner::{RunEvent, StepError};

/// What the restore sent, for its line.
pub(in crate::runner) struct Restored {
    /// `type=quantity:size` per writer type.
    pub formation: String,
}

/// Restores the formation, then the maintenance flag.
///
/// # Guarantees
/// Absolute values and a re-read flag: repeatable.
pub(in crate::runner) async fn run(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
) -> Result<Restored, StepError> {
    let formation = writers(ctx, log).await?;
    maintenance::restore(ctx, log).await?;
    Ok(Restored { formation })
}

/// Scales the writers back to exactly the captured quantities and sizes and journals the end
/// of the downtime (the restore-formation compensation), once every verified add-on's config
/// var is proven to still lead to the server verify judged.
///
/// # Guarantees
/// Absolute, so it is safe to repeat; the downtime ends once.
pub(in crate::runner) async fn writers(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
) -> Result<String, StepError> {
    still_on_verified_servers(ctx).await?;
    let updates = formation::updates(
        ctx.capture()?,
        &ctx.request.params.writers,
        Writers::Captured,
    );
    let what = formation::apply(ctx, log, &updates, "restore formation").await?;
    if ctx.known.downtime_since.is_some() {
        log.record(Record::Downtime { started: false })?;
        ctx.report(&RunEvent::Downtime { started: false });
    }
    Ok(what)
}

/// Re-reads the config var of every add-on whose data this run verified and proves it still
/// leads to the server verify judged: the same endpoint and the same `run_id`.
///
/// Why: an attachment moved or a credential rotated between verify and this step (a teammate's
/// `heroku addons:attach`) would bring the writers back onto a server whose data upshift never
/// checked, another add-on's perhaps (hostile pass 5, #6). The writers then stay stopped and
/// the run needs attention. An add-on with no verified server (no verify in this run, or a
/// journal of an older version) has nothing to compare and is not checked.
async fn still_on_verified_servers(ctx: &StepCtx<'_>) -> Result<(), StepError> {
    for t in ctx.targets() {
        let Some(verified) = ctx.known.verified_servers.get(&t.name) else {
            continue;
        };
        let var = t.url_var.as_deref().unwrap_or("its config var");
        let kept = |what: String| StepError::Failed {
            message: format!(
                "the writers stay stopped: {what}. {}'s data was verified on {} (run_id {}); \
                 check which add-on the config var belongs to now (`heroku addons -a {app}`, \
                 `heroku config -a {app}`) and put it back before bringing the writers back",
                t.label,
                verified.endpoint,
                short(&verified.identity.run_id),
                app = ctx.app(),
            ),
            data_unsafe: true,
            transient: None,
        };
        let url = match ctx.current_url(&t).await {
            Ok(url) => url,
            Err(StepError::Failed {
                message,
                data_unsafe: true,
                ..
            }) => return Err(kept(message)),
            // Proven another add-on's: still that refusal (its to-do list sends nobody to
            // restore through the var), worded for this step.
            Err(StepError::NotTheAddons { addon, message }) => {
                return Err(StepError::NotTheAddons {
                    addon,
                    message: format!("the writers stay stopped: {message}"),
                });
            }
            Err(e) => return Err(e),
        };
        let opts = verify_options(&ctx.config().verify, &t.to, "check");
        let info = crate::verify::server_info(&url, &opts).await.map_err(|e| {
            kept(format!(
                "the server behind {var} of {} cannot be read to prove it is the one \
                     verified ({})",
                t.label,
                crate::runner::error_chain(&e)
            ))
        })?;
        if let Some(change) = moved(verified, &url.endpoint(), &info.run_id) {
            return Err(kept(format!(
                "config var {var} of {} changed since verify: it now leads to {change}",
                t.label
            )));
        }
    }
    Ok(())
}

/// How the server behind a config var differs from the verified one, in words; `None` when it
/// is the same server (same endpoint, same `run_id`). A server that hides its `run_id` cannot
/// be told apart from another at the same endpoint, so only the endpoint decides then.
fn moved(verified: &VerifiedServer, endpoint: &str, run_id: &str) -> Option<String> {
    let same_run = verified.identity.run_id.is_empty() || verified.identity.run_id == run_id;
    (verified.endpoint != endpoint || !same_run)
        .then(|| format!("{endpoint} (run_id {})", short(run_id)))
}

fn short(run_id: &str) -> &str {
    run_id.get(..8).unwrap_or(run_id)
}

#[cfg(test)]
mod tests {
    use super::moved;
    use crate::plan::facts::ServerIdentity;
    use crate::runner::record::VerifiedServer;

    fn verified(run_id: &str) -> VerifiedServer {
        VerifiedServer {
            endpoint: "10.0.0.1:6379".into(),
            identity: ServerIdentity {
                run_id: run_id.into(),
                maxmemory: 0,
                maxclients: None,
            },
        }
    }

    /// Another endpoint or another process at the same endpoint is another server; the same
    /// endpoint and `run_id` is the one verified.
    #[test]
    fn only_the_verified_server_lets_the_writers_back() {
        let v = verified("aaaaaaaaaaaa");
        assert_eq!(moved(&v, "10.0.0.1:6379", "aaaaaaaaaaaa"), None);
        assert_eq!(
            moved(&v, "10.0.0.1:6379", "bbbbbbbbbbbb").as_deref(),
            Some("10.0.0.1:6379 (run_id bbbbbbbb)")
        );
        assert!(moved(&v, "10.0.0.2:6379", "aaaaaaaaaaaa").is_some());
        // No run_id to compare: the endpoint alone decides.
        assert_eq!(moved(&verified(""), "10.0.0.1:6379", "cccc"), None);
        assert!(moved(&verified(""), "10.0.0.9:6379", "cccc").is_some());
    }
}
