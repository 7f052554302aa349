//! The plumbing under every call: one logical request with its attempts, backoff and
//! `Retry-After`, pagination by `Next-Range`, rate-limit bookkeeping, the request log, and the
//! mapping of Heroku's error bodies to [`HerokuError`]. The calls themselves live in `mod.rs`
//! and `lifecycle.rs`.

use std::sync::atomic::Ordering;

use rand::Rng;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::models::ErrorBody;
use super::request_log::{self, RequestLog};
use super::{Api, Client, HerokuError, Idempotency, LOW_RATE_LIMIT, Written};

impl Client {
    /// A write Heroku cannot take twice (no idempotency keys): sent once, and after a
    /// transient failure the platform is re-read with `landed` before anything is sent again.
    /// When `landed` finds the write's effect, that value is the answer; otherwise the write is
    /// retried, up to the retry policy's attempts. Every non-idempotent call goes through here,
    /// so none can be sent twice by a retry.
    pub(super) async fn write_once<T, B, F, Fut>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        landed: F,
    ) -> Result<Written<T>, HerokuError>
    where
        T: DeserializeOwned,
        B: Serialize + ?Sized,
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let mut attempt = 1;
        loop {
            match self
                .write(
                    method.clone(),
                    Api::Platform,
                    path,
                    body,
                    Idempotency::Unsafe,
                )
                .await
            {
                Err(e) if e.is_transient() && attempt < self.retry.max_attempts => {
                    self.pause_after(&e, attempt).await;
                    if let Some(value) = landed().await {
                        return Ok(Written {
                            value,
                            request_id: e.request_id().unwrap_or("").to_owned(),
                        });
                    }
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    pub(super) async fn get<T: DeserializeOwned>(
        &self,
        api: Api,
        path: &str,
    ) -> Result<T, HerokuError> {
        let (value, _, _) = self
            .send::<T, ()>(Method::GET, api, path, None, None, Idempotency::Safe)
            .await?;
        Ok(value)
    }

    pub(super) async fn write<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        api: Api,
        path: &str,
        body: &B,
        idempotency: Idempotency,
    ) -> Result<Written<T>, HerokuError> {
        let (value, request_id, _) = self
            .send(method, api, path, Some(body), None, idempotency)
            .await?;
        Ok(Written { value, request_id })
    }

    /// Follows `Next-Range` until the list is complete (Heroku answers 206 while it is not).
    pub(super) async fn list<T: DeserializeOwned>(
        &self,
        api: Api,
        path: &str,
    ) -> Result<Vec<T>, HerokuError> {
        let mut all = Vec::new();
        let mut range: Option<String> = None;
        let mut pages = 0usize;
        loop {
            let (page, request_id, next): (Vec<T>, _, _) = self
                .send::<Vec<T>, ()>(
                    Method::GET,
                    api,
                    path,
                    None,
                    range.as_deref(),
                    Idempotency::Safe,
                )
                .await?;
            pages += 1;
            all.extend(page);
            let endless = |reason: String| HerokuError::EndlessList {
                path: path.to_owned(),
                reason,
                request_id: request_id.clone(),
            };
            if all.len() > MAX_LIST_ITEMS {
                return Err(endless(format!("more than {MAX_LIST_ITEMS} items")));
            }
            match next {
                // A `Next-Range` equal to the Range just sent asks for the same page again:
                // following it would loop for ever.
                Some(next) if range.as_deref() == Some(next.as_str()) => {
                    return Err(endless("its Next-Range repeats the Range just sent".into()));
                }
                Some(_) if pages >= MAX_LIST_PAGES => {
                    return Err(endless(format!(
                        "still not complete after {MAX_LIST_PAGES} pages"
                    )));
                }
                Some(next) => range = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// One logical call: attempts, backoff, error mapping. Returns the decoded body, the
    /// request id and the `Next-Range` of a partial list.
    pub(super) async fn send<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        api: Api,
        path: &str,
        body: Option<&B>,
        range: Option<&str>,
        idempotency: Idempotency,
    ) -> Result<(T, String, Option<String>), HerokuError> {
        let base = match api {
            Api::Platform => &self.api_url,
            Api::Data => &self.data_url,
        };
        let url = join(base, path);
        let mut attempt = 1;
        loop {
            if self.rate_limit_remaining() < LOW_RATE_LIMIT {
                tokio::time::sleep(self.retry.low_rate_pause).await;
            }
            let result = self.attempt(&method, &url, path, body, range).await;
            match result {
                Err(e)
                    if idempotency == Idempotency::Safe
                        && e.is_transient()
                        && attempt < self.retry.max_attempts =>
                {
                    self.pause_after(&e, attempt).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Sleeps before the next attempt: `Retry-After` when Heroku gave one, else backoff.
    pub(super) async fn pause_after(&self, error: &HerokuError, attempt: u32) {
        let backoff = self.retry.backoff(attempt, rand::rng().random::<f64>());
        let wait = match error {
            HerokuError::RateLimited {
                retry_after: Some(after),
                ..
            } => (*after).min(self.retry.max_backoff),
            _ => backoff,
        };
        tokio::time::sleep(wait).await;
    }

    pub(super) async fn attempt<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: &Method,
        url: &Url,
        path: &str,
        body: Option<&B>,
        range: Option<&str>,
    ) -> Result<(T, String, Option<String>), HerokuError> {
        let started = std::time::Instant::now();
        let sent_id = uuid::Uuid::new_v4().to_string();
        let log = |status: Option<StatusCode>, request_id: &str| {
            if let Some(hook) = request_log::hook() {
                hook(&RequestLog {
                    method: method.as_str(),
                    path,
                    status: status.map(|s| s.as_u16()),
                    request_id,
                    elapsed: started.elapsed(),
                });
            }
        };
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header(AUTHORIZATION, format!("Bearer {}", self.token.expose()))
            .header("Request-Id", &sent_id);
        if let Some(range) = range {
            request = request.header("Range", range);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport = |source| HerokuError::Transport {
            method: method.to_string(),
            path: path.to_owned(),
            source,
        };
        let response = request.send().await.map_err(|e| {
            log(None, &sent_id);
            transport(e)
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let request_id = header(&headers, "Request-Id").unwrap_or(sent_id);
        log(Some(status), &request_id);
        if let Some(remaining) =
            header(&headers, "RateLimit-Remaining").and_then(|v| v.parse().ok())
        {
            self.rate_remaining.store(remaining, Ordering::Relaxed);
        }
        let bytes = read_capped(response, MAX_BODY_BYTES)
            .await
            .map_err(|e| match e {
                Capped::Transport(e) => transport(e),
                Capped::TooLarge { declared } => HerokuError::BodyTooLarge {
                    method: method.to_string(),
                    path: path.to_owned(),
                    limit: MAX_BODY_BYTES,
                    declared,
                    request_id: request_id.clone(),
                },
            })?;
        if status.is_success() {
            let next = (status == StatusCode::PARTIAL_CONTENT)
                .then(|| header(&headers, "Next-Range"))
                .flatten();
            let value = serde_json::from_slice(&bytes).map_err(|source| HerokuError::Decode {
                method: method.to_string(),
                path: path.to_owned(),
                request_id: request_id.clone(),
                source,
            })?;
            return Ok((value, request_id, next));
        }
        Err(map_error(
            method, path, status, &headers, &bytes, request_id,
        ))
    }
}

/// The most bytes one API answer may carry. Heroku's largest legitimate answers (a long
/// release list page, an app's config vars, a formation of many process types) are a few
/// hundred kB and a page holds at most 1000 items, so 16 MiB is far above anything real while
/// still bounding what a hostile or broken server (or proxy) can make upshift hold: an
/// endless body otherwise grows the process at the speed of the network until the OOM killer
/// ends a run with its writers stopped.
pub(super) const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// The most pages one list call follows. Heroku's pages hold up to 1000 items and upshift
/// lists an app's formation, dynos, add-ons, releases and the plans of one service: none
/// comes near 100,000 items, so a list still "partial" after 100 pages is a server that
/// never ends it, and following it would burn the account's rate-limit pool.
pub(super) const MAX_LIST_PAGES: usize = 100;

/// The most items one list call collects (100 full pages): a bound on memory even when a
/// server packs more than 1000 items into a page.
pub(super) const MAX_LIST_ITEMS: usize = 100_000;

/// Why a bounded read stopped.
pub(super) enum Capped {
    Transport(reqwest::Error),
    /// Over the limit: `declared` is the `Content-Length` when that alone was too large.
    TooLarge {
        declared: Option<u64>,
    },
}

/// Reads a whole body, but never more than `limit` bytes: a declared `Content-Length` over
/// the limit is refused before reading, and a streamed (chunked) body is dropped as soon as
/// it passes the limit. Every body upshift reads from an HTTP API goes through here.
pub(super) async fn read_capped(
    mut response: reqwest::Response,
    limit: u64,
) -> Result<Vec<u8>, Capped> {
    if let Some(declared) = response.content_length()
        && declared > limit
    {
        return Err(Capped::TooLarge {
            declared: Some(declared),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Capped::Transport)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(Capped::TooLarge { declared: None });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Turns a non-2xx answer into a typed error. Heroku's body is `{id, message, url}`; a proxy's
/// HTML page is reported by status alone.
fn map_error(
    method: &Method,
    path: &str,
    status: StatusCode,
    headers: &HeaderMap,
    bytes: &[u8],
    request_id: String,
) -> HerokuError {
    let body: ErrorBody = serde_json::from_slice(bytes).unwrap_or_else(|_| ErrorBody {
        id: status
            .canonical_reason()
            .unwrap_or("error")
            .to_lowercase()
            .replace(' ', "_"),
        message: format!("HTTP {}", status.as_u16()),
        url: None,
        resource: None,
    });
    let method = method.to_string();
    let path = path.to_owned();
    match status.as_u16() {
        401 => HerokuError::Unauthorized {
            id: body.id,
            message: body.message,
            request_id,
        },
        403 => HerokuError::Forbidden {
            method,
            path,
            id: body.id,
            message: body.message,
            request_id,
        },
        404 => HerokuError::NotFound {
            method,
            path,
            message: body.message,
            resource: body.resource,
            request_id,
        },
        409 => HerokuError::Conflict {
            method,
            path,
            message: body.message,
            request_id,
        },
        422 => HerokuError::InvalidParams {
            method,
            path,
            id: body.id,
            message: body.message,
            request_id,
        },
        429 => HerokuError::RateLimited {
            method,
            path,
            message: body.message,
            retry_after: header(headers, RETRY_AFTER.as_str())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
            request_id,
        },
        other => HerokuError::Api {
            status: other,
            method,
            path,
            id: body.id,
            message: body.message,
            request_id,
        },
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Percent-encodes one path segment (app and add-on names are tame, but a typo is not).
pub(super) fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Joins a path onto a base URL that may itself carry a path prefix.
pub(super) fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    url.set_path(&format!("{prefix}{path}"));
    url
}
