//! Terminal output that cannot end a run. `println!` and `eprintln!` panic when their stream
//! is gone (a closed pipe: `upshift run … | head`, a log collector that died, a terminal that
//! closed), and a panic in the middle of a run leaves the writers stopped until someone runs
//! `upshift resume`. Everything upshift prints goes through these instead: a failed write is
//! dropped, the run goes on, and the journal (not the terminal) is the record. The macros
//! (`out!`, `outln!`, `errout!`, `errln!`) are defined in `lib.rs` so every module has them;
//! the layout test forbids the std ones in the product's source. Being the one way out, they
//! are also where [`crate::printable::terminal`] disarms any control sequence a print site let
//! through from the API or the data (print sites escape names with [`crate::printable::text`]
//! first; this catches the ones that forget).

use std::fmt;
use std::io::Write;

/// Writes to stdout; a failure is ignored (see the module doc).
pub fn stdout(args: fmt::Arguments<'_>) {
    let text = fmt::format(args);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(crate::printable::terminal(&text).as_bytes());
    let _ = out.flush();
}

/// Writes to stderr; a failure is ignored (see the module doc).
pub fn stderr(args: fmt::Arguments<'_>) {
    let text = fmt::format(args);
    let _ = std::io::stderr()
        .lock()
        .write_all(crate::printable::terminal(&text).as_bytes());
}
