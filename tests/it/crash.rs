//! Crash anywhere: the run is killed at every journal point of a successful run (a failpoint
//! compiled only into test builds aborts the process right after the Nth fsync'd record), and
//! `upshift resume` must end consistent: formation restored, plan old or new and verified, the
//! journal closed. Plus real `kill -9`s from outside at random moments.
//!
//! Needs `--features failpoints` (the README's test command passes it).
#![cfg(feature = "failpoints")]

use crate::common;
use crate::harness;

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::matrix::Moment;
use harness::{APP, Env, MAIN};
use upshift::engine::Outcome;
use upshift::journal;
use upshift::runner::record::Record;
use upshift::sim::{Profile, SimulatorExt};

fn latest_journal(env: &Env) -> (String, Vec<Record>) {
    env.latest_journal()
}

async fn assert_consistent(env: &Env, case: &str, before_plan: &str, target: &str) {
    let (id, records) = latest_journal(env);
    let outcome = records.iter().find_map(|r| match r {
        Record::Finished { outcome, .. } => Some(*outcome),
        _ => None,
    });
    assert!(
        matches!(
            outcome,
            Some(Outcome::Succeeded | Outcome::RolledBack | Outcome::KeptNewPlan)
        ),
        "{case}: run {id} ended {outcome:?}"
    );
    let f = env.formation().await;
    assert!(
        f.iter()
            .any(|(t, q, s)| t == "web" && *q == 2 && s == "standard-1X"),
        "{case}: formation not restored: {f:?}"
    );
    let plan = env.plan_of(MAIN).await;
    assert!(plan == before_plan || plan == target, "{case}: plan {plan}");
    if plan == target {
        // The plan changed: the data must have been verified equal (or repaired) after it.
        let verified = records.iter().rev().find_map(|r| match r {
            Record::Verified {
                differences,
                repaired,
                ..
            } => Some((*differences, *repaired)),
            _ => None,
        });
        let (differences, repaired) =
            verified.unwrap_or_else(|| panic!("{case}: changed without verify"));
        assert_eq!(differences, repaired, "{case}");
    }
}

/// The journal points are shared out among shards, each with its own simulator and state
/// directory, so they run side by side: most of a case is waiting on the simulator, and one
/// long sequential test was the suite's tail.
const SHARDS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_a_crash_at_every_journal_point_shard_0() {
    crash_at_every_journal_point(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_a_crash_at_every_journal_point_shard_1() {
    crash_at_every_journal_point(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_a_crash_at_every_journal_point_shard_2() {
    crash_at_every_journal_point(2).await;
}

/// Crashes a run at every journal point `k` with `k % SHARDS == shard`, resumes it, and checks
/// the end state; shard 0 also rolls back a run crashed past the point of no return.
async fn crash_at_every_journal_point(shard: usize) {
    let env = Env::start_edited(Duration::from_millis(300), harness::small_seeds).await;
    // A clean run tells how many journal points a successful run has.
    let target = env.next_target().await;
    let out = env
        .upshift_piped()
        .args(harness::run_args(target, &[]))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, records) = latest_journal(&env);
    let points = records.len();
    assert!(points > 20, "only {points} journal points");
    let after_plan_change = 1 + records
        .iter()
        .position(|r| matches!(r, Record::Effect { what, .. } if what.starts_with("plan change")))
        .expect("a plan change effect");
    for k in (1..points).filter(|k| k % SHARDS == shard) {
        crash_and_resume(&env, k, &format!("point {k}")).await;
    }
    if shard != 0 {
        env.sim.shutdown().await;
        return;
    }
    // `upshift rollback` after a crash past the point of no return: the plan change cannot be
    // undone on the platform, so the add-on settles, its data is verified, the app comes back.
    let before = env.plan_of(MAIN).await;
    let target = env.next_target().await;
    env.crash_at(
        &harness::run_args(target, &[]),
        after_plan_change,
        "rollback",
    );
    let rolled = env
        .upshift_piped()
        .args(["rollback", "--confirm", APP])
        .output()
        .unwrap();
    // Past the point of no return the plan stays: exit 6, said as such, not "rolled back".
    let stderr = String::from_utf8_lossy(&rolled.stderr);
    assert_eq!(rolled.status.code(), Some(6), "rollback: {stderr}");
    let out = String::from_utf8_lossy(&rolled.stdout).into_owned() + &stderr;
    assert!(out.contains("kept-new-plan"), "{out}");
    assert!(out.contains(&format!("stays on {target}")), "{out}");
    assert!(
        out.contains(&format!("={before}")),
        "the reverse command: {out}"
    );
    assert_consistent(&env, "rollback after the plan change", &before, target).await;
    env.sim.shutdown().await;
}

/// Crash anywhere in a rollback: a run whose provisioning fails rolls back, and is crashed
/// right after each journal point from its first compensation on (a compensation started but
/// not ended is the case a resume must run again, not refuse); `resume` must then finish it
/// with the formation restored and the plan as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_a_crash_at_every_journal_point_of_a_rollback() {
    let env = Env::start_edited(Duration::from_millis(300), harness::small_seeds).await;
    let fail = || {
        env.inject(upshift::sim::Fault::FailProvisioning {
            addon: Some(MAIN.into()),
            message: Some("simulated provisioning failure".into()),
        });
    };
    fail();
    let target = env.next_target().await;
    let out = env
        .upshift_piped()
        .args(harness::run_args(target, &[]))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, records) = latest_journal(&env);
    let first = records
        .iter()
        .position(|r| {
            matches!(
                r,
                Record::Engine {
                    event: upshift::engine::Event::CompensationStarted { .. }
                }
            )
        })
        .expect("the failed run compensated");
    // Every point from the first compensation's start to the last record before `finished`.
    for k in first + 1..records.len() {
        let case = format!("rollback point {k}");
        let before = env.plan_of(MAIN).await;
        fail();
        env.crash_at(&harness::run_args(target, &[]), k, &case);
        let resumed = env.resume();
        assert!(
            matches!(resumed.status.code(), Some(0 | 1)),
            "{case}: resume exited {:?}: {}",
            resumed.status.code(),
            String::from_utf8_lossy(&resumed.stderr)
        );
        assert_consistent(&env, &case, &before, target).await;
        assert_eq!(env.plan_of(MAIN).await, before, "{case}");
    }
    env.sim.shutdown().await;
}

/// Crashes a run right after its `k`th journal record, resumes it, and checks the end state.
async fn crash_and_resume(env: &Env, k: usize, case: &str) {
    let before = env.plan_of(MAIN).await;
    let target = env.next_target().await;
    env.crash_at(&harness::run_args(target, &[]), k, case);
    let resumed = env.resume();
    let code = resumed.status.code();
    assert!(
        matches!(code, Some(0 | 1 | 6)),
        "{case}: resume exited {code:?}: {}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_consistent(env, case, &before, target).await;
}

/// The profile matrix's crash part (see `matrix`): the journal of the run that just succeeded
/// in `env` tells where each of `moments` is; the run is then crashed right after each and
/// resumed, and at the end every write the platform acknowledged to main is still there (the
/// test's own reads, across all the plan changes).
pub(crate) async fn crash_at_moments(env: &Env, profile: Profile, moments: &[Moment]) {
    let (_, records) = latest_journal(env);
    let effect = |r: &Record, prefix: &str| matches!(r, Record::Effect { what, .. } if what.starts_with(prefix));
    for &moment in moments {
        let found = |r: &Record| match moment {
            Moment::Drain => matches!(r, Record::OldServer { .. }),
            Moment::PlanChange => effect(r, "plan change"),
        };
        let k = 1 + records
            .iter()
            .position(found)
            .unwrap_or_else(|| panic!("{profile}: no {moment:?} record in {records:?}"));
        crash_and_resume(
            env,
            k,
            &format!("{profile}: crash after {moment:?} (point {k})"),
        )
        .await;
    }
    let acked = env.acknowledged_writes(MAIN).await;
    assert!(!acked.is_empty(), "{profile}: the dynos wrote");
    assert_eq!(
        env.missing_keys(MAIN, &acked).await,
        Vec::<String>::new(),
        "{profile}: acknowledged writes lost"
    );
}

/// The records of the only journal in the state dir so far, tolerating a line being written.
fn journal_so_far(env: &Env) -> Vec<Record> {
    env.journal_so_far()
}

fn finished(records: &[Record]) -> bool {
    records.iter().any(|r| matches!(r, Record::Finished { .. }))
}

/// `kill -9` from outside at chosen moments of a run: each kill waits until the journal shows
/// the run reached that moment, so every case lands mid-run (a kill before the run began or
/// after it finished would prove nothing), and the test says so if one does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_kill_9_from_outside() {
    type Moment = (&'static str, fn(&Record) -> bool);
    let moments: [Moment; 5] = [
        ("after capture, before any write", |r| {
            matches!(r, Record::Captured { .. })
        }),
        ("with the writers stopped", |r| {
            matches!(r, Record::Downtime { started: true })
        }),
        ("after the snapshot", |r| {
            matches!(r, Record::Snapshot { .. })
        }),
        (
            "while provisioning",
            |r| matches!(r, Record::Effect { what, .. } if what.starts_with("plan change")),
        ),
        ("after the verify", |r| matches!(r, Record::Verified { .. })),
    ];
    let env = Env::start(Duration::from_millis(600)).await;
    for (i, (moment, reached)) in moments.iter().enumerate() {
        let before = env.plan_of(MAIN).await;
        let target = env.next_target().await;
        let runs_before = env.state().run_ids().unwrap().len();
        let mut child = env
            .upshift_piped()
            .args(harness::run_args(target, &[]))
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let records = if env.state().run_ids().unwrap().len() > runs_before {
                journal_so_far(&env)
            } else {
                Vec::new()
            };
            if records.iter().any(reached) {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "{moment}: the run ended before the kill: {records:?}"
            );
            assert!(
                std::time::Instant::now() < deadline,
                "{moment}: never reached"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        assert_eq!(env.state().run_ids().unwrap().len(), runs_before + 1);
        let records = journal_so_far(&env);
        assert!(
            !finished(&records),
            "{moment}: the kill landed after the end"
        );
        let resumed = env.resume();
        let code = resumed.status.code();
        assert!(
            matches!(code, Some(0 | 1 | 6)),
            "kill {i} {moment}: resume exited {code:?}: {}",
            String::from_utf8_lossy(&resumed.stderr)
        );
        assert_consistent(&env, &format!("kill {moment}"), &before, target).await;
    }
    env.sim.shutdown().await;
}

/// A crash after the platform accepted the plan change and before the journal recorded it: the
/// journal is behind the platform. Resume must find the change on the platform (not send it
/// twice, not take the add-on for untouched), wait for it, verify, and bring the app back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_plan_patch_and_its_record_resumes_onto_verified_data() {
    let env = Env::start(Duration::from_millis(300)).await;
    let before = env.plan_of(MAIN).await;
    let target = env.next_target().await;
    let crashed = env
        .upshift_piped()
        .args(harness::run_args(target, &[]))
        .env("UPSHIFT_FAILPOINT_AFTER_PATCH", "1")
        .output()
        .unwrap();
    assert!(!crashed.status.success());
    let records = journal_so_far(&env);
    assert!(
        !records
            .iter()
            .any(|r| matches!(r, Record::Effect { what, .. } if what.starts_with("plan change"))),
        "the crash came before the record"
    );
    let patches = |env: &Env| {
        env.writes()
            .iter()
            .filter(|w| w.starts_with("PATCH /apps/") && w.contains("/addons/"))
            .count()
    };
    let sent = patches(&env);
    assert_eq!(sent, 1, "{:?}", env.writes());
    // The platform has the change although the journal does not.
    let f = env.formation().await;
    assert!(f.iter().any(|(t, q, _)| t == "web" && *q == 0), "{f:?}");
    let resumed = env.resume();
    assert!(
        matches!(resumed.status.code(), Some(0 | 1 | 6)),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_consistent(&env, "crash after the PATCH", &before, target).await;
    assert_eq!(env.plan_of(MAIN).await, target, "the change had landed");
    assert_eq!(patches(&env), sent, "the PATCH was not sent again");
    env.sim.shutdown().await;
}

/// A second SIGINT stops at once, whatever the step: with 400,000 keys being snapshotted, the
/// first SIGINT asks for a safe stop, the second (0.3 s later) must end the process within a
/// second, exit 130, and leave a journal that `upshift resume` finishes onto the same data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigint_mid_snapshot_stops_within_a_second_and_resume_finishes() {
    // A slow disk (the failpoint below) keeps the snapshot streaming for seconds, so the
    // interrupts land mid-stream without seeding hundreds of thousands of keys.
    const KEYS: u32 = 20_000;
    const APP: &str = "shop";
    const ADDON: &str = "shop_redis";
    common::require_redis();
    let seeding = std::time::Instant::now();
    let sim = upshift::sim::Simulator::start(upshift::sim::SimConfig {
        scenario: common::shop(2, "premium-3", KEYS, 5),
        provision: Duration::from_millis(300),
        dyno_start: Some(Duration::from_millis(50)),
        // No dyno writes: the data must be the same before and after, key for key.
        writes_per_second: Some(0.0),
        log_tail: Duration::from_secs(2),
        ..upshift::sim::SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    eprintln!("seeded {KEYS} keys in {:?}", seeding.elapsed());
    let before = common::snapshot(&sim.redis_url(ADDON)).await;
    assert!(before.len() >= KEYS as usize - 1, "{} keys", before.len());
    let state = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let cfg = sim.client_config();
    let upshift = |log: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_upshift"));
        cmd.env("HEROKU_API_URL", cfg.api_url.as_str())
            .env("HEROKU_DATA_URL", cfg.data_url.as_str())
            .env("HEROKU_API_KEY", sim.api_key())
            .env("UPSHIFT_STATE_DIR", state.path())
            .env_remove("UPSHIFT_FAILPOINT")
            .env("UPSHIFT_FAILPOINT_SLOW_DISK_US", "250")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // A file, not a pipe nobody reads: a full pipe would stall the child.
            .stderr(std::fs::File::create(logs.path().join(log)).unwrap());
        cmd
    };
    let log = |name: &str| std::fs::read_to_string(logs.path().join(name)).unwrap_or_default();
    let state_dir = upshift::journal::StateDir::at(state.path());
    let snapshot_step = upshift::playbook::Playbook::builtin()
        .actions()
        .iter()
        .position(|a| *a == upshift::engine::Action::Snapshot)
        .expect("the built-in playbook snapshots");

    let mut child = upshift("run.log")
        .args([
            "run",
            "-a",
            APP,
            "--change",
            &format!("{ADDON}=premium-4"),
            "--confirm",
            APP,
            "--watch",
            "0",
        ])
        .spawn()
        .unwrap();
    // Wait until the snapshot is streaming: its step started and its partial file exists.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let run_id = loop {
        if let Some(id) = state_dir.run_ids().unwrap().pop() {
            let dir = state_dir.run_dir(&id);
            let started = journal::read_prefix::<Record>(&dir.join(journal::JOURNAL_FILE))
                .0
                .iter()
                .any(|e| {
                    matches!(
                        e.record,
                        Record::Engine {
                            event: upshift::engine::Event::StepStarted { step }
                        } if step == snapshot_step
                    )
                });
            let streaming = std::fs::read_dir(&dir).is_ok_and(|entries| {
                entries
                    .filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().ends_with(".partial"))
            });
            if started && streaming {
                break id;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the snapshot: {}",
            log("run.log")
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the snapshot never started: {}",
            log("run.log")
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let sigint = |pid: u32| {
        let status = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -INT {pid}");
    };
    sigint(child.id());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first SIGINT must not end the run at once: {}",
        log("run.log")
    );
    sigint(child.id());
    let second = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if second.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!(
                "still running 10 s after the second SIGINT: {}",
                log("run.log")
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let stopped_in = second.elapsed();
    eprintln!("stopped {stopped_in:?} after the second SIGINT");
    assert!(
        stopped_in < Duration::from_secs(1),
        "the second SIGINT took {stopped_in:?}: {}",
        log("run.log")
    );
    assert_eq!(status.code(), Some(130), "{}", log("run.log"));
    let path = state_dir.run_dir(&run_id).join(journal::JOURNAL_FILE);
    let records: Vec<Record> = journal::read::<Record>(&path)
        .unwrap()
        .into_iter()
        .map(|e| e.record)
        .collect();
    assert!(
        !records
            .iter()
            .any(|r| matches!(r, Record::Snapshot { .. } | Record::Finished { .. })),
        "the snapshot must have been cut short, the run left unfinished: {records:?}"
    );
    assert!(
        !std::fs::read_dir(state_dir.run_dir(&run_id))
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().ends_with(".partial")),
        "the cancelled snapshot's partial file is removed"
    );

    let resumed = upshift("resume.log")
        .args(["resume", "--confirm", APP])
        .status()
        .unwrap();
    assert!(
        matches!(resumed.code(), Some(0 | 1)),
        "resume exited {:?}: {}",
        resumed.code(),
        log("resume.log")
    );
    let records: Vec<Record> = journal::read::<Record>(&path)
        .unwrap()
        .into_iter()
        .map(|e| e.record)
        .collect();
    assert!(
        records.iter().any(|r| matches!(r, Record::Finished { .. })),
        "resume closed the journal: {}",
        log("resume.log")
    );
    let formation = common::client(&sim).formation(APP).await.unwrap();
    assert!(
        formation
            .iter()
            .any(|f| f.process_type == "web" && f.quantity == 2),
        "formation restored: {formation:?}"
    );
    let after = common::snapshot(&sim.redis_url(ADDON)).await;
    assert_eq!(before.len(), after.len(), "key count");
    assert!(
        before == after,
        "the data changed across the interrupted run"
    );
    sim.shutdown().await;
}
