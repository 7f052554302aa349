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
//! 3. the server behind the config var now: a primary (`role:master`), and
//!    - a `run_id` different from the one recorded before the change, or, when the same
//!      process was reconfigured in place (or no `run_id` was recorded), the target plan's
//!      `maxmemory` on it;
//!    - never the old plan's limits where INFO shows them (`maxmemory` of the old plan or of
//!      the old server, `maxclients` of the old server when the plans' limits differ);
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
    // The old plan's (or the old server's) limits on the server behind the URL: it is the old
    // one, whatever the platform says.
    let memory_differs = from.memory_bytes != to.memory_bytes;
    if s.maxmemory != 0
        && memory_differs
        && (s.maxmemory == from.memory_bytes || old.is_some_and(|o| o.maxmemory == s.maxmemory))
    {
        return not_yet(format!(
            "the server behind the URL has the old plan's maxmemory ({} bytes)",
            s.maxmemory
        ));
    }
    if from.max_clients != to.max_clients
        && let (Some(now), Some(before)) = (s.maxclients, old.and_then(|o| o.maxclients))
        && now == before
    {
        return not_yet(format!(
            "the server behind the URL has the old server's maxclients ({now})"
        ));
    }
    let target_limits = s.maxmemory == to.memory_bytes;
    match old {
        Some(o) if !o.run_id.is_empty() && !s.run_id.is_empty() => {
            if s.run_id != o.run_id {
                Verdict::Live {
                    proof: format!(
                        "a new server (run_id {} -> {})",
                        short(&o.run_id),
                        short(&s.run_id)
                    ),
                }
            } else if target_limits && memory_differs {
                Verdict::Live {
                    proof: format!(
                        "the same server reconfigured to {} (maxmemory {} bytes)",
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
        _ if target_limits => Verdict::Live {
            proof: format!("the target plan's maxmemory ({} bytes)", s.maxmemory),
        },
        // Nothing recorded and no limits shown: the platform's and the Data API's word, held
        // for the settle period, is all there is.
        _ if s.maxmemory == 0 => Verdict::Live {
            proof: "the platform and the Data API (the server shows no identity)".into(),
        },
        _ => not_yet(format!(
            "the server behind the URL shows maxmemory {} bytes, not {}'s",
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
        // A server that hides run_id and limits: the platform's word only.
        let hidden = ServerInfo {
            role: "master".into(),
            ..ServerInfo::default()
        };
        let v = judge(&from, &to, None, &seen(&done, Some("premium-1"), &hidden));
        assert!(matches!(v, Verdict::Live { .. }), "{v:?}");
    }
}
