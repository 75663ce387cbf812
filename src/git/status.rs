//! The status branch: one YAML file per resource (`<namespace>/<kind>/<name>.yaml`) holding
//! its [`Record`], committed and pushed by the agent.
//!
//! *Guarantees*: [`StatusBranch::write`] returns only after the commit is on the remote (or,
//! for a local repository, on the branch ref), so a fact written before a step is durable
//! when the step starts. A push rejected because the branch moved (another writer) is
//! retried on top of the new tip; the agent's files are its own, so the rebase is a
//! re-apply of the same file. The branch is separate from the manifests' branch, so a
//! status commit never starts a new sync.

use std::collections::BTreeMap;
use std::path::Path;

use git2::{build::TreeUpdateBuilder, FileMode, Oid, Repository, Signature};

use super::source::{GitError, GitSource, RepoLocation};
use crate::flink::lifecycle::record::Record;
use crate::flink::spec::ResourceKey;

/// How often a rejected push is retried on top of the new tip.
const PUSH_ATTEMPTS: usize = 5;

/// Reads and writes the status branch of a [`GitSource`].
#[derive(Debug, Clone)]
pub struct StatusBranch {
    source: GitSource,
    branch: String,
}

impl StatusBranch {
    pub fn new(source: GitSource, branch: &str) -> StatusBranch {
        StatusBranch {
            source,
            branch: branch.to_string(),
        }
    }

    pub fn branch(&self) -> &str {
        &self.branch
    }

    fn refname(&self) -> String {
        format!("refs/heads/{}", self.branch)
    }

    fn open(&self) -> Result<Repository, GitError> {
        if self.source.is_remote() && !self.source.git_dir().exists() {
            self.source.fetch_refspecs(&[])?;
        }
        self.source.open()
    }

    /// Fetches the status branch from the remote into the mirror (no-op for local repos).
    fn refresh(&self) -> Result<(), GitError> {
        if self.source.is_remote() {
            let spec = format!("+{0}:{0}", self.refname());
            self.source.fetch_refspecs(&[spec])?;
        }
        Ok(())
    }

    /// Reads every record at the branch tip (fetched first). No branch yet: no records.
    pub fn load(&self) -> Result<BTreeMap<ResourceKey, Record>, GitError> {
        self.refresh()?;
        self.load_fetched()
    }

    /// Reads every record as the local repository (or mirror) has them, without fetching:
    /// for callers that have just fetched all branches anyway.
    pub fn load_fetched(&self) -> Result<BTreeMap<ResourceKey, Record>, GitError> {
        let repo = self.open()?;
        let mut out = BTreeMap::new();
        let Ok(reference) = repo.find_reference(&self.refname()) else {
            return Ok(out);
        };
        let tree = reference.peel_to_commit()?.tree()?;
        let mut bad = Vec::new();
        tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            let name = entry.name().unwrap_or_default();
            if entry.kind() != Some(git2::ObjectType::Blob) || !name.ends_with(".yaml") {
                return git2::TreeWalkResult::Ok;
            }
            let path = format!("{dir}{name}");
            let text = repo
                .find_blob(entry.id())
                .ok()
                .and_then(|b| String::from_utf8(b.content().to_vec()).ok());
            match text.map(|t| Record::from_yaml(&t)) {
                Some(Ok(rec)) => {
                    out.insert(rec.key(), rec);
                }
                Some(Err(e)) => bad.push(format!("{path}: {e}")),
                None => bad.push(format!("{path}: not UTF-8")),
            }
            git2::TreeWalkResult::Ok
        })?;
        for b in bad {
            tracing::warn!(file = %b, branch = %self.branch, "unreadable status file ignored");
        }
        Ok(out)
    }

    /// The message of the branch tip's commit as the local repository (or mirror) has it,
    /// without fetching (call after [`StatusBranch::load`]). No branch yet: `None`.
    pub fn tip_message(&self) -> Result<Option<String>, GitError> {
        let repo = self.open()?;
        let Ok(reference) = repo.find_reference(&self.refname()) else {
            return Ok(None);
        };
        let commit = reference.peel_to_commit()?;
        Ok(commit.message().map(str::to_string))
    }

    /// Commits one record (replacing its file) with `message` and pushes it. Returns the
    /// commit id; `None` when the file already held exactly these bytes (no empty commits).
    pub fn write(&self, record: &Record, message: &str) -> Result<Option<String>, GitError> {
        let path = record.key().status_path();
        let bytes = record.to_yaml().into_bytes();
        let repo = self.open()?;
        for attempt in 1..=PUSH_ATTEMPTS {
            let parent = repo
                .find_reference(&self.refname())
                .ok()
                .and_then(|r| r.peel_to_commit().ok());
            let base_tree = match &parent {
                Some(c) => c.tree()?,
                None => repo.find_tree(repo.treebuilder(None)?.write()?)?,
            };
            if let Ok(entry) = base_tree.get_path(Path::new(&path)) {
                if repo
                    .find_blob(entry.id())
                    .map(|b| b.content() == bytes.as_slice())
                    .unwrap_or(false)
                {
                    return Ok(None);
                }
            }
            let blob = repo.blob(&bytes)?;
            let mut update = TreeUpdateBuilder::new();
            update.upsert(&path, blob, FileMode::Blob);
            let tree_id = update.create_updated(&repo, &base_tree)?;
            let tree = repo.find_tree(tree_id)?;
            let sig = signature()?;
            let parents: Vec<&git2::Commit> = parent.iter().collect();
            let commit = repo.commit(None, &sig, &sig, message, &tree, &parents)?;
            let expected = parent.as_ref().map(|c| c.id());
            match self.publish(&repo, commit, expected) {
                Ok(()) => return Ok(Some(commit.to_string())),
                Err(e) if attempt < PUSH_ATTEMPTS => {
                    tracing::debug!(attempt, error = %e, "status push rejected; retrying on the new tip");
                    self.refresh()?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(GitError::Task(
            "status push kept being rejected".to_string(),
        ))
    }

    /// Moves the branch to `commit`: a compare-and-swap on the local ref, then (remote) a
    /// push that the remote rejects unless it fast-forwards.
    fn publish(
        &self,
        repo: &Repository,
        commit: Oid,
        expected: Option<Oid>,
    ) -> Result<(), GitError> {
        let refname = self.refname();
        match expected {
            Some(old) => {
                repo.reference_matching(&refname, commit, true, old, "flink-gitops status")?;
            }
            None => {
                repo.reference(&refname, commit, false, "flink-gitops status")?;
            }
        }
        let RepoLocation::Remote(_) = self.source.location() else {
            return Ok(());
        };
        match self.source.push(repo, &refname) {
            Ok(()) => Ok(()),
            Err(e) => {
                // Put the local ref back so the retry starts from what the remote has.
                match expected {
                    Some(old) => {
                        let _ = repo.reference(
                            &refname,
                            old,
                            true,
                            "flink-gitops status: push rejected",
                        );
                    }
                    None => {
                        if let Ok(mut r) = repo.find_reference(&refname) {
                            let _ = r.delete();
                        }
                    }
                }
                Err(e)
            }
        }
    }
}

fn signature() -> Result<Signature<'static>, GitError> {
    Ok(Signature::now("flink-gitops", "flink-gitops@localhost")?)
}
