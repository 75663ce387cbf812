//! Lifecycle events from record transitions: pure, so the rules are tested table by table.
//!
//! The executor hands every record write (the record before and after) to
//! [`transition_events`]; the drift check emits its own events through
//! [`super::Notifier::emit`].

use super::{Event, EventKind};
use crate::flink::lifecycle::record::SnapshotTrigger;
use crate::flink::lifecycle::record::{reason, LastError, LifecycleState, Record, Savepoint};

/// The savepoint `after` recorded that `before` did not have (newest first compared by
/// location: the history is trimmed at the front, so its length does not tell). A
/// retained checkpoint taken over as restore point is not a savepoint.
pub fn new_savepoint<'a>(before: Option<&Record>, after: &'a Record) -> Option<&'a Savepoint> {
    let newest = after.newest_savepoint()?;
    if newest.trigger == SnapshotTrigger::Checkpoint {
        return None;
    }
    let known = before
        .map(|b| b.savepoints.iter().any(|s| s.location == newest.location))
        .unwrap_or(false);
    (!known).then_some(newest)
}

/// The error `after` holds that `before` did not (compared by reason and message, not
/// time, so a retry failing the same way is not a new error).
fn new_error<'a>(before: Option<&Record>, after: &'a Record) -> Option<&'a LastError> {
    let e = after.last_error.as_ref()?;
    let same = before
        .and_then(|b| b.last_error.as_ref())
        .is_some_and(|p| p.reason == e.reason && p.message == e.message);
    (!same).then_some(e)
}

/// Whether `after` records a savepoint failure `before` did not.
pub fn savepoint_failed(before: Option<&Record>, after: &Record) -> bool {
    new_error(before, after).is_some_and(|e| e.reason == reason::SAVEPOINT_FAILED)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

/// The notifications one record write makes, at time `now` (RFC 3339):
///
/// * into STABLE: `deployed` when the resource was never stable before or was suspended
///   or failed (a resume, a recovery), `upgraded` when it was stable with another spec;
/// * into SUSPENDED: `suspended`; into ROLLED_BACK: `rolled-back`; into FAILED: `failed`;
/// * a new last error: `savepoint-failed` for a savepoint, else `failed` (unless the
///   state change already said so).
///
/// DEPLOYED, UPGRADING, ROLLING_BACK and DELETED are passing states and make none.
pub fn transition_events(before: Option<&Record>, after: &Record, now: &str) -> Vec<Event> {
    let from = before
        .map(Record::derive_lifecycle)
        .unwrap_or(LifecycleState::Created);
    let to = after.derive_lifecycle();
    let revision = after.last_reconciled_revision.clone();
    let event = |kind: EventKind, reason: Option<String>, message: String| Event {
        kind,
        resource: after.key(),
        revision: revision.clone(),
        lifecycle_state: to,
        reason,
        message,
        time: now.to_string(),
    };
    let mut events = Vec::new();
    let error = new_error(before, after);
    if from != to {
        match to {
            LifecycleState::Stable => {
                let prior_stable = before.and_then(|b| b.last_stable_hash.as_ref());
                let resumed = matches!(
                    from,
                    LifecycleState::Suspended | LifecycleState::Failed | LifecycleState::Created
                );
                let job = after
                    .job_id
                    .as_deref()
                    .map(|j| format!(", job {}", j.get(..8).unwrap_or(j)))
                    .unwrap_or_default();
                if prior_stable.is_some() && prior_stable != after.last_stable_hash.as_ref() {
                    let from_rev = before
                        .and_then(|b| b.last_stable_revision.as_deref())
                        .map(short)
                        .unwrap_or("-");
                    events.push(event(
                        EventKind::Upgraded,
                        None,
                        format!("upgraded from {from_rev} and running{job}"),
                    ));
                } else if prior_stable.is_none() || resumed {
                    let what = if from == LifecycleState::Suspended {
                        "resumed"
                    } else if from == LifecycleState::Failed {
                        "recovered"
                    } else {
                        "deployed"
                    };
                    events.push(event(
                        EventKind::Deployed,
                        None,
                        format!("{what} and running{job}"),
                    ));
                } else {
                    events.push(event(
                        EventKind::Deployed,
                        None,
                        format!("redeployed and running{job}"),
                    ));
                }
            }
            LifecycleState::Suspended => {
                let at = after
                    .newest_savepoint()
                    .filter(|_| new_savepoint(before, after).is_some())
                    .map(|s| format!(", savepoint {}", s.location))
                    .unwrap_or_default();
                events.push(event(
                    EventKind::Suspended,
                    None,
                    format!("job suspended{at}"),
                ));
            }
            LifecycleState::RolledBack => {
                let rev = after
                    .last_stable_revision
                    .as_deref()
                    .map(short)
                    .unwrap_or("-");
                events.push(event(
                    EventKind::RolledBack,
                    after.last_error.as_ref().map(|e| e.reason.clone()),
                    format!("rolled back to the last stable spec ({rev})"),
                ));
            }
            LifecycleState::Failed => {
                let (why, msg) = match &after.last_error {
                    Some(e) => (Some(e.reason.clone()), first_line(&e.message)),
                    None => (None, "job failed".to_string()),
                };
                events.push(event(EventKind::Failed, why, msg));
            }
            _ => {}
        }
    }
    if let Some(e) = error {
        let already = events.iter().any(|ev| ev.kind == EventKind::Failed);
        if e.reason == reason::SAVEPOINT_FAILED {
            events.push(event(
                EventKind::SavepointFailed,
                Some(e.reason.clone()),
                first_line(&e.message),
            ));
        } else if !already {
            events.push(event(
                EventKind::Failed,
                Some(e.reason.clone()),
                first_line(&e.message),
            ));
        }
    }
    events
}

fn short(rev: &str) -> &str {
    rev.get(..7).unwrap_or(rev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flink::lifecycle::record::{RollbackState, SnapshotTrigger};
    use crate::flink::rest::JobStatus;
    use crate::flink::spec::{
        DeploymentSpec, JobSpec, JobState, Kind, ResourceKey, Spec, UpgradeMode,
    };

    fn rec() -> Record {
        Record::new(&ResourceKey::new(
            "default",
            Kind::FlinkDeployment,
            "orders",
        ))
    }

    fn spec(version: &str) -> Spec {
        Spec::Deployment(DeploymentSpec {
            job: Some(JobSpec {
                jar_uri: Some(format!("local:///{version}.jar")),
                upgrade_mode: UpgradeMode::Savepoint,
                state: JobState::Running,
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// A running record whose reconciled spec is `version` (stable when `stable` names
    /// the version last stable).
    fn running(version: &str, stable: Option<&str>) -> Record {
        let mut r = rec();
        if let Some(s) = stable {
            r.set_reconciled(&spec(s), Some(&format!("{s}000000000")));
            r.mark_reconciled_stable();
        }
        r.set_reconciled(&spec(version), Some(&format!("{version}000000000")));
        r.job_id = Some("0123456789abcdef".into());
        r.job_state = Some(JobStatus::Running);
        r
    }

    fn kinds(events: &[Event]) -> Vec<EventKind> {
        events.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn lifecycle_transitions_make_one_event_each() {
        let now = "2026-01-01T00:00:00.000Z";
        // First deployment becomes stable.
        let deployed = running("aaaa", None);
        let stable = running("aaaa", Some("aaaa"));
        assert_eq!(deployed.derive_lifecycle(), LifecycleState::Deployed);
        let ev = transition_events(Some(&deployed), &stable, now);
        assert_eq!(kinds(&ev), [EventKind::Deployed]);
        assert_eq!(ev[0].resource.name, "orders");
        assert_eq!(ev[0].lifecycle_state, LifecycleState::Stable);
        assert_eq!(ev[0].revision.as_deref(), Some("aaaa000000000"));
        assert_eq!(ev[0].time, now);
        // Nothing changes: nothing sent.
        assert!(transition_events(Some(&stable), &stable, now).is_empty());
        // An upgrade to a new spec becomes stable.
        let upgraded = running("bbbb", Some("bbbb"));
        let mid = running("bbbb", Some("aaaa"));
        assert_eq!(mid.derive_lifecycle(), LifecycleState::Deployed);
        assert_eq!(kinds(&transition_events(Some(&stable), &mid, now)), []);
        let ev = transition_events(Some(&mid), &upgraded, now);
        assert_eq!(kinds(&ev), [EventKind::Upgraded]);
        assert!(ev[0].message.contains("aaaa000"), "{}", ev[0].message);
        // Rolled back.
        let mut rolled = upgraded.clone();
        rolled.rollback = Some(RollbackState::RolledBack);
        assert_eq!(
            kinds(&transition_events(Some(&upgraded), &rolled, now)),
            [EventKind::RolledBack]
        );
        // The job failed (Step::Fail sets the job state and the error).
        let mut failed = stable.clone();
        failed.job_state = Some(JobStatus::Failed);
        failed.last_error = Some(LastError {
            reason: reason::JOB_FAILED.into(),
            message: "boom\nstack".into(),
            time: now.into(),
        });
        let ev = transition_events(Some(&stable), &failed, now);
        assert_eq!(kinds(&ev), [EventKind::Failed]);
        assert_eq!(ev[0].reason.as_deref(), Some(reason::JOB_FAILED));
        assert_eq!(ev[0].message, "boom");
        // A savepoint failure on a running job.
        let mut sp_failed = stable.clone();
        sp_failed.last_error = Some(LastError {
            reason: reason::SAVEPOINT_FAILED.into(),
            message: "timeout".into(),
            time: now.into(),
        });
        assert!(savepoint_failed(Some(&stable), &sp_failed));
        assert_eq!(
            kinds(&transition_events(Some(&stable), &sp_failed, now)),
            [EventKind::SavepointFailed]
        );
        // The same error again (a retry at another time) is not new.
        let mut again = sp_failed.clone();
        if let Some(e) = again.last_error.as_mut() {
            e.time = "2026-01-01T00:01:00.000Z".into();
        }
        assert!(transition_events(Some(&sp_failed), &again, now).is_empty());
        assert!(!savepoint_failed(Some(&sp_failed), &again));
    }

    #[test]
    fn savepoints_are_new_by_location_and_checkpoints_are_not_savepoints() {
        let before = running("aaaa", Some("aaaa"));
        let mut after = before.clone();
        let sp = |loc: &str, trigger| Savepoint {
            location: loc.into(),
            time: "2026-01-01T00:00:00.000Z".into(),
            trigger,
            revision: "r".into(),
            for_revision: None,
            job_id: "j".into(),
        };
        after
            .savepoints
            .push(sp("file:///sp/1", SnapshotTrigger::Manual));
        assert!(new_savepoint(Some(&before), &after).is_some());
        assert!(new_savepoint(Some(&after), &after).is_none());
        let mut cp = before.clone();
        cp.savepoints
            .push(sp("file:///cp/7", SnapshotTrigger::Checkpoint));
        assert!(new_savepoint(Some(&before), &cp).is_none());
    }
}
