//! The DUMP value source: one DUMP (and the expiry) per key, each payload decoded into its
//! canonical record on the client.

use redis::Value;
use redis::aio::MultiplexedConnection;

use super::{How, Scanned, TtlMode, expiry_command, to_expiry};
use crate::verify::conn::{Session, local_ms};
use crate::verify::dump::{self, DumpError};
use crate::verify::error::VerifyError;
use crate::verify::record::{KeyKind, Record};

/// DUMP and the expiry of every key in one pipeline, each payload decoded into its canonical
/// record. Returns the records and the keys to read with commands instead, with their type
/// when the payload named it (a stream, say). Keys gone since SCAN are dropped.
///
/// The whole payload is held: a big key costs its DUMP size here (the command path reads
/// big keys in windows).
pub(super) async fn read_dumped(
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
