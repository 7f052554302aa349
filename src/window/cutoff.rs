//! The runner's cutoff math: does the rest of a run, plus a worst-case rollback, fit before the
//! window closes; by how much did a run overrun; and how long a run is expected to take.

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;

use super::Occurrence;

/// Whether a run may pass its point of no return inside an occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutoffVerdict {
    /// The run and a worst-case rollback finish before the window closes.
    Fits {
        /// Estimated time to finish plus worst-case rollback.
        needed: Duration,
        /// Time left in the occurrence (from its start, if it has not opened yet).
        available: Duration,
        /// `available - needed`.
        slack: Duration,
    },
    /// They would not: do not pass the point of no return.
    TooLate {
        /// Estimated time to finish plus worst-case rollback.
        needed: Duration,
        /// Time left in the occurrence (zero once it has closed).
        available: Duration,
    },
}

impl CutoffVerdict {
    /// Whether the run may go on.
    pub fn fits(&self) -> bool {
        matches!(self, CutoffVerdict::Fits { .. })
    }
}

impl fmt::Display for CutoffVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CutoffVerdict::Fits {
                needed,
                available,
                slack,
            } => write!(
                f,
                "fits: needs {} with rollback, {} left in the window ({} to spare)",
                format_duration(needed),
                format_duration(available),
                format_duration(slack)
            ),
            CutoffVerdict::TooLate { needed, available } => write!(
                f,
                "too late: needs {} with rollback, only {} left in the window",
                format_duration(needed),
                format_duration(available)
            ),
        }
    }
}

/// Checks, before the point of no return, that the estimated time to finish plus the worst-case
/// rollback fit in what is left of `occ` at `now`.
///
/// Time is counted from `now`, or from the occurrence's start if it has not opened yet (a run
/// waiting for its window). `needed == available` fits, with zero slack.
pub fn check_cutoff(
    occ: &Occurrence,
    now: Timestamp,
    estimate: Duration,
    worst_case_rollback: Duration,
) -> CutoffVerdict {
    let needed = estimate.saturating_add(worst_case_rollback);
    let available = elapsed(now.max(occ.start), occ.end);
    match available.checked_sub(needed) {
        Some(slack) => CutoffVerdict::Fits {
            needed,
            available,
            slack,
        },
        None => CutoffVerdict::TooLate { needed, available },
    }
}

/// How far past the end of `occ` `now` is, for the report after a run; `None` when it is not.
pub fn overrun(occ: &Occurrence, now: Timestamp) -> Option<Duration> {
    (now > occ.end).then(|| elapsed(occ.end, now))
}

/// `to - from`, zero if `to` is not later.
fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}

/// Where an [`Estimate`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EstimateSource {
    /// The median of this many earlier runs of the same plan pair.
    History {
        /// How many runs.
        runs: usize,
    },
    /// The playbook's default: no earlier runs.
    Default,
}

/// How long a run is expected to take, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// The expected duration.
    pub duration: Duration,
    /// Where the figure came from.
    pub source: EstimateSource,
}

impl Estimate {
    /// The median of `earlier` (the durations of earlier runs for the same plan pair), or
    /// `default` (the playbook's) when there are none. With an even number of runs the median is
    /// the mean of the middle two.
    pub fn from_history(earlier: &[Duration], default: Duration) -> Estimate {
        if earlier.is_empty() {
            return Estimate {
                duration: default,
                source: EstimateSource::Default,
            };
        }
        let mut sorted = earlier.to_vec();
        sorted.sort_unstable();
        let mid = sorted.len() / 2;
        let duration = if sorted.len() % 2 == 1 {
            sorted[mid]
        } else {
            // Halves first: the sum of two large durations could overflow.
            sorted[mid - 1] / 2 + sorted[mid] / 2
        };
        Estimate {
            duration,
            source: EstimateSource::History {
                runs: earlier.len(),
            },
        }
    }
}

impl fmt::Display for Estimate {
    /// `3m12s (median of 5 earlier runs)` or `10m (playbook default)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let duration = format_duration(self.duration);
        match self.source {
            EstimateSource::History { runs: 1 } => write!(f, "{duration} (the 1 earlier run)"),
            EstimateSource::History { runs } => {
                write!(f, "{duration} (median of {runs} earlier runs)")
            }
            EstimateSource::Default => write!(f, "{duration} (playbook default)"),
        }
    }
}

/// A duration for people, to the second (rounded): `3m12s`, `1h30m`, `2h`, `0s`.
pub fn format_duration(duration: Duration) -> String {
    // Window figures are whole seconds; the formatting itself is the one for people, so
    // plans, summaries and window messages spell durations alike.
    let mut secs = duration.as_secs();
    if duration.subsec_millis() >= 500 {
        secs += 1;
    }
    crate::units::duration(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jiff::Timestamp;

    use super::{CutoffVerdict, Estimate, EstimateSource, check_cutoff, format_duration, overrun};
    use crate::window::Occurrence;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn occ() -> Occurrence {
        Occurrence {
            start: ts("2026-03-29T01:00:00Z"),
            end: ts("2026-03-29T02:00:00Z"),
        }
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn cutoff_fits_with_slack() {
        let v = check_cutoff(&occ(), ts("2026-03-29T01:10:00Z"), 20 * MIN, 15 * MIN);
        assert_eq!(
            v,
            CutoffVerdict::Fits {
                needed: 35 * MIN,
                available: 50 * MIN,
                slack: 15 * MIN
            }
        );
        assert!(v.fits());
        assert_eq!(
            v.to_string(),
            "fits: needs 35m with rollback, 50m left in the window (15m to spare)"
        );
    }

    #[test]
    fn cutoff_exact_fit_has_zero_slack() {
        let v = check_cutoff(&occ(), ts("2026-03-29T01:25:00Z"), 20 * MIN, 15 * MIN);
        assert_eq!(
            v,
            CutoffVerdict::Fits {
                needed: 35 * MIN,
                available: 35 * MIN,
                slack: Duration::ZERO
            }
        );
    }

    #[test]
    fn cutoff_too_late_reports_figures() {
        let v = check_cutoff(&occ(), ts("2026-03-29T01:26:00Z"), 20 * MIN, 15 * MIN);
        assert_eq!(
            v,
            CutoffVerdict::TooLate {
                needed: 35 * MIN,
                available: 34 * MIN
            }
        );
        assert_eq!(
            v.to_string(),
            "too late: needs 35m with rollback, only 34m left in the window"
        );
    }

    #[test]
    fn cutoff_before_the_window_counts_from_its_start() {
        let v = check_cutoff(&occ(), ts("2026-03-28T12:00:00Z"), 50 * MIN, 10 * MIN);
        assert_eq!(
            v,
            CutoffVerdict::Fits {
                needed: 60 * MIN,
                available: 60 * MIN,
                slack: Duration::ZERO
            }
        );
    }

    #[test]
    fn cutoff_after_the_window_has_nothing_available() {
        let v = check_cutoff(&occ(), ts("2026-03-29T03:00:00Z"), MIN, Duration::ZERO);
        assert_eq!(
            v,
            CutoffVerdict::TooLate {
                needed: MIN,
                available: Duration::ZERO
            }
        );
    }

    #[test]
    fn overrun_only_after_the_end() {
        assert_eq!(overrun(&occ(), ts("2026-03-29T01:59:59Z")), None);
        assert_eq!(overrun(&occ(), ts("2026-03-29T02:00:00Z")), None);
        assert_eq!(
            overrun(&occ(), ts("2026-03-29T02:07:30Z")),
            Some(Duration::from_secs(450))
        );
    }

    #[test]
    fn estimate_is_the_median_of_history() {
        let runs = [200, 192, 185, 300, 190].map(Duration::from_secs);
        let e = Estimate::from_history(&runs, 10 * MIN);
        assert_eq!(e.duration, Duration::from_secs(192));
        assert_eq!(e.source, EstimateSource::History { runs: 5 });
        assert_eq!(e.to_string(), "3m12s (median of 5 earlier runs)");
    }

    #[test]
    fn estimate_even_history_takes_the_mean_of_the_middle_two() {
        let runs = [100, 400, 200, 300].map(Duration::from_secs);
        let e = Estimate::from_history(&runs, 10 * MIN);
        assert_eq!(e.duration, Duration::from_secs(250));
        let one = Estimate::from_history(&[Duration::from_secs(61)], 10 * MIN);
        assert_eq!(one.to_string(), "1m1s (the 1 earlier run)");
    }

    #[test]
    fn estimate_without_history_is_the_default() {
        let e = Estimate::from_history(&[], 10 * MIN);
        assert_eq!(
            e,
            Estimate {
                duration: 10 * MIN,
                source: EstimateSource::Default
            }
        );
        assert_eq!(e.to_string(), "10m (playbook default)");
    }

    #[test]
    fn durations_read_like_heroku_timers() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(400)), "0s");
        assert_eq!(format_duration(Duration::from_millis(59_600)), "1m");
        assert_eq!(format_duration(Duration::from_secs(192)), "3m12s");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_secs(3601)), "1h1s");
        assert_eq!(format_duration(Duration::from_secs(26 * 3600)), "1d2h");
    }
}
