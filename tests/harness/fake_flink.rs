//! A stateful, in-memory fake of Flink for the executor's scenario tests and benchmarks.
//!
//! [`FakeFlink`] is one shared model (clusters, jobs, snapshots, pending operations, faults,
//! a log of external steps) behind three of the agent's boundaries at once:
//! * [`Runtime`]: `deploy_cluster` replaces a cluster (and starts an application cluster's
//!   job), `delete_cluster` removes it, `observe_cluster` says Missing / Running / Exited.
//! * [`FlinkApiFactory`]: its [`FakeApi`] is one cluster's REST API, found by the URL that
//!   [`Runtime::rest_url`] gave (`http://fake.invalid/<namespace>/<name>`; the last two path
//!   segments name the cluster). A cluster that is missing or exited, or an unknown URL,
//!   answers [`RestError::Timeout`] at once.
//! * [`SnapshotStorage`]: savepoints and checkpoints, which outlive clusters.
//!
//! The same model is served over real HTTP by [`super::fake_http::FakeHttp`], so that the
//! real `FlinkRestClient` can run against it; both paths share one implementation of every
//! call (the in-memory path even renders and re-reads the same JSON where the answer type
//! is `Deserialize`).
//!
//! What it models (mirroring the Flink behaviour documented in `src/flink/rest.rs`):
//! * jobs with a *state value* (a counter standing for keyed state): [`FakeFlink::advance`]
//!   adds to every running job; savepoints and checkpoints capture it; a job started from a
//!   snapshot location starts with the captured value ([`FakeJob::restored_from`]); an
//!   unknown location fails the job (application cluster) or the submission
//!   ([`RestError::SnapshotNotFound`], leaving a FAILED job with that id behind, P10);
//! * a fixed job id is accepted once per session cluster incarnation, even after the job
//!   ended ([`RestError::DuplicateJobId`]); jobs stay listed after they end (also on an
//!   application cluster, as with `execution.shutdown-on-application-finish: false`);
//! * savepoint, stop-with-savepoint and checkpoint triggers with caller-chosen trigger ids
//!   (the same id twice is one operation; ids must be 32 hex digits, as Flink's); triggers
//!   for unknown or ended jobs are accepted and fail afterwards with
//!   `FlinkJobNotFoundException` (P12); an operation stays in progress for
//!   [`FakeFlink::set_polls_in_progress`] status polls (default 1), or while held
//!   ([`FakeFlink::hold_operations`]); failures are a completed operation with a
//!   `failure-cause`; a failed stop leaves the job running;
//! * checkpoint retention (`execution.checkpointing.num-retained`, default 1) and
//!   `externalized-checkpoint-retention` (the fake's clusters default to
//!   `RETAIN_ON_CANCELLATION`, as the local runtime's do); checkpoint ids continue from the
//!   snapshot a job restored from; savepoints and checkpoints share the id counter;
//! * in-place rescaling only under `jobmanager.scheduler: adaptive` (otherwise HTTP 500
//!   `UnsupportedOperationException`, as `SchedulerNG`'s default methods): `GET` and `PUT
//!   /jobs/:id/resource-requirements` with a lower and an upper bound per vertex (lower 1 at
//!   start; a `PUT` must name every vertex with `1 <= lower <= upper`, else 400); vertices
//!   run at their upper bound. `set_parallelism` takes the real client's path (`GET`, then
//!   a `PUT` only if a bound changes, as the operator's `AbstractFlinkService.scale`);
//!   `pipeline.jobvertex-parallelism-overrides` is applied when a job starts;
//! * P9 optionally: [`FakeFlink::set_task_start_polls`] keeps new jobs' tasks DEPLOYING
//!   while the job already reports RUNNING;
//! * faults per cluster and call kind ([`Call`], [`Fault`], [`Times`]), a JobManager that
//!   stops answering, failing savepoints and checkpoints, jobs that fail on demand or at a
//!   state value, a killed cluster;
//! * a log of the mutating calls ([`FakeFlink::calls`]) with a step counter and a gate that
//!   parks the caller right after the k-th step ([`FakeFlink::pause_after_step`]), so a
//!   test can drop the agent after every external step.
//!
//! What it leaves out: restart strategies (a failing job goes straight to FAILED), slot
//! accounting beyond the `/overview` numbers, operator-state mapping (`StateNotMappable`,
//! `allowNonRestoredState`), claim modes, high availability and JobManager failover, the
//! REST caches of P8, savepoint disposal, `/applications`, and real time (nothing happens
//! between calls unless a test calls [`FakeFlink::advance`], [`FakeFlink::settle`] or polls).
//! Nothing sleeps, except the optional latencies for benchmarks ([`FakeFlink::set_latency`],
//! [`FakeFlink::set_deploy_latency`]).
//!
//! A benchmark can include this file (and `fake_http.rs`) with `#[path]` modules side by side.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use flink_gitops::apply::runtime::{
    ClusterPresence, ClusterRequest, Runtime, RuntimeError, SnapshotStorage, StorageError,
};
use flink_gitops::config::{self, DEFAULT_REST_TIMEOUT};
use flink_gitops::flink::rest::{
    CheckpointCounts, CheckpointStats, CheckpointStatus, CheckpointType, ClusterOverview,
    CompletedCheckpoint, ExceptionInfo, FailureCause, FlinkApi, FlinkApiFactory, JarId,
    JarRunRequest, JobDetails, JobExceptions, JobId, JobOverview, JobStatus, RestError,
    RestoredCheckpoint, SavepointFormat, SavepointStatus, TriggerId,
};
use flink_gitops::flink::spec::{Kind, ResourceKey};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::watch;

/// Host of the URLs [`Runtime::rest_url`] gives when no HTTP server serves the fake.
pub const FAKE_BASE: &str = "http://fake.invalid";
/// The Flink version the fake reports.
pub const FAKE_FLINK_VERSION: &str = "2.3.0";
/// Where the fake's clusters write savepoints and checkpoints by default
/// (`<root>/savepoints/<namespace>/<name>`, `<root>/checkpoints/<namespace>/<name>`).
pub const FAKE_STATE_ROOT: &str = "file:///fake";
/// The fake clock starts here (epoch milliseconds).
const CLOCK_START_MS: i64 = 1_795_000_000_000;

// ---------------------------------------------------------------------------------------
// Public vocabulary
// ---------------------------------------------------------------------------------------

/// The kinds of external call, for faults, latency and the call log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Call {
    // Runtime
    DeployCluster,
    DeleteCluster,
    ObserveCluster,
    RestUrl,
    FetchJar,
    // REST
    ClusterOverview,
    JobsOverview,
    JobDetails,
    JobExceptions,
    Cancel,
    Stop,
    TriggerSavepoint,
    SavepointStatus,
    TriggerCheckpoint,
    CheckpointStatus,
    Checkpoints,
    UploadJar,
    RunJar,
    SetParallelism,
    /// `GET /jobs/:id/resource-requirements` (read by the real client's `set_parallelism`
    /// before its `PUT`, and by the in-memory one the same way).
    ResourceRequirements,
    /// `GET /jobs/:id/metrics`.
    JobMetrics,
    /// `POST /savepoint-disposal`.
    DisposeSavepoint,
    /// `GET /savepoint-disposal/:trigger`.
    DisposalStatus,
    /// `GET /jobmanager/config` (drift detection reads it every cycle for resting clusters).
    JobManagerConfig,
    /// REST endpoints outside [`FlinkApi`] that the HTTP server also answers (`/config`,
    /// `/jobs/:id/status`).
    OtherRest,
}

impl Call {
    /// Calls that change something outside the agent: these are logged and counted as steps.
    pub fn is_mutating(self) -> bool {
        matches!(
            self,
            Call::DeployCluster
                | Call::DeleteCluster
                | Call::Cancel
                | Call::Stop
                | Call::TriggerSavepoint
                | Call::TriggerCheckpoint
                | Call::UploadJar
                | Call::RunJar
                | Call::SetParallelism
                | Call::DisposeSavepoint
        )
    }

    fn is_runtime(self) -> bool {
        matches!(
            self,
            Call::DeployCluster
                | Call::DeleteCluster
                | Call::ObserveCluster
                | Call::RestUrl
                | Call::FetchJar
        )
    }
}

/// An injected failure of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 500 `Internal server error.` before the call has any effect
    /// ([`RestError::HttpStatus`]; a runtime call fails with [`RuntimeError::Unavailable`]).
    Http500,
    /// No answer, before the call has any effect: [`RestError::Timeout`] at once in memory;
    /// over HTTP the server holds the connection until the client gives up. A runtime call
    /// fails with [`RuntimeError::Unavailable`].
    Timeout,
    /// The call takes effect, then its answer is lost ([`RestError::Timeout`], or
    /// [`RuntimeError::Unavailable`] for a runtime call).
    LostAnswer,
}

/// How long a fault lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    /// The next `n` matching calls.
    Next(u32),
    /// Until [`FakeFlink::clear_faults`] (or [`FakeFlink::resume_answering`]).
    UntilCleared,
}

/// Which jobs a failure rule of [`FakeFlink::fail_new_jobs`] applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobMatch {
    Any,
    /// Jobs of this cluster (a FlinkDeployment key; kind is ignored).
    Cluster(ResourceKey),
    /// Jobs whose program arguments contain this one.
    Arg(String),
    /// Jobs with this name.
    Name(String),
}

/// The snapshot a job started from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The location as the job was given it.
    pub location: String,
    /// The state value stored there (the job's start value).
    pub value: u64,
    pub checkpoint_id: u64,
    pub is_savepoint: bool,
}

/// A job as the fake knows it (a copy; every job ever started is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeJob {
    pub id: JobId,
    pub name: String,
    /// The cluster it ran on (a FlinkDeployment key).
    pub cluster: ResourceKey,
    pub state: JobStatus,
    /// The state value (see [`FakeFlink::advance`]).
    pub value: u64,
    pub restored_from: Option<Restored>,
    /// Vertex id to parallelism.
    pub parallelism: BTreeMap<String, u32>,
    pub args: Vec<String>,
    pub entry_class: Option<String>,
    /// The jar URI (application job) or the uploaded jar's URI (session job) when known.
    pub jar: Option<String>,
    /// The job's effective configuration (cluster's, then the submission's).
    pub config: BTreeMap<String, String>,
    /// The user exception's message when the job failed.
    pub failure: Option<String>,
    /// Whether the job ended by a stop with `drain: true`.
    pub drained: bool,
    /// Whether the job's cluster (incarnation) still exists and was not killed (a job on a
    /// removed, replaced or killed cluster keeps the state it had then).
    pub live: bool,
    /// Whether all tasks run (P9; see [`FakeFlink::set_task_start_polls`]).
    pub tasks_running: bool,
}

/// A stored savepoint or checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeSnapshot {
    /// Normalised location (`file:/...`).
    pub location: String,
    /// The job that wrote it (`None` for one put there by [`FakeFlink::put_savepoint`]).
    pub job: Option<JobId>,
    pub checkpoint_id: u64,
    pub is_savepoint: bool,
    pub value: u64,
    /// Removed (subsumed, retention, or [`SnapshotStorage::delete`]).
    pub deleted: bool,
}

/// A cluster as the fake knows it (a copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeCluster {
    pub key: ResourceKey,
    pub application: bool,
    pub generation: u64,
    pub task_managers: u32,
    /// Runtime defaults, the fake's defaults, then the manifest's configuration.
    pub config: BTreeMap<String, String>,
    /// Why it exited, when [`FakeFlink::kill_cluster`] killed it.
    pub exited: Option<String>,
    /// Ids of the jobs it lists, oldest first.
    pub jobs: Vec<JobId>,
}

/// One mutating call as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// 1-based step number (the value of [`FakeFlink::steps`] after this call).
    pub step: u64,
    pub call: Call,
    /// `namespace/name` of the cluster addressed.
    pub cluster: String,
    pub job: Option<JobId>,
    /// Arguments in short (`trigger=... drain=false`).
    pub detail: String,
    /// `ok`, `error: ...` (Flink refused), or `fault: ...` (injected).
    pub outcome: String,
}

impl CallRecord {
    /// Whether the call took effect (succeeded, or its answer was lost after the effect).
    pub fn took_effect(&self) -> bool {
        self.outcome == "ok" || self.outcome == "fault: lost answer"
    }
}

// ---------------------------------------------------------------------------------------
// Internal model
// ---------------------------------------------------------------------------------------

/// `(namespace, name)`: clusters are found by these (the URL carries no kind).
pub(super) type ClusterKey = (String, String);

fn ck(key: &ResourceKey) -> ClusterKey {
    (key.namespace.clone(), key.name.clone())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Savepoint { cancel: bool },
    Stop { drain: bool },
    Checkpoint,
}

#[derive(Debug, Clone)]
pub(super) struct Cause {
    class: String,
    stack_trace: String,
}

#[derive(Debug, Clone)]
enum OpResult {
    Savepoint(String),
    Checkpoint(u64),
    Failed(Cause),
}

#[derive(Debug, Clone)]
struct Op {
    kind: OpKind,
    target_dir: Option<String>,
    polls_left: u32,
    /// Decided at trigger time ([`FakeFlink::fail_next_savepoints`]).
    doomed: bool,
    result: Option<OpResult>,
}

#[derive(Debug, Clone)]
struct Vertex {
    id: String,
    name: String,
    /// The parallelism it runs at: the upper bound of its resource requirements (the fake
    /// has slots enough for any).
    parallelism: u32,
    /// The lower bound of its resource requirements (adaptive scheduler); 1 at start.
    lower: u32,
}

#[derive(Debug, Clone)]
struct ExceptionEntry {
    class: String,
    message: String,
    timestamp: i64,
}

#[derive(Debug, Clone)]
struct SnapshotRef {
    id: u64,
    location: Option<String>,
    timestamp: i64,
}

#[derive(Debug, Clone)]
struct Job {
    id: JobId,
    name: String,
    cluster: ResourceKey,
    incarnation: u64,
    state: JobStatus,
    value: u64,
    restored: Option<Restored>,
    restore_ms: i64,
    vertices: Vec<Vertex>,
    config: BTreeMap<String, String>,
    args: Vec<String>,
    entry_class: Option<String>,
    jar: Option<String>,
    start_ms: i64,
    end_ms: i64,
    exception: Option<ExceptionEntry>,
    fail_at: Option<(u64, String)>,
    task_polls_left: u32,
    next_checkpoint_id: u64,
    checkpoints: Vec<SnapshotRef>,
    latest_savepoint: Option<SnapshotRef>,
    completed: u64,
    failed: u64,
    /// Restarts of this job id so far (`numRestarts`; see [`FakeFlink::restart_job`]).
    restarts: u64,
    drained: bool,
    live: bool,
}

impl Job {
    fn tasks_running(&self) -> bool {
        self.state == JobStatus::Running && self.task_polls_left == 0
    }
}

#[derive(Debug, Clone)]
struct Jar {
    name: String,
    content: String,
}

#[derive(Debug)]
struct Cluster {
    key: ResourceKey,
    incarnation: u64,
    application: bool,
    generation: u64,
    config: BTreeMap<String, String>,
    task_managers: u32,
    /// TaskManagers registered with the JobManager when not all that were started are
    /// ([`FakeFlink::set_task_managers`]).
    registered: Option<u32>,
    exited: Option<String>,
    /// Indices into [`State::jobs`].
    jobs: Vec<usize>,
    jars: BTreeMap<String, Jar>,
    /// Savepoint and stop operations by (job, trigger id): one cache, as in Flink.
    savepoint_ops: BTreeMap<(JobId, String), Op>,
    checkpoint_ops: BTreeMap<(JobId, String), Op>,
}

#[derive(Debug, Clone)]
struct Snapshot {
    job: Option<JobId>,
    checkpoint_id: u64,
    is_savepoint: bool,
    value: u64,
    deleted: bool,
}

/// What a test asked of a cluster's snapshots; kept across redeploys, settable before the
/// cluster exists.
#[derive(Debug, Clone, Default)]
struct SnapshotPlan {
    hold: bool,
    fail_savepoints: u32,
    fail_checkpoints: u32,
    fail_disposals: u32,
}

#[derive(Debug, Clone)]
struct FaultRule {
    cluster: Option<ClusterKey>,
    call: Option<Call>,
    fault: Fault,
    remaining: Option<u32>,
}

#[derive(Debug, Clone)]
struct FailRule {
    matching: JobMatch,
    at_value: Option<u64>,
    message: String,
}

/// The whole model; reached only through [`FakeFlink`] (and the HTTP server).
#[derive(Debug)]
pub(super) struct State {
    clusters: BTreeMap<ClusterKey, Cluster>,
    /// Every job ever started, in start order.
    jobs: Vec<Job>,
    /// By normalised location.
    snapshots: BTreeMap<String, Snapshot>,
    log: Vec<CallRecord>,
    call_counts: BTreeMap<Call, u64>,
    faults: Vec<FaultRule>,
    plans: BTreeMap<ClusterKey, SnapshotPlan>,
    fail_rules: Vec<FailRule>,
    missing_jars: BTreeSet<String>,
    violations: Vec<String>,
    polls_in_progress: u32,
    task_start_polls: u32,
    latency: Duration,
    deploy_latency: Duration,
    http_base: Option<String>,
    clock_ms: i64,
    counter: u64,
    incarnations: u64,
    /// Savepoint disposals by trigger id: `None` done, `Some` failed with that cause.
    disposals: BTreeMap<String, Option<Cause>>,
}

/// What a call failed with, before it becomes a [`RestError`] (in memory) or an HTTP
/// answer (over HTTP). Each maps onto the answer a real Flink gives.
#[derive(Debug)]
pub(super) enum Failure {
    /// Nothing answers (cluster missing or exited, injected timeout, lost answer).
    NoAnswer,
    JobNotFound(JobId),
    DuplicateJobId(JobId),
    SnapshotNotFound(String),
    JarNotFound(String),
    TriggerNotFound {
        job: JobId,
        trigger: String,
    },
    /// A 400 `RestHandlerException` with this message.
    BadRequest(String),
    /// A 500 with this server-side exception line.
    ServerError(String),
    /// Only in memory: the jar file to upload cannot be read (the real client reads it).
    JarRead(PathBuf, std::io::Error),
}

impl Failure {
    fn injected_500() -> Failure {
        Failure::ServerError("java.lang.RuntimeException: injected fault (fake Flink)".into())
    }

    fn describe(&self) -> String {
        match self {
            Failure::NoAnswer => "no answer".into(),
            Failure::JobNotFound(j) => format!("job {j} not found"),
            Failure::DuplicateJobId(j) => format!("duplicate job id {j}"),
            Failure::SnapshotNotFound(l) => format!("snapshot {l} not found"),
            Failure::JarNotFound(j) => format!("jar {j} not found"),
            Failure::TriggerNotFound { trigger, .. } => format!("no operation {trigger}"),
            Failure::BadRequest(m) | Failure::ServerError(m) => m.clone(),
            Failure::JarRead(p, e) => format!("{}: {e}", p.display()),
        }
    }

    /// Status and `{"errors":[...]}` strings Flink 2.3 answers with.
    pub(super) fn http(&self) -> (u16, Vec<String>) {
        let internal = |exception: String| {
            (
                500,
                vec![
                    "Internal server error.".to_string(),
                    format!("<Exception on server side:\n{exception}\n\tat fake.Flink(FakeFlink.java:1)\n\nEnd of exception on server side>"),
                ],
            )
        };
        match self {
            Failure::NoAnswer => (504, vec!["no answer".into()]),
            Failure::JobNotFound(job) => (
                404,
                vec![format!("org.apache.flink.runtime.rest.NotFoundException: Job {job} not found\n\tat org.apache.flink.runtime.rest.handler.job.AbstractExecutionGraphHandler.lambda$handleRequest$1(AbstractExecutionGraphHandler.java:99)")],
            ),
            Failure::DuplicateJobId(_) => (
                400,
                vec![run_failure("Caused by: org.apache.flink.runtime.client.DuplicateJobSubmissionException: Job has already been submitted.")],
            ),
            Failure::SnapshotNotFound(location) => (
                400,
                vec![run_failure(&format!("Caused by: java.io.FileNotFoundException: Cannot find checkpoint or savepoint file/directory '{location}' on file system 'file'."))],
            ),
            Failure::JarNotFound(jar) => internal(format!("java.util.concurrent.CompletionException: org.apache.flink.runtime.rest.handler.RestHandlerException: Jar file /fake/web-upload/{jar} does not exist")),
            Failure::TriggerNotFound { job, trigger } => (
                404,
                vec![format!("org.apache.flink.runtime.rest.handler.RestHandlerException: There is no savepoint operation with triggerId={trigger} for job {job}.\n\tat org.apache.flink.runtime.rest.handler.job.savepoints.SavepointHandlers$SavepointStatusHandler.maybeCreateNotFoundError(SavepointHandlers.java:325)")],
            ),
            Failure::BadRequest(message) => (
                400,
                vec![format!("org.apache.flink.runtime.rest.handler.RestHandlerException: {message}\n\tat fake.Flink(FakeFlink.java:1)")],
            ),
            Failure::ServerError(exception) => internal(exception.clone()),
            Failure::JarRead(p, e) => (400, vec![format!("{}: {e}", p.display())]),
        }
    }

    /// The [`RestError`] the real client makes of the same answer.
    pub(super) fn into_rest_error(self, method: Method, url: String) -> RestError {
        let (status, errors) = self.http();
        let (message, detail) = error_text(&errors);
        match self {
            Failure::NoAnswer => RestError::Timeout {
                method,
                url,
                after: DEFAULT_REST_TIMEOUT,
            },
            Failure::JobNotFound(job) => RestError::JobNotFound {
                job_id: job.to_string(),
            },
            Failure::DuplicateJobId(job) => RestError::DuplicateJobId {
                job_id: job.to_string(),
                detail,
            },
            Failure::SnapshotNotFound(_) => RestError::SnapshotNotFound {
                message: innermost_line(&detail, "FileNotFoundException"),
                detail,
            },
            Failure::JarNotFound(jar) => RestError::JarNotFound {
                jar_id: jar,
                detail,
            },
            Failure::JarRead(path, source) => RestError::JarRead { path, source },
            Failure::TriggerNotFound { .. } | Failure::BadRequest(_) | Failure::ServerError(_) => {
                RestError::HttpStatus {
                    method,
                    url,
                    status,
                    message,
                    detail,
                }
            }
        }
    }
}

/// A `Could not execute application.` error of `/jars/:id/run` whose innermost cause is
/// `cause`.
fn run_failure(cause: &str) -> String {
    format!("org.apache.flink.runtime.rest.handler.RestHandlerException: Could not execute application.\n\tat org.apache.flink.runtime.webmonitor.handlers.JarRunHandler.lambda$handleRequest$1(JarRunHandler.java:114)\nCaused by: org.apache.flink.client.program.ProgramInvocationException: The main method caused an error: Failed to execute job.\n{cause}\n\t... 12 more\n")
}

/// The client's reading of `{"errors":[...]}`: one-line message and the whole detail.
fn error_text(errors: &[String]) -> (String, String) {
    let first = |s: &str| {
        s.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or_default()
            .to_string()
    };
    let mut message = errors.first().map(|e| first(e)).unwrap_or_default();
    if message == "Internal server error." {
        if let Some(line) = errors.get(1).and_then(|s| {
            s.lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("<Exception on server side"))
        }) {
            message = line.to_string();
        }
    }
    (message, errors.join("\n"))
}

fn innermost_line(detail: &str, needle: &str) -> String {
    detail
        .lines()
        .map(str::trim)
        .rfind(|l| l.contains(needle))
        .map(|l| l.strip_prefix("Caused by: ").unwrap_or(l).to_string())
        .unwrap_or_default()
}

/// A Flink `failure-cause` as the client reads it (`FailureCause::from_json`).
fn failure_cause(cause: &Cause) -> FailureCause {
    let message = cause
        .stack_trace
        .lines()
        .next()
        .unwrap_or(cause.class.as_str())
        .trim()
        .to_string();
    let root_cause = cause
        .stack_trace
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("Caused by: "))
        .map(str::to_string);
    FailureCause {
        class: cause.class.clone(),
        message,
        root_cause,
        stack_trace: cause.stack_trace.clone(),
    }
}

fn job_not_found_cause(job: &JobId) -> Cause {
    Cause {
        class: "java.util.concurrent.CompletionException".into(),
        stack_trace: format!("java.util.concurrent.CompletionException: org.apache.flink.runtime.messages.FlinkJobNotFoundException: Could not find Flink job ({job})\n\tat java.base/java.util.concurrent.CompletableFuture.encodeThrowable(CompletableFuture.java:332)\nCaused by: org.apache.flink.runtime.messages.FlinkJobNotFoundException: Could not find Flink job ({job})\n\t... 42 more\n"),
    }
}

fn checkpoint_failure_cause(reason: &str) -> Cause {
    Cause {
        class: "java.util.concurrent.CompletionException".into(),
        stack_trace: format!("java.util.concurrent.CompletionException: org.apache.flink.runtime.checkpoint.CheckpointException: {reason}\n\tat java.base/java.util.concurrent.CompletableFuture.encodeThrowable(CompletableFuture.java:332)\nCaused by: org.apache.flink.runtime.checkpoint.CheckpointException: {reason}\n\t... 5 more\n"),
    }
}

/// `file:///x` and `/x` become `file:/x`, without a trailing slash (Flink reports paths so).
pub fn normalize_location(location: &str) -> String {
    let trimmed = location.trim().trim_end_matches('/');
    if let Some(rest) = trimmed.strip_prefix("file://") {
        if rest.starts_with('/') {
            return format!("file:{rest}");
        }
    }
    if trimmed.starts_with('/') {
        return format!("file:{trimmed}");
    }
    trimmed.to_string()
}

fn is_trigger_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A configured value; an empty one counts as unset.
fn lookup<'a>(cfg: &'a BTreeMap<String, String>, option: &config::FlinkOption) -> Option<&'a str> {
    config::lookup(cfg, option)
        .map(|(_, v)| v)
        .filter(|v| !v.trim().is_empty())
}

/// The two vertices of a job named `name`: ids are stable per name (as operator ids are
/// per program).
fn vertices(name: &str, parallelism: u32) -> Vec<Vertex> {
    [
        ("Source: events", "source"),
        ("keyed-counter -> sink", "counter"),
    ]
    .iter()
    .map(|(vname, salt)| Vertex {
        id: JobId::derived(&format!("fake-vertex/{name}/{salt}")).to_string(),
        name: (*vname).to_string(),
        parallelism,
        lower: 1,
    })
    .collect()
}

/// `pipeline.jobvertex-parallelism-overrides` (`<vertex id>:<parallelism>,...`) applied at
/// submission, as Flink applies it to the job graph; unknown vertices are ignored.
fn with_overrides(mut vertices: Vec<Vertex>, cfg: &BTreeMap<String, String>) -> Vec<Vertex> {
    let Some(overrides) = lookup(cfg, &config::PARALLELISM_OVERRIDES) else {
        return vertices;
    };
    for pair in overrides.split(',') {
        let Some((id, p)) = pair.trim().split_once(':') else {
            continue;
        };
        let Ok(p) = p.trim().parse::<u32>() else {
            continue;
        };
        if let Some(v) = vertices.iter_mut().find(|v| v.id == id.trim()) {
            v.parallelism = p.max(1);
        }
    }
    vertices
}

const TASK_STATES: [&str; 11] = [
    "CREATED",
    "SCHEDULED",
    "DEPLOYING",
    "RUNNING",
    "FINISHED",
    "CANCELING",
    "CANCELED",
    "FAILED",
    "RECONCILING",
    "INITIALIZING",
    "RESTARTING",
];

/// The execution state every task of a job in this state is in.
fn task_state(job: &Job) -> &'static str {
    match job.state {
        JobStatus::Running if job.task_polls_left > 0 => "DEPLOYING",
        JobStatus::Running => "RUNNING",
        JobStatus::Finished => "FINISHED",
        JobStatus::Canceled | JobStatus::Cancelling => "CANCELED",
        JobStatus::Failed | JobStatus::Failing => "FAILED",
        _ => "CREATED",
    }
}

fn status_json(s: JobStatus) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

/// The answer of one operation's status.
#[derive(Debug, Clone)]
pub(super) enum OpView {
    InProgress,
    Savepoint(String),
    Checkpoint(u64),
    Failed(Cause),
}

impl OpView {
    /// `GET /jobs/:id/savepoints/:trigger` and `.../checkpoints/:trigger` bodies.
    pub(super) fn to_json(&self) -> Value {
        match self {
            OpView::InProgress => json!({"status": {"id": "IN_PROGRESS"}, "operation": null}),
            OpView::Savepoint(location) => {
                json!({"status": {"id": "COMPLETED"}, "operation": {"location": location}})
            }
            OpView::Checkpoint(id) => {
                json!({"status": {"id": "COMPLETED"}, "operation": {"checkpointId": id}})
            }
            OpView::Failed(cause) => json!({"status": {"id": "COMPLETED"}, "operation": {
                "failure-cause": {"class": cause.class, "stack-trace": cause.stack_trace,
                                  "serialized-throwable": "rO0ABXNyAC"}}}),
        }
    }
}

/// `GET /jobs/:id/checkpoints`, before rendering.
#[derive(Debug, Clone)]
pub(super) struct StatsView {
    counts: CheckpointCounts,
    completed: Option<SnapshotRef>,
    savepoint: Option<SnapshotRef>,
    restored: Option<(Restored, i64)>,
}

impl StatsView {
    fn entry(s: &SnapshotRef, savepoint: bool) -> Value {
        json!({
            "className": "completed", "id": s.id, "status": "COMPLETED",
            "is_savepoint": savepoint, "trigger_timestamp": s.timestamp,
            "latest_ack_timestamp": s.timestamp + 5, "checkpointed_size": 4172,
            "state_size": 4172, "end_to_end_duration": 5, "num_subtasks": 2,
            "num_acknowledged_subtasks": 2,
            "checkpoint_type": if savepoint { "SAVEPOINT" } else { "CHECKPOINT" },
            "tasks": {},
            "external_path": s.location.clone().unwrap_or_else(|| "<checkpoint-not-externalized>".into()),
            "discarded": false,
        })
    }

    pub(super) fn to_json(&self) -> Value {
        let c = &self.counts;
        json!({
            "counts": {"restored": c.restored, "total": c.total, "in_progress": c.in_progress,
                       "completed": c.completed, "failed": c.failed},
            "summary": {},
            "latest": {
                "completed": self.completed.as_ref().map(|s| Self::entry(s, false)),
                "savepoint": self.savepoint.as_ref().map(|s| Self::entry(s, true)),
                "failed": null,
                "restored": self.restored.as_ref().map(|(r, ts)| json!({
                    "id": r.checkpoint_id, "restore_timestamp": ts,
                    // Flink reports true for checkpoints too (P15).
                    "is_savepoint": true, "external_path": r.location,
                })),
            },
            "history": self.completed.iter().map(|s| Self::entry(s, false)).collect::<Vec<_>>(),
        })
    }

    fn to_stats(&self) -> CheckpointStats {
        let completed = |s: &SnapshotRef, savepoint: bool| CompletedCheckpoint {
            id: s.id,
            is_savepoint: savepoint,
            external_path: s.location.clone(),
            trigger_timestamp: s.timestamp,
            latest_ack_timestamp: s.timestamp + 5,
            discarded: false,
        };
        CheckpointStats {
            counts: self.counts,
            latest_completed: self.completed.as_ref().map(|s| completed(s, false)),
            latest_savepoint: self.savepoint.as_ref().map(|s| completed(s, true)),
            latest_restored: self.restored.as_ref().map(|(r, ts)| RestoredCheckpoint {
                id: r.checkpoint_id,
                is_savepoint: true,
                external_path: Some(r.location.clone()),
                restore_timestamp: *ts,
            }),
            history: self.completed.iter().map(|s| completed(s, false)).collect(),
        }
    }
}

/// `GET /jobs/:id/exceptions`, before rendering.
#[derive(Debug, Clone)]
pub(super) struct ExceptionsView(Option<(ExceptionEntry, String)>);

impl ExceptionsView {
    const ROOT: &'static str = "org.apache.flink.runtime.JobException";

    fn root_trace() -> String {
        format!("{}: Recovery is suppressed by NoRestartBackoffTimeStrategy\n\tat org.apache.flink.runtime.executiongraph.failover.ExecutionFailureHandler.handleFailure(ExecutionFailureHandler.java:213)", Self::ROOT)
    }

    fn user_trace(e: &ExceptionEntry) -> String {
        format!(
            "{}: {}\n\tat lab.CountingFunction.processElement(CountingFunction.java:50)",
            e.class, e.message
        )
    }

    fn task_name(vertex: &str) -> String {
        format!("{vertex} (1/1) - execution #0")
    }

    pub(super) fn to_json(&self) -> Value {
        let entries = match &self.0 {
            None => vec![],
            Some((e, vertex)) => vec![json!({
                "exceptionName": Self::ROOT, "stacktrace": Self::root_trace(),
                "timestamp": e.timestamp, "failureLabels": {},
                "concurrentExceptions": [{
                    "exceptionName": e.class, "stacktrace": Self::user_trace(e),
                    "timestamp": e.timestamp - 1, "failureLabels": {},
                    "taskName": Self::task_name(vertex),
                    "endpoint": "localhost:1", "taskManagerId": "fake-tm-0",
                }],
            })],
        };
        json!({"exceptionHistory": {"entries": entries, "truncated": false}})
    }

    fn to_exceptions(&self) -> Option<JobExceptions> {
        let (e, vertex) = self.0.as_ref()?;
        let first = |s: &str| s.lines().next().unwrap_or_default().trim().to_string();
        let root_trace = Self::root_trace();
        let user_trace = Self::user_trace(e);
        Some(JobExceptions {
            root: ExceptionInfo {
                name: Self::ROOT.into(),
                message: first(&root_trace),
                stacktrace: root_trace,
                timestamp: e.timestamp,
                task_name: None,
            },
            first_concurrent: Some(ExceptionInfo {
                name: e.class.clone(),
                message: first(&user_trace),
                stacktrace: user_trace,
                timestamp: e.timestamp - 1,
                task_name: Some(Self::task_name(vertex)),
            }),
        })
    }
}

/// The fields of a `/jars/:id/run` body the fake reads (Flink 2.x names).
#[derive(Debug, Clone, Default)]
pub(super) struct RunBody {
    pub(super) entry_class: Option<String>,
    pub(super) args: Vec<String>,
    pub(super) parallelism: Option<u32>,
    pub(super) job_id: Option<String>,
    pub(super) savepoint_path: Option<String>,
    pub(super) config: BTreeMap<String, String>,
}

impl RunBody {
    pub(super) fn from_json(v: &Value) -> RunBody {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        RunBody {
            entry_class: s("entryClass"),
            args: v
                .get("programArgsList")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            parallelism: v
                .get("parallelism")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok()),
            job_id: s("jobId"),
            savepoint_path: s("savepointPath"),
            config: v
                .get("flinkConfiguration")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// What a new job starts with.
struct JobStart {
    id: JobId,
    name: String,
    parallelism: u32,
    restore: Option<String>,
    config: BTreeMap<String, String>,
    args: Vec<String>,
    entry_class: Option<String>,
    jar: Option<String>,
}

impl State {
    fn new() -> State {
        State {
            clusters: BTreeMap::new(),
            jobs: Vec::new(),
            snapshots: BTreeMap::new(),
            log: Vec::new(),
            call_counts: BTreeMap::new(),
            faults: Vec::new(),
            plans: BTreeMap::new(),
            fail_rules: Vec::new(),
            missing_jars: BTreeSet::new(),
            violations: Vec::new(),
            polls_in_progress: 1,
            task_start_polls: 0,
            latency: Duration::ZERO,
            deploy_latency: Duration::ZERO,
            http_base: None,
            clock_ms: CLOCK_START_MS,
            counter: 0,
            incarnations: 0,
            disposals: BTreeMap::new(),
        }
    }

    fn tick(&mut self) -> i64 {
        self.clock_ms += 1;
        self.clock_ms
    }

    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// `POST /savepoint-disposal`: done at once; a savepoint that is not there fails as
    /// Flink's does (`FileNotFoundException`), and so do the next injected failures.
    fn dispose(&mut self, cluster: &ClusterKey, location: &str) -> Result<String, Failure> {
        if !self.clusters.contains_key(cluster) {
            return Err(Failure::NoAnswer);
        }
        let trigger = format!("{:032x}", 0xd150_0000_0000_0000_u64 + self.next());
        let plan = self.plans.entry(cluster.clone()).or_default();
        let result = if plan.fail_disposals > 0 {
            plan.fail_disposals -= 1;
            Some(Cause {
                class: "org.apache.flink.util.FlinkException".into(),
                stack_trace: format!("org.apache.flink.util.FlinkException: Could not dispose savepoint {location}.\nCaused by: java.io.IOException: injected disposal failure\n"),
            })
        } else {
            match self.snapshots.get_mut(&normalize_location(location)) {
                Some(s) if !s.deleted => {
                    s.deleted = true;
                    None
                }
                _ => Some(Cause {
                    class: "org.apache.flink.util.FlinkException".into(),
                    stack_trace: format!("org.apache.flink.util.FlinkException: Could not dispose savepoint {location}.\nCaused by: java.io.FileNotFoundException: Cannot find checkpoint or savepoint file/directory '{location}' on file system 'file'.\n"),
                }),
            }
        };
        self.disposals.insert(trigger.clone(), result);
        Ok(trigger)
    }

    fn reachable(&self, cluster: &ClusterKey) -> bool {
        self.clusters
            .get(cluster)
            .is_some_and(|c| c.exited.is_none())
    }

    /// Consumes one matching fault, if any.
    fn take_fault(&mut self, cluster: Option<&ClusterKey>, call: Call) -> Option<Fault> {
        // A rule for every call is the JobManager's silence: runtime calls still answer.
        let i = self.faults.iter().position(|f| {
            f.call.map_or(!call.is_runtime(), |c| c == call)
                && f.cluster.as_ref().is_none_or(|c| Some(c) == cluster)
        })?;
        let fault = self.faults[i].fault;
        if let Some(n) = &mut self.faults[i].remaining {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.faults.remove(i);
            }
        }
        Some(fault)
    }

    fn record(
        &mut self,
        call: Call,
        cluster: String,
        job: Option<JobId>,
        detail: String,
        outcome: String,
    ) -> u64 {
        let step = self.log.len() as u64 + 1;
        self.log.push(CallRecord {
            step,
            call,
            cluster,
            job,
            detail,
            outcome,
        });
        step
    }

    /// The index of the job `id` that `cluster` lists (the newest one with that id).
    fn listed(&self, cluster: &ClusterKey, id: &JobId) -> Option<usize> {
        let c = self.clusters.get(cluster)?;
        c.jobs
            .iter()
            .rev()
            .copied()
            .find(|&i| &self.jobs[i].id == id)
    }

    fn find_job(&self, id: &JobId) -> Option<&Job> {
        // Prefer a live one, then the newest.
        self.jobs
            .iter()
            .rev()
            .find(|j| &j.id == id && j.live)
            .or_else(|| self.jobs.iter().rev().find(|j| &j.id == id))
    }

    fn find_job_mut(&mut self, id: &JobId) -> Option<usize> {
        let live = self.jobs.iter().rposition(|j| &j.id == id && j.live);
        live.or_else(|| self.jobs.iter().rposition(|j| &j.id == id))
    }

    fn snapshot(&self, location: &str) -> Option<&Snapshot> {
        self.snapshots
            .get(&normalize_location(location))
            .filter(|s| !s.deleted)
    }

    fn view_job(&self, j: &Job) -> FakeJob {
        FakeJob {
            id: j.id.clone(),
            name: j.name.clone(),
            cluster: j.cluster.clone(),
            state: j.state,
            value: j.value,
            restored_from: j.restored.clone(),
            parallelism: j
                .vertices
                .iter()
                .map(|v| (v.id.clone(), v.parallelism))
                .collect(),
            args: j.args.clone(),
            entry_class: j.entry_class.clone(),
            jar: j.jar.clone(),
            config: j.config.clone(),
            failure: j.exception.as_ref().map(|e| e.message.clone()),
            drained: j.drained,
            live: j.live,
            tasks_running: j.tasks_running(),
        }
    }

    // ------------------------------------------------------------------- job lifecycle

    /// Starts a job on `cluster`; a restore location that is not stored fails the job
    /// (returned as `Err` with the job's index, which stays listed).
    fn start_job(&mut self, cluster: &ClusterKey, s: JobStart) -> Result<usize, usize> {
        let now = self.tick();
        let incarnation = self
            .clusters
            .get(cluster)
            .map(|c| c.incarnation)
            .unwrap_or(0);
        let key = self
            .clusters
            .get(cluster)
            .map(|c| c.key.clone())
            .unwrap_or_else(|| ResourceKey::new(&cluster.0, Kind::FlinkDeployment, &cluster.1));
        let restored = s.restore.as_ref().map(|loc| {
            self.snapshot(loc).map(|snap| Restored {
                location: loc.clone(),
                value: snap.value,
                checkpoint_id: snap.checkpoint_id,
                is_savepoint: snap.is_savepoint,
            })
        });
        let missing = matches!(restored, Some(None));
        let restored = restored.flatten();
        let mut job = Job {
            id: s.id,
            name: s.name.clone(),
            cluster: key,
            incarnation,
            state: JobStatus::Running,
            value: restored.as_ref().map_or(0, |r| r.value),
            restore_ms: now,
            next_checkpoint_id: restored.as_ref().map_or(1, |r| r.checkpoint_id + 1),
            restored,
            vertices: with_overrides(vertices(&s.name, s.parallelism.max(1)), &s.config),
            config: s.config,
            args: s.args,
            entry_class: s.entry_class,
            jar: s.jar,
            start_ms: now,
            end_ms: -1,
            exception: None,
            fail_at: None,
            task_polls_left: self.task_start_polls,
            checkpoints: Vec::new(),
            latest_savepoint: None,
            completed: 0,
            restarts: 0,
            failed: 0,
            drained: false,
            live: true,
        };
        for rule in &self.fail_rules {
            let applies = match &rule.matching {
                JobMatch::Any => true,
                JobMatch::Cluster(k) => &ck(k) == cluster,
                JobMatch::Arg(a) => job.args.iter().any(|x| x == a),
                JobMatch::Name(n) => &job.name == n,
            };
            if applies {
                job.fail_at = Some((rule.at_value.unwrap_or(0), rule.message.clone()));
            }
        }
        let idx = self.jobs.len();
        self.jobs.push(job);
        if let Some(c) = self.clusters.get_mut(cluster) {
            c.jobs.push(idx);
        }
        if missing {
            let location = s.restore.unwrap_or_default();
            self.fail_job_at(
                idx,
                "java.io.FileNotFoundException",
                &format!("Cannot find checkpoint or savepoint file/directory '{location}' on file system 'file'."),
            );
            return Err(idx);
        }
        self.check_fail_at(idx);
        Ok(idx)
    }

    /// Fails a running job whose value reached its failure point.
    fn check_fail_at(&mut self, idx: usize) {
        let job = &self.jobs[idx];
        if job.state != JobStatus::Running {
            return;
        }
        if let Some((at, message)) = job.fail_at.clone() {
            if job.value >= at {
                self.fail_job_at(idx, "java.lang.IllegalStateException", &message);
            }
        }
    }

    fn fail_job_at(&mut self, idx: usize, class: &str, message: &str) {
        let now = self.tick();
        let job = &mut self.jobs[idx];
        job.exception = Some(ExceptionEntry {
            class: class.to_string(),
            message: message.to_string(),
            timestamp: now,
        });
        self.end_job(idx, JobStatus::Failed);
    }

    /// Moves a job to a terminal state and applies checkpoint retention.
    fn end_job(&mut self, idx: usize, state: JobStatus) {
        let now = self.tick();
        let job = &mut self.jobs[idx];
        job.state = state;
        job.end_ms = now;
        let retention = lookup(&job.config, &config::CHECKPOINT_RETENTION)
            .unwrap_or("NO_EXTERNALIZED_CHECKPOINTS")
            .to_ascii_uppercase();
        let delete = match retention.as_str() {
            "RETAIN_ON_CANCELLATION" => false,
            "DELETE_ON_CANCELLATION" => state != JobStatus::Failed,
            _ => true,
        };
        if delete {
            let own: Vec<String> = job
                .checkpoints
                .iter()
                .filter_map(|c| c.location.clone())
                .collect();
            for loc in own {
                if let Some(s) = self.snapshots.get_mut(&loc) {
                    s.deleted = true;
                }
            }
        }
    }

    /// Completes a checkpoint of a running job now; returns its id and location.
    fn take_checkpoint(&mut self, idx: usize) -> (u64, Option<String>) {
        let now = self.tick();
        let job = &mut self.jobs[idx];
        let id = job.next_checkpoint_id;
        job.next_checkpoint_id += 1;
        let location = lookup(&job.config, &config::CHECKPOINTS_DIR)
            .map(|dir| format!("{}/{}/chk-{id}", normalize_location(dir), job.id));
        job.completed += 1;
        job.checkpoints.push(SnapshotRef {
            id,
            location: location.clone(),
            timestamp: now,
        });
        let retained = lookup(&job.config, &config::CHECKPOINTS_RETAINED)
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let subsumed: Vec<String> = if job.checkpoints.len() > retained {
            let cut = job.checkpoints.len() - retained;
            job.checkpoints
                .drain(..cut)
                .filter_map(|c| c.location)
                .collect()
        } else {
            Vec::new()
        };
        let (job_id, value) = (job.id.clone(), job.value);
        for loc in subsumed {
            if let Some(s) = self.snapshots.get_mut(&loc) {
                s.deleted = true;
            }
        }
        if let Some(loc) = &location {
            self.snapshots.insert(
                loc.clone(),
                Snapshot {
                    job: Some(job_id),
                    checkpoint_id: id,
                    is_savepoint: false,
                    value,
                    deleted: false,
                },
            );
        }
        (id, location)
    }

    fn take_savepoint(&mut self, idx: usize, dir: &str) -> String {
        let now = self.tick();
        let n = self.next();
        let job = &mut self.jobs[idx];
        let id = job.next_checkpoint_id;
        job.next_checkpoint_id += 1;
        let location = format!(
            "{}/savepoint-{}-{n:012x}",
            normalize_location(dir),
            &job.id.as_str()[..6]
        );
        job.latest_savepoint = Some(SnapshotRef {
            id,
            location: Some(location.clone()),
            timestamp: now,
        });
        let snap = Snapshot {
            job: Some(job.id.clone()),
            checkpoint_id: id,
            is_savepoint: true,
            value: job.value,
            deleted: false,
        };
        self.snapshots.insert(location.clone(), snap);
        location
    }

    /// Finishes a pending operation (now), storing its result.
    fn finish_op(&mut self, cluster: &ClusterKey, key: &(JobId, String), checkpoint: bool) {
        let op = {
            let Some(c) = self.clusters.get(cluster) else {
                return;
            };
            let ops = if checkpoint {
                &c.checkpoint_ops
            } else {
                &c.savepoint_ops
            };
            match ops.get(key) {
                Some(op) if op.result.is_none() => op.clone(),
                _ => return,
            }
        };
        let idx = self.listed(cluster, &key.0);
        let result = match idx {
            None => OpResult::Failed(job_not_found_cause(&key.0)),
            Some(i) if self.jobs[i].state != JobStatus::Running => OpResult::Failed(
                checkpoint_failure_cause("Checkpoint Coordinator is suspending."),
            ),
            Some(i) if op.doomed => {
                self.jobs[i].failed += 1;
                OpResult::Failed(checkpoint_failure_cause(
                    "Checkpoint was declined (injected by the fake).",
                ))
            }
            Some(i) if !self.jobs[i].tasks_running() => OpResult::Failed(checkpoint_failure_cause(
                "Checkpoint triggering task is not being executed at the moment.",
            )),
            Some(i) => match op.kind {
                OpKind::Checkpoint => OpResult::Checkpoint(self.take_checkpoint(i).0),
                OpKind::Savepoint { .. } | OpKind::Stop { .. } => {
                    let dir = op
                        .target_dir
                        .clone()
                        .or_else(|| {
                            lookup(&self.jobs[i].config, &config::SAVEPOINTS_DIR)
                                .map(str::to_string)
                        })
                        .unwrap_or_else(|| format!("{FAKE_STATE_ROOT}/savepoints"));
                    let location = self.take_savepoint(i, &dir);
                    match op.kind {
                        OpKind::Stop { drain } => {
                            self.jobs[i].drained = drain;
                            self.end_job(i, JobStatus::Finished);
                        }
                        OpKind::Savepoint { cancel: true } => self.end_job(i, JobStatus::Canceled),
                        _ => {}
                    }
                    OpResult::Savepoint(location)
                }
            },
        };
        if let Some(c) = self.clusters.get_mut(cluster) {
            let ops = if checkpoint {
                &mut c.checkpoint_ops
            } else {
                &mut c.savepoint_ops
            };
            if let Some(op) = ops.get_mut(key) {
                op.result = Some(result);
            }
        }
    }

    // ------------------------------------------------------------------- REST calls

    fn overview(&self, cluster: &ClusterKey) -> Value {
        let Some(c) = self.clusters.get(cluster) else {
            return Value::Null;
        };
        let slots_per_tm = lookup(&c.config, &config::TASK_SLOTS)
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(1)
            .max(1);
        let total = c.task_managers * slots_per_tm;
        let jobs: Vec<&Job> = c.jobs.iter().map(|&i| &self.jobs[i]).collect();
        let count = |s: JobStatus| jobs.iter().filter(|j| j.state == s).count() as u32;
        let used: u32 = jobs
            .iter()
            .filter(|j| j.state == JobStatus::Running)
            .map(|j| j.vertices.iter().map(|v| v.parallelism).max().unwrap_or(0))
            .sum();
        json!({
            "taskmanagers": c.registered.unwrap_or(c.task_managers), "slots-total": total,
            "slots-available": total.saturating_sub(used),
            "jobs-running": count(JobStatus::Running), "jobs-finished": count(JobStatus::Finished),
            "jobs-cancelled": count(JobStatus::Canceled), "jobs-failed": count(JobStatus::Failed),
            "flink-version": FAKE_FLINK_VERSION, "flink-commit": "fake",
        })
    }

    fn job_times(&self, j: &Job) -> (i64, i64, i64) {
        let end = j.end_ms;
        let duration = if end >= 0 {
            end - j.start_ms
        } else {
            self.clock_ms - j.start_ms
        };
        (j.start_ms, end, duration)
    }

    fn job_tasks(j: &Job) -> Value {
        let total: u32 = j.vertices.iter().map(|v| v.parallelism).sum();
        let mut tasks = serde_json::Map::new();
        tasks.insert("total".into(), json!(total));
        for s in TASK_STATES {
            let n = if s == task_state(j) { total } else { 0 };
            tasks.insert(s.to_ascii_lowercase(), json!(n));
        }
        Value::Object(tasks)
    }

    /// `GET /jobs/overview`; polling it lets pending tasks start (P9).
    fn jobs_overview(&mut self, cluster: &ClusterKey) -> Value {
        let idxs: Vec<usize> = self
            .clusters
            .get(cluster)
            .map(|c| c.jobs.clone())
            .unwrap_or_default();
        let jobs: Vec<Value> = idxs
            .iter()
            .map(|&i| {
                let j = &self.jobs[i];
                let (start, end, duration) = self.job_times(j);
                json!({
                    "jid": j.id, "name": j.name, "state": status_json(j.state),
                    "start-time": start, "end-time": end, "duration": duration,
                    "last-modification": if end >= 0 { end } else { start },
                    "tasks": Self::job_tasks(j),
                })
            })
            .collect();
        for i in idxs {
            let j = &mut self.jobs[i];
            j.task_polls_left = j.task_polls_left.saturating_sub(1);
        }
        json!({ "jobs": jobs })
    }

    fn job_details(&mut self, cluster: &ClusterKey, job: &JobId) -> Result<Value, Failure> {
        let i = self
            .listed(cluster, job)
            .ok_or_else(|| Failure::JobNotFound(job.clone()))?;
        let j = &self.jobs[i];
        let (start, end, duration) = self.job_times(j);
        let state = task_state(j);
        let vertices: Vec<Value> = j
            .vertices
            .iter()
            .map(|v| {
                let tasks: serde_json::Map<String, Value> = TASK_STATES
                    .iter()
                    .map(|s| {
                        (
                            s.to_string(),
                            json!(if *s == state { v.parallelism } else { 0 }),
                        )
                    })
                    .collect();
                json!({
                    "id": v.id, "name": v.name, "maxParallelism": 128, "parallelism": v.parallelism,
                    "status": state, "start-time": start, "end-time": end, "duration": duration,
                    "tasks": tasks,
                })
            })
            .collect();
        let body = json!({
            "jid": j.id, "name": j.name, "isStoppable": false, "state": status_json(j.state),
            "job-type": "STREAMING", "start-time": start, "end-time": end, "duration": duration,
            "maxParallelism": -1, "now": self.clock_ms, "timestamps": {}, "vertices": vertices,
            "status-counts": {}, "plan": {},
        });
        let j = &mut self.jobs[i];
        j.task_polls_left = j.task_polls_left.saturating_sub(1);
        Ok(body)
    }

    fn job_status(&self, cluster: &ClusterKey, job: &JobId) -> Result<JobStatus, Failure> {
        let i = self.listed(cluster, job).ok_or_else(|| {
            Failure::ServerError(format!("org.apache.flink.runtime.messages.FlinkJobNotFoundException: Could not find Flink job ({job})"))
        })?;
        Ok(self.jobs[i].state)
    }

    fn exceptions(&self, cluster: &ClusterKey, job: &JobId) -> Result<ExceptionsView, Failure> {
        let i = self
            .listed(cluster, job)
            .ok_or_else(|| Failure::JobNotFound(job.clone()))?;
        let j = &self.jobs[i];
        let vertex = j
            .vertices
            .last()
            .map(|v| v.name.clone())
            .unwrap_or_default();
        Ok(ExceptionsView(j.exception.clone().map(|e| (e, vertex))))
    }

    /// `GET /jobmanager/config`: the configuration the cluster was deployed with (as
    /// changed by [`FakeFlink::set_cluster_config`]), as `[{"key", "value"}]`.
    fn jobmanager_config(&self, cluster: &ClusterKey) -> Result<Value, Failure> {
        let c = self.clusters.get(cluster).ok_or(Failure::NoAnswer)?;
        Ok(Value::Array(
            c.config
                .iter()
                .map(|(k, v)| json!({"key": k, "value": v}))
                .collect(),
        ))
    }

    fn cancel(&mut self, cluster: &ClusterKey, job: &JobId) -> Result<(), Failure> {
        let i = self
            .listed(cluster, job)
            .ok_or_else(|| Failure::JobNotFound(job.clone()))?;
        if !self.jobs[i].state.is_globally_terminal() {
            self.end_job(i, JobStatus::Canceled);
        }
        Ok(())
    }

    fn trigger(
        &mut self,
        cluster: &ClusterKey,
        job: &JobId,
        kind: OpKind,
        target_dir: Option<String>,
        trigger: Option<&str>,
    ) -> Result<String, Failure> {
        let checkpoint = kind == OpKind::Checkpoint;
        let trigger = match trigger {
            Some(t) if !is_trigger_id(t) => {
                return Err(Failure::BadRequest(format!(
                    "Request did not match expected format: invalid triggerId {t:?}"
                )))
            }
            Some(t) => t.to_ascii_lowercase(),
            None => format!("{:032x}", 0xfa4e_0000_0000_0000_u64 + self.next()),
        };
        let key = (job.clone(), trigger.clone());
        let idx = self.listed(cluster, job);
        let polls = self.polls_in_progress;
        let Some(c) = self.clusters.get_mut(cluster) else {
            return Err(Failure::NoAnswer);
        };
        // The same trigger id again is the same operation (Flink's operation cache).
        let known = if checkpoint {
            &c.checkpoint_ops
        } else {
            &c.savepoint_ops
        };
        if known.contains_key(&key) {
            return Ok(trigger);
        }
        let dir_configured = idx
            .map(|i| lookup(&self.jobs[i].config, &config::SAVEPOINTS_DIR).is_some())
            .unwrap_or(true);
        if !checkpoint && target_dir.is_none() && !dir_configured {
            return Err(Failure::BadRequest(format!(
                "Config key [{}] is not set. Property [targetDirectory] must be provided.",
                config::SAVEPOINTS_DIR.key
            )));
        }
        let doomed = idx.is_some() && {
            let plan = self.plans.entry(cluster.clone()).or_default();
            let n = if checkpoint {
                &mut plan.fail_checkpoints
            } else {
                &mut plan.fail_savepoints
            };
            let d = *n > 0;
            *n = n.saturating_sub(1);
            d
        };
        let op = Op {
            kind,
            target_dir,
            polls_left: polls,
            doomed,
            result: None,
        };
        let ops = if checkpoint {
            &mut c.checkpoint_ops
        } else {
            &mut c.savepoint_ops
        };
        ops.insert(key.clone(), op);
        // Unknown or ended jobs: accepted, failed at once (P12).
        let running = idx.is_some_and(|i| self.jobs[i].state == JobStatus::Running);
        if !running {
            let cause = job_not_found_cause(job);
            if let Some(op) = self.clusters.get_mut(cluster).and_then(|c| {
                if checkpoint {
                    c.checkpoint_ops.get_mut(&key)
                } else {
                    c.savepoint_ops.get_mut(&key)
                }
            }) {
                op.result = Some(OpResult::Failed(cause));
            }
        }
        Ok(trigger)
    }

    fn op_status(
        &mut self,
        cluster: &ClusterKey,
        job: &JobId,
        trigger: &str,
        checkpoint: bool,
    ) -> Result<OpView, Failure> {
        if !is_trigger_id(trigger) {
            return Err(Failure::BadRequest(format!(
                "invalid triggerId {trigger:?}"
            )));
        }
        let key = (job.clone(), trigger.to_ascii_lowercase());
        let not_found = || Failure::TriggerNotFound {
            job: job.clone(),
            trigger: trigger.to_string(),
        };
        let hold = self.plans.get(cluster).is_some_and(|p| p.hold);
        let c = self.clusters.get_mut(cluster).ok_or(Failure::NoAnswer)?;
        let ops = if checkpoint {
            &mut c.checkpoint_ops
        } else {
            &mut c.savepoint_ops
        };
        let op = ops.get_mut(&key).ok_or_else(not_found)?;
        if op.result.is_none() {
            if hold {
                return Ok(OpView::InProgress);
            }
            if op.polls_left > 0 {
                op.polls_left -= 1;
                return Ok(OpView::InProgress);
            }
            self.finish_op(cluster, &key, checkpoint);
        }
        let c = self.clusters.get(cluster).ok_or(Failure::NoAnswer)?;
        let ops = if checkpoint {
            &c.checkpoint_ops
        } else {
            &c.savepoint_ops
        };
        Ok(match ops.get(&key).and_then(|op| op.result.clone()) {
            None => OpView::InProgress,
            Some(OpResult::Savepoint(l)) => OpView::Savepoint(l),
            Some(OpResult::Checkpoint(id)) => OpView::Checkpoint(id),
            Some(OpResult::Failed(c)) => OpView::Failed(c),
        })
    }

    fn checkpoint_stats(&self, cluster: &ClusterKey, job: &JobId) -> Result<StatsView, Failure> {
        let i = self
            .listed(cluster, job)
            .ok_or_else(|| Failure::JobNotFound(job.clone()))?;
        let j = &self.jobs[i];
        let in_progress = self
            .clusters
            .get(cluster)
            .map(|c| {
                c.checkpoint_ops
                    .iter()
                    .chain(c.savepoint_ops.iter())
                    .filter(|((jid, _), op)| jid == job && op.result.is_none())
                    .count() as u64
            })
            .unwrap_or(0);
        let savepoints = u64::from(j.latest_savepoint.is_some());
        Ok(StatsView {
            counts: CheckpointCounts {
                restored: u64::from(j.restored.is_some()),
                total: j.completed + j.failed + in_progress + savepoints,
                in_progress,
                completed: j.completed + savepoints,
                failed: j.failed,
            },
            completed: j.checkpoints.last().cloned(),
            savepoint: j.latest_savepoint.clone(),
            restored: j.restored.clone().map(|r| (r, j.restore_ms)),
        })
    }

    fn upload(
        &mut self,
        cluster: &ClusterKey,
        file_name: &str,
        content: String,
    ) -> Result<String, Failure> {
        if !file_name.ends_with(".jar") {
            return Err(Failure::BadRequest(format!(
                "Only Jar files are allowed: {file_name}"
            )));
        }
        let n = self.next();
        let id = format!("{:08x}-fake-{n:04}_{file_name}", 0x2871_a8d8_u32);
        let c = self.clusters.get_mut(cluster).ok_or(Failure::NoAnswer)?;
        c.jars.insert(
            id.clone(),
            Jar {
                name: file_name.to_string(),
                content,
            },
        );
        Ok(id)
    }

    fn run(&mut self, cluster: &ClusterKey, jar: &str, body: RunBody) -> Result<JobId, Failure> {
        let jar_entry = {
            let c = self.clusters.get(cluster).ok_or(Failure::NoAnswer)?;
            c.jars.get(jar).cloned()
        };
        let Some(jar_entry) = jar_entry else {
            return Err(Failure::JarNotFound(jar.to_string()));
        };
        let id = match &body.job_id {
            Some(s) => JobId::parse(s).map_err(|e| Failure::BadRequest(e.to_string()))?,
            None => JobId::derived(&format!("fake-submission-{}", self.next())),
        };
        let c = self.clusters.get(cluster).ok_or(Failure::NoAnswer)?;
        // P10: a job id is accepted once per session cluster, also after the job ended.
        if c.jobs.iter().any(|&i| self.jobs[i].id == id) {
            return Err(Failure::DuplicateJobId(id));
        }
        let mut cfg = c.config.clone();
        cfg.extend(body.config.clone());
        let parallelism = body
            .parallelism
            .or_else(|| {
                lookup(&cfg, &config::PARALLELISM_DEFAULT).and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(1);
        let name = body
            .config
            .get("pipeline.name")
            .cloned()
            .or_else(|| body.entry_class.clone())
            .unwrap_or_else(|| jar_entry.name.trim_end_matches(".jar").to_string());
        let start = JobStart {
            id: id.clone(),
            name,
            parallelism,
            restore: body.savepoint_path.clone(),
            config: cfg,
            args: body.args,
            entry_class: body.entry_class,
            jar: Some(jar_entry.content),
        };
        match self.start_job(cluster, start) {
            Ok(_) => Ok(id),
            Err(_) => Err(Failure::SnapshotNotFound(
                body.savepoint_path.unwrap_or_default(),
            )),
        }
    }

    /// The job that `cluster` lists and that runs under the adaptive scheduler (only it
    /// answers the resource requirements endpoints; Flink's other schedulers throw the
    /// `UnsupportedOperationException` of `SchedulerNG`'s default methods).
    fn adaptive_job(&self, cluster: &ClusterKey, job: &JobId) -> Result<usize, Failure> {
        let i = self
            .listed(cluster, job)
            .ok_or_else(|| Failure::JobNotFound(job.clone()))?;
        if self.jobs[i].state.is_globally_terminal() {
            return Err(Failure::JobNotFound(job.clone()));
        }
        let adaptive = lookup(&self.jobs[i].config, &config::SCHEDULER)
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("adaptive"));
        if !adaptive {
            return Err(Failure::ServerError("java.lang.UnsupportedOperationException: The DefaultScheduler does not support changing the parallelism without a job restart. This feature is currently only expected to work with the AdaptiveScheduler.".into()));
        }
        Ok(i)
    }

    /// `GET /jobs/:id/resource-requirements`: vertex id to `(lowerBound, upperBound)`.
    fn resource_requirements(
        &self,
        cluster: &ClusterKey,
        job: &JobId,
    ) -> Result<BTreeMap<String, (u32, u32)>, Failure> {
        let i = self.adaptive_job(cluster, job)?;
        Ok(self.jobs[i]
            .vertices
            .iter()
            .map(|v| (v.id.clone(), (v.lower, v.parallelism)))
            .collect())
    }

    /// `PUT /jobs/:id/resource-requirements`: every vertex of the job with bounds
    /// `1 <= lower <= upper` (Flink's `JobResourceRequirements.validate`); the vertices then
    /// run at their upper bound.
    fn set_resource_requirements(
        &mut self,
        cluster: &ClusterKey,
        job: &JobId,
        wanted: &BTreeMap<String, (u32, u32)>,
    ) -> Result<(), Failure> {
        let i = self.adaptive_job(cluster, job)?;
        let j = &mut self.jobs[i];
        let mut errors = Vec::new();
        for unknown in wanted
            .keys()
            .filter(|k| !j.vertices.iter().any(|v| &v.id == *k))
        {
            errors.push(format!(
                "Unknown job vertex {unknown} in the resource requirements."
            ));
        }
        for v in j.vertices.iter().filter(|v| !wanted.contains_key(&v.id)) {
            errors.push(format!(
                "Missing resource requirements for job vertex {}.",
                v.id
            ));
        }
        for (vertex, (lower, upper)) in wanted {
            if *lower < 1 || lower > upper {
                errors.push(format!(
                    "Invalid parallelism bounds of job vertex {vertex}: lower bound {lower}, upper bound {upper}."
                ));
            }
        }
        if !errors.is_empty() {
            return Err(Failure::BadRequest(format!(
                "Invalid resource requirements: {}",
                errors.join(" ")
            )));
        }
        for v in &mut j.vertices {
            if let Some((lower, upper)) = wanted.get(&v.id) {
                v.lower = *lower;
                v.parallelism = *upper;
            }
        }
        Ok(())
    }

    /// The requirements the operator's `AbstractFlinkService.scale` (and the real client's
    /// `set_parallelism`) derive from the current ones: each named vertex gets upper bound
    /// `p` and lower bound `min(p, current lower)`; the others keep theirs. `None` when
    /// nothing changes (then no `PUT` is sent).
    fn scaled_requirements(
        current: &BTreeMap<String, (u32, u32)>,
        wanted: &BTreeMap<String, u32>,
    ) -> Option<BTreeMap<String, (u32, u32)>> {
        let next: BTreeMap<String, (u32, u32)> = current
            .iter()
            .map(|(v, &(lower, upper))| match wanted.get(v) {
                Some(&p) => (v.clone(), (p.min(lower), p)),
                None => (v.clone(), (lower, upper)),
            })
            .collect();
        (&next != current).then_some(next)
    }
}

// ---------------------------------------------------------------------------------------
// FakeFlink
// ---------------------------------------------------------------------------------------

struct Inner {
    state: Mutex<State>,
    /// Number of logged mutating calls.
    steps: watch::Sender<u64>,
    /// Calls whose step number is at least this park until the gate opens.
    gate: watch::Sender<Option<u64>>,
    /// Placeholder jars of [`Runtime::fetch_jar`].
    jar_dir: tempfile::TempDir,
}

/// The fake: clusters, jobs, snapshots, faults and the call log, shared by every clone.
/// See the module documentation for what it models and leaves out.
#[derive(Clone)]
pub struct FakeFlink {
    inner: Arc<Inner>,
}

impl Default for FakeFlink {
    fn default() -> Self {
        FakeFlink::new()
    }
}

impl std::fmt::Debug for FakeFlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeFlink")
            .field("steps", &self.steps())
            .finish()
    }
}

impl FakeFlink {
    /// An empty fake: no clusters, no snapshots, no faults; operations stay in progress for
    /// one status poll.
    pub fn new() -> FakeFlink {
        FakeFlink {
            inner: Arc::new(Inner {
                state: Mutex::new(State::new()),
                steps: watch::Sender::new(0),
                gate: watch::Sender::new(None),
                jar_dir: tempfile::tempdir().expect("a temporary folder for the fake's jars"),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ------------------------------------------------------------------- plumbing

    /// Runs one call against `cluster`: latency, reachability, faults, the effect, the log,
    /// the step notification and the gate.
    pub(super) async fn exec<T>(
        &self,
        cluster: &ClusterKey,
        call: Call,
        job: Option<&JobId>,
        detail: String,
        f: impl FnOnce(&mut State) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let latency = self.lock().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let (result, step) = {
            let mut st = self.lock();
            *st.call_counts.entry(call).or_default() += 1;
            let name = format!("{}/{}", cluster.0, cluster.1);
            let (result, outcome) = if !st.reachable(cluster) {
                (
                    Err(Failure::NoAnswer),
                    "error: no answer (no cluster)".to_string(),
                )
            } else {
                match st.take_fault(Some(cluster), call) {
                    Some(Fault::Http500) => {
                        (Err(Failure::injected_500()), "fault: http 500".into())
                    }
                    Some(Fault::Timeout) => (Err(Failure::NoAnswer), "fault: timeout".into()),
                    Some(Fault::LostAnswer) => {
                        let r = f(&mut st);
                        let outcome = match &r {
                            Ok(_) => "fault: lost answer".to_string(),
                            Err(e) => format!("error: {}", e.describe()),
                        };
                        (Err(Failure::NoAnswer), outcome)
                    }
                    None => {
                        let r = f(&mut st);
                        let outcome = match &r {
                            Ok(_) => "ok".to_string(),
                            Err(e) => format!("error: {}", e.describe()),
                        };
                        (r, outcome)
                    }
                }
            };
            let step = call
                .is_mutating()
                .then(|| st.record(call, name, job.cloned(), detail, outcome));
            (result, step)
        };
        if let Some(step) = step {
            self.after_step(step).await;
        }
        result
    }

    /// Announces a step and parks while the gate holds it.
    async fn after_step(&self, step: u64) {
        self.inner.steps.send_replace(step);
        let mut gate = self.inner.gate.subscribe();
        let _ = gate.wait_for(|g| g.is_none_or(|k| step < k)).await;
    }

    /// A runtime call: the same faults, log and gate as REST calls, with runtime errors.
    async fn runtime_call<T>(
        &self,
        call: Call,
        key: Option<&ResourceKey>,
        job: Option<JobId>,
        detail: String,
        f: impl FnOnce(&mut State) -> Result<T, RuntimeError>,
    ) -> Result<T, RuntimeError> {
        let unavailable = |why: &str| RuntimeError::Unavailable {
            what: format!("fake runtime {call:?}"),
            reason: why.to_string(),
        };
        let (result, step) = {
            let mut st = self.lock();
            *st.call_counts.entry(call).or_default() += 1;
            let cluster = key.map(ck);
            let fault = st.take_fault(cluster.as_ref(), call);
            let (result, outcome) = match fault {
                Some(Fault::Http500) => (
                    Err(unavailable("injected fault")),
                    "fault: http 500".to_string(),
                ),
                Some(Fault::Timeout) => (
                    Err(unavailable("injected timeout")),
                    "fault: timeout".into(),
                ),
                Some(Fault::LostAnswer) => {
                    let r = f(&mut st);
                    let outcome = match &r {
                        Ok(_) => "fault: lost answer".to_string(),
                        Err(e) => format!("error: {e}"),
                    };
                    (Err(unavailable("answer lost after the effect")), outcome)
                }
                None => {
                    let r = f(&mut st);
                    let outcome = match &r {
                        Ok(_) => "ok".to_string(),
                        Err(e) => format!("error: {e}"),
                    };
                    (r, outcome)
                }
            };
            let name = cluster
                .map(|c| format!("{}/{}", c.0, c.1))
                .unwrap_or_default();
            let step = call
                .is_mutating()
                .then(|| st.record(call, name, job, detail, outcome));
            (result, step)
        };
        if let Some(step) = step {
            self.after_step(step).await;
        }
        result
    }

    /// Points [`Runtime::rest_url`] at an HTTP server (`http://127.0.0.1:PORT`), or back at
    /// [`FAKE_BASE`].
    pub fn set_http_base(&self, base: Option<String>) {
        self.lock().http_base = base.map(|b| b.trim_end_matches('/').to_string());
    }

    /// The cluster a REST base URL names: its last two path segments.
    pub(super) fn cluster_of_url(url: &str) -> ClusterKey {
        let path = url
            .split_once("://")
            .map_or(url, |(_, rest)| rest.split_once('/').map_or("", |(_, p)| p));
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match segments.as_slice() {
            [.., ns, name] => (ns.to_string(), name.to_string()),
            _ => (String::new(), String::new()),
        }
    }

    // ------------------------------------------------------------------- settings

    /// How many status polls an operation answers IN_PROGRESS before it completes
    /// (default 1; 0 completes at the first poll).
    pub fn set_polls_in_progress(&self, polls: u32) {
        self.lock().polls_in_progress = polls;
    }

    /// New jobs report RUNNING with their tasks DEPLOYING for this many `jobs_overview` /
    /// `job_details` calls (P9); default 0. The state value does not advance meanwhile.
    pub fn set_task_start_polls(&self, polls: u32) {
        self.lock().task_start_polls = polls;
    }

    /// Every REST call (in memory and over HTTP) waits this long first. For benchmarks only.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// `deploy_cluster` waits this long first (a cluster's start). For benchmarks only.
    pub fn set_deploy_latency(&self, latency: Duration) {
        self.lock().deploy_latency = latency;
    }

    // ------------------------------------------------------------------- faults

    /// `call` on `cluster` fails with `fault` for `times`.
    pub fn fault(&self, cluster: &ResourceKey, call: Call, fault: Fault, times: Times) {
        self.push_fault(Some(ck(cluster)), Some(call), fault, times);
    }

    /// `call` on every cluster (and the runtime calls without one) fails with `fault`.
    pub fn fault_everywhere(&self, call: Call, fault: Fault, times: Times) {
        self.push_fault(None, Some(call), fault, times);
    }

    /// The JobManager of `cluster` stops answering: every REST call times out, until
    /// [`Self::resume_answering`] or [`Self::clear_faults`].
    pub fn stop_answering(&self, cluster: &ResourceKey) {
        let key = ck(cluster);
        let mut st = self.lock();
        st.faults.insert(
            0,
            FaultRule {
                cluster: Some(key),
                call: None,
                fault: Fault::Timeout,
                remaining: None,
            },
        );
    }

    /// Undoes [`Self::stop_answering`].
    pub fn resume_answering(&self, cluster: &ResourceKey) {
        let key = ck(cluster);
        self.lock()
            .faults
            .retain(|f| !(f.cluster.as_ref() == Some(&key) && f.call.is_none()));
    }

    /// Removes every injected fault (not the job failure rules).
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    fn push_fault(
        &self,
        cluster: Option<ClusterKey>,
        call: Option<Call>,
        fault: Fault,
        times: Times,
    ) {
        let remaining = match times {
            Times::Next(0) => return,
            Times::Next(n) => Some(n),
            Times::UntilCleared => None,
        };
        self.lock().faults.push(FaultRule {
            cluster,
            call,
            fault,
            remaining,
        });
    }

    /// The next `n` savepoints (and stops) triggered on `cluster` complete with a failure
    /// cause (`CheckpointException: Checkpoint was declined`); a failed stop leaves the job
    /// running. This and the three calls below are kept across redeploys of the cluster and
    /// may be made before it exists.
    pub fn fail_next_savepoints(&self, cluster: &ResourceKey, n: u32) {
        self.lock()
            .plans
            .entry(ck(cluster))
            .or_default()
            .fail_savepoints = n;
    }

    /// The next `n` savepoint disposals asked of `cluster` fail.
    pub fn fail_next_disposals(&self, cluster: &ResourceKey, n: u32) {
        self.lock()
            .plans
            .entry(ck(cluster))
            .or_default()
            .fail_disposals = n;
    }

    /// The next `n` checkpoints triggered on `cluster` fail.
    pub fn fail_next_checkpoints(&self, cluster: &ResourceKey, n: u32) {
        self.lock()
            .plans
            .entry(ck(cluster))
            .or_default()
            .fail_checkpoints = n;
    }

    /// Operations of `cluster` (pending and new) stay IN_PROGRESS until
    /// [`Self::release_operations`].
    pub fn hold_operations(&self, cluster: &ResourceKey) {
        self.lock().plans.entry(ck(cluster)).or_default().hold = true;
    }

    /// Lets held operations complete: at their next status poll (or [`Self::settle`]).
    pub fn release_operations(&self, cluster: &ResourceKey) {
        let mut st = self.lock();
        st.plans.entry(ck(cluster)).or_default().hold = false;
        if let Some(c) = st.clusters.get_mut(&ck(cluster)) {
            for op in c
                .savepoint_ops
                .values_mut()
                .chain(c.checkpoint_ops.values_mut())
            {
                op.polls_left = 0;
            }
        }
    }

    /// Completes every pending operation that is not held, as if time passed without polls.
    pub fn settle(&self) {
        let mut st = self.lock();
        let held: BTreeSet<ClusterKey> = st
            .plans
            .iter()
            .filter(|(_, p)| p.hold)
            .map(|(k, _)| k.clone())
            .collect();
        let pending: Vec<(ClusterKey, (JobId, String), bool)> = st
            .clusters
            .iter()
            .filter(|(k, c)| !held.contains(*k) && c.exited.is_none())
            .flat_map(|(k, c)| {
                let sp = c
                    .savepoint_ops
                    .iter()
                    .filter(|(_, o)| o.result.is_none())
                    .map(move |(t, _)| (k.clone(), t.clone(), false));
                let cp = c
                    .checkpoint_ops
                    .iter()
                    .filter(|(_, o)| o.result.is_none())
                    .map(move |(t, _)| (k.clone(), t.clone(), true));
                sp.chain(cp)
            })
            .collect();
        for (cluster, key, checkpoint) in pending {
            st.finish_op(&cluster, &key, checkpoint);
        }
    }

    /// The job restarts `n` times (its `numRestarts` grows; it keeps RUNNING, as after a
    /// quick failover).
    pub fn restart_job(&self, job: &JobId, n: u64) {
        let mut st = self.lock();
        if let Some(i) = st.find_job_mut(job) {
            st.jobs[i].restarts += n;
        }
    }

    /// The job fails now (FAILED, with `message` as the user exception), if it runs.
    pub fn fail_job(&self, job: &JobId, message: &str) {
        let mut st = self.lock();
        if let Some(i) = st.find_job_mut(job) {
            if !st.jobs[i].state.is_globally_terminal() {
                st.fail_job_at(i, "java.lang.IllegalStateException", message);
            }
        }
    }

    /// The job fails when its state value reaches `value` (it stops at `value`).
    pub fn fail_job_at_value(&self, job: &JobId, value: u64, message: &str) {
        let mut st = self.lock();
        if let Some(i) = st.find_job_mut(job) {
            st.jobs[i].fail_at = Some((value, message.to_string()));
            st.check_fail_at(i);
        }
    }

    /// Jobs started from now on that match fail: at start (`at_value: None`) or when their
    /// state value reaches `at_value`. Rules stay until [`Self::clear_job_failures`].
    pub fn fail_new_jobs(&self, matching: JobMatch, at_value: Option<u64>, message: &str) {
        self.lock().fail_rules.push(FailRule {
            matching,
            at_value,
            message: message.to_string(),
        });
    }

    /// Removes the rules of [`Self::fail_new_jobs`].
    pub fn clear_job_failures(&self) {
        self.lock().fail_rules.clear();
    }

    /// The cluster's processes die: `observe_cluster` answers Exited, REST calls time out,
    /// its jobs stop (their state stays as it was; snapshots stay).
    pub fn kill_cluster(&self, cluster: &ResourceKey, reason: &str) {
        let mut st = self.lock();
        let idxs = match st.clusters.get_mut(&ck(cluster)) {
            Some(c) => {
                c.exited = Some(reason.to_string());
                c.jobs.clone()
            }
            None => return,
        };
        for i in idxs {
            st.jobs[i].live = false;
        }
    }

    /// Someone changed the running cluster's configuration behind the agent's back (a
    /// JobManager restarted by hand with other options): `GET /jobmanager/config` shows
    /// `value` for `key` (removed when `None`).
    pub fn set_cluster_config(&self, cluster: &ResourceKey, key: &str, value: Option<&str>) {
        let mut st = self.lock();
        if let Some(c) = st.clusters.get_mut(&ck(cluster)) {
            match value {
                Some(v) => c.config.insert(key.to_string(), v.to_string()),
                None => c.config.remove(key),
            };
        }
    }

    /// TaskManagers registered with the cluster's JobManager from now on (one was killed
    /// by hand, or one more was started), while the runtime still says it started the
    /// number it deployed. A redeploy registers them all again.
    pub fn set_task_managers(&self, cluster: &ResourceKey, n: u32) {
        let mut st = self.lock();
        if let Some(c) = st.clusters.get_mut(&ck(cluster)) {
            c.registered = Some(n);
        }
    }

    /// A job submitted by hand to a cluster (not through the agent): it runs until
    /// cancelled. Returns its id.
    pub fn submit_by_hand(&self, cluster: &ResourceKey, name: &str, parallelism: u32) -> JobId {
        let mut st = self.lock();
        let n = st.next();
        let id = JobId::derived(&format!("by-hand-{name}-{n}"));
        let start = JobStart {
            id: id.clone(),
            name: name.to_string(),
            parallelism,
            restore: None,
            config: BTreeMap::new(),
            args: Vec::new(),
            entry_class: None,
            jar: None,
        };
        let _ = st.start_job(&ck(cluster), start);
        id
    }

    /// [`Runtime::fetch_jar`] of `uri` fails as a missing file would (not transient).
    pub fn missing_jar(&self, uri: &str) {
        self.lock().missing_jars.insert(uri.to_string());
    }

    // ------------------------------------------------------------------- state

    /// Every RUNNING job whose tasks run and whose cluster is up processes `n` records:
    /// its state value grows by `n` (failure rules apply).
    pub fn advance(&self, n: u64) {
        let mut st = self.lock();
        st.clock_ms += 1000;
        let live: Vec<usize> = st
            .clusters
            .values()
            .filter(|c| c.exited.is_none())
            .flat_map(|c| c.jobs.iter().copied())
            .collect();
        for i in live {
            advance_one(&mut st, i, n);
        }
    }

    /// One job processes `n` records.
    pub fn advance_job(&self, job: &JobId, n: u64) {
        let mut st = self.lock();
        if let Some(i) = st.find_job_mut(job) {
            if st.jobs[i].live {
                advance_one(&mut st, i, n);
            }
        }
    }

    /// A periodic checkpoint of a running job completes now; returns its location (`None`
    /// when the job does not run or no checkpoint folder is configured).
    pub fn checkpoint(&self, job: &JobId) -> Option<String> {
        let mut st = self.lock();
        let i = st.find_job_mut(job)?;
        if !st.jobs[i].live || !st.jobs[i].tasks_running() {
            return None;
        }
        st.take_checkpoint(i).1
    }

    /// A periodic checkpoint of every running job.
    pub fn checkpoint_all(&self) {
        let ids: Vec<JobId> = {
            let st = self.lock();
            st.jobs
                .iter()
                .filter(|j| j.live && j.tasks_running())
                .map(|j| j.id.clone())
                .collect()
        };
        for id in ids {
            self.checkpoint(&id);
        }
    }

    /// Stores a savepoint with `value` at `location` (an `initialSavepointPath`, say).
    pub fn put_savepoint(&self, location: &str, value: u64) {
        self.lock().snapshots.insert(
            normalize_location(location),
            Snapshot {
                job: None,
                checkpoint_id: 1,
                is_savepoint: true,
                value,
                deleted: false,
            },
        );
    }

    // ------------------------------------------------------------------- assertions

    /// The job (the live one with this id, else the newest).
    pub fn job(&self, job: &JobId) -> Option<FakeJob> {
        let st = self.lock();
        st.find_job(job).map(|j| st.view_job(j))
    }

    /// The job's state value.
    pub fn value(&self, job: &JobId) -> Option<u64> {
        self.lock().find_job(job).map(|j| j.value)
    }

    /// Where the job started from, and the value it found there.
    pub fn restored_from(&self, job: &JobId) -> Option<Restored> {
        self.lock().find_job(job).and_then(|j| j.restored.clone())
    }

    /// Jobs of the cluster's current incarnation that are RUNNING.
    pub fn running_jobs(&self, cluster: &ResourceKey) -> Vec<FakeJob> {
        self.jobs(cluster)
            .into_iter()
            .filter(|j| j.state == JobStatus::Running && j.live)
            .collect()
    }

    /// Jobs the cluster lists (its current incarnation), oldest first.
    pub fn jobs(&self, cluster: &ResourceKey) -> Vec<FakeJob> {
        let st = self.lock();
        st.clusters
            .get(&ck(cluster))
            .map(|c| c.jobs.iter().map(|&i| st.view_job(&st.jobs[i])).collect())
            .unwrap_or_default()
    }

    /// Every job ever started, oldest first.
    pub fn all_jobs(&self) -> Vec<FakeJob> {
        let st = self.lock();
        st.jobs.iter().map(|j| st.view_job(j)).collect()
    }

    pub fn cluster(&self, cluster: &ResourceKey) -> Option<FakeCluster> {
        let st = self.lock();
        st.clusters.get(&ck(cluster)).map(|c| FakeCluster {
            key: c.key.clone(),
            application: c.application,
            generation: c.generation,
            task_managers: c.task_managers,
            config: c.config.clone(),
            exited: c.exited.clone(),
            jobs: c.jobs.iter().map(|&i| st.jobs[i].id.clone()).collect(),
        })
    }

    /// Every snapshot stored, deleted ones included.
    pub fn snapshots(&self) -> Vec<FakeSnapshot> {
        self.lock()
            .snapshots
            .iter()
            .map(|(location, s)| FakeSnapshot {
                location: location.clone(),
                job: s.job.clone(),
                checkpoint_id: s.checkpoint_id,
                is_savepoint: s.is_savepoint,
                value: s.value,
                deleted: s.deleted,
            })
            .collect()
    }

    /// The snapshot at `location` (normalised), deleted or not.
    pub fn snapshot(&self, location: &str) -> Option<FakeSnapshot> {
        let key = normalize_location(location);
        self.snapshots().into_iter().find(|s| s.location == key)
    }

    /// The mutating calls so far, in order.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.lock().log.clone()
    }

    /// How often `call` was made (reads included, faulted ones too).
    pub fn call_count(&self, call: Call) -> u64 {
        self.lock().call_counts.get(&call).copied().unwrap_or(0)
    }

    /// Number of mutating calls so far.
    pub fn steps(&self) -> u64 {
        *self.inner.steps.borrow()
    }

    /// Fires after each mutating call with the step count.
    pub fn subscribe_steps(&self) -> watch::Receiver<u64> {
        self.inner.steps.subscribe()
    }

    /// Waits until at least `k` mutating calls were made.
    pub async fn wait_for_steps(&self, k: u64) {
        let mut rx = self.inner.steps.subscribe();
        let _ = rx.wait_for(|n| *n >= k).await;
    }

    /// The `k`-th mutating call (and any later one) takes effect and is logged, then parks
    /// its caller until [`Self::open_gate`]: a test waits for step `k`
    /// ([`Self::wait_for_steps`]) and drops the agent, which never sees the answer.
    pub fn pause_after_step(&self, k: u64) {
        self.inner.gate.send_replace(Some(k));
    }

    /// Lets parked calls answer.
    pub fn open_gate(&self) {
        self.inner.gate.send_replace(None);
    }

    /// Problems the fake noticed that a real cluster would punish (a cluster replaced while
    /// its job was RUNNING: that job's state since its last snapshot is lost).
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }
}

fn advance_one(st: &mut State, i: usize, n: u64) {
    let job = &mut st.jobs[i];
    if !job.tasks_running() {
        return;
    }
    job.value += n;
    if let Some((at, _)) = &job.fail_at {
        if job.value >= *at {
            job.value = *at;
        }
    }
    st.check_fail_at(i);
}

// The HTTP server reaches the model through these (the model itself stays private).
impl State {
    pub(super) fn http_overview(&self, c: &ClusterKey) -> Value {
        self.overview(c)
    }
    pub(super) fn http_jobs_overview(&mut self, c: &ClusterKey) -> Value {
        self.jobs_overview(c)
    }
    pub(super) fn http_jobmanager_config(&self, c: &ClusterKey) -> Result<Value, Failure> {
        self.jobmanager_config(c)
    }
    pub(super) fn http_job_details(
        &mut self,
        c: &ClusterKey,
        job: &JobId,
    ) -> Result<Value, Failure> {
        self.job_details(c, job)
    }
    pub(super) fn http_job_status(
        &self,
        c: &ClusterKey,
        job: &JobId,
    ) -> Result<JobStatus, Failure> {
        self.job_status(c, job)
    }
    pub(super) fn http_exceptions(
        &self,
        c: &ClusterKey,
        job: &JobId,
    ) -> Result<ExceptionsView, Failure> {
        self.exceptions(c, job)
    }
    pub(super) fn http_cancel(&mut self, c: &ClusterKey, job: &JobId) -> Result<(), Failure> {
        self.cancel(c, job)
    }
    pub(super) fn http_stop(
        &mut self,
        c: &ClusterKey,
        job: &JobId,
        dir: Option<String>,
        drain: bool,
        trigger: Option<&str>,
    ) -> Result<String, Failure> {
        self.trigger(c, job, OpKind::Stop { drain }, dir, trigger)
    }
    pub(super) fn http_savepoint(
        &mut self,
        c: &ClusterKey,
        job: &JobId,
        dir: Option<String>,
        cancel: bool,
        trigger: Option<&str>,
    ) -> Result<String, Failure> {
        self.trigger(c, job, OpKind::Savepoint { cancel }, dir, trigger)
    }
    pub(super) fn http_checkpoint(
        &mut self,
        c: &ClusterKey,
        job: &JobId,
        trigger: Option<&str>,
    ) -> Result<String, Failure> {
        self.trigger(c, job, OpKind::Checkpoint, None, trigger)
    }
    pub(super) fn http_op_status(
        &mut self,
        c: &ClusterKey,
        job: &JobId,
        trigger: &str,
        checkpoint: bool,
    ) -> Result<OpView, Failure> {
        self.op_status(c, job, trigger, checkpoint)
    }
    pub(super) fn http_checkpoints(
        &self,
        c: &ClusterKey,
        job: &JobId,
    ) -> Result<StatsView, Failure> {
        self.checkpoint_stats(c, job)
    }
    pub(super) fn http_upload(
        &mut self,
        c: &ClusterKey,
        name: &str,
        content: String,
    ) -> Result<String, Failure> {
        self.upload(c, name, content)
    }
    pub(super) fn http_run(
        &mut self,
        c: &ClusterKey,
        jar: &str,
        body: RunBody,
    ) -> Result<JobId, Failure> {
        self.run(c, jar, body)
    }
    pub(super) fn http_resource_requirements(
        &self,
        c: &ClusterKey,
        job: &JobId,
    ) -> Result<BTreeMap<String, (u32, u32)>, Failure> {
        self.resource_requirements(c, job)
    }
    pub(super) fn http_set_resource_requirements(
        &mut self,
        c: &ClusterKey,
        job: &JobId,
        wanted: &BTreeMap<String, (u32, u32)>,
    ) -> Result<(), Failure> {
        self.set_resource_requirements(c, job, wanted)
    }
}

// ---------------------------------------------------------------------------------------
// Runtime
// ---------------------------------------------------------------------------------------

impl FakeFlink {
    /// The configuration a cluster runs with: runtime defaults, the fake's defaults (as the
    /// local runtime's), the manifest's.
    fn cluster_config(&self, request: &ClusterRequest) -> BTreeMap<String, String> {
        let mut cfg = self.default_configuration(&request.key);
        cfg.insert(
            config::CHECKPOINT_RETENTION.key.into(),
            "RETAIN_ON_CANCELLATION".into(),
        );
        cfg.extend(request.spec.flink_configuration.clone());
        if let Some(p) = request.job.as_ref().and_then(|j| j.parallelism) {
            cfg.insert(config::PARALLELISM_DEFAULT.key.into(), p.to_string());
        }
        cfg
    }
}

impl State {
    fn deploy(
        &mut self,
        request: &ClusterRequest,
        cfg: BTreeMap<String, String>,
    ) -> Result<(), RuntimeError> {
        let key = ck(&request.key);
        let job_id = match &request.job {
            Some(job) => Some(
                JobId::parse(&job.job_id).map_err(|e| RuntimeError::Rejected {
                    what: request.key.to_string(),
                    reason: e.to_string(),
                })?,
            ),
            None => None,
        };
        if let Some(old) = self.clusters.remove(&key) {
            for &i in &old.jobs {
                let j = &mut self.jobs[i];
                if j.live && j.state == JobStatus::Running && old.exited.is_none() {
                    self.violations.push(format!(
                        "deploy_cluster({}) replaced the cluster while job {} was RUNNING (value {})",
                        request.key, j.id, j.value
                    ));
                }
                j.live = false;
            }
        }
        let slots = lookup(&cfg, &config::TASK_SLOTS)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(1)
            .max(1);
        let parallelism = request
            .job
            .as_ref()
            .and_then(|j| j.parallelism)
            .unwrap_or(1)
            .max(1);
        let task_managers = request
            .spec
            .task_manager
            .as_ref()
            .and_then(|t| t.replicas)
            .unwrap_or((parallelism + slots - 1) / slots)
            .max(1);
        self.incarnations += 1;
        self.clusters.insert(
            key.clone(),
            Cluster {
                key: request.key.clone(),
                incarnation: self.incarnations,
                application: request.job.is_some(),
                generation: request.generation,
                config: cfg.clone(),
                task_managers: u32::try_from(task_managers).unwrap_or(u32::MAX),
                registered: None,
                exited: None,
                jobs: Vec::new(),
                jars: BTreeMap::new(),
                savepoint_ops: BTreeMap::new(),
                checkpoint_ops: BTreeMap::new(),
            },
        );
        if let (Some(job), Some(id)) = (&request.job, job_id) {
            let name = cfg
                .get("pipeline.name")
                .cloned()
                .unwrap_or_else(|| request.key.name.clone());
            let start = JobStart {
                id,
                name,
                parallelism: u32::try_from(parallelism).unwrap_or(1),
                restore: job.restore.clone(),
                config: cfg,
                args: job.args.clone(),
                entry_class: job.entry_class.clone(),
                jar: Some(job.jar_uri.clone()),
            };
            // A missing snapshot fails the job; the cluster stays up with it listed.
            let _ = self.start_job(&key, start);
        }
        Ok(())
    }
}

impl Runtime for FakeFlink {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn deploy_cluster(&self, request: ClusterRequest) -> Result<(), RuntimeError> {
        let detail = match &request.job {
            Some(j) => format!(
                "application generation={} job={} restore={} parallelism={}",
                request.generation,
                j.job_id,
                j.restore.as_deref().unwrap_or("-"),
                j.parallelism.map_or("-".into(), |p| p.to_string())
            ),
            None => format!("session generation={}", request.generation),
        };
        let latency = self.lock().deploy_latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let cfg = self.cluster_config(&request);
        let job = request
            .job
            .as_ref()
            .and_then(|j| JobId::parse(&j.job_id).ok());
        self.runtime_call(Call::DeployCluster, Some(&request.key), job, detail, |st| {
            st.deploy(&request, cfg)
        })
        .await
    }

    async fn delete_cluster(&self, key: &ResourceKey) -> Result<(), RuntimeError> {
        let running: Vec<String> = self
            .running_jobs(key)
            .iter()
            .map(|j| format!("{} (value {})", j.id, j.value))
            .collect();
        let detail = if running.is_empty() {
            String::new()
        } else {
            format!("running jobs removed: {}", running.join(", "))
        };
        self.runtime_call(Call::DeleteCluster, Some(key), None, detail, |st| {
            if let Some(old) = st.clusters.remove(&ck(key)) {
                for i in old.jobs {
                    st.jobs[i].live = false;
                }
            }
            Ok(())
        })
        .await
    }

    async fn observe_cluster(&self, key: &ResourceKey) -> Result<ClusterPresence, RuntimeError> {
        self.runtime_call(Call::ObserveCluster, Some(key), None, String::new(), |st| {
            Ok(match st.clusters.get(&ck(key)) {
                None => ClusterPresence::Missing,
                Some(c) => match &c.exited {
                    Some(reason) => ClusterPresence::Exited {
                        reason: reason.clone(),
                    },
                    None => ClusterPresence::Running {
                        task_managers: c.task_managers,
                        generation: Some(c.generation),
                    },
                },
            })
        })
        .await
    }

    async fn rest_url(&self, key: &ResourceKey) -> Result<Option<String>, RuntimeError> {
        self.runtime_call(Call::RestUrl, Some(key), None, String::new(), |st| {
            let base = st
                .http_base
                .clone()
                .unwrap_or_else(|| FAKE_BASE.to_string());
            Ok(st
                .clusters
                .contains_key(&ck(key))
                .then(|| format!("{base}/{}/{}", key.namespace, key.name)))
        })
        .await
    }

    async fn fetch_jar(&self, uri: &str) -> Result<PathBuf, RuntimeError> {
        let dir = self.inner.jar_dir.path().to_path_buf();
        let jar_err = |reason: &str, transient: bool| RuntimeError::Jar {
            uri: uri.to_string(),
            reason: reason.to_string(),
            transient,
        };
        let result = self
            .runtime_call(Call::FetchJar, None, None, String::new(), |st| {
                if st.missing_jars.contains(uri) {
                    return Err(jar_err("does not exist (fake)", false));
                }
                Ok(())
            })
            .await;
        match result {
            Ok(()) => {}
            Err(RuntimeError::Unavailable { reason, .. }) => return Err(jar_err(&reason, true)),
            Err(e) => return Err(e),
        }
        let supported = ["local://", "file:", "http://", "https://"];
        if !supported.iter().any(|s| uri.starts_with(s)) {
            return Err(jar_err(
                "the fake runtime reads local://, file:, http:// and https:// jars",
                false,
            ));
        }
        let base = uri
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("job.jar");
        let safe: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let name = if safe.ends_with(".jar") {
            safe
        } else {
            format!("{safe}.jar")
        };
        let path = dir.join(format!("{}-{name}", &JobId::derived(uri).as_str()[..8]));
        std::fs::write(&path, uri.as_bytes())
            .map_err(|e| RuntimeError::io(format!("fake jar {}", path.display()), e))?;
        Ok(path)
    }

    fn default_configuration(&self, key: &ResourceKey) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                config::CHECKPOINTS_DIR.key.to_string(),
                format!(
                    "{FAKE_STATE_ROOT}/checkpoints/{}/{}",
                    key.namespace, key.name
                ),
            ),
            (
                config::SAVEPOINTS_DIR.key.to_string(),
                format!(
                    "{FAKE_STATE_ROOT}/savepoints/{}/{}",
                    key.namespace, key.name
                ),
            ),
        ])
    }
}

// ---------------------------------------------------------------------------------------
// SnapshotStorage
// ---------------------------------------------------------------------------------------

impl SnapshotStorage for FakeFlink {
    fn latest_checkpoint(
        &self,
        checkpoints_dir: &str,
        job_id: &str,
    ) -> Result<Option<String>, StorageError> {
        let prefix = format!("{}/{job_id}/chk-", normalize_location(checkpoints_dir));
        let st = self.lock();
        Ok(st
            .snapshots
            .iter()
            .filter(|(_, s)| !s.deleted && !s.is_savepoint)
            .filter_map(|(loc, _)| {
                let n: u64 = loc.strip_prefix(&prefix)?.parse().ok()?;
                Some((n, loc.clone()))
            })
            .max_by_key(|(n, _)| *n)
            .map(|(_, loc)| loc))
    }

    fn exists(&self, location: &str) -> Result<bool, StorageError> {
        Ok(self.lock().snapshot(location).is_some())
    }

    fn delete(&self, location: &str) -> Result<(), StorageError> {
        if let Some(s) = self.lock().snapshots.get_mut(&normalize_location(location)) {
            s.deleted = true;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// FlinkApi
// ---------------------------------------------------------------------------------------

/// One fake cluster's REST API, found by name at each call (a redeployed cluster is the
/// same address, as a Kubernetes Service is). Cheap to clone.
#[derive(Clone, Debug)]
pub struct FakeApi {
    fake: FakeFlink,
    cluster: ClusterKey,
    base: String,
}

impl FlinkApiFactory for FakeFlink {
    type Api = FakeApi;

    /// Any URL: the last two path segments name the cluster (`/<namespace>/<name>`); a URL
    /// that names no cluster gives an API whose calls time out.
    fn connect(&self, base_url: &str) -> Result<FakeApi, RestError> {
        Ok(FakeApi {
            fake: self.clone(),
            cluster: FakeFlink::cluster_of_url(base_url),
            base: base_url.trim_end_matches('/').to_string(),
        })
    }
}

impl FakeApi {
    async fn call<T>(
        &self,
        method: Method,
        path: String,
        call: Call,
        job: Option<&JobId>,
        detail: String,
        f: impl FnOnce(&mut State, &ClusterKey) -> Result<T, Failure>,
    ) -> Result<T, RestError> {
        let cluster = self.cluster.clone();
        self.fake
            .exec(&self.cluster, call, job, detail, |st| f(st, &cluster))
            .await
            .map_err(|e| e.into_rest_error(method, format!("{}{path}", self.base)))
    }

    fn decode<T: serde::de::DeserializeOwned>(&self, path: &str, v: Value) -> Result<T, RestError> {
        let body = v.to_string();
        serde_json::from_value(v).map_err(|e| RestError::BadResponse {
            url: format!("{}{path}", self.base),
            reason: e.to_string(),
            body,
        })
    }
}

fn format_name(f: SavepointFormat) -> &'static str {
    match f {
        SavepointFormat::Canonical => "CANONICAL",
        SavepointFormat::Native => "NATIVE",
    }
}

impl FlinkApi for FakeApi {
    async fn dispose_savepoint(&self, path: &str) -> Result<TriggerId, RestError> {
        let location = path.to_string();
        self.call(
            Method::POST,
            "/savepoint-disposal".into(),
            Call::DisposeSavepoint,
            None,
            format!("path={path}"),
            move |st, c| st.dispose(c, &location),
        )
        .await
        .map(TriggerId::new)
    }

    async fn disposal_status(
        &self,
        trigger: &TriggerId,
    ) -> Result<flink_gitops::flink::rest::DisposalStatus, RestError> {
        use flink_gitops::flink::rest::DisposalStatus;
        let t = trigger.as_str().to_string();
        let result = self
            .call(
                Method::GET,
                format!("/savepoint-disposal/{t}"),
                Call::DisposalStatus,
                None,
                String::new(),
                move |st, _| {
                    st.disposals.get(&t).cloned().ok_or_else(|| {
                        Failure::BadRequest(format!("Operation not found under key: {t}"))
                    })
                },
            )
            .await?;
        Ok(match result {
            None => DisposalStatus::Completed,
            Some(cause) => DisposalStatus::Failed {
                cause: failure_cause(&cause),
            },
        })
    }

    async fn cluster_overview(&self) -> Result<ClusterOverview, RestError> {
        let v = self
            .call(
                Method::GET,
                "/overview".into(),
                Call::ClusterOverview,
                None,
                String::new(),
                |st, c| Ok(st.overview(c)),
            )
            .await?;
        self.decode("/overview", v)
    }

    async fn jobs_overview(&self) -> Result<Vec<JobOverview>, RestError> {
        let mut v = self
            .call(
                Method::GET,
                "/jobs/overview".into(),
                Call::JobsOverview,
                None,
                String::new(),
                |st, c| Ok(st.jobs_overview(c)),
            )
            .await?;
        let jobs = v.get_mut("jobs").map(Value::take).unwrap_or_default();
        self.decode("/jobs/overview", jobs)
    }

    async fn job_details(&self, job: &JobId) -> Result<JobDetails, RestError> {
        let path = format!("/jobs/{job}");
        let v = self
            .call(
                Method::GET,
                path.clone(),
                Call::JobDetails,
                Some(job),
                String::new(),
                |st, c| st.job_details(c, job),
            )
            .await?;
        self.decode(&path, v)
    }

    async fn jobmanager_config(&self) -> Result<BTreeMap<String, String>, RestError> {
        let v = self
            .call(
                Method::GET,
                "/jobmanager/config".into(),
                Call::JobManagerConfig,
                None,
                String::new(),
                |st, c| st.jobmanager_config(c),
            )
            .await?;
        let entries: Vec<Value> = match v {
            Value::Array(a) => a,
            _ => Vec::new(),
        };
        Ok(entries
            .iter()
            .filter_map(|e| {
                Some((
                    e.get("key")?.as_str()?.to_string(),
                    e.get("value")?.as_str()?.to_string(),
                ))
            })
            .collect())
    }

    async fn job_exceptions(&self, job: &JobId) -> Result<Option<JobExceptions>, RestError> {
        let v = self
            .call(
                Method::GET,
                format!("/jobs/{job}/exceptions"),
                Call::JobExceptions,
                Some(job),
                String::new(),
                |st, c| st.exceptions(c, job),
            )
            .await?;
        Ok(v.to_exceptions())
    }

    async fn cancel(&self, job: &JobId) -> Result<(), RestError> {
        self.call(
            Method::PATCH,
            format!("/jobs/{job}?mode=cancel"),
            Call::Cancel,
            Some(job),
            String::new(),
            |st, c| st.cancel(c, job),
        )
        .await
    }

    async fn stop_with_savepoint(
        &self,
        job: &JobId,
        target_dir: Option<&str>,
        drain: bool,
        format: SavepointFormat,
        trigger: Option<&TriggerId>,
    ) -> Result<TriggerId, RestError> {
        let detail = format!(
            "trigger={} drain={drain} format={} target={}",
            trigger.map_or("-", TriggerId::as_str),
            format_name(format),
            target_dir.unwrap_or("-")
        );
        let dir = target_dir.map(str::to_string);
        let t = trigger.map(TriggerId::as_str);
        self.call(
            Method::POST,
            format!("/jobs/{job}/stop"),
            Call::Stop,
            Some(job),
            detail,
            |st, c| st.trigger(c, job, OpKind::Stop { drain }, dir, t),
        )
        .await
        .map(TriggerId::new)
    }

    async fn trigger_savepoint(
        &self,
        job: &JobId,
        target_dir: Option<&str>,
        format: SavepointFormat,
        trigger: Option<&TriggerId>,
    ) -> Result<TriggerId, RestError> {
        let detail = format!(
            "trigger={} format={} target={}",
            trigger.map_or("-", TriggerId::as_str),
            format_name(format),
            target_dir.unwrap_or("-")
        );
        let dir = target_dir.map(str::to_string);
        let t = trigger.map(TriggerId::as_str);
        self.call(
            Method::POST,
            format!("/jobs/{job}/savepoints"),
            Call::TriggerSavepoint,
            Some(job),
            detail,
            |st, c| st.trigger(c, job, OpKind::Savepoint { cancel: false }, dir, t),
        )
        .await
        .map(TriggerId::new)
    }

    async fn savepoint_status(
        &self,
        job: &JobId,
        trigger: &TriggerId,
    ) -> Result<SavepointStatus, RestError> {
        let path = format!("/jobs/{job}/savepoints/{trigger}");
        let view = self
            .call(
                Method::GET,
                path.clone(),
                Call::SavepointStatus,
                Some(job),
                String::new(),
                |st, c| st.op_status(c, job, trigger.as_str(), false),
            )
            .await?;
        match view {
            OpView::InProgress => Ok(SavepointStatus::InProgress),
            OpView::Savepoint(location) => Ok(SavepointStatus::Completed { location }),
            OpView::Failed(cause) => Ok(SavepointStatus::Failed {
                cause: failure_cause(&cause),
            }),
            OpView::Checkpoint(_) => Err(RestError::BadResponse {
                url: format!("{}{path}", self.base),
                reason: "completed savepoint without a location".into(),
                body: String::new(),
            }),
        }
    }

    async fn trigger_checkpoint(
        &self,
        job: &JobId,
        kind: CheckpointType,
        trigger: Option<&TriggerId>,
    ) -> Result<TriggerId, RestError> {
        let detail = format!(
            "trigger={} type={kind:?}",
            trigger.map_or("-", TriggerId::as_str)
        );
        let t = trigger.map(TriggerId::as_str);
        self.call(
            Method::POST,
            format!("/jobs/{job}/checkpoints"),
            Call::TriggerCheckpoint,
            Some(job),
            detail,
            |st, c| st.trigger(c, job, OpKind::Checkpoint, None, t),
        )
        .await
        .map(TriggerId::new)
    }

    async fn checkpoint_status(
        &self,
        job: &JobId,
        trigger: &TriggerId,
    ) -> Result<CheckpointStatus, RestError> {
        let path = format!("/jobs/{job}/checkpoints/{trigger}");
        let view = self
            .call(
                Method::GET,
                path.clone(),
                Call::CheckpointStatus,
                Some(job),
                String::new(),
                |st, c| st.op_status(c, job, trigger.as_str(), true),
            )
            .await?;
        match view {
            OpView::InProgress => Ok(CheckpointStatus::InProgress),
            OpView::Checkpoint(checkpoint_id) => Ok(CheckpointStatus::Completed { checkpoint_id }),
            OpView::Failed(cause) => Ok(CheckpointStatus::Failed {
                cause: failure_cause(&cause),
            }),
            OpView::Savepoint(_) => Err(RestError::BadResponse {
                url: format!("{}{path}", self.base),
                reason: "completed checkpoint without checkpointId".into(),
                body: String::new(),
            }),
        }
    }

    async fn checkpoints(&self, job: &JobId) -> Result<CheckpointStats, RestError> {
        self.call(
            Method::GET,
            format!("/jobs/{job}/checkpoints"),
            Call::Checkpoints,
            Some(job),
            String::new(),
            |st, c| st.checkpoint_stats(c, job),
        )
        .await
        .map(|v| v.to_stats())
    }

    async fn job_metrics(
        &self,
        job: &JobId,
        names: &[&str],
    ) -> Result<BTreeMap<String, String>, RestError> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        self.call(
            Method::GET,
            format!("/jobs/{job}/metrics?get={}", names.join(",")),
            Call::JobMetrics,
            Some(job),
            String::new(),
            move |st, c| {
                let i = st
                    .listed(c, job)
                    .ok_or_else(|| Failure::JobNotFound(job.clone()))?;
                let restarts = st.jobs[i].restarts;
                Ok(names
                    .iter()
                    .filter(|n| n.as_str() == "numRestarts")
                    .map(|n| (n.clone(), restarts.to_string()))
                    .collect())
            },
        )
        .await
    }

    async fn upload_jar(&self, path: &std::path::Path) -> Result<JarId, RestError> {
        // The real client reads the file before sending anything.
        let content = std::fs::read(path).map_err(|source| RestError::JarRead {
            path: path.to_path_buf(),
            source,
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "job.jar".into());
        let content = String::from_utf8_lossy(&content).into_owned();
        let detail = format!("file={name}");
        self.call(
            Method::POST,
            "/jars/upload".into(),
            Call::UploadJar,
            None,
            detail,
            |st, c| st.upload(c, &name, content),
        )
        .await
        .map(JarId::new)
    }

    async fn run_jar(&self, jar: &JarId, request: &JarRunRequest) -> Result<JobId, RestError> {
        let body = serde_json::to_value(request).map_err(|e| RestError::Setup {
            reason: format!("run request: {e}"),
        })?;
        let body = RunBody::from_json(&body);
        let detail = format!(
            "jar={jar} job={} restore={} parallelism={}",
            body.job_id.as_deref().unwrap_or("-"),
            body.savepoint_path.as_deref().unwrap_or("-"),
            body.parallelism.map_or("-".into(), |p| p.to_string())
        );
        let job = request.job_id.clone();
        let result = self
            .call(
                Method::POST,
                format!("/jars/{jar}/run"),
                Call::RunJar,
                job.as_ref(),
                detail,
                |st, c| st.run(c, jar.as_str(), body),
            )
            .await;
        // An id Flink chose: name it on the log entry.
        if let (Ok(id), None) = (&result, &job) {
            let mut st = self.fake.lock();
            if let Some(last) = st.log.iter_mut().rev().find(|r| r.call == Call::RunJar) {
                last.job.get_or_insert_with(|| id.clone());
            }
        }
        result
    }

    /// As the real client does: `GET` the resource requirements, then `PUT` them with the
    /// named vertices' new bounds, if anything changes.
    async fn set_parallelism(
        &self,
        job: &JobId,
        parallelism: &BTreeMap<String, u32>,
    ) -> Result<(), RestError> {
        let path = format!("/jobs/{job}/resource-requirements");
        let current = self
            .call(
                Method::GET,
                path.clone(),
                Call::ResourceRequirements,
                Some(job),
                String::new(),
                |st, c| st.resource_requirements(c, job),
            )
            .await?;
        let Some(next) = State::scaled_requirements(&current, parallelism) else {
            return Ok(());
        };
        let detail = requirements_detail(&next);
        self.call(
            Method::PUT,
            path,
            Call::SetParallelism,
            Some(job),
            detail,
            |st, c| st.set_resource_requirements(c, job, &next),
        )
        .await
    }
}

/// `vertex=lower..upper` in short, for the call log.
pub(super) fn requirements_detail(r: &BTreeMap<String, (u32, u32)>) -> String {
    r.iter()
        .map(|(v, (l, u))| format!("{}={l}..{u}", &v[..v.len().min(8)]))
        .collect::<Vec<_>>()
        .join(" ")
}
