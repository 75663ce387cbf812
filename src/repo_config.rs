//! The repository's own settings: `.flink-gitops.yaml` at the root of the manifests'
//! repository, read at the same revision as the manifests (for `validate <folder>`: the
//! nearest one from the folder up to the root of its Git work tree).
//!
//! One typed struct, read once per revision. Keys are camelCase like the manifests'; an
//! unknown key is an error naming the known ones, so a typo never falls back to a default
//! silently. To add a setting: add a field to [`RepoConfig`] and a row to the README's table.
//! The file is small and untrusted (`plan` reads it from pull requests): at most
//! [`config::REPO_CONFIG_MAX_BYTES`] are read.
//!
//! Precedence, for the operator release: the `--operator-version` flag (or its environment
//! variable), then `operatorVersion` here, then [`config::DEFAULT_OPERATOR_VERSION`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config;
use crate::flink::spec::validate::{self, StricterRules};
use crate::flink::spec::{Diagnostic, OperatorVersion, Severity};

/// The settings a repository gives itself in `.flink-gitops.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepoConfig {
    /// `operatorVersion`: the Flink Kubernetes Operator release whose validation rules
    /// apply, such as `"1.13"`.
    #[serde(default)]
    pub operator_version: Option<OperatorVersion>,
    /// `stricterRules`: `error` (default) or `warn`, for flink-gitops' own rules that are
    /// stricter than the operator's.
    #[serde(default)]
    pub stricter_rules: Option<StricterRules>,
}

/// Why `.flink-gitops.yaml` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RepoConfigError {
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

impl RepoConfigError {
    /// The error as a diagnostic about the settings file, for `validate` and `plan` output.
    pub fn to_diagnostic(&self) -> Diagnostic {
        let (file, line, column) = match self {
            RepoConfigError::Invalid {
                file, line, column, ..
            } => (file.clone(), *line, *column),
            RepoConfigError::TooLarge { file, .. } | RepoConfigError::Io { file, .. } => {
                (file.clone(), 1, 1)
            }
        };
        let message = match self {
            RepoConfigError::Invalid { message, .. } => message.clone(),
            other => other.to_string(),
        };
        Diagnostic {
            severity: Severity::Error,
            file,
            line,
            column,
            field: String::new(),
            resource: None,
            message: format!(
                "{message} (the settings in this file are not used; validation follows the defaults)"
            ),
        }
    }
}

impl RepoConfig {
    /// Reads the settings file's bytes; `file` names it in errors. A file with only
    /// comments (or nothing) gives the defaults.
    pub fn parse(file: &str, bytes: &[u8]) -> Result<RepoConfig, RepoConfigError> {
        if bytes.len() > config::REPO_CONFIG_MAX_BYTES {
            return Err(RepoConfigError::TooLarge {
                file: file.to_string(),
                max: config::REPO_CONFIG_MAX_BYTES,
            });
        }
        let invalid = |line: u32, column: u32, message: String| RepoConfigError::Invalid {
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
            return Ok(RepoConfig::default());
        }
        serde_yaml::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line() as u32, l.column() as u32))
                .unwrap_or((1, 1));
            invalid(line, column, e.to_string())
        })
    }

    /// The validation options these settings give; `flag` (the `--operator-version` flag or
    /// its environment variable) wins over `operatorVersion`.
    pub fn validation_options(&self, flag: Option<OperatorVersion>) -> validate::Options {
        let operator_version = flag
            .or(self.operator_version)
            .unwrap_or(config::DEFAULT_OPERATOR_VERSION);
        tracing::debug!(
            %operator_version,
            from = if flag.is_some() { "flag" } else if self.operator_version.is_some() { config::REPO_CONFIG_FILE } else { "default" },
            "operator rules"
        );
        validate::Options {
            operator_version,
            stricter_rules: self.stricter_rules.unwrap_or_default(),
            ..validate::Options::default()
        }
    }
}

/// Reads settings that may be absent (`None` bytes): the settings, and a diagnostic when
/// the file exists but cannot be read (the defaults are used then).
pub fn read(file: &str, bytes: Option<&[u8]>) -> (RepoConfig, Option<Diagnostic>) {
    match bytes.map(|b| RepoConfig::parse(file, b)) {
        None => (RepoConfig::default(), None),
        Some(Ok(c)) => (c, None),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "repository settings not used");
            (RepoConfig::default(), Some(e.to_diagnostic()))
        }
    }
}

/// The settings file that applies to manifests read from a folder (or file) on disk: the
/// nearest `.flink-gitops.yaml` from that folder up to the root of the Git work tree it
/// lies in (the folder that holds `.git`); outside a work tree, only the folder's own.
pub fn find_on_disk(target: &Path) -> Option<PathBuf> {
    let start = if target.is_file() {
        target.parent()?.to_path_buf()
    } else {
        target.to_path_buf()
    };
    let start = std::fs::canonicalize(&start).unwrap_or(start);
    let in_work_tree = start.ancestors().any(|d| d.join(".git").exists());
    for dir in start.ancestors() {
        let candidate = dir.join(config::REPO_CONFIG_FILE);
        if candidate.is_file() {
            return Some(candidate);
        }
        if !in_work_tree || dir.join(".git").exists() {
            return None;
        }
    }
    None
}

/// Reads the settings for manifests on disk (see [`find_on_disk`]).
pub fn read_on_disk(target: &Path) -> (RepoConfig, Option<Diagnostic>) {
    let Some(path) = find_on_disk(target) else {
        return (RepoConfig::default(), None);
    };
    let name = path.display().to_string();
    tracing::debug!(file = %name, "repository settings");
    match read_capped(&path) {
        Ok(bytes) => read(&name, Some(&bytes)),
        Err(source) => {
            let e = RepoConfigError::Io { file: name, source };
            (RepoConfig::default(), Some(e.to_diagnostic()))
        }
    }
}

/// Reads a file, but not more than one byte past the cap (enough to tell it is too large).
fn read_capped(path: &Path) -> Result<Vec<u8>, std::io::Error> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(config::REPO_CONFIG_MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RepoConfig, RepoConfigError> {
        RepoConfig::parse(".flink-gitops.yaml", text.as_bytes())
    }

    #[test]
    fn keys_and_defaults() {
        assert_eq!(
            parse("operatorVersion: \"1.10\"\nstricterRules: warn\n").ok(),
            Some(RepoConfig {
                operator_version: Some(OperatorVersion::V1_10),
                stricter_rules: Some(StricterRules::Warn),
            })
        );
        for empty in ["", "# nothing yet\n", "---\n", "\u{feff}# bom\n"] {
            assert_eq!(parse(empty).ok(), Some(RepoConfig::default()), "{empty:?}");
        }
        let o = RepoConfig::default().validation_options(None);
        assert_eq!(o.operator_version, config::DEFAULT_OPERATOR_VERSION);
        assert_eq!(o.stricter_rules, StricterRules::Error);
    }

    #[test]
    fn the_flag_wins_over_the_file() {
        let c = parse("operatorVersion: \"1.12.1\"\n").expect("valid");
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

    /// Each row: a mistake, the line and column reported, and part of the message.
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
                "operatorversion: \"1.13\"\n",
                1,
                "unknown field `operatorversion`, expected `operatorVersion` or `stricterRules`",
            ),
            (
                "stricterRules: off\n",
                1,
                "unknown variant `off`, expected `error` or `warn`",
            ),
            ("- operatorVersion\n", 1, "expected struct RepoConfig"),
        ] {
            match parse(text) {
                Err(RepoConfigError::Invalid {
                    line: l, message, ..
                }) => {
                    assert_eq!(l, line, "{text:?}: {message}");
                    assert!(message.contains(part), "{text:?}: {message}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let big = "#".repeat(config::REPO_CONFIG_MAX_BYTES + 1);
        assert!(matches!(parse(&big), Err(RepoConfigError::TooLarge { .. })));
        let (c, d) = read("x.yaml", Some(b"operatorVersion: [1]\n"));
        assert_eq!(c, RepoConfig::default());
        let d = d.expect("a diagnostic");
        assert_eq!((d.file.as_str(), d.line), ("x.yaml", 1));
        assert!(d.message.contains("validation follows the defaults"));
    }

    #[test]
    fn on_disk_the_nearest_file_up_to_the_work_tree_root() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("repo");
        let deep = root.join("teams/a");
        std::fs::create_dir_all(&deep).expect("mkdir");
        std::fs::create_dir_all(root.join(".git")).expect("mkdir .git");
        // Above the work tree: never read.
        std::fs::write(
            tmp.path().join(config::REPO_CONFIG_FILE),
            "operatorVersion: \"1.11\"\n",
        )
        .expect("write");
        assert_eq!(find_on_disk(&deep), None);
        std::fs::write(
            root.join(config::REPO_CONFIG_FILE),
            "operatorVersion: \"1.12\"\n",
        )
        .expect("write");
        let (c, d) = read_on_disk(&deep);
        assert!(d.is_none());
        assert_eq!(c.operator_version, Some(OperatorVersion::V1_12));
        // The nearest wins.
        std::fs::write(
            deep.join(config::REPO_CONFIG_FILE),
            "operatorVersion: \"1.13\"\n",
        )
        .expect("write");
        assert_eq!(
            read_on_disk(&deep).0.operator_version,
            Some(OperatorVersion::V1_13)
        );
        // Outside a work tree only the folder's own file counts.
        let plain = tmp.path().join("plain/sub");
        std::fs::create_dir_all(&plain).expect("mkdir");
        assert_eq!(find_on_disk(&plain), None);
    }
}
