//! Drift: a resource's live state against what Git wants and what the agent recorded, and
//! what the agent does about it. Pure: the live facts come in ([`Live`], gathered by the
//! executor's observation or by `flink-gitops diff`), the comparison and the policy are
//! functions of them.
//!
//! What is compared, per resource at rest (nothing in flight, the reconciled spec is the
//! one Git wants):
//!
//! | kind | against | path (for ignore rules) |
//! |---|---|---|
//! | job state | the record says the job runs: Flink lists it CANCELED, FINISHED or SUSPENDED, or does not list it while the cluster answers | `job.state` |
//! | job id | an application cluster runs another job than the recorded one | `job.state` |
//! | parallelism | each vertex named by `pipeline.jobvertex-parallelism-overrides` runs at its value; the other vertices at `job.parallelism` (reported when none of them runs at it, so a vertex whose parallelism the job's code fixes is no drift) | `flinkConfiguration.pipeline.jobvertex-parallelism-overrides`, `job.parallelism` |
//! | configuration | each key the spec sets, in the JobManager's `GET /jobmanager/config` (see [`expected_configuration`] for the keys left out) | `flinkConfiguration.<key>` |
//! | TaskManagers | the number the runtime started, registered with the JobManager | `taskManager.replicas` |
//! | unmanaged jobs | a session cluster runs a job no session job's record names | `unmanagedJobs` |
//!
//! A FAILED job is not drift (failure handling owns it); a cluster that is gone is not
//! drift either (the agent recovers it, as the operator's `jm-deployment-recovery`). A fact
//! that could not be asked for is unknown: never drift, and a drift recorded for it earlier
//! stays recorded until it can be asked again.
//!
//! Policies ([`DriftPolicy`]), per resource by the annotation
//! [`config::ANNOTATION_DRIFT`], else the agent's `--drift`: `report` records the drift on the
//! status branch and changes nothing (Argo CD without selfHeal); `heal` records it and puts
//! it back with the resource's rules ([`at_rest`]; Flux); `ignore` does not look. Ignore
//! rules ([`DriftSettings::ignore`]) leave paths out, per resource
//! ([`config::ANNOTATION_DRIFT_IGNORE`]) and for the repository (`drift.ignore` in
//! `.flink-gitops.yaml`), like Argo CD's `ignoreDifferences` and Flux's `driftIgnoreRules`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::decide::{self, Context, Step};
use super::observe::{Evidence, Observed};
use super::record::{InFlight, Record, StopPurpose};
use super::spec_diff::class_of;
use super::{parallelism_overrides, DiffType};
use crate::config;
use crate::flink::rest::JobStatus;
use crate::flink::spec::{DeploymentMode, FlinkVersion, Kind, ResourceKey, Spec};

/// What the agent does about drift of a resource.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum DriftPolicy {
    /// Record it on the status branch and show it; change nothing (Argo CD without
    /// selfHeal). The default.
    #[default]
    Report,
    /// Record it and put it back with the resource's rules (Flux).
    Heal,
    /// Do not look.
    Ignore,
}

impl DriftPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftPolicy::Report => "report",
            DriftPolicy::Heal => "heal",
            DriftPolicy::Ignore => "ignore",
        }
    }

    /// Reads `report`, `heal` or `ignore` (any case, surrounding blanks allowed).
    pub fn parse(s: &str) -> Option<DriftPolicy> {
        match s.trim().to_ascii_lowercase().as_str() {
            "report" => Some(DriftPolicy::Report),
            "heal" => Some(DriftPolicy::Heal),
            "ignore" => Some(DriftPolicy::Ignore),
            _ => None,
        }
    }
}

impl fmt::Display for DriftPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The drift settings of one resource: its policy and the paths it ignores.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DriftSettings {
    pub policy: DriftPolicy,
    /// Spec paths whose drift is neither reported nor healed (`job.parallelism`,
    /// `flinkConfiguration.<key>`, `flinkConfiguration` for every key; a leading `spec.` is
    /// allowed). A rule covers its path and every path below it.
    pub ignore: Vec<String>,
    /// A session cluster under `heal` may cancel jobs no manifest owns (annotation
    /// [`config::ANNOTATION_DRIFT_UNMANAGED_JOBS`]` = cancel`).
    pub cancel_unmanaged: bool,
}

impl DriftSettings {
    /// The settings of a manifest: its annotations over the agent's default policy, its own
    /// ignore rules after the repository's. A policy annotation that cannot be read is a
    /// warning (returned) and the default applies.
    pub fn of_manifest(
        default: DriftPolicy,
        annotations: &BTreeMap<String, String>,
        repo_ignore: &[String],
    ) -> (DriftSettings, Option<String>) {
        let mut warning = None;
        let policy = match annotations.get(config::ANNOTATION_DRIFT) {
            None => default,
            Some(v) => DriftPolicy::parse(v).unwrap_or_else(|| {
                warning = Some(format!(
                    "annotation {}: found {v:?}; allowed: report, heal, ignore (using {default})",
                    config::ANNOTATION_DRIFT
                ));
                default
            }),
        };
        let mut ignore: Vec<String> = repo_ignore.iter().map(|r| normalize_rule(r)).collect();
        if let Some(v) = annotations.get(config::ANNOTATION_DRIFT_IGNORE) {
            ignore.extend(
                v.split([',', '\n'])
                    .map(normalize_rule)
                    .filter(|r| !r.is_empty()),
            );
        }
        let cancel_unmanaged = annotations
            .get(config::ANNOTATION_DRIFT_UNMANAGED_JOBS)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("cancel"));
        (
            DriftSettings {
                policy,
                ignore,
                cancel_unmanaged,
            },
            warning,
        )
    }

    /// Whether an ignore rule covers `path`.
    pub fn ignores(&self, path: &str) -> bool {
        self.ignore.iter().any(|rule| {
            path == rule
                || (path.len() > rule.len()
                    && path.starts_with(rule.as_str())
                    && path.as_bytes()[rule.len()] == b'.')
        })
    }
}

/// A rule as written, without blanks and a leading `spec.`.
fn normalize_rule(rule: &str) -> String {
    let r = rule.trim();
    r.strip_prefix("spec.").unwrap_or(r).to_string()
}

/// What `decide` needs to know about drift besides the observation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DriftContext {
    pub settings: DriftSettings,
    /// For a session cluster: the job ids its session jobs' records name (running or in
    /// flight), read after the cluster's jobs were listed. Any other job it runs is unmanaged.
    pub owned_jobs: BTreeSet<String>,
}

/// For a session cluster `key`: the job ids its session jobs' records name (running, or in
/// flight: a submit writes its job id before it sends it, so a job the cluster lists is in a
/// record read after the list). Empty for any other resource.
pub fn owned_jobs(key: &ResourceKey, records: &BTreeMap<ResourceKey, Record>) -> BTreeSet<String> {
    let mut owned = BTreeSet::new();
    if key.kind != Kind::FlinkDeployment {
        return owned;
    }
    for r in records
        .values()
        .filter(|r| r.kind == Kind::FlinkSessionJob && r.namespace == key.namespace && !r.deleted)
    {
        let on_it = [&r.last_reconciled_spec, &r.last_stable_spec]
            .into_iter()
            .flatten()
            .any(|s| {
                matches!(s, Spec::SessionJob(sj)
                    if sj.deployment_name.as_deref() == Some(key.name.as_str()))
            });
        if !on_it {
            continue;
        }
        owned.extend(r.job_id.clone());
        if let Some(
            InFlight::Starting { job_id, .. }
            | InFlight::Stopping { job_id, .. }
            | InFlight::Rescaling { job_id, .. }
            | InFlight::Snapshotting { job_id, .. },
        ) = &r.in_flight
        {
            owned.insert(job_id.clone());
        }
    }
    owned
}

/// One vertex of a running job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveVertex {
    pub id: String,
    pub name: String,
    pub parallelism: u32,
}

/// One job a cluster lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveJob {
    pub job_id: String,
    pub name: String,
    pub state: JobStatus,
}

/// The live facts drift detection reads besides [`Observed`]'s cluster and job: gathered for
/// resources at rest, each [`Evidence::Unknown`] when it could not be asked (and
/// `Unknown { "not asked" }` when it does not apply).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Live {
    /// The vertices of the recorded job, when it runs.
    pub vertices: Evidence<Vec<LiveVertex>>,
    /// The JobManager's configuration (a FlinkDeployment's own cluster).
    pub jobmanager_config: Evidence<BTreeMap<String, String>>,
    /// TaskManagers registered with the JobManager, and how many the runtime started.
    pub task_managers: Option<(u32, u32)>,
    /// Every job the cluster lists.
    pub jobs: Evidence<Vec<LiveJob>>,
}

/// What drifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftKind {
    JobState,
    JobId,
    Parallelism,
    Configuration,
    TaskManagers,
    UnmanagedJob,
}

impl DriftKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::JobState => "job state",
            DriftKind::JobId => "job id",
            DriftKind::Parallelism => "parallelism",
            DriftKind::Configuration => "configuration",
            DriftKind::TaskManagers => "TaskManagers",
            DriftKind::UnmanagedJob => "unmanaged job",
        }
    }
}

/// One difference between the live state and Git (or the record).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftItem {
    pub kind: DriftKind,
    /// The spec path it is measured against; ignore rules match it.
    pub path: String,
    /// What in particular: a vertex (`<id> (<name>)`), a configuration key, a job id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// What Git (or the record) wants.
    pub expected: String,
    /// What runs.
    pub found: String,
}

impl fmt::Display for DriftItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())?;
        if let Some(s) = &self.subject {
            write!(f, " {s}")?;
        }
        write!(f, ": expected {}, found {}", self.expected, self.found)
    }
}

/// The drift recorded on the status branch: what drifted, since when, first seen at which
/// Git revision, and the policy that applied. Cleared once nothing drifts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    /// RFC 3339 time it was first seen (kept while any drift stays).
    pub since: String,
    /// The Git revision the agent was at when it first saw it.
    pub revision: String,
    pub policy: DriftPolicy,
    /// Sorted.
    pub items: Vec<DriftItem>,
}

/// The result of comparing one resource.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Detected {
    /// What drifted and no ignore rule covers (sorted).
    pub items: Vec<DriftItem>,
    /// Items an ignore rule covers (for `diff` to say so).
    pub ignored: Vec<DriftItem>,
    /// The kinds that could not be checked, with why.
    pub unknown: BTreeMap<DriftKind, String>,
    /// Whether anything could be checked at all.
    pub checked: bool,
}

pub const PATH_JOB_STATE: &str = "job.state";
pub const PATH_JOB_PARALLELISM: &str = "job.parallelism";
pub const PATH_TASK_MANAGERS: &str = "taskManager.replicas";
pub const PATH_UNMANAGED_JOBS: &str = "unmanagedJobs";

fn overrides_path() -> String {
    format!("flinkConfiguration.{}", config::PARALLELISM_OVERRIDES.key)
}

/// Keys a runtime sets itself whatever the spec says (addresses, ports, folders of the
/// process, JVM options), and `parallelism.default` (compared through the vertices):
/// never compared.
const RUNTIME_KEYS: &[&str] = &[
    "env.java.opts.all",
    "execution.shutdown-on-application-finish",
    "io.tmp.dirs",
    "jobmanager.bind-host",
    "jobmanager.rpc.address",
    "jobmanager.rpc.port",
    "parallelism.default",
    "rest.address",
    "rest.bind-address",
    "rest.bind-port",
    "rest.port",
    "taskmanager.bind-host",
    "taskmanager.host",
    "web.upload.dir",
];

/// The configuration a FlinkDeployment's JobManager must show: the keys its spec sets,
/// under the name Flink 2.x reads, except those Flink never sees or that change without a
/// restart: operator and autoscaler options (`kubernetes.operator.*`, `job.autoscaler.*`),
/// `kubernetes.*` and `high-availability*` (a runtime's business), keys the runtime sets
/// itself ([`RUNTIME_KEYS`]), `$internal.*`, the parallelism overrides (rescaled in place
/// and compared through the vertices), and keys whose change the operator classes as
/// IGNORE (they apply without a redeploy, so the running JobManager never sees them).
pub fn expected_configuration(spec: &Spec) -> BTreeMap<String, String> {
    let Spec::Deployment(d) = spec else {
        return BTreeMap::new();
    };
    let memory_from_resources = |jm: bool| {
        if jm {
            d.job_manager
                .as_ref()
                .and_then(|j| j.resource.as_ref())
                .is_some_and(|r| r.memory.is_some())
        } else {
            d.task_manager
                .as_ref()
                .and_then(|t| t.resource.as_ref())
                .is_some_and(|r| r.memory.is_some())
        }
    };
    d.flink_configuration
        .iter()
        .filter(|(k, _)| {
            let k = k.as_str();
            !(k.starts_with(config::OPERATOR_PREFIX)
                || k.starts_with(config::AUTOSCALER_PREFIX)
                || k.starts_with("kubernetes.")
                || k.starts_with("high-availability")
                || k.starts_with("$internal")
                || RUNTIME_KEYS.contains(&config::canonical_key(k))
                || config::PARALLELISM_OVERRIDES.names().any(|n| n == k)
                || (config::JM_PROCESS_MEMORY.names().any(|n| n == k)
                    && memory_from_resources(true))
                || (config::TM_PROCESS_MEMORY.names().any(|n| n == k)
                    && memory_from_resources(false))
                || key_change_is_ignored(spec, k))
        })
        .map(|(k, v)| (config::canonical_key(k).to_string(), v.clone()))
        .collect()
}

/// Whether changing `key` alone is an IGNORE change (it never reaches the JobManager).
fn key_change_is_ignored(spec: &Spec, key: &str) -> bool {
    let standalone =
        matches!(spec, Spec::Deployment(d) if d.effective_mode() == DeploymentMode::Standalone);
    class_of(
        &format!("spec.flinkConfiguration[{key}]"),
        false,
        standalone,
    ) == DiffType::Ignore
}

/// Whether a configured value and a live one mean the same: equal as text (ignoring case,
/// blanks and quotes), as durations, or as memory sizes. A value Flink masks (`******`)
/// cannot be compared and counts as equal.
pub fn same_value(want: &str, live: &str) -> bool {
    let clean = |s: &str| s.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
    let (a, b) = (clean(want), clean(live));
    if a.eq_ignore_ascii_case(&b) || b == "******" {
        return true;
    }
    use crate::flink::spec::quantity::{parse_duration, parse_memory};
    if let (Some(x), Some(y)) = (parse_duration(&a), parse_duration(&b)) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (parse_memory(&a), parse_memory(&b)) {
        return x == y;
    }
    false
}

fn item(
    kind: DriftKind,
    path: impl Into<String>,
    subject: Option<String>,
    expected: impl Into<String>,
    found: impl Into<String>,
) -> DriftItem {
    DriftItem {
        kind,
        path: path.into(),
        subject,
        expected: expected.into(),
        found: found.into(),
    }
}

fn state_name(s: JobStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{s:?}").to_uppercase())
}

/// Compares a resource at rest with what runs. `spec` is the reconciled spec (the one Git
/// wants); `live` is `None` when only [`Observed`] was gathered (then only the job state is
/// compared). Nothing is compared for a suspended resource or one whose record names no
/// job where it should.
pub fn detect(
    spec: &Spec,
    rec: &Record,
    observed: &Observed,
    live: Option<&Live>,
    settings: &DriftSettings,
    owned_jobs: &BTreeSet<String>,
) -> Detected {
    let mut out = Detected::default();
    let mut found = Vec::new();
    let not_gathered = "not gathered".to_string();
    let session_cluster = matches!(spec, Spec::Deployment(d) if d.is_session_cluster());
    let unknown = |out: &mut Detected, kind: DriftKind, why: &str| {
        out.unknown.insert(kind, why.to_string());
    };

    // The job.
    if !session_cluster && !rec.reconciled_suspended() {
        match (&observed.job, &rec.job_id) {
            (_, None) => {}
            (Evidence::Unknown { error }, _) => unknown(&mut out, DriftKind::JobState, error),
            (Evidence::Present { value: job }, Some(id)) => {
                out.checked = true;
                if matches!(
                    job.state,
                    JobStatus::Canceled
                        | JobStatus::Cancelling
                        | JobStatus::Finished
                        | JobStatus::Suspended
                ) {
                    found.push(item(
                        DriftKind::JobState,
                        PATH_JOB_STATE,
                        Some(id.clone()),
                        "RUNNING",
                        state_name(job.state),
                    ));
                }
            }
            (Evidence::Absent, Some(id)) => {
                // Only when the cluster answered: a cluster that is gone is recovered, not drift.
                if observed
                    .cluster
                    .get()
                    .is_some_and(|c| !matches!(c, super::observe::ClusterState::Exited { .. }))
                {
                    out.checked = true;
                    let other = live.and_then(|l| l.jobs.get()).and_then(|jobs| {
                        jobs.iter().find(|j| {
                            &j.job_id != id
                                && !j.state.is_globally_terminal()
                                && rec.kind == Kind::FlinkDeployment
                        })
                    });
                    found.push(match other {
                        Some(j) => item(
                            DriftKind::JobId,
                            PATH_JOB_STATE,
                            Some(j.name.clone()),
                            id.clone(),
                            j.job_id.clone(),
                        ),
                        None => item(
                            DriftKind::JobState,
                            PATH_JOB_STATE,
                            Some(id.clone()),
                            "RUNNING",
                            "not listed by the cluster",
                        ),
                    });
                }
            }
        }
    }

    let Some(live) = live else {
        for k in [
            DriftKind::Parallelism,
            DriftKind::Configuration,
            DriftKind::TaskManagers,
            DriftKind::UnmanagedJob,
        ] {
            unknown(&mut out, k, &not_gathered);
        }
        return finish(out, found, settings);
    };

    // Per-vertex parallelism of a running job.
    let running = observed
        .job
        .get()
        .is_some_and(|j| j.state == JobStatus::Running);
    if running && !session_cluster {
        match &live.vertices {
            Evidence::Present { value: vertices } => {
                out.checked = true;
                let overrides = parallelism_overrides(spec);
                let subject = |v: &LiveVertex| Some(format!("{} ({})", v.id, v.name));
                for v in vertices {
                    if let Some(&want) = overrides.get(&v.id) {
                        if v.parallelism != want {
                            found.push(item(
                                DriftKind::Parallelism,
                                overrides_path(),
                                subject(v),
                                want.to_string(),
                                v.parallelism.to_string(),
                            ));
                        }
                    }
                }
                let rest: Vec<&LiveVertex> = vertices
                    .iter()
                    .filter(|v| !overrides.contains_key(&v.id))
                    .collect();
                if let Some(p) = spec.job().and_then(|j| j.parallelism) {
                    let p = u32::try_from(p).unwrap_or(0);
                    if !rest.is_empty() && rest.iter().all(|v| v.parallelism != p) {
                        for v in rest {
                            found.push(item(
                                DriftKind::Parallelism,
                                PATH_JOB_PARALLELISM,
                                subject(v),
                                p.to_string(),
                                v.parallelism.to_string(),
                            ));
                        }
                    }
                }
            }
            Evidence::Unknown { error } => unknown(&mut out, DriftKind::Parallelism, error),
            Evidence::Absent => {}
        }
    }

    // The cluster: configuration, TaskManagers, jobs nobody owns.
    if rec.kind == Kind::FlinkDeployment {
        match &live.jobmanager_config {
            Evidence::Present { value: cfg } => {
                out.checked = true;
                for (key, want) in expected_configuration(spec) {
                    match cfg.get(&key) {
                        Some(have) if same_value(&want, have) => {}
                        have => found.push(item(
                            DriftKind::Configuration,
                            format!("flinkConfiguration.{key}"),
                            Some(key.clone()),
                            want,
                            have.cloned().unwrap_or_else(|| "(not set)".to_string()),
                        )),
                    }
                }
            }
            Evidence::Unknown { error } => unknown(&mut out, DriftKind::Configuration, error),
            Evidence::Absent => {}
        }
        if let Some((registered, expected)) = live.task_managers {
            out.checked = true;
            if registered != expected {
                found.push(item(
                    DriftKind::TaskManagers,
                    PATH_TASK_MANAGERS,
                    None,
                    expected.to_string(),
                    registered.to_string(),
                ));
            }
        }
    }
    if session_cluster {
        match &live.jobs {
            Evidence::Present { value: jobs } => {
                out.checked = true;
                for j in jobs
                    .iter()
                    .filter(|j| !j.state.is_globally_terminal() && !owned_jobs.contains(&j.job_id))
                {
                    found.push(item(
                        DriftKind::UnmanagedJob,
                        PATH_UNMANAGED_JOBS,
                        Some(j.job_id.clone()),
                        "no job",
                        format!("{} ({})", j.name, state_name(j.state)),
                    ));
                }
            }
            Evidence::Unknown { error } => unknown(&mut out, DriftKind::UnmanagedJob, error),
            Evidence::Absent => {}
        }
    }
    finish(out, found, settings)
}

fn finish(mut out: Detected, found: Vec<DriftItem>, settings: &DriftSettings) -> Detected {
    let (ignored, items): (Vec<DriftItem>, Vec<DriftItem>) =
        found.into_iter().partition(|i| settings.ignores(&i.path));
    out.items = items;
    out.items.sort();
    out.ignored = ignored;
    out.ignored.sort();
    out
}

/// The agent's drift rule for a resource at rest, called from `decide`'s steady state
/// once the cluster is known to answer. Returns the step to take, or `None` to go on with
/// the steady rules:
///
/// 1. the drift found differs from the recorded one: [`Step::RecordDrift`] (kinds that
///    could not be checked keep what was recorded);
/// 2. the job is down (cancelled, finished, not listed) and the policy does not heal it:
///    [`Step::Nothing`] (the operator's rule for a job it did not stop: leave it, report);
/// 3. `heal`: the step that puts the first healable item back: a job that is down starts
///    again from its newest state (newest retained checkpoint, else the recorded restore
///    point; a stateless job empty); a rescaled job is rescaled back in place where the
///    adaptive scheduler allows it (`Step::Rescale`), else upgraded; a FlinkDeployment whose
///    configuration or TaskManagers drifted is redeployed with its upgrade mode (stop as
///    the upgrade mode says, start the same spec from that state); unmanaged jobs on a
///    session cluster are cancelled only with `flink-gitops.io/drift-unmanaged-jobs:
///    cancel`. A session cluster's configuration is never redeployed for drift (it would
///    stop every session job): reported only. Another job in place of the recorded one on
///    an application cluster is reported only (the agent does not cancel a job it did not
///    start).
pub(super) fn at_rest(
    spec: &Spec,
    revision: &str,
    rec: &Record,
    observed: &Observed,
    ctx: &Context,
) -> Option<Step> {
    let settings = &ctx.drift.settings;
    let detected = detect(
        spec,
        rec,
        observed,
        observed.live.as_ref(),
        settings,
        &ctx.drift.owned_jobs,
    );
    // Whether the job is down, whatever the policy and the ignore rules say.
    let unfiltered = DriftSettings::default();
    let job_down = detect(
        spec,
        rec,
        observed,
        None,
        &unfiltered,
        &ctx.drift.owned_jobs,
    )
    .items
    .iter()
    .any(|i| i.kind == DriftKind::JobState);

    let mut items: Vec<DriftItem> = if settings.policy == DriftPolicy::Ignore {
        Vec::new()
    } else {
        detected.items.clone()
    };
    if settings.policy != DriftPolicy::Ignore {
        if let Some(d) = &rec.drift {
            items.extend(
                d.items
                    .iter()
                    .filter(|i| detected.unknown.contains_key(&i.kind))
                    .filter(|i| !settings.ignores(&i.path))
                    .cloned(),
            );
        }
    }
    items.sort();
    items.dedup();
    let recorded = rec.drift.as_ref();
    let changed = match recorded {
        None => !items.is_empty(),
        Some(d) => d.items != items || (!items.is_empty() && d.policy != settings.policy),
    };
    if changed {
        return Some(Step::RecordDrift {
            items,
            policy: settings.policy,
            revision: revision.to_string(),
        });
    }
    let heal = settings.policy == DriftPolicy::Heal;
    let job_down_healable = items.iter().any(|i| i.kind == DriftKind::JobState);
    if job_down && !(heal && job_down_healable) {
        return Some(Step::Nothing);
    }
    if !heal || items.is_empty() {
        return None;
    }
    // Not gathered (the observation of a step that just finished, reused): only what the
    // observation itself shows (the job) is acted on; the rest waits for a fresh look.
    if observed.live.is_none() && !job_down_healable {
        return None;
    }
    heal_step(spec, rec, observed, ctx, &items)
}

fn heal_step(
    spec: &Spec,
    rec: &Record,
    observed: &Observed,
    ctx: &Context,
    items: &[DriftItem],
) -> Option<Step> {
    let has = |k: DriftKind| items.iter().any(|i| i.kind == k);
    let session_cluster = matches!(spec, Spec::Deployment(d) if d.is_session_cluster());
    let cluster_ready = observed.cluster.get() == Some(&super::observe::ClusterState::Ready);
    if has(DriftKind::JobState) {
        if spec.kind() == Kind::FlinkSessionJob && !cluster_ready {
            return Some(Step::Wait {
                what: "the session cluster to be ready".to_string(),
            });
        }
        return Some(match decide::newest_state(spec, rec, observed) {
            Ok(restore) => decide::deploy(spec, None, restore, ctx),
            Err(step) => step,
        });
    }
    if session_cluster {
        if ctx.drift.settings.cancel_unmanaged && has(DriftKind::UnmanagedJob) {
            let job_ids: Vec<String> = items
                .iter()
                .filter(|i| i.kind == DriftKind::UnmanagedJob)
                .filter_map(|i| i.subject.clone())
                .collect();
            return Some(Step::CancelUnmanaged { job_ids });
        }
        return None;
    }
    // RUNNING is enough: at a parallelism the job's sources cannot use, some subtasks
    // finish (a source with fewer splits than subtasks) and never all tasks run again.
    let job_running = observed
        .job
        .get()
        .is_some_and(|j| j.state == JobStatus::Running);
    if has(DriftKind::Parallelism) && rescales_in_place(spec) && !job_running {
        // The adaptive scheduler is restarting the job at another parallelism: look again
        // once it runs (redeploying now would throw the rescale away for nothing).
        return None;
    }
    if has(DriftKind::Parallelism) && job_running {
        if let (Some(job_id), true) = (&rec.job_id, rescales_in_place(spec)) {
            let parallelism: BTreeMap<String, u32> = items
                .iter()
                .filter(|i| i.kind == DriftKind::Parallelism)
                .filter_map(|i| {
                    let id = i.subject.as_deref()?.split(' ').next()?.to_string();
                    Some((id, i.expected.parse::<u32>().ok()?))
                })
                .collect();
            return Some(Step::Rescale {
                spec: Box::new(spec.clone()),
                revision: rec.last_reconciled_revision.clone().unwrap_or_default(),
                job_id: job_id.clone(),
                parallelism,
            });
        }
    }
    if has(DriftKind::Parallelism)
        || (rec.kind == Kind::FlinkDeployment
            && (has(DriftKind::Configuration) || has(DriftKind::TaskManagers)))
    {
        return Some(redeploy(spec, rec, observed, ctx));
    }
    None
}

/// Stop the job as its upgrade mode says and start the same spec again from that state.
fn redeploy(spec: &Spec, rec: &Record, observed: &Observed, ctx: &Context) -> Step {
    let alive = observed.job.get().is_some_and(|j| !j.is_terminal());
    match (&rec.job_id, alive) {
        (Some(job_id), true) => decide::stop_step(
            StopPurpose::Upgrade,
            decide::stop_mode(StopPurpose::Upgrade, spec),
            spec,
            job_id,
            ctx,
        ),
        _ => match decide::newest_state(spec, rec, observed) {
            Ok(restore) => decide::deploy(spec, None, restore, ctx),
            Err(step) => step,
        },
    }
}

/// Whether the running job can be rescaled without a restart: Flink 1.18 or later, native
/// mode, `jobmanager.scheduler: adaptive`, in-place scaling not turned off (the conditions
/// of [`super::can_rescale_in_place`] that do not depend on a spec change).
fn rescales_in_place(spec: &Spec) -> bool {
    let Spec::Deployment(d) = spec else {
        return false;
    };
    let cfg = spec.flink_configuration();
    config::lookup_bool(
        cfg,
        &config::OP_INPLACE_SCALING,
        config::DEFAULT_INPLACE_SCALING,
    ) && d.effective_mode() == DeploymentMode::Native
        && d.flink_version.is_none_or(|v| v >= FlinkVersion::V1_18)
        && config::lookup(cfg, &config::SCHEDULER)
            .is_some_and(|(_, v)| v.eq_ignore_ascii_case("adaptive"))
}

#[cfg(test)]
#[path = "drift_tests.rs"]
mod tests;
