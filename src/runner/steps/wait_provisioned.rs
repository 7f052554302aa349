//! The wait-provisioned step: every add-on's new server proven live before verify reads it.

use std::time::{Duration, Instant};

use super::{StepCtx, Target, duration_text, wait_text};
use crate::heroku::models::{AddOn, AddOnState, RedisWait};
use crate::plans;
use crate::runner::capture::verify_options;
use crate::runner::evidence::{self, Observed, Verdict};
use crate::runner::{RunEvent, StepError};
use crate::verify;

/// A provisioning that shows the old plan, settled, this long after the change request, with
/// no sign of work in between, is taken as refused rather than not yet started.
const START_GRACE: Duration = Duration::from_secs(60);
/// How long a new server may refuse the URL's password before the wait gives up. A credential
/// rotation settles within seconds; past that, waiting out the provisioning timeout (minutes)
/// only lengthens the downtime of a run that needs an operator anyway.
const AUTH_GRACE: Duration = Duration::from_secs(15);

/// Every add-on proven live on its target plan.
pub(in crate::runner) struct Provisioned {
    /// `label on plan: proof` per add-on.
    pub note: String,
}

/// Waits until every target's new server is proven live: the platform and the Data API
/// agree on the target plan, and the server behind the config var is a primary that the
/// old server cannot be (see [`evidence`]), all of it holding for the settle period.
/// Only then may verify read it, and the writers come back onto it.
///
/// # Guarantees
/// Read-only: it only looks, so repeating it after a crash waits again.
pub(in crate::runner) async fn run(
    ctx: &StepCtx<'_>,
    timeout: Duration,
) -> Result<Provisioned, StepError> {
    let mut pacer = ctx.pacer(timeout, true);
    let started = Instant::now();
    let settle = ctx.request.params.settle;
    let targets = ctx.targets();
    let mut settled = vec![false; targets.len()];
    let mut proofs = vec![String::new(); targets.len()];
    let mut seen_busy = vec![false; targets.len()];
    let mut refused_since: Vec<Option<Instant>> = vec![None; targets.len()];
    let mut live_since: Vec<Option<Instant>> = vec![None; targets.len()];
    loop {
        let mut statuses = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            if settled[i] {
                continue;
            }
            let addon = ctx.client().addon(ctx.app(), &t.name).await?;
            let wait = ctx.client().redis_wait(&t.name).await?;
            let plan = plans::bare_name(&addon.plan.name).to_owned();
            let state = addon.state.clone();
            let busy = wait.waiting || state != AddOnState::Provisioned;
            if !matches!(state, AddOnState::Provisioned | AddOnState::Provisioning) {
                return Err(StepError::failed(format!(
                    "{} is {} while changing to {}: the platform gave up; the Data API says: {}",
                    t.label,
                    state.as_str(),
                    t.to,
                    wait_text(&wait)
                )));
            }
            // The platform showing the target (even as provisioned, at once) is a sign
            // the change started: going back to the old plan afterwards is a failure.
            if busy || plan == t.to {
                seen_busy[i] = true;
            }
            let mut evidence_status = None;
            if !busy && plan == t.to {
                let status = match judge(ctx, t, &addon, &wait).await {
                    Ok(Verdict::Live { proof }) => {
                        refused_since[i] = None;
                        let since = *live_since[i].get_or_insert_with(Instant::now);
                        if since.elapsed() >= settle {
                            settled[i] = true;
                            proofs[i] = proof;
                            continue;
                        }
                        format!("{proof}; settling")
                    }
                    Ok(Verdict::NotYet { reason }) => {
                        refused_since[i] = None;
                        live_since[i] = None;
                        reason
                    }
                    Err(LookError::Wrong(e)) => return Err(e),
                    Err(LookError::Redis(e)) if e.is_auth_failure() => {
                        live_since[i] = None;
                        let since = *refused_since[i].get_or_insert_with(Instant::now);
                        if since.elapsed() >= AUTH_GRACE {
                            return Err(StepError::failed(format!(
                                "{} is on {} but its server refuses the password in the add-on's config var for {}s ({e}); check `heroku redis:credentials` and the config var, then resume",
                                t.label,
                                t.to,
                                since.elapsed().as_secs()
                            )));
                        }
                        format!("Redis refuses the password ({e})")
                    }
                    Err(LookError::Redis(e)) => {
                        refused_since[i] = None;
                        live_since[i] = None;
                        format!("Redis not answering yet ({e})")
                    }
                };
                statuses.push(format!("{}: {status}", t.label));
                evidence_status = Some(status);
            } else if !busy && plan == t.from && (seen_busy[i] || started.elapsed() > START_GRACE) {
                // Back on the old plan and no longer busy: the change failed. While still
                // busy, the old plan's name is not a verdict (the `late-flip` profile: the
                // add-on names its old plan until the switch).
                return Err(StepError::failed(format!(
                    "provisioning {} on {} failed: the add-on is back on {} and the Data API says \"{}\"",
                    t.label,
                    t.to,
                    t.from,
                    wait_text(&wait)
                )));
            } else {
                live_since[i] = None;
            }
            let status = format!("{} ({})", wait_text(&wait), state);
            statuses.push(format!("{}: {status}", t.label));
            ctx.report(&RunEvent::Waiting {
                subject: t.label.clone(),
                status: evidence_status.unwrap_or(status),
            });
        }
        if settled.iter().all(|s| *s) {
            let note = targets
                .iter()
                .zip(&proofs)
                .map(|(t, proof)| format!("{} on {}: {proof}", t.label, t.to))
                .collect::<Vec<_>>()
                .join(", ");
            return Ok(Provisioned { note });
        }
        if !ctx.pace(&mut pacer).await? {
            return Err(StepError::failed(format!(
                "provisioning did not finish within {}: {}",
                duration_text(timeout),
                statuses.join("; ")
            )));
        }
    }
}

/// Why one look at a target gave no verdict.
#[derive(Debug)]
pub(super) enum LookError {
    /// Redis could not be read (the verifier's error, so the caller can tell a refused password
    /// apart from a server still starting).
    Redis(verify::VerifyError),
    /// The config var is proven wrong (it leads to another add-on's server): no state to wait
    /// out, and nothing to verify or repair there.
    Wrong(StepError),
}

impl From<verify::VerifyError> for LookError {
    fn from(e: verify::VerifyError) -> Self {
        Self::Redis(e)
    }
}

/// One look at a target that the platform says is provisioned on its new plan: the Data
/// API's plan and the server behind the config var now, judged by [`evidence::judge`]
/// against the server recorded before the change. The settle compensation asks the same.
///
/// # Errors
/// Redis cannot be read ([`LookError::Redis`]), or the config var leads to another add-on's
/// server ([`LookError::Wrong`]); a config var that cannot be read is a "not yet".
pub(super) async fn judge(
    ctx: &StepCtx<'_>,
    t: &Target,
    addon: &AddOn,
    wait: &RedisWait,
) -> Result<Verdict, LookError> {
    let data_plan = ctx
        .client()
        .redis_database(&t.name)
        .await
        .ok()
        .map(|d| plans::bare_name(&d.plan).to_owned());
    let url = match ctx.current_url(t).await {
        Ok(url) => url,
        // A URL proven wrong (it leads to another add-on's server) is no state to wait out.
        Err(
            e @ (StepError::NotTheAddons { .. }
            | StepError::Failed {
                data_unsafe: true, ..
            }),
        ) => return Err(LookError::Wrong(e)),
        Err(e) => {
            let detail = match e {
                StepError::Failed { message, .. } => message,
                other => format!("{other:?}"),
            };
            return Ok(Verdict::NotYet {
                reason: format!("the config var cannot be read ({detail})"),
            });
        }
    };
    let opts = verify_options(&ctx.config().verify, &t.to, "wait");
    let info = verify::server_info(&url, &opts).await?;
    let plan = plans::bare_name(&addon.plan.name);
    let observed = Observed {
        state: &addon.state,
        plan,
        data_waiting: wait.waiting,
        data_plan: data_plan.as_deref(),
        server: &info,
    };
    let old = ctx.known.old_servers.get(&t.name);
    Ok(match (plans::find(&t.from), plans::find(&t.to)) {
        (Some(from), Some(to)) => evidence::judge(&from, &to, old, &observed),
        // A plan outside upshift's catalog: no limits to compare, the identity only.
        _ => match old {
            Some(old) if !old.run_id.is_empty() && old.run_id == info.run_id => Verdict::NotYet {
                reason: "the old server is still behind the URL".into(),
            },
            _ if info.is_primary() && data_plan.as_deref() == Some(t.to.as_str()) => {
                Verdict::Live {
                    proof: format!("run_id {}", info.run_id),
                }
            }
            _ => Verdict::NotYet {
                reason: format!("Redis answers as {}", info.role),
            },
        },
    })
}
