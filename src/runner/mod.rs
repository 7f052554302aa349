//! The runner: drives the engine, performs each step's effect through the Heroku client and
//! the verifier, journals before and after every effect, enforces timeouts, and handles
//! interrupts. The only module that both writes to the platform and decides when.
//!
//! Every step re-derives from the platform before it acts (a resumed run trusts the journal
//! for intent and the platform for truth), and every step is idempotent: repeating one after a
//! crash converges on the same state. That is also why a compensation may be tried again
//! after a transient failure until the playbook's `compensation_deadline` (see `backoff`).

mod backoff;
pub mod capture;
mod effects;
pub mod evidence;
pub mod history;
pub mod record;
mod steady;
/// The events the runner reports, defined in the leaf module [`crate::events`].
pub use crate::events as reporter;
pub mod watch;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;

use crate::engine::{
    Action, Compensation, Engine, EngineError, Event, Failure, Next, Outcome, State,
};
use crate::heroku::{Client, HerokuError};
use crate::journal::{self, AppLock, Journal, JournalError, StateDir};
use crate::plan::facts::Capture;
use crate::plan::guards::{self, Guard};
use crate::plan::{self, Plan, RunRequest};
use crate::plan::{drift, review};
use crate::verify::VerifyOptions;
use crate::window::gate;
use crate::window::{EstimateSource, Occurrence, Window};
use backoff::Transient;
use record::Record;
pub use reporter::{Reporter, RunEvent, Silent};

/// Extra time beyond a step's timeout before the step is cut off from outside.
const STEP_GRACE: Duration = Duration::from_secs(15);

/// Why a run (or `plan`) could not go on.
#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Heroku(#[from] HerokuError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(
        "run {run_id} interrupted; its journal is kept: `upshift resume {run_id}` carries on, `upshift rollback {run_id}` rolls back (a plan change that landed stays){}",
        app_state(.app, .writers_down)
    )]
    Interrupted {
        run_id: String,
        app: String,
        /// Writer types this run left at 0: the app is down until resume or rollback.
        writers_down: Vec<String>,
    },
    #[error("run {run_id} has no start record: its journal {path} is unusable; inspect it by hand")]
    NoStart { run_id: String, path: PathBuf },
    #[error(
        "--change {first} and --change {second} name the same add-on ({addon}): give each \
         add-on once; nothing was done"
    )]
    DuplicateAddon {
        first: String,
        second: String,
        addon: String,
    },
    #[error(
        "no app {app} visible to this token{}: check -a/--app (or HEROKU_APP); `heroku apps` lists the apps you can reach; nothing was done",
        did_you_mean(.close)
    )]
    UnknownApp { app: String, close: Vec<String> },
    #[error(
        "no add-on {addon} on app {app}{}; its add-ons: {}; fix --change; nothing was done",
        did_you_mean(.close),
        if .known.is_empty() { "none".to_owned() } else { .known.join(", ") }
    )]
    UnknownAddon {
        app: String,
        addon: String,
        close: Vec<String>,
        known: Vec<String>,
    },
    #[error(
        "run {run_id} cannot be resumed: the playbook stored in its journal {path} is invalid; \
         nothing was done; check the app's formation and add-on plans by hand"
    )]
    StoredPlaybook {
        run_id: String,
        path: PathBuf,
        source: crate::playbook::PlaybookError,
    },
}

impl RunError {
    /// The exit code this error means.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        use crate::exit::ExitCode;
        match self {
            Self::Heroku(
                HerokuError::NotFound { .. }
                | HerokuError::Unauthorized { .. }
                | HerokuError::Forbidden { .. }
                | HerokuError::NoToken { .. }
                | HerokuError::BadBaseUrl { .. }
                | HerokuError::InvalidParams { .. },
            )
            | Self::Journal(
                JournalError::NoSuchRun { .. }
                | JournalError::NothingToResume { .. }
                | JournalError::NoStateDir
                | JournalError::UnusableStateDir { .. },
            )
            | Self::DuplicateAddon { .. }
            | Self::UnknownApp { .. }
            | Self::UnknownAddon { .. } => ExitCode::Usage,
            Self::Journal(JournalError::Locked { .. }) => ExitCode::Locked,
            Self::Interrupted { .. } => ExitCode::Interrupted,
            Self::Engine(_)
            | Self::NoStart { .. }
            | Self::StoredPlaybook { .. }
            | Self::Journal(JournalError::Corrupt { .. } | JournalError::Read { .. }) => {
                ExitCode::NeedsAttention
            }
            Self::Heroku(_) | Self::Journal(_) => ExitCode::RolledBack,
        }
    }
}

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
    /// How long the evidence that a new server is live must hold before verify reads it
    /// (see [`evidence`]).
    pub settle: Duration,
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
            settle: DEFAULT_SETTLE,
        }
    }
}

/// The default settle period: a few polls' worth of agreement between the platform, the Data
/// API and the server behind the URL (the poll interval grows to one second).
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(2);

/// One add-on's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub app: String,
    pub outcome: Outcome,
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
        let earlier =
            history::durations(&self.config.state, &history::plan_pairs(request, capture));
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

    /// Checks, with reads only, what makes a request bad input rather than a failed run: the
    /// token and the app (401/403/404 exit 2, before any lock, journal or write), an add-on
    /// name that is not on the app (a typo: exit 2 naming the app's add-ons, not a blocked
    /// plan), and two `--change` naming one add-on by different names (resolved to ids).
    async fn preflight(&self, request: &RunRequest) -> Result<(), RunError> {
        match self.client.app(&request.app).await {
            Ok(_) => {}
            Err(HerokuError::NotFound { .. }) => {
                let names: Vec<String> = self
                    .client
                    .apps()
                    .await
                    .map(|apps| apps.into_iter().map(|a| a.name).collect())
                    .unwrap_or_default();
                return Err(RunError::UnknownApp {
                    app: request.app.clone(),
                    close: crate::plan::suggest::close(&request.app, &names),
                });
            }
            Err(e) => return Err(e.into()),
        }
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
            return Ok(run.report(outcome, ActiveRun::last_message(&entries)));
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

/// Whether any add-on of the run holds critical data (the default policy). A run of caches
/// only keeps the looser rule: their loss is tolerated, so no verify is needed to restore.
fn holds_critical(request: &RunRequest) -> bool {
    request
        .changes
        .iter()
        .any(|c| c.policy == crate::plan::facts::DataPolicy::Critical)
}

/// Runs of `app` (all apps when `None`) whose journals have no outcome, oldest first.
///
/// # Errors
/// Unreadable state dir or journal.
pub fn unfinished(state: &StateDir, app: Option<&str>) -> Result<Vec<(String, String)>, RunError> {
    let mut out = Vec::new();
    for id in state.run_ids()? {
        let path = state.run_dir(&id).join(journal::JOURNAL_FILE);
        // A journal that cannot be read whole never hides its run: it counts as unfinished
        // for its app (for every app when even its start cannot be read) until resolved.
        let (entries, problem) = journal::read_prefix::<Record>(&path);
        let run_app = entries.iter().find_map(|e| match &e.record {
            Record::Started { request, .. } => Some(request.app.clone()),
            _ => None,
        });
        if problem.is_some() {
            if app.is_none_or(|a| run_app.as_deref().is_none_or(|r| r == a)) {
                out.push((id, run_app.unwrap_or_default()));
            }
            continue;
        }
        let finished = entries
            .iter()
            .any(|e| matches!(e.record, Record::Finished { .. }));
        if let Some(run_app) = run_app
            && !finished
            && app.is_none_or(|a| a == run_app)
        {
            out.push((id, run_app));
        }
    }
    Ok(out)
}

fn unfinished_runs(state: &StateDir, app: &str) -> Result<Vec<String>, RunError> {
    Ok(unfinished(state, Some(app))?
        .into_iter()
        .map(|(id, _)| {
            let path = state.run_dir(&id).join(journal::JOURNAL_FILE);
            match journal::read::<Record>(&path) {
                Ok(_) => id,
                Err(e) => format!("{id} (unreadable: {e})"),
            }
        })
        .collect())
}

/// Whether a finished run ended needs-attention with compensations that `resume` can run
/// again (see [`Engine::can_reopen`]), judged by replaying its journal.
fn reopenable(entries: &[journal::Entry<Record>]) -> bool {
    let Some(request) = entries.iter().find_map(|e| match &e.record {
        Record::Started { request, .. } => Some(request),
        _ => None,
    }) else {
        return false;
    };
    let events = entries.iter().filter_map(|e| match &e.record {
        Record::Engine { event } => Some(event),
        _ => None,
    });
    Engine::replay(request.playbook.actions(), holds_critical(request), events)
        .is_ok_and(|engine| engine.can_reopen())
}

/// Runs that `resume` without a run id may pick, oldest first: the unfinished ones (see
/// [`unfinished`]) and those that ended needs-attention but can be reopened. A run that
/// needs attention stays resumable, so that `upshift resume` after fixing the cause
/// finishes it instead of saying there is nothing to do; but only while it is its app's
/// latest run: once a newer run started on the app, the old run's captured formation and
/// snapshots describe a past the app has left, and reopening it takes its id.
///
/// # Errors
/// Unreadable state dir or journal.
pub fn resumable(state: &StateDir, app: Option<&str>) -> Result<Vec<(String, String)>, RunError> {
    let open = unfinished(state, app)?;
    // Every run's app and whether it could be reopened, oldest first.
    let mut runs: Vec<(String, Option<String>, bool)> = Vec::new();
    for id in state.run_ids()? {
        let path = state.run_dir(&id).join(journal::JOURNAL_FILE);
        let (entries, problem) = journal::read_prefix::<Record>(&path);
        let run_app = entries.iter().find_map(|e| match &e.record {
            Record::Started { request, .. } => Some(request.app.clone()),
            _ => None,
        });
        let reopen = problem.is_none() && reopenable(&entries);
        runs.push((id, run_app, reopen));
    }
    let mut out = Vec::new();
    for (i, (id, run_app, reopen)) in runs.iter().enumerate() {
        if let Some(run) = open.iter().find(|(o, _)| o == id) {
            out.push(run.clone());
            continue;
        }
        let Some(run_app) = run_app else { continue };
        let superseded = runs[i + 1..]
            .iter()
            .any(|(_, later, _)| later.as_deref().is_none_or(|l| l == run_app));
        if *reopen && !superseded && app.is_none_or(|a| a == run_app) {
            out.push((id.clone(), run_app.clone()));
        }
    }
    Ok(out)
}

fn latest_unfinished(state: &StateDir, app: Option<&str>) -> Result<String, RunError> {
    resumable(state, app)?
        .pop()
        .map(|(id, _)| id)
        .ok_or_else(|| {
            RunError::Journal(JournalError::NothingToResume {
                app: app.map(str::to_owned),
            })
        })
}

/// What a step's effect says back.
enum StepOk {
    Done(Option<String>),
    Blocked,
}

/// A step's failure.
#[derive(Debug)]
enum StepError {
    /// The step failed; with `data_unsafe`, a critical add-on's data is not known to be whole.
    /// With `transient`, the same call may succeed later (a rate limit, a 5xx, a lost
    /// connection): compensations try again until their deadline.
    Failed {
        message: String,
        data_unsafe: bool,
        transient: Option<Transient>,
    },
    /// The first interrupt arrived during a wait: stop and roll back.
    Aborted,
    /// The second interrupt: leave now, resumable.
    Interrupted,
}

impl StepError {
    fn failed(message: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into(),
            data_unsafe: false,
            transient: None,
        }
    }
}

impl From<HerokuError> for StepError {
    fn from(e: HerokuError) -> Self {
        let transient = e.is_transient().then_some(Transient {
            retry_after: match &e {
                HerokuError::RateLimited { retry_after, .. } => *retry_after,
                _ => None,
            },
        });
        Self::Failed {
            message: error_chain(&e),
            data_unsafe: false,
            transient,
        }
    }
}

impl From<crate::verify::VerifyError> for StepError {
    fn from(e: crate::verify::VerifyError) -> Self {
        Self::failed(error_chain(&e))
    }
}

/// An error and its sources on one line (no secrets: every error type here redacts).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}

/// One add-on's runtime view during a run.
#[derive(Debug, Clone)]
struct Target {
    label: String,
    name: String,
    from: String,
    to: String,
    policy: crate::plan::facts::DataPolicy,
    url_var: Option<String>,
}

/// A run in progress: the engine, its journal, its lock and what it has learned.
struct ActiveRun<'r> {
    runner: &'r Runner,
    run_id: String,
    journal: Journal,
    lock: AppLock,
    request: RunRequest,
    /// The plan each add-on settled on in the settle compensation (name -> bare plan): a
    /// rollback that kept a new plan is reported as such, not as "rolled back".
    settled_on: BTreeMap<String, String>,
    engine: Engine,
    capture: Option<Capture>,
    snapshots: BTreeMap<String, PathBuf>,
    /// Each add-on's write counter when the drain ended (see `check_no_new_writes`).
    write_marks: BTreeMap<String, u64>,
    /// The server behind each add-on's URL before the plan change (journaled as `OldServer`).
    old_servers: BTreeMap<String, crate::plan::facts::ServerIdentity>,
    reports: BTreeMap<String, AddonReport>,
    started: Instant,
    downtime_since: Option<Instant>,
    downtime: Duration,
    /// The window occurrence the guard step admitted the run into, and the run's estimate.
    window: Option<(Occurrence, Duration)>,
    /// Overrun already reported: (projected, actual).
    overrun_told: (bool, bool),
    /// Records this process appended; a failure after the first is survived (see `record`).
    appended: usize,
    /// The journal could not be written: the first error and how many records it holds.
    journal_failure: Option<(String, usize)>,
    #[cfg(feature = "failpoints")]
    records_written: usize,
}

impl<'r> ActiveRun<'r> {
    fn new(
        runner: &'r Runner,
        run_id: String,
        journal: Journal,
        lock: AppLock,
        request: RunRequest,
    ) -> Self {
        let engine = Engine::new(request.playbook.actions()).critical(holds_critical(&request));
        Self {
            runner,
            run_id,
            journal,
            lock,
            request,
            settled_on: BTreeMap::new(),
            engine,
            capture: None,
            snapshots: BTreeMap::new(),
            write_marks: BTreeMap::new(),
            old_servers: BTreeMap::new(),
            reports: BTreeMap::new(),
            started: Instant::now(),
            downtime_since: None,
            downtime: Duration::ZERO,
            window: None,
            overrun_told: (false, false),
            appended: 0,
            journal_failure: None,
            #[cfg(feature = "failpoints")]
            records_written: 0,
        }
    }

    fn report_event(&self, event: &RunEvent) {
        self.runner.reporter.report(event);
    }

    /// Appends a record (fsync'd). With the `failpoints` feature, `UPSHIFT_FAILPOINT=N`
    /// aborts the process right after the Nth record of this process: the crash tests kill
    /// the run at every journal point this way.
    ///
    /// A write failure after the first record (disk full, I/O error) does not stop the run:
    /// what is in memory still knows how to restore the app. The journal is left as a crash
    /// would leave it (no later record, so no gap), the run is asked to stop safely exactly as
    /// by a first Ctrl-C (roll back at the next safe point, compensations carry on), and the
    /// run ends `needs-attention` with the steps to finish (see `report`). With the
    /// `failpoints` feature, `UPSHIFT_FAIL_JOURNAL_AFTER=N` fails every append after the Nth.
    fn record(&mut self, record: &Record) -> Result<(), RunError> {
        if self.journal_failure.is_some() {
            return Ok(());
        }
        let now = jiff::Timestamp::now().as_millisecond();
        #[cfg(feature = "failpoints")]
        let failed = std::env::var("UPSHIFT_FAIL_JOURNAL_AFTER")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| self.records_written >= n);
        #[cfg(not(feature = "failpoints"))]
        let failed = false;
        let appended = if failed {
            Err(JournalError::Write {
                path: self.journal.path().to_owned(),
                source: std::io::Error::other("no space left on device (failpoint)"),
            })
        } else {
            self.journal.append(now, record)
        };
        if let Err(e) = appended {
            if self.appended == 0 {
                return Err(e.into());
            }
            let message = error_chain(&e);
            self.journal_failure = Some((message.clone(), self.appended));
            self.report_event(&RunEvent::Warning {
                message: format!(
                    "{message}; stopping safely: the run rolls back what it can from memory and \
                     will end needs-attention"
                ),
            });
            if self.runner.interrupts.count() == 0 {
                self.runner.interrupts.interrupt();
            }
            return Ok(());
        }
        self.appended += 1;
        #[cfg(feature = "failpoints")]
        {
            self.records_written += 1;
            if std::env::var("UPSHIFT_FAILPOINT")
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                == Some(self.records_written)
            {
                std::process::abort();
            }
        }
        Ok(())
    }

    #[allow(clippy::needless_pass_by_value)] // events are built at the call site
    fn event(&mut self, event: Event) -> Result<(), RunError> {
        let mut probe = self.engine.clone();
        probe.apply(&event)?;
        self.record(&Record::Engine {
            event: event.clone(),
        })?;
        self.engine = probe;
        Ok(())
    }

    fn abort(&mut self, reason: &str) -> Result<(), RunError> {
        match self.engine.state() {
            State::Forward { .. } | State::InStep { .. } => self.event(Event::AbortRequested {
                reason: reason.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// Rebuilds state from a journal: the engine by replay, the capture, the snapshots.
    fn restore_from(&mut self, entries: &[journal::Entry<Record>]) -> Result<(), RunError> {
        let events: Vec<Event> = entries
            .iter()
            .filter_map(|e| match &e.record {
                Record::Engine { event } => Some(event.clone()),
                _ => None,
            })
            .collect();
        self.engine = Engine::replay(
            self.request.playbook.actions(),
            holds_critical(&self.request),
            &events,
        )?;
        // Downtime is the app's, not this process's: closed intervals from the journal's
        // timestamps, and an open one (the writers are still stopped) counted from its start,
        // so a resume reports what `runs` reports.
        let mut open_since_ms: Option<i64> = None;
        let mut closed_ms: i64 = 0;
        for e in entries {
            match &e.record {
                Record::Captured { capture } => self.capture = Some(capture.clone()),
                Record::Snapshot { addon, file, .. } => {
                    self.snapshots.insert(addon.clone(), PathBuf::from(file));
                }
                Record::OldServer { addon, identity } => {
                    self.old_servers.insert(addon.clone(), identity.clone());
                }
                Record::Downtime { started: true } if open_since_ms.is_none() => {
                    open_since_ms = Some(e.at_ms);
                }
                Record::Downtime { started: false } => {
                    if let Some(since) = open_since_ms.take() {
                        closed_ms = closed_ms.saturating_add(e.at_ms.saturating_sub(since).max(0));
                    }
                }
                _ => {}
            }
        }
        self.downtime = Duration::from_millis(u64::try_from(closed_ms).unwrap_or(0));
        self.downtime_since = open_since_ms.map(|since| {
            let now = jiff::Timestamp::now().as_millisecond();
            let ago = Duration::from_millis(u64::try_from(now.saturating_sub(since)).unwrap_or(0));
            Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
        });
        Ok(())
    }

    fn last_message(entries: &[journal::Entry<Record>]) -> Option<String> {
        entries.iter().rev().find_map(|e| match &e.record {
            Record::Finished { message, .. } => message.clone(),
            _ => None,
        })
    }

    fn targets(&self) -> Vec<Target> {
        let Some(capture) = &self.capture else {
            return Vec::new();
        };
        capture
            .found_changes(&self.request.changes)
            .map(|(change, a)| Target {
                label: a.label().to_owned(),
                name: a.name.clone(),
                from: a.plan.clone(),
                to: crate::plans::bare_name(&change.plan).to_owned(),
                policy: change.policy,
                url_var: a.url_var(),
            })
            .collect()
    }

    async fn drive(&mut self) -> Result<RunReport, RunError> {
        self.report_event(&RunEvent::Started {
            run_id: self.run_id.clone(),
            journal: self.journal.path().display().to_string(),
        });
        loop {
            if self.runner.interrupts.count() >= 2 {
                return Err(self.interrupted());
            }
            let _ = self
                .lock
                .renew(jiff::Timestamp::now(), self.runner.config.lock_lease);
            self.check_overrun()?;
            match self.engine.next() {
                Next::Done { outcome } => {
                    let outcome = self.truthful(outcome);
                    self.finish(outcome)?;
                    let message = self.outcome_message(outcome);
                    return Ok(self.report(outcome, message));
                }
                Next::RunStep { step, action } => {
                    if self.runner.interrupts.count() == 1
                        && matches!(self.engine.state(), State::Forward { .. })
                    {
                        self.abort("interrupted (Ctrl-C or SIGTERM)")?;
                        continue;
                    }
                    self.run_step(step, action).await?;
                }
                Next::Compensate {
                    index,
                    compensation,
                } => {
                    let skipped = self.engine.is_skipped(index);
                    self.event(Event::CompensationStarted { index })?;
                    if skipped {
                        self.report_event(&RunEvent::Compensating {
                            compensation,
                            done: true,
                            message: Some(
                                "skipped: the writers stay stopped until the data is whole".into(),
                            ),
                        });
                        continue;
                    }
                    self.report_event(&RunEvent::Compensating {
                        compensation,
                        done: false,
                        message: None,
                    });
                    let interrupts = self.runner.interrupts.clone();
                    match unless_stopped(
                        &interrupts,
                        Box::pin(self.compensate_until_deadline(compensation)),
                    )
                    .await
                    {
                        Ok(()) => {
                            self.event(Event::CompensationSucceeded { index })?;
                            self.report_event(&RunEvent::Compensating {
                                compensation,
                                done: true,
                                message: None,
                            });
                        }
                        Err(StepError::Interrupted) => {
                            return Err(self.interrupted());
                        }
                        Err(StepError::Aborted) => {
                            // Already rolling back: a first interrupt changes nothing; go on.
                        }
                        Err(StepError::Failed {
                            message,
                            data_unsafe,
                            ..
                        }) => {
                            self.report_event(&RunEvent::Compensating {
                                compensation,
                                done: true,
                                message: Some(message.clone()),
                            });
                            self.event(Event::CompensationFailed {
                                index,
                                message,
                                data_unsafe,
                            })?;
                        }
                    }
                }
            }
        }
    }

    async fn run_step(&mut self, step: usize, action: Action) -> Result<(), RunError> {
        let spec = self.request.playbook.steps[step].clone();
        if matches!(self.engine.state(), State::Forward { .. }) {
            self.event(Event::StepStarted { step })?;
        }
        let detail = action.describe().to_owned();
        self.report_event(&RunEvent::StepStarted {
            number: step + 1,
            action,
            detail,
        });
        let started = Instant::now();
        let mut attempt = 1;
        let interrupts = self.runner.interrupts.clone();
        // Boxed: the step's future is large, and the race would hold it inline.
        let result = unless_stopped(
            &interrupts,
            Box::pin(async {
                loop {
                    // The step's own deadline fires first and names what it waited for; this outer one
                    // only catches a step stuck in a call.
                    let result = match tokio::time::timeout(
                        spec.timeout + STEP_GRACE,
                        self.perform(action, spec.timeout),
                    )
                    .await
                    {
                        Ok(r) => r,
                        Err(_) => Err(StepError::failed(format!(
                            "step {action} did not finish within its timeout of {}",
                            crate::playbook::duration::format(spec.timeout)
                        ))),
                    };
                    match result {
                        Err(StepError::Failed {
                            data_unsafe: false,
                            ref message,
                            ..
                        }) if attempt < spec.retry.attempts
                            && !matches!(action, Action::Guard | Action::Verify) =>
                        {
                            self.report_event(&RunEvent::Warning {
                                message: format!(
                                    "{action} attempt {attempt} failed ({message}); retrying"
                                ),
                            });
                            tokio::time::sleep(spec.retry.backoff).await;
                            attempt += 1;
                        }
                        other => break other,
                    }
                }
            }),
        )
        .await;
        match result {
            Ok(StepOk::Done(note)) => {
                self.event(Event::StepSucceeded { step })?;
                self.report_event(&RunEvent::StepDone {
                    number: step + 1,
                    action,
                    elapsed: started.elapsed(),
                    note,
                });
            }
            Ok(StepOk::Blocked) => {
                self.event(Event::GuardsBlocked { step })?;
                self.report_event(&RunEvent::StepFailed {
                    number: step + 1,
                    action,
                    message: "blocked by a guard: nothing was written".into(),
                });
            }
            Err(StepError::Interrupted) => {
                return Err(self.interrupted());
            }
            Err(StepError::Aborted) => {
                self.report_event(&RunEvent::StepFailed {
                    number: step + 1,
                    action,
                    message: "interrupted: rolling back".into(),
                });
                self.abort("interrupted (Ctrl-C or SIGTERM)")?;
            }
            Err(StepError::Failed {
                message,
                data_unsafe,
                ..
            }) => {
                self.report_event(&RunEvent::StepFailed {
                    number: step + 1,
                    action,
                    message: message.clone(),
                });
                self.event(Event::StepFailed {
                    step,
                    failure: Failure {
                        message,
                        data_unsafe,
                    },
                })?;
            }
        }
        Ok(())
    }

    /// Once admitted into a window, reports (once each) a projected and an actual overrun.
    /// The run carries on either way: past the first write it finishes or rolls back.
    fn check_overrun(&mut self) -> Result<(), RunError> {
        let (Some((occ, estimate)), Some(window)) = (self.window, &self.runner.config.window)
        else {
            return Ok(());
        };
        let now = jiff::Timestamp::now();
        let Some(notice) = gate::overrun_notice(&occ, now, self.started.elapsed(), estimate) else {
            return Ok(());
        };
        let told = if notice.expected {
            &mut self.overrun_told.0
        } else {
            &mut self.overrun_told.1
        };
        if std::mem::replace(told, true) {
            return Ok(());
        }
        let event = RunEvent::WindowOverrun {
            window: window.spec(),
            ends_at: gate::local(window, occ.end),
            by: notice.by,
            expected: notice.expected,
        };
        self.record(&Record::WindowOverrun {
            window: window.spec(),
            ends_at: gate::local(window, occ.end),
            by_ms: u64::try_from(notice.by.as_millis()).unwrap_or(u64::MAX),
            expected: notice.expected,
        })?;
        self.report_event(&event);
        Ok(())
    }

    fn finish(&mut self, outcome: Outcome) -> Result<(), RunError> {
        if let Some(since) = self.downtime_since.take() {
            self.downtime += since.elapsed();
        }
        let message = self.outcome_message(outcome);
        self.record(&Record::Finished { outcome, message })?;
        let outcome = if self.journal_failure.is_some() {
            Outcome::NeedsAttention
        } else {
            outcome
        };
        self.report_event(&RunEvent::Finished { outcome });
        Ok(())
    }

    #[allow(clippy::needless_pass_by_value)] // the message is replaced, not borrowed
    fn report(&self, outcome: Outcome, message: Option<String>) -> RunReport {
        // A journal that could not be written makes any ending needs-attention: the run's
        // memory of what it did is gone once this process exits.
        let ended = match outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::RolledBack => "rolled back (the writers are back on the previous plans)",
            Outcome::NeedsAttention => "needs-attention",
            Outcome::Blocked => "blocked",
            Outcome::KeptNewPlan => {
                "stopped with the new plan kept (data verified, formation restored)"
            }
        };
        let (outcome, message) = match &self.journal_failure {
            Some((error, kept)) => (
                Outcome::NeedsAttention,
                Some(format!(
                    "{}\nthe journal could not be written ({error}); it keeps only its first \
                     {kept} records, so it is behind the app. In memory the run ended {ended}. \
                     Free space under {}, check the app with the steps above, then move {} aside \
                     (resuming it would replay a past the app has left)",
                    self.manual_steps(),
                    self.runner.config.state.root().display(),
                    self.journal
                        .path()
                        .parent()
                        .unwrap_or(self.journal.path())
                        .display(),
                )),
            ),
            None => (outcome, message),
        };
        let addons = self
            .targets()
            .into_iter()
            .map(|t| {
                self.reports.get(&t.name).cloned().unwrap_or(AddonReport {
                    label: t.label,
                    addon: t.name,
                    from: t.from,
                    to: t.to,
                    keys_verified: 0,
                    bytes_verified: 0,
                    differences: 0,
                    repaired: 0,
                })
            })
            .collect();
        RunReport {
            run_id: self.run_id.clone(),
            app: self.request.app.clone(),
            outcome,
            message,
            addons,
            downtime: self.downtime,
            duration: self.started.elapsed(),
            journal: self.journal.path().to_owned(),
        }
    }

    /// For anything but success: what happened and, for needs-attention, the commands to
    /// finish by hand.
    fn outcome_message(&self, outcome: Outcome) -> Option<String> {
        let State::Finished { .. } = self.engine.state() else {
            return None;
        };
        match outcome {
            Outcome::Succeeded | Outcome::Blocked => None,
            Outcome::RolledBack => Some(format!(
                "the run failed and was rolled back; the app {} runs with its previous formation; see {}",
                self.request.app,
                self.journal.path().display()
            )),
            Outcome::NeedsAttention if self.engine.can_reopen() => Some(format!(
                "{}\n  or, once the cause is fixed (Heroku answers again, the data is \
                 reachable), run `upshift resume {}`: it runs every compensation again and \
                 brings the writers back only onto verified data",
                self.manual_steps(),
                self.run_id
            )),
            Outcome::NeedsAttention => Some(self.manual_steps()),
            Outcome::KeptNewPlan => Some(self.kept_new_plan_message()),
        }
    }

    /// The truth after a rollback past the point of no return: which add-ons stay on their new
    /// plan (and so are billed on it), that their data was verified, and the command that goes
    /// back, which is a new, reverse plan change rather than an undo.
    fn kept_new_plan_message(&self) -> String {
        let kept: Vec<Target> = self
            .targets()
            .into_iter()
            .filter(|t| self.settled_on.get(&t.name) == Some(&t.to))
            .collect();
        let stays: Vec<String> = kept
            .iter()
            .map(|t| format!("{} stays on {} (was {})", t.label, t.to, t.from))
            .collect();
        let back: Vec<String> = kept
            .iter()
            .map(|t| format!("--change {}={}", t.label.to_lowercase(), t.from))
            .collect();
        format!(
            "the run stopped after the point of no return: {}; a plan change cannot be undone in place, so billing follows the new plan. The data was verified equal to the snapshot and the app {} runs with its previous formation. To go back, run a reverse change: upshift run -a {} {} --confirm {}; see {}",
            stays.join(", "),
            self.request.app,
            self.request.app,
            back.join(" "),
            self.request.app,
            self.journal.path().display()
        )
    }

    /// The interrupt error, saying whether the app is down.
    fn interrupted(&self) -> RunError {
        RunError::Interrupted {
            run_id: self.run_id.clone(),
            app: self.request.app.clone(),
            writers_down: if self.downtime_since.is_some() {
                self.request.params.writers.clone()
            } else {
                Vec::new()
            },
        }
    }

    /// A rolled-back run whose plan change landed for some add-on did not go back: say so.
    fn truthful(&self, outcome: Outcome) -> Outcome {
        let kept = self
            .targets()
            .iter()
            .any(|t| self.settled_on.get(&t.name) == Some(&t.to));
        if outcome == Outcome::RolledBack && kept {
            Outcome::KeptNewPlan
        } else {
            outcome
        }
    }

    fn manual_steps(&self) -> String {
        let app = &self.request.app;
        let mut lines = vec![format!(
            "run {} needs attention: not everything could be undone automatically. To finish by hand:",
            self.run_id
        )];
        for t in self.targets() {
            if let Some(file) = self.snapshots.get(&t.name) {
                let var = t.url_var.clone().unwrap_or_else(|| "REDIS_URL".into());
                lines.push(format!(
                    "  - check {}: upshift diff --url \"$(heroku config:get {var} -a {app})\" --against {}",
                    t.label,
                    file.display()
                ));
                lines.push(format!(
                    "    and repair it if needed: upshift restore --url \"$(heroku config:get {var} -a {app})\" --from {}",
                    file.display()
                ));
            }
        }
        if let Some(capture) = &self.capture {
            let scale: Vec<String> = self
                .request
                .params
                .writers
                .iter()
                .filter_map(|w| {
                    capture
                        .formation
                        .iter()
                        .find(|p| &p.process_type == w)
                        .map(|p| format!("{}={}:{}", p.process_type, p.quantity, p.size))
                })
                .collect();
            if !scale.is_empty() {
                lines.push(format!(
                    "  - bring the writers back: heroku ps:scale {} -a {app}",
                    scale.join(" ")
                ));
            }
            if self.request.params.maintenance && !capture.maintenance {
                lines.push(format!("  - heroku maintenance:off -a {app}"));
            }
        }
        lines.push(format!("  journal: {}", self.journal.path().display()));
        lines.join("\n")
    }

    /// Step dispatch.
    async fn perform(&mut self, action: Action, timeout: Duration) -> Result<StepOk, StepError> {
        match action {
            Action::Capture => self.step_capture().await,
            Action::Guard => Ok(self.step_guard()),
            Action::Maintenance => self.step_maintenance().await,
            Action::Scale => self.step_scale().await,
            Action::WaitDrained => self.step_wait_drained(timeout).await,
            Action::Snapshot => self.step_snapshot().await,
            Action::ChangePlan => self.step_change_plan().await,
            Action::WaitProvisioned => self.step_wait_provisioned(timeout).await,
            Action::Verify => self.step_verify().await,
            Action::RestoreFormation => self.step_restore_formation().await,
            Action::Health => self.step_health(timeout).await,
        }
    }

    /// Runs one compensation, trying again after transient failures (rate limits, 5xx,
    /// timeouts, lost connections) with backoff and `Retry-After` until the playbook's
    /// `compensation_deadline`; each retry is reported as a warning. Every compensation is
    /// idempotent (it re-reads the platform and writes absolute values), so repeating one
    /// is safe; other failures end it at once, as before.
    async fn compensate_until_deadline(
        &mut self,
        compensation: Compensation,
    ) -> Result<(), StepError> {
        let deadline = self.request.params.compensation_deadline;
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let (message, data_unsafe, transient) = match self.compensate(compensation).await {
                Err(StepError::Failed {
                    message,
                    data_unsafe,
                    transient: Some(transient),
                }) => (message, data_unsafe, transient),
                other => return other,
            };
            let left = deadline.saturating_sub(started.elapsed());
            let Some(pause) = backoff::next_pause(
                attempt,
                transient,
                self.runner.client.rate_limit_remaining(),
                rand::random::<f64>(),
                left,
            ) else {
                return Err(StepError::Failed {
                    message: format!(
                        "{message} (still failing after {attempt} attempt{} over {}, the \
                         playbook's compensation_deadline; once Heroku answers again, \
                         `upshift resume {}` runs the compensations again)",
                        if attempt == 1 { "" } else { "s" },
                        crate::playbook::duration::format(deadline),
                        self.run_id
                    ),
                    data_unsafe,
                    transient: None,
                });
            };
            self.report_event(&RunEvent::Warning {
                message: format!(
                    "{compensation} attempt {attempt} failed ({message}); retrying in {} \
                     ({} left of its compensation_deadline)",
                    crate::playbook::duration::format(pause),
                    crate::playbook::duration::format(left)
                ),
            });
            self.nap(pause).await?;
            attempt += 1;
        }
    }

    async fn compensate(&mut self, compensation: Compensation) -> Result<(), StepError> {
        match compensation {
            Compensation::RestoreMaintenance => self.restore_maintenance().await,
            Compensation::RestoreFormation => self.restore_formation().await.map(|_| ()),
            Compensation::SettlePlan => self.settle_plans().await,
        }
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

/// What an interrupted run leaves behind on the app, in words: the operator must know the app
/// is down before walking away from a resumable journal.
fn app_state(app: &str, writers_down: &[String]) -> String {
    if writers_down.is_empty() {
        format!("; the app {app} runs (its writers are not stopped)")
    } else {
        format!(
            "; the app {app} is DOWN: {} at 0 dynos until then",
            writers_down.join(", ")
        )
    }
}

/// `; did you mean X?` (or `X or Y`), or nothing.
fn did_you_mean(close: &[String]) -> String {
    match close {
        [] => String::new(),
        [one] => format!("; did you mean {one}?"),
        more => format!("; did you mean {}?", more.join(" or ")),
    }
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
