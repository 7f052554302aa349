//! Maintenance windows for unattended runs: the `--window` grammar and the pure time math.
//!
//! Nothing here reads the clock: "now" is always passed in. The only outside state consulted is
//! the time zone database (through [`jiff::tz::TimeZone::get`]) while a spec is parsed.
//!
//! # Grammar
//!
//! ```text
//! window   = weekly | one-off
//! weekly   = days SP range SP zone
//! days     = "daily" | day-item *("," day-item)
//! day-item = day | day "-" day          ; "fri-mon" wraps round the week
//! day      = "mon" | "tue" | "wed" | "thu" | "fri" | "sat" | "sun"   ; or the full name
//! range    = time "-" end-time          ; wall-clock start and end
//!          | time "+" length            ; wall-clock start, real elapsed length
//! time     = H:MM | HH:MM               ; 24-hour clock, 00:00 to 23:59
//! end-time = time | "24:00"             ; at or before the start means the next day
//! length   = N "h" [N "m"] | N "m"      ; more than 0, at most 24h
//! zone     = IANA name                  ; "UTC", "Europe/Berlin", ...
//! one-off  = RFC 3339 "/" RFC 3339      ; with a UTC offset, e.g. 2026-12-06T02:00:00+01:00
//! ```
//!
//! Days and zone names are case-insensitive; whitespace between the three parts of a weekly
//! window is free. The day names the day the window *opens* on: `sat 23:00-01:00 UTC` opens on
//! saturday and closes on sunday. [`Window::spec`] prints the canonical form (lower-case days,
//! runs of three or more days as ranges, zero-padded times, lengths as `1h30m`, the zone's
//! database name), which parses back to an equal window.
//!
//! # Daylight saving time
//!
//! Window boundaries follow the wall clock of the zone: a window **opens the first time the
//! clock shows its start** and a `START-END` window **closes the first time the clock shows its
//! end**. Concretely:
//!
//! * a time the clock shows twice (fall-back) means the first of the two instants, which is
//!   jiff's [`Disambiguation::Compatible`](jiff::tz::Disambiguation::Compatible) (and RFC 5545's
//!   rule);
//! * a time the clock skips (spring-forward) means the instant the clock jumps over it. For a
//!   time at the very start of the gap (`02:00` in Europe/Berlin) that is again what
//!   `Compatible` gives; for a time inside the gap (`02:30`) it is the jump itself, not
//!   `Compatible`'s one-hour-later instant, so a window never closes later than the clock says.
//!
//! So `sun 02:00-04:00 Europe/Berlin` lasts 1h on the spring-forward sunday (03:00-04:00 CEST)
//! and 3h on the fall-back sunday (02:00 CEST to 04:00 CET): occurrence lengths are real elapsed
//! time. A `START+LENGTH` window always lasts exactly `LENGTH` of real time. A `START-END`
//! window lying wholly inside a skipped hour does not happen that day.
//!
//! Occurrences that overlap or touch (`sat,sun 00:00-24:00`) are one occurrence. A window that
//! never closes (`daily 00:00-24:00`, `daily 01:00+24h UTC`) is one occurrence that ends at
//! [`Timestamp::MAX`] ([`Occurrence::closes`] is false): it has no closing time to report.

mod cutoff;
mod error;
pub mod gate;

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::fmt::temporal::{Pieces, PiecesOffset};
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use jiff::{SignedDuration, Timestamp, ToSpan};

pub use self::cutoff::{
    CutoffVerdict, Estimate, EstimateSource, check_cutoff, format_duration, overrun,
};
pub use self::error::WindowError;

/// A spec to copy from, quoted in the error messages.
const EXAMPLE: &str = "`sun 02:00-04:00 Europe/Berlin`";
/// A one-off spec to copy from.
const ONE_OFF_EXAMPLE: &str = "`2026-12-06T02:00:00+01:00/2026-12-06T04:00:00+01:00`";
/// The longest weekly window; longer ones are written as several days.
const MAX_LENGTH: SignedDuration = SignedDuration::from_hours(24);
/// Local dates before today that may hold an occurrence still open now (one is enough for a
/// 24h window; two leaves room for daylight-saving shifts).
const LOOKBACK_DAYS: i32 = 2;
/// Local dates after today searched for the next occurrence: a week, plus a week more when the
/// one occurrence of a single-day window falls in a skipped hour.
const LOOKAHEAD_DAYS: i32 = 15;

/// A maintenance window: weekly in a time zone, or one range of instants.
///
/// Parse with [`str::parse`]; print with [`Window::spec`] or `Display` (the same canonical
/// string). Serialises as that string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Weekly(Weekly),
    OneOff(OneOff),
}

/// `DAYS START-END ZONE` or `DAYS START+LENGTH ZONE`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Weekly {
    days: Days,
    start: Time,
    end: End,
    /// The zone's database name, as printed by `spec`.
    zone: String,
    tz: TimeZone,
}

/// How a weekly window closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// At this wall-clock time: the same day if after the start, else the next day.
    Clock(Time),
    /// After this much real time.
    After(SignedDuration),
}

/// `START/END`, keeping each bound's offset for display.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OneOff {
    start: Timestamp,
    start_offset: Offset,
    end: Timestamp,
    end_offset: Offset,
}

/// A set of weekdays, bit 0 = monday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Days(u8);

/// One concrete opening of a window: `[start, end)`, `start < end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Occurrence {
    /// The first instant inside the window.
    pub start: Timestamp,
    /// The first instant after the window.
    pub end: Timestamp,
}

impl Occurrence {
    /// Whether `now` is inside `[start, end)`.
    pub fn contains(&self, now: Timestamp) -> bool {
        self.start <= now && now < self.end
    }

    /// Whether the occurrence ever closes. A window open every day all day has one occurrence
    /// with no end ([`Timestamp::MAX`]): no closing time is reported for it, since any would be
    /// made up (the search horizon).
    pub fn closes(&self) -> bool {
        self.end != Timestamp::MAX
    }

    /// The real elapsed length of this occurrence (what [`format_duration`] prints).
    pub fn length(&self) -> std::time::Duration {
        std::time::Duration::try_from(self.end.duration_since(self.start))
            .unwrap_or(std::time::Duration::ZERO)
    }
}

impl fmt::Display for Occurrence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.start, self.end)
    }
}

impl Window {
    /// The canonical spec, e.g. `sat,sun 01:00-03:00 America/New_York`.
    pub fn spec(&self) -> String {
        self.to_string()
    }

    /// The zone the window is written in (a one-off range: the start's fixed offset), for
    /// showing occurrences in local time.
    pub fn time_zone(&self) -> TimeZone {
        match &self.kind {
            Kind::Weekly(w) => w.tz.clone(),
            Kind::OneOff(o) => TimeZone::fixed(o.start_offset),
        }
    }

    /// The occurrence containing `now`, or else the next one; `None` once a one-off range has
    /// passed (or, for a weekly window, if none opens in the next two weeks, which only a
    /// window wholly inside skipped hours could do).
    pub fn current_or_next(&self, now: Timestamp) -> Option<Occurrence> {
        match &self.kind {
            Kind::OneOff(o) => (now < o.end).then_some(Occurrence {
                start: o.start,
                end: o.end,
            }),
            Kind::Weekly(w) => w.current_or_next(now),
        }
    }

    /// Whether the window is open at `now`.
    pub fn contains(&self, now: Timestamp) -> bool {
        self.current_or_next(now)
            .is_some_and(|occ| occ.contains(now))
    }
}

impl Weekly {
    fn current_or_next(&self, now: Timestamp) -> Option<Occurrence> {
        let today = self.tz.to_datetime(now).date();
        let mut raw: Vec<Occurrence> = (-LOOKBACK_DAYS..=LOOKAHEAD_DAYS)
            .filter_map(|k| today.checked_add(k.days()).ok())
            .filter_map(|date| self.occurrence_on(date))
            .collect();
        // Starts rise with the date; sorting guards zones that skipped a whole day.
        raw.sort_by_key(|occ| occ.start);
        let raw_last_start = raw.last().map(|occ| occ.start);
        let mut merged: Vec<Occurrence> = Vec::with_capacity(raw.len());
        for occ in raw {
            match merged.last_mut() {
                Some(last) if occ.start <= last.end => last.end = last.end.max(occ.end),
                _ => merged.push(occ),
            }
        }
        // A run of touching occurrences that reaches the last date searched and spans more
        // than a week never closes (every day is open all day): its end is not the horizon.
        merged
            .into_iter()
            .find(|occ| now < occ.end)
            .map(|occ| match raw_last_start {
                Some(last)
                    if occ.start <= last
                        && occ.end.duration_since(occ.start)
                            > SignedDuration::from_hours(7 * 24) =>
                {
                    Occurrence {
                        start: occ.start,
                        end: Timestamp::MAX,
                    }
                }
                _ => occ,
            })
    }

    /// The occurrence opening on the local `date`, if the window opens that day.
    fn occurrence_on(&self, date: Date) -> Option<Occurrence> {
        if !self.days.contains(date.weekday()) {
            return None;
        }
        let start = first_showing(&self.tz, date.to_datetime(self.start))?;
        let end = match self.end {
            End::Clock(time) => {
                let end_date = if time <= self.start {
                    date.tomorrow().ok()?
                } else {
                    date
                };
                first_showing(&self.tz, end_date.to_datetime(time))?
            }
            End::After(length) => start.checked_add(length).ok()?,
        };
        (start < end).then_some(Occurrence { start, end })
    }
}

/// The first instant the wall clock of `tz` shows `dt`, or, when the clock skips `dt`, the
/// instant it jumps over it. `None` only at the edge of jiff's range.
fn first_showing(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok(),
        // The earlier instant: what `Disambiguation::Compatible` picks for a fold.
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(dt).ok(),
        AmbiguousOffset::Gap { before, .. } => {
            // With the old offset `dt` lands at or after the jump; the transition at or before
            // that instant is the jump itself.
            let past = before.to_timestamp(dt).ok()?;
            let probe = past.checked_add(SignedDuration::from_nanos(1)).ok()?;
            Some(
                tz.preceding(probe)
                    .next()
                    .map_or(past, |transition| transition.timestamp()),
            )
        }
    }
}

impl Days {
    const ALL: Days = Days(0b111_1111);
    const NAMES: [&'static str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    const FULL_NAMES: [&'static str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];

    fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.to_monday_zero_offset()) != 0
    }

    fn has(self, index: usize) -> bool {
        self.0 & (1 << index) != 0
    }

    /// The monday-zero index of a day name.
    fn index(name: &str) -> Option<usize> {
        let name = name.to_ascii_lowercase();
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .or_else(|| Self::FULL_NAMES.iter().position(|n| *n == name))
    }

    fn parse(token: &str) -> Result<Days, WindowError> {
        let unknown = |t: &str| WindowError::UnknownDay {
            token: t.to_owned(),
        };
        if token.eq_ignore_ascii_case("daily") {
            return Ok(Days::ALL);
        }
        let mut bits = 0u8;
        for item in token.split(',') {
            if item.is_empty() {
                // `sat,,sun` or `sat,`: the item itself would read as nothing.
                return Err(unknown(token));
            }
            match item.split_once('-') {
                Some((from, to)) => {
                    let from = Days::index(from).ok_or_else(|| unknown(item))?;
                    let to = Days::index(to).ok_or_else(|| unknown(item))?;
                    // `fri-mon` wraps round the week.
                    let mut day = from;
                    loop {
                        bits |= 1 << day;
                        if day == to {
                            break;
                        }
                        day = (day + 1) % 7;
                    }
                }
                None => bits |= 1 << Days::index(item).ok_or_else(|| unknown(item))?,
            }
        }
        Ok(Days(bits))
    }
}

impl fmt::Display for Days {
    /// `daily`, else mon-first, runs of three or more days as ranges: `mon-fri`, `sat,sun`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Days::ALL {
            return f.write_str("daily");
        }
        let mut parts = Vec::new();
        let mut day = 0;
        while day < 7 {
            if !self.has(day) {
                day += 1;
                continue;
            }
            let first = day;
            while day + 1 < 7 && self.has(day + 1) {
                day += 1;
            }
            match day - first {
                0 => parts.push(Days::NAMES[first].to_owned()),
                1 => {
                    parts.push(Days::NAMES[first].to_owned());
                    parts.push(Days::NAMES[day].to_owned());
                }
                _ => parts.push(format!("{}-{}", Days::NAMES[first], Days::NAMES[day])),
            }
            day += 1;
        }
        f.write_str(&parts.join(","))
    }
}

/// `H:MM` or `HH:MM`, 00:00 to 23:59; `24:00` too when `end` (returned as midnight).
fn parse_time(token: &str, end: bool) -> Result<Time, WindowError> {
    let bad = || WindowError::BadTime {
        token: token.to_owned(),
    };
    let (hour, minute) = token.split_once(':').ok_or_else(bad)?;
    let digits = |s: &str, max_len: usize| {
        !s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(hour, 2) || !digits(minute, 2) || minute.len() != 2 {
        return Err(bad());
    }
    let hour: i8 = hour.parse().map_err(|_| bad())?;
    let minute: i8 = minute.parse().map_err(|_| bad())?;
    if end && hour == 24 && minute == 0 {
        return Ok(Time::midnight());
    }
    Time::new(hour, minute, 0, 0).map_err(|_| bad())
}

/// `2h`, `90m`, `1h30m`: more than zero, at most 24 hours.
fn parse_length(token: &str) -> Result<SignedDuration, WindowError> {
    let bad = || WindowError::BadLength {
        token: token.to_owned(),
    };
    let lower = token.to_ascii_lowercase();
    let (hours, rest) = match lower.split_once('h') {
        Some((hours, rest)) => (Some(hours), rest),
        None => (None, lower.as_str()),
    };
    let minutes = match rest {
        "" => None,
        rest => Some(rest.strip_suffix('m').ok_or_else(bad)?),
    };
    if hours.is_none() && minutes.is_none() {
        return Err(bad());
    }
    let number = |s: Option<&str>| -> Result<i64, WindowError> {
        match s {
            None => Ok(0),
            Some(s) if !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse().map_err(|_| bad())
            }
            Some(_) => Err(bad()),
        }
    };
    let total = SignedDuration::from_mins(number(hours)? * 60 + number(minutes)?);
    if total.is_zero() {
        return Err(bad());
    }
    if total > MAX_LENGTH {
        return Err(WindowError::TooLong {
            token: token.to_owned(),
        });
    }
    Ok(total)
}

/// `1h30m`, `2h`, `45m`.
fn display_length(length: SignedDuration) -> String {
    let minutes = length.as_mins();
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h{m}m"),
    }
}

fn parse_zone(token: &str) -> Result<(String, TimeZone), WindowError> {
    match TimeZone::get(token) {
        Ok(tz) => {
            let zone = tz.iana_name().unwrap_or(token).to_owned();
            Ok((zone, tz))
        }
        Err(_) if jiff::tz::db().is_definitively_empty() => Err(WindowError::NoTimeZoneDatabase {
            token: token.to_owned(),
        }),
        Err(_) => Err(WindowError::UnknownTimeZone {
            token: token.to_owned(),
        }),
    }
}

fn parse_weekly(spec: &str) -> Result<Weekly, WindowError> {
    let mut tokens = spec.split_whitespace();
    let days_token = tokens.next().ok_or(WindowError::Empty)?;
    if days_token.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(WindowError::MissingDays {
            token: days_token.to_owned(),
        });
    }
    let days = Days::parse(days_token)?;
    let range = tokens.next().ok_or_else(|| WindowError::MissingRange {
        after: days_token.to_owned(),
    })?;
    let (start, end) = if let Some((start, end)) = range.split_once('-') {
        let start_time = parse_time(start, false)?;
        let end_time = parse_time(end, true)?;
        let whole_day = start_time == Time::midnight() && end.starts_with("24");
        if end_time == start_time && !whole_day {
            return Err(WindowError::EmptyRange {
                token: range.to_owned(),
                start: start.to_owned(),
            });
        }
        (start_time, End::Clock(end_time))
    } else if let Some((start, length)) = range.split_once('+') {
        (parse_time(start, false)?, End::After(parse_length(length)?))
    } else {
        return Err(WindowError::BadRange {
            token: range.to_owned(),
        });
    };
    let zone_token = tokens.next().ok_or_else(|| WindowError::MissingTimeZone {
        after: format!("{days_token} {range}"),
    })?;
    let (zone, tz) = parse_zone(zone_token)?;
    if let Some(extra) = tokens.next() {
        return Err(WindowError::Unexpected {
            token: extra.to_owned(),
        });
    }
    Ok(Weekly {
        days,
        start,
        end,
        zone,
        tz,
    })
}

/// One RFC 3339 bound with its offset.
fn parse_instant(token: &str) -> Result<(Timestamp, Offset), WindowError> {
    let bad = |source| WindowError::BadInstant {
        token: token.to_owned(),
        source,
    };
    let pieces = Pieces::parse(token);
    let timestamp: Timestamp = token.parse().map_err(|source| {
        // Well-formed, with an offset, and still no timestamp: beyond the range of times.
        if pieces.as_ref().is_ok_and(|p| p.offset().is_some()) {
            WindowError::OutOfRange {
                token: token.to_owned(),
                source,
            }
        } else {
            bad(source)
        }
    })?;
    let offset = match pieces.map_err(bad)?.offset() {
        Some(PiecesOffset::Numeric(numeric)) => numeric.offset(),
        // `Z`, and `-00:00` (offset unknown) which jiff reads as UTC too.
        _ => Offset::UTC,
    };
    Ok((timestamp, offset))
}

fn parse_one_off(spec: &str) -> Result<OneOff, WindowError> {
    let (start_token, end_token) = spec
        .split_once('/')
        .ok_or_else(|| WindowError::MissingEnd {
            token: spec.to_owned(),
        })?;
    let (start_token, end_token) = (start_token.trim(), end_token.trim());
    let (start, start_offset) = parse_instant(start_token)?;
    let (end, end_offset) = parse_instant(end_token)?;
    if end <= start {
        return Err(WindowError::EndsBeforeStart {
            start: start_token.to_owned(),
            end: end_token.to_owned(),
        });
    }
    Ok(OneOff {
        start,
        start_offset,
        end,
        end_offset,
    })
}

/// Whether a spec is a one-off range: it starts with a year (`2026-`).
fn looks_like_one_off(spec: &str) -> bool {
    let bytes = spec.as_bytes();
    bytes.len() > 4 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-'
}

impl FromStr for Window {
    type Err = WindowError;

    /// Parses a `--window` spec (see the module docs for the grammar).
    ///
    /// # Errors
    ///
    /// A [`WindowError`] naming the offending token and an example to write instead.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(WindowError::Empty);
        }
        let kind = if looks_like_one_off(spec) {
            Kind::OneOff(parse_one_off(spec)?)
        } else {
            Kind::Weekly(parse_weekly(spec)?)
        };
        Ok(Window { kind })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Weekly(w) => {
                let start = w.start.strftime("%H:%M");
                match w.end {
                    End::Clock(end) if end == Time::midnight() => {
                        write!(f, "{} {start}-24:00 {}", w.days, w.zone)
                    }
                    End::Clock(end) => {
                        write!(f, "{} {start}-{} {}", w.days, end.strftime("%H:%M"), w.zone)
                    }
                    End::After(length) => {
                        write!(
                            f,
                            "{} {start}+{} {}",
                            w.days,
                            display_length(length),
                            w.zone
                        )
                    }
                }
            }
            Kind::OneOff(o) => write!(
                f,
                "{}/{}",
                o.start.display_with_offset(o.start_offset),
                o.end.display_with_offset(o.end_offset)
            ),
        }
    }
}

impl serde::Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spec = String::deserialize(deserializer)?;
        spec.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
