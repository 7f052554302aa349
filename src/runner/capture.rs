//! Capture: read everything the guards and the restore need, write nothing.

use std::path::Path;

use crate::heroku::models::{AddOn, AddOnAttachment, DynoState, ServicePlan};
use crate::heroku::{Client, HerokuError};
use crate::plan::RunRequest;
use crate::plan::facts::{
    AddonFacts, AddonLookup, Capture, ProcessFacts, RedisFacts, RedisUnreadable, UnreadableReason,
};
use crate::plans;
use crate::verify::{self, RedisUrl, VerifyOptions};

/// Reads the platform for `request`. Read-only: GETs (and the resolve POST, a read) and Redis
/// INFO. `unfinished_runs` lists other runs of the app that never finished.
///
/// # Errors
/// The app cannot be read (auth, not found, network). A missing add-on is not an error: it
/// becomes a blocking guard with the platform's message.
pub async fn capture(
    client: &Client,
    request: &RunRequest,
    state_dir: &Path,
    unfinished_runs: Vec<String>,
    now: jiff::Timestamp,
) -> Result<Capture, HerokuError> {
    let app = client.app(&request.app).await?;
    let formation = client.formation(&request.app).await?;
    let dynos = client.dynos(&request.app).await?;
    let config = client.config_vars(&request.app).await?;
    let mut running: Vec<(String, u32)> = Vec::new();
    let mut steady: Vec<(String, u32)> = Vec::new();
    for d in &dynos {
        if d.state == DynoState::Up && up_for_a_while(d.updated_at.as_deref(), now) {
            match steady.iter_mut().find(|(t, _)| *t == d.process_type) {
                Some((_, n)) => *n += 1,
                None => steady.push((d.process_type.clone(), 1)),
            }
        }
        if matches!(
            d.state,
            DynoState::Up | DynoState::Starting | DynoState::Idle
        ) {
            match running.iter_mut().find(|(t, _)| *t == d.process_type) {
                Some((_, n)) => *n += 1,
                None => running.push((d.process_type.clone(), 1)),
            }
        }
    }
    let mut addons = Vec::new();
    for change in &request.changes {
        addons.push(
            match resolve_addon(client, &request.app, &change.addon).await {
                Ok((addon, attachment)) => {
                    let facts = addon_facts(
                        client,
                        &request.app,
                        &change.addon,
                        addon,
                        attachment,
                        &config,
                    )
                    .await;
                    AddonLookup::Found(Box::new(facts))
                }
                Err(HerokuError::NotFound { message, .. }) => AddonLookup::Missing {
                    requested_as: change.addon.clone(),
                    message,
                },
                Err(e) => return Err(e),
            },
        );
    }
    let preboot = client
        .app_feature(&app.name, "preboot")
        .await
        .ok()
        .map(|f| f.enabled);
    let plan_prices = client
        .addon_plans(plans::HEROKU_REDIS)
        .await
        .map(plan_prices)
        .unwrap_or_default();
    Ok(Capture {
        app: app.name,
        app_id: app.id,
        maintenance: app.maintenance,
        formation: formation
            .into_iter()
            .map(|f| ProcessFacts {
                size: f
                    .dyno_size
                    .as_ref()
                    .map_or_else(|| f.size.clone(), |s| s.name.clone()),
                process_type: f.process_type,
                quantity: f.quantity,
            })
            .collect(),
        running,
        steady,
        addons,
        local_free_bytes: verify::available_space(state_dir).ok(),
        unfinished_runs,
        captured_at: now.to_string(),
        preboot,
        plan_prices,
    })
}

/// Finds the add-on a user named, by attachment name first (what `heroku addons` shows and
/// what the Enketo guide uses), then by add-on name or id.
///
/// # Errors
/// `NotFound` when neither matches.
pub async fn resolve_addon(
    client: &Client,
    app: &str,
    name: &str,
) -> Result<(AddOn, Option<String>), HerokuError> {
    match client
        .resolve_attachment(app, name, Some(plans::HEROKU_REDIS))
        .await
    {
        Ok(attachments) if !attachments.is_empty() => {
            let att = one_addon(name, &attachments)?;
            let addon = client.addon(app, &att.addon.id).await?;
            let attachment = att.name.to_uppercase();
            // The add-on fetched must be the one the attachment names and, when it belongs
            // to this app (its `config_vars` are then this app's), must hold the
            // attachment's config var: otherwise the plan (and a run) would act on another
            // add-on than the one whose config var the user meant. A shared add-on owned by
            // another app lists that app's vars, so only the identity is checked there.
            let var = format!("{attachment}_URL");
            let owned_here = addon.app.name.eq_ignore_ascii_case(app) || addon.app.id == app;
            if addon.id != att.addon.id
                || (owned_here
                    && !addon
                        .config_vars
                        .iter()
                        .any(|v| v.eq_ignore_ascii_case(&var)))
            {
                return Err(HerokuError::WrongAddon {
                    name: name.to_owned(),
                    addon: addon.name,
                    reason: format!("that add-on does not hold the config var {var}"),
                });
            }
            check_service(name, &addon)?;
            Ok((addon, Some(attachment)))
        }
        Ok(_) | Err(HerokuError::NotFound { .. } | HerokuError::InvalidParams { .. }) => {
            let addon = client.addon(app, name).await?;
            check_service(name, &addon)?;
            let attachment = addon
                .config_vars
                .first()
                .and_then(|v| v.strip_suffix("_URL"))
                .map(str::to_owned);
            Ok((addon, attachment))
        }
        Err(e) => Err(e),
    }
}

/// The one add-on a resolve answered. Several attachments of one add-on are fine; attachments
/// of several add-ons are refused, naming each, as the Heroku CLI refuses ("Ambiguous
/// identifier; multiple matching add-ons found"): taking the first would change a plan the
/// user did not name.
///
/// # Errors
/// [`HerokuError::AmbiguousAddon`] when more than one add-on matches.
pub fn one_addon<'a>(
    name: &str,
    attachments: &'a [AddOnAttachment],
) -> Result<&'a AddOnAttachment, HerokuError> {
    let mut addons: Vec<&str> = attachments.iter().map(|a| a.addon.id.as_str()).collect();
    addons.sort_unstable();
    addons.dedup();
    if addons.len() > 1 {
        let mut matches: Vec<String> = Vec::new();
        for a in attachments {
            let shown = format!("{} (attached as {})", a.addon.name, a.name);
            if !matches.contains(&shown) {
                matches.push(shown);
            }
        }
        return Err(HerokuError::AmbiguousAddon {
            name: name.to_owned(),
            matches,
        });
    }
    attachments.first().ok_or_else(|| HerokuError::WrongAddon {
        name: name.to_owned(),
        addon: String::new(),
        reason: "Heroku resolved it to nothing".into(),
    })
}

/// The monthly price in cents of each heroku-redis plan in a service's plan list, by bare
/// name. Another service's plan (`heroku-postgresql:premium-5`) is not a heroku-redis plan,
/// whatever its bare name, and is left out.
fn plan_prices(list: Vec<ServicePlan>) -> std::collections::BTreeMap<String, u64> {
    list.into_iter()
        .filter(|p| {
            p.name
                .split_once(':')
                .is_none_or(|(service, _)| service == plans::HEROKU_REDIS)
        })
        .filter_map(|p| {
            let cents = p.price?.cents;
            Some((plans::bare_name(&p.name).to_owned(), cents))
        })
        .collect()
}

/// Refuses an add-on whose plan names another service (`heroku-postgresql:premium-4`): its
/// bare name would otherwise pass for a heroku-redis plan of the same name.
///
/// # Errors
/// [`HerokuError::WrongAddon`] naming the plan.
pub fn check_service(name: &str, addon: &AddOn) -> Result<(), HerokuError> {
    match addon.plan.name.split_once(':') {
        Some((service, _)) if service != plans::HEROKU_REDIS => Err(HerokuError::WrongAddon {
            name: name.to_owned(),
            addon: addon.name.clone(),
            reason: format!(
                "its plan {} is not a {} plan",
                addon.plan.name,
                plans::HEROKU_REDIS
            ),
        }),
        _ => Ok(()),
    }
}

/// The config var that holds an add-on's URL: the attachment's `_URL` var when the add-on
/// lists it, else the first it lists.
pub fn url_var(addon: &AddOn, attachment: Option<&str>) -> Option<String> {
    crate::plan::facts::url_var(&addon.config_vars, attachment)
}

/// Verify options for reading a server without crowding its connection limit.
pub fn verify_options(base: &VerifyOptions, plan: &str, role: &str) -> VerifyOptions {
    let limit = plans::find(plan).map_or(20, |p| p.max_clients) as usize;
    VerifyOptions {
        max_connections: base.max_connections.min(limit / 4).max(1),
        client_role: role.to_owned(),
        ..base.clone()
    }
}

async fn addon_facts(
    client: &Client,
    app: &str,
    requested_as: &str,
    addon: AddOn,
    attachment: Option<String>,
    config: &crate::heroku::models::ConfigVars,
) -> AddonFacts {
    let plan = plans::bare_name(&addon.plan.name).to_owned();
    let var = url_var(&addon, attachment.as_deref());
    let waiting = client
        .redis_wait(&addon.name)
        .await
        .ok()
        .map(|w| (w.waiting, w.message));
    let maintenance = client
        .data_maintenance(&addon.id)
        .await
        .ok()
        .map(|m| m.status);
    let redis_config = client
        .redis_config(&addon.name)
        .await
        .ok()
        .map(|c| c.values());
    let attachments = client.addon_attachments(&addon.id).await.ok().map(|list| {
        list.into_iter()
            .map(|a| crate::plan::facts::AttachmentRef {
                app: a.app.name,
                name: a.name,
            })
            .collect()
    });
    let (redis, redis_error) = match var.as_deref().and_then(|v| config.get(v)) {
        None => (
            None,
            Some(RedisUnreadable::new(
                UnreadableReason::NoUrl,
                format!(
                    "no config var {} on the app",
                    var.as_deref().unwrap_or("<none listed>")
                ),
            )),
        ),
        Some(raw) => match raw.parse::<RedisUrl>() {
            // The parse error never repeats the URL (it may hold a password); the var's name
            // tells the operator which one to fix.
            Err(e) => (
                None,
                Some(RedisUnreadable::new(
                    UnreadableReason::BadUrl,
                    format!(
                        "config var {} does not hold a Redis URL ({e})",
                        var.as_deref().unwrap_or("<none listed>")
                    ),
                )),
            ),
            Ok(url) => {
                // The server must be this add-on's before anything is written: a run would
                // otherwise stop the writers and only then refuse it (hostile pass 5, #9). An
                // add-on list that cannot be read proves nothing here; the run's steps check again.
                let var = var.as_deref().unwrap_or_default();
                let foreign = crate::runner::identity::foreign_owner(
                    client,
                    app,
                    &config.0,
                    var,
                    &addon.name,
                    &addon.config_vars,
                    &url,
                )
                .await
                .ok()
                .flatten();
                let label = attachment.as_deref().unwrap_or(&addon.name);
                let opts = verify_options(&VerifyOptions::default(), &plan, "capture");
                match foreign {
                    Some(f) => (
                        None,
                        Some(RedisUnreadable::new(
                            UnreadableReason::ForeignServer,
                            f.describe(var, label, &url, app),
                        )),
                    ),
                    None => match verify::server_info(&url, &opts).await {
                        Ok(info) => (
                            Some(RedisFacts {
                                used_memory: info.used_memory,
                                // Our own INFO connection is one of them.
                                connected_clients: u32::try_from(
                                    info.connected_clients.saturating_sub(1),
                                )
                                .unwrap_or(u32::MAX),
                                version: info.redis_version.clone(),
                                keys: info.keyspace.values().map(|k| k.keys).sum(),
                            }),
                            None,
                        ),
                        Err(e) => {
                            let reason = match e.refusal() {
                                Some(verify::Refusal::ConnectionLimit) => {
                                    UnreadableReason::ConnectionLimit
                                }
                                Some(verify::Refusal::HungUp) => UnreadableReason::HungUp,
                                None => UnreadableReason::Other,
                            };
                            let detail = crate::runner::error_chain(&e);
                            (None, Some(RedisUnreadable::new(reason, detail)))
                        }
                    },
                }
            }
        },
    };
    AddonFacts {
        requested_as: requested_as.to_owned(),
        id: addon.id,
        name: addon.name,
        attachment,
        service: addon.addon_service.name,
        plan,
        state: addon.state,
        config_vars: addon.config_vars,
        waiting,
        maintenance,
        redis,
        redis_config,
        redis_error,
        attachments,
    }
}

/// Whether a dyno whose state last changed at `updated_at` has been up for [`STEADY_AGE`]. A
/// missing or unreadable time counts as not steady: a wrong measurement is worse than the
/// playbook's figure.
fn up_for_a_while(updated_at: Option<&str>, now: jiff::Timestamp) -> bool {
    updated_at
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .and_then(|t| now.duration_since(t).try_into().ok())
        .is_some_and(|age: std::time::Duration| age >= crate::plan::facts::STEADY_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heroku::models::{AttachmentAddOn, NameRef};

    fn att(name: &str, addon: &str) -> AddOnAttachment {
        let app = NameRef {
            id: "app-id".into(),
            name: "app".into(),
        };
        AddOnAttachment {
            id: format!("{name}-id"),
            name: name.into(),
            addon: AttachmentAddOn {
                id: format!("{addon}-id"),
                name: addon.into(),
                app: app.clone(),
            },
            app,
            namespace: None,
            created_at: None,
            updated_at: None,
        }
    }

    #[test]
    fn attachments_of_one_add_on_resolve_and_of_two_are_refused() {
        let one = [att("REDIS", "redis-a"), att("MAIN", "redis-a")];
        assert_eq!(one_addon("main", &one).unwrap().name, "REDIS");
        let two = [att("MAIN", "redis-b"), att("MAIN", "redis-a")];
        let e = one_addon("main", &two).unwrap_err().to_string();
        assert!(
            e.contains("main is ambiguous")
                && e.contains("redis-b (attached as MAIN), redis-a (attached as MAIN)"),
            "{e}"
        );
        assert!(one_addon("main", &[]).is_err());
    }

    #[test]
    fn another_services_plans_are_not_priced_as_heroku_redis_plans() {
        let plan = |name: &str, cents: u64| -> ServicePlan {
            serde_json::from_value(serde_json::json!({
                "id": name, "name": name, "price": {"cents": cents, "unit": "month"}
            }))
            .unwrap()
        };
        let prices = plan_prices(vec![
            plan("heroku-redis:premium-4", 100),
            plan("heroku-postgresql:premium-5", 1),
            plan("premium-6", 300),
        ]);
        assert_eq!(
            prices.into_iter().collect::<Vec<_>>(),
            [("premium-4".to_owned(), 100), ("premium-6".to_owned(), 300)]
        );
    }

    #[test]
    fn a_plan_of_another_service_is_refused() {
        let addon = |plan: &str| AddOn {
            id: "i".into(),
            name: "redis-a".into(),
            addon_service: NameRef {
                id: "s".into(),
                name: plans::HEROKU_REDIS.into(),
            },
            app: NameRef {
                id: "app-id".into(),
                name: "app".into(),
            },
            plan: NameRef {
                id: "p".into(),
                name: plan.into(),
            },
            state: crate::heroku::models::AddOnState::Provisioned,
            config_vars: vec![],
            provider_id: None,
            web_url: None,
            billed_price: None,
            created_at: None,
            updated_at: None,
        };
        assert!(check_service("main", &addon("heroku-redis:premium-4")).is_ok());
        assert!(check_service("main", &addon("premium-4")).is_ok());
        let e = check_service("main", &addon("heroku-postgresql:premium-4"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("its plan heroku-postgresql:premium-4 is not a heroku-redis plan"),
            "{e}"
        );
    }
}
