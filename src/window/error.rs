//! `WindowError`: what went wrong in a `--window` spec, with the token and an example to copy.

use super::{EXAMPLE, ONE_OFF_EXAMPLE};

/// What went wrong in a `--window` spec: what, which token, and what to write instead.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WindowError {
    /// Nothing but whitespace.
    #[error(
        "empty maintenance window; write a weekly window such as {EXAMPLE} or a one-off range such as {ONE_OFF_EXAMPLE}"
    )]
    Empty,
    /// The spec starts with a time, not with days.
    #[error(
        "missing days before `{token}`; start with the days, e.g. `daily {token} UTC` or `sun {token} UTC`"
    )]
    MissingDays {
        /// The time range the spec starts with.
        token: String,
    },
    /// A day name that is not one.
    #[error(
        "unknown day `{token}`; write mon, tue, wed, thu, fri, sat, sun, lists and ranges of them or `daily`, e.g. `sat,sun 01:00-03:00 UTC` or `mon-fri 22:00-23:00 UTC`"
    )]
    UnknownDay {
        /// The offending day token.
        token: String,
    },
    /// Days without a time range.
    #[error(
        "missing time range after `{after}`; write e.g. `{after} 02:00-04:00 UTC` or `{after} 01:00+2h UTC`"
    )]
    MissingRange {
        /// The token before the missing range.
        after: String,
    },
    /// A range that is neither `START-END` nor `START+LENGTH`.
    #[error(
        "time range `{token}` needs a start and an end or a length; write e.g. `02:00-04:00` or `01:00+2h`"
    )]
    BadRange {
        /// The offending range token.
        token: String,
    },
    /// A time of day that is not `HH:MM`.
    #[error("bad time `{token}`; write a 24-hour time HH:MM, e.g. `02:00` or `23:30`")]
    BadTime {
        /// The offending time.
        token: String,
    },
    /// A length that is not `2h`, `90m` or `1h30m`.
    #[error(
        "bad length `{token}`; write hours and minutes such as `2h`, `90m` or `1h30m`, e.g. `daily 01:00+2h UTC`"
    )]
    BadLength {
        /// The offending length.
        token: String,
    },
    /// A length over 24 hours.
    #[error(
        "window length `{token}` is over 24 hours; list several days instead, e.g. `sat,sun 00:00-24:00 UTC`"
    )]
    TooLong {
        /// The offending length.
        token: String,
    },
    /// `START-END` with equal times.
    #[error("time range `{token}` ends when it starts; for a 24-hour window write `{start}+24h`")]
    EmptyRange {
        /// The offending range.
        token: String,
        /// Its start, for the suggestion.
        start: String,
    },
    /// Days and range without a zone.
    #[error(
        "missing time zone after `{after}`; add an IANA name, e.g. `{after} UTC` or `{after} Europe/Berlin`"
    )]
    MissingTimeZone {
        /// The token before the missing zone.
        after: String,
    },
    /// A zone the database does not know.
    #[error(
        "unknown time zone `{token}`; use an IANA name such as `UTC`, `Europe/Berlin` or `America/New_York`"
    )]
    UnknownTimeZone {
        /// The offending zone name.
        token: String,
    },
    /// No time zone database on this machine.
    #[error(
        "no time zone database found for `{token}`; install tzdata (/usr/share/zoneinfo) or use `UTC`"
    )]
    NoTimeZoneDatabase {
        /// The zone asked for.
        token: String,
    },
    /// Something after the zone.
    #[error(
        "unexpected `{token}` after the time zone; a weekly window is DAYS RANGE ZONE, e.g. {EXAMPLE}"
    )]
    Unexpected {
        /// The first extra token.
        token: String,
    },
    /// A one-off range without the `/END` half.
    #[error("one-off window `{token}` needs an end; write START/END, e.g. {ONE_OFF_EXAMPLE}")]
    MissingEnd {
        /// The whole one-off spec.
        token: String,
    },
    /// A one-off bound that is not RFC 3339 with an offset.
    #[error(
        "bad time `{token}` in one-off window; write RFC 3339 with a UTC offset, e.g. {ONE_OFF_EXAMPLE}"
    )]
    BadInstant {
        /// The offending bound.
        token: String,
        /// What jiff found wrong.
        #[source]
        source: jiff::Error,
    },
    /// A one-off bound written right but beyond the times upshift computes with.
    #[error(
        "time `{token}` in one-off window is out of range: give a time before 9999-12-30, e.g. {ONE_OFF_EXAMPLE}"
    )]
    OutOfRange {
        /// The offending bound.
        token: String,
        /// What jiff found wrong.
        #[source]
        source: jiff::Error,
    },
    /// A one-off range whose end is not after its start.
    #[error(
        "one-off window ends at `{end}`, not after its start `{start}`; write the start first, e.g. {ONE_OFF_EXAMPLE}"
    )]
    EndsBeforeStart {
        /// The start as written.
        start: String,
        /// The end as written.
        end: String,
    },
}
