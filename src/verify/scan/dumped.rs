//! The DUMP value source: one DUMP (and the expiry) per key, each payload decoded into its
//! canonical record on the client.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use redis::Value;
use redis::aio::MultiplexedConnection;
use serde::Serialize;

use super::{Feed, How, Scanned, TtlMode, expiry_command, key_command, to_expiry};
use crate::verify::conn::{Session, local_ms};
use crate::verify::dump::{self, Decoded, DumpError};
use crate::verify::error::VerifyError;
use crate::verify::record::{Expiry, KeyKind, Record};

/// Keys whose DUMP payload was not decoded, by reason; each was read with type-specific
/// commands instead, so the digest stays exact. Reported so that a run says how much of it
/// went the slow way, and why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Fallbacks {
    /// A type or encoding the decoder does not cover (module types, hashes with
    /// field expiries).
    pub unknown_type: u64,
    /// An RDB version outside the decoded range (a newer server).
    pub unknown_version: u64,
    /// The payload's CRC64 did not match its bytes.
    pub bad_crc: u64,
    /// The bytes did not follow the encoding they announce (or were too short).
    pub decode_error: u64,
    /// DUMP itself was refused (renamed, or denied by an ACL).
    pub dump_refused: u64,
}

impl Fallbacks {
    /// Every fallback, whatever the reason.
    pub fn total(&self) -> u64 {
        self.unknown_type
            + self.unknown_version
            + self.bad_crc
            + self.decode_error
            + self.dump_refused
    }

    /// Adds another count.
    pub fn add(&mut self, other: &Self) {
        self.unknown_type += other.unknown_type;
        self.unknown_version += other.unknown_version;
        self.bad_crc += other.bad_crc;
        self.decode_error += other.decode_error;
        self.dump_refused += other.dump_refused;
    }

    /// Counts one payload refused by the decoder.
    fn count(&mut self, error: &DumpError) {
        match error {
            DumpError::Unsupported { .. } => self.unknown_type += 1,
            DumpError::Version { .. } => self.unknown_version += 1,
            DumpError::Checksum { .. } => self.bad_crc += 1,
            DumpError::TooShort { .. } | DumpError::Malformed { .. } => self.decode_error += 1,
        }
    }
}

/// Bytes of DUMP replies one pipeline aims to hold at once. A DUMP reply is whole (it cannot
/// be windowed as the command reads are), so memory is bounded by asking fewer keys per
/// pipeline when payloads are big: with the pipelines in flight, about
/// `in flight x PIPELINE_BYTES` of replies are held (twice that while the client parses).
pub(super) const PIPELINE_BYTES: u64 = 2 << 20;

/// Keys in the first pipelines of a scan, before any payload size is known: a slow start, so
/// that a database of big values cannot fill every pipeline in flight with them at once.
const FIRST_PIPELINE_KEYS: u64 = 16;

/// Sizes DUMP pipelines from what the scan has seen so far, shared by every pipeline of a scan:
/// a running estimate of payload bytes per key (an exponentially weighted mean) and a cap on
/// keys per pipeline that doubles after each pipeline within [`PIPELINE_BYTES`] and halves
/// after one over it (TCP's slow start, for the same reason: the size is learnt by trying).
#[derive(Debug)]
pub(super) struct PayloadSize {
    mean: AtomicU64,
    cap: AtomicU64,
}

impl PayloadSize {
    pub(super) fn new() -> Self {
        Self {
            mean: AtomicU64::new(64),
            cap: AtomicU64::new(FIRST_PIPELINE_KEYS),
        }
    }

    /// Keys for the next pipeline: within the cap, and within [`PIPELINE_BYTES`] by the mean.
    pub(super) fn keys_per_pipeline(&self, max: usize) -> usize {
        let mean = self.mean.load(Ordering::Relaxed).max(1);
        let cap = self.cap.load(Ordering::Relaxed).max(1);
        usize::try_from((PIPELINE_BYTES / mean).min(cap))
            .unwrap_or(usize::MAX)
            .clamp(1, max.max(1))
    }

    /// Folds in one pipeline's figures; a big payload raises the estimate at once (the mean
    /// moves halfway to a higher sample), a run of small ones lowers it slowly.
    pub(super) fn observe(&self, bytes: u64, keys: usize) {
        if keys == 0 {
            return;
        }
        let keys = keys as u64;
        let sample = bytes / keys;
        let old = self.mean.load(Ordering::Relaxed);
        let new = if sample > old {
            old / 2 + sample / 2
        } else {
            old - old / 8 + sample / 8
        };
        self.mean.store(new.max(1), Ordering::Relaxed);
        let cap = if bytes > PIPELINE_BYTES {
            (keys / 2).max(1)
        } else {
            (keys * 2)
                .max(self.cap.load(Ordering::Relaxed))
                .min(1 << 16)
        };
        self.cap.store(cap, Ordering::Relaxed);
    }
}

/// Keys (and their value bytes) handed to the consumer before their batch ended.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sent {
    pub keys: u64,
    pub bytes: u64,
}

/// A key the decoder did not read, with its type when the payload named it (a hash with field expiries, say).
pub(super) type Undecoded = (Vec<u8>, Option<KeyKind>);

/// DUMP and the expiry of every key, in pipelines sized by [`PayloadSize`] (one pipeline for
/// small values), each payload decoded into its canonical record. Returns the records and the
/// keys to read with commands instead, with the reasons counted. Keys gone since SCAN are
/// dropped.
pub(super) async fn read_dumped(
    session: &Session,
    conn: &mut MultiplexedConnection,
    keys: Vec<Vec<u8>>,
    how: How,
    size: &PayloadSize,
    feed: &Feed,
) -> Result<(Vec<Scanned>, Vec<Undecoded>, Fallbacks, Sent), VerifyError> {
    let mut out = Vec::with_capacity(keys.len());
    let mut sent = Sent::default();
    let mut rest = Vec::new();
    let mut fallbacks = Fallbacks::default();
    let mut keys = keys.into_iter().peekable();
    while keys.peek().is_some() {
        let n = size.keys_per_pipeline(keys.len());
        let chunk: Vec<Vec<u8>> = keys.by_ref().take(n).collect();
        let read = read_pipeline(
            session,
            conn,
            chunk,
            how,
            &mut out,
            &mut rest,
            &mut fallbacks,
        )
        .await?;
        size.observe(read.0, read.1);
        // A snapshot keeps each payload until the file has it: hand a pipeline's keys over
        // at once rather than holding a whole batch of big payloads until its end.
        if how.dump && !out.is_empty() && keys.peek().is_some() {
            let batch = std::mem::take(&mut out);
            sent.keys += batch.len() as u64;
            sent.bytes += batch.iter().map(|s| s.bytes).sum::<u64>();
            if feed.send(batch).await.is_err() {
                break; // the consumer failed: the caller reports its error
            }
        }
    }
    Ok((out, rest, fallbacks, sent))
}

/// One DUMP pipeline; returns the payload bytes and replies it held.
async fn read_pipeline(
    session: &Session,
    conn: &mut MultiplexedConnection,
    keys: Vec<Vec<u8>>,
    how: How,
    out: &mut Vec<Scanned>,
    rest: &mut Vec<Undecoded>,
    fallbacks: &mut Fallbacks,
) -> Result<(u64, usize), VerifyError> {
    let mut pipe = redis::Pipeline::with_capacity(keys.len() * 2);
    pipe.ignore_errors();
    for key in &keys {
        pipe.add_command(key_command("DUMP", key));
        expiry_command(&mut pipe, how.ttl, key);
    }
    let sent = local_ms() + session.clock_offset_ms;
    let replies: Vec<Value> = pipe
        .query_async(conn)
        .await
        .map_err(session.command_err("DUMP pipeline"))?;
    let received = local_ms() + session.clock_offset_ms;

    let held = keys.len();
    let mut payload_bytes = 0_u64;
    let mut replies = replies.into_iter();
    for key in keys {
        let payload = replies.next();
        let expiry = if how.ttl == TtlMode::NoneInDatabase {
            None
        } else {
            replies.next()
        };
        if let Some(Value::ServerError(e)) = &expiry {
            return Err(session.command_err("DUMP pipeline")(e.clone().into()));
        }
        let Some(expiry) = to_expiry(expiry, how.ttl, sent, received) else {
            continue; // gone: expired during the read
        };
        let payload = match payload {
            Some(Value::BulkString(payload)) => {
                payload_bytes += payload.len() as u64;
                Payload::Bytes(Cow::Owned(payload))
            }
            // DUMP refused (renamed, or denied by an ACL): the commands can still read it.
            Some(Value::ServerError(_)) => Payload::Refused,
            _ => Payload::Gone,
        };
        settle(
            key,
            examine_apart(payload, how.dump).await,
            expiry,
            out,
            rest,
            fallbacks,
        );
    }
    Ok((payload_bytes, held))
}

/// A key's DUMP reply, whichever connection brought it.
pub(super) enum Payload<'a> {
    /// The payload: lent from a reply buffer, or owned.
    Bytes(Cow<'a, [u8]>),
    /// DUMP refused (renamed, or denied by an ACL): the commands can still read the key.
    Refused,
    /// Nil: the key is gone since SCAN.
    Gone,
}

/// What a DUMP reply gave, before the key's expiry is known (our own connection lends the
/// payload only until the next reply, the expiry's, is read).
pub(super) enum Examined {
    /// Decoded; the payload kept when a snapshot needs it.
    Decoded(Decoded, Option<Vec<u8>>),
    /// Damaged in transit, a newer RDB version, a type not covered, or a decoder gap: the
    /// commands read it exactly all the same.
    Undecoded(DumpError),
    Refused,
    Gone,
}

/// Decodes a payload (copying it only when `keep`: a snapshot stores it).
pub(super) fn examine(payload: Payload<'_>, keep: bool) -> Examined {
    match payload {
        Payload::Gone => Examined::Gone,
        Payload::Refused => Examined::Refused,
        Payload::Bytes(bytes) => match dump::decode(&bytes) {
            Ok(decoded) => Examined::Decoded(decoded, keep.then(|| bytes.into_owned())),
            Err(e) => Examined::Undecoded(e),
        },
    }
}

/// Payloads from this size on are decoded on a blocking thread, not on the task that drives
/// every connection's reads: decoding a value of 100,000 elements takes milliseconds, and
/// inline it stalled the other connections' pipelines with it, leaving the server idle (the
/// profile of issue 12 at 100,000 keys: four such keys, 60 ms of the main thread, most of the
/// gap to raw SCAN+DUMP). Below it the hand-off would cost more than the decode.
pub(super) const DECODE_APART_BYTES: usize = 128 << 10;

/// [`examine`], on a blocking thread for a payload of [`DECODE_APART_BYTES`] or more. The
/// payload is taken owned: a reply that big is owned already (it outgrew the read buffer).
pub(super) async fn examine_apart(payload: Payload<'_>, keep: bool) -> Examined {
    match payload {
        Payload::Bytes(bytes) if bytes.len() >= DECODE_APART_BYTES => {
            let bytes = bytes.into_owned();
            tokio::task::spawn_blocking(move || examine(Payload::Bytes(Cow::Owned(bytes)), keep))
                .await
                // A decoder that panicked reads the key with commands, as any decoder gap does.
                .unwrap_or(Examined::Undecoded(DumpError::Malformed {
                    at: 0,
                    what: "the decoder stopped on this payload",
                }))
        }
        other => examine(other, keep),
    }
}

/// Files a key present at its expiry read: its record into `out`, or the key into `rest`
/// (with the fallback counted) for the command reader.
pub(super) fn settle(
    key: Vec<u8>,
    examined: Examined,
    expiry: Expiry,
    out: &mut Vec<Scanned>,
    rest: &mut Vec<Undecoded>,
    fallbacks: &mut Fallbacks,
) {
    match examined {
        Examined::Gone => {}
        Examined::Refused => {
            fallbacks.dump_refused += 1;
            rest.push((key, None));
        }
        Examined::Decoded(decoded, payload) => out.push(Scanned {
            record: Record {
                key,
                kind: decoded.kind,
                value: decoded.value,
                expiry,
            },
            payload,
            bytes: decoded.bytes,
        }),
        Examined::Undecoded(e) => {
            fallbacks.count(&e);
            let kind = match e {
                DumpError::Unsupported { kind, .. } => kind,
                _ => None,
            };
            rest.push((key, kind));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Fallbacks, PIPELINE_BYTES, PayloadSize};
    use crate::verify::dump::{DumpError, crc64, decode};

    /// A hash with field expiries (RDB type 25, Redis 7.4) counts as an `unknown_type`
    /// fallback: the key is read with commands, never digested from a misread payload.
    #[test]
    fn a_hash_with_field_expiries_counts_as_an_unknown_type() {
        let mut p = vec![25_u8];
        p.extend_from_slice(&1_700_000_000_000_u64.to_le_bytes());
        p.extend_from_slice(b"\x0f\x0f\x00\x00\x00\x03\x00\x81f\x02\x81v\x02\x05\x01\xff");
        p.extend_from_slice(&12_u16.to_le_bytes());
        let crc = crc64(0, &p);
        p.extend_from_slice(&crc.to_le_bytes());
        let e = decode(&p).unwrap_err();
        assert!(
            matches!(e, DumpError::Unsupported { rdb_type: 25, .. }),
            "{e:?}"
        );
        let mut f = Fallbacks::default();
        f.count(&e);
        assert_eq!((f.unknown_type, f.total()), (1, 1));
    }

    #[test]
    fn pipelines_start_small_grow_on_small_values_and_shrink_on_big_ones() {
        let size = PayloadSize::new();
        assert_eq!(size.keys_per_pipeline(1000), 16, "slow start");
        for _ in 0..8 {
            let n = size.keys_per_pipeline(1000);
            size.observe(50 * n as u64, n);
        }
        assert_eq!(
            size.keys_per_pipeline(1000),
            1000,
            "small values: whole batches"
        );
        // 50 keys of 1.2 MB each: far over the target.
        size.observe(50 * 1_200_000, 50);
        let n = size.keys_per_pipeline(1000) as u64;
        assert!(n <= 25, "{n} keys after a big pipeline");
        assert!(
            n * 600_000 <= PIPELINE_BYTES * 2,
            "{n} keys of the estimate"
        );
    }
}
