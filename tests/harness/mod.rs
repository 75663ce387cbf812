//! Shared test harness: temporary Git repositories built with the real `git` command, and
//! a wrapper that runs the `flink-gitops` binary and keeps its output.

#![allow(dead_code)]

pub mod agent_fake;
pub mod fake_flink;
pub mod fake_http;
pub mod flink;
pub mod http_sink;
pub mod kube;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of the built `flink-gitops` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_flink-gitops"))
}

/// The repository root (for fixtures and examples).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The operator's example manifests, copied into the repository (release 1.15.0).
pub fn conformance_dir() -> PathBuf {
    root().join("tests/fixtures/conformance/flink-operator-examples")
}

/// The shared conformance manifests beside the repository (`../shared/conformance`), when
/// they are there: a fresh clone has no such folder, and tests must pass without it.
pub fn shared_conformance_dir() -> Option<PathBuf> {
    let dir = root().join("../shared/conformance/flink-operator-examples");
    dir.is_dir().then_some(dir)
}

/// Result of one CLI run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Parses stdout as JSON, failing the test with the output when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs `flink-gitops` with arguments, in `dir`, with a private cache folder.
pub fn flink_gitops(dir: &Path, args: &[&str]) -> Run {
    flink_gitops_env(dir, args, &[])
}

/// [`flink_gitops`] with environment variables set. Variables of the caller's environment
/// that would change what a test sees are removed first.
pub fn flink_gitops_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let cache = dir.join(".cache-flink-gitops");
    let out = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("FLINK_GITOPS_CACHE", &cache)
        .env("NO_COLOR", "1")
        .env_remove("FLINK_GITOPS_REPO")
        .env_remove(flink_gitops::config::ENV_OPERATOR_VERSION)
        .envs(env.iter().copied())
        .output()
        .expect("run flink-gitops");
    Run::from(out)
}

/// Runs `git` in `dir`, failing the test on error; returns stdout trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A temporary Git work tree with helpers to write files and commit.
pub struct TempRepo {
    pub dir: tempfile::TempDir,
}

impl TempRepo {
    pub fn new() -> TempRepo {
        let dir = tempfile::tempdir().expect("tempdir");
        git(dir.path(), &["init", "-q", "-b", "main"]);
        TempRepo { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating folders).
    pub fn write(&self, rel: &str, text: &str) -> &Self {
        let p = self.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, text).expect("write");
        self
    }

    pub fn remove(&self, rel: &str) -> &Self {
        std::fs::remove_file(self.path().join(rel)).expect("remove");
        self
    }

    /// Stages everything and commits; returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        git(self.path(), &["add", "-A"]);
        git(
            self.path(),
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        git(self.path(), &["rev-parse", "HEAD"])
    }

    pub fn git(&self, args: &[&str]) -> String {
        git(self.path(), args)
    }
}

/// Copies a folder tree (for putting examples or fixtures into a repository).
pub fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// `git daemon` serving a folder on 127.0.0.1; killed when dropped, even if the test fails.
pub struct GitDaemon {
    child: Child,
    pub port: u16,
}

impl GitDaemon {
    /// Serves `base` read-only.
    pub fn start(base: &Path) -> GitDaemon {
        GitDaemon::spawn(base, false)
    }

    /// Serves `base` and accepts pushes (the agent pushes its status branch).
    pub fn start_with_push(base: &Path) -> GitDaemon {
        GitDaemon::spawn(base, true)
    }

    fn spawn(base: &Path, push: bool) -> GitDaemon {
        for _ in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let child = Command::new("git")
                .arg("daemon")
                .arg("--export-all")
                .arg(format!("--base-path={}", base.display()))
                .arg(format!("--port={port}"))
                .arg("--listen=127.0.0.1")
                .arg("--reuseaddr")
                .args(push.then_some("--enable=receive-pack"))
                // `git daemon` runs `git-daemon` as a child: give both a process group of
                // their own, so that dropping the guard ends the server, not just `git`.
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn git daemon");
            let mut daemon = GitDaemon { child, port };
            if daemon.wait_until_ready() {
                return daemon;
            }
            // The port was taken in between, or the daemon died: try another (drop kills it).
        }
        panic!("git daemon did not start");
    }

    fn wait_until_ready(&mut self) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return false;
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill has no memory effects; the group is the one spawned above.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
