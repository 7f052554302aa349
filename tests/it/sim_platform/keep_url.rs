//! Issue 11, 5(f): the URL kept across a plan change (the `keep_url` knob).

use std::time::Duration;

use upshift::sim::EventKind;

use super::{client_names, writes_by};
use crate::common::{self, client, eventually, shop};

/// INFO `section` of whatever server answers at `url` now, or `None` while nothing does.
async fn info_at(url: &str, section: &str) -> Option<String> {
    let url = format!("{url}#insecure");
    let client = redis::Client::open(url.as_str()).ok()?;
    let mut con = client.get_multiplexed_async_connection().await.ok()?;
    redis::cmd("INFO")
        .arg(section)
        .query_async(&mut con)
        .await
        .ok()
}

fn info_field(info: &str, name: &str) -> String {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Issue 11, 5(f): under `keep_url` (the `in-place` profile) a plan change ends with the new
/// server behind the OLD URL, over TLS: the config var is byte-identical, yet the server
/// behind it is another process (`run_id`, the new plan's `maxmemory`), the old one is gone,
/// its connections dropped, the data the same. No release, no restart: the app's dyno
/// reconnects through the same URL on its own, and the HA standby follows its primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_url_puts_the_new_server_behind_the_old_url() {
    use upshift::sim::{BehaviourSpec, Profile};
    let mut scenario = shop(1, "premium-0", 300, 2);
    scenario.behaviour = BehaviourSpec::of(Profile::InPlace);
    let sim = common::start_with(scenario, Duration::from_millis(600)).await;
    assert!(sim.behaviour().keep_url);
    let c = client(&sim);
    let var = "SHOP_REDIS_URL";
    let url = c.config_vars("shop").await.unwrap().0[var].clone();
    assert!(url.starts_with("rediss://"), "TLS, as on Heroku");
    let releases = c.releases("shop").await.unwrap().len();
    // The seeded keys; the dyno's own (`wr:`, `counter:`, `dyno:`) are judged apart.
    let seeded = |mut snap: std::collections::BTreeMap<String, _>| {
        snap.retain(|k: &String, _| {
            !["wr:", "counter:", "dyno:"]
                .iter()
                .any(|p| k.starts_with(p))
        });
        snap
    };
    let before = seeded(common::snapshot(&url).await);
    assert_eq!(before.len(), 300);
    let mut old_con = common::redis(&url).await;
    let old = info_at(&url, "server").await.expect("the old server");
    let (old_run_id, old_pid) = (info_field(&old, "run_id"), info_field(&old, "process_id"));
    let old_pid: u32 = old_pid.parse().unwrap();
    assert!(common::alive(old_pid));

    c.change_addon_plan("shop", "shop_redis", "premium-1")
        .await
        .unwrap();
    eventually(
        Duration::from_secs(15),
        "another server behind the URL",
        || async {
            info_at(&url, "server")
                .await
                .is_some_and(|i| info_field(&i, "run_id") != old_run_id)
        },
    )
    .await;
    eventually(Duration::from_secs(5), "the switch-over", || async {
        sim.timeline()
            .iter()
            .any(|e| matches!(e.kind, EventKind::ProvisioningSucceeded { .. }))
    })
    .await;
    assert_eq!(
        c.config_vars("shop").await.unwrap().0[var],
        url,
        "byte-identical"
    );
    let memory = info_at(&url, "memory").await.expect("the new server");
    let premium_1 = upshift::plans::find("premium-1").unwrap();
    assert_eq!(
        info_field(&memory, "maxmemory"),
        premium_1.memory_bytes.to_string()
    );
    assert!(!common::alive(old_pid), "the old server is gone");
    let dropped = redis::cmd("PING").query_async::<String>(&mut old_con).await;
    assert!(
        dropped.is_err(),
        "a connection to the old server drops: {dropped:?}"
    );
    assert_eq!(seeded(common::snapshot(&url).await), before, "the data");
    // The HA standby replicates from the new primary at its new (the old) port, with its
    // password: cut its link, and it comes back only if both followed.
    let standby_up = || async {
        info_at(&url, "replication")
            .await
            .is_some_and(|i| info_field(&i, "connected_slaves") == "1")
    };
    eventually(Duration::from_secs(10), "the standby's link", standby_up).await;
    let mut con = common::redis(&url).await;
    let killed: u32 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    eventually(
        Duration::from_secs(10),
        "the standby's link back",
        standby_up,
    )
    .await;

    // No config var change: no release, no restart; the dyno writes through the same URL.
    let switched = sim
        .timeline()
        .iter()
        .find(|e| matches!(e.kind, EventKind::ProvisioningSucceeded { .. }))
        .map(|e| e.at_ms)
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the dyno writing again",
        || async { writes_by(&sim.timeline(), "web.1", switched) > 0 },
    )
    .await;
    assert!(client_names(&url).await.iter().any(|n| n == "web.1"));
    assert_eq!(c.releases("shop").await.unwrap().len(), releases);
    let restarts = sim.timeline().into_iter().any(|e| {
        matches!(&e.kind, EventKind::ConfigVarChanged { .. })
            || matches!(&e.kind, EventKind::DynoStopped { reason, .. } if reason == "restart")
    });
    assert!(!restarts, "no release restarted the app");
    sim.shutdown().await;
}
