//! The local runtime: every FlinkDeployment becomes real Flink processes on this machine.
//!
//! An application cluster is a JobManager started with Flink's standalone application
//! entrypoint (fixed job id, restore path, the job's jar) plus TaskManagers; a session
//! cluster is a session JobManager plus TaskManagers. Each cluster has its own folder under
//! `<state-dir>/clusters/<namespace>/<name>/`: `conf/config.yaml` (the agent's defaults,
//! then the manifest's `flinkConfiguration`, then what the agent must set), `log/`,
//! `data/` (checkpoints and savepoints unless the manifest names other places) and
//! `cluster.json` (ports and process ids).
//!
//! Processes are started in their own process group and outlive the agent: a restarted
//! agent reads `cluster.json`, checks that each process id still belongs to that cluster
//! (its command line names the cluster's conf folder), and adopts it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::flink_config;
use super::runtime::{ClusterPresence, ClusterRequest, Runtime, RuntimeError};
use crate::config;
use crate::flink::spec::ResourceKey;

/// Environment variable naming the Flink distribution.
pub const ENV_FLINK_HOME: &str = "FLINK_HOME";
/// Memory of a local JobManager / TaskManager when the manifest gives none.
pub const DEFAULT_LOCAL_PROCESS_MEMORY: &str = "1g";
/// Managed memory of a local TaskManager (the hashmap state backend does not use it).
pub const DEFAULT_LOCAL_MANAGED_MEMORY: &str = "64m";
/// Ports for local JobManagers' REST and RPC endpoints: below the kernel's ephemeral range.
pub const LOCAL_PORT_RANGE: (u16, u16) = (20_000, 32_000);
/// How long a process gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Settings of the local runtime.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    pub flink_home: PathBuf,
    /// Clusters live under `<state_dir>/clusters`.
    pub state_dir: PathBuf,
    /// `local:///x/y.jar` is read from `<jar_root>/x/y.jar`.
    pub jar_root: PathBuf,
    /// Downloaded jars are kept under `<cache_dir>/jars`.
    pub cache_dir: PathBuf,
}

/// What `cluster.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterFile {
    pub namespace: String,
    pub name: String,
    pub application: bool,
    pub generation: u64,
    pub rest_port: u16,
    pub rpc_port: u16,
    pub jm_pid: u32,
    pub tm_pids: Vec<u32>,
    pub task_managers: u32,
    pub checkpoint_dir: String,
    pub savepoint_dir: String,
}

/// Why the local runtime cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LocalSetupError {
    #[error("FLINK_HOME has no Flink distribution ({}); run scripts/setup.sh or pass --flink-home", .0.display())]
    NoFlink(PathBuf),
    #[error("cannot create the state folder {}: {}", .0.display(), .1)]
    StateDir(PathBuf, #[source] std::io::Error),
    #[error("HTTP client for jar downloads: {0}")]
    Http(#[source] reqwest::Error),
}

fn unavailable(what: &str, reason: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Unavailable {
        what: what.to_string(),
        reason: reason.to_string(),
    }
}

/// Flink processes on this machine.
#[derive(Debug)]
pub struct LocalRuntime {
    settings: LocalSettings,
    java_opts: String,
    reserved_ports: Mutex<BTreeSet<u16>>,
    http: reqwest::Client,
}

impl LocalRuntime {
    /// Checks the Flink distribution and prepares the state folder.
    ///
    /// # Errors
    /// [`LocalSetupError`] when `flink_home` has no Flink distribution or the state folder
    /// cannot be made.
    pub fn new(settings: LocalSettings) -> Result<LocalRuntime, LocalSetupError> {
        let jm = settings.flink_home.join("bin/jobmanager.sh");
        if !jm.exists() {
            return Err(LocalSetupError::NoFlink(settings.flink_home.clone()));
        }
        let clusters = settings.state_dir.join("clusters");
        std::fs::create_dir_all(&clusters).map_err(|e| LocalSetupError::StateDir(clusters, e))?;
        let java_opts = distribution_java_opts(&settings.flink_home);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(LocalSetupError::Http)?;
        Ok(LocalRuntime {
            settings,
            java_opts,
            reserved_ports: Mutex::new(BTreeSet::new()),
            http,
        })
    }

    pub fn settings(&self) -> &LocalSettings {
        &self.settings
    }

    fn cluster_dir(&self, key: &ResourceKey) -> PathBuf {
        cluster_dir(&self.settings.state_dir, key)
    }

    /// Reads a cluster's `cluster.json`.
    pub fn cluster_file(&self, key: &ResourceKey) -> Option<ClusterFile> {
        read_cluster_file(&self.cluster_dir(key))
    }

    /// The clusters this runtime started that are on record under its state folder (their
    /// processes may or may not still run: [`Runtime::observe_cluster`] says).
    pub fn cluster_keys(&self) -> Vec<ResourceKey> {
        self.all_cluster_files()
            .into_iter()
            .map(|c| {
                ResourceKey::new(
                    c.namespace,
                    crate::flink::spec::Kind::FlinkDeployment,
                    c.name,
                )
            })
            .collect()
    }

    /// A runtime that only observes (for `diff`): it needs no Flink distribution, and a
    /// deploy through it fails.
    ///
    /// # Errors
    /// [`LocalSetupError::Http`] when the HTTP client cannot be built.
    pub fn for_observation(state_dir: PathBuf) -> Result<LocalRuntime, LocalSetupError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(LocalSetupError::Http)?;
        Ok(LocalRuntime {
            settings: LocalSettings {
                flink_home: PathBuf::new(),
                jar_root: PathBuf::new(),
                cache_dir: PathBuf::new(),
                state_dir,
            },
            java_opts: String::new(),
            reserved_ports: Mutex::new(BTreeSet::new()),
            http,
        })
    }

    fn all_cluster_files(&self) -> Vec<ClusterFile> {
        all_cluster_dirs(&self.settings.state_dir)
            .iter()
            .filter_map(|d| read_cluster_file(d))
            .collect()
    }

    fn allocate_port(&self) -> Result<u16, RuntimeError> {
        let in_use: BTreeSet<u16> = self
            .all_cluster_files()
            .iter()
            .flat_map(|c| [c.rest_port, c.rpc_port])
            .collect();
        let mut reserved = self
            .reserved_ports
            .lock()
            .map_err(|_| unavailable("port table", "poisoned by a panic"))?;
        // Ports come from below the kernel's ephemeral range (32768-60999 on Linux): Flink's
        // own random ports (blob server, TaskManager RPC and data) are ephemeral, and a port
        // picked from that range could be taken by one of them before our JobManager binds it.
        let (low, high) = LOCAL_PORT_RANGE;
        let span = u32::from(high - low);
        let seed = std::process::id().wrapping_mul(2_654_435_761)
            ^ (reserved.len() as u32).wrapping_mul(40_503);
        for i in 0..span {
            let port = low + ((seed.wrapping_add(i)) % span) as u16;
            if in_use.contains(&port) || reserved.contains(&port) {
                continue;
            }
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
                && std::net::TcpListener::bind(("::1", port))
                    .map(|_| true)
                    .unwrap_or(true)
            {
                reserved.insert(port);
                return Ok(port);
            }
        }
        Err(unavailable("port", "no free port in the local range"))
    }

    /// The configuration a cluster starts with.
    fn render_config(
        &self,
        request: &ClusterRequest,
        dir: &Path,
        rest_port: u16,
        rpc_port: u16,
    ) -> BTreeMap<String, String> {
        let mut runtime_defaults = BTreeMap::new();
        runtime_defaults.insert(
            "taskmanager.memory.managed.size".to_string(),
            DEFAULT_LOCAL_MANAGED_MEMORY.to_string(),
        );
        runtime_defaults.extend(self.default_configuration(&request.key));
        let skip = |k: &str| k.starts_with("kubernetes.") || k.starts_with("high-availability");
        let mut cfg = flink_config::cluster_configuration(
            request,
            &flink_config::ConfigLayers {
                runtime_defaults,
                skip_key: &skip,
                default_process_memory: DEFAULT_LOCAL_PROCESS_MEMORY,
            },
        );
        let set = |cfg: &mut BTreeMap<String, String>, k: &str, v: String| {
            cfg.insert(k.to_string(), v);
        };
        // What the agent must set.
        let data = dir.join("data");
        let force = set;
        force(&mut cfg, "env.java.opts.all", self.java_opts.clone());
        force(&mut cfg, "jobmanager.bind-host", "localhost".into());
        force(&mut cfg, "jobmanager.rpc.address", "localhost".into());
        force(&mut cfg, "jobmanager.rpc.port", rpc_port.to_string());
        force(&mut cfg, "taskmanager.bind-host", "localhost".into());
        force(&mut cfg, "taskmanager.host", "localhost".into());
        force(&mut cfg, "rest.address", "localhost".into());
        force(&mut cfg, "rest.bind-address", "localhost".into());
        force(&mut cfg, "rest.port", rest_port.to_string());
        force(
            &mut cfg,
            "web.upload.dir",
            data.join("web-upload").display().to_string(),
        );
        force(
            &mut cfg,
            "io.tmp.dirs",
            data.join("tmp").display().to_string(),
        );
        cfg
    }

    async fn spawn(
        &self,
        dir: &Path,
        role: &str,
        generation: u64,
        script: &str,
        args: &[String],
    ) -> Result<u32, RuntimeError> {
        let log_dir = dir.join("log");
        std::fs::create_dir_all(&log_dir)?;
        std::fs::create_dir_all(dir.join("run"))?;
        let out = std::fs::File::create(log_dir.join(format!("{role}-g{generation}.out")))?;
        let err = out.try_clone()?;
        let mut cmd =
            tokio::process::Command::new(self.settings.flink_home.join("bin").join(script));
        cmd.arg("start-foreground")
            .args(args)
            .env("FLINK_CONF_DIR", dir.join("conf"))
            .env("FLINK_LOG_DIR", &log_dir)
            .env("FLINK_PID_DIR", dir.join("run"))
            .env("FLINK_IDENT_STRING", format!("g{generation}"))
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .kill_on_drop(false);
        let child = cmd
            .spawn()
            .map_err(|e| unavailable(&format!("start {role} ({script})"), e))?;
        // The scripts `exec` down to java, so this is the JVM's pid. Dropping the handle
        // leaves the process running; tokio reaps it if it exits while we live.
        child
            .id()
            .ok_or_else(|| unavailable(&format!("start {role}"), "exited at once"))
    }

    /// Stops every process of every cluster under a state folder (for `down` and for tests).
    pub fn stop_all(state_dir: &Path) {
        for dir in all_cluster_dirs(state_dir) {
            if let Some(c) = read_cluster_file(&dir) {
                stop_processes(&dir, &c);
            }
        }
    }

    async fn download(&self, uri: &str) -> Result<PathBuf, RuntimeError> {
        let name = hex::encode(Sha256::digest(uri.as_bytes()));
        let dir = self.settings.cache_dir.join("jars");
        std::fs::create_dir_all(&dir)?;
        let target = dir.join(format!("{}.jar", &name[..24]));
        if target.exists() {
            return Ok(target);
        }
        let jar_err = |reason: String| RuntimeError::Jar {
            uri: uri.to_string(),
            reason,
            transient: true,
        };
        let resp = self
            .http
            .get(uri)
            .send()
            .await
            .map_err(|e| jar_err(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(jar_err(format!("HTTP {}", resp.status())));
        }
        let bytes = resp.bytes().await.map_err(|e| jar_err(e.to_string()))?;
        let tmp = dir.join(format!("{}.part", &name[..24]));
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, &target)?;
        tracing::info!(uri, sha256 = %hex::encode(Sha256::digest(&bytes)), "downloaded jar");
        Ok(target)
    }
}

pub(crate) fn uri_to_path(uri: &str) -> Option<PathBuf> {
    let rest = uri
        .strip_prefix("file://")
        .or_else(|| uri.strip_prefix("file:"))
        .unwrap_or(uri);
    rest.starts_with('/').then(|| PathBuf::from(rest))
}

/// The cluster folder of a resource under a state folder.
pub fn cluster_dir(state_dir: &Path, key: &ResourceKey) -> PathBuf {
    state_dir
        .join("clusters")
        .join(&key.namespace)
        .join(&key.name)
}

fn all_cluster_dirs(state_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(namespaces) = std::fs::read_dir(state_dir.join("clusters")) else {
        return out;
    };
    for ns in namespaces.flatten() {
        if let Ok(names) = std::fs::read_dir(ns.path()) {
            out.extend(names.flatten().map(|e| e.path()));
        }
    }
    out
}

fn read_cluster_file(dir: &Path) -> Option<ClusterFile> {
    let text = std::fs::read_to_string(dir.join("cluster.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether `pid` is alive and is a process of the cluster in `dir`.
fn owns(pid: u32, dir: &Path) -> bool {
    // The launch scripts carry FLINK_CONF_DIR in their environment, and the JVM they exec
    // into names the conf folder on its command line; either identifies the cluster.
    let conf = dir.join("conf");
    let needle = conf.to_string_lossy();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let in_cmdline = String::from_utf8_lossy(&cmdline).contains(needle.as_ref());
    let wanted = format!("FLINK_CONF_DIR={needle}");
    let in_environ = String::from_utf8_lossy(&environ)
        .split('\0')
        .any(|v| v == wanted);
    if !in_cmdline && !in_environ {
        return false;
    }
    // A zombie has a cmdline of nothing; a stopped (Z) process does not count as alive.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.split(") ")
                .nth(1)
                .is_some_and(|rest| rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid we recorded for this cluster and verified via /proc.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Stops a cluster's processes: TaskManagers first, then the JobManager; SIGTERM, then
/// SIGKILL after a grace period.
fn stop_processes(dir: &Path, c: &ClusterFile) {
    for group in [c.tm_pids.clone(), vec![c.jm_pid]] {
        let alive: Vec<u32> = group.into_iter().filter(|p| owns(*p, dir)).collect();
        for p in &alive {
            signal(*p, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while alive.iter().any(|p| owns(*p, dir)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        for p in alive.iter().filter(|p| owns(**p, dir)) {
            signal(*p, libc::SIGKILL);
        }
    }
}

/// `env.java.opts.all` of the distribution's own config (required on Java 17).
fn distribution_java_opts(flink_home: &Path) -> String {
    let text = std::fs::read_to_string(flink_home.join("conf/config.yaml")).unwrap_or_default();
    for line in text.lines() {
        if let Some(v) = line.trim_start().strip_prefix("env.java.opts.all:") {
            return v.trim().to_string();
        }
    }
    // Fall back to the flags Flink needs on Java 17 for the DataStream API.
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.lang.reflect=ALL-UNNAMED --add-opens=java.base/java.text=ALL-UNNAMED --add-opens=java.base/java.time=ALL-UNNAMED --add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED --add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED".to_string()
}

fn write_config(
    flink_home: &Path,
    dir: &Path,
    cfg: &BTreeMap<String, String>,
) -> Result<(), RuntimeError> {
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf)?;
    let yaml = serde_yaml::to_string(cfg).map_err(|e| unavailable("local runtime", e))?;
    std::fs::write(conf.join("config.yaml"), yaml)?;
    // The scripts expect logging configuration beside config.yaml.
    for file in [
        "log4j-console.properties",
        "log4j.properties",
        "logback-console.xml",
        "logback.xml",
    ] {
        let target = conf.join(file);
        if !target.exists() {
            let _ = std::fs::copy(flink_home.join("conf").join(file), &target);
        }
    }
    Ok(())
}

impl Runtime for LocalRuntime {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn deploy_cluster(&self, request: ClusterRequest) -> Result<(), RuntimeError> {
        let dir = self.cluster_dir(&request.key);
        if let Some(old) = read_cluster_file(&dir) {
            stop_processes(&dir, &old);
        }
        let _ = std::fs::remove_file(dir.join("cluster.json"));
        let rest_port = self.allocate_port()?;
        let rpc_port = self.allocate_port()?;
        for sub in ["data/tmp", "data/web-upload", "log", "run"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let cfg = self.render_config(&request, &dir, rest_port, rpc_port);
        write_config(&self.settings.flink_home, &dir, &cfg)?;
        for (file, text) in &request.spec.log_configuration {
            std::fs::write(dir.join("conf").join(file), text)?;
        }
        for ignored in ["image", "podTemplate", "ingress", "serviceAccount"] {
            let set = match ignored {
                "image" => request.spec.image.is_some(),
                "podTemplate" => request.spec.pod_template.is_some(),
                "ingress" => request.spec.ingress.is_some(),
                _ => request.spec.service_account.is_some(),
            };
            if set && request.generation <= 1 {
                tracing::info!(resource = %request.key, field = ignored, "has no meaning for the local runtime; ignored");
            }
        }
        let (jm_pid, application) = match &request.job {
            Some(job) => {
                let jar = self.fetch_jar(&job.jar_uri).await?;
                let mut args = vec![
                    "--jars".to_string(),
                    jar.display().to_string(),
                    "--job-id".to_string(),
                    job.job_id.clone(),
                ];
                if let Some(c) = &job.entry_class {
                    args.extend(["--job-classname".to_string(), c.clone()]);
                }
                if let Some(r) = &job.restore {
                    args.extend(["--fromSavepoint".to_string(), r.clone()]);
                }
                if job.allow_non_restored_state {
                    args.push("--allowNonRestoredState".to_string());
                }
                args.extend(job.args.iter().cloned());
                (
                    self.spawn(
                        &dir,
                        "jobmanager",
                        request.generation,
                        "standalone-job.sh",
                        &args,
                    )
                    .await?,
                    true,
                )
            }
            None => (
                self.spawn(&dir, "jobmanager", request.generation, "jobmanager.sh", &[])
                    .await?,
                false,
            ),
        };
        let count = flink_config::task_manager_count(&request.spec, &cfg);
        let mut tm_pids = Vec::new();
        for i in 0..count {
            tm_pids.push(
                self.spawn(
                    &dir,
                    &format!("taskmanager-{i}"),
                    request.generation,
                    "taskmanager.sh",
                    &[],
                )
                .await?,
            );
        }
        let checkpoint_dir = cfg
            .get(config::CHECKPOINTS_DIR.key)
            .cloned()
            .unwrap_or_default();
        let savepoint_dir = cfg
            .get(config::SAVEPOINTS_DIR.key)
            .cloned()
            .unwrap_or_default();
        let file = ClusterFile {
            namespace: request.key.namespace.clone(),
            name: request.key.name.clone(),
            application,
            generation: request.generation,
            rest_port,
            rpc_port,
            jm_pid,
            tm_pids,
            task_managers: count,
            checkpoint_dir,
            savepoint_dir,
        };
        let json =
            serde_json::to_string_pretty(&file).map_err(|e| unavailable("local runtime", e))?;
        std::fs::write(dir.join("cluster.json"), json)?;
        if let Ok(mut reserved) = self.reserved_ports.lock() {
            reserved.remove(&rest_port);
            reserved.remove(&rpc_port);
        }
        tracing::info!(resource = %request.key, rest_port, application, task_managers = count, generation = request.generation, "started local Flink cluster");
        Ok(())
    }

    async fn delete_cluster(&self, key: &ResourceKey) -> Result<(), RuntimeError> {
        let dir = self.cluster_dir(key);
        if let Some(c) = read_cluster_file(&dir) {
            let d = dir.clone();
            tokio::task::spawn_blocking(move || stop_processes(&d, &c))
                .await
                .map_err(|e| unavailable("local runtime", e))?;
            std::fs::remove_file(dir.join("cluster.json"))?;
            tracing::info!(resource = %key, "stopped local Flink cluster");
        }
        Ok(())
    }

    async fn observe_cluster(&self, key: &ResourceKey) -> Result<ClusterPresence, RuntimeError> {
        let dir = self.cluster_dir(key);
        let Some(c) = read_cluster_file(&dir) else {
            return Ok(ClusterPresence::Missing);
        };
        if !owns(c.jm_pid, &dir) {
            return Ok(ClusterPresence::Exited {
                reason: format!(
                    "the JobManager process ({}) is gone; see {}",
                    c.jm_pid,
                    dir.join("log").display()
                ),
            });
        }
        Ok(ClusterPresence::Running {
            task_managers: c.task_managers.max(1),
            generation: Some(c.generation),
        })
    }

    async fn rest_url(&self, key: &ResourceKey) -> Result<Option<String>, RuntimeError> {
        Ok(self
            .cluster_file(key)
            .map(|c| format!("http://localhost:{}", c.rest_port)))
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
        } else if uri.starts_with("http://") || uri.starts_with("https://") {
            return self.download(uri).await;
        } else {
            return Err(jar_err(
                "the local runtime reads local://, file://, http:// and https:// jars".into(),
            ));
        };
        if path.is_file() {
            Ok(path)
        } else {
            Err(jar_err(format!("{} does not exist", path.display())))
        }
    }

    fn default_configuration(&self, key: &ResourceKey) -> BTreeMap<String, String> {
        let data = self.cluster_dir(key).join("data");
        let mut cfg = BTreeMap::new();
        cfg.insert(
            config::CHECKPOINTS_DIR.key.to_string(),
            format!("file://{}", data.join("checkpoints").display()),
        );
        cfg.insert(
            config::SAVEPOINTS_DIR.key.to_string(),
            format!("file://{}", data.join("savepoints").display()),
        );
        cfg
    }
}
