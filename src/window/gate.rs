//! The window gate: may a run start now, when does its window open next, and does the rest of
//! the run plus a worst-case rollback fit before the window closes. Pure: `now` is passed in.
//!
//! The cutoff is checked by the `guard` step, the last step before the first write (maintenance
//! mode or the scale-down that starts the downtime). Once the writers are stopped the run is
//! committed to finishing or rolling back, and it never abandons either because a window ended:
//! it reports the overrun instead ([`overrun_notice`]). A run its guards blocked never stopped
//! the writers, so it has nothing to overrun. [`fit`] picks the opening `--wait-for-window`
//! waits for: the first one long enough for the run.

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

/// How far ahead `--wait-for-window` looks for an opening long enough for the run.
pub const FIT_HORIZON: Duration = Duration::from_secs(14 * 24 * 3600);
/// At most this many openings are judged (a `daily` window has 15 in the horizon).
const FIT_OPENINGS: usize = 64;

/// Where `now` stands against the openings of a window that can hold a run needing `needed`
/// (its estimate plus a worst-case rollback): what `--wait-for-window` waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fit {
    /// Open now, with enough of it left.
    Open(Occurrence),
    /// Wait for `next`; `skipped` are the openings before it (the one open now included) with
    /// too little time for the run.
    Wait {
        next: Occurrence,
        skipped: Vec<Occurrence>,
    },
    /// Neither the next opening nor any later one in [`FIT_HORIZON`] is long enough; `first`
    /// is the next one (none: the window has no opening ahead at all).
    TooShort { first: Option<Occurrence> },
}

/// The first opening of `window` from `now` on (the open one included, counted from `now`)
/// with `needed` of it left: the next opening wherever it is, later ones within
/// [`FIT_HORIZON`].
pub fn fit(window: &Window, now: Timestamp, needed: Duration) -> Fit {
    let horizon = now.checked_add(FIT_HORIZON).unwrap_or(Timestamp::MAX);
    let mut skipped: Vec<Occurrence> = Vec::new();
    let mut from = now;
    while skipped.len() < FIT_OPENINGS {
        let Some(occ) = window.current_or_next(from) else {
            break;
        };
        // The first opening is judged however far off (a one-off window years ahead); only
        // the search past a short one stops at the horizon.
        if occ.start > horizon && !skipped.is_empty() {
            break;
        }
        if check_cutoff(&occ, now, needed, Duration::ZERO).fits() {
            return if occ.contains(now) {
                Fit::Open(occ)
            } else {
                Fit::Wait { next: occ, skipped }
            };
        }
        skipped.push(occ);
        if !occ.closes() {
            break;
        }
        from = occ.end;
    }
    Fit::TooShort {
        first: skipped.first().copied(),
    }
}

/// The warning before `--wait-for-window` waits past openings too short for the run.
pub fn skipping_message(
    window: &Window,
    next: &Occurrence,
    skipped: &[Occurrence],
    now: Timestamp,
    needed: Duration,
) -> String {
    let openings: Vec<String> = skipped
        .iter()
        .map(|o| {
            if o.contains(now) {
                format!(
                    "{} (open now, {} left)",
                    local(window, o.start),
                    format_duration(until(now, o.end))
                )
            } else {
                format!(
                    "{} ({} long)",
                    local(window, o.start),
                    format_duration(o.length())
                )
            }
        })
        .collect();
    let length = if next.closes() {
        format!("{} long", format_duration(next.length()))
    } else {
        "it does not close".to_owned()
    };
    format!(
        "the window `{window}` is too short for this run at {}: it needs {} with a worst-case rollback; waiting for the opening at {} instead ({length})",
        openings.join(", "),
        format_duration(needed),
        local(window, next.start),
    )
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
    let needs = || {
        format!(
            "{} (run {} from {source} + worst-case rollback {})",
            format_duration(run_estimate.saturating_add(rollback)),
            format_duration(run_estimate),
            format_duration(rollback)
        )
    };
    let (verdict, detail) = match gate(window, now) {
        // A window open every day all day has no closing time to cut off at.
        Gate::Open(occ) if !occ.closes() => (
            Verdict::Pass,
            format!(
                "window `{window}` is open and never closes: needs {}; no cutoff",
                needs()
            ),
        ),
        Gate::Closed { next } if ahead && !next.closes() => (
            Verdict::Pass,
            format!(
                "window `{window}` opens at {} (in {}) and never closes: needs {}; `run` outside it refuses",
                local(window, next.start),
                format_duration(until(now, next.start)),
                needs()
            ),
        ),
        Gate::Closed { .. } if !ahead => (
            Verdict::Block,
            match fit(window, now, run_estimate.saturating_add(rollback)) {
                Fit::TooShort { first: Some(first) } => too_short_message(window, &first, &needs()),
                _ => closed_message(window, &gate(window, now), now),
            },
        ),
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

/// Why a closed window blocks when none of its openings can hold the run: waiting would not
/// help, so `--wait-for-window` does not wait.
fn too_short_message(window: &Window, first: &Occurrence, needs: &str) -> String {
    match window.current_or_next(first.end) {
        Some(_) => format!(
            "window `{window}` is too short: needs {needs} but no opening in the next {} is that long (the next, at {}, is {} long); nothing was written; give a longer window",
            format_duration(FIT_HORIZON),
            local(window, first.start),
            format_duration(first.length())
        ),
        None => format!(
            "window `{window}` is too short: needs {needs} but it is only {} long; nothing was written; give a longer window",
            format_duration(first.length())
        ),
    }
}

fn next_after(window: &Window, end: Timestamp) -> Option<Occurrence> {
    window.current_or_next(end).filter(|o| o.start >= end)
}

/// The opening a run's guard step admitted it into, with the figures the guard judged: only a
/// run that passed its guards (and so may stop the writers) can overrun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// The opening.
    pub occ: Occurrence,
    /// The run's estimate, counted by the guard from its own instant.
    pub estimate: Duration,
    /// The worst-case rollback the guard added.
    pub rollback: Duration,
}

/// A run past its point of no return that has overrun, or is projected to overrun, its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverrunNotice {
    /// How far past the end: now, or projected by the guard's arithmetic.
    pub by: Duration,
    /// Projected rather than already past.
    pub expected: bool,
}

/// At `now`, `since_guard` after the guard admitted the run into `admitted`: has it overrun
/// its window, or does the rest of the estimate plus a worst-case rollback no longer fit
/// (the guard's own check, [`check_cutoff`], repeated; `by` is then needed minus left)?
/// `None` when it still fits, and always for a window that never closes.
pub fn overrun_notice(
    admitted: &Admitted,
    now: Timestamp,
    since_guard: Duration,
) -> Option<OverrunNotice> {
    let occ = &admitted.occ;
    if !occ.closes() {
        return None;
    }
    if let Some(by) = overrun(occ, now) {
        return Some(OverrunNotice {
            by,
            expected: false,
        });
    }
    let rest = admitted.estimate.saturating_sub(since_guard);
    match check_cutoff(occ, now, rest, admitted.rollback) {
        CutoffVerdict::Fits { .. } => None,
        CutoffVerdict::TooLate { needed, available } => Some(OverrunNotice {
            by: needed.saturating_sub(available),
            expected: true,
        }),
    }
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
    fn overrun_is_reported_past_the_end_and_projected_by_the_guards_arithmetic() {
        let min = |m: u64| Duration::from_secs(m * 60);
        let admitted = Admitted {
            occ: Occurrence {
                start: ts("2026-11-29T01:00:00Z"),
                end: ts("2026-11-29T03:00:00Z"),
            },
            estimate: min(10),
            rollback: min(5),
        };
        // Admitted at 02:40 with 20m left for 15m: fits, and goes on fitting on schedule.
        assert_eq!(
            overrun_notice(&admitted, ts("2026-11-29T02:40:00Z"), min(0)),
            None
        );
        assert_eq!(
            overrun_notice(&admitted, ts("2026-11-29T02:48:00Z"), min(8)),
            None
        );
        // Slower than estimated: 3m of the estimate and the 5m rollback no longer fit in the
        // 7m left, by the figure the guard would give (8m needed - 7m left).
        assert_eq!(
            overrun_notice(&admitted, ts("2026-11-29T02:53:00Z"), min(7)),
            Some(OverrunNotice {
                by: min(1),
                expected: true
            })
        );
        assert_eq!(
            overrun_notice(&admitted, ts("2026-11-29T03:01:00Z"), min(21)),
            Some(OverrunNotice {
                by: min(1),
                expected: false
            })
        );
        // A window that never closes is never overrun.
        let endless = Admitted {
            occ: Occurrence {
                start: admitted.occ.start,
                end: Timestamp::MAX,
            },
            ..admitted
        };
        assert_eq!(
            overrun_notice(&endless, ts("2026-11-29T03:01:00Z"), min(500)),
            None
        );
    }

    #[test]
    fn an_endless_window_reports_no_closing_time() {
        let w: Window = "daily 01:00+24h UTC".parse().unwrap();
        let now = ts("2026-12-01T12:00:00Z");
        let g = cutoff_guard(
            &w,
            now,
            Duration::from_secs(200),
            Duration::from_secs(200),
            "playbook default",
            false,
        );
        assert_eq!(g.verdict, Verdict::Pass, "{}", g.detail);
        assert_eq!(
            g.detail,
            "window `daily 01:00+24h UTC` is open and never closes: needs 6m40s (run 3m20s from playbook default + worst-case rollback 3m20s); no cutoff"
        );
        assert!(!g.detail.contains("2026-12-1"), "{}", g.detail);
    }

    fn min(m: u64) -> Duration {
        Duration::from_secs(m * 60)
    }

    #[test]
    fn fit_skips_openings_too_short_for_the_run() {
        // Daily 3m at 01:00 UTC: no opening holds a 6m40s run, a 3m one fits the next.
        let w: Window = "daily 01:00+3m UTC".parse().unwrap();
        let now = ts("2026-12-02T00:59:45Z");
        let needed = Duration::from_secs(400);
        let first = Occurrence {
            start: ts("2026-12-02T01:00:00Z"),
            end: ts("2026-12-02T01:03:00Z"),
        };
        assert_eq!(fit(&w, now, needed), Fit::TooShort { first: Some(first) });
        assert_eq!(
            fit(&w, now, min(3)),
            Fit::Wait {
                next: first,
                skipped: vec![]
            }
        );
        // Open now with 2m left: a 3m run waits for tomorrow's opening, saying why.
        let now = ts("2026-12-02T01:01:00Z");
        let Fit::Wait { next, skipped } = fit(&w, now, min(3)) else {
            panic!("{:?}", fit(&w, now, min(3)))
        };
        assert_eq!(next.start, ts("2026-12-03T01:00:00Z"));
        assert_eq!(skipped, vec![first]);
        assert_eq!(
            skipping_message(&w, &next, &skipped, now, min(3)),
            "the window `daily 01:00+3m UTC` is too short for this run at 2026-12-02 01:00 UTC (open now, 2m left): it needs 3m with a worst-case rollback; waiting for the opening at 2026-12-03 01:00 UTC instead (3m long)"
        );
        assert_eq!(
            fit(&w, ts("2026-12-02T01:00:00Z"), min(3)),
            Fit::Open(first)
        );
        // A weekly window whose later days are longer.
        let w: Window = "mon-sat 02:00+5m UTC".parse().unwrap();
        let w2: Window = "sun 02:00+2h UTC".parse().unwrap();
        assert!(matches!(fit(&w, now, min(10)), Fit::TooShort { .. }));
        let Fit::Wait { next, skipped } = fit(&w2, now, min(10)) else {
            panic!()
        };
        assert_eq!(next.start, ts("2026-12-06T02:00:00Z"));
        assert!(skipped.is_empty());
        // A one-off window in the past has nothing ahead.
        let past: Window = "2026-01-01T02:00:00Z/2026-01-01T03:00:00Z".parse().unwrap();
        assert_eq!(fit(&past, now, min(1)), Fit::TooShort { first: None });
    }

    #[test]
    fn a_closed_window_with_no_opening_long_enough_blocks_as_too_short() {
        let now = ts("2026-12-02T00:59:45Z");
        let one_off: Window = "2026-12-02T01:00:00Z/2026-12-02T01:03:45Z".parse().unwrap();
        let g = cutoff_guard(
            &one_off,
            now,
            Duration::from_secs(200),
            Duration::from_secs(200),
            "playbook default",
            false,
        );
        assert_eq!(g.verdict, Verdict::Block);
        assert_eq!(
            g.detail,
            "window `2026-12-02T01:00:00+00:00/2026-12-02T01:03:45+00:00` is too short: needs 6m40s (run 3m20s from playbook default + worst-case rollback 3m20s) but it is only 3m45s long; nothing was written; give a longer window"
        );
        let daily: Window = "daily 01:00+3m UTC".parse().unwrap();
        let g = cutoff_guard(
            &daily,
            now,
            Duration::from_secs(200),
            Duration::from_secs(200),
            "playbook default",
            false,
        );
        assert_eq!(g.verdict, Verdict::Block);
        assert!(
            g.detail
                .starts_with("window `daily 01:00+3m UTC` is too short: needs 6m40s"),
            "{}",
            g.detail
        );
        assert!(
            g.detail.contains("no opening in the next 14d"),
            "{}",
            g.detail
        );
        // Long enough: the usual "outside the window".
        let g = cutoff_guard(
            &daily,
            now,
            Duration::from_secs(60),
            Duration::from_secs(60),
            "playbook default",
            false,
        );
        assert!(
            g.detail.starts_with("outside the maintenance window"),
            "{}",
            g.detail
        );
    }
}
