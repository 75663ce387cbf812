//! The Flink configuration of a cluster, shared by every runtime.
//!
//! A cluster's `config.yaml` is built in layers, later ones winning: the agent's defaults,
//! the runtime's defaults ([`super::runtime::Runtime::default_configuration`] and what the
//! runtime adds), the manifest's `flinkConfiguration` (renamed keys written under the name
//! Flink 2.x reads, agent and operator keys left out), the process memory from the
//! `resource` sections, and what an application cluster must have. Each runtime then forces
//! what only it knows (addresses, ports, folders). This mirrors the order of the operator's
//! `FlinkConfigBuilder` (defaults, then the spec's configuration, then derived settings).

use std::collections::BTreeMap;

use super::runtime::ClusterRequest;
use crate::config;
use crate::flink::spec::{quantity, DeploymentSpec};

/// How a runtime wants the shared layers built.
#[derive(Clone)]
pub struct ConfigLayers<'a> {
    /// The runtime's defaults, applied over the agent's and under the manifest's.
    pub runtime_defaults: BTreeMap<String, String>,
    /// Manifest keys the runtime cannot honour and leaves out (besides agent and operator
    /// keys, which never reach Flink).
    pub skip_key: &'a dyn Fn(&str) -> bool,
    /// Process memory of a JobManager or TaskManager whose manifest names none.
    pub default_process_memory: &'a str,
}

/// The cluster's configuration before the runtime's forced settings: see the module docs.
/// Pure.
pub fn cluster_configuration(
    request: &ClusterRequest,
    layers: &ConfigLayers<'_>,
) -> BTreeMap<String, String> {
    let spec = &request.spec;
    let mut cfg: BTreeMap<String, String> = BTreeMap::new();
    let set = |cfg: &mut BTreeMap<String, String>, k: &str, v: String| {
        cfg.insert(k.to_string(), v);
    };
    // The agent's defaults (the operator's where it has one: retention, pipeline name).
    set(&mut cfg, "state.backend.type", "hashmap".into());
    set(
        &mut cfg,
        config::CHECKPOINT_RETENTION.key,
        "RETAIN_ON_CANCELLATION".into(),
    );
    set(&mut cfg, "cluster.registration.error-delay", "1 s".into());
    set(
        &mut cfg,
        "cluster.registration.refused-registration-delay",
        "1 s".into(),
    );
    set(
        &mut cfg,
        "rest.cache.execution-graph.timeout",
        "200 ms".into(),
    );
    set(
        &mut cfg,
        "rest.cache.checkpoint-statistics.timeout",
        "200 ms".into(),
    );
    set(&mut cfg, "pipeline.name", request.key.name.clone());
    for (k, v) in &layers.runtime_defaults {
        set(&mut cfg, k, v.clone());
    }
    // The manifest's own.
    for (k, v) in &spec.flink_configuration {
        if config::is_control_key(k) || (layers.skip_key)(k) {
            continue;
        }
        set(&mut cfg, config::canonical_key(k), v.clone());
    }
    // Memory from the resource sections, as the operator maps it.
    for (option, mem) in [
        (config::JM_PROCESS_MEMORY, jm_memory(spec)),
        (config::TM_PROCESS_MEMORY, tm_memory(spec)),
    ] {
        match mem.and_then(|m| quantity::parse_memory(&m)) {
            Some(bytes) => set(&mut cfg, option.key, format!("{}m", bytes >> 20)),
            None => {
                cfg.entry(option.key.to_string())
                    .or_insert_with(|| layers.default_process_memory.to_string());
            }
        }
    }
    // What an application cluster needs: the JobManager stays up when its job ends (the
    // agent replaces it, as the operator does), parallelism and unclaimed state.
    if let Some(job) = &request.job {
        cfg.insert(
            "execution.shutdown-on-application-finish".into(),
            "false".into(),
        );
        if let Some(p) = job.parallelism {
            cfg.insert(config::PARALLELISM_DEFAULT.key.into(), p.to_string());
        }
        if job.allow_non_restored_state {
            cfg.insert(config::IGNORE_UNCLAIMED_STATE.key.into(), "true".into());
        }
    }
    cfg
}

fn jm_memory(spec: &DeploymentSpec) -> Option<String> {
    spec.job_manager
        .as_ref()
        .and_then(|j| j.resource.as_ref())
        .and_then(|r| r.memory.clone())
}

fn tm_memory(spec: &DeploymentSpec) -> Option<String> {
    spec.task_manager
        .as_ref()
        .and_then(|t| t.resource.as_ref())
        .and_then(|r| r.memory.clone())
}

/// How many TaskManagers a cluster gets: `taskManager.replicas`, else the job's parallelism
/// over `taskmanager.numberOfTaskSlots` (rounded up), at least one.
pub fn task_manager_count(spec: &DeploymentSpec, cfg: &BTreeMap<String, String>) -> u32 {
    if let Some(r) = spec.task_manager.as_ref().and_then(|t| t.replicas) {
        return r.clamp(1, i64::from(u32::MAX)) as u32;
    }
    let slots = task_slots(cfg);
    let parallelism = spec
        .job
        .as_ref()
        .and_then(|j| j.parallelism)
        .unwrap_or(1)
        .max(1);
    ((parallelism + slots - 1) / slots).clamp(1, i64::from(u32::MAX)) as u32
}

/// `taskmanager.numberOfTaskSlots`, at least one (Flink's default is one).
pub fn task_slots(cfg: &BTreeMap<String, String>) -> i64 {
    config::lookup(cfg, &config::TASK_SLOTS)
        .and_then(|(_, v)| v.trim().parse::<i64>().ok())
        .unwrap_or(1)
        .max(1)
}
