//! Desired versus recorded (or base) specs: which resources change, how (the operator's
//! change classes), what that does to their jobs, and what is at risk.
//!
//! [`load`] reads the files of both revisions into manifest sets, sharing the work between
//! them. [`plan`] is pure: two manifest sets in, a [`Plan`] out. [`render`] turns a plan
//! into text, JSON or Markdown.

pub mod drift_report;
pub mod load;
pub mod render;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use similar::TextDiff;

pub use crate::flink::lifecycle::spec_diff::{classify, FieldChange};

use crate::config;
use crate::flink::lifecycle::decide::Desired;
use crate::flink::lifecycle::record::Record;
use crate::flink::lifecycle::simulate;
use crate::flink::lifecycle::simulate::{checkpoints_of, Checkpoints};
use crate::flink::lifecycle::{Action, DiffType, Restore, StateFrom};
use crate::flink::spec::validate::validate_transition;
use crate::flink::spec::{
    Diagnostic, Kind, Manifest, ManifestSet, ResourceKey, Severity, Spec, UpgradeMode,
};

/// How a resource changes between base and head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    Added,
    Removed,
    Ignore,
    Scale,
    Upgrade,
    SavepointRedeploy,
    /// The spec is the same; listed because something about it is wrong.
    Unchanged,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Ignore => "ignore",
            Change::Scale => "scale",
            Change::Upgrade => "upgrade",
            Change::SavepointRedeploy => "savepoint-redeploy",
            Change::Unchanged => "unchanged",
        }
    }

    fn from_class(c: DiffType) -> Change {
        match c {
            DiffType::Ignore => Change::Ignore,
            DiffType::Scale => Change::Scale,
            DiffType::Upgrade => Change::Upgrade,
            DiffType::SavepointRedeploy => Change::SavepointRedeploy,
        }
    }
}

/// What merging does to one resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePlan {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    /// File at head (or at base, for a removed resource).
    pub file: String,
    pub change: Change,
    /// The action in plain words.
    pub action: String,
    /// The action as data, with where the job's state comes from.
    #[serde(rename = "actionDetail")]
    pub action_detail: ActionDetail,
    /// The steps the agent will take, in order, in plain words (from its own rules).
    pub steps: Vec<String>,
    /// Upgrade mode at head (at base for a removed resource); none for session clusters.
    pub upgrade_mode: Option<UpgradeMode>,
    pub warnings: Vec<String>,
    pub errors: Vec<Diagnostic>,
    pub fields: Vec<FieldChange>,
    /// Unified diff of the canonical spec, base to head.
    pub diff: String,
}

/// An [`Action`] and where the job's state comes from after it. In JSON the action's own
/// fields (`type`, `mode`, `restore`, ...) with `state` beside them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionDetail {
    #[serde(flatten)]
    pub action: Action,
    pub state: StateFrom,
}

impl PartialEq<Action> for ActionDetail {
    fn eq(&self, other: &Action) -> bool {
        &self.action == other
    }
}

impl PartialEq<ActionDetail> for Action {
    fn eq(&self, other: &ActionDetail) -> bool {
        self == &other.action
    }
}

/// The action in plain words, saying where the state of a restarted job comes from when
/// that is not what the upgrade mode alone suggests.
fn words(action: &Action, state: &StateFrom) -> String {
    match (action, state) {
        (
            Action::Upgrade {
                mode: UpgradeMode::Savepoint,
            },
            StateFrom::UpgradeSavepoint,
        )
        | (
            Action::Upgrade {
                mode: UpgradeMode::LastState,
            },
            StateFrom::LatestCheckpoint,
        )
        | (
            Action::Upgrade {
                mode: UpgradeMode::Stateless,
            },
            StateFrom::Empty,
        ) => action.to_string(),
        (Action::Upgrade { mode }, state) => {
            let stop = match mode {
                UpgradeMode::Savepoint => "stop with savepoint",
                UpgradeMode::LastState => "cancel",
                UpgradeMode::Stateless => "cancel (state discarded)",
            };
            match state {
                StateFrom::Empty => format!("{stop} and restart without state: there is no checkpoint or savepoint to restore"),
                other => format!("{stop} and restart {other}"),
            }
        }
        _ => action.to_string(),
    }
}

impl ResourcePlan {
    pub fn key(&self) -> ResourceKey {
        ResourceKey::new(self.namespace.clone(), self.kind, self.name.clone())
    }
}

/// What merging head into base does.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub base: String,
    pub head: String,
    pub resources: Vec<ResourcePlan>,
    /// Resources whose spec is the same at both revisions.
    pub unchanged: usize,
    /// Errors at head that concern no single resource (unreadable files, missing kinds).
    pub errors: Vec<Diagnostic>,
    /// Notices at head (skipped kinds, ignored fields).
    pub notices: Vec<Diagnostic>,
}

impl Plan {
    /// Whether anything changes.
    pub fn has_changes(&self) -> bool {
        self.resources.iter().any(|r| r.change != Change::Unchanged)
    }

    /// Whether head is invalid anywhere.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty() || self.resources.iter().any(|r| !r.errors.is_empty())
    }
}

fn session_jobs_of(set: &ManifestSet, cluster: &ResourceKey) -> Vec<String> {
    set.manifests
        .iter()
        .filter(|m| m.key.namespace == cluster.namespace)
        .filter(|m| {
            m.as_session_job()
                .and_then(|s| s.deployment_name.as_deref())
                == Some(cluster.name.as_str())
        })
        .map(|m| m.key.name.clone())
        .collect()
}

fn spec_diff(old: Option<&Spec>, new: Option<&Spec>) -> String {
    let a = old.map(Spec::to_canonical_yaml).unwrap_or_default();
    let b = new.map(Spec::to_canonical_yaml).unwrap_or_default();
    if a == b {
        return String::new();
    }
    TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header("base", "head")
        .to_string()
}

/// Builds the plan for merging `head` over `base`. `head` should already be validated: its
/// diagnostics are the plan's errors and warnings. Of `base` only the specs, files and
/// unreadable files are read (not its diagnostics, nor where its fields stand).
pub fn plan(base: &ManifestSet, head: &ManifestSet, base_label: &str, head_label: &str) -> Plan {
    plan_with_records(base, head, base_label, head_label, &BTreeMap::new())
}

/// [`plan`], knowing what the agent recorded: a resource added back after a removal
/// restores from the final state recorded when it was removed.
pub fn plan_with_records(
    base: &ManifestSet,
    head: &ManifestSet,
    base_label: &str,
    head_label: &str,
    records: &BTreeMap<ResourceKey, Record>,
) -> Plan {
    let base_by_key: BTreeMap<&ResourceKey, &Manifest> =
        base.manifests.iter().map(|m| (&m.key, m)).collect();
    let head_by_key: BTreeMap<&ResourceKey, &Manifest> =
        head.manifests.iter().map(|m| (&m.key, m)).collect();
    let keys: BTreeSet<&ResourceKey> = base_by_key
        .keys()
        .chain(head_by_key.keys())
        .copied()
        .collect();
    let mut head_errors: BTreeMap<String, Vec<Diagnostic>> = BTreeMap::new();
    let mut plan = Plan {
        base: base_label.to_string(),
        head: head_label.to_string(),
        resources: Vec::new(),
        unchanged: 0,
        errors: Vec::new(),
        notices: Vec::new(),
    };
    for d in &head.diagnostics {
        match (&d.resource, d.severity) {
            (_, Severity::Notice) => plan.notices.push(d.clone()),
            (Some(r), _) => head_errors.entry(r.clone()).or_default().push(d.clone()),
            (None, Severity::Error) => plan.errors.push(d.clone()),
            (None, Severity::Warning) => plan.notices.push(d.clone()),
        }
    }

    let renames = rename_warnings(&base_by_key, &head_by_key, records);
    // Session clusters this change redeploys (clusters sort before their session jobs).
    let mut redeployed: BTreeSet<(String, String)> = BTreeSet::new();
    for key in keys {
        let old = base_by_key.get(key).copied();
        let new = head_by_key.get(key).copied();
        let mut diags = head_errors.remove(&key.to_string()).unwrap_or_default();
        // The operator's rules on a change apply to what runs: the spec the agent recorded
        // as reconciled when the status branch has one (it may have held an invalid base),
        // else base.
        let running = records
            .get(key)
            .filter(|r| !r.deleted)
            .and_then(|r| r.last_reconciled_spec.as_ref())
            .or(old.map(|o| &o.spec));
        if let (Some(o), Some(n)) = (running, new) {
            validate_transition(o, n, &mut diags);
        }
        let errors: Vec<Diagnostic> = diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .cloned()
            .collect();
        let mut warnings: Vec<String> = diags
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .map(|d| format!("{}: {}", d.field, d.message))
            .collect();

        // Rolled back: the agent runs the last stable spec, not base.
        let rolled_back_spec = records
            .get(key)
            .filter(|r| r.rollback.is_some() && !r.deleted)
            .and_then(|r| r.last_stable_spec.as_ref());
        // Its file could not be read at head: keep it as it is, never remove it.
        let unreadable_at_head =
            new.is_none() && old.is_some_and(|o| head.unreadable_files.contains(&o.file));
        let (change, _class, fields) = match (old, new) {
            (None, Some(n)) => {
                if base.unreadable_files.contains(&n.file) {
                    // Base cannot say whether it exists: the agent may run it already.
                    warnings.push(format!(
                        "{} could not be read at base: this resource may already be deployed from an earlier revision, and then this is a change to it rather than a new start",
                        n.file
                    ));
                }
                (Change::Added, None, Vec::new())
            }
            (Some(o), None) if unreadable_at_head => {
                warnings.push(format!(
                    "{} could not be read at head; this resource is kept as it is until the file is fixed",
                    o.file
                ));
                (Change::Unchanged, None, Vec::new())
            }
            (Some(_), None) => (Change::Removed, None, Vec::new()),
            // Most specs are the same at both revisions; comparing is far cheaper than
            // classifying.
            // Rolled back: the stable spec runs, so head is compared with it.
            (Some(_), Some(n)) if rolled_back_spec.is_some_and(|r| r == &n.spec) => {
                (Change::Unchanged, None, Vec::new())
            }
            (Some(o), Some(n)) if o.spec == n.spec => (Change::Unchanged, None, Vec::new()),
            (Some(o), Some(n)) => {
                let (class, fields) = classify(rolled_back_spec.unwrap_or(&o.spec), &n.spec);
                match class {
                    None => (Change::Unchanged, None, fields),
                    Some(c) => (Change::from_class(c), Some(c), fields),
                }
            }
            (None, None) => continue,
        };
        // A session job whose session cluster this change redeploys stops and resumes with
        // it, though its own spec is the same.
        let cluster_redeployed = match new.map(|m| &m.spec) {
            Some(Spec::SessionJob(sj)) if change == Change::Unchanged => sj
                .deployment_name
                .as_ref()
                .is_some_and(|c| redeployed.contains(&(key.namespace.clone(), c.clone()))),
            _ => false,
        };
        // A rolled-back resource is always shown: Git and what runs differ.
        if let Some(summary) = records.get(key).and_then(|r| r.rollback_summary()) {
            warnings.push(format!("rolled back: {summary}"));
        }
        if change == Change::Unchanged
            && errors.is_empty()
            && warnings.is_empty()
            && !cluster_redeployed
        {
            plan.unchanged += 1;
            continue;
        }
        let session_jobs = {
            let mut jobs = session_jobs_of(head, key);
            jobs.extend(session_jobs_of(base, key));
            jobs.sort();
            jobs.dedup();
            jobs
        };
        let known = records.get(key);
        if let (Change::Added, Some(rec)) = (change, known) {
            let initial = new
                .and_then(|m| m.spec.job())
                .and_then(|j| j.initial_savepoint_path.as_ref());
            let stateful = new
                .and_then(|m| m.spec.upgrade_mode())
                .is_some_and(UpgradeMode::is_stateful);
            if let (true, None, true, Some(p)) = (rec.deleted, initial, stateful, &rec.restore_path)
            {
                warnings.push(format!(
                    "added back after a removal: restores from the final state recorded then ({p})"
                ));
            }
        }
        let (action, steps, state) = if !errors.is_empty() || unreadable_at_head {
            (
                Action::Hold,
                vec![simulate::describe(
                    &crate::flink::lifecycle::decide::Step::Hold {
                        message: String::new(),
                    },
                )],
                StateFrom::Running,
            )
        } else if change == Change::Unchanged && !cluster_redeployed {
            (Action::NoRestart, Vec::new(), StateFrom::Running)
        } else {
            let desired = match new {
                Some(n) => Desired::Valid {
                    spec: &n.spec,
                    hash: n.spec.hash(),
                    revision: head_label,
                },
                None => Desired::Absent,
            };
            let record = simulate::predicted_record(key, old.map(|m| &m.spec), known);
            let prediction =
                simulate::predict_with(&desired, record, &session_jobs, true, cluster_redeployed);
            if let Action::RedeploySessionCluster { .. } = prediction.action {
                redeployed.insert((key.namespace.clone(), key.name.clone()));
            }
            if cluster_redeployed {
                warnings.push(
                    "its session cluster is redeployed by this change: the job is stopped with its upgrade mode and resumed on the new cluster"
                        .to_string(),
                );
            }
            let steps = prediction.steps.iter().map(simulate::describe).collect();
            (prediction.action, steps, prediction.state)
        };
        let shown = new.or(old).expect("one side exists"); // ok: (None, None) was skipped above
        warnings.extend(risk_warnings(
            old.map(|m| &m.spec),
            new.map(|m| &m.spec),
            &fields,
            &action,
        ));
        warnings.extend(state_warnings(&StateCase {
            running: running.or(old.map(|m| &m.spec)),
            head: new.map(|m| &m.spec),
            known: known.filter(|r| !r.deleted),
            action: &action,
            state: &state,
        }));
        if let Some(w) = renames.get(key) {
            warnings.push(w.clone());
        }
        plan.resources.push(ResourcePlan {
            kind: key.kind,
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            file: shown.file.clone(),
            change,
            action: words(&action, &state),
            upgrade_mode: shown.spec.upgrade_mode(),
            action_detail: ActionDetail { action, state },
            steps,
            warnings,
            errors,
            fields,
            diff: spec_diff(
                rolled_back_spec.or(old.map(|m| &m.spec)),
                new.map(|m| &m.spec),
            ),
        });
    }
    // Errors about resources that are in neither set (e.g. a document whose spec failed
    // before it had a name) stay visible.
    for (_, diags) in head_errors {
        plan.errors
            .extend(diags.into_iter().filter(|d| d.severity == Severity::Error));
    }
    plan
}

/// Warnings where a change puts state at risk or stops other jobs.
fn risk_warnings(
    old: Option<&Spec>,
    new: Option<&Spec>,
    fields: &[FieldChange],
    action: &Action,
) -> Vec<String> {
    let mut w = Vec::new();
    let restarts = matches!(
        action,
        Action::Upgrade { .. }
            | Action::Resume { .. }
            | Action::SavepointRedeploy { .. }
            | Action::Deploy { .. }
    );
    let old_job = old.and_then(Spec::job);
    let new_job = new.and_then(Spec::job);
    let redeploy = fields
        .iter()
        .any(|f| f.class == DiffType::SavepointRedeploy);
    if let (Some(oj), Some(nj)) = (old_job, new_job) {
        if oj.upgrade_mode.is_stateful() && !nj.upgrade_mode.is_stateful() {
            w.push(format!(
                "upgradeMode changes from {} to stateless: this and every later restart discard the job's state",
                oj.upgrade_mode
            ));
        }
        if oj.jar_uri != nj.jar_uri
            && nj.upgrade_mode == UpgradeMode::Stateless
            && nj.state == crate::flink::spec::JobState::Running
        {
            w.push(
                "jarURI changes while upgradeMode is stateless: the new job starts without state"
                    .to_string(),
            );
        }
        if oj.initial_savepoint_path != nj.initial_savepoint_path && !redeploy {
            w.push("initialSavepointPath is only read on the first deployment (or with a new savepointRedeployNonce); this change has no effect on the running job".to_string());
        }
    }
    let allows_non_restored = new_job
        .is_some_and(|j| j.allow_non_restored_state == Some(true) && j.upgrade_mode.is_stateful());
    if restarts && allows_non_restored {
        w.push("allowNonRestoredState is true: state of operators missing from the new job is dropped without an error".to_string());
    } else if allows_non_restored
        && old_job.is_some_and(|j| j.allow_non_restored_state != Some(true))
    {
        // The field alone restarts nothing, but it changes what every later restart keeps.
        w.push("allowNonRestoredState turns on: from the next restart, state of operators missing from the new job is dropped without an error".to_string());
    }
    match action {
        Action::SavepointRedeploy { path } => w.push(format!(
            "savepoint redeploy discards the job's current state and starts from {path}"
        )),
        Action::Resume {
            restore: Restore::Path(path),
        } => w.push(format!(
            "savepoint redeploy: the job resumes from {path}, not from the state it was suspended with"
        )),
        _ => {}
    }
    match action {
        Action::Delete {
            final_savepoint: false,
            mode,
            ..
        } => {
            let cfg = old.map(Spec::flink_configuration);
            let disabled = cfg.is_some_and(|c| {
                !config::lookup_bool(
                    c,
                    &config::OP_SAVEPOINT_ON_DELETION,
                    config::DEFAULT_SAVEPOINT_ON_DELETION,
                )
            });
            if disabled {
                w.push("kubernetes.operator.job.savepoint-on-deletion is false: removing this resource takes no final savepoint".to_string());
            } else if *mode == UpgradeMode::Stateless {
                w.push("removing a stateless job discards its state (no final savepoint is taken in stateless mode)".to_string());
            } else if *mode == UpgradeMode::LastState {
                w.push("no savepoint directory is set: removing this job keeps only its latest checkpoint".to_string());
            }
        }
        Action::Delete {
            final_savepoint: true,
            ..
        } => {
            w.push("removing this job stops it with a final savepoint; reverting the removal restores it from there".to_string());
        }
        Action::RedeploySessionCluster { session_jobs } if !session_jobs.is_empty() => {
            w.push(format!(
                "redeploying this session cluster stops every session job on it: {}",
                session_jobs.join(", ")
            ));
        }
        Action::DeleteSessionCluster => {
            w.push("removing a session cluster stops every job still running on it".to_string());
        }
        Action::Suspend {
            mode: UpgradeMode::Stateless,
        } => {
            w.push("suspending in stateless mode cancels the job without a savepoint: its state is discarded".to_string());
        }
        _ => {}
    }
    w
}

/// What [`state_warnings`] judges: the spec that runs (the agent's record, else base), the
/// spec Git wants, what the status branch knows, and the predicted action and state.
pub struct StateCase<'a> {
    pub running: Option<&'a Spec>,
    pub head: Option<&'a Spec>,
    pub known: Option<&'a Record>,
    pub action: &'a Action,
    pub state: &'a StateFrom,
}

/// How to keep the state of a job that has no checkpoint to restore.
const KEEP_STATE_HINT: &str = "to keep its state, first take a savepoint of the running job (a change of its own with a new savepointTriggerNonce; the running job needs a savepoint directory), then make this change with initialSavepointPath set to that savepoint and a new savepointRedeployNonce";

/// Warnings where a restore finds nothing, or something else than a reviewer expects. Each
/// rule names the behaviour it follows; the table test in this module has one row per rule.
pub fn state_warnings(c: &StateCase<'_>) -> Vec<String> {
    let mut w = Vec::new();
    let head_job = c.head.and_then(Spec::job);
    let head_mode = c.head.and_then(Spec::upgrade_mode);
    let initial = head_job.and_then(|j| j.initial_savepoint_path.as_deref());
    let restarts = matches!(c.action, Action::Upgrade { .. } | Action::Resume { .. });
    let checkpoints = c.running.map(checkpoints_of);

    // 1. A stateful restart that restores nothing. The operator restores a savepoint path
    // or the recorded checkpoint, and with neither starts empty (ApplicationReconciler.deploy;
    // behaviour reference 3.4, 6.3: a cancelled job with no checkpoint records no path).
    if restarts && *c.state == StateFrom::Empty && head_mode.is_some_and(UpgradeMode::is_stateful) {
        let mode = head_mode.unwrap_or_default();
        let why = match (c.action, checkpoints) {
            (Action::Resume { .. }, _) if c.known.is_some_and(|r| r.job_id.is_none()) => {
                "the job never ran (it was added suspended), so it has no state".to_string()
            }
            (Action::Resume { .. }, _) => {
                "the job was suspended without keeping state (stateless, or it never ran)".to_string()
            }
            (_, Some(Checkpoints::Never)) => format!(
                "the running job has no checkpoint: it runs {} without {} (unless its own code turns checkpointing on)",
                c.running.and_then(Spec::upgrade_mode).unwrap_or_default(),
                config::CHECKPOINT_INTERVAL.key
            ),
            _ => "the agent knows no checkpoint or savepoint of the running job".to_string(),
        };
        let initial_note = match initial {
            Some(p) => format!(
                "; initialSavepointPath ({p}) is not read here: only on a first start, or with a new savepointRedeployNonce"
            ),
            None => String::new(),
        };
        w.push(format!(
            "upgradeMode is {mode}, but {why}: the new version starts without state{initial_note}. To keep its state: {KEEP_STATE_HINT}"
        ));
    }

    // 1b. The same switch with no restart now: the operator applies an upgradeMode change
    // at the next stop (reference 3.5 "Upgrade-mode change only"), which finds nothing.
    if matches!(c.action, Action::NoRestart)
        && head_mode.is_some_and(UpgradeMode::is_stateful)
        && c.running.and_then(Spec::upgrade_mode) == Some(UpgradeMode::Stateless)
        && checkpoints == Some(Checkpoints::Never)
        && c.known.is_none_or(|r| r.restore_path.is_none())
    {
        w.push(format!(
            "upgradeMode changes to {}, but the running job never checkpoints (stateless without {}): nothing restarts now, and the next restart starts without state. To keep its state: {KEEP_STATE_HINT}",
            head_mode.unwrap_or_default(),
            config::CHECKPOINT_INTERVAL.key
        ));
    }

    // 2. A checkpoint that may not exist: checkpointing on, but no directory in the spec.
    // Flink keeps a checkpoint past a cancel only in a checkpoint directory (the operator's
    // docs: last-state needs state.checkpoints.dir; behaviour reference 3.1).
    if restarts
        && *c.state == StateFrom::LatestCheckpoint
        && checkpoints == Some(Checkpoints::Unsure)
    {
        w.push(format!(
            "the running job checkpoints but names no checkpoint directory ({}): unless the runtime's default configuration sets one, there is no checkpoint to restore and the new version starts without state",
            config::CHECKPOINTS_DIR.key
        ));
    }

    // 3. A stop with savepoint of a job that has no savepoint directory. The agent asks Flink
    // for the savepoint without a target directory, so the running job's own
    // state.savepoints.dir applies (apply/executor/act.rs `stop`); Flink refuses a savepoint
    // with neither. The operator's SAVEPOINT suspend writes to state.savepoints.dir
    // (behaviour reference 3.2).
    let stops_with_savepoint = *c.state == StateFrom::UpgradeSavepoint
        || matches!(
            c.action,
            Action::Suspend {
                mode: UpgradeMode::Savepoint
            }
        );
    let running_has_sp_dir = c.running.is_some_and(|r| {
        config::lookup(r.flink_configuration(), &config::SAVEPOINTS_DIR).is_some()
    });
    if stops_with_savepoint && c.running.is_some() && !running_has_sp_dir {
        w.push(format!(
            "the running job has no savepoint directory ({} is new in this change): the agent stops it with a savepoint into the running job's own directory, so unless the runtime's default configuration sets one, Flink refuses the savepoint, the change fails and the old version keeps running. Set the savepoint directory in a change of its own first",
            config::SAVEPOINTS_DIR.key
        ));
    }

    // 4. Added suspended: nothing runs. A later start is its first start: from
    // initialSavepointPath if set, as the operator starts a spec it has not deployed yet
    // (AbstractFlinkResourceReconciler.reconcile, behaviour reference 0 step 2 and 3.5
    // "First deployment"), else without state.
    if *c.action == Action::CreateSuspended {
        match (initial, head_mode.is_some_and(UpgradeMode::is_stateful)) {
            (Some(p), _) => w.push(format!(
                "added suspended: it has never run; when a later change starts it, it starts from initialSavepointPath ({p})"
            )),
            (None, _) => w.push(
                "added suspended: it has never run, so when a later change starts it, it starts without state".to_string(),
            ),
        }
    }

    // 5. A resume the plan predicts without the agent's record: the plan takes base to have
    // run and been suspended with state. A job that never ran has none; the agent then
    // starts it as new (from initialSavepointPath if set).
    if matches!(c.action, Action::Resume { .. })
        && c.known.is_none()
        && !matches!(c.state, StateFrom::Empty | StateFrom::Path(_))
    {
        let then = match initial {
            Some(p) => format!("from initialSavepointPath ({p})"),
            None => "without state".to_string(),
        };
        w.push(format!(
            "the plan takes this job to have run before it was suspended, and resumes it {}; if it never ran (it was added suspended), it starts {then}",
            c.state
        ));
    }

    // 6. flinkVersion changes. Flink promises to restore savepoints across versions, not
    // checkpoints; the operator stops a last-state job with a savepoint when the version
    // changes and a savepoint directory is set, else cancels and restores the latest
    // checkpoint (AbstractJobReconciler.getJobUpgrade; behaviour reference 3.3 step 5).
    if let (Some(Spec::Deployment(o)), Some(Spec::Deployment(n))) = (c.running, c.head) {
        if let (Some(ov), Some(nv)) = (o.flink_version, n.flink_version) {
            if ov != nv && n.job.is_some() {
                let how = match c.state {
                    StateFrom::UpgradeSavepoint => "the stop takes a savepoint and the new version restores from it; keep that savepoint".to_string(),
                    StateFrom::LatestCheckpoint => format!(
                        "savepoint mode is off and there is no savepoint directory, so the new version restores from the latest checkpoint, which Flink does not promise to read across versions; set {} (a last-state job is then stopped with a savepoint) or upgradeMode: savepoint",
                        config::SAVEPOINTS_DIR.key
                    ),
                    StateFrom::Path(p) => format!("the new version restores from {p}, written by {ov}"),
                    StateFrom::Empty => "the job starts without state".to_string(),
                    StateFrom::Running | StateFrom::NoJob => "take a savepoint first and keep it".to_string(),
                };
                w.push(format!(
                    "flinkVersion changes from {ov} to {nv}: state written by one Flink version is not guaranteed to restore in another; {how}"
                ));
            }
        }
    }
    w
}

/// What carries a resource's state past its removal: the final savepoint, the latest
/// checkpoint (last-state without one), or nothing.
fn final_state_words(spec: &Spec) -> Option<&'static str> {
    if crate::flink::lifecycle::takes_final_savepoint(spec) {
        Some("a final savepoint")
    } else if spec.upgrade_mode() == Some(UpgradeMode::LastState) {
        Some("its latest checkpoint")
    } else {
        None
    }
}

/// A removal and an addition of the same job under another name in one change: a rename,
/// which Kubernetes (and the agent) see as two resources. The new one starts as a new job;
/// the operator reads initialSavepointPath on a first start only (behaviour reference 2.2).
/// Same job: same kind and namespace, and the same jarURI, entryClass and args.
fn rename_warnings(
    base: &BTreeMap<&ResourceKey, &Manifest>,
    head: &BTreeMap<&ResourceKey, &Manifest>,
    records: &BTreeMap<ResourceKey, Record>,
) -> BTreeMap<ResourceKey, String> {
    let mut out = BTreeMap::new();
    let same_job = |a: &Spec, b: &Spec| match (a.job(), b.job()) {
        (Some(x), Some(y)) => {
            x.jar_uri == y.jar_uri && x.entry_class == y.entry_class && x.args == y.args
        }
        _ => false,
    };
    for (old_key, old) in base.iter().filter(|(k, _)| !head.contains_key(*k)) {
        for (new_key, new) in head.iter().filter(|(k, _)| !base.contains_key(*k)) {
            if old_key.kind != new_key.kind
                || old_key.namespace != new_key.namespace
                || !same_job(&old.spec, &new.spec)
            {
                continue;
            }
            // Already recorded under the new name: not a new job.
            if records.get(*new_key).is_some_and(|r| !r.deleted) {
                continue;
            }
            let initial = new
                .spec
                .job()
                .and_then(|j| j.initial_savepoint_path.as_deref());
            let carried = final_state_words(&old.spec);
            let (new_side, old_side) = match (initial, carried) {
                (Some(p), _) => (
                    format!("it starts from initialSavepointPath ({p}); check that this is the state of {}", old_key.name),
                    format!("{} starts from initialSavepointPath ({p})", new_key.name),
                ),
                (None, Some(what)) => (
                    format!(
                        "it starts without the state of {old}. To carry the state over, merge the removal first (it records {what}, shown by `flink-gitops status`), then add {new} with initialSavepointPath set to it",
                        old = old_key.name,
                        new = new_key.name
                    ),
                    format!(
                        "the removal records {what}; {} starts without it unless initialSavepointPath points at it",
                        new_key.name
                    ),
                ),
                (None, None) => (
                    format!(
                        "it starts without state, and the removal of {old} keeps none (no final savepoint). To carry the state over, first take a savepoint of {old} (a new savepointTriggerNonce), then add {new} with initialSavepointPath set to it",
                        old = old_key.name,
                        new = new_key.name
                    ),
                    format!(
                        "the removal keeps no state (no final savepoint), and {} starts without state",
                        new_key.name
                    ),
                ),
            };
            out.insert(
                (*new_key).clone(),
                format!(
                    "looks like a rename of {}/{} (removed in this change, same job): {new_side}",
                    old_key.namespace, old_key.name
                ),
            );
            out.insert(
                (*old_key).clone(),
                format!(
                    "looks like a rename to {}/{} (added in this change, same job): {old_side}",
                    new_key.namespace, new_key.name
                ),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flink::spec::validate::Options;

    const APP: &str = "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: NAME\nspec:\n  flinkVersion: v1_20\n  serviceAccount: flink\n  flinkConfiguration:\n    state.checkpoints.dir: s3://b/c\n    state.savepoints.dir: s3://b/s\n  jobManager:\n    resource:\n      memory: 1g\n  taskManager:\n    resource:\n      memory: 1g\n  job:\n    jarURI: local:///job.jar\n    parallelism: 1\n    upgradeMode: savepoint\n";

    fn app(name: &str, job_extra: &str) -> String {
        format!("{}{job_extra}", APP.replace("NAME", name))
    }

    fn set(files: &[(&str, &str)]) -> ManifestSet {
        let mut s = ManifestSet::default();
        for (f, text) in files {
            s.add_file(f, text);
        }
        s.validate(&Options::default());
        s
    }

    fn only(p: &Plan) -> &ResourcePlan {
        assert_eq!(p.resources.len(), 1, "{:#?}", p.resources);
        &p.resources[0]
    }

    #[test]
    fn a_file_unreadable_at_head_holds_its_resources() {
        let two = format!("{}---\n{}", app("a", ""), app("b", ""));
        let base = set(&[("apps.yaml", &two)]);
        let head = set(&[("apps.yaml", "spec: [unclosed\n")]);
        let p = plan(&base, &head, "base", "head");
        assert_eq!(p.resources.len(), 2);
        for r in &p.resources {
            assert_eq!(r.change, Change::Unchanged);
            assert_eq!(r.action_detail, Action::Hold);
            assert!(r.warnings[0].contains("could not be read at head"));
        }
        assert!(!p.has_changes());
        assert!(p.has_errors());
    }

    #[test]
    fn a_file_unreadable_at_base_warns_on_its_added_resources() {
        let base = set(&[("a.yaml", "spec: [unclosed\n")]);
        let head = set(&[("a.yaml", &app("a", ""))]);
        let r = only(&plan(&base, &head, "base", "head")).clone();
        assert_eq!(r.change, Change::Added);
        assert!(
            r.warnings[0].starts_with("a.yaml could not be read at base"),
            "{:?}",
            r.warnings
        );
        // A file read at both sides adds no such warning.
        let r = only(&plan(&set(&[]), &head, "base", "head")).clone();
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }

    #[test]
    fn allow_non_restored_state_turned_on_without_a_restart_warns() {
        let base = set(&[("a.yaml", &app("a", ""))]);
        let head = set(&[("a.yaml", &app("a", "    allowNonRestoredState: true\n"))]);
        let r = only(&plan(&base, &head, "base", "head")).clone();
        assert_eq!(r.action_detail, Action::NoRestart);
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].starts_with("allowNonRestoredState turns on"));
        // Already on, and nothing restarts: nothing new to say.
        let both = set(&[(
            "a.yaml",
            &app(
                "a",
                "    allowNonRestoredState: true\n    upgradeMode: last-state\n",
            )
            .replace("    upgradeMode: savepoint\n", ""),
        )]);
        let r = only(&plan(&head, &both, "base", "head")).clone();
        assert_eq!(r.action_detail, Action::NoRestart);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }

    #[test]
    fn resuming_with_a_savepoint_redeploy_warns_and_reads_initial_savepoint_path() {
        let base = set(&[("a.yaml", &app("a", "    state: suspended\n"))]);
        let head = set(&[(
            "a.yaml",
            &app(
                "a",
                "    initialSavepointPath: s3://b/s/sp-1\n    savepointRedeployNonce: 3\n",
            ),
        )]);
        let r = only(&plan(&base, &head, "base", "head")).clone();
        assert_eq!(r.change, Change::SavepointRedeploy);
        assert_eq!(
            r.action_detail,
            Action::Resume {
                restore: Restore::Path("s3://b/s/sp-1".into())
            }
        );
        assert_eq!(
            r.warnings,
            vec!["savepoint redeploy: the job resumes from s3://b/s/sp-1, not from the state it was suspended with".to_string()]
        );
    }

    /// A FlinkDeployment `name` with `mode`, the given Flink options and job fields.
    fn job(name: &str, mode: &str, cfg: &[(&str, &str)], job_extra: &str) -> String {
        let mut y = format!("apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: {name}\nspec:\n  flinkVersion: v1_20\n  serviceAccount: flink\n  flinkConfiguration:\n    taskmanager.numberOfTaskSlots: \"1\"\n");
        for (k, v) in cfg {
            y += &format!("    {k}: \"{v}\"\n");
        }
        y += &format!("  jobManager:\n    resource:\n      memory: 1g\n  taskManager:\n    resource:\n      memory: 1g\n  job:\n    jarURI: local:///job.jar\n    parallelism: 1\n    upgradeMode: {mode}\n{job_extra}");
        y
    }

    const CP: (&str, &str) = ("state.checkpoints.dir", "s3://b/cp");
    const SP: (&str, &str) = ("state.savepoints.dir", "s3://b/sp");
    const INTERVAL: (&str, &str) = ("execution.checkpointing.interval", "10 s");

    /// The agent's record of `yaml` as applied and running (or suspended), as the status
    /// branch holds it.
    fn record_of(yaml: &str, f: impl FnOnce(&mut Record)) -> Record {
        let s = set(&[("a.yaml", yaml)]);
        let m = &s.manifests[0];
        let mut r = Record::new(&m.key);
        r.set_reconciled(&m.spec, Some("base"));
        r.mark_reconciled_stable();
        f(&mut r);
        r
    }

    /// State warnings, one row per rule: (why and source, base, head, status record,
    /// action tag, where state comes from, a warning that must be there (or none)).
    #[test]
    fn state_warnings_table() {
        struct Row {
            why: &'static str,
            base: Option<String>,
            head: Option<String>,
            record: Option<Record>,
            action: &'static str,
            state: StateFrom,
            warns: Option<&'static str>,
        }
        let stateless_bare = job("a", "stateless", &[], "");
        let stateless_ckpt = job("a", "stateless", &[CP, INTERVAL], "");
        let switched = job("a", "last-state", &[CP], "").replace("job.jar", "job-2.jar");
        let rows = vec![
            Row {
                // Issue 7 input 3; ApplicationReconciler.deploy (reference 3.4: no path, empty).
                why: "stateless without checkpointing switched to last-state with a new jar: starts empty",
                base: Some(stateless_bare.clone()),
                head: Some(switched.clone()),
                record: None,
                action: "upgrade",
                state: StateFrom::Empty,
                warns: Some("upgradeMode is last-state, but the running job has no checkpoint"),
            },
            Row {
                // Reference 3.2 CANCEL: the latest completed checkpoint is the restore point.
                why: "stateless that checkpoints into a directory switched to last-state: latest checkpoint",
                base: Some(stateless_ckpt.clone()),
                head: Some(job("a", "last-state", &[CP, INTERVAL], "").replace("job.jar", "job-2.jar")),
                record: None,
                action: "upgrade",
                state: StateFrom::LatestCheckpoint,
                warns: None,
            },
            Row {
                // Reference 3.1: a retained checkpoint lives in the checkpoint directory.
                why: "stateless checkpointing without a directory: the checkpoint may not exist",
                base: Some(job("a", "stateless", &[INTERVAL], "")),
                head: Some(switched.clone()),
                record: None,
                action: "upgrade",
                state: StateFrom::LatestCheckpoint,
                warns: Some("names no checkpoint directory"),
            },
            Row {
                // The agent's decide: a last-state stop with no checkpoint restores the
                // recorded restore point (newest_state / FinishStop).
                why: "never checkpointed, but the status branch records where it started from",
                base: Some(stateless_bare.clone()),
                head: Some(switched.clone()),
                record: Some(record_of(&stateless_bare, |r| {
                    r.restore_path = Some("s3://b/sp/savepoint-1".into())
                })),
                action: "upgrade",
                state: StateFrom::Path("s3://b/sp/savepoint-1".into()),
                warns: None,
            },
            Row {
                // Reference 3.2 SAVEPOINT: stop-with-savepoint into state.savepoints.dir;
                // the agent sends no target directory (executor `stop`).
                why: "switch to savepoint mode from a job with no savepoint directory",
                base: Some(job("a", "last-state", &[CP], "")),
                head: Some(job("a", "savepoint", &[CP, SP], "")),
                record: None,
                action: "upgrade",
                state: StateFrom::UpgradeSavepoint,
                warns: Some("the running job has no savepoint directory"),
            },
            Row {
                // Reference 3.2 SAVEPOINT with the directory in place: no warning.
                why: "switch to savepoint mode with the savepoint directory already set",
                base: Some(job("a", "last-state", &[CP, SP], "")),
                head: Some(job("a", "savepoint", &[CP, SP], "").replace("job.jar", "job-2.jar")),
                record: None,
                action: "upgrade",
                state: StateFrom::UpgradeSavepoint,
                warns: None,
            },
            Row {
                // Reference 3.5 "Upgrade-mode change only": no restart; the new mode governs
                // the next stop, which finds no checkpoint.
                why: "upgradeMode alone switched to last-state on a job that never checkpoints",
                base: Some(job("a", "stateless", &[CP], "")),
                head: Some(job("a", "last-state", &[CP], "")),
                record: None,
                action: "no-restart",
                state: StateFrom::Running,
                warns: Some("the next restart starts without state"),
            },
            Row {
                // Reference 0 step 2 and 3.5 "First deployment": a suspended first spec runs
                // nothing; the agent records it (decide `first_deploy`).
                why: "added suspended with initialSavepointPath: the later start reads it",
                base: None,
                head: Some(job("a", "savepoint", &[CP, SP], "    state: suspended\n    initialSavepointPath: s3://b/sp/old\n")),
                record: None,
                action: "create-suspended",
                state: StateFrom::NoJob,
                warns: Some("it starts from initialSavepointPath (s3://b/sp/old)"),
            },
            Row {
                why: "added suspended without initialSavepointPath: starts without state later",
                base: None,
                head: Some(job("a", "savepoint", &[CP, SP], "    state: suspended\n")),
                record: None,
                action: "create-suspended",
                state: StateFrom::NoJob,
                warns: Some("added suspended: it has never run"),
            },
            Row {
                // Decide `spec_changed` (suspended -> running) restores the recorded restore
                // point, which a job that never ran has not.
                why: "started after being added suspended (recorded, never ran): starts empty",
                base: Some(job("a", "last-state", &[CP], "    state: suspended\n")),
                head: Some(job("a", "last-state", &[CP], "")),
                record: Some(record_of(&job("a", "last-state", &[CP], "    state: suspended\n"), |_| {})),
                action: "resume",
                state: StateFrom::Empty,
                warns: Some("the job never ran (it was added suspended)"),
            },
            Row {
                why: "started from suspended with no record: the plan says what it assumes",
                base: Some(job("a", "last-state", &[CP], "    state: suspended\n")),
                head: Some(job("a", "last-state", &[CP], "")),
                record: None,
                action: "resume",
                state: StateFrom::LatestCheckpoint,
                warns: Some("if it never ran (it was added suspended), it starts without state"),
            },
            Row {
                // AbstractJobReconciler.getJobUpgrade (reference 3.3 step 5): last-state with
                // a changed flinkVersion and a savepoint directory stops with a savepoint.
                why: "flinkVersion change, last-state with a savepoint directory: savepoint",
                base: Some(job("a", "last-state", &[CP, SP], "")),
                head: Some(job("a", "last-state", &[CP, SP], "").replace("v1_20", "v2_0")),
                record: None,
                action: "upgrade",
                state: StateFrom::UpgradeSavepoint,
                warns: Some("the stop takes a savepoint and the new version restores from it"),
            },
            Row {
                // Same rule without a savepoint directory: cancel, latest checkpoint.
                why: "flinkVersion change with savepoint mode off: restores a checkpoint across versions",
                base: Some(job("a", "last-state", &[CP], "")),
                head: Some(job("a", "last-state", &[CP], "").replace("v1_20", "v2_0")),
                record: None,
                action: "upgrade",
                state: StateFrom::LatestCheckpoint,
                warns: Some("savepoint mode is off and there is no savepoint directory"),
            },
        ];
        for row in rows {
            let base = set(&row
                .base
                .iter()
                .map(|y| ("a.yaml", y.as_str()))
                .collect::<Vec<_>>());
            let head = set(&row
                .head
                .iter()
                .map(|y| ("a.yaml", y.as_str()))
                .collect::<Vec<_>>());
            let records: BTreeMap<ResourceKey, Record> =
                row.record.into_iter().map(|r| (r.key(), r)).collect();
            let p = plan_with_records(&base, &head, "base", "head", &records);
            let r = only(&p);
            assert!(r.errors.is_empty(), "{}: {:?}", row.why, r.errors);
            assert_eq!(
                r.action_detail.action.tag(),
                row.action,
                "{}: {r:#?}",
                row.why
            );
            assert_eq!(r.action_detail.state, row.state, "{}: {r:#?}", row.why);
            match row.warns {
                Some(needle) => assert!(
                    r.warnings.iter().any(|w| w.contains(needle)),
                    "{}: no warning has {needle:?}: {:#?}",
                    row.why,
                    r.warnings
                ),
                None => assert!(r.warnings.is_empty(), "{}: {:#?}", row.why, r.warnings),
            }
        }
    }

    /// A removal and an addition of the same job: named a rename on both sides, with how
    /// to carry the state over.
    #[test]
    fn a_rename_is_named_with_how_to_carry_the_state() {
        let base = set(&[("a.yaml", &job("orders", "savepoint", &[CP, SP], ""))]);
        let head = set(&[("a.yaml", &job("orders-v2", "savepoint", &[CP, SP], ""))]);
        let p = plan(&base, &head, "base", "head");
        assert_eq!(p.resources.len(), 2);
        let added = p
            .resources
            .iter()
            .find(|r| r.name == "orders-v2")
            .expect("added");
        let removed = p
            .resources
            .iter()
            .find(|r| r.name == "orders")
            .expect("removed");
        assert_eq!(added.action_detail.state, StateFrom::Empty);
        assert!(
            added
                .warnings
                .iter()
                .any(|w| w.starts_with("looks like a rename of default/orders")
                    && w.contains("merge the removal first (it records a final savepoint")
                    && w.contains("initialSavepointPath")),
            "{:#?}",
            added.warnings
        );
        assert!(
            removed
                .warnings
                .iter()
                .any(|w| w.starts_with("looks like a rename to default/orders-v2")),
            "{:#?}",
            removed.warnings
        );
        // Another job is no rename.
        let other = set(&[(
            "a.yaml",
            &job("orders-v2", "savepoint", &[CP, SP], "").replace("job.jar", "other.jar"),
        )]);
        let p = plan(&base, &other, "base", "head");
        assert!(p
            .resources
            .iter()
            .all(|r| r.warnings.iter().all(|w| !w.contains("rename"))));
    }

    /// actionDetail keeps the action's fields and adds `state`.
    #[test]
    fn action_detail_json_adds_state() {
        let d = ActionDetail {
            action: Action::Upgrade {
                mode: UpgradeMode::LastState,
            },
            state: StateFrom::Empty,
        };
        assert_eq!(
            serde_json::to_value(&d).ok(),
            Some(
                serde_json::json!({"type": "upgrade", "mode": "last-state", "state": {"from": "empty"}})
            )
        );
        let d = ActionDetail {
            action: Action::Hold,
            state: StateFrom::Running,
        };
        assert_eq!(
            serde_json::to_value(&d).ok(),
            Some(serde_json::json!({"type": "hold", "state": {"from": "running"}}))
        );
        let d = ActionDetail {
            action: Action::Deploy {
                restore: Restore::Path("s3://x".into()),
            },
            state: StateFrom::Path("s3://x".into()),
        };
        assert_eq!(
            serde_json::to_value(&d).ok(),
            Some(
                serde_json::json!({"type": "deploy", "restore": {"from": "path", "path": "s3://x"}, "state": {"from": "path", "path": "s3://x"}})
            )
        );
    }
}
