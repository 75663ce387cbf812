//! Savepoint-upgrade gap: from the moment the old job stops running until every task of
//! the new job runs, measured the same way for two paths in one run:
//!
//! * **bare**: the REST sequence by hand (stop with savepoint, poll, start from it), for a
//!   session job (`/jars/:id/run`) and for an application cluster (the same local runtime
//!   code restarts the cluster from the savepoint);
//! * **agent**: `flink-gitops run` reacting to a `git push` of the new version.
//!
//! One observer polls Flink's REST API every 10 ms for both paths and timestamps the old
//! job leaving RUNNING and the new job having all tasks RUNNING. Prints the median gap of
//! each path and the ratio agent / bare. Nothing is asserted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flink_gitops::apply::local::{LocalRuntime, LocalSettings};
use flink_gitops::apply::runtime::{ApplicationJob, ClusterRequest, Runtime};
use flink_gitops::flink::rest::{
    FlinkRestClient, JarRunRequest, JobId, SavepointFormat, SavepointStatus, TriggerId,
};
use flink_gitops::flink::spec::{DeploymentSpec, JobSpec, Kind, ResourceKey, TaskManagerSpec};

const ROUNDS: usize = 3;

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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
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

async fn bare_session(rt: &Arc<LocalRuntime>, jar: &Path, out: &Path) -> Vec<Duration> {
    let key = ResourceKey::new("default", Kind::FlinkDeployment, "bare-session");
    rt.deploy_cluster(ClusterRequest {
        key: key.clone(),
        spec: cluster_spec(None),
        job: None,
        generation: 1,
    })
    .await
    .expect("deploy");
    let client = ready_client(rt, &key).await;
    let jar_id = client.upload_jar(jar).await.expect("upload");
    let run = |version: &str, restore: Option<String>| JarRunRequest {
        entry_class: Some("lab.StatefulCounterJob".into()),
        program_args_list: args(version, out),
        parallelism: Some(1),
        job_id: Some(JobId::random()),
        savepoint_path: restore,
        ..Default::default()
    };
    let mut job = client
        .run_jar(&jar_id, &run("b0", None))
        .await
        .expect("run");
    wait_running(&rt.settings().state_dir, "bare-session").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut gaps = Vec::new();
    for i in 1..=ROUNDS {
        let watcher = tokio::spawn(observe_gap(
            rt.settings().state_dir.clone(),
            "bare-session".into(),
            job.as_str().to_string(),
        ));
        let trigger = client
            .stop_with_savepoint(&job, None, false, SavepointFormat::Canonical, None)
            .await
            .expect("stop");
        let location = savepoint_location(&client, &job, &trigger).await;
        job = client
            .run_jar(&jar_id, &run(&format!("b{i}"), Some(location)))
            .await
            .expect("run");
        let (gap, _) = watcher.await.expect("watch");
        gaps.push(gap);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // The cluster stays up: the application rounds run beside it, as they do under the agent.
    gaps
}

/// Starts the application cluster, runs the session-job rounds beside it, then the
/// application rounds beside the session cluster: the same background the agent sees.
async fn bare_application(
    rt: &Arc<LocalRuntime>,
    jar: &Path,
    out: &Path,
) -> (Vec<Duration>, Vec<Duration>) {
    let key = ResourceKey::new("default", Kind::FlinkDeployment, "bare-app");
    let request = |version: &str, job_id: &JobId, restore: Option<String>, generation: u64| {
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
    };
    let mut job = JobId::random();
    rt.deploy_cluster(request("a0", &job, None, 1))
        .await
        .expect("deploy");
    wait_running(&rt.settings().state_dir, "bare-app").await;
    let session_gaps = bare_session(rt, jar, out).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut gaps = Vec::new();
    for i in 1..=ROUNDS {
        let client = ready_client(rt, &key).await;
        let watcher = tokio::spawn(observe_gap(
            rt.settings().state_dir.clone(),
            "bare-app".into(),
            job.as_str().to_string(),
        ));
        let trigger = client
            .stop_with_savepoint(&job, None, false, SavepointFormat::Canonical, None)
            .await
            .expect("stop");
        let location = savepoint_location(&client, &job, &trigger).await;
        job = JobId::random();
        rt.deploy_cluster(request(
            &format!("a{i}"),
            &job,
            Some(location),
            i as u64 + 1,
        ))
        .await
        .expect("redeploy");
        let (gap, _) = watcher.await.expect("watch");
        gaps.push(gap);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    (session_gaps, gaps)
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

fn main() {
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

    let (bare_s, bare_a) = tokio_rt.block_on(bare_application(&rt, &jar, &out));
    LocalRuntime::stop_all(&state);

    // Through the agent.
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
    let (agent_s, agent_a) = tokio_rt.block_on(async {
        let mut sj = wait_running(&agent_state, "agent-session").await;
        let mut app = wait_running(&agent_state, "agent-app").await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (mut gs, mut ga) = (Vec::new(), Vec::new());
        // One resource at a time, so neither upgrade competes with the other for the CPU.
        for i in 1..=ROUNDS {
            let w1 = tokio::spawn(observe_gap(
                agent_state.clone(),
                "agent-session".into(),
                sj.clone(),
            ));
            manifests(&repo, &jar, &out, &format!("v{i}"), &format!("v{}", i - 1));
            git(&repo, &["commit", "-qam", &format!("session job v{i}")]);
            git(&repo, &["push", "-q", "origin", "main"]);
            let (g1, id1) = w1.await.expect("watch");
            gs.push(g1);
            sj = id1;
            tokio::time::sleep(Duration::from_secs(3)).await;
            let w2 = tokio::spawn(observe_gap(
                agent_state.clone(),
                "agent-app".into(),
                app.clone(),
            ));
            manifests(&repo, &jar, &out, &format!("v{i}"), &format!("v{i}"));
            git(&repo, &["commit", "-qam", &format!("application v{i}")]);
            git(&repo, &["push", "-q", "origin", "main"]);
            let (g2, id2) = w2.await.expect("watch");
            ga.push(g2);
            app = id2;
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        (gs, ga)
    });

    for (what, agent, bare) in [
        ("session job", agent_s, bare_s),
        ("application", agent_a, bare_a),
    ] {
        let (a, b) = (median(agent.clone()), median(bare.clone()));
        println!(
            "savepoint-upgrade gap, {what}: agent median {:.3} s {:?}, bare REST median {:.3} s {:?}, ratio {:.2} (goal <= 1.10: {})",
            a.as_secs_f64(),
            agent.iter().map(|d| format!("{:.3}", d.as_secs_f64())).collect::<Vec<_>>(),
            b.as_secs_f64(),
            bare.iter().map(|d| format!("{:.3}", d.as_secs_f64())).collect::<Vec<_>>(),
            a.as_secs_f64() / b.as_secs_f64(),
            if a.as_secs_f64() / b.as_secs_f64() <= 1.10 { "met" } else { "missed" }
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
