//! A one-question menu that can be closed from outside. The Ctrl-C menu is asked while the run
//! goes on, so the run may finish first: a dialoguer prompt blocks in `read` and cannot be
//! told to stop, and its thread would then hold the terminal raw (swallowing every later
//! Ctrl-C) until the process dies. This menu polls stdin in short slices, so [`Menu::close`]
//! ends it at once, erases it and gives the terminal back. It draws with the same theme as
//! every other prompt ([`super::theme`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec, poll};

use super::terminal;

/// How the menu ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuAnswer {
    /// Enter on this item.
    Chosen(usize),
    /// Esc or `q`: the question was dismissed.
    Dismissed,
    /// Ctrl-C at the menu.
    Interrupted,
    /// [`Menu::close`] ended it before anyone answered.
    Closed,
}

/// A key the menu understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Up,
    Down,
    Enter,
    Escape,
    Interrupt,
    Other,
}

/// Reads one key from what a single `read` returned (a key and its escape sequence arrive
/// together from a terminal).
fn key(bytes: &[u8]) -> Key {
    match bytes {
        [b'\r' | b'\n', ..] => Key::Enter,
        [0x03, ..] => Key::Interrupt,
        [0x1b, b'[' | b'O', b'A', ..] | [b'k', ..] => Key::Up,
        [0x1b, b'[' | b'O', b'B', ..] | [b'j' | b'\t', ..] => Key::Down,
        [0x1b] | [b'q', ..] => Key::Escape,
        _ => Key::Other,
    }
}

/// The menu's state: what is highlighted after a key.
fn step(selected: usize, len: usize, key: Key) -> usize {
    match key {
        Key::Up => (selected + len - 1) % len,
        Key::Down => (selected + 1) % len,
        _ => selected,
    }
}

/// A menu being asked on its own thread.
#[derive(Debug)]
pub struct Menu {
    closing: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Menu {
    /// Draws the menu on stderr and starts reading keys; the answer arrives on the receiver.
    pub fn open(
        prompt: String,
        items: Vec<String>,
        default: usize,
    ) -> (Self, tokio::sync::oneshot::Receiver<MenuAnswer>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let closing = Arc::new(AtomicBool::new(false));
        let flag = closing.clone();
        let thread = std::thread::spawn(move || {
            let answer = ask(
                &prompt,
                &items,
                default.min(items.len().saturating_sub(1)),
                &flag,
            );
            let _ = tx.send(answer);
        });
        (
            Self {
                closing,
                thread: Some(thread),
            },
            rx,
        )
    }

    /// Ends the menu if nobody answered it (erased, terminal restored) and waits for its
    /// thread, at most one poll slice.
    pub fn close(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Menu {
    fn drop(&mut self) {
        self.close();
    }
}

/// How long one wait for a key lasts before the closing flag is looked at again.
const SLICE: Duration = Duration::from_millis(50);

fn ask(prompt: &str, items: &[String], default: usize, closing: &AtomicBool) -> MenuAnswer {
    if items.is_empty() {
        return MenuAnswer::Dismissed;
    }
    let Some(raw) = terminal::raw_modes() else {
        return MenuAnswer::Dismissed;
    };
    terminal::set_modes(&raw);
    let term = console::Term::stderr();
    let theme = super::theme();
    let _ = term.hide_cursor();
    let mut selected = default;
    let mut drawn = draw(&term, &*theme, prompt, items, selected);
    let answer = loop {
        if closing.load(Ordering::SeqCst) {
            break MenuAnswer::Closed;
        }
        let stdin = std::io::stdin();
        let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
        let timeout = Timespec::try_from(SLICE).unwrap_or(Timespec {
            tv_sec: 0,
            tv_nsec: 50_000_000,
        });
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(_) => break MenuAnswer::Dismissed,
        }
        let mut buf = [0_u8; 16];
        let n = match rustix::io::read(&stdin, &mut buf) {
            Ok(0) | Err(_) => break MenuAnswer::Dismissed,
            Ok(n) => n,
        };
        match key(&buf[..n]) {
            Key::Enter => break MenuAnswer::Chosen(selected),
            Key::Escape => break MenuAnswer::Dismissed,
            Key::Interrupt => break MenuAnswer::Interrupted,
            k @ (Key::Up | Key::Down) => {
                selected = step(selected, items.len(), k);
                let _ = term.clear_last_lines(drawn);
                drawn = draw(&term, &*theme, prompt, items, selected);
            }
            Key::Other => {}
        }
    };
    let _ = term.clear_last_lines(drawn);
    if let MenuAnswer::Chosen(i) = answer {
        let mut line = String::new();
        let _ = theme.format_select_prompt_selection(&mut line, prompt, &items[i]);
        let _ = term.write_line(&line);
    }
    terminal::restore();
    answer
}

/// Draws the prompt and the items; returns how many screen rows they took, counting the rows
/// a long item wraps onto, so the next redraw erases exactly them (no ghost lines on a
/// narrow terminal).
fn draw(
    term: &console::Term,
    theme: &dyn dialoguer::theme::Theme,
    prompt: &str,
    items: &[String],
    selected: usize,
) -> usize {
    let columns = usize::from(term.size().1).max(1);
    let mut lines = Vec::with_capacity(items.len() + 1);
    let mut head = String::new();
    let _ = theme.format_select_prompt(&mut head, prompt);
    lines.push(head);
    for (i, item) in items.iter().enumerate() {
        let mut line = String::new();
        let _ = theme.format_select_prompt_item(&mut line, item, i == selected);
        lines.push(line);
    }
    let mut rows = 0;
    for line in &lines {
        let _ = term.write_line(line);
        rows += rows_of(console::measure_text_width(line), columns);
    }
    rows
}

/// Screen rows a line of `width` columns takes on a terminal `columns` wide.
fn rows_of(width: usize, columns: usize) -> usize {
    width.div_ceil(columns).max(1)
}

#[cfg(test)]
mod tests {
    use super::{Key, key, rows_of, step};

    #[test]
    fn keys_and_moves_wrap_around_the_list() {
        assert_eq!(key(b"\x1b[A"), Key::Up);
        assert_eq!(key(b"\x1bOB"), Key::Down);
        assert_eq!(key(b"\r"), Key::Enter);
        assert_eq!(key(b"\x1b"), Key::Escape);
        assert_eq!(key(b"\x03"), Key::Interrupt);
        assert_eq!(key(b"x"), Key::Other);
        assert_eq!(step(0, 3, Key::Up), 2);
        assert_eq!(step(2, 3, Key::Down), 0);
        assert_eq!(rows_of(0, 60), 1);
        assert_eq!(rows_of(60, 60), 1);
        assert_eq!(rows_of(61, 60), 2);
        assert_eq!(rows_of(130, 60), 3);
    }
}
