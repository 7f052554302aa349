//! Each step's effect and each compensation. Every function here re-reads the platform before
//! it writes and is safe to repeat after a crash.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::heroku::models::AddOnState;
use futures::future::join_all;

use super::record::Record;
use super::{ActiveRun, AddonReport, RunEvent, StepError, StepOk, Target, error_chain};
use crate::engine::Action;
use crate::heroku::models::{DynoState, FormationUpdate};
use crate::plan::facts::DataPolicy;
use crate::plan::facts::ServerIdentity;
use crate::plan::guards;
use crate::plans;
use crate::runner::capture::{self, verify_options};
use crate::runner::evidence::{self, Observed, Verdict};
use crate::runner::reporter::Reporter;
use crate::verify::{self, RedisUrl, RestoreSelection};
use crate::window::gate;

/// Keys to name in journals and messages.
const EXAMPLES: usize = 20;
/// A provisioning that shows the old plan, settled, this long after the change request, with
/// no sign of work in between, is taken as refused rather than not yet started.
const START_GRACE: Duration = Duration::from_secs(60);

/// How long a new server may refuse the URL's password before the wait gives up. A credential
/// rotation settles within seconds; past that, waiting out the provisioning timeout (minutes)
/// only lengthens the downtime of a run that needs an operator anyway.
const AUTH_GRACE: Duration = Duration::from_secs(15);
/// How long the server's write counter must stand still to count as drained. A writer slower
/// than this is caught by the counter checks after the snapshot and before the plan change.
const QUIET: Duration = Duration::from_millis(300);
/// How often Redis is polled while draining (no API calls involved).
const DRAIN_POLL: Duration = Duration::from_millis(100);
/// A foreign client idle at least this long (CLIENT LIST counts whole seconds) is not writing.
const CLIENT_IDLE_SECS: u64 = 1;

/// Forwards the verifier's key counts to the reporter.
struct KeysProgress {
    reporter: Arc<dyn Reporter>,
    subject: String,
    total: AtomicU64,
    done: AtomicU64,
    /// Value bytes read, for the summary's "bytes verified".
    bytes: AtomicU64,
}

impl verify::Progress for KeysProgress {
    fn total(&self, keys: u64) {
        self.total.store(keys, Ordering::Relaxed);
    }
    fn advance(&self, keys: u64, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let done = self.done.fetch_add(keys, Ordering::Relaxed) + keys;
        self.reporter.report(&RunEvent::Keys {
            subject: self.subject.clone(),
            done,
            total: self.total.load(Ordering::Relaxed),
        });
    }
}

/// Paces a wait: adaptive delays, a deadline, interrupts.
struct Pacer {
    delay: Duration,
    deadline: Instant,
    abortable: bool,
    /// Keep `delay` as it is (fast Redis polls that cost no API call).
    fixed: bool,
}

/// Whether Redis' write counter (`rdb_changes_since_last_save`) shows writes between two
/// readings. A background save resets it to 0: a lower reading means a save, and any non-zero
/// value after one means writes since.
pub(super) fn writes_seen(before: u64, now: u64) -> bool {
    if now >= before {
        now != before
    } else {
        now != 0
    }
}

/// The Data API's `/wait` in words; Heroku may leave `message` out (issue 11, 5(e)).
fn wait_text(wait: &crate::heroku::models::RedisWait) -> String {
    match (wait.message.is_empty(), wait.waiting) {
        (false, _) => wait.message.clone(),
        (true, true) => "waiting".into(),
        (true, false) => "not waiting".into(),
    }
}

fn duration_text(d: Duration) -> String {
    crate::playbook::duration::format(d)
}

impl ActiveRun<'_> {
    fn pacer(&self, timeout: Duration, abortable: bool) -> Pacer {
        Pacer {
            delay: self.runner.config.poll.initial,
            deadline: Instant::now() + timeout,
            abortable,
            fixed: false,
        }
    }

    /// Sleeps until the next poll. `Ok(false)` when the deadline has passed.
    async fn pace(&self, pacer: &mut Pacer) -> Result<bool, StepError> {
        let now = Instant::now();
        if now >= pacer.deadline {
            return Ok(false);
        }
        let until = (now + pacer.delay).min(pacer.deadline);
        // The wait races the interrupts rather than polling them: the first ends an abortable
        // wait (roll back), the second any wait (leave resumable).
        let interrupts = &self.runner.interrupts;
        tokio::select! {
            biased;
            () = interrupts.reached(if pacer.abortable { 1 } else { 2 }) => {
                return Err(if interrupts.count() >= 2 {
                    StepError::Interrupted
                } else {
                    StepError::Aborted
                });
            }
            () = tokio::time::sleep(until.saturating_duration_since(now)) => {}
        }
        if !pacer.fixed {
            pacer.delay = self
                .runner
                .config
                .poll
                .next(pacer.delay, self.runner.client.rate_limit_remaining());
        }
        Ok(true)
    }

    /// Sleeps `pause` between compensation attempts. A second interrupt leaves at once (the
    /// run stays resumable); a first one changes nothing while rolling back.
    pub(super) async fn nap(&self, pause: Duration) -> Result<(), StepError> {
        tokio::select! {
            biased;
            () = self.runner.interrupts.stopped() => Err(StepError::Interrupted),
            () = tokio::time::sleep(pause) => Ok(()),
        }
    }

    fn jrecord(&mut self, record: &Record) -> Result<(), StepError> {
        self.record(record).map_err(|e| {
            StepError::failed(format!("cannot write the journal: {}", error_chain(&e)))
        })
    }

    fn capture_ref(&self) -> Result<&crate::plan::facts::Capture, StepError> {
        self.capture
            .as_ref()
            .ok_or_else(|| StepError::failed("no captured facts in this run's journal"))
    }

    /// The Redis URL of a target as the app's config var says now (it changes with a plan
    /// change). The URL is a secret: it lives only in memory.
    async fn current_url(&self, target: &Target) -> Result<RedisUrl, StepError> {
        let vars = self.runner.client.config_vars(&self.request.app).await?;
        let var = target
            .url_var
            .as_deref()
            .ok_or_else(|| StepError::failed(format!("{} lists no config var", target.label)))?;
        let raw = vars.get(var).ok_or_else(|| {
            StepError::failed(format!(
                "config var {var} of {} is not set on {}",
                target.label, self.request.app
            ))
        })?;
        raw.parse::<RedisUrl>()
            .map_err(|e| StepError::failed(format!("config var {var}: {e}")))
    }

    fn progress(&self, subject: &str) -> KeysProgress {
        KeysProgress {
            reporter: self.runner.reporter.clone(),
            subject: subject.to_owned(),
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    // ---- steps -------------------------------------------------------------------------------

    pub(super) async fn step_capture(&mut self) -> Result<StepOk, StepError> {
        let unfinished: Vec<String> =
            super::unfinished_runs(&self.runner.config.state, &self.request.app)
                .map_err(|e| StepError::failed(error_chain(&e)))?
                .into_iter()
                .filter(|id| *id != self.run_id)
                .collect();
        let capture = capture::capture(
            &self.runner.client,
            &self.request,
            self.runner.config.state.root(),
            unfinished,
            jiff::Timestamp::now(),
        )
        .await?;
        self.jrecord(&Record::Captured {
            capture: capture.clone(),
        })?;
        let note = capture
            .formation
            .iter()
            .map(|p| format!("{}={}:{}", p.process_type, p.quantity, p.size))
            .collect::<Vec<_>>()
            .join(" ");
        self.capture = Some(capture);
        Ok(StepOk::Done(Some(format!("formation {note}"))))
    }

    pub(super) fn step_guard(&mut self) -> StepOk {
        let Some(capture) = self.capture.clone() else {
            return StepOk::Blocked;
        };
        let capture = &capture;
        let mut guards = guards::evaluate(&self.request, capture);
        // The window cutoff is decided here, the last step before the first write: once the
        // writers stop, the run finishes or rolls back whatever the clock says.
        let now = jiff::Timestamp::now();
        let estimate = self.runner.estimate(&self.request, capture);
        guards.extend(
            self.runner
                .unattended_guards(&self.request, capture, &estimate, now, false),
        );
        let blocked = guards::blocked(&guards);
        if let Some(window) = &self.runner.config.window
            && let gate::Gate::Open(occ) = gate::gate(window, now)
        {
            self.window = Some((occ, estimate.run));
        }
        for g in guards.iter().filter(|g| g.verdict != guards::Verdict::Pass) {
            let subject = g
                .subject
                .as_deref()
                .map_or(String::new(), |s| format!("{s}: "));
            // A warning is already shown as one ("warning: …"); only a block says its verdict.
            let verdict = match g.verdict {
                guards::Verdict::Warn => String::new(),
                v => format!("{} ", v.label()),
            };
            self.report_event(&RunEvent::Warning {
                message: format!("{verdict}{subject}{}", g.detail),
            });
        }
        if self.record(&Record::Guards { guards }).is_err() {
            return StepOk::Blocked;
        }
        if blocked {
            StepOk::Blocked
        } else {
            StepOk::Done(None)
        }
    }

    pub(super) async fn step_maintenance(&mut self) -> Result<StepOk, StepError> {
        if !self.request.params.maintenance {
            return Ok(StepOk::Done(Some("not requested".into())));
        }
        let app = self.runner.client.app(&self.request.app).await?;
        if app.maintenance {
            return Ok(StepOk::Done(Some("already on".into())));
        }
        let w = self
            .runner
            .client
            .set_maintenance(&self.request.app, true)
            .await?;
        self.jrecord(&Record::Effect {
            what: "maintenance on".into(),
            request_id: Some(w.request_id),
        })?;
        Ok(StepOk::Done(Some("maintenance on".into())))
    }

    pub(super) async fn step_scale(&mut self) -> Result<StepOk, StepError> {
        let capture = self.capture_ref()?;
        let updates: Vec<FormationUpdate> = self
            .request
            .params
            .writers
            .iter()
            .filter(|w| capture.formation.iter().any(|p| &p.process_type == *w))
            .map(|w| FormationUpdate {
                process_type: w.clone(),
                quantity: Some(0),
                size: None,
            })
            .collect();
        let what = self.apply_formation(&updates, "scale").await?;
        if self.downtime_since.is_none() {
            self.downtime_since = Some(Instant::now());
            self.jrecord(&Record::Downtime { started: true })?;
            self.report_event(&RunEvent::Downtime { started: true });
        }
        Ok(StepOk::Done(Some(what)))
    }

    /// Drained when no writer dyno is listed and Redis shows no foreign client that could be
    /// writing: the server's write counter has not moved for [`QUIET`] and every client that
    /// is not upshift's own has been idle for a second. Platform connections (Heroku keeps its
    /// own) are idle at most, so they do not hold the run up; a rogue writer does, and the
    /// timeout names it. The counter at the end is kept: the snapshot and the plan change
    /// check it again, so a writer slower than `QUIET` is still caught before the point of no
    /// return.
    ///
    /// A server that refuses `CLIENT` (managed Redis services do) is judged by what writes:
    /// the writer dynos are gone and the write counter is still; the note and the journal
    /// say so. The identity of each server (`run_id`, limits) is journaled at the end: the
    /// wait after the plan change demands a different one (see [`evidence`]).
    pub(super) async fn step_wait_drained(
        &mut self,
        timeout: Duration,
    ) -> Result<StepOk, StepError> {
        let mut pacer = self.pacer(timeout, true);
        // Phase 1: the platform stops the dynos (API calls, polled with back-off).
        loop {
            let dynos = self.runner.client.dynos(&self.request.app).await?;
            let lingering: Vec<String> = dynos
                .iter()
                .filter(|d| self.request.params.writers.contains(&d.process_type))
                .map(|d| format!("{} ({})", d.name, d.state))
                .collect();
            if lingering.is_empty() {
                break;
            }
            self.report_event(&RunEvent::Waiting {
                subject: "writers".into(),
                status: format!("dynos still listed: {}", lingering.join(", ")),
            });
            if !self.pace(&mut pacer).await? {
                return Err(StepError::failed(format!(
                    "the writer dynos did not stop within {}: {}; check `heroku ps -a {}`",
                    crate::playbook::duration::format(timeout),
                    lingering.join(", "),
                    self.request.app
                )));
            }
        }
        // Phase 2: Redis goes quiet (no API calls: the URLs are read once, Redis is polled fast).
        let mut servers = Vec::new();
        for t in self.targets() {
            let url = self.current_url(&t).await?;
            let opts = verify_options(&self.runner.config.verify, &t.from, "drain");
            servers.push((t, url, opts));
        }
        let mut last: Vec<Option<(u64, Instant)>> = vec![None; servers.len()];
        let mut identities: Vec<Option<ServerIdentity>> = vec![None; servers.len()];
        // Servers that refuse CLIENT (managed services do): drained is decided by what
        // writes, the write counter, alone.
        let mut no_client_list: Vec<String> = Vec::new();
        let mut fast = Pacer {
            delay: DRAIN_POLL,
            deadline: pacer.deadline,
            abortable: true,
            fixed: true,
        };
        loop {
            let mut busy = Vec::new();
            for (i, (t, url, opts)) in servers.iter().enumerate() {
                let info = verify::server_info(url, opts).await?;
                let writes = info.changes_since_save;
                identities[i] = Some(evidence::identity(&info));
                let quiet_since = match last[i] {
                    Some((w, since)) if !writes_seen(w, writes) => since,
                    _ => {
                        last[i] = Some((writes, Instant::now()));
                        Instant::now()
                    }
                };
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
                        Err(e) => return Err(e.into()),
                    }
                };
                for c in clients {
                    // Replicas and the platform's monitoring are connected and busy, but
                    // never write: only a client whose last command can write holds us up.
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
                    if let Some((writes, _)) = mark {
                        self.write_marks.insert(t.name.clone(), *writes);
                    }
                    if let Some(identity) = identity {
                        self.jrecord(&Record::OldServer {
                            addon: t.name.clone(),
                            identity: identity.clone(),
                        })?;
                        self.old_servers.insert(t.name.clone(), identity.clone());
                    }
                }
                let refused = if no_client_list.is_empty() {
                    String::new()
                } else {
                    let text = format!(
                        "CLIENT LIST refused by {}: decided by the write counter alone",
                        servers
                            .iter()
                            .filter(|(t, _, _)| no_client_list.contains(&t.name))
                            .map(|(t, _, _)| t.label.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    self.jrecord(&Record::Note {
                        message: format!("drain: {text}"),
                    })?;
                    format!(" ({text})")
                };
                return Ok(StepOk::Done(Some(format!(
                    "no writer dyno, no write for {}{refused}",
                    duration_text(QUIET)
                ))));
            }
            self.report_event(&RunEvent::Waiting {
                subject: "writers".into(),
                status: format!("{} client(s) still active", busy.len()),
            });
            if !self.pace(&mut fast).await? {
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

    /// Fails when a server saw writes since the drain ended: something still writes, and the
    /// snapshot or the plan change would lose it. Before the point of no return, so the run
    /// rolls back cleanly. Skipped for add-ons without a mark (a resumed run).
    async fn check_no_new_writes(&self, when: &str) -> Result<(), StepError> {
        for t in self.targets() {
            let Some(mark) = self.write_marks.get(&t.name).copied() else {
                continue;
            };
            let url = self.current_url(&t).await?;
            let opts = verify_options(&self.runner.config.verify, &t.from, "check");
            let now = verify::server_info(&url, &opts).await?.changes_since_save;
            if writes_seen(mark, now) {
                return Err(StepError::failed(format!(
                    "{} was written to {when} although the writers are stopped (write counter \
                     {mark} -> {now}): something else writes to it; find it with `CLIENT LIST`, \
                     add its process type to --writers or stop it, then run again",
                    t.label
                )));
            }
        }
        Ok(())
    }

    pub(super) async fn step_snapshot(&mut self) -> Result<StepOk, StepError> {
        let dir = self.runner.config.state.run_dir(&self.run_id);
        let mut jobs = Vec::new();
        for t in self.targets() {
            let url = self.current_url(&t).await?;
            let opts = verify_options(&self.runner.config.verify, &t.from, "snapshot");
            let file = dir.join(format!("snapshot-{}.ups", t.name));
            let progress = self.progress(&t.label);
            jobs.push(async move {
                let summary = verify::snapshot(&url, &file, &opts, &progress).await;
                (t, file, summary)
            });
        }
        let mut notes = Vec::new();
        for (t, file, summary) in join_all(jobs).await {
            let summary = summary?;
            self.jrecord(&Record::Snapshot {
                addon: t.name.clone(),
                file: file.display().to_string(),
                keys: summary.keys,
                digest: summary.digest.clone(),
            })?;
            notes.push(format!("{} {} keys", t.label, summary.keys));
            self.snapshots.insert(t.name.clone(), file);
        }
        self.check_no_new_writes("during the snapshot").await?;
        Ok(StepOk::Done(Some(notes.join(", "))))
    }

    pub(super) async fn step_change_plan(&mut self) -> Result<StepOk, StepError> {
        self.check_no_new_writes("after the snapshot").await?;
        let client = &self.runner.client;
        let app = &self.request.app;
        let jobs = self.targets().into_iter().map(|t| async move {
            let current = client.addon(app, &t.name).await?;
            if plans::bare_name(&current.plan.name) == t.to {
                return Ok::<_, StepError>((t, None));
            }
            let full = format!("{}:{}", plans::HEROKU_REDIS, t.to);
            let w = client.change_addon_plan(app, &t.name, &full).await?;
            Ok((t, Some(w.request_id)))
        });
        let mut notes = Vec::new();
        let mut first_error = None;
        let results = join_all(jobs).await;
        // Test builds only: die after the platform accepted the PATCH and before the journal
        // says so, the one window a crash leaves the journal behind the platform.
        #[cfg(feature = "failpoints")]
        if std::env::var_os("UPSHIFT_FAILPOINT_AFTER_PATCH").is_some()
            && results.iter().any(|r| matches!(r, Ok((_, Some(_)))))
        {
            std::process::abort();
        }
        for result in results {
            match result {
                Ok((t, Some(request_id))) => {
                    self.jrecord(&Record::Effect {
                        what: format!("plan change {} {} -> {}", t.label, t.from, t.to),
                        request_id: Some(request_id),
                    })?;
                    notes.push(format!("{} -> {}", t.label, t.to));
                }
                Ok((t, None)) => notes.push(format!("{} already on {}", t.label, t.to)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(StepOk::Done(Some(notes.join(", ")))),
        }
    }

    /// Waits until every target's new server is proven live: the platform and the Data API
    /// agree on the target plan, and the server behind the config var is a primary that the
    /// old server cannot be (see [`evidence`]), all of it holding for the settle period.
    /// Only then may verify read it, and the writers come back onto it.
    pub(super) async fn step_wait_provisioned(
        &mut self,
        timeout: Duration,
    ) -> Result<StepOk, StepError> {
        let mut pacer = self.pacer(timeout, true);
        let started = Instant::now();
        let settle = self.runner.config.settle;
        let targets = self.targets();
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
                let addon = self.runner.client.addon(&self.request.app, &t.name).await?;
                let wait = self.runner.client.redis_wait(&t.name).await?;
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
                    let status = match self.judge_target(t, &addon, &wait).await {
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
                        Err(e) if e.is_auth_failure() => {
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
                        Err(e) => {
                            refused_since[i] = None;
                            live_since[i] = None;
                            format!("Redis not answering yet ({e})")
                        }
                    };
                    statuses.push(format!("{}: {status}", t.label));
                    evidence_status = Some(status);
                } else if !busy
                    && plan == t.from
                    && (seen_busy[i] || started.elapsed() > START_GRACE)
                {
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
                self.report_event(&RunEvent::Waiting {
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
                return Ok(StepOk::Done(Some(note)));
            }
            if !self.pace(&mut pacer).await? {
                return Err(StepError::failed(format!(
                    "provisioning did not finish within {}: {}",
                    crate::playbook::duration::format(timeout),
                    statuses.join("; ")
                )));
            }
        }
    }

    /// One look at a target that the platform says is provisioned on its new plan: the Data
    /// API's plan and the server behind the config var now, judged by [`evidence::judge`]
    /// against the server recorded before the change.
    ///
    /// # Errors
    /// The config var cannot be read (a step error inside), or Redis cannot (returned as the
    /// verifier's error so the caller can tell a refused password apart).
    async fn judge_target(
        &self,
        t: &Target,
        addon: &crate::heroku::models::AddOn,
        wait: &crate::heroku::models::RedisWait,
    ) -> Result<Verdict, verify::VerifyError> {
        let data_plan = self
            .runner
            .client
            .redis_database(&t.name)
            .await
            .ok()
            .map(|d| plans::bare_name(&d.plan).to_owned());
        let url = match self.current_url(t).await {
            Ok(url) => url,
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
        let opts = verify_options(&self.runner.config.verify, &t.to, "wait");
        let info = verify::server_info(&url, &opts).await?;
        let plan = plans::bare_name(&addon.plan.name);
        let observed = Observed {
            state: &addon.state,
            plan,
            data_waiting: wait.waiting,
            data_plan: data_plan.as_deref(),
            server: &info,
        };
        Ok(match (plans::find(&t.from), plans::find(&t.to)) {
            (Some(from), Some(to)) => {
                evidence::judge(&from, &to, self.old_servers.get(&t.name), &observed)
            }
            // A plan outside upshift's catalog: no limits to compare, the identity only.
            _ => match self.old_servers.get(&t.name) {
                Some(old) if !old.run_id.is_empty() && old.run_id == info.run_id => {
                    Verdict::NotYet {
                        reason: "the old server is still behind the URL".into(),
                    }
                }
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

    pub(super) async fn step_verify(&mut self) -> Result<StepOk, StepError> {
        let mut notes = Vec::new();
        for t in self.targets() {
            let note = match self.verify_target(&t, true).await {
                Ok(note) => note,
                // A cache keeps its looser rule: an unreadable cache is reported, not fatal
                // (its loss is tolerated). Critical data has no such escape: an error is a
                // failure, and the engine keeps the writers stopped until a verify succeeds.
                Err(StepError::Failed { message, .. }) if t.policy == DataPolicy::Cache => {
                    self.report_event(&RunEvent::Warning {
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
            self.check_redis_settings(&t).await?;
        }
        Ok(StepOk::Done(Some(notes.join("; "))))
    }

    /// Compares one add-on with its snapshot; repairs critical data. `Ok` with a note when the
    /// data is whole (or a cache), a data-unsafe failure otherwise.
    async fn verify_target(&mut self, t: &Target, record: bool) -> Result<String, StepError> {
        let file = self
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
        let url = self.current_url(t).await?;
        let plan = self
            .runner
            .client
            .addon(&self.request.app, &t.name)
            .await
            .map_or_else(
                |_| t.to.clone(),
                |a| plans::bare_name(&a.plan.name).to_owned(),
            );
        let opts = verify_options(&self.runner.config.verify, &plan, "verify");
        let progress = self.progress(&t.label);
        let diff = verify::diff(&url, &file, &opts, &progress).await?;
        let differences = diff.counts.failures();
        let examples: Vec<String> = diff
            .differences
            .iter()
            .filter(|d| d.kind.is_failure())
            .take(EXAMPLES)
            .map(|d| format!("{} ({})", d.key, d.kind.label()))
            .collect();
        let mut repaired = 0;
        let mut whole = diff.is_equal();
        if !whole && t.policy == DataPolicy::Critical {
            self.report_event(&RunEvent::Warning {
                message: format!(
                    "{}: {differences} key(s) differ from the snapshot ({}); repairing from the snapshot",
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
            let summary =
                verify::restore(&url, &file, selection, &opts, &verify::NoProgress).await?;
            repaired = summary.restored + summary.deleted;
            whole = summary.remaining.is_equal();
        }
        if record {
            self.jrecord(&Record::Verified {
                addon: t.name.clone(),
                keys: diff.before_keys,
                digest_equal: diff.is_equal(),
                differences,
                repaired,
                examples: examples.clone(),
            })?;
        }
        self.reports.insert(
            t.name.clone(),
            AddonReport {
                label: t.label.clone(),
                addon: t.name.clone(),
                from: t.from.clone(),
                to: plan.clone(),
                keys_verified: diff.before_keys,
                bytes_verified: progress.bytes.load(Ordering::Relaxed),
                differences,
                repaired,
            },
        );
        match (whole, t.policy) {
            (true, _) if differences == 0 => {
                Ok(format!("{} {} keys equal", t.label, diff.before_keys))
            }
            (true, _) => Ok(format!(
                "{} {} keys equal after repairing {repaired}",
                t.label, diff.before_keys
            )),
            (false, DataPolicy::Cache) => {
                self.report_event(&RunEvent::Warning {
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

    /// The Data API settings must survive the change; a lost one is put back and reported.
    async fn check_redis_settings(&mut self, t: &Target) -> Result<(), StepError> {
        let Some(before) = self
            .capture_ref()?
            .found()
            .find(|a| a.name == t.name)
            .and_then(|a| a.redis_config.clone())
        else {
            return Ok(());
        };
        let now = self.runner.client.redis_config(&t.name).await?.values();
        if now != before {
            let w = self
                .runner
                .client
                .update_redis_config(&t.name, &before)
                .await?;
            self.jrecord(&Record::Effect {
                what: format!("redis settings of {} restored", t.label),
                request_id: Some(w.request_id),
            })?;
            self.report_event(&RunEvent::Warning {
                message: format!(
                    "{}: the plan change lost Redis settings ({now:?} instead of {before:?}); restored",
                    t.label
                ),
            });
        }
        Ok(())
    }

    pub(super) async fn step_restore_formation(&mut self) -> Result<StepOk, StepError> {
        let note = self.restore_formation().await?;
        self.restore_maintenance().await?;
        Ok(StepOk::Done(Some(note)))
    }

    pub(super) async fn step_health(&mut self, timeout: Duration) -> Result<StepOk, StepError> {
        let mut pacer = self.pacer(timeout, false);
        let capture = self.capture_ref()?.clone();
        // Clients come back over seconds after the dynos are `up` (pool by pool): judge the
        // headroom on a count that has held for the settle period and has come back to what
        // the same formation held before the change (90% of it; a pool may open lazily), not
        // on the first reading.
        let mut counts: BTreeMap<String, super::steady::Steady> = BTreeMap::new();
        let before: BTreeMap<String, u64> = capture
            .found()
            .filter_map(|a| {
                a.redis
                    .as_ref()
                    .map(|r| (a.name.clone(), u64::from(r.connected_clients)))
            })
            .collect();
        loop {
            let dynos = self.runner.client.dynos(&self.request.app).await?;
            let mut missing = Vec::new();
            let mut crashed = Vec::new();
            for w in &self.request.params.writers {
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
                for t in self.targets() {
                    let url = self.current_url(&t).await?;
                    let opts = verify_options(&self.runner.config.verify, &t.to, "health");
                    let info = verify::server_info(&url, &opts).await?;
                    let clients = info.connected_clients.saturating_sub(1);
                    let steady = counts
                        .entry(t.name.clone())
                        .or_insert_with(|| super::steady::Steady::new(self.runner.config.settle))
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
                        .map(|n| StepOk::Done(Some(n)))
                        .map_err(StepError::failed);
                }
                judged = Some(verdict);
            }
            if !self.pace(&mut pacer).await? {
                // Dynos up but the counts still moving at the timeout: judge the last reading
                // and say it was not steady.
                if let Some(verdict) = judged {
                    return verdict
                        .map(|n| {
                            StepOk::Done(Some(format!(
                                "{n} (not settled at the timeout: fewer clients than before the change, or still moving)"
                            )))
                        })
                        .map_err(StepError::failed);
                }
                return Err(StepError::failed(format!(
                    "the writers did not come up within {}: {}{}; check `heroku ps -a {}` and `heroku logs -a {}`",
                    crate::playbook::duration::format(timeout),
                    missing.join(", "),
                    if crashed.is_empty() {
                        String::new()
                    } else {
                        format!(" (crashed: {})", crashed.join(", "))
                    },
                    self.request.app,
                    self.request.app
                )));
            }
        }
    }

    // ---- compensations -----------------------------------------------------------------------
    /// Sends one batch formation update (absolute, so repeatable) and journals it with its
    /// request id. Returns the `type=quantity[:size]` summary.
    async fn apply_formation(
        &mut self,
        updates: &[FormationUpdate],
        label: &str,
    ) -> Result<String, StepError> {
        let what = updates
            .iter()
            .map(|u| {
                let size = u.size.as_deref().map_or(String::new(), |s| format!(":{s}"));
                format!("{}={}{size}", u.process_type, u.quantity.unwrap_or(0))
            })
            .collect::<Vec<_>>()
            .join(" ");
        let w = self
            .runner
            .client
            .update_formation(&self.request.app, updates)
            .await?;
        self.jrecord(&Record::Effect {
            what: format!("{label} {what}"),
            request_id: Some(w.request_id),
        })?;
        Ok(what)
    }

    /// Scales the writers back to exactly the captured quantities and sizes. Absolute, so it
    /// is safe to repeat.
    pub(super) async fn restore_formation(&mut self) -> Result<String, StepError> {
        let capture = self.capture_ref()?;
        let updates: Vec<FormationUpdate> = self
            .request
            .params
            .writers
            .iter()
            .filter_map(|w| capture.formation.iter().find(|p| &p.process_type == w))
            .map(|p| FormationUpdate {
                process_type: p.process_type.clone(),
                quantity: Some(p.quantity),
                size: Some(p.size.clone()),
            })
            .collect();
        let what = self.apply_formation(&updates, "restore formation").await?;
        if let Some(since) = self.downtime_since.take() {
            self.downtime += since.elapsed();
            self.jrecord(&Record::Downtime { started: false })?;
            self.report_event(&RunEvent::Downtime { started: false });
        }
        Ok(what)
    }

    /// Puts the maintenance flag back to its captured value.
    pub(super) async fn restore_maintenance(&mut self) -> Result<(), StepError> {
        let want = self.capture_ref()?.maintenance;
        let app = self.runner.client.app(&self.request.app).await?;
        if app.maintenance != want {
            let w = self
                .runner
                .client
                .set_maintenance(&self.request.app, want)
                .await?;
            self.jrecord(&Record::Effect {
                what: format!("maintenance {}", if want { "on" } else { "off" }),
                request_id: Some(w.request_id),
            })?;
        }
        Ok(())
    }

    /// After a failure at or after the plan change: wait until each add-on settles wherever
    /// the platform puts it, then check its data against the snapshot and repair it.
    pub(super) async fn settle_plans(&mut self) -> Result<(), StepError> {
        let timeout = self
            .request
            .playbook
            .step(Action::WaitProvisioned)
            .map_or(Duration::from_secs(2700), |s| s.timeout);
        let mut pacer = self.pacer(timeout, false);
        for t in self.targets() {
            loop {
                let addon = self.runner.client.addon(&self.request.app, &t.name).await?;
                let wait = self.runner.client.redis_wait(&t.name).await?;
                // On the target plan, "settled" needs the same proof as the wait: the
                // platform may say provisioned while the old server still serves.
                // A server that cannot be read at all is left to verify, which then fails
                // and keeps the writers stopped; only a server known to be the old one (or
                // a platform and Data API that disagree) holds the settle up.
                let on_target = plans::bare_name(&addon.plan.name) == t.to;
                let proven = !on_target
                    || !matches!(
                        self.judge_target(&t, &addon, &wait).await,
                        Ok(Verdict::NotYet { .. })
                    );
                if !wait.waiting && addon.state != AddOnState::Provisioning && proven {
                    self.settled_on.insert(
                        t.name.clone(),
                        plans::bare_name(&addon.plan.name).to_owned(),
                    );
                    self.report_event(&RunEvent::Warning {
                        message: format!(
                            "{} settled on {} ({})",
                            t.label,
                            plans::bare_name(&addon.plan.name),
                            addon.state
                        ),
                    });
                    break;
                }
                self.report_event(&RunEvent::Waiting {
                    subject: t.label.clone(),
                    status: wait_text(&wait),
                });
                if !self.pace(&mut pacer).await? {
                    return Err(StepError::Failed {
                        message: format!(
                            "{} is still provisioning after {}: wait with `heroku redis:wait {} -a {}`, then check its data",
                            t.label,
                            crate::playbook::duration::format(timeout),
                            t.name,
                            self.request.app
                        ),
                        data_unsafe: t.policy == DataPolicy::Critical,
                        transient: None,
                    });
                }
            }
            if self.snapshots.contains_key(&t.name) {
                self.verify_target(&t, true).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::writes_seen;

    #[test]
    fn the_write_counter_survives_a_background_save() {
        assert!(!writes_seen(10, 10));
        assert!(writes_seen(10, 11));
        // A save reset it and nothing was written since.
        assert!(!writes_seen(10, 0));
        // A save, then writes.
        assert!(writes_seen(10, 3));
    }
}
