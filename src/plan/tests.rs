//! Guards and plan rendering on fixed facts: no network.

use super::facts::{AddonFacts, RedisFacts};
use super::guards::Verdict;
use super::*;
use crate::heroku::models::MaintenanceStatus;

fn addon(name: &str, attachment: &str, plan: &str, used_mb: u64, clients: u32) -> AddonFacts {
    AddonFacts {
        requested_as: attachment.to_lowercase(),
        id: format!("id-{name}"),
        name: name.into(),
        attachment: Some(attachment.into()),
        service: "heroku-redis".into(),
        plan: plan.into(),
        state: "provisioned".into(),
        config_vars: vec![format!("{attachment}_URL")],
        waiting: Some((false, "available".into())),
        maintenance: Some(MaintenanceStatus::None),
        redis: Some(RedisFacts {
            used_memory: used_mb * 1024 * 1024,
            connected_clients: clients,
            version: "7.0.15".into(),
            keys: 30_000,
        }),
        redis_config: None,
        redis_error: None,
        attachments: None,
    }
}

fn capture() -> Capture {
    let mut capture = crate::plan::fixture::enketo_capture();
    capture.app_id = "app-id".into();
    capture.formation[1].size = "standard-2X".into();
    capture.addons = vec![
        AddonLookup::Found(Box::new(addon(
            "redis-cubed-1",
            "ENKETO_REDIS_MAIN",
            "premium-0",
            12,
            52,
        ))),
        AddonLookup::Found(Box::new(addon(
            "redis-round-2",
            "ENKETO_REDIS_CACHE",
            "premium-0",
            8,
            36,
        ))),
    ];
    capture.local_free_bytes = Some(10 * 1024 * 1024 * 1024);
    capture
}

fn request(main_plan: &str, cache_plan: &str) -> RunRequest {
    let playbook = Playbook::builtin();
    RunRequest {
        app: "enketo-demo".into(),
        changes: vec![
            ChangeRequest {
                addon: "enketo_redis_main".into(),
                plan: main_plan.into(),
                policy: DataPolicy::Critical,
                connections_per_dyno: None,
            },
            ChangeRequest {
                addon: "enketo_redis_cache".into(),
                plan: cache_plan.into(),
                policy: DataPolicy::Cache,
                connections_per_dyno: None,
            },
        ],
        params: playbook.params.clone(),
        playbook,
    }
}

fn plan(req: &RunRequest, cap: &Capture) -> Plan {
    build(
        req,
        cap,
        (Duration::from_secs(180), "playbook default".into()),
    )
}

fn verdict(p: &Plan, id: &str, subject: &str) -> (Verdict, String) {
    let g = p
        .guards
        .iter()
        .find(|g| g.id == id && g.subject.as_deref() == Some(subject))
        .unwrap_or_else(|| panic!("no guard {id} for {subject}: {:#?}", p.guards));
    (g.verdict, g.detail.clone())
}

#[test]
fn upgrade_of_both_passes_with_measured_connections() {
    let p = plan(&request("premium-1", "premium-1"), &capture());
    assert!(!p.blocked, "{}", render(&p));
    let (v, d) = verdict(&p, "connections-fit", "ENKETO_REDIS_MAIN");
    assert_eq!(v, Verdict::Pass);
    assert_eq!(
        d,
        "connections after restore: 2 web x 26 + 1 HA standby = 53 <= premium-1 limit 80 (measured: 52 clients less the HA standby / 2 dynos)"
    );
}

/// A premium plan's standby replica takes one of its maxclients: an app that fills the
/// target exactly does not fit once the standby is counted, and on a plan without one it does.
#[test]
fn the_ha_standby_takes_a_connection_slot() {
    let mut cap = capture();
    cap.running.clear();
    cap.steady.clear();
    let mut req = request("premium-1", "premium-1");
    // 2 web x 20 = 40: premium-0's whole limit, and the standby needs one more.
    req.changes[0].plan = "premium-0".into();
    req.changes[0].connections_per_dyno = Some(20);
    if let AddonLookup::Found(a) = &mut cap.addons[0] {
        a.plan = "mini".into();
    }
    let p = plan(&req, &cap);
    let (v, d) = verdict(&p, "connections-fit", "ENKETO_REDIS_MAIN");
    assert_eq!(v, Verdict::Block, "{d}");
    assert_eq!(
        d,
        "connections after restore: 2 web x 20 + 1 HA standby = 41 > premium-0 limit 40 (given)"
    );
    // Measured on an HA plan, the standby's link is not counted as the app's.
    let mut cap = capture();
    if let AddonLookup::Found(a) = &mut cap.addons[0] {
        a.redis.as_mut().unwrap().connected_clients = 41;
    }
    let p = plan(&request("premium-1", "premium-1"), &cap);
    let (_, d) = verdict(&p, "connections-fit", "ENKETO_REDIS_MAIN");
    assert!(
        d.starts_with("connections after restore: 2 web x 20 + 1 HA standby = 41 <= premium-1"),
        "{d}"
    );
}

#[test]
fn connections_that_do_not_fit_block_with_figures() {
    let mut cap = capture();
    cap.running.clear(); // dynos at 0: fall back to the playbook's figure
    cap.steady.clear();
    let mut req = request("premium-1", "mini");
    req.changes[0].plan = "premium-0".into();
    if let AddonLookup::Found(a) = &mut cap.addons[0] {
        a.plan = "mini".into();
    }
    let p = plan(&req, &cap);
    let (v, d) = verdict(&p, "connections-fit", "ENKETO_REDIS_MAIN");
    assert_eq!(v, Verdict::Block);
    assert_eq!(
        d,
        "connections after restore: 2 web x 26 + 1 HA standby = 53 > premium-0 limit 40 (playbook default, not measured: 0 of 2 web dyno(s) up for 30s; measure later with `upshift plan`)"
    );
    let (v, d) = verdict(&p, "connections-fit", "ENKETO_REDIS_CACHE");
    assert_eq!(v, Verdict::Block);
    assert!(d.contains("2 web x 18 = 36 > mini limit 20"), "{d}");
    assert!(p.blocked);
    assert!(render(&p).contains("BLOCKED by 2 guard(s): nothing will be written"));
}

#[test]
fn huge_connection_counts_never_wrap_to_a_pass() {
    let mut cap = capture();
    cap.running.clear();
    let mut req = request("mini", "premium-1");
    // 2 web x 2147483648 wrapped to 0 in u32 arithmetic, which passed mini's limit of 20.
    req.changes[0].connections_per_dyno = Some(2_147_483_648);
    let p = plan(&req, &cap);
    let (v, d) = verdict(&p, "connections-fit", "ENKETO_REDIS_MAIN");
    assert_eq!(v, Verdict::Block, "{d}");
    assert!(
        d.contains("2 web x 2147483648 = 4294967296 > mini limit 20"),
        "{d}"
    );
    req.changes[0].connections_per_dyno = Some(u32::MAX);
    let (v, _) = verdict(&plan(&req, &cap), "connections-fit", "ENKETO_REDIS_MAIN");
    assert_eq!(v, Verdict::Block);
}

#[test]
fn a_downgrade_that_does_not_fit_in_memory_blocks() {
    let mut cap = capture();
    if let AddonLookup::Found(a) = &mut cap.addons[0] {
        a.redis.as_mut().unwrap().used_memory = 30 * 1024 * 1024;
    }
    let mut req = request("mini", "premium-1");
    req.changes[0].connections_per_dyno = Some(5);
    let p = plan(&req, &cap);
    let (v, d) = verdict(&p, "memory-fits", "ENKETO_REDIS_MAIN");
    assert_eq!(v, Verdict::Block);
    assert_eq!(d, "used memory 30.0 MB > mini 25 MB x 0.9 = 22.5 MB");
}

#[test]
fn missing_addon_same_plan_unknown_plan_and_maintenance_block() {
    let mut cap = capture();
    cap.addons[1] = AddonLookup::Missing {
        requested_as: "enketo_redis_cahce".into(),
        message: "not found".into(),
    };
    if let AddonLookup::Found(a) = &mut cap.addons[0] {
        a.maintenance = Some(MaintenanceStatus::Pending);
    }
    let p = plan(&request("premium-0", "premium-1"), &cap);
    assert_eq!(
        verdict(&p, "target-plan-differs", "ENKETO_REDIS_MAIN"),
        (
            Verdict::Block,
            "already on premium-0: nothing to change".into()
        )
    );
    assert_eq!(
        verdict(&p, "addon-exists", "enketo_redis_cahce").0,
        Verdict::Block
    );
    assert_eq!(
        verdict(&p, "no-platform-maintenance", "ENKETO_REDIS_MAIN").0,
        Verdict::Block
    );
    let p = plan(&request("premium-6", "premium-1"), &capture());
    let (v, d) = verdict(&p, "target-plan-exists", "ENKETO_REDIS_MAIN");
    assert_eq!(v, Verdict::Block);
    assert!(d.starts_with("no heroku-redis plan premium-6"), "{d}");
}

#[test]
fn an_unfinished_run_and_an_unknown_writer_block() {
    let mut cap = capture();
    cap.unfinished_runs = vec!["20261125T220000Z-abcd".into()];
    let mut req = request("premium-1", "premium-1");
    req.params.writers = vec!["web".into(), "wroker".into()];
    let p = plan(&req, &cap);
    let blocked: Vec<&str> = p
        .guards
        .iter()
        .filter(|g| g.verdict == Verdict::Block)
        .map(|g| g.id.as_str())
        .collect();
    assert_eq!(blocked, vec!["no-other-run", "writer-exists"]);
}

#[test]
fn steps_mark_downtime_and_the_point_of_no_return() {
    let p = plan(&request("premium-1", "premium-1"), &capture());
    let ponr: Vec<_> = p.steps.iter().filter(|s| s.point_of_no_return).collect();
    assert_eq!(ponr.len(), 1);
    assert_eq!(ponr[0].action, Action::ChangePlan);
    assert_eq!(
        ponr[0].detail,
        "ENKETO_REDIS_MAIN premium-0 -> premium-1; ENKETO_REDIS_CACHE premium-0 -> premium-1"
    );
    let restore = p.steps.iter().find(|s| s.ends_downtime).unwrap();
    assert_eq!(restore.detail, "scale web 0 -> 2 (standard-1X)");
    assert!(
        p.steps
            .iter()
            .find(|s| s.action == Action::Maintenance)
            .unwrap()
            .skipped
    );
}

#[test]
fn rendered_plan_snapshot() {
    let p = plan(&request("premium-1", "premium-1"), &capture());
    insta::assert_snapshot!(render(&p));
}

#[test]
fn a_writer_already_at_zero_blocks_unless_allowed() {
    let mut cap = capture();
    for p in &mut cap.formation {
        if p.process_type == "web" {
            p.quantity = 0;
        }
    }
    let mut req = request("premium-1", "premium-1");
    let p = plan(&req, &cap);
    let (v, d) = verdict(&p, "writers-running", "web");
    assert_eq!(v, Verdict::Block, "{d}");
    assert!(d.contains("--allow-stopped-writers"), "{d}");
    assert!(crate::plan::guards::blocked(&p.guards));
    req.params.allow_stopped_writers = true;
    let p = plan(&req, &cap);
    assert_eq!(verdict(&p, "writers-running", "web").0, Verdict::Warn);
    assert!(!crate::plan::guards::blocked(&p.guards));
}

#[test]
fn dynos_that_just_started_are_not_measured() {
    let mut cap = capture();
    // Two web dynos, one of them up for less than the steady age: it holds a connection or
    // two, and 53 / 2 would read as 27 per dyno while the app opens 26 + what the new one will.
    cap.steady = vec![("web".into(), 1)];
    let p = plan(&request("premium-1", "premium-1"), &cap);
    let (v, d) = verdict(&p, "connections-fit", "ENKETO_REDIS_MAIN");
    assert_eq!(v, Verdict::Pass, "{d}");
    assert!(
        d.contains("playbook default, not measured: 1 of 2 web dyno(s) up for 30s"),
        "{d}"
    );
}

#[test]
fn a_missing_addon_listed_first_does_not_shift_the_pairs() {
    let mut cap = capture();
    // main was not found; the cache (second) was.
    cap.addons[0] = AddonLookup::Missing {
        requested_as: "enketo_redis_main".into(),
        message: "Couldn't find that add on.".into(),
    };
    let req = request("premium-1", "premium-2");
    let pairs: Vec<(&str, &str)> = cap
        .found_changes(&req.changes)
        .map(|(c, a)| (c.addon.as_str(), a.name.as_str()))
        .collect();
    assert_eq!(pairs, vec![("enketo_redis_cache", "redis-round-2")]);
    assert_eq!(
        crate::runner::history::plan_pairs(&req, &cap),
        vec![("premium-0".to_owned(), "premium-2".to_owned())]
    );
}

#[test]
fn the_url_var_is_the_attachment_s_whatever_its_case() {
    let vars = vec![
        "HEROKU_REDIS_RED_URL".to_owned(),
        "ENKETO_REDIS_MAIN_URL".to_owned(),
    ];
    assert_eq!(
        facts::url_var(&vars, Some("enketo_redis_main")).as_deref(),
        Some("ENKETO_REDIS_MAIN_URL")
    );
    assert_eq!(
        facts::url_var(&vars, Some("OTHER")).as_deref(),
        Some("HEROKU_REDIS_RED_URL")
    );
    assert_eq!(facts::url_var(&[], Some("X")), None);
}

#[test]
fn a_plan_file_with_the_old_bare_error_string_still_reads() {
    use super::facts::{RedisUnreadable, UnreadableReason};
    let old: RedisUnreadable = serde_json::from_str(r#""connect: timed out""#).unwrap();
    assert_eq!(old.reason, UnreadableReason::Other);
    assert_eq!(old.detail, "connect: timed out");
    let typed = RedisUnreadable::new(UnreadableReason::ConnectionLimit, "ERR max clients");
    let back: RedisUnreadable =
        serde_json::from_str(&serde_json::to_string(&typed).unwrap()).unwrap();
    assert_eq!(back, typed);
}

/// Plan files saved before the estimates were named `…_ms` (`downtime`, `provisioning`, `run`,
/// `rollback`) still load, their hash still holds and still catches an edit, and
/// `--plan-hash` still names them; new files carry only the `_ms` names.
#[test]
fn plan_files_with_the_old_estimate_names_still_load_and_their_hash_still_holds() {
    use crate::unattended::plan_file::{PlanFile, PlanFileError, content_hash};
    let req = request("premium-1", "premium-0");
    let plan = build(
        &req,
        &capture(),
        (Duration::from_secs(120), "playbook default".into()),
    );
    let dir = tempfile::tempdir().unwrap();
    let new_path = dir.path().join("new.json");
    let new_hash = PlanFile::new(req, plan.clone(), None, jiff::Timestamp::UNIX_EPOCH)
        .save(&new_path)
        .unwrap();
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&new_path).unwrap()).unwrap();
    let estimate = json["plan"]["estimate"].as_object().unwrap().clone();
    for name in ["downtime", "provisioning", "run", "rollback"] {
        assert!(estimate.contains_key(&format!("{name}_ms")), "{estimate:?}");
        assert!(!estimate.contains_key(name), "{estimate:?}");
    }
    assert_eq!(PlanFile::load(&new_path).unwrap().plan, plan);

    // The same file as an earlier upshift wrote and sealed it.
    let old = json["plan"]["estimate"].as_object_mut().unwrap();
    for name in ["downtime", "provisioning", "run", "rollback"] {
        let v = old.remove(&format!("{name}_ms")).unwrap();
        old.insert(name.into(), v);
    }
    json["hash"] = content_hash(&json).into();
    let old_hash = json["hash"].as_str().unwrap().to_owned();
    assert_ne!(old_hash, new_hash);
    let old_path = dir.path().join("old.json");
    std::fs::write(&old_path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let loaded = PlanFile::load_reviewed(&old_path, Some(&old_hash)).unwrap();
    assert_eq!(
        loaded.plan, plan,
        "the old names read back to the same plan"
    );
    assert!(matches!(
        PlanFile::load_reviewed(&old_path, Some(&new_hash)),
        Err(PlanFileError::NotReviewed { .. })
    ));
    // An edit of an old file is caught like any other.
    json["plan"]["estimate"]["downtime"] = 1.into();
    std::fs::write(&old_path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    assert!(matches!(
        PlanFile::load(&old_path),
        Err(PlanFileError::Tampered { .. })
    ));
}
