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

/// Spawns the listener: `on_signal` runs for each Ctrl-C or SIGTERM, one at a time, until it
/// answers [`Listen::Off`] or signals can no longer be received. Abort the returned task to stop
/// listening earlier.
pub fn listen<F, Fut>(mut on_signal: F) -> JoinHandle<()>
where
    F: FnMut(Signal) -> Fut + Send + 'static,
    Fut: Future<Output = Listen> + Send,
{
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        loop {
            #[cfg(unix)]
            let signal = match term.as_mut() {
                Some(t) => tokio::select! {
                    r = tokio::signal::ctrl_c() => r.ok().map(|()| Signal::Interrupt),
                    r = t.recv() => r.map(|()| Signal::Terminate),
                },
                None => tokio::signal::ctrl_c()
                    .await
                    .ok()
                    .map(|()| Signal::Interrupt),
            };
            #[cfg(not(unix))]
            let signal = tokio::signal::ctrl_c()
                .await
                .ok()
                .map(|()| Signal::Interrupt);
            let Some(signal) = signal else {
                return;
            };
            if on_signal(signal).await == Listen::Off {
                return;
            }
        }
    })
}
