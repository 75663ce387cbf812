//! The boundary between the executor and wherever Flink clusters run.
//!
//! A [`Runtime`] starts and removes *clusters*, says whether they exist, and how to reach
//! their REST API; jobs are driven through the REST API ([`crate::flink::rest::FlinkApi`]) by
//! the executor, the same way for every runtime. The local runtime runs Flink processes on
//! this machine; a Kubernetes runtime creates JobManager and TaskManager Deployments, a
//! Service and a ConfigMap behind the same trait.
//!
//! Checkpoint and savepoint storage is a capability of its own ([`SnapshotStorage`]): the
//! agent reads it when a cluster is gone and its REST API cannot say where the newest
//! checkpoint is.
//!
//! *Guarantees asked of implementations*: an observation that could not be made is an
//! `Err`, never [`ClusterPresence::Missing`]. `Missing` is positive evidence (the process
//! table or the API server answered and the cluster is not there), and only positive
//! evidence lets the executor redeploy.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;

use crate::flink::spec::{DeploymentSpec, ResourceKey};

/// The application job an application cluster starts with.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplicationJob {
    /// The job's `jarURI` as the manifest names it (`local://`, `file://`, `https://`, ...);
    /// the runtime makes it available where the JobManager runs (or finds it in the image).
    pub jar_uri: String,
    pub entry_class: Option<String>,
    pub args: Vec<String>,
    /// 32 hex digits.
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
    /// The Git revision the spec comes from (the Kubernetes runtime writes it into an
    /// annotation); none when unknown.
    pub revision: Option<String>,
}

/// Whether a cluster's processes (or pods) exist, as the runtime sees them. Whether its
/// REST API answers is asked separately, through [`crate::flink::rest::FlinkApi`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterPresence {
    /// Positive evidence that there is no cluster (never deployed, or removed).
    Missing,
    /// The JobManager runs; `task_managers` are expected to register with it.
    /// `generation` is the [`ClusterRequest::generation`] it was deployed with, when the
    /// runtime records it: a cluster older than the deployment attempt the agent recorded is
    /// positive evidence that the attempt never reached the runtime.
    Running {
        task_managers: u32,
        generation: Option<u64>,
    },
    /// The cluster's processes ended (or its pods fail); with the reason if known.
    Exited { reason: String },
}

/// Errors of a runtime. The variant decides the retry: see [`RuntimeError::class`].
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime could not answer or act now (API server timeout, process table
    /// unreadable, a port not free): retry with backoff.
    #[error("{what}: {reason}")]
    Unavailable { what: String, reason: String },
    /// The jar could not be made available (unknown scheme, missing file, download failed).
    #[error("cannot resolve jar {uri}: {reason}")]
    Jar {
        uri: String,
        reason: String,
        /// Whether trying again may help (a download that failed) or only a manifest
        /// change will (a missing file, an unknown scheme).
        transient: bool,
    },
    /// The request cannot be carried out as written (a value the runtime cannot use): needs
    /// a manifest change.
    #[error("cannot deploy {what}: {reason}")]
    Rejected { what: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl RuntimeError {
    /// Whether retrying later may help without a change to the manifest.
    pub fn is_transient(&self) -> bool {
        match self {
            RuntimeError::Unavailable { .. } | RuntimeError::Io { .. } => true,
            RuntimeError::Jar { transient, .. } => *transient,
            RuntimeError::Rejected { .. } => false,
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> RuntimeError {
        RuntimeError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Where Flink clusters run. Implementations must be cheap to share across tasks.
pub trait Runtime: Send + Sync + 'static {
    /// A short name for logs (`local`, `kubernetes`).
    fn name(&self) -> &'static str;

    /// Starts the cluster of a FlinkDeployment, replacing any cluster it had before (whose
    /// job must already be stopped). For an application cluster the job starts with it.
    /// Idempotent for the same request: deploying what already runs replaces it.
    fn deploy_cluster(
        &self,
        request: ClusterRequest,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Removes a cluster's processes (or pods); checkpoints and savepoints stay. Removing a
    /// cluster that is not there succeeds.
    fn delete_cluster(
        &self,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Removes what Flink's high availability keeps about a removed cluster (on Kubernetes
    /// its HA ConfigMaps), so a cluster of the same name starts afresh. Called once the
    /// resource left Git and its cluster was deleted; never on an upgrade or a suspend,
    /// which restore from that metadata. Runtimes without HA metadata have nothing to do.
    fn delete_ha_metadata(
        &self,
        _key: &ResourceKey,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        async { Ok(()) }
    }

    /// Whether the cluster exists. `Err` means *unknown*, never *missing*.
    fn observe_cluster(
        &self,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<ClusterPresence, RuntimeError>> + Send;

    /// Base URL of the cluster's REST API (`http://host:port`), `None` when the cluster does
    /// not exist.
    fn rest_url(
        &self,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<Option<String>, RuntimeError>> + Send;

    /// Makes a `jarURI` available as a file on the machine the agent runs on, for upload to
    /// a session cluster.
    fn fetch_jar(&self, uri: &str) -> impl Future<Output = Result<PathBuf, RuntimeError>> + Send;

    /// Configuration this runtime adds under every manifest's own (per-resource checkpoint
    /// and savepoint folders, for instance).
    fn default_configuration(&self, key: &ResourceKey) -> BTreeMap<String, String>;
}

/// Errors of [`SnapshotStorage`].
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{location}: {source}")]
    Io {
        location: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{location}: storage scheme not supported here (supported: {supported})")]
    Unsupported {
        location: String,
        supported: &'static str,
    },
}

/// Checkpoint and savepoint storage: where state outlives clusters. `file://` now (the
/// local runtime and shared volumes); object stores (the `object_store` crate) later.
pub trait SnapshotStorage: Send + Sync + 'static {
    /// The newest completed checkpoint of `job_id` under `checkpoints_dir` (Flink's
    /// `<dir>/<job id>/chk-<n>` with a `_metadata` file), `None` when there is none.
    fn latest_checkpoint(
        &self,
        checkpoints_dir: &str,
        job_id: &str,
    ) -> Result<Option<String>, StorageError>;

    /// Whether a savepoint or checkpoint (its `_metadata`) is still there.
    fn exists(&self, location: &str) -> Result<bool, StorageError>;

    /// Removes a savepoint or checkpoint folder. Removing what is gone succeeds.
    fn delete(&self, location: &str) -> Result<(), StorageError>;
}

impl From<std::io::Error> for RuntimeError {
    fn from(source: std::io::Error) -> Self {
        RuntimeError::Io {
            context: "local file".to_string(),
            source,
        }
    }
}
