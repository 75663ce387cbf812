//! `diff`: the live state of every resource against Git (see
//! [`crate::diff::drift_report`] for the output and the exit codes).

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};

use super::agent::{parse_drift_policy, state_dir, RuntimeKind};
use super::{cache_dir, open_repo, GitArgs, RulesArgs, EXIT_ERROR};
use crate::apply::drift_report;
use crate::apply::kubernetes::runtime::KubeSetupError;
use crate::apply::kubernetes::{KubernetesRuntime, KubernetesSettings, RestAccess};
use crate::apply::local::LocalRuntime;
use crate::apply::runtime::Runtime;
use crate::apply::storage::FileSnapshotStorage;
use crate::config;
use crate::flink::lifecycle::drift::DriftPolicy;
use crate::flink::rest::HttpFlink;
use crate::flink::spec::{Kind, ResourceKey};
use crate::git::status::StatusBranch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Text,
    Json,
    Markdown,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The Git repository of manifests: a local path or a URL.
    #[arg(long, env = "FLINK_GITOPS_REPO", value_name = "R")]
    pub repo: String,
    /// The revision to compare with: branch, tag or commit.
    #[arg(long, value_name = "REV", default_value = "HEAD")]
    pub revision: String,
    #[command(flatten)]
    pub git: GitArgs,
    #[command(flatten)]
    pub rules: RulesArgs,
    /// Output format: text for a terminal, json for tools, markdown for a PR, an issue or a chat.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: DiffFormat,
    /// The agent's status branch (job ids, what it applied).
    #[arg(long, env = "FLINK_GITOPS_STATUS_BRANCH", default_value = config::DEFAULT_STATUS_BRANCH)]
    pub status_branch: String,
    /// Folder of the local runtime's clusters (as given to `run`).
    #[arg(long, env = "FLINK_GITOPS_STATE_DIR", value_name = "D")]
    pub state_dir: Option<PathBuf>,
    /// Deadline of one Flink REST call.
    #[arg(long, env = "FLINK_GITOPS_REST_TIMEOUT", default_value_t = config::DEFAULT_REST_TIMEOUT.into())]
    pub rest_timeout: humantime::Duration,
    /// The drift policy of a manifest that names none (as given to `run`): resources under
    /// `ignore` are listed as ignored.
    #[arg(long, env = config::ENV_DRIFT_POLICY, value_name = "report|heal|ignore", default_value = "report", value_parser = parse_drift_policy)]
    pub drift: DriftPolicy,
    /// Where the clusters run (as given to `run`).
    #[arg(
        long,
        env = "FLINK_GITOPS_RUNTIME",
        value_enum,
        default_value = "local"
    )]
    pub runtime: RuntimeKind,
    /// How to reach Flink's REST API on Kubernetes (as for `run`; outside the cluster
    /// `auto` is a port-forward through the API server).
    #[arg(
        long,
        env = "FLINK_GITOPS_REST_ACCESS",
        value_name = "MODE",
        default_value = "auto"
    )]
    pub rest_access: String,
}

pub fn cmd_diff(args: DiffArgs) -> u8 {
    let cache = cache_dir(args.git.cache_dir.as_ref());
    let loaded = open_repo(&args.repo, &args.git).and_then(|(source, repo)| {
        let revision = source.resolve(&repo, &args.revision)?;
        let (mut set, settings) = source.load(&repo, &revision, args.git.path.as_deref())?;
        Ok((
            source,
            revision,
            set_validated(&mut set, &settings, &args),
            set,
        ))
    });
    let (source, revision, (), set) = match loaded {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ERROR;
        }
    };
    let records = match StatusBranch::new(source, &args.status_branch).load() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: status branch {}: {e}", args.status_branch);
            return EXIT_ERROR;
        }
    };
    let flink = HttpFlink {
        timeout: args.rest_timeout.into(),
        ..HttpFlink::default()
    };
    // Multi-threaded: a port-forward's connections are served by tasks of their own.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return EXIT_ERROR;
        }
    };
    let revision = revision.to_string();
    let report = match args.runtime {
        RuntimeKind::Local => {
            let runtime =
                match LocalRuntime::for_observation(state_dir(args.state_dir.as_ref(), &cache)) {
                    Ok(r) => Arc::new(r),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return EXIT_ERROR;
                    }
                };
            let clusters = runtime.cluster_keys();
            rt.block_on(drift_report::report(
                runtime.as_ref(),
                &flink,
                &FileSnapshotStorage,
                revision,
                &set,
                &records,
                &clusters,
                args.drift,
            ))
        }
        RuntimeKind::Kubernetes => {
            let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
            let rest_access = match RestAccess::parse(&args.rest_access, in_cluster) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("error: --rest-access: {e}");
                    return EXIT_ERROR;
                }
            };
            let settings = KubernetesSettings {
                rest_access,
                jar_root: PathBuf::new(),
            };
            let result = rt.block_on(async {
                let runtime = KubernetesRuntime::connect(settings).await?;
                // Clusters in the namespaces this repository uses: other agents (other
                // repositories) may manage clusters elsewhere on the same Kubernetes.
                let namespaces: std::collections::BTreeSet<&str> = set
                    .manifests
                    .iter()
                    .map(|m| m.key.namespace.as_str())
                    .chain(records.keys().map(|k| k.namespace.as_str()))
                    .collect();
                let clusters: Vec<ResourceKey> = runtime
                    .cluster_keys()
                    .await
                    .into_iter()
                    .filter(|k| namespaces.contains(k.namespace.as_str()))
                    .collect();
                Ok::<_, KubeSetupError>(
                    drift_report::report(
                        &runtime,
                        &flink,
                        &FileSnapshotStorage,
                        revision,
                        &set,
                        &records,
                        &clusters,
                        args.drift,
                    )
                    .await,
                )
            });
            match result {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return EXIT_ERROR;
                }
            }
        }
    };
    match args.output {
        DiffFormat::Text => print!("{}", report.text()),
        DiffFormat::Markdown => print!("{}", report.markdown()),
        DiffFormat::Json => println!("{}", report.json()),
    }
    report.exit_code()
}

/// Validates as the agent does (the runtime's per-resource defaults count): an invalid
/// manifest is held by the agent, so `diff` reports it pending.
fn set_validated(
    set: &mut crate::flink::spec::ManifestSet,
    settings: &crate::repo_settings::RepoSettings,
    args: &DiffArgs,
) {
    let mut options = settings.validation_options(args.rules.operator_version);
    if let Ok(rt) = LocalRuntime::for_observation(PathBuf::new()) {
        let placeholder = ResourceKey::new(config::DEFAULT_NAMESPACE, Kind::FlinkDeployment, "x");
        options.default_configuration = rt.default_configuration(&placeholder);
    }
    set.validate(&options);
}
