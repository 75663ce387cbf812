//! What the agent saw of a resource before it decides: the cluster, the job, a pending
//! trigger, the newest checkpoint, each as [`Evidence`] that tells *absent* from *unknown*.
//!
//! The rule these types carry: a question that got no answer (a REST call that failed, a
//! JobManager that does not answer, an API server that timed out) is
//! [`Evidence::Unknown`], never [`Evidence::Absent`]. Only `Absent` (the cluster answered
//! and the job is not there; the runtime says the cluster is gone) may lead `decide` to a
//! redeploy, a resubmit or a cancel.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::flink::rest::JobStatus;

/// The answer to one question the agent asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "evidence", rename_all = "kebab-case")]
pub enum Evidence<T> {
    /// It is there, and this is what it looks like.
    Present { value: T },
    /// Positive evidence that it is not there.
    Absent,
    /// The question got no answer; `error` says why.
    Unknown { error: String },
}

impl<T> Evidence<T> {
    pub fn present(value: T) -> Self {
        Evidence::Present { value }
    }

    pub fn unknown(error: impl Into<String>) -> Self {
        Evidence::Unknown {
            error: error.into(),
        }
    }

    /// The value when present.
    pub fn get(&self) -> Option<&T> {
        match self {
            Evidence::Present { value } => Some(value),
            _ => None,
        }
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Evidence::Unknown { .. })
    }

    /// Why it is unknown, if it is.
    pub fn error(&self) -> Option<&str> {
        match self {
            Evidence::Unknown { error } => Some(error),
            _ => None,
        }
    }
}

/// Nothing observed yet is unknown, not absent.
impl<T> Default for Evidence<T> {
    fn default() -> Self {
        Evidence::unknown("not observed")
    }
}

/// A cluster that exists, as the runtime and its REST API show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterState {
    /// The REST API answers but fewer TaskManagers than expected are registered.
    Starting,
    /// The REST API answers and every expected TaskManager is registered.
    Ready,
    /// The processes (or pods) ended or fail; with the reason if known.
    Exited { reason: String },
}

/// A job as Flink reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedJob {
    pub job_id: String,
    pub state: JobStatus,
    /// All tasks RUNNING (a RUNNING job is not running until they are, P9).
    pub all_tasks_running: bool,
    /// For a failed job: the root cause, if Flink gave one.
    pub failure: Option<String>,
    /// Vertex id to the parallelism it runs at, when asked (rescaling).
    pub vertex_parallelism: Option<BTreeMap<String, u32>>,
    /// While the job and all of its tasks run: since when, in epoch milliseconds of the
    /// JobManager's clock (Flink's `last-modification`, the newest job or task state
    /// change). A restart moves it.
    pub running_since_ms: Option<u64>,
}

impl ObservedJob {
    /// Whether the job has stopped running: globally terminal or suspended.
    pub fn is_terminal(&self) -> bool {
        self.state.is_globally_terminal() || self.state == JobStatus::Suspended
    }

    /// Whether the job runs with all of its tasks.
    pub fn is_running(&self) -> bool {
        self.state == JobStatus::Running && self.all_tasks_running
    }
}

/// The state of a savepoint or checkpoint trigger Flink knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerResult {
    InProgress,
    Completed { location: Option<String> },
    Failed { cause: String },
}

/// Everything observed about a resource, gathered before `decide`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    /// The resource's own cluster (FlinkDeployment) or its session cluster (FlinkSessionJob).
    pub cluster: Evidence<ClusterState>,
    /// The job the record names (in flight or running). `Absent` when the record names
    /// none, or the cluster answered without it, or the cluster is gone.
    pub job: Evidence<ObservedJob>,
    /// The in-flight trigger's result. `Absent` when none is in flight or Flink answered
    /// that it does not know it.
    pub trigger: Evidence<TriggerResult>,
    /// The newest retained checkpoint of the recorded job. `Absent`: asked, none there.
    pub latest_checkpoint: Evidence<String>,
    /// The deployment attempt the resource's own cluster runs (FlinkDeployments), when the
    /// runtime records it.
    pub deployed_generation: Option<u64>,
    /// Checkpoints the recorded job completed itself (Flink's `counts.completed`, which
    /// does not count the snapshot it restored from). Asked while a new deployment is
    /// proving stable; `Unknown` otherwise.
    pub checkpoints_completed: Evidence<u64>,
    /// Readings of the job's health counters, oldest first, newest last (this
    /// observation's, when taken). Kept by the agent in memory: after a restart the
    /// window starts again, so the health check can only act later, never sooner.
    pub health: Vec<HealthSample>,
    /// What drift detection reads besides the above, for a resource at rest; `None` when
    /// not gathered (drift policy `ignore`, a step in flight, `plan`'s predicted world).
    pub live: Option<super::drift::Live>,
}

/// One reading of a running job's health counters, as the operator's `ClusterHealthInfo`
/// holds them (`GET /jobs/:id/metrics?get=numRestarts` and the checkpoint counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthSample {
    /// Epoch milliseconds of the agent's clock.
    pub time_ms: u64,
    /// The job id's restarts so far (`numRestarts`).
    pub restarts: u64,
    /// Checkpoints completed so far (`counts.completed`).
    pub completed_checkpoints: u64,
}

impl Observed {
    /// An observation of a resource with no cluster at all (positive evidence).
    pub fn nothing_deployed() -> Observed {
        Observed {
            cluster: Evidence::Absent,
            job: Evidence::Absent,
            trigger: Evidence::Absent,
            latest_checkpoint: Evidence::Absent,
            deployed_generation: None,
            checkpoints_completed: Evidence::Absent,
            health: Vec::new(),
            live: None,
        }
    }
}
