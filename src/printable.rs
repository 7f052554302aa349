//! Text that comes from the data (Redis key names) made safe to print, one function for every
//! human rendering. A key is bytes chosen by whoever writes to the database: an ESC sequence
//! in a key name clears the screen or retitles the terminal, a newline forges an upshift line,
//! a bidi override shows a name backwards. [`key`] prints what it is instead; JSON carries the
//! exact bytes with [`base64`]. Pure; a leaf any layer may use.

use std::fmt::Write;

/// A key (or any data-derived bytes) as one printable line: printable UTF-8 as it is;
/// backslash as `\\`; ASCII control characters and bytes that are not UTF-8 as `\xNN`; other
/// control characters, line and paragraph separators and the invisible format characters
/// (bidi embeddings, overrides and isolates, zero-width marks, the BOM) as `\u{NNNN}`. Two
/// different keys never print the same.
pub fn key(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else if c.is_ascii_control() {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            } else if c.is_control() || is_invisible_format(c) {
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Text that came from the data or a server (a key already decoded, an app's log line, a
/// `run_id`): [`key`] of its bytes.
pub fn key_str(text: &str) -> String {
    key(text.as_bytes())
}

/// Characters that change how the text around them is shown without showing themselves
/// (Unicode general category Cf, and the line and paragraph separators).
fn is_invisible_format(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x061C
            | 0x180E
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// Standard base64 with padding (RFC 4648 section 4): the exact bytes of a key in JSON, where
/// a key that is not UTF-8 cannot be a string.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{base64, key};

    #[test]
    fn control_bidi_and_invalid_bytes_are_escaped() {
        assert_eq!(key(b"user:42"), "user:42");
        assert_eq!(key("naïve 日本".as_bytes()), "naïve 日本");
        assert_eq!(key(b"\x1b[31mRED\x1b[0m"), "\\x1b[31mRED\\x1b[0m");
        assert_eq!(key(b"\x1b]0;t\x07"), "\\x1b]0;t\\x07");
        assert_eq!(key(b"line1\nline2\r\t"), "line1\\x0aline2\\x0d\\x09");
        assert_eq!(key("\u{202e}evil".as_bytes()), "\\u{202e}evil");
        assert_eq!(key("a\u{2066}b\u{200f}".as_bytes()), "a\\u{2066}b\\u{200f}");
        assert_eq!(key("\u{85}x\u{2028}".as_bytes()), "\\u{0085}x\\u{2028}");
        assert_eq!(key(b"\xff\xfe\x00bin"), "\\xff\\xfe\\x00bin");
        assert_eq!(key(b"\x7f"), "\\x7f");
        // The escape character itself is escaped: a key that spells an escape is not the
        // key it spells.
        assert_eq!(key(b"\\x1b"), "\\\\x1b");
        assert_ne!(key(b"\\x1b"), key(b"\x1b"));
        assert_ne!(key(b"\xff"), key("\u{fffd}".as_bytes()));
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (input, want) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
            (b"\xff\xfe\x00", "//4A"),
        ] {
            assert_eq!(base64(input), want);
        }
    }
}
