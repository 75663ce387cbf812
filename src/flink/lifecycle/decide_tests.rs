//! Compiled only under #[cfg(test)], from decide.rs.
//! Table tests of `decide`: each row is (what Git wants, what is recorded, what Flink
//! shows) and the one step expected, written as a short line by [`show`].

use super::*;
use crate::flink::lifecycle::record::{reason, LastError, Record, RollbackState};
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

/// A record of `spec` reconciled (and stable when `stable`), job `j1`.
fn applied(spec: &Spec, stable: bool) -> Record {
    let mut r = Record::new(&key(spec.kind()));
    r.set_reconciled(spec, Some("rev1"));
    if stable {
        r.mark_reconciled_stable();
    }
    r.job_id = Some("j1".into());
    r.job_state = Some(JobStatus::Running);
    r.generation = 1;
    r
}

fn job(state: JobStatus, all: bool) -> Evidence<ObservedJob> {
    Evidence::present(ObservedJob {
        job_id: "j1".into(),
        state,
        all_tasks_running: all,
        failure: None,
        vertex_parallelism: None,
        running_since_ms: Some(0),
    })
}

fn running() -> Observed {
    Observed {
        cluster: Evidence::present(ClusterState::Ready),
        job: job(JobStatus::Running, true),
        trigger: Evidence::Absent,
        latest_checkpoint: Evidence::Absent,
        deployed_generation: None,
        checkpoints_completed: Evidence::present(1),
        health: vec![],
        live: None,
    }
}

fn with_job(state: JobStatus, all: bool) -> Observed {
    Observed {
        job: job(state, all),
        ..running()
    }
}

fn timeout() -> String {
    "GET http://jm/jobs/overview: no answer from Flink within 10s".to_string()
}

fn ctx() -> Context {
    Context {
        prune: true,
        now_ms: 1_000_000_000_000,
        fresh_job_id: "newjob".into(),
        fresh_trigger_id: "newtrig".into(),
        session_jobs: vec![],
        cluster_redeploy_pending: false,
        stability_window_ms: 0,
        drift: Default::default(),
    }
}

/// [`ctx`] with the drift policy `heal`.
fn heal_ctx() -> Context {
    let mut c = ctx();
    c.drift.settings.policy = crate::flink::lifecycle::drift::DriftPolicy::Heal;
    c
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

fn starting() -> InFlight {
    InFlight::Starting {
        job_id: "j1".into(),
        restore: None,
        since: "2001-09-09T01:46:40Z".into(),
    }
}

/// A step as one short line: its kind and the fields a row checks.
fn show(step: &Step) -> String {
    match step {
        Step::Nothing => "nothing".into(),
        Step::Wait { what } => format!("wait {what}"),
        Step::Unreachable { .. } => "unreachable".into(),
        Step::Hold { message } => format!("hold {message}"),
        Step::Deploy(d) => format!(
            "deploy job={} restore={}{}{}",
            d.job_id.as_deref().unwrap_or("-"),
            d.restore.as_deref().unwrap_or("-"),
            if d.rollback { " rollback" } else { "" },
            if d.retry { " retry" } else { "" }
        ),
        Step::Stop(s) => format!(
            "stop {:?} {:?} job={} trigger={}",
            s.purpose,
            s.mode,
            s.job_id,
            s.trigger_id.as_deref().unwrap_or("-")
        ),
        Step::FinishStop {
            purpose,
            restore,
            savepoint,
        } => format!(
            "finish-stop {purpose:?} restore={}{}",
            restore.as_deref().unwrap_or("-"),
            if *savepoint { " savepoint" } else { "" }
        ),
        Step::Settle {
            purpose,
            delete_cluster,
            ..
        } => format!(
            "settle {purpose:?}{}",
            if *delete_cluster {
                " delete-cluster"
            } else {
                ""
            }
        ),
        Step::MarkStable => "mark-stable".into(),
        Step::AcceptSpec { stable, .. } => format!("accept stable={stable}"),
        Step::Rescale { parallelism, .. } => format!("rescale {parallelism:?}"),
        Step::TriggerSnapshot {
            nonce,
            checkpoint,
            trigger_id,
            ..
        } => format!("snapshot nonce={nonce} checkpoint={checkpoint} trigger={trigger_id}"),
        Step::FinishSnapshot { location, error } => format!(
            "finish-snapshot {} {}",
            location.as_deref().unwrap_or("-"),
            error.as_deref().unwrap_or("-")
        ),
        Step::BeginRollback { reason, message } => format!("begin-rollback {reason}: {message}"),
        Step::ReportUnhealthy { message } => format!("unhealthy {message}"),
        Step::Fail { reason, .. } => format!("fail {reason}"),
        Step::KeepUnmanaged => "keep-unmanaged".into(),
        Step::MarkDeleted => "mark-deleted".into(),
        Step::RecordDrift { items, policy, .. } => format!(
            "record-drift {policy} {}",
            items
                .iter()
                .map(|i| i.kind.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ),
        Step::CancelUnmanaged { job_ids } => format!("cancel-unmanaged {}", job_ids.join(",")),
    }
}

fn check(rows: Vec<(&str, Desired, Option<&Record>, Observed, Context, &str)>) {
    for (name, desired, rec, observed, c, want) in rows {
        let got = decide(&desired, rec, &observed, &c);
        assert_eq!(show(&got), want, "{name}: {got:?}");
    }
}

#[test]
fn first_deployments() {
    let plain = app(UpgradeMode::Savepoint, JobState::Running, |_| {});
    let mut initial = plain.clone();
    job_mut(&mut initial).initial_savepoint_path = Some("file:/sp/initial".into());
    let suspended = app(UpgradeMode::Savepoint, JobState::Suspended, |_| {});
    let none = Observed::nothing_deployed;
    let invalid = Desired::Invalid {
        message: "bad".into(),
    };
    check(vec![
        (
            "new job starts empty",
            valid(&plain),
            None,
            none(),
            ctx(),
            "deploy job=newjob restore=-",
        ),
        (
            "initialSavepointPath on first deploy",
            valid(&initial),
            None,
            none(),
            ctx(),
            "deploy job=newjob restore=file:/sp/initial",
        ),
        (
            "suspended on creation: nothing starts",
            valid(&suspended),
            None,
            none(),
            ctx(),
            "accept stable=true",
        ),
        ("invalid: hold", invalid, None, none(), ctx(), "hold bad"),
        (
            "absent and unknown: nothing",
            Desired::Absent,
            None,
            none(),
            ctx(),
            "nothing",
        ),
    ]);
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
    let rows: Vec<(&str, Spec, &str)> = vec![
        (
            "savepoint upgrade",
            change(UpgradeMode::Savepoint, &jar),
            "stop Upgrade Savepoint job=j1 trigger=newtrig",
        ),
        (
            "last-state upgrade",
            change(UpgradeMode::LastState, &jar),
            "stop Upgrade CancelKeepCheckpoint job=j1 trigger=-",
        ),
        (
            "stateless upgrade",
            change(UpgradeMode::Stateless, &jar),
            "stop Upgrade Cancel job=j1 trigger=-",
        ),
        (
            "upgrade mode only: no restart",
            change(UpgradeMode::LastState, &|_| {}),
            "accept stable=true",
        ),
        (
            "suspend with savepoint",
            app(UpgradeMode::Savepoint, JobState::Suspended, |_| {}),
            "stop Suspend Savepoint job=j1 trigger=newtrig",
        ),
        (
            "restartNonce restarts with the upgrade mode",
            app(UpgradeMode::Savepoint, JobState::Running, |d| {
                d.restart_nonce = Some(7)
            }),
            "stop Upgrade Savepoint job=j1 trigger=newtrig",
        ),
        (
            "savepointRedeployNonce cancels first",
            change(UpgradeMode::Savepoint, &|j| {
                j.savepoint_redeploy_nonce = Some(1);
                j.initial_savepoint_path = Some("file:/sp/x".into());
            }),
            "stop SavepointRedeploy Cancel job=j1 trigger=-",
        ),
        (
            "new savepointTriggerNonce: record first, no restart",
            change(UpgradeMode::Savepoint, &|j| {
                j.savepoint_trigger_nonce = Some(3)
            }),
            "accept stable=true",
        ),
    ];
    let rec = applied(&v1, true);
    for (name, new, want) in rows {
        let got = decide(&valid(&new), Some(&rec), &running(), &ctx());
        assert_eq!(show(&got), want, "{name}");
    }
    // A last-state job whose Flink version changes stops with a savepoint when it can
    // (AbstractJobReconciler.getJobUpgrade).
    let ls = |v| {
        app(UpgradeMode::LastState, JobState::Running, move |d| {
            d.flink_version = Some(v);
            d.flink_configuration
                .insert("state.savepoints.dir".into(), "file:/sp".into());
        })
    };
    let old = applied(&ls(crate::flink::spec::FlinkVersion::V1_20), true);
    let new = ls(crate::flink::spec::FlinkVersion::V2_3);
    assert_eq!(
        show(&decide(&valid(&new), Some(&old), &running(), &ctx())),
        "stop Upgrade Savepoint job=j1 trigger=newtrig"
    );
}

/// The rule of the loop: no destructive step on an unanswered question.
#[test]
fn unknown_is_never_absent() {
    let v1 = app(UpgradeMode::Savepoint, JobState::Running, |_| {});
    let mut v2 = v1.clone();
    job_mut(&mut v2).jar_uri = Some("local:///job-v2.jar".into());
    let stable = applied(&v1, true);
    let jm_silent = Observed {
        cluster: Evidence::unknown(timeout()),
        job: Evidence::unknown(timeout()),
        trigger: Evidence::unknown(timeout()),
        latest_checkpoint: Evidence::unknown(timeout()),
        deployed_generation: None,
        checkpoints_completed: Evidence::present(1),
        health: vec![],
        live: None,
    };
    let jobs_silent = Observed {
        job: Evidence::unknown(timeout()),
        ..running()
    };
    let sj = Spec::SessionJob(SessionJobSpec {
        deployment_name: Some("s".into()),
        job: Some(JobSpec {
            jar_uri: Some("file:///j.jar".into()),
            upgrade_mode: UpgradeMode::Savepoint,
            ..Default::default()
        }),
        ..Default::default()
    });
    let sj_rec = applied(&sj, true);
    let mut sp_stopping = applied(&v2, false);
    sp_stopping.in_flight = Some(stopping(StopPurpose::Upgrade, StopMode::Savepoint, true));
    let mut cancel_stopping = sp_stopping.clone();
    cancel_stopping.in_flight = Some(stopping(
        StopPurpose::Upgrade,
        StopMode::CancelKeepCheckpoint,
        false,
    ));
    let mut submitting = applied(&sj, false);
    submitting.in_flight = Some(starting());
    let mut stopped_ls = applied(
        &app(UpgradeMode::LastState, JobState::Running, |_| {}),
        true,
    );
    stopped_ls.restore_path = Some("file:/cp/old".into());
    let gone_checkpoint_unknown = Observed {
        cluster: Evidence::Absent,
        job: Evidence::Absent,
        trigger: Evidence::Absent,
        latest_checkpoint: Evidence::unknown("storage: permission denied"),
        deployed_generation: None,
        checkpoints_completed: Evidence::present(1),
        health: vec![],
        live: None,
    };
    let ls_spec = stopped_ls.last_reconciled_spec.clone().expect("spec");
    check(vec![
        (
            "JobManager silent, app stable: no redeploy",
            valid(&v1),
            Some(&stable),
            jm_silent.clone(),
            ctx(),
            "unreachable",
        ),
        (
            "jobs overview fails: no redeploy",
            valid(&v1),
            Some(&stable),
            jobs_silent.clone(),
            ctx(),
            "unreachable",
        ),
        (
            "jobs overview fails, session job: no resubmit",
            valid(&sj),
            Some(&sj_rec),
            jobs_silent.clone(),
            ctx(),
            "unreachable",
        ),
        (
            "JobManager silent, upgrade pending: no stop",
            valid(&v2),
            Some(&stable),
            jm_silent.clone(),
            ctx(),
            "unreachable",
        ),
        (
            "removed while silent: no delete",
            Desired::Absent,
            Some(&stable),
            jm_silent.clone(),
            ctx(),
            "unreachable",
        ),
        (
            "savepoint status unknown: no second stop",
            valid(&v2),
            Some(&sp_stopping),
            Observed {
                trigger: Evidence::unknown(timeout()),
                ..with_job(JobStatus::Running, true)
            },
            ctx(),
            "unreachable",
        ),
        (
            "cancel: job unknown: wait as unreachable",
            valid(&v2),
            Some(&cancel_stopping),
            jobs_silent.clone(),
            ctx(),
            "unreachable",
        ),
        (
            "submit in flight, jobs overview fails: no second submit",
            valid(&sj),
            Some(&submitting),
            jobs_silent,
            ctx(),
            "unreachable",
        ),
        (
            "cluster gone but checkpoints unknown: no restore from older state",
            valid(&ls_spec),
            Some(&stopped_ls),
            gone_checkpoint_unknown,
            ctx(),
            "unreachable",
        ),
    ]);
}

#[test]
fn steady_state() {
    let v1 = app(UpgradeMode::Savepoint, JobState::Running, |_| {});
    let stable = applied(&v1, true);
    let deployed = applied(&v1, false);
    let mut known_failed = stable.clone();
    known_failed.job_state = Some(JobStatus::Failed);
    known_failed.last_error = Some(LastError {
        reason: reason::JOB_FAILED.into(),
        message: "x".into(),
        time: String::new(),
    });
    let mut was_unreachable = stable.clone();
    was_unreachable.unreachable = Some(LastError {
        reason: reason::UNREACHABLE.into(),
        message: timeout(),
        time: String::new(),
    });
    let mut nonce = v1.clone();
    job_mut(&mut nonce).savepoint_trigger_nonce = Some(5);
    let nonce_rec = applied(&nonce, true);
    let mut nonce_done = nonce_rec.clone();
    nonce_done.nonces.insert(SAVEPOINT_NONCE.into(), 5);
    let mut lost = applied(
        &app(UpgradeMode::LastState, JobState::Running, |_| {}),
        true,
    );
    lost.restore_path = Some("file:/sp/old".into());
    let lost_spec = lost.last_reconciled_spec.clone().expect("spec");
    let gone = Observed {
        cluster: Evidence::present(ClusterState::Exited {
            reason: "killed".into(),
        }),
        job: Evidence::Absent,
        trigger: Evidence::Absent,
        latest_checkpoint: Evidence::present("file:/cp/chk-9".to_string()),
        deployed_generation: None,
        checkpoints_completed: Evidence::present(1),
        health: vec![],
        live: None,
    };
    let missing = Observed {
        cluster: Evidence::Absent,
        ..gone.clone()
    };
    let drifted = |policy| {
        let mut r = lost.clone();
        r.drift = Some(crate::flink::lifecycle::drift::Drift {
            since: "t".into(),
            revision: "rev2".into(),
            policy,
            items: vec![crate::flink::lifecycle::drift::DriftItem {
                kind: crate::flink::lifecycle::drift::DriftKind::JobState,
                path: "job.state".into(),
                subject: r.job_id.clone(),
                expected: "RUNNING".into(),
                found: "not listed by the cluster".into(),
            }],
        });
        r
    };
    let lost_recorded = drifted(crate::flink::lifecycle::drift::DriftPolicy::Report);
    let lost_recorded_heal = drifted(crate::flink::lifecycle::drift::DriftPolicy::Heal);
    let job_not_listed = Observed {
        job: Evidence::Absent,
        latest_checkpoint: Evidence::present("file:/cp/chk-9".to_string()),
        deployed_generation: None,
        checkpoints_completed: Evidence::present(1),
        health: vec![],
        ..running()
    };
    check(vec![
        (
            "stable and running",
            valid(&v1),
            Some(&stable),
            running(),
            ctx(),
            "nothing",
        ),
        (
            "first seen running",
            valid(&v1),
            Some(&deployed),
            running(),
            ctx(),
            "mark-stable",
        ),
        (
            "RUNNING but tasks not all running is not stable",
            valid(&v1),
            Some(&deployed),
            with_job(JobStatus::Running, false),
            ctx(),
            "nothing",
        ),
        (
            "job failed",
            valid(&v1),
            Some(&stable),
            with_job(JobStatus::Failed, false),
            ctx(),
            "fail JobFailed",
        ),
        (
            "failed stays failed until the spec changes",
            valid(&v1),
            Some(&known_failed),
            with_job(JobStatus::Failed, false),
            ctx(),
            "nothing",
        ),
        (
            "reachable again: clear the note",
            valid(&v1),
            Some(&was_unreachable),
            running(),
            ctx(),
            "mark-stable",
        ),
        (
            "savepointTriggerNonce: savepoint",
            valid(&nonce),
            Some(&nonce_rec),
            running(),
            ctx(),
            "snapshot nonce=5 checkpoint=false trigger=newtrig",
        ),
        (
            "a nonce is acted on once",
            valid(&nonce),
            Some(&nonce_done),
            running(),
            ctx(),
            "nothing",
        ),
        (
            "cluster exited: recover from the newest checkpoint",
            valid(&lost_spec),
            Some(&lost),
            gone,
            ctx(),
            "deploy job=newjob restore=file:/cp/chk-9",
        ),
        (
            "cluster gone: recover from the newest checkpoint",
            valid(&lost_spec),
            Some(&lost),
            missing,
            ctx(),
            "deploy job=newjob restore=file:/cp/chk-9",
        ),
        (
            "cluster answers without the job: drift, recorded (report)",
            valid(&lost_spec),
            Some(&lost),
            job_not_listed.clone(),
            ctx(),
            "record-drift report job state",
        ),
        (
            "cluster answers without the job, drift recorded: nothing (report)",
            valid(&lost_spec),
            Some(&lost_recorded),
            job_not_listed.clone(),
            ctx(),
            "nothing",
        ),
        (
            "cluster answers without the job: start again (heal)",
            valid(&lost_spec),
            Some(&lost_recorded_heal),
            job_not_listed,
            heal_ctx(),
            "deploy job=newjob restore=file:/cp/chk-9",
        ),
    ]);
}

#[test]
fn suspend_and_resume() {
    let suspended = app(UpgradeMode::Savepoint, JobState::Suspended, |_| {});
    let mut rec = applied(&suspended, true);
    rec.restore_path = Some("file:/sp/s1".into());
    let resumed = app(UpgradeMode::Savepoint, JobState::Running, |_| {});
    let stateless = app(UpgradeMode::Stateless, JobState::Running, |_| {});
    let idle = Observed::nothing_deployed;
    let v1 = applied(&resumed, true);
    let ls = app(UpgradeMode::LastState, JobState::Suspended, |_| {});
    check(vec![
        (
            "resume from the suspend savepoint",
            valid(&resumed),
            Some(&rec),
            idle(),
            ctx(),
            "deploy job=newjob restore=file:/sp/s1",
        ),
        (
            "resume in stateless mode starts empty",
            valid(&stateless),
            Some(&rec),
            idle(),
            ctx(),
            "deploy job=newjob restore=-",
        ),
        (
            "suspended stays suspended",
            valid(&suspended),
            Some(&rec),
            idle(),
            ctx(),
            "nothing",
        ),
        (
            "suspend with a savepoint",
            valid(&suspended),
            Some(&v1),
            running(),
            ctx(),
            "stop Suspend Savepoint job=j1 trigger=newtrig",
        ),
        (
            "suspend last-state: cancel, keep the checkpoint",
            valid(&ls),
            Some(&v1),
            running(),
            ctx(),
            "stop Suspend CancelKeepCheckpoint job=j1 trigger=-",
        ),
    ]);
    // Added suspended (never ran: no job id, no restore point), then started: its first
    // start, from initialSavepointPath (AbstractFlinkResourceReconciler.reconcile).
    let mut never_ran = Record::new(&key(Kind::FlinkDeployment));
    let mut added = app(UpgradeMode::Savepoint, JobState::Suspended, |_| {});
    job_mut(&mut added).initial_savepoint_path = Some("file:/sp/initial".into());
    never_ran.set_reconciled(&added, Some("rev1"));
    never_ran.mark_reconciled_stable();
    let mut started = added.clone();
    job_mut(&mut started).state = JobState::Running;
    assert_eq!(
        show(&decide(
            &valid(&started),
            Some(&never_ran),
            &Observed::nothing_deployed(),
            &ctx()
        )),
        "deploy job=newjob restore=file:/sp/initial"
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
    let obs = |t: Evidence<TriggerResult>, j: Evidence<ObservedJob>| Observed {
        cluster: Evidence::present(ClusterState::Ready),
        job: j,
        trigger: t,
        latest_checkpoint: Evidence::present("file:/cp/chk-3".to_string()),
        deployed_generation: None,
        checkpoints_completed: Evidence::present(1),
        health: vec![],
        live: None,
    };
    let completed = Evidence::present(TriggerResult::Completed {
        location: Some("file:/sp/1".into()),
    });
    let sp = at(stopping(StopPurpose::Upgrade, StopMode::Savepoint, true));
    let ls = at(stopping(
        StopPurpose::Upgrade,
        StopMode::CancelKeepCheckpoint,
        false,
    ));
    let sl = at(stopping(StopPurpose::Upgrade, StopMode::Cancel, false));
    let suspend = at(InFlight::Stopped {
        purpose: StopPurpose::Suspend,
    });
    let delete = at(InFlight::Stopped {
        purpose: StopPurpose::Delete,
    });
    let start = at(starting());
    let mut stopped = at(InFlight::Stopped {
        purpose: StopPurpose::Upgrade,
    });
    stopped.restore_path = Some("file:/sp/1".into());
    let mut snap = at(InFlight::Snapshotting {
        job_id: "j1".into(),
        trigger_id: "t9".into(),
        nonce: 4,
        checkpoint: false,
        periodic: false,
        since: String::new(),
    });
    snap.last_stable_hash = snap.last_reconciled_hash.clone();
    let app_absent = Observed {
        cluster: Evidence::Absent,
        job: Evidence::Absent,
        trigger: Evidence::Absent,
        latest_checkpoint: Evidence::Absent,
        deployed_generation: None,
        checkpoints_completed: Evidence::present(1),
        health: vec![],
        live: None,
    };
    check(vec![
        (
            "savepoint done",
            valid(&v2),
            Some(&sp),
            obs(completed.clone(), job(JobStatus::Finished, false)),
            ctx(),
            "finish-stop Upgrade restore=file:/sp/1 savepoint",
        ),
        (
            "savepoint pending",
            valid(&v2),
            Some(&sp),
            obs(
                Evidence::present(TriggerResult::InProgress),
                job(JobStatus::Running, true),
            ),
            ctx(),
            "wait the savepoint to complete",
        ),
        (
            "savepoint failed, job runs",
            valid(&v2),
            Some(&sp),
            obs(
                Evidence::present(TriggerResult::Failed {
                    cause: "boom".into(),
                }),
                job(JobStatus::Running, true),
            ),
            ctx(),
            "fail SavepointFailed",
        ),
        (
            "trigger unknown to Flink, job runs: stop again, same trigger",
            valid(&v2),
            Some(&sp),
            obs(Evidence::Absent, job(JobStatus::Running, true)),
            ctx(),
            "stop Upgrade Savepoint job=j1 trigger=t1",
        ),
        (
            "trigger unknown to Flink, job gone: newest checkpoint",
            valid(&v2),
            Some(&sp),
            obs(Evidence::Absent, Evidence::Absent),
            ctx(),
            "finish-stop Upgrade restore=file:/cp/chk-3",
        ),
        (
            "last-state cancel done",
            valid(&v2),
            Some(&ls),
            obs(Evidence::Absent, job(JobStatus::Canceled, false)),
            ctx(),
            "finish-stop Upgrade restore=file:/cp/chk-3",
        ),
        (
            "stateless cancel done",
            valid(&v2),
            Some(&sl),
            obs(Evidence::Absent, job(JobStatus::Canceled, false)),
            ctx(),
            "finish-stop Upgrade restore=-",
        ),
        (
            "cancel not done: cancel again (idempotent)",
            valid(&v2),
            Some(&sl),
            obs(Evidence::Absent, job(JobStatus::Cancelling, false)),
            ctx(),
            "stop Upgrade Cancel job=j1 trigger=-",
        ),
        (
            "stopped for suspend: settle",
            valid(&v2),
            Some(&suspend),
            running(),
            ctx(),
            "settle Suspend delete-cluster",
        ),
        (
            "stopped for delete: settle",
            valid(&v2),
            Some(&delete),
            running(),
            ctx(),
            "settle Delete delete-cluster",
        ),
        (
            "started and running: stable",
            valid(&v2),
            Some(&start),
            running(),
            ctx(),
            "mark-stable",
        ),
        (
            "started, not all tasks yet",
            valid(&v2),
            Some(&start),
            with_job(JobStatus::Running, false),
            ctx(),
            "wait the job to run",
        ),
        (
            "started, cluster never created (agent stopped first): same attempt again",
            valid(&v2),
            Some(&start),
            app_absent,
            ctx(),
            "deploy job=j1 restore=- retry",
        ),
        (
            "restore from the upgrade savepoint",
            valid(&v2),
            Some(&stopped),
            running(),
            ctx(),
            "deploy job=newjob restore=file:/sp/1",
        ),
        (
            "snapshot done",
            valid(&v2),
            Some(&snap),
            obs(completed, job(JobStatus::Running, true)),
            ctx(),
            "finish-snapshot file:/sp/1 -",
        ),
        (
            "snapshot trigger never arrived: trigger again, same id",
            valid(&v2),
            Some(&snap),
            obs(Evidence::Absent, job(JobStatus::Running, true)),
            ctx(),
            "snapshot nonce=4 checkpoint=false trigger=t9",
        ),
    ]);
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
    rec.set_reconciled(&v2, Some("rev2"));
    rec.restore_path = Some("file:/sp/good".into());
    rec.in_flight = Some(InFlight::Starting {
        job_id: "j1".into(),
        restore: Some("file:/sp/good".into()),
        since: "2001-09-09T01:40:00Z".into(),
    });
    let mut early = ctx();
    early.now_ms = 1_000_000_000_000 - 400_000 + 10_000; // 10 s after the start
                                                         // BeginRollback recorded: nothing in flight, ROLLING_BACK.
    let mut begun = rec.clone();
    begun.in_flight = None;
    begun.rollback = Some(RollbackState::RollingBack);
    let mut done = rec.clone();
    done.in_flight = None;
    done.rollback = Some(RollbackState::RolledBack);
    let mut rolled = rec.clone();
    rolled.in_flight = Some(InFlight::Stopped {
        purpose: StopPurpose::Rollback,
    });
    let mut stateless_bad = v2.clone();
    job_mut(&mut stateless_bad).upgrade_mode = UpgradeMode::Stateless;
    let mut rolled_stateless = rolled.clone();
    rolled_stateless.set_reconciled(&stateless_bad, Some("rev2"));
    // The stable spec failed on its way back.
    let mut back_failed = begun.clone();
    back_failed.job_state = Some(JobStatus::Failed);
    back_failed.last_error = Some(LastError {
        reason: "JobFailed".into(),
        message: "boom".into(),
        time: "t".into(),
    });
    let mut no_rollback = rec.clone();
    no_rollback.last_reconciled_spec.as_mut().map(|s| match s {
        Spec::Deployment(d) => d
            .flink_configuration
            .remove("kubernetes.operator.deployment.rollback.enabled"),
        Spec::SessionJob(j) => j
            .flink_configuration
            .remove("kubernetes.operator.deployment.rollback.enabled"),
    });
    let mut other_version = rec.clone();
    if let Some(Spec::Deployment(d)) = other_version.last_reconciled_spec.as_mut() {
        d.flink_version = Some(crate::flink::spec::FlinkVersion::V1_20);
    }
    let revert = v1.clone();
    let mut v3 = v1.clone();
    job_mut(&mut v3).args = vec!["--version".into(), "v3".into()];
    check(vec![
        (
            "failed before stable: roll back at once, without waiting for the timeout",
            valid(&v2),
            Some(&rec),
            with_job(JobStatus::Failed, false),
            early.clone(),
            "begin-rollback JobFailed: the job ended Failed",
        ),
        (
            "restarting past the readiness timeout: roll back",
            valid(&v2),
            Some(&rec),
            with_job(JobStatus::Restarting, false),
            ctx(),
            "begin-rollback ReadinessTimeout: not all of the job's tasks ran within kubernetes.operator.deployment.readiness.timeout (60 s)",
        ),
        (
            "within the timeout: keep waiting",
            valid(&v2),
            Some(&rec),
            with_job(JobStatus::Restarting, false),
            early.clone(),
            "wait the job to run",
        ),
        (
            "rollback off: a failed upgrade is FAILED",
            valid(&v2),
            Some(&no_rollback),
            with_job(JobStatus::Failed, false),
            early.clone(),
            "fail JobFailed",
        ),
        (
            "another Flink version than the stable spec's: no rollback (operator rule)",
            valid(&v2),
            Some(&other_version),
            with_job(JobStatus::Failed, false),
            early,
            "fail JobFailed",
        ),
        (
            "rolling back, the failed job still runs: cancel it (its state is not kept)",
            valid(&v2),
            Some(&begun),
            with_job(JobStatus::Restarting, false),
            ctx(),
            "stop Rollback Cancel job=j1 trigger=-",
        ),
        (
            "rolling back, the failed job ended: record the pre-upgrade state as restore point",
            valid(&v2),
            Some(&begun),
            with_job(JobStatus::Failed, false),
            ctx(),
            "finish-stop Rollback restore=file:/sp/good",
        ),
        (
            "rolling back and Flink does not answer: nothing destructive",
            valid(&v2),
            Some(&begun),
            Observed {
                job: Evidence::unknown(timeout()),
                ..running()
            },
            ctx(),
            "unreachable",
        ),
        (
            "rolling back and Git changed meanwhile: the rollback finishes first",
            valid(&v3),
            Some(&begun),
            with_job(JobStatus::Failed, false),
            ctx(),
            "finish-stop Rollback restore=file:/sp/good",
        ),
        (
            "stopped for the rollback: deploy the stable spec from the state taken before the upgrade",
            valid(&v2),
            Some(&rolled),
            running(),
            ctx(),
            "deploy job=newjob restore=file:/sp/good rollback",
        ),
        (
            "the failed spec was deployed stateless: the rollback is stateless too",
            valid(&stateless_bad),
            Some(&rolled_stateless),
            running(),
            ctx(),
            "deploy job=newjob restore=- rollback",
        ),
        (
            "the stable spec failed on its way back: reported, not retried",
            valid(&v2),
            Some(&back_failed),
            with_job(JobStatus::Failed, false),
            ctx(),
            "nothing",
        ),
        (
            "rolled back and running the stable spec: nothing until Git changes",
            valid(&v2),
            Some(&done),
            running(),
            ctx(),
            "nothing",
        ),
        (
            "rolled back, then Git reverts to the stable spec: recorded, no restart",
            valid(&revert),
            Some(&done),
            running(),
            ctx(),
            "accept stable=true",
        ),
        (
            "rolled back, then a new spec: an upgrade of the stable job",
            valid(&v3),
            Some(&done),
            running(),
            ctx(),
            "stop Upgrade Savepoint job=j1 trigger=newtrig",
        ),
    ]);
}

#[test]
fn stability_is_a_window_and_a_checkpoint() {
    let v1 = app(UpgradeMode::Savepoint, JobState::Running, |d| {
        d.flink_configuration.insert(
            "kubernetes.operator.deployment.rollback.enabled".into(),
            "true".into(),
        );
        d.flink_configuration
            .insert("execution.checkpointing.interval".into(), "2 s".into());
    });
    let mut v2 = v1.clone();
    job_mut(&mut v2).args = vec!["--version".into(), "v2".into()];
    let mut rec = applied(&v1, true);
    rec.set_reconciled(&v2, Some("rev2"));
    rec.restore_path = Some("file:/sp/good".into());
    rec.in_flight = Some(InFlight::Starting {
        job_id: "j1".into(),
        restore: Some("file:/sp/good".into()),
        since: "2001-09-09T01:46:00Z".into(), // 40 s before now
    });
    let mut own_window = rec.clone();
    if let Some(Spec::Deployment(d)) = own_window.last_reconciled_spec.as_mut() {
        d.flink_configuration.insert(
            "flink-gitops.deployment.stability.window".into(),
            "5 s".into(),
        );
    }
    let now = 1_000_000_000_000u64;
    let mut windowed = ctx();
    windowed.stability_window_ms = 30_000;
    let ran = |ms: u64, checkpoints: Evidence<u64>| {
        let mut o = running();
        if let Evidence::Present { value } = &mut o.job {
            value.running_since_ms = Some(now - ms);
        }
        o.checkpoints_completed = checkpoints;
        o
    };
    let mut late = windowed.clone();
    late.now_ms = now + 600_000; // past the 5 min readiness timeout
    let ran_late = |ms: u64, checkpoints: Evidence<u64>| {
        let mut o = ran(ms, checkpoints);
        if let Evidence::Present { value } = &mut o.job {
            value.running_since_ms = Some(now + 600_000 - ms);
        }
        o
    };
    check(vec![
        (
            "running for less than the window: wait",
            valid(&v2),
            Some(&rec),
            ran(10_000, Evidence::present(3)),
            windowed.clone(),
            "wait the job to run for the stability window (10 of 30 s)",
        ),
        (
            "the spec's own window applies",
            valid(&v2),
            Some(&own_window),
            ran(10_000, Evidence::present(3)),
            windowed.clone(),
            "mark-stable",
        ),
        (
            "window passed, no checkpoint of its own yet: wait",
            valid(&v2),
            Some(&rec),
            ran(31_000, Evidence::present(0)),
            windowed.clone(),
            "wait the job's first checkpoint",
        ),
        (
            "window passed and a checkpoint completed: stable",
            valid(&v2),
            Some(&rec),
            ran(31_000, Evidence::present(1)),
            windowed.clone(),
            "mark-stable",
        ),
        (
            "checkpoint counts unknown: not stable, not rolled back",
            valid(&v2),
            Some(&rec),
            ran(31_000, Evidence::unknown(timeout())),
            windowed.clone(),
            "wait the job's checkpoint counts (not read: GET http://jm/jobs/overview: no answer from Flink within 10s)",
        ),
        (
            "past the readiness timeout without a checkpoint: roll back",
            valid(&v2),
            Some(&rec),
            ran_late(31_000, Evidence::present(0)),
            late.clone(),
            "begin-rollback ReadinessTimeout: not stable within kubernetes.operator.deployment.readiness.timeout (300 s): waiting for the job's first checkpoint",
        ),
        (
            "past the readiness timeout and the counts unknown: unreachable, never a rollback",
            valid(&v2),
            Some(&rec),
            ran_late(31_000, Evidence::unknown(timeout())),
            late,
            "unreachable",
        ),
    ]);
}

#[test]
fn failed_jobs_and_lost_jobmanagers() {
    let base = app(UpgradeMode::LastState, JobState::Running, |d| {
        d.flink_configuration
            .insert("execution.checkpointing.dir".into(), "file:/cp".into());
    });
    let with = |k: &str, v: &str| {
        let mut s = base.clone();
        if let Spec::Deployment(d) = &mut s {
            d.flink_configuration.insert(k.into(), v.into());
        }
        s
    };
    let restart = with("kubernetes.operator.job.restart.failed", "true");
    let no_recovery = with(
        "kubernetes.operator.jm-deployment-recovery.enabled",
        "false",
    );
    let failed = |spec: &Spec, why: &str| {
        let mut r = applied(spec, true);
        r.job_state = Some(JobStatus::Failed);
        r.last_error = Some(LastError {
            reason: why.into(),
            message: "boom".into(),
            time: "t".into(),
        });
        r
    };
    let with_checkpoint = |job: Evidence<ObservedJob>| Observed {
        job,
        latest_checkpoint: Evidence::present("file:/cp/j1/chk-7".into()),
        ..running()
    };
    let gone = Observed {
        cluster: Evidence::Absent,
        job: Evidence::Absent,
        latest_checkpoint: Evidence::present("file:/cp/j1/chk-9".into()),
        ..running()
    };
    check(vec![
        (
            "a job that fails is recorded FAILED with Flink's cause",
            valid(&base),
            Some(&applied(&base, true)),
            with_job(JobStatus::Failed, false),
            ctx(),
            "fail JobFailed",
        ),
        (
            "FAILED stays FAILED by default",
            valid(&base),
            Some(&failed(&base, "JobFailed")),
            with_checkpoint(job(JobStatus::Failed, false)),
            ctx(),
            "nothing",
        ),
        (
            "job.restart.failed: restart from the newest checkpoint",
            valid(&restart),
            Some(&failed(&restart, "JobFailed")),
            with_checkpoint(job(JobStatus::Failed, false)),
            ctx(),
            "deploy job=newjob restore=file:/cp/j1/chk-7",
        ),
        (
            "job.restart.failed does not retry a deployment that failed",
            valid(&restart),
            Some(&failed(&restart, "DeploymentFailed")),
            with_checkpoint(job(JobStatus::Failed, false)),
            ctx(),
            "nothing",
        ),
        (
            "job.restart.failed and the newest checkpoint unknown: nothing destructive",
            valid(&restart),
            Some(&failed(&restart, "JobFailed")),
            Observed {
                latest_checkpoint: Evidence::unknown(timeout()),
                ..with_job(JobStatus::Failed, false)
            },
            ctx(),
            "unreachable",
        ),
        (
            "the JobManager is gone: recovered from the newest checkpoint",
            valid(&base),
            Some(&applied(&base, true)),
            gone.clone(),
            ctx(),
            "deploy job=newjob restore=file:/cp/j1/chk-9",
        ),
        (
            "the JobManager is gone and recovery is off: reported as lost",
            valid(&no_recovery),
            Some(&applied(&no_recovery, true)),
            gone,
            ctx(),
            "fail ClusterLost",
        ),
        (
            "the runtime cannot say whether the JobManager is there: nothing destructive",
            valid(&base),
            Some(&applied(&base, true)),
            Observed {
                cluster: Evidence::unknown(timeout()),
                job: Evidence::unknown(timeout()),
                ..running()
            },
            ctx(),
            "unreachable",
        ),
    ]);
}

#[test]
fn removal_and_readdition() {
    let v1 = app(UpgradeMode::Savepoint, JobState::Running, |d| {
        d.flink_configuration
            .insert("state.savepoints.dir".into(), "file:/sp".into());
    });
    let rec = applied(&v1, true);
    let mut no_prune = ctx();
    no_prune.prune = false;
    let mut opt_out = v1.clone();
    if let Spec::Deployment(d) = &mut opt_out {
        d.flink_configuration.insert(
            "kubernetes.operator.job.savepoint-on-deletion".into(),
            "false".into(),
        );
    }
    let opt_rec = applied(&opt_out, true);
    let mut deleted = rec.clone();
    deleted.deleted = true;
    deleted.restore_path = Some("file:/sp/final".into());
    check(vec![
        (
            "removed: final savepoint",
            Desired::Absent,
            Some(&rec),
            running(),
            ctx(),
            "stop Delete Savepoint job=j1 trigger=newtrig",
        ),
        (
            "removed, --no-prune: keep",
            Desired::Absent,
            Some(&rec),
            running(),
            no_prune,
            "keep-unmanaged",
        ),
        (
            "savepoint-on-deletion false: cancel",
            Desired::Absent,
            Some(&opt_rec),
            running(),
            ctx(),
            "stop Delete Cancel job=j1 trigger=-",
        ),
        (
            "already deleted",
            Desired::Absent,
            Some(&deleted),
            Observed::default(),
            ctx(),
            "nothing",
        ),
        (
            "re-added: restore from the final savepoint",
            valid(&v1),
            Some(&deleted),
            Observed::nothing_deployed(),
            ctx(),
            "deploy job=newjob restore=file:/sp/final",
        ),
    ]);
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
    let with_jobs = |stopped: bool| {
        let mut c = ctx();
        c.session_jobs = vec![
            SessionJobRef {
                name: "a".into(),
                stopped,
            },
            SessionJobRef {
                name: "b".into(),
                stopped: true,
            },
        ];
        c
    };
    let sj = Spec::SessionJob(SessionJobSpec {
        deployment_name: Some("s".into()),
        job: Some(JobSpec {
            jar_uri: Some("file:///j.jar".into()),
            parallelism: Some(1),
            upgrade_mode: UpgradeMode::Savepoint,
            ..Default::default()
        }),
        ..Default::default()
    });
    let sj_rec = applied(&sj, true);
    let not_ready = Observed {
        cluster: Evidence::present(ClusterState::Starting),
        ..running()
    };
    let mut waiting = sj_rec.clone();
    waiting.in_flight = Some(InFlight::Stopped {
        purpose: StopPurpose::ClusterRedeploy,
    });
    waiting.restore_path = Some("file:/sp/x".into());
    let pending = {
        let mut c = ctx();
        c.cluster_redeploy_pending = true;
        c
    };
    let mut submitting = applied(&sj, false);
    submitting.in_flight = Some(starting());
    let not_listed = Observed {
        job: Evidence::Absent,
        ..running()
    };
    check(vec![
        (
            "a session cluster outlives its session jobs",
            Desired::Absent,
            Some(&rec),
            running(),
            with_jobs(true),
            "wait session jobs a, b to be removed first",
        ),
        (
            "no session jobs: remove the cluster",
            Desired::Absent,
            Some(&rec),
            running(),
            ctx(),
            "settle Delete delete-cluster",
        ),
        (
            "change: wait for running session jobs to stop",
            valid(&changed),
            Some(&rec),
            running(),
            with_jobs(false),
            "wait session jobs a to stop before the session cluster is redeployed",
        ),
        (
            "change, all session jobs stopped: redeploy",
            valid(&changed),
            Some(&rec),
            running(),
            with_jobs(true),
            "deploy job=- restore=-",
        ),
        (
            "session job waits for its cluster",
            valid(&sj),
            Some(&sj_rec),
            not_ready.clone(),
            ctx(),
            "wait the session cluster to be ready",
        ),
        (
            "cluster redeploy pending: stop with the job's mode",
            valid(&sj),
            Some(&sj_rec),
            running(),
            pending.clone(),
            "stop ClusterRedeploy Savepoint job=j1 trigger=newtrig",
        ),
        (
            "stopped for the redeploy, not yet redeployed: wait",
            valid(&sj),
            Some(&waiting),
            running(),
            pending,
            "wait the session cluster to be redeployed",
        ),
        (
            "stopped for the redeploy, cluster not ready: wait",
            valid(&sj),
            Some(&waiting),
            not_ready,
            ctx(),
            "wait the session cluster to be redeployed",
        ),
        (
            "cluster redeployed: resume from the savepoint",
            valid(&sj),
            Some(&waiting),
            running(),
            ctx(),
            "deploy job=newjob restore=file:/sp/x",
        ),
        (
            "submit in flight, cluster answers without it: same id again",
            valid(&sj),
            Some(&submitting),
            not_listed,
            ctx(),
            "deploy job=j1 restore=- retry",
        ),
        (
            "new session job: waits for its cluster to be ready",
            valid(&sj),
            None,
            Observed {
                cluster: Evidence::present(ClusterState::Starting),
                ..Observed::nothing_deployed()
            },
            ctx(),
            "wait the session cluster to be ready",
        ),
        (
            "new session job, cluster ready: submit",
            valid(&sj),
            None,
            Observed {
                cluster: Evidence::present(ClusterState::Ready),
                ..Observed::nothing_deployed()
            },
            ctx(),
            "deploy job=newjob restore=-",
        ),
    ]);
}

#[test]
fn in_place_rescale() {
    let spec = |overrides: &str| {
        app(UpgradeMode::Savepoint, JobState::Running, |d| {
            d.flink_version = Some(crate::flink::spec::FlinkVersion::V1_20);
            d.flink_configuration
                .insert("jobmanager.scheduler".into(), "adaptive".into());
            d.flink_configuration.insert(
                "pipeline.jobvertex-parallelism-overrides".into(),
                overrides.into(),
            );
        })
    };
    let rec = applied(&spec("a1:2,b2:2"), true);
    let mut rescaling = applied(&spec("a1:1,b2:2"), false);
    rescaling.in_flight = Some(InFlight::Rescaling {
        job_id: "j1".into(),
        parallelism: BTreeMap::from([("a1".to_string(), 1), ("b2".to_string(), 2)]),
        since: "2001-09-09T01:46:40Z".into(),
    });
    let at = |a1: u32| Observed {
        job: Evidence::present(ObservedJob {
            vertex_parallelism: Some(BTreeMap::from([
                ("a1".to_string(), a1),
                ("b2".to_string(), 2),
            ])),
            ..running().job.get().cloned().expect("job")
        }),
        ..running()
    };
    let new = spec("a1:1,b2:2");
    let removed = spec("a1:1");
    check(vec![
        (
            "override changed: rescale in place",
            valid(&new),
            Some(&rec),
            running(),
            ctx(),
            "rescale {\"a1\": 1, \"b2\": 2}",
        ),
        (
            "override removed: full upgrade with the job's mode",
            valid(&removed),
            Some(&rec),
            running(),
            ctx(),
            "stop Upgrade Savepoint job=j1 trigger=newtrig",
        ),
        (
            "vertices not there yet: wait",
            valid(&new),
            Some(&rescaling),
            at(2),
            ctx(),
            "wait the vertices to run at the new parallelism",
        ),
        (
            "vertices at the new parallelism: stable",
            valid(&new),
            Some(&rescaling),
            at(1),
            ctx(),
            "mark-stable",
        ),
        (
            "jobs overview fails while rescaling: unreachable",
            valid(&new),
            Some(&rescaling),
            Observed {
                job: Evidence::unknown(timeout()),
                ..running()
            },
            ctx(),
            "unreachable",
        ),
    ]);
}

#[test]
fn health_check_restarts_unhealthy_jobs() {
    use crate::flink::lifecycle::observe::HealthSample;
    let on = app(UpgradeMode::Savepoint, JobState::Running, |d| {
        for (k, v) in [
            ("kubernetes.operator.cluster.health-check.enabled", "true"),
            (
                "kubernetes.operator.cluster.health-check.restarts.window",
                "10 s",
            ),
            (
                "kubernetes.operator.cluster.health-check.restarts.threshold",
                "3",
            ),
        ] {
            d.flink_configuration.insert(k.into(), v.into());
        }
    });
    let mut recovery_off = on.clone();
    if let Spec::Deployment(d) = &mut recovery_off {
        d.flink_configuration.insert(
            "kubernetes.operator.jm-deployment-recovery.enabled".into(),
            "false".into(),
        );
    }
    let off = app(UpgradeMode::Savepoint, JobState::Running, |_| {});
    let now = ctx().now_ms;
    let readings = |restarts: u64| Observed {
        health: vec![
            HealthSample {
                time_ms: now - 12_000,
                restarts: 0,
                completed_checkpoints: 1,
            },
            HealthSample {
                time_ms: now,
                restarts,
                completed_checkpoints: 5,
            },
        ],
        ..running()
    };
    let mut noted = applied(&on, true);
    noted.last_error = Some(LastError {
        reason: reason::UNHEALTHY.into(),
        message: "x".into(),
        time: "t".into(),
    });
    let mut stopped = applied(&on, true);
    stopped.restore_path = Some("file:/cp/j1/chk-3".into());
    stopped.in_flight = Some(InFlight::Stopped {
        purpose: StopPurpose::Restart,
    });
    check(vec![
        (
            "few restarts: nothing",
            valid(&on),
            Some(&applied(&on, true)),
            readings(3),
            ctx(),
            "nothing",
        ),
        (
            "many restarts: record why first",
            valid(&on),
            Some(&applied(&on, true)),
            readings(40),
            ctx(),
            "unhealthy 40 restarts in 12 s (more than kubernetes.operator.cluster.health-check.restarts.threshold 3 per 10 s)",
        ),
        (
            "recorded: cancel keeping the newest checkpoint",
            valid(&on),
            Some(&noted),
            readings(40),
            ctx(),
            "stop Restart CancelKeepCheckpoint job=j1 trigger=-",
        ),
        (
            "stopped: start the same spec from the newest checkpoint",
            valid(&on),
            Some(&stopped),
            running(),
            ctx(),
            "deploy job=newjob restore=file:/cp/j1/chk-3",
        ),
        (
            "health check off: nothing",
            valid(&off),
            Some(&applied(&off, true)),
            readings(40),
            ctx(),
            "nothing",
        ),
        (
            "JobManager recovery off disables it (the operator's rule)",
            valid(&recovery_off),
            Some(&applied(&recovery_off, true)),
            readings(40),
            ctx(),
            "nothing",
        ),
    ]);
}

#[test]
fn high_availability_keeps_the_job_id_its_metadata_is_keyed_by() {
    let ha = |mode: UpgradeMode| {
        app(mode, JobState::Running, |d| {
            for (k, v) in [
                ("execution.checkpointing.dir", "file:/cp"),
                ("state.savepoints.dir", "file:/sp"),
                ("high-availability.type", "kubernetes"),
                ("high-availability.storageDir", "file:/ha"),
            ] {
                d.flink_configuration.insert(k.into(), v.into());
            }
        })
    };
    let base = ha(UpgradeMode::LastState);
    let no_ha = app(UpgradeMode::LastState, JobState::Running, |d| {
        d.flink_configuration
            .insert("execution.checkpointing.dir".into(), "file:/cp".into());
    });
    let gone = Observed {
        cluster: Evidence::Absent,
        job: Evidence::Absent,
        latest_checkpoint: Evidence::present("file:/cp/j1/chk-9".into()),
        ..running()
    };
    // Stopped for an upgrade: how the job ended says whether HA metadata is left.
    let stopped = |spec: &Spec, state: JobStatus, restore: &str| {
        let mut r = applied(spec, true);
        r.job_state = Some(state);
        r.restore_path = Some(restore.into());
        r.in_flight = Some(InFlight::Stopped {
            purpose: StopPurpose::Upgrade,
        });
        r
    };
    let mut v2 = base.clone();
    job_mut(&mut v2).args = vec!["v2".into()];
    let mut v2_savepoint = ha(UpgradeMode::Savepoint);
    job_mut(&mut v2_savepoint).args = vec!["v2".into()];
    check(vec![
        (
            "HA, JobManager lost: the same job id (Flink recovers it from HA)",
            valid(&base),
            Some(&applied(&base, true)),
            gone.clone(),
            ctx(),
            "deploy job=j1 restore=file:/cp/j1/chk-9",
        ),
        (
            "no HA, JobManager lost: a new job id",
            valid(&no_ha),
            Some(&applied(&no_ha, true)),
            gone,
            ctx(),
            "deploy job=newjob restore=file:/cp/j1/chk-9",
        ),
        (
            "HA, last-state upgrade (the job never ended): the same job id",
            valid(&v2),
            Some(&stopped(&base, JobStatus::Running, "file:/cp/j1/chk-9")),
            Observed {
                cluster: Evidence::Absent,
                job: Evidence::Absent,
                ..running()
            },
            ctx(),
            "deploy job=j1 restore=file:/cp/j1/chk-9",
        ),
        (
            "HA, savepoint upgrade (the job FINISHED, HA cleaned up): a new job id",
            valid(&v2_savepoint),
            Some(&stopped(
                &ha(UpgradeMode::Savepoint),
                JobStatus::Finished,
                "file:/sp/savepoint-1",
            )),
            Observed {
                cluster: Evidence::Absent,
                job: Evidence::Absent,
                ..running()
            },
            ctx(),
            "deploy job=newjob restore=file:/sp/savepoint-1",
        ),
    ]);
}
