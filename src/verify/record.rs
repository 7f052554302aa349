//! One record per key (key bytes, type, canonical value digest, absolute expiry) and the
//! canonical, encoding-independent value digests. Pure: values come in as bytes.
//!
//! Why canonical: DUMP payloads differ for equal data (a hashtable-encoded set after a replica
//! promotion, any payload across versions), and `DEBUG DIGEST` is disabled on managed services.
//! Reading each value with ordinary commands and hashing it in a fixed form is exact.

use std::io::{self, Read, Write};

use serde::Serialize;
use xxhash_rust::xxh3::xxh3_128;

/// A streaming xxh3 hasher that can be printed (the crate's type has no `Debug`).
#[derive(Clone, Default)]
pub struct Hasher(xxhash_rust::xxh3::Xxh3Default);

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }
    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    /// The 64-bit digest so far.
    pub fn digest(&self) -> u64 {
        self.0.digest()
    }
    /// The 128-bit digest so far.
    pub fn digest128(&self) -> u128 {
        self.0.digest128()
    }
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher")
    }
}

/// The Redis types the verifier understands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// `string`
    String,
    /// `list`
    List,
    /// `set`
    Set,
    /// `zset`
    ZSet,
    /// `hash`
    Hash,
    /// `stream`
    Stream,
}

impl KeyKind {
    /// Every kind, in code order.
    pub const ALL: [Self; 6] = [
        Self::String,
        Self::List,
        Self::Set,
        Self::ZSet,
        Self::Hash,
        Self::Stream,
    ];

    /// The name `TYPE` answers.
    pub const fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::List => "list",
            Self::Set => "set",
            Self::ZSet => "zset",
            Self::Hash => "hash",
            Self::Stream => "stream",
        }
    }

    /// Parses a `TYPE` answer; `None` for `none` and for types the verifier cannot read.
    pub fn from_type_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    const fn code(self) -> u8 {
        match self {
            Self::String => 1,
            Self::List => 2,
            Self::Set => 3,
            Self::ZSet => 4,
            Self::Hash => 5,
            Self::Stream => 6,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }

    /// The kind's place in [`KeyKind::ALL`], for tallies kept in an array.
    pub(crate) const fn index(self) -> usize {
        self.code() as usize - 1
    }
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// When a key expires, as absolute Unix milliseconds on the server's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expiry {
    /// No TTL.
    Never,
    /// Expires at `at_ms`. `tolerance_ms` is 0 when read exactly (PEXPIRETIME, Redis >= 7.0) and
    /// the round-trip interval when derived from PTTL (Redis 6.x).
    At {
        /// Absolute expiry, Unix milliseconds.
        at_ms: i64,
        /// How far the true expiry may be from `at_ms`.
        tolerance_ms: u32,
    },
}

impl Expiry {
    /// An exact expiry (PEXPIRETIME).
    pub const fn exact(at_ms: i64) -> Self {
        Self::At {
            at_ms,
            tolerance_ms: 0,
        }
    }

    /// The expiry derived from a PTTL answer read between local instants `sent_ms` and
    /// `received_ms` (already shifted to the server's clock): the key expires somewhere in
    /// `[sent + pttl, received + pttl]`, so the midpoint is kept with half the interval (rounded
    /// up) as tolerance. `pttl` must be >= 0.
    pub fn from_pttl(pttl: i64, sent_ms: i64, received_ms: i64) -> Self {
        let span = (received_ms - sent_ms).max(0);
        let half = span / 2 + span % 2;
        Self::At {
            at_ms: sent_ms + half + pttl,
            tolerance_ms: u32::try_from(half + 1).unwrap_or(u32::MAX),
        }
    }

    /// The absolute expiry, if any.
    pub const fn at_ms(self) -> Option<i64> {
        match self {
            Self::Never => None,
            Self::At { at_ms, .. } => Some(at_ms),
        }
    }

    /// Whether two readings describe the same expiry, within their tolerances.
    pub fn same_as(self, other: Self) -> bool {
        match (self, other) {
            (Self::Never, Self::Never) => true,
            (
                Self::At {
                    at_ms: a,
                    tolerance_ms: ta,
                },
                Self::At {
                    at_ms: b,
                    tolerance_ms: tb,
                },
            ) => a.abs_diff(b) <= u64::from(ta) + u64::from(tb),
            _ => false,
        }
    }
}

/// What the verifier knows about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The key, raw bytes (keys are binary-safe).
    pub key: Vec<u8>,
    /// Its type.
    pub kind: KeyKind,
    /// The canonical digest of its value (see [`ValueDigest`]).
    pub value: u128,
    /// Its absolute expiry.
    pub expiry: Expiry,
}

impl Record {
    /// Approximate heap footprint, for the memory budget.
    pub fn footprint(&self) -> usize {
        std::mem::size_of::<Self>() + self.key.capacity()
    }

    /// Appends the record's binary form (the spill and snapshot encoding).
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_parts(&self.key, self.kind, self.value, self.expiry, out);
    }

    /// Writes the binary form.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let mut buf = Vec::with_capacity(self.key.len() + 48);
        self.encode(&mut buf);
        w.write_all(&buf)
    }

    /// Reads one record; `Ok(None)` at a clean end of input.
    pub fn read_from(r: &mut impl Read) -> io::Result<Option<Self>> {
        let mut record = Self::empty();
        Ok(Self::read_into(r, &mut record)?.then_some(record))
    }

    /// A record with no key, to be filled by [`Record::read_into`].
    pub(crate) const fn empty() -> Self {
        Self {
            key: Vec::new(),
            kind: KeyKind::String,
            value: 0,
            expiry: Expiry::Never,
        }
    }

    /// Reads one record into `into`, reusing its key's buffer (a merge reads a million records
    /// without an allocation each); `Ok(false)` at a clean end of input.
    pub(crate) fn read_into(r: &mut impl Read, into: &mut Self) -> io::Result<bool> {
        let mut len = [0_u8; 4];
        match r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
        into.key.clear();
        into.key.resize(u32::from_le_bytes(len) as usize, 0);
        r.read_exact(&mut into.key)?;
        (into.kind, into.value, into.expiry) = Self::read_fixed(r)?;
        Ok(true)
    }

    /// Reads the rest of a record whose key length was already read.
    pub(crate) fn read_after_len(key_len: u32, r: &mut impl Read) -> io::Result<Self> {
        let mut key = vec![0_u8; key_len as usize];
        r.read_exact(&mut key)?;
        let (kind, value, expiry) = Self::read_fixed(r)?;
        Ok(Self {
            key,
            kind,
            value,
            expiry,
        })
    }

    /// The fields after the key.
    fn read_fixed(r: &mut impl Read) -> io::Result<(KeyKind, u128, Expiry)> {
        let mut fixed = [0_u8; 1 + 16 + 8 + 4];
        r.read_exact(&mut fixed)?;
        let kind = KeyKind::from_code(fixed[0])
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unknown type code"))?;
        let value = u128::from_le_bytes(fixed[1..17].try_into().expect("16 bytes"));
        let at = i64::from_le_bytes(fixed[17..25].try_into().expect("8 bytes"));
        let tol = u32::from_le_bytes(fixed[25..29].try_into().expect("4 bytes"));
        let expiry = if at < 0 {
            Expiry::Never
        } else {
            Expiry::At {
                at_ms: at,
                tolerance_ms: tol,
            }
        };
        Ok((kind, value, expiry))
    }
}

/// Appends a record's binary form from its parts (what [`Record::encode`] writes), for holders
/// that keep records unpacked (the record set's arena).
pub(crate) fn encode_parts(
    key: &[u8],
    kind: KeyKind,
    value: u128,
    expiry: Expiry,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(key);
    out.push(kind.code());
    out.extend_from_slice(&value.to_le_bytes());
    let (at, tol) = match expiry {
        Expiry::Never => (-1_i64, 0_u32),
        Expiry::At {
            at_ms,
            tolerance_ms,
        } => (at_ms, tolerance_ms),
    };
    out.extend_from_slice(&at.to_le_bytes());
    out.extend_from_slice(&tol.to_le_bytes());
}

/// The database digest: xxh3-128 over the records in key order, each key once.
///
/// Fed in sorted, deduplicated order, so it is independent of SCAN order and repeats. An
/// approximate expiry (PTTL on Redis 6.x) contributes only "has a TTL", since a value read with
/// tolerance cannot be hashed exactly; the diff still compares it within the tolerance.
#[derive(Debug, Default)]
pub struct DatabaseDigest {
    hasher: Hasher,
    /// Record bytes not yet given to the hasher.
    pending: Vec<u8>,
    keys: u64,
}

impl DatabaseDigest {
    /// An empty digest.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next record (callers feed records in ascending key order, each key once).
    pub fn add(&mut self, record: &Record) {
        // The record's bytes gather in a buffer that goes to the hasher 16 KiB at a time: the
        // same bytes as one update per field, without the hasher's per-call cost (a sixth of
        // the post-scan tail at 1M keys, perf, issue 12).
        let b = &mut self.pending;
        b.extend_from_slice(&(record.key.len() as u64).to_le_bytes());
        b.extend_from_slice(&record.key);
        b.push(record.kind.code());
        b.extend_from_slice(&record.value.to_le_bytes());
        match record.expiry {
            Expiry::Never => b.push(0),
            Expiry::At {
                at_ms,
                tolerance_ms: 0,
            } => {
                b.push(1);
                b.extend_from_slice(&at_ms.to_le_bytes());
            }
            Expiry::At { .. } => b.push(2),
        }
        if b.len() >= 16 << 10 {
            self.hasher.update(b);
            b.clear();
        }
        self.keys += 1;
    }

    /// The number of records added.
    pub fn keys(&self) -> u64 {
        self.keys
    }

    /// The digest as 32 lower-case hex digits.
    pub fn hex(&self) -> String {
        let mut h = self.hasher.clone();
        h.update(&self.pending);
        h.update(&self.keys.to_le_bytes());
        format!("{:032x}", h.digest128())
    }
}

/// Canonical digest of one value, fed piece by piece as windows arrive from the server.
#[derive(Debug, Clone)]
pub enum ValueDigest {
    /// String bytes, in order (windows concatenate).
    String(Hasher),
    /// List or zset or stream: ordered, length-prefixed elements.
    Ordered {
        /// The running hash.
        hasher: Hasher,
        /// Elements so far.
        count: u64,
    },
    /// Set or hash: order-independent sum of per-element hashes (elements are unique).
    Unordered {
        /// Wrapping sum of element hashes.
        sum: u128,
        /// Elements so far.
        count: u64,
    },
}

impl ValueDigest {
    /// The right accumulator for a kind.
    pub fn new(kind: KeyKind) -> Self {
        match kind {
            KeyKind::String => Self::String(Hasher::new()),
            KeyKind::List | KeyKind::ZSet | KeyKind::Stream => Self::Ordered {
                hasher: Hasher::new(),
                count: 0,
            },
            KeyKind::Set | KeyKind::Hash => Self::Unordered { sum: 0, count: 0 },
        }
    }

    /// String: the next window of bytes.
    pub fn bytes(&mut self, chunk: &[u8]) {
        match self {
            Self::String(h) => h.update(chunk),
            Self::Ordered { hasher, .. } => hasher.update(chunk),
            Self::Unordered { .. } => debug_assert!(false, "bytes on an unordered digest"),
        }
    }

    /// List: the next element.
    pub fn element(&mut self, element: &[u8]) {
        if let Self::Ordered { hasher, count } = self {
            put(hasher, element);
            *count += 1;
        }
    }

    /// Zset: the next member with its score (already parsed; see [`normalise_score`]).
    pub fn scored(&mut self, member: &[u8], score: f64) {
        if let Self::Ordered { hasher, count } = self {
            put(hasher, member);
            hasher.update(&normalise_score(score).to_le_bytes());
            *count += 1;
        }
    }

    /// Set: one member. Hash: one field with its value (use [`Self::pair`]).
    pub fn member(&mut self, member: &[u8]) {
        if let Self::Unordered { sum, count } = self {
            *sum = sum.wrapping_add(element_hash(member, None));
            *count += 1;
        }
    }

    /// Hash: one field and its value.
    pub fn pair(&mut self, field: &[u8], value: &[u8]) {
        if let Self::Unordered { sum, count } = self {
            *sum = sum.wrapping_add(element_hash(field, Some(value)));
            *count += 1;
        }
    }

    /// Stream: one entry (id and its field/value list, in order).
    pub fn stream_entry(&mut self, id: &[u8], fields: &[&[u8]]) {
        if let Self::Ordered { hasher, count } = self {
            put(hasher, id);
            hasher.update(&(fields.len() as u64).to_le_bytes());
            for f in fields {
                put(hasher, f);
            }
            *count += 1;
        }
    }

    /// Stream metadata (last id, consumer groups): tagged so it cannot collide with entries.
    pub fn stream_meta(&mut self, tag: &str, parts: &[&[u8]]) {
        if let Self::Ordered { hasher, .. } = self {
            hasher.update(&[0xff]);
            put(hasher, tag.as_bytes());
            for p in parts {
                put(hasher, p);
            }
        }
    }

    /// Elements (or bytes, for strings) seen so far; strings answer 0.
    pub fn count(&self) -> u64 {
        match self {
            Self::String(_) => 0,
            Self::Ordered { count, .. } | Self::Unordered { count, .. } => *count,
        }
    }

    /// The final 128-bit digest.
    pub fn finish(&self) -> u128 {
        match self {
            Self::String(h) => h.digest128(),
            Self::Ordered { hasher, count } => {
                let mut h = hasher.clone();
                h.update(&count.to_le_bytes());
                h.digest128()
            }
            Self::Unordered { sum, count } => {
                let mut buf = [0_u8; 24];
                buf[..16].copy_from_slice(&sum.to_le_bytes());
                buf[16..].copy_from_slice(&count.to_le_bytes());
                xxh3_128(&buf)
            }
        }
    }
}

/// The 128-bit hash of one unordered element, as added to the sum.
pub fn element_hash(a: &[u8], b: Option<&[u8]>) -> u128 {
    // Short elements (most members and fields) are laid out on the stack and hashed in one
    // call: the same bytes as the streaming form below, so the same digest, without setting
    // up a streaming state per element.
    const SHORT: usize = 256;
    let total = 8 + a.len() + b.map_or(0, |b| 8 + b.len());
    if total <= SHORT {
        let mut buf = [0_u8; SHORT];
        let mut at = 0;
        for part in std::iter::once(a).chain(b) {
            buf[at..at + 8].copy_from_slice(&(part.len() as u64).to_le_bytes());
            buf[at + 8..at + 8 + part.len()].copy_from_slice(part);
            at += 8 + part.len();
        }
        return xxh3_128(&buf[..at]);
    }
    let mut h = Hasher::new();
    put(&mut h, a);
    if let Some(b) = b {
        put(&mut h, b);
    }
    h.digest128()
}

fn put(h: &mut Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// A score's canonical bits: renderings differ between commands and versions ("1" vs "1.0",
/// "inf" vs "+inf"), the parsed value does not. -0.0 becomes 0.0 (they compare equal in Redis);
/// every NaN maps to one bit pattern (Redis refuses NaN scores, this only keeps hashing total).
pub fn normalise_score(score: f64) -> u64 {
    if score.is_nan() {
        f64::NAN.to_bits()
    } else if score == 0.0 {
        0.0_f64.to_bits()
    } else {
        score.to_bits()
    }
}

/// Parses a score as Redis renders it (`1`, `1.5`, `inf`, `-inf`, `+inf`, `1e10`).
pub fn parse_score(text: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(text).ok()?;
    match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
