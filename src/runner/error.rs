//! What can stop a run ([`RunError`], for callers) and what a step says back to the driver
//! ([`StepOk`], [`StepError`]).

use std::path::PathBuf;

use thiserror::Error;

use super::backoff::Transient;
use crate::engine::EngineError;
use crate::heroku::HerokuError;
use crate::journal::JournalError;

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
                | HerokuError::BadToken { .. }
                | HerokuError::BadBaseUrl { .. }
                | HerokuError::InvalidParams { .. }
                | HerokuError::AmbiguousAddon { .. }
                | HerokuError::WrongAddon { .. },
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

/// What a step's effect says back.
pub(super) enum StepOk {
    Done(Option<String>),
    Blocked,
}

/// A step's failure.
#[derive(Debug)]
pub(super) enum StepError {
    /// The step failed; with `data_unsafe`, a critical add-on's data is not known to be whole.
    /// With `transient`, the same call may succeed later (a rate limit, a 5xx, a lost
    /// connection): compensations try again until their deadline.
    Failed {
        message: String,
        data_unsafe: bool,
        transient: Option<Transient>,
    },
    /// The server behind `addon`'s config var is not proven to be the add-on's (it is another
    /// add-on's, or holds data the add-on never held): nothing was written to it. Handled as a
    /// data-unsafe failure; the driver journals it first, so that the to-do list does not send
    /// the operator to repair that server by hand through the same config var.
    NotTheAddons { addon: String, message: String },
    /// The first interrupt arrived during a wait: stop and roll back.
    Aborted,
    /// The second interrupt: leave now, resumable.
    Interrupted,
}

impl StepError {
    pub(super) fn failed(message: impl Into<String>) -> Self {
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
