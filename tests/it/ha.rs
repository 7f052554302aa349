//! HA plans (issue 11, 2): every add-on on a premium, private or shield plan has a real standby
//! redis-server replicating from its primary, as on Heroku. The simulator's side (the link in
//! `CLIENT LIST`, the slot it takes, plan changes and process cleanup) and the runner's (the
//! drain decides "drained" by what writes, not by who is connected).

use crate::common;
use crate::harness;
use crate::run;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use harness::{CACHE, Env, MAIN, change, request, short_playbook};
use upshift::engine::Outcome;
use upshift::sim::{Profile, Simulator};

/// `(role, pid)` of every redis-server the simulator lists.
async fn processes(sim: &Simulator) -> Vec<(String, u32)> {
    let url = sim.api_url().join("/__sim/processes").unwrap();
    let list: Vec<serde_json::Value> = reqwest::get(url).await.unwrap().json().await.unwrap();
    list.iter()
        .map(|p| {
            (
                p["role"].as_str().unwrap().to_owned(),
                u32::try_from(p["pid"].as_u64().unwrap()).unwrap(),
            )
        })
        .collect()
}

fn pids_of(list: &[(String, u32)], role: &str) -> Vec<u32> {
    list.iter()
        .filter(|(r, _)| r == role)
        .map(|(_, p)| *p)
        .collect()
}

async fn client_list(url: &str) -> String {
    let mut con = common::redis(url).await;
    redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut con)
        .await
        .unwrap()
}

/// The standby's link as Heroku shows it: `flags=S`, last command `replconf`.
fn has_replica_link(list: &str) -> bool {
    list.lines()
        .any(|l| l.contains(" flags=S ") && l.contains(" cmd=replconf"))
}

/// Opens connections until the server refuses one; returns how many it accepted.
async fn accepted_connections(url: &str, at_most: u32) -> u32 {
    let mut held = Vec::new();
    for n in 0..at_most {
        let Ok(client) = redis::Client::open(url) else {
            return n;
        };
        let Ok(mut con) = client.get_multiplexed_async_connection().await else {
            return n;
        };
        if redis::cmd("PING")
            .query_async::<String>(&mut con)
            .await
            .is_err()
        {
            return n;
        }
        held.push(con);
    }
    at_most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ha_addon_has_a_standby_that_takes_a_slot_follows_plan_changes_and_never_leaks() {
    let sim = common::start(common::shop(0, "premium-0", 200, 0)).await;
    let first = processes(&sim).await;
    let (primary, standby) = (pids_of(&first, "primary"), pids_of(&first, "standby"));
    assert_eq!((primary.len(), standby.len()), (1, 1), "{first:?}");
    assert!(common::alive(standby[0]));
    let url = sim.redis_url("shop_redis");
    assert!(has_replica_link(&client_list(&url).await));
    // Let the server see the listing connection close before counting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The link is one of the plan's 40 connections: apps get 39.
    assert_eq!(accepted_connections(&url, 45).await, 39);

    // A plan change: the new primary has its own standby, the old pair is gone.
    let c = common::client(&sim);
    c.change_addon_plan("shop", "shop_redis", "premium-1")
        .await
        .unwrap();
    common::wait_provisioned(&c, "shop", "shop_redis", "heroku-redis:premium-1").await;
    let second = processes(&sim).await;
    let new_standby = pids_of(&second, "standby");
    assert_eq!(new_standby.len(), 1, "{second:?}");
    assert!(!new_standby.contains(&standby[0]));
    common::eventually(Duration::from_secs(5), "the old pair stopped", || async {
        !common::alive(primary[0]) && !common::alive(standby[0])
    })
    .await;
    let new_url = sim.redis_url("shop_redis");
    assert_ne!(new_url, url);
    assert!(has_replica_link(&client_list(&new_url).await));
    assert_eq!(
        common::snapshot(&new_url).await.len(),
        200,
        "the data moved"
    );

    // Shutdown stops every process, the standby included.
    let all: Vec<u32> = second.iter().map(|(_, p)| *p).collect();
    sim.shutdown().await;
    assert!(all.iter().all(|p| !common::alive(*p)), "{second:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mini_addon_has_no_standby() {
    let sim = common::start(common::shop(0, "mini", 10, 0)).await;
    let list = processes(&sim).await;
    assert!(pids_of(&list, "standby").is_empty(), "{list:?}");
    assert!(!has_replica_link(
        &client_list(&sim.redis_url("shop_redis")).await
    ));
    sim.shutdown().await;
}

/// The `heroku` profile with the standby linked and the platform's monitoring active on the
/// servers while the run drains: the run succeeds (nobody connected holds it up forever) and
/// the test's own digests show no write lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_is_not_held_up_by_the_standby_or_the_monitor_and_no_write_is_lost() {
    let env = Env::start_with(Duration::from_millis(600), Profile::Heroku).await;
    let cache_url = env.sim.redis_url(CACHE);
    // Both connections are there and active before the run: the link idles 0-1 s, the
    // monitor has issued INFO within its 1.5 s period.
    common::eventually(Duration::from_secs(5), "standby and monitor active", || {
        let url = cache_url.clone();
        async move {
            let list = client_list(&url).await;
            has_replica_link(&list)
                && list.lines().any(|l| {
                    l.contains("name=heroku-platform")
                        && l.contains(" idle=0 ")
                        && l.contains(" cmd=info")
                })
        }
    })
    .await;
    let before = run::seeded(&env, CACHE).await;
    let req = request(
        vec![change(MAIN, "premium-1"), change(CACHE, "premium-1")],
        None,
    );
    let report = env.runner().run(&req).await.expect("run");
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    // Held up by the link or the monitor, the drain would run into its 120 s timeout.
    assert!(report.downtime < Duration::from_secs(30), "{report:#?}");
    let journal = run::journal_text(&env, &report.run_id);
    assert!(journal.contains("OldServer"), "the drain ended: {journal}");
    // The new servers have their own standbys.
    for addon in [MAIN, CACHE] {
        assert!(has_replica_link(
            &client_list(&env.sim.redis_url(addon)).await
        ));
    }
    run::assert_formation_restored(&env).await;
    run::assert_no_data_lost(&env, &before, &[CACHE, MAIN]).await;
    env.sim.shutdown().await;
}

/// A real late writer, a client outside the formation writing every 100 ms, is still caught
/// with the standby and the monitor connected: the run stops before any plan change and names
/// the writer (last command `set`), not the replica link. Every write it made is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_writer_is_caught_beside_the_standby_and_the_monitor() {
    let env = Env::start_with(Duration::from_millis(500), Profile::Heroku).await;
    let url = env.sim.redis_url(CACHE);
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU32::new(0));
    let writer = {
        let (stop, written) = (Arc::clone(&stop), Arc::clone(&written));
        let mut con = common::redis(&url).await;
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let n = written.load(Ordering::SeqCst);
                if redis::cmd("SET")
                    .arg(format!("late:{n}"))
                    .arg(n)
                    .query_async::<()>(&mut con)
                    .await
                    .is_ok()
                {
                    written.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let pb = short_playbook("4s", "45m");
    let req = request(vec![change(CACHE, "premium-1")], Some(&pb));
    let report = env.runner().run(&req).await.expect("run");
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:#?}");
    // The drain's failure, as journaled, names the writer and only the writer.
    let journal = run::journal_text(&env, &report.run_id);
    assert!(journal.contains("clients still active"), "{journal}");
    assert!(journal.contains("last command set"), "{journal}");
    assert!(!journal.contains("replconf"), "{journal}");
    assert!(!journal.contains("heroku-platform"), "{journal}");
    assert!(
        !env.writes().iter().any(|w| w.contains("/addons/")),
        "no plan change may be sent: {:?}",
        env.writes()
    );
    assert_eq!(env.plan_of(CACHE).await, "premium-0");
    run::assert_formation_restored(&env).await;
    let n = written.load(Ordering::SeqCst);
    assert!(n > 10, "the writer wrote through the drain: {n}");
    let keys: Vec<String> = (0..n).map(|i| format!("late:{i}")).collect();
    assert_eq!(env.missing_keys(CACHE, &keys).await, Vec::<String>::new());
    env.sim.shutdown().await;
}
