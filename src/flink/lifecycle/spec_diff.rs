//! The operator's spec diff: which fields changed between two specs and the [`DiffType`] of
//! each, from one table of spec paths (the operator's `ReflectiveDiffBuilder` with its
//! `@SpecDiff` annotations).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config;
use crate::flink::lifecycle::DiffType;
use crate::flink::spec::{DeploymentMode, Spec};

/// One changed field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// `spec.job.parallelism`, `spec.flinkConfiguration[state.savepoints.dir]`, ...
    pub path: String,
    pub class: DiffType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
}

/// The class of a change to one field. `standalone` is the deployment mode of the new spec.
pub fn class_of(path: &str, new_is_null: bool, standalone: bool) -> DiffType {
    if let Some(key) = path
        .strip_prefix("spec.flinkConfiguration[")
        .and_then(|k| k.strip_suffix(']'))
    {
        return if config::is_control_key(key) || key == config::PARALLELISM_DEFAULT.key {
            DiffType::Ignore
        } else if key == config::PARALLELISM_OVERRIDES.key && !standalone {
            DiffType::Scale
        } else {
            DiffType::Upgrade
        };
    }
    match path {
        "spec.job.upgradeMode"
        | "spec.job.initialSavepointPath"
        | "spec.job.allowNonRestoredState"
        | "spec.job.savepointTriggerNonce"
        | "spec.job.checkpointTriggerNonce"
        | "spec.job.autoscalerResetNonce" => DiffType::Ignore,
        "spec.job.savepointRedeployNonce" if new_is_null => DiffType::Ignore,
        "spec.job.savepointRedeployNonce" => DiffType::SavepointRedeploy,
        "spec.restartNonce" if new_is_null => DiffType::Ignore,
        "spec.job.parallelism" | "spec.taskManager.replicas" if standalone => DiffType::Scale,
        _ => DiffType::Upgrade,
    }
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, serde_json::Value>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if prefix == "spec.flinkConfiguration" || prefix == "spec.logConfiguration" {
                    out.insert(format!("{prefix}[{k}]"), v.clone());
                } else {
                    flatten(&format!("{prefix}.{k}"), v, out);
                }
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

fn show(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every changed field between two specs of the same kind, with its class, and the
/// overall class (the maximum; `None` when nothing changed).
pub fn classify(old: &Spec, new: &Spec) -> (Option<DiffType>, Vec<FieldChange>) {
    let mut a = BTreeMap::new();
    let mut b = BTreeMap::new();
    flatten("spec", &old.canonical_json(), &mut a);
    flatten("spec", &new.canonical_json(), &mut b);
    let standalone =
        matches!(new, Spec::Deployment(d) if d.effective_mode() == DeploymentMode::Standalone);
    let mut changes = Vec::new();
    let paths: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for path in paths {
        let (o, n) = (a.get(path), b.get(path));
        if o == n {
            continue;
        }
        let class = class_of(path, n.is_none_or(serde_json::Value::is_null), standalone);
        changes.push(FieldChange {
            path: path.clone(),
            class,
            old: o.map(show),
            new: n.map(show),
        });
    }
    let overall = changes.iter().map(|c| c.class).max();
    (overall, changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flink::spec::{DeploymentSpec, JobSpec, UpgradeMode};

    fn app(f: impl FnOnce(&mut DeploymentSpec)) -> Spec {
        let mut d = DeploymentSpec {
            job: Some(JobSpec {
                parallelism: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        };
        f(&mut d);
        Spec::Deployment(d)
    }

    #[test]
    fn table_of_paths() {
        let cases: &[(&str, bool, bool, DiffType)] = &[
            ("spec.job.upgradeMode", false, false, DiffType::Ignore),
            (
                "spec.job.savepointTriggerNonce",
                false,
                false,
                DiffType::Ignore,
            ),
            (
                "spec.job.savepointRedeployNonce",
                false,
                false,
                DiffType::SavepointRedeploy,
            ),
            (
                "spec.job.savepointRedeployNonce",
                true,
                false,
                DiffType::Ignore,
            ),
            ("spec.restartNonce", false, false, DiffType::Upgrade),
            ("spec.restartNonce", true, false, DiffType::Ignore),
            ("spec.job.parallelism", false, false, DiffType::Upgrade),
            ("spec.job.parallelism", false, true, DiffType::Scale),
            ("spec.taskManager.replicas", false, true, DiffType::Scale),
            (
                "spec.flinkConfiguration[kubernetes.operator.savepoint.format.type]",
                false,
                false,
                DiffType::Ignore,
            ),
            (
                "spec.flinkConfiguration[job.autoscaler.enabled]",
                false,
                false,
                DiffType::Ignore,
            ),
            (
                "spec.flinkConfiguration[pipeline.jobvertex-parallelism-overrides]",
                false,
                false,
                DiffType::Scale,
            ),
            (
                "spec.flinkConfiguration[pipeline.jobvertex-parallelism-overrides]",
                false,
                true,
                DiffType::Upgrade,
            ),
            (
                "spec.flinkConfiguration[state.savepoints.dir]",
                false,
                false,
                DiffType::Upgrade,
            ),
            ("spec.image", false, false, DiffType::Upgrade),
            (
                "spec.podTemplate.spec.containers",
                false,
                false,
                DiffType::Upgrade,
            ),
        ];
        for (path, null, standalone, want) in cases {
            assert_eq!(
                class_of(path, *null, *standalone),
                *want,
                "{path} null={null} standalone={standalone}"
            );
        }
    }

    #[test]
    fn overall_class_is_the_maximum() {
        let old = app(|_| {});
        let new = app(|d| {
            let j = d.job.as_mut().expect("job");
            j.upgrade_mode = UpgradeMode::Savepoint;
            j.jar_uri = Some("local:///b.jar".into());
        });
        let (class, fields) = classify(&old, &new);
        assert_eq!(class, Some(DiffType::Upgrade));
        assert_eq!(fields.len(), 2);
        assert_eq!(classify(&old, &old.clone()).0, None);
    }
}
