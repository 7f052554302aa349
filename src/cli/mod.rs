//! The command line: clap definitions, their conversion into library configs, dispatch.
//!
//! Each command family has its own file (`sim.rs`, `verify.rs`, …) holding its clap `Args`
//! struct and a pure conversion into the library's options; this file only dispatches.

#[cfg(feature = "sim")]
pub mod demo;
pub mod error;
#[cfg(not(feature = "sim"))]
mod nosim;
pub mod run;
pub mod signals;
#[cfg(feature = "sim")]
pub mod sim;
pub mod unattended;
pub mod verify;
pub mod wizard;

use clap::{Args, Parser, Subcommand};

pub use error::CliError;

use crate::exit::ExitCode;
use crate::ui::{self, ColorChoice};

/// The examples under `upshift --help`.
const EXAMPLES: &str = "\
Examples:
  upshift wizard                          # walks you through a plan change
  upshift demo --wizard                   # the same, against a built-in Heroku simulator
  upshift plan -a enketo-demo --change enketo_redis_main=premium-1
  upshift run  -a enketo-demo --change enketo_redis_main=premium-1 --confirm enketo-demo
  upshift runs --json
  upshift completions bash > ~/.local/share/bash-completion/completions/upshift

Exit codes: 0 succeeded, 1 rolled back, 2 usage, 3 blocked by a guard, 4 needs attention,
5 locked by another run, 6 stopped with the new plan kept, 130 interrupted (resumable).";

/// What bare `upshift` prints (on stderr, exit 2): where to start.
pub const SHORT_HELP: &str = "\
upshift changes the plan of a Heroku Redis add-on without losing data.

Start here:
  upshift wizard      walks you through it (app, add-ons, plans, review, confirm)
  upshift plan -a APP --change ADDON=PLAN
                      shows what a change would do; read-only
  upshift demo        tries it against a built-in simulator

`upshift --help` lists every command.";

/// Change the plan of a Heroku add-on (heroku-redis) without losing data.
#[derive(Debug, Parser)]
#[command(
    name = "upshift",
    version,
    about,
    propagate_version = true,
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags every command accepts.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// When to use colour: auto follows `NO_COLOR` and whether the output is a terminal.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
    /// Only warnings, errors and results (no progress).
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

impl From<&GlobalArgs> for ui::Settings {
    fn from(g: &GlobalArgs) -> Self {
        Self {
            color: g.color,
            quiet: g.quiet,
        }
    }
}

/// `upshift completions`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Examples:
  upshift completions bash > ~/.local/share/bash-completion/completions/upshift
  upshift completions zsh  > \"${fpath[1]}/_upshift\"
  upshift completions fish > ~/.config/fish/completions/upshift.fish")]
pub struct CompletionsArgs {
    /// The shell to write completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Every subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what a plan change would do, every guard's verdict and the estimated downtime.
    /// Read-only.
    Plan(run::PlanArgs),
    /// Change the plan: stop the writers, snapshot, change, verify, restore.
    Run(run::RunArgs),
    /// Carry on an interrupted run from its journal.
    Resume(run::ReopenArgs),
    /// Roll an unfinished run back.
    Rollback(run::ReopenArgs),
    /// List earlier runs.
    Runs(run::RunsArgs),
    /// List the playbooks and their parameters.
    Playbooks(run::PlaybooksArgs),
    /// Walk through a plan change: app, add-ons, target plans (too small ones refused with the
    /// reason), writers, the dry-run plan, a typed confirmation, then the run with live progress.
    Wizard(wizard::WizardArgs),
    /// Start the simulator with the Enketo scenario and change both Redis add-ons against it
    /// (`--wizard`: walk the wizard against it).
    #[cfg(feature = "sim")]
    Demo(demo::DemoArgs),
    /// Start the simulator with the Enketo scenario and change both Redis add-ons against it
    /// (not in this build: it has no simulator).
    #[cfg(not(feature = "sim"))]
    Demo(nosim::Absent),
    /// The Heroku simulator (tests and the demo run against it).
    #[cfg(feature = "sim")]
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// The Heroku simulator (not in this build).
    #[cfg(not(feature = "sim"))]
    Sim(nosim::Absent),
    /// Digest a whole database: key and per-type counts, rate, and a digest equal exactly when
    /// the data is equal.
    Digest(verify::DigestArgs),
    /// Stream every key (value and expiry) to a snapshot file.
    Snapshot(verify::SnapshotArgs),
    /// Restore keys from a snapshot file, then compare again.
    Restore(verify::RestoreArgs),
    /// Compare a live database with a snapshot and name every key that differs.
    Diff(verify::DiffArgs),
    /// Print shell completions (bash, zsh, fish, …) on stdout.
    Completions(CompletionsArgs),
}

/// Parses the process arguments, runs the command and returns the exit status.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let settings = ui::Settings::from(&cli.global);
    ui::configure(settings);
    let Some(command) = cli.command else {
        eprintln!("{SHORT_HELP}");
        return ExitCode::Usage.into();
    };
    let result = match command {
        Command::Plan(args) => run::plan(&args),
        Command::Run(args) => run::run(&args, settings),
        Command::Resume(args) => run::reopen(&args, false, settings),
        Command::Rollback(args) => run::reopen(&args, true, settings),
        Command::Runs(args) => run::runs(&args),
        Command::Playbooks(args) => Ok(run::playbooks(&args)),
        Command::Wizard(args) => wizard::run(&args, settings),
        #[cfg(feature = "sim")]
        Command::Demo(args) => demo::run(&args, settings),
        #[cfg(feature = "sim")]
        Command::Sim(cmd) => sim::run(cmd),
        #[cfg(not(feature = "sim"))]
        Command::Demo(_) => nosim::refuse("demo"),
        #[cfg(not(feature = "sim"))]
        Command::Sim(_) => nosim::refuse("sim"),
        Command::Digest(args) => verify::run_digest(&args),
        Command::Snapshot(args) => verify::run_snapshot(&args),
        Command::Restore(args) => verify::run_restore(&args),
        Command::Diff(args) => verify::run_diff(&args),
        Command::Completions(args) => {
            use clap::CommandFactory;
            clap_complete::generate(
                args.shell,
                &mut Cli::command(),
                "upshift",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::Success)
        }
    };
    // The one place errors are printed: commands return them with the exit code they mean.
    let code = result.unwrap_or_else(|e| {
        e.print();
        e.exit_code()
    });
    code.into()
}

/// A Tokio runtime for one command.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the Tokio runtime starts")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn help(args: &[&str]) -> String {
        let err = Cli::command()
            .term_width(100)
            .try_get_matches_from(args)
            .expect_err("--help ends parsing");
        err.render().to_string()
    }

    #[test]
    fn top_level_help_snapshot() {
        insta::assert_snapshot!(help(&["upshift", "--help"]));
    }

    #[test]
    fn wizard_help_snapshot() {
        insta::assert_snapshot!(help(&["upshift", "wizard", "--help"]));
    }

    #[test]
    fn global_flags_parse_anywhere() {
        let cli = Cli::try_parse_from(["upshift", "runs", "--json", "-q", "--color", "never"])
            .expect("parses");
        assert!(cli.global.quiet);
        assert_eq!(cli.global.color, ColorChoice::Never);
        let cli = Cli::try_parse_from(["upshift"]).expect("bare upshift parses");
        assert!(cli.command.is_none());
    }
}
