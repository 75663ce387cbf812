//! Snapshots, history and rollback on real Flink and real Git (one application job, a
//! bare repository over file://): periodic savepoints on a cron expression with a history
//! capped at two (the disposed ones gone from disk, the kept ones intact), a checkpoint
//! for `checkpointTriggerNonce` recorded, `history` and `rollback --to` round-tripped
//! through Git and the running job (the counts continue), and a periodic savepoint that
//! fails (its directory made unusable) reported with Flink's cause and retried with
//! backoff until it succeeds again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::flink::{
    assert_continues, counter_lines, field, flink_env, savepoints, state_at, wait_for, wait_lines,
    AgentProcess, Remote, Slot,
};
use crate::harness::flink_gitops;

const STATUS: &str = "default/FlinkDeployment/snap.yaml";
const FILE: &str = "apps/snap.yaml";

fn manifest(version: &str, out: &Path, sp: &Path, job_extra: &str) -> String {
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: snap
spec:
  flinkVersion: v2_3
  serviceAccount: flink
  flinkConfiguration:
    taskmanager.numberOfTaskSlots: "1"
    state.savepoints.dir: file://{sp}
    kubernetes.operator.periodic.savepoint.interval: "*/5 * * * * ?"
    kubernetes.operator.savepoint.history.max.count: "2"
  jobManager:
    resource: {{memory: 1g, cpu: 1}}
  taskManager:
    resource: {{memory: 1g, cpu: 1}}
  job:
    jarURI: file://{jar}
    entryClass: lab.StatefulCounterJob
    parallelism: 1
    upgradeMode: savepoint
    args: ["--version", "{version}", "--out", "{out}", "--rate", "20", "--checkpointMs", "500"]
{job_extra}"#,
        jar = flink_env().job_jar(),
        out = out.display(),
        sp = sp.display()
    )
}

fn path_of(location: &str) -> PathBuf {
    PathBuf::from(
        location
            .strip_prefix("file://")
            .or_else(|| location.strip_prefix("file:"))
            .unwrap_or(location),
    )
}

fn periodic(status: &serde_yaml::Value) -> Vec<String> {
    savepoints(status)
        .iter()
        .filter(|s| field(s, "trigger") == Some("periodic"))
        .filter_map(|s| field(s, "location").map(str::to_string))
        .collect()
}

fn disposed(remote: &Remote) -> Vec<String> {
    remote
        .status_log()
        .iter()
        .filter_map(|m| {
            m.strip_prefix("snap: savepoint ")
                .and_then(|r| r.strip_suffix(" disposed"))
                .map(str::to_string)
        })
        .collect()
}

fn snapshots_field<'a>(s: &'a serde_yaml::Value, name: &str) -> Option<&'a serde_yaml::Value> {
    s.get("snapshots").and_then(|v| v.get(name))
}

#[test]
fn periodic_savepoints_history_and_rollback_on_real_flink() {
    let _slot = Slot::take();
    let remote = Remote::new();
    let out = remote.scratch("out").join("snap.out");
    let sp = remote.scratch("sp");
    let state = remote.scratch("agent");
    let cli = remote.scratch("cli");

    // v1 with savepoints every 5 s, at most two kept.
    remote.write(FILE, &manifest("v1", &out, &sp, ""));
    let c1 = remote.push("snap v1");
    let agent = AgentProcess::start(&remote.url(), &state, &[]);
    state_at(&remote, &agent, STATUS, &c1, "STABLE");
    wait_lines(&agent, &out, "v1", 0);
    let gone = wait_for(
        Duration::from_secs(90),
        "three periodic savepoints disposed",
        &agent,
        || {
            let d = disposed(&remote);
            (d.len() >= 3).then_some(d)
        },
    );
    let s = remote.status(STATUS).expect("status");
    let kept = periodic(&s);
    assert!(!kept.is_empty() && kept.len() <= 2, "capped at 2: {kept:?}");
    for loc in &kept {
        assert!(
            path_of(loc).join("_metadata").is_file(),
            "a kept savepoint is intact: {loc}"
        );
    }
    for loc in &gone {
        assert!(
            !path_of(loc).exists(),
            "a disposed savepoint is gone: {loc}"
        );
    }

    // checkpointTriggerNonce: a checkpoint is taken and recorded.
    remote.write(
        FILE,
        &manifest("v1", &out, &sp, "    checkpointTriggerNonce: 1\n"),
    );
    let c2 = remote.push("snap: checkpoint now");
    let cp = wait_for(
        Duration::from_secs(60),
        "the nonce's checkpoint recorded",
        &agent,
        || {
            let s = remote.status(STATUS)?;
            let cp = snapshots_field(&s, "lastCheckpoint")?.clone();
            (cp.get("nonce").and_then(serde_yaml::Value::as_i64) == Some(1)).then_some(cp)
        },
    );
    assert_eq!(field(&cp, "trigger"), Some("manual"));
    assert!(
        field(&cp, "location").is_some_and(|l| l.contains("chk-")),
        "with Flink's checkpoint path: {cp:?}"
    );
    state_at(&remote, &agent, STATUS, &c2, "STABLE");

    // v2, then `rollback --to` c2: the agent redeploys v1's spec and the counts continue.
    let from = counter_lines(&out).len();
    remote.write(
        FILE,
        &manifest("v2", &out, &sp, "    checkpointTriggerNonce: 1\n"),
    );
    let c3 = remote.push("snap v2");
    state_at(&remote, &agent, STATUS, &c3, "STABLE");
    wait_lines(&agent, &out, "v2", from);
    let run = flink_gitops(
        &cli,
        &["rollback", "snap", "--to", &c2, "--repo", &remote.url()],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains(&format!(
            "Roll back FlinkDeployment default/snap to {} (from {})",
            &c2[..7],
            &c3[..7]
        )),
        "{}",
        run.stdout
    );
    let c4 = crate::harness::git(&remote.bare(), &["rev-parse", "main"]);
    let from = counter_lines(&out).len();
    state_at(&remote, &agent, STATUS, &c4, "STABLE");
    wait_lines(&agent, &out, "v1", from);
    assert_continues(&out, from, "v1", true, "rolled back to v1 with v2's state");
    let h = flink_gitops(
        &cli,
        &["history", "snap", "--repo", &remote.url(), "-o", "json"],
    );
    assert_eq!(h.code, 0, "{h:?}");
    let v = h.json();
    let revs: Vec<&str> = v["revisions"]
        .as_array()
        .expect("revisions")
        .iter()
        .filter_map(|r| r["revision"].as_str())
        .collect();
    assert_eq!(revs, vec![c1.as_str(), &c2, &c3, &c4], "{v:#}");
    let last = &v["revisions"][3];
    assert_eq!(last["outcome"], "STABLE");
    assert!(
        last["restoredFrom"].as_str().is_some(),
        "the rollback started from v2's savepoint: {last:#}"
    );

    // The savepoint directory becomes unusable: the periodic savepoint fails, is reported
    // with Flink's cause and tried again after 10 s (not on the 5 s schedule); once the
    // directory is back, the next try (after 20 s) succeeds and the error is cleared.
    let moved = remote.scratch("sp-moved");
    std::fs::remove_dir(&moved).expect("rmdir");
    std::fs::rename(&sp, &moved).expect("move the savepoints away");
    std::fs::write(&sp, b"not a directory").expect("block");
    let mut seen: Vec<(u64, String)> = Vec::new();
    let failures = wait_for(
        Duration::from_secs(120),
        "two failed periodic savepoints",
        &agent,
        || {
            let s = remote.status(STATUS)?;
            let f = snapshots_field(&s, "savepointFailure")?;
            let n = f.get("attempts")?.as_u64()?;
            let t = field(f, "time")?.to_string();
            if seen.last().map(|(m, _)| *m) != Some(n) {
                seen.push((n, t));
            }
            (n >= 2).then(|| (s.clone(), seen.clone()))
        },
    );
    let (s, seen) = failures;
    let e = s.get("lastError").expect("reported");
    assert_eq!(field(e, "reason"), Some("SavepointFailed"));
    let message = field(e, "message").unwrap_or_default();
    assert!(
        message.contains("periodic savepoint failed") && message.contains("Exception"),
        "Flink's cause: {message}"
    );
    eprintln!("recorded: {message}");
    let ms = |t: &str| {
        humantime::parse_rfc3339(t)
            .expect("time")
            .duration_since(std::time::UNIX_EPOCH)
            .expect("epoch")
            .as_secs()
    };
    let times: Vec<u64> = seen.iter().map(|(_, t)| ms(t)).collect();
    assert!(
        times.len() >= 2 && times[1] - times[0] >= 10,
        "tries {seen:?} closer than the 10 s backoff"
    );
    assert_eq!(
        field(&s, "lifecycleState"),
        Some("STABLE"),
        "the job runs on"
    );
    std::fs::remove_file(&sp).expect("unblock");
    std::fs::rename(&moved, &sp).expect("move back");
    wait_for(
        Duration::from_secs(90),
        "a periodic savepoint succeeding again",
        &agent,
        || {
            let s = remote.status(STATUS)?;
            (snapshots_field(&s, "savepointFailure").is_none() && s.get("lastError").is_none())
                .then_some(())
        },
    );
}
