//! The journal and the lock keep runs safe from each other: a live run is never taken over
//! by `resume` or `rollback`, and a journal that cannot be read never hides its run.
//!
//! Needs `--features failpoints` (the README's test command passes it).
#![cfg(feature = "failpoints")]

use crate::harness;

use std::process::Output;
use std::time::Duration;

use harness::{APP, Env, MAIN};
use upshift::journal;
use upshift::runner::record::Record;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn records(env: &Env, id: &str) -> Vec<Record> {
    env.journal(id)
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
    let mut child = env
        .upshift_piped()
        .args(harness::run_args("premium-1", &[]))
        .spawn()
        .unwrap();
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
        let out = env
            .upshift_piped()
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

/// Starts a run that crashes (abort, like kill -9) right after its `k`th journal record,
/// and checks it landed mid-run: journal there, no outcome, writers stopped.
async fn crashed_run(env: &Env, k: usize) -> (String, std::path::PathBuf) {
    let out = env
        .upshift_piped()
        .args(harness::run_args("premium-1", &[]))
        .env("UPSHIFT_FAILPOINT", k.to_string())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the failpoint fired: {}",
        stderr(&out)
    );
    let id = env.state().run_ids().unwrap().pop().expect("a run");
    let recs = records(env, &id);
    assert_eq!(recs.len(), k, "{recs:?}");
    assert!(!recs.iter().any(|r| matches!(r, Record::Finished { .. })));
    assert_eq!(web(env).await, 0, "the crash landed after the scale-down");
    let path = env.state().run_dir(&id).join(journal::JOURNAL_FILE);
    (id, path)
}

/// The index (1-based) of the first journal record written after the writers stopped.
fn after_scale_down(env: &Env) -> usize {
    let out = env
        .upshift_piped()
        .args(harness::run_args("premium-2", &[]))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let id = env.state().run_ids().unwrap().pop().expect("a run");
    1 + records(env, &id)
        .iter()
        .position(|r| matches!(r, Record::Effect { what, .. } if what.starts_with("scale")))
        .expect("a scale effect")
}

fn combined(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_recovered_with_a_copy_and_resume_finishes_the_run() {
    let env = Env::start(Duration::from_millis(300)).await;
    let k = after_scale_down(&env);
    let (id, path) = crashed_run(&env, k).await;
    let mut torn = std::fs::read(&path).unwrap();
    torn.extend_from_slice(b"{\"v\":1,\"at_ms\":17");
    std::fs::write(&path, &torn).unwrap();

    let runs = env.upshift_piped().arg("runs").output().unwrap();
    let listed = combined(&runs);
    assert!(
        listed
            .lines()
            .any(|l| l.contains(&id) && l.contains("unfinished")),
        "{listed}"
    );
    let blocked = env
        .upshift_piped()
        .args(harness::run_args("premium-2", &[]))
        .output()
        .unwrap();
    assert_eq!(blocked.status.code(), Some(3), "{}", combined(&blocked));
    assert!(combined(&blocked).contains(&id), "{}", combined(&blocked));

    let out = env.resume();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("torn"), "resume says it recovered: {err}");
    let copy = path.with_extension("jsonl.torn");
    assert_eq!(std::fs::read(&copy).unwrap(), torn, "the original is kept");
    let recs = records(&env, &id);
    assert!(recs.len() > k, "{recs:?}");
    let finished = recs
        .iter()
        .filter(|r| matches!(r, Record::Finished { .. }))
        .count();
    assert_eq!(finished, 1);
    assert_eq!(web(&env).await, 2);
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_or_unreadable_journal_is_listed_and_blocks_the_app() {
    let env = Env::start(Duration::from_millis(300)).await;
    let k = after_scale_down(&env);
    let (id, path) = crashed_run(&env, k).await;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"garbage appended by someone\n");
    std::fs::write(&path, &bytes).unwrap();
    let shown = path.display().to_string();

    // Garbage, then a journal that cannot be read at all (a directory in its place).
    for case in ["garbage", "unreadable"] {
        if case == "unreadable" {
            std::fs::rename(&path, path.with_extension("moved")).unwrap();
            std::fs::create_dir(&path).unwrap();
        }
        let runs = env.upshift_piped().arg("runs").output().unwrap();
        let listed = combined(&runs);
        assert_eq!(runs.status.code(), Some(0), "{case}: {listed}");
        assert!(
            listed
                .lines()
                .any(|l| l.contains(&id) && l.contains("unreadable") && l.contains(&shown)),
            "{case}: {listed}"
        );

        let resumed = env.resume();
        let err = stderr(&resumed);
        assert_eq!(resumed.status.code(), Some(4), "{case}: {err}");
        assert!(err.contains(&shown), "{case}: {err}");
        assert!(!err.contains("no unfinished run"), "{case}: {err}");

        let blocked = env
            .upshift_piped()
            .args(harness::run_args("premium-2", &[]))
            .output()
            .unwrap();
        let text = combined(&blocked);
        assert_eq!(blocked.status.code(), Some(3), "{case}: {text}");
        assert!(
            text.contains(&id) && text.contains(&shown),
            "{case}: {text}"
        );
        // Nothing moved: the writers stay as the crashed run left them.
        assert_eq!(web(&env).await, 0, "{case}");
    }
    assert_eq!(
        std::fs::read(path.with_extension("moved")).unwrap(),
        bytes,
        "a corrupt journal is never rewritten"
    );
    env.sim.shutdown().await;
}

/// The to-do list after a journal failure holds only what is undone (the writers are back, the
/// old plan kept: nothing on the app), and the advice fits the error: a full disk (ENOSPC)
/// asks for space, a refusal (EPERM, as `chattr +i` gives even root) for write access.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_write_failure_mid_run_still_restores_the_app_and_ends_needs_attention() {
    for (errno, error, advice, not) in [
        (
            "28",
            "No space left on device",
            "free space under",
            "write access",
        ),
        (
            "1",
            "Operation not permitted",
            "write access to",
            "free space",
        ),
    ] {
        let env = Env::start(Duration::from_millis(300)).await;
        let k = after_scale_down(&env);
        let before = env.plan_of(MAIN).await;
        // Every append from record k+1 on fails: the writers are stopped by then.
        let out = env
            .upshift_piped()
            .args(harness::run_args("premium-1", &[]))
            .env("UPSHIFT_FAIL_JOURNAL_AFTER", k.to_string())
            .env("UPSHIFT_FAIL_JOURNAL_ERRNO", errno)
            .output()
            .unwrap();
        let text = combined(&out);
        assert_eq!(
            out.status.code(),
            Some(4),
            "never 1 when the journal failed: {text}"
        );
        assert!(text.contains("could not be written"), "{text}");
        assert!(text.contains("needs attention"), "{text}");
        assert!(text.contains(error), "names the error: {text}");
        assert!(
            text.contains(advice) && !text.contains(not),
            "{errno}: {text}"
        );
        assert!(text.contains("aside"), "{text}");
        // The compensations ran from memory: the app is back, on its old plan, and the list
        // does not ask for what is done.
        assert_eq!(web(&env).await, 2, "{text}");
        assert_eq!(env.plan_of(MAIN).await, before);
        assert!(!text.contains("heroku ps:scale"), "{text}");
        assert!(!text.contains("upshift diff"), "{text}");
        // The journal stops where the write failed, like a crash, with no gap after it.
        let id = env.state().run_ids().unwrap().pop().expect("a run");
        let recs = records(&env, &id);
        assert_eq!(recs.len(), k, "{recs:?}");
        assert!(!recs.iter().any(|r| matches!(r, Record::Finished { .. })));
        env.sim.shutdown().await;
    }
}

/// `resume` and `rollback` of a run that already finished do nothing and say so, with the
/// journal's summary: its keys verified and its total up to its `Finished` record (not a total
/// that grows with the clock and 0 keys); `rollback` says nothing was rolled back and how to
/// go back. The exit code stays the run's (0 for a success).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_and_rollback_of_a_finished_run_say_so_with_the_journaled_summary() {
    let env = Env::start(Duration::from_millis(300)).await;
    let out = env
        .upshift_piped()
        .args(harness::run_args("premium-1", &[]))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", combined(&out));
    let id = env.state().run_ids().unwrap().pop().expect("a run");
    let path = env.journal_path(&id);
    let journal_bytes = std::fs::read(&path).unwrap();
    let entries = journal::read::<Record>(&path).unwrap();
    let keys = entries
        .iter()
        .find_map(|e| match e.record {
            Record::Verified { keys, .. } => Some(keys),
            _ => None,
        })
        .expect("a verify record");
    assert!(keys > 0);
    let finished = entries
        .iter()
        .find(|e| matches!(e.record, Record::Finished { .. }))
        .expect("finished");
    let total = u64::try_from(finished.at_ms - entries[0].at_ms).unwrap();
    // Later, so that a total measured to now would show.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = |verb: &str, json: bool| {
        let mut cmd = env.upshift_piped();
        cmd.args([verb, &id, "--confirm", APP]);
        if json {
            cmd.arg("--json");
        }
        cmd.output().unwrap()
    };
    let resumed = again("resume", true);
    assert_eq!(resumed.status.code(), Some(0), "{}", combined(&resumed));
    let doc: serde_json::Value = serde_json::from_slice(&resumed.stdout).expect("JSON");
    let doc = doc.get("run").unwrap_or(&doc);
    assert_eq!(doc["duration_ms"], total, "{doc}");
    let main = doc["addons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["label"] == MAIN.to_uppercase())
        .expect("the main add-on");
    assert_eq!(main["keys_verified"], keys, "{doc}");
    assert!(
        doc["message"].as_str().is_some_and(|m| m
            .contains(&format!("run {id} already finished (succeeded at"))
            && m.contains("nothing to do")),
        "{doc}"
    );

    let resumed = combined(&again("resume", false));
    assert!(
        resumed.contains("already finished (succeeded at"),
        "{resumed}"
    );
    assert!(resumed.contains("nothing to do"), "{resumed}");
    assert!(!resumed.contains(" 0 keys"), "{resumed}");

    let rolled = again("rollback", false);
    let text = combined(&rolled);
    assert_eq!(rolled.status.code(), Some(0), "{text}");
    assert!(text.contains("nothing was rolled back"), "{text}");
    assert!(
        text.contains(&format!("upshift run -a {APP} --change {MAIN}=premium-0")),
        "{text}"
    );
    // Nothing was done: the plan stays, the journal is as the run left it.
    assert_eq!(env.plan_of(MAIN).await, "premium-1");
    assert_eq!(std::fs::read(&path).unwrap(), journal_bytes);
    env.sim.shutdown().await;
}
