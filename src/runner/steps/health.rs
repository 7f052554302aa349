//! The health step: the writers' dynos up, and each add-on's clients back and under its new
//! plan's limit.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{StepCtx, duration_text};
use crate::heroku::models::DynoState;
use crate::plans;
use crate::runner::StepError;
use crate::runner::capture::verify_options;
use crate::runner::steady::Steady;
use crate::verify;

/// The app is back.
pub(in crate::runner) struct Healthy {
    /// Clients per add-on against its limit, and whether the count settled.
    pub note: String,
}

/// Waits until every writer type has its captured number of dynos `up`, then judges each
/// add-on's client count once it holds steady.
///
/// # Guarantees
/// Read-only: it only looks, so repeating it after a crash looks again.
pub(in crate::runner) async fn run(
    ctx: &StepCtx<'_>,
    timeout: Duration,
) -> Result<Healthy, StepError> {
    let mut pacer = ctx.pacer(timeout, false);
    let capture = ctx.capture()?;
    // Clients come back over seconds after the dynos are `up` (pool by pool): judge the
    // headroom on a count that has held for the settle period and has come back to what
    // the same formation held before the change (90% of it; a pool may open lazily), not
    // on the first reading.
    let mut counts: BTreeMap<String, Steady> = BTreeMap::new();
    let before: BTreeMap<String, u64> = capture
        .found()
        .filter_map(|a| {
            a.redis
                .as_ref()
                .map(|r| (a.name.clone(), u64::from(r.connected_clients)))
        })
        .collect();
    loop {
        let dynos = ctx.client().dynos(ctx.app()).await?;
        let mut missing = Vec::new();
        let mut crashed = Vec::new();
        for w in &ctx.request.params.writers {
            let want = capture.quantity(w);
            let up = dynos
                .iter()
                .filter(|d| &d.process_type == w && d.state == DynoState::Up)
                .count();
            crashed.extend(
                dynos
                    .iter()
                    .filter(|d| &d.process_type == w && d.state == DynoState::Crashed)
                    .map(|d| d.name.clone()),
            );
            if (up as u64) < u64::from(want) {
                missing.push(format!("{w} {up}/{want} up"));
            }
        }
        let mut judged = None;
        if missing.is_empty() {
            let mut notes = Vec::new();
            let mut over = Vec::new();
            let mut moving = false;
            for t in ctx.targets() {
                let url = ctx.current_url(&t).await?;
                let opts = verify_options(&ctx.config().verify, &t.to, "health");
                let info = verify::server_info(&url, &opts).await?;
                let clients = info.connected_clients.saturating_sub(1);
                let steady = counts
                    .entry(t.name.clone())
                    .or_insert_with(|| Steady::new(ctx.request.params.settle))
                    .push(clients, Instant::now());
                let back = before
                    .get(&t.name)
                    .is_none_or(|b| clients.saturating_mul(10) >= b.saturating_mul(9));
                moving |= !(steady && back);
                let limit = plans::find(&t.to).map_or(0, |p| u64::from(p.max_clients));
                notes.push(format!("{} {clients}/{limit} clients", t.label));
                if clients > limit {
                    over.push(format!("{}: {clients} clients > limit {limit}", t.label));
                }
            }
            let verdict = if over.is_empty() {
                Ok(notes.join(", "))
            } else {
                Err(format!(
                    "the app is back but over its connection limit: {}",
                    over.join("; ")
                ))
            };
            if !moving {
                return verdict
                    .map(|note| Healthy { note })
                    .map_err(StepError::failed);
            }
            judged = Some(verdict);
        }
        if !ctx.pace(&mut pacer).await? {
            // Dynos up but the counts still moving at the timeout: judge the last reading
            // and say it was not steady.
            if let Some(verdict) = judged {
                return verdict
                    .map(|n| Healthy {
                        note: format!(
                            "{n} (not settled at the timeout: fewer clients than before the change, or still moving)"
                        ),
                    })
                    .map_err(StepError::failed);
            }
            return Err(StepError::failed(format!(
                "the writers did not come up within {}: {}{}; check `heroku ps -a {}` and `heroku logs -a {}`",
                duration_text(timeout),
                missing.join(", "),
                if crashed.is_empty() {
                    String::new()
                } else {
                    format!(" (crashed: {})", crashed.join(", "))
                },
                ctx.app(),
                ctx.app()
            )));
        }
    }
}
