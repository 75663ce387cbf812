//! Rendered manifests, as Argo CD and Flux read them: a folder with a kustomization is
//! rendered with `kubectl kustomize`, a folder with a `Chart.yaml` with `helm template`,
//! and what they print is read like any manifest file.
//!
//! *Which folders*: every chart and kustomization below the path read, except a chart
//! inside another chart (a subchart) and a kustomization that another kustomization there
//! uses (a base or component: it is rendered through the overlays, not on its own). Files
//! inside a kustomization or chart folder, and the values files `.flink-gitops.yaml`
//! names, are the tools' input: they are never read as manifests themselves.
//!
//! *How*: the input files of the revision (every kustomization and chart folder of the
//! repository, and the values files) are written to a private temporary folder, and the
//! tool runs there: never in a work tree, so any revision renders the same. The tool gets a
//! deadline ([`RenderTools::timeout`]), a bounded output, an empty environment with an
//! empty PATH (no `git` for kustomize's remote bases, no Helm plugins) and an HTTP(S) proxy
//! that does not exist, so nothing is fetched; only `kubectl kustomize` and `helm template`
//! run (never `helm install`, no dependency update, no kustomize plugins or `--enable-helm`).
//!
//! *Errors*: a folder that does not render is one error for that folder, on its
//! kustomization file or `Chart.yaml`; its output counts as unreadable
//! ([`ManifestSet::unreadable_files`]), so the agent and `plan` hold the resources it held
//! and never take them for removed. Every other folder and file is read as usual. Errors
//! about rendered resources point at the source file that wrote the field ([`origin`]),
//! else at the rendered document.

pub mod origin;
mod workspace;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config;
use crate::flink::spec::{Diagnostic, ManifestSet, RenderedFrom, Severity};
use crate::repo_settings::RepoSettings;
use workspace::Workspace;

/// The tool that renders a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tool {
    Kustomize,
    Helm,
}

impl Tool {
    /// As a user would run it.
    pub fn label(self) -> &'static str {
        match self {
            Tool::Kustomize => "kustomize",
            Tool::Helm => "helm template",
        }
    }
}

/// A folder to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// Relative to the repository root (`""` for the root itself).
    pub dir: String,
    pub tool: Tool,
    /// Its kustomization file or `Chart.yaml`: where an error about the whole folder goes.
    pub file: String,
}

/// Where kubectl and helm are, and how long they may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderTools {
    /// Given by a flag or environment variable; else `kubectl` on PATH, else `installed`.
    pub kubectl: Option<PathBuf>,
    /// As `kubectl`.
    pub helm: Option<PathBuf>,
    /// Where scripts/setup.sh installs both.
    pub installed: PathBuf,
    pub timeout: Duration,
}

impl RenderTools {
    /// The defaults, with the tools scripts/setup.sh installs below `cache_root`.
    pub fn new(cache_root: &Path) -> RenderTools {
        RenderTools {
            kubectl: None,
            helm: None,
            installed: cache_root.join(config::RENDER_TOOLS_SUBDIR),
            timeout: config::DEFAULT_RENDER_TIMEOUT,
        }
    }

    /// The program for a tool, as an absolute path (the tool runs with an empty PATH).
    pub fn program(&self, tool: Tool) -> Result<PathBuf, RenderError> {
        let (given, name) = match tool {
            Tool::Kustomize => (self.kubectl.as_ref(), config::DEFAULT_KUBECTL),
            Tool::Helm => (self.helm.as_ref(), config::DEFAULT_HELM),
        };
        let found = match given {
            // A bare name is looked up on PATH, as a shell would.
            Some(p) if p.components().count() == 1 && !p.is_absolute() => on_path(p.as_os_str()),
            Some(p) => std::path::absolute(p).ok(),
            None => on_path(name.as_ref()).or_else(|| {
                let p = self.installed.join(name);
                p.is_file().then_some(p)
            }),
        };
        found.ok_or(RenderError::NotFound {
            program: given.map_or(name.to_string(), |p| p.display().to_string()),
            flag: name,
            env: match tool {
                Tool::Kustomize => config::ENV_KUBECTL,
                Tool::Helm => config::ENV_HELM,
            },
        })
    }
}

fn on_path(name: &std::ffi::OsStr) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .and_then(|p| std::path::absolute(p).ok())
}

/// Why a folder could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{program} not found: install it (scripts/setup.sh does), put it on PATH or name it with --{flag} or {env}")]
    NotFound {
        program: String,
        flag: &'static str,
        env: &'static str,
    },
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` took longer than {timeout:?} and was stopped")]
    Timeout { command: String, timeout: Duration },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` printed more than {limit} bytes")]
    TooLarge { command: String, limit: usize },
    #[error("`{command}` printed text that is not UTF-8")]
    NotUtf8 { command: String },
    #[error("the files to render add up to more than {limit} bytes")]
    InputTooLarge { limit: u64 },
    #[error("cannot write the files to render: {0}")]
    Io(#[from] std::io::Error),
    #[error("values file {file:?} {reason}")]
    ValuesFile { file: String, reason: &'static str },
    #[error(
        "{} could not be read (see the error there)",
        config::REPO_SETTINGS_FILE
    )]
    Settings,
}

/// The folders of one revision to render, and which files are the tools' input.
#[derive(Debug, Clone)]
pub struct RenderPlan {
    pub folders: Vec<Folder>,
    /// Every kustomization folder of the repository, with the kustomization folders it
    /// uses (resources, bases, components), in the order it names them.
    kustomizations: BTreeMap<String, Vec<String>>,
    charts: BTreeSet<String>,
    /// Values files named in the settings, by chart.
    values: BTreeMap<String, Result<Vec<String>, ValuesProblem>>,
    /// `None` when `.flink-gitops.yaml` cannot be read (its reader reports why): charts
    /// are not rendered then.
    settings: Option<RepoSettings>,
}

/// A values file the settings name that cannot be used ([`RenderError::ValuesFile`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ValuesProblem {
    file: String,
    reason: &'static str,
}

/// The folder a path is in (`""` at the root).
fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

/// Whether `path` is `dir` or inside it.
fn within(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// `a/b/../c` → `a/c`; `None` when it leaves the root.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

fn join(dir: &str, rel: &str) -> String {
    if dir.is_empty() {
        rel.to_string()
    } else {
        format!("{dir}/{rel}")
    }
}

/// The local folders a kustomization names under `resources`, `bases` and `components`.
fn kustomization_uses(dir: &str, text: &str) -> Vec<String> {
    let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(text) else {
        return Vec::new(); // kustomize itself will say what is wrong
    };
    ["resources", "bases", "components"]
        .iter()
        .filter_map(|k| doc.get(*k).and_then(serde_yaml::Value::as_sequence))
        .flatten()
        .filter_map(serde_yaml::Value::as_str)
        .filter(|r| !r.contains("://") && !r.contains('?'))
        .filter_map(|r| normalize(&join(dir, r)))
        .collect()
}

impl RenderPlan {
    /// Finds the folders to render below `subpath`, from every file path of the revision
    /// (`read` gives a file's text: kustomization files are read to tell overlays from
    /// the bases they use). `settings`: the repository's, `None` when they cannot be read.
    pub fn new(
        paths: &[String],
        subpath: Option<&str>,
        settings: Option<RepoSettings>,
        read: &dyn Fn(&str) -> Option<String>,
    ) -> RenderPlan {
        let subpath = subpath
            .map(|p| p.trim_matches('/'))
            .filter(|p| !p.is_empty() && *p != ".")
            .unwrap_or("");
        let mut kustomization_files: BTreeMap<String, String> = BTreeMap::new();
        let mut charts = BTreeSet::new();
        for path in paths {
            let name = path.rsplit('/').next().unwrap_or(path);
            let dir = parent(path);
            if config::KUSTOMIZATION_FILES.contains(&name) {
                // kustomize reads the first of its names it finds, in this order.
                let rank = |f: &str| {
                    config::KUSTOMIZATION_FILES
                        .iter()
                        .position(|n| f.ends_with(n))
                        .unwrap_or(usize::MAX)
                };
                let entry = kustomization_files
                    .entry(dir.to_string())
                    .or_insert_with(|| path.clone());
                if rank(path) < rank(entry) {
                    *entry = path.clone();
                }
            } else if name == config::HELM_CHART_FILE {
                charts.insert(dir.to_string());
            }
        }
        let kustomizations: BTreeMap<String, Vec<String>> = kustomization_files
            .iter()
            .map(|(dir, file)| {
                let uses = read(file)
                    .map(|text| kustomization_uses(dir, &text))
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|d| kustomization_files.contains_key(d))
                    .collect();
                (dir.clone(), uses)
            })
            .collect();
        let in_chart = |dir: &str| charts.iter().any(|c| c != dir && within(dir, c));
        let used: BTreeSet<&String> = kustomizations
            .iter()
            .filter(|(dir, _)| within(dir, subpath))
            .flat_map(|(_, uses)| uses)
            .collect();
        let mut folders = Vec::new();
        for (dir, file) in &kustomization_files {
            if within(dir, subpath) && !used.contains(dir) && !in_chart(dir) {
                folders.push(Folder {
                    dir: dir.clone(),
                    tool: Tool::Kustomize,
                    file: file.clone(),
                });
            }
        }
        for dir in &charts {
            if within(dir, subpath) && !in_chart(dir) && !kustomization_files.contains_key(dir) {
                folders.push(Folder {
                    dir: dir.clone(),
                    tool: Tool::Helm,
                    file: join(dir, config::HELM_CHART_FILE),
                });
            }
        }
        folders.sort_by(|a, b| a.dir.cmp(&b.dir));
        let known: BTreeSet<&str> = paths.iter().map(String::as_str).collect();
        let values = match &settings {
            None => BTreeMap::new(),
            Some(s) => charts
                .iter()
                .map(|dir| {
                    let files: Result<Vec<String>, ValuesProblem> = s
                        .chart(dir)
                        .values_files
                        .iter()
                        .map(|v| {
                            let err = |reason| ValuesProblem {
                                file: v.clone(),
                                reason,
                            };
                            let path = normalize(&join(dir, v))
                                .ok_or_else(|| err("is outside the repository"))?;
                            if known.contains(path.as_str()) {
                                Ok(path)
                            } else {
                                Err(err("does not exist at this revision"))
                            }
                        })
                        .collect();
                    (dir.clone(), files)
                })
                .collect(),
        };
        RenderPlan {
            folders,
            kustomizations,
            charts,
            values,
            settings,
        }
    }

    /// Whether a file is the tools' input (inside a kustomization or chart folder, or a
    /// values file): such a file is not read as a manifest itself.
    pub fn owns(&self, path: &str) -> bool {
        self.kustomizations.keys().any(|d| within(path, d))
            || self.charts.iter().any(|d| within(path, d))
            || self
                .values
                .values()
                .flatten()
                .any(|files| files.iter().any(|f| f == path))
    }

    /// The kustomization folders that make `dir`'s output: itself first, then what it
    /// uses, breadth first (the order kustomize's patches apply in, nearest first).
    fn kustomize_closure(&self, dir: &str) -> Vec<String> {
        let mut order = vec![dir.to_string()];
        let mut i = 0;
        while let Some(d) = order.get(i).cloned() {
            for u in self.kustomizations.get(&d).into_iter().flatten() {
                if !order.contains(u) {
                    order.push(u.clone());
                }
            }
            i += 1;
        }
        order
    }
}

/// Renders the plan's folders: the manifests they give (not yet validated), with a
/// diagnostic for each folder that did not render. `paths` are every file of the
/// revision; `read` gives one's bytes.
pub fn render(
    plan: &RenderPlan,
    paths: &[String],
    read: &dyn Fn(&str) -> std::io::Result<Vec<u8>>,
    tools: &RenderTools,
) -> ManifestSet {
    let mut set = ManifestSet::default();
    if plan.folders.is_empty() {
        return set;
    }
    let workspace = Workspace::create().and_then(|ws| {
        ws.write_inputs(paths.iter().filter(|p| plan.owns(p)), read)?;
        Ok(ws)
    });
    for folder in &plan.folders {
        let started = Instant::now();
        let result = match &workspace {
            Ok(ws) => render_folder(plan, folder, ws, tools),
            Err(e) => Err(RenderError::Io(std::io::Error::new(
                e.kind(),
                e.to_string(),
            ))),
        };
        tracing::debug!(folder = %folder.dir, tool = folder.tool.label(), elapsed = ?started.elapsed(), ok = result.is_ok(), "rendered");
        match result {
            Ok(part) => set.extend(part),
            Err(e) => {
                // Info, not a warning: the error is a diagnostic the caller reports.
                tracing::info!(folder = %folder.dir, error = %e, "render failed");
                set.files_read += 1;
                set.unreadable_files
                    .insert(RenderedFrom::output_name(display_dir(&folder.dir)));
                set.diagnostics.push(Diagnostic {
                    severity: Severity::Error,
                    file: folder.file.clone(),
                    line: 1,
                    column: 1,
                    field: String::new(),
                    resource: None,
                    message: format!(
                        "cannot render {}: {e}; nothing rendered from it is read, and the resources it gave are kept as they are until it renders again",
                        display_dir(&folder.dir),
                    ),
                });
            }
        }
    }
    set
}

fn display_dir(dir: &str) -> &str {
    if dir.is_empty() {
        "."
    } else {
        dir
    }
}

fn render_folder(
    plan: &RenderPlan,
    folder: &Folder,
    ws: &Workspace,
    tools: &RenderTools,
) -> Result<ManifestSet, RenderError> {
    let program = tools.program(folder.tool)?;
    let target = ws.tree().join(&folder.dir);
    let mut args: Vec<OsString> = Vec::new();
    let mut values = Vec::new();
    let mut namespace = None;
    // The command as a user would type it in the repository, for messages.
    let command;
    match folder.tool {
        Tool::Kustomize => {
            args.push("kustomize".into());
            args.push(target.into());
            command = format!("kubectl kustomize {}", display_dir(&folder.dir));
        }
        Tool::Helm => {
            let settings = plan.settings.as_ref().ok_or(RenderError::Settings)?;
            let release = settings.chart(&folder.dir);
            let files = match plan.values.get(&folder.dir) {
                Some(Err(e)) => {
                    return Err(RenderError::ValuesFile {
                        file: e.file.clone(),
                        reason: e.reason,
                    })
                }
                Some(Ok(files)) => files.clone(),
                None => Vec::new(),
            };
            args.extend(
                [
                    "template".into(),
                    release.release_name(&folder.dir).into(),
                    target.into(),
                    "--namespace".into(),
                    release.namespace().into(),
                ]
                .into_iter()
                .chain(files.iter().flat_map(|f| {
                    [
                        OsString::from("--values"),
                        ws.tree().join(f).into_os_string(),
                    ]
                })),
            );
            command = format!(
                "helm template {} {} --namespace {}{}",
                release.release_name(&folder.dir),
                display_dir(&folder.dir),
                release.namespace(),
                files
                    .iter()
                    .map(|f| format!(" --values {f}"))
                    .collect::<String>()
            );
            // Helm reads the chart's own values.yaml first, then the files in order.
            let own = join(&folder.dir, "values.yaml");
            values = std::iter::once(own)
                .chain(files)
                .filter_map(|f| {
                    Some((f.clone(), std::fs::read_to_string(ws.tree().join(&f)).ok()?))
                })
                .collect();
            namespace = Some(release.namespace().to_string());
        }
    }
    let text = ws.run(&program, &args, &command, tools.timeout)?;
    let mut set = ManifestSet::default();
    let label = display_dir(&folder.dir);
    let output = RenderedFrom::output_name(label);
    set.add_file(&output, &text);
    if let Some(ns) = namespace {
        release_namespace(&mut set, &ns);
    }
    let index = origin::index_output(&text);
    match folder.tool {
        Tool::Kustomize => {
            let mut files = Vec::new();
            let mut seen = BTreeSet::new();
            for dir in plan.kustomize_closure(&folder.dir) {
                let mut here: Vec<(String, String)> = ws
                    .files_in(&dir)
                    .into_iter()
                    .filter(|p| {
                        crate::git::source::is_manifest_name(p.rsplit('/').next().unwrap_or(p))
                    })
                    .filter(|p| seen.insert(p.clone()))
                    .filter_map(|p| {
                        Some((p.clone(), std::fs::read_to_string(ws.tree().join(&p)).ok()?))
                    })
                    .collect();
                here.sort();
                files.extend(here);
            }
            let sources = origin::KustomizeSources::new(&files);
            for m in &mut set.manifests {
                sources.attach(m, &index, label);
            }
        }
        Tool::Helm => {
            let values = origin::HelmValues::new(&values);
            for m in &mut set.manifests {
                let template = origin::helm_template_above(&text, m.locations.find("").line);
                values.attach(m, &index, label, template);
            }
        }
    }
    // Diagnostics from reading the output: at the source where exactly that field is
    // written with that value, else at the output; each says where it was rendered from.
    let ManifestSet {
        manifests,
        diagnostics,
        ..
    } = &mut set;
    for d in diagnostics.iter_mut() {
        let m = d
            .resource
            .as_ref()
            .and_then(|r| manifests.iter().find(|m| &m.key.to_string() == r));
        match m.and_then(|m| m.rendered.as_ref()) {
            Some(from) => {
                let at = from.sources.get(&d.field);
                if let Some((file, pos)) = at {
                    d.file = file.clone();
                    d.line = pos.line;
                    d.column = pos.col;
                }
                d.message = format!("{} ({})", d.message, from.note(at.is_some()));
            }
            None => {
                let from = RenderedFrom {
                    folder: label.to_string(),
                    tool: folder.tool.label().to_string(),
                    template: match folder.tool {
                        Tool::Helm => origin::helm_template_above(&text, d.line),
                        Tool::Kustomize => None,
                    },
                    ..RenderedFrom::default()
                };
                d.message = format!("{} ({})", d.message, from.note(false));
            }
        }
    }
    Ok(set)
}

/// Helm renders no namespace where a template writes none; Argo CD and Flux apply such
/// resources in the release namespace, so they are read as being there.
fn release_namespace(set: &mut ManifestSet, namespace: &str) {
    let mut renamed = BTreeMap::new();
    for m in &mut set.manifests {
        if !m.locations.contains("metadata.namespace") && m.key.namespace != namespace {
            let old = m.key.to_string();
            m.key.namespace = namespace.to_string();
            renamed.insert(old, m.key.to_string());
        }
    }
    for d in &mut set.diagnostics {
        if let Some(new) = d.resource.as_ref().and_then(|r| renamed.get(r)) {
            d.resource = Some(new.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn settings(text: &str) -> RepoSettings {
        RepoSettings::parse(config::REPO_SETTINGS_FILE, text.as_bytes())
            .expect("settings")
            .0
    }

    #[test]
    fn overlays_are_rendered_and_their_bases_only_through_them() {
        let files = paths(&[
            "apps/plain.yaml",
            "base/kustomization.yaml",
            "base/app.yaml",
            "overlays/prod/kustomization.yaml",
            "overlays/prod/patch.yaml",
            "overlays/staging/kustomization.yml",
            "overlays/staging/Kustomization",
            "charts/a/Chart.yaml",
            "charts/a/values.yaml",
            "charts/a/charts/sub/Chart.yaml",
            "envs/a-prod.yaml",
        ]);
        let read = |p: &str| {
            Some(match p {
                "overlays/prod/kustomization.yaml" => {
                    "resources:\n- ../../base\n- https://example.com/x.yaml\n".to_string()
                }
                "overlays/staging/kustomization.yml" => "resources: [../../base/]\n".to_string(),
                _ => String::new(),
            })
        };
        let values = settings("helm:\n  charts/a:\n    valuesFiles: [../../envs/a-prod.yaml]\n");
        let plan = RenderPlan::new(&files, None, Some(values), &read);
        let got: Vec<(&str, Tool, &str)> = plan
            .folders
            .iter()
            .map(|f| (f.dir.as_str(), f.tool, f.file.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("charts/a", Tool::Helm, "charts/a/Chart.yaml"),
                (
                    "overlays/prod",
                    Tool::Kustomize,
                    "overlays/prod/kustomization.yaml"
                ),
                (
                    "overlays/staging",
                    Tool::Kustomize,
                    "overlays/staging/kustomization.yml"
                ),
            ]
        );
        assert!(!plan.owns("apps/plain.yaml"));
        for p in [
            "base/app.yaml",
            "overlays/prod/patch.yaml",
            "charts/a/values.yaml",
            "envs/a-prod.yaml",
        ] {
            assert!(plan.owns(p), "{p}");
        }
        assert_eq!(
            plan.kustomize_closure("overlays/prod"),
            vec!["overlays/prod", "base"]
        );
        // Below a path: the base alone is rendered when no overlay there uses it.
        let plan = RenderPlan::new(&files, Some("base/"), Some(RepoSettings::default()), &read);
        assert_eq!(
            plan.folders
                .iter()
                .map(|f| f.dir.as_str())
                .collect::<Vec<_>>(),
            vec!["base"]
        );
    }

    #[test]
    fn values_files_outside_the_repository_or_missing_fail_their_chart() {
        let files = paths(&["c/Chart.yaml", "c/values.yaml"]);
        let outside = settings("helm:\n  c:\n    valuesFiles: [../../etc/passwd]\n");
        let plan = RenderPlan::new(&files, None, Some(outside), &|_| None);
        assert!(
            matches!(plan.values.get("c"), Some(Err(e)) if e.reason == "is outside the repository")
        );
        let missing = settings("helm:\n  c:\n    valuesFiles: [prod.yaml]\n");
        let plan = RenderPlan::new(&files, None, Some(missing), &|_| None);
        assert!(
            matches!(plan.values.get("c"), Some(Err(e)) if e.reason == "does not exist at this revision")
        );
    }

    fn script(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("tool");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }

    fn render_with(body: &str, timeout: Duration) -> ManifestSet {
        render_files(&["k/kustomization.yaml"], body, timeout)
    }

    fn render_files(list: &[&str], body: &str, timeout: Duration) -> ManifestSet {
        let bin = tempfile::tempdir().expect("tempdir");
        let tools = RenderTools {
            kubectl: Some(script(bin.path(), body)),
            helm: None,
            installed: bin.path().to_path_buf(),
            timeout,
        };
        let files = paths(list);
        let plan = RenderPlan::new(&files, None, Some(RepoSettings::default()), &|_| None);
        render(&plan, &files, &|_| Ok(b"resources: []\n".to_vec()), &tools)
    }

    #[test]
    fn a_kustomization_at_the_root_renders_the_whole_repository() {
        let files = paths(&["kustomization.yaml", "apps/a.yaml"]);
        let plan = RenderPlan::new(&files, None, Some(RepoSettings::default()), &|_| None);
        assert!(plan.owns("apps/a.yaml"));
        let set = render_files(
            &["kustomization.yaml", "apps/a.yaml"],
            "printf 'apiVersion: flink.apache.org/v1beta1\\nkind: FlinkDeployment\\nmetadata:\\n  name: a\\nspec:\\n  job: {parallelizm: 1}\\n'",
            Duration::from_secs(20),
        );
        assert_eq!(set.manifests.len(), 1, "{:?}", set.diagnostics);
        assert_eq!(set.manifests[0].file, ". (rendered)");
        let d = set
            .diagnostics
            .iter()
            .find(|d| d.field == "spec.job.parallelizm")
            .expect("the unknown field");
        assert_eq!((d.file.as_str(), d.line), (". (rendered)", 6));
        assert!(
            d.message.ends_with("(in the output of kustomize for .)"),
            "{}",
            d.message
        );
    }

    #[test]
    fn a_tool_past_its_deadline_is_stopped_and_its_folder_held() {
        let started = Instant::now();
        let set = render_with("/bin/sleep 30", Duration::from_millis(300));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(set.diagnostics.len(), 1, "{:?}", set.diagnostics);
        let d = &set.diagnostics[0];
        assert_eq!(d.file, "k/kustomization.yaml");
        assert!(
            d.message.contains("took longer than 300ms"),
            "{}",
            d.message
        );
        assert!(set.unreadable_files.contains("k (rendered)"));
    }

    #[test]
    fn a_tool_runs_in_a_copy_with_nothing_of_the_agents_environment() {
        // The tool sees its input in a temporary copy, an empty PATH and a dead proxy.
        let set = render_with(
            "test -f \"$2/kustomization.yaml\" || exit 3\ncase \"$PWD\" in */tree) ;; *) exit 4 ;; esac\n[ \"$HTTPS_PROXY\" = http://127.0.0.1:9 ] || exit 5\ncommand -v git >/dev/null && exit 6\nprintf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: c\\n'",
            Duration::from_secs(20),
        );
        assert!(set.unreadable_files.is_empty(), "{:?}", set.diagnostics);
        assert_eq!(set.files_read, 1);
        assert!(
            set.diagnostics
                .iter()
                .all(|d| d.severity == Severity::Notice),
            "{:?}",
            set.diagnostics
        );
        // A failing tool's message names files as the repository does.
        let set = render_with(
            "echo \"error: $2/kustomization.yaml: bad\" >&2; exit 1",
            Duration::from_secs(20),
        );
        let d = &set.diagnostics[0];
        assert!(
            d.message.contains("error: k/kustomization.yaml: bad"),
            "{}",
            d.message
        );
        assert!(!d.message.contains("flink-gitops-render-"), "{}", d.message);
    }
}
