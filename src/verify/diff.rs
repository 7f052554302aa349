//! The merge-join of two sorted record streams into named differences. Pure.

use std::io::{self, Write};

use serde::Serialize;

use crate::verify::record::{Expiry, KeyKind, Record};

/// How one key differs between before (the reference) and after (the live database).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DifferenceKind {
    /// In before, absent after, and its expiry had not passed.
    Missing,
    /// Absent before, present after.
    Extra,
    /// Present on both sides with different types.
    TypeChanged {
        /// Type before.
        before: KeyKind,
        /// Type after.
        after: KeyKind,
    },
    /// Same type, different value.
    ValueChanged,
    /// Same value, different expiry.
    TtlChanged {
        /// Absolute expiry before (Unix ms), `None` for no TTL.
        before_ms: Option<i64>,
        /// Absolute expiry after (Unix ms), `None` for no TTL.
        after_ms: Option<i64>,
    },
    /// In before, absent after, but its expiry had passed when the after-scan ended: Redis
    /// deleted it, nothing was lost. Reported, not a failure.
    ExpiredInWindow {
        /// When it expired (Unix ms).
        expired_at_ms: i64,
    },
}

impl DifferenceKind {
    /// A short label for tables.
    pub const fn label(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Extra => "extra",
            Self::TypeChanged { .. } => "type changed",
            Self::ValueChanged => "value changed",
            Self::TtlChanged { .. } => "ttl changed",
            Self::ExpiredInWindow { .. } => "expired in window",
        }
    }

    /// Whether this difference means the data is not the same (expiry in the window is not).
    pub const fn is_failure(&self) -> bool {
        !matches!(self, Self::ExpiredInWindow { .. })
    }
}

/// One named difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Difference {
    // People see `crate::printable::key(&key_bytes)`, never `key`: it may hold control
    // characters (an ESC sequence in a key name would reach the terminal).
    /// The key as text: exact when the key is UTF-8; bytes that are not UTF-8 are replaced by
    /// U+FFFD, so two binary keys can share it (`key_base64` is exact). It may hold control
    /// characters: escape it before printing it.
    pub key: String,
    /// The key's exact bytes, standard base64 with padding.
    #[serde(rename = "key_base64", serialize_with = "as_base64")]
    #[schemars(with = "String")]
    pub key_bytes: Vec<u8>,
    /// What differs.
    #[serde(flatten)]
    pub kind: DifferenceKind,
}

fn as_base64<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::printable::base64(bytes))
}

/// Counts per kind of difference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DiffCounts {
    /// Keys missing after.
    pub missing: u64,
    /// Keys only after.
    pub extra: u64,
    /// Keys whose type changed.
    pub type_changed: u64,
    /// Keys whose value changed.
    pub value_changed: u64,
    /// Keys whose expiry changed.
    pub ttl_changed: u64,
    /// Keys that expired between the scans.
    pub expired_in_window: u64,
}

impl DiffCounts {
    fn count(&mut self, kind: &DifferenceKind) {
        let slot = match kind {
            DifferenceKind::Missing => &mut self.missing,
            DifferenceKind::Extra => &mut self.extra,
            DifferenceKind::TypeChanged { .. } => &mut self.type_changed,
            DifferenceKind::ValueChanged => &mut self.value_changed,
            DifferenceKind::TtlChanged { .. } => &mut self.ttl_changed,
            DifferenceKind::ExpiredInWindow { .. } => &mut self.expired_in_window,
        };
        *slot += 1;
    }

    /// Differences that mean the data is not equal.
    pub fn failures(&self) -> u64 {
        self.missing + self.extra + self.type_changed + self.value_changed + self.ttl_changed
    }
}

/// The outcome of a comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DiffReport {
    /// Keys in the reference (before).
    pub before_keys: u64,
    /// Keys in the live database (after).
    pub after_keys: u64,
    /// Counts of every difference, listed or not.
    pub counts: DiffCounts,
    /// Named differences in key order, at most `max_listed` of them.
    pub differences: Vec<Difference>,
    /// Whether more differences were found than listed.
    pub truncated: bool,
}

impl DiffReport {
    /// True when the data is the same (keys that expired in the window do not count).
    pub fn is_equal(&self) -> bool {
        self.counts.failures() == 0
    }
}

/// Compares two ascending, deduplicated record streams. `after_scan_end_ms` is the server time
/// when the after-scan ended: a key missing after whose expiry is not later than that (within
/// its tolerance) expired in the window. At most `max_listed` differences are kept by name.
///
/// # Errors
/// Reading either stream failed (spill or snapshot file).
pub fn merge_join(
    before: impl Iterator<Item = io::Result<Record>>,
    after: impl Iterator<Item = io::Result<Record>>,
    after_scan_end_ms: i64,
    max_listed: usize,
) -> io::Result<DiffReport> {
    let mut report = DiffReport {
        before_keys: 0,
        after_keys: 0,
        counts: DiffCounts::default(),
        differences: Vec::new(),
        truncated: false,
    };
    let mut before = before.peekable();
    let mut after = after.peekable();
    let note = |report: &mut DiffReport, key: &[u8], kind: DifferenceKind| {
        report.counts.count(&kind);
        if report.differences.len() < max_listed {
            report.differences.push(Difference {
                key: String::from_utf8_lossy(key).into_owned(),
                key_bytes: key.to_vec(),
                kind,
            });
        } else {
            report.truncated = true;
        }
    };
    loop {
        let order = match (before.peek(), after.peek()) {
            (None, None) => break,
            (Some(Err(_)), _) => return Err(before.next().expect("peeked").unwrap_err()),
            (_, Some(Err(_))) => return Err(after.next().expect("peeked").unwrap_err()),
            (Some(Ok(_)), None) => std::cmp::Ordering::Less,
            (None, Some(Ok(_))) => std::cmp::Ordering::Greater,
            (Some(Ok(b)), Some(Ok(a))) => b.key.cmp(&a.key),
        };
        match order {
            std::cmp::Ordering::Less => {
                let b = before.next().expect("peeked")?;
                report.before_keys += 1;
                let kind = match b.expiry {
                    Expiry::At {
                        at_ms,
                        tolerance_ms,
                    } if at_ms - i64::from(tolerance_ms) <= after_scan_end_ms => {
                        DifferenceKind::ExpiredInWindow {
                            expired_at_ms: at_ms,
                        }
                    }
                    _ => DifferenceKind::Missing,
                };
                note(&mut report, &b.key, kind);
            }
            std::cmp::Ordering::Greater => {
                let a = after.next().expect("peeked")?;
                report.after_keys += 1;
                note(&mut report, &a.key, DifferenceKind::Extra);
            }
            std::cmp::Ordering::Equal => {
                let b = before.next().expect("peeked")?;
                let a = after.next().expect("peeked")?;
                report.before_keys += 1;
                report.after_keys += 1;
                if let Some(kind) = compare(&b, &a) {
                    note(&mut report, &b.key, kind);
                }
            }
        }
    }
    Ok(report)
}

/// The difference between two records of the same key, the most fundamental one first.
pub fn compare(before: &Record, after: &Record) -> Option<DifferenceKind> {
    if before.kind != after.kind {
        Some(DifferenceKind::TypeChanged {
            before: before.kind,
            after: after.kind,
        })
    } else if before.value != after.value {
        Some(DifferenceKind::ValueChanged)
    } else if !before.expiry.same_as(after.expiry) {
        Some(DifferenceKind::TtlChanged {
            before_ms: before.expiry.at_ms(),
            after_ms: after.expiry.at_ms(),
        })
    } else {
        None
    }
}

/// Writes the differences as lines for people, one key each (escaped with
/// [`crate::printable::key`]); kept here so the CLI and tests render differences alike.
///
/// # Errors
/// The writer fails.
pub fn write_differences(out: &mut dyn Write, report: &DiffReport) -> std::io::Result<()> {
    for d in &report.differences {
        let detail = match d.kind {
            DifferenceKind::TypeChanged { before, after } => format!(" ({before} -> {after})"),
            DifferenceKind::TtlChanged {
                before_ms,
                after_ms,
            } => format!(" ({} -> {})", fmt_expiry(before_ms), fmt_expiry(after_ms)),
            DifferenceKind::ExpiredInWindow { expired_at_ms } => {
                format!(" (expired at {expired_at_ms} ms)")
            }
            _ => String::new(),
        };
        writeln!(
            out,
            "{:<18} {}{detail}",
            d.kind.label(),
            crate::printable::key(&d.key_bytes)
        )?;
    }
    if report.truncated {
        writeln!(
            out,
            "… {} more differences not listed",
            report.counts.failures() + report.counts.expired_in_window
                - report.differences.len() as u64
        )?;
    }
    Ok(())
}

fn fmt_expiry(ms: Option<i64>) -> String {
    ms.map_or_else(|| "no ttl".to_owned(), |m| format!("{m} ms"))
}

#[cfg(test)]
mod tests {
    use super::{DifferenceKind, merge_join};
    use crate::verify::record::{Expiry, KeyKind, Record};

    fn rec(key: &str, kind: KeyKind, value: u128, expiry: Expiry) -> Record {
        Record {
            key: key.as_bytes().to_vec(),
            kind,
            value,
            expiry,
        }
    }

    fn ok(v: Vec<Record>) -> impl Iterator<Item = std::io::Result<Record>> {
        v.into_iter().map(Ok)
    }

    #[test]
    fn every_kind_is_named() {
        let s = KeyKind::String;
        let before = vec![
            rec("a-same", s, 1, Expiry::Never),
            rec("b-missing", s, 1, Expiry::Never),
            rec("c-expired", s, 1, Expiry::exact(900)),
            rec("d-type", s, 1, Expiry::Never),
            rec("e-value", s, 1, Expiry::Never),
            rec("f-ttl", s, 1, Expiry::exact(5_000)),
            rec("g-missing-ttl", s, 1, Expiry::exact(5_000)),
        ];
        let after = vec![
            rec("a-same", s, 1, Expiry::Never),
            rec("d-type", KeyKind::Hash, 1, Expiry::Never),
            rec("e-value", s, 2, Expiry::Never),
            rec("f-ttl", s, 1, Expiry::exact(5_001)),
            rec("h-extra", s, 1, Expiry::Never),
        ];
        let report = merge_join(ok(before), ok(after), 1_000, 100).unwrap();
        let named: Vec<(&str, DifferenceKind)> = report
            .differences
            .iter()
            .map(|d| (d.key.as_str(), d.kind))
            .collect();
        assert_eq!(
            named,
            vec![
                ("b-missing", DifferenceKind::Missing),
                (
                    "c-expired",
                    DifferenceKind::ExpiredInWindow { expired_at_ms: 900 }
                ),
                (
                    "d-type",
                    DifferenceKind::TypeChanged {
                        before: KeyKind::String,
                        after: KeyKind::Hash
                    }
                ),
                ("e-value", DifferenceKind::ValueChanged),
                (
                    "f-ttl",
                    DifferenceKind::TtlChanged {
                        before_ms: Some(5_000),
                        after_ms: Some(5_001)
                    }
                ),
                ("g-missing-ttl", DifferenceKind::Missing),
                ("h-extra", DifferenceKind::Extra),
            ]
        );
        assert_eq!(report.counts.failures(), 6);
        assert_eq!(report.counts.expired_in_window, 1);
        assert!(!report.is_equal());
        assert_eq!((report.before_keys, report.after_keys), (7, 5));
    }

    #[test]
    fn equal_streams_and_listing_cap() {
        let v: Vec<Record> = (0..10)
            .map(|i| rec(&format!("k{i}"), KeyKind::Set, i, Expiry::Never))
            .collect();
        let same = merge_join(ok(v.clone()), ok(v.clone()), 0, 3).unwrap();
        assert!(same.is_equal());
        assert!(same.differences.is_empty());
        let none = merge_join(ok(v), ok(Vec::new()), 0, 3).unwrap();
        assert_eq!(none.counts.missing, 10);
        assert_eq!(none.differences.len(), 3);
        assert!(none.truncated);
    }
}
