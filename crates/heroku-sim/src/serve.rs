//! Serving in the foreground: the arguments and the loop behind both `heroku-sim` (this crate's
//! binary) and `upshift sim serve`, so the two cannot drift apart.

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use clap::Args;

use crate::{BehaviourSpec, Profile, Scenario, SimConfig, SimError, Simulator};

/// Arguments of a foreground simulator.
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
    /// Behaviour profile where Heroku's behaviour is undocumented: optimistic, in-place,
    /// lagging, sparse, strict, late-flip or heroku (overrides the scenario's `[behaviour]`
    /// profile). Every profile but optimistic serves TLS only (`rediss://` URLs).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<Profile>,
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
        let mut scenario = Scenario::load(&args.scenario)?;
        if let Some(profile) = args.profile {
            scenario.behaviour = BehaviourSpec::of(profile);
        }
        Ok(Self {
            scenario,
            port: args.port,
            provision: Duration::from_secs_f64(args.provision_seconds),
            ..Self::default()
        })
    }
}

/// Starts a simulator, prints `HEROKU_API_URL`, `HEROKU_DATA_URL` and `HEROKU_API_KEY` lines on
/// stdout (eval-able), serves until `stop` completes, then shuts down (redis-servers included).
///
/// The caller registers its signal handlers before calling: a script may send SIGTERM as soon
/// as it has read the URLs.
///
/// # Errors
/// The simulator cannot start.
pub async fn serve_until(
    config: SimConfig,
    stop: impl Future<Output = ()>,
) -> Result<(), SimError> {
    let sim = Simulator::start(config).await?;
    {
        let mut out = std::io::stdout().lock();
        // A closed stdout must not stop the simulator: the lines are a courtesy to scripts.
        let _ = writeln!(out, "HEROKU_API_URL={}", trim(sim.api_url().as_str()));
        let _ = writeln!(out, "HEROKU_DATA_URL={}", trim(sim.data_url().as_str()));
        let _ = writeln!(out, "HEROKU_API_KEY={}", sim.api_key());
        let _ = out.flush();
    }
    stop.await;
    sim.shutdown().await;
    Ok(())
}

fn trim(url: &str) -> &str {
    url.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::ServeArgs;
    use crate::{Profile, SimConfig};

    #[test]
    fn profile_flag_overrides_the_scenario_behaviour() {
        let args = |profile| ServeArgs {
            scenario: "enketo".into(),
            port: 0,
            provision_seconds: 1.0,
            profile,
        };
        let config = SimConfig::try_from(args(Some(Profile::InPlace))).unwrap();
        assert_eq!(config.scenario.behaviour.profile, Profile::InPlace);
        let config = SimConfig::try_from(args(None)).unwrap();
        assert_eq!(config.scenario.behaviour.profile, Profile::Optimistic);
    }

    #[test]
    fn profile_flag_parses_names() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let cli = Cli::try_parse_from(["sim", "--profile", "lagging"]).unwrap();
        assert_eq!(cli.serve.profile, Some(Profile::Lagging));
        let err = Cli::try_parse_from(["sim", "--profile", "kind"]).unwrap_err();
        assert!(err.to_string().contains("in-place"), "{err}");
    }
}
