//! Unattended runs: the pure decisions behind `--window`, `--plan FILE`, `--watch`,
//! `--notify` and `--log-format json`, plus the reporters that fan run events out.
//!
//! * [`gate`]: is the window open, when does it open next, and the cutoff guard checked right
//!   before the first write.
//! * [`drift`]: what changed on the platform since a reviewed plan was saved.
//! * [`review`]: how the plan a run would execute now differs from the reviewed one.
//! * [`watch`]: which log lines after the change are the errors the Enketo guide warns about.
//! * [`event`]: the stable JSON shapes of log events and notifications.
//! * [`reporters`]: a [`reporters::Tee`] of reporters and the JSON-lines reporter.
//! * [`plan_file`]: the reviewed plan file (`plan --out`, `run --plan`).
//!
//! Everything here but `plan_file`'s save/load and the JSON reporter's writes is pure: the
//! clock and the platform are passed in.

pub mod event;
// Pure logic the runner needs too lives below it; these names keep the unattended view.
pub use crate::events::watch;
pub use crate::plan::{drift, review};
pub use crate::window::gate;
pub mod plan_file;
pub mod reporters;
