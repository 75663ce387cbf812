//! What the agent reports to, and what wakes or holds it, beside its parts: metrics
//! ([`Telemetry`]), notifications ([`Notifier`]), a fetch trigger ([`FetchTrigger`],
//! pulled by the webhook receiver) and the leadership gate ([`AgentHooks::leadership`]).
//! All have a no-op default ([`AgentHooks::default`]: no leader election, always acts),
//! so a test that does not look at them builds an agent as before ([`Agent::start`]).
//!
//! Data flow: every record write ([`Agent`]'s `persist`) hands the record before and after
//! to [`AgentHooks::after_write`], which updates the per-resource metrics, counts
//! savepoints taken and failed, and emits the lifecycle notifications
//! ([`crate::notify::transition_events`]). The loops call [`Agent::sync_observed`] and
//! [`Agent::reconcile_observed`], which time and count fetches and reconciles.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{rfc3339, Agent, ErrorClass, ReconcileError, Requeue};
use crate::apply::runtime::Runtime;
use crate::flink::lifecycle::record::Record;
use crate::flink::rest::FlinkApiFactory;
use crate::flink::spec::ResourceKey;
use crate::leader::LeaderState;
use crate::notify::{self, Notifier};
use crate::telemetry::{ErrorClassLabel, ReconcileResult, Telemetry};

/// Asks the fetch loop of [`Agent::run`] to fetch now instead of at the end of its
/// interval. Requests that arrive within the debounce window
/// ([`super::AgentSettings::fetch_debounce`]) or while a fetch runs make one more fetch,
/// not one each. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FetchTrigger {
    tx: Arc<watch::Sender<u64>>,
}

impl Default for FetchTrigger {
    fn default() -> Self {
        FetchTrigger {
            tx: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl FetchTrigger {
    /// Requests a fetch; never blocks.
    pub fn request(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Requests made so far.
    pub fn requested(&self) -> u64 {
        *self.tx.borrow()
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

/// Metrics, notifications, the fetch trigger and the leadership gate of one agent.
#[derive(Debug, Clone, Default)]
pub struct AgentHooks {
    pub telemetry: Arc<Telemetry>,
    pub notifier: Notifier,
    pub fetch_trigger: FetchTrigger,
    /// With leader election ([`crate::leader::LeaderElector`]): the elector's state. The
    /// agent then reconciles only while it reads a current [`LeaderState::Leading`]:
    /// [`Agent::run`] waits for it before the first reconcile and ends with
    /// [`super::RunEnd::LostLeadership`] (in-flight reconciles aborted) as soon as it is
    /// gone, and every reconcile checks it again before each step and before each
    /// external action ([`ReconcileError::NotLeading`]). The fetch loop runs regardless
    /// (it only reads Git), so a follower is ready to take over. `None`: always acts.
    pub leadership: Option<watch::Receiver<LeaderState>>,
    /// This agent's identity (with leader election, the Lease's `holderIdentity`): every
    /// status commit names it in a [`crate::config::STATUS_AGENT_TRAILER`] trailer, which
    /// `status` shows. `None`: no trailer.
    pub identity: Option<String>,
}

impl AgentHooks {
    /// Whether the agent may act now: always without leader election, else while the
    /// elector holds the Lease and its renew deadline has not passed.
    pub fn may_act(&self) -> bool {
        self.leadership
            .as_ref()
            .is_none_or(|rx| rx.borrow().is_leading())
    }

    /// [`AgentHooks::may_act`] as a reconcile's guard.
    ///
    /// # Errors
    /// [`ReconcileError::NotLeading`] when the agent may not act.
    pub(super) fn ensure_leading(&self) -> Result<(), ReconcileError> {
        if self.may_act() {
            Ok(())
        } else {
            Err(ReconcileError::NotLeading)
        }
    }

    /// A record was written: `before` is what the agent held (None for a new resource).
    /// `now_ms` is the agent's clock.
    pub(super) fn after_write(&self, before: Option<&Record>, after: &Record, now_ms: u64) {
        self.telemetry.observe_record(after);
        if let Some(sp) = notify::new_savepoint(before, after) {
            self.telemetry.savepoint_taken(sp.trigger);
        }
        if notify::savepoint_failed(before, after) {
            self.telemetry.savepoint_failed();
        }
        for event in notify::transition_events(before, after, &rfc3339(now_ms)) {
            self.notifier.emit(event);
        }
    }
}

fn class_label(class: ErrorClass) -> ErrorClassLabel {
    match class {
        ErrorClass::Transient => ErrorClassLabel::transient,
        ErrorClass::Waiting(_) => ErrorClassLabel::waiting,
        ErrorClass::Stalled => ErrorClassLabel::stalled,
    }
}

impl<R: Runtime, F: FlinkApiFactory> Agent<R, F> {
    /// The agent's metrics and health.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.hooks.telemetry
    }

    /// Where the agent's notifications go; [`Notifier::emit`] adds one (the drift check
    /// emits `drift-detected` and `drift-healed` through it).
    pub fn notifier(&self) -> &Notifier {
        &self.hooks.notifier
    }

    /// The trigger that wakes this agent's fetch loop (the webhook receiver pulls it).
    pub fn fetch_trigger(&self) -> &FetchTrigger {
        &self.hooks.fetch_trigger
    }

    /// [`Agent::sync`], timed and counted in the metrics (fetches, failures, duration,
    /// revision, last successful sync; the first success makes the agent ready).
    ///
    /// # Errors
    /// As [`Agent::sync`].
    pub async fn sync_observed(&self) -> Result<bool, ReconcileError> {
        let started = Instant::now();
        let result = self.sync().await;
        let commit = result
            .as_ref()
            .ok()
            .and_then(|_| self.desired().revision.as_ref().map(|r| r.commit.clone()));
        self.hooks
            .telemetry
            .observe_fetch(commit.as_deref(), started.elapsed());
        result
    }

    /// [`Agent::reconcile`], timed and counted in the metrics by result and error class.
    ///
    /// # Errors
    /// As [`Agent::reconcile`].
    pub async fn reconcile_observed(&self, key: &ResourceKey) -> Result<Requeue, ReconcileError> {
        let started = Instant::now();
        let result = self.reconcile(key).await;
        let (label, class) = match &result {
            Ok(Requeue::Idle) => (ReconcileResult::idle, None),
            Ok(Requeue::After(_)) => (ReconcileResult::requeue, None),
            Err(e) => (ReconcileResult::error, Some(class_label(e.class()))),
        };
        self.hooks
            .telemetry
            .observe_reconcile(label, class, started.elapsed());
        result
    }

    /// Waits for a fetch request from the trigger, then for the debounce window, and
    /// marks every request so far as served. Never returns once the trigger is gone.
    pub(super) async fn next_fetch_request(rx: &mut watch::Receiver<u64>, debounce: Duration) {
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
        tokio::time::sleep(debounce).await;
        rx.borrow_and_update();
    }
}
