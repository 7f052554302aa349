//! Plan changes, the way Heroku does them: a new server with the new plan's limits replicates
//! from the old one until the initial sync is done, is detached (writes landing on the old
//! server from then on are lost), the rest of the provisioning time passes, then the config var
//! moves to it (restarting the app's dynos) and the old server stops. A downgrade too small for
//! the data fails and keeps the old server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

use crate::dynos;
use crate::faults::Fault;
use crate::redis_proc::{RedisServer, ServerSpec};
use crate::state::{self, DataStatus, Shared, now_iso};
use crate::timeline::EventKind;
use heroku_model::models::AddOnState;
use heroku_model::plans::Plan;

/// Longest wait for the new server's initial sync.
const SYNC_TIMEOUT: Duration = Duration::from_secs(20);

/// What the fault hooks asked of this change.
#[derive(Debug, Default)]
struct ChangeFaults {
    extra: Duration,
    fail: Option<String>,
    /// Keys to lose, and the prefix they must have (any key without one).
    lose: (u32, Option<String>),
    change: u32,
    unreadable: bool,
    refuse_writes: bool,
    /// The add-on whose URL the config var gets instead of the new server's.
    url_of: Option<String>,
    /// A URL the config var gets when the change ends, whichever way.
    url: Option<String>,
}

/// Starts a plan change of `addon` (already marked `provisioning` on `target` by the caller)
/// in the background.
pub(crate) fn spawn_change(shared: &Arc<Shared>, addon: String, from: Plan, target: Plan) {
    let task = tokio::spawn(change(Arc::clone(shared), addon, from, target));
    shared.world().tasks.push(task);
}

async fn change(shared: Arc<Shared>, addon: String, from: Plan, target: Plan) {
    let started = Instant::now();
    shared.event(EventKind::ProvisioningStarted {
        addon: addon.clone(),
        from_plan: from.full_name(),
        to_plan: target.full_name(),
    });
    let app = app_name(&shared, &addon);
    shared.log(
        &app,
        "app",
        "heroku-redis",
        &format!("source=REDIS addon={addon} plan change {from} -> {target} started"),
    );
    let faults = take_faults(&shared, &addon);
    match migrate(&shared, &addon, target, &faults, started).await {
        Ok(()) => {}
        Err(reason) => {
            fail(&shared, &addon, from, target, &reason);
            if let Some(url) = &faults.url {
                let changes = shared.world().publish_url(&addon, url);
                for c in changes {
                    shared.event(EventKind::ConfigVarChanged {
                        app: c.app_name,
                        name: c.var,
                    });
                }
            }
        }
    }
}

fn take_faults(shared: &Shared, addon: &str) -> ChangeFaults {
    let f = &shared.faults;
    // Faults may name the add-on or one of its attachments (`enketo_redis_main`).
    let names = shared
        .world()
        .addon(addon, None)
        .map_or_else(|| addon.to_owned(), state::AddonState::fault_names);
    let addon = names.as_str();
    let mut out = ChangeFaults::default();
    if let Some(extra) = f.take(addon, |x| match x {
        Fault::SlowProvisioning {
            addon,
            extra_seconds,
        } => Some((addon.as_deref(), *extra_seconds)),
        _ => None,
    }) {
        out.extra = Duration::from_secs_f64(extra.max(0.0));
    }
    out.fail = f.take(addon, |x| match x {
        Fault::FailProvisioning { addon, message } => Some((
            addon.as_deref(),
            message
                .clone()
                .unwrap_or_else(|| "the new server could not be provisioned".into()),
        )),
        _ => None,
    });
    out.lose = f
        .take(addon, |x| match x {
            Fault::LoseKeys {
                addon,
                count,
                prefix,
            } => Some((addon.as_deref(), (*count, prefix.clone()))),
            _ => None,
        })
        .unwrap_or((0, None));
    out.change = f
        .take(addon, |x| match x {
            Fault::ChangeKeys { addon, count } => Some((addon.as_deref(), *count)),
            _ => None,
        })
        .unwrap_or(0);
    out.unreadable = f
        .take(addon, |x| match x {
            Fault::UnreadableAfterSwitch { addon } => Some((addon.as_deref(), ())),
            _ => None,
        })
        .is_some();
    out.refuse_writes = f
        .take(addon, |x| match x {
            Fault::RefuseWritesAfterSwitch { addon } => Some((addon.as_deref(), ())),
            _ => None,
        })
        .is_some();
    out.url_of = f.take(addon, |x| match x {
        Fault::UrlOfAnotherAfterSwitch { addon, other } => Some((addon.as_deref(), other.clone())),
        _ => None,
    });
    out.url = f.take(addon, |x| match x {
        Fault::UrlAfterChange { addon, url } => Some((addon.as_deref(), url.clone())),
        _ => None,
    });
    out
}

fn app_name(shared: &Shared, addon: &str) -> String {
    let world = shared.world();
    world
        .addon(addon, None)
        .and_then(|a| world.app(&a.app_id))
        .map(|a| a.name.clone())
        .unwrap_or_default()
}

/// The migration proper. Any error string is the failure reason shown to users.
async fn migrate(
    shared: &Arc<Shared>,
    addon: &str,
    target: Plan,
    faults: &ChangeFaults,
    started: Instant,
) -> Result<(), String> {
    let (old, spec) = {
        let world = shared.world();
        let a = world.addon(addon, None).ok_or("the add-on is gone")?;
        let old = Arc::clone(&a.server);
        (
            Arc::clone(&old),
            ServerSpec {
                addon: a.name.clone(),
                plan: target,
                maxmemory_policy: a.settings.maxmemory_policy.clone(),
                timeout: a.settings.timeout,
                notify_keyspace_events: a.settings.notify_keyspace_events.clone(),
                tls: old.is_tls(),
                restricted: shared.behaviour().restricted_commands,
            },
        )
    };
    let new = Arc::new(RedisServer::start(&spec).await.map_err(|e| e.to_string())?);
    shared.event(EventKind::RedisStarted {
        addon: addon.to_owned(),
        plan: target.name.to_owned(),
        port: new.port(),
        pid: new.pid(),
    });
    if let Some(a) = shared.world().addon_mut(addon) {
        a.pending = Some(Arc::clone(&new));
    }
    let mut result = replicate_and_promote(shared, addon, &old, &new, faults, started).await;
    // The new primary gets its own standby before the switch; the old pair stops after it.
    if result.is_ok() && crate::standby::wanted(shared, target) {
        result = crate::standby::attach(&new, &spec)
            .await
            .map_err(|e| e.to_string());
    }
    if let Err(reason) = result {
        stop_server(shared, addon, &new);
        if let Some(a) = shared.world().addon_mut(addon) {
            a.pending = None;
        }
        return Err(reason);
    }
    // Under `keep_url` the new server takes the old one's place behind the same URL; the
    // old server (and its standby) is then already gone.
    let takeover = if shared.behaviour().keep_url {
        take_over(shared, addon, &old, &new).await
    } else {
        Takeover::NotTried
    };
    let kept = takeover == Takeover::Kept;
    // Switch over: the config var points at the new server (unless it kept its URL), the
    // add-on is provisioned.
    let (app_ids, app_name, var) = {
        let mut world = shared.world();
        let Some(a) = world.addon_mut(addon) else {
            return Err("the add-on is gone".into());
        };
        let before = a.server.plan();
        a.server = Arc::clone(&new);
        a.pending = None;
        a.switched = Some((Instant::now(), before));
        a.plan = target;
        a.state = AddOnState::Provisioned;
        a.data = DataStatus::Available;
        a.updated_at = now_iso();
        let owner = a.app_id.clone();
        // The same URL makes no config var change: no release, no restart (see `take_over`).
        let changes = if kept {
            Vec::new()
        } else {
            let url = faults.url.clone().unwrap_or_else(|| {
                faults
                    .url_of
                    .as_deref()
                    .and_then(|other| world.addon(other, None).map(|o| o.server.url()))
                    .unwrap_or_else(|| new.url())
            });
            world.publish_url(addon, &url)
        };
        let mut app_ids: Vec<String> = changes.iter().map(|c| c.app_id.clone()).collect();
        app_ids.sort();
        app_ids.dedup();
        let name = world
            .app(&owner)
            .map(|a| a.name.clone())
            .unwrap_or_default();
        let var = changes
            .into_iter()
            .find(|c| c.app_id == owner)
            .map(|c| c.var);
        (app_ids, name, var)
    };
    if let Some(var) = &var {
        shared.event(EventKind::ConfigVarChanged {
            app: app_name.clone(),
            name: var.clone(),
        });
    }
    shared.event(EventKind::ProvisioningSucceeded {
        addon: addon.to_owned(),
        plan: target.full_name(),
    });
    if let Some(var) = &var {
        shared.log(
            &app_name,
            "app",
            "api",
            &format!("Set {var} config vars by heroku-redis"),
        );
    }
    shared.log(
        &app_name,
        "app",
        "heroku-redis",
        &format!("source=REDIS addon={addon} plan change to {target} completed"),
    );
    if faults.unreadable {
        lock_out(shared, addon, &new).await;
    }
    if faults.refuse_writes {
        refuse_writes(shared, addon, &new).await;
    }
    // Heroku restarts every app whose config var changed; then the old server goes away.
    for app_id in &app_ids {
        dynos::restart_app(shared, app_id).await;
    }
    if takeover == Takeover::NotTried {
        stop_server(shared, addon, &old);
    }
    Ok(())
}

/// How a [`take_over`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takeover {
    /// The knob is off, or the new server refused the password: the old server still runs.
    NotTried,
    /// The new server is behind the old URL; the old server is gone.
    Kept,
    /// The old server is gone but its port was taken: the new server keeps its own.
    PortLost,
}

/// The `keep_url` knob: the new server takes the old one's place behind the same URL, as an
/// in-place promotion behind one host would. Its password becomes the old one's first (so no
/// client is ever refused by the new server for the URL's password); then the old server and
/// its standby stop, which frees the port and drops every connection to them; then the new
/// server listens on that port. Connections already open to the new server (the platform's,
/// its standby's link) survive. The app's clients see their connections drop and reconnect
/// through the unchanged URL, as on a failover: the simulated dynos do (every 2 s), and with
/// no config var change there is no release and no restart.
///
/// Between the stop and the rebind the port is free for a few milliseconds: another server
/// starting in the same process could pick it as "free" (rare; `RedisServer::start` picks at
/// random). Then the rebind fails, and the change falls back to publishing the new server's
/// own URL, as without the knob.
async fn take_over(shared: &Shared, addon: &str, old: &RedisServer, new: &RedisServer) -> Takeover {
    let app = app_name(shared, addon);
    let say = |text: String| {
        shared.log(
            &app,
            "app",
            "heroku-redis",
            &format!("source=REDIS addon={addon} {text}"),
        );
    };
    if let Err(e) = new.adopt_password(&old.password()).await {
        say(format!(
            "could not keep the URL (password: {e}); publishing the new server's own"
        ));
        return Takeover::NotTried;
    }
    let port = old.port();
    stop_server(shared, addon, old);
    match new.rebind(port).await {
        Ok(()) => {}
        // The primary moved; only the standby's re-pointing failed: the URL is kept.
        Err(e) if new.port() == port => say(format!("standby not re-pointed: {e}")),
        Err(e) => {
            say(format!(
                "could not keep the URL (port: {e}); publishing the new server's own"
            ));
            return Takeover::PortLost;
        }
    }
    say("the new server took over the URL (same host, port and password)".into());
    Takeover::Kept
}

/// The `refuse_writes_after_switch` fault: `noeviction` and a 1-byte memory limit, so every
/// write answers OOM while reads work. [`crate::Simulator::lift_write_refusal`] undoes it.
async fn refuse_writes(shared: &Shared, addon: &str, server: &RedisServer) {
    let detail = match server.control().await {
        Ok(mut con) => redis::pipe()
            .cmd(server.config_name())
            .arg("SET")
            .arg("maxmemory-policy")
            .arg("noeviction")
            .ignore()
            .cmd(server.config_name())
            .arg("SET")
            .arg("maxmemory")
            .arg("1")
            .ignore()
            .query_async::<()>(&mut con)
            .await
            .map_or_else(
                |e| format!("could not refuse writes: {e}"),
                |()| "writes refused".into(),
            ),
        Err(e) => format!("could not refuse writes: {e}"),
    };
    shared.event(EventKind::FaultFired {
        fault: "refuse_writes_after_switch".into(),
        detail: format!("{addon}: {detail}"),
    });
}

/// The `unreadable_after_switch` fault: the server's password changes under the config var,
/// so every new connection through the app's URL fails authentication. The platform's own
/// connection, already authenticated, keeps working (the Data API still answers).
async fn lock_out(shared: &Shared, addon: &str, server: &RedisServer) {
    let detail = match server.control().await {
        Ok(mut con) => server
            .config_cmd()
            .arg("SET")
            .arg("requirepass")
            .arg(format!("locked-out-{}", uuid::Uuid::new_v4().simple()))
            .query_async::<()>(&mut con)
            .await
            .map_or_else(
                |e| format!("could not lock out: {e}"),
                |()| "password changed".into(),
            ),
        Err(e) => format!("could not lock out: {e}"),
    };
    shared.event(EventKind::FaultFired {
        fault: "unreadable_after_switch".into(),
        detail: format!("{addon}: {detail}"),
    });
}

async fn replicate_and_promote(
    shared: &Shared,
    addon: &str,
    old: &RedisServer,
    new: &RedisServer,
    faults: &ChangeFaults,
    started: Instant,
) -> Result<(), String> {
    let redis_err = |context: &str, e: &redis::RedisError| format!("{context}: {e}");
    let mut con = new
        .control()
        .await
        .map_err(|e| redis_err("connecting to the new server", &e))?;
    // The old server's platform slot goes to the replication link.
    old.release_control().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    new.config_cmd()
        .arg("SET")
        .arg("masterauth")
        .arg(old.password())
        .query_async::<()>(&mut con)
        .await
        .map_err(|e| redis_err("configuring replication", &e))?;
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(old.port())
        .query_async::<()>(&mut con)
        .await
        .map_err(|e| redis_err("starting replication", &e))?;
    let keys = wait_synced(&mut con).await?;
    // The copy is judged complete and the new server detached (as in Heroku's account of a
    // 2016 plan change): from here on, writes that still land on the old server are lost.
    redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async::<()>(&mut con)
        .await
        .map_err(|e| redis_err("detaching the new server", &e))?;
    shared.event(EventKind::ProvisioningSynced {
        addon: addon.to_owned(),
        keys,
    });
    // The new server must hold the data within the plan's memory, as a primary would have to.
    let used = info_field(&mut con, "memory", "used_memory").await?;
    let limit = new.plan().memory_bytes;
    if used > limit {
        return Err(format!(
            "the data ({} MB) does not fit in {} ({} MB): OOM command not allowed when used \
             memory > 'maxmemory'",
            used / (1024 * 1024),
            new.plan().name,
            limit / (1024 * 1024)
        ));
    }
    if faults.lose.0 > 0 || faults.change > 0 {
        corrupt(shared, addon, &mut con, &faults.lose, faults.change).await?;
    }
    let total = shared.config.provision + faults.extra;
    if let Some(rest) = total.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    if let Some(message) = &faults.fail {
        shared.event(EventKind::FaultFired {
            fault: "fail_provisioning".into(),
            detail: message.clone(),
        });
        return Err(message.clone());
    }
    Ok(())
}

/// Waits until the replica's link is up and the initial sync is done; returns its key count.
async fn wait_synced(con: &mut MultiplexedConnection) -> Result<u64, String> {
    let started = Instant::now();
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(con)
            .await
            .map_err(|e| format!("reading replication state: {e}"))?;
        let up = field(&info, "master_link_status") == Some("up")
            && field(&info, "master_sync_in_progress") == Some("0");
        if up {
            let keys: u64 = redis::cmd("DBSIZE")
                .query_async(con)
                .await
                .map_err(|e| format!("counting keys: {e}"))?;
            return Ok(keys);
        }
        if started.elapsed() > SYNC_TIMEOUT {
            return Err(format!(
                "the new server did not finish syncing within {} s (link {}); is the old \
                 server at its connection limit?",
                SYNC_TIMEOUT.as_secs(),
                field(&info, "master_link_status").unwrap_or("unknown")
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn info_field(
    con: &mut MultiplexedConnection,
    section: &str,
    name: &str,
) -> Result<u64, String> {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(con)
        .await
        .map_err(|e| format!("reading INFO {section}: {e}"))?;
    field(&info, name)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("INFO {section} has no {name}"))
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// The `lose_keys` / `change_keys` faults: damage the promoted server before switch-over.
async fn corrupt(
    shared: &Shared,
    addon: &str,
    con: &mut MultiplexedConnection,
    (lose, prefix): &(u32, Option<String>),
    change: u32,
) -> Result<(), String> {
    let lose = *lose;
    let mut victims: Vec<String> = Vec::new();
    let mut strings: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(con)
            .await
            .map_err(|e| format!("scanning for the fault: {e}"))?;
        for k in keys {
            if k.starts_with("ca:") && strings.len() < change as usize {
                strings.push(k);
            } else if victims.len() < lose as usize
                && prefix.as_deref().is_none_or(|p| k.starts_with(p))
            {
                victims.push(k);
            }
        }
        cursor = next;
        if cursor == 0 || (victims.len() >= lose as usize && strings.len() >= change as usize) {
            break;
        }
    }
    for k in &victims {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(k).query_async(con).await;
    }
    for k in &strings {
        let _: redis::RedisResult<()> = redis::cmd("SET")
            .arg(k)
            .arg("changed-by-migration")
            .arg("KEEPTTL")
            .query_async(con)
            .await;
    }
    shared.event(EventKind::FaultFired {
        fault: "lose_keys/change_keys".into(),
        detail: format!(
            "add-on {addon}: {} keys deleted, {} values changed on the new server",
            victims.len(),
            strings.len()
        ),
    });
    Ok(())
}

pub(crate) fn stop_server(shared: &Shared, addon: &str, server: &RedisServer) {
    server.stop();
    shared.event(EventKind::RedisStopped {
        addon: addon.to_owned(),
        port: server.port(),
        pid: server.pid(),
    });
}

fn fail(shared: &Shared, addon: &str, from: Plan, target: Plan, reason: &str) {
    let app = {
        let mut world = shared.world();
        if let Some(a) = world.addon_mut(addon) {
            a.plan = from;
            a.state = AddOnState::Provisioned;
            a.data = DataStatus::ChangeFailed(format!(
                "plan change to {target} failed: {reason}; the database is available on {from}"
            ));
            a.updated_at = now_iso();
        }
        world
            .addon(addon, None)
            .and_then(|a| world.app(&a.app_id))
            .map(|a| a.name.clone())
            .unwrap_or_default()
    };
    shared.event(EventKind::ProvisioningFailed {
        addon: addon.to_owned(),
        plan: from.full_name(),
        reason: reason.to_owned(),
    });
    shared.log(
        &app,
        "app",
        "heroku-redis",
        &format!("source=REDIS addon={addon} plan change to {target} failed: {reason}"),
    );
}
