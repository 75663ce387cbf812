//! `.flink-gitops.yaml`: the settings a repository gives about itself. The one typed reader
//! of that file; pure (bytes in, settings and diagnostics out): where the file is found and
//! how it is read is [`crate::git::repo_settings`]'s business.
//!
//! ```yaml
//! operatorVersion: "1.13"      # the operator release whose validation rules apply
//! stricterRules: warn          # error (default) or warn: flink-gitops' own, stricter rules
//! helm:
//!   charts/analytics:          # a chart folder, relative to the folder of this file
//!     releaseName: analytics   # default: the folder's name
//!     namespace: streaming     # default: "default"; also the namespace of every rendered
//!                              # resource that names none, as Argo CD and Flux apply them
//!     valuesFiles:             # relative to the chart folder, applied in this order
//!       - values-prod.yaml
//! drift:
//!   ignore:                    # spec paths whose live drift is neither reported nor healed,
//!     - flinkConfiguration.pipeline.jobvertex-parallelism-overrides   # for every resource
//! ```
//!
//! Keys are camelCase like the manifests'. A key flink-gitops does not know is a warning
//! that names it and the known keys (with a "did you mean" for a near miss such as
//! `operatorVerison`), never an error: Argo CD and Flux users keep keys of their own tools
//! here, and a newer agent may know more. A value that cannot be read is an error at its
//! line; then none of the file's settings are used (validation follows the defaults, and
//! Helm charts are not rendered, so their resources are held rather than read with the
//! wrong release). The file is small and untrusted (`plan` reads it from pull requests): at
//! most [`config::REPO_SETTINGS_MAX_BYTES`] are read.
//!
//! To add a setting: a field in [`RepoSettings`], its name in [`KEYS`], a row in the README.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use crate::config;
use crate::flink::spec::parse::nearest;
use crate::flink::spec::validate::{self, StricterRules};
use crate::flink::spec::yaml::{self, Node, Value};
use crate::flink::spec::{Diagnostic, OperatorVersion, Severity};

/// The keys of the file.
pub const KEYS: &[&str] = &["operatorVersion", "stricterRules", "helm", "drift"];
/// The keys under `drift`.
pub const DRIFT_KEYS: &[&str] = &["ignore"];
/// The keys of one chart under `helm` (`valueFiles` is Argo CD's spelling of `valuesFiles`).
pub const HELM_KEYS: &[&str] = &["releaseName", "namespace", "valuesFiles", "valueFiles"];

/// The settings a repository gives itself in [`config::REPO_SETTINGS_FILE`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RepoSettings {
    /// `operatorVersion`: the Flink Kubernetes Operator release whose validation rules
    /// apply, such as `"1.13"`. The `--operator-version` flag wins over it.
    pub operator_version: Option<OperatorVersion>,
    /// `stricterRules`: `error` (default) or `warn`, for flink-gitops' own rules that are
    /// stricter than the operator's.
    pub stricter_rules: Option<StricterRules>,
    /// `helm`: how each Helm chart is rendered, by chart folder (relative to the folder that
    /// holds the file).
    #[serde(deserialize_with = "charts")]
    pub helm: BTreeMap<String, HelmRelease>,
    /// `drift`: how the agent and `diff` judge live drift for the whole repository.
    #[serde(deserialize_with = "null_as_default")]
    pub drift: DriftRepoSettings,
}

/// `drift` in [`config::REPO_SETTINGS_FILE`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DriftRepoSettings {
    /// `ignore`: spec paths (`job.parallelism`, `flinkConfiguration.<key>`, ...) whose live
    /// drift is neither reported nor healed on any resource, like Argo CD's
    /// `ignoreDifferences` and Flux's `driftIgnoreRules`; a resource adds its own with the
    /// annotation [`config::ANNOTATION_DRIFT_IGNORE`].
    #[serde(deserialize_with = "null_as_default")]
    pub ignore: Vec<String>,
}

/// How one chart is rendered (`helm template`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HelmRelease {
    /// `helm template <releaseName>`; default: the chart folder's name.
    pub release_name: Option<String>,
    /// `--namespace`; default [`config::DEFAULT_NAMESPACE`].
    pub namespace: Option<String>,
    /// `--values` files, relative to the chart folder, in order (Argo CD spells it
    /// `valueFiles`; both are read).
    #[serde(alias = "valueFiles", deserialize_with = "null_as_default")]
    pub values_files: Vec<String>,
}

/// `key:` with nothing after it is the same as no key.
fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `helm:` and `helm: {chart:}` with nothing after them: no charts, and a chart with the
/// defaults.
fn charts<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, HelmRelease>, D::Error> {
    let found: Option<BTreeMap<String, Option<HelmRelease>>> = Option::deserialize(d)?;
    Ok(found
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// Why `.flink-gitops.yaml` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RepoSettingsError {
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: String,
        line: u32,
        column: u32,
        message: String,
    },
    #[error("{file} is larger than {max} bytes, the most a settings file may hold")]
    TooLarge { file: String, max: usize },
    #[error("cannot read {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

impl RepoSettingsError {
    /// The error as a diagnostic about the settings file, for `validate`, `plan` and the
    /// agent's log.
    pub fn to_diagnostic(&self) -> Diagnostic {
        let (file, line, column, message) = match self {
            RepoSettingsError::Invalid {
                file,
                line,
                column,
                message,
            } => (file.clone(), *line, *column, message.clone()),
            RepoSettingsError::TooLarge { file, .. } | RepoSettingsError::Io { file, .. } => {
                (file.clone(), 1, 1, self.to_string())
            }
        };
        Diagnostic {
            severity: Severity::Error,
            file,
            line,
            column,
            field: String::new(),
            resource: None,
            message: format!(
                "{message} (none of this file's settings are used: validation follows the defaults, and Helm charts are not rendered until it is fixed)"
            ),
        }
    }
}

/// What reading the settings file gave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsRead {
    /// The settings; the defaults when there is no file or it cannot be read.
    pub settings: RepoSettings,
    /// The file exists but cannot be read: its Helm settings are unknown, so charts are not
    /// rendered (their resources are held).
    pub unreadable: bool,
    /// About the file: the error that made it unreadable, or a warning per unknown key.
    pub diagnostics: Vec<Diagnostic>,
}

impl SettingsRead {
    /// The settings for rendering: `None` when the file cannot be read.
    pub fn for_rendering(&self) -> Option<&RepoSettings> {
        (!self.unreadable).then_some(&self.settings)
    }

    /// An error while reading the file (before parsing): the defaults, and the error.
    pub fn failed(error: &RepoSettingsError) -> SettingsRead {
        // Not a warning here: the error is a diagnostic every caller reports.
        tracing::debug!(%error, "repository settings not used");
        SettingsRead {
            settings: RepoSettings::default(),
            unreadable: true,
            diagnostics: vec![error.to_diagnostic()],
        }
    }
}

/// Reads settings that may be absent (`None` bytes); `file` names the file in diagnostics.
pub fn read(file: &str, bytes: Option<&[u8]>) -> SettingsRead {
    match bytes.map(|b| RepoSettings::parse(file, b)) {
        None => SettingsRead::default(),
        Some(Ok((settings, warnings))) => SettingsRead {
            settings,
            unreadable: false,
            diagnostics: warnings,
        },
        Some(Err(e)) => SettingsRead::failed(&e),
    }
}

impl RepoSettings {
    /// Reads the file's bytes; `file` names it in errors and warnings. A file with only
    /// comments (or nothing) gives the defaults. Returns the settings and a warning for each
    /// key flink-gitops does not know.
    pub fn parse(
        file: &str,
        bytes: &[u8],
    ) -> Result<(RepoSettings, Vec<Diagnostic>), RepoSettingsError> {
        if bytes.len() > config::REPO_SETTINGS_MAX_BYTES {
            return Err(RepoSettingsError::TooLarge {
                file: file.to_string(),
                max: config::REPO_SETTINGS_MAX_BYTES,
            });
        }
        let invalid = |line: u32, column: u32, message: String| RepoSettingsError::Invalid {
            file: file.to_string(),
            line,
            column,
            message,
        };
        let text = std::str::from_utf8(bytes)
            .map_err(|_| invalid(1, 1, "the file is not UTF-8 text".to_string()))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let empty = text.lines().all(|l| {
            let t = l.trim();
            t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
        });
        if empty {
            return Ok((RepoSettings::default(), Vec::new()));
        }
        let settings: RepoSettings = serde_yaml::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line() as u32, l.column() as u32))
                .unwrap_or((1, 1));
            // The place is in the diagnostic's own file:line:column.
            let message = e.to_string();
            let place = format!(" at line {line} column {column}");
            let message = message.strip_suffix(&place).unwrap_or(&message);
            invalid(line, column, message.to_string())
        })?;
        Ok((settings, unknown_keys(file, text)))
    }

    /// The validation options these settings give; `flag` (the `--operator-version` flag or
    /// its environment variable) wins over `operatorVersion`.
    pub fn validation_options(&self, flag: Option<OperatorVersion>) -> validate::Options {
        let operator_version = flag
            .or(self.operator_version)
            .unwrap_or(config::DEFAULT_OPERATOR_VERSION);
        tracing::debug!(
            %operator_version,
            from = if flag.is_some() { "flag" } else if self.operator_version.is_some() { config::REPO_SETTINGS_FILE } else { "default" },
            "operator rules"
        );
        validate::Options {
            operator_version,
            stricter_rules: self.stricter_rules.unwrap_or_default(),
            ..validate::Options::default()
        }
    }

    /// The settings of the chart in `folder` (defaults when the file names none).
    pub fn chart(&self, folder: &str) -> HelmRelease {
        let want = bare(folder);
        self.helm
            .iter()
            .find(|(k, _)| bare(k) == want)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// The settings as seen from `folder`, a folder below the one that holds the file
    /// (relative to it): chart folders named relative to `folder`, those outside it left
    /// out. For `validate PATH` when the nearest file is above PATH.
    pub fn below(&self, folder: &str) -> RepoSettings {
        let folder = bare(folder);
        if folder.is_empty() {
            return self.clone();
        }
        RepoSettings {
            helm: self
                .helm
                .iter()
                .filter_map(|(k, v)| {
                    let k = bare(k);
                    let rest = k.strip_prefix(&folder)?;
                    match rest.strip_prefix('/') {
                        Some(r) => Some((r.to_string(), v.clone())),
                        None if rest.is_empty() => Some((String::new(), v.clone())),
                        None => None,
                    }
                })
                .collect(),
            ..self.clone()
        }
    }
}

impl HelmRelease {
    /// The release name for the chart in `folder`.
    pub fn release_name(&self, folder: &str) -> String {
        self.release_name.clone().unwrap_or_else(|| {
            folder
                .trim_matches('/')
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .unwrap_or("release")
                .to_ascii_lowercase()
        })
    }

    pub fn namespace(&self) -> &str {
        self.namespace
            .as_deref()
            .unwrap_or(config::DEFAULT_NAMESPACE)
    }
}

/// A folder as the settings name it: no `./`, no slashes at either end.
fn bare(folder: &str) -> String {
    let f = folder.trim_matches('/');
    let f = f.strip_prefix("./").unwrap_or(f);
    if f == "." { "" } else { f }.trim_matches('/').to_string()
}

/// A warning for each key flink-gitops does not know, at its line: at the top and in each
/// chart under `helm`. (serde ignores such keys; this finds where they stand.)
fn unknown_keys(file: &str, text: &str) -> Vec<Diagnostic> {
    let Ok(docs) = yaml::parse_documents(text) else {
        return Vec::new(); // serde read it; nothing more to say
    };
    let mut out = Vec::new();
    let Some(root) = docs.first().map(|d| &d.root) else {
        return out;
    };
    let warn = |out: &mut Vec<Diagnostic>, key: &Node, field: String, known: &[&str]| {
        let name = key.as_str().unwrap_or_default();
        let near = nearest(name, known)
            .map(|n| format!(" (did you mean {n:?}?)"))
            .unwrap_or_default();
        out.push(Diagnostic {
            severity: Severity::Warning,
            file: file.to_string(),
            line: key.pos.line,
            column: key.pos.col,
            field,
            resource: None,
            message: format!(
                "unknown key {name:?}{near}, ignored; flink-gitops reads {} here",
                known.join(", ")
            ),
        });
    };
    for (key, value) in entries(root) {
        let Some(name) = key.as_str() else { continue };
        if !KEYS.contains(&name) {
            warn(&mut out, key, name.to_string(), KEYS);
        } else if name == "drift" {
            for (k, _) in entries(value) {
                if !k.as_str().is_some_and(|k| DRIFT_KEYS.contains(&k)) {
                    let field = format!("drift.{}", k.as_str().unwrap_or_default());
                    warn(&mut out, k, field, DRIFT_KEYS);
                }
            }
        } else if name == "helm" {
            for (chart, settings) in entries(value) {
                let chart = chart.as_str().unwrap_or_default();
                for (k, _) in entries(settings) {
                    if !k.as_str().is_some_and(|k| HELM_KEYS.contains(&k)) {
                        let field = format!("helm[{chart}].{}", k.as_str().unwrap_or_default());
                        warn(&mut out, k, field, HELM_KEYS);
                    }
                }
            }
        }
    }
    out
}

fn entries(node: &Node) -> &[(Node, Node)] {
    match &node.value {
        Value::Map(entries) => entries,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(RepoSettings, Vec<Diagnostic>), RepoSettingsError> {
        RepoSettings::parse(".flink-gitops.yaml", text.as_bytes())
    }

    fn settings(text: &str) -> RepoSettings {
        let (s, warnings) = parse(text).expect("valid");
        assert!(warnings.is_empty(), "{warnings:?}");
        s
    }

    #[test]
    fn keys_and_defaults() {
        assert_eq!(
            settings("operatorVersion: \"1.10\"\nstricterRules: warn\n"),
            RepoSettings {
                operator_version: Some(OperatorVersion::V1_10),
                stricter_rules: Some(StricterRules::Warn),
                helm: BTreeMap::new(),
                drift: DriftRepoSettings::default(),
            }
        );
        assert_eq!(
            settings("drift:\n  ignore:\n    - job.parallelism\n    - flinkConfiguration.a\n")
                .drift
                .ignore,
            vec![
                "job.parallelism".to_string(),
                "flinkConfiguration.a".to_string()
            ]
        );
        let (_, warnings) = parse("drift:\n  ignores: [x]\n").expect("valid");
        assert!(
            warnings[0].message.contains("did you mean \"ignore\""),
            "{warnings:?}"
        );
        for empty in [
            "",
            "# nothing yet\n",
            "---\n",
            "\u{feff}# bom\n",
            "{}\n",
            "helm:\n",
            "drift:\n",
        ] {
            assert_eq!(settings(empty), RepoSettings::default(), "{empty:?}");
        }
        let o = RepoSettings::default().validation_options(None);
        assert_eq!(o.operator_version, config::DEFAULT_OPERATOR_VERSION);
        assert_eq!(o.stricter_rules, StricterRules::Error);
    }

    #[test]
    fn the_flag_wins_over_the_file() {
        let c = settings("operatorVersion: \"1.12.1\"\n");
        assert_eq!(
            c.validation_options(None).operator_version,
            OperatorVersion::V1_12
        );
        assert_eq!(
            c.validation_options(Some(OperatorVersion::V1_14))
                .operator_version,
            OperatorVersion::V1_14
        );
    }

    #[test]
    fn charts_with_their_defaults() {
        let s = settings(
            "operatorVersion: \"1.12\"\nhelm:\n  charts/analytics/:\n    releaseName: analytics\n    namespace: streaming\n    valuesFiles: [values.yaml, values-prod.yaml]\n  charts/other:\n    valueFiles: [a.yaml]\n  ./charts/bare:\n",
        );
        let a = s.chart("charts/analytics/");
        assert_eq!(a.release_name("charts/analytics"), "analytics");
        assert_eq!(a.namespace(), "streaming");
        assert_eq!(a.values_files, vec!["values.yaml", "values-prod.yaml"]);
        // Argo CD's spelling; defaults for what is not set.
        let o = s.chart("charts/other");
        assert_eq!(o.values_files, vec!["a.yaml"]);
        assert_eq!(o.release_name("charts/other"), "other");
        assert_eq!(o.namespace(), "default");
        // A chart named with nothing after it, and one the file does not name: defaults.
        assert_eq!(s.chart("charts/bare"), HelmRelease::default());
        assert_eq!(s.chart("x/Y").release_name("x/Y"), "y");
    }

    #[test]
    fn below_a_folder_charts_are_named_from_there() {
        let s = settings(
            "helm:\n  teams/a/charts/x:\n    namespace: a\n  teams/a:\n    namespace: top\n  teams/ab/c:\n    namespace: no\n",
        );
        let b = s.below("teams/a/");
        assert_eq!(b.chart("charts/x").namespace(), "a");
        assert_eq!(b.chart("").namespace(), "top");
        assert_eq!(b.helm.len(), 2, "{b:?}");
        assert_eq!(s.below("."), s);
    }

    /// Unknown keys: a warning each, at its line, naming the known keys; the rest is read.
    #[test]
    fn unknown_keys_are_warnings_that_name_the_known_ones() {
        let (s, w) = parse(
            "operatorVerison: \"1.12\"\nstricterRules: warn\nargocd: {sync: auto}\nhelm:\n  charts/a:\n    namespace: a\n    releseName: x\n",
        )
        .expect("valid");
        assert_eq!(s.operator_version, None);
        assert_eq!(s.stricter_rules, Some(StricterRules::Warn));
        assert_eq!(s.chart("charts/a").namespace(), "a");
        let got: Vec<(u32, &str, &str)> = w
            .iter()
            .map(|d| (d.line, d.field.as_str(), d.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    1,
                    "operatorVerison",
                    "unknown key \"operatorVerison\" (did you mean \"operatorVersion\"?), ignored; flink-gitops reads operatorVersion, stricterRules, helm, drift here"
                ),
                (
                    3,
                    "argocd",
                    "unknown key \"argocd\", ignored; flink-gitops reads operatorVersion, stricterRules, helm, drift here"
                ),
                (
                    7,
                    "helm[charts/a].releseName",
                    "unknown key \"releseName\" (did you mean \"releaseName\"?), ignored; flink-gitops reads releaseName, namespace, valuesFiles, valueFiles here"
                ),
            ]
        );
        assert!(w.iter().all(|d| d.severity == Severity::Warning
            && d.file == ".flink-gitops.yaml"
            && d.resource.is_none()));
        // A key in another case is a near miss too.
        let (_, w) = parse("operatorversion: \"1.13\"\n").expect("valid");
        assert!(
            w[0].message.contains("did you mean \"operatorVersion\""),
            "{w:?}"
        );
    }

    /// Each row: a mistake, the line reported, and part of the message.
    #[test]
    fn mistakes_name_their_place() {
        for (text, line, part) in [
            (
                "operatorVersion: 1.10\n",
                1,
                "write the release in quotes, such as \"1.10\"",
            ),
            (
                "# settings\noperatorVersion: \"1.9\"\n",
                2,
                "allowed: 1.10, 1.11, 1.12, 1.13, 1.14, 1.15",
            ),
            (
                "stricterRules: off\n",
                1,
                "unknown variant `off`, expected `error` or `warn`",
            ),
            ("- operatorVersion\n", 1, "expected struct RepoSettings"),
            ("helm:\n  charts/a:\n    valuesFiles: 3\n", 3, "valuesFiles"),
            ("helm: [a]\n", 1, "expected a map"),
        ] {
            match parse(text) {
                Err(RepoSettingsError::Invalid {
                    line: l, message, ..
                }) => {
                    assert_eq!(l, line, "{text:?}: {message}");
                    assert!(message.contains(part), "{text:?}: {message}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let big = "#".repeat(config::REPO_SETTINGS_MAX_BYTES + 1);
        assert!(matches!(
            parse(&big),
            Err(RepoSettingsError::TooLarge { .. })
        ));
        let r = read("x.yaml", Some(b"operatorVersion: [1]\n"));
        assert_eq!(r.settings, RepoSettings::default());
        assert!(r.unreadable && r.for_rendering().is_none());
        let [d] = &r.diagnostics[..] else {
            panic!("{r:?}")
        };
        assert_eq!((d.file.as_str(), d.line), ("x.yaml", 1));
        assert!(d.message.contains("validation follows the defaults"));
        assert_eq!(read("x.yaml", None), SettingsRead::default());
    }
}
