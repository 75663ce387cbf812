//! Rollback, failed-job restart and JobManager recovery as executor scenarios on the fake
//! Flink (issue 9). The rollback runs as a crash matrix: with the agent dropped after each
//! external step, after each record write, and with a new agent for every step; each run
//! must end with exactly one job, the stable spec restored from the state taken before the
//! failed spec ran (not the failed job's own), and ROLLED_BACK with its cause on record.

use flink_gitops::flink::lifecycle::record::{reason, LifecycleState, RollbackState};
use flink_gitops::flink::rest::JobStatus;

use crate::harness::agent_fake::*;
use crate::harness::fake_flink::{Call, JobMatch};

const FILE: &str = "apps/ledger.yaml";
const NAME: &str = "ledger";

fn ledger(version: &str, config: &[(&str, &str)]) -> Push {
    let mut o = JobOpts {
        version: version.to_string(),
        ..JobOpts::mode("savepoint")
    };
    o.config.push((
        "kubernetes.operator.deployment.rollback.enabled".into(),
        "true".into(),
    ));
    for (k, v) in config {
        o.config.push((k.to_string(), v.to_string()));
    }
    vec![file(FILE, app_yaml(NAME, &o))]
}

fn jobs_with_arg(w: &World, arg: &str) -> usize {
    w.jobs_of(&deployment(NAME))
        .iter()
        .filter(|j| j.args.iter().any(|a| a == arg))
        .count()
}

#[tokio::test]
async fn engine_rollback_of_a_failing_release_after_any_crash() {
    let key = deployment(NAME);
    let history = vec![ledger("v1", &[])];
    let change = ledger("v2", &[]);
    let steps = crash_matrix_with(
        Dims::ALL,
        &history,
        |w| {
            w.fake
                .fail_new_jobs(JobMatch::Arg("v2".into()), None, "v2 is broken")
        },
        &change,
        std::slice::from_ref(&key),
        |w, l, crash| {
            let l = &l[0];
            assert_eq!(w.fake.violations(), Vec::<String>::new(), "after {crash:?}");
            // v1 runs again, restored from the savepoint its upgrade took: the state from
            // before v2 ran, exactly.
            let job = l.assert_continues_in(w, Expect::FromSavepoint, LifecycleState::RolledBack);
            assert_eq!(job.args, vec!["--version", "v1"], "after {crash:?}");
            assert_eq!(
                jobs_with_arg(w, "v2"),
                1,
                "one v2 job, after {crash:?}: {:#?}",
                w.jobs_of(&key)
            );
            let r = w.assert_at_rest(&key, LifecycleState::RolledBack);
            assert_eq!(r.rollback, Some(RollbackState::RolledBack));
            let cause = r.rollback_cause.clone().expect("the cause is recorded");
            assert_eq!(cause.reason, reason::JOB_FAILED);
            assert!(cause.message.contains("v2 is broken"), "{cause:?}");
            assert_eq!(
                r.last_reconciled_revision.as_deref(),
                Some(w.head().as_str())
            );
            assert_ne!(r.last_stable_revision, r.last_reconciled_revision);
            let summary = r.rollback_summary().expect("summary");
            assert!(summary.contains("v2 is broken"), "{summary}");
        },
    )
    .await;
    // Stop with savepoint (v1), deploy v2 (fails), deploy v1 again.
    assert_eq!(steps, 3);
}

/// Rolled back, the failed spec is not retried; `git revert` to the stable spec records it
/// without a restart; a new spec afterwards is an upgrade of the job that runs.
#[tokio::test]
async fn engine_rolled_back_waits_for_git_then_follows_it() {
    let key = deployment(NAME);
    let (w, agent) = World::replay(&[ledger("v1", &[])]).await;
    w.fake
        .fail_new_jobs(JobMatch::Arg("v2".into()), None, "v2 is broken");
    w.push_files(&ledger("v2", &[]));
    w.settle(&agent).await;
    let r = w.assert_at_rest(&key, LifecycleState::RolledBack);
    let running = w.assert_running_in(&key, LifecycleState::RolledBack);
    let calls = w.fake.steps();
    // Nothing happens while Git stays where it is.
    w.settle(&agent).await;
    w.settle(&agent).await;
    assert_eq!(w.fake.steps(), calls, "the failed spec was tried again");
    // git revert: the stable spec is Git's again; it runs already.
    w.push_files(&ledger("v1", &[]));
    w.settle(&agent).await;
    let back = w.assert_at_rest(&key, LifecycleState::Stable);
    assert_eq!(back.rollback, None);
    assert_eq!(back.rollback_cause, None);
    assert_eq!(w.assert_running(&key).id, running.id, "no restart");
    assert_eq!(w.fake.steps(), calls);
    assert_ne!(back.last_reconciled_revision, r.last_reconciled_revision);
    // A new version: upgraded from the job that runs, with its savepoint.
    let before = w.lineage(&key);
    w.push_files(&ledger("v3", &[]));
    w.settle(&agent).await;
    let job = before.assert_continues(&w, Expect::FromSavepoint);
    assert_eq!(job.args, vec!["--version", "v3"]);
    w.assert_at_rest(&key, LifecycleState::Stable);
}

/// Without rollback, a release that fails is FAILED; `job.restart.failed` restarts a
/// failed job from its newest checkpoint; a lost JobManager is recovered from it, unless
/// `jm-deployment-recovery.enabled` is false.
#[tokio::test]
async fn engine_failed_jobs_and_lost_jobmanagers() {
    let key = deployment(NAME);
    let restart = [("kubernetes.operator.job.restart.failed", "true")];
    let (w, agent) = World::replay(&[ledger("v1", &restart)]).await;
    // restart.failed: the failed job's newest checkpoint is where the next one starts.
    let before = w.lineage(&key);
    let job = w.the_running_job(&key);
    w.fake.fail_job(&job.id, "poison record");
    w.settle(&agent).await;
    let restarted = before.assert_continues(&w, Expect::FromCheckpoint);
    assert_ne!(restarted.id, job.id);
    w.assert_at_rest(&key, LifecycleState::Stable);
    assert!(
        w.store.log().iter().any(|m| m.1.contains("FAILED")),
        "the failure was recorded before the restart: {:?}",
        w.store.log()
    );

    // Without it: FAILED, with the cause, and left so.
    w.push_files(&ledger("v1", &[]));
    w.settle(&agent).await;
    let job = w.the_running_job(&key);
    w.fake.fail_job(&job.id, "poison record");
    w.settle(&agent).await;
    let r = w.record(&key);
    assert_eq!(r.lifecycle_state, LifecycleState::Failed, "{r:#?}");
    assert_eq!(r.in_flight, None);
    assert_eq!(r.job_state, Some(JobStatus::Failed));
    let error = r.last_error.expect("the error is recorded");
    assert_eq!(error.reason, reason::JOB_FAILED);
    assert!(error.message.contains("poison record"), "{error:?}");
    let calls = w.fake.steps();
    w.settle(&agent).await;
    assert_eq!(w.fake.steps(), calls, "a FAILED job is left alone");

    // A new version runs; its JobManager dies: recovered from the newest checkpoint.
    w.push_files(&ledger("v2", &[]));
    w.settle(&agent).await;
    let before = w.lineage(&key);
    w.fake.kill_cluster(&key, "OOMKilled");
    w.settle(&agent).await;
    before.assert_continues(&w, Expect::FromCheckpoint);
    w.assert_at_rest(&key, LifecycleState::Stable);

    // With recovery off, a lost JobManager is reported, not replaced.
    let off = [(
        "kubernetes.operator.jm-deployment-recovery.enabled",
        "false",
    )];
    w.push_files(&ledger("v2", &off));
    w.settle(&agent).await;
    w.fake.kill_cluster(&key, "OOMKilled");
    w.settle(&agent).await;
    let r = w.record(&key);
    assert_eq!(r.lifecycle_state, LifecycleState::Failed, "{r:#?}");
    assert_eq!(r.in_flight, None);
    let error = r.last_error.expect("the loss is recorded");
    assert_eq!(error.reason, reason::CLUSTER_LOST);
    assert!(
        error.message.contains("jm-deployment-recovery"),
        "{error:?}"
    );
    assert!(w.running(&key).is_empty());
    let deploys = w
        .fake
        .calls()
        .iter()
        .filter(|c| c.call == Call::DeployCluster)
        .count();
    w.settle(&agent).await;
    assert_eq!(
        w.fake
            .calls()
            .iter()
            .filter(|c| c.call == Call::DeployCluster)
            .count(),
        deploys
    );
}

/// The health check: readings of `numRestarts` over the window; a job restarting more
/// than the threshold is restarted from its newest checkpoint, and why is on record.
#[tokio::test]
async fn engine_health_check_restarts_an_unhealthy_job_from_its_checkpoint() {
    let key = deployment(NAME);
    let health = [
        ("kubernetes.operator.cluster.health-check.enabled", "true"),
        (
            "kubernetes.operator.cluster.health-check.restarts.window",
            "5 s",
        ),
        (
            "kubernetes.operator.cluster.health-check.restarts.threshold",
            "3",
        ),
        (
            "kubernetes.operator.cluster.health-check.checkpoint-progress.enabled",
            "false",
        ),
    ];
    let (w, agent) = World::replay(&[ledger("v1", &health)]).await;
    let job = w.the_running_job(&key);
    // Healthy readings over more than a window: nothing happens.
    let calls = w.fake.steps();
    w.rounds(&agent, 8).await;
    assert_eq!(w.fake.steps(), calls, "a healthy job was touched");
    // Two restarts in the window: at most the threshold, still healthy.
    w.fake.restart_job(&job.id, 2);
    w.rounds(&agent, 8).await;
    assert_eq!(
        w.fake.steps(),
        calls,
        "a job within the threshold was touched"
    );
    // Ten more: unhealthy; restarted from its newest checkpoint.
    let before = w.lineage(&key);
    w.fake.restart_job(&job.id, 10);
    w.rounds(&agent, 8).await;
    w.settle(&agent).await;
    let restarted = before.assert_continues(&w, Expect::FromCheckpoint);
    assert_ne!(restarted.id, job.id);
    assert!(
        w.store
            .log()
            .iter()
            .any(|m| m.1.contains("UnhealthyJob") || m.1.contains("restarts in")),
        "why is on record: {:?}",
        w.store.log()
    );
    // The new job's readings start afresh: it is left alone.
    let calls = w.fake.steps();
    w.rounds(&agent, 8).await;
    assert_eq!(w.fake.steps(), calls);
}

/// A change whose stop Flink refuses every time: each reconcile makes at most one stop
/// attempt and ends with an error (so the controller backs off), never a loop of stops
/// within one reconcile at the poll rate.
#[tokio::test]
async fn engine_a_stop_that_keeps_failing_is_retried_with_backoff_not_in_a_loop() {
    let key = deployment(NAME);
    let (w, agent) = World::replay(&[ledger("v1", &[])]).await;
    w.fake.fail_next_savepoints(&key, 1000);
    w.push_files(&ledger("v2", &[]));
    let stops = || {
        w.fake
            .calls()
            .iter()
            .filter(|c| c.call == Call::Stop)
            .count()
    };
    let mut failed = 0;
    for _ in 0..12 {
        let before = stops();
        let result = w.reconcile(&agent, &key).await;
        assert!(stops() - before <= 1, "more than one stop in one reconcile");
        if let Err(e) = &result {
            assert!(e.contains("stop with savepoint failed"), "{e}");
            failed += 1;
        }
        w.pass_time();
    }
    assert!(failed >= 3, "the failure ends the reconcile with an error");
    let r = w.record(&key);
    assert!(r.last_error.is_some());
    assert_eq!(w.running(&key).len(), 1, "v1 keeps running");
}
