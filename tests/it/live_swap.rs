//! The live-swap playbook end to end against the simulator and real redis-servers: the app
//! keeps running while a new add-on is provisioned and filled, the writers stop only for the
//! cutover, every attachment ends on the new add-on, and every rollback before the writers
//! return leaves the app on the old add-on, untouched. Data is judged with this file's own
//! reads (the acknowledged writes of the simulated dynos, and a dump of both servers).

use crate::common;
use crate::harness;

use std::time::Duration;

use harness::{APP, Env, MAIN, change, request};
use upshift::engine::Outcome;
use upshift::plan::RunRequest;
use upshift::playbook::{Playbook, Strategy};
use upshift::runner::record::Record;
use upshift::sim::Fault;

/// A live-swap request for MAIN to premium-1.
fn live_request() -> RunRequest {
    let mut req = request(vec![change(MAIN, "premium-1")], None);
    req.playbook = Playbook::of_strategy(Strategy::LiveSwap);
    req.params = req.playbook.params.clone();
    req
}

/// Who the attachment `name` of the app points at (add-on name), from the platform.
async fn attached(env: &Env, name: &str) -> Option<String> {
    env.client()
        .attached_as(APP, name)
        .await
        .map(|a| a.addon.name)
}

async fn notify_setting(env: &Env, addon: &str) -> String {
    env.client()
        .redis_config(addon)
        .await
        .expect("Data API config")
        .values()
        .notify_keyspace_events
        .unwrap_or_default()
}

fn new_addon_of(records: &[Record]) -> Option<(String, String)> {
    records.iter().find_map(|r| match r {
        Record::NewAddon {
            new_addon,
            attachment,
            ..
        } => Some((new_addon.clone(), attachment.clone())),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_swap_moves_the_app_to_a_new_addon_and_the_downtime_does_not_wait_for_provisioning()
{
    // Provisioning takes 4 s; the writers must be stopped for much less than that.
    let provisioning = Duration::from_secs(4);
    let env = Env::roomy(provisioning).await;
    let old = env.client().addon(APP, MAIN).await.expect("MAIN").name;
    let old_url = env.sim.redis_url(&old);
    let notify_before = notify_setting(&env, &old).await;

    let report = env.runner().run(&live_request()).await.expect("run");
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");

    // Every attachment now leads to a new add-on on the target plan; the temporary one is gone.
    let records = env.journal(&report.run_id);
    let (new, temp) = new_addon_of(&records).expect("a new-addon record");
    assert_ne!(new, old);
    assert_eq!(
        attached(&env, "ENKETO_REDIS_MAIN").await.as_deref(),
        Some(new.as_str())
    );
    assert_eq!(
        attached(&env, &temp).await,
        None,
        "temporary attachment left"
    );
    assert_eq!(env.plan_of(MAIN).await, "premium-1");
    let new_url = env.sim.redis_url(&new);
    assert_ne!(new_url, old_url);

    // The old add-on is kept, on its old plan, its notification setting back.
    let kept = env
        .client()
        .addon(APP, &old)
        .await
        .expect("old add-on kept");
    assert_eq!(upshift::plans::bare_name(&kept.plan.name), "premium-0");
    assert_eq!(notify_setting(&env, &old).await, notify_before);
    assert!(
        records
            .iter()
            .any(|r| matches!(r, Record::Retained { addon, until: Some(_) } if *addon == old)),
        "{records:#?}"
    );

    // No acknowledged write was lost: every write the dynos made to the old add-on is on the
    // new one, and the two servers hold the same data (this test's own dump).
    let written_old = env.acknowledged_where(|a| a == old);
    assert!(written_old.len() > 10, "the app wrote while the copy ran");
    assert_eq!(
        harness::missing_at(&new_url, &written_old).await,
        Vec::<String>::new()
    );
    let (a, b) = (
        common::snapshot(&old_url).await,
        common::snapshot(&new_url).await,
    );
    let only_old: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).collect();
    assert!(
        only_old.is_empty(),
        "keys only on the old server: {only_old:?}"
    );
    // The writers came back onto the new add-on and write there.
    common::eventually(
        Duration::from_secs(10),
        "writes reach the new add-on",
        || {
            let n = env.acknowledged_where(|a| a == new).len();
            async move { n > 0 }
        },
    )
    .await;

    // The writers were stopped once, for less than the provisioning took.
    let downtime = env.sim.downtime("web").expect("web was stopped");
    assert!(
        downtime < provisioning,
        "downtime {downtime:?} >= provisioning"
    );
    let f = env.formation().await;
    assert!(f.iter().any(|(t, q, _)| t == "web" && *q == 2), "{f:?}");
    // `upshift runs` says the old add-on is kept, and until when.
    let runs = cli(&env, &["runs"]);
    let out = String::from_utf8_lossy(&runs.stdout);
    assert!(out.contains("live swap"), "{out}");
    assert!(
        out.contains(&format!("old add-on kept: {old} until 20")),
        "{out}"
    );
    // `upshift retire` leaves it during its grace, and destroys it with --now.
    let early = cli(&env, &["retire", "-a", APP, "--confirm", APP]);
    assert_eq!(early.status.code(), Some(0));
    let said = String::from_utf8_lossy(&early.stdout);
    assert!(said.contains("nothing to retire"), "{said}");
    assert!(said.contains(&format!("{old}: kept until 20")), "{said}");
    assert!(
        env.client().addon(APP, &old).await.is_ok(),
        "destroyed during its grace"
    );
    let now = cli(&env, &["retire", "-a", APP, "--now", "--confirm", APP]);
    let out = String::from_utf8_lossy(&now.stdout);
    assert_eq!(now.status.code(), Some(0), "{out}");
    assert!(out.contains(&format!("{old}: destroyed")), "{out}");
    let gone = env.client().addon(APP, &old).await;
    assert!(
        gone.is_err()
            || gone
                .as_ref()
                .is_ok_and(|a| a.state.as_str() == "deprovisioned"),
        "{gone:?}"
    );
    assert_eq!(
        attached(&env, "ENKETO_REDIS_MAIN").await.as_deref(),
        Some(new.as_str())
    );
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_swap_that_fails_before_the_cutover_destroys_the_new_addon_and_the_app_never_stops()
{
    let env = Env::roomy(Duration::from_millis(500)).await;
    let old = env.client().addon(APP, MAIN).await.expect("MAIN").name;
    let notify_before = notify_setting(&env, &old).await;
    // The scale-down is refused: the run fails after the copy, before any downtime.
    env.inject(Fault::Http {
        method: Some("PATCH".into()),
        path: "/apps/*/formation".into(),
        status: 422,
        nth: 1,
        times: 1,
        retry_after: None,
    });
    let report = env.runner().run(&live_request()).await.expect("run");
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:#?}");
    let records = env.journal(&report.run_id);
    let (new, temp) = new_addon_of(&records).expect("the new add-on was created");
    assert_eq!(
        attached(&env, "ENKETO_REDIS_MAIN").await.as_deref(),
        Some(old.as_str())
    );
    assert_eq!(attached(&env, &temp).await, None);
    let gone = env.client().addon(APP, &new).await;
    assert!(
        gone.is_err()
            || gone
                .as_ref()
                .is_ok_and(|a| a.state.as_str() == "deprovisioned"),
        "the new add-on was not destroyed: {gone:?}"
    );
    assert_eq!(notify_setting(&env, &old).await, notify_before);
    assert_eq!(env.plan_of(MAIN).await, "premium-0");
    assert_eq!(env.sim.downtime("web"), None, "the writers never stopped");
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_swap_that_fails_during_the_move_moves_back_onto_the_untouched_old_addon() {
    let env = Env::roomy(Duration::from_millis(500)).await;
    let old = env.client().addon(APP, MAIN).await.expect("MAIN").name;
    let old_url = env.sim.redis_url(&old);
    // Removing the temporary attachment is refused at each of the move's three attempts: the
    // move has pointed ENKETO_REDIS_MAIN at the new add-on, then fails.
    env.inject(Fault::Http {
        method: Some("DELETE".into()),
        path: "/addon-attachments/*".into(),
        status: 403,
        nth: 1,
        times: 3,
        retry_after: None,
    });
    let report = env.runner().run(&live_request()).await.expect("run");
    env.sim.clear_faults();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:#?}");
    let records = env.journal(&report.run_id);
    let moved = records.iter().any(
        |r| matches!(r, Record::Effect { what, .. } if what.contains("ENKETO_REDIS_MAIN") && what.contains("now points at")),
    );
    assert!(moved, "the move never started: {records:#?}");
    assert_eq!(
        attached(&env, "ENKETO_REDIS_MAIN").await.as_deref(),
        Some(old.as_str())
    );
    assert_eq!(env.plan_of(MAIN).await, "premium-0");
    // Nothing of the run left on the app: no temporary or parking attachment.
    let vars = env.client().config_vars(APP).await.unwrap();
    let ours: Vec<&String> = vars
        .0
        .keys()
        .filter(|k| k.starts_with("UPSHIFT_"))
        .collect();
    assert!(ours.is_empty(), "{ours:?}");
    // Back on the old add-on, and no write was lost: every acknowledged write is there.
    let written = env.acknowledged_where(|a| a == old);
    assert_eq!(
        harness::missing_at(&old_url, &written).await,
        Vec::<String>::new()
    );
    let f = env.formation().await;
    assert!(f.iter().any(|(t, q, _)| t == "web" && *q == 2), "{f:?}");
    env.sim.shutdown().await;
}

/// Under `strict` the move detaches `ENKETO_REDIS_MAIN` before attaching the name to the new
/// add-on; attaches refused for a while there leave a gap with no config var of that name. The
/// step's retry (and a resume) must find the drained server through the run's parking
/// attachment and finish the move, not fail on the missing var and roll a finishable run back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_retried_in_the_detach_gap_finishes() {
    let env = Env::roomy_edited(Duration::from_millis(500), |s| {
        s.behaviour = upshift::sim::BehaviourSpec::of(upshift::sim::Profile::Strict);
    })
    .await;
    let old = env.client().addon(APP, MAIN).await.expect("MAIN").name;
    // The 3rd attach of the run is the name's re-attach after its detach: refused more often
    // than one call's own retries absorb, so the step itself retries in the gap.
    env.inject(Fault::Http {
        method: Some("POST".into()),
        path: "/addon-attachments".into(),
        status: 503,
        nth: 3,
        times: 7,
        retry_after: None,
    });
    let report = env.runner().run(&live_request()).await.expect("run");
    env.sim.clear_faults();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    let records = env.journal(&report.run_id);
    let (new, _) = new_addon_of(&records).expect("the new add-on was created");
    assert_eq!(
        attached(&env, "ENKETO_REDIS_MAIN").await.as_deref(),
        Some(new.as_str())
    );
    let written = env.acknowledged_where(|a| a == old || a == new || a == MAIN);
    assert!(!written.is_empty());
    let url = env.sim.redis_url(&new);
    assert_eq!(
        harness::missing_at(&url, &written).await,
        Vec::<String>::new(),
        "acknowledged writes missing on the new add-on"
    );
    env.sim.shutdown().await;
}

fn cli(env: &Env, args: &[&str]) -> std::process::Output {
    env.upshift()
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("upshift runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_the_live_swap_steps_and_guards_and_a_full_addon_blocks_it() {
    let env = Env::roomy(Duration::from_millis(300)).await;
    let args = [
        "plan",
        "-a",
        APP,
        "--change",
        "enketo_redis_main=premium-1",
        "--strategy",
        "live-swap",
    ];
    let o = cli(&env, &args);
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{out}");
    for needle in [
        "provision-new",
        "copy-live",
        "catch-up",
        "move-attachments",
        "retire-old",
        "the live copy needs 6",
        "notify_keyspace_events",
        "attachment(s) move to the new add-on",
        "both add-ons are billed",
        "/month while it is copied into",
        "the app has no preboot",
    ] {
        assert!(out.contains(needle), "{needle} missing from:\n{out}");
    }
    assert!(env.writes().is_empty(), "plan wrote: {:?}", env.writes());
    env.sim.shutdown().await;

    // The stock Enketo app fills premium-0's 40 connections: no room for the live copy.
    let env = Env::start(Duration::from_millis(300)).await;
    let o = cli(&env, &args);
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(out.contains("--strategy in-place"), "{out}");
    assert!(env.writes().is_empty(), "plan wrote: {:?}", env.writes());
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_strategy_input_exits_2_and_writes_nothing() {
    let env = Env::roomy(Duration::from_millis(300)).await;
    let base = [
        "run",
        "-a",
        APP,
        "--change",
        "enketo_redis_main=premium-1",
        "--confirm",
        APP,
    ];
    for (extra, says) in [
        (vec!["--strategy", "sideways"], "sideways"),
        (
            vec!["--strategy", "live-swap", "--playbook", "mine.toml"],
            "both choose the playbook",
        ),
        (vec!["--retire-old", "1d"], "live swap only"),
        (
            vec!["--strategy", "live-swap", "--retire-old", "soon"],
            "\"now\" or \"never\"",
        ),
    ] {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        let o = cli(&env, &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // `retire` with no app, or one the token does not see, is bad input, not "nothing to do".
    for (app, says) in [("", "is empty"), ("enketo-dmeo", "no app enketo-dmeo")] {
        let o = cli(&env, &["retire", "-a", app, "--now", "--confirm", app]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "retire -a {app:?}: {err}");
        assert!(err.contains(says), "retire -a {app:?}: {err}");
    }
    assert!(env.writes().is_empty(), "{:?}", env.writes());
    env.sim.shutdown().await;
}

/// Under the `heroku` profile (TLS, a lagging and sparse Data API, a stop grace with dynos
/// writing through it, pools warming up) and the `strict` one (CLIENT, CONFIG, DEBUG refused;
/// taken attachment names refused, so the move detaches first): the live swap ends on the new
/// add-on with every acknowledged write on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_swap_holds_under_the_heroku_and_strict_profiles() {
    for profile in [upshift::sim::Profile::Heroku, upshift::sim::Profile::Strict] {
        let env = Env::roomy_edited(Duration::from_millis(500), |s| {
            s.behaviour = upshift::sim::BehaviourSpec::of(profile);
        })
        .await;
        let old = env.client().addon(APP, MAIN).await.expect("MAIN").name;
        let report = env.runner().run(&live_request()).await.expect("run");
        assert_eq!(
            report.outcome,
            Outcome::Succeeded,
            "{profile:?}: {report:#?}"
        );
        let (new, _) = new_addon_of(&env.journal(&report.run_id)).expect("new add-on");
        assert_eq!(
            attached(&env, "ENKETO_REDIS_MAIN").await.as_deref(),
            Some(new.as_str()),
            "{profile:?}"
        );
        let new_url = env.sim.redis_url(&new);
        let written = env.acknowledged_where(|a| a == old);
        assert!(!written.is_empty(), "{profile:?}: the app wrote");
        assert_eq!(
            harness::missing_at(&new_url, &written).await,
            Vec::<String>::new(),
            "{profile:?}"
        );
        env.sim.shutdown().await;
    }
}

/// The second app of [`shared`]: its web dyno reads `ENKETO_REDIS_MAIN_URL` too.
const OTHER_APP: &str = "enketo-reports";

/// The roomy Enketo app whose MAIN add-on is also attached to a second app, `OTHER_APP`, as
/// `ENKETO_REDIS_MAIN`; that app's one web dyno keeps writing to it.
async fn shared() -> Env {
    let env = Env::roomy_edited(Duration::from_millis(300), |s| {
        let mut other = s.apps[0].clone();
        other.name = OTHER_APP.into();
        other.formation.retain(|f| f.process_type == "web");
        other.formation[0].quantity = 1;
        other.addons.truncate(1);
        let own = &mut other.addons[0];
        own.name = None;
        own.connections = [("web".to_owned(), 2)].into();
        own.seed = None;
        s.apps.push(other);
    })
    .await;
    let client = env.client();
    let main = client.addon(APP, MAIN).await.expect("MAIN");
    client
        .attach_addon(&main.id, OTHER_APP, "ENKETO_REDIS_MAIN", Some(OTHER_APP))
        .await
        .expect("MAIN attached to the second app");
    let name = main.name.clone();
    env.wait_until("the second app writes to MAIN", |sim| {
        sim.timeline().iter().any(|e| {
            matches!(&e.kind, upshift::sim::EventKind::Write { app, addon, ok: true, .. }
                if *addon == name && app == OTHER_APP)
        })
    })
    .await;
    env
}

/// An add-on another app uses too: a live swap stops only this app's writers, so the other
/// app's writes kept the drain from ending (found against the simulator: the run stopped the
/// writers for the whole drain timeout, then rolled back). `plan` and `run` now refuse up
/// front with the `only-this-app` guard, exit 3, and write nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_addon_another_app_uses_is_refused_up_front() {
    let env = shared().await;
    let setup = env.writes().len();
    let change = format!("{MAIN}=premium-1");
    let plan = [
        "plan",
        "-a",
        APP,
        "--change",
        &change,
        "--strategy",
        "live-swap",
    ];
    let run = [
        "run",
        "-a",
        APP,
        "--change",
        &change,
        "--strategy",
        "live-swap",
        "--confirm",
        APP,
    ];
    let json = [&plan[..], &["--json"]].concat();
    for args in [&plan[..], &json[..], &run[..]] {
        let o = cli(&env, args);
        let out =
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{}: {out}", args[0]);
        if args.contains(&"--json") {
            assert!(out.contains("\"only-this-app\""), "{out}");
        }
        for needle in [
            "also attached to other apps (ENKETO_REDIS_MAIN on enketo-reports)",
            "--strategy in-place",
            "addons:detach",
        ] {
            assert!(
                out.contains(needle),
                "{}: {needle} missing from:\n{out}",
                args[0]
            );
        }
        assert_eq!(
            env.writes().len(),
            setup,
            "{} wrote: {:?}",
            args[0],
            env.writes()
        );
    }
    let f = env.formation().await;
    assert!(f.iter().any(|(t, q, _)| t == "web" && *q == 2), "{f:?}");
    env.sim.shutdown().await;
}

/// `--retire-old now` leaves no way back: `plan` warns (text and JSON) and still exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retiring_the_old_addon_now_is_warned_in_the_plan() {
    let env = Env::roomy(Duration::from_millis(300)).await;
    let old = env.client().addon(APP, MAIN).await.expect("MAIN").name;
    let base = [
        "plan",
        "-a",
        APP,
        "--change",
        "enketo_redis_main=premium-1",
        "--strategy",
        "live-swap",
    ];
    let now = [&base[..], &["--retire-old", "now"]].concat();
    let o = cli(&env, &now);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("--retire-old now destroys"))
        .unwrap_or_else(|| panic!("no warning in:\n{text}"));
    assert!(line.trim_start().starts_with("WARN"), "{line}");
    assert!(line.contains(&old), "{line}");
    assert!(line.contains("no way back"), "{line}");

    let o = cli(&env, &[&now[..], &["--json"]].concat());
    assert_eq!(o.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("plan JSON");
    let guard = doc["guards"]
        .as_array()
        .expect("guards")
        .iter()
        .find(|g| g["id"] == "retire-old-now")
        .unwrap_or_else(|| panic!("no retire-old-now guard in {doc:#}"));
    assert_eq!(guard["verdict"], "warn", "{guard:#}");

    // The default grace period has no such warning.
    let o = cli(&env, &base);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(!text.contains("--retire-old now destroys"), "{text}");
    assert!(env.writes().is_empty(), "plan wrote: {:?}", env.writes());
    env.sim.shutdown().await;
}
