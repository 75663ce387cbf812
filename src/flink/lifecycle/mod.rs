//! The lifecycle rules as pure functions: observe ([`observe`]), decide ([`decide`]), and
//! the record transitions of each step ([`transition`]). The agent loop and `plan` share
//! them: `plan` runs [`decide`] over a predicted observation ([`simulate`]) and summarises
//! the steps as an [`Action`]. Nothing here does I/O or reads the clock.

pub mod decide;
pub mod drift;
pub mod health;
pub mod observe;
pub mod record;
pub mod simulate;
pub mod snapshots;
pub mod spec_diff;
pub mod transition;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::spec::{DeploymentMode, FlinkVersion, JobState, Spec, UpgradeMode};
use crate::config;

/// The operator's change classes, ordered: a diff of many fields is the maximum of its
/// fields' classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiffType {
    /// Takes effect without touching the job (upgrade mode, nonces, operator options).
    Ignore,
    /// Parallelism only: in place where the cluster allows it, else an upgrade.
    Scale,
    /// Restarts the job with its upgrade mode.
    Upgrade,
    /// Throws the current state away and redeploys from `initialSavepointPath`.
    SavepointRedeploy,
}

impl DiffType {
    pub fn as_str(self) -> &'static str {
        match self {
            DiffType::Ignore => "ignore",
            DiffType::Scale => "scale",
            DiffType::Upgrade => "upgrade",
            DiffType::SavepointRedeploy => "savepoint-redeploy",
        }
    }
}

/// Where a starting job takes its state from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", content = "path", rename_all = "kebab-case")]
pub enum Restore {
    /// No state.
    Empty,
    /// A savepoint or checkpoint path named in the manifest or recorded in status.
    Path(String),
    /// The savepoint the suspend or upgrade takes.
    UpgradeSavepoint,
    /// The newest retained checkpoint.
    LatestCheckpoint,
}

/// Where a resource's job takes its state from once the action is done: the plan's answer
/// to "what will the job remember?", for every action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", content = "path", rename_all = "kebab-case")]
pub enum StateFrom {
    /// Nothing restarts: the running job keeps the state it has.
    Running,
    /// No job runs after the action (suspended, removed, a session cluster).
    NoJob,
    /// The job starts with no state.
    Empty,
    /// A savepoint or checkpoint path named in the manifest or recorded in status.
    Path(String),
    /// The savepoint the stop takes.
    UpgradeSavepoint,
    /// The newest retained checkpoint of the stopped job.
    LatestCheckpoint,
}

impl StateFrom {
    /// The state a starting job restores.
    pub fn of_restore(r: &Restore) -> StateFrom {
        match r {
            Restore::Empty => StateFrom::Empty,
            Restore::Path(p) => StateFrom::Path(p.clone()),
            Restore::UpgradeSavepoint => StateFrom::UpgradeSavepoint,
            Restore::LatestCheckpoint => StateFrom::LatestCheckpoint,
        }
    }
}

impl fmt::Display for StateFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateFrom::Running => f.write_str("the running job keeps its state"),
            StateFrom::NoJob => f.write_str("no job runs"),
            StateFrom::Empty => f.write_str("without state"),
            StateFrom::Path(p) => write!(f, "from {p}"),
            StateFrom::UpgradeSavepoint => f.write_str("from the savepoint taken by the stop"),
            StateFrom::LatestCheckpoint => f.write_str("from the latest checkpoint"),
        }
    }
}

/// What the agent does to a resource's job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum Action {
    /// Start a new application job or session job.
    Deploy { restore: Restore },
    /// Start a session cluster.
    DeploySessionCluster,
    /// Record a resource whose job.state is suspended; nothing starts.
    CreateSuspended,
    /// Stop the job the way its upgrade mode says and start the new spec.
    Upgrade { mode: UpgradeMode },
    /// Stop the job the way its upgrade mode says; it stays stopped.
    Suspend { mode: UpgradeMode },
    /// Start a suspended job again.
    Resume { restore: Restore },
    /// Cancel and start again from `initialSavepointPath`.
    SavepointRedeploy { path: String },
    /// Apply a parallelism change without a restart.
    RescaleInPlace,
    /// Redeploy a session cluster; its session jobs are suspended first and resumed after.
    RedeploySessionCluster { session_jobs: Vec<String> },
    /// Trigger a savepoint and/or checkpoint; the job keeps running.
    TriggerSnapshot { savepoint: bool, checkpoint: bool },
    /// The spec changed in a way that needs no restart.
    NoRestart,
    /// The job is suspended: record the new spec; it applies on resume.
    UpdateSuspended,
    /// The resource left Git: stop its job (final savepoint unless disabled) and remove it.
    Delete {
        final_savepoint: bool,
        mode: UpgradeMode,
    },
    /// Remove a session cluster.
    DeleteSessionCluster,
    /// Removed from Git but `--no-prune`: left running and reported.
    KeepUnmanaged,
    /// Invalid desired spec: nothing is applied; the last good deployment keeps running.
    Hold,
}

impl Action {
    /// A short tag, stable across releases (`upgrade`, `suspend`, ...).
    pub fn tag(&self) -> &'static str {
        match self {
            Action::Deploy { .. } => "deploy",
            Action::DeploySessionCluster => "deploy-session-cluster",
            Action::CreateSuspended => "create-suspended",
            Action::Upgrade { .. } => "upgrade",
            Action::Suspend { .. } => "suspend",
            Action::Resume { .. } => "resume",
            Action::SavepointRedeploy { .. } => "savepoint-redeploy",
            Action::RescaleInPlace => "rescale-in-place",
            Action::RedeploySessionCluster { .. } => "redeploy-session-cluster",
            Action::TriggerSnapshot { .. } => "trigger-snapshot",
            Action::NoRestart => "no-restart",
            Action::UpdateSuspended => "update-suspended",
            Action::Delete { .. } => "delete",
            Action::DeleteSessionCluster => "delete-session-cluster",
            Action::KeepUnmanaged => "keep-unmanaged",
            Action::Hold => "hold",
        }
    }
}

impl fmt::Display for Action {
    /// The action in plain words, as a reviewer reads it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Deploy { restore } => match restore {
                Restore::Empty => f.write_str("start the job without state"),
                Restore::Path(p) => write!(f, "start the job from savepoint {p}"),
                Restore::UpgradeSavepoint => f.write_str("start the job from its last savepoint"),
                Restore::LatestCheckpoint => f.write_str("start the job from its latest checkpoint"),
            },
            Action::DeploySessionCluster => f.write_str("start the session cluster"),
            Action::CreateSuspended => f.write_str("record it suspended; nothing starts"),
            Action::Upgrade { mode } => match mode {
                UpgradeMode::Savepoint => f.write_str("stop with savepoint and restart from it"),
                UpgradeMode::LastState => f.write_str("restart from the latest checkpoint"),
                UpgradeMode::Stateless => f.write_str("restart without state"),
            },
            Action::Suspend { mode } => match mode {
                UpgradeMode::Savepoint => f.write_str("suspend with savepoint"),
                UpgradeMode::LastState => f.write_str("suspend, keeping the latest checkpoint"),
                UpgradeMode::Stateless => f.write_str("suspend without savepoint; state is discarded"),
            },
            Action::Resume { restore } => match restore {
                Restore::Empty => f.write_str("resume without state"),
                Restore::LatestCheckpoint => f.write_str("resume from the latest checkpoint"),
                Restore::Path(p) => write!(f, "resume from savepoint {p}"),
                Restore::UpgradeSavepoint => f.write_str("resume from the last savepoint"),
            },
            Action::SavepointRedeploy { path } => {
                write!(f, "cancel the job and redeploy from savepoint {path}; the current state is discarded")
            }
            Action::RescaleInPlace => f.write_str("rescale in place; no restart"),
            Action::RedeploySessionCluster { session_jobs } if session_jobs.is_empty() => {
                f.write_str("redeploy the session cluster (it runs no session jobs)")
            }
            Action::RedeploySessionCluster { session_jobs } => write!(
                f,
                "redeploy the session cluster; stops session jobs {} (each suspended with its upgrade mode, then resumed)",
                session_jobs.join(", ")
            ),
            Action::TriggerSnapshot { savepoint, checkpoint } => match (savepoint, checkpoint) {
                (true, true) => f.write_str("trigger a savepoint and a checkpoint; no restart"),
                (true, false) => f.write_str("trigger a savepoint; no restart"),
                _ => f.write_str("trigger a checkpoint; no restart"),
            },
            Action::NoRestart => f.write_str("no restart"),
            Action::UpdateSuspended => f.write_str("record the new spec; the job stays suspended"),
            Action::Delete { final_savepoint: true, .. } => f.write_str("delete after a final savepoint"),
            Action::Delete { mode: UpgradeMode::LastState, .. } => {
                f.write_str("delete, keeping the latest checkpoint (no final savepoint)")
            }
            Action::Delete { .. } => f.write_str("delete; the job's state is discarded"),
            Action::DeleteSessionCluster => f.write_str("delete the session cluster"),
            Action::KeepUnmanaged => f.write_str("leave it running, unmanaged (--no-prune)"),
            Action::Hold => f.write_str("none: the manifest is invalid; the last good deployment keeps running"),
        }
    }
}

/// Whether removing a resource takes a final savepoint: its upgrade mode is savepoint, or
/// it is stateful and a savepoint directory is set, unless savepoint-on-deletion is false.
pub fn takes_final_savepoint(spec: &Spec) -> bool {
    let Some(job) = spec.job() else { return false };
    let cfg = spec.flink_configuration();
    let enabled = config::lookup_bool(
        cfg,
        &config::OP_SAVEPOINT_ON_DELETION,
        config::DEFAULT_SAVEPOINT_ON_DELETION,
    );
    let has_dir = config::lookup(cfg, &config::SAVEPOINTS_DIR).is_some();
    enabled
        && job.state == JobState::Running
        && job.upgrade_mode.is_stateful()
        && (job.upgrade_mode == UpgradeMode::Savepoint || has_dir)
}

/// The per-vertex parallelism `pipeline.jobvertex-parallelism-overrides` asks for
/// (`<vertex id>:<parallelism>,...`); entries that do not parse are left out (validation
/// reports them).
pub fn parallelism_overrides(spec: &Spec) -> BTreeMap<String, u32> {
    config::lookup(spec.flink_configuration(), &config::PARALLELISM_OVERRIDES)
        .map(|(_, v)| {
            v.split(',')
                .filter_map(|pair| {
                    let (id, p) = pair.trim().split_once(':')?;
                    Some((id.trim().to_string(), p.trim().parse::<u32>().ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a SCALE change from `old` to `new` is applied in place, as the operator's
/// native in-place rescale does it (FLINK-32057, `AbstractFlinkService.scale`): enabled by
/// `kubernetes.operator.job.upgrade.inplace-scaling.enabled` (default true), Flink 1.18 or
/// later, `jobmanager.scheduler: adaptive`, and parallelism overrides present; removing an
/// override falls back to a full upgrade. Only a change confined to the overrides
/// qualifies. The operator's standalone reactive mode (scaling the TaskManager Deployment)
/// is not done in place here: such a change is an upgrade.
pub fn can_rescale_in_place(old: &Spec, new: &Spec) -> bool {
    let (Spec::Deployment(o), Spec::Deployment(d)) = (old, new) else {
        return false;
    };
    let cfg = new.flink_configuration();
    let enabled = config::lookup_bool(
        cfg,
        &config::OP_INPLACE_SCALING,
        config::DEFAULT_INPLACE_SCALING,
    );
    let adaptive = |s: &Spec| {
        config::lookup(s.flink_configuration(), &config::SCHEDULER)
            .is_some_and(|(_, v)| v.eq_ignore_ascii_case("adaptive"))
    };
    if !enabled
        || d.effective_mode() != DeploymentMode::Native
        || d.flink_version.is_some_and(|v| v < FlinkVersion::V1_18)
        || !adaptive(old)
        || !adaptive(new)
        || o.job.is_none()
    {
        return false;
    }
    let before = parallelism_overrides(old);
    let after = parallelism_overrides(new);
    if after.is_empty() || !before.keys().all(|k| after.contains_key(k)) {
        return false;
    }
    // Only the overrides may differ.
    let (_, fields) = spec_diff::classify(old, new);
    fields.iter().all(|f| {
        f.path
            == format!(
                "spec.flinkConfiguration[{}]",
                config::PARALLELISM_OVERRIDES.key
            )
            || f.class == DiffType::Ignore
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flink::spec::{DeploymentSpec, JobSpec};

    fn adaptive(overrides: Option<&str>, f: impl FnOnce(&mut DeploymentSpec)) -> Spec {
        let mut d = DeploymentSpec {
            flink_version: Some(FlinkVersion::V1_20),
            job: Some(JobSpec {
                parallelism: Some(2),
                ..Default::default()
            }),
            ..Default::default()
        };
        d.flink_configuration
            .insert("jobmanager.scheduler".into(), "adaptive".into());
        if let Some(o) = overrides {
            d.flink_configuration
                .insert(config::PARALLELISM_OVERRIDES.key.into(), o.into());
        }
        f(&mut d);
        Spec::Deployment(d)
    }

    /// Rows: (why, old overrides, new overrides, tweak of the new spec, in place?).
    /// Source: flink-operator-behaviour.md section 4 (FLINK-32057, FLINK-34619).
    #[test]
    fn in_place_rescale_follows_the_operator() {
        type Tweak = fn(&mut DeploymentSpec);
        let none: Tweak = |_| {};
        let rows: &[(&str, Option<&str>, Option<&str>, Tweak, bool)] = &[
            (
                "override changed",
                Some("a1:2,b2:2"),
                Some("a1:1,b2:2"),
                none,
                true,
            ),
            ("override added", None, Some("a1:1"), none, true),
            (
                "override removed",
                Some("a1:2,b2:2"),
                Some("a1:1"),
                none,
                false,
            ),
            ("option removed", Some("a1:2"), None, none, false),
            (
                "Flink 1.17",
                Some("a1:2"),
                Some("a1:1"),
                |d| d.flink_version = Some(FlinkVersion::V1_17),
                false,
            ),
            (
                "default scheduler",
                Some("a1:2"),
                Some("a1:1"),
                |d| {
                    d.flink_configuration.remove("jobmanager.scheduler");
                },
                false,
            ),
            (
                "disabled",
                Some("a1:2"),
                Some("a1:1"),
                |d| {
                    d.flink_configuration
                        .insert(config::OP_INPLACE_SCALING.key.into(), "false".into());
                },
                false,
            ),
            (
                "also a new image",
                Some("a1:2"),
                Some("a1:1"),
                |d| d.image = Some("flink:2".into()),
                false,
            ),
            (
                "standalone",
                Some("a1:2"),
                Some("a1:1"),
                |d| d.mode = Some(DeploymentMode::Standalone),
                false,
            ),
        ];
        for (why, old, new, tweak, want) in rows {
            let o = adaptive(*old, |_| {});
            let n = adaptive(*new, |d| tweak(d));
            assert_eq!(can_rescale_in_place(&o, &n), *want, "{why}");
        }
        assert_eq!(
            parallelism_overrides(&adaptive(Some("a1:2, b2 : 3,bad"), |_| {})),
            BTreeMap::from([("a1".to_string(), 2), ("b2".to_string(), 3)])
        );
    }
}
