//! Text that comes from the data (Redis key names) made safe to print, one function for every
//! human rendering. A key is bytes chosen by whoever writes to the database: an ESC sequence
//! in a key name clears the screen or retitles the terminal, a newline forges an upshift line,
//! a bidi override shows a name backwards. [`key`] prints what it is instead; JSON carries the
//! exact bytes with [`base64`]. Text from the Heroku API (add-on, plan, process type and dyno
//! size names, an error's `id` and `message`, a git remote) is the same class: whoever answers
//! the request (a proxy, a captive portal) chooses it; [`text`] prints it on one line.
//! [`terminal`] is the last line of defence every write to stdout or stderr goes through.
//! Pure; a leaf any layer may use.

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

/// Text that came from a server (a name, an error message) or prose built around it, as one
/// printable line: like [`key_str`] but a backslash stays a backslash, so text already escaped
/// passes unchanged (`text(&key(k)) == key(k)`) and a renderer may escape whole lines it
/// composed from escaped and unescaped parts. Names are not identifiers here, so the
/// rendering need not be reversible.
pub fn text(text: &str) -> String {
    if !text.chars().any(needs_escape) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_ascii_control() {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else if needs_escape(c) {
            let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether [`text`] escapes `c`.
fn needs_escape(c: char) -> bool {
    c.is_control() || is_invisible_format(c)
}

/// Everything upshift writes to stdout or stderr, made harmless whatever a print site forgot:
/// line feeds, tabs and colour (SGR: `ESC [ digits m`, the styles upshift itself uses) pass; any other control character,
/// escape sequence or invisible format character becomes a JSON `\uXXXX` escape (a UTF-16
/// surrogate pair above the BMP). JSON output stays valid and decodes to the same strings
/// (`serde_json` leaves C1 controls, DEL and bidi marks raw inside strings, never outside them);
/// human text shows what was there instead of obeying it. Borrowed when nothing changes.
pub fn terminal(text: &str) -> std::borrow::Cow<'_, str> {
    let bytes = text.as_bytes();
    let clean = |c: char| c == '\n' || c == '\t' || !needs_escape(c);
    if text.chars().all(|c| clean(c) || c == '\x1b') && sgr_only(bytes) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '\x1b' {
            let len = sgr_len(rest.as_bytes());
            if len > 0 {
                out.push_str(&rest[..len]);
                rest = &rest[len..];
                continue;
            }
        }
        if clean(c) {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
        rest = &rest[c.len_utf8()..];
    }
    std::borrow::Cow::Owned(out)
}

/// Whether every ESC in `bytes` starts a colour sequence.
fn sgr_only(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .enumerate()
        .all(|(i, b)| *b != 0x1b || sgr_len(&bytes[i..]) > 0)
}

/// The length of the SGR sequence (`ESC [ {digit|;|:} m`) at the start of `bytes`, or 0.
fn sgr_len(bytes: &[u8]) -> usize {
    let [0x1b, b'[', rest @ ..] = bytes else {
        return 0;
    };
    let params = rest
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b';' || **b == b':')
        .count();
    if rest.get(params) == Some(&b'm') && sgr_styles_only(&rest[..params]) {
        params + 3
    } else {
        0
    }
}

/// Whether an SGR's parameters only style text the way upshift's own output does (the
/// `console` crate's attributes and foreground colours): reset, bold, dim, italic, underline,
/// reverse, strike-through, their resets, and visible foreground colours. Conceal (8), black
/// text (30, `38;5;0`, `38;5;16` and up), backgrounds and true colour can hide text or make it
/// unreadable: in text from elsewhere that a print site forgot to escape, they hid a line or
/// coloured a forged one to pass for upshift's own (hostile pass 4 left this open).
fn sgr_styles_only(params: &[u8]) -> bool {
    let number = |p: &[u8]| -> Option<u16> {
        if p.is_empty() {
            Some(0)
        } else {
            std::str::from_utf8(p).ok()?.parse().ok()
        }
    };
    let mut parts = params.split(|b| *b == b';');
    while let Some(part) = parts.next() {
        match number(part) {
            Some(0..=4 | 7 | 9 | 22..=29 | 31..=37 | 39 | 90..=97) => {}
            // 256 colours: only the 16 named ones, black excepted.
            Some(38) => {
                if parts.next() != Some(b"5".as_slice())
                    || !matches!(parts.next().and_then(number), Some(1..=15))
                {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
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
    use super::{base64, key, terminal, text};

    #[test]
    fn api_text_is_one_line_and_escaped_text_passes_unchanged() {
        assert_eq!(text("premium-0"), "premium-0");
        assert_eq!(
            text("redis-\x1b]0;pwned\x07\x1b[31mFORGED"),
            "redis-\\x1b]0;pwned\\x07\\x1b[31mFORGED"
        );
        assert_eq!(
            text("all good\nline2\u{202e}"),
            "all good\\x0aline2\\u{202e}"
        );
        assert_eq!(text("C:\\dir"), "C:\\dir");
        let k = key(b"\x1b[2J\\x1b");
        assert_eq!(text(&k), k);
    }

    #[test]
    fn terminal_keeps_lines_tabs_and_colour_and_escapes_the_rest() {
        let plain = "Plan\n\tsteps \x1b[1;31mBLOCKED\x1b[0m ok";
        assert!(matches!(terminal(plain), std::borrow::Cow::Borrowed(_)));
        assert_eq!(
            terminal("a\x1b]0;t\x07b\x1b[2Jc\rd"),
            "a\\u001b]0;t\\u0007b\\u001b[2Jc\\u000dd"
        );
        assert_eq!(
            terminal("x\u{202e}\u{9b}\u{e0001}"),
            "x\\u202e\\u009b\\udb40\\udc01"
        );
        // Styles that hide text or make it unreadable are escaped like any other sequence.
        for hiding in [
            "\x1b[8m",
            "\x1b[30m",
            "\x1b[1;8m",
            "\x1b[41m",
            "\x1b[38;5;0m",
            "\x1b[38;2;0;0;0m",
            "\x1b[48;5;1m",
            "\x1b[38:5:1m",
        ] {
            let shown = terminal(hiding);
            assert!(
                !shown.contains('\x1b') && shown.starts_with("\\u001b["),
                "{hiding:?}: {shown}"
            );
        }
        for ours in [
            "\x1b[32m",
            "\x1b[1m",
            "\x1b[38;5;8m",
            "\x1b[m",
            "\x1b[0m",
            "\x1b[2;33m",
            "\x1b[7m",
        ] {
            assert_eq!(terminal(ours), ours);
        }
        // JSON stays JSON, with the same strings.
        let json =
            serde_json::to_string(&serde_json::json!({"n": "a\u{202e}\u{7f}\u{e0001}b\x1b"}))
                .unwrap();
        let shown = terminal(&json);
        assert!(!shown.contains('\u{202e}'));
        let back: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(back["n"], "a\u{202e}\u{7f}\u{e0001}b\x1b");
    }

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
