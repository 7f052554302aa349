//! DUMP payload decoder: the RDB value serialisation a `DUMP` reply holds, turned into the same
//! canonical value digest the command-by-command reader computes. Pure: bytes in, value out.
//!
//! Why: reading a key with TYPE, a type-specific read and PEXPIRETIME costs the server three
//! lookups where DUMP costs one. Decoding the payload on the client gives the canonical form at
//! DUMP's price, and a snapshot (which stores the payload anyway) gets its digest from the same
//! bytes.
//!
//! # Layout
//! `[RDB type byte][object][RDB version: u16 LE][CRC64 (Jones, as Redis' crc64): u64 LE]`; the
//! CRC covers everything before it. Encodings covered (Redis 6.2 to 7.2, Valkey 7.2 to 8):
//! strings (raw, int-encoded, LZF), lists (quicklist of listpacks with plain nodes, quicklist
//! of ziplists, linked list, ziplist), sets (hashtable, intset, listpack), sorted sets
//! (skiplist with binary or text scores, ziplist, listpack) and hashes (hashtable, ziplist,
//! listpack) and streams (listpack nodes and consumer groups, encodings 1 to 3).
//!
//! # What it refuses
//! Module types, zipmaps and hashes with field expiries (Redis 7.4: their exact layout is not
//! decoded here, and the servers this was tested on do not write them) answer
//! [`DumpError::Unsupported`], an RDB version outside [`MIN_RDB_VERSION`]..=[`MAX_RDB_VERSION`]
//! answers [`DumpError::Version`]: the caller reads those keys with type-specific commands, as
//! before, and counts the fallback. Malformed input (wrong checksum, truncation, impossible
//! lengths) is an error, never a panic: every read is bounds-checked.

use std::cmp::Ordering;

use crate::verify::record::{KeyKind, ValueDigest, parse_score};

mod crc;
mod packed;
mod reader;
mod stream;
#[cfg(test)]
mod tests;

pub use crc::crc64;
use packed::{Entry, IntText, each_intset, each_listpack, each_pair, each_ziplist};
use reader::{Reader, array};

/// The oldest RDB version decoded (Redis 5.0 wrote 9; so do 6.0 and 6.2).
pub const MIN_RDB_VERSION: u16 = 9;
/// The newest RDB version decoded (Redis 7.4 writes 12; 7.0 wrote 10, 7.2 and Valkey 8 write 11).
pub const MAX_RDB_VERSION: u16 = 12;

/// Why a payload was not decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DumpError {
    /// Shorter than the type byte plus the 10-byte footer.
    #[error(
        "dump payload of {len} bytes is too short to hold a value: read the key with type-specific commands"
    )]
    TooShort {
        /// The payload's length.
        len: usize,
    },
    /// The CRC64 trailer does not match the bytes.
    #[error(
        "dump payload checksum is {found:#018x}, the bytes give {computed:#018x}: the payload was damaged in transit; read the key again"
    )]
    Checksum {
        /// The trailer's value.
        found: u64,
        /// The CRC64 of the bytes.
        computed: u64,
    },
    /// An RDB version this decoder does not know.
    #[error(
        "dump payload has rdb version {version}, upshift decodes {MIN_RDB_VERSION} to {MAX_RDB_VERSION}: the key is read with type-specific commands instead"
    )]
    Version {
        /// The payload's RDB version.
        version: u16,
    },
    /// A type or encoding this decoder does not cover.
    #[error(
        "dump payload of rdb type {rdb_type} ({what}) is not decoded: the key is read with type-specific commands instead"
    )]
    Unsupported {
        /// The RDB type byte.
        rdb_type: u8,
        /// The Redis type when the byte names one (a hash with field expiries, say), so the fallback needs no TYPE.
        kind: Option<KeyKind>,
        /// What the type byte stands for.
        what: &'static str,
    },
    /// The bytes do not follow the encoding they announce.
    #[error(
        "dump payload is malformed at byte {at}: {what}; read the key with type-specific commands"
    )]
    Malformed {
        /// Offset in the payload (or in the compressed/nested blob being read).
        at: usize,
        /// What was wrong.
        what: &'static str,
    },
}

/// One decoded value's canonical digest, the same as [`ValueDigest`] gives when fed by commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// The Redis type.
    pub kind: KeyKind,
    /// The canonical value digest ([`ValueDigest::finish`]).
    pub value: u128,
    /// Value bytes, counted as the command reader counts them (throughput figures only).
    pub bytes: u64,
}

/// Receives a decoded value piece by piece, in the order the canonical form needs: list
/// elements in list order, zset members in `ZRANGE` order; sets and hashes in any order.
pub trait Visitor {
    /// A string's bytes (called once).
    fn string(&mut self, bytes: &[u8]);
    /// The next list element.
    fn element(&mut self, element: &[u8]);
    /// One set member.
    fn member(&mut self, member: &[u8]);
    /// One hash field with its value.
    fn pair(&mut self, field: &[u8], value: &[u8]);
    /// The next zset member with its score.
    fn scored(&mut self, member: &[u8], score: f64);
    /// Stream metadata (the last id, then each consumer group), before the entries.
    fn stream_meta(&mut self, _tag: &str, _parts: &[&[u8]]) {}
    /// The next stream entry: its id (`ms-seq`) and its fields and values, interleaved.
    fn stream_entry(&mut self, _id: &[u8], _fields: &[&[u8]]) {}
}

/// Feeds a [`ValueDigest`] and counts bytes as `scan`'s reader does.
#[derive(Debug)]
struct DigestVisitor {
    digest: ValueDigest,
    bytes: u64,
}

impl Visitor for DigestVisitor {
    fn string(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len() as u64;
        self.digest.bytes(bytes);
    }
    fn element(&mut self, element: &[u8]) {
        self.bytes += element.len() as u64;
        self.digest.element(element);
    }
    fn member(&mut self, member: &[u8]) {
        self.bytes += member.len() as u64;
        self.digest.member(member);
    }
    fn pair(&mut self, field: &[u8], value: &[u8]) {
        self.bytes += (field.len() + value.len()) as u64;
        self.digest.pair(field, value);
    }
    fn scored(&mut self, member: &[u8], score: f64) {
        self.bytes += member.len() as u64 + 8;
        self.digest.scored(member, score);
    }
    fn stream_meta(&mut self, tag: &str, parts: &[&[u8]]) {
        self.digest.stream_meta(tag, parts);
    }
    fn stream_entry(&mut self, id: &[u8], fields: &[&[u8]]) {
        self.bytes += (id.len() + fields.iter().map(|f| f.len()).sum::<usize>()) as u64;
        self.digest.stream_entry(id, fields);
    }
}

/// Decodes a DUMP payload into its canonical digest.
///
/// # Errors
/// [`DumpError::Unsupported`] and [`DumpError::Version`] for payloads this decoder does not
/// cover (read the key with commands instead); the other variants for damaged payloads.
pub fn decode(payload: &[u8]) -> Result<Decoded, DumpError> {
    let (kind, v) = visit(payload, |kind| DigestVisitor {
        digest: ValueDigest::new(kind),
        bytes: 0,
    })?;
    Ok(Decoded {
        kind,
        value: v.digest.finish(),
        bytes: v.bytes,
    })
}

/// Checks that a payload is long enough for its type byte and footer and that its CRC64
/// matches; returns the type byte. The snapshot stores only payloads that pass, since RESTORE
/// refuses the others.
///
/// # Errors
/// [`DumpError::TooShort`] or [`DumpError::Checksum`].
pub fn check_footer(payload: &[u8]) -> Result<u8, DumpError> {
    let (&rdb_type, body) = payload
        .split_first()
        .ok_or(DumpError::TooShort { len: 0 })?;
    if body.len() < 10 {
        return Err(DumpError::TooShort { len: payload.len() });
    }
    let (checked, crc) = payload.split_at(payload.len() - 8);
    let found = u64::from_le_bytes(array(crc));
    let computed = crc64(0, checked);
    if found != computed {
        return Err(DumpError::Checksum { found, computed });
    }
    Ok(rdb_type)
}

/// Checks a payload's footer and type, builds a visitor for its kind with `make` and feeds it.
///
/// # Errors
/// As [`decode`].
pub fn visit<V: Visitor>(
    payload: &[u8],
    make: impl FnOnce(KeyKind) -> V,
) -> Result<(KeyKind, V), DumpError> {
    let rdb_type = check_footer(payload)?;
    let checked = &payload[..payload.len() - 8];
    let version = u16::from_le_bytes(array(&checked[checked.len() - 2..]));
    if !(MIN_RDB_VERSION..=MAX_RDB_VERSION).contains(&version) {
        return Err(DumpError::Version { version });
    }
    let object = &checked[1..checked.len() - 2];
    let encoding = RdbType::from_byte(rdb_type)?;
    let kind = encoding.kind();
    let mut visitor = make(kind);
    let mut cur = Reader::new(object, 1);
    read_object(&mut cur, encoding, &mut visitor)?;
    if !cur.is_empty() {
        return Err(cur.malformed("bytes left after the value"));
    }
    Ok((kind, visitor))
}

/// The RDB object types a DUMP can hold (`RDB_TYPE_*` in Redis' `rdb.h`) that are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RdbType {
    String,
    ListLinked,
    Set,
    ZSetText,
    Hash,
    ZSetBinary,
    ListZiplist,
    SetIntset,
    ZSetZiplist,
    HashZiplist,
    ListQuicklist,
    HashListpack,
    ZSetListpack,
    ListQuicklist2,
    SetListpack,
    /// Streams, by encoding version: 1 (`STREAM_LISTPACKS`), 2 (7.0), 3 (7.2).
    Stream(u8),
}

impl RdbType {
    fn from_byte(b: u8) -> Result<Self, DumpError> {
        let unsupported = |kind, what| DumpError::Unsupported {
            rdb_type: b,
            kind,
            what,
        };
        Ok(match b {
            0 => Self::String,
            1 => Self::ListLinked,
            2 => Self::Set,
            3 => Self::ZSetText,
            4 => Self::Hash,
            5 => Self::ZSetBinary,
            10 => Self::ListZiplist,
            11 => Self::SetIntset,
            12 => Self::ZSetZiplist,
            13 => Self::HashZiplist,
            14 => Self::ListQuicklist,
            16 => Self::HashListpack,
            17 => Self::ZSetListpack,
            18 => Self::ListQuicklist2,
            20 => Self::SetListpack,
            6 | 7 => return Err(unsupported(None, "module type")),
            9 => return Err(unsupported(Some(KeyKind::Hash), "zipmap hash")),
            15 => Self::Stream(1),
            19 => Self::Stream(2),
            21 => Self::Stream(3),
            22..=25 => {
                return Err(unsupported(Some(KeyKind::Hash), "hash with field expiries"));
            }
            _ => return Err(unsupported(None, "unknown type")),
        })
    }

    const fn kind(self) -> KeyKind {
        match self {
            Self::String => KeyKind::String,
            Self::ListLinked | Self::ListZiplist | Self::ListQuicklist | Self::ListQuicklist2 => {
                KeyKind::List
            }
            Self::Set | Self::SetIntset | Self::SetListpack => KeyKind::Set,
            Self::ZSetText | Self::ZSetBinary | Self::ZSetZiplist | Self::ZSetListpack => {
                KeyKind::ZSet
            }
            Self::Hash | Self::HashZiplist | Self::HashListpack => KeyKind::Hash,
            Self::Stream(_) => KeyKind::Stream,
        }
    }
}

/// Quicklist 2 node containers (`QUICKLIST_NODE_CONTAINER_*`).
const NODE_PLAIN: u64 = 1;
const NODE_PACKED: u64 = 2;

fn read_object(
    cur: &mut Reader<'_>,
    rdb_type: RdbType,
    visitor: &mut impl Visitor,
) -> Result<(), DumpError> {
    match rdb_type {
        RdbType::String => {
            let s = cur.string()?;
            visitor.string(&s);
        }
        RdbType::Stream(version) => stream::read_stream(cur, version, visitor)?,
        RdbType::ListLinked => {
            for _ in 0..cur.length()? {
                visitor.element(&cur.string()?);
            }
        }
        RdbType::Set => {
            for _ in 0..cur.length()? {
                visitor.member(&cur.string()?);
            }
        }
        RdbType::Hash => {
            for _ in 0..cur.length()? {
                let field = cur.string()?;
                let value = cur.string()?;
                visitor.pair(&field, &value);
            }
        }
        RdbType::ZSetText | RdbType::ZSetBinary => {
            // Saved from the skiplist's tail to its head (or, for old files, in dict order):
            // sort into ZRANGE order, score then member bytes, as the skiplist orders them.
            let mut members = Vec::new();
            for _ in 0..cur.length()? {
                let member = cur.string()?;
                let score = if rdb_type == RdbType::ZSetBinary {
                    cur.binary_double()?
                } else {
                    cur.text_double()?
                };
                if score.is_nan() {
                    return Err(cur.malformed("a zset score is NaN"));
                }
                members.push((member, score));
            }
            members.sort_by(|a, b| {
                a.1.partial_cmp(&b.1)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| a.0.cmp(&b.0))
            });
            for (m, s) in &members {
                visitor.scored(m, *s);
            }
        }
        RdbType::ListZiplist => {
            let blob = cur.string()?;
            each_ziplist(&blob, |e| {
                visitor.element(e.bytes(&mut IntText::default()));
                Ok(())
            })?;
        }
        RdbType::ListQuicklist => {
            for _ in 0..cur.length()? {
                let blob = cur.string()?;
                each_ziplist(&blob, |e| {
                    visitor.element(e.bytes(&mut IntText::default()));
                    Ok(())
                })?;
            }
        }
        RdbType::ListQuicklist2 => {
            for _ in 0..cur.length()? {
                let container = cur.length()?;
                let blob = cur.string()?;
                match container {
                    NODE_PLAIN => visitor.element(&blob),
                    NODE_PACKED => each_listpack(&blob, |e| {
                        visitor.element(e.bytes(&mut IntText::default()));
                        Ok(())
                    })?,
                    _ => return Err(cur.malformed("unknown quicklist node container")),
                }
            }
        }
        RdbType::SetIntset => {
            let blob = cur.string()?;
            each_intset(&blob, |i| {
                visitor.member(Entry::Int(i).bytes(&mut IntText::default()));
            })?;
        }
        RdbType::SetListpack => {
            let blob = cur.string()?;
            each_listpack(&blob, |e| {
                visitor.member(e.bytes(&mut IntText::default()));
                Ok(())
            })?;
        }
        RdbType::HashZiplist | RdbType::HashListpack => {
            let blob = cur.string()?;
            let ziplist = rdb_type == RdbType::HashZiplist;
            each_pair(&blob, ziplist, |field, value| {
                let (mut a, mut b) = (IntText::default(), IntText::default());
                visitor.pair(field.bytes(&mut a), value.bytes(&mut b));
                Ok(())
            })?;
        }
        RdbType::ZSetZiplist | RdbType::ZSetListpack => {
            // Stored in ZRANGE order already: ZRANGE walks the same list.
            let blob = cur.string()?;
            let ziplist = rdb_type == RdbType::ZSetZiplist;
            each_pair(&blob, ziplist, |member, score| {
                let score = match score {
                    // As Redis: `(double)` of the integer.
                    Entry::Int(i) => i as f64,
                    Entry::Bytes(s) => parse_score(s).ok_or(DumpError::Malformed {
                        at: 0,
                        what: "a zset score is not a number",
                    })?,
                };
                if score.is_nan() {
                    return Err(DumpError::Malformed {
                        at: 0,
                        what: "a zset score is NaN",
                    });
                }
                visitor.scored(member.bytes(&mut IntText::default()), score);
                Ok(())
            })?;
        }
    }
    Ok(())
}
