//! A repair never touches data upshift never held (hostile pass 4, finding H): when the changed
//! add-on's config var leads, after the switch, to another add-on's server (a different
//! `run_id` from the old server's, so "a new server" by that test alone), the run must neither
//! verify nor repair that server as the add-on's. Before, it wrote the snapshot's keys over the
//! other add-on's data, deleted that add-on's own keys, and exited 0.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::harness::{APP, CACHE, Env, MAIN, change, request};
use crate::run::{journal_text, seeded, web_quantity};
use upshift::engine::{Action, Outcome};
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

/// A plain TCP forwarder to `to` (`host:port`) on a port of its own: the same server under an
/// address no config var shows. Returns its port.
async fn forwarder(to: String) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let to = to.clone();
            tokio::spawn(async move {
                if let Ok(mut out) = tokio::net::TcpStream::connect(&to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    port
}

/// As above, but the config var moves to an address no other config var names (a forwarder
/// to the cache's server): only the verified endpoint and `run_id` tell it apart, and they
/// keep the writers stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_moved_to_an_unknown_address_after_verify_keeps_the_writers_stopped() {
    let env = Arc::new(Env::start(Duration::from_millis(300)).await);
    let cache_url = env.sim.redis_url(CACHE);
    let (head, endpoint) = cache_url.rsplit_once('@').expect("a URL with a password");
    let port = forwarder(endpoint.trim_end_matches('/').to_owned()).await;
    let playbook = crate::harness::short_playbook("30s", "4s");
    let url = format!("{head}@127.0.0.1:{port}");
    let journal = moved_after_verify(&env, url, Some(&playbook)).await;
    assert!(
        journal.contains("changed since verify") && journal.contains(&format!(":{port}")),
        "{journal}"
    );
}
