//! What the agent will do, predicted with its own rules: `plan` runs [`decide`] and the
//! record [`transition`]s over a predicted world (the base revision deployed and its job
//! running, with what the status branch knows), applying each step's expected effect, and
//! prints the steps. There is no second rule book: a change the agent would carry out
//! differently than planned would need a different `decide`.

use super::decide::{decide, Context, Desired, SessionJobRef, Step};
use super::observe::{ClusterState, Evidence, Observed, ObservedJob, TriggerResult};
use super::record::{Record, StopMode, StopPurpose};
use super::transition::{after, before, Outcome};
use super::{Action, Restore, StateFrom};
use crate::config;
use crate::flink::rest::JobStatus;
use crate::flink::spec::{JobState, ResourceKey, Spec, UpgradeMode};

/// Where a predicted savepoint would be; shown as "its last savepoint".
pub const PREDICTED_SAVEPOINT: &str = "<savepoint>";
/// Where a predicted newest checkpoint would be; shown as "its latest checkpoint".
pub const PREDICTED_CHECKPOINT: &str = "<latest checkpoint>";
const PREDICTED_JOB_ID: &str = "00000000000000000000000000000001";
const NEW_JOB_ID: &str = "00000000000000000000000000000002";
const NOW: &str = "2000-01-01T00:00:00Z";
const MAX_STEPS: usize = 16;

/// The steps predicted for one resource and their summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// In the order the agent takes them, ending before it would wait or rest.
    pub steps: Vec<Step>,
    pub action: Action,
    /// Where the job's state comes from once the steps are done.
    pub state: StateFrom,
}

/// Whether a running job leaves a checkpoint to restore from, judged from the spec it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoints {
    /// It checkpoints into a directory: a cancel keeps the newest checkpoint.
    Expected,
    /// Nothing configures checkpointing: there is no checkpoint to restore.
    Never,
    /// Checkpointing is on but the spec names no directory: only a default directory of the
    /// runtime or operator (if any) keeps one.
    Unsure,
}

/// What the running spec says about checkpoints. A stateful mode needs a checkpoint
/// directory (the operator's `DefaultValidator.validateJobSpec`) and the operator turns
/// checkpointing on for it (`FlinkConfigBuilder`: `execution.checkpointing.interval` 5 min
/// for last-state); a stateless job checkpoints only if `execution.checkpointing.interval`
/// is set (Flink's default is off), and keeps a checkpoint past a cancel only in a
/// directory. A job's own code may turn checkpointing on; the plan cannot see that.
pub fn checkpoints_of(running: &Spec) -> Checkpoints {
    if running.upgrade_mode().is_some_and(UpgradeMode::is_stateful) {
        return Checkpoints::Expected;
    }
    let cfg = running.flink_configuration();
    let interval_on = config::lookup(cfg, &config::CHECKPOINT_INTERVAL).is_some_and(|(_, v)| {
        let v = v.trim();
        !v.is_empty() && !v.starts_with('0') && !v.starts_with('-')
    });
    let has_dir =
        config::lookup(cfg, &config::CHECKPOINTS_DIR).is_some_and(|(_, v)| !v.trim().is_empty());
    match (interval_on, has_dir) {
        (false, _) => Checkpoints::Never,
        (true, true) => Checkpoints::Expected,
        (true, false) => Checkpoints::Unsure,
    }
}

/// The record the agent would hold if `base` were deployed and running (or suspended, as
/// it says), keeping what the status branch knows (`known`): restore point, savepoints,
/// nonces, and whether the resource was removed. When the status branch says the agent
/// runs something else than `base` (it held an invalid base, or has not applied it yet),
/// that record is the truth the agent will act from, and the plan takes it.
pub fn predicted_record(
    key: &ResourceKey,
    base: Option<&Spec>,
    known: Option<&Record>,
) -> Option<Record> {
    let Some(base) = base else {
        return known.filter(|r| r.deleted).cloned();
    };
    if let Some(k) = known.filter(|k| !k.deleted && k.last_reconciled_spec.is_some()) {
        // Rolled back: the stable spec runs, whatever base says. Failed: nothing runs.
        let failed = k.job_state == Some(JobStatus::Failed) && k.last_error.is_some();
        if k.last_reconciled_hash.as_ref() != Some(&base.hash()) || k.rollback.is_some() || failed {
            return Some(k.clone());
        }
    }
    let mut r = Record::new(key);
    r.set_reconciled(base, Some("base"));
    r.mark_reconciled_stable();
    if let Some(job) = base.job() {
        r.job_id = Some(PREDICTED_JOB_ID.to_string());
        r.job_state = Some(JobStatus::Running);
        if job.state == JobState::Suspended {
            r.job_state = Some(JobStatus::Finished);
            r.stopped_with = Some(job.upgrade_mode);
            r.restore_path = match job.upgrade_mode {
                UpgradeMode::Savepoint => Some(PREDICTED_SAVEPOINT.to_string()),
                UpgradeMode::LastState => Some(PREDICTED_CHECKPOINT.to_string()),
                UpgradeMode::Stateless => None,
            };
        }
    }
    r.generation = 1;
    if let Some(k) = known.filter(|k| !k.deleted) {
        r.nonces = k.nonces.clone();
        r.savepoints = k.savepoints.clone();
        if k.last_reconciled_spec.is_some() {
            // The agent's own record of base: its restore point is the truth (a job added
            // suspended that never ran has none).
            r.restore_path = k.restore_path.clone();
        } else if r.restore_path.is_some() {
            r.restore_path = k.restore_path.clone().or(r.restore_path);
        }
    }
    Some(r)
}

fn world_of(record: Option<&Record>, session_job: bool) -> Observed {
    // A session job's cluster is its session cluster, which the plan takes as running.
    let session_cluster = || Observed {
        cluster: Evidence::present(ClusterState::Ready),
        ..Observed::nothing_deployed()
    };
    let Some(r) = record.filter(|r| !r.deleted) else {
        return if session_job {
            session_cluster()
        } else {
            Observed::nothing_deployed()
        };
    };
    let suspended = r.reconciled_suspended();
    Observed {
        cluster: if suspended && !session_job {
            Evidence::Absent
        } else {
            Evidence::present(ClusterState::Ready)
        },
        job: match (&r.job_id, suspended) {
            (Some(id), false) => Evidence::present(ObservedJob {
                job_id: id.clone(),
                // A job the status branch records as FAILED is not running.
                state: match r.job_state {
                    Some(JobStatus::Failed) if r.last_error.is_some() => JobStatus::Failed,
                    _ => JobStatus::Running,
                },
                all_tasks_running: r.job_state != Some(JobStatus::Failed),
                failure: None,
                vertex_parallelism: None,
                running_since_ms: None,
            }),
            _ => Evidence::Absent,
        },
        trigger: Evidence::Absent,
        // A job that never checkpoints leaves none: a cancel keeps only the recorded
        // restore point.
        latest_checkpoint: match r.last_reconciled_spec.as_ref().map(checkpoints_of) {
            Some(Checkpoints::Never) => Evidence::Absent,
            _ => Evidence::present(PREDICTED_CHECKPOINT.to_string()),
        },
        deployed_generation: None,
        checkpoints_completed: Evidence::Absent,
        health: Vec::new(),
        live: None,
    }
}

/// The world after a step, as the agent expects it to go.
fn effect(world: &mut Observed, step: &Step) {
    match step {
        Step::Deploy(d) => {
            world.cluster = Evidence::present(ClusterState::Ready);
            world.trigger = Evidence::Absent;
            world.checkpoints_completed = Evidence::present(1);
            world.job = match &d.job_id {
                Some(id) => Evidence::present(ObservedJob {
                    job_id: id.clone(),
                    state: JobStatus::Running,
                    all_tasks_running: true,
                    failure: None,
                    vertex_parallelism: None,
                    running_since_ms: None,
                }),
                None => Evidence::Absent,
            };
        }
        Step::Stop(s) => {
            let ended = if s.mode == StopMode::Savepoint {
                world.trigger = Evidence::present(TriggerResult::Completed {
                    location: Some(PREDICTED_SAVEPOINT.to_string()),
                });
                JobStatus::Finished
            } else {
                JobStatus::Canceled
            };
            if let Evidence::Present { value } = &mut world.job {
                value.state = ended;
            }
        }
        Step::Settle { delete_cluster, .. } => {
            if *delete_cluster {
                world.cluster = Evidence::Absent;
            }
            world.job = Evidence::Absent;
            world.trigger = Evidence::Absent;
        }
        Step::Rescale { parallelism, .. } => {
            if let Evidence::Present { value } = &mut world.job {
                value.vertex_parallelism = Some(parallelism.clone());
            }
        }
        Step::TriggerSnapshot { checkpoint, .. } => {
            world.trigger = Evidence::present(TriggerResult::Completed {
                location: (!checkpoint).then(|| PREDICTED_SAVEPOINT.to_string()),
            });
        }
        Step::FinishSnapshot { .. } => world.trigger = Evidence::Absent,
        _ => {}
    }
}

/// Runs the agent's rules for one resource over the predicted world. `session_jobs`: for a
/// session cluster, the session jobs on it (at base or head).
pub fn predict(
    desired: &Desired<'_>,
    record: Option<Record>,
    session_jobs: &[String],
    prune: bool,
) -> Prediction {
    predict_with(desired, record, session_jobs, prune, false)
}

/// [`predict`] for a session job whose session cluster is redeployed by the same change
/// (`cluster_redeploy_pending`): the job stops with its upgrade mode and resumes after.
pub fn predict_with(
    desired: &Desired<'_>,
    record: Option<Record>,
    session_jobs: &[String],
    prune: bool,
    cluster_redeploy_pending: bool,
) -> Prediction {
    let session_job = match desired {
        Desired::Valid { spec, .. } => spec.kind() == crate::flink::spec::Kind::FlinkSessionJob,
        _ => record
            .as_ref()
            .is_some_and(|r| r.kind == crate::flink::spec::Kind::FlinkSessionJob),
    };
    let mut record = record;
    let mut world = world_of(record.as_ref(), session_job);
    let initial = record.clone();
    let mut ctx = Context {
        prune,
        now_ms: 946_684_800_000,
        fresh_job_id: NEW_JOB_ID.to_string(),
        fresh_trigger_id: "predicted-trigger".to_string(),
        session_jobs: session_jobs
            .iter()
            .map(|n| SessionJobRef {
                name: n.clone(),
                stopped: false,
            })
            .collect(),
        cluster_redeploy_pending,
        // The plan predicts the way it goes when the new job proves itself: it runs
        // through the stability window and checkpoints (see `effect`).
        stability_window_ms: 0,
        drift: Default::default(),
    };
    let mut steps = Vec::new();
    for _ in 0..MAX_STEPS {
        let step = decide(desired, record.as_ref(), &world, &ctx);
        match &step {
            Step::Nothing | Step::Unreachable { .. } => break,
            Step::Wait { .. } => {
                // A session cluster waits for its session jobs: they stop (their own
                // prediction says how) and are removed or resumed around it.
                if ctx.session_jobs.iter().any(|j| !j.stopped) {
                    steps.push(step);
                    for j in &mut ctx.session_jobs {
                        j.stopped = true;
                    }
                    if matches!(desired, Desired::Absent) {
                        ctx.session_jobs.clear();
                    }
                    continue;
                }
                break;
            }
            _ => {}
        }
        let key = record
            .as_ref()
            .map(Record::key)
            .unwrap_or_else(|| ResourceKey::new("", crate::flink::spec::Kind::FlinkDeployment, ""));
        let current = record.clone().unwrap_or_else(|| Record::new(&key));
        let written = before(&current, &step, NOW).unwrap_or(current);
        effect(&mut world, &step);
        let next = after(&written, &step, &Outcome::Done, &world, NOW);
        let terminal = matches!(
            step,
            Step::Hold { .. } | Step::KeepUnmanaged | Step::MarkDeleted | Step::Fail { .. }
        );
        record = Some(next);
        steps.push(step);
        if terminal {
            break;
        }
    }
    let action = summarize(desired, initial.as_ref(), &steps, session_jobs);
    let state = state_of(&action, &steps);
    Prediction {
        steps,
        action,
        state,
    }
}

/// Where the job's state comes from after `steps`: the restore of the job they start, else
/// the running job's own, else none.
fn state_of(action: &Action, steps: &[Step]) -> StateFrom {
    let started = steps.iter().find_map(|s| match s {
        Step::Deploy(d) if d.job_id.is_some() => Some(restore_of(&d.restore)),
        _ => None,
    });
    if let Some(r) = started {
        return StateFrom::of_restore(&r);
    }
    match action {
        Action::Deploy { restore } | Action::Resume { restore } => StateFrom::of_restore(restore),
        Action::SavepointRedeploy { path } => StateFrom::Path(path.clone()),
        Action::Upgrade { mode } => match mode {
            UpgradeMode::Savepoint => StateFrom::UpgradeSavepoint,
            UpgradeMode::LastState => StateFrom::LatestCheckpoint,
            UpgradeMode::Stateless => StateFrom::Empty,
        },
        Action::RescaleInPlace
        | Action::TriggerSnapshot { .. }
        | Action::NoRestart
        | Action::KeepUnmanaged
        | Action::Hold => StateFrom::Running,
        Action::DeploySessionCluster
        | Action::CreateSuspended
        | Action::Suspend { .. }
        | Action::RedeploySessionCluster { .. }
        | Action::UpdateSuspended
        | Action::Delete { .. }
        | Action::DeleteSessionCluster => StateFrom::NoJob,
    }
}

fn restore_of(path: &Option<String>) -> Restore {
    match path.as_deref() {
        None => Restore::Empty,
        Some(PREDICTED_SAVEPOINT) => Restore::UpgradeSavepoint,
        Some(PREDICTED_CHECKPOINT) => Restore::LatestCheckpoint,
        Some(p) => Restore::Path(p.to_string()),
    }
}

fn mode_of(stop: StopMode) -> UpgradeMode {
    match stop {
        StopMode::Savepoint => UpgradeMode::Savepoint,
        StopMode::CancelKeepCheckpoint => UpgradeMode::LastState,
        StopMode::Cancel => UpgradeMode::Stateless,
    }
}

/// The plan's one-line summary of a list of steps.
fn summarize(
    desired: &Desired<'_>,
    initial: Option<&Record>,
    steps: &[Step],
    session_jobs: &[String],
) -> Action {
    let was_session_cluster = initial.is_some_and(Record::is_session_cluster)
        || matches!(desired, Desired::Valid { spec: Spec::Deployment(d), .. } if d.is_session_cluster());
    let was_suspended = initial.is_some_and(|r| !r.deleted && r.reconciled_suspended());
    let snapshots: Vec<bool> = steps
        .iter()
        .filter_map(|s| match s {
            Step::TriggerSnapshot { checkpoint, .. } => Some(*checkpoint),
            _ => None,
        })
        .collect();
    if steps.iter().any(|s| matches!(s, Step::Rescale { .. })) {
        return Action::RescaleInPlace;
    }
    let restarts = steps
        .iter()
        .any(|s| matches!(s, Step::Stop(_) | Step::Deploy(_)));
    if !snapshots.is_empty() && !restarts {
        return Action::TriggerSnapshot {
            savepoint: snapshots.contains(&false),
            checkpoint: snapshots.contains(&true),
        };
    }
    for step in steps {
        match step {
            Step::Hold { .. } => return Action::Hold,
            Step::KeepUnmanaged => return Action::KeepUnmanaged,
            Step::Rescale { .. } => return Action::RescaleInPlace,
            Step::TriggerSnapshot { .. } => {
                return Action::TriggerSnapshot {
                    savepoint: snapshots.contains(&false),
                    checkpoint: snapshots.contains(&true),
                }
            }
            Step::Wait { .. }
                if was_session_cluster && matches!(desired, Desired::Valid { .. }) =>
            {
                return Action::RedeploySessionCluster {
                    session_jobs: session_jobs.to_vec(),
                }
            }
            Step::Stop(s) => {
                return match s.purpose {
                    StopPurpose::Suspend => Action::Suspend {
                        mode: mode_of(s.mode),
                    },
                    StopPurpose::SavepointRedeploy => Action::SavepointRedeploy {
                        path: match desired {
                            Desired::Valid { spec, .. } => spec
                                .job()
                                .and_then(|j| j.initial_savepoint_path.clone())
                                .unwrap_or_default(),
                            _ => String::new(),
                        },
                    },
                    StopPurpose::Delete => Action::Delete {
                        final_savepoint: s.mode == StopMode::Savepoint,
                        mode: initial
                            .and_then(|r| r.last_reconciled_spec.as_ref())
                            .and_then(Spec::upgrade_mode)
                            .unwrap_or_default(),
                    },
                    _ => Action::Upgrade {
                        mode: mode_of(s.mode),
                    },
                };
            }
            Step::FinishStop {
                purpose: StopPurpose::Suspend,
                ..
            } => {
                return Action::Suspend {
                    mode: match desired {
                        Desired::Valid { spec, .. } => spec.upgrade_mode().unwrap_or_default(),
                        _ => UpgradeMode::default(),
                    },
                }
            }
            Step::Settle {
                purpose: StopPurpose::Delete,
                ..
            }
            | Step::FinishStop {
                purpose: StopPurpose::Delete,
                ..
            } => {
                if was_session_cluster {
                    return Action::DeleteSessionCluster;
                }
                let mode = initial
                    .and_then(|r| r.last_reconciled_spec.as_ref())
                    .and_then(Spec::upgrade_mode)
                    .unwrap_or_default();
                return Action::Delete {
                    final_savepoint: false,
                    mode,
                };
            }
            Step::Deploy(d) => {
                if d.job_id.is_none() {
                    return if initial.is_some_and(|r| !r.deleted) {
                        Action::RedeploySessionCluster {
                            session_jobs: session_jobs.to_vec(),
                        }
                    } else {
                        Action::DeploySessionCluster
                    };
                }
                let restore = restore_of(&d.restore);
                return if was_suspended {
                    Action::Resume { restore }
                } else {
                    Action::Deploy { restore }
                };
            }
            Step::AcceptSpec { spec, .. } => {
                let suspended = spec.job().is_some_and(|j| j.state == JobState::Suspended);
                return match initial {
                    None => Action::CreateSuspended,
                    Some(r) if r.deleted && suspended => Action::CreateSuspended,
                    Some(_) if was_suspended && suspended => Action::UpdateSuspended,
                    _ => Action::NoRestart,
                };
            }
            _ => {}
        }
    }
    Action::NoRestart
}

/// One step in plain words, for the plan.
pub fn describe(step: &Step) -> String {
    let restore = |r: &Option<String>| match restore_of(r) {
        Restore::Empty => "without state".to_string(),
        Restore::UpgradeSavepoint => "from the savepoint taken by the stop".to_string(),
        Restore::LatestCheckpoint => "from the latest checkpoint".to_string(),
        Restore::Path(p) => format!("from {p}"),
    };
    match step {
        Step::Nothing => "nothing".to_string(),
        Step::Wait { what } => format!("wait for {what}"),
        Step::Unreachable { error } => format!("report unreachable: {error}"),
        Step::Hold { .. } => {
            "hold: the manifest is invalid; the last good deployment keeps running".to_string()
        }
        Step::Deploy(d) if d.job_id.is_none() => "deploy the session cluster".to_string(),
        Step::Deploy(d) if d.rollback => {
            format!("deploy the last stable spec {}", restore(&d.restore))
        }
        Step::Deploy(d) => format!("start the job {}", restore(&d.restore)),
        Step::Stop(s) => match s.mode {
            StopMode::Savepoint => "stop the job with a savepoint".to_string(),
            StopMode::CancelKeepCheckpoint => {
                "cancel the job, keeping its latest checkpoint".to_string()
            }
            StopMode::Cancel => "cancel the job (state discarded)".to_string(),
        },
        Step::FinishStop { restore: r, .. } => format!(
            "record the restore point ({})",
            match r {
                Some(p) => p.clone(),
                None => "none".to_string(),
            }
        ),
        Step::Settle {
            purpose: StopPurpose::Delete,
            delete_cluster: true,
            ..
        } => "remove the cluster".to_string(),
        Step::Settle {
            purpose: StopPurpose::Delete,
            ..
        } => "remove the record".to_string(),
        Step::Settle {
            delete_cluster: true,
            ..
        } => "remove the cluster; the job stays suspended".to_string(),
        Step::Settle { .. } => "record it suspended".to_string(),
        Step::MarkStable => {
            "mark it stable once it has run for the stability window (and checkpointed)".to_string()
        }
        Step::AcceptSpec { .. } => "record the new spec (no restart)".to_string(),
        Step::Rescale { parallelism, .. } => format!(
            "rescale in place to {}",
            parallelism
                .iter()
                .map(|(v, p)| format!("{v}:{p}"))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Step::TriggerSnapshot {
            checkpoint,
            periodic,
            ..
        } => format!(
            "trigger a {}{}",
            if *periodic { "periodic " } else { "" },
            if *checkpoint {
                "checkpoint"
            } else {
                "savepoint"
            }
        ),
        Step::FinishSnapshot { .. } => "record the snapshot".to_string(),
        Step::ReportUnhealthy { message } => {
            format!("restart the unhealthy job from its newest state: {message}")
        }
        Step::BeginRollback { message, .. } => {
            format!("roll back to the last stable spec: {message}")
        }
        Step::Fail { message, .. } => format!("fail: {message}"),
        Step::KeepUnmanaged => "leave it running, unmanaged".to_string(),
        Step::MarkDeleted => "mark it deleted".to_string(),
        Step::RecordDrift { items, .. } if items.is_empty() => "drift gone".to_string(),
        Step::RecordDrift { items, policy, .. } => format!(
            "drift ({policy}): {}",
            items
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Step::CancelUnmanaged { job_ids } => {
            format!("cancel unmanaged jobs {}", job_ids.join(", "))
        }
    }
}
