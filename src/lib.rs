//! flink-gitops: a GitOps agent for Apache Flink.
//!
//! Data flows one way: [`git`] reads manifests at a revision, [`flink::spec`] parses and
//! validates them, [`diff`] compares desired, recorded and live state and classifies each
//! change, [`flink::lifecycle`] decides what to do (pure), and [`apply`] carries it out
//! against a runtime through the Flink REST API ([`flink::rest`]).
//! [`config`] is the one home of configuration keys and their defaults; [`repo_settings`]
//! parses the settings a repository gives itself (`.flink-gitops.yaml`; [`git`] finds and
//! reads the file).
//! Around the agent: [`telemetry`] (Prometheus metrics, health), [`serve`] (the HTTP server:
//! metrics, health, Git webhooks), [`notify`] (notifications to webhooks and chat), and
//! [`signature`] (HMAC-SHA256 body signatures), and [`leader`] (leader election on a
//! Kubernetes Lease, so one replica of several acts).

pub mod apply;
pub mod cli;
pub mod config;
pub mod diff;
pub mod flink;
pub mod git;
pub mod leader;
pub mod notify;
pub mod repo_settings;
pub mod serve;
pub mod signature;
pub mod telemetry;
