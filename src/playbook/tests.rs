//! Playbook validation: each error names the place and the fix.

use super::*;

const MINIMAL: &str = r#"
name = "mine"
[[steps]]
action = "capture"
[[steps]]
action = "guard"
[[steps]]
action = "scale"
compensation = "restore-formation"
[[steps]]
action = "snapshot"
[[steps]]
action = "change-plan"
compensation = "settle-plan"
[[steps]]
action = "wait-provisioned"
[[steps]]
action = "verify"
[[steps]]
action = "restore-formation"
"#;

fn err(text: &str) -> String {
    parse(text, "pb.toml").unwrap_err().to_string()
}

#[test]
fn builtin_is_valid_and_complete() {
    let p = Playbook::builtin();
    assert_eq!(p.name, BUILTIN_NAME);
    assert_eq!(p.actions(), crate::engine::ALL_ACTIONS.to_vec());
    assert_eq!(p.params.writers, vec!["web".to_string()]);
    assert_eq!(
        p.step(Action::WaitProvisioned).unwrap().timeout,
        Duration::from_secs(45 * 60)
    );
    assert_eq!(p.step(Action::RestoreFormation).unwrap().retry.attempts, 5);
}

#[test]
fn minimal_playbook_parses() {
    let p = parse(MINIMAL, "pb.toml").unwrap();
    assert_eq!(p.steps.len(), 8);
    assert_eq!(p.params, Params::default());
}

#[test]
fn unknown_key_points_at_it() {
    let text = MINIMAL.replace(
        "action = \"snapshot\"",
        "action = \"snapshot\"\ntimeuot = \"1m\"",
    );
    let e = err(&text);
    assert!(e.starts_with("pb.toml:12:1: unknown key `timeuot`"), "{e}");
}

#[test]
fn unknown_action_lists_the_registry() {
    let e = err(&MINIMAL.replace("\"verify\"", "\"verfy\""));
    assert!(
        e.starts_with("pb.toml:18:10: unknown action \"verfy\""),
        "{e}"
    );
    assert!(e.contains("wait-provisioned"), "{e}");
}

#[test]
fn missing_compensation_says_what_to_write() {
    let e = err(&MINIMAL.replace("compensation = \"settle-plan\"\n", ""));
    assert!(e.starts_with("pb.toml:13:10:"), "{e}");
    assert!(e.contains("add compensation = \"settle-plan\""), "{e}");
}

#[test]
fn wrong_compensation_is_refused() {
    let e = err(&MINIMAL.replace(
        "compensation = \"restore-formation\"",
        "compensation = \"settle-plan\"",
    ));
    assert!(e.contains("pb.toml:9:16:"), "{e}");
    assert!(
        e.contains("write compensation = \"restore-formation\""),
        "{e}"
    );
}

#[test]
fn ill_typed_parameter_is_refused() {
    let e = err(&format!("{MINIMAL}\n[params]\nwriters = \"web\"\n"));
    assert!(e.contains("pb.toml:23:11:"), "{e}");
    assert!(e.contains("invalid type"), "{e}");
}

#[test]
fn bad_duration_names_the_unit() {
    let e = err(&MINIMAL.replace(
        "action = \"verify\"",
        "action = \"verify\"\ntimeout = \"30\"",
    ));
    assert!(e.contains("pb.toml:19:11:"), "{e}");
    assert!(e.contains("\"30s\""), "{e}");
}

#[test]
fn writes_before_guards_are_refused() {
    let text =
        MINIMAL.replace("[[steps]]\naction = \"guard\"\n", "") + "[[steps]]\naction = \"guard\"\n";
    let e = err(&text);
    assert!(e.contains("writes before \"guard\""), "{e}");
}

#[test]
fn missing_required_fields_are_named() {
    let e = err("description = \"x\"\n");
    assert!(e.contains("missing field"), "{e}");
}

#[test]
fn unknown_builtin_name_says_which_exist() {
    let e = Playbook::load("nope").unwrap_err().to_string();
    assert!(e.contains(BUILTIN_NAME), "{e}");
}

#[test]
fn line_col_counts_from_one() {
    assert_eq!(line_col("ab\ncd", 0), (1, 1));
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
}

#[test]
fn on_watch_hit_is_notify_needs_attention_or_an_explained_refusal() {
    assert_eq!(Params::default().on_watch_hit, OnWatchHit::Notify);
    let p = parse(
        &format!("{MINIMAL}\n[params]\non_watch_hit = \"needs-attention\"\n"),
        "pb.toml",
    )
    .unwrap();
    assert_eq!(p.params.on_watch_hit, OnWatchHit::NeedsAttention);
    let e = err(&format!(
        "{MINIMAL}\n[params]\non_watch_hit = \"rollback\"\n"
    ));
    assert!(e.starts_with("pb.toml:23:16:"), "{e}");
    assert!(e.contains("\"needs-attention\" (exit 4)"), "{e}");
    let e = err(&format!("{MINIMAL}\n[params]\non_watch_hit = \"page\"\n"));
    assert!(e.contains("on_watch_hit \"page\" is unknown"), "{e}");
}
