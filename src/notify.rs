//! Webhook notifications (`--notify URL`, `UPSHIFT_NOTIFY_URL`): a [`Reporter`] that turns the
//! notable run events into JSON POSTs (see [`crate::unattended::event::Notification`]).
//!
//! Notifications never block or fail a run: `report` only queues (a bounded queue; when it is
//! full the notification is dropped and counted), one spawned task delivers them in order with
//! retries and backoff, and [`Notifier::finish`] gives the queue a bounded time at exit.
//!
//! This module has its own small reqwest client on purpose: the Heroku client carries the
//! Heroku token, its retry policy and its base URLs, none of which belong near a third-party
//! webhook. Webhook URLs are secrets (Slack's carry a token in the path), so only their scheme
//! and host ever reach output.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use url::Url;

use crate::runner::{Reporter, RunEvent};
use crate::unattended::event::{Notification, Notifications};

/// A `--notify` URL that cannot be used.
#[derive(Debug, Error)]
pub enum NotifyError {
    #[error("--notify {shown} is not an http(s) URL: give e.g. https://hooks.slack.com/services/…")]
    BadUrl { shown: String },
    #[error("cannot set up the webhook client")]
    Client { source: reqwest::Error },
}

/// Delivery settings.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Tries per notification and URL.
    pub attempts: u32,
    /// The first retry's delay; doubled each retry.
    pub backoff: Duration,
    /// One POST's time limit.
    pub request_timeout: Duration,
    /// Notifications waiting at most; more are dropped.
    pub queue: usize,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            attempts: 4,
            backoff: Duration::from_millis(500),
            request_timeout: Duration::from_secs(5),
            queue: 64,
        }
    }
}

/// How delivery went, for the line printed at exit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifySummary {
    pub delivered: usize,
    pub failed: usize,
    /// Dropped because the queue was full or the exit budget ran out.
    pub dropped: usize,
}

/// A URL for output: scheme and host only.
pub fn shown(url: &Url) -> String {
    format!("{}://{}", url.scheme(), url.host_str().unwrap_or("?"))
}

/// Parses `--notify` values.
///
/// # Errors
/// A value that is not an http(s) URL (the message shows no more than its scheme and host).
pub fn parse_urls(given: &[String]) -> Result<Vec<Url>, NotifyError> {
    given
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| match Url::parse(s.trim()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(u),
            Ok(u) => Err(NotifyError::BadUrl { shown: shown(&u) }),
            Err(_) => Err(NotifyError::BadUrl {
                shown: "(unparsable)".into(),
            }),
        })
        .collect()
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicUsize,
    failed: AtomicUsize,
    dropped: AtomicUsize,
}

/// Posts notifications to webhooks from a background task.
#[derive(Debug)]
pub struct Notifier {
    shape: Mutex<Notifications>,
    tx: Mutex<Option<mpsc::Sender<Notification>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    epoch: Instant,
    counters: Arc<Counters>,
}

impl Notifier {
    /// Starts the delivery task (call inside a Tokio runtime) for a run of `changes` on `app`.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn start(
        urls: Vec<Url>,
        app: &str,
        changes: Vec<String>,
        config: &NotifyConfig,
    ) -> Result<Self, NotifyError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .user_agent(concat!("upshift/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| NotifyError::Client { source })?;
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(deliver(http, urls, rx, config.clone(), counters.clone()));
        Ok(Self {
            shape: Mutex::new(Notifications::new(app, changes)),
            tx: Mutex::new(Some(tx)),
            task: Mutex::new(Some(task)),
            epoch: Instant::now(),
            counters,
        })
    }

    /// Queues one notification; never waits.
    pub fn send(&self, notification: Notification) {
        let tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        let queued = tx
            .as_ref()
            .is_some_and(|tx| tx.try_send(notification).is_ok());
        if !queued {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Closes the queue and waits at most `budget` for the rest to be delivered; what is left
    /// then is dropped (and counted).
    pub async fn finish(&self, budget: Duration) -> NotifySummary {
        drop(
            self.tx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut task) = task
            && tokio::time::timeout(budget, &mut task).await.is_err()
        {
            task.abort();
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        NotifySummary {
            delivered: self.counters.delivered.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
        }
    }
}

impl Reporter for Notifier {
    fn report(&self, event: &RunEvent) {
        let n = self
            .shape
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .on_event(event, self.epoch.elapsed());
        if let Some(n) = n {
            self.send(n);
        }
    }
}

async fn deliver(
    http: reqwest::Client,
    urls: Vec<Url>,
    mut rx: mpsc::Receiver<Notification>,
    config: NotifyConfig,
    counters: Arc<Counters>,
) {
    while let Some(n) = rx.recv().await {
        for url in &urls {
            let mut delay = config.backoff;
            let mut ok = false;
            for attempt in 1..=config.attempts.max(1) {
                let sent = http.post(url.clone()).json(&n).send().await;
                if sent.is_ok_and(|r| r.status().is_success()) {
                    ok = true;
                    break;
                }
                if attempt < config.attempts {
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                }
            }
            let counter = if ok {
                &counters.delivered
            } else {
                &counters.failed
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_never_shown_whole() {
        let urls = parse_urls(&["https://hooks.example.com/services/T0/B0/secret".into()]).unwrap();
        assert_eq!(shown(&urls[0]), "https://hooks.example.com");
        let e = parse_urls(&["ftp://u:secret@host/x".into()])
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
        assert!(e.contains("ftp://host"), "{e}");
        assert!(parse_urls(&["not a url".into()]).is_err());
    }
}
