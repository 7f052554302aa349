//! Dynos: one tokio task per running dyno, holding its Redis connections and writing like the
//! app would. The formation decides how many run; config var changes restart them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use tokio::task::JoinHandle;

use crate::faults::Fault;
use crate::redis_proc::{connect_url, explain_refusal};
use crate::state::{AppState, DynoRec, Shared, new_id, now_iso};
use crate::timeline::EventKind;

/// How often a dyno retries the connections it could not open.
const RECONNECT_EVERY: Duration = Duration::from_secs(2);

/// A dyno being stopped: its record (already out of the app's list) and why.
#[derive(Debug)]
pub(crate) struct Stopping {
    app: String,
    rec: DynoRec,
    reason: &'static str,
}

/// What a dyno connects to: one add-on through its config var.
#[derive(Debug, Clone)]
struct Target {
    addon: String,
    var: String,
    url: Option<String>,
    connections: u32,
}

/// Brings the app's dynos in line with its formation: starts missing dynos (lowest free
/// numbers), takes extras (highest numbers) out of the list and returns them; the caller must
/// pass them to [`finish_stops`] outside the world lock. A pending `ignore_scale_down` fault
/// turns stopped dynos into rogues instead.
pub(crate) fn reconcile(shared: &Arc<Shared>, app_id: &str) -> Vec<Stopping> {
    let mut world = shared.world();
    if world.shutting_down {
        return Vec::new();
    }
    let targets_by_type = targets(&world, app_id);
    let Some(app) = world.app_mut(app_id) else {
        return Vec::new();
    };
    let mut stopping = Vec::new();
    let mut started = Vec::new();
    for f in app.formation.clone() {
        let mut mine: Vec<usize> = app
            .dynos
            .iter()
            .enumerate()
            .filter(|(_, d)| d.process_type == f.process_type)
            .map(|(i, _)| i)
            .collect();
        let running = u32::try_from(mine.len()).unwrap_or(u32::MAX);
        if running > f.quantity {
            // Highest numbers first.
            mine.sort_by_key(|&i| std::cmp::Reverse(dyno_number(&app.dynos[i].name)));
            let mut remove: Vec<usize> = mine[..(running - f.quantity) as usize].to_vec();
            remove.sort_unstable_by(|a, b| b.cmp(a));
            for i in remove {
                let rec = app.dynos.remove(i);
                stopping.push(Stopping {
                    app: app.name.clone(),
                    rec,
                    reason: "scaled",
                });
            }
        } else {
            let mut n = 1;
            for _ in running..f.quantity {
                while app
                    .dynos
                    .iter()
                    .any(|d| d.name == format!("{}.{n}", f.process_type))
                {
                    n += 1;
                }
                let name = format!("{}.{n}", f.process_type);
                let t = targets_by_type
                    .iter()
                    .map(|t| Target {
                        connections: t.1.get(&f.process_type).copied().unwrap_or(0),
                        ..t.0.clone()
                    })
                    .collect();
                let rec = spawn_dyno(shared, app, &name, &f.process_type, &f.size, &f.command, t);
                started.push((
                    app.name.clone(),
                    name,
                    f.process_type.clone(),
                    f.command.clone(),
                ));
                app.dynos.push(rec);
            }
        }
    }
    drop(world);
    for (app, dyno, process_type, command) in started {
        shared.log(
            &app,
            "heroku",
            &dyno,
            &format!("Starting process with command `{command}`"),
        );
        shared.event(EventKind::DynoStarting {
            app,
            dyno,
            process_type,
        });
    }
    // Rogues: the fault picks dynos that keep running although the platform stopped them.
    let mut out = Vec::new();
    for s in stopping {
        let rogue = shared.faults.take(&s.rec.process_type, |f| match f {
            Fault::IgnoreScaleDown { process_type, .. } => Some((Some(process_type.as_str()), ())),
            _ => None,
        });
        if rogue.is_some() {
            shared.event(EventKind::FaultFired {
                fault: "ignore_scale_down".into(),
                detail: format!("{} keeps running after the scale-down", s.rec.name),
            });
            shared.event(EventKind::DynoStopped {
                app: s.app.clone(),
                dyno: s.rec.name.clone(),
                process_type: s.rec.process_type.clone(),
                reason: s.reason.into(),
                rogue: true,
            });
            shared.world().rogues.push(s.rec);
        } else {
            out.push(s);
        }
    }
    out
}

/// Re-arms an `ignore_scale_down` fault for several dynos: [`Faults::take`] spends one arm per
/// dyno, so a fault with `dynos = n` is armed as n single faults.
pub(crate) fn expand_fault(fault: Fault) -> Vec<Fault> {
    match fault {
        Fault::IgnoreScaleDown {
            process_type,
            dynos,
        } => (0..dynos.max(1))
            .map(|_| Fault::IgnoreScaleDown {
                process_type: process_type.clone(),
                dynos: 1,
            })
            .collect(),
        other => vec![other],
    }
}

/// Every dyno of the app stops and starts again (a config var changed, as on Heroku).
pub(crate) async fn restart_app(shared: &Arc<Shared>, app_id: &str) {
    let stopping: Vec<Stopping> = {
        let mut world = shared.world();
        if world.shutting_down {
            return;
        }
        let Some(app) = world.app_mut(app_id) else {
            return;
        };
        let name = app.name.clone();
        app.dynos
            .drain(..)
            .map(|rec| Stopping {
                app: name.clone(),
                rec,
                reason: "restart",
            })
            .collect()
    };
    finish_stops(shared, stopping).await;
    let more = reconcile(shared, app_id);
    finish_stops(shared, more).await;
}

/// Stops the dynos taken out by [`reconcile`]: aborts each task, waits until it is gone (so no
/// write lands after its stop event), records the stop.
pub(crate) async fn finish_stops(shared: &Arc<Shared>, stopping: Vec<Stopping>) {
    let grace = shared.behaviour().stop_grace;
    if !grace.is_zero() {
        // SIGTERM now; the process keeps running (and writing) until it exits or the grace
        // ends. The platform still lists it meanwhile.
        for s in stopping {
            shared.log(
                &s.app,
                "heroku",
                &s.rec.name,
                "Stopping all processes with SIGTERM",
            );
            let id = s.rec.id.clone();
            {
                let mut world = shared.world();
                if let Some(app) = world.apps.iter_mut().find(|a| a.name == s.app) {
                    app.stopping.push(s.rec);
                }
            }
            let shared = Arc::clone(shared);
            let (app, reason) = (s.app, s.reason);
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                let rec = {
                    let mut world = shared.world();
                    world.apps.iter_mut().find(|a| a.name == app).and_then(|a| {
                        let i = a.stopping.iter().position(|d| d.id == id)?;
                        Some(a.stopping.remove(i))
                    })
                };
                if let Some(rec) = rec {
                    finish_one(&shared, Stopping { app, rec, reason }, false).await;
                }
            });
        }
        return;
    }
    for s in stopping {
        finish_one(shared, s, true).await;
    }
}

/// Ends one dyno: its task, the platform's log lines, the timeline event.
async fn finish_one(shared: &Arc<Shared>, mut s: Stopping, log_sigterm: bool) {
    {
        if let Some(task) = s.rec.task.take() {
            task.abort();
            let _ = task.await;
        }
        if log_sigterm {
            shared.log(
                &s.app,
                "heroku",
                &s.rec.name,
                "Stopping all processes with SIGTERM",
            );
        }
        shared.log(
            &s.app,
            "heroku",
            &s.rec.name,
            "Process exited with status 143",
        );
        shared.event(EventKind::DynoStopped {
            app: s.app,
            dyno: s.rec.name,
            process_type: s.rec.process_type,
            reason: s.reason.into(),
            rogue: false,
        });
    }
}

fn dyno_number(name: &str) -> u32 {
    name.rsplit('.')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Per add-on of the app: the target (with its current URL) and connections per type.
fn targets(
    world: &crate::state::World,
    app_key: &str,
) -> Vec<(Target, std::collections::BTreeMap<String, u32>)> {
    let Some(app) = world.app(app_key) else {
        return Vec::new();
    };
    let vars = &app.config_vars.0;
    world
        .addons
        .iter()
        .flat_map(|a| a.attachments.iter().map(move |x| (a, x)))
        .filter(|(_, x)| x.app_id == app.id)
        .map(|(a, x)| {
            let var = x.config_var();
            (
                Target {
                    addon: a.name.clone(),
                    url: vars.get(&var).cloned(),
                    var,
                    connections: 0,
                },
                // An attachment the app's code does not read (a new add-on's temporary
                // name) gets no connections.
                app.connections.get(&x.name).cloned().unwrap_or_default(),
            )
        })
        .collect()
}

fn spawn_dyno(
    shared: &Arc<Shared>,
    app: &AppState,
    name: &str,
    process_type: &str,
    size: &str,
    command: &str,
    targets: Vec<Target>,
) -> DynoRec {
    let id = new_id();
    let now = now_iso();
    let task = tokio::spawn(run_dyno(
        Arc::clone(shared),
        app.id.clone(),
        app.name.clone(),
        id.clone(),
        name.to_owned(),
        process_type.to_owned(),
        targets,
    ));
    DynoRec {
        id,
        name: name.to_owned(),
        process_type: process_type.to_owned(),
        size: size.to_owned(),
        command: command.to_owned(),
        up: false,
        created_at: now.clone(),
        updated_at: now,
        long_running: false,
        release: app.releases.last().map_or(1, |r| r.version),
        task: Some(task),
    }
}

/// One connected add-on inside a dyno.
struct Pool {
    target: Target,
    cons: Vec<MultiplexedConnection>,
    next: usize,
}

/// The dyno's life: `starting` for a moment, then `up`; opens its connections; writes.
async fn run_dyno(
    shared: Arc<Shared>,
    app_id: String,
    app: String,
    dyno_id: String,
    dyno: String,
    process_type: String,
    targets: Vec<Target>,
) {
    tokio::time::sleep(shared.config.dyno_start).await;
    {
        let mut world = shared.world();
        let Some(rec) = world
            .app_mut(&app_id)
            .and_then(|a| a.dynos.iter_mut().find(|d| d.id == dyno_id))
        else {
            return;
        };
        rec.up = true;
        if !rec.long_running {
            rec.updated_at = now_iso();
        }
    }
    shared.log(&app, "heroku", &dyno, "State changed from starting to up");
    shared.event(EventKind::DynoUp {
        app: app.clone(),
        dyno: dyno.clone(),
        process_type: process_type.clone(),
    });
    let mut pools: Vec<Pool> = targets
        .into_iter()
        .filter(|t| t.connections > 0)
        .map(|target| Pool {
            target,
            cons: Vec::new(),
            next: 0,
        })
        .collect();
    let ctx = Ctx {
        shared: &shared,
        app: &app,
        dyno: &dyno,
    };
    for pool in &mut pools {
        ctx.fill(pool).await;
    }
    let wps = shared.config.writes_per_second;
    let period = if wps > 0.0 {
        Duration::from_secs_f64(1.0 / wps)
    } else {
        RECONNECT_EVERY
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq: u64 = 0;
    let mut last_fill = Instant::now();
    let mut last_error_log: Option<Instant> = None;
    loop {
        tick.tick().await;
        if last_fill.elapsed() >= RECONNECT_EVERY {
            last_fill = Instant::now();
            for pool in &mut pools {
                ctx.fill(pool).await;
            }
        }
        if wps <= 0.0 {
            continue;
        }
        seq += 1;
        for pool in &mut pools {
            if pool.cons.is_empty() {
                continue;
            }
            let i = pool.next % pool.cons.len();
            pool.next = pool.next.wrapping_add(1);
            let (key, cmd) = write_command(&dyno, &process_type, seq);
            let result = cmd.query_async::<redis::Value>(&mut pool.cons[i]).await;
            let (ok, error) = match result {
                Ok(_) => (true, None),
                Err(e) => {
                    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
                        pool.cons.swap_remove(i);
                    }
                    (false, Some(e.to_string()))
                }
            };
            if let Some(error) = &error
                && last_error_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
            {
                last_error_log = Some(Instant::now());
                shared.log(&app, "app", &dyno, &format!("Error: {error}"));
            }
            shared.event(EventKind::Write {
                app: app.clone(),
                dyno: dyno.clone(),
                addon: pool.target.addon.clone(),
                key,
                ok,
                error,
            });
        }
    }
}

struct Ctx<'a> {
    shared: &'a Arc<Shared>,
    app: &'a str,
    dyno: &'a str,
}

impl Ctx<'_> {
    /// Opens the pool's missing connections; logs the first failure of a round.
    async fn fill(&self, pool: &mut Pool) {
        let Some(url) = pool.target.url.clone() else {
            return;
        };
        let want = pool.target.connections as usize;
        let mut failures = 0;
        let mut first_error = None;
        // Spread the opening over the ramp, if the profile has one.
        let step = self
            .shared
            .behaviour()
            .client_ramp
            .checked_div(u32::try_from(want).unwrap_or(u32::MAX).max(1))
            .unwrap_or_default();
        while pool.cons.len() + failures < want {
            if !step.is_zero() && !pool.cons.is_empty() {
                tokio::time::sleep(step).await;
            }
            match connect_url(&url).await {
                Ok(mut con) => {
                    let _ = redis::cmd("CLIENT")
                        .arg("SETNAME")
                        .arg(self.dyno)
                        .query_async::<()>(&mut con)
                        .await;
                    pool.cons.push(con);
                }
                Err(e) => {
                    failures += 1;
                    if first_error.is_none() {
                        first_error = Some(explain_refusal(&url, &e).await);
                    }
                }
            }
        }
        if let Some(error) = first_error {
            self.shared.log(
                self.app,
                "app",
                self.dyno,
                &format!(
                    "Error: {error} ({failures} of {want} connections to {} refused)",
                    pool.target.var
                ),
            );
            self.shared.event(EventKind::ConnectionFailed {
                app: self.app.to_owned(),
                dyno: self.dyno.to_owned(),
                addon: pool.target.addon.clone(),
                error,
            });
        }
    }
}

/// The write of tick `seq`: a new key, a counter, a hash field, in turn (app-like keys).
fn write_command(dyno: &str, process_type: &str, seq: u64) -> (String, redis::Cmd) {
    match seq % 3 {
        0 => {
            let key = format!("counter:{process_type}");
            let mut c = redis::cmd("INCR");
            c.arg(&key);
            (key, c)
        }
        1 => {
            let key = format!("wr:{dyno}:{seq:08}");
            let mut c = redis::cmd("SET");
            c.arg(&key).arg(jiff::Timestamp::now().to_string());
            (key, c)
        }
        _ => {
            let key = format!("dyno:{dyno}");
            let mut c = redis::cmd("HSET");
            c.arg(&key).arg("last_write").arg(seq);
            (key, c)
        }
    }
}

/// Aborts every dyno task of every app and every rogue (shutdown).
pub(crate) fn abort_all(shared: &Shared) -> Vec<JoinHandle<()>> {
    let mut world = shared.world();
    let mut tasks = Vec::new();
    for app in &mut world.apps {
        for d in app.dynos.iter_mut().chain(app.stopping.iter_mut()) {
            if let Some(t) = d.task.take() {
                t.abort();
                tasks.push(t);
            }
        }
    }
    for d in &mut world.rogues {
        if let Some(t) = d.task.take() {
            t.abort();
            tasks.push(t);
        }
    }
    tasks
}
