//! Observation: asks the runtime and Flink's REST API what `decide` needs, and keeps every
//! unanswered question [`Evidence::Unknown`] (see [`crate::flink::lifecycle::observe`]).

use crate::apply::runtime::{ClusterPresence, Runtime, RuntimeError, SnapshotStorage};
use crate::config;
use crate::flink::lifecycle::decide::checkpointing_on;
use crate::flink::lifecycle::drift::LiveVertex;
use crate::flink::lifecycle::observe::HealthSample;
use crate::flink::lifecycle::observe::{
    ClusterState, Evidence, Observed, ObservedJob, TriggerResult,
};
use crate::flink::lifecycle::parallelism_overrides;
use crate::flink::lifecycle::record::{InFlight, Record, StopMode};
use crate::flink::rest::{
    CheckpointStatus, FlinkApi, FlinkApiFactory, JobId, JobOverview, JobStatus, RestError,
    SavepointStatus, TriggerId,
};
use crate::flink::spec::{Kind, ResourceKey, Spec, UpgradeMode};

/// The cluster a resource's job runs on: its own, or its session cluster.
pub fn cluster_of(key: &ResourceKey, spec: Option<&Spec>) -> ResourceKey {
    match spec {
        Some(Spec::SessionJob(s)) => ResourceKey::new(
            key.namespace.clone(),
            Kind::FlinkDeployment,
            s.deployment_name.clone().unwrap_or_default(),
        ),
        _ => ResourceKey::new(
            key.namespace.clone(),
            Kind::FlinkDeployment,
            key.name.clone(),
        ),
    }
}

/// Why no client for a cluster's REST API could be made: both are transient for the loop.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Rest(#[from] RestError),
}

/// A client for a cluster's REST API, when the runtime knows where it is.
pub async fn connect<R: Runtime, F: FlinkApiFactory>(
    runtime: &R,
    flink: &F,
    cluster: &ResourceKey,
) -> Result<Option<F::Api>, ConnectError> {
    match runtime.rest_url(cluster).await? {
        None => Ok(None),
        Some(url) => Ok(Some(flink.connect(&url)?)),
    }
}

/// Whether a REST error says the thing asked about is not there (as opposed to no answer).
fn says_absent(e: &RestError) -> bool {
    matches!(e, RestError::JobNotFound { .. })
        || matches!(e, RestError::HttpStatus { status: 404, .. })
}

/// The checkpoint folder a spec's jobs write to, with the runtime's default under it.
fn checkpoints_dir<R: Runtime>(
    runtime: &R,
    cluster: &ResourceKey,
    spec: Option<&Spec>,
) -> Option<String> {
    spec.and_then(|s| config::lookup(s.flink_configuration(), &config::CHECKPOINTS_DIR))
        .map(|(_, v)| v.to_string())
        .or_else(|| {
            runtime
                .default_configuration(cluster)
                .get(config::CHECKPOINTS_DIR.key)
                .cloned()
        })
}

/// Gathers what `decide` needs about one resource.
pub async fn observe<R: Runtime, F: FlinkApiFactory>(
    runtime: &R,
    flink: &F,
    storage: &dyn SnapshotStorage,
    key: &ResourceKey,
    record: Option<&Record>,
    desired: Option<&Spec>,
    drift: bool,
) -> Observed {
    let spec = record
        .and_then(|r| r.last_reconciled_spec.clone())
        .or_else(|| desired.cloned());
    let cluster_key = cluster_of(key, spec.as_ref());
    let mut observed = Observed::default();

    // The cluster: the runtime says whether it exists, its REST API whether it is ready.
    let mut api: Option<F::Api> = None;
    // TaskManagers registered and expected, for drift.
    let mut task_managers_seen: Option<(u32, u32)> = None;
    match runtime.observe_cluster(&cluster_key).await {
        Err(e) => observed.cluster = Evidence::unknown(e.to_string()),
        Ok(ClusterPresence::Missing) => observed.cluster = Evidence::Absent,
        Ok(ClusterPresence::Exited { reason }) => {
            observed.cluster = Evidence::present(ClusterState::Exited { reason })
        }
        Ok(ClusterPresence::Running {
            task_managers,
            generation,
        }) => {
            if cluster_key == *key {
                observed.deployed_generation = generation;
            }
            match connect(runtime, flink, &cluster_key).await {
                Err(e) => observed.cluster = Evidence::unknown(e.to_string()),
                Ok(None) => {
                    observed.cluster = Evidence::unknown("the runtime has no REST address for it")
                }
                Ok(Some(client)) => match client.cluster_overview().await {
                    Ok(o) if o.taskmanagers >= task_managers => {
                        task_managers_seen = Some((o.taskmanagers, task_managers));
                        observed.cluster = Evidence::present(ClusterState::Ready);
                        api = Some(client);
                    }
                    Ok(o) => {
                        task_managers_seen = Some((o.taskmanagers, task_managers));
                        observed.cluster = Evidence::present(ClusterState::Starting);
                        api = Some(client);
                    }
                    Err(e) => observed.cluster = Evidence::unknown(e.to_string()),
                },
            }
        }
    }
    let cluster_gone = matches!(
        observed.cluster,
        Evidence::Absent
            | Evidence::Present {
                value: ClusterState::Exited { .. }
            }
    );

    // Drift is looked for at rest only: nothing in flight, the reconciled spec is the one Git
    // wants (else `decide` goes to the spec change and would not read it).
    let at_rest = drift
        && record.is_some_and(|r| {
            r.in_flight.is_none()
                && !r.deleted
                && r.last_reconciled_hash.is_some()
                && desired.map(Spec::hash) == r.last_reconciled_hash
        });
    let mut listed: Option<Evidence<Vec<JobOverview>>> = None;
    let mut vertices: Option<Evidence<Vec<LiveVertex>>> = None;

    let Some(rec) = record else {
        observed.job = Evidence::Absent;
        observed.trigger = Evidence::Absent;
        observed.latest_checkpoint = Evidence::Absent;
        return observed;
    };
    let job_id = match &rec.in_flight {
        Some(
            InFlight::Starting { job_id, .. }
            | InFlight::Stopping { job_id, .. }
            | InFlight::Rescaling { job_id, .. }
            | InFlight::Snapshotting { job_id, .. },
        ) if !job_id.is_empty() => Some(job_id.clone()),
        _ => rec.job_id.clone(),
    };
    let jid = job_id.as_deref().and_then(|j| JobId::parse(j).ok());

    // The job.
    observed.job = match (&jid, &api) {
        (None, _) => {
            if let (true, Some(client)) = (at_rest, &api) {
                listed = Some(match client.jobs_overview().await {
                    Ok(jobs) => Evidence::present(jobs),
                    Err(e) => Evidence::unknown(e.to_string()),
                });
            }
            Evidence::Absent
        }
        (Some(_), None) if cluster_gone => Evidence::Absent,
        (Some(_), None) => Evidence::unknown(
            observed
                .cluster
                .error()
                .unwrap_or("the cluster's REST API is not reachable")
                .to_string(),
        ),
        (Some(jid), Some(client)) => match client.jobs_overview().await {
            Err(e) => Evidence::unknown(e.to_string()),
            Ok(jobs) => match listed
                .insert(Evidence::present(jobs))
                .get()
                .and_then(|jobs| jobs.iter().find(|j| &j.jid == jid))
            {
                None => Evidence::Absent,
                Some(j) => {
                    let mut job = ObservedJob {
                        job_id: jid.to_string(),
                        state: j.state,
                        all_tasks_running: j.all_tasks_running(),
                        failure: None,
                        vertex_parallelism: None,
                        running_since_ms: (j.all_tasks_running() && j.last_modification > 0)
                            .then_some(j.last_modification as u64),
                    };
                    if j.state == JobStatus::Failed {
                        job.failure = client
                            .job_exceptions(jid)
                            .await
                            .ok()
                            .flatten()
                            .map(|e| e.user_exception().message.clone());
                    }
                    let rescaling = matches!(rec.in_flight, Some(InFlight::Rescaling { .. }));
                    let wants_overrides = spec
                        .as_ref()
                        .is_some_and(|s| !parallelism_overrides(s).is_empty());
                    if (rescaling || wants_overrides || at_rest) && j.state == JobStatus::Running {
                        match client.job_details(jid).await {
                            Ok(d) => {
                                job.vertex_parallelism = Some(
                                    d.vertices
                                        .iter()
                                        .map(|v| (v.id.clone(), v.parallelism))
                                        .collect(),
                                );
                                vertices = Some(Evidence::present(
                                    d.vertices
                                        .iter()
                                        .map(|v| LiveVertex {
                                            id: v.id.clone(),
                                            name: v.name.clone(),
                                            parallelism: v.parallelism,
                                        })
                                        .collect(),
                                ));
                            }
                            Err(e) => vertices = Some(Evidence::unknown(e.to_string())),
                        }
                    }
                    Evidence::present(job)
                }
            },
        },
    };

    // A new deployment proving stable: has its job completed a checkpoint of its own?
    observed.checkpoints_completed = Evidence::unknown("not asked: the decision does not need it");
    let starting = matches!(rec.in_flight, Some(InFlight::Starting { .. }));
    let proving = match (&observed.job, &jid, &api) {
        (Evidence::Present { value }, Some(jid), Some(client))
            if starting && value.is_running() =>
        {
            let running_spec = match (&rec.rollback, &rec.last_stable_spec) {
                (Some(_), Some(stable)) => Some(stable),
                _ => spec.as_ref(),
            };
            running_spec
                .filter(|s| checkpointing_on(s))
                .map(|_| (jid, client))
        }
        _ => None,
    };
    if let Some((jid, client)) = proving {
        observed.checkpoints_completed = match client.checkpoints(jid).await {
            Ok(stats) => Evidence::present(stats.counts.completed),
            Err(e) if says_absent(&e) => Evidence::present(0),
            Err(e) => Evidence::unknown(e.to_string()),
        };
    }
    if at_rest {
        observed.live = Some(
            super::drift::gather(
                api.as_ref(),
                rec,
                cluster_key == *key,
                listed,
                vertices,
                task_managers_seen,
            )
            .await,
        );
    }

    // The pending trigger.
    let pending = match &rec.in_flight {
        Some(InFlight::Stopping {
            trigger_id: Some(t),
            ..
        }) => Some((TriggerId::new(t.clone()), false)),
        Some(InFlight::Snapshotting {
            trigger_id,
            checkpoint,
            ..
        }) => Some((TriggerId::new(trigger_id.clone()), *checkpoint)),
        _ => None,
    };
    observed.trigger = match (&pending, &jid, &api) {
        (None, _, _) | (_, None, _) => Evidence::Absent,
        (Some(_), Some(_), None) if cluster_gone => Evidence::Absent,
        (Some(_), Some(_), None) => Evidence::unknown(
            observed
                .cluster
                .error()
                .unwrap_or("the cluster's REST API is not reachable")
                .to_string(),
        ),
        (Some((trigger, true)), Some(jid), Some(client)) => {
            match client.checkpoint_status(jid, trigger).await {
                Ok(CheckpointStatus::InProgress) => Evidence::present(TriggerResult::InProgress),
                Ok(CheckpointStatus::Completed { checkpoint_id }) => {
                    // Where it was written, while Flink's checkpoint list still names it.
                    let location = client.checkpoints(jid).await.ok().and_then(|stats| {
                        stats
                            .completed(checkpoint_id)
                            .and_then(|c| c.external_path.clone())
                    });
                    Evidence::present(TriggerResult::Completed { location })
                }
                Ok(CheckpointStatus::Failed { cause }) => {
                    Evidence::present(TriggerResult::Failed {
                        cause: cause.summary().to_string(),
                    })
                }
                Err(e) if says_absent(&e) => Evidence::Absent,
                Err(e) => Evidence::unknown(e.to_string()),
            }
        }
        (Some((trigger, false)), Some(jid), Some(client)) => {
            match client.savepoint_status(jid, trigger).await {
                Ok(SavepointStatus::InProgress) => Evidence::present(TriggerResult::InProgress),
                Ok(SavepointStatus::Completed { location }) => {
                    Evidence::present(TriggerResult::Completed {
                        location: Some(location),
                    })
                }
                Ok(SavepointStatus::Failed { cause }) if cause.is_job_not_found() => {
                    Evidence::Absent
                }
                Ok(SavepointStatus::Failed { cause }) => Evidence::present(TriggerResult::Failed {
                    cause: cause.summary().to_string(),
                }),
                Err(e) if says_absent(&e) => Evidence::Absent,
                Err(e) => Evidence::unknown(e.to_string()),
            }
        }
    };

    // The newest checkpoint matters only once the job is down and nothing better is at
    // hand (a savepoint the stop took); asking for it on every poll would slow the
    // in-flight loop for nothing.
    let job_down = match &observed.job {
        Evidence::Present { value } => value.is_terminal(),
        Evidence::Absent => true,
        Evidence::Unknown { .. } => false,
    };
    let savepoint_known = matches!(
        observed.trigger,
        Evidence::Present {
            value: TriggerResult::InProgress | TriggerResult::Completed { location: Some(_) }
        }
    );
    let cancel_only = matches!(
        rec.in_flight,
        Some(InFlight::Stopping {
            mode: StopMode::Cancel,
            ..
        })
    );
    // Either spec may need it: the reconciled one to stop, the desired one to start.
    let stateful = [spec.as_ref(), desired]
        .into_iter()
        .flatten()
        .any(|s| s.upgrade_mode().is_some_and(UpgradeMode::is_stateful));
    if !(job_down && !savepoint_known && !cancel_only && stateful) {
        observed.latest_checkpoint = Evidence::unknown("not asked: the decision does not need it");
        return observed;
    }
    let Some(job_id) = job_id else {
        observed.latest_checkpoint = Evidence::Absent;
        return observed;
    };
    if let (Some(client), Some(jid)) = (&api, &jid) {
        match client.checkpoints(jid).await {
            Ok(stats) => {
                if let Some(p) = stats.latest_completed_path() {
                    observed.latest_checkpoint = Evidence::present(p.to_string());
                    return observed;
                }
            }
            Err(e) if says_absent(&e) => {}
            Err(e) => {
                tracing::debug!(resource = %key, error = %e, "checkpoint list over REST failed; reading storage");
            }
        }
    }
    observed.latest_checkpoint = match checkpoints_dir(runtime, &cluster_key, spec.as_ref()) {
        None => Evidence::Absent,
        Some(dir) => match storage.latest_checkpoint(&dir, &job_id) {
            Ok(Some(p)) => Evidence::present(p),
            Ok(None) => Evidence::Absent,
            Err(e) => Evidence::unknown(e.to_string()),
        },
    };
    observed
}

/// One reading of the recorded job's health counters for the health check
/// (`numRestarts`, completed checkpoints), taken at `now_ms`. `None` when the job is not
/// running or Flink did not answer: a missing reading is never a bad one.
pub async fn health_sample<R: Runtime, F: FlinkApiFactory>(
    runtime: &R,
    flink: &F,
    key: &ResourceKey,
    record: &Record,
    observed: &Observed,
    now_ms: u64,
) -> Option<HealthSample> {
    let job = observed.job.get().filter(|j| !j.is_terminal())?;
    let jid = JobId::parse(&job.job_id).ok()?;
    let cluster = cluster_of(key, record.last_reconciled_spec.as_ref());
    let client = connect(runtime, flink, &cluster).await.ok()??;
    let metrics = client.job_metrics(&jid, &["numRestarts"]).await.ok()?;
    let restarts = metrics.get("numRestarts")?.trim().parse::<f64>().ok()? as u64;
    let completed = client.checkpoints(&jid).await.ok()?.counts.completed;
    Some(HealthSample {
        time_ms: now_ms,
        restarts,
        completed_checkpoints: completed,
    })
}
