//! Readers for the packed encodings inside an RDB object: listpacks, ziplists and intsets,
//! each walked entry by entry without copying.

use super::DumpError;
use super::reader::{Reader, array};

/// One entry of a listpack, ziplist or intset.
#[derive(Debug, Clone, Copy)]
pub(super) enum Entry<'a> {
    Bytes(&'a [u8]),
    Int(i64),
}

/// Room for an `i64` in decimal.
#[derive(Default)]
pub(super) struct IntText([u8; 20]);

impl<'a> Entry<'a> {
    /// The bytes a command would return: integers in decimal, as Redis renders them.
    pub(super) fn bytes<'b>(&self, buf: &'b mut IntText) -> &'b [u8]
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
pub(super) fn sign_extend(u: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    // Reinterpreting the bits is the point: two's complement of `bits` bits.
    #[allow(clippy::cast_possible_wrap)]
    let i = (u << shift) as i64;
    i >> shift
}

/// Calls `each` with consecutive entries two by two (hash field and value, zset member and
/// score) of a ziplist or listpack.
pub(super) fn each_pair<'a>(
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
pub(super) fn each_listpack<'a>(
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
pub(super) fn each_ziplist<'a>(
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
pub(super) fn each_intset(blob: &[u8], mut each: impl FnMut(i64)) -> Result<(), DumpError> {
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
