//! Identifiers, enumerations and answer types of the Flink REST API, and the parsing of
//! the answers that need more than a derived `Deserialize` (asynchronous operations,
//! checkpoint statistics, exception history, execution result, jar upload).
//!
//! Field names follow Flink's JSON; the types keep only what the agent uses, and unknown
//! fields are ignored so that newer Flink versions still parse.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::first_line;

// ---------------------------------------------------------------------------------------
// Identifiers
// ---------------------------------------------------------------------------------------

/// A Flink job id: 32 lowercase hex characters (Flink's `JobID.toHexString`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

/// A string that is not a Flink job id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Flink job id {0:?}: expected 32 lowercase hex characters")]
pub struct InvalidJobId(pub String);

impl JobId {
    /// Checks that `s` is 32 lowercase hex characters.
    pub fn parse(s: &str) -> Result<Self, InvalidJobId> {
        if s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(JobId(s.to_owned()))
        } else {
            Err(InvalidJobId(s.to_owned()))
        }
    }

    /// A fresh id, for a submission that must not collide with any earlier one (P10).
    ///
    /// Mixes the clock, the process id, a per-process counter and the OS-seeded keys of
    /// std's `RandomState` through SHA-256.
    pub fn random() -> Self {
        use std::collections::hash_map::RandomState;
        use std::hash::{BuildHasher, Hasher};
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::time::{SystemTime, UNIX_EPOCH};

        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let mut keyed = RandomState::new().build_hasher();
        keyed.write_u64(count);
        let mut seed = Vec::with_capacity(48);
        seed.extend_from_slice(&nanos.to_le_bytes());
        seed.extend_from_slice(&std::process::id().to_le_bytes());
        seed.extend_from_slice(&count.to_le_bytes());
        seed.extend_from_slice(&keyed.finish().to_le_bytes());
        Self::from_digest(&seed)
    }

    /// A deterministic id derived from `seed` (for instance resource key and deployment
    /// attempt), so that a retried submission is recognised as a duplicate instead of
    /// starting a second job.
    pub fn derived(seed: &str) -> Self {
        Self::from_digest(seed.as_bytes())
    }

    fn from_digest(bytes: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(bytes);
        JobId(hex::encode(&digest[..16]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for JobId {
    type Err = InvalidJobId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobId::parse(s)
    }
}

impl TryFrom<String> for JobId {
    type Error = InvalidJobId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        JobId::parse(&s)
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> String {
        id.0
    }
}

/// Id of an asynchronous operation (savepoint, stop, checkpoint, disposal): the
/// `request-id` of the trigger's answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TriggerId(String);

impl TriggerId {
    pub fn new(id: impl Into<String>) -> Self {
        TriggerId(id.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TriggerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Id of an uploaded jar: the file name Flink stored it under (`<uuid>_<name>.jar`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JarId(String);

impl JarId {
    pub fn new(id: impl Into<String>) -> Self {
        JarId(id.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JarId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------------
// Enumerations
// ---------------------------------------------------------------------------------------

/// Flink's `JobStatus`: the state of a job as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Initializing,
    Created,
    Running,
    Failing,
    Failed,
    Cancelling,
    Canceled,
    Finished,
    Restarting,
    Suspended,
    Reconciling,
    /// A state this client does not know (a newer Flink).
    #[serde(other)]
    Unknown,
}

impl JobStatus {
    /// Whether the job has ended for good (`FINISHED`, `CANCELED`, `FAILED`).
    pub fn is_globally_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Finished | JobStatus::Canceled | JobStatus::Failed
        )
    }
}

/// Flink's `ExecutionState`: the state of one task or vertex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionState {
    Created,
    Scheduled,
    Deploying,
    Running,
    Finished,
    Canceling,
    Canceled,
    Failed,
    Reconciling,
    Initializing,
    #[serde(other)]
    Unknown,
}

/// Layout of a savepoint (`formatType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SavepointFormat {
    /// Portable across state backends (Flink's default).
    #[default]
    Canonical,
    /// The state backend's own format: faster, tied to the backend.
    Native,
}

/// Kind of a manually triggered checkpoint (`checkpointType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CheckpointType {
    Full,
    Incremental,
}

/// Who owns the snapshot a job restores from (`claimMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClaimMode {
    /// The job takes ownership and may delete the snapshot once subsumed.
    Claim,
    /// The snapshot stays the user's; the first checkpoint is a full one (Flink's default).
    #[default]
    NoClaim,
}

/// Final status of a job as its execution result reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApplicationStatus {
    Succeeded,
    Failed,
    Canceled,
    #[serde(other)]
    Unknown,
}

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

/// `GET /overview`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClusterOverview {
    pub taskmanagers: u32,
    pub slots_total: u32,
    pub slots_available: u32,
    pub jobs_running: u32,
    #[serde(default)]
    pub jobs_finished: u32,
    #[serde(default)]
    pub jobs_cancelled: u32,
    #[serde(default)]
    pub jobs_failed: u32,
    pub flink_version: String,
    #[serde(default)]
    pub flink_commit: Option<String>,
}

/// `GET /config`: the web dashboard's configuration, which carries the Flink version.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DashboardConfig {
    pub flink_version: String,
    #[serde(default)]
    pub flink_revision: Option<String>,
    /// Dashboard refresh interval in ms (also the default of the REST caches, P8).
    #[serde(default)]
    pub refresh_interval: u64,
}

/// Number of a job's tasks in each execution state (`tasks` of `/jobs/overview`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct TaskCounts {
    pub total: u32,
    pub created: u32,
    pub scheduled: u32,
    pub deploying: u32,
    pub initializing: u32,
    pub running: u32,
    pub finished: u32,
    pub canceling: u32,
    pub canceled: u32,
    pub failed: u32,
    pub reconciling: u32,
}

/// One job of `GET /jobs/overview` (fresh, not cached).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct JobOverview {
    pub jid: JobId,
    pub name: String,
    pub state: JobStatus,
    /// Epoch milliseconds.
    pub start_time: i64,
    /// Epoch milliseconds, `-1` while the job has not ended.
    pub end_time: i64,
    #[serde(default)]
    pub duration: i64,
    #[serde(default)]
    pub last_modification: i64,
    pub tasks: TaskCounts,
}

impl JobOverview {
    /// The job is `RUNNING` and so are all of its tasks (P9).
    pub fn all_tasks_running(&self) -> bool {
        self.state == JobStatus::Running
            && self.tasks.total > 0
            && self.tasks.running == self.tasks.total
    }
}

/// `GET /jobs/:id` (served from the execution-graph cache, P8).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct JobDetails {
    pub jid: JobId,
    pub name: String,
    pub state: JobStatus,
    pub start_time: i64,
    pub end_time: i64,
    #[serde(default)]
    pub duration: i64,
    #[serde(rename = "isStoppable", default)]
    pub is_stoppable: bool,
    #[serde(default)]
    pub vertices: Vec<VertexDetails>,
}

impl JobDetails {
    /// The job is `RUNNING` and every vertex is `RUNNING` (P9; may lag by the REST cache).
    pub fn all_vertices_running(&self) -> bool {
        self.state == JobStatus::Running
            && !self.vertices.is_empty()
            && self
                .vertices
                .iter()
                .all(|v| v.status == ExecutionState::Running)
    }
}

/// One vertex (chain of operators) of [`JobDetails`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VertexDetails {
    pub id: String,
    pub name: String,
    pub parallelism: u32,
    pub status: ExecutionState,
    /// Number of subtasks per execution state name.
    #[serde(default)]
    pub tasks: BTreeMap<String, u32>,
}

/// Why an asynchronous operation or a job failed (`failure-cause`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureCause {
    /// Java class of the outermost exception (often a wrapper like `CompletionException`).
    pub class: String,
    /// First line of the stack trace: the outermost exception and its message.
    pub message: String,
    /// The last `Caused by:` line of the stack trace, if any: usually the real reason.
    pub root_cause: Option<String>,
    pub stack_trace: String,
}

impl FailureCause {
    fn from_json(v: &Value) -> FailureCause {
        let class = v
            .get("class")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let stack_trace = v
            .get("stack-trace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let message = stack_trace
            .lines()
            .next()
            .unwrap_or(class.as_str())
            .trim()
            .to_owned();
        let root_cause = stack_trace
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("Caused by: "))
            .map(str::to_owned);
        FailureCause {
            class,
            message,
            root_cause,
            stack_trace,
        }
    }

    /// The most specific one-line reason: the root cause if there is one, else the message.
    pub fn summary(&self) -> &str {
        self.root_cause.as_deref().unwrap_or(&self.message)
    }

    /// The operation failed because the job does not exist (any more): Flink accepts
    /// savepoint, stop and checkpoint triggers for unknown jobs and fails them afterwards.
    pub fn is_job_not_found(&self) -> bool {
        self.stack_trace.contains("FlinkJobNotFoundException")
            || self
                .stack_trace
                .contains("FlinkJobTerminatedWithoutCancellationException")
    }
}

impl fmt::Display for FailureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.summary())
    }
}

/// State of a savepoint or stop-with-savepoint operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SavepointStatus {
    InProgress,
    /// The savepoint exists at `location` (`file:/.../savepoint-<jid6>-<random>`).
    Completed {
        location: String,
    },
    Failed {
        cause: FailureCause,
    },
}

/// State of a manually triggered checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointStatus {
    InProgress,
    Completed { checkpoint_id: u64 },
    Failed { cause: FailureCause },
}

/// State of a savepoint disposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisposalStatus {
    InProgress,
    Completed,
    Failed { cause: FailureCause },
}

/// Checkpoint counters of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct CheckpointCounts {
    pub restored: u64,
    pub total: u64,
    pub in_progress: u64,
    pub completed: u64,
    pub failed: u64,
}

/// A completed checkpoint or savepoint (`latest.completed`, `latest.savepoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedCheckpoint {
    pub id: u64,
    pub is_savepoint: bool,
    /// Where it is stored; `None` when it is not externalised (Flink then reports
    /// `<checkpoint-not-externalized>`).
    pub external_path: Option<String>,
    pub trigger_timestamp: i64,
    pub latest_ack_timestamp: i64,
    /// Deleted since (subsumed, or removed by retention).
    pub discarded: bool,
}

/// The checkpoint or savepoint the job restored from (`latest.restored`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredCheckpoint {
    pub id: u64,
    /// Reported `true` for checkpoints too (P15).
    pub is_savepoint: bool,
    pub external_path: Option<String>,
    pub restore_timestamp: i64,
}

/// `GET /jobs/:id/checkpoints`, reduced to what the lifecycle needs. `latest_savepoint` is
/// cached for `rest.cache.checkpoint-statistics.timeout` (P8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointStats {
    pub counts: CheckpointCounts,
    pub latest_completed: Option<CompletedCheckpoint>,
    pub latest_savepoint: Option<CompletedCheckpoint>,
    pub latest_restored: Option<RestoredCheckpoint>,
    /// The completed checkpoints and savepoints of `history`, newest first (Flink keeps
    /// `web.checkpoints.history` of them): where a triggered checkpoint is found once a
    /// periodic one has completed after it.
    pub history: Vec<CompletedCheckpoint>,
}

impl CheckpointStats {
    /// The completed checkpoint `id`, from `latest` or `history`; `None` when Flink no
    /// longer lists it or it was discarded.
    pub fn completed(&self, id: u64) -> Option<&CompletedCheckpoint> {
        self.latest_completed
            .iter()
            .chain(self.history.iter())
            .find(|c| c.id == id && !c.discarded)
    }

    /// Path of the newest retained checkpoint: what a last-state upgrade restores from.
    pub fn latest_completed_path(&self) -> Option<&str> {
        self.latest_completed
            .as_ref()
            .filter(|c| !c.discarded)
            .and_then(|c| c.external_path.as_deref())
    }
}

/// Body of `POST /jars/:jarid/run`, serialised with Flink 2.x's camelCase names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JarRunRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_class: Option<String>,
    /// Program arguments, one per element (the 1.x `programArgs` string is gone, P11).
    pub program_args_list: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// Fixed job id; single-use per session cluster (P10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
    /// Savepoint or retained checkpoint to restore from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub savepoint_path: Option<String>,
    pub allow_non_restored_state: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim_mode: Option<ClaimMode>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub flink_configuration: BTreeMap<String, String>,
}

/// One exception of a job's exception history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionInfo {
    /// Java class name (`exceptionName`).
    pub name: String,
    /// First line of the stack trace (class and message).
    pub message: String,
    pub stacktrace: String,
    /// Epoch milliseconds.
    pub timestamp: i64,
    /// The failing task, for task failures.
    pub task_name: Option<String>,
}

/// The newest failure of `GET /jobs/:id/exceptions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobExceptions {
    /// The failure as the job saw it; with restarts exhausted this is Flink's `JobException:
    /// Recovery is suppressed by ...`, not the user's exception.
    pub root: ExceptionInfo,
    /// The first of the failure's concurrent exceptions: the user's exception when the root
    /// is a restart-strategy wrapper.
    pub first_concurrent: Option<ExceptionInfo>,
}

impl JobExceptions {
    /// The exception most likely thrown by the user's code.
    pub fn user_exception(&self) -> &ExceptionInfo {
        self.first_concurrent.as_ref().unwrap_or(&self.root)
    }
}

/// `GET /jobs/:id/execution-result`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionResult {
    /// The job has not ended.
    InProgress,
    Completed {
        status: ApplicationStatus,
        /// Milliseconds the job ran.
        net_runtime_ms: u64,
        failure_cause: Option<FailureCause>,
    },
}

// ---------------------------------------------------------------------------------------
// Parsing of the composite answers (pure)
// ---------------------------------------------------------------------------------------

/// Any answer that maps onto a `Deserialize` type as it is.
/// Why a 2xx answer's body is not what this Flink version sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(super) struct BadBody(pub(super) String);

impl From<String> for BadBody {
    fn from(s: String) -> Self {
        BadBody(s)
    }
}

impl From<BadBody> for String {
    fn from(b: BadBody) -> Self {
        b.0
    }
}

impl From<&str> for BadBody {
    fn from(s: &str) -> Self {
        BadBody(s.to_string())
    }
}

pub(super) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, BadBody> {
    serde_json::from_slice(body).map_err(|e| BadBody(e.to_string()))
}

/// `{"jobs":[...]}` of `GET /jobs/overview`.
/// `{"<vertex id>": {"parallelism": {"lowerBound": l, "upperBound": u}}, ...}`.
pub(super) fn parse_resource_requirements(
    body: &[u8],
) -> Result<BTreeMap<String, (u32, u32)>, BadBody> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let obj = v
        .as_object()
        .ok_or("resource requirements: not an object")?;
    let mut out = BTreeMap::new();
    for (vertex, req) in obj {
        let p = &req["parallelism"];
        let bound = |k: &str| {
            p[k].as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("resource requirements of {vertex}: {k} missing"))
        };
        out.insert(vertex.clone(), (bound("lowerBound")?, bound("upperBound")?));
    }
    Ok(out)
}

pub(super) fn parse_jobs_overview(body: &[u8]) -> Result<Vec<JobOverview>, BadBody> {
    #[derive(Deserialize)]
    struct Jobs {
        jobs: Vec<JobOverview>,
    }
    parse_json::<Jobs>(body).map(|j| j.jobs)
}

/// `[{"key": "...", "value": "..."}, ...]` of `GET /jobmanager/config`: the JobManager's
/// effective configuration as key to value (Flink masks sensitive values as `******`).
pub(super) fn parse_jobmanager_config(body: &[u8]) -> Result<BTreeMap<String, String>, BadBody> {
    #[derive(Deserialize)]
    struct Entry {
        key: String,
        value: String,
    }
    parse_json::<Vec<Entry>>(body)
        .map(|entries| entries.into_iter().map(|e| (e.key, e.value)).collect())
}

/// `{"status":"RUNNING"}` of `GET /jobs/:id/status`.
pub(super) fn parse_job_status(body: &[u8]) -> Result<JobStatus, BadBody> {
    #[derive(Deserialize)]
    struct Status {
        status: JobStatus,
    }
    parse_json::<Status>(body).map(|s| s.status)
}

/// `{"request-id":"<trigger>"}` of every asynchronous operation's trigger.
pub(super) fn parse_trigger(body: &[u8]) -> Result<TriggerId, BadBody> {
    #[derive(Deserialize)]
    struct Triggered {
        #[serde(rename = "request-id")]
        request_id: TriggerId,
    }
    parse_json::<Triggered>(body).map(|t| t.request_id)
}

/// `{"jobid":"<id>","applicationId":"<id>"}` of `POST /jars/:jarid/run`.
pub(super) fn parse_run(body: &[u8]) -> Result<JobId, BadBody> {
    #[derive(Deserialize)]
    struct Submitted {
        jobid: JobId,
    }
    parse_json::<Submitted>(body).map(|s| s.jobid)
}

/// An asynchronous operation's state (P12: failure is a COMPLETED with `failure-cause`).
#[derive(Debug)]
pub(super) enum Operation {
    InProgress,
    Completed(Value),
    Failed(FailureCause),
}

pub(super) fn parse_operation(body: &[u8]) -> Result<Operation, BadBody> {
    #[derive(Deserialize)]
    struct Raw {
        status: RawStatus,
        #[serde(default)]
        operation: Option<Value>,
    }
    #[derive(Deserialize)]
    struct RawStatus {
        id: String,
    }
    let raw: Raw = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    match raw.status.id.as_str() {
        "IN_PROGRESS" => Ok(Operation::InProgress),
        "COMPLETED" => {
            let op = raw.operation.unwrap_or(Value::Null);
            match op.get("failure-cause") {
                Some(cause) if !cause.is_null() => {
                    Ok(Operation::Failed(FailureCause::from_json(cause)))
                }
                _ => Ok(Operation::Completed(op)),
            }
        }
        other => Err(BadBody::from(format!("unknown operation status {other:?}"))),
    }
}

/// `{"filename":"<upload dir>/<uuid>_<name>.jar","status":"success"}`: the jar id is the
/// file's base name.
pub(super) fn parse_upload(body: &[u8]) -> Result<JarId, BadBody> {
    #[derive(Deserialize)]
    struct Uploaded {
        filename: String,
        #[serde(default)]
        status: String,
    }
    let uploaded: Uploaded = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if uploaded.status != "success" {
        return Err(BadBody::from(format!(
            "upload status {:?}",
            uploaded.status
        )));
    }
    match uploaded.filename.rsplit(['/', '\\']).next() {
        Some(id) if !id.is_empty() => Ok(JarId(id.to_owned())),
        _ => Err(BadBody::from(
            "upload answer without a file name".to_owned(),
        )),
    }
}

pub(super) fn parse_checkpoints(body: &[u8]) -> Result<CheckpointStats, BadBody> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        counts: CheckpointCounts,
        #[serde(default)]
        latest: Option<RawLatest>,
        #[serde(default)]
        history: Vec<RawHistory>,
    }
    #[derive(Deserialize)]
    struct RawHistory {
        #[serde(default)]
        status: String,
        #[serde(flatten)]
        checkpoint: RawCompleted,
    }
    #[derive(Deserialize)]
    struct RawLatest {
        #[serde(default)]
        completed: Option<RawCompleted>,
        #[serde(default)]
        savepoint: Option<RawCompleted>,
        #[serde(default)]
        restored: Option<RawRestored>,
    }
    #[derive(Deserialize)]
    struct RawCompleted {
        id: u64,
        #[serde(default)]
        is_savepoint: bool,
        #[serde(default)]
        external_path: Option<String>,
        #[serde(default)]
        trigger_timestamp: i64,
        #[serde(default)]
        latest_ack_timestamp: i64,
        #[serde(default)]
        discarded: bool,
    }
    #[derive(Deserialize)]
    struct RawRestored {
        id: u64,
        #[serde(default)]
        is_savepoint: bool,
        #[serde(default)]
        external_path: Option<String>,
        #[serde(default)]
        restore_timestamp: i64,
    }
    // Non-externalised snapshots report a placeholder such as `<checkpoint-not-externalized>`.
    fn real_path(p: Option<String>) -> Option<String> {
        p.filter(|p| !p.is_empty() && !p.starts_with('<'))
    }
    fn completed(c: RawCompleted) -> CompletedCheckpoint {
        CompletedCheckpoint {
            id: c.id,
            is_savepoint: c.is_savepoint,
            external_path: real_path(c.external_path),
            trigger_timestamp: c.trigger_timestamp,
            latest_ack_timestamp: c.latest_ack_timestamp,
            discarded: c.discarded,
        }
    }
    let raw: Raw = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let latest = raw.latest.unwrap_or(RawLatest {
        completed: None,
        savepoint: None,
        restored: None,
    });
    Ok(CheckpointStats {
        counts: raw.counts,
        latest_completed: latest.completed.map(completed),
        latest_savepoint: latest.savepoint.map(completed),
        latest_restored: latest.restored.map(|r| RestoredCheckpoint {
            id: r.id,
            is_savepoint: r.is_savepoint,
            external_path: real_path(r.external_path),
            restore_timestamp: r.restore_timestamp,
        }),
        history: raw
            .history
            .into_iter()
            .filter(|h| h.status == "COMPLETED")
            .map(|h| completed(h.checkpoint))
            .collect(),
    })
}

/// `GET /jobs/:id/metrics?get=...`: `[{"id": name, "value": "text"}]`, as a map. A metric
/// the job does not (yet) have is left out by Flink and so missing here.
pub(super) fn parse_metrics(body: &[u8]) -> Result<BTreeMap<String, String>, BadBody> {
    #[derive(Deserialize)]
    struct Raw {
        id: String,
        value: String,
    }
    let raw: Vec<Raw> = serde_json::from_slice(body).map_err(|e| BadBody(e.to_string()))?;
    Ok(raw.into_iter().map(|m| (m.id, m.value)).collect())
}

pub(super) fn parse_exceptions(body: &[u8]) -> Result<Option<JobExceptions>, BadBody> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw {
        exception_history: RawHistory,
    }
    #[derive(Deserialize)]
    struct RawHistory {
        #[serde(default)]
        entries: Vec<RawEntry>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct RawEntry {
        exception_name: String,
        #[serde(default)]
        stacktrace: String,
        #[serde(default)]
        timestamp: i64,
        #[serde(default)]
        task_name: Option<String>,
        #[serde(default)]
        concurrent_exceptions: Vec<RawEntry>,
    }
    fn info(e: RawEntry) -> ExceptionInfo {
        ExceptionInfo {
            message: first_line(&e.stacktrace).to_owned(),
            name: e.exception_name,
            stacktrace: e.stacktrace,
            timestamp: e.timestamp,
            task_name: e.task_name,
        }
    }
    let raw: Raw = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    // Newest first.
    Ok(raw
        .exception_history
        .entries
        .into_iter()
        .next()
        .map(|mut root| {
            let first_concurrent = if root.concurrent_exceptions.is_empty() {
                None
            } else {
                Some(info(root.concurrent_exceptions.swap_remove(0)))
            };
            JobExceptions {
                root: info(root),
                first_concurrent,
            }
        }))
}

pub(super) fn parse_execution_result(body: &[u8]) -> Result<ExecutionResult, BadBody> {
    #[derive(Deserialize)]
    struct Raw {
        status: RawStatus,
        #[serde(rename = "job-execution-result", default)]
        result: Option<RawResult>,
    }
    #[derive(Deserialize)]
    struct RawStatus {
        id: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "kebab-case")]
    struct RawResult {
        application_status: ApplicationStatus,
        #[serde(default)]
        net_runtime: u64,
        #[serde(default)]
        failure_cause: Option<Value>,
    }
    let raw: Raw = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    match (raw.status.id.as_str(), raw.result) {
        ("IN_PROGRESS", _) => Ok(ExecutionResult::InProgress),
        ("COMPLETED", Some(r)) => Ok(ExecutionResult::Completed {
            status: r.application_status,
            net_runtime_ms: r.net_runtime,
            failure_cause: r
                .failure_cause
                .filter(|c| !c.is_null())
                .map(|c| FailureCause::from_json(&c)),
        }),
        ("COMPLETED", None) => Err(BadBody::from(
            "completed without job-execution-result".to_owned(),
        )),
        (other, _) => Err(BadBody::from(format!("unknown result status {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    //! Every answer shape, with JSON as Flink 2.3 sends it (`local-flink.md` §6; the
    //! composite ones captured from a real 2.3 session cluster, stack traces shortened).

    use super::*;

    const JID: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01";

    fn jid() -> JobId {
        JobId::parse(JID).unwrap()
    }

    #[test]
    fn job_id_accepts_only_32_lowercase_hex() {
        assert_eq!(JobId::parse(JID).unwrap().as_str(), JID);
        assert_eq!(
            "0123456789abcdef0123456789abcdef"
                .parse::<JobId>()
                .unwrap()
                .to_string(),
            "0123456789abcdef0123456789abcdef"
        );
        for bad in [
            "",
            "abc",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcdeg",
            "0123456789abcdef0123456789abcdef0",
        ] {
            assert_eq!(
                JobId::parse(bad),
                Err(InvalidJobId(bad.to_owned())),
                "{bad:?}"
            );
        }
        assert!(serde_json::from_str::<JobId>("\"nothex\"").is_err());
        assert_eq!(serde_json::to_string(&jid()).unwrap(), format!("\"{JID}\""));
    }

    #[test]
    fn random_job_ids_are_valid_and_distinct() {
        let ids: std::collections::BTreeSet<String> =
            (0..1000).map(|_| JobId::random().to_string()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert!(JobId::parse(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn derived_job_ids_are_stable_per_seed() {
        let a = JobId::derived("default/orders#3");
        assert_eq!(a, JobId::derived("default/orders#3"));
        assert_ne!(a, JobId::derived("default/orders#4"));
        assert_eq!(a.as_str().len(), 32);
        assert!(JobId::parse(a.as_str()).is_ok());
    }

    #[test]
    fn parses_cluster_overview() {
        let body = r#"{"taskmanagers":1,"slots-total":2,"slots-available":2,"jobs-running":0,"jobs-finished":0,"jobs-cancelled":0,"jobs-failed":0,"flink-version":"2.3.0","flink-commit":"c0f8d1a"}"#;
        let o: ClusterOverview = parse_json(body.as_bytes()).unwrap();
        assert_eq!(
            o,
            ClusterOverview {
                taskmanagers: 1,
                slots_total: 2,
                slots_available: 2,
                jobs_running: 0,
                jobs_finished: 0,
                jobs_cancelled: 0,
                jobs_failed: 0,
                flink_version: "2.3.0".into(),
                flink_commit: Some("c0f8d1a".into()),
            }
        );
    }

    #[test]
    fn parses_dashboard_config() {
        let body = r#"{"refresh-interval":3000,"timezone-name":"Coordinated Universal Time","timezone-offset":0,"flink-version":"2.3.0","flink-revision":"c0f8d1a @ 2026-06-14T16:29:03+02:00","features":{"web-submit":true,"web-cancel":true,"web-rescale":false,"web-history":false}}"#;
        let c: DashboardConfig = parse_json(body.as_bytes()).unwrap();
        assert_eq!(c.flink_version, "2.3.0");
        assert_eq!(
            c.flink_revision.as_deref(),
            Some("c0f8d1a @ 2026-06-14T16:29:03+02:00")
        );
        assert_eq!(c.refresh_interval, 3000);
    }

    #[test]
    fn parses_jobs_overview_and_readiness() {
        let body = r#"{"jobs":[{"jid":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01","name":"stateful-counter-v1","jobType":"STREAMING","schedulerType":"Default","start-time":1795429233579,"end-time":-1,"duration":4461,"state":"RUNNING","last-modification":1795429234656,"tasks":{"running":2,"canceling":0,"canceled":0,"total":2,"created":0,"scheduled":0,"deploying":0,"reconciling":0,"finished":0,"initializing":0,"failed":0},"pending-operators":0}]}"#;
        let jobs = parse_jobs_overview(body.as_bytes()).unwrap();
        assert_eq!(jobs.len(), 1);
        let j = &jobs[0];
        assert_eq!(j.jid, jid());
        assert_eq!(j.name, "stateful-counter-v1");
        assert_eq!(j.state, JobStatus::Running);
        assert_eq!(
            (j.start_time, j.end_time, j.duration),
            (1795429233579, -1, 4461)
        );
        assert_eq!((j.tasks.running, j.tasks.total), (2, 2));
        assert!(j.all_tasks_running());

        // P9: RUNNING while a task is still deploying is not running.
        let deploying = body
            .replace(r#""running":2"#, r#""running":1"#)
            .replace(r#""deploying":0"#, r#""deploying":1"#);
        let jobs = parse_jobs_overview(deploying.as_bytes()).unwrap();
        assert_eq!(jobs[0].state, JobStatus::Running);
        assert_eq!(jobs[0].tasks.deploying, 1);
        assert!(!jobs[0].all_tasks_running());

        assert_eq!(parse_jobs_overview(br#"{"jobs":[]}"#).unwrap(), vec![]);
    }

    #[test]
    fn parses_job_status_including_unknown_states() {
        assert_eq!(
            parse_job_status(br#"{"status":"RUNNING"}"#).unwrap(),
            JobStatus::Running
        );
        assert_eq!(
            parse_job_status(br#"{"status":"FAILED"}"#).unwrap(),
            JobStatus::Failed
        );
        assert_eq!(
            parse_job_status(br#"{"status":"CANCELLING"}"#).unwrap(),
            JobStatus::Cancelling
        );
        assert_eq!(
            parse_job_status(br#"{"status":"SOMETHING_NEW"}"#).unwrap(),
            JobStatus::Unknown
        );
        assert!(JobStatus::Canceled.is_globally_terminal());
        assert!(!JobStatus::Suspended.is_globally_terminal());
        assert!(parse_job_status(br#"{"state":"RUNNING"}"#).is_err());
    }

    #[test]
    fn parses_job_details_with_vertex_states() {
        let body = r#"{"jid":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01","application-id":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01","name":"stateful-counter-v1","isStoppable":false,"state":"RUNNING","job-type":"STREAMING","schedulerType":"Default","start-time":1795429233579,"end-time":-1,"duration":4507,"maxParallelism":-1,"now":1795429238086,"timestamps":{"RUNNING":1795429233895,"FINISHED":0,"FAILING":0,"CANCELLING":0,"RESTARTING":0,"CREATED":1795429233792,"INITIALIZING":1795429233579,"CANCELED":0,"SUSPENDED":0,"FAILED":0,"RECONCILING":0},"vertices":[{"id":"7a0e22450c7ff084b745556dd9e4a928","slotSharingGroupId":"9f196bb103c343a8119a6fa1388033c6","name":"Source: seq-source","maxParallelism":128,"parallelism":1,"status":"RUNNING","start-time":1795429234124,"end-time":-1,"duration":3962,"tasks":{"DEPLOYING":0,"CANCELED":0,"RECONCILING":0,"CREATED":0,"SCHEDULED":0,"FAILED":0,"FINISHED":0,"RUNNING":1,"CANCELING":0,"INITIALIZING":0},"metrics":{"read-bytes":0,"read-bytes-complete":false,"write-bytes":0,"write-bytes-complete":false,"read-records":0,"read-records-complete":false,"write-records":0,"write-records-complete":false,"accumulated-backpressured-time":0,"accumulated-idle-time":0,"accumulated-busy-time":0.0}},{"id":"ed63c6d066f83fc9a893ba13a9fb615d","slotSharingGroupId":"9f196bb103c343a8119a6fa1388033c6","name":"keyed-counter -> file-sink: Writer","maxParallelism":128,"parallelism":1,"status":"DEPLOYING","start-time":1795429234127,"end-time":-1,"duration":3959,"tasks":{"DEPLOYING":1,"CANCELED":0,"RECONCILING":0,"CREATED":0,"SCHEDULED":0,"FAILED":0,"FINISHED":0,"RUNNING":0,"CANCELING":0,"INITIALIZING":0},"metrics":{"read-bytes":0,"read-bytes-complete":false,"write-bytes":0,"write-bytes-complete":false,"read-records":0,"read-records-complete":false,"write-records":0,"write-records-complete":false,"accumulated-backpressured-time":0,"accumulated-idle-time":0,"accumulated-busy-time":0.0}}],"status-counts":{"DEPLOYING":1,"CANCELED":0,"RECONCILING":0,"CREATED":0,"SCHEDULED":0,"FAILED":0,"FINISHED":0,"RUNNING":1,"CANCELING":0,"INITIALIZING":0},"plan":{"jid":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01","name":"stateful-counter-v1","type":"STREAMING","nodes":[]},"pending-operators":0}"#;
        let d: JobDetails = parse_json(body.as_bytes()).unwrap();
        assert_eq!(d.jid, jid());
        assert_eq!(d.state, JobStatus::Running);
        assert!(!d.is_stoppable);
        assert_eq!(d.vertices.len(), 2);
        assert_eq!(d.vertices[0].name, "Source: seq-source");
        assert_eq!(d.vertices[0].status, ExecutionState::Running);
        assert_eq!(d.vertices[1].status, ExecutionState::Deploying);
        assert_eq!(d.vertices[1].tasks.get("DEPLOYING"), Some(&1));
        assert!(!d.all_vertices_running());

        let running = body.replace(r#""status":"DEPLOYING""#, r#""status":"RUNNING""#);
        let d: JobDetails = parse_json(running.as_bytes()).unwrap();
        assert!(d.all_vertices_running());
    }

    #[test]
    fn parses_trigger_upload_and_run_answers() {
        assert_eq!(
            parse_trigger(br#"{"request-id":"aba8700834fc933174d47c2382f2e028"}"#).unwrap(),
            TriggerId::new("aba8700834fc933174d47c2382f2e028")
        );
        let upload = br#"{"filename":"/tmp/restcheck/data/web-upload/flink-web-upload/2871a8d8-2b4f-403d-9995-335a9b3f1c2b_stateful-counter.jar","status":"success"}"#;
        assert_eq!(
            parse_upload(upload).unwrap(),
            JarId::new("2871a8d8-2b4f-403d-9995-335a9b3f1c2b_stateful-counter.jar")
        );
        assert!(
            parse_upload(br#"{"filename":"/x/y.jar","status":"failure"}"#)
                .unwrap_err()
                .0
                .contains("failure")
        );
        assert!(parse_upload(br#"{"filename":"/x/","status":"success"}"#).is_err());
        let run = br#"{"jobid":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01","applicationId":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01"}"#;
        assert_eq!(parse_run(run).unwrap(), jid());
        assert!(parse_run(br#"{"jobid":"NOT-A-JOB-ID"}"#).is_err());
    }

    #[test]
    fn savepoint_operations_in_progress_completed_and_failed() {
        // 2.3 sends `"operation":null` while in progress.
        assert!(matches!(
            parse_operation(br#"{"status":{"id":"IN_PROGRESS"},"operation":null}"#).unwrap(),
            Operation::InProgress
        ));
        assert!(matches!(
            parse_operation(br#"{"status":{"id":"IN_PROGRESS"}}"#).unwrap(),
            Operation::InProgress
        ));

        let done = br#"{"status":{"id":"COMPLETED"},"operation":{"location":"file:/tmp/restcheck/data/savepoints/savepoint-aaaaaa-976d0081aa6c"}}"#;
        match parse_operation(done).unwrap() {
            Operation::Completed(op) => assert_eq!(
                op["location"],
                "file:/tmp/restcheck/data/savepoints/savepoint-aaaaaa-976d0081aa6c"
            ),
            _ => panic!("expected completed"),
        }

        // A savepoint of a job that does not exist: 202 on trigger, then this (P12).
        let failed = br#"{"status":{"id":"COMPLETED"},"operation":{"failure-cause":{"class":"java.util.concurrent.CompletionException","stack-trace":"java.util.concurrent.CompletionException: org.apache.flink.runtime.messages.FlinkJobNotFoundException: Could not find Flink job (0123456789abcdef0123456789abcdef)\n\tat java.base/java.util.concurrent.CompletableFuture.encodeThrowable(CompletableFuture.java:332)\nCaused by: org.apache.flink.runtime.messages.FlinkJobNotFoundException: Could not find Flink job (0123456789abcdef0123456789abcdef)\n\t... 42 more\n","serialized-throwable":"rO0ABXNyAC"}}}"#;
        match parse_operation(failed).unwrap() {
            Operation::Failed(cause) => {
                assert_eq!(cause.class, "java.util.concurrent.CompletionException");
                assert!(cause.message.starts_with("java.util.concurrent.CompletionException: org.apache.flink.runtime.messages.FlinkJobNotFoundException"));
                assert_eq!(
                    cause.root_cause.as_deref(),
                    Some("org.apache.flink.runtime.messages.FlinkJobNotFoundException: Could not find Flink job (0123456789abcdef0123456789abcdef)")
                );
                assert_eq!(cause.summary(), cause.root_cause.as_deref().unwrap());
                assert!(cause.is_job_not_found());
            }
            _ => panic!("expected failed"),
        }

        assert!(parse_operation(br#"{"status":{"id":"WEIRD"}}"#)
            .unwrap_err()
            .0
            .contains("WEIRD"));
        assert!(parse_operation(br#"{"errors":["x"]}"#).is_err());
    }

    #[test]
    fn checkpoint_and_disposal_operations() {
        match parse_operation(br#"{"status":{"id":"COMPLETED"},"operation":{"checkpointId":6}}"#)
            .unwrap()
        {
            Operation::Completed(op) => assert_eq!(op["checkpointId"].as_u64(), Some(6)),
            _ => panic!("expected completed"),
        }
        match parse_operation(br#"{"status":{"id":"COMPLETED"},"operation":{}}"#).unwrap() {
            Operation::Completed(op) => assert_eq!(op, serde_json::json!({})),
            _ => panic!("expected completed"),
        }
        let failed = br#"{"status":{"id":"COMPLETED"},"operation":{"failure-cause":{"class":"org.apache.flink.util.FlinkException","stack-trace":"org.apache.flink.util.FlinkException: Could not dispose savepoint file:/tmp/nonexist.\n\tat org.apache.flink.runtime.dispatcher.Dispatcher.lambda$disposeSavepoint$29(Dispatcher.java:1523)\nCaused by: java.io.FileNotFoundException: Cannot find checkpoint or savepoint file/directory 'file:/tmp/nonexist' on file system 'file'.\n\t... 5 more\n"}}}"#;
        match parse_operation(failed).unwrap() {
            Operation::Failed(cause) => {
                assert_eq!(cause.class, "org.apache.flink.util.FlinkException");
                assert_eq!(cause.message, "org.apache.flink.util.FlinkException: Could not dispose savepoint file:/tmp/nonexist.");
                assert!(cause.summary().starts_with(
                    "java.io.FileNotFoundException: Cannot find checkpoint or savepoint"
                ));
                assert!(!cause.is_job_not_found());
            }
            _ => panic!("expected failed"),
        }
    }

    #[test]
    fn parses_checkpoint_statistics() {
        let body = r#"{"counts":{"restored":0,"total":6,"in_progress":0,"completed":5,"failed":1},"summary":{"checkpointed_size":{"min":4155,"max":4172,"avg":4168,"p50":4172.0,"p90":4172.0,"p95":4172.0,"p99":4172.0,"p999":4172.0}},"latest":{"completed":{"className":"completed","id":5,"status":"COMPLETED","is_savepoint":false,"savepointFormat":null,"trigger_timestamp":1795429242659,"latest_ack_timestamp":1795429242687,"checkpointed_size":4172,"state_size":4172,"end_to_end_duration":28,"alignment_buffered":0,"processed_data":0,"persisted_data":0,"num_subtasks":2,"num_acknowledged_subtasks":2,"checkpoint_type":"CHECKPOINT","tasks":{},"external_path":"file:/tmp/restcheck/data/checkpoints/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01/chk-5","discarded":false},"savepoint":null,"failed":null,"restored":null},"history":[{"className":"completed","id":5,"status":"COMPLETED","is_savepoint":false,"savepointFormat":null,"trigger_timestamp":1795429242659,"latest_ack_timestamp":1795429242687,"checkpointed_size":4172,"state_size":4172,"end_to_end_duration":28,"alignment_buffered":0,"processed_data":0,"persisted_data":0,"num_subtasks":2,"num_acknowledged_subtasks":2,"checkpoint_type":"CHECKPOINT","tasks":{},"external_path":"file:/tmp/restcheck/data/checkpoints/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01/chk-5","discarded":false}]}"#;
        let stats = parse_checkpoints(body.as_bytes()).unwrap();
        assert_eq!(
            stats.counts,
            CheckpointCounts {
                restored: 0,
                total: 6,
                in_progress: 0,
                completed: 5,
                failed: 1
            }
        );
        let latest = stats.latest_completed.as_ref().unwrap();
        assert_eq!(latest.id, 5);
        assert!(!latest.is_savepoint);
        // `history` is read too: a triggered checkpoint is found there once a newer one
        // is the latest.
        assert_eq!(stats.history.len(), 1);
        let mut newer = stats.clone();
        newer.latest_completed.as_mut().unwrap().id = 6;
        assert_eq!(
            newer.completed(5).and_then(|c| c.external_path.as_deref()),
            Some("file:/tmp/restcheck/data/checkpoints/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01/chk-5")
        );
        assert_eq!(newer.completed(4), None);
        assert_eq!(
            (latest.trigger_timestamp, latest.latest_ack_timestamp),
            (1795429242659, 1795429242687)
        );
        assert_eq!(
            stats.latest_completed_path(),
            Some("file:/tmp/restcheck/data/checkpoints/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01/chk-5")
        );
        assert_eq!(stats.latest_savepoint, None);
        assert_eq!(stats.latest_restored, None);
    }

    #[test]
    fn parses_restored_snapshot_and_hides_placeholder_paths() {
        let body = r#"{"counts":{"restored":1,"total":1,"in_progress":0,"completed":1,"failed":0},"latest":{"completed":{"className":"completed","id":9,"status":"COMPLETED","is_savepoint":false,"savepointFormat":null,"trigger_timestamp":1795429254132,"latest_ack_timestamp":1795429254180,"checkpointed_size":4172,"state_size":4172,"end_to_end_duration":48,"alignment_buffered":0,"processed_data":0,"persisted_data":0,"num_subtasks":2,"num_acknowledged_subtasks":2,"checkpoint_type":"CHECKPOINT","tasks":{},"external_path":"<checkpoint-not-externalized>","discarded":false},"savepoint":null,"failed":null,"restored":{"id":8,"restore_timestamp":1795429253695,"is_savepoint":true,"external_path":"file:/tmp/restcheck/data/savepoints/savepoint-aaaaaa-0be9f7275d42"}},"history":[]}"#;
        let stats = parse_checkpoints(body.as_bytes()).unwrap();
        assert_eq!(stats.latest_completed.as_ref().map(|c| c.id), Some(9));
        assert_eq!(stats.latest_completed_path(), None);
        assert_eq!(
            stats.latest_restored,
            Some(RestoredCheckpoint {
                id: 8,
                is_savepoint: true,
                external_path: Some(
                    "file:/tmp/restcheck/data/savepoints/savepoint-aaaaaa-0be9f7275d42".into()
                ),
                restore_timestamp: 1795429253695,
            })
        );

        // A job that never checkpointed.
        let empty = r#"{"counts":{"restored":0,"total":0,"in_progress":0,"completed":0,"failed":0},"summary":{},"latest":{"completed":null,"savepoint":null,"failed":null,"restored":null},"history":[]}"#;
        let stats = parse_checkpoints(empty.as_bytes()).unwrap();
        assert_eq!(stats.counts.total, 0);
        assert_eq!(stats.latest_completed_path(), None);
    }

    #[test]
    fn parses_exception_history_root_and_user_exception() {
        let body = r#"{"exceptionHistory":{"entries":[{"exceptionName":"org.apache.flink.runtime.JobException","stacktrace":"org.apache.flink.runtime.JobException: Recovery is suppressed by NoRestartBackoffTimeStrategy\n\tat org.apache.flink.runtime.executiongraph.failover.ExecutionFailureHandler.handleFailure(ExecutionFailureHandler.java:213)\n\tat org.apache.flink.runtime.executiongraph.failover.ExecutionFailureHandler.handleFailureAndReport(ExecutionFailureHandler.java:163)","timestamp":1795429254826,"failureLabels":{},"concurrentExceptions":[{"exceptionName":"java.lang.IllegalStateException","stacktrace":"java.lang.IllegalStateException: stateful-counter bad: failing on purpose after 3 records (attempt 0, --failAfter)\n\tat lab.CountingFunction.processElement(CountingFunction.java:50)\n\tat lab.CountingFunction.processElement(CountingFunction.java:19)","timestamp":1795429254769,"failureLabels":{},"taskName":"keyed-counter -> file-sink: Writer (1/1) - execution #0","endpoint":"localhost:34129","taskManagerId":"localhost:38849-2141bf"}]}],"truncated":false}}"#;
        let e = parse_exceptions(body.as_bytes()).unwrap().unwrap();
        assert_eq!(e.root.name, "org.apache.flink.runtime.JobException");
        assert_eq!(e.root.message, "org.apache.flink.runtime.JobException: Recovery is suppressed by NoRestartBackoffTimeStrategy");
        assert_eq!(e.root.timestamp, 1795429254826);
        assert_eq!(e.root.task_name, None);
        let user = e.first_concurrent.as_ref().unwrap();
        assert_eq!(user.name, "java.lang.IllegalStateException");
        assert_eq!(user.message, "java.lang.IllegalStateException: stateful-counter bad: failing on purpose after 3 records (attempt 0, --failAfter)");
        assert_eq!(
            user.task_name.as_deref(),
            Some("keyed-counter -> file-sink: Writer (1/1) - execution #0")
        );
        assert_eq!(e.user_exception().name, "java.lang.IllegalStateException");

        assert_eq!(
            parse_exceptions(br#"{"exceptionHistory":{"entries":[],"truncated":false}}"#).unwrap(),
            None
        );
    }

    #[test]
    fn parses_execution_results() {
        let ok = br#"{"status":{"id":"COMPLETED"},"job-execution-result":{"id":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01","name":"stateful-counter-v1","application-status":"SUCCEEDED","accumulator-results":{},"net-runtime":11069,"application-id":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01","start-time":1795429233579,"end-time":1795429244648}}"#;
        assert_eq!(
            parse_execution_result(ok).unwrap(),
            ExecutionResult::Completed {
                status: ApplicationStatus::Succeeded,
                net_runtime_ms: 11069,
                failure_cause: None
            }
        );
        let failed = br#"{"status":{"id":"COMPLETED"},"job-execution-result":{"id":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa05","name":"stateful-counter-bad","application-status":"FAILED","accumulator-results":{},"net-runtime":1181,"failure-cause":{"class":"org.apache.flink.runtime.JobException","stack-trace":"org.apache.flink.runtime.JobException: Recovery is suppressed by NoRestartBackoffTimeStrategy\n\tat x\nCaused by: java.lang.IllegalStateException: stateful-counter bad: failing on purpose after 3 records (attempt 0, --failAfter)","serialized-throwable":"rO0ABXNyAClvcmcuYXBh"},"application-id":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa05","start-time":1795429253645,"end-time":1795429254826}}"#;
        match parse_execution_result(failed).unwrap() {
            ExecutionResult::Completed {
                status,
                net_runtime_ms,
                failure_cause: Some(cause),
            } => {
                assert_eq!(status, ApplicationStatus::Failed);
                assert_eq!(net_runtime_ms, 1181);
                assert_eq!(cause.class, "org.apache.flink.runtime.JobException");
                assert_eq!(cause.summary(), "java.lang.IllegalStateException: stateful-counter bad: failing on purpose after 3 records (attempt 0, --failAfter)");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            parse_execution_result(br#"{"status":{"id":"IN_PROGRESS"}}"#).unwrap(),
            ExecutionResult::InProgress
        );
        assert!(parse_execution_result(br#"{"status":{"id":"COMPLETED"}}"#).is_err());
    }

    #[test]
    fn jar_run_request_uses_flink_2_names_only() {
        let request = JarRunRequest {
            entry_class: Some("lab.StatefulCounterJob".into()),
            program_args_list: vec!["--version".into(), "v1".into()],
            parallelism: Some(1),
            job_id: Some(jid()),
            savepoint_path: Some("file:/sp/savepoint-aaaaaa-1".into()),
            allow_non_restored_state: false,
            claim_mode: Some(ClaimMode::NoClaim),
            flink_configuration: BTreeMap::from([(
                "execution.checkpointing.interval".to_owned(),
                "7 s".to_owned(),
            )]),
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({
                "entryClass": "lab.StatefulCounterJob",
                "programArgsList": ["--version", "v1"],
                "parallelism": 1,
                "jobId": JID,
                "savepointPath": "file:/sp/savepoint-aaaaaa-1",
                "allowNonRestoredState": false,
                "claimMode": "NO_CLAIM",
                "flinkConfiguration": {"execution.checkpointing.interval": "7 s"}
            })
        );
        // Unset options are left out, so Flink applies its own defaults.
        assert_eq!(
            serde_json::to_value(JarRunRequest::default()).unwrap(),
            serde_json::json!({"programArgsList": [], "allowNonRestoredState": false})
        );
        assert_eq!(serde_json::to_value(ClaimMode::Claim).unwrap(), "CLAIM");
        assert_eq!(
            serde_json::to_value(SavepointFormat::Native).unwrap(),
            "NATIVE"
        );
        assert_eq!(
            serde_json::to_value(CheckpointType::Incremental).unwrap(),
            "INCREMENTAL"
        );
    }
}
