//! Typed models of the Platform API and Redis Data API resources upshift reads and writes.
//!
//! Deserialisation is lenient where Heroku is known to vary (unknown add-on states are kept as
//! strings, optional fields default) and strict where upshift makes decisions on a value.
//! The simulator serialises the same types, so both sides of the wire share one definition;
//! the schema test keeps the simulator honest against Heroku's published schema.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A reference to another resource by id and name (`app`, `addon_service`, `plan`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRef {
    pub id: String,
    pub name: String,
}

/// `GET /apps/{app}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    pub id: String,
    pub name: String,
    pub maintenance: bool,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub web_url: Option<String>,
    #[serde(default)]
    pub stack: Option<NameRef>,
    #[serde(default)]
    pub region: Option<NameRef>,
    #[serde(default)]
    pub owner: Option<Owner>,
}

/// The owner of an app (an account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub id: String,
    pub email: String,
}

/// One process type of an app's formation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Formation {
    pub id: String,
    #[serde(rename = "type")]
    pub process_type: String,
    pub quantity: u32,
    /// Dyno size name (`standard-1X`); Heroku still sends the deprecated `size` beside
    /// `dyno_size`, and older responses only `size`.
    pub size: String,
    #[serde(default)]
    pub dyno_size: Option<NameRef>,
    pub command: String,
    pub app: NameRef,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// One entry of a batch formation update (`PATCH /apps/{app}/formation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormationUpdate {
    #[serde(rename = "type")]
    pub process_type: String,
    /// Absolute quantity: a repeated PATCH is harmless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

/// The body of a batch formation update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormationBatch {
    pub updates: Vec<FormationUpdate>,
}

/// A running (or starting, crashed…) dyno.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dyno {
    pub id: String,
    /// `web.1`, `worker.2`, …
    pub name: String,
    #[serde(rename = "type")]
    pub process_type: String,
    pub state: DynoState,
    pub size: String,
    pub command: String,
    pub app: NameRef,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// A dyno's state. Unknown strings are kept rather than failing the whole list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DynoState {
    Crashed,
    Down,
    Idle,
    Starting,
    Up,
    Other(String),
}

impl DynoState {
    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Crashed => "crashed",
            Self::Down => "down",
            Self::Idle => "idle",
            Self::Starting => "starting",
            Self::Up => "up",
            Self::Other(s) => s,
        }
    }
}

impl From<&str> for DynoState {
    fn from(s: &str) -> Self {
        match s {
            "crashed" => Self::Crashed,
            "down" => Self::Down,
            "idle" => Self::Idle,
            "starting" => Self::Starting,
            "up" => Self::Up,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// An add-on's provisioning state. Heroku documents three and sends more (`deprovisioning`);
/// unknown strings are kept so a guard can name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddOnState {
    Provisioning,
    Provisioned,
    Deprovisioned,
    Other(String),
}

impl AddOnState {
    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Provisioning => "provisioning",
            Self::Provisioned => "provisioned",
            Self::Deprovisioned => "deprovisioned",
            Self::Other(s) => s,
        }
    }
}

impl From<&str> for AddOnState {
    fn from(s: &str) -> Self {
        match s {
            "provisioning" => Self::Provisioning,
            "provisioned" => Self::Provisioned,
            "deprovisioned" => Self::Deprovisioned,
            other => Self::Other(other.to_owned()),
        }
    }
}

macro_rules! string_enum_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok(Self::from(s.as_str()))
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        // Any string: the platform sends states it has not documented, and they are kept.
        impl schemars::JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($t).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string" })
            }
        }
    };
}
string_enum_serde!(DynoState);
string_enum_serde!(AddOnState);

/// An add-on (`GET /apps/{app}/addons/{id_or_name}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddOn {
    pub id: String,
    /// Globally unique name, e.g. `redis-cubed-12345`.
    pub name: String,
    pub addon_service: NameRef,
    pub app: NameRef,
    /// Full plan name, e.g. `heroku-redis:premium-0`.
    pub plan: NameRef,
    pub state: AddOnState,
    /// Names only; the values are secrets and live in the app's config vars.
    #[serde(default)]
    pub config_vars: Vec<String>,
    #[serde(default)]
    pub provider_id: Option<String>,
    #[serde(default)]
    pub web_url: Option<String>,
    #[serde(default)]
    pub billed_price: Option<BilledPrice>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// What an add-on costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BilledPrice {
    pub cents: u64,
    pub contract: bool,
    pub unit: String,
}

/// The body of a plan change (`PATCH /apps/{app}/addons/{addon}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddOnPlanChange {
    pub plan: PlanRef,
}

/// One release of an app (`GET /apps/{app}/releases`): config var changes, attachments and
/// deploys each make one, and each restarts the app's dynos.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub id: String,
    pub version: u64,
    #[serde(default)]
    pub description: String,
    /// `pending`, `succeeded`, `failed`, ...; kept as text.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub current: Option<bool>,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// A plan named by its full name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRef {
    pub name: String,
}

/// An add-on attachment (`POST /actions/addon-attachments/resolve` answers a list of these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddOnAttachment {
    pub id: String,
    /// The attachment name, e.g. `ENKETO_REDIS_MAIN` (config vars derive from it).
    pub name: String,
    pub addon: AttachmentAddOn,
    pub app: NameRef,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// The add-on an attachment points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentAddOn {
    pub id: String,
    pub name: String,
    pub app: NameRef,
}

/// A plan of an add-on service (`GET /addon-services/{service}/plans`). Carries no memory or
/// connection figures: see [`crate::plans`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePlan {
    pub id: String,
    /// Full name, e.g. `heroku-redis:premium-1`.
    pub name: String,
    #[serde(default)]
    pub human_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub price: Option<PlanPrice>,
}

/// An app feature (`GET /apps/{app}/features/{feature}`); only what upshift reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppFeature {
    pub name: String,
    #[serde(default)]
    pub enabled: bool,
}

/// A plan's price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanPrice {
    pub cents: u64,
    pub unit: String,
    #[serde(default)]
    pub contract: bool,
    #[serde(default)]
    pub metered: bool,
}

/// An app's config vars. Values are secrets: `Debug` prints names only.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConfigVars(pub BTreeMap<String, String>);

impl ConfigVars {
    /// The value of one var, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl fmt::Debug for ConfigVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// `GET /account/rate-limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub remaining: u32,
}

/// `POST /apps/{app}/log-sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSession {
    pub id: String,
    pub logplex_url: String,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// Request body of a log session.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LogSessionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dyno: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<bool>,
}

/// Redis Data API `GET /redis/v0/databases/{addon}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisDatabase {
    pub addon_id: String,
    pub name: String,
    /// Bare plan name, e.g. `premium-0`.
    pub plan: String,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub prefer_native_tls: bool,
    #[serde(default)]
    pub resource_url: Option<String>,
    #[serde(default)]
    pub formation: Option<RedisFormation>,
    /// Rows such as `Status: available`; for display, not for control flow.
    #[serde(default)]
    pub info: Vec<InfoRow>,
}

/// The database's formation (primary or follower).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisFormation {
    pub id: String,
    pub primary: Option<String>,
}

/// One row of the Data API's `info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoRow {
    pub name: String,
    pub values: Vec<String>,
}

/// Redis Data API `GET /redis/v0/databases/{addon}/wait`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisWait {
    /// `preparing`, `upgrading version`, `available`, …; Heroku may leave it out (the CLI's
    /// own fixtures answer `{"waiting?": false}`), then it is empty.
    #[serde(default)]
    pub message: String,
    #[serde(rename = "waiting?")]
    pub waiting: bool,
}

/// One setting in the Data API's Redis config (`{default, desc, value, values?}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisSetting {
    #[serde(default)]
    pub desc: Option<String>,
    pub value: serde_json::Value,
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<serde_json::Value>,
}

/// Redis Data API `GET|PATCH /redis/v0/databases/{addon}/config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisConfig {
    pub maxmemory_policy: RedisSetting,
    pub timeout: RedisSetting,
    pub notify_keyspace_events: RedisSetting,
}

impl RedisConfig {
    /// The three values as a comparable, secret-free triple for journals and verify.
    pub fn values(&self) -> RedisConfigValues {
        RedisConfigValues {
            maxmemory_policy: self.maxmemory_policy.value.as_str().map(str::to_owned),
            timeout: self.timeout.value.as_u64(),
            notify_keyspace_events: self
                .notify_keyspace_events
                .value
                .as_str()
                .map(str::to_owned),
        }
    }
}

/// The settable values of [`RedisConfig`], also the body of its PATCH (unset fields are left).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RedisConfigValues {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxmemory_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_keyspace_events: Option<String>,
}

/// Data maintenance status (`GET /data/maintenances/v1/{addon_id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataMaintenance {
    pub status: MaintenanceStatus,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub scheduled_for: Option<String>,
}

/// Heroku Data's maintenance statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MaintenanceStatus {
    None,
    Pending,
    Preparing,
    Ready,
    Running,
    Completed,
}

impl MaintenanceStatus {
    /// Whether a plan change now would collide with a platform maintenance.
    pub fn blocks_change(self) -> bool {
        matches!(
            self,
            Self::Pending | Self::Preparing | Self::Ready | Self::Running
        )
    }
}

/// The error body Heroku sends with every non-2xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub id: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_states_are_kept() {
        let s: AddOnState = serde_json::from_str("\"deprovisioning\"").unwrap();
        assert_eq!(s, AddOnState::Other("deprovisioning".into()));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"deprovisioning\"");
        let d: DynoState = serde_json::from_str("\"up\"").unwrap();
        assert_eq!(d, DynoState::Up);
    }

    #[test]
    fn config_vars_debug_hides_values() {
        let mut m = BTreeMap::new();
        m.insert("REDIS_URL".to_owned(), "redis://:hunter2@host:1".to_owned());
        let printed = format!("{:?}", ConfigVars(m));
        assert!(printed.contains("REDIS_URL"));
        assert!(!printed.contains("hunter2"));
    }

    #[test]
    fn wait_body_uses_the_question_mark_name() {
        let w: RedisWait =
            serde_json::from_str(r#"{"message":"available","waiting?":false}"#).unwrap();
        assert!(!w.waiting);
    }
}
