//! `run`, `status` and `down`: the agent and what it recorded.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};

use super::{cache_dir, GitArgs, RulesArgs, EXIT_ERROR, EXIT_OK};
use crate::apply::executor::{
    Agent, AgentHooks, AgentParts, AgentSettings, GitManifests, GitStatusStore, RunEnd,
    SystemEnvironment,
};
use crate::apply::kubernetes::{KubernetesRuntime, KubernetesSettings, RestAccess};
use crate::apply::local::{LocalRuntime, LocalSettings};
use crate::apply::runtime::Runtime;
use crate::apply::storage::FileSnapshotStorage;
use crate::config;
use crate::flink::lifecycle::drift::{Drift, DriftPolicy};
use crate::flink::lifecycle::record::Record;
use crate::flink::rest::HttpFlink;
use crate::flink::spec::{Kind, ResourceKey};
use crate::git::source::{GitSource, RepoLocation};
use crate::git::status::StatusBranch;
use crate::notify::{Notifier, NotifyConfig};
use crate::serve::{self, ServeState, WebhookSettings};
use crate::telemetry::Telemetry;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// Real Flink processes on this machine.
    Local,
    /// JobManager and TaskManager Deployments on Kubernetes (kubeconfig, else the
    /// in-cluster service account).
    Kubernetes,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The Git repository of manifests: a local path or a URL (file://, https://, ssh://, git://).
    #[arg(long, env = "FLINK_GITOPS_REPO", value_name = "URL|PATH")]
    pub repo: String,
    /// Branch whose tip is deployed.
    #[arg(long, env = "FLINK_GITOPS_BRANCH", default_value = config::DEFAULT_BRANCH)]
    pub branch: String,
    #[command(flatten)]
    pub git: GitArgs,
    #[command(flatten)]
    pub rules: RulesArgs,
    /// Time between two syncs when nothing is in flight.
    #[arg(long, env = "FLINK_GITOPS_INTERVAL", default_value_t = config::DEFAULT_SYNC_INTERVAL.into())]
    pub interval: humantime::Duration,
    /// Where clusters run.
    #[arg(
        long,
        env = "FLINK_GITOPS_RUNTIME",
        value_enum,
        default_value = "local"
    )]
    pub runtime: RuntimeKind,
    /// How the agent reaches Flink's REST API on Kubernetes: `service` (the REST Service's
    /// DNS name, in the cluster), `port-forward` (through the API server, from outside),
    /// `host:<address>` (JobManagers on the host network) or `auto` (service in a pod,
    /// port-forward elsewhere).
    #[arg(
        long,
        env = "FLINK_GITOPS_REST_ACCESS",
        value_name = "MODE",
        default_value = "auto"
    )]
    pub rest_access: String,
    /// Run one sync (waiting for in-flight steps) and exit.
    #[arg(long)]
    pub once: bool,
    /// Folder of the local runtime's clusters (config, logs, checkpoints, savepoints).
    #[arg(long, env = "FLINK_GITOPS_STATE_DIR", value_name = "D")]
    pub state_dir: Option<PathBuf>,
    /// Branch the agent records status on (same remote).
    #[arg(long, env = "FLINK_GITOPS_STATUS_BRANCH", default_value = config::DEFAULT_STATUS_BRANCH)]
    pub status_branch: String,
    /// Leave resources removed from Git running (and report them) instead of stopping them.
    #[arg(long, env = "FLINK_GITOPS_NO_PRUNE")]
    pub no_prune: bool,
    /// The Flink distribution (default: $FLINK_HOME, else the one scripts/setup.sh installs).
    #[arg(long, env = "FLINK_HOME", value_name = "DIR")]
    pub flink_home: Option<PathBuf>,
    /// Root that `local:///path/job.jar` URIs are read from.
    #[arg(long, env = "FLINK_GITOPS_LOCAL_ROOT", value_name = "DIR")]
    pub local_jar_root: Option<PathBuf>,
    /// External actions (deploy, stop, submit, rescale, trigger) carried out at the same
    /// time; resources waiting for Flink take none.
    #[arg(long, env = "FLINK_GITOPS_MAX_CONCURRENT", default_value_t = config::DEFAULT_MAX_CONCURRENT_ACTIONS)]
    pub max_concurrent: usize,
    /// Deadline of one Flink REST call.
    #[arg(long, env = "FLINK_GITOPS_REST_TIMEOUT", default_value_t = config::DEFAULT_REST_TIMEOUT.into())]
    pub rest_timeout: humantime::Duration,
    /// Time between observations of Flink while a step is in flight.
    #[arg(long, env = "FLINK_GITOPS_FAST_POLL", default_value_t = config::DEFAULT_FAST_POLL.into())]
    pub fast_poll: humantime::Duration,
    /// How long a new deployment's job must run with all of its tasks (and, with
    /// checkpointing on, complete a checkpoint) before it is STABLE; an upgrade that fails
    /// before is rolled back when rollback is on. A manifest overrides it with
    /// `flink-gitops.deployment.stability.window`.
    #[arg(long, env = "FLINK_GITOPS_STABILITY_WINDOW", default_value_t = config::DEFAULT_STABILITY_WINDOW.into())]
    pub stability_window: humantime::Duration,
    /// What to do when a resource's live state drifts from Git (a job cancelled or rescaled
    /// by hand, a changed cluster): report (record it on the status branch), heal (put it
    /// back) or ignore. The annotation flink-gitops.io/drift on a manifest wins.
    #[arg(long, env = config::ENV_DRIFT_POLICY, value_name = "report|heal|ignore", default_value = "report", value_parser = parse_drift_policy)]
    pub drift: DriftPolicy,
    #[command(flatten)]
    pub ops: Box<OpsArgs>,
    #[command(flatten)]
    pub leader: LeaderArgs,
}

/// Leader election on a `coordination.k8s.io/v1` Lease ([`crate::leader`]).
#[derive(Args, Debug)]
pub struct LeaderArgs {
    /// Take part in leader election: of the replicas sharing the Lease only the holder
    /// reconciles; the others fetch and wait. A leader that loses the Lease exits with
    /// status 2 (its pod restarts as a follower).
    #[arg(long, env = config::ENV_LEADER_ELECT, conflicts_with = "once")]
    pub leader_elect: bool,
    /// Namespace of the Lease (default: $POD_NAMESPACE, else the service account's
    /// namespace, else `default`).
    #[arg(long, env = config::ENV_LEADER_ELECTION_NAMESPACE, value_name = "NS")]
    pub leader_election_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, env = config::ENV_LEADER_ELECTION_ID, value_name = "NAME", default_value = config::DEFAULT_LEADER_ELECTION_ID)]
    pub leader_election_id: String,
    /// How long followers wait for a Lease whose holder stopped renewing.
    #[arg(long, env = config::ENV_LEADER_ELECTION_LEASE_DURATION, default_value_t = config::DEFAULT_LEASE_DURATION.into())]
    pub leader_election_lease_duration: humantime::Duration,
    /// How long a leader keeps acting after its last successful renewal (shorter than the
    /// lease duration).
    #[arg(long, env = config::ENV_LEADER_ELECTION_RENEW_DEADLINE, default_value_t = config::DEFAULT_LEASE_RENEW_DEADLINE.into())]
    pub leader_election_renew_deadline: humantime::Duration,
    /// Time between two attempts to take or renew the Lease.
    #[arg(long, env = config::ENV_LEADER_ELECTION_RETRY_PERIOD, default_value_t = config::DEFAULT_LEASE_RETRY_PERIOD.into())]
    pub leader_election_retry_period: humantime::Duration,
}

impl LeaderArgs {
    /// The Lease settings, or `None` without `--leader-elect`. The identity is
    /// [`crate::leader::default_identity`].
    pub fn settings(&self) -> Option<crate::leader::LeaseSettings> {
        self.leader_elect.then(|| crate::leader::LeaseSettings {
            namespace: self
                .leader_election_namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(crate::leader::default_namespace),
            name: self.leader_election_id.clone(),
            identity: crate::leader::default_identity(),
            lease_duration: self.leader_election_lease_duration.into(),
            renew_deadline: self.leader_election_renew_deadline.into(),
            retry_period: self.leader_election_retry_period.into(),
        })
    }
}

/// The HTTP server (metrics, health, webhooks) and notifications.
#[derive(Args, Debug)]
pub struct OpsArgs {
    /// Serve /metrics, /healthz, /readyz and /webhook on this address (e.g.
    /// 127.0.0.1:9464). Off unless given.
    #[arg(long, env = config::ENV_LISTEN, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Shared secret of Git webhooks (GitHub's, GitLab's token, or the generic signature).
    /// Prefer --webhook-secret-file or the environment variable: a flag shows in `ps`.
    /// Without a secret, /webhook answers 404.
    #[arg(long, env = config::ENV_WEBHOOK_SECRET, hide_env_values = true, value_name = "SECRET", conflicts_with = "webhook_secret_file")]
    pub webhook_secret: Option<String>,
    /// File holding the webhook secret (a trailing newline is ignored).
    #[arg(long, env = config::ENV_WEBHOOK_SECRET_FILE, value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Largest webhook body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "FLINK_GITOPS_WEBHOOK_MAX_BODY", default_value_t = config::DEFAULT_WEBHOOK_MAX_BODY_BYTES)]
    pub webhook_max_body: usize,
    /// Notification sinks and filters, a YAML file (see the README).
    #[arg(long, env = config::ENV_NOTIFICATIONS, value_name = "FILE")]
    pub notifications: Option<PathBuf>,
}

impl OpsArgs {
    /// The webhook secret from the flag, the variable or the file.
    fn webhook_secret(&self) -> Result<Option<Vec<u8>>, WebhookSecretError> {
        let secret = match (&self.webhook_secret, &self.webhook_secret_file) {
            (Some(s), _) => s.clone(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|source| WebhookSecretError::Read {
                    path: f.clone(),
                    source,
                })?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
            (None, None) => return Ok(None),
        };
        if secret.is_empty() {
            return Err(WebhookSecretError::Empty);
        }
        Ok(Some(secret.into_bytes()))
    }
}

/// Why the webhook secret could not be had.
#[derive(Debug, thiserror::Error)]
pub enum WebhookSecretError {
    #[error("cannot read the webhook secret {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the webhook secret is empty")]
    Empty,
}

/// A drift policy that is none of `report`, `heal`, `ignore`.
#[derive(Debug, thiserror::Error)]
#[error("found {0:?}; allowed: report, heal, ignore")]
pub struct InvalidDriftPolicy(String);

/// `report`, `heal` or `ignore`.
pub(super) fn parse_drift_policy(s: &str) -> Result<DriftPolicy, InvalidDriftPolicy> {
    DriftPolicy::parse(s).ok_or_else(|| InvalidDriftPolicy(s.to_string()))
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The Git repository: a local path or a URL.
    #[arg(
        long,
        env = "FLINK_GITOPS_REPO",
        value_name = "URL|PATH",
        default_value = "."
    )]
    pub repo: String,
    /// Branch the agent records status on.
    #[arg(long, env = "FLINK_GITOPS_STATUS_BRANCH", default_value = config::DEFAULT_STATUS_BRANCH)]
    pub status_branch: String,
    #[command(flatten)]
    pub git: GitArgs,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: super::ValidateFormat,
}

#[derive(Args, Debug)]
pub struct DownArgs {
    /// Folder of the local runtime's clusters.
    #[arg(long, env = "FLINK_GITOPS_STATE_DIR", value_name = "D")]
    pub state_dir: Option<PathBuf>,
    #[arg(long, env = config::ENV_CACHE_DIR, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

pub(super) fn state_dir(flag: Option<&PathBuf>, cache: &std::path::Path) -> PathBuf {
    flag.cloned().unwrap_or_else(|| cache.join("local"))
}

/// `$FLINK_HOME`, else the distribution scripts/setup.sh installs under the cache.
fn find_flink_home(flag: Option<&PathBuf>, cache: &std::path::Path) -> Option<PathBuf> {
    if let Some(p) = flag {
        return Some(p.clone());
    }
    let lib = cache.join("flink-2.3.0").join("lib");
    let entries = std::fs::read_dir(lib).ok()?;
    entries
        .flatten()
        .map(|e| e.path().join("site-packages").join("pyflink"))
        .find(|p| p.join("bin").join("jobmanager.sh").exists())
}

pub fn cmd_run(args: RunArgs) -> u8 {
    let cache = cache_dir(args.git.cache_dir.as_ref());
    let rest_access = match args.runtime {
        RuntimeKind::Local => None,
        RuntimeKind::Kubernetes => {
            let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
            match RestAccess::parse(&args.rest_access, in_cluster) {
                Ok(a) => Some(a),
                Err(e) => {
                    eprintln!("error: --rest-access: {e}");
                    return EXIT_ERROR;
                }
            }
        }
    };
    let local = match rest_access {
        Some(_) => None,
        None => {
            let Some(flink_home) = find_flink_home(args.flink_home.as_ref(), &cache) else {
                eprintln!(
                    "error: no Flink distribution found: set FLINK_HOME or run scripts/setup.sh"
                );
                return EXIT_ERROR;
            };
            let settings = LocalSettings {
                flink_home,
                state_dir: state_dir(args.state_dir.as_ref(), &cache),
                jar_root: args
                    .local_jar_root
                    .clone()
                    .unwrap_or_else(|| cache.join("local-root")),
                cache_dir: cache.clone(),
            };
            match LocalRuntime::new(settings) {
                Ok(r) => Some(Arc::new(r)),
                Err(e) => {
                    eprintln!("error: {e}");
                    return EXIT_ERROR;
                }
            }
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return EXIT_ERROR;
        }
    };
    rt.block_on(async move {
        match (local, rest_access) {
            (Some(runtime), _) => run_agent(args, cache, runtime).await,
            (None, Some(rest_access)) => {
                let settings = KubernetesSettings {
                    rest_access,
                    jar_root: args
                        .local_jar_root
                        .clone()
                        .unwrap_or_else(|| cache.join("local-root")),
                };
                match KubernetesRuntime::connect(settings).await {
                    Ok(r) => run_agent(args, cache, Arc::new(r)).await,
                    Err(e) => {
                        eprintln!("error: {e}");
                        EXIT_ERROR
                    }
                }
            }
            (None, None) => EXIT_ERROR,
        }
    })
}

/// The agent over `runtime` until SIGINT or SIGTERM (or one sync with `--once`).
async fn run_agent<R: Runtime>(args: RunArgs, cache: PathBuf, runtime: Arc<R>) -> u8 {
    let source = GitSource::new(
        RepoLocation::parse(&args.repo),
        &cache,
        args.git.git_timeout.into(),
    )
    .with_render_tools(args.git.render_tools());
    let agent_settings = AgentSettings {
        interval: args.interval.into(),
        fast_poll: args.fast_poll.into(),
        prune: !args.no_prune,
        max_concurrent_actions: args.max_concurrent,
        git_timeout: args.git.git_timeout.into(),
        stability_window: args.stability_window.into(),
        drift: args.drift,
        ..AgentSettings::default()
    };
    // Validation takes the runtime's per-resource defaults (checkpoint and savepoint
    // folders) into account.
    let placeholder = ResourceKey::new(config::DEFAULT_NAMESPACE, Kind::FlinkDeployment, "x");
    let manifests = GitManifests {
        source: source.clone(),
        branch: args.branch.clone(),
        path: args.git.path.clone(),
        default_configuration: runtime.default_configuration(&placeholder),
        operator_version: args.rules.operator_version,
    };
    let status = GitStatusStore::new(StatusBranch::new(source, &args.status_branch));
    let webhook_secret = match args.ops.webhook_secret() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ERROR;
        }
    };
    if webhook_secret.is_some() && args.ops.listen.is_none() {
        eprintln!(
            "error: a webhook secret is given but no --listen address to receive webhooks on"
        );
        return EXIT_ERROR;
    }
    let notify_config = match &args.ops.notifications {
        Some(path) => match NotifyConfig::load(path, |var| std::env::var(var).ok()) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("error: notifications: {e}");
                return EXIT_ERROR;
            }
        },
        None => None,
    };
    let parts = AgentParts {
        runtime,
        flink: HttpFlink {
            timeout: args.rest_timeout.into(),
            ..HttpFlink::default()
        },
        storage: Arc::new(FileSnapshotStorage),
        manifests: Arc::new(manifests),
        status: Arc::new(status),
        env: Arc::new(SystemEnvironment::default()),
    };
    let telemetry = Arc::new(Telemetry::new());
    let notifier = match notify_config.map(|c| Notifier::start(c, telemetry.clone())) {
        None => Notifier::disabled(),
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("error: notifications: {e}");
            return EXIT_ERROR;
        }
    };
    let hooks = AgentHooks {
        telemetry: telemetry.clone(),
        notifier: notifier.clone(),
        ..AgentHooks::default()
    };
    let trigger = hooks.fetch_trigger.clone();
    // Bound before the status branch is read, so /healthz answers (and /readyz says
    // not yet) while a large status branch loads.
    let (tx, rx) = tokio::sync::watch::channel(false);
    if let Some(addr) = args.ops.listen {
        let listener = match serve::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_ERROR;
            }
        };
        let state = ServeState {
            telemetry,
            trigger,
            webhook: webhook_secret.map(|secret| {
                Arc::new(WebhookSettings {
                    secret,
                    branch: args.branch.clone(),
                    max_body: args.ops.webhook_max_body,
                })
            }),
        };
        tokio::spawn(serve::serve(listener, state, rx.clone()));
    }
    // Leader election: the elector runs in its own task; the agent reconciles only while
    // it leads (AgentHooks::leadership).
    let elector = match args.leader.settings() {
        None => None,
        Some(settings) => match crate::leader::connect(settings).await {
            Ok(e) => Some(crate::leader::ElectorHandle::spawn(e)),
            Err(e) => {
                eprintln!("error: leader election: {e}");
                return EXIT_ERROR;
            }
        },
    };
    let hooks = AgentHooks {
        leadership: elector.as_ref().map(|e| e.state.clone()),
        identity: elector.as_ref().map(|e| e.identity.clone()),
        ..hooks
    };
    let agent = match Agent::start_with(parts, agent_settings, hooks).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(elector) = elector {
                elector.stop().await;
            }
            return EXIT_ERROR;
        }
    };
    if args.once {
        let result = agent.run_once().await;
        notifier.flush(config::DEFAULT_NOTIFY_FLUSH).await;
        if let Err(e) = result {
            eprintln!("error: {e}");
            return EXIT_ERROR;
        }
        for (key, rec) in agent.records() {
            println!("{key}: {}", rec.derive_lifecycle());
        }
        return EXIT_OK;
    }
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
        tracing::info!(
            "shutting down; Flink clusters keep running and are adopted on the next start"
        );
        let _ = tx.send(true);
    });
    let end = agent.run(rx).await;
    // Only now that the agent has stopped acting may the Lease be released.
    if let Some(elector) = elector {
        elector.stop().await;
    }
    notifier.flush(config::DEFAULT_NOTIFY_FLUSH).await;
    match end {
        RunEnd::Shutdown => EXIT_OK,
        RunEnd::LostLeadership => {
            eprintln!(
                "error: lost leadership; exiting so that this replica restarts as a follower"
            );
            EXIT_ERROR
        }
    }
}

/// One resource in `status -o json` (a stable shape).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusEntry<'a> {
    kind: Kind,
    namespace: &'a str,
    name: &'a str,
    lifecycle_state: crate::flink::lifecycle::record::LifecycleState,
    job_state: Option<crate::flink::rest::JobStatus>,
    job_id: Option<&'a str>,
    /// The revision whose spec was applied last (`lastReconciledSpec`).
    revision: Option<&'a str>,
    /// The revision of the last stable spec (`lastStableSpec`).
    stable_revision: Option<&'a str>,
    newest_savepoint: Option<&'a crate::flink::lifecycle::record::Savepoint>,
    since: &'a str,
    last_error: Option<&'a crate::flink::lifecycle::record::LastError>,
    /// Set while Flink or the runtime does not answer.
    unreachable: Option<&'a crate::flink::lifecycle::record::LastError>,
    deleted: bool,
    /// While rolling back or rolled back: why (reason, message, time).
    rollback_cause: Option<&'a crate::flink::lifecycle::record::LastError>,
    /// While rolling back or rolled back: what Git wants, what runs and why, in words.
    rollback: Option<String>,
    /// Set while the live state drifts from Git.
    #[serde(skip_serializing_if = "Option::is_none")]
    drift: Option<&'a Drift>,
}

impl<'a> From<&'a Record> for StatusEntry<'a> {
    fn from(r: &'a Record) -> Self {
        StatusEntry {
            kind: r.kind,
            namespace: &r.namespace,
            name: &r.name,
            lifecycle_state: r.derive_lifecycle(),
            job_state: r.job_state,
            job_id: r.job_id.as_deref(),
            revision: r.last_reconciled_revision.as_deref(),
            stable_revision: r.last_stable_revision.as_deref(),
            newest_savepoint: r.newest_savepoint(),
            since: &r.since,
            last_error: r.last_error.as_ref(),
            unreachable: r.unreachable.as_ref(),
            deleted: r.deleted,
            rollback_cause: r.rollback_cause.as_ref(),
            rollback: r.rollback_summary(),
            drift: r.drift.as_ref(),
        }
    }
}

fn render_status(records: &[Record]) -> String {
    let mut out = String::new();
    let header = [
        "RESOURCE",
        "LIFECYCLE",
        "JOB",
        "REVISION",
        "NEWEST SAVEPOINT",
        "SINCE",
    ];
    let rows: Vec<[String; 6]> = records
        .iter()
        .map(|r| {
            [
                r.key().to_string(),
                r.derive_lifecycle().to_string(),
                r.job_state
                    .map(|j| format!("{j:?}").to_uppercase())
                    .unwrap_or_else(|| "-".into()),
                r.last_reconciled_revision
                    .as_deref()
                    .map(|s| s.get(..7).unwrap_or(s).to_string())
                    .unwrap_or_else(|| "-".into()),
                r.newest_savepoint()
                    .map(|s| s.location.clone())
                    .unwrap_or_else(|| "-".into()),
                if r.since.is_empty() {
                    "-".into()
                } else {
                    r.since.clone()
                },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    out.push_str(&line(header.to_vec()));
    for (row, rec) in rows.iter().zip(records) {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        if let Some(u) = &rec.unreachable {
            out.push_str(&format!(
                "    unreachable since {}: {}\n",
                u.time,
                u.message.lines().next().unwrap_or("")
            ));
        }
        if let Some(summary) = rec.rollback_summary() {
            out.push_str(&format!("    {summary}\n"));
        }
        if let Some(e) = &rec.last_error {
            out.push_str(&format!(
                "    last error ({}): {}\n",
                e.reason,
                e.message.lines().next().unwrap_or("")
            ));
        }
        if let Some(d) = &rec.drift {
            let rev = d.revision.get(..7).unwrap_or(&d.revision);
            out.push_str(&format!(
                "    drift ({}) since {} at {rev}:\n",
                d.policy, d.since
            ));
            for item in &d.items {
                out.push_str(&format!("      {item}\n"));
            }
        }
    }
    out
}

pub fn cmd_status(args: StatusArgs) -> u8 {
    let cache = cache_dir(args.git.cache_dir.as_ref());
    let source = GitSource::new(
        RepoLocation::parse(&args.repo),
        &cache,
        args.git.git_timeout.into(),
    );
    let branch = StatusBranch::new(source, &args.status_branch);
    let records = match branch.load() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ERROR;
        }
    };
    let records: Vec<Record> = records.into_values().collect();
    match args.output {
        super::ValidateFormat::Json => {
            let value: Vec<StatusEntry> = records.iter().map(StatusEntry::from).collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        }
        super::ValidateFormat::Text => {
            if records.is_empty() {
                println!("no status yet on branch {}", args.status_branch);
            } else {
                print!("{}", render_status(&records));
            }
            // With leader election: which replica wrote the newest status (the leader then).
            let tip = branch.tip_message().ok().flatten().unwrap_or_default();
            if let Some(agent) = crate::leader::agent_of_commit(&tip) {
                println!("last written by agent {agent}");
            }
        }
    }
    EXIT_OK
}

pub fn cmd_down(args: DownArgs) -> u8 {
    let cache = cache_dir(args.cache_dir.as_ref());
    let dir = state_dir(args.state_dir.as_ref(), &cache);
    LocalRuntime::stop_all(&dir);
    println!("stopped every local Flink cluster under {}", dir.display());
    EXIT_OK
}
