//! Benchmark of `flink-gitops plan` on a large repository, against a Git baseline.
//!
//! Builds a Git repository with 1,000 FlinkDeployments (900 application clusters, 100
//! session clusters carrying 200 FlinkSessionJobs: 1,200 manifests) in 50 files across 10
//! folders, commits it (A), changes about 10 % of the resources in assorted ways (jar,
//! parallelism, upgrade mode, operator options, nonces, suspend, Flink version, image,
//! removals, additions, session clusters and session jobs) and commits again (B).
//!
//! Then runs the release binary as a child process, N times each, and reports the median
//! wall time, time per manifest and the child's peak RSS (`wait4` rusage, `ru_maxrss`):
//!
//! * `plan --base A --head B -o json`, each run with a fresh, empty cache folder (the
//!   repository is read in place; the OS page cache is warm after the first run);
//! * `plan --base A --head A` (nothing changed);
//! * `plan` over a `file://` URL with a fresh cache folder, so the mirror is cloned too;
//! * the baseline, which reads the same data with Git alone: `git diff --stat A B`, then
//!   `git archive A` and `git archive B` (every blob of both trees, written to a pipe and
//!   counted by this process). Its time is the sum of the three, its RSS the largest.
//!
//! Goals (from the issue): under 0.2 s and under 48 MiB for 1,000 deployments. Whether they
//! are met is printed; nothing here fails on time.
//!
//! Run with `cargo bench --bench plan`; `PLAN_BENCH_RUNS` sets N (default 7);
//! `PLAN_BENCH_KEEP=1` keeps the generated repository (for profiling) and prints its path.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEPLOYMENTS: usize = 1_000;
const FOLDERS: usize = 10;
const FILES: usize = 50;
const SESSION_EVERY: usize = 10;
const JOBS_PER_SESSION: usize = 2;
const GOAL_SECONDS: f64 = 0.2;
const GOAL_RSS_MIB: f64 = 48.0;

// ---------------------------------------------------------------------------------------
// The repository
// ---------------------------------------------------------------------------------------

/// A small deterministic generator, so every run benchmarks the same repository.
fn mix(i: usize, salt: u64) -> u64 {
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x
}

const DOMAINS: &[&str] = &[
    "orders",
    "payments",
    "clicks",
    "fraud",
    "inventory",
    "search",
    "ads",
    "billing",
    "shipping",
    "sessions",
    "alerts",
    "metrics",
];
const VERSIONS: &[&str] = &["v1_18", "v1_19", "v1_20", "v1_20", "v2_0", "v2_1"];
const MODES: &[&str] = &["savepoint", "last-state", "stateless"];

/// What commit B does to a resource.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Edit {
    None,
    Jar,
    Parallelism,
    UpgradeMode,
    OperatorOption,
    SavepointNonce,
    Suspend,
    RestartNonce,
    FlinkVersion,
    Image,
    Remove,
}

const EDITS: [Edit; 10] = [
    Edit::Jar,
    Edit::Parallelism,
    Edit::UpgradeMode,
    Edit::OperatorOption,
    Edit::SavepointNonce,
    Edit::Suspend,
    Edit::RestartNonce,
    Edit::FlinkVersion,
    Edit::Image,
    Edit::Remove,
];

fn edit_of(i: usize) -> Edit {
    let h = mix(i, 0xB);
    if h % 10 == 0 {
        EDITS[((h / 10) % EDITS.len() as u64) as usize]
    } else {
        Edit::None
    }
}

struct Deployment {
    i: usize,
    name: String,
    namespace: String,
    session: bool,
}

fn deployment(i: usize) -> Deployment {
    let domain = DOMAINS[i % DOMAINS.len()];
    Deployment {
        i,
        name: format!("{domain}-{i:04}"),
        namespace: format!("team-{}", i * FOLDERS / DEPLOYMENTS),
        session: i % SESSION_EVERY == SESSION_EVERY - 1,
    }
}

/// The manifest text of deployment `d` (and its session jobs) at commit A or B.
fn render(d: &Deployment, at_b: bool) -> String {
    let edit = if at_b { edit_of(d.i) } else { Edit::None };
    if edit == Edit::Remove {
        return String::new();
    }
    let h = mix(d.i, 0xA);
    let (name, ns) = (&d.name, &d.namespace);
    let domain = DOMAINS[d.i % DOMAINS.len()];
    let mut version = VERSIONS[(h % VERSIONS.len() as u64) as usize];
    if edit == Edit::FlinkVersion {
        version = if version == "v2_1" { "v2_0" } else { "v2_1" };
    }
    let image_patch = h % 9 + u64::from(edit == Edit::Image);
    let mut s = format!(
        "apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: {name}
  namespace: {ns}
  labels:
    app.kubernetes.io/name: {name}
    app.kubernetes.io/part-of: {domain}
    team: {ns}
  annotations:
    example.com/owner: {ns}@example.com
    example.com/runbook: https://runbooks.example.com/flink/{domain}
spec:
  image: registry.example.com/flink/{domain}:1.{}.{image_patch}
  imagePullPolicy: IfNotPresent
  flinkVersion: {version}
  serviceAccount: flink
",
        h % 5
    );
    if edit == Edit::RestartNonce {
        s += "  restartNonce: 2\n";
    }
    let slots = 1 + h % 4;
    let mut periodic = 4 + h % 8;
    if edit == Edit::OperatorOption {
        periodic += 1;
    }
    s += &format!(
        "  flinkConfiguration:
    taskmanager.numberOfTaskSlots: \"{slots}\"
    state.backend.type: rocksdb
    state.backend.incremental: \"true\"
    state.checkpoints.dir: s3://flink-state/{ns}/checkpoints/{name}
    state.savepoints.dir: s3://flink-state/{ns}/savepoints/{name}
    execution.checkpointing.interval: {}s
    execution.checkpointing.timeout: 10 min
    high-availability.type: kubernetes
    high-availability.storageDir: s3://flink-state/{ns}/ha/{name}
    kubernetes.operator.periodic.savepoint.interval: {periodic}h
    kubernetes.operator.savepoint.history.max.count: \"5\"
    metrics.reporter.prom.factory.class: org.apache.flink.metrics.prometheus.PrometheusReporterFactory
    metrics.reporter.prom.port: \"9249\"
  jobManager:
    replicas: 1
    resource:
      memory: 2048m
      cpu: 1
  taskManager:
    resource:
      memory: {}m
      cpu: {}
",
        30 + h % 5 * 30,
        2048 * (1 + h % 3),
        1 + h % 2
    );
    if h % 3 != 0 {
        s += &format!(
            "  podTemplate:
    spec:
      containers:
        - name: flink-main-container
          env:
            - name: DEPLOY_ENV
              value: production
            - name: KAFKA_BOOTSTRAP
              value: kafka-{ns}.kafka.svc:9092
          volumeMounts:
            - name: secrets
              mountPath: /opt/secrets
              readOnly: true
      volumes:
        - name: secrets
          secret:
            secretName: {name}-secrets
"
        );
    }
    if h % 4 == 0 {
        s += "  ingress:\n    template: \"{{name}}.{{namespace}}.flink.example.com\"\n    className: nginx\n    annotations:\n      nginx.ingress.kubernetes.io/rewrite-target: \"/\"\n";
    }
    if d.session {
        if edit != Edit::None && edit != Edit::Remove {
            // Any session-cluster edit here is a redeploy: one more slot per TaskManager.
            s = s.replace(
                &format!("taskmanager.numberOfTaskSlots: \"{slots}\""),
                &format!("taskmanager.numberOfTaskSlots: \"{}\"", slots + 1),
            );
        }
        for j in 0..JOBS_PER_SESSION {
            // Session jobs: a jar bump on some of them at B.
            let bump = u64::from(at_b && mix(d.i * 7 + j, 0xC) % 10 == 0);
            s += &format!(
                "---
apiVersion: flink.apache.org/v1beta1
kind: FlinkSessionJob
metadata:
  name: {name}-job-{j}
  namespace: {ns}
spec:
  deploymentName: {name}
  job:
    jarURI: https://artifacts.example.com/jobs/{domain}-etl-2.{}.jar
    entryClass: com.example.{domain}.EtlJob{j}
    args: [\"--source\", \"kafka\", \"--topic\", \"{name}-{j}\"]
    parallelism: {}
    upgradeMode: stateless
",
                h % 7 + bump,
                1 + j
            );
        }
        return s;
    }
    let mut mode = MODES[(h / 7 % 3) as usize];
    if edit == Edit::UpgradeMode {
        mode = if mode == "savepoint" {
            "last-state"
        } else {
            "savepoint"
        };
    }
    let mut parallelism = slots * (1 + h % 4);
    if edit == Edit::Parallelism {
        parallelism += slots;
    }
    let jar_minor = h % 11 + u64::from(edit == Edit::Jar);
    let state = if edit == Edit::Suspend {
        "suspended"
    } else {
        "running"
    };
    s += &format!(
        "  job:
    jarURI: local:///opt/flink/usrlib/{domain}-3.{jar_minor}.0.jar
    entryClass: com.example.{domain}.StreamingJob
    args: [\"--env\", \"production\", \"--topic\", \"{name}\"]
    parallelism: {parallelism}
    upgradeMode: {mode}
    state: {state}
"
    );
    if edit == Edit::SavepointNonce {
        s += "    savepointTriggerNonce: 1\n";
    }
    s
}

/// Writes the tree at A or B. B also adds a few new deployments.
fn write_tree(root: &Path, at_b: bool) -> std::io::Result<usize> {
    let per_file = DEPLOYMENTS / FILES;
    let mut manifests = 0;
    for f in 0..FILES {
        let folder = f * FOLDERS / FILES;
        let dir = root.join(format!("teams/team-{folder}"));
        std::fs::create_dir_all(&dir)?;
        let docs: Vec<String> = (f * per_file..(f + 1) * per_file)
            .map(|i| render(&deployment(i), at_b))
            .filter(|t| !t.is_empty())
            .collect();
        manifests += docs
            .iter()
            .map(|d| d.matches("\nkind: ").count())
            .sum::<usize>();
        let text = docs.join("---\n");
        std::fs::write(dir.join(format!("apps-{f:02}.yaml")), text)?;
    }
    if at_b {
        let added: Vec<String> = (DEPLOYMENTS..DEPLOYMENTS + 5)
            .map(|i| {
                let mut d = deployment(i);
                d.namespace = "team-new".into();
                d.session = false;
                render(&d, false)
            })
            .collect();
        manifests += added.len();
        let dir = root.join("teams/team-new");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("apps.yaml"), added.join("---\n"))?;
    }
    Ok(manifests)
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

// ---------------------------------------------------------------------------------------
// Measuring a child process
// ---------------------------------------------------------------------------------------

struct Sample {
    wall: Duration,
    /// User plus system CPU time of the child.
    cpu: Duration,
    rss_kib: u64,
    stdout: Vec<u8>,
    code: i32,
}

/// Runs a command to completion, reading its stdout, and reaps it with `wait4` to get its
/// peak RSS and CPU time.
#[allow(clippy::zombie_processes)] // reaped by wait4, which std's Child does not know
fn measure(cmd: &mut Command) -> Sample {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut stdout).expect("read stdout");
    }
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own unreaped child; status and usage are valid for writes.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Sample {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        rss_kib: usage.ru_maxrss as u64,
        stdout,
        code,
    }
}

struct Figure {
    median: Duration,
    cpu: Duration,
    rss_kib: u64,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs `one` `runs` times after a warm-up run: the median wall and CPU times, and the
/// largest RSS.
fn repeat(runs: usize, mut one: impl FnMut() -> Sample) -> Figure {
    let _ = one();
    let (mut times, mut cpus) = (Vec::new(), Vec::new());
    let mut rss = 0;
    for _ in 0..runs {
        let s = one();
        times.push(s.wall);
        cpus.push(s.cpu);
        rss = rss.max(s.rss_kib);
    }
    Figure {
        median: median(times),
        cpu: median(cpus),
        rss_kib: rss,
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn report(what: &str, manifests: usize, f: &Figure, baseline: &Figure) {
    println!(
        "{what} {manifests} manifests: median {:.3} s ({:.0} µs/manifest, CPU {:.3} s), peak RSS {:.1} MiB, {:.1}x baseline (git diff --stat + git archive A and B)",
        secs(f.median),
        secs(f.median) * 1e6 / manifests as f64,
        secs(f.cpu),
        mib(f.rss_kib),
        secs(f.median) / secs(baseline.median),
    );
}

fn plan_cmd(bin: &Path, repo: &str, base: &str, head: &str, cache: &Path) -> Command {
    let mut c = Command::new(bin);
    c.args([
        "plan", "--repo", repo, "--base", base, "--head", head, "-o", "json",
    ])
    .env("FLINK_GITOPS_CACHE", cache)
    .env("NO_COLOR", "1")
    .env_remove("FLINK_GITOPS_LOG");
    c
}

fn main() {
    // `cargo bench` passes `--bench`; there are no other flags to read.
    let runs: usize = std::env::var("PLAN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(7);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_flink-gitops"));
    let mut tmp = tempfile::tempdir().expect("tempdir");
    let keep = std::env::var_os("PLAN_BENCH_KEEP").is_some();
    tmp.disable_cleanup(keep);
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(&repo, &["init", "-q", "-b", "main"]);
    let manifests_a = write_tree(&repo, false).expect("write A");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "A"]);
    let a = git(&repo, &["rev-parse", "HEAD"]);
    std::fs::remove_dir_all(repo.join("teams")).expect("clear");
    let manifests_b = write_tree(&repo, true).expect("write B");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "B"]);
    let b = git(&repo, &["rev-parse", "HEAD"]);
    if keep {
        println!("kept: {} (A = {a}, B = {b})", repo.display());
    }
    let bytes: u64 = git(&repo, &["ls-tree", "-r", "-l", &b])
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok())
        .sum();
    let edits = (0..DEPLOYMENTS)
        .filter(|i| edit_of(*i) != Edit::None)
        .count();
    println!(
        "repository: {manifests_a} manifests at A ({DEPLOYMENTS} FlinkDeployments, {} FlinkSessionJobs) in {FILES} files / {FOLDERS} folders, {:.1} MiB at B; B edits {edits} deployments, bumps some session jobs, adds 5",
        manifests_a - DEPLOYMENTS,
        bytes as f64 / 1048576.0
    );

    // Sanity: the plan of A→B is valid and lists the changes.
    let repo_arg = repo.display().to_string();
    let plan_once = |repo: &str, base: &str, head: &str| {
        let cache = tempfile::tempdir().expect("tempdir");
        let s = measure(&mut plan_cmd(&bin, repo, base, head, cache.path()));
        assert_eq!(s.code, 0, "plan exited {}", s.code);
        s
    };
    let s = plan_once(&repo_arg, &a, &b);
    let plan: serde_json::Value = serde_json::from_slice(&s.stdout).expect("plan JSON");
    assert_eq!(
        plan["summary"]["invalid"], 0,
        "generated manifests are invalid"
    );
    println!(
        "plan A→B lists {} resources: {}",
        plan["resources"].as_array().map_or(0, Vec::len),
        plan["summary"]
    );

    let cold = repeat(runs, || plan_once(&repo_arg, &a, &b));
    let same = repeat(runs, || plan_once(&repo_arg, &a, &a));
    let url = format!("file://{}", repo.display());
    let remote = repeat(runs, || plan_once(&url, &a, &b));
    let mut archived = 0;
    let baseline = repeat(runs, || {
        let git_cmd = |args: &[&str]| {
            let mut c = Command::new("git");
            c.args(args)
                .current_dir(&repo)
                .env("GIT_CONFIG_NOSYSTEM", "1");
            c
        };
        let diff = measure(&mut git_cmd(&["diff", "--stat", &a, &b]));
        let arch_a = measure(&mut git_cmd(&["archive", "--format=tar", &a]));
        let arch_b = measure(&mut git_cmd(&["archive", "--format=tar", &b]));
        archived = arch_a.stdout.len() + arch_b.stdout.len();
        Sample {
            wall: diff.wall + arch_a.wall + arch_b.wall,
            cpu: diff.cpu + arch_a.cpu + arch_b.cpu,
            rss_kib: diff.rss_kib.max(arch_a.rss_kib).max(arch_b.rss_kib),
            stdout: Vec::new(),
            code: 0,
        }
    });

    let mut load = [0f64; 3];
    // SAFETY: getloadavg writes at most 3 doubles into the buffer it is given.
    let got = unsafe { libc::getloadavg(load.as_mut_ptr(), 3) };
    println!(
        "runs: {runs} each after one warm-up; medians; peak RSS = largest ru_maxrss of the child; {} cores, load average {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        if got >= 1 { format!("{:.2}", load[0]) } else { "unknown".to_string() }
    );
    report("plan cold", manifests_b, &cold, &baseline);
    report("plan unchanged (A→A)", manifests_a, &same, &baseline);
    report(
        "plan file:// URL, fresh mirror",
        manifests_b,
        &remote,
        &baseline,
    );
    println!(
        "baseline (git diff --stat A B + git archive A + git archive B, {:.1} MiB read): median {:.3} s (CPU {:.3} s), peak RSS {:.1} MiB",
        archived as f64 / 1048576.0,
        secs(baseline.median),
        secs(baseline.cpu),
        mib(baseline.rss_kib)
    );
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "goal plan < {GOAL_SECONDS} s for {DEPLOYMENTS} deployments: {} (cold {:.3} s, unchanged {:.3} s)",
        met(secs(cold.median) < GOAL_SECONDS && secs(same.median) < GOAL_SECONDS),
        secs(cold.median),
        secs(same.median)
    );
    println!(
        "goal plan peak RSS < {GOAL_RSS_MIB} MiB: {} (cold {:.1} MiB, unchanged {:.1} MiB)",
        met(mib(cold.rss_kib) < GOAL_RSS_MIB && mib(same.rss_kib) < GOAL_RSS_MIB),
        mib(cold.rss_kib),
        mib(same.rss_kib)
    );
}
