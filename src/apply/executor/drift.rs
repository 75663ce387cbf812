//! Drift, the I/O side: the live facts drift detection reads ([`gather`]), the drift settings
//! and owned job ids `decide` gets ([`context`]), and the one place the agent learns that
//! a resource's recorded drift changed ([`drift_changed`]). The comparison and the policy
//! are pure: [`crate::flink::lifecycle::drift`].

use std::collections::BTreeMap;

use crate::flink::lifecycle::drift::{
    owned_jobs, Drift, DriftContext, DriftPolicy, DriftSettings, Live, LiveJob, LiveVertex,
};
use crate::flink::lifecycle::observe::Evidence;
use crate::flink::lifecycle::record::Record;
use crate::flink::rest::{FlinkApi, JobOverview};
use crate::flink::spec::{Kind, Manifest, ResourceKey};
use crate::notify::{Event, EventKind};

/// The live facts of a resource at rest, from what the observation already asked
/// (`listed`: the cluster's job list; `vertices`: the recorded job's vertices; the
/// TaskManagers registered and expected) plus the JobManager's configuration for a
/// FlinkDeployment's own cluster (one `GET /jobmanager/config`). `api` is `None` when the
/// cluster's REST API could not be reached: then everything is unknown.
pub(super) async fn gather<A: FlinkApi>(
    api: Option<&A>,
    rec: &Record,
    own_cluster: bool,
    listed: Option<Evidence<Vec<JobOverview>>>,
    vertices: Option<Evidence<Vec<LiveVertex>>>,
    task_managers: Option<(u32, u32)>,
) -> Live {
    let Some(api) = api else {
        let why = "the cluster's REST API is not reachable";
        return Live {
            vertices: Evidence::unknown(why),
            jobmanager_config: Evidence::unknown(why),
            task_managers: None,
            jobs: Evidence::unknown(why),
        };
    };
    let jobs = match listed {
        None => Evidence::unknown("not asked"),
        Some(Evidence::Unknown { error }) => Evidence::unknown(error),
        Some(Evidence::Absent) => Evidence::Absent,
        Some(Evidence::Present { value: jobs }) => Evidence::present(
            jobs.iter()
                .map(|j| LiveJob {
                    job_id: j.jid.to_string(),
                    name: j.name.clone(),
                    state: j.state,
                })
                .collect(),
        ),
    };
    let jobmanager_config = if own_cluster && rec.kind == Kind::FlinkDeployment {
        match api.jobmanager_config().await {
            Ok(c) => Evidence::present(c),
            Err(e) => Evidence::unknown(e.to_string()),
        }
    } else {
        Evidence::Absent
    };
    Live {
        vertices: vertices.unwrap_or(Evidence::Absent),
        jobmanager_config,
        task_managers: task_managers.filter(|_| own_cluster),
        jobs,
    }
}

/// What `decide` needs about drift for `key`: its settings (the manifest's annotations over
/// the agent's default policy, the repository's ignore rules) and, for a session cluster,
/// the job ids its session jobs' records name (running, or in flight: a submit writes its
/// job id before it sends it, so a job the cluster lists is in a record read after).
pub(super) fn context(
    key: &ResourceKey,
    manifest: Option<&Manifest>,
    default: DriftPolicy,
    repo_ignore: &[String],
    records: &BTreeMap<ResourceKey, Record>,
) -> DriftContext {
    let settings = match manifest {
        Some(m) => DriftSettings::of_manifest(default, &m.annotations, repo_ignore).0,
        None => DriftSettings {
            policy: default,
            ..DriftSettings::default()
        },
    };
    let owned_jobs = owned_jobs(key, records);
    DriftContext {
        settings,
        owned_jobs,
    }
}

/// Called once each time a resource's recorded drift changes, after the record is on the
/// status branch: drift detected (`before` none), changed, or gone (`after` none; healed
/// when the policy was `heal`). The one place to hang a "drifted resources" gauge and
/// drift-detected / drift-healed notifications on.
pub(super) fn drift_changed(
    hooks: &super::AgentHooks,
    rec: &Record,
    before: Option<&Drift>,
    after: Option<&Drift>,
    now: &str,
) {
    hooks.telemetry.set_drifted(&rec.key(), after.is_some());
    let items = |d: &Drift| {
        d.items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    };
    match (before, after) {
        (_, Some(d)) => {
            tracing::warn!(
                resource = %rec.key(),
                policy = %d.policy,
                since = %d.since,
                revision = %d.revision,
                items = %items(d),
                "drift"
            );
            // A new or different drift is news; the same drift written again is not.
            if before.map(|b| &b.items) != Some(&d.items) {
                hooks.notifier.emit(Event::for_record(
                    EventKind::DriftDetected,
                    rec,
                    Some(format!("policy {}", d.policy)),
                    items(d),
                    now,
                ));
            }
        }
        (Some(d), None) => {
            tracing::info!(
                resource = %rec.key(),
                policy = %d.policy,
                since = %d.since,
                "drift gone"
            );
            if d.policy == DriftPolicy::Heal {
                hooks.notifier.emit(Event::for_record(
                    EventKind::DriftHealed,
                    rec,
                    Some(format!("policy {}", d.policy)),
                    items(d),
                    now,
                ));
            }
        }
        (None, None) => {}
    }
}
