//! The agent on real Flink: one application-mode job through its whole life, pushed to a
//! bare repository served over file://. Every upgrade is checked on the job's own output:
//! the stateful counter proves whether state was carried over.

use std::path::Path;
use std::time::Duration;

use crate::harness::flink::{
    assert_continues, assert_restarted, counter_lines, field, flink_env, savepoints, state_at,
    wait_for, wait_lines, AgentProcess, Remote, Slot,
};

const STATUS: &str = "default/FlinkDeployment/payments-etl.yaml";
const FILE: &str = "apps/payments-etl.yaml";

fn manifest(version: &str, mode: &str, out: &Path, job_extra: &str, spec_extra: &str) -> String {
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: payments-etl
spec:
  flinkVersion: v2_3
  serviceAccount: flink
  flinkConfiguration:
    taskmanager.numberOfTaskSlots: "1"
  jobManager:
    resource: {{memory: 1g, cpu: 1}}
  taskManager:
    resource: {{memory: 1g, cpu: 1}}
{spec_extra}  job:
    jarURI: file://{jar}
    entryClass: lab.StatefulCounterJob
    parallelism: 1
    upgradeMode: {mode}
    args: ["--version", "{version}", "--out", "{out}", "--rate", "20", "--checkpointMs", "500"]
{job_extra}"#,
        jar = flink_env().job_jar(),
        out = out.display()
    )
}

fn job_id(status: &serde_yaml::Value) -> String {
    field(status, "jobId").unwrap_or_default().to_string()
}

/// Waits for STABLE at `commit` and a few lines of `version` after line `from`.
fn stable_at(
    remote: &Remote,
    agent: &AgentProcess,
    commit: &str,
    out: &Path,
    version: &str,
    from: usize,
) -> serde_yaml::Value {
    let status = state_at(remote, agent, STATUS, commit, "STABLE");
    wait_lines(agent, out, version, from);
    status
}

#[test]
fn application_job_lifecycle_on_real_flink() {
    let _slot = Slot::take();
    let remote = Remote::new();
    let out = remote.scratch("out").join("payments.out");
    let state = remote.scratch("agent");
    let lines = || counter_lines(&out).len();
    let nonce = "    savepointTriggerNonce: 1\n";

    // v1: deployed, running, STABLE on the status branch.
    remote.write(FILE, &manifest("v1", "savepoint", &out, "", ""));
    let c1 = remote.push("payments-etl v1");
    let mut agent = AgentProcess::start(&remote.url(), &state, &[]);
    let s1 = stable_at(&remote, &agent, &c1, &out, "v1", 0);
    assert_eq!(field(&s1, "jobState"), Some("RUNNING"));
    assert!(
        remote
            .status_log()
            .iter()
            .any(|m| m.starts_with("payments-etl:") && m.contains("-> STABLE")),
        "{:?}",
        remote.status_log()
    );

    // v2 with upgradeMode savepoint: counts continue exactly; the upgrade savepoint is on
    // the status branch with the revision that wrote it and the one restored from it.
    remote.write(FILE, &manifest("v2", "savepoint", &out, "", ""));
    let n = lines();
    let c2 = remote.push("payments-etl v2");
    let s2 = stable_at(&remote, &agent, &c2, &out, "v2", n);
    assert_continues(&out, n, "v2", true, "savepoint upgrade");
    let upgrade = savepoints(&s2)
        .into_iter()
        .rev()
        .find(|s| field(s, "trigger") == Some("upgrade"))
        .expect("an upgrade savepoint");
    assert_eq!(field(&upgrade, "revision"), Some(c1.as_str()));
    assert_eq!(field(&upgrade, "forRevision"), Some(c2.as_str()));
    let location = field(&upgrade, "location").expect("location").to_string();
    assert!(
        Path::new(location.trim_start_matches("file:"))
            .join("_metadata")
            .exists(),
        "savepoint {location} is on disk"
    );
    assert_ne!(job_id(&s1), job_id(&s2));

    // git revert of v2: v1 runs again, from v2's state.
    let n = lines();
    let c3 = remote.revert(&c2);
    stable_at(&remote, &agent, &c3, &out, "v1", n);
    assert_continues(&out, n, "v1", true, "revert");

    // savepointTriggerNonce: a manual savepoint, no restart.
    remote.write(FILE, &manifest("v1", "savepoint", &out, nonce, ""));
    let c4 = remote.push("manual savepoint");
    let before_nonce = remote.status(STATUS).expect("status");
    let s4 = wait_for(
        Duration::from_secs(120),
        "a manual savepoint",
        &agent,
        || {
            let s = remote.status(STATUS)?;
            (savepoints(&s)
                .iter()
                .any(|p| field(p, "trigger") == Some("manual"))
                && field(&s, "lastReconciledRevision") == Some(c4.as_str()))
            .then_some(s)
        },
    );
    assert_eq!(
        job_id(&s4),
        job_id(&before_nonce),
        "a savepoint trigger restarts nothing"
    );

    // restartNonce: a restart with state.
    remote.write(
        FILE,
        &manifest("v1", "savepoint", &out, nonce, "  restartNonce: 1\n"),
    );
    let n = lines();
    let c5 = remote.push("restart");
    let s5 = stable_at(&remote, &agent, &c5, &out, "v1", n);
    assert_ne!(job_id(&s5), job_id(&s4), "restartNonce restarts the job");
    assert_continues(&out, n, "v1", true, "restartNonce");
    let fresh_starts = counter_lines(&out).iter().filter(|l| l.seq == 0).count();
    assert_eq!(
        fresh_starts, 1,
        "after the restart nothing started again from an empty state"
    );

    // Suspend, then resume via job.state: state continues.
    remote.write(
        FILE,
        &manifest(
            "v1",
            "savepoint",
            &out,
            &format!("{nonce}    state: suspended\n"),
            "  restartNonce: 1\n",
        ),
    );
    let c6 = remote.push("suspend");
    let s6 = state_at(&remote, &agent, STATUS, &c6, "SUSPENDED");
    assert!(savepoints(&s6)
        .iter()
        .any(|p| field(p, "trigger") == Some("suspend")));
    assert!(
        !state
            .join("clusters/default/payments-etl/cluster.json")
            .exists(),
        "a suspended application has no processes"
    );
    remote.write(
        FILE,
        &manifest("v1", "savepoint", &out, nonce, "  restartNonce: 1\n"),
    );
    let n = lines();
    let c7 = remote.push("resume");
    stable_at(&remote, &agent, &c7, &out, "v1", n);
    assert_continues(&out, n, "v1", true, "resume");

    // last-state upgrade: from the newest retained checkpoint (may replay, never resets).
    remote.write(
        FILE,
        &manifest("v3", "last-state", &out, nonce, "  restartNonce: 1\n"),
    );
    let n = lines();
    let c8 = remote.push("v3 last-state");
    stable_at(&remote, &agent, &c8, &out, "v3", n);
    assert_continues(&out, n, "v3", false, "last-state upgrade");

    // stateless upgrade: the new job starts empty.
    remote.write(
        FILE,
        &manifest("v4", "stateless", &out, "", "  restartNonce: 1\n"),
    );
    let n = lines();
    let c9 = remote.push("v4 stateless");
    stable_at(&remote, &agent, &c9, &out, "v4", n);
    assert_restarted(&out, n, "v4", "stateless upgrade");

    // Back to savepoint mode, then remove the manifest: a final savepoint, processes gone.
    remote.write(
        FILE,
        &manifest("v5", "savepoint", &out, "", "  restartNonce: 1\n"),
    );
    let n = lines();
    let c10 = remote.push("v5 savepoint");
    stable_at(&remote, &agent, &c10, &out, "v5", n);
    remote.remove(FILE);
    let c11 = remote.push("remove payments-etl");
    let deleted = wait_for(Duration::from_secs(120), "DELETED", &agent, || {
        let s = remote.status(STATUS)?;
        (field(&s, "lifecycleState") == Some("DELETED")).then_some(s)
    });
    let last = savepoints(&deleted)
        .last()
        .cloned()
        .expect("a final savepoint");
    assert_eq!(field(&last, "trigger"), Some("delete"));
    assert!(
        !state
            .join("clusters/default/payments-etl/cluster.json")
            .exists(),
        "processes are gone"
    );

    // The removal reverted: back with its state.
    let n = lines();
    let c12 = remote.revert(&c11);
    let s12 = stable_at(&remote, &agent, &c12, &out, "v5", n);
    assert_continues(&out, n, "v5", true, "revert of the removal");

    // The agent restarted while all is stable: no job restarts.
    agent.kill();
    agent.restart(&[]);
    std::thread::sleep(Duration::from_secs(8));
    let after = remote.status(STATUS).expect("status");
    assert_eq!(
        job_id(&after),
        job_id(&s12),
        "a restarted agent adopts the running job"
    );
    assert_eq!(field(&after, "lifecycleState"), Some("STABLE"));
    assert!(
        agent.log_text().contains("read status"),
        "the agent read its status on start"
    );
}
