//! A Git repository of manifests: a local path, or a remote mirrored into a cache folder.
//!
//! Manifests are read straight from the tree of a commit (no checkout), so any revision can
//! be read at any time, and one fetch per cycle serves every resource.
//!
//! *Guarantees*: a fetch never runs past its deadline (git2's transfer callback aborts it);
//! refs in the mirror are exactly the remote's branches and tags after a successful fetch.
//! *Errors*: [`GitError`], each classified as transient (retry later) or permanent (needs a
//! change in configuration or in the repository).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use git2::{Cred, CredentialType, FetchOptions, ObjectType, RemoteCallbacks, Repository};
use sha2::{Digest, Sha256};

use crate::config;
use crate::flink::spec::ManifestSet;
use crate::git::render::{self, RenderPlan, RenderTools};
use crate::git::repo_settings;
use crate::repo_settings::{RepoSettings, SettingsRead};

/// Where a mirror keeps the remote's HEAD.
const REMOTE_HEAD_REF: &str = "refs/flink-gitops/remote-head";

/// Errors from reading Git.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot open the repository at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: git2::Error,
    },
    #[error("cannot fetch {url}: {source}")]
    Fetch {
        url: String,
        #[source]
        source: git2::Error,
    },
    #[error("fetching {url} took longer than {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("revision {rev:?} not found in {repo} (tried branch, tag, commit)")]
    UnknownRevision { rev: String, repo: String },
    #[error("path {path:?} is not a folder at revision {rev}")]
    PathNotFound { path: String, rev: String },
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("git task failed: {0}")]
    Task(String),
}

impl GitError {
    /// Whether retrying later may succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            GitError::Fetch { source, .. } => {
                !matches!(source.class(), git2::ErrorClass::Ssh if source.code() == git2::ErrorCode::Auth)
            }
            GitError::Timeout { .. } | GitError::Io(_) | GitError::Task(_) => true,
            GitError::Git(e) => matches!(e.code(), git2::ErrorCode::Locked),
            GitError::Open { .. }
            | GitError::UnknownRevision { .. }
            | GitError::PathNotFound { .. } => false,
        }
    }
}

/// Where manifests come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoLocation {
    /// A repository on this machine, read in place.
    Local(PathBuf),
    /// A remote URL (`file://`, `https://`, `ssh://`, `git://` or scp-style `user@host:path`).
    Remote(String),
}

impl RepoLocation {
    pub fn parse(s: &str) -> RepoLocation {
        let scp_like = !s.contains("://")
            && s.split_once(':').is_some_and(|(host, path)| {
                host.contains('@') && !host.contains('/') && !path.is_empty()
            });
        if s.contains("://") || scp_like {
            RepoLocation::Remote(s.to_string())
        } else {
            RepoLocation::Local(PathBuf::from(s))
        }
    }

    pub fn display(&self) -> String {
        match self {
            RepoLocation::Local(p) => p.display().to_string(),
            RepoLocation::Remote(u) => redact(u),
        }
    }
}

/// Removes a password or token from a URL before it is logged.
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((cred, host)) = rest.split_once('@') {
            if cred.contains(':') || !cred.is_empty() && scheme.starts_with("http") {
                return format!("{scheme}://***@{host}");
            }
        }
    }
    url.to_string()
}

/// A resolved revision: what the user asked for and the commit it named.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Revision {
    /// What was asked for: a branch, tag or commit.
    pub reference: String,
    /// Full commit id (hex).
    pub commit: String,
    /// First line of the commit message.
    pub summary: String,
}

impl Revision {
    pub fn short(&self) -> &str {
        self.commit.get(..7).unwrap_or(&self.commit)
    }
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@sha1:{}", self.reference, self.short())
    }
}

/// A Git repository of manifests.
#[derive(Debug, Clone)]
pub struct GitSource {
    location: RepoLocation,
    /// The repository git2 opens: the local path, or the mirror of a remote.
    git_dir: PathBuf,
    timeout: Duration,
    /// kubectl and helm, for the kustomizations and charts of the repository.
    render: RenderTools,
    /// The last revision rendered without an error (commit and path), with its plan and
    /// what it gave: the agent reads the same revision every cycle.
    rendered: Arc<Mutex<Option<(String, RenderPlan, ManifestSet)>>>,
}

/// What a revision holds below a path.
#[derive(Debug, Clone, Default)]
pub struct RevisionFiles {
    /// Plain manifest files (path, bytes), not those that are a render tool's input.
    pub files: Vec<(String, Vec<u8>)>,
    /// What its kustomizations and charts rendered to (not validated), with an error for
    /// each that did not render.
    pub rendered: ManifestSet,
    /// The repository's `.flink-gitops.yaml` at the revision.
    pub settings: SettingsRead,
}

impl GitSource {
    /// Prepares a source; a remote is mirrored under `cache_root/git/<hash of the URL>`.
    pub fn new(location: RepoLocation, cache_root: &Path, timeout: Duration) -> GitSource {
        let git_dir = match &location {
            RepoLocation::Local(p) => p.clone(),
            RepoLocation::Remote(url) => {
                let digest = hex::encode(Sha256::digest(url.as_bytes()));
                cache_root.join("git").join(&digest[..16])
            }
        };
        GitSource {
            location,
            git_dir,
            timeout,
            render: RenderTools::new(cache_root),
            rendered: Arc::new(Mutex::new(None)),
        }
    }

    /// Renders kustomizations and charts with these tools.
    pub fn with_render_tools(mut self, tools: RenderTools) -> GitSource {
        self.render = tools;
        self
    }

    pub fn render_tools(&self) -> &RenderTools {
        &self.render
    }

    pub fn location(&self) -> &RepoLocation {
        &self.location
    }

    /// The git directory read by [`GitSource::open`].
    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    pub fn is_remote(&self) -> bool {
        matches!(self.location, RepoLocation::Remote(_))
    }

    /// Opens the repository (the mirror for a remote; call [`GitSource::fetch`] first).
    pub fn open(&self) -> Result<Repository, GitError> {
        Repository::open(&self.git_dir).map_err(|source| GitError::Open {
            path: self.git_dir.display().to_string(),
            source,
        })
    }

    /// Brings the mirror up to date with the remote (branches and tags, pruned). A local
    /// repository needs no fetch.
    pub fn fetch(&self) -> Result<(), GitError> {
        self.fetch_refspecs(&[
            "+refs/heads/*:refs/heads/*".to_string(),
            "+refs/tags/*:refs/tags/*".to_string(),
            // The remote's HEAD (its default branch), so `HEAD` means what it means there.
            format!("+HEAD:{REMOTE_HEAD_REF}"),
        ])
    }

    /// Fetches only the given refspecs (an empty list just creates the mirror).
    pub fn fetch_refspecs(&self, refspecs: &[String]) -> Result<(), GitError> {
        let RepoLocation::Remote(url) = &self.location else {
            return Ok(());
        };
        let repo = match Repository::open_bare(&self.git_dir) {
            Ok(r) => r,
            Err(_) => {
                std::fs::create_dir_all(&self.git_dir)?;
                Repository::init_bare(&self.git_dir)?
            }
        };
        let deadline = Instant::now() + self.timeout;
        let mut remote = repo.remote_anonymous(url)?;
        let mut options = FetchOptions::new();
        options.remote_callbacks(callbacks(deadline));
        let all = refspecs.iter().any(|r| r.contains('*'));
        options.prune(if all {
            git2::FetchPrune::On
        } else {
            git2::FetchPrune::Off
        });
        options.download_tags(if all {
            git2::AutotagOption::All
        } else {
            git2::AutotagOption::None
        });
        if refspecs.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        match remote.fetch(refspecs, Some(&mut options), None) {
            Ok(()) => {
                tracing::debug!(url = %redact(url), elapsed = ?started.elapsed(), "fetched");
                Ok(())
            }
            Err(_) if Instant::now() >= deadline => Err(GitError::Timeout {
                url: redact(url),
                timeout: self.timeout,
            }),
            Err(source) => Err(GitError::Fetch {
                url: redact(url),
                source,
            }),
        }
    }

    /// Pushes a ref of the mirror to the same ref on the remote; fails if the remote rejects
    /// it (for instance because it does not fast-forward).
    pub fn push(&self, repo: &Repository, refname: &str) -> Result<(), GitError> {
        let RepoLocation::Remote(url) = &self.location else {
            return Ok(());
        };
        let deadline = Instant::now() + self.timeout;
        let mut remote = repo.remote_anonymous(url)?;
        let rejected = std::cell::RefCell::new(None::<String>);
        let mut cb = callbacks(deadline);
        cb.push_update_reference(|name, status| {
            if let Some(msg) = status {
                *rejected.borrow_mut() = Some(format!("{name}: {msg}"));
            }
            Ok(())
        });
        let mut options = git2::PushOptions::new();
        options.remote_callbacks(cb);
        let spec = format!("{refname}:{refname}");
        let result = remote.push(&[spec.as_str()], Some(&mut options));
        drop(options);
        match (result, rejected.into_inner()) {
            (Ok(()), None) => Ok(()),
            (Ok(()), Some(msg)) => Err(GitError::Fetch {
                url: redact(url),
                source: git2::Error::from_str(&format!("push rejected: {msg}")),
            }),
            (Err(source), _) => Err(GitError::Fetch {
                url: redact(url),
                source,
            }),
        }
    }

    /// Resolves a branch, tag or commit (full or abbreviated) to a commit.
    pub fn resolve(&self, repo: &Repository, rev: &str) -> Result<Revision, GitError> {
        let mut candidates = vec![
            format!("refs/heads/{rev}"),
            format!("refs/tags/{rev}"),
            format!("refs/remotes/origin/{rev}"),
            rev.to_string(),
        ];
        if rev == "HEAD" && self.is_remote() {
            // A mirror's own HEAD names a branch of the mirror's making; the remote's wins.
            candidates.insert(0, REMOTE_HEAD_REF.to_string());
        }
        for c in &candidates {
            if let Ok(obj) = repo.revparse_single(c) {
                if let Ok(commit) = obj.peel_to_commit() {
                    return Ok(Revision {
                        reference: rev.to_string(),
                        commit: commit.id().to_string(),
                        summary: commit.summary().unwrap_or_default().to_string(),
                    });
                }
            }
        }
        Err(GitError::UnknownRevision {
            rev: rev.to_string(),
            repo: self.location.display(),
        })
    }

    /// The tree of `subpath` (or the root) at a commit, and the prefix of its paths.
    fn subtree<'r>(
        &self,
        repo: &'r Repository,
        rev: &Revision,
        subpath: Option<&str>,
    ) -> Result<(git2::Tree<'r>, git2::Tree<'r>, String), GitError> {
        let oid = git2::Oid::from_str(&rev.commit)?;
        let commit = repo.find_commit(oid)?;
        let root = commit.tree()?;
        let Some(p) = subpath
            .map(|p| p.trim_matches('/'))
            .filter(|p| !p.is_empty() && *p != ".")
        else {
            return Ok((root.clone(), root, String::new()));
        };
        let not_found = || GitError::PathNotFound {
            path: p.to_string(),
            rev: rev.to_string(),
        };
        let entry = root.get_path(Path::new(p)).map_err(|_| not_found())?;
        let tree = entry
            .to_object(repo)?
            .into_tree()
            .map_err(|_| not_found())?;
        Ok((root, tree, format!("{p}/")))
    }

    /// Every `.yaml` / `.yml` file below `subpath` (path and blob), hidden files and
    /// folders left out; and whether a kustomization or chart is among them.
    fn manifest_entries(
        &self,
        repo: &Repository,
        rev: &Revision,
        subpath: Option<&str>,
    ) -> Result<(Vec<(String, git2::Oid)>, bool), GitError> {
        let (_, tree, prefix) = self.subtree(repo, rev, subpath)?;
        let mut entries = Vec::new();
        let mut renders = false;
        tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            let name = entry.name().unwrap_or_default();
            if name.starts_with('.') {
                return git2::TreeWalkResult::Skip;
            }
            if entry.kind() == Some(ObjectType::Blob) {
                renders |= is_render_marker(name);
                if is_manifest_name(name) {
                    entries.push((format!("{prefix}{dir}{name}"), entry.id()));
                }
            }
            git2::TreeWalkResult::Ok
        })?;
        Ok((entries, renders))
    }

    /// Reads every `.yaml` / `.yml` file below `subpath` (or the root) at a commit, without
    /// a checkout and without rendering (kustomizations and charts are read as they are).
    /// Paths are relative to the repository root. Hidden files and folders are skipped.
    pub fn read_files(
        &self,
        repo: &Repository,
        rev: &Revision,
        subpath: Option<&str>,
    ) -> Result<Vec<(String, Vec<u8>)>, GitError> {
        let (entries, _) = self.manifest_entries(repo, rev, subpath)?;
        read_blobs(repo, entries)
    }

    /// What a revision holds below `subpath`: its plain manifest files, and its
    /// kustomizations and charts rendered (see [`render`]). A folder that does not render
    /// is an error about that folder in [`RevisionFiles::rendered`], never a failure of
    /// the whole revision.
    pub fn read_revision(
        &self,
        repo: &Repository,
        rev: &Revision,
        subpath: Option<&str>,
    ) -> Result<RevisionFiles, GitError> {
        let (entries, renders) = self.manifest_entries(repo, rev, subpath)?;
        let settings = self.read_settings(repo, rev)?;
        if !renders {
            return Ok(RevisionFiles {
                files: read_blobs(repo, entries)?,
                rendered: ManifestSet::default(),
                settings,
            });
        }
        let key = format!("{}:{}", rev.commit, subpath.unwrap_or_default());
        let cached = match self.rendered.lock() {
            Ok(c) => c.as_ref().filter(|(k, _, _)| *k == key).cloned(),
            Err(_) => None,
        };
        let (plan, rendered) = match cached {
            Some((_, plan, set)) => (plan, set),
            None => {
                let (root, _, _) = self.subtree(repo, rev, subpath)?;
                let tree = list_tree(&root)?;
                let paths: Vec<String> = tree.keys().cloned().collect();
                let read_text = |p: &str| {
                    let oid = tree.get(p)?;
                    String::from_utf8(repo.find_blob(*oid).ok()?.content().to_vec()).ok()
                };
                let plan = RenderPlan::new(
                    &paths,
                    subpath,
                    settings.for_rendering().cloned(),
                    &read_text,
                );
                let read = |p: &str| -> std::io::Result<Vec<u8>> {
                    let oid = tree
                        .get(p)
                        .ok_or_else(|| std::io::Error::other(format!("{p} is not in the tree")))?;
                    let blob = repo.find_blob(*oid).map_err(std::io::Error::other)?;
                    Ok(blob.content().to_vec())
                };
                let set = render::render(&plan, &paths, &read, &self.render);
                if set.unreadable_files.is_empty() {
                    if let Ok(mut c) = self.rendered.lock() {
                        *c = Some((key, plan.clone(), set.clone()));
                    }
                }
                (plan, set)
            }
        };
        let plain = entries.into_iter().filter(|(p, _)| !plan.owns(p)).collect();
        Ok(RevisionFiles {
            files: read_blobs(repo, plain)?,
            rendered,
            settings,
        })
    }

    /// The repository's `.flink-gitops.yaml` at a revision: at the root of its tree,
    /// whatever the path read (see [`repo_settings`]).
    pub fn read_settings(
        &self,
        repo: &Repository,
        rev: &Revision,
    ) -> Result<SettingsRead, GitError> {
        let oid = git2::Oid::from_str(&rev.commit)?;
        let root = repo.find_commit(oid)?.tree()?;
        repo_settings::at_revision(repo, &root)
    }

    /// Reads and parses the manifests at a revision, kustomizations and charts rendered
    /// (not yet validated), with the repository's settings at that revision; what is wrong
    /// in the settings file is among the set's diagnostics.
    pub fn load(
        &self,
        repo: &Repository,
        rev: &Revision,
        subpath: Option<&str>,
    ) -> Result<(ManifestSet, RepoSettings), GitError> {
        let RevisionFiles {
            files,
            rendered,
            settings,
        } = self.read_revision(repo, rev, subpath)?;
        let mut set = parse_files(files);
        set.extend(rendered);
        set.diagnostics.extend(settings.diagnostics);
        set.drift_ignore = settings.settings.drift.ignore.clone();
        Ok((set, settings.settings))
    }
}

/// Whether a file makes its folder one to render.
fn is_render_marker(name: &str) -> bool {
    config::KUSTOMIZATION_FILES.contains(&name) || name == config::HELM_CHART_FILE
}

fn read_blobs(
    repo: &Repository,
    entries: Vec<(String, git2::Oid)>,
) -> Result<Vec<(String, Vec<u8>)>, GitError> {
    let mut files = entries
        .into_iter()
        .map(|(path, oid)| Ok((path, repo.find_blob(oid)?.content().to_vec())))
        .collect::<Result<Vec<_>, git2::Error>>()?;
    files.sort();
    Ok(files)
}

/// Every regular file of a tree by path: hidden folders, symbolic links and submodules
/// left out (a link could point anywhere on the machine that renders).
fn list_tree(root: &git2::Tree) -> Result<HashMap<String, git2::Oid>, GitError> {
    let mut out = HashMap::new();
    root.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        let name = entry.name().unwrap_or_default();
        match entry.kind() {
            Some(ObjectType::Tree) if name.starts_with('.') => git2::TreeWalkResult::Skip,
            Some(ObjectType::Blob) if entry.filemode() != i32::from(git2::FileMode::Link) => {
                out.insert(format!("{dir}{name}"), entry.id());
                git2::TreeWalkResult::Ok
            }
            _ => git2::TreeWalkResult::Ok,
        }
    })?;
    Ok(out)
}

/// Parses (file, bytes) pairs into a manifest set; a file that is not text is an error
/// about that file only.
pub fn parse_files(files: Vec<(String, Vec<u8>)>) -> ManifestSet {
    let mut set = ManifestSet::default();
    for (path, bytes) in files {
        match decode(bytes) {
            Some(text) => set.add_file(&path, &text),
            None => {
                set.files_read += 1;
                set.unreadable_files.insert(path.clone());
                set.diagnostics.push(crate::flink::spec::Diagnostic {
                    severity: crate::flink::spec::Severity::Error,
                    file: path,
                    line: 1,
                    column: 1,
                    field: String::new(),
                    resource: None,
                    message: "the file is not text: it is neither UTF-8 nor UTF-16 with a byte \
                              order mark (the encodings kubectl reads)"
                        .to_string(),
                });
            }
        }
    }
    set
}

/// The text of a file as kubectl's YAML reader (go-yaml) decodes it: UTF-8, or UTF-16 when
/// the file starts with a UTF-16 byte order mark (`FF FE` or `FE FF`).
fn decode(bytes: Vec<u8>) -> Option<String> {
    let bytes = match String::from_utf8(bytes) {
        Ok(text) => return Some(text),
        Err(e) => e.into_bytes(),
    };
    let little_endian = match bytes.get(..2)? {
        [0xFF, 0xFE] => true,
        [0xFE, 0xFF] => false,
        _ => return None,
    };
    if bytes.len() % 2 != 0 {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|pair| match (little_endian, pair) {
            (true, [lo, hi]) | (false, [hi, lo]) => u16::from_le_bytes([*lo, *hi]),
            _ => 0,
        })
        .collect();
    String::from_utf16(&units).ok()
}

/// Whether a file name is read as a manifest.
pub fn is_manifest_name(name: &str) -> bool {
    !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

/// Reads manifests from a folder or a single file on disk (the working tree, uncommitted
/// changes included). Paths in diagnostics are relative to `path`'s folder.
pub fn read_folder(path: &Path) -> Result<Vec<(String, Vec<u8>)>, std::io::Error> {
    let mut files = Vec::new();
    if path.is_file() {
        files.push((path.display().to_string(), std::fs::read(path)?));
        return Ok(files);
    }
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            let p = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(p);
            } else if is_manifest_name(&name) {
                let rel = p.strip_prefix(path).unwrap_or(&p).display().to_string();
                files.push((rel, std::fs::read(&p)?));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Reads a folder or a single file on disk as [`GitSource::load`] reads a revision:
/// kustomizations and charts in the folder rendered (from a copy), the rest read as
/// manifest files; with the settings of the nearest `.flink-gitops.yaml` from the folder up
/// to its Git work tree's root ([`repo_settings::on_disk`]), whose problems are among the
/// set's diagnostics.
pub fn load_folder(
    path: &Path,
    tools: &RenderTools,
) -> Result<(ManifestSet, RepoSettings), std::io::Error> {
    let settings = repo_settings::on_disk(path);
    let with_settings = |mut set: ManifestSet| {
        set.diagnostics.extend(settings.diagnostics.iter().cloned());
        (set, settings.settings.clone())
    };
    if path.is_file() {
        return Ok(with_settings(parse_files(read_folder(path)?)));
    }
    let mut paths = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let p = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if kind.is_dir() && !hidden {
                stack.push(p);
            } else if kind.is_file() {
                if let Ok(rel) = p.strip_prefix(path) {
                    paths.push(rel.to_string_lossy().into_owned());
                }
            }
        }
    }
    paths.sort();
    let renders = paths
        .iter()
        .any(|p| is_render_marker(p.rsplit('/').next().unwrap_or(p)));
    if !renders {
        return Ok(with_settings(parse_files(read_folder(path)?)));
    }
    let read_text = |p: &str| std::fs::read_to_string(path.join(p)).ok();
    let plan = RenderPlan::new(&paths, None, settings.for_rendering().cloned(), &read_text);
    let read = |p: &str| std::fs::read(path.join(p));
    let rendered = render::render(&plan, &paths, &read, tools);
    let mut files = Vec::new();
    for p in &paths {
        let plain = p.split('/').all(|c| !c.starts_with('.'))
            && is_manifest_name(p.rsplit('/').next().unwrap_or(p))
            && !plan.owns(p);
        if plain {
            files.push((p.clone(), std::fs::read(path.join(p))?));
        }
    }
    let mut set = parse_files(files);
    set.extend(rendered);
    Ok(with_settings(set))
}

fn callbacks<'a>(deadline: Instant) -> RemoteCallbacks<'a> {
    let mut cb = RemoteCallbacks::new();
    let mut attempts = 0u32;
    cb.credentials(move |url, username, allowed| {
        attempts += 1;
        if attempts > 4 {
            return Err(git2::Error::from_str(
                "authentication failed (credentials were rejected)",
            ));
        }
        let user = username.unwrap_or("git");
        if allowed.contains(CredentialType::SSH_KEY) {
            // A key file named in the environment first, then the SSH agent.
            return match (std::env::var(config::ENV_GIT_SSH_KEY).ok(), attempts) {
                (Some(key), 1) => Cred::ssh_key(user, None, Path::new(&key), None),
                _ => Cred::ssh_key_from_agent(user),
            };
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            if let Ok(token) = std::env::var(config::ENV_GIT_TOKEN) {
                return Cred::userpass_plaintext(username.unwrap_or("x-access-token"), &token);
            }
            if let Ok(cfg) = git2::Config::open_default() {
                return Cred::credential_helper(&cfg, url, username);
            }
        }
        if allowed.contains(CredentialType::DEFAULT) {
            return Cred::default();
        }
        Err(git2::Error::from_str(
            "no credentials available for this remote",
        ))
    });
    cb.transfer_progress(move |_| Instant::now() < deadline);
    cb.sideband_progress(move |_| Instant::now() < deadline);
    cb
}

/// Runs blocking Git work off the async runtime, bounded by a deadline.
pub async fn run_blocking<T, F>(timeout: Duration, what: &str, f: F) -> Result<T, GitError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, GitError> + Send + 'static,
{
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(GitError::Task(join.to_string())),
        Err(_) => Err(GitError::Timeout {
            url: what.to_string(),
            timeout,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_told_apart() {
        assert_eq!(
            RepoLocation::parse("/srv/repo"),
            RepoLocation::Local("/srv/repo".into())
        );
        assert!(matches!(
            RepoLocation::parse("file:///srv/repo.git"),
            RepoLocation::Remote(_)
        ));
        assert!(matches!(
            RepoLocation::parse("git@github.com:org/repo.git"),
            RepoLocation::Remote(_)
        ));
        assert!(matches!(
            RepoLocation::parse("https://h/r.git"),
            RepoLocation::Remote(_)
        ));
        assert_eq!(
            RepoLocation::parse("./examples/repo"),
            RepoLocation::Local("./examples/repo".into())
        );
    }

    #[test]
    fn tokens_are_redacted() {
        assert_eq!(
            redact("https://user:tok@host/r.git"),
            "https://***@host/r.git"
        );
        assert_eq!(redact("file:///x"), "file:///x");
    }
}
