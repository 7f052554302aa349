//! The command line: clap definitions, their conversion into library configs, dispatch.
//!
//! Each command family has its own file (`sim.rs`, `verify.rs`, …) holding its clap `Args`
//! struct and a pure conversion into the library's options; this file only dispatches.

pub mod complete;
#[cfg(feature = "sim")]
pub mod demo;
pub mod error;
pub mod history;
#[cfg(not(feature = "sim"))]
mod nosim;
pub mod retire;
pub mod run;
pub mod schema;
pub mod signals;
#[cfg(feature = "sim")]
pub mod sim;
pub mod target;
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

Exit codes: 0 succeeded, 1 failed and rolled back, 2 usage, 3 blocked by a guard, 4 needs
attention, 5 locked by another run, 6 stopped with the new plan kept, 130 interrupted (rolled
back, or resumable after a second interrupt).

Signals during a run: Ctrl-C, SIGTERM, SIGHUP (terminal or ssh closed) and SIGQUIT each ask
for a safe stop: the current step finishes, then the run rolls back (130), or keeps the new
plan after the plan change (6). A second one stops at once, resumable (130).";

/// What bare `upshift` prints (on stderr, exit 2): where to start.
pub const SHORT_HELP: &str = "\
upshift changes the plan of a Heroku Redis add-on without losing data.

Start here:
  upshift wizard      walks you through it (app, add-ons, plans, review, confirm)
  upshift plan -a APP --change ADDON=PLAN
                      shows what a change would do; read-only
  upshift demo        tries it against a built-in simulator

`upshift --help` lists every command.";

/// `upshift --version`: the version, the git commit it was built from and the build date
/// (stamped by `build.rs`), so a binary found in a slug can be traced to its source.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("UPSHIFT_GIT_COMMIT"),
    " ",
    env!("UPSHIFT_BUILD_DATE"),
    ")"
);

/// Change the plan of a Heroku add-on (heroku-redis) without losing data.
#[derive(Debug, Parser)]
#[command(
    name = "upshift",
    version = VERSION,
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
    /// Show every HTTP request to Heroku on stderr (method, path, status, request id, time;
    /// never a token or a Redis URL). `UPSHIFT_DEBUG=1` does the same.
    #[arg(short, long, global = true)]
    pub verbose: bool,
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
    Runs(history::RunsArgs),
    /// Destroy the old add-ons live swaps kept, once their grace period has passed.
    Retire(retire::RetireArgs),
    /// List the playbooks and their parameters.
    Playbooks(history::PlaybooksArgs),
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
    /// Print the man page (roff) on stdout.
    ///
    /// Install it with `upshift man > ~/.local/share/man/man1/upshift.1`.
    Man,
}

/// The man page, generated from the clap definitions (the same text as `--help`).
///
/// # Errors
/// Writing to `out` failed.
pub fn man_page(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use clap::CommandFactory;
    clap_mangen::Man::new(Cli::command()).render(out)
}

/// Parses the process arguments, runs the command and returns the exit status.
pub fn main() -> std::process::ExitCode {
    // Saved before anything can change it; restored when this returns, and by the panic hook.
    let _terminal = ui::terminal::TerminalGuard::save();
    // `COMPLETE=bash upshift …`: the shell asks for completions; answer and exit.
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command).complete();
    let cli = Cli::parse();
    let settings = ui::Settings::from(&cli.global);
    ui::configure(settings);
    if cli.global.verbose || std::env::var("UPSHIFT_DEBUG").is_ok_and(|v| !v.is_empty() && v != "0")
    {
        crate::heroku::on_request(ui::print_request);
    }
    let Some(command) = cli.command else {
        errln!("{SHORT_HELP}");
        return ExitCode::Usage.into();
    };
    let result = match command {
        Command::Plan(args) => run::plan(&args),
        Command::Run(args) => run::run(&args, settings),
        Command::Resume(args) => run::reopen(&args, false, settings),
        Command::Rollback(args) => run::reopen(&args, true, settings),
        Command::Runs(args) => history::runs(&args),
        Command::Retire(args) => retire::retire(&args),
        Command::Playbooks(args) => Ok(history::playbooks(&args)),
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
        Command::Man => man_page(&mut std::io::stdout().lock())
            .map(|()| ExitCode::Success)
            .map_err(|e| CliError::text(ExitCode::Usage, format!("writing the man page: {e}"))),
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
    fn the_man_page_renders_from_the_clap_definitions() {
        let mut out = Vec::new();
        man_page(&mut out).expect("renders");
        let page = String::from_utf8(out).expect("roff is text");
        assert!(page.starts_with(".ie"), "{}", &page[..80.min(page.len())]);
        assert!(page.contains(".TH upshift 1"), "{page}");
        assert!(page.contains("upshift\\-wizard"), "{page}");
        assert!(page.contains("\\-\\-color"), "{page}");
    }

    #[test]
    fn the_version_names_the_commit_and_the_build_date() {
        let v = Cli::command().render_version();
        assert!(
            v.starts_with(&format!("upshift {} (", env!("CARGO_PKG_VERSION"))),
            "{v}"
        );
        let inside = v.trim().trim_end_matches(')').rsplit_once('(').unwrap().1;
        let (commit, date) = inside.split_once(' ').unwrap();
        assert!(
            commit == "unknown"
                || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
            "{v}"
        );
        assert!(jiff::civil::Date::strptime("%Y-%m-%d", date).is_ok(), "{v}");
    }

    /// Splits a README command line as sh would for these simple lines: words, and double
    /// quotes around words with spaces.
    fn words(line: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut word = String::new();
        let mut quoted = false;
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ' ' if !quoted => {
                    if !word.is_empty() {
                        out.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            out.push(word);
        }
        out
    }

    /// The Heroku Scheduler recipe in the README's Install section is a command this version
    /// accepts, unattended (`--confirm`, no prompt), and so is the `plan --out` that makes
    /// its plan file.
    #[test]
    fn the_readme_scheduler_recipe_parses() {
        let readme = include_str!("../../README.md");
        let install = readme
            .split("## Install")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("the README has an Install section");
        let scheduled = install
            .lines()
            .find(|l| l.starts_with("bin/upshift run "))
            .expect("the scheduler command");
        let mut argv = words(scheduled);
        argv[0] = "upshift".into();
        let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{scheduled}: {e}"));
        let Some(Command::Run(run)) = cli.command else {
            panic!("not a run: {scheduled}")
        };
        assert_eq!(run.confirm.as_deref(), Some("enketo-prod"));
        let plan = install
            .lines()
            .find(|l| l.starts_with("upshift plan "))
            .expect("the plan command");
        let cli = Cli::try_parse_from(words(plan)).unwrap_or_else(|e| panic!("{plan}: {e}"));
        assert!(matches!(cli.command, Some(Command::Plan(_))));
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
