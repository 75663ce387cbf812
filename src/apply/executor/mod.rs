//! The agent: per-resource reconciliation in the shape of kube-runtime's controller.
//!
//! A fetch loop reads the manifests at the branch tip every interval and publishes them.
//! Each resource is reconciled on its own: observe ([`observe`]), decide
//! ([`crate::flink::lifecycle::decide`]), record the step's write-ahead facts, carry out its
//! I/O ([`act`]), record the outcome ([`crate::flink::lifecycle::transition`]). A reconcile
//! returns when the resource waits for Flink (requeued after the fast poll), rests
//! (requeued after the interval, or at once when Git moves), or fails (requeued after a
//! per-resource jittered exponential backoff, [`crate::apply::backoff`]). Waiting holds
//! nothing: only external actions (deploy, stop, submit, rescale, trigger) take one of
//! [`AgentSettings::max_concurrent_actions`] slots, so one slow savepoint delays no other
//! resource and no fetch.
//!
//! *Guarantees*: a fact a later step depends on (a job id before a submit, a savepoint
//! trigger id before a stop, a restore point before a start) is on the status branch before
//! the step's I/O runs; a resource whose record cannot be written takes no further step.
//! Nothing destructive is done on an observation that got no answer.

mod act;
mod controller;
mod dispose;
mod drift;
pub mod error;
mod hooks;
mod observe;
mod parts;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use tokio::sync::{watch, Semaphore};

pub use controller::RunEnd;
pub use error::{ErrorClass, ReconcileError};
pub use hooks::{AgentHooks, FetchTrigger};
pub use observe::{cluster_of, observe};
pub use parts::{Environment, GitManifests, ManifestSource, SystemEnvironment};
pub use store::{GitStatusStore, MemoryStatusStore, StatusError, StatusStore};

use super::runtime::{Runtime, SnapshotStorage};
use crate::config;
use crate::flink::lifecycle::decide::{decide, session_context, Context, Desired, Step};
use crate::flink::lifecycle::drift::DriftPolicy;
use crate::flink::lifecycle::health;
use crate::flink::lifecycle::observe::{ClusterState, Evidence, HealthSample, Observed};
use crate::flink::lifecycle::record::{LifecycleState, Record};
use crate::flink::lifecycle::simulate::describe;
use crate::flink::lifecycle::transition::{after, before, returned_to_git, Outcome};
use crate::flink::rest::FlinkApiFactory;
use crate::flink::spec::{validate, ManifestSet, ResourceKey, Severity};
use crate::git::source::Revision;

/// Settings of the agent loop. Defaults in [`crate::config`].
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Time between two fetches of the branch, and between two reconciles of a resource
    /// that rests.
    pub interval: Duration,
    /// Time between two observations of a resource with a step in flight.
    pub fast_poll: Duration,
    /// Stop and remove resources that left Git (`--no-prune` clears it).
    pub prune: bool,
    /// External actions carried out at the same time.
    pub max_concurrent_actions: usize,
    /// Deadline of one status write or manifest fetch.
    pub git_timeout: Duration,
    /// Steps one reconcile may take before the resource is requeued.
    pub max_steps_per_reconcile: usize,
    /// Longest `run --once` waits for in-flight steps.
    pub once_deadline: Duration,
    /// How long a new deployment must run before it is STABLE, unless its spec sets
    /// `flink-gitops.deployment.stability.window`.
    pub stability_window: Duration,
    /// After a fetch request ([`FetchTrigger`], a webhook), how long the fetch loop waits
    /// for more before it fetches once.
    pub fetch_debounce: Duration,
    /// What to do about drift of a resource whose manifest names no policy
    /// (`--drift`, annotation `flink-gitops.io/drift`).
    pub drift: DriftPolicy,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            interval: config::DEFAULT_SYNC_INTERVAL,
            fast_poll: config::DEFAULT_FAST_POLL,
            prune: true,
            max_concurrent_actions: config::DEFAULT_MAX_CONCURRENT_ACTIONS,
            git_timeout: config::DEFAULT_GIT_TIMEOUT,
            max_steps_per_reconcile: config::DEFAULT_MAX_STEPS_PER_RECONCILE,
            once_deadline: config::DEFAULT_ONCE_DEADLINE,
            stability_window: config::DEFAULT_STABILITY_WINDOW,
            fetch_debounce: config::DEFAULT_FETCH_DEBOUNCE,
            drift: DriftPolicy::default(),
        }
    }
}

/// What Git wants now.
#[derive(Debug, Clone)]
pub struct DesiredState {
    pub revision: Option<Revision>,
    pub set: ManifestSet,
    invalid: BTreeSet<String>,
}

impl DesiredState {
    fn empty() -> Self {
        DesiredState {
            revision: None,
            set: ManifestSet::default(),
            invalid: BTreeSet::new(),
        }
    }
}

/// How a reconcile ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Nothing in flight: look again after the interval (or when Git moves).
    Idle,
    /// A step is in flight: look again after this long.
    After(Duration),
}

/// The agent for one repository.
pub struct Agent<R: Runtime, F: FlinkApiFactory> {
    runtime: Arc<R>,
    flink: F,
    storage: Arc<dyn SnapshotStorage>,
    manifests: Arc<dyn ManifestSource>,
    status: Arc<dyn StatusStore>,
    env: Arc<dyn Environment>,
    settings: AgentSettings,
    records: Mutex<BTreeMap<ResourceKey, Record>>,
    desired_tx: watch::Sender<Arc<DesiredState>>,
    actions: Semaphore,
    write_lock: tokio::sync::Mutex<()>,
    jars: act::JarCache,
    /// The health check's readings per resource: the job they are of, oldest first. In
    /// memory only: after a restart the window starts again (the check acts later, never
    /// sooner).
    health: Mutex<BTreeMap<ResourceKey, (String, Vec<HealthSample>)>>,
    hooks: AgentHooks,
}

/// The parts an agent is made of.
pub struct AgentParts<R: Runtime, F: FlinkApiFactory> {
    pub runtime: Arc<R>,
    pub flink: F,
    pub storage: Arc<dyn SnapshotStorage>,
    pub manifests: Arc<dyn ManifestSource>,
    pub status: Arc<dyn StatusStore>,
    pub env: Arc<dyn Environment>,
}

async fn blocking<T: Send + 'static>(
    what: &'static str,
    after: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ReconcileError> {
    match tokio::time::timeout(after, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ReconcileError::StepFailed {
            step: what,
            message: format!("task failed: {e}"),
        }),
        Err(_) => Err(ReconcileError::Deadline { what, after }),
    }
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

impl<R: Runtime, F: FlinkApiFactory> Agent<R, F> {
    /// Creates the agent and reads every record from the status store.
    ///
    /// # Errors
    /// [`ReconcileError::Status`] when the records cannot be read.
    pub async fn start(
        parts: AgentParts<R, F>,
        settings: AgentSettings,
    ) -> Result<Arc<Self>, ReconcileError> {
        Self::start_with(parts, settings, AgentHooks::default()).await
    }

    /// [`Agent::start`] reporting to `hooks` (metrics, notifications, fetch trigger).
    ///
    /// # Errors
    /// [`ReconcileError::Status`] when the records cannot be read.
    pub async fn start_with(
        parts: AgentParts<R, F>,
        settings: AgentSettings,
        hooks: AgentHooks,
    ) -> Result<Arc<Self>, ReconcileError> {
        let status = parts.status.clone();
        let records =
            blocking("status load", settings.git_timeout, move || status.load()).await??;
        tracing::info!(
            records = records.len(),
            runtime = parts.runtime.name(),
            "read status"
        );
        records
            .values()
            .for_each(|r| hooks.telemetry.observe_record(r));
        hooks.telemetry.set_status_loaded();
        let (desired_tx, _) = watch::channel(Arc::new(DesiredState::empty()));
        Ok(Arc::new(Agent {
            runtime: parts.runtime,
            flink: parts.flink,
            storage: parts.storage,
            manifests: parts.manifests,
            status: parts.status,
            env: parts.env,
            actions: Semaphore::new(settings.max_concurrent_actions.max(1)),
            settings,
            records: Mutex::new(records),
            desired_tx,
            write_lock: tokio::sync::Mutex::new(()),
            jars: Mutex::new(BTreeMap::new()),
            health: Mutex::new(BTreeMap::new()),
            hooks,
        }))
    }

    pub fn runtime(&self) -> &Arc<R> {
        &self.runtime
    }

    /// A copy of the current records.
    pub fn records(&self) -> BTreeMap<ResourceKey, Record> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn record_of(&self, key: &ResourceKey) -> Option<Record> {
        self.records.lock().ok().and_then(|r| r.get(key).cloned())
    }

    /// What Git wants, as last fetched.
    pub fn desired(&self) -> Arc<DesiredState> {
        self.desired_tx.borrow().clone()
    }

    /// Fetches the branch and publishes what it wants. Returns whether the revision moved.
    ///
    /// # Errors
    /// [`ReconcileError::Git`] or [`ReconcileError::Deadline`]; the last good desired
    /// state stays.
    pub async fn sync(&self) -> Result<bool, ReconcileError> {
        let source = self.manifests.clone();
        let (revision, set) =
            blocking("fetch", self.settings.git_timeout, move || source.fetch()).await??;
        for d in set.errors() {
            tracing::warn!(diagnostic = %d, "invalid manifest");
        }
        let moved = self.desired().revision.as_ref().map(|r| &r.commit) != Some(&revision.commit);
        if moved {
            // Warnings about no resource, such as a key .flink-gitops.yaml does not know
            // (a typo of a setting): once per revision.
            for d in set
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Warning && d.resource.is_none())
            {
                tracing::warn!(diagnostic = %d, "repository warning");
            }
        }
        let invalid = set.invalid_keys();
        tracing::debug!(revision = %revision, resources = set.manifests.len(), "fetched");
        self.desired_tx.send_replace(Arc::new(DesiredState {
            revision: Some(revision),
            set,
            invalid,
        }));
        Ok(moved)
    }

    /// Every resource Git wants or the agent knows.
    pub fn keys(&self) -> BTreeSet<ResourceKey> {
        let desired = self.desired();
        let mut keys: BTreeSet<ResourceKey> = desired
            .set
            .manifests
            .iter()
            .map(|m| m.key.clone())
            .collect();
        if let Ok(records) = self.records.lock() {
            keys.extend(records.keys().cloned());
        }
        keys
    }

    /// Resources whose desired spec differs from the one the agent reconciled (added,
    /// changed or removed in Git): those a new revision concerns.
    pub fn changed_keys(&self) -> BTreeSet<ResourceKey> {
        let desired = self.desired();
        let Ok(records) = self.records.lock() else {
            return self.keys();
        };
        let mut changed: BTreeSet<ResourceKey> = desired
            .set
            .manifests
            .iter()
            .filter(|m| {
                records
                    .get(&m.key)
                    .and_then(|r| r.last_reconciled_hash.as_ref())
                    != Some(&m.spec.hash())
            })
            .map(|m| m.key.clone())
            .collect();
        let wanted: BTreeSet<&ResourceKey> = desired.set.manifests.iter().map(|m| &m.key).collect();
        changed.extend(
            records
                .iter()
                .filter(|(k, r)| !r.deleted && !wanted.contains(k))
                .map(|(k, _)| k.clone()),
        );
        changed
    }

    /// Writes `rec` (with its derived lifecycle state) to the status store, then keeps it.
    /// Unchanged facts write nothing.
    async fn persist(&self, mut rec: Record, message: String) -> Result<(), ReconcileError> {
        let key = rec.key();
        let previous = self.record_of(&key);
        let state = rec.derive_lifecycle();
        rec.lifecycle_state = state;
        if previous.as_ref().map(|p| p.lifecycle_state) != Some(state) || rec.since.is_empty() {
            rec.since = rfc3339(self.env.now_ms());
        }
        if previous.as_ref().is_some_and(|p| p.same_facts(&rec)) {
            return Ok(());
        }
        let _guard = self.write_lock.lock().await;
        let title = format!("{}: {message}", key.name);
        let mut body = format!("{title}\n\nResource: {key}\nLifecycle: {state}\n");
        if let Some(id) = &self.hooks.identity {
            body.push_str(&format!("{}: {id}\n", config::STATUS_AGENT_TRAILER));
        }
        let status = self.status.clone();
        let to_write = rec.clone();
        blocking("status write", self.settings.git_timeout, move || {
            status.write(&to_write, &body)
        })
        .await??;
        // A failure, a rollback or a new error is something an operator must see.
        let new_error = rec.last_error.is_some()
            && previous.as_ref().and_then(|p| p.last_error.as_ref()) != rec.last_error.as_ref();
        if new_error
            || matches!(
                state,
                LifecycleState::Failed | LifecycleState::RollingBack | LifecycleState::RolledBack
            ) && previous.as_ref().map(|p| p.lifecycle_state) != Some(state)
        {
            tracing::warn!(resource = %key, "{title}");
        } else {
            tracing::info!(resource = %key, "{title}");
        }
        self.hooks
            .after_write(previous.as_ref(), &rec, self.env.now_ms());
        let drift_before = previous.and_then(|p| p.drift);
        if drift_before != rec.drift {
            drift::drift_changed(
                &self.hooks,
                &rec,
                drift_before.as_ref(),
                rec.drift.as_ref(),
                &rfc3339(self.env.now_ms()),
            );
        }
        if let Ok(mut records) = self.records.lock() {
            records.insert(key, rec);
        }
        Ok(())
    }

    fn message(
        before: Option<&Record>,
        after: &Record,
        step: &Step,
        revision: Option<&str>,
    ) -> String {
        let from = before
            .map(Record::derive_lifecycle)
            .unwrap_or(LifecycleState::Created);
        let to = after.derive_lifecycle();
        let mut detail = describe(step);
        if let (Step::Deploy(d), Some(j)) = (step, &after.job_id) {
            if d.job_id.is_some() {
                detail = format!("{detail}, job {}", short(j));
            }
        }
        if let (Step::MarkStable, Some(j)) = (step, &after.job_id) {
            detail = format!("job {} running", short(j));
            if let Some(p) = &after.restore_path {
                detail.push_str(&format!(", restored from {p}"));
            }
        }
        if from == to {
            return detail;
        }
        let rev = after
            .last_reconciled_revision
            .as_deref()
            .or(revision)
            .map(|r| r.get(..7).unwrap_or(r).to_string())
            .unwrap_or_default();
        format!("{from} -> {to} at {rev}, {detail}")
    }

    fn context(&self, key: &ResourceKey, desired: &DesiredState) -> Context {
        let wanted = |k: &ResourceKey| {
            desired
                .set
                .get(k)
                .filter(|_| !desired.invalid.contains(&k.to_string()))
                .map(|m| m.spec.clone())
        };
        // Read under the lock: copying every record for every reconcile was the largest
        // cost of a steady cycle over many resources (benches/engine_fake.rs).
        let manifest = desired.set.get(key);
        let ((session_jobs, cluster_redeploy_pending), drift) = match self.records.lock() {
            Ok(records) => (
                session_context(key, &records, wanted),
                drift::context(
                    key,
                    manifest,
                    self.settings.drift,
                    &desired.set.drift_ignore,
                    &records,
                ),
            ),
            Err(_) => ((Vec::new(), false), Default::default()),
        };
        Context {
            prune: self.settings.prune,
            now_ms: self.env.now_ms(),
            fresh_job_id: self.env.new_id(),
            fresh_trigger_id: self.env.new_id(),
            session_jobs,
            cluster_redeploy_pending,
            stability_window_ms: self.settings.stability_window.as_millis() as u64,
            drift,
        }
    }

    /// Adds a reading of the job's health counters to `observed.health` when the reconciled
    /// spec turns the health check on and nothing is in flight.
    async fn take_health_reading(
        &self,
        key: &ResourceKey,
        record: Option<&Record>,
        observed: &mut Observed,
        now_ms: u64,
    ) {
        let Some(rec) = record.filter(|r| r.in_flight.is_none()) else {
            return;
        };
        let Some(settings) = rec.last_reconciled_spec.as_ref().and_then(health::settings) else {
            return;
        };
        let Some(job_id) = observed.job.get().map(|j| j.job_id.clone()) else {
            return;
        };
        let sample = observe::health_sample(
            self.runtime.as_ref(),
            &self.flink,
            key,
            rec,
            observed,
            now_ms,
        )
        .await;
        let Ok(mut all) = self.health.lock() else {
            return;
        };
        let entry = all
            .entry(key.clone())
            .or_insert_with(|| (job_id.clone(), Vec::new()));
        if entry.0 != job_id {
            *entry = (job_id, Vec::new());
        }
        if let Some(s) = sample {
            entry.1.push(s);
        }
        let horizon = health::horizon_ms(&settings);
        entry
            .1
            .retain(|s| now_ms.saturating_sub(s.time_ms) <= horizon);
        observed.health = entry.1.clone();
    }

    /// Whether drift is looked for on a resource (its policy is not `ignore`).
    fn looks_for_drift(&self, manifest: Option<&crate::flink::spec::Manifest>) -> bool {
        let policy = manifest
            .and_then(|m| m.annotations.get(config::ANNOTATION_DRIFT))
            .and_then(|v| DriftPolicy::parse(v))
            .unwrap_or(self.settings.drift);
        policy != DriftPolicy::Ignore
    }

    /// Reconciles one resource: observe, decide and act until it waits, rests or fails.
    ///
    /// # Errors
    /// A [`ReconcileError`] whose [`ReconcileError::class`] says how to retry.
    pub async fn reconcile(&self, key: &ResourceKey) -> Result<Requeue, ReconcileError> {
        let state = self.desired();
        let Some(revision) = state.revision.clone() else {
            return Ok(Requeue::Idle);
        };
        let manifest = state.set.get(key);
        // Git no longer shows a resource the agent knows while some file could not be
        // read: it may be in that file. Hold it as it is; never remove it.
        if manifest.is_none() && !state.set.unreadable_files.is_empty() {
            return Ok(Requeue::Idle);
        }
        let invalid = state.invalid.contains(&key.to_string());
        let message = || {
            state
                .set
                .errors()
                .filter(|d| d.resource.as_deref() == Some(&key.to_string()))
                .map(|d| format!("{}:{}: {}: {}", d.file, d.line, d.field, d.message))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let hash = manifest.map(|m| m.spec.hash());
        let mut reused = None;
        for _ in 0..self.settings.max_steps_per_reconcile.max(1) {
            self.hooks.ensure_leading()?;
            let record = self.record_of(key);
            if manifest.is_some() {
                if let Some(r) = record.as_ref().and_then(returned_to_git) {
                    self.persist(r, "back in Git".to_string()).await?;
                    continue;
                }
            }
            // The operator's rules on a change (validateSpecChange): checked against what runs.
            let transition = match (manifest, record.as_ref()) {
                (Some(m), Some(rec)) if !rec.deleted => rec
                    .last_reconciled_spec
                    .as_ref()
                    .map(|old| {
                        let mut found = Vec::new();
                        validate::validate_transition(old, m, &mut found);
                        found
                            .iter()
                            .filter(|d| d.severity == Severity::Error)
                            .map(|d| format!("{}:{}: {}: {}", d.file, d.line, d.field, d.message))
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or_default(),
                _ => String::new(),
            };
            let desired = match (manifest, &hash) {
                (Some(_), _) if invalid => Desired::Invalid { message: message() },
                (Some(_), _) if !transition.is_empty() => Desired::Invalid {
                    message: transition,
                },
                (Some(m), Some(h)) => Desired::Valid {
                    spec: &m.spec,
                    hash: h.clone(),
                    revision: &revision.commit,
                },
                _ => Desired::Absent,
            };
            let observed = match reused.take() {
                Some(o) => o,
                None => {
                    observe::observe(
                        self.runtime.as_ref(),
                        &self.flink,
                        self.storage.as_ref(),
                        key,
                        record.as_ref(),
                        manifest.map(|m| &m.spec),
                        self.looks_for_drift(manifest),
                    )
                    .await
                }
            };
            let ctx = self.context(key, &state);
            let mut observed = observed;
            self.take_health_reading(key, record.as_ref(), &mut observed, ctx.now_ms)
                .await;
            let step = decide(&desired, record.as_ref(), &observed, &ctx);
            tracing::debug!(resource = %key, ?step, "decided");
            let now = rfc3339(ctx.now_ms);
            let current = record.clone().unwrap_or_else(|| Record::new(key));
            match &step {
                Step::Nothing
                | Step::Wait { .. }
                | Step::Unreachable { .. }
                | Step::KeepUnmanaged => {
                    if record.is_some() || matches!(step, Step::KeepUnmanaged) {
                        let next = after(&current, &step, &Outcome::Done, &observed, &now);
                        let msg = match &step {
                            Step::Unreachable { error } => format!("unreachable: {error}"),
                            Step::KeepUnmanaged => {
                                "removed from Git; left running (--no-prune)".to_string()
                            }
                            _ => "reachable again".to_string(),
                        };
                        self.persist(next, msg).await?;
                    }
                    if matches!(step, Step::Nothing) {
                        self.tidy_history(key, &observed).await?;
                    }
                    return match step {
                        Step::Wait { what } => {
                            tracing::debug!(resource = %key, waiting_for = %what, "waiting");
                            Ok(Requeue::After(self.settings.fast_poll))
                        }
                        Step::Unreachable { error } => {
                            tracing::warn!(resource = %key, %error, "unreachable; nothing destructive is done");
                            Err(ReconcileError::Unreachable { error })
                        }
                        Step::KeepUnmanaged => {
                            tracing::warn!(resource = %key, "removed from Git; left running because pruning is off (--no-prune)");
                            Ok(Requeue::Idle)
                        }
                        _ => Ok(Requeue::Idle),
                    };
                }
                _ => {}
            }
            // A redeploy because the cluster is gone is a recovery: say so.
            let lost = match (&step, &observed.cluster) {
                (Step::Deploy(d), Evidence::Absent) if !d.retry && d.revision.is_none() => {
                    Some("the JobManager is missing".to_string())
                }
                (
                    Step::Deploy(d),
                    Evidence::Present {
                        value: ClusterState::Exited { reason },
                    },
                ) if !d.retry && d.revision.is_none() => Some(reason.clone()),
                _ => None,
            }
            .filter(|_| record.as_ref().is_some_and(|r| r.in_flight.is_none()));
            if let Some(why) = &lost {
                tracing::warn!(resource = %key, reason = %why, "the cluster is gone; recovering it from its newest state (kubernetes.operator.jm-deployment-recovery.enabled)");
            }
            // Write-ahead: the facts the step's I/O depends on.
            let written = match before(&current, &step, &now) {
                Some(r) => {
                    let mut msg = Self::message(record.as_ref(), &r, &step, Some(&revision.commit));
                    if let Some(why) = &lost {
                        msg = format!("{msg} (recovery: {why})");
                    }
                    self.persist(r.clone(), msg).await?;
                    r
                }
                None => current,
            };
            let outcome = if step.is_external() {
                let _slot = self.actions.acquire().await;
                // The write-ahead and the slot may have taken a while: as a crash here
                // would, losing the Lease now leaves the step recorded but not done.
                self.hooks.ensure_leading()?;
                act::act(
                    self.runtime.as_ref(),
                    &self.flink,
                    &self.jars,
                    key,
                    &written,
                    &step,
                )
                .await
            } else {
                Outcome::Done
            };
            let next = after(&written, &step, &outcome, &observed, &now);
            let msg = match &outcome {
                Outcome::Done => {
                    Self::message(Some(&written), &next, &step, Some(&revision.commit))
                }
                Outcome::Transient { message } => {
                    format!("{} failed, will retry: {message}", describe(&step))
                }
                Outcome::Stalled { reason, message } => {
                    format!("{reason}: {}", message.lines().next().unwrap_or(""))
                }
            };
            self.persist(next, msg).await?;
            match outcome {
                Outcome::Transient { message } => {
                    return Err(ReconcileError::StepFailed {
                        step: "step",
                        message,
                    })
                }
                Outcome::Stalled { .. } => return Ok(Requeue::Idle),
                Outcome::Done => {}
            }
            if matches!(step, Step::Hold { .. } | Step::MarkDeleted) {
                return Ok(Requeue::Idle);
            }
            // A failure is looked at again after the resource's backoff (1 s doubling):
            // soon enough for `job.restart.failed`, never a loop at the poll rate when the
            // same failure repeats (a stop that Flink refuses on every try).
            if let Step::Fail { reason, message } = &step {
                return Err(ReconcileError::Failed {
                    reason,
                    message: message.lines().next().unwrap_or("").to_string(),
                });
            }
            // After a step that only changed the record, Flink has not moved: decide again
            // on the same observation (it shortens upgrades).
            if !step.is_external() {
                reused = Some(observed);
            }
        }
        Ok(Requeue::After(self.settings.fast_poll))
    }
}
