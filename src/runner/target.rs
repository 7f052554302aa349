//! One add-on's runtime view during a run: what the capture found for one `--change`. A leaf
//! of the runner: the ledger, the steps and the run's ending all read it, it reads none of them.

use crate::plan::RunRequest;
use crate::plan::facts::{Capture, DataPolicy};

/// One add-on of the run, keyed by its name (never by its position in a list).
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub label: String,
    pub name: String,
    pub from: String,
    pub to: String,
    pub policy: DataPolicy,
    pub url_var: Option<String>,
    /// Every config var the add-on exposes (one per attachment in the app): the vars that may
    /// lead to its server.
    pub own_vars: Vec<String>,
}

/// The add-ons of `request` that `capture` found, in the order of its `--change`s.
pub(super) fn targets(capture: &Capture, request: &RunRequest) -> Vec<Target> {
    capture
        .found_changes(&request.changes)
        .map(|(change, a)| Target {
            label: a.label().to_owned(),
            name: a.name.clone(),
            from: a.plan.clone(),
            to: crate::plans::bare_name(&change.plan).to_owned(),
            policy: change.policy,
            url_var: a.url_var(),
            own_vars: a.config_vars.clone(),
        })
        .collect()
}
