//! Output: what is drawn for people (stderr: progress, warnings; stdout: results) and what is
//! written for machines (`--json`, `--log-format json`). The core never draws; it reports
//! [`RunEvent`]s and the reporters here decide.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::printable::text;
use crate::runner::{Reporter, RunEvent, RunReport};

pub mod json;
pub mod menu;
pub mod out;
pub mod table;
pub mod terminal;
pub mod typed;

pub use json::{
    JSON_VERSION, RunDocument, Versioned, print_document, print_document_line, print_json,
    schema_of,
};

/// A verdict label in its colour when stdout may have colour (`--color`, `NO_COLOR`, a
/// terminal): BLOCKED red, WARN yellow, PASS green.
pub fn paint_verdict(verdict: crate::plan::guards::Verdict, label: &str) -> String {
    verdict_style(verdict).apply_to(label).to_string()
}

/// [`paint_verdict`] for stderr (the wizard's review screen).
pub fn paint_verdict_stderr(verdict: crate::plan::guards::Verdict, label: &str) -> String {
    verdict_style(verdict)
        .for_stderr()
        .apply_to(label)
        .to_string()
}

fn verdict_style(verdict: crate::plan::guards::Verdict) -> console::Style {
    use crate::plan::guards::Verdict;
    match verdict {
        Verdict::Pass => console::Style::new().green(),
        Verdict::Warn => console::Style::new().yellow(),
        Verdict::Block => console::Style::new().red().bold(),
    }
}

/// One line per HTTP exchange on stderr, for `-v`: `http GET /apps/x/addons 200 (45ms)
/// request-id …`.
pub fn print_request(log: &crate::heroku::RequestLog<'_>) {
    let status = log
        .status
        .map_or_else(|| "no answer".to_owned(), |s| s.to_string());
    errln!(
        "http {} {} {status} ({}) request-id {}",
        log.method,
        log.path,
        crate::units::duration(log.elapsed),
        log.request_id
    );
}

/// The one prompt theme: every question (the wizard's, the confirmations, the Ctrl-C menu)
/// looks alike; colour only when stderr may have it.
pub fn theme() -> Box<dyn dialoguer::theme::Theme> {
    if console::colors_enabled_stderr() {
        Box::new(dialoguer::theme::ColorfulTheme::default())
    } else {
        Box::new(dialoguer::theme::SimpleTheme)
    }
}

/// Whether to use colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// Output settings from the global flags (`--color`, `-q`): `cli::main` applies the colour
/// choice once and hands the settings down to the commands that draw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    pub color: ColorChoice,
    pub quiet: bool,
}

/// Whether `TERM` says the terminal cannot move the cursor or show colour (`dumb`, or unset as
/// under some CI runners and Emacs shells). Such a terminal gets plain lines, never a redraw.
pub fn dumb_term() -> bool {
    std::env::var("TERM").map_or(true, |t| t.is_empty() || t == "dumb")
}

/// Whether stderr can show spinners and bars: a terminal that can redraw. Elsewhere every
/// event is a plain line, so nothing between the confirmation and the summary goes missing.
pub fn can_redraw() -> bool {
    std::io::stderr().is_terminal() && !dumb_term()
}

/// Applies the global output settings: colour on stdout and stderr follows `--color`, and
/// `auto` honours `NO_COLOR` and whether the stream is a terminal.
pub fn configure(settings: Settings) {
    let (out, err) = match settings.color {
        ColorChoice::Always => (true, true),
        ColorChoice::Never => (false, false),
        ColorChoice::Auto => {
            let no_color =
                std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) || dumb_term();
            (
                !no_color && std::io::stdout().is_terminal(),
                !no_color && std::io::stderr().is_terminal(),
            )
        }
    };
    console::set_colors_enabled(out);
    console::set_colors_enabled_stderr(err);
}

/// Human progress on stderr. On a terminal: one line per step with a spinner and its elapsed
/// time, a downtime clock while the writers are stopped, key bars with counts and rate for
/// snapshot and verify, and the platform's own status during waits. Elsewhere: plain lines.
/// [`HumanReporter::pause`] hides everything while a prompt owns the terminal.
#[derive(Debug)]
pub struct HumanReporter {
    tty: bool,
    quiet: bool,
    multi: MultiProgress,
    state: Mutex<HumanState>,
}

#[derive(Debug, Default)]
struct HumanState {
    spinner: Option<ProgressBar>,
    clock: Option<ProgressBar>,
    keys: std::collections::BTreeMap<String, ProgressBar>,
    downtime_since: Option<Instant>,
    /// What the run has done so far, for the Ctrl-C menu's wording (tracked even when quiet).
    phase: Phase,
    last_wait: std::collections::BTreeMap<String, String>,
    /// A prompt owns the terminal: lines wait here until `resume`.
    paused: bool,
    held: Vec<String>,
}

/// Where a run stands, as the events told it: the Ctrl-C menu words its choices by this.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phase {
    /// The plan change was sent: rolling back can no longer undo it.
    pub past_point_of_no_return: bool,
    /// The writers are stopped: the app is down.
    pub writers_stopped: bool,
}

impl HumanReporter {
    /// Where the run stands now.
    pub fn phase(&self) -> Phase {
        self.state.lock().map(|s| s.phase).unwrap_or_default()
    }

    /// A reporter drawing on stderr; spinners and bars only when stderr is a terminal.
    /// `quiet` (the global `-q`) keeps only warnings.
    pub fn new(quiet: bool) -> Self {
        let tty = can_redraw();
        Self {
            tty,
            quiet,
            multi: MultiProgress::with_draw_target(if tty {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            }),
            state: Mutex::new(HumanState::default()),
        }
    }

    /// Stops drawing (a prompt is about to own the terminal); lines are held until
    /// [`HumanReporter::resume`].
    pub fn pause(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.paused = true;
            if self.tty {
                self.multi.set_draw_target(ProgressDrawTarget::hidden());
            }
        }
    }

    /// Draws again and prints what arrived meanwhile.
    pub fn resume(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.paused = false;
            if self.tty {
                self.multi.set_draw_target(ProgressDrawTarget::stderr());
            }
            for line in std::mem::take(&mut state.held) {
                self.emit(&state, &line);
            }
        }
    }

    /// One finished line above the bars (or held while paused).
    fn line(&self, state: &mut HumanState, text: &str) {
        if state.paused {
            state.held.push(text.to_owned());
        } else {
            self.emit(state, text);
        }
    }

    /// The reporter's one way out: indicatif prints above the bars without [`out`], so the
    /// same [`crate::printable::terminal`] filter applies here.
    fn emit(&self, _state: &HumanState, text: &str) {
        let text = &*crate::printable::terminal(text);
        if !self.tty || self.multi.println(text).is_err() {
            errln!("{text}");
        }
    }

    fn add(&self, template: &str) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_spinner())
                .with_key(
                    "took",
                    |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{}", crate::units::duration(round(s.elapsed())));
                    },
                )
                .with_key(
                    "rate",
                    |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{}", crate::units::rate(s.per_sec(), "keys"));
                    },
                )
                .progress_chars("=> "),
        );
        bar
    }

    fn clear(&self, bar: &ProgressBar) {
        bar.finish_and_clear();
        self.multi.remove(bar);
    }

    fn clear_keys(&self, state: &mut HumanState) {
        for (_, bar) in std::mem::take(&mut state.keys) {
            self.clear(&bar);
        }
    }

    fn downtime_suffix(state: &HumanState) -> String {
        state.downtime_since.map_or(String::new(), |t| {
            format!(
                "  [writers stopped {}]",
                crate::units::duration(round(t.elapsed()))
            )
        })
    }

    fn wait_message(state: &HumanState) -> String {
        state
            .last_wait
            .iter()
            .map(|(s, m)| format!("{}: {}", text(s), text(m)))
            .collect::<Vec<_>>()
            .join("  ·  ")
    }
}

fn round(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

impl Reporter for HumanReporter {
    fn report(&self, event: &RunEvent) {
        let Ok(mut guard) = self.state.lock() else {
            return;
        };
        let state = &mut *guard;
        match event {
            RunEvent::StepStarted {
                action: crate::engine::Action::ChangePlan,
                ..
            } => state.phase.past_point_of_no_return = true,
            RunEvent::Downtime { started } => state.phase.writers_stopped = *started,
            _ => {}
        }
        if self.quiet
            && !matches!(
                event,
                RunEvent::Warning { .. } | RunEvent::NotificationsDone { .. }
            )
        {
            return;
        }
        match event {
            RunEvent::Started { run_id, journal } => {
                self.line(state, &format!("run {run_id} (journal {journal})"));
            }
            RunEvent::StepStarted {
                number,
                action,
                detail,
            } => {
                if self.tty {
                    let bar = self.add("{spinner:.cyan} {prefix} {took:>4} {wide_msg}");
                    bar.set_prefix(format!("{number:>2}. {action}"));
                    bar.set_message(text(detail));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    if let Some(old) = state.spinner.replace(bar) {
                        self.clear(&old);
                    }
                } else {
                    self.line(state, &format!("{number:>2}. {action}: {}", text(detail)));
                }
                state.last_wait.clear();
            }
            RunEvent::StepDone {
                number,
                action,
                elapsed,
                note,
            } => {
                let note = note
                    .as_deref()
                    .map_or(String::new(), |n| format!(" ({})", text(n)));
                let text = format!(
                    "{} {number:>2}. {action} done in {}{note}{}",
                    console::style("✓").green().for_stderr(),
                    crate::units::duration(*elapsed),
                    Self::downtime_suffix(state)
                );
                if let Some(s) = state.spinner.take() {
                    self.clear(&s);
                }
                self.clear_keys(state);
                self.line(state, &text);
            }
            RunEvent::StepFailed {
                number,
                action,
                message,
            } => {
                if let Some(s) = state.spinner.take() {
                    self.clear(&s);
                }
                self.clear_keys(state);
                let text = format!(
                    "{} {number:>2}. {action} FAILED: {}",
                    console::style("✗").red().for_stderr(),
                    text(message)
                );
                self.line(state, &text);
            }
            RunEvent::Waiting { subject, status } => {
                if state.last_wait.get(subject) != Some(status) {
                    state.last_wait.insert(subject.clone(), status.clone());
                    if let Some(s) = &state.spinner {
                        s.set_message(Self::wait_message(state));
                    } else {
                        let line = format!(
                            "    {}: {}{}",
                            text(subject),
                            text(status),
                            Self::downtime_suffix(state)
                        );
                        self.line(state, &line);
                    }
                }
            }
            RunEvent::Keys {
                subject,
                done,
                total,
            } => {
                if self.tty {
                    let bar = if let Some(b) = state.keys.get(subject) {
                        b.clone()
                    } else {
                        let b = self.add(
                            "    {prefix:<20} [{bar:30}] {human_pos}/{human_len} keys  {rate}  eta {eta}",
                        );
                        b.set_prefix(text(subject));
                        state.keys.insert(subject.clone(), b.clone());
                        b
                    };
                    bar.set_length((*total).max(*done));
                    bar.set_position(*done);
                }
            }
            RunEvent::Downtime { started } => {
                if *started {
                    state.downtime_since = Some(Instant::now());
                    self.line(state, "    writers stopped: downtime starts");
                    if self.tty {
                        let clock =
                            self.add("    {spinner:.red} downtime {took} (writers stopped)");
                        clock.enable_steady_tick(Duration::from_millis(250));
                        state.clock = Some(clock);
                    }
                } else if let Some(t) = state.downtime_since.take() {
                    if let Some(c) = state.clock.take() {
                        self.clear(&c);
                    }
                    let text = format!(
                        "    writers back: downtime {}",
                        crate::units::duration(t.elapsed())
                    );
                    self.line(state, &text);
                }
            }
            RunEvent::Compensating {
                compensation,
                done,
                message,
            } => {
                let text = match (done, message) {
                    (false, _) => format!("rollback: {compensation}"),
                    (true, None) => format!("rollback: {compensation} done"),
                    (true, Some(m)) => format!("rollback: {compensation}: {}", text(m)),
                };
                self.line(state, &text);
            }
            RunEvent::Warning { message } => {
                let line = format!(
                    "{} {}",
                    console::style("warning:").yellow().for_stderr(),
                    text(message)
                );
                self.line(state, &line);
            }
            RunEvent::Finished { outcome } => {
                for bar in [state.spinner.take(), state.clock.take()]
                    .into_iter()
                    .flatten()
                {
                    self.clear(&bar);
                }
                self.clear_keys(state);
                self.line(state, &format!("run {}", outcome.as_str()));
            }
            RunEvent::WindowWait { .. }
            | RunEvent::WindowOverrun { .. }
            | RunEvent::WatchStarted { .. }
            | RunEvent::WatchHit { .. }
            | RunEvent::WatchDone { .. }
            | RunEvent::NotificationsDone { .. } => {
                if let Some(text) = crate::unattended::event::human_line(event) {
                    self.line(state, &text);
                }
            }
        }
    }
}

/// The end-of-run summary for people (stdout); names from the API through [`text`].
pub fn render_summary(report: &RunReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{} {} on {}",
        report.run_id,
        report.outcome.as_str(),
        text(&report.app)
    );
    for a in &report.addons {
        let repaired = if a.repaired > 0 {
            format!(", {} repaired", a.repaired)
        } else {
            String::new()
        };
        // The live swap's catch-up proves keys equal without counting bytes: no "(0 B)".
        let bytes = if a.bytes_verified == 0 && a.keys_verified > 0 {
            String::new()
        } else {
            format!(" ({})", crate::units::bytes(a.bytes_verified))
        };
        let _ = writeln!(
            out,
            "  {:<22} {} -> {}  {} keys{bytes} verified, {} differences{repaired}",
            text(&a.label),
            text(&a.from),
            text(&a.to),
            crate::units::count(a.keys_verified),
            a.differences
        );
    }
    let _ = writeln!(
        out,
        "  downtime {} (writers stopped), total {}",
        crate::units::duration(report.downtime),
        crate::units::duration(report.duration)
    );
    let _ = writeln!(out, "  run id {}", report.run_id);
    let _ = writeln!(out, "  journal {}", report.journal.display());
    if let Some(m) = &report.message {
        // Lines upshift composed around names from the API: each line escaped, the breaks kept.
        let m = m.lines().map(text).collect::<Vec<_>>().join("\n");
        let _ = writeln!(out, "\n{m}");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::render_summary;
    use crate::engine::Outcome;
    use crate::runner::{AddonReport, RunReport};

    fn report(outcome: Outcome, message: Option<&str>) -> RunReport {
        let addon = |label: &str, name: &str, keys: u64, bytes: u64| AddonReport {
            label: label.into(),
            addon: name.into(),
            from: "premium-0".into(),
            to: "premium-1".into(),
            keys_verified: keys,
            bytes_verified: bytes,
            differences: 0,
            repaired: 0,
        };
        RunReport {
            run_id: "20260101T000000Z-abcd".into(),
            app: "enketo-demo".into(),
            outcome,
            interrupted: false,
            message: message.map(str::to_owned),
            addons: vec![
                addon(
                    "ENKETO_REDIS_CACHE",
                    "redis-sinuous-67890",
                    10_065,
                    1_234_567,
                ),
                addon("ENKETO_REDIS_MAIN", "redis-cubed-12345", 30_065, 4_404_019),
            ],
            downtime: Duration::from_millis(9_200),
            duration: Duration::from_millis(12_500),
            journal: PathBuf::from("$STATE/runs/20260101T000000Z-abcd/journal.jsonl"),
        }
    }

    #[test]
    fn summary_of_a_successful_run() {
        insta::assert_snapshot!(render_summary(&report(Outcome::Succeeded, None)));
    }

    #[test]
    fn summary_of_a_rolled_back_run() {
        insta::assert_snapshot!(render_summary(&report(
            Outcome::RolledBack,
            Some(
                "the run failed and was rolled back; the app enketo-demo runs with its previous formation; see $STATE/runs/20260101T000000Z-abcd/journal.jsonl"
            )
        )));
    }
}
