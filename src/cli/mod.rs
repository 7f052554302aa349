//! The command line: clap definitions, their conversion into library configs, dispatch.

use crate::exit::ExitCode;

/// Parses the process arguments, runs the command and returns the exit status.
pub fn main() -> std::process::ExitCode {
    ExitCode::Success.into()
}
