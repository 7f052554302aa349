//! `upshift sim …`: the simulator's command line (owned by the simulator work).

use clap::Subcommand;

use crate::exit::ExitCode;

/// Simulator subcommands.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Start the Heroku simulator in the foreground.
    Serve,
}

/// Runs a simulator subcommand.
pub fn run(cmd: &SimCommand) -> ExitCode {
    match cmd {
        SimCommand::Serve => ExitCode::Usage,
    }
}
