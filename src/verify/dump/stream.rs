//! Streams (`RDB_TYPE_STREAM_LISTPACKS`, `_2` from Redis 7.0, `_3` from 7.2): the rax of
//! listpack nodes, then the stream's metadata and its consumer groups.
//!
//! The canonical form (what `XINFO STREAM`, `XINFO GROUPS` and `XRANGE` give, and what
//! replication and RESTORE preserve) takes the last id first, then each group's name, consumer
//! count, pending count and last delivered id in name order, then the entries in id order. The
//! payload holds the entries first, so the nodes are walked twice: once to find the metadata
//! (the node blobs are length-prefixed, so skipping them is cheap), once to read the entries.
//! Consumer names, delivery times and counts, `entries_read` and the 7.0 id bookkeeping are not
//! part of the canonical form: they are read past, bounds-checked.

use super::packed::{Entry, IntText, each_listpack};
use super::reader::{Reader, array};
use super::{DumpError, Visitor};

/// `STREAM_ITEM_FLAG_DELETED` and `STREAM_ITEM_FLAG_SAMEFIELDS` (`t_stream.c`).
const FLAG_DELETED: i64 = 1;
const FLAG_SAMEFIELDS: i64 = 2;

/// Reads a stream object of encoding `version` (1, 2 or 3) into `visitor`.
pub(super) fn read_stream(
    cur: &mut Reader<'_>,
    version: u8,
    visitor: &mut impl Visitor,
) -> Result<(), DumpError> {
    let mut nodes = Vec::new();
    for _ in 0..cur.length()? {
        let master = cur.string()?;
        if master.len() != 16 {
            return Err(cur.malformed("a stream node key is not a 16-byte id"));
        }
        let ms = u64::from_be_bytes(array(&master[..8]));
        let seq = u64::from_be_bytes(array(&master[8..]));
        let blob = cur.string()?;
        nodes.push(((ms, seq), blob));
    }
    let _entries = cur.length()?;
    let last_id = (cur.length()?, cur.length()?);
    if version >= 2 {
        // First id, max deleted entry id, entries added.
        for _ in 0..5 {
            cur.length()?;
        }
    }
    let mut groups = Vec::new();
    for _ in 0..cur.length()? {
        let name = cur.string()?.into_owned();
        let delivered = (cur.length()?, cur.length()?);
        if version >= 2 {
            cur.length()?; // entries_read
        }
        let pending = cur.length()?;
        for _ in 0..pending {
            cur.take(16)?; // the entry id
            cur.take(8)?; // delivery time
            cur.length()?; // delivery count
        }
        let consumers = cur.length()?;
        for _ in 0..consumers {
            cur.string()?; // name
            cur.take(8)?; // seen time
            if version >= 3 {
                cur.take(8)?; // active time
            }
            for _ in 0..cur.length()? {
                cur.take(16)?; // the pending ids this consumer holds
            }
        }
        groups.push([
            name,
            consumers.to_string().into_bytes(),
            pending.to_string().into_bytes(),
            id_text(delivered),
        ]);
    }
    groups.sort();
    visitor.stream_meta("last-id", &[&id_text(last_id)]);
    for g in &groups {
        let parts: Vec<&[u8]> = g.iter().map(Vec::as_slice).collect();
        visitor.stream_meta("group", &parts);
    }
    for (master, blob) in &nodes {
        read_node(*master, blob, visitor)?;
    }
    Ok(())
}

/// `ms-seq`, as XRANGE and XINFO print ids.
fn id_text((ms, seq): (u64, u64)) -> Vec<u8> {
    format!("{ms}-{seq}").into_bytes()
}

/// One listpack node: the master entry (its fields shared by `SAMEFIELDS` entries), then the
/// entries, each with its flags, id deltas from the node's master id, fields and values, and
/// its own entry count.
fn read_node(master: (u64, u64), blob: &[u8], visitor: &mut impl Visitor) -> Result<(), DumpError> {
    let mut entries = Vec::new();
    each_listpack(blob, |e| {
        entries.push(e);
        Ok(())
    })?;
    let bad = |what| DumpError::Malformed { at: 0, what };
    let mut it = entries.into_iter();
    let int = |it: &mut std::vec::IntoIter<Entry<'_>>| -> Result<i64, DumpError> {
        match it.next() {
            Some(Entry::Int(i)) => Ok(i),
            Some(Entry::Bytes(b)) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(bad("a stream count is not an integer")),
            None => Err(bad("a stream node ends early")),
        }
    };
    let _count = int(&mut it)?;
    let _deleted = int(&mut it)?;
    let master_fields =
        usize::try_from(int(&mut it)?).map_err(|_| bad("a negative stream field count"))?;
    let mut fields = Vec::new();
    for _ in 0..master_fields {
        fields.push(it.next().ok_or(bad("a stream node ends early"))?);
    }
    if int(&mut it)? != 0 {
        return Err(bad("the stream master entry is not terminated"));
    }
    while it.len() > 0 {
        let flags = int(&mut it)?;
        let ms = master.0.wrapping_add_signed(int(&mut it)?);
        let seq = master.1.wrapping_add_signed(int(&mut it)?);
        let mut pairs: Vec<Vec<u8>> = Vec::new();
        let text = |e: Entry<'_>| e.bytes(&mut IntText::default()).to_vec();
        if flags & FLAG_SAMEFIELDS == 0 {
            let n =
                usize::try_from(int(&mut it)?).map_err(|_| bad("a negative stream field count"))?;
            for _ in 0..n {
                let f = it.next().ok_or(bad("a stream entry ends early"))?;
                let v = it.next().ok_or(bad("a stream entry ends early"))?;
                pairs.push(text(f));
                pairs.push(text(v));
            }
        } else {
            for f in &fields {
                let v = it.next().ok_or(bad("a stream entry ends early"))?;
                pairs.push(text(*f));
                pairs.push(text(v));
            }
        }
        let _lp_count = int(&mut it)?;
        if flags & FLAG_DELETED == 0 {
            let refs: Vec<&[u8]> = pairs.iter().map(Vec::as_slice).collect();
            visitor.stream_entry(&id_text((ms, seq)), &refs);
        }
    }
    Ok(())
}
