//! Compiled only under #[cfg(test)], from transition.rs.
//! Table tests of the record transitions: each row is a record, a step and an outcome, and
//! the facts and lifecycle state expected before and after the step's I/O.

use super::*;
use crate::flink::lifecycle::decide::{DeployStep, StopStep};
use crate::flink::lifecycle::observe::{Evidence, ObservedJob};
use crate::flink::lifecycle::record::{LifecycleState, StopMode};
use crate::flink::rest::SavepointFormat;
use crate::flink::spec::{DeploymentSpec, JobSpec, JobState, Kind, ResourceKey, Spec, UpgradeMode};

const NOW: &str = "2026-12-01T00:00:00Z";

fn spec(jar: &str, state: JobState) -> Spec {
    Spec::Deployment(DeploymentSpec {
        job: Some(JobSpec {
            jar_uri: Some(jar.into()),
            upgrade_mode: UpgradeMode::Savepoint,
            state,
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn stable_v1() -> Record {
    let mut r = Record::new(&ResourceKey::new("ns", Kind::FlinkDeployment, "a"));
    r.set_reconciled(&spec("v1", JobState::Running), Some("rev1"));
    r.mark_reconciled_stable();
    r.job_id = Some("j1".into());
    r.job_state = Some(JobStatus::Running);
    r.generation = 1;
    r
}

fn deploy(spec: Spec, job: &str, restore: Option<&str>, retry: bool) -> Step {
    Step::Deploy(Box::new(DeployStep {
        hash: spec.hash(),
        spec,
        revision: Some("rev2".into()),
        job_id: Some(job.into()),
        restore: restore.map(str::to_string),
        rollback: false,
        retry,
    }))
}

fn stop(purpose: StopPurpose) -> Step {
    Step::Stop(StopStep {
        purpose,
        mode: StopMode::Savepoint,
        job_id: "j1".into(),
        trigger_id: Some("t1".into()),
        drain: false,
        format: SavepointFormat::Canonical,
    })
}

fn finished() -> Observed {
    Observed {
        job: Evidence::present(ObservedJob {
            job_id: "j1".into(),
            state: JobStatus::Finished,
            all_tasks_running: false,
            failure: None,
            vertex_parallelism: None,
            running_since_ms: Some(0),
        }),
        ..Observed::nothing_deployed()
    }
}

#[test]
fn write_ahead_facts_come_before_the_io() {
    let rec = stable_v1();
    // A deploy writes its job id, restore point and the new spec before anything starts.
    let d = before(
        &rec,
        &deploy(
            spec("v2", JobState::Running),
            "j2",
            Some("file:/sp/1"),
            false,
        ),
        NOW,
    )
    .expect("deploy writes ahead");
    assert_eq!(d.job_id.as_deref(), Some("j2"));
    assert_eq!(d.generation, 2);
    assert_eq!(d.last_reconciled_revision.as_deref(), Some("rev2"));
    assert!(
        matches!(&d.in_flight, Some(InFlight::Starting { job_id, restore: Some(r), .. }) if job_id == "j2" && r == "file:/sp/1")
    );
    assert_eq!(d.derive_lifecycle(), LifecycleState::Upgrading);
    // A retry of the same attempt keeps its generation and its start time.
    let again = before(
        &d,
        &deploy(
            spec("v2", JobState::Running),
            "j2",
            Some("file:/sp/1"),
            true,
        ),
        "2030-01-01T00:00:00Z",
    )
    .expect("retry");
    assert_eq!(again.generation, 2);
    assert_eq!(again.in_flight, d.in_flight);
    // A stop writes its trigger id first.
    let s = before(&rec, &stop(StopPurpose::Upgrade), NOW).expect("stop writes ahead");
    assert!(
        matches!(&s.in_flight, Some(InFlight::Stopping { trigger_id: Some(t), .. }) if t == "t1")
    );
    // Steps without I/O write nothing ahead.
    assert_eq!(before(&rec, &Step::MarkStable, NOW), None);
    assert_eq!(before(&rec, &Step::Nothing, NOW), None);
}

#[test]
fn outcomes() {
    let rec = stable_v1();
    let deploying = before(
        &rec,
        &deploy(spec("v2", JobState::Running), "j2", None, false),
        NOW,
    )
    .expect("ahead");
    type Check = fn(&Record) -> bool;
    let rows: Vec<(&str, Record, Step, Outcome, Observed, LifecycleState, Check)> = vec![
        (
            "deploy done: still starting until seen running",
            deploying.clone(),
            deploy(spec("v2", JobState::Running), "j2", None, false),
            Outcome::Done,
            Observed::default(),
            LifecycleState::Upgrading,
            |r| r.unreachable.is_none(),
        ),
        (
            "deploy transient failure: the attempt stays in flight, noted unreachable",
            deploying.clone(),
            deploy(spec("v2", JobState::Running), "j2", None, false),
            Outcome::Transient {
                message: "timeout".into(),
            },
            Observed::default(),
            LifecycleState::Upgrading,
            |r| r.in_flight.is_some() && r.unreachable.is_some(),
        ),
        (
            "deploy stalled: failed with the reason",
            deploying.clone(),
            deploy(spec("v2", JobState::Running), "j2", None, false),
            Outcome::Stalled {
                reason: reason::RESTORE_FAILED,
                message: "no such savepoint".into(),
            },
            Observed::default(),
            LifecycleState::Failed,
            |r| {
                r.last_error
                    .as_ref()
                    .is_some_and(|e| e.reason == reason::RESTORE_FAILED)
            },
        ),
        (
            "seen running: stable",
            deploying.clone(),
            Step::MarkStable,
            Outcome::Done,
            Observed::default(),
            LifecycleState::Stable,
            |r| {
                r.last_stable_revision.as_deref() == Some("rev2")
                    && r.job_state == Some(JobStatus::Running)
            },
        ),
        (
            "savepoint of an upgrade: restore point and history",
            before(&rec, &stop(StopPurpose::Upgrade), NOW).expect("ahead"),
            Step::FinishStop {
                purpose: StopPurpose::Upgrade,
                restore: Some("file:/sp/9".into()),
                savepoint: true,
            },
            Outcome::Done,
            finished(),
            LifecycleState::Upgrading,
            |r| {
                r.restore_path.as_deref() == Some("file:/sp/9")
                    && r.savepoints.last().is_some_and(|s| {
                        s.location == "file:/sp/9"
                            && s.trigger == SnapshotTrigger::Upgrade
                            && s.job_id == "j1"
                    })
                    && r.in_flight
                        == Some(InFlight::Stopped {
                            purpose: StopPurpose::Upgrade,
                        })
            },
        ),
        (
            "rollback stop keeps the restore point of the good version",
            {
                let mut r = rec.clone();
                r.restore_path = Some("file:/sp/good".into());
                r
            },
            Step::FinishStop {
                purpose: StopPurpose::Rollback,
                restore: Some("file:/cp/bad".into()),
                savepoint: false,
            },
            Outcome::Done,
            finished(),
            LifecycleState::RollingBack,
            |r| r.restore_path.as_deref() == Some("file:/sp/good") && r.savepoints.is_empty(),
        ),
        (
            "begin a rollback: ROLLING_BACK with its cause, before anything is stopped",
            {
                let mut r = rec.clone();
                r.in_flight = Some(InFlight::Starting {
                    job_id: "j1".into(),
                    restore: None,
                    since: NOW.into(),
                });
                r
            },
            Step::BeginRollback {
                reason: reason::JOB_FAILED,
                message: "boom".into(),
            },
            Outcome::Done,
            finished(),
            LifecycleState::RollingBack,
            |r| {
                r.in_flight.is_none()
                    && r.rollback == Some(RollbackState::RollingBack)
                    && r.rollback_cause.as_ref().is_some_and(|c| {
                        c.reason == reason::JOB_FAILED && c.message == "boom" && c.time == NOW
                    })
            },
        ),
        (
            "a new spec accepted while rolled back ends the rollback",
            {
                let mut r = rec.clone();
                r.rollback = Some(RollbackState::RolledBack);
                r.rollback_cause = Some(LastError {
                    reason: reason::JOB_FAILED.into(),
                    message: "boom".into(),
                    time: NOW.into(),
                });
                r
            },
            Step::AcceptSpec {
                spec: Box::new(spec("v1", JobState::Running)),
                revision: "rev9".into(),
                stable: true,
            },
            Outcome::Done,
            finished(),
            LifecycleState::Stable,
            |r| r.rollback.is_none() && r.rollback_cause.is_none(),
        ),
        (
            "settle a suspend: the suspended spec is reconciled and stable",
            {
                let mut r = rec.clone();
                r.in_flight = Some(InFlight::Stopped {
                    purpose: StopPurpose::Suspend,
                });
                r
            },
            Step::Settle {
                purpose: StopPurpose::Suspend,
                delete_cluster: true,
                spec: Some(Box::new(spec("v1", JobState::Suspended))),
                revision: Some("rev3".into()),
            },
            Outcome::Done,
            Observed::default(),
            LifecycleState::Suspended,
            |r| r.in_flight.is_none() && r.last_stable_revision.as_deref() == Some("rev3"),
        ),
        (
            "settle a removal: deleted",
            rec.clone(),
            Step::Settle {
                purpose: StopPurpose::Delete,
                delete_cluster: true,
                spec: None,
                revision: None,
            },
            Outcome::Done,
            Observed::default(),
            LifecycleState::Deleted,
            |r| r.deleted,
        ),
        (
            "unreachable: noted, nothing else changes",
            rec.clone(),
            Step::Unreachable {
                error: "timeout".into(),
            },
            Outcome::Done,
            Observed::default(),
            LifecycleState::Stable,
            |r| {
                r.unreachable
                    .as_ref()
                    .is_some_and(|u| u.message == "timeout")
                    && r.job_id.as_deref() == Some("j1")
            },
        ),
        (
            "stop stalled: the job keeps running, error recorded",
            before(&rec, &stop(StopPurpose::Upgrade), NOW).expect("ahead"),
            stop(StopPurpose::Upgrade),
            Outcome::Stalled {
                reason: reason::SAVEPOINT_FAILED,
                message: "denied".into(),
            },
            Observed::default(),
            LifecycleState::Stable,
            |r| r.in_flight.is_none() && r.job_state == Some(JobStatus::Running),
        ),
    ];
    for (name, rec, step, outcome, observed, state, check) in rows {
        let next = after(&rec, &step, &outcome, &observed, NOW);
        assert_eq!(next.derive_lifecycle(), state, "{name}: {next:?}");
        assert!(check(&next), "{name}: {next:?}");
    }
}

#[test]
fn a_restore_names_the_revision_that_used_the_savepoint() {
    let mut rec = stable_v1();
    rec.savepoints.push(Savepoint {
        location: "file:/sp/1".into(),
        time: NOW.into(),
        trigger: SnapshotTrigger::Upgrade,
        revision: "rev1".into(),
        for_revision: None,
        job_id: "j1".into(),
    });
    let d = before(
        &rec,
        &deploy(
            spec("v2", JobState::Running),
            "j2",
            Some("file:/sp/1"),
            false,
        ),
        NOW,
    )
    .expect("ahead");
    assert_eq!(d.savepoints[0].for_revision.as_deref(), Some("rev2"));
}
