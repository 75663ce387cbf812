//! Git: reading manifests at a revision ([`source`]) and the status branch the agent
//! writes what it did to ([`status`]). All of it is blocking git2 work;
//! async callers go through [`source::run_blocking`], which moves it off the runtime and
//! bounds it with a deadline.

pub mod source;
pub mod status;

pub use source::{GitError, GitSource, RepoLocation, Revision};
