//! The agent on real Flink with a session cluster and two session jobs, its repository
//! served by `git daemon` (git://, status pushed over the wire): one job upgraded while the
//! other runs untouched, a crash right after a stop-with-savepoint, and `--no-prune`.

use std::path::Path;
use std::time::Duration;

use crate::harness::flink::{
    assert_continues, counter_lines, field, flink_env, savepoints, state_at, wait_for, wait_lines,
    AgentProcess, Remote, Slot,
};

fn cluster() -> String {
    r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: analytics
spec:
  flinkVersion: v2_3
  serviceAccount: flink
  flinkConfiguration:
    taskmanager.numberOfTaskSlots: "2"
  jobManager:
    resource: {memory: 1g, cpu: 1}
  taskManager:
    replicas: 1
    resource: {memory: 1g, cpu: 1}
"#
    .to_string()
}

fn session_job(name: &str, version: &str, out: &Path) -> String {
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkSessionJob
metadata:
  name: {name}
spec:
  deploymentName: analytics
  job:
    jarURI: file://{jar}
    entryClass: lab.StatefulCounterJob
    parallelism: 1
    upgradeMode: savepoint
    args: ["--version", "{version}", "--out", "{out}", "--rate", "20", "--checkpointMs", "500"]
"#,
        jar = flink_env().job_jar(),
        out = out.display()
    )
}

fn status_of(remote: &Remote, name: &str) -> Option<serde_yaml::Value> {
    remote.status(&format!("default/FlinkSessionJob/{name}.yaml"))
}

fn stable(remote: &Remote, agent: &AgentProcess, name: &str, commit: &str) -> serde_yaml::Value {
    state_at(
        remote,
        agent,
        &format!("default/FlinkSessionJob/{name}.yaml"),
        commit,
        "STABLE",
    )
}

/// Jobs on the session cluster, from its REST API: (id, state).
fn cluster_jobs(state_dir: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(state_dir.join("clusters/default/analytics/cluster.json"))
        .unwrap_or_default();
    let Ok(c) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    let port = c["restPort"].as_u64().unwrap_or(0);
    let out = std::process::Command::new("curl")
        .args(["-sf", &format!("http://localhost:{port}/jobs/overview")])
        .output();
    let Ok(out) = out else { return Vec::new() };
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["jobs"]
        .as_array()
        .map(|jobs| {
            jobs.iter()
                .map(|j| {
                    (
                        j["jid"].as_str().unwrap_or("").to_string(),
                        j["state"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn session_jobs_crash_recovery_and_no_prune_over_git_daemon() {
    let _slot = Slot::take();
    let remote = Remote::new();
    let daemon = crate::harness::GitDaemon::start_with_push(remote.dir.path());
    let url = format!("git://127.0.0.1:{}/remote.git", daemon.port);
    let state = remote.scratch("agent");
    let out_a = remote.scratch("out").join("clicks.out");
    let out_b = remote.scratch("out").join("orders.out");

    remote.write("session/analytics.yaml", &cluster());
    remote.write(
        "session/jobs/clicks.yaml",
        &session_job("clicks", "a1", &out_a),
    );
    remote.write(
        "session/jobs/orders.yaml",
        &session_job("orders", "b1", &out_b),
    );
    let c1 = remote.push("session cluster with two jobs");
    let mut agent = AgentProcess::start(&url, &state, &[]);
    stable(&remote, &agent, "clicks", &c1);
    let b1 = stable(&remote, &agent, "orders", &c1);
    wait_lines(&agent, &out_a, "a1", 0);

    // Upgrade one session job; the other keeps running untouched.
    remote.write(
        "session/jobs/clicks.yaml",
        &session_job("clicks", "a2", &out_a),
    );
    let n = counter_lines(&out_a).len();
    let c2 = remote.push("clicks a2");
    stable(&remote, &agent, "clicks", &c2);
    wait_lines(&agent, &out_a, "a2", n);
    assert_continues(&out_a, n, "a2", true, "session job upgrade");
    let b2 = status_of(&remote, "orders").expect("orders status");
    assert_eq!(
        field(&b2, "jobId"),
        field(&b1, "jobId"),
        "the other session job was not touched"
    );
    assert_eq!(
        field(&b2, "lastReconciledRevision"),
        Some(c1.as_str()),
        "orders did not change, so it was not re-applied"
    );

    // The agent is killed right after it asked Flink to stop with a savepoint.
    agent.restart(&[("FLINK_GITOPS_FAILPOINT", "after-stop-with-savepoint")]);
    remote.write(
        "session/jobs/clicks.yaml",
        &session_job("clicks", "a3", &out_a),
    );
    let n = counter_lines(&out_a).len();
    let c3 = remote.push("clicks a3");
    assert!(
        agent.wait_exit(Duration::from_secs(120)),
        "the failpoint killed the agent"
    );
    let mid = status_of(&remote, "clicks").expect("status");
    assert_eq!(
        field(&mid, "lifecycleState"),
        Some("UPGRADING"),
        "the stop was recorded before it was sent"
    );
    agent.restart(&[]);
    let s3 = stable(&remote, &agent, "clicks", &c3);
    wait_lines(&agent, &out_a, "a3", n);
    assert_continues(&out_a, n, "a3", true, "restart after a crash mid-upgrade");
    let running: Vec<_> = cluster_jobs(&state)
        .into_iter()
        .filter(|(_, s)| s == "RUNNING")
        .collect();
    assert_eq!(
        running.len(),
        2,
        "one running job per session job, no duplicate: {running:?}"
    );
    assert!(running
        .iter()
        .any(|(id, _)| Some(id.as_str()) == field(&s3, "jobId")));
    assert!(
        savepoints(&s3)
            .iter()
            .any(|p| field(p, "forRevision") == Some(c3.as_str())),
        "the savepoint taken before the crash is recorded"
    );

    // --no-prune: a removed session job keeps running and is reported.
    agent.restart_with_args(&["--no-prune"]);
    remote.remove("session/jobs/orders.yaml");
    remote.push("remove orders");
    let reported = wait_for(
        Duration::from_secs(60),
        "orders reported as removed",
        &agent,
        || {
            let s = status_of(&remote, "orders")?;
            (s.get("removedFromGit").and_then(serde_yaml::Value::as_bool) == Some(true))
                .then_some(s)
        },
    );
    assert_eq!(field(&reported, "lifecycleState"), Some("STABLE"));
    let n = counter_lines(&out_b).len();
    std::thread::sleep(Duration::from_secs(3));
    assert!(counter_lines(&out_b).len() > n, "orders still runs");
    assert!(cluster_jobs(&state)
        .iter()
        .any(|(id, s)| Some(id.as_str()) == field(&reported, "jobId") && s == "RUNNING"));
}
