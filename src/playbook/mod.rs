//! Playbooks: TOML files that name steps from the fixed action registry, with per-step
//! timeouts, retries and compensations. Parsed and validated before anything runs; every error
//! points at file, line and column and says what to write instead.
//!
//! The built-in `heroku-redis-plan-change` playbook is embedded in the binary from
//! `playbooks/heroku-redis-plan-change.toml`; `--playbook PATH` runs a user's own.

mod check;
pub mod duration;
mod strategy;

pub use self::strategy::{DEFAULT_RETIRE_OLD, RetireOld, Strategy};

pub use self::check::{MAX_CONNECTIONS_PER_DYNO, check_connections, check_settle};
use self::check::{
    check_compensation_deadline, check_order, check_params, check_retry, check_timeout,
};

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use toml::Spanned;

use crate::engine::{Action, Compensation};

/// The name of the built-in in-place playbook (the default strategy).
pub const BUILTIN_NAME: &str = "heroku-redis-plan-change";
const BUILTIN_TEXT: &str = include_str!("../../playbooks/heroku-redis-plan-change.toml");
/// The name of the built-in live-swap playbook (`--strategy live-swap`).
pub const LIVE_SWAP_NAME: &str = "heroku-redis-live-swap";
const LIVE_SWAP_TEXT: &str = include_str!("../../playbooks/heroku-redis-live-swap.toml");

fn default_retire_old() -> RetireOld {
    DEFAULT_RETIRE_OLD
}

/// A playbook that failed to load.
#[derive(Debug, Error)]
pub enum PlaybookError {
    #[error("cannot read playbook {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}:{line}:{column}: {message}")]
    Invalid {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{origin}: the stored playbook is not safe to run: {message}; plan again with a valid \
         playbook"
    )]
    Stored { origin: String, message: String },
    #[error(
        "no built-in playbook named \"{name}\": the built-in ones are \"{BUILTIN_NAME}\" and \
         \"{LIVE_SWAP_NAME}\"; pass a file path to run your own"
    )]
    UnknownBuiltin { name: String },
}

/// A per-step retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    pub attempts: u32,
    #[serde(with = "duration_serde")]
    pub backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 1,
            backoff: Duration::from_secs(2),
        }
    }
}

/// One validated step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub action: Action,
    pub compensation: Option<Compensation>,
    #[serde(with = "duration_serde")]
    pub timeout: Duration,
    pub retry: Retry,
}

/// The playbook's parameters, overridable from the command line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub writers: Vec<String>,
    pub maintenance: bool,
    pub memory_margin: f64,
    pub connections_per_dyno: u32,
    pub cache_connections_per_dyno: u32,
    /// What a hit of the post-change log watch does.
    #[serde(default)]
    pub on_watch_hit: OnWatchHit,
    /// Run even when a writer type is already at 0 dynos at capture (`--allow-stopped-writers`).
    /// Off by default: a writer at 0 usually means another run, another machine or a person
    /// is mid-change, and the run would "restore" their 0 at the end.
    #[serde(default)]
    pub allow_stopped_writers: bool,
    /// How long one compensation keeps retrying transient failures (rate limits, 5xx,
    /// timeouts, lost connections) before it gives up and the run needs attention. Undoing is
    /// worth waiting for: a rollback that gives up after a few calls leaves the writers
    /// stopped over a burst that would have passed.
    #[serde(default = "default_compensation_deadline", with = "duration_serde")]
    pub compensation_deadline: Duration,
    /// Live swap: what happens to the old add-on after success (`--retire-old`).
    #[serde(default = "default_retire_old")]
    pub retire_old: RetireOld,
    /// How long the evidence that a new server is live (and, after the restore, the client
    /// count) must hold before the run goes on: the wait-provisioned step's settle period
    /// (`--settle`). Longer costs downtime; shorter trusts fewer polls of a platform whose
    /// Data API may lag (see `runner::evidence`).
    #[serde(default = "default_settle", with = "duration_serde")]
    pub settle: Duration,
}

/// The default of [`Params::settle`]: a few polls' worth of agreement between the platform,
/// the Data API and the server behind the URL (the poll interval grows to one second).
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(2);

fn default_settle() -> Duration {
    DEFAULT_SETTLE
}

/// The default of [`Params::compensation_deadline`]: long enough to ride out Heroku's
/// rate-limit pool refilling from empty (about 75 calls a minute) several times over.
pub const DEFAULT_COMPENSATION_DEADLINE: Duration = Duration::from_secs(15 * 60);

fn default_compensation_deadline() -> Duration {
    DEFAULT_COMPENSATION_DEADLINE
}

/// What a hit of the post-change log watch (`--watch`) does. Rolling back is not offered: by
/// then the change has finished, its data verified and the writers run on the new plan, so
/// going back is a new plan change that a person should decide on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnWatchHit {
    /// Report and notify; the run's outcome stays succeeded (exit 0).
    #[default]
    Notify,
    /// Report and notify, and end with needs-attention (exit 4).
    NeedsAttention,
}

impl OnWatchHit {
    /// The name in playbooks.
    pub fn name(self) -> &'static str {
        match self {
            Self::Notify => "notify",
            Self::NeedsAttention => "needs-attention",
        }
    }
}

impl Default for Params {
    fn default() -> Self {
        Self {
            writers: vec!["web".into()],
            maintenance: false,
            memory_margin: 0.9,
            connections_per_dyno: 26,
            cache_connections_per_dyno: 18,
            on_watch_hit: OnWatchHit::Notify,
            allow_stopped_writers: false,
            compensation_deadline: DEFAULT_COMPENSATION_DEADLINE,
            retire_old: DEFAULT_RETIRE_OLD,
            settle: DEFAULT_SETTLE,
        }
    }
}

/// A validated playbook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Playbook {
    pub name: String,
    pub description: String,
    /// Where it came from: `builtin` or a path.
    pub origin: String,
    pub params: Params,
    pub steps: Vec<Step>,
}

impl Playbook {
    /// The built-in playbook.
    pub fn builtin() -> Self {
        parse(BUILTIN_TEXT, &format!("builtin:{BUILTIN_NAME}"))
            .expect("the built-in playbook is valid (tested)")
    }

    /// The built-in playbook of a strategy.
    pub fn of_strategy(strategy: Strategy) -> Self {
        match strategy {
            Strategy::InPlace => Self::builtin(),
            Strategy::LiveSwap => parse(LIVE_SWAP_TEXT, &format!("builtin:{LIVE_SWAP_NAME}"))
                .expect("the built-in live-swap playbook is valid (tested)"),
        }
    }

    /// Loads `name_or_path`: a built-in name, or a TOML file.
    ///
    /// # Errors
    /// Unreadable file, or any validation error with its position.
    pub fn load(name_or_path: &str) -> Result<Self, PlaybookError> {
        if name_or_path == BUILTIN_NAME {
            return Ok(Self::builtin());
        }
        if name_or_path == LIVE_SWAP_NAME {
            return Ok(Self::of_strategy(Strategy::LiveSwap));
        }
        let path = Path::new(name_or_path);
        if !path.exists() && !name_or_path.contains(['/', '.']) {
            return Err(PlaybookError::UnknownBuiltin {
                name: name_or_path.to_owned(),
            });
        }
        let text = crate::files::read_text_capped(path, crate::files::TEXT_FILE_LIMIT).map_err(
            |source| PlaybookError::Read {
                path: path.to_owned(),
                source,
            },
        )?;
        parse(&text, &path.display().to_string())
    }

    /// Checks a playbook that did not come through [`parse`]: the one embedded in a plan
    /// file or stored in a journal. Same rules as parsing: safety structure and bounds.
    ///
    /// # Errors
    /// [`PlaybookError::Stored`] naming the first problem.
    pub fn validate(&self) -> Result<(), PlaybookError> {
        let stored = |message: String| PlaybookError::Stored {
            origin: self.origin.clone(),
            message,
        };
        check_params(&self.params).map_err(stored)?;
        for (i, step) in self.steps.iter().enumerate() {
            if step.compensation != step.action.compensation() {
                return Err(stored(format!(
                    "step \"{}\" has the wrong compensation",
                    step.action
                )));
            }
            check_timeout(step.timeout).map_err(stored)?;
            check_retry(step.retry.attempts, step.retry.backoff).map_err(stored)?;
            if self.steps[..i].iter().any(|s| s.action == step.action) {
                return Err(stored(format!("action \"{}\" appears twice", step.action)));
            }
        }
        check_order(&self.steps).map_err(stored)
    }

    /// Checks parameters bound to this playbook (its own, with command-line overrides) and
    /// per-add-on connection figures, as stored in a plan file or journal.
    ///
    /// # Errors
    /// [`PlaybookError::Stored`] naming the first problem.
    pub fn validate_params(
        &self,
        params: &Params,
        connections: impl IntoIterator<Item = u32>,
    ) -> Result<(), PlaybookError> {
        let stored = |message: String| PlaybookError::Stored {
            origin: self.origin.clone(),
            message,
        };
        check_params(params).map_err(stored)?;
        for n in connections {
            check_connections("connections per dyno", n).map_err(stored)?;
        }
        Ok(())
    }

    /// The actions in order, for the engine.
    pub fn actions(&self) -> Vec<Action> {
        self.steps.iter().map(|s| s.action).collect()
    }

    /// The step of an action, when the playbook has it.
    pub fn step(&self, action: Action) -> Option<&Step> {
        self.steps.iter().find(|s| s.action == action)
    }
}

// ---- raw TOML shape --------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlaybook {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    params: Option<Spanned<RawParams>>,
    steps: Spanned<Vec<Spanned<RawStep>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    writers: Option<Vec<String>>,
    maintenance: Option<bool>,
    memory_margin: Option<Spanned<f64>>,
    connections_per_dyno: Option<u32>,
    cache_connections_per_dyno: Option<u32>,
    on_watch_hit: Option<Spanned<String>>,
    compensation_deadline: Option<Spanned<String>>,
    retire_old: Option<Spanned<String>>,
    settle: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    action: Spanned<String>,
    compensation: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    retry: Option<Spanned<RawRetry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    attempts: u32,
    backoff: Option<Spanned<String>>,
}

/// Default timeout of a step whose playbook gives none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Turns byte spans into `origin:line:column` errors.
struct Locator<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Locator<'_> {
    fn at(&self, span: std::ops::Range<usize>, message: String) -> PlaybookError {
        let (line, column) = line_col(self.text, span.start);
        PlaybookError::Invalid {
            origin: self.origin.to_owned(),
            line,
            column,
            message,
        }
    }
}

/// Parses and validates playbook text. `origin` names it in errors (a path or `builtin:…`).
///
/// # Errors
/// [`PlaybookError::Invalid`] at the first problem, with line and column.
pub fn parse(text: &str, origin: &str) -> Result<Playbook, PlaybookError> {
    let loc = Locator { text, origin };
    let raw: RawPlaybook = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        loc.at(span, improve_toml_message(e.message()))
    })?;
    let params = match raw.params {
        Some(p) => bind_params(p, &loc)?,
        None => Params::default(),
    };
    let steps_span = raw.steps.span();
    let mut steps: Vec<Step> = Vec::new();
    for raw_step in raw.steps.into_inner() {
        let step = build_step(raw_step.into_inner(), &loc)?;
        steps.push(step);
    }
    for (i, step) in steps.iter().enumerate() {
        if steps[..i].iter().any(|s| s.action == step.action) {
            return Err(loc.at(
                steps_span.clone(),
                format!(
                    "action \"{}\" appears twice: each action runs once per playbook",
                    step.action
                ),
            ));
        }
    }
    check_order(&steps).map_err(|m| loc.at(steps_span, m))?;
    Ok(Playbook {
        name: raw.name.into_inner(),
        description: raw.description,
        origin: origin.to_owned(),
        params,
        steps,
    })
}

fn bind_params(raw: Spanned<RawParams>, loc: &Locator<'_>) -> Result<Params, PlaybookError> {
    let span = raw.span();
    let p = raw.into_inner();
    let mut params = Params::default();
    if let Some(w) = p.writers {
        if w.is_empty() {
            return Err(loc.at(
                span,
                "params.writers is empty: name at least one process type, e.g. [\"web\"]".into(),
            ));
        }
        params.writers = w;
    }
    if let Some(m) = p.maintenance {
        params.maintenance = m;
    }
    if let Some(margin) = p.memory_margin {
        let v = *margin.get_ref();
        if !(v > 0.0 && v <= 1.0) {
            return Err(loc.at(
                margin.span(),
                format!("memory_margin {v} is out of range: write a fraction such as 0.9"),
            ));
        }
        params.memory_margin = v;
    }
    if let Some(c) = p.connections_per_dyno {
        check_connections("connections_per_dyno", c).map_err(|m| loc.at(span.clone(), m))?;
        params.connections_per_dyno = c;
    }
    if let Some(c) = p.cache_connections_per_dyno {
        check_connections("cache_connections_per_dyno", c).map_err(|m| loc.at(span.clone(), m))?;
        params.cache_connections_per_dyno = c;
    }
    if let Some(w) = p.on_watch_hit {
        params.on_watch_hit = match w.get_ref().as_str() {
            "notify" => OnWatchHit::Notify,
            "needs-attention" => OnWatchHit::NeedsAttention,
            "rollback" => {
                return Err(loc.at(
                    w.span(),
                    "on_watch_hit = \"rollback\" is not supported: the watch runs after the change finished and its data was verified; write \"notify\" or \"needs-attention\" (exit 4) and decide on a change back by hand".into(),
                ));
            }
            other => {
                return Err(loc.at(
                    w.span(),
                    format!(
                        "on_watch_hit {other:?} is unknown: write \"notify\" or \"needs-attention\""
                    ),
                ));
            }
        };
    }
    if let Some(d) = p.compensation_deadline {
        let v = duration::parse(d.get_ref()).map_err(|m| loc.at(d.span(), m))?;
        check_compensation_deadline(v).map_err(|m| loc.at(d.span(), m))?;
        params.compensation_deadline = v;
    }
    if let Some(r) = p.retire_old {
        params.retire_old = RetireOld::parse(r.get_ref()).map_err(|m| loc.at(r.span(), m))?;
    }
    if let Some(d) = p.settle {
        let v = duration::parse(d.get_ref()).map_err(|m| loc.at(d.span(), m))?;
        check_settle(v).map_err(|m| loc.at(d.span(), m))?;
        params.settle = v;
    }
    Ok(params)
}

fn build_step(raw: RawStep, loc: &Locator<'_>) -> Result<Step, PlaybookError> {
    let action: Action = raw.action.get_ref().parse().map_err(|()| {
        loc.at(
            raw.action.span(),
            format!(
                "unknown action \"{}\": use one of {}",
                raw.action.get_ref(),
                crate::engine::ALL_ACTIONS
                    .iter()
                    .map(|a| a.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    let compensation = match (action.compensation(), raw.compensation) {
        (Some(needed), None) => {
            return Err(loc.at(
                raw.action.span(),
                format!(
                    "step \"{action}\" changes the platform but has no compensation: add \
                     compensation = \"{needed}\""
                ),
            ));
        }
        (Some(needed), Some(given)) if given.get_ref() == needed.name() => Some(needed),
        (Some(needed), Some(given)) => {
            return Err(loc.at(
                given.span(),
                format!(
                    "step \"{action}\" is undone by \"{needed}\", not \"{}\": write \
                     compensation = \"{needed}\"",
                    given.get_ref()
                ),
            ));
        }
        (None, Some(given)) => {
            return Err(loc.at(
                given.span(),
                format!(
                    "step \"{action}\" changes nothing that needs undoing: remove \
                     compensation = \"{}\"",
                    given.get_ref()
                ),
            ));
        }
        (None, None) => None,
    };
    let timeout = match raw.timeout {
        Some(t) => {
            let d = duration::parse(t.get_ref()).map_err(|m| loc.at(t.span(), m))?;
            check_timeout(d).map_err(|m| loc.at(t.span(), m))?;
            d
        }
        None => DEFAULT_TIMEOUT,
    };
    let retry = match raw.retry {
        Some(r) => {
            let span = r.span();
            let r = r.into_inner();
            if r.attempts == 0 {
                return Err(loc.at(
                    span,
                    "retry.attempts is 0: write 1 for no retry, or more".into(),
                ));
            }
            check_retry(r.attempts, Duration::ZERO).map_err(|m| loc.at(span.clone(), m))?;
            let backoff = match r.backoff {
                Some(b) => {
                    let d = duration::parse(b.get_ref()).map_err(|m| loc.at(b.span(), m))?;
                    check_retry(r.attempts, d).map_err(|m| loc.at(b.span(), m))?;
                    d
                }
                None => Retry::default().backoff,
            };
            Retry {
                attempts: r.attempts,
                backoff,
            }
        }
        None => Retry::default(),
    };
    Ok(Step {
        action,
        compensation,
        timeout,
        retry,
    })
}

/// toml's messages are precise but terse; name the fix for the common ones.
fn improve_toml_message(message: &str) -> String {
    let m = message.trim();
    if let Some(rest) = m.strip_prefix("unknown field ") {
        return format!("unknown key {rest}");
    }
    if m.starts_with("missing field") {
        return format!("{m}: every playbook needs name and at least one [[steps]] table");
    }
    m.to_owned()
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl fmt::Display for Playbook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} ({})", self.name, self.origin)?;
        if !self.description.is_empty() {
            writeln!(f, "  {}", self.description)?;
        }
        writeln!(f, "  parameters:")?;
        writeln!(f, "    writers = {:?}", self.params.writers)?;
        writeln!(f, "    maintenance = {}", self.params.maintenance)?;
        writeln!(f, "    memory_margin = {}", self.params.memory_margin)?;
        writeln!(
            f,
            "    connections_per_dyno = {}",
            self.params.connections_per_dyno
        )?;
        writeln!(
            f,
            "    cache_connections_per_dyno = {}",
            self.params.cache_connections_per_dyno
        )?;
        writeln!(f, "    on_watch_hit = {}", self.params.on_watch_hit.name())?;
        writeln!(
            f,
            "    compensation_deadline = {}",
            duration::format(self.params.compensation_deadline)
        )?;
        writeln!(f, "  steps:")?;
        for (i, s) in self.steps.iter().enumerate() {
            let comp = s
                .compensation
                .map_or(String::new(), |c| format!(", undone by {c}"));
            writeln!(
                f,
                "    {:>2}. {:<18} timeout {}{comp}: {}",
                i + 1,
                s.action.name(),
                duration::format(s.timeout),
                s.action.describe()
            )?;
        }
        Ok(())
    }
}

mod duration_serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::duration::format(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::duration::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
