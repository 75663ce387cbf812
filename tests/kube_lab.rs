//! The Kubernetes runtime against the real lab cluster (`scripts/kube-lab`): a real API
//! server, a real kubelet, real Flink pods from the locally built image.
//!
//! Skipped, with a message saying how to build it, when the lab is not built
//! (`scripts/setup.sh --kube`). The test starts the cluster when it is not running and
//! stops it again afterwards; a cluster that was running is left running.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use flink_gitops::apply::kubernetes::{KubernetesRuntime, KubernetesSettings, RestAccess};
use flink_gitops::apply::runtime::{ApplicationJob, ClusterPresence, ClusterRequest, Runtime};
use flink_gitops::flink::spec::ManifestSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;

use crate::harness::kube::{kube_slot, node_ip, wait_until, Lab, TestNamespace};

fn request(yaml: &str, generation: u64) -> ClusterRequest {
    let mut set = ManifestSet::default();
    set.add_file("smoke.yaml", yaml);
    assert!(!set.has_errors(), "{:?}", set.errors().collect::<Vec<_>>());
    let m = &set.manifests[0];
    ClusterRequest {
        key: m.key.clone(),
        spec: m.as_deployment().expect("FlinkDeployment").clone(),
        job: None,
        generation,
        revision: None,
    }
}

/// A session cluster on the host network (the lab has no DNS and no kube-proxy: the
/// TaskManager dials the JobManager at the node's address).
fn session_manifest(
    ns: &str,
    name: &str,
    image: &str,
    node_ip: &str,
    rest: u16,
    rpc: u16,
) -> String {
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: {name}
  namespace: {ns}
spec:
  mode: standalone
  image: {image}
  imagePullPolicy: Never
  flinkVersion: v2_3
  flinkConfiguration:
    taskmanager.numberOfTaskSlots: "1"
    kubernetes.hostnetwork.enabled: "true"
    jobmanager.rpc.address: {node_ip}
    rest.port: "{rest}"
    jobmanager.rpc.port: "{rpc}"
    kubernetes.jobmanager.cpu.limit-factor: "4"
    kubernetes.taskmanager.cpu.limit-factor: "4"
  podTemplate:
    spec:
      hostNetwork: true
      terminationGracePeriodSeconds: 5
  jobManager:
    resource: {{memory: 1g, cpu: 0.5}}
  taskManager:
    replicas: 1
    resource: {{memory: 1g, cpu: 0.5}}
"#
    )
}

// The lab slot is a std mutex held across awaits on purpose: it orders whole tests.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_runtime_on_the_lab_cluster() {
    let Some(lab) = Lab::start() else { return };
    let _slot = kube_slot();
    let client = lab.client().await;
    let node_ip = node_ip(&client).await;
    let namespace = TestNamespace::create(&lab, &client, "fg-smoke").await;
    let ns = namespace.name.clone();
    let runtime = KubernetesRuntime::with_client(
        client.clone(),
        KubernetesSettings {
            rest_access: RestAccess::Host(node_ip.clone()),
            jar_root: PathBuf::from("/nonexistent"),
        },
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("http client");

    // Nothing deployed yet: positive evidence of no cluster.
    let good = request(
        &session_manifest(
            &ns,
            "smoke",
            "flink-gitops.local/flink:2.3",
            &node_ip,
            28081,
            26123,
        ),
        1,
    );
    assert_eq!(
        runtime.observe_cluster(&good.key).await.expect("observe"),
        ClusterPresence::Missing
    );

    // A session cluster: Running with its generation, REST answers with one TaskManager.
    let t0 = Instant::now();
    runtime.deploy_cluster(good.clone()).await.expect("deploy");
    let presence = wait_until(
        "cluster Running",
        Duration::from_secs(120),
        async || match runtime.observe_cluster(&good.key).await {
            Ok(p @ ClusterPresence::Running { .. }) => Some(p),
            Ok(ClusterPresence::Exited { reason }) => panic!("cluster failed: {reason}"),
            _ => None,
        },
    )
    .await;
    assert_eq!(
        presence,
        ClusterPresence::Running {
            task_managers: 1,
            generation: Some(1)
        }
    );
    let url = runtime
        .rest_url(&good.key)
        .await
        .expect("rest url")
        .expect("a REST address");
    assert_eq!(url, format!("http://{node_ip}:28081"));
    let overview = wait_until(
        "REST with a TaskManager",
        Duration::from_secs(180),
        async || {
            let r = http.get(format!("{url}/overview")).send().await.ok()?;
            let v: serde_json::Value = r.json().await.ok()?;
            // A TaskManager shows in the overview a moment before its slots do.
            (v["taskmanagers"].as_u64()? >= 1 && v["slots-total"].as_u64()? >= 1).then_some(v)
        },
    )
    .await;
    eprintln!(
        "smoke: apply to REST with {} TaskManager(s) in {:.1}s",
        overview["taskmanagers"],
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(overview["slots-total"].as_u64(), Some(1));

    // An application cluster: the stateful test job from the image runs under its fixed id.
    let job_id = "00000000000000000000000000c0ffee";
    let mut app = request(
        &session_manifest(
            &ns,
            "smoke-app",
            "flink-gitops.local/flink:2.3",
            &node_ip,
            28083,
            26125,
        ),
        1,
    );
    app.job = Some(ApplicationJob {
        jar_uri: "local:///opt/flink/usrlib/stateful-counter.jar".into(),
        entry_class: Some("lab.StatefulCounterJob".into()),
        args: vec!["--out".into(), "/tmp/smoke-app.out".into()],
        job_id: job_id.into(),
        parallelism: Some(1),
        restore: None,
        allow_non_restored_state: false,
    });
    let t0 = Instant::now();
    runtime
        .deploy_cluster(app.clone())
        .await
        .expect("deploy application");
    let app_url = runtime
        .rest_url(&app.key)
        .await
        .expect("rest url")
        .expect("a REST address");
    wait_until(
        "the application job RUNNING",
        Duration::from_secs(180),
        async || {
            if let Ok(ClusterPresence::Exited { reason }) = runtime.observe_cluster(&app.key).await
            {
                panic!("application cluster failed: {reason}");
            }
            let r = http
                .get(format!("{app_url}/jobs/{job_id}"))
                .send()
                .await
                .ok()?;
            let v: serde_json::Value = r.json().await.ok()?;
            (v["state"].as_str()? == "RUNNING").then_some(())
        },
    )
    .await;
    eprintln!(
        "smoke: apply to application job RUNNING in {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    // The node's two CPUs are all requested now: a third cluster waits for a node, which
    // is an error (unknown, retried), not a failed cluster.
    let bad = request(
        &session_manifest(
            &ns,
            "bad-image",
            "flink-gitops.local/absent:0",
            &node_ip,
            28082,
            26124,
        ),
        1,
    );
    runtime
        .deploy_cluster(bad.clone())
        .await
        .expect("deploy bad");
    let waiting = wait_until(
        "the unschedulable pod reported",
        Duration::from_secs(60),
        async || match runtime.observe_cluster(&bad.key).await {
            Err(e) => Some(e),
            Ok(ClusterPresence::Exited { reason }) => panic!("scheduled after all: {reason}"),
            Ok(_) => None,
        },
    )
    .await;
    assert!(waiting.is_transient(), "{waiting}");
    let text = waiting.to_string();
    assert!(
        text.contains("Pending") && text.contains("Insufficient cpu"),
        "{text}"
    );

    // Flink's HA ConfigMaps outlive a deletion (a last-state upgrade restores from them).
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    configmaps
        .patch(
            "smoke-cluster-config-map",
            &PatchParams::apply("flink-test").force(),
            &Patch::Apply(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "smoke-cluster-config-map", "labels": {"app": "smoke", "type": "flink-native-kubernetes"}},
                "data": {"leader": "x"}})),
        )
        .await
        .expect("HA ConfigMap stand-in");

    // Removing the two running clusters: gone at once (positive evidence), and the third
    // one's pods get a node.
    for r in [&good, &app] {
        runtime.delete_cluster(&r.key).await.expect("delete");
        assert_eq!(
            runtime
                .observe_cluster(&r.key)
                .await
                .expect("observe after delete"),
            ClusterPresence::Missing
        );
    }

    // A cluster whose image is not there: Exited, the pod and container named.
    let reason = wait_until(
        "the bad image reported",
        Duration::from_secs(180),
        async || match runtime.observe_cluster(&bad.key).await {
            Ok(ClusterPresence::Exited { reason }) => Some(reason),
            _ => None,
        },
    )
    .await;
    assert!(reason.contains("ErrImageNeverPull"), "{reason}");
    assert!(reason.contains("pod bad-image-"), "{reason}");
    assert!(
        reason.contains("container flink-main-container"),
        "{reason}"
    );

    for r in [&good, &app, &bad] {
        runtime.delete_cluster(&r.key).await.expect("delete");
        assert_eq!(
            runtime
                .observe_cluster(&r.key)
                .await
                .expect("observe after delete"),
            ClusterPresence::Missing
        );
        // Deleting what is gone succeeds.
        runtime.delete_cluster(&r.key).await.expect("delete again");
    }
    assert!(configmaps
        .get_opt("smoke-cluster-config-map")
        .await
        .expect("get")
        .is_some());
    assert!(configmaps
        .get_opt("flink-config-smoke")
        .await
        .expect("get")
        .is_none());

    // An API server that does not answer: unknown, never missing.
    let mut cfg = kube::Config::new("https://127.0.0.1:1".parse().expect("url"));
    cfg.connect_timeout = Some(Duration::from_secs(2));
    cfg.read_timeout = Some(Duration::from_secs(2));
    let dead = KubernetesRuntime::with_client(
        Client::try_from(cfg).expect("client"),
        KubernetesSettings {
            rest_access: RestAccess::ServiceDns,
            jar_root: PathBuf::from("/nonexistent"),
        },
    );
    let err = dead
        .observe_cluster(&good.key)
        .await
        .expect_err("no answer is an error");
    assert!(err.is_transient(), "{err}");
}
