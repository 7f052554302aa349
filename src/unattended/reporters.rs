//! Reporters for unattended runs: [`Tee`] hands every event to several reporters (the terminal
//! or JSON lines, plus the notifier), [`JsonLines`] writes one JSON object per event.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::runner::{Reporter, RunEvent};
use crate::unattended::event::LogEvent;

/// Hands each event to every reporter, in order.
#[derive(Clone, Default)]
pub struct Tee(Vec<Arc<dyn Reporter>>);

impl std::fmt::Debug for Tee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tee")
            .field("reporters", &self.0.len())
            .finish()
    }
}

impl Tee {
    /// A tee of `reporters`.
    pub fn new(reporters: Vec<Arc<dyn Reporter>>) -> Self {
        Self(reporters)
    }
}

impl Reporter for Tee {
    fn report(&self, event: &RunEvent) {
        for r in &self.0 {
            r.report(event);
        }
    }
}

/// One line of `--log-format json`: the time first, then the event.
#[derive(Serialize)]
struct Line<'a> {
    ts: String,
    #[serde(flatten)]
    event: &'a LogEvent,
}

/// Writes each event as one JSON object on its own line (stderr in the CLI), so log shippers
/// and cron mail both read it. Write errors are ignored: a closed stderr must not fail a run.
pub struct JsonLines<W: Write + Send> {
    out: Mutex<W>,
}

impl<W: Write + Send> std::fmt::Debug for JsonLines<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLines").finish_non_exhaustive()
    }
}

impl<W: Write + Send> JsonLines<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out: Mutex::new(out),
        }
    }

    /// The line for `event` at `ts`.
    pub fn line(event: &RunEvent, ts: jiff::Timestamp) -> String {
        let event = LogEvent::from(event);
        serde_json::to_string(&Line {
            ts: ts.to_string(),
            event: &event,
        })
        .unwrap_or_default()
    }

    /// The writer back (tests).
    pub fn into_inner(self) -> W {
        self.out
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<W: Write + Send> Reporter for JsonLines<W> {
    fn report(&self, event: &RunEvent) {
        let line = Self::line(event, jiff::Timestamp::now());
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Outcome;

    #[derive(Default)]
    struct Count(Mutex<usize>);
    impl Reporter for Count {
        fn report(&self, _event: &RunEvent) {
            *self.0.lock().unwrap() += 1;
        }
    }

    #[test]
    fn the_notification_warning_is_a_json_event() {
        let line = JsonLines::<Vec<u8>>::line(
            &RunEvent::NotificationsDone {
                delivered: 1,
                failed: 2,
                dropped: 3,
                redirected: 0,
            },
            jiff::Timestamp::UNIX_EPOCH,
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "notifications", "{line}");
        assert_eq!(
            (&v["delivered"], &v["failed"], &v["dropped"]),
            (&1.into(), &2.into(), &3.into())
        );
    }

    #[test]
    fn tee_hands_every_event_to_every_reporter() {
        let a = Arc::new(Count::default());
        let b = Arc::new(Count::default());
        let tee = Tee::new(vec![a.clone(), b.clone()]);
        tee.report(&RunEvent::Finished {
            outcome: Outcome::Succeeded,
        });
        assert_eq!((*a.0.lock().unwrap(), *b.0.lock().unwrap()), (1, 1));
    }

    #[test]
    fn json_lines_put_the_time_first_one_event_per_line() {
        let r = JsonLines::new(Vec::new());
        r.report(&RunEvent::Downtime { started: true });
        r.report(&RunEvent::Finished {
            outcome: Outcome::Succeeded,
        });
        let text = String::from_utf8(r.into_inner()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("{\"ts\":\""), "{}", lines[0]);
        assert!(
            lines[0].ends_with(",\"event\":\"downtime-started\"}"),
            "{}",
            lines[0]
        );
        let ts: jiff::Timestamp = "2026-11-29T01:00:00Z".parse().unwrap();
        assert_eq!(
            JsonLines::<Vec<u8>>::line(
                &RunEvent::Finished {
                    outcome: Outcome::NeedsAttention
                },
                ts
            ),
            r#"{"ts":"2026-11-29T01:00:00Z","event":"run-finished","outcome":"needs-attention"}"#
        );
    }
}
