//! Figures for people, one formatter each, so every screen spells a size, a count and a rate
//! alike (`7.9 GB`, `30,039 keys`, `8,228,547 keys/s`). Pure; a leaf any layer may use.

use indicatif::HumanCount;

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
    use super::{bytes, count, rate};

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
