//! The manifest model: what a `FlinkDeployment` or `FlinkSessionJob` says, typed.
//!
//! Field names serialise exactly as users write them (camelCase), so the canonical JSON of a
//! spec is both the input of the spec hash and the text shown in plan diffs. Maps are
//! `BTreeMap`s and optional fields are skipped when absent, so the canonical form does not
//! depend on key order or on how a field was spelled in YAML.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The two workload kinds this agent manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    FlinkDeployment,
    FlinkSessionJob,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::FlinkDeployment => "FlinkDeployment",
            Kind::FlinkSessionJob => "FlinkSessionJob",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies a resource: namespace, kind and name, as Kubernetes would.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourceKey {
    pub namespace: String,
    pub kind: Kind,
    pub name: String,
}

impl ResourceKey {
    pub fn new(namespace: impl Into<String>, kind: Kind, name: impl Into<String>) -> Self {
        ResourceKey {
            namespace: namespace.into(),
            kind,
            name: name.into(),
        }
    }

    /// The relative path of this resource's status file: `<namespace>/<kind>/<name>.yaml`.
    pub fn status_path(&self) -> String {
        format!("{}/{}/{}.yaml", self.namespace, self.kind, self.name)
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.kind, self.name)
    }
}

/// `spec.flinkVersion`. Every value the operator's CRD knows; [`FlinkVersion::is_supported`]
/// says which ones this agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FlinkVersion {
    #[serde(rename = "v1_13")]
    V1_13,
    #[serde(rename = "v1_14")]
    V1_14,
    #[serde(rename = "v1_15")]
    V1_15,
    #[serde(rename = "v1_16")]
    V1_16,
    #[serde(rename = "v1_17")]
    V1_17,
    #[serde(rename = "v1_18")]
    V1_18,
    #[serde(rename = "v1_19")]
    V1_19,
    #[serde(rename = "v1_20")]
    V1_20,
    #[serde(rename = "v2_0")]
    V2_0,
    #[serde(rename = "v2_1")]
    V2_1,
    #[serde(rename = "v2_2")]
    V2_2,
    #[serde(rename = "v2_3")]
    V2_3,
    #[serde(rename = "v2_4")]
    V2_4,
}

impl FlinkVersion {
    pub const ALL: [FlinkVersion; 13] = [
        FlinkVersion::V1_13,
        FlinkVersion::V1_14,
        FlinkVersion::V1_15,
        FlinkVersion::V1_16,
        FlinkVersion::V1_17,
        FlinkVersion::V1_18,
        FlinkVersion::V1_19,
        FlinkVersion::V1_20,
        FlinkVersion::V2_0,
        FlinkVersion::V2_1,
        FlinkVersion::V2_2,
        FlinkVersion::V2_3,
        FlinkVersion::V2_4,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FlinkVersion::V1_13 => "v1_13",
            FlinkVersion::V1_14 => "v1_14",
            FlinkVersion::V1_15 => "v1_15",
            FlinkVersion::V1_16 => "v1_16",
            FlinkVersion::V1_17 => "v1_17",
            FlinkVersion::V1_18 => "v1_18",
            FlinkVersion::V1_19 => "v1_19",
            FlinkVersion::V1_20 => "v1_20",
            FlinkVersion::V2_0 => "v2_0",
            FlinkVersion::V2_1 => "v2_1",
            FlinkVersion::V2_2 => "v2_2",
            FlinkVersion::V2_3 => "v2_3",
            FlinkVersion::V2_4 => "v2_4",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Released Flink versions this agent deploys: 1.15 to 2.3.
    pub fn is_supported(self) -> bool {
        (FlinkVersion::V1_15..=FlinkVersion::V2_3).contains(&self)
    }

    /// Flink 2.x reads the renamed configuration keys (`execution.checkpointing.dir`, ...).
    pub fn is_2x(self) -> bool {
        self >= FlinkVersion::V2_0
    }
}

impl fmt::Display for FlinkVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `job.upgradeMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum UpgradeMode {
    #[default]
    #[serde(rename = "stateless")]
    Stateless,
    #[serde(rename = "savepoint")]
    Savepoint,
    #[serde(rename = "last-state")]
    LastState,
}

impl UpgradeMode {
    pub const ALLOWED: [(&'static str, UpgradeMode); 3] = [
        ("stateless", UpgradeMode::Stateless),
        ("savepoint", UpgradeMode::Savepoint),
        ("last-state", UpgradeMode::LastState),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UpgradeMode::Stateless => "stateless",
            UpgradeMode::Savepoint => "savepoint",
            UpgradeMode::LastState => "last-state",
        }
    }

    /// Whether upgrades in this mode carry the job's state over.
    pub fn is_stateful(self) -> bool {
        !matches!(self, UpgradeMode::Stateless)
    }
}

impl fmt::Display for UpgradeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `job.state`: what the user wants the job to be doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum JobState {
    #[default]
    #[serde(rename = "running")]
    Running,
    #[serde(rename = "suspended")]
    Suspended,
}

impl JobState {
    pub const ALLOWED: [(&'static str, JobState); 2] = [
        ("running", JobState::Running),
        ("suspended", JobState::Suspended),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Suspended => "suspended",
        }
    }
}

/// `spec.mode`: how the cluster is deployed on Kubernetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum DeploymentMode {
    #[default]
    #[serde(rename = "native")]
    Native,
    #[serde(rename = "standalone")]
    Standalone,
}

impl DeploymentMode {
    pub const ALLOWED: [(&'static str, DeploymentMode); 2] = [
        ("native", DeploymentMode::Native),
        ("standalone", DeploymentMode::Standalone),
    ];
}

/// `jobManager.resource` / `taskManager.resource`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<String>,
}

/// `spec.jobManager`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobManagerSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<serde_json::Value>,
}

/// `spec.taskManager`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskManagerSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<serde_json::Value>,
}

/// `spec.ingress`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<serde_json::Value>,
}

/// `spec.job`, shared by application deployments and session jobs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    #[serde(rename = "jarURI", skip_serializing_if = "Option::is_none")]
    pub jar_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_class: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<i64>,
    #[serde(default)]
    pub upgrade_mode: UpgradeMode,
    #[serde(default)]
    pub state: JobState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub savepoint_trigger_nonce: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_trigger_nonce: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub savepoint_redeploy_nonce: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaler_reset_nonce: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_savepoint_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_non_restored_state: Option<bool>,
}

/// `spec` of a `FlinkDeployment`. With `job` it is an application cluster, without it a
/// session cluster.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flink_version: Option<FlinkVersion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub flink_configuration: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_manager: Option<JobManagerSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_manager: Option<TaskManagerSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<DeploymentMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub log_configuration: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_nonce: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<JobSpec>,
}

impl DeploymentSpec {
    pub fn is_session_cluster(&self) -> bool {
        self.job.is_none()
    }

    pub fn effective_mode(&self) -> DeploymentMode {
        self.mode.unwrap_or_default()
    }
}

/// `spec` of a `FlinkSessionJob`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionJobSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_name: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub flink_configuration: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_nonce: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<JobSpec>,
}

/// The spec of either kind. Serialises as the bare spec; read it back with
/// [`Spec::from_json`], which needs the kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Spec {
    Deployment(DeploymentSpec),
    SessionJob(SessionJobSpec),
}

impl Spec {
    pub fn kind(&self) -> Kind {
        match self {
            Spec::Deployment(_) => Kind::FlinkDeployment,
            Spec::SessionJob(_) => Kind::FlinkSessionJob,
        }
    }

    /// Reads a spec of the given kind back from its canonical JSON.
    pub fn from_json(kind: Kind, value: serde_json::Value) -> Result<Spec, serde_json::Error> {
        Ok(match kind {
            Kind::FlinkDeployment => Spec::Deployment(serde_json::from_value(value)?),
            Kind::FlinkSessionJob => Spec::SessionJob(serde_json::from_value(value)?),
        })
    }

    pub fn job(&self) -> Option<&JobSpec> {
        match self {
            Spec::Deployment(d) => d.job.as_ref(),
            Spec::SessionJob(s) => s.job.as_ref(),
        }
    }

    pub fn flink_configuration(&self) -> &BTreeMap<String, String> {
        match self {
            Spec::Deployment(d) => &d.flink_configuration,
            Spec::SessionJob(s) => &s.flink_configuration,
        }
    }

    pub fn restart_nonce(&self) -> Option<i64> {
        match self {
            Spec::Deployment(d) => d.restart_nonce,
            Spec::SessionJob(s) => s.restart_nonce,
        }
    }

    pub fn upgrade_mode(&self) -> Option<UpgradeMode> {
        self.job().map(|j| j.upgrade_mode)
    }

    /// The canonical JSON form: sorted keys, absent fields omitted. Its sha256 is the spec
    /// hash, and its pretty form is what plan diffs show.
    pub fn canonical_json(&self) -> serde_json::Value {
        // Serialising these plain data types cannot fail; a Null here would only hide a bug
        // in a Serialize impl, and the hash would still be stable.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null) // ok: infallible for plain data
    }

    /// The spec hash: sha256 of the canonical JSON, as hex.
    pub fn hash(&self) -> SpecHash {
        let text = self.canonical_json().to_string();
        SpecHash(hex::encode(Sha256::digest(text.as_bytes())))
    }

    /// The spec as YAML text with sorted keys, for human-readable diffs.
    pub fn to_canonical_yaml(&self) -> String {
        serde_yaml::to_string(&self.canonical_json()).unwrap_or_default()
    }
}

/// sha256 (hex) of a spec's canonical form; identifies what was deployed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SpecHash(pub String);

impl SpecHash {
    pub fn short(&self) -> &str {
        self.0.get(..12).unwrap_or(&self.0)
    }
}

impl fmt::Display for SpecHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
