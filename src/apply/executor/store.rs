//! Where the agent keeps its records: the status branch in Git ([`GitStatusStore`]), or
//! memory ([`MemoryStatusStore`], for scenario tests and `plan`-like dry runs). The
//! executor writes through [`StatusStore`] and never holds a fact only in memory across an
//! external step.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::flink::lifecycle::record::Record;
use crate::flink::spec::ResourceKey;
use crate::git::source::GitError;
use crate::git::status::StatusBranch;

/// Errors of a [`StatusStore`]. All are transient for the loop: a resource whose record
/// cannot be written takes no further step until it can.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("status branch: {0}")]
    Git(#[from] GitError),
    #[error("status store: {0}")]
    Unavailable(String),
}

/// Durable storage of records. Blocking calls: the executor runs them off the async
/// threads with a deadline.
pub trait StatusStore: Send + Sync + 'static {
    /// Every record (fetching the newest first, for a remote).
    fn load(&self) -> Result<BTreeMap<ResourceKey, Record>, StatusError>;
    /// Writes one record with a commit message; writing an unchanged record is a no-op.
    fn write(&self, record: &Record, message: &str) -> Result<(), StatusError>;
}

/// Records on the status branch (one YAML file per resource).
#[derive(Debug, Clone)]
pub struct GitStatusStore {
    branch: StatusBranch,
}

impl GitStatusStore {
    pub fn new(branch: StatusBranch) -> Self {
        GitStatusStore { branch }
    }
}

impl StatusStore for GitStatusStore {
    fn load(&self) -> Result<BTreeMap<ResourceKey, Record>, StatusError> {
        Ok(self.branch.load()?)
    }

    fn write(&self, record: &Record, message: &str) -> Result<(), StatusError> {
        let commit = self.branch.write(record, message)?;
        tracing::debug!(resource = %record.key(), commit = commit.as_deref().unwrap_or("unchanged"), "status written");
        Ok(())
    }
}

/// Records in memory, shared by clones (a test drops one agent and starts another on the
/// same store, as a restarted agent reads the same branch). `fail_writes` makes writes
/// fail, as an unreachable Git server would.
#[derive(Debug, Clone, Default)]
pub struct MemoryStatusStore {
    inner: Arc<Mutex<MemoryInner>>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    records: BTreeMap<ResourceKey, Record>,
    /// Commit messages, oldest first.
    log: Vec<(ResourceKey, String)>,
    fail_writes: bool,
}

impl MemoryStatusStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The commit messages written so far, oldest first.
    pub fn log(&self) -> Vec<(ResourceKey, String)> {
        self.inner.lock().map(|i| i.log.clone()).unwrap_or_default()
    }

    /// The stored record of a resource.
    pub fn get(&self, key: &ResourceKey) -> Option<Record> {
        self.inner
            .lock()
            .ok()
            .and_then(|i| i.records.get(key).cloned())
    }

    /// Makes every write fail (true) or succeed again (false).
    pub fn fail_writes(&self, fail: bool) {
        if let Ok(mut i) = self.inner.lock() {
            i.fail_writes = fail;
        }
    }
}

impl StatusStore for MemoryStatusStore {
    fn load(&self) -> Result<BTreeMap<ResourceKey, Record>, StatusError> {
        self.inner
            .lock()
            .map(|i| i.records.clone())
            .map_err(|_| StatusError::Unavailable("store poisoned".to_string()))
    }

    fn write(&self, record: &Record, message: &str) -> Result<(), StatusError> {
        let mut i = self
            .inner
            .lock()
            .map_err(|_| StatusError::Unavailable("store poisoned".to_string()))?;
        if i.fail_writes {
            return Err(StatusError::Unavailable(
                "writes disabled by the test".to_string(),
            ));
        }
        let key = record.key();
        if i.records.get(&key) == Some(record) {
            return Ok(());
        }
        i.records.insert(key.clone(), record.clone());
        i.log.push((key, message.to_string()));
        Ok(())
    }
}
