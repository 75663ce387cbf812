//! Delivery to one sink: its body (generic JSON or Slack text), the request, and the
//! retry loop of the sink's task.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::config::{RetryPolicy, SinkKind};
use super::{Event, EventKind, SinkQueue};
use crate::apply::backoff;
use crate::config;
use crate::signature;
use crate::telemetry::{NotificationResult, Telemetry};

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    /// Connection refused, timeout, 5xx, 408, 429: worth retrying.
    #[error("{0}")]
    Retry(String),
    /// The receiver refused the request itself (another 4xx): retrying sends the same.
    #[error("{0}")]
    Refused(String),
}

/// The text a Slack-compatible webhook shows.
pub(super) fn slack_text(e: &Event) -> String {
    let mark = match e.kind {
        EventKind::Deployed | EventKind::Upgraded | EventKind::DriftHealed => ":white_check_mark:",
        EventKind::Suspended => ":double_vertical_bar:",
        EventKind::RolledBack | EventKind::DriftDetected => ":warning:",
        EventKind::Failed | EventKind::SavepointFailed => ":x:",
    };
    let rev = e
        .revision
        .as_deref()
        .map(|r| format!(" at `{}`", r.get(..7).unwrap_or(r)))
        .unwrap_or_default();
    let reason = e
        .reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    format!(
        "{mark} *{}* {} `{}/{}`{rev}, now {}{reason}: {}",
        e.kind,
        e.resource.kind,
        e.resource.namespace,
        e.resource.name,
        e.lifecycle_state,
        e.message
    )
}

/// The body and headers sent for `event`.
pub(super) fn request_body(
    kind: SinkKind,
    secret: Option<&[u8]>,
    event: &Event,
) -> (Vec<u8>, Vec<(&'static str, String)>) {
    let body = match kind {
        SinkKind::Webhook => serde_json::to_vec(event),
        SinkKind::Slack => serde_json::to_vec(&serde_json::json!({ "text": slack_text(event) })),
    }
    .unwrap_or_default(); // ok: plain data always serialises
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("x-flink-gitops-event", event.kind.to_string()),
    ];
    if let Some(s) = secret {
        headers.push((config::WEBHOOK_SIGNATURE_HEADER, signature::sign(s, &body)));
    }
    (body, headers)
}

async fn attempt(
    client: &reqwest::Client,
    q: &SinkQueue,
    event: &Event,
) -> Result<(), DeliveryError> {
    let (body, headers) = request_body(q.sink.kind, q.sink.secret.as_deref(), event);
    let mut req = client.post(&q.sink.url).body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    // Errors print without the URL: a Slack URL is a secret.
    let resp = req
        .send()
        .await
        .map_err(|e| DeliveryError::Retry(e.without_url().to_string()))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = format!("HTTP {status}");
    if status.is_client_error()
        && status != reqwest::StatusCode::REQUEST_TIMEOUT
        && status != reqwest::StatusCode::TOO_MANY_REQUESTS
    {
        Err(DeliveryError::Refused(text))
    } else {
        Err(DeliveryError::Retry(text))
    }
}

fn jitter() -> f64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}

/// Delivers one event: retried with backoff until delivered, refused, or out of attempts.
async fn deliver(
    client: &reqwest::Client,
    q: &SinkQueue,
    retry: RetryPolicy,
    telemetry: &Telemetry,
    event: &Event,
) {
    let mut failures = 0u32;
    loop {
        match attempt(client, q, event).await {
            Ok(()) => {
                tracing::debug!(sink = %q.sink.name, event = %event.kind, resource = %event.resource, "notification delivered");
                telemetry.notification(&q.sink.name, NotificationResult::delivered);
                return;
            }
            Err(e) => {
                failures += 1;
                let refused = matches!(e, DeliveryError::Refused(_));
                if refused || failures >= retry.max_attempts {
                    tracing::error!(sink = %q.sink.name, event = %event.kind, resource = %event.resource, time = %event.time, message = %event.message, attempts = failures, error = %e, "notification not delivered; given up");
                    telemetry.notification(&q.sink.name, NotificationResult::failed);
                    return;
                }
                let wait = backoff::delay(
                    failures,
                    jitter(),
                    retry.initial_delay,
                    retry.max_delay,
                    config::DEFAULT_BACKOFF_JITTER,
                );
                tracing::warn!(sink = %q.sink.name, event = %event.kind, resource = %event.resource, attempt = failures, error = %e, retry_in = ?wait, "notification delivery failed; will retry");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// The task of one sink: delivers its queue in order until the notifier is dropped and
/// the queue is empty.
pub(super) async fn deliver_loop(
    q: Arc<SinkQueue>,
    client: reqwest::Client,
    retry: RetryPolicy,
    telemetry: Arc<Telemetry>,
) {
    loop {
        let next = q.queue.lock().ok().and_then(|mut g| {
            let e = g.pop_front();
            if e.is_some() {
                q.busy.fetch_add(1, Ordering::SeqCst);
            }
            e
        });
        match next {
            Some(event) => {
                deliver(&client, &q, retry, &telemetry, &event).await;
                q.busy.fetch_sub(1, Ordering::SeqCst);
            }
            None if q.closed.load(Ordering::SeqCst) => return,
            None => q.wake.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flink::lifecycle::record::LifecycleState;
    use crate::flink::spec::{Kind, ResourceKey};

    #[test]
    fn bodies_carry_the_event_and_a_signature_over_the_exact_bytes() {
        let e = Event {
            kind: EventKind::RolledBack,
            resource: ResourceKey::new("default", Kind::FlinkDeployment, "orders"),
            revision: Some("0123456789abcdef".into()),
            lifecycle_state: LifecycleState::RolledBack,
            reason: Some("UpgradeFailed".into()),
            message: "rolled back to the last stable spec (abcdef0)".into(),
            time: "2026-01-01T00:00:00.000Z".into(),
        };
        let (body, headers) = request_body(SinkKind::Webhook, Some(b"k"), &e);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["type"], "rolled-back");
        assert_eq!(v["resource"]["name"], "orders");
        assert_eq!(v["lifecycleState"], "ROLLED_BACK");
        let sig = headers
            .iter()
            .find(|(k, _)| *k == config::WEBHOOK_SIGNATURE_HEADER)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        assert!(signature::verify(b"k", &body, &sig));
        let (body, headers) = request_body(SinkKind::Slack, None, &e);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let text = v["text"].as_str().unwrap_or_default();
        assert!(
            text.contains("*rolled-back* FlinkDeployment `default/orders` at `0123456`, now ROLLED_BACK (UpgradeFailed)"),
            "{text}"
        );
        assert!(!headers
            .iter()
            .any(|(k, _)| *k == config::WEBHOOK_SIGNATURE_HEADER));
    }
}
