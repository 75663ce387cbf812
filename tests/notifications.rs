//! Notifications against a local HTTP server ([`SinkServer`]): the agent's lifecycle
//! events (derived from its record writes) and the drift events (emitted through
//! `Notifier::emit`, as the drift check does), delivered to a generic webhook (JSON,
//! signed) and a Slack-compatible one, filtered by event and resource; a sink that is down
//! for a while gets everything once it is back, while the loop goes on; a full queue drops
//! its oldest, counted.

use std::sync::Arc;
use std::time::Duration;

use flink_gitops::apply::executor::AgentHooks;
use flink_gitops::flink::lifecycle::record::{reason, LifecycleState};
use flink_gitops::flink::spec::ResourceKey;
use flink_gitops::notify::config::RetryPolicy;
use flink_gitops::notify::{Event, EventKind, Notifier, NotifyConfig};
use flink_gitops::telemetry::{NotificationResult, Telemetry};

use crate::harness::agent_fake::{app_yaml, deployment, JobOpts, World};
use crate::harness::fake_flink::JobMatch;
use crate::harness::http_sink::{free_port, Received, SinkServer};

const SECRET: &str = "n0tify-s3cret";
const WAIT: Duration = Duration::from_secs(30);

fn config(text: &str) -> NotifyConfig {
    NotifyConfig::parse(text, |var| {
        (var == "NOTIFY_SECRET").then(|| SECRET.to_string())
    })
    .expect("a valid notifications file")
}

fn fast_retry(mut c: NotifyConfig) -> NotifyConfig {
    c.retry = RetryPolicy {
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
        max_attempts: 10_000,
    };
    c
}

fn file(name: &str) -> String {
    format!("apps/{name}.yaml")
}

fn job_opts(version: &str, state: &'static str) -> JobOpts {
    JobOpts {
        version: version.to_string(),
        state,
        // Rollback (needs HA) after a readiness timeout of a few world seconds.
        config: vec![
            (
                "kubernetes.operator.deployment.rollback.enabled".into(),
                "true".into(),
            ),
            (
                "kubernetes.operator.deployment.readiness.timeout".into(),
                "5 s".into(),
            ),
            ("high-availability.type".into(), "kubernetes".into()),
            (
                "high-availability.storageDir".into(),
                "file:///fake/ha".into(),
            ),
        ],
        ..JobOpts::mode("savepoint")
    }
}

fn generic(received: &[Received]) -> Vec<serde_json::Value> {
    received
        .iter()
        .filter(|r| r.path == "/generic")
        .map(Received::json)
        .collect()
}

/// Every event type reaches a generic webhook with its fields and a valid signature, and
/// a Slack-compatible one as readable text; the lifecycle events come from the agent's
/// own record writes (deploy, upgrade, a failed savepoint, suspend, resume, a failed job,
/// a rolled-back upgrade), the drift events through `emit`. A filtered sink gets only
/// what its filter names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_every_event_type_delivered_with_its_fields() {
    let server = SinkServer::start().await;
    let telemetry = Arc::new(Telemetry::new());
    let c = config(&format!(
        "sinks:\n  - name: audit\n    type: webhook\n    url: {}\n    secretEnv: NOTIFY_SECRET\n  - name: chat\n    type: slack\n    url: {}\n  - name: pager\n    type: webhook\n    url: {}\n    events: [failed, rolled-back]\n    resources: [\"default/pay*\"]\n",
        server.url("/generic"),
        server.url("/slack"),
        server.url("/pager"),
    ));
    let notifier = Notifier::start(c, telemetry.clone()).expect("notifier");
    let hooks = AgentHooks {
        telemetry: telemetry.clone(),
        notifier: notifier.clone(),
        ..AgentHooks::default()
    };
    let w = World::new();
    let agent = w.agent_with(hooks).await;
    let key = deployment("payments");

    // deployed
    w.push(&[(
        &file("payments"),
        Some(app_yaml("payments", &job_opts("v1", "running"))),
    )]);
    w.settle(&agent).await;
    // upgraded
    w.push(&[(
        &file("payments"),
        Some(app_yaml("payments", &job_opts("v2", "running"))),
    )]);
    w.settle(&agent).await;
    // savepoint-failed: a manual savepoint that Flink fails.
    w.fake.fail_next_savepoints(&key, 1);
    let mut o = job_opts("v2", "running");
    o.savepoint_nonce = Some(1);
    w.push(&[(&file("payments"), Some(app_yaml("payments", &o)))]);
    w.settle(&agent).await;
    // suspended, then deployed again (resumed)
    o.state = "suspended";
    w.push(&[(&file("payments"), Some(app_yaml("payments", &o)))]);
    w.settle(&agent).await;
    o.state = "running";
    w.push(&[(&file("payments"), Some(app_yaml("payments", &o)))]);
    w.settle(&agent).await;
    // failed
    let job = w.the_running_job(&key);
    w.fake.fail_job(&job.id, "boom: the job threw");
    w.settle(&agent).await;
    assert_eq!(w.record(&key).lifecycle_state, LifecycleState::Failed);
    // rolled-back: an upgrade whose job fails at start, past the readiness timeout.
    w.fake
        .fail_new_jobs(JobMatch::Arg("v3".into()), None, "boom: v3 cannot start");
    o.version = "v3".into();
    w.push(&[(&file("payments"), Some(app_yaml("payments", &o)))]);
    for _ in 0..20 {
        w.round(&agent).await;
        w.pass_time();
        if w.record(&key).lifecycle_state == LifecycleState::RolledBack {
            break;
        }
    }
    assert_eq!(
        w.record(&key).lifecycle_state,
        LifecycleState::RolledBack,
        "{:#?}",
        w.record(&key)
    );
    // drift-detected and drift-healed, as the drift check emits them.
    let rev = w.head();
    for (kind, message) in [
        (EventKind::DriftDetected, "job parallelism 2, Git says 1"),
        (EventKind::DriftHealed, "rescaled back to 1"),
    ] {
        agent.notifier().emit(Event {
            kind,
            resource: key.clone(),
            revision: Some(rev.clone()),
            lifecycle_state: LifecycleState::Stable,
            reason: None,
            message: message.into(),
            time: "2026-06-01T00:00:00.000Z".into(),
        });
    }

    assert_eq!(
        notifier.flush(WAIT).await,
        0,
        "every notification delivered"
    );
    let received = server.received();
    let bodies = generic(&received);
    let kinds: Vec<&str> = bodies.iter().filter_map(|b| b["type"].as_str()).collect();
    for kind in EventKind::ALL {
        assert!(kinds.contains(&kind.as_str()), "no {kind} among {kinds:?}");
    }
    // Order of the lifecycle: deployed before upgraded before suspended before failed.
    let pos = |k: &str| kinds.iter().position(|x| *x == k).unwrap_or(usize::MAX);
    assert!(pos("deployed") < pos("upgraded"), "{kinds:?}");
    assert!(pos("upgraded") < pos("savepoint-failed"), "{kinds:?}");
    assert!(pos("savepoint-failed") < pos("suspended"), "{kinds:?}");
    assert!(pos("suspended") < pos("failed"), "{kinds:?}");
    assert!(pos("failed") < pos("rolled-back"), "{kinds:?}");

    // Fields of each.
    for (body, raw) in bodies
        .iter()
        .zip(received.iter().filter(|r| r.path == "/generic"))
    {
        assert_eq!(body["resource"]["name"], "payments", "{body}");
        assert_eq!(body["resource"]["namespace"], "default", "{body}");
        assert_eq!(body["resource"]["kind"], "FlinkDeployment", "{body}");
        assert!(body["lifecycleState"].is_string(), "{body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        assert!(
            body["time"]
                .as_str()
                .is_some_and(|t| humantime::parse_rfc3339_weak(t).is_ok()),
            "{body}"
        );
        assert!(
            body["revision"].as_str().is_some_and(|r| r.len() == 40),
            "{body}"
        );
        let sig = raw
            .headers
            .get("x-flink-gitops-signature")
            .cloned()
            .unwrap_or_default();
        assert!(
            flink_gitops::signature::verify(SECRET.as_bytes(), &raw.body, &sig),
            "signature {sig:?} over {body}"
        );
        assert_eq!(
            raw.headers.get("x-flink-gitops-event").map(String::as_str),
            body["type"].as_str()
        );
    }
    let by = |k: &str| {
        bodies
            .iter()
            .find(|b| b["type"] == k)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(by("deployed")["lifecycleState"], "STABLE");
    assert_eq!(by("upgraded")["lifecycleState"], "STABLE");
    assert_eq!(by("suspended")["lifecycleState"], "SUSPENDED");
    assert_eq!(by("rolled-back")["lifecycleState"], "ROLLED_BACK");
    assert_eq!(by("savepoint-failed")["reason"], reason::SAVEPOINT_FAILED);
    assert_eq!(by("failed")["lifecycleState"], "FAILED");
    assert!(
        by("failed")["message"]
            .as_str()
            .is_some_and(|m| m.contains("boom: the job threw")),
        "{}",
        by("failed")
    );
    assert_eq!(
        by("drift-detected")["message"],
        "job parallelism 2, Git says 1"
    );

    // Slack: one readable text per event, no signature.
    let slack: Vec<String> = received
        .iter()
        .filter(|r| r.path == "/slack")
        .map(|r| r.json()["text"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(slack.len(), bodies.len());
    assert!(
        slack
            .iter()
            .any(|t| t.contains("*upgraded* FlinkDeployment `default/payments`")),
        "{slack:#?}"
    );
    // The filtered sink: only failed and rolled-back (the resource matches its pattern).
    let pager: Vec<String> = generic_path(&received, "/pager");
    assert!(!pager.is_empty());
    assert!(
        pager.iter().all(|k| k == "failed" || k == "rolled-back"),
        "{pager:?}"
    );
    assert_eq!(
        telemetry.notifications("audit", NotificationResult::delivered),
        bodies.len() as u64
    );
}

fn generic_path(received: &[Received], path: &str) -> Vec<String> {
    received
        .iter()
        .filter(|r| r.path == path)
        .filter_map(|r| r.json()["type"].as_str().map(str::to_string))
        .collect()
}

/// The sink refuses connections (nothing listens on its port) while the agent deploys
/// and upgrades a job: both finish (the loop is not held by delivery), nothing is
/// delivered, and the notifications wait in the queue. Once a server listens on the
/// port, both arrive, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_wait_for_a_sink_that_is_down_without_holding_the_loop() {
    let port = free_port();
    let telemetry = Arc::new(Telemetry::new());
    let c = fast_retry(config(&format!(
        "sinks:\n  - name: audit\n    type: webhook\n    url: http://127.0.0.1:{port}/hook\n"
    )));
    let notifier = Notifier::start(c, telemetry.clone()).expect("notifier");
    let w = World::new();
    let agent = w
        .agent_with(AgentHooks {
            telemetry: telemetry.clone(),
            notifier: notifier.clone(),
            ..AgentHooks::default()
        })
        .await;
    let key = deployment("orders");
    let opts = |v: &str| JobOpts {
        version: v.into(),
        ..JobOpts::mode("savepoint")
    };
    w.push(&[(&file("orders"), Some(app_yaml("orders", &opts("v1"))))]);
    w.settle(&agent).await;
    w.push(&[(&file("orders"), Some(app_yaml("orders", &opts("v2"))))]);
    w.settle(&agent).await;
    // The loop went on: the upgrade is done while the sink is down.
    assert_eq!(w.record(&key).lifecycle_state, LifecycleState::Stable);
    assert_eq!(w.the_running_job(&key).args, vec!["--version", "v2"]);
    // Let a few retries fail.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        telemetry.notifications("audit", NotificationResult::delivered),
        0
    );
    assert_eq!(notifier.pending(), 2, "deployed and upgraded wait");

    let server = SinkServer::start_on(port).await;
    let got = server.wait_for(2, WAIT).await;
    let kinds: Vec<String> = got
        .iter()
        .filter_map(|r| r.json()["type"].as_str().map(str::to_string))
        .collect();
    assert_eq!(kinds, ["deployed", "upgraded"]);
    assert_eq!(notifier.flush(WAIT).await, 0);
    assert_eq!(
        telemetry.notifications("audit", NotificationResult::delivered),
        2
    );
    assert_eq!(
        telemetry.notifications("audit", NotificationResult::failed),
        0
    );
}

/// A full queue drops its oldest notification, logged and counted, never silently; the
/// newest are delivered once the sink is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_full_queue_drops_the_oldest_and_counts_it() {
    let port = free_port();
    let telemetry = Arc::new(Telemetry::new());
    let c = fast_retry(config(&format!(
        "sinks:\n  - name: small\n    type: webhook\n    url: http://127.0.0.1:{port}/hook\nqueueSize: 2\n"
    )));
    let notifier = Notifier::start(c, telemetry.clone()).expect("notifier");
    let key = ResourceKey::new(
        "default",
        flink_gitops::flink::spec::Kind::FlinkDeployment,
        "a",
    );
    for i in 0..6 {
        notifier.emit(Event {
            kind: EventKind::DriftDetected,
            resource: key.clone(),
            revision: None,
            lifecycle_state: LifecycleState::Stable,
            reason: None,
            message: format!("drift {i}"),
            time: "2026-06-01T00:00:00.000Z".into(),
        });
    }
    // One is taken by the sink's task (retrying), two wait; the rest were pushed out.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let dropped = telemetry.notifications("small", NotificationResult::dropped);
    assert!(dropped >= 3, "dropped {dropped}");
    let server = SinkServer::start_on(port).await;
    assert_eq!(notifier.flush(WAIT).await, 0);
    let got: Vec<String> = server
        .received()
        .iter()
        .map(|r| r.json()["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(got.len() as u64 + dropped, 6, "{got:?}");
    assert_eq!(got.last().map(String::as_str), Some("drift 5"), "{got:?}");
    assert_eq!(
        telemetry.notifications("small", NotificationResult::delivered),
        got.len() as u64
    );
}
