//! The copier: SCAN + DUMP on the old server, RESTORE ... REPLACE ABSTTL on the new one, so
//! every key arrives with its exact value encoding and its absolute expiry. Each batch is read
//! in one MULTI/EXEC, so a key's value and its expiry belong to the same instant.

use redis::Value;

use crate::verify::conn::{Session, local_ms};
use crate::verify::{Progress, RedisUrl, VerifyError, VerifyOptions};

/// Keys per SCAN step, and the most keys per pipelined batch.
const BATCH: usize = 1000;
/// Payload bytes a batch aims at: batches shrink when keys are big, so a copy of many large
/// values holds about this much (plus one value) in memory, never a thousand of them.
const BATCH_BYTES: u64 = 8 * 1024 * 1024;

/// How many keys the next batch takes, from the mean size of the keys copied so far.
fn batch_len(copied: &CopySummary) -> usize {
    if copied.copied == 0 {
        return 100;
    }
    let mean = (copied.bytes / copied.copied).max(1);
    usize::try_from(BATCH_BYTES / mean)
        .unwrap_or(BATCH)
        .clamp(1, BATCH)
}

/// What a copy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopySummary {
    /// Keys written to the new server.
    pub copied: u64,
    /// Keys deleted on the new server because the old one no longer has them.
    pub deleted: u64,
    /// Payload bytes moved.
    pub bytes: u64,
}

impl CopySummary {
    fn add(&mut self, other: Self) {
        self.copied += other.copied;
        self.deleted += other.deleted;
        self.bytes += other.bytes;
    }
}

/// Copies every key of `source` to `target`, replacing what `target` holds under the same
/// names. Keys deleted on `source` meanwhile are not removed from `target` by this pass: that
/// is what the watch's dirty set and [`copy_keys`] are for.
///
/// # Errors
/// Connection or command failures on either side.
pub async fn copy_all(
    source: &RedisUrl,
    target: &RedisUrl,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<CopySummary, VerifyError> {
    let src = Session::open(source, opts, 1).await?;
    let dst = Session::open(target, opts, 1).await?;
    progress.total(src.dbsize().await?);
    let mut summary = CopySummary::default();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(BATCH)
            .query_async(&mut src.conn(0))
            .await
            .map_err(src.command_err("SCAN"))?;
        let mut rest = keys.as_slice();
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(batch_len(&summary).min(rest.len()));
            let done = copy_batch(&src, &dst, opts, chunk).await?;
            progress.advance(chunk.len() as u64, done.bytes);
            summary.add(done);
            rest = tail;
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    Ok(summary)
}

/// Copies the named keys from `source` to `target` as they are now; a key `source` no longer
/// has is deleted on `target`.
///
/// # Errors
/// Connection or command failures on either side.
pub async fn copy_keys(
    source: &RedisUrl,
    target: &RedisUrl,
    opts: &VerifyOptions,
    keys: &[Vec<u8>],
) -> Result<CopySummary, VerifyError> {
    let mut summary = CopySummary::default();
    if keys.is_empty() {
        return Ok(summary);
    }
    let src = Session::open(source, opts, 1).await?;
    let dst = Session::open(target, opts, 1).await?;
    let mut rest = keys;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(batch_len(&summary).min(rest.len()));
        summary.add(copy_batch(&src, &dst, opts, chunk).await?);
        rest = tail;
    }
    Ok(summary)
}

/// The keys of a server, one SCAN page at a time: for a pass over every key while the app
/// runs (a key may be seen twice or, if written meanwhile, not at all: SCAN's guarantee).
pub struct KeyPages {
    session: Session,
    cursor: u64,
    done: bool,
}

impl std::fmt::Debug for KeyPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPages")
            .field("cursor", &self.cursor)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl KeyPages {
    /// Opens one connection to `url`.
    ///
    /// # Errors
    /// Connecting fails.
    pub async fn open(url: &RedisUrl, opts: &VerifyOptions) -> Result<Self, VerifyError> {
        Ok(Self {
            session: Session::open(url, opts, 1).await?,
            cursor: 0,
            done: false,
        })
    }

    /// The next page of keys; `None` once the scan is complete.
    ///
    /// # Errors
    /// The SCAN fails.
    pub async fn next(&mut self) -> Result<Option<Vec<Vec<u8>>>, VerifyError> {
        if self.done {
            return Ok(None);
        }
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(self.cursor)
            .arg("COUNT")
            .arg(BATCH)
            .query_async(&mut self.session.conn(0))
            .await
            .map_err(self.session.command_err("SCAN"))?;
        self.cursor = next;
        self.done = next == 0;
        Ok(Some(keys))
    }
}

/// The expiry of a key as read: none, at an absolute Unix ms, or the key is gone.
enum Expiry {
    Never,
    At(i64),
    Gone,
}

async fn copy_batch(
    src: &Session,
    dst: &Session,
    opts: &VerifyOptions,
    keys: &[Vec<u8>],
) -> Result<CopySummary, VerifyError> {
    let mut summary = CopySummary::default();
    if keys.is_empty() {
        return Ok(summary);
    }
    let exact = src.info.has_pexpiretime() && !opts.force_pttl;
    let mut read = redis::pipe();
    read.atomic();
    for k in keys {
        read.cmd("DUMP").arg(k);
        read.cmd(if exact { "PEXPIRETIME" } else { "PTTL" }).arg(k);
    }
    let replies: Vec<Value> = read
        .query_async(&mut src.conn(0))
        .await
        .map_err(src.command_err("DUMP"))?;
    // PTTL is relative: place it on the server's clock as of now.
    let server_now = local_ms() + src.clock_offset_ms;
    let mut write = redis::pipe();
    for (key, pair) in keys.iter().zip(replies.chunks(2)) {
        let [payload, ttl] = pair else {
            return Err(src.protocol_err("DUMP", "a reply is missing"));
        };
        let expiry = match ttl {
            Value::Int(-2) => Expiry::Gone,
            Value::Int(-1) => Expiry::Never,
            Value::Int(n) if exact => Expiry::At(*n),
            Value::Int(n) => Expiry::At(server_now + n),
            other => {
                return Err(src.protocol_err("PEXPIRETIME", format!("unexpected {other:?}")));
            }
        };
        match (payload, expiry) {
            (Value::Nil, _) | (_, Expiry::Gone) => {
                write.cmd("DEL").arg(key).ignore();
                summary.deleted += 1;
            }
            (Value::BulkString(bytes), expiry) => {
                let at = match expiry {
                    Expiry::At(ms) => ms,
                    _ => 0,
                };
                write
                    .cmd("RESTORE")
                    .arg(key)
                    .arg(at)
                    .arg(bytes)
                    .arg("REPLACE")
                    .arg("ABSTTL")
                    .ignore();
                summary.copied += 1;
                summary.bytes += bytes.len() as u64;
            }
            (other, _) => {
                return Err(src.protocol_err("DUMP", format!("unexpected {other:?}")));
            }
        }
    }
    let () = write
        .query_async(&mut dst.conn(0))
        .await
        .map_err(dst.command_err("RESTORE"))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::{BATCH, BATCH_BYTES, CopySummary, batch_len};

    #[test]
    fn batches_shrink_with_big_values_and_stay_bounded() {
        let small = CopySummary {
            copied: 1000,
            deleted: 0,
            bytes: 100_000,
        };
        assert_eq!(batch_len(&small), BATCH);
        let big = CopySummary {
            copied: 10,
            deleted: 0,
            bytes: 10 * 2 * 1024 * 1024,
        };
        assert_eq!(batch_len(&big), 4);
        let huge = CopySummary {
            copied: 1,
            deleted: 0,
            bytes: 3 * BATCH_BYTES,
        };
        assert_eq!(batch_len(&huge), 1);
        assert_eq!(batch_len(&CopySummary::default()), 100);
    }
}
