//! The integration tests, in one binary: one link instead of eleven, one harness. Each module
//! is one former test binary; `harness` (an Enketo simulator, the `upshift` binary pointed at
//! it, journal queries, playbooks edited by field), `common` (bare simulators for the simulator's
//! own tests) and `verify_support` (a lone redis-server) are shared by all.
//!
//! redis-server must be installed: tests that need it fail loudly, they never skip.

mod common;
mod harness;
mod verify_support;

mod api_text;
mod bad_url;
mod cli_run;
mod crash;
mod crash_swap;
mod drain;
mod foreign;
mod ha;
mod hostile_api;
mod journal_safety;
mod json_schema;
mod layout;
mod live_swap;
mod matrix;
mod outputs;
mod run;
mod signals;
mod sim_client;
mod sim_platform;
mod sim_schema;
mod swap;
mod unattended;
mod verify;
mod verify_connect;
mod verify_damage;
mod verify_dump;
mod verify_wire;
mod window_outputs;
mod wizard;
mod write_evidence;
mod write_mark;
