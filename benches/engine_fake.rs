//! The agent's engine at scale, against the fake Flink served over HTTP on loopback.
//!
//! 500 resources (400 application FlinkDeployments, 20 session clusters, 80 FlinkSessionJobs,
//! four per session cluster) in an in-memory branch ([`ManifestSource`], built with
//! `parse_files` + `validate`), the real [`Agent`] with [`HttpFlink`] (the real
//! `FlinkRestClient` over HTTP), a [`MemoryStatusStore`], the system clock and ids. The fake
//! Flink (`tests/harness/fake_flink.rs`) is also the runtime (clusters are in its model) and
//! the snapshot storage; its REST API is served by `tests/harness/fake_http.rs` on
//! 127.0.0.1 from a thread of its own, so its CPU time can be told apart from the agent's;
//! its accept backlog is raised from tokio's 128 to 4096 (as Flink's Netty server on Linux),
//! so that 500 connections opened at once are not turned away and retried a second later.
//!
//! Figures (each on its own line; nothing is asserted on time):
//!
//! * **(a) one steady cycle**: every resource reconciled once with nothing to do, wall time
//!   and CPU time (`getrusage(RUSAGE_SELF)` delta, with the fake server thread's share from
//!   its CPU clock), two ways: sequential (`Agent::run_once`, as `run --once`) and
//!   concurrent (a fetch, then every `Agent::reconcile` spawned at once, as `Agent::run`
//!   does when a fetch wakes every resource). Each against a baseline in the same run, cycles
//!   interleaved (agent, baseline, agent, ...): the REST calls one steady cycle makes
//!   (`GET /overview` per resource, `GET /jobs/overview` per resource with a job; the agent's
//!   counts are checked against the fake's counters) made directly with one
//!   `FlinkRestClient` per cluster, sequentially or all at once. Min / median / max and the
//!   ratio of medians.
//! * **(a') the drift check's cost**: the same sequential steady cycle with drift checking
//!   on (policy report, the default) and off (ignore), two agents on the same records,
//!   interleaved: the calls each makes, and the ratio of their wall and CPU medians.
//! * **(b) memory**: this process's RSS before the agent starts (fake, HTTP server, parsed
//!   manifests in place) and its peak RSS in each phase (`VmHWM`, reset with
//!   `/proc/self/clear_refs` at the start of each phase); the agent's peak is the largest.
//!   `ru_maxrss` is printed too, but Linux also counts in it the RSS the parent had when it
//!   forked this process (cargo's, ~70 MiB, under `cargo bench`). The fake's own model of
//!   420 clusters and 480 jobs lives in the same process and is part of the peak.
//! * **(c) push to first action**: under the real controller (`Agent::run`, short interval),
//!   a new revision changing one idle application (`app-250`) is pushed and the time until
//!   the fake logs the first external call on that resource (its stop-with-savepoint) is
//!   taken (the fake's step counter, watched from a thread of its own). With nothing else in
//!   flight (half the pushes before, half after the other condition, so both see the machine
//!   at about the same times), and while 100 other applications (`app-300` to `app-399`,
//!   after the pushed one in key order, so that the same resources at rest precede it when a
//!   fetch wakes them all) are mid-upgrade (their stop-with-savepoint held IN_PROGRESS by
//!   `hold_operations`, so they poll every fast poll). Reported from the push (includes waiting for the next fetch, 0 to one
//!   interval) and from the fetch that first returned the revision (the engine's reaction
//!   alone); min / median / max and the ratio of medians; plus the process's CPU use and
//!   REST request rate in each condition.
//!
//! Run with `cargo bench --bench engine_fake`. Environment: `ENGINE_FAKE_CYCLES` (steady
//! cycles per kind, default 7), `ENGINE_FAKE_TRIALS` (pushes per condition, default 10),
//! `ENGINE_FAKE_INTERVAL_MS` (the controller's interval, default 10000: shorter than the
//! agent's 15 s, yet long enough for the agent to reconcile 500 resources per interval on two
//! shared cores),
//! `ENGINE_FAKE_FAST_POLL_MS` (default 100, the agent's default).

#[path = "../tests/harness/fake_flink.rs"]
mod fake_flink;
#[path = "../tests/harness/fake_http.rs"]
mod fake_http;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flink_gitops::apply::executor::{
    Agent, AgentParts, AgentSettings, ManifestSource, MemoryStatusStore, Requeue, SystemEnvironment,
};
use flink_gitops::apply::runtime::Runtime;
use flink_gitops::flink::lifecycle::drift::DriftPolicy;
use flink_gitops::flink::lifecycle::record::LifecycleState;
use flink_gitops::flink::rest::{FlinkRestClient, HttpFlink};
use flink_gitops::flink::spec::{validate, Kind, ManifestSet, ResourceKey};
use flink_gitops::git::source::{parse_files, GitError, Revision};

use fake_flink::{Call, FakeFlink, FAKE_STATE_ROOT};
use fake_http::FakeHttp;

const NS: &str = "default";
const APPS: usize = 400;
const SESSIONS: usize = 20;
const JOBS_PER_SESSION: usize = 4;
const IN_FLIGHT: usize = 100;
/// The resource pushed in (c): idle in both conditions, in the middle of the key order.
const PUSHED: usize = 250;

type BenchAgent = Agent<FakeFlink, HttpFlink>;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------
// Process measurements
// ---------------------------------------------------------------------------------------

fn rusage() -> libc::rusage {
    // SAFETY: an all-zero rusage is a valid value; getrusage fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: usage is valid for writes.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    usage
}

/// User + system CPU time of this process so far.
fn cpu_self() -> Duration {
    let u = rusage();
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Peak RSS of this process so far, in KiB.
fn maxrss_kib() -> u64 {
    rusage().ru_maxrss as u64
}

/// A `/proc/self/status` field in KiB (`VmRSS`: now; `VmHWM`: the peak of this process
/// image, which unlike `ru_maxrss` does not carry the RSS the parent (cargo) had when it
/// forked this process).
fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn rss_now_kib() -> u64 {
    proc_status_kib("VmRSS:")
}

fn hwm_kib() -> u64 {
    proc_status_kib("VmHWM:")
}

/// Peak RSS of each phase: `VmHWM` is reset (`/proc/self/clear_refs` 5) when a phase starts
/// and read when it ends.
struct Peaks {
    resettable: bool,
    phases: Vec<(String, u64)>,
}

impl Peaks {
    fn new() -> Peaks {
        Peaks {
            resettable: false,
            phases: Vec::new(),
        }
    }

    fn start(&mut self) {
        self.resettable = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    }

    fn end(&mut self, phase: &str) {
        self.phases.push((phase.to_string(), hwm_kib()));
    }

    fn max(&self) -> u64 {
        self.phases.iter().map(|(_, k)| *k).max().unwrap_or(0)
    }
}

/// `TcpExtListenOverflows` of this network namespace: connections a listener's full accept
/// queue turned away (the client retries after a second).
fn listen_overflows() -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    if lines.len() < 2 {
        return 0;
    }
    let names = lines[0].split_whitespace();
    let values = lines[1].split_whitespace();
    names
        .zip(values)
        .find(|(n, _)| *n == "ListenOverflows")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Raises the accept backlog of the listening socket on 127.0.0.1:`port` to 4096 (what
/// Flink's Netty REST server asks for on Linux). `FakeHttp` binds with tokio's default of
/// 128, which 500 connections opened at once overflow: the turned-away clients retry after
/// a second, which would be measured as the agent's or the baseline's time.
fn widen_backlog(port: u16) -> bool {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    for fd in fds
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        // SAFETY: an all-zero sockaddr_in is valid; getsockname writes at most `len` bytes.
        let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: addr and len are valid for writes; a non-socket fd only returns an error.
        let rc = unsafe {
            libc::getsockname(fd, (&mut addr as *mut libc::sockaddr_in).cast(), &mut len)
        };
        if rc != 0 || addr.sin_family != libc::AF_INET as libc::sa_family_t {
            continue;
        }
        if u16::from_be(addr.sin_port) != port {
            continue;
        }
        let mut accepting: libc::c_int = 0;
        let mut olen = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: accepting and olen are valid for writes.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ACCEPTCONN,
                (&mut accepting as *mut libc::c_int).cast(),
                &mut olen,
            )
        };
        if rc != 0 || accepting == 0 {
            continue;
        }
        // SAFETY: listen on a listening socket only changes its backlog.
        return unsafe { libc::listen(fd, 4096) } == 0;
    }
    false
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// CPU time of one thread, by its CPU clock.
fn thread_cpu(clock: libc::clockid_t) -> Duration {
    // SAFETY: an all-zero timespec is valid; clock_gettime fills it in.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: ts is valid for writes; the clock belongs to a live thread.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime: {}", std::io::Error::last_os_error());
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn load_average() -> String {
    let mut load = [0f64; 3];
    // SAFETY: getloadavg writes at most 3 doubles into the buffer it is given.
    let got = unsafe { libc::getloadavg(load.as_mut_ptr(), 3) };
    if got >= 1 {
        format!("{:.2}", load[0])
    } else {
        "unknown".to_string()
    }
}

// ---------------------------------------------------------------------------------------
// The fake's HTTP server and step clock, each on a thread of its own
// ---------------------------------------------------------------------------------------

/// [`FakeHttp`] on a current-thread runtime in its own OS thread.
struct Server {
    base: String,
    clock: libc::clockid_t,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(fake: &FakeFlink) -> Server {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let fake = fake.clone();
        let thread = std::thread::Builder::new()
            .name("fake-flink-http".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("server runtime");
                rt.block_on(async move {
                    let server = FakeHttp::start(&fake).await;
                    let mut clock: libc::clockid_t = 0;
                    // SAFETY: pthread_self is this live thread; clock is valid for writes.
                    let rc =
                        unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
                    assert_eq!(rc, 0, "pthread_getcpuclockid");
                    tx.send((server.base_url().to_string(), clock))
                        .expect("send");
                    let _ = stopped.await;
                    drop(server);
                });
            })
            .expect("server thread");
        let (base, clock) = rx.recv().expect("the fake's HTTP server starts");
        let port: u16 = base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("server port");
        assert!(
            widen_backlog(port),
            "could not raise the fake server's accept backlog"
        );
        Server {
            base,
            clock,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn cpu(&self) -> Duration {
        thread_cpu(self.clock)
    }

    fn url(&self, cluster: &ResourceKey) -> String {
        format!("{}/{}/{}", self.base, cluster.namespace, cluster.name)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// When each step count was first seen: a thread of its own waits on the fake's step
/// counter, so the time of an external call does not depend on the agent's runtime.
struct StepClock {
    times: Arc<Mutex<Vec<(u64, Instant)>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StepClock {
    fn start(fake: &FakeFlink) -> StepClock {
        let times = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let mut rx = fake.subscribe_steps();
        let t = times.clone();
        let thread = std::thread::Builder::new()
            .name("step-clock".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("step clock runtime");
                rt.block_on(async move {
                    loop {
                        tokio::select! {
                            changed = rx.changed() => {
                                if changed.is_err() {
                                    return;
                                }
                                let now = Instant::now();
                                let step = *rx.borrow_and_update();
                                t.lock().unwrap_or_else(|e| e.into_inner()).push((step, now));
                            }
                            _ = &mut stopped => return,
                        }
                    }
                });
            })
            .expect("step clock thread");
        StepClock {
            times,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// When the step counter first reached `step`.
    fn time_of(&self, step: u64) -> Option<Instant> {
        self.times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(s, _)| *s >= step)
            .map(|(_, t)| *t)
    }
}

impl Drop for StepClock {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Manifests and the in-memory branch
// ---------------------------------------------------------------------------------------

fn app_name(i: usize) -> String {
    format!("app-{i:03}")
}

fn session_name(s: usize) -> String {
    format!("session-{s:02}")
}

fn session_job_name(s: usize, j: usize) -> String {
    format!("sj-{s:02}-{j}")
}

fn dirs(name: &str) -> String {
    format!(
        "    state.savepoints.dir: {FAKE_STATE_ROOT}/savepoints/{NS}/{name}\n    execution.checkpointing.dir: {FAKE_STATE_ROOT}/checkpoints/{NS}/{name}\n"
    )
}

fn job_yaml(version: u32) -> String {
    format!(
        "  job:\n    jarURI: local:///opt/flink/usrlib/counter.jar\n    entryClass: lab.StatefulCounterJob\n    parallelism: 1\n    upgradeMode: savepoint\n    state: running\n    args: [\"--version\", \"v{version}\"]\n"
    )
}

fn app_yaml(name: &str, version: u32) -> String {
    format!(
        "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  flinkVersion: v2_3\n  serviceAccount: flink\n  flinkConfiguration:\n    taskmanager.numberOfTaskSlots: \"1\"\n{dirs}  jobManager:\n    resource: {{memory: 1g, cpu: 1}}\n  taskManager:\n    resource: {{memory: 1g, cpu: 1}}\n{job}",
        dirs = dirs(name),
        job = job_yaml(version)
    )
}

fn session_yaml(name: &str) -> String {
    format!(
        "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  flinkVersion: v2_3\n  serviceAccount: flink\n  flinkConfiguration:\n    taskmanager.numberOfTaskSlots: \"{JOBS_PER_SESSION}\"\n{dirs}  jobManager:\n    resource: {{memory: 1g, cpu: 1}}\n  taskManager:\n    replicas: 1\n    resource: {{memory: 1g, cpu: 1}}\n",
        dirs = dirs(name)
    )
}

fn session_job_yaml(name: &str, cluster: &str, version: u32) -> String {
    format!(
        "apiVersion: flink.apache.org/v1beta1\nkind: FlinkSessionJob\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  deploymentName: {cluster}\n{job}",
        job = job_yaml(version)
    )
}

fn app_file(i: usize) -> String {
    format!("apps/{}.yaml", app_name(i))
}

fn app_key(i: usize) -> ResourceKey {
    ResourceKey::new(NS, Kind::FlinkDeployment, app_name(i))
}

/// Every file of the repository at version 1.
fn initial_files() -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for i in 0..APPS {
        files.insert(app_file(i), app_yaml(&app_name(i), 1));
    }
    for s in 0..SESSIONS {
        let cluster = session_name(s);
        files.insert(format!("sessions/{cluster}.yaml"), session_yaml(&cluster));
        for j in 0..JOBS_PER_SESSION {
            let name = session_job_name(s, j);
            files.insert(
                format!("sessions/{cluster}/{name}.yaml"),
                session_job_yaml(&name, &cluster, 1),
            );
        }
    }
    files
}

/// The branch: files at the tip, a commit per push, and when a fetch first returned each
/// commit.
struct Branch {
    files: Mutex<BTreeMap<String, String>>,
    tip: Mutex<(Revision, ManifestSet)>,
    pushes: AtomicU64,
    first_seen: Mutex<BTreeMap<String, Instant>>,
    options: validate::Options,
}

impl Branch {
    fn new(options: validate::Options) -> Branch {
        Branch {
            files: Mutex::new(BTreeMap::new()),
            tip: Mutex::new((revision(0), ManifestSet::default())),
            pushes: AtomicU64::new(0),
            first_seen: Mutex::new(BTreeMap::new()),
            options,
        }
    }

    /// Commits `changes` on top of the tip; returns the commit and the moment it became the
    /// tip (after parsing, which a real push does not make the agent pay for).
    fn push(&self, changes: Vec<(String, String)>) -> (String, Instant) {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files.extend(changes);
        let mut set = parse_files(
            files
                .iter()
                .map(|(p, t)| (p.clone(), t.clone().into_bytes()))
                .collect(),
        );
        set.validate(&self.options);
        let errors: Vec<String> = set.errors().map(|d| d.to_string()).collect();
        assert!(
            errors.is_empty(),
            "bench manifests are invalid: {errors:#?}"
        );
        let n = self.pushes.fetch_add(1, Ordering::SeqCst) + 1;
        let rev = revision(n);
        let commit = rev.commit.clone();
        let at = Instant::now();
        *self.tip.lock().unwrap_or_else(|e| e.into_inner()) = (rev, set);
        (commit, at)
    }

    fn first_seen(&self, commit: &str) -> Option<Instant> {
        self.first_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(commit)
            .copied()
    }
}

fn revision(n: u64) -> Revision {
    Revision {
        reference: "main".to_string(),
        commit: format!("{:040x}", 0xbe_0000_u64 + n),
        summary: format!("push {n}"),
    }
}

impl ManifestSource for Branch {
    fn fetch(&self) -> Result<(Revision, ManifestSet), GitError> {
        let tip = self.tip.lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.first_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(tip.0.commit.clone())
            .or_insert_with(Instant::now);
        Ok(tip)
    }
}

// ---------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Duration,
    server: Duration,
}

impl Sample {
    /// CPU time outside the fake's HTTP server thread.
    fn client(&self) -> Duration {
        self.cpu.saturating_sub(self.server)
    }
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// `median X ms (min Y, max Z)`.
fn spread(v: &[Duration]) -> String {
    let min = v.iter().min().copied().unwrap_or_default();
    let max = v.iter().max().copied().unwrap_or_default();
    format!(
        "median {} ms (min {}, max {})",
        ms(median(v)),
        ms(min),
        ms(max)
    )
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

const REST_CALLS: &[Call] = &[
    Call::ClusterOverview,
    Call::JobsOverview,
    Call::JobDetails,
    Call::JobExceptions,
    Call::Cancel,
    Call::Stop,
    Call::TriggerSavepoint,
    Call::SavepointStatus,
    Call::TriggerCheckpoint,
    Call::CheckpointStatus,
    Call::Checkpoints,
    Call::UploadJar,
    Call::RunJar,
    Call::SetParallelism,
    Call::ResourceRequirements,
    Call::JobManagerConfig,
    Call::OtherRest,
];

const ALL_CALLS: &[Call] = &[
    Call::DeployCluster,
    Call::DeleteCluster,
    Call::ObserveCluster,
    Call::RestUrl,
    Call::FetchJar,
    Call::ClusterOverview,
    Call::JobsOverview,
    Call::JobDetails,
    Call::JobExceptions,
    Call::Cancel,
    Call::Stop,
    Call::TriggerSavepoint,
    Call::SavepointStatus,
    Call::TriggerCheckpoint,
    Call::CheckpointStatus,
    Call::Checkpoints,
    Call::UploadJar,
    Call::RunJar,
    Call::SetParallelism,
    Call::ResourceRequirements,
    Call::JobManagerConfig,
    Call::OtherRest,
];

fn counts(fake: &FakeFlink) -> BTreeMap<Call, u64> {
    ALL_CALLS
        .iter()
        .map(|c| (*c, fake.call_count(*c)))
        .collect()
}

fn delta(after: &BTreeMap<Call, u64>, before: &BTreeMap<Call, u64>) -> BTreeMap<Call, u64> {
    after
        .iter()
        .map(|(c, n)| (*c, n - before.get(c).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn rest_requests(fake: &FakeFlink) -> u64 {
    REST_CALLS.iter().map(|c| fake.call_count(*c)).sum()
}

// ---------------------------------------------------------------------------------------
// The bench
// ---------------------------------------------------------------------------------------

struct Bench {
    fake: FakeFlink,
    server: Server,
    steps: StepClock,
    branch: Arc<Branch>,
    store: MemoryStatusStore,
}

impl Bench {
    async fn measure<T, Fut: std::future::Future<Output = T>>(
        &self,
        f: impl FnOnce() -> Fut,
    ) -> (Sample, T) {
        let (c0, s0, t0) = (cpu_self(), self.server.cpu(), Instant::now());
        let out = f().await;
        let wall = t0.elapsed();
        let (c1, s1) = (cpu_self(), self.server.cpu());
        (
            Sample {
                wall,
                cpu: c1 - c0,
                server: s1 - s0,
            },
            out,
        )
    }

    /// Whether every resource rests: a record, nothing in flight, STABLE.
    fn all_at_rest(&self, keys: &[ResourceKey]) -> bool {
        keys.iter().all(|k| {
            self.store.get(k).is_some_and(|r| {
                r.in_flight.is_none() && r.derive_lifecycle() == LifecycleState::Stable
            })
        })
    }

    /// Waits until the fake saw no external step for `quiet`.
    async fn quiet_for(&self, quiet: Duration) {
        let mut last = self.fake.steps();
        let mut since = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            assert!(Instant::now() < deadline, "the fake never went quiet");
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = self.fake.steps();
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                return;
            }
        }
    }

    /// Pushes a new version of application `i` under the running controller; returns
    /// (push to first action, fetch to first action). Waits until the upgrade is done.
    async fn push_trial(&self, i: usize, version: u32) -> (Duration, Duration) {
        let key = app_key(i);
        let cluster = format!("{NS}/{}", app_name(i));
        let from = self.fake.calls().len();
        let (commit, pushed) = self
            .branch
            .push(vec![(app_file(i), app_yaml(&app_name(i), version))]);
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut seen_steps = self.fake.steps();
        let step = loop {
            assert!(
                Instant::now() < deadline,
                "no action on {key} after the push"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
            let now = self.fake.steps();
            if now == seen_steps {
                continue;
            }
            seen_steps = now;
            if let Some(c) = self.fake.calls()[from..]
                .iter()
                .find(|c| c.cluster == cluster)
            {
                break c.step;
            }
        };
        let acted = loop {
            if let Some(t) = self.steps.time_of(step) {
                break t;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let seen = self
            .branch
            .first_seen(&commit)
            .expect("the agent fetched the push");
        // The upgrade finishes before the next trial.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            assert!(
                Instant::now() < deadline,
                "{key} did not finish its upgrade"
            );
            let done = self.store.get(&key).is_some_and(|r| {
                r.in_flight.is_none()
                    && r.derive_lifecycle() == LifecycleState::Stable
                    && r.last_reconciled_revision.as_deref() == Some(commit.as_str())
            });
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (
            acted.saturating_duration_since(pushed),
            acted.saturating_duration_since(seen),
        )
    }
}

/// Pushes of one condition of (c), and what the process did meanwhile.
#[derive(Default)]
struct Block {
    push: Vec<Duration>,
    fetch: Vec<Duration>,
    wall: Duration,
    cpu: Duration,
    rest: u64,
    observations: u64,
    overflows: u64,
}

impl Block {
    fn cores(&self) -> f64 {
        ratio(self.cpu, self.wall)
    }

    fn per_second(&self, n: u64) -> f64 {
        n as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

impl Bench {
    /// `n` pushes of a new version of application [`PUSHED`], one after the other.
    async fn trials(&self, block: &mut Block, n: usize, version: &mut u32) {
        let (c0, r0, o0, l0, t0) = (
            cpu_self(),
            rest_requests(&self.fake),
            self.fake.call_count(Call::ObserveCluster),
            listen_overflows(),
            Instant::now(),
        );
        for _ in 0..n {
            *version += 1;
            let (p, f) = self.push_trial(PUSHED, *version).await;
            block.push.push(p);
            block.fetch.push(f);
        }
        block.wall += t0.elapsed();
        block.cpu += cpu_self() - c0;
        block.rest += rest_requests(&self.fake) - r0;
        block.observations += self.fake.call_count(Call::ObserveCluster) - o0;
        block.overflows += listen_overflows() - l0;
    }
}

/// Baseline of one steady cycle: per resource, `GET /overview` of its cluster, and
/// `GET /jobs/overview` when it has a job.
type Plan = Vec<(FlinkRestClient, bool)>;

async fn baseline_sequential(plan: &Plan) {
    for (client, has_job) in plan {
        client.cluster_overview().await.expect("overview");
        if *has_job {
            client.jobs_overview().await.expect("jobs overview");
        }
    }
}

async fn baseline_concurrent(plan: &Plan) {
    let mut set = tokio::task::JoinSet::new();
    for (client, has_job) in plan.iter().cloned() {
        set.spawn(async move {
            client.cluster_overview().await.expect("overview");
            if has_job {
                client.jobs_overview().await.expect("jobs overview");
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("baseline task");
    }
}

async fn agent_concurrent(agent: &Arc<BenchAgent>) -> usize {
    agent.sync().await.expect("fetch");
    let mut set = tokio::task::JoinSet::new();
    for key in agent.keys() {
        let agent = agent.clone();
        set.spawn(async move { agent.reconcile(&key).await });
    }
    let mut idle = 0;
    while let Some(r) = set.join_next().await {
        if matches!(r.expect("reconcile task"), Ok(Requeue::Idle)) {
            idle += 1;
        }
    }
    idle
}

fn main() {
    let cycles = env_u64("ENGINE_FAKE_CYCLES", 7).max(1) as usize;
    let trials = env_u64("ENGINE_FAKE_TRIALS", 10).max(1) as usize;
    let interval = Duration::from_millis(env_u64("ENGINE_FAKE_INTERVAL_MS", 10000));
    let fast_poll = Duration::from_millis(env_u64("ENGINE_FAKE_FAST_POLL_MS", 100));
    let total = APPS + SESSIONS + SESSIONS * JOBS_PER_SESSION;

    let fake = FakeFlink::new();
    let server = Server::start(&fake);
    let steps = StepClock::start(&fake);
    let placeholder = ResourceKey::new(NS, Kind::FlinkDeployment, "x");
    let branch = Arc::new(Branch::new(validate::Options {
        default_configuration: fake.default_configuration(&placeholder),
        ..validate::Options::default()
    }));
    let store = MemoryStatusStore::new();
    let bench = Bench {
        fake: fake.clone(),
        server,
        steps,
        branch: branch.clone(),
        store: store.clone(),
    };
    let all_keys: Vec<ResourceKey> = {
        let mut k: Vec<ResourceKey> = (0..APPS).map(app_key).collect();
        for s in 0..SESSIONS {
            k.push(ResourceKey::new(NS, Kind::FlinkDeployment, session_name(s)));
            for j in 0..JOBS_PER_SESSION {
                k.push(ResourceKey::new(
                    NS,
                    Kind::FlinkSessionJob,
                    session_job_name(s, j),
                ));
            }
        }
        k
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");

    println!(
        "resources: {total} ({APPS} application FlinkDeployments, {SESSIONS} session clusters, {} FlinkSessionJobs); fake Flink REST over HTTP on {} (one thread); agent runtime: {} worker threads; {} cores, load average {}",
        SESSIONS * JOBS_PER_SESSION,
        bench.server.base,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_average()
    );

    rt.block_on(async {
        branch.push(initial_files().into_iter().collect());
        let (rss_before, maxrss_before) = (rss_now_kib(), maxrss_kib());
        let mut peaks = Peaks::new();
        peaks.start();

        // ------------------------------------------------------------ setup
        let agent: Arc<BenchAgent> = Agent::start(
            AgentParts {
                runtime: Arc::new(fake.clone()),
                flink: HttpFlink::default(),
                storage: Arc::new(fake.clone()),
                manifests: branch.clone(),
                status: Arc::new(store.clone()),
                env: Arc::new(SystemEnvironment::default()),
            },
            AgentSettings {
                interval,
                fast_poll,
                git_timeout: Duration::from_secs(60),
                stability_window: Duration::ZERO,
                ..AgentSettings::default()
            },
        )
        .await
        .expect("the agent starts");
        let t0 = Instant::now();
        let mut passes = 0;
        loop {
            passes += 1;
            assert!(passes <= 20, "the agent did not bring {total} resources to rest");
            let steps = fake.steps();
            let results = agent.run_once().await.expect("run_once");
            let idle = results.values().all(|r| matches!(r, Ok(Requeue::Idle)));
            if idle && fake.steps() == steps && bench.all_at_rest(&all_keys) {
                break;
            }
        }
        let running: usize = all_keys
            .iter()
            .filter(|k| k.kind == Kind::FlinkDeployment)
            .map(|k| fake.running_jobs(k).len())
            .sum();
        assert_eq!(running, APPS + SESSIONS * JOBS_PER_SESSION, "running jobs");
        println!(
            "setup: {total} resources deployed and at rest from an empty status store in {:.2} s ({passes} run_once passes, {} external steps, {running} jobs running)",
            t0.elapsed().as_secs_f64(),
            fake.steps()
        );
        peaks.end(&format!("deploying {total} from an empty status store"));

        // ------------------------------------------------------------ (a) steady cycle
        let plan: Plan = all_keys
            .iter()
            .map(|k| {
                let (cluster, has_job) = match k.kind {
                    Kind::FlinkSessionJob => {
                        let s: usize = k.name[3..5].parse().expect("session index");
                        (ResourceKey::new(NS, Kind::FlinkDeployment, session_name(s)), true)
                    }
                    _ => (k.clone(), k.name.starts_with("app-")),
                };
                let client = FlinkRestClient::new(&bench.server.url(&cluster)).expect("client");
                (client, has_job)
            })
            .collect();
        let plan_overviews = plan.len();
        let plan_jobs = plan.iter().filter(|(_, j)| *j).count();

        let steps_before = fake.steps();
        let overflows_before = listen_overflows();
        let (mut agent_seq, mut base_seq, mut agent_con, mut base_con) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut agent_calls = BTreeMap::new();
        peaks.start();
        for i in 0..cycles {
            let c0 = counts(&fake);
            let (s, results) = bench.measure(|| agent.run_once()).await;
            let results = results.expect("run_once");
            assert!(
                results.values().all(|r| matches!(r, Ok(Requeue::Idle))),
                "a steady cycle had something to do"
            );
            if i == 0 {
                agent_calls = delta(&counts(&fake), &c0);
            }
            agent_seq.push(s);
            let (s, ()) = bench.measure(|| baseline_sequential(&plan)).await;
            base_seq.push(s);
        }
        peaks.end("steady cycles, sequential (and their baseline)");
        peaks.start();
        for _ in 0..cycles {
            let (s, idle) = bench.measure(|| agent_concurrent(&agent)).await;
            assert_eq!(idle, total, "a steady cycle had something to do");
            agent_con.push(s);
            let (s, ()) = bench.measure(|| baseline_concurrent(&plan)).await;
            base_con.push(s);
        }
        peaks.end("steady cycles, concurrent (and their baseline)");
        assert_eq!(fake.steps(), steps_before, "steady cycles made external steps");
        let steady_overflows = listen_overflows() - overflows_before;
        // The cost of the client the agent builds for every observation (HttpFlink::connect).
        let url = bench.server.url(&app_key(0));
        let n_clients = 200;
        let (new_client, ()) = bench
            .measure(|| async {
                for _ in 0..n_clients {
                    std::hint::black_box(FlinkRestClient::new(&url).expect("client"));
                }
            })
            .await;

        let calls = agent_calls
            .iter()
            .map(|(c, n)| format!("{c:?} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!("steady cycle, calls the agent made (fake's counters, one cycle): {calls}");
        println!(
            "steady cycle, calls the baseline makes: ClusterOverview {plan_overviews}, JobsOverview {plan_jobs} (one FlinkRestClient per cluster, built beforehand)"
        );
        for (what, agent_s, base_s) in [
            ("sequential (agent: run_once)", &agent_seq, &base_seq),
            (
                "concurrent (agent: fetch + every reconcile spawned at once)",
                &agent_con,
                &base_con,
            ),
        ] {
            let pick = |v: &Vec<Sample>, f: fn(&Sample) -> Duration| -> Vec<Duration> {
                v.iter().map(f).collect()
            };
            let (aw, ac, as_, acl) = (
                pick(agent_s, |s| s.wall),
                pick(agent_s, |s| s.cpu),
                pick(agent_s, |s| s.server),
                pick(agent_s, Sample::client),
            );
            let (bw, bc, bs, bcl) = (
                pick(base_s, |s| s.wall),
                pick(base_s, |s| s.cpu),
                pick(base_s, |s| s.server),
                pick(base_s, Sample::client),
            );
            println!("steady cycle {what}, {cycles} cycles interleaved with the baseline:");
            println!("  agent wall: {}", spread(&aw));
            println!("  baseline wall: {}", spread(&bw));
            println!("  ratio agent / baseline, wall (medians): {:.2}", ratio(median(&aw), median(&bw)));
            println!("  agent CPU (process): {}", spread(&ac));
            println!("  baseline CPU (process): {}", spread(&bc));
            println!("  ratio agent / baseline, CPU (medians): {:.2}", ratio(median(&ac), median(&bc)));
            println!(
                "  of which the fake's HTTP server thread: agent cycle {} ms, baseline {} ms (medians)",
                ms(median(&as_)),
                ms(median(&bs))
            );
            println!(
                "  CPU outside the fake server: agent {}, baseline {}",
                spread(&acl),
                spread(&bcl)
            );
            println!(
                "  ratio agent / baseline, CPU outside the fake server (medians): {:.2}",
                ratio(median(&acl), median(&bcl))
            );
            println!(
                "  agent CPU per resource (process, median): {:.1} µs",
                median(&ac).as_secs_f64() * 1e6 / total as f64
            );
        }
        println!(
            "  listen overflows during the steady cycles (connections turned away, retried after 1 s): {steady_overflows}"
        );
        println!(
            "FlinkRestClient::new (HttpFlink::connect builds one per observation): {:.1} µs CPU each ({n_clients} built)",
            new_client.cpu.as_secs_f64() * 1e6 / n_clients as f64
        );
        let rss0 = rss_now_kib();
        let held: Vec<FlinkRestClient> = (0..total)
            .map(|_| FlinkRestClient::new(&url).expect("client"))
            .collect();
        let rss1 = rss_now_kib();
        drop(std::hint::black_box(held));
        println!(
            "{total} FlinkRestClients held at once (as {total} reconciles in flight hold one each): {:+.1} MiB RSS",
            (rss1 as f64 - rss0 as f64) / 1024.0
        );
        let n_copies = 50;
        let (copies, ()) = bench
            .measure(|| async {
                for _ in 0..n_copies {
                    std::hint::black_box(agent.records());
                }
            })
            .await;
        println!(
            "Agent::records() (a copy of all {total} records; every reconcile makes one in context(), every turn of the controller loop one in keys()): {:.1} µs CPU each",
            copies.cpu.as_secs_f64() * 1e6 / n_copies as f64
        );


        // ------------------------------------------------------------ (a') drift check cost
        // The same steady cycle with drift checking on (the default policy, report) and off
        // (ignore), two agents on the same records and fake, interleaved in the same run.
        let no_drift: Arc<BenchAgent> = Agent::start(
            AgentParts {
                runtime: Arc::new(fake.clone()),
                flink: HttpFlink::default(),
                storage: Arc::new(fake.clone()),
                manifests: branch.clone(),
                status: Arc::new(store.clone()),
                env: Arc::new(SystemEnvironment::default()),
            },
            AgentSettings {
                interval,
                fast_poll,
                git_timeout: Duration::from_secs(60),
                drift: DriftPolicy::Ignore,
                ..AgentSettings::default()
            },
        )
        .await
        .expect("the agent starts");
        let (mut on, mut off) = (Vec::new(), Vec::new());
        let (mut calls_on, mut calls_off) = (BTreeMap::new(), BTreeMap::new());
        for i in 0..cycles {
            let c0 = counts(&fake);
            let (s, results) = bench.measure(|| agent.run_once()).await;
            assert!(results.expect("run_once").values().all(|r| matches!(r, Ok(Requeue::Idle))));
            on.push(s);
            let c1 = counts(&fake);
            let (s, results) = bench.measure(|| no_drift.run_once()).await;
            assert!(results.expect("run_once").values().all(|r| matches!(r, Ok(Requeue::Idle))));
            off.push(s);
            if i == 0 {
                calls_on = delta(&c1, &c0);
                calls_off = delta(&counts(&fake), &c1);
            }
        }
        assert_eq!(fake.steps(), steps_before, "drift checks made external steps");
        let (w_on, w_off): (Vec<Duration>, Vec<Duration>) =
            (on.iter().map(|s| s.wall).collect(), off.iter().map(|s| s.wall).collect());
        let (c_on, c_off): (Vec<Duration>, Vec<Duration>) =
            (on.iter().map(|s| s.cpu).collect(), off.iter().map(|s| s.cpu).collect());
        let (k_on, k_off): (Vec<Duration>, Vec<Duration>) = (
            on.iter().map(Sample::client).collect(),
            off.iter().map(Sample::client).collect(),
        );
        let show = |m: &BTreeMap<Call, u64>| {
            m.iter()
                .map(|(c, n)| format!("{c:?} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("drift check, steady cycle (run_once) over {total} resources, {cycles} cycles interleaved, drift on (report) vs off (ignore):");
        println!("  calls with drift on: {}", show(&calls_on));
        println!("  calls with drift off: {}", show(&calls_off));
        println!("  wall on: {}", spread(&w_on));
        println!("  wall off: {}", spread(&w_off));
        println!("  ratio on / off, wall (medians): {:.2}", ratio(median(&w_on), median(&w_off)));
        println!("  ratio on / off, CPU (process, medians): {:.2}", ratio(median(&c_on), median(&c_off)));
        println!(
            "  ratio on / off, CPU outside the fake server (medians): {:.2}; drift check per resource: {:.1} µs CPU",
            ratio(median(&k_on), median(&k_off)),
            (median(&k_on).as_secs_f64() - median(&k_off).as_secs_f64()) * 1e6 / total as f64
        );
        drop(no_drift);

        // ------------------------------------------------------------ (c) push to action
        peaks.start();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let controller = tokio::spawn(agent.clone().run(stop_rx));
        bench.quiet_for(interval * 2).await;

        let pushed = PUSHED;
        let mut version = 100;
        // Nothing else in flight: half the pushes before the 100 upgrades, half after them,
        // so that both conditions see the machine at about the same times.
        let mut idle = Block::default();
        bench.trials(&mut idle, trials / 2, &mut version).await;
        peaks.end("controller, nothing in flight");
        peaks.start();

        // 100 applications mid-upgrade: their stop-with-savepoint held IN_PROGRESS.
        // After the pushed resource in key order: when a fetch wakes every resource at rest,
        // the same 250 resources come before it in both conditions.
        let held: Vec<usize> = (APPS - IN_FLIGHT..APPS).collect();
        for i in &held {
            fake.hold_operations(&app_key(*i));
        }
        let from = fake.calls().len();
        let t_hold = Instant::now();
        branch.push(
            held.iter()
                .map(|i| (app_file(*i), app_yaml(&app_name(*i), 2)))
                .collect(),
        );
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            assert!(Instant::now() < deadline, "the held upgrades did not all start");
            let calls = fake.calls();
            let stopped = held
                .iter()
                .filter(|i| {
                    let c = format!("{NS}/{}", app_name(**i));
                    calls[from..]
                        .iter()
                        .any(|r| r.cluster == c && r.call == Call::Stop)
                })
                .count();
            if stopped == held.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let started_in = t_hold.elapsed();
        bench.quiet_for(interval * 2).await;
        let in_flight = |b: &Bench| {
            held.iter()
                .filter(|i| b.store.get(&app_key(**i)).is_some_and(|r| r.in_flight.is_some()))
                .count()
        };
        let before = in_flight(&bench);
        let mut busy = Block::default();
        bench.trials(&mut busy, trials, &mut version).await;
        let after = in_flight(&bench);
        peaks.end(&format!("controller, {IN_FLIGHT} mid-upgrade"));
        peaks.start();

        // Let the held upgrades finish, then the second half of the idle pushes.
        for i in &held {
            fake.release_operations(&app_key(*i));
        }
        let t_release = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(300);
        while !bench.all_at_rest(&all_keys) {
            assert!(Instant::now() < deadline, "the held upgrades did not finish");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let finished_in = t_release.elapsed();
        bench.quiet_for(interval * 2).await;
        bench.trials(&mut idle, trials - trials / 2, &mut version).await;
        peaks.end("controller, nothing in flight (after)");
        let _ = stop_tx.send(true);
        controller.await.expect("controller");

        println!(
            "push to first action: controller Agent::run, interval {} ms, fast poll {} ms; pushed resource {} (savepoint upgrade; first action = its stop-with-savepoint); {trials} pushes per condition",
            interval.as_millis(),
            fast_poll.as_millis(),
            app_key(pushed)
        );
        println!(
            "  {IN_FLIGHT} other applications mid-upgrade (app-300 to app-399): {before} in flight before the pushes, {after} after; their {IN_FLIGHT} stops were all issued {:.2} s after their push; once released, all were at rest {:.2} s later",
            started_in.as_secs_f64(),
            finished_in.as_secs_f64()
        );
        println!(
            "  order: {} pushes with nothing in flight, {trials} with {IN_FLIGHT} mid-upgrade, {} with nothing in flight",
            trials / 2,
            trials - trials / 2
        );
        println!("  push -> first action, nothing else in flight: {}", spread(&idle.push));
        println!("  push -> first action, {IN_FLIGHT} mid-upgrade: {}", spread(&busy.push));
        println!(
            "  ratio mid-upgrade / nothing in flight, push -> first action (medians): {:.2}",
            ratio(median(&busy.push), median(&idle.push))
        );
        println!("  fetch -> first action, nothing else in flight: {}", spread(&idle.fetch));
        println!("  fetch -> first action, {IN_FLIGHT} mid-upgrade: {}", spread(&busy.fetch));
        println!(
            "  ratio mid-upgrade / nothing in flight, fetch -> first action (medians): {:.2}",
            ratio(median(&busy.fetch), median(&idle.fetch))
        );
        println!(
            "  process CPU use: nothing in flight {:.2} cores, {IN_FLIGHT} mid-upgrade {:.2} cores",
            idle.cores(),
            busy.cores()
        );
        println!(
            "  REST requests per second: nothing in flight {:.0}, {IN_FLIGHT} mid-upgrade {:.0}",
            idle.per_second(idle.rest),
            busy.per_second(busy.rest)
        );
        println!(
            "  reconciles per second (observations): nothing in flight {:.0} (wanted: {total} per interval = {:.0}), {IN_FLIGHT} mid-upgrade {:.0} (wanted: the others per interval plus {IN_FLIGHT} per fast poll = {:.0})",
            idle.per_second(idle.observations),
            total as f64 / interval.as_secs_f64(),
            busy.per_second(busy.observations),
            (total - IN_FLIGHT) as f64 / interval.as_secs_f64() + IN_FLIGHT as f64 / fast_poll.as_secs_f64()
        );
        println!(
            "  listen overflows (connections turned away, retried after 1 s): nothing in flight {}, {IN_FLIGHT} mid-upgrade {}",
            idle.overflows, busy.overflows
        );

        // ------------------------------------------------------------ (b) memory
        let maxrss = maxrss_kib();
        let peak = peaks.max();
        println!(
            "RSS before the agent started (fake, its HTTP server, {total} parsed manifests): {:.1} MiB (VmRSS)",
            mib(rss_before)
        );
        println!(
            "agent peak RSS (process VmHWM, the fake's model of {} clusters included): {:.1} MiB, {:.1} MiB over the RSS before the agent started",
            APPS + SESSIONS,
            mib(peak),
            mib(peak.saturating_sub(rss_before))
        );
        for (phase, kib) in &peaks.phases {
            println!(
                "  peak RSS while {phase}: {:.1} MiB{}",
                mib(*kib),
                if peaks.resettable { "" } else { " (VmHWM not resettable here: cumulative)" }
            );
        }
        println!(
            "ru_maxrss: {:.1} MiB at the end, {:.1} MiB before the agent started (ru_maxrss also counts the parent's RSS at fork: run under cargo, cargo's; VmHWM does not)",
            mib(maxrss),
            mib(maxrss_before)
        );
    });
}
