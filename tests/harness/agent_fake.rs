//! The agent on the in-memory fake Flink: a [`World`] holds a [`FakeFlink`], a
//! [`MemoryStatusStore`] (written through a [`GatedStore`]), an in-memory manifest source and
//! a fixed clock and id source, and starts agents on them. A test pushes manifests
//! ([`World::push`]), drives an agent until it settles ([`World::settle`]), drops it right
//! after its k-th external step ([`World::run_until_step`]) or its k-th record write
//! ([`World::run_until_write`]), and starts a new one on the same store and fake
//! ([`World::agent`]), as a restarted agent reads the same status branch.
//!
//! Driving is done by hand, not by `Agent::run`: each round fetches the manifests and
//! reconciles every resource once (FlinkDeployments before FlinkSessionJobs, as
//! `run_once`), then lets the fake's time pass: pending savepoints and checkpoints complete
//! ([`FakeFlink::settle`]), running jobs process records ([`FakeFlink::advance`]) and take
//! a periodic checkpoint ([`FakeFlink::checkpoint_all`]), and the clock moves one second.
//! Nothing sleeps.
//!
//! [`crash_matrix`] runs a change once without a crash, once per external step with the
//! agent dropped after it, once per record write with the agent dropped after it, and once
//! with a new agent for every step; [`Lineage`] and [`World::assert_running`] hold the checks
//! every scenario shares: exactly one running job, the record at rest, the newest state
//! restored and nothing lost.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flink_gitops::apply::executor::{
    Agent, AgentHooks, AgentParts, AgentSettings, Environment, ManifestSource, MemoryStatusStore,
    ReconcileError, Requeue,
};
use flink_gitops::flink::lifecycle::record::{LifecycleState, Record};
use flink_gitops::flink::rest::{JobId, JobStatus};
use flink_gitops::flink::spec::{Kind, ManifestSet, ResourceKey, Spec};
use flink_gitops::git::source::{parse_files, GitError, Revision};

use super::fake_flink::{Call, CallRecord, FakeFlink, FakeJob, FakeSnapshot, FAKE_STATE_ROOT};

/// The agent type every scenario runs.
pub type FakeAgent = Agent<FakeFlink, FakeFlink>;

/// The namespace of every test resource.
pub const NS: &str = "default";

/// A savepoint every world holds (for `initialSavepointPath`), and its state value.
pub const INITIAL_SAVEPOINT: &str = "file:///fake/savepoints/initial/savepoint-000000-000000000042";
pub const INITIAL_VALUE: u64 = 1000;

/// Records each running job processes per round.
pub const PER_ROUND: u64 = 7;

/// Rounds [`World::settle`] allows before it gives up.
pub const MAX_ROUNDS: usize = 60;

pub fn deployment(name: &str) -> ResourceKey {
    ResourceKey::new(NS, Kind::FlinkDeployment, name)
}

pub fn session_job(name: &str) -> ResourceKey {
    ResourceKey::new(NS, Kind::FlinkSessionJob, name)
}

// ---------------------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------------------

/// Options of a test manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOpts {
    pub upgrade_mode: &'static str,
    pub state: &'static str,
    /// Stands for the program version: a change is an upgrade.
    pub version: String,
    pub parallelism: u32,
    pub savepoint_nonce: Option<i64>,
    pub checkpoint_nonce: Option<i64>,
    pub restart_nonce: Option<i64>,
    pub initial_savepoint_path: Option<String>,
    pub savepoint_redeploy_nonce: Option<i64>,
    /// `flinkVersion` of an application deployment.
    pub flink_version: &'static str,
    /// Extra `flinkConfiguration` lines (`key: "value"`).
    pub config: Vec<(String, String)>,
}

impl Default for JobOpts {
    fn default() -> Self {
        JobOpts {
            upgrade_mode: "savepoint",
            state: "running",
            version: "v1".to_string(),
            parallelism: 1,
            savepoint_nonce: None,
            checkpoint_nonce: None,
            restart_nonce: None,
            initial_savepoint_path: None,
            savepoint_redeploy_nonce: None,
            flink_version: "v2_3",
            config: Vec::new(),
        }
    }
}

impl JobOpts {
    pub fn mode(upgrade_mode: &'static str) -> JobOpts {
        JobOpts {
            upgrade_mode,
            ..JobOpts::default()
        }
    }

    fn job_yaml(&self) -> String {
        let mut s = format!(
            "  job:\n    jarURI: local:///opt/flink/usrlib/counter.jar\n    entryClass: lab.StatefulCounterJob\n    parallelism: {}\n    upgradeMode: {}\n    state: {}\n    args: [\"--version\", \"{}\"]\n",
            self.parallelism, self.upgrade_mode, self.state, self.version
        );
        if let Some(n) = self.savepoint_nonce {
            s.push_str(&format!("    savepointTriggerNonce: {n}\n"));
        }
        if let Some(n) = self.checkpoint_nonce {
            s.push_str(&format!("    checkpointTriggerNonce: {n}\n"));
        }
        if let Some(p) = &self.initial_savepoint_path {
            s.push_str(&format!("    initialSavepointPath: {p}\n"));
        }
        if let Some(n) = self.savepoint_redeploy_nonce {
            s.push_str(&format!("    savepointRedeployNonce: {n}\n"));
        }
        s
    }

    fn config_yaml(&self) -> String {
        self.config
            .iter()
            .map(|(k, v)| format!("    {k}: \"{v}\"\n"))
            .collect()
    }
}

fn dirs(name: &str) -> String {
    format!(
        "    state.savepoints.dir: {FAKE_STATE_ROOT}/savepoints/{NS}/{name}\n    execution.checkpointing.dir: {FAKE_STATE_ROOT}/checkpoints/{NS}/{name}\n"
    )
}

/// An application-mode FlinkDeployment.
pub fn app_yaml(name: &str, o: &JobOpts) -> String {
    let restart = o
        .restart_nonce
        .map(|n| format!("  restartNonce: {n}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  flinkVersion: {version}\n  serviceAccount: flink\n{restart}  flinkConfiguration:\n    taskmanager.numberOfTaskSlots: \"1\"\n{dirs}{extra}  jobManager:\n    resource: {{memory: 1g, cpu: 1}}\n  taskManager:\n    resource: {{memory: 1g, cpu: 1}}\n{job}",
        version = o.flink_version,
        dirs = dirs(name),
        extra = o.config_yaml(),
        job = o.job_yaml()
    )
}

/// A session cluster; `slots` stands for any change to it (an upgrade of the cluster).
pub fn session_cluster_yaml(name: &str, slots: u32) -> String {
    format!(
        "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  flinkVersion: v2_3\n  serviceAccount: flink\n  flinkConfiguration:\n    taskmanager.numberOfTaskSlots: \"{slots}\"\n{dirs}  jobManager:\n    resource: {{memory: 1g, cpu: 1}}\n  taskManager:\n    replicas: 1\n    resource: {{memory: 1g, cpu: 1}}\n",
        dirs = dirs(name)
    )
}

/// A FlinkSessionJob on session cluster `cluster`.
pub fn session_job_yaml(name: &str, cluster: &str, o: &JobOpts) -> String {
    let restart = o
        .restart_nonce
        .map(|n| format!("  restartNonce: {n}\n"))
        .unwrap_or_default();
    let config = if o.config.is_empty() {
        String::new()
    } else {
        format!("  flinkConfiguration:\n{}", o.config_yaml())
    };
    format!(
        "apiVersion: flink.apache.org/v1beta1\nkind: FlinkSessionJob\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  deploymentName: {cluster}\n{restart}{config}{job}",
        job = o.job_yaml()
    )
}

/// The in-memory Git branch: the files at the tip and a commit id per push.
#[derive(Debug)]
pub struct MemoryManifests {
    state: Mutex<(Revision, ManifestSet)>,
}

impl MemoryManifests {
    fn new() -> Self {
        MemoryManifests {
            state: Mutex::new((revision(0, "empty"), ManifestSet::default())),
        }
    }

    fn set(&self, revision: Revision, set: ManifestSet) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = (revision, set);
    }
}

impl ManifestSource for MemoryManifests {
    fn fetch(&self) -> Result<(Revision, ManifestSet), GitError> {
        Ok(self.state.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

fn revision(n: u64, summary: &str) -> Revision {
    Revision {
        reference: "main".to_string(),
        commit: format!("{:040x}", 0x00c0_ffee_0000_u64 + n),
        summary: summary.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Time and ids
// ---------------------------------------------------------------------------------------

/// A clock that moves only when told, ids from a counter (shared by every agent of a
/// world, as a restarted agent still gets fresh ids), and a fixed jitter.
#[derive(Debug)]
pub struct TestEnv {
    now_ms: AtomicU64,
    ids: AtomicU64,
}

impl TestEnv {
    fn new() -> Self {
        TestEnv {
            now_ms: AtomicU64::new(1_795_000_000_000),
            ids: AtomicU64::new(0),
        }
    }

    pub fn tick(&self, d: Duration) {
        self.now_ms
            .fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Environment for TestEnv {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    fn new_id(&self) -> String {
        let n = self.ids.fetch_add(1, Ordering::SeqCst) + 1;
        format!("a9e7{n:028x}")
    }

    fn jitter(&self) -> f64 {
        0.5
    }
}

// ---------------------------------------------------------------------------------------
// A status store that can hold the agent right after a write
// ---------------------------------------------------------------------------------------

/// The [`MemoryStatusStore`] with a gate: after the k-th write that changed a record, the
/// writer is held (the record is durable) until the gate opens, so a test can drop the
/// agent between a step's write-ahead facts and its I/O, as a crash there would.
pub struct GatedStore {
    pub inner: MemoryStatusStore,
    gate: Mutex<Option<u64>>,
    opened: std::sync::Condvar,
    writes: tokio::sync::watch::Sender<u64>,
}

impl GatedStore {
    fn new(inner: MemoryStatusStore) -> Self {
        let n = inner.log().len() as u64;
        GatedStore {
            inner,
            gate: Mutex::new(None),
            opened: std::sync::Condvar::new(),
            writes: tokio::sync::watch::Sender::new(n),
        }
    }

    /// Writes that changed a record so far.
    pub fn writes(&self) -> u64 {
        *self.writes.borrow()
    }

    /// The writer of the `k`-th write (and any later one) is held after writing.
    pub fn pause_after_write(&self, k: u64) {
        *self.gate.lock().unwrap_or_else(|e| e.into_inner()) = Some(k);
    }

    pub fn open_gate(&self) {
        *self.gate.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.opened.notify_all();
    }

    pub async fn wait_for_writes(&self, k: u64) {
        let mut rx = self.writes.subscribe();
        let _ = rx.wait_for(|n| *n >= k).await;
    }
}

impl flink_gitops::apply::executor::StatusStore for GatedStore {
    fn load(
        &self,
    ) -> Result<BTreeMap<ResourceKey, Record>, flink_gitops::apply::executor::StatusError> {
        flink_gitops::apply::executor::StatusStore::load(&self.inner)
    }

    fn write(
        &self,
        record: &Record,
        message: &str,
    ) -> Result<(), flink_gitops::apply::executor::StatusError> {
        flink_gitops::apply::executor::StatusStore::write(&self.inner, record, message)?;
        let n = self.inner.log().len() as u64;
        self.writes.send_replace(n);
        let mut gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        while gate.is_some_and(|k| n >= k) {
            gate = self.opened.wait(gate).unwrap_or_else(|e| e.into_inner());
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The world
// ---------------------------------------------------------------------------------------

/// How one round of reconciles ended for each resource.
pub type RoundResults = BTreeMap<ResourceKey, Result<Requeue, String>>;

/// The fake, the status store, the branch and the clock: everything an agent restart keeps.
/// Cheap to clone (shared handles).
#[derive(Clone)]
pub struct World {
    pub fake: FakeFlink,
    pub store: MemoryStatusStore,
    /// The store the agents write through (the same records).
    pub gated: Arc<GatedStore>,
    pub manifests: Arc<MemoryManifests>,
    pub env: Arc<TestEnv>,
    pub settings: AgentSettings,
    files: Arc<Mutex<BTreeMap<String, String>>>,
    pushes: Arc<AtomicU64>,
    /// Let time pass between rounds (pending operations complete, jobs advance and
    /// checkpoint). Off for tests that hold the world still.
    pub time_passes: bool,
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

impl World {
    pub fn new() -> World {
        let store = MemoryStatusStore::new();
        let fake = FakeFlink::new();
        fake.put_savepoint(INITIAL_SAVEPOINT, INITIAL_VALUE);
        World {
            fake,
            gated: Arc::new(GatedStore::new(store.clone())),
            store,
            manifests: Arc::new(MemoryManifests::new()),
            env: Arc::new(TestEnv::new()),
            settings: AgentSettings {
                interval: Duration::from_secs(60),
                fast_poll: Duration::from_millis(1),
                git_timeout: Duration::from_secs(10),
                // The stability window has its own scenarios; elsewhere a running job is
                // stable at once, as under the operator.
                stability_window: Duration::ZERO,
                ..AgentSettings::default()
            },
            files: Arc::new(Mutex::new(BTreeMap::new())),
            pushes: Arc::new(AtomicU64::new(0)),
            time_passes: true,
        }
    }

    /// A new agent on this world's store, fake, branch and clock.
    pub async fn agent(&self) -> Arc<FakeAgent> {
        self.agent_with(AgentHooks::default()).await
    }

    /// [`Self::agent`] reporting to `hooks` (metrics, notifications, fetch trigger).
    pub async fn agent_with(&self, hooks: AgentHooks) -> Arc<FakeAgent> {
        Agent::start_with(
            AgentParts {
                runtime: Arc::new(self.fake.clone()),
                flink: self.fake.clone(),
                storage: Arc::new(self.fake.clone()),
                manifests: self.manifests.clone(),
                status: self.gated.clone(),
                env: self.env.clone(),
            },
            self.settings.clone(),
            hooks,
        )
        .await
        .expect("the agent starts")
    }

    /// Sets (Some) or removes (None) files at the tip without committing.
    pub fn stage(&self, files: &[(&str, Option<String>)]) {
        let mut f = self.files.lock().unwrap_or_else(|e| e.into_inner());
        for (path, text) in files {
            match text {
                Some(t) => {
                    f.insert(path.to_string(), t.clone());
                }
                None => {
                    f.remove(*path);
                }
            }
        }
    }

    /// Commits the staged files plus `files`; returns the commit id. Panics on an invalid
    /// manifest (test manifests are valid).
    pub fn push(&self, files: &[(&str, Option<String>)]) -> String {
        self.stage(files);
        let n = self.pushes.fetch_add(1, Ordering::SeqCst) + 1;
        let f = self.files.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut set = parse_files(f.into_iter().map(|(p, t)| (p, t.into_bytes())).collect());
        set.validate(&Default::default());
        let errors: Vec<String> = set.errors().map(|d| d.to_string()).collect();
        assert!(errors.is_empty(), "test manifests are invalid: {errors:#?}");
        let rev = revision(n, &format!("push {n}"));
        let commit = rev.commit.clone();
        self.manifests.set(rev, set);
        commit
    }

    /// The commit at the tip.
    pub fn head(&self) -> String {
        self.manifests
            .fetch()
            .map(|(r, _)| r.commit)
            .unwrap_or_default()
    }

    /// How many `call`s after step `from` took effect.
    pub fn effective(&self, call: Call, from: u64) -> usize {
        self.calls_since(from)
            .iter()
            .filter(|c| c.call == call && c.took_effect())
            .count()
    }

    /// The spec Git wants for `key` now.
    pub fn desired(&self, key: &ResourceKey) -> Option<Spec> {
        self.manifests
            .fetch()
            .ok()
            .and_then(|(_, set)| set.get(key).map(|m| m.spec.clone()))
    }

    /// One round: fetch, reconcile every resource once (deployments first).
    pub async fn round(&self, agent: &FakeAgent) -> RoundResults {
        agent.sync().await.expect("the in-memory fetch works");
        let keys = agent.keys();
        let mut results = RoundResults::new();
        for kind in [Kind::FlinkDeployment, Kind::FlinkSessionJob] {
            for key in keys.iter().filter(|k| k.kind == kind) {
                let r = agent.reconcile(key).await;
                results.insert(key.clone(), r.map_err(|e: ReconcileError| e.to_string()));
            }
        }
        results
    }

    /// Fetch, then reconcile one resource.
    pub async fn reconcile(&self, agent: &FakeAgent, key: &ResourceKey) -> Result<Requeue, String> {
        agent.sync().await.expect("the in-memory fetch works");
        agent.reconcile(key).await.map_err(|e| e.to_string())
    }

    /// Time passes: pending operations complete, running jobs process [`PER_ROUND`]
    /// records and checkpoint, the clock moves a second.
    pub fn pass_time(&self) {
        if !self.time_passes {
            return;
        }
        self.fake.settle();
        self.fake.advance(PER_ROUND);
        self.fake.checkpoint_all();
        self.env.tick(Duration::from_secs(1));
    }

    /// Rounds until one in which every resource rests (`Idle`), none has a step in
    /// flight, and Flink saw no external step. Panics after [`MAX_ROUNDS`].
    pub async fn settle(&self, agent: &FakeAgent) -> usize {
        for n in 1..=MAX_ROUNDS {
            let steps = self.fake.steps();
            let results = self.round(agent).await;
            let quiet = self.fake.steps() == steps;
            let idle = results.values().all(|r| matches!(r, Ok(Requeue::Idle)));
            let in_flight = self.store_records().values().any(|r| r.in_flight.is_some());
            if quiet && idle && !in_flight {
                return n;
            }
            self.pass_time();
        }
        panic!(
            "the agent did not settle in {MAX_ROUNDS} rounds\nrecords: {:#?}\ncalls: {:#?}",
            self.store_records(),
            self.fake.calls()
        );
    }

    /// Exactly `n` rounds, whatever they end with; the last round's results.
    pub async fn rounds(&self, agent: &FakeAgent, n: usize) -> RoundResults {
        let mut last = RoundResults::new();
        for i in 0..n {
            last = self.round(agent).await;
            if i + 1 < n {
                self.pass_time();
            }
        }
        last
    }

    /// Drives `agent` (as [`Self::settle`]) until its `k`-th external step overall has
    /// taken effect, then drops it there, before it sees the answer. Returns false when the
    /// agent settled before making `k` steps (nothing was dropped).
    pub async fn run_until_step(&self, agent: Arc<FakeAgent>, k: u64) -> bool {
        self.run_until(agent, k, |_| false).await
    }

    /// As [`Self::run_until_step`], except that a step for which `let_through` holds is let
    /// through and the agent dropped after the next one instead.
    pub async fn run_until(
        &self,
        agent: Arc<FakeAgent>,
        k: u64,
        let_through: impl Fn(&CallRecord) -> bool,
    ) -> bool {
        let mut k = k;
        self.fake.pause_after_step(k);
        let world = self.clone();
        let mut task = tokio::spawn(async move {
            world.settle(&agent).await;
        });
        let killed = loop {
            tokio::select! {
                _ = self.fake.wait_for_steps(k) => {
                    let call = self.fake.calls().into_iter().find(|c| c.step == k);
                    if call.as_ref().is_some_and(&let_through) {
                        k += 1;
                        self.fake.pause_after_step(k);
                        continue;
                    }
                    task.abort();
                    let _ = (&mut task).await;
                    break true;
                }
                done = &mut task => {
                    if let Err(e) = done {
                        if e.is_panic() {
                            std::panic::resume_unwind(e.into_panic());
                        }
                    }
                    break false;
                }
            }
        };
        self.fake.open_gate();
        killed
    }

    /// Drives `agent` (as [`Self::settle`]) until its `k`-th record write overall is
    /// durable, then drops it there: the write-ahead facts of a step are on the branch, its
    /// I/O has not run. Returns false when the agent settled first.
    pub async fn run_until_write(&self, agent: Arc<FakeAgent>, k: u64) -> bool {
        self.gated.pause_after_write(k);
        let world = self.clone();
        let mut task = tokio::spawn(async move {
            world.settle(&agent).await;
        });
        let killed = tokio::select! {
            _ = self.gated.wait_for_writes(k) => {
                task.abort();
                let _ = (&mut task).await;
                true
            }
            done = &mut task => {
                if let Err(e) = done {
                    if e.is_panic() {
                        std::panic::resume_unwind(e.into_panic());
                    }
                }
                false
            }
        };
        // The held writer thread returns to nobody.
        self.gated.open_gate();
        killed
    }

    /// The records in the status store (what a restarted agent reads).
    pub fn store_records(&self) -> BTreeMap<ResourceKey, Record> {
        use flink_gitops::apply::executor::StatusStore;
        self.store.load().expect("the memory store loads")
    }

    pub fn record(&self, key: &ResourceKey) -> Record {
        self.store
            .get(key)
            .unwrap_or_else(|| panic!("no record for {key}"))
    }

    /// Mutating calls made after step `from`.
    pub fn calls_since(&self, from: u64) -> Vec<CallRecord> {
        self.fake
            .calls()
            .into_iter()
            .filter(|c| c.step > from)
            .collect()
    }

    /// The kinds of the mutating calls made after step `from` that took effect, jar
    /// uploads left out (part of a submission).
    pub fn call_kinds_since(&self, from: u64) -> Vec<Call> {
        self.calls_since(from)
            .into_iter()
            .filter(CallRecord::took_effect)
            .map(|c| c.call)
            .filter(|c| *c != Call::UploadJar)
            .collect()
    }

    // ----------------------------------------------------------------- jobs

    /// The cluster a resource's job runs on.
    pub fn cluster_of(&self, key: &ResourceKey) -> ResourceKey {
        match self.desired(key).or_else(|| {
            self.store
                .get(key)
                .and_then(|r| r.last_reconciled_spec.clone())
        }) {
            Some(Spec::SessionJob(s)) => deployment(s.deployment_name.as_deref().unwrap_or("")),
            _ => deployment(&key.name),
        }
    }

    /// Every job the resource ever had, oldest first (a session job's jobs carry its name).
    pub fn jobs_of(&self, key: &ResourceKey) -> Vec<FakeJob> {
        let cluster = self.cluster_of(key);
        self.fake
            .all_jobs()
            .into_iter()
            .filter(|j| j.cluster == cluster)
            .filter(|j| key.kind == Kind::FlinkDeployment || j.name == key.name)
            .collect()
    }

    /// The resource's jobs that run now.
    pub fn running(&self, key: &ResourceKey) -> Vec<FakeJob> {
        self.jobs_of(key)
            .into_iter()
            .filter(|j| j.live && j.state == JobStatus::Running)
            .collect()
    }

    /// The one job that runs for `key`; panics unless exactly one does.
    pub fn the_running_job(&self, key: &ResourceKey) -> FakeJob {
        let running = self.running(key);
        assert_eq!(
            running.len(),
            1,
            "{key}: exactly one running job expected, found {:#?}\ncalls: {:#?}",
            running,
            self.fake.calls()
        );
        running.into_iter().next().expect("one")
    }

    /// What is known about `key` before a change is pushed: the job that runs (else the
    /// newest job it had) and its value.
    pub fn lineage(&self, key: &ResourceKey) -> Lineage {
        let running = self.running(key);
        assert!(
            running.len() <= 1,
            "{key}: more than one job runs: {running:#?}"
        );
        let job = running
            .first()
            .cloned()
            .or_else(|| self.jobs_of(key).last().cloned());
        Lineage {
            key: key.clone(),
            job: job.as_ref().map(|j| j.id.clone()),
            value: job.as_ref().map(|j| j.value),
            jobs_before: self.jobs_of(key).len(),
            step: self.fake.steps(),
        }
    }

    /// The newest snapshot (savepoint or checkpoint, not deleted) a job wrote.
    pub fn newest_snapshot_of(&self, job: &JobId) -> Option<FakeSnapshot> {
        self.fake
            .snapshots()
            .into_iter()
            .filter(|s| s.job.as_ref() == Some(job) && !s.deleted)
            .max_by_key(|s| s.checkpoint_id)
    }

    // ----------------------------------------------------------------- checks

    /// The record is at rest: nothing in flight, no error, reachable, the spec Git wants
    /// reconciled, in lifecycle `state`.
    pub fn assert_at_rest(&self, key: &ResourceKey, state: LifecycleState) -> Record {
        let r = self.record(key);
        assert_eq!(r.in_flight, None, "{key}: in flight: {r:#?}");
        assert_eq!(r.unreachable, None, "{key}: unreachable: {r:#?}");
        assert_eq!(r.last_error, None, "{key}: error: {r:#?}");
        assert_eq!(r.lifecycle_state, state, "{key}: {r:#?}");
        if let Some(want) = self.desired(key) {
            assert_eq!(
                r.last_reconciled_hash.as_ref(),
                Some(&want.hash()),
                "{key}: the spec in Git is not the one reconciled"
            );
        }
        r
    }

    /// The resource runs exactly one job, the one its record names, the record is STABLE,
    /// and the fake saw nothing a real cluster would punish.
    pub fn assert_running(&self, key: &ResourceKey) -> FakeJob {
        self.assert_running_in(key, LifecycleState::Stable)
    }

    /// [`Self::assert_running`] with the record in lifecycle `state` (e.g. ROLLED_BACK).
    pub fn assert_running_in(&self, key: &ResourceKey, state: LifecycleState) -> FakeJob {
        assert_eq!(self.fake.violations(), Vec::<String>::new(), "violations");
        let job = self.the_running_job(key);
        let r = self.assert_at_rest(key, state);
        assert_eq!(
            r.job_id.as_deref(),
            Some(job.id.as_str()),
            "{key}: record names another job"
        );
        assert_eq!(r.job_state, Some(JobStatus::Running));
        job
    }
}

/// A resource's job and state value when a change was pushed.
#[derive(Debug, Clone)]
pub struct Lineage {
    pub key: ResourceKey,
    /// The job that ran.
    pub job: Option<JobId>,
    /// Its state value then.
    pub value: Option<u64>,
    pub jobs_before: usize,
    /// The fake's step count then.
    pub step: u64,
}

/// How the job after a change must have started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The same job keeps running (no restart).
    SameJob,
    /// A new job, restored from the savepoint the stop took.
    FromSavepoint,
    /// A new job, restored from the newest checkpoint of the job before.
    FromCheckpoint,
    /// A new job without state.
    Empty,
}

impl Lineage {
    /// After the change: exactly one job runs; it started as `expect` says; a restored job
    /// starts from the newest snapshot of the job before (its value at that snapshot, and
    /// at least the value seen when the change was pushed): counts continue, nothing lost.
    pub fn assert_continues(&self, world: &World, expect: Expect) -> FakeJob {
        self.assert_continues_in(world, expect, LifecycleState::Stable)
    }

    /// [`Self::assert_continues`] with the record in lifecycle `state` (e.g. ROLLED_BACK).
    pub fn assert_continues_in(
        &self,
        world: &World,
        expect: Expect,
        state: LifecycleState,
    ) -> FakeJob {
        let job = world.assert_running_in(&self.key, state);
        let before = self.job.clone().expect("a job ran before the change");
        let seen = self.value.unwrap_or(0);
        match expect {
            Expect::SameJob => {
                assert_eq!(job.id, before, "{}: the job was restarted", self.key);
                assert!(job.value >= seen);
                return job;
            }
            Expect::Empty => {
                assert_ne!(job.id, before);
                assert_eq!(
                    job.restored_from, None,
                    "{}: a stateless start restored state",
                    self.key
                );
                return job;
            }
            _ => {}
        }
        assert_ne!(job.id, before, "{}: no new job", self.key);
        let restored = job
            .restored_from
            .clone()
            .unwrap_or_else(|| panic!("{}: the new job started without state", self.key));
        let old = world.fake.job(&before).expect("the job before");
        let newest = world
            .newest_snapshot_of(&before)
            .expect("the job before wrote a snapshot");
        assert_eq!(
            flink_gitops_location(&restored.location),
            newest.location,
            "{}: not restored from the newest snapshot of the job before",
            self.key
        );
        assert_eq!(
            restored.is_savepoint,
            expect == Expect::FromSavepoint,
            "{}: restored from {restored:?}",
            self.key
        );
        assert_eq!(
            restored.value, old.value,
            "{}: state lost: the job before ended at {} and the new one started at {}",
            self.key, old.value, restored.value
        );
        assert!(restored.value >= seen, "{}: counts went back", self.key);
        let r = world.record(&self.key);
        assert_eq!(
            r.restore_path.as_deref().map(flink_gitops_location),
            Some(newest.location.clone()),
            "{}: the record's restore point",
            self.key
        );
        job
    }
}

/// A location as the fake keys it (`file:/...`).
pub fn flink_gitops_location(l: &str) -> String {
    super::fake_flink::normalize_location(l)
}

// ---------------------------------------------------------------------------------------
// Crash matrices
// ---------------------------------------------------------------------------------------

/// Files a push sets (`Some`) or removes (`None`).
pub type Push = Vec<(String, Option<String>)>;

pub fn file(path: &str, text: String) -> (String, Option<String>) {
    (path.to_string(), Some(text))
}

pub fn removed(path: &str) -> (String, Option<String>) {
    (path.to_string(), None)
}

/// Rounds the world runs after each push of a history settles (jobs process records and
/// checkpoint in them).
pub const RUN_BETWEEN: usize = 3;

impl World {
    pub fn push_files(&self, push: &Push) -> String {
        let files: Vec<(&str, Option<String>)> =
            push.iter().map(|(p, t)| (p.as_str(), t.clone())).collect();
        self.push(&files)
    }

    /// A fresh world brought through `history` by one agent: each push settled, then
    /// [`RUN_BETWEEN`] rounds of running.
    pub async fn replay(history: &[Push]) -> (World, Arc<FakeAgent>) {
        let w = World::new();
        let agent = w.agent().await;
        for push in history {
            w.push_files(push);
            w.settle(&agent).await;
            w.rounds(&agent, RUN_BETWEEN).await;
            w.pass_time();
        }
        (w, agent)
    }
}

/// Where a crash matrix stopped the agent.
#[derive(Debug, Clone)]
pub struct Crash {
    /// Dropped after this external step of the change (1-based); 0: not dropped;
    /// `u64::MAX - k`: after the k-th record write; `u64::MAX`: a new agent per step.
    pub after_step: u64,
    /// The call it had just made.
    pub call: Option<CallRecord>,
}

/// Runs `change` after `history` and checks the end with `check`: once with one agent
/// throughout, then once per external step k of that run with the agent dropped right
/// after step k and a new agent started on the same store and fake, once per record write
/// k with the agent dropped right after it (write-ahead facts durable, the step's I/O not
/// run), and once with every agent dropped after its first new step (a new agent per
/// step). `check` gets the world, the
/// lineages of `keys` taken before the change was pushed, and the crash. Returns the
/// number of external steps the change took without crashes.
pub async fn crash_matrix(
    history: &[Push],
    change: &Push,
    keys: &[ResourceKey],
    check: impl Fn(&World, &[Lineage], &Crash),
) -> u64 {
    crash_matrix_in(Dims::ALL, history, change, keys, check).await
}

/// Which crashes a matrix tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Dropped once after each external step.
    pub steps: bool,
    /// Dropped once after each record write.
    pub writes: bool,
    /// A new agent for every new step.
    pub per_step: bool,
}

impl Dims {
    pub const ALL: Dims = Dims {
        steps: true,
        writes: true,
        per_step: true,
    };
    /// Crashes after external steps only.
    pub const STEPS: Dims = Dims {
        steps: true,
        writes: false,
        per_step: true,
    };
    /// Crashes after record writes only.
    pub const WRITES: Dims = Dims {
        steps: false,
        writes: true,
        per_step: false,
    };
}

/// [`crash_matrix`] with a choice of crashes (the run without a crash always happens).
pub async fn crash_matrix_in(
    dims: Dims,
    history: &[Push],
    change: &Push,
    keys: &[ResourceKey],
    check: impl Fn(&World, &[Lineage], &Crash),
) -> u64 {
    crash_matrix_with(dims, history, |_| {}, change, keys, check).await
}

/// [`crash_matrix_in`] with `prepare` run on each world after the history and before the
/// change is pushed (e.g. to make the new version's jobs fail).
pub async fn crash_matrix_with(
    dims: Dims,
    history: &[Push],
    prepare: impl Fn(&World),
    change: &Push,
    keys: &[ResourceKey],
    check: impl Fn(&World, &[Lineage], &Crash),
) -> u64 {
    // Without a crash.
    let (w, agent) = World::replay(history).await;
    prepare(&w);
    let lineages: Vec<Lineage> = keys.iter().map(|k| w.lineage(k)).collect();
    let start = w.fake.steps();
    let start_writes = w.gated.writes();
    w.push_files(change);
    w.settle(&agent).await;
    let total = w.fake.steps() - start;
    let total_writes = w.gated.writes() - start_writes;
    eprintln!(
        "without a crash: {:?}",
        w.calls_since(start)
            .iter()
            .map(|c| c.call)
            .collect::<Vec<_>>()
    );
    check(
        &w,
        &lineages,
        &Crash {
            after_step: 0,
            call: None,
        },
    );

    // Dropped after step k, once.
    for k in (1..=total).filter(|_| dims.steps) {
        let (w, agent) = World::replay(history).await;
        prepare(&w);
        let lineages: Vec<Lineage> = keys.iter().map(|k| w.lineage(k)).collect();
        let start = w.fake.steps();
        w.push_files(change);
        let killed = w.run_until_step(agent, start + k).await;
        assert!(killed, "the replay did not reach step {k} of {total}");
        let call = w.calls_since(start).into_iter().nth((k - 1) as usize);
        eprintln!("dropped after step {k}: {call:?}");
        let restarted = w.agent().await;
        w.settle(&restarted).await;
        check(
            &w,
            &lineages,
            &Crash {
                after_step: k,
                call,
            },
        );
    }

    // Dropped after the k-th record write: between a step's write-ahead facts and its I/O
    // (or between its I/O and the next step).
    for k in (1..=total_writes).filter(|_| dims.writes) {
        let (w, agent) = World::replay(history).await;
        prepare(&w);
        let lineages: Vec<Lineage> = keys.iter().map(|k| w.lineage(k)).collect();
        let writes = w.gated.writes();
        w.push_files(change);
        let killed = w.run_until_write(agent, writes + k).await;
        assert!(
            killed,
            "the replay did not reach write {k} of {total_writes}"
        );
        let message = w.store.log().get((writes + k - 1) as usize).cloned();
        eprintln!("dropped after write {k}: {message:?}");
        let restarted = w.agent().await;
        w.settle(&restarted).await;
        check(
            &w,
            &lineages,
            &Crash {
                after_step: u64::MAX - k,
                call: None,
            },
        );
    }

    // A new agent for every step.
    if !dims.per_step {
        return total;
    }
    let (w, agent) = World::replay(history).await;
    prepare(&w);
    let lineages: Vec<Lineage> = keys.iter().map(|k| w.lineage(k)).collect();
    let start = w.fake.steps();
    w.push_files(change);
    drop(agent);
    let mut agents = 0;
    // Each agent is dropped after its first step that is new: not a jar upload (an agent
    // dropped after every upload would never submit), and not the very call its
    // predecessor was dropped after (an idempotent call repeated after a restart).
    let mut last: Option<CallRecord> = None;
    loop {
        agents += 1;
        assert!(agents < 4 * (total as usize) + 10, "no end to the restarts");
        let agent = w.agent().await;
        let previous = last.clone();
        let repeat = move |c: &CallRecord| {
            c.call == Call::UploadJar
                || previous.as_ref().is_some_and(|p| {
                    (p.call, &p.cluster, &p.job, &p.detail)
                        == (c.call, &c.cluster, &c.job, &c.detail)
                })
        };
        if !w.run_until(agent, w.fake.steps() + 1, repeat).await {
            break;
        }
        last = w.fake.calls().last().cloned();
    }
    eprintln!(
        "an agent per step ({agents} agents): {:?}",
        w.calls_since(start)
            .iter()
            .map(|c| c.call)
            .collect::<Vec<_>>()
    );
    let last = w.calls_since(start).last().cloned();
    check(
        &w,
        &lineages,
        &Crash {
            after_step: u64::MAX,
            call: last,
        },
    );
    total
}
