//! The agent's leadership gate ([`AgentHooks::leadership`]) on the fake Flink: the real
//! controller (`Agent::run`) fetches but takes no step while it follows, deploys once it
//! leads, and ends with `RunEnd::LostLeadership` when the leadership goes or its renew
//! deadline passes without a renewal; a reconcile refuses to act while not leading; a
//! follower that takes over acts on the records its predecessor wrote. The elector itself
//! is tested on the lab API server (`leader_lab`), two agent replicas from the Helm chart
//! on the lab cluster (`deploy_chart`).

use std::sync::Arc;
use std::time::Duration;

use flink_gitops::apply::executor::{
    Agent, AgentHooks, AgentParts, GitStatusStore, ReconcileError, RunEnd,
};
use flink_gitops::config;
use flink_gitops::flink::lifecycle::record::LifecycleState;
use flink_gitops::git::source::{GitSource, RepoLocation};
use flink_gitops::git::status::StatusBranch;
use flink_gitops::leader::LeaderState;
use flink_gitops::telemetry::Telemetry;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::harness::agent_fake::{app_yaml, deployment, JobOpts, World};
use crate::harness::{bin, TempRepo};

/// Generous: the machine is shared.
const WAIT: Duration = Duration::from_secs(60);

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn following() -> LeaderState {
    LeaderState::Following {
        holder: Some("other-replica".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_acts_only_while_it_leads() {
    let w = World::new();
    w.push(&[(
        "apps/a.yaml",
        Some(app_yaml("a", &JobOpts::mode("savepoint"))),
    )]);
    let (lead, leadership) = watch::channel(following());
    let telemetry = Arc::new(Telemetry::new());
    let hooks = AgentHooks {
        telemetry: telemetry.clone(),
        leadership: Some(leadership),
        identity: Some("replica-a_0123abcd".into()),
        ..AgentHooks::default()
    };
    let trigger = hooks.fetch_trigger.clone();
    let agent = w.agent_with(hooks).await;
    let (_stop_tx, stop) = watch::channel(false);
    let run = tokio::spawn(agent.clone().run(stop));
    let ticker = {
        let fake = w.fake.clone();
        tokio::spawn(async move {
            loop {
                fake.settle();
                fake.advance(7);
                fake.checkpoint_all();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // Following: it fetches (three times), but deploys nothing and writes no status.
    for n in 1..=3u64 {
        if n > 1 {
            trigger.request();
        }
        wait_until("a fetch", || telemetry.fetches() >= n).await;
    }
    assert!(
        agent.desired().revision.is_some(),
        "the follower fetched Git"
    );
    assert!(
        w.fake.calls().is_empty(),
        "a follower called Flink: {:?}",
        w.fake.calls()
    );
    assert!(w.store_records().is_empty(), "a follower wrote status");
    assert!(!telemetry.leader());
    assert!(telemetry.encode().contains("flink_gitops_leader 0"));

    // Leading: it deploys.
    lead.send_replace(LeaderState::Leading {
        until: Instant::now() + Duration::from_secs(3600),
    });
    wait_until("a to be stable", || {
        agent
            .records()
            .get(&deployment("a"))
            .is_some_and(|r| r.derive_lifecycle() == LifecycleState::Stable)
    })
    .await;
    assert!(telemetry.leader());
    assert!(telemetry.encode().contains("flink_gitops_leader 1"));
    let log = w.store.log();
    assert!(!log.is_empty());
    for (_, message) in &log {
        assert!(
            message.ends_with("\nAgent: replica-a_0123abcd\n"),
            "every status commit names the agent: {message:?}"
        );
    }

    // The leadership goes: the controller ends, saying why.
    lead.send_replace(following());
    let end = tokio::time::timeout(WAIT, run)
        .await
        .expect("the controller ends when the leadership goes")
        .expect("the controller's task");
    assert_eq!(end, RunEnd::LostLeadership);
    assert!(!telemetry.leader());

    // A leader whose elector stops renewing (hung, or cut off): its last state's deadline
    // alone ends the controller, with no new state sent.
    let (_lead2, leadership2) = watch::channel(LeaderState::Leading {
        until: Instant::now() + Duration::from_millis(500),
    });
    let agent2 = w
        .agent_with(AgentHooks {
            leadership: Some(leadership2),
            ..AgentHooks::default()
        })
        .await;
    let (_stop_tx2, stop2) = watch::channel(false);
    let end = tokio::time::timeout(WAIT, agent2.run(stop2))
        .await
        .expect("the controller ends at the renew deadline");
    assert_eq!(end, RunEnd::LostLeadership);

    // A reconcile refuses to act while not leading (the check before every step).
    let calls = w.fake.calls().len();
    w.push(&[(
        "apps/a.yaml",
        Some(app_yaml(
            "a",
            &JobOpts {
                version: "v2".into(),
                ..JobOpts::mode("savepoint")
            },
        )),
    )]);
    let (_lead3, leadership3) = watch::channel(LeaderState::Unknown);
    let agent3 = w
        .agent_with(AgentHooks {
            leadership: Some(leadership3),
            ..AgentHooks::default()
        })
        .await;
    agent3.sync().await.expect("fetch");
    let result = agent3.reconcile(&deployment("a")).await;
    assert!(
        matches!(result, Err(ReconcileError::NotLeading)),
        "{result:?}"
    );
    assert_eq!(
        w.fake.calls().len(),
        calls,
        "no call to Flink while not leading"
    );
    ticker.abort();
}

/// `status` shows which agent wrote the status branch last: an agent with an identity
/// writes it into every commit on a real Git status branch, and the CLI reads it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_the_agent_that_wrote_last() {
    let repo = TempRepo::new();
    repo.write("README", "status lives on its own branch\n");
    repo.commit("init");
    let cache = tempfile::tempdir().expect("cache");
    let source = GitSource::new(
        RepoLocation::parse(&repo.path().display().to_string()),
        cache.path(),
        Duration::from_secs(30),
    );
    let w = World::new();
    w.push(&[(
        "apps/a.yaml",
        Some(app_yaml("a", &JobOpts::mode("savepoint"))),
    )]);
    let agent = Agent::start_with(
        AgentParts {
            runtime: Arc::new(w.fake.clone()),
            flink: w.fake.clone(),
            storage: Arc::new(w.fake.clone()),
            manifests: w.manifests.clone(),
            status: Arc::new(GitStatusStore::new(StatusBranch::new(
                source,
                config::DEFAULT_STATUS_BRANCH,
            ))),
            env: w.env.clone(),
        },
        w.settings.clone(),
        AgentHooks {
            identity: Some("flink-gitops-5d8f-x2x_89abcdef".into()),
            ..AgentHooks::default()
        },
    )
    .await
    .expect("agent");
    w.settle(&agent).await;
    assert!(agent
        .records()
        .get(&deployment("a"))
        .is_some_and(|r| r.derive_lifecycle() == LifecycleState::Stable));

    let out = std::process::Command::new(bin())
        .args(["status", "--repo"])
        .arg(repo.path())
        .env(config::ENV_CACHE_DIR, cache.path())
        .output()
        .expect("run status");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("last written by agent flink-gitops-5d8f-x2x_89abcdef"),
        "{stdout}"
    );
    eprintln!("{stdout}");
}

/// The sum of `flink_gitops_reconciles_total` over its results.
fn reconciles(telemetry: &Telemetry) -> u64 {
    telemetry
        .encode_text()
        .lines()
        .filter(|l| l.starts_with("flink_gitops_reconciles_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A follower that takes over acts on what the leader before it recorded, not on the copy
/// it read when it started: it starts while the status branch is still empty, another
/// agent deploys the job and records it STABLE, then the follower leads, reads that
/// record, and neither deploys the job again nor writes anything about it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_acts_on_the_records_of_the_one_before() {
    let w = World::new();
    w.push(&[(
        "apps/a.yaml",
        Some(app_yaml("a", &JobOpts::mode("savepoint"))),
    )]);
    let (lead, leadership) = watch::channel(following());
    let telemetry = Arc::new(Telemetry::new());
    let follower = w
        .agent_with(AgentHooks {
            telemetry: telemetry.clone(),
            leadership: Some(leadership),
            identity: Some("replica-b_89abcdef".into()),
            ..AgentHooks::default()
        })
        .await;
    assert!(follower.records().is_empty(), "nothing recorded yet");
    let (_stop_tx, stop) = watch::channel(false);
    let run = tokio::spawn(follower.clone().run(stop));

    // The first leader deploys the job and records it STABLE.
    let first = w.agent().await;
    w.settle(&first).await;
    let stable = w.store_records();
    assert_eq!(
        stable.get(&deployment("a")).map(|r| r.derive_lifecycle()),
        Some(LifecycleState::Stable)
    );
    let calls = w.fake.calls();
    let commits = w.store.log().len();

    // The follower takes over and reconciles.
    lead.send_replace(LeaderState::Leading {
        until: Instant::now() + Duration::from_secs(3600),
    });
    wait_until("a reconcile by the new leader", || {
        reconciles(&telemetry) >= 1
    })
    .await;
    assert_eq!(
        w.fake.calls(),
        calls,
        "the new leader acted on the job again"
    );
    assert_eq!(w.store.log().len(), commits, "{:?}", w.store.log());
    assert_eq!(
        follower.records().get(&deployment("a")),
        stable.get(&deployment("a")),
        "the new leader holds the record the first one wrote"
    );
    run.abort();
}
