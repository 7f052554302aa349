//! The `--json` documents: each is one object with a `version` first, and each has a JSON
//! Schema generated from the same types (`schema/*.schema.json`, see [`schema_of`]), so a
//! script can check what it reads and a change of shape cannot slip in unnoticed.
//!
//! Field names follow one rule: a duration is whole milliseconds named `…_ms` (`downtime_ms`,
//! `elapsed_ms`), sizes are bytes, counts are plain integers.

use std::io::Write;
use std::time::Duration;

use crate::engine::Outcome;
use crate::runner::RunReport;

/// The version of every `--json` document (its `version` field). Raised when a field is
/// renamed or removed, or changes type; new fields do not raise it.
pub const JSON_VERSION: u32 = 1;

/// A `--json` object document: `version` first, then the document's own fields.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Versioned<'a, T: serde::Serialize + schemars::JsonSchema> {
    /// The document's version ([`JSON_VERSION`]).
    pub version: u32,
    #[serde(flatten)]
    pub document: &'a T,
}

/// `run`, `resume` and `rollback --json`: the run's report with its durations named by
/// their unit, as in `runs --json` and the JSON log events (`downtime_ms`, `duration_ms`).
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct RunDocument<'a> {
    /// The run's id (`upshift resume RUN_ID`, `upshift runs`).
    pub run_id: &'a str,
    pub app: &'a str,
    /// How the run ended; the process exit code follows it (README, Exit codes).
    pub outcome: Outcome,
    /// For runs that did not succeed: what happened and what to do; for a run resumed or
    /// rolled back after it finished: that nothing was done.
    pub message: Option<&'a str>,
    pub addons: &'a [crate::runner::AddonReport],
    /// Time the writers were stopped (the app's downtime), in milliseconds.
    pub downtime_ms: u64,
    /// The whole run, in milliseconds.
    pub duration_ms: u64,
    /// The run's journal file.
    #[schemars(with = "String")]
    pub journal: &'a std::path::Path,
}

impl<'a> From<&'a RunReport> for RunDocument<'a> {
    fn from(r: &'a RunReport) -> Self {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            run_id: &r.run_id,
            app: &r.app,
            outcome: r.outcome,
            message: r.message.as_deref(),
            addons: &r.addons,
            downtime_ms: ms(r.downtime),
            duration_ms: ms(r.duration),
            journal: &r.journal,
        }
    }
}

/// Prints an object document with its `version` ([`JSON_VERSION`]), pretty.
///
/// # Errors
/// Writing to stdout failed.
pub fn print_document<T: serde::Serialize + schemars::JsonSchema>(
    document: &T,
) -> std::io::Result<()> {
    print_json(&Versioned {
        version: JSON_VERSION,
        document,
    })
}

/// Prints an object document with its `version` on one line (`digest`, `snapshot`, `diff`,
/// `restore`: one result a line, for scripts that read line by line).
///
/// # Errors
/// Serialisation or stdout failure.
pub fn print_document_line<T: serde::Serialize + schemars::JsonSchema>(
    document: &T,
) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(
        &mut out,
        &Versioned {
            version: JSON_VERSION,
            document,
        },
    )
    .map_err(std::io::Error::other)?;
    writeln!(out)
}

/// Writes JSON to stdout followed by a newline.
///
/// # Errors
/// Serialisation or stdout failure.
pub fn print_json<T: serde::Serialize>(value: &T) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::other)?;
    writeln!(out)
}

/// The JSON Schema (draft 2020-12) of the document `T` as [`print_document`] prints it:
/// generated for what is serialised (not what would be accepted), with `version` pinned to
/// [`JSON_VERSION`]. Pure.
pub fn schema_of<T: serde::Serialize + schemars::JsonSchema + 'static>(
    id: &str,
    title: &str,
    description: &str,
) -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator();
    let schema = generator.into_root_schema_for::<Versioned<'static, T>>();
    let mut value = serde_json::to_value(schema).unwrap_or_default();
    if let Some(root) = value.as_object_mut() {
        root.insert("$id".into(), id.into());
        root.insert("title".into(), title.into());
        root.insert("description".into(), description.into());
        if let Some(version) = root
            .get_mut("properties")
            .and_then(|p| p.get_mut("version"))
            .and_then(serde_json::Value::as_object_mut)
        {
            version.insert("const".into(), JSON_VERSION.into());
        }
    }
    value
}
