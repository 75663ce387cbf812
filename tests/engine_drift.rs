//! Drift on the in-memory fake Flink, through the real executor: a job cancelled, rescaled
//! or reconfigured behind the agent's back under `report` (recorded, nothing changed),
//! `heal` (put back with the resource's rules, state continuing) and `ignore` (not looked
//! at); a job submitted by hand to a session cluster (reported, cancelled only when the
//! manifest says so). The happy path on real Flink is in `agent_drift.rs`.

use std::collections::BTreeMap;

use flink_gitops::apply::runtime::Runtime;
use flink_gitops::flink::lifecycle::drift::{DriftKind, DriftPolicy};
use flink_gitops::flink::lifecycle::record::LifecycleState;
use flink_gitops::flink::rest::{FlinkApi, FlinkApiFactory, JobId, JobStatus};
use flink_gitops::flink::spec::ResourceKey;

use crate::harness::agent_fake::*;
use crate::harness::fake_flink::{Call, FakeApi};

async fn api(w: &World, cluster: &ResourceKey) -> FakeApi {
    let url = w
        .fake
        .rest_url(cluster)
        .await
        .expect("the fake answers")
        .expect("the cluster has a REST address");
    w.fake.connect(&url).expect("the fake connects")
}

fn kinds(w: &World, key: &ResourceKey) -> Vec<DriftKind> {
    w.record(key)
        .drift
        .map(|d| d.items.iter().map(|i| i.kind).collect())
        .unwrap_or_default()
}

async fn agent_with(w: &mut World, policy: DriftPolicy) -> std::sync::Arc<FakeAgent> {
    w.settings.drift = policy;
    w.agent().await
}

#[tokio::test]
async fn drift_of_an_application_report_heal_ignore() {
    let mut w = World::new();
    let key = deployment("counter");
    let o = JobOpts {
        parallelism: 2,
        config: vec![("jobmanager.scheduler".into(), "adaptive".into())],
        ..JobOpts::mode("last-state")
    };
    w.push_files(&vec![file("apps/counter.yaml", app_yaml("counter", &o))]);
    let report = agent_with(&mut w, DriftPolicy::Report).await;
    w.settle(&report).await;
    let first = w.assert_running(&key);
    assert_eq!(w.record(&key).drift, None, "nothing drifts after a deploy");
    w.pass_time();

    // Cancelled through the REST API: recorded, nothing restarted.
    api(&w, &key).await.cancel(&first.id).await.expect("cancel");
    let steps = w.fake.steps();
    w.settle(&report).await;
    let rec = w.record(&key);
    let drift = rec.drift.clone().expect("the drift is recorded");
    assert_eq!(drift.policy, DriftPolicy::Report);
    assert_eq!(drift.revision, w.head());
    assert_eq!(drift.items[0].kind, DriftKind::JobState);
    assert_eq!(drift.items[0].found, "CANCELED");
    assert_eq!(
        w.effective(Call::DeployCluster, steps),
        0,
        "report restarted it"
    );
    assert!(w.running(&key).is_empty());

    // ignore: the drift record goes, still nothing restarts.
    let ignore = agent_with(&mut w, DriftPolicy::Ignore).await;
    w.settle(&ignore).await;
    assert_eq!(w.record(&key).drift, None);
    assert_eq!(
        w.effective(Call::DeployCluster, steps),
        0,
        "ignore restarted it"
    );

    // heal: started again from the newest checkpoint of the cancelled job; counts continue.
    let heal = agent_with(&mut w, DriftPolicy::Heal).await;
    w.settle(&heal).await;
    let second = w.assert_running(&key);
    assert_ne!(second.id, first.id);
    let restored = second.restored_from.clone().expect("restored, not empty");
    let cancelled = w.fake.job(&first.id).expect("the cancelled job");
    assert_eq!(restored.value, cancelled.value, "counts continue");
    assert!(cancelled.value > 0);
    assert_eq!(
        w.record(&key).drift,
        None,
        "healed: the drift record is cleared"
    );
    w.pass_time();

    // Rescaled through the REST API (resource requirements): old and new parallelism.
    let down: BTreeMap<String, u32> = second.parallelism.keys().map(|v| (v.clone(), 1)).collect();
    api(&w, &key)
        .await
        .set_parallelism(&second.id, &down)
        .await
        .expect("rescale");
    let steps = w.fake.steps();
    // One agent runs at a time: a new one (it reads the records) for each policy.
    let report = agent_with(&mut w, DriftPolicy::Report).await;
    w.settle(&report).await;
    let drift = w.record(&key).drift.expect("rescale recorded");
    assert!(!drift.items.is_empty(), "{drift:#?}");
    assert!(
        drift
            .items
            .iter()
            .all(|i| i.kind == DriftKind::Parallelism && i.expected == "2" && i.found == "1"),
        "{drift:#?}"
    );
    assert_eq!(w.fake.steps(), steps, "report changed something");
    let heal = agent_with(&mut w, DriftPolicy::Heal).await;
    w.settle(&heal).await;
    let job = w.assert_running(&key);
    assert_eq!(job.id, second.id, "rescaled in place, not restarted");
    assert!(job.parallelism.values().all(|p| *p == 2), "{job:?}");
    assert_eq!(w.effective(Call::SetParallelism, steps), 1);
    assert_eq!(w.record(&key).drift, None);

    // The cluster's configuration changed: reported, then redeployed with the upgrade mode
    // (last-state: from the newest checkpoint).
    w.fake
        .set_cluster_config(&key, "taskmanager.numberOfTaskSlots", Some("4"));
    let report = agent_with(&mut w, DriftPolicy::Report).await;
    w.settle(&report).await;
    assert_eq!(kinds(&w, &key), vec![DriftKind::Configuration]);
    let before = w.lineage(&key);
    let heal = agent_with(&mut w, DriftPolicy::Heal).await;
    w.settle(&heal).await;
    let third = w.assert_running(&key);
    assert_ne!(third.id, second.id);
    let restored = third.restored_from.clone().expect("state kept");
    assert_eq!(restored.value, w.fake.job(&second.id).expect("old").value);
    assert!(restored.value >= before.value.unwrap_or(0));
    assert_eq!(w.record(&key).drift, None);
    assert_eq!(w.fake.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn an_ignore_rule_and_a_lost_taskmanager() {
    let mut w = World::new();
    let key = deployment("counter");
    let o = JobOpts {
        config: vec![("pipeline.jobvertex-parallelism-overrides".into(), "".into())],
        ..JobOpts::mode("savepoint")
    };
    let yaml = app_yaml("counter", &o).replacen(
        "  namespace: default\n",
        "  namespace: default\n  annotations:\n    flink-gitops.io/drift-ignore: \"flinkConfiguration.taskmanager.numberOfTaskSlots\"\n",
        1,
    );
    w.push_files(&vec![file("apps/counter.yaml", yaml)]);
    let agent = agent_with(&mut w, DriftPolicy::Heal).await;
    w.settle(&agent).await;
    w.assert_running(&key);
    let steps = w.fake.steps();
    // Under an ignore rule: no drift, nothing healed.
    w.fake
        .set_cluster_config(&key, "taskmanager.numberOfTaskSlots", Some("4"));
    w.settle(&agent).await;
    assert_eq!(w.record(&key).drift, None);
    assert_eq!(w.fake.steps(), steps);
    // A TaskManager gone: drift; healed by a redeploy with a savepoint.
    w.fake.set_task_managers(&key, 0);
    w.settle(&agent).await;
    let job = w.assert_running(&key);
    assert_eq!(
        job.restored_from.clone().map(|r| r.is_savepoint),
        Some(true),
        "redeployed from the stop's savepoint: {job:#?} {:#?}",
        w.fake.calls()
    );
    assert_eq!(w.effective(Call::Stop, steps), 1);
}

#[tokio::test]
async fn a_job_submitted_by_hand_to_a_session_cluster() {
    let mut w = World::new();
    let cluster = deployment("session");
    let sj = session_job("clicks");
    let cluster_yaml = |annotations: &str| {
        session_cluster_yaml("session", 2).replacen(
            "  namespace: default\n",
            &format!("  namespace: default\n{annotations}"),
            1,
        )
    };
    w.push_files(&vec![
        file("session/cluster.yaml", cluster_yaml("")),
        file(
            "session/clicks.yaml",
            session_job_yaml("clicks", "session", &JobOpts::mode("savepoint")),
        ),
    ]);
    let heal = agent_with(&mut w, DriftPolicy::Heal).await;
    w.settle(&heal).await;
    w.assert_running(&sj);
    let by_hand: JobId = w.fake.submit_by_hand(&cluster, "adhoc", 1);
    // heal without the annotation: reported, left running.
    w.settle(&heal).await;
    let drift = w.record(&cluster).drift.expect("unmanaged job recorded");
    assert_eq!(drift.items.len(), 1);
    assert_eq!(drift.items[0].kind, DriftKind::UnmanagedJob);
    assert_eq!(drift.items[0].subject.as_deref(), Some(by_hand.as_str()));
    assert_eq!(w.record(&sj).drift, None, "the managed job is no drift");
    assert_eq!(
        w.fake.job(&by_hand).map(|j| j.state),
        Some(JobStatus::Running),
        "left running"
    );
    w.assert_at_rest(&cluster, LifecycleState::Stable);
    // The manifest says so: cancelled.
    w.push_files(&vec![file(
        "session/cluster.yaml",
        cluster_yaml("  annotations:\n    flink-gitops.io/drift: heal\n    flink-gitops.io/drift-unmanaged-jobs: cancel\n"),
    )]);
    w.settle(&heal).await;
    assert_eq!(
        w.fake.job(&by_hand).map(|j| j.state),
        Some(JobStatus::Canceled)
    );
    assert_eq!(w.record(&cluster).drift, None);
    w.assert_running(&sj);
}
