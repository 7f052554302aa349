//! `VerifyError`: everything the verifier can fail with. Messages are lower-case, say what to do
//! next, and never contain a password (URLs appear only as `host:port`).

use std::path::PathBuf;

use crate::verify::snapshot::FormatError;
use crate::verify::url::UrlError;

/// A verifier failure.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The URL was refused.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// Connecting (TCP, TLS, AUTH) failed.
    #[error("cannot connect to redis at {endpoint}: {}", advice(.hint, .source))]
    Connect {
        /// `host:port`.
        endpoint: String,
        /// Extra advice (empty, or about certificate checks).
        hint: &'static str,
        /// The client's error (never holds the password).
        source: Box<redis::RedisError>,
    },
    /// A command failed: refused by the server, or no answer (a timeout, a dropped
    /// connection), which reads differently.
    #[error("redis at {endpoint} {}", command_failure(command, source))]
    Command {
        /// `host:port`.
        endpoint: String,
        /// The command (without arguments: they may be keys or payloads).
        command: &'static str,
        /// The server's error.
        source: Box<redis::RedisError>,
    },
    /// A reply did not have the expected shape.
    #[error("unexpected reply to {command} from redis at {endpoint}: {detail}")]
    Protocol {
        /// `host:port`.
        endpoint: String,
        /// The command.
        command: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A key of a type the verifier cannot read canonically (a module type, say).
    #[error(
        "unsupported type {} at key {key}: upshift verifies string, list, set, zset, hash and stream keys only",
        crate::printable::key_str(.kind)
    )]
    UnsupportedType {
        /// The `TYPE` answer.
        kind: String,
        /// The key, escaped with [`crate::printable::key`].
        key: String,
    },
    /// Fewer distinct keys were read than DBSIZE counted, beyond what expired meanwhile.
    #[error(
        "the scan read {found} of {expected} keys ({expired} expired or were evicted meanwhile): the rest have a type upshift cannot read (a module type) or writers are active; stop every writer and run again, or check the keys' types with TYPE"
    )]
    KeysMissed {
        /// DBSIZE when the scan started.
        expected: u64,
        /// Distinct keys read.
        found: u64,
        /// Expired plus evicted keys during the scan (INFO stats).
        expired: u64,
    },
    /// The key count moved during a scan by more than expiry and eviction explain.
    #[error(
        "the key count changed from {before} to {after} during the scan ({expired} keys expired or were evicted meanwhile): writers are still active; stop every writer (scale web, workers and schedulers to 0) and run again"
    )]
    WritersActive {
        /// DBSIZE when the scan started.
        before: u64,
        /// DBSIZE when it ended.
        after: u64,
        /// Expired plus evicted keys during the scan (INFO stats).
        expired: u64,
    },
    /// Write commands reached the server during a scan (its key count may not have moved: an
    /// overwrite leaves it as it was).
    #[error(
        "writes reached the database during the scan ({evidence}): writers are still active; stop every writer (scale web, workers and schedulers to 0) and run again"
    )]
    WrittenDuringScan {
        /// The evidence: write commands and their counts (`set +15`), never a key or a value.
        evidence: String,
    },
    /// Keys gained a TTL during a scan that found none at its start.
    #[error(
        "{after} keys gained a ttl during the scan, which found none at its start: writers are still active; stop every writer (scale web, workers and schedulers to 0) and run again"
    )]
    ExpiriesAppeared {
        /// Keys with a TTL at the end (INFO keyspace).
        after: u64,
    },
    /// Not enough free disk for the snapshot.
    #[error(
        "not enough free disk space in {dir}: the snapshot needs about {needed} bytes (the server's used memory), {available} are available; free space or choose another --out"
    )]
    DiskSpace {
        /// The directory checked.
        dir: PathBuf,
        /// Bytes needed (estimate).
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The snapshot file to read cannot be opened (missing, not readable): bad input.
    #[error("cannot open the snapshot {path}: check the path")]
    SnapshotOpen {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Reading or writing a local file failed.
    #[error("cannot {action} {path}")]
    File {
        /// What was attempted (`create`, `write`, `read`, `open`).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The spill directory could not take a sorted run.
    #[error(
        "cannot spill records to {dir}: choose another --spill-dir or raise --memory-budget-mb"
    )]
    Spill {
        /// The spill directory.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The thread consuming the scan's records stopped without an error of its own: a panic (a
    /// bug, reported rather than taken for a complete scan), or the scan was cancelled.
    #[error("the record consumer stopped: {what}")]
    Consumer {
        /// What the runtime said.
        what: String,
    },
    /// The snapshot file is not usable.
    #[error("snapshot {path} is unusable: take a new snapshot")]
    Snapshot {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: FormatError,
    },
    /// RESTORE refused a payload (typically an RDB version newer than the target server's).
    #[error(
        "redis at {endpoint} (version {target_version}) refused the snapshot payload of key {key} taken on redis {source_version}: restore into a server at least as new as the snapshot's source"
    )]
    PayloadRejected {
        /// `host:port`.
        endpoint: String,
        /// The key, escaped with [`crate::printable::key`].
        key: String,
        /// The snapshot's source version.
        source_version: String,
        /// The target's version.
        target_version: String,
        /// The server's error.
        source: Box<redis::RedisError>,
    },
}

impl VerifyError {
    /// Whether the input was wrong rather than the server or the disk: a snapshot file that
    /// cannot be opened, or a database the server does not have.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::SnapshotOpen { .. } => true,
            Self::Connect { source, .. } => is_missing_database(source),
            Self::File { source, .. } => crate::files::is_not_a_file(source),
            _ => false,
        }
    }

    /// Whether the server refused our credentials (AUTH failed, `WRONGPASS`, `NOAUTH`).
    ///
    /// Waits treat "not answering yet" as transient, but a refused password does not heal by
    /// waiting: the config var and the server disagree, and only an operator (or the platform
    /// finishing a credential rotation within seconds) fixes it. Callers give it a short grace,
    /// then fail instead of sleeping out a long timeout.
    pub fn is_auth_failure(&self) -> bool {
        let (Self::Connect { source, .. } | Self::Command { source, .. }) = self else {
            return false;
        };
        source.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(source.code(), Some("WRONGPASS" | "NOAUTH"))
    }

    /// Whether the server refused the command itself (renamed away, disabled, or not allowed
    /// by its ACL), as managed Redis services do with `CONFIG` and some with `CLIENT`.
    pub fn is_command_refused(&self) -> bool {
        match self {
            Self::Command { source, .. } => is_refused(source),
            _ => false,
        }
    }

    /// How the server turned the connection away, when it did: the one place that reads a
    /// Redis error's wording, so guards and tables decide on [`Refusal`], not on text.
    pub fn refusal(&self) -> Option<Refusal> {
        if let Self::Connect { hint, .. } = self
            && *hint == crate::verify::conn::FULL_HINT
        {
            return Some(Refusal::ConnectionLimit);
        }
        let (Self::Connect { source, .. } | Self::Command { source, .. }) = self else {
            return None;
        };
        // Redis has no code of its own for this: it answers `ERR max number of clients
        // reached` (networking.c) and closes the connection.
        let detail = source.detail().unwrap_or_default().to_ascii_lowercase();
        if detail.contains("max number of clients") {
            return Some(Refusal::ConnectionLimit);
        }
        // Reset, broken pipe, EOF: the connection was dropped, not refused (nothing listening
        // is a different failure: the server is down, not full).
        let hung_up = source.is_connection_dropped() && !source.is_connection_refusal();
        hung_up.then_some(Refusal::HungUp)
    }
}

/// What to do about a failed connection: the server's own refusal when it said one
/// ([`crate::verify::conn::FULL_HINT`]) or the connection limit when another connection of
/// the same session opened ([`crate::verify::conn::PARTLY_CONNECTED_HINT`]: the url, the
/// password and the network worked for it), else where to look, with the hint.
fn advice(hint: &str, source: &redis::RedisError) -> String {
    if is_missing_database(source) {
        "the server has no database of the number at the end of the url (redis has 0 to 15 by default, heroku-redis only 0): give a database it has".to_owned()
    } else if hint == crate::verify::conn::FULL_HINT
        || hint == crate::verify::conn::PARTLY_CONNECTED_HINT
    {
        hint.trim_start()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .to_owned()
    } else {
        format!("check the url, the password and the network{hint}")
    }
}

/// Whether the server refused the database the URL names (`SELECT` at connect: `ERR DB index
/// is out of range`).
fn is_missing_database(source: &redis::RedisError) -> bool {
    source
        .to_string()
        .to_ascii_lowercase()
        .contains("db index is out of range")
}

/// How a Redis server refused a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It answered "max number of clients reached": it is at its connection limit.
    ConnectionLimit,
    /// It closed the connection without a word; a server at its limit often looks like this
    /// to the client, because the error and the close race, and always over TLS: Redis drops
    /// a TLS connection beyond `maxclients` before the handshake, writing nothing.
    HungUp,
}

/// Whether a Redis error says the command is unknown or not permitted (not that it failed).
/// How a command failed, in words: a server that refused it, or one that never answered
/// (which "refused" misdescribed: the fix is the network or a busy server, not a permission).
fn command_failure(command: &str, e: &redis::RedisError) -> String {
    if e.is_timeout() {
        format!("did not answer {command} in time")
    } else if e.is_connection_dropped() || e.is_connection_refusal() || e.is_io_error() {
        format!("dropped the connection during {command}")
    } else {
        format!("refused {command}")
    }
}

pub(crate) fn is_refused(e: &redis::RedisError) -> bool {
    if e.code() == Some("NOPERM") {
        return true;
    }
    let text = e.to_string().to_ascii_lowercase();
    text.contains("unknown command") || text.contains("unknown subcommand")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spill_error_names_the_flags_that_exist() {
        use clap::CommandFactory;
        let e = VerifyError::Spill {
            dir: "/tmp/x".into(),
            source: std::io::Error::other("disk full"),
        };
        assert_eq!(
            e.to_string(),
            "cannot spill records to /tmp/x: choose another --spill-dir or raise --memory-budget-mb"
        );
        let digest = crate::cli::Cli::command()
            .find_subcommand("digest")
            .expect("digest exists")
            .clone();
        for flag in ["spill-dir", "memory-budget-mb"] {
            assert!(
                digest.get_arguments().any(|a| a.get_long() == Some(flag)),
                "--{flag} is a flag of digest"
            );
        }
    }

    #[test]
    fn a_command_without_an_answer_is_not_called_refused() {
        let command = |source: redis::RedisError| {
            VerifyError::Command {
                endpoint: "127.0.0.1:6379".into(),
                command: "INFO",
                source: Box::new(source),
            }
            .to_string()
        };
        let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        assert_eq!(
            command(timeout.into()),
            "redis at 127.0.0.1:6379 did not answer INFO in time"
        );
        let dropped = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "broken pipe");
        assert_eq!(
            command(dropped.into()),
            "redis at 127.0.0.1:6379 dropped the connection during INFO"
        );
        let refused = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError),
            "NOPERM",
        ));
        assert_eq!(command(refused), "redis at 127.0.0.1:6379 refused INFO");
    }

    fn connect_error(source: redis::RedisError) -> VerifyError {
        VerifyError::Connect {
            endpoint: "127.0.0.1:6379".into(),
            hint: "",
            source: Box::new(source),
        }
    }

    fn server_error(wire: &[u8]) -> redis::RedisError {
        let value = redis::parse_redis_value(wire).expect("a RESP error reply");
        value.extract_error().expect_err("an error reply")
    }

    #[test]
    fn a_server_at_maxclients_is_a_connection_limit_refusal() {
        let e = connect_error(server_error(b"-ERR max number of clients reached\r\n"));
        assert_eq!(e.refusal(), Some(Refusal::ConnectionLimit));
    }

    #[test]
    fn a_reset_or_eof_is_a_hang_up_but_nothing_listening_is_not() {
        for kind in [
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::BrokenPipe,
            std::io::ErrorKind::UnexpectedEof,
        ] {
            let e = connect_error(std::io::Error::new(kind, "gone").into());
            assert_eq!(e.refusal(), Some(Refusal::HungUp), "{kind:?}");
        }
        let refused = connect_error(
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into(),
        );
        assert_eq!(refused.refusal(), None);
        let other = connect_error(server_error(
            b"-WRONGPASS invalid username-password pair\r\n",
        ));
        assert_eq!(other.refusal(), None);
    }
}
