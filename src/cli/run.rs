//! `upshift plan`, `run`, `resume`, `rollback`, `runs`, `playbooks`: the runner's command line.

use std::io::IsTerminal;
use std::sync::Arc;

use clap::Args;
use serde::Serialize;
use thiserror::Error;

use crate::cli::CliError;
use crate::cli::signals::{self, Listen};
use crate::cli::unattended;
use crate::exit::ExitCode;
use crate::heroku::{Client, ClientConfig};
use crate::journal::{self, StateDir};
use crate::plan::facts::{ChangeRequest, DataPolicy};
use crate::plan::{self, RunRequest};
use crate::playbook::{Playbook, PlaybookError};
use crate::runner::record::Record;
use crate::runner::{
    Interrupts, Reporter, RunError, RunEvent, RunReport, Runner, RunnerConfig, Silent,
};
use crate::ui;

/// What to change, shared by `plan` and `run`.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// The Heroku app.
    #[arg(
        short,
        long,
        env = "HEROKU_APP",
        default_value = "",
        hide_default_value = true
    )]
    pub app: String,
    /// The git remote whose Heroku URL names the app, as the Heroku CLI's `-r` (without -a
    /// and `HEROKU_APP`, the remote `heroku` of the current repository is used when present).
    #[arg(short, long, value_name = "REMOTE")]
    pub remote: Option<String>,
    /// The add-on to change, as the Heroku CLI takes it: `upshift run -a APP ADDON PLAN`
    /// (the same as `--change ADDON=PLAN`).
    #[arg(value_name = "ADDON")]
    pub addon: Option<String>,
    /// The new plan of ADDON.
    #[arg(value_name = "PLAN", requires = "addon")]
    pub new_plan: Option<String>,
    /// An add-on (name or attachment name, e.g. `enketo_redis_main`) and its new plan
    /// (premium-1 or heroku-redis:premium-1). Repeat for several add-ons: they change in one
    /// downtime.
    // Required, but checked in the conversion: `run --plan FILE` takes the changes from FILE.
    #[arg(long = "change", value_name = "ADDON=PLAN")]
    pub changes: Vec<String>,
    /// Playbook: the built-in name or a TOML file.
    #[arg(long, default_value = crate::playbook::BUILTIN_NAME)]
    pub playbook: String,
    /// Process types that write to Redis, stopped during the change [default: the playbook's,
    /// web].
    #[arg(long, value_delimiter = ',', value_name = "TYPE,…")]
    pub writers: Option<Vec<String>>,
    /// Also turn maintenance mode on while the writers are stopped.
    #[arg(long)]
    pub maintenance: bool,
    /// Treat this add-on as a cache: data differences are reported, not fatal. Repeatable.
    #[arg(long = "cache", value_name = "ADDON")]
    pub cache: Vec<String>,
    /// Connections each writer dyno opens to ADDON, when they cannot be measured.
    #[arg(long = "connections", value_name = "ADDON=N")]
    pub connections: Vec<String>,
    /// Run even when a writer type is at 0 dynos now. Without it such a run is blocked: someone
    /// else may be mid-change, and the run would restore their 0 at the end.
    #[arg(long)]
    pub allow_stopped_writers: bool,
}

/// `upshift plan`.
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Example:\n  upshift plan -a enketo-demo --change enketo_redis_main=premium-1 --change enketo_redis_cache=premium-1 --cache enketo_redis_cache"
)]
pub struct PlanArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print the plan as one JSON document.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub schedule: crate::cli::unattended::PlanScheduleArgs,
}

/// `upshift run`.
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Example (unattended):\n  upshift run -a enketo-demo --change enketo_redis_main=premium-1 --confirm enketo-demo"
)]
pub struct RunArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Confirm the app by name (required without a terminal).
    #[arg(long, value_name = "APP")]
    pub confirm: Option<String>,
    /// Print the run's report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub schedule: crate::cli::unattended::RunScheduleArgs,
}

/// `upshift resume` and `upshift rollback`.
#[derive(Debug, Clone, Args)]
pub struct ReopenArgs {
    /// The run (default: the latest unfinished one).
    pub run_id: Option<String>,
    /// Confirm the app by name (required without a terminal).
    #[arg(long, value_name = "APP")]
    pub confirm: Option<String>,
    /// Print the run's report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `upshift runs`.
#[derive(Debug, Clone, Args)]
pub struct RunsArgs {
    /// Print the history as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `upshift playbooks`.
#[derive(Debug, Clone, Args)]
pub struct PlaybooksArgs {
    /// Print the playbooks as JSON.
    #[arg(long)]
    pub json: bool,
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
    #[error("--change names {addon} twice: give each add-on once")]
    DuplicateAddon { addon: String },
    #[error("--{flag} {addon}: no --change names that add-on")]
    NotChanged { flag: &'static str, addon: String },
    #[error("--connections {given:?} is not ADDON=N with N a whole number")]
    ConnectionsSyntax { given: String },
    #[error("--connections {given:?}: {message}")]
    ConnectionsRange { given: String, message: String },
    #[error(transparent)]
    Playbook(#[from] PlaybookError),
    #[error("--writers is empty: name at least one process type, e.g. --writers web")]
    NoWriters,
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
        let playbook = Playbook::load(&args.playbook)?;
        let mut changes: Vec<ChangeRequest> = Vec::new();
        for given in &given_changes {
            let (addon, plan) = given
                .split_once('=')
                .map(|(a, p)| (a.trim(), p.trim()))
                .filter(|(a, p)| !a.is_empty() && !p.is_empty())
                .ok_or_else(|| ArgsError::ChangeSyntax {
                    given: given.clone(),
                })?;
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
            params.writers = writers;
        }
        if args.maintenance {
            params.maintenance = true;
        }
        if args.allow_stopped_writers {
            params.allow_stopped_writers = true;
        }
        Ok(Self {
            app,
            changes,
            params,
            playbook,
        })
    }
}

/// The app: `-a`/`HEROKU_APP`, else the Heroku URL of git remote `-r REMOTE` (or `heroku`) in
/// the repository around the current directory, as the Heroku CLI finds it.
fn resolve_app(args: &TargetArgs) -> Result<String, ArgsError> {
    let app = args.app.trim();
    if !app.is_empty() {
        return Ok(app.to_owned());
    }
    let remote = args.remote.as_deref().unwrap_or("heroku");
    let cwd = std::env::current_dir().unwrap_or_default();
    let found = cwd
        .ancestors()
        .map(|d| d.join(".git").join("config"))
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| heroku_app_of_remote(&text, remote));
    match (found, &args.remote) {
        (Some(app), _) => Ok(app),
        (None, Some(remote)) => Err(ArgsError::NoRemote {
            remote: remote.clone(),
            dir: cwd.display().to_string(),
        }),
        (None, None) => Err(ArgsError::NoApp),
    }
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

/// Everything a command needs to reach Heroku and the state dir.
struct Context {
    runner: Runner,
}

fn context(reporter: Arc<dyn Reporter>, interrupts: Interrupts) -> Result<Context, CliError> {
    context_with(reporter, interrupts, |_| {})
}

/// [`context`] with the runner's config adjusted (window, reviewed plan).
fn context_with(
    reporter: Arc<dyn Reporter>,
    interrupts: Interrupts,
    configure: impl FnOnce(&mut RunnerConfig),
) -> Result<Context, CliError> {
    let config = ClientConfig::from_env().map_err(CliError::usage)?;
    let client = Client::new(config).map_err(CliError::usage)?;
    let state = StateDir::from_env().map_err(CliError::usage)?;
    state.check().map_err(CliError::usage)?;
    let mut config = RunnerConfig::new(state);
    configure(&mut config);
    Ok(Context {
        runner: Runner::new(client, config, reporter, interrupts),
    })
}

fn request(args: &TargetArgs) -> Result<RunRequest, CliError> {
    RunRequest::try_from(args).map_err(CliError::usage)
}

/// Catches Ctrl-C and SIGTERM: the first asks for a safe stop and rollback, the second leaves
/// a resumable journal.
fn install_interrupts(interrupts: &Interrupts) {
    let interrupts = interrupts.clone();
    signals::listen(move |_| {
        interrupts.interrupt();
        if interrupts.count() == 1 {
            eprintln!(
                "\ninterrupt: finishing the current step safely, then rolling back (interrupt again to stop now and leave it resumable)"
            );
        } else {
            eprintln!("\ninterrupt: stopping now; the journal is kept for `upshift resume`");
        }
        std::future::ready(Listen::On)
    });
}

/// Asks for the app name on a terminal; without one, `--confirm APP` must match.
fn confirm(app: &str, given: Option<&str>, what: &str) -> Result<(), CliError> {
    if let Some(given) = given {
        if given == app {
            return Ok(());
        }
        return Err(CliError::text(
            ExitCode::Usage,
            format!("--confirm {given} does not match the app {app}: nothing was done"),
        ));
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(CliError::text(
            ExitCode::Usage,
            format!(
                "{what} writes to {app} and there is no terminal to confirm on: pass --confirm {app}"
            ),
        ));
    }
    let prompt = format!("Type the app name ({app}) to {what}");
    let typed: String = if crate::ui::can_redraw() {
        dialoguer::Input::new()
            .with_prompt(prompt)
            .interact_text()
            .map_err(|_| CliError::silent(ExitCode::Usage))?
    } else {
        // A terminal that cannot redraw (TERM=dumb) gets a plain prompt and line.
        eprint!("{prompt}: ");
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|_| CliError::silent(ExitCode::Usage))?;
        line
    };
    if typed.trim() == app {
        Ok(())
    } else {
        Err(CliError::text(
            ExitCode::Usage,
            format!("{typed:?} is not {app}: nothing was done"),
        ))
    }
}

/// Prints a finished run's report; its outcome is the exit code.
fn finish(report: &RunReport, json: bool) -> ExitCode {
    if json {
        let _ = ui::print_json(report);
    } else {
        print!("{}", ui::render_summary(report));
    }
    report.outcome.exit_code()
}

/// `upshift plan`.
///
/// # Errors
/// Bad input (exit 2) and a platform that cannot be read.
pub fn plan(args: &PlanArgs) -> Result<ExitCode, CliError> {
    let request = request(&args.target)?;
    let window = args
        .schedule
        .window
        .as_deref()
        .map(unattended::parse_window)
        .transpose()
        .map_err(CliError::usage)?;
    crate::cli::runtime().block_on(async {
        let configured = window.clone();
        let ctx = context_with(Arc::new(Silent), Interrupts::default(), |c| {
            c.window = configured;
        })?;
        let plan = ctx.runner.plan(&request).await?;
        if args.json {
            let _ = ui::print_json(&plan);
        } else {
            print!("{}", plan::render(&plan));
        }
        if let Some(out) = &args.schedule.out {
            let file = crate::unattended::plan_file::PlanFile::new(
                request.clone(),
                plan.clone(),
                window.clone(),
                jiff::Timestamp::now(),
            );
            let hash = file.save(out).map_err(CliError::usage)?;
            // The hash is part of the result (the reviewer notes it); stdout carries
            // only the JSON plan with --json.
            if args.json {
                eprintln!("plan hash: {hash}");
            } else {
                println!("plan hash: {hash}");
            }
            eprintln!(
                "saved the plan to {}; run it with `upshift run --plan {} --plan-hash {hash} --confirm {}`",
                out.display(),
                out.display(),
                request.app
            );
        }
        if plan.blocked {
            Ok(ExitCode::Blocked)
        } else {
            Ok(ExitCode::Success)
        }
    })
}

/// `upshift run`.
///
/// # Errors
/// Bad input or no confirmation (exit 2), a closed window (exit 3), an interrupted wait (130),
/// and a run that could not go on ([`RunError`]); a run that rolls back is an outcome.
pub fn run(args: &RunArgs, settings: ui::Settings) -> Result<ExitCode, CliError> {
    let unattended_run = args.confirm.is_some() && !std::io::stdin().is_terminal();
    let mut schedule = unattended::Schedule::try_from((&args.schedule, unattended_run))
        .map_err(CliError::usage)?;
    let (request, reviewed) = match &schedule.plan_file {
        Some(path) => {
            let (request, reviewed, window) =
                reviewed_request(path, schedule.plan_hash.as_deref(), &args.target)?;
            if schedule.window.is_none() {
                schedule.window = window;
            }
            (request, Some(reviewed))
        }
        None => (request(&args.target)?, None),
    };
    if schedule.wait_for_window && schedule.window.is_none() {
        return Err(CliError::text(
            ExitCode::Usage,
            "--wait-for-window needs a window: pass --window SPEC (or a plan saved with one)",
        ));
    }
    let interactive = args.confirm.is_none();
    if !interactive {
        confirm(&request.app, args.confirm.as_deref(), "run")?;
    }
    if interactive && (!std::io::stdin().is_terminal() || !std::io::stderr().is_terminal()) {
        // Refuse before any call: unattended runs must name the app.
        confirm(&request.app, None, "run")?;
        return Err(CliError::silent(ExitCode::Usage));
    }
    crate::cli::runtime().block_on(async {
        let interrupts = Interrupts::default();
        let changes = request
            .changes
            .iter()
            .map(|c| format!("{}={}", c.addon, c.plan))
            .collect();
        let (reporter, notifier, output) = unattended::reporter(
            &schedule,
            Arc::new(ui::HumanReporter::new(settings.quiet)),
            &request.app,
            changes,
        )
        .map_err(CliError::usage)?;
        let result =
            run_scheduled(args, &schedule, &request, reviewed, reporter, &interrupts).await;
        if let Some(notifier) = notifier {
            let sent = notifier.finish(unattended::NOTIFY_BUDGET).await;
            if sent.failed + sent.dropped > 0 {
                // Through the run's reporter (not the notifier, finished now): a JSON line
                // with --log-format json, a warning line for people.
                output.report(&RunEvent::NotificationsDone {
                    delivered: sent.delivered,
                    failed: sent.failed,
                    dropped: sent.dropped,
                });
            }
        }
        result
    })
}

/// The request, the reviewed plan and its window, from a reviewed plan file whose content
/// matches its hash (and `--plan-hash`, when given). `-a` may repeat the plan's app;
/// `--change` may not be combined with it.
///
/// A file that fails its hash exits 2, like any bad input: it is not the reviewed plan, so
/// there is nothing to judge the platform against (exit 3 is for a sound plan that the
/// platform or a rebuilt plan blocks).
fn reviewed_request(
    path: &std::path::Path,
    plan_hash: Option<&str>,
    target: &TargetArgs,
) -> Result<
    (
        RunRequest,
        crate::runner::Reviewed,
        Option<crate::window::Window>,
    ),
    CliError,
> {
    use crate::unattended::plan_file::{PlanFile, PlanFileError};
    let file = PlanFile::load_reviewed(path, plan_hash).map_err(CliError::usage)?;
    // Every way to name a change (`--change`, the positional ADDON PLAN) is refused here:
    // a change given beside a reviewed plan would be silently ignored.
    if !target.changes.is_empty() || target.addon.is_some() {
        return Err(CliError::text(
            ExitCode::Usage,
            format!(
                "--plan {} carries its changes: drop --change and ADDON PLAN, or plan again",
                path.display()
            ),
        ));
    }
    if !target.app.is_empty() && target.app != file.request.app {
        return Err(CliError::usage(PlanFileError::OtherApp {
            path: path.to_owned(),
            planned: file.request.app.clone(),
            given: target.app.clone(),
        }));
    }
    let reviewed = crate::runner::Reviewed {
        plan: file.plan.clone(),
        file: path.display().to_string(),
    };
    Ok((file.request, reviewed, file.window))
}

/// `run` after its flags are checked: the window gate, the interactive review, the run, the
/// post-change watch.
async fn run_scheduled(
    args: &RunArgs,
    schedule: &unattended::Schedule,
    request: &RunRequest,
    reviewed: Option<crate::runner::Reviewed>,
    reporter: Arc<dyn Reporter>,
    interrupts: &Interrupts,
) -> Result<ExitCode, CliError> {
    let interactive = args.confirm.is_none();
    let window = schedule.window.clone();
    let ctx = context_with(reporter.clone(), interrupts.clone(), |c| {
        c.window = window;
        c.reviewed = reviewed;
    })?;
    if let Some(window) = &schedule.window {
        // While waiting, an interrupt only ends the wait; the run's own handlers come after.
        let waiting = schedule
            .wait_for_window
            .then(|| unattended::install_wait_interrupts(interrupts));
        let admitted = unattended::admit(schedule, window, interrupts, reporter.as_ref()).await;
        if let Some(handler) = waiting {
            handler.abort();
        }
        admitted?;
    }
    if interactive {
        let plan = ctx.runner.plan(request).await?;
        eprint!("{}", plan::render(&plan));
        if plan.blocked {
            return Ok(ExitCode::Blocked);
        }
        confirm(&request.app, None, "run this plan")?;
    }
    install_interrupts(interrupts);
    let report = ctx.runner.run(request).await?;
    // The summary first: the watch that follows can take minutes.
    let code = finish(&report, args.json);
    let watched =
        unattended::watch_after(&ctx.runner, &report, schedule, request.params.on_watch_hit).await;
    Ok(match watched {
        Some((watch, watch_code)) => {
            if let Some(line) = unattended::watch_summary(&watch, watch_code, &request.app) {
                eprintln!("{line}");
            }
            if code == ExitCode::Success {
                watch_code
            } else {
                code
            }
        }
        None => code,
    })
}

/// `upshift resume` / `upshift rollback`.
///
/// # Errors
/// Bad input or no confirmation (exit 2), and a run that could not go on ([`RunError`]).
pub fn reopen(
    args: &ReopenArgs,
    rollback: bool,
    settings: ui::Settings,
) -> Result<ExitCode, CliError> {
    crate::cli::runtime().block_on(async {
        let interrupts = Interrupts::default();
        let reporter: Arc<dyn Reporter> = Arc::new(ui::HumanReporter::new(settings.quiet));
        let ctx = context(reporter, interrupts.clone())?;
        let (run_id, app) = ctx.runner.run_app(args.run_id.as_deref())?;
        let what = if rollback { "roll back" } else { "resume" };
        confirm(&app, args.confirm.as_deref(), what)?;
        install_interrupts(&interrupts);
        let report = if rollback {
            ctx.runner.rollback(Some(&run_id)).await
        } else {
            ctx.runner.resume(Some(&run_id)).await
        }?;
        Ok(finish(&report, args.json))
    })
}

/// One row of `upshift runs`.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub id: String,
    pub app: String,
    pub changes: Vec<String>,
    pub outcome: String,
    pub started: String,
    pub downtime_ms: Option<i64>,
    pub duration_ms: i64,
    /// Why the journal cannot be read whole (outcome `unreadable`); it names the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Reads the history from the journals.
///
/// # Errors
/// Unreadable state dir.
pub fn history(state: &StateDir) -> Result<Vec<RunRow>, RunError> {
    let mut rows = Vec::new();
    for id in state.run_ids()? {
        let path = state.run_dir(&id).join(journal::JOURNAL_FILE);
        let (entries, problem) = journal::read_prefix::<Record>(&path);
        let first_ms = entries.first().map(|e| e.at_ms);
        if first_ms.is_none() && problem.is_none() {
            continue;
        }
        let mut row = RunRow {
            id: id.clone(),
            app: String::new(),
            changes: Vec::new(),
            outcome: "unfinished".into(),
            started: first_ms
                .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
                .map(|t| t.to_string())
                .unwrap_or_default(),
            downtime_ms: None,
            duration_ms: first_ms
                .zip(entries.last())
                .map_or(0, |(first, last)| last.at_ms - first),
            problem: problem.map(|e| e.to_string()),
        };
        let mut down_since = None;
        for e in &entries {
            match &e.record {
                Record::Started { request, .. } => {
                    row.app.clone_from(&request.app);
                    row.changes = request
                        .changes
                        .iter()
                        .map(|c| format!("{}={}", c.addon, c.plan))
                        .collect();
                }
                Record::Downtime { started: true } => down_since = Some(e.at_ms),
                Record::Downtime { started: false } => {
                    if let Some(s) = down_since.take() {
                        *row.downtime_ms.get_or_insert(0) += e.at_ms - s;
                    }
                }
                Record::Finished { outcome, .. } => {
                    ui::outcome_name(*outcome).clone_into(&mut row.outcome);
                }
                _ => {}
            }
        }
        if row.problem.is_some() {
            "unreadable".clone_into(&mut row.outcome);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// `upshift runs`.
///
/// # Errors
/// No usable state dir.
pub fn runs(args: &RunsArgs) -> Result<ExitCode, CliError> {
    let state = StateDir::from_env().map_err(CliError::usage)?;
    let rows = history(&state)?;
    if args.json {
        let _ = ui::print_json(&rows);
        return Ok(ExitCode::Success);
    }
    println!(
        "{:<24} {:<16} {:<16} {:<22} {:>9} {:>9}  changes",
        "id", "app", "outcome", "started", "downtime", "duration"
    );
    for r in rows {
        let ms = |v: i64| {
            crate::playbook::duration::format(std::time::Duration::from_millis(
                u64::try_from(v).unwrap_or(0),
            ))
        };
        println!(
            "{:<24} {:<16} {:<16} {:<22} {:>9} {:>9}  {}",
            r.id,
            r.app,
            r.outcome,
            r.started.get(..19).unwrap_or(&r.started),
            r.downtime_ms.map_or("-".into(), ms),
            ms(r.duration_ms),
            r.problem.unwrap_or_else(|| r.changes.join(" "))
        );
    }
    Ok(ExitCode::Success)
}

/// `upshift playbooks`.
pub fn playbooks(args: &PlaybooksArgs) -> ExitCode {
    let builtin = Playbook::builtin();
    if args.json {
        let _ = ui::print_json(&vec![builtin]);
    } else {
        print!("{builtin}");
        println!(
            "\nRun your own with --playbook PATH (same format; see playbooks/ in the source)."
        );
    }
    ExitCode::Success
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
            writers: None,
            maintenance: false,
            cache: vec![],
            connections: vec![],
            allow_stopped_writers: false,
        }
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
