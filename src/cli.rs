//! The command line: flags (each with an environment variable), and the commands that
//! wire the library together. The only place that prints to stdout.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config;
use crate::diff::{self, render};
use crate::flink::spec::{validate, ManifestSet, OperatorVersion, Severity};
use crate::git::render::RenderTools;
use crate::git::source::{self, GitError, GitSource, RepoLocation, RevisionFiles};
use crate::repo_settings::{RepoSettings, SettingsRead};

mod agent;
mod drift;
mod history;

/// Exit code: everything valid / no changes.
pub const EXIT_OK: u8 = 0;
/// Exit code: invalid input (or, for `plan --detailed-exitcode`, invalid or error).
pub const EXIT_INVALID: u8 = 1;
/// Exit code: could not run (or, for `plan --detailed-exitcode`, there are changes).
pub const EXIT_ERROR: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "flink-gitops",
    version,
    about = "GitOps for Apache Flink: FlinkDeployment and FlinkSessionJob manifests in Git, applied with the Flink Kubernetes Operator's rules.",
    long_about = "GitOps for Apache Flink.\n\n\
Keep FlinkDeployment and FlinkSessionJob manifests (apiVersion flink.apache.org/v1beta1, the YAML \
you write for the Flink Kubernetes Operator) in a Git repository. flink-gitops validates them, tells \
a reviewer what a pull request will do to running jobs and their state, and applies merged changes \
with the operator's upgrade rules.\n\n\
Typical workflow:\n  \
flink-gitops validate examples/repo                      # check manifests before committing\n  \
flink-gitops plan --repo . --base main --head my-branch  # what will this PR do to running jobs?\n  \
flink-gitops plan --repo . --base main --head HEAD -o markdown  # as a PR comment",
    after_help = "Exit codes: 0 ok, 1 invalid manifests, 2 could not run (plan --detailed-exitcode: 0 no changes, 2 changes, 1 invalid or error).\nLogs go to stderr; set FLINK_GITOPS_LOG=debug for more."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check manifests: every error with its file, line, field and what is allowed.
    ///
    /// Reads a folder or file on disk (uncommitted changes included), or a Git repository at a
    /// revision. Exit 0 when valid, 1 when invalid, 2 when it could not run.
    Validate(ValidateArgs),
    /// Show what merging one revision over another does to each resource and its job.
    ///
    /// For every resource added, removed or changed between --base and --head: the change class
    /// (ignore, scale, upgrade, savepoint-redeploy), the action on the running job in plain words,
    /// warnings where state is at risk, validation errors, and a diff of the spec.
    Plan(PlanArgs),
    /// Run the agent: poll the branch, apply changes to Flink, record status on a branch.
    ///
    /// Each cycle fetches the branch once, reads the manifests at its tip, observes every
    /// cluster and job, decides the next step per resource with the operator's rules, carries it
    /// out and commits what it did to the status branch (default flink-gitops/status). Flink
    /// processes outlive the agent; a restarted agent reads the status branch and adopts them.
    Run(agent::RunArgs),
    /// Show what the agent recorded: lifecycle state, job state, revision, newest savepoint.
    Status(agent::StatusArgs),
    /// Compare the live state with Git: job state and id, per-vertex parallelism, cluster
    /// configuration, TaskManagers, jobs no manifest owns, clusters no manifest wants.
    ///
    /// Exit codes as kubectl diff: 0 no drift, 1 drift (or Git wants something not applied
    /// yet, or an orphan cluster), 2 error or nothing could be checked. A cluster that does
    /// not answer is reported unknown, never drift.
    Diff(drift::DiffArgs),
    /// Stop every Flink cluster of the local runtime (checkpoints and savepoints stay).
    Down(agent::DownArgs),
    /// A resource's deployed revisions, from the status branch: each with its lifecycle
    /// outcome, jobs and savepoints.
    History(history::HistoryArgs),
    /// Commit and push to the manifests branch the manifest one resource had at an earlier
    /// revision (its document only); the agent applies it like any change.
    Rollback(history::RollbackArgs),
}

/// Where to read manifests from Git, and how.
#[derive(Args, Debug, Clone)]
pub struct GitArgs {
    /// Folder below the repository root that holds the manifests (default: the whole tree).
    #[arg(long, env = "FLINK_GITOPS_PATH", value_name = "P")]
    pub path: Option<String>,
    /// Folder for Git mirrors and other caches.
    #[arg(long, env = config::ENV_CACHE_DIR, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Deadline for fetching a remote repository.
    #[arg(long, env = "FLINK_GITOPS_GIT_TIMEOUT", value_name = "DURATION", default_value_t = config::DEFAULT_GIT_TIMEOUT.into())]
    pub git_timeout: humantime::Duration,
    /// kubectl, for rendering kustomizations (default: kubectl on PATH, else the one
    /// scripts/setup.sh installs in the cache).
    #[arg(long, env = config::ENV_KUBECTL, value_name = "PATH")]
    pub kubectl: Option<PathBuf>,
    /// helm, for rendering Helm charts with `helm template` (found as --kubectl is).
    #[arg(long, env = config::ENV_HELM, value_name = "PATH")]
    pub helm: Option<PathBuf>,
    /// Deadline for rendering one kustomization or chart.
    #[arg(long, env = config::ENV_RENDER_TIMEOUT, value_name = "DURATION", default_value_t = config::DEFAULT_RENDER_TIMEOUT.into())]
    pub render_timeout: humantime::Duration,
}

impl GitArgs {
    /// kubectl and helm as the flags give them.
    pub fn render_tools(&self) -> RenderTools {
        RenderTools {
            kubectl: self.kubectl.clone(),
            helm: self.helm.clone(),
            timeout: self.render_timeout.into(),
            ..RenderTools::new(&cache_dir(self.cache_dir.as_ref()))
        }
    }
}

/// Which operator release's rules apply.
#[derive(Args, Debug, Clone)]
pub struct RulesArgs {
    /// The Flink Kubernetes Operator release whose validation rules apply, 1.10 to 1.15.
    /// Wins over operatorVersion in the repository's .flink-gitops.yaml; without either,
    /// the newest release.
    #[arg(long, env = config::ENV_OPERATOR_VERSION, value_name = "X.Y")]
    pub operator_version: Option<OperatorVersion>,
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// Folder or file to validate (default: the current folder). Ignored with --repo.
    #[arg(value_name = "PATH")]
    pub target: Option<PathBuf>,
    /// Validate a Git repository instead: a local path or a URL (file://, https://, ssh://).
    #[arg(long, env = "FLINK_GITOPS_REPO", value_name = "R")]
    pub repo: Option<String>,
    /// Revision to read with --repo: branch, tag or commit.
    #[arg(long, value_name = "REV", default_value = "HEAD")]
    pub revision: String,
    #[command(flatten)]
    pub git: GitArgs,
    #[command(flatten)]
    pub rules: RulesArgs,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: ValidateFormat,
    /// Also show notices (skipped kinds, ignored fields).
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ValidateFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The Git repository: a local path or a URL (file://, https://, ssh://).
    #[arg(long, env = "FLINK_GITOPS_REPO", value_name = "R")]
    pub repo: String,
    /// The revision that is deployed now (usually the target branch of the pull request).
    #[arg(long, value_name = "REV")]
    pub base: String,
    /// The revision to be merged (the pull request's branch or commit).
    #[arg(long, value_name = "REV")]
    pub head: String,
    #[command(flatten)]
    pub git: GitArgs,
    #[command(flatten)]
    pub rules: RulesArgs,
    /// Output format: text for a terminal, json for tools, markdown for a PR comment.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: render::Format,
    /// Terraform's convention: exit 0 no changes, 2 changes, 1 invalid or error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Colour the text output.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: Color,
    /// The agent's status branch, read to tell what re-adding a removed resource restores.
    #[arg(long, env = "FLINK_GITOPS_STATUS_BRANCH", default_value = config::DEFAULT_STATUS_BRANCH)]
    pub status_branch: String,
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(if matches!(cli.command, Command::Run(_)) {
        "info"
    } else {
        "warn"
    });
    let code = match cli.command {
        Command::Validate(args) => cmd_validate(args),
        Command::Plan(args) => cmd_plan(args),
        Command::Run(args) => agent::cmd_run(args),
        Command::Status(args) => agent::cmd_status(args),
        Command::Diff(args) => drift::cmd_diff(args),
        Command::Down(args) => agent::cmd_down(args),
        Command::History(args) => history::cmd_history(args),
        Command::Rollback(args) => history::cmd_rollback(args),
    };
    ExitCode::from(code)
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env(config::ENV_LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // No colour codes in logs that go to a file or a pipe (a pod's log, CI).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// `validate -o json` (a stable shape).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ValidateReport<'a> {
    valid: bool,
    /// The operator release whose rules applied.
    operator_version: OperatorVersion,
    files: usize,
    resources: Vec<ValidatedResource<'a>>,
    diagnostics: &'a [crate::flink::spec::Diagnostic],
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ValidatedResource<'a> {
    kind: crate::flink::spec::Kind,
    namespace: &'a str,
    name: &'a str,
    file: &'a str,
    spec_hash: crate::flink::spec::SpecHash,
    /// The kustomization or chart folder the resource was rendered from (null: its own file).
    rendered_from: Option<&'a str>,
}

/// The cache folder: the flag, else `$XDG_CACHE_HOME/flink-gitops`, else `~/.cache/flink-gitops`.
pub fn cache_dir(flag: Option<&PathBuf>) -> PathBuf {
    if let Some(p) = flag {
        return p.clone();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join(config::DEFAULT_CACHE_SUBDIR)
}

/// Validates a set with a repository's settings and the `--operator-version` flag (what is
/// wrong in the settings file is already among the set's diagnostics). Returns the options
/// used.
fn validate_with(
    set: &mut ManifestSet,
    settings: &RepoSettings,
    rules: &RulesArgs,
) -> validate::Options {
    let options = settings.validation_options(rules.operator_version);
    set.validate(&options);
    options
}

/// Why a command could not run (exit code 2).
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("path {path:?} is not a folder at {base} nor at {head}")]
    PathNotFound {
        path: String,
        base: String,
        head: String,
    },
}

/// Opens a repository (fetching a remote once) and returns it with its source.
fn open_repo(repo: &str, git: &GitArgs) -> Result<(GitSource, git2::Repository), CliError> {
    let location = RepoLocation::parse(repo);
    let source = GitSource::new(
        location,
        &cache_dir(git.cache_dir.as_ref()),
        git.git_timeout.into(),
    )
    .with_render_tools(git.render_tools());
    source.fetch()?;
    let repository = source.open()?;
    Ok((source, repository))
}

fn load_revision(
    source: &GitSource,
    repo: &git2::Repository,
    rev: &str,
    path: Option<&str>,
    rules: &RulesArgs,
) -> Result<(ManifestSet, validate::Options), CliError> {
    let revision = source.resolve(repo, rev)?;
    let (mut set, settings) = source.load(repo, &revision, path)?;
    let options = validate_with(&mut set, &settings, rules);
    Ok((set, options))
}

fn cmd_validate(args: ValidateArgs) -> u8 {
    let (set, options) = match &args.repo {
        Some(repo) => match open_repo(repo, &args.git).and_then(|(s, r)| {
            load_revision(
                &s,
                &r,
                &args.revision,
                args.git.path.as_deref(),
                &args.rules,
            )
        }) {
            Ok(loaded) => loaded,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_ERROR;
            }
        },
        None => {
            let target = args.target.clone().unwrap_or_else(|| PathBuf::from("."));
            if !target.exists() {
                eprintln!("error: {} does not exist", target.display());
                return EXIT_ERROR;
            }
            match source::load_folder(&target, &args.git.render_tools()) {
                Ok((mut set, settings)) => {
                    let options = validate_with(&mut set, &settings, &args.rules);
                    (set, options)
                }
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", target.display());
                    return EXIT_ERROR;
                }
            }
        }
    };
    let errors = set.errors().count();
    let warnings = set
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    match args.output {
        ValidateFormat::Json => {
            let value = ValidateReport {
                valid: errors == 0,
                operator_version: options.operator_version,
                files: set.files_read,
                resources: set
                    .manifests
                    .iter()
                    .map(|m| ValidatedResource {
                        kind: m.key.kind,
                        namespace: &m.key.namespace,
                        name: &m.key.name,
                        file: &m.file,
                        spec_hash: m.spec.hash(),
                        rendered_from: m.rendered.as_ref().map(|r| r.folder.as_str()),
                    })
                    .collect(),
                diagnostics: &set.diagnostics,
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        }
        ValidateFormat::Text => {
            for d in &set.diagnostics {
                if d.severity != Severity::Notice || args.verbose {
                    println!("{d}");
                }
            }
            let verdict = if errors == 0 { "valid" } else { "invalid" };
            println!(
                "{verdict}: {} file(s), {} resource(s), {errors} error(s), {warnings} warning(s), operator {} rules",
                set.files_read,
                set.manifests.len(),
                options.operator_version
            );
        }
    }
    if errors == 0 {
        EXIT_OK
    } else {
        EXIT_INVALID
    }
}

/// One side of a plan: the resolved revision, and its manifest files and rendered
/// folders, or `None` when the `--path` folder does not exist at that revision.
struct PlanSide {
    label: String,
    files: Option<RevisionFiles>,
    /// The repository's settings at this revision (also when the path is missing there).
    settings: SettingsRead,
}

fn read_plan_side(
    source: &GitSource,
    repo: &git2::Repository,
    rev: &str,
    path: Option<&str>,
) -> Result<PlanSide, CliError> {
    let revision = source.resolve(repo, rev)?;
    let (files, settings) = match source.read_revision(repo, &revision, path) {
        Ok(mut files) => {
            let settings = std::mem::take(&mut files.settings);
            (Some(files), settings)
        }
        Err(GitError::PathNotFound { .. }) => (None, source.read_settings(repo, &revision)?),
        Err(e) => return Err(e.into()),
    };
    Ok(PlanSide {
        label: revision.to_string(),
        files,
        settings,
    })
}

/// A revision's label and its manifests.
type Labelled = (String, ManifestSet);

/// The two validated manifest sets to plan. A `--path` folder missing at one revision reads
/// as empty there, so a change that adds or deletes the whole folder can be planned;
/// missing at both is an error (most likely a mistyped path). Head is validated with the
/// settings it carries (its `.flink-gitops.yaml`) and the flag.
fn plan_sets(
    base: PlanSide,
    head: PlanSide,
    path: Option<&str>,
    rules: &RulesArgs,
) -> Result<(Labelled, Labelled), CliError> {
    let SettingsRead {
        settings,
        diagnostics: problems,
        ..
    } = head.settings;
    let options = settings.validation_options(rules.operator_version);
    let (b, h) = match (base.files, head.files) {
        (None, None) => {
            return Err(CliError::PathNotFound {
                path: path.unwrap_or_default().to_string(),
                base: base.label,
                head: head.label,
            })
        }
        (b, h) => (b.unwrap_or_default(), h.unwrap_or_default()),
    };
    let (b, mut h) = diff::load::parse_sides_with(
        (b.files, b.rendered),
        (h.files, h.rendered),
        |path, bytes| source::parse_files(vec![(path, bytes)]),
        &options,
    );
    h.diagnostics.splice(0..0, problems);
    Ok(((base.label, b), (head.label, h)))
}

fn cmd_plan(args: PlanArgs) -> u8 {
    let fail = if args.detailed_exitcode {
        EXIT_INVALID
    } else {
        EXIT_ERROR
    };
    let path = args.git.path.as_deref();
    // libgit2 hashes every object it reads again (SHA-1 with collision detection) to check
    // it against its id: most of the time reading a revision takes. A plan only reads, and
    // trusts the object store as git does on ordinary reads (git checks on fetch and fsck).
    git2::opts::strict_hash_verification(false);
    let mut records = std::collections::BTreeMap::new();
    let loaded = open_repo(&args.repo, &args.git).and_then(|(source, repo)| {
        let base = read_plan_side(&source, &repo, &args.base, path)?;
        let head = read_plan_side(&source, &repo, &args.head, path)?;
        // What the agent recorded (if it runs on this repository): a resource added back
        // restores from the final state recorded when it was removed.
        // open_repo fetched every branch, the status branch included: no second fetch.
        match crate::git::status::StatusBranch::new(source.clone(), &args.status_branch)
            .load_fetched()
        {
            Ok(r) => records = r,
            Err(e) => tracing::debug!(error = %e, "no status branch read; planning without it"),
        }
        plan_sets(base, head, path, &args.rules)
    });
    let ((base_label, base), (head_label, head)) = match loaded {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return fail;
        }
    };
    let plan = diff::plan_with_records(&base, &head, &base_label, &head_label, &records);
    let color = match args.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    print!("{}", render::render(&plan, args.output, color));
    let code = if plan.has_errors() {
        EXIT_INVALID
    } else if args.detailed_exitcode && plan.has_changes() {
        EXIT_ERROR
    } else {
        EXIT_OK
    };
    // The process ends next; freeing two parsed trees one allocation at a time would add
    // a tenth to the run time of a large plan, for nothing.
    std::mem::forget((base, head, plan));
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(label: &str, files: Option<&[(&str, &str)]>) -> PlanSide {
        PlanSide {
            settings: SettingsRead::default(),
            label: label.to_string(),
            files: files.map(|fs| RevisionFiles {
                files: fs
                    .iter()
                    .map(|(f, t)| (f.to_string(), t.as_bytes().to_vec()))
                    .collect(),
                ..RevisionFiles::default()
            }),
        }
    }

    const NO_FLAG: RulesArgs = RulesArgs {
        operator_version: None,
    };

    #[test]
    fn a_path_missing_at_one_revision_plans_as_empty_there() {
        let doc = "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: a\nspec: {}\n";
        let files: &[(&str, &str)] = &[("flink/a.yaml", doc)];
        let ((bl, base), (hl, head)) = plan_sets(
            side("main", None),
            side("pr", Some(files)),
            Some("flink"),
            &NO_FLAG,
        )
        .expect("missing at base only");
        assert_eq!((bl.as_str(), hl.as_str()), ("main", "pr"));
        assert!(base.manifests.is_empty());
        assert_eq!(head.manifests.len(), 1);
        let (_, (_, head)) = plan_sets(
            side("main", Some(files)),
            side("pr", None),
            Some("flink"),
            &NO_FLAG,
        )
        .expect("missing at head only");
        assert!(head.manifests.is_empty());
        let err = plan_sets(
            side("main", None),
            side("pr", None),
            Some("flink"),
            &NO_FLAG,
        )
        .expect_err("missing at both");
        assert_eq!(
            err.to_string(),
            "path \"flink\" is not a folder at main nor at pr"
        );
    }
}
