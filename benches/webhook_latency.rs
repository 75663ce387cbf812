//! Push to first action: through a webhook against through the poll, in the same run.
//!
//! The real agent (`Agent::run`, the default 15 s interval, the default 100 ms fast poll)
//! deploys one application from a real Git repository (`GitManifests` on a local
//! repository: every fetch is a real `git fetch`) onto the fake Flink served over HTTP on
//! loopback (`tests/harness/fake_http.rs`, the real `FlinkRestClient`), with its HTTP server
//! ([`flink_gitops::serve`]) on 127.0.0.1 and a webhook secret. Each trial commits a new
//! version of the job and takes the time until the fake logs the first external call of
//! the upgrade (its stop-with-savepoint, the fake's step counter):
//!
//! * **webhook**: right after the commit, a GitHub push event (signed, over HTTP) is
//!   posted to `/webhook`; the fetch loop wakes, waits the debounce (200 ms), fetches;
//! * **poll**: nothing is posted; the next interval's fetch finds the commit. The commit
//!   is made at a pseudo-random point of the interval (a sleep of 0 to 15 s first), so the
//!   figures spread over the interval as pushes do.
//!
//! Trials alternate (webhook, poll, webhook, ...), each after the previous upgrade has
//! finished. Printed: min / median / max per path and the ratio of medians. Nothing is
//! asserted on time.
//!
//! Run with `cargo bench --bench webhook_latency`. Environment: `WEBHOOK_BENCH_TRIALS`
//! (trials per path, default 4; a poll trial takes 15 s on average).

#[path = "../tests/harness/fake_flink.rs"]
mod fake_flink;
#[path = "../tests/harness/fake_http.rs"]
mod fake_http;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flink_gitops::apply::executor::{
    Agent, AgentHooks, AgentParts, AgentSettings, GitManifests, MemoryStatusStore,
    SystemEnvironment,
};
use flink_gitops::apply::runtime::Runtime;
use flink_gitops::config;
use flink_gitops::flink::lifecycle::record::LifecycleState;
use flink_gitops::flink::rest::HttpFlink;
use flink_gitops::flink::spec::{Kind, ResourceKey};
use flink_gitops::git::source::{GitSource, RepoLocation};
use flink_gitops::serve::{self, ServeState, WebhookSettings};
use flink_gitops::signature;
use flink_gitops::telemetry::Telemetry;

use fake_flink::{FakeFlink, FAKE_STATE_ROOT};
use fake_http::FakeHttp;

const SECRET: &str = "bench-secret";
const NAME: &str = "orders";

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn manifest(version: u32) -> String {
    format!(
        "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: {NAME}\n  namespace: default\nspec:\n  flinkVersion: v2_3\n  serviceAccount: flink\n  flinkConfiguration:\n    taskmanager.numberOfTaskSlots: \"1\"\n    state.savepoints.dir: {FAKE_STATE_ROOT}/savepoints/default/{NAME}\n    execution.checkpointing.dir: {FAKE_STATE_ROOT}/checkpoints/default/{NAME}\n  jobManager:\n    resource: {{memory: 1g, cpu: 1}}\n  taskManager:\n    resource: {{memory: 1g, cpu: 1}}\n  job:\n    jarURI: local:///opt/flink/usrlib/counter.jar\n    entryClass: lab.StatefulCounterJob\n    parallelism: 1\n    upgradeMode: savepoint\n    state: running\n    args: [\"--version\", \"v{version}\"]\n"
    )
}

fn commit(dir: &Path, version: u32) {
    std::fs::write(dir.join("orders.yaml"), manifest(version)).expect("write");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", &format!("v{version}")]);
}

fn stats(xs: &[Duration]) -> (f64, f64, f64) {
    let mut v: Vec<f64> = xs.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(f64::total_cmp);
    let median = if v.is_empty() {
        f64::NAN
    } else if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    (
        v.first().copied().unwrap_or(f64::NAN),
        median,
        v.last().copied().unwrap_or(f64::NAN),
    )
}

/// A pseudo-random fraction in [0, 1) (no rand dependency: the clock's nanoseconds).
fn fraction() -> f64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from((n / 1000) % 1000) / 1000.0
}

fn main() {
    let trials: usize = std::env::var("WEBHOOK_BENCH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let interval = config::DEFAULT_SYNC_INTERVAL;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).expect("mkdir");
        git(&repo, &["init", "-q", "-b", "main"]);
        commit(&repo, 1);

        let fake = FakeFlink::new();
        let _server = FakeHttp::start(&fake).await;
        let placeholder = ResourceKey::new("default", Kind::FlinkDeployment, "x");
        let manifests = GitManifests {
            source: GitSource::new(
                RepoLocation::parse(&repo.display().to_string()),
                &dir.path().join("cache"),
                Duration::from_secs(60),
            ),
            branch: "main".into(),
            path: None,
            default_configuration: fake.default_configuration(&placeholder),
            operator_version: None,
        };
        let telemetry = Arc::new(Telemetry::new());
        let hooks = AgentHooks {
            telemetry: telemetry.clone(),
            ..AgentHooks::default()
        };
        let trigger = hooks.fetch_trigger.clone();
        let agent = Agent::start_with(
            AgentParts {
                runtime: Arc::new(fake.clone()),
                flink: HttpFlink::default(),
                storage: Arc::new(fake.clone()),
                manifests: Arc::new(manifests),
                status: Arc::new(MemoryStatusStore::new()),
                env: Arc::new(SystemEnvironment::default()),
            },
            AgentSettings::default(),
            hooks,
        )
        .await
        .expect("agent");
        let listener = serve::bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(serve::serve(
            listener,
            ServeState {
                telemetry: telemetry.clone(),
                trigger,
                webhook: Some(Arc::new(WebhookSettings {
                    secret: SECRET.as_bytes().to_vec(),
                    branch: "main".into(),
                    max_body: config::DEFAULT_WEBHOOK_MAX_BODY_BYTES,
                })),
            },
            stop.clone(),
        ));
        let run = tokio::spawn(agent.clone().run(stop));
        let ticker = {
            let fake = fake.clone();
            tokio::spawn(async move {
                loop {
                    fake.settle();
                    fake.advance(7);
                    fake.checkpoint_all();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        let key = ResourceKey::new("default", Kind::FlinkDeployment, NAME);
        let at_rest = |version: u32| {
            let agent = agent.clone();
            let fake = fake.clone();
            let key = key.clone();
            async move {
                let want = vec!["--version".to_string(), format!("v{version}")];
                let end = Instant::now() + Duration::from_secs(120);
                loop {
                    let rest = agent.records().get(&key).is_some_and(|r| {
                        r.derive_lifecycle() == LifecycleState::Stable && r.in_flight.is_none()
                    });
                    if rest && fake.running_jobs(&key).iter().any(|j| j.args == want) {
                        return;
                    }
                    assert!(Instant::now() < end, "v{version} did not come to rest");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        let t0 = Instant::now();
        at_rest(1).await;
        println!(
            "setup: one application deployed from a real Git repository onto the fake Flink over HTTP in {:.2} s; interval {} s, fast poll {} ms, debounce {} ms",
            t0.elapsed().as_secs_f64(),
            interval.as_secs(),
            config::DEFAULT_FAST_POLL.as_millis(),
            config::DEFAULT_FETCH_DEBOUNCE.as_millis()
        );

        let http = reqwest::Client::new();
        let (mut hook, mut poll) = (Vec::new(), Vec::new());
        let mut version = 1;
        for i in 0..trials * 2 {
            let by_webhook = i % 2 == 0;
            if !by_webhook {
                tokio::time::sleep(interval.mul_f64(fraction())).await;
            }
            version += 1;
            let steps = fake.steps();
            let fetches = telemetry.fetches();
            commit(&repo, version);
            let pushed = Instant::now();
            if by_webhook {
                let body = format!(r#"{{"ref":"refs/heads/main","after":"v{version}"}}"#);
                let status = http
                    .post(format!("{base}/webhook"))
                    .header("X-GitHub-Event", "push")
                    .header(
                        "X-Hub-Signature-256",
                        signature::sign(SECRET.as_bytes(), body.as_bytes()),
                    )
                    .body(body)
                    .send()
                    .await
                    .expect("webhook")
                    .status();
                assert_eq!(status, 202);
            }
            while fake.steps() == steps {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let took = pushed.elapsed();
            println!(
                "trial {:>2} {:<7}: first action {:>8.1} ms after the commit ({} fetch(es) in between)",
                i + 1,
                if by_webhook { "webhook" } else { "poll" },
                took.as_secs_f64() * 1000.0,
                telemetry.fetches() - fetches
            );
            if by_webhook { &mut hook } else { &mut poll }.push(took);
            at_rest(version).await;
        }
        let (hmin, hmed, hmax) = stats(&hook);
        let (pmin, pmed, pmax) = stats(&poll);
        println!(
            "push to first action, webhook: min {hmin:.1} ms, median {hmed:.1} ms, max {hmax:.1} ms ({} trials)",
            hook.len()
        );
        println!(
            "push to first action, {} s poll: min {pmin:.1} ms, median {pmed:.1} ms, max {pmax:.1} ms ({} trials)",
            interval.as_secs(),
            poll.len()
        );
        println!(
            "ratio of medians (poll / webhook): {:.1}x",
            pmed / hmed
        );
        let _ = stop_tx.send(true);
        ticker.abort();
        let _ = run.await;
    });
}
