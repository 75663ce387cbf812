//! What an agent is built from besides the runtime and Flink: where manifests come from,
//! and the time and fresh ids.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::flink::spec::{ManifestSet, OperatorVersion};
use crate::git::source::{GitError, GitSource, Revision};

/// Where the manifests come from. Blocking: called off the async threads.
pub trait ManifestSource: Send + Sync + 'static {
    /// Fetches and reads the manifests at the tip, validated.
    fn fetch(&self) -> Result<(Revision, ManifestSet), GitError>;
}

/// Manifests on a branch of a Git repository.
#[derive(Debug, Clone)]
pub struct GitManifests {
    pub source: GitSource,
    pub branch: String,
    pub path: Option<String>,
    /// Configuration the runtime adds under each manifest's own (validation takes it
    /// into account).
    pub default_configuration: BTreeMap<String, String>,
    /// The operator release whose rules apply (`--operator-version`); wins over the
    /// repository's `.flink-gitops.yaml`, read at the same tip.
    pub operator_version: Option<OperatorVersion>,
}

impl ManifestSource for GitManifests {
    fn fetch(&self) -> Result<(Revision, ManifestSet), GitError> {
        let spec = format!("+refs/heads/{0}:refs/heads/{0}", self.branch);
        self.source.fetch_refspecs(&[spec])?;
        let repo = self.source.open()?;
        let revision = self.source.resolve(&repo, &self.branch)?;
        // The repository's settings at the same tip; what is wrong in them is among the
        // set's diagnostics.
        let (mut set, settings) = self.source.load(&repo, &revision, self.path.as_deref())?;
        let mut options = settings.validation_options(self.operator_version);
        options.default_configuration = self.default_configuration.clone();
        set.validate(&options);
        Ok((revision, set))
    }
}

/// The time and fresh ids, injected so that tests can fix them.
pub trait Environment: Send + Sync + 'static {
    /// Milliseconds since the epoch.
    fn now_ms(&self) -> u64;
    /// A fresh 32-hex id (job ids, trigger ids).
    fn new_id(&self) -> String;
    /// A number in `[0, 1)` for backoff jitter.
    fn jitter(&self) -> f64;
}

/// The system clock and ids from a hash of time, process and a counter.
#[derive(Debug, Default)]
pub struct SystemEnvironment {
    counter: AtomicU64,
}

impl Environment for SystemEnvironment {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn new_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seed = format!("{nanos}|{}|{n}", std::process::id());
        hex::encode(Sha256::digest(seed.as_bytes()))[..32].to_string()
    }

    fn jitter(&self) -> f64 {
        let id = self.new_id();
        let n = u64::from_str_radix(&id[..12], 16).unwrap_or(0); // ok: 12 hex digits always parse
        (n as f64) / ((1u64 << 48) as f64)
    }
}
