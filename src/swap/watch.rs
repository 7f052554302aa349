//! The dirty-key watch: a `PSUBSCRIBE __keyspace@<db>__:*` connection to the old server that
//! collects every key named by a keyspace notification.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::verify::{RedisUrl, VerifyError, VerifyOptions};

/// The watch connection dropped: changes since then are unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the keyspace-notification connection to the old server dropped, so keys changed since then are unknown; compare every key before cutover"
)]
pub struct WatchLost;

/// The most dirty keys a watch holds by default (a few tens of MB of key names).
pub const DIRTY_LIMIT: usize = 500_000;

/// Collects the keys the server says changed, until dropped.
pub struct DirtyWatch {
    dirty: Arc<Mutex<BTreeSet<Vec<u8>>>>,
    lost: Arc<AtomicBool>,
    task: JoinHandle<()>,
    /// Sends the barrier messages of [`DirtyWatch::sync`].
    publisher: redis::aio::MultiplexedConnection,
    barrier: String,
    seen: tokio::sync::watch::Receiver<u64>,
    next: std::sync::atomic::AtomicU64,
    endpoint: String,
}

impl std::fmt::Debug for DirtyWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirtyWatch")
            .field("endpoint", &self.endpoint)
            .field("lost", &self.is_lost())
            .finish_non_exhaustive()
    }
}

impl DirtyWatch {
    /// Subscribes to the keyspace channels of `url`'s database. Returns once the server has
    /// confirmed the subscription, so every write after this call is seen.
    ///
    /// Notifications must already be on (`notify-keyspace-events` with `K` and `A`; on Heroku
    /// it is set through the Data API): a server that sends none gives an empty dirty set.
    ///
    /// # Errors
    /// Connecting or subscribing fails.
    pub async fn start(url: &RedisUrl, opts: &VerifyOptions) -> Result<Self, VerifyError> {
        Self::start_bounded(url, opts, DIRTY_LIMIT).await
    }

    /// As [`DirtyWatch::start`], holding at most `limit` dirty keys: past it the set is
    /// dropped and the watch counts as lost, so memory stays bounded and the caller falls back
    /// to a full compare (a write storm that touches that many keys is better compared whole).
    ///
    /// # Errors
    /// Connecting or subscribing fails.
    pub async fn start_bounded(
        url: &RedisUrl,
        opts: &VerifyOptions,
        limit: usize,
    ) -> Result<Self, VerifyError> {
        let endpoint = url.endpoint();
        let connect_err = |source| VerifyError::Connect {
            endpoint: endpoint.clone(),
            hint: "",
            source: Box::new(source),
        };
        let client =
            redis::Client::open(url.connection_url(opts.tls_verify)).map_err(connect_err)?;
        let mut pubsub = tokio::time::timeout(opts.connect_timeout, client.get_async_pubsub())
            .await
            .map_err(|_| VerifyError::Protocol {
                endpoint: endpoint.clone(),
                command: "PSUBSCRIBE",
                detail: "timed out connecting".into(),
            })?
            .map_err(connect_err)?;
        let channel = format!("__keyspace@{}__:*", url.db());
        let command_err = |command: &'static str| {
            let endpoint = endpoint.clone();
            move |source| VerifyError::Command {
                endpoint,
                command,
                source: Box::new(source),
            }
        };
        pubsub
            .psubscribe(&channel)
            .await
            .map_err(command_err("PSUBSCRIBE"))?;
        // A channel of our own: a message published on it arrives after every notification
        // of the commands that ran before the PUBLISH (one server thread, one output buffer).
        let barrier = format!(
            "upshift-barrier:{}:{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        );
        pubsub
            .subscribe(&barrier)
            .await
            .map_err(command_err("SUBSCRIBE"))?;
        let publisher = client
            .get_multiplexed_async_connection()
            .await
            .map_err(connect_err)?;
        let (seen_tx, seen) = tokio::sync::watch::channel(0_u64);
        let barrier_bytes = barrier.clone().into_bytes();
        let prefix = format!("__keyspace@{}__:", url.db()).into_bytes();
        let dirty = Arc::new(Mutex::new(BTreeSet::new()));
        let lost = Arc::new(AtomicBool::new(false));
        let (d, l) = (Arc::clone(&dirty), Arc::clone(&lost));
        let task = tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            while let Some(msg) = messages.next().await {
                let Ok(channel) = msg.get_channel::<Vec<u8>>() else {
                    continue;
                };
                if channel == barrier_bytes {
                    if let Ok(n) = std::str::from_utf8(msg.get_payload_bytes())
                        .unwrap_or_default()
                        .parse::<u64>()
                    {
                        seen_tx.send_replace(n);
                    }
                    continue;
                }
                if let Some(key) = channel.strip_prefix(prefix.as_slice()) {
                    let mut set = d.lock().unwrap_or_else(PoisonError::into_inner);
                    set.insert(key.to_vec());
                    if set.len() > limit {
                        set.clear();
                        break;
                    }
                }
            }
            // The loop ends when the connection does, or past the limit: either way the set
            // is no longer complete.
            l.store(true, Ordering::SeqCst);
        });
        Ok(Self {
            dirty,
            lost,
            task,
            publisher,
            barrier,
            seen,
            next: std::sync::atomic::AtomicU64::new(1),
            endpoint,
        })
    }

    /// Waits until every notification of a command the server ran before this call has been
    /// collected: publishes a barrier on the watch's own channel and waits for it to come
    /// back. Call it after the writers stopped and before the last [`DirtyWatch::take`]:
    /// without it, a notification still on the wire would be missed.
    ///
    /// # Errors
    /// The PUBLISH fails, or the barrier does not come back within `timeout` (the watch is
    /// then treated as lost).
    pub async fn sync(&self, timeout: std::time::Duration) -> Result<(), VerifyError> {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let mut publisher = self.publisher.clone();
        let _: i64 = redis::cmd("PUBLISH")
            .arg(&self.barrier)
            .arg(n.to_string())
            .query_async(&mut publisher)
            .await
            .map_err(|source| VerifyError::Command {
                endpoint: self.endpoint.clone(),
                command: "PUBLISH",
                source: Box::new(source),
            })?;
        let mut seen = self.seen.clone();
        let arrived = tokio::time::timeout(timeout, seen.wait_for(|v| *v >= n)).await;
        if let Ok(Ok(_)) = arrived {
            return Ok(());
        }
        self.lost.store(true, Ordering::SeqCst);
        Err(VerifyError::Protocol {
            endpoint: self.endpoint.clone(),
            command: "PUBLISH",
            detail: format!(
                "the watch's barrier message did not come back within {timeout:?}: {WatchLost}"
            ),
        })
    }

    /// The keys changed since the last call (or since the start), and forgets them.
    ///
    /// # Errors
    /// [`WatchLost`] once the connection has dropped: from then on no set is complete.
    pub fn take(&self) -> Result<BTreeSet<Vec<u8>>, WatchLost> {
        let keys = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(PoisonError::into_inner));
        if self.is_lost() {
            return Err(WatchLost);
        }
        Ok(keys)
    }

    /// Whether the watch connection has dropped.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for DirtyWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
