//! The simulated platform's state: apps, formations, dynos, add-ons, config vars, the rate
//! limit and the request log, behind one mutex that is never held across an `await`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::behaviour::Behaviour;
use crate::faults::Faults;
use crate::logs::{LogBus, LogFilter};
use crate::redis_proc::RedisServer;
use crate::scenario::RedisSettingsSpec;
use crate::timeline::{EventKind, Timeline, lock};
use heroku_model::models::{AddOnState, ConfigVars, MaintenanceStatus};
use heroku_model::plans::Plan;

/// Settings fixed for the simulator's lifetime.
#[derive(Clone)]
pub(crate) struct RuntimeConfig {
    pub api_key: String,
    pub provision: Duration,
    pub dyno_start: Duration,
    pub writes_per_second: f64,
    pub log_tail: Duration,
    pub rate_capacity: u32,
    pub rate_refill_per_minute: u32,
}

impl std::fmt::Debug for RuntimeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeConfig")
            .field("api_key", &"<redacted>")
            .field("provision", &self.provision)
            .field("dyno_start", &self.dyno_start)
            .field("writes_per_second", &self.writes_per_second)
            .finish_non_exhaustive()
    }
}

/// One API call the simulator answered (admin calls under `/__sim/` excluded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    /// The status sent; 0 when the connection was dropped without an answer.
    pub status: u16,
    /// Milliseconds since the simulator started.
    pub at_ms: f64,
    pub request_id: String,
}

/// Everything the server, dynos and provisioning tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: RuntimeConfig,
    pub world: Mutex<World>,
    pub timeline: Timeline,
    pub faults: Faults,
    pub requests: Mutex<Vec<RequestRecord>>,
    pub logs: LogBus,
    pub rate: Mutex<RateLimiter>,
    /// `http://127.0.0.1:PORT`, set once bound.
    pub base_url: Mutex<String>,
    /// The behaviour profile's knobs; switchable at runtime (`PUT /__sim/behaviour`).
    pub behaviour: Mutex<Behaviour>,
}

impl Shared {
    /// Records a timeline event.
    pub fn event(&self, kind: EventKind) {
        self.timeline.record(kind);
    }

    /// Emits a log line.
    pub fn log(&self, app: &str, source: &str, dyno: &str, message: &str) {
        self.logs.emit(app, source, dyno, message);
    }

    /// The behaviour profile's knobs now.
    pub fn behaviour(&self) -> Behaviour {
        lock(&self.behaviour).clone()
    }

    /// The world, locked.
    pub fn world(&self) -> std::sync::MutexGuard<'_, World> {
        lock(&self.world)
    }
}

/// The token pool: `capacity` calls, refilled continuously at `refill_per_minute`.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub fn new(capacity: u32, refill_per_minute: u32) -> Self {
        Self {
            capacity: f64::from(capacity),
            per_second: f64::from(refill_per_minute) / 60.0,
            tokens: f64::from(capacity),
            last: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.per_second)
            .min(self.capacity);
        self.last = now;
    }

    /// Takes one token; false when the pool is empty.
    pub fn take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whole tokens left.
    pub fn remaining(&mut self) -> u32 {
        self.refill();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let whole = self.tokens.floor().max(0.0) as u32;
        whole
    }

    /// Sets the pool (admin and tests).
    pub fn set(&mut self, remaining: u32) {
        self.tokens = f64::from(remaining).min(self.capacity);
        self.last = Instant::now();
    }
}

/// The platform's resources.
#[derive(Debug, Default)]
pub(crate) struct World {
    pub apps: Vec<AppState>,
    pub addons: Vec<AddonState>,
    pub log_sessions: HashMap<String, LogSessionState>,
    /// Dynos that ignored a scale-down (fault): unlisted, still running.
    pub rogues: Vec<DynoRec>,
    /// Provisioning tasks, aborted at shutdown.
    pub tasks: Vec<JoinHandle<()>>,
    pub shutting_down: bool,
}

/// One app.
#[derive(Debug)]
pub(crate) struct AppState {
    pub id: String,
    pub name: String,
    pub maintenance: bool,
    pub created_at: String,
    pub updated_at: String,
    pub formation: Vec<FormationState>,
    /// Values are secrets: `ConfigVars`' `Debug` prints names only.
    pub config_vars: ConfigVars,
    pub dynos: Vec<DynoRec>,
    /// Dynos scaled down but still in their SIGTERM grace: running, listed, not counted
    /// against the formation.
    pub stopping: Vec<DynoRec>,
    /// What the app's code does with each Redis it reads from a config var: connections per
    /// dyno of each process type, keyed by attachment name (`ENKETO_REDIS_MAIN`). It belongs
    /// to the app, not to the add-on: when an attachment moves to another add-on, the same
    /// code opens the same connections to the new one.
    pub connections: BTreeMap<String, BTreeMap<String, u32>>,
    /// Releases, oldest first: every config var change makes one (Dev Center, config-vars).
    pub releases: Vec<ReleaseState>,
    /// The `preboot` feature: a release starts the new dynos before it stops the old ones.
    pub preboot: bool,
}

impl AppState {
    /// Records a release (a config var changed, an add-on was attached or detached).
    pub fn release(&mut self, description: String) {
        let version = self.releases.last().map_or(1, |r| r.version + 1);
        self.releases.push(ReleaseState {
            id: new_id(),
            version,
            description,
            created_at: now_iso(),
        });
    }
}

/// A config var [`World::publish_url`] set.
#[derive(Debug, Clone)]
pub(crate) struct UrlChange {
    pub app_id: String,
    pub app_name: String,
    pub var: String,
}

/// One release of an app.
#[derive(Debug, Clone)]
pub(crate) struct ReleaseState {
    pub id: String,
    pub version: u32,
    pub description: String,
    pub created_at: String,
}

/// One attachment of an add-on to an app: the app reads the add-on's URL from `{name}_URL`.
#[derive(Debug, Clone)]
pub(crate) struct AttachmentState {
    pub id: String,
    /// Upper-cased, e.g. `ENKETO_REDIS_MAIN`; unique within its app.
    pub name: String,
    pub app_id: String,
    pub created_at: String,
    pub updated_at: String,
}

impl AttachmentState {
    pub fn new(name: &str, app_id: &str) -> Self {
        let now = now_iso();
        Self {
            id: new_id(),
            name: name.to_uppercase(),
            app_id: app_id.to_owned(),
            created_at: now.clone(),
            updated_at: now,
        }
    }

    /// The config var the app reads, e.g. `ENKETO_REDIS_MAIN_URL`.
    pub fn config_var(&self) -> String {
        format!("{}_URL", self.name)
    }
}

/// One process type.
#[derive(Debug, Clone)]
pub(crate) struct FormationState {
    pub id: String,
    pub process_type: String,
    pub quantity: u32,
    pub size: String,
    pub command: String,
    pub created_at: String,
    pub updated_at: String,
}

/// One dyno and the task that runs it.
#[derive(Debug)]
pub(crate) struct DynoRec {
    pub id: String,
    pub name: String,
    pub process_type: String,
    pub size: String,
    pub command: String,
    pub up: bool,
    pub created_at: String,
    pub updated_at: String,
    /// A dyno of the scenario's starting formation: it has been up for an hour already (an
    /// app that was running before the simulator started), so its timestamps are kept.
    pub long_running: bool,
    /// The release the dyno runs (`heroku ps:wait` waits until every dyno runs the latest).
    pub release: u32,
    pub task: Option<JoinHandle<()>>,
}

/// The Data API's view of a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DataStatus {
    Available,
    /// A plan change is preparing the new server.
    Preparing,
    /// The last plan change failed; the old server is available.
    ChangeFailed(String),
}

/// One heroku-redis add-on.
#[derive(Debug)]
pub(crate) struct AddonState {
    pub id: String,
    pub name: String,
    /// The owning (billing) app.
    pub app_id: String,
    /// Attachments to this and other apps; empty once destroyed.
    pub attachments: Vec<AttachmentState>,
    /// Plan the Platform API reports (the target during a change).
    pub plan: Plan,
    pub state: AddOnState,
    /// The serving primary.
    pub server: Arc<RedisServer>,
    /// The server being prepared during a plan change.
    pub pending: Option<Arc<RedisServer>>,
    pub data: DataStatus,
    /// The last switch-over: when it happened and the plan before it (the `lagging`
    /// profile's Data API keeps describing that plan for a while).
    pub switched: Option<(Instant, Plan)>,
    pub maintenance: MaintenanceStatus,
    /// The data maintenance window, e.g. `Mondays 22:00 to Tuesdays 02:00 UTC`.
    pub window: String,
    pub settings: RedisSettingsSpec,
    pub created_at: String,
    pub updated_at: String,
}

impl AddonState {
    /// The config vars holding the URL in the owning app, e.g. `ENKETO_REDIS_MAIN_URL`.
    pub fn config_vars(&self) -> Vec<String> {
        self.attachments
            .iter()
            .filter(|x| x.app_id == self.app_id)
            .map(AttachmentState::config_var)
            .collect()
    }

    /// Whether an attachment on `app_id` (or any app) has this name.
    pub fn attached_as(&self, name: &str, app_id: Option<&str>) -> bool {
        self.attachments
            .iter()
            .any(|x| app_id.is_none_or(|id| x.app_id == id) && x.name.eq_ignore_ascii_case(name))
    }

    /// Whether the add-on is attached to `app_id` or owned by it.
    pub fn belongs_to(&self, app_id: &str) -> bool {
        self.app_id == app_id || self.attachments.iter().any(|x| x.app_id == app_id)
    }

    /// Its names joined with `|`, for faults that may name the add-on or an attachment.
    pub fn fault_names(&self) -> String {
        std::iter::once(self.name.as_str())
            .chain(self.attachments.iter().map(|x| x.name.as_str()))
            .collect::<Vec<_>>()
            .join("|")
    }
}

/// A log session created by `POST /apps/{app}/log-sessions`.
#[derive(Debug, Clone)]
pub(crate) struct LogSessionState {
    pub app: String,
    pub lines: usize,
    pub tail: bool,
    pub filter: LogFilter,
}

impl World {
    /// An app by name or id.
    pub fn app(&self, key: &str) -> Option<&AppState> {
        self.apps.iter().find(|a| a.name == key || a.id == key)
    }

    /// An app by name or id, mutable.
    pub fn app_mut(&mut self, key: &str) -> Option<&mut AppState> {
        self.apps.iter_mut().find(|a| a.name == key || a.id == key)
    }

    /// An add-on by id, name or (within `app_id`) attachment name.
    pub fn addon(&self, key: &str, app_id: Option<&str>) -> Option<&AddonState> {
        self.addons
            .iter()
            .find(|a| a.id == key || a.name == key)
            .or_else(|| {
                self.addons
                    .iter()
                    .find(|a| a.state != AddOnState::Deprovisioned && a.attached_as(key, app_id))
            })
    }

    /// Points every attachment of `addon` at `url`, as the add-on provider does when a server
    /// is (re)placed: each app's `{NAME}_URL` config var is set, with a release. Returns what
    /// changed (the caller restarts those apps and records the events outside the lock).
    pub fn publish_url(&mut self, addon: &str, url: &str) -> Vec<UrlChange> {
        let Some(a) = self.addon(addon, None) else {
            return Vec::new();
        };
        let vars: Vec<(String, String)> = a
            .attachments
            .iter()
            .map(|x| (x.app_id.clone(), x.config_var()))
            .collect();
        let mut changes = Vec::new();
        for (app_id, var) in vars {
            if let Some(app) = self.app_mut(&app_id) {
                app.config_vars.0.insert(var.clone(), url.to_owned());
                app.updated_at = now_iso();
                app.release(format!("Set {var} config vars by heroku-redis"));
                changes.push(UrlChange {
                    app_id,
                    app_name: app.name.clone(),
                    var,
                });
            }
        }
        changes
    }

    /// An add-on by id, name or attachment name, mutable.
    pub fn addon_mut(&mut self, key: &str) -> Option<&mut AddonState> {
        let idx = self
            .addons
            .iter()
            .position(|a| a.id == key || a.name == key)
            .or_else(|| {
                self.addons
                    .iter()
                    .position(|a| a.state != AddOnState::Deprovisioned && a.attached_as(key, None))
            })?;
        self.addons.get_mut(idx)
    }
}

/// Now as Heroku writes timestamps (`2026-11-25T23:00:00Z`).
/// An hour before now, for the scenario's starting dynos.
pub(crate) fn hour_ago_iso() -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(crate) fn now_iso() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A deterministic UUID for a catalog name (plans, the add-on service).
pub(crate) fn stable_id(name: &str) -> String {
    let h = xxhash_rust::xxh3::xxh3_128(name.as_bytes());
    uuid::Builder::from_random_bytes(h.to_be_bytes())
        .into_uuid()
        .to_string()
}

/// A fresh id.
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
