//! Write evidence that a save cannot wipe: whether anything wrote to a server between two
//! readings, for the drain and for every check after it.
//!
//! Redis' `rdb_changes_since_last_save` drops to 0 at every save (BGSAVE, or the `save`
//! schedule Heroku Redis runs), so "the counter did not move" cannot prove "nobody wrote": a
//! write, then a save, reads like a quiet server. A reading therefore also keeps:
//! - the save evidence, `rdb_saves` (Redis >= 7.0, counted when a save starts) and
//!   `rdb_last_save_time` (set when one ends), to know a save happened in between;
//! - the calls of every command (`INFO commandstats`), which only `CONFIG RESETSTAT` or a
//!   restart resets; the write commands among them are told by `COMMAND INFO` flags. A reset
//!   is itself detected (a count that went down) and fails closed.
//!
//! Where the server hides the per-command counts or refuses `COMMAND`, the counter alone is
//! used, and a save in between fails closed: nothing can then prove that nobody wrote.
//! Measured against redis-server 7.0.15: a BGSAVE bumps `rdb_saves` at its start and leaves in
//! the counter only the writes made while it ran; commands run by scripts and inside
//! `MULTI`/`EXEC` are counted under their own names (a SET in a script or a transaction
//! shows as `set`); active expiry moves neither the counter
//! nor any command count; `CONFIG RESETSTAT` zeroes `rdb_saves`, `total_commands_processed`
//! and every command count, but not the counter nor `rdb_last_save_time`.
//!
//! [`WriteMark::parse`] and [`judge`] are pure; [`read`] is the I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use redis::Value;
use serde::{Deserialize, Serialize};

use crate::verify::VerifyOptions;
use crate::verify::conn::{ServerInfo, Session};
use crate::verify::error::{VerifyError, is_refused};
use crate::verify::url::RedisUrl;

/// What a server showed about writes at one moment. The drain's last one is journaled (with
/// the server's identity) as the mark every later check compares with. Secret-free: figures
/// and command names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteMark {
    /// `rdb_changes_since_last_save`: moves with every write, back to 0 at every save.
    pub changes: u64,
    /// `rdb_saves`: saves started since the server started (Redis >= 7.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saves: Option<u64>,
    /// `rdb_last_save_time`: Unix seconds of the last save that ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_save: Option<u64>,
    /// `total_commands_processed`: goes down only when the statistics were reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<u64>,
    /// Calls per command (`INFO commandstats`), `None` where the server hides them or refuses
    /// `COMMAND` (its write commands could not be told).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<BTreeMap<String, u64>>,
}

impl WriteMark {
    /// The mark of a journal written before upshift kept more than the counter.
    pub fn counter_only(changes: u64) -> Self {
        Self {
            changes,
            ..Self::default()
        }
    }

    /// Reads the text of `INFO` (`INFO all` for the command counts; without a `# Commandstats`
    /// section `calls` is `None`).
    pub fn parse(text: &str) -> Self {
        let mut mark = Self::default();
        for line in text.lines() {
            let line = line.trim_end();
            if line.eq_ignore_ascii_case("# commandstats") {
                mark.calls.get_or_insert_with(BTreeMap::new);
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            match name {
                "rdb_changes_since_last_save" => mark.changes = value.parse().unwrap_or(0),
                "rdb_saves" => mark.saves = value.parse().ok(),
                "rdb_last_save_time" => mark.last_save = value.parse().ok(),
                "total_commands_processed" => mark.commands = value.parse().ok(),
                _ => {
                    if let Some(command) = name.strip_prefix("cmdstat_") {
                        let calls = value
                            .split(',')
                            .find_map(|f| f.strip_prefix("calls="))
                            .and_then(|n| n.parse::<u64>().ok())
                            .unwrap_or(0);
                        mark.calls
                            .get_or_insert_with(BTreeMap::new)
                            .insert(command.to_ascii_lowercase(), calls);
                    }
                }
            }
        }
        mark
    }
}

/// What two readings say about writes between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteVerdict {
    /// Nothing wrote.
    Quiet,
    /// Something wrote; the evidence, for people (`set +1`, `write counter 5 -> 6`).
    Written(String),
    /// Nothing can prove that nobody wrote; why, for people.
    Unprovable(String),
}

/// Judges the readings `mark` (earlier) and `now` of one server. `is_write` tells a write
/// command by its `commandstats` name; it is asked only about names in `now.calls`.
///
/// With the command counts on both sides: written when a write command was called since, or,
/// with no save in between, when the counter moved; unprovable when the statistics were reset
/// in between (a count went down: a write before the reset is gone with it). Without them:
/// the counter, and unprovable if a save reset it in between.
pub fn judge(mark: &WriteMark, now: &WriteMark, is_write: impl Fn(&str) -> bool) -> WriteVerdict {
    let differ = |a: Option<u64>, b: Option<u64>| matches!((a, b), (Some(a), Some(b)) if a != b);
    let saved = differ(mark.saves, now.saves)
        || differ(mark.last_save, now.last_save)
        || now.changes < mark.changes;
    let counter_moved = !saved && now.changes != mark.changes;
    let counter = format!("write counter {} -> {}", mark.changes, now.changes);
    let (Some(before), Some(after)) = (&mark.calls, &now.calls) else {
        return if counter_moved {
            WriteVerdict::Written(counter)
        } else if saved {
            WriteVerdict::Unprovable(
                "a save reset Redis' write counter since, and the server shows no \
                 per-command counts (INFO commandstats and COMMAND INFO) to tell writes by"
                    .into(),
            )
        } else {
            WriteVerdict::Quiet
        };
    };
    let went_down = |a: Option<u64>, b: Option<u64>| matches!((a, b), (Some(a), Some(b)) if b < a);
    let reset = went_down(mark.commands, now.commands)
        || went_down(mark.saves, now.saves)
        || before
            .iter()
            .any(|(name, n)| after.get(name).copied().unwrap_or(0) < *n);
    if reset {
        return WriteVerdict::Unprovable(
            "the server's statistics were reset since (CONFIG RESETSTAT or a restart), which \
             wipes the per-command counts a write would show in"
                .into(),
        );
    }
    let mut written = String::new();
    for (name, n) in after {
        let since = n - before.get(name).copied().unwrap_or(0);
        if since > 0 && is_write(name) {
            let sep = if written.is_empty() { "" } else { ", " };
            let _ = write!(written, "{sep}{name} +{since}");
        }
    }
    if !written.is_empty() {
        WriteVerdict::Written(format!("write commands {written}"))
    } else if counter_moved {
        WriteVerdict::Written(counter)
    } else {
        WriteVerdict::Quiet
    }
}

/// Commands counted as writes whatever their flags: scripts and functions (their flags say
/// nothing of what the script does; the commands a script calls are counted too, this is a
/// second net) and `DEBUG` (its `POPULATE` and `RELOAD` change data without a write command).
/// Not `EXEC`: the commands of a transaction are counted under their own names, and upshift's
/// own reads run in one (a key's value and expiry from one instant).
const ALWAYS_WRITES: &[&str] = &[
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
    "fcall",
    "fcall_ro",
    "debug",
];

/// Which commands write, as the server describes them (`COMMAND INFO`), learnt once per name.
#[derive(Debug, Default)]
pub struct CommandClasses {
    writes: BTreeMap<String, bool>,
    /// The server refused `COMMAND`: the counts cannot be told apart, so they are not used.
    refused: bool,
}

impl CommandClasses {
    /// Whether `name` (a `commandstats` name, `container|sub` for subcommands) writes. A name
    /// not learnt yet, or one the server does not describe, counts as a write.
    pub fn is_write(&self, name: &str) -> bool {
        self.writes.get(name).copied().unwrap_or(true)
    }

    /// Takes in a `COMMAND INFO` reply for `names` (in order): a nil entry (unknown to the
    /// server) writes, as does every entry flagged `write` or listed in [`ALWAYS_WRITES`].
    fn learn(&mut self, names: &[String], reply: &Value) {
        let Value::Array(entries) = reply else {
            return;
        };
        for (name, entry) in names.iter().zip(entries) {
            let flagged = match entry {
                Value::Array(fields) => match fields.get(2) {
                    Some(Value::Array(flags) | Value::Set(flags)) => {
                        flags.iter().any(|f| flag_text(f) == Some("write"))
                    }
                    _ => true,
                },
                _ => true,
            };
            let write = flagged || ALWAYS_WRITES.contains(&name.as_str());
            self.writes.insert(name.clone(), write);
        }
    }
}

/// A flag of a `COMMAND INFO` reply as text (RESP2 sends status strings).
fn flag_text(v: &Value) -> Option<&str> {
    match v {
        Value::SimpleString(s) => Some(s),
        Value::BulkString(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

/// Reads `url`'s server: its INFO (for its identity) and its write evidence, learning into
/// `classes` the commands it has not described yet.
///
/// # Errors
/// The server cannot be reached or INFO fails. A refused `INFO all` or `COMMAND` is not an
/// error: the mark then has no command counts.
pub async fn read(
    url: &RedisUrl,
    opts: &VerifyOptions,
    classes: &mut CommandClasses,
) -> Result<(ServerInfo, WriteMark), VerifyError> {
    let session = Session::open(url, opts, 1).await?;
    read_on(&session, classes).await
}

/// [`read`] on a session already open (a scan's, which reads the evidence at its start and at
/// its end).
///
/// # Errors
/// As [`read`].
pub(crate) async fn read_on(
    session: &Session,
    classes: &mut CommandClasses,
) -> Result<(ServerInfo, WriteMark), VerifyError> {
    let mut conn = session.conn(0);
    // One INFO for the counter, the saves and the counts: a write between two readings would
    // show on one side only.
    let text: String = match redis::cmd("INFO").arg("all").query_async(&mut conn).await {
        Ok(text) => text,
        Err(e) if is_refused(&e) => redis::cmd("INFO")
            .query_async(&mut conn)
            .await
            .map_err(session.command_err("INFO"))?,
        Err(e) => return Err(session.command_err("INFO")(e)),
    };
    let info = ServerInfo::parse(&text);
    let mut mark = WriteMark::parse(&text);
    if classes.refused {
        mark.calls = None;
    } else if let Some(calls) = &mark.calls {
        let unknown: Vec<String> = calls
            .keys()
            .filter(|n| !classes.writes.contains_key(*n))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            let mut cmd = redis::cmd("COMMAND");
            cmd.arg("INFO").arg(&unknown[..]);
            match cmd.query_async::<Value>(&mut conn).await {
                Ok(reply) => classes.learn(&unknown, &reply),
                Err(e) if is_refused(&e) => {
                    classes.refused = true;
                    mark.calls = None;
                }
                Err(e) => return Err(session.command_err("COMMAND INFO")(e)),
            }
        }
    }
    Ok((info, mark))
}

#[cfg(test)]
#[path = "writemark_tests.rs"]
mod tests;
