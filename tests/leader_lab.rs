//! Leader election ([`flink_gitops::leader`]) against the real lab API server
//! (`scripts/kube-lab`): several electors on one Lease with short timings (lease 4 s, renew
//! deadline 3 s, retry 0.5 s) in a fresh namespace, deleted at the end (also on failure).
//!
//! Takes the lab as the other lab tests do ([`Lab::start`]: skipped, with a message, when
//! it is not built; started when it is not running) and is skipped, with a message, when
//! its API server does not answer.
//!
//! A sampler reads every elector's state every few milliseconds and counts the moments at
//! which more than one says it may act; the Lease's own records (renew and acquire times,
//! transitions) prove the order of hand-overs: a takeover after a leader vanished comes a
//! full lease duration after that leader's last renewal, a takeover after a release comes
//! sooner.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flink_gitops::leader::{LeaderElector, LeaderState, LeaseSettings};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::harness::kube::{Lab, TestNamespace};

const LEASE: &str = "flink-gitops-leader";
const LEASE_SECS: u64 = 4;

/// The lab's client configuration, with 5 s deadlines on every call.
async fn lab_config(lab: &Lab) -> kube::Config {
    let kubeconfig = kube::config::Kubeconfig::read_from(lab.kubeconfig()).expect("lab kubeconfig");
    let mut cfg = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("the lab kubeconfig makes a client configuration");
    let t = Some(Duration::from_secs(5));
    (cfg.connect_timeout, cfg.read_timeout, cfg.write_timeout) = (t, t, t);
    cfg
}

/// A TCP forwarder to the API server that can be cut: then every connection through it
/// is dropped and new ones are closed at once, as a network partition would.
struct CuttableProxy {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl CuttableProxy {
    async fn start(target: SocketAddr) -> CuttableProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (cut, cut_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if *cut_rx.borrow() {
                    continue; // dropped: closed at once
                }
                let mut cut = cut_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        CuttableProxy { addr, cut, task }
    }

    fn cut(&self) {
        let _ = self.cut.send(true);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// One elector running in a task.
struct Candidate {
    name: &'static str,
    identity: String,
    state: watch::Receiver<LeaderState>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

fn settings(ns: &str, identity: &str) -> LeaseSettings {
    LeaseSettings {
        namespace: ns.to_string(),
        name: LEASE.to_string(),
        identity: identity.to_string(),
        lease_duration: Duration::from_secs(LEASE_SECS),
        renew_deadline: Duration::from_secs(3),
        retry_period: Duration::from_millis(500),
    }
}

fn start(name: &'static str, client: Client, ns: &str) -> Candidate {
    let identity = format!("{name}_{}", std::process::id());
    let elector = LeaderElector::new(client, settings(ns, &identity)).expect("valid settings");
    let (state_tx, state) = watch::channel(LeaderState::Unknown);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(elector.run(stop_rx, state_tx));
    Candidate {
        name,
        identity,
        state,
        stop,
        task,
    }
}

/// The electors a [`Sampler`] reads, by name.
type Watched = Arc<Mutex<Vec<(&'static str, watch::Receiver<LeaderState>)>>>;

/// Reads every elector's state every 5 ms; counts samples and the samples at which more
/// than one may act.
struct Sampler {
    watched: Watched,
    samples: Arc<AtomicU64>,
    overlaps: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Sampler {
    fn start() -> Sampler {
        let watched: Watched = Arc::default();
        let samples = Arc::new(AtomicU64::new(0));
        let overlaps: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (watched, samples, overlaps, stop) = (
                watched.clone(),
                samples.clone(),
                overlaps.clone(),
                stop.clone(),
            );
            async move {
                while !stop.load(Ordering::SeqCst) {
                    let now = Instant::now();
                    let leading: Vec<&str> = watched
                        .lock()
                        .expect("sampler lock")
                        .iter()
                        .filter(|(_, rx)| rx.borrow().is_leading_at(now))
                        .map(|(n, _)| *n)
                        .collect();
                    samples.fetch_add(1, Ordering::SeqCst);
                    if leading.len() > 1 {
                        overlaps
                            .lock()
                            .expect("sampler lock")
                            .push(leading.join("+"));
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        Sampler {
            watched,
            samples,
            overlaps,
            stop,
            task,
        }
    }

    /// Also samples `c` from now on; a stopped elector's last state stays sampled (a leader
    /// that vanished "leads" in its receiver until its deadline, which must not overlap).
    fn watch(&self, c: &Candidate) {
        self.watched
            .lock()
            .expect("sampler lock")
            .push((c.name, c.state.clone()));
    }
}

async fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn lease(api: &Api<Lease>) -> Lease {
    api.get(LEASE).await.expect("read the Lease")
}

fn millis(t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime>) -> i64 {
    t.as_ref().expect("time set").0.as_millisecond()
}

fn holder(l: &Lease) -> Option<String> {
    l.spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .filter(|h| !h.is_empty())
}

fn transitions(l: &Lease) -> i32 {
    l.spec
        .as_ref()
        .and_then(|s| s.lease_transitions)
        .unwrap_or(0)
}

/// Two electors on one Lease, then the leader partitioned from the API server, a leader
/// killed without release, a leader shut down with release, and an elector whose API
/// server does not exist: never two leaders at once; hand-overs after a vanished leader
/// wait the lease duration past its last renewal, a released Lease is taken sooner; an
/// elector that reaches no API server never leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_election_on_the_lab_api_server() {
    let Some(lab) = Lab::start() else {
        return;
    };
    let cfg = lab_config(&lab).await;
    let direct = Client::try_from(cfg.clone()).expect("client");
    let namespaces: Api<Namespace> = Api::all(direct.clone());
    if let Err(e) = namespaces.list(&ListParams::default().limit(1)).await {
        eprintln!(
            "SKIPPED leader election on the lab: its API server does not answer ({e}); start it with scripts/kube-lab/start.sh"
        );
        return;
    }
    let test_ns = TestNamespace::create(&lab, &direct, "leader").await;
    let ns = test_ns.name.clone();
    let leases: Api<Lease> = Api::namespaced(direct.clone(), &ns);
    let sampler = Sampler::start();

    // 1. A (through a proxy that can be cut) leads; B follows A.
    let api_server: SocketAddr = format!(
        "{}:{}",
        cfg.cluster_url.host().expect("host"),
        cfg.cluster_url.port_u16().unwrap_or(443)
    )
    .parse()
    .expect("the lab API server is at an IP address");
    let proxy = CuttableProxy::start(api_server).await;
    let mut via_proxy = cfg.clone();
    via_proxy.cluster_url = format!("https://{}", proxy.addr).parse().expect("url");
    let a = start("a", Client::try_from(via_proxy).expect("client"), &ns);
    sampler.watch(&a);
    wait_for("a to lead", Duration::from_secs(30), || {
        a.state.borrow().is_leading()
    })
    .await;
    let b = start("b", direct.clone(), &ns);
    sampler.watch(&b);
    wait_for("b to follow a", Duration::from_secs(30), || {
        *b.state.borrow()
            == LeaderState::Following {
                holder: Some(a.identity.clone()),
            }
    })
    .await;
    // Both run a few retry periods side by side: A keeps the Lease.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        a.state.borrow().is_leading(),
        "a keeps leading while it can renew"
    );
    assert!(!b.state.borrow().is_leading());
    let first = lease(&leases).await;
    assert_eq!(holder(&first), Some(a.identity.clone()));
    assert_eq!(transitions(&first), 0, "a created the Lease");

    // 2. A is cut off from the API server: it stops leading by its renew deadline, and B
    //    takes over only once the record has not changed for the lease duration.
    proxy.cut();
    let cut_at = Instant::now();
    let last_of_a = lease(&leases).await;
    wait_for("a to stop leading", Duration::from_secs(10), || {
        !a.state.borrow().is_leading()
    })
    .await;
    let a_stopped = cut_at.elapsed();
    assert_eq!(
        *a.state.borrow(),
        LeaderState::Unknown,
        "a cannot know who leads"
    );
    wait_for("b to take over from a", Duration::from_secs(30), || {
        b.state.borrow().is_leading()
    })
    .await;
    let b_took = cut_at.elapsed();
    let taken = lease(&leases).await;
    assert_eq!(holder(&taken), Some(b.identity.clone()));
    assert_eq!(
        transitions(&taken),
        transitions(&last_of_a) + 1,
        "a takeover is a transition"
    );
    let gap_partition = millis(&taken.spec.as_ref().expect("spec").acquire_time)
        - millis(&last_of_a.spec.as_ref().expect("spec").renew_time);
    assert!(
        gap_partition >= (LEASE_SECS * 1000) as i64,
        "b took the Lease {gap_partition} ms after a's last renewal: before it expired"
    );
    eprintln!(
        "partition: a stopped leading {a_stopped:?} after the cut, b took over {b_took:?} after it ({gap_partition} ms after a's last renewal)"
    );

    // 3. B's task is killed (no release): C takes over after the lease expires.
    let c = start("c", direct.clone(), &ns);
    sampler.watch(&c);
    wait_for("c to follow b", Duration::from_secs(30), || {
        *c.state.borrow()
            == LeaderState::Following {
                holder: Some(b.identity.clone()),
            }
    })
    .await;
    b.task.abort();
    let _ = b.task.await;
    let last_of_b = lease(&leases).await;
    assert_eq!(
        holder(&last_of_b),
        Some(b.identity.clone()),
        "a killed leader releases nothing"
    );
    wait_for("c to take over from b", Duration::from_secs(30), || {
        c.state.borrow().is_leading()
    })
    .await;
    let taken = lease(&leases).await;
    assert_eq!(holder(&taken), Some(c.identity.clone()));
    assert_eq!(transitions(&taken), transitions(&last_of_b) + 1);
    let gap_killed = millis(&taken.spec.as_ref().expect("spec").acquire_time)
        - millis(&last_of_b.spec.as_ref().expect("spec").renew_time);
    assert!(
        gap_killed >= (LEASE_SECS * 1000) as i64,
        "c took the Lease {gap_killed} ms after b's last renewal: before it expired"
    );

    // 4. C shuts down cleanly: it stops leading, releases the Lease, and D takes it well
    //    before it would have expired.
    let d = start("d", direct.clone(), &ns);
    sampler.watch(&d);
    wait_for("d to follow c", Duration::from_secs(30), || {
        *d.state.borrow()
            == LeaderState::Following {
                holder: Some(c.identity.clone()),
            }
    })
    .await;
    let _ = c.stop.send(true);
    tokio::time::timeout(Duration::from_secs(10), c.task)
        .await
        .expect("c shuts down")
        .expect("c's task");
    assert_eq!(*c.state.borrow(), LeaderState::Following { holder: None });
    let after_release = lease(&leases).await;
    let last_renew_of_c = millis(&after_release.spec.as_ref().expect("spec").renew_time);
    wait_for("d to take over from c", Duration::from_secs(30), || {
        d.state.borrow().is_leading()
    })
    .await;
    let taken = lease(&leases).await;
    assert_eq!(holder(&taken), Some(d.identity.clone()));
    let gap_released = millis(&taken.spec.as_ref().expect("spec").acquire_time) - last_renew_of_c;
    assert!(
        gap_released < (LEASE_SECS * 1000) as i64,
        "d took the released Lease {gap_released} ms after the release: no sooner than expiry"
    );
    eprintln!(
        "takeover after the lease expired: {gap_partition} ms (partition), {gap_killed} ms (killed) after the last renewal; after a release: {gap_released} ms"
    );

    // 5. An elector whose API server does not exist never leads, and reports Unknown.
    let mut dead_cfg = kube::Config::new("https://127.0.0.1:1".parse().expect("url"));
    let t = Some(Duration::from_millis(500));
    (
        dead_cfg.connect_timeout,
        dead_cfg.read_timeout,
        dead_cfg.write_timeout,
    ) = (t, t, t);
    let dead = start("dead", Client::try_from(dead_cfg).expect("client"), &ns);
    sampler.watch(&dead);
    let mut dead_state = dead.state.clone();
    let watched_dead = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            assert!(
                !dead_state.borrow_and_update().is_leading(),
                "an elector without an API server led"
            );
            if dead_state.changed().await.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(watched_dead.is_err(), "the elector kept running");
    assert_eq!(*dead.state.borrow(), LeaderState::Unknown);
    assert!(d.state.borrow().is_leading(), "d still leads");

    sampler.stop.store(true, Ordering::SeqCst);
    let _ = sampler.task.await;
    for x in [&a, &d, &dead] {
        let _ = x.stop.send(true);
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), d.task).await;
    a.task.abort();
    dead.task.abort();
    let samples = sampler.samples.load(Ordering::SeqCst);
    let overlaps = sampler.overlaps.lock().expect("lock").clone();
    eprintln!(
        "sampled every elector's state {samples} times; overlaps: {}",
        overlaps.len()
    );
    assert!(samples > 1000, "the sampler ran ({samples} samples)");
    assert!(
        overlaps.is_empty(),
        "two electors led at once: {overlaps:?}"
    );
}
