//! What to change, from the command line: `-a/--app` (or `HEROKU_APP`, or the app behind the
//! `heroku` git remote), `--change ADDON=PLAN` or the positional `ADDON PLAN`, and the knobs
//! `plan` and `run` share, converted by a pure `TryFrom` into the library's [`RunRequest`].

use clap::Args;
use thiserror::Error;

use crate::plan::RunRequest;
use crate::plan::facts::{ChangeRequest, DataPolicy};
use crate::playbook::{Playbook, PlaybookError, RetireOld, Strategy};

/// What to change, shared by `plan` and `run`.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// The Heroku app.
    #[arg(
        short,
        long,
        env = "HEROKU_APP",
        default_value = "",
        hide_default_value = true,
        add = clap_complete::engine::ArgValueCompleter::new(crate::cli::complete::apps)
    )]
    pub app: String,
    /// The git remote whose Heroku URL names the app, as the Heroku CLI's `-r` (without -a
    /// and `HEROKU_APP`, the remote `heroku` of the current repository is used when present).
    #[arg(short, long, value_name = "REMOTE")]
    pub remote: Option<String>,
    /// The add-on to change, as the Heroku CLI takes it: `upshift run -a APP ADDON PLAN`
    /// (the same as `--change ADDON=PLAN`).
    #[arg(
        value_name = "ADDON",
        add = clap_complete::engine::ArgValueCompleter::new(crate::cli::complete::addons)
    )]
    pub addon: Option<String>,
    /// The new plan of ADDON.
    #[arg(
        value_name = "PLAN",
        requires = "addon",
        add = clap_complete::engine::ArgValueCompleter::new(crate::cli::complete::plans)
    )]
    pub new_plan: Option<String>,
    /// An add-on (name or attachment name, e.g. `enketo_redis_main`) and its new plan
    /// (premium-1 or heroku-redis:premium-1). Repeat for several add-ons: they change in one
    /// downtime.
    // Required, but checked in the conversion: `run --plan FILE` takes the changes from FILE.
    #[arg(
        long = "change",
        value_name = "ADDON=PLAN",
        add = clap_complete::engine::ArgValueCompleter::new(crate::cli::complete::changes)
    )]
    pub changes: Vec<String>,
    /// Playbook: the built-in name or a TOML file.
    #[arg(long, default_value = crate::playbook::BUILTIN_NAME)]
    pub playbook: String,
    /// How the plan changes: in-place (Heroku's own change; the writers stay stopped while it
    /// provisions) or live-swap (a new add-on filled while the app runs; the writers stop only
    /// for the cutover). Picks the built-in playbook of that strategy.
    #[arg(long, value_enum, value_name = "STRATEGY")]
    pub strategy: Option<Strategy>,
    /// Live swap: the old add-on after success: `now` (destroyed), `never`, or kept for a grace
    /// period such as `1d` or `12h` [default: the playbook's, 1d].
    #[arg(long, value_name = "now|never|DURATION")]
    pub retire_old: Option<String>,
    /// Process types that write to Redis, stopped during the change [default: the playbook's,
    /// web].
    #[arg(long, value_delimiter = ',', value_name = "TYPE,…")]
    pub writers: Option<Vec<String>>,
    /// Also turn maintenance mode on while the writers are stopped.
    #[arg(long)]
    pub maintenance: bool,
    /// Treat this add-on as a cache: data differences are reported, not fatal. Repeatable.
    #[arg(
        long = "cache",
        value_name = "ADDON",
        add = clap_complete::engine::ArgValueCompleter::new(crate::cli::complete::addons)
    )]
    pub cache: Vec<String>,
    /// Connections each writer dyno opens to ADDON, when they cannot be measured.
    #[arg(
        long = "connections",
        value_name = "ADDON=N",
        add = clap_complete::engine::ArgValueCompleter::new(crate::cli::complete::addon_keys)
    )]
    pub connections: Vec<String>,
    /// Run even when a writer type is at 0 dynos now. Without it such a run is blocked: someone
    /// else may be mid-change, and the run would restore their 0 at the end.
    #[arg(long)]
    pub allow_stopped_writers: bool,
    /// How long the proof that a new server is live must hold before verify reads it, and the
    /// client count after the restore before health judges it, e.g. 2s or 500ms (100ms to
    /// 10m) [default: the playbook's settle, 2s].
    #[arg(long, value_name = "DURATION", env = "UPSHIFT_SETTLE")]
    pub settle: Option<String>,
}

/// Bad command-line input: nothing was sent anywhere.
#[derive(Debug, Error)]
pub enum ArgsError {
    #[error(
        "--change {given:?} is not ADDON=PLAN: write for example --change enketo_redis_main=premium-1"
    )]
    ChangeSyntax { given: String },
    #[error(
        "--change {given:?}: no heroku-redis plan {plan:?}; plans are mini, premium-0…5, 7, 9, 10, 12, 14 (and private-N, shield-N)"
    )]
    UnknownPlan { given: String, plan: String },
    #[error(
        "--strategy and --playbook both choose the playbook: give --strategy for a built-in one, \
         or --playbook for your own file"
    )]
    StrategyAndPlaybook,
    #[error("--retire-old {given:?}: {message}")]
    RetireOld { given: String, message: String },
    #[error("--retire-old applies to a live swap only: add --strategy live-swap, or leave it out")]
    RetireOldInPlace,
    #[error("--change names {addon} twice: give each add-on once")]
    DuplicateAddon { addon: String },
    #[error("--{flag} {addon}: no --change names that add-on")]
    NotChanged { flag: &'static str, addon: String },
    #[error("--connections {given:?} is not ADDON=N with N a whole number")]
    ConnectionsSyntax { given: String },
    #[error("--connections {given:?}: {message}")]
    ConnectionsRange { given: String, message: String },
    #[error("--settle {given:?}: {message}")]
    Settle { given: String, message: String },
    #[error(transparent)]
    Playbook(#[from] PlaybookError),
    #[error("--writers is empty: name at least one process type, e.g. --writers web")]
    NoWriters,
    #[error(
        "{what} {shown:?} cannot be a Heroku {kind}: {why}; `heroku {list}` lists the ones you can use"
    )]
    BadName {
        what: &'static str,
        kind: &'static str,
        shown: String,
        why: &'static str,
        list: &'static str,
    },
    #[error("--writers names {name} twice: give each process type once, e.g. --writers web,worker")]
    DuplicateWriter { name: String },
    #[error("--connections names {addon} twice: give one figure per add-on")]
    DuplicateConnections { addon: String },
    #[error(
        "no app: pass -a APP, set HEROKU_APP, or run from a git repository with a `heroku` remote (or name one with -r REMOTE)"
    )]
    NoApp,
    #[error("-r {remote}: no git remote {remote} with a Heroku URL in {dir}; pass -a APP instead")]
    NoRemote { remote: String, dir: String },
    #[error(
        "{addon} needs its new plan: upshift run -a APP {addon} PLAN (or --change {addon}=PLAN)"
    )]
    NoPlan { addon: String },
    #[error(
        "nothing to change: pass --change ADDON=PLAN, e.g. --change enketo_redis_main=premium-1"
    )]
    NoChange,
}

impl TryFrom<&TargetArgs> for RunRequest {
    type Error = ArgsError;

    fn try_from(args: &TargetArgs) -> Result<Self, ArgsError> {
        let app = resolve_app(args)?;
        let mut given_changes = args.changes.clone();
        match (&args.addon, &args.new_plan) {
            (Some(addon), Some(plan)) => given_changes.insert(0, format!("{addon}={plan}")),
            (Some(addon), None) => {
                return Err(ArgsError::NoPlan {
                    addon: addon.clone(),
                });
            }
            _ => {}
        }
        if given_changes.is_empty() {
            return Err(ArgsError::NoChange);
        }
        let playbook = match args.strategy {
            Some(_) if args.playbook != crate::playbook::BUILTIN_NAME => {
                return Err(ArgsError::StrategyAndPlaybook);
            }
            Some(strategy) => Playbook::of_strategy(strategy),
            None => Playbook::load(&args.playbook)?,
        };
        let mut changes: Vec<ChangeRequest> = Vec::new();
        for given in &given_changes {
            let (addon, plan) = given
                .split_once('=')
                .map(|(a, p)| (a.trim(), p.trim()))
                .filter(|(a, p)| !a.is_empty() && !p.is_empty())
                .ok_or_else(|| ArgsError::ChangeSyntax {
                    given: given.clone(),
                })?;
            check_name(
                addon,
                "--change",
                "add-on (name, id or attachment)",
                "addons",
            )?;
            let bare = crate::plans::bare_name(plan);
            if crate::plans::find(bare).is_none() {
                return Err(ArgsError::UnknownPlan {
                    given: given.clone(),
                    plan: plan.to_owned(),
                });
            }
            if changes.iter().any(|c| c.addon == addon) {
                return Err(ArgsError::DuplicateAddon {
                    addon: addon.to_owned(),
                });
            }
            changes.push(ChangeRequest {
                addon: addon.to_owned(),
                plan: bare.to_owned(),
                policy: DataPolicy::Critical,
                connections_per_dyno: None,
            });
        }
        for cache in &args.cache {
            let c = changes
                .iter_mut()
                .find(|c| &c.addon == cache)
                .ok_or_else(|| ArgsError::NotChanged {
                    flag: "cache",
                    addon: cache.clone(),
                })?;
            c.policy = DataPolicy::Cache;
        }
        for given in &args.connections {
            let (addon, n) = given
                .split_once('=')
                .and_then(|(a, n)| Some((a.trim(), n.trim().parse::<u32>().ok()?)))
                .ok_or_else(|| ArgsError::ConnectionsSyntax {
                    given: given.clone(),
                })?;
            crate::playbook::check_connections("N", n).map_err(|message| {
                ArgsError::ConnectionsRange {
                    given: given.clone(),
                    message,
                }
            })?;
            let c = changes
                .iter_mut()
                .find(|c| c.addon == addon)
                .ok_or_else(|| ArgsError::NotChanged {
                    flag: "connections",
                    addon: addon.to_owned(),
                })?;
            if c.connections_per_dyno.is_some() {
                return Err(ArgsError::DuplicateConnections {
                    addon: addon.to_owned(),
                });
            }
            c.connections_per_dyno = Some(n);
        }
        let mut params = playbook.params.clone();
        if let Some(writers) = &args.writers {
            let writers: Vec<String> = writers
                .iter()
                .map(|w| w.trim().to_owned())
                .filter(|w| !w.is_empty())
                .collect();
            if writers.is_empty() {
                return Err(ArgsError::NoWriters);
            }
            if let Some((_, name)) = writers
                .iter()
                .enumerate()
                .find(|(i, w)| writers[..*i].contains(w))
            {
                return Err(ArgsError::DuplicateWriter { name: name.clone() });
            }
            params.writers = writers;
        }
        if args.maintenance {
            params.maintenance = true;
        }
        if args.allow_stopped_writers {
            params.allow_stopped_writers = true;
        }
        if let Some(given) = &args.retire_old {
            if Strategy::of(&playbook) != Strategy::LiveSwap {
                return Err(ArgsError::RetireOldInPlace);
            }
            params.retire_old =
                RetireOld::parse(given).map_err(|message| ArgsError::RetireOld {
                    given: given.clone(),
                    message,
                })?;
        }
        if let Some(given) = &args.settle {
            params.settle = parse_settle(given)?;
        }
        Ok(Self {
            app,
            changes,
            params,
            playbook,
        })
    }
}

/// `--settle DURATION`, within the playbook parameter's bounds.
///
/// # Errors
/// [`ArgsError::Settle`] naming the value and the bounds.
pub fn parse_settle(given: &str) -> Result<std::time::Duration, ArgsError> {
    crate::playbook::duration::parse(given.trim())
        .and_then(|d| crate::playbook::check_settle(d).map(|()| d))
        .map_err(|message| ArgsError::Settle {
            given: given.to_owned(),
            message,
        })
}

/// Refuses what no Heroku app or add-on identity can be, before it reaches a URL (a 100 kB
/// name used to fail as "could not reach Heroku", exit 1). Names are short (apps at most 30
/// characters, ids 36, attachments `app::NAME`); any printable ASCII but URL syntax passes,
/// and the platform judges the rest (a 404 names the closest match). Pure.
pub(crate) fn check_name(
    value: &str,
    what: &'static str,
    kind: &'static str,
    list: &'static str,
) -> Result<(), ArgsError> {
    const MAX: usize = 100;
    let why = if value.chars().count() > MAX {
        "longer than 100 characters"
    } else if !value
        .chars()
        .all(|c| c.is_ascii_graphic() && !matches!(c, '/' | '?' | '#' | '%' | '\\'))
    {
        "only letters, digits and - _ . : are used in Heroku names"
    } else {
        return Ok(());
    };
    let shown: String = value.chars().take(40).collect();
    Err(ArgsError::BadName {
        what,
        kind,
        shown: if value.chars().count() > 40 {
            format!("{shown}…")
        } else {
            shown
        },
        why,
        list,
    })
}

/// The app: `-a`/`HEROKU_APP`, else the Heroku URL of git remote `-r REMOTE` (or `heroku`) in
/// the repository around the current directory, as the Heroku CLI finds it.
fn resolve_app(args: &TargetArgs) -> Result<String, ArgsError> {
    let app = args.app.trim();
    if !app.is_empty() {
        check_name(app, "-a/--app", "app (name or id)", "apps")?;
        return Ok(app.to_owned());
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    match (app_of_git_remote(args.remote.as_deref()), &args.remote) {
        (Some(app), _) => Ok(app),
        (None, Some(remote)) => Err(ArgsError::NoRemote {
            remote: remote.clone(),
            dir: cwd.display().to_string(),
        }),
        (None, None) => Err(ArgsError::NoApp),
    }
}

/// The app behind git remote `remote` (default `heroku`) of the repository around the current
/// directory, as the Heroku CLI finds it.
pub fn app_of_git_remote(remote: Option<&str>) -> Option<String> {
    let remote = remote.unwrap_or("heroku");
    std::env::current_dir()
        .unwrap_or_default()
        .ancestors()
        .map(|d| d.join(".git").join("config"))
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| heroku_app_of_remote(&text, remote))
}

/// The app named by git remote `remote`'s Heroku URL in a `.git/config` text
/// (`https://git.heroku.com/APP.git` or `git@heroku.com:APP.git`). Pure.
pub fn heroku_app_of_remote(config: &str, remote: &str) -> Option<String> {
    let header = format!("[remote \"{remote}\"]");
    let mut inside = false;
    for line in config.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == header;
            continue;
        }
        if !inside {
            continue;
        }
        let Some(url) = line
            .strip_prefix("url")
            .map(str::trim_start)
            .and_then(|l| l.strip_prefix('='))
            .map(str::trim)
        else {
            continue;
        };
        let path = url
            .strip_prefix("https://git.heroku.com/")
            .or_else(|| url.strip_prefix("git@heroku.com:"))
            .or_else(|| url.strip_prefix("ssh://git@heroku.com/"))?;
        let app = path.trim_end_matches('/').trim_end_matches(".git");
        return (!app.is_empty() && !app.contains('/')).then(|| app.to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(changes: &[&str]) -> TargetArgs {
        TargetArgs {
            app: "enketo-demo".into(),
            remote: None,
            addon: None,
            new_plan: None,
            changes: changes.iter().map(|s| (*s).to_owned()).collect(),
            playbook: crate::playbook::BUILTIN_NAME.into(),
            strategy: None,
            retire_old: None,
            writers: None,
            maintenance: false,
            cache: vec![],
            connections: vec![],
            allow_stopped_writers: false,
            settle: None,
        }
    }

    #[test]
    fn settle_defaults_to_the_playbooks_and_is_bounded() {
        let r = RunRequest::try_from(&args(&["m=premium-1"])).unwrap();
        assert_eq!(r.params.settle, crate::playbook::DEFAULT_SETTLE);
        let with = |s: &str| {
            let mut a = args(&["m=premium-1"]);
            a.settle = Some(s.into());
            RunRequest::try_from(&a)
        };
        assert_eq!(
            with("500ms").unwrap().params.settle,
            std::time::Duration::from_millis(500)
        );
        assert!(with("10m").is_ok());
        let e = with("50ms").unwrap_err().to_string();
        assert_eq!(
            e,
            "--settle \"50ms\": settle 50ms is out of range: write between 100ms and 10m, e.g. \"2s\""
        );
        assert!(
            with("11m")
                .unwrap_err()
                .to_string()
                .contains("out of range")
        );
        let e = with("soon").unwrap_err().to_string();
        assert!(e.starts_with("--settle \"soon\": "), "{e}");
    }

    #[test]
    fn changes_parse_with_and_without_the_service_prefix() {
        let mut a = args(&[
            "enketo_redis_main=heroku-redis:premium-1",
            "enketo_redis_cache=premium-2",
        ]);
        a.cache = vec!["enketo_redis_cache".into()];
        a.connections = vec!["enketo_redis_main=30".into()];
        a.writers = Some(vec!["web".into(), " worker ".into()]);
        let r = RunRequest::try_from(&a).unwrap();
        assert_eq!(r.changes[0].plan, "premium-1");
        assert_eq!(r.changes[0].connections_per_dyno, Some(30));
        assert_eq!(r.changes[1].policy, DataPolicy::Cache);
        assert_eq!(
            r.params.writers,
            vec!["web".to_string(), "worker".to_string()]
        );
    }

    #[test]
    fn app_and_changes_are_required_without_a_plan_file() {
        let mut a = args(&[]);
        assert!(
            RunRequest::try_from(&a)
                .unwrap_err()
                .to_string()
                .contains("pass --change ADDON=PLAN")
        );
        a = args(&["x=premium-1"]);
        a.app = String::new();
        assert!(
            RunRequest::try_from(&a)
                .unwrap_err()
                .to_string()
                .contains("pass -a APP")
        );
    }

    #[test]
    fn bad_changes_say_what_to_write() {
        let e = RunRequest::try_from(&args(&["enketo_redis_main"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--change enketo_redis_main=premium-1"), "{e}");
        let e = RunRequest::try_from(&args(&["x=premium-l"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no heroku-redis plan \"premium-l\""), "{e}");
        let e = RunRequest::try_from(&args(&["x=premium-1", "x=premium-2"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("names x twice"), "{e}");
        for n in ["0", "10001", "2147483648"] {
            let mut a = args(&["x=premium-1"]);
            a.connections = vec![format!("x={n}")];
            let e = RunRequest::try_from(&a).unwrap_err().to_string();
            assert!(
                e.contains("out of range") || e.contains("whole number"),
                "{n}: {e}"
            );
        }
        let mut a = args(&["x=premium-1"]);
        a.connections = vec!["x=10000".into()];
        assert_eq!(
            RunRequest::try_from(&a).unwrap().changes[0].connections_per_dyno,
            Some(10_000)
        );
        let mut a = args(&["x=premium-1"]);
        a.cache = vec!["y".into()];
        assert!(
            RunRequest::try_from(&a)
                .unwrap_err()
                .to_string()
                .contains("--cache y")
        );
    }

    #[test]
    fn the_heroku_remote_names_the_app_as_the_cli_finds_it() {
        let config = "[core]\n\tbare = false\n[remote \"origin\"]\n\turl = git@github.com:me/app.git\n[remote \"heroku\"]\n\turl = https://git.heroku.com/enketo-prod.git\n\tfetch = +refs/heads/*:refs/remotes/heroku/*\n[remote \"staging\"]\n\turl = git@heroku.com:enketo-staging.git\n";
        assert_eq!(
            heroku_app_of_remote(config, "heroku").as_deref(),
            Some("enketo-prod")
        );
        assert_eq!(
            heroku_app_of_remote(config, "staging").as_deref(),
            Some("enketo-staging")
        );
        assert_eq!(heroku_app_of_remote(config, "origin"), None);
        assert_eq!(heroku_app_of_remote(config, "nope"), None);
    }

    #[test]
    fn the_positional_form_is_a_change() {
        let mut a = args(&[]);
        a.addon = Some("enketo_redis_main".into());
        a.new_plan = Some("premium-1".into());
        let r = RunRequest::try_from(&a).unwrap();
        assert_eq!(r.changes[0].addon, "enketo_redis_main");
        assert_eq!(r.changes[0].plan, "premium-1");
        a.new_plan = None;
        let e = RunRequest::try_from(&a).unwrap_err().to_string();
        assert!(e.contains("needs its new plan"), "{e}");
    }
}
