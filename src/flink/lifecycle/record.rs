//! What the agent records about each resource on the status branch: facts, not labels.
//!
//! A [`Record`] is the agent's write-ahead log for one resource. It is written to Git
//! before every step that a later step depends on (a job id before a submit, a savepoint
//! location before a restore), so an agent killed at any point resumes from it. The
//! lifecycle state is derived from the facts ([`Record::lifecycle`]) and written beside them
//! only for people reading the file.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::drift::Drift;
pub use super::snapshots::Snapshots;
use crate::flink::rest::JobStatus;
use crate::flink::spec::{JobState, Kind, ResourceKey, Spec, SpecHash, UpgradeMode};

/// The operator's lifecycle states (plus DELETED for a resource removed from Git).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LifecycleState {
    Created,
    Deployed,
    Stable,
    Upgrading,
    Suspended,
    RollingBack,
    RolledBack,
    Failed,
    Deleted,
}

impl fmt::Display for LifecycleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            LifecycleState::Created => "CREATED",
            LifecycleState::Deployed => "DEPLOYED",
            LifecycleState::Stable => "STABLE",
            LifecycleState::Upgrading => "UPGRADING",
            LifecycleState::Suspended => "SUSPENDED",
            LifecycleState::RollingBack => "ROLLING_BACK",
            LifecycleState::RolledBack => "ROLLED_BACK",
            LifecycleState::Failed => "FAILED",
            LifecycleState::Deleted => "DELETED",
        };
        f.write_str(s)
    }
}

/// Why a job is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopPurpose {
    /// A new spec follows.
    Upgrade,
    /// job.state became suspended.
    Suspend,
    /// The resource left Git.
    Delete,
    /// Redeploy from initialSavepointPath.
    SavepointRedeploy,
    /// The session cluster it runs on is redeployed; the job is resumed after.
    ClusterRedeploy,
    /// Roll back to the last stable spec.
    Rollback,
    /// The health check found the job unhealthy: restart it from its newest state.
    Restart,
}

/// How a job is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopMode {
    /// Stop with a savepoint (savepoint upgrade mode, deletion with savepoint).
    Savepoint,
    /// Cancel, keeping the latest retained checkpoint (last-state).
    CancelKeepCheckpoint,
    /// Cancel, state discarded (stateless).
    Cancel,
}

/// What triggered a savepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotTrigger {
    Upgrade,
    Manual,
    Periodic,
    Suspend,
    Delete,
    /// The newest retained checkpoint, taken over as restore point on a cancel.
    Checkpoint,
}

/// One savepoint (or retained checkpoint used as one) in a resource's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Savepoint {
    pub location: String,
    /// RFC 3339 time it completed.
    pub time: String,
    pub trigger: SnapshotTrigger,
    /// Git revision whose spec the job that wrote it was running.
    pub revision: String,
    /// For an upgrade savepoint: the revision being deployed, which restores from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_revision: Option<String>,
    pub job_id: String,
}

/// A step in flight: written before it starts, cleared when its result is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum InFlight {
    /// A stop of `job_id` was requested (savepoint trigger id when stopping with one).
    Stopping {
        purpose: StopPurpose,
        mode: StopMode,
        #[serde(rename = "jobId")]
        job_id: String,
        #[serde(rename = "triggerId", default, skip_serializing_if = "Option::is_none")]
        trigger_id: Option<String>,
        since: String,
    },
    /// The job is stopped and its restore point recorded; the cluster may still be up.
    Stopped { purpose: StopPurpose },
    /// A deployment of the applied spec with job `job_id` was started.
    Starting {
        #[serde(rename = "jobId")]
        job_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restore: Option<String>,
        since: String,
    },
    /// The job's vertices were asked to run at new parallelism (in-place rescale).
    Rescaling {
        #[serde(rename = "jobId")]
        job_id: String,
        /// Vertex id to the parallelism asked for.
        parallelism: BTreeMap<String, u32>,
        since: String,
    },
    /// A savepoint or checkpoint was triggered: for the given nonce, or on the periodic
    /// schedule (`periodic`, nonce 0).
    Snapshotting {
        #[serde(rename = "jobId")]
        job_id: String,
        #[serde(rename = "triggerId")]
        trigger_id: String,
        nonce: i64,
        checkpoint: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        periodic: bool,
        since: String,
    },
}

/// The last error, with a reason from [`reason`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    pub reason: String,
    pub message: String,
    pub time: String,
}

/// Reasons for errors and events, in one place (like the operator's event reasons).
pub mod reason {
    pub const VALIDATION: &str = "ValidationError";
    pub const DEPLOY_FAILED: &str = "DeploymentFailed";
    pub const JOB_FAILED: &str = "JobFailed";
    pub const SAVEPOINT_FAILED: &str = "SavepointFailed";
    pub const CHECKPOINT_FAILED: &str = "CheckpointFailed";
    pub const UPGRADE_FAILED: &str = "UpgradeFailed";
    pub const RESTORE_FAILED: &str = "RestoreFailed";
    pub const CLUSTER_LOST: &str = "ClusterLost";
    pub const NOT_READY: &str = "NotReady";
    pub const UNREACHABLE: &str = "Unreachable";
    pub const RESCALE_FAILED: &str = "RescaleFailed";
    /// The new spec did not become stable within `deployment.readiness.timeout`.
    pub const READINESS_TIMEOUT: &str = "ReadinessTimeout";
    /// The job was unhealthy (restarts, checkpoint progress) and was restarted.
    pub const UNHEALTHY: &str = "UnhealthyJob";
}

/// Everything the agent knows about one resource. The spec fields carry the operator's
/// names (`lastReconciledSpec`, `lastStableSpec` of `ReconciliationStatus`); they are typed
/// here and written to Git as canonical JSON-shaped YAML (see [`RecordDoc`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    /// Derived on every write; for readers of the file.
    pub lifecycle_state: LifecycleState,
    /// Flink job state last observed.
    pub job_state: Option<JobStatus>,
    pub job_id: Option<String>,
    /// The spec applied last, its hash and the Git revision it came from.
    pub last_reconciled_spec: Option<Spec>,
    pub last_reconciled_hash: Option<SpecHash>,
    pub last_reconciled_revision: Option<String>,
    /// The last spec seen running: what a rollback returns to.
    pub last_stable_spec: Option<Spec>,
    pub last_stable_hash: Option<SpecHash>,
    pub last_stable_revision: Option<String>,
    /// Where the next stateful start restores from.
    pub restore_path: Option<String>,
    /// Upgrade mode the job was last stopped with (decides how a resume restores).
    pub stopped_with: Option<UpgradeMode>,
    pub in_flight: Option<InFlight>,
    /// Nonces already acted on.
    pub nonces: BTreeMap<String, i64>,
    /// Newest last.
    pub savepoints: Vec<Savepoint>,
    /// Periodic schedules, the last triggered checkpoint, failed triggers and disposals.
    pub snapshots: Snapshots,
    pub last_error: Option<LastError>,
    /// Set while Flink or the runtime cannot be asked: what failed, since when. Nothing
    /// destructive is done while it is set.
    pub unreachable: Option<LastError>,
    /// True once the resource left Git and its job was stopped (final state recorded).
    pub deleted: bool,
    /// True while the resource is gone from Git but left running (`--no-prune`).
    pub removed_from_git: bool,
    /// Set while a rollback is in progress or done for the reconciled spec.
    pub rollback: Option<RollbackState>,
    /// Why the reconciled spec was rolled back (reason and Flink's or the runtime's words),
    /// written before the rollback's first step; cleared when Git's next spec is deployed.
    pub rollback_cause: Option<LastError>,
    /// Deployment attempts so far.
    pub generation: u64,
    /// RFC 3339 time the lifecycle state last changed.
    pub since: String,
    /// Set while the live state drifts from Git: what, since when, first seen at which
    /// revision ([`super::drift`]); cleared when nothing drifts any more.
    pub drift: Option<Drift>,
}

/// [`Record`] as it is written to the status branch: the specs as canonical JSON values.
/// Files written before the fields took the operator's names are read through the aliases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordDoc {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub lifecycle_state: LifecycleState,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "job_status_lenient"
    )]
    pub job_state: Option<JobStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "appliedSpec"
    )]
    pub last_reconciled_spec: Option<serde_json::Value>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "appliedSpecHash"
    )]
    pub last_reconciled_hash: Option<SpecHash>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "appliedRevision"
    )]
    pub last_reconciled_revision: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "stableSpecHash"
    )]
    pub last_stable_hash: Option<SpecHash>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "stableRevision"
    )]
    pub last_stable_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "stableSpec")]
    pub last_stable_spec: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_with: Option<UpgradeMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlight>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nonces: BTreeMap<String, i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub savepoints: Vec<Savepoint>,
    #[serde(default, skip_serializing_if = "Snapshots::is_empty")]
    pub snapshots: Snapshots,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable: Option<LastError>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed_from_git: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_cause: Option<LastError>,
    #[serde(default)]
    pub generation: u64,
    #[serde(default)]
    pub since: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
}

/// Older files wrote `READY` for a session cluster; anything Flink does not name is none.
fn job_status_lenient<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<JobStatus>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    Ok(
        s.and_then(|s| serde_json::from_value(serde_json::Value::String(s)).ok())
            .filter(|j: &JobStatus| *j != JobStatus::Unknown),
    )
}

/// A status file whose spec does not parse as the kind it names.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("status YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("{field} is not a valid {kind} spec: {source}")]
    Spec {
        field: &'static str,
        kind: Kind,
        #[source]
        source: serde_json::Error,
    },
}

impl From<&Record> for RecordDoc {
    fn from(r: &Record) -> RecordDoc {
        RecordDoc {
            kind: r.kind,
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            lifecycle_state: r.lifecycle_state,
            job_state: r.job_state,
            job_id: r.job_id.clone(),
            last_reconciled_spec: r.last_reconciled_spec.as_ref().map(Spec::canonical_json),
            last_reconciled_hash: r.last_reconciled_hash.clone(),
            last_reconciled_revision: r.last_reconciled_revision.clone(),
            last_stable_hash: r.last_stable_hash.clone(),
            last_stable_revision: r.last_stable_revision.clone(),
            last_stable_spec: r.last_stable_spec.as_ref().map(Spec::canonical_json),
            restore_path: r.restore_path.clone(),
            stopped_with: r.stopped_with,
            in_flight: r.in_flight.clone(),
            nonces: r.nonces.clone(),
            savepoints: r.savepoints.clone(),
            snapshots: r.snapshots.clone(),
            last_error: r.last_error.clone(),
            unreachable: r.unreachable.clone(),
            deleted: r.deleted,
            removed_from_git: r.removed_from_git,
            rollback: r.rollback,
            rollback_cause: r.rollback_cause.clone(),
            generation: r.generation,
            since: r.since.clone(),
            drift: r.drift.clone(),
        }
    }
}

impl TryFrom<RecordDoc> for Record {
    type Error = RecordError;
    fn try_from(d: RecordDoc) -> Result<Record, RecordError> {
        let spec = |field: &'static str, v: Option<serde_json::Value>| {
            v.map(|v| Spec::from_json(d.kind, v))
                .transpose()
                .map_err(|source| RecordError::Spec {
                    field,
                    kind: d.kind,
                    source,
                })
        };
        Ok(Record {
            last_reconciled_spec: spec("lastReconciledSpec", d.last_reconciled_spec.clone())?,
            last_stable_spec: spec("lastStableSpec", d.last_stable_spec.clone())?,
            kind: d.kind,
            namespace: d.namespace,
            name: d.name,
            lifecycle_state: d.lifecycle_state,
            job_state: d.job_state,
            job_id: d.job_id,
            last_reconciled_hash: d.last_reconciled_hash,
            last_reconciled_revision: d.last_reconciled_revision,
            last_stable_hash: d.last_stable_hash,
            last_stable_revision: d.last_stable_revision,
            restore_path: d.restore_path,
            stopped_with: d.stopped_with,
            in_flight: d.in_flight,
            nonces: d.nonces,
            savepoints: d.savepoints,
            snapshots: d.snapshots,
            last_error: d.last_error,
            unreachable: d.unreachable,
            deleted: d.deleted,
            removed_from_git: d.removed_from_git,
            rollback: d.rollback,
            rollback_cause: d.rollback_cause,
            generation: d.generation,
            since: d.since,
            drift: d.drift,
        })
    }
}

/// Rollback progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RollbackState {
    RollingBack,
    RolledBack,
}

impl Record {
    pub fn new(key: &ResourceKey) -> Record {
        Record {
            kind: key.kind,
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            lifecycle_state: LifecycleState::Created,
            job_state: None,
            job_id: None,
            last_reconciled_spec: None,
            last_reconciled_hash: None,
            last_reconciled_revision: None,
            last_stable_spec: None,
            last_stable_hash: None,
            last_stable_revision: None,
            restore_path: None,
            stopped_with: None,
            in_flight: None,
            nonces: BTreeMap::new(),
            savepoints: Vec::new(),
            snapshots: Snapshots::default(),
            last_error: None,
            unreachable: None,
            deleted: false,
            removed_from_git: false,
            rollback: None,
            rollback_cause: None,
            generation: 0,
            since: String::new(),
            drift: None,
        }
    }

    pub fn key(&self) -> ResourceKey {
        ResourceKey::new(self.namespace.clone(), self.kind, self.name.clone())
    }

    /// Records `spec` (from `revision`) as the reconciled spec.
    pub fn set_reconciled(&mut self, spec: &Spec, revision: Option<&str>) {
        self.last_reconciled_hash = Some(spec.hash());
        self.last_reconciled_spec = Some(spec.clone());
        if let Some(r) = revision {
            self.last_reconciled_revision = Some(r.to_string());
        }
    }

    /// Records the reconciled spec as the last stable one.
    pub fn mark_reconciled_stable(&mut self) {
        self.last_stable_spec = self.last_reconciled_spec.clone();
        self.last_stable_hash = self.last_reconciled_hash.clone();
        self.last_stable_revision = self.last_reconciled_revision.clone();
    }

    /// Whether the reconciled spec asks for a suspended job.
    pub fn reconciled_suspended(&self) -> bool {
        self.last_reconciled_spec
            .as_ref()
            .and_then(|s| s.job().map(|j| j.state == JobState::Suspended))
            .unwrap_or(false)
    }

    /// Whether the reconciled spec is a session cluster.
    pub fn is_session_cluster(&self) -> bool {
        matches!(&self.last_reconciled_spec, Some(Spec::Deployment(d)) if d.is_session_cluster())
    }

    /// The lifecycle state, derived from the facts (the operator's rules, top-down).
    pub fn derive_lifecycle(&self) -> LifecycleState {
        if self.deleted {
            return LifecycleState::Deleted;
        }
        if self.last_reconciled_spec.is_none() {
            return if self.last_error.is_some() {
                LifecycleState::Failed
            } else {
                LifecycleState::Created
            };
        }
        let failed = self.job_state == Some(JobStatus::Failed) && self.last_error.is_some();
        match self.rollback {
            // The stable spec failed on its way back: FAILED, reported.
            Some(RollbackState::RollingBack) if failed => return LifecycleState::Failed,
            Some(RollbackState::RollingBack) => return LifecycleState::RollingBack,
            Some(RollbackState::RolledBack) if self.in_flight.is_none() => {
                return LifecycleState::RolledBack
            }
            _ => {}
        }
        if self
            .in_flight
            .as_ref()
            .is_some_and(|f| !matches!(f, InFlight::Snapshotting { .. }))
        {
            return LifecycleState::Upgrading;
        }
        if self.reconciled_suspended() {
            return LifecycleState::Suspended;
        }
        if self.job_state == Some(JobStatus::Failed) {
            return LifecycleState::Failed;
        }
        if self.last_reconciled_hash.is_some() && self.last_reconciled_hash == self.last_stable_hash
        {
            return LifecycleState::Stable;
        }
        LifecycleState::Deployed
    }

    /// While rolling back or rolled back, in plain words: what Git wants, what runs, why.
    /// `None` otherwise. Revisions are shortened to 12 characters.
    pub fn rollback_summary(&self) -> Option<String> {
        let state = self.rollback?;
        let short = |r: &Option<String>| {
            r.as_deref()
                .map(|r| r.get(..12).unwrap_or(r).to_string())
                .unwrap_or_else(|| "?".to_string())
        };
        let why = self
            .rollback_cause
            .as_ref()
            .map(|c| {
                format!(
                    "{} ({} at {})",
                    c.message.lines().next().unwrap_or(""),
                    c.reason,
                    c.time
                )
            })
            .unwrap_or_else(|| "it did not become stable".to_string());
        let runs = match state {
            RollbackState::RollingBack => "the agent is rolling back to",
            RollbackState::RolledBack => "the agent runs",
        };
        Some(format!(
            "Git wants revision {}; {runs} the last stable revision {}, because {why}. The failed spec is not retried until Git changes.",
            short(&self.last_reconciled_revision),
            short(&self.last_stable_revision),
        ))
    }

    /// The newest savepoint, if any.
    pub fn newest_savepoint(&self) -> Option<&Savepoint> {
        self.savepoints.last()
    }

    /// Serialises for the status branch (stable key order, so unchanged facts give
    /// unchanged bytes).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(&RecordDoc::from(self)).unwrap_or_default() // ok: plain data
    }

    /// # Errors
    /// [`RecordError`] when the text is not a status record or a spec in it does not parse.
    pub fn from_yaml(text: &str) -> Result<Record, RecordError> {
        let doc: RecordDoc = serde_yaml::from_str(text)?;
        Record::try_from(doc)
    }

    /// Whether two records differ in anything but timestamps of observation.
    pub fn same_facts(&self, other: &Record) -> bool {
        let mut a = self.clone();
        let mut b = other.clone();
        a.since.clear();
        b.since.clear();
        a == b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flink::spec::{DeploymentSpec, JobSpec};

    fn running_spec(state: JobState) -> Spec {
        Spec::Deployment(DeploymentSpec {
            job: Some(JobSpec {
                state,
                upgrade_mode: UpgradeMode::Savepoint,
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    #[test]
    fn lifecycle_is_derived_from_facts() {
        let key = ResourceKey::new("default", Kind::FlinkDeployment, "a");
        let mut r = Record::new(&key);
        assert_eq!(r.derive_lifecycle(), LifecycleState::Created);
        r.last_error = Some(LastError {
            reason: reason::VALIDATION.into(),
            message: "x".into(),
            time: String::new(),
        });
        assert_eq!(r.derive_lifecycle(), LifecycleState::Failed);
        r.last_error = None;
        let running = running_spec(JobState::Running);
        r.last_reconciled_spec = Some(running.clone());
        r.last_reconciled_hash = Some(SpecHash("h1".into()));
        r.in_flight = Some(InFlight::Starting {
            job_id: "j".into(),
            restore: None,
            since: String::new(),
        });
        assert_eq!(r.derive_lifecycle(), LifecycleState::Upgrading);
        r.in_flight = None;
        assert_eq!(r.derive_lifecycle(), LifecycleState::Deployed);
        r.last_stable_hash = Some(SpecHash("h1".into()));
        assert_eq!(r.derive_lifecycle(), LifecycleState::Stable);
        r.job_state = Some(JobStatus::Failed);
        assert_eq!(r.derive_lifecycle(), LifecycleState::Failed);
        r.last_reconciled_spec = Some(running_spec(JobState::Suspended));
        assert_eq!(r.derive_lifecycle(), LifecycleState::Suspended);
        r.deleted = true;
        assert_eq!(r.derive_lifecycle(), LifecycleState::Deleted);
    }

    #[test]
    fn yaml_round_trip() {
        let key = ResourceKey::new("ns", Kind::FlinkSessionJob, "j");
        let mut r = Record::new(&key);
        r.savepoints.push(Savepoint {
            location: "file:/sp/savepoint-1".into(),
            time: "2026-11-23T10:00:00Z".into(),
            trigger: SnapshotTrigger::Upgrade,
            revision: "abc".into(),
            for_revision: Some("def".into()),
            job_id: "00".into(),
        });
        r.in_flight = Some(InFlight::Stopping {
            purpose: StopPurpose::Upgrade,
            mode: StopMode::Savepoint,
            job_id: "00".into(),
            trigger_id: Some("t".into()),
            since: "now".into(),
        });
        let sj = Spec::SessionJob(crate::flink::spec::SessionJobSpec {
            deployment_name: Some("s".into()),
            job: Some(JobSpec::default()),
            ..Default::default()
        });
        r.set_reconciled(&sj, Some("abc"));
        r.job_state = Some(JobStatus::Running);
        let back = Record::from_yaml(&r.to_yaml()).expect("round trip");
        assert_eq!(back, r);
        // Files written before the operator's names: read through the aliases.
        let old = "kind: FlinkSessionJob\nnamespace: ns\nname: j\nlifecycleState: STABLE\njobState: READY\nappliedRevision: abc\nstableRevision: abc\n";
        let back = Record::from_yaml(old).expect("old file");
        assert_eq!(back.last_reconciled_revision.as_deref(), Some("abc"));
        assert_eq!(back.last_stable_revision.as_deref(), Some("abc"));
        assert_eq!(back.job_state, None);
    }
}
