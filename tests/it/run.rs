//! End-to-end runs against the simulator with real redis-servers: every outcome ends with the
//! formation restored (or deliberately left stopped), the data equal, the journal closed.

use crate::common;
use crate::harness;

use std::time::Duration;

use harness::{CACHE, Env, MAIN, change, request, short_playbook};
use upshift::engine::Outcome;
use upshift::journal;
use upshift::plan::facts::DataPolicy;
use upshift::runner::record::Record;
use upshift::sim::Fault;

const WEB: (&str, u32, &str) = ("web", 2, "standard-1X");

pub(crate) async fn assert_formation_restored(env: &Env) {
    let f = env.formation().await;
    let web = f.iter().find(|(t, _, _)| t == "web").expect("web");
    assert_eq!((web.0.as_str(), web.1, web.2.as_str()), WEB, "{f:?}");
    let worker = f.iter().find(|(t, _, _)| t == "worker").expect("worker");
    assert_eq!(worker.1, 0, "{f:?}");
}

fn journal_outcome(env: &Env, run_id: &str) -> Option<Outcome> {
    env.outcomes(run_id).into_iter().next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn main_and_cache_change_in_one_downtime() {
    let env = Env::start(Duration::from_millis(800)).await;
    let mut cache = change(CACHE, "premium-1");
    cache.policy = DataPolicy::Cache;
    let req = request(vec![change(MAIN, "premium-1"), cache], None);
    let report = env.runner().run(&req).await.expect("run");
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    assert_eq!(env.plan_of(MAIN).await, "premium-1");
    assert_eq!(env.plan_of(CACHE).await, "premium-1");
    assert_formation_restored(&env).await;
    for a in &report.addons {
        assert!(a.keys_verified > 1000, "{a:?}");
        assert_eq!(a.differences, 0, "{a:?}");
    }
    assert_eq!(
        journal_outcome(&env, &report.run_id),
        Some(Outcome::Succeeded)
    );
    // One downtime: web went to 0 once and came back once.
    let downtime = env.sim.downtime("web").expect("web was stopped");
    assert!(downtime >= Duration::from_millis(800), "{downtime:?}");
    let plan_changes = env
        .writes()
        .into_iter()
        .filter(|w| w.starts_with("PATCH /apps/enketo-demo/addons/"))
        .count();
    assert_eq!(plan_changes, 2);
    let scales = env
        .writes()
        .into_iter()
        .filter(|w| w == "PATCH /apps/enketo-demo/formation")
        .count();
    assert_eq!(scales, 2, "{:?}", env.writes());
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_failure_rolls_back_and_restores_the_app() {
    let env = Env::start(Duration::from_millis(500)).await;
    env.inject(Fault::FailProvisioning {
        addon: None,
        message: Some("simulated provisioning failure".into()),
    });
    let req = request(vec![change(MAIN, "premium-1")], None);
    let report = env.runner().run(&req).await.expect("run");
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:#?}");
    assert_eq!(env.plan_of(MAIN).await, "premium-0");
    assert_formation_restored(&env).await;
    assert_eq!(
        journal_outcome(&env, &report.run_id),
        Some(Outcome::RolledBack)
    );
    assert_eq!(report.addons[0].differences, 0, "{report:#?}");
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_storms_are_ridden_out() {
    let env = Env::start(Duration::from_millis(500)).await;
    env.inject(Fault::Http {
        method: Some("GET".into()),
        path: "/apps/*/dynos".into(),
        status: 500,
        nth: 1,
        times: 2,
        retry_after: None,
    });
    env.inject(Fault::Http {
        method: Some("PATCH".into()),
        path: "/apps/*/formation".into(),
        status: 429,
        nth: 1,
        times: 2,
        retry_after: Some(1),
    });
    env.inject(Fault::Http {
        method: Some("PATCH".into()),
        path: "/apps/*/addons/*".into(),
        status: 503,
        nth: 1,
        times: 1,
        retry_after: None,
    });
    let req = request(vec![change(MAIN, "premium-1")], None);
    let report = env.runner().run(&req).await.expect("run");
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    assert_eq!(env.plan_of(MAIN).await, "premium-1");
    assert_formation_restored(&env).await;
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dyno_ignoring_scale_down_times_out_before_any_plan_change() {
    let env = Env::start(Duration::from_millis(500)).await;
    env.inject(Fault::IgnoreScaleDown {
        process_type: "web".into(),
        dynos: 1,
    });
    let pb = short_playbook("2s", "45m");
    let req = request(vec![change(MAIN, "premium-1")], Some(&pb));
    let report = env.runner().run(&req).await.expect("run");
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:#?}");
    assert_eq!(env.plan_of(MAIN).await, "premium-0");
    assert!(
        !env.writes().iter().any(|w| w.contains("/addons/")),
        "no plan change may be sent: {:?}",
        env.writes()
    );
    assert_formation_restored(&env).await;
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_lost_in_migration_are_named_and_repaired() {
    let env = Env::start(Duration::from_millis(500)).await;
    env.inject(Fault::LoseKeys {
        addon: Some(MAIN.into()),
        count: 10,
        prefix: None,
    });
    let req = request(vec![change(MAIN, "premium-1")], None);
    let report = env.runner().run(&req).await.expect("run");
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    let main = &report.addons[0];
    assert_eq!(main.differences, 10, "{main:?}");
    assert_eq!(main.repaired, 10, "{main:?}");
    assert_eq!(env.plan_of(MAIN).await, "premium-1");
    assert_formation_restored(&env).await;
    // Forensics: the journal names the server the repair wrote to (address and `run_id`, read
    // here from the server itself), never its password.
    let url = env.sim.redis_url(MAIN);
    let port = url.rsplit_once(':').unwrap().1;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut common::redis(&url).await)
        .await
        .unwrap();
    let run_id = info
        .lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .unwrap()
        .trim()
        .to_owned();
    let repaired: Vec<(Option<String>, Option<String>)> = env
        .journal(&report.run_id)
        .into_iter()
        .filter_map(|r| match r {
            Record::Verified {
                repaired,
                repaired_server,
                run_id,
                ..
            } if repaired > 0 => Some((repaired_server, run_id)),
            _ => None,
        })
        .collect();
    assert_eq!(
        repaired,
        vec![(Some(format!("127.0.0.1:{port}/0")), Some(run_id))]
    );
    let password = url
        .split_once("://:")
        .and_then(|(_, rest)| rest.split_once('@'))
        .unwrap()
        .0;
    assert!(!journal_text(&env, &report.run_id).contains(password));
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_loss_is_tolerated_and_reported() {
    let env = Env::start(Duration::from_millis(500)).await;
    env.inject(Fault::LoseKeys {
        addon: Some(CACHE.into()),
        count: 4,
        prefix: None,
    });
    let mut cache = change(CACHE, "premium-1");
    cache.policy = DataPolicy::Cache;
    let report = env
        .runner()
        .run(&request(vec![cache], None))
        .await
        .expect("run");
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    assert_eq!(report.addons[0].differences, 4);
    assert_eq!(report.addons[0].repaired, 0);
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_guards_write_nothing() {
    let env = Env::start(Duration::from_millis(500)).await;
    // mini holds 20 connections; two web dynos open 26 each to main.
    // A typo in an add-on name is bad input (exit 2) before any plan, naming the close one.
    let typo = request(
        vec![
            change(MAIN, "mini"),
            change("enketo_redis_cahce", "premium-1"),
        ],
        None,
    );
    let err = env.runner().plan(&typo).await.expect_err("unknown add-on");
    assert_eq!(err.exit_code(), upshift::exit::ExitCode::Usage);
    let text = err.to_string();
    assert!(text.contains("did you mean enketo_redis_cache?"), "{text}");
    assert!(text.contains("enketo_redis_main"), "{text}");
    let err = env.runner().run(&typo).await.expect_err("unknown add-on");
    assert_eq!(err.exit_code(), upshift::exit::ExitCode::Usage);
    assert!(env.state().run_ids().unwrap().is_empty(), "no journal");
    let req = request(vec![change(MAIN, "mini")], None);
    let plan = env.runner().plan(&req).await.expect("plan");
    assert!(plan.blocked);
    let rendered = upshift::plan::render(&plan);
    assert!(
        rendered.contains("connections after restore: 2 web x 26 = 52 > mini limit 20"),
        "{rendered}"
    );
    let report = env.runner().run(&req).await.expect("run");
    assert_eq!(report.outcome, Outcome::Blocked);
    assert_eq!(env.writes(), Vec::<String>::new());
    assert_eq!(
        journal_outcome(&env, &report.run_id),
        Some(Outcome::Blocked)
    );
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_is_refused_while_one_is_unfinished() {
    let env = Env::start(Duration::from_millis(500)).await;
    let state = env.state();
    // An unfinished run of this app from a process that is gone.
    let mut j = journal::Journal::create(&state, "20260101T000000Z-dead").unwrap();
    j.append(
        0,
        &Record::Started {
            run_id: "20260101T000000Z-dead".into(),
            request: request(vec![change(MAIN, "premium-1")], None),
            host: "elsewhere".into(),
            pid: 1,
            version: "0".into(),
        },
    )
    .unwrap();
    let report = env
        .runner()
        .run(&request(vec![change(MAIN, "premium-1")], None))
        .await
        .expect("run");
    assert_eq!(report.outcome, Outcome::Blocked);
    assert_eq!(env.writes(), Vec::<String>::new());
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_provisioning_settles_and_restores_the_app() {
    let env = Env::start(Duration::from_millis(1500)).await;
    let interrupts = upshift::runner::Interrupts::default();
    let runner = env.runner_with(interrupts.clone());
    let req = request(vec![change(MAIN, "premium-1")], None);
    let run = tokio::spawn(async move { runner.run(&req).await });
    // Interrupt once the plan change is under way.
    env.wait_until("the plan change started", |sim| {
        sim.timeline()
            .iter()
            .any(|e| matches!(e.kind, upshift::sim::EventKind::ProvisioningStarted { .. }))
    })
    .await;
    interrupts.interrupt();
    let report = run.await.unwrap().expect("run");
    // The change could not be stopped on the platform side: the add-on settled on the new
    // plan and its data was verified against the snapshot. Said as it is, not "rolled back".
    assert_eq!(report.outcome, Outcome::KeptNewPlan, "{report:#?}");
    assert_eq!(report.outcome.exit_code().code(), 6);
    let message = report.message.clone().unwrap_or_default();
    assert!(
        message.contains("stays on premium-1 (was premium-0)"),
        "{message}"
    );
    assert!(
        message.contains("--change enketo_redis_main=premium-0"),
        "the reverse change: {message}"
    );
    assert_formation_restored(&env).await;
    assert_eq!(env.plan_of(MAIN).await, "premium-1");
    assert_eq!(report.addons[0].differences, 0);
    assert!(report.addons[0].keys_verified > 1000, "{report:#?}");
    assert_eq!(
        journal_outcome(&env, &report.run_id),
        Some(Outcome::KeptNewPlan)
    );
    env.sim.shutdown().await;
}

/// The writers scaled back up by someone else mid-run (a person, an autoscaler, another
/// upshift from another machine) write to the new server before verify: the differences are
/// their acknowledged writes, and a repair from the snapshot would revert or delete them. The
/// run must refuse to repair and end needing attention, the keys the app wrote still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_someone_scaled_back_mid_run_are_never_repaired_away() {
    let env = Env::start(Duration::from_millis(1500)).await;
    let runner = env.runner();
    let req = request(vec![change(MAIN, "premium-1")], None);
    let run = tokio::spawn(async move { runner.run(&req).await });
    env.wait_until("the plan change started", |sim| {
        sim.timeline()
            .iter()
            .any(|e| matches!(e.kind, upshift::sim::EventKind::ProvisioningStarted { .. }))
    })
    .await;
    env.client()
        .update_formation(
            harness::APP,
            &[upshift::heroku::models::FormationUpdate {
                process_type: "web".into(),
                quantity: Some(2),
                size: None,
            }],
        )
        .await
        .expect("scale web back up");
    let report = run.await.unwrap().expect("run");
    assert_eq!(report.outcome, Outcome::NeedsAttention, "{report:#?}");
    let message = report.message.clone().unwrap_or_default();
    let journal = journal_text(&env, &report.run_id);
    // Whichever check sees them first: the scan's own gate (the keys change while it reads),
    // or, when their writes landed before the scan, the formation read before any repair. On
    // a loaded machine the dynos can come back before the sync connects and fill the old
    // server's slots: then the plan change itself fails, and the rollback cannot connect.
    assert!(
        journal.contains("writers are still active")
            || journal.contains("Not repairing")
            || journal.contains("connection limit is full"),
        "{message}\n{journal}"
    );
    let verified: Vec<(u64, u64)> = env
        .journal(&report.run_id)
        .into_iter()
        .filter_map(|r| match r {
            Record::Verified {
                differences,
                repaired,
                ..
            } => Some((differences, repaired)),
            _ => None,
        })
        .collect();
    assert!(
        verified.iter().all(|&(_, repaired)| repaired == 0),
        "nothing repaired: {verified:?}"
    );
    // Every write the new server acknowledged after the switch is still there (read by the
    // test): writes to the old server before the switch are the platform's to lose.
    let switched = env
        .sim
        .timeline()
        .iter()
        .find(|e| {
            matches!(
                e.kind,
                upshift::sim::EventKind::ProvisioningSucceeded { .. }
            )
        })
        .map(|e| e.at_ms)
        .expect("the change switched");
    let after: Vec<String> = env
        .sim
        .timeline()
        .iter()
        .filter(|e| e.at_ms > switched + 500.0)
        .filter_map(|e| match &e.kind {
            upshift::sim::EventKind::Write { key, ok: true, .. } if key.starts_with("wr:") => {
                Some(key.clone())
            }
            _ => None,
        })
        .collect();
    assert!(!after.is_empty(), "the writers wrote to the new server");
    assert_eq!(
        env.missing_keys(MAIN, &after).await,
        Vec::<String>::new(),
        "acknowledged writes deleted"
    );
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_leaves_a_resumable_run_that_resume_finishes() {
    let env = Env::start(Duration::from_millis(1500)).await;
    let interrupts = upshift::runner::Interrupts::default();
    let runner = env.runner_with(interrupts.clone());
    let req = request(vec![change(MAIN, "premium-1")], None);
    let run = tokio::spawn(async move { runner.run(&req).await });
    env.wait_until("web is stopped", |sim| sim.downtime("web").is_some())
        .await;
    interrupts.interrupt();
    interrupts.interrupt();
    let err = run.await.unwrap().expect_err("interrupted twice");
    assert_eq!(err.exit_code(), upshift::exit::ExitCode::Interrupted);
    // Walking away from a resumable run must not hide that the app is down.
    let text = err.to_string();
    assert!(
        text.contains("the app enketo-demo is DOWN: web at 0 dynos"),
        "{text}"
    );
    assert_eq!(web_quantity(&env).await, 0);
    let run_id = env.state().run_ids().unwrap().pop().unwrap();
    assert_eq!(journal_outcome(&env, &run_id), None, "journal left open");
    let report = env.runner().resume(None).await.expect("resume");
    assert_eq!(report.run_id, run_id);
    assert!(
        matches!(report.outcome, Outcome::RolledBack | Outcome::Succeeded),
        "{report:#?}"
    );
    assert_formation_restored(&env).await;
    // Resuming a finished run is idempotent: it reports the same outcome.
    let again = env
        .runner()
        .resume(Some(&run_id))
        .await
        .expect("resume again");
    assert_eq!(again.outcome, report.outcome);
    env.sim.shutdown().await;
}

/// Seeded keys (not the dynos' own) with their values, read by the test itself.
pub(crate) async fn seeded(
    env: &Env,
    addon: &str,
) -> std::collections::BTreeMap<String, (Vec<u8>, bool)> {
    common::snapshot(&env.sim.redis_url(addon))
        .await
        .into_iter()
        .filter(|(k, _)| {
            !["wr:", "counter:", "dyno:"]
                .iter()
                .any(|p| k.starts_with(p))
        })
        .collect()
}

fn journal_outcomes(env: &Env, run_id: &str) -> Vec<Outcome> {
    env.outcomes(run_id)
}

pub(crate) async fn web_quantity(env: &Env) -> u32 {
    env.formation()
        .await
        .into_iter()
        .find(|(t, _, _)| t == "web")
        .map(|(_, q, _)| q)
        .expect("web")
}

/// Issue 9's invariant: after the plan PATCH, an error that says nothing about the data (the
/// new server refuses the URL's credentials) keeps the writers stopped; the run needs
/// attention, stays resumable, and comes back only once a verify proves the data whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_new_server_keeps_the_writers_stopped_until_a_verify_passes() {
    let env = Env::start(Duration::from_millis(500)).await;
    // The cache add-on, held to the critical rule (no `--cache`): main is at its connection
    // limit in the Enketo scenario, so the test could not read it while the app runs.
    let before = seeded(&env, CACHE).await;
    assert!(before.len() > 1000, "the scenario seeds main");
    env.inject(Fault::UnreadableAfterSwitch {
        addon: Some(CACHE.into()),
    });
    let req = request(vec![change(CACHE, "premium-1")], None);
    let report = env.runner().run(&req).await.expect("run");
    assert_eq!(report.outcome, Outcome::NeedsAttention, "{report:#?}");
    assert_eq!(
        report.outcome.exit_code(),
        upshift::exit::ExitCode::NeedsAttention
    );
    let message = report.message.clone().unwrap_or_default();
    assert!(message.contains("upshift restore --url"), "{message}");
    assert!(
        message.contains("heroku ps:scale web=2:standard-1X"),
        "{message}"
    );
    assert_eq!(env.plan_of(CACHE).await, "premium-1");
    assert_eq!(web_quantity(&env).await, 0, "writers must stay stopped");
    assert_eq!(
        journal_outcomes(&env, &report.run_id),
        vec![Outcome::NeedsAttention]
    );
    // Nothing writes while the data is unproven.
    let acked = env.acknowledged_writes(CACHE).await.len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(env.acknowledged_writes(CACHE).await.len(), acked);
    assert_eq!(web_quantity(&env).await, 0);

    // The operator repairs the credentials; resume settles, verifies, and only then restores.
    env.sim
        .restore_credentials(CACHE)
        .await
        .expect("credentials restored");
    let resumed = env
        .runner()
        .resume(Some(&report.run_id))
        .await
        .expect("resume");
    assert_eq!(resumed.outcome, Outcome::KeptNewPlan, "{resumed:#?}");
    // The app's downtime, from the journal: it went on between the two processes.
    assert!(
        resumed.downtime >= report.downtime + Duration::from_millis(600),
        "resume reported {:?}, the first run {:?}",
        resumed.downtime,
        report.downtime
    );
    assert_formation_restored(&env).await;
    assert_eq!(
        journal_outcomes(&env, &report.run_id),
        vec![Outcome::NeedsAttention, Outcome::KeptNewPlan]
    );
    // The test's own judgement of the data: every seeded key as before, no acknowledged
    // write lost.
    assert_eq!(seeded(&env, CACHE).await, before);
    let acked = env.acknowledged_writes(CACHE).await;
    assert!(!acked.is_empty());
    assert_eq!(env.missing_keys(CACHE, &acked).await, Vec::<String>::new());
    env.sim.shutdown().await;
}

fn connections_guard(plan: &upshift::plan::Plan, addon: &str) -> String {
    plan.guards
        .iter()
        .find(|g| {
            g.id == "connections-fit"
                && g.subject
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(addon))
        })
        .map(|g| g.detail.clone())
        .expect("connections guard")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_measured_only_on_dynos_that_have_been_up_a_while() {
    let env = Env::start(Duration::from_millis(300)).await;
    // The cache: main is at its connection limit in the Enketo scenario, so INFO cannot reach it.
    let req = request(vec![change(CACHE, "premium-1")], None);
    // The scenario's dynos have run for an hour: their connections are a measurement.
    let steady = env.runner().plan(&req).await.expect("plan");
    let d = connections_guard(&steady, CACHE);
    assert!(d.contains("(measured: "), "{d}");
    // A restart: the new dynos have just come up and may not have opened every connection.
    let client = env.client();
    for quantity in [0, 2] {
        client
            .update_formation(
                harness::APP,
                &[upshift::heroku::models::FormationUpdate {
                    process_type: "web".into(),
                    quantity: Some(quantity),
                    size: None,
                }],
            )
            .await
            .expect("scale");
    }
    env.wait_app_up().await;
    let fresh = env.runner().plan(&req).await.expect("plan");
    let d = connections_guard(&fresh, CACHE);
    assert!(
        d.contains("playbook default, not measured: 0 of 2 web dyno(s) up for 30s"),
        "{d}"
    );
    env.sim.shutdown().await;
}

/// The snapshot, the test's own digest and the acknowledged writes of `CACHE`, held critical,
/// after a run and its resume: nothing lost, the app back.
async fn assert_cache_whole(
    env: &Env,
    before: &std::collections::BTreeMap<String, (Vec<u8>, bool)>,
) {
    assert_formation_restored(env).await;
    assert_eq!(&seeded(env, CACHE).await, before, "seeded keys differ");
    let acked = env.acknowledged_writes(CACHE).await;
    assert!(!acked.is_empty());
    assert_eq!(env.missing_keys(CACHE, &acked).await, Vec::<String>::new());
}

/// A repair that cannot write (the new server refuses writes) must not bring the writers back
/// onto data that lacks keys: needs-attention, writers at 0, the steps to finish; once the
/// server takes writes again, resume repairs, verifies and only then restores the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_that_fails_keeps_the_writers_stopped_until_the_data_is_whole() {
    let env = Env::start(Duration::from_millis(300)).await;
    let before = seeded(&env, CACHE).await;
    env.inject(Fault::LoseKeys {
        addon: Some(CACHE.into()),
        count: 40,
        prefix: None,
    });
    env.inject(Fault::RefuseWritesAfterSwitch {
        addon: Some(CACHE.into()),
    });
    let req = request(vec![change(CACHE, "premium-1")], None);
    let report = env.runner().run(&req).await.expect("run");
    assert_eq!(report.outcome, Outcome::NeedsAttention, "{report:#?}");
    assert_eq!(
        report.outcome.exit_code(),
        upshift::exit::ExitCode::NeedsAttention
    );
    let message = report.message.clone().unwrap_or_default();
    assert!(message.contains("upshift restore --url"), "{message}");
    assert_eq!(web_quantity(&env).await, 0, "writers must stay stopped");
    assert_ne!(
        seeded(&env, CACHE).await,
        before,
        "the keys are still missing"
    );
    assert_eq!(
        journal_outcomes(&env, &report.run_id),
        vec![Outcome::NeedsAttention]
    );
    env.sim.lift_write_refusal(CACHE).await.expect("lifted");
    let resumed = env
        .runner()
        .resume(Some(&report.run_id))
        .await
        .expect("resume");
    assert!(
        matches!(
            resumed.outcome,
            Outcome::RolledBack | Outcome::Succeeded | Outcome::KeptNewPlan
        ),
        "{resumed:#?}"
    );
    assert_cache_whole(&env, &before).await;
    env.sim.shutdown().await;
}

/// More differences than any report lists (10,000+): every one is repaired, not only the
/// listed ones, and the test's own digest proves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_ten_thousand_differences_are_all_repaired() {
    let env = Env::start(Duration::from_millis(300)).await;
    let before = seeded(&env, CACHE).await;
    assert!(before.len() >= 10_000, "{}", before.len());
    // Every key of the cache (10,002 with the app's own) is lost on the new server.
    env.inject(Fault::LoseKeys {
        addon: Some(CACHE.into()),
        count: 20_000,
        prefix: None,
    });
    let req = request(vec![change(CACHE, "premium-1")], None);
    let report = env.runner().run(&req).await.expect("run");
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    let a = &report.addons[0];
    assert!(a.differences > 10_000, "{a:?}");
    assert_eq!(env.plan_of(CACHE).await, "premium-1");
    assert_cache_whole(&env, &before).await;
    env.sim.shutdown().await;
}

/// The plan PATCH lands but its answer is lost: the client must find the change on the
/// platform rather than send a second, and the run goes on to verify it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_change_whose_answer_is_lost_is_not_sent_twice() {
    lost_plan_change_answer(upshift::sim::Profile::Optimistic).await;
}

/// The same under `late-flip`, where the re-read add-on still names its old plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_plan_change_answer_is_not_resent_when_the_plan_flips_late() {
    lost_plan_change_answer(upshift::sim::Profile::LateFlip).await;
}

async fn lost_plan_change_answer(profile: upshift::sim::Profile) {
    let env = Env::start(Duration::from_millis(300)).await;
    env.sim
        .set_behaviour(&upshift::sim::BehaviourSpec::of(profile));
    let before = seeded(&env, CACHE).await;
    env.inject(Fault::LoseResponse {
        method: Some("PATCH".into()),
        path: "/apps/*/addons/*".into(),
        nth: 1,
        times: 1,
    });
    let req = request(vec![change(CACHE, "premium-1")], None);
    let report = env.runner().run(&req).await.expect("run");
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    let patches: Vec<String> = env
        .writes()
        .into_iter()
        .filter(|w| w.starts_with("PATCH /apps/") && w.contains("/addons/"))
        .collect();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(env.plan_of(CACHE).await, "premium-1");
    assert_cache_whole(&env, &before).await;
    env.sim.shutdown().await;
}

/// Issue 9, item 6: a burst of rate limits during wait-provisioned used to exhaust every
/// compensation after the client's few attempts (web stayed at 0, exit 4). Compensations now
/// ride it out, honouring `Retry-After`, and the run rolls back with the app restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_burst_during_the_rollback_is_ridden_out() {
    let env = Env::start(Duration::from_millis(1500)).await;
    let before = seeded(&env, CACHE).await;
    assert!(before.len() > 1000, "the scenario seeds the cache");
    let runner = env.runner();
    let req = request(vec![change(CACHE, "premium-1")], None);
    let run = tokio::spawn(async move { runner.run(&req).await });
    env.wait_until("the plan change started", |sim| {
        sim.timeline()
            .iter()
            .any(|e| matches!(e.kind, upshift::sim::EventKind::ProvisioningStarted { .. }))
    })
    .await;
    // 25 calls in a row answered 429 with Retry-After 1: more than the client's attempts for
    // wait-provisioned and then for settle-plan, several times over.
    env.inject(Fault::Http {
        method: None,
        path: "/**".into(),
        status: 429,
        nth: 1,
        times: 25,
        retry_after: Some(1),
    });
    let report = run.await.unwrap().expect("run");
    // Rolled back, or stopped with the new plan kept when provisioning finished meanwhile.
    let expected = if env.plan_of(CACHE).await == "premium-1" {
        Outcome::KeptNewPlan
    } else {
        Outcome::RolledBack
    };
    assert_eq!(report.outcome, expected, "{report:#?}");
    assert_eq!(journal_outcomes(&env, &report.run_id), vec![expected]);
    assert_formation_restored(&env).await;
    // The test's own judgement of the data, whatever plan the add-on settled on.
    assert_eq!(seeded(&env, CACHE).await, before);
    env.sim.shutdown().await;
}

/// A compensation that keeps failing past `compensation_deadline` ends the run
/// needs-attention with the writers stopped; `upshift resume` (no run id) then finds that run,
/// reopens it and, once the platform answers again, finishes the rollback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compensation_past_its_deadline_needs_attention_and_resume_finishes_it() {
    let env = Env::start(Duration::from_millis(500)).await;
    let before = seeded(&env, CACHE).await;
    env.inject(Fault::FailProvisioning {
        addon: None,
        message: Some("simulated provisioning failure".into()),
    });
    // The scale-down passes; every formation write after it is rate limited.
    env.inject(Fault::Http {
        method: Some("PATCH".into()),
        path: "/apps/*/formation".into(),
        status: 429,
        nth: 2,
        times: 10_000,
        retry_after: Some(1),
    });
    let pb = harness::playbook_with(|p| harness::set_param(p, "compensation_deadline", "5s"));
    let req = request(vec![change(CACHE, "premium-1")], Some(&pb));
    assert_eq!(req.params.compensation_deadline, Duration::from_secs(5));
    let report = env.runner().run(&req).await.expect("run");
    assert_eq!(report.outcome, Outcome::NeedsAttention, "{report:#?}");
    assert_eq!(
        report.outcome.exit_code(),
        upshift::exit::ExitCode::NeedsAttention
    );
    let message = report.message.clone().unwrap_or_default();
    // The restore was tried more than once before the deadline, then gave up.
    let patches = env
        .writes()
        .into_iter()
        .filter(|w| w.ends_with("/formation"))
        .count();
    assert!(patches > 2, "{:?}", env.writes());
    assert!(
        message.contains(&format!("upshift resume {}", report.run_id)),
        "{message}"
    );
    assert!(
        message.contains("heroku ps:scale web=2:standard-1X"),
        "{message}"
    );
    assert_eq!(web_quantity(&env).await, 0, "the restore never got through");
    assert_eq!(env.plan_of(CACHE).await, "premium-0");
    assert_eq!(
        journal_outcomes(&env, &report.run_id),
        vec![Outcome::NeedsAttention]
    );
    // Still 0 later: nothing brings the writers back behind the run's back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(web_quantity(&env).await, 0);

    // `resume` without a run id would pick it, unless a newer run on the app superseded it
    // (its capture and snapshots would then describe a past the app has left).
    let state = env.state();
    assert_eq!(
        upshift::runner::resumable(&state, None).unwrap(),
        vec![(report.run_id.clone(), harness::APP.to_owned())]
    );
    let newer = format!("{}-newer", report.run_id);
    let mut j = journal::Journal::create(&state, &newer).unwrap();
    for record in [
        Record::Started {
            run_id: newer.clone(),
            request: req.clone(),
            host: "test".into(),
            pid: 1,
            version: "test".into(),
        },
        Record::Finished {
            outcome: Outcome::Succeeded,
            message: None,
        },
    ] {
        j.append(0, &record).unwrap();
    }
    drop(j);
    assert_eq!(upshift::runner::resumable(&state, None).unwrap(), vec![]);
    std::fs::remove_dir_all(state.run_dir(&newer)).unwrap();

    // Heroku answers again; `resume` without a run id picks the needs-attention run.
    env.sim.clear_faults();
    let resumed = env.runner().resume(None).await.expect("resume");
    assert_eq!(resumed.run_id, report.run_id);
    assert_eq!(resumed.outcome, Outcome::RolledBack, "{resumed:#?}");
    assert_formation_restored(&env).await;
    assert_eq!(
        journal_outcomes(&env, &report.run_id),
        vec![Outcome::NeedsAttention, Outcome::RolledBack]
    );
    assert_eq!(seeded(&env, CACHE).await, before);
    // Nothing is left to resume: the run is finished for good.
    let err = env
        .runner()
        .resume(None)
        .await
        .expect_err("nothing left to resume");
    assert!(err.to_string().contains("no unfinished run"), "{err}");
    env.sim.shutdown().await;
}

// ---- behaviour profiles (issue 11) -------------------------------------------------------

/// What a run did to the data, judged by the test alone: the cache's seeded keys before and
/// after, and every write the platform acknowledged to `addons` still there. (Main can be read
/// only once it is off premium-0: the Enketo app holds all of its connections.)
pub(crate) async fn assert_no_data_lost(
    env: &Env,
    before: &std::collections::BTreeMap<String, (Vec<u8>, bool)>,
    addons: &[&str],
) {
    assert_eq!(&seeded(env, CACHE).await, before, "the cache's seeded data");
    for &addon in addons {
        let acked = env.acknowledged_writes(addon).await;
        assert!(!acked.is_empty(), "{addon}: the dynos wrote");
        assert_eq!(
            env.missing_keys(addon, &acked).await,
            Vec::<String>::new(),
            "{addon}: acknowledged writes lost"
        );
    }
}

pub(crate) fn journal_text(env: &Env, run_id: &str) -> String {
    format!(
        "{:?}",
        journal::read::<Record>(&env.journal_path(run_id)).expect("journal readable")
    )
}

/// The main run: main and cache (both critical) change in one downtime.
pub(crate) async fn profile_succeeds(profile: upshift::sim::Profile) {
    let env = Env::start_with(Duration::from_millis(600), profile).await;
    // TLS as on Heroku in every profile but `optimistic` (plain, as first built).
    let tls = profile != upshift::sim::Profile::Optimistic;
    assert_eq!(env.sim.redis_url(CACHE).starts_with("rediss://"), tls);
    let before = seeded(&env, CACHE).await;
    assert!(before.len() > 1000);
    // Issue 11, 5(f): the URL stays or changes as the profile's `keep_url` says; the run must
    // pass either way (its evidence is what the server is, not where it is).
    let client = env.client();
    let urls_before = client.config_vars(harness::APP).await.expect("config").0;
    let req = request(
        vec![change(MAIN, "premium-1"), change(CACHE, "premium-1")],
        None,
    );
    let report = env.runner().run(&req).await.expect("run");
    assert_eq!(report.outcome, Outcome::Succeeded, "{profile}: {report:#?}");
    let urls_after = client.config_vars(harness::APP).await.expect("config").0;
    let keep_url = upshift::sim::Behaviour::of(profile).keep_url;
    for var in ["ENKETO_REDIS_MAIN_URL", "ENKETO_REDIS_CACHE_URL"] {
        assert_eq!(
            urls_after.get(var) == urls_before.get(var),
            keep_url,
            "{profile}: {var} kept iff keep_url ({keep_url})"
        );
        assert!(urls_after.contains_key(var), "{profile}: {var}");
    }
    assert_eq!(env.plan_of(MAIN).await, "premium-1");
    assert_eq!(env.plan_of(CACHE).await, "premium-1");
    for addon in [MAIN, CACHE] {
        let url = env.sim.redis_url(addon);
        assert_eq!(
            url.starts_with("rediss://"),
            tls,
            "{profile}: {addon}'s new server"
        );
    }
    assert_formation_restored(&env).await;
    let journal = journal_text(&env, &report.run_id);
    assert!(journal.contains("OldServer"), "{profile}: {journal}");
    if profile == upshift::sim::Profile::Strict {
        assert!(
            journal.contains("CLIENT LIST refused"),
            "the drain says how it decided: {journal}"
        );
    }
    assert_no_data_lost(&env, &before, &[CACHE, MAIN]).await;
    env.sim.shutdown().await;
}

/// A provisioning that fails rolls back with the data whole.
pub(crate) async fn profile_rolls_back(profile: upshift::sim::Profile) {
    let env = Env::start_with(Duration::from_millis(600), profile).await;
    let before = seeded(&env, CACHE).await;
    env.inject(Fault::FailProvisioning {
        addon: Some(CACHE.into()),
        message: Some("simulated provisioning failure".into()),
    });
    let req = request(vec![change(CACHE, "premium-1")], None);
    let report = env.runner().run(&req).await.expect("run");
    assert_eq!(
        report.outcome,
        Outcome::RolledBack,
        "{profile}: {report:#?}"
    );
    assert_eq!(env.plan_of(CACHE).await, "premium-0");
    assert_formation_restored(&env).await;
    assert_no_data_lost(&env, &before, &[CACHE]).await;
    env.sim.shutdown().await;
}

/// Issue 11, 5(b): under `in-place` the add-on says `provisioned` on the target at once, while
/// the old server is still behind the config var. A naive "state + plan" check would have
/// verified that old server and brought the writers back onto it; the runner waits for a
/// server the old one cannot be, and the writers come back only after the switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_a_naive_check_would_read_the_old_server_and_the_runner_waits() {
    let env = Env::start_with(Duration::from_millis(1500), upshift::sim::Profile::InPlace).await;
    let before = seeded(&env, CACHE).await;
    let old_run_id = env.sim.server_run_id(CACHE).await.expect("run_id");
    let client = env.client();
    let watch = async {
        // The first moment a naive check would have called the change done.
        for _ in 0..1000 {
            let a = client.addon(harness::APP, CACHE).await.expect("add-on");
            if a.state == upshift::heroku::models::AddOnState::Provisioned
                && upshift::plans::bare_name(&a.plan.name) == "premium-1"
            {
                let wait = client.redis_wait(CACHE).await.expect("wait");
                return (
                    wait.waiting,
                    env.sim.server_run_id(CACHE).await.expect("run_id"),
                    env.sim.now_ms(),
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the platform never said provisioned on premium-1");
    };
    let req = request(vec![change(CACHE, "premium-1")], None);
    let runner = env.runner();
    let (report, (waiting, naive_run_id, naive_at)) = tokio::join!(runner.run(&req), watch);
    let report = report.expect("run");
    assert!(!waiting, "the Data API agreed with the platform");
    assert_eq!(
        naive_run_id, old_run_id,
        "a naive check would have verified the OLD server"
    );
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    let new_run_id = env.sim.server_run_id(CACHE).await.expect("run_id");
    assert_ne!(new_run_id, old_run_id);
    // The writers came back only after the switch-over, well after the naive moment.
    let timeline = env.sim.timeline();
    let switched = timeline
        .iter()
        .find_map(|e| match &e.kind {
            upshift::sim::EventKind::ProvisioningSucceeded { .. } => Some(e.at_ms),
            _ => None,
        })
        .expect("the change completed");
    let restored = timeline
        .iter()
        .filter_map(|e| match &e.kind {
            upshift::sim::EventKind::FormationChanged { to, .. } if *to > 0 => Some(e.at_ms),
            _ => None,
        })
        .next_back()
        .expect("web came back");
    assert!(naive_at < switched, "{naive_at} < {switched}");
    assert!(switched < restored, "{switched} < {restored}");
    assert_no_data_lost(&env, &before, &[CACHE]).await;
    env.sim.shutdown().await;
}

/// Collects the note of every finished step.
#[derive(Default)]
struct Notes(std::sync::Mutex<Vec<(upshift::engine::Action, String)>>);

impl upshift::runner::reporter::Reporter for Notes {
    fn report(&self, event: &upshift::runner::reporter::RunEvent) {
        if let upshift::runner::reporter::RunEvent::StepDone {
            action,
            note: Some(note),
            ..
        } = event
            && let Ok(mut notes) = self.0.lock()
        {
            notes.push((*action, note.clone()));
        }
    }
}

/// Issue 11, item 8: clients come back over seconds after the writers return. The health step
/// judges the connection headroom on a count that has stopped moving, not on the first reading
/// (which showed 1 of the 36 cache connections coming).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_judges_the_client_count_once_it_has_stopped_moving() {
    let env = Env::start(Duration::from_millis(300)).await;
    env.sim.set_behaviour(&upshift::sim::BehaviourSpec {
        client_ramp_seconds: Some(1.5),
        ..Default::default()
    });
    let notes = std::sync::Arc::new(Notes::default());
    let runner = env.runner_to(upshift::runner::Interrupts::default(), notes.clone());
    let req = request(vec![change(CACHE, "premium-1")], None);
    let report = runner.run(&req).await.expect("run");
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    let health = notes
        .0
        .lock()
        .unwrap()
        .iter()
        .find(|(a, _)| *a == upshift::engine::Action::Health)
        .map(|(_, n)| n.clone())
        .expect("a health note");
    // Two web dynos open 18 connections each to the cache (the Enketo figure).
    let clients: u64 = health
        .split("ENKETO_REDIS_CACHE ")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no cache count in {health:?}"));
    assert!(
        clients >= 36,
        "judged before the clients came back: {health}"
    );
    env.sim.shutdown().await;
}

/// Issue 11, item 4: Heroku gives a scaled-down dyno up to 30 s after SIGTERM, and it may keep
/// writing meanwhile (still listed). The run must not snapshot (let alone change the plan)
/// while such a write can land: every acknowledged write survives and the last write of a
/// stopping dyno comes before the snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynos_writing_through_their_stop_grace_are_waited_out() {
    let env = Env::start(Duration::from_millis(300)).await;
    env.sim.set_behaviour(&upshift::sim::BehaviourSpec {
        stop_grace_seconds: Some(1.5),
        ..Default::default()
    });
    let before = seeded(&env, CACHE).await;
    let req = request(vec![change(CACHE, "premium-1")], None);
    let report = env.runner().run(&req).await.expect("run");
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    let timeline = env.sim.timeline();
    let snapshot_at = timeline
        .iter()
        .filter(|e| matches!(e.kind, upshift::sim::EventKind::ProvisioningStarted { .. }))
        .map(|e| e.at_ms)
        .fold(f64::NAN, f64::min);
    let stopped_at = timeline
        .iter()
        .filter(|e| matches!(e.kind, upshift::sim::EventKind::DynoStopped { .. }))
        .map(|e| e.at_ms)
        .filter(|at| *at < snapshot_at)
        .fold(f64::NAN, f64::max);
    let last_write_before_plan_change = timeline
        .iter()
        .filter(|e| e.at_ms < snapshot_at)
        .filter_map(|e| match &e.kind {
            upshift::sim::EventKind::Write { ok: true, .. } => Some(e.at_ms),
            _ => None,
        })
        .fold(f64::NAN, f64::max);
    assert!(
        stopped_at.is_finite() && snapshot_at.is_finite(),
        "{timeline:?}"
    );
    assert!(
        stopped_at < snapshot_at,
        "the plan change started at {snapshot_at} ms while a dyno ran until {stopped_at} ms"
    );
    assert!(last_write_before_plan_change <= stopped_at + 1.0);
    // The grace was real and waited out: from the writers' stop to the snapshot took the
    // grace at least (without it the drain takes a few hundred milliseconds).
    let path = env
        .state()
        .run_dir(&report.run_id)
        .join(journal::JOURNAL_FILE);
    let entries = journal::read::<Record>(&path).expect("journal");
    let at = |f: &dyn Fn(&Record) -> bool| {
        entries
            .iter()
            .find(|e| f(&e.record))
            .map(|e| e.at_ms)
            .expect("record")
    };
    let stopped = at(&|r| matches!(r, Record::Downtime { started: true }));
    let snapshot = at(&|r| matches!(r, Record::Snapshot { .. }));
    assert!(
        snapshot - stopped >= 1400,
        "drained in {} ms",
        snapshot - stopped
    );
    assert_cache_whole(&env, &before).await;
    env.sim.shutdown().await;
}
