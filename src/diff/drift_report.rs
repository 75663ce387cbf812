//! What `flink-gitops diff` prints: the live state of every resource against Git, as text,
//! JSON (a stable shape, `schemaVersion` 1) or Markdown for a pull request, an issue or a
//! chat. Pure: the report is built by [`crate::apply::drift_report`] from live facts and the
//! comparison of [`crate::flink::lifecycle::drift`].
//!
//! Exit codes follow `kubectl diff`: 0 nothing differs, 1 something differs (a resource
//! drifted, Git wants something the agent has not applied yet, or a cluster runs that no
//! manifest wants), 2 or more an error. A resource whose cluster does not answer is
//! `unknown`, never drift; only when nothing at all could be checked (every resource
//! unknown) does `diff` exit 2, since then it cannot say there is no drift.

use serde::Serialize;

use crate::flink::lifecycle::drift::{DriftItem, DriftPolicy};
use crate::flink::spec::Kind;

/// How one resource compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceStatus {
    /// Live state and Git agree.
    InSync,
    /// The live state differs from what the agent applied (the items say how).
    Drifted,
    /// Git wants something the agent has not applied yet (not deployed, changed, a step in
    /// flight, an invalid manifest held, a cluster being recovered).
    Pending,
    /// The cluster did not answer: nothing could be compared.
    Unknown,
    /// Drift policy `ignore`: not looked at.
    Ignored,
}

impl ResourceStatus {
    fn as_str(self) -> &'static str {
        match self {
            ResourceStatus::InSync => "in sync",
            ResourceStatus::Drifted => "drifted",
            ResourceStatus::Pending => "pending",
            ResourceStatus::Unknown => "unknown",
            ResourceStatus::Ignored => "ignored",
        }
    }

    fn sign(self) -> &'static str {
        match self {
            ResourceStatus::InSync => "=",
            ResourceStatus::Drifted => "~",
            ResourceStatus::Pending => ">",
            ResourceStatus::Unknown => "?",
            ResourceStatus::Ignored => "-",
        }
    }
}

/// One resource of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceReport {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    /// The manifest's file, when Git has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub status: ResourceStatus,
    pub policy: DriftPolicy,
    /// The job id the status branch recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// What drifted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<DriftItem>,
    /// What differs but an ignore rule covers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<DriftItem>,
    /// Why something could not be compared, or why it is pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl ResourceReport {
    fn title(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// A cluster that runs while no manifest wants it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Orphan {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub reason: String,
}

/// Counts by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub in_sync: usize,
    pub drifted: usize,
    pub pending: usize,
    pub unknown: usize,
    pub ignored: usize,
    pub orphans: usize,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftReport {
    pub schema_version: u32,
    /// The Git revision compared (`main@sha1:<hex>`).
    pub revision: String,
    pub summary: Summary,
    pub resources: Vec<ResourceReport>,
    pub orphans: Vec<Orphan>,
}

impl DriftReport {
    /// Builds a report; counts the statuses.
    pub fn new(revision: String, resources: Vec<ResourceReport>, orphans: Vec<Orphan>) -> Self {
        let mut summary = Summary {
            orphans: orphans.len(),
            ..Summary::default()
        };
        for r in &resources {
            match r.status {
                ResourceStatus::InSync => summary.in_sync += 1,
                ResourceStatus::Drifted => summary.drifted += 1,
                ResourceStatus::Pending => summary.pending += 1,
                ResourceStatus::Unknown => summary.unknown += 1,
                ResourceStatus::Ignored => summary.ignored += 1,
            }
        }
        DriftReport {
            schema_version: 1,
            revision,
            summary,
            resources,
            orphans,
        }
    }

    /// `kubectl diff`'s convention: 0 nothing differs, 1 something differs, 2 nothing could
    /// be checked.
    pub fn exit_code(&self) -> u8 {
        let s = &self.summary;
        if s.drifted + s.pending + s.orphans > 0 {
            1
        } else if s.unknown > 0 && s.in_sync == 0 {
            2
        } else {
            0
        }
    }

    fn summary_line(&self) -> String {
        let s = &self.summary;
        format!(
            "{} drifted, {} pending, {} in sync, {} unknown, {} ignored, {} orphan cluster(s)",
            s.drifted, s.pending, s.in_sync, s.unknown, s.ignored, s.orphans
        )
    }

    /// For a terminal.
    pub fn text(&self) -> String {
        let mut out = format!("live state against {}\n\n", self.revision);
        for r in &self.resources {
            let file = r
                .file
                .as_deref()
                .map(|f| format!("  ({f})"))
                .unwrap_or_default();
            out.push_str(&format!(
                "{} {}{file}\n  {}",
                r.status.sign(),
                r.title(),
                r.status.as_str()
            ));
            if r.status == ResourceStatus::Drifted {
                out.push_str(&format!(" (policy {})", r.policy));
            }
            if let Some(n) = &r.note {
                out.push_str(&format!(": {n}"));
            }
            out.push('\n');
            for i in &r.items {
                out.push_str(&format!("    {i}\n"));
            }
            for i in &r.ignored {
                out.push_str(&format!("    (ignored by a rule on {}) {i}\n", i.path));
            }
        }
        for o in &self.orphans {
            out.push_str(&format!(
                "! {} {}/{}\n  orphan: {}\n",
                o.kind, o.namespace, o.name, o.reason
            ));
        }
        out.push_str(&format!("\n{}\n", self.summary_line()));
        out
    }

    /// For a pull request, an issue or a chat: a heading, the summary, one table row per
    /// resource that is not in sync, and the drifted fields as a table.
    pub fn markdown(&self) -> String {
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let mut out = String::from("### flink-gitops diff\n\n");
        let verdict = match self.exit_code() {
            0 => "No drift",
            1 => "Live state differs from Git",
            _ => "Nothing could be checked",
        };
        out.push_str(&format!(
            "**{verdict}** at `{}`: {}.\n\n",
            self.revision,
            self.summary_line()
        ));
        let shown: Vec<&ResourceReport> = self
            .resources
            .iter()
            .filter(|r| r.status != ResourceStatus::InSync)
            .collect();
        if !shown.is_empty() {
            out.push_str("| Resource | Status | Details |\n|---|---|---|\n");
            for r in &shown {
                let mut details: Vec<String> =
                    r.items.iter().map(|i| cell(&i.to_string())).collect();
                if let Some(n) = &r.note {
                    details.push(cell(n));
                }
                let status = match r.status {
                    ResourceStatus::Drifted => format!("drifted (policy `{}`)", r.policy),
                    other => other.as_str().to_string(),
                };
                out.push_str(&format!(
                    "| `{}` | {status} | {} |\n",
                    r.title(),
                    details.join("<br>")
                ));
            }
            out.push('\n');
        }
        let drifted: Vec<&ResourceReport> = self
            .resources
            .iter()
            .filter(|r| !r.items.is_empty())
            .collect();
        if !drifted.is_empty() {
            out.push_str("<details><summary>Drifted fields</summary>\n\n");
            out.push_str(
                "| Resource | Field | Expected (Git) | Found (live) |\n|---|---|---|---|\n",
            );
            for r in drifted {
                for i in &r.items {
                    let field = match &i.subject {
                        Some(s) => format!("`{}` {}", i.path, cell(s)),
                        None => format!("`{}`", i.path),
                    };
                    out.push_str(&format!(
                        "| `{}` | {field} | {} | {} |\n",
                        r.title(),
                        cell(&i.expected),
                        cell(&i.found)
                    ));
                }
            }
            out.push_str("\n</details>\n\n");
        }
        if !self.orphans.is_empty() {
            out.push_str("Clusters no manifest wants:\n\n");
            for o in &self.orphans {
                out.push_str(&format!(
                    "- `{} {}/{}`: {}\n",
                    o.kind,
                    o.namespace,
                    o.name,
                    cell(&o.reason)
                ));
            }
            out.push('\n');
        }
        out
    }

    /// The stable JSON shape.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() // ok: plain data
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flink::lifecycle::drift::DriftKind;

    fn resource(name: &str, status: ResourceStatus, items: Vec<DriftItem>) -> ResourceReport {
        ResourceReport {
            kind: Kind::FlinkDeployment,
            namespace: "default".into(),
            name: name.into(),
            file: Some(format!("apps/{name}.yaml")),
            status,
            policy: DriftPolicy::Report,
            job_id: None,
            items,
            ignored: vec![],
            note: None,
        }
    }

    fn cancelled() -> DriftItem {
        DriftItem {
            kind: DriftKind::JobState,
            path: "job.state".into(),
            subject: Some("j1".into()),
            expected: "RUNNING".into(),
            found: "CANCELED".into(),
        }
    }

    /// Rows: (why, statuses, orphans, exit code).
    #[test]
    fn exit_codes_follow_kubectl_diff() {
        use ResourceStatus::*;
        let rows: &[(&str, &[ResourceStatus], usize, u8)] = &[
            ("nothing at all", &[], 0, 0),
            ("all in sync", &[InSync, InSync], 0, 0),
            ("one drifted", &[InSync, Drifted], 0, 1),
            ("pending counts as a difference", &[Pending], 0, 1),
            ("an orphan cluster", &[InSync], 1, 1),
            (
                "unknown beside in sync: reported, not drift",
                &[InSync, Unknown],
                0,
                0,
            ),
            ("drift beside unknown", &[Drifted, Unknown], 0, 1),
            ("nothing could be checked", &[Unknown, Unknown], 0, 2),
            ("ignored only", &[Ignored], 0, 0),
        ];
        for (why, statuses, orphans, code) in rows {
            let resources = statuses
                .iter()
                .enumerate()
                .map(|(i, s)| resource(&format!("r{i}"), *s, vec![]))
                .collect();
            let orphans = (0..*orphans)
                .map(|i| Orphan {
                    kind: Kind::FlinkDeployment,
                    namespace: "default".into(),
                    name: format!("old{i}"),
                    reason: "x".into(),
                })
                .collect();
            let report = DriftReport::new("main@sha1:abc".into(), resources, orphans);
            assert_eq!(report.exit_code(), *code, "{why}");
        }
    }

    #[test]
    fn renderings_name_what_drifted() {
        let report = DriftReport::new(
            "main@sha1:1a2b3c4".into(),
            vec![
                resource("payments", ResourceStatus::Drifted, vec![cancelled()]),
                resource("clicks", ResourceStatus::InSync, vec![]),
            ],
            vec![],
        );
        let text = report.text();
        assert!(
            text.contains("~ FlinkDeployment default/payments  (apps/payments.yaml)"),
            "{text}"
        );
        assert!(
            text.contains("job state j1: expected RUNNING, found CANCELED"),
            "{text}"
        );
        assert!(text.contains("1 drifted, 0 pending, 1 in sync"), "{text}");
        let md = report.markdown();
        assert!(md.contains("**Live state differs from Git**"), "{md}");
        assert!(
            md.contains("| `FlinkDeployment default/payments` | drifted (policy `report`) |"),
            "{md}"
        );
        assert!(
            !md.contains("default/clicks"),
            "rows only for what is not in sync: {md}"
        );
        assert!(
            md.contains(
                "| `FlinkDeployment default/payments` | `job.state` j1 | RUNNING | CANCELED |"
            ),
            "{md}"
        );
        let json: serde_json::Value = serde_json::from_str(&report.json()).expect("json");
        assert_eq!(json["schemaVersion"], 1);
        assert_eq!(json["summary"]["drifted"], 1);
        assert_eq!(json["resources"][0]["items"][0]["kind"], "job-state");
        assert_eq!(json["resources"][0]["items"][0]["found"], "CANCELED");
    }
}
