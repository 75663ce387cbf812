//! Running the agent as Argo CD and Flux are run: its webhooks over real HTTP against the
//! `flink-gitops run` binary fetching a real Git repository, and its metrics checked by
//! `promtool` and scraped by a real Prometheus (Debian's package, which scripts/setup.sh
//! unpacks into the cache) during a run of the agent on the fake Flink over HTTP.

use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use flink_gitops::apply::executor::{
    Agent, AgentHooks, AgentParts, AgentSettings, SystemEnvironment,
};
use flink_gitops::flink::lifecycle::record::LifecycleState;
use flink_gitops::flink::rest::HttpFlink;
use flink_gitops::serve::{self, ServeState};
use flink_gitops::signature;
use flink_gitops::telemetry::Telemetry;

use crate::harness::agent_fake::{app_yaml, deployment, JobOpts, World};
use crate::harness::fake_http::FakeHttp;
use crate::harness::{bin, TempRepo};

const SECRET: &str = "w3bhook-s3cret";
/// Generous: a fetch is asked for at once, but the machine is shared.
const WAIT: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A child process killed (with its process group) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// `name` from the Prometheus text at `base/metrics`: the value of the line that starts
/// with `series` (name and labels as printed), or None.
async fn metric(base: &str, series: &str) -> Option<f64> {
    let text = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn wait_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < end {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn post(base: &str, headers: &[(&str, String)], body: Vec<u8>) -> u16 {
    let mut req = client().post(format!("{base}/webhook")).body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.send().await.expect("webhook request").status().as_u16()
}

fn github(body: &[u8], secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("X-GitHub-Event", "push".to_string()),
        (
            "X-Hub-Signature-256",
            signature::sign(secret.as_bytes(), body),
        ),
        ("Content-Type", "application/json".to_string()),
    ]
}

/// The `flink-gitops run` binary with `--listen` and a webhook secret, on a real Git
/// repository, polling only every hour: every fetch after the first is a webhook's.
/// Refused requests (wrong method, no signature, a wrong one, another branch, a body past
/// the cap, a body that is not JSON, a ping) leave the fetch counter where it was; a
/// GitHub push and a GitLab push to the branch each make the agent fetch the new commit
/// (its revision metric moves); a burst of pushes makes fewer fetches than pushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_over_http_fetches_only_for_authentic_pushes_to_the_branch() {
    let repo = TempRepo::new();
    repo.write("README.md", "manifests go here\n");
    let first = repo.commit("first");
    let home = tempfile::tempdir().expect("tempdir");
    // `run` looks for a Flink distribution; no manifest here starts one.
    let flink = home.path().join("flink");
    std::fs::create_dir_all(flink.join("bin")).expect("mkdir");
    std::fs::write(flink.join("bin/jobmanager.sh"), "").expect("write");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log = home.path().join("agent.log");
    let child = Command::new(bin())
        .args(["run", "--repo"])
        .arg(repo.path())
        .arg("--flink-home")
        .arg(&flink)
        .args(["--interval", "1h", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--webhook-max-body", "4096"])
        .env("FLINK_GITOPS_CACHE", home.path().join("cache"))
        .env("FLINK_GITOPS_WEBHOOK_SECRET", SECRET)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).expect("log"))
        .stderr(std::fs::File::create(home.path().join("agent.err")).expect("log"))
        .spawn()
        .expect("start flink-gitops run");
    let _agent = Guard(child);
    let revision = |commit: &str| format!("flink_gitops_git_revision{{revision=\"{commit}\"}}");

    wait_until("/readyz", || async {
        client()
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let healthz = client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(healthz.status(), 200);
    assert_eq!(
        metric(&base, "flink_gitops_git_fetches_total").await,
        Some(1.0)
    );
    assert_eq!(metric(&base, &revision(&first)).await, Some(1.0));

    let second = repo.commit("second");
    let push = |branch: &str| {
        format!(r#"{{"ref":"refs/heads/{branch}","after":"{second}"}}"#).into_bytes()
    };
    // Refused or ignored: none fetches.
    let get = client()
        .get(format!("{base}/webhook"))
        .send()
        .await
        .expect("GET");
    assert_eq!(get.status(), 405);
    let body = push("main");
    let no_sig = vec![("X-GitHub-Event", "push".to_string())];
    assert_eq!(post(&base, &no_sig, body.clone()).await, 401);
    assert_eq!(post(&base, &[], body.clone()).await, 401);
    assert_eq!(
        post(&base, &github(&body, "not-the-secret"), body.clone()).await,
        403
    );
    let gitlab_wrong = vec![
        ("X-Gitlab-Event", "Push Hook".to_string()),
        ("X-Gitlab-Token", "not-the-secret".to_string()),
    ];
    assert_eq!(post(&base, &gitlab_wrong, body.clone()).await, 403);
    let other = push("feature");
    assert_eq!(
        post(&base, &github(&other, SECRET), other.clone()).await,
        204
    );
    let mut big = push("main");
    big.truncate(big.len() - 1);
    big.extend(format!(r#","padding":"{}"}}"#, "x".repeat(8192)).into_bytes());
    assert_eq!(post(&base, &github(&big, SECRET), big.clone()).await, 413);
    let garbage = b"{not json".to_vec();
    assert_eq!(
        post(&base, &github(&garbage, SECRET), garbage.clone()).await,
        400
    );
    let mut ping = github(b"{}", SECRET);
    ping[0].1 = "ping".into();
    assert_eq!(post(&base, &ping, b"{}".to_vec()).await, 200);
    // A fetch would start within the debounce window (200 ms): wait well past it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        metric(&base, "flink_gitops_git_fetches_total").await,
        Some(1.0),
        "a refused or ignored webhook fetched"
    );
    assert_eq!(metric(&base, &revision(&first)).await, Some(1.0));
    for (result, n) in [
        ("method_not_allowed", 1.0),
        ("unauthorized", 2.0),
        ("forbidden", 2.0),
        ("ignored", 1.0),
        ("too_large", 1.0),
        ("bad_request", 1.0),
        ("ping", 1.0),
    ] {
        assert_eq!(
            metric(
                &base,
                &format!("flink_gitops_webhook_requests_total{{result=\"{result}\"}}")
            )
            .await,
            Some(n),
            "{result}"
        );
    }

    // GitHub push to the branch: one fetch, and the agent has the new commit.
    assert_eq!(post(&base, &github(&body, SECRET), body.clone()).await, 202);
    wait_until("the fetch of the second commit", || async {
        metric(&base, &revision(&second)).await == Some(1.0)
    })
    .await;
    assert_eq!(
        metric(&base, "flink_gitops_git_fetches_total").await,
        Some(2.0)
    );

    // GitLab push to the branch.
    let third = repo.commit("third");
    let gl_body = format!(r#"{{"object_kind":"push","ref":"refs/heads/main","after":"{third}"}}"#)
        .into_bytes();
    let gitlab = vec![
        ("X-Gitlab-Event", "Push Hook".to_string()),
        ("X-Gitlab-Token", SECRET.to_string()),
    ];
    assert_eq!(post(&base, &gitlab, gl_body).await, 202);
    wait_until("the fetch of the third commit", || async {
        metric(&base, &revision(&third)).await == Some(1.0)
    })
    .await;
    assert_eq!(
        metric(&base, "flink_gitops_git_fetches_total").await,
        Some(3.0)
    );

    // A burst of five generic pushes at once: debounced into fewer fetches.
    let fourth = repo.commit("fourth");
    let generic = br#"{"branch":"main"}"#.to_vec();
    let headers = vec![(
        "X-Flink-Gitops-Signature",
        signature::sign(SECRET.as_bytes(), &generic),
    )];
    let burst: Vec<_> = (0..5)
        .map(|_| {
            let (b, h, g) = (base.clone(), headers.clone(), generic.clone());
            tokio::spawn(async move { post(&b, &h, g).await })
        })
        .collect();
    for task in burst {
        assert_eq!(task.await.expect("request"), 202);
    }
    wait_until("the fetch of the fourth commit", || async {
        metric(&base, &revision(&fourth)).await == Some(1.0)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fetches = metric(&base, "flink_gitops_git_fetches_total")
        .await
        .unwrap_or(0.0);
    assert!(
        (4.0..8.0).contains(&fetches),
        "five pushes in a burst made {} fetches",
        fetches - 3.0
    );
    let mut text = String::new();
    let _ =
        std::fs::File::open(home.path().join("agent.err")).map(|mut f| f.read_to_string(&mut text));
    assert!(text.contains("webhook: a push to the branch"), "{text}");
}

/// Where scripts/setup.sh put `name` (prometheus, promtool): `$FLINK_GITOPS_<NAME>`, the
/// cache, then PATH.
fn prometheus_tool(name: &str) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(format!("FLINK_GITOPS_{}", name.to_uppercase())) {
        return Some(PathBuf::from(p));
    }
    let cache = std::env::var("FLINK_GITOPS_CACHE")
        .map(PathBuf::from)
        .ok()
        .or_else(|| {
            std::env::var("HOME")
                .ok()
                .map(|h| Path::new(&h).join(".cache/flink-gitops"))
        })?;
    let p = cache.join("prometheus/usr/bin").join(name);
    if p.exists() {
        return Some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.exists())
    })
}

/// Prometheus' query API: the samples of `query`, as (labels, value).
async fn query(prom: &str, q: &str) -> Vec<(serde_json::Value, String)> {
    let Ok(resp) = client()
        .get(format!("{prom}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .await
    else {
        return Vec::new();
    };
    let Ok(v) = resp.json::<serde_json::Value>().await else {
        return Vec::new();
    };
    v["data"]["result"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["metric"].clone(),
                        s["value"][1].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The agent (the real controller, `Agent::run`) on the fake Flink over HTTP deploys two
/// jobs and upgrades one while serving its metrics; `promtool check metrics` passes on
/// what `/metrics` serves, and a real Prometheus scraping it every second answers queries
/// for the agent's series: resources by state, reconciles, fetches, savepoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_a_real_prometheus_scrapes_them() {
    let (Some(prometheus), Some(promtool)) =
        (prometheus_tool("prometheus"), prometheus_tool("promtool"))
    else {
        eprintln!("SKIPPED metrics_pass_promtool_and_a_real_prometheus_scrapes_them: prometheus and promtool not found (run scripts/setup.sh, which unpacks Debian's prometheus package into the cache)");
        return;
    };
    let w = World::new();
    let _fake_http = FakeHttp::start(&w.fake).await;
    let telemetry = Arc::new(Telemetry::new());
    let hooks = AgentHooks {
        telemetry: telemetry.clone(),
        ..AgentHooks::default()
    };
    let trigger = hooks.fetch_trigger.clone();
    let agent = Agent::start_with(
        AgentParts {
            runtime: Arc::new(w.fake.clone()),
            flink: HttpFlink {
                timeout: Duration::from_secs(5),
                ..HttpFlink::default()
            },
            storage: Arc::new(w.fake.clone()),
            manifests: w.manifests.clone(),
            status: Arc::new(w.store.clone()),
            env: Arc::new(SystemEnvironment::default()),
        },
        AgentSettings {
            interval: Duration::from_millis(500),
            fast_poll: Duration::from_millis(50),
            ..AgentSettings::default()
        },
        hooks,
    )
    .await
    .expect("agent");
    let listener = serve::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let base = format!("http://127.0.0.1:{port}");
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(serve::serve(
        listener,
        ServeState {
            telemetry: telemetry.clone(),
            trigger,
            webhook: None,
        },
        stop.clone(),
    ));
    let run = tokio::spawn(agent.clone().run(stop));
    // Time passes in the fake: savepoints complete, jobs checkpoint.
    let ticker = {
        let fake = w.fake.clone();
        tokio::spawn(async move {
            loop {
                fake.settle();
                fake.advance(7);
                fake.checkpoint_all();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let opts = |v: &str| JobOpts {
        version: v.into(),
        ..JobOpts::mode("savepoint")
    };
    w.push(&[
        ("apps/a.yaml", Some(app_yaml("a", &opts("v1")))),
        ("apps/b.yaml", Some(app_yaml("b", &opts("v1")))),
    ]);
    let stable = |n: usize| {
        let agent = agent.clone();
        move || {
            let agent = agent.clone();
            async move {
                agent
                    .records()
                    .values()
                    .filter(|r| r.derive_lifecycle() == LifecycleState::Stable)
                    .count()
                    == n
            }
        }
    };
    wait_until("two stable jobs", stable(2)).await;
    // An upgrade takes a savepoint.
    w.push(&[("apps/a.yaml", Some(app_yaml("a", &opts("v2"))))]);
    wait_until("the upgrade of a", || async {
        w.fake
            .running_jobs(&deployment("a"))
            .iter()
            .any(|j| j.args == vec!["--version", "v2"])
            && agent
                .records()
                .values()
                .all(|r| r.derive_lifecycle() == LifecycleState::Stable)
    })
    .await;

    // promtool on what /metrics serves.
    let text = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    {
        use std::io::Write as _;
        let mut stdin = check.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("write to promtool");
    }
    let out = check.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- metrics ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("flink_gitops_savepoints_total{trigger=\"upgrade\"} 1"),
        "{text}"
    );

    // A real Prometheus scraping the agent.
    let dir = tempfile::tempdir().expect("tempdir");
    let prom_port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: flink-gitops\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .expect("write config");
    let child = Command::new(&prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).expect("log"))
        .spawn()
        .expect("start prometheus");
    let _prom = Guard(child);
    let prom = format!("http://127.0.0.1:{prom_port}");
    wait_until("Prometheus to scrape the agent", || async {
        query(&prom, "up{job=\"flink-gitops\"}")
            .await
            .iter()
            .any(|(_, v)| v == "1")
            && !query(&prom, "flink_gitops_resources").await.is_empty()
    })
    .await;
    let stable_series = query(&prom, "flink_gitops_resources{state=\"STABLE\"}").await;
    assert_eq!(stable_series.len(), 1, "{stable_series:?}");
    assert_eq!(stable_series[0].1, "2");
    assert_eq!(stable_series[0].0["job"], "flink-gitops");
    let reconciles = query(&prom, "sum(flink_gitops_reconciles_total)").await;
    assert!(
        reconciles
            .first()
            .and_then(|(_, v)| v.parse::<f64>().ok())
            .is_some_and(|n| n > 0.0),
        "{reconciles:?}"
    );
    let fetches = query(&prom, "flink_gitops_git_fetches_total").await;
    assert!(!fetches.is_empty(), "{fetches:?}");
    let ages = query(&prom, "flink_gitops_newest_savepoint_age_seconds").await;
    assert!(
        ages.iter().any(|(m, _)| m["name"] == "a"),
        "the upgrade savepoint of a has an age: {ages:?}"
    );
    let buckets = query(&prom, "flink_gitops_reconcile_duration_seconds_bucket").await;
    assert!(!buckets.is_empty());

    let _ = stop_tx.send(true);
    ticker.abort();
    let _ = run.await;
    let _ = server.await;
}
