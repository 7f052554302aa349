//! The Heroku simulator (crate `heroku-sim`, feature `sim`), at its old path `upshift::sim`.
//!
//! The simulator crate cannot know upshift's client (the product depends on it, not the other
//! way round), so the one bridge between them, a client configuration pointing at a simulator,
//! lives here.

use std::time::Duration;

pub use heroku_sim::*;

use crate::heroku::{ClientConfig, RetryPolicy, Token};

/// upshift's view of a running [`Simulator`].
pub trait SimulatorExt {
    /// A client configuration pointing at this simulator, with a fast retry policy for tests.
    fn client_config(&self) -> ClientConfig;
}

impl SimulatorExt for Simulator {
    fn client_config(&self) -> ClientConfig {
        ClientConfig {
            api_url: self.api_url(),
            data_url: self.data_url(),
            token: Token::new(self.api_key()),
            retry: RetryPolicy {
                max_attempts: 5,
                base_backoff: Duration::from_millis(20),
                max_backoff: Duration::from_secs(2),
                call_timeout: Duration::from_secs(10),
                low_rate_pause: Duration::from_millis(10),
            },
        }
    }
}
