//! Unit and property tests for the window grammar and occurrence math.

use std::time::Duration;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use proptest::prelude::*;

use super::{Kind, Occurrence, Window, WindowError, first_showing};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn window(spec: &str) -> Window {
    spec.parse()
        .unwrap_or_else(|e| panic!("`{spec}` should parse: {e}"))
}

fn error(spec: &str) -> String {
    match spec.parse::<Window>() {
        Ok(w) => panic!("`{spec}` should not parse, got `{w}`"),
        Err(e) => e.to_string(),
    }
}

fn hours(n: u64) -> Duration {
    Duration::from_secs(n * 3600)
}

fn mins(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

fn occ(start: &str, end: &str) -> Occurrence {
    Occurrence {
        start: ts(start),
        end: ts(end),
    }
}

fn next(spec: &str, now: &str) -> Occurrence {
    window(spec).current_or_next(ts(now)).unwrap()
}

// ---- grammar and canonical form ----

#[test]
fn canonical_specs_print_as_written() {
    for spec in [
        "sun 02:00-04:00 Europe/Berlin",
        "daily 01:00+2h UTC",
        "sat,sun 01:00-03:00 America/New_York",
        "mon-fri 22:00+1h30m UTC",
        "sat 23:00-01:00 UTC",
        "mon,wed,thu 00:00-24:00 UTC",
        "tue 23:30+24h Asia/Kolkata",
        "2026-12-06T02:00:00+01:00/2026-12-06T04:00:00+01:00",
        "2026-12-06T02:00:00-05:30/2026-12-07T04:00:00+00:00",
    ] {
        assert_eq!(window(spec).spec(), spec);
        assert_eq!(window(spec).to_string(), spec);
    }
}

#[test]
fn loose_specs_print_canonically() {
    for (loose, canonical) in [
        ("  Sun   2:00-4:00   UTC ", "sun 02:00-04:00 UTC"),
        ("SAT,Sunday 01:00-03:00 UTC", "sat,sun 01:00-03:00 UTC"),
        ("daily 01:00+90m UTC", "daily 01:00+1h30m UTC"),
        ("daily 01:00+1H30M UTC", "daily 01:00+1h30m UTC"),
        ("daily 01:00+120m UTC", "daily 01:00+2h UTC"),
        ("mon,tue,wed 01:00-02:00 UTC", "mon-wed 01:00-02:00 UTC"),
        ("fri-mon 01:00-02:00 UTC", "mon,fri-sun 01:00-02:00 UTC"),
        ("sun,sat,sun 01:00-02:00 UTC", "sat,sun 01:00-02:00 UTC"),
        ("mon-sun 01:00-02:00 UTC", "daily 01:00-02:00 UTC"),
        ("sat 22:00-00:00 UTC", "sat 22:00-24:00 UTC"),
        (
            "sun 02:00-04:00 europe/berlin",
            "sun 02:00-04:00 Europe/Berlin",
        ),
        (
            "2026-12-06T01:00:00Z/2026-12-06T03:00:00Z",
            "2026-12-06T01:00:00+00:00/2026-12-06T03:00:00+00:00",
        ),
        (
            "2026-12-06 02:00+01:00 / 2026-12-06T04:00+01:00",
            "2026-12-06T02:00:00+01:00/2026-12-06T04:00:00+01:00",
        ),
    ] {
        let w = window(loose);
        assert_eq!(w.spec(), canonical, "from `{loose}`");
        assert_eq!(window(canonical), w, "`{canonical}` parses back");
    }
}

#[test]
fn plus_and_minus_forms_are_different_windows() {
    // `+2h` is real elapsed time, `-03:00` is the wall clock: they differ on DST days.
    assert_ne!(window("sun 01:00+2h UTC"), window("sun 01:00-03:00 UTC"));
}

#[test]
fn time_zone_is_the_spec_zone_or_the_start_offset() {
    assert_eq!(
        window("sun 02:00-04:00 Europe/Berlin")
            .time_zone()
            .iana_name(),
        Some("Europe/Berlin")
    );
    let one_off = window("2026-12-06T02:00:00+01:00/2026-12-06T04:00:00+01:00");
    assert_eq!(
        one_off.time_zone().to_offset(ts("2026-12-06T01:00:00Z")),
        jiff::tz::offset(1)
    );
}

#[test]
fn berlin_zone_comes_from_the_database() {
    let tz = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    assert_eq!(tz.iana_name(), Some("Europe/Berlin"));
}

// ---- error messages ----

#[test]
fn errors_say_what_where_and_what_to_write() {
    let cases = [
        (
            "",
            "empty maintenance window; write a weekly window such as `sun 02:00-04:00 Europe/Berlin` or a one-off range such as `2026-12-06T02:00:00+01:00/2026-12-06T04:00:00+01:00`",
        ),
        (
            "02:00-04:00 UTC",
            "missing days before `02:00-04:00`; start with the days, e.g. `daily 02:00-04:00 UTC` or `sun 02:00-04:00 UTC`",
        ),
        (
            "sunday,funday 02:00-04:00 UTC",
            "unknown day `funday`; write mon, tue, wed, thu, fri, sat, sun, lists and ranges of them or `daily`, e.g. `sat,sun 01:00-03:00 UTC` or `mon-fri 22:00-23:00 UTC`",
        ),
        (
            "mon-frx 02:00-04:00 UTC",
            "unknown day `mon-frx`; write mon, tue, wed, thu, fri, sat, sun, lists and ranges of them or `daily`, e.g. `sat,sun 01:00-03:00 UTC` or `mon-fri 22:00-23:00 UTC`",
        ),
        (
            "sat, 02:00-04:00 UTC",
            "unknown day `sat,`; write mon, tue, wed, thu, fri, sat, sun, lists and ranges of them or `daily`, e.g. `sat,sun 01:00-03:00 UTC` or `mon-fri 22:00-23:00 UTC`",
        ),
        (
            "sun",
            "missing time range after `sun`; write e.g. `sun 02:00-04:00 UTC` or `sun 01:00+2h UTC`",
        ),
        (
            "sun 02:00 UTC",
            "time range `02:00` needs a start and an end or a length; write e.g. `02:00-04:00` or `01:00+2h`",
        ),
        (
            "sun 25:00-04:00 UTC",
            "bad time `25:00`; write a 24-hour time HH:MM, e.g. `02:00` or `23:30`",
        ),
        (
            "sun 02:00-4 UTC",
            "bad time `4`; write a 24-hour time HH:MM, e.g. `02:00` or `23:30`",
        ),
        (
            "sun 02:00-04:0 UTC",
            "bad time `04:0`; write a 24-hour time HH:MM, e.g. `02:00` or `23:30`",
        ),
        (
            "sun 24:00-04:00 UTC",
            "bad time `24:00`; write a 24-hour time HH:MM, e.g. `02:00` or `23:30`",
        ),
        (
            "daily 01:00+2hours UTC",
            "bad length `2hours`; write hours and minutes such as `2h`, `90m` or `1h30m`, e.g. `daily 01:00+2h UTC`",
        ),
        (
            "daily 01:00+0m UTC",
            "bad length `0m`; write hours and minutes such as `2h`, `90m` or `1h30m`, e.g. `daily 01:00+2h UTC`",
        ),
        (
            "daily 01:00+25h UTC",
            "window length `25h` is over 24 hours; list several days instead, e.g. `sat,sun 00:00-24:00 UTC`",
        ),
        (
            "daily 02:00-02:00 UTC",
            "time range `02:00-02:00` ends when it starts; for a 24-hour window write `02:00+24h`",
        ),
        (
            "sun 02:00-04:00",
            "missing time zone after `sun 02:00-04:00`; add an IANA name, e.g. `sun 02:00-04:00 UTC` or `sun 02:00-04:00 Europe/Berlin`",
        ),
        (
            "sun 02:00-04:00 Europe/Berln",
            "unknown time zone `Europe/Berln`; use an IANA name such as `UTC`, `Europe/Berlin` or `America/New_York`",
        ),
        (
            "sun 02:00-04:00 UTC weekly",
            "unexpected `weekly` after the time zone; a weekly window is DAYS RANGE ZONE, e.g. `sun 02:00-04:00 Europe/Berlin`",
        ),
        (
            "2026-12-06T02:00:00+01:00",
            "one-off window `2026-12-06T02:00:00+01:00` needs an end; write START/END, e.g. `2026-12-06T02:00:00+01:00/2026-12-06T04:00:00+01:00`",
        ),
        (
            "2026-12-06T02:00:00/2026-12-06T04:00:00+01:00",
            "bad time `2026-12-06T02:00:00` in one-off window; write RFC 3339 with a UTC offset, e.g. `2026-12-06T02:00:00+01:00/2026-12-06T04:00:00+01:00`",
        ),
        (
            "9999-12-31T23:00:00Z/9999-12-31T23:30:00Z",
            "time `9999-12-31T23:00:00Z` in one-off window is out of range: give a time before 9999-12-30, e.g. `2026-12-06T02:00:00+01:00/2026-12-06T04:00:00+01:00`",
        ),
        (
            "2026-12-06T04:00:00+01:00/2026-12-06T02:00:00+01:00",
            "one-off window ends at `2026-12-06T02:00:00+01:00`, not after its start `2026-12-06T04:00:00+01:00`; write the start first, e.g. `2026-12-06T02:00:00+01:00/2026-12-06T04:00:00+01:00`",
        ),
    ];
    for (spec, message) in cases {
        assert_eq!(error(spec), message, "for `{spec}`");
    }
}

#[test]
fn bad_instant_keeps_the_parser_error_as_source() {
    let err = "2026-13-06T02:00:00+01:00/2026-12-06T04:00:00+01:00"
        .parse::<Window>()
        .unwrap_err();
    assert!(matches!(err, WindowError::BadInstant { .. }));
    assert!(std::error::Error::source(&err).is_some());
}

// ---- occurrences ----

#[test]
fn next_occurrence_later_this_week() {
    // Wednesday evening: the next window is sunday's.
    assert_eq!(
        next("sun 02:00-04:00 UTC", "2026-11-25T23:00:00Z"),
        occ("2026-11-29T02:00:00Z", "2026-11-29T04:00:00Z")
    );
}

#[test]
fn current_occurrence_contains_now_and_end_is_exclusive() {
    let w = window("sun 02:00-04:00 UTC");
    let this = occ("2026-11-29T02:00:00Z", "2026-11-29T04:00:00Z");
    assert_eq!(w.current_or_next(ts("2026-11-29T02:00:00Z")), Some(this));
    assert_eq!(w.current_or_next(ts("2026-11-29T03:59:59Z")), Some(this));
    assert!(w.contains(ts("2026-11-29T02:00:00Z")));
    assert!(!w.contains(ts("2026-11-29T04:00:00Z")));
    assert!(!w.contains(ts("2026-11-29T01:59:59Z")));
}

#[test]
fn next_occurrence_crosses_into_next_week() {
    assert_eq!(
        next("sun 02:00-04:00 UTC", "2026-11-29T04:00:00Z"),
        occ("2026-12-06T02:00:00Z", "2026-12-06T04:00:00Z")
    );
    // Several days: after saturday's comes sunday's, after sunday's next saturday's.
    let w = "sat,sun 01:00-03:00 America/New_York";
    assert_eq!(
        next(w, "2026-11-28T09:00:00Z"),
        occ("2026-11-29T06:00:00Z", "2026-11-29T08:00:00Z")
    );
    assert_eq!(
        next(w, "2026-11-29T08:00:00Z"),
        occ("2026-12-05T06:00:00Z", "2026-12-05T08:00:00Z")
    );
}

#[test]
fn weekday_ranges_skip_the_weekend() {
    let w = "mon-fri 22:00+90m UTC";
    // Friday 23:00 is inside friday's window; after it comes monday's.
    assert_eq!(
        next(w, "2026-11-27T23:00:00Z"),
        occ("2026-11-27T22:00:00Z", "2026-11-27T23:30:00Z")
    );
    assert_eq!(
        next(w, "2026-11-27T23:30:00Z"),
        occ("2026-11-30T22:00:00Z", "2026-11-30T23:30:00Z")
    );
}

#[test]
fn window_crossing_midnight_ends_on_the_next_day() {
    let w = window("sat 23:00-01:00 UTC");
    let sat = occ("2026-11-28T23:00:00Z", "2026-11-29T01:00:00Z");
    assert_eq!(w.current_or_next(ts("2026-11-28T12:00:00Z")), Some(sat));
    // Sunday 00:30 is still saturday's window.
    assert_eq!(w.current_or_next(ts("2026-11-29T00:30:00Z")), Some(sat));
    assert!(w.contains(ts("2026-11-29T00:59:59Z")));
    assert!(!w.contains(ts("2026-11-29T01:00:00Z")));
    assert_eq!(
        w.current_or_next(ts("2026-11-29T01:00:00Z")),
        Some(occ("2026-12-05T23:00:00Z", "2026-12-06T01:00:00Z"))
    );
    // `+2h` crosses midnight the same way.
    assert_eq!(next("sat 23:00+2h UTC", "2026-11-29T00:30:00Z"), sat);
}

#[test]
fn touching_occurrences_are_one() {
    // The whole weekend, as one occurrence.
    assert_eq!(
        next("sat,sun 00:00-24:00 UTC", "2026-11-28T12:00:00Z"),
        occ("2026-11-28T00:00:00Z", "2026-11-30T00:00:00Z")
    );
    assert_eq!(
        next("sat,sun 00:00+24h UTC", "2026-11-29T23:00:00Z"),
        occ("2026-11-28T00:00:00Z", "2026-11-30T00:00:00Z")
    );
}

#[test]
fn a_window_that_never_closes_has_no_closing_time() {
    let now = ts("2026-11-25T23:00:00Z");
    for spec in ["daily 00:00-24:00 UTC", "daily 01:00+24h UTC"] {
        let o = window(spec).current_or_next(now).unwrap();
        assert!(o.contains(now), "{spec}");
        assert!(!o.closes(), "{spec}: a made-up end {}", o.end);
        assert_eq!(o.end, Timestamp::MAX, "{spec}");
    }
    assert_eq!(
        window("daily 00:00-24:00 UTC")
            .current_or_next(now)
            .unwrap()
            .start,
        ts("2026-11-23T00:00:00Z")
    );
    // A long run of open days that does close is reported with its real end.
    let weekend = window("fri-mon 00:00-24:00 UTC")
        .current_or_next(now)
        .unwrap();
    assert!(weekend.closes());
    assert_eq!(weekend.end, ts("2026-12-01T00:00:00Z"));
}

#[test]
fn one_off_range_is_current_next_or_gone() {
    let w = window("2026-12-06T02:00:00+01:00/2026-12-06T04:00:00+01:00");
    let o = occ("2026-12-06T01:00:00Z", "2026-12-06T03:00:00Z");
    assert_eq!(w.current_or_next(ts("2026-11-25T23:00:00Z")), Some(o));
    assert!(!w.contains(ts("2026-11-25T23:00:00Z")));
    assert!(w.contains(ts("2026-12-06T01:00:00Z")));
    assert_eq!(w.current_or_next(ts("2026-12-06T02:59:59Z")), Some(o));
    assert_eq!(w.current_or_next(ts("2026-12-06T03:00:00Z")), None);
    assert!(!w.contains(ts("2026-12-06T03:00:00Z")));
}

// ---- daylight saving time ----

#[test]
fn berlin_ordinary_sunday_is_two_hours() {
    let o = next("sun 02:00-04:00 Europe/Berlin", "2026-03-21T12:00:00Z");
    assert_eq!(o, occ("2026-03-22T01:00:00Z", "2026-03-22T03:00:00Z"));
    assert_eq!(o.length(), hours(2));
}

#[test]
fn berlin_spring_forward_opens_at_the_jump_and_lasts_one_hour() {
    // 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00Z). 02:00 is skipped, so the window
    // opens at the jump (03:00 CEST) and closes at 04:00 CEST.
    let o = next("sun 02:00-04:00 Europe/Berlin", "2026-03-28T12:00:00Z");
    assert_eq!(o, occ("2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"));
    assert_eq!(o.length(), hours(1));
}

#[test]
fn berlin_fall_back_opens_at_the_first_two_oclock_and_lasts_three_hours() {
    // 2026-10-25: 03:00 CEST falls back to 02:00 CET (01:00Z). The window opens at the first
    // 02:00 (CEST, 00:00Z) and closes at 04:00 CET (03:00Z).
    let o = next("sun 02:00-04:00 Europe/Berlin", "2026-10-24T12:00:00Z");
    assert_eq!(o, occ("2026-10-25T00:00:00Z", "2026-10-25T03:00:00Z"));
    assert_eq!(o.length(), hours(3));
}

#[test]
fn berlin_times_inside_the_gap_mean_the_jump() {
    // Start inside the gap: opens at the jump, not an hour after 02:30 CET.
    let o = next("sun 02:30-03:15 Europe/Berlin", "2026-03-28T12:00:00Z");
    assert_eq!(o, occ("2026-03-29T01:00:00Z", "2026-03-29T01:15:00Z"));
    // End inside the gap: closes at the jump.
    let o = next("sun 01:30-02:30 Europe/Berlin", "2026-03-28T12:00:00Z");
    assert_eq!(o, occ("2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z"));
    // Wholly inside the gap: no window that day; the next is a week later (CEST).
    let o = next("sun 02:15-02:45 Europe/Berlin", "2026-03-28T12:00:00Z");
    assert_eq!(o, occ("2026-04-05T00:15:00Z", "2026-04-05T00:45:00Z"));
}

#[test]
fn berlin_end_in_the_fold_is_the_first_showing() {
    // 02:30 happens twice on 2026-10-25; the window closes at the first (CEST, 00:30Z).
    let o = next("sun 01:00-02:30 Europe/Berlin", "2026-10-24T12:00:00Z");
    assert_eq!(o, occ("2026-10-24T23:00:00Z", "2026-10-25T00:30:00Z"));
    assert_eq!(o.length(), mins(90));
}

#[test]
fn berlin_plus_length_is_real_elapsed_time() {
    let o = next("sun 01:00+3h Europe/Berlin", "2026-03-28T12:00:00Z");
    assert_eq!(o, occ("2026-03-29T00:00:00Z", "2026-03-29T03:00:00Z"));
    let o = next("sun 02:00+2h Europe/Berlin", "2026-10-24T12:00:00Z");
    assert_eq!(o, occ("2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z"));
}

#[test]
fn new_york_spring_forward() {
    // 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00Z).
    let o = next("sun 02:00-04:00 America/New_York", "2026-03-07T12:00:00Z");
    assert_eq!(o, occ("2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"));
    assert_eq!(o.length(), hours(1));
    let o = next("sun 01:30-02:30 America/New_York", "2026-03-07T12:00:00Z");
    assert_eq!(o, occ("2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z"));
    assert_eq!(o.length(), mins(30));
}

#[test]
fn new_york_fall_back() {
    // 2026-11-01: 02:00 EDT falls back to 01:00 EST (06:00Z); 01:00-02:00 happens twice.
    let o = next("sun 01:00-03:00 America/New_York", "2026-10-31T12:00:00Z");
    assert_eq!(o, occ("2026-11-01T05:00:00Z", "2026-11-01T08:00:00Z"));
    assert_eq!(o.length(), hours(3));
    // 02:00 is not ambiguous in New York: an ordinary two hours, in EST.
    let o = next("sun 02:00-04:00 America/New_York", "2026-10-31T12:00:00Z");
    assert_eq!(o, occ("2026-11-01T07:00:00Z", "2026-11-01T09:00:00Z"));
    assert_eq!(o.length(), hours(2));
}

#[test]
fn daily_window_across_the_change_keeps_wall_clock_times() {
    let w = window("daily 01:00-02:00 Europe/Berlin");
    assert_eq!(
        w.current_or_next(ts("2026-03-28T12:00:00Z")),
        Some(occ("2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z"))
    );
    assert_eq!(
        w.current_or_next(ts("2026-03-29T01:00:00Z")),
        Some(occ("2026-03-29T23:00:00Z", "2026-03-30T00:00:00Z"))
    );
}

// ---- serde ----

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Saved {
    window: Window,
}

#[test]
fn serialises_as_its_spec() {
    let saved = Saved {
        window: window("Sat,Sun 1:00+90m america/new_york"),
    };
    let json = serde_json::to_string(&saved).unwrap();
    assert_eq!(json, r#"{"window":"sat,sun 01:00+1h30m America/New_York"}"#);
    assert_eq!(serde_json::from_str::<Saved>(&json).unwrap(), saved);
}

#[test]
fn deserialising_a_bad_spec_explains_it() {
    let err = serde_json::from_str::<Saved>(r#"{"window":"sun 02:00-04:00 Mars/Olympus"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("unknown time zone `Mars/Olympus`"), "{err}");
}

// ---- properties ----

const ZONES: [&str; 8] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "America/Sao_Paulo",
    "Europe/London",
];
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A weekly spec in a random, non-canonical spelling.
fn weekly_spec() -> impl Strategy<Value = String> {
    let days = prop_oneof![
        Just("daily".to_owned()),
        proptest::sample::subsequence(DAYS.to_vec(), 1..=7).prop_map(|d| d.join(",")),
        (0usize..7, 0usize..7).prop_map(|(a, b)| format!("{}-{}", DAYS[a], DAYS[b])),
    ];
    let range = prop_oneof![
        (0u32..24, 0u32..60, 0u32..24, 0u32..60)
            .prop_filter("equal times", |(h, m, eh, em)| (h, m) != (eh, em))
            .prop_map(|(h, m, eh, em)| format!("{h}:{m:02}-{eh:02}:{em:02}")),
        (0u32..24, 0u32..60).prop_map(|(h, m)| format!("{h:02}:{m:02}-24:00")),
        (0u32..24, 0u32..60, 1u32..=1440).prop_map(|(h, m, len)| format!("{h:02}:{m:02}+{len}m")),
    ];
    let zone = proptest::sample::select(ZONES.to_vec());
    (days, range, zone, any::<bool>()).prop_map(|(days, range, zone, upper)| {
        let spec = format!("{days} {range} {zone}");
        if upper { spec.to_uppercase() } else { spec }
    })
}

/// A one-off spec with random offsets.
fn one_off_spec() -> impl Strategy<Value = String> {
    (now(), 1i64..=30 * 86_400, -12i32..=14, -12i32..=14).prop_map(|(start, len, so, eo)| {
        let end = start.checked_add(SignedDuration::from_secs(len)).unwrap();
        format!(
            "{}/{}",
            start.display_with_offset(jiff::tz::offset(i8::try_from(so).unwrap())),
            end.display_with_offset(jiff::tz::offset(i8::try_from(eo).unwrap()))
        )
    })
}

/// An instant between 2020 and 2035, to the second.
fn now() -> impl Strategy<Value = Timestamp> {
    (1_577_836_800i64..2_051_222_400).prop_map(|s| Timestamp::from_second(s).unwrap())
}

/// Whether any occurrence, computed day by day without merging or horizons, holds `t`.
fn naive_open(w: &Window, t: Timestamp) -> bool {
    naive_occurrences(w, t, t).iter().any(|o| o.contains(t))
}

/// Raw occurrences opening on local dates that could overlap `[from, to]`.
fn naive_occurrences(w: &Window, from: Timestamp, to: Timestamp) -> Vec<Occurrence> {
    let Kind::Weekly(weekly) = &w.kind else {
        unreachable!("weekly windows only")
    };
    let first: Date = weekly
        .tz
        .to_datetime(from)
        .date()
        .checked_sub(3.days())
        .unwrap();
    let last: Date = weekly
        .tz
        .to_datetime(to)
        .date()
        .checked_add(1.days())
        .unwrap();
    first
        .series(1.day())
        .take_while(|d| *d <= last)
        .filter_map(|d| weekly.occurrence_on(d))
        .collect()
}

/// A zone and a wall-clock time within two hours of one of its transitions (or anywhere, for
/// zones without them), to the minute.
fn near_a_transition() -> impl Strategy<Value = (TimeZone, DateTime)> {
    (
        proptest::sample::select(ZONES.to_vec()),
        now(),
        -120i64..=120,
    )
        .prop_map(|(zone, t, mins)| {
            let tz = TimeZone::get(zone).unwrap();
            let at = tz
                .following(t)
                .next()
                .map_or(t, |transition| transition.timestamp());
            let local = tz.to_datetime(at).round(jiff::Unit::Minute).unwrap();
            (tz, local.checked_add(mins.minutes()).unwrap())
        })
}

proptest! {
    /// The clock shows `dt` (or, in a gap, a later time) at the instant found, and an earlier
    /// time just before it: it is the first showing.
    #[test]
    fn first_showing_is_the_first_instant_the_clock_reaches_dt((tz, dt) in near_a_transition()) {
        let t = first_showing(&tz, dt).unwrap();
        let shown = tz.to_datetime(t);
        let just_before = tz.to_datetime(t.checked_sub(SignedDuration::from_nanos(1)).unwrap());
        prop_assert!(shown >= dt, "at {} the clock shows {} < {}", t, shown, dt);
        prop_assert!(just_before < dt, "before {} the clock already showed {}", t, just_before);
        let in_gap = matches!(
            tz.to_ambiguous_timestamp(dt).offset(),
            jiff::tz::AmbiguousOffset::Gap { .. }
        );
        prop_assert_eq!(shown == dt, !in_gap);
    }

    #[test]
    fn weekly_round_trips(spec in weekly_spec()) {
        let w: Window = spec.parse().unwrap();
        let canonical = w.spec();
        let again: Window = canonical.parse().unwrap();
        prop_assert_eq!(&again, &w);
        prop_assert_eq!(again.spec(), canonical);
    }

    #[test]
    fn one_off_round_trips(spec in one_off_spec()) {
        let w: Window = spec.parse().unwrap();
        prop_assert_eq!(w.spec(), spec.clone());
        prop_assert_eq!(spec.parse::<Window>().unwrap(), w);
    }

    #[test]
    fn current_or_next_is_the_right_occurrence(spec in weekly_spec(), now in now()) {
        let w: Window = spec.parse().unwrap();
        let occ = w.current_or_next(now).expect("a weekly window opens within two weeks");
        prop_assert!(occ.start < occ.end);
        prop_assert!(occ.contains(now) || occ.start > now);
        prop_assert_eq!(w.contains(now), occ.contains(now));
        prop_assert_eq!(naive_open(&w, now), occ.contains(now));
        if occ.start > now {
            // Nothing opens in [now, start): exactly, over the raw occurrences ...
            for raw in naive_occurrences(&w, now, occ.start) {
                prop_assert!(
                    raw.end <= now || raw.start >= occ.start,
                    "{} opens before the reported {}", raw, occ
                );
            }
            // ... and by stepping through the gap with the public API.
            let gap = occ.start.duration_since(now);
            let step = (gap / 97).max(SignedDuration::from_secs(60));
            let mut t = now;
            while t < occ.start {
                prop_assert!(!w.contains(t), "open at {} before {}", t, occ);
                t = t.checked_add(step).unwrap();
            }
            prop_assert!(w.contains(occ.start));
        } else {
            // Open now: it has been open since its start and closes at its end.
            prop_assert!(naive_open(&w, occ.start));
            if occ.closes() {
                let last = occ.end.checked_sub(SignedDuration::from_nanos(1)).unwrap();
                prop_assert!(naive_open(&w, last));
                prop_assert!(!naive_open(&w, occ.end));
            } else {
                // Never closes: open all the way to the horizon.
                let later = now.checked_add(SignedDuration::from_hours(13 * 24)).unwrap();
                prop_assert!(naive_open(&w, later));
            }
        }
    }

    #[test]
    fn one_off_is_current_next_or_gone(spec in one_off_spec(), now in now()) {
        let w: Window = spec.parse().unwrap();
        match w.current_or_next(now) {
            Some(occ) => {
                prop_assert!(occ.start < occ.end);
                prop_assert!(now < occ.end);
                prop_assert_eq!(w.contains(now), occ.start <= now);
            }
            None => prop_assert!(!w.contains(now)),
        }
    }
}
