//! Errors of the simulator: scenario loading, redis-server processes, the HTTP listener.

use std::path::PathBuf;

use thiserror::Error;

/// What went wrong starting or running the simulator.
#[derive(Debug, Error)]
pub enum SimError {
    #[error(
        "redis-server not found: run scripts/ensure-deps (the simulator runs one real redis-server per heroku-redis add-on)"
    )]
    RedisServerMissing,

    #[error(
        "unknown built-in scenario `{name}`; built-ins are: {known}; or pass a path to a TOML file"
    )]
    UnknownScenario { name: String, known: String },

    #[error("cannot read scenario file {path}")]
    ReadScenario {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("invalid scenario {origin}:{line}:{column}: {message}")]
    ParseScenario {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },

    #[error("invalid scenario {origin}: {message}")]
    InvalidScenario { origin: String, message: String },

    #[error("cannot listen on 127.0.0.1:{port}; pick another --port or 0 for any free port")]
    Bind { port: u16, source: std::io::Error },

    #[error("cannot create a data directory for redis-server")]
    TempDir { source: std::io::Error },

    #[error("cannot start redis-server for add-on {addon}")]
    SpawnRedis {
        addon: String,
        source: std::io::Error,
    },

    #[error(
        "redis-server for add-on {addon} did not answer on port {port} within {waited_ms} ms: {detail}"
    )]
    RedisNotReady {
        addon: String,
        port: u16,
        waited_ms: u128,
        detail: String,
    },

    #[error("redis command failed on add-on {addon} ({context})")]
    Redis {
        addon: String,
        context: String,
        source: redis::RedisError,
    },

    #[error("the simulator's process spawner thread is gone; restart the simulator")]
    SpawnerGone,

    #[error("unknown add-on `{0}` in the simulator")]
    UnknownAddon(String),

    #[error("unknown app `{0}` in the simulator")]
    UnknownApp(String),

    #[error("invalid fault: {0}")]
    InvalidFault(String),
}
