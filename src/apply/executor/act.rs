//! Carrying out a step's I/O: one call (or a short idempotent sequence) against the
//! runtime or Flink's REST API, reported as an [`Outcome`]. No decisions here: the step
//! says what to do, the outcome's class says how the record changes
//! ([`crate::flink::lifecycle::transition::after`]).

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::error::{rest_class, runtime_class, ErrorClass};
use super::observe::{cluster_of, connect};
use crate::apply::runtime::{ApplicationJob, ClusterRequest, Runtime, RuntimeError};
use crate::config;
use crate::flink::lifecycle::decide::{DeployStep, Step, StopStep};
use crate::flink::lifecycle::record::{reason, Record, StopMode, StopPurpose};
use crate::flink::lifecycle::transition::Outcome;
use crate::flink::rest::{
    CheckpointType, ClaimMode, FlinkApi, FlinkApiFactory, JarId, JarRunRequest, JobId, RestError,
    TriggerId,
};
use crate::flink::spec::{ResourceKey, SessionJobSpec, Spec};

/// Jar ids uploaded per (session cluster REST URL, jar file).
pub type JarCache = Mutex<BTreeMap<(String, String), String>>;

fn from_rest(e: &RestError, stalled_reason: &'static str) -> Outcome {
    let stalled_reason = match e {
        RestError::SnapshotNotFound { .. } | RestError::StateNotMappable { .. } => {
            reason::RESTORE_FAILED
        }
        _ => stalled_reason,
    };
    match rest_class(e) {
        ErrorClass::Stalled => Outcome::Stalled {
            reason: stalled_reason,
            message: e.to_string(),
        },
        _ => Outcome::Transient {
            message: e.to_string(),
        },
    }
}

fn from_runtime(e: &RuntimeError, stalled_reason: &'static str) -> Outcome {
    match runtime_class(e) {
        ErrorClass::Stalled => Outcome::Stalled {
            reason: stalled_reason,
            message: e.to_string(),
        },
        _ => Outcome::Transient {
            message: e.to_string(),
        },
    }
}

fn no_client(cluster: &ResourceKey, error: Option<String>) -> Outcome {
    Outcome::Transient {
        message: match error {
            Some(e) => format!("cluster {cluster}: {e}"),
            None => format!("cluster {cluster} has no REST address"),
        },
    }
}

/// Test hook: `FLINK_GITOPS_FAILPOINT=<name>` kills the agent with SIGKILL at that point, the
/// way a crash or an evicted pod would, so tests can show that nothing is lost.
fn failpoint(name: &str) {
    if std::env::var(config::ENV_FAILPOINT).as_deref() == Ok(name) {
        tracing::error!(failpoint = name, "failpoint reached: killing the agent");
        // SAFETY: raising a signal on our own process has no memory-safety preconditions.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}

/// Carries out the I/O of `step` for resource `key`, whose record (written ahead of the
/// step) gives the deployment attempt, the reconciled spec and its revision.
pub async fn act<R: Runtime, F: FlinkApiFactory>(
    runtime: &R,
    flink: &F,
    jars: &JarCache,
    key: &ResourceKey,
    written: &Record,
    step: &Step,
) -> Outcome {
    let generation = written.generation;
    let reconciled = written.last_reconciled_spec.as_ref();
    let revision = written.last_reconciled_revision.as_deref();
    match step {
        Step::Deploy(d) => deploy(runtime, flink, jars, key, generation, revision, d).await,
        Step::Stop(s) => stop(runtime, flink, key, reconciled, s).await,
        Step::Rescale {
            job_id,
            parallelism,
            spec,
            ..
        } => {
            let cluster = cluster_of(key, Some(spec));
            let client = match connect(runtime, flink, &cluster).await {
                Ok(Some(c)) => c,
                Ok(None) => return no_client(&cluster, None),
                Err(e) => return no_client(&cluster, Some(e.to_string())),
            };
            let Ok(jid) = JobId::parse(job_id) else {
                return Outcome::Stalled {
                    reason: reason::RESCALE_FAILED,
                    message: format!("recorded job id {job_id:?} is not a Flink job id"),
                };
            };
            match client.set_parallelism(&jid, parallelism).await {
                Ok(()) => Outcome::Done,
                Err(e) => from_rest(&e, reason::RESCALE_FAILED),
            }
        }
        Step::TriggerSnapshot {
            job_id,
            trigger_id,
            checkpoint,
            format,
            ..
        } => {
            let cluster = cluster_of(key, reconciled);
            let client = match connect(runtime, flink, &cluster).await {
                Ok(Some(c)) => c,
                Ok(None) => return no_client(&cluster, None),
                Err(e) => return no_client(&cluster, Some(e.to_string())),
            };
            let Ok(jid) = JobId::parse(job_id) else {
                return Outcome::Stalled {
                    reason: reason::SAVEPOINT_FAILED,
                    message: format!("recorded job id {job_id:?} is not a Flink job id"),
                };
            };
            let trigger = TriggerId::new(trigger_id.clone());
            let result = if *checkpoint {
                client
                    .trigger_checkpoint(&jid, CheckpointType::Full, Some(&trigger))
                    .await
            } else {
                client
                    .trigger_savepoint(&jid, None, *format, Some(&trigger))
                    .await
            };
            match result {
                Ok(_) => Outcome::Done,
                Err(e) => from_rest(&e, reason::SAVEPOINT_FAILED),
            }
        }
        Step::CancelUnmanaged { job_ids } => {
            let client = match connect(runtime, flink, key).await {
                Ok(Some(c)) => c,
                Ok(None) => return no_client(key, None),
                Err(e) => return no_client(key, Some(e.to_string())),
            };
            for job_id in job_ids {
                let Ok(jid) = JobId::parse(job_id) else {
                    continue;
                };
                match client.cancel(&jid).await {
                    Ok(()) | Err(RestError::JobNotFound { .. }) => {
                        tracing::warn!(resource = %key, job = %jid, "cancelled a job no manifest owns (drift policy heal, drift-unmanaged-jobs: cancel)");
                    }
                    // Cancel is idempotent: tried again on the next look.
                    Err(e) => {
                        return Outcome::Transient {
                            message: e.to_string(),
                        }
                    }
                }
            }
            Outcome::Done
        }
        Step::Settle {
            delete_cluster: true,
            purpose,
            ..
        } => match runtime.delete_cluster(key).await {
            // HA metadata goes with a removal, and with a suspend that ended the job (a
            // savepoint or a cancel); a last-state suspend resumes from it. The operator's
            // SuspendMode#deleteHaMeta.
            Ok(())
                if *purpose == StopPurpose::Delete
                    || (*purpose == StopPurpose::Suspend
                        && reconciled.and_then(Spec::upgrade_mode)
                            != Some(crate::flink::spec::UpgradeMode::LastState)) =>
            {
                match runtime.delete_ha_metadata(key).await {
                    Ok(()) => Outcome::Done,
                    Err(e) => from_runtime(&e, reason::DEPLOY_FAILED),
                }
            }
            Ok(()) => Outcome::Done,
            Err(e) => from_runtime(&e, reason::DEPLOY_FAILED),
        },
        _ => Outcome::Done,
    }
}

async fn deploy<R: Runtime, F: FlinkApiFactory>(
    runtime: &R,
    flink: &F,
    jars: &JarCache,
    key: &ResourceKey,
    generation: u64,
    revision: Option<&str>,
    d: &DeployStep,
) -> Outcome {
    match &d.spec {
        Spec::Deployment(spec) => {
            let job = match (&spec.job, &d.job_id) {
                (Some(j), Some(id)) => Some(ApplicationJob {
                    jar_uri: j.jar_uri.clone().unwrap_or_default(),
                    entry_class: j.entry_class.clone(),
                    args: j.args.clone(),
                    job_id: id.clone(),
                    parallelism: j.parallelism,
                    restore: d.restore.clone(),
                    allow_non_restored_state: j.allow_non_restored_state.unwrap_or(false),
                }),
                _ => None,
            };
            let request = ClusterRequest {
                key: key.clone(),
                spec: spec.clone(),
                job,
                generation,
                revision: d.revision.clone().or_else(|| revision.map(str::to_string)),
            };
            match runtime.deploy_cluster(request).await {
                Ok(()) => Outcome::Done,
                Err(e) => from_runtime(&e, reason::DEPLOY_FAILED),
            }
        }
        Spec::SessionJob(sj) => {
            let Some(job_id) = d.job_id.as_deref() else {
                return Outcome::Stalled {
                    reason: reason::DEPLOY_FAILED,
                    message: "a session job needs a job id".to_string(),
                };
            };
            submit_session_job(runtime, flink, jars, key, sj, job_id, d.restore.as_deref()).await
        }
    }
}

async fn submit_session_job<R: Runtime, F: FlinkApiFactory>(
    runtime: &R,
    flink: &F,
    jars: &JarCache,
    key: &ResourceKey,
    sj: &SessionJobSpec,
    job_id: &str,
    restore: Option<&str>,
) -> Outcome {
    let cluster = cluster_of(key, Some(&Spec::SessionJob(sj.clone())));
    let url = match runtime.rest_url(&cluster).await {
        Ok(Some(u)) => u,
        Ok(None) => return no_client(&cluster, None),
        Err(e) => return no_client(&cluster, Some(e.to_string())),
    };
    let client = match flink.connect(&url) {
        Ok(c) => c,
        Err(e) => return no_client(&cluster, Some(e.to_string())),
    };
    let job = sj.job.clone().unwrap_or_default();
    let jar = match runtime
        .fetch_jar(job.jar_uri.as_deref().unwrap_or_default())
        .await
    {
        Ok(p) => p,
        Err(e) => return from_runtime(&e, reason::DEPLOY_FAILED),
    };
    let Ok(jid) = JobId::parse(job_id) else {
        return Outcome::Stalled {
            reason: reason::DEPLOY_FAILED,
            message: format!("job id {job_id:?} is not a Flink job id"),
        };
    };
    let mut flink_configuration: BTreeMap<String, String> = sj
        .flink_configuration
        .iter()
        .filter(|(k, _)| !config::is_control_key(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    flink_configuration
        .entry("pipeline.name".to_string())
        .or_insert_with(|| key.name.clone());
    let request = JarRunRequest {
        entry_class: job.entry_class.clone(),
        program_args_list: job.args.clone(),
        parallelism: job.parallelism.and_then(|p| u32::try_from(p).ok()),
        job_id: Some(jid),
        savepoint_path: restore.map(str::to_string),
        allow_non_restored_state: job.allow_non_restored_state.unwrap_or(false),
        claim_mode: Some(ClaimMode::NoClaim),
        flink_configuration,
    };
    let cache_key = (url.clone(), jar.display().to_string());
    let cached = jars.lock().ok().and_then(|m| m.get(&cache_key).cloned());
    for attempt in 0..2 {
        let jar_id = match (&cached, attempt) {
            (Some(id), 0) => JarId::new(id.clone()),
            _ => match client.upload_jar(&jar).await {
                Ok(id) => {
                    if let Ok(mut m) = jars.lock() {
                        m.insert(cache_key.clone(), id.as_str().to_string());
                    }
                    id
                }
                Err(e) => return from_rest(&e, reason::DEPLOY_FAILED),
            },
        };
        match client.run_jar(&jar_id, &request).await {
            Ok(_) => return Outcome::Done,
            // Submitted before (the agent stopped after the submit): the job exists.
            Err(RestError::DuplicateJobId { .. }) => return Outcome::Done,
            Err(RestError::JarNotFound { .. }) if attempt == 0 && cached.is_some() => {
                if let Ok(mut m) = jars.lock() {
                    m.remove(&cache_key);
                }
                continue;
            }
            Err(e) => return from_rest(&e, reason::DEPLOY_FAILED),
        }
    }
    Outcome::Transient {
        message: "the jar was not found on the session cluster after a fresh upload".to_string(),
    }
}

async fn stop<R: Runtime, F: FlinkApiFactory>(
    runtime: &R,
    flink: &F,
    key: &ResourceKey,
    reconciled: Option<&Spec>,
    s: &StopStep,
) -> Outcome {
    let cluster = cluster_of(key, reconciled);
    let client = match connect(runtime, flink, &cluster).await {
        Ok(Some(c)) => c,
        Ok(None) => return no_client(&cluster, None),
        Err(e) => return no_client(&cluster, Some(e.to_string())),
    };
    let Ok(jid) = JobId::parse(&s.job_id) else {
        return Outcome::Stalled {
            reason: reason::UPGRADE_FAILED,
            message: format!("recorded job id {:?} is not a Flink job id", s.job_id),
        };
    };
    let result = match (s.mode, &s.trigger_id) {
        (StopMode::Savepoint, Some(t)) => client
            .stop_with_savepoint(
                &jid,
                None,
                s.drain,
                s.format,
                Some(&TriggerId::new(t.clone())),
            )
            .await
            .map(|_| ()),
        _ => client.cancel(&jid).await,
    };
    match result {
        // Already gone: the next observation takes it from there.
        Ok(()) | Err(RestError::JobNotFound { .. }) => {
            if s.mode == StopMode::Savepoint {
                failpoint("after-stop-with-savepoint");
            }
            Outcome::Done
        }
        Err(e) => from_rest(&e, reason::SAVEPOINT_FAILED),
    }
}
