//! Figures for people, one formatter each, so every screen spells a size, a count, a rate and
//! a duration alike (`7.9 GB`, `30,039 keys`, `8,228,547 keys/s`, `5d7h40m`). Pure; a leaf any
//! layer may use.

use std::fmt::Write;
use std::time::Duration;

use indicatif::HumanCount;

/// A duration for people: `800ms`, `5.3s`, `3m5s`, `1h30m`, `5d7h40m`. The three largest units
/// that are not zero, so a long wait reads `5d7h40m` rather than `127h40m39s`; below a day
/// it is the playbook's own spelling, so a timeout reads the same in a file and on screen.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    if secs < 10 && !ms.is_multiple_of(1000) {
        return format!("{:.1}s", d.as_secs_f64());
    }
    let units = [
        (secs / 86_400, "d"),
        ((secs % 86_400) / 3600, "h"),
        ((secs % 3600) / 60, "m"),
        (secs % 60, "s"),
    ];
    let first = units.iter().position(|(n, _)| *n > 0).unwrap_or(3);
    let mut out = String::new();
    for (n, unit) in &units[first..(first + 3).min(units.len())] {
        if *n > 0 {
            let _ = write!(out, "{n}{unit}");
        }
    }
    out
}

/// [`duration`] of a journal's milliseconds.
pub fn duration_ms(ms: u64) -> String {
    duration(Duration::from_millis(ms))
}

/// Bytes for people: `512 B`, `12.3 MB`, `7 GB` (powers of 1024, like Heroku's plan sizes).
pub fn bytes(n: u64) -> String {
    const KB: f64 = 1024.0;
    let f = n as f64;
    if f < KB {
        format!("{n} B")
    } else if f < KB * KB {
        format!("{:.1} KB", f / KB)
    } else if f < KB * KB * KB {
        let mb = f / (KB * KB);
        if mb.fract() == 0.0 {
            format!("{mb:.0} MB")
        } else {
            format!("{mb:.1} MB")
        }
    } else {
        let gb = f / (KB * KB * KB);
        if gb.fract() == 0.0 {
            format!("{gb:.0} GB")
        } else {
            format!("{gb:.1} GB")
        }
    }
}

/// A count with thousands separators: `30,039`.
pub fn count(n: u64) -> String {
    HumanCount(n).to_string()
}

/// A rate per second, rounded, with separators: `8,228,547 keys/s`.
pub fn rate(per_second: f64, what: &str) -> String {
    let n = if per_second.is_finite() && per_second > 0.0 {
        // Saturating: rates are far below u64::MAX; the cast only drops the fraction.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = per_second.round() as u64;
        n
    } else {
        0
    };
    format!("{} {what}/s", count(n))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{bytes, count, duration, rate};

    #[test]
    fn durations_read_alike_everywhere() {
        assert_eq!(duration(Duration::ZERO), "0s");
        assert_eq!(duration(Duration::from_millis(800)), "800ms");
        assert_eq!(duration(Duration::from_millis(5300)), "5.3s");
        assert_eq!(duration(Duration::from_secs(4)), "4s");
        assert_eq!(duration(Duration::from_secs(185)), "3m5s");
        assert_eq!(duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(duration(Duration::from_secs(3605)), "1h5s");
        // 127h40m39s: the seconds no longer matter.
        assert_eq!(
            duration(Duration::from_secs(127 * 3600 + 40 * 60 + 39)),
            "5d7h40m"
        );
        assert_eq!(duration(Duration::from_secs(86_400)), "1d");
        // Below a day, the playbook's spelling.
        for secs in [1, 59, 61, 3599, 7322, 86_399] {
            let d = Duration::from_secs(secs);
            assert_eq!(duration(d), crate::playbook::duration::format(d), "{secs}");
        }
    }

    #[test]
    fn sizes_counts_and_rates_read_alike_everywhere() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(25 * 1024 * 1024), "25 MB");
        assert_eq!(bytes(84_401_356_800), "78.6 GB");
        assert_eq!(count(30_039), "30,039");
        assert_eq!(count(7), "7");
        assert_eq!(rate(8_228_547.4, "keys"), "8,228,547 keys/s");
        assert_eq!(rate(f64::NAN, "keys"), "0 keys/s");
    }
}
