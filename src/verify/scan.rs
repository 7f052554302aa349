//! The scan: SCAN batches on one connection, per-batch reads pipelined on all of them, one
//! [`Scanned`] per key handed to a sink, and the writers-active gate around it all.
//!
//! Throughput comes from overlap rather than from one clever pipeline: a scanner task runs
//! SCAN COUNT 1000 ahead of the readers, and up to two batches per connection are in flight at
//! once on multiplexed connections, so one batch's TYPEs travel while another's reads do.
//! Each batch costs two round trips: TYPE for every key, then per key its first window, DUMP
//! (snapshots only) and its expiry, back to back. Keys bigger than one window (10k elements,
//! 1 MiB of string) continue window by window; sizes are asked only then.
//!
//! Where the time goes (perf on redis-server, 1M keys): key lookups (`dictFind`) and SCAN
//! itself, so the server's cost grows with commands per key. A digest needs three (type,
//! value, expiry) where a raw DUMP loop needs one; keeping a key's value and expiry reads
//! adjacent keeps the second lookup in cache. Batching TYPE/expiry through Lua was tried and
//! measured slower (a `redis.call` costs about what a pipelined command does). When INFO
//! keyspace counts no TTL at all in the database, the expiry command is skipped (and the
//! count re-checked at the end).
//!
//! Measured and rejected (300k bench keys, server CPU from INFO `used_cpu_*`, same run):
//! * `SCAN … TYPE t` passes instead of TYPE per key ([`VerifyOptions::scan_by_type`], kept for
//!   the bench): server CPU 2.13 s against 1.07 s, wall 3.1 s against 2.0 s. The TYPE filter
//!   looks every key up (and checks its expiry) in each of the six passes, which costs more
//!   than one pipelined TYPE per key. The pass for a type is complete for static data (SCAN
//!   returns every key present throughout); a key replaced by another type meanwhile answers
//!   WRONGTYPE and is typed and read again.
//! * More connections: 2, 4 and 8 give the same rate; the server's single core, not the
//!   pipeline depth, is the limit.
//! * MGET for strings: one reply holds whole values, and nothing short of a command per key
//!   (STRLEN) bounds them, so a big string could arrive whole. GETRANGE windows stay.
//!
//! Since issue 12 the value comes from DUMP by default ([`ValueSource::Dump`]): one DUMP and
//! one expiry command per key in a single round trip, the payload decoded on the client into
//! the same canonical record. TYPE and the windowed reads above remain for the keys the
//! decoder refuses (streams, unknown RDB versions or types), counted in
//! [`ScanOutcome::fallbacks`], and for [`ValueSource::Commands`].
//!
//! Every scan ends with [`ScanOutcome::check_complete`]: distinct keys read plus keys expired
//! meanwhile must make up DBSIZE, so no key goes unread silently.

use std::collections::HashSet;

use futures::StreamExt;
use redis::Value;
use redis::aio::MultiplexedConnection;

use crate::verify::conn::{ServerInfo, Session, local_ms};
use crate::verify::dump::{self, DumpError};
use crate::verify::error::VerifyError;
use crate::verify::record::{Expiry, KeyKind, Record, ValueDigest, element_hash, parse_score};
use crate::verify::{Progress, ValueSource, VerifyOptions};

/// Keys per SCAN call.
const SCAN_COUNT: u64 = 1000;
/// Buckets per `SCAN … TYPE` call: a pass returns only its type's share of them, so it visits
/// more per call to keep batches (and pipelines) about as deep as an untyped pass's.
const TYPED_SCAN_COUNT: u64 = 4000;

/// One key as read.
#[derive(Debug)]
pub(crate) struct Scanned {
    pub record: Record,
    /// The DUMP payload, when asked for.
    pub payload: Option<Vec<u8>>,
    /// Value bytes read (for throughput figures).
    pub bytes: u64,
}

/// Figures of a finished scan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanOutcome {
    /// Bytes of values read.
    pub bytes: u64,
    /// Server time when the scan ended, ms.
    pub end_server_ms: i64,
    /// DBSIZE when the scan started.
    pub dbsize: u64,
    /// Keys expired or evicted during the scan.
    pub gone: u64,
    /// Keys whose DUMP payload was not decoded (a stream, a type or RDB version the decoder
    /// does not cover) and that were read with type-specific commands instead.
    pub fallbacks: u64,
}

impl ScanOutcome {
    /// Checks that the scan read every key: `distinct` keys read plus those that expired or
    /// were evicted meanwhile must make up DBSIZE. Per-type passes never see a key of a type
    /// the verifier cannot read (a module type); this is where it shows.
    pub fn check_complete(&self, distinct: u64) -> Result<(), VerifyError> {
        if distinct.saturating_add(self.gone) < self.dbsize {
            return Err(VerifyError::KeysMissed {
                expected: self.dbsize,
                found: distinct,
                expired: self.gone,
            });
        }
        Ok(())
    }
}

/// How expiries are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TtlMode {
    /// PEXPIRETIME (Redis >= 7.0): exact absolute expiry.
    Exact,
    /// PTTL (Redis 6.x): converted to absolute with the round trip as tolerance.
    Pttl,
    /// INFO keyspace counts no key with a TTL in this database: no per-key command needed
    /// (re-checked at the end of the scan).
    NoneInDatabase,
}

/// Read sizes: windows for big keys.
#[derive(Debug, Clone, Copy)]
struct Windows {
    elements: usize,
    string_bytes: usize,
}

/// Scans the whole database, calling `sink` for every key read (a key SCAN returns twice is
/// read and handed over twice: the record set deduplicates).
pub(crate) async fn scan(
    session: &Session,
    opts: &VerifyOptions,
    progress: &dyn Progress,
    dump: bool,
    mut sink: impl FnMut(Scanned) -> Result<(), VerifyError>,
) -> Result<ScanOutcome, VerifyError> {
    let before_info = session.info().await?;
    let dbsize = session.dbsize().await?;
    progress.total(dbsize);

    // By type: one `SCAN … TYPE t` pass per kind, all passes at once on different
    // connections (a pass over a rare type returns empty pages, which must not stall the
    // readers). Otherwise one untyped pass and a TYPE per key.
    let passes: Vec<Option<KeyKind>> = if opts.scan_by_type {
        KeyKind::ALL.into_iter().map(Some).collect()
    } else {
        vec![None]
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(16);
    let scanners: Vec<_> = passes
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            let conn = session.conn(i);
            let tx = tx.clone();
            let scan_err = session.command_err("SCAN");
            tokio::spawn(scan_pass(conn, kind, tx, scan_err))
        })
        .collect();
    drop(tx);

    let windows = Windows {
        elements: opts.window_elements.max(1),
        string_bytes: opts.window_bytes.max(1),
    };
    let expires_before = before_info
        .keyspace
        .get(&session.db)
        .map_or(0, |k| k.expires);
    let ttl = if expires_before == 0 {
        TtlMode::NoneInDatabase
    } else if session.info.has_pexpiretime() && !opts.force_pttl {
        TtlMode::Exact
    } else {
        TtlMode::Pttl
    };
    let in_flight = session.conns.len() * 2;
    let batches = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut reads = batches
        .enumerate()
        .map(|(i, batch)| {
            let how = How {
                dump,
                ttl,
                windows,
                source: opts.value_source,
            };
            read_batch(session, session.conn(i), batch, how)
        })
        .buffer_unordered(in_flight);
    let mut bytes = 0_u64;
    let mut fallbacks = 0_u64;
    let mut result = Ok(());
    while let Some(batch) = reads.next().await {
        match batch {
            Ok((batch_keys, batch_fallbacks)) => {
                fallbacks += batch_fallbacks;
                let n = batch_keys.len() as u64;
                let b: u64 = batch_keys.iter().map(|s| s.bytes).sum();
                bytes += b;
                for s in batch_keys {
                    if let Err(e) = sink(s) {
                        result = Err(e);
                        break;
                    }
                }
                if result.is_err() {
                    break;
                }
                progress.advance(n, b);
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    drop(reads);
    let mut scanner_result = Ok(());
    for scanner in scanners {
        let r = match scanner.await {
            Ok(r) => r,
            Err(join) => Err(session.protocol_err("SCAN", format!("scanner task failed: {join}"))),
        };
        if scanner_result.is_ok() {
            scanner_result = r;
        }
    }
    result?;
    scanner_result?;

    let gone = gate(session, &before_info, dbsize, ttl).await?;
    let end_server_ms = session.server_time_ms().await?;
    Ok(ScanOutcome {
        bytes,
        end_server_ms,
        dbsize,
        gone,
        fallbacks,
    })
}

/// Keys SCAN returned, with the type its filter guaranteed (`None`: ask TYPE).
struct Batch {
    kind: Option<KeyKind>,
    keys: Vec<Vec<u8>>,
}

/// One SCAN pass over the keyspace (`SCAN … TYPE t` when `kind` is given), sending each
/// non-empty page to the readers.
async fn scan_pass(
    mut conn: MultiplexedConnection,
    kind: Option<KeyKind>,
    tx: tokio::sync::mpsc::Sender<Batch>,
    scan_err: impl Fn(redis::RedisError) -> VerifyError,
) -> Result<(), VerifyError> {
    let mut cursor: u64 = 0;
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor).arg("COUNT");
        match kind {
            Some(kind) => cmd.arg(TYPED_SCAN_COUNT).arg("TYPE").arg(kind.name()),
            None => cmd.arg(SCAN_COUNT),
        };
        let (next, keys): (u64, Vec<Vec<u8>>) =
            cmd.query_async(&mut conn).await.map_err(&scan_err)?;
        if !keys.is_empty() && tx.send(Batch { kind, keys }).await.is_err() {
            // The readers stopped (an error): nothing more to do.
            return Ok(());
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// The cheap gate after a scan: the key count may only have dropped by what expired or was
/// evicted meanwhile, and a scan that skipped TTL reads must still find no TTL.
async fn gate(
    session: &Session,
    before_info: &ServerInfo,
    dbsize: u64,
    ttl: TtlMode,
) -> Result<u64, VerifyError> {
    let after = session.dbsize().await?;
    let after_info = session.info().await?;
    let gone = (after_info.expired_keys + after_info.evicted_keys)
        .saturating_sub(before_info.expired_keys + before_info.evicted_keys);
    if after > dbsize || dbsize - after > gone {
        return Err(VerifyError::WritersActive {
            before: dbsize,
            after,
            expired: gone,
        });
    }
    let expires_after = after_info
        .keyspace
        .get(&session.db)
        .map_or(0, |k| k.expires);
    if ttl == TtlMode::NoneInDatabase && expires_after != 0 {
        return Err(VerifyError::ExpiriesAppeared {
            after: expires_after,
        });
    }
    Ok(gone)
}

/// How a batch is read: shared by every batch of a scan.
#[derive(Debug, Clone, Copy)]
struct How {
    /// Keep each key's DUMP payload (snapshots).
    dump: bool,
    ttl: TtlMode,
    windows: Windows,
    source: ValueSource,
}

/// Reads one batch; returns the keys read and how many fell back from DUMP to commands.
///
/// With [`ValueSource::Dump`], one pipeline of DUMP (and the expiry) per key, each payload
/// decoded here; the keys the decoder refuses take the command path below, which is the whole
/// read for [`ValueSource::Commands`]: the keys' types (from the SCAN filter or the decoder,
/// else one TYPE each), then per key its first window, DUMP (snapshots only) and expiry in one
/// pipeline. A key whose type no longer matches (WRONGTYPE: replaced since) is typed and read
/// again once.
async fn read_batch(
    session: &Session,
    mut conn: MultiplexedConnection,
    batch: Batch,
    how: How,
) -> Result<(Vec<Scanned>, u64), VerifyError> {
    let Batch { kind, keys } = batch;
    let (mut out, typed, fallbacks) = match (how.source, kind) {
        (ValueSource::Dump, _) => {
            let (out, rest) = read_dumped(session, &mut conn, keys, how).await?;
            let fallbacks = rest.len() as u64;
            let mut typed = Vec::with_capacity(rest.len());
            let mut untyped = Vec::new();
            for (key, decoded_kind) in rest {
                match decoded_kind.or(kind) {
                    Some(kind) => typed.push(Plan { key, kind }),
                    None => untyped.push(key),
                }
            }
            typed.extend(ask_types(session, &mut conn, untyped).await?);
            (out, typed, fallbacks)
        }
        (ValueSource::Commands, Some(kind)) => (
            Vec::new(),
            keys.into_iter().map(|key| Plan { key, kind }).collect(),
            0,
        ),
        (ValueSource::Commands, None) => {
            (Vec::new(), ask_types(session, &mut conn, keys).await?, 0)
        }
    };
    let (more, changed) = read_keys(session, &mut conn, typed, how).await?;
    out.extend(more);
    if !changed.is_empty() {
        let typed = ask_types(session, &mut conn, changed).await?;
        let (more, still) = read_keys(session, &mut conn, typed, how).await?;
        if let Some(key) = still.first() {
            return Err(session.protocol_err(
                "TYPE",
                format!(
                    "key {} changed type twice while being read: writers are active; stop every writer and run again",
                    String::from_utf8_lossy(key)
                ),
            ));
        }
        out.extend(more);
    }
    Ok((out, fallbacks))
}

/// DUMP and the expiry of every key in one pipeline, each payload decoded into its canonical
/// record. Returns the records and the keys to read with commands instead, with their type
/// when the payload named it (a stream, say). Keys gone since SCAN are dropped.
///
/// The whole payload is held: a big key costs its DUMP size here (the command path reads
/// big keys in windows).
async fn read_dumped(
    session: &Session,
    conn: &mut MultiplexedConnection,
    keys: Vec<Vec<u8>>,
    how: How,
) -> Result<(Vec<Scanned>, Vec<(Vec<u8>, Option<KeyKind>)>), VerifyError> {
    if keys.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for key in &keys {
        pipe.cmd("DUMP").arg(key);
        expiry_command(&mut pipe, how.ttl, key);
    }
    let sent = local_ms() + session.clock_offset_ms;
    let replies: Vec<Value> = pipe
        .query_async(conn)
        .await
        .map_err(session.command_err("DUMP pipeline"))?;
    let received = local_ms() + session.clock_offset_ms;

    let mut replies = replies.into_iter();
    let mut out = Vec::with_capacity(keys.len());
    let mut rest = Vec::new();
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
            Some(Value::BulkString(payload)) => payload,
            // DUMP refused (renamed, or denied by an ACL): the commands can still read it.
            Some(Value::ServerError(_)) => {
                rest.push((key, None));
                continue;
            }
            _ => continue, // gone since SCAN
        };
        match dump::decode(&payload) {
            Ok(decoded) => out.push(Scanned {
                record: Record {
                    key,
                    kind: decoded.kind,
                    value: decoded.value,
                    expiry,
                },
                payload: how.dump.then_some(payload),
                bytes: decoded.bytes,
            }),
            Err(DumpError::Unsupported { kind, .. }) => rest.push((key, kind)),
            // Damaged in transit, a newer RDB version, or a decoder gap: the commands read
            // it exactly all the same.
            Err(_) => rest.push((key, None)),
        }
    }
    Ok((out, rest))
}

/// Adds the expiry command for `key`, if the mode reads one.
fn expiry_command(pipe: &mut redis::Pipeline, ttl: TtlMode, key: &[u8]) {
    match ttl {
        TtlMode::Exact => {
            pipe.cmd("PEXPIRETIME").arg(key);
        }
        TtlMode::Pttl => {
            pipe.cmd("PTTL").arg(key);
        }
        TtlMode::NoneInDatabase => {}
    }
}

/// The expiry from its reply (`None` when nothing was asked); `None` when the key is gone.
fn to_expiry(reply: Option<Value>, ttl: TtlMode, sent: i64, received: i64) -> Option<Expiry> {
    match reply.map(|v| int(&v)) {
        Some(Some(-2) | None) => None,
        None | Some(Some(-1)) => Some(Expiry::Never),
        Some(Some(t)) if ttl == TtlMode::Exact => Some(Expiry::exact(t)),
        Some(Some(t)) => Some(Expiry::from_pttl(t, sent, received)),
    }
}

/// TYPE for every key, pipelined; keys gone since SCAN are dropped.
async fn ask_types(
    session: &Session,
    conn: &mut MultiplexedConnection,
    keys: Vec<Vec<u8>>,
) -> Result<Vec<Plan>, VerifyError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for k in &keys {
        pipe.cmd("TYPE").arg(k);
    }
    let types: Vec<String> = pipe
        .query_async(conn)
        .await
        .map_err(session.command_err("TYPE"))?;
    let mut plans = Vec::with_capacity(keys.len());
    for (key, t) in keys.into_iter().zip(types) {
        let Some(kind) = KeyKind::from_type_name(&t) else {
            if t == "none" {
                continue; // gone since SCAN (expired): nothing to record
            }
            return Err(VerifyError::UnsupportedType {
                kind: t,
                key: String::from_utf8_lossy(&key).into_owned(),
            });
        };
        plans.push(Plan { key, kind });
    }
    Ok(plans)
}

/// What pipeline B asks for one key.
struct Plan {
    key: Vec<u8>,
    kind: KeyKind,
}

/// The first window of each key (plus DUMP and expiry), in one pipeline; returns the records
/// and the keys whose type was not the one planned (WRONGTYPE).
// One function on purpose: the pipeline it builds and the order it consumes replies in must
// stay side by side.
#[allow(clippy::too_many_lines)]
async fn read_keys(
    session: &Session,
    conn: &mut MultiplexedConnection,
    plans: Vec<Plan>,
    how: How,
) -> Result<(Vec<Scanned>, Vec<Vec<u8>>), VerifyError> {
    let How {
        dump,
        ttl,
        windows: w,
        ..
    } = how;
    if plans.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut pipe = redis::pipe();
    // Error replies stay in place: WRONGTYPE for one key must not fail the batch.
    pipe.ignore_errors();
    for Plan { key, kind } in &plans {
        // One read per key: the first window. Sizes are asked only when a window comes back
        // full (a big key), since every extra command per key costs server time.
        let last = w.elements - 1;
        match kind {
            KeyKind::String => {
                pipe.cmd("GETRANGE").arg(key).arg(0).arg(w.string_bytes - 1);
            }
            KeyKind::List => {
                pipe.cmd("LRANGE").arg(key).arg(0).arg(last);
            }
            KeyKind::Set => {
                pipe.cmd("SSCAN")
                    .arg(key)
                    .arg(0)
                    .arg("COUNT")
                    .arg(w.elements);
            }
            KeyKind::Hash => {
                pipe.cmd("HSCAN")
                    .arg(key)
                    .arg(0)
                    .arg("COUNT")
                    .arg(w.elements);
            }
            KeyKind::ZSet => {
                pipe.cmd("ZRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(last)
                    .arg("WITHSCORES");
            }
            KeyKind::Stream => {
                pipe.cmd("XINFO").arg("STREAM").arg(key);
                pipe.cmd("XRANGE")
                    .arg(key)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(w.elements);
            }
        }
        if dump {
            pipe.cmd("DUMP").arg(key);
        }
        // Last, so a key that vanished during the reads shows -2 here and is dropped.
        expiry_command(&mut pipe, ttl, key);
    }
    let sent = local_ms() + session.clock_offset_ms;
    let replies: Vec<Value> = pipe
        .query_async(conn)
        .await
        .map_err(session.command_err("read pipeline"))?;
    let received = local_ms() + session.clock_offset_ms;

    let mut replies = replies.into_iter();
    let mut out = Vec::with_capacity(plans.len());
    let mut changed = Vec::new();
    for plan in plans {
        let n = if plan.kind == KeyKind::Stream { 2 } else { 1 };
        let mut first: Vec<Value> = replies.by_ref().take(n).collect();
        let payload = if dump { replies.next() } else { None };
        let expiry = if ttl == TtlMode::NoneInDatabase {
            None
        } else {
            replies.next()
        };
        if let Some(Value::ServerError(e)) = first.first()
            && e.code() == "WRONGTYPE"
        {
            changed.push(plan.key);
            continue;
        }
        if let Some(Value::ServerError(e)) = first
            .iter()
            .chain(payload.iter())
            .chain(expiry.iter())
            .find(|v| matches!(v, Value::ServerError(_)))
        {
            return Err(session.command_err("read pipeline")(e.clone().into()));
        }
        let Some(expiry) = to_expiry(expiry, ttl, sent, received) else {
            continue; // gone: expired during the read
        };
        let payload = match payload {
            Some(Value::BulkString(p)) => Some(p),
            Some(_) => continue, // vanished during the read
            None => None,
        };
        let mut reader = KeyReader {
            session,
            conn: &mut *conn,
            key: &plan.key,
            bytes: 0,
            w,
        };
        let value = reader.read(plan.kind, std::mem::take(&mut first)).await?;
        let bytes = reader.bytes;
        out.push(Scanned {
            record: Record {
                key: plan.key,
                kind: plan.kind,
                value,
                expiry,
            },
            payload,
            bytes,
        });
    }
    Ok((out, changed))
}

/// Reads one key's value from its first replies, fetching further windows when it is big.
struct KeyReader<'a> {
    session: &'a Session,
    conn: &'a mut MultiplexedConnection,
    key: &'a [u8],
    bytes: u64,
    w: Windows,
}

impl KeyReader<'_> {
    fn bad(&self, command: &'static str) -> VerifyError {
        self.session.protocol_err(
            command,
            format!(
                "unexpected reply shape for key {}",
                String::from_utf8_lossy(self.key)
            ),
        )
    }

    async fn read(&mut self, kind: KeyKind, first: Vec<Value>) -> Result<u128, VerifyError> {
        let mut first = first.into_iter();
        let mut d = ValueDigest::new(kind);
        match kind {
            KeyKind::String => {
                let chunk = bulk(first.next()).ok_or_else(|| self.bad("GETRANGE"))?;
                self.string(&mut d, chunk).await?;
            }
            KeyKind::List => {
                let window = array(first.next()).ok_or_else(|| self.bad("LRANGE"))?;
                self.list(&mut d, window).await?;
            }
            KeyKind::ZSet => {
                let window = array(first.next()).ok_or_else(|| self.bad("ZRANGE"))?;
                self.zset(&mut d, window).await?;
            }
            KeyKind::Set | KeyKind::Hash => {
                let reply = first.next();
                self.unordered(&mut d, kind, reply).await?;
            }
            KeyKind::Stream => {
                let info = first.next();
                let window = array(first.next()).ok_or_else(|| self.bad("XRANGE"))?;
                self.stream(&mut d, info, window).await?;
            }
        }
        Ok(d.finish())
    }

    /// GETRANGE windows of `window_bytes` until one comes back short.
    async fn string(&mut self, d: &mut ValueDigest, first: Vec<u8>) -> Result<(), VerifyError> {
        let mut chunk = first;
        let mut offset = 0_usize;
        loop {
            offset += chunk.len();
            self.bytes += chunk.len() as u64;
            d.bytes(&chunk);
            if chunk.len() < self.w.string_bytes {
                return Ok(());
            }
            chunk = redis::cmd("GETRANGE")
                .arg(self.key)
                .arg(offset)
                .arg(offset + self.w.string_bytes - 1)
                .query_async(self.conn)
                .await
                .map_err(self.session.command_err("GETRANGE"))?;
        }
    }

    /// LRANGE windows until one comes back short.
    async fn list(&mut self, d: &mut ValueDigest, first: Vec<Value>) -> Result<(), VerifyError> {
        let mut window = first;
        let mut start = 0_usize;
        loop {
            let n = window.len();
            for v in window {
                let e = bulk(Some(v)).ok_or_else(|| self.bad("LRANGE"))?;
                self.bytes += e.len() as u64;
                d.element(&e);
            }
            start += n;
            if n < self.w.elements {
                return Ok(());
            }
            window = redis::cmd("LRANGE")
                .arg(self.key)
                .arg(start)
                .arg(start + self.w.elements - 1)
                .query_async(self.conn)
                .await
                .map_err(self.session.command_err("LRANGE"))?;
        }
    }

    /// ZRANGE … WITHSCORES windows until one comes back short.
    async fn zset(&mut self, d: &mut ValueDigest, first: Vec<Value>) -> Result<(), VerifyError> {
        let mut window = first;
        let mut start = 0_usize;
        loop {
            let mut n = 0;
            let mut it = window.into_iter();
            while let Some(m) = it.next() {
                let member = bulk(Some(m)).ok_or_else(|| self.bad("ZRANGE"))?;
                let score = match it.next() {
                    Some(Value::Double(f)) => f,
                    other => bulk(other)
                        .and_then(|s| parse_score(&s))
                        .ok_or_else(|| self.bad("ZRANGE"))?,
                };
                self.bytes += member.len() as u64 + 8;
                d.scored(&member, score);
                n += 1;
            }
            start += n;
            if n < self.w.elements {
                return Ok(());
            }
            window = redis::cmd("ZRANGE")
                .arg(self.key)
                .arg(start)
                .arg(start + self.w.elements - 1)
                .arg("WITHSCORES")
                .query_async(self.conn)
                .await
                .map_err(self.session.command_err("ZRANGE"))?;
        }
    }

    /// Sets and hashes through SSCAN/HSCAN. One reply (cursor 0 at once, the common case) is
    /// atomic and cannot repeat an element. Over several pages SCAN may repeat one: when the
    /// elements returned outnumber the cardinality (SCARD/HLEN, asked only then), the key is
    /// scanned again with a set of element hashes (16 bytes per element, for that key only).
    async fn unordered(
        &mut self,
        d: &mut ValueDigest,
        kind: KeyKind,
        first: Option<Value>,
    ) -> Result<(), VerifyError> {
        let (command, card_command) = if kind == KeyKind::Hash {
            ("HSCAN", "HLEN")
        } else {
            ("SSCAN", "SCARD")
        };
        let mut seen: Option<HashSet<u128>> = None;
        let mut reply = first;
        loop {
            let mut digest = ValueDigest::new(kind);
            let mut returned = 0_u64;
            let mut pages = 0_u32;
            let start_bytes = self.bytes;
            loop {
                let (cursor, items) = scan_reply(reply.take()).ok_or_else(|| self.bad(command))?;
                pages += 1;
                let mut it = items.into_iter();
                while let Some(a) = it.next() {
                    let a = bulk(Some(a)).ok_or_else(|| self.bad(command))?;
                    let b = if kind == KeyKind::Hash {
                        Some(bulk(it.next()).ok_or_else(|| self.bad(command))?)
                    } else {
                        None
                    };
                    returned += 1;
                    if let Some(seen) = &mut seen
                        && !seen.insert(element_hash(&a, b.as_deref()))
                    {
                        continue;
                    }
                    self.bytes += (a.len() + b.as_ref().map_or(0, Vec::len)) as u64;
                    match b {
                        Some(b) => digest.pair(&a, &b),
                        None => digest.member(&a),
                    }
                }
                if cursor == 0 {
                    break;
                }
                reply = Some(self.scan_page(command, cursor).await?);
            }
            if seen.is_some() || pages == 1 {
                *d = digest;
                return Ok(());
            }
            let card: u64 = redis::cmd(card_command)
                .arg(self.key)
                .query_async(self.conn)
                .await
                .map_err(self.session.command_err(card_command))?;
            if returned <= card {
                *d = digest;
                return Ok(());
            }
            // Every element present throughout is returned at least once, so a total above
            // the cardinality means some came twice. Scan again, deduplicating.
            self.bytes = start_bytes;
            seen = Some(HashSet::with_capacity(usize::try_from(card).unwrap_or(0)));
            reply = Some(self.scan_page(command, 0).await?);
        }
    }

    async fn scan_page(
        &mut self,
        command: &'static str,
        cursor: u64,
    ) -> Result<Value, VerifyError> {
        redis::cmd(command)
            .arg(self.key)
            .arg(cursor)
            .arg("COUNT")
            .arg(self.w.elements)
            .query_async(self.conn)
            .await
            .map_err(self.session.command_err(command))
    }

    async fn stream(
        &mut self,
        d: &mut ValueDigest,
        info: Option<Value>,
        first: Vec<Value>,
    ) -> Result<(), VerifyError> {
        // Only what every version reports and replication/RESTORE preserve: the last id and
        // the groups' names, positions and pending/consumer counts.
        let info = pairs(info).ok_or_else(|| self.bad("XINFO STREAM"))?;
        let last_id = info
            .iter()
            .find(|(k, _)| k == b"last-generated-id")
            .and_then(|(_, v)| text(v))
            .ok_or_else(|| self.bad("XINFO STREAM"))?;
        d.stream_meta("last-id", &[&last_id]);
        let group_count = info
            .iter()
            .find(|(k, _)| k == b"groups")
            .and_then(|(_, v)| int(v))
            .unwrap_or(0);
        let groups: Value = if group_count > 0 {
            redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(self.key)
                .query_async(self.conn)
                .await
                .map_err(self.session.command_err("XINFO GROUPS"))?
        } else {
            Value::Array(Vec::new())
        };
        let groups = Some(groups);
        let mut groups: Vec<Vec<Vec<u8>>> = array(groups)
            .ok_or_else(|| self.bad("XINFO GROUPS"))?
            .into_iter()
            .map(|g| {
                let fields = pairs(Some(g)).unwrap_or_default();
                ["name", "consumers", "pending", "last-delivered-id"]
                    .iter()
                    .map(|name| {
                        fields
                            .iter()
                            .find(|(k, _)| k == name.as_bytes())
                            .and_then(|(_, v)| text(v))
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .collect();
        groups.sort();
        for g in &groups {
            let parts: Vec<&[u8]> = g.iter().map(Vec::as_slice).collect();
            d.stream_meta("group", &parts);
        }
        let mut window = first;
        loop {
            let n = window.len();
            let mut last = None;
            for entry in window {
                let mut parts = array(Some(entry))
                    .ok_or_else(|| self.bad("XRANGE"))?
                    .into_iter();
                let id = bulk(parts.next()).ok_or_else(|| self.bad("XRANGE"))?;
                let fields: Vec<Vec<u8>> = array(parts.next())
                    .ok_or_else(|| self.bad("XRANGE"))?
                    .into_iter()
                    .map(|v| bulk(Some(v)).ok_or_else(|| self.bad("XRANGE")))
                    .collect::<Result<_, _>>()?;
                self.bytes += (id.len() + fields.iter().map(Vec::len).sum::<usize>()) as u64;
                let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
                d.stream_entry(&id, &refs);
                last = Some(id);
            }
            let Some(last) = last.filter(|_| n >= self.w.elements) else {
                return Ok(());
            };
            let start = next_stream_id(&last).ok_or_else(|| self.bad("XRANGE"))?;
            window = redis::cmd("XRANGE")
                .arg(self.key)
                .arg(start)
                .arg("+")
                .arg("COUNT")
                .arg(self.w.elements)
                .query_async(self.conn)
                .await
                .map_err(self.session.command_err("XRANGE"))?;
        }
    }
}

/// The smallest id after `id` (`ms-seq` -> `ms-(seq+1)`), for XRANGE windows on any version.
fn next_stream_id(id: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(id).ok()?;
    let (ms, seq) = s.split_once('-')?;
    let (ms, seq): (u64, u64) = (ms.parse().ok()?, seq.parse().ok()?);
    Some(match seq.checked_add(1) {
        Some(seq) => format!("{ms}-{seq}"),
        None => format!("{}-0", ms.checked_add(1)?),
    })
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn bulk(v: Option<Value>) -> Option<Vec<u8>> {
    match v? {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

fn text(v: &Value) -> Option<Vec<u8>> {
    bulk(Some(v.clone()))
}

fn array(v: Option<Value>) -> Option<Vec<Value>> {
    match v? {
        Value::Array(a) | Value::Set(a) => Some(a),
        Value::Nil => Some(Vec::new()),
        _ => None,
    }
}

/// A flat `[k, v, k, v]` array (RESP2) or a map (RESP3) as pairs with byte-string names.
fn pairs(v: Option<Value>) -> Option<Vec<(Vec<u8>, Value)>> {
    match v? {
        Value::Map(m) => m
            .into_iter()
            .map(|(k, v)| Some((bulk(Some(k))?, v)))
            .collect(),
        Value::Array(a) => {
            let mut out = Vec::with_capacity(a.len() / 2);
            let mut it = a.into_iter();
            while let Some(k) = it.next() {
                out.push((bulk(Some(k))?, it.next()?));
            }
            Some(out)
        }
        _ => None,
    }
}

/// `[cursor, [items]]` from SSCAN/HSCAN.
fn scan_reply(v: Option<Value>) -> Option<(u64, Vec<Value>)> {
    let mut parts = array(v)?.into_iter();
    let cursor = int(&parts.next()?)?;
    let items = array(parts.next())?;
    Some((u64::try_from(cursor).ok()?, items))
}

#[cfg(test)]
mod tests {
    use super::{ScanOutcome, next_stream_id};
    use crate::verify::VerifyError;

    #[test]
    fn a_scan_must_read_every_key_expiry_did_not_take() {
        let outcome = ScanOutcome {
            bytes: 0,
            end_server_ms: 0,
            dbsize: 100,
            gone: 2,
            fallbacks: 0,
        };
        assert!(outcome.check_complete(100).is_ok());
        assert!(outcome.check_complete(98).is_ok());
        assert!(matches!(
            outcome.check_complete(97),
            Err(VerifyError::KeysMissed {
                expected: 100,
                found: 97,
                expired: 2
            })
        ));
    }

    #[test]
    fn stream_ids_advance() {
        assert_eq!(next_stream_id(b"5-0").as_deref(), Some("5-1"));
        assert_eq!(
            next_stream_id(format!("5-{}", u64::MAX).as_bytes()).as_deref(),
            Some("6-0")
        );
        assert_eq!(next_stream_id(b"x"), None);
    }
}
