//! Notifications: what happened to a resource, sent to generic webhooks (JSON, optionally
//! signed) and Slack-compatible incoming webhooks.
//!
//! Data flow: the executor derives lifecycle [`Event`]s from each record write
//! ([`transition_events`]; the drift check makes its own) and hands them to
//! [`Notifier::emit`], which never blocks: it puts the event on the bounded queue of each
//! sink whose filter takes it. One task per sink ([`Notifier::start`]) delivers its queue
//! in order, retrying a failed delivery with backoff ([`crate::apply::backoff::delay`]).
//! Nothing is lost silently: a full queue drops its oldest event, a delivery given up
//! after its attempts (or refused with a 4xx) is dropped too, and each is logged with the
//! event and counted in `flink_gitops_notifications_total{result="dropped"|"failed"}`.
//!
//! The sinks are configured in a YAML file ([`config`]; the README shows the format).

pub mod config;
mod derive;
mod sink;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use config::{NotifyConfig, NotifyConfigError, SinkConfig, SinkKind};
pub use derive::{new_savepoint, savepoint_failed, transition_events};

use crate::flink::lifecycle::record::LifecycleState;
use crate::flink::spec::ResourceKey;
use crate::telemetry::{NotificationResult, Telemetry};

/// What happened. Written in kebab-case (`drift-detected`) in the JSON body and in the
/// configuration's `events` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A job deployed (first time, resumed, recovered) and running with its spec: into STABLE.
    Deployed,
    /// A new spec running after an upgrade: into STABLE with another stable spec.
    Upgraded,
    /// The job was suspended (`job.state: suspended`).
    Suspended,
    /// An upgrade that did not become stable was rolled back to the last stable spec.
    RolledBack,
    /// The job or a step failed (`lastError` with its reason).
    Failed,
    /// The live state differs from Git (the drift check).
    DriftDetected,
    /// Drift was healed (the drift check with the `heal` policy).
    DriftHealed,
    /// A savepoint (manual, periodic, or taken for an upgrade) failed.
    SavepointFailed,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 8] = [
        EventKind::Deployed,
        EventKind::Upgraded,
        EventKind::Suspended,
        EventKind::RolledBack,
        EventKind::Failed,
        EventKind::DriftDetected,
        EventKind::DriftHealed,
        EventKind::SavepointFailed,
    ];

    /// The kebab-case name (`rolled-back`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Deployed => "deployed",
            EventKind::Upgraded => "upgraded",
            EventKind::Suspended => "suspended",
            EventKind::RolledBack => "rolled-back",
            EventKind::Failed => "failed",
            EventKind::DriftDetected => "drift-detected",
            EventKind::DriftHealed => "drift-healed",
            EventKind::SavepointFailed => "savepoint-failed",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One notification. The generic webhook's JSON body is this, serialised:
///
/// ```json
/// {"type": "upgraded",
///  "resource": {"namespace": "default", "kind": "FlinkDeployment", "name": "orders"},
///  "revision": "5d6e7f8...", "lifecycleState": "STABLE", "reason": null,
///  "message": "upgraded from 1a2b3c4 and running, job 0123abcd",
///  "time": "2026-01-01T00:00:00.000Z"}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub resource: ResourceKey,
    /// The Git commit of the spec concerned (the reconciled one), when there is one.
    pub revision: Option<String>,
    /// The resource's lifecycle state after what happened.
    pub lifecycle_state: LifecycleState,
    /// A reason from [`crate::flink::lifecycle::record::reason`] for failures (the
    /// operator's event reasons), else none.
    pub reason: Option<String>,
    /// One line for people.
    pub message: String,
    /// RFC 3339 time it happened (the agent's clock).
    pub time: String,
}

impl Event {
    /// An event about the resource `record` describes, in its current lifecycle state and
    /// at its reconciled revision (what the drift check emits: `drift-detected`,
    /// `drift-healed`). `now` is RFC 3339.
    pub fn for_record(
        kind: EventKind,
        record: &crate::flink::lifecycle::record::Record,
        reason: Option<String>,
        message: impl Into<String>,
        now: &str,
    ) -> Event {
        Event {
            kind,
            resource: record.key(),
            revision: record.last_reconciled_revision.clone(),
            lifecycle_state: record.derive_lifecycle(),
            reason,
            message: message.into(),
            time: now.to_string(),
        }
    }
}

/// One sink's queue, shared by the [`Notifier`] handles and the sink's delivery task.
struct SinkQueue {
    sink: SinkConfig,
    queue: Mutex<VecDeque<Event>>,
    capacity: usize,
    wake: tokio::sync::Notify,
    /// Events taken from the queue and not yet delivered or given up.
    busy: AtomicUsize,
    closed: AtomicBool,
}

struct Inner {
    sinks: Vec<Arc<SinkQueue>>,
    telemetry: Arc<Telemetry>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for q in &self.sinks {
            q.closed.store(true, Ordering::SeqCst);
            q.wake.notify_one();
        }
    }
}

/// The handle events are emitted through. Cheap to clone; the default sends nothing.
/// When the last handle is dropped, each sink's task delivers what is queued and ends.
#[derive(Clone, Default)]
pub struct Notifier {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sinks: Vec<&str> = self
            .inner
            .iter()
            .flat_map(|i| i.sinks.iter().map(|q| q.sink.name.as_str()))
            .collect();
        f.debug_struct("Notifier").field("sinks", &sinks).finish()
    }
}

impl Notifier {
    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier { inner: None }
    }

    /// Starts one delivery task per sink on the current tokio runtime.
    ///
    /// # Errors
    /// [`NotifyConfigError::Http`] when the HTTP client cannot be built.
    ///
    /// # Panics
    /// Outside a tokio runtime (as `tokio::spawn`).
    pub fn start(
        config: NotifyConfig,
        telemetry: Arc<Telemetry>,
    ) -> Result<Notifier, NotifyConfigError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(NotifyConfigError::Http)?;
        let sinks: Vec<Arc<SinkQueue>> = config
            .sinks
            .into_iter()
            .map(|sink| {
                Arc::new(SinkQueue {
                    sink,
                    queue: Mutex::new(VecDeque::new()),
                    capacity: config.queue_size.max(1),
                    wake: tokio::sync::Notify::new(),
                    busy: AtomicUsize::new(0),
                    closed: AtomicBool::new(false),
                })
            })
            .collect();
        for q in &sinks {
            tokio::spawn(sink::deliver_loop(
                q.clone(),
                client.clone(),
                config.retry,
                telemetry.clone(),
            ));
        }
        Ok(Notifier {
            inner: Some(Arc::new(Inner { sinks, telemetry })),
        })
    }

    /// Queues `event` for every sink whose filter takes it; never blocks. A full queue
    /// drops its oldest event (logged and counted as `dropped`).
    pub fn emit(&self, event: Event) {
        let Some(inner) = &self.inner else {
            return;
        };
        tracing::debug!(event = %event.kind, resource = %event.resource, "notification");
        for q in &inner.sinks {
            if !q.sink.filter.accepts(&event) {
                continue;
            }
            let dropped = match q.queue.lock() {
                Ok(mut queue) => {
                    let dropped = (queue.len() >= q.capacity)
                        .then(|| queue.pop_front())
                        .flatten();
                    queue.push_back(event.clone());
                    dropped
                }
                Err(_) => Some(event.clone()),
            };
            if let Some(old) = dropped {
                tracing::warn!(sink = %q.sink.name, event = %old.kind, resource = %old.resource, time = %old.time, message = %old.message, "notification queue full; dropped the oldest notification");
                inner
                    .telemetry
                    .notification(&q.sink.name, NotificationResult::dropped);
            }
            q.wake.notify_one();
        }
    }

    /// Notifications queued or being delivered, over every sink.
    pub fn pending(&self) -> usize {
        self.inner
            .iter()
            .flat_map(|i| i.sinks.iter())
            .map(|q| q.queue.lock().map(|g| g.len()).unwrap_or(0) + q.busy.load(Ordering::SeqCst))
            .sum()
    }

    /// Waits until every queue is delivered, at most `deadline`; returns how many were
    /// still pending then (and logs them).
    pub async fn flush(&self, deadline: Duration) -> usize {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            let n = self.pending();
            if n == 0 {
                return 0;
            }
            if tokio::time::Instant::now() >= end {
                tracing::warn!(
                    pending = n,
                    "notifications not delivered before shutdown; they are lost"
                );
                return n;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
