//! When a figure has stopped moving: clients come back over seconds after the writers return,
//! so one reading taken the moment dynos are `up` says little (40 of 52 connections, 1 of 36).
//! Pure: samples and times in, a verdict out.

use std::time::{Duration, Instant};

/// Samples of one figure over time; steady once it has not changed for `span`.
#[derive(Debug, Clone)]
pub struct Steady {
    span: Duration,
    value: Option<u64>,
    since: Option<Instant>,
}

impl Steady {
    /// A tracker that calls a figure steady after it has held for `span`.
    pub fn new(span: Duration) -> Self {
        Self {
            span,
            value: None,
            since: None,
        }
    }

    /// Records a reading taken at `at`; returns whether the figure is now steady (the same
    /// value since at least `span` ago).
    pub fn push(&mut self, value: u64, at: Instant) -> bool {
        if self.value != Some(value) {
            self.value = Some(value);
            self.since = Some(at);
        }
        self.since
            .is_some_and(|since| at.saturating_duration_since(since) >= self.span)
    }
}

#[cfg(test)]
mod tests {
    use super::Steady;
    use std::time::{Duration, Instant};

    #[test]
    fn a_ramp_is_not_steady_until_it_holds() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut s = Steady::new(Duration::from_millis(500));
        assert!(!s.push(1, ms(0)));
        assert!(!s.push(40, ms(300)));
        assert!(!s.push(52, ms(600)));
        assert!(!s.push(52, ms(900)));
        assert!(s.push(52, ms(1100)));
        // A change starts the wait again.
        assert!(!s.push(53, ms(1200)));
        assert!(s.push(53, ms(1700)));
    }

    #[test]
    fn a_zero_span_is_steady_at_once() {
        let mut s = Steady::new(Duration::ZERO);
        assert!(s.push(7, Instant::now()));
    }
}
