//! The write judgement, every case: no save, a save with writes before it or after it, the
//! statistics reset, the per-command counts hidden, a journal of an older version.

use std::collections::BTreeMap;

use redis::Value;

use super::{CommandClasses, WriteMark, WriteVerdict, judge};

/// A reading: the counter, `rdb_saves`, the last save time, and the calls per command.
fn mark(changes: u64, saves: u64, last_save: u64, calls: &[(&str, u64)]) -> WriteMark {
    let calls: BTreeMap<String, u64> = calls.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect();
    WriteMark {
        changes,
        saves: Some(saves),
        last_save: Some(last_save),
        commands: Some(calls.values().sum()),
        calls: Some(calls),
    }
}

/// SET, DEL and EVAL write; the rest (upshift's own reads, the platform's pings) do not.
fn is_write(name: &str) -> bool {
    matches!(name, "set" | "del" | "eval")
}

fn hidden(mut m: WriteMark) -> WriteMark {
    m.calls = None;
    m
}

#[test]
fn no_save_and_no_write_is_quiet_whatever_we_read_meanwhile() {
    let before = mark(5, 2, 100, &[("set", 40), ("info", 3)]);
    let after = mark(
        5,
        2,
        100,
        &[("set", 40), ("info", 9), ("dump", 500), ("scan", 4)],
    );
    assert_eq!(judge(&before, &after, is_write), WriteVerdict::Quiet);
    assert_eq!(
        judge(&hidden(before), &hidden(after), is_write),
        WriteVerdict::Quiet
    );
}

#[test]
fn a_write_without_a_save_shows_in_both_the_counts_and_the_counter() {
    let before = mark(5, 2, 100, &[("set", 40), ("info", 3)]);
    let after = mark(6, 2, 100, &[("set", 41), ("info", 4)]);
    assert_eq!(
        judge(&before, &after, is_write),
        WriteVerdict::Written("write commands set +1".into())
    );
    assert_eq!(
        judge(&hidden(before), &hidden(after), is_write),
        WriteVerdict::Written("write counter 5 -> 6".into())
    );
}

#[test]
fn a_write_then_a_save_that_zeroes_the_counter_still_shows() {
    // The bug: mark 5, a stray write (6), a save (0).
    let before = mark(5, 2, 100, &[("set", 40), ("info", 3)]);
    let after = mark(0, 3, 104, &[("set", 41), ("info", 5)]);
    assert_eq!(
        judge(&before, &after, is_write),
        WriteVerdict::Written("write commands set +1".into())
    );
    // A command first seen after the mark counts in full.
    let after = mark(0, 3, 104, &[("set", 40), ("del", 2), ("info", 5)]);
    assert_eq!(
        judge(&before, &after, is_write),
        WriteVerdict::Written("write commands del +2".into())
    );
    // Without the counts nothing can tell: fail closed.
    assert!(matches!(
        judge(&hidden(before), &hidden(after), is_write),
        WriteVerdict::Unprovable(_)
    ));
}

#[test]
fn a_save_with_no_write_is_quiet_when_the_counts_show_it() {
    let before = mark(5, 2, 100, &[("set", 40), ("info", 3)]);
    // A save started before the mark and ended after it: the counter drops, no write.
    let after = mark(0, 2, 104, &[("set", 40), ("info", 6), ("bgsave", 1)]);
    assert_eq!(judge(&before, &after, is_write), WriteVerdict::Quiet);
    // Writes made while a save runs stay in the counter: a counter above 0 after a save is
    // not by itself a write after the mark; the counts decide.
    let after = mark(3, 3, 104, &[("set", 40), ("info", 6)]);
    assert_eq!(judge(&before, &after, is_write), WriteVerdict::Quiet);
}

#[test]
fn a_save_then_a_write_shows() {
    let before = mark(5, 2, 100, &[("set", 40)]);
    let after = mark(1, 3, 104, &[("set", 41)]);
    assert!(matches!(
        judge(&before, &after, is_write),
        WriteVerdict::Written(_)
    ));
    // The counter alone sees a save and cannot place the write: unprovable, not quiet.
    assert!(matches!(
        judge(&hidden(before), &hidden(after), is_write),
        WriteVerdict::Unprovable(_)
    ));
}

#[test]
fn a_save_seen_only_by_its_time_or_count_fails_closed_without_the_counts() {
    // The counter is back where it was (a write, a save, a write), only the saves tell.
    let before = hidden(mark(1, 2, 100, &[]));
    for after in [mark(1, 3, 100, &[]), mark(1, 2, 101, &[])] {
        assert!(matches!(
            judge(&before, &hidden(after), is_write),
            WriteVerdict::Unprovable(_)
        ));
    }
}

#[test]
fn a_statistics_reset_fails_closed() {
    let before = mark(5, 2, 100, &[("set", 40), ("info", 30)]);
    // RESETSTAT after a write and a save: every count restarts, `rdb_saves` too.
    let after = mark(0, 0, 104, &[("info", 2), ("config|resetstat", 1)]);
    assert!(matches!(
        judge(&before, &after, is_write),
        WriteVerdict::Unprovable(_)
    ));
    // Even when the total processed and the saves have grown back past the mark: one count
    // went down.
    let mut busy = mark(0, 2, 104, &[("info", 3000)]);
    busy.commands = Some(5000);
    assert!(matches!(
        judge(&before, &busy, is_write),
        WriteVerdict::Unprovable(_)
    ));
}

#[test]
fn counts_on_one_side_only_fall_back_to_the_counter() {
    let before = mark(5, 2, 100, &[("set", 40)]);
    let after = hidden(mark(5, 2, 100, &[("set", 41)]));
    assert_eq!(judge(&before, &after, is_write), WriteVerdict::Quiet);
    let after = hidden(mark(0, 3, 104, &[]));
    assert!(matches!(
        judge(&before, &after, is_write),
        WriteVerdict::Unprovable(_)
    ));
}

#[test]
fn a_mark_of_an_older_journal_is_the_counter_alone() {
    let before = WriteMark::counter_only(10);
    assert_eq!(
        judge(&before, &mark(10, 4, 100, &[("set", 1)]), is_write),
        WriteVerdict::Quiet
    );
    assert!(matches!(
        judge(&before, &mark(11, 4, 100, &[]), is_write),
        WriteVerdict::Written(_)
    ));
    // A lower counter is a save: the older version called that quiet, which lost writes.
    assert!(matches!(
        judge(&before, &mark(0, 4, 100, &[]), is_write),
        WriteVerdict::Unprovable(_)
    ));
    // The older record's `writes` reads back as this mark.
    let old: WriteMark = serde_json::from_str(r#"{"changes":10}"#).unwrap();
    assert_eq!(old, before);
}

#[test]
fn info_all_is_parsed() {
    let text = "# Persistence\r\nrdb_changes_since_last_save:7\r\nrdb_last_save_time:1796128983\r\nrdb_saves:2\r\n# Stats\r\ntotal_commands_processed:19\r\n# Commandstats\r\ncmdstat_set:calls=2,usec=15,usec_per_call=7.50,rejected_calls=0,failed_calls=0\r\ncmdstat_client|setname:calls=1,usec=1,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n";
    let m = WriteMark::parse(text);
    assert_eq!(m.changes, 7);
    assert_eq!(
        (m.saves, m.last_save, m.commands),
        (Some(2), Some(1_796_128_983), Some(19))
    );
    let calls = m.calls.unwrap();
    assert_eq!(calls["set"], 2);
    assert_eq!(calls["client|setname"], 1);
    // No commandstats section: no counts (not "no calls").
    let plain = WriteMark::parse("rdb_changes_since_last_save:3\r\nrdb_saves:1\r\n");
    assert_eq!(plain.calls, None);
    // An older server (no `rdb_saves`).
    assert_eq!(plain.saves, Some(1));
    assert_eq!(
        WriteMark::parse("rdb_changes_since_last_save:3\n").saves,
        None
    );
}

#[test]
fn command_info_flags_tell_the_writes() {
    let status = |s: &str| Value::SimpleString(s.into());
    let entry = |name: &str, flags: &[&str]| {
        Value::Array(vec![
            Value::BulkString(name.as_bytes().to_vec()),
            Value::Int(-3),
            Value::Array(flags.iter().map(|f| status(f)).collect()),
        ])
    };
    let names: Vec<String> = ["set", "get", "client|setname", "eval", "nosuch.cmd", "exec"]
        .map(str::to_owned)
        .to_vec();
    let reply = Value::Array(vec![
        entry("set", &["write", "denyoom"]),
        entry("get", &["readonly", "fast"]),
        entry("client|setname", &["noscript", "loading", "stale"]),
        entry("eval", &["noscript", "stale", "skip_monitor"]),
        Value::Nil,
        entry("exec", &["noscript", "loading", "stale"]),
    ]);
    let mut classes = CommandClasses::default();
    classes.learn(&names, &reply);
    let writes: Vec<bool> = names.iter().map(|n| classes.is_write(n)).collect();
    // A script and an unknown command are writes, so is a name never described; EXEC is
    // not (a transaction's commands count under their own names).
    assert_eq!(writes, [true, false, false, true, true, false]);
    assert!(classes.is_write("never.asked"));
}
