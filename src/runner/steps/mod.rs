//! One module per step of a playbook, in the manner of mini-redis' `src/cmd/*.rs`: the driver
//! (`runner::driver`) asks the engine for the next [`Action`](crate::engine::Action) and calls
//! that step's one entry point, `run`.
//!
//! # How a step is shaped
//! - **Context in.** `run(ctx: &StepCtx, log: &mut Ledger, ..)` gets a read-only [`StepCtx`]:
//!   the runner (client, config, reporter, interrupts), the request, and `Known`, what the run
//!   has learned so far (the capture, the snapshots, the old servers, the write marks). A step
//!   never mutates the run: nothing passes between steps through shared mutable maps.
//! - **Records to the ledger, at once.** A fact the journal keeps (a captured formation, an
//!   acknowledged PATCH, a snapshot file) goes to `Ledger::record` the moment the step knows
//!   it, before the step's next call can fail or the process can die: that is the journal-first
//!   rule the crash tests hold the runner to. The driver folds those records into `Known` with
//!   the same function a resumed run replays the journal through (`Known::absorb`), so a fresh
//!   run and a resumed one cannot disagree about what is known.
//! - **Typed output out.** What the journal does not keep comes back as the step's own type
//!   (`Drained { marks }`, `Guarded { blocked, window }`); the driver stores it. Facts a step
//!   learns per add-on that must survive its later failure (a verify's report, the plan a settle
//!   found) go to `Ledger::learn`.
//! - **Idempotent, re-derived.** Every step re-reads the platform before it writes and is safe
//!   to repeat after a crash (a `# Guarantees` section says how); its compensation sits in the
//!   same module, or beside it when it is a procedure of its own (`settle`, the change-plan
//!   step's).
//!
//! A strategy is a playbook whose actions name modules here. The live swap added five, shaped
//! the same way: `provision_new` (and `destroy`), `copy_live` (and `restore_notifications`),
//! `catch_up`, `move_attachments` (and `move_back`) and `retire_old`, sharing `live`; per
//! action, its entry in the engine's fixed registry (`engine::Action`, with its compensation),
//! its module, and one arm in the driver's dispatch (`ActiveRun::perform`,
//! `ActiveRun::compensate`). Nothing else in the runner changed.

pub(super) mod capture;
pub(super) mod catch_up;
pub(super) mod change_plan;
pub(super) mod copy_live;
mod formation;
pub(super) mod guard;
pub(super) mod health;
mod live;
pub(super) mod maintenance;
pub(super) mod move_attachments;
pub(super) mod provision_new;
pub(super) mod restore_formation;
pub(super) mod retire_old;
pub(super) mod scale;
pub(super) mod settle;
pub(super) mod snapshot;
pub(super) mod verify;
pub(super) mod wait_drained;
pub(super) mod wait_provisioned;
mod writes;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::ledger::Known;
pub(super) use super::target::Target;
use super::{RunEvent, Runner, StepError};
use crate::events::Reporter;
use crate::heroku::Client;
use crate::plan::RunRequest;
use crate::plan::facts::Capture;
use crate::verify::RedisUrl;

/// What every step reads: who runs, what was asked, what is known. Read-only by construction.
pub(super) struct StepCtx<'a> {
    pub runner: &'a Runner,
    pub request: &'a RunRequest,
    pub run_id: &'a str,
    pub known: &'a Known,
}

/// Paces a wait: adaptive delays, a deadline, interrupts.
pub(super) struct Pacer {
    delay: Duration,
    pub deadline: Instant,
    abortable: bool,
    /// Keep `delay` as it is (fast Redis polls that cost no API call).
    fixed: bool,
}

impl Pacer {
    /// A pacer that polls every `delay` without backing off (no API call involved).
    pub fn fixed(delay: Duration, deadline: Instant, abortable: bool) -> Self {
        Self {
            delay,
            deadline,
            abortable,
            fixed: true,
        }
    }
}

impl StepCtx<'_> {
    pub fn client(&self) -> &Client {
        &self.runner.client
    }

    pub fn config(&self) -> &super::RunnerConfig {
        &self.runner.config
    }

    pub fn report(&self, event: &RunEvent) {
        self.runner.reporter.report(event);
    }

    pub fn app(&self) -> &str {
        &self.request.app
    }

    /// The captured facts; every step after the capture needs them.
    pub fn capture(&self) -> Result<&Capture, StepError> {
        self.known
            .capture
            .as_ref()
            .ok_or_else(|| StepError::failed("no captured facts in this run's journal"))
    }

    /// The add-ons of the run, as the capture found them (none before the capture).
    pub fn targets(&self) -> Vec<Target> {
        self.known.targets(self.request)
    }

    /// A pacer for a wait of `timeout`; an `abortable` one ends at the first interrupt.
    pub fn pacer(&self, timeout: Duration, abortable: bool) -> Pacer {
        Pacer {
            delay: self.config().poll.initial,
            deadline: Instant::now() + timeout,
            abortable,
            fixed: false,
        }
    }

    /// Sleeps until the next poll. `Ok(false)` when the deadline has passed.
    pub async fn pace(&self, pacer: &mut Pacer) -> Result<bool, StepError> {
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
                .config()
                .poll
                .next(pacer.delay, self.client().rate_limit_remaining());
        }
        Ok(true)
    }

    /// The Redis URL of a target as the app's config var says now (it changes with a plan
    /// change). The URL is a secret: it lives only in memory.
    pub async fn current_url(&self, target: &Target) -> Result<RedisUrl, StepError> {
        let vars = self.client().config_vars(self.app()).await?;
        let var = target
            .url_var
            .as_deref()
            .ok_or_else(|| StepError::failed(format!("{} lists no config var", target.label)))?;
        let raw = vars.get(var).ok_or_else(|| {
            StepError::failed(format!(
                "config var {var} of {} is not set on {}",
                target.label,
                self.app()
            ))
        })?;
        let url = raw
            .parse::<RedisUrl>()
            .map_err(|e| StepError::failed(format!("config var {var}: {e}")))?;
        // heroku-redis has only database 0 (the guard admits no other service): a URL naming
        // another leads to a server, or a part of one, that is not this add-on's (hostile
        // pass 5: an empty db 3 of a foreign server was "repaired" from the snapshot).
        if url.db() != 0 {
            return Err(StepError::NotTheAddons {
                addon: target.name.clone(),
                message: format!(
                    "config var {var} of {} names database {} ({}/{}), but a heroku-redis \
                     add-on has only database 0: the URL does not lead to {}'s data, and \
                     upshift neither verifies nor repairs it as such. Check the add-ons' \
                     attachments and config vars (`heroku addons -a {}`, `heroku config -a {}`)",
                    target.label,
                    url.db(),
                    url.endpoint(),
                    url.db(),
                    target.label,
                    self.app(),
                    self.app()
                ),
            });
        }
        let foreign = super::identity::foreign_owner(
            self.client(),
            self.app(),
            &vars.0,
            var,
            &target.name,
            &target.own_vars,
            &url,
        )
        .await?;
        if let Some(foreign) = foreign {
            return Err(StepError::NotTheAddons {
                addon: target.name.clone(),
                message: foreign.describe(var, &target.label, &url, self.app()),
            });
        }
        Ok(url)
    }

    /// Key counts for the reporter while a verifier pass runs over `subject`.
    pub fn progress(&self, subject: &str) -> KeysProgress {
        KeysProgress {
            reporter: self.runner.reporter.clone(),
            subject: subject.to_owned(),
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }
}

/// Forwards the verifier's key counts to the reporter.
pub(super) struct KeysProgress {
    reporter: Arc<dyn Reporter>,
    subject: String,
    total: AtomicU64,
    done: AtomicU64,
    /// Value bytes read, for the summary's "bytes verified".
    bytes: AtomicU64,
}

impl KeysProgress {
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl crate::verify::Progress for KeysProgress {
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

/// The Data API's `/wait` in words; Heroku may leave `message` out (issue 11, 5(e)).
pub(super) fn wait_text(wait: &crate::heroku::models::RedisWait) -> String {
    match (wait.message.is_empty(), wait.waiting) {
        (false, _) => wait.message.clone(),
        (true, true) => "waiting".into(),
        (true, false) => "not waiting".into(),
    }
}

pub(super) fn duration_text(d: Duration) -> String {
    crate::playbook::duration::format(d)
}
