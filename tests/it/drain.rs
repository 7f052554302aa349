//! The drain check against a plan at its connection limit.

use std::time::{Duration, Instant};

use crate::harness;
use crate::run::assert_formation_restored;

use harness::{Env, MAIN, change, request};
use upshift::engine::Outcome;
use upshift::sim::EventKind;

async fn info_field(conn: &mut redis::aio::MultiplexedConnection, field: &str) -> u64 {
    let info: String = redis::cmd("INFO").query_async(conn).await.unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO has no {field}"))
}

/// A plan at its connection limit is why many upgrade, and the guard lets the run start since
/// stopping the writers frees the slots. Right after the scale-down the server can still be
/// full (the stopped dynos' connections not closed yet, or another client holding them): the
/// drain check is turned away. That is "not drained yet", not a failure: the run waits, then
/// goes on. It used to fail the step and roll back the change that frees the slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_connection_limit_after_the_scale_down_is_waited_out() {
    harness::require_redis_server();
    // Room for the test's own connection before the run (the stock scenario fills MAIN).
    let env = Env::roomy(Duration::from_millis(800)).await;
    let url = env.sim.redis_url(MAIN);
    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let (_, limit): (String, String) = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxclients")
        .query_async(&mut admin)
        .await
        .unwrap();
    let runner = env.runner();
    let req = request(vec![change(MAIN, "premium-1")], None);
    let run = tokio::spawn(async move { runner.run(&req).await });
    env.wait_until("web scaled to 0", |sim| {
        sim.timeline().iter().any(|e| {
            matches!(&e.kind, EventKind::FormationChanged { process_type, to: 0, .. } if process_type == "web")
        })
    })
    .await;
    // Full from now on: the connections already open stay, no new one gets in.
    let rejected = info_field(&mut admin, "rejected_connections").await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg(1)
        .query_async(&mut admin)
        .await
        .unwrap();
    let start = Instant::now();
    while info_field(&mut admin, "rejected_connections").await == rejected {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nothing tried to connect to the full server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Turned away at least once: keep it full a little longer, then free the slots.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg(&limit)
        .query_async(&mut admin)
        .await
        .unwrap();
    let report = run.await.unwrap().expect("run");
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    assert_eq!(env.plan_of(MAIN).await, "premium-1");
    assert_formation_restored(&env).await;
    let acknowledged = env.acknowledged_writes(MAIN).await;
    assert!(!acknowledged.is_empty());
    assert_eq!(
        env.missing_keys(MAIN, &acknowledged).await,
        Vec::<String>::new()
    );
    env.sim.shutdown().await;
}
