//! Executor scenarios of snapshots besides upgrades, against the in-memory fake Flink (the
//! fake clock moves one second per round): periodic savepoints on a cron expression with a
//! bounded, disposed history; a disposal whose answer is lost; a periodic savepoint that
//! keeps failing (reported with Flink's cause, tried again with backoff, another resource
//! upgraded meanwhile); a manual checkpoint recorded with its location.

use flink_gitops::flink::lifecycle::decide::CHECKPOINT_NONCE;
use flink_gitops::flink::lifecycle::record::{reason, InFlight, LifecycleState, SnapshotTrigger};

use crate::harness::agent_fake::*;
use crate::harness::fake_flink::{Call, Fault, Times};

const EVERY_5S: &str = "*/5 * * * * ?";

fn periodic(version: &str, max_count: &str) -> JobOpts {
    JobOpts {
        version: version.to_string(),
        config: vec![
            (
                "kubernetes.operator.periodic.savepoint.interval".into(),
                EVERY_5S.into(),
            ),
            (
                "kubernetes.operator.savepoint.history.max.count".into(),
                max_count.into(),
            ),
        ],
        ..JobOpts::mode("savepoint")
    }
}

fn ms(rfc3339: &str) -> u64 {
    humantime::parse_rfc3339(rfc3339)
        .expect("a recorded time")
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

#[tokio::test]
async fn engine_periodic_savepoints_on_cron_keep_a_bounded_disposed_history() {
    let key = deployment("counter");
    let w = World::new();
    let agent = w.agent().await;
    w.push(&[(
        "apps/counter.yaml",
        Some(app_yaml("counter", &periodic("v1", "2"))),
    )]);
    w.settle(&agent).await;
    let job = w.the_running_job(&key);
    // The first disposal's answer is lost after it took effect: tried again, found gone.
    w.fake.fault(
        &w.cluster_of(&key),
        Call::DisposeSavepoint,
        Fault::LostAnswer,
        Times::Next(1),
    );
    w.rounds(&agent, 40).await;
    let r = w.record(&key);
    let taken: Vec<_> = w
        .fake
        .snapshots()
        .into_iter()
        .filter(|s| s.is_savepoint && s.job.as_ref() == Some(&job.id))
        .collect();
    assert!(
        taken.len() >= 6,
        "a savepoint about every 5 s over 40 s: {taken:#?}"
    );
    let periodic: Vec<_> = r
        .savepoints
        .iter()
        .filter(|s| s.trigger == SnapshotTrigger::Periodic)
        .collect();
    assert!(
        periodic.len() <= 2 && !periodic.is_empty(),
        "max.count 2: {:#?}",
        r.savepoints
    );
    for s in &periodic {
        let stored = w.fake.snapshot(&s.location).expect("known to Flink");
        assert!(!stored.deleted, "a kept savepoint is intact: {stored:?}");
    }
    let disposed: Vec<_> = taken.iter().filter(|s| s.deleted).collect();
    assert_eq!(
        disposed.len() + periodic.len() + r.snapshots.disposals.len(),
        taken.len(),
        "every savepoint is kept, disposed or being disposed: {r:#?}"
    );
    assert!(disposed.len() >= 4, "{disposed:#?}");
    assert!(
        r.snapshots.disposals.iter().all(|d| d.attempts == 0),
        "the lost answer was retried and settled: {:#?}",
        r.snapshots.disposals
    );
    assert!(
        w.fake.call_count(Call::DisposeSavepoint) > disposed.len() as u64,
        "the disposal whose answer was lost was sent again"
    );
    assert_eq!(r.last_error, None);
    assert!(r.snapshots.last_periodic_savepoint.is_some());
    assert_eq!(w.the_running_job(&key).id, job.id, "no restart");
    // A restarted agent keeps the schedule and the bounds.
    let again = w.agent().await;
    w.rounds(&again, 12).await;
    let r = w.record(&key);
    assert!(
        r.savepoints
            .iter()
            .filter(|s| s.trigger == SnapshotTrigger::Periodic)
            .count()
            <= 2
    );
    assert_eq!(r.derive_lifecycle(), LifecycleState::Stable);
    assert_eq!(w.the_running_job(&key).id, job.id);
}

#[tokio::test]
async fn engine_a_failing_periodic_savepoint_is_reported_retried_with_backoff_and_holds_up_nothing()
{
    let key = deployment("counter");
    let other = deployment("other");
    let w = World::new();
    let agent = w.agent().await;
    let other_v = |v: &str| {
        app_yaml(
            "other",
            &JobOpts {
                version: v.into(),
                ..JobOpts::default()
            },
        )
    };
    w.push(&[
        (
            "apps/counter.yaml",
            Some(app_yaml("counter", &periodic("v1", "10"))),
        ),
        ("apps/other.yaml", Some(other_v("v1"))),
    ]);
    w.settle(&agent).await;
    w.fake.fail_next_savepoints(&w.cluster_of(&key), 3);
    // Round by round: when each periodic trigger went out, and the failures recorded.
    let mut triggered: Vec<u64> = Vec::new();
    let mut reported = None;
    for round in 0..120 {
        if round == 12 {
            // Another resource's upgrade goes through while the savepoints fail.
            w.push(&[("apps/other.yaml", Some(other_v("v2")))]);
        }
        w.round(&agent).await;
        let r = w.record(&key);
        if let Some(InFlight::Snapshotting {
            periodic: true,
            since,
            ..
        }) = &r.in_flight
        {
            let t = ms(since);
            if triggered.last() != Some(&t) {
                triggered.push(t);
            }
        }
        if reported.is_none() {
            reported = r.last_error.clone();
        }
        w.pass_time();
    }
    let e = reported.expect("the failure is reported");
    assert_eq!(e.reason, reason::SAVEPOINT_FAILED);
    assert!(
        e.message.contains("Checkpoint was declined") && e.message.contains("periodic savepoint"),
        "Flink's cause: {}",
        e.message
    );
    assert_eq!(w.the_running_job(&other).args, vec!["--version", "v2"]);
    w.assert_at_rest(&other, LifecycleState::Stable);
    // Three failed tries, then the schedule again: the gaps after the failures are the
    // backoff (10 s, 20 s, 40 s, each from the failure recorded a second after its try),
    // not the 5 s of the schedule.
    assert!(triggered.len() >= 5, "{triggered:?}");
    let gaps: Vec<u64> = triggered.windows(2).map(|w| (w[1] - w[0]) / 1000).collect();
    assert!(
        gaps[0] >= 10 && gaps[1] >= 20 && gaps[2] >= 40,
        "gaps {gaps:?}"
    );
    assert!(gaps[0] < gaps[1] && gaps[1] < gaps[2], "gaps {gaps:?}");
    assert!(
        gaps[3] <= 5,
        "after a success the schedule rules again: gaps {gaps:?}"
    );
    let r = w.record(&key);
    assert_eq!(r.snapshots.savepoint_failure, None, "{r:#?}");
    assert_eq!(r.last_error, None);
    assert!(r
        .savepoints
        .iter()
        .any(|s| s.trigger == SnapshotTrigger::Periodic));
    assert_eq!(r.derive_lifecycle(), LifecycleState::Stable);
}

#[tokio::test]
async fn engine_checkpoint_nonce_records_the_checkpoint_it_took() {
    let key = deployment("counter");
    let (w, agent) = World::replay(&[vec![file(
        "apps/counter.yaml",
        app_yaml("counter", &JobOpts::default()),
    )]])
    .await;
    w.push(&[(
        "apps/counter.yaml",
        Some(app_yaml(
            "counter",
            &JobOpts {
                checkpoint_nonce: Some(3),
                ..JobOpts::default()
            },
        )),
    )]);
    // The trigger, then only the checkpoint completes (no periodic one of Flink's after it).
    w.round(&agent).await;
    w.fake.settle();
    w.settle(&agent).await;
    let r = w.record(&key);
    assert_eq!(r.nonces.get(CHECKPOINT_NONCE), Some(&3));
    let cp = r.snapshots.last_checkpoint.clone().expect("recorded");
    assert_eq!(cp.trigger, SnapshotTrigger::Manual);
    assert_eq!(cp.nonce, Some(3));
    let location = cp.location.expect("with its location");
    let stored = w
        .fake
        .snapshot(&location)
        .expect("a checkpoint Flink knows");
    assert!(!stored.is_savepoint);
}
