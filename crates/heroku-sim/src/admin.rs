//! The admin API under `/__sim/` (no auth: the simulator only listens on 127.0.0.1):
//! timeline, request log, faults, data maintenance status, restart, processes, downtime, the
//! rate-limit pool, the behaviour profile, and the log-session streams.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::behaviour::BehaviourSpec;
use crate::dynos::expand_fault;
use crate::faults::Fault;
use crate::server::{Control, error, not_found};
use crate::state::Shared;
use crate::timeline::{EventKind, downtime, lock};
use heroku_model::models::MaintenanceStatus;

type S = State<Arc<Shared>>;

fn bad(message: &str) -> Response {
    error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_params", message)
}

/// `?writes=false` leaves per-write events out; `?since_ms=` keeps later events only.
#[derive(Debug, Deserialize)]
pub(crate) struct TimelineQuery {
    #[serde(default)]
    writes: Option<bool>,
    #[serde(default)]
    since_ms: Option<f64>,
}

pub(crate) async fn timeline(State(s): S, Query(q): Query<TimelineQuery>) -> Response {
    let events: Vec<_> = s
        .timeline
        .events()
        .into_iter()
        .filter(|e| q.writes.unwrap_or(true) || !matches!(e.kind, EventKind::Write { .. }))
        .filter(|e| q.since_ms.is_none_or(|t| e.at_ms >= t))
        .collect();
    axum::Json(events).into_response()
}

pub(crate) async fn requests(State(s): S) -> Response {
    axum::Json(lock(&s.requests).clone()).into_response()
}

pub(crate) async fn list_faults(State(s): S) -> Response {
    axum::Json(s.faults.pending()).into_response()
}

pub(crate) async fn clear_faults(State(s): S) -> Response {
    s.faults.clear();
    StatusCode::NO_CONTENT.into_response()
}

/// Body: one fault object or a list of them.
pub(crate) async fn add_faults(State(s): S, body: Bytes) -> Response {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(&format!("invalid JSON: {e}")),
    };
    let list = match value {
        Value::Array(items) => items,
        one => vec![one],
    };
    let mut faults = Vec::new();
    for item in list {
        match serde_json::from_value::<Fault>(item) {
            Ok(f) => {
                if let Err(m) = f.validate() {
                    return bad(&m);
                }
                faults.push(f);
            }
            Err(e) => return bad(&format!("invalid fault: {e}")),
        }
    }
    for f in faults {
        arm(&s, f);
    }
    (StatusCode::CREATED, axum::Json(s.faults.pending())).into_response()
}

/// Arms a fault and records it.
pub(crate) fn arm(s: &Shared, fault: Fault) {
    s.event(EventKind::FaultInjected {
        fault: fault.describe(),
    });
    for f in expand_fault(fault) {
        s.faults.arm(f);
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct MaintenanceBody {
    status: MaintenanceStatus,
}

pub(crate) async fn set_maintenance(
    State(s): S,
    Path(addon): Path<String>,
    body: Bytes,
) -> Response {
    let body: MaintenanceBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return bad(&format!(
                "expected {{\"status\": \"none|pending|preparing|ready|running|completed\"}}: {e}"
            ));
        }
    };
    let name = {
        let mut world = s.world();
        let Some(a) = world.addon_mut(&addon) else {
            return not_found("add_on", "Couldn't find that add on.");
        };
        a.maintenance = body.status;
        a.name.clone()
    };
    let status = serde_json::to_value(body.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    s.event(EventKind::DataMaintenanceChanged {
        addon: name,
        status: status.clone(),
    });
    axum::Json(json!({ "status": status })).into_response()
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct RestartBody {
    #[serde(default)]
    down_seconds: Option<f64>,
}

/// Closes the API port for `down_seconds` (default 1), then listens again; state persists.
pub(crate) async fn restart(
    State(s): S,
    axum::Extension(control): axum::Extension<Control>,
    body: Bytes,
) -> Response {
    let body: RestartBody = serde_json::from_slice(&body).unwrap_or_default();
    let down = body.down_seconds.unwrap_or(1.0).max(0.0);
    s.event(EventKind::FaultInjected {
        fault: format!("restart (down {down} s)"),
    });
    // Answer first, then go down: the caller learns the restart was accepted.
    let tx = control.restart.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let _ = tx.send(down);
    });
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "down_seconds": down })),
    )
        .into_response()
}

pub(crate) async fn processes(State(s): S) -> Response {
    let world = s.world();
    let mut list = Vec::new();
    for a in &world.addons {
        list.push(json!({
            "addon": a.name, "role": "primary", "plan": a.server.plan().name,
            "port": a.server.port(), "pid": a.server.pid(), "running": a.server.is_running(),
        }));
        if let Some((pid, port, running)) = a.server.standby() {
            list.push(json!({
                "addon": a.name, "role": "standby", "plan": a.server.plan().name,
                "port": port, "pid": pid, "running": running,
            }));
        }
        if let Some(p) = &a.pending {
            list.push(json!({
                "addon": a.name, "role": "replica", "plan": p.plan().name,
                "port": p.port(), "pid": p.pid(), "running": p.is_running(),
            }));
            if let Some((pid, port, running)) = p.standby() {
                list.push(json!({
                    "addon": a.name, "role": "standby", "plan": p.plan().name,
                    "port": port, "pid": pid, "running": running,
                }));
            }
        }
    }
    axum::Json(list).into_response()
}

pub(crate) async fn downtime_of(State(s): S, Path(process_type): Path<String>) -> Response {
    let d = downtime(&s.timeline.events(), &process_type, s.timeline.now_ms());
    axum::Json(json!({
        "process_type": process_type,
        "downtime_ms": d.map(|d| d.as_secs_f64() * 1000.0),
    }))
    .into_response()
}

/// The behaviour profile's knobs now.
pub(crate) async fn get_behaviour(State(s): S) -> Response {
    axum::Json(s.behaviour()).into_response()
}

/// Switches the behaviour profile: a `[behaviour]` table as JSON, e.g. `{"profile": "lagging",
/// "data_lag_seconds": 2}`. Answers the knobs now in force.
pub(crate) async fn set_behaviour(State(s): S, body: Bytes) -> Response {
    let spec: BehaviourSpec = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return bad(&format!(
                "expected {{\"profile\": \"optimistic|in-place|lagging|sparse|strict\"}}: {e}"
            ));
        }
    };
    if let Err(m) = spec.validate() {
        return bad(&m);
    }
    let b = spec.resolve();
    *lock(&s.behaviour) = b.clone();
    s.event(EventKind::FaultInjected {
        fault: format!("behaviour profile {}", b.profile),
    });
    axum::Json(b).into_response()
}

#[derive(Debug, Deserialize)]
pub(crate) struct RateBody {
    remaining: u32,
}

pub(crate) async fn set_rate_limit(State(s): S, body: Bytes) -> Response {
    match serde_json::from_slice::<RateBody>(&body) {
        Ok(b) => {
            lock(&s.rate).set(b.remaining);
            axum::Json(json!({ "remaining": b.remaining })).into_response()
        }
        Err(e) => bad(&format!("expected {{\"remaining\": N}}: {e}")),
    }
}

/// Streams a log session: the last `lines` lines, then (with `tail`) new lines until the
/// simulator's tail limit passes. Plain text, one line each; as server-sent events (one
/// `data:` event per line) when the client accepts `text/event-stream`, as the Heroku CLI's
/// `heroku logs` does.
pub(crate) async fn log_stream(
    State(s): S,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let sse = headers
        .get("Accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    let frame = move |line: String| -> Bytes {
        if sse {
            Bytes::from(format!("data: {line}\n\n"))
        } else {
            Bytes::from(line + "\n")
        }
    };
    let Some(session) = s.world().log_sessions.get(&id).cloned() else {
        return not_found("log_session", "Couldn't find that log session.");
    };
    let rx = session.tail.then(|| s.logs.subscribe());
    let history: Vec<String> = s
        .logs
        .recent(&session.app, session.lines, &session.filter)
        .into_iter()
        .map(|l| l.text)
        .collect();
    let head = futures::stream::iter(
        history
            .into_iter()
            .map(move |l| Ok::<Bytes, Infallible>(frame(l))),
    );
    let deadline = Instant::now() + s.config.log_tail;
    let app = session.app.clone();
    let filter = session.filter.clone();
    let tail = futures::stream::unfold(rx, move |rx| {
        let app = app.clone();
        let filter = filter.clone();
        async move {
            let mut rx = rx?;
            loop {
                let left = deadline.checked_duration_since(Instant::now())?;
                match tokio::time::timeout(left, rx.recv()).await {
                    Ok(Ok(line)) if line.app == app && filter.accepts(&line) => {
                        return Some((
                            Ok::<Bytes, Infallible>(Bytes::from(line.text + "\n")),
                            Some(rx),
                        ));
                    }
                    Ok(Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                    Ok(Err(_)) | Err(_) => return None,
                }
            }
        }
    });
    let body = Body::from_stream(futures::StreamExt::chain(head, tail));
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        "Content-Type",
        HeaderValue::from_static(if sse {
            "text/event-stream"
        } else {
            "text/plain; charset=utf-8"
        }),
    );
    r
}

/// Config vars set by hand, for tests (no admin route: only the test process calls it).
impl crate::Simulator {
    /// Sets one config var of `app` to `value`, or removes it with `None`, as `heroku
    /// config:set` / `config:unset` would: an add-on's URL var can then hold something that is
    /// not a Redis URL, or be missing. The dynos read the new value on their next connection;
    /// a plan change that switches the add-on's server writes its URL over the var again.
    ///
    /// # Errors
    /// [`crate::SimError::UnknownApp`].
    pub fn set_config_var(
        &self,
        app: &str,
        var: &str,
        value: Option<&str>,
    ) -> Result<(), crate::SimError> {
        {
            let mut world = self.shared.world();
            let state = world
                .app_mut(app)
                .ok_or_else(|| crate::SimError::UnknownApp(app.to_owned()))?;
            match value {
                Some(v) => state.config_vars.0.insert(var.to_owned(), v.to_owned()),
                None => state.config_vars.0.remove(var),
            };
        }
        // The value is not logged: it may carry a password.
        self.shared.event(EventKind::FaultInjected {
            fault: format!("config var {var} set by hand"),
        });
        Ok(())
    }
}
