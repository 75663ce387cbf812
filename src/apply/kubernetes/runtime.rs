//! [`KubernetesRuntime`]: the [`Runtime`] that applies rendered clusters to a Kubernetes API
//! server with kube-rs.
//!
//! * **deploy**: server-side apply (field manager `flink-gitops`, forced) of the ConfigMap
//!   and the JobManager Deployment, then, with owner references to that Deployment, of the
//!   ConfigMap again, the Services and the TaskManager Deployment. A new deployment attempt
//!   changes the pod templates' generation annotation, so the pods are replaced.
//! * **observe**: the JobManager Deployment missing is positive evidence of no cluster;
//!   otherwise the cluster's pods are read, and a pod that cannot run (image pull errors,
//!   crash loops, OOM kills, bad container config) is [`ClusterPresence::Exited`] with the
//!   pod and container named; a pod that cannot be scheduled is an `Err` (waiting). An API
//!   server that does not answer is an `Err`, never `Missing`.
//! * **delete**: the cluster's objects, by name. Flink's own HA ConfigMaps
//!   (`<cluster-id>-cluster-config-map` and the job ones) are never touched, so a
//!   last-state upgrade can restore from them.
//! * **REST**: `http://<name>-rest.<namespace>:<port>` (the Service's DNS name, for an agent
//!   inside the cluster), a local port forwarded through the API server
//!   ([`RestAccess::PortForward`], for an agent or CLI outside it), or `http://<host>:<port>`
//!   with [`RestAccess::Host`] (clusters on the host network, such as the test cluster of
//!   `scripts/kube-lab`).
//! * **replacing** a cluster (an upgrade after its job stopped with a savepoint, a recovery):
//!   the old pods are deleted with no grace period once the new objects are applied, as the
//!   job they ran is already stopped. The 1.20 kubelet takes 4-60 s to confirm a pod's
//!   deletion, and a `Recreate` rollout (and the scheduler's host-port check) waits for it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::port_forward::PortForwards;
use super::render::{self, ObjectNames, Owner, RenderContext, RenderError};
use crate::apply::local::uri_to_path;
use crate::apply::runtime::{ClusterPresence, ClusterRequest, Runtime, RuntimeError};
use crate::config;
use crate::flink::spec::{DeploymentMode, ResourceKey};

/// How long a call to the API server may take before the cluster counts as unknown.
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(10);

/// A client from `KUBECONFIG` / `~/.kube/config`, or the in-cluster service account, with
/// `timeout` on connecting, reading and writing (the runtime's and leader election's).
///
/// # Errors
/// [`KubeSetupError`] when no configuration is found or the client cannot be built.
pub async fn infer_client(timeout: Duration) -> Result<Client, KubeSetupError> {
    let mut cfg = kube::Config::infer()
        .await
        .map_err(|e| KubeSetupError::Config(e.to_string()))?;
    cfg.connect_timeout = Some(timeout);
    cfg.read_timeout = Some(timeout);
    cfg.write_timeout = Some(timeout);
    Client::try_from(cfg).map_err(KubeSetupError::Client)
}

/// How long a replacement waits for the old cluster's force-deleted pods to go.
pub const DEFAULT_POD_DELETION_WAIT: Duration = Duration::from_secs(90);

/// The label selector of Flink's HA ConfigMaps of a cluster (Flink 2.x labels them
/// `app=<cluster-id>`, `type=flink-native-kubernetes`).
fn ha_selector(name: &str) -> String {
    format!("app={name},type=flink-native-kubernetes")
}

/// The job id a JobManager Deployment runs: its `--job-id` argument (application mode).
fn deployed_job_id(d: &Deployment) -> Option<String> {
    let args = d
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == render::MAIN_CONTAINER)?
        .args
        .as_ref()?;
    args.iter()
        .position(|a| a == "--job-id")
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// How the agent reaches a cluster's REST API (`--rest-access`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestAccess {
    /// The REST Service's DNS name (the agent runs in the cluster): `service`.
    ServiceDns,
    /// A local port forwarded through the API server to the JobManager pod (the agent or
    /// the CLI runs outside the cluster): `port-forward`.
    PortForward,
    /// This host and the REST Service's port: JobManagers on the host network of a node
    /// the agent can reach at `host` (the test cluster): `host:<address>`.
    Host(String),
}

/// A `--rest-access` value that is none of the allowed forms.
#[derive(Debug, thiserror::Error)]
#[error("found {0:?}; allowed: auto, service, port-forward, host:<address>")]
pub struct InvalidRestAccess(String);

impl RestAccess {
    /// Parses `auto`, `service`, `port-forward` or `host:<address>`; `auto` is `service`
    /// when `in_cluster` (the `KUBERNETES_SERVICE_HOST` variable is set), else `port-forward`.
    ///
    /// # Errors
    /// [`InvalidRestAccess`] for anything else.
    pub fn parse(s: &str, in_cluster: bool) -> Result<RestAccess, InvalidRestAccess> {
        match s {
            "auto" if in_cluster => Ok(RestAccess::ServiceDns),
            "auto" => Ok(RestAccess::PortForward),
            "service" => Ok(RestAccess::ServiceDns),
            "port-forward" => Ok(RestAccess::PortForward),
            _ => match s.strip_prefix("host:") {
                Some(host) if !host.is_empty() => Ok(RestAccess::Host(host.to_string())),
                _ => Err(InvalidRestAccess(s.to_string())),
            },
        }
    }
}

/// Settings of the Kubernetes runtime.
#[derive(Debug, Clone)]
pub struct KubernetesSettings {
    pub rest_access: RestAccess,
    /// `local://` and `file://` jars of session jobs are read under this folder.
    pub jar_root: PathBuf,
}

/// Flink clusters as Kubernetes objects.
#[derive(Clone)]
pub struct KubernetesRuntime {
    client: Client,
    settings: KubernetesSettings,
    forwards: Arc<PortForwards>,
}

impl std::fmt::Debug for KubernetesRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesRuntime")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Why the runtime cannot start.
#[derive(Debug, thiserror::Error)]
pub enum KubeSetupError {
    #[error("Kubernetes client configuration (kubeconfig or in-cluster): {0}")]
    Config(String),
    #[error("Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

fn unavailable(what: impl Into<String>, reason: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Unavailable {
        what: what.into(),
        reason: reason.to_string(),
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

impl From<RenderError> for RuntimeError {
    fn from(e: RenderError) -> Self {
        RuntimeError::Rejected {
            what: "the cluster's Kubernetes objects".to_string(),
            reason: e.to_string(),
        }
    }
}

impl KubernetesRuntime {
    /// A client from `KUBECONFIG` / `~/.kube/config`, or the in-cluster service account,
    /// with [`DEFAULT_API_TIMEOUT`] on every call.
    ///
    /// # Errors
    /// [`KubeSetupError`] when no configuration is found or the client cannot be built.
    pub async fn connect(
        settings: KubernetesSettings,
    ) -> Result<KubernetesRuntime, KubeSetupError> {
        let client = infer_client(DEFAULT_API_TIMEOUT).await?;
        Ok(Self::with_client(client, settings))
    }

    /// A runtime over a client made elsewhere.
    pub fn with_client(client: Client, settings: KubernetesSettings) -> KubernetesRuntime {
        KubernetesRuntime {
            client,
            settings,
            forwards: Arc::new(PortForwards::default()),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The clusters this agent manages in every namespace it may list (JobManager
    /// Deployments labelled `app.kubernetes.io/managed-by=flink-gitops`), for `diff`'s
    /// unmanaged-cluster check. Empty when the API server refuses or does not answer
    /// (logged): `diff` then reports only what Git and the status branch name.
    pub async fn cluster_keys(&self) -> Vec<ResourceKey> {
        let selector = format!(
            "{}={},{}=jobmanager",
            config::KUBE_LABEL_MANAGED_BY,
            config::KUBE_FIELD_MANAGER,
            config::KUBE_LABEL_COMPONENT
        );
        let all: Api<Deployment> = Api::all(self.client.clone());
        match all.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list
                .items
                .iter()
                .filter_map(|d| {
                    let ns = d.metadata.namespace.clone()?;
                    let name = d.metadata.labels.as_ref()?.get(config::KUBE_LABEL_NAME)?;
                    Some(ResourceKey::new(
                        ns,
                        crate::flink::spec::Kind::FlinkDeployment,
                        name.clone(),
                    ))
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the clusters on Kubernetes; unmanaged clusters are not looked for");
                Vec::new()
            }
        }
    }

    fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn apply<K>(&self, namespace: &str, name: &str, object: &K) -> Result<K, RuntimeError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Serialize
            + std::fmt::Debug,
        <K as kube::Resource>::DynamicType: Default,
    {
        let params = PatchParams::apply(config::KUBE_FIELD_MANAGER).force();
        self.api::<K>(namespace)
            .patch(name, &params, &Patch::Apply(object))
            .await
            .map_err(|e| match e {
                // The server refused the object as written (invalid, forbidden by policy).
                kube::Error::Api(s) if s.code == 422 || s.code == 400 => RuntimeError::Rejected {
                    what: format!("{} {namespace}/{name}", K::kind(&Default::default())),
                    reason: s.message.clone(),
                },
                other => unavailable(
                    format!("apply {} {namespace}/{name}", K::kind(&Default::default())),
                    other,
                ),
            })
    }

    async fn delete_named<K>(&self, namespace: &str, name: &str) -> Result<(), RuntimeError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        <K as kube::Resource>::DynamicType: Default,
    {
        match self
            .api::<K>(namespace)
            .delete(name, &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(unavailable(
                format!("delete {} {namespace}/{name}", K::kind(&Default::default())),
                e,
            )),
        }
    }

    /// Renders and applies a cluster; the Git revision goes into an annotation. What
    /// [`Runtime::deploy_cluster`] does, with the revision the trait does not carry.
    ///
    /// # Errors
    /// [`RuntimeError::Rejected`] for a manifest that cannot be rendered or that the API
    /// server refuses; [`RuntimeError::Unavailable`] when the API server does not answer.
    pub async fn deploy(
        &self,
        request: &ClusterRequest,
        revision: Option<&str>,
    ) -> Result<(), RuntimeError> {
        if request.spec.effective_mode() == DeploymentMode::Native {
            return Err(RuntimeError::Rejected {
                what: request.key.to_string(),
                reason: "mode: native is not supported by the kubernetes runtime yet; set spec.mode: standalone"
                    .to_string(),
            });
        }
        let ns = &request.key.namespace;
        let names = ObjectNames::of(&request.key.name);
        // First the ConfigMap (the pods mount it) and the JobManager Deployment, whose uid
        // the other objects name as their owner.
        let first = render::render(
            request,
            RenderContext {
                revision,
                owner: None,
            },
        )?;
        if render::ha_enabled(&first.flink_config) {
            self.replace_ha_application(request).await?;
        } else if request.job.is_some() {
            tracing::warn!(resource = %request.key, "application cluster without high availability: should Kubernetes replace its JobManager pod (eviction, node failure, deletion), Flink runs the job again from the state it was deployed with, not from its newest checkpoint; set high-availability.type: kubernetes (as the operator recommends)");
        }
        self.apply(ns, &names.config_map, &first.config_map).await?;
        let jm = self.apply(ns, &names.jobmanager, &first.jobmanager).await?;
        let uid = jm.metadata.uid.ok_or_else(|| {
            unavailable(
                format!("Deployment {ns}/{}", names.jobmanager),
                "the API server returned no uid",
            )
        })?;
        let owner = Owner {
            name: names.jobmanager.clone(),
            uid,
        };
        let owned = render::render(
            request,
            RenderContext {
                revision,
                owner: Some(&owner),
            },
        )?;
        self.apply(ns, &names.config_map, &owned.config_map).await?;
        self.apply(ns, &names.rpc_service, &owned.rpc_service)
            .await?;
        self.apply(ns, &names.rest_service, &owned.rest_service)
            .await?;
        self.apply(ns, &names.taskmanager, &owned.taskmanager)
            .await?;
        tracing::info!(resource = %request.key, generation = request.generation, "applied the cluster's Kubernetes objects");
        // The pods of earlier attempts ran a job that is stopped by now (the runtime's
        // contract): remove them at once rather than wait for the kubelet.
        let generation = request.generation.to_string();
        self.force_delete_pods(&request.key, |pod| {
            pod.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(config::KUBE_ANNOTATION_GENERATION))
                != Some(&generation)
        })
        .await;
        Ok(())
    }

    /// Before an application cluster with HA is replaced by one running another job id: the
    /// old cluster (its application ended) and its HA metadata go first, or the new
    /// JobManager would recover the old application from that metadata and refuse its own
    /// job. A new cluster under the same job id (a last-state upgrade, a recovery) keeps
    /// the metadata it restores from. The operator's ApplicationReconciler#deploy
    /// ("Deleting cluster with terminated application before new deployment", HA data
    /// deleted unless HA metadata is required).
    async fn replace_ha_application(&self, request: &ClusterRequest) -> Result<(), RuntimeError> {
        let Some(job) = &request.job else {
            return Ok(());
        };
        let ns = &request.key.namespace;
        let names = ObjectNames::of(&request.key.name);
        let existing = self
            .api::<Deployment>(ns)
            .get_opt(&names.jobmanager)
            .await
            .map_err(|e| unavailable(format!("get Deployment {ns}/{}", names.jobmanager), e))?;
        let Some(existing) = existing else {
            return Ok(());
        };
        let running = deployed_job_id(&existing);
        if running.as_deref() == Some(job.job_id.as_str()) {
            return Ok(());
        }
        tracing::info!(resource = %request.key, old_job = running.as_deref().unwrap_or("?"), new_job = %job.job_id, "deleting the cluster with its ended application and its HA metadata before the new deployment");
        self.delete_cluster(&request.key).await?;
        self.delete_ha_metadata(&request.key).await
    }

    /// Flink's HA ConfigMaps of the cluster.
    async fn ha_config_maps(&self, key: &ResourceKey) -> Result<Vec<ConfigMap>, RuntimeError> {
        let ns = &key.namespace;
        let selector = ha_selector(&key.name);
        self.api::<ConfigMap>(ns)
            .list(&ListParams::default().labels(&selector))
            .await
            .map(|l| l.items)
            .map_err(|e| unavailable(format!("list ConfigMaps {ns} {selector}"), e))
    }

    /// Waits until no pod of the cluster is left.
    async fn wait_pods_gone(&self, key: &ResourceKey, limit: Duration) -> Result<(), RuntimeError> {
        let pods = self.api::<Pod>(&key.namespace);
        let selector = format!("{}={}", config::KUBE_LABEL_NAME, key.name);
        let start = std::time::Instant::now();
        loop {
            let list = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| unavailable(format!("list pods {} {selector}", key.namespace), e))?;
            if list.items.is_empty() {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(unavailable(
                    format!("the old pods of {key}"),
                    format!("{} still there after {limit:?}", list.items.len()),
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Deletes the cluster's pods that `select` picks with no grace period (`kubectl delete
    /// --force --grace-period=0`). Best effort: the Deployments replace or remove them
    /// anyway, only later; a failure is logged.
    async fn force_delete_pods(&self, key: &ResourceKey, select: impl Fn(&Pod) -> bool) {
        let pods = self.api::<Pod>(&key.namespace);
        let selector = format!("{}={}", config::KUBE_LABEL_NAME, key.name);
        let list = match pods.list(&ListParams::default().labels(&selector)).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(resource = %key, error = %e, "cannot list the old pods; the Deployments remove them");
                return;
            }
        };
        let now = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::background()
        };
        for pod in list.items.iter().filter(|p| select(p)) {
            let Some(name) = pod.metadata.name.as_deref() else {
                continue;
            };
            match pods.delete(name, &now).await {
                Ok(_) => tracing::debug!(resource = %key, pod = name, "deleted an old pod"),
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    tracing::debug!(resource = %key, pod = name, error = %e, "cannot delete an old pod; its Deployment removes it")
                }
            }
        }
    }

    /// Why a pod of the cluster cannot run, when one cannot: the first hard failure found
    /// (`Ok(Some)`), a pod that waits for a node (`Err`, waiting), or nothing (`Ok(None)`).
    fn pod_failure(pods: &[Pod]) -> Result<Option<String>, RuntimeError> {
        const HARD: &[&str] = &[
            "ImagePullBackOff",
            "ErrImagePull",
            "ErrImageNeverPull",
            "InvalidImageName",
            "CrashLoopBackOff",
            "CreateContainerConfigError",
            "CreateContainerError",
            "RunContainerError",
        ];
        let mut unschedulable = None;
        for pod in pods {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let Some(status) = &pod.status else { continue };
            let statuses = status
                .init_container_statuses
                .iter()
                .flatten()
                .chain(status.container_statuses.iter().flatten());
            for c in statuses {
                let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
                if let Some(w) = waiting {
                    let reason = w.reason.clone().unwrap_or_default();
                    if HARD.contains(&reason.as_str()) {
                        let oom = c
                            .last_state
                            .as_ref()
                            .and_then(|s| s.terminated.as_ref())
                            .and_then(|t| t.reason.clone())
                            .filter(|r| r == "OOMKilled");
                        let detail = match oom {
                            Some(r) => format!("{reason} (last exit: {r})"),
                            None => match &w.message {
                                Some(m) if !m.is_empty() => format!("{reason}: {m}"),
                                _ => reason,
                            },
                        };
                        return Ok(Some(format!("pod {name} container {}: {detail}", c.name)));
                    }
                }
                let terminated = c
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .or_else(|| c.last_state.as_ref().and_then(|s| s.terminated.as_ref()));
                if let Some(t) = terminated {
                    if t.reason.as_deref() == Some("OOMKilled") {
                        return Ok(Some(format!("pod {name} container {}: OOMKilled", c.name)));
                    }
                }
            }
            if status.phase.as_deref() == Some("Pending") {
                let unscheduled = status
                    .conditions
                    .iter()
                    .flatten()
                    .find(|c| c.type_ == "PodScheduled" && c.status == "False");
                if let Some(c) = unscheduled {
                    unschedulable.get_or_insert_with(|| {
                        format!(
                            "pod {name} Pending: {}",
                            c.message
                                .clone()
                                .or_else(|| c.reason.clone())
                                .unwrap_or_default()
                        )
                    });
                }
            }
        }
        match unschedulable {
            Some(why) => Err(unavailable("waiting for a node", why)),
            None => Ok(None),
        }
    }
}

impl Runtime for KubernetesRuntime {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    async fn deploy_cluster(&self, request: ClusterRequest) -> Result<(), RuntimeError> {
        self.deploy(&request, request.revision.as_deref()).await
    }

    async fn delete_cluster(&self, key: &ResourceKey) -> Result<(), RuntimeError> {
        let ns = &key.namespace;
        let names = ObjectNames::of(&key.name);
        // Everything by name (owner references would take the rest with the JobManager
        // Deployment, but only once the garbage collector gets to it). Flink's HA
        // ConfigMaps have other names and are kept.
        self.delete_named::<Deployment>(ns, &names.taskmanager)
            .await?;
        self.delete_named::<Deployment>(ns, &names.jobmanager)
            .await?;
        self.delete_named::<Service>(ns, &names.rest_service)
            .await?;
        self.delete_named::<Service>(ns, &names.rpc_service).await?;
        self.delete_named::<ConfigMap>(ns, &names.config_map)
            .await?;
        // A JobManager with HA metadata must really stop before that metadata may go (a
        // force-deleted pod's container runs on for a moment and renews its leadership
        // ConfigMap): its pods are deleted gracefully, and `delete_ha_metadata` waits for
        // them. Without HA they go at once.
        if self.ha_config_maps(key).await?.is_empty() {
            self.force_delete_pods(key, |_| true).await;
        }
        self.forwards.forget(key);
        tracing::info!(resource = %key, "deleted the cluster's Kubernetes objects");
        Ok(())
    }

    /// Flink's HA ConfigMaps of the cluster (labelled `app=<cluster-id>`,
    /// `type=flink-native-kubernetes` by Flink 2.x), as the operator deletes them with the
    /// FlinkDeployment.
    async fn delete_ha_metadata(&self, key: &ResourceKey) -> Result<(), RuntimeError> {
        let ns = &key.namespace;
        let found = self.ha_config_maps(key).await?;
        if found.is_empty() {
            return Ok(());
        }
        // The JobManager that wrote them must be gone first (see delete_cluster).
        self.wait_pods_gone(key, DEFAULT_POD_DELETION_WAIT).await?;
        for cm in &found {
            if let Some(name) = cm.metadata.name.as_deref() {
                self.delete_named::<ConfigMap>(ns, name).await?;
                tracing::info!(resource = %key, config_map = name, "deleted a high-availability ConfigMap");
            }
        }
        Ok(())
    }

    async fn observe_cluster(&self, key: &ResourceKey) -> Result<ClusterPresence, RuntimeError> {
        let ns = &key.namespace;
        let names = ObjectNames::of(&key.name);
        let jm = self
            .api::<Deployment>(ns)
            .get_opt(&names.jobmanager)
            .await
            .map_err(|e| unavailable(format!("get Deployment {ns}/{}", names.jobmanager), e))?;
        let Some(jm) = jm else {
            return Ok(ClusterPresence::Missing);
        };
        if jm.metadata.deletion_timestamp.is_some() {
            return Ok(ClusterPresence::Exited {
                reason: format!("Deployment {ns}/{} is being deleted", names.jobmanager),
            });
        }
        let generation = jm
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(config::KUBE_ANNOTATION_GENERATION))
            .and_then(|g| g.parse::<u64>().ok());
        let selector = format!("{}={}", config::KUBE_LABEL_NAME, key.name);
        let pods = self
            .api::<Pod>(ns)
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| unavailable(format!("list pods {ns} {selector}"), e))?;
        if let Some(reason) = Self::pod_failure(&pods.items)? {
            return Ok(ClusterPresence::Exited { reason });
        }
        let tm = self
            .api::<Deployment>(ns)
            .get_opt(&names.taskmanager)
            .await
            .map_err(|e| unavailable(format!("get Deployment {ns}/{}", names.taskmanager), e))?;
        let task_managers = tm
            .and_then(|d| d.spec)
            .and_then(|s| s.replicas)
            .unwrap_or(1)
            .max(1) as u32;
        Ok(ClusterPresence::Running {
            task_managers,
            generation,
        })
    }

    async fn rest_url(&self, key: &ResourceKey) -> Result<Option<String>, RuntimeError> {
        let ns = &key.namespace;
        let names = ObjectNames::of(&key.name);
        let svc = self
            .api::<Service>(ns)
            .get_opt(&names.rest_service)
            .await
            .map_err(|e| unavailable(format!("get Service {ns}/{}", names.rest_service), e))?;
        let Some(svc) = svc else { return Ok(None) };
        let rest = svc
            .spec
            .and_then(|s| s.ports)
            .and_then(|p| p.into_iter().find(|p| p.name.as_deref() == Some("rest")));
        let port = rest
            .as_ref()
            .map(|p| p.port)
            .unwrap_or(i32::from(render::DEFAULT_REST_PORT));
        // The port the JobManager listens on (a port-forward goes to the pod, not the
        // Service).
        let container_port = match rest.and_then(|p| p.target_port) {
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p)) => p,
            _ => port,
        };
        Ok(Some(match &self.settings.rest_access {
            RestAccess::ServiceDns => format!("http://{}.{ns}:{port}", names.rest_service),
            RestAccess::Host(host) => format!("http://{host}:{port}"),
            RestAccess::PortForward => {
                let remote = u16::try_from(container_port).map_err(|_| RuntimeError::Rejected {
                    what: format!("Service {ns}/{}", names.rest_service),
                    reason: format!("port {container_port} is not a TCP port"),
                })?;
                self.forwards.url(&self.client, key, remote).await?
            }
        }))
    }

    async fn fetch_jar(&self, uri: &str) -> Result<PathBuf, RuntimeError> {
        let jar_err = |reason: String| RuntimeError::Jar {
            uri: uri.to_string(),
            reason,
            transient: false,
        };
        let path = if let Some(rest) = uri.strip_prefix("local://") {
            self.settings.jar_root.join(rest.trim_start_matches('/'))
        } else if uri.starts_with("file:") {
            uri_to_path(uri).ok_or_else(|| jar_err("a file: URI needs an absolute path".into()))?
        } else {
            return Err(jar_err(
                "the kubernetes runtime reads session job jars from local:// and file:// for now"
                    .into(),
            ));
        };
        if path.is_file() {
            Ok(path)
        } else {
            Err(jar_err(format!("{} does not exist", path.display())))
        }
    }

    fn default_configuration(&self, _key: &ResourceKey) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).expect("pod")
    }

    #[test]
    fn image_pull_failure_names_pod_and_container() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "c-abc"},
            "status": {"phase": "Pending", "containerStatuses": [{
                "name": "flink-main-container", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
                "state": {"waiting": {"reason": "ErrImageNeverPull", "message": "image \"x\" not present"}}}]}
        }));
        let why = KubernetesRuntime::pod_failure(&[p])
            .expect("not waiting")
            .expect("a failure");
        assert_eq!(
            why,
            "pod c-abc container flink-main-container: ErrImageNeverPull: image \"x\" not present"
        );
    }

    #[test]
    fn oom_kill_in_crash_loop_is_named() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "c-tm"},
            "status": {"phase": "Running", "containerStatuses": [{
                "name": "flink-main-container", "ready": false, "restartCount": 3, "image": "x", "imageID": "",
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}
        }));
        let why = KubernetesRuntime::pod_failure(&[p])
            .expect("ok")
            .expect("a failure");
        assert_eq!(
            why,
            "pod c-tm container flink-main-container: CrashLoopBackOff (last exit: OOMKilled)"
        );
    }

    #[test]
    fn unschedulable_pod_is_waiting_not_a_failure() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "c-jm"},
            "status": {"phase": "Pending", "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 Insufficient memory."}]}
        }));
        let err = KubernetesRuntime::pod_failure(&[p]).expect_err("waiting");
        assert!(err.is_transient());
        assert!(err
            .to_string()
            .contains("pod c-jm Pending: 0/1 nodes are available: 1 Insufficient memory."));
        // A pod that is merely starting is neither.
        let p =
            pod(serde_json::json!({"metadata": {"name": "c-jm"}, "status": {"phase": "Pending"}}));
        assert_eq!(KubernetesRuntime::pod_failure(&[p]).expect("ok"), None);
    }
}
