//! Errors of the Heroku client. Every API error carries the request id Heroku support asks for.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::printable::text;

/// What went wrong talking to Heroku (or getting ready to). The fields keep what the server
/// sent; the messages show it through [`text`]: an error body (from Heroku, or a proxy or a
/// captive portal in between) must not move the cursor or forge a line on the terminal.
#[derive(Debug, Error)]
pub enum HerokuError {
    #[error(
        "no Heroku API key found: set HEROKU_API_KEY, add `machine api.heroku.com` with a \
         password to {netrc}, or log in with the Heroku CLI (`heroku login`: upshift asks \
         `heroku auth:token` when neither has one)"
    )]
    NoToken { netrc: PathBuf },

    #[error(
        "the API key from {from} holds a space, a line break or another character an HTTP \
         header cannot carry: copy it again (`heroku auth:token` prints it)"
    )]
    BadToken { from: &'static str },

    #[error("cannot read {path}")]
    ReadNetrc {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "{var} is not a usable base URL ({value}): {reason}; write it like https://api.heroku.com"
    )]
    BadBaseUrl {
        var: &'static str,
        value: String,
        reason: String,
    },

    #[error(
        "Heroku rejected the API key (401 {id}: {message}); request id {request_id}; check HEROKU_API_KEY or run `heroku auth:token`"
    , id = text(.id), message = text(.message), request_id = text(.request_id))]
    Unauthorized {
        id: String,
        message: String,
        request_id: String,
    },

    #[error("Heroku refused {method} {path} (403 {id}: {message}); request id {request_id}", method = text(.method), path = text(.path), id = text(.id), message = text(.message), request_id = text(.request_id))]
    Forbidden {
        method: String,
        path: String,
        id: String,
        message: String,
        request_id: String,
    },

    #[error("not found: {method} {path} (404: {message}); request id {request_id}", method = text(.method), path = text(.path), message = text(.message), request_id = text(.request_id))]
    NotFound {
        method: String,
        path: String,
        message: String,
        resource: Option<String>,
        request_id: String,
    },

    #[error(
        "Heroku rejected {method} {path} as invalid (422 {id}: {message}); request id {request_id}"
    , method = text(.method), path = text(.path), id = text(.id), message = text(.message), request_id = text(.request_id))]
    InvalidParams {
        method: String,
        path: String,
        id: String,
        message: String,
        request_id: String,
    },

    #[error("conflict on {method} {path} (409: {message}); request id {request_id}", method = text(.method), path = text(.path), message = text(.message), request_id = text(.request_id))]
    Conflict {
        method: String,
        path: String,
        message: String,
        request_id: String,
    },

    #[error(
        "Heroku's rate limit is exhausted ({method} {path}, 429: {message}); request id \
         {request_id}; wait a few minutes (the pool refills about 75 calls a minute)"
    , method = text(.method), path = text(.path), message = text(.message), request_id = text(.request_id))]
    RateLimited {
        method: String,
        path: String,
        message: String,
        retry_after: Option<Duration>,
        request_id: String,
    },

    #[error(
        "Heroku answered {status} to {method} {path} ({id}: {message}); request id {request_id}"
    , method = text(.method), path = text(.path), id = text(.id), message = text(.message), request_id = text(.request_id))]
    Api {
        status: u16,
        method: String,
        path: String,
        id: String,
        message: String,
        request_id: String,
    },

    #[error("could not reach Heroku for {method} {path}", path = text(.path))]
    Transport {
        method: String,
        path: String,
        source: reqwest::Error,
    },

    #[error(
        "Heroku's answer to {method} {path} is larger than upshift accepts ({}{} MiB at most); \
         stopped reading it; request id {request_id}",
        .declared.map(|d| format!("Content-Length {d}; ")).unwrap_or_default(),
        .limit / (1024 * 1024),
        path = text(.path),
        request_id = text(.request_id)
    )]
    BodyTooLarge {
        method: String,
        path: String,
        limit: u64,
        declared: Option<u64>,
        request_id: String,
    },

    #[error(
        "Heroku's list GET {path} does not end: {reason}; stopped; request id {request_id}",
        path = text(.path),
        reason = text(.reason),
        request_id = text(.request_id)
    )]
    EndlessList {
        path: String,
        reason: String,
        request_id: String,
    },

    #[error(
        "{name} is ambiguous: Heroku resolves it to {} add-ons ({}); name the add-on itself \
         (e.g. `--change {}=PLAN`); nothing was done",
        .matches.len(),
        text(&.matches.join(", ")),
        text(.matches.first().map_or("ADDON", String::as_str)),
        name = text(.name)
    )]
    AmbiguousAddon { name: String, matches: Vec<String> },

    #[error(
        "{name} resolved to add-on {addon}, but {reason}; nothing was done",
        name = text(.name),
        addon = text(.addon),
        reason = text(.reason)
    )]
    WrongAddon {
        name: String,
        addon: String,
        reason: String,
    },

    #[error(
        "unexpected response body for {method} {path} (request id {request_id})",
        path = text(.path),
        request_id = text(.request_id)
    )]
    Decode {
        method: String,
        path: String,
        request_id: String,
        source: serde_json::Error,
    },
}

impl HerokuError {
    /// The request id Heroku (or the simulator) gave the failing call, when there was one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Unauthorized { request_id, .. }
            | Self::Forbidden { request_id, .. }
            | Self::NotFound { request_id, .. }
            | Self::InvalidParams { request_id, .. }
            | Self::Conflict { request_id, .. }
            | Self::RateLimited { request_id, .. }
            | Self::Api { request_id, .. }
            | Self::BodyTooLarge { request_id, .. }
            | Self::EndlessList { request_id, .. }
            | Self::Decode { request_id, .. } => Some(request_id),
            _ => None,
        }
    }

    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized { .. } => Some(401),
            Self::Forbidden { .. } => Some(403),
            Self::NotFound { .. } => Some(404),
            Self::Conflict { .. } => Some(409),
            Self::InvalidParams { .. } => Some(422),
            Self::RateLimited { .. } => Some(429),
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether trying the same idempotent call again may succeed: rate limits, server errors,
    /// timeouts and connection failures.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::RateLimited { .. } => true,
            Self::Api { status, .. } => *status >= 500,
            Self::Transport { source, .. } => {
                source.is_timeout() || source.is_connect() || source.is_request()
            }
            _ => false,
        }
    }
}
