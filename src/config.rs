//! The one home of configuration: the agent's defaults, the environment variables it reads,
//! and the Flink and operator option keys it understands, each documented once.
//!
//! Flags in [`crate::cli`] take their defaults from the `DEFAULT_*` constants here and their
//! environment variables from the `ENV_*` constants. Flink option keys are [`FlinkOption`]s:
//! one constant per option with its Flink 2.x name, the deprecated 1.x names that still
//! mean the same thing, and the kind of value it takes, so validation, the runtimes and the
//! docs agree on every key.

use std::time::Duration;

use crate::flink::spec::operator::OperatorVersion;

// ---------------------------------------------------------------------------------------
// Agent defaults
// ---------------------------------------------------------------------------------------

/// Branch the agent writes status to, on the same remote as the manifests.
pub const DEFAULT_STATUS_BRANCH: &str = "flink-gitops/status";
/// Branch the agent reads manifests from.
pub const DEFAULT_BRANCH: &str = "main";
/// Time between two reconcile passes when nothing is in flight.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(15);
/// Time between two observations of Flink while an action is in flight.
pub const DEFAULT_FAST_POLL: Duration = Duration::from_millis(100);
/// Deadline for one Git fetch (all resources share one fetch per cycle).
pub const DEFAULT_GIT_TIMEOUT: Duration = Duration::from_secs(120);
/// Deadline for one Flink REST call.
pub const DEFAULT_REST_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline for the Flink REST calls that submit a job: the jar upload and `/jars/:id/run`
/// (which runs the job's `main()` on the JobManager before it answers).
pub const DEFAULT_REST_SUBMIT_TIMEOUT: Duration = Duration::from_secs(60);
/// Resources whose actions run at the same time.
pub const DEFAULT_MAX_CONCURRENT_RESOURCES: usize = 4;
/// First retry delay of a resource whose reconcile failed (doubles per failure).
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay of a failing resource.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Spread of a retry delay: +/- this share of it, so failing resources do not retry in step.
pub const DEFAULT_BACKOFF_JITTER: f64 = 0.2;
/// External actions (deploy, stop, submit, rescale, trigger) carried out at the same time;
/// waiting for Flink takes no slot.
pub const DEFAULT_MAX_CONCURRENT_ACTIONS: usize = 4;
/// Steps one reconcile of a resource may take before it yields to the others.
pub const DEFAULT_MAX_STEPS_PER_RECONCILE: usize = 16;
/// Longest `run --once` waits for in-flight steps to settle.
pub const DEFAULT_ONCE_DEADLINE: Duration = Duration::from_secs(300);
/// After a fetch request (a webhook), how long the fetch loop waits for more requests
/// before it fetches once: a burst of pushes makes one fetch.
pub const DEFAULT_FETCH_DEBOUNCE: Duration = Duration::from_millis(200);
/// Address of the HTTP server (`/metrics`, `/healthz`, `/readyz`, `/webhook`): none, the
/// server is off unless `--listen` names one (several agents on one machine would fight
/// over a fixed port). `127.0.0.1:9464` is the address the README uses.
pub const DEFAULT_LISTEN: Option<&str> = None;
/// Largest webhook body read; a larger one is refused with 413 before its signature is
/// checked. GitHub caps push payloads at 25 MB but lists at most 20 commits, which fit.
pub const DEFAULT_WEBHOOK_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Header of the generic webhook's signature (and of the signature on notifications sent to
/// a generic webhook sink): `sha256=<hex HMAC-SHA256 of the body>`.
pub const WEBHOOK_SIGNATURE_HEADER: &str = "X-Flink-Gitops-Signature";
/// Notifications waiting per sink; when full, the oldest is dropped (logged and counted).
pub const DEFAULT_NOTIFY_QUEUE: usize = 1000;
/// First retry delay of a notification whose delivery failed (doubles per attempt).
pub const DEFAULT_NOTIFY_RETRY_INITIAL: Duration = Duration::from_secs(1);
/// Longest retry delay of a notification.
pub const DEFAULT_NOTIFY_RETRY_MAX: Duration = Duration::from_secs(60);
/// Attempts at delivering one notification before it is given up (logged and counted):
/// with the delays above, about ten minutes.
pub const DEFAULT_NOTIFY_MAX_ATTEMPTS: u32 = 15;
/// Deadline of one notification request.
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the agent waits on shutdown for queued notifications to be delivered.
pub const DEFAULT_NOTIFY_FLUSH: Duration = Duration::from_secs(10);
/// Folder (below the user's cache) that holds Git mirrors, downloaded jars and local clusters.
pub const DEFAULT_CACHE_SUBDIR: &str = "flink-gitops";
/// Namespace of a manifest that names none.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Schemes a `jarURI` may use. The operator allows only `https` for session jobs by
/// default; the local runtime also needs `file` and `local`, so this agent allows these.
pub const DEFAULT_ALLOWED_ARTIFACT_SCHEMES: &[&str] = &["https", "http", "file", "local"];
/// The Flink Kubernetes Operator release whose validation rules apply when neither the
/// `--operator-version` flag nor the repository's `.flink-gitops.yaml` names one: the newest
/// release flink-gitops knows.
pub const DEFAULT_OPERATOR_VERSION: OperatorVersion = OperatorVersion::NEWEST;
/// The repository's own settings file (`operatorVersion`, `stricterRules`, `helm`), at the
/// root of the repository (read by `repo_settings`, found by `git::repo_settings`). Hidden,
/// so it is never read as a manifest.
pub const REPO_SETTINGS_FILE: &str = ".flink-gitops.yaml";
/// Largest `.flink-gitops.yaml` read: it holds a few keys, and `plan` reads it from pull
/// requests by anyone.
pub const REPO_SETTINGS_MAX_BYTES: usize = 64 * 1024;
/// Schemes the operator allows in a session job's `jarURI` unless its own configuration
/// (`kubernetes.operator.user.artifacts.allowed-schemes`) says otherwise (since 1.15).
pub const OPERATOR_DEFAULT_ARTIFACT_SCHEMES: &[&str] = &["https"];
/// API version of the manifests this agent reads.
pub const API_VERSION: &str = "flink.apache.org/v1beta1";
/// Manifests with this label set to "true" are the operator's canaries: health probes,
/// never deployed.
pub const CANARY_LABEL: &str = "flink.apache.org/canary";

// ---------------------------------------------------------------------------------------
// Drift (live state against Git)
// ---------------------------------------------------------------------------------------

/// Environment variable of `run --drift`: what the agent does about drift of a resource
/// whose manifest names no policy (`report`, `heal` or `ignore`).
pub const ENV_DRIFT_POLICY: &str = "FLINK_GITOPS_DRIFT";
/// Annotation on a manifest's `metadata` naming its drift policy: `report` (record it on
/// the status branch, like Argo CD without selfHeal), `heal` (put it back, like Flux) or
/// `ignore` (do not look). Wins over `--drift`.
pub const ANNOTATION_DRIFT: &str = "flink-gitops.io/drift";
/// Annotation on a manifest's `metadata`: comma-separated spec paths whose live drift is
/// not reported nor healed (Argo CD's `ignoreDifferences`, Flux's `driftIgnoreRules`), e.g.
/// `flinkConfiguration.pipeline.jobvertex-parallelism-overrides, job.parallelism`.
pub const ANNOTATION_DRIFT_IGNORE: &str = "flink-gitops.io/drift-ignore";
/// Annotation on a session cluster's manifest: `cancel` lets a `heal` policy cancel jobs
/// that run on it and that no manifest owns; anything else (the default, `report`) only
/// reports them.
pub const ANNOTATION_DRIFT_UNMANAGED_JOBS: &str = "flink-gitops.io/drift-unmanaged-jobs";

// ---------------------------------------------------------------------------------------
// Rendering (kustomize and Helm)
// ---------------------------------------------------------------------------------------

/// A folder holding one of these is a kustomization, rendered with `kubectl kustomize`
/// (the names kustomize itself looks for).
pub const KUSTOMIZATION_FILES: &[&str] =
    &["kustomization.yaml", "kustomization.yml", "Kustomization"];
/// A folder holding this is a Helm chart, rendered with `helm template`.
pub const HELM_CHART_FILE: &str = "Chart.yaml";
/// kubectl, for `kubectl kustomize`: found on PATH unless a flag or [`ENV_KUBECTL`] names
/// it; else the one scripts/setup.sh installs under the cache ([`RENDER_TOOLS_SUBDIR`]).
pub const DEFAULT_KUBECTL: &str = "kubectl";
/// helm, for `helm template`: found as [`DEFAULT_KUBECTL`] is.
pub const DEFAULT_HELM: &str = "helm";
/// Folder below the cache where scripts/setup.sh puts kubectl and helm.
pub const RENDER_TOOLS_SUBDIR: &str = "render-tools/bin";
/// Longest one render (one folder) may take before it is killed.
pub const DEFAULT_RENDER_TIMEOUT: Duration = Duration::from_secs(60);
/// Most a render may print; a folder whose output is longer is an error.
pub const MAX_RENDERED_BYTES: usize = 64 << 20;
/// Most the files written out for rendering one revision may hold together.
pub const MAX_RENDER_INPUT_BYTES: u64 = 256 << 20;

// ---------------------------------------------------------------------------------------
// Limits of the manifest reader (files come from anyone who can open a pull request)
// ---------------------------------------------------------------------------------------

/// Deepest nesting of mappings and lists a YAML document may have (the document itself is
/// level 1). A real manifest needs about twenty levels. kubectl's YAML parser stops at
/// 10000; this reader stops far earlier because the agent writes each applied spec to its
/// status branch and reads it back with serde_yaml, which refuses more than 128 levels, and
/// because the reader's own tree walks recurse.
pub const MAX_YAML_DEPTH: usize = 100;
/// Most values (scalars, mappings and lists) one YAML document may hold once its aliases are
/// expanded, counting the copy kept for each anchor. Refuses "billion laughs" documents
/// (a kilobyte of nested aliases that would expand to gigabytes) as soon as the count is
/// passed, before anything is copied. The Kubernetes API server takes at most 3 MiB per
/// request, which holds fewer values than this; go-yaml, which kubectl uses, refuses the
/// same documents as "excessive aliasing".
pub const MAX_YAML_NODES: usize = 1_000_000;
/// Most bytes of scalar text one YAML document may hold once its aliases are expanded: an
/// alias to a long text counts its length each time it is used.
pub const MAX_YAML_TEXT_BYTES: usize = 32 * 1024 * 1024;
/// Most tabs-after-a-colon (`image:\tflink`) one file may have. YAML and kubectl accept a
/// tab there; the YAML parser this reader uses does not, so the reader turns each such tab
/// into a space and parses again. Past this count (or once the attempts together have
/// built [`MAX_YAML_NODES`] values or read [`MAX_YAML_TEXT_BYTES`] of text) the file is
/// refused with the parser's error, so no file can make the reader parse it over and over.
pub const MAX_YAML_TAB_REPAIRS: usize = 100;

// ---------------------------------------------------------------------------------------
// Environment variables (every flag also reads one; these are the ones read directly)
// ---------------------------------------------------------------------------------------

/// Token for `https://` Git remotes (sent as the password; the user name is taken from the
/// URL, or `x-access-token`).
pub const ENV_GIT_TOKEN: &str = "FLINK_GITOPS_GIT_TOKEN";
/// Private key file for `ssh://` and scp-style Git remotes (the SSH agent is tried first).
pub const ENV_GIT_SSH_KEY: &str = "FLINK_GITOPS_GIT_SSH_KEY";
/// Root folder for caches and local clusters (default: `$XDG_CACHE_HOME/flink-gitops` or
/// `$HOME/.cache/flink-gitops`).
pub const ENV_CACHE_DIR: &str = "FLINK_GITOPS_CACHE";
/// Log filter, `tracing_subscriber::EnvFilter` syntax (default `info`).
pub const ENV_LOG: &str = "FLINK_GITOPS_LOG";
/// kubectl used to render kustomizations (the `--kubectl` flag).
pub const ENV_KUBECTL: &str = "FLINK_GITOPS_KUBECTL";
/// helm used to render charts (the `--helm` flag).
pub const ENV_HELM: &str = "FLINK_GITOPS_HELM";
/// Deadline of one render (the `--render-timeout` flag).
pub const ENV_RENDER_TIMEOUT: &str = "FLINK_GITOPS_RENDER_TIMEOUT";
/// The operator release whose rules `validate`, `plan` and `run` apply (`--operator-version`);
/// wins over `operatorVersion` in the repository's `.flink-gitops.yaml`.
pub const ENV_OPERATOR_VERSION: &str = "FLINK_GITOPS_OPERATOR_VERSION";
/// Address of the HTTP server (the `--listen` flag).
pub const ENV_LISTEN: &str = "FLINK_GITOPS_LISTEN";
/// The webhook secret itself (the `--webhook-secret` flag; prefer the file).
pub const ENV_WEBHOOK_SECRET: &str = "FLINK_GITOPS_WEBHOOK_SECRET";
/// File holding the webhook secret (the `--webhook-secret-file` flag; trailing newline
/// ignored).
pub const ENV_WEBHOOK_SECRET_FILE: &str = "FLINK_GITOPS_WEBHOOK_SECRET_FILE";
/// The notifications file (the `--notifications` flag).
pub const ENV_NOTIFICATIONS: &str = "FLINK_GITOPS_NOTIFICATIONS";
/// Test hook: the name of a failpoint at which the agent kills itself with SIGKILL
/// (`after-stop-with-savepoint`), to prove a crash loses nothing.
pub const ENV_FAILPOINT: &str = "FLINK_GITOPS_FAILPOINT";

// ---------------------------------------------------------------------------------------
// Leader election (a coordination.k8s.io/v1 Lease; `crate::leader`)
// ---------------------------------------------------------------------------------------

/// `run --leader-elect`: take part in leader election; only the holder of the Lease acts.
pub const ENV_LEADER_ELECT: &str = "FLINK_GITOPS_LEADER_ELECT";
/// `run --leader-election-namespace`: namespace of the Lease (default: [`ENV_POD_NAMESPACE`],
/// else [`SERVICE_ACCOUNT_NAMESPACE_FILE`], else [`DEFAULT_NAMESPACE`]).
pub const ENV_LEADER_ELECTION_NAMESPACE: &str = "FLINK_GITOPS_LEADER_ELECTION_NAMESPACE";
/// `run --leader-election-id`: name of the Lease.
pub const ENV_LEADER_ELECTION_ID: &str = "FLINK_GITOPS_LEADER_ELECTION_ID";
/// `run --leader-election-lease-duration`.
pub const ENV_LEADER_ELECTION_LEASE_DURATION: &str = "FLINK_GITOPS_LEADER_ELECTION_LEASE_DURATION";
/// `run --leader-election-renew-deadline`.
pub const ENV_LEADER_ELECTION_RENEW_DEADLINE: &str = "FLINK_GITOPS_LEADER_ELECTION_RENEW_DEADLINE";
/// `run --leader-election-retry-period`.
pub const ENV_LEADER_ELECTION_RETRY_PERIOD: &str = "FLINK_GITOPS_LEADER_ELECTION_RETRY_PERIOD";
/// Name of the Lease when `--leader-election-id` gives none.
pub const DEFAULT_LEADER_ELECTION_ID: &str = "flink-gitops-leader";
/// How long a Lease whose holder stopped renewing stays held: followers wait this long
/// (Flux's default; controller-runtime's own is 15 s).
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(35);
/// How long after its last successful renewal was sent a leader keeps acting; shorter than
/// [`DEFAULT_LEASE_DURATION`], so it stops before anyone else may take over (Flux: 30 s).
pub const DEFAULT_LEASE_RENEW_DEADLINE: Duration = Duration::from_secs(30);
/// Time between two attempts to take or renew the Lease (Flux: 5 s).
pub const DEFAULT_LEASE_RETRY_PERIOD: Duration = Duration::from_secs(5);
/// Trailer of every status commit naming the agent that wrote it (its leader election
/// identity), e.g. `Agent: flink-gitops-7d9f-abcde_1a2b3c4d`; `status` shows the newest.
pub const STATUS_AGENT_TRAILER: &str = "Agent";
/// The pod's name (set from the downward API): the elector's identity, before a random
/// suffix. Without it, the host name.
pub const ENV_POD_NAME: &str = "POD_NAME";
/// The pod's namespace (downward API): the Lease's namespace unless one is given.
pub const ENV_POD_NAMESPACE: &str = "POD_NAMESPACE";
/// The service account's namespace, mounted into every pod that has a token.
pub const SERVICE_ACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

// ---------------------------------------------------------------------------------------
// Flink and operator options
// ---------------------------------------------------------------------------------------

/// What a Flink option's value must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A Flink duration: `10 s`, `5min`, `1h`, `500ms`, or a bare number of milliseconds.
    Duration,
    /// A Flink duration or a Quartz cron expression (6 or 7 fields).
    DurationOrCron,
    /// A Flink memory size: `1g`, `2048m`, `64 mb`, or bytes.
    MemorySize,
    /// A whole number no smaller than the bound.
    Int {
        min: i64,
    },
    Bool,
    /// One of the listed words (compared ignoring case, as Flink does for enums).
    Enum(&'static [&'static str]),
    /// A URI with a scheme (`file:///...`, `s3://...`).
    Uri,
}

/// One Flink (or operator) configuration option.
#[derive(Debug, Clone, Copy)]
pub struct FlinkOption {
    /// The name Flink 2.x reads.
    pub key: &'static str,
    /// Older names that mean the same (Flink 1.x names, deprecated fallbacks in 2.x).
    pub legacy: &'static [&'static str],
    pub kind: ValueKind,
    pub doc: &'static str,
}

impl FlinkOption {
    /// Every name this option may be written under, newest first.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once(self.key).chain(self.legacy.iter().copied())
    }
}

macro_rules! option {
    ($name:ident, $key:expr, [$($legacy:expr),*], $kind:expr, $doc:expr) => {
        #[doc = $doc]
        pub const $name: FlinkOption = FlinkOption { key: $key, legacy: &[$($legacy),*], kind: $kind, doc: $doc };
    };
}

option!(
    CHECKPOINTS_DIR,
    "execution.checkpointing.dir",
    ["state.checkpoints.dir", "state.backend.fs.checkpointdir"],
    ValueKind::Uri,
    "Where checkpoints are written; required for savepoint and last-state upgrades."
);
option!(
    SAVEPOINTS_DIR,
    "execution.checkpointing.savepoint-dir",
    ["state.savepoints.dir", "savepoints.state.backend.fs.dir"],
    ValueKind::Uri,
    "Default savepoint target; required for savepoint upgrades and savepoint triggers."
);
option!(
    CHECKPOINT_INTERVAL,
    "execution.checkpointing.interval",
    [],
    ValueKind::Duration,
    "Checkpoint interval; last-state upgrades restore from the newest checkpoint."
);
option!(
    CHECKPOINT_TIMEOUT,
    "execution.checkpointing.timeout",
    [],
    ValueKind::Duration,
    "Timeout of one checkpoint or savepoint; also the stop-with-savepoint deadline."
);
option!(
    CHECKPOINT_MIN_PAUSE,
    "execution.checkpointing.min-pause",
    [],
    ValueKind::Duration,
    "Minimal pause between checkpoints."
);
option!(
    CHECKPOINT_RETENTION,
    "execution.checkpointing.externalized-checkpoint-retention",
    [],
    ValueKind::Enum(&[
        "NO_EXTERNALIZED_CHECKPOINTS",
        "RETAIN_ON_CANCELLATION",
        "DELETE_ON_CANCELLATION"
    ]),
    "Whether checkpoints survive a cancel; the agent defaults to RETAIN_ON_CANCELLATION."
);
option!(
    CHECKPOINTS_RETAINED,
    "execution.checkpointing.num-retained",
    ["state.checkpoints.num-retained"],
    ValueKind::Int { min: 1 },
    "How many completed checkpoints are kept."
);
option!(
    RESTORE_PATH,
    "execution.state-recovery.path",
    ["execution.savepoint.path"],
    ValueKind::Uri,
    "Savepoint or checkpoint a job starts from."
);
option!(
    IGNORE_UNCLAIMED_STATE,
    "execution.state-recovery.ignore-unclaimed-state",
    ["execution.savepoint.ignore-unclaimed-state"],
    ValueKind::Bool,
    "allowNonRestoredState: drop state no operator claims."
);
option!(
    TASK_SLOTS,
    "taskmanager.numberOfTaskSlots",
    [],
    ValueKind::Int { min: 1 },
    "Slots per TaskManager; TaskManager count = ceil(parallelism / slots)."
);
option!(
    PARALLELISM_DEFAULT,
    "parallelism.default",
    [],
    ValueKind::Int { min: 1 },
    "Default parallelism of jobs without one."
);
option!(
    MAX_PARALLELISM,
    "pipeline.max-parallelism",
    [],
    ValueKind::Int { min: 1 },
    "Upper bound of rescaling; fixed for a job's state."
);
option!(
    JM_PROCESS_MEMORY,
    "jobmanager.memory.process.size",
    [],
    ValueKind::MemorySize,
    "JobManager process memory (spec.jobManager.resource.memory writes it)."
);
option!(
    TM_PROCESS_MEMORY,
    "taskmanager.memory.process.size",
    [],
    ValueKind::MemorySize,
    "TaskManager process memory (spec.taskManager.resource.memory writes it)."
);
option!(
    JM_FLINK_MEMORY,
    "jobmanager.memory.flink.size",
    [],
    ValueKind::MemorySize,
    "JobManager total Flink memory."
);
option!(
    TM_FLINK_MEMORY,
    "taskmanager.memory.flink.size",
    [],
    ValueKind::MemorySize,
    "TaskManager total Flink memory."
);
option!(
    TM_MANAGED_MEMORY,
    "taskmanager.memory.managed.size",
    [],
    ValueKind::MemorySize,
    "TaskManager managed memory."
);
option!(
    TM_TASK_HEAP,
    "taskmanager.memory.task.heap.size",
    [],
    ValueKind::MemorySize,
    "TaskManager task heap."
);
option!(
    JM_HEAP,
    "jobmanager.memory.heap.size",
    [],
    ValueKind::MemorySize,
    "JobManager heap."
);
option!(
    JM_LEGACY_HEAP,
    "jobmanager.heap.size",
    ["jobmanager.heap.mb"],
    ValueKind::MemorySize,
    "Flink 1.x's old JobManager heap option; the operator (built with Flink 1.19 / 1.20) reads it as the JobManager heap."
);
option!(
    JVM_METASPACE_TM,
    "taskmanager.memory.jvm-metaspace.size",
    [],
    ValueKind::MemorySize,
    "TaskManager metaspace."
);
option!(
    HEARTBEAT_TIMEOUT,
    "heartbeat.timeout",
    [],
    ValueKind::Duration,
    "Time after which a silent TaskManager or JobManager is considered lost."
);
option!(
    SCHEDULER,
    "jobmanager.scheduler",
    [],
    ValueKind::Enum(&["default", "adaptive", "adaptivebatch"]),
    "The adaptive scheduler enables in-place rescaling."
);
option!(
    SCHEDULER_MODE,
    "scheduler-mode",
    [],
    ValueKind::Enum(&["reactive"]),
    "Reactive mode (standalone): the job scales with the TaskManagers."
);
option!(
    HA_TYPE,
    "high-availability.type",
    ["high-availability", "recovery.mode"],
    ValueKind::Enum(&[]),
    "High-availability services (kubernetes, zookeeper, or a factory class)."
);
option!(
    HA_STORAGE_DIR,
    "high-availability.storageDir",
    ["high-availability.storage-dir"],
    ValueKind::Uri,
    "Where HA metadata is stored."
);
option!(
    RESTART_STRATEGY,
    "restart-strategy.type",
    ["restart-strategy"],
    ValueKind::Enum(&[]),
    "Restart strategy of a failing job."
);
option!(
    FORBIDDEN_NAMESPACE,
    "kubernetes.namespace",
    [],
    ValueKind::Enum(&[]),
    "Set by the agent from metadata.namespace; may not be set in a manifest."
);
option!(
    FORBIDDEN_CLUSTER_ID,
    "kubernetes.cluster-id",
    [],
    ValueKind::Enum(&[]),
    "Set by the agent from metadata.name; may not be set in a manifest."
);
option!(
    FORBIDDEN_HA_CLUSTER_ID,
    "high-availability.cluster-id",
    [],
    ValueKind::Enum(&[]),
    "Set by the agent from metadata.name; may not be set in a manifest."
);
option!(
    FIXED_JOB_ID,
    "$internal.pipeline.job-id",
    [],
    ValueKind::Enum(&[]),
    "A fixed job id; the agent sets one per deployment attempt unless the manifest does."
);

// Operator options (kubernetes.operator.*): never handed to Flink, read by the agent.
option!(OP_SAVEPOINT_ON_DELETION, "kubernetes.operator.job.savepoint-on-deletion", [], ValueKind::Bool,
    "Take a final savepoint when a resource is removed from Git. Default here: true (the operator's is false): deleting a manifest must not silently lose state.");
option!(
    OP_DRAIN_ON_SAVEPOINT_DELETION,
    "kubernetes.operator.job.drain-on-savepoint-deletion",
    [],
    ValueKind::Bool,
    "Drain the job when stopping it with a savepoint for deletion."
);
option!(
    OP_PERIODIC_SAVEPOINT,
    "kubernetes.operator.periodic.savepoint.interval",
    [],
    ValueKind::DurationOrCron,
    "Periodic savepoints: a Flink duration (`6h`) or a Quartz cron expression (`0 0 */6 * * ?`, UTC); requires a savepoint directory."
);
option!(
    OP_PERIODIC_CHECKPOINT,
    "kubernetes.operator.periodic.checkpoint.interval",
    [],
    ValueKind::DurationOrCron,
    "Periodic checkpoints: a Flink duration or a Quartz cron expression (UTC)."
);
option!(
    OP_ROLLBACK_ENABLED,
    "kubernetes.operator.deployment.rollback.enabled",
    [],
    ValueKind::Bool,
    "Roll back an upgrade that does not become stable within the readiness timeout."
);
option!(
    OP_READINESS_TIMEOUT,
    "kubernetes.operator.deployment.readiness.timeout",
    [],
    ValueKind::Duration,
    "How long an upgrade may take to become stable before it is rolled back (default 5 min)."
);
option!(
    OP_LAST_STATE_FALLBACK,
    "kubernetes.operator.job.upgrade.last-state-fallback.enabled",
    [],
    ValueKind::Bool,
    "Savepoint upgrade of a job that is not running falls back to last-state (default true)."
);
option!(
    OP_SAVEPOINT_FORMAT,
    "kubernetes.operator.savepoint.format.type",
    [],
    ValueKind::Enum(&["CANONICAL", "NATIVE"]),
    "Format of savepoints the agent takes."
);
option!(
    OP_CHECKPOINT_TYPE,
    "kubernetes.operator.checkpoint.type",
    [],
    ValueKind::Enum(&["FULL", "INCREMENTAL"]),
    "Type of checkpoints the agent triggers."
);
option!(
    OP_RESTART_FAILED,
    "kubernetes.operator.job.restart.failed",
    [],
    ValueKind::Bool,
    "Restart a FAILED job from its latest state."
);
option!(
    OP_SAVEPOINT_HISTORY_COUNT,
    "kubernetes.operator.savepoint.history.max.count",
    [],
    ValueKind::Int { min: 1 },
    "Savepoints the agent took on a schedule or for an upgrade kept in the history (default 10); older ones are disposed."
);
option!(
    OP_SAVEPOINT_HISTORY_AGE,
    "kubernetes.operator.savepoint.history.max.age",
    [],
    ValueKind::Duration,
    "Age after which savepoints the agent took on a schedule or for an upgrade are disposed (default 24 h)."
);
option!(
    OP_SAVEPOINT_CLEANUP,
    "kubernetes.operator.savepoint.cleanup.enabled",
    [],
    ValueKind::Bool,
    "Dispose savepoints that leave the bounded history (default true); false keeps every one."
);
option!(
    OP_MAX_CHECKPOINT_AGE,
    "kubernetes.operator.job.upgrade.last-state.max.allowed.checkpoint.age",
    [],
    ValueKind::Duration,
    "A last-state upgrade whose newest checkpoint is older takes a savepoint instead."
);
option!(
    OP_INPLACE_SCALING,
    "kubernetes.operator.job.upgrade.inplace-scaling.enabled",
    [],
    ValueKind::Bool,
    "Apply parallelism overrides without a restart when the adaptive scheduler runs."
);
option!(
    OP_HEALTH_CHECK,
    "kubernetes.operator.cluster.health-check.enabled",
    [],
    ValueKind::Bool,
    "Restart unhealthy jobs; needs jm-deployment-recovery."
);
option!(
    STABILITY_WINDOW,
    "flink-gitops.deployment.stability.window",
    [],
    ValueKind::Duration,
    "flink-gitops' own: how long a new deployment's job must run with all tasks (and, with checkpointing on, complete a checkpoint) before it is STABLE; default the agent's --stability-window (1 min)."
);
option!(
    OP_HEALTH_RESTARTS_WINDOW,
    "kubernetes.operator.cluster.health-check.restarts.window",
    [],
    ValueKind::Duration,
    "Window over which job restarts are counted by the health check (default 2 min)."
);
option!(
    OP_HEALTH_RESTARTS_THRESHOLD,
    "kubernetes.operator.cluster.health-check.restarts.threshold",
    [],
    ValueKind::Int { min: 0 },
    "Restarts per window above which a job is unhealthy (default 64)."
);
option!(
    OP_HEALTH_CHECKPOINT_PROGRESS,
    "kubernetes.operator.cluster.health-check.checkpoint-progress.enabled",
    [],
    ValueKind::Bool,
    "Whether a job without a completed checkpoint over the window is unhealthy (default true)."
);
option!(
    OP_HEALTH_CHECKPOINT_WINDOW,
    "kubernetes.operator.cluster.health-check.checkpoint-progress.window",
    [],
    ValueKind::Duration,
    "Window without a completed checkpoint that makes a job unhealthy (default max(interval, timeout) x (tolerable failures + 2))."
);
option!(
    CHECKPOINT_TOLERABLE_FAILURES,
    "execution.checkpointing.tolerable-failed-checkpoints",
    [],
    ValueKind::Int { min: 0 },
    "Checkpoint failures tolerated before the job fails over."
);
option!(
    OP_JM_RECOVERY,
    "kubernetes.operator.jm-deployment-recovery.enabled",
    ["kubernetes.operator.reconciler.jm-deployment-recovery.enabled"],
    ValueKind::Bool,
    "Recover a missing JobManager."
);

// Autoscaler options the operator's validator checks (AutoscalerValidator; before 1.14 in
// DefaultValidator), only when the autoscaler is enabled. The legacy names are the ones the
// operator still reads (AutoScalerOptions' deprecated and fallback keys).
option!(
    AUTOSCALER_ENABLED,
    "job.autoscaler.enabled",
    ["kubernetes.operator.job.autoscaler.enabled"],
    ValueKind::Bool,
    "Enables the autoscaler; its options are only checked when it is on."
);
option!(
    AUTOSCALER_SCALE_DOWN_MAX_FACTOR,
    "job.autoscaler.scale-down.max-factor",
    ["kubernetes.operator.job.autoscaler.scale-down.max-factor"],
    ValueKind::Enum(&[]),
    "Largest scale-down step, as a factor; 0 or more."
);
option!(
    AUTOSCALER_SCALE_UP_MAX_FACTOR,
    "job.autoscaler.scale-up.max-factor",
    ["kubernetes.operator.job.autoscaler.scale-up.max-factor"],
    ValueKind::Enum(&[]),
    "Largest scale-up step, as a factor; 0 or more."
);
option!(
    AUTOSCALER_UTILIZATION_TARGET,
    "job.autoscaler.utilization.target",
    [
        "job.autoscaler.target.utilization",
        "kubernetes.operator.job.autoscaler.utilization.target",
        "kubernetes.operator.job.autoscaler.target.utilization"
    ],
    ValueKind::Enum(&[]),
    "Target utilization (default 0.7); operator 1.10 reads only the target.utilization names."
);
option!(
    AUTOSCALER_TARGET_UTILIZATION_BOUNDARY,
    "job.autoscaler.target.utilization.boundary",
    ["kubernetes.operator.job.autoscaler.target.utilization.boundary"],
    ValueKind::Enum(&[]),
    "Allowed distance from the target utilization; 0 or more."
);
option!(
    AUTOSCALER_UTILIZATION_MAX,
    "job.autoscaler.utilization.max",
    ["kubernetes.operator.job.autoscaler.utilization.max"],
    ValueKind::Enum(&[]),
    "Upper utilization bound, between the target and 1 (since operator 1.11)."
);
option!(
    AUTOSCALER_UTILIZATION_MIN,
    "job.autoscaler.utilization.min",
    ["kubernetes.operator.job.autoscaler.utilization.min"],
    ValueKind::Enum(&[]),
    "Lower utilization bound, between 0 and the target (since operator 1.11)."
);
option!(
    AUTOSCALER_SCALABILITY_COEFFICIENT_MIN,
    "job.autoscaler.observed-scalability.coefficient-min",
    ["kubernetes.operator.job.autoscaler.observed-scalability.coefficient-min"],
    ValueKind::Enum(&[]),
    "Smallest observed scalability coefficient, between 0.01 and 1 (since operator 1.12)."
);
option!(
    AUTOSCALER_EXCLUDED_PERIODS,
    "job.autoscaler.excluded.periods",
    ["kubernetes.operator.job.autoscaler.excluded.periods"],
    ValueKind::Enum(&[]),
    "Periods without scaling, ';'-separated: a daily range (09:00-17:00), a Quartz cron expression, or one of each joined by &&."
);
/// The autoscaler's default target utilization (AutoScalerOptions.UTILIZATION_TARGET).
pub const DEFAULT_AUTOSCALER_UTILIZATION_TARGET: f64 = 0.7;

/// Options whose values are type-checked when they appear in a manifest.
pub const CHECKED_OPTIONS: &[FlinkOption] = &[
    CHECKPOINTS_DIR,
    SAVEPOINTS_DIR,
    CHECKPOINT_INTERVAL,
    CHECKPOINT_TIMEOUT,
    CHECKPOINT_MIN_PAUSE,
    CHECKPOINT_RETENTION,
    CHECKPOINTS_RETAINED,
    RESTORE_PATH,
    IGNORE_UNCLAIMED_STATE,
    TASK_SLOTS,
    PARALLELISM_DEFAULT,
    MAX_PARALLELISM,
    JM_PROCESS_MEMORY,
    TM_PROCESS_MEMORY,
    JM_FLINK_MEMORY,
    TM_FLINK_MEMORY,
    TM_MANAGED_MEMORY,
    TM_TASK_HEAP,
    JM_HEAP,
    JVM_METASPACE_TM,
    HEARTBEAT_TIMEOUT,
    SCHEDULER,
    SCHEDULER_MODE,
    HA_STORAGE_DIR,
    OP_SAVEPOINT_ON_DELETION,
    OP_DRAIN_ON_SAVEPOINT_DELETION,
    OP_PERIODIC_SAVEPOINT,
    OP_PERIODIC_CHECKPOINT,
    OP_ROLLBACK_ENABLED,
    OP_READINESS_TIMEOUT,
    OP_LAST_STATE_FALLBACK,
    OP_SAVEPOINT_FORMAT,
    OP_CHECKPOINT_TYPE,
    OP_RESTART_FAILED,
    OP_SAVEPOINT_HISTORY_COUNT,
    OP_SAVEPOINT_HISTORY_AGE,
    OP_SAVEPOINT_CLEANUP,
    OP_MAX_CHECKPOINT_AGE,
    OP_INPLACE_SCALING,
    OP_HEALTH_CHECK,
    OP_HEALTH_RESTARTS_WINDOW,
    OP_HEALTH_RESTARTS_THRESHOLD,
    OP_HEALTH_CHECKPOINT_PROGRESS,
    OP_HEALTH_CHECKPOINT_WINDOW,
    CHECKPOINT_TOLERABLE_FAILURES,
    OP_JM_RECOVERY,
    STABILITY_WINDOW,
];

/// Keys a manifest may not set: the agent derives them from metadata.
pub const FORBIDDEN_OPTIONS: &[FlinkOption] = &[
    FORBIDDEN_NAMESPACE,
    FORBIDDEN_CLUSTER_ID,
    FORBIDDEN_HA_CLUSTER_ID,
];

/// Prefix of operator options: never handed to Flink, and changing them restarts nothing.
pub const OPERATOR_PREFIX: &str = "kubernetes.operator.";
/// Prefix of flink-gitops' own options in `flinkConfiguration`: like the operator's, never
/// handed to Flink, and changing them restarts nothing.
pub const AGENT_PREFIX: &str = "flink-gitops.";

/// Whether a `flinkConfiguration` key is for the agent or the operator, not for Flink
/// (operator, autoscaler and flink-gitops options).
pub fn is_control_key(key: &str) -> bool {
    key.starts_with(OPERATOR_PREFIX)
        || key.starts_with(AUTOSCALER_PREFIX)
        || key.starts_with(AGENT_PREFIX)
}
/// Prefix of autoscaler options: changing them restarts nothing.
pub const AUTOSCALER_PREFIX: &str = "job.autoscaler.";
option!(
    PARALLELISM_OVERRIDES,
    "pipeline.jobvertex-parallelism-overrides",
    [],
    ValueKind::Enum(&[]),
    "Per-vertex parallelism, `<vertex id>:<parallelism>,...`; rescaled in place under the adaptive scheduler."
);

// ---------------------------------------------------------------------------------------
// Kubernetes runtime: names on the objects the agent renders and applies.

/// Field manager of every server-side apply the agent makes.
pub const KUBE_FIELD_MANAGER: &str = "flink-gitops";
/// Label naming the FlinkDeployment an object belongs to.
pub const KUBE_LABEL_NAME: &str = "app.kubernetes.io/name";
/// Label naming the object's part of the cluster (`jobmanager`, `taskmanager`, `config`).
pub const KUBE_LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// Label saying who manages the object; its value is [`KUBE_FIELD_MANAGER`].
pub const KUBE_LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Annotation with the spec hash the object was rendered from.
pub const KUBE_ANNOTATION_SPEC_HASH: &str = "flink-gitops.io/spec-hash";
/// Annotation with the Git revision the object was rendered from.
pub const KUBE_ANNOTATION_REVISION: &str = "flink-gitops.io/revision";
/// Annotation with the deployment attempt ([`crate::apply::runtime::ClusterRequest::generation`]).
pub const KUBE_ANNOTATION_GENERATION: &str = "flink-gitops.io/generation";
/// Operator option: merge pod template arrays by element name rather than by index.
pub const OP_POD_TEMPLATE_MERGE_BY_NAME: &str =
    "kubernetes.operator.pod-template.merge-arrays-by-name";
/// Operator option: give the JobManager a startup probe on REST `/config` (default true).
pub const OP_JM_STARTUP_PROBE: &str = "kubernetes.operator.jm-deployment.startup.probe.enabled";

/// Defaults of operator options where this agent's default matters to a decision.
pub const DEFAULT_SAVEPOINT_ON_DELETION: bool = true;
pub const DEFAULT_LAST_STATE_FALLBACK: bool = true;
pub const DEFAULT_ROLLBACK_ENABLED: bool = false;
pub const DEFAULT_RESTART_FAILED: bool = false;
/// `…cluster.health-check.restarts.window` and `.threshold` (operator defaults).
pub const DEFAULT_HEALTH_RESTARTS_WINDOW: Duration = Duration::from_secs(120);
pub const DEFAULT_HEALTH_RESTARTS_THRESHOLD: u64 = 64;
/// Flink's `execution.checkpointing.timeout` default.
pub const DEFAULT_CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(600);
pub const DEFAULT_JM_RECOVERY: bool = true;
/// The agent's default stability window (`--stability-window`): the operator has none
/// (a job seen RUNNING once is stable); a release that crashes within it is rolled back.
pub const DEFAULT_STABILITY_WINDOW: Duration = Duration::from_secs(60);
pub const DEFAULT_READINESS_TIMEOUT: Duration = Duration::from_secs(300);
/// `kubernetes.operator.savepoint.history.max.count`: the operator's default (at least 1).
pub const DEFAULT_SAVEPOINT_HISTORY_COUNT: usize = 10;
/// `kubernetes.operator.savepoint.history.max.age`: the operator's default.
pub const DEFAULT_SAVEPOINT_HISTORY_AGE: Duration = Duration::from_secs(24 * 3600);
/// `kubernetes.operator.savepoint.cleanup.enabled`: the operator's default.
pub const DEFAULT_SAVEPOINT_CLEANUP: bool = true;
/// First wait before a failed savepoint or checkpoint trigger (periodic or manual) is tried
/// again; doubles per failure up to [`DEFAULT_SNAPSHOT_RETRY_MAX`] (the operator's
/// FlinkStateSnapshot backoff starts at the same 10 s).
pub const DEFAULT_SNAPSHOT_RETRY_BASE: Duration = Duration::from_secs(10);
/// Longest wait between two tries of a failing snapshot trigger.
pub const DEFAULT_SNAPSHOT_RETRY_MAX: Duration = Duration::from_secs(600);
/// Tries of a manual (nonce) snapshot before it is given up and reported (the operator
/// retries within a grace period, then marks the nonce done); periodic ones are tried
/// until one succeeds.
pub const DEFAULT_MANUAL_SNAPSHOT_ATTEMPTS: u32 = 3;
/// First wait before a failed savepoint disposal is tried again (doubles per failure up to
/// [`DEFAULT_SNAPSHOT_RETRY_MAX`]).
pub const DEFAULT_DISPOSAL_RETRY_BASE: Duration = Duration::from_secs(10);
pub const DEFAULT_INPLACE_SCALING: bool = true;

/// Looks an option up in a flat configuration under any of its names; returns the name it
/// was found under and the value.
pub fn lookup<'a>(
    config: &'a std::collections::BTreeMap<String, String>,
    option: &FlinkOption,
) -> Option<(&'a str, &'a str)> {
    option.names().find_map(|name| {
        config
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v.as_str()))
    })
}

/// The name Flink 2.x reads for a key written under an older name (the options this crate
/// knows); any other key as it is. The local runtime writes keys under this name, and drift
/// detection looks live configuration up under it.
pub fn canonical_key(key: &str) -> &str {
    CHECKED_OPTIONS
        .iter()
        .chain([&HA_TYPE, &RESTART_STRATEGY])
        .find(|opt| opt.legacy.contains(&key))
        .map(|opt| opt.key)
        .unwrap_or(key)
}

/// Reads a boolean option, with the given default when absent or unreadable.
pub fn lookup_bool(
    config: &std::collections::BTreeMap<String, String>,
    option: &FlinkOption,
    default: bool,
) -> bool {
    match lookup(config, option) {
        Some((_, v)) if v.eq_ignore_ascii_case("true") => true,
        Some((_, v)) if v.eq_ignore_ascii_case("false") => false,
        _ => default,
    }
}

/// The name of an option that a given Flink major version reads: Flink 2.x reads the new
/// names; 1.x reads the first legacy name where there is one.
pub fn key_for(option: &FlinkOption, flink_2x: bool) -> &'static str {
    if flink_2x {
        option.key
    } else {
        option.legacy.first().copied().unwrap_or(option.key)
    }
}
