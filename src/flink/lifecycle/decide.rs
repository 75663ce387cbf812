//! `decide`: from what Git wants, what the agent recorded and what Flink shows, the one
//! next step for a resource. Pure: no I/O, no clock (the time comes in [`Context`]).
//!
//! The executor calls it in a loop: observe, decide, act, record, until it answers
//! [`Step::Nothing`] or [`Step::Wait`]. Each step is small and its effect is recorded before
//! anything depends on it, so the loop can stop anywhere and pick up again.

use serde::Serialize;

use super::record::{InFlight, Record, StopMode, StopPurpose};
use super::{can_rescale_in_place, takes_final_savepoint, ChangeClass};
use crate::config;
use crate::diff::classify;
use crate::flink::spec::{JobState, Kind, Spec, SpecHash, UpgradeMode};

/// What Git wants for a resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Desired<'a> {
    /// Not in Git (any more).
    Absent,
    /// In Git but invalid: nothing is applied.
    Invalid { message: String },
    Valid {
        spec: &'a Spec,
        hash: SpecHash,
        revision: &'a str,
    },
}

/// The state of the cluster a resource's job runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterState {
    /// No processes or pods.
    Missing,
    /// Processes exist; REST or TaskManagers not ready yet.
    Starting,
    /// REST answers and at least one TaskManager is registered.
    Ready,
    /// Processes ended; with the reason if known.
    Exited { reason: String },
}

/// A job as Flink reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedJob {
    pub job_id: String,
    /// Flink's JobStatus: RUNNING, FAILED, CANCELED, FINISHED, ...
    pub state: String,
    /// All tasks RUNNING (a RUNNING job is not running until they are).
    pub all_tasks_running: bool,
    /// For a failed job: the root cause, if Flink gave one.
    pub failure: Option<String>,
}

impl ObservedJob {
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.state.as_str(),
            "FAILED" | "CANCELED" | "FINISHED" | "SUSPENDED"
        )
    }
}

/// Result of a savepoint or checkpoint trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerResult {
    InProgress,
    Completed {
        location: Option<String>,
    },
    Failed {
        cause: String,
    },
    /// Flink does not know the trigger (never sent, or the JobManager is gone).
    Unknown,
}

/// Everything observed about a resource, gathered before `decide`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    /// The resource's own cluster (FlinkDeployment) or its session cluster (FlinkSessionJob).
    pub cluster: Option<ClusterState>,
    /// The job the record names (in flight or running), if Flink knows it.
    pub job: Option<ObservedJob>,
    /// The in-flight trigger's result, when the record has one.
    pub trigger: Option<TriggerResult>,
    /// The newest retained checkpoint of the recorded job.
    pub latest_checkpoint: Option<String>,
}

/// Settings and the time, passed in.
#[derive(Debug, Clone)]
pub struct Context {
    /// Stop and remove resources that left Git (`--no-prune` clears it).
    pub prune: bool,
    /// Milliseconds since the epoch.
    pub now_ms: u64,
    /// For a session cluster: the session jobs whose records say they run on it.
    pub session_jobs: Vec<String>,
}

/// The next step for a resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// Nothing to do.
    Nothing,
    /// Something is in flight; observe again soon.
    Wait { what: String },
    /// Invalid manifest: record the error; the running deployment is left alone.
    Hold { message: String },
    /// Start the desired spec (a new cluster, or a job on the session cluster), restoring
    /// from `restore` if given. The job id is new for every attempt.
    Deploy {
        restore: Option<String>,
        rollback: bool,
    },
    /// Stop the running job.
    Stop {
        purpose: StopPurpose,
        mode: StopMode,
    },
    /// The stop finished: record the restore point (`savepoint`: it is a savepoint taken by
    /// the stop, to add to the history).
    FinishStop {
        purpose: StopPurpose,
        restore: Option<String>,
        savepoint: bool,
    },
    /// After a stop: remove the cluster (suspend, delete) and settle the record.
    Settle { purpose: StopPurpose },
    /// The job runs: the applied spec is stable.
    MarkStable,
    /// Record a spec change that needs no restart (ignore class, or while suspended).
    AcceptSpec,
    /// Trigger a manual savepoint or checkpoint for a nonce.
    TriggerSnapshot { nonce: i64, checkpoint: bool },
    /// A manual snapshot finished (or failed, then `location` is none and `error` says why).
    FinishSnapshot {
        location: Option<String>,
        error: Option<String>,
    },
    /// Something failed; record it and stop trying until the spec changes.
    Fail {
        reason: &'static str,
        message: String,
    },
    /// A session cluster changes: stop its session jobs, then redeploy it.
    RedeploySessionCluster { session_jobs: Vec<String> },
    /// Removed from Git but pruning is off: report, leave running.
    KeepUnmanaged,
    /// Removed from Git and nothing runs any more: mark the record deleted.
    MarkDeleted,
}

/// The nonce keys recorded in [`Record::nonces`].
pub const SAVEPOINT_NONCE: &str = "savepointTriggerNonce";
pub const CHECKPOINT_NONCE: &str = "checkpointTriggerNonce";

/// The nonce key of a manual snapshot: checkpoint or savepoint.
pub fn nonce_key(checkpoint: bool) -> &'static str {
    if checkpoint {
        CHECKPOINT_NONCE
    } else {
        SAVEPOINT_NONCE
    }
}

/// How to stop a job for a purpose, given the spec whose rules apply.
pub fn stop_mode(purpose: StopPurpose, spec: &Spec) -> StopMode {
    let mode = spec.upgrade_mode().unwrap_or_default();
    match purpose {
        StopPurpose::SavepointRedeploy => StopMode::Cancel,
        StopPurpose::Delete => {
            if takes_final_savepoint(spec) {
                StopMode::Savepoint
            } else if mode == UpgradeMode::LastState {
                StopMode::CancelKeepCheckpoint
            } else {
                StopMode::Cancel
            }
        }
        _ => match mode {
            UpgradeMode::Savepoint => StopMode::Savepoint,
            UpgradeMode::LastState => StopMode::CancelKeepCheckpoint,
            UpgradeMode::Stateless => StopMode::Cancel,
        },
    }
}

fn job_state(spec: &Spec) -> Option<JobState> {
    spec.job().map(|j| j.state)
}

fn readiness_timeout_ms(spec: &Spec) -> u64 {
    config::lookup(spec.flink_configuration(), &config::OP_READINESS_TIMEOUT)
        .and_then(|(_, v)| crate::flink::spec::quantity::parse_duration(v))
        .unwrap_or(config::DEFAULT_READINESS_TIMEOUT)
        .as_millis() as u64
}

fn rollback_enabled(spec: &Spec) -> bool {
    config::lookup_bool(
        spec.flink_configuration(),
        &config::OP_ROLLBACK_ENABLED,
        config::DEFAULT_ROLLBACK_ENABLED,
    )
}

fn since_ms(since: &str) -> Option<u64> {
    humantime::parse_rfc3339(since)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
}

/// The one next step. See the module docs.
pub fn decide(
    desired: &Desired<'_>,
    record: Option<&Record>,
    observed: &Observed,
    ctx: &Context,
) -> Step {
    // A step in flight finishes first, whatever Git says now.
    if let Some(rec) = record {
        if let Some(flight) = &rec.in_flight {
            return continue_in_flight(desired, rec, flight, observed, ctx);
        }
    }
    match desired {
        Desired::Invalid { message } => Step::Hold {
            message: message.clone(),
        },
        Desired::Absent => match record {
            None => Step::Nothing,
            Some(rec) if rec.deleted || rec.applied_spec.is_none() => Step::Nothing,
            Some(_) if !ctx.prune => Step::KeepUnmanaged,
            Some(rec) => removed(rec, observed, ctx),
        },
        Desired::Valid { spec, hash, .. } => match record {
            None => first_deploy(spec, None),
            Some(rec) if rec.deleted || rec.applied_spec.is_none() => first_deploy(spec, Some(rec)),
            Some(rec) => steady(spec, hash, rec, observed, ctx),
        },
    }
}

fn first_deploy(spec: &Spec, rec: Option<&Record>) -> Step {
    if job_state(spec) == Some(JobState::Suspended) {
        return Step::AcceptSpec;
    }
    let restore = spec
        .job()
        .and_then(|j| j.initial_savepoint_path.clone())
        .or_else(|| {
            rec.and_then(|r| r.restore_path.clone())
                .filter(|_| spec.upgrade_mode().is_some_and(UpgradeMode::is_stateful))
        });
    Step::Deploy {
        restore: restore.filter(|_| spec.job().is_some()),
        rollback: false,
    }
}

fn removed(rec: &Record, observed: &Observed, ctx: &Context) -> Step {
    let Some(applied) = rec.applied() else {
        return Step::MarkDeleted;
    };
    let running = observed.job.as_ref().is_some_and(|j| !j.is_terminal());
    match &applied {
        // Like the operator's block-on-session-jobs: the session jobs go first (each with
        // its final savepoint), the cluster after.
        Spec::Deployment(d) if d.is_session_cluster() && !ctx.session_jobs.is_empty() => {
            Step::Nothing
        }
        Spec::Deployment(d) if d.is_session_cluster() => Step::Settle {
            purpose: StopPurpose::Delete,
        },
        _ if rec.applied_suspended() || !running => Step::Settle {
            purpose: StopPurpose::Delete,
        },
        _ => Step::Stop {
            purpose: StopPurpose::Delete,
            mode: stop_mode(StopPurpose::Delete, &applied),
        },
    }
}

fn steady(spec: &Spec, hash: &SpecHash, rec: &Record, observed: &Observed, ctx: &Context) -> Step {
    let Some(applied) = rec.applied() else {
        return first_deploy(spec, Some(rec));
    };
    let session_cluster = matches!(spec, Spec::Deployment(d) if d.is_session_cluster());
    if rec.applied_spec_hash.as_ref() != Some(hash) {
        // A rolled-back spec stays rolled back until Git says something new.
        let (class, _) = classify(&applied, spec);
        let class = class.unwrap_or(ChangeClass::Ignore);
        if session_cluster {
            return if class >= ChangeClass::Scale {
                Step::RedeploySessionCluster {
                    session_jobs: ctx.session_jobs.clone(),
                }
            } else {
                Step::AcceptSpec
            };
        }
        let was = job_state(&applied).unwrap_or_default();
        let now = job_state(spec).unwrap_or_default();
        let running = observed.job.as_ref().is_some_and(|j| !j.is_terminal());
        return match (was, now) {
            (JobState::Suspended, JobState::Suspended) => Step::AcceptSpec,
            (JobState::Suspended, JobState::Running) => {
                let restore = if spec.upgrade_mode().is_some_and(UpgradeMode::is_stateful) {
                    rec.restore_path.clone()
                } else {
                    None
                };
                Step::Deploy {
                    restore,
                    rollback: false,
                }
            }
            (JobState::Running, JobState::Suspended) if running => Step::Stop {
                purpose: StopPurpose::Suspend,
                mode: stop_mode(StopPurpose::Suspend, spec),
            },
            (JobState::Running, JobState::Suspended) => Step::FinishStop {
                purpose: StopPurpose::Suspend,
                restore: observed
                    .latest_checkpoint
                    .clone()
                    .or_else(|| rec.restore_path.clone()),
                savepoint: false,
            },
            (JobState::Running, JobState::Running) => match class {
                ChangeClass::Ignore => Step::AcceptSpec,
                ChangeClass::Scale if can_rescale_in_place(spec) => Step::AcceptSpec,
                ChangeClass::SavepointRedeploy if running => Step::Stop {
                    purpose: StopPurpose::SavepointRedeploy,
                    mode: StopMode::Cancel,
                },
                ChangeClass::SavepointRedeploy => Step::Deploy {
                    restore: spec.job().and_then(|j| j.initial_savepoint_path.clone()),
                    rollback: false,
                },
                _ if running => Step::Stop {
                    purpose: StopPurpose::Upgrade,
                    mode: stop_mode(StopPurpose::Upgrade, spec),
                },
                // Not running (failed, finished, lost): restore from what is known.
                _ => {
                    let restore = newest_state(spec, rec, observed);
                    Step::Deploy {
                        restore,
                        rollback: false,
                    }
                }
            },
        };
    }

    // The applied spec is the desired one.
    if rec.applied_suspended() {
        return Step::Nothing;
    }
    // Rolled back: the stable spec runs; the failed one waits for a new change in Git.
    if rec.rollback.is_some() {
        return Step::Nothing;
    }
    // A failed deployment or job stays failed until the spec changes (or restartNonce).
    let job_alive = observed.job.as_ref().is_some_and(|j| !j.is_terminal());
    if rec.job_state.as_deref() == Some("FAILED") && rec.last_error.is_some() && !job_alive {
        return Step::Nothing;
    }
    match (&observed.cluster, &observed.job) {
        (Some(ClusterState::Missing) | Some(ClusterState::Exited { .. }), _)
            if spec.kind() == Kind::FlinkDeployment =>
        {
            // The cluster is gone while it should run: recover from the newest state.
            let restore = newest_state(spec, rec, observed);
            return Step::Deploy {
                restore,
                rollback: false,
            };
        }
        _ => {}
    }
    if session_cluster {
        return match observed.cluster {
            Some(ClusterState::Ready) if rec.stable_spec_hash.as_ref() != Some(hash) => {
                Step::MarkStable
            }
            _ => Step::Nothing,
        };
    }
    if spec.kind() == Kind::FlinkSessionJob && observed.cluster != Some(ClusterState::Ready) {
        return Step::Wait {
            what: "the session cluster to be ready".to_string(),
        };
    }
    match &observed.job {
        None => {
            // Known to the record but not to Flink (e.g. a session cluster was redeployed
            // behind our back): start it again from the newest state.
            let restore = newest_state(spec, rec, observed);
            Step::Deploy {
                restore,
                rollback: false,
            }
        }
        Some(job) if job.state == "FAILED" => {
            if rec.job_state.as_deref() == Some("FAILED") {
                Step::Nothing
            } else {
                Step::Fail {
                    reason: super::record::reason::JOB_FAILED,
                    message: job
                        .failure
                        .clone()
                        .unwrap_or_else(|| "the job failed".to_string()),
                }
            }
        }
        Some(job) if job.state == "RUNNING" && job.all_tasks_running => {
            if let Some(step) = nonce_trigger(spec, rec) {
                return step;
            }
            if rec.stable_spec_hash.as_ref() != Some(hash)
                || rec.job_state.as_deref() != Some("RUNNING")
            {
                Step::MarkStable
            } else {
                Step::Nothing
            }
        }
        Some(_) => Step::Nothing,
    }
}

/// Where a stateful job that is not running restarts from: its newest retained checkpoint,
/// else the recorded restore point; a stateless one starts empty.
fn newest_state(spec: &Spec, rec: &Record, observed: &Observed) -> Option<String> {
    if spec.upgrade_mode().is_some_and(UpgradeMode::is_stateful) {
        observed
            .latest_checkpoint
            .clone()
            .or_else(|| rec.restore_path.clone())
    } else {
        None
    }
}

fn nonce_trigger(spec: &Spec, rec: &Record) -> Option<Step> {
    let job = spec.job()?;
    if let Some(n) = job.savepoint_trigger_nonce {
        if rec.nonces.get(SAVEPOINT_NONCE) != Some(&n) {
            return Some(Step::TriggerSnapshot {
                nonce: n,
                checkpoint: false,
            });
        }
    }
    if let Some(n) = job.checkpoint_trigger_nonce {
        if rec.nonces.get(CHECKPOINT_NONCE) != Some(&n) {
            return Some(Step::TriggerSnapshot {
                nonce: n,
                checkpoint: true,
            });
        }
    }
    None
}

fn continue_in_flight(
    desired: &Desired<'_>,
    rec: &Record,
    flight: &InFlight,
    observed: &Observed,
    ctx: &Context,
) -> Step {
    match flight {
        InFlight::Stopping { mode, purpose, .. } => {
            let job_gone = observed.job.as_ref().is_none_or(ObservedJob::is_terminal);
            match mode {
                StopMode::Savepoint => match &observed.trigger {
                    Some(TriggerResult::Completed {
                        location: Some(loc),
                    }) => Step::FinishStop {
                        purpose: *purpose,
                        restore: Some(loc.clone()),
                        savepoint: true,
                    },
                    Some(TriggerResult::InProgress) => Step::Wait {
                        what: "the savepoint to complete".to_string(),
                    },
                    Some(TriggerResult::Failed { cause }) if !job_gone => Step::Fail {
                        reason: super::record::reason::SAVEPOINT_FAILED,
                        message: format!(
                            "stop with savepoint failed; the job keeps running: {cause}"
                        ),
                    },
                    _ if !job_gone => Step::Stop {
                        purpose: *purpose,
                        mode: *mode,
                    },
                    // Stopped but the savepoint cannot be found: fall back to the newest checkpoint.
                    _ => Step::FinishStop {
                        purpose: *purpose,
                        restore: observed
                            .latest_checkpoint
                            .clone()
                            .or_else(|| rec.restore_path.clone()),
                        savepoint: false,
                    },
                },
                StopMode::CancelKeepCheckpoint | StopMode::Cancel => {
                    if job_gone {
                        let restore = match (mode, purpose) {
                            // A rollback returns to the state the failed upgrade started from:
                            // checkpoints of the failed version may hold its bad state.
                            (_, StopPurpose::Rollback) => rec.restore_path.clone(),
                            (StopMode::CancelKeepCheckpoint, _) => observed
                                .latest_checkpoint
                                .clone()
                                .or_else(|| rec.restore_path.clone()),
                            _ => None,
                        };
                        Step::FinishStop {
                            purpose: *purpose,
                            restore,
                            savepoint: false,
                        }
                    } else {
                        Step::Wait {
                            what: "the job to cancel".to_string(),
                        }
                    }
                }
            }
        }
        InFlight::Stopped { purpose } => match purpose {
            StopPurpose::Suspend | StopPurpose::Delete => Step::Settle { purpose: *purpose },
            StopPurpose::ClusterRedeploy => {
                if observed.cluster == Some(ClusterState::Ready) {
                    let restore = rec.restore_path.clone().filter(|_| {
                        rec.applied()
                            .and_then(|s| s.upgrade_mode())
                            .is_some_and(UpgradeMode::is_stateful)
                    });
                    Step::Deploy {
                        restore,
                        rollback: false,
                    }
                } else {
                    Step::Wait {
                        what: "the session cluster to be ready".to_string(),
                    }
                }
            }
            StopPurpose::SavepointRedeploy => {
                let path = match desired {
                    Desired::Valid { spec, .. } => {
                        spec.job().and_then(|j| j.initial_savepoint_path.clone())
                    }
                    _ => None,
                };
                Step::Deploy {
                    restore: path,
                    rollback: false,
                }
            }
            StopPurpose::Rollback => Step::Deploy {
                restore: rec.restore_path.clone(),
                rollback: true,
            },
            StopPurpose::Upgrade => {
                // Desired may have moved on (or become invalid) meanwhile; start what Git
                // wants now if valid, else the applied spec.
                let spec_stateful = match desired {
                    Desired::Valid { spec, .. } => {
                        spec.upgrade_mode().is_some_and(UpgradeMode::is_stateful)
                    }
                    _ => rec
                        .applied()
                        .and_then(|s| s.upgrade_mode())
                        .is_some_and(UpgradeMode::is_stateful),
                };
                if let Desired::Valid { spec, .. } = desired {
                    if job_state(spec) == Some(JobState::Suspended) {
                        return Step::Settle {
                            purpose: StopPurpose::Suspend,
                        };
                    }
                }
                Step::Deploy {
                    restore: rec.restore_path.clone().filter(|_| spec_stateful),
                    rollback: false,
                }
            }
        },
        InFlight::Starting { job_id, since, .. } => {
            let applied = rec.applied();
            let session_cluster =
                matches!(&applied, Some(Spec::Deployment(d)) if d.is_session_cluster());
            if session_cluster {
                return match &observed.cluster {
                    Some(ClusterState::Ready) => Step::MarkStable,
                    Some(ClusterState::Exited { reason }) => Step::Fail {
                        reason: super::record::reason::DEPLOY_FAILED,
                        message: reason.clone(),
                    },
                    _ => Step::Wait {
                        what: "the session cluster to start".to_string(),
                    },
                };
            }
            match &observed.job {
                Some(job)
                    if &job.job_id == job_id && job.state == "RUNNING" && job.all_tasks_running =>
                {
                    Step::MarkStable
                }
                Some(job) if &job.job_id == job_id && job.is_terminal() => {
                    if let Some(step) = rollback_step(rec, observed, ctx) {
                        return step;
                    }
                    Step::Fail {
                        reason: super::record::reason::JOB_FAILED,
                        message: job
                            .failure
                            .clone()
                            .unwrap_or_else(|| format!("the job ended {}", job.state)),
                    }
                }
                _ => {
                    if let Some(ClusterState::Exited { reason }) = &observed.cluster {
                        if let Some(step) = rollback_step(rec, observed, ctx) {
                            return step;
                        }
                        return Step::Fail {
                            reason: super::record::reason::DEPLOY_FAILED,
                            message: reason.clone(),
                        };
                    }
                    let waited = since_ms(since)
                        .map(|s| ctx.now_ms.saturating_sub(s))
                        .unwrap_or(0);
                    if let Some(spec) = &applied {
                        if waited > readiness_timeout_ms(spec) {
                            if let Some(step) = rollback_step(rec, observed, ctx) {
                                return step;
                            }
                        }
                    }
                    Step::Wait {
                        what: "the job to run".to_string(),
                    }
                }
            }
        }
        InFlight::Snapshotting { .. } => match &observed.trigger {
            Some(TriggerResult::Completed { location }) => Step::FinishSnapshot {
                location: location.clone(),
                error: None,
            },
            Some(TriggerResult::Failed { cause }) => Step::FinishSnapshot {
                location: None,
                error: Some(cause.clone()),
            },
            Some(TriggerResult::Unknown) | None => Step::FinishSnapshot {
                location: None,
                error: Some(
                    "the trigger is unknown to Flink (the job may have restarted)".to_string(),
                ),
            },
            Some(TriggerResult::InProgress) => Step::Wait {
                what: "the snapshot to complete".to_string(),
            },
        },
    }
}

/// Roll back to the last stable spec when enabled, one is known, and it differs.
fn rollback_step(rec: &Record, observed: &Observed, _ctx: &Context) -> Option<Step> {
    let applied = rec.applied()?;
    if !rollback_enabled(&applied) || rec.rollback.is_some() {
        return None;
    }
    let stable = rec.stable()?;
    if rec.stable_spec_hash == rec.applied_spec_hash
        || job_state(&stable) == Some(JobState::Suspended)
    {
        return None;
    }
    if let (Spec::Deployment(a), Spec::Deployment(s)) = (&applied, &stable) {
        if a.flink_version != s.flink_version {
            return None;
        }
    }
    let running = observed.job.as_ref().is_some_and(|j| !j.is_terminal());
    if running {
        Some(Step::Stop {
            purpose: StopPurpose::Rollback,
            mode: StopMode::Cancel,
        })
    } else {
        Some(Step::FinishStop {
            purpose: StopPurpose::Rollback,
            restore: rec.restore_path.clone(),
            savepoint: false,
        })
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
