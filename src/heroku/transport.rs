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
        loop {
            let (page, _, next): (Vec<T>, _, _) = self
                .send::<Vec<T>, ()>(
                    Method::GET,
                    api,
                    path,
                    None,
                    range.as_deref(),
                    Idempotency::Safe,
                )
                .await?;
            all.extend(page);
            match next {
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
        let bytes = response.bytes().await.map_err(transport)?;
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
