//! The `--json` documents' published schemas (`schema/*.schema.json`): each is exactly what the
//! types generate, and real outputs (in `cli_run` and `verify`) validate against them, with a
//! small checker of the keywords the schemas use.
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
    let errors = violations(&schema, document);
    assert!(
        errors.is_empty(),
        "the {name} document does not match {}:\n{}\n{}",
        path.display(),
        errors.join("\n"),
        pretty(document)
    );
}

/// The keywords schemars emits, which [`check`] knows; any other fails the check instead of
/// being skipped, so a schema cannot pass by using what the checker does not read.
const KNOWN: [&str; 21] = [
    "$defs",
    "$id",
    "$ref",
    "$schema",
    "additionalProperties",
    "anyOf",
    "const",
    "default",
    "description",
    "enum",
    "format",
    "items",
    "maxItems",
    "minItems",
    "minimum",
    "oneOf",
    "prefixItems",
    "properties",
    "required",
    "title",
    "type",
];

/// Every way `value` breaks `schema` (JSON Schema 2020-12, the subset in [`KNOWN`]).
///
/// A validator crate (`jsonschema`) would add about two CPU-minutes of compilation to every
/// clean build of the test suite; the generated schemas use only these keywords.
pub fn violations(schema: &serde_json::Value, value: &serde_json::Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, schema, value, "", &mut errors);
    errors
}

fn type_matches(name: &str, v: &serde_json::Value) -> bool {
    match name {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        _ => false,
    }
}

fn check(
    root: &serde_json::Value,
    schema: &serde_json::Value,
    v: &serde_json::Value,
    at: &str,
    errors: &mut Vec<String>,
) {
    use serde_json::Value;
    let s = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => return errors.push(format!("{at}: nothing is allowed here")),
        Value::Object(s) => s,
        other => return errors.push(format!("{at}: schema {other} is not a schema")),
    };
    let mut fail = |m: String| errors.push(format!("{at}: {m}"));
    if let Some(bad) = s.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        fail(format!("unsupported keyword {bad}"));
    }
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        match r
            .strip_prefix("#/$defs/")
            .and_then(|name| root["$defs"].get(name))
        {
            Some(target) => check(root, target, v, at, errors),
            None => errors.push(format!("{at}: unresolved $ref {r}")),
        }
    }
    let mut fail = |m: String| errors.push(format!("{at}: {m}"));
    match s.get("type") {
        Some(Value::String(t)) if !type_matches(t, v) => fail(format!("{v} is not {t}")),
        Some(Value::Array(ts))
            if !ts
                .iter()
                .any(|t| t.as_str().is_some_and(|t| type_matches(t, v))) =>
        {
            fail(format!("{v} is none of {ts:?}"));
        }
        _ => {}
    }
    if let Some(c) = s.get("const").filter(|c| *c != v) {
        fail(format!("{v} is not {c}"));
    }
    if let Some(options) = s
        .get("enum")
        .and_then(Value::as_array)
        .filter(|e| !e.contains(v))
    {
        fail(format!("{v} is not one of {options:?}"));
    }
    if let (Some(min), Some(n)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64())
        && n < min
    {
        fail(format!("{n} is below {min}"));
    }
    if let Some(items) = v.as_array() {
        let len = items.len() as u64;
        if s.get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            fail(format!("{len} items, fewer than minItems"));
        }
        if s.get("maxItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
        {
            fail(format!("{len} items, more than maxItems"));
        }
        let prefix = s.get("prefixItems").and_then(Value::as_array);
        let first = prefix.map_or(0, Vec::len);
        for (i, item) in items.iter().enumerate() {
            let at = format!("{at}/{i}");
            match prefix.and_then(|p| p.get(i)) {
                Some(p) => check(root, p, item, &at, errors),
                None if i >= first => {
                    if let Some(each) = s.get("items") {
                        check(root, each, item, &at, errors);
                    }
                }
                None => {}
            }
        }
    }
    if let Some(object) = v.as_object() {
        let properties = s.get("properties").and_then(Value::as_object);
        for key in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !key.as_str().is_some_and(|k| object.contains_key(k)) {
                errors.push(format!("{at}: required {key} is missing"));
            }
        }
        for (key, item) in object {
            let at = format!("{at}/{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(p) => check(root, p, item, &at, errors),
                None => {
                    if let Some(extra) = s.get("additionalProperties") {
                        check(root, extra, item, &at, errors);
                    }
                }
            }
        }
    }
    let passing = |list: &Value| {
        list.as_array()
            .into_iter()
            .flatten()
            .filter(|option| {
                let mut e = Vec::new();
                check(root, option, v, at, &mut e);
                e.is_empty()
            })
            .count()
    };
    if let Some(any) = s.get("anyOf")
        && passing(any) == 0
    {
        errors.push(format!("{at}: {v} matches nothing in anyOf"));
    }
    if let Some(one) = s.get("oneOf") {
        let n = passing(one);
        if n != 1 {
            errors.push(format!("{at}: {v} matches {n} of oneOf, not exactly 1"));
        }
    }
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
    let valid = |v: serde_json::Value| violations(&schema, &v).is_empty();
    let row = serde_json::json!({
        "id": "20260101T000000Z-abcd", "app": "a", "changes": ["m=premium-1"],
        "outcome": "succeeded", "started": "2026-01-01T00:00:00Z",
        "downtime_ms": 5, "duration_ms": 9, "strategy": "in-place"
    });
    assert!(valid(serde_json::json!({"version": 1, "runs": []})));
    assert!(valid(
        serde_json::json!({"version": 1, "runs": [row.clone()]})
    ));
    assert!(
        !valid(serde_json::json!({"version": 2, "runs": []})),
        "version is pinned"
    );
    assert!(
        !valid(serde_json::json!({"runs": []})),
        "version is required"
    );
    assert!(!valid(
        serde_json::json!({"version": 1, "runs": [{"id": 1}]})
    ));
    let mut negative = row.clone();
    negative["duration_ms"] = (-1).into();
    assert!(
        valid(serde_json::json!({"version": 1, "runs": [negative]})),
        "i64 in the type"
    );
    let mut wrong = row;
    wrong["downtime_ms"] = "5".into();
    assert!(!valid(serde_json::json!({"version": 1, "runs": [wrong]})));
    // Enums (oneOf of consts) and $refs, on the run's schema; an unknown keyword fails.
    let run_schema = upshift::cli::schema::documents()
        .into_iter()
        .find(|d| d.name == "run")
        .unwrap()
        .schema;
    let run = serde_json::json!({
        "version": 1, "run_id": "r", "app": "a", "outcome": "kept-new-plan", "message": null,
        "addons": [], "downtime_ms": 1, "duration_ms": 2, "journal": "/j"
    });
    assert!(
        violations(&run_schema, &run).is_empty(),
        "{:?}",
        violations(&run_schema, &run)
    );
    let mut bad = run;
    bad["outcome"] = "exploded".into();
    assert!(!violations(&run_schema, &bad).is_empty());
    assert!(!violations(&serde_json::json!({"if": true}), &serde_json::json!(1)).is_empty());
}
