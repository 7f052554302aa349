//! `upshift runs` and `upshift playbooks`: what was run before, read from the journals, and
//! what can be run.

use clap::Args;
use serde::Serialize;

use crate::cli::CliError;
use crate::exit::ExitCode;
use crate::journal::{self, StateDir};
use crate::playbook::Playbook;
use crate::runner::RunError;
use crate::runner::record::Record;
use crate::ui;

/// `upshift runs`.
#[derive(Debug, Clone, Args)]
pub struct RunsArgs {
    /// Print the history as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `upshift playbooks`.
#[derive(Debug, Clone, Args)]
pub struct PlaybooksArgs {
    /// Print the playbooks as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One row of `upshift runs`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RunRow {
    /// The run id (`upshift resume ID`).
    pub id: String,
    pub app: String,
    /// The requested changes, `ADDON=PLAN`.
    pub changes: Vec<String>,
    /// An outcome (`succeeded`, `rolled-back`, `blocked`, `needs-attention`,
    /// `kept-new-plan`), or `unfinished`, or `unreadable` (see `problem`).
    pub outcome: String,
    /// When the run started (RFC 3339, UTC).
    pub started: String,
    /// The app's downtime (writers stopped) from the journal; absent when they never stopped.
    pub downtime_ms: Option<i64>,
    /// First to last journal record.
    pub duration_ms: i64,
    /// `in-place` or `live-swap`.
    pub strategy: String,
    /// Live swap: old add-ons kept after success, with until when (`never` when kept until a
    /// person destroys them): a person can still go back to them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    /// Why the journal cannot be read whole (outcome `unreadable`); it names the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// `upshift runs --json`: the runs of this machine, newest first, under `runs` (an object, so
/// that it carries its `version` like every other document).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RunsDocument {
    pub runs: Vec<RunRow>,
}

/// Reads the history from the journals.
///
/// # Errors
/// Unreadable state dir.
pub fn history(state: &StateDir) -> Result<Vec<RunRow>, RunError> {
    let mut rows = Vec::new();
    for id in state.run_ids()? {
        let path = state.run_dir(&id).join(journal::JOURNAL_FILE);
        let (entries, problem) = journal::read_prefix::<Record>(&path);
        let first_ms = entries.first().map(|e| e.at_ms);
        if first_ms.is_none() && problem.is_none() {
            continue;
        }
        let mut row = RunRow {
            id: id.clone(),
            app: String::new(),
            changes: Vec::new(),
            outcome: "unfinished".into(),
            started: first_ms
                .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
                .map(|t| t.to_string())
                .unwrap_or_default(),
            downtime_ms: None,
            duration_ms: first_ms
                .zip(entries.last())
                .map_or(0, |(first, last)| last.at_ms - first),
            strategy: String::new(),
            kept: Vec::new(),
            problem: problem.map(|e| e.to_string()),
        };
        let mut down_since = None;
        for e in &entries {
            match &e.record {
                Record::Started { request, .. } => {
                    row.app.clone_from(&request.app);
                    crate::playbook::Strategy::of(&request.playbook)
                        .name()
                        .clone_into(&mut row.strategy);
                    row.changes = request
                        .changes
                        .iter()
                        .map(|c| format!("{}={}", c.addon, c.plan))
                        .collect();
                }
                Record::Downtime { started: true } => down_since = Some(e.at_ms),
                Record::Downtime { started: false } => {
                    if let Some(s) = down_since.take() {
                        *row.downtime_ms.get_or_insert(0) += e.at_ms - s;
                    }
                }
                Record::Finished { outcome, .. } => {
                    outcome.as_str().clone_into(&mut row.outcome);
                }
                Record::Retained { addon, until } => row.kept.push(format!(
                    "{addon} until {}",
                    until
                        .as_deref()
                        .map_or("you destroy it", |u| u.get(..16).unwrap_or(u))
                )),
                _ => {}
            }
        }
        if row.problem.is_some() {
            "unreadable".clone_into(&mut row.outcome);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The columns of `upshift runs`; the changes go under their row on a narrow terminal.
const RUNS_COLUMNS: [ui::table::Column; 7] = [
    ui::table::Column::text("id"),
    ui::table::Column::text("app"),
    ui::table::Column::text("outcome"),
    ui::table::Column::text("started (UTC)"),
    ui::table::Column::figures("downtime"),
    ui::table::Column::figures("duration"),
    ui::table::Column::text("changes").stacking(),
];

/// `upshift runs`.
///
/// # Errors
/// No usable state dir.
pub fn runs(args: &RunsArgs) -> Result<ExitCode, CliError> {
    let state = StateDir::from_env().map_err(CliError::usage)?;
    let rows = history(&state)?;
    if args.json {
        let _ = ui::print_document(&RunsDocument { runs: rows });
        return Ok(ExitCode::Success);
    }
    let ms = |v: i64| crate::units::duration_ms(u64::try_from(v).unwrap_or(0));
    let cells: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            vec![
                r.id,
                r.app,
                r.outcome,
                r.started.get(..19).unwrap_or(&r.started).replace('T', " "),
                r.downtime_ms.map_or("-".into(), ms),
                ms(r.duration_ms),
                r.problem.unwrap_or_else(|| {
                    let mut text = r.changes.join(", ");
                    if r.strategy == crate::playbook::Strategy::LiveSwap.name() {
                        text.push_str(" (live swap)");
                    }
                    if !r.kept.is_empty() {
                        text = format!("{text}; old add-on kept: {}", r.kept.join(", "));
                    }
                    text
                }),
            ]
        })
        .collect();
    outln!(
        "{}",
        ui::table::render(&RUNS_COLUMNS, &cells, ui::table::stdout_width())
    );
    Ok(ExitCode::Success)
}

/// `upshift playbooks`.
pub fn playbooks(args: &PlaybooksArgs) -> ExitCode {
    let builtin = Playbook::builtin();
    let live = Playbook::of_strategy(crate::playbook::Strategy::LiveSwap);
    if args.json {
        let _ = ui::print_json(&vec![builtin, live]);
    } else {
        out!("{builtin}");
        outln!();
        out!("{live}");
        outln!("\nRun your own with --playbook PATH (same format; see playbooks/ in the source).");
    }
    ExitCode::Success
}
