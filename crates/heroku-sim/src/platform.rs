//! Platform API routes: apps, formation, dynos, add-ons, attachments, plans, config vars, log
//! sessions, rate limits. Bodies are read leniently (the Heroku CLI sends quantities as
//! strings and does not always send a JSON content type).

// Handlers bail out with the finished error `Response`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::dynos;
use crate::logs::LogFilter;
use crate::provision;
use crate::render::{self, paginate};
use crate::server::{error, not_found};
use crate::state::{DataStatus, LogSessionState, Shared, World, new_id, now_iso};
use crate::timeline::{EventKind, lock};
use heroku_model::models::AddOnState;
use heroku_model::plans;

type S = State<Arc<Shared>>;

pub(crate) const NO_APP: &str = "Couldn't find that app.";
pub(crate) const NO_ADDON: &str = "Couldn't find that add on.";
const NO_FORMATION: &str = "Couldn't find that formation.";

pub(crate) fn body_json(body: &Bytes) -> Result<Value, Response> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            &format!("Invalid JSON in the request body: {e}"),
        )
    })
}

pub(crate) fn ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

pub(crate) async fn rate_limits(State(s): S) -> Response {
    let remaining = lock(&s.rate).remaining();
    ok(json!({ "remaining": remaining }))
}

/// `GET /account`: the simulator's one user (the Heroku CLI asks for it in `heroku ps`).
pub(crate) async fn account() -> Response {
    ok(json!({
        "allow_tracking": false,
        "beta": false,
        "created_at": "2016-01-01T00:00:00Z",
        "email": "sim@example.com",
        "federated": false,
        "id": crate::state::stable_id("account:sim"),
        "identity_provider": null,
        "last_login": "2026-01-01T00:00:00Z",
        "name": "Simulator",
        "sms_number": null,
        "suspended_at": null,
        "delinquent_at": null,
        "two_factor_authentication": false,
        "updated_at": "2016-01-01T00:00:00Z",
        "verified": true,
        "country_of_residence": null,
        "default_organization": null,
        "default_team": null,
    }))
}

pub(crate) async fn list_apps(State(s): S, headers: HeaderMap) -> Response {
    let items = s.world().apps.iter().map(render::app).collect();
    paginate(&headers, items)
}

pub(crate) async fn get_app(State(s): S, Path(app): Path<String>) -> Response {
    match s.world().app(&app) {
        Some(a) => ok(render::app(a)),
        None => not_found("app", NO_APP),
    }
}

pub(crate) async fn patch_app(State(s): S, Path(app): Path<String>, body: Bytes) -> Response {
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut changed = None;
    let out = {
        let mut world = s.world();
        let Some(a) = world.app_mut(&app) else {
            return not_found("app", NO_APP);
        };
        if let Some(m) = body.get("maintenance") {
            let Some(on) = as_bool(m) else {
                return invalid("maintenance must be a boolean");
            };
            if a.maintenance != on {
                a.maintenance = on;
                a.updated_at = now_iso();
                changed = Some((a.name.clone(), on));
            }
        }
        render::app(a)
    };
    if let Some((app, on)) = changed {
        s.event(EventKind::MaintenanceChanged {
            app: app.clone(),
            on,
        });
        let word = if on { "Enable" } else { "Disable" };
        s.log(
            &app,
            "app",
            "api",
            &format!("{word} maintenance mode by user sim@example.com"),
        );
    }
    ok(out)
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A quantity as Heroku accepts it: an integer or a string of one.
fn as_quantity(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn invalid(message: &str) -> Response {
    error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_params", message)
}

pub(crate) async fn list_formation(
    State(s): S,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> Response {
    let world = s.world();
    let Some(a) = world.app(&app) else {
        return not_found("app", NO_APP);
    };
    let items = a
        .formation
        .iter()
        .map(|f| render::formation(a, f))
        .collect();
    drop(world);
    paginate(&headers, items)
}

pub(crate) async fn get_formation(
    State(s): S,
    Path((app, ptype)): Path<(String, String)>,
) -> Response {
    let world = s.world();
    let Some(a) = world.app(&app) else {
        return not_found("app", NO_APP);
    };
    match a
        .formation
        .iter()
        .find(|f| f.process_type == ptype || f.id == ptype)
    {
        Some(f) => ok(render::formation(a, f)),
        None => not_found("formation", NO_FORMATION),
    }
}

/// One requested change: type, quantity, size.
struct Update {
    process_type: String,
    quantity: Option<u32>,
    size: Option<String>,
}

fn parse_update(v: &Value, process_type: Option<&str>) -> Result<Update, Response> {
    let process_type = match process_type {
        Some(t) => t.to_owned(),
        None => v
            .get("type")
            .or_else(|| v.get("process"))
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("each update needs a type"))?
            .to_owned(),
    };
    let quantity = match v.get("quantity") {
        None | Some(Value::Null) => None,
        Some(q) => {
            Some(as_quantity(q).ok_or_else(|| invalid("quantity must be a non-negative integer"))?)
        }
    };
    let size = v.get("size").and_then(Value::as_str).map(str::to_owned);
    Ok(Update {
        process_type,
        quantity,
        size,
    })
}

pub(crate) async fn patch_formation(
    State(s): S,
    Path((app, ptype)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let update = match parse_update(&body, Some(&ptype)) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match apply_updates(&s, &app, vec![update]).await {
        Ok(mut list) => ok(list.pop().unwrap_or(Value::Null)),
        Err(r) => r,
    }
}

pub(crate) async fn batch_formation(State(s): S, Path(app): Path<String>, body: Bytes) -> Response {
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(updates) = body.get("updates").and_then(Value::as_array) else {
        return invalid("updates must be a list of {type, quantity, size}");
    };
    let mut parsed = Vec::new();
    for u in updates {
        match parse_update(u, None) {
            Ok(u) => parsed.push(u),
            Err(r) => return r,
        }
    }
    match apply_updates(&s, &app, parsed).await {
        Ok(list) => ok(Value::Array(list)),
        Err(r) => r,
    }
}

/// Applies formation updates atomically (all types must exist), then brings dynos in line.
async fn apply_updates(
    s: &Arc<Shared>,
    app: &str,
    updates: Vec<Update>,
) -> Result<Vec<Value>, Response> {
    let mut changes = Vec::new();
    let (app_id, app_name, out) = {
        let mut world = s.world();
        let Some(a) = world.app_mut(app) else {
            return Err(not_found("app", NO_APP));
        };
        if updates
            .iter()
            .any(|u| !a.formation.iter().any(|f| f.process_type == u.process_type))
        {
            return Err(not_found("formation", NO_FORMATION));
        }
        let now = now_iso();
        let mut out = Vec::new();
        for u in &updates {
            let Some(f) = a
                .formation
                .iter_mut()
                .find(|f| f.process_type == u.process_type)
            else {
                continue;
            };
            let from = f.quantity;
            if let Some(q) = u.quantity {
                f.quantity = q;
            }
            if let Some(size) = &u.size {
                f.size.clone_from(size);
            }
            f.updated_at.clone_from(&now);
            changes.push((f.process_type.clone(), from, f.quantity, f.size.clone()));
            out.push(f.clone());
        }
        let out: Vec<Value> = out.iter().map(|f| render::formation(a, f)).collect();
        (a.id.clone(), a.name.clone(), out)
    };
    let mut scaled = Vec::new();
    for (process_type, from, to, size) in changes {
        scaled.push(format!("{process_type}@{to}:{size}"));
        s.event(EventKind::FormationChanged {
            app: app_name.clone(),
            process_type,
            from,
            to,
            size,
        });
    }
    s.log(
        &app_name,
        "app",
        "api",
        &format!("Scaled to {} by user sim@example.com", scaled.join(" ")),
    );
    let stopping = dynos::reconcile(s, &app_id);
    dynos::finish_stops(s, stopping).await;
    Ok(out)
}

pub(crate) async fn list_dynos(
    State(s): S,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> Response {
    let world = s.world();
    let Some(a) = world.app(&app) else {
        return not_found("app", NO_APP);
    };
    let items = a
        .dynos
        .iter()
        .chain(&a.stopping)
        .map(|d| render::dyno(a, d))
        .collect();
    drop(world);
    paginate(&headers, items)
}

/// `DELETE /apps/{app}/dynos`: restart every dyno (`heroku ps:restart`).
pub(crate) async fn restart_dynos(State(s): S, Path(app): Path<String>) -> Response {
    let Some(app_id) = s.world().app(&app).map(|a| a.id.clone()) else {
        return not_found("app", NO_APP);
    };
    dynos::restart_app(&s, &app_id).await;
    (StatusCode::ACCEPTED, axum::Json(json!({}))).into_response()
}

pub(crate) async fn list_app_addons(
    State(s): S,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> Response {
    let expand = render::wants_plan(&headers);
    let world = s.world();
    let Some(a) = world.app(&app) else {
        return not_found("app", NO_APP);
    };
    // Owned by the app or attached to it from another app, as `heroku addons -a APP` lists.
    let items = world
        .addons
        .iter()
        .filter(|x| x.state != AddOnState::Deprovisioned && x.belongs_to(&a.id))
        .filter_map(|x| {
            world
                .app(&x.app_id)
                .map(|owner| render::addon(owner, x, expand))
        })
        .collect();
    drop(world);
    paginate(&headers, items)
}

pub(crate) async fn list_all_addons(State(s): S, headers: HeaderMap) -> Response {
    let expand = render::wants_plan(&headers);
    let world = s.world();
    let items = world
        .addons
        .iter()
        .filter(|x| x.state != AddOnState::Deprovisioned)
        .filter_map(|x| world.app(&x.app_id).map(|a| render::addon(a, x, expand)))
        .collect();
    drop(world);
    paginate(&headers, items)
}

pub(crate) async fn get_app_addon(
    State(s): S,
    Path((app, addon)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let world = s.world();
    let Some(a) = world.app(&app) else {
        return not_found("app", NO_APP);
    };
    match world
        .addon(&addon, Some(&a.id))
        .filter(|x| x.belongs_to(&a.id))
        .and_then(|x| world.app(&x.app_id).map(|owner| (owner, x)))
    {
        Some((owner, x)) => ok(render::addon(owner, x, render::wants_plan(&headers))),
        None => not_found("add_on", NO_ADDON),
    }
}

pub(crate) async fn get_addon(
    State(s): S,
    Path(addon): Path<String>,
    headers: HeaderMap,
) -> Response {
    let world = s.world();
    match world
        .addon(&addon, None)
        .and_then(|x| world.app(&x.app_id).map(|a| (a, x)))
    {
        Some((a, x)) => ok(render::addon(a, x, render::wants_plan(&headers))),
        None => not_found("add_on", NO_ADDON),
    }
}

pub(crate) async fn patch_addon(
    State(s): S,
    Path((app, addon)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let requested = requested_plan(&body);
    let expand = render::wants_plan(&headers);
    let behaviour = s.behaviour();
    let (from, target, out, addon_name) = {
        let mut world = s.world();
        let Some(app_id) = world.app(&app).map(|a| a.id.clone()) else {
            return not_found("app", NO_APP);
        };
        let Some(key) = world
            .addon(&addon, Some(&app_id))
            .filter(|x| x.app_id == app_id && x.state != AddOnState::Deprovisioned)
            .map(|x| x.id.clone())
        else {
            return not_found("add_on", NO_ADDON);
        };
        let Some(target) = resolve_plan(&requested) else {
            return unknown_plan(&requested);
        };
        let Some(x) = world.addon_mut(&key) else {
            return not_found("add_on", NO_ADDON);
        };
        if x.plan == target {
            // Same plan (or already changing to it): answer the add-on as it is.
            let name = x.name.clone();
            drop(world);
            let world = s.world();
            let (Some(x), Some(a)) = (world.addon(&name, None), world.app(&app_id)) else {
                return not_found("add_on", NO_ADDON);
            };
            return ok(render::addon(a, x, expand));
        }
        if x.state == AddOnState::Provisioning || x.data == DataStatus::Preparing {
            return invalid(&format!(
                "{} is being provisioned ({}); wait until it is provisioned before changing its plan again.",
                x.name,
                x.plan.full_name()
            ));
        }
        let from = x.plan;
        // The `late-flip` profile: the add-on names its old plan until the switch.
        if !behaviour.plan_flips_at_end {
            x.plan = target;
        }
        // The `in-place` profile: the add-on says provisioned at once, while the migration
        // (`data` preparing) runs behind the old server.
        x.state = if behaviour.provisioned_at_once {
            AddOnState::Provisioned
        } else {
            AddOnState::Provisioning
        };
        x.data = DataStatus::Preparing;
        x.updated_at = now_iso();
        let name = x.name.clone();
        let Some(x) = world.addon(&key, None) else {
            return not_found("add_on", NO_ADDON);
        };
        let Some(a) = world.app(&app_id) else {
            return not_found("app", NO_APP);
        };
        (from, target, render::addon(a, x, expand), name)
    };
    provision::spawn_change(&s, addon_name, from, target);
    ok(out)
}

/// A plan of the heroku-redis service by full or bare name; other services are unknown here.
pub(crate) fn resolve_plan(requested: &str) -> Option<plans::Plan> {
    let bare = match requested.split_once(':') {
        Some((service, plan)) if service == plans::HEROKU_REDIS => plan,
        Some(_) => return None,
        None => requested,
    };
    plans::find(bare)
}

pub(crate) async fn list_plans(Path(service): Path<String>, headers: HeaderMap) -> Response {
    if service != plans::HEROKU_REDIS && service != render::service_ref().id {
        return not_found("addon_service", "Couldn't find that add-on service.");
    }
    let items = plans::all().map(|p| render::service_plan(&p)).collect();
    paginate(&headers, items)
}

pub(crate) async fn config_vars(State(s): S, Path(app): Path<String>) -> Response {
    match s.world().app(&app) {
        Some(a) => ok(serde_json::to_value(&a.config_vars).unwrap_or(Value::Null)),
        None => not_found("app", NO_APP),
    }
}

/// The plan a write body names: `{"plan": "x"}` or `{"plan": {"name": "x"}}` (the CLI sends
/// either); empty when absent, which no plan matches.
pub(crate) fn requested_plan(body: &Value) -> String {
    body.get("plan")
        .and_then(|p| p.get("name").or(Some(p)))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

/// Heroku's answer to a plan it does not know.
pub(crate) fn unknown_plan(requested: &str) -> Response {
    invalid(&format!(
        "Couldn't find either the add-on service or the add-on plan of \"{requested}\"."
    ))
}

/// The app a resolve body scopes to: its id, none when the body names no app, or a 404.
pub(crate) fn app_scope(world: &World, app: Option<&str>) -> Result<Option<String>, Response> {
    match app {
        Some(app) => world
            .app(app)
            .map(|a| Some(a.id.clone()))
            .ok_or_else(|| not_found("app", NO_APP)),
        None => Ok(None),
    }
}

/// Whether a resolve body names heroku-redis (or no service).
pub(crate) fn service_matches(body: &Value) -> bool {
    body.get("addon_service")
        .and_then(Value::as_str)
        .is_none_or(|s| s == plans::HEROKU_REDIS || s == render::service_ref().id)
}

pub(crate) async fn resolve_addon(State(s): S, headers: HeaderMap, body: Bytes) -> Response {
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let name = body.get("addon").and_then(Value::as_str).unwrap_or("");
    let app = body.get("app").and_then(Value::as_str);
    let expand = render::wants_plan(&headers);
    let world = s.world();
    let app_id = match app_scope(&world, app) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let found: Vec<Value> = if service_matches(&body) {
        world
            .addons
            .iter()
            .filter(|x| {
                x.state != AddOnState::Deprovisioned
                    && (x.name == name || x.id == name || x.attached_as(name, app_id.as_deref()))
            })
            .filter_map(|x| world.app(&x.app_id).map(|a| render::addon(a, x, expand)))
            .collect()
    } else {
        Vec::new()
    };
    if found.is_empty() {
        return not_found("add_on", NO_ADDON);
    }
    ok(Value::Array(found))
}

pub(crate) async fn create_log_session(
    State(s): S,
    Path(app): Path<String>,
    body: Bytes,
) -> Response {
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(app_name) = s.world().app(&app).map(|a| a.name.clone()) else {
        return not_found("app", NO_APP);
    };
    let lines = body
        .get("lines")
        .and_then(as_quantity)
        .map_or(100, |n| n.min(1500) as usize);
    let tail = body.get("tail").and_then(as_bool).unwrap_or(false);
    let filter = LogFilter {
        dyno: body
            .get("dyno")
            .or_else(|| body.get("dyno_name"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        source: body
            .get("source")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let id = new_id();
    s.world().log_sessions.insert(
        id.clone(),
        LogSessionState {
            app: app_name,
            lines,
            tail,
            filter,
        },
    );
    let base = lock(&s.base_url).clone();
    let now = now_iso();
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "id": id,
            "logplex_url": format!("{base}/__sim/logs/{id}"),
            "created_at": now,
            "updated_at": now,
        })),
    )
        .into_response()
}
