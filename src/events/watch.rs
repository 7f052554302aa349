//! The post-change log watch's classifier: which log lines are the errors the Enketo guide
//! warns about after a plan change. Pure: lines in, verdicts out.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A known error in the app's logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WatchKind {
    /// `R14 (Memory quota exceeded)`: a dyno is swapping.
    MemoryQuota,
    /// `H10 (App crashed)`: the router found no running web dyno.
    AppCrashed,
    /// `ERR max number of clients reached`: a Redis plan's connection limit is full.
    MaxClients,
    /// `too many connections` (Redis clients and other databases say it this way).
    TooManyConnections,
    /// A connection closed during its TLS handshake. A TLS Redis at its connection limit drops
    /// new clients this way instead of answering `max number of clients reached` (measured
    /// with redis 7 in the simulator), and every Heroku Redis plan is TLS-only: without this
    /// kind, a full plan after the change goes unseen in the logs.
    TlsDropped,
}

impl WatchKind {
    /// The stable name used in JSON events and notifications.
    pub fn name(self) -> &'static str {
        match self {
            Self::MemoryQuota => "memory-quota",
            Self::AppCrashed => "app-crashed",
            Self::MaxClients => "max-clients",
            Self::TooManyConnections => "too-many-connections",
            Self::TlsDropped => "tls-dropped",
        }
    }
}

impl fmt::Display for WatchKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MemoryQuota => "R14 memory quota exceeded",
            Self::AppCrashed => "H10 app crashed",
            Self::MaxClients => "Redis max number of clients reached",
            Self::TooManyConnections => "too many connections",
            Self::TlsDropped => {
                "Redis TLS connections dropped in the handshake (a full TLS Redis does this)"
            }
        })
    }
}

/// What a log line is, if it is one of the watched errors.
pub fn classify(line: &str) -> Option<WatchKind> {
    let lower = line.to_ascii_lowercase();
    if lower.contains("max number of clients reached") {
        Some(WatchKind::MaxClients)
    } else if lower.contains("too many connections") {
        Some(WatchKind::TooManyConnections)
    } else if lower.contains("before secure tls connection was established")
        || (lower.contains("tls handshake")
            && ["eof", "reset", "closed", "disconnected"]
                .iter()
                .any(|w| lower.contains(w)))
    {
        Some(WatchKind::TlsDropped)
    } else if has_code(line, "R14") || lower.contains("memory quota exceeded") {
        Some(WatchKind::MemoryQuota)
    } else if has_code(line, "H10") {
        Some(WatchKind::AppCrashed)
    } else {
        None
    }
}

/// `Error R14`, `code=H10`: Heroku's two ways of writing an error code, followed by a
/// non-alphanumeric (so `code=H100` is not `H10`).
fn has_code(line: &str, code: &str) -> bool {
    [format!("code={code}"), format!("Error {code}")]
        .iter()
        .any(|pattern| {
            line.match_indices(pattern.as_str()).any(|(i, _)| {
                !line[i + pattern.len()..]
                    .chars()
                    .next()
                    .is_some_and(char::is_alphanumeric)
            })
        })
}

/// The line with any URL credentials masked (`redis://:secret@host` -> `redis://***@host`), so
/// an app that logs its connection string does not leak it into reports or notifications.
pub fn redact(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guides_errors_are_recognised() {
        let cases = [
            (
                "2026-11-25T23:00:00.000000+00:00 app[web.1]: Error: ERR max number of clients reached",
                Some(WatchKind::MaxClients),
            ),
            (
                "2026-11-25T23:00:00+00:00 heroku[web.1]: Error R14 (Memory quota exceeded)",
                Some(WatchKind::MemoryQuota),
            ),
            (
                "heroku[router]: at=error code=H10 desc=\"App crashed\" method=GET path=\"/\"",
                Some(WatchKind::AppCrashed),
            ),
            (
                "app[web.2]: ReplyError: Too many connections",
                Some(WatchKind::TooManyConnections),
            ),
            (
                "app[web.1]: Error: Client network socket disconnected before secure TLS \
                 connection was established",
                Some(WatchKind::TlsDropped),
            ),
            (
                "app[worker.1]: [ioredis] Unhandled error event: Error: TLS handshake failed: \
                 connection reset",
                Some(WatchKind::TlsDropped),
            ),
            ("app[web.1]: TLS handshake completed in 3 ms", None),
            ("app[web.1]: GET /R140 200", None),
            (
                "app[web.1]: H10 alone is not an error code, code=H100 neither",
                None,
            ),
            ("heroku[web.1]: State changed from starting to up", None),
        ];
        for (line, want) in cases {
            assert_eq!(classify(line), want, "{line}");
        }
    }

    #[test]
    fn credentials_in_urls_are_masked() {
        assert_eq!(
            redact("app[web.1]: connecting to redis://:p4ss@127.0.0.1:6379 failed"),
            "app[web.1]: connecting to redis://***@127.0.0.1:6379 failed"
        );
        assert_eq!(
            redact("rediss://user:pw@h:1/0 and https://example.com/x"),
            "rediss://***@h:1/0 and https://example.com/x"
        );
        assert_eq!(redact("no url here"), "no url here");
    }
}
