//! The lifecycle rules as pure functions: what a change to a resource does to its job.
//!
//! [`Action`] is the vocabulary shared by `plan` (which predicts what merging a change will
//! do, assuming the base revision is deployed and its job is running) and the agent loop
//! (which decides from observed facts). Nothing here does I/O or reads the clock.

pub mod decide;
pub mod record;

use std::fmt;

use serde::Serialize;

use super::spec::{DeploymentMode, FlinkVersion, JobState, Spec, UpgradeMode};
use crate::config;

/// The operator's change classes, ordered: a diff of many fields is the maximum of its
/// fields' classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeClass {
    /// Takes effect without touching the job (upgrade mode, nonces, operator options).
    Ignore,
    /// Parallelism only: in place where the cluster allows it, else an upgrade.
    Scale,
    /// Restarts the job with its upgrade mode.
    Upgrade,
    /// Throws the current state away and redeploys from `initialSavepointPath`.
    SavepointRedeploy,
}

impl ChangeClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeClass::Ignore => "ignore",
            ChangeClass::Scale => "scale",
            ChangeClass::Upgrade => "upgrade",
            ChangeClass::SavepointRedeploy => "savepoint-redeploy",
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

/// What the agent does to a resource's job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
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

/// Facts `predict` needs beyond the two specs.
#[derive(Debug, Clone, Default)]
pub struct PredictContext {
    /// For a session cluster: the session jobs that run on it.
    pub session_jobs: Vec<String>,
    /// Where a re-added resource's state was recorded (its final savepoint), if known.
    pub recorded_savepoint: Option<String>,
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

/// Predicts the action of a change, assuming the old spec is deployed and its job runs
/// (or is suspended, as the old spec says).
pub fn predict(
    old: Option<&Spec>,
    new: Option<&Spec>,
    class: Option<ChangeClass>,
    ctx: &PredictContext,
) -> Action {
    match (old, new) {
        (None, None) => Action::NoRestart,
        (None, Some(new)) => match new {
            Spec::Deployment(d) if d.is_session_cluster() => Action::DeploySessionCluster,
            _ => {
                let job = new.job();
                if job.is_some_and(|j| j.state == JobState::Suspended) {
                    Action::CreateSuspended
                } else if let Some(p) = job.and_then(|j| j.initial_savepoint_path.clone()) {
                    Action::Deploy {
                        restore: Restore::Path(p),
                    }
                } else if let Some(p) = ctx.recorded_savepoint.clone() {
                    Action::Deploy {
                        restore: Restore::Path(p),
                    }
                } else {
                    Action::Deploy {
                        restore: Restore::Empty,
                    }
                }
            }
        },
        (Some(old), None) => match old {
            Spec::Deployment(d) if d.is_session_cluster() => Action::DeleteSessionCluster,
            _ => Action::Delete {
                final_savepoint: takes_final_savepoint(old),
                mode: old.upgrade_mode().unwrap_or_default(),
            },
        },
        (Some(old), Some(new)) => {
            predict_change(old, new, class.unwrap_or(ChangeClass::Ignore), ctx)
        }
    }
}

fn predict_change(old: &Spec, new: &Spec, class: ChangeClass, ctx: &PredictContext) -> Action {
    if let Spec::Deployment(d) = new {
        if d.is_session_cluster() {
            return if class >= ChangeClass::Scale {
                Action::RedeploySessionCluster {
                    session_jobs: ctx.session_jobs.clone(),
                }
            } else {
                Action::NoRestart
            };
        }
    }
    let (Some(oj), Some(nj)) = (old.job(), new.job()) else {
        return Action::NoRestart;
    };
    let mode = effective_upgrade_mode(old, new);
    if class == ChangeClass::SavepointRedeploy {
        // The operator checks a savepoint redeploy before the job state: it cancels the job
        // without a savepoint and, if the job should run, starts it from initialSavepointPath.
        let path = nj.initial_savepoint_path.clone().unwrap_or_default();
        return match (oj.state, nj.state) {
            (JobState::Running, JobState::Running) => Action::SavepointRedeploy { path },
            (JobState::Suspended, JobState::Running) => Action::Resume {
                restore: Restore::Path(path),
            },
            (JobState::Running, JobState::Suspended) => Action::Suspend {
                mode: UpgradeMode::Stateless,
            },
            (JobState::Suspended, JobState::Suspended) => Action::UpdateSuspended,
        };
    }
    match (oj.state, nj.state) {
        (JobState::Suspended, JobState::Suspended) => return Action::UpdateSuspended,
        (JobState::Suspended, JobState::Running) => {
            let restore = if !mode.is_stateful() {
                Restore::Empty
            } else if oj.upgrade_mode == UpgradeMode::LastState {
                Restore::LatestCheckpoint
            } else if oj.upgrade_mode == UpgradeMode::Savepoint {
                Restore::UpgradeSavepoint
            } else {
                Restore::Empty
            };
            return Action::Resume { restore };
        }
        (JobState::Running, JobState::Suspended) => return Action::Suspend { mode },
        (JobState::Running, JobState::Running) => {}
    }
    match class {
        ChangeClass::SavepointRedeploy => Action::SavepointRedeploy {
            path: nj.initial_savepoint_path.clone().unwrap_or_default(),
        },
        ChangeClass::Upgrade => Action::Upgrade { mode },
        ChangeClass::Scale if can_rescale_in_place(new) => Action::RescaleInPlace,
        ChangeClass::Scale => Action::Upgrade { mode },
        ChangeClass::Ignore => {
            let savepoint = nj.savepoint_trigger_nonce.is_some()
                && nj.savepoint_trigger_nonce != oj.savepoint_trigger_nonce;
            let checkpoint = nj.checkpoint_trigger_nonce.is_some()
                && nj.checkpoint_trigger_nonce != oj.checkpoint_trigger_nonce;
            if savepoint || checkpoint {
                Action::TriggerSnapshot {
                    savepoint,
                    checkpoint,
                }
            } else {
                Action::NoRestart
            }
        }
    }
}

/// The mode a running job is stopped with: the new spec's upgrade mode, except that a
/// last-state job whose `flinkVersion` changes is stopped with a savepoint when a savepoint
/// directory is set, because HA metadata may not carry over between Flink versions
/// (the operator's `AbstractJobReconciler.getJobUpgrade`).
fn effective_upgrade_mode(old: &Spec, new: &Spec) -> UpgradeMode {
    let mode = new.upgrade_mode().unwrap_or_default();
    let version_changes = match (old, new) {
        (Spec::Deployment(o), Spec::Deployment(n)) => o.flink_version != n.flink_version,
        _ => false,
    };
    if mode == UpgradeMode::LastState
        && version_changes
        && config::lookup(new.flink_configuration(), &config::SAVEPOINTS_DIR).is_some()
    {
        UpgradeMode::Savepoint
    } else {
        mode
    }
}

/// In-place rescaling as the operator does it: native mode with the adaptive scheduler on
/// Flink 1.18 or later, or standalone mode in reactive scheduling.
pub fn can_rescale_in_place(spec: &Spec) -> bool {
    let cfg = spec.flink_configuration();
    let Spec::Deployment(d) = spec else {
        return false;
    };
    let enabled = config::lookup_bool(
        cfg,
        &config::OP_INPLACE_SCALING,
        config::DEFAULT_INPLACE_SCALING,
    );
    match d.effective_mode() {
        DeploymentMode::Native => {
            enabled
                && d.flink_version.is_some_and(|v| v >= FlinkVersion::V1_18)
                && config::lookup(cfg, &config::SCHEDULER)
                    .is_some_and(|(_, v)| v.eq_ignore_ascii_case("adaptive"))
        }
        DeploymentMode::Standalone => config::lookup(cfg, &config::SCHEDULER_MODE)
            .is_some_and(|(_, v)| v.eq_ignore_ascii_case("reactive")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flink::spec::{DeploymentSpec, JobSpec};

    fn app(f: impl FnOnce(&mut DeploymentSpec, &mut JobSpec)) -> Spec {
        let mut d = DeploymentSpec {
            flink_version: Some(FlinkVersion::V1_20),
            ..Default::default()
        };
        d.flink_configuration
            .insert("state.checkpoints.dir".into(), "s3://b/checkpoints".into());
        d.flink_configuration
            .insert("state.savepoints.dir".into(), "s3://b/savepoints".into());
        let mut j = JobSpec {
            parallelism: Some(1),
            upgrade_mode: UpgradeMode::LastState,
            ..Default::default()
        };
        f(&mut d, &mut j);
        d.job = Some(j);
        Spec::Deployment(d)
    }

    fn change(old: &Spec, new: &Spec, class: ChangeClass) -> Action {
        predict(
            Some(old),
            Some(new),
            Some(class),
            &PredictContext::default(),
        )
    }

    #[test]
    fn last_state_across_flink_versions_stops_with_a_savepoint() {
        let old = app(|_, _| {});
        let new = app(|d, _| d.flink_version = Some(FlinkVersion::V2_0));
        assert_eq!(
            change(&old, &new, ChangeClass::Upgrade),
            Action::Upgrade {
                mode: UpgradeMode::Savepoint
            }
        );
        let suspend = app(|d, j| {
            d.flink_version = Some(FlinkVersion::V2_0);
            j.state = JobState::Suspended;
        });
        assert_eq!(
            change(&old, &suspend, ChangeClass::Upgrade),
            Action::Suspend {
                mode: UpgradeMode::Savepoint
            }
        );
        // No savepoint directory: cancel and restore the latest checkpoint.
        let no_dir = |v| {
            app(move |d, _| {
                d.flink_version = Some(v);
                d.flink_configuration.remove("state.savepoints.dir");
            })
        };
        assert_eq!(
            change(
                &no_dir(FlinkVersion::V1_20),
                &no_dir(FlinkVersion::V2_0),
                ChangeClass::Upgrade
            ),
            Action::Upgrade {
                mode: UpgradeMode::LastState
            }
        );
        // Same version: last-state as written.
        let jar = app(|_, j| j.jar_uri = Some("local:///b.jar".into()));
        assert_eq!(
            change(&old, &jar, ChangeClass::Upgrade),
            Action::Upgrade {
                mode: UpgradeMode::LastState
            }
        );
    }

    #[test]
    fn savepoint_redeploy_comes_before_the_job_state() {
        let path = "s3://b/savepoints/sp-1";
        let redeploy = |state| {
            app(move |_, j| {
                j.state = state;
                j.initial_savepoint_path = Some(path.into());
                j.savepoint_redeploy_nonce = Some(1);
            })
        };
        let running = app(|_, _| {});
        let suspended = app(|_, j| j.state = JobState::Suspended);
        let cases = [
            (
                &running,
                JobState::Running,
                Action::SavepointRedeploy { path: path.into() },
            ),
            (
                &suspended,
                JobState::Running,
                Action::Resume {
                    restore: Restore::Path(path.into()),
                },
            ),
            (
                &running,
                JobState::Suspended,
                Action::Suspend {
                    mode: UpgradeMode::Stateless,
                },
            ),
            (&suspended, JobState::Suspended, Action::UpdateSuspended),
        ];
        for (old, state, want) in cases {
            assert_eq!(
                change(old, &redeploy(state), ChangeClass::SavepointRedeploy),
                want,
                "to {state:?}"
            );
        }
    }
}
