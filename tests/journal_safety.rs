//! The journal and the lock keep runs safe from each other: a live run is never taken over
//! by `resume` or `rollback`, and a journal that cannot be read never hides its run.
//!
//! Needs `--features failpoints` (the README's test command passes it).
#![cfg(feature = "failpoints")]

mod harness;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use harness::{APP, Env, MAIN};
use upshift::journal;
use upshift::runner::record::Record;

fn upshift(env: &Env) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_upshift"));
    let cfg = env.sim.client_config();
    cmd.env("HEROKU_API_URL", cfg.api_url.as_str())
        .env("HEROKU_DATA_URL", cfg.data_url.as_str())
        .env("HEROKU_API_KEY", env.sim.api_key())
        .env("UPSHIFT_STATE_DIR", env.state_dir.path())
        .env_remove("UPSHIFT_FAILPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run_args(target: &str) -> Vec<String> {
    [
        "run",
        "-a",
        APP,
        "--change",
        &format!("{MAIN}={target}"),
        "--confirm",
        APP,
        "--watch",
        "0",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn records(env: &Env, id: &str) -> Vec<Record> {
    let path = env.state().run_dir(id).join(journal::JOURNAL_FILE);
    journal::read::<Record>(&path)
        .unwrap()
        .into_iter()
        .map(|e| e.record)
        .collect()
}

async fn web(env: &Env) -> u32 {
    env.formation()
        .await
        .into_iter()
        .find(|(t, _, _)| t == "web")
        .map_or(0, |(_, q, _)| q)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_and_rollback_never_take_over_a_live_run() {
    let env = Env::start(Duration::from_secs(4)).await;
    let mut child = upshift(&env).args(run_args("premium-1")).spawn().unwrap();
    // Wait until the run is mid-way: writers stopped, the plan change under way.
    let mut mid_run = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let changing = env.state().run_ids().unwrap().pop().is_some_and(|id| {
            records(&env, &id).iter().any(
                |r| matches!(r, Record::Effect { what, .. } if what.starts_with("plan change")),
            )
        });
        if changing && web(&env).await == 0 {
            mid_run = true;
            break;
        }
    }
    assert!(mid_run, "the run never reached its plan change");
    let id = env.state().run_ids().unwrap().pop().expect("a run");
    for cmd in ["resume", "rollback"] {
        let out = upshift(&env)
            .args([cmd, "--confirm", APP])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(5), "{cmd}: {err}");
        assert!(err.contains(&id), "{cmd} names the run: {err}");
        assert!(err.contains(&format!("pid {}", child.id())), "{cmd}: {err}");
        assert!(err.contains("since "), "{cmd}: {err}");
        assert!(
            !err.contains("upshift resume"),
            "{cmd} must not advise resume while the holder lives: {err}"
        );
        // Nothing was touched: the writers are still stopped by the live run.
        assert_eq!(
            web(&env).await,
            0,
            "{cmd} restored the formation under a live run"
        );
    }
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let recs = records(&env, &id);
    let finished = recs
        .iter()
        .filter(|r| matches!(r, Record::Finished { .. }))
        .count();
    assert_eq!(finished, 1, "one run, one end: {recs:?}");
    assert!(
        !recs
            .iter()
            .any(|r| matches!(r, Record::Note { message } if message.contains("requested") || message == "resumed")),
        "{recs:?}"
    );
    assert_eq!(web(&env).await, 2);
    assert_eq!(env.plan_of(MAIN).await, "premium-1");
    env.sim.shutdown().await;
}
