//! Errors of one reconcile, each with the [`ErrorClass`] that decides how it is retried.

use std::time::Duration;

use super::store::StatusError;
use crate::apply::runtime::RuntimeError;
use crate::flink::rest::RestError;
use crate::git::source::GitError;

/// How an error is retried (Flux's kinds): transient errors with backoff, waiting ones
/// after a known time, stalled ones only once Git changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retry with per-resource exponential backoff.
    Transient,
    /// Retry after this long.
    Waiting(Duration),
    /// Needs a change in Git; reported, not retried.
    Stalled,
}

/// Why a reconcile of one resource ended early.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Flink or the runtime did not answer a question the decision needed.
    #[error("cannot observe: {error}")]
    Unreachable { error: String },
    /// A step's call failed in a way a retry may fix.
    #[error("{step} failed: {message}")]
    StepFailed { step: &'static str, message: String },
    /// The record could not be written: no further step runs until it is.
    #[error("cannot record status: {0}")]
    Status(#[from] StatusError),
    /// Blocking work did not finish in time (a Git write, a fetch).
    #[error("{what} did not finish within {after:?}")]
    Deadline { what: &'static str, after: Duration },
    /// The manifests could not be fetched or read.
    #[error("manifests: {0}")]
    Git(#[from] GitError),
    /// The resource failed (recorded as FAILED with this reason). Retried with backoff:
    /// a later decision may restart it (`job.restart.failed`) or try a pending change
    /// again, but a failure that repeats must not loop at the poll rate.
    #[error("{reason}: {message}")]
    Failed {
        reason: &'static str,
        message: String,
    },
    /// Leader election is on and this agent does not hold the Lease (or its renew
    /// deadline passed): it takes no step ([`super::AgentHooks::leadership`]).
    #[error("not the leader: no step taken")]
    NotLeading,
}

impl ReconcileError {
    /// The retry class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            ReconcileError::Unreachable { .. }
            | ReconcileError::StepFailed { .. }
            | ReconcileError::Status(_)
            | ReconcileError::Deadline { .. }
            | ReconcileError::Failed { .. }
            | ReconcileError::NotLeading => ErrorClass::Transient,
            ReconcileError::Git(e) if e.is_transient() => ErrorClass::Transient,
            ReconcileError::Git(_) => ErrorClass::Stalled,
        }
    }

    /// A short stable name, for metric labels and log fields.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ReconcileError::Unreachable { .. } => "unreachable",
            ReconcileError::StepFailed { .. } => "step_failed",
            ReconcileError::Status(_) => "status",
            ReconcileError::Deadline { .. } => "deadline",
            ReconcileError::Git(_) => "git",
            ReconcileError::Failed { .. } => "failed",
            ReconcileError::NotLeading => "not_leading",
        }
    }
}

/// Whether a failed REST call can be retried as it is ([`ErrorClass::Transient`]) or needs
/// a change in Git ([`ErrorClass::Stalled`]), by the error's variant.
pub fn rest_class(e: &RestError) -> ErrorClass {
    if e.is_transient() {
        ErrorClass::Transient
    } else {
        ErrorClass::Stalled
    }
}

/// The same for a runtime error.
pub fn runtime_class(e: &RuntimeError) -> ErrorClass {
    if e.is_transient() {
        ErrorClass::Transient
    } else {
        ErrorClass::Stalled
    }
}
