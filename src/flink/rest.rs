//! Typed client for the Flink REST API, checked against Flink 2.3.
//!
//! [`FlinkRestClient`] holds one `reqwest::Client` and the base URL of one cluster's REST
//! endpoint (JobManager port 8081 by default). Every method is one HTTP call with its own
//! deadline, except [`FlinkRestClient::await_savepoint`] (a polling loop) and
//! [`FlinkRestClient::all_tasks_running`] (a projection of `/jobs/overview`). Any answer other
//! than 2xx becomes a [`RestError`]; Flink's `{"errors":[...]}` text is read so that the cases
//! the lifecycle must tell apart (unknown job, duplicate job id, missing or unmappable
//! snapshot, unknown jar) get their own variants, and [`RestError::is_transient`] says whether
//! retrying without a manifest change can help.
//!
//! Behaviour of the API that shapes this client (pitfalls of `local-flink.md` §9):
//! * `/jobs/:id` is served from a cache (P8); [`FlinkRestClient::job_status`] and
//!   [`FlinkRestClient::jobs_overview`] are fresh.
//! * A job reports `RUNNING` before its tasks run (P9); readiness is
//!   [`FlinkRestClient::all_tasks_running`].
//! * A fixed job id can be submitted once per session cluster, even after the job ended (P10):
//!   [`RestError::DuplicateJobId`]; make a new one with [`JobId::random`] or [`JobId::derived`].
//! * Unknown body fields are ignored silently (P11): [`JarRunRequest`] serialises exactly
//!   the 2.x names (`programArgsList`, never `programArgs`).
//! * Asynchronous operations always end `COMPLETED`; failure is `operation.failure-cause`
//!   (P12), which [`SavepointStatus::Failed`] and friends carry. Request bodies mix key styles:
//!   savepoint `target-directory`/`cancel-job`, stop `targetDirectory`/`drain`.
//! * Cancelling the 2.3 "application" of a failed submission crashes the JobManager (P13), so
//!   this client has no `/applications` calls.
//! * An application cluster's REST endpoint disappears as soon as its job ends (P17):
//!   [`FlinkRestClient::await_savepoint`] returns a connect error at once instead of retrying.
//! * Unknown jobs answer 404 on most endpoints but 500 on `/jobs/:id/status`, and savepoint,
//!   stop and checkpoint triggers answer 202 for unknown jobs and fail the operation
//!   afterwards ([`FailureCause::is_job_not_found`]).

mod api;
mod error;
mod model;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::config::{DEFAULT_REST_SUBMIT_TIMEOUT, DEFAULT_REST_TIMEOUT};

pub use api::{FlinkApi, FlinkApiFactory};
pub use error::RestError;
pub use model::{
    ApplicationStatus, CheckpointCounts, CheckpointStats, CheckpointStatus, CheckpointType,
    ClaimMode, ClusterOverview, CompletedCheckpoint, DashboardConfig, DisposalStatus,
    ExceptionInfo, ExecutionResult, ExecutionState, FailureCause, InvalidJobId, JarId,
    JarRunRequest, JobDetails, JobExceptions, JobId, JobOverview, JobStatus, RestoredCheckpoint,
    SavepointFormat, SavepointStatus, TaskCounts, TriggerId, VertexDetails,
};

use error::{bad_response, classify, innermost, Subject};
use model::{
    parse_checkpoints, parse_exceptions, parse_execution_result, parse_job_status,
    parse_jobmanager_config, parse_jobs_overview, parse_json, parse_operation, parse_run,
    parse_trigger, parse_upload, Operation,
};

// ---------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------

/// A body to send.
enum Payload {
    Empty,
    Json(Value),
    Form(reqwest::multipart::Form),
}

/// The outcome of one exchange: status and body.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// Client for one Flink cluster's REST API. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct FlinkRestClient {
    http: reqwest::Client,
    /// Without a trailing slash.
    base: Arc<str>,
    timeout: Duration,
    submit_timeout: Duration,
}

impl FlinkRestClient {
    /// A client for the REST API at `base_url` (`http://localhost:8081`), with
    /// [`DEFAULT_REST_TIMEOUT`] per call and [`DEFAULT_REST_SUBMIT_TIMEOUT`] for jar upload
    /// and run.
    ///
    /// # Errors
    /// [`RestError::Setup`] when `base_url` is not an `http(s)` URL or the HTTP client cannot
    /// be built.
    pub fn new(base_url: &str) -> Result<Self, RestError> {
        let parsed = reqwest::Url::parse(base_url).map_err(|e| RestError::Setup {
            reason: format!("base URL {base_url:?}: {e}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.cannot_be_a_base() {
            return Err(RestError::Setup {
                reason: format!("base URL {base_url:?} is not an http(s) URL"),
            });
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(RestError::Setup {
                reason: format!("base URL {base_url:?} must not have a query or fragment"),
            });
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("flink-gitops/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RestError::Setup {
                reason: format!("HTTP client: {e}"),
            })?;
        Ok(FlinkRestClient {
            http,
            base: Arc::from(parsed.as_str().trim_end_matches('/')),
            timeout: DEFAULT_REST_TIMEOUT,
            submit_timeout: DEFAULT_REST_SUBMIT_TIMEOUT,
        })
    }

    /// Sets the deadline of each call (connect, send, and read the whole answer).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the deadline of [`Self::upload_jar`] and [`Self::run_jar`].
    pub fn with_submit_timeout(mut self, timeout: Duration) -> Self {
        self.submit_timeout = timeout;
        self
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The deadline of each call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    // ----------------------------------------------------------------------- cluster

    /// `GET /overview`: TaskManagers, slots, job counts, Flink version.
    pub async fn cluster_overview(&self) -> Result<ClusterOverview, RestError> {
        self.get("/overview", Subject::default(), parse_json).await
    }

    /// `GET /config`: the Flink version and revision (also a cheap readiness probe).
    pub async fn config(&self) -> Result<DashboardConfig, RestError> {
        self.get("/config", Subject::default(), parse_json).await
    }

    /// `GET /jobmanager/config`: the JobManager's effective configuration, key to value
    /// (what it was started with, including what Flink and the runtime added; sensitive
    /// values masked as `******`). Drift detection compares the keys a spec sets.
    pub async fn jobmanager_config(
        &self,
    ) -> Result<std::collections::BTreeMap<String, String>, RestError> {
        self.get(
            "/jobmanager/config",
            Subject::default(),
            parse_jobmanager_config,
        )
        .await
    }

    // ----------------------------------------------------------------------- jobs

    /// `GET /jobs/overview`: every job the cluster knows, with fresh state and task counts.
    pub async fn jobs_overview(&self) -> Result<Vec<JobOverview>, RestError> {
        self.get("/jobs/overview", Subject::default(), parse_jobs_overview)
            .await
    }

    /// `GET /jobs/:id/status`: the job's state, fresh (not cached).
    ///
    /// # Errors
    /// [`RestError::JobNotFound`] for an unknown job (Flink answers 500 here).
    pub async fn job_status(&self, job: &JobId) -> Result<JobStatus, RestError> {
        let path = format!("/jobs/{job}/status");
        self.get(&path, Subject::job(job), parse_job_status).await
    }

    /// `GET /jobs/:id`: state and vertices (cached for `rest.cache.execution-graph.timeout`).
    pub async fn job_details(&self, job: &JobId) -> Result<JobDetails, RestError> {
        self.get(&format!("/jobs/{job}"), Subject::job(job), parse_json)
            .await
    }

    /// Whether the job is `RUNNING` with all of its tasks running (P9), from the fresh
    /// `GET /jobs/overview`.
    ///
    /// # Errors
    /// [`RestError::JobNotFound`] when the overview does not list the job.
    pub async fn all_tasks_running(&self, job: &JobId) -> Result<bool, RestError> {
        let jobs = self.jobs_overview().await?;
        jobs.iter()
            .find(|j| &j.jid == job)
            .map(JobOverview::all_tasks_running)
            .ok_or_else(|| RestError::JobNotFound {
                job_id: job.to_string(),
            })
    }

    /// `PATCH /jobs/:id?mode=cancel`. Flink answers 202, also for a job that already ended;
    /// a 409 (job already in another terminal state) counts as done too.
    ///
    /// # Errors
    /// [`RestError::JobNotFound`] for an unknown job (404).
    pub async fn cancel(&self, job: &JobId) -> Result<(), RestError> {
        let path = format!("/jobs/{job}?mode=cancel");
        let (url, answer) = self
            .exchange(Method::PATCH, &path, Payload::Empty, self.timeout)
            .await?;
        match answer.status {
            200..=299 => Ok(()),
            409 => {
                tracing::debug!(job = %job, "cancel: job already in a terminal state");
                Ok(())
            }
            status => Err(classify(
                &Method::PATCH,
                &url,
                status,
                &answer.body,
                Subject::job(job),
            )),
        }
    }

    /// `GET /jobs/:id/resource-requirements`: vertex id to `(lower bound, upper bound)` of
    /// its parallelism under the adaptive scheduler.
    pub async fn resource_requirements(
        &self,
        job: &JobId,
    ) -> Result<std::collections::BTreeMap<String, (u32, u32)>, RestError> {
        let path = format!("/jobs/{job}/resource-requirements");
        let (url, body) = self.get_body(&path, Subject::job(job)).await?;
        decode(&url, &body, model::parse_resource_requirements)
    }

    /// Sets per-vertex parallelism in place, as the operator's `AbstractFlinkService.scale`
    /// does (FLINK-32057): reads the job's resource requirements, sets each named vertex's
    /// upper bound to the new parallelism and its lower bound to the smaller of that and
    /// its current lower bound, and `PUT`s them back if anything changed. Vertices not named
    /// keep theirs.
    ///
    /// # Errors
    /// [`RestError::JobNotFound`] for an unknown job; an HTTP error when the job does not
    /// run under the adaptive scheduler (Flink answers that the scheduler does not support
    /// it).
    pub async fn set_parallelism(
        &self,
        job: &JobId,
        parallelism: &std::collections::BTreeMap<String, u32>,
    ) -> Result<(), RestError> {
        let current = self.resource_requirements(job).await?;
        let mut body = serde_json::Map::new();
        let mut changed = false;
        for (vertex, (lower, upper)) in &current {
            let (l, u) = match parallelism.get(vertex) {
                Some(&p) => (p.min(*lower), p),
                None => (*lower, *upper),
            };
            changed |= (l, u) != (*lower, *upper);
            body.insert(
                vertex.clone(),
                json!({ "parallelism": { "lowerBound": l, "upperBound": u } }),
            );
        }
        if !changed {
            return Ok(());
        }
        let path = format!("/jobs/{job}/resource-requirements");
        let (url, answer) = self
            .exchange(
                Method::PUT,
                &path,
                Payload::Json(Value::Object(body)),
                self.timeout,
            )
            .await?;
        ok_body(&Method::PUT, &url, answer, Subject::job(job)).map(|_| ())
    }

    /// `GET /jobs/:id/exceptions`: the newest failure, `None` when the job never failed.
    pub async fn job_exceptions(&self, job: &JobId) -> Result<Option<JobExceptions>, RestError> {
        let path = format!("/jobs/{job}/exceptions");
        let (url, body) = self.get_body(&path, Subject::job(job)).await?;
        decode(&url, &body, parse_exceptions)
    }

    /// `GET /jobs/:id/metrics?get=a,b`: the job's metrics by name (values as Flink writes
    /// them); names the job does not have are missing from the map. The operator's health
    /// check reads `numRestarts` this way.
    pub async fn job_metrics(
        &self,
        job: &JobId,
        names: &[&str],
    ) -> Result<std::collections::BTreeMap<String, String>, RestError> {
        let path = format!("/jobs/{job}/metrics?get={}", names.join(","));
        let (url, body) = self.get_body(&path, Subject::job(job)).await?;
        decode(&url, &body, model::parse_metrics)
    }

    /// `GET /jobs/:id/execution-result`: final status and failure cause once the job ended.
    pub async fn execution_result(&self, job: &JobId) -> Result<ExecutionResult, RestError> {
        let path = format!("/jobs/{job}/execution-result");
        let (url, body) = self.get_body(&path, Subject::job(job)).await?;
        decode(&url, &body, parse_execution_result)
    }

    // ----------------------------------------------------------------------- savepoints

    /// `POST /jobs/:id/savepoints` with `target-directory`, `cancel-job: false` and
    /// `formatType`; the job keeps running. Without a directory Flink uses
    /// `execution.checkpointing.savepoint-dir`. Poll with [`Self::savepoint_status`].
    pub async fn trigger_savepoint(
        &self,
        job: &JobId,
        target_dir: Option<&str>,
        format: SavepointFormat,
        trigger: Option<&TriggerId>,
    ) -> Result<TriggerId, RestError> {
        let mut body = json!({ "cancel-job": false, "formatType": format });
        if let Some(dir) = target_dir {
            body["target-directory"] = json!(dir);
        }
        if let Some(t) = trigger {
            body["triggerId"] = json!(t.as_str());
        }
        self.trigger(&format!("/jobs/{job}/savepoints"), body, Subject::job(job))
            .await
    }

    /// `POST /jobs/:id/stop` with `targetDirectory`, `drain`, `formatType` and an optional
    /// caller-chosen `triggerId` (which makes the request idempotent and lets a restarted
    /// caller ask for the result of a stop it sent before it died): savepoint, then
    /// the job ends `FINISHED`. `drain` advances event time to the end first (emits all
    /// windows); use it only when the job will not be resumed. Poll with
    /// [`Self::savepoint_status`].
    pub async fn stop_with_savepoint(
        &self,
        job: &JobId,
        target_dir: Option<&str>,
        drain: bool,
        format: SavepointFormat,
        trigger: Option<&TriggerId>,
    ) -> Result<TriggerId, RestError> {
        let mut body = json!({ "drain": drain, "formatType": format });
        if let Some(dir) = target_dir {
            body["targetDirectory"] = json!(dir);
        }
        if let Some(t) = trigger {
            body["triggerId"] = json!(t.as_str());
        }
        self.trigger(&format!("/jobs/{job}/stop"), body, Subject::job(job))
            .await
    }

    /// `GET /jobs/:id/savepoints/:triggerid`, for both savepoints and stop-with-savepoint.
    pub async fn savepoint_status(
        &self,
        job: &JobId,
        trigger: &TriggerId,
    ) -> Result<SavepointStatus, RestError> {
        let path = format!(
            "/jobs/{job}/savepoints/{}",
            encode_segment(trigger.as_str())
        );
        let (url, body) = self.get_body(&path, Subject::job(job)).await?;
        match parse_operation(&body).map_err(|r| bad_response(&url, r, &body))? {
            Operation::InProgress => Ok(SavepointStatus::InProgress),
            Operation::Failed(cause) => Ok(SavepointStatus::Failed { cause }),
            Operation::Completed(op) => match op.get("location").and_then(Value::as_str) {
                Some(location) => Ok(SavepointStatus::Completed {
                    location: location.to_owned(),
                }),
                None => Err(bad_response(
                    &url,
                    "completed savepoint without a location",
                    &body,
                )),
            },
        }
    }

    /// Polls [`Self::savepoint_status`] until the savepoint completes or fails. The first
    /// poll is immediate and the pause grows from a fifth of `poll_interval` to
    /// `poll_interval` (savepoints of small jobs take tens of milliseconds); no call runs past
    /// `deadline`.
    ///
    /// Returns [`SavepointStatus::Completed`] or [`SavepointStatus::Failed`].
    ///
    /// # Errors
    /// [`RestError::OperationTimeout`] at the deadline; any error of a poll at once
    /// (an application cluster's REST API is gone soon after stop-with-savepoint, P17).
    pub async fn await_savepoint(
        &self,
        job: &JobId,
        trigger: &TriggerId,
        poll_interval: Duration,
        deadline: Instant,
    ) -> Result<SavepointStatus, RestError> {
        let started = Instant::now();
        let mut pause = (poll_interval / 5)
            .max(Duration::from_millis(5))
            .min(poll_interval);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(RestError::OperationTimeout {
                    what: "savepoint",
                    trigger: trigger.to_string(),
                    waited: started.elapsed(),
                });
            }
            let client = self.clone().with_timeout(self.timeout.min(remaining));
            match client.savepoint_status(job, trigger).await {
                Ok(SavepointStatus::InProgress) => {
                    tracing::trace!(job = %job, trigger = %trigger, "savepoint in progress");
                }
                Ok(done) => return Ok(done),
                // The poll was cut short by the caller's deadline, not by a slow server.
                Err(RestError::Timeout { .. }) if Instant::now() >= deadline => {
                    return Err(RestError::OperationTimeout {
                        what: "savepoint",
                        trigger: trigger.to_string(),
                        waited: started.elapsed(),
                    });
                }
                Err(e) => return Err(e),
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(pause.min(remaining)).await;
            pause = (pause * 2).min(poll_interval);
        }
    }

    /// `POST /savepoint-disposal` with `savepoint-path`: deletes a savepoint's files. Poll
    /// with [`Self::disposal_status`].
    pub async fn dispose_savepoint(&self, path: &str) -> Result<TriggerId, RestError> {
        self.trigger(
            "/savepoint-disposal",
            json!({ "savepoint-path": path }),
            Subject::default(),
        )
        .await
    }

    /// `GET /savepoint-disposal/:triggerid`.
    pub async fn disposal_status(&self, trigger: &TriggerId) -> Result<DisposalStatus, RestError> {
        let path = format!("/savepoint-disposal/{}", encode_segment(trigger.as_str()));
        let (url, body) = self.get_body(&path, Subject::default()).await?;
        Ok(
            match parse_operation(&body).map_err(|r| bad_response(&url, r, &body))? {
                Operation::InProgress => DisposalStatus::InProgress,
                Operation::Completed(_) => DisposalStatus::Completed,
                Operation::Failed(cause) => DisposalStatus::Failed { cause },
            },
        )
    }

    // ----------------------------------------------------------------------- checkpoints

    /// `GET /jobs/:id/checkpoints`: counters, latest completed, savepoint and restored
    /// snapshot.
    pub async fn checkpoints(&self, job: &JobId) -> Result<CheckpointStats, RestError> {
        let path = format!("/jobs/{job}/checkpoints");
        let (url, body) = self.get_body(&path, Subject::job(job)).await?;
        decode(&url, &body, parse_checkpoints)
    }

    /// `POST /jobs/:id/checkpoints` with `checkpointType`. Poll with
    /// [`Self::checkpoint_status`].
    pub async fn trigger_checkpoint(
        &self,
        job: &JobId,
        kind: CheckpointType,
        trigger: Option<&TriggerId>,
    ) -> Result<TriggerId, RestError> {
        let mut body = json!({ "checkpointType": kind });
        if let Some(t) = trigger {
            body["triggerId"] = json!(t.as_str());
        }
        self.trigger(&format!("/jobs/{job}/checkpoints"), body, Subject::job(job))
            .await
    }

    /// `GET /jobs/:id/checkpoints/:triggerid`.
    pub async fn checkpoint_status(
        &self,
        job: &JobId,
        trigger: &TriggerId,
    ) -> Result<CheckpointStatus, RestError> {
        let path = format!(
            "/jobs/{job}/checkpoints/{}",
            encode_segment(trigger.as_str())
        );
        let (url, body) = self.get_body(&path, Subject::job(job)).await?;
        match parse_operation(&body).map_err(|r| bad_response(&url, r, &body))? {
            Operation::InProgress => Ok(CheckpointStatus::InProgress),
            Operation::Failed(cause) => Ok(CheckpointStatus::Failed { cause }),
            Operation::Completed(op) => match op.get("checkpointId").and_then(Value::as_u64) {
                Some(checkpoint_id) => Ok(CheckpointStatus::Completed { checkpoint_id }),
                None => Err(bad_response(
                    &url,
                    "completed checkpoint without checkpointId",
                    &body,
                )),
            },
        }
    }

    // ----------------------------------------------------------------------- jars

    /// `POST /jars/upload` (multipart part `jarfile`, `application/x-java-archive`). The id
    /// is the base name of the stored file Flink reports. The file name must end in `.jar`.
    pub async fn upload_jar(&self, path: &Path) -> Result<JarId, RestError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| RestError::JarRead {
                path: path.to_owned(),
                source,
            })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "job.jar".to_owned());
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(name)
            .mime_str("application/x-java-archive")
            .map_err(|e| RestError::Setup {
                reason: format!("jar part: {e}"),
            })?;
        let form = reqwest::multipart::Form::new().part("jarfile", part);
        let (url, answer) = self
            .exchange(
                Method::POST,
                "/jars/upload",
                Payload::Form(form),
                self.submit_timeout,
            )
            .await?;
        let body = ok_body(&Method::POST, &url, answer, Subject::default())?;
        let jar = parse_upload(&body).map_err(|reason| bad_response(&url, reason, &body))?;
        tracing::debug!(jar = %jar, path = %path.display(), "jar uploaded");
        Ok(jar)
    }

    /// `POST /jars/:jarid/run`: runs the jar's `main()` on the JobManager and submits the job.
    /// Returns the job id Flink reports (the requested one when it was fixed).
    ///
    /// # Errors
    /// [`RestError::DuplicateJobId`], [`RestError::SnapshotNotFound`],
    /// [`RestError::StateNotMappable`] (these leave a FAILED job with that id behind, P10),
    /// [`RestError::JarNotFound`].
    pub async fn run_jar(&self, jar: &JarId, request: &JarRunRequest) -> Result<JobId, RestError> {
        let body = serde_json::to_value(request).map_err(|e| RestError::Setup {
            reason: format!("run request: {e}"),
        })?;
        let path = format!("/jars/{}/run", encode_segment(jar.as_str()));
        // No `job`: the job is what this call creates, a 404 or 500 is not about it.
        let subject = Subject {
            job: None,
            jar: Some(jar.as_str()),
            submitted: request.job_id.as_ref().map(JobId::as_str),
        };
        let (url, answer) = self
            .exchange(
                Method::POST,
                &path,
                Payload::Json(body),
                self.submit_timeout,
            )
            .await?;
        let body = ok_body(&Method::POST, &url, answer, subject)?;
        let job = decode(&url, &body, parse_run)?;
        tracing::debug!(jar = %jar, job = %job, "job submitted");
        Ok(job)
    }

    /// `DELETE /jars/:jarid`.
    pub async fn delete_jar(&self, jar: &JarId) -> Result<(), RestError> {
        let path = format!("/jars/{}", encode_segment(jar.as_str()));
        let subject = Subject {
            jar: Some(jar.as_str()),
            ..Subject::default()
        };
        let (url, answer) = self
            .exchange(Method::DELETE, &path, Payload::Empty, self.timeout)
            .await?;
        ok_body(&Method::DELETE, &url, answer, subject).map(drop)
    }

    // ----------------------------------------------------------------------- plumbing

    async fn get_body(
        &self,
        path: &str,
        subject: Subject<'_>,
    ) -> Result<(String, Vec<u8>), RestError> {
        let (url, answer) = self
            .exchange(Method::GET, path, Payload::Empty, self.timeout)
            .await?;
        let body = ok_body(&Method::GET, &url, answer, subject)?;
        Ok((url, body))
    }

    /// GETs `path` and parses a 2xx answer with `parse`.
    async fn get<T>(
        &self,
        path: &str,
        subject: Subject<'_>,
        parse: fn(&[u8]) -> Result<T, model::BadBody>,
    ) -> Result<T, RestError> {
        let (url, body) = self.get_body(path, subject).await?;
        decode(&url, &body, parse)
    }

    /// POSTs a trigger body and reads `{"request-id": ...}`.
    async fn trigger(
        &self,
        path: &str,
        body: Value,
        subject: Subject<'_>,
    ) -> Result<TriggerId, RestError> {
        let (url, answer) = self
            .exchange(Method::POST, path, Payload::Json(body), self.timeout)
            .await?;
        let body = ok_body(&Method::POST, &url, answer, subject)?;
        decode(&url, &body, parse_trigger)
    }

    /// One HTTP exchange within `timeout`: connect, send, read the whole answer.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        payload: Payload,
        timeout: Duration,
    ) -> Result<(String, Answer), RestError> {
        let url = format!("{}{}", self.base, path);
        let mut request = self.http.request(method.clone(), &url).timeout(timeout);
        request = match payload {
            Payload::Empty => request,
            Payload::Json(v) => request.json(&v),
            Payload::Form(form) => request.multipart(form),
        };
        let started = Instant::now();
        let result = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>(Answer {
                status,
                body: body.to_vec(),
            })
        }
        .await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(answer) => {
                tracing::debug!(%method, %url, status = answer.status, elapsed_ms, "Flink REST call");
                Ok((url, answer))
            }
            Err(e) => {
                tracing::debug!(%method, %url, elapsed_ms, error = %e, "Flink REST call failed");
                Err(transport_error(method, url, timeout, e))
            }
        }
    }
}

impl<'a> Subject<'a> {
    fn job(job: &'a JobId) -> Self {
        Subject {
            job: Some(job.as_str()),
            ..Subject::default()
        }
    }
}

fn transport_error(method: Method, url: String, timeout: Duration, e: reqwest::Error) -> RestError {
    if e.is_timeout() {
        RestError::Timeout {
            method,
            url,
            after: timeout,
        }
    } else if e.is_connect() {
        RestError::Connect {
            reason: innermost(&e),
            url,
            source: e,
        }
    } else if e.is_builder() {
        RestError::Setup {
            reason: format!("{method} {url}: {e}"),
        }
    } else {
        RestError::Transport {
            reason: innermost(&e),
            method,
            url,
            source: e,
        }
    }
}

/// The body of a 2xx answer, or the classified error.
fn ok_body(
    method: &Method,
    url: &str,
    answer: Answer,
    subject: Subject<'_>,
) -> Result<Vec<u8>, RestError> {
    if (200..300).contains(&answer.status) {
        Ok(answer.body)
    } else {
        Err(classify(method, url, answer.status, &answer.body, subject))
    }
}

/// Parses a 2xx body; a body of the wrong shape is a [`RestError::BadResponse`].
fn decode<T>(
    url: &str,
    body: &[u8],
    parse: fn(&[u8]) -> Result<T, model::BadBody>,
) -> Result<T, RestError> {
    parse(body).map_err(|reason| bad_response(url, reason, body))
}

/// Percent-encodes one path segment (jar ids carry the user's file name).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Text helpers shared by the submodules
// ---------------------------------------------------------------------------------------

fn first_line(s: &str) -> &str {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_must_be_http_without_query() {
        let c = FlinkRestClient::new("http://localhost:8081/").unwrap();
        assert_eq!(c.base_url(), "http://localhost:8081");
        assert_eq!(c.timeout(), DEFAULT_REST_TIMEOUT);
        let c = FlinkRestClient::new("https://flink.example.com/proxy/").unwrap();
        assert_eq!(c.base_url(), "https://flink.example.com/proxy");
        assert_eq!(
            c.with_timeout(Duration::from_millis(300)).timeout(),
            Duration::from_millis(300)
        );
        for bad in [
            "localhost:8081",
            "ftp://host/",
            "http://h/?a=b",
            "not a url",
        ] {
            let e = FlinkRestClient::new(bad).unwrap_err();
            assert_eq!(e.metric_label(), "setup", "{bad}");
        }
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(
            encode_segment("2871a8d8-2b4f_stateful-counter.jar"),
            "2871a8d8-2b4f_stateful-counter.jar"
        );
        assert_eq!(encode_segment("my job/v1?.jar"), "my%20job%2Fv1%3F.jar");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }

    #[test]
    fn text_helpers() {
        assert_eq!(first_line("\n  first \nsecond"), "first");
        assert_eq!(first_line(""), "");
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("ééé", 2), "éé…");
    }
}

impl FlinkApi for FlinkRestClient {
    async fn cluster_overview(&self) -> Result<ClusterOverview, RestError> {
        FlinkRestClient::cluster_overview(self).await
    }
    async fn jobs_overview(&self) -> Result<Vec<JobOverview>, RestError> {
        FlinkRestClient::jobs_overview(self).await
    }
    async fn job_details(&self, job: &JobId) -> Result<JobDetails, RestError> {
        FlinkRestClient::job_details(self, job).await
    }
    async fn jobmanager_config(
        &self,
    ) -> Result<std::collections::BTreeMap<String, String>, RestError> {
        FlinkRestClient::jobmanager_config(self).await
    }
    async fn job_exceptions(&self, job: &JobId) -> Result<Option<JobExceptions>, RestError> {
        FlinkRestClient::job_exceptions(self, job).await
    }
    async fn cancel(&self, job: &JobId) -> Result<(), RestError> {
        FlinkRestClient::cancel(self, job).await
    }
    async fn stop_with_savepoint(
        &self,
        job: &JobId,
        target_dir: Option<&str>,
        drain: bool,
        format: SavepointFormat,
        trigger: Option<&TriggerId>,
    ) -> Result<TriggerId, RestError> {
        FlinkRestClient::stop_with_savepoint(self, job, target_dir, drain, format, trigger).await
    }
    async fn trigger_savepoint(
        &self,
        job: &JobId,
        target_dir: Option<&str>,
        format: SavepointFormat,
        trigger: Option<&TriggerId>,
    ) -> Result<TriggerId, RestError> {
        FlinkRestClient::trigger_savepoint(self, job, target_dir, format, trigger).await
    }
    async fn savepoint_status(
        &self,
        job: &JobId,
        trigger: &TriggerId,
    ) -> Result<SavepointStatus, RestError> {
        FlinkRestClient::savepoint_status(self, job, trigger).await
    }
    async fn trigger_checkpoint(
        &self,
        job: &JobId,
        kind: CheckpointType,
        trigger: Option<&TriggerId>,
    ) -> Result<TriggerId, RestError> {
        FlinkRestClient::trigger_checkpoint(self, job, kind, trigger).await
    }
    async fn checkpoint_status(
        &self,
        job: &JobId,
        trigger: &TriggerId,
    ) -> Result<CheckpointStatus, RestError> {
        FlinkRestClient::checkpoint_status(self, job, trigger).await
    }
    async fn checkpoints(&self, job: &JobId) -> Result<CheckpointStats, RestError> {
        FlinkRestClient::checkpoints(self, job).await
    }
    async fn job_metrics(
        &self,
        job: &JobId,
        names: &[&str],
    ) -> Result<std::collections::BTreeMap<String, String>, RestError> {
        FlinkRestClient::job_metrics(self, job, names).await
    }
    async fn dispose_savepoint(&self, path: &str) -> Result<TriggerId, RestError> {
        FlinkRestClient::dispose_savepoint(self, path).await
    }
    async fn disposal_status(&self, trigger: &TriggerId) -> Result<DisposalStatus, RestError> {
        FlinkRestClient::disposal_status(self, trigger).await
    }
    async fn upload_jar(&self, path: &Path) -> Result<JarId, RestError> {
        FlinkRestClient::upload_jar(self, path).await
    }
    async fn run_jar(&self, jar: &JarId, request: &JarRunRequest) -> Result<JobId, RestError> {
        FlinkRestClient::run_jar(self, jar, request).await
    }
    async fn set_parallelism(
        &self,
        job: &JobId,
        parallelism: &std::collections::BTreeMap<String, u32>,
    ) -> Result<(), RestError> {
        FlinkRestClient::set_parallelism(self, job, parallelism).await
    }
}

/// Connects [`FlinkRestClient`]s over HTTP with the agent's per-call deadlines.
#[derive(Debug, Clone)]
pub struct HttpFlink {
    /// Deadline of each ordinary call.
    pub timeout: Duration,
    /// Deadline of jar upload and run.
    pub submit_timeout: Duration,
}

impl Default for HttpFlink {
    fn default() -> Self {
        HttpFlink {
            timeout: DEFAULT_REST_TIMEOUT,
            submit_timeout: DEFAULT_REST_SUBMIT_TIMEOUT,
        }
    }
}

impl FlinkApiFactory for HttpFlink {
    type Api = FlinkRestClient;
    fn connect(&self, base_url: &str) -> Result<FlinkRestClient, RestError> {
        Ok(FlinkRestClient::new(base_url)?
            .with_timeout(self.timeout)
            .with_submit_timeout(self.submit_timeout))
    }
}
