//! The runs on this machine: which are unfinished, which `resume` may pick.

use super::RunError;
use super::record::Record;
use crate::engine::Engine;
use crate::journal::{self, JournalError, StateDir};
use crate::plan::RunRequest;

/// Whether any add-on of the run holds critical data (the default policy). A run of caches
/// only keeps the looser rule: their loss is tolerated, so no verify is needed to restore.
pub(super) fn holds_critical(request: &RunRequest) -> bool {
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

pub(super) fn unfinished_runs(state: &StateDir, app: &str) -> Result<Vec<String>, RunError> {
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

pub(super) fn latest_unfinished(state: &StateDir, app: Option<&str>) -> Result<String, RunError> {
    resumable(state, app)?
        .pop()
        .map(|(id, _)| id)
        .ok_or_else(|| {
            RunError::Journal(JournalError::NothingToResume {
                app: app.map(str::to_owned),
            })
        })
}
