//! `flink-gitops rollback NAME --to REV`: a scoped revert. One commit on the manifests
//! branch puts back the document that defined one resource at an earlier revision; the
//! other documents and files stay as they are at the tip. The agent then applies it like
//! any other change (and its status branch names the revision the rollback restored).
//!
//! Where the resource lives at the tip, its document there is replaced (the repository's
//! current layout wins when the resource moved files since); when it is gone at the tip,
//! the old document is put back into the file it was in (appended as a new document if the
//! file holds others now). A push that loses a race is retried on the new tip.
//!
//! Only plain manifest files are edited: a resource rendered from a kustomization or a
//! Helm chart, or one inside a `kind: List` document, is refused with what to do instead.

use std::path::Path;

use git2::{build::TreeUpdateBuilder, FileMode, Repository, Signature};

use super::source::{parse_files, GitError, GitSource, RepoLocation, Revision};
use crate::flink::spec::ResourceKey;

/// How often a push that lost a race is retried on the new tip.
const PUSH_ATTEMPTS: usize = 5;

/// Why a rollback was not written.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{key} is not defined at revision {rev}{path}: nothing to roll back to")]
    NotAtRevision {
        key: ResourceKey,
        rev: String,
        path: String,
    },
    #[error("{key} is rendered from {folder} at revision {rev}; roll back that folder's files instead (git revert, or check them out from {rev})")]
    Rendered {
        key: ResourceKey,
        rev: String,
        folder: String,
    },
    #[error("{key} is one item of a List document in {file} at {rev}; edit that file by hand")]
    InList {
        key: ResourceKey,
        file: String,
        rev: String,
    },
    #[error("{key} at the tip of {branch} is already the manifest of {rev}: nothing to commit")]
    Unchanged {
        key: ResourceKey,
        branch: String,
        rev: String,
    },
    #[error("branch {branch} is checked out in {path}; a commit written behind its work tree would be undone by the next commit there. Run this against a bare repository or a remote URL, or check out another branch")]
    CheckedOut { branch: String, path: String },
    #[error("the push to {branch} kept losing to other pushes")]
    Contended { branch: String },
}

/// The rollback commit written.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolledBack {
    pub commit: String,
    /// The branch tip it was written on.
    pub from: String,
    /// The revision whose manifest it restores.
    pub to: String,
    pub file: String,
    pub message: String,
}

/// The byte ranges of a multi-document YAML text's documents (between `---` lines, which
/// are not part of any range). Pure.
pub fn document_ranges(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        let separator =
            bare == "---" || (bare.starts_with("---") && bare[3..].starts_with([' ', '\t']));
        if separator {
            ranges.push(start..pos);
            start = pos + line.len();
        }
        pos += line.len();
    }
    ranges.push(start..text.len());
    ranges
}

/// `text` with document `index` replaced by `document`. Pure.
pub fn replace_document(text: &str, index: usize, document: &str) -> String {
    let ranges = document_ranges(text);
    let Some(r) = ranges.get(index) else {
        return text.to_string();
    };
    let mut doc = document.to_string();
    if !doc.ends_with('\n') && r.end < text.len() {
        doc.push('\n');
    }
    format!("{}{}{}", &text[..r.start], doc, &text[r.end..])
}

/// Where a resource's document is in a set of files.
#[derive(Debug, Clone, PartialEq)]
struct Found {
    file: String,
    index: usize,
    document: String,
    /// The whole file.
    text: String,
}

fn find(
    files: &[(String, Vec<u8>)],
    key: &ResourceKey,
    rev: &str,
) -> Result<Option<Found>, RollbackError> {
    for (file, bytes) in files {
        let Ok(text) = std::str::from_utf8(bytes) else {
            continue;
        };
        for (index, range) in document_ranges(text).into_iter().enumerate() {
            let document = &text[range];
            if !document.contains(key.name.as_str()) {
                continue;
            }
            let set = parse_files(vec![(file.clone(), document.as_bytes().to_vec())]);
            if set.manifests.iter().any(|m| &m.key == key) {
                if set.manifests.len() > 1 {
                    return Err(RollbackError::InList {
                        key: key.clone(),
                        file: file.clone(),
                        rev: rev.to_string(),
                    });
                }
                return Ok(Some(Found {
                    file: file.clone(),
                    index,
                    document: document.to_string(),
                    text: text.to_string(),
                }));
            }
        }
    }
    Ok(None)
}

fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

fn signature(repo: &Repository) -> Result<Signature<'static>, GitError> {
    match repo.signature() {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Ok(Signature::now("flink-gitops", "flink-gitops@localhost")?),
    }
}

/// Writes and pushes the rollback of `key` on `branch` to its manifest at `to`, reading
/// manifests below `path` (default: the whole tree).
///
/// # Errors
/// [`RollbackError`]: the revision lacks the resource, the resource is rendered or in a
/// List, nothing would change, the branch is checked out in a local work tree, or Git
/// failed.
pub fn rollback(
    source: &GitSource,
    key: &ResourceKey,
    to: &str,
    branch: &str,
    path: Option<&str>,
) -> Result<RolledBack, RollbackError> {
    let refname = format!("refs/heads/{branch}");
    for _ in 0..PUSH_ATTEMPTS {
        source.fetch()?;
        let repo = source.open()?;
        if matches!(source.location(), RepoLocation::Local(_)) && !repo.is_bare() {
            if let Ok(head) = repo.head() {
                if head.shorthand() == Some(branch) {
                    return Err(RollbackError::CheckedOut {
                        branch: branch.to_string(),
                        path: repo
                            .workdir()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default(),
                    });
                }
            }
        }
        let tip = source.resolve(&repo, branch)?;
        let target = source.resolve(&repo, to)?;
        let old = match find(
            &source.read_files(&repo, &target, path)?,
            key,
            short(&target.commit),
        )? {
            Some(f) => f,
            None => return Err(not_there(source, &repo, &target, key, path)),
        };
        let current = find(
            &source.read_files(&repo, &tip, path)?,
            key,
            short(&tip.commit),
        )?;
        let (file, text) = match current {
            Some(c) if c.document.trim() == old.document.trim() => {
                return Err(RollbackError::Unchanged {
                    key: key.clone(),
                    branch: branch.to_string(),
                    rev: short(&target.commit).to_string(),
                })
            }
            Some(c) => {
                let text = replace_document(&c.text, c.index, &old.document);
                (c.file, text)
            }
            None => {
                let at_tip = source
                    .read_files(&repo, &tip, path)?
                    .into_iter()
                    .find(|(f, _)| f == &old.file)
                    .and_then(|(_, b)| String::from_utf8(b).ok());
                let text = match at_tip {
                    Some(t) if !t.trim().is_empty() => {
                        let sep = if t.ends_with('\n') {
                            "---\n"
                        } else {
                            "\n---\n"
                        };
                        format!("{t}{sep}{}", old.document.trim_start_matches('\n'))
                    }
                    _ => old.document.clone(),
                };
                (old.file.clone(), text)
            }
        };
        let message = format!(
            "Roll back {} {}/{} to {} (from {})\n\nRestores {} as it was at {} ({}).\nWritten by flink-gitops rollback; the agent applies it like any change.\n",
            key.kind,
            key.namespace,
            key.name,
            short(&target.commit),
            short(&tip.commit),
            file,
            target.commit,
            target.summary,
        );
        let commit = write_commit(&repo, &tip, &file, text.as_bytes(), &message)?;
        let tip_oid = git2::Oid::from_str(&tip.commit).map_err(GitError::from)?;
        repo.reference_matching(&refname, commit, true, tip_oid, "flink-gitops rollback")
            .map_err(GitError::from)?;
        match source.push(&repo, &refname) {
            Ok(()) => {
                return Ok(RolledBack {
                    commit: commit.to_string(),
                    from: tip.commit.clone(),
                    to: target.commit.clone(),
                    file,
                    message: message.lines().next().unwrap_or_default().to_string(),
                })
            }
            Err(e) => {
                tracing::debug!(error = %e, "rollback push rejected; retrying on the new tip");
                let _ = repo.reference(
                    &refname,
                    tip_oid,
                    true,
                    "flink-gitops rollback: push rejected",
                );
            }
        }
    }
    Err(RollbackError::Contended {
        branch: branch.to_string(),
    })
}

fn not_there(
    source: &GitSource,
    repo: &Repository,
    target: &Revision,
    key: &ResourceKey,
    path: Option<&str>,
) -> RollbackError {
    // Rendered at that revision? Then say where from.
    if let Ok((set, _)) = source.load(repo, target, path) {
        if let Some(folder) = set
            .get(key)
            .and_then(|m| m.rendered.as_ref().map(|r| r.folder.clone()))
        {
            return RollbackError::Rendered {
                key: key.clone(),
                rev: short(&target.commit).to_string(),
                folder,
            };
        }
    }
    RollbackError::NotAtRevision {
        key: key.clone(),
        rev: short(&target.commit).to_string(),
        path: path.map(|p| format!(" below {p}")).unwrap_or_default(),
    }
}

fn write_commit(
    repo: &Repository,
    tip: &Revision,
    file: &str,
    bytes: &[u8],
    message: &str,
) -> Result<git2::Oid, GitError> {
    let parent = repo.find_commit(git2::Oid::from_str(&tip.commit)?)?;
    let base = parent.tree()?;
    let blob = repo.blob(bytes)?;
    let mut update = TreeUpdateBuilder::new();
    update.upsert(Path::new(file), blob, FileMode::Blob);
    let tree = repo.find_tree(update.create_updated(repo, &base)?)?;
    let sig = signature(repo)?;
    Ok(repo.commit(None, &sig, &sig, message, &tree, &[&parent])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_split_on_separator_lines_only() {
        let text = "a: 1\n---\nb: |\n  ---not a separator\n--- # c\nc: 3\n";
        let docs: Vec<&str> = document_ranges(text)
            .into_iter()
            .map(|r| &text[r])
            .collect();
        assert_eq!(
            docs,
            vec!["a: 1\n", "b: |\n  ---not a separator\n", "c: 3\n"]
        );
        assert_eq!(
            replace_document(text, 1, "b: 2\n"),
            "a: 1\n---\nb: 2\n--- # c\nc: 3\n"
        );
        assert_eq!(replace_document("x: 1\n", 0, "x: 2"), "x: 2");
        assert_eq!(
            replace_document("---\nx: 1\n---\ny: 1\n", 1, "x: 2\n"),
            "---\nx: 2\n---\ny: 1\n"
        );
    }
}
