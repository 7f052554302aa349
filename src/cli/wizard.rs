//! `upshift wizard`: asks the questions an operator who changes a plan once a year needs
//! asked (app, add-ons, caches, writers, target plans), shows the same dry-run plan as
//! `upshift plan`, confirms by app name, then runs the same [`RunRequest`] through the same
//! [`Runner::run`] as `upshift run`. The answers and the offered plans are pure
//! ([`crate::plan::choices`]); this file only prompts (dialoguer) and calls the runner.

use std::io::IsTerminal;
use std::sync::Arc;

use clap::Args;
use dialoguer::{FuzzySelect, MultiSelect, Select};
use thiserror::Error;

use crate::cli::CliError;
use crate::cli::signals::{self, Listen, Signal};
use crate::exit::ExitCode;
use crate::heroku::{Client, ClientConfig, HerokuError};
use crate::journal::StateDir;
use crate::plan::choices::{self, AddonRow, Availability};
use crate::plan::facts::{ChangeRequest, DataPolicy};
use crate::plan::{self, RunRequest};
use crate::playbook::{Playbook, Strategy};
use crate::printable::text;
use crate::runner::{self, Interrupts, Reporter, RunError, Runner, RunnerConfig};
use crate::ui::menu::MenuAnswer;
use crate::ui::{self, HumanReporter};

/// `upshift wizard`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Examples:
  upshift wizard                 # asks for the app among those your token can see
  upshift wizard -a enketo-demo  # starts at the add-ons of enketo-demo
  upshift demo --wizard          # tries it against the built-in simulator

Without a terminal the wizard refuses (exit 2); pass the answers as flags instead:
  upshift run -a APP --change ADDON=PLAN [--cache ADDON] [--writers web,worker] --confirm APP")]
pub struct WizardArgs {
    /// Start with this app instead of choosing it from a list.
    #[arg(short, long, add = clap_complete::engine::ArgValueCompleter::new(crate::cli::complete::apps))]
    pub app: Option<String>,
}

/// Why the wizard stopped before running anything.
#[derive(Debug, Error)]
pub enum WizardError {
    #[error(
        "upshift wizard asks questions and needs a terminal on stdin and stderr; unattended, pass the answers as flags: upshift run -a APP --change ADDON=PLAN [--change ADDON=PLAN] [--cache ADDON] [--writers web,worker] --confirm APP"
    )]
    NoTerminal,
    #[error(
        "upshift wizard redraws its lists and TERM says this terminal cannot (TERM is dumb or unset): set TERM (e.g. TERM=xterm), or pass the answers as flags: upshift plan -a APP --change ADDON=PLAN to review, then upshift run with the same flags and --confirm APP"
    )]
    DumbTerminal,
    #[error("the prompt failed: {0}")]
    Prompt(#[from] dialoguer::Error),
    #[error("your token sees no apps: check HEROKU_API_KEY (or `heroku auth:token`)")]
    NoApps,
    #[error("{app} has no heroku-redis add-on: `heroku addons -a {app}` lists what it has")]
    NoRedis { app: String },
    #[error(
        "no plan can be chosen for {label}: every offered plan is refused by a guard (see the list above)"
    )]
    NothingChoosable { label: String },
    #[error("{CANCELLED}")]
    Cancelled,
    #[error("{typed:?} is not {app}: nothing was done")]
    NotConfirmed { typed: String, app: String },
    #[error("a guard blocks this plan (marked BLOCKED above): nothing was written")]
    Blocked,
    #[error(transparent)]
    Run(#[from] RunError),
}

impl From<HerokuError> for WizardError {
    fn from(e: HerokuError) -> Self {
        Self::Run(RunError::Heroku(e))
    }
}

impl WizardError {
    /// The exit code this error means.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Run(e) => e.exit_code(),
            Self::NothingChoosable { .. } | Self::Blocked => ExitCode::Blocked,
            _ => ExitCode::Usage,
        }
    }
}

/// `upshift wizard`.
///
/// # Errors
/// No terminal, no token or state dir (exit 2), and what [`wizard`] returns.
pub fn run(args: &WizardArgs, settings: ui::Settings) -> Result<ExitCode, CliError> {
    require_terminal()?;
    let config = ClientConfig::from_env()
        .and_then(Client::new)
        .map_err(CliError::usage)?;
    let state = StateDir::from_env().map_err(CliError::usage)?;
    crate::cli::runtime().block_on(wizard(
        config,
        RunnerConfig::new(state),
        args.app.clone(),
        settings,
    ))
}

/// Refuses early, before any call, when there is nobody to answer.
///
/// # Errors
/// [`WizardError::NoTerminal`]; [`WizardError::DumbTerminal`] when `TERM` says the terminal
/// cannot move the cursor, which every list question does.
pub fn require_terminal() -> Result<(), WizardError> {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        Err(WizardError::NoTerminal)
    } else if ui::dumb_term() {
        Err(WizardError::DumbTerminal)
    } else {
        Ok(())
    }
}

/// The whole wizard against one client (Heroku, or the demo's simulator).
///
/// # Errors
/// The answers could not be gathered ([`WizardError`]) or the run could not go on
/// ([`RunError`]); a run that rolls back is an outcome, not an error.
pub async fn wizard(
    client: Client,
    config: RunnerConfig,
    app: Option<String>,
    settings: ui::Settings,
) -> Result<ExitCode, CliError> {
    let reporter = Arc::new(HumanReporter::new(settings.quiet));
    let interrupts = Interrupts::default();
    let dyn_reporter: Arc<dyn Reporter> = reporter.clone();
    let runner = Runner::new(client, config.clone(), dyn_reporter, interrupts.clone());
    // Until the confirmation nothing has been written: Ctrl-C, SIGTERM or SIGHUP between questions
    // (while the app is read) leaves at once. At a question the terminal is raw, so Ctrl-C
    // arrives as a key and the prompt returns `Cancelled` instead.
    let cancel = signals::listen(|_| async {
        errln!("\n{CANCELLED}");
        exit_restored(ExitCode::Interrupted)
    });
    let request = ask(&runner, &config.state, app).await;
    cancel.abort();
    let request = request?;
    let menu = Arc::new(std::sync::Mutex::new(None));
    let handler = install_interrupts(&interrupts, reporter.clone(), menu.clone());
    let result = runner.run(&request).await;
    handler.abort();
    // A menu nobody answered ends with the run: erased, the terminal given back, and what the
    // run reported meanwhile printed below it.
    let unanswered = tokio::task::block_in_place(|| {
        menu.lock()
            .ok()
            .and_then(|mut m| m.take())
            .map(|mut m: ui::menu::Menu| m.close())
            .is_some()
    });
    reporter.resume();
    if unanswered {
        errln!("the run ended before the menu was answered");
    }
    let report = result?;
    // The run is over: a Ctrl-C during the headroom read below just ends the process with
    // the run's own exit code (nothing is left to stop).
    let code = report.exit_code();
    let _after = signals::listen(move |_| async move { exit_restored(code) });
    out!("{}", ui::render_summary(&report));
    if report.outcome == crate::engine::Outcome::Succeeded {
        // A fresh read of the new plans: what the app has left to grow into.
        if let Ok(after) = runner.plan(&request).await {
            outln!("\nWhat to watch next (headroom on the new plans):");
            for line in choices::headroom(&after.capture) {
                outln!("  {line}");
            }
            outln!(
                "  in the logs: heroku logs --tail -a {} | grep -E 'max number of clients|R14|H10'",
                request.app
            );
        }
    }
    Ok(report.exit_code())
}

/// Runs a blocking prompt without starving the runtime (the demo's simulator shares it).
fn prompt<T>(f: impl FnOnce() -> dialoguer::Result<T>) -> Result<T, WizardError> {
    // Test builds only: a prompt that panics with the terminal raw and the cursor hidden, so
    // the pty tests can check that the panic hook gives the terminal back.
    #[cfg(feature = "failpoints")]
    if std::env::var("UPSHIFT_FAILPOINT").as_deref() == Ok("panic-in-prompt") {
        if let Some(raw) = ui::terminal::raw_modes() {
            ui::terminal::set_modes(&raw);
        }
        let _ = console::Term::stderr().hide_cursor();
        panic!("failpoint panic-in-prompt");
    }
    tokio::task::block_in_place(f).map_err(|e| match e {
        // Ctrl-C at a question: the operator changed their mind.
        dialoguer::Error::IO(io) if io.kind() == std::io::ErrorKind::Interrupted => {
            WizardError::Cancelled
        }
        e @ dialoguer::Error::IO(_) => WizardError::Prompt(e),
    })
}

/// A list question: Esc (or `q`) cancels it as Ctrl-C does.
fn choose<T>(f: impl FnOnce() -> dialoguer::Result<Option<T>>) -> Result<T, WizardError> {
    prompt(f)?.ok_or(WizardError::Cancelled)
}

/// The questions, in the order their answers are needed: the connection guard that judges
/// each plan depends on which add-ons are caches and which process types come back.
async fn ask(
    runner: &Runner,
    state: &StateDir,
    app: Option<String>,
) -> Result<RunRequest, WizardError> {
    let theme = ui::theme();
    let client = runner.client();
    let app = if let Some(app) = app {
        app
    } else {
        let mut apps: Vec<String> = client.apps().await?.into_iter().map(|a| a.name).collect();
        apps.sort();
        if apps.is_empty() {
            return Err(WizardError::NoApps);
        }
        let shown: Vec<String> = apps.iter().map(|a| text(a)).collect();
        let i = choose(|| {
            FuzzySelect::with_theme(&*theme)
                .with_prompt("App (type to filter)")
                .items(&shown)
                .default(0)
                .interact_on_opt(&console::Term::stderr())
        })?;
        apps[i].clone()
    };

    let redis: Vec<String> = client
        .addons(&app)
        .await?
        .into_iter()
        .filter(|a| a.addon_service.name == crate::plans::HEROKU_REDIS)
        .map(|a| {
            // What a person would type: the attachment name behind the config var.
            runner::capture::url_var(&a, None)
                .and_then(|v| v.strip_suffix("_URL").map(str::to_lowercase))
                .unwrap_or(a.name)
        })
        .collect();
    if redis.is_empty() {
        return Err(WizardError::NoRedis { app });
    }
    let playbook = Playbook::builtin();
    let mut request = RunRequest {
        app: app.clone(),
        changes: redis
            .iter()
            .map(|name| ChangeRequest {
                addon: name.clone(),
                plan: String::new(),
                policy: DataPolicy::Critical,
                connections_per_dyno: None,
            })
            .collect(),
        params: playbook.params.clone(),
        playbook,
    };
    errln!(
        "Reading {}: formation, add-ons and Redis INFO{}",
        text(&app),
        ui::terminal::ellipsis()
    );
    let unfinished = runner::unfinished(state, Some(&app))?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let capture = runner::capture::capture(
        client,
        &request,
        state.root(),
        unfinished,
        jiff::Timestamp::now(),
    )
    .await?;
    let rows = choices::addon_rows(&capture);
    errln!(
        "\n{}\n",
        ui::table::addon_table(&rows, ui::table::stderr_width())
    );

    let picked: Vec<AddonRow> = loop {
        let sel = choose(|| {
            MultiSelect::with_theme(&*theme)
                .with_prompt("Add-ons to change (space toggles, enter accepts)")
                .items(rows.iter().map(|r| text(&r.label)))
                .defaults(&vec![true; rows.len()])
                .interact_on_opt(&console::Term::stderr())
        })?;
        if sel.is_empty() {
            errln!("choose at least one add-on");
            continue;
        }
        break sel.into_iter().map(|i| rows[i].clone()).collect();
    };
    // Explanations on their own lines: a prompt that wraps on a narrow terminal leaves ghost
    // lines when dialoguer redraws it.
    errln!("Caches tolerate data loss: their differences are reported, not repaired.");
    let caches = choose(|| {
        MultiSelect::with_theme(&*theme)
            .with_prompt("Which of them are caches? (none by default)")
            .items(picked.iter().map(|r| text(&r.label)))
            .interact_on_opt(&console::Term::stderr())
    })?;
    let writers = choices::writer_choices(&capture);
    let writers: Vec<String> = loop {
        let defaults: Vec<bool> = writers.iter().map(|(_, on)| *on).collect();
        errln!("Writers are stopped during the change.");
        let sel = choose(|| {
            MultiSelect::with_theme(&*theme)
                .with_prompt("Process types that write to Redis")
                .items(writers.iter().map(|(t, _)| text(t)))
                .defaults(&defaults)
                .interact_on_opt(&console::Term::stderr())
        })?;
        if sel.is_empty() {
            errln!(
                "choose at least one process type: the writers must stop for the data to be safe"
            );
            continue;
        }
        break sel.into_iter().map(|i| writers[i].0.clone()).collect();
    };
    request.params.writers = writers;
    request.changes = picked
        .iter()
        .enumerate()
        .map(|(i, row)| ChangeRequest {
            addon: row.requested_as.clone(),
            plan: row.plan.clone(),
            policy: if caches.contains(&i) {
                DataPolicy::Cache
            } else {
                DataPolicy::Critical
            },
            connections_per_dyno: None,
        })
        .collect();

    for (i, row) in picked.iter().enumerate() {
        let label = &row.label;
        let offered = choices::plan_choices(&request, &capture, label).unwrap_or_default();
        let Some(default) = choices::suggested(&offered) else {
            for c in &offered {
                errln!("  {}", text(&c.render()));
            }
            return Err(WizardError::NothingChoosable {
                label: label.clone(),
            });
        };
        let width = ui::table::stderr_width();
        let items = ui::table::plan_items(&offered, width);
        if let Some(notes) = ui::table::plan_notes(&offered, width) {
            errln!("{notes}");
        }
        let chosen = loop {
            let k = choose(|| {
                Select::with_theme(&*theme)
                    .with_prompt(format!(
                        "New plan for {} (now {})",
                        text(label),
                        text(&row.plan)
                    ))
                    .items(&items)
                    .default(default)
                    .max_length(14)
                    .interact_on_opt(&console::Term::stderr())
            })?;
            match &offered[k].availability {
                Availability::Allowed { .. } => break offered[k].plan.name,
                Availability::Current => errln!(
                    "{} cannot be chosen for {}: it is the current plan",
                    offered[k].plan.name,
                    text(label)
                ),
                Availability::Blocked { reasons } => errln!(
                    "{} cannot be chosen for {}: {}",
                    offered[k].plan.name,
                    text(label),
                    text(&reasons.join("; "))
                ),
            }
        };
        chosen.clone_into(&mut request.changes[i].plan);
    }

    let (request, plan) = choose_strategy(runner, request, &*theme).await?;
    errln!("\n{}", plan::render_with(&plan, ui::paint_verdict_stderr));
    errln!(
        "Unattended, the same run is:\n  {}\n",
        choices::command_line(&request)
    );
    if plan.blocked {
        return Err(WizardError::Blocked);
    }
    // A typo asks again (three tries) rather than throwing away every answer above.
    let mut attempt = 1;
    loop {
        // Read key by key: Esc cancels here as at every other question (`Input` ignores it).
        let typed: String = choose(|| {
            ui::typed::read_line(
                &console::Term::stderr(),
                &*theme,
                &format!("Type the app name ({}) to run this plan", text(&app)),
            )
            .map_err(dialoguer::Error::IO)
        })?;
        if typed.trim() == app {
            return Ok(request);
        }
        if attempt >= CONFIRM_TRIES {
            return Err(WizardError::NotConfirmed { typed, app });
        }
        attempt += 1;
        errln!(
            "{:?} is not {app}; type it again to run, or press Esc or Ctrl-C to leave (nothing was done)",
            typed.trim()
        );
    }
}

/// Both strategies side by side, planned on live facts: expected downtime, whole run, what
/// costs extra and what changes; a blocked one says why. In place is the default (see the
/// README's "Strategies").
async fn choose_strategy(
    runner: &Runner,
    request: RunRequest,
    theme: &dyn dialoguer::theme::Theme,
) -> Result<(RunRequest, plan::Plan), WizardError> {
    let mut live = request.clone();
    live.playbook = Playbook::of_strategy(Strategy::LiveSwap);
    live.params.retire_old = live.playbook.params.retire_old;
    let in_place_plan = runner.plan(&request).await?;
    let live_plan = runner.plan(&live).await?;
    let describe = |name: &str, p: &plan::Plan, what: &str| {
        let blocked: Vec<&str> = p
            .guards
            .iter()
            .filter(|g| g.verdict == crate::plan::guards::Verdict::Block)
            .map(|g| g.detail.as_str())
            .collect();
        let mut s = format!(
            "{name:<10} downtime ~{}, whole run ~{}; {what}",
            crate::units::duration(p.estimate.downtime),
            crate::units::duration(p.estimate.run)
        );
        if let Some(first) = blocked.first() {
            s = format!("{s} (BLOCKED: {})", text(first));
        }
        s
    };
    let items = [
        describe(
            "in place",
            &in_place_plan,
            "no extra cost; the add-on keeps its name",
        ),
        describe(
            "live swap",
            &live_plan,
            "a second add-on is billed until the old one is retired; the add-on's name changes, its attachment names do not",
        ),
    ];
    errln!(
        "Two ways to change the plan: in place (Heroku's own change, the writers stopped while it provisions) or by a live swap to a new add-on."
    );
    let k = choose(|| {
        Select::with_theme(theme)
            .with_prompt("Strategy")
            .items(&items)
            .default(0)
            .interact_on_opt(&console::Term::stderr())
    })?;
    if k != 1 {
        return Ok((request, in_place_plan));
    }
    live.params.retire_old = choose_retire_old(theme)?;
    if live.params.retire_old == live.playbook.params.retire_old {
        return Ok((live, live_plan));
    }
    // Planned again: the answer has a guard of its own (`retire-old-now` warns).
    let live_plan = runner.plan(&live).await?;
    Ok((live, live_plan))
}

/// Live swap: what becomes of the old add-on after success, the playbook's grace period first.
/// Destroying it at once is offered but worded as what it is: no way back.
fn choose_retire_old(
    theme: &dyn dialoguer::theme::Theme,
) -> Result<crate::playbook::RetireOld, WizardError> {
    use crate::playbook::{DEFAULT_RETIRE_OLD, RetireOld};
    let grace = match DEFAULT_RETIRE_OLD {
        RetireOld::After(d) => crate::playbook::duration::format(d),
        RetireOld::Now | RetireOld::Never => "a day".to_owned(),
    };
    let options = [
        (
            DEFAULT_RETIRE_OLD,
            format!("keep it {grace} so that you can go back, then `upshift retire` destroys it"),
        ),
        (
            RetireOld::Never,
            "keep it until you destroy it (billed meanwhile)".to_owned(),
        ),
        (
            RetireOld::Now,
            "destroy it right after success (no way back)".to_owned(),
        ),
    ];
    let k = choose(|| {
        Select::with_theme(theme)
            .with_prompt("The old add-on after success")
            .items(options.iter().map(|(_, text)| text))
            .default(0)
            .interact_on_opt(&console::Term::stderr())
    })?;
    Ok(options[k].0)
}

/// The Ctrl-C menu, worded by where the run stands: before the plan change "undo everything"
/// is true; after it, the change cannot be undone in place, so the first choice keeps the new
/// plan. "Leave it resumable" says when the app stays down.
fn menu_items(phase: crate::ui::Phase) -> [String; 3] {
    let first = if phase.past_point_of_no_return {
        "finish safely and keep the new plan (the plan change cannot be undone: the data is verified, then the app comes back on its formation)"
    } else {
        "roll back now (the current step finishes safely, then everything is undone)"
    };
    let resumable = if phase.writers_stopped {
        "leave it resumable (stop now; the app stays DOWN with its writers at 0 until `upshift resume` or `upshift rollback`)"
    } else {
        "leave it resumable (stop now; `upshift resume` or `upshift rollback` later)"
    };
    [
        first.to_owned(),
        resumable.to_owned(),
        "continue the run".to_owned(),
    ]
}

/// Ends the process from a signal handler, terminal restored first (the guard in `cli::main`
/// is not dropped by `exit`).
fn exit_restored(code: ExitCode) -> Listen {
    ui::terminal::restore();
    std::process::exit(i32::from(code.code()))
}

/// What Ctrl-C or Esc at a question prints (exit 130).
pub const CANCELLED: &str = "cancelled, nothing changed";

/// How many times the final confirmation may be mistyped before the wizard gives up.
const CONFIRM_TRIES: u32 = 3;

/// The Ctrl-C menu while it is open, so the run's end can close it.
type MenuSlot = Arc<std::sync::Mutex<Option<ui::menu::Menu>>>;

/// Ctrl-C during the run asks what to do, with the progress display paused; SIGTERM (nobody
/// to ask) keeps `upshift run`'s meaning: stop safely and roll back, then leave resumable.
fn install_interrupts(
    interrupts: &Interrupts,
    reporter: Arc<HumanReporter>,
    slot: MenuSlot,
) -> tokio::task::JoinHandle<()> {
    let interrupts = interrupts.clone();
    signals::listen(move |signal| {
        let interrupts = interrupts.clone();
        let reporter = reporter.clone();
        let slot = slot.clone();
        async move {
            if signal == Signal::Terminate || interrupts.count() >= 1 {
                interrupts.interrupt();
                errln!(
                    "\ninterrupt: {}",
                    if interrupts.count() >= 2 {
                        "stopping now; the journal is kept for `upshift resume`"
                    } else {
                        "finishing the current step safely, then rolling back"
                    }
                );
                return Listen::On;
            }
            let items = menu_items(reporter.phase()).to_vec();
            reporter.pause();
            errln!();
            let (menu, answer) = ui::menu::Menu::open("Interrupted. What now?".into(), items, 0);
            if let Ok(mut open) = slot.lock() {
                *open = Some(menu);
            }
            let answer = answer.await;
            if let Ok(mut open) = slot.lock() {
                // Answered: the thread has ended; dropping the handle joins it at once.
                open.take();
            }
            // The decision first, then what the run reported meanwhile.
            match answer {
                Ok(MenuAnswer::Chosen(0)) => {
                    interrupts.interrupt();
                    errln!("stopping safely after the current step…");
                }
                Ok(MenuAnswer::Chosen(2) | MenuAnswer::Dismissed) => {
                    errln!("continuing the run");
                }
                // Closed by the run's end: nothing to decide any more.
                Ok(MenuAnswer::Closed) | Err(_) => return Listen::On,
                // "Leave it resumable", or Ctrl-C again at the menu.
                Ok(MenuAnswer::Chosen(_) | MenuAnswer::Interrupted) => {
                    interrupts.interrupt();
                    interrupts.interrupt();
                    errln!("stopping now; the journal is kept for `upshift resume`");
                }
            }
            reporter.resume();
            Listen::On
        }
    })
}

#[cfg(test)]
mod tests {
    use super::menu_items;
    use crate::ui::Phase;

    #[test]
    fn the_ctrl_c_menu_promises_an_undo_only_before_the_plan_change() {
        let before = menu_items(Phase::default());
        assert!(before[0].contains("everything is undone"), "{before:?}");
        assert!(!before[1].contains("DOWN"), "{before:?}");
        let after = menu_items(Phase {
            past_point_of_no_return: true,
            writers_stopped: true,
        });
        assert!(after[0].contains("keep the new plan"), "{after:?}");
        assert!(!after[0].contains("undone,"), "{after:?}");
        assert!(!after.iter().any(|i| i.contains("everything is undone")));
        assert!(after[1].contains("the app stays DOWN"), "{after:?}");
    }
}
