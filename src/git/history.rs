//! A resource's history, read from the status branch's commits: each revision the agent
//! deployed, what became of it (its lifecycle states, the outcome), its jobs and the
//! savepoints taken while it ran. What `flink-gitops history` prints.
//!
//! The status branch has one commit per record write ([`super::status`]); this walks them
//! oldest first and reads the resource's file at each, skipping commits that did not
//! change it.

use std::collections::BTreeMap;
use std::path::Path;

use git2::{Repository, Sort};
use serde::Serialize;

use super::source::{GitError, GitSource};
use crate::flink::lifecycle::record::{LastError, LifecycleState, Record, Savepoint};
use crate::flink::spec::ResourceKey;

/// One revision of a resource as the agent deployed it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployedRevision {
    /// The Git revision (`lastReconciledRevision`).
    pub revision: String,
    /// RFC 3339 times of the first and last status commits that named it.
    pub first_seen: String,
    pub last_seen: String,
    /// Lifecycle states in the order they were recorded (repeats folded).
    pub states: Vec<LifecycleState>,
    /// The last settled state recorded while it was the reconciled revision (STABLE,
    /// ROLLED_BACK, FAILED, SUSPENDED, DELETED; a transitional one only if it never settled).
    pub outcome: LifecycleState,
    /// For a rollback: the revision that ran instead (`lastStableRevision`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_revision: Option<String>,
    /// Flink job ids it ran as.
    pub job_ids: Vec<String>,
    /// The savepoint or checkpoint it started from, when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<String>,
    /// Savepoints taken while its job ran, oldest first.
    pub savepoints: Vec<HistorySavepoint>,
    /// The last error recorded while it was the reconciled revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
}

/// A savepoint in a resource's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistorySavepoint {
    #[serde(flatten)]
    pub savepoint: Savepoint,
    /// Still in the newest record (not disposed of or forgotten since).
    pub kept: bool,
}

fn rfc3339(seconds: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The records of one resource over the status branch's commits, oldest first, with the
/// commit time of each (commits that did not change its file are skipped).
///
/// # Errors
/// [`GitError`] when the branch cannot be read; a file that does not parse is skipped.
pub fn records_over_time(
    repo: &Repository,
    status_ref: &str,
    key: &ResourceKey,
) -> Result<Vec<(i64, Record)>, GitError> {
    let Ok(reference) = repo.find_reference(status_ref) else {
        return Ok(Vec::new());
    };
    let tip = reference.peel_to_commit()?;
    let mut walk = repo.revwalk()?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME | Sort::REVERSE)?;
    walk.push(tip.id())?;
    let path = key.status_path();
    let mut out = Vec::new();
    let mut last_blob = None;
    for oid in walk {
        let commit = repo.find_commit(oid?)?;
        let Ok(entry) = commit.tree()?.get_path(Path::new(&path)) else {
            continue;
        };
        if last_blob == Some(entry.id()) {
            continue;
        }
        last_blob = Some(entry.id());
        let blob = repo.find_blob(entry.id())?;
        let Ok(text) = std::str::from_utf8(blob.content()) else {
            continue;
        };
        match Record::from_yaml(text) {
            Ok(r) => out.push((commit.time().seconds(), r)),
            Err(e) => {
                tracing::debug!(commit = %oid_short(&commit.id()), error = %e, "status file skipped")
            }
        }
    }
    Ok(out)
}

fn oid_short(oid: &git2::Oid) -> String {
    oid.to_string().chars().take(7).collect()
}

/// Folds a resource's records into one entry per deployed revision, in the order they were
/// first deployed. Pure.
pub fn deployed_revisions(records: &[(i64, Record)]) -> Vec<DeployedRevision> {
    let mut order: Vec<String> = Vec::new();
    let mut by_rev: BTreeMap<String, DeployedRevision> = BTreeMap::new();
    let mut savepoints: BTreeMap<String, Savepoint> = BTreeMap::new();
    let mut first_seen_sp: Vec<String> = Vec::new();
    for (time, r) in records {
        for s in &r.savepoints {
            if !savepoints.contains_key(&s.location) {
                first_seen_sp.push(s.location.clone());
            }
            savepoints.insert(s.location.clone(), s.clone());
        }
        let Some(rev) = r.last_reconciled_revision.clone() else {
            continue;
        };
        let state = r.derive_lifecycle();
        let e = by_rev.entry(rev.clone()).or_insert_with(|| {
            order.push(rev.clone());
            DeployedRevision {
                revision: rev.clone(),
                first_seen: rfc3339(*time),
                last_seen: rfc3339(*time),
                states: Vec::new(),
                outcome: state,
                running_revision: None,
                job_ids: Vec::new(),
                restored_from: None,
                savepoints: Vec::new(),
                last_error: None,
            }
        });
        e.last_seen = rfc3339(*time);
        if e.states.last() != Some(&state) {
            e.states.push(state);
        }
        // The outcome is the last settled state: the next change's first step (UPGRADING)
        // is often recorded while this revision is still the reconciled one.
        let transitional = matches!(
            state,
            LifecycleState::Upgrading | LifecycleState::Created | LifecycleState::Deployed
        );
        let settled = !matches!(
            e.outcome,
            LifecycleState::Upgrading | LifecycleState::Created | LifecycleState::Deployed
        );
        if !(transitional && settled) {
            e.outcome = state;
        }
        e.running_revision = r
            .rollback
            .is_some()
            .then(|| r.last_stable_revision.clone())
            .flatten();
        if let Some(j) = &r.job_id {
            // While rolled back the job runs the stable spec for this revision: listed
            // too (`runningRevision` says which spec it ran).
            if !e.job_ids.contains(j) {
                e.job_ids.push(j.clone());
            }
        }
        if r.last_error.is_some() {
            e.last_error = r.last_error.clone();
        }
    }
    let newest: Vec<&str> = records
        .last()
        .map(|(_, r)| r.savepoints.iter().map(|s| s.location.as_str()).collect())
        .unwrap_or_default();
    for location in &first_seen_sp {
        let Some(s) = savepoints.get(location) else {
            continue;
        };
        if let Some(e) = by_rev.get_mut(&s.revision) {
            e.savepoints.push(HistorySavepoint {
                savepoint: s.clone(),
                kept: newest.contains(&location.as_str()),
            });
        }
        if let Some(e) = s.for_revision.as_ref().and_then(|r| by_rev.get_mut(r)) {
            e.restored_from = Some(s.location.clone());
        }
    }
    order
        .into_iter()
        .filter_map(|r| by_rev.remove(&r))
        .collect()
}

/// The history of `key` on the status branch `branch` of `source` (fetched first).
///
/// # Errors
/// [`GitError`] when the repository or branch cannot be read.
pub fn history(
    source: &GitSource,
    branch: &str,
    key: &ResourceKey,
) -> Result<Vec<DeployedRevision>, GitError> {
    let refname = format!("refs/heads/{branch}");
    if source.is_remote() {
        source.fetch_refspecs(&[format!("+{refname}:{refname}")])?;
    }
    let repo = source.open()?;
    Ok(deployed_revisions(&records_over_time(
        &repo, &refname, key,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flink::lifecycle::record::SnapshotTrigger;
    use crate::flink::spec::Kind;

    fn rec(rev: &str, stable: bool, job: &str, sps: &[(&str, &str, Option<&str>)]) -> Record {
        let mut r = Record::new(&ResourceKey::new("ns", Kind::FlinkDeployment, "a"));
        r.last_reconciled_revision = Some(rev.into());
        r.last_reconciled_hash = Some(crate::flink::spec::SpecHash(rev.into()));
        r.last_reconciled_spec = Some(crate::flink::spec::Spec::Deployment(Default::default()));
        if stable {
            r.last_stable_hash = r.last_reconciled_hash.clone();
        }
        r.job_id = Some(job.into());
        r.savepoints = sps
            .iter()
            .map(|(loc, rev, for_rev)| Savepoint {
                location: loc.to_string(),
                time: String::new(),
                trigger: SnapshotTrigger::Upgrade,
                revision: rev.to_string(),
                for_revision: for_rev.map(str::to_string),
                job_id: job.into(),
            })
            .collect();
        r
    }

    #[test]
    fn one_entry_per_revision_with_its_outcome_and_savepoints() {
        let records = vec![
            (10, rec("r1", false, "j1", &[])),
            (11, rec("r1", true, "j1", &[])),
            (12, rec("r1", true, "j1", &[("sp1", "r1", None)])),
            (13, rec("r2", false, "j2", &[("sp1", "r1", Some("r2"))])),
            (14, rec("r2", true, "j2", &[("sp2", "r2", None)])),
        ];
        let h = deployed_revisions(&records);
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].revision, "r1");
        assert_eq!(
            h[0].states,
            vec![LifecycleState::Deployed, LifecycleState::Stable]
        );
        assert_eq!(h[0].savepoints.len(), 1);
        assert!(!h[0].savepoints[0].kept, "gone from the newest record");
        assert_eq!(h[1].restored_from.as_deref(), Some("sp1"));
        assert_eq!(h[1].outcome, LifecycleState::Stable);
        assert_eq!(h[1].job_ids, vec!["j2".to_string()]);
        assert!(h[1].savepoints[0].kept);
    }

    #[test]
    fn the_outcome_is_the_last_settled_state_not_the_next_upgrades_first_step() {
        let mut upgrading = rec("r1", true, "j1", &[]);
        upgrading.in_flight = Some(crate::flink::lifecycle::record::InFlight::Stopping {
            purpose: crate::flink::lifecycle::record::StopPurpose::Upgrade,
            mode: crate::flink::lifecycle::record::StopMode::Savepoint,
            job_id: "j1".into(),
            trigger_id: None,
            since: String::new(),
        });
        let records = vec![
            (10, rec("r1", false, "j1", &[])),
            (11, rec("r1", true, "j1", &[])),
            (12, upgrading),
            (13, rec("r2", false, "j2", &[])),
        ];
        let h = deployed_revisions(&records);
        assert_eq!(
            h[0].states,
            vec![
                LifecycleState::Deployed,
                LifecycleState::Stable,
                LifecycleState::Upgrading
            ]
        );
        assert_eq!(h[0].outcome, LifecycleState::Stable);
        assert_eq!(h[1].outcome, LifecycleState::Deployed, "never settled");
    }
}
