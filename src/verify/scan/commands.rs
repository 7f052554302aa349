//! The command value source: type-specific reads in windows (GETRANGE, LRANGE, SSCAN, HSCAN,
//! ZRANGE, XRANGE), the reference reader and the fallback for what the DUMP decoder refuses.
//! Big keys are read window by window, so no reply holds more than one window.

use std::collections::HashSet;

use redis::Value;
use redis::aio::MultiplexedConnection;

use super::{How, Plan, Scanned, TtlMode, Windows, expiry_command, to_expiry};
use crate::verify::conn::{Session, local_ms};
use crate::verify::error::VerifyError;
use crate::verify::record::{KeyKind, Record, ValueDigest, element_hash, parse_score};

/// The first window of each key (plus DUMP and expiry), in one pipeline; returns the records
/// and the keys whose type was not the one planned (WRONGTYPE).
// One function on purpose: the pipeline it builds and the order it consumes replies in must
// stay side by side.
#[allow(clippy::too_many_lines)]
pub(super) async fn read_keys(
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
        // Only bytes RESTORE accepts go into a snapshot. This read is already the second for a
        // payload the decoder found damaged: damaged twice is a connection or a server that
        // corrupts data, and the snapshot stops rather than keep a key it cannot restore.
        if let Some(Err(_)) = payload.as_deref().map(crate::verify::dump::check_footer) {
            return Err(session.protocol_err(
                "DUMP",
                format!(
                    "the payload of key \"{}\" fails its CRC64 on a second read: no server would \
                     restore it; check the network path to this Redis and run again",
                    crate::printable::key(&plan.key)
                ),
            ));
        }
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
                crate::printable::key(self.key)
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
pub(super) fn next_stream_id(id: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(id).ok()?;
    let (ms, seq) = s.split_once('-')?;
    let (ms, seq): (u64, u64) = (ms.parse().ok()?, seq.parse().ok()?);
    Some(match seq.checked_add(1) {
        Some(seq) => format!("{ms}-{seq}"),
        None => format!("{}-0", ms.checked_add(1)?),
    })
}

pub(super) fn int(v: &Value) -> Option<i64> {
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
