//! `upshift demo` and `upshift sim …` in a build without the simulator (`--no-default-features`,
//! a production build without axum). The subcommands stay so that the user is told why they do
//! not work, instead of clap's "unrecognized subcommand" that reads like a typo.

use clap::Args;

use crate::cli::CliError;
use crate::exit::ExitCode;

/// Whatever follows the subcommand, accepted unread: the answer does not depend on it.
#[derive(Debug, Clone, Args)]
pub struct Absent {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// Refuses `command` with exit 2.
pub fn refuse(command: &str) -> Result<ExitCode, CliError> {
    Err(CliError::text(
        ExitCode::Usage,
        format!(
            "upshift {command}: this build of upshift has no simulator (built without the `sim` \
             feature); build with default features to use it"
        ),
    ))
}
