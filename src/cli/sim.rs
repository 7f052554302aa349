//! `upshift sim …`: the simulator's command line (owned by the simulator work).

use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::exit::ExitCode;
use crate::sim::{Scenario, SimConfig, SimError, Simulator};

/// Simulator subcommands.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Start the Heroku simulator in the foreground.
    ///
    /// Prints `HEROKU_API_URL`, `HEROKU_DATA_URL` and `HEROKU_API_KEY` lines on stdout (eval-able),
    /// then serves until SIGINT or SIGTERM.
    Serve(ServeArgs),
}

/// `upshift sim serve` arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Built-in scenario name (enketo) or path to a scenario TOML file.
    #[arg(long, default_value = "enketo")]
    pub scenario: String,
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Seconds a plan change takes.
    #[arg(long, default_value_t = 3.0)]
    pub provision_seconds: f64,
}

impl TryFrom<ServeArgs> for SimConfig {
    type Error = SimError;

    fn try_from(args: ServeArgs) -> Result<Self, SimError> {
        if !(args.provision_seconds.is_finite() && args.provision_seconds >= 0.0) {
            return Err(SimError::InvalidScenario {
                origin: "--provision-seconds".into(),
                message: "must be a non-negative number of seconds".into(),
            });
        }
        Ok(Self {
            scenario: Scenario::load(&args.scenario)?,
            port: args.port,
            provision: Duration::from_secs_f64(args.provision_seconds),
            ..Self::default()
        })
    }
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
        let sim = Simulator::start(config).await?;
        {
            let mut out = std::io::stdout().lock();
            // A closed stdout must not stop the simulator: the lines are a courtesy to scripts.
            let _ = writeln!(out, "HEROKU_API_URL={}", trim(sim.api_url().as_str()));
            let _ = writeln!(out, "HEROKU_DATA_URL={}", trim(sim.data_url().as_str()));
            let _ = writeln!(out, "HEROKU_API_KEY={}", sim.api_key());
            let _ = out.flush();
        }
        stop.next().await;
        sim.shutdown().await;
        Ok(())
    })
}

fn trim(url: &str) -> &str {
    url.trim_end_matches('/')
}
