//! The Flink REST API as a trait, so that the executor can run against a real cluster
//! ([`super::FlinkRestClient`]) or against an in-memory fake in scenario tests.
//!
//! Every method is one REST call of [`super::FlinkRestClient`] with the same name, shape and
//! errors; see there for the endpoint each one calls. Implementations must be cheap to clone
//! and safe to share across tasks.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;

use super::{
    CheckpointStats, CheckpointStatus, CheckpointType, ClusterOverview, DisposalStatus, JarId,
    JarRunRequest, JobDetails, JobExceptions, JobId, JobOverview, RestError, SavepointFormat,
    SavepointStatus, TriggerId,
};

/// One Flink cluster's REST API. Mirrors the calls the operator's `FlinkService` makes
/// through Flink's `RestClusterClient`, minus the deployment calls (those belong to the
/// [`crate::apply::runtime::Runtime`]).
pub trait FlinkApi: Clone + Send + Sync + 'static {
    /// `GET /overview`.
    fn cluster_overview(&self) -> impl Future<Output = Result<ClusterOverview, RestError>> + Send;
    /// `GET /jobs/overview`: every job the cluster knows, fresh.
    fn jobs_overview(&self) -> impl Future<Output = Result<Vec<JobOverview>, RestError>> + Send;
    /// `GET /jobs/:id`: vertices with their parallelism.
    fn job_details(
        &self,
        job: &JobId,
    ) -> impl Future<Output = Result<JobDetails, RestError>> + Send;
    /// `GET /jobmanager/config`: the JobManager's effective configuration, key to value.
    fn jobmanager_config(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, RestError>> + Send;
    /// `GET /jobs/:id/exceptions`.
    fn job_exceptions(
        &self,
        job: &JobId,
    ) -> impl Future<Output = Result<Option<JobExceptions>, RestError>> + Send;
    /// `PATCH /jobs/:id?mode=cancel`.
    fn cancel(&self, job: &JobId) -> impl Future<Output = Result<(), RestError>> + Send;
    /// `POST /jobs/:id/stop`.
    fn stop_with_savepoint(
        &self,
        job: &JobId,
        target_dir: Option<&str>,
        drain: bool,
        format: SavepointFormat,
        trigger: Option<&TriggerId>,
    ) -> impl Future<Output = Result<TriggerId, RestError>> + Send;
    /// `POST /jobs/:id/savepoints`.
    fn trigger_savepoint(
        &self,
        job: &JobId,
        target_dir: Option<&str>,
        format: SavepointFormat,
        trigger: Option<&TriggerId>,
    ) -> impl Future<Output = Result<TriggerId, RestError>> + Send;
    /// `GET /jobs/:id/savepoints/:trigger`.
    fn savepoint_status(
        &self,
        job: &JobId,
        trigger: &TriggerId,
    ) -> impl Future<Output = Result<SavepointStatus, RestError>> + Send;
    /// `POST /jobs/:id/checkpoints`.
    fn trigger_checkpoint(
        &self,
        job: &JobId,
        kind: CheckpointType,
        trigger: Option<&TriggerId>,
    ) -> impl Future<Output = Result<TriggerId, RestError>> + Send;
    /// `GET /jobs/:id/checkpoints/:trigger`.
    fn checkpoint_status(
        &self,
        job: &JobId,
        trigger: &TriggerId,
    ) -> impl Future<Output = Result<CheckpointStatus, RestError>> + Send;
    /// `GET /jobs/:id/checkpoints`.
    fn checkpoints(
        &self,
        job: &JobId,
    ) -> impl Future<Output = Result<CheckpointStats, RestError>> + Send;
    /// `GET /jobs/:id/metrics?get=...`.
    fn job_metrics(
        &self,
        job: &JobId,
        names: &[&str],
    ) -> impl Future<Output = Result<BTreeMap<String, String>, RestError>> + Send;
    /// `POST /savepoint-disposal`: dispose of a savepoint's files (the operator's
    /// `FlinkService.disposeSavepoint`). Flink takes no caller id for it.
    fn dispose_savepoint(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<TriggerId, RestError>> + Send;
    /// `GET /savepoint-disposal/:trigger`.
    fn disposal_status(
        &self,
        trigger: &TriggerId,
    ) -> impl Future<Output = Result<DisposalStatus, RestError>> + Send;
    /// `POST /jars/upload`.
    fn upload_jar(&self, path: &Path) -> impl Future<Output = Result<JarId, RestError>> + Send;
    /// `POST /jars/:id/run`.
    fn run_jar(
        &self,
        jar: &JarId,
        request: &JarRunRequest,
    ) -> impl Future<Output = Result<JobId, RestError>> + Send;
    /// `PUT /jobs/:id/resource-requirements`: the adaptive scheduler's per-vertex parallelism
    /// (vertex id to the new parallelism; lower bound 1, upper bound the value), as the
    /// operator's `FlinkService.scale` sends it for in-place rescaling.
    fn set_parallelism(
        &self,
        job: &JobId,
        parallelism: &BTreeMap<String, u32>,
    ) -> impl Future<Output = Result<(), RestError>> + Send;
}

/// Makes a [`FlinkApi`] for a cluster's REST base URL (from
/// [`crate::apply::runtime::Runtime::rest_url`]).
pub trait FlinkApiFactory: Send + Sync + 'static {
    type Api: FlinkApi;
    /// # Errors
    /// [`RestError::Setup`] when the URL is not one this factory can reach.
    fn connect(&self, base_url: &str) -> Result<Self::Api, RestError>;
}
