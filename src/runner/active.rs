//! A run in progress: its engine, its ledger, its lock and what it knows, and how it ends
//! (the summary, the truthful outcome, the steps to finish by hand).

use std::time::{Duration, Instant};

use super::ledger::{Known, Ledger};
use super::record::Record;
use super::runs::holds_critical;
use super::target::Target;
use super::{AddonReport, RunError, RunEvent, RunReport, Runner};
use crate::engine::{Engine, Event, Outcome, State};
use crate::journal::{self, AppLock, Journal};
use crate::plan::RunRequest;
use crate::window::gate;

/// A run in progress: the engine, its ledger (the journal), its lock and what it has learned.
pub(super) struct ActiveRun<'r> {
    pub runner: &'r Runner,
    pub run_id: String,
    pub ledger: Ledger,
    pub lock: AppLock,
    pub request: RunRequest,
    pub engine: Engine,
    /// What the run has learned, folded from its records and its steps' outputs.
    pub known: Known,
    pub started: Instant,
    /// The window opening the guard step admitted the run into, and when it did.
    pub window: Option<(gate::Admitted, Instant)>,
    /// Overrun already reported: (projected, actual).
    overrun_told: (bool, bool),
    /// An interrupt to this process asked for the rollback (an abort journaled with
    /// [`super::INTERRUPT_REASON`]). Not rebuilt on `resume`: a resume that finishes an
    /// earlier interrupt's rollback was not itself interrupted, and exits as a rollback (1).
    interrupted: bool,
    /// The writers were still stopped when the run finished (set by [`ActiveRun::finish`],
    /// which closes the downtime clock): the to-do list after a journal failure asks to bring
    /// them back only then.
    writers_left_down: bool,
}

impl<'r> ActiveRun<'r> {
    pub fn new(
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
            ledger: Ledger::new(journal, runner.interrupts.clone(), runner.reporter.clone()),
            lock,
            request,
            engine,
            known: Known::default(),
            started: Instant::now(),
            window: None,
            overrun_told: (false, false),
            interrupted: false,
            writers_left_down: false,
        }
    }

    pub fn report_event(&self, event: &RunEvent) {
        self.runner.reporter.report(event);
    }

    /// The add-ons of the run, as the capture found them.
    pub fn targets(&self) -> Vec<Target> {
        self.known.targets(&self.request)
    }

    /// Appends a record to the journal (see [`Ledger::append`]).
    pub fn record(&mut self, record: &Record) -> Result<(), RunError> {
        self.ledger.append(record)
    }

    #[allow(clippy::needless_pass_by_value)] // events are built at the call site
    pub fn event(&mut self, event: Event) -> Result<(), RunError> {
        let mut probe = self.engine.clone();
        probe.apply(&event)?;
        self.ledger.append(&Record::Engine {
            event: event.clone(),
        })?;
        self.engine = probe;
        self.note_interrupt(&event);
        Ok(())
    }

    /// Remembers an abort an interrupt asked for, so the rollback it starts ends as
    /// "interrupted and rolled back" (exit 130) rather than "failed" (exit 1).
    fn note_interrupt(&mut self, event: &Event) {
        if let Event::AbortRequested { reason } = event {
            self.interrupted |= super::is_interrupt_reason(reason);
        }
    }

    pub fn abort(&mut self, reason: &str) -> Result<(), RunError> {
        match self.engine.state() {
            State::Forward { .. } | State::InStep { .. } => self.event(Event::AbortRequested {
                reason: reason.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// Rebuilds state from a journal: the engine by replay, the run's memory by the same
    /// fold a live run uses ([`Known::absorb`]).
    pub fn restore_from(&mut self, entries: &[journal::Entry<Record>]) -> Result<(), RunError> {
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
                Record::Downtime { started: true } if open_since_ms.is_none() => {
                    open_since_ms = Some(e.at_ms);
                }
                Record::Downtime { started: false } => {
                    if let Some(since) = open_since_ms.take() {
                        closed_ms = closed_ms.saturating_add(e.at_ms.saturating_sub(since).max(0));
                    }
                }
                record => self.known.absorb(record),
            }
        }
        // The run's total, like its downtime, counts from its first record, not this process.
        if let Some(first) = entries.first() {
            let now = jiff::Timestamp::now().as_millisecond();
            let ago =
                Duration::from_millis(u64::try_from(now.saturating_sub(first.at_ms)).unwrap_or(0));
            self.started = Instant::now().checked_sub(ago).unwrap_or(self.started);
        }
        self.known.downtime = Duration::from_millis(u64::try_from(closed_ms).unwrap_or(0));
        self.known.downtime_since = open_since_ms.map(|since| {
            let now = jiff::Timestamp::now().as_millisecond();
            let ago = Duration::from_millis(u64::try_from(now.saturating_sub(since)).unwrap_or(0));
            Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
        });
        Ok(())
    }

    pub fn last_message(entries: &[journal::Entry<Record>]) -> Option<String> {
        entries.iter().rev().find_map(|e| match &e.record {
            Record::Finished { message, .. } => message.clone(),
            _ => None,
        })
    }

    /// The summary of a run that had already finished when `resume` or `rollback` named it:
    /// nothing is done, so it is the journal's summary (its keys verified, its total up to the
    /// `Finished` record, not to now) under a line that says so; `rollback` says plainly that
    /// nothing was rolled back, and how to go back when the new plans stayed.
    pub fn finished_report(
        &self,
        entries: &[journal::Entry<Record>],
        outcome: Outcome,
        rollback: bool,
    ) -> RunReport {
        let mut report = self.report(outcome, None);
        let end = entries
            .iter()
            .rev()
            .find(|e| matches!(e.record, Record::Finished { .. }))
            .or(entries.last());
        if let (Some(first), Some(end)) = (entries.first(), end) {
            report.duration =
                Duration::from_millis(u64::try_from(end.at_ms - first.at_ms).unwrap_or(0));
        }
        for e in entries {
            if let Record::Verified {
                addon,
                keys,
                differences,
                repaired,
                ..
            } = &e.record
                && let Some(a) = report.addons.iter_mut().find(|a| &a.addon == addon)
            {
                a.keys_verified = *keys;
                a.differences = *differences;
                a.repaired = *repaired;
            }
        }
        let at = end
            .and_then(|e| jiff::Timestamp::from_millisecond(e.at_ms).ok())
            .map_or_else(String::new, |t| {
                format!(" at {}", t.strftime("%Y-%m-%d %H:%M:%S UTC"))
            });
        let finished = format!(
            "run {} already finished ({}{at})",
            self.run_id,
            outcome.as_str()
        );
        let head = if !rollback {
            format!("{finished}; nothing to do")
        } else if matches!(outcome, Outcome::Succeeded | Outcome::KeptNewPlan) {
            let back: Vec<String> = report
                .addons
                .iter()
                .filter(|a| a.from != a.to)
                .map(|a| format!("--change {}={}", a.label.to_lowercase(), a.from))
                .collect();
            format!(
                "{finished}: nothing was rolled back (a finished run is not undone). To go back \
                 to the previous plan, change it again: upshift run -a {} {}",
                self.request.app,
                back.join(" ")
            )
        } else {
            format!("{finished}: nothing was rolled back (a finished run is not undone)")
        };
        report.message = Some(match Self::last_message(entries) {
            Some(m) => format!("{head}\n{m}"),
            None => head,
        });
        report
    }

    /// Once admitted into a window, reports (once each) a projected and an actual overrun.
    /// The run carries on either way: past the first write it finishes or rolls back.
    pub fn check_overrun(&mut self) -> Result<(), RunError> {
        let (Some((admitted, at)), Some(window)) = (self.window, &self.runner.config.window) else {
            return Ok(());
        };
        let now = jiff::Timestamp::now();
        let Some(notice) = gate::overrun_notice(&admitted, now, at.elapsed()) else {
            return Ok(());
        };
        let occ = admitted.occ;
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
            ends_at_utc: occ.end,
            by: notice.by,
            expected: notice.expected,
        };
        self.ledger.append(&Record::WindowOverrun {
            window: window.spec(),
            ends_at: gate::local(window, occ.end),
            by_ms: u64::try_from(notice.by.as_millis()).unwrap_or(u64::MAX),
            expected: notice.expected,
        })?;
        self.report_event(&event);
        Ok(())
    }

    pub fn finish(&mut self, outcome: Outcome) -> Result<(), RunError> {
        self.writers_left_down = self.known.downtime_since.is_some();
        if let Some(since) = self.known.downtime_since.take() {
            self.known.downtime += since.elapsed();
        }
        let message = self.outcome_message(outcome);
        self.ledger.append(&Record::Finished { outcome, message })?;
        let outcome = if self.ledger.failure().is_some() {
            Outcome::NeedsAttention
        } else {
            outcome
        };
        self.report_event(&RunEvent::Finished { outcome });
        Ok(())
    }

    #[allow(clippy::needless_pass_by_value)] // the message is replaced, not borrowed
    pub fn report(&self, outcome: Outcome, message: Option<String>) -> RunReport {
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
        let (outcome, message) = match self.ledger.failure() {
            Some((error, kept)) => (
                Outcome::NeedsAttention,
                Some(self.journal_failure_message(outcome, ended, error, *kept)),
            ),
            None => (outcome, message),
        };
        let addons = self
            .targets()
            .into_iter()
            .map(|t| {
                self.known
                    .reports
                    .get(&t.name)
                    .cloned()
                    .unwrap_or(AddonReport {
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
            interrupted: self.interrupted && outcome == Outcome::RolledBack,
            message,
            addons,
            downtime: self.known.downtime,
            duration: self.started.elapsed(),
            journal: self.ledger.journal().path().to_owned(),
        }
    }

    /// For anything but success: what happened and, for needs-attention, the commands to
    /// finish by hand.
    pub fn outcome_message(&self, outcome: Outcome) -> Option<String> {
        let State::Finished { .. } = self.engine.state() else {
            return None;
        };
        match outcome {
            Outcome::Succeeded | Outcome::Blocked => None,
            Outcome::RolledBack if self.interrupted => Some(format!(
                "the run was interrupted and rolled back, as asked; the app {} runs with its previous formation; see {}",
                self.request.app,
                self.ledger.journal().path().display()
            )),
            Outcome::RolledBack => Some(format!(
                "the run failed and was rolled back; the app {} runs with its previous formation; see {}",
                self.request.app,
                self.ledger.journal().path().display()
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
            .filter(|t| self.known.settled_on.get(&t.name) == Some(&t.to))
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
            self.ledger.journal().path().display()
        )
    }

    /// The interrupt error, saying whether the app is down. Down as soon as the scale-down
    /// has started (its compensation is on the stack) and not yet been undone: a second
    /// interrupt can land after the PATCH reached the platform and before its answer was
    /// journaled, and "the app runs" would then be a lie told to someone walking away.
    pub fn interrupted(&self) -> RunError {
        // Started and never journaled as stopped or restored: unknown, so said as down.
        let scaling_started = self
            .engine
            .stack()
            .contains(&crate::engine::Compensation::RestoreFormation)
            && self.known.downtime.is_zero();
        RunError::Interrupted {
            run_id: self.run_id.clone(),
            app: self.request.app.clone(),
            writers_down: if self.known.downtime_since.is_some() || scaling_started {
                self.request.params.writers.clone()
            } else {
                Vec::new()
            },
        }
    }

    /// A rolled-back run whose plan change landed for some add-on did not go back: say so.
    pub fn truthful(&self, outcome: Outcome) -> Outcome {
        let kept = self
            .targets()
            .iter()
            .any(|t| self.known.settled_on.get(&t.name) == Some(&t.to));
        if outcome == Outcome::RolledBack && kept {
            Outcome::KeptNewPlan
        } else {
            outcome
        }
    }

    /// After a journal write failure: what memory says the run did, the to-do list built from
    /// what is still undone (the manual steps only when the run itself needed attention or
    /// left the writers stopped), and advice for the error that happened, not a guess.
    fn journal_failure_message(
        &self,
        outcome: Outcome,
        ended: &str,
        error: &str,
        kept: usize,
    ) -> String {
        let dir = self
            .ledger
            .journal()
            .path()
            .parent()
            .unwrap_or(self.ledger.journal().path())
            .display()
            .to_string();
        let root = self.runner.config.state.root().display().to_string();
        let fix = journal_advice(self.ledger.failure_kind(), &root, &dir);
        let undone = outcome == Outcome::NeedsAttention || self.writers_left_down;
        let head = format!(
            "the journal could not be written ({error}); it keeps only its first {kept} records, \
             so it is behind the app. In memory the run ended {ended}."
        );
        let aside = format!("move {dir} aside (resuming it would replay a past the app has left)");
        if undone {
            format!(
                "{}\n{head} Then: {fix}; finish the steps above; {aside}",
                self.manual_steps()
            )
        } else {
            format!(
                "run {} needs attention: its journal is incomplete; the app needs nothing more.\n\
                 {head} To do:\n  - {fix}\n  - {aside}",
                self.run_id
            )
        }
    }

    fn manual_steps(&self) -> String {
        let app = &self.request.app;
        let mut lines = vec![format!(
            "run {} needs attention: not everything could be undone automatically. To finish by hand:",
            self.run_id
        )];
        for t in self.targets() {
            let var = t.url_var.clone().unwrap_or_else(|| "REDIS_URL".into());
            if self.known.foreign.contains(&t.name) {
                // The run refused the server behind that var as not this add-on's: a restore
                // through it would do by hand the repair the run refused (hostile pass 5, #7).
                lines.push(format!(
                    "  - {}: upshift refused the server its config var {var} leads to (it is not \
                     proven to be add-on {}'s; see the journal). Do NOT restore through that \
                     config var as it is. First check the attachments and config vars: \
                     `heroku addons -a {app}` and `heroku config -a {app}`; make {var} lead to \
                     {}'s own server (`heroku addons:info {} -a {app}`), then run \
                     `upshift resume {}`, which checks the URL again before it verifies or \
                     repairs",
                    t.label, t.name, t.name, t.name, self.run_id
                ));
                if let Some(file) = self.known.snapshots.get(&t.name) {
                    lines.push(format!(
                        "    the snapshot stays at {} (restore it only once the URL check \
                         above proves {var} leads to {}'s server)",
                        file.display(),
                        t.name
                    ));
                }
                continue;
            }
            if let Some(file) = self.known.snapshots.get(&t.name) {
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
        if let Some(capture) = &self.known.capture {
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
        lines.push(format!(
            "  journal: {}",
            self.ledger.journal().path().display()
        ));
        lines.join("\n")
    }
}

/// What to do about a journal that could not be written, by the error's kind.
fn journal_advice(kind: Option<std::io::ErrorKind>, root: &str, dir: &str) -> String {
    use std::io::ErrorKind;
    match kind {
        Some(ErrorKind::StorageFull | ErrorKind::QuotaExceeded) => {
            format!("free space under {root}")
        }
        Some(ErrorKind::PermissionDenied) => format!(
            "give upshift write access to {dir} again (its permissions, its owner, or an \
             immutable flag: `lsattr {dir}`)"
        ),
        Some(ErrorKind::ReadOnlyFilesystem) => {
            format!("make {root} writable again (its file system is read-only)")
        }
        _ => format!("fix what stopped the write under {root} (the error above)"),
    }
}
