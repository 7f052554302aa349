//! The terminal's state, saved once at start and put back on every way out: a normal end, an
//! error, a panic, a signal, or a prompt left open when the run finished. Prompts switch the
//! terminal to raw mode and hide the cursor; a process that ends in between would leave the
//! shell without echo, without Ctrl-C and without a cursor, so nothing here trusts a prompt
//! to clean up after itself.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use rustix::termios::{OptionalActions, Termios, tcgetattr, tcsetattr};

/// The modes stdin had when upshift started (`None`: stdin is not a terminal).
static SAVED: OnceLock<Option<Termios>> = OnceLock::new();

/// Shows the cursor again (DECTCEM), harmless when it is already shown.
const SHOW_CURSOR: &str = "\x1b[?25h";

/// Saves the terminal at start and restores it when dropped; also installs a panic hook that
/// restores it before the panic message is printed. Hold one for the life of the process.
#[derive(Debug)]
#[must_use = "the terminal is restored when the guard is dropped"]
pub struct TerminalGuard(());

impl TerminalGuard {
    /// Saves stdin's terminal modes (once per process) and installs the panic hook.
    pub fn save() -> Self {
        SAVED.get_or_init(|| {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                tcgetattr(&stdin).ok()
            } else {
                None
            }
        });
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        Self(())
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the saved modes back and shows the cursor. Safe to call any number of times, from any
/// thread; does nothing when upshift did not start on a terminal.
pub fn restore() {
    if let Some(Some(saved)) = SAVED.get() {
        let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, saved);
    }
    let stderr = std::io::stderr();
    if stderr.is_terminal() && super::can_redraw() {
        let mut stderr = stderr.lock();
        let _ = stderr.write_all(SHOW_CURSOR.as_bytes());
        let _ = stderr.flush();
    }
}

/// The saved modes with echo, line editing and signal keys off: what a menu reading single
/// keys needs. `None` when stdin is not a terminal.
pub fn raw_modes() -> Option<Termios> {
    let mut modes = SAVED
        .get()
        .cloned()
        .flatten()
        .or_else(|| tcgetattr(std::io::stdin()).ok())?;
    modes.local_modes -= rustix::termios::LocalModes::ICANON
        | rustix::termios::LocalModes::ECHO
        | rustix::termios::LocalModes::ISIG;
    Some(modes)
}

/// Switches stdin to `modes` (see [`raw_modes`]); [`restore`] undoes it.
pub fn set_modes(modes: &Termios) {
    let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, modes);
}

/// Whether the locale's character set is UTF-8 (`LC_ALL`, else `LC_CTYPE`, else `LANG`, the
/// first one set, as setlocale reads them). Under `LC_ALL=C` a terminal shows `…` as three
/// bytes of garbage.
pub fn utf8() -> bool {
    let locale = ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|l| !l.is_empty()))
        .unwrap_or_default()
        .to_ascii_lowercase();
    locale.contains("utf-8") || locale.contains("utf8")
}

/// The mark of cut text: `…`, or `...` when the locale is not UTF-8.
pub fn ellipsis() -> &'static str {
    if utf8() { "…" } else { "..." }
}
