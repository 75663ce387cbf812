//! The agent's own deployment (`deploy/`): the Helm chart lints and renders with its
//! variants, the plain manifests render with `kubectl kustomize`, every object round-trips
//! through its k8s-openapi type unchanged, the agent's Role grants exactly what the
//! Kubernetes runtime uses, and the chart's output, applied to the lab cluster with the
//! locally built agent image, runs an agent pod that deploys a Flink job and records it;
//! with two replicas and leader election exactly one acts, and when the leader crashes the
//! other takes over within the lease time without touching the job again.
//!
//! helm and kubectl are found as the agent finds its render tools (`FLINK_GITOPS_HELM`,
//! `FLINK_GITOPS_KUBECTL`, PATH, then what scripts/setup.sh installs in the cache); a test
//! is skipped, saying so, when they are not there. The lab test takes the lab cluster as
//! the other lab tests do (`harness::kube`: started when built but not running, skipped
//! when not built) and builds the agent image from this build's binary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use flink_gitops::config;
use flink_gitops::git::render::{RenderTools, Tool};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde_json::Value;

use crate::harness::flink::{field, Remote};
use crate::harness::kube::{kube_slot, node_ip, Lab, TestNamespace, FLINK_IMAGE, IMAGE_JOB_JAR};
use crate::harness::{bin, root, GitDaemon};

fn chart() -> PathBuf {
    root().join("deploy/helm/flink-gitops")
}

/// helm or kubectl as the agent's render tools find them; `None` (and a message) if absent.
fn tool(tool: Tool) -> Option<PathBuf> {
    let cache = flink_gitops::cli::cache_dir(
        std::env::var_os(config::ENV_CACHE_DIR)
            .map(PathBuf::from)
            .as_ref(),
    );
    let tools = RenderTools {
        kubectl: std::env::var_os(config::ENV_KUBECTL).map(PathBuf::from),
        helm: std::env::var_os(config::ENV_HELM).map(PathBuf::from),
        ..RenderTools::new(&cache)
    };
    match tools.program(tool) {
        Ok(p) if p.is_file() => Some(p),
        Ok(p) => {
            eprintln!("SKIPPED: {} does not exist", p.display());
            None
        }
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            None
        }
    }
}

/// Runs a program; its stdout on success, else stderr as the error.
fn run(program: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `helm template flink-gitops deploy/helm/flink-gitops -n flink-gitops ARGS...`.
fn template(helm: &Path, args: &[&str]) -> Result<String, String> {
    let chart = chart();
    let mut all = vec![
        "template",
        "flink-gitops",
        chart.to_str().expect("utf-8 path"),
        "--namespace",
        "flink-gitops",
    ];
    all.extend_from_slice(args);
    run(helm, &all)
}

/// Every object in a multi-document YAML stream, as JSON; empty documents left out.
fn objects(yaml: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}

/// Deserializes `v` into `K` and serializes it back: the same JSON, or the test fails
/// naming the object (a misspelled or misplaced field disappears on the way).
fn same_after<K>(v: &Value) -> K
where
    K: serde::de::DeserializeOwned + serde::Serialize,
{
    let typed: K = serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("{} {}: {e}", v["kind"], v["metadata"]["name"]));
    let back = serde_json::to_value(&typed).expect("serialize");
    if let Some(path) = first_difference(v, &back, String::new()) {
        panic!(
            "{} {} changed on a round trip through k8s-openapi at {path}",
            v["kind"], v["metadata"]["name"]
        );
    }
    typed
}

/// The JSON path of the first difference between two values, with both sides.
fn first_difference(a: &Value, b: &Value, at: String) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => first_difference(p, q, format!("{at}.{k}")),
                // An explicit null (a field cleared on `helm upgrade`) is no field.
                (Some(Value::Null), None) => None,
                (p, q) => Some(format!("{at}.{k}: {p:?} became {q:?}")),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, format!("{at}[{i}]"))),
        _ => (a != b).then(|| format!("{at}: {a} became {b}")),
    }
}

/// The rendered objects, each checked by a round trip through its type.
#[derive(Default)]
struct Rendered {
    deployments: Vec<Deployment>,
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
    cluster_roles: Vec<ClusterRole>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    config_maps: Vec<ConfigMap>,
    secrets: Vec<Secret>,
    services: Vec<Service>,
    service_accounts: Vec<ServiceAccount>,
    namespaces: Vec<Namespace>,
}

fn typed(yaml: &str) -> Rendered {
    let mut r = Rendered::default();
    let all = objects(yaml);
    assert!(!all.is_empty(), "nothing rendered");
    for v in &all {
        match (v["apiVersion"].as_str(), v["kind"].as_str()) {
            (Some("apps/v1"), Some("Deployment")) => r.deployments.push(same_after(v)),
            (Some("rbac.authorization.k8s.io/v1"), Some("Role")) => r.roles.push(same_after(v)),
            (Some("rbac.authorization.k8s.io/v1"), Some("RoleBinding")) => {
                r.role_bindings.push(same_after(v))
            }
            (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRole")) => {
                r.cluster_roles.push(same_after(v))
            }
            (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRoleBinding")) => {
                r.cluster_role_bindings.push(same_after(v))
            }
            (Some("v1"), Some("ConfigMap")) => r.config_maps.push(same_after(v)),
            (Some("v1"), Some("Secret")) => r.secrets.push(same_after(v)),
            (Some("v1"), Some("Service")) => r.services.push(same_after(v)),
            (Some("v1"), Some("ServiceAccount")) => r.service_accounts.push(same_after(v)),
            (Some("v1"), Some("Namespace")) => r.namespaces.push(same_after(v)),
            other => panic!("unexpected object {other:?}"),
        }
    }
    r
}

/// What the agent may do in a namespace it manages, as (API group, resource, verb): what
/// src/apply/kubernetes uses, nothing more, no wildcard.
fn expected_rules() -> BTreeSet<(String, String, String)> {
    let mut set = BTreeSet::new();
    let mut add = |group: &str, resources: &[&str], verbs: &[&str]| {
        for r in resources {
            for v in verbs {
                set.insert((group.to_string(), r.to_string(), v.to_string()));
            }
        }
    };
    let write = [
        "get", "list", "watch", "create", "patch", "update", "delete",
    ];
    add("", &["configmaps", "services"], &write);
    add("apps", &["deployments"], &write);
    add("", &["pods"], &["get", "list", "watch", "delete"]);
    add("", &["pods/portforward"], &["get", "create"]);
    add("", &["pods/log"], &["get"]);
    add("", &["events"], &["list"]);
    set
}

fn granted(rules: &[k8s_openapi::api::rbac::v1::PolicyRule]) -> BTreeSet<(String, String, String)> {
    let mut set = BTreeSet::new();
    for rule in rules {
        assert!(rule.resource_names.is_none(), "{rule:?}");
        for g in rule.api_groups.iter().flatten() {
            for r in rule.resources.iter().flatten() {
                for v in &rule.verbs {
                    for s in [g, r, v] {
                        assert!(!s.contains('*'), "wildcard in {rule:?}");
                    }
                    set.insert((g.clone(), r.clone(), v.clone()));
                }
            }
        }
    }
    set
}

fn lease_rules() -> BTreeSet<(String, String, String)> {
    ["get", "create", "update"]
        .iter()
        .map(|v| ("coordination.k8s.io".into(), "leases".into(), v.to_string()))
        .collect()
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (&str, &str) {
    (
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or(""),
    )
}

/// The agent's Deployment and its one container, with the settings every variant shares.
fn agent(r: &Rendered, replicas: i32) -> (&Deployment, &k8s_openapi::api::core::v1::Container) {
    assert_eq!(r.deployments.len(), 1);
    let d = &r.deployments[0];
    let spec = d.spec.as_ref().expect("spec");
    assert_eq!(spec.replicas, Some(replicas));
    let pod = spec.template.spec.as_ref().expect("pod spec");
    let psc = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.run_as_user, Some(65532));
    assert_eq!(pod.containers.len(), 1);
    let c = &pod.containers[0];
    let sc = c.security_context.as_ref().expect("securityContext");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()])
    );
    let ports = c.ports.as_ref().expect("ports");
    assert!(
        ports
            .iter()
            .any(|p| p.name.as_deref() == Some("metrics") && p.container_port == 9464),
        "{ports:?}"
    );
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(probe_path(&c.liveness_probe).as_deref(), Some("/healthz"));
    assert_eq!(probe_path(&c.readiness_probe).as_deref(), Some("/readyz"));
    // The cache is a writable emptyDir where FLINK_GITOPS_CACHE points.
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == "/var/cache/flink-gitops")
        .expect("a cache mount");
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .expect("the cache volume");
    assert!(volume.empty_dir.is_some(), "{volume:?}");
    assert!(c
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .is_some());
    (d, c)
}

fn args(c: &k8s_openapi::api::core::v1::Container) -> Vec<&str> {
    c.args.iter().flatten().map(String::as_str).collect()
}

/// The settings ConfigMap's entry `key`.
fn setting<'a>(r: &'a Rendered, key: &str) -> Option<&'a str> {
    r.config_maps
        .iter()
        .find_map(|c| c.data.as_ref()?.get(key))
        .map(String::as_str)
}

#[test]
fn helm_chart_lints_and_renders_objects_that_round_trip() {
    let Some(helm) = tool(Tool::Helm) else { return };
    let chart = chart();
    let lint = run(&helm, &["lint", "--strict", chart.to_str().expect("path")]);
    assert!(lint.is_ok(), "helm lint: {lint:?}");

    // Without leader election: one agent, replaced with Recreate.
    let r =
        typed(&template(&helm, &["--set", "leaderElection.enabled=false"]).expect("helm template"));
    let (d, c) = agent(&r, 1);
    assert_eq!(args(c), ["run", "--runtime", "kubernetes"]);
    assert_eq!(
        d.spec
            .as_ref()
            .and_then(|s| s.strategy.as_ref()?.type_.as_deref()),
        Some("Recreate")
    );

    // Defaults: one agent with leader election (a rollout or a change of replicaCount never
    // has two acting), a ClusterRole for every namespace.
    let r = typed(&template(&helm, &[]).expect("helm template"));
    let (d, c) = agent(&r, 1);
    assert_eq!(
        args(c),
        ["run", "--runtime", "kubernetes", "--leader-elect"]
    );
    assert_eq!(
        d.spec
            .as_ref()
            .and_then(|s| s.strategy.as_ref()?.type_.as_deref()),
        Some("RollingUpdate")
    );
    assert_eq!(setting(&r, "FLINK_GITOPS_LISTEN"), Some("0.0.0.0:9464"));
    assert_eq!(
        setting(&r, "FLINK_GITOPS_CACHE"),
        Some("/var/cache/flink-gitops")
    );
    assert_eq!(r.cluster_roles.len(), 1);
    assert_eq!(
        granted(&r.cluster_roles[0].rules.clone().unwrap_or_default()),
        expected_rules()
    );
    assert_eq!(r.cluster_role_bindings.len(), 1);
    // Roles: the Flink pods' own (ConfigMaps for Kubernetes HA) and the Lease's.
    assert_eq!(
        r.roles
            .iter()
            .map(|x| name_of(&x.metadata))
            .collect::<Vec<_>>(),
        [
            ("flink-gitops", "flink"),
            ("flink-gitops", "flink-gitops-leader-election")
        ]
    );
    assert!(r.secrets.is_empty());
    assert_eq!(r.services.len(), 1);
    assert_eq!(
        r.services[0]
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .map(|p| p[0].name.clone()),
        Some(Some("metrics".to_string()))
    );

    // Two replicas: --leader-elect, a rolling update, and a Role for the Lease.
    let r = typed(&template(&helm, &["--set", "replicaCount=2"]).expect("helm template"));
    let (d, c) = agent(&r, 2);
    assert!(args(c).contains(&"--leader-elect"), "{:?}", args(c));
    assert_eq!(
        d.spec
            .as_ref()
            .and_then(|s| s.strategy.as_ref()?.type_.as_deref()),
        Some("RollingUpdate")
    );
    let lease = r
        .roles
        .iter()
        .find(|x| name_of(&x.metadata) == ("flink-gitops", "flink-gitops-leader-election"))
        .expect("the Lease Role");
    assert_eq!(
        granted(&lease.rules.clone().unwrap_or_default()),
        lease_rules()
    );
    assert_eq!(
        setting(&r, "FLINK_GITOPS_LEADER_ELECTION_ID"),
        Some("flink-gitops-leader")
    );

    // Two watched namespaces: a Role and RoleBinding in each, exactly the runtime's rights;
    // no ClusterRole.
    let r = typed(
        &template(&helm, &["--set", "watchNamespaces={team-a,team-b}"]).expect("helm template"),
    );
    agent(&r, 1);
    assert!(r.cluster_roles.is_empty() && r.cluster_role_bindings.is_empty());
    for ns in ["team-a", "team-b"] {
        let role = r
            .roles
            .iter()
            .find(|x| name_of(&x.metadata) == (ns, "flink-gitops"))
            .unwrap_or_else(|| panic!("no Role in {ns}"));
        assert_eq!(
            granted(&role.rules.clone().unwrap_or_default()),
            expected_rules()
        );
        let binding = r
            .role_bindings
            .iter()
            .find(|x| name_of(&x.metadata) == (ns, "flink-gitops"))
            .unwrap_or_else(|| panic!("no RoleBinding in {ns}"));
        let subject = &binding.subjects.as_ref().expect("subjects")[0];
        assert_eq!(
            (
                subject.kind.as_str(),
                subject.name.as_str(),
                subject.namespace.as_deref()
            ),
            ("ServiceAccount", "flink-gitops", Some("flink-gitops"))
        );
    }

    // SSH credentials: a Secret with the key and known_hosts, mounted as $HOME/.ssh.
    let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
    let key_arg = format!("git.sshKey={key}");
    let r = typed(
        &template(
            &helm,
            &[
                "--set",
                "git.repo=ssh://git@git.example.com/team/flink-jobs.git",
                "--set-string",
                &key_arg,
                "--set-string",
                "git.knownHosts=git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA",
                "--set",
                "webhook.secret=hush",
            ],
        )
        .expect("helm template"),
    );
    let (_, c) = agent(&r, 1);
    let git = r
        .secrets
        .iter()
        .find(|s| name_of(&s.metadata) == ("flink-gitops", "flink-gitops-git"))
        .expect("the Git Secret");
    let data = git.string_data.as_ref().expect("stringData");
    assert_eq!(data["ssh-privatekey"], key);
    assert!(data["known_hosts"].starts_with("git.example.com ssh-ed25519 "));
    let env = |name: &str| {
        c.env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(
        env("FLINK_GITOPS_GIT_SSH_KEY").as_deref(),
        Some("/home/nonroot/.ssh/id")
    );
    assert_eq!(env("HOME").as_deref(), Some("/home/nonroot"));
    assert!(c
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| m.mount_path == "/home/nonroot/.ssh" && m.read_only == Some(true)));
    assert_eq!(
        env("FLINK_GITOPS_WEBHOOK_SECRET_FILE").as_deref(),
        Some("/etc/flink-gitops/webhook/secret")
    );
    assert_eq!(r.secrets.len(), 2);

    // A key without the host's keys is refused at render time, saying what is missing.
    let err = template(&helm, &["--set-string", &key_arg]).expect_err("no known_hosts");
    assert!(err.contains("git.knownHosts is required"), "{err}");
}

#[test]
fn kustomize_manifests_render_objects_that_round_trip() {
    let Some(kubectl) = tool(Tool::Kustomize) else {
        return;
    };
    let kustomize = |dir: &str| {
        let path = root().join(dir);
        typed(
            &run(&kubectl, &["kustomize", path.to_str().expect("path")])
                .unwrap_or_else(|e| panic!("kubectl kustomize {dir}: {e}")),
        )
    };

    let r = kustomize("deploy/kustomize");
    let (_, c) = agent(&r, 1);
    assert_eq!(args(c), ["run", "--runtime", "kubernetes"]);
    assert_eq!(setting(&r, "FLINK_GITOPS_LISTEN"), Some("0.0.0.0:9464"));
    assert_eq!(r.namespaces.len(), 1);
    let role = |r: &Rendered, name: &str| {
        r.roles
            .iter()
            .find(|x| name_of(&x.metadata) == ("flink-gitops", name))
            .map(|x| granted(&x.rules.clone().unwrap_or_default()))
    };
    assert_eq!(role(&r, "flink-gitops"), Some(expected_rules()));
    assert_eq!(
        role(&r, "flink-gitops-leader-election"),
        Some(lease_rules())
    );
    assert!(r.cluster_roles.is_empty());
    // The example Secret carries a placeholder, never a credential.
    assert_eq!(
        r.secrets[0]
            .string_data
            .as_ref()
            .map(|d| d["token"].as_str()),
        Some("REPLACE-WITH-A-TOKEN")
    );

    let r = kustomize("deploy/kustomize/overlays/cluster-wide");
    assert_eq!(role(&r, "flink-gitops"), None);
    assert_eq!(r.cluster_roles.len(), 1);
    assert_eq!(
        granted(&r.cluster_roles[0].rules.clone().unwrap_or_default()),
        expected_rules()
    );

    let r = kustomize("deploy/kustomize/overlays/leader-election");
    let (_, c) = agent(&r, 2);
    assert!(args(c).contains(&"--leader-elect"), "{:?}", args(c));
}

// ---------------------------------------------------------------------------------------
// On the lab cluster
// ---------------------------------------------------------------------------------------

/// Ports of the one-replica test on the lab node (hostNetwork): Flink REST and RPC, the
/// agent's metrics.
const REST_PORT: u16 = 28501;
const RPC_PORT: u16 = 28502;
const METRICS_PORT: u16 = 28509;
/// Ports of the two-replica test: its own, as the other test's pods may hold theirs until
/// the 1.20 kubelet confirms their deletion.
const HA_REST_PORT: u16 = 28521;
const HA_RPC_PORT: u16 = 28522;
const HA_METRICS_PORT: u16 = 28529;

/// The agent pods' label (the chart's selector).
const AGENT_PODS: &str = "app.kubernetes.io/name=flink-gitops";
/// The Flink objects' label: the FlinkDeployment's name.
const COUNTER_OBJECTS: &str = "app.kubernetes.io/name=counter";

/// What the chart tests on the lab share: the lab and its slot, the agent image built from
/// this build's binary, a namespace of the test's own, and a repository with one
/// application-mode FlinkDeployment (the stateful test job from the lab's Flink image),
/// served by git daemon on the node's loopback (the agent pods reach it on the host
/// network), pushes allowed for the status branch. Everything goes on drop, also when the
/// test fails; then the namespace's pods and the agents' last log lines are printed first.
struct ChartLab {
    helm: PathBuf,
    node_ip: String,
    /// The manifests' commit.
    commit: String,
    /// Flink REST of the counter cluster, on the node's address.
    rest: String,
    // Dropped in this order: the daemon, the repository, the namespace (its pods
    // force-deleted), the client, the runtime, the lab (stopped if started here), the slot.
    _daemon: GitDaemon,
    remote: Remote,
    namespace: TestNamespace,
    client: kube::Client,
    rt: tokio::runtime::Runtime,
    lab: Lab,
    _slot: std::sync::MutexGuard<'static, ()>,
}

/// An agent pod as the API server has it (pods being deleted left out).
#[derive(Debug, Clone)]
struct AgentPod {
    name: String,
    phase: String,
    /// `containerd://<id>` of the running agent container.
    container_id: Option<String>,
}

/// A status branch commit: its subject and the agent its trailer names.
#[derive(Debug, Clone, PartialEq)]
struct StatusCommit {
    subject: String,
    agent: Option<String>,
}

impl ChartLab {
    /// Takes the lab (skipped, with a message, without helm or a built lab), builds and
    /// loads the agent image, creates the namespace `<prefix>-<pid>` and pushes the counter
    /// job with Flink REST and RPC on `rest_port` and `rpc_port` of the node.
    fn start(prefix: &str, rest_port: u16, rpc_port: u16) -> Option<ChartLab> {
        let helm = tool(Tool::Helm)?;
        let lab = Lab::start()?;
        let slot = kube_slot();

        // The agent image from this build's binary, loaded into the lab's containerd.
        let status = Command::new(root().join("scripts/kube-lab/agent-image.sh"))
            .env("FLINK_GITOPS_AGENT_BINARY", bin())
            .status()
            .expect("run scripts/kube-lab/agent-image.sh");
        assert!(status.success(), "agent-image.sh failed");

        let rt = tokio::runtime::Runtime::new().expect("tokio");
        let client = rt.block_on(lab.client());
        let node_ip = rt.block_on(node_ip(&client));
        let namespace = rt.block_on(TestNamespace::create(&lab, &client, prefix));
        let ns = namespace.name.clone();

        let remote = Remote::new();
        remote.write(
            "apps/counter.yaml",
            &format!(
                r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: counter
  namespace: {ns}
spec:
  mode: standalone
  image: {FLINK_IMAGE}
  imagePullPolicy: Never
  flinkVersion: v2_3
  serviceAccount: flink
  flinkConfiguration:
    taskmanager.numberOfTaskSlots: "1"
    kubernetes.hostnetwork.enabled: "true"
    jobmanager.rpc.address: {node_ip}
    rest.port: "{rest_port}"
    jobmanager.rpc.port: "{rpc_port}"
    kubernetes.jobmanager.cpu.limit-factor: "4"
    kubernetes.taskmanager.cpu.limit-factor: "4"
  podTemplate:
    spec:
      hostNetwork: true
      terminationGracePeriodSeconds: 5
  jobManager:
    resource: {{memory: 1g, cpu: 0.25}}
  taskManager:
    replicas: 1
    resource: {{memory: 1g, cpu: 0.25}}
  job:
    jarURI: {IMAGE_JOB_JAR}
    entryClass: lab.StatefulCounterJob
    args: ["--out", "/tmp/counter.out"]
    parallelism: 1
    upgradeMode: stateless
"#
            ),
        );
        let commit = remote.push("the counter job");
        let daemon = GitDaemon::start_with_push(remote.dir.path());
        Some(ChartLab {
            helm,
            rest: format!("http://{node_ip}:{rest_port}"),
            node_ip,
            commit,
            _daemon: daemon,
            remote,
            namespace,
            client,
            rt,
            lab,
            _slot: slot,
        })
    }

    fn ns(&self) -> &str {
        &self.namespace.name
    }

    /// The chart's values for the lab: the local image, the host network, the API server on
    /// the node's loopback (no kube-proxy), Flink REST on the node's address, a 2 s interval
    /// and a 5 s stability window; `extra_args` and `extra_env` added.
    fn values(
        &self,
        replicas: u32,
        metrics_port: u16,
        extra_args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> String {
        let repo_url = format!("git://127.0.0.1:{}/remote.git", self._daemon.port);
        let mut args = vec!["--stability-window", "5s"];
        args.extend_from_slice(extra_args);
        let mut env = vec![
            serde_json::json!({"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"}),
            serde_json::json!({"name": "KUBERNETES_SERVICE_PORT", "value": "6443"}),
        ];
        env.extend(
            extra_env
                .iter()
                .map(|(name, value)| serde_json::json!({"name": name, "value": value})),
        );
        format!(
            r#"image: {{repository: flink-gitops.local/flink-gitops, tag: dev, pullPolicy: Never}}
replicaCount: {replicas}
hostNetwork: true
git: {{repo: "{repo_url}", interval: 2s}}
watchNamespaces: ["{ns}"]
restAccess: "host:{node_ip}"
logLevel: "info,flink_gitops=debug"
metrics: {{port: {metrics_port}}}
extraArgs: {args}
extraEnv: {env}
resources: {{requests: {{cpu: 50m, memory: 64Mi}}, limits: {{memory: 512Mi}}}}
"#,
            ns = self.ns(),
            node_ip = self.node_ip,
            args = serde_json::Value::from(args),
            env = serde_json::Value::from(env),
        )
    }

    /// `helm template` of the chart in the test's namespace with `values`; every object
    /// checked by a round trip through its k8s-openapi type (the lab's 1.20 API server takes
    /// them as they are).
    fn render(&self, values: &str) -> String {
        let values_file = self.remote.scratch("chart").join("values.yaml");
        std::fs::write(&values_file, values).expect("values");
        let rendered = run(
            &self.helm,
            &[
                "template",
                "flink-gitops",
                chart().to_str().expect("path"),
                "--namespace",
                self.ns(),
                "--values",
                values_file.to_str().expect("path"),
            ],
        )
        .expect("helm template");
        typed(&rendered);
        rendered
    }

    /// `kubectl -n <namespace> ARGS`: stdout on success, else stderr.
    fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["-n", self.ns()];
        all.extend_from_slice(args);
        let out = self.lab.kubectl(&all);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// A pod's log ("" when kubectl cannot read it).
    fn log(&self, pod: &str) -> String {
        self.kubectl(&["logs", pod]).unwrap_or_default()
    }

    fn pods(&self, selector: &str) -> Option<Vec<k8s_openapi::api::core::v1::Pod>> {
        let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(self.client.clone(), self.ns());
        let list = self
            .rt
            .block_on(api.list(&kube::api::ListParams::default().labels(selector)))
            .ok()?;
        Some(
            list.items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect(),
        )
    }

    /// The agent pods not being deleted; `None` when the API server does not answer.
    fn agent_pods(&self) -> Option<Vec<AgentPod>> {
        let pods = self.pods(AGENT_PODS)?;
        Some(
            pods.into_iter()
                .map(|p| {
                    let status = p.status.unwrap_or_default();
                    AgentPod {
                        name: p.metadata.name.unwrap_or_default(),
                        phase: status.phase.unwrap_or_default(),
                        container_id: status
                            .container_statuses
                            .iter()
                            .flatten()
                            .find(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
                            .and_then(|c| c.container_id.clone()),
                    }
                })
                .collect(),
        )
    }

    /// The counter cluster's Flink pods: name → uid (a replaced pod has a new uid).
    fn flink_pods(&self) -> BTreeMap<String, String> {
        self.pods(COUNTER_OBJECTS)
            .expect("the Flink pods")
            .into_iter()
            .map(|p| {
                (
                    p.metadata.name.unwrap_or_default(),
                    p.metadata.uid.unwrap_or_default(),
                )
            })
            .collect()
    }

    /// The counter cluster's Deployments: name → (metadata.generation, the agent's
    /// generation annotation). Any change of their spec moves the first, a new deployment
    /// attempt by the agent the second.
    fn flink_deployments(&self) -> BTreeMap<String, (i64, Option<String>)> {
        let api: kube::Api<Deployment> = kube::Api::namespaced(self.client.clone(), self.ns());
        let list = self
            .rt
            .block_on(api.list(&kube::api::ListParams::default().labels(COUNTER_OBJECTS)))
            .expect("the Flink Deployments");
        list.items
            .into_iter()
            .map(|d| {
                let annotation = d
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(config::KUBE_ANNOTATION_GENERATION).cloned());
                (
                    d.metadata.name.unwrap_or_default(),
                    (d.metadata.generation.unwrap_or_default(), annotation),
                )
            })
            .collect()
    }

    /// Waits for the counter job RUNNING over REST; its id.
    fn wait_job_running(&self) -> String {
        let job = wait_until(
            "the job RUNNING over REST",
            Duration::from_secs(240),
            || {
                // The one job of the application cluster, under the id the agent gave it.
                let jobs = curl_json(&format!("{}/jobs", self.rest))?;
                let id = jobs["jobs"][0]["id"].as_str()?.to_string();
                let v = curl_json(&format!("{}/jobs/{id}", self.rest))?;
                (v["state"].as_str()? == "RUNNING").then_some(v)
            },
        );
        job["jid"].as_str().expect("jid").to_string()
    }

    /// The counter's record on the status branch.
    fn record(&self) -> Option<serde_yaml::Value> {
        self.remote
            .status(&format!("{}/FlinkDeployment/counter.yaml", self.ns()))
    }

    /// Waits for the record STABLE at the manifests' commit; the record.
    fn wait_stable(&self) -> serde_yaml::Value {
        wait_until(
            "STABLE on the status branch",
            Duration::from_secs(120),
            || {
                let s = self.record()?;
                (field(&s, "lifecycleState") == Some("STABLE")
                    && field(&s, "lastReconciledRevision") == Some(self.commit.as_str()))
                .then_some(s)
            },
        )
    }

    /// Every status branch commit, oldest first.
    fn status_commits(&self) -> Vec<StatusCommit> {
        let out = Command::new("git")
            .args(["log", "--reverse", "--format=%B%x1e", "flink-gitops/status"])
            .current_dir(self.remote.bare())
            .output()
            .expect("git log");
        String::from_utf8_lossy(&out.stdout)
            .split('\x1e')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(|m| StatusCommit {
                subject: m.lines().next().unwrap_or_default().to_string(),
                agent: flink_gitops::leader::agent_of_commit(m).map(str::to_string),
            })
            .collect()
    }
}

impl Drop for ChartLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- kubectl get pods,deployments,leases -o wide\n{:?}",
                self.kubectl(&["get", "pods,deployments,leases", "-o", "wide"])
            );
            for pod in self.agent_pods().unwrap_or_default() {
                eprintln!(
                    "--- kubectl logs {} --tail=40\n{:?}",
                    pod.name,
                    self.kubectl(&["logs", &pod.name, "--tail=40"])
                );
            }
        }
    }
}

fn wait_until<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn curl_json(url: &str) -> Option<Value> {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "3", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn curl_text(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "3", url])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn agent_chart_on_the_lab_cluster() {
    let Some(t) = ChartLab::start("fg-chart", REST_PORT, RPC_PORT) else {
        return;
    };
    let rendered = t.render(&t.values(1, METRICS_PORT, &[], &[]));
    t.lab.apply(&rendered);

    // The agent pod is Ready: its /readyz answers through the readiness probe.
    let t0 = Instant::now();
    wait_until("the agent pod Ready", Duration::from_secs(120), || {
        let out = t
            .kubectl(&[
                "get",
                "pods",
                "-l",
                AGENT_PODS,
                "-o",
                "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}",
            ])
            .ok()?;
        (out.trim() == "True").then_some(())
    });
    eprintln!(
        "chart: agent pod Ready after {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    // It deploys the cluster (the JobManager Deployment, by the agent's service account and
    // its Role alone) and the job runs.
    wait_until(
        "the JobManager Deployment",
        Duration::from_secs(120),
        || t.kubectl(&["get", "deployment", "counter"]).ok(),
    );
    let job_id = t.wait_job_running();
    eprintln!(
        "chart: job {job_id} RUNNING {:.1}s after the agent was Ready",
        t0.elapsed().as_secs_f64()
    );

    // The agent pushed its record: STABLE at the commit, with the job it runs.
    let record = t.wait_stable();
    assert_eq!(field(&record, "jobId"), Some(job_id.as_str()), "{record:?}");

    // Its metrics on the metrics port say so.
    let text = curl_text(&format!("http://{}:{METRICS_PORT}/metrics", t.node_ip));
    assert!(
        text.lines()
            .any(|l| l.starts_with("flink_gitops_resources{")
                && l.contains("\"STABLE\"")
                && l.ends_with(" 1")),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// Two replicas with leader election on the lab cluster
// ---------------------------------------------------------------------------------------

/// Short Lease timings for the two-replica test (the chart's extraArgs), so a takeover
/// after a crash takes seconds, not Flux's 35.
const LEASE: Duration = Duration::from_secs(10);
const RENEW_DEADLINE: Duration = Duration::from_secs(8);
const RETRY_PERIOD: Duration = Duration::from_secs(1);

/// The rendered objects with the agent Deployment fitted to the lab's one node. Its pods
/// share the host's network: two replicas cannot both bind the metrics port, and the
/// scheduler refuses a second pod asking for the same host port (a host-network pod's
/// container ports are host ports). So the container's ports and the probes that use them
/// are taken out, and each agent listens on a free loopback port of its own
/// (`FLINK_GITOPS_LISTEN=127.0.0.1:0`, given through extraEnv) that its log names. On a
/// cluster with a pod network none of this is needed.
fn on_one_node(rendered: &str) -> String {
    let mut out = String::new();
    for mut v in objects(rendered) {
        if v["kind"] == "Deployment" {
            let containers = v["spec"]["template"]["spec"]["containers"]
                .as_array_mut()
                .expect("containers");
            for c in containers {
                let c = c.as_object_mut().expect("a container");
                for key in ["ports", "livenessProbe", "readinessProbe"] {
                    assert!(c.remove(key).is_some(), "the agent container has no {key}");
                }
            }
        }
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&v).expect("YAML"));
    }
    out
}

/// The elector identity an agent's log names ("trying to acquire the Lease ... identity=").
fn identity_in(log: &str) -> Option<String> {
    log.lines()
        .find(|l| l.contains("trying to acquire the Lease"))?
        .split_whitespace()
        .find_map(|w| w.strip_prefix("identity="))
        .map(str::to_string)
}

/// The pod of an identity (`<pod name>_<8 hex>`).
fn pod_of(identity: &str) -> &str {
    identity.rsplit_once('_').map_or(identity, |(pod, _)| pod)
}

/// The `flink_gitops_leader` gauge of the agent whose log is `log`: it listens on the
/// loopback port its log names (the host's loopback: the pod is on the host network).
fn leader_gauge(log: &str) -> Option<i64> {
    let line = log.lines().find(|l| l.contains("serving /metrics"))?;
    let port: String = line
        .split("127.0.0.1:")
        .nth(1)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let text = curl_text(&format!("http://127.0.0.1:{port}/metrics"));
    text.lines()
        .find_map(|l| l.strip_prefix("flink_gitops_leader "))
        .and_then(|v| v.trim().parse().ok())
}

/// One reading of the Lease.
#[derive(Debug, Clone)]
struct LeaseSample {
    at: std::time::SystemTime,
    /// `None`: no Lease yet, or one without a holder (released).
    holder: Option<String>,
    transitions: i32,
    /// `acquireTime`, in ms since the epoch.
    acquired_ms: Option<i64>,
}

/// Reads the Lease every 200 ms in a thread of its own until dropped.
struct LeaseSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    samples: std::sync::Arc<std::sync::Mutex<Vec<LeaseSample>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LeaseSampler {
    fn start(t: &ChartLab, name: &str) -> LeaseSampler {
        use k8s_openapi::api::coordination::v1::Lease;
        let api: kube::Api<Lease> = kube::Api::namespaced(t.client.clone(), t.ns());
        let handle = t.rt.handle().clone();
        let name = name.to_string();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let samples = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let thread = {
            let (stop, samples) = (stop.clone(), samples.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let read = handle.block_on(async {
                        tokio::time::timeout(Duration::from_secs(3), api.get_opt(&name)).await
                    });
                    if let Ok(Ok(lease)) = read {
                        let spec = lease.and_then(|l| l.spec);
                        let sample = LeaseSample {
                            at: std::time::SystemTime::now(),
                            holder: flink_gitops::leader::holder(spec.as_ref()).map(str::to_string),
                            transitions: spec
                                .as_ref()
                                .and_then(|s| s.lease_transitions)
                                .unwrap_or(0),
                            acquired_ms: spec
                                .as_ref()
                                .and_then(|s| s.acquire_time.as_ref())
                                .map(|t| t.0.as_millisecond()),
                        };
                        if let Ok(mut all) = samples.lock() {
                            all.push(sample);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        LeaseSampler {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    fn all(&self) -> Vec<LeaseSample> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn last(&self) -> Option<LeaseSample> {
        self.all().pop()
    }
}

impl Drop for LeaseSampler {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn millis(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Whether a status commit says the job was started, stopped, restarted or suspended.
fn touches_the_job(subject: &str) -> bool {
    [
        "start the job",
        "stop",
        "restart",
        "suspend",
        "savepoint",
        "recover",
        "cancel",
    ]
    .iter()
    .any(|w| subject.contains(w))
}

#[test]
fn agent_chart_with_two_replicas_on_the_lab_cluster() {
    let Some(t) = ChartLab::start("fg-chart-ha", HA_REST_PORT, HA_RPC_PORT) else {
        return;
    };
    let timing = [
        format!("--leader-election-lease-duration={}s", LEASE.as_secs()),
        format!(
            "--leader-election-renew-deadline={}s",
            RENEW_DEADLINE.as_secs()
        ),
        format!("--leader-election-retry-period={}s", RETRY_PERIOD.as_secs()),
    ];
    let timing: Vec<&str> = timing.iter().map(String::as_str).collect();
    let rendered = t.render(&t.values(
        2,
        HA_METRICS_PORT,
        &timing,
        &[(config::ENV_LISTEN, "127.0.0.1:0")],
    ));
    let r = typed(&rendered);
    let spec = r.deployments[0].spec.as_ref().expect("spec");
    assert_eq!(spec.replicas, Some(2));
    let c = &spec.template.spec.as_ref().expect("pod spec").containers[0];
    assert!(args(c).contains(&"--leader-elect"), "{:?}", args(c));
    let sampler = LeaseSampler::start(&t, config::DEFAULT_LEADER_ELECTION_ID);
    t.lab.apply(&on_one_node(&rendered));

    // Both replicas run.
    let t0 = Instant::now();
    let pods = wait_until("two agent pods Running", Duration::from_secs(120), || {
        let pods = t.agent_pods()?;
        (pods.len() == 2 && pods.iter().all(|p| p.phase == "Running")).then_some(pods)
    });
    eprintln!(
        "chart HA: two agent pods Running after {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    // Exactly one acts: it deploys the job once and records it STABLE.
    let job_id = t.wait_job_running();
    let record = t.wait_stable();
    assert_eq!(field(&record, "jobId"), Some(job_id.as_str()), "{record:?}");
    let leader = sampler
        .last()
        .and_then(|s| s.holder)
        .expect("the Lease has a holder");
    let leader_pod = pod_of(&leader).to_string();
    let follower_pod = pods
        .iter()
        .map(|p| p.name.clone())
        .find(|p| *p != leader_pod)
        .expect("a second pod");
    assert!(
        pods.iter().any(|p| p.name == leader_pod),
        "the Lease holder {leader} is none of the pods {pods:?}"
    );
    let leader_log = t.log(&leader_pod);
    assert_eq!(identity_in(&leader_log).as_deref(), Some(leader.as_str()));
    assert!(
        leader_log.contains("acquired leadership"),
        "the leader's log:\n{leader_log}"
    );
    let follower_log = wait_until(
        "the other replica following the leader",
        Duration::from_secs(30),
        || {
            let log = t.log(&follower_pod);
            log.contains(&format!("following {leader}")).then_some(log)
        },
    );
    let follower = identity_in(&follower_log).expect("the follower's identity");
    assert!(
        !follower_log.contains("acquired leadership") && !follower_log.contains("decided"),
        "the follower acted:\n{follower_log}"
    );
    assert_eq!(leader_gauge(&leader_log), Some(1), "the leader's gauge");
    assert_eq!(leader_gauge(&follower_log), Some(0), "the follower's gauge");

    let before = t.status_commits();
    eprintln!("chart HA: status commits before the takeover:");
    for c in &before {
        eprintln!("  {} [{}]", c.subject, c.agent.as_deref().unwrap_or("-"));
    }
    assert!(
        before
            .iter()
            .all(|c| c.agent.as_deref() == Some(leader.as_str())),
        "a status commit not by the leader {leader}: {before:?}"
    );
    let starts = before
        .iter()
        .filter(|c| c.subject.contains("start the job"))
        .count();
    assert!(starts >= 1, "{before:?}");
    assert!(
        before
            .iter()
            .filter(|c| touches_the_job(&c.subject))
            .all(|c| c.subject.contains("start the job")),
        "the job was touched other than by its first start: {before:?}"
    );
    let deployments = t.flink_deployments();
    let flink_pods = t.flink_pods();
    eprintln!("chart HA: Flink Deployments (generation, annotation): {deployments:?}");
    assert!(deployments.contains_key("counter"), "{deployments:?}");

    // The leader crashes: its container is killed (SIGKILL: no release of the Lease), and
    // its pod deleted with no grace, so the Deployment starts a replacement.
    let container = t
        .agent_pods()
        .expect("the agent pods")
        .into_iter()
        .find(|p| p.name == leader_pod)
        .and_then(|p| p.container_id)
        .expect("the leader's running container");
    let killed_at = std::time::SystemTime::now();
    t.lab.kill_container(&container);
    t.kubectl(&["delete", "pod", &leader_pod, "--grace-period=0", "--force"])
        .expect("delete the leader's pod");

    // The other replica takes over once the Lease has expired.
    let taken = wait_until(
        "the other replica holding the Lease",
        LEASE + RENEW_DEADLINE + RETRY_PERIOD + Duration::from_secs(30),
        || {
            sampler
                .last()
                .filter(|s| s.holder.as_deref() == Some(follower.as_str()))
        },
    );
    let acquired_ms = taken.acquired_ms.expect("acquireTime");
    let takeover = Duration::from_millis((acquired_ms - millis(killed_at)).max(0) as u64);
    eprintln!(
        "chart HA: the follower took the Lease {:.1}s after the leader was killed \
         (lease {LEASE:?}, renew deadline {RENEW_DEADLINE:?}, retry {RETRY_PERIOD:?}); \
         the sampler saw it after {:.1}s",
        takeover.as_secs_f64(),
        taken
            .at
            .duration_since(killed_at)
            .unwrap_or_default()
            .as_secs_f64()
    );
    assert!(
        takeover <= LEASE + RENEW_DEADLINE + RETRY_PERIOD,
        "takeover after {takeover:?}"
    );
    let new_leader_log = wait_until(
        "the new leader reconciling",
        Duration::from_secs(60),
        || {
            let log = t.log(&follower_pod);
            let after = log.split("leading: reconciling").nth(1)?;
            (after.matches("decided").count() >= 3).then_some(log)
        },
    );
    assert!(
        new_leader_log.contains("acquired leadership"),
        "{new_leader_log}"
    );

    // The replacement pod comes up as a follower of the new leader.
    let replacement = wait_until(
        "the replacement pod following the new leader",
        Duration::from_secs(120),
        || {
            let pod = t
                .agent_pods()?
                .into_iter()
                .find(|p| p.name != leader_pod && p.name != follower_pod)?;
            let log = t.log(&pod.name);
            log.contains(&format!("following {follower}"))
                .then_some((pod.name, log))
        },
    );
    let (replacement_pod, replacement_log) = replacement;
    let replacement_id = identity_in(&replacement_log).expect("the replacement's identity");
    assert!(
        !replacement_log.contains("acquired leadership") && !replacement_log.contains("decided"),
        "the replacement acted:\n{replacement_log}"
    );
    assert_eq!(
        leader_gauge(&new_leader_log),
        Some(1),
        "the new leader's gauge"
    );
    assert_eq!(
        leader_gauge(&replacement_log),
        Some(0),
        "the replacement's gauge"
    );

    // No job was touched twice: the same job runs in the same pods, the Deployments were
    // not changed, and the status branch has no new step; what was written since names the
    // new leader.
    let after = t.status_commits();
    assert_eq!(
        after[..before.len()],
        before[..],
        "the status branch was rewritten"
    );
    let new = &after[before.len()..];
    eprintln!("chart HA: status commits after the takeover: {new:?}");
    assert!(
        new.iter()
            .all(|c| c.agent.as_deref() == Some(follower.as_str()) && !touches_the_job(&c.subject)),
        "{new:?}"
    );
    let record = t.record().expect("the record");
    assert_eq!(field(&record, "jobId"), Some(job_id.as_str()), "{record:?}");
    assert_eq!(
        field(&record, "lifecycleState"),
        Some("STABLE"),
        "{record:?}"
    );
    assert_eq!(t.flink_deployments(), deployments);
    assert_eq!(t.flink_pods(), flink_pods);
    let jobs = curl_json(&format!("{}/jobs", t.rest)).expect("Flink REST");
    let ids: Vec<&str> = jobs["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|j| j["id"].as_str())
        .collect();
    assert_eq!(ids, [job_id.as_str()], "{jobs}");
    let job = curl_json(&format!("{}/jobs/{job_id}", t.rest)).expect("the job");
    assert_eq!(job["state"].as_str(), Some("RUNNING"), "{job}");

    // Never two leaders: the Lease passed once, from the crashed leader to the follower,
    // and was never released (a crash releases nothing) nor held by anyone else.
    let samples = sampler.all();
    let mut holders: Vec<Option<String>> = Vec::new();
    for s in samples.iter().skip_while(|s| s.holder.is_none()) {
        if holders.last() != Some(&s.holder) {
            holders.push(s.holder.clone());
        }
    }
    eprintln!(
        "chart HA: {} Lease samples; holders in turn: {holders:?}; replacement {replacement_id} in pod {replacement_pod}",
        samples.len()
    );
    assert_eq!(
        holders,
        [Some(leader.clone()), Some(follower.clone())],
        "Lease holders"
    );
    assert_eq!(samples.last().map(|s| s.transitions), Some(1));
}
