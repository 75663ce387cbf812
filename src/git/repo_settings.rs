//! Where `.flink-gitops.yaml` is found, and reading it ([`crate::repo_settings`] parses it).
//!
//! One rule: the file at the root of the repository, at the revision the manifests are read
//! at (whatever `--path` says; `plan` validates head with head's file, the agent reads the
//! branch tip's each cycle). For `validate PATH` on disk: the nearest one from PATH up to
//! the root of the Git work tree PATH lies in; outside a work tree, only PATH's own folder.
//! At most [`config::REPO_SETTINGS_MAX_BYTES`] (plus one, to tell a larger file) are read.

use std::path::{Component, Path, PathBuf};

use git2::{ObjectType, Repository};

use crate::config;
use crate::git::GitError;
use crate::repo_settings::{self, RepoSettingsError, SettingsRead};

/// The settings of a revision: [`config::REPO_SETTINGS_FILE`] at the root of its tree
/// (`root`). Named by its path in the repository in diagnostics.
pub fn at_revision(repo: &Repository, root: &git2::Tree) -> Result<SettingsRead, GitError> {
    let name = config::REPO_SETTINGS_FILE;
    let Some(entry) = root.get_name(name) else {
        return Ok(SettingsRead::default());
    };
    if entry.kind() != Some(ObjectType::Blob) {
        return Ok(SettingsRead::failed(&RepoSettingsError::Invalid {
            file: name.to_string(),
            line: 1,
            column: 1,
            message: "is not a file".to_string(),
        }));
    }
    let blob = repo.find_blob(entry.id())?;
    let content = blob.content();
    let capped = &content[..content.len().min(config::REPO_SETTINGS_MAX_BYTES + 1)];
    Ok(repo_settings::read(name, Some(capped)))
}

/// The settings file that applies to manifests on disk at `target` (a folder or a file):
/// the nearest [`config::REPO_SETTINGS_FILE`] from its folder up to the root of the Git
/// work tree it lies in (the folder that holds `.git`); outside a work tree, only the
/// folder's own. Returns the file and how many folders above `target`'s folder it is.
pub fn find_on_disk(target: &Path) -> Option<(PathBuf, usize)> {
    let start = if target.is_file() {
        let parent = target.parent().filter(|p| !p.as_os_str().is_empty());
        parent.unwrap_or(Path::new(".")).to_path_buf()
    } else {
        target.to_path_buf()
    };
    let start = std::fs::canonicalize(&start).unwrap_or(start);
    let in_work_tree = start.ancestors().any(|d| d.join(".git").exists());
    for (up, dir) in start.ancestors().enumerate() {
        let candidate = dir.join(config::REPO_SETTINGS_FILE);
        if candidate.is_file() {
            return Some((candidate, up));
        }
        if !in_work_tree || dir.join(".git").exists() {
            return None;
        }
    }
    None
}

/// The settings for manifests on disk at `target` (see [`find_on_disk`]), as seen from
/// `target`'s folder: chart folders named relative to it ([`RepoSettings::below`]). In
/// diagnostics the file is named as manifests are: relative to a folder `target`, or from
/// a file `target`'s folder as given.
///
/// [`RepoSettings::below`]: crate::repo_settings::RepoSettings::below
pub fn on_disk(target: &Path) -> SettingsRead {
    let Some((path, up)) = find_on_disk(target) else {
        return SettingsRead::default();
    };
    let is_file = target.is_file();
    let name = display_name(target, is_file, up);
    tracing::debug!(file = %path.display(), "repository settings");
    let mut read = match read_capped(&path) {
        Ok(bytes) => repo_settings::read(&name, Some(&bytes)),
        Err(source) => SettingsRead::failed(&RepoSettingsError::Io { file: name, source }),
    };
    if up > 0 {
        // The folders between the file's and the target's, by name.
        let start = if is_file {
            target.parent().unwrap_or(Path::new("."))
        } else {
            target
        };
        let start = std::fs::canonicalize(start).unwrap_or_else(|_| start.to_path_buf());
        let below: Vec<String> = start
            .components()
            .rev()
            .take(up)
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        read.settings = read.settings.below(&below.join("/"));
    }
    read
}

/// The settings file `up` folders above `target`'s folder, named as `validate` names
/// manifests: relative to a folder target (`../.flink-gitops.yaml`); for a file target,
/// from its folder as the user gave it (`teams/.flink-gitops.yaml`).
fn display_name(target: &Path, is_file: bool, up: usize) -> String {
    let mut parts: Vec<String> = Vec::new();
    if is_file {
        for c in target.parent().unwrap_or(Path::new("")).components() {
            match c {
                Component::CurDir => {}
                c => parts.push(c.as_os_str().to_string_lossy().into_owned()),
            }
        }
    }
    for _ in 0..up {
        let last_is_name = parts.last().is_some_and(|p| p != ".." && p != "/");
        if last_is_name {
            parts.pop();
        } else {
            parts.push("..".to_string());
        }
    }
    parts.push(config::REPO_SETTINGS_FILE.to_string());
    let joined = parts.join("/");
    joined
        .strip_prefix("//")
        .map_or(joined.clone(), |j| format!("/{j}"))
}

/// Reads a file, but not more than one byte past the cap (enough to tell it is too large).
fn read_capped(path: &Path) -> Result<Vec<u8>, std::io::Error> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(config::REPO_SETTINGS_MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flink::spec::{OperatorVersion, Severity};

    #[test]
    fn on_disk_the_nearest_file_up_to_the_work_tree_root() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("repo");
        let deep = root.join("teams/a");
        std::fs::create_dir_all(&deep).expect("mkdir");
        std::fs::create_dir_all(root.join(".git")).expect("mkdir .git");
        // Above the work tree: never read.
        std::fs::write(
            tmp.path().join(config::REPO_SETTINGS_FILE),
            "operatorVersion: \"1.11\"\n",
        )
        .expect("write");
        assert_eq!(find_on_disk(&deep), None);
        std::fs::write(
            root.join(config::REPO_SETTINGS_FILE),
            "operatorVersion: \"1.12\"\nhelm:\n  teams/a/chart:\n    namespace: a\n  other:\n    namespace: b\n",
        )
        .expect("write");
        let r = on_disk(&deep);
        assert!(r.diagnostics.is_empty(), "{r:?}");
        assert_eq!(r.settings.operator_version, Some(OperatorVersion::V1_12));
        // Chart folders are named from the folder read.
        assert_eq!(r.settings.chart("chart").namespace(), "a");
        assert_eq!(r.settings.helm.len(), 1, "{r:?}");
        // The nearest wins.
        std::fs::write(
            deep.join(config::REPO_SETTINGS_FILE),
            "operatorVersion: \"1.13\"\n",
        )
        .expect("write");
        assert_eq!(
            on_disk(&deep).settings.operator_version,
            Some(OperatorVersion::V1_13)
        );
        // Outside a work tree only the folder's own file counts.
        let plain = tmp.path().join("plain/sub");
        std::fs::create_dir_all(&plain).expect("mkdir");
        assert_eq!(find_on_disk(&plain), None);
    }

    #[test]
    fn on_disk_the_file_is_named_as_manifests_are() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        std::fs::create_dir_all(root.join(".git")).expect("mkdir .git");
        std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
        std::fs::write(root.join("a/b/x.yaml"), "").expect("write");
        std::fs::write(
            root.join(config::REPO_SETTINGS_FILE),
            "operatorVerison: x\n",
        )
        .expect("write");
        let r = on_disk(&root.join("a/b"));
        let [d] = &r.diagnostics[..] else {
            panic!("{r:?}")
        };
        assert_eq!(d.severity, Severity::Warning);
        assert_eq!(d.file, "../../.flink-gitops.yaml");
        assert_eq!(
            display_name(&root.join("a"), false, 0),
            ".flink-gitops.yaml"
        );
        assert_eq!(
            display_name(&root.join("a/b/x.yaml"), true, 2),
            format!("{}/.flink-gitops.yaml", root.display())
        );
        assert_eq!(
            display_name(Path::new("a/b/x.yaml"), true, 3),
            "../.flink-gitops.yaml"
        );
    }
}
