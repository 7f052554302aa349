//! The window gate: may a run start now, when does its window open next, and does the rest of
//! the run plus a worst-case rollback fit before the window closes. Pure: `now` is passed in.
//!
//! The cutoff is checked by the `guard` step, the last step before the first write (maintenance
//! mode or the scale-down that starts the downtime). Once the writers are stopped the run is
//! committed to finishing or rolling back, and it never abandons either because a window ended:
//! it reports the overrun instead ([`overrun_notice`]).

use std::time::Duration;

use jiff::Timestamp;

use crate::plan::guards::{Guard, GuardId, Verdict};
use crate::window::{CutoffVerdict, Occurrence, Window, check_cutoff, format_duration, overrun};

/// Where `now` stands against a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Inside this occurrence.
    Open(Occurrence),
    /// Closed; this is the next occurrence.
    Closed { next: Occurrence },
    /// A one-off window that has passed (or a weekly one with no opening ahead).
    Never,
}

/// Where `now` stands against `window`.
pub fn gate(window: &Window, now: Timestamp) -> Gate {
    match window.current_or_next(now) {
        Some(occ) if occ.contains(now) => Gate::Open(occ),
        Some(next) => Gate::Closed { next },
        None => Gate::Never,
    }
}

/// An instant in the window's own zone, e.g. `2026-11-29 02:00 CET`.
pub fn local(window: &Window, at: Timestamp) -> String {
    let zoned = at.to_zoned(window.time_zone());
    zoned.strftime("%Y-%m-%d %H:%M %Z").to_string()
}

/// Time from `from` to `to`, zero if `to` is not later.
pub fn until(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}

/// Why `run` refuses outside the window (exit 3), with the next start and what to pass.
pub fn closed_message(window: &Window, gate: &Gate, now: Timestamp) -> String {
    match gate {
        Gate::Open(_) => format!("the window `{window}` is open"),
        Gate::Closed { next } => format!(
            "outside the maintenance window `{window}`: it next opens at {} ({}, in {}); nothing was written. Run again then, or pass --wait-for-window to wait for it",
            local(window, next.start),
            next.start,
            format_duration(until(now, next.start))
        ),
        Gate::Never => format!(
            "the maintenance window `{window}` has no opening ahead: nothing was written; give a window that opens in the future"
        ),
    }
}

/// The heartbeat line while `--wait-for-window` sleeps.
pub fn waiting_message(window: &Window, next: &Occurrence, now: Timestamp) -> String {
    format!(
        "waiting for the maintenance window `{window}`: opens at {} (in {}); Ctrl-C stops waiting, nothing has been written",
        local(window, next.start),
        format_duration(until(now, next.start))
    )
}

/// The worst-case rollback after the point of no return: wait out a half-done plan change,
/// repair the data from the snapshot and bring the writers back, which is about what the
/// change itself keeps the writers stopped for.
pub fn worst_case_rollback(estimate: &crate::plan::Estimate) -> Duration {
    estimate.downtime
}

/// The cutoff guard: `run_estimate` (the whole run, from `source`) plus `rollback` must fit in
/// what is left of the open occurrence at `now`. Blocks when the window is too short, and when
/// it is closed, unless `ahead` (`plan`, reviewed hours before): then the next occurrence is
/// judged from its start.
pub fn cutoff_guard(
    window: &Window,
    now: Timestamp,
    run_estimate: Duration,
    rollback: Duration,
    source: &str,
    ahead: bool,
) -> Guard {
    let (verdict, detail) = match gate(window, now) {
        Gate::Closed { next } if ahead => match check_cutoff(&next, now, run_estimate, rollback) {
            CutoffVerdict::Fits {
                needed,
                available,
                slack,
            } => (
                Verdict::Pass,
                format!(
                    "window `{window}` opens at {} (in {}): needs {} (run {} from {source} + worst-case rollback {}), the window is {} long ({} to spare); `run` outside it refuses",
                    local(window, next.start),
                    format_duration(until(now, next.start)),
                    format_duration(needed),
                    format_duration(run_estimate),
                    format_duration(rollback),
                    format_duration(available),
                    format_duration(slack)
                ),
            ),
            CutoffVerdict::TooLate { needed, available } => (
                Verdict::Block,
                format!(
                    "window `{window}` is too short: needs {} (run {} from {source} + worst-case rollback {}) but it is only {} long",
                    format_duration(needed),
                    format_duration(run_estimate),
                    format_duration(rollback),
                    format_duration(available)
                ),
            ),
        },
        Gate::Open(occ) => match check_cutoff(&occ, now, run_estimate, rollback) {
            CutoffVerdict::Fits {
                needed,
                available,
                slack,
            } => (
                Verdict::Pass,
                format!(
                    "window `{window}` open until {}: needs {} (run {} from {source} + worst-case rollback {}), {} left ({} to spare)",
                    local(window, occ.end),
                    format_duration(needed),
                    format_duration(run_estimate),
                    format_duration(rollback),
                    format_duration(available),
                    format_duration(slack)
                ),
            ),
            CutoffVerdict::TooLate { needed, available } => (
                Verdict::Block,
                format!(
                    "too late for window `{window}`: needs {} (run {} from {source} + worst-case rollback {}) but only {} left before it closes at {}; nothing was written; {}",
                    format_duration(needed),
                    format_duration(run_estimate),
                    format_duration(rollback),
                    format_duration(available),
                    local(window, occ.end),
                    next_after(window, occ.end).map_or_else(
                        || "no later opening".to_owned(),
                        |n| format!("the next window opens at {}", local(window, n.start))
                    )
                ),
            ),
        },
        closed => (Verdict::Block, closed_message(window, &closed, now)),
    };
    Guard {
        id: GuardId::WindowCutoff,
        subject: None,
        verdict,
        detail,
    }
}

fn next_after(window: &Window, end: Timestamp) -> Option<Occurrence> {
    window.current_or_next(end).filter(|o| o.start >= end)
}

/// A run past its point of no return that has overrun, or is projected to overrun, its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverrunNotice {
    /// How far past the end (now, or projected at the estimated finish).
    pub by: Duration,
    /// Projected rather than already past.
    pub expected: bool,
}

/// At `now`, `elapsed` into a run estimated at `estimate`, inside occurrence `occ`: has it
/// overrun, or will it at the estimated finish? `None` when it ends in time.
pub fn overrun_notice(
    occ: &Occurrence,
    now: Timestamp,
    elapsed: Duration,
    estimate: Duration,
) -> Option<OverrunNotice> {
    if let Some(by) = overrun(occ, now) {
        return Some(OverrunNotice {
            by,
            expected: false,
        });
    }
    let left = estimate.saturating_sub(elapsed);
    let finish = now.checked_add(left).ok()?;
    overrun(occ, finish).map(|by| OverrunNotice { by, expected: true })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn window() -> Window {
        "sun 02:00-04:00 Europe/Berlin".parse().unwrap()
    }

    #[test]
    fn outside_the_window_names_the_next_start() {
        // Wednesday 2026-11-25 23:00 UTC: the next sunday 02:00 CET is 2026-11-29T01:00Z.
        let now = ts("2026-11-25T23:00:00Z");
        let g = gate(&window(), now);
        let Gate::Closed { next } = g else {
            panic!("{g:?}")
        };
        assert_eq!(next.start, ts("2026-11-29T01:00:00Z"));
        let m = closed_message(&window(), &g, now);
        assert_eq!(
            m,
            "outside the maintenance window `sun 02:00-04:00 Europe/Berlin`: it next opens at 2026-11-29 02:00 CET (2026-11-29T01:00:00Z, in 3d2h); nothing was written. Run again then, or pass --wait-for-window to wait for it"
        );
    }

    #[test]
    fn a_passed_one_off_window_never_opens() {
        let w: Window = "2026-01-01T02:00:00Z/2026-01-01T03:00:00Z".parse().unwrap();
        let g = gate(&w, ts("2026-11-25T23:00:00Z"));
        assert_eq!(g, Gate::Never);
        assert!(closed_message(&w, &g, ts("2026-11-25T23:00:00Z")).contains("no opening ahead"));
    }

    #[test]
    fn cutoff_passes_with_the_figures_when_it_fits() {
        let now = ts("2026-11-29T01:10:00Z"); // 02:10 CET, 1h50m left
        let g = cutoff_guard(
            &window(),
            now,
            Duration::from_secs(600),
            Duration::from_secs(300),
            "median of 3 earlier runs",
            false,
        );
        assert_eq!(g.verdict, Verdict::Pass, "{}", g.detail);
        assert_eq!(
            g.detail,
            "window `sun 02:00-04:00 Europe/Berlin` open until 2026-11-29 04:00 CET: needs 15m (run 10m from median of 3 earlier runs + worst-case rollback 5m), 1h50m left (1h35m to spare)"
        );
    }

    #[test]
    fn cutoff_blocks_with_the_figures_when_too_late() {
        let now = ts("2026-11-29T02:50:00Z"); // 03:50 CET, 10m left
        let g = cutoff_guard(
            &window(),
            now,
            Duration::from_secs(600),
            Duration::from_secs(300),
            "playbook default",
            false,
        );
        assert_eq!(g.verdict, Verdict::Block);
        assert_eq!(
            g.detail,
            "too late for window `sun 02:00-04:00 Europe/Berlin`: needs 15m (run 10m from playbook default + worst-case rollback 5m) but only 10m left before it closes at 2026-11-29 04:00 CET; nothing was written; the next window opens at 2026-12-06 02:00 CET"
        );
    }

    #[test]
    fn cutoff_blocks_outside_the_window() {
        let g = cutoff_guard(
            &window(),
            ts("2026-11-25T23:00:00Z"),
            Duration::from_secs(60),
            Duration::from_secs(60),
            "playbook default",
            false,
        );
        assert_eq!(g.verdict, Verdict::Block);
        assert!(
            g.detail.starts_with("outside the maintenance window"),
            "{}",
            g.detail
        );
    }

    #[test]
    fn plan_judges_the_next_window_from_its_start() {
        let now = ts("2026-11-25T23:00:00Z");
        let g = cutoff_guard(
            &window(),
            now,
            Duration::from_secs(600),
            Duration::from_secs(300),
            "playbook default",
            true,
        );
        assert_eq!(g.verdict, Verdict::Pass, "{}", g.detail);
        assert_eq!(
            g.detail,
            "window `sun 02:00-04:00 Europe/Berlin` opens at 2026-11-29 02:00 CET (in 3d2h): needs 15m (run 10m from playbook default + worst-case rollback 5m), the window is 2h long (1h45m to spare); `run` outside it refuses"
        );
        let g = cutoff_guard(
            &window(),
            now,
            Duration::from_secs(6000),
            Duration::from_secs(3000),
            "playbook default",
            true,
        );
        assert_eq!(g.verdict, Verdict::Block);
        assert!(g.detail.contains("is too short"), "{}", g.detail);
    }

    #[test]
    fn overrun_is_reported_past_the_end_and_projected_before_it() {
        let occ = Occurrence {
            start: ts("2026-11-29T01:00:00Z"),
            end: ts("2026-11-29T03:00:00Z"),
        };
        let min = |m: u64| Duration::from_secs(m * 60);
        assert_eq!(
            overrun_notice(&occ, ts("2026-11-29T02:00:00Z"), min(5), min(10)),
            None
        );
        assert_eq!(
            overrun_notice(&occ, ts("2026-11-29T02:58:00Z"), min(5), min(10)),
            Some(OverrunNotice {
                by: min(3),
                expected: true
            })
        );
        assert_eq!(
            overrun_notice(&occ, ts("2026-11-29T03:01:00Z"), min(50), min(10)),
            Some(OverrunNotice {
                by: min(1),
                expected: false
            })
        );
    }
}
