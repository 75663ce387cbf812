//! Failure handling on real Flink (issue 9): a release whose job fails is rolled back to the
//! last stable spec with the state taken before it; `job.restart.failed` restarts a failed
//! job from its newest checkpoint (and leaves it FAILED when off); a JobManager killed with
//! SIGKILL is recovered with its state. Every claim is checked on the stateful counter's
//! own output and on the status branch.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::harness::flink::{
    counter_lines, field, flink_env, state_at, wait_for, wait_lines, AgentProcess, CounterLine,
    Remote, Slot, KEYS,
};
use crate::harness::flink_gitops;

const STATUS: &str = "default/FlinkDeployment/ledger.yaml";
const FILE: &str = "apps/ledger.yaml";

/// The stateful counter at 20 records/s, savepoint upgrades, rollback on, a 10 s stability
/// window (so a release that fails within it is rolled back), checkpoints every 500 ms.
fn manifest(version: &str, out: &Path, args_extra: &str, conf_extra: &str) -> String {
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: ledger
spec:
  flinkVersion: v2_3
  serviceAccount: flink
  flinkConfiguration:
    taskmanager.numberOfTaskSlots: "1"
    execution.checkpointing.interval: 500 ms
    kubernetes.operator.deployment.rollback.enabled: "true"
    flink-gitops.deployment.stability.window: 10 s
{conf_extra}  jobManager:
    resource: {{memory: 1g, cpu: 1}}
  taskManager:
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

fn job_id(status: &serde_yaml::Value) -> String {
    field(status, "jobId").unwrap_or_default().to_string()
}

/// Per key, the last count `version` wrote before line `until`.
fn last_counts(lines: &[CounterLine], until: usize, version: &str) -> BTreeMap<u64, u64> {
    lines[..until]
        .iter()
        .filter(|l| l.version == version)
        .map(|l| (l.key, l.count))
        .collect()
}

/// Every line's state agrees with its source position (count = seq / keys + 1): whatever
/// restarts happened, each one restored the state that belongs to where it resumed.
fn assert_consistent(lines: &[CounterLine], what: &str) {
    for l in lines {
        assert_eq!(
            l.count,
            l.seq / KEYS + 1,
            "{what}: count and source position disagree: {l:?}"
        );
    }
}

#[test]
fn rollback_restart_of_failed_jobs_and_jobmanager_recovery_on_real_flink() {
    let _slot = Slot::take();
    let remote = Remote::new();
    let out = remote.scratch("out").join("ledger.out");
    let state = remote.scratch("agent");

    // v1: STABLE only after the stability window and a checkpoint.
    remote.write(FILE, &manifest("v1", &out, "", ""));
    let c1 = remote.push("ledger v1");
    let mut agent = AgentProcess::start(&remote.url(), &state, &[]);
    let s1 = state_at(&remote, &agent, STATUS, &c1, "STABLE");
    wait_lines(&agent, &out, "v1", 0);

    // v2 fails after 30 records (1.5 s, inside the window): rolled back at once to v1,
    // restored from the savepoint the upgrade took, not from v2's checkpoints.
    remote.write(FILE, &manifest("v2", &out, r#", "--failAfter", "30""#, ""));
    let c2 = remote.push("ledger v2: fails after 30 records");
    let rolled = state_at(&remote, &agent, STATUS, &c2, "ROLLED_BACK");
    assert_eq!(field(&rolled, "lastStableRevision"), Some(c1.as_str()));
    let cause = rolled.get("rollbackCause").expect("rollbackCause recorded");
    assert_eq!(field(cause, "reason"), Some("JobFailed"), "{rolled:?}");
    assert!(
        field(cause, "message").is_some_and(|m| m.contains("failing on purpose")),
        "Flink's cause is recorded: {cause:?}"
    );
    assert_ne!(job_id(&rolled), job_id(&s1), "v1 runs as a new job");
    let all = counter_lines(&out);
    let first_v2 = all
        .iter()
        .position(|l| l.version == "v2")
        .expect("v2 ran before it failed");
    let before_v2 = last_counts(&all, first_v2, "v1");
    // v1 again, after the last v2 line.
    let last_v2 = wait_for(
        Duration::from_secs(60),
        "v1 after the rollback",
        &agent,
        || {
            let lines = counter_lines(&out);
            let last_v2 = lines.iter().rposition(|l| l.version == "v2")?;
            (lines
                .iter()
                .skip(last_v2)
                .filter(|l| l.version == "v1")
                .count()
                >= 2 * KEYS as usize)
                .then_some(last_v2)
        },
    );
    let lines = counter_lines(&out);
    for key in 0..KEYS {
        let first = lines
            .iter()
            .skip(last_v2)
            .find(|l| l.version == "v1" && l.key == key)
            .expect("v1 line per key");
        assert_eq!(
            Some(first.count),
            before_v2.get(&key).map(|c| c + 1),
            "key {key}: v1 continues exactly from the savepoint taken before v2 (v2's records are not counted): {first:?}"
        );
    }
    // `status` says it in words.
    let status = flink_gitops(
        remote.work().as_path(),
        &["status", "--repo", &remote.url()],
    );
    eprintln!("status after the rollback:\n{}", status.stdout);
    assert!(
        status.stdout.contains("Git wants revision")
            && status.stdout.contains(&c2[..12])
            && status.stdout.contains(&c1[..12])
            && status.stdout.contains("failing on purpose"),
        "{}",
        status.stdout
    );
    // `diff` says it too: live differs from Git (exit 1), and why.
    let state_arg = state.display().to_string();
    let diff = flink_gitops(
        &remote.scratch("diff"),
        &["diff", "--repo", &remote.url(), "--state-dir", &state_arg],
    );
    assert_eq!(diff.code, 1, "{}{}", diff.stdout, diff.stderr);
    assert!(
        diff.stdout.contains("Git wants revision") && diff.stdout.contains(&c1[..12]),
        "{}",
        diff.stdout
    );
    // The failed spec is not tried again while Git does not change.
    let v2_lines = lines.iter().filter(|l| l.version == "v2").count();
    std::thread::sleep(Duration::from_secs(6));
    let still = remote.status(STATUS).expect("status");
    assert_eq!(field(&still, "lifecycleState"), Some("ROLLED_BACK"));
    assert_eq!(job_id(&still), job_id(&rolled));
    assert_eq!(
        counter_lines(&out)
            .iter()
            .filter(|l| l.version == "v2")
            .count(),
        v2_lines,
        "v2 did not run again"
    );

    // v3 with job.restart.failed: fails after 300 records (15 s, after it became STABLE),
    // and each time is restarted from its newest checkpoint: the counts never start again.
    let restart_on = "    kubernetes.operator.job.restart.failed: \"true\"\n";
    remote.write(
        FILE,
        &manifest("v3", &out, r#", "--failAfter", "300""#, restart_on),
    );
    let c3 = remote.push("ledger v3: fails after 300 records, restart.failed on");
    let s3 = state_at(&remote, &agent, STATUS, &c3, "STABLE");
    let first_v3_job = job_id(&s3);
    wait_for(
        Duration::from_secs(120),
        "v3 restarted after a failure",
        &agent,
        || {
            let s = remote.status(STATUS)?;
            (job_id(&s) != first_v3_job && field(&s, "lifecycleState") == Some("STABLE"))
                .then_some(())
        },
    );
    assert!(
        remote.status_log().iter().any(|m| m.contains("FAILED")),
        "the failure was recorded before the restart: {:?}",
        remote.status_log()
    );
    wait_for(
        Duration::from_secs(60),
        "v3 output after the restart",
        &agent,
        || {
            let v3: Vec<CounterLine> = counter_lines(&out)
                .into_iter()
                .filter(|l| l.version == "v3")
                .collect();
            // A restart from a checkpoint writes some counts again: a count lower than the one
            // before it, for some key.
            let mut last: BTreeMap<u64, u64> = BTreeMap::new();
            let mut went_back = false;
            for l in &v3 {
                if last.get(&l.key).is_some_and(|c| l.count <= *c) {
                    went_back = true;
                }
                last.insert(l.key, l.count);
            }
            (went_back && v3.len() > 320).then_some(())
        },
    );
    let v3: Vec<CounterLine> = counter_lines(&out)
        .into_iter()
        .filter(|l| l.version == "v3")
        .collect();
    assert_consistent(&v3, "restart.failed");
    let first_seq = v3.first().map(|l| l.seq).unwrap_or_default();
    assert!(
        v3.iter().skip(3 * KEYS as usize).all(|l| l.seq > first_seq),
        "a restart resumed from a checkpoint, never from the start"
    );

    // restart.failed off (an operator key: recorded without a restart): the next failure
    // stays FAILED and is reported.
    remote.write(FILE, &manifest("v3", &out, r#", "--failAfter", "300""#, ""));
    let c4 = remote.push("ledger: restart.failed off");
    let failed = state_at(&remote, &agent, STATUS, &c4, "FAILED");
    let error = failed.get("lastError").expect("lastError");
    assert_eq!(field(error, "reason"), Some("JobFailed"));
    assert!(field(error, "message").is_some_and(|m| m.contains("failing on purpose")));
    std::thread::sleep(Duration::from_secs(5));
    let still = remote.status(STATUS).expect("status");
    assert_eq!(field(&still, "lifecycleState"), Some("FAILED"));
    assert_eq!(job_id(&still), job_id(&failed), "not restarted");

    // v5 runs; its JobManager is killed with SIGKILL: recovered from the newest retained
    // checkpoint, the counts continue.
    remote.write(FILE, &manifest("v5", &out, "", ""));
    let c5 = remote.push("ledger v5");
    let s5 = state_at(&remote, &agent, STATUS, &c5, "STABLE");
    let n = counter_lines(&out).len();
    wait_lines(&agent, &out, "v5", n);
    std::thread::sleep(Duration::from_secs(2)); // a few checkpoints
    let cluster: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("clusters/default/ledger/cluster.json"))
            .expect("cluster file"),
    )
    .expect("cluster json");
    let jm = cluster["jmPid"].as_u64().expect("jm pid");
    let n = counter_lines(&out).len();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &jm.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let recovered = wait_for(
        Duration::from_secs(180),
        "the JobManager recovered",
        &agent,
        || {
            let s = remote.status(STATUS)?;
            (job_id(&s) != job_id(&s5) && field(&s, "lifecycleState") == Some("STABLE"))
                .then_some(s)
        },
    );
    assert_eq!(
        field(&recovered, "lastReconciledRevision"),
        Some(c5.as_str())
    );
    wait_lines(&agent, &out, "v5", n);
    let lines = counter_lines(&out);
    let before = last_counts(&lines, n, "v5");
    for key in 0..KEYS {
        let first = lines
            .iter()
            .skip(n)
            .find(|l| l.key == key)
            .expect("a line per key after the kill");
        let was = before.get(&key).copied().unwrap_or(0);
        assert!(
            first.count > 1 && first.count <= was + 1 && first.count + 100 >= was,
            "key {key}: recovered from a checkpoint near {was}: {first:?}"
        );
    }
    assert_consistent(&lines[n..], "JobManager recovery");
    agent.kill();
}
