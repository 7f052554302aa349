//! The snapshot file format: encode and decode over any `Write`/`Read`. Pure apart from the
//! stream it is given.
//!
//! ```text
//! magic    16 bytes  "UPSHIFT-SNAPSHOT"
//! version  u32 LE    FORMAT_VERSION (1)
//! header   u32 LE length + JSON {created_unix_ms, redis_version, upshift_version}
//! entries  repeated: tag 0x01, record (u32 key length, key, u8 type, u128 value digest,
//!          i64 absolute expiry ms or -1, u32 expiry tolerance ms), u32 payload length,
//!          DUMP payload
//! end      tag 0x00, u32 LE length + JSON trailer {keys, entries, digest}
//! checksum u64 LE    xxh3-64 of every byte before it
//! ```
//!
//! Integers are little-endian. Entries come in SCAN order and may repeat a key (SCAN can return
//! a key twice); `keys` in the trailer counts distinct keys. The file holds no host, URL or
//! password: only the metadata above.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::verify::record::{Hasher, Record};

/// The first bytes of every snapshot.
pub const MAGIC: &[u8; 16] = b"UPSHIFT-SNAPSHOT";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const TAG_ENTRY: u8 = 1;
const TAG_END: u8 = 0;
// A header or trailer is a few hundred bytes; a bigger length means a damaged file.
const MAX_JSON: u32 = 1 << 20;
// Redis caps a string at 512 MB; a DUMP payload beyond 4 GiB cannot be valid here.
const MAX_KEY: u32 = 512 << 20;

/// Metadata written first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    /// When the snapshot started, Unix milliseconds.
    pub created_unix_ms: i64,
    /// The source server's version (RESTORE payloads carry its RDB version).
    pub redis_version: String,
    /// The upshift version that wrote the file.
    pub upshift_version: String,
}

/// Metadata written last (known only once the scan is done).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotTrailer {
    /// Distinct keys captured.
    pub keys: u64,
    /// Entries written (keys SCAN returned twice are written twice).
    pub entries: u64,
    /// The database digest of the captured data.
    pub digest: String,
}

/// One captured key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// The key's record (type, canonical digest, expiry).
    pub record: Record,
    /// Its DUMP payload.
    pub payload: Vec<u8>,
}

/// What can go wrong decoding a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Reading the underlying stream failed.
    #[error("read failed")]
    Io(#[from] io::Error),
    /// Not a snapshot at all.
    #[error("not an upshift snapshot (bad magic bytes)")]
    Magic,
    /// Written by another format version.
    #[error(
        "snapshot format version {found} is not supported (this build reads version {FORMAT_VERSION})"
    )]
    Version {
        /// The version found.
        found: u32,
    },
    /// Structurally damaged.
    #[error("{0}")]
    Corrupt(String),
    /// The checksum at the end does not match the content.
    #[error("checksum mismatch: the file is damaged or truncated")]
    Checksum,
}

/// A writer hashing everything it passes on.
#[derive(Debug)]
struct Hashing<W> {
    inner: W,
    hasher: Hasher,
    written: u64,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        self.inner.write_all(bytes)
    }
}

/// Streams a snapshot out: header, entries as they come, trailer and checksum.
#[derive(Debug)]
pub struct SnapshotWriter<W: Write> {
    out: Hashing<W>,
    entries: u64,
    buf: Vec<u8>,
}

impl<W: Write> SnapshotWriter<W> {
    /// Writes the magic, version and header.
    ///
    /// # Errors
    /// The stream refuses the bytes.
    pub fn new(inner: W, header: &SnapshotHeader) -> io::Result<Self> {
        let mut out = Hashing {
            inner,
            hasher: Hasher::new(),
            written: 0,
        };
        out.put(MAGIC)?;
        out.put(&FORMAT_VERSION.to_le_bytes())?;
        put_json(&mut out, header)?;
        Ok(Self {
            out,
            entries: 0,
            buf: Vec::new(),
        })
    }

    /// Appends one entry.
    ///
    /// # Errors
    /// The stream refuses the bytes.
    pub fn entry(&mut self, record: &Record, payload: &[u8]) -> io::Result<()> {
        self.buf.clear();
        self.buf.push(TAG_ENTRY);
        record.encode(&mut self.buf);
        let len = u32::try_from(payload.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "payload over 4 GiB"))?;
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.out.put(&self.buf)?;
        self.out.put(payload)?;
        self.entries += 1;
        Ok(())
    }

    /// The stream the snapshot goes to (to flush it ahead of [`Self::finish`]).
    pub fn stream_mut(&mut self) -> &mut W {
        &mut self.out.inner
    }

    /// Entries written so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Writes the trailer and the checksum and returns the stream and the bytes written.
    ///
    /// # Errors
    /// The stream refuses the bytes.
    pub fn finish(mut self, keys: u64, digest: &str) -> io::Result<(W, u64)> {
        self.out.put(&[TAG_END])?;
        let trailer = SnapshotTrailer {
            keys,
            entries: self.entries,
            digest: digest.to_owned(),
        };
        put_json(&mut self.out, &trailer)?;
        let sum = self.out.hasher.digest();
        self.out.inner.write_all(&sum.to_le_bytes())?;
        self.out.inner.flush()?;
        Ok((self.out.inner, self.out.written + 8))
    }
}

fn put_json<W: Write>(out: &mut Hashing<W>, value: &impl Serialize) -> io::Result<()> {
    let json = serde_json::to_vec(value).map_err(io::Error::other)?;
    let len = u32::try_from(json.len()).map_err(io::Error::other)?;
    out.put(&len.to_le_bytes())?;
    out.put(&json)
}

/// Reads a snapshot back, verifying the checksum when the end is reached.
///
/// Entries are handed out before the checksum is known: callers that act on entries (restore)
/// first run [`verify_stream`] over the whole file.
#[derive(Debug)]
pub struct SnapshotReader<R: Read> {
    inner: R,
    hasher: Hasher,
    header: SnapshotHeader,
    trailer: Option<SnapshotTrailer>,
}

impl<R: Read> SnapshotReader<R> {
    /// Reads and checks the magic, version and header.
    ///
    /// # Errors
    /// Not a snapshot, another format version, or a damaged header.
    pub fn new(inner: R) -> Result<Self, FormatError> {
        let mut me = Self {
            inner,
            hasher: Hasher::new(),
            header: SnapshotHeader {
                created_unix_ms: 0,
                redis_version: String::new(),
                upshift_version: String::new(),
            },
            trailer: None,
        };
        let mut magic = [0_u8; 16];
        me.take(&mut magic).map_err(|_| FormatError::Magic)?;
        if &magic != MAGIC {
            return Err(FormatError::Magic);
        }
        let found = me.u32()?;
        if found != FORMAT_VERSION {
            return Err(FormatError::Version { found });
        }
        me.header = me.json("header")?;
        Ok(me)
    }

    /// The header.
    pub fn header(&self) -> &SnapshotHeader {
        &self.header
    }

    /// The trailer, once [`Self::next_entry`] has returned `Ok(None)`.
    pub fn trailer(&self) -> Option<&SnapshotTrailer> {
        self.trailer.as_ref()
    }

    /// The next entry; `Ok(None)` after the trailer, once the checksum matched.
    ///
    /// # Errors
    /// Damaged or truncated content, or a checksum mismatch at the end.
    pub fn next_entry(&mut self) -> Result<Option<SnapshotEntry>, FormatError> {
        if self.trailer.is_some() {
            return Ok(None);
        }
        let mut tag = [0_u8; 1];
        self.take(&mut tag)?;
        match tag[0] {
            TAG_ENTRY => {
                let key_len = self.u32()?;
                if key_len > MAX_KEY {
                    return Err(FormatError::Corrupt(format!(
                        "key length {key_len} is implausible"
                    )));
                }
                let record = {
                    let mut tee = Tee {
                        inner: &mut self.inner,
                        hasher: &mut self.hasher,
                    };
                    Record::read_after_len(key_len, &mut tee).map_err(eof_is_corrupt)?
                };
                let len = self.u32()?;
                let mut payload = Vec::new();
                (&mut Tee {
                    inner: &mut self.inner,
                    hasher: &mut self.hasher,
                })
                    .take(u64::from(len))
                    .read_to_end(&mut payload)?;
                if payload.len() != len as usize {
                    return Err(FormatError::Corrupt("truncated payload".into()));
                }
                // A payload damaged before it was written passes the file's checksum but no
                // RESTORE: refused here, so a restore stops before its first write.
                if crate::verify::dump::check_footer(&payload).is_err() {
                    return Err(FormatError::Corrupt(format!(
                        "the DUMP payload of key \"{}\" fails its checksum (CRC64): the file or the payload was damaged, and no server would restore it",
                        crate::printable::key(&record.key)
                    )));
                }
                Ok(Some(SnapshotEntry { record, payload }))
            }
            TAG_END => {
                let trailer: SnapshotTrailer = self.json("trailer")?;
                let expected = self.hasher.digest();
                let mut sum = [0_u8; 8];
                self.inner.read_exact(&mut sum).map_err(eof_is_corrupt)?;
                if u64::from_le_bytes(sum) != expected {
                    return Err(FormatError::Checksum);
                }
                let mut extra = [0_u8; 1];
                if self.inner.read(&mut extra)? != 0 {
                    return Err(FormatError::Corrupt("bytes after the checksum".into()));
                }
                self.trailer = Some(trailer);
                Ok(None)
            }
            other => Err(FormatError::Corrupt(format!("unknown entry tag {other}"))),
        }
    }

    fn take(&mut self, buf: &mut [u8]) -> Result<(), FormatError> {
        self.inner.read_exact(buf).map_err(eof_is_corrupt)?;
        self.hasher.update(buf);
        Ok(())
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        let mut b = [0_u8; 4];
        self.take(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn json<T: for<'de> Deserialize<'de>>(&mut self, what: &str) -> Result<T, FormatError> {
        let len = self.u32()?;
        if len > MAX_JSON {
            return Err(FormatError::Corrupt(format!(
                "{what} length {len} is implausible"
            )));
        }
        let mut buf = vec![0_u8; len as usize];
        self.take(&mut buf)?;
        serde_json::from_slice(&buf)
            .map_err(|e| FormatError::Corrupt(format!("unreadable {what}: {e}")))
    }
}

/// Reads a whole snapshot, checking its structure and checksum, and returns its metadata.
///
/// # Errors
/// As [`SnapshotReader::next_entry`].
pub fn verify_stream(inner: impl Read) -> Result<(SnapshotHeader, SnapshotTrailer), FormatError> {
    let mut reader = SnapshotReader::new(inner)?;
    while reader.next_entry()?.is_some() {}
    let trailer = reader.trailer.take().expect("set at the end");
    Ok((reader.header, trailer))
}

fn eof_is_corrupt(e: io::Error) -> FormatError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        FormatError::Corrupt("the file ends early (truncated)".into())
    } else if e.kind() == io::ErrorKind::InvalidData {
        FormatError::Corrupt(e.to_string())
    } else {
        FormatError::Io(e)
    }
}

struct Tee<'a, R> {
    inner: &'a mut R,
    hasher: &'a mut Hasher,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::{FormatError, SnapshotHeader, SnapshotReader, SnapshotWriter, verify_stream};
    use crate::verify::dump::crc64;
    use crate::verify::record::{Expiry, KeyKind, Record};

    /// A DUMP payload of the one-byte string `i` (RDB version 10, Redis 7.0), `damaged` with a
    /// flipped CRC.
    fn payload(i: u8, damaged: bool) -> Vec<u8> {
        let mut p = vec![0, 1, i];
        p.extend_from_slice(&10_u16.to_le_bytes());
        let crc = crc64(0, &p) ^ u64::from(damaged);
        p.extend_from_slice(&crc.to_le_bytes());
        p
    }

    fn sample() -> Vec<u8> {
        sample_with(false)
    }

    fn sample_with(damaged: bool) -> Vec<u8> {
        let header = SnapshotHeader {
            created_unix_ms: 1,
            redis_version: "7.0.15".into(),
            upshift_version: "0.1.0".into(),
        };
        let mut w = SnapshotWriter::new(Vec::new(), &header).unwrap();
        for i in 0..3_u8 {
            let r = Record {
                key: vec![b'k', i],
                kind: KeyKind::String,
                value: u128::from(i),
                expiry: if i == 1 {
                    Expiry::exact(99)
                } else {
                    Expiry::Never
                },
            };
            w.entry(&r, &payload(i, damaged && i == 1)).unwrap();
        }
        let (bytes, len) = w.finish(3, "abc").unwrap();
        assert_eq!(len, bytes.len() as u64);
        bytes
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        let mut r = SnapshotReader::new(bytes.as_slice()).unwrap();
        assert_eq!(r.header().redis_version, "7.0.15");
        let mut n = 0_u8;
        while let Some(e) = r.next_entry().unwrap() {
            assert_eq!(e.payload, payload(n, false));
            n += 1;
        }
        assert_eq!(n, 3);
        assert_eq!(r.trailer().unwrap().digest, "abc");
        let (_, t) = verify_stream(bytes.as_slice()).unwrap();
        assert_eq!((t.keys, t.entries), (3, 3));
    }

    /// A payload damaged before it was written passes the file's own checksum, since it was
    /// hashed as written, but RESTORE would refuse it: the reader refuses the file first.
    #[test]
    fn a_payload_failing_its_own_crc_makes_the_snapshot_unusable() {
        let bytes = sample_with(true);
        let e = verify_stream(bytes.as_slice()).unwrap_err();
        assert!(
            matches!(&e, FormatError::Corrupt(m) if m.contains("key \"k\\x01\"") && m.contains("CRC64")),
            "{e}"
        );
    }

    #[test]
    fn any_flipped_byte_or_truncation_is_caught() {
        let bytes = sample();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(verify_stream(bad.as_slice()).is_err(), "flip at {i}");
        }
        for cut in [0, 10, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(verify_stream(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(verify_stream(longer.as_slice()).is_err());
        let mut other = bytes;
        other[16] = 9;
        assert!(matches!(
            verify_stream(other.as_slice()),
            Err(FormatError::Version { found: 9 })
        ));
    }
}
