//! Attachments: list, resolve, attach (`heroku addons:attach`) and detach
//! (`heroku addons:detach`). An attachment makes the add-on's URL a config var of an app
//! (`{NAME}_URL`), so attaching and detaching change config vars: each makes a release and
//! restarts the app's dynos, as Heroku does (Dev Center, config-vars).

// Handlers bail out with the finished error `Response`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::dynos;
use crate::platform::{NO_ADDON, NO_APP, app_scope, body_json, invalid, ok, service_matches};
use crate::render::{self, paginate};
use crate::server::{error, not_found};
use crate::state::{AddonState, AttachmentState, Shared, World, now_iso};
use crate::timeline::EventKind;
use heroku_model::models::AddOnState;

type S = State<Arc<Shared>>;

const NO_ATTACHMENT: &str = "Couldn't find that add on attachment.";

/// Every live attachment with its add-on, in creation order of the add-ons.
fn all(world: &World) -> impl Iterator<Item = (&AddonState, &AttachmentState)> {
    world
        .addons
        .iter()
        .filter(|a| a.state != AddOnState::Deprovisioned)
        .flat_map(|a| a.attachments.iter().map(move |x| (a, x)))
}

/// An attachment rendered, or `None` when one of its apps is gone.
fn rendered(world: &World, a: &AddonState, x: &AttachmentState) -> Option<Value> {
    let app = world.app(&x.app_id)?;
    let owner = world.app(&a.app_id)?;
    Some(render::attachment(app, owner, a, x))
}

pub(crate) async fn list_app_attachments(
    State(s): S,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> Response {
    let world = s.world();
    let Some(app_id) = world.app(&app).map(|a| a.id.clone()) else {
        return not_found("app", NO_APP);
    };
    let items = all(&world)
        .filter(|(_, x)| x.app_id == app_id)
        .filter_map(|(a, x)| rendered(&world, a, x))
        .collect();
    drop(world);
    paginate(&headers, items)
}

pub(crate) async fn list_all_attachments(State(s): S, headers: HeaderMap) -> Response {
    let world = s.world();
    let items = all(&world)
        .filter_map(|(a, x)| rendered(&world, a, x))
        .collect();
    drop(world);
    paginate(&headers, items)
}

pub(crate) async fn list_addon_attachments(
    State(s): S,
    Path(addon): Path<String>,
    headers: HeaderMap,
) -> Response {
    let world = s.world();
    let Some(a) = world.addon(&addon, None) else {
        return not_found("add_on", NO_ADDON);
    };
    let items = a
        .attachments
        .iter()
        .filter_map(|x| rendered(&world, a, x))
        .collect();
    drop(world);
    paginate(&headers, items)
}

/// `GET /addon-attachments/{id}`.
pub(crate) async fn get_attachment(State(s): S, Path(id): Path<String>) -> Response {
    let world = s.world();
    all(&world)
        .find(|(_, x)| x.id == id)
        .and_then(|(a, x)| rendered(&world, a, x))
        .map_or_else(|| not_found("add_on attachment", NO_ATTACHMENT), ok)
}

pub(crate) async fn resolve_attachment(State(s): S, body: Bytes) -> Response {
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let name = body
        .get("addon_attachment")
        .and_then(Value::as_str)
        .unwrap_or("");
    let app = body.get("app").and_then(Value::as_str);
    let world = s.world();
    let app_id = match app_scope(&world, app) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let found: Vec<Value> = if service_matches(&body) {
        all(&world)
            .filter(|(_, x)| app_id.as_deref().is_none_or(|id| x.app_id == id))
            .filter(|(a, x)| {
                x.name.eq_ignore_ascii_case(name) || x.id == name || a.name == name || a.id == name
            })
            .filter_map(|(a, x)| rendered(&world, a, x))
            .collect()
    } else {
        Vec::new()
    };
    let mut found = found;
    // Fault `resolve_also`: another add-on's attachment answers too (or alone).
    if let Some((other, alone)) = s.faults.peek(|f| match f {
        crate::faults::Fault::ResolveAlso { addon, alone } => Some((addon.clone(), *alone)),
        _ => None,
    }) && !found.is_empty()
    {
        // The true match's attachment, pointing at the other add-on (its name kept).
        let forged = all(&world)
            .find(|(a, x)| a.name == other || x.name.eq_ignore_ascii_case(&other))
            .and_then(|(a, x)| rendered(&world, a, x))
            .and_then(|o| o.get("addon").cloned())
            .map(|addon| {
                let mut f = found[0].clone();
                f["addon"] = addon;
                f
            });
        if let Some(forged) = forged {
            if alone {
                found.clear();
            }
            found.insert(0, forged);
        }
    }
    if found.is_empty() {
        return not_found("add_on attachment", NO_ATTACHMENT);
    }
    ok(Value::Array(found))
}

/// An add-on or app named in a body: the identity string itself, or an object's `id` or `name`
/// (the Heroku CLI's `addons:attach` sends `{"addon": {"name": …}, "app": {"name": …}}`).
fn identity(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o
            .get("id")
            .or_else(|| o.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

/// `GET /apps/{app}/addon-attachments/{attachment}` by name or id (`heroku addons:detach`
/// reads the attachment here first).
pub(crate) async fn get_app_attachment(
    State(s): S,
    Path((app, key)): Path<(String, String)>,
) -> Response {
    let world = s.world();
    let Some(app_id) = world.app(&app).map(|a| a.id.clone()) else {
        return not_found("app", NO_APP);
    };
    all(&world)
        .find(|(_, x)| x.app_id == app_id && (x.id == key || x.name.eq_ignore_ascii_case(&key)))
        .and_then(|(a, x)| rendered(&world, a, x))
        .map_or_else(|| not_found("add_on attachment", NO_ATTACHMENT), ok)
}

/// Whether `name` is a valid attachment name (it becomes a config var prefix).
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A free default name on the app: `REDIS`, then `HEROKU_REDIS_<COLOUR>` as Heroku names them.
pub(crate) fn default_name(world: &World, app_id: &str) -> String {
    const COLOURS: [&str; 8] = [
        "AQUA", "BLUE", "COPPER", "CRIMSON", "GOLD", "GRAY", "OLIVE", "PURPLE",
    ];
    let taken = |n: &str| all(world).any(|(_, x)| x.app_id == app_id && x.name == n);
    if !taken("REDIS") {
        return "REDIS".into();
    }
    COLOURS
        .iter()
        .map(|c| format!("HEROKU_REDIS_{c}"))
        .chain((1..=u32::MAX).map(|n| format!("HEROKU_REDIS_{n}")))
        .find(|n| !taken(n))
        .unwrap_or_default()
}

/// `POST /addon-attachments` `{addon, app, name?, confirm?}` (`heroku addons:attach`).
///
/// A name another add-on holds on the app is refused with `confirmation_required`; with
/// `confirm` set to the app's name, the `attach_replaces` behaviour replaces it in one release
/// (the config var moves to the new URL with no gap), otherwise it stays refused.
pub(crate) async fn create_attachment(State(s): S, body: Bytes) -> Response {
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let (Some(addon_key), Some(app_key)) = (identity(body.get("addon")), identity(body.get("app")))
    else {
        return invalid("Both addon and app are required.");
    };
    let replaces = s.behaviour().attach_replaces;
    let (app_id, out) = {
        let mut world = s.world();
        let Some((app_id, app_name)) = world.app(&app_key).map(|a| (a.id.clone(), a.name.clone()))
        else {
            return not_found("app", NO_APP);
        };
        let Some(addon_id) = world
            .addon(&addon_key, None)
            .filter(|a| a.state != AddOnState::Deprovisioned)
            .map(|a| a.id.clone())
        else {
            return not_found("add_on", NO_ADDON);
        };
        let name =
            field("name").map_or_else(|| default_name(&world, &app_id), |n| n.to_uppercase());
        if !valid_name(&name) {
            return invalid(
                "Name must start with a letter and can only contain letters, numbers and underscores.",
            );
        }
        let holder = all(&world)
            .find(|(_, x)| x.app_id == app_id && x.name == name)
            .map(|(a, x)| (a.id.clone(), a.name.clone(), x.id.clone()));
        if let Some((holder_id, holder_name, old_attachment)) = holder {
            if holder_id == addon_id {
                return invalid(&format!("{name} is already attached to {app_name}."));
            }
            let confirmed = field("confirm").is_some_and(|c| c == app_name);
            if !(replaces && confirmed) {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "confirmation_required",
                    &format!(
                        "{name} is already used by {holder_name} on {app_name}. To replace it, confirm with the app's name."
                    ),
                );
            }
            if let Some(old) = world.addon_mut(&holder_id) {
                old.attachments.retain(|x| x.id != old_attachment);
            }
        }
        let attachment = AttachmentState::new(&name, &app_id);
        let Some(a) = world.addon_mut(&addon_id) else {
            return not_found("add_on", NO_ADDON);
        };
        a.attachments.push(attachment.clone());
        a.updated_at = now_iso();
        // The URL exists once the add-on is provisioned; provisioning sets it later.
        let url = (a.state == AddOnState::Provisioned).then(|| a.server.url());
        let addon_name = a.name.clone();
        let var = attachment.config_var();
        if let Some(app) = world.app_mut(&app_id) {
            match &url {
                Some(u) => {
                    app.config_vars.0.insert(var.clone(), u.clone());
                }
                None => {
                    app.config_vars.0.remove(&var);
                }
            }
            app.updated_at = now_iso();
            app.release(format!("Attach {name} ({addon_name})"));
        }
        let Some(a) = world.addon(&addon_id, None) else {
            return not_found("add_on", NO_ADDON);
        };
        let out = rendered(&world, a, &attachment).unwrap_or(Value::Null);
        drop(world);
        s.event(EventKind::ConfigVarChanged {
            app: app_name,
            name: var,
        });
        (app_id, out)
    };
    dynos::restart_app(&s, &app_id).await;
    (StatusCode::CREATED, axum::Json(out)).into_response()
}

/// `DELETE /addon-attachments/{id}` (`heroku addons:detach`). The owning app's last
/// attachment cannot go: destroy the add-on instead, as Heroku says.
pub(crate) async fn delete_attachment(State(s): S, Path(id): Path<String>) -> Response {
    let (app_id, out) = {
        let mut world = s.world();
        let Some((addon_id, x)) = all(&world)
            .find(|(_, x)| x.id == id)
            .map(|(a, x)| (a.id.clone(), x.clone()))
        else {
            return not_found("add_on attachment", NO_ATTACHMENT);
        };
        let Some(a) = world.addon(&addon_id, None) else {
            return not_found("add_on", NO_ADDON);
        };
        let out = rendered(&world, a, &x).unwrap_or(Value::Null);
        let owner_attachments = a
            .attachments
            .iter()
            .filter(|y| y.app_id == a.app_id)
            .count();
        if x.app_id == a.app_id && owner_attachments == 1 {
            return invalid(&format!(
                "{} is the last attachment of {} to its billing app; destroy the add-on instead.",
                x.name, a.name
            ));
        }
        let addon_name = a.name.clone();
        if let Some(a) = world.addon_mut(&addon_id) {
            a.attachments.retain(|y| y.id != x.id);
            a.updated_at = now_iso();
        }
        let var = x.config_var();
        let app_name = world.app_mut(&x.app_id).map(|app| {
            app.config_vars.0.remove(&var);
            app.updated_at = now_iso();
            app.release(format!("Detach {} ({addon_name})", x.name));
            app.name.clone()
        });
        drop(world);
        s.event(EventKind::ConfigVarChanged {
            app: app_name.unwrap_or_default(),
            name: var,
        });
        (x.app_id, out)
    };
    dynos::restart_app(&s, &app_id).await;
    ok(out)
}
