//! Crash anywhere in a live swap: the `upshift` binary runs `--strategy live-swap` and is
//! aborted right after each journal record of a successful run (the failpoint), then `upshift
//! resume` must end consistent: the app's attachment on exactly one add-on of the lineage, on
//! the old plan or the target, no temporary attachment and no orphaned add-on left, the writers
//! back, every acknowledged write on the add-on the app now uses, and the old add-on's
//! notification setting back. Judged by this file's own reads of the platform and of Redis.
#![cfg(feature = "failpoints")]

use crate::common;
use crate::harness;

use std::collections::BTreeSet;
use std::time::Duration;

use harness::{APP, CACHE, Env, MAIN};
use upshift::engine::Outcome;
use upshift::runner::record::Record;

/// A live swap of MAIN to `target`, the old add-on destroyed at the end (nothing left behind).
fn run_args(target: &str) -> Vec<String> {
    harness::run_args(target, &["--strategy", "live-swap", "--retire-old", "now"])
}

/// Every add-on that has served as MAIN: the first one and each run's new one.
struct Lineage {
    names: BTreeSet<String>,
}

impl Lineage {
    fn absorb(&mut self, env: &Env) {
        for id in env.state().run_ids().unwrap() {
            for r in env.journal(&id) {
                if let Record::NewAddon { new_addon, .. } = r {
                    self.names.insert(new_addon);
                }
            }
        }
    }
}

async fn assert_consistent(
    env: &Env,
    lineage: &mut Lineage,
    case: &str,
    before: &str,
    target: &str,
) {
    lineage.absorb(env);
    let (id, records) = env.latest_journal();
    let outcome = records.iter().find_map(|r| match r {
        Record::Finished { outcome, .. } => Some(*outcome),
        _ => None,
    });
    assert!(
        matches!(outcome, Some(Outcome::Succeeded | Outcome::RolledBack)),
        "{case}: run {id} ended {outcome:?}"
    );
    let f = env.formation().await;
    assert!(
        f.iter().any(|(t, q, _)| t == "web" && *q == 2),
        "{case}: formation not restored: {f:?}"
    );
    let client = env.client();
    let main = client.addon(APP, MAIN).await.expect("MAIN attached").name;
    assert!(
        lineage.names.contains(&main),
        "{case}: MAIN on a stranger {main}"
    );
    let plan = env.plan_of(MAIN).await;
    assert!(plan == before || plan == target, "{case}: plan {plan}");
    // Nothing left behind: only MAIN and CACHE exist, no temporary attachment.
    let live: Vec<String> = client
        .addons(APP)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.state.as_str() != "deprovisioned")
        .map(|a| a.name)
        .collect();
    let cache = client.addon(APP, CACHE).await.unwrap().name;
    assert_eq!(
        live.iter().filter(|n| **n != cache).collect::<Vec<_>>(),
        vec![&main],
        "{case}: add-ons left: {live:?}"
    );
    let vars = client.config_vars(APP).await.unwrap();
    let temp: Vec<&String> = vars
        .0
        .keys()
        .filter(|k| k.starts_with("UPSHIFT_"))
        .collect();
    assert!(
        temp.is_empty(),
        "{case}: temporary attachments left: {temp:?}"
    );
    // No acknowledged write to any add-on of the lineage is missing where the app now writes.
    let written = env.acknowledged_where(|a| lineage.names.contains(a));
    let missing = env.missing_keys(&main, &written).await;
    assert!(
        missing.is_empty(),
        "{case}: {} acknowledged writes lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let notify = client
        .redis_config(&main)
        .await
        .unwrap()
        .values()
        .notify_keyspace_events
        .unwrap_or_default();
    assert_eq!(
        notify, "",
        "{case}: notification setting of {main} not restored"
    );
}

const SHARDS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_swap_resumes_after_a_crash_at_every_journal_point_shard_0() {
    crash_at_every_journal_point(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_swap_resumes_after_a_crash_at_every_journal_point_shard_1() {
    crash_at_every_journal_point(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_swap_resumes_after_a_crash_at_every_journal_point_shard_2() {
    crash_at_every_journal_point(2).await;
}

async fn crash_at_every_journal_point(shard: usize) {
    let env = Env::roomy_edited(Duration::from_millis(300), harness::small_seeds).await;
    let first = env.client().addon(APP, MAIN).await.unwrap().name;
    let mut lineage = Lineage {
        names: BTreeSet::from([first]),
    };
    let before = env.plan_of(MAIN).await;
    let target = env.next_target().await;
    let out = env.upshift_piped().args(run_args(target)).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_consistent(&env, &mut lineage, "clean run", &before, target).await;
    let (_, records) = env.latest_journal();
    let points = records.len();
    assert!(points > 20, "only {points} journal points");
    for k in (1..points).filter(|k| k % SHARDS == shard) {
        let before = env.plan_of(MAIN).await;
        let target = env.next_target().await;
        env.crash_at(&run_args(target), k, &format!("point {k}"));
        let resumed = env.resume();
        let code = resumed.status.code();
        assert!(
            matches!(code, Some(0 | 1)),
            "point {k}: resume exited {code:?}: {}",
            String::from_utf8_lossy(&resumed.stderr)
        );
        assert_consistent(&env, &mut lineage, &format!("point {k}"), &before, target).await;
    }
    if shard == 0 {
        // `upshift rollback` after a crash with the new add-on filled: the app never noticed;
        // the new add-on goes.
        let before = env.plan_of(MAIN).await;
        let target = env.next_target().await;
        let copied = after_step(&records, 3);
        env.crash_at(&run_args(target), copied, "rollback");
        let rolled = env
            .upshift_piped()
            .args(["rollback", "--confirm", APP])
            .output()
            .unwrap();
        assert_eq!(
            rolled.status.code(),
            Some(1),
            "rollback: {}",
            String::from_utf8_lossy(&rolled.stderr)
        );
        assert_consistent(
            &env,
            &mut lineage,
            "rollback after the copy",
            &before,
            target,
        )
        .await;
        assert_eq!(env.plan_of(MAIN).await, before);
    }
    env.sim.shutdown().await;
}

/// The journal point right after step `step` succeeded, in a run's records (1-based, as
/// `UPSHIFT_FAILPOINT` counts).
fn after_step(records: &[Record], step: usize) -> usize {
    records
        .iter()
        .position(|r| {
            matches!(
                r,
                Record::Engine {
                    event: upshift::engine::Event::StepSucceeded { step: s }
                } if *s == step
            )
        })
        .unwrap_or_else(|| panic!("step {step} succeeded in the clean run"))
        + 1
}

/// A crash after the drain (step 6, wait-drained) or after the catch-up (step 7), then a write
/// to the old add-on before `upshift resume`: the resumed run must find it through the write
/// counter journaled at the drain and move nothing, so the app stays on the add-on that holds
/// it, and say why. After the catch-up no copy would carry that write: without the journaled
/// mark the resumed move hands the app a server without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_after_a_crash_past_the_drain_stops_the_resumed_swap() {
    let env = Env::roomy_edited(Duration::from_millis(300), harness::small_seeds).await;
    let clean = env
        .upshift_piped()
        .args(run_args("premium-1"))
        .output()
        .unwrap();
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    let (_, records) = env.latest_journal();
    for (step, when) in [(7, "since the catch-up"), (6, "before the catch-up")] {
        let k = after_step(&records, step);
        let before = env.plan_of(MAIN).await;
        let target = env.next_target().await;
        env.crash_at(&run_args(target), k, &format!("step {step}"));
        let (_, so_far) = env.latest_journal();
        assert!(
            matches!(
                so_far.last(),
                Some(Record::Engine {
                    event: upshift::engine::Event::StepSucceeded { step: s }
                }) if *s == step
            ),
            "step {step}: crashed elsewhere: {:?}",
            so_far.last()
        );
        // The late write, acknowledged by the old server the app is still attached to.
        let old = env.client().addon(APP, MAIN).await.unwrap().name;
        let key = format!("late:after-step-{step}");
        let mut con = common::redis(&env.sim.redis_url(&old)).await;
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg("acknowledged")
            .query_async(&mut con)
            .await
            .unwrap();
        let resumed = env.resume();
        let stderr = String::from_utf8_lossy(&resumed.stderr);
        assert_eq!(resumed.status.code(), Some(1), "step {step}: {stderr}");
        let (_, records) = env.latest_journal();
        assert!(
            records.iter().any(|r| matches!(
                r,
                Record::Finished {
                    outcome: Outcome::RolledBack,
                    ..
                }
            )),
            "step {step}: {records:?}"
        );
        assert!(
            stderr.contains(&format!("was written to {when}")),
            "step {step}: the reason is not told: {stderr}"
        );
        // The app is on the add-on that holds the write, by this test's own reads.
        let main = env.client().addon(APP, MAIN).await.unwrap().name;
        assert_eq!(main, old, "step {step}: the app was moved");
        assert_eq!(env.plan_of(MAIN).await, before);
        let mut con = common::redis(&env.sim.redis_url(&main)).await;
        let value: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(value.as_deref(), Some("acknowledged"), "step {step}");
        let f = env.formation().await;
        assert!(
            f.iter().any(|(t, q, _)| t == "web" && *q == 2),
            "step {step}: formation not restored: {f:?}"
        );
    }
    env.sim.shutdown().await;
}
