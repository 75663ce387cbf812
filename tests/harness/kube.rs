//! Harness for tests on the project's Kubernetes test cluster (`scripts/kube-lab`): a real
//! API server, controller manager, scheduler and kubelet on this machine, with images
//! loaded without a registry.
//!
//! A test takes the running cluster ([`Lab::start`] starts it when it is built but not
//! running, and stops it again when the test started it) and works in a namespace of its
//! own ([`TestNamespace`]), deleted with everything in it when the test ends, also when it
//! fails. Without a built cluster a test is skipped with a message that says how to build
//! it (`scripts/setup.sh --kube`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, Patch, PatchParams};
use kube::Client;

use super::root;

/// The Flink image the lab builds (Flink 2.3 with the stateful test job in `usrlib/`).
pub const FLINK_IMAGE: &str = "flink-gitops.local/flink:2.3";
/// The test job inside [`FLINK_IMAGE`].
pub const IMAGE_JOB_JAR: &str = "local:///opt/flink/usrlib/stateful-counter.jar";

/// Where the lab lives: `$FLINK_GITOPS_KUBE_LAB`, else `<cache>/kube-lab`.
pub fn lab_dir() -> PathBuf {
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

/// The running lab cluster; stopped on drop when this guard started it.
pub struct Lab {
    pub dir: PathBuf,
    started_here: bool,
}

impl Lab {
    /// The running lab cluster, started if needed; `None` (the test is skipped, with a
    /// message) when it is not built.
    pub fn start() -> Option<Lab> {
        let dir = lab_dir();
        let built = std::fs::read_to_string(dir.join("built")).unwrap_or_default();
        if built.trim().is_empty() || !dir.join("images/flink.tar").is_file() {
            eprintln!(
                "SKIPPED: the Kubernetes lab is not built in {} (run scripts/setup.sh --kube)",
                dir.display()
            );
            return None;
        }
        let pid_alive = |name: &str| {
            std::fs::read_to_string(dir.join(format!("run/{name}.pid")))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
                .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists())
        };
        let was_running = pid_alive("kube-apiserver") && pid_alive("kubelet");
        let status = Command::new(root().join("scripts/kube-lab/start.sh"))
            .status()
            .expect("run scripts/kube-lab/start.sh");
        assert!(status.success(), "scripts/kube-lab/start.sh failed");
        Some(Lab {
            dir,
            started_here: !was_running,
        })
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("pki/admin.kubeconfig")
    }

    pub async fn client(&self) -> Client {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(self.kubeconfig()).expect("lab kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("client config");
        Client::try_from(cfg).expect("client")
    }

    /// The lab's kubectl with its kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(self.dir.join("bin/kubectl"))
            .env("KUBECONFIG", self.kubeconfig())
            .args(args)
            .output()
            .expect("run kubectl")
    }

    /// `kubectl apply -f -` of `yaml`, failing the test when kubectl does.
    pub fn apply(&self, yaml: &str) {
        use std::io::Write;
        let mut child = Command::new(self.dir.join("bin/kubectl"))
            .env("KUBECONFIG", self.kubeconfig())
            .args(["apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run kubectl apply");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(yaml.as_bytes())
            .expect("write manifest");
        let out = child.wait_with_output().expect("kubectl apply");
        assert!(
            out.status.success(),
            "kubectl apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Kills a container with SIGKILL through the lab's containerd, as a crash would: the
    /// process gets no signal it could handle (a pod deleted with `--grace-period=0` still
    /// gets SIGTERM from the kubelet first). `id` is a pod status's `containerID`, with or
    /// without `containerd://`. The socket: `$KUBE_LAB_RUNTIME/containerd.sock` (as
    /// scripts/kube-lab/lib.sh has it).
    pub fn kill_container(&self, id: &str) {
        let runtime = std::env::var("KUBE_LAB_RUNTIME")
            .unwrap_or_else(|_| "/run/flink-gitops-kube-lab".to_string());
        let id = id.strip_prefix("containerd://").unwrap_or(id);
        let out = Command::new("ctr")
            .args(["--address", &format!("{runtime}/containerd.sock")])
            .args([
                "--namespace",
                "k8s.io",
                "tasks",
                "kill",
                "--signal",
                "SIGKILL",
                id,
            ])
            .output()
            .expect("run ctr");
        assert!(
            out.status.success(),
            "ctr tasks kill {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.started_here {
            let _ = Command::new(root().join("scripts/kube-lab/stop.sh")).status();
        }
    }
}

/// The node's InternalIP: JobManagers on the host network listen there.
pub async fn node_ip(client: &Client) -> String {
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes.list(&Default::default()).await.expect("nodes");
    list.items
        .iter()
        .flat_map(|n| n.status.iter().flat_map(|s| s.addresses.iter().flatten()))
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
        .expect("a node with an InternalIP")
}

/// A namespace of the test's own; on drop its pods are force-deleted (the 1.20 kubelet is
/// slow to confirm deletions, and host ports stay taken until it does) and the namespace
/// with everything in it is deleted.
pub struct TestNamespace {
    lab: PathBuf,
    pub name: String,
}

impl TestNamespace {
    pub async fn create(lab: &Lab, client: &Client, prefix: &str) -> TestNamespace {
        let name = format!("{prefix}-{}", std::process::id());
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .patch(
                &name,
                &PatchParams::apply("flink-gitops-test").force(),
                &Patch::Apply(serde_json::json!({
                    "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})),
            )
            .await
            .expect("namespace");
        TestNamespace {
            lab: lab.dir.clone(),
            name,
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let kubectl = |args: &[&str]| {
            let _ = Command::new(self.lab.join("bin/kubectl"))
                .env("KUBECONFIG", self.lab.join("pki/admin.kubeconfig"))
                .args(args)
                .output();
        };
        kubectl(&[
            "delete",
            "deployments",
            "--all",
            "-n",
            &self.name,
            "--wait=false",
        ]);
        kubectl(&[
            "delete",
            "pods",
            "--all",
            "-n",
            &self.name,
            "--grace-period=0",
            "--force",
        ]);
        kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
    }
}

/// Polls `probe` every 250 ms until it gives a value; fails the test after `limit`.
pub async fn wait_until<T>(
    what: &str,
    limit: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

static KUBE_SLOT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The lab's one node has two CPUs: tests that run Flink pods there take turns. This is
/// a pool of its own, apart from [`super::flink::Slot`] (Flink processes on this machine),
/// so a test on the lab and one with local clusters run side by side.
pub fn kube_slot() -> std::sync::MutexGuard<'static, ()> {
    KUBE_SLOT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
