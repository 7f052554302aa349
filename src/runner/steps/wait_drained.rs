//! The wait-drained step: no writer dyno listed, and Redis quiet.

use std::time::{Duration, Instant};

use super::{Pacer, StepCtx, duration_text};
use crate::plan::facts::ServerIdentity;
use crate::runner::capture::verify_options;
use crate::runner::evidence;
use crate::runner::ledger::Ledger;
use crate::runner::record::Record;
use crate::runner::{RunEvent, StepError};
use crate::verify::{self, CommandClasses, WriteMark, WriteVerdict};

/// How long the server must show no write to count as drained. A writer slower
/// than this is caught by the counter checks after the snapshot and before the plan change.
const QUIET: Duration = Duration::from_millis(300);
/// How often Redis is polled while draining (no API calls involved).
const DRAIN_POLL: Duration = Duration::from_millis(100);
/// A foreign client idle at least this long (CLIENT LIST counts whole seconds) is not writing.
const CLIENT_IDLE_SECS: u64 = 1;

/// The drain's result. Each add-on's write evidence when it ended (the mark the snapshot, the
/// plan change, the catch-up and the move check again) is journaled with its identity, not
/// returned: a resumed run must find it too.
pub(in crate::runner) struct Drained {
    /// The step's line.
    pub note: String,
}

/// Drained when no writer dyno is listed and Redis shows no foreign client that could be
/// writing: the server has shown no write for [`QUIET`] (its write evidence, which a
/// background save cannot wipe: `verify::writemark`) and every client that
/// is not upshift's own has been idle for a second. Platform connections (Heroku keeps its
/// own) are idle at most, so they do not hold the run up; a rogue writer does, and the
/// timeout names it. The evidence when the quiet period began is journaled as the mark.
///
/// A server that refuses `CLIENT` (managed Redis services do) is judged by what writes:
/// the writer dynos are gone and the server shows no write; the note and the journal
/// say so. The identity of each server (`run_id`, limits) is journaled at the end: the
/// wait after the plan change demands a different one (see [`evidence`]).
///
/// # Guarantees
/// Read-only: it only looks, so repeating it after a crash waits again.
pub(in crate::runner) async fn run(
    ctx: &StepCtx<'_>,
    log: &mut Ledger,
    timeout: Duration,
) -> Result<Drained, StepError> {
    let mut pacer = ctx.pacer(timeout, true);
    // Phase 1: the platform stops the dynos (API calls, polled with back-off).
    loop {
        let dynos = ctx.client().dynos(ctx.app()).await?;
        let lingering: Vec<String> = dynos
            .iter()
            .filter(|d| ctx.request.params.writers.contains(&d.process_type))
            .map(|d| format!("{} ({})", d.name, d.state))
            .collect();
        if lingering.is_empty() {
            break;
        }
        ctx.report(&RunEvent::Waiting {
            subject: "writers".into(),
            status: format!("dynos still listed: {}", lingering.join(", ")),
        });
        if !ctx.pace(&mut pacer).await? {
            return Err(StepError::failed(format!(
                "the writer dynos did not stop within {}: {}; check `heroku ps -a {}`",
                duration_text(timeout),
                lingering.join(", "),
                ctx.app()
            )));
        }
    }
    // Phase 2: Redis goes quiet (no API calls: the URLs are read once, Redis is polled fast).
    let mut servers = Vec::new();
    for t in ctx.targets() {
        let url = ctx.current_url(&t).await?;
        let opts = verify_options(&ctx.config().verify, &t.from, "drain");
        servers.push((t, url, opts));
    }
    // Each server's reading when its quiet period began: every later one is judged against
    // it, so writes a save hid in between still count (see `verify::writemark`).
    let mut last: Vec<Option<(WriteMark, Instant)>> = vec![None; servers.len()];
    let mut classes: Vec<CommandClasses> =
        servers.iter().map(|_| CommandClasses::default()).collect();
    let mut identities: Vec<Option<ServerIdentity>> = vec![None; servers.len()];
    // Servers that refuse CLIENT (managed services do): drained is decided by what
    // writes, the write evidence, alone.
    let mut no_client_list: Vec<String> = Vec::new();
    let mut fast = Pacer::fixed(DRAIN_POLL, pacer.deadline, true);
    loop {
        let mut busy = Vec::new();
        for (i, (t, url, opts)) in servers.iter().enumerate() {
            let (info, reading) = match verify::writemark::read(url, opts, &mut classes[i]).await {
                Ok(read) => read,
                Err(e) if e.refusal().is_some() => {
                    busy.push(at_limit(&t.label));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            identities[i] = Some(evidence::identity(&info));
            let still = last[i].as_ref().and_then(|(mark, since)| {
                let verdict = verify::writemark::judge(mark, &reading, |n| classes[i].is_write(n));
                (verdict == WriteVerdict::Quiet).then_some(*since)
            });
            // A write, or a reading that cannot be judged quiet (a save where the server hides
            // its command counts): the quiet period starts again from this reading.
            let quiet_since = still.unwrap_or_else(|| {
                last[i] = Some((reading, Instant::now()));
                Instant::now()
            });
            let writes_quiet = quiet_since.elapsed() >= QUIET;
            let clients = if no_client_list.contains(&t.name) {
                Vec::new()
            } else {
                match verify::client_list(url, opts).await {
                    Ok(clients) => clients,
                    Err(e) if e.is_command_refused() => {
                        no_client_list.push(t.name.clone());
                        Vec::new()
                    }
                    Err(e) if e.refusal().is_some() => {
                        busy.push(at_limit(&t.label));
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            for c in clients {
                // Replicas and the platform's monitoring are connected and busy, but never
                // write: only a client whose last command can write holds us up.
                if !c.is_upshift()
                    && c.may_write()
                    && (!writes_quiet || c.idle_secs < CLIENT_IDLE_SECS)
                {
                    busy.push(format!(
                        "{}: {} (name {:?}, connected {}s, idle {}s, last command {})",
                        t.label, c.addr, c.name, c.age_secs, c.idle_secs, c.cmd
                    ));
                }
            }
            if !writes_quiet && busy.is_empty() {
                busy.push(format!(
                    "{}: writes in the last {}",
                    t.label,
                    duration_text(QUIET)
                ));
            }
        }
        if busy.is_empty() {
            for (((t, _, _), mark), identity) in servers.iter().zip(&last).zip(&identities) {
                if let Some(identity) = identity {
                    log.record(Record::OldServer {
                        addon: t.name.clone(),
                        identity: identity.clone(),
                        writes: mark.as_ref().map(|(mark, _)| mark.changes),
                        mark: mark.as_ref().map(|(mark, _)| mark.clone()),
                    })?;
                }
            }
            let refused = if no_client_list.is_empty() {
                String::new()
            } else {
                let text = format!(
                    "CLIENT LIST refused by {}: decided by the write evidence alone",
                    servers
                        .iter()
                        .filter(|(t, _, _)| no_client_list.contains(&t.name))
                        .map(|(t, _, _)| t.label.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                log.record(Record::Note {
                    message: format!("drain: {text}"),
                })?;
                format!(" ({text})")
            };
            return Ok(Drained {
                note: format!(
                    "no writer dyno, no write for {}{refused}",
                    duration_text(QUIET)
                ),
            });
        }
        ctx.report(&RunEvent::Waiting {
            subject: "writers".into(),
            status: format!("{} client(s) still active", busy.len()),
        });
        if !ctx.pace(&mut fast).await? {
            return Err(StepError::failed(format!(
                "the writers did not stop within {}: clients still active: {}. Something \
                 else writes to Redis (another process type? a one-off dyno? an external \
                 client?): add it with --writers or stop it, then run again",
                duration_text(timeout),
                busy.join("; ")
            )));
        }
    }
}

/// A server that turns the drain check away at its connection limit is not drained yet. A plan
/// at its limit is why many upgrade, and the guard lets such a run start because stopping the
/// writers frees the slots; right after the scale-down the stopped dynos' connections can still
/// hold them for a moment. Failing there rolled back the very change that frees them (seen as
/// a flaky test, `matrix::optimistic`, 13 ms after the scale-down).
fn at_limit(label: &str) -> String {
    format!(
        "{label}: at its connection limit (the stopped dynos' connections are not closed yet, or \
         another client holds them)"
    )
}
