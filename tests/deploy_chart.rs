//! The agent's own deployment (`deploy/`): the Helm chart lints and renders with its
//! variants, the plain manifests render with `kubectl kustomize`, every object round-trips
//! through its k8s-openapi type unchanged, the agent's Role grants exactly what the
//! Kubernetes runtime uses, and the chart's output, applied to the lab cluster with the
//! locally built agent image, runs an agent pod that deploys a Flink job and records it.
//!
//! helm and kubectl are found as the agent finds its render tools (`FLINK_GITOPS_HELM`,
//! `FLINK_GITOPS_KUBECTL`, PATH, then what scripts/setup.sh installs in the cache); a test
//! is skipped, saying so, when they are not there. The lab test takes the lab cluster as
//! the other lab tests do (`harness::kube`: started when built but not running, skipped
//! when not built) and builds the agent image from this build's binary.

use std::collections::BTreeSet;
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

/// `kubectl ARGS` on the lab: stdout on success, else stderr.
fn lab_kubectl(lab: &Lab, args: &[&str]) -> Result<String, String> {
    let out = lab.kubectl(args);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// On a failing test, prints the namespace's pods and the agent's last log lines.
struct ShowOnFailure<'a> {
    lab: &'a Lab,
    namespace: String,
}

impl Drop for ShowOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for what in [
                "get pods,deployments -o wide",
                "logs deploy/flink-gitops --tail=25",
            ] {
                let mut a: Vec<&str> = vec!["-n", &self.namespace];
                a.extend(what.split(' '));
                eprintln!("--- kubectl {what}\n{:?}", lab_kubectl(self.lab, &a));
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

/// Ports of this test on the lab node (hostNetwork): Flink REST and RPC, the agent's metrics.
const REST_PORT: u16 = 28501;
const RPC_PORT: u16 = 28502;
const METRICS_PORT: u16 = 28509;

#[test]
fn agent_chart_on_the_lab_cluster() {
    let Some(helm) = tool(Tool::Helm) else { return };
    let Some(lab) = Lab::start() else { return };
    let _slot = kube_slot();

    // The agent image from this build's binary, loaded into the lab's containerd.
    let status = Command::new(root().join("scripts/kube-lab/agent-image.sh"))
        .env("FLINK_GITOPS_AGENT_BINARY", bin())
        .status()
        .expect("run scripts/kube-lab/agent-image.sh");
    assert!(status.success(), "agent-image.sh failed");

    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let client = rt.block_on(lab.client());
    let node_ip = rt.block_on(node_ip(&client));
    let namespace = rt.block_on(TestNamespace::create(&lab, &client, "fg-chart"));
    let ns = namespace.name.clone();
    let _show = ShowOnFailure {
        lab: &lab,
        namespace: ns.clone(),
    };

    // The repository: one application-mode FlinkDeployment (the stateful test job from the
    // lab's Flink image), served by git daemon on the node's loopback, which the agent's pod
    // reaches on the host network; pushes allowed for the status branch.
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
    rest.port: "{REST_PORT}"
    jobmanager.rpc.port: "{RPC_PORT}"
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
    let repo_url = format!("git://127.0.0.1:{}/remote.git", daemon.port);

    // The chart with the lab's values: the local image, the host network, the API server
    // on the node's loopback (no kube-proxy), Flink REST on the node's address.
    let values = format!(
        r#"image: {{repository: flink-gitops.local/flink-gitops, tag: dev, pullPolicy: Never}}
hostNetwork: true
git: {{repo: "{repo_url}", interval: 2s}}
watchNamespaces: ["{ns}"]
restAccess: "host:{node_ip}"
logLevel: "info,flink_gitops=debug"
metrics: {{port: {METRICS_PORT}}}
extraArgs: ["--stability-window", "5s"]
extraEnv:
  - {{name: KUBERNETES_SERVICE_HOST, value: "127.0.0.1"}}
  - {{name: KUBERNETES_SERVICE_PORT, value: "6443"}}
resources: {{requests: {{cpu: 50m, memory: 64Mi}}, limits: {{memory: 512Mi}}}}
"#
    );
    let values_file = remote.scratch("chart").join("values.yaml");
    std::fs::write(&values_file, values).expect("values");
    let rendered = run(
        &helm,
        &[
            "template",
            "flink-gitops",
            chart().to_str().expect("path"),
            "--namespace",
            &ns,
            "--values",
            values_file.to_str().expect("path"),
        ],
    )
    .expect("helm template");
    // The objects the lab's 1.20 API server accepts as they are.
    typed(&rendered);
    lab.apply(&rendered);

    // The agent pod is Ready: its /readyz answers through the readiness probe.
    let t0 = Instant::now();
    wait_until("the agent pod Ready", Duration::from_secs(120), || {
        let out = lab_kubectl(
            &lab,
            &[
                "-n",
                &ns,
                "get",
                "pods",
                "-l",
                "app.kubernetes.io/name=flink-gitops",
                "-o",
                "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}",
            ],
        )
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
        || lab_kubectl(&lab, &["-n", &ns, "get", "deployment", "counter"]).ok(),
    );
    let rest = format!("http://{node_ip}:{REST_PORT}");
    let job = wait_until(
        "the job RUNNING over REST",
        Duration::from_secs(240),
        || {
            // The one job of the application cluster, under the id the agent gave it.
            let jobs = curl_json(&format!("{rest}/jobs"))?;
            let id = jobs["jobs"][0]["id"].as_str()?.to_string();
            let v = curl_json(&format!("{rest}/jobs/{id}"))?;
            (v["state"].as_str()? == "RUNNING").then_some(v)
        },
    );
    let job_id = job["jid"].as_str().expect("jid").to_string();
    eprintln!(
        "chart: job {job_id} RUNNING {:.1}s after the agent was Ready",
        t0.elapsed().as_secs_f64()
    );

    // The agent pushed its record: STABLE at the commit, with the job it runs.
    let status_file = format!("{ns}/FlinkDeployment/counter.yaml");
    let record = wait_until(
        "STABLE on the status branch",
        Duration::from_secs(120),
        || {
            let s = remote.status(&status_file)?;
            (field(&s, "lifecycleState") == Some("STABLE")
                && field(&s, "lastReconciledRevision") == Some(commit.as_str()))
            .then_some(s)
        },
    );
    assert_eq!(field(&record, "jobId"), Some(job_id.as_str()), "{record:?}");

    // Its metrics on the metrics port say so.
    let metrics = Command::new("curl")
        .args(["-sf", "--max-time", "3"])
        .arg(format!("http://{node_ip}:{METRICS_PORT}/metrics"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("flink_gitops_resources{")
                && l.contains("\"STABLE\"")
                && l.ends_with(" 1")),
        "{text}"
    );
    drop(daemon);
}
