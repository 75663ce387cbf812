//! The boundary between the executor and wherever Flink clusters run.
//!
//! A runtime starts and removes *clusters* and says how to reach their REST API; jobs are
//! driven through the REST API by the executor, the same way for every runtime. The local
//! runtime runs Flink processes on this machine; a Kubernetes runtime creates JobManager
//! and TaskManager Deployments, a Service and a ConfigMap behind the same trait.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;

use crate::flink::lifecycle::decide::ClusterState;
use crate::flink::spec::{DeploymentSpec, ResourceKey};

/// The application job an application cluster starts with.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplicationJob {
    /// The job's jar on this machine (resolved by [`Runtime::resolve_jar`]).
    pub jar: PathBuf,
    pub entry_class: Option<String>,
    pub args: Vec<String>,
    pub job_id: String,
    pub parallelism: Option<i64>,
    /// Savepoint or checkpoint to start from.
    pub restore: Option<String>,
    pub allow_non_restored_state: bool,
}

/// What to deploy for a FlinkDeployment.
#[derive(Debug, Clone)]
pub struct ClusterRequest {
    pub key: ResourceKey,
    pub spec: DeploymentSpec,
    /// Set for an application cluster; none for a session cluster.
    pub job: Option<ApplicationJob>,
    /// Deployment attempt number (names processes and logs).
    pub generation: u64,
}

/// Errors of a runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("FLINK_HOME is not set or has no Flink distribution ({0}); run scripts/setup.sh or pass --flink-home")]
    NoFlink(String),
    #[error("cannot resolve jar {uri}: {reason}")]
    Jar { uri: String, reason: String },
    #[error("cannot start {what}: {reason}")]
    Start { what: String, reason: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

impl RuntimeError {
    /// Whether retrying later may help without a change to the manifest.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RuntimeError::Io(_) | RuntimeError::Start { .. } | RuntimeError::Other(_)
        )
    }
}

/// Where Flink clusters run. Implementations must be cheap to share across tasks.
pub trait Runtime: Send + Sync + 'static {
    /// A short name for logs (`local`, `kubernetes`).
    fn name(&self) -> &'static str;

    /// Starts the cluster of a FlinkDeployment, replacing any cluster it had before (whose
    /// job must already be stopped). For an application cluster the job starts with it.
    fn deploy_cluster(
        &self,
        request: ClusterRequest,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Removes a cluster's processes (or pods); checkpoints and savepoints stay.
    fn delete_cluster(
        &self,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Whether the cluster exists and answers.
    fn cluster_state(&self, key: &ResourceKey) -> impl Future<Output = ClusterState> + Send;

    /// Base URL of the cluster's REST API, if the cluster exists.
    fn rest_url(&self, key: &ResourceKey) -> Option<String>;

    /// Makes a `jarURI` available on this machine (for upload to a session cluster, or for an
    /// application cluster).
    fn resolve_jar(&self, uri: &str) -> impl Future<Output = Result<PathBuf, RuntimeError>> + Send;

    /// Configuration this runtime adds under every manifest's own (per-resource checkpoint
    /// and savepoint folders, for instance).
    fn default_configuration(&self, key: &ResourceKey) -> BTreeMap<String, String>;

    /// The newest retained checkpoint of a job found on storage, for when the REST API
    /// cannot say (the cluster is gone).
    fn latest_checkpoint_on_storage(&self, key: &ResourceKey, job_id: &str) -> Option<String>;
}
