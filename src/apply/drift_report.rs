//! `flink-gitops diff`'s I/O: for every resource Git wants (and every one the agent recorded
//! or the runtime runs), the same observation the agent makes ([`executor::observe`]) and
//! the pure comparison ([`crate::flink::lifecycle::drift::detect`]), gathered into a
//! [`DriftReport`]. Nothing is changed anywhere.

use std::collections::{BTreeMap, BTreeSet};

use super::executor;
use super::runtime::{ClusterPresence, Runtime, SnapshotStorage};
use crate::diff::drift_report::{DriftReport, Orphan, ResourceReport, ResourceStatus};
use crate::flink::lifecycle::drift::{
    detect, owned_jobs, DriftItem, DriftKind, DriftPolicy, DriftSettings, PATH_JOB_STATE,
};
use crate::flink::lifecycle::observe::{ClusterState, Evidence};
use crate::flink::lifecycle::record::Record;
use crate::flink::rest::{FlinkApiFactory, JobStatus};
use crate::flink::spec::{Kind, ManifestSet, ResourceKey};

/// Compares the live state with Git. `set`: the manifests at the revision compared (validated;
/// its `drift_ignore` holds the repository's rules); `records`: the status branch;
/// `clusters`: the clusters the runtime knows it started; `default`: the policy of a
/// manifest that names none (`--drift`).
#[allow(clippy::too_many_arguments)]
pub async fn report<R: Runtime, F: FlinkApiFactory>(
    runtime: &R,
    flink: &F,
    storage: &dyn SnapshotStorage,
    revision: String,
    set: &ManifestSet,
    records: &BTreeMap<ResourceKey, Record>,
    clusters: &[ResourceKey],
    default: DriftPolicy,
) -> DriftReport {
    let invalid = set.invalid_keys();
    let mut resources = Vec::new();
    for m in &set.manifests {
        let (settings, warning) =
            DriftSettings::of_manifest(default, &m.annotations, &set.drift_ignore);
        let rec = records.get(&m.key).filter(|r| !r.deleted);
        let mut r = ResourceReport {
            kind: m.key.kind,
            namespace: m.key.namespace.clone(),
            name: m.key.name.clone(),
            file: Some(m.file.clone()),
            status: ResourceStatus::InSync,
            policy: settings.policy,
            job_id: rec.and_then(|r| r.job_id.clone()),
            items: Vec::new(),
            ignored: Vec::new(),
            note: warning,
        };
        let pending = |r: &mut ResourceReport, why: String| {
            r.status = ResourceStatus::Pending;
            r.note = Some(why);
        };
        match rec {
            _ if invalid.contains(&m.key.to_string()) => pending(
                &mut r,
                "the manifest is invalid; the agent keeps the last good deployment".into(),
            ),
            _ if settings.policy == DriftPolicy::Ignore => r.status = ResourceStatus::Ignored,
            None => pending(&mut r, "not deployed yet".into()),
            Some(rec) if rec.last_reconciled_spec.is_none() => {
                pending(&mut r, "not deployed yet".into())
            }
            // Rolled back: Git's spec is not the one that runs, on purpose; say why.
            Some(rec) if rec.rollback.is_some() => pending(
                &mut r,
                rec.rollback_summary()
                    .unwrap_or_else(|| "rolled back to the last stable spec".into()),
            ),
            Some(rec) if rec.last_reconciled_hash != Some(m.spec.hash()) => pending(
                &mut r,
                format!(
                    "Git changed it; the agent runs the spec of {}",
                    rec.last_reconciled_revision
                        .as_deref()
                        .map(|s| s.get(..7).unwrap_or(s))
                        .unwrap_or("an earlier revision")
                ),
            ),
            Some(rec) if rec.in_flight.is_some() => {
                pending(&mut r, "the agent has a step in flight".into())
            }
            Some(rec) if rec.reconciled_suspended() => r.note = Some("suspended".into()),
            Some(rec) => {
                let observed = executor::observe(
                    runtime,
                    flink,
                    storage,
                    &m.key,
                    Some(rec),
                    Some(&m.spec),
                    true,
                )
                .await;
                match &observed.cluster {
                    Evidence::Unknown { error } => {
                        r.status = ResourceStatus::Unknown;
                        r.note = Some(error.clone());
                    }
                    Evidence::Absent
                    | Evidence::Present {
                        value: ClusterState::Exited { .. },
                    } => pending(
                        &mut r,
                        "its cluster is gone; the agent deploys it again from its newest state"
                            .into(),
                    ),
                    Evidence::Present { .. } => {
                        let owned = owned_jobs(&m.key, records);
                        let d = detect(
                            &m.spec,
                            rec,
                            &observed,
                            observed.live.as_ref(),
                            &settings,
                            &owned,
                        );
                        r.items = d.items;
                        r.ignored = d.ignored;
                        // A failed job is the agent's failure handling, but Git wants it
                        // running: say so.
                        if let Some(j) = observed.job.get().filter(|j| j.state == JobStatus::Failed)
                        {
                            r.items.push(DriftItem {
                                kind: DriftKind::JobState,
                                path: PATH_JOB_STATE.into(),
                                subject: Some(j.job_id.clone()),
                                expected: "RUNNING".into(),
                                found: "FAILED".into(),
                            });
                        }
                        if !r.items.is_empty() {
                            r.status = ResourceStatus::Drifted;
                        } else if !d.checked && !d.unknown.is_empty() {
                            r.status = ResourceStatus::Unknown;
                        }
                        if !d.unknown.is_empty() {
                            let why: Vec<String> = d
                                .unknown
                                .iter()
                                .filter(|(_, why)| why.as_str() != "not asked")
                                .map(|(k, why)| format!("{} not checked: {why}", k.as_str()))
                                .collect();
                            if !why.is_empty() {
                                r.note = Some(why.join("; "));
                            }
                        }
                    }
                }
            }
        }
        resources.push(r);
    }

    // What runs while Git no longer wants it.
    let wanted: BTreeSet<&ResourceKey> = set.manifests.iter().map(|m| &m.key).collect();
    let mut orphans = Vec::new();
    let mut seen = BTreeSet::new();
    for (key, rec) in records {
        if rec.deleted || wanted.contains(key) {
            continue;
        }
        seen.insert(key.clone());
        orphans.push(Orphan {
            kind: key.kind,
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            reason: if rec.removed_from_git {
                "removed from Git; left running (--no-prune)".into()
            } else {
                "removed from Git; the agent has not removed it yet".into()
            },
        });
    }
    for key in clusters {
        if wanted.contains(key) || seen.contains(key) || key.kind != Kind::FlinkDeployment {
            continue;
        }
        if let Ok(ClusterPresence::Running { .. }) = runtime.observe_cluster(key).await {
            orphans.push(Orphan {
                kind: key.kind,
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                reason: format!(
                    "a cluster the agent started ({} runtime); no manifest wants it",
                    runtime.name()
                ),
            });
        }
    }
    DriftReport::new(revision, resources, orphans)
}
