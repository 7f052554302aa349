//! Unattended runs against the simulator: the window gate and cutoff, waiting for a window,
//! reviewed plans refused on drift, webhooks (also dead or slow ones), the post-change log
//! watch, JSON event lines, and the lock seen from cron.

use crate::harness;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{APP, CACHE, Env, MAIN, change, request};
use upshift::engine::Outcome;
use upshift::heroku::models::FormationUpdate;
use upshift::journal::{self, AppLock};
use upshift::notify::{Notifier, NotifyConfig};
use upshift::plan::guards::Verdict;
use upshift::playbook::OnWatchHit;
use upshift::runner::record::Record;
use upshift::runner::{Interrupts, PollPolicy, Reporter, Reviewed, Runner, RunnerConfig};
use upshift::unattended::plan_file::PlanFile;
use upshift::unattended::reporters::Tee;
use upshift::unattended::watch::WatchKind;
use upshift::window::Window;

fn upshift(env: &Env) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::from(env.upshift());
    cmd.env_remove("UPSHIFT_NOTIFY_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run_args(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        "-a",
        APP,
        "--change",
        &format!("{MAIN}=premium-1"),
        "--confirm",
        APP,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
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

/// A runner like the harness's, with a window, a reviewed plan and a reporter of our own.
fn runner(
    env: &Env,
    window: Option<Window>,
    reviewed: Option<Reviewed>,
    reporter: Arc<dyn Reporter>,
) -> Runner {
    let mut config = RunnerConfig::new(env.state());
    config.poll = PollPolicy {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(300),
        factor: 1.5,
        low_rate_limit: 10,
        slow: Duration::from_secs(1),
    };
    config.window = window;
    config.reviewed = reviewed;
    Runner::new(env.client(), config, reporter, Interrupts::default())
}

fn guards_of(env: &Env, run_id: &str) -> Vec<upshift::plan::guards::Guard> {
    let path = env.state().run_dir(run_id).join(journal::JOURNAL_FILE);
    journal::read::<Record>(&path)
        .unwrap()
        .into_iter()
        .find_map(|e| match e.record {
            Record::Guards { guards } => Some(guards),
            _ => None,
        })
        .expect("a guards record")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_the_window_run_refuses_with_the_next_start() {
    let env = Env::start(Duration::from_millis(300)).await;
    let window = window_in(3600, 7200);
    let started = Instant::now();
    let out = upshift(&env)
        .args(run_args(&["--window", &window]))
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("outside the maintenance window"),
        "{stderr}"
    );
    let start = window.split('/').next().unwrap();
    assert!(stderr.contains(start), "the next start {start}: {stderr}");
    assert!(stderr.contains("--wait-for-window"), "{stderr}");
    assert!(env.writes().is_empty(), "{:?}", env.writes());
    assert!(started.elapsed() < Duration::from_secs(10));
    // A window that has passed never opens: bad input, refused before any platform call.
    let out = upshift(&env)
        .args(run_args(&["--window", &window_in(-7200, -3600)]))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no opening ahead"));
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_little_window_left_blocks_before_the_first_write_with_the_figures() {
    let env = Env::start(Duration::from_millis(300)).await;
    // Open now, closing in 20 s: far less than the default estimate plus a rollback.
    let window: Window = window_in(-60, 20).parse().unwrap();
    let r = runner(&env, Some(window), None, Arc::new(upshift::runner::Silent));
    let req = request(vec![change(MAIN, "premium-1")], None);
    let plan = r.plan(&req).await.unwrap();
    assert!(plan.blocked);
    let report = r.run(&req).await.unwrap();
    assert_eq!(report.outcome, Outcome::Blocked, "{report:#?}");
    assert_eq!(report.outcome.exit_code().code(), 3);
    assert!(env.writes().is_empty(), "{:?}", env.writes());
    let guards = guards_of(&env, &report.run_id);
    let cutoff = guards
        .iter()
        .find(|g| g.id == "window-cutoff")
        .expect("cutoff guard");
    assert_eq!(cutoff.verdict, Verdict::Block);
    assert!(
        cutoff.detail.starts_with("too late for window"),
        "{}",
        cutoff.detail
    );
    assert!(
        cutoff.detail.contains("worst-case rollback"),
        "{}",
        cutoff.detail
    );
    assert!(
        cutoff.detail.contains("playbook default"),
        "{}",
        cutoff.detail
    );
    assert!(
        cutoff.detail.contains("left before it closes"),
        "{}",
        cutoff.detail
    );
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_window_sleeps_then_runs_with_json_events() {
    let env = Env::start(Duration::from_millis(300)).await;
    let started = Instant::now();
    let out = upshift(&env)
        .args(run_args(&[
            "--window",
            &window_in(3, 3600),
            "--wait-for-window",
            "--watch",
            "0",
            "--log-format",
            "json",
        ]))
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(started.elapsed() >= Duration::from_secs(2));
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(names.first(), Some(&"window-wait"), "{stderr}");
    assert!(names.contains(&"run-started"), "{names:?}");
    assert!(names.contains(&"downtime-started"), "{names:?}");
    assert_eq!(names.last(), Some(&"run-finished"), "{names:?}");
    assert_eq!(events.last().unwrap()["outcome"], "succeeded");
    assert!(events.iter().all(|e| e["ts"].is_string()));
    assert_eq!(env.plan_of(MAIN).await, "premium-1");
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_run_while_another_holds_the_lock_exits_5_at_once() {
    let env = Env::start(Duration::from_millis(300)).await;
    let _held = AppLock::acquire(
        &env.state(),
        APP,
        "20261129-010000-held",
        jiff::Timestamp::now(),
        Duration::from_secs(3600),
    )
    .unwrap();
    let started = Instant::now();
    let out = upshift(&env)
        .args(run_args(&["--watch", "0"]))
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(env.writes().is_empty(), "{:?}", env.writes());
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drifted_plan_is_refused_saying_what_changed() {
    let env = Env::start(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.json");
    let req = request(vec![change(MAIN, "premium-1")], None);
    let plan = env.runner().plan(&req).await.unwrap();
    PlanFile::new(req.clone(), plan, None, jiff::Timestamp::now())
        .save(&path)
        .unwrap();
    // The file is private and holds no secret.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let url = env.sim.redis_url(MAIN);
    let password = url
        .split("://:")
        .nth(1)
        .and_then(|r| r.split('@').next())
        .unwrap();
    assert!(!password.is_empty());
    for secret in [password, &env.sim.api_key()] {
        assert!(!text.contains(secret), "the plan file holds a secret");
    }
    assert!(!text.contains("redis://"), "the plan file holds a URL");

    // Someone scales web to 3 before the window.
    env.client()
        .update_formation(
            APP,
            &[FormationUpdate {
                process_type: "web".into(),
                quantity: Some(3),
                size: None,
            }],
        )
        .await
        .unwrap();
    let before = env.writes().len();
    let file = PlanFile::load(&path).unwrap();
    let reviewed = Reviewed {
        plan: file.plan.clone(),
        file: "plan.json".into(),
    };
    let r = runner(
        &env,
        None,
        Some(reviewed),
        Arc::new(upshift::runner::Silent),
    );
    let report = r.run(&file.request).await.unwrap();
    assert_eq!(report.outcome, Outcome::Blocked, "{report:#?}");
    assert_eq!(env.writes().len(), before, "{:?}", env.writes());
    let drift: Vec<String> = guards_of(&env, &report.run_id)
        .into_iter()
        .filter(|g| g.id == "plan-drift" && g.verdict == Verdict::Block)
        .map(|g| g.detail)
        .collect();
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert!(
        drift[0].starts_with("web was 2, is now 3: restore would scale to 3"),
        "{drift:?}"
    );
    assert_eq!(env.plan_of(MAIN).await, "premium-0");

    // Through the binary: exit 3 and the same words.
    let out = upshift(&env)
        .args([
            "run",
            "--plan",
            path.to_str().unwrap(),
            "--confirm",
            APP,
            "--watch",
            "0",
        ])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("web was 2, is now 3: restore would scale to 3"),
        "{stderr}"
    );
    env.sim.shutdown().await;
}

/// A webhook receiver on 127.0.0.1:0 that keeps what it gets; `delay` makes it slow.
async fn receiver(delay: Duration) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let kept = got.clone();
    let app = axum::Router::new().route(
        "/hook/secret-token",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let kept = kept.clone();
            async move {
                tokio::time::sleep(delay).await;
                kept.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/hook/secret-token",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_get_the_run_and_a_dead_or_slow_one_never_fails_it() {
    let env = Env::start(Duration::from_millis(300)).await;
    let (good, got) = receiver(Duration::ZERO).await;
    let (slow, _) = receiver(Duration::from_secs(30)).await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let urls = upshift::notify::parse_urls(&[good, slow, dead]).unwrap();
    let notifier = Arc::new(
        Notifier::start(
            urls,
            APP,
            vec![format!("{MAIN}=premium-1")],
            &NotifyConfig {
                attempts: 2,
                backoff: Duration::from_millis(50),
                request_timeout: Duration::from_millis(500),
                queue: 64,
            },
        )
        .unwrap(),
    );
    let tee = Arc::new(Tee::new(vec![
        Arc::new(upshift::runner::Silent),
        notifier.clone(),
    ]));
    let req = request(vec![change(MAIN, "premium-1")], None);
    let started = Instant::now();
    let report = runner(&env, None, None, tee).run(&req).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    let run_time = started.elapsed();
    let summary = notifier.finish(Duration::from_secs(3)).await;
    assert!(started.elapsed() < run_time + Duration::from_secs(4));
    assert_eq!(summary.delivered, 3, "{summary:?}");
    assert!(summary.failed + summary.dropped >= 2, "{summary:?}");
    let got = got.lock().unwrap().clone();
    let names: Vec<&str> = got.iter().filter_map(|n| n["event"].as_str()).collect();
    assert_eq!(names, ["started", "point-of-no-return", "succeeded"]);
    let last = &got[2];
    assert_eq!(last["app"], APP);
    assert_eq!(last["run_id"], report.run_id.as_str());
    assert_eq!(last["outcome"], "succeeded");
    assert!(last["downtime_ms"].as_u64().unwrap() > 0);
    assert!(last["text"].as_str().unwrap().contains("succeeded"));
    let all = serde_json::to_string(&got).unwrap();
    assert!(!all.contains(&env.sim.api_key()));
    assert!(!all.contains("redis://"));
    env.sim.shutdown().await;
}

#[derive(Default)]
struct Hits(Mutex<Vec<(WatchKind, String)>>);

impl Reporter for Hits {
    fn report(&self, event: &upshift::runner::RunEvent) {
        if let upshift::runner::RunEvent::WatchHit { kind, line, .. } = event {
            self.0.lock().unwrap().push((*kind, line.clone()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_sees_a_full_connection_limit_after_the_change() {
    let env = Env::start(Duration::from_millis(300)).await;
    watch_sees_a_full_limit(env, WatchKind::MaxClients, "max number of clients reached").await;
}

/// Over TLS (every Heroku Redis plan) a full server drops new clients in the handshake: no
/// "max number of clients" line ever reaches the app's logs, only Node's handshake error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_sees_a_full_tls_connection_limit_after_the_change() {
    let env = Env::start_edited(Duration::from_millis(300), |s| {
        s.behaviour.tls = Some(true);
    })
    .await;
    watch_sees_a_full_limit(
        env,
        WatchKind::TlsDropped,
        "before secure TLS connection was established",
    )
    .await;
}

/// The cache changes while main stays too small for the app (the watch must report it), then
/// main is upgraded (the watch must stay quiet).
async fn watch_sees_a_full_limit(env: Env, kind: WatchKind, words: &str) {
    // Only the cache changes: main stays on premium-0, too small for 2 web dynos, so the
    // restored dynos log "max number of clients reached" again.
    let hits = Arc::new(Hits::default());
    let r = runner(&env, None, None, hits.clone());
    let req = request(vec![change(CACHE, "premium-1")], None);
    let report = r.run(&req).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    let watch = r
        .watch(APP, Duration::from_secs(4), OnWatchHit::Notify)
        .await;
    assert_eq!(watch.error, None);
    assert!(
        watch.hits.get(&kind).copied().unwrap_or(0) >= 1,
        "{watch:?}"
    );
    let seen = hits.0.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(seen[0].1.contains(words), "{seen:?}");
    assert!(
        seen.len() <= 3 * 4,
        "events are capped per kind: {}",
        seen.len()
    );

    // Main upgraded: the same watch is quiet.
    let req = request(vec![change(MAIN, "premium-2")], None);
    let report = r.run(&req).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let watch = r
        .watch(APP, Duration::from_secs(3), OnWatchHit::Notify)
        .await;
    assert_eq!(watch.total(), 0, "{watch:?}");
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_hits_exit_4_when_the_playbook_says_needs_attention() {
    let env = Env::start(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let playbook = dir.path().join("attention.toml");
    std::fs::write(
        &playbook,
        harness::playbook_with(|p| harness::set_param(p, "on_watch_hit", "needs-attention")),
    )
    .unwrap();
    // Only the cache changes: main stays too small for 2 web dynos.
    let out = upshift(&env)
        .args([
            "run",
            "-a",
            APP,
            "--change",
            &format!("{CACHE}=premium-1"),
            "--cache",
            CACHE,
            "--playbook",
            playbook.to_str().unwrap(),
            "--confirm",
            APP,
            "--watch",
            "3s",
        ])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("watch: Redis max number of clients reached"),
        "{stderr}"
    );
    assert!(stderr.contains("the change needs attention"), "{stderr}");
    assert_eq!(env.plan_of(CACHE).await, "premium-1");
    env.sim.shutdown().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_waiting_for_the_window_exits_130_and_writes_nothing() {
    let env = Env::start(Duration::from_millis(300)).await;
    let child = upshift(&env)
        .args(run_args(&[
            "--window",
            &window_in(3600, 7200),
            "--wait-for-window",
        ]))
        .spawn()
        .unwrap();
    let pid = child.id().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1500)).await;
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
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("waiting for the maintenance window"),
        "{stderr}"
    );
    assert!(
        stderr.contains("interrupted while waiting for the window"),
        "{stderr}"
    );
    assert!(!stderr.contains("rolling back"), "{stderr}");
    assert!(env.writes().is_empty(), "{:?}", env.writes());
    assert!(env.state().run_ids().unwrap().is_empty(), "no journal");
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_json_logs_the_notification_warning_is_a_json_event_with_the_right_count() {
    let env = Env::start(Duration::from_millis(300)).await;
    // A webhook that accepts and never answers: every notification is still waiting at exit.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let out = upshift(&env)
        .args(run_args(&[
            "--watch",
            "0",
            "--log-format",
            "json",
            "--notify",
            &hook,
        ]))
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // Every line on the event stream is JSON: no plain-text warning among them.
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let warning = events
        .iter()
        .find(|e| e["event"] == "notifications")
        .unwrap_or_else(|| panic!("no notifications event: {stderr}"));
    // started, point-of-no-return, succeeded: three notifications, none delivered. Each is
    // either still waiting at exit (dropped) or, on a slow machine where the run outlasts a
    // notification's own timeout, given up on (failed): the count is what must be right.
    assert_eq!(warning["delivered"], 0, "{warning}");
    let gone = warning["dropped"].as_u64().unwrap() + warning["failed"].as_u64().unwrap();
    assert_eq!(gone, 3, "{warning}");
    assert!(warning["dropped"].as_u64().unwrap() >= 1, "{warning}");
    assert!(warning["ts"].is_string());
    env.sim.shutdown().await;
}

/// The profile matrix's unattended and crash case (see `matrix`): `upshift run` as cron
/// starts it (no terminal, `--confirm`), inside an open window, with a webhook, JSON event
/// lines and a short log watch. It must exit 0 with the events and notifications of a
/// success, and the test's own reads must find every acknowledged write and the cache's
/// seeded data unchanged. Its journal then tells the crash part where `moments` are.
pub(crate) async fn profile_unattended_run(
    profile: upshift::sim::Profile,
    moments: &[crate::matrix::Moment],
) {
    let env = Env::start_with(Duration::from_millis(300), profile).await;
    let before = crate::run::seeded(&env, CACHE).await;
    let (hook, got) = receiver(Duration::ZERO).await;
    let out = upshift(&env)
        .args(run_args(&[
            "--window",
            &window_in(-60, 3600),
            "--notify",
            &hook,
            "--watch",
            "1s",
            "--log-format",
            "json",
        ]))
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{profile}: {stderr}");
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let finished = events
        .iter()
        .find(|e| e["event"] == "run-finished")
        .unwrap_or_else(|| panic!("{profile}: no run-finished event: {stderr}"));
    assert_eq!(finished["outcome"], "succeeded", "{profile}: {stderr}");
    // The watch follows the run and found nothing.
    let last = events.last().expect("event lines");
    assert_eq!(last["event"], "watch-done", "{profile}: {stderr}");
    assert_eq!(last["hits"], 0, "{profile}: {stderr}");
    let names: Vec<String> = got
        .lock()
        .unwrap()
        .iter()
        .filter_map(|n| n["event"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        names,
        ["started", "point-of-no-return", "succeeded"],
        "{profile}"
    );
    assert_eq!(env.plan_of(MAIN).await, "premium-1");
    crate::run::assert_formation_restored(&env).await;
    crate::run::assert_no_data_lost(&env, &before, &[CACHE, MAIN]).await;
    assert!(!stderr.contains(&env.sim.api_key()));
    #[cfg(feature = "failpoints")]
    crate::crash::crash_at_moments(&env, profile, moments).await;
    #[cfg(not(feature = "failpoints"))]
    let _ = moments;
    env.sim.shutdown().await;
}
