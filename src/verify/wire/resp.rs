//! RESP2 replies read from a byte stream through a buffer of our own: a pure frame parser
//! ([`parse`], tested with byte literals) and [`ReplyReader`], which fills the buffer and hands
//! out each reply as a slice of it.
//!
//! Why our own: the DUMP read path parses a million small replies a second, and building a
//! `redis::Value` (an owned `Vec` per payload) for each cost about a third of the client's CPU
//! (perf, issue 12). Here a payload that fits the buffer is lent out in place; one bigger than
//! the buffer is read whole into a `Vec` of its exact size. Only the replies the DUMP path and
//! a connection's handshake meet are accepted (bulk, nil, integer, status, error): anything else
//! is a protocol error, never a panic, and no claimed length is allocated before it is checked.

use std::borrow::Cow;
use std::io;
use std::ops::Range;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Longest status, error or length line accepted (bytes, CRLF included).
const MAX_LINE: usize = 64 << 10;

/// Largest bulk reply accepted: far above any value a Redis plan holds in one key (a DUMP of
/// a 512 MB string is about 512 MB), far below what a hostile or broken server may claim.
pub(crate) const MAX_BULK: usize = 16 << 30;

/// A bulk reply bigger than the buffer is not allocated at its claimed size at once: its `Vec`
/// grows by this much as bytes arrive, so a lying length costs at most one step.
const ALLOC_STEP: usize = 16 << 20;

/// One reply.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply<'a> {
    /// A bulk string: lent from the buffer, or owned when it was bigger than the buffer.
    Bulk(Cow<'a, [u8]>),
    /// A nil bulk string (`$-1`): DUMP's answer for a key that is gone.
    Nil,
    /// An integer.
    Int(i64),
    /// A status line (`+OK`), without the `+`.
    Status(&'a [u8]),
    /// An error line (`-ERR …`), without the `-`.
    Error(&'a [u8]),
}

/// Why a stream could not be read as replies.
#[derive(Debug)]
pub(crate) enum WireError {
    /// The connection failed, timed out or closed mid-reply.
    Io(io::Error),
    /// The bytes are not a reply the DUMP path expects.
    Protocol(String),
}

/// A reply located in a buffer (ranges into it, so that parsing borrows nothing).
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    Bulk(Range<usize>),
    Nil,
    Int(i64),
    Status(Range<usize>),
    Error(Range<usize>),
}

/// What [`parse`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// A whole reply and the bytes it took.
    Done(Frame, usize),
    /// Not enough bytes yet.
    Need,
    /// A bulk reply whose header (`header` bytes) is here but not all of its `len` bytes.
    BulkHeader { len: usize, header: usize },
}

/// Parses the reply at the start of `buf`. Pure. Lines longer than `max_line` are refused.
fn parse(buf: &[u8], max_line: usize) -> Result<Parsed, String> {
    let Some(&tag) = buf.first() else {
        return Ok(Parsed::Need);
    };
    let window = &buf[..buf.len().min(max_line)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        if buf.len() >= max_line {
            return Err(format!("a reply line longer than {max_line} bytes"));
        }
        return Ok(Parsed::Need);
    };
    if lf == 0 || buf[lf - 1] != b'\r' {
        return Err("a reply line not ended by CRLF".to_owned());
    }
    let line = 1..lf - 1;
    let next = lf + 1;
    match tag {
        b'+' => Ok(Parsed::Done(Frame::Status(line), next)),
        b'-' => Ok(Parsed::Done(Frame::Error(line), next)),
        b':' => Ok(Parsed::Done(Frame::Int(integer(&buf[line])?), next)),
        b'$' => {
            let n = integer(&buf[line])?;
            if n == -1 {
                return Ok(Parsed::Done(Frame::Nil, next));
            }
            let len = usize::try_from(n)
                .ok()
                .filter(|&len| len <= MAX_BULK)
                .ok_or_else(|| {
                    format!("a bulk reply claiming {n} bytes (at most {MAX_BULK} are accepted)")
                })?;
            let end = next + len;
            if buf.len() < end + 2 {
                return Ok(Parsed::BulkHeader { len, header: next });
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err("a bulk reply not ended by CRLF".to_owned());
            }
            Ok(Parsed::Done(Frame::Bulk(next..end), end + 2))
        }
        b'*' => Err("an array reply where one value was expected".to_owned()),
        other => Err(format!("a reply of unknown type byte 0x{other:02x}")),
    }
}

/// A RESP integer: an optional minus and 1 to 19 digits, within `i64`.
fn integer(text: &[u8]) -> Result<i64, String> {
    let bad = || format!("a malformed integer \"{}\"", crate::printable::key(text));
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let mut value: i64 = 0;
    for &d in digits {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(d - b'0')))
            .ok_or_else(bad)?;
    }
    Ok(if negative { -value } else { value })
}

/// Replies read from `io` through a fixed buffer.
pub(crate) struct ReplyReader<R> {
    io: R,
    buf: Box<[u8]>,
    /// Unparsed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    max_line: usize,
    timeout: Duration,
    /// Bytes a bulk reply may claim: [`MAX_BULK`] until the session knows the server's memory.
    max_bulk: usize,
    /// A big bulk reply was being read when its future was dropped: part of it is gone and
    /// the stream is out of step with its replies.
    pub(crate) torn: bool,
}

impl<R: AsyncRead + Unpin> ReplyReader<R> {
    /// A reader with a buffer of `capacity` bytes (at least 16), each socket read given at most
    /// `timeout`.
    pub(crate) fn new(io: R, capacity: usize, timeout: Duration) -> Self {
        let capacity = capacity.max(16);
        Self {
            io,
            buf: vec![0; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
            max_line: MAX_LINE.min(capacity - 1),
            timeout,
            max_bulk: MAX_BULK,
            torn: false,
        }
    }

    /// Refuses bulk replies claiming more than `max` bytes: a DUMP payload is never bigger
    /// than the memory that holds its value, so a longer claim is a broken or hostile server,
    /// refused before it can fill this machine's memory at the network's speed.
    pub(crate) fn limit_bulk(&mut self, max: usize) {
        self.max_bulk = max.min(MAX_BULK);
    }

    /// How long each socket read may take from now on.
    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The stream, for writing.
    pub(crate) fn get_mut(&mut self) -> &mut R {
        &mut self.io
    }

    /// The next reply.
    ///
    /// # Errors
    /// [`WireError::Io`] when the stream fails, times out or ends (mid-reply or not);
    /// [`WireError::Protocol`] for bytes that are not an expected reply.
    pub(crate) async fn next(&mut self) -> Result<Reply<'_>, WireError> {
        loop {
            let parsed = parse(&self.buf[self.start..self.end], self.max_line)
                .map_err(WireError::Protocol)?;
            match parsed {
                Parsed::Done(frame, used) => {
                    let base = self.start;
                    self.start += used;
                    let at = |r: Range<usize>| base + r.start..base + r.end;
                    return Ok(match frame {
                        Frame::Bulk(r) => Reply::Bulk(Cow::Borrowed(&self.buf[at(r)])),
                        Frame::Nil => Reply::Nil,
                        Frame::Int(n) => Reply::Int(n),
                        Frame::Status(r) => Reply::Status(&self.buf[at(r)]),
                        Frame::Error(r) => Reply::Error(&self.buf[at(r)]),
                    });
                }
                Parsed::BulkHeader { len, .. } if len > self.max_bulk => {
                    return Err(WireError::Protocol(format!(
                        "a bulk reply claiming {len} bytes, more than the {} this server's memory \
                         (or this machine's free memory) could hold",
                        self.max_bulk
                    )));
                }
                Parsed::BulkHeader { len, header } if header + len + 2 > self.buf.len() => {
                    self.start += header;
                    return Ok(Reply::Bulk(Cow::Owned(self.read_big(len).await?)));
                }
                Parsed::Need | Parsed::BulkHeader { .. } => self.fill().await?,
            }
        }
    }

    /// Reads more bytes after the unparsed ones, moving those to the front first.
    async fn fill(&mut self) -> Result<(), WireError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = tokio::time::timeout(self.timeout, self.io.read(&mut self.buf[self.end..]))
            .await
            .map_err(|_| timed_out())?
            .map_err(WireError::Io)?;
        if n == 0 {
            return Err(WireError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )));
        }
        self.end += n;
        Ok(())
    }

    /// The body of a bulk reply bigger than the buffer (its header consumed), and its CRLF.
    async fn read_big(&mut self, len: usize) -> Result<Vec<u8>, WireError> {
        self.torn = true;
        let mut body = Vec::with_capacity(len.min(ALLOC_STEP));
        let here = (self.end - self.start).min(len);
        body.extend_from_slice(&self.buf[self.start..self.start + here]);
        self.start += here;
        while body.len() < len {
            let missing = len - body.len();
            if body.len() == body.capacity() {
                body.reserve_exact(missing.min(ALLOC_STEP));
            }
            let room = (body.capacity() - body.len()).min(missing) as u64;
            let n =
                tokio::time::timeout(self.timeout, (&mut self.io).take(room).read_buf(&mut body))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(WireError::Io)?;
            if n == 0 {
                return Err(WireError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection mid-reply",
                )));
            }
        }
        while self.end - self.start < 2 {
            self.fill().await?;
        }
        if &self.buf[self.start..self.start + 2] != b"\r\n" {
            return Err(WireError::Protocol(
                "a bulk reply not ended by CRLF".to_owned(),
            ));
        }
        self.start += 2;
        self.torn = false;
        Ok(body)
    }
}

fn timed_out() -> WireError {
    WireError::Io(io::Error::new(
        io::ErrorKind::TimedOut,
        "no reply within the response timeout",
    ))
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use tokio::io::{AsyncRead, ReadBuf};

    use super::{MAX_BULK, Parsed, Reply, ReplyReader, WireError, parse};

    /// A stream that yields its bytes in the given pieces, one piece per read at most.
    struct Pieces(Vec<Vec<u8>>);

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            out: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            self.0.retain(|p| !p.is_empty());
            if let Some(piece) = self.0.first_mut() {
                let n = piece.len().min(out.remaining());
                out.put_slice(&piece[..n]);
                piece.drain(..n);
                if piece.is_empty() {
                    self.0.remove(0);
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    /// What a test compares: each reply owned, or the error's kind.
    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Bulk(Vec<u8>, bool),
        Nil,
        Int(i64),
        Status(Vec<u8>),
        Error(Vec<u8>),
    }

    async fn read_all(pieces: Vec<Vec<u8>>, capacity: usize) -> (Vec<Seen>, Option<WireError>) {
        let mut reader = ReplyReader::new(Pieces(pieces), capacity, Duration::from_secs(5));
        let mut seen = Vec::new();
        loop {
            match reader.next().await {
                Ok(Reply::Bulk(b)) => seen.push(Seen::Bulk(b.to_vec(), matches!(b, Cow::Owned(_)))),
                Ok(Reply::Nil) => seen.push(Seen::Nil),
                Ok(Reply::Int(n)) => seen.push(Seen::Int(n)),
                Ok(Reply::Status(s)) => seen.push(Seen::Status(s.to_vec())),
                Ok(Reply::Error(e)) => seen.push(Seen::Error(e.to_vec())),
                Err(e) => return (seen, Some(e)),
            }
        }
    }

    /// A claim over the server's memory is refused at its header, before any byte of it is
    /// kept; one within it is read.
    #[tokio::test]
    async fn a_bulk_claiming_more_than_the_limit_is_refused_at_its_header() {
        let mut body = b"$300\r\n".to_vec();
        body.extend_from_slice(&[7; 300]);
        body.extend_from_slice(b"\r\n$100000000\r\n");
        let mut reader = ReplyReader::new(Pieces(vec![body]), 64, Duration::from_secs(5));
        reader.limit_bulk(1000);
        assert!(matches!(reader.next().await, Ok(Reply::Bulk(b)) if b.len() == 300));
        let e = reader.next().await.unwrap_err();
        assert!(
            matches!(&e, WireError::Protocol(m) if m.contains("claiming 100000000 bytes") && m.contains("the 1000 ")),
            "{e:?}"
        );
    }

    const STREAM: &[u8] = b"$5\r\nhe\r\no\r\n:-2\r\n$-1\r\n+OK\r\n-ERR unknown command 'DUMP'\r\n$0\r\n\r\n:1700000000000\r\n$21\r\n\x00\x01binary\r\n\xff payload..\r\n";

    fn expected() -> Vec<Seen> {
        vec![
            Seen::Bulk(b"he\r\no".to_vec(), false),
            Seen::Int(-2),
            Seen::Nil,
            Seen::Status(b"OK".to_vec()),
            Seen::Error(b"ERR unknown command 'DUMP'".to_vec()),
            Seen::Bulk(Vec::new(), false),
            Seen::Int(1_700_000_000_000),
            Seen::Bulk(b"\x00\x01binary\r\n\xff payload..".to_vec(), false),
        ]
    }

    fn is_eof(e: Option<&WireError>) -> bool {
        matches!(e, Some(WireError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof)
    }

    #[tokio::test]
    async fn replies_split_at_every_byte_boundary_read_the_same() {
        for cut in 0..=STREAM.len() {
            let (seen, err) =
                read_all(vec![STREAM[..cut].to_vec(), STREAM[cut..].to_vec()], 4096).await;
            assert_eq!(seen, expected(), "cut at {cut}");
            assert!(is_eof(err.as_ref()), "cut at {cut}: {err:?}");
        }
        let bytes = STREAM.iter().map(|b| vec![*b]).collect();
        let (seen, _) = read_all(bytes, 4096).await;
        assert_eq!(seen, expected(), "one byte per read");
    }

    /// With a 16-byte buffer the 21-byte payload cannot be lent: it is read whole into a
    /// `Vec`, whatever the read sizes, and the replies after it stay in step.
    #[tokio::test]
    async fn a_bulk_bigger_than_the_buffer_is_read_whole() {
        for cut in 0..=STREAM.len() {
            let (seen, err) =
                read_all(vec![STREAM[..cut].to_vec(), STREAM[cut..].to_vec()], 16).await;
            let mut want = expected();
            want[7] = Seen::Bulk(b"\x00\x01binary\r\n\xff payload..".to_vec(), true);
            // The error line is longer than a 16-byte buffer allows.
            assert_eq!(seen, want[..4], "cut at {cut}");
            assert!(
                matches!(&err, Some(WireError::Protocol(m)) if m.contains("longer than")),
                "{err:?}"
            );
        }
        let big = b"$21\r\n\x00\x01binary\r\n\xff payload..\r\n:7\r\n".to_vec();
        for cut in 0..=big.len() {
            let (seen, err) = read_all(vec![big[..cut].to_vec(), big[cut..].to_vec()], 16).await;
            assert_eq!(
                seen,
                [
                    Seen::Bulk(b"\x00\x01binary\r\n\xff payload..".to_vec(), true),
                    Seen::Int(7)
                ],
                "cut at {cut}"
            );
            assert!(is_eof(err.as_ref()));
        }
    }

    #[tokio::test]
    async fn a_truncated_stream_is_an_error_not_a_short_reply() {
        let (seen, err) = read_all(vec![b"$10\r\nabc".to_vec()], 4096).await;
        assert!(seen.is_empty());
        assert!(is_eof(err.as_ref()), "{err:?}");
        let (seen, err) = read_all(vec![b"$40\r\nabc".to_vec()], 16).await;
        assert!(seen.is_empty());
        assert!(is_eof(err.as_ref()), "{err:?}");
        let (seen, err) = read_all(vec![b":12".to_vec()], 4096).await;
        assert!(seen.is_empty());
        assert!(is_eof(err.as_ref()), "{err:?}");
    }

    /// A hostile length is refused before anything is allocated for it (a 2^62-byte `Vec`
    /// would abort the process, not return an error).
    #[tokio::test]
    async fn huge_claimed_lengths_are_refused_before_allocating() {
        for claim in [
            "$4611686018427387904\r\n",
            "$9223372036854775807\r\n",
            "$99999999999999999999\r\n",
            "$-2\r\n",
            "$17179869185\r\n",
        ] {
            let (seen, err) = read_all(vec![claim.as_bytes().to_vec()], 4096).await;
            assert!(seen.is_empty());
            assert!(
                matches!(err, Some(WireError::Protocol(_))),
                "{claim}: {err:?}"
            );
        }
        assert!(matches!(
            parse(format!("${MAX_BULK}\r\n").as_bytes(), 100),
            Ok(Parsed::BulkHeader { len: MAX_BULK, .. })
        ));
    }

    #[test]
    fn malformed_replies_are_protocol_errors() {
        for bad in [
            &b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"[..],
            b"%1\r\n",
            b"_\r\n",
            b"x\r\n",
            b":\r\n",
            b":12a\r\n",
            b":--1\r\n",
            b":99999999999999999999\r\n",
            b"+OK\n",
            b"\r\n",
            b"$3\r\nabcd\r\n",
            b"$\r\n",
        ] {
            assert!(parse(bad, 100).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(parse(&[b'+'; 200], 100).is_err(), "no end of line in sight");
        assert_eq!(parse(b"+OK\r", 100), Ok(Parsed::Need));
        assert_eq!(parse(b":-9223372036854775808\r\n", 100).ok(), None);
        assert_eq!(
            parse(b":-9223372036854775807\r\n", 100),
            Ok(Parsed::Done(super::Frame::Int(-i64::MAX), 23))
        );
    }
}
