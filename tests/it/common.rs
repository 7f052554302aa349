//! Shared harness of the simulator's black-box tests: start a simulator in-process on port 0
//! with fast timings, build clients, talk to Redis.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use upshift::heroku::{Client, ClientConfig, Token};
use upshift::sim::scenario::{AddonSpec, AppSpec, FormationSpec, RedisSettingsSpec, SeedSpec};
use upshift::sim::{Scenario, SimConfig, Simulator, SimulatorExt};

/// Fails loudly (never skips) when redis-server is missing.
pub fn require_redis() {
    assert!(
        upshift::sim::redis_server_path().is_ok(),
        "redis-server not found: run scripts/ensure-deps"
    );
}

/// A simulator with fast timings (provisioning 300 ms, dynos up after 50 ms).
pub async fn start(scenario: Scenario) -> Simulator {
    start_with(scenario, Duration::from_millis(300)).await
}

/// A simulator with the given provisioning time.
pub async fn start_with(scenario: Scenario, provision: Duration) -> Simulator {
    require_redis();
    Simulator::start(SimConfig {
        scenario,
        provision,
        dyno_start: Some(Duration::from_millis(50)),
        log_tail: Duration::from_secs(2),
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts")
}

/// One app `shop` (web and worker types) with one add-on `shop_redis` on `plan`, seeded with
/// `keys` keys; each web dyno holds `connections` connections.
pub fn shop(web: u32, plan: &str, keys: u32, connections: u32) -> Scenario {
    let mut conns = BTreeMap::new();
    conns.insert("web".to_owned(), connections);
    Scenario {
        apps: vec![AppSpec {
            name: "shop".into(),
            formation: vec![
                FormationSpec {
                    process_type: "web".into(),
                    quantity: web,
                    size: "standard-1X".into(),
                    command: Some("npm start".into()),
                },
                FormationSpec {
                    process_type: "worker".into(),
                    quantity: 0,
                    size: "standard-2X".into(),
                    command: None,
                },
            ],
            addons: vec![AddonSpec {
                name: Some("redis-test-11111".into()),
                attachment: "shop_redis".into(),
                plan: plan.into(),
                connections: conns,
                seed: (keys > 0).then_some(SeedSpec {
                    keys,
                    seed: 7,
                    ttl_fraction: 0.2,
                    value_bytes: 64,
                }),
                maintenance: upshift::heroku::models::MaintenanceStatus::None,
                config: RedisSettingsSpec::default(),
                tls: None,
            }],
            ..AppSpec::default()
        }],
        ..Scenario::default()
    }
}

pub fn client(sim: &Simulator) -> Client {
    Client::new(sim.client_config()).expect("client builds")
}

pub fn client_with_token(sim: &Simulator, token: &str) -> Client {
    Client::new(ClientConfig {
        token: Token::new(token),
        ..sim.client_config()
    })
    .expect("client builds")
}

pub async fn redis(url: &str) -> redis::aio::MultiplexedConnection {
    // Heroku's certificates are self-signed: clients skip verification.
    let url = if url.starts_with("rediss://") {
        format!("{url}#insecure")
    } else {
        url.to_owned()
    };
    // The client's default response timeout is short; on a loaded 2-core machine a pipeline
    // of thousands of DUMPs can outlast it, and the test's own reads must not be the flake.
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(std::time::Duration::from_secs(30)))
        .set_response_timeout(Some(std::time::Duration::from_secs(60)));
    redis::Client::open(url.as_str())
        .expect("url parses")
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("redis connects")
}

/// Every key with a canonical value (DUMP, or the sorted members of a set, whose DUMP depends
/// on hash-table order) and whether it has a TTL. Pipelined in chunks, so a database of
/// hundreds of thousands of keys stays within the client's response timeout.
pub async fn snapshot(url: &str) -> BTreeMap<String, (Vec<u8>, bool)> {
    const CHUNK: usize = 2000;
    let mut con = redis(url).await;
    // SCAN, not KEYS: one KEYS over many keys outlasts the response timeout.
    let mut keys: Vec<String> = Vec::new();
    let mut cursor = 0_u64;
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(CHUNK)
            .query_async(&mut con)
            .await
            .expect("SCAN");
        keys.extend(page);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    keys.sort();
    keys.dedup();
    let mut out = BTreeMap::new();
    for keys in keys.chunks(CHUNK) {
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.cmd("TYPE").arg(k);
        }
        let types: Vec<String> = pipe.query_async(&mut con).await.expect("TYPE");
        let mut pipe = redis::pipe();
        for (k, t) in keys.iter().zip(&types) {
            if t == "set" {
                pipe.cmd("SMEMBERS").arg(k);
            } else {
                pipe.cmd("DUMP").arg(k);
            }
            pipe.cmd("PTTL").arg(k);
        }
        let values: Vec<redis::Value> = pipe.query_async(&mut con).await.expect("DUMP");
        for (i, k) in keys.iter().enumerate() {
            let value = match &values[2 * i] {
                redis::Value::BulkString(b) => b.clone(),
                redis::Value::Array(members) | redis::Value::Set(members) => {
                    let mut m: Vec<String> = members
                        .iter()
                        .map(|v| match v {
                            redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                            other => format!("{other:?}"),
                        })
                        .collect();
                    m.sort();
                    m.join("\n").into_bytes()
                }
                other => panic!("DUMP {k}: {other:?}"),
            };
            let ttl = matches!(values[2 * i + 1], redis::Value::Int(t) if t > 0);
            out.insert(k.clone(), (value, ttl));
        }
    }
    out
}

/// Polls until `check` is true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < timeout {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Waits until the add-on reports `plan` and `provisioned` and the Data API is not waiting.
pub async fn wait_provisioned(client: &Client, app: &str, addon: &str, plan: &str) {
    let started = Instant::now();
    loop {
        let a = client.addon(app, addon).await.expect("addon");
        let w = client.redis_wait(addon).await.expect("wait");
        if a.plan.name == plan && a.state.as_str() == "provisioned" && !w.waiting {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "add-on never reached {plan}: {} {} / {}",
            a.plan.name,
            a.state,
            w.message
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Whether a process is alive (a zombie counts as dead).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or("");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}
