//! Savepoint-upgrade gap: from the moment the old job stops running until every task of
//! the new job runs, measured the same way for two paths in one run:
//!
//! * **bare**: the REST sequence by hand (stop with savepoint, poll every 20 ms, start from
//!   it), for a session job (`/jars/:id/run`) and for an application cluster (the same local
//!   runtime code restarts the cluster from the savepoint);
//! * **agent**: `flink-gitops run` (interval 200 ms, fast poll 20 ms) reacting to a
//!   `git push` of the new version.
//!
//! One observer polls Flink's REST API every 10 ms for both paths and timestamps the old
//! job leaving RUNNING and the new job having all tasks RUNNING; the gap is the time between
//! the two (the agent's fetch delay before it acts is not part of it).
//!
//! All four clusters (the agent's session cluster and application cluster, the bare session
//! cluster and application cluster) are started first and run beside every round, so both
//! paths see the same background. Rounds are interleaved: agent session job, bare session
//! job, agent application, bare application, then the next round, with the same pause after
//! each upgrade; a first round warms both paths up (first savepoint and restore, JIT) and is
//! not counted. Prints min / median / max of each path (and every round's gap) and the ratio
//! of the medians, agent / bare, for the session job and for the application. Nothing is
//! asserted.
//!
//! Needs real Flink (`scripts/setup.sh`); hold the machine-wide lock while it runs:
//! `flock /tmp/flink-heavy.lock cargo bench --bench upgrade_gap`. `UPGRADE_GAP_ROUNDS` sets
//! the rounds per path (default 10; 2 for a quick look while developing).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flink_gitops::apply::local::{LocalRuntime, LocalSettings};
use flink_gitops::apply::runtime::{ApplicationJob, ClusterRequest, Runtime};
use flink_gitops::flink::rest::{
    FlinkRestClient, JarId, JarRunRequest, JobId, SavepointFormat, SavepointStatus, TriggerId,
};
use flink_gitops::flink::spec::{DeploymentSpec, JobSpec, Kind, ResourceKey, TaskManagerSpec};

/// Rounds per path unless `UPGRADE_GAP_ROUNDS` says otherwise.
const DEFAULT_ROUNDS: usize = 10;
/// Pause after every upgrade (checkpoints resume, the JVMs calm down).
const PAUSE: Duration = Duration::from_secs(3);

fn setup_env() -> BTreeMap<String, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("scripts/setup.sh"))
        .arg("--print-env")
        .stderr(Stdio::inherit())
        .output()
        .expect("setup");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "b@b")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "b@b")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("git")
        .success();
    assert!(ok, "git {args:?}");
}

fn rest_port(state: &Path, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(
        state
            .join("clusters/default")
            .join(name)
            .join("cluster.json"),
    )
    .ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["restPort"].as_u64()
}

/// Jobs of a cluster: (id, state, all tasks running).
async fn jobs(http: &reqwest::Client, port: u64) -> Vec<(String, String, bool)> {
    let Ok(r) = http
        .get(format!("http://localhost:{port}/jobs/overview"))
        .timeout(Duration::from_millis(200))
        .send()
        .await
    else {
        return vec![];
    };
    let Ok(v) = r.json::<serde_json::Value>().await else {
        return vec![];
    };
    v["jobs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|j| {
                    let total = j["tasks"]["total"].as_u64().unwrap_or(0);
                    let running = j["tasks"]["running"].as_u64().unwrap_or(0);
                    let state = j["state"].as_str().unwrap_or("").to_string();
                    let all = state == "RUNNING" && total > 0 && running == total;
                    (j["jid"].as_str().unwrap_or("").to_string(), state, all)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Watches a cluster (by its state folder) until the job `old` is no longer running and
/// another job has all tasks running; returns the gap between the two.
async fn observe_gap(state: PathBuf, cluster: String, old: String) -> (Duration, String) {
    let http = reqwest::Client::new();
    let mut stopped: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        assert!(Instant::now() < deadline, "upgrade did not finish");
        let list = match rest_port(&state, &cluster) {
            Some(port) => jobs(&http, port).await,
            None => vec![],
        };
        let old_running = list.iter().any(|(id, s, _)| id == &old && s == "RUNNING");
        if stopped.is_none() && !old_running {
            stopped = Some(Instant::now());
        }
        if let (Some(t0), Some((id, _, _))) =
            (stopped, list.iter().find(|(id, _, all)| id != &old && *all))
        {
            return (t0.elapsed(), id.clone());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_running(state: &Path, cluster: &str) -> String {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        assert!(Instant::now() < deadline, "job did not start");
        if let Some(port) = rest_port(state, cluster) {
            if let Some((id, _, _)) = jobs(&http, port).await.into_iter().find(|(_, _, all)| *all) {
                return id;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls a savepoint every 20 ms (the agent's fast poll in this benchmark) until it is done.
async fn savepoint_location(client: &FlinkRestClient, job: &JobId, trigger: &TriggerId) -> String {
    loop {
        match client.savepoint_status(job, trigger).await.expect("status") {
            SavepointStatus::Completed { location } => return location,
            SavepointStatus::Failed { cause } => panic!("savepoint failed: {cause}"),
            SavepointStatus::InProgress => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn args(version: &str, out: &Path) -> Vec<String> {
    [
        "--version",
        version,
        "--out",
        &out.display().to_string(),
        "--rate",
        "20",
        "--checkpointMs",
        "500",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn cluster_spec(job: Option<JobSpec>) -> DeploymentSpec {
    let mut d = DeploymentSpec {
        task_manager: Some(TaskManagerSpec {
            replicas: Some(1),
            ..Default::default()
        }),
        job,
        ..Default::default()
    };
    d.flink_configuration
        .insert("taskmanager.numberOfTaskSlots".into(), "2".into());
    d
}

/// A client for the cluster once its REST API answers with a TaskManager registered.
async fn ready_client(rt: &Arc<LocalRuntime>, key: &ResourceKey) -> FlinkRestClient {
    loop {
        if let Ok(Some(url)) = rt.rest_url(key).await {
            let client = FlinkRestClient::new(&url).expect("client");
            if client
                .cluster_overview()
                .await
                .is_ok_and(|o| o.taskmanagers >= 1)
            {
                return client;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The bare session cluster: its client, the uploaded jar and the running job.
struct BareSession {
    client: FlinkRestClient,
    jar_id: JarId,
    job: JobId,
    out: PathBuf,
}

/// The bare application cluster: the running job and its deployment attempt.
struct BareApp {
    key: ResourceKey,
    job: JobId,
    generation: u64,
    out: PathBuf,
}

fn session_run(version: &str, out: &Path, restore: Option<String>) -> JarRunRequest {
    JarRunRequest {
        entry_class: Some("lab.StatefulCounterJob".into()),
        program_args_list: args(version, out),
        parallelism: Some(1),
        job_id: Some(JobId::random()),
        savepoint_path: restore,
        ..Default::default()
    }
}

fn app_request(
    key: &ResourceKey,
    jar: &Path,
    out: &Path,
    version: &str,
    job_id: &JobId,
    restore: Option<String>,
    generation: u64,
) -> ClusterRequest {
    let job = JobSpec {
        parallelism: Some(1),
        ..Default::default()
    };
    ClusterRequest {
        key: key.clone(),
        spec: cluster_spec(Some(job)),
        job: Some(ApplicationJob {
            jar_uri: format!("file://{}", jar.display()),
            entry_class: Some("lab.StatefulCounterJob".into()),
            args: args(version, out),
            job_id: job_id.as_str().to_string(),
            parallelism: Some(1),
            restore,
            allow_non_restored_state: false,
        }),
        generation,
    }
}

/// Starts the bare application cluster and the bare session cluster with its job.
async fn bare_start(rt: &Arc<LocalRuntime>, jar: &Path, work: &Path) -> (BareSession, BareApp) {
    let app = BareApp {
        key: ResourceKey::new("default", Kind::FlinkDeployment, "bare-app"),
        job: JobId::random(),
        generation: 1,
        out: work.join("out.bare-app"),
    };
    rt.deploy_cluster(app_request(
        &app.key, jar, &app.out, "a0", &app.job, None, 1,
    ))
    .await
    .expect("deploy bare-app");
    let key = ResourceKey::new("default", Kind::FlinkDeployment, "bare-session");
    rt.deploy_cluster(ClusterRequest {
        key: key.clone(),
        spec: cluster_spec(None),
        job: None,
        generation: 1,
    })
    .await
    .expect("deploy bare-session");
    let client = ready_client(rt, &key).await;
    let jar_id = client.upload_jar(jar).await.expect("upload");
    let out = work.join("out.bare-sj");
    let job = client
        .run_jar(&jar_id, &session_run("b0", &out, None))
        .await
        .expect("run");
    (
        BareSession {
            client,
            jar_id,
            job,
            out,
        },
        app,
    )
}

/// One bare session-job upgrade: stop with savepoint, start the new version from it.
async fn bare_session_round(rt: &Arc<LocalRuntime>, s: &mut BareSession, i: usize) -> Duration {
    let watcher = tokio::spawn(observe_gap(
        rt.settings().state_dir.clone(),
        "bare-session".into(),
        s.job.as_str().to_string(),
    ));
    let trigger = s
        .client
        .stop_with_savepoint(&s.job, None, false, SavepointFormat::Canonical, None)
        .await
        .expect("stop");
    let location = savepoint_location(&s.client, &s.job, &trigger).await;
    s.job = s
        .client
        .run_jar(
            &s.jar_id,
            &session_run(&format!("b{i}"), &s.out, Some(location)),
        )
        .await
        .expect("run");
    let (gap, _) = watcher.await.expect("watch");
    gap
}

/// One bare application upgrade: stop with savepoint, restart the cluster from it.
async fn bare_app_round(rt: &Arc<LocalRuntime>, jar: &Path, a: &mut BareApp, i: usize) -> Duration {
    let client = ready_client(rt, &a.key).await;
    let watcher = tokio::spawn(observe_gap(
        rt.settings().state_dir.clone(),
        "bare-app".into(),
        a.job.as_str().to_string(),
    ));
    let trigger = client
        .stop_with_savepoint(&a.job, None, false, SavepointFormat::Canonical, None)
        .await
        .expect("stop");
    let location = savepoint_location(&client, &a.job, &trigger).await;
    a.job = JobId::random();
    a.generation += 1;
    rt.deploy_cluster(app_request(
        &a.key,
        jar,
        &a.out,
        &format!("a{i}"),
        &a.job,
        Some(location),
        a.generation,
    ))
    .await
    .expect("redeploy");
    let (gap, _) = watcher.await.expect("watch");
    gap
}

struct Agent(Child, PathBuf);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        LocalRuntime::stop_all(&self.1);
    }
}

/// Writes the three manifests: the session job at `sj_version`, the application at `app_version`.
fn manifests(repo: &Path, jar: &Path, out: &Path, sj_version: &str, app_version: &str) {
    let job = |name: &str, version: &str| {
        format!(
            "  job:\n    jarURI: file://{}\n    entryClass: lab.StatefulCounterJob\n    parallelism: 1\n    upgradeMode: savepoint\n    args: [{}]\n",
            jar.display(),
            args(&format!("{name}-{version}"), &out.with_extension(name)).iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ")
        )
    };
    let head = "apiVersion: flink.apache.org/v1beta1\n";
    let res = "  flinkVersion: v2_3\n  serviceAccount: flink\n  flinkConfiguration:\n    taskmanager.numberOfTaskSlots: \"2\"\n  jobManager: {resource: {memory: 1g, cpu: 1}}\n  taskManager: {replicas: 1, resource: {memory: 1g, cpu: 1}}\n";
    std::fs::write(
        repo.join("session.yaml"),
        format!("{head}kind: FlinkDeployment\nmetadata: {{name: agent-session}}\nspec:\n{res}"),
    )
    .expect("write");
    std::fs::write(repo.join("session-job.yaml"), format!("{head}kind: FlinkSessionJob\nmetadata: {{name: agent-sj}}\nspec:\n  deploymentName: agent-session\n{}", job("sj", sj_version))).expect("write");
    std::fs::write(
        repo.join("app.yaml"),
        format!(
            "{head}kind: FlinkDeployment\nmetadata: {{name: agent-app}}\nspec:\n{res}{}",
            job("app", app_version)
        ),
    )
    .expect("write");
}

/// Commits and pushes the manifests at the given versions.
fn push(repo: &Path, jar: &Path, out: &Path, sj_version: &str, app_version: &str, msg: &str) {
    manifests(repo, jar, out, sj_version, app_version);
    git(repo, &["commit", "-qam", msg]);
    git(repo, &["push", "-q", "origin", "main"]);
}

/// One agent upgrade: push, then watch `cluster` until the job after `old` runs.
async fn agent_round(
    state: &Path,
    cluster: &str,
    old: &mut String,
    push_it: impl FnOnce(),
) -> Duration {
    let watcher = tokio::spawn(observe_gap(
        state.to_path_buf(),
        cluster.into(),
        old.clone(),
    ));
    push_it();
    let (gap, new) = watcher.await.expect("watch");
    *old = new;
    gap
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

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

fn summary(v: &[Duration]) -> String {
    format!(
        "min {} s, median {} s, max {} s, rounds [{}]",
        secs(*v.iter().min().expect("rounds")),
        secs(median(v)),
        secs(*v.iter().max().expect("rounds")),
        v.iter().map(|d| secs(*d)).collect::<Vec<_>>().join(", ")
    )
}

fn main() {
    let rounds = std::env::var("UPGRADE_GAP_ROUNDS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(DEFAULT_ROUNDS)
        .max(1);
    let env = setup_env();
    let flink_home = PathBuf::from(&env["FLINK_HOME"]);
    let jar = PathBuf::from(&env["FLINK_GITOPS_JOB_JAR"]);
    let work = tempfile::tempdir().expect("tmp");
    let out = work.path().join("out");
    let state = work.path().join("bare-state");
    let tokio_rt = tokio::runtime::Runtime::new().expect("tokio");
    let rt = Arc::new(
        LocalRuntime::new(LocalSettings {
            flink_home,
            state_dir: state.clone(),
            jar_root: work.path().into(),
            cache_dir: work.path().join("cache"),
        })
        .expect("runtime"),
    );
    let guard_state = state.clone();
    let _cleanup = scopeguard(move || LocalRuntime::stop_all(&guard_state));

    // The bare clusters.
    let (mut bare_s, mut bare_a) = tokio_rt.block_on(bare_start(&rt, &jar, work.path()));

    // The agent's clusters.
    let remote = work.path().join("remote.git");
    let repo = work.path().join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(
        work.path(),
        &["init", "-q", "--bare", "-b", "main", "remote.git"],
    );
    git(&repo, &["init", "-q", "-b", "main"]);
    git(
        &repo,
        &["remote", "add", "origin", &remote.display().to_string()],
    );
    manifests(&repo, &jar, &out, "v0", "v0");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "v0"]);
    git(&repo, &["push", "-q", "origin", "main"]);
    let agent_state = work.path().join("agent-state");
    let log = std::fs::File::create(work.path().join("agent.log")).expect("log");
    let child = Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
        .args([
            "run",
            "--repo",
            &format!("file://{}", remote.display()),
            "--interval",
            "200ms",
            "--fast-poll",
            "20ms",
            "--state-dir",
            &agent_state.display().to_string(),
        ])
        .env("FLINK_HOME", &env["FLINK_HOME"])
        .env("FLINK_GITOPS_CACHE", work.path().join("agent-cache"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("agent");
    let _agent = Agent(child, agent_state.clone());

    let (agent_s, bare_sg, agent_a, bare_ag) = tokio_rt.block_on(async {
        let state = rt.settings().state_dir.clone();
        wait_running(&state, "bare-app").await;
        wait_running(&state, "bare-session").await;
        let mut sj = wait_running(&agent_state, "agent-session").await;
        let mut app = wait_running(&agent_state, "agent-app").await;
        tokio::time::sleep(PAUSE).await;
        let (mut a_s, mut b_s, mut a_a, mut b_a) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        // One upgrade at a time, so no two compete for the CPU; each path alternates with
        // the other on the same clusters.
        // Round 0 warms both paths up (first savepoint, first restore, JIT) and is not
        // counted.
        for i in 0..=rounds {
            let (v, prev) = (format!("v{}", i + 1), format!("v{i}"));
            let g = agent_round(&agent_state, "agent-session", &mut sj, || {
                push(&repo, &jar, &out, &v, &prev, &format!("session job {v}"))
            })
            .await;
            tokio::time::sleep(PAUSE).await;
            let g2 = bare_session_round(&rt, &mut bare_s, i + 1).await;
            tokio::time::sleep(PAUSE).await;
            let g3 = agent_round(&agent_state, "agent-app", &mut app, || {
                push(&repo, &jar, &out, &v, &v, &format!("application {v}"))
            })
            .await;
            tokio::time::sleep(PAUSE).await;
            let g4 = bare_app_round(&rt, &jar, &mut bare_a, i + 1).await;
            tokio::time::sleep(PAUSE).await;
            eprintln!(
                "round {i}/{rounds}{}: session job agent {} s, bare {} s; application agent {} s, bare {} s",
                if i == 0 { " (warm-up, not counted)" } else { "" },
                secs(g),
                secs(g2),
                secs(g3),
                secs(g4)
            );
            if i > 0 {
                a_s.push(g);
                b_s.push(g2);
                a_a.push(g3);
                b_a.push(g4);
            }
        }
        (a_s, b_s, a_a, b_a)
    });

    let mut load = [0f64; 3];
    // SAFETY: getloadavg writes at most 3 doubles into the buffer it is given.
    let got = unsafe { libc::getloadavg(load.as_mut_ptr(), 3) };
    println!(
        "rounds: {rounds} per path after one warm-up round, interleaved (agent session job, bare session job, agent application, bare application), all four clusters running throughout; {} cores, load average {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        if got >= 1 { format!("{:.2}", load[0]) } else { "unknown".to_string() }
    );
    for (what, agent, bare) in [
        ("session job", agent_s, bare_sg),
        ("application", agent_a, bare_ag),
    ] {
        println!("savepoint-upgrade gap, {what}, agent: {}", summary(&agent));
        println!(
            "savepoint-upgrade gap, {what}, bare REST: {}",
            summary(&bare)
        );
        let r = median(&agent).as_secs_f64() / median(&bare).as_secs_f64();
        println!(
            "savepoint-upgrade gap, {what}: ratio of medians agent / bare {r:.2} (goal <= 1.10: {})",
            if r <= 1.10 { "met" } else { "missed" }
        );
    }
}

/// Runs a closure on drop (cleanup also when a step panics).
fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct G<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for G<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    G(Some(f))
}
