//! A config var that can never lead to the add-on's Redis (not a Redis URL, or missing) blocks
//! in the guards, before anything is written: a run would otherwise stop the app, fail at the
//! first connection and roll back. A full connection limit keeps its warning (tested in
//! `cli_run`).

use crate::harness;

use std::process::{Output, Stdio};
use std::time::Duration;

use harness::{APP, Env, MAIN};

const VAR: &str = "ENKETO_REDIS_MAIN_URL";
const SECRET: &str = "SECRETPW";

fn upshift(env: &Env, args: &[&str]) -> Output {
    env.upshift()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("upshift runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `plan` with the var set to `value` (or removed): exit 3, a BLOCKED line naming the var and
/// `says`, and no password anywhere.
async fn plan_blocks(value: Option<&str>, says: &str) {
    let env = Env::start(Duration::from_millis(300)).await;
    env.sim.set_config_var(APP, VAR, value).unwrap();
    let o = upshift(
        &env,
        &["plan", "-a", APP, "--change", &format!("{MAIN}=premium-1")],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}\n{err}");
    let line = out
        .lines()
        .find(|l| l.contains("BLOCK") && l.contains(VAR))
        .unwrap_or_else(|| panic!("no BLOCKED line naming {VAR}: {out}"));
    assert!(line.contains(says), "{line}");
    assert!(line.contains("redis://"), "says what to set: {line}");
    assert!(
        !out.contains(SECRET) && !err.contains(SECRET),
        "{out}\n{err}"
    );
    assert!(env.writes().is_empty(), "{:?}", env.writes());
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_blocks_an_http_url_without_showing_its_password() {
    plan_blocks(
        Some(&format!("http://user:{SECRET}@127.0.0.1:1")),
        "unsupported url scheme `http`",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_blocks_a_value_that_is_not_a_url() {
    plan_blocks(
        Some(&format!("{SECRET}-not-a-url")),
        "does not hold a Redis URL",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_blocks_a_missing_config_var() {
    plan_blocks(None, "no config var").await;
}

/// `run` blocks before the scale-down: the formation and the plan stay as they were, and
/// the platform received no write at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_blocks_an_http_url_before_stopping_the_writers() {
    let env = Env::start(Duration::from_millis(300)).await;
    let formation = env.formation().await;
    env.sim
        .set_config_var(APP, VAR, Some(&format!("http://user:{SECRET}@127.0.0.1:1")))
        .unwrap();
    let o = upshift(
        &env,
        &[
            "run",
            "-a",
            APP,
            "--change",
            &format!("{MAIN}=premium-1"),
            "--confirm",
            APP,
            "--watch",
            "0",
        ],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}\n{err}");
    assert!(
        format!("{out}{err}").contains(VAR),
        "names the var: {out}\n{err}"
    );
    assert!(
        !out.contains(SECRET) && !err.contains(SECRET),
        "{out}\n{err}"
    );
    assert!(env.writes().is_empty(), "{:?}", env.writes());
    assert_eq!(env.formation().await, formation);
    assert_eq!(env.plan_of(MAIN).await, "premium-0");
    env.sim.shutdown().await;
}
