//! Every call of `upshift::heroku::Client` over real HTTP against the simulator, with each error
//! mapping, retries, pagination and real plan changes.

use crate::common;

use std::time::{Duration, Instant};

use upshift::heroku::HerokuError;
use upshift::heroku::models::{FormationUpdate, LogSessionRequest, RedisConfigValues};
use upshift::sim::scenario::AppSpec;
use upshift::sim::{EventKind, Fault, Scenario};

use common::{client, client_with_token, shop, start, wait_provisioned};

#[tokio::test]
async fn every_read_and_write_call_works() {
    let sim = start(shop(1, "premium-0", 500, 2)).await;
    let c = client(&sim);

    assert!(c.rate_limits().await.unwrap().remaining > 4000);
    let apps = c.apps().await.unwrap();
    assert_eq!(apps.len(), 1);
    let app = c.app("shop").await.unwrap();
    assert!(!app.maintenance);
    assert_eq!(c.app(&app.id).await.unwrap().name, "shop", "app by id");
    let on = c.set_maintenance("shop", true).await.unwrap();
    assert!(on.value.maintenance);
    assert!(!on.request_id.is_empty());
    assert!(c.app("shop").await.unwrap().maintenance);
    c.set_maintenance("shop", false).await.unwrap();

    let formation = c.formation("shop").await.unwrap();
    assert_eq!(formation.len(), 2);
    let web = c.formation_of("shop", "web").await.unwrap();
    assert_eq!((web.quantity, web.size.as_str()), (1, "standard-1X"));
    let updated = c
        .update_formation(
            "shop",
            &[FormationUpdate {
                process_type: "worker".into(),
                quantity: Some(2),
                size: Some("standard-2X".into()),
            }],
        )
        .await
        .unwrap();
    assert_eq!(updated.value[0].quantity, 2);
    let dynos = c.dynos("shop").await.unwrap();
    assert_eq!(dynos.len(), 3);

    let addons = c.addons("shop").await.unwrap();
    assert_eq!(addons.len(), 1);
    assert_eq!(addons[0].config_vars, vec!["SHOP_REDIS_URL".to_owned()]);
    assert_eq!(addons[0].plan.name, "heroku-redis:premium-0");
    let by_attachment = c.addon("shop", "shop_redis").await.unwrap();
    assert_eq!(by_attachment.name, "redis-test-11111");
    let by_name = c.addon("shop", "redis-test-11111").await.unwrap();
    assert_eq!(by_name.id, by_attachment.id);
    let resolved = c
        .resolve_attachment("shop", "shop_redis", Some("heroku-redis"))
        .await
        .unwrap();
    assert_eq!(resolved[0].addon.name, "redis-test-11111");
    assert_eq!(resolved[0].name, "SHOP_REDIS");
    let plans = c.addon_plans("heroku-redis").await.unwrap();
    assert!(plans.iter().any(|p| p.name == "heroku-redis:premium-1"));
    assert_eq!(plans.len(), upshift::plans::all().count());

    let vars = c.config_vars("shop").await.unwrap();
    let url = vars.get("SHOP_REDIS_URL").unwrap();
    assert_eq!(url, sim.redis_url("shop_redis"));
    assert!(url.starts_with("redis://:"), "Heroku's URL shape");

    let session = c
        .create_log_session("shop", &LogSessionRequest::default())
        .await
        .unwrap();
    assert!(session.logplex_url.contains("/__sim/logs/"));

    // No secret in Debug output.
    let printed = format!("{sim:?}");
    let password = url.split(['@', ':']).nth(2).unwrap().to_owned();
    assert!(!printed.contains(&password), "redis password in Debug");
    assert!(!printed.contains(&sim.api_key()), "API key in Debug");

    // Every answer carried a request id and was logged.
    let log = sim.request_log();
    assert!(log.len() > 15, "{} calls logged", log.len());
    assert!(log.iter().all(|r| !r.request_id.is_empty()));
    sim.shutdown().await;
}

#[tokio::test]
async fn data_api_calls_work() {
    let sim = start(shop(0, "premium-0", 100, 0)).await;
    let c = client(&sim);
    let by_name = c.addon("shop", "redis-test-11111").await.unwrap();
    let db = c.redis_database("redis-test-11111").await.unwrap();
    assert_eq!(db.plan, "premium-0");
    assert_eq!(db.addon_id, by_name.id);
    assert!(
        db.info
            .iter()
            .any(|r| r.name == "Status" && r.values == ["available"])
    );
    let wait = c.redis_wait("redis-test-11111").await.unwrap();
    assert_eq!((wait.waiting, wait.message.as_str()), (false, "available"));
    let config = c.redis_config("redis-test-11111").await.unwrap();
    assert_eq!(
        config.values().maxmemory_policy.as_deref(),
        Some("noeviction")
    );
    let changed = c
        .update_redis_config(
            "redis-test-11111",
            &RedisConfigValues {
                maxmemory_policy: Some("allkeys-lru".into()),
                timeout: Some(120),
                notify_keyspace_events: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.value.values().timeout, Some(120));
    // Applied to the real server.
    let mut con = common::redis(&sim.redis_url("shop_redis")).await;
    let policy: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(policy[1], "allkeys-lru");
    let m = c.data_maintenance(&by_name.id).await.unwrap();
    assert!(!m.status.blocks_change());
    sim.set_data_maintenance(
        "shop_redis",
        upshift::heroku::models::MaintenanceStatus::Pending,
    )
    .unwrap();
    assert!(
        c.data_maintenance(&by_name.id)
            .await
            .unwrap()
            .status
            .blocks_change()
    );

    sim.shutdown().await;
}

#[tokio::test]
async fn errors_map_to_typed_variants() {
    let sim = start(shop(0, "premium-0", 0, 0)).await;
    let c = client(&sim);

    let err = client_with_token(&sim, "wrong")
        .app("shop")
        .await
        .unwrap_err();
    assert!(matches!(err, HerokuError::Unauthorized { .. }), "{err}");
    assert!(err.request_id().is_some());

    let err = c.app("nope").await.unwrap_err();
    assert!(matches!(err, HerokuError::NotFound { .. }), "{err}");
    let err = c.formation_of("shop", "clock").await.unwrap_err();
    assert!(matches!(err, HerokuError::NotFound { .. }), "{err}");
    let err = c
        .update_formation(
            "shop",
            &[FormationUpdate {
                process_type: "clock".into(),
                quantity: Some(1),
                size: None,
            }],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, HerokuError::NotFound { .. }), "{err}");
    let err = c
        .resolve_attachment("shop", "nothing", None)
        .await
        .unwrap_err();
    assert!(matches!(err, HerokuError::NotFound { .. }), "{err}");

    let err = c
        .change_addon_plan("shop", "shop_redis", "heroku-redis:invalid")
        .await
        .unwrap_err();
    match &err {
        HerokuError::InvalidParams { id, message, .. } => {
            assert_eq!(id, "invalid_params");
            assert!(
                message.starts_with("Couldn't find either the add-on service or the add-on plan of \"heroku-redis:invalid\"."),
                "{message}"
            );
        }
        other => panic!("expected 422, got {other}"),
    }

    sim.inject(Fault::Http {
        method: Some("GET".into()),
        path: "/apps/{app}".into(),
        status: 403,
        nth: 1,
        times: 1,
        retry_after: None,
    });
    let err = c.app("shop").await.unwrap_err();
    assert!(matches!(err, HerokuError::Forbidden { .. }), "{err}");
    sim.shutdown().await;
}

#[tokio::test]
async fn transient_failures_are_retried_until_success() {
    let sim = start(shop(0, "premium-0", 0, 0)).await;
    let c = client(&sim);

    sim.inject(Fault::Http {
        method: Some("GET".into()),
        path: "/apps/*/formation".into(),
        status: 429,
        nth: 1,
        times: 1,
        retry_after: Some(1),
    });
    let started = Instant::now();
    assert_eq!(c.formation("shop").await.unwrap().len(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After honoured"
    );

    sim.inject(Fault::Http {
        method: None,
        path: "/apps/*".into(),
        status: 500,
        nth: 1,
        times: 2,
        retry_after: None,
    });
    assert_eq!(c.app("shop").await.unwrap().name, "shop");

    sim.inject(Fault::DropConnection {
        method: Some("GET".into()),
        path: "/apps/*/addons".into(),
        nth: 1,
        times: 1,
    });
    assert_eq!(c.addons("shop").await.unwrap().len(), 1);

    let statuses: Vec<(String, u16)> = sim
        .request_log()
        .into_iter()
        .map(|r| (r.path, r.status))
        .collect();
    assert!(statuses.contains(&("/apps/shop/formation".into(), 429)));
    assert!(statuses.contains(&("/apps/shop".into(), 500)));
    assert!(statuses.contains(&("/apps/shop/addons".into(), 0)));
    let fired = sim
        .timeline()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::FaultFired { .. }))
        .count();
    assert_eq!(fired, 4);

    // A simulated restart: the port closes for a moment; the client's retries ride it out.
    sim.inject(Fault::Restart {
        method: Some("GET".into()),
        path: "/apps/*/dynos".into(),
        nth: 1,
        down_seconds: 0.3,
    });
    assert!(c.dynos("shop").await.unwrap().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn an_empty_rate_limit_pool_answers_429() {
    let sim = start(shop(0, "premium-0", 0, 0)).await;
    let http = reqwest::Client::new();
    let base = sim.api_url();
    let key = sim.api_key();
    http.post(base.join("/__sim/rate-limit").unwrap())
        .body(r#"{"remaining": 0}"#)
        .send()
        .await
        .unwrap();
    let r = http
        .get(base.join("/apps").unwrap())
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["RateLimit-Remaining"], "0");
    assert!(r.headers().contains_key("Retry-After"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["id"], "rate_limit");
    // Rate limits cost nothing.
    let r = http
        .get(base.join("/account/rate-limits").unwrap())
        .bearer_auth(&key)
        .header("Request-Id", "mine-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["Request-Id"],
        "mine-123",
        "echoes the client's id"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn lists_paginate_past_200_items() {
    let scenario = Scenario {
        apps: (0..450)
            .map(|i| AppSpec {
                name: format!("app-{i:03}"),
                ..AppSpec::default()
            })
            .collect(),
        ..Scenario::default()
    };
    let sim = start(scenario).await;
    let apps = client(&sim).apps().await.unwrap();
    assert_eq!(apps.len(), 450);
    let mut ids: Vec<&str> = apps.iter().map(|a| a.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 450, "no duplicates across pages");

    let http = reqwest::Client::new();
    let r = http
        .get(sim.api_url().join("/apps").unwrap())
        .bearer_auth(sim.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    let next = r.headers()["Next-Range"].to_str().unwrap().to_owned();
    assert!(
        next.starts_with("id ]") && next.ends_with("..; max=200"),
        "{next}"
    );
    let page: Vec<serde_json::Value> = r.json().await.unwrap();
    assert_eq!(page.len(), 200);
    let r = http
        .get(sim.api_url().join("/apps").unwrap())
        .bearer_auth(sim.api_key())
        .header("Range", "name ..; max=500")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page: Vec<serde_json::Value> = r.json().await.unwrap();
    assert_eq!(page[0]["name"], "app-000");
    assert_eq!(page.len(), 450);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_plan_change_migrates_every_key_to_a_new_server() {
    let sim = start(shop(0, "premium-0", 3000, 0)).await;
    let c = client(&sim);
    let old_url = sim.redis_url("shop_redis");
    let old_pids = sim.redis_pids();
    let before = common::snapshot(&old_url).await;
    assert_eq!(before.len(), 3000);

    let started = Instant::now();
    let answer = c
        .change_addon_plan("shop", "shop_redis", "heroku-redis:premium-1")
        .await
        .unwrap();
    assert_eq!(answer.value.plan.name, "heroku-redis:premium-1");
    assert_eq!(answer.value.state.as_str(), "provisioning");
    assert!(c.redis_wait("shop_redis").await.unwrap().waiting);
    // Same plan again: answered as is, no second change.
    let again = c
        .change_addon_plan("shop", "shop_redis", "premium-1")
        .await
        .unwrap();
    assert_eq!(again.value.state.as_str(), "provisioning");
    wait_provisioned(&c, "shop", "shop_redis", "heroku-redis:premium-1").await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(250), "{took:?}");

    let new_url = c
        .config_vars("shop")
        .await
        .unwrap()
        .get("SHOP_REDIS_URL")
        .unwrap()
        .to_owned();
    assert_ne!(new_url, old_url, "new port and password");
    assert_eq!(new_url, sim.redis_url("shop_redis"));
    let after = common::snapshot(&new_url).await;
    let differing: Vec<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .take(5)
        .collect();
    assert!(
        differing.is_empty(),
        "keys differ after migration ({} before, {} after): {differing:?}",
        before.len(),
        after.len()
    );
    let mut con = common::redis(&new_url).await;
    let maxclients: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(maxclients[1], (100 * 1024 * 1024).to_string());
    assert_eq!(
        c.redis_database("shop_redis").await.unwrap().plan,
        "premium-1"
    );
    common::eventually(Duration::from_secs(3), "old server gone", || async {
        old_pids.iter().all(|p| !common::alive(*p))
    })
    .await;
    assert!(
        redis::Client::open(old_url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .is_err()
    );
    let kinds: Vec<&str> = sim
        .timeline()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ProvisioningStarted { .. } => Some("started"),
            EventKind::ProvisioningSynced { .. } => Some("synced"),
            EventKind::ProvisioningSucceeded { .. } => Some("succeeded"),
            EventKind::ConfigVarChanged { .. } => Some("config"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["started", "synced", "config", "succeeded"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_downgrade_too_small_for_the_data_fails_and_keeps_the_old_server() {
    let mut scenario = shop(0, "premium-0", 24_000, 0);
    if let Some(seed) = scenario.apps[0].addons[0].seed.as_mut() {
        seed.value_bytes = 2500;
    }
    let sim = start(scenario).await;
    let c = client(&sim);
    let url = sim.redis_url("shop_redis");
    c.change_addon_plan("shop", "shop_redis", "heroku-redis:mini")
        .await
        .unwrap();
    common::eventually(Duration::from_secs(10), "the change to fail", || async {
        !c.redis_wait("shop_redis").await.unwrap().waiting
    })
    .await;
    let wait = c.redis_wait("shop_redis").await.unwrap();
    assert!(
        wait.message.starts_with("plan change to mini failed:"),
        "{}",
        wait.message
    );
    let a = c.addon("shop", "shop_redis").await.unwrap();
    assert_eq!(
        (a.plan.name.as_str(), a.state.as_str()),
        ("heroku-redis:premium-0", "provisioned")
    );
    assert_eq!(sim.redis_url("shop_redis"), url, "old server kept");
    let db = c.redis_database("shop_redis").await.unwrap();
    assert!(db.info.iter().any(|r| r.name == "Last plan change"));
    assert!(sim.timeline().iter().any(|e| matches!(
        &e.kind,
        EventKind::ProvisioningFailed { reason, .. } if reason.contains("does not fit")
    )));
    assert_eq!(sim.redis_pids().len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn provisioning_faults_slow_fail_and_damage_the_migration() {
    let sim = start(shop(0, "premium-0", 1000, 0)).await;
    let c = client(&sim);

    sim.inject(Fault::SlowProvisioning {
        addon: None,
        extra_seconds: 0.5,
    });
    sim.inject(Fault::LoseKeys {
        addon: Some("redis-test-11111".into()),
        count: 5,
        prefix: None,
    });
    sim.inject(Fault::ChangeKeys {
        addon: None,
        count: 3,
    });
    let started = Instant::now();
    c.change_addon_plan("shop", "shop_redis", "premium-1")
        .await
        .unwrap();
    wait_provisioned(&c, "shop", "shop_redis", "heroku-redis:premium-1").await;
    assert!(started.elapsed() >= Duration::from_millis(750));
    let mut con = common::redis(&sim.redis_url("shop_redis")).await;
    let n: u64 = redis::cmd("DBSIZE").query_async(&mut con).await.unwrap();
    assert_eq!(n, 995);
    let changed: Vec<String> = redis::cmd("KEYS")
        .arg("ca:*")
        .query_async(&mut con)
        .await
        .unwrap();
    let mut damaged = 0;
    for k in changed {
        let v: String = redis::cmd("GET")
            .arg(&k)
            .query_async(&mut con)
            .await
            .unwrap();
        damaged += usize::from(v == "changed-by-migration");
    }
    assert_eq!(damaged, 3);

    sim.inject(Fault::FailProvisioning {
        addon: None,
        message: Some("capacity unavailable".into()),
    });
    c.change_addon_plan("shop", "shop_redis", "premium-2")
        .await
        .unwrap();
    common::eventually(Duration::from_secs(5), "the change to fail", || async {
        c.addon("shop", "shop_redis").await.unwrap().state.as_str() == "provisioned"
    })
    .await;
    let a = c.addon("shop", "shop_redis").await.unwrap();
    assert_eq!(a.plan.name, "heroku-redis:premium-1");
    assert!(
        c.redis_wait("shop_redis")
            .await
            .unwrap()
            .message
            .contains("capacity unavailable")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_admin_api_arms_faults_sets_maintenance_and_reports() {
    let sim = start(shop(1, "premium-0", 0, 1)).await;
    let http = reqwest::Client::new();
    let admin = |path: &str| sim.api_url().join(path).unwrap();
    let r = http
        .post(admin("/__sim/faults"))
        .body(
            r#"[{"kind": "http", "path": "/apps/*", "status": 503, "times": 2},
                  {"kind": "slow_provisioning", "extra_seconds": 1.5}]"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let pending: Vec<serde_json::Value> = http
        .get(admin("/__sim/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pending.len(), 2);
    let r = http
        .post(admin("/__sim/faults"))
        .body(r#"{"kind": "meteor"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    http.delete(admin("/__sim/faults")).send().await.unwrap();
    assert!(
        sim.timeline()
            .iter()
            .any(|e| matches!(e.kind, EventKind::FaultInjected { .. }))
    );

    let r = http
        .post(admin("/__sim/maintenance/redis-test-11111"))
        .body(r#"{"status": "pending"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let c = client(&sim);
    let id = c.addon("shop", "shop_redis").await.unwrap().id;
    assert!(
        c.data_maintenance(&id)
            .await
            .unwrap()
            .status
            .blocks_change()
    );

    // `heroku ps:restart`: the dyno stops and starts again.
    let r = http
        .delete(sim.api_url().join("/apps/shop/dynos").unwrap())
        .bearer_auth(sim.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    let processes: Vec<serde_json::Value> = http
        .get(admin("/__sim/processes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(processes[0]["role"], "primary");
    let events: Vec<serde_json::Value> = http
        .get(admin("/__sim/timeline?writes=false"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(events.iter().all(|e| e["kind"] != "write"));
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "dyno_stopped" && e["reason"] == "restart")
    );
    assert!(
        events
            .iter()
            .all(|e| e["at_ms"].is_f64() && e["wall"].is_string())
    );
    let requests: Vec<serde_json::Value> = http
        .get(admin("/__sim/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        requests
            .iter()
            .all(|r| !r["path"].as_str().unwrap().starts_with("/__sim"))
    );

    let r = http
        .post(admin("/__sim/restart"))
        .body(r#"{"down_seconds": 0.3}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        http.get(admin("/__sim/processes")).send().await.is_err(),
        "down"
    );
    assert_eq!(
        c.app("shop").await.unwrap().name,
        "shop",
        "back, state kept"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn tls_add_ons_serve_rediss_and_migrate_over_tls() {
    // The `tls` knob of `[behaviour]`, as `heroku` and every other profile but `optimistic`
    // set it: the add-on itself says nothing about TLS.
    let mut scenario = shop(1, "premium-0", 500, 2);
    assert_eq!(scenario.apps[0].addons[0].tls, None);
    scenario.behaviour.tls = Some(true);
    let sim = start(scenario).await;
    let c = client(&sim);
    let url = c
        .config_vars("shop")
        .await
        .unwrap()
        .get("SHOP_REDIS_URL")
        .unwrap()
        .to_owned();
    assert!(url.starts_with("rediss://:"), "TLS URL");
    assert!(
        c.redis_database("shop_redis")
            .await
            .unwrap()
            .prefer_native_tls
    );
    let before = common::snapshot(&url).await;
    c.update_formation(
        "shop",
        &[FormationUpdate {
            process_type: "web".into(),
            quantity: Some(0),
            size: None,
        }],
    )
    .await
    .unwrap();
    let before_keys: Vec<&String> = before.keys().collect();
    c.change_addon_plan("shop", "shop_redis", "premium-1")
        .await
        .unwrap();
    wait_provisioned(&c, "shop", "shop_redis", "heroku-redis:premium-1").await;
    let new_url = sim.redis_url("shop_redis");
    assert!(new_url.starts_with("rediss://") && new_url != url);
    let after = common::snapshot(&new_url).await;
    let seeded: Vec<&String> = after.keys().filter(|k| before_keys.contains(k)).collect();
    assert_eq!(seeded.len(), before.len(), "every key migrated over TLS");
    sim.shutdown().await;
}
