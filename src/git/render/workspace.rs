//! The private temporary folder a tool renders in, and running the tool there with a
//! deadline, a bounded output and nothing of the agent's environment.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::RenderError;
use crate::config;

/// A private temporary folder: the input files (`tree/`), and a home, a temp folder and an
/// empty PATH for the tool. Removed on drop.
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    pub fn create() -> std::io::Result<Workspace> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        let mut last = None;
        for _ in 0..100 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let root = base.join(format!("flink-gitops-render-{}-{n}", std::process::id()));
            match std::fs::create_dir(&root) {
                Ok(()) => {
                    let ws = Workspace { root };
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&ws.root, std::fs::Permissions::from_mode(0o700))?;
                    for sub in ["tree", "home", "tmp", "bin", "helm"] {
                        std::fs::create_dir(ws.root.join(sub))?;
                    }
                    return Ok(ws);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no temporary folder")))
    }

    pub fn tree(&self) -> PathBuf {
        self.root.join("tree")
    }

    /// Writes the input files; symbolic links and submodules were left out
    /// of `paths` by the caller, and a path that could leave the folder is skipped.
    pub fn write_inputs<'p>(
        &self,
        paths: impl Iterator<Item = &'p String>,
        read: &dyn Fn(&str) -> std::io::Result<Vec<u8>>,
    ) -> Result<(), std::io::Error> {
        let mut total: u64 = 0;
        for path in paths {
            if path
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == ".." || c.contains('\0'))
            {
                tracing::warn!(path = %path, "skipped a file whose path could leave the render folder");
                continue;
            }
            let bytes = read(path)?;
            total += bytes.len() as u64;
            if total > config::MAX_RENDER_INPUT_BYTES {
                return Err(std::io::Error::other(
                    RenderError::InputTooLarge {
                        limit: config::MAX_RENDER_INPUT_BYTES,
                    }
                    .to_string(),
                ));
            }
            let target = self.tree().join(path);
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(target, bytes)?;
        }
        Ok(())
    }

    /// Files below `dir` of the tree, relative to the tree.
    pub fn files_in(&self, dir: &str) -> Vec<String> {
        let tree = self.tree();
        let mut out = Vec::new();
        let mut stack = vec![tree.join(dir)];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                match e.file_type() {
                    Ok(t) if t.is_dir() => stack.push(p),
                    Ok(t) if t.is_file() => {
                        if let Ok(rel) = p.strip_prefix(&tree) {
                            out.push(rel.to_string_lossy().into_owned());
                        }
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// The environment of a tool: nothing of the agent's, nothing to fetch with.
    fn env(&self) -> Vec<(&'static str, OsString)> {
        // A proxy on the discard port, which nothing listens on: any HTTP(S) fetch fails
        // at once instead of reaching the network.
        let proxy = OsString::from("http://127.0.0.1:9");
        let helm = self.root.join("helm");
        vec![
            ("PATH", self.root.join("bin").into()),
            ("HOME", self.root.join("home").into()),
            ("TMPDIR", self.root.join("tmp").into()),
            ("KUBECONFIG", self.root.join("home/no-kubeconfig").into()),
            ("HTTP_PROXY", proxy.clone()),
            ("HTTPS_PROXY", proxy.clone()),
            ("http_proxy", proxy.clone()),
            ("https_proxy", proxy.clone()),
            ("ALL_PROXY", proxy.clone()),
            ("NO_PROXY", OsString::new()),
            ("no_proxy", OsString::new()),
            ("HELM_CACHE_HOME", helm.join("cache").into()),
            ("HELM_CONFIG_HOME", helm.join("config").into()),
            ("HELM_DATA_HOME", helm.join("data").into()),
            ("HELM_PLUGINS", helm.join("plugins").into()),
            (
                "KUSTOMIZE_PLUGIN_HOME",
                self.root.join("home/no-plugins").into(),
            ),
        ]
    }

    /// Runs a tool in the tree with a deadline; returns what it printed. Its messages
    /// name files as the repository does (the temporary folder is taken out).
    pub fn run(
        &self,
        program: &Path,
        args: &[OsString],
        command: &str,
        timeout: Duration,
    ) -> Result<String, RenderError> {
        let tree = self.tree();
        let mut child = Command::new(program)
            .args(args)
            .current_dir(&tree)
            .env_clear()
            .envs(self.env())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout stops whatever it started too.
            .process_group(0)
            .spawn()
            .map_err(|source| RenderError::Spawn {
                program: program.display().to_string(),
                source,
            })?;
        let limit = config::MAX_RENDERED_BYTES;
        let stdout = child.stdout.take().map(|out| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                // One byte more than allowed tells that there was more; then the pipe
                // closes and the tool stops.
                let _ = out.take(limit as u64 + 1).read_to_end(&mut buf);
                buf
            })
        });
        let stderr = child.stderr.take().map(|err| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut err = err;
                let _ = (&mut err).take(64 << 10).read_to_end(&mut buf);
                let _ = std::io::copy(&mut err, &mut std::io::sink());
                buf
            })
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() >= deadline => break Err(()),
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break Err(()),
            }
        };
        let status = match status {
            Ok(s) => s,
            Err(()) => {
                if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                    // SAFETY: kill has no memory effects; the group is the child's own.
                    unsafe { libc::kill(-pid, libc::SIGKILL) };
                }
                let _ = child.kill();
                let _ = child.wait();
                return Err(RenderError::Timeout {
                    command: command.to_string(),
                    timeout,
                });
            }
        };
        let out = stdout.and_then(|h| h.join().ok()).unwrap_or_default();
        let err = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
        if out.len() > limit {
            return Err(RenderError::TooLarge {
                command: command.to_string(),
                limit,
            });
        }
        if !status.success() {
            let text = String::from_utf8_lossy(&err)
                .replace(&format!("{}/", tree.display()), "")
                .replace(&tree.display().to_string(), ".");
            return Err(RenderError::Failed {
                command: command.to_string(),
                status: status.to_string(),
                stderr: tidy(&text),
            });
        }
        String::from_utf8(out).map_err(|_| RenderError::NotUtf8 {
            command: command.to_string(),
        })
    }
}

/// A tool's error output on one line, without kubectl's log prefix
/// (`E1201 20:18:16.651752 3069 run.go:72] "command failed" err=<...>`).
fn tidy(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(|l| {
            let klog = l.len() > 5
                && l.starts_with(['E', 'W', 'I', 'F'])
                && l[1..5].bytes().all(|b| b.is_ascii_digit());
            match l.split_once("] ") {
                Some((_, rest)) if klog => rest,
                _ => l,
            }
            .trim()
        })
        .filter(|l| !l.is_empty())
        .collect();
    let joined = lines.join(" ");
    let inner = joined
        .strip_prefix("\"command failed\" err=")
        .unwrap_or(&joined)
        .trim();
    let inner = inner
        .strip_prefix('<')
        .and_then(|i| i.strip_suffix('>'))
        .or_else(|| inner.strip_prefix('"').and_then(|i| i.strip_suffix('"')))
        .map_or(inner.to_string(), |i| i.trim().replace("\\\"", "\""));
    inner
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.root) {
            tracing::warn!(folder = %self.root.display(), error = %e, "cannot remove a render folder");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_log_prefixes_are_taken_out_of_errors() {
        let multi = "E1201 20:18:16.651752    3069 run.go:72] \"command failed\" err=<\n\ttrouble configuring builtin PatchTransformer with config: `\n\tpath: missing.yaml\n\t`: lstat overlays/broken/missing.yaml: no such file or directory\n >\n";
        assert_eq!(
            tidy(multi),
            "trouble configuring builtin PatchTransformer with config: ` path: missing.yaml `: lstat overlays/broken/missing.yaml: no such file or directory"
        );
        let quoted = "E1201 20:18:17.338850    3118 run.go:72] \"command failed\" err=\"accumulating resources: Get \\\"https://example.com/x.yaml\\\": proxyconnect tcp\"\n";
        assert_eq!(
            tidy(quoted),
            "accumulating resources: Get \"https://example.com/x.yaml\": proxyconnect tcp"
        );
        assert_eq!(
            tidy("Error: INSTALLATION FAILED: x\n"),
            "Error: INSTALLATION FAILED: x"
        );
    }
}
