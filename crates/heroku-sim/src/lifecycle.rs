//! Add-on lifecycle beyond plan changes: create (`heroku addons:create`), destroy
//! (`heroku addons:destroy`), and the releases that config var changes make
//! (`heroku releases`). A created heroku-redis add-on is `provisioning` for the simulator's
//! provisioning time, with its attachment but no URL yet; then its config vars appear (a
//! release, and the app restarts) and it is `provisioned`.

// Handlers bail out with the finished error `Response`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::attach::default_name;
use crate::dynos;
use crate::platform::{
    NO_ADDON, NO_APP, body_json, invalid, ok, requested_plan, resolve_plan, unknown_plan,
};
use crate::provision::stop_server;
use crate::redis_proc::{RedisServer, ServerSpec};
use crate::render::{self, paginate};
use crate::scenario::RedisSettingsSpec;
use crate::server::not_found;
use crate::state::{AddonState, AttachmentState, DataStatus, Shared, new_id, now_iso};
use crate::timeline::EventKind;
use heroku_model::models::{AddOnState, MaintenanceStatus};

type S = State<Arc<Shared>>;

/// A globally unique generated name, `redis-<word>-<number>`.
fn fresh_name(s: &Shared) -> String {
    let world = s.world();
    let words = crate::world::WORDS;
    loop {
        let adjective = words[rand::random::<u32>() as usize % words.len()];
        let candidate = format!(
            "redis-{adjective}-{}",
            10_000 + rand::random::<u32>() % 90_000
        );
        if world.addons.iter().all(|a| a.name != candidate) {
            return candidate;
        }
    }
}

/// `POST /apps/{app}/addons` `{plan, attachment?: {name}, name?, config?, confirm?}`.
pub(crate) async fn create_addon(
    State(s): S,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let requested = requested_plan(&body);
    let tls_by_default = s.behaviour().tls;
    let Some((app_id, tls)) = ({
        let world = s.world();
        world.app(&app).map(|a| {
            // New add-ons speak TLS under the profile's `tls` knob (Heroku: every plan), and
            // whatever the app's others speak.
            let tls = tls_by_default
                || world
                    .addons
                    .iter()
                    .filter(|x| x.belongs_to(&a.id))
                    .any(|x| x.server.is_tls());
            (a.id.clone(), tls)
        })
    }) else {
        return not_found("app", NO_APP);
    };
    let Some(plan) = resolve_plan(&requested) else {
        return unknown_plan(&requested);
    };
    let name = match body.get("name").and_then(Value::as_str) {
        Some(n) if s.world().addons.iter().any(|a| a.name == n) => {
            return invalid(&format!("Name {n} is already taken."));
        }
        Some(n) => n.to_owned(),
        None => fresh_name(&s),
    };
    let attachment_name = body
        .get("attachment")
        .and_then(|a| a.get("name"))
        .and_then(Value::as_str)
        .map(str::to_uppercase);
    if let Some(n) = &attachment_name {
        let taken = s
            .world()
            .addons
            .iter()
            .any(|a| a.state != AddOnState::Deprovisioned && a.attached_as(n, Some(&app_id)));
        if taken {
            return invalid(&format!("Name {n} is already taken by another attachment."));
        }
    }
    let settings = RedisSettingsSpec::default();
    let spec = ServerSpec {
        addon: name.clone(),
        plan,
        maxmemory_policy: settings.maxmemory_policy.clone(),
        timeout: settings.timeout,
        notify_keyspace_events: settings.notify_keyspace_events.clone(),
        tls,
        restricted: s.behaviour().restricted_commands,
    };
    let started = match RedisServer::start(&spec).await {
        Ok(server) if crate::standby::wanted(&s, plan) => crate::standby::attach(&server, &spec)
            .await
            .map(|()| server),
        other => other,
    };
    let server = match started {
        Ok(server) => Arc::new(server),
        Err(e) => {
            return crate::server::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                &format!("could not start a server for the new add-on: {e}"),
            );
        }
    };
    s.event(EventKind::RedisStarted {
        addon: name.clone(),
        plan: plan.name.to_owned(),
        port: server.port(),
        pid: server.pid(),
    });
    let out = {
        let mut world = s.world();
        let attachment = attachment_name.unwrap_or_else(|| default_name(&world, &app_id));
        let now = now_iso();
        world.addons.push(AddonState {
            id: new_id(),
            name: name.clone(),
            app_id: app_id.clone(),
            attachments: vec![AttachmentState::new(&attachment, &app_id)],
            plan,
            state: AddOnState::Provisioning,
            server,
            pending: None,
            data: DataStatus::Preparing,
            switched: None,
            maintenance: MaintenanceStatus::None,
            window: crate::maintenances::DEFAULT_WINDOW.to_owned(),
            settings,
            created_at: now.clone(),
            updated_at: now,
        });
        let (Some(x), Some(a)) = (world.addon(&name, None), world.app(&app_id)) else {
            return not_found("add_on", NO_ADDON);
        };
        render::addon(a, x, render::wants_plan(&headers))
    };
    s.event(EventKind::ProvisioningStarted {
        addon: name.clone(),
        from_plan: String::new(),
        to_plan: plan.full_name(),
    });
    let task = tokio::spawn(finish_create(Arc::clone(&s), name));
    s.world().tasks.push(task);
    (StatusCode::CREATED, axum::Json(out)).into_response()
}

/// After the provisioning time: the URL appears in every attachment's app, each app gets a
/// release and restarts, the add-on is `provisioned`.
async fn finish_create(s: Arc<Shared>, name: String) {
    tokio::time::sleep(s.config.provision).await;
    let apps = {
        let mut world = s.world();
        let Some(a) = world.addon_mut(&name) else {
            return;
        };
        if a.state != AddOnState::Provisioning {
            return;
        }
        a.state = AddOnState::Provisioned;
        a.data = DataStatus::Available;
        a.updated_at = now_iso();
        let url = a.server.url();
        world.publish_url(&name, &url)
    };
    s.event(EventKind::ProvisioningSucceeded {
        addon: name.clone(),
        plan: s
            .world()
            .addon(&name, None)
            .map(|a| a.plan.full_name())
            .unwrap_or_default(),
    });
    for c in apps {
        s.event(EventKind::ConfigVarChanged {
            app: c.app_name,
            name: c.var,
        });
        dynos::restart_app(&s, &c.app_id).await;
    }
}

/// `DELETE /apps/{app}/addons/{addon}`: every attachment goes (config vars, a release and a
/// restart per app), the server stops, the add-on is `deprovisioned`.
pub(crate) async fn destroy_addon(
    State(s): S,
    Path((app, addon)): Path<(String, String)>,
) -> Response {
    let (out, server, apps, name) = {
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
        let Some(a) = world.addon_mut(&key) else {
            return not_found("add_on", NO_ADDON);
        };
        a.state = AddOnState::Deprovisioned;
        a.updated_at = now_iso();
        let detached: Vec<AttachmentState> = std::mem::take(&mut a.attachments);
        let server = Arc::clone(&a.server);
        let name = a.name.clone();
        let mut apps = Vec::new();
        for x in detached {
            if let Some(app) = world.app_mut(&x.app_id) {
                app.config_vars.0.remove(&x.config_var());
                app.updated_at = now_iso();
                app.release(format!("Remove {} ({name})", x.name));
                if !apps.iter().any(|(id, _, _)| *id == x.app_id) {
                    apps.push((x.app_id.clone(), app.name.clone(), x.config_var()));
                }
            }
        }
        let (Some(x), Some(a)) = (world.addon(&key, None), world.app(&app_id)) else {
            return not_found("add_on", NO_ADDON);
        };
        (render::addon(a, x, false), server, apps, name)
    };
    for (app_id, app_name, var) in apps {
        s.event(EventKind::ConfigVarChanged {
            app: app_name,
            name: var,
        });
        dynos::restart_app(&s, &app_id).await;
    }
    stop_server(&s, &name, &server);
    ok(out)
}

/// `GET /apps/{app}/releases`, oldest first (the CLI asks for `version` descending with a
/// `Range` header; the pagination honours it).
pub(crate) async fn list_releases(
    State(s): S,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> Response {
    let world = s.world();
    let Some(a) = world.app(&app) else {
        return not_found("app", NO_APP);
    };
    let items = a.releases.iter().map(|r| render::release(a, r)).collect();
    drop(world);
    paginate(&headers, items)
}

/// `GET /apps/{app}/releases/{id_or_version}`.
pub(crate) async fn get_release(
    State(s): S,
    Path((app, release)): Path<(String, String)>,
) -> Response {
    let world = s.world();
    let Some(a) = world.app(&app) else {
        return not_found("app", NO_APP);
    };
    a.releases
        .iter()
        .find(|r| r.id == release || r.version.to_string() == release)
        .map_or_else(
            || not_found("release", "Couldn't find that release."),
            |r| ok(render::release(a, r)),
        )
}
