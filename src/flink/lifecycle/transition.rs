//! The record transitions of each [`Step`], as pure functions: `record + step -> record`
//! before the step's I/O ([`before`], the write-ahead facts), and `record + step + outcome
//! -> record` after it ([`after`]). The executor writes the first to the status branch
//! before it calls Flink or the runtime, so an agent stopped at any point finds the job id,
//! the trigger id or the restore point it needs.

use super::decide::Step;
use super::drift::Drift;
use super::observe::Observed;
use super::record::{
    reason, InFlight, LastError, Record, RollbackState, Savepoint, SnapshotTrigger, StopPurpose,
};
use super::snapshots;
use crate::flink::rest::JobStatus;

/// What carrying out a step's I/O came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done (or had already been done: idempotent).
    Done,
    /// Failed in a way a retry may fix: the in-flight facts stay, the step is tried again.
    Transient { message: String },
    /// Failed in a way only a change in Git fixes: recorded as the resource's error.
    Stalled {
        reason: &'static str,
        message: String,
    },
}

fn error(reason: &str, message: &str, now: &str) -> LastError {
    LastError {
        reason: reason.to_string(),
        message: message.to_string(),
        time: now.to_string(),
    }
}

/// The record to write *before* the step's I/O, if the step needs one: a deploy's job id
/// and restore path, a stop's trigger id, a rescale's target, a snapshot's trigger.
pub fn before(rec: &Record, step: &Step, now: &str) -> Option<Record> {
    let mut r = rec.clone();
    match step {
        Step::Deploy(d) => {
            if !d.retry {
                r.generation += 1;
            }
            if d.rollback {
                r.rollback = Some(RollbackState::RollingBack);
            } else {
                r.set_reconciled(&d.spec, d.revision.as_deref());
                r.rollback = None;
                r.rollback_cause = None;
            }
            r.deleted = false;
            r.unreachable = None;
            r.job_id = d.job_id.clone();
            r.job_state = None;
            r.last_error = None;
            // What this start restores from is where the next stateful start restores from
            // too, until the job records something newer (a recovery or restart from the
            // newest checkpoint must not fall back to an older savepoint later).
            if d.restore.is_some() {
                r.restore_path = d.restore.clone();
            }
            // The savepoint this start restores from is the one the new revision uses.
            if let (Some(path), Some(rev)) = (&d.restore, &d.revision) {
                if let Some(sp) = r.savepoints.iter_mut().rev().find(|s| &s.location == path) {
                    sp.for_revision.get_or_insert_with(|| rev.clone());
                }
            }
            let since = match (&rec.in_flight, d.retry) {
                (Some(InFlight::Starting { since, .. }), true) => since.clone(),
                _ => now.to_string(),
            };
            r.in_flight = Some(InFlight::Starting {
                job_id: d.job_id.clone().unwrap_or_default(),
                restore: d.restore.clone(),
                since,
            });
        }
        Step::Stop(s) => {
            let since = match &rec.in_flight {
                Some(InFlight::Stopping { since, .. }) => since.clone(),
                _ => now.to_string(),
            };
            r.in_flight = Some(InFlight::Stopping {
                purpose: s.purpose,
                mode: s.mode,
                job_id: s.job_id.clone(),
                trigger_id: s.trigger_id.clone(),
                since,
            });
            r.unreachable = None;
        }
        Step::Rescale {
            spec,
            revision,
            job_id,
            parallelism,
        } => {
            r.set_reconciled(spec, Some(revision));
            r.rollback = None;
            r.rollback_cause = None;
            let since = match &rec.in_flight {
                Some(InFlight::Rescaling { since, .. }) => since.clone(),
                _ => now.to_string(),
            };
            r.in_flight = Some(InFlight::Rescaling {
                job_id: job_id.clone(),
                parallelism: parallelism.clone(),
                since,
            });
            r.unreachable = None;
        }
        Step::TriggerSnapshot {
            job_id,
            trigger_id,
            nonce,
            checkpoint,
            periodic,
            ..
        } => {
            let since = match &rec.in_flight {
                Some(InFlight::Snapshotting { since, .. }) => since.clone(),
                _ => now.to_string(),
            };
            r.in_flight = Some(InFlight::Snapshotting {
                job_id: job_id.clone(),
                trigger_id: trigger_id.clone(),
                nonce: *nonce,
                checkpoint: *checkpoint,
                periodic: *periodic,
                since,
            });
        }
        _ => return None,
    }
    Some(r)
}

/// The record after the step's I/O (or after the step, for steps without I/O). `rec` is
/// the record as [`before`] left it.
pub fn after(
    rec: &Record,
    step: &Step,
    outcome: &Outcome,
    observed: &Observed,
    now: &str,
) -> Record {
    let mut r = rec.clone();
    if let Outcome::Transient { message } = outcome {
        // The in-flight facts stay; the step is tried again after a backoff.
        if r.unreachable.as_ref().map(|u| &u.message) != Some(message) {
            r.unreachable = Some(error(reason::UNREACHABLE, message, now));
        }
        return r;
    }
    if let Outcome::Stalled {
        reason: why,
        message,
    } = outcome
    {
        let why: &str = why;
        match step {
            Step::TriggerSnapshot {
                nonce,
                checkpoint,
                periodic,
                ..
            } => {
                // Reported with Flink's words (reason SavepointFailed or CheckpointFailed,
                // not `why`) and tried again after a backoff.
                snapshots::refused(&mut r, *checkpoint, *periodic, *nonce, message, now);
            }
            Step::Stop(_) => {
                // The job keeps running; the stop is not retried until Git changes.
                r.in_flight = None;
                r.last_error = Some(error(why, message, now));
            }
            _ => {
                r.in_flight = None;
                r.job_state = Some(JobStatus::Failed);
                r.last_error = Some(error(why, message, now));
            }
        }
        return r;
    }
    match step {
        Step::Nothing | Step::Wait { .. } => {
            r.unreachable = None;
        }
        Step::Unreachable { error: e } => {
            if r.unreachable.as_ref().map(|u| &u.message) != Some(e) {
                let time = r
                    .unreachable
                    .as_ref()
                    .map(|u| u.time.clone())
                    .unwrap_or_else(|| now.to_string());
                r.unreachable = Some(error(reason::UNREACHABLE, e, &time));
            }
        }
        Step::Hold { message } => {
            let same = r
                .last_error
                .as_ref()
                .is_some_and(|e| e.reason == reason::VALIDATION && &e.message == message);
            if !same {
                r.last_error = Some(error(reason::VALIDATION, message, now));
            }
        }
        Step::AcceptSpec {
            spec,
            revision,
            stable,
        } => {
            r.set_reconciled(spec, Some(revision));
            r.last_error = None;
            r.deleted = false;
            // A new spec ends a rollback: it was judged against the stable spec that runs.
            r.rollback = None;
            r.rollback_cause = None;
            if *stable {
                r.mark_reconciled_stable();
            }
        }
        // Their facts were written by `before`; the outcome added nothing.
        Step::Deploy(_) | Step::Stop(_) | Step::Rescale { .. } | Step::TriggerSnapshot { .. } => {}
        Step::FinishStop {
            purpose,
            restore,
            savepoint,
        } => {
            let job_id = match &r.in_flight {
                Some(InFlight::Stopping { job_id, .. }) => job_id.clone(),
                _ => r.job_id.clone().unwrap_or_default(),
            };
            if *purpose == StopPurpose::Rollback {
                r.rollback = Some(RollbackState::RollingBack);
            } else {
                r.restore_path = restore.clone();
                if let Some(location) = restore {
                    let trigger = match (savepoint, purpose) {
                        (false, _) => SnapshotTrigger::Checkpoint,
                        (true, StopPurpose::Suspend) => SnapshotTrigger::Suspend,
                        (true, StopPurpose::Delete) => SnapshotTrigger::Delete,
                        (true, _) => SnapshotTrigger::Upgrade,
                    };
                    let known = r.savepoints.iter().any(|s| &s.location == location);
                    if !known {
                        r.savepoints.push(Savepoint {
                            location: location.clone(),
                            time: now.to_string(),
                            trigger,
                            revision: r.last_reconciled_revision.clone().unwrap_or_default(),
                            for_revision: None,
                            job_id: job_id.clone(),
                        });
                    }
                }
            }
            r.stopped_with = r
                .last_reconciled_spec
                .as_ref()
                .and_then(|s| s.upgrade_mode());
            r.job_state = Some(
                observed
                    .job
                    .get()
                    .map(|j| j.state)
                    .unwrap_or(JobStatus::Finished),
            );
            r.in_flight = Some(InFlight::Stopped { purpose: *purpose });
        }
        Step::Settle {
            purpose,
            spec,
            revision,
            ..
        } => {
            r.in_flight = None;
            if *purpose == StopPurpose::Delete {
                r.deleted = true;
            } else {
                if let Some(spec) = spec {
                    r.set_reconciled(spec, revision.as_deref());
                }
                r.mark_reconciled_stable();
            }
        }
        Step::MarkStable => {
            r.in_flight = None;
            r.unreachable = None;
            r.job_state = if r.is_session_cluster() {
                None
            } else {
                Some(JobStatus::Running)
            };
            if r.rollback == Some(RollbackState::RollingBack) {
                // The stable spec runs again; the failed spec stays reconciled (as in the
                // operator) so it is not tried again until Git changes.
                r.rollback = Some(RollbackState::RolledBack);
            } else if r.rollback.is_none() {
                r.mark_reconciled_stable();
                r.last_error = None;
            }
        }
        Step::FinishSnapshot { location, error: e } => {
            snapshots::finish(&mut r, location.as_ref(), e.as_ref(), now);
        }
        Step::ReportUnhealthy { message } => {
            r.last_error = Some(error(reason::UNHEALTHY, message, now));
        }
        Step::BeginRollback {
            reason: why,
            message,
        } => {
            r.in_flight = None;
            r.unreachable = None;
            r.rollback = Some(RollbackState::RollingBack);
            r.rollback_cause = Some(error(why, message, now));
            r.job_state = observed.job.get().map(|j| j.state);
        }
        Step::Fail {
            reason: why,
            message,
        } => {
            r.in_flight = None;
            r.job_state = Some(JobStatus::Failed);
            r.last_error = Some(error(why, message, now));
        }
        Step::KeepUnmanaged => r.removed_from_git = true,
        Step::RecordDrift {
            items,
            policy,
            revision,
        } => {
            r.drift = (!items.is_empty()).then(|| Drift {
                since: rec
                    .drift
                    .as_ref()
                    .map(|d| d.since.clone())
                    .unwrap_or_else(|| now.to_string()),
                revision: rec
                    .drift
                    .as_ref()
                    .map(|d| d.revision.clone())
                    .unwrap_or_else(|| revision.clone()),
                policy: *policy,
                items: items.clone(),
            });
        }
        // Nothing to remember: the next look finds the jobs ended (or not).
        Step::CancelUnmanaged { .. } => {}
        Step::MarkDeleted => {
            r.deleted = true;
            r.in_flight = None;
        }
    }
    r
}

/// Back in Git after a `--no-prune` removal: managed again.
pub fn returned_to_git(rec: &Record) -> Option<Record> {
    rec.removed_from_git.then(|| {
        let mut r = rec.clone();
        r.removed_from_git = false;
        r
    })
}

#[cfg(test)]
#[path = "transition_tests.rs"]
mod tests;
