//! `heroku-sim`: the simulator on its own, for working on it without building upshift. Same
//! arguments and output as `upshift sim serve`.

use clap::Parser;
use heroku_sim::{ServeArgs, SimConfig, serve_until};

/// Start the Heroku simulator in the foreground.
///
/// Prints `HEROKU_API_URL`, `HEROKU_DATA_URL` and `HEROKU_API_KEY` lines on stdout (eval-able),
/// then serves until SIGINT or SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "heroku-sim", version)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = SimConfig::try_from(cli.serve).and_then(|config| {
        let runtime = tokio::runtime::Runtime::new().expect("the Tokio runtime starts");
        runtime.block_on(async {
            // Registered before the URLs are printed: a script may stop us as soon as it read them.
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            let stop = async move {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            };
            serve_until(config, stop).await
        })
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("heroku-sim: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
