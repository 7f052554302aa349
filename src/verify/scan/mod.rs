//! The scan: SCAN batches on one connection, per-batch reads pipelined on all of them, one
//! [`Scanned`] per key handed over in batches through a channel (the record set and the
//! snapshot file are fed on a thread of their own, off the read loop), and the writers-active
//! gate around it all.
//!
//! Throughput comes from overlap rather than from one clever pipeline: a scanner task runs
//! SCAN COUNT 1000 ahead of the readers, and [`VerifyOptions::batches_per_connection`] batches
//! (or DUMP pipelines) per reading connection (2 by default) are in flight at once, so one
//! batch's replies travel while another's are decoded. Measured at 1, 2, 4 and 8 connections x
//! 1, 2, 4 and 8 batches (`bench/verify tune`, issue 12): from 2 in flight on, the server is the
//! limit and no shape stands out beyond the noise.
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
//! decoder refuses (module types, hashes with field expiries, unknown RDB versions), counted in
//! [`ScanOutcome::fallbacks`], and for [`ValueSource::Commands`].
//!
//! Connection shape of a DUMP scan with `max_connections` = n >= 2 (4 by default): one
//! multiplexed connection of the `redis` crate carries SCAN (the scanner task), INFO, DBSIZE,
//! TIME and the command reads of the keys the decoder refuses; the other n - 1 are our own
//! RESP connections (`crate::verify::wire`, read by `wired`), each with
//! [`VerifyOptions::batches_per_connection`] DUMP pipelines written ahead of its reads. The
//! total is n, as before: connections count against the plan's limit. Our own connections
//! exist because, at a million keys, the crate's reply parsing, its multiplexer and one
//! `redis::Cmd` per command took about two thirds of the client's CPU (perf); a payload is now
//! decoded straight from the reply buffer. With n = 1, or with [`ValueSource::Commands`],
//! every connection is multiplexed and the DUMP pipelines go through the crate (`dumped`):
//! both paths file each reply through the same `examine` and `settle`.
//!
//! Every scan ends with [`ScanOutcome::check_complete`]: distinct keys read plus keys expired
//! meanwhile must make up DBSIZE, so no key goes unread silently.

mod bound;
mod commands;
mod dumped;
mod wired;

use futures::StreamExt;
use redis::Value;
use redis::aio::MultiplexedConnection;

use crate::verify::collect::Feed;
use crate::verify::conn::{ServerInfo, Session};
use crate::verify::error::VerifyError;
use crate::verify::record::{Expiry, KeyKind, Record};
use crate::verify::writemark::{self, CommandClasses, WriteVerdict};
use crate::verify::{Progress, ValueSource, VerifyOptions};
use bound::ScanBound;
use commands::{int, read_keys};
pub use dumped::Fallbacks;
use dumped::{PayloadSize, Sent, Undecoded, read_dumped};

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
    pub fallbacks: Fallbacks,
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

/// Scans the whole database, sending every key read to `out`, a batch at a time (a key SCAN
/// returns twice is read and handed over twice: the record set deduplicates). When `out`
/// closes (its consumer failed) the scan stops early and returns what it has: the caller
/// reports the consumer's error.
pub(crate) async fn scan(
    session: &Session,
    opts: &VerifyOptions,
    progress: &dyn Progress,
    dump: bool,
    out: Feed,
) -> Result<ScanOutcome, VerifyError> {
    // The write evidence at both ends: an overwrite moves no key count, only this shows it.
    let mut classes = CommandClasses::default();
    // Sent together (one round trip to a server across the internet, not two).
    let (marked, dbsize) =
        futures::join!(writemark::read_on(session, &mut classes), session.dbsize());
    let (before_info, before_mark) = marked?;
    let dbsize = dbsize?;
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
            let endless = session.protocol_err("SCAN", String::new());
            tokio::spawn(scan_pass(conn, kind, tx, scan_err, (dbsize, endless)))
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
    let how = How {
        dump,
        ttl,
        windows,
        source: opts.value_source,
    };
    let batches = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let result = drive_reads(session, opts, progress, batches, how, &out).await;
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
    let (bytes, fallbacks) = result?;
    scanner_result?;

    // The key count, the write evidence (its INFO also holds the expiry counts the gate
    // reads) and the end time, sent together: one round trip where there were four.
    let (marked, after, end_server_ms) = futures::join!(
        writemark::read_on(session, &mut classes),
        session.dbsize(),
        session.server_time_ms()
    );
    let (after_info, after_mark) = marked?;
    let gone = gate(session.db, &before_info, &after_info, dbsize, after?, ttl)?;
    // Only evidence of a write stops the scan. "Unprovable" (a save in between on a server
    // that hides its command counts) does not: the runner's own write checks fail closed on
    // it before the point of no return, and a standalone digest would otherwise fail on
    // every scheduled save.
    if let WriteVerdict::Written(evidence) =
        writemark::judge(&before_mark, &after_mark, |n| classes.is_write(n))
    {
        return Err(VerifyError::WrittenDuringScan { evidence });
    }
    let end_server_ms = end_server_ms?;
    Ok(ScanOutcome {
        bytes,
        end_server_ms,
        dbsize,
        gone,
        fallbacks,
    })
}

/// Reads every batch `batches` yields, `batches_per_connection` per connection in flight, and
/// queues the keys read on `out`. Returns the value bytes read and the fallbacks.
async fn drive_reads(
    session: &Session,
    opts: &VerifyOptions,
    progress: &dyn Progress,
    batches: impl futures::Stream<Item = Batch> + Unpin,
    how: How,
    out: &Feed,
) -> Result<(u64, Fallbacks), VerifyError> {
    if how.source == ValueSource::Dump && !session.wires.is_empty() {
        return wired::drive_wired(session, opts, progress, batches, how, out).await;
    }
    let in_flight = session.conns.len() * opts.batches_per_connection.max(1);
    let size = PayloadSize::new();
    let size = &size;
    let mut reads = batches
        .enumerate()
        .map(|(i, batch)| read_batch(session, session.conn(i), batch, how, size, out))
        .buffer_unordered(in_flight);
    let mut bytes = 0_u64;
    let mut fallbacks = Fallbacks::default();
    while let Some(batch) = reads.next().await {
        let (batch_keys, batch_fallbacks, sent) = batch?;
        fallbacks.add(&batch_fallbacks);
        let n = batch_keys.len() as u64 + sent.keys;
        let b: u64 = batch_keys.iter().map(|s| s.bytes).sum::<u64>() + sent.bytes;
        bytes += b;
        if out.send(batch_keys).await.is_err() {
            break; // the consumer failed: the caller reports its error
        }
        progress.advance(n, b);
    }
    Ok((bytes, fallbacks))
}

/// Reads exactly the keys named (no SCAN, no DBSIZE gate: the caller chose the keys), sending
/// each one present to `out`; a key absent is simply not sent. Expiries are always read.
pub(crate) async fn read_listed(
    session: &Session,
    opts: &VerifyOptions,
    keys: &[Vec<u8>],
    out: Feed,
) -> Result<Fallbacks, VerifyError> {
    let ttl = if session.info.has_pexpiretime() && !opts.force_pttl {
        TtlMode::Exact
    } else {
        TtlMode::Pttl
    };
    let how = How {
        dump: false,
        ttl,
        windows: Windows {
            elements: opts.window_elements.max(1),
            string_bytes: opts.window_bytes.max(1),
        },
        source: opts.value_source,
    };
    // Owned batches: a stream that maps borrowed chunks through a closure makes the future
    // "not general enough" to be Send, and the live swap runs this inside a spawned run.
    let batches: Vec<Batch> = keys
        .chunks(usize::try_from(SCAN_COUNT).unwrap_or(1000))
        .map(|chunk| Batch {
            kind: None,
            keys: chunk.to_vec(),
        })
        .collect();
    let batches = futures::stream::iter(batches);
    let (_, fallbacks) = drive_reads(
        session,
        opts,
        &crate::verify::NoProgress,
        batches,
        how,
        &out,
    )
    .await?;
    Ok(fallbacks)
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
    (dbsize, mut endless): (u64, VerifyError),
) -> Result<(), VerifyError> {
    let mut cursor: u64 = 0;
    let mut bound = ScanBound::new(dbsize);
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor).arg("COUNT");
        match kind {
            Some(kind) => cmd.arg(TYPED_SCAN_COUNT).arg("TYPE").arg(kind.name()),
            None => cmd.arg(SCAN_COUNT),
        };
        let (next, keys): (u64, Vec<Vec<u8>>) =
            cmd.query_async(&mut conn).await.map_err(&scan_err)?;
        if let Err(detail) = bound.step(next, keys.len()) {
            if let VerifyError::Protocol { detail: d, .. } = &mut endless {
                *d = detail;
            }
            return Err(endless);
        }
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
fn gate(
    db: u32,
    before_info: &ServerInfo,
    after_info: &ServerInfo,
    dbsize: u64,
    after: u64,
    ttl: TtlMode,
) -> Result<u64, VerifyError> {
    let gone = (after_info.expired_keys + after_info.evicted_keys)
        .saturating_sub(before_info.expired_keys + before_info.evicted_keys);
    if after > dbsize || dbsize - after > gone {
        return Err(VerifyError::WritersActive {
            before: dbsize,
            after,
            expired: gone,
        });
    }
    let expires_after = after_info.keyspace.get(&db).map_or(0, |k| k.expires);
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
    size: &PayloadSize,
    feed: &Feed,
) -> Result<(Vec<Scanned>, Fallbacks, Sent), VerifyError> {
    let Batch { kind, keys } = batch;
    match (how.source, kind) {
        (ValueSource::Dump, _) => {
            let (mut out, rest, fallbacks, sent) =
                read_dumped(session, &mut conn, keys, how, size, feed).await?;
            out.extend(read_undecoded(session, &mut conn, rest, kind, how).await?);
            Ok((out, fallbacks, sent))
        }
        (ValueSource::Commands, Some(kind)) => {
            let typed = keys.into_iter().map(|key| Plan { key, kind }).collect();
            let out = read_typed(session, &mut conn, typed, how).await?;
            Ok((out, Fallbacks::default(), Sent::default()))
        }
        (ValueSource::Commands, None) => {
            let typed = ask_types(session, &mut conn, keys).await?;
            let out = read_typed(session, &mut conn, typed, how).await?;
            Ok((out, Fallbacks::default(), Sent::default()))
        }
    }
}

/// Reads with commands the keys the decoder refused, typed by the decoder, the SCAN filter
/// (`kind`) or else one TYPE each.
async fn read_undecoded(
    session: &Session,
    conn: &mut MultiplexedConnection,
    rest: Vec<Undecoded>,
    kind: Option<KeyKind>,
    how: How,
) -> Result<Vec<Scanned>, VerifyError> {
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let mut typed = Vec::with_capacity(rest.len());
    let mut untyped = Vec::new();
    for (key, decoded_kind) in rest {
        match decoded_kind.or(kind) {
            Some(kind) => typed.push(Plan { key, kind }),
            None => untyped.push(key),
        }
    }
    typed.extend(ask_types(session, conn, untyped).await?);
    read_typed(session, conn, typed, how).await
}

/// Reads typed keys with commands; a key whose type no longer matches (WRONGTYPE: replaced
/// since) is typed and read again once.
async fn read_typed(
    session: &Session,
    conn: &mut MultiplexedConnection,
    typed: Vec<Plan>,
    how: How,
) -> Result<Vec<Scanned>, VerifyError> {
    let (mut out, changed) = read_keys(session, conn, typed, how).await?;
    if !changed.is_empty() {
        let typed = ask_types(session, conn, changed).await?;
        let (more, still) = read_keys(session, conn, typed, how).await?;
        if let Some(key) = still.first() {
            return Err(session.protocol_err(
                "TYPE",
                format!(
                    "key {} changed type twice while being read: writers are active; stop every writer and run again",
                    crate::printable::key(key)
                ),
            ));
        }
        out.extend(more);
    }
    Ok(out)
}

/// Adds the expiry command for `key`, if the mode reads one.
fn expiry_command(pipe: &mut redis::Pipeline, ttl: TtlMode, key: &[u8]) {
    if let Some(name) = expiry_name(ttl) {
        pipe.add_command(key_command(name, key));
    }
}

/// The command that reads a key's expiry in this mode, if any.
fn expiry_name(ttl: TtlMode) -> Option<&'static str> {
    match ttl {
        TtlMode::Exact => Some("PEXPIRETIME"),
        TtlMode::Pttl => Some("PTTL"),
        TtlMode::NoneInDatabase => None,
    }
}

/// `NAME key`, allocated once at its final size: growing each command's buffers as arguments
/// arrive cost more than encoding them (perf, issue 12: two commands per key, a million keys).
fn key_command(name: &str, key: &[u8]) -> redis::Cmd {
    let mut cmd = redis::Cmd::with_capacity(2, name.len() + key.len());
    cmd.arg(name).arg(key);
    cmd
}

/// The expiry from its reply (`None` when nothing was asked); `None` when the key is gone.
fn to_expiry(reply: Option<Value>, ttl: TtlMode, sent: i64, received: i64) -> Option<Expiry> {
    match reply {
        None => Some(Expiry::Never),
        Some(v) => expiry_of(int(&v)?, ttl, sent, received),
    }
}

/// The expiry from the integer PEXPIRETIME or PTTL answered; `None` when the key is gone.
fn expiry_of(reply: i64, ttl: TtlMode, sent: i64, received: i64) -> Option<Expiry> {
    match reply {
        -2 => None,
        -1 => Some(Expiry::Never),
        t if ttl == TtlMode::Exact => Some(Expiry::exact(t)),
        t => Some(Expiry::from_pttl(t, sent, received)),
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
                key: crate::printable::key(&key),
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

#[cfg(test)]
mod tests {
    use super::commands::next_stream_id;
    use super::{Fallbacks, ScanOutcome};
    use crate::verify::VerifyError;

    #[test]
    fn a_scan_must_read_every_key_expiry_did_not_take() {
        let outcome = ScanOutcome {
            bytes: 0,
            end_server_ms: 0,
            dbsize: 100,
            gone: 2,
            fallbacks: Fallbacks::default(),
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
