//! The one listener for Ctrl-C, SIGTERM, SIGHUP and SIGQUIT. Each command says what a signal
//! means to it (a run counts it as an interrupt, a window wait stops waiting, the wizard asks);
//! the listening itself, and the difference between the signals, live only here.
//!
//! SIGHUP (the terminal closed, an ssh connection dropped) and SIGQUIT (Ctrl-\\) are caught too:
//! their default action ends the process at once, which in the middle of a run leaves the
//! writers stopped with no rollback and no outcome. Both mean what SIGTERM means (nobody is
//! left to ask): stop safely and roll back, a second signal leaves a resumable journal. For
//! SIGQUIT that trades its core dump for a safe stop; `kill -9` remains for a hard stop.
//!
//! A SIGHUP or SIGQUIT the process was started with ignored (`nohup upshift run …`, or a
//! background job of a shell) stays ignored: whoever started it asked for the run to go on when
//! the terminal closes, and catching it would turn that into a rollback.

use std::future::Future;

use tokio::task::JoinHandle;

/// Which signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Ctrl-C (SIGINT): someone is at the terminal.
    Interrupt,
    /// SIGTERM (a supervisor stopping the process), SIGHUP (the terminal or the ssh session is
    /// gone) or SIGQUIT: nobody to ask.
    Terminate,
}

/// Whether to go on listening after a signal was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// Handle the next signal too.
    On,
    /// Stop listening (the task ends; later signals are queued by Tokio, not acted on).
    Off,
}

/// The Unix signals listened to, each registered when [`Signals`] is made.
#[cfg(unix)]
#[derive(Debug)]
struct Unix {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    /// `None` when the process was started with the signal ignored (see the module doc).
    hup: Option<tokio::signal::unix::Signal>,
    quit: Option<tokio::signal::unix::Signal>,
}

/// Signal numbers (the same on every Unix upshift builds for).
#[cfg(unix)]
const SIGHUP: u32 = 1;
#[cfg(unix)]
const SIGQUIT: u32 = 3;

/// The signals this process was started with ignored (bit `n - 1` for signal `n`), read once,
/// before any handler is registered (a registration replaces the inherited disposition, so a
/// later read would no longer see it). Read from `/proc/self/status` (`SigIgn`); where there is
/// no such file, nothing counts as ignored and every signal is caught.
#[cfg(unix)]
fn inherited_ignores() -> u64 {
    static IGNORED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *IGNORED.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .as_deref()
            .and_then(sig_ign)
            .unwrap_or(0)
    })
}

/// The `SigIgn` mask of a `/proc/PID/status` text.
#[cfg(unix)]
fn sig_ign(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// Waits for one delivery of `signal`; never resolves when it is not listened to.
#[cfg(unix)]
async fn recv(signal: Option<&mut tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// Ctrl-C, SIGTERM, SIGHUP and SIGQUIT, registered when this is made: a signal that arrives
/// before the first [`Signals::next`] is kept for it, not lost to the default action (the
/// process ending).
#[derive(Debug)]
pub struct Signals {
    #[cfg(unix)]
    unix: Option<Unix>,
}

impl Signals {
    /// Registers the handlers (inside a Tokio runtime).
    pub fn register() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let ignored = inherited_ignores();
            let optional = |kind: SignalKind, signo: u32| {
                if ignored & (1 << (signo - 1)) == 0 {
                    signal(kind).map(Some)
                } else {
                    Ok(None)
                }
            };
            let unix = || -> std::io::Result<Unix> {
                Ok(Unix {
                    int: signal(SignalKind::interrupt())?,
                    term: signal(SignalKind::terminate())?,
                    hup: optional(SignalKind::hangup(), SIGHUP)?,
                    quit: optional(SignalKind::quit(), SIGQUIT)?,
                })
            };
            Self { unix: unix().ok() }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// The next signal; `None` when signals can no longer be received.
    pub async fn next(&mut self) -> Option<Signal> {
        #[cfg(unix)]
        if let Some(u) = self.unix.as_mut() {
            return tokio::select! {
                r = u.int.recv() => r.map(|()| Signal::Interrupt),
                r = u.term.recv() => r.map(|()| Signal::Terminate),
                r = recv(u.hup.as_mut()) => r.map(|()| Signal::Terminate),
                r = recv(u.quit.as_mut()) => r.map(|()| Signal::Terminate),
            };
        }
        tokio::signal::ctrl_c()
            .await
            .ok()
            .map(|()| Signal::Interrupt)
    }
}

/// Registers the handlers now, then spawns the listener: `on_signal` runs for each Ctrl-C,
/// SIGTERM, SIGHUP or SIGQUIT, one at a time, until it answers [`Listen::Off`] or signals can no longer be
/// received. Abort the returned task to stop listening earlier.
pub fn listen<F, Fut>(mut on_signal: F) -> JoinHandle<()>
where
    F: FnMut(Signal) -> Fut + Send + 'static,
    Fut: Future<Output = Listen> + Send,
{
    let mut signals = Signals::register();
    tokio::spawn(async move {
        while let Some(signal) = signals.next().await {
            if on_signal(signal).await == Listen::Off {
                return;
            }
        }
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::{SIGHUP, SIGQUIT, sig_ign};

    #[test]
    fn the_ignored_mask_is_read_from_the_status_text() {
        // As under `nohup` in a background job: SIGHUP, SIGINT and SIGQUIT ignored.
        let status = "Name:\tupshift\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000007\n";
        let mask = sig_ign(status).unwrap();
        assert_ne!(mask & (1 << (SIGHUP - 1)), 0);
        assert_ne!(mask & (1 << (SIGQUIT - 1)), 0);
        assert_eq!(sig_ign("SigIgn:\t0000000000000000\n"), Some(0));
        assert_eq!(sig_ign("Name:\tx\n"), None);
    }
}
