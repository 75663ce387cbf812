//! Carrying out decisions: the [`runtime::Runtime`] trait (where Flink clusters live: local
//! processes, or Kubernetes) and the [`executor`] that runs the observe, decide, act loop
//! for every resource and records each step on the status branch.

pub mod backoff;
pub mod drift_report;
pub mod executor;
pub mod flink_config;
pub mod kubernetes;
pub mod local;
pub mod runtime;
pub mod storage;
