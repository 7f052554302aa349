//! Deciding that the new server is live: pure, values in, a verdict out.
//!
//! Heroku does not document what an add-on shows during a plan change: it may say
//! `provisioned` on the target plan while the migration still runs and the old server is
//! still behind the config var (the simulator's `in-place` profile). Verifying then would
//! read the old server, find the data equal, and bring the writers back onto a server about to
//! be left behind: the 2016 Enketo loss. So the wait accepts only evidence the old server
//! cannot give:
//! 1. the Platform API: `provisioned` on the target plan;
//! 2. the Data API agreeing: `/wait` not waiting and the database's `plan` the target;
//! 3. the server behind the config var now: a primary (`role:master`) that does not show the
//!    old plan's catalog `maxmemory`, and
//!    - a `run_id` different from the one recorded before the change; or, with the same
//!      `run_id` (a process reconfigured in place), limits changed away from the old server's;
//!    - where no `run_id` can be compared: limits that are not the old server's, and either
//!      the target plan's `maxmemory` or a change from the old server's (Heroku may show a
//!      figure of its own); a server that shows neither `run_id` nor limits leaves only the
//!      platform's and the Data API's word;
//! 4. all of it holding for a settle period (the caller's clock).

use crate::heroku::models::AddOnState;
use crate::plan::facts::ServerIdentity;
use crate::plans::Plan;
use crate::verify::ServerInfo;

/// What one poll saw of an add-on and of the server behind its config var.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The Platform API's add-on state.
    pub state: &'a AddOnState,
    /// The Platform API's plan, bare.
    pub plan: &'a str,
    /// The Data API's `/wait` `waiting?`.
    pub data_waiting: bool,
    /// The Data API's database `plan`, bare; `None` when it could not be read.
    pub data_plan: Option<&'a str>,
    /// INFO of the server behind the config var now.
    pub server: &'a ServerInfo,
}

/// The verdict of one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The new server is behind the URL; `proof` says how that is known.
    Live { proof: String },
    /// Not (yet) proven; `reason` says what is missing.
    NotYet { reason: String },
}

/// The identity INFO shows.
pub fn identity(info: &ServerInfo) -> ServerIdentity {
    ServerIdentity {
        run_id: info.run_id.clone(),
        maxmemory: info.maxmemory,
        maxclients: info.maxclients,
    }
}

/// Judges one poll for a change `from` -> `to`, given the server recorded before the change
/// (`None` for journals written before upshift recorded it).
pub fn judge(from: &Plan, to: &Plan, old: Option<&ServerIdentity>, o: &Observed<'_>) -> Verdict {
    let not_yet = |reason: String| Verdict::NotYet { reason };
    if *o.state != AddOnState::Provisioned || o.plan != to.name {
        return not_yet(format!(
            "the platform says {} on {}",
            o.state.as_str(),
            o.plan
        ));
    }
    if o.data_waiting {
        return not_yet("the Data API is still waiting".into());
    }
    match o.data_plan {
        None => return not_yet("the Data API does not describe the database".into()),
        Some(p) if p != to.name => {
            return not_yet(format!("the Data API still reports {p}"));
        }
        Some(_) => {}
    }
    let s = o.server;
    if s.role != "master" {
        return not_yet(format!("the server behind the URL answers as {}", s.role));
    }
    let memory_differs = from.memory_bytes != to.memory_bytes;
    // The old plan's catalog limit on the server behind the URL: it is the old server (or a
    // new one that does not hold the target's limits), whatever the platform says.
    if s.maxmemory != 0 && memory_differs && s.maxmemory == from.memory_bytes {
        return not_yet(format!(
            "the server behind the URL has the old plan's maxmemory ({} bytes)",
            s.maxmemory
        ));
    }
    // `Some(true)`: a different process; `Some(false)`: the same; `None`: unknown (no run_id).
    let new_process = match old {
        Some(o) if !o.run_id.is_empty() && !s.run_id.is_empty() => Some(o.run_id != s.run_id),
        _ => None,
    };
    // Limits exactly as the old server had them, where the plans' limits differ. Heroku may
    // show a figure of its own rather than the catalog's, so only a comparison with the old
    // server itself counts, and only when the run_id cannot tell.
    let same_limits_as_old = old.is_some_and(|o| {
        (memory_differs && o.maxmemory != 0 && o.maxmemory == s.maxmemory)
            || (from.max_clients != to.max_clients
                && o.maxclients.is_some()
                && o.maxclients == s.maxclients)
    });
    let limits_changed =
        old.is_some_and(|o| o.maxmemory != 0 && s.maxmemory != 0 && o.maxmemory != s.maxmemory);
    let target_limits = s.maxmemory == to.memory_bytes;
    match (new_process, old) {
        (Some(true), Some(o)) => Verdict::Live {
            proof: format!(
                "a new server (run_id {} -> {})",
                short(&o.run_id),
                short(&s.run_id)
            ),
        },
        (Some(_), _) => {
            if memory_differs && (target_limits || limits_changed) && !same_limits_as_old {
                Verdict::Live {
                    proof: format!(
                        "the same server reconfigured for {} (maxmemory {} bytes)",
                        to.name, s.maxmemory
                    ),
                }
            } else {
                not_yet(format!(
                    "the old server (run_id {}) is still behind the URL",
                    short(&s.run_id)
                ))
            }
        }
        (None, _) if same_limits_as_old => not_yet(format!(
            "the server behind the URL has the old server's limits (maxmemory {} bytes)",
            s.maxmemory
        )),
        (None, _) if target_limits || limits_changed => Verdict::Live {
            proof: format!(
                "the limits changed to maxmemory {} bytes (no run_id to compare)",
                s.maxmemory
            ),
        },
        // Nothing recorded and no limits shown: the platform's and the Data API's word, held
        // for the settle period, is all there is.
        (None, _) if s.maxmemory == 0 => Verdict::Live {
            proof: "the platform and the Data API (the server shows no identity)".into(),
        },
        (None, _) => not_yet(format!(
            "the server behind the URL shows maxmemory {} bytes, not {}'s, and no run_id",
            s.maxmemory, to.name
        )),
    }
}

fn short(run_id: &str) -> &str {
    run_id.get(..8).unwrap_or(run_id)
}

#[cfg(test)]
mod tests {
    use super::{Observed, Verdict, identity, judge};
    use crate::heroku::models::AddOnState;
    use crate::plans;
    use crate::verify::ServerInfo;

    fn server(run_id: &str, plan: &str) -> ServerInfo {
        let p = plans::find(plan).unwrap();
        ServerInfo {
            role: "master".into(),
            run_id: run_id.into(),
            maxmemory: p.memory_bytes,
            maxclients: Some(u64::from(p.max_clients) + 1),
            ..ServerInfo::default()
        }
    }

    fn seen<'a>(state: &'a AddOnState, data: Option<&'a str>, s: &'a ServerInfo) -> Observed<'a> {
        Observed {
            state,
            plan: "premium-1",
            data_waiting: false,
            data_plan: data,
            server: s,
        }
    }

    #[test]
    fn only_a_different_server_with_the_target_plan_counts() {
        let (from, to) = (
            plans::find("premium-0").unwrap(),
            plans::find("premium-1").unwrap(),
        );
        let old_server = server("aaaaaaaaaaaa", "premium-0");
        let old = identity(&old_server);
        let done = AddOnState::Provisioned;
        // In-place: the platform and the Data API say done, the old server is behind the URL.
        let v = judge(
            &from,
            &to,
            Some(&old),
            &seen(&done, Some("premium-1"), &old_server),
        );
        assert!(matches!(v, Verdict::NotYet { .. }), "{v:?}");
        // Even without a recorded identity the old plan's limits give it away.
        let v = judge(
            &from,
            &to,
            None,
            &seen(&done, Some("premium-1"), &old_server),
        );
        assert!(matches!(v, Verdict::NotYet { .. }), "{v:?}");
        // Lagging Data API.
        let new = server("bbbbbbbbbbbb", "premium-1");
        let v = judge(
            &from,
            &to,
            Some(&old),
            &seen(&done, Some("premium-0"), &new),
        );
        assert!(matches!(v, Verdict::NotYet { .. }), "{v:?}");
        let v = judge(&from, &to, Some(&old), &seen(&done, None, &new));
        assert!(matches!(v, Verdict::NotYet { .. }), "{v:?}");
        // Still provisioning.
        let busy = AddOnState::Provisioning;
        let v = judge(
            &from,
            &to,
            Some(&old),
            &seen(&busy, Some("premium-1"), &new),
        );
        assert!(matches!(v, Verdict::NotYet { .. }), "{v:?}");
        // A replica is not live.
        let mut replica = new.clone();
        replica.role = "slave".into();
        let v = judge(
            &from,
            &to,
            Some(&old),
            &seen(&done, Some("premium-1"), &replica),
        );
        assert!(matches!(v, Verdict::NotYet { .. }), "{v:?}");
        // The new server.
        let v = judge(
            &from,
            &to,
            Some(&old),
            &seen(&done, Some("premium-1"), &new),
        );
        assert!(matches!(v, Verdict::Live { .. }), "{v:?}");
        // A new process that still runs with the old server's limits is not the target.
        let mut wrong = new.clone();
        wrong.maxmemory = old.maxmemory;
        let v = judge(
            &from,
            &to,
            Some(&old),
            &seen(&done, Some("premium-1"), &wrong),
        );
        assert!(matches!(v, Verdict::NotYet { .. }), "{v:?}");
        // The same process reconfigured to the target's limits (promotion behind one host).
        let mut same = new.clone();
        same.run_id = old.run_id.clone();
        let v = judge(
            &from,
            &to,
            Some(&old),
            &seen(&done, Some("premium-1"), &same),
        );
        assert!(matches!(v, Verdict::Live { .. }), "{v:?}");
        // A provider that shows one fixed maxmemory of its own on every plan: the run_id
        // decides.
        let mut fixed_old = old.clone();
        fixed_old.maxmemory = 1_000_000_000;
        let mut fixed_new = new.clone();
        fixed_new.maxmemory = 1_000_000_000;
        let v = judge(
            &from,
            &to,
            Some(&fixed_old),
            &seen(&done, Some("premium-1"), &fixed_new),
        );
        assert!(matches!(v, Verdict::Live { .. }), "{v:?}");
        let mut fixed_same = fixed_new.clone();
        fixed_same.run_id = old.run_id.clone();
        let v = judge(
            &from,
            &to,
            Some(&fixed_old),
            &seen(&done, Some("premium-1"), &fixed_same),
        );
        assert!(matches!(v, Verdict::NotYet { .. }), "{v:?}");
        // No run_id anywhere: changed limits count, the old server's limits do not.
        let mut blind_old = fixed_old.clone();
        blind_old.run_id.clear();
        fixed_same.run_id.clear();
        let v = judge(
            &from,
            &to,
            Some(&blind_old),
            &seen(&done, Some("premium-1"), &fixed_same),
        );
        assert!(matches!(v, Verdict::NotYet { .. }), "{v:?}");
        fixed_same.maxmemory = 2_000_000_000;
        fixed_same.maxclients = Some(81);
        let v = judge(
            &from,
            &to,
            Some(&blind_old),
            &seen(&done, Some("premium-1"), &fixed_same),
        );
        assert!(matches!(v, Verdict::Live { .. }), "{v:?}");
        // A server that hides run_id and limits: the platform's word only.
        let hidden = ServerInfo {
            role: "master".into(),
            ..ServerInfo::default()
        };
        let v = judge(&from, &to, None, &seen(&done, Some("premium-1"), &hidden));
        assert!(matches!(v, Verdict::Live { .. }), "{v:?}");
    }
}
