//! The simulated platform's behaviour: dynos hold real connections and write, stop on scale to
//! 0 (unless a fault makes one rogue), restart on config var changes; logs stream; downtime is
//! measured; the `sim serve` binary leaves no redis-server behind, even when killed with SIGKILL.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use upshift::heroku::models::{FormationUpdate, LogSessionRequest};
use upshift::sim::{EventKind, Fault, TimelineEvent};

use common::{client, eventually, shop, start, wait_provisioned};

mod keep_url;

fn scale(process_type: &str, quantity: u32) -> Vec<FormationUpdate> {
    vec![FormationUpdate {
        process_type: process_type.into(),
        quantity: Some(quantity),
        size: None,
    }]
}

fn writes_by(events: &[TimelineEvent], dyno: &str, after_ms: f64) -> usize {
    events
        .iter()
        .filter(|e| e.at_ms > after_ms)
        .filter(|e| matches!(&e.kind, EventKind::Write { dyno: d, ok: true, .. } if d == dyno))
        .count()
}

async fn client_names(url: &str) -> Vec<String> {
    let mut con = common::redis(url).await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut con)
        .await
        .unwrap();
    list.lines()
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("name=")))
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn dynos_hold_connections_write_and_stop_when_scaled_to_zero() {
    let sim = start(shop(2, "premium-0", 100, 3)).await;
    let c = client(&sim);
    let url = sim.redis_url("shop_redis");
    eventually(Duration::from_secs(5), "6 dyno connections", || async {
        client_names(&url)
            .await
            .iter()
            .filter(|n| n.starts_with("web."))
            .count()
            == 6
    })
    .await;
    let names = client_names(&url).await;
    assert!(names.contains(&"heroku-platform".to_owned()), "{names:?}");
    // The platform's monitoring reads the server every few seconds on that connection.
    eventually(
        Duration::from_secs(5),
        "the platform's monitoring",
        || async {
            let mut con = common::redis(&url).await;
            let list: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query_async(&mut con)
                .await
                .unwrap();
            list.lines()
                .any(|l| l.contains("name=heroku-platform") && l.contains("cmd=info"))
        },
    )
    .await;
    eventually(Duration::from_secs(5), "writes from both dynos", || async {
        let t = sim.timeline();
        writes_by(&t, "web.1", 0.0) > 2 && writes_by(&t, "web.2", 0.0) > 2
    })
    .await;
    assert!(
        c.dynos("shop")
            .await
            .unwrap()
            .iter()
            .all(|d| d.state.as_str() == "up")
    );

    c.update_formation("shop", &scale("web", 0)).await.unwrap();
    let stopped_at = sim.now_ms();
    assert!(c.dynos("shop").await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let t = sim.timeline();
    assert_eq!(
        writes_by(&t, "web.1", stopped_at),
        0,
        "no write after scale-down"
    );
    assert_eq!(writes_by(&t, "web.2", stopped_at), 0);
    eventually(
        Duration::from_secs(3),
        "dyno connections closed",
        || async {
            !client_names(&url)
                .await
                .iter()
                .any(|n| n.starts_with("web."))
        },
    )
    .await;

    // Scale back: `starting` first, then `up`; the platform-side downtime is measurable.
    c.update_formation("shop", &scale("web", 1)).await.unwrap();
    let d = c.dynos("shop").await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].state.as_str(), "starting");
    eventually(Duration::from_secs(3), "dyno up", || async {
        c.dynos("shop").await.unwrap()[0].state.as_str() == "up"
    })
    .await;
    let downtime = sim.downtime("web").unwrap();
    assert!(
        downtime >= Duration::from_millis(440) && downtime < Duration::from_secs(3),
        "{downtime:?}"
    );
    assert!(sim.downtime("worker").is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_rogue_dyno_keeps_writing_after_the_scale_down() {
    let sim = start(shop(2, "premium-0", 0, 2)).await;
    let c = client(&sim);
    eventually(Duration::from_secs(5), "writes", || async {
        writes_by(&sim.timeline(), "web.2", 0.0) > 0
    })
    .await;
    sim.inject(Fault::IgnoreScaleDown {
        process_type: "web".into(),
        dynos: 1,
    });
    c.update_formation("shop", &scale("web", 0)).await.unwrap();
    let at = sim.now_ms();
    assert!(
        c.dynos("shop").await.unwrap().is_empty(),
        "the platform lists none"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = sim.timeline();
    assert!(
        writes_by(&t, "web.2", at) > 0,
        "the rogue (highest number) keeps writing"
    );
    assert_eq!(writes_by(&t, "web.1", at), 0);
    assert!(t.iter().any(|e| matches!(
        &e.kind,
        EventKind::DynoStopped { dyno, rogue: true, .. } if dyno == "web.2"
    )));
    let names = client_names(&sim.redis_url("shop_redis")).await;
    assert_eq!(
        names.iter().filter(|n| *n == "web.2").count(),
        2,
        "{names:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn max_clients_errors_reach_the_log_stream_and_plan_changes_restart_dynos() {
    // 2 dynos x 25 connections on premium-0 (40): the second dyno hits the limit.
    let sim = start(shop(2, "premium-0", 0, 25)).await;
    let c = client(&sim);
    eventually(Duration::from_secs(5), "a refused connection", || async {
        sim.timeline().iter().any(|e| matches!(
            &e.kind,
            EventKind::ConnectionFailed { error, .. } if error.contains("max number of clients reached")
        ))
    })
    .await;
    let session = c
        .create_log_session(
            "shop",
            &LogSessionRequest {
                lines: Some(200),
                ..LogSessionRequest::default()
            },
        )
        .await
        .unwrap();
    let text = reqwest::get(&session.logplex_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("ERR max number of clients reached"))
        .unwrap_or_else(|| panic!("no max-clients line in:\n{text}"));
    assert!(line.contains("+00:00 app[web."), "{line}");
    assert!(text.contains("heroku[web.1]: State changed from starting to up"));

    // Upgrading gives room: after the change the dynos restart onto the new server.
    let old = sim.redis_url("shop_redis");
    c.update_formation("shop", &scale("web", 1)).await.unwrap();
    c.change_addon_plan("shop", "shop_redis", "premium-1")
        .await
        .unwrap();
    common::wait_provisioned(&c, "shop", "shop_redis", "heroku-redis:premium-1").await;
    let new = sim.redis_url("shop_redis");
    assert_ne!(old, new);
    c.update_formation("shop", &scale("web", 2)).await.unwrap();
    eventually(
        Duration::from_secs(5),
        "50 connections on premium-1",
        || async {
            client_names(&new)
                .await
                .iter()
                .filter(|n| n.starts_with("web."))
                .count()
                == 50
        },
    )
    .await;
    let restarts = sim
        .timeline()
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::DynoStopped { reason, .. } if reason == "restart"))
        .count();
    assert_eq!(
        restarts, 1,
        "the one running dyno restarted on the config var change"
    );

    // A tailing session gets new lines as they happen.
    let session = c
        .create_log_session(
            "shop",
            &LogSessionRequest {
                tail: Some(true),
                lines: Some(1),
                ..LogSessionRequest::default()
            },
        )
        .await
        .unwrap();
    let started = Instant::now();
    let tail = tokio::spawn(async move {
        reqwest::get(&session.logplex_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.set_maintenance("shop", true).await.unwrap();
    let text = tail.await.unwrap();
    assert!(text.contains("app[api]: Enable maintenance mode"), "{text}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "tail stays open"
    );
    sim.shutdown().await;
}

/// Starts `upshift sim serve` and reads its three lines.
fn serve() -> (std::process::Child, String, String) {
    common::require_redis();
    let mut child = Command::new(env!("CARGO_BIN_EXE_upshift"))
        .args(["sim", "serve", "--port", "0", "--provision-seconds", "0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().expect("a line").expect("utf-8");
    let api = next();
    let data = next();
    let key = next();
    let api = api.strip_prefix("HEROKU_API_URL=").unwrap().to_owned();
    assert_eq!(data, format!("HEROKU_DATA_URL={api}"));
    let key = key.strip_prefix("HEROKU_API_KEY=").unwrap().to_owned();
    (child, api, key)
}

async fn pids(api: &str) -> Vec<u32> {
    let list: Vec<serde_json::Value> = reqwest::get(format!("{api}/__sim/processes"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list.iter()
        .map(|p| u32::try_from(p["pid"].as_u64().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn sigkill_of_the_simulator_leaves_no_redis_server() {
    let (mut child, api, key) = serve();
    let r = reqwest::Client::new()
        .get(format!("{api}/apps/enketo-demo"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let pids = pids(&api).await;
    // Two add-ons on premium-0 (HA): each a primary and its standby.
    assert_eq!(pids.len(), 4);
    assert!(pids.iter().all(|p| common::alive(*p)));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    eventually(Duration::from_secs(5), "redis-servers gone", || async {
        pids.iter().all(|p| !common::alive(*p))
    })
    .await;
}

#[tokio::test]
async fn sigterm_stops_the_simulator_cleanly() {
    let (mut child, api, _) = serve();
    let pids = pids(&api).await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(pids.iter().all(|p| !common::alive(*p)));
}

#[tokio::test]
async fn writes_that_land_on_the_old_server_after_the_sync_are_lost() {
    common::require_redis();
    let sim = upshift::sim::Simulator::start(upshift::sim::SimConfig {
        scenario: shop(1, "premium-0", 200, 2),
        provision: Duration::from_millis(800),
        dyno_start: Some(Duration::from_millis(20)),
        writes_per_second: Some(50.0),
        ..upshift::sim::SimConfig::default()
    })
    .await
    .unwrap();
    let c = client(&sim);
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.change_addon_plan("shop", "shop_redis", "premium-1")
        .await
        .unwrap();
    common::wait_provisioned(&c, "shop", "shop_redis", "heroku-redis:premium-1").await;
    let t = sim.timeline();
    let at = |pred: &dyn Fn(&EventKind) -> bool| {
        t.iter().find(|e| pred(&e.kind)).map(|e| e.at_ms).unwrap()
    };
    let synced = at(&|k| matches!(k, EventKind::ProvisioningSynced { .. }));
    let switched = at(&|k| matches!(k, EventKind::ConfigVarChanged { .. }));
    let new_keys = common::snapshot(&sim.redis_url("shop_redis")).await;
    let (mut kept, mut lost) = (0, 0);
    for e in &t {
        if let EventKind::Write { key, ok: true, .. } = &e.kind
            && key.starts_with("wr:")
        {
            if e.at_ms < synced - 50.0 {
                assert!(
                    new_keys.contains_key(key),
                    "{key} written before the sync is kept"
                );
                kept += 1;
            } else if e.at_ms > synced + 50.0 && e.at_ms < switched - 50.0 {
                assert!(
                    !new_keys.contains_key(key),
                    "{key} written after the sync is lost"
                );
                lost += 1;
            }
        }
    }
    assert!(kept > 0 && lost > 3, "kept {kept}, lost {lost}");
    sim.shutdown().await;
}

/// Issue 11: behaviour profiles are data, switchable at runtime, and shape what the platform
/// says: `strict` servers refuse CONFIG and CLIENT to clients (the simulator keeps its own
/// control: a plan change still replicates), `sparse` leaves `/wait`'s `message` out,
/// `in-place` says provisioned on the target at once while the old server still serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behaviour_profiles_shape_what_the_platform_reports() {
    use upshift::sim::{BehaviourSpec, Profile};
    let mut scenario = shop(1, "premium-0", 200, 2);
    scenario.behaviour = BehaviourSpec::of(Profile::Strict);
    let sim = common::start_with(scenario, Duration::from_millis(600)).await;
    let c = client(&sim);
    let mut con = common::redis(&sim.redis_url("shop_redis")).await;
    for command in ["CONFIG", "CLIENT"] {
        let refused = redis::cmd(command)
            .arg(if command == "CONFIG" { "GET" } else { "LIST" })
            .arg("maxmemory")
            .query_async::<redis::Value>(&mut con)
            .await;
        assert!(refused.is_err(), "{command} must be refused under strict");
    }
    let old = sim.server_run_id("shop_redis").await.unwrap();
    c.change_addon_plan("shop", "shop_redis", "premium-1")
        .await
        .unwrap();
    common::wait_provisioned(&c, "shop", "shop_redis", "heroku-redis:premium-1").await;
    assert_ne!(sim.server_run_id("shop_redis").await.unwrap(), old);

    // Sparse, switched through the admin API.
    let http = reqwest::Client::new();
    let base = sim.api_url();
    let put = http
        .put(format!("{base}__sim/behaviour"))
        .body(r#"{"profile":"sparse"}"#)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{put:?}");
    let knobs: serde_json::Value = http
        .get(format!("{base}__sim/behaviour"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(knobs["profile"], "sparse");
    assert_eq!(knobs["sparse_bodies"], true);
    let wait: serde_json::Value = http
        .get(format!("{base}redis/v0/databases/shop_redis/wait"))
        .bearer_auth(sim.api_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(wait, serde_json::json!({"waiting?": false}));
    assert!(c.redis_wait("shop_redis").await.unwrap().message.is_empty());
    let bad = http
        .put(format!("{base}__sim/behaviour"))
        .body(r#"{"profile":"kind"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 422);

    // In-place: provisioned on the target at once; the old server serves until the switch.
    sim.set_behaviour(&BehaviourSpec::of(Profile::InPlace));
    let old = sim.server_run_id("shop_redis").await.unwrap();
    let a = c
        .change_addon_plan("shop", "shop_redis", "premium-2")
        .await
        .unwrap()
        .value;
    assert_eq!(a.state.as_str(), "provisioned");
    let db = c.redis_database("shop_redis").await.unwrap();
    assert_eq!(db.plan, "premium-2");
    assert!(!c.redis_wait("shop_redis").await.unwrap().waiting);
    assert_eq!(sim.server_run_id("shop_redis").await.unwrap(), old);
    // The old server stops during the switch-over: a poll that catches it going away (broken
    // pipe) has not seen the new server yet.
    eventually(Duration::from_secs(10), "the switch-over", || async {
        sim.server_run_id("shop_redis")
            .await
            .is_ok_and(|id| id != old)
    })
    .await;
    sim.shutdown().await;
}

/// Writes the app's dynos landed on a server: its `DBSIZE` grows while the app runs.
async fn dbsize(url: &str) -> u64 {
    let mut con = common::redis(url).await;
    redis::cmd("DBSIZE").query_async(&mut con).await.unwrap()
}

#[tokio::test]
async fn a_created_addon_provisions_then_takes_over_an_attachment_with_the_writers() {
    let sim = start(shop(1, "premium-0", 20, 2)).await;
    let c = client(&sim);
    let releases_before = c.releases("shop").await.unwrap().len();

    let created = c
        .create_addon("shop", "heroku-redis:premium-1", "upshift_swap")
        .await
        .unwrap()
        .value;
    assert_eq!(created.state.as_str(), "provisioning");
    assert_eq!(created.plan.name, "heroku-redis:premium-1");
    // No URL until it is provisioned.
    assert!(
        !c.config_vars("shop")
            .await
            .unwrap()
            .0
            .contains_key("UPSHIFT_SWAP_URL")
    );
    wait_provisioned(&c, "shop", &created.name, "heroku-redis:premium-1").await;
    let vars = c.config_vars("shop").await.unwrap();
    let new_url = vars
        .0
        .get("UPSHIFT_SWAP_URL")
        .cloned()
        .expect("the new URL");
    assert_ne!(Some(&new_url), vars.0.get("SHOP_REDIS_URL"));
    assert_eq!(c.releases("shop").await.unwrap().len(), releases_before + 1);
    // The app's code does not read the temporary name: nothing writes there yet.
    let old_url = sim.redis_url("shop_redis");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dbsize(&new_url).await, 0);

    // Moving the app's name onto the new add-on: one release, the var now holds the new URL,
    // the old add-on keeps no attachment on the app, and the restarted dynos write there.
    let attachments = c.addon_attachments(&created.id).await.unwrap();
    assert_eq!(attachments.len(), 1);
    let moved = c
        .attach_addon(&created.id, "shop", "SHOP_REDIS", Some("shop"))
        .await
        .unwrap()
        .value;
    assert_eq!(moved.name, "SHOP_REDIS");
    let vars = c.config_vars("shop").await.unwrap();
    assert_eq!(vars.0.get("SHOP_REDIS_URL"), Some(&new_url));
    assert!(
        c.addon_attachments("redis-test-11111")
            .await
            .unwrap()
            .is_empty()
    );
    let releases = c.releases("shop").await.unwrap();
    assert_eq!(releases.len(), releases_before + 2);
    assert_eq!(releases.last().map(|r| r.current), Some(Some(true)));
    // `heroku ps:wait`: every dyno comes back on the latest release.
    let latest = releases.last().map(|r| r.version).unwrap_or_default();
    eventually(
        Duration::from_secs(5),
        "dynos on the latest release",
        || async {
            let dynos: serde_json::Value = reqwest::Client::new()
                .get(sim.api_url().join("/apps/shop/dynos").unwrap())
                .bearer_auth(sim.api_key())
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let dynos = dynos.as_array().cloned().unwrap_or_default();
            !dynos.is_empty() && dynos.iter().all(|d| d["release"]["version"] == latest)
        },
    )
    .await;
    let old_keys = dbsize(&old_url).await;
    eventually(
        Duration::from_secs(5),
        "writes on the new add-on",
        || async { dbsize(&new_url).await > 0 },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        dbsize(&old_url).await,
        old_keys,
        "the old add-on still gets writes"
    );

    // The temporary attachment goes; the add-on stays attached as SHOP_REDIS.
    c.detach(&attachments[0].id).await.unwrap();
    let vars = c.config_vars("shop").await.unwrap();
    assert!(!vars.0.contains_key("UPSHIFT_SWAP_URL"));
    assert_eq!(vars.0.get("SHOP_REDIS_URL"), Some(&new_url));
    // Detaching twice (a retry after a lost answer) is not an error.
    c.detach(&attachments[0].id).await.unwrap();

    // The old add-on is destroyed: its server stops, and the app no longer lists it.
    c.destroy_addon("shop", "redis-test-11111").await.unwrap();
    let names: Vec<String> = c
        .addons("shop")
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, vec![created.name.clone()]);
    eventually(Duration::from_secs(5), "the old server stopped", || async {
        redis::Client::open(old_url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .is_err()
    })
    .await;
}

#[tokio::test]
async fn a_taken_attachment_name_needs_confirmation_and_strict_heroku_never_replaces() {
    let sim = start(shop(0, "premium-0", 0, 1)).await;
    let c = client(&sim);
    let created = c
        .create_addon("shop", "premium-1", "upshift_swap")
        .await
        .unwrap()
        .value;
    wait_provisioned(&c, "shop", &created.name, "heroku-redis:premium-1").await;

    let unconfirmed = c
        .attach_addon(&created.id, "shop", "SHOP_REDIS", None)
        .await
        .unwrap_err();
    assert_eq!(unconfirmed.status(), Some(422), "{unconfirmed}");
    let bad_name = c
        .attach_addon(&created.id, "shop", "9-lives", None)
        .await
        .unwrap_err();
    assert_eq!(bad_name.status(), Some(422), "{bad_name}");

    sim.set_behaviour(&upshift::sim::BehaviourSpec::of(
        upshift::sim::Profile::Strict,
    ));
    let refused = c
        .attach_addon(&created.id, "shop", "SHOP_REDIS", Some("shop"))
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(422), "{refused}");
    // The owning app's last attachment cannot be detached: the add-on would be orphaned.
    let old = c.addon_attachments("redis-test-11111").await.unwrap();
    let last = c.detach(&old[0].id).await.unwrap_err();
    assert_eq!(last.status(), Some(422), "{last}");
    assert!(
        c.config_vars("shop")
            .await
            .unwrap()
            .0
            .contains_key("SHOP_REDIS_URL")
    );

    // Strict Heroku's way: attach the old add-on under a spare name, detach its app name,
    // then attach the new one under it.
    let spare = c
        .attach_addon(&old[0].addon.id, "shop", "UPSHIFT_OLD", None)
        .await
        .unwrap()
        .value;
    c.detach(&old[0].id).await.unwrap();
    assert!(
        !c.config_vars("shop")
            .await
            .unwrap()
            .0
            .contains_key("SHOP_REDIS_URL")
    );
    c.attach_addon(&created.id, "shop", "SHOP_REDIS", None)
        .await
        .unwrap();
    let vars = c.config_vars("shop").await.unwrap();
    assert_eq!(vars.0.get("SHOP_REDIS_URL"), vars.0.get("UPSHIFT_SWAP_URL"));
    assert_eq!(spare.name, "UPSHIFT_OLD");
}
