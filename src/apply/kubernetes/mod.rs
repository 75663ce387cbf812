//! The Kubernetes runtime: Flink clusters as Kubernetes objects.
//!
//! A FlinkDeployment in the operator's `mode: standalone` becomes a ConfigMap, a JobManager
//! Deployment, the JobManager's RPC and REST Services and a TaskManager Deployment, applied
//! with server-side apply (field manager `flink-gitops`). [`render`] turns a
//! [`crate::apply::runtime::ClusterRequest`] into those objects without any I/O;
//! [`pod_template`] layers pod templates as the operator does.
//!
//! The test cluster for this runtime is built and started by `scripts/kube-lab/`.

pub mod pod_template;
pub mod port_forward;
pub mod render;
pub mod runtime;

pub use render::{render, ObjectNames, Owner, RenderContext, RenderError, RenderedCluster};
pub use runtime::{KubernetesRuntime, KubernetesSettings, RestAccess};

#[cfg(test)]
mod tests;
