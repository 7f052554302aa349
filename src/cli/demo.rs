//! `upshift demo`: the simulator with the Enketo scenario, and a real plan change against it,
//! through the same runner `upshift run` uses. Everything it starts, it stops.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::cli::CliError;
use crate::exit::ExitCode;
use crate::heroku::Client;
use crate::journal::StateDir;
use crate::plan::facts::{ChangeRequest, DataPolicy};
use crate::plan::{self, RunRequest};
use crate::playbook::{Playbook, duration};
use crate::runner::{Interrupts, Reporter, Runner, RunnerConfig};
use crate::sim::{Scenario, SimConfig, Simulator, SimulatorExt};
use crate::ui;

/// `upshift demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// How long the simulated plan change takes (Heroku: minutes).
    #[arg(long, default_value = "5s", value_parser = duration::parse)]
    pub provision: Duration,
    /// Keep the run's journal here instead of a temporary folder.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<std::path::PathBuf>,
    /// Walk the wizard against the simulator instead of running the fixed change.
    #[arg(long)]
    pub wizard: bool,
}

/// Runs the demo.
///
/// # Errors
/// `--wizard` without a terminal (exit 2), the simulator not starting (exit 4), and what the
/// run or the wizard returns.
pub fn run(args: &DemoArgs, settings: ui::Settings) -> Result<ExitCode, CliError> {
    if args.wizard {
        crate::cli::wizard::require_terminal()?;
    }
    crate::cli::runtime().block_on(async {
        errln!(
            "starting the Heroku simulator (Enketo scenario: web=2, main + cache on premium-0)…"
        );
        let scenario =
            Scenario::builtin("enketo").map_err(|e| CliError::new(ExitCode::NeedsAttention, e))?;
        let sim = Simulator::start(SimConfig {
            scenario,
            provision: args.provision,
            ..SimConfig::default()
        })
        .await
        .map_err(|e| CliError::new(ExitCode::NeedsAttention, e))?;
        let result = demo(&sim, args, settings).await;
        sim.shutdown().await;
        result
    })
}

async fn demo(
    sim: &Simulator,
    args: &DemoArgs,
    settings: ui::Settings,
) -> Result<ExitCode, CliError> {
    let tmp = tempfile::tempdir();
    let state = match (&args.state_dir, &tmp) {
        (Some(dir), _) => StateDir::at(dir),
        (None, Ok(t)) => StateDir::at(t.path()),
        (None, Err(e)) => {
            return Err(CliError::text(ExitCode::NeedsAttention, e.to_string()));
        }
    };
    let client =
        Client::new(sim.client_config()).map_err(|e| CliError::new(ExitCode::NeedsAttention, e))?;
    errln!(
        "simulator at {} (the same client talks to api.heroku.com)\n",
        sim.api_url()
    );
    // Like a real app, the dynos run a while (connected, writing) before anyone changes a
    // plan: wait until every dyno has written.
    for _ in 0..200 {
        let writers: std::collections::BTreeSet<String> = sim
            .timeline()
            .into_iter()
            .filter_map(|e| match e.kind {
                crate::sim::EventKind::Write { dyno, ok: true, .. } => Some(dyno),
                _ => None,
            })
            .collect();
        if writers.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if args.wizard {
        let mut config = RunnerConfig::new(state);
        config.provisioning_estimate = args.provision;
        let code = crate::cli::wizard::wizard(client, config, None, settings).await;
        if matches!(code, Ok(ExitCode::Interrupted)) {
            // The wizard just said the journal is kept for `upshift resume`: in the demo the
            // simulated app and (without --state-dir) the journal end with this process.
            errln!("{}", demo_resume_note(args.state_dir.is_some()));
        }
        return code;
    }
    let playbook = Playbook::builtin();
    let request = RunRequest {
        app: "enketo-demo".into(),
        changes: vec![
            ChangeRequest {
                addon: "enketo_redis_main".into(),
                plan: "premium-1".into(),
                policy: DataPolicy::Critical,
                connections_per_dyno: None,
            },
            ChangeRequest {
                addon: "enketo_redis_cache".into(),
                plan: "premium-1".into(),
                policy: DataPolicy::Cache,
                connections_per_dyno: None,
            },
        ],
        params: playbook.params.clone(),
        playbook,
    };
    let reporter: Arc<dyn Reporter> = Arc::new(ui::HumanReporter::new(settings.quiet));
    let mut config = RunnerConfig::new(state);
    config.provisioning_estimate = args.provision;
    let runner = Runner::new(client, config, reporter, Interrupts::default());
    errln!(
        "$ upshift plan -a enketo-demo --change enketo_redis_main=premium-1 --change enketo_redis_cache=premium-1 --cache enketo_redis_cache\n"
    );
    outln!("{}", plan::render(&runner.plan(&request).await?));
    errln!("$ upshift run … --confirm enketo-demo\n");
    let report = runner.run(&request).await?;
    out!("{}", ui::render_summary(&report));
    if let Some(platform) = sim.downtime("web") {
        outln!(
            "\nDowntime measured by the simulator (web at 0 dynos): {} — the plan change itself took about {}",
            duration::format(platform),
            duration::format(args.provision)
        );
    }
    Ok(report.exit_code())
}

/// What "resumable" means in the demo, where the simulated app ends with the process.
fn demo_resume_note(kept_state_dir: bool) -> &'static str {
    if kept_state_dir {
        "demo: the journal is in --state-dir, but the simulated app ends with the demo, so there \
         is nothing left to resume; against Heroku, `upshift resume` would carry on from here"
    } else {
        "demo: the simulated app and its temporary journal end with the demo, so there is \
         nothing to resume; against Heroku, `upshift resume` would carry on from here (keep \
         journals with --state-dir DIR)"
    }
}
