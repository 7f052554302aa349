//! The HA standby: premium, private and shield plans keep a replica connected to the primary
//! (Dev Center, heroku-redis-maintenance), so the simulator gives every add-on on such a plan a
//! second, real redis-server with `replicaof` the primary and its `masterauth`.
//!
//! What that makes visible, as on Heroku: the primary's `CLIENT LIST` shows the link as
//! `flags=S cmd=replconf`, idle 0-1 s, all the time; and the link is a connection like any
//! other, so it takes one of the plan's `maxclients` slots (apps get one fewer). A drain that
//! judges "who is connected and recently active" would wait on it forever; upshift judges what
//! writes. The standby lives inside its primary's [`RedisServer`]: stopping or dropping the
//! primary stops it, so a plan change (the new primary gets its own standby, the old pair stops
//! after the switch) and the simulator's shutdown leak no process.

use std::time::{Duration, Instant};

use crate::SimError;
use crate::redis_proc::{RedisServer, ServerSpec};
use crate::state::Shared;
use heroku_model::plans::Plan;

/// Longest wait for the standby's link to come up (an empty or seeded server syncs in
/// milliseconds; the margin is for a loaded machine).
const LINK_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a server on `plan` gets a standby under the current behaviour.
pub(crate) fn wanted(shared: &Shared, plan: Plan) -> bool {
    wanted_by(shared.behaviour().ha_standby, plan)
}

/// The pure rule: the knob is on and the plan is HA.
pub(crate) fn wanted_by(knob: bool, plan: Plan) -> bool {
    knob && plan.is_ha()
}

/// Starts a standby for `primary` (started from `spec`, the primary's own), points it at the
/// primary and waits until its link is up, then hands it to the primary.
///
/// # Errors
/// The standby not starting, refusing the replication commands, or its link not coming up.
pub(crate) async fn attach(primary: &RedisServer, spec: &ServerSpec) -> Result<(), SimError> {
    let standby = RedisServer::start(spec).await?;
    let addon = spec.addon.clone();
    let err = |context: &str| {
        let addon = addon.clone();
        let context = format!("standby: {context}");
        move |source| SimError::Redis {
            addon,
            context,
            source,
        }
    };
    let mut con = standby.control().await.map_err(err("connecting"))?;
    standby
        .config_cmd()
        .arg("SET")
        .arg("masterauth")
        .arg(primary.password())
        .query_async::<()>(&mut con)
        .await
        .map_err(err("setting masterauth"))?;
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(primary.port())
        .query_async::<()>(&mut con)
        .await
        .map_err(err("starting replication"))?;
    let started = Instant::now();
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut con)
            .await
            .map_err(err("reading replication state"))?;
        if info.lines().any(|l| l.trim() == "master_link_status:up") {
            break;
        }
        if started.elapsed() > LINK_TIMEOUT {
            return Err(SimError::RedisNotReady {
                addon: spec.addon.clone(),
                port: standby.port(),
                waited_ms: started.elapsed().as_millis(),
                detail: format!(
                    "the standby's link to the primary (port {}) is not up; is the primary at \
                     its connection limit?",
                    primary.port()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    primary.set_standby(standby);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::wanted_by;
    use heroku_model::plans::find;

    #[test]
    fn only_ha_plans_get_a_standby_and_the_knob_turns_it_off() {
        assert!(wanted_by(true, find("premium-0").unwrap()));
        assert!(wanted_by(true, find("shield-3").unwrap()));
        assert!(!wanted_by(true, find("mini").unwrap()));
        assert!(!wanted_by(false, find("premium-0").unwrap()));
    }
}
