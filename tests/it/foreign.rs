//! A repair never touches data upshift never held (hostile pass 4, finding H): when the changed
//! add-on's config var leads, after the switch, to another add-on's server (a different
//! `run_id` from the old server's, so "a new server" by that test alone), the run must neither
//! verify nor repair that server as the add-on's. Before, it wrote the snapshot's keys over the
//! other add-on's data, deleted that add-on's own keys, and exited 0.

use std::time::Duration;

use crate::harness::{CACHE, Env, MAIN, change, request};
use crate::run::{journal_text, seeded, web_quantity};
use upshift::engine::Outcome;
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
