//! The simulator's timeline: what happened on the platform, with monotonic timestamps.
//!
//! Tests and benchmarks measure downtime from the platform's side with [`downtime`]: the time a
//! process type had no dyno `up` between its first scale to 0 and its restoration.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Above this many events, per-write events are no longer stored (only counted), so a
/// simulator left running for hours does not grow without bound.
const MAX_EVENTS: usize = 400_000;

/// One thing that happened, with its time since the simulator started and its wall time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEvent {
    /// Milliseconds since the simulator started (monotonic clock, microsecond precision).
    pub at_ms: f64,
    /// Wall-clock time (RFC 3339, UTC).
    pub wall: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The kinds of timeline events. Serialised with a `kind` tag in snake case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// A formation's quantity or size changed through the API.
    FormationChanged {
        app: String,
        process_type: String,
        from: u32,
        to: u32,
        size: String,
    },
    /// A dyno was created (state `starting`).
    DynoStarting {
        app: String,
        dyno: String,
        process_type: String,
    },
    /// A dyno reached state `up`.
    DynoUp {
        app: String,
        dyno: String,
        process_type: String,
    },
    /// A dyno stopped (`reason`: `scaled`, `restart`, `shutdown`). A rogue dyno (fault
    /// `ignore_scale_down`) records this too, as the platform no longer lists it, but keeps
    /// writing.
    DynoStopped {
        app: String,
        dyno: String,
        process_type: String,
        reason: String,
        rogue: bool,
    },
    /// A dyno wrote to an add-on's Redis (`ok: false` with the Redis error otherwise).
    Write {
        app: String,
        dyno: String,
        addon: String,
        key: String,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A dyno could not open (some of) its connections to an add-on.
    ConnectionFailed {
        app: String,
        dyno: String,
        addon: String,
        error: String,
    },
    /// A plan change started.
    ProvisioningStarted {
        addon: String,
        from_plan: String,
        to_plan: String,
    },
    /// The new server finished its initial sync with the old one.
    ProvisioningSynced { addon: String, keys: u64 },
    /// The plan change finished: the new server is the primary.
    ProvisioningSucceeded { addon: String, plan: String },
    /// The plan change failed; the add-on stays on `plan` with its old server.
    ProvisioningFailed {
        addon: String,
        plan: String,
        reason: String,
    },
    /// A redis-server process started.
    RedisStarted {
        addon: String,
        plan: String,
        port: u16,
        pid: u32,
    },
    /// A redis-server process stopped.
    RedisStopped { addon: String, port: u16, pid: u32 },
    /// A config var changed (the value is a secret and never recorded).
    ConfigVarChanged { app: String, name: String },
    /// The app's maintenance flag changed.
    MaintenanceChanged { app: String, on: bool },
    /// The add-on's data maintenance status changed.
    DataMaintenanceChanged { addon: String, status: String },
    /// The add-on's Redis settings changed through the Data API.
    RedisConfigChanged {
        addon: String,
        setting: String,
        value: String,
    },
    /// A fault was armed.
    FaultInjected { fault: String },
    /// An armed fault fired.
    FaultFired { fault: String, detail: String },
    /// The HTTP API went away (simulated restart) or came back.
    ApiRestart { phase: String },
}

/// The recorder shared by every part of the simulator.
#[derive(Debug)]
pub struct Timeline {
    start: Instant,
    events: Mutex<Vec<TimelineEvent>>,
    dropped_writes: Mutex<u64>,
}

impl Timeline {
    /// A timeline whose zero is `start`.
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            events: Mutex::new(Vec::new()),
            dropped_writes: Mutex::new(0),
        }
    }

    /// When the simulator started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Milliseconds since the start, now.
    pub fn now_ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    /// Records an event now.
    pub fn record(&self, kind: EventKind) {
        let at_ms = self.now_ms();
        let wall = jiff::Timestamp::now().to_string();
        let mut events = lock(&self.events);
        if events.len() >= MAX_EVENTS && matches!(kind, EventKind::Write { .. }) {
            *lock(&self.dropped_writes) += 1;
            return;
        }
        events.push(TimelineEvent { at_ms, wall, kind });
    }

    /// A copy of every event so far, oldest first.
    pub fn events(&self) -> Vec<TimelineEvent> {
        lock(&self.events).clone()
    }

    /// Writes not stored because the timeline was full.
    pub fn dropped_writes(&self) -> u64 {
        *lock(&self.dropped_writes)
    }
}

/// Locks a mutex, recovering the data when a holder panicked (the data are plain records).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Total time `process_type` (of any app) had no dyno `up` while it was quiesced: from the
/// moment its last dyno stopped after a scale to 0 until the first dyno is `up` again after a
/// scale back up (its restoration). Several quiesce windows add up; a window still open runs
/// until `now_ms`. Gaps caused by restarts (config var changes) outside a quiesce window do not
/// count. `None` when the type was never scaled to 0.
///
/// Rogue dynos (fault `ignore_scale_down`) do not count as running: the platform no longer
/// lists them.
pub fn downtime(events: &[TimelineEvent], process_type: &str, now_ms: f64) -> Option<Duration> {
    let mut up: u32 = 0;
    let mut seen_zero = false;
    let mut quiesced = false;
    let mut restoring = false;
    let mut zero_since: Option<f64> = None;
    let mut total = 0.0;
    for e in events {
        match &e.kind {
            EventKind::FormationChanged {
                process_type: t,
                to,
                ..
            } if t == process_type => {
                if *to == 0 {
                    seen_zero = true;
                    quiesced = true;
                    restoring = false;
                    if up == 0 && zero_since.is_none() {
                        zero_since = Some(e.at_ms);
                    }
                } else if quiesced {
                    restoring = true;
                }
            }
            EventKind::DynoUp {
                process_type: t, ..
            } if t == process_type => {
                up += 1;
                if let Some(since) = zero_since.take() {
                    total += e.at_ms - since;
                }
                if restoring {
                    quiesced = false;
                    restoring = false;
                }
            }
            EventKind::DynoStopped {
                process_type: t, ..
            } if t == process_type => {
                up = up.saturating_sub(1);
                if up == 0 && quiesced && zero_since.is_none() {
                    zero_since = Some(e.at_ms);
                }
            }
            _ => {}
        }
    }
    if !seen_zero {
        return None;
    }
    if let Some(since) = zero_since {
        total += now_ms - since;
    }
    Some(ms_to_duration(total))
}

/// Milliseconds (as recorded) to a duration, rounded to the microsecond.
pub fn ms_to_duration(ms: f64) -> Duration {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let micros = (ms.max(0.0) * 1000.0).round() as u64;
    Duration::from_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(at_ms: f64, kind: EventKind) -> TimelineEvent {
        TimelineEvent {
            at_ms,
            wall: String::new(),
            kind,
        }
    }
    fn scale(at: f64, from: u32, to: u32) -> TimelineEvent {
        ev(
            at,
            EventKind::FormationChanged {
                app: "a".into(),
                process_type: "web".into(),
                from,
                to,
                size: "standard-1X".into(),
            },
        )
    }
    fn up(at: f64, n: u32) -> TimelineEvent {
        ev(
            at,
            EventKind::DynoUp {
                app: "a".into(),
                dyno: format!("web.{n}"),
                process_type: "web".into(),
            },
        )
    }
    fn stop(at: f64, n: u32) -> TimelineEvent {
        ev(
            at,
            EventKind::DynoStopped {
                app: "a".into(),
                dyno: format!("web.{n}"),
                process_type: "web".into(),
                reason: "scaled".into(),
                rogue: false,
            },
        )
    }

    #[test]
    fn downtime_runs_from_the_last_stop_to_the_first_up_after_restore() {
        let events = vec![
            up(0.0, 1),
            up(0.0, 2),
            scale(1000.0, 2, 0),
            stop(1010.0, 1),
            stop(1020.0, 2),
            scale(5000.0, 0, 2),
            up(5300.0, 1),
            up(5310.0, 2),
        ];
        let d = downtime(&events, "web", 9000.0).unwrap();
        assert_eq!(d, Duration::from_millis(4280));
        assert_eq!(downtime(&events, "worker", 9000.0), None);
    }

    #[test]
    fn downtime_counts_until_now_when_not_restored() {
        let events = vec![up(0.0, 1), scale(1000.0, 1, 0), stop(1000.0, 1)];
        assert_eq!(
            downtime(&events, "web", 3000.0).unwrap(),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn restarts_after_restoration_are_not_downtime() {
        let events = vec![
            up(0.0, 1),
            scale(1000.0, 1, 0),
            stop(1000.0, 1),
            scale(2000.0, 0, 1),
            up(2500.0, 1),
            stop(4000.0, 1),
        ];
        assert_eq!(
            downtime(&events, "web", 9000.0).unwrap(),
            Duration::from_millis(1500)
        );
    }
}
