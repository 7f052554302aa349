//! Dynamic shell completions (`source <(COMPLETE=bash upshift)`): run ids from the state dir,
//! app names from the Heroku account, and the add-ons of the app named on the line being
//! completed (`-a`, `-r`, `HEROKU_APP` or the `heroku` git remote, as the command itself
//! finds it), asked while the shell completes. A completion must never hang or print an error
//! into the prompt, so every failure completes nothing and each Heroku call is capped at a few
//! seconds.

use std::ffi::OsStr;
use std::time::Duration;

use clap_complete::engine::CompletionCandidate;

use crate::heroku::{Client, ClientConfig};
use crate::journal::StateDir;

/// How long completing app or add-on names may wait for Heroku.
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

/// Asks Heroku with the environment's token, at most [`APPS_TIMEOUT`]; `None` on any failure.
fn ask_heroku<T, F>(call: impl FnOnce(Client) -> F) -> Option<T>
where
    F: std::future::Future<Output = Result<T, crate::heroku::HerokuError>>,
{
    let client = ClientConfig::from_env().and_then(Client::new).ok()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(async {
        tokio::time::timeout(APPS_TIMEOUT, call(client))
            .await
            .ok()
            .and_then(Result::ok)
    })
}

/// The names of the apps the token can see that start with what was typed.
pub fn apps(current: &OsStr) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy().into_owned();
    let apps = ask_heroku(|c| async move { c.apps().await }).unwrap_or_default();
    let mut names: Vec<String> = apps
        .into_iter()
        .map(|a| a.name)
        .filter(|n| n.starts_with(&typed))
        .collect();
    names.sort();
    names.into_iter().map(CompletionCandidate::new).collect()
}

/// The app and `-r` remote named on a command line (`-a APP`, `-aAPP`, `--app APP`,
/// `--app=APP`; the same for `-r/--remote`). Pure.
fn named_on_line(words: &[String]) -> (Option<String>, Option<String>) {
    let (mut app, mut remote) = (None, None);
    let mut words = words.iter();
    while let Some(w) = words.next() {
        let (slot, value) = match w.as_str() {
            "-a" | "--app" => (&mut app, words.next().cloned()),
            "-r" | "--remote" => (&mut remote, words.next().cloned()),
            w if w.starts_with("--app=") => (&mut app, Some(w["--app=".len()..].to_owned())),
            w if w.starts_with("--remote=") => {
                (&mut remote, Some(w["--remote=".len()..].to_owned()))
            }
            w if w.starts_with("-a") && w.len() > 2 && !w.starts_with("--") => {
                (&mut app, Some(w[2..].to_owned()))
            }
            w if w.starts_with("-r") && w.len() > 2 && !w.starts_with("--") => {
                (&mut remote, Some(w[2..].to_owned()))
            }
            _ => continue,
        };
        *slot = value.filter(|v| !v.is_empty());
    }
    (app, remote)
}

/// The app the line being completed is about: the command line's `-a`, else `HEROKU_APP`,
/// else the git remote (`-r` or `heroku`), as the command will resolve it.
fn app_being_completed() -> Option<String> {
    let words: Vec<String> = std::env::args_os()
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    let (app, remote) = named_on_line(&words);
    app.or_else(|| std::env::var("HEROKU_APP").ok().filter(|a| !a.is_empty()))
        .or_else(|| crate::cli::target::app_of_git_remote(remote.as_deref()))
}

/// The app's heroku-redis add-ons as a person types them (the attachment name behind the
/// config var, lower case, as the wizard offers them), each with its add-on name and plan.
fn addon_names() -> Vec<(String, String)> {
    let Some(app) = app_being_completed() else {
        return Vec::new();
    };
    let addons = ask_heroku(|c| async move { c.addons(&app).await }).unwrap_or_default();
    let mut names: Vec<(String, String)> = addons
        .into_iter()
        .filter(|a| a.addon_service.name == crate::plans::HEROKU_REDIS)
        .map(|a| {
            let typed = crate::runner::capture::url_var(&a, None)
                .and_then(|v| v.strip_suffix("_URL").map(str::to_lowercase))
                .unwrap_or_else(|| a.name.clone());
            let help = format!("{} {}", a.name, crate::plans::bare_name(&a.plan.name));
            (typed, help)
        })
        .collect();
    names.sort();
    names
}

/// Add-on names (`ADDON`, `--cache`) of the app on the line that start with what was typed.
pub fn addons(current: &OsStr) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy().into_owned();
    addon_names()
        .into_iter()
        .filter(|(name, _)| name.starts_with(&typed))
        .map(|(name, help)| CompletionCandidate::new(name).help(Some(help.into())))
        .collect()
}

/// `ADDON=` for the add-ons that start with what was typed (`--connections ADDON=N`).
pub fn addon_keys(current: &OsStr) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy().into_owned();
    addon_names()
        .into_iter()
        .filter(|(name, _)| name.starts_with(&typed))
        .map(|(name, help)| CompletionCandidate::new(format!("{name}=")).help(Some(help.into())))
        .collect()
}

/// The heroku-redis plans that start with `typed` (bare names, `premium-1`). Pure.
fn plan_names(typed: &str) -> Vec<String> {
    crate::plans::all()
        .map(|p| crate::plans::bare_name(p.name).to_owned())
        .filter(|n| n.starts_with(typed))
        .collect()
}

/// Plan names (the positional `PLAN`), from the plan catalog.
pub fn plans(current: &OsStr) -> Vec<CompletionCandidate> {
    plan_names(&current.to_string_lossy())
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}

/// `--change ADDON=PLAN`: `ADDON=` until the `=` is typed, then the plans after it.
pub fn changes(current: &OsStr) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy().into_owned();
    match typed.split_once('=') {
        Some((addon, plan)) => plan_names(plan)
            .into_iter()
            .map(|p| CompletionCandidate::new(format!("{addon}={p}")))
            .collect(),
        None => addon_keys(current),
    }
}

#[cfg(test)]
mod tests {
    use super::{named_on_line, plan_names};

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn the_app_and_remote_are_read_off_the_line_in_every_spelling() {
        for line in [
            "upshift -- upshift plan -a shop --change x",
            "upshift -- upshift plan --app shop --change x",
            "upshift -- upshift plan --app=shop x",
            "upshift -- upshift run -ashop x",
        ] {
            assert_eq!(
                named_on_line(&words(line)).0.as_deref(),
                Some("shop"),
                "{line}"
            );
        }
        assert_eq!(
            named_on_line(&words("upshift -- upshift plan -r staging --change x")),
            (None, Some("staging".to_owned()))
        );
        assert_eq!(
            named_on_line(&words("upshift -- upshift plan -a")),
            (None, None)
        );
        assert_eq!(
            named_on_line(&words("upshift -- upshift run --cache x")),
            (None, None)
        );
    }

    #[test]
    fn plans_complete_from_the_catalog() {
        let p = plan_names("premium-");
        assert!(p.contains(&"premium-1".to_owned()), "{p:?}");
        assert!(p.iter().all(|n| n.starts_with("premium-")), "{p:?}");
        assert!(plan_names("nope").is_empty());
    }
}
