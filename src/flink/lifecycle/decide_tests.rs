//! Compiled only under #[cfg(test)], from decide.rs.
//! Table tests of `decide`: each row is (what Git wants, what is recorded, what Flink
//! shows) and the one step expected.

use super::*;
use crate::flink::lifecycle::record::{reason, LastError, Record};
use crate::flink::spec::{DeploymentSpec, JobSpec, ResourceKey, SessionJobSpec};

fn app(mode: UpgradeMode, state: JobState, f: impl FnOnce(&mut DeploymentSpec)) -> Spec {
    let mut d = DeploymentSpec {
        flink_version: Some(crate::flink::spec::FlinkVersion::V2_3),
        job: Some(JobSpec {
            jar_uri: Some("local:///job-v1.jar".into()),
            parallelism: Some(1),
            upgrade_mode: mode,
            state,
            ..Default::default()
        }),
        ..Default::default()
    };
    f(&mut d);
    Spec::Deployment(d)
}

fn job_mut(spec: &mut Spec) -> &mut JobSpec {
    match spec {
        Spec::Deployment(d) => d.job.as_mut().expect("job"),
        Spec::SessionJob(s) => s.job.as_mut().expect("job"),
    }
}

fn key(kind: Kind) -> ResourceKey {
    ResourceKey::new("default", kind, "r")
}

/// A record of `spec` applied (and stable when `stable`), job `j1`.
fn applied(spec: &Spec, stable: bool) -> Record {
    let mut r = Record::new(&key(spec.kind()));
    r.applied_spec = Some(spec.canonical_json());
    r.applied_spec_hash = Some(spec.hash());
    r.applied_revision = Some("rev1".into());
    if stable {
        r.stable_spec = r.applied_spec.clone();
        r.stable_spec_hash = r.applied_spec_hash.clone();
    }
    r.job_id = Some("j1".into());
    r.job_state = Some("RUNNING".into());
    r.generation = 1;
    r
}

fn running() -> Observed {
    Observed {
        cluster: Some(ClusterState::Ready),
        job: Some(ObservedJob {
            job_id: "j1".into(),
            state: "RUNNING".into(),
            all_tasks_running: true,
            failure: None,
        }),
        trigger: None,
        latest_checkpoint: None,
    }
}

fn with_job(state: &str, all: bool) -> Observed {
    let mut o = running();
    if let Some(j) = o.job.as_mut() {
        j.state = state.into();
        j.all_tasks_running = all;
    }
    o
}

fn ctx() -> Context {
    Context {
        prune: true,
        now_ms: 1_000_000_000_000,
        session_jobs: vec![],
    }
}

fn valid(spec: &Spec) -> Desired<'_> {
    Desired::Valid {
        spec,
        hash: spec.hash(),
        revision: "rev2",
    }
}

fn stopping(purpose: StopPurpose, mode: StopMode, trigger: bool) -> InFlight {
    InFlight::Stopping {
        purpose,
        mode,
        job_id: "j1".into(),
        trigger_id: trigger.then(|| "t1".into()),
        since: "2001-09-09T01:46:40Z".into(),
    }
}

#[test]
fn first_deployments() {
    let plain = app(UpgradeMode::Savepoint, JobState::Running, |_| {});
    let mut initial = plain.clone();
    job_mut(&mut initial).initial_savepoint_path = Some("file:/sp/initial".into());
    let suspended = app(UpgradeMode::Savepoint, JobState::Suspended, |_| {});
    let none = Observed {
        cluster: Some(ClusterState::Missing),
        ..Default::default()
    };
    let rows: Vec<(&str, Desired, Step)> = vec![
        (
            "new job starts empty",
            valid(&plain),
            Step::Deploy {
                restore: None,
                rollback: false,
            },
        ),
        (
            "initialSavepointPath on first deploy",
            valid(&initial),
            Step::Deploy {
                restore: Some("file:/sp/initial".into()),
                rollback: false,
            },
        ),
        (
            "suspended on creation: nothing starts",
            valid(&suspended),
            Step::AcceptSpec,
        ),
        (
            "invalid: hold",
            Desired::Invalid {
                message: "bad".into(),
            },
            Step::Hold {
                message: "bad".into(),
            },
        ),
        (
            "absent and unknown: nothing",
            Desired::Absent,
            Step::Nothing,
        ),
    ];
    for (name, desired, want) in rows {
        assert_eq!(decide(&desired, None, &none, &ctx()), want, "{name}");
    }
}

#[test]
fn spec_changes_of_a_running_job() {
    let v1 = app(UpgradeMode::Savepoint, JobState::Running, |_| {});
    let change = |mode: UpgradeMode, f: &dyn Fn(&mut JobSpec)| {
        let mut s = app(mode, JobState::Running, |_| {});
        f(job_mut(&mut s));
        s
    };
    let jar = |j: &mut JobSpec| j.jar_uri = Some("local:///job-v2.jar".into());
    let rows: Vec<(&str, Spec, Spec, Step)> = vec![
        (
            "savepoint upgrade",
            v1.clone(),
            change(UpgradeMode::Savepoint, &jar),
            Step::Stop {
                purpose: StopPurpose::Upgrade,
                mode: StopMode::Savepoint,
            },
        ),
        (
            "last-state upgrade",
            v1.clone(),
            change(UpgradeMode::LastState, &jar),
            Step::Stop {
                purpose: StopPurpose::Upgrade,
                mode: StopMode::CancelKeepCheckpoint,
            },
        ),
        (
            "stateless upgrade",
            v1.clone(),
            change(UpgradeMode::Stateless, &jar),
            Step::Stop {
                purpose: StopPurpose::Upgrade,
                mode: StopMode::Cancel,
            },
        ),
        (
            "upgrade mode only: no restart",
            v1.clone(),
            change(UpgradeMode::LastState, &|_| {}),
            Step::AcceptSpec,
        ),
        (
            "suspend with savepoint",
            v1.clone(),
            app(UpgradeMode::Savepoint, JobState::Suspended, |_| {}),
            Step::Stop {
                purpose: StopPurpose::Suspend,
                mode: StopMode::Savepoint,
            },
        ),
        (
            "restartNonce restarts with the upgrade mode",
            v1.clone(),
            app(UpgradeMode::Savepoint, JobState::Running, |d| {
                d.restart_nonce = Some(7)
            }),
            Step::Stop {
                purpose: StopPurpose::Upgrade,
                mode: StopMode::Savepoint,
            },
        ),
        (
            "savepointRedeployNonce cancels first",
            v1.clone(),
            change(UpgradeMode::Savepoint, &|j| {
                j.savepoint_redeploy_nonce = Some(1);
                j.initial_savepoint_path = Some("file:/sp/x".into());
            }),
            Step::Stop {
                purpose: StopPurpose::SavepointRedeploy,
                mode: StopMode::Cancel,
            },
        ),
        (
            "new savepointTriggerNonce: savepoint, no restart",
            v1.clone(),
            change(UpgradeMode::Savepoint, &|j| {
                j.savepoint_trigger_nonce = Some(3)
            }),
            Step::AcceptSpec,
        ),
    ];
    for (name, old, new, want) in rows {
        let rec = applied(&old, true);
        assert_eq!(
            decide(&valid(&new), Some(&rec), &running(), &ctx()),
            want,
            "{name}"
        );
    }
}

#[test]
fn steady_state() {
    let v1 = app(UpgradeMode::Savepoint, JobState::Running, |_| {});
    let stable = applied(&v1, true);
    let deployed = applied(&v1, false);
    assert_eq!(
        decide(&valid(&v1), Some(&stable), &running(), &ctx()),
        Step::Nothing,
        "stable and running"
    );
    assert_eq!(
        decide(&valid(&v1), Some(&deployed), &running(), &ctx()),
        Step::MarkStable,
        "first seen running"
    );
    assert_eq!(
        decide(
            &valid(&v1),
            Some(&deployed),
            &with_job("RUNNING", false),
            &ctx()
        ),
        Step::Nothing,
        "RUNNING but tasks not all running is not stable"
    );
    let failed = decide(
        &valid(&v1),
        Some(&stable),
        &with_job("FAILED", false),
        &ctx(),
    );
    assert!(
        matches!(failed, Step::Fail { reason: r, .. } if r == reason::JOB_FAILED),
        "{failed:?}"
    );
    let mut known_failed = stable.clone();
    known_failed.job_state = Some("FAILED".into());
    known_failed.last_error = Some(LastError {
        reason: reason::JOB_FAILED.into(),
        message: "x".into(),
        time: String::new(),
    });
    assert_eq!(
        decide(
            &valid(&v1),
            Some(&known_failed),
            &with_job("FAILED", false),
            &ctx()
        ),
        Step::Nothing,
        "failed stays failed until the spec changes"
    );

    let mut nonce = v1.clone();
    job_mut(&mut nonce).savepoint_trigger_nonce = Some(5);
    let rec = applied(&nonce, true);
    assert_eq!(
        decide(&valid(&nonce), Some(&rec), &running(), &ctx()),
        Step::TriggerSnapshot {
            nonce: 5,
            checkpoint: false
        }
    );
    let mut done = rec.clone();
    done.nonces.insert(SAVEPOINT_NONCE.into(), 5);
    assert_eq!(
        decide(&valid(&nonce), Some(&done), &running(), &ctx()),
        Step::Nothing,
        "a nonce is acted on once"
    );

    let mut lost = applied(
        &app(UpgradeMode::LastState, JobState::Running, |_| {}),
        true,
    );
    lost.restore_path = Some("file:/sp/old".into());
    let gone = Observed {
        cluster: Some(ClusterState::Exited {
            reason: "killed".into(),
        }),
        latest_checkpoint: Some("file:/cp/chk-9".into()),
        ..Default::default()
    };
    let spec = lost.applied().expect("spec");
    assert_eq!(
        decide(&valid(&spec), Some(&lost), &gone, &ctx()),
        Step::Deploy {
            restore: Some("file:/cp/chk-9".into()),
            rollback: false
        },
        "lost cluster recovers from the newest checkpoint"
    );
}

#[test]
fn suspend_and_resume() {
    let suspended = app(UpgradeMode::Savepoint, JobState::Suspended, |_| {});
    let mut rec = applied(&suspended, true);
    rec.restore_path = Some("file:/sp/s1".into());
    let resumed = app(UpgradeMode::Savepoint, JobState::Running, |_| {});
    let idle = Observed {
        cluster: Some(ClusterState::Missing),
        ..Default::default()
    };
    assert_eq!(
        decide(&valid(&resumed), Some(&rec), &idle, &ctx()),
        Step::Deploy {
            restore: Some("file:/sp/s1".into()),
            rollback: false
        }
    );
    let stateless = app(UpgradeMode::Stateless, JobState::Running, |_| {});
    assert_eq!(
        decide(&valid(&stateless), Some(&rec), &idle, &ctx()),
        Step::Deploy {
            restore: None,
            rollback: false
        },
        "resume in stateless mode starts empty"
    );
    assert_eq!(
        decide(&valid(&suspended), Some(&rec), &idle, &ctx()),
        Step::Nothing,
        "suspended stays suspended"
    );
}

#[test]
fn steps_in_flight() {
    let v2 = app(UpgradeMode::Savepoint, JobState::Running, |d| {
        d.image = Some("v2".into())
    });
    let base = applied(&v2, false);
    let at = |flight: InFlight| {
        let mut r = base.clone();
        r.in_flight = Some(flight);
        r
    };
    let trig = |t: TriggerResult, job: Option<&str>| {
        let mut o = match job {
            Some(s) => with_job(s, false),
            None => Observed {
                cluster: Some(ClusterState::Ready),
                ..Default::default()
            },
        };
        o.trigger = Some(t);
        o.latest_checkpoint = Some("file:/cp/chk-3".into());
        o
    };
    let sp = stopping(StopPurpose::Upgrade, StopMode::Savepoint, true);
    let rows: Vec<(&str, Record, Observed, Step)> = vec![
        (
            "savepoint done",
            at(sp.clone()),
            trig(
                TriggerResult::Completed {
                    location: Some("file:/sp/1".into()),
                },
                Some("FINISHED"),
            ),
            Step::FinishStop {
                purpose: StopPurpose::Upgrade,
                restore: Some("file:/sp/1".into()),
                savepoint: true,
            },
        ),
        (
            "savepoint pending",
            at(sp.clone()),
            trig(TriggerResult::InProgress, Some("RUNNING")),
            Step::Wait {
                what: "the savepoint to complete".into(),
            },
        ),
        (
            "savepoint failed, job runs",
            at(sp.clone()),
            trig(
                TriggerResult::Failed {
                    cause: "boom".into(),
                },
                Some("RUNNING"),
            ),
            Step::Fail {
                reason: reason::SAVEPOINT_FAILED,
                message: "stop with savepoint failed; the job keeps running: boom".into(),
            },
        ),
        (
            "trigger unknown, job runs: stop again",
            at(sp.clone()),
            trig(TriggerResult::Unknown, Some("RUNNING")),
            Step::Stop {
                purpose: StopPurpose::Upgrade,
                mode: StopMode::Savepoint,
            },
        ),
        (
            "trigger unknown, job gone: newest checkpoint",
            at(sp.clone()),
            trig(TriggerResult::Unknown, None),
            Step::FinishStop {
                purpose: StopPurpose::Upgrade,
                restore: Some("file:/cp/chk-3".into()),
                savepoint: false,
            },
        ),
        (
            "last-state cancel done",
            at(stopping(
                StopPurpose::Upgrade,
                StopMode::CancelKeepCheckpoint,
                false,
            )),
            trig(TriggerResult::Unknown, Some("CANCELED")),
            Step::FinishStop {
                purpose: StopPurpose::Upgrade,
                restore: Some("file:/cp/chk-3".into()),
                savepoint: false,
            },
        ),
        (
            "stateless cancel done",
            at(stopping(StopPurpose::Upgrade, StopMode::Cancel, false)),
            trig(TriggerResult::Unknown, Some("CANCELED")),
            Step::FinishStop {
                purpose: StopPurpose::Upgrade,
                restore: None,
                savepoint: false,
            },
        ),
        (
            "cancel pending",
            at(stopping(StopPurpose::Upgrade, StopMode::Cancel, false)),
            with_job("CANCELLING", false),
            Step::Wait {
                what: "the job to cancel".into(),
            },
        ),
        (
            "stopped for suspend: settle",
            at(InFlight::Stopped {
                purpose: StopPurpose::Suspend,
            }),
            running(),
            Step::Settle {
                purpose: StopPurpose::Suspend,
            },
        ),
        (
            "stopped for delete: settle",
            at(InFlight::Stopped {
                purpose: StopPurpose::Delete,
            }),
            running(),
            Step::Settle {
                purpose: StopPurpose::Delete,
            },
        ),
        (
            "started and running: stable",
            at(InFlight::Starting {
                job_id: "j1".into(),
                restore: None,
                since: "2001-09-09T01:46:40Z".into(),
            }),
            running(),
            Step::MarkStable,
        ),
        (
            "started, not all tasks yet",
            at(InFlight::Starting {
                job_id: "j1".into(),
                restore: None,
                since: "2001-09-09T01:46:40Z".into(),
            }),
            with_job("RUNNING", false),
            Step::Wait {
                what: "the job to run".into(),
            },
        ),
    ];
    for (name, rec, observed, want) in rows {
        assert_eq!(
            decide(&valid(&v2), Some(&rec), &observed, &ctx()),
            want,
            "{name}"
        );
    }
    let mut stopped = at(InFlight::Stopped {
        purpose: StopPurpose::Upgrade,
    });
    stopped.restore_path = Some("file:/sp/1".into());
    assert_eq!(
        decide(&valid(&v2), Some(&stopped), &running(), &ctx()),
        Step::Deploy {
            restore: Some("file:/sp/1".into()),
            rollback: false
        },
        "restore from the upgrade savepoint"
    );
}

#[test]
fn rollback_of_an_upgrade_that_never_becomes_stable() {
    let v1 = app(UpgradeMode::Savepoint, JobState::Running, |d| {
        d.flink_configuration.insert(
            "kubernetes.operator.deployment.rollback.enabled".into(),
            "true".into(),
        );
        d.flink_configuration.insert(
            "kubernetes.operator.deployment.readiness.timeout".into(),
            "1 min".into(),
        );
    });
    let mut v2 = v1.clone();
    job_mut(&mut v2).jar_uri = Some("local:///bad.jar".into());
    let mut rec = applied(&v1, true);
    rec.applied_spec = Some(v2.canonical_json());
    rec.applied_spec_hash = Some(v2.hash());
    rec.restore_path = Some("file:/sp/good".into());
    rec.in_flight = Some(InFlight::Starting {
        job_id: "j1".into(),
        restore: Some("file:/sp/good".into()),
        since: "2001-09-09T01:40:00Z".into(),
    });
    // Failed outright: restore the stable spec from the savepoint the upgrade started from.
    assert_eq!(
        decide(&valid(&v2), Some(&rec), &with_job("FAILED", false), &ctx()),
        Step::FinishStop {
            purpose: StopPurpose::Rollback,
            restore: Some("file:/sp/good".into()),
            savepoint: false
        }
    );
    // Restarting for longer than the readiness timeout: cancel, then roll back.
    assert_eq!(
        decide(
            &valid(&v2),
            Some(&rec),
            &with_job("RESTARTING", false),
            &ctx()
        ),
        Step::Stop {
            purpose: StopPurpose::Rollback,
            mode: StopMode::Cancel
        }
    );
    // Within the timeout: keep waiting.
    let mut early = ctx();
    early.now_ms = 1_000_000_000_000 - 400_000 + 10_000; // 10 s after the start
    let mut r2 = rec.clone();
    r2.in_flight = Some(InFlight::Starting {
        job_id: "j1".into(),
        restore: None,
        since: "2001-09-09T01:40:00Z".into(),
    });
    assert_eq!(
        decide(
            &valid(&v2),
            Some(&r2),
            &with_job("RESTARTING", false),
            &early
        ),
        Step::Wait {
            what: "the job to run".into()
        }
    );
    // Rolled back and running the stable spec: nothing more until Git says something new.
    let mut done = rec.clone();
    done.in_flight = None;
    done.rollback = Some(crate::flink::lifecycle::record::RollbackState::RolledBack);
    assert_eq!(
        decide(&valid(&v2), Some(&done), &running(), &ctx()),
        Step::Nothing
    );
    // Rolled back: stays until Git says something new.
    let mut rolled = rec.clone();
    rolled.in_flight = Some(InFlight::Stopped {
        purpose: StopPurpose::Rollback,
    });
    assert_eq!(
        decide(&valid(&v2), Some(&rolled), &running(), &ctx()),
        Step::Deploy {
            restore: Some("file:/sp/good".into()),
            rollback: true
        }
    );
}

#[test]
fn removal_and_readdition() {
    let v1 = app(UpgradeMode::Savepoint, JobState::Running, |d| {
        d.flink_configuration
            .insert("state.savepoints.dir".into(), "file:/sp".into());
    });
    let rec = applied(&v1, true);
    assert_eq!(
        decide(&Desired::Absent, Some(&rec), &running(), &ctx()),
        Step::Stop {
            purpose: StopPurpose::Delete,
            mode: StopMode::Savepoint
        }
    );
    let mut no_prune = ctx();
    no_prune.prune = false;
    assert_eq!(
        decide(&Desired::Absent, Some(&rec), &running(), &no_prune),
        Step::KeepUnmanaged
    );
    let mut opt_out = v1.clone();
    if let Spec::Deployment(d) = &mut opt_out {
        d.flink_configuration.insert(
            "kubernetes.operator.job.savepoint-on-deletion".into(),
            "false".into(),
        );
    }
    assert_eq!(
        decide(
            &Desired::Absent,
            Some(&applied(&opt_out, true)),
            &running(),
            &ctx()
        ),
        Step::Stop {
            purpose: StopPurpose::Delete,
            mode: StopMode::Cancel
        }
    );
    let mut deleted = rec.clone();
    deleted.deleted = true;
    deleted.restore_path = Some("file:/sp/final".into());
    assert_eq!(
        decide(
            &Desired::Absent,
            Some(&deleted),
            &Observed::default(),
            &ctx()
        ),
        Step::Nothing
    );
    assert_eq!(
        decide(&valid(&v1), Some(&deleted), &Observed::default(), &ctx()),
        Step::Deploy {
            restore: Some("file:/sp/final".into()),
            rollback: false
        },
        "re-added: restore from the final savepoint"
    );
}

#[test]
fn session_clusters_and_jobs() {
    let cluster = Spec::Deployment(DeploymentSpec {
        flink_version: Some(crate::flink::spec::FlinkVersion::V2_3),
        ..Default::default()
    });
    let mut changed = cluster.clone();
    if let Spec::Deployment(d) = &mut changed {
        d.image = Some("flink:2.3.1".into());
    }
    let rec = applied(&cluster, true);
    let mut c = ctx();
    c.session_jobs = vec!["a".into(), "b".into()];
    assert_eq!(
        decide(&Desired::Absent, Some(&rec), &running(), &c),
        Step::Nothing,
        "a session cluster outlives its session jobs"
    );
    assert_eq!(
        decide(&Desired::Absent, Some(&rec), &running(), &ctx()),
        Step::Settle {
            purpose: StopPurpose::Delete
        }
    );
    assert_eq!(
        decide(&valid(&changed), Some(&rec), &running(), &c),
        Step::RedeploySessionCluster {
            session_jobs: vec!["a".into(), "b".into()]
        }
    );

    let sj = Spec::SessionJob(SessionJobSpec {
        deployment_name: Some("s".into()),
        job: Some(JobSpec {
            jar_uri: Some("file:///j.jar".into()),
            parallelism: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    });
    let rec = applied(&sj, true);
    let not_ready = Observed {
        cluster: Some(ClusterState::Starting),
        ..Default::default()
    };
    assert_eq!(
        decide(&valid(&sj), Some(&rec), &not_ready, &ctx()),
        Step::Wait {
            what: "the session cluster to be ready".into()
        }
    );
    let mut waiting = rec.clone();
    waiting.in_flight = Some(InFlight::Stopped {
        purpose: StopPurpose::ClusterRedeploy,
    });
    waiting.restore_path = Some("file:/sp/x".into());
    assert_eq!(
        decide(&valid(&sj), Some(&waiting), &not_ready, &ctx()),
        Step::Wait {
            what: "the session cluster to be ready".into()
        }
    );
}
