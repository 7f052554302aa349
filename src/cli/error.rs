//! The command line's one error path: a command that fails returns a [`CliError`] (what to say
//! and the exit code it means), and `cli::main` prints it once, on stderr, and exits with it.
//! Commands never print their own errors.

use crate::exit::ExitCode;

/// Why a command failed, and how the process ends.
#[derive(Debug)]
pub struct CliError {
    code: ExitCode,
    message: Message,
}

/// What [`CliError::print`] writes.
#[derive(Debug)]
enum Message {
    /// `error: …`, then one `caused by:` line per source.
    Error(Box<dyn std::error::Error>),
    /// `error: …` with this text.
    Text(String),
    /// This line as it is (an end that is not an error, such as an interrupted wait).
    Line(String),
    /// Nothing more to say: the user walked away from a prompt.
    Silent,
}

impl CliError {
    /// An error (printed with its sources) that means `code`.
    pub fn new(code: ExitCode, err: impl std::error::Error + 'static) -> Self {
        Self {
            code,
            message: Message::Error(Box::new(err)),
        }
    }

    /// Bad input: exit 2.
    pub fn usage(err: impl std::error::Error + 'static) -> Self {
        Self::new(ExitCode::Usage, err)
    }

    /// `error: {text}`, exit `code`.
    pub fn text(code: ExitCode, text: impl Into<String>) -> Self {
        Self {
            code,
            message: Message::Text(text.into()),
        }
    }

    /// `line` printed as it is, exit `code`.
    pub fn line(code: ExitCode, line: impl Into<String>) -> Self {
        Self {
            code,
            message: Message::Line(line.into()),
        }
    }

    /// Exit `code` without a word.
    pub fn silent(code: ExitCode) -> Self {
        Self {
            code,
            message: Message::Silent,
        }
    }

    /// The exit code this error means.
    pub fn exit_code(&self) -> ExitCode {
        self.code
    }

    /// Prints the error on stderr: lines for people, or one `error` event line once a command
    /// has switched stderr to JSON events ([`json_log`]).
    pub fn print(&self) {
        if JSON_LOG.load(std::sync::atomic::Ordering::SeqCst) {
            let message = match &self.message {
                Message::Error(err) => error_lines(err.as_ref())
                    .iter()
                    .map(|l| l.trim_start_matches("error: ").trim().to_owned())
                    .collect::<Vec<_>>()
                    .join("; "),
                Message::Text(text) | Message::Line(text) => text.clone(),
                Message::Silent => return,
            };
            errln!("{}", json_line("error", Some(self.code.code()), &message));
            return;
        }
        match &self.message {
            Message::Error(err) => print_error(err.as_ref()),
            Message::Text(text) => errln!("error: {text}"),
            Message::Line(line) => errln!("{line}"),
            Message::Silent => {}
        }
    }
}

/// Set once `--log-format json` is in force: stderr then carries only JSON event lines.
static JSON_LOG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Switches the final error (and [`notice`] lines) to JSON event lines on stderr, so that
/// `2>>upshift.jsonl` stays one JSON object per line whatever ends the command.
pub fn json_log() {
    JSON_LOG.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// A line for people on stderr outside the run's reporter (an interrupt's answer): as it is,
/// or a `warning` event line under `--log-format json`.
pub fn notice(line: &str) {
    if JSON_LOG.load(std::sync::atomic::Ordering::SeqCst) {
        errln!("{}", json_line("warning", None, line.trim()));
    } else {
        errln!("{line}");
    }
}

/// One JSON event line, shaped like the run's (`ts` first, then `event`).
fn json_line(event: &str, exit_code: Option<u8>, message: &str) -> String {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        ts: String,
        event: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_code: Option<u8>,
        message: &'a str,
    }
    serde_json::to_string(&Line {
        ts: jiff::Timestamp::now().to_string(),
        event,
        exit_code,
        message,
    })
    .unwrap_or_default()
}

impl From<crate::runner::RunError> for CliError {
    fn from(e: crate::runner::RunError) -> Self {
        Self::new(e.exit_code(), e)
    }
}

impl From<crate::verify::VerifyError> for CliError {
    fn from(e: crate::verify::VerifyError) -> Self {
        Self::new(crate::cli::verify::exit_code(&e), e)
    }
}

impl From<crate::cli::wizard::WizardError> for CliError {
    fn from(e: crate::cli::wizard::WizardError) -> Self {
        if matches!(e, crate::cli::wizard::WizardError::Cancelled) {
            // Not an error: the operator changed their mind, and nothing was written.
            return Self::line(ExitCode::Interrupted, crate::cli::wizard::CANCELLED);
        }
        Self::new(e.exit_code(), e)
    }
}

/// Prints an error and its sources on stderr, one `caused by` line per source. A source whose
/// text the line above already shows (an error that quotes its cause) is not repeated. Each
/// line goes through [`crate::printable::text`]: an error message holds no line break of its
/// own, and a name it quotes (an app from a git remote, an add-on from the API) may hold
/// anything; the JSON event line keeps the exact text instead.
fn print_error(err: &dyn std::error::Error) {
    for line in error_lines(err) {
        errln!("{}", crate::printable::text(&line));
    }
}

/// The lines [`print_error`] prints.
fn error_lines(err: &dyn std::error::Error) -> Vec<String> {
    let mut shown = err.to_string();
    let mut lines = vec![format!("error: {shown}")];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !shown.contains(&text) {
            lines.push(format!("  caused by: {text}"));
        }
        shown = text;
        source = s.source();
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::error_lines;

    #[derive(Debug, thiserror::Error)]
    #[error("reading the journal: {0}")]
    struct Quoting(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("reading the journal")]
    struct Plain(#[source] std::io::Error);

    #[test]
    fn a_cause_is_printed_once() {
        let io = || std::io::Error::other("disk full");
        assert_eq!(
            error_lines(&Quoting(io())),
            vec!["error: reading the journal: disk full"]
        );
        assert_eq!(
            error_lines(&Plain(io())),
            vec!["error: reading the journal", "  caused by: disk full"]
        );
    }
}
