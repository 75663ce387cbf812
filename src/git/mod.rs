//! Git: reading manifests at a revision ([`source`]). All of it is blocking git2 work;
//! async callers go through [`source::run_blocking`], which moves it off the runtime and
//! bounds it with a deadline.

pub mod source;

pub use source::{GitError, GitSource, RepoLocation, Revision};
