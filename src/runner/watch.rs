//! The post-change watch (`--watch`): after the formation is restored, tail the app's logs for
//! a while and report the errors the Enketo guide warns about (see
//! [`crate::unattended::watch`]). Read-only: it never writes to the platform.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::events::watch::{WatchKind, classify, redact};
use crate::heroku::models::LogSessionRequest;
use crate::playbook::OnWatchHit;
use crate::runner::{RunEvent, Runner, error_chain};

/// Hits reported as events per kind; later ones are only counted (a full connection limit
/// logs every second from every dyno).
const REPORTED_PER_KIND: usize = 3;
/// Pause before reopening a log session that ended early.
const REOPEN_PAUSE: Duration = Duration::from_secs(1);

/// What the watch saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchReport {
    /// Hits per kind.
    pub hits: BTreeMap<WatchKind, usize>,
    /// The first line of each kind (redacted).
    pub examples: BTreeMap<WatchKind, String>,
    /// Why the logs could not be read, when they could not (the watch then saw nothing).
    pub error: Option<String>,
}

impl WatchReport {
    /// All hits.
    pub fn total(&self) -> usize {
        self.hits.values().sum()
    }
}

impl Runner {
    /// Tails `app`'s logs for `duration`, classifying each line. Log sessions that end early
    /// (Heroku closes idle tails) are reopened until the time is up.
    /// `on_hit` is the playbook's `on_watch_hit`: it only shapes the closing event here; the
    /// caller decides the exit code.
    pub async fn watch(&self, app: &str, duration: Duration, on_hit: OnWatchHit) -> WatchReport {
        self.reporter.report(&RunEvent::WatchStarted { duration });
        let mut report = WatchReport::default();
        let deadline = tokio::time::Instant::now() + duration;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(256);
        let client = self.client.clone();
        let app_name = app.to_owned();
        let reader = tokio::spawn(async move {
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    return Ok::<(), crate::heroku::HerokuError>(());
                }
                let session = client
                    .create_log_session(
                        &app_name,
                        &LogSessionRequest {
                            lines: Some(0),
                            tail: Some(true),
                            ..LogSessionRequest::default()
                        },
                    )
                    .await?;
                client
                    .stream_log(&session.logplex_url, left, tx.clone())
                    .await?;
                tokio::time::sleep(REOPEN_PAUSE.min(left)).await;
            }
        });
        while let Some(line) = rx.recv().await {
            let Some(kind) = classify(&line) else {
                continue;
            };
            let count = {
                let n = report.hits.entry(kind).or_insert(0);
                *n += 1;
                *n
            };
            let line = redact(&line);
            report.examples.entry(kind).or_insert_with(|| line.clone());
            if count <= REPORTED_PER_KIND {
                self.reporter
                    .report(&RunEvent::WatchHit { kind, line, count });
            }
        }
        match reader.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => report.error = Some(error_chain(&e)),
            Err(e) => report.error = Some(e.to_string()),
        }
        if let Some(e) = &report.error {
            self.reporter.report(&RunEvent::Warning {
                message: format!("the log watch could not read the logs: {e}"),
            });
        }
        self.reporter.report(&RunEvent::WatchDone {
            hits: report.total(),
            needs_attention: report.total() > 0 && on_hit == OnWatchHit::NeedsAttention,
        });
        report
    }
}
