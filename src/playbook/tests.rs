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
action = "wait-drained"
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
    assert_eq!(p.actions(), crate::engine::ALL_ACTIONS[..11].to_vec());
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
    assert_eq!(p.steps.len(), 9);
    assert_eq!(p.params, Params::default());
}

#[test]
fn unknown_key_points_at_it() {
    let text = MINIMAL.replace(
        "action = \"snapshot\"",
        "action = \"snapshot\"\ntimeuot = \"1m\"",
    );
    let e = err(&text);
    assert!(e.starts_with("pb.toml:14:1: unknown key `timeuot`"), "{e}");
}

#[test]
fn unknown_action_lists_the_registry() {
    let e = err(&MINIMAL.replace("\"verify\"", "\"verfy\""));
    assert!(
        e.starts_with("pb.toml:20:10: unknown action \"verfy\""),
        "{e}"
    );
    assert!(e.contains("wait-provisioned"), "{e}");
}

#[test]
fn missing_compensation_says_what_to_write() {
    let e = err(&MINIMAL.replace("compensation = \"settle-plan\"\n", ""));
    assert!(e.starts_with("pb.toml:15:10:"), "{e}");
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
    assert!(e.contains("pb.toml:25:11:"), "{e}");
    assert!(e.contains("invalid type"), "{e}");
}

#[test]
fn bad_duration_names_the_unit() {
    let e = err(&MINIMAL.replace(
        "action = \"verify\"",
        "action = \"verify\"\ntimeout = \"30\"",
    ));
    assert!(e.contains("pb.toml:21:11:"), "{e}");
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
    assert!(e.starts_with("pb.toml:25:16:"), "{e}");
    assert!(e.contains("\"needs-attention\" (exit 4)"), "{e}");
    let e = err(&format!("{MINIMAL}\n[params]\non_watch_hit = \"page\"\n"));
    assert!(e.contains("on_watch_hit \"page\" is unknown"), "{e}");
}

fn without(action: &str) -> String {
    let block = MINIMAL
        .split("[[steps]]")
        .find(|b| b.contains(&format!("action = \"{action}\"\n")))
        .unwrap();
    MINIMAL.replacen(&format!("[[steps]]{block}"), "", 1)
}

#[test]
fn a_playbook_without_its_safety_steps_is_refused() {
    for action in [
        "scale",
        "wait-drained",
        "snapshot",
        "wait-provisioned",
        "verify",
        "restore-formation",
    ] {
        let text = without(action);
        assert!(
            !text.contains(&format!("action = \"{action}\"\n")),
            "{text}"
        );
        let e = err(&text);
        assert!(e.starts_with("pb.toml:"), "{action}: {e}");
        assert!(
            e.contains(&format!("no \"{action}\" step")),
            "{action}: {e}"
        );
    }
}

#[test]
fn writers_are_drained_before_the_snapshot_and_restored_last() {
    // wait-drained after snapshot: writes between them would be lost.
    let swapped = MINIMAL.replace(
        "action = \"wait-drained\"\n[[steps]]\naction = \"snapshot\"",
        "action = \"snapshot\"\n[[steps]]\naction = \"wait-drained\"",
    );
    assert!(err(&swapped).contains("scale, then wait-drained, then snapshot"));
    // A write after restore-formation.
    let late = MINIMAL.replace(
        "[[steps]]\naction = \"scale\"\ncompensation = \"restore-formation\"\n",
        "",
    ) + "[[steps]]\naction = \"scale\"\ncompensation = \"restore-formation\"\n";
    assert!(err(&late).contains("pb.toml:"), "{}", err(&late));
}

#[test]
fn numbers_are_bounded_and_huge_durations_are_errors() {
    let with_timeout = |t: &str| {
        MINIMAL.replace(
            "action = \"verify\"",
            &format!("action = \"verify\"\ntimeout = \"{t}\""),
        )
    };
    for t in [
        "0s",
        "500ms",
        "25h",
        "5124095576030431h",
        "18446744073709551615s18446744073709551615s",
    ] {
        let e = err(&with_timeout(t));
        assert!(e.starts_with("pb.toml:21:11: "), "{t}: {e}");
    }
    assert!(parse(&with_timeout("24h"), "pb.toml").is_ok());
    assert!(parse(&with_timeout("1s"), "pb.toml").is_ok());
    let retry = |r: &str| {
        MINIMAL.replace(
            "action = \"verify\"",
            &format!("action = \"verify\"\nretry = {r}"),
        )
    };
    assert!(err(&retry("{ attempts = 1000000 }")).contains("retry.attempts 1000000"));
    assert!(err(&retry("{ attempts = 2, backoff = \"2h\" }")).contains("retry.backoff"));
    let conns = MINIMAL.replace(
        "name = \"mine\"",
        "name = \"mine\"\n[params]\nconnections_per_dyno = 2147483648",
    );
    assert!(err(&conns).starts_with("pb.toml:"), "{}", err(&conns));
    let conns = MINIMAL.replace(
        "name = \"mine\"",
        "name = \"mine\"\n[params]\nconnections_per_dyno = 0",
    );
    assert!(err(&conns).contains("connections_per_dyno 0 is out of range"));
}

#[test]
fn a_stored_playbook_is_validated_the_same_way() {
    assert!(Playbook::builtin().validate().is_ok());
    let mut p = Playbook::builtin();
    p.steps.retain(|s| s.action != Action::Snapshot);
    let e = p.validate().unwrap_err().to_string();
    assert!(e.contains("no \"snapshot\" step"), "{e}");
    let mut p = Playbook::builtin();
    p.steps[0].timeout = Duration::ZERO;
    assert!(p.validate().unwrap_err().to_string().contains("timeout 0s"));
    let mut p = Playbook::builtin();
    p.params.connections_per_dyno = 2_147_483_648;
    assert!(p.validate().is_err());
    // A stored playbook whose duration overflows is refused while reading, not panicking.
    let mut json = serde_json::to_value(Playbook::builtin()).unwrap();
    json["steps"][0]["timeout"] = "5124095576030431h".into();
    let e = serde_json::from_value::<Playbook>(json)
        .unwrap_err()
        .to_string();
    assert!(e.contains("too large"), "{e}");
}

#[test]
fn compensation_deadline_is_bounded() {
    let with = |d: &str| {
        MINIMAL.replace(
            "name = \"mine\"",
            &format!("name = \"mine\"\n[params]\ncompensation_deadline = \"{d}\""),
        )
    };
    // The default rides out a long rate-limit burst; a value in range is taken as written.
    assert_eq!(
        parse(MINIMAL, "pb.toml")
            .unwrap()
            .params
            .compensation_deadline,
        Duration::from_secs(15 * 60)
    );
    assert_eq!(
        Playbook::builtin().params.compensation_deadline,
        DEFAULT_COMPENSATION_DEADLINE
    );
    let p = parse(&with("2m"), "pb.toml").unwrap();
    assert_eq!(p.params.compensation_deadline, Duration::from_secs(120));
    assert!(parse(&with("1s"), "pb.toml").is_ok());
    assert!(parse(&with("24h"), "pb.toml").is_ok());
    // Out of range or malformed: an error at the value, with the fix.
    let e = err(&with("0s"));
    assert!(
        e.starts_with("pb.toml:4:25: compensation_deadline 0s is out of range"),
        "{e}"
    );
    assert!(e.contains("write between 1s and 24h"), "{e}");
    assert!(err(&with("25h")).contains("compensation_deadline 25h is out of range"));
    assert!(err(&with("500ms")).contains("out of range"));
    assert!(
        err(&with("soon")).starts_with("pb.toml:4:25:"),
        "{}",
        err(&with("soon"))
    );
    // A stored playbook (plan file, journal) gets the same bounds, and an old journal without
    // the field reads with the default.
    let mut p = Playbook::builtin();
    p.params.compensation_deadline = Duration::ZERO;
    let e = p.validate().unwrap_err().to_string();
    assert!(
        e.contains("compensation_deadline 0s is out of range"),
        "{e}"
    );
    let builtin = Playbook::builtin();
    assert!(
        builtin
            .validate_params(
                &Params {
                    compensation_deadline: Duration::from_secs(90_000),
                    ..Params::default()
                },
                []
            )
            .is_err()
    );
    let mut json = serde_json::to_value(Params::default()).unwrap();
    json.as_object_mut()
        .unwrap()
        .remove("compensation_deadline");
    let old: Params = serde_json::from_value(json).unwrap();
    assert_eq!(old.compensation_deadline, DEFAULT_COMPENSATION_DEADLINE);
}

#[test]
fn the_live_swap_playbook_is_valid_and_its_order_is_enforced() {
    let p = Playbook::of_strategy(Strategy::LiveSwap);
    assert_eq!(p.name, LIVE_SWAP_NAME);
    assert_eq!(Strategy::of(&p), Strategy::LiveSwap);
    assert_eq!(Strategy::of(&Playbook::builtin()), Strategy::InPlace);
    assert_eq!(p.params.retire_old, DEFAULT_RETIRE_OLD);
    p.validate().expect("stored form validates too");
    let text = include_str!("../../playbooks/heroku-redis-live-swap.toml");
    // The move before the catch-up: refused.
    let swapped = text
        .replacen("action = \"catch-up\"", "action = \"__x\"", 1)
        .replacen(
            "action = \"move-attachments\"\ncompensation = \"move-back\"",
            "action = \"catch-up\"",
            1,
        );
    let swapped = swapped.replacen(
        "action = \"__x\"",
        "action = \"move-attachments\"\ncompensation = \"move-back\"",
        1,
    );
    let e = parse(&swapped, "pb.toml").unwrap_err().to_string();
    assert!(e.contains("live-swap order"), "{e}");
    // An in-place step in a live swap: refused.
    let mixed = text.replace(
        "[[steps]]\naction = \"retire-old\"",
        "[[steps]]\naction = \"verify\"\n\n[[steps]]\naction = \"retire-old\"",
    );
    let e = parse(&mixed, "pb.toml").unwrap_err().to_string();
    assert!(e.contains("one or the other"), "{e}");
    // A live-swap step in an in-place playbook: refused.
    let builtin = include_str!("../../playbooks/heroku-redis-plan-change.toml");
    let e = parse(
        &format!("{builtin}\n[[steps]]\naction = \"retire-old\"\n"),
        "pb.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("belongs to a live swap"), "{e}");
}

#[test]
fn retire_old_reads_now_never_and_durations() {
    assert_eq!(RetireOld::parse("now"), Ok(RetireOld::Now));
    assert_eq!(RetireOld::parse("never"), Ok(RetireOld::Never));
    assert_eq!(
        RetireOld::parse("2d"),
        Ok(RetireOld::After(std::time::Duration::from_secs(2 * 86_400)))
    );
    let e = RetireOld::parse("soon").unwrap_err();
    assert!(e.contains("\"now\" or \"never\""), "{e}");
    let json =
        serde_json::to_string(&RetireOld::After(std::time::Duration::from_secs(3600))).unwrap();
    assert_eq!(json, "\"1h\"");
    assert_eq!(
        serde_json::from_str::<RetireOld>(&json).unwrap(),
        RetireOld::After(std::time::Duration::from_secs(3600))
    );
}

#[test]
fn settle_is_a_bounded_parameter_with_a_default_for_old_journals() {
    let with = |d: &str| {
        MINIMAL.replace(
            "name = \"mine\"",
            &format!("name = \"mine\"\n[params]\nsettle = \"{d}\""),
        )
    };
    assert_eq!(
        parse(MINIMAL, "pb.toml").unwrap().params.settle,
        DEFAULT_SETTLE
    );
    assert_eq!(
        parse(&with("500ms"), "pb.toml").unwrap().params.settle,
        Duration::from_millis(500)
    );
    let e = err(&with("10ms"));
    assert!(
        e.starts_with("pb.toml:4:10: settle 10ms is out of range: write between 100ms and 10m"),
        "{e}"
    );
    assert!(err(&with("1h")).contains("settle 1h is out of range"));
    let mut p = Playbook::builtin();
    p.params.settle = Duration::ZERO;
    assert!(p.validate().unwrap_err().to_string().contains("settle 0s"));
    let mut json = serde_json::to_value(Params::default()).unwrap();
    json.as_object_mut().unwrap().remove("settle");
    let old: Params = serde_json::from_value(json).unwrap();
    assert_eq!(old.settle, DEFAULT_SETTLE);
}
