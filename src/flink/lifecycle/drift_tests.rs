//! Table tests of drift detection and the drift rules in `decide`.

use super::*;
use crate::flink::lifecycle::decide::{decide, Desired};
use crate::flink::lifecycle::observe::{ClusterState, ObservedJob};
use crate::flink::spec::{DeploymentSpec, JobSpec, ResourceKey, UpgradeMode};

fn app(f: impl FnOnce(&mut DeploymentSpec)) -> Spec {
    let mut d = DeploymentSpec {
        flink_version: Some(FlinkVersion::V1_20),
        job: Some(JobSpec {
            parallelism: Some(2),
            upgrade_mode: UpgradeMode::LastState,
            ..Default::default()
        }),
        ..Default::default()
    };
    d.flink_configuration
        .insert("execution.checkpointing.interval".into(), "10s".into());
    d.flink_configuration.insert(
        "kubernetes.operator.periodic.savepoint.interval".into(),
        "1h".into(),
    );
    f(&mut d);
    Spec::Deployment(d)
}

fn session_cluster() -> Spec {
    Spec::Deployment(DeploymentSpec {
        flink_version: Some(FlinkVersion::V1_20),
        ..Default::default()
    })
}

fn record(spec: &Spec) -> Record {
    let kind = spec.kind();
    let mut r = Record::new(&ResourceKey::new("default", kind, "a"));
    r.set_reconciled(spec, Some("rev1"));
    r.mark_reconciled_stable();
    if !matches!(spec, Spec::Deployment(d) if d.is_session_cluster()) {
        r.job_id = Some("j1".into());
        r.job_state = Some(JobStatus::Running);
    }
    r
}

fn job(state: JobStatus) -> Evidence<super::super::observe::ObservedJob> {
    Evidence::present(ObservedJob {
        job_id: "j1".into(),
        state,
        all_tasks_running: state == JobStatus::Running,
        failure: None,
        vertex_parallelism: None,
        running_since_ms: Some(0),
    })
}

fn observed(job: Evidence<ObservedJob>) -> Observed {
    Observed {
        cluster: Evidence::present(ClusterState::Ready),
        job,
        trigger: Evidence::Absent,
        latest_checkpoint: Evidence::present("file:/cp/chk-7".to_string()),
        deployed_generation: None,
        checkpoints_completed: Evidence::present(1),
        health: vec![],
        live: None,
    }
}

fn vertices(p: &[(&str, u32)]) -> Evidence<Vec<LiveVertex>> {
    Evidence::present(
        p.iter()
            .map(|(id, p)| LiveVertex {
                id: id.to_string(),
                name: format!("op-{id}"),
                parallelism: *p,
            })
            .collect(),
    )
}

fn live(f: impl FnOnce(&mut Live)) -> Live {
    let mut cfg = BTreeMap::new();
    cfg.insert("execution.checkpointing.interval".into(), "10 s".into());
    cfg.insert("rest.port".into(), "31000".into());
    let mut l = Live {
        vertices: vertices(&[("v1", 2), ("v2", 2)]),
        jobmanager_config: Evidence::present(cfg),
        task_managers: Some((2, 2)),
        jobs: Evidence::present(vec![LiveJob {
            job_id: "j1".into(),
            name: "a".into(),
            state: JobStatus::Running,
        }]),
    };
    f(&mut l);
    l
}

/// Each item as `kind path subject expected->found`.
fn show(items: &[DriftItem]) -> Vec<String> {
    items
        .iter()
        .map(|i| {
            format!(
                "{:?} {} {} {}->{}",
                i.kind,
                i.path,
                i.subject.as_deref().unwrap_or("-"),
                i.expected,
                i.found
            )
        })
        .collect()
}

/// Rows: (why, spec, observed job, live facts, ignore rules, expected items).
#[test]
fn detection_table() {
    let base = app(|_| {});
    let overrides = app(|d| {
        d.flink_configuration
            .insert(config::PARALLELISM_OVERRIDES.key.into(), "v1:3".into());
    });
    let empty: &[&str] = &[];
    type Row<'a> = (
        &'a str,
        Spec,
        Evidence<ObservedJob>,
        Live,
        &'a [&'a str],
        Vec<&'a str>,
    );
    let rows: Vec<Row> = vec![
        ("nothing drifts", base.clone(), job(JobStatus::Running), live(|_| {}), empty, vec![]),
        (
            "cancelled through the REST API",
            base.clone(),
            job(JobStatus::Canceled),
            live(|l| l.vertices = Evidence::Absent),
            empty,
            vec!["JobState job.state j1 RUNNING->CANCELED"],
        ),
        (
            "not listed while the cluster answers",
            base.clone(),
            Evidence::Absent,
            live(|l| l.jobs = Evidence::present(vec![])),
            empty,
            vec!["JobState job.state j1 RUNNING->not listed by the cluster"],
        ),
        (
            "another job in its place",
            base.clone(),
            Evidence::Absent,
            live(|l| {
                l.jobs = Evidence::present(vec![LiveJob {
                    job_id: "j9".into(),
                    name: "other".into(),
                    state: JobStatus::Running,
                }])
            }),
            empty,
            vec!["JobId job.state other j1->j9"],
        ),
        (
            "a failed job is failure handling, not drift",
            base.clone(),
            job(JobStatus::Failed),
            live(|_| {}),
            empty,
            vec![],
        ),
        (
            "rescaled through the REST API: every vertex off job.parallelism",
            base.clone(),
            job(JobStatus::Running),
            live(|l| l.vertices = vertices(&[("v1", 1), ("v2", 1)])),
            empty,
            vec![
                "Parallelism job.parallelism v1 (op-v1) 2->1",
                "Parallelism job.parallelism v2 (op-v2) 2->1",
            ],
        ),
        (
            "a vertex the code fixes at 1 is no drift while another runs at job.parallelism",
            base.clone(),
            job(JobStatus::Running),
            live(|l| l.vertices = vertices(&[("v1", 1), ("v2", 2)])),
            empty,
            vec![],
        ),
        (
            "an override not met (adaptive scheduler without slots)",
            overrides.clone(),
            job(JobStatus::Running),
            live(|_| {}),
            empty,
            vec!["Parallelism flinkConfiguration.pipeline.jobvertex-parallelism-overrides v1 (op-v1) 3->2"],
        ),
        (
            "the override under an ignore rule (the autoscaler owns it)",
            overrides.clone(),
            job(JobStatus::Running),
            live(|_| {}),
            &["flinkConfiguration.pipeline.jobvertex-parallelism-overrides"],
            vec![],
        ),
        (
            "job.parallelism under an ignore rule, written with spec.",
            base.clone(),
            job(JobStatus::Running),
            live(|l| l.vertices = vertices(&[("v1", 1), ("v2", 1)])),
            &["spec.job.parallelism"],
            vec![],
        ),
        (
            "configuration changed on the JobManager",
            base.clone(),
            job(JobStatus::Running),
            live(|l| {
                l.jobmanager_config = Evidence::present(BTreeMap::from([(
                    "execution.checkpointing.interval".to_string(),
                    "1 min".to_string(),
                )]))
            }),
            empty,
            vec!["Configuration flinkConfiguration.execution.checkpointing.interval execution.checkpointing.interval 10s->1 min"],
        ),
        (
            "a key missing on the JobManager",
            base.clone(),
            job(JobStatus::Running),
            live(|l| l.jobmanager_config = Evidence::present(BTreeMap::new())),
            empty,
            vec!["Configuration flinkConfiguration.execution.checkpointing.interval execution.checkpointing.interval 10s->(not set)"],
        ),
        (
            "every configuration key ignored",
            base.clone(),
            job(JobStatus::Running),
            live(|l| l.jobmanager_config = Evidence::present(BTreeMap::new())),
            &["flinkConfiguration"],
            vec![],
        ),
        (
            "a TaskManager is gone",
            base.clone(),
            job(JobStatus::Running),
            live(|l| l.task_managers = Some((1, 2))),
            empty,
            vec!["TaskManagers taskManager.replicas - 2->1"],
        ),
        (
            "unknown facts are not drift",
            base.clone(),
            job(JobStatus::Running),
            live(|l| {
                l.vertices = Evidence::unknown("timeout");
                l.jobmanager_config = Evidence::unknown("timeout");
            }),
            empty,
            vec![],
        ),
    ];
    for (why, spec, job, live, ignore, want) in rows {
        let rec = record(&spec);
        let settings = DriftSettings {
            ignore: ignore.iter().map(|r| normalize_rule(r)).collect(),
            ..DriftSettings::default()
        };
        let got = detect(
            &spec,
            &rec,
            &observed(job),
            Some(&live),
            &settings,
            &BTreeSet::new(),
        );
        assert_eq!(show(&got.items), want, "{why}");
        assert!(got.checked, "{why}");
    }
}

#[test]
fn unmanaged_jobs_on_a_session_cluster() {
    let spec = session_cluster();
    let rec = record(&spec);
    let live = live(|l| {
        l.jobs = Evidence::present(vec![
            LiveJob {
                job_id: "owned".into(),
                name: "clicks".into(),
                state: JobStatus::Running,
            },
            LiveJob {
                job_id: "byhand".into(),
                name: "adhoc".into(),
                state: JobStatus::Running,
            },
            LiveJob {
                job_id: "old".into(),
                name: "adhoc-v0".into(),
                state: JobStatus::Canceled,
            },
        ])
    });
    let owned = BTreeSet::from(["owned".to_string()]);
    let got = detect(
        &spec,
        &rec,
        &observed(Evidence::Absent),
        Some(&live),
        &DriftSettings::default(),
        &owned,
    );
    assert_eq!(
        show(&got.items),
        vec!["UnmanagedJob unmanagedJobs byhand no job->adhoc (RUNNING)"]
    );
}

#[test]
fn values_are_compared_as_flink_reads_them() {
    for (a, b, same) in [
        ("10s", "10 s", true),
        ("10s", "10000", true),
        ("1g", "1024m", true),
        ("true", "TRUE", true),
        ("\"x\"", "x", true),
        ("secret", "******", true),
        ("10s", "11s", false),
        ("a", "b", false),
    ] {
        assert_eq!(same_value(a, b), same, "{a} vs {b}");
    }
    // Operator keys, runtime keys and IGNORE-class keys never reach the JobManager.
    let spec = app(|d| {
        d.flink_configuration
            .insert("rest.port".into(), "8081".into());
        d.flink_configuration
            .insert(config::PARALLELISM_OVERRIDES.key.into(), "v1:3".into());
        d.flink_configuration
            .insert("job.autoscaler.enabled".into(), "true".into());
    });
    assert_eq!(
        expected_configuration(&spec).keys().collect::<Vec<_>>(),
        vec!["execution.checkpointing.interval"]
    );
}

#[test]
fn settings_from_annotations() {
    let ann = BTreeMap::from([
        (config::ANNOTATION_DRIFT.to_string(), " Heal ".to_string()),
        (
            config::ANNOTATION_DRIFT_IGNORE.to_string(),
            "flinkConfiguration.pipeline.jobvertex-parallelism-overrides, spec.job.parallelism"
                .to_string(),
        ),
        (
            config::ANNOTATION_DRIFT_UNMANAGED_JOBS.to_string(),
            "cancel".to_string(),
        ),
    ]);
    let (s, warning) =
        DriftSettings::of_manifest(DriftPolicy::Report, &ann, &["flinkConfiguration.a".into()]);
    assert_eq!(warning, None);
    assert_eq!(s.policy, DriftPolicy::Heal);
    assert!(s.cancel_unmanaged);
    assert!(s.ignores("flinkConfiguration.a"));
    assert!(s.ignores("job.parallelism"));
    assert!(
        !s.ignores("flinkConfiguration.ab"),
        "a rule covers whole segments"
    );
    let bad = BTreeMap::from([(config::ANNOTATION_DRIFT.to_string(), "fix".to_string())]);
    let (s, warning) = DriftSettings::of_manifest(DriftPolicy::Ignore, &bad, &[]);
    assert_eq!(s.policy, DriftPolicy::Ignore);
    assert!(warning.is_some_and(|w| w.contains("allowed: report, heal, ignore")));
}

fn ctx(policy: DriftPolicy) -> Context {
    Context {
        prune: true,
        now_ms: 1_000_000_000_000,
        fresh_job_id: "newjob".into(),
        fresh_trigger_id: "newtrig".into(),
        session_jobs: vec![],
        cluster_redeploy_pending: false,
        stability_window_ms: 0,
        drift: DriftContext {
            settings: DriftSettings {
                policy,
                ..DriftSettings::default()
            },
            owned_jobs: BTreeSet::new(),
        },
    }
}

/// A step as one short line.
fn step(s: &Step) -> String {
    match s {
        Step::Nothing => "nothing".into(),
        Step::MarkStable => "mark-stable".into(),
        Step::RecordDrift { items, policy, .. } => {
            format!("record {policy} {}", items.len())
        }
        Step::Deploy(d) => format!("deploy restore={}", d.restore.as_deref().unwrap_or("-")),
        Step::Stop(s) => format!("stop {:?} {:?}", s.purpose, s.mode),
        Step::Rescale { parallelism, .. } => format!("rescale {parallelism:?}"),
        Step::CancelUnmanaged { job_ids } => format!("cancel {}", job_ids.join(",")),
        other => format!("{other:?}"),
    }
}

/// Runs decide until it settles on a step that is not a record write of drift, applying
/// the drift records on the way (as the executor does).
fn run(spec: &Spec, rec: &Record, obs: &Observed, ctx: &Context) -> Vec<String> {
    let mut rec = rec.clone();
    let mut steps = Vec::new();
    for _ in 0..4 {
        let desired = Desired::Valid {
            spec,
            hash: spec.hash(),
            revision: "rev2",
        };
        let s = decide(&desired, Some(&rec), obs, ctx);
        steps.push(step(&s));
        match &s {
            Step::RecordDrift { .. } => {
                rec = crate::flink::lifecycle::transition::after(
                    &rec,
                    &s,
                    &crate::flink::lifecycle::transition::Outcome::Done,
                    obs,
                    "2026-01-01T00:00:00Z",
                );
                let d = rec.drift.as_ref();
                if let Some(d) = d {
                    assert_eq!(d.revision, "rev2");
                    assert_eq!(d.since, "2026-01-01T00:00:00Z");
                }
            }
            _ => break,
        }
    }
    steps
}

/// Rows: (why, policy, spec, observed job, live facts, steps).
#[test]
fn policies_in_decide() {
    let base = app(|_| {});
    let adaptive = app(|d| {
        d.flink_configuration
            .insert("jobmanager.scheduler".into(), "adaptive".into());
    });
    let stateless = app(|d| {
        if let Some(j) = d.job.as_mut() {
            j.upgrade_mode = UpgradeMode::Stateless;
        }
    });
    let rescaled = |l: &mut Live| {
        l.vertices = vertices(&[("v1", 1), ("v2", 1)]);
        if let Evidence::Present { value } = &mut l.jobmanager_config {
            value.insert("jobmanager.scheduler".into(), "adaptive".into());
        }
    };
    type Row<'a> = (
        &'a str,
        DriftPolicy,
        Spec,
        Evidence<ObservedJob>,
        Live,
        Vec<&'a str>,
    );
    let rows: Vec<Row> = vec![
        (
            "report: recorded, nothing restarts",
            DriftPolicy::Report,
            base.clone(),
            job(JobStatus::Canceled),
            live(|_| {}),
            vec!["record report 1", "nothing"],
        ),
        (
            "ignore: not recorded, nothing restarts",
            DriftPolicy::Ignore,
            base.clone(),
            job(JobStatus::Canceled),
            live(|_| {}),
            vec!["nothing"],
        ),
        (
            "ignore: a job Flink lost is not started again either",
            DriftPolicy::Ignore,
            base.clone(),
            Evidence::Absent,
            live(|l| l.jobs = Evidence::present(vec![])),
            vec!["nothing"],
        ),
        (
            "heal: a cancelled job starts from its newest checkpoint",
            DriftPolicy::Heal,
            base.clone(),
            job(JobStatus::Canceled),
            live(|_| {}),
            vec!["record heal 1", "deploy restore=file:/cp/chk-7"],
        ),
        (
            "heal: a stateless job starts empty",
            DriftPolicy::Heal,
            stateless,
            job(JobStatus::Canceled),
            live(|_| {}),
            vec!["record heal 1", "deploy restore=-"],
        ),
        (
            "heal: rescaled back in place under the adaptive scheduler",
            DriftPolicy::Heal,
            adaptive.clone(),
            job(JobStatus::Running),
            live(rescaled),
            vec!["record heal 2", "rescale {\"v1\": 2, \"v2\": 2}"],
        ),
        (
            "heal: rescaled under the default scheduler: an upgrade with the upgrade mode",
            DriftPolicy::Heal,
            base.clone(),
            job(JobStatus::Running),
            live(rescaled),
            vec!["record heal 2", "stop Upgrade CancelKeepCheckpoint"],
        ),
        (
            "report: rescaled, recorded, the job keeps running as it is",
            DriftPolicy::Report,
            adaptive,
            job(JobStatus::Running),
            live(rescaled),
            vec!["record report 2", "nothing"],
        ),
        (
            "heal: a changed configuration redeploys with the upgrade mode",
            DriftPolicy::Heal,
            base.clone(),
            job(JobStatus::Running),
            live(|l| l.jobmanager_config = Evidence::present(BTreeMap::new())),
            vec!["record heal 1", "stop Upgrade CancelKeepCheckpoint"],
        ),
        (
            "heal: another job in place of ours is reported, not cancelled",
            DriftPolicy::Heal,
            base.clone(),
            Evidence::Absent,
            live(|l| {
                l.jobs = Evidence::present(vec![LiveJob {
                    job_id: "j9".into(),
                    name: "other".into(),
                    state: JobStatus::Running,
                }])
            }),
            vec!["record heal 1", "nothing"],
        ),
    ];
    for (why, policy, spec, j, l, want) in rows {
        let rec = record(&spec);
        let mut obs = observed(j);
        obs.live = Some(l);
        assert_eq!(run(&spec, &rec, &obs, &ctx(policy)), want, "{why}");
    }
}

#[test]
fn unmanaged_jobs_are_cancelled_only_when_the_manifest_says_so() {
    let spec = session_cluster();
    let rec = record(&spec);
    let mut obs = observed(Evidence::Absent);
    obs.live = Some(live(|l| {
        l.jobs = Evidence::present(vec![LiveJob {
            job_id: "byhand".into(),
            name: "adhoc".into(),
            state: JobStatus::Running,
        }])
    }));
    let heal = ctx(DriftPolicy::Heal);
    assert_eq!(
        run(&spec, &rec, &obs, &heal),
        vec!["record heal 1", "nothing"]
    );
    let mut cancel = heal.clone();
    cancel.drift.settings.cancel_unmanaged = true;
    assert_eq!(
        run(&spec, &rec, &obs, &cancel),
        vec!["record heal 1", "cancel byhand"]
    );
}

#[test]
fn a_drift_that_cannot_be_checked_stays_recorded_and_a_gone_one_is_cleared() {
    let spec = app(|_| {});
    let mut rec = record(&spec);
    rec.drift = Some(Drift {
        since: "t0".into(),
        revision: "rev1".into(),
        policy: DriftPolicy::Report,
        items: vec![DriftItem {
            kind: DriftKind::Configuration,
            path: "flinkConfiguration.execution.checkpointing.interval".into(),
            subject: Some("execution.checkpointing.interval".into()),
            expected: "10s".into(),
            found: "1 min".into(),
        }],
    });
    let mut obs = observed(job(JobStatus::Running));
    obs.live = Some(live(|l| l.jobmanager_config = Evidence::unknown("timeout")));
    let c = ctx(DriftPolicy::Report);
    let desired = Desired::Valid {
        spec: &spec,
        hash: spec.hash(),
        revision: "rev2",
    };
    assert_eq!(step(&decide(&desired, Some(&rec), &obs, &c)), "nothing");
    obs.live = Some(live(|_| {}));
    let s = decide(&desired, Some(&rec), &obs, &c);
    assert_eq!(step(&s), "record report 0");
    let after = crate::flink::lifecycle::transition::after(
        &rec,
        &s,
        &crate::flink::lifecycle::transition::Outcome::Done,
        &obs,
        "t1",
    );
    assert_eq!(after.drift, None);
}
