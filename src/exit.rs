//! The one exit-code enum. Scripts and alerting depend on these numbers (see README).

/// How an `upshift` process ends. The numbers are part of the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// The run succeeded (or the command did what it was asked).
    Success,
    /// The run failed and was rolled back: the app is restored.
    RolledBack,
    /// Usage or bad input: nothing was written to the platform.
    Usage,
    /// A guard blocked the run: nothing was written.
    Blocked,
    /// Something could not be compensated: the message says what to do by hand.
    NeedsAttention,
    /// Another run holds this app.
    Locked,
    /// Stopped after the point of no return: the new plan stays, its data verified, the app
    /// restored on its formation. Not the same as 1: the add-on did not go back.
    KeptNewPlan,
    /// Interrupted; the journal is resumable.
    Interrupted,
}

impl ExitCode {
    /// The process exit status for this outcome.
    pub const fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::RolledBack => 1,
            Self::Usage => 2,
            Self::Blocked => 3,
            Self::NeedsAttention => 4,
            Self::Locked => 5,
            Self::KeptNewPlan => 6,
            Self::Interrupted => 130,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        Self::from(code.code())
    }
}
