//! The stable shapes of what unattended runs emit: one JSON object per run event for
//! `--log-format json`, and the notifications `--notify` posts. Pure: events in, values out;
//! the caller adds the time. Every field is secret-free (names, plans, counts, redacted lines).
//!
//! The names and fields are an interface (README "JSON log events", "Notifications"): add
//! fields, never rename or remove one.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::engine::{Action, Outcome};
use crate::runner::RunEvent;
use crate::window::format_duration;

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One `--log-format json` line (without `ts`, which the writer puts first).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum LogEvent {
    RunStarted {
        run_id: String,
        journal: String,
    },
    StepStarted {
        step: usize,
        action: Action,
        detail: String,
    },
    StepDone {
        step: usize,
        action: Action,
        elapsed_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    StepFailed {
        step: usize,
        action: Action,
        message: String,
    },
    Waiting {
        subject: String,
        status: String,
    },
    Keys {
        subject: String,
        done: u64,
        total: u64,
    },
    DowntimeStarted,
    DowntimeEnded,
    CompensationStarted {
        compensation: String,
    },
    CompensationDone {
        compensation: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    Warning {
        message: String,
    },
    RunFinished {
        outcome: Outcome,
    },
    WindowWait {
        window: String,
        opens_at: String,
        remaining_ms: u64,
    },
    WindowOverrun {
        window: String,
        ends_at: String,
        by_ms: u64,
        expected: bool,
    },
    WatchStarted {
        duration_ms: u64,
    },
    WatchHit {
        kind: &'static str,
        line: String,
        count: usize,
    },
    WatchDone {
        hits: usize,
        needs_attention: bool,
    },
    /// Some webhook notifications failed or were dropped; the run's outcome is unaffected.
    Notifications {
        delivered: usize,
        failed: usize,
        dropped: usize,
        redirected: usize,
    },
}

impl From<&RunEvent> for LogEvent {
    fn from(event: &RunEvent) -> Self {
        match event.clone() {
            RunEvent::Started { run_id, journal } => Self::RunStarted { run_id, journal },
            RunEvent::StepStarted {
                number,
                action,
                detail,
            } => Self::StepStarted {
                step: number,
                action,
                detail,
            },
            RunEvent::StepDone {
                number,
                action,
                elapsed,
                note,
            } => Self::StepDone {
                step: number,
                action,
                elapsed_ms: ms(elapsed),
                note,
            },
            RunEvent::StepFailed {
                number,
                action,
                message,
            } => Self::StepFailed {
                step: number,
                action,
                message,
            },
            RunEvent::Waiting { subject, status } => Self::Waiting { subject, status },
            RunEvent::Keys {
                subject,
                done,
                total,
            } => Self::Keys {
                subject,
                done,
                total,
            },
            RunEvent::Downtime { started: true } => Self::DowntimeStarted,
            RunEvent::Downtime { started: false } => Self::DowntimeEnded,
            RunEvent::Compensating {
                compensation,
                done: false,
                ..
            } => Self::CompensationStarted {
                compensation: compensation.name().to_owned(),
            },
            RunEvent::Compensating {
                compensation,
                done: true,
                message,
            } => Self::CompensationDone {
                compensation: compensation.name().to_owned(),
                message,
            },
            RunEvent::Warning { message } => Self::Warning { message },
            RunEvent::Finished { outcome } => Self::RunFinished { outcome },
            // RFC 3339 in UTC, like every line's `ts`: a log shipper parses it as it is.
            RunEvent::WindowWait {
                window,
                opens_at_utc,
                remaining,
                ..
            } => Self::WindowWait {
                window,
                opens_at: opens_at_utc.to_string(),
                remaining_ms: ms(remaining),
            },
            RunEvent::WindowOverrun {
                window,
                ends_at_utc,
                by,
                expected,
                ..
            } => Self::WindowOverrun {
                window,
                ends_at: ends_at_utc.to_string(),
                by_ms: ms(by),
                expected,
            },
            RunEvent::WatchStarted { duration } => Self::WatchStarted {
                duration_ms: ms(duration),
            },
            RunEvent::WatchHit { kind, line, count } => Self::WatchHit {
                kind: kind.name(),
                line,
                count,
            },
            RunEvent::WatchDone {
                hits,
                needs_attention,
            } => Self::WatchDone {
                hits,
                needs_attention,
            },
            RunEvent::NotificationsDone {
                delivered,
                failed,
                dropped,
                redirected,
            } => Self::Notifications {
                delivered,
                failed,
                dropped,
                redirected,
            },
        }
    }
}

/// The human line for the events of unattended runs (the terminal reporter draws the rest).
pub fn human_line(event: &RunEvent) -> Option<String> {
    Some(match event {
        RunEvent::WindowWait {
            window,
            opens_at,
            remaining,
            ..
        } => format!(
            "waiting for the maintenance window `{window}`: opens at {opens_at} (in {}); nothing has been written",
            format_duration(*remaining)
        ),
        RunEvent::WindowOverrun {
            window,
            ends_at,
            by,
            expected: true,
            ..
        } => format!(
            "warning: this run may end up to {} after the window `{window}` closes ({ends_at}): the rest of its estimate and a worst-case rollback no longer fit; past the point of no return it finishes or rolls back regardless",
            format_duration(*by)
        ),
        RunEvent::WindowOverrun {
            window,
            ends_at,
            by,
            expected: false,
            ..
        } => format!(
            "warning: the window `{window}` closed at {ends_at}, {} ago; past the point of no return the run finishes or rolls back regardless",
            format_duration(*by)
        ),
        RunEvent::WatchStarted { duration } => format!(
            "watching the app's logs for {} (R14, H10, max number of clients, too many connections, TLS handshake drops)",
            format_duration(*duration)
        ),
        // An app's log line is the app's text: its colour codes and control characters are
        // shown, not obeyed.
        RunEvent::WatchHit { kind, line, count } => {
            format!(
                "watch: {kind} (hit {count}): {}",
                crate::printable::key_str(line)
            )
        }
        RunEvent::WatchDone { hits: 0, .. } => "watch: no errors in the logs".to_owned(),
        RunEvent::WatchDone { hits, .. } => format!("watch: {hits} error line(s) in the logs"),
        RunEvent::NotificationsDone {
            delivered,
            failed,
            dropped,
            redirected,
        } => format!(
            "warning: notifications: {delivered} delivered, {failed} failed{}, {dropped} dropped (the run's outcome is unaffected)",
            if *redirected > 0 {
                format!(
                    " ({redirected} answered with a redirect: upshift does not follow a webhook's redirects; give the final URL)"
                )
            } else {
                String::new()
            }
        ),
        _ => return None,
    })
}

/// A webhook notification. `text` makes it a valid Slack incoming-webhook message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// `started`, `point-of-no-return`, `rollback-started`, `succeeded`, `rolled-back`,
    /// `needs-attention`, `blocked`, `window-overrun`, `watch-hit`.
    pub event: &'static str,
    pub app: String,
    /// `ADDON=PLAN` per change.
    pub changes: Vec<String>,
    pub run_id: Option<String>,
    pub outcome: Option<Outcome>,
    /// Time the writers were stopped so far (the whole downtime once finished).
    pub downtime_ms: u64,
    pub text: String,
    /// Event-specific detail (the watched line, the overrun), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Turns run events into notifications, remembering the run id and the downtime. Pure: the
/// caller passes the monotonic time of each event.
#[derive(Debug, Clone, Default)]
pub struct Notifications {
    app: String,
    changes: Vec<String>,
    run_id: Option<String>,
    down_since: Option<Duration>,
    downtime: Duration,
    rollback_announced: bool,
    overrun_announced: bool,
}

impl Notifications {
    /// For a run of `changes` (`ADDON=PLAN`) on `app`.
    pub fn new(app: impl Into<String>, changes: Vec<String>) -> Self {
        Self {
            app: app.into(),
            changes,
            ..Self::default()
        }
    }

    /// The notification `event` calls for at monotonic time `at`, if any.
    pub fn on_event(&mut self, event: &RunEvent, at: Duration) -> Option<Notification> {
        let (name, outcome, text, detail) = match event {
            RunEvent::Started { run_id, .. } => {
                self.run_id = Some(run_id.clone());
                ("started", None, "started".to_owned(), None)
            }
            RunEvent::Downtime { started: true } => {
                self.down_since.get_or_insert(at);
                return None;
            }
            RunEvent::Downtime { started: false } => {
                if let Some(since) = self.down_since.take() {
                    self.downtime += at.saturating_sub(since);
                }
                return None;
            }
            RunEvent::StepStarted {
                action: Action::ChangePlan,
                ..
            } => (
                "point-of-no-return",
                None,
                "passed the point of no return: changing the plan; it now finishes or rolls back"
                    .to_owned(),
                None,
            ),
            RunEvent::Compensating { done: false, .. } if !self.rollback_announced => {
                self.rollback_announced = true;
                ("rollback-started", None, "rolling back".to_owned(), None)
            }
            RunEvent::Finished { outcome } => {
                if let Some(since) = self.down_since.take() {
                    self.downtime += at.saturating_sub(since);
                }
                let name = outcome.as_str();
                (name, Some(*outcome), name.to_owned(), None)
            }
            RunEvent::WindowOverrun { .. } if !self.overrun_announced => {
                self.overrun_announced = true;
                let line = human_line(event).unwrap_or_default();
                let line = line.trim_start_matches("warning: ").to_owned();
                ("window-overrun", None, line.clone(), Some(line))
            }
            RunEvent::WatchDone {
                hits,
                needs_attention: true,
            } => (
                "needs-attention",
                Some(Outcome::NeedsAttention),
                format!(
                    "needs-attention: the logs showed {hits} error line(s) after the change (on_watch_hit = \"needs-attention\")"
                ),
                None,
            ),
            RunEvent::WatchHit { kind, line, count } if *count == 1 => (
                "watch-hit",
                None,
                format!("{kind} in the logs after the change (hit {count})"),
                Some(line.clone()),
            ),
            _ => return None,
        };
        let downtime = self.downtime
            + self
                .down_since
                .map_or(Duration::ZERO, |since| at.saturating_sub(since));
        let mut slack = format!("upshift {} {}: {text}", self.app, self.changes.join(" "));
        if downtime > Duration::ZERO {
            let _ = write!(slack, " (writers stopped {})", format_duration(downtime));
        }
        if let Some(id) = &self.run_id {
            let _ = write!(slack, " [run {id}]");
        }
        Some(Notification {
            event: name,
            app: self.app.clone(),
            changes: self.changes.clone(),
            run_id: self.run_id.clone(),
            outcome,
            downtime_ms: ms(downtime),
            // The human text quotes the API and the app's logs; the fields keep them exact.
            text: crate::printable::text(&slack),
            detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Compensation;
    use crate::unattended::watch::WatchKind;

    fn events() -> Vec<RunEvent> {
        vec![
            RunEvent::Started {
                run_id: "20261129-010000-ab12".into(),
                journal: "/state/runs/20261129-010000-ab12/journal.jsonl".into(),
            },
            RunEvent::StepStarted {
                number: 4,
                action: Action::Scale,
                detail: "scale web 2 -> 0 in one call".into(),
            },
            RunEvent::Downtime { started: true },
            RunEvent::StepDone {
                number: 4,
                action: Action::Scale,
                elapsed: Duration::from_millis(412),
                note: None,
            },
            RunEvent::StepStarted {
                number: 7,
                action: Action::ChangePlan,
                detail: "ENKETO_REDIS_MAIN premium-0 -> premium-1".into(),
            },
            RunEvent::StepFailed {
                number: 8,
                action: Action::WaitProvisioned,
                message: "provisioning failed".into(),
            },
            RunEvent::Waiting {
                subject: "ENKETO_REDIS_MAIN".into(),
                status: "preparing".into(),
            },
            RunEvent::Keys {
                subject: "ENKETO_REDIS_MAIN".into(),
                done: 500,
                total: 1000,
            },
            RunEvent::Compensating {
                compensation: Compensation::RestoreFormation,
                done: false,
                message: None,
            },
            RunEvent::Compensating {
                compensation: Compensation::RestoreFormation,
                done: true,
                message: None,
            },
            RunEvent::Downtime { started: false },
            RunEvent::Warning {
                message: "WARN disk is nearly full".into(),
            },
            RunEvent::WindowOverrun {
                window: "sun 02:00-04:00 Europe/Berlin".into(),
                ends_at: "2026-11-29 04:00 CET".into(),
                ends_at_utc: "2026-11-29T03:00:00Z".parse().unwrap(),
                by: Duration::from_secs(120),
                expected: true,
            },
            RunEvent::Finished {
                outcome: Outcome::RolledBack,
            },
            RunEvent::WindowWait {
                window: "sun 02:00-04:00 Europe/Berlin".into(),
                opens_at: "2026-11-29 02:00 CET".into(),
                opens_at_utc: "2026-11-29T01:00:00Z".parse().unwrap(),
                remaining: Duration::from_secs(300),
            },
            RunEvent::WatchStarted {
                duration: Duration::from_secs(300),
            },
            RunEvent::WatchHit {
                kind: WatchKind::MaxClients,
                line: "app[web.1]: Error: ERR max number of clients reached".into(),
                count: 1,
            },
            RunEvent::WatchDone {
                hits: 1,
                needs_attention: true,
            },
        ]
    }

    #[test]
    fn json_log_event_shapes() {
        let lines: Vec<String> = events()
            .iter()
            .map(|e| serde_json::to_string(&LogEvent::from(e)).unwrap())
            .collect();
        insta::assert_snapshot!(lines.join("\n"));
    }

    #[test]
    fn notification_shapes() {
        let mut n = Notifications::new("enketo-demo", vec!["enketo_redis_main=premium-1".into()]);
        let sent: Vec<Notification> = events()
            .iter()
            .enumerate()
            .filter_map(|(i, e)| n.on_event(e, Duration::from_secs(10 * i as u64)))
            .collect();
        let names: Vec<&str> = sent.iter().map(|s| s.event).collect();
        assert_eq!(
            names,
            vec![
                "started",
                "point-of-no-return",
                "rollback-started",
                "window-overrun",
                "rolled-back",
                "watch-hit",
                "needs-attention"
            ]
        );
        insta::assert_json_snapshot!(sent);
    }

    #[test]
    fn a_log_line_is_shown_not_obeyed() {
        let line = human_line(&RunEvent::WatchHit {
            kind: WatchKind::MaxClients,
            line: "app[web.1]: \x1b[31mERR max number of clients reached\x1b[0m\r".into(),
            count: 2,
        })
        .unwrap();
        assert!(
            line.ends_with(
                "(hit 2): app[web.1]: \\x1b[31mERR max number of clients reached\\x1b[0m\\x0d"
            ),
            "{line}"
        );
    }
}
