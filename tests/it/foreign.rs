//! A repair never touches data upshift never held (hostile pass 4, finding H): when the changed
//! add-on's config var leads, after the switch, to another add-on's server (a different
//! `run_id` from the old server's, so "a new server" by that test alone), the run must neither
//! verify nor repair that server as the add-on's. Before, it wrote the snapshot's keys over the
//! other add-on's data, deleted that add-on's own keys, and exited 0.
//!
//! Hostile pass 5 (#2, #7): a URL no other config var names (a forwarder to another add-on's
//! server, a foreign server, a database heroku-redis does not have) passed the address check;
//! the server's values differed from the snapshot's and were "repaired" all the same, live and
//! in the rollback's settle-plan. And the to-do list of a refusal told the operator to restore
//! through that very config var.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::harness::{APP, CACHE, Env, MAIN, change, request, small_seeds};
use crate::run::{journal_text, seeded, web_quantity};
use upshift::engine::{Action, Outcome};
use upshift::runner::record::Record;
use upshift::runner::reporter::{Reporter, RunEvent};
use upshift::sim::Fault;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_leading_to_another_addons_server_is_never_repaired() {
    // Room on MAIN for this test's own connection beside the dynos'.
    let env = Env::roomy(Duration::from_millis(300)).await;
    let main_before = seeded(&env, MAIN).await;
    let cache_before = seeded(&env, CACHE).await;
    // MAIN holds keys the cache lacks: a repair from MAIN's snapshot would write them there.
    assert!(
        main_before.keys().any(|k| !cache_before.contains_key(k)),
        "MAIN must hold keys the cache lacks"
    );
    env.inject(Fault::UrlOfAnotherAfterSwitch {
        addon: Some(MAIN.into()),
        other: CACHE.into(),
    });
    let req = request(vec![change(MAIN, "premium-1")], None);
    let report = env.runner().run(&req).await.expect("run");

    assert_eq!(report.outcome, Outcome::NeedsAttention, "{report:#?}");
    assert_eq!(
        report.outcome.exit_code(),
        upshift::exit::ExitCode::NeedsAttention
    );
    // The other add-on's data: exactly as before, by this test's own read.
    assert_eq!(
        seeded(&env, CACHE).await,
        cache_before,
        "the cache was written"
    );
    // The writers stay stopped: their add-on's URL leads to data that is not theirs.
    assert_eq!(web_quantity(&env).await, 0, "writers must stay stopped");
    let journal = journal_text(&env, &report.run_id);
    assert!(
        journal.contains("ENKETO_REDIS_MAIN_URL")
            && journal.contains("leads to the same Redis server"),
        "{journal}"
    );
    assert!(journal.contains("ENKETO_REDIS_CACHE_URL"), "{journal}");
    let message = report.message.clone().unwrap_or_default();
    assert!(!message.is_empty(), "{report:#?}");
    assert_no_restore_through_the_var(&message);
    env.sim.shutdown().await;
}

/// A TCP forwarder on a free loopback port to `port`: another address of the same server,
/// which no config var of the app names.
async fn forwarder(port: u16) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let local = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (local, task)
}

/// The cache moved to MAIN's target plan first, so its server's limits are the target's (the
/// limits alone cannot tell the two apart, and the wait for the new plan ends), then MAIN's
/// config var pointed, once its plan change ends, at a forwarder to the cache's server.
/// Returns the cache's URL and the forwarder's task.
async fn cache_on_premium_1_behind_a_forwarder(env: &Env) -> (String, tokio::task::JoinHandle<()>) {
    let client = env.client();
    client
        .change_addon_plan(crate::harness::APP, CACHE, "premium-1")
        .await
        .expect("cache plan change");
    crate::common::wait_provisioned(
        &client,
        crate::harness::APP,
        CACHE,
        "heroku-redis:premium-1",
    )
    .await;
    let cache_url = env.sim.redis_url(CACHE);
    let port: u16 = cache_url.rsplit_once(':').unwrap().1.parse().unwrap();
    let (fwd, task) = forwarder(port).await;
    env.inject(Fault::UrlAfterChange {
        addon: Some(MAIN.into()),
        url: via_port(&cache_url, fwd),
    });
    (cache_url, task)
}

/// `url` with its port replaced by `port` (the simulator's URLs end with the port).
fn via_port(url: &str, port: u16) -> String {
    let (head, _) = url.rsplit_once(':').expect("a port");
    format!("{head}:{port}")
}

/// The to-do list of a refused server sends nobody to restore through the config var that
/// leads there; it names the attachment and config var checks and `resume`.
fn assert_no_restore_through_the_var(message: &str) {
    assert!(!message.contains("restore --url"), "{message}");
    assert!(!message.contains("config:get"), "{message}");
    assert!(message.contains("Do NOT restore through"), "{message}");
    assert!(
        message.contains("heroku addons -a enketo-demo")
            && message.contains("heroku config -a enketo-demo"),
        "{message}"
    );
    assert!(message.contains("upshift resume"), "{message}");
}

fn foreign_journaled(env: &Env, run_id: &str, addon_name: &str) -> bool {
    env.journal(run_id)
        .iter()
        .any(|r| matches!(r, Record::ForeignServer { addon } if addon == addon_name))
}

/// The name of the add-on behind an attachment, as the journal records it.
async fn addon_name(env: &Env, attachment: &str) -> String {
    env.client()
        .addon(crate::harness::APP, attachment)
        .await
        .expect("add-on")
        .name
}

/// Hostile pass 5, #2 (a): MAIN's config var leads, after the switch, to the cache add-on's
/// server through a forwarder, an address no config var names. The cache's key names are all
/// in MAIN's snapshot, with other values: no migration changes a value, so the run refuses to
/// repair. Before, every cache value was overwritten with MAIN's and the run succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_addons_server_behind_a_forwarder_is_never_repaired() {
    let env = Env::roomy_edited(Duration::from_millis(300), small_seeds).await;
    let (cache_url, task) = cache_on_premium_1_behind_a_forwarder(&env).await;
    let main_before = seeded(&env, MAIN).await;
    let cache_before = seeded(&env, CACHE).await;
    let req = request(vec![change(MAIN, "premium-1")], None);
    let report = env.runner().run(&req).await.expect("run");

    assert_eq!(report.outcome, Outcome::NeedsAttention, "{report:#?}");
    assert_eq!(
        report.outcome.exit_code(),
        upshift::exit::ExitCode::NeedsAttention
    );
    // The other add-on's data, by this test's own read: exactly as before.
    assert_eq!(
        seeded(&env, CACHE).await,
        cache_before,
        "the cache was written"
    );
    assert_ne!(cache_before, main_before);
    assert_eq!(web_quantity(&env).await, 0, "writers must stay stopped");
    let journal = journal_text(&env, &report.run_id);
    assert!(
        journal.contains("whose value or type differs from the snapshot")
            && journal.contains("not this add-on's data, or was written after the drain"),
        "{journal}"
    );
    assert!(!journal.contains(&cache_url), "no password in the journal");
    let main = addon_name(&env, MAIN).await;
    assert!(foreign_journaled(&env, &report.run_id, &main), "{journal}");
    // Nothing repaired, by the journal too.
    assert!(
        env.journal(&report.run_id)
            .iter()
            .all(|r| !matches!(r, Record::Verified { repaired, .. } if *repaired > 0)),
        "{journal}"
    );
    assert_no_restore_through_the_var(&report.message.clone().unwrap_or_default());
    task.abort();
    env.sim.shutdown().await;
}

/// Hostile pass 5, #2 (c): the plan change fails (the add-on stays on its old plan) and the
/// config var then leads to the cache's server through a forwarder. The rollback's
/// settle-plan verifies it as MAIN's and, before, "repaired" it. Now it refuses: the run needs
/// attention, the writers stay stopped, the cache is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollback_never_repairs_another_addons_server() {
    let env = Env::roomy_edited(Duration::from_millis(300), small_seeds).await;
    let cache_before = seeded(&env, CACHE).await;
    let cache_url = env.sim.redis_url(CACHE);
    let port: u16 = cache_url.rsplit_once(':').unwrap().1.parse().unwrap();
    let (fwd, task) = forwarder(port).await;
    env.inject(Fault::FailProvisioning {
        addon: Some(MAIN.into()),
        message: None,
    });
    env.inject(Fault::UrlAfterChange {
        addon: Some(MAIN.into()),
        url: via_port(&cache_url, fwd),
    });
    let req = request(vec![change(MAIN, "premium-1")], None);
    let report = env.runner().run(&req).await.expect("run");

    assert_eq!(report.outcome, Outcome::NeedsAttention, "{report:#?}");
    assert_eq!(
        seeded(&env, CACHE).await,
        cache_before,
        "the cache was written"
    );
    assert_eq!(web_quantity(&env).await, 0, "writers must stay stopped");
    assert_eq!(env.plan_of(MAIN).await, "premium-0");
    let journal = journal_text(&env, &report.run_id);
    assert!(
        journal.contains("whose value or type differs from the snapshot"),
        "{journal}"
    );
    let main = addon_name(&env, MAIN).await;
    assert!(foreign_journaled(&env, &report.run_id, &main), "{journal}");
    assert_no_restore_through_the_var(&report.message.clone().unwrap_or_default());
    task.abort();
    env.sim.shutdown().await;
}

/// Hostile pass 5, #2 (b): the config var names database 3 of a foreign server. heroku-redis
/// has only database 0: the run refuses the URL before it verifies or writes anything; the
/// foreign server's databases stay as they were (db 3 empty, db 0 its own key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_naming_another_database_is_refused() {
    let env = Env::roomy_edited(Duration::from_millis(300), small_seeds).await;
    let foreign = crate::verify_support::Server::builder()
        .password("f0reignSECRET")
        .start();
    let mut con = foreign.conn();
    let () = redis::cmd("SET")
        .arg("theirs")
        .arg("kept")
        .query(&mut con)
        .unwrap();
    env.inject(Fault::UrlAfterChange {
        addon: Some(MAIN.into()),
        url: format!("{}/3", foreign.url()),
    });
    let req = request(vec![change(MAIN, "premium-1")], None);
    let report = env.runner().run(&req).await.expect("run");

    assert_eq!(report.outcome, Outcome::NeedsAttention, "{report:#?}");
    assert_eq!(web_quantity(&env).await, 0, "writers must stay stopped");
    let db0: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
    let theirs: String = redis::cmd("GET").arg("theirs").query(&mut con).unwrap();
    let () = redis::cmd("SELECT").arg(3).query(&mut con).unwrap();
    let db3: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!((db0, theirs.as_str(), db3), (1, "kept", 0));
    let journal = journal_text(&env, &report.run_id);
    assert!(
        journal.contains("names database 3") && journal.contains("has only database 0"),
        "{journal}"
    );
    assert!(!journal.contains("f0reignSECRET"), "{journal}");
    let main = addon_name(&env, MAIN).await;
    assert!(foreign_journaled(&env, &report.run_id, &main), "{journal}");
    let message = report.message.clone().unwrap_or_default();
    assert!(!message.contains("f0reignSECRET"), "{message}");
    assert_no_restore_through_the_var(&message);
    env.sim.shutdown().await;
}

/// Values a migration changed: a plan change copies by replication and never does that, so
/// the server is not proven the add-on's. No repair: needs-attention, writers stopped, the
/// server's values left as found (read here), and the journal says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_changed_after_the_plan_change_are_not_repaired() {
    let env = Env::roomy_edited(Duration::from_millis(300), small_seeds).await;
    env.inject(Fault::ChangeKeys {
        addon: Some(MAIN.into()),
        count: 3,
    });
    let req = request(vec![change(MAIN, "premium-1")], None);
    let report = env.runner().run(&req).await.expect("run");

    assert_eq!(report.outcome, Outcome::NeedsAttention, "{report:#?}");
    assert_eq!(web_quantity(&env).await, 0, "writers must stay stopped");
    // Nothing was written: the three values the migration changed are still there.
    let after = seeded(&env, MAIN).await;
    let changed = after.keys().filter(|k| k.starts_with("ca:")).count();
    assert!(changed > 3, "{changed}");
    let mut con = crate::common::redis(&env.sim.redis_url(MAIN)).await;
    let mut still = 0;
    for key in after.keys().filter(|k| k.starts_with("ca:")) {
        let t: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut con)
            .await
            .unwrap();
        if t == "string" {
            let v: String = redis::cmd("GET")
                .arg(key)
                .query_async(&mut con)
                .await
                .unwrap();
            still += usize::from(v == "changed-by-migration");
        }
    }
    assert_eq!(still, 3, "the changed values were overwritten");
    let journal = journal_text(&env, &report.run_id);
    assert!(
        journal.contains("holds 3 key(s) whose value or type differs from the snapshot"),
        "{journal}"
    );
    env.sim.shutdown().await;
}

const MAIN_VAR: &str = "ENKETO_REDIS_MAIN_URL";

/// The password of a simulator Redis URL (`redis://user:PASSWORD@host:port`), to prove it
/// never reaches the output.
fn password(url: &str) -> &str {
    let userinfo = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .map_or("", |(u, _)| u);
    userinfo.rsplit(':').next().unwrap_or_default()
}

fn upshift(env: &Env, args: &[&str]) -> (Option<i32>, String, String) {
    let o = env
        .upshift()
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("upshift runs");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Hostile pass 5, #9: a config var that already leads to another add-on's server before the
/// run blocks in the guards. `plan` says so (exit 3), and `run` stops at the guards (exit 3):
/// the writers keep running, nothing is written, the other add-on's data is untouched. Before,
/// `plan` passed and `run` stopped the app, then refused at the drain and kept it down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_already_leading_to_another_addons_server_blocks_before_the_writers_stop() {
    let env = Env::start(Duration::from_millis(300)).await;
    let formation = env.formation().await;
    let web = web_quantity(&env).await;
    assert!(web > 0, "{formation:?}");
    let cache_url = env.sim.redis_url(CACHE);
    let secret = password(&cache_url).to_owned();
    assert!(secret.len() >= 8, "the scenario's URL has a password");
    env.sim
        .set_config_var(APP, MAIN_VAR, Some(&cache_url))
        .unwrap();
    let cache_before = seeded(&env, CACHE).await;
    let target = format!("{MAIN}=premium-1");

    let (code, out, err) = upshift(&env, &["plan", "-a", APP, "--change", &target]);
    assert_eq!(code, Some(3), "{out}\n{err}");
    let line = out
        .lines()
        .find(|l| l.contains("BLOCK") && l.contains(MAIN_VAR))
        .unwrap_or_else(|| panic!("no BLOCKED line naming {MAIN_VAR}: {out}"));
    assert!(
        line.contains("leads to the same Redis server") && line.contains("ENKETO_REDIS_CACHE_URL"),
        "says whose server it is: {line}"
    );
    assert!(
        line.contains("heroku addons -a"),
        "says what to check: {line}"
    );

    let (code, out, err) = upshift(
        &env,
        &[
            "run",
            "-a",
            APP,
            "--change",
            &target,
            "--confirm",
            APP,
            "--watch",
            "0",
        ],
    );
    assert_eq!(code, Some(3), "{out}\n{err}");
    assert!(format!("{out}{err}").contains(MAIN_VAR), "{out}\n{err}");
    for text in [&out, &err] {
        assert!(!text.contains(&secret), "the password leaked: {text}");
    }
    // By this test's own reads: the writers never stopped, nothing was written.
    assert!(env.writes().is_empty(), "{:?}", env.writes());
    assert_eq!(env.formation().await, formation);
    assert_eq!(web_quantity(&env).await, web);
    assert_eq!(env.plan_of(MAIN).await, "premium-0");
    assert_eq!(
        seeded(&env, CACHE).await,
        cache_before,
        "the cache was written"
    );
    env.sim.shutdown().await;
}

/// Points MAIN's config var at `url` as soon as the verify step is done: a teammate's
/// `heroku addons:attach` landing between verify and the restore of the formation.
struct ReattachAfterVerify {
    env: Arc<Env>,
    url: String,
    done: AtomicBool,
}

impl Reporter for ReattachAfterVerify {
    fn report(&self, event: &RunEvent) {
        if let RunEvent::StepDone {
            action: Action::Verify,
            ..
        } = event
            && !self.done.swap(true, Ordering::SeqCst)
        {
            self.env
                .sim
                .set_config_var(APP, MAIN_VAR, Some(&self.url))
                .expect("config var set");
        }
    }
}

/// Runs MAIN to premium-1 (under `playbook`) with MAIN's config var moved to `url` once
/// verify is done, and checks what every such run must leave, by this test's own reads: the
/// outcome needs-attention (exit 4), the writers at 0, the cache's data as before, and no
/// restore of the formation in the journal. Returns the journal's text.
async fn moved_after_verify(env: &Arc<Env>, url: String, playbook: Option<&str>) -> String {
    let cache_before = seeded(env, CACHE).await;
    let reporter = Arc::new(ReattachAfterVerify {
        env: env.clone(),
        url,
        done: AtomicBool::new(false),
    });
    let runner = env.runner_to(upshift::runner::Interrupts::default(), reporter.clone());
    let req = request(vec![change(MAIN, "premium-1")], playbook);
    let report = runner.run(&req).await.expect("run");

    assert!(
        reporter.done.load(Ordering::SeqCst),
        "verify never finished"
    );
    assert_eq!(report.outcome, Outcome::NeedsAttention, "{report:#?}");
    assert_eq!(
        report.outcome.exit_code(),
        upshift::exit::ExitCode::NeedsAttention
    );
    assert_eq!(web_quantity(env).await, 0, "writers must stay stopped");
    assert_eq!(
        seeded(env, CACHE).await,
        cache_before,
        "the cache was written"
    );
    let journal = journal_text(env, &report.run_id);
    assert!(
        journal.contains("the writers stay stopped") && journal.contains(MAIN_VAR),
        "{journal}"
    );
    assert!(
        !journal.contains("restore formation"),
        "the formation was restored: {journal}"
    );
    journal
}

/// Hostile pass 5, #6: a config var re-pointed between verify and restore-formation (here to
/// the cache add-on's URL) keeps the writers stopped, and the run says what to check. Before,
/// the writers came back onto the other add-on's server and only the health step noticed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_moved_after_verify_keeps_the_writers_stopped() {
    let env = Arc::new(Env::start(Duration::from_millis(300)).await);
    let journal = moved_after_verify(&env, env.sim.redis_url(CACHE), None).await;
    assert!(journal.contains("heroku addons -a"), "{journal}");
}

/// As above, but the config var moves to an address no other config var names (a forwarder
/// to the cache's server): only the verified endpoint and `run_id` tell it apart, and they
/// keep the writers stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_moved_to_an_unknown_address_after_verify_keeps_the_writers_stopped() {
    let env = Arc::new(Env::start(Duration::from_millis(300)).await);
    let cache_url = env.sim.redis_url(CACHE);
    let cache_port: u16 = cache_url
        .trim_end_matches('/')
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("a URL ending with its port");
    let (port, _forwarding) = forwarder(cache_port).await;
    let playbook = crate::harness::short_playbook("30s", "4s");
    let url = via_port(cache_url.trim_end_matches('/'), port);
    let journal = moved_after_verify(&env, url, Some(&playbook)).await;
    assert!(
        journal.contains("changed since verify") && journal.contains(&format!(":{port}")),
        "{journal}"
    );
}

/// Hostile pass 5, #2, what the data cannot tell: the cache's server, emptied while the
/// writers are stopped, reached by MAIN's config var through a forwarder (an address no config
/// var names). Every key of MAIN's snapshot is merely missing there, as after a plan change that
/// lost them all, and no key is foreign. Only the server's `run_id`, the cache's, tells it
/// apart: the repair is refused and the cache stays empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_addons_server_behind_a_forwarder_is_never_filled() {
    let env = Env::roomy_edited(Duration::from_millis(800), small_seeds).await;
    let (cache_url, task) = cache_on_premium_1_behind_a_forwarder(&env).await;
    let runner = env.runner();
    let req = request(vec![change(MAIN, "premium-1")], None);
    let run = tokio::spawn(async move { runner.run(&req).await });
    env.wait_until("the plan change started", |sim| {
        sim.timeline()
            .iter()
            .any(|e| matches!(e.kind, upshift::sim::EventKind::ProvisioningStarted { .. }))
    })
    .await;
    // The writers are stopped: empty the cache's server now.
    let mut cache = redis::Client::open(cache_url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut cache)
        .await
        .unwrap();
    let report = run.await.unwrap().expect("run");

    assert_eq!(report.outcome, Outcome::NeedsAttention, "{report:#?}");
    let keys: u64 = redis::cmd("DBSIZE").query_async(&mut cache).await.unwrap();
    assert_eq!(
        keys, 0,
        "the cache's server was filled from MAIN's snapshot"
    );
    assert_eq!(web_quantity(&env).await, 0, "writers must stay stopped");
    let journal = journal_text(&env, &report.run_id);
    assert!(journal.contains("(the same run_id)"), "{journal}");
    assert!(!journal.contains(&cache_url), "no password in the journal");
    let main = addon_name(&env, MAIN).await;
    assert!(foreign_journaled(&env, &report.run_id, &main), "{journal}");
    assert_no_restore_through_the_var(&report.message.clone().unwrap_or_default());
    task.abort();
    env.sim.shutdown().await;
}
