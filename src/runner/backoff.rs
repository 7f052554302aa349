//! When a compensation tries again: the pause before the next attempt after a transient
//! failure, as pure arithmetic (no clock, no randomness of its own) so that it is unit-tested.
//!
//! The Heroku client already retries each idempotent call a few times; this is the outer loop
//! for compensations only. Undoing is worth waiting for: a rollback that gives up after six
//! calls leaves the writers stopped over a rate-limit burst that would have passed.

use std::time::Duration;

/// What made a compensation's failure worth another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transient {
    /// The platform's `Retry-After`, when it gave one: it knows when its pool refills.
    pub retry_after: Option<Duration>,
}

/// First pause between compensation attempts; it doubles per attempt.
const BASE: Duration = Duration::from_secs(1);
/// Cap on one pause without a `Retry-After`: often enough to notice the platform is back.
const CAP: Duration = Duration::from_secs(30);
/// Floor on a pause when the rate-limit pool was last seen empty and the platform named no
/// time: Heroku refills about 75 calls a minute, so this buys a handful of calls.
const EMPTY_POOL_PAUSE: Duration = Duration::from_secs(10);

/// The pause before attempt `attempt + 1` (`attempt` counts from 1), or `None` when the
/// deadline has passed and the compensation should give up.
///
/// A `Retry-After` is honoured as given; otherwise the backoff doubles from 1 s up to 30 s
/// with up to 25% jitter (`jitter` in 0..=1) so that parallel runs do not retry in step, and
/// is at least 10 s while the rate-limit pool (`rate_remaining`, as last reported) is empty.
/// The pause never runs past the deadline (`left`): the last attempt is made right at it.
pub(crate) fn next_pause(
    attempt: u32,
    transient: Transient,
    rate_remaining: u32,
    jitter: f64,
    left: Duration,
) -> Option<Duration> {
    if left.is_zero() {
        return None;
    }
    let pause = transient.retry_after.unwrap_or_else(|| {
        let exp = BASE.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let backoff = exp.min(CAP).mul_f64(1.0 + 0.25 * jitter.clamp(0.0, 1.0));
        if rate_remaining == 0 {
            backoff.max(EMPTY_POOL_PAUSE)
        } else {
            backoff
        }
    });
    Some(pause.min(left))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Transient, next_pause};

    const NONE: Transient = Transient { retry_after: None };
    const MIN: Duration = Duration::from_secs(60);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let pauses: Vec<_> = (1..=7)
            .map(|a| next_pause(a, NONE, 1000, 0.0, 10 * MIN).unwrap())
            .collect();
        assert_eq!(
            pauses,
            [
                secs(1),
                secs(2),
                secs(4),
                secs(8),
                secs(16),
                secs(30),
                secs(30)
            ]
        );
        // Huge attempt counts neither overflow nor exceed the cap (plus jitter).
        assert_eq!(
            next_pause(u32::MAX, NONE, 1000, 1.0, 10 * MIN),
            Some(secs(30).mul_f64(1.25))
        );
    }

    #[test]
    fn jitter_adds_at_most_a_quarter() {
        assert_eq!(
            next_pause(3, NONE, 1000, 1.0, 10 * MIN),
            Some(Duration::from_secs(5))
        );
        assert_eq!(next_pause(3, NONE, 1000, 7.0, 10 * MIN), Some(secs(5)));
        assert_eq!(next_pause(3, NONE, 1000, -1.0, 10 * MIN), Some(secs(4)));
    }

    #[test]
    fn retry_after_is_honoured_as_given() {
        let t = Transient {
            retry_after: Some(secs(1)),
        };
        assert_eq!(next_pause(9, t, 0, 1.0, 10 * MIN), Some(secs(1)));
        let t = Transient {
            retry_after: Some(secs(120)),
        };
        assert_eq!(next_pause(1, t, 0, 0.0, 10 * MIN), Some(secs(120)));
    }

    #[test]
    fn an_empty_pool_waits_for_it_to_refill() {
        assert_eq!(next_pause(1, NONE, 0, 0.0, 10 * MIN), Some(secs(10)));
        assert_eq!(next_pause(6, NONE, 0, 0.0, 10 * MIN), Some(secs(30)));
    }

    #[test]
    fn the_deadline_bounds_every_pause_and_ends_the_retries() {
        assert_eq!(next_pause(6, NONE, 1000, 0.0, secs(3)), Some(secs(3)));
        let t = Transient {
            retry_after: Some(secs(60)),
        };
        assert_eq!(next_pause(1, t, 1000, 0.0, secs(2)), Some(secs(2)));
        assert_eq!(next_pause(1, NONE, 1000, 0.0, Duration::ZERO), None);
        assert_eq!(next_pause(1, t, 1000, 0.0, Duration::ZERO), None);
    }
}
