//! The consumer side of a scan, on a thread of its own: records go into the record set (and
//! payloads into the snapshot file) there, not on the task that drives the reads.
//!
//! Why: sorting a full in-memory run, spilling it and writing the snapshot take milliseconds
//! at a time. Done inline they stalled every pipeline in flight (the profile of issue 12 put
//! most of the client's time there); behind a bounded channel the reads carry on meanwhile,
//! and the channel's bound keeps memory bounded when the consumer is the slower side.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::verify::error::VerifyError;
use crate::verify::scan::Scanned;

/// Batches queued between the reads and the consumer: enough to ride out one spill of the
/// record set (tens of milliseconds, tens of batches at full speed).
const QUEUED_BATCHES: usize = 64;

/// KiB of DUMP payloads (snapshots) queued at most: big values must not pile up in the queue
/// while the file catches up.
const QUEUED_PAYLOAD_KIB: u32 = 16 << 10;

/// One batch on its way to the consumer, holding its share of the payload budget.
type Queued = (Vec<Scanned>, OwnedSemaphorePermit);

/// The scan's end of the queue.
#[derive(Clone)]
pub(crate) struct Feed {
    tx: mpsc::Sender<Queued>,
    budget: Arc<Semaphore>,
}

impl Feed {
    /// Queues a batch once the payload budget has room for it (a batch bigger than the whole
    /// budget waits for the queue to empty). `Err` when the consumer has stopped.
    pub(crate) async fn send(&self, batch: Vec<Scanned>) -> Result<(), ()> {
        let bytes: usize = batch
            .iter()
            .map(|s| s.payload.as_ref().map_or(0, Vec::len))
            .sum();
        let kib = u32::try_from(bytes >> 10)
            .unwrap_or(u32::MAX)
            .clamp(1, QUEUED_PAYLOAD_KIB);
        let permit = Arc::clone(&self.budget)
            .acquire_many_owned(kib)
            .await
            .map_err(|_| ())?;
        self.tx.send((batch, permit)).await.map_err(|_| ())
    }
}

/// A running consumer: `state` fed with every key read, on a blocking thread.
pub(crate) struct Collector<S> {
    feed: Feed,
    handle: JoinHandle<Result<S, VerifyError>>,
    abandon: AbandonOnDrop,
}

/// Tells the consumer to stop at the next key once the collector is dropped unfinished (its
/// scan cancelled, as a second interrupt does). Without it the thread worked through every
/// batch still queued, up to 16 MiB of payloads onto a possibly slow disk, and the process,
/// which waits for its blocking threads on the way out, exited only after that.
struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl<S: Send + 'static> Collector<S> {
    /// Starts the consumer; `each` is called once per key, in the order the scan read them.
    pub(crate) fn spawn(
        mut state: S,
        mut each: impl FnMut(&mut S, Scanned) -> Result<(), VerifyError> + Send + 'static,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Queued>(QUEUED_BATCHES);
        let abandoned = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&abandoned);
        let handle = tokio::task::spawn_blocking(move || {
            while let Some((batch, permit)) = rx.blocking_recv() {
                for scanned in batch {
                    if stop.load(Ordering::Relaxed) {
                        return Err(VerifyError::Consumer {
                            what: "the scan was cancelled".into(),
                        });
                    }
                    each(&mut state, scanned)?;
                }
                drop(permit);
            }
            Ok(state)
        });
        let budget = Arc::new(Semaphore::new(QUEUED_PAYLOAD_KIB as usize));
        Self {
            feed: Feed { tx, budget },
            handle,
            abandon: AbandonOnDrop(abandoned),
        }
    }

    /// The queue the scan feeds.
    pub(crate) fn feed(&self) -> Feed {
        self.feed.clone()
    }

    /// Waits for the consumer to take every queued batch and returns its state.
    ///
    /// # Errors
    /// The consumer's own error (a spill or file write failing), or its thread panicking.
    pub(crate) async fn finish(self) -> Result<S, VerifyError> {
        let Self {
            feed,
            handle,
            abandon,
        } = self;
        drop(feed);
        // Kept to the end: a finish cancelled mid-wait abandons the consumer too.
        let _abandon = abandon;
        match handle.await {
            Ok(result) => result,
            Err(join) => Err(VerifyError::Consumer {
                what: join.to_string(),
            }),
        }
    }
}

/// Runs a scan into a fresh collector and returns both results. The consumer's error comes
/// first: a scan cut short because the consumer stopped reports why it stopped.
///
/// # Errors
/// The consumer's error, else the scan's.
pub(crate) async fn scan_into<S: Send + 'static, T, F>(
    state: S,
    each: impl FnMut(&mut S, Scanned) -> Result<(), VerifyError> + Send + 'static,
    scan: impl FnOnce(Feed) -> F,
) -> Result<(T, S), VerifyError>
where
    F: Future<Output = Result<T, VerifyError>>,
{
    let collector = Collector::spawn(state, each);
    let scanned = scan(collector.feed()).await;
    let state = collector.finish().await;
    match (scanned, state) {
        (_, Err(e)) | (Err(e), Ok(_)) => Err(e),
        (Ok(t), Ok(s)) => Ok((t, s)),
    }
}

/// With the `failpoints` feature, `UPSHIFT_FAILPOINT_SLOW_DISK_US=N` makes the snapshot's file
/// writer pause N µs per key, as a slow disk would: a test can then interrupt a snapshot
/// mid-stream without seeding hundreds of thousands of keys first.
pub(crate) fn slow_disk() -> Option<std::time::Duration> {
    #[cfg(feature = "failpoints")]
    {
        std::env::var("UPSHIFT_FAILPOINT_SLOW_DISK_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(std::time::Duration::from_micros)
    }
    #[cfg(not(feature = "failpoints"))]
    {
        None
    }
}
