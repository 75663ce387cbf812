//! The engine on real Flink: a JobManager that stops answering is unknown, not gone; an
//! in-place rescale under the adaptive scheduler; and one resource's slow savepoint that
//! delays no other resource.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::flink::{
    assert_continues, counter_lines, field, flink_env, state_at, wait_for, wait_lines,
    AgentProcess, CounterLine, Remote, Slot,
};

fn app(name: &str, version: &str, out: &Path, conf: &str, args_extra: &str) -> String {
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: {name}
spec:
  flinkVersion: v2_3
  serviceAccount: flink
  flinkConfiguration:
    taskmanager.numberOfTaskSlots: "2"
{conf}  jobManager:
    resource: {{memory: 1g, cpu: 1}}
  taskManager:
    replicas: 1
    resource: {{memory: 1g, cpu: 1}}
  job:
    jarURI: file://{jar}
    entryClass: lab.StatefulCounterJob
    parallelism: 1
    upgradeMode: savepoint
    args: ["--version", "{version}", "--out", "{out}", "--rate", "20", "--checkpointMs", "500"{args_extra}]
"#,
        jar = flink_env().job_jar(),
        out = out.display()
    )
}

fn session_cluster(name: &str) -> String {
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: {name}
spec:
  flinkVersion: v2_3
  serviceAccount: flink
  flinkConfiguration:
    taskmanager.numberOfTaskSlots: "2"
  jobManager:
    resource: {{memory: 1g, cpu: 1}}
  taskManager:
    replicas: 1
    resource: {{memory: 1g, cpu: 1}}
"#
    )
}

fn session_job(name: &str, cluster: &str, version: &str, out: &Path) -> String {
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkSessionJob
metadata:
  name: {name}
spec:
  deploymentName: {cluster}
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

fn deployment(name: &str) -> String {
    format!("default/FlinkDeployment/{name}.yaml")
}

fn cluster_file(state: &Path, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(state.join(format!("clusters/default/{name}/cluster.json")))
        .unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_default()
}

/// GET on a local cluster's REST API (curl, so a frozen JobManager cannot hang the test).
fn rest(state: &Path, cluster: &str, path: &str) -> Option<serde_json::Value> {
    let port = cluster_file(state, cluster)["restPort"].as_u64()?;
    let out = std::process::Command::new("curl")
        .args(["-sf", "-m", "5", &format!("http://localhost:{port}{path}")])
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// Jobs a cluster lists that have not ended: (id, state).
fn live_jobs(state: &Path, cluster: &str) -> Vec<(String, String)> {
    let Some(v) = rest(state, cluster, "/jobs/overview") else {
        return Vec::new();
    };
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
                .filter(|(_, s)| !matches!(s.as_str(), "FINISHED" | "CANCELED" | "FAILED"))
                .collect()
        })
        .unwrap_or_default()
}

fn signal(pid: u64, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill {sig} {pid}");
}

/// Per key, the counts never start again: each line counts one more than the previous
/// line of its key (no restore from an older checkpoint, no second job).
fn assert_never_restarted(lines: &[CounterLine], what: &str) {
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    for l in lines {
        if let Some(prev) = last.get(&l.key) {
            assert_eq!(
                l.count,
                prev + 1,
                "{what}: key {} jumped from {prev} to {}",
                l.key,
                l.count
            );
        }
        last.insert(l.key, l.count);
    }
    assert!(!last.is_empty(), "{what}: no output");
}

#[test]
fn a_frozen_jobmanager_is_unknown_not_gone() {
    let _slot = Slot::take();
    let remote = Remote::new();
    let state = remote.scratch("agent");
    let out_app = remote.scratch("out").join("app.out");
    let out_job = remote.scratch("out").join("job.out");
    remote.write(
        "apps/payments.yaml",
        &app("payments", "v1", &out_app, "", ""),
    );
    remote.write("session/analytics.yaml", &session_cluster("analytics"));
    remote.write(
        "session/clicks.yaml",
        &session_job("clicks", "analytics", "s1", &out_job),
    );
    let c1 = remote.push("an application and a session job");
    let agent = AgentProcess::start(&remote.url(), &state, &["--rest-timeout", "1s"]);
    let app1 = state_at(&remote, &agent, &deployment("payments"), &c1, "STABLE");
    let job1 = state_at(
        &remote,
        &agent,
        "default/FlinkSessionJob/clicks.yaml",
        &c1,
        "STABLE",
    );
    wait_lines(&agent, &out_app, "v1", 0);
    wait_lines(&agent, &out_job, "s1", 0);
    let app_id = field(&app1, "jobId").unwrap_or_default().to_string();
    let job_id = field(&job1, "jobId").unwrap_or_default().to_string();

    // Freeze both JobManagers for longer than the REST timeout: every call times out.
    let pids: Vec<u64> = ["payments", "analytics"]
        .iter()
        .map(|c| cluster_file(&state, c)["jmPid"].as_u64().expect("jm pid"))
        .collect();
    for pid in &pids {
        signal(*pid, "-STOP");
    }
    let frozen = Instant::now();
    // The agent says so on the status branch, for both resources.
    for status in [
        deployment("payments"),
        "default/FlinkSessionJob/clicks.yaml".to_string(),
    ] {
        wait_for(
            Duration::from_secs(60),
            &format!("{status} unreachable"),
            &agent,
            || {
                let s = remote.status(&status)?;
                s.get("unreachable").is_some().then_some(())
            },
        );
    }
    // Hold the freeze for at least 8 s (many agent cycles at a 1 s interval).
    if let Some(rest) = Duration::from_secs(8).checked_sub(frozen.elapsed()) {
        std::thread::sleep(rest);
    }
    for pid in &pids {
        signal(*pid, "-CONT");
    }
    // Recovery by itself: the unreachable note goes, the same jobs run.
    for status in [
        deployment("payments"),
        "default/FlinkSessionJob/clicks.yaml".to_string(),
    ] {
        let s = wait_for(
            Duration::from_secs(60),
            &format!("{status} reachable again"),
            &agent,
            || {
                let s = remote.status(&status)?;
                (s.get("unreachable").is_none() && field(&s, "lifecycleState") == Some("STABLE"))
                    .then_some(s)
            },
        );
        let want = if status.contains("payments") {
            &app_id
        } else {
            &job_id
        };
        assert_eq!(
            field(&s, "jobId"),
            Some(want.as_str()),
            "{status}: the job id is the same"
        );
    }
    let before_app = counter_lines(&out_app).len();
    let before_job = counter_lines(&out_job).len();
    wait_lines(&agent, &out_app, "v1", before_app);
    wait_lines(&agent, &out_job, "s1", before_job);
    assert_eq!(
        live_jobs(&state, "payments"),
        vec![(app_id.clone(), "RUNNING".to_string())]
    );
    assert_eq!(
        live_jobs(&state, "analytics"),
        vec![(job_id.clone(), "RUNNING".to_string())]
    );
    assert_never_restarted(&counter_lines(&out_app), "application job");
    assert_never_restarted(&counter_lines(&out_job), "session job");
    let log = remote.status_log();
    let starts = log
        .iter()
        .filter(|l| l.contains("-> UPGRADING") && l.contains("start the job"))
        .count();
    assert_eq!(
        starts,
        2,
        "only the first two starts, nothing started again:\n{}",
        log.join("\n")
    );
}

#[test]
fn rescale_in_place_under_the_adaptive_scheduler() {
    let _slot = Slot::take();
    let remote = Remote::new();
    let state = remote.scratch("agent");
    let out = remote.scratch("out").join("rescale.out");
    let adaptive = "    jobmanager.scheduler: adaptive\n";
    remote.write(
        "apps/rescale.yaml",
        &app("rescale", "v1", &out, adaptive, ""),
    );
    let c1 = remote.push("adaptive scheduler");
    let agent = AgentProcess::start(&remote.url(), &state, &[]);
    let s1 = state_at(&remote, &agent, &deployment("rescale"), &c1, "STABLE");
    wait_lines(&agent, &out, "v1", 0);
    let job_id = field(&s1, "jobId").unwrap_or_default().to_string();
    let vertices = |state: &Path| -> BTreeMap<String, (String, u64)> {
        rest(state, "rescale", &format!("/jobs/{job_id}"))
            .and_then(|v| v["vertices"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|v| {
                (
                    v["id"].as_str().unwrap_or("").to_string(),
                    (
                        v["name"].as_str().unwrap_or("").to_string(),
                        v["parallelism"].as_u64().unwrap_or(0),
                    ),
                )
            })
            .collect()
    };
    let v = vertices(&state);
    let counter = v
        .iter()
        .find(|(_, (name, _))| name.contains("keyed-counter"))
        .map(|(id, _)| id.clone())
        .expect("the counter's vertex");
    assert_eq!(v[&counter].1, 1);

    // An override for the counter: rescaled in place, same job.
    let with_override =
        format!("{adaptive}    pipeline.jobvertex-parallelism-overrides: \"{counter}:2\"\n");
    remote.write(
        "apps/rescale.yaml",
        &app("rescale", "v1", &out, &with_override, ""),
    );
    let c2 = remote.push("rescale the counter to 2");
    let s2 = state_at(&remote, &agent, &deployment("rescale"), &c2, "STABLE");
    assert_eq!(
        field(&s2, "jobId"),
        Some(job_id.as_str()),
        "rescaled in place: the job id is the same"
    );
    wait_for(
        Duration::from_secs(60),
        "the counter at parallelism 2",
        &agent,
        || (vertices(&state).get(&counter).map(|v| v.1) == Some(2)).then_some(()),
    );
    assert_eq!(
        live_jobs(&state, "rescale"),
        vec![(job_id.clone(), "RUNNING".to_string())]
    );
    let log = remote.status_log().join("\n");
    assert!(
        log.contains("rescale in place"),
        "the status branch says how:\n{log}"
    );

    // The override removed: the operator upgrades (FLINK-32057), and so does the agent,
    // with the job's upgrade mode: a new job from a savepoint, counts continue.
    let from = counter_lines(&out).len();
    remote.write(
        "apps/rescale.yaml",
        &app("rescale", "v2", &out, adaptive, ""),
    );
    let c3 = remote.push("remove the override");
    let s3 = state_at(&remote, &agent, &deployment("rescale"), &c3, "STABLE");
    assert_ne!(
        field(&s3, "jobId"),
        Some(job_id.as_str()),
        "a removed override is an upgrade"
    );
    wait_lines(&agent, &out, "v2", from);
    assert_continues(
        &out,
        from,
        "v2",
        false,
        "upgrade after the override was removed",
    );
}

#[test]
fn a_slow_savepoint_does_not_delay_another_upgrade() {
    let _slot = Slot::take();
    let remote = Remote::new();
    let state = remote.scratch("agent");
    let out_slow = remote.scratch("out").join("slow.out");
    let out_quick = remote.scratch("out").join("quick.out");
    let delay = remote.scratch("out").join("snapshot-delay-ms");
    // `slow` is a session job whose snapshots take as long as the delay file says (the
    // sink waits before each barrier); `quick` is an application.
    let slow_job = |version: &str| {
        session_job("slow", "analytics", version, &out_slow).replace(
            "\"500\"]",
            &format!("\"500\", \"--snapshotDelayFile\", \"{}\"]", delay.display()),
        )
    };
    remote.write("session/analytics.yaml", &session_cluster("analytics"));
    remote.write("session/slow.yaml", &slow_job("v1"));
    remote.write("apps/quick.yaml", &app("quick", "v1", &out_quick, "", ""));
    let c1 = remote.push("a session job and an application");
    let agent = AgentProcess::start(&remote.url(), &state, &[]);
    let slow_status = "default/FlinkSessionJob/slow.yaml";
    state_at(&remote, &agent, slow_status, &c1, "STABLE");
    state_at(&remote, &agent, &deployment("quick"), &c1, "STABLE");
    wait_lines(&agent, &out_slow, "v1", 0);
    wait_lines(&agent, &out_quick, "v1", 0);

    // Every snapshot of `slow` now takes 60 s; its savepoint upgrade starts.
    std::fs::write(&delay, "60000").expect("delay file");
    remote.write("session/slow.yaml", &slow_job("v2"));
    let c2 = remote.push("upgrade slow");
    // (The running spec stays the reconciled one until the new one starts.)
    state_at(&remote, &agent, slow_status, &c1, "UPGRADING");
    let stop_seen = Instant::now();
    // While it waits for its savepoint, a new commit upgrades `quick`.
    let from_quick = counter_lines(&out_quick).len();
    remote.write("apps/quick.yaml", &app("quick", "v2", &out_quick, "", ""));
    let c3 = remote.push("upgrade quick");
    let pushed = Instant::now();
    state_at(&remote, &agent, &deployment("quick"), &c3, "STABLE");
    let took = pushed.elapsed();
    let slow_now = remote.status(slow_status).expect("slow status");
    assert_eq!(
        field(&slow_now, "lifecycleState"),
        Some("UPGRADING"),
        "quick ({took:?}) finished while slow still waits for its savepoint"
    );
    wait_lines(&agent, &out_quick, "v2", from_quick);
    assert_continues(
        &out_quick,
        from_quick,
        "v2",
        true,
        "quick's savepoint upgrade",
    );
    // Later snapshots are quick again; slow finishes from its savepoint.
    std::fs::remove_file(&delay).expect("remove delay file");
    let done = wait_for(
        Duration::from_secs(240),
        "slow STABLE on v2",
        &agent,
        || {
            let s = remote.status(slow_status)?;
            let rev = field(&s, "lastReconciledRevision")?;
            (field(&s, "lifecycleState") == Some("STABLE") && (rev == c2 || rev == c3))
                .then_some(())
        },
    );
    let slow_took = stop_seen.elapsed();
    let _ = done;
    wait_lines(&agent, &out_slow, "v2", 0);
    assert_continues(&out_slow, 0, "v2", true, "slow's savepoint upgrade");
    assert!(
        slow_took > took,
        "the slow savepoint ({slow_took:?}) outlasted quick's whole upgrade ({took:?})"
    );
    eprintln!("quick upgraded in {took:?} while slow's savepoint was in flight ({slow_took:?})");
}
