//! Harness for tests that run the agent against real Flink and real Git remotes.
//!
//! Flink is installed once per machine by `scripts/setup.sh` (idempotent, seconds when
//! present). Tests that start clusters take a slot first: on two cores more than one set
//! of JVMs starting at once only makes every test slower. Every process a test starts is
//! stopped when its guard drops, also when the test fails.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{bin, git, root};

/// What `scripts/setup.sh --print-env` reports.
#[derive(Debug, Clone)]
pub struct FlinkEnv {
    pub vars: BTreeMap<String, String>,
}

impl FlinkEnv {
    pub fn flink_home(&self) -> &str {
        &self.vars["FLINK_HOME"]
    }
    pub fn job_jar(&self) -> &str {
        &self.vars["FLINK_GITOPS_JOB_JAR"]
    }
}

/// Installs (if needed) and returns the Flink environment.
pub fn flink_env() -> &'static FlinkEnv {
    static ENV: OnceLock<FlinkEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        let out = Command::new(root().join("scripts/setup.sh"))
            .arg("--print-env")
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/setup.sh");
        assert!(out.status.success(), "scripts/setup.sh failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let vars = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| {
                (
                    k.to_string(),
                    v.trim_matches('\'').trim_matches('"').to_string(),
                )
            })
            .collect();
        FlinkEnv { vars }
    })
}

/// At most this many tests run Flink clusters at once.
fn max_slots() -> usize {
    std::env::var("FLINK_GITOPS_TEST_CLUSTERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

static SLOTS: Mutex<usize> = Mutex::new(0);
static FREED: Condvar = Condvar::new();

/// A slot to run Flink clusters in; released on drop.
pub struct Slot;

impl Slot {
    pub fn take() -> Slot {
        let mut used = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        while *used >= max_slots() {
            used = FREED.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut used = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        *used -= 1;
        FREED.notify_one();
    }
}

/// A bare repository (the "remote") and a work clone to commit and push from.
pub struct Remote {
    pub dir: tempfile::TempDir,
}

impl Remote {
    pub fn new() -> Remote {
        let dir = tempfile::tempdir().expect("tempdir");
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", "remote.git"],
        );
        git(dir.path(), &["clone", "-q", "remote.git", "work"]);
        git(&dir.path().join("work"), &["checkout", "-q", "-b", "main"]);
        Remote { dir }
    }

    pub fn bare(&self) -> PathBuf {
        self.dir.path().join("remote.git")
    }

    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.bare().display())
    }

    /// A scratch folder for job output and agent state.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).expect("mkdir");
        p
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.work().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, text).expect("write");
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.work().join(rel)).expect("remove");
    }

    /// Commits everything and pushes main; returns the commit id.
    pub fn push(&self, message: &str) -> String {
        let w = self.work();
        git(&w, &["add", "-A"]);
        git(&w, &["commit", "-q", "--allow-empty", "-m", message]);
        git(&w, &["push", "-q", "origin", "main"]);
        git(&w, &["rev-parse", "HEAD"])
    }

    /// `git revert` of a commit, pushed; returns the new commit id.
    pub fn revert(&self, commit: &str) -> String {
        let w = self.work();
        git(&w, &["revert", "--no-edit", commit]);
        git(&w, &["push", "-q", "origin", "main"]);
        git(&w, &["rev-parse", "HEAD"])
    }

    /// A status file from the status branch of the remote, parsed.
    pub fn status(&self, path: &str) -> Option<serde_yaml::Value> {
        let out = Command::new("git")
            .args(["show", &format!("flink-gitops/status:{path}")])
            .current_dir(self.bare())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_yaml::from_slice(&out.stdout).ok()
    }

    /// Commit subjects on the status branch, newest first.
    pub fn status_log(&self) -> Vec<String> {
        let out = Command::new("git")
            .args(["log", "--format=%s", "flink-gitops/status"])
            .current_dir(self.bare())
            .output()
            .expect("git log");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// A running `flink-gitops run`; on drop the agent is killed and every Flink process under
/// its state folder is stopped.
pub struct AgentProcess {
    child: Option<Child>,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl AgentProcess {
    pub fn start(repo_url: &str, state_dir: &Path, extra: &[&str]) -> AgentProcess {
        Self::start_with_env(repo_url, state_dir, extra, &[])
    }

    /// [`AgentProcess::start`] with extra environment, kept across restarts.
    pub fn start_with_env(
        repo_url: &str,
        state_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> AgentProcess {
        let mut args: Vec<String> = vec![
            "run".into(),
            "--repo".into(),
            repo_url.into(),
            "--interval".into(),
            "1s".into(),
            "--fast-poll".into(),
            "50ms".into(),
            "--state-dir".into(),
            state_dir.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut a = AgentProcess {
            child: None,
            state_dir: state_dir.to_path_buf(),
            log: state_dir.join("agent.log"),
            args,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        a.spawn(&[]);
        a
    }

    fn spawn(&mut self, env: &[(&str, &str)]) {
        let env_flink = flink_env();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        let err = log.try_clone().expect("log");
        let mut cmd = Command::new(bin());
        cmd.args(&self.args)
            .env("FLINK_HOME", env_flink.flink_home())
            .env("FLINK_GITOPS_CACHE", self.state_dir.join("cache"))
            .env("FLINK_GITOPS_LOG", "info,flink_gitops=debug")
            // Short, so that tests do not wait a minute per deployment; a test that needs
            // the window sets flink-gitops.deployment.stability.window in its manifest.
            .env("FLINK_GITOPS_STABILITY_WINDOW", "2s")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("start flink-gitops run"));
    }

    /// Restarts the agent (after a kill), optionally with extra environment.
    pub fn restart(&mut self, env: &[(&str, &str)]) {
        self.kill();
        self.spawn(env);
    }

    /// Restarts the agent with extra command-line flags.
    pub fn restart_with_args(&mut self, extra: &[&str]) {
        self.args.extend(extra.iter().map(|s| s.to_string()));
        self.kill();
        self.spawn(&[]);
    }

    /// SIGKILLs the agent (Flink processes keep running, as they would).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the agent to exit by itself (e.g. a failpoint); returns whether it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    self.child = None;
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
        flink_gitops::apply::local::LocalRuntime::stop_all(&self.state_dir);
    }
}

/// Polls `f` until it returns `Some`, or fails the test after `timeout` with `what` and
/// the agent's log tail.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    agent: &AgentProcess,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            let log = agent.log_text();
            let tail: Vec<&str> = log
                .lines()
                .rev()
                .take(60)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            panic!(
                "timed out after {timeout:?} waiting for {what}\n--- agent log (tail) ---\n{}",
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One line of the stateful counter's output.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterLine {
    pub version: String,
    pub key: u64,
    pub count: u64,
    pub seq: u64,
}

/// Reads the counter's output file.
pub fn counter_lines(path: &Path) -> Vec<CounterLine> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{name}=")).map(str::to_string))
            };
            Some(CounterLine {
                version: field("version")?,
                key: field("key")?.parse().ok()?,
                count: field("count")?.parse().ok()?,
                seq: field("seq")?.parse().ok()?,
            })
        })
        .collect()
}

/// Lines written by a version.
pub fn lines_of(path: &Path, version: &str) -> Vec<CounterLine> {
    counter_lines(path)
        .into_iter()
        .filter(|l| l.version == version)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Reading the status branch and the stateful counter's output
// ---------------------------------------------------------------------------------------

/// Keys the stateful counter spreads its records over (its default `--keys`).
pub const KEYS: u64 = 3;

pub fn field<'a>(v: &'a serde_yaml::Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(serde_yaml::Value::as_str)
}

pub fn savepoints(status: &serde_yaml::Value) -> Vec<serde_yaml::Value> {
    status
        .get("savepoints")
        .and_then(serde_yaml::Value::as_sequence)
        .cloned()
        .unwrap_or_default()
}

/// Waits until the status file `status` says `lifecycle` at `commit`.
pub fn state_at(
    remote: &Remote,
    agent: &AgentProcess,
    status: &str,
    commit: &str,
    lifecycle: &str,
) -> serde_yaml::Value {
    wait_for(
        Duration::from_secs(240),
        &format!("{lifecycle} at {commit}"),
        agent,
        || {
            let s = remote.status(status)?;
            (field(&s, "lifecycleState") == Some(lifecycle)
                && field(&s, "lastReconciledRevision") == Some(commit))
            .then_some(s)
        },
    )
}

/// Waits until the job wrote a few lines of `version` after line `from`.
pub fn wait_lines(agent: &AgentProcess, out: &Path, version: &str, from: usize) {
    wait_for(
        Duration::from_secs(60),
        &format!("output of {version}"),
        agent,
        || {
            (counter_lines(out)
                .iter()
                .skip(from)
                .filter(|l| l.version == version)
                .count()
                >= 2 * KEYS as usize)
                .then_some(())
        },
    );
}

/// Per key: the last count before the first line `version` wrote after line `from`,
/// and that first line.
pub fn first_after(out: &Path, from: usize, version: &str) -> Vec<(u64, u64, CounterLine)> {
    let all = counter_lines(out);
    let start = all
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, l)| l.version == version)
        .map(|(i, _)| i)
        .expect("lines of the new version");
    (0..KEYS)
        .map(|key| {
            // The last count before the new version, not the highest: a stateless upgrade
            // earlier in the history legitimately started the counts again.
            let before = all[..start]
                .iter()
                .filter(|l| l.key == key)
                .map(|l| l.count)
                .last()
                .unwrap_or(0);
            let first = all
                .iter()
                .skip(start)
                .find(|l| l.key == key)
                .cloned()
                .expect("a new line per key");
            (key, before, first)
        })
        .collect()
}

/// State was carried over: counts continue (exactly, for a savepoint).
pub fn assert_continues(out: &Path, from: usize, version: &str, exact: bool, what: &str) {
    for (key, before, first) in first_after(out, from, version) {
        assert!(
            first.count > 1 && first.seq > 0,
            "{what}: key {key} restarted from nothing: {first:?}"
        );
        assert_eq!(
            first.count,
            first.seq / KEYS + 1,
            "{what}: key {key}: count and source position disagree: {first:?}"
        );
        if exact {
            assert_eq!(
                first.count,
                before + 1,
                "{what}: key {key} must continue exactly after {before}: {first:?}"
            );
        } else {
            assert!(
                first.count <= before + 1 && first.count + 100 >= before,
                "{what}: key {key}: restored {} far from {before}",
                first.count
            );
        }
    }
}

/// State was not carried over: everything starts again from zero.
pub fn assert_restarted(out: &Path, from: usize, version: &str, what: &str) {
    for (key, _, first) in first_after(out, from, version) {
        assert_eq!(
            (first.count, first.seq / KEYS),
            (1, 0),
            "{what}: key {key} should start empty: {first:?}"
        );
    }
}
