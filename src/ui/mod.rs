//! Output: what is drawn for people (stderr: progress, warnings; stdout: results) and what is
//! written for machines (`--json`, `--log-format json`). The core never draws; it reports
//! [`RunEvent`]s and the reporters here decide.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::Outcome;
use crate::playbook::duration;
use crate::runner::{Reporter, RunEvent, RunReport};

/// Whether to use colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// Human progress on stderr: a spinner per step on a terminal, plain lines elsewhere.
#[derive(Debug)]
pub struct HumanReporter {
    tty: bool,
    quiet: bool,
    state: Mutex<HumanState>,
}

#[derive(Debug, Default)]
struct HumanState {
    spinner: Option<ProgressBar>,
    downtime_since: Option<Instant>,
    last_wait: std::collections::BTreeMap<String, String>,
}

impl HumanReporter {
    /// A reporter drawing on stderr; spinners only when stderr is a terminal.
    pub fn new(quiet: bool) -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            quiet,
            state: Mutex::new(HumanState::default()),
        }
    }

    fn line(state: &HumanState, text: &str) {
        if let Some(s) = &state.spinner {
            s.println(text);
        } else {
            eprintln!("{text}");
        }
    }

    fn downtime_suffix(state: &HumanState) -> String {
        state.downtime_since.map_or(String::new(), |t| {
            format!(
                "  [writers stopped {}]",
                duration::format(round(t.elapsed()))
            )
        })
    }
}

fn round(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

impl Reporter for HumanReporter {
    fn report(&self, event: &RunEvent) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if self.quiet && !matches!(event, RunEvent::Warning { .. }) {
            return;
        }
        match event {
            RunEvent::Started { run_id, journal } => {
                Self::line(&state, &format!("run {run_id} (journal {journal})"));
            }
            RunEvent::StepStarted {
                number,
                action,
                detail,
            } => {
                if self.tty {
                    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {prefix} {elapsed} {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_prefix(format!("{number:>2}. {action}"));
                    bar.set_message(detail.clone());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    state.spinner = Some(bar);
                } else {
                    eprintln!("{number:>2}. {action}: {detail}");
                }
            }
            RunEvent::StepDone {
                number,
                action,
                elapsed,
                note,
            } => {
                let note = note.as_deref().map_or(String::new(), |n| format!(" ({n})"));
                let text = format!(
                    "{number:>2}. {action} done in {}{note}{}",
                    duration::format(*elapsed),
                    Self::downtime_suffix(&state)
                );
                if let Some(s) = state.spinner.take() {
                    s.finish_and_clear();
                }
                eprintln!("{text}");
            }
            RunEvent::StepFailed {
                number,
                action,
                message,
            } => {
                if let Some(s) = state.spinner.take() {
                    s.finish_and_clear();
                }
                eprintln!("{number:>2}. {action} FAILED: {message}");
            }
            RunEvent::Waiting { subject, status } => {
                if state.last_wait.get(subject) != Some(status) {
                    let text = format!("    {subject}: {status}{}", Self::downtime_suffix(&state));
                    if let Some(s) = &state.spinner {
                        s.set_message(format!("{subject}: {status}"));
                    } else {
                        eprintln!("{text}");
                    }
                    state.last_wait.insert(subject.clone(), status.clone());
                }
            }
            RunEvent::Keys {
                subject,
                done,
                total,
            } => {
                if let Some(s) = &state.spinner {
                    s.set_message(format!("{subject}: {done}/{total} keys"));
                }
            }
            RunEvent::Downtime { started } => {
                if *started {
                    state.downtime_since = Some(Instant::now());
                    Self::line(&state, "    writers stopped: downtime starts");
                } else if let Some(t) = state.downtime_since.take() {
                    Self::line(
                        &state,
                        &format!(
                            "    writers back: downtime {}",
                            duration::format(t.elapsed())
                        ),
                    );
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
                    (true, Some(m)) => format!("rollback: {compensation}: {m}"),
                };
                Self::line(&state, &text);
            }
            RunEvent::Warning { message } => Self::line(&state, &format!("warning: {message}")),
            RunEvent::Finished { outcome } => {
                if let Some(s) = state.spinner.take() {
                    s.finish_and_clear();
                }
                eprintln!("run {}", outcome_name(*outcome));
            }
            RunEvent::WindowWait { .. }
            | RunEvent::WindowOverrun { .. }
            | RunEvent::WatchStarted { .. }
            | RunEvent::WatchHit { .. }
            | RunEvent::WatchDone { .. } => {
                if let Some(text) = crate::unattended::event::human_line(event) {
                    Self::line(&state, &text);
                }
            }
        }
    }
}

/// The outcome's name as scripts see it.
pub fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::RolledBack => "rolled-back",
        Outcome::Blocked => "blocked",
        Outcome::NeedsAttention => "needs-attention",
    }
}

/// The end-of-run summary for people (stdout).
pub fn render_summary(report: &RunReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{} {} on {}",
        report.run_id,
        outcome_name(report.outcome),
        report.app
    );
    for a in &report.addons {
        let repaired = if a.repaired > 0 {
            format!(", {} repaired", a.repaired)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {:<22} {} -> {}  {} keys verified, {} differences{repaired}",
            a.label, a.from, a.to, a.keys_verified, a.differences
        );
    }
    let _ = writeln!(
        out,
        "  downtime {} (writers stopped), total {}",
        duration::format(report.downtime),
        duration::format(report.duration)
    );
    let _ = writeln!(out, "  journal {}", report.journal.display());
    if let Some(m) = &report.message {
        let _ = writeln!(out, "\n{m}");
    }
    out
}

/// Writes JSON to stdout followed by a newline.
///
/// # Errors
/// Serialisation or stdout failure.
pub fn print_json<T: serde::Serialize>(value: &T) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::other)?;
    writeln!(out)
}
