//! Fault scenarios against the in-memory fake Flink: HTTP 500s and timeouts on the jobs
//! overview, the savepoint (and checkpoint) trigger status and the cluster overview, once
//! and for 30 polls in a row, at rest and in the middle of an upgrade, for an application
//! deployment and for a session job. While Flink does not answer: no external step at all
//! (no deploy, no submit, no stop, no second job), the reconcile fails as unreachable, and
//! the status record says unreachable with the error. When the answers come back the agent
//! recovers by itself: the same job (or the upgrade carried on from where it was), exactly
//! one job, the newest state, the unreachable note cleared.
//!
//! One exception by design: while a deploy is in flight, a cluster overview that gets no
//! answer is taken for a cluster still starting (within the readiness timeout): the agent
//! waits without an unreachable note (still no step). For a session job on a session
//! cluster that was READY, that hides an outage: an ignored test says so.

use flink_gitops::apply::executor::Requeue;
use flink_gitops::flink::lifecycle::record::{reason, InFlight, LifecycleState};
use flink_gitops::flink::rest::JobId;
use flink_gitops::flink::spec::ResourceKey;

use crate::harness::agent_fake::*;
use crate::harness::fake_flink::{Call, Fault, Times};

const APP_FILE: &str = "apps/counter.yaml";
const NAME: &str = "counter";
const CLUSTER: &str = "analytics";

/// Where in a resource's life the fault starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// At rest, its job running.
    Rest,
    /// A savepoint upgrade is in flight: the stop was sent, its savepoint not yet seen.
    Stopping,
    /// An upgrade's new job was started; its tasks are not all running yet.
    Starting,
    /// A manual savepoint (savepointTriggerNonce) is in flight.
    Snapshotting,
    /// A manual checkpoint (checkpointTriggerNonce) is in flight.
    Checkpointing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    App,
    SessionJob,
    /// The session cluster of [`Target::SessionJob`]'s world.
    SessionCluster,
}

fn opts(version: &str) -> JobOpts {
    JobOpts {
        version: version.to_string(),
        ..JobOpts::default()
    }
}

fn push_for(target: Target, o: &JobOpts) -> Push {
    match target {
        Target::App => vec![file(APP_FILE, app_yaml(NAME, o))],
        Target::SessionJob | Target::SessionCluster => vec![
            file("session/cluster.yaml", session_cluster_yaml(CLUSTER, 2)),
            file("session/job.yaml", session_job_yaml(NAME, CLUSTER, o)),
        ],
    }
}

fn key_of(target: Target) -> ResourceKey {
    match target {
        Target::App => deployment(NAME),
        Target::SessionJob => session_job(NAME),
        Target::SessionCluster => deployment(CLUSTER),
    }
}

/// What the record's unreachable note must mention: the endpoint and the failure.
fn expected_error(call: Call, fault: Fault) -> (&'static str, &'static str) {
    let path = match call {
        Call::JobsOverview => "/jobs/overview",
        Call::ClusterOverview => "/overview",
        Call::SavepointStatus => "/savepoints/",
        Call::CheckpointStatus => "/checkpoints/",
        other => panic!("no expectation for {other:?}"),
    };
    let what = match fault {
        Fault::Http500 => "HTTP 500",
        _ => "no answer",
    };
    (path, what)
}

/// Brings a world to `phase` and returns it with its agent and the lineage taken before
/// the change (if any) was pushed.
async fn enter(target: Target, phase: Phase) -> (World, std::sync::Arc<FakeAgent>, Lineage) {
    let key = key_of(target);
    let (w, agent) = World::replay(&[push_for(target, &opts("v1"))]).await;
    let lineage = w.lineage(&key);
    if target == Target::SessionCluster {
        assert_eq!(phase, Phase::Rest);
        w.assert_at_rest(&key, LifecycleState::Stable);
        return (w, agent, lineage);
    }
    w.assert_running(&key);
    let cluster = w.cluster_of(&key);
    match phase {
        Phase::Rest => {}
        Phase::Stopping => {
            w.fake.hold_operations(&cluster);
            w.push_files(&push_for(target, &opts("v2")));
            w.round(&agent).await;
            assert!(
                matches!(w.record(&key).in_flight, Some(InFlight::Stopping { .. })),
                "{:?}",
                w.record(&key).in_flight
            );
        }
        Phase::Starting => {
            w.fake.set_task_start_polls(3);
            w.push_files(&push_for(target, &opts("v2")));
            for _ in 0..10 {
                w.round(&agent).await;
                if matches!(w.record(&key).in_flight, Some(InFlight::Starting { .. })) {
                    break;
                }
                w.pass_time();
            }
            assert!(
                matches!(w.record(&key).in_flight, Some(InFlight::Starting { .. })),
                "{:?}",
                w.record(&key).in_flight
            );
        }
        Phase::Snapshotting | Phase::Checkpointing => {
            w.fake.hold_operations(&cluster);
            let o = JobOpts {
                savepoint_nonce: (phase == Phase::Snapshotting).then_some(1),
                checkpoint_nonce: (phase == Phase::Checkpointing).then_some(1),
                ..opts("v1")
            };
            w.push_files(&push_for(target, &o));
            w.round(&agent).await;
            assert!(
                matches!(
                    w.record(&key).in_flight,
                    Some(InFlight::Snapshotting { .. })
                ),
                "{:?}",
                w.record(&key).in_flight
            );
        }
    }
    (w, agent, lineage)
}

/// `call` on the resource's cluster fails with `fault` for `n` calls in a row, starting in
/// `phase`; see the module docs for what must hold.
async fn fault_case(target: Target, phase: Phase, call: Call, fault: Fault, n: u32) {
    fault_case_as(target, phase, call, fault, n, Report::Unreachable).await
}

/// What the record says while the fault lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Report {
    /// Unreachable, with the error; the reconcile fails.
    Unreachable,
    /// Waiting for a starting cluster to answer (within the readiness timeout); the
    /// reconcile requeues.
    Waiting,
}

async fn fault_case_as(
    target: Target,
    phase: Phase,
    call: Call,
    fault: Fault,
    n: u32,
    report: Report,
) {
    let case = format!("{target:?} {phase:?} {call:?} {fault:?} x{n}");
    let key = key_of(target);
    let (w, agent, lineage) = enter(target, phase).await;
    let cluster = w.cluster_of(&key);
    let state_before = w.record(&key).lifecycle_state;
    let jobs_before = w.jobs_of(&key);
    let steps_before = w.fake.steps();
    let calls_before = w.fake.call_count(call);
    w.fake.fault(&cluster, call, fault, Times::Next(n));
    w.fake.release_operations(&cluster);

    // While it fails (the resource reconciled on its own, so that the faults are its
    // own): nothing external, unreachable with the error.
    let (path, what) = expected_error(call, fault);
    let mut rounds = 0;
    while w.fake.call_count(call) < calls_before + u64::from(n) {
        rounds += 1;
        assert!(
            rounds <= 3 * n as usize + 10,
            "{case}: the agent stopped asking"
        );
        let faulted = w.fake.call_count(call);
        let result = w.reconcile(&agent, &key).await;
        assert_eq!(
            w.fake.call_count(call),
            faulted + 1,
            "{case}: one question per reconcile"
        );
        assert_eq!(
            w.fake.steps(),
            steps_before,
            "{case}: an external step while Flink did not answer: {:#?}",
            w.calls_since(steps_before)
        );
        let r = w.record(&key);
        if report == Report::Waiting {
            assert!(
                matches!(result, Ok(Requeue::After(_))),
                "{case}: reconcile: {result:?}"
            );
            assert_eq!(
                r.lifecycle_state, state_before,
                "{case}: the lifecycle moved"
            );
            assert_eq!(r.last_error, None, "{case}");
            assert_eq!(
                w.jobs_of(&key).len(),
                jobs_before.len(),
                "{case}: a job was started"
            );
            w.pass_time();
            continue;
        }
        assert!(
            matches!(&result, Err(e) if e.contains("cannot observe") && e.contains(path)),
            "{case}: reconcile: {result:?}"
        );
        let note = r
            .unreachable
            .as_ref()
            .unwrap_or_else(|| panic!("{case}: the record does not say unreachable: {r:#?}"));
        assert_eq!(note.reason, reason::UNREACHABLE, "{case}");
        assert!(
            note.message.contains(path) && note.message.contains(what),
            "{case}: the note does not carry the error: {note:?}"
        );
        assert_eq!(
            r.lifecycle_state, state_before,
            "{case}: the lifecycle moved"
        );
        assert_eq!(
            r.last_error, None,
            "{case}: an unanswered question is no error"
        );
        assert_eq!(
            w.jobs_of(&key).len(),
            jobs_before.len(),
            "{case}: a job was started"
        );
        w.pass_time();
    }
    assert_eq!(
        rounds, n as usize,
        "{case}: {rounds} reconciles for {n} faults"
    );

    // Answers come back: it carries on by itself.
    w.fake.set_task_start_polls(0);
    w.settle(&agent).await;
    let r = w.assert_at_rest(&key, LifecycleState::Stable);
    assert_eq!(r.unreachable, None, "{case}");
    if target == Target::SessionCluster {
        assert!(
            w.fake.cluster(&key).is_some(),
            "{case}: the session cluster is gone"
        );
        assert_eq!(
            w.effective(Call::DeployCluster, steps_before),
            0,
            "{case}: redeployed"
        );
        assert_eq!(w.fake.running_jobs(&key).len(), 1, "{case}: its job");
        assert_eq!(w.jobs_of(&key).len(), jobs_before.len(), "{case}");
        return;
    }
    match phase {
        Phase::Rest | Phase::Snapshotting | Phase::Checkpointing => {
            lineage.assert_continues(&w, Expect::SameJob);
            assert_eq!(
                w.jobs_of(&key).len(),
                jobs_before.len(),
                "{case}: a job was started"
            );
            let redeploys = w.effective(Call::DeployCluster, steps_before)
                + w.effective(Call::RunJar, steps_before);
            assert_eq!(redeploys, 0, "{case}: {:#?}", w.calls_since(steps_before));
        }
        Phase::Stopping | Phase::Starting => {
            let job = lineage.assert_continues(&w, Expect::FromSavepoint);
            assert_eq!(job.args, vec!["--version", "v2"], "{case}");
            // Exactly one new job for the upgrade.
            assert_eq!(
                w.jobs_of(&key).len(),
                lineage.jobs_before + 1,
                "{case}: {:#?}",
                w.jobs_of(&key)
            );
        }
    }
    match phase {
        Phase::Snapshotting => {
            assert_eq!(r.nonces.get("savepointTriggerNonce"), Some(&1), "{case}");
            assert_eq!(
                w.effective(Call::TriggerSavepoint, lineage.step),
                1,
                "{case}"
            );
        }
        Phase::Checkpointing => {
            assert_eq!(r.nonces.get("checkpointTriggerNonce"), Some(&1), "{case}");
            assert_eq!(
                w.effective(Call::TriggerCheckpoint, lineage.step),
                1,
                "{case}"
            );
        }
        Phase::Stopping => {
            assert_eq!(w.effective(Call::Stop, lineage.step), 1, "{case}: one stop");
        }
        _ => {}
    }
}

async fn all_faults(target: Target, phase: Phase, calls: &[Call]) {
    for &call in calls {
        for fault in [Fault::Http500, Fault::Timeout] {
            for n in [1, 30] {
                fault_case(target, phase, call, fault, n).await;
            }
        }
    }
}

const OBSERVE: [Call; 2] = [Call::JobsOverview, Call::ClusterOverview];

#[tokio::test]
async fn engine_faults_at_rest_application() {
    all_faults(Target::App, Phase::Rest, &OBSERVE).await;
}

#[tokio::test]
async fn engine_faults_at_rest_session_job() {
    all_faults(Target::SessionJob, Phase::Rest, &OBSERVE).await;
    all_faults(
        Target::SessionCluster,
        Phase::Rest,
        &[Call::ClusterOverview],
    )
    .await;
}

#[tokio::test]
async fn engine_faults_while_stopping_with_a_savepoint_application() {
    all_faults(
        Target::App,
        Phase::Stopping,
        &[
            Call::JobsOverview,
            Call::ClusterOverview,
            Call::SavepointStatus,
        ],
    )
    .await;
}

#[tokio::test]
async fn engine_faults_while_stopping_with_a_savepoint_session_job() {
    all_faults(
        Target::SessionJob,
        Phase::Stopping,
        &[
            Call::JobsOverview,
            Call::ClusterOverview,
            Call::SavepointStatus,
        ],
    )
    .await;
}

#[tokio::test]
async fn engine_faults_while_starting_application() {
    all_faults(Target::App, Phase::Starting, &[Call::JobsOverview]).await;
}

/// A new application cluster that does not answer its overview yet is taken for one that
/// is still starting (within the readiness timeout): the agent waits, takes no step and
/// writes no unreachable note, and carries on when it answers.
#[tokio::test]
async fn engine_cluster_overview_faults_while_an_application_cluster_starts_are_waited_out() {
    for fault in [Fault::Http500, Fault::Timeout] {
        for n in [1, 30] {
            fault_case_as(
                Target::App,
                Phase::Starting,
                Call::ClusterOverview,
                fault,
                n,
                Report::Waiting,
            )
            .await;
        }
    }
}

/// The case the issue names: a session job whose cluster does not answer must never be
/// submitted a second time under a new job id.
#[tokio::test]
async fn engine_faults_while_starting_session_job() {
    all_faults(Target::SessionJob, Phase::Starting, &[Call::JobsOverview]).await;
}

/// A session job just submitted to a session cluster that was READY before: when the
/// cluster's overview fails, the outage is reported (unreachable), not taken for a cluster
/// that is still starting; nothing is submitted again.
#[tokio::test]
async fn engine_cluster_overview_faults_while_a_session_job_starts_are_reported() {
    for fault in [Fault::Http500, Fault::Timeout] {
        for n in [1, 30] {
            fault_case(
                Target::SessionJob,
                Phase::Starting,
                Call::ClusterOverview,
                fault,
                n,
            )
            .await;
        }
    }
}

#[tokio::test]
async fn engine_faults_on_manual_snapshot_status() {
    for target in [Target::App, Target::SessionJob] {
        all_faults(
            target,
            Phase::Snapshotting,
            &[Call::SavepointStatus, Call::JobsOverview],
        )
        .await;
        all_faults(target, Phase::Checkpointing, &[Call::CheckpointStatus]).await;
    }
}

/// A JobManager that stops answering everything (a long GC pause, SIGSTOP) for 30 rounds,
/// then answers again: the same job, one job, no step meanwhile.
#[tokio::test]
async fn engine_a_jobmanager_that_stops_answering_is_unknown_not_gone() {
    for target in [Target::App, Target::SessionJob] {
        for phase in [Phase::Rest, Phase::Stopping] {
            let case = format!("{target:?} {phase:?}");
            let key = key_of(target);
            let (w, agent, lineage) = enter(target, phase).await;
            let cluster = w.cluster_of(&key);
            let steps = w.fake.steps();
            w.fake.stop_answering(&cluster);
            w.fake.release_operations(&cluster);
            for _ in 0..30 {
                let results = w.round(&agent).await;
                assert!(
                    matches!(results.get(&key), Some(Err(_))),
                    "{case}: {results:?}"
                );
                assert_eq!(w.fake.steps(), steps, "{case}: {:#?}", w.calls_since(steps));
                let r = w.record(&key);
                let note = r
                    .unreachable
                    .clone()
                    .unwrap_or_else(|| panic!("{case}: {r:#?}"));
                assert!(note.message.contains("no answer"), "{case}: {note:?}");
                w.pass_time();
            }
            w.fake.resume_answering(&cluster);
            w.settle(&agent).await;
            let expect = if phase == Phase::Rest {
                Expect::SameJob
            } else {
                Expect::FromSavepoint
            };
            lineage.assert_continues(&w, expect);
            assert_eq!(w.record(&key).unreachable, None);
        }
    }
}

/// The answer to a step is lost after it took effect (a proxy that drops the response):
/// the agent retries idempotently and ends with one job, from the newest state.
#[tokio::test]
async fn engine_lost_answers_to_steps_are_retried_idempotently() {
    let cases = [
        (Target::App, Call::Stop),
        (Target::App, Call::DeployCluster),
        (Target::SessionJob, Call::Stop),
        (Target::SessionJob, Call::RunJar),
    ];
    for (target, call) in cases {
        let case = format!("{target:?} {call:?}");
        let key = key_of(target);
        let (w, agent) = World::replay(&[push_for(target, &opts("v1"))]).await;
        let lineage = w.lineage(&key);
        w.fake
            .fault(&w.cluster_of(&key), call, Fault::LostAnswer, Times::Next(1));
        w.push_files(&push_for(target, &opts("v2")));
        w.settle(&agent).await;
        let lost: Vec<_> = w
            .calls_since(lineage.step)
            .into_iter()
            .filter(|c| c.outcome == "fault: lost answer")
            .collect();
        assert_eq!(lost.len(), 1, "{case}: the fault did not fire");
        lineage.assert_continues(&w, Expect::FromSavepoint);
        assert_eq!(
            w.jobs_of(&key).len(),
            lineage.jobs_before + 1,
            "{case}: {:#?}",
            w.jobs_of(&key)
        );
        let started: Vec<JobId> = w
            .calls_since(lineage.step)
            .into_iter()
            .filter(|c| matches!(c.call, Call::DeployCluster | Call::RunJar) && c.took_effect())
            .filter_map(|c| c.job)
            .collect();
        assert_eq!(started.len(), 1, "{case}: started {started:?}");
    }
}
