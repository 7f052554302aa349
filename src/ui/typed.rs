//! A line typed at a prompt (the app name that confirms a run), read key by key so that Esc
//! cancels it like every other question: dialoguer's `Input` ignores Esc, which left the one
//! question that matters most without the way out the others have.

use std::io;

use console::{Key, Term};
use dialoguer::theme::Theme;

/// Asks `prompt` in `theme`'s style and reads one line on `term`.
///
/// Returns `Ok(None)` for Esc. Ctrl-C (read as a key, the terminal being raw) is an
/// [`io::ErrorKind::Interrupted`] error, as dialoguer's prompts report it; the prompt's line is
/// cleared either way. Enter leaves the prompt with its answer on the screen, as `Input` does.
///
/// # Errors
/// `term` is not a terminal, the input ended, or Ctrl-C.
pub fn read_line(term: &Term, theme: &dyn Theme, prompt: &str) -> io::Result<Option<String>> {
    if !term.is_term() {
        return Err(io::Error::other("not a terminal"));
    }
    let mut head = String::new();
    theme
        .format_input_prompt(&mut head, prompt, None)
        .map_err(io::Error::other)?;
    term.write_str(&head)?;
    term.flush()?;
    let mut line = String::new();
    loop {
        match term.read_key_raw()? {
            Key::Enter => {
                let mut done = String::new();
                theme
                    .format_input_prompt_selection(&mut done, prompt, &line)
                    .map_err(io::Error::other)?;
                term.clear_line()?;
                term.write_line(&done)?;
                return Ok(Some(line));
            }
            Key::Escape => {
                term.clear_line()?;
                return Ok(None);
            }
            Key::CtrlC => {
                term.clear_line()?;
                return Err(io::ErrorKind::Interrupted.into());
            }
            Key::Backspace if !line.is_empty() => {
                line.pop();
                term.clear_chars(1)?;
            }
            Key::Char(c) if !c.is_control() => {
                line.push(c);
                term.write_str(c.encode_utf8(&mut [0; 4]))?;
            }
            _ => {}
        }
        term.flush()?;
    }
}
