//! Building the world a scenario describes: one seeded `redis-server` per add-on (started
//! concurrently, seeding dominates start-up), then apps, formations and config vars. Apart from
//! the simulator's handle (`lib.rs`) because it runs once, at start.

use std::collections::BTreeMap;
use std::sync::Arc;

use heroku_model::models::AddOnState;

use crate::redis_proc::{RedisServer, ServerSpec};
use crate::standby;
use crate::state::{self, AddonState, AppState, DataStatus, FormationState, Shared};
use crate::{EventKind, REDIS_VERSION, Scenario, SimError, scenario, seed};

/// Adjectives for generated add-on names (`redis-cubed-12345`), as Heroku does.
pub(crate) const WORDS: &[&str] = &[
    "cubed",
    "sinuous",
    "rigid",
    "shallow",
    "clear",
    "rugged",
    "opaque",
    "curved",
    "tetrahedral",
    "polished",
    "asymmetrical",
    "spherical",
];

/// Starts and seeds every add-on's server, fills in apps, formations and config vars.
pub(crate) async fn build_world(shared: &Arc<Shared>, scenario: &Scenario) -> Result<(), SimError> {
    let now = state::now_iso();
    // Start every server concurrently: seeding dominates start-up time.
    let mut starts = Vec::new();
    let mut names = addon_names(scenario).into_iter();
    for app in &scenario.apps {
        for spec in &app.addons {
            let Some(name) = names.next() else { break };
            let plan =
                heroku_model::plans::find(&spec.plan).ok_or_else(|| SimError::InvalidScenario {
                    origin: "config".into(),
                    message: format!("unknown plan {}", spec.plan),
                })?;
            let server_spec = ServerSpec {
                addon: name.clone(),
                plan,
                maxmemory_policy: spec.config.maxmemory_policy.clone(),
                timeout: spec.config.timeout,
                notify_keyspace_events: spec.config.notify_keyspace_events.clone(),
                tls: spec.tls.unwrap_or(shared.behaviour().tls),
                restricted: shared.behaviour().restricted_commands,
            };
            let standby = standby::wanted(shared, plan);
            starts.push(start_addon(name, server_spec, spec.seed.clone(), standby));
        }
    }
    let servers = futures::future::try_join_all(starts).await;
    // Keep started servers owned by the world even on failure so they are killed on drop.
    let servers = servers?;
    let mut servers = servers.into_iter();
    let mut world = shared.world();
    for app in &scenario.apps {
        let app_id = state::new_id();
        let mut config_vars: BTreeMap<String, String> = app.config_vars.clone();
        let mut connections = BTreeMap::new();
        for spec in &app.addons {
            let Some((name, server)) = servers.next() else {
                break;
            };
            let plan = server.plan();
            shared.event(EventKind::RedisStarted {
                addon: name.clone(),
                plan: plan.name.to_owned(),
                port: server.port(),
                pid: server.pid(),
            });
            let addon = AddonState {
                id: state::new_id(),
                name,
                app_id: app_id.clone(),
                attachments: vec![state::AttachmentState::new(&spec.attachment, &app_id)],
                plan,
                state: AddOnState::Provisioned,
                server,
                pending: None,
                data: DataStatus::Available,
                switched: None,
                maintenance: spec.maintenance,
                window: crate::maintenances::DEFAULT_WINDOW.to_owned(),
                settings: spec.config.clone(),
                created_at: now.clone(),
                updated_at: now.clone(),
            };
            connections.insert(spec.attachment.to_uppercase(), spec.connections.clone());
            for var in addon.config_vars() {
                config_vars.insert(var, addon.server.url());
            }
            world.addons.push(addon);
        }
        world.apps.push(AppState {
            id: app_id,
            name: app.name.clone(),
            maintenance: app.maintenance,
            created_at: now.clone(),
            updated_at: now.clone(),
            formation: app
                .formation
                .iter()
                .map(|f| FormationState {
                    id: state::new_id(),
                    process_type: f.process_type.clone(),
                    quantity: f.quantity,
                    size: f.size.clone(),
                    command: f
                        .command
                        .clone()
                        .unwrap_or_else(|| format!("npm run {}", f.process_type)),
                    created_at: now.clone(),
                    updated_at: now.clone(),
                })
                .collect(),
            config_vars: heroku_model::models::ConfigVars(config_vars),
            dynos: Vec::new(),
            stopping: Vec::new(),
            preboot: app.preboot,
            connections,
            releases: vec![state::ReleaseState {
                id: state::new_id(),
                version: 1,
                description: "Initial release".into(),
                created_at: now.clone(),
            }],
        });
    }
    Ok(())
}

/// The add-on names in scenario order: given names, or generated `redis-<word>-<number>` ones
/// that collide with no other (names are globally unique on Heroku).
fn addon_names(scenario: &Scenario) -> Vec<String> {
    let mut taken: std::collections::BTreeSet<String> = scenario
        .apps
        .iter()
        .flat_map(|a| a.addons.iter().filter_map(|x| x.name.clone()))
        .collect();
    let mut names = Vec::new();
    for (n, spec) in scenario.apps.iter().flat_map(|a| &a.addons).enumerate() {
        let name = match &spec.name {
            Some(name) => name.clone(),
            None => loop {
                let candidate = format!(
                    "redis-{}-{}",
                    WORDS[(n + 1) % WORDS.len()],
                    10_000 + rand::random::<u32>() % 90_000
                );
                if taken.insert(candidate.clone()) {
                    break candidate;
                }
            },
        };
        names.push(name);
    }
    names
}

/// Starts one add-on's server, seeds it, and gives it its HA standby when `standby` (after
/// the seed: one full sync instead of a stream of seed writes).
async fn start_addon(
    name: String,
    spec: ServerSpec,
    seed: Option<scenario::SeedSpec>,
    standby: bool,
) -> Result<(String, Arc<RedisServer>), SimError> {
    let server = RedisServer::start(&spec).await?;
    let mut con = server.control().await.map_err(|source| SimError::Redis {
        addon: name.clone(),
        context: "connecting to seed".into(),
        source,
    })?;
    if REDIS_VERSION.get().is_none()
        && let Ok(info) = redis::cmd("INFO")
            .arg("server")
            .query_async::<String>(&mut con)
            .await
        && let Some(v) = info.lines().find_map(|l| l.strip_prefix("redis_version:"))
    {
        let _ = REDIS_VERSION.set(v.trim().to_owned());
    }
    if let Some(seed) = &seed {
        seed::seed(&mut con, seed)
            .await
            .map_err(|source| SimError::Redis {
                addon: name.clone(),
                context: format!("seeding {} keys", seed.keys),
                source,
            })?;
    }
    if standby {
        standby::attach(&server, &spec).await?;
    }
    Ok((name, Arc::new(server)))
}
