//! What the wizard offers, as data: one row per heroku-redis add-on (plan, memory and
//! connections against the plan's limits), and per add-on every catalog plan with whether it
//! can be chosen and, when not, the guard that refuses it. Pure: built from a [`Capture`] and
//! the same [`guards::evaluate`] that `plan` and `run` use, so the wizard never offers a plan
//! that `run` would then block.

use std::fmt::Write as _;

use crate::plan::RunRequest;
use crate::plan::facts::{
    AddonFacts, AddonLookup, Capture, ChangeRequest, DataPolicy, UnreadableReason,
};
use crate::plan::guards::{self, GuardId, Verdict};
use crate::plans::{self, Plan};

/// One heroku-redis add-on as the wizard lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonRow {
    /// Attachment name when there is one (`ENKETO_REDIS_MAIN`), else the add-on name.
    pub label: String,
    /// What to pass as `--change ADDON=…` (the name the capture resolved it by).
    pub requested_as: String,
    /// Globally unique add-on name.
    pub name: String,
    pub plan: String,
    pub used_memory: Option<u64>,
    pub plan_memory: Option<u64>,
    /// Clients other than upshift.
    pub clients: Option<u32>,
    pub max_clients: Option<u32>,
    /// Why the Redis figures are missing, in words for the table.
    pub note: Option<String>,
}

impl AddonRow {
    /// The row from captured facts.
    pub fn from_facts(a: &AddonFacts) -> Self {
        let plan = plans::find(&a.plan);
        let note = a.redis_error.as_ref().map(|e| match e.reason {
            UnreadableReason::ConnectionLimit => {
                "FULL: refuses connections (max number of clients reached)".to_owned()
            }
            // A server at maxclients answers the error and hangs up; the client often sees
            // only the hang-up.
            UnreadableReason::HungUp => {
                "FULL?: hangs up on new connections (as at its connection limit)".to_owned()
            }
            UnreadableReason::NoUrl | UnreadableReason::BadUrl | UnreadableReason::Other => {
                format!("Redis not readable: {}", e.detail)
            }
            UnreadableReason::ForeignServer => "NOT ITS SERVER: another add-on's".to_owned(),
        });
        Self {
            label: a.label().to_owned(),
            requested_as: a.requested_as.clone(),
            name: a.name.clone(),
            plan: a.plan.clone(),
            used_memory: a.redis.as_ref().map(|r| r.used_memory),
            plan_memory: plan.map(|p| p.memory_bytes),
            clients: a.redis.as_ref().map(|r| r.connected_clients),
            max_clients: plan.map(|p| p.max_clients),
            note,
        }
    }

    /// One line: label, name, plan, memory used/limit, clients/limit, and the note.
    /// The row's cells for the wizard's table: add-on, name, plan, memory, clients, note.
    pub fn cells(&self) -> Vec<String> {
        let (memory, clients) = self.figures();
        vec![
            self.label.clone(),
            self.name.clone(),
            self.plan.clone(),
            memory,
            clients,
            self.note.clone().unwrap_or_default(),
        ]
    }

    /// `used / plan` memory and `clients / limit`, `?` where unknown.
    fn figures(&self) -> (String, String) {
        let memory = format!(
            "{} / {}",
            self.used_memory.map_or_else(|| "?".to_owned(), bytes),
            self.plan_memory.map_or_else(|| "?".to_owned(), bytes)
        );
        let clients = format!(
            "{} / {}",
            self.clients
                .map_or_else(|| "?".to_owned(), |c| c.to_string()),
            self.max_clients
                .map_or_else(|| "?".to_owned(), |c| c.to_string())
        );
        (memory, clients)
    }

    /// The row on one line.
    pub fn render(&self) -> String {
        let (memory, clients) = self.figures();
        let mut out = format!(
            "{:<20} {:<20} {:<10} mem {:<20} clients {clients}",
            self.label, self.name, self.plan, memory
        );
        if let Some(note) = &self.note {
            let _ = write!(out, "  {note}");
        }
        out
    }
}

/// The heroku-redis add-ons of a capture, as table rows sorted by label (others are left out).
pub fn addon_rows(capture: &Capture) -> Vec<AddonRow> {
    let mut rows: Vec<AddonRow> = capture
        .found()
        .filter(|a| a.service == plans::HEROKU_REDIS)
        .map(AddonRow::from_facts)
        .collect();
    // The platform's order is not stable; a list that reorders between runs trips people up.
    rows.sort_by(|a, b| a.label.cmp(&b.label));
    rows
}

/// Whether a plan can be chosen for an add-on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// The add-on is on this plan now.
    Current,
    /// Every guard about this add-on passes (warnings are listed).
    Allowed { warnings: Vec<String> },
    /// Guards block it; their own figures say why (the connection guard first).
    Blocked { reasons: Vec<String> },
}

/// One catalog plan offered for one add-on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanChoice {
    pub plan: Plan,
    pub availability: Availability,
}

impl PlanChoice {
    /// Whether the wizard accepts it.
    pub fn choosable(&self) -> bool {
        matches!(self.availability, Availability::Allowed { .. })
    }

    /// One line for the selection list.
    pub fn render(&self) -> String {
        let head = format!(
            "{:<12} {:>7} {:>6} clients",
            self.plan.name,
            bytes(self.plan.memory_bytes),
            self.plan.max_clients
        );
        match &self.availability {
            Availability::Current => format!("{head}  (current plan)"),
            Availability::Allowed { warnings } if warnings.is_empty() => head,
            Availability::Allowed { warnings } => format!("{head}  warn: {}", warnings.join("; ")),
            Availability::Blocked { reasons } => {
                // The first reason; the display fits the line to the terminal (a wrapped item
                // would break the list's redraw). All the reasons are printed when someone
                // picks it anyway.
                let first = reasons.first().map_or("", String::as_str);
                let more = if reasons.len() > 1 { " (and more)" } else { "" };
                format!("{head}  cannot be chosen: {first}{more}")
            }
        }
    }
}

/// The plans offered for an add-on on `current`: its own family, plus mini beside premium.
pub fn offered_plans(current: &str) -> Vec<Plan> {
    let family = plans::find(current).map_or("premium", |p| plans::family(&p));
    plans::all()
        .filter(|p| {
            let f = plans::family(p);
            f == family
                || (f == "mini" && family == "premium")
                || (family == "mini" && f == "premium")
        })
        .collect()
}

/// Every offered plan for the add-on labelled `label`, judged by the guards as if the request
/// changed only that add-on to it. Guards that are not about the add-on (another run, disk
/// space, unknown writers) are left out: they block every plan alike and the plan review shows
/// them. `None` when the capture has no such add-on.
pub fn plan_choices(base: &RunRequest, capture: &Capture, label: &str) -> Option<Vec<PlanChoice>> {
    let (lookup, addon) = capture.addons.iter().find_map(|l| match l {
        AddonLookup::Found(a) if a.label() == label => Some((l, a.as_ref())),
        _ => None,
    })?;
    let template = base
        .changes
        .iter()
        .find(|c| c.addon == addon.requested_as)
        .cloned()
        .unwrap_or(ChangeRequest {
            addon: addon.requested_as.clone(),
            plan: addon.plan.clone(),
            policy: DataPolicy::Critical,
            connections_per_dyno: None,
        });
    let single = Capture {
        addons: vec![lookup.clone()],
        ..capture.clone()
    };
    let choices = offered_plans(&addon.plan)
        .into_iter()
        .map(|plan| {
            if plan.name == addon.plan {
                return PlanChoice {
                    plan,
                    availability: Availability::Current,
                };
            }
            let request = RunRequest {
                changes: vec![ChangeRequest {
                    plan: plan.name.to_owned(),
                    ..template.clone()
                }],
                ..base.clone()
            };
            let about: Vec<_> = guards::evaluate(&request, &single)
                .into_iter()
                .filter(|g| g.subject.as_deref() == Some(label))
                .collect();
            let mut blocking: Vec<_> = about
                .iter()
                .filter(|g| g.verdict == Verdict::Block)
                .collect();
            blocking.sort_by_key(|g| g.id != GuardId::ConnectionsFit);
            let blocks: Vec<String> = blocking.iter().map(|g| g.detail.clone()).collect();
            let availability = if blocks.is_empty() {
                Availability::Allowed {
                    warnings: about
                        .iter()
                        .filter(|g| g.verdict == Verdict::Warn && g.id != GuardId::RedisReachable)
                        .map(|g| g.detail.clone())
                        .collect(),
                }
            } else {
                Availability::Blocked { reasons: blocks }
            };
            PlanChoice { plan, availability }
        })
        .collect();
    Some(choices)
}

/// The plan the wizard puts the cursor on: the smallest choosable plan bigger than the
/// current one, else the first choosable one.
pub fn suggested(choices: &[PlanChoice]) -> Option<usize> {
    let current = choices
        .iter()
        .find(|c| c.availability == Availability::Current)
        .map(|c| c.plan.rank);
    choices
        .iter()
        .position(|c| c.choosable() && current.is_none_or(|r| c.plan.rank > r))
        .or_else(|| choices.iter().position(PlanChoice::choosable))
}

/// Process types the wizard offers as writers, each with whether it is pre-selected (it has
/// dynos running, or at least a quantity above zero).
pub fn writer_choices(capture: &Capture) -> Vec<(String, bool)> {
    capture
        .formation
        .iter()
        .map(|p| {
            (
                p.process_type.clone(),
                capture.running(&p.process_type) > 0 || p.quantity > 0,
            )
        })
        .collect()
}

/// The `upshift run` command line that does what the wizard's answers ask, unattended.
pub fn command_line(request: &RunRequest) -> String {
    let mut out = format!("upshift run -a {}", request.app);
    for c in &request.changes {
        let _ = write!(out, " --change {}={}", c.addon, c.plan);
    }
    for c in request
        .changes
        .iter()
        .filter(|c| c.policy == DataPolicy::Cache)
    {
        let _ = write!(out, " --cache {}", c.addon);
    }
    if request.params.writers != request.playbook.params.writers {
        let _ = write!(out, " --writers {}", request.params.writers.join(","));
    }
    if request.params.maintenance && !request.playbook.params.maintenance {
        out.push_str(" --maintenance");
    }
    if request.params.allow_stopped_writers {
        out.push_str(" --allow-stopped-writers");
    }
    if crate::playbook::Strategy::of(&request.playbook) == crate::playbook::Strategy::LiveSwap {
        out.push_str(" --strategy live-swap");
        if request.params.retire_old != request.playbook.params.retire_old {
            let _ = write!(out, " --retire-old {}", request.params.retire_old);
        }
    }
    let _ = write!(out, " --confirm {}", request.app);
    out
}

/// What to watch after a change: per add-on, the connection and memory headroom on the plan
/// it is on now, from a capture taken after the run.
pub fn headroom(capture: &Capture) -> Vec<String> {
    capture
        .found()
        .filter(|a| a.service == plans::HEROKU_REDIS)
        .map(|a| {
            let Some(plan) = plans::find(&a.plan) else {
                return format!("{}: on {} (not in the catalog)", a.label(), a.plan);
            };
            match &a.redis {
                Some(r) => {
                    let free = plan.max_clients.saturating_sub(r.connected_clients);
                    let pct = r.used_memory as f64 * 100.0 / plan.memory_bytes as f64;
                    format!(
                        "{}: {} of {} connections in use ({free} free), memory {} of {} ({pct:.0}%)",
                        a.label(),
                        r.connected_clients,
                        plan.max_clients,
                        bytes(r.used_memory),
                        bytes(plan.memory_bytes)
                    )
                }
                None => format!(
                    "{}: on {} ({} connections, {}); Redis not readable now: {}",
                    a.label(),
                    plan.name,
                    plan.max_clients,
                    bytes(plan.memory_bytes),
                    a.redis_error.as_ref().map_or("unknown", |e| e.detail.as_str())
                ),
            }
        })
        .collect()
}

pub use crate::units::bytes;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::facts::{RedisFacts, RedisUnreadable};
    use crate::playbook::Playbook;

    fn addon(
        label: &str,
        name: &str,
        redis: Option<RedisFacts>,
        error: Option<(UnreadableReason, &str)>,
    ) -> AddonFacts {
        AddonFacts {
            requested_as: label.to_lowercase(),
            id: format!("id-{name}"),
            name: name.into(),
            attachment: Some(label.into()),
            service: "heroku-redis".into(),
            plan: "premium-0".into(),
            state: "provisioned".into(),
            config_vars: vec![format!("{label}_URL")],
            waiting: Some((false, "available".into())),
            maintenance: None,
            redis,
            redis_config: None,
            redis_error: error.map(|(reason, detail)| RedisUnreadable::new(reason, detail)),
            attachments: None,
        }
    }

    /// The Enketo deployment: main is full (2 x 26 > 40), cache holds 2 x 18.
    fn enketo() -> Capture {
        let mut capture = crate::plan::fixture::enketo_capture();
        capture.addons = vec![
            AddonLookup::Found(Box::new(addon(
                "ENKETO_REDIS_MAIN",
                "redis-cubed-12345",
                None,
                Some((
                    UnreadableReason::ConnectionLimit,
                    "connect: ERR max number of clients reached",
                )),
            ))),
            AddonLookup::Found(Box::new(addon(
                "ENKETO_REDIS_CACHE",
                "redis-sinuous-67890",
                Some(RedisFacts {
                    used_memory: 3 * 1024 * 1024,
                    connected_clients: 36,
                    version: "7.0.15".into(),
                    keys: 10_000,
                }),
                None,
            ))),
        ];
        capture.local_free_bytes = Some(10 * 1024 * 1024 * 1024);
        capture.captured_at = "2026-01-01T00:00:00Z".into();
        capture
    }

    fn base() -> RunRequest {
        let playbook = Playbook::builtin();
        RunRequest {
            app: "enketo-demo".into(),
            changes: vec![],
            params: playbook.params.clone(),
            playbook,
        }
    }

    #[test]
    fn rows_show_figures_and_a_full_server() {
        let rows = addon_rows(&enketo());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].label, "ENKETO_REDIS_CACHE");
        let rows = [rows[1].clone(), rows[0].clone()];
        assert!(
            rows[0].render().contains("FULL: refuses connections"),
            "{}",
            rows[0].render()
        );
        assert_eq!(rows[1].clients, Some(36));
        assert!(
            rows[1].render().contains("3 MB / 50 MB"),
            "{}",
            rows[1].render()
        );
        assert!(
            rows[1].render().contains("clients 36 / 40"),
            "{}",
            rows[1].render()
        );
    }

    #[test]
    fn too_small_plans_are_refused_with_the_guards_figures() {
        let choices = plan_choices(&base(), &enketo(), "ENKETO_REDIS_MAIN").unwrap();
        let find = |n: &str| choices.iter().find(|c| c.plan.name == n).unwrap();
        assert_eq!(find("premium-0").availability, Availability::Current);
        match &find("mini").availability {
            Availability::Blocked { reasons } => {
                assert!(
                    reasons[0].contains("2 web x 26 = 52 > mini limit 20"),
                    "{reasons:?}"
                );
                assert!(reasons[1].contains("downgrade to mini needs the used memory"));
            }
            other => panic!("mini should be blocked: {other:?}"),
        }
        assert!(find("premium-1").choosable());
        assert!(!choices.iter().any(|c| plans::family(&c.plan) == "shield"));
        let s = suggested(&choices).unwrap();
        assert_eq!(choices[s].plan.name, "premium-1");
        assert!(find("mini").render().contains("cannot be chosen"));
        assert!(find("premium-0").render().contains("(current plan)"));
    }

    #[test]
    fn the_measured_connections_decide_for_the_cache() {
        let choices = plan_choices(&base(), &enketo(), "ENKETO_REDIS_CACHE").unwrap();
        let mini = choices.iter().find(|c| c.plan.name == "mini").unwrap();
        match &mini.availability {
            Availability::Blocked { reasons } => {
                assert_eq!(
                    reasons,
                    &vec![
                        "connections after restore: 2 web x 18 = 36 > mini limit 20 (measured: 36 clients less the HA standby / 2 dynos)"
                            .to_owned()
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(plan_choices(&base(), &enketo(), "NOPE").is_none());
    }

    /// What the wizard shows for Enketo: the add-on table and main's plan list.
    #[test]
    fn wizard_lists_snapshot() {
        let capture = enketo();
        let mut out: Vec<String> = addon_rows(&capture).iter().map(AddonRow::render).collect();
        out.push(String::new());
        for label in ["ENKETO_REDIS_MAIN", "ENKETO_REDIS_CACHE"] {
            out.push(format!("New plan for {label}:"));
            let choices = plan_choices(&base(), &capture, label).unwrap();
            let pick = suggested(&choices).unwrap();
            for (i, c) in choices.iter().enumerate() {
                let cursor = if i == pick { ">" } else { " " };
                out.push(format!("{cursor} {}", c.render()));
            }
        }
        insta::assert_snapshot!(out.join("\n"));
    }

    /// The wizard's table and plan lists at 60 and 120 columns: every line fits, cut at a
    /// word, a row too wide keeping its mark, so nothing wraps and a redraw leaves no ghost lines.
    #[test]
    fn wizard_lists_fit_60_and_120_columns() {
        let capture = enketo();
        let rows = addon_rows(&capture);
        for width in [60_u16, 120] {
            let mut out = vec![crate::ui::table::addon_table(&rows, Some(width))];
            let choices = plan_choices(&base(), &capture, "ENKETO_REDIS_MAIN").unwrap();
            // dialoguer draws "> " (or "  ") before each item.
            for item in crate::ui::table::plan_items(&choices, Some(width)) {
                out.push(format!("> {item}"));
            }
            let out = out.join("\n");
            for line in out.lines() {
                assert!(
                    console::measure_text_width(line) <= usize::from(width),
                    "{width}: {line:?}"
                );
            }
            insta::assert_snapshot!(format!("wizard_lists_{width}"), out);
        }
    }

    /// At 20 and 40 columns the marks stay on the items and the reasons go above the list,
    /// wrapped: no line is wider than the terminal and no reason is cut away.
    #[test]
    fn narrow_plan_lists_keep_their_marks_and_reasons() {
        let capture = enketo();
        let choices = plan_choices(&base(), &capture, "ENKETO_REDIS_MAIN").unwrap();
        let Availability::Blocked { reasons } = &choices[0].availability else {
            panic!("mini is blocked: {:?}", choices[0]);
        };
        for width in [20_u16, 40] {
            let items = crate::ui::table::plan_items(&choices, Some(width));
            let notes = crate::ui::table::plan_notes(&choices, Some(width)).expect("notes");
            for line in items
                .iter()
                .map(|i| format!("> {i}"))
                .chain(notes.lines().map(str::to_owned))
            {
                assert!(
                    console::measure_text_width(&line) <= usize::from(width),
                    "{width}: {line:?}"
                );
            }
            assert!(
                items[0].starts_with("mini (") && items[0].ends_with(')'),
                "{items:?}"
            );
            assert!(items[1].starts_with("premium-0 ("), "{items:?}");
            assert!(!items.iter().any(|i| i.contains('…')), "{items:?}");
            let joined = notes.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(joined.contains("premium-0: the current plan"), "{notes}");
            let reason = reasons[0].split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                joined.contains(&format!("mini: cannot be chosen: {reason}")),
                "{notes}"
            );
        }
        // Wide enough: the rows as they are, nothing above the list.
        assert_eq!(crate::ui::table::plan_notes(&choices, Some(200)), None);
        assert_eq!(crate::ui::table::plan_notes(&choices, None), None);
    }

    #[test]
    fn writers_with_dynos_are_preselected() {
        assert_eq!(
            writer_choices(&enketo()),
            vec![("web".to_owned(), true), ("worker".to_owned(), false)]
        );
    }

    #[test]
    fn the_command_line_repeats_the_answers() {
        let mut r = base();
        r.changes = vec![
            ChangeRequest {
                addon: "enketo_redis_main".into(),
                plan: "premium-1".into(),
                policy: DataPolicy::Critical,
                connections_per_dyno: None,
            },
            ChangeRequest {
                addon: "enketo_redis_cache".into(),
                plan: "premium-1".into(),
                policy: DataPolicy::Cache,
                connections_per_dyno: None,
            },
        ];
        r.params.writers = vec!["web".into(), "worker".into()];
        assert_eq!(
            command_line(&r),
            "upshift run -a enketo-demo --change enketo_redis_main=premium-1 --change enketo_redis_cache=premium-1 --cache enketo_redis_cache --writers web,worker --confirm enketo-demo"
        );
    }

    #[test]
    fn headroom_names_free_connections_and_memory() {
        let lines = headroom(&enketo());
        assert!(lines[0].contains("Redis not readable"), "{}", lines[0]);
        assert_eq!(
            lines[1],
            "ENKETO_REDIS_CACHE: 36 of 40 connections in use (4 free), memory 3 MB of 50 MB (6%)"
        );
    }

    #[test]
    fn bytes_read_like_plan_sizes() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(50 * 1024 * 1024), "50 MB");
        assert_eq!(bytes(7 * 1024 * 1024 * 1024), "7 GB");
        assert_eq!(bytes(1536 * 1024), "1.5 MB");
    }
}
