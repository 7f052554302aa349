//! The one listener for Ctrl-C and SIGTERM. Each command says what a signal means to it (a
//! run counts it as an interrupt, a window wait stops waiting, the wizard asks); the listening
//! itself, and the difference between the two signals, live only here.

use std::future::Future;

use tokio::task::JoinHandle;

/// Which signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Ctrl-C (SIGINT): someone is at the terminal.
    Interrupt,
    /// SIGTERM: a supervisor stopping the process; nobody to ask.
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

/// Ctrl-C and SIGTERM, registered when this is made: a signal that arrives before the first
/// [`Signals::next`] is kept for it, not lost to the default action (the process ending).
#[derive(Debug)]
pub struct Signals {
    #[cfg(unix)]
    unix: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    /// Registers the handlers (inside a Tokio runtime).
    pub fn register() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                unix: signal(SignalKind::interrupt())
                    .and_then(|int| Ok((int, signal(SignalKind::terminate())?)))
                    .ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// The next signal; `None` when signals can no longer be received.
    pub async fn next(&mut self) -> Option<Signal> {
        #[cfg(unix)]
        if let Some((int, term)) = self.unix.as_mut() {
            return tokio::select! {
                r = int.recv() => r.map(|()| Signal::Interrupt),
                r = term.recv() => r.map(|()| Signal::Terminate),
            };
        }
        tokio::signal::ctrl_c()
            .await
            .ok()
            .map(|()| Signal::Interrupt)
    }
}

/// Registers the handlers now, then spawns the listener: `on_signal` runs for each Ctrl-C or
/// SIGTERM, one at a time, until it answers [`Listen::Off`] or signals can no longer be
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
