//! The runner: drives the engine, performs each step's effect through the Heroku client and
//! the verifier, journals before and after every effect, enforces timeouts, and handles
//! interrupts. The only module that both writes to the platform and decides when.
//!
//! Every step re-derives from the platform before it acts (a resumed run trusts the journal
//! for intent and the platform for truth), and every step is idempotent: repeating one after a
//! crash converges on the same state. That is also why a compensation may be tried again
//! after a transient failure until the playbook's `compensation_deadline` (see `backoff`).

mod active;
mod backoff;
pub mod capture;
mod driver;
mod error;
pub mod evidence;
pub mod history;
mod identity;
mod ledger;
pub mod record;
mod runs;
mod steady;
mod steps;
mod target;
/// The events the runner reports, defined in the leaf module [`crate::events`].
pub use crate::events as reporter;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::engine::{Event, Outcome};
use crate::heroku::{Client, HerokuError};
use crate::journal::{self, AppLock, Journal, JournalError, StateDir};
use crate::plan::facts::Capture;
use crate::plan::guards::{self, Guard};
use crate::plan::{self, Plan, RunRequest};
use crate::plan::{drift, review};
use crate::verify::VerifyOptions;
use crate::window::gate;
use crate::window::{EstimateSource, Window};
use active::ActiveRun;
pub use error::{RunError, error_chain};
use error::{StepError, StepOk};
use record::Record;
pub use reporter::{Reporter, RunEvent, Silent};
use runs::{latest_unfinished, unfinished_runs};
pub use runs::{resumable, unfinished};

/// Extra time beyond a step's timeout before the step is cut off from outside.
const STEP_GRACE: Duration = Duration::from_secs(15);
/// How often waits poll: fast at first, backing off to `max`, and down to `slow` when the
/// account's rate limit runs low. The waits sit inside the downtime, so `max` bounds what a
/// poll adds to it; at 1 s a two-add-on wait spends about 4 calls a second, which the pool of
/// 4,500 (refilled 75 a minute) sustains for about half an hour before `slow` takes over.
#[derive(Debug, Clone)]
pub struct PollPolicy {
    pub initial: Duration,
    pub max: Duration,
    pub factor: f64,
    /// Below this many remaining API calls, poll at `slow`.
    pub low_rate_limit: u32,
    pub slow: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(1),
            factor: 1.5,
            low_rate_limit: 300,
            slow: Duration::from_secs(10),
        }
    }
}

impl PollPolicy {
    /// The next delay after `current`, given the API calls left in the account's pool.
    pub fn next(&self, current: Duration, rate_remaining: u32) -> Duration {
        if rate_remaining < self.low_rate_limit {
            return self.slow;
        }
        current.mul_f64(self.factor).min(self.max)
    }
}

/// Interrupt requests, shared with the signal handler: the first asks for a safe stop and a
/// rollback, the second for an immediate, resumable exit. A watch channel rather than a bare
/// counter, so that a running step can wait for the second interrupt (see [`Interrupts::stopped`])
/// instead of polling for it between chunks of work.
#[derive(Debug, Clone)]
pub struct Interrupts(Arc<tokio::sync::watch::Sender<u8>>);

impl Default for Interrupts {
    fn default() -> Self {
        Self(Arc::new(tokio::sync::watch::Sender::new(0)))
    }
}

impl Interrupts {
    /// Records one interrupt (Ctrl-C, SIGTERM).
    pub fn interrupt(&self) {
        self.0.send_modify(|n| *n = n.saturating_add(1));
    }

    /// How many interrupts arrived.
    pub fn count(&self) -> u8 {
        *self.0.borrow()
    }

    /// Resolves once the second interrupt has arrived (at once if it already has). Every step
    /// and compensation races it, so "stop now" acts within a second whatever the step.
    pub async fn stopped(&self) {
        self.reached(2).await;
    }

    /// Resolves once at least `n` interrupts have arrived (at once if they already have).
    pub async fn reached(&self, n: u8) {
        let mut rx = self.0.subscribe();
        // `self` holds the sender, so the channel cannot close while this waits.
        let _ = rx.wait_for(|count| *count >= n).await;
    }
}

/// Runs `work` unless the second interrupt comes first. Then `work` is dropped where it stands,
/// at an await point, as a crash would leave it: the journal says the step started and not that
/// it ended, every step and compensation re-reads the platform and is idempotent, and the files
/// it was writing are only renamed into place when complete, so `upshift resume` repeats it.
async fn unless_stopped<T>(
    interrupts: &Interrupts,
    work: impl std::future::Future<Output = Result<T, StepError>>,
) -> Result<T, StepError> {
    tokio::select! {
        biased;
        () = interrupts.stopped() => Err(StepError::Interrupted),
        result = work => result,
    }
}

/// Runner settings that do not come from the playbook.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub state: StateDir,
    pub verify: VerifyOptions,
    pub poll: PollPolicy,
    /// How long the app lock stays valid without renewal.
    pub lock_lease: Duration,
    /// Provisioning estimate used by `plan` when there is no history.
    pub provisioning_estimate: Duration,
    /// The maintenance window (`--window`): the guard step, the last before the first write,
    /// blocks unless the run and a worst-case rollback fit in what is left of it.
    pub window: Option<Window>,
    /// A reviewed plan (`run --plan`): the guard step blocks when the platform drifted from it
    /// or the plan rebuilt now is not the reviewed one.
    pub reviewed: Option<Reviewed>,
}

/// A reviewed plan (it embeds the state it saw), and the file it came from (for messages).
#[derive(Debug, Clone)]
pub struct Reviewed {
    pub plan: Plan,
    pub file: String,
}

impl RunnerConfig {
    /// Defaults around a state dir.
    pub fn new(state: StateDir) -> Self {
        Self {
            state,
            verify: VerifyOptions::default(),
            poll: PollPolicy::default(),
            lock_lease: Duration::from_secs(3600),
            provisioning_estimate: Duration::from_secs(180),
            window: None,
            reviewed: None,
        }
    }
}

/// One add-on's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AddonReport {
    pub label: String,
    pub addon: String,
    pub from: String,
    pub to: String,
    pub keys_verified: u64,
    /// Value bytes the verify step read back from the new plan.
    pub bytes_verified: u64,
    pub differences: u64,
    pub repaired: u64,
}

/// The reason journaled when a signal (Ctrl-C, SIGTERM, SIGHUP, SIGQUIT) asks a run to stop
/// and roll back. A rollback with this cause is a stop someone asked for, not a failure of
/// the change: it exits 130, not 1 (see [`RunReport::exit_code`]).
pub const INTERRUPT_REASON: &str = "interrupted (Ctrl-C, SIGTERM or SIGHUP)";

/// Whether a journaled abort reason is an interrupt's ([`INTERRUPT_REASON`], or the wording
/// of earlier versions, which also began with "interrupted").
pub fn is_interrupt_reason(reason: &str) -> bool {
    reason.starts_with("interrupted")
}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub app: String,
    pub outcome: Outcome,
    /// Rolled back because an interrupt asked for it (not because a step failed): the process
    /// exits 130 "interrupted", as a supervisor that sent SIGTERM expects, not 1 "failed".
    #[serde(skip)]
    pub interrupted: bool,
    /// For needs-attention and rolled-back runs: what happened and what to do.
    pub message: Option<String>,
    pub addons: Vec<AddonReport>,
    /// Time the writers were stopped, as the runner saw it.
    #[serde(with = "crate::plan::duration_ms")]
    pub downtime: Duration,
    #[serde(with = "crate::plan::duration_ms")]
    pub duration: Duration,
    pub journal: PathBuf,
}

impl RunReport {
    /// The process exit code: the outcome's, except that a rollback an interrupt asked for is
    /// 130 (the README's exit-code tables): the change did not fail, it was stopped.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        if self.interrupted && self.outcome == Outcome::RolledBack {
            crate::exit::ExitCode::Interrupted
        } else {
            self.outcome.exit_code()
        }
    }
}

/// Drives runs of playbooks against one Heroku account.
pub struct Runner {
    client: Client,
    config: RunnerConfig,
    reporter: Arc<dyn Reporter>,
    interrupts: Interrupts,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// A runner.
    pub fn new(
        client: Client,
        config: RunnerConfig,
        reporter: Arc<dyn Reporter>,
        interrupts: Interrupts,
    ) -> Self {
        Self {
            client,
            config,
            reporter,
            interrupts,
        }
    }

    /// The Heroku client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Captures the platform and builds the plan. Read-only.
    ///
    /// # Errors
    /// The app cannot be read.
    pub async fn plan(&self, request: &RunRequest) -> Result<Plan, RunError> {
        self.preflight(request).await?;
        let unfinished = unfinished_runs(&self.config.state, &request.app)?;
        let capture = capture::capture(
            &self.client,
            request,
            self.config.state.root(),
            unfinished,
            jiff::Timestamp::now(),
        )
        .await?;
        let now = jiff::Timestamp::now();
        let mut plan = plan::build(
            request,
            &capture,
            (
                self.config.provisioning_estimate,
                "playbook default".to_owned(),
            ),
        );
        plan.estimate = self.estimate(request, &capture);
        plan.guards
            .extend(self.unattended_guards(request, &capture, &plan.estimate, now, true));
        plan.blocked = guards::blocked(&plan.guards);
        Ok(plan)
    }

    /// The plan's estimate, with the whole run's figure from this machine's history of the same
    /// plan changes when there is one.
    pub fn estimate(&self, request: &RunRequest, capture: &Capture) -> plan::Estimate {
        let mut estimate = plan::build(
            request,
            capture,
            (
                self.config.provisioning_estimate,
                "playbook default".to_owned(),
            ),
        )
        .estimate;
        let earlier = history::durations(
            &self.config.state,
            &history::plan_pairs(request, capture),
            crate::playbook::Strategy::of(&request.playbook),
        );
        let from_history = crate::window::Estimate::from_history(&earlier, estimate.run);
        if let EstimateSource::History { runs } = from_history.source {
            estimate.run = from_history.duration;
            estimate.run_source = if runs == 1 {
                "the 1 earlier run of these plan changes".to_owned()
            } else {
                format!("median of {runs} earlier runs of these plan changes")
            };
        }
        estimate
    }

    /// The guards of unattended runs: the window cutoff (with `--window`), and the drift from a
    /// reviewed plan and the difference of the plan rebuilt now from it (with `--plan`).
    /// `now` is the time the guard is evaluated; `ahead` judges
    /// a closed window by its next opening (`plan`) rather than blocking (`run`).
    fn unattended_guards(
        &self,
        request: &RunRequest,
        capture: &Capture,
        estimate: &plan::Estimate,
        now: jiff::Timestamp,
        ahead: bool,
    ) -> Vec<Guard> {
        let mut out = Vec::new();
        if let Some(window) = &self.config.window {
            out.push(gate::cutoff_guard(
                window,
                now,
                estimate.run,
                gate::worst_case_rollback(estimate),
                &estimate.run_source,
                ahead,
            ));
        }
        if let Some(reviewed) = &self.config.reviewed {
            let drifts = drift::compare(&reviewed.plan.capture, capture, &request.params.writers);
            out.extend(drift::guards(&drifts, &reviewed.file));
            // The plan this run would execute, rebuilt from the stored request and the live
            // capture, must be the one reviewed: an edited request shows up here.
            let now = plan::build(
                request,
                capture,
                (
                    self.config.provisioning_estimate,
                    "playbook default".to_owned(),
                ),
            );
            let differences = review::compare(&reviewed.plan, &now);
            out.extend(review::guards(&differences, &reviewed.file));
        }
        out
    }

    /// Whether the token sees `app`: a 404 is [`RunError::UnknownApp`] (exit 2) with the
    /// closest names the token can see, so every command that names an app says the same.
    ///
    /// # Errors
    /// [`RunError::UnknownApp`], or the platform's error (401/403 are bad input too).
    pub async fn check_app(&self, app: &str) -> Result<(), RunError> {
        match self.client.app(app).await {
            Ok(_) => Ok(()),
            Err(HerokuError::NotFound { .. }) => {
                let names: Vec<String> = self
                    .client
                    .apps()
                    .await
                    .map(|apps| apps.into_iter().map(|a| a.name).collect())
                    .unwrap_or_default();
                Err(RunError::UnknownApp {
                    app: app.to_owned(),
                    close: crate::plan::suggest::close(app, &names),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Checks, with reads only, what makes a request bad input rather than a failed run: the
    /// token and the app (401/403/404 exit 2, before any lock, journal or write), an add-on
    /// name that is not on the app (a typo: exit 2 naming the app's add-ons, not a blocked
    /// plan), and two `--change` naming one add-on by different names (resolved to ids).
    async fn preflight(&self, request: &RunRequest) -> Result<(), RunError> {
        self.check_app(&request.app).await?;
        let mut seen: Vec<(String, &str)> = Vec::new();
        for change in &request.changes {
            match capture::resolve_addon(&self.client, &request.app, &change.addon).await {
                Ok((addon, _)) => {
                    if let Some((_, first)) = seen.iter().find(|(id, _)| *id == addon.id) {
                        return Err(RunError::DuplicateAddon {
                            first: (*first).to_owned(),
                            second: change.addon.clone(),
                            addon: addon.name,
                        });
                    }
                    seen.push((addon.id, &change.addon));
                }
                Err(HerokuError::NotFound { .. }) => {
                    let known: Vec<String> = self
                        .client
                        .addons(&request.app)
                        .await
                        .map(|list| addon_names(&list))
                        .unwrap_or_default();
                    return Err(RunError::UnknownAddon {
                        app: request.app.clone(),
                        addon: change.addon.clone(),
                        close: crate::plan::suggest::close(&change.addon, &known),
                        known,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Starts a new run of `request`.
    ///
    /// # Errors
    /// The lock is held, the journal cannot be written, or the run was interrupted twice.
    /// A run that fails and rolls back is not an error: see [`RunReport::outcome`].
    pub async fn run(&self, request: &RunRequest) -> Result<RunReport, RunError> {
        self.preflight(request).await?;
        self.config.state.check()?;
        let now = jiff::Timestamp::now();
        let run_id = journal::new_run_id(now);
        let lock = AppLock::acquire(
            &self.config.state,
            &request.app,
            &run_id,
            now,
            self.config.lock_lease,
        )?;
        let journal = Journal::create(&self.config.state, &run_id)?;
        let mut run = ActiveRun::new(self, run_id.clone(), journal, lock, request.clone());
        run.record(&Record::Started {
            run_id,
            request: request.clone(),
            host: journal::AppLock::owner(&run.lock).host.clone(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        })?;
        run.drive().await
    }

    /// Carries on an unfinished run from its journal (`None`: the latest unfinished one, or
    /// else the latest that ended needs-attention and can be reopened). A needs-attention run
    /// with compensations left is reopened: they all run again. Idempotent: resuming any
    /// other finished run reports its outcome again.
    ///
    /// # Errors
    /// No such run, unreadable journal, lock held by a live run.
    pub async fn resume(&self, run_id: Option<&str>) -> Result<RunReport, RunError> {
        self.reopen(run_id, false).await
    }

    /// Rolls an unfinished run back (`None`: the latest unfinished one).
    ///
    /// # Errors
    /// As [`Runner::resume`].
    pub async fn rollback(&self, run_id: Option<&str>) -> Result<RunReport, RunError> {
        self.reopen(run_id, true).await
    }

    /// The app a run is about (for `--confirm` checks before resuming it).
    ///
    /// # Errors
    /// No such run, or its journal lacks a start.
    pub fn run_app(&self, run_id: Option<&str>) -> Result<(String, String), RunError> {
        let (run_id, request, _) = self.load_run(run_id)?;
        Ok((run_id, request.app))
    }

    /// A run's id, request and journal entries (`None`: the latest unfinished run).
    fn load_run(
        &self,
        run_id: Option<&str>,
    ) -> Result<(String, RunRequest, Vec<journal::Entry<Record>>), RunError> {
        let run_id = match run_id {
            Some(id) => id.to_owned(),
            None => latest_unfinished(&self.config.state, None)?,
        };
        let path = self
            .config
            .state
            .run_dir(&run_id)
            .join(journal::JOURNAL_FILE);
        if !path.exists() {
            return Err(JournalError::NoSuchRun {
                run_id,
                dir: self.config.state.runs_dir(),
            }
            .into());
        }
        let entries = journal::read::<Record>(&path)?;
        let request = entries
            .iter()
            .find_map(|e| match &e.record {
                Record::Started { request, .. } => Some(request.clone()),
                _ => None,
            })
            .ok_or_else(|| RunError::NoStart {
                run_id: run_id.clone(),
                path: path.clone(),
            })?;
        // A journal is a file like any other: a stored playbook gets the checks a new one
        // gets, so that nothing it says can make the engine act unsafely or panic.
        request
            .validate()
            .map_err(|source| RunError::StoredPlaybook {
                run_id: run_id.clone(),
                path,
                source,
            })?;
        Ok((run_id, request, entries))
    }

    async fn reopen(&self, run_id: Option<&str>, rollback: bool) -> Result<RunReport, RunError> {
        self.config.state.check()?;
        let (run_id, request, entries) = self.load_run(run_id)?;
        // The same read-only pre-flight as a new run for what no retry fixes (a refused token,
        // an app gone or renamed): exit 2 before the lock and before any compensation, rather
        // than failing partway through one. A transient error is left to the run's retries.
        if let Err(
            e @ (HerokuError::Unauthorized { .. }
            | HerokuError::Forbidden { .. }
            | HerokuError::NotFound { .. }
            | HerokuError::NoToken { .. }
            | HerokuError::BadBaseUrl { .. }),
        ) = self.client.app(&request.app).await
        {
            return Err(e.into());
        }
        let lock = AppLock::acquire(
            &self.config.state,
            &request.app,
            &run_id,
            jiff::Timestamp::now(),
            self.config.lock_lease,
        )?;
        let journal = Journal::open(&self.config.state, &run_id)?;
        let recovered = journal.recovered().map(|copy| {
            format!(
                "journal {} ended in a torn line (a crash mid-write): cut back to its last \
                 complete record; the original is kept at {}",
                journal.path().display(),
                copy.display()
            )
        });
        let mut run = ActiveRun::new(self, run_id, journal, lock, request);
        if let Some(message) = recovered {
            run.report_event(&RunEvent::Warning {
                message: message.clone(),
            });
            run.record(&Record::Note { message })?;
        }
        run.restore_from(&entries)?;
        if run.engine.can_reopen() {
            // Ended needs-attention with compensations left: run them all again (each is
            // idempotent). The writers come back only if a verify now proves the data whole.
            run.record(&Record::Note {
                message: "reopened: running every compensation again".into(),
            })?;
            run.event(Event::Reopened)?;
            return run.drive().await;
        }
        if let Some(outcome) = run.engine.outcome() {
            // Finished before: make sure it is recorded, then report it again, as recorded
            // (the runner may have told a kept new plan from a rollback).
            let outcome = entries
                .iter()
                .rev()
                .find_map(|e| match e.record {
                    Record::Finished { outcome, .. } => Some(outcome),
                    _ => None,
                })
                .unwrap_or(outcome);
            if !entries
                .iter()
                .any(|e| matches!(e.record, Record::Finished { .. }))
            {
                run.finish(outcome)?;
            }
            return Ok(run.finished_report(&entries, outcome, rollback));
        }
        run.record(&Record::Note {
            message: if rollback {
                "rollback requested".into()
            } else {
                "resumed".into()
            },
        })?;
        if rollback {
            run.abort("rollback requested with `upshift rollback`")?;
        }
        run.drive().await
    }
}

/// What a user may type for each add-on: the attachment names (lower case, as `heroku addons`
/// shows them) and the add-on names.
fn addon_names(list: &[crate::heroku::models::AddOn]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for a in list {
        for var in &a.config_vars {
            if let Some(att) = var.strip_suffix("_URL") {
                names.push(att.to_lowercase());
            }
        }
        names.push(a.name.clone());
    }
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Interrupts, StepError, unless_stopped};

    /// A step that would run for an hour ends at the second interrupt, not at its next check.
    #[tokio::test(start_paused = true)]
    async fn the_second_interrupt_cancels_a_step_where_it_stands() {
        let interrupts = Interrupts::default();
        let i = interrupts.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            i.interrupt();
            tokio::time::sleep(Duration::from_millis(300)).await;
            i.interrupt();
        });
        let started = tokio::time::Instant::now();
        let result = unless_stopped(&interrupts, async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        })
        .await;
        assert!(matches!(result, Err(StepError::Interrupted)), "{result:?}");
        assert_eq!(started.elapsed(), Duration::from_millis(1300));
    }

    /// One interrupt does not cut a step: it finishes, and the run rolls back after it.
    #[tokio::test(start_paused = true)]
    async fn the_first_interrupt_lets_the_step_finish() {
        let interrupts = Interrupts::default();
        interrupts.interrupt();
        let result = unless_stopped(&interrupts, async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(7)
        })
        .await;
        assert_eq!(result.ok(), Some(7));
        assert_eq!(interrupts.count(), 1);
    }
}
