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
//! listpack).
//!
//! # What it refuses
//! Streams, module types, zipmaps and hashes with field expiries (Redis 7.4) answer
//! [`DumpError::Unsupported`], an RDB version outside [`MIN_RDB_VERSION`]..=[`MAX_RDB_VERSION`]
//! answers [`DumpError::Version`]: the caller reads those keys with type-specific commands, as
//! before, and counts the fallback. Malformed input (wrong checksum, truncation, impossible
//! lengths) is an error, never a panic: every read is bounds-checked.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::verify::record::{KeyKind, ValueDigest, parse_score};

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
        /// The Redis type when the byte names one (a stream, say), so the fallback needs no TYPE.
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

/// Checks a payload's footer and type, builds a visitor for its kind with `make` and feeds it.
///
/// # Errors
/// As [`decode`].
pub fn visit<V: Visitor>(
    payload: &[u8],
    make: impl FnOnce(KeyKind) -> V,
) -> Result<(KeyKind, V), DumpError> {
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
            15 | 19 | 21 => return Err(unsupported(Some(KeyKind::Stream), "stream")),
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

/// A bounds-checked cursor over RDB bytes. `base` is the offset of `buf` in the payload, for
/// error positions.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

/// `RDB_ENC_*`: the special string encodings behind a length byte `11xxxxxx`.
const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// A length as `rdbLoadLen` reads it, or a special string encoding.
enum Length {
    Plain(u64),
    Encoded(u8),
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn malformed(&self, what: &'static str) -> DumpError {
        DumpError::Malformed {
            at: self.base + self.pos,
            what,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DumpError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| self.malformed("truncated"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, DumpError> {
        Ok(self.take(1)?[0])
    }

    fn raw_length(&mut self) -> Result<Length, DumpError> {
        let first = self.byte()?;
        Ok(match first >> 6 {
            0 => Length::Plain(u64::from(first & 0x3f)),
            1 => Length::Plain(u64::from(first & 0x3f) << 8 | u64::from(self.byte()?)),
            2 => match first {
                0x80 => Length::Plain(u64::from(u32::from_be_bytes(array(self.take(4)?)))),
                0x81 => Length::Plain(u64::from_be_bytes(array(self.take(8)?))),
                _ => return Err(self.malformed("unknown length encoding")),
            },
            _ => Length::Encoded(first & 0x3f),
        })
    }

    /// A length (element counts, node containers).
    fn length(&mut self) -> Result<u64, DumpError> {
        match self.raw_length()? {
            Length::Plain(n) => Ok(n),
            Length::Encoded(_) => Err(self.malformed("a string encoding where a length belongs")),
        }
    }

    fn usize_length(&mut self) -> Result<usize, DumpError> {
        let n = self.length()?;
        usize::try_from(n).map_err(|_| self.malformed("length too large"))
    }

    /// A string as `rdbGenericLoadStringObject` reads it: raw, an integer, or LZF.
    fn string(&mut self) -> Result<Cow<'a, [u8]>, DumpError> {
        match self.raw_length()? {
            Length::Plain(n) => {
                let n = usize::try_from(n).map_err(|_| self.malformed("length too large"))?;
                Ok(Cow::Borrowed(self.take(n)?))
            }
            Length::Encoded(ENC_INT8) => {
                let i = i8::from_le_bytes(array(self.take(1)?));
                Ok(Cow::Owned(i.to_string().into_bytes()))
            }
            Length::Encoded(ENC_INT16) => {
                let i = i16::from_le_bytes(array(self.take(2)?));
                Ok(Cow::Owned(i.to_string().into_bytes()))
            }
            Length::Encoded(ENC_INT32) => {
                let i = i32::from_le_bytes(array(self.take(4)?));
                Ok(Cow::Owned(i.to_string().into_bytes()))
            }
            Length::Encoded(ENC_LZF) => {
                let compressed = self.usize_length()?;
                let plain = self.usize_length()?;
                let at = self.base + self.pos;
                let input = self.take(compressed)?;
                lzf_decompress(input, plain, at).map(Cow::Owned)
            }
            Length::Encoded(_) => Err(self.malformed("unknown string encoding")),
        }
    }

    /// `RDB_TYPE_ZSET_2` scores: 8 bytes, little-endian IEEE 754.
    fn binary_double(&mut self) -> Result<f64, DumpError> {
        Ok(f64::from_le_bytes(array(self.take(8)?)))
    }

    /// `RDB_TYPE_ZSET` scores: a length byte (253 NaN, 254 +inf, 255 -inf) and ASCII.
    fn text_double(&mut self) -> Result<f64, DumpError> {
        match self.byte()? {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let text = self.take(usize::from(n))?;
                parse_score(text).ok_or_else(|| self.malformed("a zset score is not a number"))
            }
        }
    }
}

/// Copies a slice of known length into an array; callers pass exactly `N` bytes.
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0_u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

/// LZF decompression (liblzf's `lzf_decompress`, as Redis' `lzf_d.c`) into exactly `plain`
/// bytes.
fn lzf_decompress(input: &[u8], plain: usize, at: usize) -> Result<Vec<u8>, DumpError> {
    let bad = |what| DumpError::Malformed { at, what };
    // One back-reference of 3 bytes expands to at most 264: refuse lengths no input could
    // produce before allocating for them.
    if plain > input.len().saturating_mul(88) {
        return Err(bad("lzf length larger than the input can expand to"));
    }
    let mut out = Vec::with_capacity(plain);
    let mut i = 0;
    while i < input.len() {
        let ctrl = usize::from(input[i]);
        i += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            let lit = input
                .get(i..i + run)
                .ok_or(bad("lzf literal runs past the input"))?;
            if out.len() + run > plain {
                return Err(bad("lzf output longer than announced"));
            }
            out.extend_from_slice(lit);
            i += run;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += usize::from(*input.get(i).ok_or(bad("lzf reference truncated"))?);
                i += 1;
            }
            len += 2;
            let low = usize::from(*input.get(i).ok_or(bad("lzf reference truncated"))?);
            i += 1;
            let back = ((ctrl & 0x1f) << 8) + low + 1;
            let start = out
                .len()
                .checked_sub(back)
                .ok_or(bad("lzf reference before the start"))?;
            if out.len() + len > plain {
                return Err(bad("lzf output longer than announced"));
            }
            // Byte by byte: the source may overlap what is being written (runs).
            for k in 0..len {
                let b = out[start + k];
                out.push(b);
            }
        }
    }
    if out.len() != plain {
        return Err(bad("lzf output shorter than announced"));
    }
    Ok(out)
}

/// One entry of a listpack, ziplist or intset.
#[derive(Debug, Clone, Copy)]
enum Entry<'a> {
    Bytes(&'a [u8]),
    Int(i64),
}

/// Room for an `i64` in decimal.
#[derive(Default)]
struct IntText([u8; 20]);

impl<'a> Entry<'a> {
    /// The bytes a command would return: integers in decimal, as Redis renders them.
    fn bytes<'b>(&self, buf: &'b mut IntText) -> &'b [u8]
    where
        'a: 'b,
    {
        match *self {
            Entry::Bytes(b) => b,
            Entry::Int(i) => {
                let mut n = i.unsigned_abs();
                let mut at = buf.0.len();
                loop {
                    at -= 1;
                    // Truncation intended: a single decimal digit.
                    #[allow(clippy::cast_possible_truncation)]
                    let digit = (n % 10) as u8;
                    buf.0[at] = b'0' + digit;
                    n /= 10;
                    if n == 0 {
                        break;
                    }
                }
                if i < 0 {
                    at -= 1;
                    buf.0[at] = b'-';
                }
                &buf.0[at..]
            }
        }
    }
}

/// Sign-extends the low `bits` bits of `u`.
fn sign_extend(u: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    // Reinterpreting the bits is the point: two's complement of `bits` bits.
    #[allow(clippy::cast_possible_wrap)]
    let i = (u << shift) as i64;
    i >> shift
}

/// Calls `each` with consecutive entries two by two (hash field and value, zset member and
/// score) of a ziplist or listpack.
fn each_pair<'a>(
    blob: &'a [u8],
    ziplist: bool,
    mut each: impl FnMut(Entry<'a>, Entry<'a>) -> Result<(), DumpError>,
) -> Result<(), DumpError> {
    let mut first: Option<Entry<'a>> = None;
    let mut step = |entry: Entry<'a>| match first.take() {
        None => {
            first = Some(entry);
            Ok(())
        }
        Some(f) => each(f, entry),
    };
    if ziplist {
        each_ziplist(blob, &mut step)?;
    } else {
        each_listpack(blob, &mut step)?;
    }
    if first.is_some() {
        return Err(DumpError::Malformed {
            at: blob.len(),
            what: "an odd number of entries where pairs belong",
        });
    }
    Ok(())
}

/// Calls `each` with every entry of a listpack (`listpack.c`), checking the header and terminator.
fn each_listpack<'a>(
    blob: &'a [u8],
    mut each: impl FnMut(Entry<'a>) -> Result<(), DumpError>,
) -> Result<(), DumpError> {
    let mut cur = Reader::new(blob, 0);
    let total = u32::from_le_bytes(array(cur.take(4)?));
    if usize::try_from(total).ok() != Some(blob.len()) {
        return Err(cur.malformed("listpack size header does not match its length"));
    }
    let count = u16::from_le_bytes(array(cur.take(2)?));
    let mut seen: u64 = 0;
    loop {
        let start = cur.pos;
        let b = cur.byte()?;
        let entry = if b == 0xff {
            break;
        } else if b & 0x80 == 0 {
            Entry::Int(i64::from(b & 0x7f))
        } else if b & 0xc0 == 0x80 {
            Entry::Bytes(cur.take(usize::from(b & 0x3f))?)
        } else if b & 0xe0 == 0xc0 {
            let u = u64::from(b & 0x1f) << 8 | u64::from(cur.byte()?);
            Entry::Int(sign_extend(u, 13))
        } else if b & 0xf0 == 0xe0 {
            let n = usize::from(b & 0x0f) << 8 | usize::from(cur.byte()?);
            Entry::Bytes(cur.take(n)?)
        } else {
            match b {
                0xf0 => {
                    let n = u32::from_le_bytes(array(cur.take(4)?));
                    let n = usize::try_from(n).map_err(|_| cur.malformed("length too large"))?;
                    Entry::Bytes(cur.take(n)?)
                }
                0xf1 => Entry::Int(i64::from(i16::from_le_bytes(array(cur.take(2)?)))),
                0xf2 => {
                    let t = cur.take(3)?;
                    let u = u64::from(t[0]) | u64::from(t[1]) << 8 | u64::from(t[2]) << 16;
                    Entry::Int(sign_extend(u, 24))
                }
                0xf3 => Entry::Int(i64::from(i32::from_le_bytes(array(cur.take(4)?)))),
                0xf4 => Entry::Int(i64::from_le_bytes(array(cur.take(8)?))),
                _ => return Err(cur.malformed("unknown listpack entry encoding")),
            }
        };
        // The back-length that follows: the entry's size in 1 to 5 bytes (`lpEncodeBacklen`).
        let size = cur.pos - start;
        let back = match size {
            0..=127 => 1,
            128..=16_382 => 2,
            16_383..=2_097_150 => 3,
            2_097_151..=268_435_454 => 4,
            _ => 5,
        };
        cur.take(back)?;
        seen += 1;
        each(entry)?;
    }
    if !cur.is_empty() {
        return Err(cur.malformed("bytes after the listpack terminator"));
    }
    // 65535 means "count too large to store": only smaller counts can be checked.
    if count != u16::MAX && u64::from(count) != seen {
        return Err(cur.malformed("listpack element count does not match its entries"));
    }
    Ok(())
}

/// Calls `each` with every entry of a ziplist (`ziplist.c`), checking the header and terminator.
fn each_ziplist<'a>(
    blob: &'a [u8],
    mut each: impl FnMut(Entry<'a>) -> Result<(), DumpError>,
) -> Result<(), DumpError> {
    let mut cur = Reader::new(blob, 0);
    let total = u32::from_le_bytes(array(cur.take(4)?));
    if usize::try_from(total).ok() != Some(blob.len()) {
        return Err(cur.malformed("ziplist size header does not match its length"));
    }
    cur.take(4)?; // offset of the tail entry
    let count = u16::from_le_bytes(array(cur.take(2)?));
    let mut seen: u64 = 0;
    loop {
        let prev = cur.byte()?;
        if prev == 0xff {
            break;
        }
        if prev == 0xfe {
            cur.take(4)?;
        }
        let b = cur.byte()?;
        let entry = match b >> 6 {
            0 => Entry::Bytes(cur.take(usize::from(b & 0x3f))?),
            1 => {
                let n = usize::from(b & 0x3f) << 8 | usize::from(cur.byte()?);
                Entry::Bytes(cur.take(n)?)
            }
            2 => {
                if b != 0x80 {
                    return Err(cur.malformed("unknown ziplist string encoding"));
                }
                let n = u32::from_be_bytes(array(cur.take(4)?));
                let n = usize::try_from(n).map_err(|_| cur.malformed("length too large"))?;
                Entry::Bytes(cur.take(n)?)
            }
            _ => match b {
                0xc0 => Entry::Int(i64::from(i16::from_le_bytes(array(cur.take(2)?)))),
                0xd0 => Entry::Int(i64::from(i32::from_le_bytes(array(cur.take(4)?)))),
                0xe0 => Entry::Int(i64::from_le_bytes(array(cur.take(8)?))),
                0xf0 => {
                    let t = cur.take(3)?;
                    let u = u64::from(t[0]) | u64::from(t[1]) << 8 | u64::from(t[2]) << 16;
                    Entry::Int(sign_extend(u, 24))
                }
                0xfe => Entry::Int(i64::from(i8::from_le_bytes(array(cur.take(1)?)))),
                0xf1..=0xfd => Entry::Int(i64::from(b & 0x0f) - 1),
                _ => return Err(cur.malformed("unknown ziplist entry encoding")),
            },
        };
        seen += 1;
        each(entry)?;
    }
    if !cur.is_empty() {
        return Err(cur.malformed("bytes after the ziplist terminator"));
    }
    if count != u16::MAX && u64::from(count) != seen {
        return Err(cur.malformed("ziplist element count does not match its entries"));
    }
    Ok(())
}

/// Calls `each` with every member of an intset (`intset.c`: encoding, length, little-endian ints).
fn each_intset(blob: &[u8], mut each: impl FnMut(i64)) -> Result<(), DumpError> {
    let mut cur = Reader::new(blob, 0);
    let width = u32::from_le_bytes(array(cur.take(4)?));
    let len = u32::from_le_bytes(array(cur.take(4)?));
    let width: usize = match width {
        2 => 2,
        4 => 4,
        8 => 8,
        _ => return Err(cur.malformed("unknown intset encoding")),
    };
    let len = usize::try_from(len).map_err(|_| cur.malformed("length too large"))?;
    if len.checked_mul(width) != Some(blob.len() - 8) {
        return Err(cur.malformed("intset length does not match its size"));
    }
    for _ in 0..len {
        let b = cur.take(width)?;
        each(match width {
            2 => i64::from(i16::from_le_bytes(array(b))),
            4 => i64::from(i32::from_le_bytes(array(b))),
            _ => i64::from_le_bytes(array(b)),
        });
    }
    Ok(())
}

/// The CRC-64 Redis appends to DUMP payloads and RDB files: Jones polynomial
/// (0xad93d23594c935a9), reflected, initial value 0, no final xor.
pub fn crc64(mut crc: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        // Truncation intended: the low byte indexes the table.
        #[allow(clippy::cast_possible_truncation)]
        let low = crc as u8;
        crc = CRC64_TABLE[usize::from(low ^ b)] ^ (crc >> 8);
    }
    crc
}

/// The reflected Jones polynomial.
const CRC64_POLY_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;

const CRC64_TABLE: [u64; 256] = {
    let mut table = [0_u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ CRC64_POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::{DumpError, KeyKind, Visitor, crc64, decode, visit};
    use crate::verify::record::ValueDigest;

    /// What a decode produced, piece by piece.
    #[derive(Debug, Default, PartialEq)]
    struct Seen(Vec<(Vec<u8>, Option<Vec<u8>>)>);

    impl Visitor for Seen {
        fn string(&mut self, bytes: &[u8]) {
            self.0.push((bytes.to_vec(), None));
        }
        fn element(&mut self, element: &[u8]) {
            self.0.push((element.to_vec(), None));
        }
        fn member(&mut self, member: &[u8]) {
            self.0.push((member.to_vec(), None));
        }
        fn pair(&mut self, field: &[u8], value: &[u8]) {
            self.0.push((field.to_vec(), Some(value.to_vec())));
        }
        fn scored(&mut self, member: &[u8], score: f64) {
            self.0
                .push((member.to_vec(), Some(score.to_string().into_bytes())));
        }
    }

    /// Wraps an object in the DUMP footer: version and CRC.
    fn payload(rdb_type: u8, object: &[u8], version: u16) -> Vec<u8> {
        let mut p = vec![rdb_type];
        p.extend_from_slice(object);
        p.extend_from_slice(&version.to_le_bytes());
        let crc = crc64(0, &p);
        p.extend_from_slice(&crc.to_le_bytes());
        p
    }

    /// Decoded pieces: bytes, and the value or score when there is one.
    type Pieces = Vec<(Vec<u8>, Option<Vec<u8>>)>;

    fn seen(p: &[u8]) -> (KeyKind, Pieces) {
        let (kind, s) = visit(p, |_| Seen::default()).unwrap();
        (kind, s.0)
    }

    fn plain(items: &[&[u8]]) -> Pieces {
        items.iter().map(|i| (i.to_vec(), None)).collect()
    }

    #[test]
    fn crc64_is_redis_jones() {
        // Redis' crc64.c test vector.
        assert_eq!(crc64(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn a_string_payload_digests_as_the_command_reader_does() {
        let d = decode(&payload(0, b"\x05hello", 10)).unwrap();
        let mut want = ValueDigest::new(KeyKind::String);
        want.bytes(b"hello");
        assert_eq!(d.kind, KeyKind::String);
        assert_eq!(d.value, want.finish());
        assert_eq!(d.bytes, 5);
    }

    #[test]
    fn strings_in_every_encoding() {
        assert_eq!(seen(&payload(0, b"\x00", 10)).1, plain(&[b""]));
        assert_eq!(seen(&payload(0, b"\xc0\xf6", 10)).1, plain(&[b"-10"]));
        assert_eq!(seen(&payload(0, b"\xc1\x39\x30", 10)).1, plain(&[b"12345"]));
        assert_eq!(
            seen(&payload(0, b"\xc2\x00\x00\x00\x80", 10)).1,
            plain(&[b"-2147483648"])
        );
        // LZF: literal "ab" then a back-reference copying 6 bytes from 2 back: "abababab".
        let lzf = b"\xc3\x05\x08\x01ab\x80\x01";
        assert_eq!(seen(&payload(0, lzf, 10)).1, plain(&[b"abababab"]));
        // 14-bit and 32-bit lengths.
        let mut long = vec![0x41, 0x00];
        long.extend(std::iter::repeat_n(b'x', 256));
        assert_eq!(seen(&payload(0, &long, 10)).1[0].0.len(), 256);
        let mut long32 = vec![0x80, 0, 0, 0x01, 0];
        long32.extend(std::iter::repeat_n(b'y', 256));
        assert_eq!(seen(&payload(0, &long32, 10)).1[0].0.len(), 256);
    }

    fn listpack(entries: &[&[u8]]) -> Vec<u8> {
        let body: Vec<u8> = entries.concat();
        let total = u32::try_from(body.len() + 7).unwrap();
        let mut lp = total.to_le_bytes().to_vec();
        lp.extend_from_slice(&u16::try_from(entries.len()).unwrap().to_le_bytes());
        lp.extend_from_slice(&body);
        lp.push(0xff);
        lp
    }

    fn rdb_string(bytes: &[u8]) -> Vec<u8> {
        assert!(bytes.len() < 64);
        let mut out = vec![u8::try_from(bytes.len()).unwrap()];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn listpack_entries_in_every_encoding() {
        let lp = listpack(&[
            b"\x05\x01",                                 // 7-bit uint 5
            b"\x82hi\x03",                               // 6-bit string "hi"
            b"\xdf\xff\x02",                             // 13-bit int -1
            b"\xf1\x00\x80\x03",                         // int16 -32768
            b"\xf2\xff\xff\x7f\x04",                     // int24 8388607
            b"\xf3\x00\x00\x00\x80\x05",                 // int32 -2147483648
            b"\xf4\xff\xff\xff\xff\xff\xff\xff\xff\x09", // int64 -1
            b"\xe0\x01z\x03",                            // 12-bit string "z"
        ]);
        let mut obj = vec![1, 2]; // one node, packed
        obj.extend(rdb_string(&lp));
        let (kind, got) = seen(&payload(18, &obj, 11));
        assert_eq!(kind, KeyKind::List);
        assert_eq!(
            got,
            plain(&[
                b"5",
                b"hi",
                b"-1",
                b"-32768",
                b"8388607",
                b"-2147483648",
                b"-1",
                b"z"
            ])
        );
    }

    #[test]
    fn quicklist_plain_nodes_and_ziplists() {
        let mut obj = vec![1, 1]; // one plain node
        obj.extend(rdb_string(b"big"));
        assert_eq!(seen(&payload(18, &obj, 10)).1, plain(&[b"big"]));

        // Ziplist: "a", int8 -2, immediate 7.
        let entries: &[u8] = b"\x00\x01a\x03\xfe\xfe\x03\xf8";
        let total = u32::try_from(entries.len() + 11).unwrap();
        let mut zl = total.to_le_bytes().to_vec();
        zl.extend_from_slice(&[0, 0, 0, 0, 3, 0]);
        zl.extend_from_slice(entries);
        zl.push(0xff);
        let mut obj = vec![1];
        obj.extend(rdb_string(&zl));
        assert_eq!(seen(&payload(14, &obj, 9)).1, plain(&[b"a", b"-2", b"7"]));
    }

    #[test]
    fn intsets_and_hashes_and_skiplists() {
        let mut is = vec![2, 0, 0, 0, 2, 0, 0, 0];
        is.extend_from_slice(&(-3_i16).to_le_bytes());
        is.extend_from_slice(&7_i16.to_le_bytes());
        let mut obj = Vec::new();
        obj.extend(rdb_string(&is));
        assert_eq!(seen(&payload(11, &obj, 10)).1, plain(&[b"-3", b"7"]));

        let mut obj = vec![1];
        obj.extend(rdb_string(b"f"));
        obj.extend(rdb_string(b"v"));
        assert_eq!(
            seen(&payload(4, &obj, 10)).1,
            vec![(b"f".to_vec(), Some(b"v".to_vec()))]
        );

        // Saved tail first: decoded in ZRANGE order.
        let mut obj = vec![2];
        obj.extend(rdb_string(b"b"));
        obj.extend_from_slice(&2.5_f64.to_le_bytes());
        obj.extend(rdb_string(b"a"));
        obj.extend_from_slice(&(-1.0_f64).to_le_bytes());
        let (kind, got) = seen(&payload(5, &obj, 10));
        assert_eq!(kind, KeyKind::ZSet);
        assert_eq!(
            got,
            vec![
                (b"a".to_vec(), Some(b"-1".to_vec())),
                (b"b".to_vec(), Some(b"2.5".to_vec()))
            ]
        );
    }

    #[test]
    fn listpack_hashes_and_zsets_pair_their_entries() {
        let hash = listpack(&[b"\x81f\x02", b"\x0c\x01", b"\x80\x01", b"\x81v\x02"]);
        assert_eq!(
            seen(&payload(16, &rdb_string(&hash), 11)).1,
            vec![
                (b"f".to_vec(), Some(b"12".to_vec())),
                (Vec::new(), Some(b"v".to_vec()))
            ]
        );
        // Scores as integers and as text; stored in ZRANGE order already.
        let zset = listpack(&[b"\x81a\x02", b"\xdf\xfe\x02", b"\x81b\x02", b"\x832.5\x04"]);
        assert_eq!(
            seen(&payload(17, &rdb_string(&zset), 11)).1,
            vec![
                (b"a".to_vec(), Some(b"-2".to_vec())),
                (b"b".to_vec(), Some(b"2.5".to_vec()))
            ]
        );
        let odd = listpack(&[b"\x81f\x02"]);
        assert!(matches!(
            decode(&payload(16, &rdb_string(&odd), 11)),
            Err(DumpError::Malformed { .. })
        ));
        let bad_score = listpack(&[b"\x81a\x02", b"\x81x\x02"]);
        assert!(matches!(
            decode(&payload(17, &rdb_string(&bad_score), 11)),
            Err(DumpError::Malformed { .. })
        ));
    }

    #[test]
    fn refusals_are_typed() {
        assert_eq!(decode(b""), Err(DumpError::TooShort { len: 0 }));
        assert!(matches!(
            decode(&payload(15, b"\x00", 10)),
            Err(DumpError::Unsupported {
                rdb_type: 15,
                kind: Some(KeyKind::Stream),
                ..
            })
        ));
        assert_eq!(
            decode(&payload(0, b"\x00", 13)),
            Err(DumpError::Version { version: 13 })
        );
        let mut p = payload(0, b"\x01a", 10);
        p[2] = b'b';
        assert!(matches!(decode(&p), Err(DumpError::Checksum { .. })));
        assert!(matches!(
            decode(&payload(0, b"\x01a\x00", 10)),
            Err(DumpError::Malformed { .. })
        ));
        // An LZF length no input could produce is refused before allocating.
        assert!(matches!(
            decode(&payload(0, b"\xc3\x01\x81\xff\xff\xff\xff\x00\x00", 10)),
            Err(DumpError::Malformed { .. })
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// Any bytes, with a valid footer so the decoder gets past the checksum: never a panic.
        #[test]
        fn random_objects_never_panic(t in 0_u8..32, object in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = decode(&payload(t, &object, 10));
        }

        /// Valid payloads cut short or with a byte flipped (footer fixed up): never a panic.
        #[test]
        fn damaged_payloads_never_panic(cut in 0_usize..200, flip in 0_usize..200, bit in 0_u8..8) {
            let lp = listpack(&[b"\x05\x01", b"\x82hi\x03", b"\xf3\x00\x00\x00\x80\x05"]);
            for (t, mut obj) in [
                (18_u8, { let mut o = vec![1, 2]; o.extend(rdb_string(&lp)); o }),
                (16, rdb_string(&listpack(&[b"\x81f\x02", b"\x81v\x02"]))),
                (17, rdb_string(&listpack(&[b"\x81m\x02", b"\x05\x01"]))),
                (0, b"\xc3\x05\x08\x01ab\x80\x01".to_vec()),
            ] {
                if !obj.is_empty() {
                    let i = flip % obj.len();
                    obj[i] ^= 1 << bit;
                }
                obj.truncate(cut.max(1));
                let _ = decode(&payload(t, &obj, 11));
            }
        }

        #[test]
        fn raw_random_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }
    }
}
