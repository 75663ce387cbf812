//! The manifest model, typed and validated.
//!
//! Data flow: YAML text → [`yaml`] (a tree that remembers lines) → [`parse`] (typed
//! [`Manifest`]s plus [`Diagnostic`]s) → [`validate`] (the operator's rules, pure) . Every
//! diagnostic names the file, line, field path, what was found and what is allowed. One
//! bad document never hides the others: parsing goes on after an error and collects all.

pub mod cron;
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
        self.resolve(path).1
    }

    /// The field itself or its nearest parent that is written in the file (`""` for the
    /// document), with its position.
    pub fn resolve<'p>(&self, path: &'p str) -> (&'p str, Pos) {
        let mut p = path;
        loop {
            if let Some(pos) = self.0.get(p) {
                return (p, *pos);
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return ("", self.0.get("").copied().unwrap_or_default()),
            }
        }
    }

    /// The position of exactly this field, if it is written.
    pub fn get(&self, path: &str) -> Option<Pos> {
        self.0.get(path).copied()
    }

    /// Every field written, with its position.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Pos)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
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
    /// File path relative to the repository (or folder) root; for a rendered manifest, the
    /// rendered output of its folder ([`RenderedFrom::output_name`]).
    pub file: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub spec: Spec,
    /// Positions in `file`.
    pub locations: Locations,
    /// Set when a tool (kustomize, Helm) wrote the document: where its fields come from.
    pub rendered: Option<Box<RenderedFrom>>,
}

/// Where the fields of a rendered manifest are written in the repository's own files.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RenderedFrom {
    /// The folder that was rendered (a kustomization or a Helm chart), relative to the
    /// repository root.
    pub folder: String,
    /// The tool, as a user would run it (`kustomize`, `helm template`).
    pub tool: String,
    /// The template the document came from (Helm's `# Source:` line).
    pub template: Option<String>,
    /// Fields written with the value they have here in one of the repository's files (a
    /// kustomize base or patch, a Helm values file): field path → file and position.
    pub sources: BTreeMap<String, (String, Pos)>,
}

impl RenderedFrom {
    /// The name diagnostics give the rendered output of a folder.
    pub fn output_name(folder: &str) -> String {
        format!("{folder} (rendered)")
    }

    /// The source file and position of the field, or of its nearest written parent, when
    /// a file of the repository writes it with this value; `None`: the rendered document.
    pub fn locate(&self, locations: &Locations, field: &str) -> Option<(String, Pos)> {
        let (written, _) = locations.resolve(field);
        self.sources.get(written).cloned()
    }

    /// What a diagnostic adds to its message: where the document was rendered from.
    pub fn note(&self, at_source: bool) -> String {
        match (&self.template, at_source) {
            (_, true) => format!("rendered from {} by {}", self.folder, self.tool),
            (Some(t), false) => format!(
                "in the output of {} for {}, from template {t}",
                self.tool, self.folder
            ),
            (None, false) => format!("in the output of {} for {}", self.tool, self.folder),
        }
    }
}

impl Manifest {
    /// A diagnostic about a field of this manifest, located by the field path.
    pub fn diag(&self, severity: Severity, field: &str, message: impl Into<String>) -> Diagnostic {
        let pos = self.locations.find(field);
        let mut d = Diagnostic {
            severity,
            file: self.file.clone(),
            line: pos.line,
            column: pos.col,
            field: field.to_string(),
            resource: Some(self.key.to_string()),
            message: message.into(),
        };
        self.point_at_source(&mut d);
        d
    }

    /// For a rendered manifest: moves a diagnostic about one of its fields (located in the
    /// rendered output) to the source file that writes the field, where one does, and says
    /// where it was rendered from. Nothing for a manifest read from its own file.
    pub fn point_at_source(&self, d: &mut Diagnostic) {
        let Some(r) = &self.rendered else { return };
        let at = r.locate(&self.locations, &d.field);
        d.message = format!("{} ({})", d.message, r.note(at.is_some()));
        if let Some((file, pos)) = at {
            d.file = file;
            d.line = pos.line;
            d.column = pos.col;
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
    /// Some diagnostic's message names a line besides its own (a key given twice names
    /// both). Moving such a set to another line (as `diff::load` does with a document read
    /// on its own) would leave that line behind, so its file is read whole there.
    pub names_other_lines: bool,
    /// The repository's drift ignore rules (`drift.ignore` in `.flink-gitops.yaml`), for
    /// every resource it holds.
    pub drift_ignore: Vec<String>,
}

impl ManifestSet {
    /// Parses and adds one file.
    pub fn add_file(&mut self, file: &str, text: &str) {
        self.files_read += 1;
        parse::parse_file(file, text, self);
    }

    /// Adds everything read from elsewhere (e.g. rendered folders); not yet validated.
    pub fn extend(&mut self, other: ManifestSet) {
        // Destructured so that a new field cannot be forgotten here.
        let ManifestSet {
            manifests,
            diagnostics,
            unreadable_files,
            files_read,
            names_other_lines,
            drift_ignore,
        } = other;
        self.drift_ignore.extend(drift_ignore);
        self.manifests.extend(manifests);
        self.diagnostics.extend(diagnostics);
        self.unreadable_files.extend(unreadable_files);
        self.files_read += files_read;
        self.names_other_lines |= names_other_lines;
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
