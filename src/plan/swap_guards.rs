//! The guards a live swap adds to the in-place ones: pure checks on the captured facts, shown
//! by `plan`, all before anything is written.

use super::RunRequest;
use super::facts::{AddonFacts, Capture, UnreadableReason};
use super::guards::{Guard, GuardId, Verdict, guard};
use crate::plans;
use crate::playbook::RetireOld;

/// Connections the live copy holds on the old add-on while the app runs, at most: the watch's
/// subscriber and its barrier publisher, the live compare's scan and reader, the copier, and a
/// check (every reader of the copy-live step uses one connection).
pub const COPY_CONNECTIONS: u32 = 6;

/// Evaluates the live-swap guards of every found add-on.
pub(super) fn evaluate(request: &RunRequest, capture: &Capture) -> Vec<Guard> {
    let mut out = Vec::new();
    for (_, a) in capture.found_changes(&request.changes) {
        out.push(copy_connections(a));
        out.push(notifications(a));
        out.push(attachments(a, &capture.app));
        out.extend(only_this_app(a, &capture.app));
    }
    out.push(two_addons(request, capture));
    out.extend(retire_now(request, capture));
    out
}

/// The copy runs while the app does: the old add-on needs room for its connections.
fn copy_connections(a: &AddonFacts) -> Guard {
    let label = Some(a.label());
    let limit = plans::find(&a.plan).map(|p| p.max_clients);
    match (&a.redis, &a.redis_error, limit) {
        (_, Some(e), _) if e.reason == UnreadableReason::ConnectionLimit => guard(
            GuardId::CopyConnections,
            label,
            Verdict::Block,
            format!(
                "{} refuses connections now (its plan's limit is reached): the live copy needs \
                 {COPY_CONNECTIONS} while the app runs; use --strategy in-place (it stops the \
                 writers first), or lower the app's connections",
                a.label()
            ),
        ),
        (Some(r), _, Some(limit)) if r.connected_clients + COPY_CONNECTIONS > limit => guard(
            GuardId::CopyConnections,
            label,
            Verdict::Block,
            format!(
                "{} has {} of {limit} connections in use: the live copy needs {COPY_CONNECTIONS} \
                 more while the app runs; use --strategy in-place, or lower the app's connections",
                a.label(),
                r.connected_clients
            ),
        ),
        (Some(r), _, Some(limit)) => guard(
            GuardId::CopyConnections,
            label,
            Verdict::Pass,
            format!(
                "{} of {limit} connections in use; the live copy needs {COPY_CONNECTIONS}",
                r.connected_clients
            ),
        ),
        _ => guard(
            GuardId::CopyConnections,
            label,
            Verdict::Block,
            "the old add-on's connections could not be read, so the live copy's room is unknown; \
             use --strategy in-place"
                .into(),
        ),
    }
}

/// The watch needs keyspace notifications, which Heroku sets through the Data API only.
fn notifications(a: &AddonFacts) -> Guard {
    let label = Some(a.label());
    match &a.redis_config {
        Some(config) => {
            let now = config.notify_keyspace_events.as_deref().unwrap_or("");
            guard(
                GuardId::NotificationsSettable,
                label,
                Verdict::Pass,
                if crate::swap::flags_suffice(now) {
                    format!("notify_keyspace_events is \"{now}\": enough for the watch")
                } else {
                    format!(
                        "notify_keyspace_events is \"{now}\": set to include \"{}\" through the \
                         Data API during the copy, and put back after",
                        crate::swap::KEYSPACE_FLAGS
                    )
                },
            )
        }
        None => guard(
            GuardId::NotificationsSettable,
            label,
            Verdict::Block,
            "the Data API settings could not be read, so keyspace notifications cannot be set for \
             the watch; use --strategy in-place"
                .into(),
        ),
    }
}

/// Every attachment must be known, or an app elsewhere would keep the old add-on.
fn attachments(a: &AddonFacts, app: &str) -> Guard {
    let label = Some(a.label());
    match a.attachments.as_deref() {
        Some(list) if !list.is_empty() => {
            let names: Vec<String> = list
                .iter()
                .map(|x| {
                    if x.app == app {
                        x.name.clone()
                    } else {
                        format!("{} on {}", x.name, x.app)
                    }
                })
                .collect();
            guard(
                GuardId::AttachmentsKnown,
                label,
                Verdict::Pass,
                format!(
                    "{} attachment(s) move to the new add-on under the same names: {}; the \
                     add-on's own name changes",
                    list.len(),
                    names.join(", ")
                ),
            )
        }
        _ => guard(
            GuardId::AttachmentsKnown,
            label,
            Verdict::Block,
            format!(
                "the attachments of {} could not be listed (GET /addons/{{id}}/addon-attachments): \
                 an app left on the old add-on would keep writing there; use --strategy in-place",
                a.name
            ),
        ),
    }
}

/// The live swap stops only this app's writers: an app elsewhere that uses the old add-on keeps
/// writing to it, so the drain never ends (the run rolls back after the writers were stopped
/// for the whole drain timeout), and a write of it that lands between the catch-up and the
/// move would be left behind. Moving its attachment would not help: its dynos are not ours to
/// stop. `None` while the attachments are unknown ([`attachments`] blocks then).
fn only_this_app(a: &AddonFacts, app: &str) -> Option<Guard> {
    let list = a.attachments.as_deref().filter(|l| !l.is_empty())?;
    let others: Vec<String> = list
        .iter()
        .filter(|x| x.app != app)
        .map(|x| format!("{} on {}", x.name, x.app))
        .collect();
    let label = Some(a.label());
    Some(if others.is_empty() {
        guard(
            GuardId::OnlyThisApp,
            label,
            Verdict::Pass,
            format!("{} is attached to {app} only", a.name),
        )
    } else {
        let first = list
            .iter()
            .find(|x| x.app != app)
            .map_or("", |x| x.app.as_str());
        guard(
            GuardId::OnlyThisApp,
            label,
            Verdict::Block,
            format!(
                "{} is also attached to other apps ({}): a live swap stops only {app}'s \
                 writers, theirs keep writing, so the cutover cannot drain it; use --strategy \
                 in-place (attachments stay), or first `heroku addons:detach NAME -a {first}` \
                 and attach the new add-on there after",
                a.name,
                others.join(", ")
            ),
        )
    })
}

/// `--retire-old now` destroys the old add-on as the run's last step: a warning, because the
/// old add-on is the only way back (the attachments can be moved back onto it, its data as the
/// cutover left it) and a problem the app shows hours later would find none.
fn retire_now(request: &RunRequest, capture: &Capture) -> Option<Guard> {
    if request.params.retire_old != RetireOld::Now {
        return None;
    }
    let names: Vec<&str> = capture
        .found_changes(&request.changes)
        .map(|(_, a)| a.name.as_str())
        .collect();
    Some(guard(
        GuardId::RetireOldNow,
        None,
        Verdict::Warn,
        format!(
            "--retire-old now destroys {} right after success: the old add-on is the fallback \
             (the attachments can be moved back onto it), and once destroyed there is no way \
             back; keep it for a while with --retire-old 1d (the default) and `upshift retire` \
             it later",
            names.join(", ")
        ),
    ))
}

/// Two add-ons are billed while both exist, and attachment changes are releases: what that
/// costs, in money (from the platform's plan prices) and in restarts (with or without preboot).
fn two_addons(request: &RunRequest, capture: &Capture) -> Guard {
    // Heroku prorates add-ons by the second against a month's price.
    const MONTH_SECS: f64 = 30.0 * 24.0 * 3600.0;
    let dollars = |cents: u64, secs: f64| cents as f64 / 100.0 * secs / MONTH_SECS;
    let (kept, grace_secs) = match request.params.retire_old {
        RetireOld::Now => ("the old one is destroyed as the last step".to_owned(), 0.0),
        RetireOld::Never => ("the old one is kept until you destroy it".to_owned(), 0.0),
        RetireOld::After(d) => (
            format!(
                "the old one is kept for {} so that you can go back (--retire-old)",
                crate::playbook::duration::format(d)
            ),
            d.as_secs_f64(),
        ),
    };
    let mut costs = Vec::new();
    for (change, a) in capture.found_changes(&request.changes) {
        let to = plans::bare_name(&change.plan);
        match (
            capture.plan_prices.get(to),
            capture.plan_prices.get(&a.plan),
        ) {
            (Some(new), Some(old)) => costs.push(format!(
                "{} on {to} at ${:.2}/month while it is copied into, and {} on {} at ${:.2}/month \
                 kept beside it (about ${:.2} for the grace period)",
                a.label(),
                *new as f64 / 100.0,
                a.name,
                a.plan,
                *old as f64 / 100.0,
                dollars(*old, grace_secs)
            )),
            _ => costs.push(format!("{}: plan prices unknown", a.label())),
        }
    }
    let restarts = match capture.preboot {
        Some(true) => {
            "the app has preboot: the new dynos start before the old ones stop, without a gap"
        }
        Some(false) => {
            "the app has no preboot: running dynos restart with a short gap each time (enable it with `heroku features:enable preboot`)"
        }
        None => "whether the app has preboot could not be read",
    };
    guard(
        GuardId::TwoAddons,
        None,
        Verdict::Pass,
        format!(
            "both add-ons are billed (by the second) from provisioning until the old one goes: \
             {kept}; {}; attaching the new add-on is a release that restarts the running dynos \
             while the app runs, and the move is one more with the writers stopped: {restarts}",
            costs.join("; ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heroku::models::RedisConfigValues;
    use crate::plan::facts::{AddonLookup, AttachmentRef, ChangeRequest, DataPolicy};
    use crate::playbook::{Playbook, Strategy};

    fn request() -> RunRequest {
        let playbook = Playbook::of_strategy(Strategy::LiveSwap);
        RunRequest {
            app: "enketo-demo".into(),
            changes: vec![ChangeRequest {
                addon: "enketo_redis_main".into(),
                plan: "premium-1".into(),
                policy: DataPolicy::Critical,
                connections_per_dyno: None,
            }],
            params: playbook.params.clone(),
            playbook,
        }
    }

    fn main(c: &mut Capture) -> &mut AddonFacts {
        match &mut c.addons[0] {
            AddonLookup::Found(a) => a,
            AddonLookup::Missing { .. } => unreachable!(),
        }
    }

    fn verdict(guards: &[Guard], id: &GuardId) -> Verdict {
        guards
            .iter()
            .find(|g| &g.id == id)
            .map_or_else(|| panic!("no {id} in {guards:?}"), |g| g.verdict)
    }

    #[test]
    fn a_full_old_addon_blocks_the_live_copy_and_room_passes() {
        // The fixture: premium-0 (40 clients) with 40 in use, as Enketo's two web dynos fill it.
        let mut c = crate::plan::fixture::enketo_capture();
        main(&mut c).redis_config = Some(RedisConfigValues::default());
        main(&mut c).attachments = Some(vec![AttachmentRef {
            app: "enketo-demo".into(),
            name: "ENKETO_REDIS_MAIN".into(),
        }]);
        let g = crate::plan::guards::evaluate(&request(), &c);
        assert_eq!(verdict(&g, &GuardId::CopyConnections), Verdict::Block);
        assert_eq!(verdict(&g, &GuardId::NotificationsSettable), Verdict::Pass);
        assert_eq!(verdict(&g, &GuardId::AttachmentsKnown), Verdict::Pass);
        main(&mut c).redis.as_mut().unwrap().connected_clients = 20;
        let g = crate::plan::guards::evaluate(&request(), &c);
        assert_eq!(verdict(&g, &GuardId::CopyConnections), Verdict::Pass);
        // The in-place playbook does not ask.
        let mut in_place = request();
        in_place.playbook = Playbook::builtin();
        let g = crate::plan::guards::evaluate(&in_place, &c);
        assert!(g.iter().all(|x| x.id != GuardId::CopyConnections));
    }

    #[test]
    fn the_cost_of_two_addons_and_the_restarts_are_told_in_figures() {
        let mut c = crate::plan::fixture::enketo_capture();
        c.plan_prices = [
            ("premium-0".to_owned(), 1500),
            ("premium-1".to_owned(), 3000),
        ]
        .into_iter()
        .collect();
        c.preboot = Some(true);
        let g = crate::plan::guards::evaluate(&request(), &c);
        let two = g.iter().find(|g| g.id == GuardId::TwoAddons).unwrap();
        // A day of premium-0 at $15/month: $0.50.
        assert!(two.detail.contains("$30.00/month"), "{}", two.detail);
        assert!(two.detail.contains("about $0.50"), "{}", two.detail);
        assert!(two.detail.contains("has preboot"), "{}", two.detail);
    }

    #[test]
    fn an_addon_other_apps_use_blocks_the_live_swap() {
        let mut c = crate::plan::fixture::enketo_capture();
        main(&mut c).redis.as_mut().unwrap().connected_clients = 2;
        main(&mut c).redis_config = Some(RedisConfigValues::default());
        let here = AttachmentRef {
            app: "enketo-demo".into(),
            name: "ENKETO_REDIS_MAIN".into(),
        };
        main(&mut c).attachments = Some(vec![here.clone()]);
        let g = crate::plan::guards::evaluate(&request(), &c);
        assert_eq!(verdict(&g, &GuardId::OnlyThisApp), Verdict::Pass);
        assert!(!crate::plan::guards::blocked(&g), "{g:#?}");
        main(&mut c).attachments = Some(vec![
            here,
            AttachmentRef {
                app: "enketo-reports".into(),
                name: "REPORTS_REDIS".into(),
            },
        ]);
        let g = crate::plan::guards::evaluate(&request(), &c);
        let only = g.iter().find(|g| g.id == GuardId::OnlyThisApp).unwrap();
        assert_eq!(only.verdict, Verdict::Block);
        for needle in [
            "REPORTS_REDIS on enketo-reports",
            "--strategy in-place",
            "-a enketo-reports",
        ] {
            assert!(only.detail.contains(needle), "{needle}: {}", only.detail);
        }
    }

    #[test]
    fn retiring_the_old_addon_now_warns_that_there_is_no_way_back() {
        let c = crate::plan::fixture::enketo_capture();
        let mut req = request();
        let g = crate::plan::guards::evaluate(&req, &c);
        assert!(g.iter().all(|g| g.id != GuardId::RetireOldNow), "{g:#?}");
        req.params.retire_old = RetireOld::Now;
        let g = crate::plan::guards::evaluate(&req, &c);
        let now = g.iter().find(|g| g.id == GuardId::RetireOldNow).unwrap();
        assert_eq!(now.verdict, Verdict::Warn);
        assert!(now.detail.contains("no way back"), "{}", now.detail);
        assert!(now.detail.contains("redis-cubed-1 "), "{}", now.detail);
    }

    #[test]
    fn unknown_attachments_or_settings_block() {
        let mut c = crate::plan::fixture::enketo_capture();
        main(&mut c).redis.as_mut().unwrap().connected_clients = 2;
        let g = crate::plan::guards::evaluate(&request(), &c);
        assert_eq!(verdict(&g, &GuardId::NotificationsSettable), Verdict::Block);
        assert_eq!(verdict(&g, &GuardId::AttachmentsKnown), Verdict::Block);
        assert!(crate::plan::guards::blocked(&g));
    }
}
