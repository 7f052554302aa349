//! A background save cannot blind the write check. Redis' `rdb_changes_since_last_save` drops
//! to 0 at every save (BGSAVE, or the `save` schedule Heroku Redis runs): a stray write after
//! the drain followed by a save leaves the counter where a quiet server would. Each test writes
//! to the drained server at a journal point past the drain, forces a save (and a `CONFIG
//! RESETSTAT`), resumes, and judges the end by its own reads: the run stopped before the point
//! of no return, the write is on the add-on the app uses, the formation is back. And the other
//! way round: saves during a run with no stray writer do not stop it.
#![cfg(feature = "failpoints")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use crate::common;
use crate::harness::{self, APP, Env, MAIN};
use upshift::engine::{Event, Outcome};
use upshift::runner::record::Record;

/// The journal point (1-based, as `UPSHIFT_FAILPOINT` counts) right after step `step` succeeded.
fn after_step(records: &[Record], step: usize) -> usize {
    records
        .iter()
        .position(|r| {
            matches!(r, Record::Engine { event: Event::StepSucceeded { step: s } } if *s == step)
        })
        .unwrap_or_else(|| panic!("step {step} succeeded in the clean run"))
        + 1
}

/// The step that wrote the last record matching `reached`, in a clean run's journal.
fn step_of(records: &[Record], reached: impl Fn(&Record) -> bool) -> usize {
    let at = records
        .iter()
        .rposition(reached)
        .expect("record in the run");
    records[at..]
        .iter()
        .find_map(|r| match r {
            Record::Engine {
                event: Event::StepSucceeded { step },
            } => Some(*step),
            _ => None,
        })
        .expect("the step succeeded")
}

/// One INFO field of the server behind `con`.
async fn info_field(con: &mut redis::aio::MultiplexedConnection, name: &str) -> u64 {
    let text: String = redis::cmd("INFO").query_async(con).await.unwrap();
    text.lines()
        .find_map(|l| l.trim_end().strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("INFO shows {name}"))
        .parse()
        .unwrap()
}

/// Starts a BGSAVE and waits for it to end (retrying while another one runs).
async fn background_save(con: &mut redis::aio::MultiplexedConnection) {
    let saves = info_field(con, "rdb_saves").await;
    for _ in 0..400 {
        let started: redis::RedisResult<String> = redis::cmd("BGSAVE").query_async(con).await;
        if started.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(info_field(con, "rdb_saves").await > saves, "BGSAVE started");
    for _ in 0..800 {
        if info_field(con, "rdb_bgsave_in_progress").await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("BGSAVE did not end");
}

/// How the evidence of the stray write is wiped after it.
#[derive(Debug, Clone, Copy)]
enum Wipe {
    /// A background save: `rdb_changes_since_last_save` back to 0.
    Save,
    /// A save, then `CONFIG RESETSTAT` (`rdb_saves` and the per-command counts back to 0).
    SaveAndResetStats,
}

impl Wipe {
    /// What the resumed run must say: the write itself where the command counts survived,
    /// that nothing can prove the server quiet where they were reset.
    fn reason(self) -> &'static str {
        match self {
            Self::Save => "(write commands set +1)",
            Self::SaveAndResetStats => "cannot prove that nothing wrote",
        }
    }
}

/// A stray write on `url`'s server, then `wipe`; checks that the write counter was blinded
/// (else the test would prove nothing).
async fn stray_write(url: &str, key: &str, wipe: Wipe) {
    let mut con = common::redis(url).await;
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg("acknowledged")
        .query_async(&mut con)
        .await
        .unwrap();
    background_save(&mut con).await;
    if let Wipe::SaveAndResetStats = wipe {
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut con)
            .await
            .unwrap();
    }
    assert_eq!(
        info_field(&mut con, "rdb_changes_since_last_save").await,
        0,
        "{wipe:?}: the save reset the write counter"
    );
}

/// The resumed run rolled back for the stray write, the app stays on the add-on that holds it,
/// on its plan, and the writers are back.
async fn assert_stopped_for_the_write(
    env: &Env,
    (case, reason): (&str, &str),
    old: &str,
    plan: &str,
    key: &str,
) {
    let resumed = env.resume();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(1), "{case}: {stderr}");
    let (_, records) = env.latest_journal();
    assert!(
        records.iter().any(|r| matches!(
            r,
            Record::Finished {
                outcome: Outcome::RolledBack,
                ..
            }
        )),
        "{case}: {records:?}"
    );
    assert!(
        stderr.contains(reason),
        "{case}: the reason ({reason}) is not told: {stderr}"
    );
    let main = env.client().addon(APP, MAIN).await.unwrap().name;
    assert_eq!(main, old, "{case}: the app was moved");
    assert_eq!(env.plan_of(MAIN).await, plan, "{case}: the plan changed");
    let mut con = common::redis(&env.sim.redis_url(&main)).await;
    let value: Option<String> = redis::cmd("GET")
        .arg(key)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(
        value.as_deref(),
        Some("acknowledged"),
        "{case}: write lost: {stderr}"
    );
    let f = env.formation().await;
    assert!(
        f.iter().any(|(t, q, _)| t == "web" && *q == 2),
        "{case}: formation not restored: {f:?}"
    );
}

/// In place: a crash after the snapshot, a stray write and a save before `resume`. The check
/// before the plan change must see the write although the counter reads 0 again; without it
/// the plan change copies a server the snapshot does not match, and verify "repairs" the write
/// away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_a_write_hidden_by_a_save_stops_the_resumed_run() {
    let env = Env::start(Duration::from_millis(300)).await;
    let clean = env
        .upshift_piped()
        .args(harness::run_args("premium-1", &[]))
        .output()
        .unwrap();
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    let (_, records) = env.latest_journal();
    let snapshot = step_of(&records, |r| matches!(r, Record::Snapshot { .. }));
    let k = after_step(&records, snapshot);
    for wipe in [Wipe::Save, Wipe::SaveAndResetStats] {
        let case = format!("{wipe:?}");
        let before = env.plan_of(MAIN).await;
        let target = env.next_target().await;
        env.crash_at(&harness::run_args(target, &[]), k, &case);
        let old = env.client().addon(APP, MAIN).await.unwrap().name;
        let key = format!("late:{case}");
        stray_write(&env.sim.redis_url(&old), &key, wipe).await;
        assert_stopped_for_the_write(&env, (&case, wipe.reason()), &old, &before, &key).await;
    }
    env.sim.shutdown().await;
}

/// Live swap: a crash after the catch-up, a stray write on the old add-on and a save before
/// `resume`. No copy would carry that write: the move must not happen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_swap_a_write_hidden_by_a_save_stops_the_resumed_move() {
    let env = Env::roomy(Duration::from_millis(300)).await;
    let args =
        |target| harness::run_args(target, &["--strategy", "live-swap", "--retire-old", "now"]);
    let clean = env
        .upshift_piped()
        .args(args("premium-1"))
        .output()
        .unwrap();
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    let (_, records) = env.latest_journal();
    // Step 7 is the catch-up (see crash_swap).
    let k = after_step(&records, 7);
    for wipe in [Wipe::Save, Wipe::SaveAndResetStats] {
        let case = format!("{wipe:?}");
        let before = env.plan_of(MAIN).await;
        let target = env.next_target().await;
        env.crash_at(&args(target), k, &case);
        let old = env.client().addon(APP, MAIN).await.unwrap().name;
        let key = format!("late:{case}");
        stray_write(&env.sim.redis_url(&old), &key, wipe).await;
        assert_stopped_for_the_write(&env, (&case, wipe.reason()), &old, &before, &key).await;
    }
    env.sim.shutdown().await;
}

/// Background saves all through a run with no stray writer (as Heroku's save schedule does)
/// are not writes: the run succeeds, in place and as a live swap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_saves_without_a_writer_do_not_stop_a_run() {
    for live in [false, true] {
        // Room for the saver's connection (the stock Enketo scenario fills premium-0).
        let env = Env::roomy(Duration::from_millis(1500)).await;
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicU32::new(0));
        // The server MAIN has at the start: the one drained and checked.
        let sim_url = env.sim.redis_url(MAIN);
        let bgsaves = {
            let (stop, started) = (stop.clone(), started.clone());
            tokio::spawn(async move {
                let mut con = common::redis(&sim_url).await;
                while !stop.load(Ordering::SeqCst) {
                    let r: redis::RedisResult<String> =
                        redis::cmd("BGSAVE").query_async(&mut con).await;
                    if r.is_ok() {
                        started.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        let extra: &[&str] = if live {
            &["--strategy", "live-swap"]
        } else {
            &[]
        };
        let run = env
            .upshift_piped()
            .args(harness::run_args("premium-1", extra))
            .output()
            .unwrap();
        stop.store(true, Ordering::SeqCst);
        let _ = bgsaves.await;
        assert!(
            run.status.success(),
            "live {live}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert_eq!(env.plan_of(MAIN).await, "premium-1", "live {live}");
        let saved = started.load(Ordering::SeqCst);
        eprintln!("live {live}: {saved} background saves during the run");
        assert!(saved >= 2, "live {live}: only {saved} saves during the run");
        env.sim.shutdown().await;
    }
}
