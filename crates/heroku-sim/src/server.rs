//! The HTTP side: the accept loop (one hyper connection per TCP connection, so a fault can
//! drop a connection without an answer, and a simulated restart can close the port), and the
//! gate every request passes: request id, fault injection, auth, rate limit, request log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::faults::HttpAction;
use crate::state::{RequestRecord, Shared};
use crate::timeline::{EventKind, lock};

/// Per-connection handle the gate uses to drop the connection.
#[derive(Clone)]
struct ConnDrop(Arc<Notify>);

/// Channels to the accept loop.
#[derive(Clone, Debug)]
pub(crate) struct Control {
    pub restart: mpsc::UnboundedSender<f64>,
}

/// Runs the accept loop until `shutdown` turns true.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    router: Router,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    mut restart: mpsc::UnboundedReceiver<f64>,
) {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    let mut listener = Some(listener);
    let mut conns = JoinSet::new();
    loop {
        let accept = async {
            match &listener {
                Some(l) => l.accept().await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(down) = restart.recv() => {
                // A simulated restart: the port closes, in-flight connections die.
                listener = None;
                conns.abort_all();
                shared.event(EventKind::ApiRestart { phase: "down".into() });
                tokio::time::sleep(Duration::from_secs_f64(down.max(0.0))).await;
                if let Some(addr) = addr {
                    for _ in 0..100 {
                        if let Ok(l) = TcpListener::bind(addr).await {
                            listener = Some(l);
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                shared.event(EventKind::ApiRestart { phase: "up".into() });
            }
            Some((stream, _)) = accept => {
                let router = router.clone();
                conns.spawn(serve_connection(stream, router));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
}

async fn serve_connection(stream: tokio::net::TcpStream, router: Router) {
    let notify = Arc::new(Notify::new());
    let handle = ConnDrop(Arc::clone(&notify));
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(handle.clone());
            router.clone().oneshot(req.map(Body::new))
        });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = conn => {}
        () = notify.notified() => {}
    }
}

/// Heroku's error body with a status.
pub(crate) fn error(status: StatusCode, id: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "id": id,
        "message": message,
        "url": "https://devcenter.heroku.com/articles/platform-api-reference#clients",
    });
    (status, axum::Json(body)).into_response()
}

/// A 404 in Heroku's words for a resource kind (`app`, `add_on`, `formation`, …).
pub(crate) fn not_found(resource: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "id": "not_found",
        "message": message,
        "resource": resource,
        "url": "https://devcenter.heroku.com/articles/platform-api-reference#clients",
    });
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

fn is_public(path: &str) -> bool {
    path.starts_with("/__sim/") || (path.starts_with("/addon-services/") && path.contains("/plans"))
}

/// The gate every request passes.
pub(crate) async fn gate(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let request_id = req
        .headers()
        .get("Request-Id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let admin = path.starts_with("/__sim/");
    let mut response = if admin {
        next.run(req).await
    } else {
        let (action, fired) = shared.faults.on_request(&method, &path);
        if let Some(fault) = fired {
            shared.event(EventKind::FaultFired {
                fault,
                detail: format!("{method} {path}"),
            });
        }
        match action {
            HttpAction::Drop | HttpAction::Restart { .. } => {
                record(&shared, &method, &path, 0, &request_id);
                if let HttpAction::Restart { down_seconds } = action
                    && let Some(control) = req.extensions().get::<Control>()
                {
                    let _ = control.restart.send(down_seconds);
                }
                if let Some(ConnDrop(n)) = req.extensions().get::<ConnDrop>() {
                    n.notify_one();
                }
                // The connection task drops this future with the connection.
                return std::future::pending().await;
            }
            HttpAction::ServeThenDrop => {
                let conn = req.extensions().get::<ConnDrop>().map(|c| Arc::clone(&c.0));
                let served = next.run(req).await;
                record(
                    &shared,
                    &method,
                    &path,
                    served.status().as_u16(),
                    &request_id,
                );
                // Let the handler's effects settle as they would before the bytes went out.
                drop(served);
                if let Some(n) = conn {
                    n.notify_one();
                }
                return std::future::pending().await;
            }
            HttpAction::Error {
                status,
                retry_after,
            } => {
                let code =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let mut r = if status == 429 {
                    error(
                        code,
                        "rate_limit",
                        "Your account reached the API rate limit. Please wait a few minutes before making new requests",
                    )
                } else if status >= 500 {
                    error(code, "internal_server_error", "Internal server error.")
                } else {
                    error(
                        code,
                        code.canonical_reason().unwrap_or("error"),
                        "Injected failure.",
                    )
                };
                if status == 429
                    && let Ok(v) = HeaderValue::from_str(&retry_after.to_string())
                {
                    r.headers_mut().insert("Retry-After", v);
                }
                r
            }
            HttpAction::Endless { chunked } => endless(chunked),
            served @ (HttpAction::Serve
            | HttpAction::Partial { .. }
            | HttpAction::Replace { .. }) => {
                let range = req
                    .headers()
                    .get("Range")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let response = if !is_public(&path)
                    && !authorized(req.headers(), &shared.config.api_key)
                {
                    error(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "Invalid credentials provided.",
                    )
                } else if path != "/account/rate-limits" && !lock(&shared.rate).take() {
                    let mut r = error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limit",
                        "Your account reached the API rate limit. Please wait a few minutes before making new requests",
                    );
                    r.headers_mut()
                        .insert("Retry-After", HeaderValue::from_static("60"));
                    r
                } else {
                    next.run(req).await
                };
                match served {
                    HttpAction::Partial { repeat } if response.status() == StatusCode::OK => {
                        partial(response, repeat, range.as_deref())
                    }
                    HttpAction::Replace { from, to } => replace(response, &from, &to).await,
                    _ => response,
                }
            }
        }
    };
    let remaining = lock(&shared.rate).remaining();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("Request-Id", v);
    }
    headers.insert("RateLimit-Remaining", HeaderValue::from(remaining));
    if !admin {
        record(
            &shared,
            &method,
            &path,
            response.status().as_u16(),
            &request_id,
        );
    }
    response
}

/// A 200 whose body never ends: `[` and then spaces, with a `Content-Length` of 1 TB or
/// (`chunked`) streamed without one.
fn endless(chunked: bool) -> Response {
    let spaces = axum::body::Bytes::from(vec![b' '; 64 * 1024]);
    let stream = futures::stream::once(async { axum::body::Bytes::from_static(b"[") })
        .chain(futures::stream::repeat(spaces))
        .map(Ok::<_, std::convert::Infallible>);
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if !chunked {
        r.headers_mut().insert(
            axum::http::header::CONTENT_LENGTH,
            HeaderValue::from_static("1000000000000"),
        );
    }
    r
}

/// A served list turned into a partial one (206) with a `Next-Range` that repeats
/// (`repeat`) or always advances past the Range the client sent.
fn partial(mut response: Response, repeat: bool, range: Option<&str>) -> Response {
    let next = if repeat {
        "id ]same..; max=1000".to_owned()
    } else {
        let page = range
            .and_then(|r| r.strip_prefix("id ]page-"))
            .and_then(|r| r.split("..").next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        format!("id ]page-{}..; max=1000", page + 1)
    };
    *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    if let Ok(v) = HeaderValue::from_str(&next) {
        response.headers_mut().insert("Next-Range", v);
    }
    response
}

/// A served answer with every `from` in its body replaced by `to`.
async fn replace(response: Response, from: &str, to: &str) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let text = String::from_utf8_lossy(&bytes).replace(from, to);
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(text))
}

/// Adds the accept loop's control channel to every request.
pub(crate) async fn with_control(
    State(control): State<Control>,
    mut req: Request,
    next: Next,
) -> Response {
    req.extensions_mut().insert(control);
    next.run(req).await
}

fn record(shared: &Shared, method: &str, path: &str, status: u16, request_id: &str) {
    let at_ms = shared.timeline.now_ms();
    lock(&shared.requests).push(RequestRecord {
        method: method.to_owned(),
        path: path.to_owned(),
        status,
        at_ms,
        request_id: request_id.to_owned(),
    });
}

fn authorized(headers: &HeaderMap, key: &str) -> bool {
    let Some(value) = headers.get("Authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let value = value.trim();
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .is_some_and(|t| t.trim() == key)
}
