//! Durations as people write them in playbooks and flags: `90s`, `2m`, `1h30m`, `500ms`, `2d`.

use std::time::Duration;

/// Parses `1h30m`, `45s`, `500ms`, `2m`. A bare number is refused: the unit is the point.
///
/// # Errors
/// A message naming the bad part and an example.
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration: write for example \"90s\", \"2m\" or \"1h30m\"".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "\"{s}\" is not a duration: expected a number at \"{rest}\" (write for example \"90s\", \"2m\" or \"1h30m\")"
            ));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| {
            format!("\"{s}\" is too large: write at most a few hours, e.g. \"24h\"")
        })?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let too_large = || too_large_message(s);
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(too_large)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(too_large)?),
            "d" => Duration::from_secs(n.checked_mul(86_400).ok_or_else(too_large)?),
            "" => {
                return Err(format!(
                    "\"{s}\" has no unit: write \"{n}s\", \"{n}m\" or \"{n}h\""
                ));
            }
            other => {
                return Err(format!(
                    "\"{s}\" has an unknown unit \"{other}\": use ms, s, m, h or d"
                ));
            }
        };
        total = total.checked_add(part).ok_or_else(too_large)?;
        rest = &rest[unit_len..];
    }
    if total > MAX {
        return Err(too_large_message(s));
    }
    Ok(total)
}

/// The longest duration anything accepts: far beyond any sane timeout, far below what
/// overflows `Instant + Duration`.
const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

fn too_large_message(s: &str) -> String {
    format!("\"{s}\" is too large: write at most a few hours, e.g. \"24h\"")
}

/// Renders a duration compactly (`1h30m`, `2m5s`, `800ms`) for plans and summaries.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 {
        parts.push(format!("{m}m"));
    }
    if h == 0 && m == 0 && !ms.is_multiple_of(1000) && secs < 10 {
        parts.push(format!("{:.1}s", d.as_secs_f64()));
    } else if s > 0 || parts.is_empty() {
        parts.push(format!("{s}s"));
    }
    parts.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compound_durations() {
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse(" 2m5s "), Ok(Duration::from_secs(125)));
    }

    #[test]
    fn refuses_unitless_and_unknown_units() {
        assert!(parse("30").unwrap_err().contains("\"30s\""));
        assert!(parse("3w").unwrap_err().contains("unknown unit \"w\""));
        assert_eq!(parse("3d"), Ok(Duration::from_secs(3 * 86_400)));
        assert!(parse("m").unwrap_err().contains("expected a number"));
    }

    #[test]
    fn huge_durations_are_errors_not_panics() {
        for text in [
            "5124095576030431h",
            "18446744073709551615s18446744073709551615s",
            "307445734561825861m",
            "307445734561825860m",
            "9000h",
            "99999999999999999999999s",
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains("too large"), "{text}: {e}");
        }
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format(Duration::from_millis(800)), "800ms");
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_millis(2500)), "2.5s");
        assert_eq!(format(Duration::from_secs(125)), "2m5s");
    }
}
