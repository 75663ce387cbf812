//! Git: reading manifests at a revision ([`source`]), finding and reading the repository's
//! `.flink-gitops.yaml` ([`repo_settings`]), rendering its kustomizations and Helm charts
//! ([`render`]), the status branch the agent writes what it did to ([`status`]), a
//! resource's deployed revisions read back from it ([`history`]), and scoped rollback
//! commits on the manifests branch ([`rollback`]). All of
//! it is blocking git2 work; async callers go through [`source::run_blocking`], which moves
//! it off the runtime and bounds it with a deadline.

pub mod history;
pub mod render;
pub mod repo_settings;
pub mod rollback;
pub mod source;
pub mod status;

pub use source::{GitError, GitSource, RepoLocation, Revision};
