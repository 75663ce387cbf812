//! `history` and `rollback`: a resource's deployed revisions from the status branch, and
//! a scoped revert of its manifest to one of them.

use clap::{Args, ValueEnum};

use super::{cache_dir, GitArgs, ValidateFormat, EXIT_ERROR, EXIT_INVALID, EXIT_OK};
use crate::config;
use crate::flink::lifecycle::record::Record;
use crate::flink::spec::{Kind, ResourceKey};
use crate::git::history::{history, DeployedRevision};
use crate::git::rollback::{rollback, RollbackError};
use crate::git::source::{GitSource, RepoLocation};
use crate::git::status::StatusBranch;

/// Which kind a NAME means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    #[value(name = "FlinkDeployment", alias = "flinkdeployment")]
    FlinkDeployment,
    #[value(name = "FlinkSessionJob", alias = "flinksessionjob")]
    FlinkSessionJob,
}

/// Names one resource.
#[derive(Args, Debug, Clone)]
pub struct ResourceArgs {
    /// The resource's metadata.name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Its namespace.
    #[arg(long, short = 'n', default_value = config::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Its kind, when a FlinkDeployment and a FlinkSessionJob share the name.
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// The Git repository: a local path or a URL.
    #[arg(long, env = "FLINK_GITOPS_REPO", value_name = "R", default_value = ".")]
    pub repo: String,
    /// Branch the agent records status on.
    #[arg(long, env = "FLINK_GITOPS_STATUS_BRANCH", default_value = config::DEFAULT_STATUS_BRANCH)]
    pub status_branch: String,
    #[command(flatten)]
    pub git: GitArgs,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub resource: ResourceArgs,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: ValidateFormat,
}

#[derive(Args, Debug)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub resource: ResourceArgs,
    /// The revision (commit, tag or branch) whose manifest to restore.
    #[arg(long, value_name = "REV")]
    pub to: String,
    /// The manifests' branch to commit to.
    #[arg(long, env = "FLINK_GITOPS_BRANCH", default_value = config::DEFAULT_BRANCH)]
    pub branch: String,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: ValidateFormat,
}

fn source(r: &ResourceArgs) -> GitSource {
    GitSource::new(
        RepoLocation::parse(&r.repo),
        &cache_dir(r.git.cache_dir.as_ref()),
        r.git.git_timeout.into(),
    )
    .with_render_tools(r.git.render_tools())
}

/// The resource NAME means: `--kind` if given, else the one kind the status branch knows
/// under that name (FlinkDeployment when it knows none).
fn key_of(r: &ResourceArgs, records: &[Record]) -> Result<ResourceKey, AmbiguousName> {
    let make = |kind| ResourceKey::new(r.namespace.clone(), kind, r.name.clone());
    if let Some(k) = r.kind {
        return Ok(make(match k {
            KindArg::FlinkDeployment => Kind::FlinkDeployment,
            KindArg::FlinkSessionJob => Kind::FlinkSessionJob,
        }));
    }
    let kinds: Vec<Kind> = records
        .iter()
        .filter(|rec| rec.name == r.name && rec.namespace == r.namespace)
        .map(|rec| rec.kind)
        .collect();
    match kinds.as_slice() {
        [] => Ok(make(Kind::FlinkDeployment)),
        [k] => Ok(make(*k)),
        _ => Err(AmbiguousName {
            name: r.name.clone(),
            namespace: r.namespace.clone(),
        }),
    }
}

/// A name both a FlinkDeployment and a FlinkSessionJob have.
#[derive(Debug, thiserror::Error)]
#[error("both a FlinkDeployment and a FlinkSessionJob are named {name:?} in namespace {namespace:?}: say which with --kind")]
pub struct AmbiguousName {
    name: String,
    namespace: String,
}

fn status_records(r: &ResourceArgs) -> Vec<Record> {
    StatusBranch::new(source(r), &r.status_branch)
        .load()
        .map(|m| m.into_values().collect())
        .unwrap_or_default()
}

fn short(s: &str) -> &str {
    s.get(..7).unwrap_or(s)
}

fn render(key: &ResourceKey, revisions: &[DeployedRevision]) -> String {
    let mut out = format!("{key}\n");
    for d in revisions {
        let states: Vec<String> = d.states.iter().map(ToString::to_string).collect();
        out.push_str(&format!(
            "\n{}  {}  {} .. {}\n  lifecycle: {}\n",
            short(&d.revision),
            d.outcome,
            d.first_seen,
            d.last_seen,
            states.join(" -> ")
        ));
        if let Some(r) = &d.running_revision {
            out.push_str(&format!(
                "  rolled back: revision {} ran instead\n",
                short(r)
            ));
        }
        if !d.job_ids.is_empty() {
            out.push_str(&format!("  jobs: {}\n", d.job_ids.join(", ")));
        }
        if let Some(p) = &d.restored_from {
            out.push_str(&format!("  restored from: {p}\n"));
        }
        for s in &d.savepoints {
            let trigger = serde_json::to_value(s.savepoint.trigger)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            out.push_str(&format!(
                "  savepoint {} ({trigger}, {}){}\n",
                s.savepoint.location,
                s.savepoint.time,
                if s.kept { "" } else { ", disposed" }
            ));
        }
        if let Some(e) = &d.last_error {
            out.push_str(&format!(
                "  last error ({}): {}\n",
                e.reason,
                e.message.lines().next().unwrap_or("")
            ));
        }
    }
    out
}

pub fn cmd_history(args: HistoryArgs) -> u8 {
    let r = &args.resource;
    let key = match key_of(r, &status_records(r)) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_INVALID;
        }
    };
    let revisions = match history(&source(r), &r.status_branch, &key) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ERROR;
        }
    };
    match args.output {
        ValidateFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "resource": key.to_string(),
                "revisions": revisions,
            }))
            .unwrap_or_default()
        ),
        ValidateFormat::Text if revisions.is_empty() => {
            println!(
                "{key}: nothing recorded on branch {} (never deployed by the agent)",
                r.status_branch
            )
        }
        ValidateFormat::Text => print!("{}", render(&key, &revisions)),
    }
    // Nothing recorded for that name (a typo, another namespace): not a success.
    if revisions.is_empty() {
        EXIT_INVALID
    } else {
        EXIT_OK
    }
}

pub fn cmd_rollback(args: RollbackArgs) -> u8 {
    let r = &args.resource;
    let key = match key_of(r, &status_records(r)) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_INVALID;
        }
    };
    match rollback(
        &source(r),
        &key,
        &args.to,
        &args.branch,
        r.git.path.as_deref(),
    ) {
        Ok(done) => {
            match args.output {
                ValidateFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&done).unwrap_or_default()
                ),
                ValidateFormat::Text => println!(
                    "{}\ncommit {} on {} ({})",
                    done.message,
                    short(&done.commit),
                    args.branch,
                    done.file
                ),
            }
            EXIT_OK
        }
        Err(e @ RollbackError::Git(_)) | Err(e @ RollbackError::Contended { .. }) => {
            eprintln!("error: {e}");
            EXIT_ERROR
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_INVALID
        }
    }
}
