//! Executor scenarios against the in-memory fake Flink: every upgrade mode, suspend and
//! resume, the nonces, removal and re-addition, an in-place rescale, and a session cluster
//! with two session jobs (one upgraded alone, a cluster change that stops, redeploys and
//! resumes both, removals). Each runs as a crash matrix ([`crash_matrix`]): once with one
//! agent; then with the agent dropped right after each of its external steps and a new
//! agent started on the same status store and fake; then dropped right after each record
//! write (a step's write-ahead facts durable, its I/O not run); then with a new agent for
//! every step. Every run must end the same way: exactly one job per resource, the record at
//! rest, the newest state restored (the new job's value is the value of the snapshot it
//! restored from, which is where the job before ended: counts continue, nothing lost), and
//! no call a real cluster would punish.
//!
//! Where a crash after a record write meets an engine bug, the scenario's main test runs
//! the other crashes ([`Dims::STEPS`]) and an ignored test of its own runs the writes
//! ([`Dims::WRITES`]); each ignored test says what the agent does instead.

use std::collections::BTreeSet;

use flink_gitops::flink::lifecycle::decide::{CHECKPOINT_NONCE, SAVEPOINT_NONCE};
use flink_gitops::flink::lifecycle::record::{LifecycleState, SnapshotTrigger};
use flink_gitops::flink::rest::{JobId, JobStatus};
use flink_gitops::flink::spec::UpgradeMode;

use crate::harness::agent_fake::*;
use crate::harness::fake_flink::Call;

const APP_FILE: &str = "apps/counter.yaml";
const NAME: &str = "counter";

fn app(o: JobOpts) -> Push {
    vec![file(APP_FILE, app_yaml(NAME, &o))]
}

fn opts(mode: &'static str, version: &str) -> JobOpts {
    JobOpts {
        version: version.to_string(),
        ..JobOpts::mode(mode)
    }
}

fn mode_of(mode: &str) -> UpgradeMode {
    match mode {
        "savepoint" => UpgradeMode::Savepoint,
        "last-state" => UpgradeMode::LastState,
        _ => UpgradeMode::Stateless,
    }
}

/// Without a crash the calls are exactly `exact`; with crashes only calls of those kinds
/// are made (a repeated idempotent call is allowed), and `once` took effect exactly once.
fn assert_calls(w: &World, l: &Lineage, crash: &Crash, exact: &[Call], once: &[Call]) {
    let kinds = w.call_kinds_since(l.step);
    if crash.after_step == 0 {
        assert_eq!(kinds, exact, "{}: the calls without a crash", l.key);
    } else {
        let allowed: BTreeSet<Call> = exact.iter().copied().collect();
        assert!(
            kinds.iter().all(|k| allowed.contains(k)),
            "{}: after {crash:?}: unexpected calls {kinds:?}",
            l.key
        );
    }
    for call in once {
        assert_eq!(
            w.effective(*call, l.step),
            1,
            "{}: after {crash:?}: {call:?} took effect other than once: {:#?}",
            l.key,
            w.calls_since(l.step)
        );
    }
}

// ---------------------------------------------------------------------------------------
// Upgrades
// ---------------------------------------------------------------------------------------

async fn upgrade(dims: Dims, mode: &'static str, expect: Expect, stop: Call) {
    let key = deployment(NAME);
    let history = vec![app(opts(mode, "v1"))];
    let change = app(opts(mode, "v2"));
    let steps = crash_matrix_in(
        dims,
        &history,
        &change,
        std::slice::from_ref(&key),
        |w, l, crash| {
            let l = &l[0];
            let job = l.assert_continues(w, expect);
            assert_eq!(job.args, vec!["--version", "v2"], "the new version runs");
            assert_calls(
                w,
                l,
                crash,
                &[stop, Call::DeployCluster],
                &[Call::DeployCluster],
            );
            let r = w.record(&key);
            assert_eq!(
                r.last_reconciled_revision.as_deref(),
                Some(w.head().as_str())
            );
            assert_eq!(r.last_stable_revision.as_deref(), Some(w.head().as_str()));
            if expect == Expect::FromSavepoint {
                let sp = r
                    .savepoints
                    .last()
                    .expect("the upgrade savepoint is recorded");
                assert_eq!(sp.trigger, SnapshotTrigger::Upgrade);
                assert_eq!(sp.for_revision.as_deref(), Some(w.head().as_str()));
                assert_eq!(Some(sp.job_id.as_str()), l.job.as_ref().map(JobId::as_str));
            }
        },
    )
    .await;
    assert_eq!(steps, 2);
}

#[tokio::test]
async fn engine_upgrade_savepoint_restores_the_stop_savepoint_after_any_crash() {
    upgrade(Dims::STEPS, "savepoint", Expect::FromSavepoint, Call::Stop).await;
}

#[tokio::test]
async fn engine_upgrade_last_state_restores_the_newest_checkpoint_after_any_crash() {
    upgrade(
        Dims::STEPS,
        "last-state",
        Expect::FromCheckpoint,
        Call::Cancel,
    )
    .await;
}

#[tokio::test]
async fn engine_upgrade_stateless_starts_empty_after_any_crash() {
    upgrade(Dims::STEPS, "stateless", Expect::Empty, Call::Cancel).await;
}

/// The agent dropped after each record write of an upgrade. After the write-ahead of the
/// deploy (`inFlight: starting` with the new job id) and before `deploy_cluster` ran, the
/// old application cluster still answers (its stopped job listed, the new job not): the
/// restarted agent waits for "the job to run" and never deploys (with rollback enabled it
/// would roll back after the readiness timeout instead).
#[tokio::test]
async fn engine_upgrade_survives_a_crash_after_each_record_write() {
    upgrade(Dims::WRITES, "savepoint", Expect::FromSavepoint, Call::Stop).await;
    upgrade(
        Dims::WRITES,
        "last-state",
        Expect::FromCheckpoint,
        Call::Cancel,
    )
    .await;
    upgrade(Dims::WRITES, "stateless", Expect::Empty, Call::Cancel).await;
    restart_nonce(Dims::WRITES).await;
}

/// A stateless job changed to last-state together with a change that restarts it. The
/// stop is a cancel that keeps the newest checkpoint (the new spec's mode), so `decide`
/// needs the newest checkpoint to record the restore point; `observe` judges from the
/// reconciled (old, stateless) spec that it need not ask, reports it unknown ("not asked:
/// the decision does not need it"), and `decide` answers Unreachable on every reconcile:
/// the old job is cancelled, nothing starts, the record says UPGRADING and unreachable.
#[tokio::test]
async fn engine_upgrade_from_stateless_to_last_state_finishes() {
    let key = deployment(NAME);
    let (w, agent) = World::replay(&[app(opts("stateless", "v1"))]).await;
    let before = w.lineage(&key);
    w.push_files(&app(opts("last-state", "v2")));
    w.settle(&agent).await;
    let job = w.assert_running(&key);
    assert_eq!(job.args, vec!["--version", "v2"]);
    assert_ne!(Some(job.id.clone()), before.job);
    if let Some(restored) = &job.restored_from {
        let old = before.job.as_ref().expect("a job ran");
        let newest = w.newest_snapshot_of(old).expect("a checkpoint");
        assert_eq!(flink_gitops_location(&restored.location), newest.location);
    }
}

/// The same root cause as above on another path: a stateless job that FAILED is changed to
/// upgradeMode savepoint with a new version. `decide::upgrade` (job not running) restores
/// from the newest state of the *new* (stateful) spec and needs the newest checkpoint;
/// `observe` asks for it only when the *reconciled* spec is stateful, so the reconcile
/// fails with "cannot observe: not asked: the decision does not need it" forever.
#[tokio::test]
async fn engine_failed_stateless_job_changed_to_savepoint_restarts() {
    let key = deployment(NAME);
    let (w, agent) = World::replay(&[app(opts("stateless", "v1"))]).await;
    let job = w.the_running_job(&key);
    w.fake.fail_job(&job.id, "boom");
    w.settle(&agent).await;
    assert_eq!(w.record(&key).lifecycle_state, LifecycleState::Failed);
    w.push_files(&app(opts("savepoint", "v2")));
    w.settle(&agent).await;
    let job = w.assert_running(&key);
    assert_eq!(job.args, vec!["--version", "v2"]);
}

// ---------------------------------------------------------------------------------------
// Suspend and resume
// ---------------------------------------------------------------------------------------

fn suspended(mode: &'static str) -> JobOpts {
    JobOpts {
        state: "suspended",
        ..JobOpts::mode(mode)
    }
}

async fn suspend_and_resume(mode: &'static str, stop: Call, resumed: Expect) {
    let key = deployment(NAME);
    let running = app(JobOpts::mode(mode));

    // Suspend: the job stops with its upgrade mode, the cluster goes, the restore point is
    // where the job ended.
    crash_matrix(
        std::slice::from_ref(&running),
        &app(suspended(mode)),
        std::slice::from_ref(&key),
        |w, l, crash| {
            let l = &l[0];
            assert_eq!(w.fake.violations(), Vec::<String>::new());
            assert!(w.running(&key).is_empty(), "{key}: a job still runs");
            assert!(
                w.fake.cluster(&key).is_none(),
                "{key}: the cluster is still there"
            );
            let r = w.assert_at_rest(&key, LifecycleState::Suspended);
            assert_eq!(r.stopped_with, Some(mode_of(mode)));
            // Removing a cluster that is gone is a no-op: a restarted agent may ask again.
            assert_calls(w, l, crash, &[stop, Call::DeleteCluster], &[]);
            assert!(w.effective(Call::DeleteCluster, l.step) >= 1);
            let old = w.fake.job(l.job.as_ref().expect("a job ran")).expect("job");
            assert!(old.state.is_globally_terminal(), "{:?}", old.state);
            match resumed {
                Expect::Empty => assert_eq!(r.restore_path, None),
                _ => {
                    let newest = w.newest_snapshot_of(&old.id).expect("a snapshot");
                    assert_eq!(
                        r.restore_path.as_deref().map(flink_gitops_location),
                        Some(newest.location.clone())
                    );
                    assert_eq!(newest.is_savepoint, resumed == Expect::FromSavepoint);
                    assert_eq!(
                        newest.value, old.value,
                        "the restore point is where the job ended"
                    );
                }
            }
        },
    )
    .await;

    // Resume: a new job from that restore point.
    let history = vec![running.clone(), app(suspended(mode))];
    crash_matrix(
        &history,
        &running,
        std::slice::from_ref(&key),
        |w, l, crash| {
            let l = &l[0];
            l.assert_continues(w, resumed);
            assert_calls(w, l, crash, &[Call::DeployCluster], &[Call::DeployCluster]);
        },
    )
    .await;
}

#[tokio::test]
async fn engine_suspend_and_resume_savepoint() {
    suspend_and_resume("savepoint", Call::Stop, Expect::FromSavepoint).await;
}

#[tokio::test]
async fn engine_suspend_and_resume_last_state() {
    suspend_and_resume("last-state", Call::Cancel, Expect::FromCheckpoint).await;
}

#[tokio::test]
async fn engine_suspend_and_resume_stateless() {
    suspend_and_resume("stateless", Call::Cancel, Expect::Empty).await;
}

// ---------------------------------------------------------------------------------------
// Nonces
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn engine_savepoint_trigger_nonce_takes_one_savepoint_without_a_restart() {
    let key = deployment(NAME);
    let change = app(JobOpts {
        savepoint_nonce: Some(1),
        ..JobOpts::default()
    });
    crash_matrix(
        &[app(JobOpts::default())],
        &change,
        std::slice::from_ref(&key),
        |w, l, crash| {
            let l = &l[0];
            let job = l.assert_continues(w, Expect::SameJob);
            assert_calls(w, l, crash, &[Call::TriggerSavepoint], &[]);
            let r = w.record(&key);
            assert_eq!(r.nonces.get(SAVEPOINT_NONCE), Some(&1));
            let sp = r
                .savepoints
                .last()
                .expect("the manual savepoint is recorded");
            assert_eq!(sp.trigger, SnapshotTrigger::Manual);
            assert_eq!(sp.job_id, job.id.as_str());
            let savepoints: Vec<_> = w
                .fake
                .snapshots()
                .into_iter()
                .filter(|s| s.is_savepoint && s.job.as_ref() == Some(&job.id))
                .collect();
            assert_eq!(
                savepoints.len(),
                1,
                "one savepoint for one nonce: {savepoints:#?}"
            );
            assert_eq!(flink_gitops_location(&sp.location), savepoints[0].location);
            assert!(savepoints[0].value >= l.value.unwrap_or(0));
        },
    )
    .await;
}

#[tokio::test]
async fn engine_checkpoint_trigger_nonce_takes_a_checkpoint_without_a_restart() {
    let key = deployment(NAME);
    let change = app(JobOpts {
        checkpoint_nonce: Some(1),
        ..JobOpts::default()
    });
    crash_matrix(
        &[app(JobOpts::default())],
        &change,
        std::slice::from_ref(&key),
        |w, l, crash| {
            let l = &l[0];
            l.assert_continues(w, Expect::SameJob);
            assert_calls(w, l, crash, &[Call::TriggerCheckpoint], &[]);
            let r = w.record(&key);
            assert_eq!(r.nonces.get(CHECKPOINT_NONCE), Some(&1));
            assert!(
                r.savepoints
                    .iter()
                    .all(|s| s.trigger != SnapshotTrigger::Manual),
                "a checkpoint is no savepoint: {:?}",
                r.savepoints
            );
        },
    )
    .await;
}

async fn restart_nonce(dims: Dims) {
    let key = deployment(NAME);
    let change = app(JobOpts {
        restart_nonce: Some(1),
        ..JobOpts::default()
    });
    crash_matrix_in(
        dims,
        &[app(JobOpts::default())],
        &change,
        std::slice::from_ref(&key),
        |w, l, crash| {
            let l = &l[0];
            l.assert_continues(w, Expect::FromSavepoint);
            assert_calls(
                w,
                l,
                crash,
                &[Call::Stop, Call::DeployCluster],
                &[Call::DeployCluster],
            );
            assert_eq!(w.record(&key).generation, 2, "one new deployment attempt");
        },
    )
    .await;
}

#[tokio::test]
async fn engine_restart_nonce_restarts_with_the_upgrade_mode() {
    restart_nonce(Dims::STEPS).await;
}

// ---------------------------------------------------------------------------------------
// Removal and re-addition
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn engine_removal_takes_a_final_savepoint_and_re_addition_restores_it() {
    let key = deployment(NAME);
    let running = app(JobOpts::default());
    let gone: Push = vec![removed(APP_FILE)];

    crash_matrix(
        std::slice::from_ref(&running),
        &gone,
        std::slice::from_ref(&key),
        |w, l, crash| {
            let l = &l[0];
            assert_eq!(w.fake.violations(), Vec::<String>::new());
            assert!(w.running(&key).is_empty());
            assert!(w.fake.cluster(&key).is_none(), "the cluster is removed");
            let r = w.assert_at_rest(&key, LifecycleState::Deleted);
            assert!(r.deleted);
            assert_calls(w, l, crash, &[Call::Stop, Call::DeleteCluster], &[]);
            assert!(w.effective(Call::DeleteCluster, l.step) >= 1);
            let old = w.fake.job(l.job.as_ref().expect("a job ran")).expect("job");
            assert_eq!(old.state, JobStatus::Finished);
            let final_sp = r.savepoints.last().expect("the final savepoint");
            assert_eq!(final_sp.trigger, SnapshotTrigger::Delete);
            let snap = w.fake.snapshot(&final_sp.location).expect("stored");
            assert_eq!(
                snap.value, old.value,
                "the final savepoint holds where the job ended"
            );
            assert_eq!(r.restore_path.as_deref(), Some(final_sp.location.as_str()));
        },
    )
    .await;

    crash_matrix(
        &[running.clone(), gone.clone()],
        &running,
        std::slice::from_ref(&key),
        |w, l, crash| {
            let l = &l[0];
            l.assert_continues(w, Expect::FromSavepoint);
            assert!(!w.record(&key).deleted);
            assert_calls(w, l, crash, &[Call::DeployCluster], &[Call::DeployCluster]);
        },
    )
    .await;
}

/// Removed from Git, then added back with `job.state: suspended`. `decide` answers
/// `AcceptSpec` (first deploy of a suspended spec) for a deleted record, but the transition
/// of `AcceptSpec` does not clear `deleted`: the next decide sees a deleted record again and
/// accepts again, sixteen times per reconcile, requeued at the fast poll forever; the
/// status branch keeps saying DELETED while Git has the resource.
#[tokio::test]
async fn engine_re_addition_as_suspended_is_recorded_suspended() {
    let key = deployment(NAME);
    let running = app(JobOpts::default());
    let (w, agent) = World::replay(&[running.clone(), vec![removed(APP_FILE)]]).await;
    let final_sp = w
        .record(&key)
        .restore_path
        .clone()
        .expect("the final savepoint");
    let before = w.lineage(&key);
    w.push_files(&app(suspended("savepoint")));
    w.settle(&agent).await;
    let r = w.assert_at_rest(&key, LifecycleState::Suspended);
    assert!(!r.deleted);
    assert_eq!(r.restore_path.as_deref(), Some(final_sp.as_str()));
    assert!(w.running(&key).is_empty());
    // Resumed later: from the final savepoint.
    w.push_files(&running);
    w.settle(&agent).await;
    before.assert_continues(&w, Expect::FromSavepoint);
}

// ---------------------------------------------------------------------------------------
// In-place rescale
// ---------------------------------------------------------------------------------------

fn vertex(salt: &str) -> String {
    JobId::derived(&format!("fake-vertex/{NAME}/{salt}")).to_string()
}

fn adaptive(source: u32) -> JobOpts {
    JobOpts {
        config: vec![
            ("jobmanager.scheduler".into(), "adaptive".into()),
            (
                "pipeline.jobvertex-parallelism-overrides".into(),
                format!("{}:{source},{}:1", vertex("source"), vertex("counter")),
            ),
        ],
        ..JobOpts::default()
    }
}

async fn rescale(dims: Dims) {
    let key = deployment(NAME);
    crash_matrix_in(
        dims,
        &[app(adaptive(1))],
        &app(adaptive(2)),
        std::slice::from_ref(&key),
        |w, l, crash| {
            let l = &l[0];
            let job = l.assert_continues(w, Expect::SameJob);
            assert_eq!(job.parallelism.get(&vertex("source")), Some(&2), "{job:?}");
            assert_eq!(job.parallelism.get(&vertex("counter")), Some(&1), "{job:?}");
            assert_calls(
                w,
                l,
                crash,
                &[Call::SetParallelism],
                &[Call::SetParallelism],
            );
        },
    )
    .await;
}

#[tokio::test]
async fn engine_in_place_rescale_keeps_the_job() {
    rescale(Dims::STEPS).await;
}

/// The agent dropped after each record write of an in-place rescale. After the write-ahead
/// (`inFlight: rescaling`) and before the `PUT`, the restarted agent only waits for the
/// vertices to reach the new parallelism and never sends the request; after the readiness
/// timeout it records RescaleFailed with the job still at the old parallelism.
#[tokio::test]
async fn engine_in_place_rescale_survives_a_crash_after_each_record_write() {
    rescale(Dims::WRITES).await;
}

// ---------------------------------------------------------------------------------------
// A session cluster with two session jobs
// ---------------------------------------------------------------------------------------

const CLUSTER: &str = "analytics";

fn session(slots: u32, a: &str, b: &str) -> Push {
    vec![
        file("session/cluster.yaml", session_cluster_yaml(CLUSTER, slots)),
        file(
            "session/a.yaml",
            session_job_yaml("job-a", CLUSTER, &opts("savepoint", a)),
        ),
        file(
            "session/b.yaml",
            session_job_yaml("job-b", CLUSTER, &opts("savepoint", b)),
        ),
    ]
}

#[tokio::test]
async fn engine_session_job_upgrade_leaves_the_other_job_alone() {
    let (a, b) = (session_job("job-a"), session_job("job-b"));
    let cluster = deployment(CLUSTER);
    let history = vec![session(2, "v1", "v1")];
    crash_matrix(
        &history,
        &session(2, "v2", "v1"),
        &[a.clone(), b.clone()],
        |w, l, crash| {
            let job_a = l[0].assert_continues(w, Expect::FromSavepoint);
            assert_eq!(job_a.args, vec!["--version", "v2"]);
            l[1].assert_continues(w, Expect::SameJob);
            assert_calls(
                w,
                &l[0],
                crash,
                &[Call::Stop, Call::RunJar],
                &[Call::RunJar],
            );
            assert!(
                w.calls_since(l[0].step).iter().all(|c| c.job.is_none()
                    || c.job.as_ref().map(JobId::as_str) != l[1].job.as_ref().map(JobId::as_str)),
                "job-b was touched"
            );
            w.assert_at_rest(&cluster, LifecycleState::Stable);
            assert_eq!(w.fake.running_jobs(&cluster).len(), 2);
        },
    )
    .await;
}

async fn session_cluster_change(dims: Dims) {
    let (a, b) = (session_job("job-a"), session_job("job-b"));
    let cluster = deployment(CLUSTER);
    let history = vec![session(2, "v1", "v1")];
    crash_matrix_in(
        dims,
        &history,
        &session(3, "v1", "v1"),
        &[a.clone(), b.clone()],
        |w, l, crash| {
            l[0].assert_continues(w, Expect::FromSavepoint);
            l[1].assert_continues(w, Expect::FromSavepoint);
            let c = w.assert_at_rest(&cluster, LifecycleState::Stable);
            assert_eq!(
                c.last_reconciled_revision.as_deref(),
                Some(w.head().as_str())
            );
            let fc = w.fake.cluster(&cluster).expect("the session cluster");
            assert_eq!(
                fc.config
                    .get("taskmanager.numberOfTaskSlots")
                    .map(String::as_str),
                Some("3")
            );
            assert_eq!(w.fake.running_jobs(&cluster).len(), 2);
            assert_calls(
                w,
                &l[0],
                crash,
                &[
                    Call::Stop,
                    Call::Stop,
                    Call::DeployCluster,
                    Call::RunJar,
                    Call::RunJar,
                ],
                &[Call::DeployCluster],
            );
            assert_eq!(
                w.effective(Call::RunJar, l[0].step),
                2,
                "one submission per job"
            );
        },
    )
    .await;
}

#[tokio::test]
async fn engine_session_cluster_change_stops_redeploys_and_resumes_its_jobs() {
    session_cluster_change(Dims::STEPS).await;
}

/// The agent dropped after each record write of a session cluster change. After the
/// cluster's deploy write-ahead (new spec reconciled, `inFlight: starting`) and before
/// `deploy_cluster`, the restarted agent finds the old session cluster READY, marks the new
/// spec STABLE and resumes the jobs on the old cluster: Git's change is never deployed and
/// the status branch says it is.
#[tokio::test]
async fn engine_session_cluster_change_survives_a_crash_after_each_record_write() {
    session_cluster_change(Dims::WRITES).await;
}

fn without_a(slots: u32) -> Push {
    vec![
        file("session/cluster.yaml", session_cluster_yaml(CLUSTER, slots)),
        removed("session/a.yaml"),
        file(
            "session/b.yaml",
            session_job_yaml("job-b", CLUSTER, &opts("savepoint", "v1")),
        ),
    ]
}

#[tokio::test]
async fn engine_session_job_removal_and_re_addition() {
    let (a, b) = (session_job("job-a"), session_job("job-b"));
    let cluster = deployment(CLUSTER);
    let history = vec![session(2, "v1", "v1")];
    // Removed: a final savepoint, the job stops, the cluster and job-b stay.
    crash_matrix(
        &history,
        &without_a(2),
        &[a.clone(), b.clone()],
        |w, l, crash| {
            assert_eq!(w.fake.violations(), Vec::<String>::new());
            assert!(w.running(&a).is_empty(), "job-a still runs");
            l[1].assert_continues(w, Expect::SameJob);
            let r = w.assert_at_rest(&a, LifecycleState::Deleted);
            let old = w
                .fake
                .job(l[0].job.as_ref().expect("job-a ran"))
                .expect("job");
            let sp = r.savepoints.last().expect("the final savepoint");
            assert_eq!(sp.trigger, SnapshotTrigger::Delete);
            assert_eq!(
                w.fake.snapshot(&sp.location).expect("stored").value,
                old.value
            );
            assert_calls(w, &l[0], crash, &[Call::Stop], &[]);
            w.assert_at_rest(&cluster, LifecycleState::Stable);
        },
    )
    .await;
    // Added back: from the final savepoint.
    let history = vec![session(2, "v1", "v1"), without_a(2)];
    crash_matrix(
        &history,
        &session(2, "v1", "v1"),
        &[a.clone(), b.clone()],
        |w, l, crash| {
            l[0].assert_continues(w, Expect::FromSavepoint);
            l[1].assert_continues(w, Expect::SameJob);
            assert_calls(w, &l[0], crash, &[Call::RunJar], &[Call::RunJar]);
        },
    )
    .await;
}

/// Everything removed at once: the session jobs go first (each with its final savepoint),
/// then the cluster.
#[tokio::test]
async fn engine_session_cluster_removed_with_its_jobs() {
    let (a, b) = (session_job("job-a"), session_job("job-b"));
    let cluster = deployment(CLUSTER);
    let history = vec![session(2, "v1", "v1")];
    let gone: Push = vec![
        removed("session/cluster.yaml"),
        removed("session/a.yaml"),
        removed("session/b.yaml"),
    ];
    crash_matrix(&history, &gone, &[a.clone(), b.clone()], |w, l, crash| {
        assert_eq!(w.fake.violations(), Vec::<String>::new());
        assert!(
            w.fake.cluster(&cluster).is_none(),
            "the session cluster is still there"
        );
        for (key, l) in [(&a, &l[0]), (&b, &l[1])] {
            let r = w.assert_at_rest(key, LifecycleState::Deleted);
            let old = w.fake.job(l.job.as_ref().expect("ran")).expect("job");
            let sp = r.savepoints.last().expect("a final savepoint");
            assert_eq!(
                w.fake.snapshot(&sp.location).expect("stored").value,
                old.value,
                "{key}"
            );
        }
        w.assert_at_rest(&cluster, LifecycleState::Deleted);
        // The cluster was removed only after both final savepoints.
        let calls = w.calls_since(l[0].step);
        let delete = calls
            .iter()
            .position(|c| c.call == Call::DeleteCluster)
            .expect("deleted");
        assert_eq!(
            calls[..delete]
                .iter()
                .filter(|c| c.call == Call::Stop && c.took_effect())
                .count(),
            2,
            "after {crash:?}: {calls:#?}"
        );
    })
    .await;
}
