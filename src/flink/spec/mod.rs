//! The manifest model, typed and validated.
//!
//! Data flow: YAML text → [`yaml`] (a tree that remembers lines) → [`parse`] (typed
//! [`Manifest`]s plus [`Diagnostic`]s) → [`validate`] (the operator's rules, pure) . Every
//! diagnostic names the file, line, field path, what was found and what is allowed. One
//! bad document never hides the others: parsing goes on after an error and collects all.

pub mod model;
pub mod operator;
pub mod parse;
pub mod quantity;
pub mod validate;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

pub use model::*;
pub use operator::OperatorVersion;
pub use yaml::Pos;

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something was skipped or has no effect; nothing is wrong.
    Notice,
    /// Valid, but probably not what was meant.
    Warning,
    /// Invalid: the resource is not applied; its last good deployment keeps running.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Notice => "notice",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One finding about a manifest, located to the line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    pub line: u32,
    pub column: u32,
    /// Field path, e.g. `spec.job.upgradeMode` or `spec.flinkConfiguration[state.checkpoints.dir]`;
    /// empty for a whole document or file.
    pub field: String,
    /// The resource it concerns (`namespace/Kind/name`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: ",
            self.file, self.line, self.column, self.severity
        )?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)?;
        if let Some(r) = &self.resource {
            write!(f, " ({r})")?;
        }
        Ok(())
    }
}

/// Where each field of a manifest stands, by field path. Lets validation, which works on
/// the typed model, point at the line a user has to change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Locations(BTreeMap<String, Pos>);

impl Locations {
    pub fn insert(&mut self, path: &str, pos: Pos) {
        self.0.entry(path.to_string()).or_insert(pos);
    }

    /// The position of a field, or of its nearest parent that is written in the file.
    pub fn find(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some(pos) = self.0.get(p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return self.0.get("").copied().unwrap_or_default(),
            }
        }
    }

    pub fn contains(&self, path: &str) -> bool {
        self.0.contains_key(path)
    }

    /// Moves every position down by `lines`: for a document read apart from the file it
    /// stands in (see `diff::load`).
    pub fn shift_lines(&mut self, lines: u32) {
        for pos in self.0.values_mut().filter(|p| p.line > 0) {
            pos.line += lines;
        }
    }
}

/// A `FlinkDeployment` or `FlinkSessionJob` read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub key: ResourceKey,
    /// File path relative to the repository (or folder) root.
    pub file: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub spec: Spec,
    pub locations: Locations,
}

impl Manifest {
    /// A diagnostic about a field of this manifest, located by the field path.
    pub fn diag(&self, severity: Severity, field: &str, message: impl Into<String>) -> Diagnostic {
        let pos = self.locations.find(field);
        Diagnostic {
            severity,
            file: self.file.clone(),
            line: pos.line,
            column: pos.col,
            field: field.to_string(),
            resource: Some(self.key.to_string()),
            message: message.into(),
        }
    }

    pub fn as_deployment(&self) -> Option<&DeploymentSpec> {
        match &self.spec {
            Spec::Deployment(d) => Some(d),
            Spec::SessionJob(_) => None,
        }
    }

    pub fn as_session_job(&self) -> Option<&SessionJobSpec> {
        match &self.spec {
            Spec::SessionJob(s) => Some(s),
            Spec::Deployment(_) => None,
        }
    }
}

/// Everything read from one tree of manifests (a folder, or a Git revision).
#[derive(Debug, Clone, Default)]
pub struct ManifestSet {
    pub manifests: Vec<Manifest>,
    pub diagnostics: Vec<Diagnostic>,
    /// Files with a document whose identity (kind, namespace, name) could not be read. The
    /// resources such a file held before are kept as they were, never taken for removed.
    pub unreadable_files: BTreeSet<String>,
    pub files_read: usize,
}

impl ManifestSet {
    /// Parses and adds one file.
    pub fn add_file(&mut self, file: &str, text: &str) {
        self.files_read += 1;
        parse::parse_file(file, text, self);
    }

    /// Runs the validation rules over the whole set (cross-resource rules included).
    pub fn validate(&mut self, options: &validate::Options) {
        let found = validate::validate_set(&self.manifests, options);
        self.diagnostics.extend(found);
        self.sort();
    }

    /// Sorts diagnostics by file and line so output is stable.
    pub fn sort(&mut self) {
        self.diagnostics.sort_by(|a, b| {
            (&a.file, a.line, a.column, &a.field, &a.message)
                .cmp(&(&b.file, b.line, b.column, &b.field, &b.message))
        });
        self.diagnostics.dedup();
        self.manifests.sort_by(|a, b| a.key.cmp(&b.key));
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// Keys of resources with at least one error.
    pub fn invalid_keys(&self) -> BTreeSet<String> {
        self.errors().filter_map(|d| d.resource.clone()).collect()
    }

    pub fn get(&self, key: &ResourceKey) -> Option<&Manifest> {
        self.manifests.iter().find(|m| &m.key == key)
    }
}
