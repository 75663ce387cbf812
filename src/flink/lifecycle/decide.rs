//! `decide`: from what Git wants, what the agent recorded and what Flink shows, the one
//! next step for a resource. Pure: no I/O, no clock, no randomness (the time and fresh ids
//! come in [`Context`]).
//!
//! The executor calls it in a loop: observe, decide, act, record, until it answers
//! [`Step::Nothing`], [`Step::Wait`] or [`Step::Unreachable`]. Each [`Step`] carries
//! everything the executor needs to carry it out (the spec, the job id, the restore path,
//! the trigger id); the record before and after it comes from [`super::transition`]. `plan`
//! runs the same function over a predicted observation ([`super::simulate`]), so the plan
//! prints the steps the agent will take.
//!
//! *Guarantees*: nothing destructive (a deploy over a cluster that may run, a resubmit, a
//! cancel, a delete) is decided on [`Evidence::Unknown`]; a step in flight finishes before
//! a new spec is looked at.

use std::collections::BTreeMap;

use serde::Serialize;

use super::health::{self, Health};
use super::observe::{ClusterState, Evidence, Observed, ObservedJob, TriggerResult};
use super::record::{reason, InFlight, Record, RollbackState, StopMode, StopPurpose};
use super::snapshots;
use super::spec_diff::classify;
use super::{can_rescale_in_place, parallelism_overrides, takes_final_savepoint, DiffType};
use crate::config;
use crate::flink::rest::{JobStatus, SavepointFormat};
use crate::flink::spec::{JobState, Kind, ResourceKey, Spec, SpecHash, UpgradeMode};

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

/// A session job as its session cluster's decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionJobRef {
    pub name: String,
    /// Its job is not running: stopped for the redeploy, suspended, or never started.
    pub stopped: bool,
}

/// Settings, the time and fresh ids, passed in.
#[derive(Debug, Clone)]
pub struct Context {
    /// Stop and remove resources that left Git (`--no-prune` clears it).
    pub prune: bool,
    /// Milliseconds since the epoch.
    pub now_ms: u64,
    /// A job id (32 hex digits) for a new deployment attempt, used if one starts.
    pub fresh_job_id: String,
    /// A trigger id for a savepoint or checkpoint, used if one is taken.
    pub fresh_trigger_id: String,
    /// For a session cluster: the session jobs whose records say they run on it.
    pub session_jobs: Vec<SessionJobRef>,
    /// For a session job: its session cluster waits to be redeployed, so the job must stop
    /// (and must not start on the old cluster).
    pub cluster_redeploy_pending: bool,
    /// How long a new deployment's job must run with all of its tasks before it is STABLE,
    /// in milliseconds, unless the spec sets [`config::STABILITY_WINDOW`] (the agent's
    /// `--stability-window`).
    pub stability_window_ms: u64,
    /// The resource's drift policy and ignore rules, and what drift detection needs from
    /// the other records ([`super::drift`]).
    pub drift: super::drift::DriftContext,
}

/// What to start: a spec, with everything the runtime and REST API need.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployStep {
    pub spec: Spec,
    pub hash: SpecHash,
    /// The revision `spec` comes from; none when it is the one already reconciled.
    pub revision: Option<String>,
    /// 32 hex digits; none for a session cluster.
    pub job_id: Option<String>,
    /// Savepoint or checkpoint to start from.
    pub restore: Option<String>,
    /// A rollback to the last stable spec.
    pub rollback: bool,
    /// The same attempt again (same job id): the first try was never seen to arrive.
    pub retry: bool,
}

/// How to stop a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StopStep {
    pub purpose: StopPurpose,
    pub mode: StopMode,
    pub job_id: String,
    /// Set when stopping with a savepoint: Flink takes a caller-chosen trigger id, which
    /// makes the stop idempotent and its savepoint findable after a crash.
    pub trigger_id: Option<String>,
    /// Drain the pipeline before the savepoint (`kubernetes.operator.job.drain-on-savepoint-deletion`).
    pub drain: bool,
    pub format: SavepointFormat,
}

/// The next step for a resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// Nothing to do.
    Nothing,
    /// Something is in flight; observe again soon.
    Wait { what: String },
    /// Flink or the runtime did not answer: record it, do nothing destructive, retry with
    /// backoff.
    Unreachable { error: String },
    /// Invalid manifest: record the error; the running deployment is left alone.
    Hold { message: String },
    /// Start a spec (a new cluster, or a job on the session cluster).
    Deploy(Box<DeployStep>),
    /// Stop the running job.
    Stop(StopStep),
    /// The stop finished: record the restore point (`savepoint`: taken by the stop).
    FinishStop {
        purpose: StopPurpose,
        restore: Option<String>,
        savepoint: bool,
    },
    /// After a stop: remove the cluster (suspend, delete) and settle the record.
    Settle {
        purpose: StopPurpose,
        /// Remove the resource's own cluster (FlinkDeployments).
        delete_cluster: bool,
        /// The spec to record as reconciled (a suspend from Git); none for a removal.
        spec: Option<Box<Spec>>,
        revision: Option<String>,
    },
    /// The job runs (or the session cluster is ready): the reconciled spec is stable.
    MarkStable,
    /// Record a spec change that needs no restart. `stable`: the job already runs it.
    AcceptSpec {
        spec: Box<Spec>,
        revision: String,
        stable: bool,
    },
    /// Rescale the running job in place (adaptive scheduler): vertex id to parallelism.
    Rescale {
        spec: Box<Spec>,
        revision: String,
        job_id: String,
        parallelism: BTreeMap<String, u32>,
    },
    /// Trigger a savepoint or checkpoint: for a nonce, or on the periodic schedule
    /// (`periodic`, nonce 0; see [`super::snapshots`]).
    TriggerSnapshot {
        job_id: String,
        trigger_id: String,
        nonce: i64,
        checkpoint: bool,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        periodic: bool,
        format: SavepointFormat,
    },
    /// A snapshot finished (or failed, then `location` is none and `error` says why).
    FinishSnapshot {
        location: Option<String>,
        error: Option<String>,
    },
    /// The reconciled spec did not become stable: record why and that a rollback to the
    /// last stable spec begins (ROLLING_BACK), before anything is stopped.
    BeginRollback {
        reason: &'static str,
        message: String,
    },
    /// The health check found the running job unhealthy: record why (reason
    /// `UnhealthyJob`) before it is restarted from its newest state.
    ReportUnhealthy { message: String },
    /// Something failed; record it and stop trying until the spec changes.
    Fail {
        reason: &'static str,
        message: String,
    },
    /// Removed from Git but pruning is off: report, leave running.
    KeepUnmanaged,
    /// Removed from Git and nothing runs any more: mark the record deleted.
    MarkDeleted,
    /// The live state drifted from Git (or stopped drifting, `items` empty): record it
    /// ([`super::drift`]). `revision`: the Git revision the agent is at.
    RecordDrift {
        items: Vec<super::drift::DriftItem>,
        policy: super::drift::DriftPolicy,
        revision: String,
    },
    /// Cancel jobs on a session cluster that no manifest owns (drift policy `heal` with
    /// `flink-gitops.io/drift-unmanaged-jobs: cancel`).
    CancelUnmanaged { job_ids: Vec<String> },
}

impl Step {
    /// Whether carrying the step out calls Flink or the runtime (as opposed to writing the
    /// record only).
    pub fn is_external(&self) -> bool {
        match self {
            Step::Deploy(_)
            | Step::Stop(_)
            | Step::Rescale { .. }
            | Step::TriggerSnapshot { .. }
            | Step::CancelUnmanaged { .. } => true,
            Step::Settle { delete_cluster, .. } => *delete_cluster,
            _ => false,
        }
    }
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
        StopPurpose::SavepointRedeploy | StopPurpose::Rollback => StopMode::Cancel,
        // As the operator restarts an unhealthy job: last-state (a savepoint of a job that
        // keeps failing would likely fail too), stateless without state.
        StopPurpose::Restart => match mode {
            UpgradeMode::Stateless => StopMode::Cancel,
            _ => StopMode::CancelKeepCheckpoint,
        },
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

/// The savepoint format a spec asks for (`kubernetes.operator.savepoint.format.type`).
pub fn savepoint_format(spec: &Spec) -> SavepointFormat {
    match config::lookup(spec.flink_configuration(), &config::OP_SAVEPOINT_FORMAT) {
        Some((_, v)) if v.eq_ignore_ascii_case("NATIVE") => SavepointFormat::Native,
        _ => SavepointFormat::Canonical,
    }
}

fn drain_on_delete(spec: &Spec) -> bool {
    config::lookup_bool(
        spec.flink_configuration(),
        &config::OP_DRAIN_ON_SAVEPOINT_DELETION,
        false,
    )
}

pub(super) fn stop_step(
    purpose: StopPurpose,
    mode: StopMode,
    spec: &Spec,
    job_id: &str,
    ctx: &Context,
) -> Step {
    Step::Stop(StopStep {
        purpose,
        mode,
        job_id: job_id.to_string(),
        trigger_id: (mode == StopMode::Savepoint).then(|| ctx.fresh_trigger_id.clone()),
        drain: purpose == StopPurpose::Delete && drain_on_delete(spec),
        format: savepoint_format(spec),
    })
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

/// The stability window: the spec's [`config::STABILITY_WINDOW`], else the agent's.
fn stability_window_ms(spec: &Spec, ctx: &Context) -> u64 {
    config::lookup(spec.flink_configuration(), &config::STABILITY_WINDOW)
        .and_then(|(_, v)| crate::flink::spec::quantity::parse_duration(v))
        .map(|d| d.as_millis() as u64)
        .unwrap_or(ctx.stability_window_ms)
}

/// Whether the spec turns periodic checkpoints on (`execution.checkpointing.interval` set
/// and not zero), as the operator's health check reads it. A job whose own code turns
/// checkpointing on is not seen here: its stability does not wait for a checkpoint.
pub fn checkpointing_on(spec: &Spec) -> bool {
    config::lookup(spec.flink_configuration(), &config::CHECKPOINT_INTERVAL)
        .and_then(|(_, v)| crate::flink::spec::quantity::parse_duration(v))
        .is_some_and(|d| !d.is_zero())
}

/// `kubernetes.operator.job.restart.failed` (default false).
fn restart_failed(spec: &Spec) -> bool {
    config::lookup_bool(
        spec.flink_configuration(),
        &config::OP_RESTART_FAILED,
        config::DEFAULT_RESTART_FAILED,
    )
}

/// `kubernetes.operator.jm-deployment-recovery.enabled` (default true).
fn jm_recovery(spec: &Spec) -> bool {
    config::lookup_bool(
        spec.flink_configuration(),
        &config::OP_JM_RECOVERY,
        config::DEFAULT_JM_RECOVERY,
    )
}

fn since_ms(since: &str) -> Option<u64> {
    humantime::parse_rfc3339(since)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
}

fn unreachable(error: &str) -> Step {
    Step::Unreachable {
        error: error.to_string(),
    }
}

/// Whether the observed job runs (not ended). `Err` carries the step to take when Flink
/// could not say.
fn job_alive(observed: &Observed) -> Result<bool, Step> {
    match &observed.job {
        Evidence::Present { value } => Ok(!value.is_terminal()),
        Evidence::Absent => Ok(false),
        Evidence::Unknown { error } => Err(unreachable(error)),
    }
}

pub(super) fn deploy(
    spec: &Spec,
    revision: Option<&str>,
    restore: Option<String>,
    ctx: &Context,
) -> Step {
    Step::Deploy(Box::new(DeployStep {
        spec: spec.clone(),
        hash: spec.hash(),
        revision: revision.map(str::to_string),
        job_id: spec.job().map(|_| ctx.fresh_job_id.clone()),
        restore: restore.filter(|_| spec.job().is_some()),
        rollback: false,
        retry: false,
    }))
}

/// For a session cluster: the session jobs whose records say they run on it, and whether
/// each is stopped. For a session job: whether its session cluster waits to be redeployed
/// (Git wants a spec for it that differs by SCALE or more, and nothing is in flight for
/// it). Pure: from the records and what Git wants.
pub fn session_context(
    key: &ResourceKey,
    records: &BTreeMap<ResourceKey, Record>,
    desired_cluster: impl Fn(&ResourceKey) -> Option<Spec>,
) -> (Vec<SessionJobRef>, bool) {
    match key.kind {
        Kind::FlinkDeployment => {
            let jobs = records
                .values()
                .filter(|r| {
                    r.kind == Kind::FlinkSessionJob && !r.deleted && r.namespace == key.namespace
                })
                .filter(|r| {
                    matches!(&r.last_reconciled_spec, Some(Spec::SessionJob(s))
                        if s.deployment_name.as_deref() == Some(key.name.as_str()))
                })
                .map(|r| SessionJobRef {
                    name: r.name.clone(),
                    stopped: matches!(r.in_flight, Some(InFlight::Stopped { .. }))
                        || (r.in_flight.is_none()
                            && (r.reconciled_suspended()
                                || r.job_id.is_none()
                                || r.job_state.is_some_and(JobStatus::is_globally_terminal))),
                })
                .collect();
            (jobs, false)
        }
        Kind::FlinkSessionJob => {
            let cluster = match records
                .get(key)
                .and_then(|r| r.last_reconciled_spec.as_ref())
            {
                Some(Spec::SessionJob(s)) => s.deployment_name.clone(),
                _ => None,
            };
            let Some(name) = cluster else {
                return (Vec::new(), false);
            };
            let cluster_key = ResourceKey::new(key.namespace.clone(), Kind::FlinkDeployment, name);
            let pending = match (records.get(&cluster_key), desired_cluster(&cluster_key)) {
                (Some(rec), Some(want)) if rec.in_flight.is_none() => {
                    match &rec.last_reconciled_spec {
                        Some(applied @ Spec::Deployment(d))
                            if d.is_session_cluster()
                                && rec.last_reconciled_hash.as_ref() != Some(&want.hash()) =>
                        {
                            classify(applied, &want)
                                .0
                                .is_some_and(|t| t >= DiffType::Scale)
                        }
                        _ => false,
                    }
                }
                _ => false,
            };
            (Vec::new(), pending)
        }
    }
}

/// The one next step. See the module docs.
pub fn decide(
    desired: &Desired<'_>,
    record: Option<&Record>,
    observed: &Observed,
    ctx: &Context,
) -> Step {
    let step = next_step(desired, record, observed, ctx);
    match (step, record) {
        (Step::Deploy(mut d), Some(rec)) => {
            if let Some(id) = ha_job_id(&d, rec) {
                d.job_id = Some(id);
            }
            Step::Deploy(d)
        }
        (step, _) => step,
    }
}

/// The job id a deploy must keep: a cluster with high availability whose job never
/// reached a globally terminal state (it was stopped for a last-state upgrade, or its
/// JobManager was lost) left HA metadata keyed by that id, which the new JobManager
/// recovers; under a new id it would run a second job beside the recovered one. The
/// operator's rule (`$internal.pipeline.job-id`: a new id per deploy, unless a last-state
/// deploy with an existing id; FLINK-29109, FLINK-35831).
fn ha_job_id(d: &DeployStep, rec: &Record) -> Option<String> {
    let ha = |spec: &Spec| match spec {
        Spec::Deployment(dep) => config::lookup(&dep.flink_configuration, &config::HA_TYPE)
            .is_some_and(|(_, v)| !v.trim().is_empty() && !v.trim().eq_ignore_ascii_case("none")),
        Spec::SessionJob(_) => false,
    };
    let previous_left_ha_data = rec.last_reconciled_spec.as_ref().is_some_and(ha)
        && !rec.job_state.is_some_and(JobStatus::is_globally_terminal);
    (d.job_id.is_some() && !d.retry && ha(&d.spec) && previous_left_ha_data)
        .then(|| rec.job_id.clone())
        .flatten()
}

fn next_step(
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
            Some(rec) if rec.deleted || rec.last_reconciled_spec.is_none() => Step::Nothing,
            Some(_) if !ctx.prune => Step::KeepUnmanaged,
            Some(rec) => removed(rec, observed, ctx),
        },
        Desired::Valid {
            spec,
            hash,
            revision,
        } => match record {
            None => first_deploy(spec, revision, None, observed, ctx),
            Some(rec) if rec.deleted || rec.last_reconciled_spec.is_none() => {
                first_deploy(spec, revision, Some(rec), observed, ctx)
            }
            Some(rec) => steady(spec, hash, revision, rec, observed, ctx),
        },
    }
}

fn first_deploy(
    spec: &Spec,
    revision: &str,
    rec: Option<&Record>,
    observed: &Observed,
    ctx: &Context,
) -> Step {
    if job_state(spec) == Some(JobState::Suspended) {
        return Step::AcceptSpec {
            spec: Box::new(spec.clone()),
            revision: revision.to_string(),
            stable: true,
        };
    }
    if spec.kind() == Kind::FlinkSessionJob && observed.cluster.get() != Some(&ClusterState::Ready)
    {
        return Step::Wait {
            what: "the session cluster to be ready".to_string(),
        };
    }
    // A resource added back after a removal restores from the final state recorded then.
    let restore = spec
        .job()
        .and_then(|j| j.initial_savepoint_path.clone())
        .or_else(|| {
            rec.and_then(|r| r.restore_path.clone())
                .filter(|_| spec.upgrade_mode().is_some_and(UpgradeMode::is_stateful))
        });
    deploy(spec, Some(revision), restore, ctx)
}

fn removed(rec: &Record, observed: &Observed, ctx: &Context) -> Step {
    let Some(applied) = &rec.last_reconciled_spec else {
        return Step::MarkDeleted;
    };
    // A cluster known to be gone is not deleted again.
    let own_cluster = rec.kind == Kind::FlinkDeployment && observed.cluster != Evidence::Absent;
    let settle = Step::Settle {
        purpose: StopPurpose::Delete,
        delete_cluster: own_cluster,
        spec: None,
        revision: None,
    };
    match applied {
        // Like the operator's block-on-session-jobs: the session jobs go first (each with
        // its final savepoint), the cluster after.
        Spec::Deployment(d) if d.is_session_cluster() && !ctx.session_jobs.is_empty() => {
            Step::Wait {
                what: format!(
                    "session jobs {} to be removed first",
                    names(&ctx.session_jobs)
                ),
            }
        }
        Spec::Deployment(d) if d.is_session_cluster() => settle,
        _ if rec.reconciled_suspended() => settle,
        _ => {
            let running = match job_alive(observed) {
                Ok(r) => r,
                Err(step) => return step,
            };
            match (running, &rec.job_id) {
                (true, Some(job_id)) => stop_step(
                    StopPurpose::Delete,
                    stop_mode(StopPurpose::Delete, applied),
                    applied,
                    job_id,
                    ctx,
                ),
                _ => {
                    // Nothing runs: keep the newest checkpoint as the final state when the
                    // job was stateful (a re-addition restores from it).
                    if applied.upgrade_mode().is_some_and(UpgradeMode::is_stateful) {
                        if let Some(e) = observed.latest_checkpoint.error() {
                            return unreachable(e);
                        }
                        if let Some(cp) = observed.latest_checkpoint.get() {
                            if rec.restore_path.as_ref() != Some(cp) {
                                return Step::FinishStop {
                                    purpose: StopPurpose::Delete,
                                    restore: Some(cp.clone()),
                                    savepoint: false,
                                };
                            }
                        }
                    }
                    settle
                }
            }
        }
    }
}

fn names(jobs: &[SessionJobRef]) -> String {
    jobs.iter()
        .map(|j| j.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn steady(
    spec: &Spec,
    hash: &SpecHash,
    revision: &str,
    rec: &Record,
    observed: &Observed,
    ctx: &Context,
) -> Step {
    let Some(applied) = &rec.last_reconciled_spec else {
        return first_deploy(spec, revision, Some(rec), observed, ctx);
    };
    let session_cluster = matches!(spec, Spec::Deployment(d) if d.is_session_cluster());
    // A rollback that began finishes first: the stable spec runs again before anything
    // else is applied (the operator aborts it for a new spec; finishing it keeps the state
    // taken before the failed spec, which the new spec then upgrades from).
    if rec.rollback == Some(RollbackState::RollingBack) {
        return continue_rollback(rec, applied, observed, ctx);
    }
    if rec.last_reconciled_hash.as_ref() != Some(hash) {
        // Rolled back: the stable spec runs, so a new spec is judged against it (the
        // operator's getDeployedSpec while ROLLED_BACK).
        let running = match (&rec.rollback, &rec.last_stable_spec) {
            (Some(RollbackState::RolledBack), Some(stable)) => stable,
            _ => applied,
        };
        return spec_changed(spec, revision, running, rec, observed, ctx);
    }

    // The reconciled spec is the desired one.
    if rec.reconciled_suspended() {
        return Step::Nothing;
    }
    // Rolled back: the stable spec runs; the failed one waits for a new change in Git.
    if rec.rollback.is_some() {
        return Step::Nothing;
    }
    // A session job whose session cluster is about to be redeployed stops first.
    if ctx.cluster_redeploy_pending && spec.kind() == Kind::FlinkSessionJob {
        return match (job_alive(observed), &rec.job_id) {
            (Err(step), _) => step,
            (Ok(true), Some(job_id)) => stop_step(
                StopPurpose::ClusterRedeploy,
                stop_mode(StopPurpose::ClusterRedeploy, spec),
                spec,
                job_id,
                ctx,
            ),
            _ => Step::Wait {
                what: "the session cluster to be redeployed".to_string(),
            },
        };
    }
    // A failed deployment or job stays failed until the spec changes, unless
    // `job.restart.failed` restarts a failed job (the operator's
    // AbstractJobReconciler.reconcileOtherChanges) from its newest state (FLINK-35857).
    if rec.job_state == Some(JobStatus::Failed) && rec.last_error.is_some() {
        let alive = observed.job.get().is_some_and(|j| !j.is_terminal());
        if !alive {
            let job_failed = rec
                .last_error
                .as_ref()
                .is_some_and(|e| e.reason == reason::JOB_FAILED);
            if !(job_failed && restart_failed(applied)) {
                return Step::Nothing;
            }
            if let Evidence::Unknown { error } = &observed.cluster {
                return unreachable(error);
            }
            if spec.kind() == Kind::FlinkSessionJob
                && observed.cluster.get() != Some(&ClusterState::Ready)
            {
                return Step::Wait {
                    what: "the session cluster to be ready".to_string(),
                };
            }
            return match newest_state(applied, rec, observed) {
                Ok(restore) => deploy(applied, None, restore, ctx),
                Err(step) => step,
            };
        }
    }
    match &observed.cluster {
        Evidence::Unknown { error } => return unreachable(error),
        Evidence::Absent
        | Evidence::Present {
            value: ClusterState::Exited { .. },
        } if spec.kind() == Kind::FlinkDeployment => {
            // The JobManager is gone while it should run (the operator's
            // AbstractFlinkDeploymentReconciler JM deployment recovery): recover it from the
            // newest state, unless recovery is off; then it is reported as lost.
            if !jm_recovery(applied) {
                let why = match &observed.cluster {
                    Evidence::Present {
                        value: ClusterState::Exited { reason: why },
                    } => format!("the JobManager exited ({why})"),
                    _ => "the JobManager is missing".to_string(),
                };
                return Step::Fail {
                    reason: reason::CLUSTER_LOST,
                    message: format!(
                        "{why}; not recovered because kubernetes.operator.jm-deployment-recovery.enabled is false"
                    ),
                };
            }
            return match newest_state(spec, rec, observed) {
                Ok(restore) => deploy(spec, None, restore, ctx),
                Err(step) => step,
            };
        }
        _ => {}
    }
    // Drift of a resource at rest: recorded, and put back under the `heal` policy.
    if let Some(step) = super::drift::at_rest(spec, revision, rec, observed, ctx) {
        return step;
    }
    if session_cluster {
        return match observed.cluster.get() {
            Some(ClusterState::Ready)
                if rec.last_stable_hash.as_ref() != Some(hash) || rec.unreachable.is_some() =>
            {
                Step::MarkStable
            }
            _ => Step::Nothing,
        };
    }
    if spec.kind() == Kind::FlinkSessionJob && observed.cluster.get() != Some(&ClusterState::Ready)
    {
        return Step::Wait {
            what: "the session cluster to be ready".to_string(),
        };
    }
    // The cluster health check (the operator's ClusterHealthEvaluator, FD and FSJ here):
    // an unhealthy job that has not ended is restarted from its newest state.
    if let (Some(job), Some(hs)) = (
        observed.job.get().filter(|j| !j.is_terminal()),
        health::settings(applied).filter(|_| jm_recovery(applied)),
    ) {
        if let Health::Unhealthy(why) = health::evaluate(&observed.health, ctx.now_ms, &hs) {
            let noted = rec
                .last_error
                .as_ref()
                .is_some_and(|e| e.reason == reason::UNHEALTHY);
            if !noted {
                return Step::ReportUnhealthy { message: why };
            }
            return stop_step(
                StopPurpose::Restart,
                stop_mode(StopPurpose::Restart, applied),
                applied,
                &job.job_id,
                ctx,
            );
        }
    }
    match &observed.job {
        Evidence::Unknown { error } => unreachable(error),
        // Known to the record but not to Flink, which answered (e.g. a session cluster was
        // redeployed behind our back): start it again from the newest state.
        Evidence::Absent => match newest_state(spec, rec, observed) {
            Ok(restore) => deploy(spec, None, restore, ctx),
            Err(step) => step,
        },
        Evidence::Present { value: job } if job.state == JobStatus::Failed => {
            if rec.job_state == Some(JobStatus::Failed) {
                Step::Nothing
            } else {
                Step::Fail {
                    reason: reason::JOB_FAILED,
                    message: job
                        .failure
                        .clone()
                        .unwrap_or_else(|| "the job failed".to_string()),
                }
            }
        }
        Evidence::Present { value: job } if job.is_running() => {
            if let Some(step) = nonce_trigger(spec, rec, job, ctx) {
                return step;
            }
            if let Some(step) =
                snapshots::periodic_trigger(spec, rec, job, ctx.now_ms, &ctx.fresh_trigger_id)
            {
                return step;
            }
            if rec.last_stable_hash.as_ref() != Some(hash)
                || rec.job_state != Some(JobStatus::Running)
                || rec.unreachable.is_some()
            {
                Step::MarkStable
            } else {
                Step::Nothing
            }
        }
        Evidence::Present { .. } => {
            if rec.unreachable.is_some() {
                // Flink answers again: clear the unreachable note, keep watching.
                Step::MarkStable
            } else {
                Step::Nothing
            }
        }
    }
}

/// Git wants a different spec than the one reconciled.
fn spec_changed(
    spec: &Spec,
    revision: &str,
    applied: &Spec,
    rec: &Record,
    observed: &Observed,
    ctx: &Context,
) -> Step {
    let (diff, _) = classify(applied, spec);
    let diff = diff.unwrap_or(DiffType::Ignore);
    let accept = |stable: bool| Step::AcceptSpec {
        spec: Box::new(spec.clone()),
        revision: revision.to_string(),
        stable,
    };
    if matches!(spec, Spec::Deployment(d) if d.is_session_cluster()) {
        if diff < DiffType::Scale {
            return accept(true);
        }
        // Redeploy the session cluster once its session jobs are stopped.
        let running: Vec<SessionJobRef> = ctx
            .session_jobs
            .iter()
            .filter(|j| !j.stopped)
            .cloned()
            .collect();
        if !running.is_empty() {
            return Step::Wait {
                what: format!(
                    "session jobs {} to stop before the session cluster is redeployed",
                    names(&running)
                ),
            };
        }
        return deploy(spec, Some(revision), None, ctx);
    }
    let was = job_state(applied).unwrap_or_default();
    let now = job_state(spec).unwrap_or_default();
    // Only a change that touches the job needs to know whether it runs.
    let running = || job_alive(observed);
    match (was, now) {
        (JobState::Suspended, JobState::Suspended) => accept(true),
        (JobState::Suspended, JobState::Running) => {
            let restore = match diff {
                DiffType::SavepointRedeploy => {
                    spec.job().and_then(|j| j.initial_savepoint_path.clone())
                }
                // Never ran (added suspended): a first start, from initialSavepointPath, as
                // the operator starts a spec it has not deployed yet.
                _ if rec.job_id.is_none() && rec.restore_path.is_none() => {
                    spec.job().and_then(|j| j.initial_savepoint_path.clone())
                }
                _ if spec.upgrade_mode().is_some_and(UpgradeMode::is_stateful) => {
                    rec.restore_path.clone()
                }
                _ => None,
            };
            if spec.kind() == Kind::FlinkSessionJob
                && (ctx.cluster_redeploy_pending
                    || observed.cluster.get() != Some(&ClusterState::Ready))
            {
                return Step::Wait {
                    what: "the session cluster to be ready".to_string(),
                };
            }
            deploy(spec, Some(revision), restore, ctx)
        }
        (JobState::Running, JobState::Suspended) => match running() {
            Err(step) => step,
            Ok(true) => {
                let mode = if diff == DiffType::SavepointRedeploy {
                    StopMode::Cancel
                } else {
                    stop_mode_for_change(StopPurpose::Suspend, applied, spec)
                };
                stop_with(StopPurpose::Suspend, mode, spec, rec, ctx)
            }
            Ok(false) => match newest_state(spec, rec, observed) {
                Ok(restore) if restore != rec.restore_path => Step::FinishStop {
                    purpose: StopPurpose::Suspend,
                    restore,
                    savepoint: false,
                },
                Ok(_) => Step::Settle {
                    purpose: StopPurpose::Suspend,
                    delete_cluster: spec.kind() == Kind::FlinkDeployment,
                    spec: Some(Box::new(spec.clone())),
                    revision: Some(revision.to_string()),
                },
                Err(step) => step,
            },
        },
        (JobState::Running, JobState::Running) => match diff {
            DiffType::Ignore => match observed.job.get() {
                // Nonces are acted on once the new spec is recorded.
                Some(job) if job.is_running() => accept(true),
                _ => accept(false),
            },
            DiffType::Scale if can_rescale_in_place(applied, spec) => {
                match (&observed.job, &rec.job_id) {
                    (Evidence::Unknown { error }, _) => unreachable(error),
                    (Evidence::Present { value: job }, Some(job_id)) if job.is_running() => {
                        Step::Rescale {
                            spec: Box::new(spec.clone()),
                            revision: revision.to_string(),
                            job_id: job_id.clone(),
                            parallelism: parallelism_overrides(spec),
                        }
                    }
                    // Not running: nothing to rescale; the upgrade path restarts it.
                    _ => upgrade(spec, revision, applied, rec, observed, ctx),
                }
            }
            DiffType::SavepointRedeploy => match running() {
                Err(step) => step,
                Ok(true) => stop_with(
                    StopPurpose::SavepointRedeploy,
                    StopMode::Cancel,
                    spec,
                    rec,
                    ctx,
                ),
                Ok(false) => deploy(
                    spec,
                    Some(revision),
                    spec.job().and_then(|j| j.initial_savepoint_path.clone()),
                    ctx,
                ),
            },
            _ => upgrade(spec, revision, applied, rec, observed, ctx),
        },
    }
}

fn upgrade(
    spec: &Spec,
    revision: &str,
    applied: &Spec,
    rec: &Record,
    observed: &Observed,
    ctx: &Context,
) -> Step {
    match job_alive(observed) {
        Err(step) => step,
        Ok(true) => {
            let mode = stop_mode_for_change(StopPurpose::Upgrade, applied, spec);
            stop_with(StopPurpose::Upgrade, mode, spec, rec, ctx)
        }
        // Not running (failed, finished, lost): restore from what is known.
        Ok(false) => {
            if spec.kind() == Kind::FlinkSessionJob
                && observed.cluster.get() != Some(&ClusterState::Ready)
            {
                return Step::Wait {
                    what: "the session cluster to be ready".to_string(),
                };
            }
            match newest_state(spec, rec, observed) {
                Ok(restore) => deploy(spec, Some(revision), restore, ctx),
                Err(step) => step,
            }
        }
    }
}

fn stop_with(
    purpose: StopPurpose,
    mode: StopMode,
    spec: &Spec,
    rec: &Record,
    ctx: &Context,
) -> Step {
    match &rec.job_id {
        Some(job_id) => stop_step(purpose, mode, spec, job_id, ctx),
        None => Step::FinishStop {
            purpose,
            restore: rec.restore_path.clone(),
            savepoint: false,
        },
    }
}

/// The mode a running job is stopped with for a spec change: the new spec's upgrade mode,
/// except that a last-state job whose `flinkVersion` changes is stopped with a savepoint
/// when a savepoint directory is set, because HA metadata may not carry over between Flink
/// versions (the operator's `AbstractJobReconciler.getJobUpgrade`).
fn stop_mode_for_change(purpose: StopPurpose, old: &Spec, new: &Spec) -> StopMode {
    let mode = stop_mode(purpose, new);
    let version_changes = match (old, new) {
        (Spec::Deployment(o), Spec::Deployment(n)) => o.flink_version != n.flink_version,
        _ => false,
    };
    if mode == StopMode::CancelKeepCheckpoint
        && version_changes
        && config::lookup(new.flink_configuration(), &config::SAVEPOINTS_DIR).is_some()
    {
        StopMode::Savepoint
    } else {
        mode
    }
}

/// Where a stateful job that is not running restarts from: its newest retained checkpoint,
/// else the recorded restore point; a stateless one starts empty. `Err` when the newest
/// checkpoint could not be asked for: restoring an older state would lose progress.
pub(super) fn newest_state(
    spec: &Spec,
    rec: &Record,
    observed: &Observed,
) -> Result<Option<String>, Step> {
    if !spec.upgrade_mode().is_some_and(UpgradeMode::is_stateful) {
        return Ok(None);
    }
    match &observed.latest_checkpoint {
        Evidence::Present { value } => Ok(Some(value.clone())),
        Evidence::Absent => Ok(rec.restore_path.clone()),
        Evidence::Unknown { error } => Err(unreachable(error)),
    }
}

fn nonce_trigger(spec: &Spec, rec: &Record, job: &ObservedJob, ctx: &Context) -> Option<Step> {
    let j = spec.job()?;
    let snapshot = |nonce: i64, checkpoint: bool| Step::TriggerSnapshot {
        job_id: job.job_id.clone(),
        trigger_id: ctx.fresh_trigger_id.clone(),
        nonce,
        checkpoint,
        periodic: false,
        format: savepoint_format(spec),
    };
    // A failed try of the same kind waits for its backoff (snapshots::may_trigger).
    if let Some(n) = j.savepoint_trigger_nonce {
        if rec.nonces.get(SAVEPOINT_NONCE) != Some(&n)
            && snapshots::may_trigger(rec, false, ctx.now_ms)
        {
            return Some(snapshot(n, false));
        }
    }
    if let Some(n) = j.checkpoint_trigger_nonce {
        if rec.nonces.get(CHECKPOINT_NONCE) != Some(&n)
            && snapshots::may_trigger(rec, true, ctx.now_ms)
        {
            return Some(snapshot(n, true));
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
    let Some(applied) = rec.last_reconciled_spec.as_ref() else {
        return Step::Fail {
            reason: reason::DEPLOY_FAILED,
            message: "a step is in flight but no spec is recorded".to_string(),
        };
    };
    match flight {
        InFlight::Stopping {
            mode,
            purpose,
            job_id,
            trigger_id,
            ..
        } => {
            let resend = || {
                Step::Stop(StopStep {
                    purpose: *purpose,
                    mode: *mode,
                    job_id: job_id.clone(),
                    trigger_id: trigger_id.clone(),
                    drain: *purpose == StopPurpose::Delete && drain_on_delete(applied),
                    format: savepoint_format(applied),
                })
            };
            let alive = match job_alive(observed) {
                Ok(a) => a,
                Err(step) => return step,
            };
            match mode {
                StopMode::Savepoint => match &observed.trigger {
                    Evidence::Present {
                        value:
                            TriggerResult::Completed {
                                location: Some(loc),
                            },
                    } => Step::FinishStop {
                        purpose: *purpose,
                        restore: Some(loc.clone()),
                        savepoint: true,
                    },
                    Evidence::Present {
                        value: TriggerResult::InProgress,
                    } => Step::Wait {
                        what: "the savepoint to complete".to_string(),
                    },
                    Evidence::Present {
                        value: TriggerResult::Failed { cause },
                    } if alive => Step::Fail {
                        reason: reason::SAVEPOINT_FAILED,
                        message: format!(
                            "stop with savepoint failed; the job keeps running: {cause}"
                        ),
                    },
                    Evidence::Unknown { error } => unreachable(error),
                    // Flink does not know the trigger but the job runs: the stop never
                    // arrived (the agent stopped before sending it). Send it again, with
                    // the same trigger id.
                    _ if alive => resend(),
                    // Stopped but the savepoint cannot be found: the newest checkpoint.
                    _ => match &observed.latest_checkpoint {
                        Evidence::Unknown { error } => unreachable(error),
                        cp => Step::FinishStop {
                            purpose: *purpose,
                            restore: cp.get().cloned().or_else(|| rec.restore_path.clone()),
                            savepoint: false,
                        },
                    },
                },
                StopMode::CancelKeepCheckpoint | StopMode::Cancel => {
                    if alive {
                        // Cancel is idempotent: ask again until the job has ended.
                        return resend();
                    }
                    let restore = match (mode, purpose) {
                        // A rollback returns to the state the failed upgrade started from:
                        // checkpoints of the failed version may hold its bad state.
                        (_, StopPurpose::Rollback) => rec.restore_path.clone(),
                        (StopMode::CancelKeepCheckpoint, _) => match &observed.latest_checkpoint {
                            Evidence::Unknown { error } => return unreachable(error),
                            cp => cp.get().cloned().or_else(|| rec.restore_path.clone()),
                        },
                        _ => None,
                    };
                    Step::FinishStop {
                        purpose: *purpose,
                        restore,
                        savepoint: false,
                    }
                }
            }
        }
        InFlight::Stopped { purpose } => stopped(desired, rec, applied, *purpose, observed, ctx),
        InFlight::Starting {
            job_id,
            since,
            restore,
        } => starting(rec, applied, job_id, since, restore, observed, ctx),
        InFlight::Rescaling {
            job_id,
            parallelism,
            since,
        } => {
            match &observed.job {
                Evidence::Unknown { error } => unreachable(error),
                Evidence::Present { value: job }
                    if job.is_running()
                        && job.vertex_parallelism.as_ref().is_some_and(|v| {
                            parallelism.iter().all(|(id, p)| v.get(id) == Some(p))
                        }) =>
                {
                    Step::MarkStable
                }
                Evidence::Present { value: job } if job.is_terminal() => Step::Fail {
                    reason: reason::RESCALE_FAILED,
                    message: format!("the job ended {:?} while rescaling", job.state),
                },
                // The request may never have reached Flink (the agent stopped between recording
                // it and sending it): send it again; Flink keeps requirements that already match.
                Evidence::Present { value: job }
                    if job.vertex_parallelism.as_ref().is_some_and(|v| {
                        parallelism.iter().any(|(id, p)| v.get(id) != Some(p))
                    }) && !rescale_sent_recently(since, ctx) =>
                {
                    Step::Rescale {
                        spec: Box::new(applied.clone()),
                        revision: rec.last_reconciled_revision.clone().unwrap_or_default(),
                        job_id: job_id.clone(),
                        parallelism: parallelism.clone(),
                    }
                }
                Evidence::Absent => Step::Fail {
                    reason: reason::RESCALE_FAILED,
                    message: format!("job {job_id} is gone while rescaling"),
                },
                _ => {
                    let waited = since_ms(since)
                        .map(|s| ctx.now_ms.saturating_sub(s))
                        .unwrap_or(0);
                    if waited > readiness_timeout_ms(applied) {
                        Step::Fail {
                        reason: reason::RESCALE_FAILED,
                        message: format!(
                            "the vertices did not reach parallelism {parallelism:?} within the readiness timeout"
                        ),
                    }
                    } else {
                        Step::Wait {
                            what: "the vertices to run at the new parallelism".to_string(),
                        }
                    }
                }
            }
        }
        InFlight::Snapshotting {
            job_id,
            trigger_id,
            nonce,
            checkpoint,
            periodic,
            ..
        } => match &observed.trigger {
            Evidence::Present {
                value: TriggerResult::Completed { location },
            } => Step::FinishSnapshot {
                location: location.clone(),
                error: None,
            },
            Evidence::Present {
                value: TriggerResult::Failed { cause },
            } => Step::FinishSnapshot {
                location: None,
                error: Some(cause.clone()),
            },
            Evidence::Present {
                value: TriggerResult::InProgress,
            } => Step::Wait {
                what: "the snapshot to complete".to_string(),
            },
            Evidence::Unknown { error } => unreachable(error),
            Evidence::Absent => match job_alive(observed) {
                Err(step) => step,
                // Never arrived: trigger again with the same id.
                Ok(true) => Step::TriggerSnapshot {
                    job_id: job_id.clone(),
                    trigger_id: trigger_id.clone(),
                    nonce: *nonce,
                    checkpoint: *checkpoint,
                    periodic: *periodic,
                    format: savepoint_format(applied),
                },
                Ok(false) => Step::FinishSnapshot {
                    location: None,
                    error: Some(
                        "the trigger is unknown to Flink and the job no longer runs".to_string(),
                    ),
                },
            },
        },
    }
}

fn stopped(
    desired: &Desired<'_>,
    rec: &Record,
    applied: &Spec,
    purpose: StopPurpose,
    observed: &Observed,
    ctx: &Context,
) -> Step {
    let own_cluster = rec.kind == Kind::FlinkDeployment && observed.cluster != Evidence::Absent;
    match purpose {
        StopPurpose::Delete => Step::Settle {
            purpose,
            delete_cluster: own_cluster,
            spec: None,
            revision: None,
        },
        StopPurpose::Suspend => {
            let (spec, revision) = match desired {
                Desired::Valid { spec, revision, .. }
                    if job_state(spec) == Some(JobState::Suspended) =>
                {
                    (Some(Box::new((*spec).clone())), Some(revision.to_string()))
                }
                _ => (None, None),
            };
            Step::Settle {
                purpose,
                delete_cluster: own_cluster,
                spec,
                revision,
            }
        }
        StopPurpose::ClusterRedeploy => {
            if ctx.cluster_redeploy_pending || observed.cluster.get() != Some(&ClusterState::Ready)
            {
                return Step::Wait {
                    what: "the session cluster to be redeployed".to_string(),
                };
            }
            let restore = rec
                .restore_path
                .clone()
                .filter(|_| applied.upgrade_mode().is_some_and(UpgradeMode::is_stateful));
            deploy(applied, None, restore, ctx)
        }
        StopPurpose::SavepointRedeploy => {
            let (spec, revision) = match desired {
                Desired::Valid { spec, revision, .. } => (*spec, Some(*revision)),
                _ => (applied, None),
            };
            let path = spec.job().and_then(|j| j.initial_savepoint_path.clone());
            deploy(spec, revision, path, ctx)
        }
        StopPurpose::Restart => {
            if spec_kind_waits(applied, observed) {
                return Step::Wait {
                    what: "the session cluster to be ready".to_string(),
                };
            }
            let restore = rec
                .restore_path
                .clone()
                .filter(|_| applied.upgrade_mode().is_some_and(UpgradeMode::is_stateful));
            deploy(applied, None, restore, ctx)
        }
        StopPurpose::Rollback => match &rec.last_stable_spec {
            // The state taken before the failed spec ran, unless that spec was deployed
            // stateless (then there is none: the operator rolls back stateless too).
            Some(stable) => Step::Deploy(Box::new(DeployStep {
                spec: stable.clone(),
                hash: stable.hash(),
                revision: rec.last_stable_revision.clone(),
                job_id: stable.job().map(|_| ctx.fresh_job_id.clone()),
                restore: rec
                    .restore_path
                    .clone()
                    .filter(|_| applied.upgrade_mode().is_some_and(UpgradeMode::is_stateful)),
                rollback: true,
                retry: false,
            })),
            None => Step::Fail {
                reason: reason::UPGRADE_FAILED,
                message: "rollback without a stable spec".to_string(),
            },
        },
        StopPurpose::Upgrade => {
            // Desired may have moved on (or become invalid) meanwhile; start what Git wants
            // now if valid, else the reconciled spec.
            let (spec, revision) = match desired {
                Desired::Valid { spec, revision, .. } => (*spec, Some(*revision)),
                _ => (applied, None),
            };
            if job_state(spec) == Some(JobState::Suspended) {
                return Step::Settle {
                    purpose: StopPurpose::Suspend,
                    delete_cluster: own_cluster,
                    spec: Some(Box::new(spec.clone())),
                    revision: revision.map(str::to_string),
                };
            }
            if spec.kind() == Kind::FlinkSessionJob
                && observed.cluster.get() != Some(&ClusterState::Ready)
            {
                return match &observed.cluster {
                    Evidence::Unknown { error } => unreachable(error),
                    _ => Step::Wait {
                        what: "the session cluster to be ready".to_string(),
                    },
                };
            }
            let restore = rec
                .restore_path
                .clone()
                .filter(|_| spec.upgrade_mode().is_some_and(UpgradeMode::is_stateful));
            deploy(spec, revision, restore, ctx)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn starting(
    rec: &Record,
    applied: &Spec,
    job_id: &str,
    since: &str,
    restore: &Option<String>,
    observed: &Observed,
    ctx: &Context,
) -> Step {
    // The same attempt again: deploying or submitting with the same job id is idempotent.
    let retry = || {
        let spec = if rec.rollback.is_some() {
            rec.last_stable_spec.as_ref().unwrap_or(applied)
        } else {
            applied
        };
        Step::Deploy(Box::new(DeployStep {
            spec: spec.clone(),
            hash: spec.hash(),
            revision: None,
            job_id: spec.job().map(|_| job_id.to_string()),
            restore: restore.clone(),
            rollback: rec.rollback.is_some(),
            retry: true,
        }))
    };
    let waited = since_ms(since)
        .map(|s| ctx.now_ms.saturating_sub(s))
        .unwrap_or(0);
    let timed_out = waited > readiness_timeout_ms(applied);
    // The runtime runs an older deployment attempt than the one recorded: the deploy never
    // reached it (the agent stopped between recording and deploying). Send it again.
    if rec.kind == Kind::FlinkDeployment
        && observed
            .deployed_generation
            .is_some_and(|g| g < rec.generation)
    {
        return retry();
    }
    if rec.is_session_cluster() {
        return match &observed.cluster {
            Evidence::Present {
                value: ClusterState::Ready,
            } => Step::MarkStable,
            Evidence::Present {
                value: ClusterState::Exited { reason: why },
            } => Step::Fail {
                reason: reason::DEPLOY_FAILED,
                message: why.clone(),
            },
            // The deploy never reached the runtime (the agent stopped first): again.
            Evidence::Absent => retry(),
            _ => Step::Wait {
                what: "the session cluster to start".to_string(),
            },
        };
    }
    let running_spec = match (&rec.rollback, &rec.last_stable_spec) {
        (Some(_), Some(stable)) => stable,
        _ => applied,
    };
    match &observed.job {
        Evidence::Present { value: job } if job.job_id == job_id && job.is_running() => {
            match stability(running_spec, job, observed, ctx) {
                Stability::Stable => Step::MarkStable,
                Stability::Unknown(error) if timed_out => unreachable(&error),
                Stability::Unknown(error) => Step::Wait {
                    what: format!("the job's checkpoint counts (not read: {error})"),
                },
                Stability::NotYet(what) => {
                    if timed_out {
                        let message = format!(
                            "not stable within kubernetes.operator.deployment.readiness.timeout ({} s): waiting for {what}",
                            readiness_timeout_ms(applied) / 1000
                        );
                        if let Some(step) = rollback_step(rec, reason::READINESS_TIMEOUT, message) {
                            return step;
                        }
                    }
                    Step::Wait { what }
                }
            }
        }
        Evidence::Present { value: job } if job.job_id == job_id && job.is_terminal() => {
            let message = job
                .failure
                .clone()
                .unwrap_or_else(|| format!("the job ended {:?}", job.state));
            // A job that fails before it is stable is rolled back at once.
            if let Some(step) = rollback_step(rec, reason::JOB_FAILED, message.clone()) {
                return step;
            }
            Step::Fail {
                reason: reason::JOB_FAILED,
                message,
            }
        }
        Evidence::Unknown { error } => {
            // A cluster of its own that is still starting does not answer yet; a session
            // cluster that was ready and does not answer is unreachable.
            if rec.kind == Kind::FlinkDeployment && observed.cluster.is_unknown() && !timed_out {
                // A cluster that is still starting does not answer yet.
                Step::Wait {
                    what: "the cluster to answer".to_string(),
                }
            } else {
                unreachable(error)
            }
        }
        Evidence::Absent => match &observed.cluster {
            Evidence::Present {
                value: ClusterState::Exited { reason: why },
            } => {
                if let Some(step) = rollback_step(rec, reason::DEPLOY_FAILED, why.clone()) {
                    return step;
                }
                Step::Fail {
                    reason: reason::DEPLOY_FAILED,
                    message: why.clone(),
                }
            }
            // Positive evidence the attempt never arrived: the cluster is not there, or a
            // session cluster answered without the job. Send the same attempt again.
            Evidence::Absent => retry(),
            Evidence::Present {
                value: ClusterState::Ready,
            } if rec.kind == Kind::FlinkSessionJob => retry(),
            Evidence::Unknown { error } if timed_out => unreachable(error),
            _ => {
                if timed_out {
                    let message = format!(
                        "not all of the job's tasks ran within kubernetes.operator.deployment.readiness.timeout ({} s)",
                        readiness_timeout_ms(applied) / 1000
                    );
                    if let Some(step) = rollback_step(rec, reason::READINESS_TIMEOUT, message) {
                        return step;
                    }
                }
                Step::Wait {
                    what: "the job to run".to_string(),
                }
            }
        },
        Evidence::Present { .. } => {
            if timed_out {
                let message = format!(
                    "not all of the job's tasks ran within kubernetes.operator.deployment.readiness.timeout ({} s)",
                    readiness_timeout_ms(applied) / 1000
                );
                if let Some(step) = rollback_step(rec, reason::READINESS_TIMEOUT, message) {
                    return step;
                }
            }
            Step::Wait {
                what: "the job to run".to_string(),
            }
        }
    }
}

/// A rescale request younger than this is not sent again: Flink is still applying it.
const RESCALE_RESEND_AFTER_MS: u64 = 10_000;

fn rescale_sent_recently(since: &str, ctx: &Context) -> bool {
    since_ms(since).is_some_and(|s| ctx.now_ms.saturating_sub(s) < RESCALE_RESEND_AFTER_MS)
}

/// A session job waits for its session cluster to be ready before it starts.
fn spec_kind_waits(spec: &Spec, observed: &Observed) -> bool {
    spec.kind() == Kind::FlinkSessionJob && observed.cluster.get() != Some(&ClusterState::Ready)
}

/// Whether a running job has proved itself.
enum Stability {
    Stable,
    /// Not yet: what it waits for.
    NotYet(String),
    /// Flink did not say (the checkpoint counts could not be read).
    Unknown(String),
}

/// Stricter than the operator, which calls a job stable the first time it sees it RUNNING:
/// all of its tasks have run for the stability window and, with checkpointing on, it has
/// completed a checkpoint of its own.
fn stability(spec: &Spec, job: &ObservedJob, observed: &Observed, ctx: &Context) -> Stability {
    let window = stability_window_ms(spec, ctx);
    let ran = job
        .running_since_ms
        .map(|t| ctx.now_ms.saturating_sub(t))
        .unwrap_or(0);
    if ran < window {
        return Stability::NotYet(format!(
            "the job to run for the stability window ({} of {} s)",
            ran / 1000,
            window / 1000
        ));
    }
    if !checkpointing_on(spec) {
        return Stability::Stable;
    }
    match &observed.checkpoints_completed {
        Evidence::Present { value } if *value > 0 => Stability::Stable,
        Evidence::Present { .. } | Evidence::Absent => {
            Stability::NotYet("the job's first checkpoint".to_string())
        }
        Evidence::Unknown { error } => Stability::Unknown(error.clone()),
    }
}

/// Roll back to the last stable spec when enabled, one is known, it differs, and it ran
/// the same Flink version (the operator's AbstractFlinkResourceReconciler.shouldRollBack,
/// without its HA requirement: the state comes from the savepoint or checkpoint recorded
/// before the failed spec ran). Returns the first step, [`Step::BeginRollback`].
fn rollback_step(rec: &Record, why: &'static str, message: String) -> Option<Step> {
    let applied = rec.last_reconciled_spec.as_ref()?;
    if !rollback_enabled(applied) || rec.rollback.is_some() {
        return None;
    }
    let stable = rec.last_stable_spec.as_ref()?;
    if rec.last_stable_hash == rec.last_reconciled_hash
        || job_state(stable) == Some(JobState::Suspended)
    {
        return None;
    }
    if let (Spec::Deployment(a), Spec::Deployment(s)) = (applied, stable) {
        if a.flink_version != s.flink_version {
            return None;
        }
    }
    Some(Step::BeginRollback {
        reason: why,
        message,
    })
}

/// ROLLING_BACK with nothing in flight: stop what runs of the failed spec (cancel: its
/// state is not the one to keep), then the stop's end deploys the stable spec.
fn continue_rollback(rec: &Record, applied: &Spec, observed: &Observed, ctx: &Context) -> Step {
    // The stable spec itself failed while coming back: reported, not retried.
    if rec.job_state == Some(JobStatus::Failed) && rec.last_error.is_some() {
        return Step::Nothing;
    }
    match (job_alive(observed), &rec.job_id) {
        (Err(step), _) => step,
        (Ok(true), Some(job_id)) => stop_step(
            StopPurpose::Rollback,
            StopMode::Cancel,
            applied,
            job_id,
            ctx,
        ),
        _ => Step::FinishStop {
            purpose: StopPurpose::Rollback,
            restore: rec.restore_path.clone(),
            savepoint: false,
        },
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
