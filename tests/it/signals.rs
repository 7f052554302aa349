//! Signals that reach a run from outside (a supervisor's SIGTERM, the SIGHUP of a closed
//! terminal or dropped ssh session, SIGQUIT from Ctrl-\), and output that cannot be written:
//! the `upshift` binary against the simulator, judged by the platform's formation and the
//! journal, not by upshift's summary. And the same signals during a standalone `snapshot` or
//! `restore`, judged by the files left and the target server's own key count.

use crate::harness;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::{APP, Env, MAIN};
use upshift::engine::Outcome;
use upshift::runner::record::Record;

/// The formation the Enketo scenario starts with, read from the platform.
async fn web_quantity(env: &Env) -> u32 {
    env.formation()
        .await
        .into_iter()
        .find(|(t, _, _)| t == "web")
        .map(|(_, q, _)| q)
        .expect("a web process type")
}

fn start_run(env: &Env) -> Child {
    env.upshift_piped()
        .args([
            "run",
            "-a",
            APP,
            "--change",
            &format!("{MAIN}=premium-1"),
            "--confirm",
            APP,
            "--watch",
            "0",
        ])
        .spawn()
        .expect("upshift runs")
}

/// Waits until the run's journal says the writers are stopped (the app is down): the moment a
/// lost terminal hurts most.
async fn wait_writers_stopped(env: &Env, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if env
            .journal_so_far()
            .iter()
            .any(|r| matches!(r, Record::Downtime { started: true }))
        {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its writers stopped"
        );
        assert!(Instant::now() < deadline, "the writers never stopped");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether this process was started with `signal` (HUP, QUIT) ignored, which children inherit.
fn inherited_ignore(signal: &str) -> bool {
    let bit = match signal {
        "HUP" => 0,
        "QUIT" => 2,
        _ => return false,
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << bit) != 0)
}

fn kill(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Waits (at most 120 s) for the child to end; its exit code and what it printed (empty for a
/// stream the test closed).
async fn finish(mut child: Child) -> (Option<i32>, String, String) {
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut o = String::new();
        let mut e = String::new();
        if let Some(s) = out.as_mut() {
            let _ = s.read_to_string(&mut o);
        }
        if let Some(s) = err.as_mut() {
            let _ = s.read_to_string(&mut e);
        }
        (o, e)
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run did not end within 120 s of the signal");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (o, e) = reader.join().unwrap();
    (status.code(), o, e)
}

/// One signal after the writers stopped: the run finishes its step, rolls back, brings web
/// back to its count and journals `rolled-back`; the process exits 130 (stopped on request),
/// not 1 (failed), and not killed by the signal.
async fn one_signal_rolls_back(signal: &str, close_output: bool) -> (String, String) {
    assert!(
        !inherited_ignore(signal),
        "this test process ignores SIG{signal} (started under nohup or as a background job?): \
         the upshift it starts inherits that and rightly keeps ignoring it; run the tests \
         without it"
    );
    let env = Env::start(Duration::from_millis(300)).await;
    let web_before = web_quantity(&env).await;
    assert!(web_before > 0);
    let mut child = start_run(&env);
    if close_output {
        // The terminal is gone: every later write to stdout or stderr fails (EPIPE).
        drop(child.stdout.take());
        drop(child.stderr.take());
    }
    wait_writers_stopped(&env, &mut child).await;
    kill(signal, child.id());
    let (code, out, err) = finish(child).await;
    assert_eq!(
        code,
        Some(130),
        "SIGHUP/SIGTERM/SIGQUIT: {signal}\n{out}\n{err}"
    );
    let (run_id, _) = env.latest_journal();
    assert_eq!(
        env.outcomes(&run_id),
        vec![Outcome::RolledBack],
        "{out}\n{err}"
    );
    assert_eq!(
        web_quantity(&env).await,
        web_before,
        "web back to its count"
    );
    assert_eq!(
        env.plan_of(MAIN).await,
        "premium-0",
        "the plan never changed"
    );
    env.sim.shutdown().await;
    (out, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_with_the_terminal_gone_rolls_back_and_restores_the_app() {
    one_signal_rolls_back("HUP", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigquit_rolls_back_instead_of_dumping_core() {
    one_signal_rolls_back("QUIT", true).await;
}

/// A supervisor's single SIGTERM is a stop it asked for: exit 130 and said so, not "the run
/// failed" (exit 1), which pages someone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_sigterm_that_rolls_back_exits_130_and_says_interrupted() {
    let (out, err) = one_signal_rolls_back("TERM", false).await;
    assert!(
        err.contains("interrupt: finishing the current step safely, then rolling back"),
        "{err}"
    );
    assert!(
        out.contains("the run was interrupted and rolled back, as asked"),
        "{out}"
    );
    assert!(!out.contains("the run failed"), "{out}");
}

/// Nobody reads the output (both pipes closed before the run starts writing): the run still
/// changes the plan, verifies and brings the app back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_output_is_closed_still_finishes() {
    let env = Env::start(Duration::from_millis(300)).await;
    let web_before = web_quantity(&env).await;
    let mut child = start_run(&env);
    drop(child.stdout.take());
    drop(child.stderr.take());
    let (code, _, _) = finish(child).await;
    assert_eq!(code, Some(0));
    let (run_id, _) = env.latest_journal();
    assert_eq!(env.outcomes(&run_id), vec![Outcome::Succeeded]);
    assert_eq!(web_quantity(&env).await, web_before);
    assert_eq!(env.plan_of(MAIN).await, "premium-1");
    env.sim.shutdown().await;
}

/// `nohup upshift run …` asks for the run to go on when the terminal closes: the ignored
/// SIGHUP it starts with stays ignored (catching it would roll the run back), and the run
/// changes the plan and brings the app back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_nohup_a_sighup_is_ignored_and_the_run_finishes() {
    let env = Env::start(Duration::from_millis(300)).await;
    let web_before = web_quantity(&env).await;
    let base = env.upshift_piped();
    let mut nohup = Command::new("nohup");
    nohup.arg(base.get_program());
    for (key, value) in base.get_envs() {
        match value {
            Some(v) => nohup.env(key, v),
            None => nohup.env_remove(key),
        };
    }
    let mut child = nohup
        .args([
            "run",
            "-a",
            APP,
            "--change",
            &format!("{MAIN}=premium-1"),
            "--confirm",
            APP,
            "--watch",
            "0",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nohup upshift runs");
    wait_writers_stopped(&env, &mut child).await;
    // nohup execs upshift: the same pid.
    kill("HUP", child.id());
    let (code, out, err) = finish(child).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(!err.contains("interrupt"), "{err}");
    let (run_id, _) = env.latest_journal();
    assert_eq!(env.outcomes(&run_id), vec![Outcome::Succeeded]);
    assert_eq!(web_quantity(&env).await, web_before);
    assert_eq!(env.plan_of(MAIN).await, "premium-1");
    env.sim.shutdown().await;
}

/// A server holding `keys` keys (DEBUG POPULATE: `key:0` …).
fn populated(keys: u32) -> crate::verify_support::Server {
    let server = crate::verify_support::Server::builder()
        .args(&["--enable-debug-command", "yes"])
        .start();
    redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(keys)
        .exec(&mut server.conn())
        .unwrap();
    server
}

fn upshift_child(args: &[&str], slow_disk_us: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_upshift"));
    cmd.args(args)
        .env_remove("REDIS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(us) = slow_disk_us {
        cmd.env("UPSHIFT_FAILPOINT_SLOW_DISK_US", us);
    }
    cmd.spawn().expect("upshift starts")
}

fn names_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Each signal in the middle of a standalone snapshot (its partial file is being written):
/// the process is not killed by the signal but stops the snapshot, removes the partial file,
/// says nothing was written to `--out`, and exits 130. The directory is left empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_during_a_standalone_snapshot_leaves_no_partial_file() {
    let server = populated(20_000);
    let dir = tempfile::tempdir().unwrap();
    for signal in ["INT", "TERM", "HUP", "QUIT"] {
        if inherited_ignore(signal) {
            // Started with it ignored (nohup): upshift rightly keeps ignoring it.
            continue;
        }
        let out = dir.path().join(format!("s{signal}.ups"));
        let out_arg = out.to_str().unwrap();
        // 500 µs per key: 20,000 keys take 10 s, a signal lands mid-stream.
        let child = upshift_child(
            &["snapshot", "--url", &server.url(), "--out", out_arg],
            Some("500"),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while !names_in(dir.path()).iter().any(|n| n.ends_with(".partial")) {
            assert!(Instant::now() < deadline, "no partial file within 60 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        kill(signal, child.id());
        let (code, stdout, stderr) = finish(child).await;
        assert_eq!(code, Some(130), "SIG{signal}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!(
                "interrupted: snapshot stopped; nothing written to {out_arg} (the partial file is removed)"
            )),
            "SIG{signal}: {stderr}"
        );
        let left = names_in(dir.path());
        assert!(left.is_empty(), "SIG{signal}: {left:?}");
    }
}

/// Ctrl-C while a restore waits on its target (the server stopped with SIGSTOP after the
/// first keys arrived): upshift ends at once, exit 130, and says that the target holds part
/// of the snapshot and that the same restore finishes it; which it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_restore_says_the_target_is_part_restored_and_how_to_finish() {
    const KEYS: u32 = 100_000;
    let source = populated(KEYS);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.ups");
    let file_arg = file.to_str().unwrap();
    let taken = upshift_child(
        &["snapshot", "-q", "--url", &source.url(), "--out", file_arg],
        None,
    );
    let (code, stdout, stderr) = finish(taken).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let target = crate::verify_support::Server::start();
    let restore = ["restore", "--url", &target.url(), "--from", file_arg];
    let child = upshift_child(&restore, None);
    let dbsize = |server: &crate::verify_support::Server| -> u64 {
        redis::cmd("DBSIZE").query(&mut server.conn()).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while dbsize(&target) == 0 {
        assert!(Instant::now() < deadline, "no key restored within 60 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    kill("STOP", target.pid());
    kill("INT", child.id());
    let started = Instant::now();
    let (code, stdout, stderr) = finish(child).await;
    kill("CONT", target.pid());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "ended {:?} after the interrupt",
        started.elapsed()
    );
    assert_eq!(code, Some(130), "{stdout}{stderr}");
    assert!(
        stderr
            .contains("interrupted: restore stopped; the target may now hold part of the snapshot")
            && stderr.contains("run the same `upshift restore` again to finish it"),
        "{stderr}"
    );
    let part = dbsize(&target);
    assert!(part > 0 && part < u64::from(KEYS), "{part} keys restored");
    // As the message says: the same command again finishes it.
    let (code, stdout, stderr) = finish(upshift_child(&restore, None)).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(dbsize(&target), u64::from(KEYS));
}
