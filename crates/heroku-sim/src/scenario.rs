//! Scenarios: the apps, formations, add-ons, seed data and faults a simulator starts with,
//! written in TOML (built-in `enketo`, or any file).
//!
//! ```toml
//! [dynos]                      # optional
//! writes_per_second = 4        # per dyno and add-on
//! start_seconds = 0.3          # `starting` -> `up`
//!
//! [behaviour]                  # optional: see `crate::behaviour`
//! profile = "in-place"         # optimistic (default), in-place, lagging, sparse, strict,
//!                              # late-flip, heroku
//! tls = false                  # plain redis:// (default: TLS in every profile but optimistic)
//! keep_url = true              # a plan change keeps the URL (default: only in in-place)
//!
//! [rate_limit]                 # optional
//! capacity = 4500
//! refill_per_minute = 75
//!
//! [[apps]]
//! name = "enketo-demo"
//! maintenance = false
//!
//! [[apps.formation]]
//! type = "web"
//! quantity = 2
//! size = "standard-1X"
//! command = "npm start"
//!
//! [[apps.addons]]
//! name = "redis-cubed-12345"           # optional, generated when absent
//! attachment = "enketo_redis_main"     # config var ENKETO_REDIS_MAIN_URL
//! plan = "premium-0"                   # or heroku-redis:premium-0
//! connections = { web = 26 }           # per dyno of each process type
//! seed = { keys = 30000, seed = 1, ttl_fraction = 0.1 }
//! maintenance = "none"                 # data maintenance status
//! config = { maxmemory_policy = "noeviction", timeout = 0, notify_keyspace_events = "" }
//! tls = true                           # false: plain redis://; unset: the profile decides
//!
//! [[faults]]                           # see `Fault`
//! kind = "http"
//! path = "/apps/*/formation"
//! status = 500
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::SimError;
use crate::behaviour::BehaviourSpec;
use crate::faults::Fault;
use heroku_model::models::MaintenanceStatus;

const ENKETO: &str = include_str!("../scenarios/enketo.toml");

/// Built-in scenarios by name.
const BUILTINS: &[(&str, &str)] = &[("enketo", ENKETO)];

/// A whole scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub dynos: DynoSettings,
    #[serde(default)]
    pub rate_limit: RateLimitSettings,
    /// Where Heroku's behaviour is not documented, which variant to simulate.
    #[serde(default)]
    pub behaviour: BehaviourSpec,
    #[serde(default)]
    pub apps: Vec<AppSpec>,
    #[serde(default)]
    pub faults: Vec<Fault>,
}

/// How simulated dynos behave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynoSettings {
    /// Writes per second of each dyno to each add-on it is connected to.
    #[serde(default = "default_writes")]
    pub writes_per_second: f64,
    /// Seconds a new dyno stays `starting` before it is `up`.
    #[serde(default = "default_start")]
    pub start_seconds: f64,
}

fn default_writes() -> f64 {
    4.0
}
fn default_start() -> f64 {
    0.3
}

impl Default for DynoSettings {
    fn default() -> Self {
        Self {
            writes_per_second: default_writes(),
            start_seconds: default_start(),
        }
    }
}

/// The account's rate-limit pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    #[serde(default = "default_refill")]
    pub refill_per_minute: u32,
}

fn default_capacity() -> u32 {
    4500
}
fn default_refill() -> u32 {
    75
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            capacity: default_capacity(),
            refill_per_minute: default_refill(),
        }
    }
}

/// One app.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    pub name: String,
    #[serde(default)]
    pub maintenance: bool,
    #[serde(default)]
    pub formation: Vec<FormationSpec>,
    #[serde(default)]
    pub addons: Vec<AddonSpec>,
    /// Extra config vars (besides the add-ons' URLs).
    #[serde(default)]
    pub config_vars: BTreeMap<String, String>,
    /// The app has the `preboot` feature on (`heroku features:enable preboot`).
    #[serde(default)]
    pub preboot: bool,
}

/// One process type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormationSpec {
    #[serde(rename = "type")]
    pub process_type: String,
    #[serde(default)]
    pub quantity: u32,
    #[serde(default = "default_size")]
    pub size: String,
    #[serde(default)]
    pub command: Option<String>,
}

fn default_size() -> String {
    "standard-1X".into()
}

/// One heroku-redis add-on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddonSpec {
    /// Globally unique add-on name; generated (`redis-<word>-<number>`) when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Attachment name, e.g. `enketo_redis_main` (config var `ENKETO_REDIS_MAIN_URL`).
    pub attachment: String,
    /// Plan, bare or full.
    pub plan: String,
    /// Connections each dyno of a process type holds.
    #[serde(default)]
    pub connections: BTreeMap<String, u32>,
    #[serde(default)]
    pub seed: Option<SeedSpec>,
    #[serde(default = "default_maintenance")]
    pub maintenance: MaintenanceStatus,
    #[serde(default)]
    pub config: RedisSettingsSpec,
    /// Serve TLS only: the config var is `rediss://…` with a self-signed certificate, as on
    /// Heroku (clients must not verify it). Unset: the behaviour profile decides (TLS in every
    /// built-in but `optimistic`; knob `tls` in `[behaviour]`).
    #[serde(default)]
    pub tls: Option<bool>,
}

fn default_maintenance() -> MaintenanceStatus {
    MaintenanceStatus::None
}

/// Seed data: `keys` keys of every Redis type, deterministic for a given `seed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedSpec {
    pub keys: u32,
    #[serde(default)]
    pub seed: u64,
    /// Share of keys given a TTL (hours away, so they do not expire during a run).
    #[serde(default)]
    pub ttl_fraction: f64,
    /// Approximate size of string values in bytes.
    #[serde(default = "default_value_bytes")]
    pub value_bytes: usize,
}

fn default_value_bytes() -> usize {
    64
}

/// Redis settings managed through the Data API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettingsSpec {
    #[serde(default = "default_policy")]
    pub maxmemory_policy: String,
    #[serde(default)]
    pub timeout: u64,
    #[serde(default)]
    pub notify_keyspace_events: String,
}

fn default_policy() -> String {
    "noeviction".into()
}

impl Default for RedisSettingsSpec {
    fn default() -> Self {
        Self {
            maxmemory_policy: default_policy(),
            timeout: 0,
            notify_keyspace_events: String::new(),
        }
    }
}

/// The maxmemory policies Heroku lets users pick.
pub const MAXMEMORY_POLICIES: &[&str] = &[
    "noeviction",
    "allkeys-lfu",
    "volatile-lfu",
    "allkeys-lru",
    "volatile-lru",
    "allkeys-random",
    "volatile-random",
    "volatile-ttl",
];

impl Scenario {
    /// A built-in scenario by name (`enketo`).
    ///
    /// # Errors
    /// [`SimError::UnknownScenario`] listing the built-ins.
    pub fn builtin(name: &str) -> Result<Self, SimError> {
        let (_, text) =
            BUILTINS
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| SimError::UnknownScenario {
                    name: name.to_owned(),
                    known: BUILTINS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
        Self::parse(text, &format!("builtin:{name}"))
    }

    /// A built-in name or a path to a TOML file.
    ///
    /// # Errors
    /// As [`Scenario::builtin`] and [`Scenario::from_path`].
    pub fn load(name_or_path: &str) -> Result<Self, SimError> {
        if BUILTINS.iter().any(|(n, _)| *n == name_or_path) {
            return Self::builtin(name_or_path);
        }
        let path = Path::new(name_or_path);
        if path.exists()
            || name_or_path.contains('/')
            || path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
        {
            return Self::from_path(path);
        }
        Self::builtin(name_or_path)
    }

    /// Reads a scenario file.
    ///
    /// # Errors
    /// [`SimError::ReadScenario`], or a parse error with file, line and column.
    pub fn from_path(path: &Path) -> Result<Self, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::ReadScenario {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates scenario TOML; `origin` names the source in errors.
    ///
    /// # Errors
    /// [`SimError::ParseScenario`] (with line and column) or [`SimError::InvalidScenario`].
    pub fn parse(text: &str, origin: &str) -> Result<Self, SimError> {
        let scenario: Self = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map_or((1, 1), |span| line_column(text, span.start));
            SimError::ParseScenario {
                origin: origin.to_owned(),
                line,
                column,
                message: e.message().trim().to_owned(),
            }
        })?;
        scenario
            .validate()
            .map_err(|message| SimError::InvalidScenario {
                origin: origin.to_owned(),
                message,
            })?;
        Ok(scenario)
    }

    /// Checks what TOML cannot: known plans, unique names, sane numbers.
    ///
    /// # Errors
    /// A message naming the offending app, add-on or fault.
    pub fn validate(&self) -> Result<(), String> {
        let mut app_names = std::collections::BTreeSet::new();
        let mut addon_names = std::collections::BTreeSet::new();
        if !(self.dynos.writes_per_second >= 0.0 && self.dynos.start_seconds >= 0.0) {
            return Err("dynos.writes_per_second and dynos.start_seconds must be >= 0".into());
        }
        self.behaviour.validate()?;
        for app in &self.apps {
            if app.name.is_empty() || !app_names.insert(app.name.clone()) {
                return Err(format!("app name `{}` is empty or used twice", app.name));
            }
            let mut types = std::collections::BTreeSet::new();
            for f in &app.formation {
                if !types.insert(f.process_type.clone()) {
                    return Err(format!(
                        "app {}: process type `{}` is listed twice",
                        app.name, f.process_type
                    ));
                }
            }
            let mut attachments = std::collections::BTreeSet::new();
            for a in &app.addons {
                if heroku_model::plans::find(&a.plan).is_none() {
                    return Err(format!(
                        "app {}: add-on {}: unknown heroku-redis plan `{}`",
                        app.name, a.attachment, a.plan
                    ));
                }
                if !attachments.insert(a.attachment.to_uppercase()) {
                    return Err(format!(
                        "app {}: attachment `{}` is used twice",
                        app.name, a.attachment
                    ));
                }
                if let Some(name) = &a.name
                    && !addon_names.insert(name.clone())
                {
                    return Err(format!("add-on name `{name}` is used twice"));
                }
                if !MAXMEMORY_POLICIES.contains(&a.config.maxmemory_policy.as_str()) {
                    return Err(format!(
                        "app {}: add-on {}: unknown maxmemory_policy `{}`",
                        app.name, a.attachment, a.config.maxmemory_policy
                    ));
                }
            }
        }
        for f in &self.faults {
            f.validate()?;
        }
        Ok(())
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_enketo_parses() {
        let s = Scenario::builtin("enketo").unwrap();
        assert_eq!(s.apps[0].name, "enketo-demo");
        assert_eq!(s.apps[0].addons.len(), 2);
        assert_eq!(s.apps[0].addons[0].connections["web"], 26);
    }

    #[test]
    fn parse_errors_carry_line_and_column() {
        let err = Scenario::parse("[[apps]]\nname = \"a\"\nbogus = 1\n", "x.toml").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("invalid scenario x.toml:3:1:"), "{text}");
        let err = Scenario::parse(
            "[[apps]]\nname = \"a\"\n[[apps.addons]]\nattachment = \"r\"\nplan = \"premium-6\"\n",
            "y.toml",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown heroku-redis plan"),
            "{err}"
        );
    }

    #[test]
    fn faults_parse_from_toml_and_files_name_their_path() {
        let text = r#"
[[faults]]
kind = "http"
method = "PATCH"
path = "/apps/*/formation"
status = 429
retry_after = 2

[[faults]]
kind = "ignore_scale_down"
process_type = "web"

[[faults]]
kind = "lose_keys"
count = 3
"#;
        let s = Scenario::parse(text, "f.toml").unwrap();
        assert_eq!(s.faults.len(), 3);
        assert!(matches!(
            s.faults[1],
            Fault::IgnoreScaleDown { dynos: 1, .. }
        ));
        let err = Scenario::parse("[[faults]]\nkind = \"meteor\"\n", "g.toml").unwrap_err();
        assert!(
            err.to_string().starts_with("invalid scenario g.toml:"),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[dynos]\nwrites_per_second = \"fast\"\n").unwrap();
        let err = Scenario::load(path.to_str().unwrap()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("bad.toml:2:"), "{text}");
    }

    #[test]
    fn a_behaviour_table_picks_a_profile() {
        let s = Scenario::parse("[behaviour]\nprofile = \"in-place\"\n", "b.toml").unwrap();
        assert!(s.behaviour.resolve().provisioned_at_once);
        let err = Scenario::parse("[behaviour]\nprofile = \"kind\"\n", "c.toml").unwrap_err();
        assert!(
            err.to_string().starts_with("invalid scenario c.toml:2:"),
            "{err}"
        );
    }

    #[test]
    fn unknown_builtin_lists_known_ones() {
        let err = Scenario::builtin("nope").unwrap_err();
        assert!(err.to_string().contains("enketo"));
    }
}
