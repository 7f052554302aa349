//! The pure state machine of a run: which step comes next, what to compensate, how it ends.
//!
//! No I/O and no clock: the runner feeds [`Event`]s in and performs the [`Next`] effect the
//! engine asks for. Every transition is in one `match` ([`Engine::apply`]); a pair that is not
//! allowed is an [`EngineError`], never a panic. The engine is rebuilt after a crash by
//! replaying the journal's events through the same function, so resume and a fresh run cannot
//! disagree about where they are.
//!
//! Compensation discipline: an effectful step pushes its compensation when it *starts* (its
//! effect may have landed even if the step then failed); compensations are idempotent and
//! re-derive from the platform, so running one whose step had no effect is harmless. Each
//! runs at most once, in reverse order.

use serde::{Deserialize, Serialize};

mod step;

pub use step::{ALL_ACTIONS, ALL_COMPENSATIONS, Action, Compensation};

/// How a run ends. Exactly one per run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every step succeeded.
    Succeeded,
    /// A step failed; every compensation ran; the app is restored.
    RolledBack,
    /// A guard blocked the run before anything was written.
    Blocked,
    /// Something could not be compensated, or data could not be made whole: the journal's
    /// last record says what to do by hand.
    NeedsAttention,
    /// Stopped after the point of no return: a plan change cannot be undone in place, so an
    /// add-on stays on its new plan (billing follows it), its data verified, and the app runs
    /// on its previous formation. Never produced by the engine (it does not know plans): the
    /// runner tells a rollback that kept a new plan from one that did not.
    KeptNewPlan,
}

impl Outcome {
    /// The name scripts see (the serde name): one source for JSON, journals and summaries.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::RolledBack => "rolled-back",
            Self::Blocked => "blocked",
            Self::NeedsAttention => "needs-attention",
            Self::KeptNewPlan => "kept-new-plan",
        }
    }

    /// The process exit code for this outcome.
    pub fn exit_code(self) -> crate::exit::ExitCode {
        use crate::exit::ExitCode;
        match self {
            Self::Succeeded => ExitCode::Success,
            Self::RolledBack => ExitCode::RolledBack,
            Self::Blocked => ExitCode::Blocked,
            Self::NeedsAttention => ExitCode::NeedsAttention,
            Self::KeptNewPlan => ExitCode::KeptNewPlan,
        }
    }
}

/// Why a step failed, as far as the engine needs to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Human message (no secrets).
    pub message: String,
    /// True when a critical add-on's data is not known to be whole: the writers then stay
    /// stopped and the run ends `needs-attention`, because bringing the app back would write
    /// on top of missing data.
    pub data_unsafe: bool,
}

/// Something that happened, fed to [`Engine::apply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The guard step `step` found at least one guard blocking; nothing was written.
    GuardsBlocked { step: usize },
    /// Step `step` is about to perform its effect.
    StepStarted { step: usize },
    /// Step `step` finished its effect.
    StepSucceeded { step: usize },
    /// Step `step` failed.
    StepFailed { step: usize, failure: Failure },
    /// The operator (Ctrl-C, SIGTERM, `upshift rollback`) asked to stop and roll back.
    AbortRequested { reason: String },
    /// Compensation number `index` of the stack (see [`Engine::pending_compensation`]) started.
    CompensationStarted { index: usize },
    /// That compensation finished.
    CompensationSucceeded { index: usize },
    /// That compensation failed: the run will end `needs-attention`. With `data_unsafe`, a
    /// critical add-on's data could not be made whole, so the app must not come back.
    CompensationFailed {
        index: usize,
        message: String,
        #[serde(default)]
        data_unsafe: bool,
    },
    /// `upshift resume` or `upshift rollback` reopened a run that ended `needs-attention`
    /// with compensations on its stack: every compensation runs again (each is idempotent and
    /// re-derives from the platform), so a run that needs attention is always resumable.
    Reopened,
}

/// Where the critical data of a run stands. Derived from events, never set by the runner:
/// "safe" is something only a successful verify (or settle) can establish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataState {
    /// Before the point of no return (the plan PATCH): the data is where the writers left it.
    Untouched,
    /// The plan PATCH started: the data is not known to be whole until a verify proves it.
    AtRisk,
    /// A verify (the step, or the settle compensation) found it equal to the snapshot.
    Proven,
}

/// Where a run stands. Each state carries what is known at that point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum State {
    /// Going forward; `next` is the index of the next step to run.
    Forward { next: usize },
    /// Step `step` started and has not reported back.
    InStep { step: usize },
    /// Rolling back after `cause`; compensations run from the top of the stack.
    RollingBack {
        cause: Failure,
        /// How many compensations on the stack are done (from the top).
        done: usize,
        /// Compensation `index` started and has not reported back.
        in_progress: Option<usize>,
        /// Compensations that failed, with their messages.
        failed: Vec<(usize, String)>,
    },
    /// Terminal.
    Finished { outcome: Outcome },
}

/// What the runner should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Run step `step` of the playbook.
    RunStep { step: usize, action: Action },
    /// Run this compensation.
    Compensate {
        index: usize,
        compensation: Compensation,
    },
    /// The run is over.
    Done { outcome: Outcome },
}

/// A transition that is not allowed from the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {event} is not allowed in state {state}: the journal and the run disagree")]
pub struct EngineError {
    pub state: String,
    pub event: String,
}

/// The state machine for one run of a playbook's steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Engine {
    actions: Vec<Action>,
    state: State,
    /// Compensations pushed by started steps, bottom first.
    stack: Vec<Compensation>,
    /// Whether any effectful step has started: a failure after the stack is settled is then
    /// not "nothing happened".
    wrote: bool,
    /// Whether the run holds critical data (false only when every add-on is a `--cache`,
    /// which keeps the looser rule: its loss is tolerated).
    critical: bool,
    /// Where the critical data stands; see [`DataState`].
    data: DataState,
}

impl Engine {
    /// A fresh engine for these steps, in order.
    pub fn new(actions: Vec<Action>) -> Self {
        Self {
            actions,
            state: State::Forward { next: 0 },
            stack: Vec::new(),
            wrote: false,
            critical: true,
            data: DataState::Untouched,
        }
    }

    /// Whether the run holds critical data. Defaults to true (the safe side): only a run
    /// whose every add-on is a cache may bring the writers back without a successful verify.
    #[must_use]
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// Rebuilds an engine by replaying events (the journal) through [`Engine::apply`].
    ///
    /// # Errors
    /// The first event that does not fit.
    pub fn replay<'a>(
        actions: Vec<Action>,
        critical: bool,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Result<Self, EngineError> {
        let mut engine = Self::new(actions).critical(critical);
        for event in events {
            engine.apply(event)?;
        }
        Ok(engine)
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The steps of this run.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// Where the critical data stands.
    pub fn data(&self) -> DataState {
        self.data
    }

    /// Whether critical data is past the point of no return and not proven whole: the writers
    /// must then stay stopped, whatever the failure said about itself.
    pub fn data_at_risk(&self) -> bool {
        self.data == DataState::AtRisk
    }

    /// Whether a finished run can be reopened by `resume`/`rollback` (see [`Event::Reopened`]).
    pub fn can_reopen(&self) -> bool {
        matches!(
            self.state,
            State::Finished {
                outcome: Outcome::NeedsAttention
            }
        ) && !self.stack.is_empty()
    }

    /// The compensation stack, bottom first.
    pub fn stack(&self) -> &[Compensation] {
        &self.stack
    }

    /// The outcome, once terminal.
    pub fn outcome(&self) -> Option<Outcome> {
        match self.state {
            State::Finished { outcome } => Some(outcome),
            _ => None,
        }
    }

    /// The index into the stack of the compensation to run next while rolling back.
    pub fn pending_compensation(&self) -> Option<usize> {
        match &self.state {
            State::RollingBack {
                done, in_progress, ..
            } => in_progress.or_else(|| self.stack.len().checked_sub(done + 1)),
            _ => None,
        }
    }

    /// What the runner should do now.
    pub fn next(&self) -> Next {
        match &self.state {
            State::Forward { next } => match self.actions.get(*next) {
                Some(action) => Next::RunStep {
                    step: *next,
                    action: *action,
                },
                None => Next::Done {
                    outcome: Outcome::Succeeded,
                },
            },
            State::InStep { step } => Next::RunStep {
                step: *step,
                action: self.actions[*step],
            },
            State::RollingBack { .. } => match self.pending_compensation() {
                Some(index) => Next::Compensate {
                    index,
                    compensation: self.stack[index],
                },
                None => Next::Done {
                    outcome: self.rollback_outcome(),
                },
            },
            State::Finished { outcome } => Next::Done { outcome: *outcome },
        }
    }

    fn rollback_outcome(&self) -> Outcome {
        match &self.state {
            State::RollingBack { cause, failed, .. }
                if !failed.is_empty() || cause.data_unsafe || self.data_at_risk() =>
            {
                Outcome::NeedsAttention
            }
            _ => Outcome::RolledBack,
        }
    }

    /// Whether a compensation is skipped while rolling back from `cause`: with a critical
    /// add-on's data not whole, the app must not come back (it would write on top of the hole),
    /// so restoring the formation and the maintenance flag waits for the operator.
    ///
    /// Unsafe is the default after the point of no return: the cause's own `data_unsafe` can
    /// only add to it, and only a verify that succeeded ([`DataState::Proven`]) lifts it.
    fn skipped(&self, cause: &Failure, compensation: Compensation) -> bool {
        (cause.data_unsafe || self.data_at_risk())
            && matches!(
                compensation,
                Compensation::RestoreFormation | Compensation::RestoreMaintenance
            )
    }

    /// Applies one event. The only place transitions happen.
    ///
    /// # Errors
    /// [`EngineError`] when the event does not fit the state (the state is left unchanged).
    pub fn apply(&mut self, event: &Event) -> Result<(), EngineError> {
        let err = |state: &State, event: &Event| EngineError {
            state: format!("{state:?}"),
            event: format!("{event:?}"),
        };
        let new_state = match (&self.state, event) {
            (State::Forward { next }, Event::StepStarted { step }) if step == next => {
                let action = self.actions[*step];
                if action.writes() {
                    self.wrote = true;
                }
                if action.at_risk() && self.critical {
                    self.data = DataState::AtRisk;
                }
                if let Some(c) = action.compensation()
                    && !self.stack.contains(&c)
                {
                    self.stack.push(c);
                }
                State::InStep { step: *step }
            }
            (
                State::Forward { next: s } | State::InStep { step: s },
                Event::StepSucceeded { step },
            ) if s == step => {
                if self.actions[*step].proves() && self.data == DataState::AtRisk {
                    self.data = DataState::Proven;
                }
                if self.actions[*step].settles() {
                    // The app is back with its data verified: nothing is left to undo.
                    self.stack.clear();
                }
                if step + 1 >= self.actions.len() {
                    State::Finished {
                        outcome: Outcome::Succeeded,
                    }
                } else {
                    State::Forward { next: step + 1 }
                }
            }
            (
                State::Forward { next: s } | State::InStep { step: s },
                Event::GuardsBlocked { step },
            ) if s == step && self.actions[*step] == Action::Guard && !self.wrote => {
                State::Finished {
                    outcome: Outcome::Blocked,
                }
            }
            (
                State::InStep { step: s } | State::Forward { next: s },
                Event::StepFailed { step, failure },
            ) if s == step => {
                if self.stack.is_empty() {
                    // Nothing to undo. Before any write that is a plain failure; after the app
                    // was restored (health, say) a person has to look.
                    let outcome = if failure.data_unsafe || self.wrote || self.data_at_risk() {
                        Outcome::NeedsAttention
                    } else {
                        Outcome::RolledBack
                    };
                    State::Finished { outcome }
                } else {
                    Self::rolling_back(failure.clone())
                }
            }
            (State::Forward { .. }, Event::AbortRequested { reason }) => {
                if self.stack.is_empty() {
                    State::Finished {
                        outcome: if self.wrote {
                            Outcome::NeedsAttention
                        } else {
                            Outcome::RolledBack
                        },
                    }
                } else {
                    Self::rolling_back(Failure {
                        message: reason.clone(),
                        data_unsafe: false,
                    })
                }
            }
            (State::InStep { .. }, Event::AbortRequested { reason }) if !self.stack.is_empty() => {
                // The current step's effect may have landed; its compensation is on the stack.
                Self::rolling_back(Failure {
                    message: reason.clone(),
                    data_unsafe: false,
                })
            }
            (
                State::RollingBack {
                    cause,
                    done,
                    in_progress: None,
                    failed,
                },
                Event::CompensationStarted { index },
            ) if Some(*index) == self.pending_compensation() => {
                if self.skipped(cause, self.stack[*index]) {
                    // Not run: recorded as done so the next one comes up.
                    self.after_compensation(cause, done + 1, failed.clone())
                } else {
                    State::RollingBack {
                        cause: cause.clone(),
                        done: *done,
                        in_progress: Some(*index),
                        failed: failed.clone(),
                    }
                }
            }
            (
                State::RollingBack {
                    cause,
                    done,
                    in_progress: Some(i),
                    failed,
                },
                Event::CompensationSucceeded { index },
            ) if i == index => {
                if self.stack[*index].proves() && self.data == DataState::AtRisk {
                    // Settling waits, verifies against the snapshot and repairs; a move back
                    // puts the app on data no one wrote since the drain: success is the proof
                    // the writers need.
                    self.data = DataState::Proven;
                }
                self.after_compensation(cause, done + 1, failed.clone())
            }
            (
                State::RollingBack {
                    cause,
                    done,
                    in_progress: Some(i),
                    failed,
                },
                Event::CompensationFailed {
                    index,
                    message,
                    data_unsafe,
                },
            ) if i == index => {
                let mut failed = failed.clone();
                failed.push((*index, message.clone()));
                let cause = Failure {
                    message: cause.message.clone(),
                    data_unsafe: cause.data_unsafe || *data_unsafe,
                };
                self.after_compensation(&cause, done + 1, failed)
            }
            (State::InStep { .. }, Event::AbortRequested { .. }) => State::Finished {
                // Stopped before anything needed undoing.
                outcome: if self.wrote {
                    Outcome::NeedsAttention
                } else {
                    Outcome::RolledBack
                },
            },
            (State::RollingBack { .. }, Event::AbortRequested { .. }) => self.state.clone(),
            (State::Finished { .. }, Event::Reopened) if self.can_reopen() => {
                // The earlier cause's own verdict is not carried over: the data state decides
                // whether the writers may come back, and only a new verify can prove it.
                Self::rolling_back(Failure {
                    message: "reopened to finish the rollback".into(),
                    data_unsafe: false,
                })
            }
            (state, event) => return Err(err(state, event)),
        };
        self.state = new_state;
        Ok(())
    }

    fn rolling_back(cause: Failure) -> State {
        State::RollingBack {
            cause,
            done: 0,
            in_progress: None,
            failed: Vec::new(),
        }
    }

    fn after_compensation(
        &self,
        cause: &Failure,
        done: usize,
        failed: Vec<(usize, String)>,
    ) -> State {
        if done >= self.stack.len() {
            let outcome = if failed.is_empty() && !cause.data_unsafe && !self.data_at_risk() {
                Outcome::RolledBack
            } else {
                Outcome::NeedsAttention
            };
            State::Finished { outcome }
        } else {
            State::RollingBack {
                cause: cause.clone(),
                done,
                in_progress: None,
                failed,
            }
        }
    }

    /// Whether compensation `index` would be skipped (see the rollback rules); the runner
    /// reports it instead of performing it.
    pub fn is_skipped(&self, index: usize) -> bool {
        match &self.state {
            State::RollingBack { cause, .. } => self
                .stack
                .get(index)
                .is_some_and(|c| self.skipped(cause, *c)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;
