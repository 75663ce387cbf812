//! Rendering tests: golden files of the rendered objects for each kind of manifest, and
//! every rendered object round-tripped through its k8s-openapi type.
//!
//! Golden files live in `tests/fixtures/kubernetes/`: `<case>.yaml` is the manifest,
//! `<case>.rendered.yaml` the objects. `FLINK_GITOPS_UPDATE_GOLDEN=1 cargo test --lib
//! kubernetes` rewrites them; review the diff.

use std::path::PathBuf;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::*;
use crate::apply::runtime::{ApplicationJob, ClusterRequest};
use crate::flink::spec::ManifestSet;

const JOB_ID: &str = "0f0e0d0c0b0a09080706050403020100";
const REVISION: &str = "3c1f2e9d8b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubernetes")
}

/// The request the executor would make for the manifest in `<case>.yaml`.
fn request(case: &str, restore: Option<&str>) -> ClusterRequest {
    let file = format!("{case}.yaml");
    let text = std::fs::read_to_string(fixtures().join(&file)).expect("fixture readable");
    let mut set = ManifestSet::default();
    set.add_file(&file, &text);
    assert!(
        !set.has_errors(),
        "{case}: {:?}",
        set.errors().collect::<Vec<_>>()
    );
    let m = set.manifests.first().expect("one manifest");
    let spec = m.as_deployment().expect("a FlinkDeployment").clone();
    let job = spec.job.as_ref().map(|j| ApplicationJob {
        jar_uri: j.jar_uri.clone().unwrap_or_default(),
        entry_class: j.entry_class.clone(),
        args: j.args.clone(),
        job_id: JOB_ID.to_string(),
        parallelism: j.parallelism,
        restore: restore.map(str::to_string),
        allow_non_restored_state: j.allow_non_restored_state.unwrap_or(false),
    });
    ClusterRequest {
        key: m.key.clone(),
        spec,
        job,
        generation: 3,
        revision: None,
    }
}

fn rendered(case: &str, restore: Option<&str>) -> RenderedCluster {
    let req = request(case, restore);
    let owner = Owner {
        name: req.key.name.clone(),
        uid: "5b0e2c1a-7d44-4f3e-9a61-0c2b8e4d9f10".to_string(),
    };
    render(
        &req,
        RenderContext {
            revision: Some(REVISION),
            owner: Some(&owner),
        },
    )
    .expect("renders")
}

const CASES: &[(&str, Option<&str>)] = &[
    (
        "application",
        Some("file:///flink-data/counter/savepoints/savepoint-0f0e0d-1a2b3c4d5e6f"),
    ),
    ("session", None),
    (
        "last-state-ha",
        Some("file:///flink-data/ha-counter/checkpoints/0f0e0d0c0b0a09080706050403020100/chk-7"),
    ),
    ("pod-templates", None),
    ("pod-templates-by-name", None),
];

fn golden(case: &str, restore: Option<&str>) {
    let objects = rendered(case, restore).objects();
    let mut text = String::new();
    for o in &objects {
        text.push_str("---\n");
        text.push_str(&serde_yaml::to_string(o).expect("yaml"));
    }
    let path = fixtures().join(format!("{case}.rendered.yaml"));
    if std::env::var("FLINK_GITOPS_UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &text).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    if want != text {
        let diff = similar::TextDiff::from_lines(&want, &text)
            .unified_diff()
            .header("golden", "rendered")
            .to_string();
        panic!(
            "{case}: rendered objects differ from {} (FLINK_GITOPS_UPDATE_GOLDEN=1 rewrites it):\n{diff}",
            path.display()
        );
    }
}

#[test]
fn golden_application() {
    golden(CASES[0].0, CASES[0].1);
}

#[test]
fn golden_session() {
    golden(CASES[1].0, CASES[1].1);
}

#[test]
fn golden_last_state_with_ha() {
    golden(CASES[2].0, CASES[2].1);
}

#[test]
fn golden_pod_templates() {
    golden(CASES[3].0, CASES[3].1);
}

#[test]
fn golden_pod_templates_merged_by_name() {
    golden(CASES[4].0, CASES[4].1);
}

/// Serialise, read back as the same type, compare: nothing lost or changed.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    case: &str,
    what: &str,
    value: &T,
) {
    let json = serde_json::to_value(value).expect("serialise");
    let back: T = serde_json::from_value(json.clone()).expect("deserialise");
    assert_eq!(&back, value, "{case}: {what} changed through JSON");
    assert_eq!(
        serde_json::to_value(&back).expect("serialise again"),
        json,
        "{case}: {what}"
    );
    let yaml = serde_yaml::to_string(value).expect("yaml");
    let back: T = serde_yaml::from_str(&yaml).expect("from yaml");
    assert_eq!(&back, value, "{case}: {what} changed through YAML");
}

#[test]
fn every_rendered_object_round_trips_through_its_type() {
    for (case, restore) in CASES {
        let r = rendered(case, *restore);
        round_trip::<ConfigMap>(case, "ConfigMap", &r.config_map);
        round_trip::<Deployment>(case, "JobManager Deployment", &r.jobmanager);
        round_trip::<Service>(case, "RPC Service", &r.rpc_service);
        round_trip::<Service>(case, "REST Service", &r.rest_service);
        round_trip::<Deployment>(case, "TaskManager Deployment", &r.taskmanager);
        // And the JSON objects the runtime applies are those same objects.
        let objects = r.objects();
        assert_eq!(objects.len(), 5);
        let jm: Deployment = serde_json::from_value(objects[0].clone()).expect("jm");
        assert_eq!(jm, r.jobmanager);
    }
}

fn main_container(d: &Deployment) -> &k8s_openapi::api::core::v1::Container {
    let spec = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    let last = spec.containers.last().expect("containers");
    assert_eq!(
        last.name,
        render::MAIN_CONTAINER,
        "the main container goes last"
    );
    last
}

#[test]
fn application_jobmanager_runs_the_job_with_its_id_restore_path_and_settings() {
    let r = rendered("application", CASES[0].1);
    let args = main_container(&r.jobmanager)
        .args
        .clone()
        .unwrap_or_default();
    let pos = |a: &str| args.iter().position(|x| x == a);
    assert_eq!(args.first().map(String::as_str), Some("standalone-job"));
    assert_eq!(pos("--job-id").map(|i| args[i + 1].as_str()), Some(JOB_ID));
    assert_eq!(
        pos("--fromSavepoint").map(|i| args[i + 1].as_str()),
        CASES[0].1
    );
    assert!(pos("--allowNonRestoredState").is_some());
    assert_eq!(
        &args[args.len() - 2..],
        ["--output", "/flink-data/counter/out"]
    );
    assert_eq!(
        r.flink_config
            .get("execution.shutdown-on-application-finish")
            .map(String::as_str),
        Some("false")
    );
    // 3 parallel tasks over 2 slots: 2 TaskManagers.
    assert_eq!(
        r.taskmanager.spec.as_ref().and_then(|s| s.replicas),
        Some(2)
    );
    // Memory: the Flink process size and the container's request and limit agree.
    assert_eq!(
        r.flink_config
            .get("jobmanager.memory.process.size")
            .map(String::as_str),
        Some("1024m")
    );
    let res = main_container(&r.jobmanager)
        .resources
        .clone()
        .unwrap_or_default();
    let get = |m: &Option<
        std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
               k: &str| { m.as_ref().and_then(|m| m.get(k)).map(|q| q.0.clone()) };
    assert_eq!(get(&res.requests, "memory").as_deref(), Some("1024Mi"));
    assert_eq!(get(&res.limits, "memory").as_deref(), Some("1024Mi"));
    assert_eq!(get(&res.requests, "cpu").as_deref(), Some("500m"));
}

#[test]
fn session_cluster_and_ports_carry_protocol() {
    let r = rendered("session", None);
    assert_eq!(
        main_container(&r.jobmanager).args.as_deref(),
        Some(&["jobmanager".to_string()][..])
    );
    assert_eq!(
        r.taskmanager.spec.as_ref().and_then(|s| s.replicas),
        Some(2)
    );
    assert!(!r
        .flink_config
        .contains_key("execution.shutdown-on-application-finish"));
    assert_eq!(
        r.flink_config
            .get("jobmanager.rpc.address")
            .map(String::as_str),
        Some("shared-session.default")
    );
    for svc in [&r.rpc_service, &r.rest_service] {
        for p in svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
        {
            assert_eq!(
                p.protocol.as_deref(),
                Some("TCP"),
                "{:?}",
                svc.metadata.name
            );
        }
    }
    for d in [&r.jobmanager, &r.taskmanager] {
        for c in &d
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("spec")
            .containers
        {
            for p in c.ports.iter().flatten() {
                assert_eq!(p.protocol.as_deref(), Some("TCP"));
            }
        }
    }
    assert_eq!(
        r.rest_service.metadata.name.as_deref(),
        Some("shared-session-rest")
    );
}

#[test]
fn everything_but_the_jobmanager_deployment_is_owned_by_it() {
    let r = rendered("session", None);
    assert!(r.jobmanager.metadata.owner_references.is_none());
    for meta in [
        &r.config_map.metadata,
        &r.rpc_service.metadata,
        &r.rest_service.metadata,
        &r.taskmanager.metadata,
    ] {
        let owners = meta.owner_references.as_ref().expect("owner");
        assert_eq!(owners[0].kind, "Deployment");
        assert_eq!(owners[0].name, "shared-session");
    }
    // Without an owner (first apply, before the JobManager Deployment exists) there is none.
    let req = request("session", None);
    let r = render(&req, RenderContext::default()).expect("renders");
    assert!(r.taskmanager.metadata.owner_references.is_none());
}

#[test]
fn jars_outside_the_image_are_rejected() {
    let mut req = request("application", None);
    if let Some(j) = req.job.as_mut() {
        j.jar_uri = "https://example.com/job.jar".into();
    }
    assert_eq!(
        render(&req, RenderContext::default()),
        Err(RenderError::Jar("https://example.com/job.jar".into()))
    );
}
