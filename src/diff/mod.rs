//! Desired versus recorded (or base) specs: which resources change, how (the operator's
//! change classes), what that does to their jobs, and what is at risk.
//!
//! [`load`] reads the files of both revisions into manifest sets, sharing the work between
//! them. [`plan`] is pure: two manifest sets in, a [`Plan`] out. [`render`] turns a plan
//! into text, JSON or Markdown.

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
use crate::flink::lifecycle::{Action, DiffType, Restore};
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
    /// The action as data.
    #[serde(rename = "actionDetail")]
    pub action_detail: Action,
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
            (Some(o), Some(n)) if o.spec == n.spec => (Change::Unchanged, None, Vec::new()),
            (Some(o), Some(n)) => {
                let (class, fields) = classify(&o.spec, &n.spec);
                match class {
                    None => (Change::Unchanged, None, fields),
                    Some(c) => (Change::from_class(c), Some(c), fields),
                }
            }
            (None, None) => continue,
        };
        if change == Change::Unchanged && errors.is_empty() && warnings.is_empty() {
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
        let (action, steps) = if !errors.is_empty() || unreadable_at_head {
            (
                Action::Hold,
                vec![simulate::describe(
                    &crate::flink::lifecycle::decide::Step::Hold {
                        message: String::new(),
                    },
                )],
            )
        } else if change == Change::Unchanged {
            (Action::NoRestart, Vec::new())
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
            let prediction = simulate::predict(&desired, record, &session_jobs, true);
            let steps = prediction.steps.iter().map(simulate::describe).collect();
            (prediction.action, steps)
        };
        let shown = new.or(old).expect("one side exists"); // ok: (None, None) was skipped above
        warnings.extend(risk_warnings(
            old.map(|m| &m.spec),
            new.map(|m| &m.spec),
            &fields,
            &action,
        ));
        plan.resources.push(ResourcePlan {
            kind: key.kind,
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            file: shown.file.clone(),
            change,
            action: action.to_string(),
            upgrade_mode: shown.spec.upgrade_mode(),
            action_detail: action,
            steps,
            warnings,
            errors,
            fields,
            diff: spec_diff(old.map(|m| &m.spec), new.map(|m| &m.spec)),
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
    if let (Some(Spec::Deployment(o)), Some(Spec::Deployment(n))) = (old, new) {
        if let (Some(ov), Some(nv)) = (o.flink_version, n.flink_version) {
            if ov != nv {
                w.push(format!(
                    "flinkVersion changes from {ov} to {nv}: state written by one Flink version is not guaranteed to restore in another; take a savepoint first and keep it"
                ));
            }
        }
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
}
