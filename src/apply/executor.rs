//! The agent loop: fetch, observe, decide, act, record.
//!
//! Each cycle reads the manifests at the branch tip (one fetch), then reconciles every
//! resource: FlinkDeployments first, then FlinkSessionJobs (they need their session
//! clusters), each wave concurrently up to a bound. A resource's steps are serial: observe
//! (cluster, job, pending trigger, newest checkpoint), [`decide`], act, record. While a step
//! is in flight the loop polls Flink quickly; when nothing is, the resource is done for
//! this cycle.
//!
//! *Guarantees*: a fact a later step depends on (a job id before a submit, a savepoint
//! location before a restore, a trigger id before a stop) is on the status branch before
//! that step runs. Records are written only when a fact changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, Semaphore};

use super::runtime::{ApplicationJob, ClusterRequest, Runtime};
use crate::config;
use crate::flink::lifecycle::decide::{
    decide, nonce_key, stop_mode, ClusterState, Context, Desired, Observed, ObservedJob, Step,
    TriggerResult,
};
use crate::flink::lifecycle::record::{
    reason, InFlight, LastError, LifecycleState, Record, RollbackState, Savepoint, SnapshotTrigger,
    StopMode, StopPurpose,
};
use crate::flink::rest::{
    CheckpointStatus, CheckpointType, ClaimMode, FlinkRestClient, JarId, JarRunRequest, JobId,
    JobStatus, RestError, SavepointFormat, SavepointStatus, TriggerId,
};
use crate::flink::spec::{validate, Kind, Manifest, ManifestSet, ResourceKey, Spec, UpgradeMode};
use crate::git::source::{run_blocking, GitError, GitSource, Revision};
use crate::git::status::StatusBranch;

/// Settings of the agent loop.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub branch: String,
    pub path: Option<String>,
    pub interval: Duration,
    pub fast_poll: Duration,
    pub prune: bool,
    pub max_concurrent: usize,
    pub rest_timeout: Duration,
    pub git_timeout: Duration,
    /// Longest a resource's in-flight step is waited on within one cycle.
    pub step_deadline: Duration,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            branch: config::DEFAULT_BRANCH.to_string(),
            path: None,
            interval: config::DEFAULT_SYNC_INTERVAL,
            fast_poll: config::DEFAULT_FAST_POLL,
            prune: true,
            max_concurrent: config::DEFAULT_MAX_CONCURRENT_RESOURCES,
            rest_timeout: config::DEFAULT_REST_TIMEOUT,
            git_timeout: config::DEFAULT_GIT_TIMEOUT,
            step_deadline: Duration::from_secs(300),
        }
    }
}

/// Errors that end a cycle early.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("git: {0}")]
    Git(#[from] GitError),
}

/// What one cycle did.
#[derive(Debug, Clone, Default)]
pub struct CycleReport {
    pub revision: String,
    /// Resources and the lifecycle state they ended the cycle in.
    pub states: BTreeMap<String, LifecycleState>,
    /// Resources removed from Git but left running (`--no-prune`).
    pub unmanaged: Vec<String>,
    /// Validation errors at the revision.
    pub invalid: Vec<String>,
    /// Resources whose reconcile hit an error this cycle.
    pub errors: Vec<String>,
}

/// The agent: one per repository.
pub struct Agent<R: Runtime> {
    runtime: Arc<R>,
    source: GitSource,
    status: StatusBranch,
    settings: AgentSettings,
    records: Mutex<BTreeMap<ResourceKey, Record>>,
    /// Records changed in memory but not yet on the branch (flushed before any external step).
    dirty: Mutex<BTreeMap<ResourceKey, String>>,
    write_lock: Mutex<()>,
    /// Jar ids uploaded per (session cluster REST URL, jar path).
    uploaded: Mutex<BTreeMap<(String, String), String>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// A fresh 32-hex job id for a deployment attempt.
fn new_job_id(key: &ResourceKey, generation: u64) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!("{key}|{generation}|{nanos}|{}", std::process::id());
    hex::encode(Sha256::digest(seed.as_bytes()))[..32].to_string()
}

/// A fresh trigger id (Flink accepts one chosen by the client, which makes a stop idempotent).
fn new_trigger_id(job_id: &str) -> String {
    new_job_id(
        &ResourceKey::new("trigger", Kind::FlinkSessionJob, job_id),
        now_ms(),
    )
}

impl<R: Runtime> Agent<R> {
    /// Creates the agent and reads every record from the status branch.
    pub async fn start(
        runtime: Arc<R>,
        source: GitSource,
        status_branch: &str,
        settings: AgentSettings,
    ) -> Result<Arc<Self>, AgentError> {
        let status = StatusBranch::new(source.clone(), status_branch);
        let loader = status.clone();
        let records =
            run_blocking(settings.git_timeout, "status branch", move || loader.load()).await?;
        tracing::info!(
            records = records.len(),
            branch = status_branch,
            "read status"
        );
        Ok(Arc::new(Agent {
            runtime,
            source,
            status,
            settings,
            records: Mutex::new(records),
            dirty: Mutex::new(BTreeMap::new()),
            write_lock: Mutex::new(()),
            uploaded: Mutex::new(BTreeMap::new()),
        }))
    }

    pub fn runtime(&self) -> &Arc<R> {
        &self.runtime
    }

    /// A copy of the current records.
    pub async fn records(&self) -> BTreeMap<ResourceKey, Record> {
        self.records.lock().await.clone()
    }

    /// Runs cycles until `shutdown` turns true (or once).
    pub async fn run(
        self: Arc<Self>,
        once: bool,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            match self.clone().cycle().await {
                Ok(report) => {
                    tracing::info!(revision = %report.revision, resources = report.states.len(), invalid = report.invalid.len(), "cycle done")
                }
                Err(e) => tracing::warn!(error = %e, "cycle failed; retrying next interval"),
            }
            if once || *shutdown.borrow() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Fetches and reads the manifests at the branch tip.
    async fn read_desired(&self) -> Result<(Revision, ManifestSet), AgentError> {
        let source = self.source.clone();
        let branch = self.settings.branch.clone();
        let path = self.settings.path.clone();
        let timeout = self.settings.git_timeout;
        let (revision, mut set) = run_blocking(timeout, "fetch", move || {
            let spec = format!("+refs/heads/{branch}:refs/heads/{branch}");
            source.fetch_refspecs(&[spec])?;
            let repo = source.open()?;
            let revision = source.resolve(&repo, &branch)?;
            let set = source.load(&repo, &revision, path.as_deref())?;
            Ok((revision, set))
        })
        .await?;
        let mut options = validate::Options::default();
        // The runtime gives every resource checkpoint and savepoint folders.
        let placeholder = ResourceKey::new("default", Kind::FlinkDeployment, "x");
        options.default_configuration = self.runtime.default_configuration(&placeholder);
        set.validate(&options);
        Ok((revision, set))
    }

    /// One pass over every resource.
    pub async fn cycle(self: Arc<Self>) -> Result<CycleReport, AgentError> {
        let (revision, set) = self.read_desired().await?;
        let mut report = CycleReport {
            revision: revision.to_string(),
            ..Default::default()
        };
        for d in set.errors() {
            report.invalid.push(d.to_string());
        }
        let invalid_keys = set.invalid_keys();
        let set = Arc::new(set);
        let revision = Arc::new(revision);
        let known: BTreeSet<ResourceKey> = {
            let records = self.records.lock().await;
            records
                .keys()
                .cloned()
                .chain(set.manifests.iter().map(|m| m.key.clone()))
                .collect()
        };
        for kind in [Kind::FlinkDeployment, Kind::FlinkSessionJob] {
            let semaphore = Arc::new(Semaphore::new(self.settings.max_concurrent.max(1)));
            let mut tasks = tokio::task::JoinSet::new();
            for key in known.iter().filter(|k| k.kind == kind).cloned() {
                // Git no longer shows a resource the agent knows while some file could not
                // be read: it may be in that file. Hold it as it is; never remove it.
                let held = set.get(&key).is_none() && !set.unreadable_files.is_empty();
                if held {
                    continue;
                }
                let agent = self.clone();
                let set = set.clone();
                let revision = revision.clone();
                let invalid = invalid_keys.contains(&key.to_string());
                let permit = semaphore.clone();
                tasks.spawn(async move {
                    let _permit = permit.acquire_owned().await;
                    let result = agent.reconcile(&key, &set, &revision, invalid).await;
                    (key, result)
                });
            }
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok((key, Err(e))) => {
                        tracing::warn!(resource = %key, error = %e, "reconcile failed");
                        report.errors.push(format!("{key}: {e}"));
                    }
                    Ok((key, Ok(Some(unmanaged)))) if unmanaged => {
                        report.unmanaged.push(key.to_string())
                    }
                    Ok(_) => {}
                    Err(e) => report.errors.push(format!("task: {e}")),
                }
            }
        }
        for (key, rec) in self.records.lock().await.iter() {
            report
                .states
                .insert(key.to_string(), rec.derive_lifecycle());
        }
        Ok(report)
    }

    /// Reconciles one resource until it settles or its step deadline passes. Returns
    /// `Some(true)` when it is removed from Git but left running.
    async fn reconcile(
        &self,
        key: &ResourceKey,
        set: &ManifestSet,
        revision: &Revision,
        invalid: bool,
    ) -> Result<Option<bool>, String> {
        let manifest = set.get(key);
        let hash = manifest.map(|m| m.spec.hash());
        let message = || {
            set.errors()
                .filter(|d| d.resource.as_deref() == Some(&key.to_string()))
                .map(|d| format!("{}:{}: {}: {}", d.file, d.line, d.field, d.message))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let started = Instant::now();
        let mut unmanaged = false;
        // After a step that only changed our own record, Flink has not moved: decide again
        // on the same observation instead of asking Flink again (it shortens upgrades).
        let mut reused: Option<Observed> = None;
        loop {
            let desired = match (manifest, &hash) {
                (Some(_), _) if invalid => Desired::Invalid { message: message() },
                (Some(m), Some(h)) => Desired::Valid {
                    spec: &m.spec,
                    hash: h.clone(),
                    revision: &revision.commit,
                },
                _ => Desired::Absent,
            };
            let mut record = self.records.lock().await.get(key).cloned();
            if let (Some(rec), Some(_)) = (record.as_mut(), manifest) {
                // Back in Git after a --no-prune removal: managed again.
                if rec.removed_from_git {
                    rec.removed_from_git = false;
                    self.record(rec.clone(), "back in Git".to_string(), false)
                        .await?;
                }
            }
            let observing = Instant::now();
            let observed = match reused.take() {
                Some(o) => o,
                None => self.observe(key, record.as_ref(), manifest).await,
            };
            let observe_ms = observing.elapsed().as_millis() as u64;
            let ctx = Context {
                prune: self.settings.prune,
                now_ms: now_ms(),
                session_jobs: self.session_jobs_on(key).await,
            };
            let step = decide(&desired, record.as_ref(), &observed, &ctx);
            tracing::debug!(resource = %key, observe_ms, ?step, "decided");
            match step {
                Step::Nothing => break,
                Step::Wait { what } => {
                    if started.elapsed() > self.settings.step_deadline {
                        tracing::info!(resource = %key, waiting_for = %what, "still waiting; will look again next cycle");
                        break;
                    }
                    tokio::time::sleep(self.settings.fast_poll).await;
                }
                Step::KeepUnmanaged => {
                    unmanaged = true;
                    tracing::warn!(resource = %key, "removed from Git; left running because pruning is off (--no-prune)");
                    if let Some(mut rec) = record.clone().filter(|r| !r.removed_from_git) {
                        rec.removed_from_git = true;
                        self.record(
                            rec,
                            "removed from Git; left running (--no-prune)".to_string(),
                            true,
                        )
                        .await?;
                    }
                    break;
                }
                step => {
                    let done = self
                        .act(key, step, record, manifest, revision, &observed)
                        .await?;
                    if done {
                        break;
                    }
                }
            }
        }
        self.flush(key).await?;
        Ok(Some(unmanaged))
    }

    async fn session_jobs_on(&self, cluster: &ResourceKey) -> Vec<String> {
        if cluster.kind != Kind::FlinkDeployment {
            return Vec::new();
        }
        let records = self.records.lock().await;
        records
            .values()
            .filter(|r| {
                r.kind == Kind::FlinkSessionJob && !r.deleted && r.namespace == cluster.namespace
            })
            .filter(|r| match r.applied() {
                Some(Spec::SessionJob(s)) => {
                    s.deployment_name.as_deref() == Some(cluster.name.as_str())
                }
                _ => false,
            })
            .map(|r| r.name.clone())
            .collect()
    }

    /// The cluster a resource's job runs on: its own, or the session cluster.
    fn cluster_of(key: &ResourceKey, spec: Option<&Spec>) -> ResourceKey {
        match spec {
            Some(Spec::SessionJob(s)) => ResourceKey::new(
                key.namespace.clone(),
                Kind::FlinkDeployment,
                s.deployment_name.clone().unwrap_or_default(),
            ),
            _ => ResourceKey::new(
                key.namespace.clone(),
                Kind::FlinkDeployment,
                key.name.clone(),
            ),
        }
    }

    fn client(&self, cluster: &ResourceKey) -> Option<FlinkRestClient> {
        let url = self.runtime.rest_url(cluster)?;
        FlinkRestClient::new(&url)
            .ok()
            .map(|c| c.with_timeout(self.settings.rest_timeout))
    }

    /// Gathers what `decide` needs.
    async fn observe(
        &self,
        key: &ResourceKey,
        record: Option<&Record>,
        manifest: Option<&Manifest>,
    ) -> Observed {
        let spec = record
            .and_then(Record::applied)
            .or_else(|| manifest.map(|m| m.spec.clone()));
        let cluster_key = Self::cluster_of(key, spec.as_ref());
        let cluster = self.runtime.cluster_state(&cluster_key).await;
        let mut observed = Observed {
            cluster: Some(cluster.clone()),
            ..Default::default()
        };
        let Some(rec) = record else { return observed };
        let job_id = match &rec.in_flight {
            Some(
                InFlight::Starting { job_id, .. }
                | InFlight::Stopping { job_id, .. }
                | InFlight::Snapshotting { job_id, .. },
            ) => Some(job_id.clone()),
            _ => rec.job_id.clone(),
        };
        let Some(job_id) = job_id else {
            return observed;
        };
        let Ok(jid) = JobId::parse(&job_id) else {
            return observed;
        };
        let client = match cluster {
            ClusterState::Ready | ClusterState::Starting => self.client(&cluster_key),
            _ => None,
        };
        if let Some(client) = &client {
            let pending = match &rec.in_flight {
                Some(InFlight::Stopping {
                    trigger_id: Some(t),
                    ..
                }) => Some((TriggerId::new(t.clone()), false)),
                Some(InFlight::Snapshotting {
                    trigger_id,
                    checkpoint,
                    ..
                }) => Some((TriggerId::new(trigger_id.clone()), *checkpoint)),
                _ => None,
            };
            // The job list and the pending trigger are independent: ask for both at once.
            let trigger_status = async {
                let (trigger, checkpoint) = pending.as_ref()?;
                Some(if *checkpoint {
                    match client.checkpoint_status(&jid, trigger).await {
                        Ok(CheckpointStatus::InProgress) => TriggerResult::InProgress,
                        Ok(CheckpointStatus::Completed { .. }) => {
                            TriggerResult::Completed { location: None }
                        }
                        Ok(CheckpointStatus::Failed { cause }) => TriggerResult::Failed {
                            cause: cause.summary().to_string(),
                        },
                        Err(_) => TriggerResult::Unknown,
                    }
                } else {
                    match client.savepoint_status(&jid, trigger).await {
                        Ok(SavepointStatus::InProgress) => TriggerResult::InProgress,
                        Ok(SavepointStatus::Completed { location }) => TriggerResult::Completed {
                            location: Some(location),
                        },
                        Ok(SavepointStatus::Failed { cause }) => TriggerResult::Failed {
                            cause: cause.summary().to_string(),
                        },
                        Err(_) => TriggerResult::Unknown,
                    }
                })
            };
            let (jobs, trigger) = tokio::join!(client.jobs_overview(), trigger_status);
            observed.trigger = trigger;
            if let Ok(jobs) = jobs {
                if let Some(j) = jobs.iter().find(|j| j.jid == jid) {
                    let mut job = ObservedJob {
                        job_id: job_id.clone(),
                        state: status_name(j.state),
                        all_tasks_running: j.all_tasks_running(),
                        failure: None,
                    };
                    if j.state == JobStatus::Failed {
                        job.failure = client
                            .job_exceptions(&jid)
                            .await
                            .ok()
                            .flatten()
                            .map(|e| e.user_exception().message.clone());
                    }
                    observed.job = Some(job);
                }
            }
        } else if matches!(
            rec.in_flight,
            Some(InFlight::Stopping { .. }) | Some(InFlight::Snapshotting { .. })
        ) {
            observed.trigger = Some(TriggerResult::Unknown);
        }
        // The newest checkpoint matters only once the job is down and nothing better is at
        // hand (a savepoint the stop took); asking for it on every poll would slow the
        // in-flight loop for nothing.
        let job_down = observed.job.as_ref().is_none_or(ObservedJob::is_terminal);
        let savepoint_known = matches!(
            observed.trigger,
            Some(TriggerResult::InProgress) | Some(TriggerResult::Completed { location: Some(_) })
        );
        let cancel_only = matches!(
            rec.in_flight,
            Some(InFlight::Stopping {
                mode: StopMode::Cancel,
                ..
            })
        );
        let wants_checkpoint = job_down && !savepoint_known && !cancel_only;
        if wants_checkpoint
            && spec
                .as_ref()
                .and_then(Spec::upgrade_mode)
                .is_some_and(UpgradeMode::is_stateful)
        {
            if let Some(client) = &client {
                observed.latest_checkpoint = client
                    .checkpoints(&jid)
                    .await
                    .ok()
                    .and_then(|c| c.latest_completed_path().map(str::to_string));
            }
            if observed.latest_checkpoint.is_none() {
                observed.latest_checkpoint = self
                    .runtime
                    .latest_checkpoint_on_storage(&cluster_key, &job_id);
            }
        }
        observed
    }

    /// Records `rec` in memory; `durable` writes it to the status branch now (before the
    /// next external step), else it is written at the next flush.
    async fn record(&self, mut rec: Record, message: String, durable: bool) -> Result<(), String> {
        let key = rec.key();
        let before = self.records.lock().await.get(&key).cloned();
        let new_state = rec.derive_lifecycle();
        let old_state = before.as_ref().map(|b| b.lifecycle_state);
        rec.lifecycle_state = new_state;
        if old_state != Some(new_state) || rec.since.is_empty() {
            rec.since = now_rfc3339();
        }
        if before.as_ref().is_some_and(|b| b.same_facts(&rec)) {
            return if durable {
                self.flush(&key).await
            } else {
                Ok(())
            };
        }
        self.records.lock().await.insert(key.clone(), rec);
        {
            let mut dirty = self.dirty.lock().await;
            let entry = dirty.entry(key.clone()).or_default();
            if !entry.is_empty() {
                entry.push_str("; ");
            }
            entry.push_str(&message);
        }
        if durable {
            self.flush(&key).await?;
        }
        Ok(())
    }

    /// Writes a resource's pending record to the status branch.
    async fn flush(&self, key: &ResourceKey) -> Result<(), String> {
        let Some(message) = self.dirty.lock().await.remove(key) else {
            return Ok(());
        };
        let Some(rec) = self.records.lock().await.get(key).cloned() else {
            return Ok(());
        };
        let _guard = self.write_lock.lock().await;
        let status = self.status.clone();
        let title = format!("{}: {}", key.name, message);
        let body = format!(
            "{title}\n\nResource: {key}\nLifecycle: {}\n",
            rec.lifecycle_state
        );
        let result = run_blocking(self.settings.git_timeout, "status push", move || {
            status.write(&rec, &body)
        })
        .await;
        match result {
            Ok(commit) => {
                tracing::info!(resource = %key, commit = commit.as_deref().unwrap_or("unchanged"), "{title}");
                Ok(())
            }
            Err(e) => {
                // Keep it dirty: nothing that depends on it runs until it is written.
                self.dirty.lock().await.insert(key.clone(), message);
                Err(format!("cannot write status: {e}"))
            }
        }
    }

    fn transition(before: Option<&Record>, after: &Record, revision: &str, detail: &str) -> String {
        let from = before
            .map(|b| b.lifecycle_state.to_string())
            .unwrap_or_else(|| "CREATED".to_string());
        let to = after.derive_lifecycle();
        let short = revision.get(..7).unwrap_or(revision);
        let mut s = format!("{from} -> {to} at {short}");
        if !detail.is_empty() {
            s.push_str(", ");
            s.push_str(detail);
        }
        s
    }

    /// Carries out one step. Returns true when the resource is settled for this cycle.
    async fn act(
        &self,
        key: &ResourceKey,
        step: Step,
        record: Option<Record>,
        manifest: Option<&Manifest>,
        revision: &Revision,
        observed: &Observed,
    ) -> Result<bool, String> {
        let mut rec = record.clone().unwrap_or_else(|| Record::new(key));
        let before = record.as_ref();
        let rev = revision.commit.clone();
        match step {
            Step::Nothing | Step::Wait { .. } | Step::KeepUnmanaged => Ok(true),
            Step::Hold { message } => {
                let same = rec
                    .last_error
                    .as_ref()
                    .is_some_and(|e| e.reason == reason::VALIDATION && e.message == message);
                if same {
                    return Ok(true);
                }
                rec.last_error = Some(LastError {
                    reason: reason::VALIDATION.to_string(),
                    message: message.clone(),
                    time: now_rfc3339(),
                });
                let msg = format!(
                    "invalid at {}, last good deployment kept: {message}",
                    revision.short()
                );
                self.record(rec, msg, true).await?;
                Ok(true)
            }
            Step::AcceptSpec => {
                let Some(m) = manifest else { return Ok(true) };
                rec.applied_spec = Some(m.spec.canonical_json());
                rec.applied_spec_hash = Some(m.spec.hash());
                rec.applied_revision = Some(rev.clone());
                rec.last_error = None;
                let running = observed
                    .job
                    .as_ref()
                    .is_some_and(|j| j.state == "RUNNING" && j.all_tasks_running);
                if rec.applied_suspended()
                    || running
                    || matches!(&m.spec, Spec::Deployment(d) if d.is_session_cluster())
                {
                    rec.stable_spec = rec.applied_spec.clone();
                    rec.stable_spec_hash = rec.applied_spec_hash.clone();
                    rec.stable_revision = rec.applied_revision.clone();
                }
                let msg = Self::transition(before, &rec, &rev, "no restart needed");
                self.record(rec, msg, true).await?;
                Ok(false)
            }
            Step::Deploy { restore, rollback } => self
                .deploy(key, rec, before.cloned(), manifest, &rev, restore, rollback)
                .await
                .map(|_| false),
            Step::Stop { purpose, mode } => self.stop(key, rec, purpose, mode).await.map(|_| false),
            Step::FinishStop {
                purpose,
                restore,
                savepoint,
            } => {
                self.finish_stop(rec, purpose, restore, savepoint, &rev, observed)
                    .await?;
                Ok(false)
            }
            Step::Settle { purpose } => {
                self.settle(key, rec, before.cloned(), manifest, &rev, purpose)
                    .await
            }
            Step::MarkStable => {
                rec.in_flight = None;
                rec.job_state = Some(
                    if rec.kind == Kind::FlinkDeployment
                        && rec.applied().is_some_and(|s| s.job().is_none())
                    {
                        "READY".to_string()
                    } else {
                        "RUNNING".to_string()
                    },
                );
                if rec.rollback == Some(RollbackState::RollingBack) {
                    // The stable spec runs again; the failed spec stays applied (as in the
                    // operator) so the same spec is not tried again until Git changes.
                    rec.rollback = Some(RollbackState::RolledBack);
                } else {
                    rec.stable_spec = rec.applied_spec.clone();
                    rec.stable_spec_hash = rec.applied_spec_hash.clone();
                    rec.stable_revision = rec.applied_revision.clone();
                    rec.last_error = None;
                }
                let detail = match (&rec.restore_path, &rec.job_id) {
                    (Some(p), Some(j)) if rec.job_id.is_some() => {
                        format!("job {} running, restored from {p}", short_id(j))
                    }
                    (_, Some(j)) => format!("job {} running", short_id(j)),
                    _ => "ready".to_string(),
                };
                let applied_rev = rec.applied_revision.clone().unwrap_or(rev);
                let msg = Self::transition(before, &rec, &applied_rev, &detail);
                self.record(rec, msg, true).await?;
                Ok(false)
            }
            Step::TriggerSnapshot { nonce, checkpoint } => {
                let Some(job_id) = rec.job_id.clone() else {
                    return Ok(true);
                };
                let cluster_key = Self::cluster_of(key, rec.applied().as_ref());
                let Some(client) = self.client(&cluster_key) else {
                    return Ok(true);
                };
                let trigger_id = new_trigger_id(&job_id);
                rec.in_flight = Some(InFlight::Snapshotting {
                    job_id: job_id.clone(),
                    trigger_id: trigger_id.clone(),
                    nonce,
                    checkpoint,
                    since: now_rfc3339(),
                });
                let what = if checkpoint {
                    "checkpoint"
                } else {
                    "savepoint"
                };
                self.record(
                    rec.clone(),
                    format!("manual {what} triggered (nonce {nonce})"),
                    true,
                )
                .await?;
                let jid = JobId::parse(&job_id).map_err(|e| format!("{e:?}"))?;
                let trigger = TriggerId::new(trigger_id.clone());
                let format = savepoint_format(rec.applied().as_ref());
                let result = if checkpoint {
                    client
                        .trigger_checkpoint(&jid, CheckpointType::Full, Some(&trigger))
                        .await
                } else {
                    client
                        .trigger_savepoint(&jid, None, format, Some(&trigger))
                        .await
                };
                if let Err(e) = result {
                    rec.in_flight = None;
                    rec.nonces.insert(nonce_key(checkpoint).to_string(), nonce);
                    rec.last_error = Some(LastError {
                        reason: reason::SAVEPOINT_FAILED.to_string(),
                        message: e.to_string(),
                        time: now_rfc3339(),
                    });
                    self.record(rec, format!("manual {what} failed: {e}"), true)
                        .await?;
                }
                Ok(false)
            }
            Step::FinishSnapshot { location, error } => {
                let Some(InFlight::Snapshotting {
                    nonce,
                    checkpoint,
                    job_id,
                    ..
                }) = rec.in_flight.clone()
                else {
                    return Ok(true);
                };
                rec.in_flight = None;
                rec.nonces.insert(nonce_key(checkpoint).to_string(), nonce);
                let msg = match (&location, &error) {
                    (Some(loc), _) if !checkpoint => {
                        rec.savepoints.push(Savepoint {
                            location: loc.clone(),
                            time: now_rfc3339(),
                            trigger: SnapshotTrigger::Manual,
                            revision: rec.applied_revision.clone().unwrap_or_default(),
                            for_revision: None,
                            job_id,
                        });
                        crate::flink::lifecycle::record::trim_history(
                            &mut rec.savepoints,
                            config::DEFAULT_SAVEPOINT_HISTORY_COUNT,
                        );
                        format!("manual savepoint {loc} (nonce {nonce})")
                    }
                    (_, Some(e)) => {
                        rec.last_error = Some(LastError {
                            reason: reason::SAVEPOINT_FAILED.to_string(),
                            message: e.clone(),
                            time: now_rfc3339(),
                        });
                        format!("manual snapshot failed (nonce {nonce}): {e}")
                    }
                    _ => format!("manual checkpoint completed (nonce {nonce})"),
                };
                self.record(rec, msg, true).await?;
                Ok(false)
            }
            Step::Fail {
                reason: why,
                message,
            } => {
                rec.in_flight = None;
                rec.job_state = Some("FAILED".to_string());
                rec.last_error = Some(LastError {
                    reason: why.to_string(),
                    message: message.clone(),
                    time: now_rfc3339(),
                });
                let msg = Self::transition(
                    before,
                    &rec,
                    &rev,
                    &format!("{why}: {}", first_line(&message)),
                );
                self.record(rec, msg, true).await?;
                Ok(true)
            }
            Step::RedeploySessionCluster { session_jobs } => {
                for name in session_jobs {
                    let job_key =
                        ResourceKey::new(key.namespace.clone(), Kind::FlinkSessionJob, name);
                    self.stop_for_cluster_redeploy(&job_key).await?;
                }
                let rec = self.records.lock().await.get(key).cloned().unwrap_or(rec);
                self.deploy(key, rec, before.cloned(), manifest, &rev, None, false)
                    .await
                    .map(|_| false)
            }
            Step::MarkDeleted => {
                rec.deleted = true;
                rec.in_flight = None;
                self.record(rec, "removed from Git".to_string(), true)
                    .await?;
                Ok(true)
            }
        }
    }

    /// Records the end of a stop: the restore point, the savepoint history, and that the job
    /// is stopped. Not written yet: the trigger id is on the branch, so the location can be
    /// found again; it is written with the next step, before anything uses it.
    async fn finish_stop(
        &self,
        mut rec: Record,
        purpose: StopPurpose,
        restore: Option<String>,
        savepoint: bool,
        rev: &str,
        observed: &Observed,
    ) -> Result<(), String> {
        let rev = rev.to_string();
        let job_id = rec.job_id.clone().unwrap_or_default();
        if purpose != StopPurpose::Rollback {
            rec.restore_path = restore.clone();
        }
        rec.stopped_with = rec.applied().and_then(|s| s.upgrade_mode());
        if let Some(location) = restore.clone().filter(|_| purpose != StopPurpose::Rollback) {
            let trigger = match (savepoint, purpose) {
                (false, _) => SnapshotTrigger::Checkpoint,
                (true, StopPurpose::Suspend) => SnapshotTrigger::Suspend,
                (true, StopPurpose::Delete) => SnapshotTrigger::Delete,
                (true, _) => SnapshotTrigger::Upgrade,
            };
            let for_revision = match purpose {
                StopPurpose::Upgrade | StopPurpose::SavepointRedeploy => Some(rev.clone()),
                _ => None,
            };
            rec.savepoints.push(Savepoint {
                location,
                time: now_rfc3339(),
                trigger,
                revision: rec.applied_revision.clone().unwrap_or_default(),
                for_revision,
                job_id: job_id.clone(),
            });
            crate::flink::lifecycle::record::trim_history(
                &mut rec.savepoints,
                config::DEFAULT_SAVEPOINT_HISTORY_COUNT,
            );
        }
        rec.job_state = observed
            .job
            .as_ref()
            .map(|j| j.state.clone())
            .or(Some("FINISHED".to_string()));
        rec.in_flight = Some(InFlight::Stopped { purpose });
        let detail = match &restore {
            Some(p) if savepoint => format!("savepoint {p}"),
            Some(p) => format!("checkpoint {p}"),
            None => "stopped without state".to_string(),
        };
        let msg = format!("job {} stopped ({purpose:?}), {detail}", short_id(&job_id));
        // Not written yet: the trigger id is on the branch, so the location can be
        // found again; it is written with the next step, before anything uses it.
        self.record(rec, msg, false).await?;
        Ok(())
    }

    /// Stops a session job because its cluster is redeployed; waits for the stop to finish.
    async fn stop_for_cluster_redeploy(&self, job_key: &ResourceKey) -> Result<(), String> {
        let Some(rec) = self.records.lock().await.get(job_key).cloned() else {
            return Ok(());
        };
        let Some(applied) = rec.applied() else {
            return Ok(());
        };
        if rec.applied_suspended() || rec.in_flight.is_some() {
            return Ok(());
        }
        let mode = stop_mode(StopPurpose::ClusterRedeploy, &applied);
        self.stop(job_key, rec, StopPurpose::ClusterRedeploy, mode)
            .await?;
        let started = Instant::now();
        loop {
            let rec = self.records.lock().await.get(job_key).cloned();
            let Some(rec) = rec else { return Ok(()) };
            if matches!(rec.in_flight, Some(InFlight::Stopped { .. })) || rec.in_flight.is_none() {
                return self.flush(job_key).await;
            }
            let observed = self.observe(job_key, Some(&rec), None).await;
            let ctx = Context {
                prune: self.settings.prune,
                now_ms: now_ms(),
                session_jobs: Vec::new(),
            };
            match decide(&Desired::Absent, Some(&rec), &observed, &ctx) {
                Step::FinishStop {
                    purpose,
                    restore,
                    savepoint,
                } => {
                    let rev = rec.applied_revision.clone().unwrap_or_default();
                    self.finish_stop(rec, purpose, restore, savepoint, &rev, &observed)
                        .await?;
                }
                Step::Wait { .. } if started.elapsed() < self.settings.step_deadline => {
                    tokio::time::sleep(self.settings.fast_poll).await
                }
                other => {
                    return Err(format!(
                        "stopping {job_key} before its cluster is redeployed: {other:?}"
                    ))
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn deploy(
        &self,
        key: &ResourceKey,
        mut rec: Record,
        before: Option<Record>,
        manifest: Option<&Manifest>,
        rev: &str,
        restore: Option<String>,
        rollback: bool,
    ) -> Result<(), String> {
        let spec = if rollback {
            rec.stable()
                .ok_or_else(|| "rollback without a stable spec".to_string())?
        } else {
            match manifest {
                Some(m) => m.spec.clone(),
                None => rec
                    .applied()
                    .ok_or_else(|| "nothing to deploy".to_string())?,
            }
        };
        rec.generation += 1;
        let job_id = spec.job().map(|_| new_job_id(key, rec.generation));
        if !rollback {
            rec.applied_spec = Some(spec.canonical_json());
            rec.applied_spec_hash = Some(spec.hash());
            if manifest.is_some() {
                rec.applied_revision = Some(rev.to_string());
            }
            rec.rollback = None;
        } else {
            rec.rollback = Some(RollbackState::RollingBack);
        }
        rec.deleted = false;
        rec.job_id = job_id.clone();
        rec.job_state = None;
        rec.in_flight = Some(InFlight::Starting {
            job_id: job_id.clone().unwrap_or_default(),
            restore: restore.clone(),
            since: now_rfc3339(),
        });
        let detail = match (&restore, &job_id) {
            (Some(p), Some(j)) => format!("starting job {} from {p}", short_id(j)),
            (None, Some(j)) => format!("starting job {} without state", short_id(j)),
            _ => "starting session cluster".to_string(),
        };
        let applied_rev = rec
            .applied_revision
            .clone()
            .unwrap_or_else(|| rev.to_string());
        let msg = Self::transition(before.as_ref(), &rec, &applied_rev, &detail);
        // The job id and restore point are on the branch before anything starts.
        self.record(rec.clone(), msg, true).await?;
        let result = match &spec {
            Spec::Deployment(d) => {
                let job = match (&d.job, &job_id) {
                    (Some(j), Some(id)) => {
                        let uri = j.jar_uri.clone().unwrap_or_default();
                        let jar = self
                            .runtime
                            .resolve_jar(&uri)
                            .await
                            .map_err(|e| e.to_string());
                        match jar {
                            Ok(jar) => Some(ApplicationJob {
                                jar,
                                entry_class: j.entry_class.clone(),
                                args: j.args.clone(),
                                job_id: id.clone(),
                                parallelism: j.parallelism,
                                restore: restore.clone(),
                                allow_non_restored_state: j
                                    .allow_non_restored_state
                                    .unwrap_or(false),
                            }),
                            Err(e) => return self.deploy_failed(key, e).await,
                        }
                    }
                    _ => None,
                };
                let request = ClusterRequest {
                    key: key.clone(),
                    spec: d.clone(),
                    job,
                    generation: rec.generation,
                };
                self.runtime
                    .deploy_cluster(request)
                    .await
                    .map_err(|e| e.to_string())
            }
            Spec::SessionJob(sj) => {
                self.submit_session_job(
                    key,
                    sj,
                    job_id.as_deref().unwrap_or_default(),
                    restore.as_deref(),
                )
                .await
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) => self.deploy_failed(key, e).await,
        }
    }

    async fn deploy_failed(&self, key: &ResourceKey, message: String) -> Result<(), String> {
        let Some(mut rec) = self.records.lock().await.get(key).cloned() else {
            return Err(message);
        };
        rec.in_flight = None;
        rec.job_state = Some("FAILED".to_string());
        let why = if message.contains("Cannot map checkpoint/savepoint state")
            || message.contains("FileNotFound")
        {
            reason::RESTORE_FAILED
        } else {
            reason::DEPLOY_FAILED
        };
        rec.last_error = Some(LastError {
            reason: why.to_string(),
            message: message.clone(),
            time: now_rfc3339(),
        });
        self.record(
            rec,
            format!("deployment failed: {}", first_line(&message)),
            true,
        )
        .await?;
        Ok(())
    }

    async fn submit_session_job(
        &self,
        key: &ResourceKey,
        sj: &crate::flink::spec::SessionJobSpec,
        job_id: &str,
        restore: Option<&str>,
    ) -> Result<(), String> {
        let cluster = ResourceKey::new(
            key.namespace.clone(),
            Kind::FlinkDeployment,
            sj.deployment_name.clone().unwrap_or_default(),
        );
        let client = self
            .client(&cluster)
            .ok_or_else(|| format!("session cluster {cluster} is not running"))?;
        let job = sj.job.clone().unwrap_or_default();
        let jar = self
            .runtime
            .resolve_jar(job.jar_uri.as_deref().unwrap_or_default())
            .await
            .map_err(|e| e.to_string())?;
        let cache_key = (
            self.runtime.rest_url(&cluster).unwrap_or_default(),
            jar.display().to_string(),
        );
        let cached = self.uploaded.lock().await.get(&cache_key).cloned();
        let mut flink_configuration: BTreeMap<String, String> = sj
            .flink_configuration
            .iter()
            .filter(|(k, _)| {
                !k.starts_with(config::OPERATOR_PREFIX) && !k.starts_with(config::AUTOSCALER_PREFIX)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        flink_configuration
            .entry("pipeline.name".to_string())
            .or_insert_with(|| key.name.clone());
        let request = JarRunRequest {
            entry_class: job.entry_class.clone(),
            program_args_list: job.args.clone(),
            parallelism: job.parallelism.and_then(|p| u32::try_from(p).ok()),
            job_id: Some(JobId::parse(job_id).map_err(|e| format!("{e:?}"))?),
            savepoint_path: restore.map(str::to_string),
            allow_non_restored_state: job.allow_non_restored_state.unwrap_or(false),
            claim_mode: Some(ClaimMode::NoClaim),
            flink_configuration,
        };
        for attempt in 0..2 {
            let jar_id = match (&cached, attempt) {
                (Some(id), 0) => JarId::new(id.clone()),
                _ => {
                    let id = client.upload_jar(&jar).await.map_err(|e| e.to_string())?;
                    self.uploaded
                        .lock()
                        .await
                        .insert(cache_key.clone(), id.as_str().to_string());
                    id
                }
            };
            match client.run_jar(&jar_id, &request).await {
                Ok(_) => return Ok(()),
                // Submitted before a crash: the job exists; observation takes it from here.
                Err(RestError::DuplicateJobId { .. }) => return Ok(()),
                Err(RestError::JarNotFound { .. }) if attempt == 0 && cached.is_some() => {
                    self.uploaded.lock().await.remove(&cache_key);
                    continue;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("jar submission failed".to_string())
    }

    async fn stop(
        &self,
        key: &ResourceKey,
        mut rec: Record,
        purpose: StopPurpose,
        mode: StopMode,
    ) -> Result<(), String> {
        let Some(job_id) = rec.job_id.clone() else {
            rec.in_flight = Some(InFlight::Stopped { purpose });
            return self.record(rec, "nothing to stop".to_string(), true).await;
        };
        let cluster_key = Self::cluster_of(key, rec.applied().as_ref());
        let client = self
            .client(&cluster_key)
            .ok_or_else(|| format!("cluster {cluster_key} has no REST endpoint"))?;
        let trigger_id = (mode == StopMode::Savepoint).then(|| new_trigger_id(&job_id));
        rec.in_flight = Some(InFlight::Stopping {
            purpose,
            mode,
            job_id: job_id.clone(),
            trigger_id: trigger_id.clone(),
            since: now_rfc3339(),
        });
        let what = match mode {
            StopMode::Savepoint => "stopping with savepoint",
            StopMode::CancelKeepCheckpoint => "cancelling, keeping the latest checkpoint",
            StopMode::Cancel => "cancelling",
        };
        let msg = format!("{what} job {} ({purpose:?})", short_id(&job_id));
        // The trigger id is on the branch before the stop is sent: a restarted agent asks
        // Flink for this trigger's savepoint instead of losing it.
        self.record(rec, msg, true).await?;
        let drain = purpose == StopPurpose::Delete
            && rec_drain_on_delete(self.records.lock().await.get(key));
        let jid = JobId::parse(&job_id).map_err(|e| format!("{e:?}"))?;
        let format = savepoint_format(
            self.records
                .lock()
                .await
                .get(key)
                .and_then(Record::applied)
                .as_ref(),
        );
        let requested = Instant::now();
        let result = match (mode, &trigger_id) {
            (StopMode::Savepoint, Some(t)) => client
                .stop_with_savepoint(&jid, None, drain, format, Some(&TriggerId::new(t.clone())))
                .await
                .map(|_| ()),
            _ => client.cancel(&jid).await,
        };
        tracing::debug!(resource = %key, elapsed_ms = requested.elapsed().as_millis() as u64, "stop requested");
        match result {
            Ok(()) | Err(RestError::JobNotFound { .. }) => {
                if mode == StopMode::Savepoint {
                    failpoint("after-stop-with-savepoint");
                }
                Ok(())
            }
            Err(e) => Err(format!("stop of job {job_id} failed: {e}")),
        }
    }

    async fn settle(
        &self,
        key: &ResourceKey,
        mut rec: Record,
        before: Option<Record>,
        manifest: Option<&Manifest>,
        rev: &str,
        purpose: StopPurpose,
    ) -> Result<bool, String> {
        match purpose {
            StopPurpose::Delete => {
                if key.kind == Kind::FlinkDeployment {
                    self.runtime
                        .delete_cluster(key)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                rec.deleted = true;
                rec.in_flight = None;
                let detail = match rec.restore_path.clone() {
                    Some(p) => format!("final state {p}"),
                    None => "no state kept".to_string(),
                };
                let msg = Self::transition(before.as_ref(), &rec, rev, &detail);
                self.record(rec, msg, true).await?;
                Ok(true)
            }
            _ => {
                if key.kind == Kind::FlinkDeployment {
                    self.runtime
                        .delete_cluster(key)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                if let Some(m) = manifest {
                    rec.applied_spec = Some(m.spec.canonical_json());
                    rec.applied_spec_hash = Some(m.spec.hash());
                    rec.applied_revision = Some(rev.to_string());
                }
                rec.stable_spec = rec.applied_spec.clone();
                rec.stable_spec_hash = rec.applied_spec_hash.clone();
                rec.stable_revision = rec.applied_revision.clone();
                rec.in_flight = None;
                let detail = rec
                    .restore_path
                    .clone()
                    .map(|p| format!("state kept at {p}"))
                    .unwrap_or_default();
                let msg = Self::transition(before.as_ref(), &rec, rev, &detail);
                self.record(rec, msg, true).await?;
                Ok(true)
            }
        }
    }
}

/// Test hook: `FLINK_GITOPS_FAILPOINT=<name>` kills the agent with SIGKILL at that point, the
/// way a crash or an evicted pod would, so tests can show that nothing is lost.
fn failpoint(name: &str) {
    if std::env::var(config::ENV_FAILPOINT).as_deref() == Ok(name) {
        tracing::error!(failpoint = name, "failpoint reached: killing the agent");
        // SAFETY: raising a signal on our own process has no memory-safety preconditions.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}

/// Flink's name of a job status (`RUNNING`, ...).
fn status_name(status: JobStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "UNKNOWN".to_string())
}

/// The savepoint format a spec asks for (`kubernetes.operator.savepoint.format.type`).
fn savepoint_format(spec: Option<&Spec>) -> SavepointFormat {
    match spec.and_then(|s| config::lookup(s.flink_configuration(), &config::OP_SAVEPOINT_FORMAT)) {
        Some((_, v)) if v.eq_ignore_ascii_case("NATIVE") => SavepointFormat::Native,
        _ => SavepointFormat::Canonical,
    }
}

fn rec_drain_on_delete(rec: Option<&Record>) -> bool {
    rec.and_then(Record::applied)
        .map(|s| {
            config::lookup_bool(
                s.flink_configuration(),
                &config::OP_DRAIN_ON_SAVEPOINT_DELETION,
                false,
            )
        })
        .unwrap_or(false)
}

fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}
