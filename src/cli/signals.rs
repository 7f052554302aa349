//! The one listener for Ctrl-C, SIGTERM, SIGHUP and SIGQUIT. Each command says what a signal
//! means to it (a run counts it as an interrupt, a window wait stops waiting, the wizard asks);
//! the listening itself, and the difference between the signals, live only here.
//!
//! SIGHUP (the terminal closed, an ssh connection dropped) and SIGQUIT (Ctrl-\\) are caught too:
//! their default action ends the process at once, which in the middle of a run leaves the
//! writers stopped with no rollback and no outcome. Both mean what SIGTERM means (nobody is
//! left to ask): stop safely and roll back, a second signal leaves a resumable journal. For
//! SIGQUIT that trades its core dump for a safe stop; `kill -9` remains for a hard stop.

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
    hup: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
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
            let unix = || -> std::io::Result<Unix> {
                Ok(Unix {
                    int: signal(SignalKind::interrupt())?,
                    term: signal(SignalKind::terminate())?,
                    hup: signal(SignalKind::hangup())?,
                    quit: signal(SignalKind::quit())?,
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
                r = u.hup.recv() => r.map(|()| Signal::Terminate),
                r = u.quit.recv() => r.map(|()| Signal::Terminate),
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
