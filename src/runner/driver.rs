//! The driver: asks the engine for the next step or compensation, dispatches it to its module
//! under `steps/`, and feeds the result back to the engine, journaling each event first.

use std::time::{Duration, Instant};

use super::active::ActiveRun;
use super::steps::{self, StepCtx};
use super::{
    RunError, RunEvent, RunReport, STEP_GRACE, StepError, StepOk, backoff, unless_stopped,
};
use crate::engine::{Action, Compensation, Event, Failure, Next, State};

impl ActiveRun<'_> {
    /// Runs the engine to its end: each turn renews the lock, reports a window overrun, and
    /// performs what the engine asks next. Every event is journaled before the engine takes it.
    pub async fn drive(&mut self) -> Result<RunReport, RunError> {
        self.report_event(&RunEvent::Started {
            run_id: self.run_id.clone(),
            journal: self.ledger.journal().path().display().to_string(),
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
                        self.abort(super::INTERRUPT_REASON)?;
                        continue;
                    }
                    self.run_step(step, action).await?;
                }
                Next::Compensate {
                    index,
                    compensation,
                } => self.run_compensation(index, compensation).await?,
            }
        }
    }

    /// Runs compensation `index` of the engine's stack, journaling its start and its end.
    async fn run_compensation(
        &mut self,
        index: usize,
        compensation: Compensation,
    ) -> Result<(), RunError> {
        let skipped = self.engine.is_skipped(index);
        // A resumed run may find this compensation started and not ended (a crash or a second
        // interrupt cut it off): it runs again, under the start already journaled. Every
        // compensation is idempotent; journaling a second start would be refused by the
        // engine and leave the run unfinishable with the app down.
        let resumed = matches!(
            self.engine.state(),
            State::RollingBack { in_progress: Some(i), .. } if *i == index
        );
        if !resumed {
            self.event(Event::CompensationStarted { index })?;
        }
        if skipped {
            self.report_event(&RunEvent::Compensating {
                compensation,
                done: true,
                message: Some("skipped: the writers stay stopped until the data is whole".into()),
            });
            return Ok(());
        }
        self.report_event(&RunEvent::Compensating {
            compensation,
            done: false,
            message: None,
        });
        let interrupts = self.runner.interrupts.clone();
        let result = unless_stopped(
            &interrupts,
            Box::pin(self.compensate_until_deadline(compensation)),
        )
        .await;
        // A compensation cut off at the second interrupt may have journaled something.
        self.ledger.fold_into(&mut self.known);
        match result {
            Ok(()) => {
                self.event(Event::CompensationSucceeded { index })?;
                self.report_event(&RunEvent::Compensating {
                    compensation,
                    done: true,
                    message: None,
                });
            }
            Err(StepError::Interrupted) => return Err(self.interrupted()),
            Err(StepError::Aborted) => {
                // Already rolling back: a first interrupt changes nothing; go on.
            }
            Err(e @ (StepError::Failed { .. } | StepError::NotTheAddons { .. })) => {
                let (message, data_unsafe) = self.failure_of(e);
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
        Ok(())
    }

    /// A failure's message and whether it leaves data unsafe. A refusal because the server
    /// behind an add-on's URL is not proven the add-on's is journaled first (`ForeignServer`):
    /// the to-do list, now or after a resume, must not then offer a repair through that same
    /// config var, which would do by hand what the run refused. It is data-unsafe.
    fn failure_of(&mut self, e: StepError) -> (String, bool) {
        match e {
            StepError::Failed {
                message,
                data_unsafe,
                ..
            } => (message, data_unsafe),
            StepError::NotTheAddons { addon, message } => {
                let journaled = self
                    .ledger
                    .record(super::record::Record::ForeignServer { addon });
                self.ledger.fold_into(&mut self.known);
                match journaled {
                    Ok(()) => (message, true),
                    Err(_) => (format!("{message} (not journaled)"), true),
                }
            }
            // The callers handle the interrupts before they ask.
            StepError::Aborted | StepError::Interrupted => ("interrupted".into(), true),
        }
    }

    /// Runs step `step`: journals its start, performs it (retrying as its playbook entry says,
    /// racing the second interrupt), and journals how it ended.
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
                    let within = tokio::time::timeout(
                        spec.timeout + STEP_GRACE,
                        self.perform(action, spec.timeout),
                    )
                    .await;
                    // An attempt cut off here may have journaled before it stalled.
                    self.ledger.fold_into(&mut self.known);
                    let result = within.unwrap_or_else(|_| {
                        Err(StepError::failed(format!(
                            "step {action} did not finish within its timeout of {}",
                            crate::playbook::duration::format(spec.timeout)
                        )))
                    });
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
        // A step cut off at the second interrupt may have journaled something.
        self.ledger.fold_into(&mut self.known);
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
                self.abort(super::INTERRUPT_REASON)?;
            }
            Err(e @ (StepError::Failed { .. } | StepError::NotTheAddons { .. })) => {
                let (message, data_unsafe) = self.failure_of(e);
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

    /// One attempt at a step: builds the read-only context, calls the step's module, stores
    /// its typed output, and folds what it journaled into the run's memory, even when it
    /// failed (a snapshot file written before a later check failed is still known).
    async fn perform(&mut self, action: Action, timeout: Duration) -> Result<StepOk, StepError> {
        let ctx = StepCtx {
            runner: self.runner,
            request: &self.request,
            run_id: &self.run_id,
            known: &self.known,
        };
        let log = &mut self.ledger;
        let done = |note: String| StepOk::Done(Some(note));
        let result = match action {
            Action::Capture => steps::capture::run(&ctx, log)
                .await
                .map(|c| done(format!("formation {}", c.formation))),
            Action::Guard => {
                let guarded = steps::guard::run(&ctx, log);
                if let Some(admitted) = guarded.window {
                    self.window = Some((admitted, Instant::now()));
                }
                Ok(if guarded.blocked {
                    StepOk::Blocked
                } else {
                    StepOk::Done(None)
                })
            }
            Action::Maintenance => steps::maintenance::run(&ctx, log)
                .await
                .map(|m| done(m.note.to_owned())),
            Action::Scale => steps::scale::run(&ctx, log)
                .await
                .map(|s| done(s.formation)),
            Action::WaitDrained => steps::wait_drained::run(&ctx, log, timeout)
                .await
                .map(|d| done(d.note)),
            Action::Snapshot => steps::snapshot::run(&ctx, log).await.map(|s| done(s.note)),
            Action::ChangePlan => steps::change_plan::run(&ctx, log)
                .await
                .map(|c| done(c.note)),
            Action::WaitProvisioned => steps::wait_provisioned::run(&ctx, timeout)
                .await
                .map(|p| done(p.note)),
            Action::Verify => steps::verify::run(&ctx, log).await.map(|v| done(v.note)),
            Action::RestoreFormation => steps::restore_formation::run(&ctx, log)
                .await
                .map(|r| done(r.formation)),
            Action::Health => steps::health::run(&ctx, timeout)
                .await
                .map(|h| done(h.note)),
            Action::ProvisionNew => steps::provision_new::run(&ctx, log, timeout)
                .await
                .map(|p| done(p.note)),
            Action::CopyLive => steps::copy_live::run(&ctx, log).await.map(|c| done(c.note)),
            Action::CatchUp => steps::catch_up::run(&ctx, log).await.map(|c| done(c.note)),
            Action::MoveAttachments => steps::move_attachments::run(&ctx, log)
                .await
                .map(|m| done(m.note)),
            Action::RetireOld => steps::retire_old::run(&ctx, log)
                .await
                .map(|r| done(r.note)),
        };
        self.ledger.fold_into(&mut self.known);
        result
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

    /// One attempt at a compensation; each lives in the module of the step it undoes.
    async fn compensate(&mut self, compensation: Compensation) -> Result<(), StepError> {
        let ctx = StepCtx {
            runner: self.runner,
            request: &self.request,
            run_id: &self.run_id,
            known: &self.known,
        };
        let log = &mut self.ledger;
        let result = match compensation {
            Compensation::RestoreMaintenance => steps::maintenance::restore(&ctx, log).await,
            Compensation::RestoreFormation => steps::restore_formation::writers(&ctx, log)
                .await
                .map(|_| ()),
            Compensation::SettlePlan => steps::settle::run(&ctx, log).await,
            Compensation::DestroyNew => steps::provision_new::destroy(&ctx, log).await,
            Compensation::RestoreNotifications => {
                steps::copy_live::restore_notifications(&ctx, log).await
            }
            Compensation::MoveBack => steps::move_attachments::move_back(&ctx, log).await,
        };
        self.ledger.fold_into(&mut self.known);
        result
    }

    /// Sleeps `pause` between compensation attempts. A second interrupt leaves at once (the
    /// run stays resumable); a first one changes nothing while rolling back.
    async fn nap(&self, pause: Duration) -> Result<(), StepError> {
        tokio::select! {
            biased;
            () = self.runner.interrupts.stopped() => Err(StepError::Interrupted),
            () = tokio::time::sleep(pause) => Ok(()),
        }
    }
}
