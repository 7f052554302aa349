//! What a run knows about the platform: captured before anything is written, secret-free (it is
//! journaled and saved in plan files), and the only input of the guards.

use serde::{Deserialize, Serialize};

use crate::heroku::models::{MaintenanceStatus, RedisConfigValues};

/// How much a data difference after the change matters for one add-on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum DataPolicy {
    /// Every key must survive: a difference is repaired from the snapshot, and if it cannot
    /// be, the writers stay stopped.
    #[default]
    Critical,
    /// Loss is tolerated (a cache): differences are reported, the run goes on.
    Cache,
}

impl DataPolicy {
    /// The policy's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Cache => "cache",
        }
    }
}

/// One requested change, as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRequest {
    /// Add-on name or attachment name (`enketo_redis_main`).
    pub addon: String,
    /// Bare target plan (`premium-1`).
    pub plan: String,
    pub policy: DataPolicy,
    /// Connections each writer dyno opens to this add-on, when the user says so.
    pub connections_per_dyno: Option<u32>,
}

/// One process type of the formation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProcessFacts {
    pub process_type: String,
    pub quantity: u32,
    pub size: String,
}

/// Who a Redis server is, as INFO shows it: recorded for the server behind each add-on's
/// config var before the plan change, so that the wait can demand proof that the URL now
/// leads to a different server (see `runner::evidence`). Secret-free.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerIdentity {
    /// INFO server `run_id` (random per process); empty when the server hides it.
    #[serde(default)]
    pub run_id: String,
    /// INFO memory `maxmemory`, bytes; 0 when unlimited or hidden.
    #[serde(default)]
    pub maxmemory: u64,
    /// INFO clients `maxclients`, when shown.
    #[serde(default)]
    pub maxclients: Option<u64>,
}

/// The Redis server behind an add-on, as INFO showed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RedisFacts {
    pub used_memory: u64,
    pub connected_clients: u32,
    pub version: String,
    pub keys: u64,
}

/// A requested add-on, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AddonFacts {
    /// What the user typed.
    pub requested_as: String,
    pub id: String,
    /// Globally unique add-on name (`redis-cubed-12345`).
    pub name: String,
    /// Attachment name on this app, when it has one (`ENKETO_REDIS_MAIN`).
    pub attachment: Option<String>,
    pub service: String,
    /// Bare current plan.
    pub plan: String,
    pub state: crate::heroku::models::AddOnState,
    /// Config var names (never values).
    pub config_vars: Vec<String>,
    /// The Data API's `/wait`: (waiting, message).
    pub waiting: Option<(bool, String)>,
    pub maintenance: Option<MaintenanceStatus>,
    pub redis: Option<RedisFacts>,
    pub redis_config: Option<RedisConfigValues>,
    /// Why Redis facts are missing, when they are.
    pub redis_error: Option<RedisUnreadable>,
    /// Every attachment of the add-on, to this app and to others (a live swap moves them
    /// all); `None` when they could not be listed.
    #[serde(default)]
    pub attachments: Option<Vec<AttachmentRef>>,
}

/// One attachment of an add-on: the app it is attached to and its name there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AttachmentRef {
    pub app: String,
    pub name: String,
}

/// Why an add-on's Redis could not be read at capture time. Guards and the plan table decide on
/// `reason`; `detail` is the error in words, for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(from = "UnreadableRepr")]
pub struct RedisUnreadable {
    pub reason: UnreadableReason,
    pub detail: String,
}

impl RedisUnreadable {
    pub fn new(reason: UnreadableReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for RedisUnreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// The kinds of "cannot read Redis" that call for different advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UnreadableReason {
    /// The app has no config var with the add-on's URL.
    NoUrl,
    /// The config var does not hold a Redis URL upshift accepts.
    BadUrl,
    /// The server answered "max number of clients reached".
    ConnectionLimit,
    /// The server hung up on a new connection (as one at its limit often does).
    HungUp,
    /// Anything else: network, TLS, password, timeouts.
    Other,
    /// The config var leads to the server another add-on of the app exposes: not this
    /// add-on's, so nothing may be snapshotted, verified or repaired through it.
    ForeignServer,
}

/// Plan files written before the reason existed hold the error as a bare string.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
enum UnreadableRepr {
    Typed {
        reason: UnreadableReason,
        detail: String,
    },
    Legacy(String),
}

impl From<UnreadableRepr> for RedisUnreadable {
    fn from(r: UnreadableRepr) -> Self {
        match r {
            UnreadableRepr::Typed { reason, detail } => Self { reason, detail },
            UnreadableRepr::Legacy(detail) => Self {
                reason: UnreadableReason::Other,
                detail,
            },
        }
    }
}

impl AddonFacts {
    /// The name to show: the attachment name when there is one, else the add-on name.
    pub fn label(&self) -> &str {
        self.attachment.as_deref().unwrap_or(&self.name)
    }

    /// The config var that holds this add-on's URL for the app: see [`url_var`].
    pub fn url_var(&self) -> Option<String> {
        url_var(&self.config_vars, self.attachment.as_deref())
    }
}

/// The one rule for which config var carries an add-on's URL: `<ATTACHMENT>_URL` when the
/// add-on lists it, else the first var it lists. Capture, wait, verify and the manual steps
/// all read the URL through this, so they cannot disagree about which server is the app's.
pub fn url_var(config_vars: &[String], attachment: Option<&str>) -> Option<String> {
    attachment
        .map(|att| format!("{}_URL", att.to_uppercase()))
        .filter(|want| config_vars.contains(want))
        .or_else(|| config_vars.first().cloned())
}

/// A requested add-on: found, or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "found", rename_all = "kebab-case")]
pub enum AddonLookup {
    Found(Box<AddonFacts>),
    Missing {
        requested_as: String,
        message: String,
    },
}

/// How long a dyno must have been up before its connections count as a measurement.
pub const STEADY_AGE: std::time::Duration = std::time::Duration::from_secs(30);

/// Everything captured before the first write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Capture {
    pub app: String,
    pub app_id: String,
    pub maintenance: bool,
    pub formation: Vec<ProcessFacts>,
    /// Running dynos per process type (any state but `down`/`crashed`).
    pub running: Vec<(String, u32)>,
    /// Dynos per process type that have been `up` for at least [`STEADY_AGE`]: only they have
    /// opened all their connections, so only they can be measured. A dyno that has just
    /// started holds one or two, and dividing by it would pass a plan that cannot hold the app.
    #[serde(default)]
    pub steady: Vec<(String, u32)>,
    pub addons: Vec<AddonLookup>,
    /// Free bytes where snapshots go.
    pub local_free_bytes: Option<u64>,
    /// Runs of this app that have not finished (journal without an outcome), and the lock
    /// holder if another live run holds the app.
    pub unfinished_runs: Vec<String>,
    /// Capture time, RFC 3339.
    pub captured_at: String,
    /// Whether the app has the `preboot` feature (a release then starts new dynos before it
    /// stops the old ones); `None` when it could not be read.
    #[serde(default)]
    pub preboot: Option<bool>,
    /// Monthly price in cents of each heroku-redis plan (bare name), from the platform's plan
    /// list; empty when it could not be read. A live swap bills two add-ons for a while.
    #[serde(default)]
    pub plan_prices: std::collections::BTreeMap<String, u64>,
}

impl Capture {
    /// Quantity of a process type in the captured formation (0 when absent).
    pub fn quantity(&self, process_type: &str) -> u32 {
        self.formation
            .iter()
            .find(|p| p.process_type == process_type)
            .map_or(0, |p| p.quantity)
    }

    /// Dynos of a type up for at least [`STEADY_AGE`].
    pub fn steady(&self, process_type: &str) -> u32 {
        self.steady
            .iter()
            .find(|(t, _)| t == process_type)
            .map_or(0, |(_, n)| *n)
    }

    /// Running dynos of a type.
    pub fn running(&self, process_type: &str) -> u32 {
        self.running
            .iter()
            .find(|(t, _)| t == process_type)
            .map_or(0, |(_, n)| *n)
    }

    /// The found add-ons.
    /// Each change with the facts of its add-on, matched by the name it was asked for (not by
    /// position: a missing add-on listed first must not shift every pair after it). Changes
    /// whose add-on was not found are left out.
    pub fn found_changes<'a>(
        &'a self,
        changes: &'a [crate::plan::ChangeRequest],
    ) -> impl Iterator<Item = (&'a crate::plan::ChangeRequest, &'a AddonFacts)> {
        changes.iter().filter_map(|c| {
            self.found()
                .find(|a| a.requested_as == c.addon)
                .map(|a| (c, a))
        })
    }

    pub fn found(&self) -> impl Iterator<Item = &AddonFacts> {
        self.addons.iter().filter_map(|a| match a {
            AddonLookup::Found(f) => Some(f.as_ref()),
            AddonLookup::Missing { .. } => None,
        })
    }
}
