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
    /// A manual savepoint was triggered for the given nonce.
    Snapshotting {
        #[serde(rename = "jobId")]
        job_id: String,
        #[serde(rename = "triggerId")]
        trigger_id: String,
        nonce: i64,
        checkpoint: bool,
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
    pub const UPGRADE_FAILED: &str = "UpgradeFailed";
    pub const RESTORE_FAILED: &str = "RestoreFailed";
    pub const CLUSTER_LOST: &str = "ClusterLost";
    pub const NOT_READY: &str = "NotReady";
}

/// Everything the agent knows about one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    /// Derived on every write; for readers of the file.
    pub lifecycle_state: LifecycleState,
    /// Flink job state last observed (RUNNING, FINISHED, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Spec applied last (canonical JSON), its hash and the revision it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_spec: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_spec_hash: Option<SpecHash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_revision: Option<String>,
    /// The last spec seen running: what a rollback returns to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_spec_hash: Option<SpecHash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_spec: Option<serde_json::Value>,
    /// Where the next stateful start restores from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_path: Option<String>,
    /// Upgrade mode the job was last stopped with (decides how a resume restores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_with: Option<UpgradeMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlight>,
    /// Nonces already acted on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nonces: BTreeMap<String, i64>,
    /// Newest last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub savepoints: Vec<Savepoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// True once the resource left Git and its job was stopped (final state recorded).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// True while the resource is gone from Git but left running (`--no-prune`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed_from_git: bool,
    /// True while a rollback is in progress or done for the applied spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackState>,
    /// Deployment attempts so far; gives each attempt a fresh job id.
    #[serde(default)]
    pub generation: u64,
    /// RFC 3339 time the lifecycle state last changed.
    #[serde(default)]
    pub since: String,
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
            applied_spec: None,
            applied_spec_hash: None,
            applied_revision: None,
            stable_spec_hash: None,
            stable_revision: None,
            stable_spec: None,
            restore_path: None,
            stopped_with: None,
            in_flight: None,
            nonces: BTreeMap::new(),
            savepoints: Vec::new(),
            last_error: None,
            deleted: false,
            removed_from_git: false,
            rollback: None,
            generation: 0,
            since: String::new(),
        }
    }

    pub fn key(&self) -> ResourceKey {
        ResourceKey::new(self.namespace.clone(), self.kind, self.name.clone())
    }

    /// The applied spec, typed.
    pub fn applied(&self) -> Option<Spec> {
        self.applied_spec
            .clone()
            .and_then(|v| Spec::from_json(self.kind, v).ok())
    }

    /// The last stable spec, typed.
    pub fn stable(&self) -> Option<Spec> {
        self.stable_spec
            .clone()
            .and_then(|v| Spec::from_json(self.kind, v).ok())
    }

    /// Whether the applied spec asks for a suspended job.
    pub fn applied_suspended(&self) -> bool {
        self.applied()
            .and_then(|s| s.job().map(|j| j.state == JobState::Suspended))
            .unwrap_or(false)
    }

    /// The lifecycle state, derived from the facts (the operator's rules, top-down).
    pub fn derive_lifecycle(&self) -> LifecycleState {
        if self.deleted {
            return LifecycleState::Deleted;
        }
        if self.applied_spec.is_none() {
            return if self.last_error.is_some() {
                LifecycleState::Failed
            } else {
                LifecycleState::Created
            };
        }
        match self.rollback {
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
        if self.applied_suspended() {
            return LifecycleState::Suspended;
        }
        if self.job_state.as_deref() == Some("FAILED") {
            return LifecycleState::Failed;
        }
        if self.applied_spec_hash.is_some() && self.applied_spec_hash == self.stable_spec_hash {
            return LifecycleState::Stable;
        }
        LifecycleState::Deployed
    }

    /// The newest savepoint, if any.
    pub fn newest_savepoint(&self) -> Option<&Savepoint> {
        self.savepoints.last()
    }

    /// Serialises for the status branch (stable key order, so unchanged facts give
    /// unchanged bytes).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_default()
    }

    pub fn from_yaml(text: &str) -> Result<Record, serde_yaml::Error> {
        serde_yaml::from_str(text)
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

/// Keeps the savepoint history bounded (newest kept).
pub fn trim_history(savepoints: &mut Vec<Savepoint>, max: usize) {
    if savepoints.len() > max {
        let drop = savepoints.len() - max;
        savepoints.drain(..drop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        r.applied_spec =
            Some(serde_json::json!({"job": {"state": "running", "upgradeMode": "savepoint"}}));
        r.applied_spec_hash = Some(SpecHash("h1".into()));
        r.in_flight = Some(InFlight::Starting {
            job_id: "j".into(),
            restore: None,
            since: String::new(),
        });
        assert_eq!(r.derive_lifecycle(), LifecycleState::Upgrading);
        r.in_flight = None;
        assert_eq!(r.derive_lifecycle(), LifecycleState::Deployed);
        r.stable_spec_hash = Some(SpecHash("h1".into()));
        assert_eq!(r.derive_lifecycle(), LifecycleState::Stable);
        r.job_state = Some("FAILED".into());
        assert_eq!(r.derive_lifecycle(), LifecycleState::Failed);
        r.applied_spec =
            Some(serde_json::json!({"job": {"state": "suspended", "upgradeMode": "savepoint"}}));
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
        let back = Record::from_yaml(&r.to_yaml()).expect("round trip");
        assert_eq!(back, r);
    }
}
