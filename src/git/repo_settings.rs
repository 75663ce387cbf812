//! `.flink-gitops.yaml`: settings a repository gives about itself, at its root.
//!
//! The one reader of that file. It is typed, and tolerant: a key it does not know is left
//! alone (a newer agent may know it), so one file can serve agents of several versions.
//!
//! ```yaml
//! helm:
//!   charts/analytics:          # a chart folder, relative to the repository root
//!     releaseName: analytics   # default: the folder's name
//!     namespace: streaming     # default: "default"; also the namespace of every rendered
//!                              # resource that names none, as Argo CD and Flux apply them
//!     valuesFiles:             # relative to the chart folder, applied in this order
//!       - values.yaml
//!       - values-prod.yaml
//! ```
//!
//! Pure: text in, settings or an error with its line out.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config;

/// Settings read from [`config::REPO_SETTINGS_FILE`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RepoSettings {
    /// How each Helm chart is rendered, by chart folder (relative to the repository root).
    pub helm: BTreeMap<String, HelmRelease>,
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
    #[serde(alias = "valueFiles")]
    pub values_files: Vec<String>,
}

/// `.flink-gitops.yaml` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RepoSettingsError {
    /// 1-based line, when the YAML reader knows it.
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl RepoSettings {
    /// Reads the file's text. An empty (or comment-only) file is the defaults.
    pub fn parse(text: &str) -> Result<RepoSettings, RepoSettingsError> {
        if text.lines().all(|l| {
            let l = l.trim();
            l.is_empty() || l.starts_with('#') || l == "---"
        }) {
            return Ok(RepoSettings::default());
        }
        serde_yaml::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map_or((1, 1), |l| (l.line() as u32, l.column() as u32));
            RepoSettingsError {
                line,
                column,
                message: e.to_string(),
            }
        })
    }

    /// The settings of the chart in `folder` (defaults when the file names none).
    pub fn chart(&self, folder: &str) -> HelmRelease {
        let bare = |f: &'_ str| f.trim_start_matches("./").trim_matches('/').to_string();
        let want = bare(folder);
        self.helm
            .iter()
            .find(|(k, _)| bare(k) == want)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_read_and_unknown_keys_left_alone() {
        let s = RepoSettings::parse(
            "operatorVersion: \"1.12\"\nsomethingNew: {a: 1}\nhelm:\n  charts/analytics/:\n    releaseName: analytics\n    namespace: streaming\n    valuesFiles: [values.yaml, values-prod.yaml]\n    futureKey: x\n  charts/other:\n    valueFiles: [a.yaml]\n",
        )
        .expect("valid");
        let a = s.chart("charts/analytics/");
        assert_eq!(a.release_name("charts/analytics"), "analytics");
        assert_eq!(a.namespace(), "streaming");
        assert_eq!(a.values_files, vec!["values.yaml", "values-prod.yaml"]);
        // Argo CD's spelling; defaults for what is not set.
        let o = s.chart("charts/other");
        assert_eq!(o.values_files, vec!["a.yaml"]);
        assert_eq!(o.release_name("charts/other"), "other");
        assert_eq!(o.namespace(), "default");
        // A chart the file does not name gets the defaults.
        assert_eq!(s.chart("x/Y").release_name("x/Y"), "y");
    }

    #[test]
    fn empty_files_are_defaults_and_wrong_types_have_a_line() {
        assert_eq!(RepoSettings::parse(""), Ok(RepoSettings::default()));
        assert_eq!(
            RepoSettings::parse("# nothing yet\n---\n"),
            Ok(RepoSettings::default())
        );
        let e =
            RepoSettings::parse("helm:\n  charts/a:\n    valuesFiles: 3\n").expect_err("a number");
        assert_eq!(e.line, 3, "{e:?}");
        assert!(e.message.contains("valuesFiles"), "{e:?}");
    }
}
