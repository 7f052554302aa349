//! What a run refused by its maintenance window leaves behind, read from outside: the exit
//! code, the `--json` document on stdout, the `--log-format json` lines on stderr (every line
//! must be JSON), the webhook notifications received and the journal. A refusal by the window
//! keeps a guard block's contract; a run that never stopped its writers reports no overrun;
//! `--wait-for-window` does not wait for an opening the run cannot fit in.

use crate::harness;

use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{APP, Env, MAIN};
use upshift::runner::record::Record;

/// `upshift run` on the simulator's app with `extra`, as cron runs it, plus a webhook.
fn run_cmd(env: &Env, hook: &str, extra: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::from(env.upshift());
    cmd.env_remove("UPSHIFT_NOTIFY_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .args(["run", "-a", APP, "--change"])
        .arg(format!("{MAIN}=premium-1"))
        .args(["--confirm", APP, "--watch", "0", "--notify", hook])
        .args(["--json", "--log-format", "json"])
        .args(extra);
    cmd
}

/// A one-off window from `from` to `to` seconds after now.
fn window_in(from: i64, to: i64) -> String {
    let now = jiff::Timestamp::now();
    let at = |s: i64| {
        now.checked_add(jiff::SignedDuration::from_secs(s))
            .unwrap()
            .round(jiff::Unit::Second)
            .unwrap()
    };
    format!("{}/{}", at(from), at(to))
}

/// A webhook receiver on 127.0.0.1:0 keeping every notification.
async fn receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let kept = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

/// Every non-empty stderr line parsed as JSON: a plain-text line fails the test.
fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn names(events: &[serde_json::Value], key: &str) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| e[key].as_str().map(str::to_owned))
        .collect()
}

/// The `run` document on stdout, which must be one JSON object.
fn document(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A blocked run's common end state: exit 3, a `run` document with outcome blocked, the
/// stderr stream ending in `run-finished` blocked, the `blocked` notification, a journal
/// finished blocked, no overrun anywhere and nothing written.
fn assert_blocked(env: &Env, out: &Output, hooks: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let events = json_lines(out);
    assert_eq!(out.status.code(), Some(3), "{events:#?}");
    let doc = document(out);
    assert_eq!(doc["outcome"], "blocked", "{doc}");
    let run_id = doc["run_id"].as_str().expect("a run id").to_owned();
    let events_named = names(&events, "event");
    assert_eq!(
        events_named.last().map(String::as_str),
        Some("run-finished")
    );
    assert_eq!(events.last().unwrap()["outcome"], "blocked");
    assert!(
        !events_named.iter().any(|n| n == "window-overrun"),
        "{events_named:?}"
    );
    let hook_names = names(hooks, "event");
    assert!(hook_names.iter().any(|n| n == "blocked"), "{hook_names:?}");
    assert!(
        !hook_names.iter().any(|n| n == "window-overrun"),
        "{hook_names:?}"
    );
    let journal = env.journal(&run_id);
    assert!(
        !journal
            .iter()
            .any(|r| matches!(r, Record::WindowOverrun { .. })),
        "{journal:#?}"
    );
    assert!(journal.iter().any(|r| matches!(
        r,
        Record::Finished {
            outcome: upshift::engine::Outcome::Blocked,
            ..
        }
    )));
    assert!(env.writes().is_empty(), "{:?}", env.writes());
    events
}

/// The `warning` events' messages.
fn warnings(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "warning")
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .collect()
}

/// Waits (briefly) for the notifications still in flight at exit to be counted.
async fn hooks_of(got: &Arc<Mutex<Vec<serde_json::Value>>>) -> Vec<serde_json::Value> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    got.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_blocked_by_the_cutoff_reports_no_overrun() {
    let env = Env::start(Duration::from_millis(300)).await;
    let (hook, got) = receiver().await;
    // Open for an hour already, closing in 20 s: far less than the run plus a rollback.
    let out = run_cmd(&env, &hook, &["--window", &window_in(-3600, 20)])
        .output()
        .await
        .unwrap();
    let events = assert_blocked(&env, &out, &hooks_of(&got).await);
    let warned = warnings(&events);
    assert!(
        warned.iter().any(|w| w.contains("too late for window")),
        "{warned:?}"
    );
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_window_blocks_with_a_guard_blocks_outputs() {
    let env = Env::start(Duration::from_millis(300)).await;
    let (hook, got) = receiver().await;
    let window = window_in(3600, 7200);
    let out = run_cmd(&env, &hook, &["--window", &window])
        .output()
        .await
        .unwrap();
    let events = assert_blocked(&env, &out, &hooks_of(&got).await);
    let warned = warnings(&events);
    let start = window.split('/').next().unwrap();
    assert!(
        warned
            .iter()
            .any(|w| w.contains("outside the maintenance window") && w.contains(start)),
        "{warned:?}"
    );
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_that_has_passed_is_bad_input() {
    let env = Env::start(Duration::from_millis(300)).await;
    let (hook, got) = receiver().await;
    let out = run_cmd(&env, &hook, &["--window", &window_in(-7200, -3600)])
        .output()
        .await
        .unwrap();
    let events = json_lines(&out);
    assert_eq!(out.status.code(), Some(2), "{events:#?}");
    let last = events.last().expect("an error event");
    assert_eq!(last["event"], "error", "{last}");
    assert_eq!(last["exit_code"], 2, "{last}");
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("has no opening ahead"),
        "{last}"
    );
    assert!(last["ts"].is_string());
    assert!(hooks_of(&got).await.is_empty());
    assert!(env.state().run_ids().unwrap().is_empty(), "no run started");
    assert!(env.writes().is_empty(), "{:?}", env.writes());
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_window_refuses_at_once_when_no_opening_is_long_enough() {
    let env = Env::start(Duration::from_millis(300)).await;
    let (hook, got) = receiver().await;
    // Opens in 40 s for 60 s: the run and a worst-case rollback need minutes.
    let started = Instant::now();
    let out = run_cmd(
        &env,
        &hook,
        &["--window", &window_in(40, 100), "--wait-for-window"],
    )
    .output()
    .await
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "waited {:?} for an opening it cannot fit in",
        started.elapsed()
    );
    let events = assert_blocked(&env, &out, &hooks_of(&got).await);
    assert!(
        !names(&events, "event").iter().any(|n| n == "window-wait"),
        "{events:#?}"
    );
    let warned = warnings(&events);
    assert!(
        warned
            .iter()
            .any(|w| w.contains("is too short") && w.contains("it is only 1m long")),
        "{warned:?}"
    );
    env.sim.shutdown().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_wait_keeps_stderr_json_and_stdout_empty() {
    let env = Env::start(Duration::from_millis(300)).await;
    let (hook, got) = receiver().await;
    let child = run_cmd(
        &env,
        &hook,
        &["--window", &window_in(3600, 7200), "--wait-for-window"],
    )
    .spawn()
    .unwrap();
    let pid = child.id().unwrap().to_string();
    // Long enough for the plan's reads and the first heartbeat.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("exits soon after SIGTERM")
        .unwrap();
    let events = json_lines(&out);
    assert_eq!(out.status.code(), Some(130), "{events:#?}");
    assert!(out.stdout.is_empty(), "no run, no document");
    let named = names(&events, "event");
    assert_eq!(named.first().map(String::as_str), Some("window-wait"));
    let last = events.last().unwrap();
    assert_eq!(last["event"], "error", "{last}");
    assert_eq!(last["exit_code"], 130, "{last}");
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("interrupted while waiting for the window"),
        "{last}"
    );
    assert!(hooks_of(&got).await.is_empty());
    assert!(env.state().run_ids().unwrap().is_empty(), "no journal");
    assert!(env.writes().is_empty(), "{:?}", env.writes());
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_that_never_closes_has_no_made_up_closing_time() {
    let env = Env::start(Duration::from_millis(300)).await;
    let out = tokio::process::Command::from(env.upshift())
        .stdin(Stdio::null())
        .args(["plan", "-a", APP, "--change"])
        .arg(format!("{MAIN}=premium-1"))
        .args(["--json", "--window", "daily 01:00+24h UTC"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan = document(&out);
    let cutoff = plan["guards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == "window-cutoff")
        .unwrap_or_else(|| panic!("no cutoff guard: {plan}"));
    let detail = cutoff["detail"].as_str().unwrap();
    assert!(detail.contains("never closes"), "{detail}");
    assert!(!detail.contains("open until"), "{detail}");
    assert!(!detail.contains(" left"), "{detail}");
    env.sim.shutdown().await;
}
