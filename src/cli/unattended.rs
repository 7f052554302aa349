//! The flags of unattended runs and what `plan` and `run` do with them around the runner:
//! `--window`, `--wait-for-window`, `--out` / `--plan` (reviewed plans), `--notify`,
//! `--log-format json` and `--watch`.
//!
//! The clap structs convert through a pure `TryFrom` into [`Schedule`]; the async helpers here
//! (waiting for the window, building the reporter, the post-change watch) are the only places
//! these flags cause effects.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use jiff::Timestamp;
use thiserror::Error;
use url::Url;

use crate::cli::CliError;
use crate::engine::Outcome;
use crate::exit::ExitCode;
use crate::notify::{self, Notifier, NotifyConfig, NotifyError};
use crate::playbook::OnWatchHit;
use crate::runner::watch::WatchReport;
use crate::runner::{Interrupts, Reporter, RunEvent, RunReport, Runner};
use crate::unattended::gate::{self, Fit, Gate};
use crate::unattended::reporters::{JsonLines, Tee};
use crate::window::{Occurrence, Window, WindowError};

/// How often `--wait-for-window` says it is still waiting.
pub const HEARTBEAT: Duration = Duration::from_secs(300);
/// The watch when `--confirm` is given without a terminal and `--watch` is not.
pub const UNATTENDED_WATCH: Duration = Duration::from_secs(300);
/// How long notifications may still take at exit.
pub const NOTIFY_BUDGET: Duration = Duration::from_secs(10);

/// `plan`'s flags for unattended runs.
#[derive(Debug, Clone, Default, Args)]
pub struct PlanScheduleArgs {
    /// Maintenance window the run must fit in, e.g. "sun 02:00-04:00 Europe/Berlin",
    /// "daily 01:00+2h UTC" or START/END in RFC 3339. The plan shows whether the estimated run
    /// plus a worst-case rollback fits in its next opening.
    #[arg(long, value_name = "SPEC")]
    pub window: Option<String>,
    /// Save the plan and the state it saw (formation, plans, memory, clients) to this file
    /// (mode 0600, no secrets) for `upshift run --plan FILE`. A device, a FIFO, a directory or
    /// a symbolic link there is refused (exit 2).
    #[arg(long, value_name = "PLAN.json")]
    pub out: Option<PathBuf>,
}

/// How run events are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Lines for people (a spinner on a terminal).
    #[default]
    Human,
    /// One JSON object per event and line (see README "JSON log events").
    Json,
}

/// `run`'s flags for unattended runs.
#[derive(Debug, Clone, Default, Args)]
pub struct RunScheduleArgs {
    /// Maintenance window: outside it the run refuses (exit 3) before writing anything, and
    /// the run and a worst-case rollback must fit in what is left of it. A one-off window that
    /// has ended is bad input (exit 2).
    #[arg(long, value_name = "SPEC")]
    pub window: Option<String>,
    /// Outside the window, sleep until the first opening long enough for the run plus a
    /// worst-case rollback (a heartbeat line every 5 minutes) instead of refusing; when none
    /// is, refuse at once (exit 3). Ctrl-C, SIGTERM or SIGHUP while waiting exits 130 and changes
    /// nothing.
    #[arg(long)]
    pub wait_for_window: bool,
    /// Run a plan saved by `upshift plan … --out FILE`: re-read the platform and refuse
    /// (exit 3) if it drifted from what the plan saw or the plan rebuilt now differs from the
    /// reviewed one; a file changed after it was saved is refused (exit 2). Replaces -a and
    /// --change.
    #[arg(long = "plan", value_name = "PLAN.json")]
    pub plan_file: Option<PathBuf>,
    /// With --plan: the hash `plan --out` printed for the reviewed plan (`sha256:…`); any other
    /// file is refused (exit 2).
    #[arg(long, value_name = "HASH", requires = "plan_file")]
    pub plan_hash: Option<String>,
    /// POST a JSON notification (Slack-compatible `text`) to URL on start, point of no return,
    /// rollback, outcome, window overrun and watch hits. Repeatable; never fails the run.
    #[arg(
        long = "notify",
        value_name = "URL",
        env = "UPSHIFT_NOTIFY_URL",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub notify: Vec<String>,
    /// Event lines on stderr: human, or json (one object per line, for log shippers).
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// After the formation is restored, watch the app's logs this long for R14, H10 and a full
    /// Redis ("max number of clients reached", TLS handshake drops) [default: 5m with
    /// --confirm and no terminal, else 0].
    /// 0 disables.
    #[arg(long, value_name = "DURATION", env = "UPSHIFT_WATCH")]
    pub watch: Option<String>,
}

/// The unattended part of a run, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub window: Option<Window>,
    pub wait_for_window: bool,
    pub plan_file: Option<PathBuf>,
    /// The reviewed plan's hash to insist on (`--plan-hash`).
    pub plan_hash: Option<String>,
    pub notify: Vec<Url>,
    pub log_format: LogFormat,
    pub watch: Duration,
}

/// Bad unattended flags: nothing was sent anywhere.
#[derive(Debug, Error)]
pub enum ScheduleError {
    #[error("--window {given:?}: {source}")]
    Window { given: String, source: WindowError },
    #[error("--watch {given:?}: {message}; write for example --watch 5m, or --watch 0 to disable")]
    Watch { given: String, message: String },
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error(
        "--window {window:?} has no opening ahead (it has passed): no run can fit in it; give a window that opens in the future"
    )]
    Passed { window: String },
}

/// Parses a `--window` value.
///
/// # Errors
/// The spec does not parse; the message says what to write.
pub fn parse_window(given: &str) -> Result<Window, ScheduleError> {
    given.parse().map_err(|source| ScheduleError::Window {
        given: given.to_owned(),
        source,
    })
}

impl TryFrom<(&RunScheduleArgs, bool)> for Schedule {
    type Error = ScheduleError;

    /// The flags, and whether the run is unattended (`--confirm` without a terminal), which
    /// turns the watch on by default.
    fn try_from((args, unattended): (&RunScheduleArgs, bool)) -> Result<Self, ScheduleError> {
        let window = args.window.as_deref().map(parse_window).transpose()?;
        let watch = match args.watch.as_deref().map(str::trim) {
            None if unattended => UNATTENDED_WATCH,
            None | Some("0") => Duration::ZERO,
            Some(given) => {
                crate::playbook::duration::parse(given).map_err(|message| ScheduleError::Watch {
                    given: given.to_owned(),
                    message,
                })?
            }
        };
        Ok(Self {
            window,
            wait_for_window: args.wait_for_window,
            plan_file: args.plan_file.clone(),
            plan_hash: args.plan_hash.clone(),
            notify: notify::parse_urls(&args.notify)?,
            log_format: args.log_format,
            watch,
        })
    }
}

/// The reporter a run reports to, and the notifier inside it (to drain at exit).
/// The run's reporter, the notifier when there is one, and the output alone (for what is
/// reported after the notifier finished).
pub type RunReporters = (Arc<dyn Reporter>, Option<Arc<Notifier>>, Arc<dyn Reporter>);

/// The reporter of a run: human lines or JSON lines on stderr, teed with the webhook notifier
/// when `--notify` is given (start it inside the runtime).
///
/// # Errors
/// The webhook client cannot be built.
pub fn reporter(
    schedule: &Schedule,
    human: Arc<dyn Reporter>,
    app: &str,
    changes: Vec<String>,
) -> Result<RunReporters, NotifyError> {
    let base: Arc<dyn Reporter> = match schedule.log_format {
        LogFormat::Human => human,
        LogFormat::Json => Arc::new(JsonLines::new(std::io::stderr())),
    };
    if schedule.notify.is_empty() {
        return Ok((base.clone(), None, base));
    }
    let notifier = Arc::new(Notifier::start(
        schedule.notify.clone(),
        app,
        changes,
        &NotifyConfig::default(),
    )?);
    let tee: Arc<dyn Reporter> = Arc::new(Tee::new(vec![base.clone(), notifier.clone()]));
    Ok((tee, Some(notifier), base))
}

/// How a wait for the window ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitEnd {
    /// The window is open, with time enough for the run: run.
    Open(Occurrence),
    /// Interrupted while waiting: nothing was written.
    Interrupted,
    /// No opening ahead (within [`gate::FIT_HORIZON`]) can hold the run: waiting would not help.
    Never,
}

/// Sleeps until the first opening of `window` with `needed` of it left (the run's estimate
/// plus a worst-case rollback; zero: the next opening) and says which, and why earlier ones are
/// skipped, in a warning. Reports a [`RunEvent::WindowWait`] heartbeat at once and every
/// `heartbeat`; returns early on an interrupt. `clock` reads the wall clock (tests pass one
/// driven by Tokio's paused time); sleeping re-reads it, so a suspended machine or a clock
/// step is caught at the next slice.
pub async fn wait_for_window(
    window: &Window,
    needed: Duration,
    clock: &(dyn Fn() -> Timestamp + Sync),
    heartbeat: Duration,
    interrupts: &Interrupts,
    reporter: &dyn Reporter,
) -> WaitEnd {
    // Sleeps in slices to re-read the clock; an interrupt ends a slice at once.
    const SLICE: Duration = Duration::from_secs(1);
    let mut next_beat = tokio::time::Instant::now();
    let mut told: Option<Occurrence> = None;
    loop {
        if interrupts.count() > 0 {
            return WaitEnd::Interrupted;
        }
        let now = clock();
        let next = match gate::fit(window, now, needed) {
            Fit::Open(occ) => return WaitEnd::Open(occ),
            Fit::TooShort { .. } => return WaitEnd::Never,
            Fit::Wait { next, skipped } => {
                if !skipped.is_empty() && told != Some(next) {
                    told = Some(next);
                    reporter.report(&RunEvent::Warning {
                        message: gate::skipping_message(window, &next, &skipped, now, needed),
                    });
                }
                next
            }
        };
        if tokio::time::Instant::now() >= next_beat {
            reporter.report(&RunEvent::WindowWait {
                window: window.spec(),
                opens_at: gate::local(window, next.start),
                opens_at_utc: next.start,
                remaining: gate::until(now, next.start),
            });
            next_beat += heartbeat;
        }
        let left = gate::until(now, next.start).max(Duration::from_millis(1));
        let to_beat = next_beat.saturating_duration_since(tokio::time::Instant::now());
        tokio::select! {
            () = interrupts.reached(1) => return WaitEnd::Interrupted,
            () = tokio::time::sleep(left.min(SLICE).min(to_beat.max(Duration::from_millis(1)))) => {}
        }
    }
}

/// Catches Ctrl-C, SIGTERM and SIGHUP while waiting for the window: each only stops the wait (nothing
/// has been written). Abort the returned task when the wait is over; the run then installs its
/// own handlers (stop safely and roll back).
pub fn install_wait_interrupts(interrupts: &Interrupts) -> tokio::task::JoinHandle<()> {
    let interrupts = interrupts.clone();
    crate::cli::signals::listen(move |_| {
        interrupts.interrupt();
        std::future::ready(crate::cli::signals::Listen::Off)
    })
}

/// The gate before a run with a window. Open goes on. With `--wait-for-window` (`needed` is
/// the run's estimate plus a worst-case rollback) it waits for the first opening long enough;
/// an interrupt while waiting exits 130. A closed window, or one with no opening long enough,
/// goes on too when unattended: the run's `guard` step then blocks it before any write, so
/// the refusal has a guard block's outputs (the `run` document, JSON events, the `blocked`
/// notification, a journal). An interactive run refuses here (exit 3) before any prompt.
pub async fn admit(
    window: &Window,
    needed: Option<Duration>,
    interactive: bool,
    interrupts: &Interrupts,
    reporter: &dyn Reporter,
) -> Result<(), CliError> {
    let now = Timestamp::now();
    if let Some(needed) = needed {
        return match wait_for_window(
            window,
            needed,
            &Timestamp::now,
            HEARTBEAT,
            interrupts,
            reporter,
        )
        .await
        {
            // Never: the guard step says why (too short, or no opening ahead).
            WaitEnd::Open(_) | WaitEnd::Never => Ok(()),
            WaitEnd::Interrupted => Err(CliError::line(
                ExitCode::Interrupted,
                format!("interrupted while waiting for the window `{window}`: nothing was written"),
            )),
        };
    }
    match gate::gate(window, now) {
        Gate::Open(_) => Ok(()),
        _ if !interactive => Ok(()),
        g => Err(CliError::text(
            ExitCode::Blocked,
            gate::closed_message(window, &g, now),
        )),
    }
}

/// A window with no opening ahead (a one-off range that has passed) can never admit a run:
/// bad input (exit 2), like a spec that does not parse, rather than a block worth retrying.
///
/// # Errors
/// [`ScheduleError::Passed`].
pub fn check_ahead(window: &Window, now: Timestamp) -> Result<(), ScheduleError> {
    match gate::gate(window, now) {
        Gate::Never => Err(ScheduleError::Passed {
            window: window.spec(),
        }),
        _ => Ok(()),
    }
}

/// After a succeeded run: watch the logs for `schedule.watch`, and turn hits into the exit
/// code the playbook asks for (`on_watch_hit`). Other outcomes are not watched.
pub async fn watch_after(
    runner: &Runner,
    report: &RunReport,
    schedule: &Schedule,
    on_hit: OnWatchHit,
) -> Option<(WatchReport, ExitCode)> {
    if report.outcome != Outcome::Succeeded || schedule.watch.is_zero() {
        return None;
    }
    let watch = runner.watch(&report.app, schedule.watch, on_hit).await;
    let code = if watch.total() > 0 && on_hit == OnWatchHit::NeedsAttention {
        ExitCode::NeedsAttention
    } else {
        ExitCode::Success
    };
    Some((watch, code))
}

/// The line printed after a watch with hits.
pub fn watch_summary(watch: &WatchReport, code: ExitCode, app: &str) -> Option<String> {
    if watch.total() == 0 {
        return None;
    }
    let kinds: Vec<String> = watch
        .hits
        .iter()
        .map(|(k, n)| format!("{k} x{n}"))
        .collect();
    let what = if code == ExitCode::NeedsAttention {
        "needs attention"
    } else {
        "succeeded, but check the app"
    };
    Some(format!(
        "the change {what}: the logs of {app} showed {} after it; first line: {}",
        kinds.join(", "),
        watch.examples.values().next().map_or("", String::as_str)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> RunScheduleArgs {
        RunScheduleArgs::default()
    }

    #[test]
    fn the_watch_is_on_by_default_only_unattended() {
        let s = Schedule::try_from((&args(), true)).unwrap();
        assert_eq!(s.watch, UNATTENDED_WATCH);
        let s = Schedule::try_from((&args(), false)).unwrap();
        assert_eq!(s.watch, Duration::ZERO);
        let mut a = args();
        a.watch = Some("0".into());
        assert_eq!(
            Schedule::try_from((&a, true)).unwrap().watch,
            Duration::ZERO
        );
        a.watch = Some("90s".into());
        assert_eq!(
            Schedule::try_from((&a, false)).unwrap().watch,
            Duration::from_secs(90)
        );
        a.watch = Some("soon".into());
        let e = Schedule::try_from((&a, false)).unwrap_err().to_string();
        assert!(e.contains("--watch 0 to disable"), "{e}");
    }

    #[test]
    fn a_bad_window_or_url_is_a_usage_error() {
        let mut a = args();
        a.window = Some("sun 02:00-04:00 Mars/Olympus".into());
        let e = Schedule::try_from((&a, false)).unwrap_err().to_string();
        assert!(
            e.starts_with("--window \"sun 02:00-04:00 Mars/Olympus\""),
            "{e}"
        );
        let mut a = args();
        a.notify = vec!["mailto:ops@example.com".into()];
        assert!(Schedule::try_from((&a, false)).is_err());
        let mut a = args();
        a.window = Some("daily 01:00+2h UTC".into());
        a.notify = vec!["http://127.0.0.1:9/hook".into()];
        let s = Schedule::try_from((&a, false)).unwrap();
        assert_eq!(s.window.unwrap().spec(), "daily 01:00+2h UTC");
        assert_eq!(s.notify.len(), 1);
    }

    #[derive(Default)]
    struct Beats(std::sync::Mutex<Vec<Duration>>);
    impl Reporter for Beats {
        fn report(&self, event: &RunEvent) {
            if let RunEvent::WindowWait { remaining, .. } = event {
                self.0.lock().unwrap().push(*remaining);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_beats_every_five_minutes_until_the_window_opens() {
        let base: Timestamp = "2026-11-29T00:00:00Z".parse().unwrap();
        let started = tokio::time::Instant::now();
        let clock = move || base.checked_add(started.elapsed()).expect("in range");
        let window: Window = "2026-11-29T01:00:00Z/2026-11-29T02:00:00Z".parse().unwrap();
        let beats = Beats::default();
        let end = wait_for_window(
            &window,
            Duration::ZERO,
            &clock,
            HEARTBEAT,
            &Interrupts::default(),
            &beats,
        )
        .await;
        assert!(matches!(end, WaitEnd::Open(_)), "{end:?}");
        // Paused time jumped a whole hour, and it took exactly that long.
        assert_eq!(started.elapsed(), Duration::from_secs(3600));
        let beats = beats.0.lock().unwrap().clone();
        assert_eq!(beats.len(), 12, "{beats:?}");
        assert_eq!(beats[0], Duration::from_secs(3600));
        assert_eq!(beats[11], Duration::from_secs(300));
    }

    #[derive(Default)]
    struct Said(std::sync::Mutex<Vec<String>>);
    impl Reporter for Said {
        fn report(&self, event: &RunEvent) {
            if let RunEvent::Warning { message } = event {
                self.0.lock().unwrap().push(message.clone());
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_skips_openings_too_short_for_the_run_and_says_so() {
        // 01:01: today's 3m opening has 2m left; a run needing 3m waits for tomorrow's.
        let base: Timestamp = "2026-12-02T01:01:00Z".parse().unwrap();
        let started = tokio::time::Instant::now();
        let clock = move || base.checked_add(started.elapsed()).expect("in range");
        let window: Window = "daily 01:00+3m UTC".parse().unwrap();
        let said = Said::default();
        let needed = Duration::from_secs(180);
        let end = wait_for_window(
            &window,
            needed,
            &clock,
            HEARTBEAT,
            &Interrupts::default(),
            &said,
        )
        .await;
        let tomorrow = Occurrence {
            start: "2026-12-03T01:00:00Z".parse().unwrap(),
            end: "2026-12-03T01:03:00Z".parse().unwrap(),
        };
        assert_eq!(end, WaitEnd::Open(tomorrow));
        assert_eq!(started.elapsed(), Duration::from_secs(86_340));
        let said = said.0.lock().unwrap().clone();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].contains("2026-12-02 01:00 UTC (open now, 2m left)")
                && said[0].contains("waiting for the opening at 2026-12-03 01:00 UTC"),
            "{said:?}"
        );
        // A run no opening can hold does not wait at all.
        let started = tokio::time::Instant::now();
        let end = wait_for_window(
            &window,
            Duration::from_secs(400),
            &clock,
            HEARTBEAT,
            &Interrupts::default(),
            &crate::runner::Silent,
        )
        .await;
        assert_eq!(end, WaitEnd::Never);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn an_interrupt_while_waiting_changes_nothing() {
        let window: Window = "2099-01-01T01:00:00Z/2099-01-01T02:00:00Z".parse().unwrap();
        let interrupts = Interrupts::default();
        let i = interrupts.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(600)).await;
            i.interrupt();
        });
        let end = wait_for_window(
            &window,
            Duration::ZERO,
            &Timestamp::now,
            HEARTBEAT,
            &interrupts,
            &crate::runner::Silent,
        )
        .await;
        assert_eq!(end, WaitEnd::Interrupted);
    }
}
