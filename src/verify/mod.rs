//! Exact data verification: canonical per-key digest, diff, snapshot and restore.
//!
//! # Why not DUMP bytes or DEBUG DIGEST
//! DUMP payloads differ for equal data (a hashtable-encoded set after replica + promote, every
//! payload across versions) and `DEBUG DIGEST` is disabled on managed services and ignores
//! TTLs. Each key is therefore reduced to a [`Record`], whether its value comes from its DUMP
//! payload decoded on the client ([`dump`], one server lookup per key, the default) or from
//! ordinary commands (the fallback for what the decoder does not cover, counted): key
//! bytes, type, a canonical value digest (xxh3-128; strings as bytes, lists in order, sets and
//! hashes as a wrapping sum of per-element hashes, zsets with parsed scores, streams with
//! entries, last id and groups) and the absolute expiry (PEXPIRETIME on Redis >= 7.0, exact;
//! PTTL on 6.x, with the round trip as tolerance).
//!
//! # Data flow
//! `scan` (SCAN batches, pipelined reads on up to `max_connections` connections) hands
//! records to a [`RecordSet`] (memory-bounded external sort: sorted runs spill to disk beyond
//! `memory_budget`), whose merged stream is each key once in key order. The database digest
//! hashes that stream; [`merge_join`] compares two such streams and names every difference.
//! [`compare`] does the same for two live servers scanned at once (`digest --against-url`, and
//! the live swap's proof that a second server holds the first one's data).
//! A snapshot file ([`snapshot`] format) stores each key's DUMP payload next to its record, so
//! a diff against it needs no second read of the old server and a restore needs no re-read.
//!
//! The pure core is [`record`], [`store`], [`diff`] and [`snapshot`] (format); the I/O edge is
//! `conn`, `wire` (our own RESP connections for the DUMP reads) and `scan`, driven by the async
//! functions below. Only data-plane commands are sent: SCAN, DUMP, TYPE, reads,
//! PEXPIRETIME/PTTL, DBSIZE, INFO, TIME, DUMP (snapshot), RESTORE and DEL (restore), AUTH,
//! SELECT, CLIENT SETNAME/LIST, and for [`writemark`] (whether anything wrote since a mark, in
//! a way a background save cannot hide) `INFO all` and COMMAND INFO. Never DEBUG, CONFIG,
//! OBJECT, MONITOR, SYNC or KEYS.
//!
//! # For the runner
//! * Quiesce first: a scan whose key count moves by more than expiry explains fails with
//!   [`VerifyError::WritersActive`].
//! * Before the change: [`snapshot`] (it returns the digest). After: [`diff`] against the file;
//!   [`DiffReport::is_equal`] decides; on differences, [`restore`] with
//!   [`RestoreSelection::Keys`] of the named keys, which re-runs the diff and returns it.
//! * Pass `max_connections` with headroom under the plan's limit; every connection is named
//!   `upshift-<role>-<pid>-<n>` ([`ClientInfo::is_upshift`]) so [`client_list`] can tell the
//!   app's connections from ours.
//! * Reading the snapshot file is synchronous I/O inside the async functions: call them from a
//!   multi-threaded runtime (or accept the short stalls).

mod collect;
pub mod compare;
pub mod conn;
pub mod diff;
pub mod dump;
pub mod error;
pub mod record;
pub mod scan;
pub mod snapshot;
pub mod store;
pub mod url;
mod wire;
pub mod writemark;

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use compare::{CompareReport, compare, compare_keys};
pub use conn::{CLIENT_NAME_PREFIX, ClientInfo, KeyspaceCounts, ServerInfo};
pub use diff::{DiffCounts, DiffReport, Difference, DifferenceKind, merge_join, write_differences};
pub use dump::{Decoded, DumpError};
pub use error::{Refusal, VerifyError};
pub use record::{DatabaseDigest, Expiry, KeyKind, Record, ValueDigest};
pub use scan::Fallbacks;
pub use snapshot::{FormatError, SnapshotHeader, SnapshotTrailer};
pub use store::RecordSet;
pub use url::{RedisUrl, UrlError};
pub use writemark::{CommandClasses, WriteMark, WriteVerdict};

use crate::files::SyncBehind;
use collect::scan_into;
use conn::{CONNECT_TIMEOUT, RESPONSE_TIMEOUT, Session};
use scan::{Scanned, scan};
use snapshot::{SnapshotReader, SnapshotWriter, verify_stream};

/// Tuning and safety options shared by every verifier function.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Connections opened to the server (at least 1). Leave headroom under the plan's limit.
    pub max_connections: usize,
    /// Verify the server's TLS certificate. Off by default: heroku-redis certificates are
    /// self-signed and Heroku's own CLI does not verify them.
    pub tls_verify: bool,
    /// Bytes of records kept in memory before sorted runs spill to `spill_dir`.
    pub memory_budget: usize,
    /// Where spilled runs go (anonymous files, deleted automatically).
    pub spill_dir: PathBuf,
    /// Elements per window for big lists, zsets, streams and SSCAN/HSCAN.
    pub window_elements: usize,
    /// Bytes per GETRANGE window for big strings.
    pub window_bytes: usize,
    /// Differences kept by name in a [`DiffReport`] (all are counted).
    pub max_listed_differences: usize,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Timeout for one reply.
    pub response_timeout: Duration,
    /// Middle part of the client name (`upshift-<role>-<pid>-<n>`).
    pub client_role: String,
    /// Read expiries with PTTL even on Redis >= 7.0 (exercises the Redis 6.x path in tests).
    pub force_pttl: bool,
    /// Find keys with one `SCAN … TYPE t` pass per type (the server filters; no TYPE command
    /// per key) instead of one untyped pass and a TYPE per key. Off by default: measured
    /// slower (six passes cost the server about twice the TYPE commands they save; see
    /// `scan`'s notes and `bench/verify`).
    pub scan_by_type: bool,
    /// Where values come from: decoded DUMP payloads (default) or type-specific commands.
    pub value_source: ValueSource,
    /// Batches (SCAN pages) whose reads are in flight at once per connection, or DUMP
    /// pipelines written ahead per connection of our own: the pipeline depth. Chosen by
    /// measurement (`bench/verify --tune`; see its README).
    pub batches_per_connection: usize,
}

/// Where the scan reads each key's value from. Both give the same canonical record; the
/// tests compare them key by key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValueSource {
    /// One DUMP per key, decoded on the client ([`dump`]): one server lookup instead of TYPE
    /// plus a read. Keys the decoder does not cover (module types, hashes with field
    /// expiries, newer RDB versions) are read with commands and counted as fallbacks.
    #[default]
    Dump,
    /// TYPE, then type-specific reads in windows (GETRANGE, LRANGE, SSCAN, HSCAN, ZRANGE,
    /// XRANGE): the reference reader, and the fallback of [`ValueSource::Dump`].
    Commands,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            max_connections: 4,
            tls_verify: false,
            memory_budget: 32 << 20,
            spill_dir: std::env::temp_dir(),
            window_elements: 10_000,
            window_bytes: 1 << 20,
            max_listed_differences: 10_000,
            connect_timeout: CONNECT_TIMEOUT,
            response_timeout: RESPONSE_TIMEOUT,
            client_role: "verify".to_owned(),
            force_pttl: false,
            scan_by_type: false,
            value_source: ValueSource::Dump,
            batches_per_connection: 2,
        }
    }
}

/// Receives progress as keys are read. Implementations must be cheap: called once per batch.
pub trait Progress: Send + Sync {
    /// The expected number of keys (DBSIZE at the start).
    fn total(&self, keys: u64);
    /// `keys` more keys and `bytes` more value bytes were read.
    fn advance(&self, keys: u64, bytes: u64);
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn total(&self, _keys: u64) {}
    fn advance(&self, _keys: u64, _bytes: u64) {}
}

/// The result of [`digest`].
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DigestReport {
    /// Distinct keys.
    pub keys: u64,
    /// Distinct keys per type.
    pub per_type: BTreeMap<KeyKind, u64>,
    /// Value bytes read.
    pub bytes: u64,
    /// Wall time of the scan.
    #[serde(rename = "elapsed_ms", serialize_with = "millis")]
    #[schemars(with = "u64")]
    pub elapsed: Duration,
    /// The database digest: 32 hex digits, equal exactly when the data is equal.
    pub digest: String,
    /// The server's version.
    pub redis_version: String,
    /// Sorted runs spilled to disk (0 when the records fit the memory budget).
    pub spilled_runs: usize,
    /// Keys whose DUMP payload was not decoded and were read with commands instead, by reason.
    pub fallbacks: Fallbacks,
}

impl DigestReport {
    /// Keys per second.
    pub fn keys_per_sec(&self) -> f64 {
        self.keys as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Whole milliseconds: every duration in upshift's JSON is `…_ms`.
fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The result of [`snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SnapshotSummary {
    /// The file written.
    pub path: PathBuf,
    /// Distinct keys captured.
    pub keys: u64,
    /// Entries written (SCAN repeats included).
    pub entries: u64,
    /// File size.
    pub file_bytes: u64,
    /// The digest of the captured data (same as [`digest`] would give).
    pub digest: String,
    /// Wall time.
    #[serde(rename = "elapsed_ms", serialize_with = "millis")]
    #[schemars(with = "u64")]
    pub elapsed: Duration,
    /// The server's version.
    pub redis_version: String,
    /// Keys whose DUMP payload was not decoded and were read with commands instead, by reason.
    pub fallbacks: Fallbacks,
}

/// Which keys [`restore`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreSelection {
    /// Every key of the snapshot (RESTORE … REPLACE). Keys absent from the snapshot stay.
    All,
    /// Only keys absent from the server; existing keys are left as they are.
    OnlyMissing,
    /// Exactly these keys, set back to their snapshot state: restored (REPLACE) when in the
    /// snapshot, deleted when not (an "extra" key of a diff).
    Keys(Vec<Vec<u8>>),
}

/// The result of [`restore`].
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct RestoreSummary {
    /// Keys written with RESTORE.
    pub restored: u64,
    /// Keys left alone because they existed (only-missing).
    pub skipped_existing: u64,
    /// Snapshot keys whose expiry had passed: not restored.
    pub expired: u64,
    /// Named keys deleted because the snapshot does not hold them.
    pub deleted: u64,
    /// The diff against the snapshot after restoring.
    pub remaining: DiffReport,
}

fn spill_err(dir: &Path) -> impl Fn(std::io::Error) -> VerifyError + '_ {
    move |source| VerifyError::Spill {
        dir: dir.to_path_buf(),
        source,
    }
}

/// The collector step of a digest or diff: each record into the record set.
fn record_pusher(
    dir: &Path,
) -> impl FnMut(&mut RecordSet, Scanned) -> Result<(), VerifyError> + Send + 'static {
    let dir = dir.to_path_buf();
    move |set, s| set.push(&s.record).map_err(spill_err(&dir))
}

/// Folds a sorted record stream into its digest and per-type counts.
/// Bytes of snapshot written between two flushes behind the writer ([`SyncBehind`]).
const SYNC_BEHIND_BYTES: u64 = 8 << 20;

fn fold_digest(
    mut records: store::SortedRecords,
    dir: &Path,
) -> Result<(DatabaseDigest, BTreeMap<KeyKind, u64>), VerifyError> {
    let mut digest = DatabaseDigest::new();
    // An array, not the map: a map lookup per key was most of the fold's time.
    let mut tally = [0_u64; KeyKind::ALL.len()];
    while let Some(r) = records.next_lent() {
        let r = r.map_err(spill_err(dir))?;
        tally[r.kind.index()] += 1;
        digest.add(r);
    }
    let per_type = KeyKind::ALL
        .into_iter()
        .zip(tally)
        .filter(|&(_, n)| n > 0)
        .collect();
    Ok((digest, per_type))
}

/// Digests a whole database.
///
/// # Errors
/// Connection or command failures, a key of an unsupported type, writers still active
/// (the key count moved during the scan), or the spill directory failing.
pub async fn digest(
    url: &RedisUrl,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<DigestReport, VerifyError> {
    let start = Instant::now();
    let session = Session::open(url, opts, opts.max_connections).await?;
    let (outcome, set) = scan_into(
        RecordSet::new(opts.memory_budget, &opts.spill_dir),
        record_pusher(&opts.spill_dir),
        |tx| scan(&session, opts, progress, false, tx),
    )
    .await?;
    let spilled_runs = set.spilled_runs();
    let (digest, per_type) = fold_digest(set.into_sorted(), &opts.spill_dir)?;
    outcome.check_complete(digest.keys())?;
    Ok(DigestReport {
        keys: digest.keys(),
        per_type,
        bytes: outcome.bytes,
        elapsed: start.elapsed(),
        digest: digest.hex(),
        redis_version: session.info.redis_version.clone(),
        spilled_runs,
        fallbacks: outcome.fallbacks,
    })
}

/// Free bytes for an unprivileged user in the directory holding `path`.
pub fn available_space(dir: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Streams every key (DUMP payload, expiry, record) to `out` and returns the data's digest.
///
/// The file is written under a temporary name beside `out` (mode 0600) and renamed into place
/// once complete, so `out` never holds a partial snapshot.
///
/// # Errors
/// As [`digest`], plus too little free disk (estimated from INFO `used_memory`) and file errors.
pub async fn snapshot(
    url: &RedisUrl,
    out: &Path,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<SnapshotSummary, VerifyError> {
    let start = Instant::now();
    let created_unix_ms = conn::local_ms();
    // Refused before anything is read; checked again right before the rename.
    crate::files::check_output(out).map_err(|e| VerifyError::File {
        action: "write",
        path: out.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    let session = Session::open(url, opts, opts.max_connections).await?;
    let dir = parent_dir(out);
    let available = available_space(&dir).map_err(|source| VerifyError::File {
        action: "check free space in",
        path: dir.clone(),
        source,
    })?;
    // DUMP payloads are compact RDB encodings: used_memory bounds them from above.
    let needed = session.info.used_memory;
    if available < needed {
        return Err(VerifyError::DiskSpace {
            dir,
            needed,
            available,
        });
    }
    let partial = dir.join(partial_name(
        out.file_name().unwrap_or(std::ffi::OsStr::new("snapshot")),
    ));
    let file_err = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| VerifyError::File {
            action,
            path: path.clone(),
            source,
        }
    };
    // A new file, never one already there: a link planted at the partial name is not followed.
    let _ = std::fs::remove_file(&partial);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(file_err("create", &partial))?;
    // Removes the partial file on every way out but success: an error, and a snapshot dropped
    // mid-stream (the run's second interrupt cancels the step where it stands).
    let mut cleanup = RemoveOnDrop(Some(partial.clone()));
    let header = SnapshotHeader {
        created_unix_ms,
        redis_version: session.info.redis_version.clone(),
        upshift_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let result = async {
        let file = SyncBehind::new(file, SYNC_BEHIND_BYTES).map_err(file_err("write", &partial))?;
        let writer = SnapshotWriter::new(BufWriter::with_capacity(1 << 20, file), &header)
            .map_err(file_err("write", &partial))?;
        let set = RecordSet::new(opts.memory_budget, &opts.spill_dir);
        let mut push = record_pusher(&opts.spill_dir);
        let write_err = file_err("write", &partial);
        let slow_disk = crate::verify::collect::slow_disk();
        // The same DUMP bytes feed both: the file gets them, the decoder gave the record.
        let (outcome, (writer, set)) = scan_into(
            (writer, set),
            move |(writer, set), s| {
                if let Some(pause) = slow_disk {
                    std::thread::sleep(pause);
                }
                let payload = s.payload.as_deref().unwrap_or_default();
                writer.entry(&s.record, payload).map_err(&write_err)?;
                push(set, s)
            },
            |tx| scan(&session, opts, progress, true, tx),
        )
        .await?;
        let mut writer = writer;
        // Every entry is written: their flush overlaps the sort and fold below.
        let buffered = writer.stream_mut();
        buffered.flush().map_err(file_err("write", &partial))?;
        buffered.get_mut().kick();
        let entries = writer.entries();
        let (digest, _) = fold_digest(set.into_sorted(), &opts.spill_dir)?;
        outcome.check_complete(digest.keys())?;
        let hex = digest.hex();
        let (buf, file_bytes) = writer
            .finish(digest.keys(), &hex)
            .map_err(file_err("write", &partial))?;
        let file = buf
            .into_inner()
            .map_err(|e| file_err("write", &partial)(e.into_error()))?;
        file.sync_all().map_err(file_err("write", &partial))?;
        crate::files::replace(&partial, out).map_err(file_err("write", out))?;
        Ok(SnapshotSummary {
            path: out.to_path_buf(),
            keys: digest.keys(),
            entries,
            file_bytes,
            digest: hex,
            elapsed: start.elapsed(),
            redis_version: header.redis_version.clone(),
            fallbacks: outcome.fallbacks,
        })
    }
    .await;
    if result.is_ok() {
        cleanup.0 = None;
    }
    result
}

/// The temporary name a snapshot is written under, beside its file: short and fixed in
/// length, because `.NAME.partial` of a valid 250-byte NAME is longer than a file name may be
/// (`NAME_MAX`, 255 bytes). Derived from NAME (the first 8 bytes of its SHA-256), so a snapshot
/// taken again to the same file replaces what an earlier one killed mid-stream (`kill -9`, a
/// power cut) left under it, as `.NAME.partial` did. Pure.
fn partial_name(name: &std::ffi::OsStr) -> String {
    use std::fmt::Write as _;
    let hash = ring::digest::digest(&ring::digest::SHA256, name.as_encoded_bytes());
    let mut hex = String::with_capacity(16);
    for b in &hash.as_ref()[..8] {
        let _ = write!(hex, "{b:02x}");
    }
    format!(".upshift-{hex}.partial")
}

/// A file removed when this is dropped, unless its path was taken out first.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn open_snapshot(path: &Path) -> Result<BufReader<File>, VerifyError> {
    File::open(path)
        .map(|f| BufReader::with_capacity(1 << 20, f))
        .map_err(|source| VerifyError::SnapshotOpen {
            path: path.to_path_buf(),
            source,
        })
}

fn snapshot_err(path: &Path) -> impl Fn(FormatError) -> VerifyError + '_ {
    move |source| VerifyError::Snapshot {
        path: path.to_path_buf(),
        source,
    }
}

/// Compares the live database with a snapshot and names every key that differs.
///
/// # Errors
/// As [`digest`], plus an unreadable, damaged or truncated snapshot.
pub async fn diff(
    url: &RedisUrl,
    against: &Path,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<DiffReport, VerifyError> {
    // Half the budget each side: both sets are alive during the merge.
    let half = opts.memory_budget / 2;
    let mut before = RecordSet::new(half, &opts.spill_dir);
    let mut reader = SnapshotReader::new(open_snapshot(against)?).map_err(snapshot_err(against))?;
    while let Some(entry) = reader.next_entry().map_err(snapshot_err(against))? {
        before
            .push(&entry.record)
            .map_err(spill_err(&opts.spill_dir))?;
    }
    let session = Session::open(url, opts, opts.max_connections).await?;
    let (outcome, after) = scan_into(
        RecordSet::new(half, &opts.spill_dir),
        record_pusher(&opts.spill_dir),
        |tx| scan(&session, opts, progress, false, tx),
    )
    .await?;
    let report = merge_join(
        before.into_sorted(),
        after.into_sorted(),
        outcome.end_server_ms,
        opts.max_listed_differences,
    )
    .map_err(spill_err(&opts.spill_dir))?;
    outcome.check_complete(report.after_keys)?;
    Ok(report)
}

/// Restores keys from a snapshot (RESTORE … ABSTTL, REPLACE unless only-missing), then diffs
/// the server against the snapshot again and returns that diff in the summary.
///
/// The whole file is checked (structure and checksum) before anything is written. A target
/// that refuses a payload (an RDB version newer than it knows) stops the restore with
/// [`VerifyError::PayloadRejected`]: restore into a server at least as new as the source.
///
/// # Errors
/// As [`diff`], plus a refused payload.
pub async fn restore(
    url: &RedisUrl,
    from: &Path,
    selection: RestoreSelection,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<RestoreSummary, VerifyError> {
    let (header, trailer) = verify_stream(open_snapshot(from)?).map_err(snapshot_err(from))?;
    progress.total(trailer.entries);
    let session = Session::open(url, opts, opts.max_connections).await?;
    let now = session.server_time_ms().await?;
    let (replace, mut wanted): (bool, Option<HashSet<Vec<u8>>>) = match selection {
        RestoreSelection::All => (true, None),
        RestoreSelection::OnlyMissing => (false, None),
        RestoreSelection::Keys(keys) => (true, Some(keys.into_iter().collect())),
    };
    let mut found: HashSet<Vec<u8>> = HashSet::new();
    let mut summary = RestoreSummary {
        restored: 0,
        skipped_existing: 0,
        expired: 0,
        deleted: 0,
        remaining: DiffReport {
            before_keys: 0,
            after_keys: 0,
            counts: DiffCounts::default(),
            differences: Vec::new(),
            truncated: false,
        },
    };
    let mut reader = SnapshotReader::new(open_snapshot(from)?).map_err(snapshot_err(from))?;
    let mut batch: Vec<snapshot::SnapshotEntry> = Vec::new();
    let mut batch_bytes = 0_usize;
    loop {
        let entry = reader.next_entry().map_err(snapshot_err(from))?;
        let done = entry.is_none();
        if let Some(entry) = entry {
            if let Some(wanted) = &wanted {
                if !wanted.contains(&entry.record.key) {
                    continue;
                }
                found.insert(entry.record.key.clone());
            }
            if entry.record.expiry.at_ms().is_some_and(|at| at <= now) {
                summary.expired += 1;
                continue;
            }
            batch_bytes += entry.payload.len() + entry.record.key.len();
            batch.push(entry);
        }
        if !batch.is_empty() && (done || batch.len() >= 256 || batch_bytes >= 4 << 20) {
            restore_batch(&session, &header, &batch, replace, &mut summary).await?;
            progress.advance(batch.len() as u64, batch_bytes as u64);
            batch.clear();
            batch_bytes = 0;
        }
        if done {
            break;
        }
    }
    if let Some(wanted) = wanted.take() {
        let extra: Vec<Vec<u8>> = wanted.into_iter().filter(|k| !found.contains(k)).collect();
        for chunk in extra.chunks(256) {
            let mut pipe = redis::pipe();
            for k in chunk {
                pipe.cmd("DEL").arg(k);
            }
            let deleted: Vec<u64> = pipe
                .query_async(&mut session.conn(0))
                .await
                .map_err(session.command_err("DEL"))?;
            summary.deleted += deleted.iter().sum::<u64>();
        }
    }
    summary.remaining = diff(url, from, opts, &NoProgress).await?;
    Ok(summary)
}

async fn restore_batch(
    session: &Session,
    header: &SnapshotHeader,
    batch: &[snapshot::SnapshotEntry],
    replace: bool,
    summary: &mut RestoreSummary,
) -> Result<(), VerifyError> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for e in batch {
        let ttl = e.record.expiry.at_ms().unwrap_or(0);
        let cmd = pipe
            .cmd("RESTORE")
            .arg(&e.record.key)
            .arg(ttl)
            .arg(&e.payload);
        if replace {
            cmd.arg("REPLACE");
        }
        cmd.arg("ABSTTL");
    }
    let results: Vec<redis::RedisResult<redis::Value>> = pipe
        .query_async(&mut session.conn(0))
        .await
        .map_err(session.command_err("RESTORE"))?;
    for (e, r) in batch.iter().zip(results) {
        match r {
            Ok(_) => summary.restored += 1,
            Err(err) if err.code() == Some("BUSYKEY") => summary.skipped_existing += 1,
            Err(err) if err.to_string().contains("payload version") => {
                return Err(VerifyError::PayloadRejected {
                    endpoint: session.endpoint.clone(),
                    key: crate::printable::key(&e.record.key),
                    source_version: header.redis_version.clone(),
                    target_version: session.info.redis_version.clone(),
                    source: Box::new(err),
                });
            }
            Err(err) => return Err(session.command_err("RESTORE")(err)),
        }
    }
    Ok(())
}

/// INFO of a server: memory, clients, version, role, keyspace.
///
/// # Errors
/// Connection or command failures.
pub async fn server_info(url: &RedisUrl, opts: &VerifyOptions) -> Result<ServerInfo, VerifyError> {
    Ok(Session::open(url, opts, 1).await?.info)
}

/// The server's clients (CLIENT LIST), ours included: [`ClientInfo::is_upshift`] tells them
/// apart (this call's own connection is one of them).
///
/// # Errors
/// Connection or command failures.
pub async fn client_list(
    url: &RedisUrl,
    opts: &VerifyOptions,
) -> Result<Vec<ClientInfo>, VerifyError> {
    Session::open(url, opts, 1).await?.client_list().await
}
