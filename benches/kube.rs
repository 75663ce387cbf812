//! The agent on the project's Kubernetes test cluster (`scripts/kube-lab`), against the
//! same steps done by hand with kubectl and curl, in one run:
//!
//! 1. **Savepoint-upgrade gap of an application** (the stateful counter from the lab image,
//!    savepoint upgrade mode, no HA): the data gap is the time between the last output line
//!    of the old version and the first line of the new one, read from the `ts=` each line
//!    carries (written by the job in its pod; the pod and this process share the node's
//!    clock). *Agent*: the new version pushed to Git (`--interval 1s`, fast poll 100 ms);
//!    also printed: push → first new line. *By hand*: `curl` stop with a savepoint, the
//!    trigger polled every 100 ms until COMPLETED, `kubectl apply` of the cluster's objects
//!    changed to the new version with `--fromSavepoint` and a new `--job-id` (rendered by
//!    the agent's own renderer for a new deployment attempt, so the pods are the same),
//!    `kubectl delete pod --force --grace-period=0` of the old pods; also printed: stop
//!    request → first new line.
//! 2. **The same for a session job** (a session cluster with one job of the counter): the
//!    agent with a FlinkSessionJob, against `curl` stop with a savepoint and
//!    `POST /jars/<id>/run` with `savepointPath`.
//! 3. **CPU and RSS of the agent** (`flink-gitops run` with its default interval and fast
//!    poll) managing 1, then 20 small session clusters (cpu 0.04 with limit-factor 20,
//!    500 MiB per JobManager and TaskManager): once all are STABLE, `utime + stime` of the
//!    agent process (`/proc/<pid>/stat`) over 60 s as % of one core, and its VmRSS.
//!
//! Rounds interleave the four upgrades (agent application, by hand application, agent
//! session job, by hand session job); every cluster runs throughout, so both paths see the
//! same background. Prints every round, the medians and the ratios agent / by hand, and the
//! load ratio 20 / 1. Nothing is asserted on time.
//!
//! The lab must be built and running (`scripts/setup.sh --kube`, `scripts/kube-lab/start.sh`);
//! otherwise the benchmark says so and does nothing. Everything it creates (two
//! namespaces, the agents, a temporary folder for Git and state) is removed at the end,
//! also when a step fails. Flink pods use the node's network with ports from 29000 up.
//! Hold the lab's lock while it runs:
//! `flock /tmp/kube-lab-heavy.lock nice -n 10 cargo bench --bench kube`.
//!
//! Environment: `KUBE_BENCH_ROUNDS` (upgrades per path, default 3), `KUBE_BENCH_CLUSTERS`
//! (clusters of the load part, default 20), `KUBE_BENCH_SAMPLE_SECS` (default 60),
//! `KUBE_BENCH_PARTS` (`gap`, `load` or `gap,load`, the default).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flink_gitops::apply::kubernetes::{render, RenderContext};
use flink_gitops::apply::runtime::{ApplicationJob, ClusterRequest};
use flink_gitops::flink::rest::JobId;
use flink_gitops::flink::spec::ManifestSet;

const IMAGE: &str = "flink-gitops.local/flink:2.3";
const IMAGE_JAR: &str = "local:///opt/flink/usrlib/stateful-counter.jar";
const ENTRY_CLASS: &str = "lab.StatefulCounterJob";
/// How often the manual path polls a savepoint trigger (the agent's default fast poll).
const MANUAL_POLL: Duration = Duration::from_millis(100);
/// Pause after every upgrade (checkpoints resume, JVMs calm down).
const PAUSE: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// The lab, kubectl, curl

fn lab_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FLINK_GITOPS_KUBE_LAB") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("FLINK_GITOPS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/flink-gitops")
        });
    cache.join("kube-lab")
}

/// The lab's folder when it is built and its API server and kubelet run; else why not.
fn running_lab() -> Result<PathBuf, String> {
    let dir = lab_dir();
    let built = std::fs::read_to_string(dir.join("built")).unwrap_or_default();
    if built.trim().is_empty() || !dir.join("images/flink.tar").is_file() {
        return Err(format!(
            "the Kubernetes lab is not built in {} (run scripts/setup.sh --kube)",
            dir.display()
        ));
    }
    for name in ["kube-apiserver", "kubelet"] {
        let alive = std::fs::read_to_string(dir.join(format!("run/{name}.pid")))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            return Err(format!(
                "the Kubernetes lab in {} is not running ({name} is down; scripts/kube-lab/start.sh starts it)",
                dir.display()
            ));
        }
    }
    Ok(dir)
}

#[derive(Clone)]
struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn new(lab: &Path) -> Kubectl {
        Kubectl {
            bin: lab.join("bin/kubectl"),
            kubeconfig: lab.join("pki/admin.kubeconfig"),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .output()
            .expect("run kubectl")
    }

    /// Stdout of a kubectl call that must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply -f -` of `yaml`.
    fn apply(&self, yaml: &str) {
        let mut child = Command::new(&self.bin)
            .env("KUBECONFIG", &self.kubeconfig)
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl apply");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(yaml.as_bytes())
            .expect("write objects");
        let out = child.wait_with_output().expect("kubectl apply");
        assert!(
            out.status.success(),
            "kubectl apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Pod names (`pod/<name>`) of a cluster.
    fn pods(&self, ns: &str, cluster: &str) -> Vec<String> {
        self.ok(&[
            "get",
            "pods",
            "-n",
            ns,
            "-l",
            &format!("app.kubernetes.io/name={cluster}"),
            "-o",
            "name",
        ])
        .lines()
        .map(str::to_string)
        .collect()
    }

    fn node_ip(&self) -> String {
        self.ok(&[
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[0].status.addresses[?(@.type==\"InternalIP\")].address}",
        ])
        .trim()
        .to_string()
    }
}

/// A namespace of the benchmark's own; on drop its pods are force-deleted (host ports
/// and memory are free at once) and the namespace goes with everything in it.
struct Namespace {
    kubectl: Kubectl,
    name: String,
}

impl Namespace {
    fn create(kubectl: &Kubectl, prefix: &str) -> Namespace {
        let name = format!("{prefix}-{}", std::process::id());
        kubectl.ok(&["create", "namespace", &name]);
        kubectl.ok(&["create", "serviceaccount", "flink", "-n", &name]);
        Namespace {
            kubectl: kubectl.clone(),
            name,
        }
    }

    /// Deletes everything and waits (up to `limit`) until no pod is left.
    fn delete_and_wait(&self, limit: Duration) {
        self.delete();
        let start = Instant::now();
        while start.elapsed() < limit {
            let out = self
                .kubectl
                .run(&["get", "pods", "-n", &self.name, "-o", "name"]);
            if out.status.success() && out.stdout.iter().all(u8::is_ascii_whitespace) {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        eprintln!("pods of {} still there after {limit:?}", self.name);
    }

    fn delete(&self) {
        let ns = self.name.as_str();
        let _ = self
            .kubectl
            .run(&["delete", "deployments", "--all", "-n", ns, "--wait=false"]);
        let _ = self.kubectl.run(&[
            "delete",
            "pods",
            "--all",
            "-n",
            ns,
            "--grace-period=0",
            "--force",
        ]);
        let _ = self
            .kubectl
            .run(&["delete", "namespace", ns, "--wait=false"]);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        self.delete();
    }
}

/// `curl -sS` with `args`; the body when curl succeeds.
fn curl(args: &[&str]) -> Option<serde_json::Value> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl");
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn curl_post_json(url: &str, body: &serde_json::Value) -> serde_json::Value {
    let body = body.to_string();
    curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        &body,
        url,
    ])
    .unwrap_or_else(|| panic!("POST {url} {body}: no JSON answer"))
}

// ---------------------------------------------------------------------------------------
// Git, the agent

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare repository the agent fetches and a work tree the benchmark pushes from.
struct Repo {
    bare: PathBuf,
    work: PathBuf,
}

impl Repo {
    fn new(root: &Path, name: &str) -> Repo {
        let bare = root.join(format!("{name}.git"));
        let work = root.join(name);
        std::fs::create_dir_all(&work).expect("mkdir");
        git(
            root,
            &["init", "-q", "--bare", "-b", "main", &format!("{name}.git")],
        );
        git(&work, &["init", "-q", "-b", "main"]);
        git(
            &work,
            &["remote", "add", "origin", &bare.display().to_string()],
        );
        Repo { bare, work }
    }

    fn write(&self, file: &str, text: &str) {
        let p = self.work.join(file);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write manifest");
    }

    /// Commits everything and pushes; the commit.
    fn push(&self, msg: &str) -> String {
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", msg]);
        git(&self.work, &["push", "-q", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// The status file of a resource on the status branch.
    fn status(&self, path: &str) -> Option<serde_yaml::Value> {
        let out = Command::new("git")
            .args(["show", &format!("flink-gitops/status:{path}")])
            .current_dir(&self.bare)
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_yaml::from_slice(&out.stdout).ok()
    }

    /// Whether the resource is STABLE at `commit` (any commit when `None`).
    fn stable(&self, path: &str, commit: Option<&str>) -> bool {
        let Some(s) = self.status(path) else {
            return false;
        };
        let field = |n: &str| s.get(n).and_then(serde_yaml::Value::as_str);
        field("lifecycleState") == Some("STABLE")
            && commit.is_none_or(|c| field("lastReconciledRevision") == Some(c))
    }
}

/// `flink-gitops run --runtime kubernetes` on this host; killed on drop (its log's tail
/// printed when the benchmark fails).
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn start(
        repo: &Repo,
        work: &Path,
        name: &str,
        kubeconfig: &Path,
        log_filter: &str,
        extra: &[&str],
    ) -> Agent {
        let state = work.join(format!("{name}-state"));
        std::fs::create_dir_all(&state).expect("mkdir");
        let log = work.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log");
        let err = out.try_clone().expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
            .arg("run")
            .arg("--repo")
            .arg(format!("file://{}", repo.bare.display()))
            .arg("--state-dir")
            .arg(&state)
            .args(["--runtime", "kubernetes"])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("FLINK_GITOPS_CACHE", work.join(format!("{name}-cache")))
            .env("FLINK_GITOPS_LOG", log_filter)
            // Short, so that the benchmark does not wait a minute per deployment.
            .env("FLINK_GITOPS_STABILITY_WINDOW", "2s")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start flink-gitops run");
        Agent { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics when the agent refused a manifest (a mistake of the benchmark's).
    fn check(&self) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("invalid manifest")) {
            panic!("the agent refused a manifest: {line}");
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Kept for reading after the run: target/kube-bench/<name>.log.
        let keep = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/kube-bench");
        if std::fs::create_dir_all(&keep).is_ok() {
            if let Some(name) = self.log.file_name() {
                let _ = std::fs::copy(&self.log, keep.join(name));
            }
        }
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("--- last lines of {}:", self.log.display());
            for l in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{l}");
            }
        }
    }
}

/// Polls `probe` every `every` until it gives a value; panics after `limit`.
fn wait<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(every);
    }
}

// ---------------------------------------------------------------------------------------
// The counter's output

/// One output line of the counter: its version and when the job wrote it.
#[derive(Debug, Clone)]
struct Line {
    version: String,
    /// `ts=` as seconds since the epoch.
    ts: f64,
}

fn lines(path: &Path) -> Vec<Line> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{name}=")))
            };
            let ts = chrono::DateTime::parse_from_rfc3339(field("ts")?).ok()?;
            Some(Line {
                version: field("version")?.to_string(),
                ts: ts.timestamp_micros() as f64 / 1e6,
            })
        })
        .collect()
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// Waits for the first line of `new` in `out`; then (old's last line, new's first line).
fn wait_switch(out: &Path, old: &str, new: &str) -> (f64, f64) {
    let first = wait(
        &format!("first line of {new} in {}", out.display()),
        Duration::from_secs(300),
        Duration::from_millis(50),
        || lines(out).into_iter().find(|l| l.version == new),
    );
    // Let a straggler of the old job (if any) land before its last line is read.
    std::thread::sleep(Duration::from_millis(500));
    let last_old = lines(out)
        .into_iter()
        .filter(|l| l.version == old)
        .map(|l| l.ts)
        .fold(f64::NAN, f64::max);
    (last_old, first.ts)
}

// ---------------------------------------------------------------------------------------
// Manifests

struct Setup {
    ns: String,
    node_ip: String,
    data: PathBuf,
    jar: PathBuf,
}

fn pod_template(data: &Path) -> String {
    let data = data.display();
    format!(
        r#"  podTemplate:
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
"#
    )
}

fn counter_args(version: &str, out: &Path) -> Vec<String> {
    [
        "--version",
        version,
        "--out",
        &out.display().to_string(),
        "--rate",
        "20",
        "--checkpointMs",
        "500",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn yaml_list(args: &[String]) -> String {
    args.iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Setup {
    fn out(&self, name: &str) -> PathBuf {
        self.data.join(format!("out/{name}.out"))
    }

    /// A FlinkDeployment on the host network: an application of the counter at `version`
    /// when given, else a session cluster with two slots.
    fn deployment(&self, name: &str, rest: u16, rpc: u16, version: Option<&str>) -> String {
        let (ns, ip, data) = (&self.ns, &self.node_ip, self.data.display());
        let slots = if version.is_some() { 1 } else { 2 };
        let job = match version {
            Some(v) => format!(
                "  job:\n    jarURI: {IMAGE_JAR}\n    entryClass: {ENTRY_CLASS}\n    parallelism: 1\n    upgradeMode: savepoint\n    state: running\n    args: [{}]\n",
                yaml_list(&counter_args(v, &self.out(name)))
            ),
            None => String::new(),
        };
        format!(
            r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: {name}
  namespace: {ns}
spec:
  mode: standalone
  image: {IMAGE}
  imagePullPolicy: Never
  flinkVersion: v2_3
  serviceAccount: flink
  flinkConfiguration:
    taskmanager.numberOfTaskSlots: "{slots}"
    kubernetes.hostnetwork.enabled: "true"
    jobmanager.rpc.address: {ip}
    rest.port: "{rest}"
    jobmanager.rpc.port: "{rpc}"
    kubernetes.jobmanager.cpu.limit-factor: "10"
    kubernetes.taskmanager.cpu.limit-factor: "10"
    execution.checkpointing.dir: file://{data}/checkpoints
    state.savepoints.dir: file://{data}/savepoints
{pod}  jobManager:
    resource: {{memory: 1g, cpu: 0.2}}
  taskManager:
    replicas: 1
    resource: {{memory: 1g, cpu: 0.2}}
{job}"#,
            pod = pod_template(&self.data)
        )
    }

    fn session_job(&self, name: &str, cluster: &str, version: &str) -> String {
        format!(
            "apiVersion: flink.apache.org/v1beta1\nkind: FlinkSessionJob\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  deploymentName: {cluster}\n  job:\n    jarURI: file://{jar}\n    entryClass: {ENTRY_CLASS}\n    parallelism: 1\n    upgradeMode: savepoint\n    args: [{args}]\n",
            ns = self.ns,
            jar = self.jar.display(),
            args = yaml_list(&counter_args(version, &self.out(name)))
        )
    }

    /// A small session cluster of the load part: 500 MiB and 0.04 cpu (limit-factor 20)
    /// per JobManager and TaskManager, Flink's memory pools shrunk to fit.
    fn small_cluster(&self, name: &str, rest: u16, rpc: u16) -> String {
        let (ns, ip) = (&self.ns, &self.node_ip);
        format!(
            r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: {name}
  namespace: {ns}
spec:
  mode: standalone
  image: {IMAGE}
  imagePullPolicy: Never
  flinkVersion: v2_3
  serviceAccount: flink
  flinkConfiguration:
    taskmanager.numberOfTaskSlots: "1"
    kubernetes.hostnetwork.enabled: "true"
    jobmanager.rpc.address: {ip}
    rest.port: "{rest}"
    jobmanager.rpc.port: "{rpc}"
    kubernetes.jobmanager.cpu.limit-factor: "20"
    kubernetes.taskmanager.cpu.limit-factor: "20"
    jobmanager.memory.jvm-metaspace.size: 128m
    jobmanager.memory.jvm-overhead.min: 64m
    jobmanager.memory.off-heap.size: 64m
    taskmanager.memory.jvm-metaspace.size: 128m
    taskmanager.memory.jvm-overhead.min: 64m
    taskmanager.memory.framework.heap.size: 64m
    taskmanager.memory.framework.off-heap.size: 32m
    taskmanager.memory.network.min: 32m
    taskmanager.memory.network.max: 32m
    taskmanager.memory.managed.size: 16m
  podTemplate:
    spec:
      hostNetwork: true
      terminationGracePeriodSeconds: 5
  jobManager:
    resource: {{memory: 500m, cpu: 0.04}}
  taskManager:
    replicas: 1
    resource: {{memory: 500m, cpu: 0.04}}
"#
        )
    }
}

// ---------------------------------------------------------------------------------------
// By hand: the objects the agent would render, applied with kubectl; REST with curl

/// A cluster deployed by hand: its manifest (for rendering) and the attempt it runs.
struct HandCluster {
    name: String,
    manifest: String,
    rest_url: String,
    generation: u64,
}

impl HandCluster {
    /// Renders the cluster (with `job` for an application) as the agent would for attempt
    /// `generation`, as YAML documents for `kubectl apply`.
    fn objects(&self, job: Option<ApplicationJob>) -> String {
        let mut set = ManifestSet::default();
        set.add_file("hand.yaml", &self.manifest);
        let m = set.manifests.first().expect("a manifest");
        let spec = m.as_deployment().expect("a FlinkDeployment").clone();
        let request = ClusterRequest {
            key: m.key.clone(),
            spec,
            job,
            generation: self.generation,
            revision: None,
        };
        let rendered = render(&request, RenderContext::default()).expect("render");
        rendered
            .objects()
            .iter()
            .map(|o| serde_yaml::to_string(o).expect("yaml"))
            .collect::<Vec<_>>()
            .join("---\n")
    }

    fn app_job(
        &self,
        version: &str,
        out: &Path,
        job_id: &JobId,
        restore: Option<String>,
    ) -> ApplicationJob {
        ApplicationJob {
            jar_uri: IMAGE_JAR.into(),
            entry_class: Some(ENTRY_CLASS.into()),
            args: counter_args(version, out),
            job_id: job_id.as_str().to_string(),
            parallelism: Some(1),
            restore,
            allow_non_restored_state: false,
        }
    }

    /// Waits until REST answers with a TaskManager registered.
    fn wait_ready(&self) {
        wait(
            &format!("{} answering with a TaskManager", self.name),
            Duration::from_secs(300),
            Duration::from_millis(500),
            || {
                curl(&[&format!("{}/overview", self.rest_url)])
                    .filter(|o| o["taskmanagers"].as_u64().unwrap_or(0) >= 1)
            },
        );
    }

    /// `POST /jobs/<id>/stop` with a savepoint, then the trigger polled until COMPLETED:
    /// the savepoint's location.
    fn stop_with_savepoint(&self, job: &str, dir: &Path) -> String {
        let trigger = curl_post_json(
            &format!("{}/jobs/{job}/stop", self.rest_url),
            &serde_json::json!({"targetDirectory": format!("file://{}/savepoints", dir.display()), "drain": false}),
        );
        let id = trigger["request-id"]
            .as_str()
            .unwrap_or_else(|| panic!("stop {job}: {trigger}"))
            .to_string();
        wait(
            "the savepoint",
            Duration::from_secs(120),
            MANUAL_POLL,
            || {
                let s = curl(&[&format!("{}/jobs/{job}/savepoints/{id}", self.rest_url)])?;
                if s["status"]["id"] != "COMPLETED" {
                    return None;
                }
                let location = s["operation"]["location"].as_str();
                assert!(location.is_some(), "savepoint failed: {s}");
                location.map(str::to_string)
            },
        )
    }
}

/// The application by hand: its cluster, the running job id and version.
struct HandApp {
    cluster: HandCluster,
    job: JobId,
    version: String,
}

/// The session job by hand: its cluster, the uploaded jar, the running job and version.
struct HandSessionJob {
    cluster: HandCluster,
    jar_id: String,
    job: String,
    version: String,
}

fn run_jar(
    c: &HandCluster,
    jar_id: &str,
    version: &str,
    out: &Path,
    restore: Option<&str>,
) -> String {
    let mut body = serde_json::json!({
        "entryClass": ENTRY_CLASS,
        "programArgsList": counter_args(version, out),
        "parallelism": 1,
    });
    if let Some(r) = restore {
        body["savepointPath"] = r.into();
    }
    let answer = curl_post_json(&format!("{}/jars/{jar_id}/run", c.rest_url), &body);
    answer["jobid"]
        .as_str()
        .unwrap_or_else(|| panic!("run {jar_id}: {answer}"))
        .to_string()
}

/// One upgrade of the application by hand; (gap, stop request → first new line), in s.
fn hand_app_upgrade(k: &Kubectl, s: &Setup, app: &mut HandApp, version: &str) -> (f64, f64) {
    let out = s.out(&app.cluster.name);
    let old_pods = app.cluster.pods(k, &s.ns);
    let t0 = now();
    let location = app.cluster.stop_with_savepoint(app.job.as_str(), &s.data);
    let saved = now();
    let job = JobId::random();
    app.cluster.generation += 1;
    k.apply(&app.cluster.objects(Some(app.cluster.app_job(
        version,
        &out,
        &job,
        Some(location),
    ))));
    let applied = now();
    let mut delete = vec!["delete", "-n", &s.ns, "--force", "--grace-period=0"];
    delete.extend(old_pods.iter().map(String::as_str));
    let _ = k.run(&delete);
    let deleted = now();
    let (last, first) = wait_switch(&out, &app.version, version);
    eprintln!(
        "  by hand application {version}: from the stop request, savepoint done +{:.2} s, applied +{:.2} s, old pods deleted +{:.2} s, first new line +{:.2} s; new pods' restarts: {}",
        saved - t0,
        applied - t0,
        deleted - t0,
        first - t0,
        restarts(k, &s.ns, &app.cluster.name)
    );
    app.job = job;
    app.version = version.to_string();
    (first - last, first - t0)
}

/// One upgrade of the session job by hand; (gap, stop request → first new line), in s.
fn hand_session_upgrade(
    s: &Setup,
    sj: &mut HandSessionJob,
    name: &str,
    version: &str,
) -> (f64, f64) {
    let out = s.out(name);
    let t0 = now();
    let location = sj.cluster.stop_with_savepoint(&sj.job, &s.data);
    let job = run_jar(&sj.cluster, &sj.jar_id, version, &out, Some(&location));
    let (last, first) = wait_switch(&out, &sj.version, version);
    sj.job = job;
    sj.version = version.to_string();
    (first - last, first - t0)
}

/// Container restarts of a cluster's pods (`pod=restarts`).
fn restarts(k: &Kubectl, ns: &str, cluster: &str) -> String {
    k.ok(&[
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        &format!("app.kubernetes.io/name={cluster}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.status.containerStatuses[0].restartCount} {end}",
    ])
    .trim()
    .to_string()
}

impl HandCluster {
    fn pods(&self, k: &Kubectl, ns: &str) -> Vec<String> {
        k.pods(ns, &self.name)
    }
}

// ---------------------------------------------------------------------------------------
// Figures

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// `utime + stime` of a process in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the command: state is field 3, utime field 14, stime field 15.
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf only reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    ticks as f64 / hz as f64
}

/// A `kB` field of `/proc/<pid>/status` in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU % of one core over `secs` and the RSS (MiB) at the end and the highest seen.
fn sample(pid: u32, secs: u64) -> (f64, f64, f64) {
    let (c0, t0) = (cpu_seconds(pid), Instant::now());
    let mut max_rss = status_mib(pid, "VmRSS");
    while t0.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(1));
        max_rss = max_rss.max(status_mib(pid, "VmRSS"));
    }
    let cpu = (cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64() * 100.0;
    (cpu, status_mib(pid, "VmRSS"), max_rss)
}

// ---------------------------------------------------------------------------------------
// Parts

const AGENT_APP: &str = "agent-app";
const HAND_APP: &str = "hand-app";
const AGENT_SESSION: &str = "agent-session";
const HAND_SESSION: &str = "hand-session";
const AGENT_SJ: &str = "agent-sj";
const HAND_SJ: &str = "hand-sj";

fn gap_part(k: &Kubectl, lab: &Path, jar: &Path, node_ip: &str, rounds: usize) {
    let ns = Namespace::create(k, "fg-bench-gap");
    let work = tempfile::tempdir().expect("tmp");
    let data = work.path().join("data");
    std::fs::create_dir_all(data.join("out")).expect("mkdir");
    for d in [&data, &data.join("out")] {
        let _ = Command::new("chmod").arg("0777").arg(d).status();
    }
    let s = Setup {
        ns: ns.name.clone(),
        node_ip: node_ip.to_string(),
        data,
        jar: jar.to_path_buf(),
    };
    let url = |port: u16| format!("http://{node_ip}:{port}");

    // The agent's application, session cluster and session job, at v1.
    let repo = Repo::new(work.path(), "repo");
    let write_agent = |app: &str, sj: &str| {
        repo.write(
            "app.yaml",
            &s.deployment(AGENT_APP, 29001, 29002, Some(app)),
        );
        repo.write(
            "session.yaml",
            &s.deployment(AGENT_SESSION, 29021, 29022, None),
        );
        repo.write(
            "session-job.yaml",
            &s.session_job(AGENT_SJ, AGENT_SESSION, sj),
        );
    };
    write_agent("v1", "v1");
    let mut commit = repo.push("v1");
    let rest_access = format!("host:{node_ip}");
    let agent = Agent::start(
        &repo,
        work.path(),
        "agent-gap",
        &lab.join("pki/admin.kubeconfig"),
        "info,flink_gitops=debug",
        &[
            "--interval",
            "1s",
            "--fast-poll",
            "100ms",
            "--rest-access",
            &rest_access,
        ],
    );

    // By hand: the same application and session cluster, rendered and applied.
    let mut hand_app = HandApp {
        cluster: HandCluster {
            name: HAND_APP.into(),
            manifest: s.deployment(HAND_APP, 29011, 29012, Some("v1")),
            rest_url: url(29011),
            generation: 1,
        },
        job: JobId::random(),
        version: "v1".into(),
    };
    k.apply(&hand_app.cluster.objects(Some(hand_app.cluster.app_job(
        "v1",
        &s.out(HAND_APP),
        &hand_app.job,
        None,
    ))));
    let hand_session = HandCluster {
        name: HAND_SESSION.into(),
        manifest: s.deployment(HAND_SESSION, 29031, 29032, None),
        rest_url: url(29031),
        generation: 1,
    };
    k.apply(&hand_session.objects(None));
    hand_session.wait_ready();
    let upload = curl(&[
        "-X",
        "POST",
        "-F",
        &format!("jarfile=@{}", jar.display()),
        &format!("{}/jars/upload", hand_session.rest_url),
    ])
    .expect("upload the jar");
    let jar_id = upload["filename"]
        .as_str()
        .and_then(|f| f.rsplit('/').next())
        .unwrap_or_else(|| panic!("upload: {upload}"))
        .to_string();
    let job = run_jar(&hand_session, &jar_id, "v1", &s.out(HAND_SJ), None);
    let mut hand_sj = HandSessionJob {
        cluster: hand_session,
        jar_id,
        job,
        version: "v1".into(),
    };

    let app_status = format!("{}/FlinkDeployment/{AGENT_APP}.yaml", s.ns);
    let sj_status = format!("{}/FlinkSessionJob/{AGENT_SJ}.yaml", s.ns);
    let start = Instant::now();
    for (what, name) in [
        ("agent application", AGENT_APP),
        ("by hand application", HAND_APP),
        ("agent session job", AGENT_SJ),
        ("by hand session job", HAND_SJ),
    ] {
        wait(
            &format!("{what} writing v1"),
            Duration::from_secs(600),
            Duration::from_millis(500),
            || {
                lines(&s.out(name))
                    .iter()
                    .any(|l| l.version == "v1")
                    .then_some(())
            },
        );
    }
    for path in [&app_status, &sj_status] {
        wait(
            &format!("{path} STABLE"),
            Duration::from_secs(300),
            Duration::from_millis(500),
            || repo.stable(path, Some(&commit)).then_some(()),
        );
    }
    eprintln!(
        "gap part: four clusters up and writing in {:.0} s; load average {}",
        start.elapsed().as_secs_f64(),
        load_average()
    );
    std::thread::sleep(PAUSE);

    let (mut agent_app, mut agent_app_push, mut hand_app_g, mut hand_app_stop) =
        (vec![], vec![], vec![], vec![]);
    let (mut agent_sj, mut agent_sj_push, mut hand_sj_g, mut hand_sj_stop) =
        (vec![], vec![], vec![], vec![]);
    let (mut app_v, mut sj_v) = ("v1".to_string(), "v1".to_string());
    for round in 1..=rounds {
        let v = format!("v{}", round + 1);

        // Agent, application.
        write_agent(&v, &sj_v);
        commit = repo.push(&format!("{AGENT_APP} {v}"));
        let pushed = now();
        let (last, first) = wait_switch(&s.out(AGENT_APP), &app_v, &v);
        agent_app.push(first - last);
        agent_app_push.push(first - pushed);
        eprintln!(
            "  agent application {v}: pushed at {pushed:.2}, last old line {last:.2}, first new line {first:.2} (epoch s); new pods' restarts: {}",
            restarts(k, &s.ns, AGENT_APP)
        );
        app_v = v.clone();
        wait(
            "agent application STABLE",
            Duration::from_secs(300),
            Duration::from_millis(200),
            || repo.stable(&app_status, Some(&commit)).then_some(()),
        );
        std::thread::sleep(PAUSE);

        // By hand, application.
        let (g, total) = hand_app_upgrade(k, &s, &mut hand_app, &v);
        hand_app_g.push(g);
        hand_app_stop.push(total);
        std::thread::sleep(PAUSE);

        // Agent, session job.
        write_agent(&app_v, &v);
        commit = repo.push(&format!("{AGENT_SJ} {v}"));
        let pushed = now();
        let (last, first) = wait_switch(&s.out(AGENT_SJ), &sj_v, &v);
        agent_sj.push(first - last);
        agent_sj_push.push(first - pushed);
        sj_v = v.clone();
        wait(
            "agent session job STABLE",
            Duration::from_secs(300),
            Duration::from_millis(200),
            || repo.stable(&sj_status, Some(&commit)).then_some(()),
        );
        std::thread::sleep(PAUSE);

        // By hand, session job.
        let (g, total) = hand_session_upgrade(&s, &mut hand_sj, HAND_SJ, &v);
        hand_sj_g.push(g);
        hand_sj_stop.push(total);
        std::thread::sleep(PAUSE);

        eprintln!(
            "round {round}/{rounds}: application gap agent {:.2} s (push -> first line {:.2} s), by hand {:.2} s (stop -> first line {:.2} s); session job gap agent {:.2} s (push -> first line {:.2} s), by hand {:.2} s (stop -> first line {:.2} s); load average {}",
            agent_app[round - 1],
            agent_app_push[round - 1],
            hand_app_g[round - 1],
            hand_app_stop[round - 1],
            agent_sj[round - 1],
            agent_sj_push[round - 1],
            hand_sj_g[round - 1],
            hand_sj_stop[round - 1],
            load_average()
        );
    }
    drop(agent);

    println!(
        "savepoint-upgrade gap on Kubernetes: {rounds} round(s) per path, interleaved (agent application, by hand application, agent session job, by hand session job), four clusters running throughout; data gap = last line of the old version to the first line of the new one (the job's ts=); load average {}",
        load_average()
    );
    for (what, agent, agent_push, hand, hand_stop) in [
        (
            "application",
            &agent_app,
            &agent_app_push,
            &hand_app_g,
            &hand_app_stop,
        ),
        (
            "session job",
            &agent_sj,
            &agent_sj_push,
            &hand_sj_g,
            &hand_sj_stop,
        ),
    ] {
        println!(
            "{what}: agent gap median {:.2} s [{}]; push -> first new line median {:.2} s [{}]",
            median(agent),
            list(agent),
            median(agent_push),
            list(agent_push)
        );
        println!(
            "{what}: by hand (curl + kubectl) gap median {:.2} s [{}]; stop request -> first new line median {:.2} s [{}]",
            median(hand),
            list(hand),
            median(hand_stop),
            list(hand_stop)
        );
        println!(
            "{what}: ratio of median gaps agent / by hand {:.2}",
            median(agent) / median(hand)
        );
    }
    ns.delete_and_wait(Duration::from_secs(120));
}

fn load_part(k: &Kubectl, lab: &Path, node_ip: &str, clusters: usize, secs: u64) {
    let ns = Namespace::create(k, "fg-bench-load");
    let work = tempfile::tempdir().expect("tmp");
    let s = Setup {
        ns: ns.name.clone(),
        node_ip: node_ip.to_string(),
        data: work.path().join("data"),
        jar: PathBuf::new(),
    };
    let repo = Repo::new(work.path(), "repo");
    let name = |i: usize| format!("load-{i:02}");
    let file = |i: usize| format!("clusters/{}.yaml", name(i));
    let status = |i: usize| format!("{}/FlinkDeployment/{}.yaml", s.ns, name(i));
    let port = |base: u16, i: usize| base + u16::try_from(i).expect("cluster index");
    repo.write(
        &file(0),
        &s.small_cluster(&name(0), port(29100, 0), port(29300, 0)),
    );
    repo.push("one cluster");
    let rest_access = format!("host:{node_ip}");
    let agent = Agent::start(
        &repo,
        work.path(),
        "agent-load",
        &lab.join("pki/admin.kubeconfig"),
        "info",
        &["--rest-access", &rest_access],
    );
    let start = Instant::now();
    wait(
        "one cluster STABLE",
        Duration::from_secs(300),
        Duration::from_secs(1),
        || {
            agent.check();
            repo.stable(&status(0), None).then_some(())
        },
    );
    eprintln!(
        "load part: 1 cluster STABLE after {:.0} s; sampling {secs} s",
        start.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(5));
    let la1 = load_average();
    let one = sample(agent.pid(), secs);

    // In batches (KUBE_BENCH_BATCH clusters per commit, default 3), each waited for: 40
    // JVMs starting at once on two cores failed their startup probes and never settled.
    let batch: usize = env_or("KUBE_BENCH_BATCH", 3).max(1);
    let start = Instant::now();
    let limit = Duration::from_secs(900);
    let mut stable = 0;
    let mut next = 1;
    while start.elapsed() < limit {
        stable = (0..clusters)
            .filter(|i| repo.stable(&status(*i), None))
            .count();
        if stable == clusters {
            break;
        }
        if stable == next && next < clusters {
            let end = (next + batch).min(clusters);
            for i in next..end {
                repo.write(
                    &file(i),
                    &s.small_cluster(&name(i), port(29100, i), port(29300, i)),
                );
            }
            repo.push(&format!("{end} clusters"));
            eprintln!(
                "load part: {stable} STABLE after {:.0} s, pushing clusters {next}..{end}",
                start.elapsed().as_secs_f64()
            );
            next = end;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    eprintln!(
        "load part: {stable} of {clusters} clusters STABLE after {:.0} s; load average {}; sampling {secs} s",
        start.elapsed().as_secs_f64(),
        load_average()
    );
    let pods_running = k
        .ok(&[
            "get",
            "pods",
            "-n",
            &s.ns,
            "--field-selector=status.phase=Running",
            "-o",
            "name",
        ])
        .lines()
        .count();
    std::thread::sleep(Duration::from_secs(5));
    let la20 = load_average();
    let many = sample(agent.pid(), secs);
    drop(agent);

    println!(
        "agent CPU and RSS on Kubernetes (default --interval 15s and fast poll 100 ms, --rest-access host): sampled over {secs} s each, utime+stime from /proc/<pid>/stat"
    );
    println!(
        "1 FlinkDeployment (session cluster, STABLE): CPU {:.2} % of one core, RSS {:.1} MiB (max during the sample {:.1} MiB); load average {la1}",
        one.0, one.1, one.2
    );
    println!(
        "{clusters} FlinkDeployments ({stable} STABLE, {pods_running} pods Running; session clusters, JM+TM 500 MiB and 0.04 cpu each): CPU {:.2} % of one core, RSS {:.1} MiB (max during the sample {:.1} MiB); load average {la20}",
        many.0, many.1, many.2
    );
    println!(
        "ratio {clusters} / 1: CPU {:.2}, RSS {:.2}",
        many.0 / one.0,
        many.1 / one.1
    );
    ns.delete_and_wait(Duration::from_secs(180));
}

fn setup_env() -> BTreeMap<String, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("scripts/setup.sh"))
        .arg("--print-env")
        .stderr(Stdio::null())
        .output()
        .expect("setup");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let lab = match running_lab() {
        Ok(dir) => dir,
        Err(why) => {
            println!("SKIPPED: {why}");
            return;
        }
    };
    let k = Kubectl::new(&lab);
    if !k.run(&["get", "nodes"]).status.success() {
        println!("SKIPPED: the lab's API server does not answer kubectl");
        return;
    }
    let rounds: usize = env_or("KUBE_BENCH_ROUNDS", 3).max(1);
    let clusters: usize = env_or("KUBE_BENCH_CLUSTERS", 20).clamp(1, 99);
    let secs: u64 = env_or("KUBE_BENCH_SAMPLE_SECS", 60).max(1);
    let parts: String = env_or("KUBE_BENCH_PARTS", "gap,load".to_string());
    let node_ip = k.node_ip();
    println!(
        "kube benchmark, {} (UTC); node {node_ip}; {} cores; load average at start {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M"),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_average()
    );
    if parts.contains("gap") {
        let env = setup_env();
        let jar = PathBuf::from(
            env.get("FLINK_GITOPS_JOB_JAR")
                .expect("FLINK_GITOPS_JOB_JAR from scripts/setup.sh --print-env"),
        );
        gap_part(&k, &lab, &jar, &node_ip, rounds);
    }
    if parts.contains("load") {
        load_part(&k, &lab, &node_ip, clusters, secs);
    }
}
