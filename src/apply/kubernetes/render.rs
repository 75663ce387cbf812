//! Rendering a standalone Flink cluster as Kubernetes objects. Pure: no I/O, no clock.
//!
//! A FlinkDeployment in the operator's `mode: standalone` becomes, with the names the
//! operator (and Flink's Kubernetes decorators, which it reuses) gives them:
//!
//! | object | name | from |
//! |---|---|---|
//! | ConfigMap | `flink-config-<name>` | `config.yaml` ([`kubernetes_configuration`]) and the log configuration (`FlinkConfMountDecorator`) |
//! | Deployment | `<name>` | the JobManager (`StandaloneKubernetesJobManagerFactory`) |
//! | Service (headless) | `<name>` | JobManager RPC and blob ports (`InternalServiceDecorator`) |
//! | Service | `<name>-rest` | the REST port (`ExternalServiceDecorator`) |
//! | Deployment | `<name>-taskmanager` | the TaskManagers (`StandaloneKubernetesTaskManagerFactory`) |
//!
//! Pod templates are layered as the operator layers them ([`super::pod_template`]), then
//! decorated as Flink's `InitJobManagerDecorator` / the operator's
//! `InitStandaloneTaskManagerDecorator` and `Cmd*Decorator`s do: the main container
//! `flink-main-container` gets the image, pull policy, resources, ports, environment,
//! command and arguments and goes last in the container list; other containers, init
//! containers, volumes and mounts of the template stay as written.
//!
//! Where this differs from the operator, on purpose:
//! * Deployments use the `Recreate` strategy: two JobManagers of one cluster never run at once.
//! * With `kubernetes.hostnetwork.enabled` the blob and TaskManager RPC ports stay as
//!   configured (random by default) instead of being fixed, so several clusters (and
//!   several TaskManagers) fit on one node; the JobManager's startup probe then names the
//!   REST port by number, as host-network pods declare no container ports.
//! * A `jobmanager.rpc.address` written in the manifest is kept (the operator overwrites it
//!   with the RPC Service's DNS name): on clusters without DNS it is how TaskManagers find
//!   the JobManager.
//! * `UserLibMountDecorator` (an empty dir over `/opt/flink/usrlib`) is not mirrored: it
//!   would hide the jar the image carries there.
//! * Every container and Service port carries `protocol: TCP`: server-side apply on
//!   Kubernetes before 1.22 rejects list entries without it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec as K8sDeploymentSpec, DeploymentStrategy,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, KeyToPath, ObjectFieldSelector, PodTemplateSpec, Probe, ResourceRequirements,
    Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::pod_template;
use crate::apply::flink_config::{self, ConfigLayers};
use crate::apply::runtime::ClusterRequest;
use crate::config;
use crate::flink::spec::{quantity, Spec};

/// Name of the main container in pod templates (Flink's `Constants.MAIN_CONTAINER_NAME`).
pub const MAIN_CONTAINER: &str = "flink-main-container";
/// Process memory of a JobManager or TaskManager whose manifest names none.
pub const DEFAULT_PROCESS_MEMORY: &str = "1g";
/// Flink's default ports (`Constants` in flink-kubernetes).
pub const DEFAULT_REST_PORT: u16 = 8081;
pub const DEFAULT_RPC_PORT: u16 = 6123;
pub const DEFAULT_BLOB_PORT: u16 = 6124;
pub const DEFAULT_TM_RPC_PORT: u16 = 6122;
/// Where the ConfigMap is mounted (`kubernetes.flink.conf.dir`'s default).
pub const DEFAULT_CONF_DIR: &str = "/opt/flink/conf";
/// The image's entrypoint (`kubernetes.entry.path`'s default).
pub const DEFAULT_ENTRYPOINT: &str = "/docker-entrypoint.sh";
/// Env var with the pod's IP (Flink's `Constants.ENV_FLINK_POD_IP_ADDRESS`).
pub const POD_IP_ENV: &str = "_POD_IP_ADDRESS";
const CONF_VOLUME: &str = "flink-config-volume";

/// Flags the JVM needs on Java 17 for Flink (the distribution's `env.java.opts.all`): the
/// image's own `config.yaml` is hidden by the mounted ConfigMap, so they are set here.
pub const JAVA_17_OPTS: &str = "--add-exports=java.base/sun.net.util=ALL-UNNAMED --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.api=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.parser=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.tree=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.util=ALL-UNNAMED --add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.lang.reflect=ALL-UNNAMED --add-opens=java.base/java.text=ALL-UNNAMED --add-opens=java.base/java.time=ALL-UNNAMED --add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED --add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED";

/// The log configuration a cluster gets when its manifest gives none: console (for
/// `kubectl logs`) and the file Flink's REST API serves (`/jobmanager/logs`).
pub const DEFAULT_LOG4J_CONSOLE: &str = "\
rootLogger.level = ${env:ROOT_LOG_LEVEL:-INFO}
rootLogger.appenderRef.console.ref = ConsoleAppender
rootLogger.appenderRef.rolling.ref = RollingFileAppender
logger.pekko.name = org.apache.pekko
logger.pekko.level = INFO
logger.kafka.name = org.apache.kafka
logger.kafka.level = INFO
logger.hadoop.name = org.apache.hadoop
logger.hadoop.level = WARN
logger.zookeeper.name = org.apache.zookeeper
logger.zookeeper.level = INFO
logger.netty.name = org.jboss.netty.channel.DefaultChannelPipeline
logger.netty.level = OFF
appender.console.name = ConsoleAppender
appender.console.type = CONSOLE
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
appender.rolling.name = RollingFileAppender
appender.rolling.type = RollingFile
appender.rolling.append = true
appender.rolling.fileName = ${sys:log.file}
appender.rolling.filePattern = ${sys:log.file}.%i
appender.rolling.layout.type = PatternLayout
appender.rolling.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
appender.rolling.policies.type = Policies
appender.rolling.policies.size.type = SizeBasedTriggeringPolicy
appender.rolling.policies.size.size = 100MB
appender.rolling.strategy.type = DefaultRolloverStrategy
appender.rolling.strategy.max = 10
";

/// Why a cluster cannot be rendered. Each needs a manifest change.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RenderError {
    /// A pod template (after layering) is not a valid Kubernetes PodTemplateSpec.
    #[error("{role} pod template: {reason}")]
    PodTemplate { role: &'static str, reason: String },
    /// No image: neither `spec.image` nor `kubernetes.container.image.ref`.
    #[error("no image: set spec.image")]
    NoImage,
    /// The application jar is not in the image.
    #[error("jarURI {0}: standalone application clusters on Kubernetes start jobs from a local:// jar in the image")]
    Jar(String),
    /// A configuration value the renderer needs cannot be read.
    #[error("flinkConfiguration {key}: {reason}")]
    Config { key: String, reason: String },
}

/// The JobManager Deployment's identity, for owner references on everything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub uid: String,
}

/// What [`render`] needs besides the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RenderContext<'a> {
    /// The Git revision the spec comes from, written into an annotation.
    pub revision: Option<&'a str>,
    /// Set once the JobManager Deployment exists: every other object names it as owner, so
    /// deleting the JobManager Deployment removes the whole cluster.
    pub owner: Option<&'a Owner>,
}

/// The objects of one cluster, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedCluster {
    pub config_map: ConfigMap,
    pub jobmanager: Deployment,
    pub rpc_service: Service,
    pub rest_service: Service,
    pub taskmanager: Deployment,
    /// The `config.yaml` the ConfigMap holds, as a map.
    pub flink_config: BTreeMap<String, String>,
}

impl RenderedCluster {
    /// Every object as JSON, in apply order: the JobManager Deployment first (the owner of
    /// the rest), then the ConfigMap, the Services and the TaskManager Deployment.
    pub fn objects(&self) -> Vec<Value> {
        [
            serde_json::to_value(&self.jobmanager),
            serde_json::to_value(&self.config_map),
            serde_json::to_value(&self.rpc_service),
            serde_json::to_value(&self.rest_service),
            serde_json::to_value(&self.taskmanager),
        ]
        .into_iter()
        // Serialising k8s-openapi types into a JSON value cannot fail (no non-string map keys).
        .filter_map(Result::ok)
        .collect()
    }
}

/// Names of a cluster's objects (the operator's names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectNames {
    pub jobmanager: String,
    pub taskmanager: String,
    pub config_map: String,
    pub rpc_service: String,
    pub rest_service: String,
}

impl ObjectNames {
    pub fn of(name: &str) -> ObjectNames {
        ObjectNames {
            jobmanager: name.to_string(),
            taskmanager: format!("{name}-taskmanager"),
            config_map: format!("flink-config-{name}"),
            rpc_service: name.to_string(),
            rest_service: format!("{name}-rest"),
        }
    }
}

/// Whether the configuration turns on high availability (`high-availability.type` other
/// than `NONE`).
pub fn ha_enabled(cfg: &BTreeMap<String, String>) -> bool {
    config::lookup(cfg, &config::HA_TYPE)
        .is_some_and(|(_, v)| !v.trim().is_empty() && !v.trim().eq_ignore_ascii_case("none"))
}

fn flag(cfg: &BTreeMap<String, String>, key: &str, default: bool) -> bool {
    match cfg.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        Some(v) if v == "true" => true,
        Some(v) if v == "false" => false,
        _ => default,
    }
}

/// A port option as a fixed number, `None` for `0` or a range (Flink picks one at start).
fn fixed_port(cfg: &BTreeMap<String, String>, key: &str) -> Result<Option<u16>, RenderError> {
    let Some(v) = cfg.get(key) else {
        return Ok(None);
    };
    let v = v.trim();
    if v.contains(['-', ',']) {
        return Ok(None);
    }
    let port: u16 = v.parse().map_err(|_| RenderError::Config {
        key: key.to_string(),
        reason: format!("{v:?} is not a port"),
    })?;
    Ok((port != 0).then_some(port))
}

/// The cluster's `config.yaml` on Kubernetes: the shared layers
/// ([`flink_config::cluster_configuration`]) with Kubernetes defaults under them (bind to
/// all interfaces, Flink's fixed ports, the Java 17 flags), then what the agent must set:
/// cluster id and namespace, the HA cluster id, the JobManager's address (the RPC
/// Service's DNS name unless the manifest names one or HA finds the leader), and fixed
/// blob and TaskManager RPC ports off the host network (as the operator's standalone
/// cluster descriptor does).
pub fn kubernetes_configuration(
    request: &ClusterRequest,
) -> Result<BTreeMap<String, String>, RenderError> {
    let key = &request.key;
    let host_network = flag(
        &request.spec.flink_configuration,
        "kubernetes.hostnetwork.enabled",
        false,
    );
    let mut defaults: BTreeMap<String, String> = [
        ("env.java.opts.all", JAVA_17_OPTS.to_string()),
        ("jobmanager.bind-host", "0.0.0.0".to_string()),
        ("taskmanager.bind-host", "0.0.0.0".to_string()),
        ("rest.bind-address", "0.0.0.0".to_string()),
        ("rest.port", DEFAULT_REST_PORT.to_string()),
        ("jobmanager.rpc.port", DEFAULT_RPC_PORT.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if !host_network {
        defaults.insert("blob.server.port".into(), DEFAULT_BLOB_PORT.to_string());
        defaults.insert(
            "taskmanager.rpc.port".into(),
            DEFAULT_TM_RPC_PORT.to_string(),
        );
    }
    let skip = |k: &str| {
        config::FORBIDDEN_OPTIONS
            .iter()
            .any(|o| o.names().any(|n| n == k))
    };
    let mut cfg = flink_config::cluster_configuration(
        request,
        &ConfigLayers {
            runtime_defaults: defaults,
            skip_key: &skip,
            default_process_memory: DEFAULT_PROCESS_MEMORY,
        },
    );
    cfg.insert("kubernetes.cluster-id".into(), key.name.clone());
    cfg.insert("kubernetes.namespace".into(), key.namespace.clone());
    if ha_enabled(&cfg) {
        cfg.insert("high-availability.cluster-id".into(), key.name.clone());
        // A job result store of this deployment attempt's own: an application that ended
        // (stopped with a savepoint, `execution.shutdown-on-application-finish: false`)
        // leaves a result there that a new JobManager would take for its own application
        // (the operator's ApplicationReconciler#setRandomJobResultStorePath, with the job
        // id and attempt in place of a random UUID, so rendering stays deterministic).
        let storage = config::lookup(&cfg, &config::HA_STORAGE_DIR).map(|(_, v)| v.to_string());
        if let (Some(job), Some(storage)) = (&request.job, storage) {
            cfg.entry("job-result-store.delete-on-commit".into())
                .or_insert_with(|| "false".into());
            cfg.insert(
                "job-result-store.storage-path".into(),
                format!(
                    "{}/job-result-store/{}/{}-{}",
                    storage.trim_end_matches('/'),
                    key.name,
                    job.job_id,
                    request.generation
                ),
            );
        }
    } else if !request
        .spec
        .flink_configuration
        .contains_key("jobmanager.rpc.address")
    {
        cfg.insert(
            "jobmanager.rpc.address".into(),
            format!(
                "{}.{}",
                ObjectNames::of(&key.name).rpc_service,
                key.namespace
            ),
        );
    }
    if !host_network {
        for (option, port) in [
            ("blob.server.port", DEFAULT_BLOB_PORT),
            ("taskmanager.rpc.port", DEFAULT_TM_RPC_PORT),
        ] {
            if fixed_port(&cfg, option)?.is_none() {
                cfg.insert(option.into(), port.to_string());
            }
        }
    }
    Ok(cfg)
}

/// Renders the cluster of a standalone FlinkDeployment: see the module docs.
///
/// # Errors
/// [`RenderError`] when the manifest cannot be rendered as written (a pod template that is
/// not a PodTemplateSpec, no image, a jar that is not in the image, a bad port).
pub fn render(
    request: &ClusterRequest,
    ctx: RenderContext<'_>,
) -> Result<RenderedCluster, RenderError> {
    let key = &request.key;
    let spec = &request.spec;
    let names = ObjectNames::of(&key.name);
    let cfg = kubernetes_configuration(request)?;
    let spec_hash = Spec::Deployment(spec.clone()).hash();
    let host_network = flag(&cfg, "kubernetes.hostnetwork.enabled", false);
    let ha = ha_enabled(&cfg);

    // Metadata shared by every object.
    let annotations = {
        let mut a = BTreeMap::new();
        a.insert(
            config::KUBE_ANNOTATION_SPEC_HASH.to_string(),
            spec_hash.0.clone(),
        );
        if let Some(rev) = ctx.revision {
            a.insert(
                config::KUBE_ANNOTATION_REVISION.to_string(),
                rev.to_string(),
            );
        }
        a.insert(
            config::KUBE_ANNOTATION_GENERATION.to_string(),
            request.generation.to_string(),
        );
        a
    };
    let labels = |component: &str| -> BTreeMap<String, String> {
        [
            (config::KUBE_LABEL_NAME, key.name.as_str()),
            (config::KUBE_LABEL_COMPONENT, component),
            (config::KUBE_LABEL_MANAGED_BY, config::KUBE_FIELD_MANAGER),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let selector = |component: &str| -> BTreeMap<String, String> {
        [
            (config::KUBE_LABEL_NAME, key.name.as_str()),
            (config::KUBE_LABEL_COMPONENT, component),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let owner_refs = ctx.owner.map(|o| {
        vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: o.name.clone(),
            uid: o.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]
    });
    let meta = |name: &str, component: &str, owned: bool| ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(key.namespace.clone()),
        labels: Some(labels(component)),
        annotations: Some(annotations.clone()),
        owner_references: if owned { owner_refs.clone() } else { None },
        ..ObjectMeta::default()
    };

    // ConfigMap: config.yaml and the log configuration.
    let config_yaml = serde_yaml::to_string(&cfg).map_err(|e| RenderError::Config {
        key: "config.yaml".into(),
        reason: e.to_string(),
    })?;
    let mut conf_files: BTreeMap<String, String> = BTreeMap::new();
    conf_files.insert("config.yaml".into(), config_yaml);
    conf_files.insert(
        "log4j-console.properties".into(),
        DEFAULT_LOG4J_CONSOLE.to_string(),
    );
    for (file, text) in &spec.log_configuration {
        conf_files.insert(file.clone(), text.clone());
    }
    let config_map = ConfigMap {
        metadata: meta(&names.config_map, "config", true),
        data: Some(conf_files.clone()),
        ..ConfigMap::default()
    };

    // Ports.
    let rest_port = fixed_port(&cfg, "rest.port")?.unwrap_or(DEFAULT_REST_PORT);
    let rest_bind_port = match cfg.get("rest.bind-port") {
        Some(_) => fixed_port(&cfg, "rest.bind-port")?.unwrap_or(rest_port),
        None => rest_port,
    };
    let rpc_port = fixed_port(&cfg, "jobmanager.rpc.port")?.unwrap_or(DEFAULT_RPC_PORT);
    let blob_port = fixed_port(&cfg, "blob.server.port")?;
    let tm_rpc_port = fixed_port(&cfg, "taskmanager.rpc.port")?;

    // Pod templates, layered as the operator does.
    let by_name = flag(
        &spec.flink_configuration,
        config::OP_POD_TEMPLATE_MERGE_BY_NAME,
        false,
    );
    let jm_spec = spec.job_manager.as_ref();
    let tm_spec = spec.task_manager.as_ref();
    let mut jm_template = pod_template::merge_pod_templates(
        spec.pod_template.as_ref(),
        jm_spec.and_then(|j| j.pod_template.as_ref()),
        by_name,
    );
    let mut tm_template = pod_template::merge_pod_templates(
        spec.pod_template.as_ref(),
        tm_spec.and_then(|t| t.pod_template.as_ref()),
        by_name,
    );
    let jm_resource = jm_spec.and_then(|j| j.resource.as_ref());
    let tm_resource = tm_spec.and_then(|t| t.resource.as_ref());
    if let Some(storage) = jm_resource.and_then(|r| r.ephemeral_storage.as_deref()) {
        jm_template = Some(with_ephemeral_storage(jm_template, storage));
    }
    if let Some(storage) = tm_resource.and_then(|r| r.ephemeral_storage.as_deref()) {
        tm_template = Some(with_ephemeral_storage(tm_template, storage));
    }
    if flag(&spec.flink_configuration, config::OP_JM_STARTUP_PROBE, true) {
        let port = if host_network {
            IntOrString::Int(i32::from(rest_bind_port))
        } else {
            IntOrString::String("rest".into())
        };
        jm_template = Some(with_startup_probe(jm_template, port));
    }
    let jm_pod = parse_template("JobManager", jm_template)?;
    let tm_pod = parse_template("TaskManager", tm_template)?;

    // The main container's common part.
    let image = spec
        .image
        .clone()
        .or_else(|| cfg.get("kubernetes.container.image.ref").cloned())
        .or_else(|| cfg.get("kubernetes.container.image").cloned())
        .ok_or(RenderError::NoImage)?;
    let pull_policy = spec
        .image_pull_policy
        .clone()
        .or_else(|| cfg.get("kubernetes.container.image.pull-policy").cloned())
        .unwrap_or_else(|| "IfNotPresent".to_string());
    let service_account = spec
        .service_account
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let entrypoint = cfg
        .get("kubernetes.entry.path")
        .cloned()
        .unwrap_or_else(|| DEFAULT_ENTRYPOINT.to_string());
    let conf_dir = cfg
        .get("kubernetes.flink.conf.dir")
        .cloned()
        .unwrap_or_else(|| DEFAULT_CONF_DIR.to_string());
    let conf_volume = Volume {
        name: CONF_VOLUME.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: names.config_map.clone(),
            items: Some(
                conf_files
                    .keys()
                    .map(|f| KeyToPath {
                        key: f.clone(),
                        path: f.clone(),
                        mode: None,
                    })
                    .collect(),
            ),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    };
    let conf_mount = VolumeMount {
        name: CONF_VOLUME.into(),
        mount_path: conf_dir,
        ..VolumeMount::default()
    };

    // JobManager.
    let jm_memory_mb = memory_mb(&cfg, config::JM_PROCESS_MEMORY.key)?;
    let tm_memory_mb = memory_mb(&cfg, config::TM_PROCESS_MEMORY.key)?;
    let jm_cpu = jm_resource
        .and_then(|r| r.cpu)
        .or_else(|| number(&cfg, "kubernetes.jobmanager.cpu.amount"))
        .unwrap_or(1.0);
    let tm_cpu = tm_resource
        .and_then(|r| r.cpu)
        .or_else(|| number(&cfg, "kubernetes.taskmanager.cpu.amount").filter(|c| *c > 0.0))
        .unwrap_or(flink_config::task_slots(&cfg) as f64);
    let jm_args = jobmanager_args(request, ha)?;
    let mut jm_ports = Vec::new();
    if !host_network {
        jm_ports.push(tcp_port("rest", rest_bind_port));
        jm_ports.push(tcp_port("jobmanager-rpc", rpc_port));
        if let Some(p) = blob_port {
            jm_ports.push(tcp_port("blobserver", p));
        }
    }
    let mut jm_env = prefixed_env(&cfg, "containerized.master.env.");
    jm_env.push(EnvVar {
        name: POD_IP_ENV.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: Some("v1".into()),
                field_path: "status.podIP".into(),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    });
    let jm_main = MainContainer {
        image: &image,
        pull_policy: &pull_policy,
        memory_mb: jm_memory_mb,
        memory_limit_factor: number(&cfg, "kubernetes.jobmanager.memory.limit-factor")
            .unwrap_or(1.0),
        cpu: jm_cpu,
        cpu_limit_factor: number(&cfg, "kubernetes.jobmanager.cpu.limit-factor").unwrap_or(1.0),
        ports: jm_ports,
        env: jm_env,
        command: vec![entrypoint.clone()],
        args: jm_args,
        conf_mount: conf_mount.clone(),
    };
    let jm_pod_labels = {
        let mut l = labels("jobmanager");
        if let Some(extra) = cfg.get("kubernetes.jobmanager.labels") {
            l.extend(parse_key_values(extra));
        }
        l
    };
    let jm_template = decorate_pod(
        jm_pod,
        &jm_main,
        PodDecoration {
            service_account: &service_account,
            host_network: Some(host_network),
            labels: jm_pod_labels,
            annotations: annotations.clone(),
            conf_volume: conf_volume.clone(),
        },
    );
    let jobmanager = Deployment {
        metadata: meta(&names.jobmanager, "jobmanager", false),
        spec: Some(K8sDeploymentSpec {
            replicas: Some(
                jm_spec
                    .and_then(|j| j.replicas)
                    .unwrap_or(1)
                    .clamp(0, i64::from(i32::MAX)) as i32,
            ),
            selector: LabelSelector {
                match_labels: Some(selector("jobmanager")),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..DeploymentStrategy::default()
            }),
            template: jm_template,
            ..K8sDeploymentSpec::default()
        }),
        ..Deployment::default()
    };

    // TaskManagers.
    let mut tm_ports = Vec::new();
    if let Some(p) = tm_rpc_port {
        tm_ports.push(tcp_port("taskmanager-rpc", p));
    }
    let tm_main = MainContainer {
        image: &image,
        pull_policy: &pull_policy,
        memory_mb: tm_memory_mb,
        memory_limit_factor: number(&cfg, "kubernetes.taskmanager.memory.limit-factor")
            .unwrap_or(1.0),
        cpu: tm_cpu,
        cpu_limit_factor: number(&cfg, "kubernetes.taskmanager.cpu.limit-factor").unwrap_or(1.0),
        ports: tm_ports,
        env: prefixed_env(&cfg, "containerized.taskmanager.env."),
        command: vec![entrypoint],
        args: vec!["taskmanager".into()],
        conf_mount,
    };
    let tm_pod_labels = {
        let mut l = labels("taskmanager");
        if let Some(extra) = cfg.get("kubernetes.taskmanager.labels") {
            l.extend(parse_key_values(extra));
        }
        l
    };
    let tm_template = decorate_pod(
        tm_pod,
        &tm_main,
        PodDecoration {
            service_account: &service_account,
            host_network: None,
            labels: tm_pod_labels,
            annotations: annotations.clone(),
            conf_volume,
        },
    );
    let taskmanager = Deployment {
        metadata: meta(&names.taskmanager, "taskmanager", true),
        spec: Some(K8sDeploymentSpec {
            replicas: Some(
                flink_config::task_manager_count(spec, &cfg).min(i32::MAX as u32) as i32,
            ),
            selector: LabelSelector {
                match_labels: Some(selector("taskmanager")),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..DeploymentStrategy::default()
            }),
            template: tm_template,
            ..K8sDeploymentSpec::default()
        }),
        ..Deployment::default()
    };

    // Services.
    let mut rpc_ports = vec![service_port("jobmanager-rpc", rpc_port, rpc_port)];
    if let Some(p) = blob_port {
        rpc_ports.push(service_port("blobserver", p, p));
    }
    let rpc_service = Service {
        metadata: meta(&names.rpc_service, "jobmanager", true),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(selector("jobmanager")),
            ports: Some(rpc_ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let rest_type = cfg
        .get("kubernetes.rest-service.exposed.type")
        .cloned()
        .unwrap_or_else(|| "ClusterIP".to_string());
    let rest_service = Service {
        metadata: meta(&names.rest_service, "jobmanager", true),
        spec: Some(ServiceSpec {
            type_: Some(rest_type),
            selector: Some(selector("jobmanager")),
            ports: Some(vec![service_port("rest", rest_port, rest_bind_port)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };

    Ok(RenderedCluster {
        config_map,
        jobmanager,
        rpc_service,
        rest_service,
        taskmanager,
        flink_config: cfg,
    })
}

/// The JobManager's arguments to the image's entrypoint (the operator's
/// `CmdStandaloneJobManagerDecorator`, plus the fixed job id and the jar).
fn jobmanager_args(request: &ClusterRequest, ha: bool) -> Result<Vec<String>, RenderError> {
    let pod_ip_address = || {
        vec![
            "-D".to_string(),
            format!("jobmanager.rpc.address=$({POD_IP_ENV})"),
        ]
    };
    let Some(job) = &request.job else {
        let mut args = vec!["jobmanager".to_string()];
        if ha {
            args.extend(pod_ip_address());
        }
        return Ok(args);
    };
    let jar = job
        .jar_uri
        .strip_prefix("local://")
        .ok_or_else(|| RenderError::Jar(job.jar_uri.clone()))?;
    // `--jars` takes every following word up to the next option it knows, so an option
    // (`--job-id`, always given) must follow it before the program's own arguments.
    let mut args = vec![
        "standalone-job".to_string(),
        "--jars".to_string(),
        format!("/{}", jar.trim_start_matches('/')),
    ];
    if let Some(class) = &job.entry_class {
        args.extend(["--job-classname".to_string(), class.clone()]);
    }
    args.extend(["--job-id".to_string(), job.job_id.clone()]);
    if job.allow_non_restored_state {
        args.push("--allowNonRestoredState".to_string());
    }
    if let Some(path) = &job.restore {
        args.extend(["--fromSavepoint".to_string(), path.clone()]);
    }
    if ha {
        args.extend(pod_ip_address());
    }
    args.extend(job.args.iter().cloned());
    Ok(args)
}

struct MainContainer<'a> {
    image: &'a str,
    pull_policy: &'a str,
    memory_mb: u64,
    memory_limit_factor: f64,
    cpu: f64,
    cpu_limit_factor: f64,
    ports: Vec<ContainerPort>,
    env: Vec<EnvVar>,
    command: Vec<String>,
    args: Vec<String>,
    conf_mount: VolumeMount,
}

struct PodDecoration<'a> {
    service_account: &'a str,
    /// `Some` for the JobManager: Flink's decorator sets `hostNetwork` from
    /// `kubernetes.hostnetwork.enabled`; the TaskManager keeps the template's.
    host_network: Option<bool>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    conf_volume: Volume,
}

/// The layered template, decorated: see the module docs.
fn decorate_pod(
    mut pod: PodTemplateSpec,
    main: &MainContainer<'_>,
    d: PodDecoration<'_>,
) -> PodTemplateSpec {
    let mut meta = pod.metadata.take().unwrap_or_default();
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .extend(d.labels);
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .extend(d.annotations);
    pod.metadata = Some(meta);

    let mut spec = pod.spec.take().unwrap_or_default();
    spec.service_account = Some(d.service_account.to_string());
    spec.service_account_name = Some(d.service_account.to_string());
    if let Some(host_network) = d.host_network {
        spec.host_network = Some(host_network);
        spec.dns_policy = Some(if host_network {
            "ClusterFirstWithHostNet".to_string()
        } else {
            spec.dns_policy
                .take()
                .unwrap_or_else(|| "ClusterFirst".to_string())
        });
    }
    let mut containers = std::mem::take(&mut spec.containers);
    let index = containers.iter().position(|c| c.name == MAIN_CONTAINER);
    let mut container = match index {
        Some(i) => containers.remove(i),
        None => Container {
            name: MAIN_CONTAINER.into(),
            ..Container::default()
        },
    };
    container.image = Some(main.image.to_string());
    container.image_pull_policy = Some(main.pull_policy.to_string());
    container.resources = Some(resources(container.resources.take(), main));
    container
        .ports
        .get_or_insert_with(Vec::new)
        .extend(main.ports.iter().cloned());
    container
        .env
        .get_or_insert_with(Vec::new)
        .extend(main.env.iter().cloned());
    container.command = Some(main.command.clone());
    container.args = Some(main.args.clone());
    container
        .volume_mounts
        .get_or_insert_with(Vec::new)
        .push(main.conf_mount.clone());
    containers.push(container);
    // Server-side apply before Kubernetes 1.22 needs `protocol` on every port.
    for c in containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        for p in c.ports.iter_mut().flatten() {
            p.protocol.get_or_insert_with(|| "TCP".to_string());
        }
        if c.ports.as_ref().is_some_and(Vec::is_empty) {
            c.ports = None;
        }
        if c.env.as_ref().is_some_and(Vec::is_empty) {
            c.env = None;
        }
    }
    spec.containers = containers;
    spec.volumes
        .get_or_insert_with(Vec::new)
        .push(d.conf_volume);
    pod.spec = Some(spec);
    pod
}

/// Requests and limits as Flink's `KubernetesUtils.getResourceRequirements` sets them:
/// memory in MiB (the process size) and CPU, limits times the limit factors; other
/// resources of the template (ephemeral storage, GPUs) kept.
fn resources(
    template: Option<ResourceRequirements>,
    main: &MainContainer<'_>,
) -> ResourceRequirements {
    let mut r = template.unwrap_or_default();
    let memory_limit = (main.memory_mb as f64 * main.memory_limit_factor) as u64;
    let requests = r.requests.get_or_insert_with(BTreeMap::new);
    requests.insert("memory".into(), Quantity(format!("{}Mi", main.memory_mb)));
    requests.insert("cpu".into(), Quantity(cpu_quantity(main.cpu)));
    let limits = r.limits.get_or_insert_with(BTreeMap::new);
    limits.insert("memory".into(), Quantity(format!("{memory_limit}Mi")));
    limits.insert(
        "cpu".into(),
        Quantity(cpu_quantity(main.cpu * main.cpu_limit_factor)),
    );
    r
}

/// A CPU amount as a Kubernetes quantity: whole cores as a number, fractions in millicores.
fn cpu_quantity(cpu: f64) -> String {
    if cpu.fract() == 0.0 {
        format!("{}", cpu as i64)
    } else {
        format!("{}m", (cpu * 1000.0).round() as i64)
    }
}

fn memory_mb(cfg: &BTreeMap<String, String>, key: &str) -> Result<u64, RenderError> {
    let v = cfg
        .get(key)
        .map(String::as_str)
        .unwrap_or(DEFAULT_PROCESS_MEMORY);
    quantity::parse_memory(v)
        .map(|bytes| bytes >> 20)
        .ok_or_else(|| RenderError::Config {
            key: key.to_string(),
            reason: format!("{v:?} is not a memory size"),
        })
}

fn number(cfg: &BTreeMap<String, String>, key: &str) -> Option<f64> {
    cfg.get(key).and_then(|v| v.trim().parse::<f64>().ok())
}

/// Flink's map syntax `k1:v1,k2:v2`.
fn parse_key_values(text: &str) -> BTreeMap<String, String> {
    text.split(',')
        .filter_map(|kv| kv.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn prefixed_env(cfg: &BTreeMap<String, String>, prefix: &str) -> Vec<EnvVar> {
    cfg.iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(prefix).map(|name| EnvVar {
                name: name.to_string(),
                value: Some(v.clone()),
                ..EnvVar::default()
            })
        })
        .collect()
}

fn tcp_port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: i32::from(port),
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

fn service_port(name: &str, port: u16, target: u16) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port: i32::from(port),
        target_port: Some(IntOrString::Int(i32::from(target))),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

fn parse_template(
    role: &'static str,
    template: Option<Value>,
) -> Result<PodTemplateSpec, RenderError> {
    match template {
        None => Ok(PodTemplateSpec::default()),
        Some(v) => serde_json::from_value(v).map_err(|e| RenderError::PodTemplate {
            role,
            reason: e.to_string(),
        }),
    }
}

/// The main container of a template as a JSON object, added when missing.
fn main_container_json(template: Option<Value>) -> (Value, usize) {
    let mut t = template.unwrap_or_else(pod_template::empty);
    if !t.is_object() {
        t = pod_template::empty();
    }
    let spec = t
        .as_object_mut()
        .map(|o| o.entry("spec").or_insert_with(pod_template::empty));
    let containers = spec.and_then(|s| {
        if !s.is_object() {
            *s = pod_template::empty();
        }
        s.as_object_mut().map(|o| {
            o.entry("containers")
                .or_insert_with(|| Value::Array(Vec::new()))
        })
    });
    let mut index = 0;
    if let Some(Value::Array(list)) = containers {
        index = match list
            .iter()
            .position(|c| c.get("name").and_then(Value::as_str) == Some(MAIN_CONTAINER))
        {
            Some(i) => i,
            None => {
                list.push(serde_json::json!({ "name": MAIN_CONTAINER }));
                list.len() - 1
            }
        };
    }
    (t, index)
}

fn main_container_mut(t: &mut Value, index: usize) -> Option<&mut serde_json::Map<String, Value>> {
    t.get_mut("spec")?
        .get_mut("containers")?
        .get_mut(index)?
        .as_object_mut()
}

/// The operator's `applyResourceToPodTemplate`: `resource.ephemeralStorage` as request and
/// limit of the main container.
fn with_ephemeral_storage(template: Option<Value>, storage: &str) -> Value {
    let (mut t, index) = main_container_json(template);
    if let Some(c) = main_container_mut(&mut t, index) {
        let resources = c.entry("resources").or_insert_with(pod_template::empty);
        if let Some(r) = resources.as_object_mut() {
            for kind in ["requests", "limits"] {
                if let Some(m) = r
                    .entry(kind)
                    .or_insert_with(pod_template::empty)
                    .as_object_mut()
                {
                    m.insert(
                        "ephemeral-storage".into(),
                        Value::String(storage.to_string()),
                    );
                }
            }
        }
    }
    t
}

/// The operator's `FlinkUtils.addStartupProbe`: unless the main container has a startup
/// probe, one on REST `/config` every second that never gives up (the JobManager may take
/// long to come up; readiness is judged by the agent).
fn with_startup_probe(template: Option<Value>, port: IntOrString) -> Value {
    let (mut t, index) = main_container_json(template);
    if let Some(c) = main_container_mut(&mut t, index) {
        if !c.contains_key("startupProbe") {
            let probe = Probe {
                failure_threshold: Some(i32::MAX),
                period_seconds: Some(1),
                http_get: Some(HTTPGetAction {
                    path: Some("/config".into()),
                    port,
                    ..HTTPGetAction::default()
                }),
                ..Probe::default()
            };
            if let Ok(v) = serde_json::to_value(probe) {
                c.insert("startupProbe".into(), v);
            }
        }
    }
    t
}
