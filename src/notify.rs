//! Webhook notifications (`--notify URL`, `UPSHIFT_NOTIFY_URL`): a [`Reporter`] that turns the
//! notable run events into JSON POSTs (see [`crate::unattended::event::Notification`]).
//!
//! Notifications never block or fail a run: `report` only queues (a bounded queue; when it is
//! full the notification is dropped and counted), one spawned task per URL delivers them in
//! order with retries and backoff (a dead webhook does not delay the others), and
//! [`Notifier::finish`] gives the queues a bounded time at exit.
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
    /// Of the failed, those whose last answer was a redirect (never followed).
    pub redirected: usize,
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
    /// Notifications put in a queue (one per URL).
    queued: AtomicUsize,
    delivered: AtomicUsize,
    failed: AtomicUsize,
    dropped: AtomicUsize,
    redirected: AtomicUsize,
}

/// Posts notifications to webhooks from a background task.
#[derive(Debug)]
pub struct Notifier {
    shape: Mutex<Notifications>,
    tx: Mutex<Vec<mpsc::Sender<Notification>>>,
    task: Mutex<Vec<JoinHandle<()>>>,
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
            // A webhook URL is a secret (in its path or query). Following a redirect would
            // send the notification to a host the user never named, and reqwest's Referer
            // would carry the whole original URL there: a 3xx is a failed delivery instead.
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .user_agent(concat!("upshift/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| NotifyError::Client { source })?;
        let counters = Arc::new(Counters::default());
        // One queue and task per URL: a slow or dead webhook never delays the others.
        let (senders, tasks) = urls
            .into_iter()
            .map(|url| {
                let (tx, rx) = mpsc::channel(config.queue.max(1));
                let task = tokio::spawn(deliver(
                    http.clone(),
                    url,
                    rx,
                    config.clone(),
                    counters.clone(),
                ));
                (tx, task)
            })
            .unzip();
        Ok(Self {
            shape: Mutex::new(Notifications::new(app, changes)),
            tx: Mutex::new(senders),
            task: Mutex::new(tasks),
            epoch: Instant::now(),
            counters,
        })
    }

    /// Queues one notification for every URL; never waits.
    pub fn send(&self, notification: &Notification) {
        let senders = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        for tx in senders.iter() {
            if tx.try_send(notification.clone()).is_err() {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            } else {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Closes the queues and waits at most `budget` in all for the rest to be delivered; what
    /// is left then is dropped (and counted).
    pub async fn finish(&self, budget: Duration) -> NotifySummary {
        self.tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.task.lock().unwrap_or_else(PoisonError::into_inner));
        let deadline = tokio::time::Instant::now() + budget;
        for mut task in tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                // Wait for the abort so the counters below are final.
                let _ = task.await;
            }
        }
        let delivered = self.counters.delivered.load(Ordering::Relaxed);
        let failed = self.counters.failed.load(Ordering::Relaxed);
        // Every queued notification that an aborted task never finished was dropped: one
        // per notification, not one per task (a slow webhook with 3 waiting said 1).
        let unfinished = self
            .counters
            .queued
            .load(Ordering::Relaxed)
            .saturating_sub(delivered + failed);
        NotifySummary {
            delivered,
            failed,
            dropped: self.counters.dropped.load(Ordering::Relaxed) + unfinished,
            redirected: self.counters.redirected.load(Ordering::Relaxed),
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
            self.send(&n);
        }
    }
}

async fn deliver(
    http: reqwest::Client,
    url: Url,
    mut rx: mpsc::Receiver<Notification>,
    config: NotifyConfig,
    counters: Arc<Counters>,
) {
    while let Some(n) = rx.recv().await {
        let mut delay = config.backoff;
        let mut ok = false;
        let mut redirected = false;
        for attempt in 1..=config.attempts.max(1) {
            let sent = http.post(url.clone()).json(&n).send().await;
            if sent.as_ref().is_ok_and(|r| r.status().is_success()) {
                ok = true;
                break;
            }
            redirected = sent.is_ok_and(|r| r.status().is_redirection());
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
        if !ok && redirected {
            counters.redirected.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_notification_left_at_exit_counts_as_dropped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/hook", listener.local_addr().unwrap())).unwrap();
        // Accepts and never answers: every POST hangs until the exit budget ends.
        tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let notifier = Notifier::start(
            vec![url],
            "app",
            vec![],
            &NotifyConfig {
                attempts: 1,
                backoff: Duration::from_millis(10),
                request_timeout: Duration::from_secs(30),
                queue: 8,
            },
        )
        .unwrap();
        let note = Notifications::new("app", vec![])
            .on_event(
                &RunEvent::Started {
                    run_id: "r".into(),
                    journal: "j".into(),
                },
                Duration::ZERO,
            )
            .unwrap();
        for _ in 0..4 {
            notifier.send(&note);
        }
        let sent = notifier.finish(Duration::from_millis(300)).await;
        assert_eq!(
            sent,
            NotifySummary {
                delivered: 0,
                failed: 0,
                dropped: 4,
                redirected: 0,
            }
        );
    }

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
