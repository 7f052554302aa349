//! The `--json` documents' published schemas (`schema/*.schema.json`): each is exactly what the
//! types generate, and real outputs (in `cli_run` and `verify`) validate against them.
//!
//! After a deliberate change of a document, regenerate the files with
//! `UPSHIFT_BLESS=1 cargo test --features failpoints --test it json_schema` and commit them
//! (raise `ui::JSON_VERSION` when a field was renamed or removed).

use std::path::PathBuf;

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema")
}

fn pretty(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap();
    s.push('\n');
    s
}

/// Asserts that `document` (as printed by a `--json` flag) is valid against the committed
/// schema `schema/{name}.schema.json`, listing every violation.
pub fn assert_valid(name: &str, document: &serde_json::Value) {
    let path = schema_dir().join(format!("{name}.schema.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("{} is not a valid schema: {e}", path.display()));
    let errors: Vec<String> = validator
        .iter_errors(document)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the {name} document does not match {}:\n{}\n{}",
        path.display(),
        errors.join("\n"),
        pretty(document)
    );
}

#[test]
fn committed_schemas_are_the_generated_ones() {
    let dir = schema_dir();
    let bless = std::env::var_os("UPSHIFT_BLESS").is_some_and(|v| v == "1");
    let documents = upshift::cli::schema::documents();
    let mut stale = Vec::new();
    for doc in &documents {
        let path = dir.join(format!("{}.schema.json", doc.name));
        let generated = pretty(&doc.schema);
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &generated).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != generated {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "these schemas differ from what the types generate: {stale:?}; if the change is meant, \
         run `UPSHIFT_BLESS=1 cargo test --features failpoints --test it json_schema` and commit"
    );
    // No schema left behind for a document that no longer exists.
    let mut published: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    published.sort();
    let mut expected: Vec<String> = documents
        .iter()
        .map(|d| format!("{}.schema.json", d.name))
        .collect();
    expected.sort();
    assert_eq!(published, expected);
}

#[test]
fn every_schema_pins_its_version_and_names_durations_in_ms() {
    for doc in upshift::cli::schema::documents() {
        let s = &doc.schema;
        assert_eq!(
            s["properties"]["version"]["const"],
            upshift::ui::JSON_VERSION,
            "{}",
            doc.name
        );
        assert!(
            s["required"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("version")),
            "{}",
            doc.name
        );
        // A duration field is named by its unit: no bare `downtime`, `elapsed`, `_secs`.
        let text = s.to_string();
        for bad in [
            "\"downtime\"",
            "\"duration\"",
            "\"elapsed\"",
            "\"provisioning\"",
            "\"rollback\"",
            "_secs\"",
        ] {
            assert!(!text.contains(bad), "{} names {bad}", doc.name);
        }
    }
    // The checker catches a wrong document.
    let schema = upshift::cli::schema::documents()
        .into_iter()
        .find(|d| d.name == "runs")
        .unwrap()
        .schema;
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&serde_json::json!({"version": 1, "runs": []})));
    assert!(!validator.is_valid(&serde_json::json!({"version": 2, "runs": []})));
    assert!(!validator.is_valid(&serde_json::json!({"version": 1, "runs": [{"id": 1}]})));
}
