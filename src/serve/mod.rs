//! The agent's HTTP server (axum on hyper 1), on the `--listen` address:
//!
//! | path | method | answer |
//! |---|---|---|
//! | `/metrics` | GET | the metrics, OpenMetrics text ([`crate::telemetry`]) |
//! | `/healthz` | GET | 200 while the process serves |
//! | `/readyz` | GET | 200 once the status branch was read and the first fetch succeeded, else 503 |
//! | `/webhook` | POST | a Git push webhook ([`webhook`]): 202 accepted (a fetch follows at once), 200 ping, 204 ignored (another branch, a tag, another event), 400 bad body, 401 no signature, 403 wrong signature, 404 webhooks off (no secret), 405 not a POST, 413 larger than the cap |
//!
//! Handlers only read snapshots ([`Telemetry`]) and pull the [`FetchTrigger`]; the agent's
//! loop is the one owner of its state.

pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use webhook::{Provider, Verdict, WebhookSettings};

use crate::apply::executor::FetchTrigger;
use crate::telemetry::{Telemetry, WebhookResult, CONTENT_TYPE, TEXT_CONTENT_TYPE};

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What the handlers share.
#[derive(Clone)]
pub struct ServeState {
    pub telemetry: Arc<Telemetry>,
    pub trigger: FetchTrigger,
    /// None: webhooks are off (no secret given).
    pub webhook: Option<Arc<WebhookSettings>>,
}

/// The routes (see the module docs).
pub fn router(state: ServeState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/webhook", any(webhook))
        .with_state(state)
}

/// Binds `addr` (port 0 picks a free one; the listener's `local_addr` says which).
///
/// # Errors
/// [`ServeError::Bind`].
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Serves `state` on `listener` until `shutdown` turns true.
pub async fn serve(listener: TcpListener, state: ServeState, mut shutdown: watch::Receiver<bool>) {
    let addr = listener.local_addr().ok();
    tracing::info!(
        address = ?addr,
        webhooks = state.webhook.is_some(),
        "serving /metrics, /healthz, /readyz and /webhook"
    );
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "the HTTP server stopped");
    }
}

async fn metrics(State(s): State<ServeState>, headers: HeaderMap) -> Response {
    // OpenMetrics for scrapers that ask for it (Prometheus does), else the Prometheus
    // text format (curl, promtool).
    let open = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if open {
        ([(header::CONTENT_TYPE, CONTENT_TYPE)], s.telemetry.encode()).into_response()
    } else {
        (
            [(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)],
            s.telemetry.encode_text(),
        )
            .into_response()
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<ServeState>) -> Response {
    if s.telemetry.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the status branch or the first fetch is not done\n",
        )
            .into_response()
    }
}

fn reply(s: &ServeState, result: WebhookResult, status: StatusCode, message: String) -> Response {
    s.telemetry.webhook_request(result);
    if status == StatusCode::NO_CONTENT {
        return status.into_response();
    }
    let body = serde_json::json!({ "result": format!("{result:?}"), "message": message });
    (status, Json(body)).into_response()
}

async fn webhook(
    State(s): State<ServeState>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(settings) = s.webhook.clone() else {
        return reply(
            &s,
            WebhookResult::disabled,
            StatusCode::NOT_FOUND,
            "webhooks are off: start the agent with a webhook secret".into(),
        );
    };
    if method != Method::POST {
        let mut r = reply(
            &s,
            WebhookResult::method_not_allowed,
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed; webhooks are POSTed"),
        );
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return r;
    }
    let too_large = || {
        reply(
            &s,
            WebhookResult::too_large,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {} bytes", settings.max_body),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > settings.max_body as u64) {
        return too_large();
    }
    // A body without (or lying about) its length is cut at the cap all the same.
    let Ok(bytes) = to_bytes(body, settings.max_body).await else {
        return too_large();
    };
    match webhook::judge(&headers, &bytes, &settings) {
        Verdict::Accepted { provider } => {
            tracing::info!(?provider, "webhook: a push to the branch; fetching now");
            s.trigger.request();
            reply(
                &s,
                WebhookResult::accepted,
                StatusCode::ACCEPTED,
                "fetching".into(),
            )
        }
        Verdict::Ping => reply(&s, WebhookResult::ping, StatusCode::OK, "pong".into()),
        Verdict::Ignored { why } => {
            tracing::info!(%why, "webhook ignored");
            reply(&s, WebhookResult::ignored, StatusCode::NO_CONTENT, why)
        }
        Verdict::Unauthorized { why } => {
            tracing::warn!(%why, "webhook refused");
            reply(
                &s,
                WebhookResult::unauthorized,
                StatusCode::UNAUTHORIZED,
                why.into(),
            )
        }
        Verdict::Forbidden => {
            tracing::warn!("webhook refused: the signature or token does not match");
            reply(
                &s,
                WebhookResult::forbidden,
                StatusCode::FORBIDDEN,
                "the signature or token does not match".into(),
            )
        }
        Verdict::BadRequest { why } => {
            tracing::warn!(%why, "webhook refused");
            reply(&s, WebhookResult::bad_request, StatusCode::BAD_REQUEST, why)
        }
    }
}
