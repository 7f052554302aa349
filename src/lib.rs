//! upshift changes the plan of a Heroku add-on (heroku-redis first) without losing data and
//! with the shortest downtime the platform allows.
//!
//! The major components are:
//!
//! * [`cli`]: the clap front end. Arguments convert through pure `TryFrom`s into the
//!   configuration the library uses; `main.rs` only parses, calls [`cli::run`] and exits with an
//!   [`exit::ExitCode`].
//! * [`heroku`]: the one Heroku client (Platform API and the Redis Data API) over reqwest. It is
//!   the only module that speaks HTTP to Heroku.
//! * [`plans`]: the heroku-redis plan catalog (memory, connection limit). The platform's plan
//!   objects carry neither figure, so upshift keeps its own.
//! * [`sim`]: the Heroku simulator, a real axum server backed by real `redis-server` processes.
//!   It is the only fake: tests and the demo point the real client at it. Its behaviour
//!   profiles ([`sim::Profile`]) model each plausible answer where Heroku is undocumented; the
//!   runner's wait ([`runner::evidence`]) must not be fooled by any of them.
//! * [`verify`]: the exact data verifier (canonical per-key digest, decoded from DUMP payloads
//!   with type-specific reads as the fallback; diff, snapshot, restore)
//!   over the `redis` crate.
//! * [`runner`]: the only module with effects: `runner::driver` asks the pure [`engine`] for
//!   the next step and dispatches it to its module under `runner/steps/` (one per step, a
//!   read-only context in, a typed output out, journal records through the ledger).
//! * [`swap`]: building blocks of the live swap: a keyspace watch of the keys that change while
//!   a copy runs, and a copier that keeps absolute expiries.
//! * [`unattended`]: unattended runs: the sealed plan file, JSON event shapes and the
//!   reporters that fan events out; [`notify`] posts the notable ones to webhooks.
//! * [`events`]: a leaf with what the runner reports ([`events::RunEvent`], the
//!   [`events::Reporter`] trait) and the log-watch classifier; the runner, the UI and the
//!   unattended reporters depend on it, never on each other.
//! * [`plan`]: the plan as data: captured facts, guards, drift from a reviewed capture and the
//!   rebuilt plan against the reviewed one.
//! * [`window`]: the pure maintenance-window math (`--window` specs, DST-correct occurrences,
//!   the cutoff before the point of no return and the gate that admits a run, run-time
//!   estimates); "now" is always passed in.
//!
//! * [`printable`]: data-derived text (Redis key names) escaped for people, and exact in JSON
//!   ([`printable::base64`]); every human rendering of a key goes through [`printable::key`].
//!
//! Data flows one way: `cli` builds a request, the runner captures the platform through
//! `heroku`, guards decide on pure values, effects go out through `heroku` and `verify`, and
//! every step is journaled before and after it runs.

/// `print!` that never panics: a write to a closed stdout is dropped ([`ui::out`]).
macro_rules! out {
    ($($arg:tt)*) => { $crate::ui::out::stdout(format_args!($($arg)*)) };
}

/// `println!` that never panics: a write to a closed stdout is dropped ([`ui::out`]).
macro_rules! outln {
    () => { $crate::ui::out::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::ui::out::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprint!` that never panics: a write to a closed stderr is dropped ([`ui::out`]).
macro_rules! errout {
    ($($arg:tt)*) => { $crate::ui::out::stderr(format_args!($($arg)*)) };
}

/// `eprintln!` that never panics: a write to a closed stderr is dropped ([`ui::out`]).
macro_rules! errln {
    () => { $crate::ui::out::stderr(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::ui::out::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

pub mod cli;
pub mod engine;
pub mod events;
pub mod exit;
pub mod files;
pub mod heroku;
pub mod journal;
pub mod notify;
pub mod plan;
pub use heroku_model::plans;
pub mod playbook;
pub mod printable;
pub mod runner;
#[cfg(feature = "sim")]
pub mod sim;
pub mod swap;
pub mod ui;
pub mod unattended;
pub mod units;
pub mod verify;
pub mod window;
