//! The command line: clap definitions, their conversion into library configs, dispatch.
//!
//! Each command family has its own file (`sim.rs`, `verify.rs`, …) holding its clap `Args`
//! struct and a pure conversion into the library's options; this file only dispatches.

pub mod demo;
pub mod run;
pub mod sim;
pub mod unattended;
pub mod verify;

use clap::{Parser, Subcommand};

/// Change the plan of a Heroku add-on (heroku-redis) without losing data.
#[derive(Debug, Parser)]
#[command(name = "upshift", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
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
    /// Start the simulator with the Enketo scenario and change both Redis add-ons against it.
    Demo(demo::DemoArgs),
    /// The Heroku simulator (tests and the demo run against it).
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// Digest a whole database: key and per-type counts, rate, and a digest equal exactly when
    /// the data is equal.
    Digest(verify::DigestArgs),
    /// Stream every key (value and expiry) to a snapshot file.
    Snapshot(verify::SnapshotArgs),
    /// Restore keys from a snapshot file, then compare again.
    Restore(verify::RestoreArgs),
    /// Compare a live database with a snapshot and name every key that differs.
    Diff(verify::DiffArgs),
}

/// Parses the process arguments, runs the command and returns the exit status.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Plan(args) => run::plan(&args),
        Command::Run(args) => run::run(&args),
        Command::Resume(args) => run::reopen(&args, false),
        Command::Rollback(args) => run::reopen(&args, true),
        Command::Runs(args) => run::runs(&args),
        Command::Playbooks(args) => run::playbooks(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Sim(cmd) => sim::run(cmd),
        Command::Digest(args) => verify::run_digest(&args),
        Command::Snapshot(args) => verify::run_snapshot(&args),
        Command::Restore(args) => verify::run_restore(&args),
        Command::Diff(args) => verify::run_diff(&args),
    };
    code.into()
}

/// Prints an error and its sources on stderr, one `caused by` line per source.
pub fn print_error(err: &dyn std::error::Error) {
    eprintln!("error: {err}");
    let mut source = err.source();
    while let Some(s) = source {
        eprintln!("  caused by: {s}");
        source = s.source();
    }
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
}
