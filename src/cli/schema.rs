//! The registry of `--json` documents and their JSON Schemas, published in `schema/` at the
//! repository root. `tests/it/schema.rs` fails when a committed schema differs from the
//! generated one; `UPSHIFT_BLESS=1 cargo test --test it schema` writes them anew.

use crate::cli::history::RunsDocument;
use crate::cli::verify::DiffJson;
use crate::plan::Plan;
use crate::ui::{RunDocument, schema_of};
use crate::verify::{DigestReport, RestoreSummary, SnapshotSummary};

/// One published document: its schema file `schema/{name}.schema.json` and the schema.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file stem (`run` -> `schema/run.schema.json`).
    pub name: &'static str,
    /// The commands that print it.
    pub commands: &'static str,
    pub schema: serde_json::Value,
}

fn document<T: serde::Serialize + schemars::JsonSchema + 'static>(
    name: &'static str,
    commands: &'static str,
    description: &str,
) -> Document {
    Document {
        name,
        commands,
        schema: schema_of::<T>(
            // A name, not a location: the schemas live in the repository, not at a URL.
            &format!("urn:upshift:schema:{name}:{}", crate::ui::JSON_VERSION),
            &format!("upshift {commands}"),
            description,
        ),
    }
}

/// Every document a `--json` flag prints, with its schema. Pure.
pub fn documents() -> Vec<Document> {
    vec![
        document::<Plan>(
            "plan",
            "plan --json",
            "The dry-run plan: steps, guards with their verdicts, estimates and the captured facts.",
        ),
        document::<RunDocument<'static>>(
            "run",
            "run|resume|rollback --json",
            "A finished run's report; its outcome is also the exit code.",
        ),
        document::<RunsDocument>(
            "runs",
            "runs --json",
            "The runs recorded on this machine, read from their journals.",
        ),
        document::<DigestReport>(
            "digest",
            "digest --json",
            "The digest of a whole Redis database.",
        ),
        document::<DiffJson<'static>>(
            "diff",
            "diff|digest --against-url --json",
            "Every key that differs between a reference (before) and a live database (after).",
        ),
        document::<SnapshotSummary>("snapshot", "snapshot --json", "What a snapshot file holds."),
        document::<RestoreSummary>(
            "restore",
            "restore --json",
            "What a restore wrote, and the differences left afterwards.",
        ),
    ]
}
