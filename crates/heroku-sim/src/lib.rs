//! The Heroku simulator: a real axum server backed by real `redis-server` processes.
//!
//! It speaks the Platform API subset upshift and the Heroku CLI use, and the Redis Data API, on
//! ONE loopback port (so `HEROKU_HOST=http://127.0.0.1:PORT HEROKU_DATA_HOST=127.0.0.1` works
//! for the CLI). Each heroku-redis add-on is a real `redis-server` child with its plan's
//! `maxmemory` and `maxclients`; each running dyno is a task that holds its connections and
//! keeps writing. Everything that happens lands on a [`timeline`] with monotonic timestamps.
//!
//! # In-process use (tests, the demo, benchmarks)
//! ```no_run
//! # async fn demo() -> Result<(), heroku_sim::SimError> {
//! use std::time::Duration;
//! use heroku_sim::{Scenario, SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig {
//!     scenario: Scenario::builtin("enketo")?,
//!     provision: Duration::from_secs(2),
//!     ..SimConfig::default()
//! })
//! .await?;
//! // Point a Heroku client at `sim.api_url()` with `sim.api_key()` as its bearer token
//! // (upshift: `upshift::sim::SimulatorExt::client_config`).
//! println!("{} {}", sim.api_url(), sim.data_url());
//! let downtime = sim.downtime("web");
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Behaviour a runner must know
//! - **Plan change.** `PATCH /apps/{app}/addons/{addon}` answers at once with the add-on on
//!   the *target* plan and state `provisioning` (as Heroku shows it). The Data API keeps
//!   describing the serving database (`plan` = the old bare plan, `Status: preparing`, `/wait`
//!   `{"message":"preparing","waiting?":true}`). A new server with the target's limits
//!   replicates from the old one (REPLICAOF + masterauth) until the initial sync is done (link
//!   up), is detached (REPLICAOF NO ONE; timeline `provisioning_synced`): from then on writes
//!   that land on the old server are lost, as in Heroku's account of a 2016 plan change. The
//!   remaining provisioning time passes (`provision`, default 3 s), the config var
//!   (`<ATTACHMENT>_URL`) moves to the new server (new port, new password), the add-on is
//!   `provisioned` and `/wait` says `available`, the app's dynos restart (Heroku restarts on
//!   config var changes) and the old server stops. Under the behaviour knob `keep_url` (the
//!   `in-place` profile) the URL stays instead: the new server takes the old one's password,
//!   the old server stops and the new one listens on its port; no release, no restart, the
//!   dynos' dropped connections reconnect through the same URL.
//! - **Failed change** (data over the target's memory, or fault `fail_provisioning`): the add-on
//!   goes back to its old plan, `provisioned`; `/wait` answers `waiting?: false` with a message
//!   starting `plan change to … failed:`; `info` gains a `Last plan change` row; the timeline
//!   has `provisioning_failed`; the old server keeps serving.
//! - **Downtime** from the platform's side: [`timeline::downtime`] (or
//!   [`Simulator::downtime`], or `GET /__sim/downtime/{type}`).
//! - **Restart** (fault `restart`, `POST /__sim/restart`): the API port closes for a while and
//!   comes back; all state persists. Killing the simulator process loses all state (and the
//!   kernel kills its redis-servers).
//! - **Connections.** Each server runs with `maxclients` = the plan's limit + 1: the extra slot
//!   is the platform's own control connection, named `heroku-platform` in `CLIENT LIST` (count
//!   it out when waiting for "no clients but ours"); a plan change hands it to the replication
//!   link. On HA plans (premium, private, shield) the standby's replication link (module
//!   `standby`) takes one of the plan's slots, as any connection does; apps get the rest of
//!   the plan's limit; beyond it Redis answers
//!   `ERR max number of clients reached`, which dynos log. The built-in `enketo` scenario wants
//!   2 x 26 connections to main on premium-0 (40): main starts saturated, as in Enketo's guide,
//!   so nothing else can connect to it until `web` is scaled down or main is upgraded.
//! - **Dynos** write every `1 / writes_per_second` s to each add-on they hold connections to,
//!   in turn `SET wr:<dyno>:<seq>`, `HSET dyno:<dyno> last_write <seq>`, `INCR counter:<type>`;
//!   each write is a timeline `write` event.
//! - **URLs** look like Heroku's: `rediss://:<password>@127.0.0.1:<port>` (TLS only, a
//!   certificate from the simulator's throwaway CA; connect without verifying it, e.g. the
//!   `redis` crate's `#insecure`, as Heroku tells clients to) under every profile but
//!   `optimistic`, which serves plain `redis://…` (behaviour knob `tls`; a scenario add-on's
//!   own `tls` wins). redis-cli 7.0 mis-reads the empty user name of such URLs: use
//!   `redis-cli [--tls --insecure] -p PORT -a PASSWORD`.
//!
//! # Admin API (no auth; loopback only)
//! `GET /__sim/timeline[?writes=false&since_ms=N]`, `GET /__sim/requests`,
//! `GET|POST|DELETE /__sim/faults` (POST a [`Fault`] or a list), `POST /__sim/maintenance/{addon}`
//! `{"status":"pending"}`, `POST /__sim/restart` `{"down_seconds":1}`, `GET /__sim/processes`
//! (redis-server pids and ports), `GET /__sim/downtime/{type}`, `POST /__sim/rate-limit`
//! `{"remaining":N}`, `GET /__sim/logs/{session}` (a log session's stream),
//! `GET|PUT /__sim/behaviour` `{"profile":"in-place"}` (the [`behaviour`] profile, switchable at
//! runtime).
//!
//! # Behaviour profiles
//! Where Heroku's behaviour is not documented, [`behaviour::Profile`] picks a variant
//! (scenario `[behaviour]`, `sim serve --profile`, or the admin API); the default,
//! `optimistic`, is what this page describes.

mod admin;
mod attach;
pub mod behaviour;
mod data;
mod dynos;
mod error;
pub mod faults;
mod features;
mod lifecycle;
mod logs;
mod maintenances;
mod platform;
mod provision;
mod redis_proc;
mod render;
pub mod scenario;
mod seed;
pub mod serve;
mod server;
mod standby;
mod state;
pub mod timeline;
mod tls;
mod world;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use url::Url;

pub use behaviour::{Behaviour, BehaviourSpec, Profile};
pub use error::SimError;
pub use faults::Fault;
pub use redis_proc::redis_server_path;
pub use scenario::Scenario;
pub use serve::{ServeArgs, serve_until};
pub use state::RequestRecord;
pub use timeline::{EventKind, TimelineEvent};

use redis_proc::RedisServer;
use state::{RateLimiter, RuntimeConfig, Shared};

/// The redis-server version, read from the first server started.
pub(crate) static REDIS_VERSION: OnceLock<String> = OnceLock::new();

/// How to start a simulator. `Debug` leaves the API key out.
#[derive(Clone)]
pub struct SimConfig {
    pub scenario: Scenario,
    /// 0 picks a free port.
    pub port: u16,
    /// How long a plan change takes (at least the time to replicate).
    pub provision: Duration,
    /// The API key; a random one when `None`.
    pub api_key: Option<String>,
    /// Overrides the scenario's `dynos.start_seconds`.
    pub dyno_start: Option<Duration>,
    /// Overrides the scenario's `dynos.writes_per_second`.
    pub writes_per_second: Option<f64>,
    /// How long a tailing log session stays open.
    pub log_tail: Duration,
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("scenario", &self.scenario)
            .field("port", &self.port)
            .field("provision", &self.provision)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("dyno_start", &self.dyno_start)
            .field("writes_per_second", &self.writes_per_second)
            .field("log_tail", &self.log_tail)
            .finish()
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            scenario: Scenario::default(),
            port: 0,
            provision: Duration::from_secs(3),
            api_key: None,
            dyno_start: None,
            writes_per_second: None,
            log_tail: Duration::from_secs(30),
        }
    }
}

/// A running simulator. Dropping it kills its dynos and redis-servers; prefer
/// [`Simulator::shutdown`], which also waits for the HTTP server to stop.
#[derive(Debug)]
pub struct Simulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Starts the redis-servers (seeded), the HTTP server and the dynos of `config.scenario`.
    ///
    /// # Errors
    /// redis-server missing ([`SimError::RedisServerMissing`]), the port taken, a server that
    /// does not start, seeding failing.
    pub async fn start(config: SimConfig) -> Result<Self, SimError> {
        let scenario = config.scenario;
        scenario
            .validate()
            .map_err(|message| SimError::InvalidScenario {
                origin: "config".into(),
                message,
            })?;
        if scenario.apps.iter().any(|a| !a.addons.is_empty()) {
            redis_server_path()?;
            redis_proc::sweep_stale_dirs();
        }
        let runtime = RuntimeConfig {
            api_key: config
                .api_key
                .unwrap_or_else(|| format!("sim-{}", uuid::Uuid::new_v4().simple())),
            provision: config.provision,
            dyno_start: config
                .dyno_start
                .unwrap_or_else(|| Duration::from_secs_f64(scenario.dynos.start_seconds)),
            writes_per_second: config
                .writes_per_second
                .unwrap_or(scenario.dynos.writes_per_second),
            log_tail: config.log_tail,
            rate_capacity: scenario.rate_limit.capacity,
            rate_refill_per_minute: scenario.rate_limit.refill_per_minute,
        };
        let listener = TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(|source| SimError::Bind {
                port: config.port,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            port: config.port,
            source,
        })?;
        let shared = Arc::new(Shared {
            rate: Mutex::new(RateLimiter::new(
                runtime.rate_capacity,
                runtime.rate_refill_per_minute,
            )),
            config: runtime,
            world: Mutex::new(state::World::default()),
            timeline: timeline::Timeline::new(Instant::now()),
            faults: faults::Faults::default(),
            requests: Mutex::new(Vec::new()),
            logs: logs::LogBus::default(),
            base_url: Mutex::new(format!("http://{addr}")),
            behaviour: Mutex::new(scenario.behaviour.resolve()),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut sim = Self {
            shared: Arc::clone(&shared),
            addr,
            shutdown,
            server: None,
        };
        // From here on, dropping `sim` on an error kills what was started.
        world::build_world(&shared, &scenario).await?;
        let monitor = tokio::spawn(monitor(Arc::clone(&shared)));
        shared.world().tasks.push(monitor);
        for f in scenario.faults {
            admin::arm(&shared, f);
        }
        let (restart_tx, restart_rx) = mpsc::unbounded_channel();
        let router = router(
            Arc::clone(&shared),
            server::Control {
                restart: restart_tx,
            },
        );
        sim.server = Some(tokio::spawn(server::serve(
            Arc::clone(&shared),
            router,
            listener,
            shutdown_rx,
            restart_rx,
        )));
        let app_ids: Vec<String> = shared.world().apps.iter().map(|a| a.id.clone()).collect();
        for id in app_ids {
            let stopping = dynos::reconcile(&shared, &id);
            dynos::finish_stops(&shared, stopping).await;
            // The starting formation has been running for a while (its connections are
            // steady), as on an app that was up before anyone ran upshift.
            let ago = state::hour_ago_iso();
            if let Some(app) = shared.world().app_mut(&id) {
                for d in &mut app.dynos {
                    d.long_running = true;
                    d.created_at.clone_from(&ago);
                    d.updated_at.clone_from(&ago);
                }
            }
        }
        Ok(sim)
    }

    /// The Platform API base URL (`http://127.0.0.1:PORT`).
    pub fn api_url(&self) -> Url {
        self.base_url()
    }

    /// The Data API base URL (the same server).
    pub fn data_url(&self) -> Url {
        self.base_url()
    }

    fn base_url(&self) -> Url {
        // A socket address always makes a valid URL.
        Url::parse(&format!("http://{}", self.addr))
            .unwrap_or_else(|_| Url::parse("http://127.0.0.1/").expect("static URL parses"))
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API key clients must send as `Authorization: Bearer <key>`.
    pub fn api_key(&self) -> String {
        self.shared.config.api_key.clone()
    }

    /// Every timeline event so far.
    pub fn timeline(&self) -> Vec<TimelineEvent> {
        self.shared.timeline.events()
    }

    /// Milliseconds since the simulator started (the timeline's clock).
    pub fn now_ms(&self) -> f64 {
        self.shared.timeline.now_ms()
    }

    /// Every API call answered so far (admin calls excluded).
    pub fn request_log(&self) -> Vec<RequestRecord> {
        timeline::lock(&self.shared.requests).clone()
    }

    /// Arms a fault (see [`Fault`]).
    pub fn inject(&self, fault: Fault) {
        admin::arm(&self.shared, fault);
    }

    /// Switches the behaviour profile (as `PUT /__sim/behaviour`).
    pub fn set_behaviour(&self, spec: &BehaviourSpec) {
        *timeline::lock(&self.shared.behaviour) = spec.resolve();
        self.shared.event(EventKind::FaultInjected {
            fault: format!("behaviour profile {}", spec.profile),
        });
    }

    /// The behaviour profile's knobs now.
    pub fn behaviour(&self) -> Behaviour {
        self.shared.behaviour()
    }

    /// The `run_id` (INFO server) of the server now behind an add-on's config var, read
    /// through the platform's own connection (tests use it to tell old and new servers apart).
    ///
    /// # Errors
    /// [`SimError::UnknownAddon`], or the Redis error.
    pub async fn server_run_id(&self, addon: &str) -> Result<String, SimError> {
        let context = "reading INFO server";
        let (_, mut con) = self.control(addon, context).await?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut con)
            .await
            .map_err(redis_err(addon, context))?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("run_id:"))
            .unwrap_or_default()
            .trim()
            .to_owned())
    }

    /// Disarms every fault (as `DELETE /__sim/faults`): the platform recovers.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Time `process_type` spent with no dyno up while quiesced (see [`timeline::downtime`]).
    pub fn downtime(&self, process_type: &str) -> Option<Duration> {
        timeline::downtime(&self.timeline(), process_type, self.now_ms())
    }

    /// The current primary URL (with password) of an add-on by name, id or attachment name.
    ///
    /// # Panics
    /// When there is no such add-on (a test helper; see [`Simulator::try_redis_url`]).
    pub fn redis_url(&self, addon: &str) -> String {
        self.try_redis_url(addon)
            .unwrap_or_else(|| panic!("the simulator has no add-on `{addon}`"))
    }

    /// The current primary URL of an add-on, if it exists.
    pub fn try_redis_url(&self, addon: &str) -> Option<String> {
        self.shared
            .world()
            .addon(addon, None)
            .map(|a| a.server.url())
    }

    /// Undoes the `unreadable_after_switch` fault: the server accepts the config var's
    /// credentials again, as after an operator repaired the ACL.
    ///
    /// # Errors
    /// [`SimError::UnknownAddon`], or the Redis error as text.
    pub async fn restore_credentials(&self, addon: &str) -> Result<(), SimError> {
        let context = "restoring the credentials";
        let (server, mut con) = self.control(addon, context).await?;
        server
            .config_cmd()
            .arg("SET")
            .arg("requirepass")
            .arg(server.password())
            .query_async::<()>(&mut con)
            .await
            .map_err(redis_err(addon, context))
    }

    /// Undoes the `refuse_writes_after_switch` fault: the plan's memory limit and the add-on's
    /// eviction policy again, as an operator raising the plan or freeing memory would.
    ///
    /// # Errors
    /// Unknown add-on, or the server did not take the settings.
    pub async fn lift_write_refusal(&self, addon: &str) -> Result<(), SimError> {
        let context = "lifting the write refusal";
        let (server, mut con) = self.control(addon, context).await?;
        let policy = self
            .shared
            .world()
            .addon(addon, None)
            .map(|a| a.settings.maxmemory_policy.clone())
            .ok_or_else(|| SimError::UnknownAddon(addon.to_owned()))?;
        redis::pipe()
            .cmd(server.config_name())
            .arg("SET")
            .arg("maxmemory")
            .arg(server.plan().memory_bytes.to_string())
            .ignore()
            .cmd(server.config_name())
            .arg("SET")
            .arg("maxmemory-policy")
            .arg(policy)
            .ignore()
            .query_async::<()>(&mut con)
            .await
            .map_err(redis_err(addon, context))
    }

    /// The server now behind an add-on's config var and the platform's own (authenticated)
    /// connection to it, for the admin helpers above; errors name `context`.
    async fn control(
        &self,
        addon: &str,
        context: &'static str,
    ) -> Result<(Arc<RedisServer>, redis::aio::MultiplexedConnection), SimError> {
        let server = self
            .shared
            .world()
            .addon(addon, None)
            .map(|a| Arc::clone(&a.server))
            .ok_or_else(|| SimError::UnknownAddon(addon.to_owned()))?;
        let con = server.control().await.map_err(redis_err(addon, context))?;
        Ok((server, con))
    }

    /// The pids of every redis-server child now running (primaries and replicas).
    pub fn redis_pids(&self) -> Vec<u32> {
        let world = self.shared.world();
        world
            .addons
            .iter()
            .flat_map(|a| std::iter::once(&a.server).chain(a.pending.as_ref()))
            .filter(|s| s.is_running())
            .map(|s| s.pid())
            .collect()
    }

    /// Sets an add-on's data maintenance status (as `POST /__sim/maintenance/{addon}`).
    ///
    /// # Errors
    /// [`SimError::UnknownAddon`].
    pub fn set_data_maintenance(
        &self,
        addon: &str,
        status: heroku_model::models::MaintenanceStatus,
    ) -> Result<(), SimError> {
        let name = {
            let mut world = self.shared.world();
            let a = world
                .addon_mut(addon)
                .ok_or_else(|| SimError::UnknownAddon(addon.to_owned()))?;
            a.maintenance = status;
            a.name.clone()
        };
        self.shared.event(EventKind::DataMaintenanceChanged {
            addon: name,
            status: serde_json::to_value(status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        });
        Ok(())
    }

    /// Stops the HTTP server, the dynos and every redis-server.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let tasks = self.stop_everything();
        for t in tasks {
            let _ = t.await;
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    fn stop_everything(&self) -> Vec<JoinHandle<()>> {
        let mut tasks = dynos::abort_all(&self.shared);
        let servers: Vec<Arc<RedisServer>> = {
            let mut world = self.shared.world();
            world.shutting_down = true;
            for t in world.tasks.drain(..) {
                t.abort();
                tasks.push(t);
            }
            world
                .addons
                .iter()
                .flat_map(|a| std::iter::once(Arc::clone(&a.server)).chain(a.pending.clone()))
                .collect()
        };
        for s in servers {
            s.stop();
        }
        tasks
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.stop_everything();
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

fn router(shared: Arc<Shared>, control: server::Control) -> Router {
    Router::new()
        .route("/account", get(platform::account))
        .route("/account/rate-limits", get(platform::rate_limits))
        .route("/apps", get(platform::list_apps))
        // `heroku apps` lists the account's apps here.
        .route("/users/{user}/apps", get(platform::list_apps))
        .route(
            "/apps/{app}",
            get(platform::get_app).patch(platform::patch_app),
        )
        .route(
            "/apps/{app}/formation",
            get(platform::list_formation).patch(platform::batch_formation),
        )
        .route(
            "/apps/{app}/formation/{ptype}",
            get(platform::get_formation).patch(platform::patch_formation),
        )
        .route(
            "/apps/{app}/dynos",
            get(platform::list_dynos).delete(platform::restart_dynos),
        )
        .route(
            "/apps/{app}/addons",
            get(platform::list_app_addons).post(lifecycle::create_addon),
        )
        .route(
            "/apps/{app}/addons/{addon}",
            get(platform::get_app_addon)
                .patch(platform::patch_addon)
                .delete(lifecycle::destroy_addon),
        )
        .route("/apps/{app}/releases", get(lifecycle::list_releases))
        .route(
            "/apps/{app}/releases/{release}",
            get(lifecycle::get_release),
        )
        .route(
            "/apps/{app}/addon-attachments",
            get(attach::list_app_attachments),
        )
        .route(
            "/apps/{app}/addon-attachments/{attachment}",
            get(attach::get_app_attachment),
        )
        .route("/apps/{app}/config-vars", get(platform::config_vars))
        .route("/apps/{app}/features/{feature}", get(features::get_feature))
        .route(
            "/apps/{app}/log-sessions",
            post(platform::create_log_session),
        )
        .route("/addons", get(platform::list_all_addons))
        .route(
            "/addon-attachments",
            get(attach::list_all_attachments).post(attach::create_attachment),
        )
        .route(
            "/addon-attachments/{id}",
            get(attach::get_attachment).delete(attach::delete_attachment),
        )
        .route("/addons/{addon}", get(platform::get_addon))
        .route(
            "/addons/{addon}/addon-attachments",
            get(attach::list_addon_attachments),
        )
        .route("/addon-services/{service}/plans", get(platform::list_plans))
        .route(
            "/actions/addon-attachments/resolve",
            post(attach::resolve_attachment),
        )
        .route("/actions/addons/resolve", post(platform::resolve_addon))
        .merge(data::routes())
        .route("/__sim/timeline", get(admin::timeline))
        .route("/__sim/requests", get(admin::requests))
        .route(
            "/__sim/faults",
            get(admin::list_faults)
                .post(admin::add_faults)
                .delete(admin::clear_faults),
        )
        .route("/__sim/maintenance/{addon}", post(admin::set_maintenance))
        .route("/__sim/restart", post(admin::restart))
        .route("/__sim/processes", get(admin::processes))
        .route("/__sim/downtime/{ptype}", get(admin::downtime_of))
        .route(
            "/__sim/rate-limit",
            post(admin::set_rate_limit).patch(admin::set_rate_limit),
        )
        .route(
            "/__sim/behaviour",
            get(admin::get_behaviour)
                .put(admin::set_behaviour)
                .post(admin::set_behaviour),
        )
        .route("/__sim/logs/{id}", get(admin::log_stream))
        .fallback(|| async {
            server::not_found("resource", "The requested API endpoint was not found.")
        })
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            server::gate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            control.clone(),
            server::with_control,
        ))
        .layer(axum::Extension(control))
        .with_state(shared)
}

/// How often the platform's monitoring reads each server (Heroku's own connections issue
/// commands every few seconds).
const MONITOR_EVERY: Duration = Duration::from_millis(1500);

/// The platform's monitoring: every server's control connection issues PING and INFO now and
/// then, so a drain check that counts "clients active within a second" as writers would wait
/// on it (issue 11, 2). Off with the behaviour knob `platform_monitor = false`.
async fn monitor(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(MONITOR_EVERY).await;
        if !shared.behaviour().platform_monitor {
            continue;
        }
        let servers: Vec<Arc<RedisServer>> = shared
            .world()
            .addons
            .iter()
            .filter(|a| a.state != heroku_model::models::AddOnState::Deprovisioned)
            .flat_map(|a| std::iter::once(Arc::clone(&a.server)).chain(a.pending.clone()))
            .collect();
        for server in servers {
            server.monitor_tick().await;
        }
    }
}

/// Maps a Redis error of an admin helper to [`SimError::Redis`] naming the add-on and what
/// the helper was doing.
fn redis_err<'a>(
    addon: &'a str,
    context: &'static str,
) -> impl Fn(redis::RedisError) -> SimError + 'a {
    move |source| SimError::Redis {
        addon: addon.to_owned(),
        context: context.into(),
        source,
    }
}
