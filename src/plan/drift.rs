//! Drift between a reviewed plan and the platform now: the pure comparison behind
//! `upshift run --plan PLAN.json`. Each difference names the resource, what the plan saw, what
//! is there now, and what the run would do differently.
//!
//! Formation, the maintenance flag, the add-ons' identity, plan and state must be exactly as
//! reviewed. Redis memory and client counts move on their own while the app runs, so only a
//! large growth counts as drift (see the tolerances); the guards are evaluated again on the new
//! figures anyway.

use std::fmt;

use crate::plan::facts::{AddonLookup, Capture};
use crate::plan::guards::{Guard, GuardId, Verdict};

/// Used memory may grow by this share before it counts as drift.
const MEMORY_GROWTH: f64 = 0.20;
/// Connected clients may grow by this share (and by at least `CLIENTS_SLACK`).
const CLIENTS_GROWTH: f64 = 0.50;
const CLIENTS_SLACK: u32 = 5;

/// One difference between the reviewed plan's capture and the platform now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// What it is about: `web`, `enketo_redis_main plan`, `maintenance mode`.
    pub subject: String,
    pub was: String,
    pub now: String,
    /// What the run would do differently, when that is worth saying.
    pub consequence: Option<String>,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} was {}, is now {}", self.subject, self.was, self.now)?;
        if let Some(c) = &self.consequence {
            write!(f, ": {c}")?;
        }
        Ok(())
    }
}

fn drift(subject: impl Into<String>, was: impl fmt::Display, now: impl fmt::Display) -> Drift {
    Drift {
        subject: subject.into(),
        was: was.to_string(),
        now: now.to_string(),
        consequence: None,
    }
}

/// Every difference between `saved` (the plan's capture) and `now`, in a stable order:
/// formation, maintenance flag, then each add-on. `writers` are the process types the run
/// stops and restores.
pub fn compare(saved: &Capture, now: &Capture, writers: &[String]) -> Vec<Drift> {
    let mut out = Vec::new();
    if saved.app_id != now.app_id {
        out.push(drift("app id", &saved.app_id, &now.app_id));
    }
    for p in &saved.formation {
        match now
            .formation
            .iter()
            .find(|n| n.process_type == p.process_type)
        {
            None => out.push(drift(
                &p.process_type,
                p.quantity,
                "gone from the formation",
            )),
            Some(n) => {
                let is_writer = writers.contains(&p.process_type);
                if n.quantity != p.quantity {
                    let mut d = drift(&p.process_type, p.quantity, n.quantity);
                    if is_writer {
                        d.consequence = Some(format!("restore would scale to {}", n.quantity));
                    }
                    out.push(d);
                }
                if n.size != p.size {
                    let mut d = drift(format!("{} size", p.process_type), &p.size, &n.size);
                    if is_writer {
                        d.consequence = Some(format!("restore would bring back {}", n.size));
                    }
                    out.push(d);
                }
            }
        }
    }
    for n in &now.formation {
        if !saved
            .formation
            .iter()
            .any(|p| p.process_type == n.process_type)
        {
            out.push(drift(&n.process_type, "not in the formation", n.quantity));
        }
    }
    if saved.maintenance != now.maintenance {
        let on = |b: bool| if b { "on" } else { "off" };
        out.push(drift(
            "maintenance mode",
            on(saved.maintenance),
            on(now.maintenance),
        ));
    }
    for (s, n) in saved.addons.iter().zip(&now.addons) {
        out.extend(addon(s, n));
    }
    out
}

fn addon(saved: &AddonLookup, now: &AddonLookup) -> Vec<Drift> {
    let mut out = Vec::new();
    match (saved, now) {
        (AddonLookup::Found(s), AddonLookup::Found(n)) => {
            let label = s.label();
            if s.id != n.id {
                out.push(Drift {
                    subject: format!("{label} add-on"),
                    was: s.name.clone(),
                    now: n.name.clone(),
                    consequence: Some("the run would change a different add-on".into()),
                });
                return out;
            }
            if s.plan != n.plan {
                out.push(drift(format!("{label} plan"), &s.plan, &n.plan));
            }
            if s.state != n.state {
                out.push(drift(format!("{label} state"), &s.state, &n.state));
            }
            if let (Some(sr), Some(nr)) = (&s.redis, &n.redis) {
                let grown = sr.used_memory as f64 * (1.0 + MEMORY_GROWTH);
                if nr.used_memory as f64 > grown {
                    let mut d = drift(
                        format!("{label} used memory"),
                        mb(sr.used_memory),
                        mb(nr.used_memory),
                    );
                    d.consequence = Some(format!(
                        "more than {}% more data than reviewed",
                        (MEMORY_GROWTH * 100.0).round()
                    ));
                    out.push(d);
                }
                let limit = (f64::from(sr.connected_clients) * (1.0 + CLIENTS_GROWTH))
                    .max(f64::from(sr.connected_clients + CLIENTS_SLACK));
                if f64::from(nr.connected_clients) > limit {
                    out.push(drift(
                        format!("{label} clients"),
                        sr.connected_clients,
                        nr.connected_clients,
                    ));
                }
            }
        }
        (AddonLookup::Found(s), AddonLookup::Missing { message, .. }) => {
            out.push(drift(s.label(), &s.name, format!("missing ({message})")));
        }
        (AddonLookup::Missing { requested_as, .. }, AddonLookup::Found(n)) => {
            out.push(drift(requested_as, "missing", &n.name));
        }
        (AddonLookup::Missing { .. }, AddonLookup::Missing { .. }) => {}
    }
    out
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1024.0 / 1024.0)
}

/// The drift as guards: one blocking guard per difference, or one passing guard.
pub fn guards(drifts: &[Drift], plan_file: &str) -> Vec<Guard> {
    if drifts.is_empty() {
        return vec![Guard {
            id: GuardId::PlanDrift,
            subject: None,
            verdict: Verdict::Pass,
            detail: format!("the platform is as {plan_file} saw it"),
        }];
    }
    drifts
        .iter()
        .map(|d| Guard {
            id: GuardId::PlanDrift,
            subject: None,
            verdict: Verdict::Block,
            detail: format!(
                "{d} (since {plan_file} was saved; review a new plan with `upshift plan … --out`)"
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::facts::{AddonFacts, ProcessFacts};

    fn capture() -> Capture {
        crate::plan::fixture::enketo_capture()
    }

    fn found(c: &mut Capture) -> &mut AddonFacts {
        match &mut c.addons[0] {
            AddonLookup::Found(a) => a,
            AddonLookup::Missing { .. } => unreachable!(),
        }
    }

    fn writers() -> Vec<String> {
        vec!["web".into()]
    }

    #[test]
    fn the_same_world_has_no_drift() {
        let mut now = capture();
        // Normal movement: a little more data, a few clients, a later capture time, free disk.
        found(&mut now).redis.as_mut().unwrap().used_memory += 1024 * 1024;
        found(&mut now).redis.as_mut().unwrap().connected_clients = 44;
        now.captured_at = "2026-11-29T01:00:00Z".into();
        now.local_free_bytes = Some(1 << 29);
        assert_eq!(compare(&capture(), &now, &writers()), vec![]);
        let g = guards(&[], "plan.json");
        assert_eq!(g[0].verdict, Verdict::Pass);
    }

    #[test]
    fn a_scaled_writer_says_what_restore_would_do() {
        let mut now = capture();
        now.formation[0].quantity = 3;
        let d = compare(&capture(), &now, &writers());
        assert_eq!(d.len(), 1);
        assert_eq!(
            d[0].to_string(),
            "web was 2, is now 3: restore would scale to 3"
        );
        let g = guards(&d, "plan.json");
        assert_eq!(g[0].verdict, Verdict::Block);
        assert!(
            g[0].detail.starts_with("web was 2, is now 3"),
            "{}",
            g[0].detail
        );
    }

    #[test]
    fn every_kind_of_drift_is_named() {
        let mut now = capture();
        now.formation[1].quantity = 1;
        now.formation[0].size = "performance-m".into();
        now.formation.push(ProcessFacts {
            process_type: "clock".into(),
            quantity: 1,
            size: "basic".into(),
        });
        now.maintenance = true;
        let a = found(&mut now);
        a.plan = "premium-1".into();
        a.state = "provisioning".into();
        a.redis.as_mut().unwrap().used_memory = 20 * 1024 * 1024;
        a.redis.as_mut().unwrap().connected_clients = 90;
        let lines: Vec<String> = compare(&capture(), &now, &writers())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            vec![
                "web size was standard-1X, is now performance-m: restore would bring back performance-m",
                "worker was 0, is now 1",
                "clock was not in the formation, is now 1",
                "maintenance mode was off, is now on",
                "ENKETO_REDIS_MAIN plan was premium-0, is now premium-1",
                "ENKETO_REDIS_MAIN state was provisioned, is now provisioning",
                "ENKETO_REDIS_MAIN used memory was 10.0 MB, is now 20.0 MB: more than 20% more data than reviewed",
                "ENKETO_REDIS_MAIN clients was 40, is now 90",
            ]
        );
    }

    #[test]
    fn a_replaced_or_missing_addon_is_drift() {
        let mut now = capture();
        found(&mut now).id = "addon-2".into();
        found(&mut now).name = "redis-other-2".into();
        let d = compare(&capture(), &now, &writers());
        assert_eq!(
            d[0].to_string(),
            "ENKETO_REDIS_MAIN add-on was redis-cubed-1, is now redis-other-2: the run would change a different add-on"
        );
        let mut now = capture();
        now.addons[0] = AddonLookup::Missing {
            requested_as: "enketo_redis_main".into(),
            message: "not found".into(),
        };
        let d = compare(&capture(), &now, &writers());
        assert_eq!(
            d[0].to_string(),
            "ENKETO_REDIS_MAIN was redis-cubed-1, is now missing (not found)"
        );
    }
}
