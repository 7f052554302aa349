//! The consumer side of a scan, on a thread of its own: records go into the record set (and
//! payloads into the snapshot file) there, not on the task that drives the reads.
//!
//! Why: sorting a full in-memory run, spilling it and writing the snapshot take milliseconds
//! at a time. Done inline they stalled every pipeline in flight (the profile of issue 12 put
//! most of the client's time there); behind a bounded channel the reads carry on meanwhile,
//! and the channel's bound keeps memory bounded when the consumer is the slower side.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::verify::error::VerifyError;
use crate::verify::scan::Scanned;

/// Batches queued between the reads and the consumer: enough to ride out one spill of the
/// record set, few enough that queued batches stay a small share of memory.
const QUEUED_BATCHES: usize = 16;

/// A running consumer: `state` fed with every key read, on a blocking thread.
pub(crate) struct Collector<S> {
    tx: mpsc::Sender<Vec<Scanned>>,
    handle: JoinHandle<Result<S, VerifyError>>,
}

impl<S: Send + 'static> Collector<S> {
    /// Starts the consumer; `each` is called once per key, in the order the scan read them.
    pub(crate) fn spawn(
        mut state: S,
        mut each: impl FnMut(&mut S, Scanned) -> Result<(), VerifyError> + Send + 'static,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Vec<Scanned>>(QUEUED_BATCHES);
        let handle = tokio::task::spawn_blocking(move || {
            while let Some(batch) = rx.blocking_recv() {
                for scanned in batch {
                    each(&mut state, scanned)?;
                }
            }
            Ok(state)
        });
        Self { tx, handle }
    }

    /// The sender the scan feeds.
    pub(crate) fn sender(&self) -> mpsc::Sender<Vec<Scanned>> {
        self.tx.clone()
    }

    /// Waits for the consumer to take every queued batch and returns its state.
    ///
    /// # Errors
    /// The consumer's own error (a spill or file write failing), or its thread panicking.
    pub(crate) async fn finish(self) -> Result<S, VerifyError> {
        drop(self.tx);
        match self.handle.await {
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
    scan: impl FnOnce(mpsc::Sender<Vec<Scanned>>) -> F,
) -> Result<(T, S), VerifyError>
where
    F: Future<Output = Result<T, VerifyError>>,
{
    let collector = Collector::spawn(state, each);
    let scanned = scan(collector.sender()).await;
    let state = collector.finish().await;
    match (scanned, state) {
        (_, Err(e)) | (Err(e), Ok(_)) => Err(e),
        (Ok(t), Ok(s)) => Ok((t, s)),
    }
}
