//! Renders a [`Plan`] as text (for terminals, coloured when asked), JSON (a stable shape,
//! documented in the README) or Markdown (a pull-request comment).

use std::fmt::Write;

use super::{Change, Plan, ResourcePlan};
use crate::flink::spec::{Diagnostic, Severity};

/// Output format of `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

/// Renders a plan in the chosen format.
pub fn render(plan: &Plan, format: Format, color: bool) -> String {
    match format {
        Format::Text => text(plan, color),
        Format::Json => json(plan),
        Format::Markdown => markdown(plan),
    }
}

/// Version of the JSON shape; bumped on any incompatible change.
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// The JSON form: `{schemaVersion, base, head, summary, resources[], errors[], notices[]}`.
pub fn json(plan: &Plan) -> String {
    let summary = summary_counts(plan);
    let value = serde_json::json!({
        "schemaVersion": JSON_SCHEMA_VERSION,
        "base": plan.base,
        "head": plan.head,
        "summary": {
            "added": summary.added,
            "removed": summary.removed,
            "changed": summary.changed,
            "unchanged": unchanged_total(plan),
            "invalid": summary.invalid,
        },
        "resources": plan.resources,
        "errors": plan.errors,
        "notices": plan.notices,
    });
    let mut s = serde_json::to_string_pretty(&value).unwrap_or_default();
    s.push('\n');
    s
}

/// Resources whose spec is the same at both revisions: those left out of the listing and
/// those listed for a warning or because their session cluster is redeployed.
fn unchanged_total(plan: &Plan) -> usize {
    plan.unchanged
        + plan
            .resources
            .iter()
            .filter(|r| r.change == super::Change::Unchanged)
            .count()
}

struct Counts {
    added: usize,
    removed: usize,
    changed: usize,
    invalid: usize,
}

fn summary_counts(plan: &Plan) -> Counts {
    let mut c = Counts {
        added: 0,
        removed: 0,
        changed: 0,
        invalid: 0,
    };
    for r in &plan.resources {
        match r.change {
            Change::Added => c.added += 1,
            Change::Removed => c.removed += 1,
            Change::Unchanged => {}
            _ => c.changed += 1,
        }
        if !r.errors.is_empty() {
            c.invalid += 1;
        }
    }
    c
}

fn summary_line(plan: &Plan) -> String {
    let c = summary_counts(plan);
    let mut s = format!(
        "{} to add, {} to change, {} to remove, {} unchanged",
        c.added,
        c.changed,
        c.removed,
        unchanged_total(plan)
    );
    let invalid = c.invalid + usize::from(!plan.errors.is_empty());
    if invalid > 0 {
        let _ = write!(
            s,
            "; invalid: {} resource(s), {} other error(s)",
            c.invalid,
            plan.errors.len()
        );
    }
    s
}

fn sigil(r: &ResourcePlan) -> &'static str {
    match r.change {
        Change::Added => "+",
        Change::Removed => "-",
        Change::Unchanged => "=",
        _ => "~",
    }
}

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
    fn red(&self, s: &str) -> String {
        self.wrap("31", s)
    }
    fn green(&self, s: &str) -> String {
        self.wrap("32", s)
    }
    fn yellow(&self, s: &str) -> String {
        self.wrap("33", s)
    }
    fn cyan(&self, s: &str) -> String {
        self.wrap("36", s)
    }
}

/// The text form, for a terminal.
pub fn text(plan: &Plan, color: bool) -> String {
    let p = Paint(color);
    let mut out = String::new();
    let _ = writeln!(out, "Plan: {} -> {}", plan.base, plan.head);
    if plan.resources.is_empty() && plan.errors.is_empty() {
        let _ = writeln!(
            out,
            "No changes. {} resource(s) unchanged.",
            unchanged_total(plan)
        );
    }
    for r in &plan.resources {
        let _ = writeln!(out);
        let title = format!("{} {} {}/{}", sigil(r), r.kind, r.namespace, r.name);
        let title = match r.change {
            Change::Added => p.green(&title),
            Change::Removed => p.red(&title),
            _ => p.yellow(&title),
        };
        let _ = writeln!(out, "{}  ({})", p.bold(&title), r.file);
        let mode = r
            .upgrade_mode
            .map(|m| format!(", upgradeMode {m}"))
            .unwrap_or_default();
        let _ = writeln!(out, "  change: {}{}", r.change.as_str(), mode);
        let _ = writeln!(out, "  action: {}", p.bold(&r.action));
        if r.steps.len() > 1 {
            for (i, step) in r.steps.iter().enumerate() {
                let _ = writeln!(out, "    {}. {}", i + 1, step);
            }
        }
        for w in &r.warnings {
            let _ = writeln!(out, "  {} {}", p.yellow("warning:"), w);
        }
        for e in &r.errors {
            let _ = writeln!(out, "  {} {}", p.red("error:"), e);
        }
        if !r.fields.is_empty() && r.change != Change::Added && r.change != Change::Removed {
            let _ = writeln!(out, "  fields:");
            for f in &r.fields {
                let _ = writeln!(
                    out,
                    "    {} ({}): {} -> {}",
                    f.path,
                    f.class.as_str(),
                    f.old.as_deref().unwrap_or("(unset)"),
                    f.new.as_deref().unwrap_or("(unset)")
                );
            }
        }
        if !r.diff.is_empty() {
            for line in r.diff.lines() {
                let shown = if line.starts_with("+++") || line.starts_with("---") {
                    p.bold(line)
                } else if line.starts_with('+') {
                    p.green(line)
                } else if line.starts_with('-') {
                    p.red(line)
                } else if line.starts_with("@@") {
                    p.cyan(line)
                } else {
                    line.to_string()
                };
                let _ = writeln!(out, "    {shown}");
            }
        }
    }
    if !plan.errors.is_empty() {
        let _ = writeln!(out);
        for e in &plan.errors {
            let _ = writeln!(out, "{} {}", p.red("error:"), e);
        }
    }
    let warnings: Vec<&Diagnostic> = other_warnings(plan).collect();
    if !warnings.is_empty() {
        let _ = writeln!(out);
        for w in warnings {
            let _ = writeln!(out, "{}", p.yellow(&w.to_string()));
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", summary_line(plan));
    out
}

/// Warnings about no resource (such as a key `.flink-gitops.yaml` does not know): among
/// the notices in JSON, shown with the errors in text and Markdown.
fn other_warnings(plan: &Plan) -> impl Iterator<Item = &Diagnostic> {
    plan.notices
        .iter()
        .filter(|d| d.severity == Severity::Warning)
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown form, for a pull-request comment.
pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### flink-gitops plan: `{}` → `{}`\n",
        plan.base, plan.head
    );
    let _ = writeln!(out, "**{}**\n", summary_line(plan));
    if !plan.resources.is_empty() {
        let _ = writeln!(
            out,
            "| | Resource | Change | What happens to the job | Upgrade mode |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        for r in &plan.resources {
            let flag = if !r.errors.is_empty() {
                "❌"
            } else if !r.warnings.is_empty() {
                "⚠️"
            } else {
                "✅"
            };
            let _ = writeln!(
                out,
                "| {flag} | `{}` {}/{} | {} | {} | {} |",
                r.kind,
                r.namespace,
                r.name,
                r.change.as_str(),
                md_escape(&r.action),
                r.upgrade_mode
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "–".to_string())
            );
        }
        let _ = writeln!(out);
    }
    for r in &plan.resources {
        if r.errors.is_empty() && r.warnings.is_empty() && r.diff.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "<details><summary><b>{} {}/{}</b>: {}</summary>\n",
            r.kind,
            r.namespace,
            r.name,
            md_escape(&r.action)
        );
        let _ = writeln!(out, "File: `{}`\n", r.file);
        if r.steps.len() > 1 {
            let _ = writeln!(out, "Steps the agent will take:\n");
            for (i, step) in r.steps.iter().enumerate() {
                let _ = writeln!(out, "{}. {}", i + 1, md_escape(step));
            }
            let _ = writeln!(out);
        }
        for e in &r.errors {
            let _ = writeln!(
                out,
                "- ❌ **error** `{}:{}` `{}`: {}",
                e.file, e.line, e.field, e.message
            );
        }
        for w in &r.warnings {
            let _ = writeln!(out, "- ⚠️ {w}");
        }
        if !r.diff.is_empty() {
            let _ = writeln!(out, "\n```diff\n{}```", r.diff);
        }
        let _ = writeln!(out, "\n</details>\n");
    }
    if !plan.errors.is_empty() {
        let _ = writeln!(out, "#### Errors\n");
        for e in &plan.errors {
            let _ = writeln!(out, "- ❌ `{}:{}`: {}", e.file, e.line, e.message);
        }
    }
    let warnings: Vec<&Diagnostic> = other_warnings(plan).collect();
    if !warnings.is_empty() {
        let _ = writeln!(out, "#### Warnings\n");
        for w in warnings {
            let _ = writeln!(
                out,
                "- ⚠️ `{}:{}`: {}",
                w.file,
                w.line,
                md_escape(&w.message)
            );
        }
    }
    out
}
