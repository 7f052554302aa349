//! The `upshift` binary as scripts see it: exit codes, refusals before any call, JSON output,
//! and errors that say what to do. Against the simulator on 127.0.0.1.

use crate::harness;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use harness::{APP, CACHE, Env, MAIN};
use upshift::sim::SimulatorExt;

fn upshift(env: &Env, args: &[&str]) -> Output {
    env.upshift()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("upshift runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Seals an edited plan file's JSON with the hash of its new content, as someone who edits the
/// file and recomputes the hash would: only the rebuilt plan can tell then.
fn reseal(file: &mut serde_json::Value) {
    file["hash"] = upshift::unattended::plan_file::content_hash(file).into();
}

/// `upshift plan --change MAIN=premium-1 --out PATH`, which must succeed; returns the hash it
/// printed.
fn save_plan(env: &Env, path: &std::path::Path) -> String {
    let change = format!("{MAIN}=premium-1");
    let o = upshift(
        env,
        &[
            "plan",
            "-a",
            APP,
            "--change",
            &change,
            "--out",
            path.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let hash = stdout
        .lines()
        .find_map(|l| l.strip_prefix("plan hash: "))
        .unwrap_or_else(|| panic!("plan --out prints the hash: {stdout}"))
        .to_owned();
    assert!(hash.starts_with("sha256:"), "{hash}");
    assert!(
        stderr(&o).contains(&format!("--plan-hash {hash}")),
        "{}",
        stderr(&o)
    );
    hash
}

fn run_plan(env: &Env, path: &std::path::Path, extra: &[&str]) -> Output {
    let mut args = vec!["run", "--plan", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--confirm", APP, "--watch", "0"]);
    upshift(env, &args)
}

/// What a refused run must leave as it was: the platform's writes, formation and plans.
async fn untouched(env: &Env, writes: usize, formation: &[(String, u32, String)]) {
    assert_eq!(env.writes().len(), writes, "{:?}", env.writes());
    assert_eq!(env.formation().await, formation);
    assert_eq!(env.plan_of(MAIN).await, "premium-0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_happen_before_any_call() {
    let env = Env::start(Duration::from_millis(300)).await;
    let before = env.sim.request_log().len();
    let change = format!("{MAIN}=premium-1");

    // No terminal and no --confirm: exit 2, nothing sent.
    let o = upshift(&env, &["run", "-a", APP, "--change", &change]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("pass --confirm {APP}")),
        "{}",
        stderr(&o)
    );

    // A --confirm that names another app.
    let o = upshift(
        &env,
        &[
            "run",
            "-a",
            APP,
            "--change",
            &change,
            "--confirm",
            "other-app",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("does not match the app"),
        "{}",
        stderr(&o)
    );

    // Bad --change and an unknown plan.
    let o = upshift(&env, &["plan", "-a", APP, "--change", "enketo_redis_main"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--change enketo_redis_main=premium-1"),
        "{}",
        stderr(&o)
    );
    let o = upshift(
        &env,
        &["plan", "-a", APP, "--change", "enketo_redis_main=premium-l"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no heroku-redis plan \"premium-l\""),
        "{}",
        stderr(&o)
    );

    // A playbook with an error points at it.
    let pb = env.state_dir.path().join("bad.toml");
    std::fs::write(
        &pb,
        "name = \"x\"\n[[steps]]\naction = \"capture\"\nfoo = 1\n",
    )
    .unwrap();
    let o = upshift(
        &env,
        &[
            "plan",
            "-a",
            APP,
            "--change",
            &change,
            "--playbook",
            pb.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("bad.toml:4:1: unknown key `foo`"),
        "{}",
        stderr(&o)
    );

    // Names no Heroku identity can be, names given twice, an endless file, a key no header
    // can carry: each is bad input that says what is wrong, before any call.
    let huge = "a".repeat(100_000);
    let huge_change = format!("{huge}=premium-1");
    for (args, key, says) in [
        (
            vec!["plan", "-a", &huge, "--change", &change],
            None,
            "longer than 100",
        ),
        (
            vec!["plan", "-a", APP, "--change", &huge_change],
            None,
            "longer than 100",
        ),
        (
            vec!["plan", "-a", "a/b", "--change", &change],
            None,
            "cannot be a Heroku app",
        ),
        (
            vec![
                "plan",
                "-a",
                APP,
                "--change",
                &change,
                "--writers",
                "web,web",
            ],
            None,
            "names web twice",
        ),
        (
            vec![
                "plan",
                "-a",
                APP,
                "--change",
                &change,
                "--connections",
                "enketo_redis_main=5",
                "--connections",
                "enketo_redis_main=6",
            ],
            None,
            "names enketo_redis_main twice",
        ),
        (
            vec![
                "plan",
                "-a",
                APP,
                "--change",
                &change,
                "--playbook",
                "/dev/zero",
            ],
            None,
            "larger than",
        ),
        (vec!["retire", "-a", "x y"], None, "cannot be a Heroku app"),
        (
            vec!["plan", "-a", APP, "--change", &change],
            Some("key\nx"),
            "line break",
        ),
    ] {
        let mut cmd = env.upshift();
        cmd.args(&args).stdin(Stdio::null());
        if let Some(key) = key {
            cmd.env("HEROKU_API_KEY", key);
        }
        let o = cmd.output().unwrap();
        let shown: Vec<String> = args.iter().map(|a| a.chars().take(30).collect()).collect();
        assert_eq!(o.status.code(), Some(2), "{shown:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{shown:?}: {}", stderr(&o));
    }

    assert_eq!(
        env.sim.request_log().len(),
        before,
        "no request may reach the platform"
    );
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_reads_only_and_exits_3_when_blocked() {
    let env = Env::start(Duration::from_millis(300)).await;
    let o = upshift(
        &env,
        &[
            "plan",
            "-a",
            APP,
            "--change",
            &format!("{MAIN}=mini"),
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).expect("plan --json is JSON");
    assert_eq!(plan["blocked"], true);
    assert_eq!(plan["version"], 1, "{plan}");
    crate::json_schema::assert_valid("plan", &plan);
    assert!(
        plan["estimate"]["downtime_ms"].as_u64().unwrap() > 0,
        "{plan}"
    );
    let connections = plan["guards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == "connections-fit")
        .expect("connections guard");
    assert_eq!(connections["verdict"], "block");
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains(&env.sim.api_key()),
        "no secret in the plan"
    );
    let o = upshift(
        &env,
        &["plan", "-a", APP, "--change", &format!("{MAIN}=premium-1")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("POINT OF NO RETURN"), "{text}");
    assert!(text.contains("Estimated downtime"), "{text}");
    assert!(env.writes().is_empty(), "plan wrote: {:?}", env.writes());
    env.sim.shutdown().await;
}

/// Over TLS (the `heroku` profile) a Redis at its maxclients drops a new connection before the
/// handshake and never says "max number of clients reached": the plan still reads the full
/// main add-on as full (a warning, not a block), says why in words, and shows no password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_reads_a_full_tls_addon_as_full_without_its_error_reply() {
    let env = Env::start_with(Duration::from_millis(300), upshift::sim::Profile::Heroku).await;
    let url = env.sim.redis_url(MAIN);
    assert!(url.starts_with("rediss://"), "TLS under the heroku profile");
    // The dynos' pools warm up over 2 s under this profile: wait until main is full.
    let client = redis::Client::open(format!("{url}#insecure").as_str()).unwrap();
    let mut full = false;
    for _ in 0..100 {
        if client.get_multiplexed_async_connection().await.is_err() {
            full = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(full, "main never reached its connection limit");
    let o = upshift(
        &env,
        &["plan", "-a", APP, "--change", &format!("{MAIN}=premium-1")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let warn = text
        .lines()
        .find(|l| l.contains("cannot read Redis INFO now"))
        .unwrap_or_else(|| panic!("main is full: {text}"));
    assert!(
        warn.contains("dropped during the TLS handshake")
            && warn.contains("at a full connection limit that is expected"),
        "{warn}"
    );
    let password = url::Url::parse(&url)
        .unwrap()
        .password()
        .unwrap()
        .to_owned();
    assert!(!text.contains(&password) && !stderr(&o).contains(&password));
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unattended_run_succeeds_and_runs_lists_it() {
    let env = Env::start(Duration::from_millis(300)).await;
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
            "--json",
            // Unattended runs watch the logs for 5 minutes by default; a second is enough here.
            "--watch",
            "1s",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("run --json");
    assert_eq!(report["outcome"], "succeeded");
    // A versioned document; durations named by their unit, as in `runs --json`.
    assert_eq!(report["version"], 1, "{report}");
    assert!(report["downtime_ms"].as_u64().is_some(), "{report}");
    assert!(report["duration_ms"].as_u64().is_some(), "{report}");
    assert!(report.get("downtime").is_none(), "{report}");
    crate::json_schema::assert_valid("run", &report);
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(!out.contains(&env.sim.api_key()), "the API key leaked");
    assert!(
        !out.contains(&env.sim.redis_url(MAIN)),
        "a Redis URL leaked"
    );

    let o = upshift(&env, &["runs", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    crate::json_schema::assert_valid("runs", &runs);
    let rows = &runs["runs"];
    assert_eq!(rows[0]["outcome"], "succeeded");
    assert_eq!(rows[0]["app"], APP);
    assert!(rows[0]["downtime_ms"].as_i64().unwrap() > 0);

    // The journal holds no secret either.
    let id = rows[0]["id"].as_str().unwrap();

    // Dynamic completion (`COMPLETE=fish upshift -- upshift …`): the run id after `resume`,
    // with its app; the app name after `-a`, from the account.
    let complete = |words: &[&str]| {
        let cfg = env.sim.client_config();
        let o = Command::new(env!("CARGO_BIN_EXE_upshift"))
            .arg("--")
            .args(words)
            .env("COMPLETE", "fish")
            .env("HEROKU_API_URL", cfg.api_url.as_str())
            .env("HEROKU_DATA_URL", cfg.data_url.as_str())
            .env("HEROKU_API_KEY", env.sim.api_key())
            .env("UPSHIFT_STATE_DIR", env.state_dir.path())
            .env_remove("HEROKU_APP")
            .output()
            .expect("upshift completes");
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let ids = complete(&["upshift", "resume", ""]);
    assert!(
        ids.lines().any(|l| l == format!("{id}\t{APP} succeeded")),
        "{ids}"
    );
    assert!(
        complete(&["upshift", "resume", "nope"])
            .lines()
            .all(|l| !l.contains(id))
    );
    let apps = complete(&["upshift", "plan", "-a", "enk"]);
    assert!(apps.lines().any(|l| l == APP), "{apps}");
    // Add-on names of the app on the line, as the wizard offers them: the positional ADDON,
    // `--change ADDON=` then the plans after the `=`, `--cache`; nothing without an app.
    let addons = complete(&["upshift", "run", "-a", APP, ""]);
    for name in ["enketo_redis_main	", "enketo_redis_cache	"] {
        assert!(addons.lines().any(|l| l.starts_with(name)), "{addons}");
    }
    let change = complete(&[
        "upshift",
        "plan",
        "--app",
        APP,
        "--change",
        "enketo_redis_m",
    ]);
    assert!(
        change.lines().any(|l| l.starts_with("enketo_redis_main=	")),
        "{change}"
    );
    assert!(!change.contains("enketo_redis_cache"), "{change}");
    let plans = complete(&[
        "upshift",
        "plan",
        "-a",
        APP,
        "--change",
        "enketo_redis_main=premium-",
    ]);
    assert!(
        plans.lines().any(|l| l == "enketo_redis_main=premium-1"),
        "{plans}"
    );
    let cache = complete(&[
        "upshift",
        "run",
        &format!("--app={APP}"),
        "--cache",
        "enketo_redis_c",
    ]);
    assert!(
        cache.lines().any(|l| l.starts_with("enketo_redis_cache	")),
        "{cache}"
    );
    assert_eq!(complete(&["upshift", "run", "--cache", "enk"]).trim(), "");
    let journal = std::fs::read_to_string(
        env.state_dir
            .path()
            .join("runs")
            .join(id)
            .join("journal.jsonl"),
    )
    .unwrap();
    assert!(!journal.contains(&env.sim.api_key()));
    assert!(!journal.contains("redis://"), "a Redis URL in the journal");
    env.sim.shutdown().await;
}

/// stdout and stderr closed under a running `upshift run` (`| head`, a log collector that
/// died): a write to them used to panic mid-run, leaving the writers stopped. The run must end
/// as if it had been watched: succeeded, journal finished, formation back, no write lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_output_is_gone_still_finishes_safely() {
    let env = Env::start(Duration::from_millis(300)).await;
    let before = crate::run::seeded(&env, CACHE).await;
    let mut child = env
        .upshift()
        .args([
            "run",
            "-a",
            APP,
            "--change",
            &format!("{CACHE}=premium-1"),
            "--confirm",
            APP,
            "--watch",
            "0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("upshift starts");
    // Close both read ends at once: every write upshift makes gets EPIPE.
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .expect("upshift ends");
    assert_eq!(status.code(), Some(0), "{status:?}");
    let (run_id, _) = env.latest_journal();
    assert_eq!(env.outcomes(&run_id), [upshift::engine::Outcome::Succeeded]);
    assert_eq!(env.plan_of(CACHE).await, "premium-1");
    crate::run::assert_formation_restored(&env).await;
    crate::run::assert_no_data_lost(&env, &before, &[CACHE]).await;
    env.sim.shutdown().await;
}

/// The Redis Data API down (here: nothing listens at its URL): a run would stop the app, pass
/// the point of no return and then wait blind. The plan blocks and the run is blocked before
/// anything is written. (Through the library with a quick retry policy: the binary's default
/// policy retries an unreachable host for about a minute and a half before the plan.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_api_that_does_not_answer_blocks_before_any_write() {
    let env = Env::start(Duration::from_millis(300)).await;
    let formation = env.formation().await;
    let writes = env.writes().len();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let mut config = env.sim.client_config();
    config.data_url = dead_url.parse().unwrap();
    config.retry = upshift::heroku::RetryPolicy {
        max_attempts: 2,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        call_timeout: Duration::from_secs(2),
        ..config.retry
    };
    let runner = upshift::runner::Runner::new(
        upshift::heroku::Client::new(config).unwrap(),
        upshift::runner::RunnerConfig::new(env.state()),
        std::sync::Arc::new(upshift::ui::HumanReporter::new(false)),
        upshift::runner::Interrupts::default(),
    );
    let req = harness::request(vec![harness::change(CACHE, "premium-1")], None);
    let plan = runner.plan(&req).await.expect("plan");
    let said = serde_json::to_string(&plan.guards).unwrap();
    assert!(upshift::plan::guards::blocked(&plan.guards), "{said}");
    assert!(said.contains("Redis Data API did not answer"), "{said}");
    let report = runner.run(&req).await.expect("run");
    assert_eq!(
        report.outcome,
        upshift::engine::Outcome::Blocked,
        "{report:#?}"
    );
    untouched(&env, writes, &formation).await;
    env.sim.shutdown().await;
}

/// A run that is over, waiting only for a webhook that never answers: an interrupt stops the
/// wait at once (it took the whole 10 s budget and said "rolling back" for a finished run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_while_only_notifications_are_out_exits_at_once() {
    let env = Env::start(Duration::from_millis(300)).await;
    // Accepts connections (the kernel's backlog) and never answers.
    let hook = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", hook.local_addr().unwrap());
    let child = env
        .upshift()
        .args([
            "run",
            "-a",
            APP,
            "--change",
            &format!("{MAIN}=premium-0"),
            "--confirm",
            APP,
            "--notify",
            &url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The run is blocked at once (already on premium-0); then only the webhook is waited on.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let signalled = std::time::Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "the wait went on for {:?}",
        signalled.elapsed()
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("the run is over"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("rolling back"), "{}", stderr(&out));
    drop(hook);
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_exits_5_at_once() {
    let env = Env::start(Duration::from_millis(300)).await;
    let locks = env.state_dir.path().join("locks");
    std::fs::create_dir_all(&locks).unwrap();
    // A live holder: this test process, on this host.
    let owner = serde_json::json!({
        "host": upshift::journal::hostname(),
        "pid": std::process::id(),
        "run_id": "20260101T000000Z-live",
        "lease_until": "2099-01-01T00:00:00Z",
    });
    std::fs::write(locks.join(format!("{APP}.lock")), owner.to_string()).unwrap();
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
        ],
    );
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("held by run 20260101T000000Z-live"),
        "{}",
        stderr(&o)
    );
    assert!(env.writes().is_empty());
    env.sim.shutdown().await;
}

#[test]
fn a_missing_token_says_where_to_put_one() {
    let o = Command::new(env!("CARGO_BIN_EXE_upshift"))
        .args(["plan", "-a", APP, "--change", &format!("{MAIN}=premium-1")])
        .env_remove("HEROKU_API_KEY")
        .env("NETRC", "/nonexistent/netrc")
        .env("HEROKU_API_URL", "http://127.0.0.1:9")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("HEROKU_API_KEY") && e.contains("heroku auth:token"),
        "{e}"
    );
}

/// Without `HEROKU_API_KEY` and `.netrc`, the token comes from `heroku auth:token` (a stand-in
/// CLI first on `PATH`); a CLI that is logged out leaves the "no API key" error (exit 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_comes_from_heroku_auth_token_when_nothing_else_has_one() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::start(Duration::from_millis(300)).await;
    let bin = tempfile::tempdir().unwrap();
    let cli = bin.path().join("heroku");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let plan = |script: &str| {
        std::fs::write(&cli, script).unwrap();
        std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).unwrap();
        env.upshift()
            .args(["plan", "-a", APP, "--change", &format!("{MAIN}=premium-1")])
            .env_remove("HEROKU_API_KEY")
            .env("NETRC", "/nonexistent/netrc")
            .env("PATH", &path)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = plan(&format!(
        "#!/bin/sh\n[ \"$1\" = auth:token ] || exit 2\necho ' Warning: update available' >&2\necho {}\n",
        env.sim.api_key()
    ));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(out.contains("POINT OF NO RETURN"), "{out}");
    assert!(!out.contains(&env.sim.api_key()), "the token leaked");
    let o = plan("#!/bin/sh\necho ' ›   Error: not logged in' >&2\nexit 100\n");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no Heroku API key found"),
        "{}",
        stderr(&o)
    );
    assert!(env.writes().is_empty());
    env.sim.shutdown().await;
}

fn upshift_with(env: &Env, args: &[&str], vars: &[(&str, &std::ffi::OsStr)]) -> Output {
    let mut cmd = env.upshift();
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().expect("upshift runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_apps_and_state_dirs_exit_2_and_write_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::start(Duration::from_millis(300)).await;
    let change = format!("{MAIN}=premium-1");
    let run = |app: &'static str| -> Vec<String> {
        [
            "run",
            "-a",
            app,
            "--change",
            &change,
            "--confirm",
            app,
            "--watch",
            "0",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };
    let args = run(APP);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let writes = env.writes().len();
    let scratch = tempfile::tempdir().unwrap();
    let private = |name: &str| {
        let p = scratch.path().join(name);
        std::fs::create_dir(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        p
    };

    // A token the platform refuses (401).
    let o = upshift_with(&env, &args, &[("HEROKU_API_KEY", "not-a-token".as_ref())]);
    assert_eq!(o.status.code(), Some(2), "401: {}", stderr(&o));

    // An app that does not exist.
    let other = run("no-such-app-42");
    let other: Vec<&str> = other.iter().map(String::as_str).collect();
    let o = upshift(&env, &other);
    assert_eq!(o.status.code(), Some(2), "unknown app: {}", stderr(&o));
    assert!(
        stderr(&o).contains("no app no-such-app-42 visible to this token"),
        "{}",
        stderr(&o)
    );
    // A near miss names the app the user meant.
    let near = run("enketo-dem");
    let near: Vec<&str> = near.iter().map(String::as_str).collect();
    let o = upshift(&env, &near);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("did you mean {APP}?")),
        "{}",
        stderr(&o)
    );

    // A state dir that is a file.
    let file = scratch.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let o = upshift_with(&env, &args, &[("UPSHIFT_STATE_DIR", file.as_os_str())]);
    assert_eq!(o.status.code(), Some(2), "a file: {}", stderr(&o));

    // A state dir that others may write: refused like ssh does, saying how to fix it.
    let open = private("open");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = upshift_with(&env, &args, &[("UPSHIFT_STATE_DIR", open.as_os_str())]);
    assert_eq!(o.status.code(), Some(2), "0777: {}", stderr(&o));
    assert!(stderr(&o).contains("chmod 700"), "{}", stderr(&o));
    assert!(std::fs::read_dir(&open).unwrap().next().is_none());

    // A lock path that is a directory.
    let locked = private("locked");
    std::fs::create_dir_all(locked.join("locks").join(format!("{APP}.lock"))).unwrap();
    let o = upshift_with(&env, &args, &[("UPSHIFT_STATE_DIR", locked.as_os_str())]);
    assert_eq!(o.status.code(), Some(2), "lock dir: {}", stderr(&o));

    // A read-only state dir (root ignores modes, so only as a normal user).
    let ro = private("ro");
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).unwrap();
    if std::fs::write(ro.join("probe"), "").is_err() {
        let o = upshift_with(&env, &args, &[("UPSHIFT_STATE_DIR", ro.as_os_str())]);
        assert_eq!(o.status.code(), Some(2), "read-only: {}", stderr(&o));
    }
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o700)).unwrap();

    assert_eq!(env.writes().len(), writes, "{:?}", env.writes());
    assert_eq!(env.plan_of(MAIN).await, "premium-0");
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_addon_named_twice_by_different_names_is_refused_before_any_write() {
    let env = Env::start(Duration::from_millis(300)).await;
    let name = env.client().addon(APP, MAIN).await.unwrap().name;
    assert_ne!(
        name, MAIN,
        "the add-on's own name differs from its attachment name"
    );
    let writes = env.writes().len();
    let second = format!("{name}=premium-2");
    let first = format!("{MAIN}=premium-1");
    for cmd in ["plan", "run"] {
        let mut args = vec![cmd, "-a", APP, "--change", &first, "--change", &second];
        if cmd == "run" {
            args.extend(["--confirm", APP, "--watch", "0"]);
        }
        let o = upshift(&env, &args);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("name the same add-on"),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(env.writes().len(), writes, "{:?}", env.writes());
    assert!(
        !env.state_dir.path().join("runs").exists(),
        "no journal for bad input"
    );
    assert_eq!(env.plan_of(MAIN).await, "premium-0");
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_plan_file_without_a_snapshot_is_refused() {
    let env = Env::start(Duration::from_millis(300)).await;
    let path = env.state_dir.path().join("plan.json");
    let change = format!("{MAIN}=premium-1");
    let o = upshift(
        &env,
        &[
            "plan",
            "-a",
            APP,
            "--change",
            &change,
            "--out",
            path.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    file["request"]["playbook"]["steps"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["action"] != "snapshot");
    // Resealed, so that the playbook check, not the hash, is what refuses it.
    reseal(&mut file);
    std::fs::write(&path, file.to_string()).unwrap();
    let before = env.sim.request_log().len();
    let o = upshift(
        &env,
        &[
            "run",
            "--plan",
            path.to_str().unwrap(),
            "--confirm",
            APP,
            "--watch",
            "0",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no \"snapshot\" step"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        env.sim.request_log().len(),
        before,
        "no request may reach the platform"
    );
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_of_a_stored_invalid_playbook_is_a_clear_error_not_a_panic() {
    let env = Env::start(Duration::from_millis(300)).await;
    // A run that dies right after its start record leaves a journal to resume.
    let o = upshift_with(
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
        &[("UPSHIFT_FAILPOINT", "1".as_ref())],
    );
    assert!(!o.status.success());
    let runs = env.state_dir.path().join("runs");
    let run = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let journal = run.join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    // An overflowing duration makes the start record unreadable: the journal is unusable, said so.
    let bad_timeouts = [
        ("0s", "timeout 0s"),
        ("5124095576030431h", "not a record this upshift understands"),
    ];
    for (timeout, says) in bad_timeouts {
        let edited: Vec<String> = text
            .lines()
            .map(|line| {
                let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
                if let Some(steps) = v["request"]["playbook"]["steps"].as_array_mut() {
                    for s in steps {
                        if s["action"] == "restore-formation" {
                            s["timeout"] = timeout.into();
                        }
                    }
                }
                v.to_string()
            })
            .collect();
        std::fs::write(&journal, edited.join("\n") + "\n").unwrap();
        let before = env.sim.request_log().len();
        // An unparsable duration makes the record unreadable, so name the run.
        let id = run.file_name().unwrap().to_str().unwrap().to_owned();
        let o = upshift(&env, &["resume", &id, "--confirm", APP]);
        let e = stderr(&o);
        assert!(!e.contains("panicked"), "{e}");
        assert_eq!(o.status.code(), Some(4), "{timeout}: {e}");
        assert!(e.contains(says), "{timeout}: {e}");
        assert_eq!(
            env.sim.request_log().len(),
            before,
            "{timeout}: resume sent requests"
        );
    }
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_someone_else_stopped_blocks_the_run_and_is_never_restored_to_zero() {
    let env = Env::start(Duration::from_millis(300)).await;
    // Another actor (a person, another machine's run) stopped web mid-change.
    env.client()
        .update_formation(
            APP,
            &[upshift::heroku::models::FormationUpdate {
                process_type: "web".into(),
                quantity: Some(0),
                size: None,
            }],
        )
        .await
        .expect("scale web to 0");
    let writes = env.writes().len();
    let change = format!("{MAIN}=premium-1");
    let o = upshift(
        &env,
        &[
            "run",
            "-a",
            APP,
            "--change",
            &change,
            "--confirm",
            APP,
            "--watch",
            "0",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--allow-stopped-writers"),
        "{}",
        stderr(&o)
    );
    assert_eq!(env.writes().len(), writes, "{:?}", env.writes());
    assert_eq!(env.plan_of(MAIN).await, "premium-0");
    let web = env.formation().await;
    assert!(web.iter().any(|(t, q, _)| t == "web" && *q == 0), "{web:?}");
    // The plan says so too, and the flag turns the block into a warning.
    let o = upshift(&env, &["plan", "-a", APP, "--change", &change]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let o = upshift(
        &env,
        &[
            "plan",
            "-a",
            APP,
            "--change",
            &change,
            "--allow-stopped-writers",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &stderr(&o);
    assert!(out.contains("is at 0 dynos now"), "{out}");
    assert_ne!(o.status.code(), Some(3), "{out}");
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_and_rollback_with_a_refused_token_exit_2_before_touching_the_run() {
    let env = Env::start(Duration::from_millis(300)).await;
    // A run that dies right after its start record leaves a journal to resume.
    let o = upshift_with(
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
        &[("UPSHIFT_FAILPOINT", "1".as_ref())],
    );
    assert!(!o.status.success(), "{}", stderr(&o));
    let run = std::fs::read_dir(env.state_dir.path().join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let id = run.file_name().unwrap().to_str().unwrap().to_owned();
    let journal = std::fs::read(run.join("journal.jsonl")).unwrap();
    let writes = env.writes().len();
    for cmd in ["resume", "rollback"] {
        let o = upshift_with(
            &env,
            &[cmd, &id, "--confirm", APP],
            &[("HEROKU_API_KEY", "not-a-token".as_ref())],
        );
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", stderr(&o));
        assert!(!stderr(&o).contains("not-a-token"), "{}", stderr(&o));
        assert_eq!(
            std::fs::read(run.join("journal.jsonl")).unwrap(),
            journal,
            "{cmd} wrote to the journal"
        );
        assert_eq!(env.writes().len(), writes, "{cmd}: {:?}", env.writes());
    }
    // With the right token the run finishes, and the app is up again.
    let o = upshift(&env, &["resume", &id, "--confirm", APP]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    let web = env.formation().await;
    assert!(web.iter().any(|(t, q, _)| t == "web" && *q == 2), "{web:?}");
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_target_policy_or_compensation_is_refused_and_nothing_is_written() {
    type Edit = fn(&mut serde_json::Value);
    let env = Env::start(Duration::from_millis(300)).await;
    let path = env.state_dir.path().join("plan.json");
    let hash = save_plan(&env, &path);
    let original = std::fs::read_to_string(&path).unwrap();
    let formation = env.formation().await;
    let writes = env.writes().len();
    // (edit, exit code once resealed, what stderr then says)
    let edits: [(&str, Edit, i32, &str); 4] = [
        (
            "target",
            |f| f["request"]["changes"][0]["plan"] = "premium-5".into(),
            3,
            "target of ENKETO_REDIS_MAIN: reviewed premium-1, now premium-5",
        ),
        (
            "policy",
            |f| f["request"]["changes"][0]["policy"] = "cache".into(),
            3,
            "data policy of ENKETO_REDIS_MAIN: reviewed critical, now cache",
        ),
        (
            // The playbook check refuses a step without its compensation before any call.
            "compensation in the request",
            |f| {
                for s in f["request"]["playbook"]["steps"].as_array_mut().unwrap() {
                    if s["action"] == "scale" {
                        s["compensation"] = serde_json::Value::Null;
                    }
                }
            },
            2,
            "step \"scale\" has the wrong compensation",
        ),
        (
            // What the reviewer read differs from what would run.
            "compensation in the reviewed plan",
            |f| {
                for s in f["plan"]["steps"].as_array_mut().unwrap() {
                    if s["action"] == "scale" {
                        s.as_object_mut().unwrap().remove("compensation");
                    }
                }
            },
            3,
            "reviewed scale, no compensation, stops the writers, now scale, compensation \
             restore-formation, stops the writers",
        ),
    ];
    for (what, edit, resealed_code, says) in edits {
        let mut file: serde_json::Value = serde_json::from_str(&original).unwrap();
        edit(&mut file);
        // As edited, the content no longer matches its hash: refused before any call.
        std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap()).unwrap();
        let before = env.sim.request_log().len();
        let o = run_plan(&env, &path, &[]);
        assert_eq!(o.status.code(), Some(2), "{what}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("was changed or corrupted after it was saved")
                && stderr(&o).contains(path.to_str().unwrap()),
            "{what}: {}",
            stderr(&o)
        );
        assert_eq!(env.sim.request_log().len(), before, "{what}: no request");
        // Resealed, the hash holds, and the plan rebuilt from the platform tells the edit.
        reseal(&mut file);
        std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap()).unwrap();
        let o = run_plan(&env, &path, &[]);
        assert_eq!(
            o.status.code(),
            Some(resealed_code),
            "{what}: {}",
            stderr(&o)
        );
        assert!(stderr(&o).contains(says), "{what}: {}", stderr(&o));
        if resealed_code == 3 {
            assert!(
                stderr(&o).contains("run `upshift plan … --out` again and review the new plan"),
                "{what}: {}",
                stderr(&o)
            );
        }
        untouched(&env, writes, &formation).await;
        // And the reviewed hash refuses the resealed file outright.
        let o = run_plan(&env, &path, &["--plan-hash", &hash]);
        assert_eq!(o.status.code(), Some(2), "{what}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("is not the plan that was reviewed"),
            "{what}: {}",
            stderr(&o)
        );
        untouched(&env, writes, &formation).await;
    }
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_plan_file_is_refused_and_the_untouched_one_runs() {
    let env = Env::start(Duration::from_millis(300)).await;
    let path = env.state_dir.path().join("plan.json");
    let hash = save_plan(&env, &path);
    let original = std::fs::read(&path).unwrap();
    let file: serde_json::Value = serde_json::from_slice(&original).unwrap();
    assert_eq!(
        file["hash"],
        hash.as_str(),
        "the printed hash is the file's"
    );
    let formation = env.formation().await;
    let writes = env.writes().len();
    // One flipped bit anywhere is refused (a changed value by the hash, broken JSON by the
    // parser), always exit 2, naming the file, before any request.
    let targets = [
        original.len() / 3,
        original.len() / 2,
        original.len() * 2 / 3,
        // A digit of the target plan: still valid JSON, only the hash can tell.
        original
            .windows(b"premium-1".len())
            .position(|w| w == b"premium-1")
            .unwrap()
            + b"premium-".len(),
    ];
    for at in targets {
        let mut bytes = original.clone();
        bytes[at] ^= 0x04;
        std::fs::write(&path, &bytes).unwrap();
        let before = env.sim.request_log().len();
        let o = run_plan(&env, &path, &[]);
        assert_eq!(o.status.code(), Some(2), "byte {at}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(path.to_str().unwrap()),
            "byte {at}: {}",
            stderr(&o)
        );
        assert_eq!(env.sim.request_log().len(), before, "byte {at}: no request");
    }
    // Cut short (a half-written copy).
    std::fs::write(&path, &original[..original.len() / 2]).unwrap();
    let o = run_plan(&env, &path, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    untouched(&env, writes, &formation).await;

    // The untouched file with its printed hash runs (any case, prefix or not).
    std::fs::write(&path, &original).unwrap();
    let bare = hash.strip_prefix("sha256:").unwrap().to_ascii_uppercase();
    let o = run_plan(&env, &path, &["--plan-hash", &bare]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(env.plan_of(MAIN).await, "premium-1");
    assert_eq!(env.formation().await, formation, "writers restored");
    env.sim.shutdown().await;
}

#[test]
fn plan_hash_needs_a_plan() {
    let o = Command::new(env!("CARGO_BIN_EXE_upshift"))
        .args([
            "run",
            "-a",
            APP,
            "--plan-hash",
            "sha256:00",
            "--confirm",
            APP,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--plan"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_given_beside_a_reviewed_plan_is_refused_not_ignored() {
    let env = Env::start(Duration::from_millis(300)).await;
    let path = env.state_dir.path().join("plan.json");
    save_plan(&env, &path);
    let writes = env.writes().len();
    let file = path.to_str().unwrap();
    for extra in [
        vec![CACHE, "premium-1"],
        vec!["--change", "enketo_redis_cache=premium-1"],
    ] {
        let mut args = vec!["run", "--plan", file, "--confirm", APP, "--watch", "0"];
        args.extend(extra.iter().copied());
        let o = upshift(&env, &args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("carries its changes"), "{}", stderr(&o));
    }
    assert_eq!(env.writes().len(), writes, "{:?}", env.writes());
    assert_eq!(env.plan_of(MAIN).await, "premium-0");
    env.sim.shutdown().await;
}

/// `plan --color always` paints each verdict (BLOCKED red, PASS green); piped, and with
/// `NO_COLOR` under `--color auto`, it stays plain text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_colours_verdicts_only_when_asked() {
    let env = Env::start(Duration::from_millis(300)).await;
    let change = format!("{MAIN}=mini");
    let args = ["plan", "-a", APP, "--change", &change];
    let coloured = upshift(&env, &[&args[..], &["--color", "always"]].concat());
    assert_eq!(coloured.status.code(), Some(3), "{}", stderr(&coloured));
    let text = String::from_utf8_lossy(&coloured.stdout);
    assert!(text.contains("\x1b[31m\x1b[1mBLOCKED"), "{text:?}");
    assert!(text.contains("\x1b[32mPASS"), "{text:?}");
    let plain = upshift(&env, &args);
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(text.contains("BLOCKED"), "{text}");
    assert!(!text.contains('\x1b'), "colour in a pipe: {text:?}");
    let cfg = env.sim.client_config();
    let no_color = Command::new(env!("CARGO_BIN_EXE_upshift"))
        .args(args)
        .env("HEROKU_API_URL", cfg.api_url.as_str())
        .env("HEROKU_DATA_URL", cfg.data_url.as_str())
        .env("HEROKU_API_KEY", env.sim.api_key())
        .env("UPSHIFT_STATE_DIR", env.state_dir.path())
        .env("NO_COLOR", "1")
        .env_remove("HEROKU_APP")
        .output()
        .expect("upshift runs");
    assert!(!String::from_utf8_lossy(&no_color.stdout).contains('\x1b'));
    env.sim.shutdown().await;
}

/// `-v` (and `UPSHIFT_DEBUG=1`) shows every HTTP request on stderr: method, path, status,
/// request id and time; never the token, nor a Redis URL from the config vars.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_shows_every_request_without_secrets() {
    let env = Env::start(Duration::from_millis(300)).await;
    let change = format!("{MAIN}=premium-1");
    let o = upshift(&env, &["plan", "-v", "-a", APP, "--change", &change]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    let requests: Vec<&str> = err.lines().filter(|l| l.starts_with("http ")).collect();
    assert!(
        requests.iter().any(
            |l| l.starts_with(&format!("http GET /apps/{APP}/config-vars 200 ("))
                && l.contains(") request-id ")
        ),
        "{err}"
    );
    assert!(requests.len() >= 3, "{err}");
    assert!(!err.contains(&env.sim.api_key()), "the token leaked: {err}");
    assert!(
        !err.contains("redis://") && !err.contains("rediss://"),
        "{err}"
    );
    // Without -v: no request lines.
    let quiet = upshift(&env, &["plan", "-a", APP, "--change", &change]);
    assert!(!stderr(&quiet).lines().any(|l| l.starts_with("http ")));
    // UPSHIFT_DEBUG=1 does the same as -v.
    let cfg = env.sim.client_config();
    let debug = Command::new(env!("CARGO_BIN_EXE_upshift"))
        .args(["plan", "-a", APP, "--change", &change])
        .env("HEROKU_API_URL", cfg.api_url.as_str())
        .env("HEROKU_DATA_URL", cfg.data_url.as_str())
        .env("HEROKU_API_KEY", env.sim.api_key())
        .env("UPSHIFT_STATE_DIR", env.state_dir.path())
        .env("UPSHIFT_DEBUG", "1")
        .env_remove("HEROKU_APP")
        .output()
        .expect("upshift runs");
    assert!(
        stderr(&debug).lines().any(|l| l.starts_with("http GET ")),
        "{}",
        stderr(&debug)
    );
    env.sim.shutdown().await;
}

/// `--settle` (and `UPSHIFT_SETTLE`): bad values exit 2 before any call, `plan` shows the
/// period, a run holds the wait-provisioned step for it, and a reviewed plan keeps its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_is_validated_shown_by_plan_and_held_by_the_run() {
    let env = Env::start(Duration::from_millis(300)).await;
    let change = format!("{MAIN}=premium-1");
    let formation = env.formation().await;
    for (cmd, bad) in [("plan", "50ms"), ("run", "11m"), ("run", "soon")] {
        let mut args = vec![cmd, "-a", APP, "--change", &change, "--settle", bad];
        if cmd == "run" {
            args.extend(["--confirm", APP]);
        }
        let o = upshift(&env, &args);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{cmd} --settle {bad}: {}",
            stderr(&o)
        );
        assert!(
            stderr(&o).contains(&format!("--settle \"{bad}\": ")),
            "{}",
            stderr(&o)
        );
        untouched(&env, 0, &formation).await;
    }
    let o = upshift(
        &env,
        &["plan", "-a", APP, "--change", &change, "--settle", "4s"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("the proof holding for 4s (settle)"),
        "{stdout}"
    );
    // The harness's UPSHIFT_SETTLE=300ms is what `plan` shows without the flag.
    let o = upshift(&env, &["plan", "-a", APP, "--change", &change]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("holding for 300ms (settle)"));

    // A reviewed plan with another settle is refused; the run holds the period it was given.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.json");
    save_plan(&env, &path);
    let o = run_plan(&env, &path, &["--settle", "3s"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("was reviewed with settle 300ms"),
        "{}",
        stderr(&o)
    );
    untouched(&env, 0, &formation).await;
    let o = upshift(
        &env,
        &[
            "run",
            "-a",
            APP,
            "--change",
            &change,
            "--settle",
            "3s",
            "--confirm",
            APP,
            "--watch",
            "0",
            "--log-format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let waited = stderr(&o)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "step-done" && e["action"] == "wait-provisioned")
        .and_then(|e| e["elapsed_ms"].as_u64())
        .expect("a wait-provisioned step-done event");
    assert!(waited >= 3000, "wait-provisioned took {waited} ms");
    assert_eq!(env.plan_of(MAIN).await, "premium-1");
    env.sim.shutdown().await;
}
