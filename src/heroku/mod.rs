//! The Heroku client: Platform API and Redis Data API over reqwest.
//!
//! This is the only module that speaks HTTP to Heroku. The same client talks to
//! `api.heroku.com` and to the simulator; base URLs come from `HEROKU_API_URL` and
//! `HEROKU_DATA_URL`.
//!
//! Retries: idempotent calls (every GET, absolute `PATCH`es of formation, maintenance and Redis
//! settings) are retried on 429, 5xx, timeouts and connection errors with exponential backoff
//! and jitter, honouring `Retry-After`. The one non-idempotent write, a plan change, is retried
//! only after re-reading the add-on shows the change did not take (see
//! [`Client::change_addon_plan`]). When `RateLimit-Remaining` runs low the client spaces its
//! calls out instead of draining the account's pool.

mod request_log;
pub use request_log::{RequestLog, on_request};
mod auth;
mod error;
mod lifecycle;
mod transport;
pub use heroku_model::models;

use transport::seg;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue, USER_AGENT};
use url::Url;

pub use auth::{NETRC_MACHINE, Token, netrc_path, resolve_token};
pub use error::HerokuError;
use models::{
    AddOn, AddOnAttachment, AddOnPlanChange, App, ConfigVars, DataMaintenance, Dyno, Formation,
    FormationBatch, FormationUpdate, LogSession, LogSessionRequest, PlanRef, RateLimit,
    RedisConfig, RedisConfigValues, RedisDatabase, RedisWait, ServicePlan,
};

/// Heroku's production Platform API.
pub const DEFAULT_API_URL: &str = "https://api.heroku.com";
/// Heroku's production Data API (Redis and Postgres management).
pub const DEFAULT_DATA_URL: &str = "https://api.data.heroku.com";
/// The Accept header that selects version 3 of the Platform API.
pub const ACCEPT_V3: &str = "application/vnd.heroku+json; version=3";

/// The longest log line kept whole from a log session (Logplex caps lines at 10 kB; this
/// leaves room and still bounds a stream that never sends a line break).
const MAX_LOG_LINE: usize = 64 * 1024;

/// Below this many remaining calls in the account's pool, calls are spaced out.
const LOW_RATE_LIMIT: u32 = 50;

/// How hard the client tries before giving up on a call.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// First backoff; doubles per attempt, with jitter.
    pub base_backoff: Duration,
    /// Cap on one backoff (and on an honoured `Retry-After`).
    pub max_backoff: Duration,
    /// Timeout of one HTTP attempt.
    pub call_timeout: Duration,
    /// Pause between calls while `RateLimit-Remaining` is below its floor.
    pub low_rate_pause: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            call_timeout: Duration::from_secs(30),
            low_rate_pause: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The backoff before attempt `attempt + 1` (attempt counts from 1): base x 2^(attempt-1),
    /// capped, with up to 25% jitter so that parallel runs do not retry in step.
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = self
            .base_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(self.max_backoff);
        capped.mul_f64(1.0 + 0.25 * jitter.clamp(0.0, 1.0))
    }
}

/// Everything the client needs to start; see [`ClientConfig::from_env`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub api_url: Url,
    pub data_url: Url,
    pub token: Token,
    pub retry: RetryPolicy,
}

impl ClientConfig {
    /// Builds the config from the variables the Heroku CLI and upshift users already set:
    /// `HEROKU_API_URL`, `HEROKU_DATA_URL`, `HEROKU_API_KEY`, `NETRC`, `HOME`; without a token
    /// in the first or in `.netrc`, from `heroku auth:token` (see [`auth::cli_token`]).
    ///
    /// # Errors
    /// A malformed base URL, or no token anywhere.
    pub fn from_env() -> Result<Self, HerokuError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let netrc = netrc_path(var("NETRC").as_deref(), dirs::home_dir().as_deref());
        Ok(Self {
            api_url: parse_base_url("HEROKU_API_URL", var("HEROKU_API_URL").as_deref())?,
            data_url: parse_base_url("HEROKU_DATA_URL", var("HEROKU_DATA_URL").as_deref())?,
            token: match resolve_token(var("HEROKU_API_KEY").as_deref(), &netrc) {
                Err(HerokuError::NoToken { netrc }) => {
                    auth::cli_token().ok_or(HerokuError::NoToken { netrc })?
                }
                other => other?,
            },
            retry: RetryPolicy::default(),
        })
    }
}

/// Parses a base URL from an environment variable, defaulting to Heroku's production hosts.
///
/// # Errors
/// [`HerokuError::BadBaseUrl`] naming the variable when it is not an http(s) URL.
pub fn parse_base_url(var: &'static str, value: Option<&str>) -> Result<Url, HerokuError> {
    let default = if var == "HEROKU_DATA_URL" {
        DEFAULT_DATA_URL
    } else {
        DEFAULT_API_URL
    };
    let raw = value.unwrap_or(default);
    let bad = |reason: String| HerokuError::BadBaseUrl {
        var,
        value: raw.to_owned(),
        reason,
    };
    let url = Url::parse(raw).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!("scheme {} is not http or https", url.scheme())));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials belong in HEROKU_API_KEY, not the URL".into()
        ));
    }
    Ok(url)
}

/// A write's result together with the request id to journal and to quote to Heroku support.
#[derive(Debug, Clone)]
pub struct Written<T> {
    pub value: T,
    pub request_id: String,
}

/// The Heroku API client. Cheap to clone; clones share the connection pool and the
/// rate-limit view.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    api_url: Url,
    data_url: Url,
    token: Token,
    retry: RetryPolicy,
    rate_remaining: Arc<AtomicU32>,
}

/// Whether a call may be repeated blindly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Idempotency {
    Safe,
    Unsafe,
}

/// Which API a path belongs to.
#[derive(Debug, Clone, Copy)]
enum Api {
    Platform,
    Data,
}

impl Client {
    /// Builds a client.
    ///
    /// # Errors
    /// Only if the TLS backend cannot start.
    pub fn new(config: ClientConfig) -> Result<Self, HerokuError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(ACCEPT_V3));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("upshift/", env!("CARGO_PKG_VERSION"))),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            // No Referer on a redirect (it would carry the request's full URL to the next
            // host), and no redirect to another origin at all: api.heroku.com does not
            // redirect, so a 3xx elsewhere comes from something in between and is answered
            // as the API error it is (`stop` hands the 3xx back to `attempt`).
            .referer(false)
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let same_origin = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| first.origin() == attempt.url().origin());
                if same_origin && attempt.previous().len() < 5 {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }))
            .timeout(config.retry.call_timeout)
            .connect_timeout(config.retry.call_timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|source| HerokuError::Transport {
                method: "INIT".into(),
                path: String::new(),
                source,
            })?;
        Ok(Self {
            http,
            api_url: config.api_url,
            data_url: config.data_url,
            token: config.token,
            retry: config.retry,
            rate_remaining: Arc::new(AtomicU32::new(u32::MAX)),
        })
    }

    /// The last `RateLimit-Remaining` Heroku reported (`u32::MAX` before the first answer).
    /// Pollers use it to slow down before the pool runs dry.
    pub fn rate_limit_remaining(&self) -> u32 {
        self.rate_remaining.load(Ordering::Relaxed)
    }

    /// The Platform API base URL this client talks to.
    pub fn api_url(&self) -> &Url {
        &self.api_url
    }

    // ---- Platform API ---------------------------------------------------------------------

    /// `GET /account/rate-limits` (free of charge on Heroku).
    pub async fn rate_limits(&self) -> Result<RateLimit, HerokuError> {
        self.get(Api::Platform, "/account/rate-limits").await
    }

    /// `GET /apps`: every app the token can see (all pages).
    pub async fn apps(&self) -> Result<Vec<App>, HerokuError> {
        self.list(Api::Platform, "/apps").await
    }

    /// `GET /apps/{app}`.
    pub async fn app(&self, app: &str) -> Result<App, HerokuError> {
        self.get(Api::Platform, &format!("/apps/{}", seg(app)))
            .await
    }

    /// `PATCH /apps/{app}` `{"maintenance": on}`. Absolute, so safe to repeat.
    pub async fn set_maintenance(&self, app: &str, on: bool) -> Result<Written<App>, HerokuError> {
        self.write(
            Method::PATCH,
            Api::Platform,
            &format!("/apps/{}", seg(app)),
            &serde_json::json!({ "maintenance": on }),
            Idempotency::Safe,
        )
        .await
    }

    /// `GET /apps/{app}/formation`: every process type (all pages).
    pub async fn formation(&self, app: &str) -> Result<Vec<Formation>, HerokuError> {
        self.list(Api::Platform, &format!("/apps/{}/formation", seg(app)))
            .await
    }

    /// `GET /apps/{app}/formation/{type}`.
    pub async fn formation_of(
        &self,
        app: &str,
        process_type: &str,
    ) -> Result<Formation, HerokuError> {
        self.get(
            Api::Platform,
            &format!("/apps/{}/formation/{}", seg(app), seg(process_type)),
        )
        .await
    }

    /// Batch `PATCH /apps/{app}/formation`: absolute quantities and sizes in one call, so the
    /// writers stop (and come back) together. Safe to repeat.
    pub async fn update_formation(
        &self,
        app: &str,
        updates: &[FormationUpdate],
    ) -> Result<Written<Vec<Formation>>, HerokuError> {
        let body = FormationBatch {
            updates: updates.to_vec(),
        };
        self.write(
            Method::PATCH,
            Api::Platform,
            &format!("/apps/{}/formation", seg(app)),
            &body,
            Idempotency::Safe,
        )
        .await
    }

    /// `GET /apps/{app}/dynos` (all pages).
    pub async fn dynos(&self, app: &str) -> Result<Vec<Dyno>, HerokuError> {
        self.list(Api::Platform, &format!("/apps/{}/dynos", seg(app)))
            .await
    }

    /// `GET /apps/{app}/addons` (all pages).
    pub async fn addons(&self, app: &str) -> Result<Vec<AddOn>, HerokuError> {
        self.list(Api::Platform, &format!("/apps/{}/addons", seg(app)))
            .await
    }

    /// `GET /apps/{app}/addons/{id_or_name}`.
    pub async fn addon(&self, app: &str, addon: &str) -> Result<AddOn, HerokuError> {
        self.get(
            Api::Platform,
            &format!("/apps/{}/addons/{}", seg(app), seg(addon)),
        )
        .await
    }

    /// `POST /actions/addon-attachments/resolve`: what an attachment name (`enketo_redis_main`)
    /// or add-on name the user typed refers to. A read, despite the POST.
    pub async fn resolve_attachment(
        &self,
        app: &str,
        name: &str,
        service: Option<&str>,
    ) -> Result<Vec<AddOnAttachment>, HerokuError> {
        let mut body = serde_json::json!({ "addon_attachment": name, "app": app });
        if let Some(service) = service {
            body["addon_service"] = service.into();
        }
        self.write(
            Method::POST,
            Api::Platform,
            "/actions/addon-attachments/resolve",
            &body,
            Idempotency::Safe,
        )
        .await
        .map(|w| w.value)
    }

    /// `PATCH /apps/{app}/addons/{addon}` `{"plan":{"name": plan}}`. Heroku answers at once
    /// and changes the plan asynchronously.
    ///
    /// # Guarantees
    /// Idempotent: a transient failure is followed by a re-read of the add-on; when the add-on
    /// already reports `plan` (or is provisioning towards it), the call counts as done and is
    /// not sent again. There are no idempotency keys on Heroku, so this is the only safe retry.
    pub async fn change_addon_plan(
        &self,
        app: &str,
        addon: &str,
        plan: &str,
    ) -> Result<Written<AddOn>, HerokuError> {
        let path = format!("/apps/{}/addons/{}", seg(app), seg(addon));
        let body = AddOnPlanChange {
            plan: PlanRef {
                name: plan.to_owned(),
            },
        };
        // Landed: the add-on names the target, or it is provisioning (it was provisioned
        // before this call, and some platforms keep naming the old plan until the switch).
        self.write_once(Method::PATCH, &path, &body, || async {
            let current = self.addon(app, addon).await.ok()?;
            (crate::plans::bare_name(&current.plan.name) == crate::plans::bare_name(plan)
                || current.state == models::AddOnState::Provisioning)
                .then_some(current)
        })
        .await
    }

    /// `GET /addon-services/{service}/plans` (no auth needed on Heroku; sent anyway).
    /// `GET /apps/{app}/features/{feature}` (e.g. `preboot`).
    pub async fn app_feature(
        &self,
        app: &str,
        feature: &str,
    ) -> Result<crate::heroku::models::AppFeature, HerokuError> {
        self.get(
            Api::Platform,
            &format!("/apps/{}/features/{}", seg(app), seg(feature)),
        )
        .await
    }

    pub async fn addon_plans(&self, service: &str) -> Result<Vec<ServicePlan>, HerokuError> {
        self.list(
            Api::Platform,
            &format!("/addon-services/{}/plans", seg(service)),
        )
        .await
    }

    /// `GET /apps/{app}/config-vars`. The values are secrets: keep them out of every output.
    pub async fn config_vars(&self, app: &str) -> Result<ConfigVars, HerokuError> {
        self.get(Api::Platform, &format!("/apps/{}/config-vars", seg(app)))
            .await
    }

    /// `POST /apps/{app}/log-sessions`: a URL that streams the app's logs.
    pub async fn create_log_session(
        &self,
        app: &str,
        request: &LogSessionRequest,
    ) -> Result<LogSession, HerokuError> {
        self.write(
            Method::POST,
            Api::Platform,
            &format!("/apps/{}/log-sessions", seg(app)),
            request,
            Idempotency::Safe,
        )
        .await
        .map(|w| w.value)
    }

    /// Reads a log session's `logplex_url` for at most `limit`, sending each line to `lines`
    /// (server-sent events unwrapped from their `data:` frames) until the stream ends, the time
    /// is up or the receiver is gone.
    ///
    /// The URL carries its own credentials, so the request goes out on a plain client, without
    /// the Heroku token, and no error shows the URL.
    ///
    /// # Errors
    /// The session cannot be opened or answers with an error status.
    pub async fn stream_log(
        &self,
        logplex_url: &str,
        limit: Duration,
        lines: tokio::sync::mpsc::Sender<String>,
    ) -> Result<(), HerokuError> {
        let transport = |source: reqwest::Error| HerokuError::Transport {
            method: "GET".into(),
            path: "(log session)".into(),
            source: source.without_url(),
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .referer(false)
            .build()
            .map_err(transport)?;
        let deadline = tokio::time::Instant::now() + limit;
        let mut response = http
            .get(logplex_url)
            .timeout(limit)
            .send()
            .await
            .map_err(transport)?
            .error_for_status()
            .map_err(transport)?;
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let chunk = match tokio::time::timeout_at(deadline, response.chunk()).await {
                Ok(Ok(Some(chunk))) => chunk,
                // The end of the stream, or the time is up: both end the watch normally.
                Ok(Ok(None)) | Err(_) => return Ok(()),
                Ok(Err(e)) if e.is_timeout() => return Ok(()),
                Ok(Err(e)) => return Err(transport(e)),
            };
            pending.extend_from_slice(&chunk);
            // A line that never ends would grow without bound: past the cap its start is
            // passed on as a line of its own (a log line is never that long).
            if pending.len() > MAX_LOG_LINE && !pending.contains(&b'\n') {
                pending.push(b'\n');
            }
            while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                let raw: Vec<u8> = pending.drain(..=i).collect();
                let text = String::from_utf8_lossy(&raw);
                let text = text.trim_end_matches(['\r', '\n']);
                let text = text.strip_prefix("data: ").unwrap_or(text);
                if text.is_empty() {
                    continue;
                }
                if lines.send(text.to_owned()).await.is_err() {
                    return Ok(());
                }
            }
        }
    }

    // ---- Redis Data API ---------------------------------------------------------------------

    /// `GET /redis/v0/databases/{addon}`.
    pub async fn redis_database(&self, addon: &str) -> Result<RedisDatabase, HerokuError> {
        self.get(Api::Data, &format!("/redis/v0/databases/{}", seg(addon)))
            .await
    }

    /// `GET /redis/v0/databases/{addon}/wait`. Like `heroku redis:wait`, a 404 (the database
    /// record not yet there during provisioning) reads as still waiting.
    pub async fn redis_wait(&self, addon: &str) -> Result<RedisWait, HerokuError> {
        match self
            .get(
                Api::Data,
                &format!("/redis/v0/databases/{}/wait", seg(addon)),
            )
            .await
        {
            Err(HerokuError::NotFound { .. }) => Ok(RedisWait {
                message: "not yet known to the Data API".into(),
                waiting: true,
            }),
            other => other,
        }
    }

    /// `GET /redis/v0/databases/{addon}/config`.
    pub async fn redis_config(&self, addon: &str) -> Result<RedisConfig, HerokuError> {
        self.get(
            Api::Data,
            &format!("/redis/v0/databases/{}/config", seg(addon)),
        )
        .await
    }

    /// `PATCH /redis/v0/databases/{addon}/config`: absolute values, safe to repeat.
    pub async fn update_redis_config(
        &self,
        addon: &str,
        values: &RedisConfigValues,
    ) -> Result<Written<RedisConfig>, HerokuError> {
        self.write(
            Method::PATCH,
            Api::Data,
            &format!("/redis/v0/databases/{}/config", seg(addon)),
            values,
            Idempotency::Safe,
        )
        .await
    }

    /// `GET /data/maintenances/v1/{addon_id}`.
    pub async fn data_maintenance(&self, addon_id: &str) -> Result<DataMaintenance, HerokuError> {
        self.get(
            Api::Data,
            &format!("/data/maintenances/v1/{}", seg(addon_id)),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::transport::join;
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(100));
        assert_eq!(p.backoff(2, 0.0), Duration::from_millis(200));
        assert_eq!(p.backoff(3, 0.0), Duration::from_millis(350));
        assert_eq!(p.backoff(2, 1.0), Duration::from_millis(250));
    }

    #[test]
    fn base_urls_default_and_reject_credentials() {
        assert_eq!(
            parse_base_url("HEROKU_API_URL", None).unwrap().as_str(),
            "https://api.heroku.com/"
        );
        assert_eq!(
            parse_base_url("HEROKU_DATA_URL", None).unwrap().as_str(),
            "https://api.data.heroku.com/"
        );
        let err = parse_base_url("HEROKU_API_URL", Some("ftp://x")).unwrap_err();
        assert!(err.to_string().contains("HEROKU_API_URL"));
        assert!(parse_base_url("HEROKU_API_URL", Some("http://u:p@127.0.0.1:1")).is_err());
    }

    #[test]
    fn join_keeps_a_base_prefix_and_encodes_segments() {
        let base = Url::parse("http://127.0.0.1:9/prefix/").unwrap();
        assert_eq!(
            join(&base, &format!("/apps/{}", seg("a b"))).as_str(),
            "http://127.0.0.1:9/prefix/apps/a%20b"
        );
    }
}
