//! Dynamic shell completions (`source <(COMPLETE=bash upshift)`): run ids from the state dir
//! and app names from the Heroku account, asked while the shell completes. A completion must
//! never hang or print an error into the prompt, so every failure completes nothing and the
//! Heroku call is capped at a few seconds.

use std::ffi::OsStr;
use std::time::Duration;

use clap_complete::engine::CompletionCandidate;

use crate::heroku::{Client, ClientConfig};
use crate::journal::StateDir;

/// How long completing app names may wait for Heroku.
const APPS_TIMEOUT: Duration = Duration::from_secs(3);

/// The ids of the runs in the state dir that start with what was typed, newest first, each
/// with its app and outcome as the help text.
pub fn run_ids(current: &OsStr) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy();
    let Ok(state) = StateDir::from_env() else {
        return Vec::new();
    };
    let Ok(mut rows) = crate::cli::history::history(&state) else {
        return Vec::new();
    };
    rows.reverse();
    rows.into_iter()
        .filter(|r| r.id.starts_with(typed.as_ref()))
        .map(|r| {
            CompletionCandidate::new(r.id).help(Some(format!("{} {}", r.app, r.outcome).into()))
        })
        .collect()
}

/// The names of the apps the token can see that start with what was typed.
pub fn apps(current: &OsStr) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy().into_owned();
    let Ok(client) = ClientConfig::from_env().and_then(Client::new) else {
        return Vec::new();
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let apps = runtime.block_on(async {
        tokio::time::timeout(APPS_TIMEOUT, client.apps())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    });
    let mut names: Vec<String> = apps
        .into_iter()
        .map(|a| a.name)
        .filter(|n| n.starts_with(&typed))
        .collect();
    names.sort();
    names.into_iter().map(CompletionCandidate::new).collect()
}
