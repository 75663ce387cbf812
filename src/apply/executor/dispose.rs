//! Keeping the savepoint history bounded: savepoints that leave it
//! ([`crate::flink::lifecycle::snapshots::cleanup`]) are disposed of through Flink's REST API
//! (`POST /savepoint-disposal`, then `GET /savepoint-disposal/:id`), as the operator's
//! `SnapshotObserver` does.
//!
//! *Guarantees*: a disposal is on the status branch (`snapshots.disposals`) before Flink is
//! asked, and a savepoint leaves the history only once Flink says its files are gone (or
//! were gone already); a failed try is recorded on the disposal and tried again after a
//! backoff. Nothing here fails the resource's reconcile except a status write: a disposal
//! that fails never holds up this resource's job or any other resource.

use std::time::Duration;

use super::observe::{cluster_of, connect};
use super::{rfc3339, Agent, ReconcileError};
use crate::apply::runtime::Runtime;
use crate::flink::lifecycle::observe::{ClusterState, Observed};
use crate::flink::lifecycle::snapshots::{
    cleanup, disposal_done, disposal_failed, disposal_ready, disposal_sent, start_cleanup,
    Disposal, HistoryPolicy,
};
use crate::flink::rest::{DisposalStatus, FailureCause, FlinkApi, FlinkApiFactory, TriggerId};
use crate::flink::spec::ResourceKey;

/// Pauses between the status polls of a disposal just sent (a savepoint on a local or
/// shared file system is gone in milliseconds); one still running after them is recorded
/// with its id and polled on the resource's next reconcile.
const DISPOSAL_POLLS: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_millis(50),
    Duration::from_millis(200),
];

/// How one try of a disposal ended.
enum Disposed {
    /// The files are gone.
    Gone,
    /// Flink is still at it: the operation's id.
    Pending(TriggerId),
    /// The try failed; why.
    Failed(String),
}

/// Flink's answer for a path that holds no savepoint (any more): the files are gone.
fn already_gone(cause: &FailureCause) -> bool {
    cause.stack_trace.contains("FileNotFoundException")
        || cause
            .stack_trace
            .contains("Cannot find checkpoint or savepoint")
}

async fn dispose_one<A: FlinkApi>(client: &A, d: &Disposal) -> Disposed {
    let trigger = match &d.trigger_id {
        Some(t) => TriggerId::new(t.clone()),
        None => match client.dispose_savepoint(&d.location).await {
            Ok(t) => t,
            Err(e) => return Disposed::Failed(e.to_string()),
        },
    };
    for pause in DISPOSAL_POLLS {
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        match client.disposal_status(&trigger).await {
            Ok(DisposalStatus::Completed) => return Disposed::Gone,
            Ok(DisposalStatus::Failed { cause }) if already_gone(&cause) => return Disposed::Gone,
            Ok(DisposalStatus::Failed { cause }) => {
                return Disposed::Failed(cause.summary().to_string())
            }
            Ok(DisposalStatus::InProgress) => {}
            // An id Flink no longer knows (its JobManager restarted): sent again after the
            // backoff, which is safe, since disposing what is gone is done.
            Err(e) => return Disposed::Failed(e.to_string()),
        }
    }
    Disposed::Pending(trigger)
}

impl<R: Runtime, F: FlinkApiFactory> Agent<R, F> {
    /// For a resource at rest: records which savepoints leave its history, then disposes of
    /// those due through its cluster's REST API when the cluster answers.
    ///
    /// # Errors
    /// Only a status write that failed ([`ReconcileError`]); Flink's errors are recorded on
    /// the disposal.
    pub(super) async fn tidy_history(
        &self,
        key: &ResourceKey,
        observed: &Observed,
    ) -> Result<(), ReconcileError> {
        let Some(rec) = self.record_of(key) else {
            return Ok(());
        };
        let Some(spec) = rec.last_reconciled_spec.clone() else {
            return Ok(());
        };
        if rec.deleted || rec.in_flight.is_some() {
            return Ok(());
        }
        let now_ms = self.env.now_ms();
        let now = rfc3339(now_ms);
        let plan = cleanup(&rec, &HistoryPolicy::of(&spec), now_ms);
        if let Some(next) = start_cleanup(&rec, &plan, &now) {
            let mut parts = Vec::new();
            if !plan.dispose.is_empty() {
                parts.push(format!("dispose of {}", plan.dispose.join(", ")));
            }
            if !plan.forget.is_empty() {
                parts.push(format!("forget checkpoints {}", plan.forget.join(", ")));
            }
            self.persist(next, format!("savepoint history: {}", parts.join("; ")))
                .await?;
        }
        let Some(rec) = self.record_of(key) else {
            return Ok(());
        };
        let ready: Vec<Disposal> = rec
            .snapshots
            .disposals
            .iter()
            .filter(|d| disposal_ready(d, now_ms))
            .cloned()
            .collect();
        if ready.is_empty() || observed.cluster.get() != Some(&ClusterState::Ready) {
            return Ok(());
        }
        let cluster = cluster_of(key, Some(&spec));
        let client = match connect(self.runtime.as_ref(), &self.flink, &cluster).await {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::debug!(resource = %key, error = %e, "no REST client for disposals; later");
                return Ok(());
            }
        };
        for d in ready {
            let outcome = {
                let _slot = self.actions.acquire().await;
                dispose_one(&client, &d).await
            };
            let Some(rec) = self.record_of(key) else {
                return Ok(());
            };
            let (next, message) = match outcome {
                Disposed::Gone => (
                    disposal_done(&rec, &d.location),
                    format!("savepoint {} disposed", d.location),
                ),
                Disposed::Pending(t) => (
                    disposal_sent(&rec, &d.location, t.as_str()),
                    format!("disposing of savepoint {}", d.location),
                ),
                Disposed::Failed(e) => {
                    tracing::warn!(resource = %key, savepoint = %d.location, error = %e, attempts = d.attempts + 1, "savepoint disposal failed; will retry");
                    (
                        disposal_failed(&rec, &d.location, &e, &now),
                        format!(
                            "disposal of savepoint {} failed, will retry: {e}",
                            d.location
                        ),
                    )
                }
            };
            self.persist(next, message).await?;
        }
        Ok(())
    }
}
