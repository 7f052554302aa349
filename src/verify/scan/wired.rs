//! The DUMP value source over our own connections ([`Wire`]): each connection's reader takes
//! SCAN batches from a shared queue, writes a pipeline of DUMP (and expiry) commands ahead
//! while the previous pipeline's replies are still unread, and decodes every payload straight
//! from the reply buffer.
//!
//! Depth: [`VerifyOptions::batches_per_connection`] pipelines (2 by default) are written and
//! unread per connection at any time, as many as the multiplexed path kept batches in flight:
//! while the client decodes pipeline k, the server is already answering k+1. Redis buffers the
//! replies of a client that is not reading, and reads its commands regardless, so writing
//! ahead cannot deadlock; each pipeline's replies are bounded by [`PayloadSize`].
//!
//! The keys the decoder refuses are read with commands on the session's multiplexed
//! connection, as on the other path: one scan loop, two value sources.

use std::collections::VecDeque;

use futures::{FutureExt, StreamExt};

use super::dumped::{Payload, PayloadSize, examine_apart, settle};
use super::{Batch, How, TtlMode, expiry_name, expiry_of, read_undecoded};
use crate::verify::collect::Feed;
use crate::verify::conn::{Session, local_ms};
use crate::verify::error::VerifyError;
use crate::verify::record::{Expiry, KeyKind};
use crate::verify::scan::Fallbacks;
use crate::verify::wire::{self, Reply, Wire, WireError};
use crate::verify::{Progress, VerifyOptions};

/// Reads every batch `batches` yields on the session's own connections, all at once, and
/// queues the keys read on `out`. Returns the value bytes read and the fallbacks.
pub(super) async fn drive_wired(
    session: &Session,
    opts: &VerifyOptions,
    progress: &dyn Progress,
    batches: impl futures::Stream<Item = Batch> + Unpin,
    how: How,
    out: &Feed,
) -> Result<(u64, Fallbacks), VerifyError> {
    let depth = opts.batches_per_connection.max(1);
    let size = PayloadSize::new();
    let source = tokio::sync::Mutex::new(batches);
    let readers = session.wires.iter().map(|wire| {
        Reader {
            session,
            source: &source,
            how,
            size: &size,
            depth,
            progress,
            feed: out,
        }
        .run(wire)
    });
    let mut bytes = 0;
    let mut fallbacks = Fallbacks::default();
    for (b, f) in futures::future::try_join_all(readers).await? {
        bytes += b;
        fallbacks.add(&f);
    }
    Ok((bytes, fallbacks))
}

/// A pipeline written and not yet read.
struct InFlight {
    keys: Vec<Vec<u8>>,
    /// The SCAN filter's type for these keys, if any.
    kind: Option<KeyKind>,
    /// Server time when it was written, ms (PTTL's lower bound).
    sent: i64,
}

/// What every connection's reader shares.
struct Reader<'a, S> {
    session: &'a Session,
    source: &'a tokio::sync::Mutex<S>,
    how: How,
    size: &'a PayloadSize,
    depth: usize,
    progress: &'a dyn Progress,
    feed: &'a Feed,
}

impl<S: futures::Stream<Item = Batch> + Unpin> Reader<'_, S> {
    /// One connection's reads, until the batches run out or the consumer stops.
    async fn run(self, wire: &tokio::sync::Mutex<Wire>) -> Result<(u64, Fallbacks), VerifyError> {
        let session = self.session;
        let mut wire = wire.lock().await;
        // A scan that stopped early (the consumer failed) may have left replies unread.
        wire.settle().await.map_err(|e| wire_err(session, e))?;
        let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(self.depth);
        let mut keys = Vec::new().into_iter();
        let mut kind = None;
        let mut exhausted = false;
        let mut bytes = 0;
        let mut fallbacks = Fallbacks::default();
        loop {
            while in_flight.len() < self.depth {
                if keys.len() == 0 {
                    if exhausted {
                        break;
                    }
                    let next = if in_flight.is_empty() {
                        self.source.lock().await.next().await
                    } else {
                        // Replies are waiting: take a batch only if one is ready now.
                        let Ok(mut source) = self.source.try_lock() else {
                            break;
                        };
                        match source.next().now_or_never() {
                            Some(next) => next,
                            None => break,
                        }
                    };
                    match next {
                        Some(batch) => {
                            kind = batch.kind;
                            keys = batch.keys.into_iter();
                        }
                        None => exhausted = true,
                    }
                    continue;
                }
                let n = self.size.keys_per_pipeline(keys.len());
                let chunk: Vec<Vec<u8>> = keys.by_ref().take(n).collect();
                let expiry = expiry_name(self.how.ttl);
                for key in &chunk {
                    wire.push(&[b"DUMP", key]);
                    if let Some(name) = expiry {
                        wire.push(&[name.as_bytes(), key]);
                    }
                }
                let sent = local_ms() + session.clock_offset_ms;
                wire.flush().await.map_err(|e| wire_err(session, e))?;
                in_flight.push_back(InFlight {
                    keys: chunk,
                    kind,
                    sent,
                });
            }
            let Some(pipeline) = in_flight.pop_front() else {
                break;
            };
            let held = pipeline.keys.len();
            let pipeline_kind = pipeline.kind;
            let (mut read, rest, payload_bytes) = self
                .read_replies(&mut wire, pipeline, &mut fallbacks)
                .await?;
            self.size.observe(payload_bytes, held);
            read.extend(
                read_undecoded(session, &mut session.conn(0), rest, pipeline_kind, self.how)
                    .await?,
            );
            let n = read.len() as u64;
            let b: u64 = read.iter().map(|s| s.bytes).sum();
            bytes += b;
            if self.feed.send(read).await.is_err() {
                break; // the consumer failed: the caller reports its error
            }
            self.progress.advance(n, b);
        }
        Ok((bytes, fallbacks))
    }

    /// The replies of one pipeline: the records decoded, the keys for the command reader, and
    /// the payload bytes held.
    async fn read_replies(
        &self,
        wire: &mut Wire,
        pipeline: InFlight,
        fallbacks: &mut Fallbacks,
    ) -> Result<(Vec<super::Scanned>, Vec<super::dumped::Undecoded>, u64), VerifyError> {
        let session = self.session;
        let mut out = Vec::with_capacity(pipeline.keys.len());
        let mut rest = Vec::new();
        let mut payload_bytes = 0_u64;
        for key in pipeline.keys {
            // The payload is lent from the reply buffer until the next reply is read: decode
            // it first, then read the expiry.
            let payload = match wire.reply().await.map_err(|e| wire_err(session, e))? {
                Reply::Bulk(bytes) => {
                    payload_bytes += bytes.len() as u64;
                    Payload::Bytes(bytes)
                }
                Reply::Nil => Payload::Gone,
                Reply::Error(_) => Payload::Refused,
                other => {
                    return Err(session.protocol_err(
                        "DUMP",
                        format!("{} where a payload was expected", wire::kind(&other)),
                    ));
                }
            };
            let examined = examine_apart(payload, self.how.dump).await;
            let expiry = if self.how.ttl == TtlMode::NoneInDatabase {
                Some(Expiry::Never)
            } else {
                match wire.reply().await.map_err(|e| wire_err(session, e))? {
                    Reply::Int(t) => {
                        // The clock matters to PTTL only (a relative answer).
                        let received = if self.how.ttl == TtlMode::Pttl {
                            local_ms() + session.clock_offset_ms
                        } else {
                            pipeline.sent
                        };
                        expiry_of(t, self.how.ttl, pipeline.sent, received)
                    }
                    Reply::Error(line) => {
                        return Err(session.command_err("DUMP pipeline")(wire::server_error(
                            line,
                        )));
                    }
                    other => {
                        return Err(session.protocol_err(
                            "DUMP pipeline",
                            format!("{} where an expiry was expected", wire::kind(&other)),
                        ));
                    }
                }
            };
            // None: gone, expired during the read.
            if let Some(expiry) = expiry {
                settle(key, examined, expiry, &mut out, &mut rest, fallbacks);
            }
        }
        Ok((out, rest, payload_bytes))
    }
}

/// A failure of our own connection, worded as the multiplexed path words its own.
fn wire_err(session: &Session, e: WireError) -> VerifyError {
    match e {
        WireError::Io(_) => session.command_err("DUMP pipeline")(wire::redis_error(e)),
        WireError::Protocol(detail) => session.protocol_err("DUMP pipeline", detail),
    }
}
