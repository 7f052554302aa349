//! `upshift plan`, `run`, `resume`, `rollback`: the runner's command line (what to change is
//! parsed in `target.rs`; `runs` and `playbooks` are in `history.rs`).

use std::io::IsTerminal;
use std::sync::Arc;

use clap::Args;

use crate::cli::CliError;
use crate::cli::error::notice;
use crate::cli::signals::{self, Listen};
use crate::cli::target::TargetArgs;
use crate::cli::unattended;
use crate::exit::ExitCode;
use crate::heroku::{Client, ClientConfig};
use crate::journal::StateDir;
use crate::plan::{self, RunRequest};
use crate::runner::{Interrupts, Reporter, RunEvent, RunReport, Runner, RunnerConfig, Silent};
use crate::ui;

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
    #[arg(add = clap_complete::engine::ArgValueCompleter::new(crate::cli::complete::run_ids))]
    pub run_id: Option<String>,
    /// Confirm the app by name (required without a terminal).
    #[arg(long, value_name = "APP")]
    pub confirm: Option<String>,
    /// Print the run's report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Everything a command needs to reach Heroku and the state dir.
pub(super) struct Context {
    pub(super) runner: Runner,
}

pub(super) fn context(
    reporter: Arc<dyn Reporter>,
    interrupts: Interrupts,
) -> Result<Context, CliError> {
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

/// Set once the run has ended and only notifications are being delivered: an interrupt then
/// stops that wait, and says so (not "rolling back" for a run that is over).
static RUN_OVER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Catches Ctrl-C, SIGTERM, SIGHUP and SIGQUIT: the first asks for a safe stop and rollback, the second leaves
/// a resumable journal.
fn install_interrupts(interrupts: &Interrupts) {
    let interrupts = interrupts.clone();
    signals::listen(move |_| {
        interrupts.interrupt();
        if RUN_OVER.load(std::sync::atomic::Ordering::SeqCst) {
            notice("\ninterrupt: the run is over; not waiting for the notifications still out");
        } else if interrupts.count() == 1 {
            notice(
                "\ninterrupt: finishing the current step safely, then rolling back (interrupt again to stop now and leave it resumable)",
            );
        } else {
            notice("\ninterrupt: stopping now; the journal is kept for `upshift resume`");
        }
        std::future::ready(Listen::On)
    });
}

/// Asks for the app name on a terminal; without one, `--confirm APP` must match.
pub(super) fn confirm(app: &str, given: Option<&str>, what: &str) -> Result<(), CliError> {
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
        // Esc and Ctrl-C cancel, as at the wizard's questions.
        match ui::typed::read_line(&console::Term::stderr(), &*ui::theme(), &prompt) {
            Ok(Some(line)) => line,
            Ok(None) => return Err(cancelled()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Err(cancelled()),
            Err(_) => return Err(CliError::silent(ExitCode::Usage)),
        }
    } else {
        // A terminal that cannot redraw (TERM=dumb) gets a plain prompt and line.
        errout!("{prompt}: ");
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

/// Esc or Ctrl-C at the confirmation: nothing was done (exit 130, as the wizard).
fn cancelled() -> CliError {
    CliError::line(ExitCode::Interrupted, crate::cli::wizard::CANCELLED)
}

/// Prints a finished run's report; its outcome is the exit code.
fn finish(report: &RunReport, json: bool) -> ExitCode {
    if json {
        let _ = ui::print_document(&ui::RunDocument::from(report));
    } else {
        out!("{}", ui::render_summary(report));
    }
    report.exit_code()
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
    if let Some(out) = &args.schedule.out {
        crate::cli::verify::check_out(out)?;
    }
    if let Some(window) = &window {
        unattended::check_ahead(window, jiff::Timestamp::now()).map_err(CliError::usage)?;
    }
    crate::cli::runtime().block_on(async {
        let configured = window.clone();
        let ctx = context_with(Arc::new(Silent), Interrupts::default(), |c| {
            c.window = configured;
        })?;
        let plan = ctx.runner.plan(&request).await?;
        if args.json {
            let _ = ui::print_document(&plan);
        } else {
            out!("{}", plan::render_with(&plan, ui::paint_verdict));
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
                errln!("plan hash: {hash}");
            } else {
                outln!("plan hash: {hash}");
            }
            errln!(
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
    if schedule.log_format == unattended::LogFormat::Json {
        // From here on stderr is JSON events only, whatever ends the command.
        crate::cli::error::json_log();
    }
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
    if let Some(window) = &schedule.window {
        unattended::check_ahead(window, jiff::Timestamp::now()).map_err(CliError::usage)?;
    }
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
            // Any interrupt from here on stops the wait at once: the run is over and its
            // journal holds the outcome; the webhooks are best effort.
            RUN_OVER.store(true, std::sync::atomic::Ordering::SeqCst);
            let at_end = interrupts.count();
            let interrupted = async {
                while interrupts.count() == at_end {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            };
            let sent = tokio::select! {
                sent = notifier.finish(unattended::NOTIFY_BUDGET) => sent,
                () = interrupted => return result,
            };
            if sent.failed + sent.dropped > 0 {
                // Through the run's reporter (not the notifier, finished now): a JSON line
                // with --log-format json, a warning line for people.
                output.report(&RunEvent::NotificationsDone {
                    delivered: sent.delivered,
                    failed: sent.failed,
                    dropped: sent.dropped,
                    redirected: sent.redirected,
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
    // The reviewed plan carries its settle period too: a different one is refused, not
    // silently ignored.
    if let Some(given) = &target.settle {
        let settle = crate::cli::target::parse_settle(given).map_err(CliError::usage)?;
        if settle != file.request.params.settle {
            return Err(CliError::text(
                ExitCode::Usage,
                format!(
                    "--settle {given}: --plan {} was reviewed with settle {}; drop --settle or plan again",
                    path.display(),
                    crate::units::duration(file.request.params.settle)
                ),
            ));
        }
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
        // What an opening must hold to be worth waiting for: the plan's estimate (read-only
        // reads now; the guard judges again with fresh figures before the first write).
        let needed = if schedule.wait_for_window {
            let plan = ctx.runner.plan(request).await?;
            Some(
                plan.estimate
                    .run
                    .saturating_add(crate::window::gate::worst_case_rollback(&plan.estimate)),
            )
        } else {
            None
        };
        let admitted =
            unattended::admit(window, needed, interactive, interrupts, reporter.as_ref()).await;
        if let Some(handler) = waiting {
            handler.abort();
        }
        admitted?;
    }
    if interactive {
        let plan = ctx.runner.plan(request).await?;
        errout!("{}", plan::render_with(&plan, ui::paint_verdict_stderr));
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
                errln!("{line}");
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
