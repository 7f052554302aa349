//! Redis Data API routes (`/redis/v0/databases/…`, `/data/maintenances/v1/…`), served on the
//! same port as the Platform API, like `HEROKU_DATA_HOST=127.0.0.1` makes the Heroku CLI ask.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::behaviour::Behaviour;
use crate::maintenances;
use crate::redis_proc::RedisServer;
use crate::scenario::{MAXMEMORY_POLICIES, RedisSettingsSpec};
use crate::server::{error, not_found};
use crate::state::{AddonState, DataStatus, Shared, now_iso};
use crate::timeline::EventKind;
use heroku_model::models::{
    InfoRow, MaintenanceStatus, RedisConfig, RedisDatabase, RedisFormation, RedisSetting, RedisWait,
};
use heroku_model::plans::Plan;

type S = State<Arc<Shared>>;

/// The Data API's routes: Heroku serves them on another host (`api.data.heroku.com`), the
/// simulator on the Platform API's port (`HEROKU_DATA_HOST=127.0.0.1`).
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/redis/v0/databases/{name}", get(get_database))
        .route("/redis/v0/databases/{name}/wait", get(wait))
        .route(
            "/redis/v0/databases/{name}/config",
            get(get_config).patch(patch_config),
        )
        .route("/data/maintenances/v1/{id}", get(maintenances::info))
        .route(
            "/data/maintenances/v1/apps/{app}",
            get(maintenances::by_app),
        )
        .route(
            "/data/maintenances/v1/{id}/window",
            get(maintenances::window)
                .post(maintenances::set_window)
                .put(maintenances::set_window),
        )
}

const NO_DB: &str = "Couldn't find that database.";

fn ok<T: serde::Serialize>(v: &T) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

/// What the Data API says of a database under the behaviour profile: the plan and status it
/// reports. The truth is the serving server's plan and the add-on's [`DataStatus`]; the
/// `in-place` profile reports the target as available during the change, the `lagging`
/// profile keeps reporting the old plan, preparing, for a while after the switch.
pub(crate) fn view(a: &AddonState, b: &Behaviour) -> (Plan, DataStatus) {
    let mut plan = a.server.plan();
    let mut status = a.data.clone();
    if b.provisioned_at_once && status == DataStatus::Preparing {
        plan = a.plan;
        status = DataStatus::Available;
    }
    if let Some((at, old)) = a.switched
        && at.elapsed() < b.data_lag
    {
        plan = old;
        status = DataStatus::Preparing;
    }
    (plan, status)
}

/// The Data API's status word.
fn status_word(status: &DataStatus) -> &'static str {
    match status {
        DataStatus::Preparing => "preparing",
        DataStatus::Available | DataStatus::ChangeFailed(_) => "available",
    }
}

fn maintenance_word(m: MaintenanceStatus) -> String {
    match m {
        MaintenanceStatus::None => "not required".into(),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
    }
}

fn row(name: &str, value: impl Into<String>) -> InfoRow {
    InfoRow {
        name: name.into(),
        values: vec![value.into()],
    }
}

pub(crate) fn database(a: &AddonState, version: &str, b: &Behaviour) -> RedisDatabase {
    let (plan, status) = view(a, b);
    let mut info = vec![
        row("Plan", human(plan.name)),
        row("Status", status_word(&status)),
        row("Created", a.created_at.clone()),
        row("Version", version),
        row("Timeout", a.settings.timeout.to_string()),
        row("Maxmemory", a.settings.maxmemory_policy.clone()),
        row("Maintenance", maintenance_word(a.maintenance)),
        row("Maintenance window", a.window.clone()),
        row("Persistence", "None"),
        row("HA Status", "Available"),
    ];
    if let DataStatus::ChangeFailed(message) = &a.data {
        info.push(row("Last plan change", message.clone()));
    }
    RedisDatabase {
        addon_id: a.id.clone(),
        name: a.name.clone(),
        // The database's plan is the one of the server serving it (the old one until a plan
        // change has switched over); the Platform API shows the target during a change.
        // Profiles change what is reported: see `view`.
        plan: plan.name.to_owned(),
        created_at: Some(a.created_at.clone()),
        version: Some(version.to_owned()),
        port: Some(a.server.port()),
        prefer_native_tls: a.server.is_tls(),
        resource_url: Some(a.server.url()),
        formation: Some(RedisFormation {
            id: a.id.clone(),
            primary: None,
        }),
        info,
    }
}

fn human(bare: &str) -> String {
    let mut s = bare.replace('-', " ");
    if let Some(first) = s.get(..1) {
        s = first.to_uppercase() + &s[1..];
    }
    s
}

pub(crate) async fn get_database(State(s): S, Path(name): Path<String>) -> Response {
    let b = s.behaviour();
    let world = s.world();
    let Some(a) = world.addon(&name, None) else {
        return not_found("database", NO_DB);
    };
    let db = database(a, &a_version(a), &b);
    if b.sparse_bodies {
        // Only what a client cannot do without: the Heroku CLI reads `resource_url` and
        // `prefer_native_tls` (`redis:cli`) and `info` (`redis:info`) without a guard, so Heroku
        // must send them; every other field is left out.
        return ok(&json!({
            "addon_id": db.addon_id,
            "name": db.name,
            "plan": db.plan,
            "resource_url": db.resource_url,
            "prefer_native_tls": db.prefer_native_tls,
            "info": db.info,
        }));
    }
    ok(&db)
}

fn a_version(_a: &AddonState) -> String {
    crate::REDIS_VERSION
        .get()
        .cloned()
        .unwrap_or_else(|| "7.0".into())
}

pub(crate) async fn wait(State(s): S, Path(name): Path<String>) -> Response {
    let b = s.behaviour();
    let world = s.world();
    let Some(a) = world.addon(&name, None) else {
        return not_found("database", NO_DB);
    };
    let w = match &view(a, &b).1 {
        DataStatus::Preparing => RedisWait {
            message: "preparing".into(),
            waiting: true,
        },
        DataStatus::Available => RedisWait {
            message: "available".into(),
            waiting: false,
        },
        DataStatus::ChangeFailed(m) => RedisWait {
            message: m.clone(),
            waiting: false,
        },
    };
    if b.sparse_bodies {
        // As in the Heroku CLI's fixtures: no `message`.
        return ok(&json!({ "waiting?": w.waiting }));
    }
    ok(&w)
}

pub(crate) fn config(settings: &RedisSettingsSpec) -> RedisConfig {
    let policies: serde_json::Map<String, Value> = MAXMEMORY_POLICIES
        .iter()
        .map(|p| ((*p).to_owned(), Value::String(policy_desc(p).to_owned())))
        .collect();
    RedisConfig {
        maxmemory_policy: RedisSetting {
            desc: Some("The policy Redis uses to evict keys when it reaches its memory limit.".into()),
            value: json!(settings.maxmemory_policy),
            default: Some(json!("noeviction")),
            values: Some(Value::Object(policies)),
        },
        timeout: RedisSetting {
            desc: Some(
                "Seconds a connection may sit idle before it is closed; 0 keeps idle connections open."
                    .into(),
            ),
            value: json!(settings.timeout),
            default: Some(json!(300)),
            values: None,
        },
        notify_keyspace_events: RedisSetting {
            desc: Some("Which keyspace events are published (see Redis keyspace notifications).".into()),
            value: json!(settings.notify_keyspace_events),
            default: Some(json!("")),
            values: None,
        },
    }
}

fn policy_desc(p: &str) -> &'static str {
    match p {
        "noeviction" => "return errors when memory limit is reached",
        "allkeys-lfu" => "evict any key, least frequently used first",
        "volatile-lfu" => "evict keys with an expire set, least frequently used first",
        "allkeys-lru" => "evict any key, least recently used first",
        "volatile-lru" => "evict keys with an expire set, least recently used first",
        "allkeys-random" => "evict random keys",
        "volatile-random" => "evict random keys with an expire set",
        _ => "evict keys with an expire set, shortest time to live first",
    }
}

pub(crate) async fn get_config(State(s): S, Path(name): Path<String>) -> Response {
    match s.world().addon(&name, None) {
        Some(a) => ok(&config(&a.settings)),
        None => not_found("database", NO_DB),
    }
}

pub(crate) async fn patch_config(State(s): S, Path(name): Path<String>, body: Bytes) -> Response {
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    &format!("Invalid JSON: {e}"),
                );
            }
        }
    };
    let (servers, mut settings, addon) = {
        let world = s.world();
        let Some(a) = world.addon(&name, None) else {
            return not_found("database", NO_DB);
        };
        let mut servers: Vec<Arc<RedisServer>> = vec![Arc::clone(&a.server)];
        servers.extend(a.pending.clone());
        (servers, a.settings.clone(), a.name.clone())
    };
    let changes = match parse_changes(&body, &mut settings) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    for server in &servers {
        let mut con = match server.control().await {
            Ok(c) => c,
            Err(e) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    &format!("The database did not accept the change: {e}"),
                );
            }
        };
        for (param, value) in &changes {
            if let Err(e) = server
                .config_cmd()
                .arg("SET")
                .arg(*param)
                .arg(value)
                .query_async::<()>(&mut con)
                .await
            {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_params",
                    &format!("The database rejected {param}: {e}"),
                );
            }
        }
    }
    if let Some(a) = s.world().addon_mut(&name) {
        a.settings = settings.clone();
        a.updated_at = now_iso();
    }
    for (param, value) in changes {
        s.event(EventKind::RedisConfigChanged {
            addon: addon.clone(),
            setting: param.replace('-', "_"),
            value,
        });
    }
    ok(&config(&settings))
}

/// Reads a config PATCH body into `settings`; returns the `CONFIG SET` pairs to apply.
fn parse_changes(
    body: &Value,
    settings: &mut RedisSettingsSpec,
) -> Result<Vec<(&'static str, String)>, Box<Response>> {
    let mut changes: Vec<(&'static str, String)> = Vec::new();
    if let Some(v) = body.get("maxmemory_policy") {
        let Some(p) = v.as_str().filter(|p| MAXMEMORY_POLICIES.contains(p)) else {
            return Err(Box::new(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_params",
                &format!(
                    "maxmemory_policy must be one of {}",
                    MAXMEMORY_POLICIES.join(", ")
                ),
            )));
        };
        p.clone_into(&mut settings.maxmemory_policy);
        changes.push(("maxmemory-policy", p.to_owned()));
    }
    if let Some(v) = body.get("timeout") {
        let t = match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        let Some(t) = t else {
            return Err(Box::new(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_params",
                "timeout must be a number of seconds (0 = never)",
            )));
        };
        settings.timeout = t;
        changes.push(("timeout", t.to_string()));
    }
    if let Some(v) = body.get("notify_keyspace_events") {
        let Some(n) = v.as_str() else {
            return Err(Box::new(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_params",
                "notify_keyspace_events must be a string",
            )));
        };
        n.clone_into(&mut settings.notify_keyspace_events);
        changes.push(("notify-keyspace-events", n.to_owned()));
    }
    Ok(changes)
}
