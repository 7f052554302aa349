//! The bounds-checked cursor over RDB bytes: lengths, the special string encodings (int and
//! LZF) and doubles, as `rdbLoadLen` / `rdbGenericLoadStringObject` read them.

use std::borrow::Cow;

use super::DumpError;
use crate::verify::record::parse_score;

/// A bounds-checked cursor over RDB bytes. `base` is the offset of `buf` in the payload, for
/// error positions.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pub(super) pos: usize,
    base: usize,
}

/// `RDB_ENC_*`: the special string encodings behind a length byte `11xxxxxx`.
pub(super) const ENC_INT8: u8 = 0;
pub(super) const ENC_INT16: u8 = 1;
pub(super) const ENC_INT32: u8 = 2;
pub(super) const ENC_LZF: u8 = 3;

/// A length as `rdbLoadLen` reads it, or a special string encoding.
pub(super) enum Length {
    Plain(u64),
    Encoded(u8),
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(super) fn malformed(&self, what: &'static str) -> DumpError {
        DumpError::Malformed {
            at: self.base + self.pos,
            what,
        }
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], DumpError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| self.malformed("truncated"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(super) fn byte(&mut self) -> Result<u8, DumpError> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn raw_length(&mut self) -> Result<Length, DumpError> {
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
    pub(super) fn length(&mut self) -> Result<u64, DumpError> {
        match self.raw_length()? {
            Length::Plain(n) => Ok(n),
            Length::Encoded(_) => Err(self.malformed("a string encoding where a length belongs")),
        }
    }

    pub(super) fn usize_length(&mut self) -> Result<usize, DumpError> {
        let n = self.length()?;
        usize::try_from(n).map_err(|_| self.malformed("length too large"))
    }

    /// A string as `rdbGenericLoadStringObject` reads it: raw, an integer, or LZF.
    pub(super) fn string(&mut self) -> Result<Cow<'a, [u8]>, DumpError> {
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
    pub(super) fn binary_double(&mut self) -> Result<f64, DumpError> {
        Ok(f64::from_le_bytes(array(self.take(8)?)))
    }

    /// `RDB_TYPE_ZSET` scores: a length byte (253 NaN, 254 +inf, 255 -inf) and ASCII.
    pub(super) fn text_double(&mut self) -> Result<f64, DumpError> {
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
pub(super) fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0_u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

/// LZF decompression (liblzf's `lzf_decompress`, as Redis' `lzf_d.c`) into exactly `plain`
/// bytes.
pub(super) fn lzf_decompress(input: &[u8], plain: usize, at: usize) -> Result<Vec<u8>, DumpError> {
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
