//! The fake Flink behaves like Flink where the executor depends on it: the savepoint
//! upgrade cycle, duplicate job ids, faults and recovery, checkpoint retention, and the
//! HTTP server answering the real `FlinkRestClient` exactly as the in-memory API answers.

use std::collections::BTreeMap;
use std::time::Duration;

use flink_gitops::apply::runtime::{
    ApplicationJob, ClusterPresence, ClusterRequest, Runtime, SnapshotStorage,
};
use flink_gitops::flink::rest::{
    CheckpointStatus, CheckpointType, FlinkApi, FlinkApiFactory, HttpFlink, JarRunRequest, JobId,
    JobStatus, RestError, SavepointFormat, SavepointStatus, TriggerId,
};
use flink_gitops::flink::spec::{DeploymentSpec, Kind, ResourceKey};

use crate::harness::fake_flink::{Call, FakeFlink, Fault, JobMatch, Times};
use crate::harness::fake_http::FakeHttp;

fn key(name: &str) -> ResourceKey {
    ResourceKey::new("team", Kind::FlinkDeployment, name)
}

fn jid(n: u8) -> JobId {
    JobId::parse(&format!("{n:032x}")).expect("job id")
}

fn trigger(n: u8) -> TriggerId {
    TriggerId::new(format!("{:032x}", 0xa000 + u32::from(n)))
}

fn spec(config: &[(&str, &str)]) -> DeploymentSpec {
    DeploymentSpec {
        flink_configuration: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..DeploymentSpec::default()
    }
}

fn app(name: &str, job: &JobId, restore: Option<&str>) -> ClusterRequest {
    ClusterRequest {
        key: key(name),
        spec: spec(&[]),
        job: Some(ApplicationJob {
            jar_uri: "local:///opt/flink/usrlib/counter.jar".into(),
            entry_class: Some("lab.StatefulCounterJob".into()),
            args: vec!["--rate".into(), "10".into()],
            job_id: job.to_string(),
            parallelism: Some(2),
            restore: restore.map(str::to_string),
            allow_non_restored_state: false,
        }),
        generation: 1,
        revision: None,
    }
}

fn session(name: &str, config: &[(&str, &str)]) -> ClusterRequest {
    ClusterRequest {
        key: key(name),
        spec: spec(config),
        job: None,
        generation: 1,
        revision: None,
    }
}

async fn rest_api(fake: &FakeFlink, name: &str) -> <FakeFlink as FlinkApiFactory>::Api {
    let url = fake
        .rest_url(&key(name))
        .await
        .expect("rest_url")
        .expect("cluster exists");
    fake.connect(&url).expect("connect")
}

/// Uploads a jar through the runtime's `fetch_jar` and submits `job`.
async fn submit<A: FlinkApi>(
    fake: &FakeFlink,
    api: &A,
    job: &JobId,
    restore: Option<&str>,
) -> Result<JobId, RestError> {
    let path = fake
        .fetch_jar("https://repo.example.com/counter-1.0.jar")
        .await
        .expect("fetch_jar");
    let jar = api.upload_jar(&path).await.expect("upload");
    let request = JarRunRequest {
        entry_class: Some("lab.StatefulCounterJob".into()),
        program_args_list: vec!["--rate".into(), "10".into()],
        parallelism: Some(2),
        job_id: Some(job.clone()),
        savepoint_path: restore.map(str::to_string),
        ..JarRunRequest::default()
    };
    api.run_jar(&jar, &request).await
}

async fn await_savepoint<A: FlinkApi>(api: &A, job: &JobId, t: &TriggerId) -> SavepointStatus {
    for _ in 0..20 {
        match api.savepoint_status(job, t).await.expect("status") {
            SavepointStatus::InProgress => continue,
            done => return done,
        }
    }
    panic!("savepoint {t} still in progress after 20 polls");
}

#[tokio::test]
async fn fake_flink_savepoint_upgrade_cycle_carries_the_value() {
    let fake = FakeFlink::new();
    let (v1, v2) = (jid(1), jid(2));
    fake.deploy_cluster(app("counter", &v1, None))
        .await
        .expect("deploy");
    assert_eq!(
        fake.observe_cluster(&key("counter"))
            .await
            .expect("observe"),
        ClusterPresence::Running {
            task_managers: 2,
            generation: Some(1)
        }
    );
    let api = rest_api(&fake, "counter").await;
    fake.advance(5);
    fake.advance(2);
    assert_eq!(fake.value(&v1), Some(7));

    let t = trigger(1);
    let got = api
        .stop_with_savepoint(&v1, None, false, SavepointFormat::Canonical, Some(&t))
        .await
        .expect("stop");
    assert_eq!(got, t, "the caller's trigger id is the operation's");
    assert_eq!(
        api.savepoint_status(&v1, &t).await.expect("poll"),
        SavepointStatus::InProgress
    );
    // Still running until the savepoint completes: records keep counting into it.
    fake.advance(1);
    let location = match api.savepoint_status(&v1, &t).await.expect("poll") {
        SavepointStatus::Completed { location } => location,
        other => panic!("expected completed, got {other:?}"),
    };
    assert!(
        location.starts_with("file:/fake/savepoints/team/counter/savepoint-000000-"),
        "{location}"
    );
    assert_eq!(fake.job(&v1).expect("job").state, JobStatus::Finished);
    assert_eq!(fake.snapshot(&location).expect("stored").value, 8);
    assert!(fake.exists(&location).expect("exists"));
    fake.advance(100); // a finished job does not count
    assert_eq!(fake.value(&v1), Some(8));
    // The application cluster still lists its ended job.
    let listed = api.jobs_overview().await.expect("overview");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, JobStatus::Finished);

    fake.deploy_cluster(app("counter", &v2, Some(&location)))
        .await
        .expect("redeploy");
    let restored = fake.restored_from(&v2).expect("restored");
    assert_eq!(
        (restored.location.as_str(), restored.value),
        (location.as_str(), 8)
    );
    fake.advance(3);
    assert_eq!(fake.value(&v2), Some(11), "counts continue");
    let stats = api.checkpoints(&v2).await.expect("checkpoints");
    assert_eq!(stats.counts.restored, 1);
    assert_eq!(
        stats.latest_restored.and_then(|r| r.external_path),
        Some(location.clone())
    );
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());

    let calls: Vec<(Call, Option<JobId>)> =
        fake.calls().into_iter().map(|c| (c.call, c.job)).collect();
    assert_eq!(
        calls,
        vec![
            (Call::DeployCluster, Some(v1.clone())),
            (Call::Stop, Some(v1.clone())),
            (Call::DeployCluster, Some(v2.clone())),
        ]
    );
    assert_eq!(fake.steps(), 3);
}

#[tokio::test]
async fn fake_flink_same_trigger_id_is_one_operation_and_unknown_jobs_fail_later() {
    let fake = FakeFlink::new();
    let j = jid(1);
    fake.deploy_cluster(app("counter", &j, None))
        .await
        .expect("deploy");
    let api = rest_api(&fake, "counter").await;
    fake.set_polls_in_progress(0);
    let t = trigger(1);
    for _ in 0..2 {
        api.stop_with_savepoint(&j, None, true, SavepointFormat::Native, Some(&t))
            .await
            .expect("stop");
    }
    // A savepoint with the same id is the same cached operation too.
    api.trigger_savepoint(&j, None, SavepointFormat::Canonical, Some(&t))
        .await
        .expect("savepoint");
    let SavepointStatus::Completed { location } = await_savepoint(&api, &j, &t).await else {
        panic!("expected completed")
    };
    assert_eq!(
        fake.snapshots().len(),
        1,
        "one savepoint for one trigger id"
    );
    assert_eq!(
        api.savepoint_status(&j, &t).await.expect("again"),
        SavepointStatus::Completed { location }
    );
    assert!(fake.job(&j).expect("job").drained);

    // Flink accepts triggers for unknown (or ended) jobs and fails the operation.
    let unknown = jid(9);
    let t2 = trigger(2);
    api.stop_with_savepoint(&unknown, None, false, SavepointFormat::Canonical, Some(&t2))
        .await
        .expect("accepted");
    match api.savepoint_status(&unknown, &t2).await.expect("status") {
        SavepointStatus::Failed { cause } => assert!(cause.is_job_not_found(), "{cause:?}"),
        other => panic!("{other:?}"),
    }
    // An unknown trigger is a 404 that is not about the job.
    match api.savepoint_status(&j, &trigger(3)).await {
        Err(RestError::HttpStatus { status: 404, .. }) => {}
        other => panic!("{other:?}"),
    }
    // Trigger ids are Flink ids (32 hex digits).
    match api
        .trigger_savepoint(
            &j,
            None,
            SavepointFormat::Canonical,
            Some(&TriggerId::new("nope")),
        )
        .await
    {
        Err(RestError::HttpStatus { status: 400, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn fake_flink_session_cluster_rejects_a_job_id_twice() {
    let fake = FakeFlink::new();
    fake.deploy_cluster(session("session", &[]))
        .await
        .expect("deploy");
    let api = rest_api(&fake, "session").await;
    let a = jid(1);
    assert_eq!(submit(&fake, &api, &a, None).await.expect("run"), a);
    assert_eq!(fake.running_jobs(&key("session")).len(), 1);
    api.cancel(&a).await.expect("cancel");
    assert_eq!(fake.job(&a).expect("job").state, JobStatus::Canceled);
    api.cancel(&a)
        .await
        .expect("cancelling an ended job is fine");
    match submit(&fake, &api, &a, None).await {
        Err(RestError::DuplicateJobId { job_id, .. }) => assert_eq!(job_id, a.to_string()),
        other => panic!("{other:?}"),
    }

    // A missing snapshot fails the submission and leaves a FAILED job with that id (P10).
    let b = jid(2);
    match submit(&fake, &api, &b, Some("file:///nowhere/savepoint-1")).await {
        Err(RestError::SnapshotNotFound { message, .. }) => {
            assert!(
                message.starts_with("java.io.FileNotFoundException"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.job(&b).expect("left behind").state, JobStatus::Failed);
    assert!(matches!(
        submit(&fake, &api, &b, None).await,
        Err(RestError::DuplicateJobId { .. })
    ));

    // Jars are per JobManager: a redeployed cluster does not know them.
    let path = fake
        .fetch_jar("local:///jobs/counter.jar")
        .await
        .expect("fetch");
    let jar = api.upload_jar(&path).await.expect("upload");
    fake.deploy_cluster(session("session", &[]))
        .await
        .expect("redeploy");
    match api.run_jar(&jar, &JarRunRequest::default()).await {
        Err(RestError::JarNotFound { jar_id, .. }) => assert_eq!(jar_id, jar.as_str()),
        other => panic!("{other:?}"),
    }
    // The new incarnation accepts the old id again.
    assert!(submit(&fake, &api, &a, None).await.is_ok());
}

#[tokio::test]
async fn fake_flink_faults_for_n_calls_then_recovery() {
    let fake = FakeFlink::new();
    let j = jid(1);
    fake.deploy_cluster(app("counter", &j, None))
        .await
        .expect("deploy");
    let api = rest_api(&fake, "counter").await;
    let k = key("counter");

    fake.fault(&k, Call::JobsOverview, Fault::Http500, Times::Next(2));
    for _ in 0..2 {
        match api.jobs_overview().await {
            Err(e @ RestError::HttpStatus { status: 500, .. }) => assert!(e.is_transient()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(api.jobs_overview().await.expect("recovered").len(), 1);

    fake.fault(&k, Call::JobDetails, Fault::Timeout, Times::Next(1));
    assert!(matches!(
        api.job_details(&j).await,
        Err(RestError::Timeout { .. })
    ));
    assert!(api.job_details(&j).await.is_ok());

    // The JobManager stops answering; the runtime still sees the cluster.
    fake.stop_answering(&k);
    assert!(matches!(
        api.cluster_overview().await,
        Err(RestError::Timeout { .. })
    ));
    assert!(matches!(
        api.checkpoints(&j).await,
        Err(RestError::Timeout { .. })
    ));
    assert!(matches!(
        fake.observe_cluster(&k).await,
        Ok(ClusterPresence::Running { .. })
    ));
    fake.resume_answering(&k);
    assert_eq!(api.cluster_overview().await.expect("back").jobs_running, 1);

    // A stop whose answer is lost took effect; asking again with the same trigger id is
    // the same operation.
    fake.fault(&k, Call::Stop, Fault::LostAnswer, Times::Next(1));
    let t = trigger(1);
    assert!(matches!(
        api.stop_with_savepoint(&j, None, false, SavepointFormat::Canonical, Some(&t))
            .await,
        Err(RestError::Timeout { .. })
    ));
    api.stop_with_savepoint(&j, None, false, SavepointFormat::Canonical, Some(&t))
        .await
        .expect("retry");
    assert!(matches!(
        await_savepoint(&api, &j, &t).await,
        SavepointStatus::Completed { .. }
    ));
    assert_eq!(fake.snapshots().len(), 1);
    let outcomes: Vec<String> = fake.calls().into_iter().map(|c| c.outcome).collect();
    assert_eq!(outcomes, vec!["ok", "fault: lost answer", "ok"]);

    // Runtime faults.
    fake.fault(&k, Call::ObserveCluster, Fault::Timeout, Times::Next(1));
    assert!(fake
        .observe_cluster(&k)
        .await
        .is_err_and(|e| e.is_transient()));
    fake.fault_everywhere(Call::FetchJar, Fault::Http500, Times::UntilCleared);
    assert!(fake
        .fetch_jar("local:///a.jar")
        .await
        .is_err_and(|e| e.is_transient()));
    fake.clear_faults();
    assert!(fake.fetch_jar("local:///a.jar").await.is_ok());
    fake.missing_jar("local:///gone.jar");
    assert!(fake
        .fetch_jar("local:///gone.jar")
        .await
        .is_err_and(|e| !e.is_transient()));

    // Killed cluster, deleted cluster, unknown URL: no answer.
    fake.kill_cluster(&k, "OOMKilled");
    assert!(matches!(
        fake.observe_cluster(&k).await,
        Ok(ClusterPresence::Exited { reason }) if reason == "OOMKilled"
    ));
    assert!(matches!(
        api.jobs_overview().await,
        Err(RestError::Timeout { .. })
    ));
    fake.delete_cluster(&k).await.expect("delete");
    assert_eq!(
        fake.observe_cluster(&k).await.expect("observe"),
        ClusterPresence::Missing
    );
    assert_eq!(fake.rest_url(&k).await.expect("rest_url"), None);
    let nowhere = fake.connect("http://fake.invalid/").expect("connect");
    assert!(matches!(
        nowhere.jobs_overview().await,
        Err(RestError::Timeout { .. })
    ));
}

#[tokio::test]
async fn fake_flink_failing_and_held_savepoints() {
    let fake = FakeFlink::new();
    let j = jid(1);
    let k = key("counter");
    // Planned before the cluster exists.
    fake.fail_next_savepoints(&k, 1);
    fake.deploy_cluster(app("counter", &j, None))
        .await
        .expect("deploy");
    let api = rest_api(&fake, "counter").await;

    let t = trigger(1);
    api.stop_with_savepoint(&j, None, false, SavepointFormat::Canonical, Some(&t))
        .await
        .expect("stop");
    match await_savepoint(&api, &j, &t).await {
        SavepointStatus::Failed { cause } => {
            assert!(cause.summary().contains("CheckpointException"), "{cause:?}");
            assert!(!cause.is_job_not_found());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        fake.job(&j).expect("job").state,
        JobStatus::Running,
        "a failed stop leaves the job running"
    );

    fake.hold_operations(&k);
    let t2 = trigger(2);
    api.trigger_savepoint(&j, None, SavepointFormat::Canonical, Some(&t2))
        .await
        .expect("savepoint");
    for _ in 0..5 {
        assert_eq!(
            api.savepoint_status(&j, &t2).await.expect("poll"),
            SavepointStatus::InProgress
        );
    }
    fake.advance(4);
    fake.release_operations(&k);
    fake.settle();
    match api.savepoint_status(&j, &t2).await.expect("poll") {
        SavepointStatus::Completed { location } => {
            assert_eq!(fake.snapshot(&location).expect("stored").value, 4)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.job(&j).expect("job").state, JobStatus::Running);

    // A savepoint needs a folder: none configured (empty) and none given is a 400.
    fake.deploy_cluster(session(
        "bare",
        &[("execution.checkpointing.savepoint-dir", "")],
    ))
    .await
    .expect("deploy");
    let bare = rest_api(&fake, "bare").await;
    let b = jid(2);
    submit(&fake, &bare, &b, None).await.expect("run");
    match bare
        .trigger_savepoint(&b, None, SavepointFormat::Canonical, None)
        .await
    {
        Err(RestError::HttpStatus {
            status: 400,
            message,
            ..
        }) => {
            assert!(message.contains("savepoint-dir"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let chosen = bare
        .trigger_savepoint(&b, Some("file:///sp"), SavepointFormat::Canonical, None)
        .await
        .expect("a trigger id chosen by Flink");
    assert!(matches!(
        await_savepoint(&bare, &b, &chosen).await,
        SavepointStatus::Completed { location } if location.starts_with("file:/sp/savepoint-")
    ));
}

#[tokio::test]
async fn fake_flink_checkpoints_are_retained_and_outlive_the_cluster() {
    let fake = FakeFlink::new();
    let j = jid(1);
    let k = key("counter");
    let mut request = app("counter", &j, None);
    request
        .spec
        .flink_configuration
        .insert("execution.checkpointing.num-retained".into(), "2".into());
    fake.deploy_cluster(request).await.expect("deploy");
    let api = rest_api(&fake, "counter").await;

    fake.advance(1);
    let first = fake.checkpoint(&j).expect("periodic checkpoint");
    assert_eq!(
        first,
        format!("file:/fake/checkpoints/team/counter/{j}/chk-1")
    );
    fake.advance(1);
    fake.checkpoint_all();
    fake.advance(1);
    let t = trigger(1);
    api.trigger_checkpoint(&j, CheckpointType::Full, Some(&t))
        .await
        .expect("trigger");
    assert_eq!(
        api.checkpoint_status(&j, &t).await.expect("poll"),
        CheckpointStatus::InProgress
    );
    assert_eq!(
        api.checkpoint_status(&j, &t).await.expect("poll"),
        CheckpointStatus::Completed { checkpoint_id: 3 }
    );
    let stats = api.checkpoints(&j).await.expect("stats");
    let latest = format!("file:/fake/checkpoints/team/counter/{j}/chk-3");
    assert_eq!(stats.latest_completed_path(), Some(latest.as_str()));
    assert_eq!(stats.counts.completed, 3);
    // Two retained: chk-1 is subsumed.
    assert!(!fake.exists(&first).expect("exists"));
    assert!(fake
        .exists(&format!("file:///fake/checkpoints/team/counter/{j}/chk-2"))
        .expect("exists"));

    // Cancel keeps them (RETAIN_ON_CANCELLATION); the cluster goes; storage still answers.
    api.cancel(&j).await.expect("cancel");
    fake.delete_cluster(&k).await.expect("delete");
    let dir = &fake.default_configuration(&k)["execution.checkpointing.dir"];
    assert_eq!(
        fake.latest_checkpoint(dir, j.as_str()).expect("storage"),
        Some(latest.clone())
    );
    let j2 = jid(2);
    fake.deploy_cluster(app("counter", &j2, Some(&latest)))
        .await
        .expect("deploy");
    assert_eq!(
        fake.value(&j2),
        Some(3),
        "last-state restore carries the value"
    );
    assert_eq!(
        fake.checkpoint(&j2),
        Some(format!("file:/fake/checkpoints/team/counter/{j2}/chk-4"))
    );

    // DELETE_ON_CANCELLATION: a cancel removes them.
    let j3 = jid(3);
    let mut request = app("other", &j3, None);
    request.spec.flink_configuration.insert(
        "execution.checkpointing.externalized-checkpoint-retention".into(),
        "DELETE_ON_CANCELLATION".into(),
    );
    fake.deploy_cluster(request).await.expect("deploy");
    let other = fake.checkpoint(&j3).expect("checkpoint");
    api_cancel(&fake, "other", &j3).await;
    assert!(!fake.exists(&other).expect("exists"));

    // A restore from a location that is not there fails the application job.
    let j4 = jid(4);
    fake.deploy_cluster(app("counter", &j4, Some("file:/fake/nothing")))
        .await
        .expect("deploy");
    let job = fake.job(&j4).expect("job");
    assert_eq!(job.state, JobStatus::Failed);
    assert!(job
        .failure
        .expect("failure")
        .contains("Cannot find checkpoint or savepoint"));
    // SnapshotStorage::delete.
    fake.delete(&latest).expect("delete");
    assert!(!fake.exists(&latest).expect("exists"));
}

async fn api_cancel(fake: &FakeFlink, name: &str, job: &JobId) {
    rest_api(fake, name)
        .await
        .cancel(job)
        .await
        .expect("cancel");
}

#[tokio::test]
async fn fake_flink_rescaling_needs_the_adaptive_scheduler() {
    let fake = FakeFlink::new();
    fake.deploy_cluster(session("default", &[]))
        .await
        .expect("deploy");
    fake.deploy_cluster(session("adaptive", &[("jobmanager.scheduler", "adaptive")]))
        .await
        .expect("deploy");
    for (name, ok) in [("default", false), ("adaptive", true)] {
        let api = rest_api(&fake, name).await;
        let j = jid(1);
        submit(&fake, &api, &j, None).await.expect("run");
        let details = api.job_details(&j).await.expect("details");
        assert_eq!(details.vertices.len(), 2);
        assert!(details.all_vertices_running());
        let wanted: BTreeMap<String, u32> =
            details.vertices.iter().map(|v| (v.id.clone(), 4)).collect();
        let result = api.set_parallelism(&j, &wanted).await;
        if ok {
            result.expect("rescaled");
            let after = api.job_details(&j).await.expect("details");
            assert!(after.vertices.iter().all(|v| v.parallelism == 4));
        } else {
            match result {
                Err(RestError::HttpStatus {
                    status: 500,
                    message,
                    ..
                }) => {
                    assert!(
                        message.contains("UnsupportedOperationException"),
                        "{message}"
                    )
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn fake_flink_jobs_fail_on_demand_or_at_a_value() {
    let fake = FakeFlink::new();
    fake.fail_new_jobs(
        JobMatch::Arg("--rate".into()),
        Some(10),
        "failing on purpose",
    );
    let j = jid(1);
    fake.deploy_cluster(app("counter", &j, None))
        .await
        .expect("deploy");
    let api = rest_api(&fake, "counter").await;
    fake.advance(6);
    assert_eq!(fake.job(&j).expect("job").state, JobStatus::Running);
    fake.advance(6);
    let job = fake.job(&j).expect("job");
    assert_eq!((job.state, job.value), (JobStatus::Failed, 10));
    let e = api
        .job_exceptions(&j)
        .await
        .expect("exceptions")
        .expect("failed");
    assert_eq!(
        e.user_exception().message,
        "java.lang.IllegalStateException: failing on purpose"
    );
    fake.clear_job_failures();

    let j2 = jid(2);
    fake.deploy_cluster(app("counter", &j2, None))
        .await
        .expect("deploy");
    assert_eq!(api.job_exceptions(&j2).await.expect("exceptions"), None);
    fake.fail_job(&j2, "boom");
    assert_eq!(
        api.jobs_overview().await.expect("overview")[0].state,
        JobStatus::Failed
    );

    // P9: RUNNING with tasks still deploying, for a number of polls.
    fake.set_task_start_polls(2);
    let j3 = jid(3);
    fake.deploy_cluster(app("counter", &j3, None))
        .await
        .expect("deploy");
    fake.advance(5);
    assert_eq!(fake.value(&j3), Some(0), "no records before the tasks run");
    let first = api.jobs_overview().await.expect("overview");
    assert_eq!(first[0].state, JobStatus::Running);
    assert!(!first[0].all_tasks_running());
    api.jobs_overview().await.expect("overview");
    assert!(api.jobs_overview().await.expect("overview")[0].all_tasks_running());
}

#[tokio::test]
async fn fake_flink_gate_parks_the_caller_after_the_kth_step() {
    let fake = FakeFlink::new();
    let j = jid(1);
    fake.pause_after_step(2);
    let agent = {
        let fake = fake.clone();
        tokio::spawn(async move {
            fake.deploy_cluster(app("counter", &j, None))
                .await
                .expect("deploy");
            let api = rest_api(&fake, "counter").await;
            api.stop_with_savepoint(
                &j,
                None,
                false,
                SavepointFormat::Canonical,
                Some(&trigger(1)),
            )
            .await
            .expect("stop");
            api.savepoint_status(&j, &trigger(1)).await.expect("status");
            unreachable!("the gate holds the stop's answer");
        })
    };
    tokio::time::timeout(Duration::from_secs(5), fake.wait_for_steps(2))
        .await
        .expect("two steps");
    agent.abort();
    assert!(agent.await.expect_err("aborted").is_cancelled());
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].call, Call::Stop);
    assert!(calls[1].took_effect());
    assert!(
        calls[1].detail.contains(trigger(1).as_str()),
        "{}",
        calls[1].detail
    );
    fake.open_gate();
    // The stop was received: the restarted agent finds its savepoint by the trigger id.
    let api = rest_api(&fake, "counter").await;
    assert!(matches!(
        await_savepoint(&api, &jid(1), &trigger(1)).await,
        SavepointStatus::Completed { .. }
    ));
}

// ---------------------------------------------------------------------------------------
// Over HTTP, with the real client
// ---------------------------------------------------------------------------------------

fn http() -> HttpFlink {
    HttpFlink {
        timeout: Duration::from_secs(5),
        submit_timeout: Duration::from_secs(5),
    }
}

/// For calls that get no answer: the client gives up quickly.
fn impatient() -> HttpFlink {
    HttpFlink {
        timeout: Duration::from_millis(150),
        submit_timeout: Duration::from_millis(150),
    }
}

/// The same error variant (and status and message for HTTP errors).
fn same_error(a: &RestError, b: &RestError) -> bool {
    match (a, b) {
        (
            RestError::HttpStatus {
                status: s1,
                message: m1,
                ..
            },
            RestError::HttpStatus {
                status: s2,
                message: m2,
                ..
            },
        ) => s1 == s2 && m1 == m2,
        (
            RestError::SnapshotNotFound { message: m1, .. },
            RestError::SnapshotNotFound { message: m2, .. },
        ) => m1 == m2,
        _ => a.metric_label() == b.metric_label() && a.to_string() == b.to_string(),
    }
}

#[tokio::test]
async fn fake_flink_http_answers_the_real_client_like_the_in_memory_api() {
    let fake = FakeFlink::new();
    let server = FakeHttp::start(&fake).await;
    let k = key("session");
    fake.deploy_cluster(session("session", &[("jobmanager.scheduler", "adaptive")]))
        .await
        .expect("deploy");
    let url = fake.rest_url(&k).await.expect("rest_url").expect("url");
    assert_eq!(url, server.url(&k));
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let real = http().connect(&url).expect("client");
    let mem = fake.connect(&url).expect("in memory");

    // Submit over HTTP (multipart upload, run body), then compare every read.
    let a = jid(1);
    assert_eq!(
        submit(&fake, &real, &a, None).await.expect("run over HTTP"),
        a
    );
    assert_eq!(fake.job(&a).expect("job").args, vec!["--rate", "10"]);
    assert!(fake
        .job(&a)
        .expect("job")
        .jar
        .expect("jar")
        .contains("counter-1.0.jar"));
    fake.advance(5);
    assert_eq!(
        real.cluster_overview().await.expect("overview"),
        mem.cluster_overview().await.expect("overview")
    );
    assert_eq!(
        real.jobs_overview().await.expect("jobs"),
        mem.jobs_overview().await.expect("jobs")
    );
    assert_eq!(
        real.job_details(&a).await.expect("details"),
        mem.job_details(&a).await.expect("details")
    );
    assert_eq!(real.job_exceptions(&a).await.expect("exc"), None);

    // Checkpoints: trigger over HTTP, poll both ways.
    fake.set_polls_in_progress(2);
    let t = trigger(1);
    assert_eq!(
        real.trigger_checkpoint(&a, CheckpointType::Full, Some(&t))
            .await
            .expect("trigger"),
        t
    );
    assert_eq!(
        real.checkpoint_status(&a, &t).await.expect("poll"),
        CheckpointStatus::InProgress
    );
    assert_eq!(
        mem.checkpoint_status(&a, &t).await.expect("poll"),
        CheckpointStatus::InProgress
    );
    let done = real.checkpoint_status(&a, &t).await.expect("poll");
    assert_eq!(done, CheckpointStatus::Completed { checkpoint_id: 1 });
    assert_eq!(mem.checkpoint_status(&a, &t).await.expect("poll"), done);
    assert_eq!(
        real.checkpoints(&a).await.expect("stats"),
        mem.checkpoints(&a).await.expect("stats")
    );

    // Savepoint, then stop with a caller's trigger id.
    let t2 = trigger(2);
    let t3 = trigger(3);
    real.trigger_savepoint(
        &a,
        Some("file:///elsewhere"),
        SavepointFormat::Canonical,
        Some(&t2),
    )
    .await
    .expect("savepoint");
    fake.settle();
    let sp = real.savepoint_status(&a, &t2).await.expect("status");
    assert_eq!(sp, mem.savepoint_status(&a, &t2).await.expect("status"));
    assert!(
        matches!(&sp, SavepointStatus::Completed { location } if location.starts_with("file:/elsewhere/savepoint-"))
    );
    real.stop_with_savepoint(&a, None, true, SavepointFormat::Native, Some(&t3))
        .await
        .expect("stop");
    fake.settle();
    let stopped = real.savepoint_status(&a, &t3).await.expect("status");
    assert_eq!(
        stopped,
        mem.savepoint_status(&a, &t3).await.expect("status")
    );
    let SavepointStatus::Completed { location } = stopped else {
        panic!("expected completed")
    };
    assert_eq!(fake.job(&a).expect("job").state, JobStatus::Finished);
    assert_eq!(
        real.checkpoints(&a).await.expect("stats"),
        mem.checkpoints(&a).await.expect("stats")
    );
    let details = real.job_details(&a).await.expect("details");
    assert_eq!(details.state, JobStatus::Finished);

    // Restore from it over HTTP; the value carries.
    let b = jid(2);
    submit(&fake, &real, &b, Some(&location))
        .await
        .expect("restore");
    assert_eq!(fake.restored_from(&b).expect("restored").value, 5);

    // Rescale through the real client (it reads the vertices first).
    let vertices = real.job_details(&b).await.expect("details").vertices;
    let wanted: BTreeMap<String, u32> = vertices.iter().map(|v| (v.id.clone(), 3)).collect();
    real.set_parallelism(&b, &wanted).await.expect("rescale");
    assert!(fake
        .job(&b)
        .expect("job")
        .parallelism
        .values()
        .all(|p| *p == 3));

    // Failures and exceptions look the same both ways.
    fake.fail_job(&b, "boom");
    assert_eq!(
        real.job_exceptions(&b).await.expect("exc"),
        mem.job_exceptions(&b).await.expect("exc")
    );
    real.cancel(&b).await.expect("cancel of an ended job");
    let c = jid(3);
    fake.fault(&k, Call::Cancel, Fault::Http500, Times::Next(2));
    let cases: Vec<(Result<(), RestError>, Result<(), RestError>)> = vec![
        (real.cancel(&c).await, mem.cancel(&c).await),
        (real.cancel(&jid(7)).await, mem.cancel(&jid(7)).await),
        (
            real.job_details(&c).await.map(drop),
            mem.job_details(&c).await.map(drop),
        ),
        (
            real.checkpoints(&c).await.map(drop),
            mem.checkpoints(&c).await.map(drop),
        ),
        (
            real.savepoint_status(&a, &trigger(9)).await.map(drop),
            mem.savepoint_status(&a, &trigger(9)).await.map(drop),
        ),
        (
            submit(&fake, &real, &a, None).await.map(drop),
            submit(&fake, &mem, &a, None).await.map(drop),
        ),
        (
            submit(&fake, &real, &jid(4), Some("file:/missing"))
                .await
                .map(drop),
            submit(&fake, &mem, &jid(5), Some("file:/missing"))
                .await
                .map(drop),
        ),
        (
            real.run_jar(
                &flink_gitops::flink::rest::JarId::new("nope.jar"),
                &JarRunRequest::default(),
            )
            .await
            .map(drop),
            mem.run_jar(
                &flink_gitops::flink::rest::JarId::new("nope.jar"),
                &JarRunRequest::default(),
            )
            .await
            .map(drop),
        ),
        (
            real.trigger_savepoint(
                &a,
                None,
                SavepointFormat::Canonical,
                Some(&TriggerId::new("x")),
            )
            .await
            .map(drop),
            mem.trigger_savepoint(
                &a,
                None,
                SavepointFormat::Canonical,
                Some(&TriggerId::new("x")),
            )
            .await
            .map(drop),
        ),
    ];
    let labels = [
        "http_status",
        "job_not_found",
        "job_not_found",
        "job_not_found",
        "http_status",
        "duplicate_job_id",
        "snapshot_not_found",
        "jar_not_found",
        "http_status",
    ];
    for (i, ((r, m), label)) in cases.iter().zip(labels).enumerate() {
        let (r, m) = match (r, m) {
            (Err(r), Err(m)) => (r, m),
            other => panic!("case {i}: {other:?}"),
        };
        assert_eq!(r.metric_label(), label, "case {i}: {r:?}");
        assert!(same_error(r, m), "case {i}: HTTP {r:?} vs in memory {m:?}");
    }

    // No answer: the real client times out.
    fake.stop_answering(&k);
    match impatient()
        .connect(&url)
        .expect("client")
        .jobs_overview()
        .await
    {
        Err(RestError::Timeout { .. }) => {}
        other => panic!("{other:?}"),
    }
    fake.resume_answering(&k);
    assert!(real.jobs_overview().await.is_ok());
    assert!(matches!(
        impatient()
            .connect(&server.url(&key("missing")))
            .expect("client")
            .cluster_overview()
            .await,
        Err(RestError::Timeout { .. })
    ));

    // Mutating calls over HTTP are logged like in-memory ones.
    let over_http: Vec<Call> = fake.calls().iter().map(|c| c.call).collect();
    assert!(
        over_http.starts_with(&[
            Call::DeployCluster,
            Call::UploadJar,
            Call::RunJar,
            Call::TriggerCheckpoint
        ]),
        "{over_http:?}"
    );

    // The server stops with its guard.
    drop(server);
    tokio::task::yield_now().await;
    assert!(real.jobs_overview().await.is_err());
}

/// The resource requirements endpoints, as the real client's `set_parallelism` uses them
/// (`GET`, then `PUT` of every vertex with `lowerBound`/`upperBound`, as the operator's
/// `AbstractFlinkService.scale`): the bounds it reads, the bounds it writes, no `PUT`
/// when nothing changes, Flink's refusals under the default scheduler and of bodies that
/// do not name every vertex or have bounds out of order; the in-memory API takes the
/// same path.
#[tokio::test]
async fn fake_flink_http_resource_requirements_get_then_put() {
    let fake = FakeFlink::new();
    let _server = FakeHttp::start(&fake).await;
    fake.deploy_cluster(session("adaptive", &[("jobmanager.scheduler", "adaptive")]))
        .await
        .expect("deploy");
    fake.deploy_cluster(session("default", &[]))
        .await
        .expect("deploy");
    let url = fake
        .rest_url(&key("adaptive"))
        .await
        .expect("rest_url")
        .expect("url");
    let real = http().connect(&url).expect("client");
    let mem = fake.connect(&url).expect("in memory");
    let a = jid(1);
    submit(&fake, &real, &a, None).await.expect("run");
    let vertices: Vec<String> = real
        .job_details(&a)
        .await
        .expect("details")
        .vertices
        .iter()
        .map(|v| v.id.clone())
        .collect();
    assert_eq!(vertices.len(), 2);
    let (v0, v1) = (vertices[0].clone(), vertices[1].clone());

    // Submitted at parallelism 2: lower bound 1, upper bound 2.
    let before = real.resource_requirements(&a).await.expect("GET");
    assert_eq!(
        before,
        BTreeMap::from([(v0.clone(), (1, 2)), (v1.clone(), (1, 2))])
    );

    // Up to 3 for one vertex: its upper bound moves, the other keeps its bounds.
    let gets = fake.call_count(Call::ResourceRequirements);
    real.set_parallelism(&a, &BTreeMap::from([(v0.clone(), 3)]))
        .await
        .expect("rescale over HTTP");
    assert_eq!(fake.call_count(Call::ResourceRequirements), gets + 1);
    assert_eq!(
        real.resource_requirements(&a).await.expect("GET"),
        BTreeMap::from([(v0.clone(), (1, 3)), (v1.clone(), (1, 2))])
    );
    let job = fake.job(&a).expect("job");
    assert_eq!(job.parallelism[&v0], 3);
    assert_eq!(job.parallelism[&v1], 2);
    let put = fake.calls().last().cloned().expect("a logged PUT");
    assert_eq!(put.call, Call::SetParallelism);
    assert_eq!(put.outcome, "ok");
    assert!(put.detail.contains("=1..3"), "{}", put.detail);

    // Unchanged: the client reads and sends nothing.
    let steps = fake.steps();
    real.set_parallelism(&a, &BTreeMap::from([(v0.clone(), 3)]))
        .await
        .expect("no-op");
    assert_eq!(fake.steps(), steps, "no PUT when nothing changes");

    // In memory, the same path: GET, then PUT; down to 1 lowers both bounds.
    let gets = fake.call_count(Call::ResourceRequirements);
    mem.set_parallelism(&a, &BTreeMap::from([(v1.clone(), 1)]))
        .await
        .expect("rescale in memory");
    assert_eq!(fake.call_count(Call::ResourceRequirements), gets + 1);
    assert_eq!(fake.steps(), steps + 1);
    assert_eq!(
        real.resource_requirements(&a).await.expect("GET"),
        BTreeMap::from([(v0.clone(), (1, 3)), (v1.clone(), (1, 1))])
    );

    // A fault on the GET fails the rescale before anything is sent, both ways.
    let k = key("adaptive");
    fake.fault(
        &k,
        Call::ResourceRequirements,
        Fault::Http500,
        Times::Next(2),
    );
    let r = real
        .set_parallelism(&a, &BTreeMap::from([(v0.clone(), 4)]))
        .await;
    let m = mem
        .set_parallelism(&a, &BTreeMap::from([(v0.clone(), 4)]))
        .await;
    match (&r, &m) {
        (Err(r), Err(m)) => assert!(same_error(r, m), "{r:?} vs {m:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.steps(), steps + 1, "no PUT after a failed GET");
    assert_eq!(fake.job(&a).expect("job").parallelism[&v0], 3);

    // Bodies Flink refuses: a vertex left out, bounds out of order, not the shape.
    let raw = reqwest::Client::new();
    let put_url = format!("{url}/jobs/{a}/resource-requirements");
    let bounds =
        |l: u32, u: u32| serde_json::json!({"parallelism": {"lowerBound": l, "upperBound": u}});
    for body in [
        serde_json::json!({ v0.clone(): bounds(1, 2) }),
        serde_json::json!({ v0.clone(): bounds(3, 2), v1.clone(): bounds(1, 1) }),
        serde_json::json!({ v0.clone(): {"parallelism": 2}, v1.clone(): bounds(1, 1) }),
    ] {
        let answer = raw.put(&put_url).json(&body).send().await.expect("PUT");
        assert_eq!(answer.status().as_u16(), 400, "{body}");
    }
    assert_eq!(
        real.resource_requirements(&a).await.expect("GET"),
        BTreeMap::from([(v0.clone(), (1, 3)), (v1.clone(), (1, 1))]),
        "refused bodies change nothing"
    );

    // The default scheduler: the GET already fails, as SchedulerNG's default method.
    let url = fake
        .rest_url(&key("default"))
        .await
        .expect("rest_url")
        .expect("url");
    let real = http().connect(&url).expect("client");
    let b = jid(2);
    submit(&fake, &real, &b, None).await.expect("run");
    for result in [
        real.resource_requirements(&b).await.map(drop),
        real.set_parallelism(&b, &BTreeMap::from([(v0.clone(), 3)]))
            .await,
    ] {
        match result {
            Err(RestError::HttpStatus {
                status: 500,
                message,
                ..
            }) => assert!(
                message.contains("UnsupportedOperationException"),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
    }
    // An unknown job: not found.
    assert!(matches!(
        real.resource_requirements(&jid(9)).await,
        Err(RestError::JobNotFound { .. })
    ));
}
