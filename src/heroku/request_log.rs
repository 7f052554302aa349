//! The `-v` request log's hook: the client reports each HTTP exchange here, and the command
//! line decides whether and how to show it (the client never prints).

use std::time::Duration;

/// One HTTP exchange as `-v` shows it: what was asked and how it went. Never the token, the
/// query's body or the answer's (config vars hold Redis URLs with passwords).
#[derive(Debug, Clone, Copy)]
pub struct RequestLog<'a> {
    pub method: &'a str,
    /// The API path (`/apps/enketo-demo/addons`), without the host.
    pub path: &'a str,
    /// `None` when no answer came (connection refused, timeout).
    pub status: Option<u16>,
    pub request_id: &'a str,
    pub elapsed: Duration,
}

/// Where request logs go; set once by the command line for `-v`/`UPSHIFT_DEBUG`.
static REQUEST_HOOK: std::sync::OnceLock<fn(&RequestLog<'_>)> = std::sync::OnceLock::new();

/// Calls `hook` after every HTTP exchange with the platform or data API, from then on.
/// A second call is ignored: the first caller (the command line) decides.
pub fn on_request(hook: fn(&RequestLog<'_>)) {
    let _ = REQUEST_HOOK.set(hook);
}

/// The hook set by [`on_request`], if any.
pub(super) fn hook() -> Option<&'static fn(&RequestLog<'_>)> {
    REQUEST_HOOK.get()
}
