//! Drift on real Flink with the local runtime and a real Git remote: a job cancelled
//! through the REST API (`diff` exits 1 and names it; under `report` the status branch
//! records it and nothing restarts; under `heal` the job comes back from its newest
//! checkpoint and the counts continue), then rescaled through the REST API (the drift with
//! old and new parallelism on the status branch, healed back in place). The baseline
//! `diff` before any drift exits 0: nothing the runtime or Flink adds reads as drift.

use std::path::Path;
use std::time::Duration;

use crate::harness::flink::{
    assert_continues, counter_lines, field, flink_env, state_at, wait_for, wait_lines,
    AgentProcess, Remote, Slot,
};
use crate::harness::flink_gitops;

const STATUS: &str = "default/FlinkDeployment/drifty.yaml";

fn manifest(out: &Path) -> String {
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: drifty
spec:
  flinkVersion: v2_3
  serviceAccount: flink
  flinkConfiguration:
    taskmanager.numberOfTaskSlots: "2"
    jobmanager.scheduler: adaptive
    execution.checkpointing.interval: 500ms
  jobManager:
    resource: {{memory: 1g, cpu: 1}}
  taskManager:
    replicas: 1
    resource: {{memory: 1g, cpu: 1}}
  job:
    jarURI: file://{jar}
    entryClass: lab.StatefulCounterJob
    parallelism: 1
    upgradeMode: last-state
    args: ["--version", "v1", "--out", "{out}", "--rate", "20"]
"#,
        jar = flink_env().job_jar(),
        out = out.display()
    )
}

/// curl against the cluster's REST API (a frozen JobManager cannot hang the test).
fn curl(state: &Path, args: &[&str], path: &str) -> Option<serde_json::Value> {
    curl_on(state, "drifty", args, path)
}

fn vertices(state: &Path, job: &str) -> Vec<(String, u64)> {
    curl(state, &[], &format!("/jobs/{job}"))
        .and_then(|v| v["vertices"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|v| {
            (
                v["id"].as_str().unwrap_or("").to_string(),
                v["parallelism"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn diff(remote: &Remote, state: &Path) -> (i32, serde_json::Value) {
    let state_arg = state.display().to_string();
    let url = remote.url();
    let run = flink_gitops(
        &remote.scratch("diff"),
        &[
            "diff",
            "--repo",
            &url,
            "--state-dir",
            &state_arg,
            "-o",
            "json",
        ],
    );
    (run.code, run.json())
}

fn drift_items(remote: &Remote) -> Vec<serde_yaml::Value> {
    remote
        .status(STATUS)
        .and_then(|s| s["drift"]["items"].as_sequence().cloned())
        .unwrap_or_default()
}

#[test]
fn drift_of_an_application_on_real_flink() {
    let _slot = Slot::take();
    let remote = Remote::new();
    let state = remote.scratch("agent");
    let out = remote.scratch("out").join("drifty.out");
    remote.write("apps/drifty.yaml", &manifest(&out));
    let c1 = remote.push("drifty");
    let mut agent = AgentProcess::start(&remote.url(), &state, &[]);
    let s1 = state_at(&remote, &agent, STATUS, &c1, "STABLE");
    wait_lines(&agent, &out, "v1", 0);
    let job1 = field(&s1, "jobId").expect("job id").to_string();

    // Nothing drifts right after the deploy: the JobManager's configuration, vertices and
    // TaskManagers are what Git says.
    let (code, report) = diff(&remote, &state);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["summary"]["inSync"], 1, "{report:#}");

    // Cancelled through the REST API.
    curl(
        &state,
        &["-X", "PATCH"],
        &format!("/jobs/{job1}?mode=cancel"),
    )
    .expect("cancel");
    let items = wait_for(
        Duration::from_secs(60),
        "the drift on the status branch",
        &agent,
        || Some(drift_items(&remote)).filter(|i| !i.is_empty()),
    );
    assert_eq!(field(&items[0], "kind"), Some("job-state"));
    assert_eq!(field(&items[0], "found"), Some("CANCELED"));
    let s = remote.status(STATUS).expect("status");
    assert_eq!(field(&s["drift"], "policy"), Some("report"));
    assert_eq!(field(&s["drift"], "revision"), Some(c1.as_str()));
    let (code, report) = diff(&remote, &state);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["resources"][0]["name"], "drifty");
    assert_eq!(report["resources"][0]["status"], "drifted");
    assert_eq!(report["resources"][0]["items"][0]["found"], "CANCELED");
    // Report: nothing is restarted, whatever the agent saw since (a few cycles pass while
    // diff runs).
    let log = remote.status_log().join("\n");
    assert!(!log.contains("start the job from"), "{log}");
    let s = remote.status(STATUS).expect("status");
    assert_eq!(field(&s, "jobId"), Some(job1.as_str()), "no new job");

    // Heal: started again from its newest checkpoint; the counts continue.
    let from = counter_lines(&out).len();
    agent.restart_with_args(&["--drift", "heal"]);
    let s2 = wait_for(
        Duration::from_secs(180),
        "the job started again and the drift cleared",
        &agent,
        || {
            let s = remote.status(STATUS)?;
            (field(&s, "lifecycleState") == Some("STABLE")
                && field(&s, "jobId") != Some(job1.as_str())
                && s.get("drift").is_none())
            .then_some(s)
        },
    );
    wait_lines(&agent, &out, "v1", from);
    assert_continues(&out, from, "v1", false, "healed after a cancel");
    let job2 = field(&s2, "jobId").expect("job id").to_string();

    // Rescaled through the REST API (every vertex to 2): the drift says 1 and 2; the job is
    // rescaled back in place.
    let before = vertices(&state, &job2);
    assert!(before.iter().all(|(_, p)| *p == 1), "{before:?}");
    let body = serde_json::Value::Object(
        before
            .iter()
            .map(|(id, _)| {
                (
                    id.clone(),
                    serde_json::json!({"parallelism": {"lowerBound": 1, "upperBound": 2}}),
                )
            })
            .collect(),
    )
    .to_string();
    curl(
        &state,
        &[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/json",
            "-d",
            &body,
        ],
        &format!("/jobs/{job2}/resource-requirements"),
    )
    .expect("PUT resource-requirements");
    let seen = wait_for(
        Duration::from_secs(120),
        "the rescale recorded as drift",
        &agent,
        || {
            remote.status_log().into_iter().find(|m| {
                m.contains("drift (heal): parallelism") && m.contains("expected 1, found 2")
            })
        },
    );
    assert!(seen.starts_with("drifty:"), "{seen}");
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let s3 = loop {
        let s = remote.status(STATUS).expect("status");
        if s.get("drift").is_none() && field(&s, "lifecycleState") == Some("STABLE") {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the drift was not healed: {:?}\nSTATUSLOG\n{}\nvertices {:?}\noverview {:?}",
            s.get("drift"),
            remote.status_log().join("\n"),
            vertices(&state, &job2),
            curl(&state, &[], "/jobs/overview")
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let log = remote.status_log().join("\n");
    assert_eq!(
        field(&s3, "jobId"),
        Some(job2.as_str()),
        "rescaled in place:\n{log}"
    );
    assert!(log.contains("rescale in place"), "{log}");
    wait_for(
        Duration::from_secs(120),
        "the vertices back at parallelism 1",
        &agent,
        || {
            vertices(&state, &job2)
                .iter()
                .all(|(_, p)| *p == 1)
                .then_some(())
        },
    );
}

/// curl against a named local cluster's REST API.
fn curl_on(state: &Path, cluster: &str, args: &[&str], path: &str) -> Option<serde_json::Value> {
    let text =
        std::fs::read_to_string(state.join(format!("clusters/default/{cluster}/cluster.json")))
            .ok()?;
    let file: serde_json::Value = serde_json::from_str(&text).ok()?;
    let port = file["restPort"].as_u64()?;
    let out = std::process::Command::new("curl")
        .args(["-sf", "-m", "30"])
        .args(args)
        .arg(format!("http://localhost:{port}{path}"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null))
}

/// A job submitted by hand to a session cluster is reported as unmanaged and left running;
/// a rescale of a session job whose parallelism is under an ignore rule is no drift.
#[test]
fn unmanaged_jobs_and_ignore_rules_on_a_real_session_cluster() {
    let _slot = Slot::take();
    let remote = Remote::new();
    let state = remote.scratch("agent");
    let out = remote.scratch("out").join("tracked.out");
    let by_hand_out = remote.scratch("out").join("adhoc.out");
    remote.write(
        "session/pool.yaml",
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: pool
spec:
  flinkVersion: v2_3
  serviceAccount: flink
  flinkConfiguration:
    taskmanager.numberOfTaskSlots: "4"
    jobmanager.scheduler: adaptive
  jobManager:
    resource: {memory: 1g, cpu: 1}
  taskManager:
    replicas: 1
    resource: {memory: 1g, cpu: 1}
"#,
    );
    remote.write(
        "session/tracked.yaml",
        &format!(
            r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkSessionJob
metadata:
  name: tracked
  annotations:
    flink-gitops.io/drift-ignore: "job.parallelism"
spec:
  deploymentName: pool
  job:
    jarURI: file://{jar}
    entryClass: lab.StatefulCounterJob
    parallelism: 1
    upgradeMode: stateless
    args: ["--version", "t1", "--out", "{out}", "--rate", "20"]
"#,
            jar = flink_env().job_jar(),
            out = out.display()
        ),
    );
    let c1 = remote.push("a session cluster and a session job");
    let agent = AgentProcess::start(&remote.url(), &state, &[]);
    let pool = "default/FlinkDeployment/pool.yaml";
    let tracked = "default/FlinkSessionJob/tracked.yaml";
    state_at(&remote, &agent, pool, &c1, "STABLE");
    let s1 = state_at(&remote, &agent, tracked, &c1, "STABLE");
    wait_lines(&agent, &out, "t1", 0);
    let tracked_job = field(&s1, "jobId").expect("job id").to_string();

    // Submitted by hand: upload the jar and run it.
    let jar = format!("jarfile=@{}", flink_env().job_jar());
    let uploaded =
        curl_on(&state, "pool", &["-X", "POST", "-F", &jar], "/jars/upload").expect("jar upload");
    let jar_id = uploaded["filename"]
        .as_str()
        .and_then(|f| f.rsplit('/').next())
        .expect("uploaded jar id")
        .to_string();
    let body = serde_json::json!({
        "entryClass": "lab.StatefulCounterJob",
        "programArgsList": ["--version", "adhoc", "--out", by_hand_out.display().to_string(), "--rate", "5"],
        "parallelism": 1
    })
    .to_string();
    let ran = curl_on(
        &state,
        "pool",
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            &body,
        ],
        &format!("/jars/{jar_id}/run"),
    )
    .expect("run by hand");
    let by_hand = ran["jobid"].as_str().expect("job id").to_string();

    // Reported on the session cluster's record as unmanaged, named by its job id.
    let items = wait_for(
        Duration::from_secs(90),
        "the unmanaged job on the status branch",
        &agent,
        || {
            remote
                .status(pool)
                .and_then(|s| s["drift"]["items"].as_sequence().cloned())
                .filter(|i| !i.is_empty())
        },
    );
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(
        field(&items[0], "subject").is_some_and(|s| s.contains(&by_hand)),
        "{items:?}"
    );
    assert!(
        field(&items[0], "kind").is_some_and(|k| k.contains("unmanaged")),
        "{items:?}"
    );
    // `diff` says so too, and exits 1.
    let (code, report) = diff(&remote, &state);
    assert_eq!(code, 1, "{report:#}");
    assert!(report.to_string().contains(&by_hand), "{report:#}");
    // Left running, by the default policy; the managed job too.
    std::thread::sleep(Duration::from_secs(3));
    let jobs = curl_on(&state, "pool", &[], "/jobs/overview").expect("jobs");
    let state_of = |id: &str| {
        jobs["jobs"]
            .as_array()
            .and_then(|js| js.iter().find(|j| j["jid"] == id))
            .and_then(|j| j["state"].as_str().map(str::to_string))
    };
    assert_eq!(state_of(&by_hand).as_deref(), Some("RUNNING"));
    assert_eq!(state_of(&tracked_job).as_deref(), Some("RUNNING"));
    assert!(remote
        .status(tracked)
        .is_some_and(|s| s.get("drift").is_none()));

    // The managed job rescaled by hand: its parallelism is under an ignore rule, so no
    // drift is recorded and nothing is rescaled back.
    let vertices: Vec<String> = curl_on(&state, "pool", &[], &format!("/jobs/{tracked_job}"))
        .and_then(|v| v["vertices"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v["id"].as_str().map(str::to_string))
        .collect();
    assert!(!vertices.is_empty());
    let body = serde_json::Value::Object(
        vertices
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    serde_json::json!({"parallelism": {"lowerBound": 1, "upperBound": 2}}),
                )
            })
            .collect(),
    )
    .to_string();
    curl_on(
        &state,
        "pool",
        &[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/json",
            "-d",
            &body,
        ],
        &format!("/jobs/{tracked_job}/resource-requirements"),
    )
    .expect("PUT resource-requirements");
    wait_for(
        Duration::from_secs(120),
        "the session job running at parallelism 2",
        &agent,
        || {
            let v = curl_on(&state, "pool", &[], &format!("/jobs/{tracked_job}"))?;
            let all_two = v["vertices"]
                .as_array()?
                .iter()
                .any(|x| x["parallelism"].as_u64() == Some(2));
            (all_two && v["state"] == "RUNNING").then_some(())
        },
    );
    // Several agent cycles (1 s interval) later: still no drift on the session job, and
    // it still runs at 2.
    std::thread::sleep(Duration::from_secs(8));
    let s = remote.status(tracked).expect("status");
    assert!(s.get("drift").is_none(), "{s:?}");
    let v = curl_on(&state, "pool", &[], &format!("/jobs/{tracked_job}")).expect("job");
    assert!(
        v["vertices"]
            .as_array()
            .is_some_and(|vs| vs.iter().any(|x| x["parallelism"].as_u64() == Some(2))),
        "not rescaled back: {v:#}"
    );
    assert!(remote
        .status_log()
        .iter()
        .all(|m| !m.starts_with("tracked:") || !m.contains("drift")));
}
