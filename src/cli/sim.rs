//! `upshift sim …`: the simulator's command line (owned by the simulator work). The arguments
//! and the serving loop live in the simulator crate (`heroku_sim::serve`), shared with its own
//! `heroku-sim` binary.

use clap::Subcommand;

use crate::exit::ExitCode;
use crate::sim::{ServeArgs, SimConfig, SimError};

/// Simulator subcommands.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Start the Heroku simulator in the foreground.
    ///
    /// Prints `HEROKU_API_URL`, `HEROKU_DATA_URL` and `HEROKU_API_KEY` lines on stdout (eval-able),
    /// then serves until SIGINT, SIGTERM, SIGHUP or SIGQUIT.
    Serve(ServeArgs),
}

/// Runs a simulator subcommand.
///
/// # Errors
/// The simulator cannot start (exit 2).
pub fn run(cmd: SimCommand) -> Result<ExitCode, super::CliError> {
    match cmd {
        SimCommand::Serve(args) => serve(args)
            .map(|()| ExitCode::Success)
            .map_err(super::CliError::usage),
    }
}

fn serve(args: ServeArgs) -> Result<(), SimError> {
    let config = SimConfig::try_from(args)?;
    super::runtime().block_on(async {
        // Listen for signals before announcing the URLs: a script may send SIGTERM as soon
        // as it has read them.
        let mut stop = super::signals::Signals::register();
        crate::sim::serve_until(config, async move {
            stop.next().await;
        })
        .await
    })
}
