//! The agent with `--runtime kubernetes` on the project's test cluster (`scripts/kube-lab`):
//! a real API server and kubelet running real Flink 2.3 pods from the locally built image,
//! manifests pushed to a real bare Git repository, and the stateful counter job, whose
//! output (on a hostPath volume) proves whether state was carried over.
//!
//! The lab has no DNS and no kube-proxy, so the manifests put the Flink pods on the host
//! network (`podTemplate.spec.hostNetwork`, the node's address as the JobManager's, ports
//! of their own), and the agent reaches REST at the node's address (`--rest-access
//! host:<ip>`) or through the API server (`--rest-access port-forward`). Pods that need the
//! API server (Flink's Kubernetes HA) get it at 127.0.0.1:6443, a name on its certificate.
//! Everything else is what a user writes.

use std::path::Path;
use std::time::Duration;

use crate::harness::flink::{
    assert_continues, assert_restarted, counter_lines, field, savepoints, state_at, wait_for,
    wait_lines, AgentProcess, CounterLine, Remote, KEYS,
};
use crate::harness::kube::{kube_slot, node_ip, Lab, TestNamespace, FLINK_IMAGE, IMAGE_JOB_JAR};

const APP: &str = "orders";
const FILE: &str = "apps/orders.yaml";
const APP_REST: u16 = 28101;
const APP_RPC: u16 = 26101;

/// RBAC for Flink's Kubernetes HA (leader election and metadata in ConfigMaps).
fn ha_rbac(ns: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {{name: flink, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: flink-ha, namespace: {ns}}}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: flink-ha, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: flink-ha}}
subjects:
- {{kind: ServiceAccount, name: flink, namespace: {ns}}}
"#
    )
}

struct App<'a> {
    ns: &'a str,
    node_ip: &'a str,
    data: &'a Path,
}

impl App<'_> {
    /// The application: Kubernetes HA, rollback on, state on a hostPath volume that the
    /// agent (on this host) reads at the same path.
    fn manifest(&self, version: &str, mode: &str, state: &str, image: &str) -> String {
        let (ns, ip, data) = (self.ns, self.node_ip, self.data.display());
        let policy = if image == FLINK_IMAGE {
            "Never"
        } else {
            "IfNotPresent"
        };
        format!(
            r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: {APP}
  namespace: {ns}
spec:
  mode: standalone
  image: {image}
  imagePullPolicy: {policy}
  flinkVersion: v2_3
  serviceAccount: flink
  flinkConfiguration:
    taskmanager.numberOfTaskSlots: "1"
    kubernetes.hostnetwork.enabled: "true"
    jobmanager.rpc.address: {ip}
    rest.port: "{APP_REST}"
    jobmanager.rpc.port: "{APP_RPC}"
    kubernetes.jobmanager.cpu.limit-factor: "10"
    kubernetes.taskmanager.cpu.limit-factor: "10"
    execution.checkpointing.dir: file://{data}/checkpoints
    state.savepoints.dir: file://{data}/savepoints
    high-availability.type: kubernetes
    high-availability.storageDir: file://{data}/ha
    kubernetes.operator.deployment.rollback.enabled: "true"
  podTemplate:
    spec:
      hostNetwork: true
      terminationGracePeriodSeconds: 5
      containers:
        - name: flink-main-container
          env:
            - {{name: KUBERNETES_SERVICE_HOST, value: "127.0.0.1"}}
            - {{name: KUBERNETES_SERVICE_PORT, value: "6443"}}
          volumeMounts:
            - {{name: data, mountPath: {data}}}
      volumes:
        - name: data
          hostPath: {{path: {data}, type: DirectoryOrCreate}}
  jobManager:
    resource: {{memory: 1g, cpu: 0.2}}
  taskManager:
    resource: {{memory: 1g, cpu: 0.2}}
  job:
    jarURI: {IMAGE_JOB_JAR}
    entryClass: lab.StatefulCounterJob
    parallelism: 1
    upgradeMode: {mode}
    state: {state}
    args: ["--version", "{version}", "--out", "{data}/out/orders.out", "--rate", "20", "--checkpointMs", "500"]
"#
        )
    }
}

/// `kubectl get <what> -l <selector> -o name` in the namespace, one name per line.
fn names(lab: &Lab, ns: &str, what: &str, selector: &str) -> Vec<String> {
    let out = lab.kubectl(&["get", what, "-n", ns, "-l", selector, "-o", "name"]);
    assert!(
        out.status.success(),
        "kubectl get {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `kubectl get <object> -o jsonpath=<path>`.
fn jsonpath(lab: &Lab, ns: &str, object: &str, path: &str) -> String {
    let out = lab.kubectl(&["get", object, "-n", ns, "-o", &format!("jsonpath={path}")]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Per key, the counts after line `from` go up by exactly one: nothing lost, nothing
/// replayed (a stop with a savepoint and a start from it).
fn assert_contiguous(lines: &[CounterLine], from: usize, what: &str) {
    for key in 0..KEYS {
        let counts: Vec<u64> = lines
            .iter()
            .skip(from.saturating_sub(KEYS as usize * 2))
            .filter(|l| l.key == key)
            .map(|l| l.count)
            .collect();
        assert!(counts.len() > 2, "{what}: too few lines for key {key}");
        for w in counts.windows(2) {
            assert_eq!(
                w[1],
                w[0] + 1,
                "{what}: key {key} counts are not contiguous: {counts:?}"
            );
        }
    }
}

#[test]
fn application_lifecycle_on_kubernetes() {
    let Some(lab) = Lab::start() else { return };
    let _slot = kube_slot();
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let client = rt.block_on(lab.client());
    let node_ip = rt.block_on(node_ip(&client));
    let namespace = rt.block_on(TestNamespace::create(&lab, &client, "fg-app"));
    let ns = namespace.name.as_str();
    lab.apply(&ha_rbac(ns));

    let remote = Remote::new();
    let data = remote.scratch("data");
    std::fs::create_dir_all(data.join("out")).expect("mkdir out");
    let out = data.join("out/orders.out");
    let app = App {
        ns,
        node_ip: &node_ip,
        data: &data,
    };
    let status_file = format!("{ns}/FlinkDeployment/{APP}.yaml");
    let lines = || counter_lines(&out).len();
    let selector = format!("app.kubernetes.io/name={APP}");
    let jm_selector = format!("{selector},app.kubernetes.io/component=jobmanager");
    let job_id = |s: &serde_yaml::Value| field(s, "jobId").unwrap_or_default().to_string();
    let stable = |commit: &str, version: &str, from: usize, agent: &AgentProcess| {
        let s = state_at(&remote, agent, &status_file, commit, "STABLE");
        wait_lines(agent, &out, version, from);
        s
    };

    // First deploy: the Kubernetes objects, labelled and annotated, and the job STABLE.
    remote.write(
        FILE,
        &app.manifest("v1", "savepoint", "running", FLINK_IMAGE),
    );
    let c1 = remote.push("orders v1");
    let kubeconfig = lab.kubeconfig().display().to_string();
    let rest_access = format!("host:{node_ip}");
    let agent = AgentProcess::start_with_env(
        &remote.url(),
        &remote.scratch("agent"),
        &["--runtime", "kubernetes", "--rest-access", &rest_access],
        &[("KUBECONFIG", kubeconfig.as_str())],
    );
    let s1 = stable(&c1, "v1", 0, &agent);
    assert_eq!(field(&s1, "jobState"), Some("RUNNING"));
    let deployments = names(&lab, ns, "deployments", &selector);
    assert_eq!(
        deployments,
        vec![
            format!("deployment.apps/{APP}"),
            format!("deployment.apps/{APP}-taskmanager")
        ]
    );
    assert_eq!(
        jsonpath(
            &lab,
            ns,
            &format!("deployment/{APP}"),
            "{.metadata.annotations.flink-gitops\\.io/revision}"
        ),
        c1
    );
    assert_eq!(
        jsonpath(
            &lab,
            ns,
            &format!("deployment/{APP}"),
            "{.metadata.labels.app\\.kubernetes\\.io/managed-by}"
        ),
        "flink-gitops"
    );
    assert_eq!(
        names(&lab, ns, "services", &selector).len(),
        2,
        "the RPC and REST Services"
    );

    // Savepoint upgrade: counts continue exactly, a new job id, the new revision annotated.
    let n = lines();
    remote.write(
        FILE,
        &app.manifest("v2", "savepoint", "running", FLINK_IMAGE),
    );
    let c2 = remote.push("orders v2");
    let s2 = stable(&c2, "v2", n, &agent);
    assert_continues(&out, n, "v2", true, "savepoint upgrade on Kubernetes");
    assert_ne!(job_id(&s1), job_id(&s2));
    assert!(savepoints(&s2)
        .iter()
        .any(|s| field(s, "trigger") == Some("upgrade")));
    assert_eq!(
        jsonpath(
            &lab,
            ns,
            &format!("deployment/{APP}"),
            "{.metadata.annotations.flink-gitops\\.io/revision}"
        ),
        c2
    );

    // The JobManager pod deleted behind the agent's back: its Deployment starts a new one,
    // which recovers the job from Flink's HA metadata with its state (same job id).
    let old_pod = names(&lab, ns, "pods", &jm_selector);
    assert_eq!(old_pod.len(), 1, "{old_pod:?}");
    let counts_before: Vec<u64> = (0..KEYS)
        .map(|k| {
            counter_lines(&out)
                .iter()
                .filter(|l| l.key == k)
                .map(|l| l.count)
                .next_back()
                .unwrap_or(0)
        })
        .collect();
    let out_del = lab.kubectl(&["delete", "-n", ns, &old_pod[0], "--wait=false"]);
    assert!(out_del.status.success());
    wait_for(
        Duration::from_secs(240),
        "a new JobManager pod, Running",
        &agent,
        || {
            let pods = names(&lab, ns, "pods", &jm_selector);
            (pods.len() == 1
                && pods[0] != old_pod[0]
                && jsonpath(&lab, ns, &pods[0], "{.status.phase}") == "Running")
                .then_some(())
        },
    );
    let m = lines();
    wait_for(
        Duration::from_secs(180),
        "output after the JobManager came back",
        &agent,
        || (lines() >= m + 2 * KEYS as usize).then_some(()),
    );
    for line in counter_lines(&out).iter().skip(m) {
        let before = counts_before[line.key as usize];
        assert!(
            line.count > 1 && line.count + 200 >= before,
            "after the JobManager pod was deleted, key {} restarted from {} (was {before})",
            line.key,
            line.count
        );
    }
    let after_pod = remote.status(&status_file).expect("status");
    assert_eq!(job_id(&after_pod), job_id(&s2), "the same job, recovered");
    assert_eq!(field(&after_pod, "lifecycleState"), Some("STABLE"));

    // Last-state upgrade: the job is cancelled keeping its newest checkpoint, and the new
    // cluster starts from that checkpoint with the new arguments.
    let n = lines();
    remote.write(
        FILE,
        &app.manifest("v3", "last-state", "running", FLINK_IMAGE),
    );
    let c3 = remote.push("orders v3 (last-state)");
    let s3 = stable(&c3, "v3", n, &agent);
    assert_continues(&out, n, "v3", false, "last-state upgrade on Kubernetes");
    assert!(
        field(&s3, "restorePath").is_some_and(|p| p.contains("/chk-")),
        "{s3:?}"
    );

    // Stateless upgrade: starts from nothing.
    let n = lines();
    remote.write(
        FILE,
        &app.manifest("v4", "stateless", "running", FLINK_IMAGE),
    );
    let c4 = remote.push("orders v4 (stateless)");
    stable(&c4, "v4", n, &agent);
    assert_restarted(&out, n, "v4", "stateless upgrade on Kubernetes");

    // Suspend (with a savepoint): the cluster is gone; resume: counts continue exactly.
    remote.write(
        FILE,
        &app.manifest("v4", "savepoint", "suspended", FLINK_IMAGE),
    );
    let c5 = remote.push("suspend orders");
    let s5 = state_at(&remote, &agent, &status_file, &c5, "SUSPENDED");
    assert!(savepoints(&s5)
        .iter()
        .any(|s| field(s, "trigger") == Some("suspend")));
    assert!(names(&lab, ns, "deployments", &selector).is_empty());
    let n = lines();
    remote.write(
        FILE,
        &app.manifest("v5", "savepoint", "running", FLINK_IMAGE),
    );
    let c6 = remote.push("resume orders as v5");
    stable(&c6, "v5", n, &agent);
    assert_continues(&out, n, "v5", true, "resume on Kubernetes");

    // A bad image: the pull failure, with the pod and container, on the status branch; the
    // upgrade is rolled back to the last good spec, from the upgrade's savepoint.
    let before_bad = remote.status(&status_file).expect("status");
    let n = lines();
    remote.write(
        FILE,
        &app.manifest("v6", "savepoint", "running", "registry.invalid/flink:2.3"),
    );
    let c7 = remote.push("orders v6 with an image that does not exist");
    let rolled_back = state_at(&remote, &agent, &status_file, &c7, "ROLLED_BACK");
    let text = serde_yaml::to_string(&rolled_back).expect("yaml");
    assert!(
        text.contains("ImagePullBackOff") || text.contains("ErrImagePull"),
        "the pull failure is recorded: {text}"
    );
    assert!(
        text.contains("container flink-main-container"),
        "the container is named: {text}"
    );
    wait_lines(&agent, &out, "v5", n);
    assert_contiguous(
        &counter_lines(&out),
        n,
        "rollback from the upgrade savepoint",
    );
    assert_ne!(job_id(&rolled_back), job_id(&before_bad));
    assert_eq!(
        jsonpath(
            &lab,
            ns,
            &format!("deployment/{APP}"),
            "{.spec.template.spec.containers[0].image}"
        ),
        FLINK_IMAGE,
        "the last good image runs"
    );

    // The bad commit reverted: Git wants the running spec again, which is STABLE.
    let c7r = remote.revert(&c7);
    state_at(&remote, &agent, &status_file, &c7r, "STABLE");

    // Removal: a final savepoint, then every object of the cluster gone, HA ConfigMaps too.
    remote.remove(FILE);
    let c8 = remote.push("remove orders");
    let deleted = wait_for(Duration::from_secs(180), "DELETED", &agent, || {
        let s = remote.status(&status_file)?;
        (field(&s, "lifecycleState") == Some("DELETED")).then_some(s)
    });
    let last = savepoints(&deleted)
        .last()
        .cloned()
        .expect("a final savepoint");
    assert_eq!(field(&last, "trigger"), Some("delete"));
    let location = field(&last, "location").expect("location").to_string();
    assert!(
        Path::new(location.trim_start_matches("file:"))
            .join("_metadata")
            .exists(),
        "the final savepoint {location} is on disk"
    );
    wait_for(
        Duration::from_secs(60),
        "every object of the cluster gone",
        &agent,
        || {
            let left: Vec<String> = ["deployments", "services", "configmaps", "pods"]
                .iter()
                .flat_map(|w| names(&lab, ns, w, &selector))
                .chain(names(
                    &lab,
                    ns,
                    "configmaps",
                    &format!("app={APP},type=flink-native-kubernetes"),
                ))
                .collect();
            left.is_empty().then_some(())
        },
    );

    // `git revert` of the removal: back with the final savepoint's state.
    let n = lines();
    let c9 = remote.revert(&c8);
    stable(&c9, "v5", n, &agent);
    assert_contiguous(&counter_lines(&out), n, "revert of the removal");
    let back = remote.status(&status_file).expect("status");
    assert_eq!(field(&back, "lastReconciledRevision"), Some(c9.as_str()));
    drop(agent);
}

const SESSION_REST: u16 = 28111;
const SESSION_RPC: u16 = 26111;

/// A session cluster with two task slots, state on a hostPath volume.
fn session_cluster(ns: &str, node_ip: &str, data: &Path, name: &str, image: &str) -> String {
    let data = data.display();
    let (policy, rest, rpc) = if image == FLINK_IMAGE {
        ("Never", SESSION_REST, SESSION_RPC)
    } else {
        ("IfNotPresent", SESSION_REST + 1, SESSION_RPC + 1)
    };
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: {name}
  namespace: {ns}
spec:
  mode: standalone
  image: {image}
  imagePullPolicy: {policy}
  flinkVersion: v2_3
  serviceAccount: default
  flinkConfiguration:
    taskmanager.numberOfTaskSlots: "2"
    kubernetes.hostnetwork.enabled: "true"
    jobmanager.rpc.address: {node_ip}
    rest.port: "{rest}"
    jobmanager.rpc.port: "{rpc}"
    kubernetes.jobmanager.cpu.limit-factor: "10"
    kubernetes.taskmanager.cpu.limit-factor: "10"
    execution.checkpointing.dir: file://{data}/checkpoints
    state.savepoints.dir: file://{data}/savepoints
  podTemplate:
    spec:
      hostNetwork: true
      terminationGracePeriodSeconds: 5
      containers:
        - name: flink-main-container
          volumeMounts:
            - {{name: data, mountPath: {data}}}
      volumes:
        - name: data
          hostPath: {{path: {data}, type: DirectoryOrCreate}}
  jobManager:
    resource: {{memory: 1g, cpu: 0.2}}
  taskManager:
    replicas: 1
    resource: {{memory: 1g, cpu: 0.2}}
"#
    )
}

/// A session job of the stateful counter, its jar uploaded by the agent from this host.
fn session_job(ns: &str, name: &str, version: &str, data: &Path) -> String {
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkSessionJob
metadata:
  name: {name}
  namespace: {ns}
spec:
  deploymentName: analytics
  job:
    jarURI: file://{jar}
    entryClass: lab.StatefulCounterJob
    parallelism: 1
    upgradeMode: savepoint
    args: ["--version", "{version}", "--out", "{data}/out/{name}.out", "--rate", "20", "--checkpointMs", "500"]
"#,
        jar = crate::harness::flink::flink_env().job_jar(),
        data = data.display()
    )
}

#[test]
fn session_cluster_and_jobs_on_kubernetes_through_port_forward() {
    let Some(lab) = Lab::start() else { return };
    let _slot = kube_slot();
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let client = rt.block_on(lab.client());
    let node_ip = rt.block_on(node_ip(&client));
    let namespace = rt.block_on(TestNamespace::create(&lab, &client, "fg-session"));
    let ns = namespace.name.as_str();

    let remote = Remote::new();
    let data = remote.scratch("data");
    std::fs::create_dir_all(data.join("out")).expect("mkdir out");
    let out = |job: &str| data.join(format!("out/{job}.out"));
    let job_status = |job: &str| format!("{ns}/FlinkSessionJob/{job}.yaml");
    let job_id = |s: &serde_yaml::Value| field(s, "jobId").unwrap_or_default().to_string();

    // A session cluster and two jobs on it, in one commit.
    remote.write(
        "session/analytics.yaml",
        &session_cluster(ns, &node_ip, &data, "analytics", FLINK_IMAGE),
    );
    remote.write(
        "session/clicks.yaml",
        &session_job(ns, "clicks", "v1", &data),
    );
    remote.write("session/views.yaml", &session_job(ns, "views", "v1", &data));
    let c1 = remote.push("analytics with clicks and views");
    let kubeconfig = lab.kubeconfig().display().to_string();
    // The agent outside the cluster reaches REST through the API server.
    let agent = AgentProcess::start_with_env(
        &remote.url(),
        &remote.scratch("agent"),
        &["--runtime", "kubernetes", "--rest-access", "port-forward"],
        &[("KUBECONFIG", kubeconfig.as_str())],
    );
    state_at(
        &remote,
        &agent,
        &format!("{ns}/FlinkDeployment/analytics.yaml"),
        &c1,
        "STABLE",
    );
    let clicks1 = state_at(&remote, &agent, &job_status("clicks"), &c1, "STABLE");
    let views1 = state_at(&remote, &agent, &job_status("views"), &c1, "STABLE");
    wait_lines(&agent, &out("clicks"), "v1", 0);
    wait_lines(&agent, &out("views"), "v1", 0);
    assert!(
        agent.log_text().contains("127.0.0.1:"),
        "REST went through a local port-forward"
    );

    // `diff` from outside the cluster, through port-forwards of its own: no drift.
    let diff = crate::harness::flink_gitops_env(
        &remote.work(),
        &[
            "diff",
            "--repo",
            &remote.url(),
            "--runtime",
            "kubernetes",
            "--rest-access",
            "port-forward",
        ],
        &[
            ("KUBECONFIG", kubeconfig.as_str()),
            (
                "FLINK_GITOPS_CACHE",
                &remote.scratch("cli-cache").display().to_string(),
            ),
        ],
    );
    assert_eq!(diff.code, 0, "diff: {}\n{}", diff.stdout, diff.stderr);

    // A savepoint upgrade of one job: its counts continue exactly; the other job is not
    // touched (same job id, still writing).
    let n = counter_lines(&out("clicks")).len();
    remote.write(
        "session/clicks.yaml",
        &session_job(ns, "clicks", "v2", &data),
    );
    let c2 = remote.push("clicks v2");
    let clicks2 = state_at(&remote, &agent, &job_status("clicks"), &c2, "STABLE");
    wait_lines(&agent, &out("clicks"), "v2", n);
    assert_continues(
        &out("clicks"),
        n,
        "v2",
        true,
        "session job savepoint upgrade",
    );
    assert_ne!(job_id(&clicks1), job_id(&clicks2));
    assert!(savepoints(&clicks2)
        .iter()
        .any(|s| field(s, "trigger") == Some("upgrade")));
    let views = remote.status(&job_status("views")).expect("views");
    assert_eq!(job_id(&views), job_id(&views1), "views was not touched");

    // A second cluster whose image cannot be pulled: the reason, pod and container on the
    // status branch; the running cluster and its jobs are untouched.
    remote.write(
        "session/broken.yaml",
        &session_cluster(ns, &node_ip, &data, "broken", "registry.invalid/flink:2.3"),
    );
    remote.push("a cluster with an image that does not exist");
    let broken = wait_for(
        Duration::from_secs(180),
        "the pull failure recorded",
        &agent,
        || {
            let s = remote.status(&format!("{ns}/FlinkDeployment/broken.yaml"))?;
            let text = serde_yaml::to_string(&s).ok()?;
            (text.contains("ImagePullBackOff") || text.contains("ErrImagePull")).then_some(text)
        },
    );
    assert!(
        broken.contains("container flink-main-container"),
        "{broken}"
    );
    let status = crate::harness::flink_gitops(&remote.work(), &["status", "--repo", &remote.url()]);
    assert!(
        status.stdout.contains("ImagePullBackOff") || status.stdout.contains("ErrImagePull"),
        "`status` shows the pull failure: {}",
        status.stdout
    );
    let views_now = remote.status(&job_status("views")).expect("views");
    assert_eq!(job_id(&views_now), job_id(&views1));
    let n = counter_lines(&out("views")).len();
    wait_for(
        Duration::from_secs(30),
        "views still writing",
        &agent,
        || (counter_lines(&out("views")).len() > n + KEYS as usize).then_some(()),
    );
    drop(agent);
}
