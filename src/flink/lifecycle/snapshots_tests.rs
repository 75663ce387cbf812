//! Compiled only under #[cfg(test)], from snapshots.rs. Table tests of the due rule, the
//! retry backoff, the history rule and the trigger results.

use super::*;
use crate::flink::spec::{DeploymentSpec, JobSpec, Kind, ResourceKey};

const T0: &str = "2026-03-02T10:00:00Z";

fn ms(s: &str) -> u64 {
    ms_of(s).expect("test time")
}

fn spec(config: &[(&str, &str)]) -> Spec {
    let mut d = DeploymentSpec {
        job: Some(JobSpec::default()),
        ..Default::default()
    };
    for (k, v) in config {
        d.flink_configuration.insert(k.to_string(), v.to_string());
    }
    Spec::Deployment(d)
}

fn record() -> Record {
    let mut r = Record::new(&ResourceKey::new("ns", Kind::FlinkDeployment, "a"));
    r.since = T0.to_string();
    r
}

#[test]
fn schedules_read_as_the_operator_reads_them() {
    assert_eq!(Schedule::parse(""), Ok(None));
    assert_eq!(Schedule::parse("0"), Ok(None), "a zero interval is off");
    assert_eq!(
        Schedule::parse("6h"),
        Ok(Some(Schedule::Interval(Duration::from_secs(6 * 3600))))
    );
    assert!(matches!(
        Schedule::parse("*/5 * * * * ?"),
        Ok(Some(Schedule::Cron(_)))
    ));
    let e = Schedule::parse("0 0 * * * *").expect_err("both day fields");
    assert!(
        e.0.contains("exactly one of day-of-month") && e.0.contains("allowed:"),
        "{e}"
    );
    let e = Schedule::parse("hourly").expect_err("a word");
    assert!(e.0.contains("not a duration"), "{e}");
    assert_eq!(
        Schedule::parse("6h").expect("ok").expect("on").to_string(),
        "every 6h"
    );
}

/// Rows: (why, schedule, last periodic trigger, failure (attempts, at), now, due?).
/// Source: SnapshotUtils.shouldTriggerIntervalBasedSnapshot / shouldTriggerCronBasedSnapshot
/// (strictly before now), plus this agent's backoff after a failed try.
#[test]
fn the_due_rule() {
    type Row = (
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<(u32, &'static str)>,
        &'static str,
        bool,
    );
    let rows: &[Row] = &[
        (
            "interval not yet",
            "1h",
            Some(T0),
            None,
            "2026-03-02T10:59:59Z",
            false,
        ),
        (
            "interval exactly",
            "1h",
            Some(T0),
            None,
            "2026-03-02T11:00:00Z",
            false,
        ),
        (
            "interval past",
            "1h",
            Some(T0),
            None,
            "2026-03-02T11:00:01Z",
            true,
        ),
        (
            "never triggered: from the record's since",
            "1h",
            None,
            None,
            "2026-03-02T11:00:01Z",
            true,
        ),
        (
            "never triggered, early",
            "1h",
            None,
            None,
            "2026-03-02T10:30:00Z",
            false,
        ),
        (
            "cron next time not reached",
            "*/5 * * * * ?",
            Some("2026-03-02T10:00:01Z"),
            None,
            "2026-03-02T10:00:05Z",
            false,
        ),
        (
            "cron next time passed",
            "*/5 * * * * ?",
            Some("2026-03-02T10:00:01Z"),
            None,
            "2026-03-02T10:00:05.001Z",
            true,
        ),
        (
            "hourly cron",
            "0 0 * * * ?",
            Some("2026-03-02T10:00:00Z"),
            None,
            "2026-03-02T10:59:00Z",
            false,
        ),
        (
            "hourly cron passed",
            "0 0 * * * ?",
            Some("2026-03-02T10:00:00Z"),
            None,
            "2026-03-02T11:00:01Z",
            true,
        ),
        // After a failure the backoff rules, not the schedule: 10 s, 20 s, 40 s ...
        (
            "failed once, backoff not over",
            "*/5 * * * * ?",
            Some(T0),
            Some((1, "2026-03-02T10:00:02Z")),
            "2026-03-02T10:00:11Z",
            false,
        ),
        (
            "failed once, backoff over",
            "*/5 * * * * ?",
            Some(T0),
            Some((1, "2026-03-02T10:00:02Z")),
            "2026-03-02T10:00:12Z",
            true,
        ),
        (
            "failed three times: 40 s",
            "*/5 * * * * ?",
            Some(T0),
            Some((3, "2026-03-02T10:00:02Z")),
            "2026-03-02T10:00:41Z",
            false,
        ),
        (
            "failed three times, over",
            "*/5 * * * * ?",
            Some(T0),
            Some((3, "2026-03-02T10:00:02Z")),
            "2026-03-02T10:00:42Z",
            true,
        ),
        (
            "a long schedule is tried again after the backoff",
            "6h",
            Some(T0),
            Some((1, "2026-03-02T10:00:00Z")),
            "2026-03-02T10:00:10Z",
            true,
        ),
    ];
    for (why, sched, last, failure, now, want) in rows {
        let s = Schedule::parse(sched).expect("valid").expect("on");
        let mut r = record();
        r.snapshots.last_periodic_savepoint = last.map(str::to_string);
        r.snapshots.savepoint_failure = failure.map(|(attempts, at)| TriggerFailure {
            trigger: SnapshotTrigger::Periodic,
            nonce: None,
            attempts,
            time: at.to_string(),
            cause: "x".into(),
        });
        assert_eq!(periodic_due(&s, &r, false, ms(now)), *want, "{why}");
        // The checkpoint schedule is separate: it runs from the record's since.
        assert_eq!(
            periodic_due(&s, &r, true, ms(now)),
            s.due(ms(T0), ms(now)),
            "{why}: checkpoint"
        );
    }
    assert_eq!(retry_delay(1), Duration::from_secs(10));
    assert_eq!(retry_delay(2), Duration::from_secs(20));
    assert_eq!(retry_delay(30), config::DEFAULT_SNAPSHOT_RETRY_MAX);
}

#[test]
fn a_periodic_trigger_needs_a_job_and_a_schedule() {
    let job = ObservedJob {
        job_id: "j1".into(),
        state: crate::flink::rest::JobStatus::Running,
        all_tasks_running: true,
        failure: None,
        vertex_parallelism: None,
        running_since_ms: Some(0),
    };
    let later = ms("2026-03-02T12:00:00Z");
    let none = spec(&[]);
    assert_eq!(periodic_trigger(&none, &record(), &job, later, "t"), None);
    let sp = spec(&[("kubernetes.operator.periodic.savepoint.interval", "1h")]);
    assert!(matches!(
        periodic_trigger(&sp, &record(), &job, later, "t"),
        Some(Step::TriggerSnapshot {
            periodic: true,
            checkpoint: false,
            ..
        })
    ));
    let cp = spec(&[(
        "kubernetes.operator.periodic.checkpoint.interval",
        "0 0 * * * ?",
    )]);
    assert!(matches!(
        periodic_trigger(&cp, &record(), &job, later, "t"),
        Some(Step::TriggerSnapshot {
            periodic: true,
            checkpoint: true,
            ..
        })
    ));
    let bad = spec(&[(
        "kubernetes.operator.periodic.savepoint.interval",
        "0 0 * * * *",
    )]);
    assert_eq!(
        periodic_trigger(&bad, &record(), &job, later, "t"),
        None,
        "an expression the operator refuses never triggers (validation reports it)"
    );
}

fn sp(n: u32, trigger: SnapshotTrigger, time: &str) -> Savepoint {
    Savepoint {
        location: format!("file:/sp/{n}"),
        time: time.to_string(),
        trigger,
        revision: "r".into(),
        for_revision: None,
        job_id: "j".into(),
    }
}

/// Rows: (why, history (n, trigger, time), restore path, max count, max age, disposals
/// already in flight, want disposed, want forgotten). Source: SnapshotObserver
/// (getFlinkStateSnapshotsToCleanUp, cleanupSavepointHistoryLegacy).
#[test]
fn the_disposal_rule() {
    use SnapshotTrigger::*;
    const OLD: &str = "2026-03-01T00:00:00Z";
    const NEW: &str = "2026-03-02T09:59:00Z";
    type Row = (
        &'static str,
        Vec<(u32, SnapshotTrigger, &'static str)>,
        Option<u32>,
        usize,
        u64,
        Vec<u32>,
        Vec<u32>,
        Vec<u32>,
    );
    let day = 24 * 3600;
    let rows: Vec<Row> = vec![
        (
            "within bounds",
            vec![(1, Periodic, NEW), (2, Periodic, NEW)],
            None,
            2,
            day,
            vec![],
            vec![],
            vec![],
        ),
        (
            "count: oldest first",
            vec![
                (1, Periodic, NEW),
                (2, Periodic, NEW),
                (3, Periodic, NEW),
                (4, Periodic, NEW),
            ],
            None,
            2,
            day,
            vec![],
            vec![1, 2],
            vec![],
        ),
        (
            "the restore point stays",
            vec![(1, Upgrade, NEW), (2, Periodic, NEW), (3, Periodic, NEW)],
            Some(1),
            1,
            day,
            vec![],
            vec![2],
            vec![],
        ),
        (
            "the newest stays even when too old",
            vec![(1, Periodic, OLD), (2, Periodic, OLD)],
            None,
            10,
            day,
            vec![],
            vec![1],
            vec![],
        ),
        (
            "age",
            vec![(1, Periodic, OLD), (2, Periodic, NEW), (3, Periodic, NEW)],
            None,
            10,
            day,
            vec![],
            vec![1],
            vec![],
        ),
        (
            "manual and final savepoints are the user's",
            vec![
                (1, Manual, OLD),
                (2, Suspend, OLD),
                (3, Delete, OLD),
                (4, Periodic, NEW),
            ],
            None,
            1,
            day,
            vec![],
            vec![],
            vec![],
        ),
        (
            "checkpoints are forgotten, never disposed",
            vec![
                (1, Checkpoint, NEW),
                (2, Checkpoint, NEW),
                (3, Periodic, NEW),
            ],
            None,
            1,
            day,
            vec![],
            vec![],
            vec![1],
        ),
        (
            "disposals in flight count as gone",
            vec![(1, Periodic, NEW), (2, Periodic, NEW), (3, Periodic, NEW)],
            None,
            2,
            day,
            vec![1],
            vec![],
            vec![],
        ),
        (
            "max count below 1 reads as 1",
            vec![(1, Periodic, NEW), (2, Periodic, NEW)],
            None,
            0,
            day,
            vec![],
            vec![1],
            vec![],
        ),
    ];
    for (why, history, restore, count, age, in_flight, disposed, forgotten) in rows {
        let mut r = record();
        r.savepoints = history
            .iter()
            .map(|(n, t, time)| sp(*n, *t, time))
            .collect();
        r.restore_path = restore.map(|n| format!("file:/sp/{n}"));
        r.snapshots.disposals = in_flight
            .iter()
            .map(|n| Disposal {
                location: format!("file:/sp/{n}"),
                since: T0.into(),
                trigger_id: None,
                attempts: 0,
                failed_at: None,
                error: None,
            })
            .collect();
        let policy = HistoryPolicy::of(&spec(&[
            (
                "kubernetes.operator.savepoint.history.max.count",
                &count.to_string(),
            ),
            (
                "kubernetes.operator.savepoint.history.max.age",
                &format!("{age}s"),
            ),
        ]));
        let got = cleanup(&r, &policy, ms(T0));
        let names = |v: &[u32]| {
            v.iter()
                .map(|n| format!("file:/sp/{n}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(got.dispose, names(&disposed), "{why}: disposed");
        assert_eq!(got.forget, names(&forgotten), "{why}: forgotten");
    }
    // Cleanup disabled: nothing is disposed; what leaves the history is only forgotten.
    let mut r = record();
    r.savepoints = vec![sp(1, Periodic, NEW), sp(2, Periodic, NEW)];
    let off = HistoryPolicy::of(&spec(&[
        ("kubernetes.operator.savepoint.history.max.count", "1"),
        ("kubernetes.operator.savepoint.cleanup.enabled", "false"),
    ]));
    assert_eq!(
        cleanup(&r, &off, ms(T0)),
        Cleanup {
            dispose: vec![],
            forget: vec!["file:/sp/1".into()]
        }
    );
}

#[test]
fn a_disposal_is_an_intent_until_flink_says_the_files_are_gone() {
    let mut r = record();
    r.savepoints = vec![
        sp(1, SnapshotTrigger::Periodic, T0),
        sp(2, SnapshotTrigger::Periodic, T0),
    ];
    let c = Cleanup {
        dispose: vec!["file:/sp/1".into()],
        forget: vec![],
    };
    let intent = start_cleanup(&r, &c, T0).expect("changes");
    assert_eq!(
        intent.savepoints.len(),
        2,
        "still in the history until done"
    );
    assert_eq!(intent.snapshots.disposals.len(), 1);
    let d = &intent.snapshots.disposals[0];
    assert!(disposal_ready(d, ms(T0)));
    let failed = disposal_failed(&intent, "file:/sp/1", "no answer", T0);
    let d = &failed.snapshots.disposals[0];
    assert_eq!(d.attempts, 1);
    assert!(!disposal_ready(d, ms(T0) + 9_000), "backoff");
    assert!(disposal_ready(d, ms(T0) + 10_000));
    let sent = disposal_sent(&failed, "file:/sp/1", "tid");
    assert!(
        disposal_ready(&sent.snapshots.disposals[0], ms(T0)),
        "polled"
    );
    let done = disposal_done(&sent, "file:/sp/1");
    assert!(done.snapshots.disposals.is_empty());
    assert_eq!(done.savepoints.len(), 1);
    assert_eq!(start_cleanup(&done, &Cleanup::default(), T0), None);
    // Written to the status branch and read back.
    let back = Record::from_yaml(&sent.to_yaml()).expect("round trip");
    assert_eq!(back.snapshots, sent.snapshots);
}

fn snapshotting(periodic: bool, checkpoint: bool) -> Record {
    let mut r = record();
    r.in_flight = Some(InFlight::Snapshotting {
        job_id: "j1".into(),
        trigger_id: "t".into(),
        nonce: if periodic { 0 } else { 7 },
        checkpoint,
        periodic,
        since: "2026-03-02T10:00:05Z".into(),
    });
    r
}

#[test]
fn trigger_results_are_recorded_with_flinks_cause_and_retried() {
    let now = "2026-03-02T10:00:06Z";
    // A periodic savepoint completes: in the history, the schedule runs from its trigger.
    let mut r = snapshotting(true, false);
    finish(&mut r, Some(&"file:/sp/9".to_string()), None, now);
    assert_eq!(r.in_flight, None);
    assert_eq!(
        r.savepoints.last().map(|s| s.trigger),
        Some(SnapshotTrigger::Periodic)
    );
    assert_eq!(
        r.snapshots.last_periodic_savepoint.as_deref(),
        Some("2026-03-02T10:00:05Z")
    );
    assert!(r.nonces.is_empty(), "no nonce for a periodic one");
    // It fails: reported with the cause, counted, the schedule waits for the backoff.
    let mut r = snapshotting(true, false);
    finish(
        &mut r,
        None,
        Some(&"java.io.IOException: Permission denied".to_string()),
        now,
    );
    let e = r.last_error.clone().expect("reported");
    assert_eq!(e.reason, reason::SAVEPOINT_FAILED);
    assert!(
        e.message.contains("Permission denied") && e.message.contains("try 1"),
        "{}",
        e.message
    );
    assert!(!may_trigger(&r, false, ms(now) + 9_000));
    assert!(may_trigger(&r, false, ms(now) + 10_000));
    assert!(
        may_trigger(&r, true, ms(now)),
        "checkpoints are not held back"
    );
    // Again: try 2; then a success clears the failure and the error.
    r.in_flight = snapshotting(true, false).in_flight;
    finish(&mut r, None, Some(&"boom".to_string()), now);
    assert_eq!(
        r.snapshots.savepoint_failure.as_ref().map(|f| f.attempts),
        Some(2)
    );
    r.in_flight = snapshotting(true, false).in_flight;
    finish(&mut r, Some(&"file:/sp/10".to_string()), None, now);
    assert_eq!(r.snapshots.savepoint_failure, None);
    assert_eq!(r.last_error, None);
    // A manual checkpoint completes: recorded with its location and nonce.
    let mut r = snapshotting(false, true);
    finish(&mut r, Some(&"file:/cp/chk-4".to_string()), None, now);
    let cp = r.snapshots.last_checkpoint.clone().expect("recorded");
    assert_eq!(cp.location.as_deref(), Some("file:/cp/chk-4"));
    assert_eq!(cp.nonce, Some(7));
    assert_eq!(
        r.nonces.get(super::super::decide::CHECKPOINT_NONCE),
        Some(&7)
    );
    assert!(r.savepoints.is_empty(), "a checkpoint is no savepoint");
    // A manual savepoint that keeps failing is given up after the last try.
    let mut r = snapshotting(false, false);
    for attempt in 1..=config::DEFAULT_MANUAL_SNAPSHOT_ATTEMPTS {
        r.in_flight = snapshotting(false, false).in_flight;
        finish(&mut r, None, Some(&"denied".to_string()), now);
        let given_up = r.nonces.get(super::super::decide::SAVEPOINT_NONCE) == Some(&7);
        assert_eq!(
            given_up,
            attempt == config::DEFAULT_MANUAL_SNAPSHOT_ATTEMPTS,
            "try {attempt}"
        );
    }
    // A trigger Flink refused outright is the same failure.
    let mut r = snapshotting(true, true);
    refused(
        &mut r,
        true,
        true,
        0,
        "400 Bad Request: checkpointing disabled",
        now,
    );
    assert_eq!(r.in_flight, None);
    assert_eq!(
        r.last_error.map(|e| e.reason),
        Some(reason::CHECKPOINT_FAILED.to_string())
    );
    assert!(r.snapshots.last_periodic_checkpoint.is_some());
}
