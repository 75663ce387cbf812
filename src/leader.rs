//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas of the
//! agent exactly one acts (deploys, stops, submits, writes status) at any time.
//!
//! The semantics are client-go's `tools/leaderelection` with a `LeaseLock`, as
//! controller-runtime and Flux use it (and Flux's defaults, [`LeaseSettings::from_environment`]:
//! lease 35 s, renew deadline 30 s, retry period 5 s):
//!
//! * Every `retry_period` an elector reads the Lease. It takes it when the Lease is absent
//!   (create), names no holder (released), names this elector (renew), or when its record
//!   has not changed for the record's `leaseDurationSeconds` as measured on this elector's
//!   own monotonic clock from the moment it first saw that record (client-go's
//!   `observedTime`: no comparison of wall clocks across machines, so clock skew between
//!   nodes cannot hand the Lease over early). Writes carry the `resourceVersion` read, so
//!   of two electors that race for an expired Lease the API server lets one win and
//!   answers the other 409 Conflict. A takeover increments `leaseTransitions`.
//! * [`decide`] is that rule as a pure function of the Lease read, the observation time
//!   and the clocks; [`renewed`], [`taken`] and [`released`] build the specs written.
//!
//! *Guarantees*: a leader reports [`LeaderState::Leading`] with an `until` of the moment
//! it **sent** its last successful renewal plus the renew deadline. It stops reporting
//! Leading at that moment whether or not the API server answers (each call is bounded by
//! the time left). Another elector can take over no earlier than the lease duration after
//! it **saw** that renewal, which is after it was sent; so with renew deadline < lease
//! duration (30 s < 35 s) the old leader has stopped acting before a new one can start,
//! unless the two machines' clocks run at rates differing by more than the margin.
//! This is stricter than client-go, which counts its renew deadline from the first retry
//! after the last renewal (up to retry period + renew deadline = the lease duration).
//!
//! *Assumptions*: an API server that does not answer is unknown, never "no leader": a
//! follower that gets errors reports [`LeaderState::Unknown`] and takes nothing over; a
//! leader that gets errors keeps trying until its deadline. The consumer of the state
//! (the agent's controller, [`crate::apply::executor::AgentHooks::leadership`]) stops
//! acting as soon as it reads anything but a current `Leading`, and signals
//! [`LeaderElector::run`]'s shutdown only once it has stopped, so that the release on
//! shutdown (client-go's `ReleaseOnCancel`: holder cleared, so a follower takes over
//! within one retry period instead of a lease duration) comes after the last action.
//!
//! Why not a crate: `kube-lease-manager` 0.13 (the one release for kube 5 and k8s-openapi
//! 0.29) compares wall-clock `renewTime`s, takes an expired Lease over with a patch that
//! carries no `resourceVersion`, keeps reporting "leader" while renewals fail with errors,
//! and needs Rust 1.89 (this crate: 1.85); `kube-leader-election` and `kube-coordinate`
//! are on older kube releases.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config;

/// Where the Lease is, who this elector is, and its timing (client-go's
/// `LeaderElectionConfig`). Defaults in [`crate::config`]: Flux's 35 s / 30 s / 5 s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease (`--leader-election-id`).
    pub name: String,
    /// This elector's `holderIdentity`; unique among the candidates ([`default_identity`]).
    pub identity: String,
    /// How long a Lease whose record does not change stays held (written to
    /// `leaseDurationSeconds`, rounded up to whole seconds). Followers wait this long.
    pub lease_duration: Duration,
    /// How long after sending its last successful renewal a leader keeps acting. Must be
    /// shorter than `lease_duration`: the difference is the safety margin.
    pub renew_deadline: Duration,
    /// Time between two attempts to take or renew the Lease.
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// The defaults: Lease [`config::DEFAULT_LEADER_ELECTION_ID`] in [`default_namespace`],
    /// identity [`default_identity`], Flux's durations.
    pub fn from_environment() -> LeaseSettings {
        LeaseSettings {
            namespace: default_namespace(),
            name: config::DEFAULT_LEADER_ELECTION_ID.to_string(),
            identity: default_identity(),
            lease_duration: config::DEFAULT_LEASE_DURATION,
            renew_deadline: config::DEFAULT_LEASE_RENEW_DEADLINE,
            retry_period: config::DEFAULT_LEASE_RETRY_PERIOD,
        }
    }

    /// Checks the settings as client-go's `NewLeaderElector` does: a name, a namespace, an
    /// identity, and retry period < renew deadline < lease duration.
    ///
    /// # Errors
    /// [`LeaderError::Settings`] naming what is wrong.
    pub fn validate(&self) -> Result<(), LeaderError> {
        let bad = |m: &str| Err(LeaderError::Settings(m.to_string()));
        if self.name.is_empty() || self.namespace.is_empty() || self.identity.is_empty() {
            return bad("the Lease name, its namespace and the identity must not be empty");
        }
        if self.retry_period.is_zero() {
            return bad("the retry period must be positive");
        }
        if self.renew_deadline <= self.retry_period {
            return bad("the renew deadline must be longer than the retry period");
        }
        if self.lease_duration <= self.renew_deadline {
            return bad("the lease duration must be longer than the renew deadline");
        }
        Ok(())
    }

    /// `leaseDurationSeconds` as written: the lease duration rounded up, at least 1.
    pub fn lease_duration_seconds(&self) -> i32 {
        let secs = self.lease_duration.as_secs_f64().ceil();
        (secs as i32).max(1)
    }
}

/// What an elector knows of the leadership, published on a `watch` channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderState {
    /// This elector holds the Lease and may act until `until` (its last successful
    /// renewal's send time plus the renew deadline), unless a newer state says otherwise.
    Leading { until: Instant },
    /// Another elector holds the Lease (`holder`), or the Lease was just released or lost
    /// to a race (`None`).
    Following { holder: Option<String> },
    /// Not known: no answer from the API server yet, or only errors. Never a reason to act
    /// or to take over.
    Unknown,
}

impl LeaderState {
    /// Whether this elector may act at `now`.
    pub fn is_leading_at(&self, now: Instant) -> bool {
        matches!(self, LeaderState::Leading { until } if now < *until)
    }

    /// Whether this elector may act now.
    pub fn is_leading(&self) -> bool {
        self.is_leading_at(Instant::now())
    }
}

/// Why an attempt on the Lease failed (the elector retries every one of them).
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The settings cannot work (see [`LeaseSettings::validate`]).
    #[error("leader election settings: {0}")]
    Settings(String),
    /// No Kubernetes client configuration (kubeconfig or in-cluster service account).
    #[error("Kubernetes client configuration (kubeconfig or in-cluster): {0}")]
    Config(String),
    /// The API server answered with an error, or could not be reached.
    #[error("Kubernetes API: {0}")]
    Api(#[source] kube::Error),
    /// The API server did not answer in time.
    #[error("the Kubernetes API did not answer within {0:?}")]
    Timeout(Duration),
}

impl From<kube::Error> for LeaderError {
    fn from(e: kube::Error) -> Self {
        LeaderError::Api(e)
    }
}

/// This process's identity: `$POD_NAME` (else the host name) and `_` with 8 random hex
/// digits, as controller-runtime appends a UUID, so two processes on one host, or a
/// restarted container, are told apart.
pub fn default_identity() -> String {
    let base = std::env::var(config::ENV_POD_NAME)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "flink-gitops".to_string());
    format!("{}_{}", base.trim(), random_suffix())
}

fn random_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = format!("{nanos}|{}|{n}", std::process::id());
    hex::encode(Sha256::digest(seed.as_bytes()))[..8].to_string()
}

/// The Lease's namespace when none is given: `$POD_NAMESPACE`, else the service account's
/// namespace file, else `default`.
pub fn default_namespace() -> String {
    std::env::var(config::ENV_POD_NAMESPACE)
        .ok()
        .or_else(|| std::fs::read_to_string(config::SERVICE_ACCOUNT_NAMESPACE_FILE).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| config::DEFAULT_NAMESPACE.to_string())
}

/// A client from `KUBECONFIG` / `~/.kube/config`, else the in-cluster service account,
/// with `timeout` on connecting, reading and writing.
///
/// # Errors
/// [`LeaderError::Config`] when no configuration is found or the client cannot be built.
pub async fn client_from_environment(timeout: Duration) -> Result<Client, LeaderError> {
    crate::apply::kubernetes::runtime::infer_client(timeout)
        .await
        .map_err(|e| LeaderError::Config(e.to_string()))
}

// -------------------------------------------------------------------------------- pure

/// The agent named by a status commit's [`config::STATUS_AGENT_TRAILER`] trailer (the
/// last one in the message), if any.
pub fn agent_of_commit(message: &str) -> Option<&str> {
    let prefix = format!("{}:", config::STATUS_AGENT_TRAILER);
    message
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The holder a Lease names; an empty `holderIdentity` (a released Lease) is none.
pub fn holder(spec: Option<&LeaseSpec>) -> Option<&str> {
    spec.and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty())
}

/// Whether a Lease record first seen at `seen_at` (and unchanged since) has expired at
/// `now`: its `leaseDurationSeconds` have passed on the observer's clock (client-go's
/// `isLeaseValid`). A record without a positive duration counts with `fallback`.
pub fn is_expired(spec: &LeaseSpec, seen_at: Instant, now: Instant, fallback: Duration) -> bool {
    let duration = spec
        .lease_duration_seconds
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s as u64))
        .unwrap_or(fallback);
    seen_at + duration <= now
}

/// What one attempt on the Lease does, decided by [`decide`].
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// No Lease: create it, held by this elector.
    Create(LeaseSpec),
    /// Write this spec over the version read: a renewal (`takeover` false) or taking the
    /// Lease from a released or expired holder (`takeover` true).
    Write { spec: LeaseSpec, takeover: bool },
    /// Another elector holds a Lease that has not expired.
    Follow { holder: String },
}

/// The rule of one attempt (client-go's `tryAcquireOrRenew`), pure: `current` is the Lease
/// read (`None`: absent, `Some(None)`: no spec), first seen unchanged at `seen_at`; `now`
/// is the monotonic clock, `wall` the time written into the Lease.
pub fn decide(
    current: Option<Option<&LeaseSpec>>,
    seen_at: Instant,
    now: Instant,
    wall: Timestamp,
    settings: &LeaseSettings,
) -> Decision {
    let Some(spec) = current else {
        return Decision::Create(taken(None, wall, settings));
    };
    match holder(spec) {
        Some(h) if h == settings.identity => Decision::Write {
            spec: renewed(spec, wall, settings),
            takeover: false,
        },
        Some(h) if !spec.is_some_and(|s| is_expired(s, seen_at, now, settings.lease_duration)) => {
            Decision::Follow {
                holder: h.to_string(),
            }
        }
        _ => Decision::Write {
            spec: taken(spec, wall, settings),
            takeover: true,
        },
    }
}

/// The spec of a Lease this elector takes: held by it from `wall`, one more transition
/// than `old` (none for a new Lease); other fields of `old` kept.
pub fn taken(old: Option<&LeaseSpec>, wall: Timestamp, settings: &LeaseSettings) -> LeaseSpec {
    let base = old.cloned().unwrap_or_default();
    LeaseSpec {
        holder_identity: Some(settings.identity.clone()),
        lease_duration_seconds: Some(settings.lease_duration_seconds()),
        acquire_time: Some(MicroTime(wall)),
        renew_time: Some(MicroTime(wall)),
        lease_transitions: Some(match old {
            None => 0,
            Some(o) => o.lease_transitions.unwrap_or(0).saturating_add(1),
        }),
        ..base
    }
}

/// The spec of a renewal: `renewTime` now, the acquire time and transitions kept.
pub fn renewed(old: Option<&LeaseSpec>, wall: Timestamp, settings: &LeaseSettings) -> LeaseSpec {
    let base = old.cloned().unwrap_or_default();
    LeaseSpec {
        holder_identity: Some(settings.identity.clone()),
        lease_duration_seconds: Some(settings.lease_duration_seconds()),
        acquire_time: base.acquire_time.clone().or(Some(MicroTime(wall))),
        renew_time: Some(MicroTime(wall)),
        lease_transitions: Some(base.lease_transitions.unwrap_or(0)),
        ..base
    }
}

/// The spec of a released Lease (client-go's `ReleaseOnCancel`): no holder, a 1 s
/// duration, acquire and renew time now, transitions kept.
pub fn released(old: Option<&LeaseSpec>, wall: Timestamp) -> LeaseSpec {
    let base = old.cloned().unwrap_or_default();
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        acquire_time: Some(MicroTime(wall)),
        renew_time: Some(MicroTime(wall)),
        lease_transitions: Some(base.lease_transitions.unwrap_or(0)),
        ..base
    }
}

// -------------------------------------------------------------------------------- I/O

/// A version of the Lease and when this elector first saw it.
#[derive(Debug, Clone)]
struct Seen {
    resource_version: String,
    at: Instant,
}

/// How one attempt ended.
#[derive(Debug)]
enum Attempt {
    /// This elector holds the Lease: created or renewed (`takeover` false), or taken from
    /// a released or expired holder (true).
    Held { takeover: bool },
    /// Someone else holds it (`None`: lost a race, holder not known yet).
    Follow { holder: Option<String> },
}

/// Takes and renews one Lease; see the module docs.
pub struct LeaderElector {
    api: Api<Lease>,
    settings: LeaseSettings,
    seen: Option<Seen>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl LeaderElector {
    /// An elector on the Lease `settings.name` in `settings.namespace`.
    ///
    /// # Errors
    /// [`LeaderError::Settings`] from [`LeaseSettings::validate`].
    pub fn new(client: Client, settings: LeaseSettings) -> Result<LeaderElector, LeaderError> {
        settings.validate()?;
        Ok(LeaderElector {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            seen: None,
        })
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &LeaseSettings {
        &self.settings
    }

    /// Tries to take or renew the Lease until `shutdown` turns true (or its sender is
    /// dropped), publishing every change of [`LeaderState`] on `state` (starting with
    /// `Unknown`). Logs `acquired leadership`, `following <holder>` and, at WARN, `lost
    /// leadership`. On shutdown it publishes `Following { holder: None }` first, then
    /// releases the Lease if it holds it (bounded by the retry period, at least 1 s).
    ///
    /// Never returns an error: every failed call is retried after the retry period.
    pub async fn run(
        mut self,
        mut shutdown: watch::Receiver<bool>,
        state: watch::Sender<LeaderState>,
    ) {
        let s = self.settings.clone();
        tracing::info!(lease = %format!("{}/{}", s.namespace, s.name), identity = %s.identity, "leader election: trying to acquire the Lease");
        let publish = |new: LeaderState| {
            state.send_if_modified(|cur| {
                if *cur == new {
                    false
                } else {
                    *cur = new;
                    true
                }
            });
        };
        publish(LeaderState::Unknown);
        // Some(deadline) while leading.
        let mut until: Option<Instant> = None;
        let mut failures = 0u32;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let sent = Instant::now();
            if let Some(u) = until {
                if sent >= u {
                    tracing::warn!(identity = %s.identity, renew_deadline = ?s.renew_deadline, "lost leadership, stopping: the Lease was not renewed within the renew deadline");
                    until = None;
                    publish(LeaderState::Unknown);
                }
            }
            // A leader's call may take until its deadline; a follower's up to the renew deadline.
            let budget = until
                .map(|u| u.saturating_duration_since(sent))
                .unwrap_or(s.renew_deadline);
            let result = match tokio::time::timeout(budget, self.attempt()).await {
                Ok(r) => r,
                Err(_) => Err(LeaderError::Timeout(budget)),
            };
            match result {
                Ok(Attempt::Held { takeover }) => {
                    failures = 0;
                    let deadline = sent + s.renew_deadline;
                    if until.is_none() {
                        tracing::info!(identity = %s.identity, lease = %s.name, takeover, "acquired leadership");
                    }
                    until = Some(deadline);
                    publish(LeaderState::Leading { until: deadline });
                }
                Ok(Attempt::Follow { holder }) => {
                    failures = 0;
                    if until.take().is_some() {
                        tracing::warn!(identity = %s.identity, holder = holder.as_deref().unwrap_or("unknown"), "lost leadership, stopping: another elector holds the Lease");
                    }
                    let changed = !matches!(&*state.borrow(), LeaderState::Following { holder: h } if *h == holder);
                    if changed {
                        match &holder {
                            Some(h) => tracing::info!(holder = %h, "following {h}"),
                            None => tracing::info!("following: lost a race for the Lease"),
                        }
                    }
                    publish(LeaderState::Following { holder });
                }
                Err(e) => {
                    failures += 1;
                    match until {
                        Some(u) => {
                            tracing::warn!(error = %e, left = ?u.saturating_duration_since(Instant::now()), "cannot renew the Lease; still leading until the renew deadline")
                        }
                        None => {
                            if failures == 1 {
                                tracing::warn!(error = %e, "cannot read the Lease; not acting, not taking over");
                            } else {
                                tracing::debug!(error = %e, failures, "cannot read the Lease");
                            }
                            publish(LeaderState::Unknown);
                        }
                    }
                }
            }
            let mut wake = Instant::now() + s.retry_period;
            if let Some(u) = until {
                wake = wake.min(u);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        publish(LeaderState::Following { holder: None });
        let release =
            tokio::time::timeout(s.retry_period.max(Duration::from_secs(1)), self.release()).await;
        match release {
            Ok(Ok(true)) => tracing::info!(identity = %s.identity, "released the Lease"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot release the Lease; it expires by itself")
            }
            Err(_) => tracing::warn!("releasing the Lease timed out; it expires by itself"),
        }
    }

    /// One read and, when [`decide`] says so, one write of the Lease.
    async fn attempt(&mut self) -> Result<Attempt, LeaderError> {
        let s = &self.settings;
        let current = self.api.get_opt(&s.name).await?;
        let now = Instant::now();
        let seen_at = match &current {
            Some(lease) => {
                let rv = lease.metadata.resource_version.clone().unwrap_or_default();
                match &self.seen {
                    Some(seen) if seen.resource_version == rv => seen.at,
                    _ => {
                        self.seen = Some(Seen {
                            resource_version: rv,
                            at: now,
                        });
                        now
                    }
                }
            }
            None => now,
        };
        let decision = decide(
            current.as_ref().map(|l| l.spec.as_ref()),
            seen_at,
            now,
            Timestamp::now(),
            s,
        );
        let written = match decision {
            Decision::Follow { holder } => {
                return Ok(Attempt::Follow {
                    holder: Some(holder),
                })
            }
            Decision::Create(spec) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(s.name.clone()),
                        namespace: Some(s.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                (self.api.create(&PostParams::default(), &lease).await, false)
            }
            Decision::Write { spec, takeover } => {
                // `current` is Some here; its metadata carries the resourceVersion read.
                let mut lease = current.unwrap_or_default();
                lease.spec = Some(spec);
                (
                    self.api
                        .replace(&s.name, &PostParams::default(), &lease)
                        .await,
                    takeover,
                )
            }
        };
        match written {
            (Ok(lease), takeover) => {
                self.seen = Some(Seen {
                    resource_version: lease.metadata.resource_version.unwrap_or_default(),
                    at: Instant::now(),
                });
                Ok(Attempt::Held { takeover })
            }
            (Err(kube::Error::Api(status)), _)
                if status.is_conflict() || status.is_already_exists() =>
            {
                tracing::debug!(reason = %status.reason, "lost a race for the Lease");
                Ok(Attempt::Follow { holder: None })
            }
            (Err(e), _) => Err(e.into()),
        }
    }

    /// Clears the holder if it is this elector. Returns whether it did.
    async fn release(&mut self) -> Result<bool, LeaderError> {
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            return Ok(false);
        };
        if holder(lease.spec.as_ref()) != Some(self.settings.identity.as_str()) {
            return Ok(false);
        }
        lease.spec = Some(released(lease.spec.as_ref(), Timestamp::now()));
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// A [`LeaderElector`] running in its own task: its state, and how to stop it.
#[derive(Debug)]
pub struct ElectorHandle {
    /// The elector's identity (`holderIdentity` when it leads).
    pub identity: String,
    /// The elector's state (what [`crate::apply::executor::AgentHooks::leadership`] takes).
    pub state: watch::Receiver<LeaderState>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ElectorHandle {
    /// Spawns `elector`'s [`LeaderElector::run`] on the current runtime.
    pub fn spawn(elector: LeaderElector) -> ElectorHandle {
        let identity = elector.settings.identity.clone();
        let (state_tx, state) = watch::channel(LeaderState::Unknown);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(elector.run(stop_rx, state_tx));
        ElectorHandle {
            identity,
            state,
            stop,
            task,
        }
    }

    /// Stops the elector and waits for it: it releases the Lease if it holds it. Call it
    /// once the work the Lease guards has stopped.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// An elector for `settings` with a client from the environment
/// ([`client_from_environment`], calls bounded by the renew deadline).
///
/// # Errors
/// [`LeaderError::Config`] without a Kubernetes configuration, [`LeaderError::Settings`]
/// for settings that cannot work.
pub async fn connect(settings: LeaseSettings) -> Result<LeaderElector, LeaderError> {
    settings.validate()?;
    let client = client_from_environment(settings.renew_deadline).await?;
    LeaderElector::new(client, settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LeaseSettings {
        LeaseSettings {
            namespace: "ns".into(),
            name: "lease".into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(35),
            renew_deadline: Duration::from_secs(30),
            retry_period: Duration::from_secs(5),
        }
    }

    fn wall(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).expect("valid time")
    }

    fn spec(holder: Option<&str>, duration: Option<i32>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            lease_duration_seconds: duration,
            acquire_time: Some(MicroTime(wall(-100))),
            renew_time: Some(MicroTime(wall(-10))),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn settings_are_checked_like_client_go() {
        let s = settings();
        let cases: Vec<(&str, LeaseSettings, bool)> = vec![
            ("flux defaults", s.clone(), true),
            (
                "renew = lease",
                LeaseSettings {
                    renew_deadline: s.lease_duration,
                    ..s.clone()
                },
                false,
            ),
            (
                "retry = renew",
                LeaseSettings {
                    retry_period: s.renew_deadline,
                    ..s.clone()
                },
                false,
            ),
            (
                "zero retry",
                LeaseSettings {
                    retry_period: Duration::ZERO,
                    ..s.clone()
                },
                false,
            ),
            (
                "no identity",
                LeaseSettings {
                    identity: String::new(),
                    ..s.clone()
                },
                false,
            ),
            (
                "test timing 4s/3s/0.5s",
                LeaseSettings {
                    lease_duration: Duration::from_secs(4),
                    renew_deadline: Duration::from_secs(3),
                    retry_period: Duration::from_millis(500),
                    ..s.clone()
                },
                true,
            ),
        ];
        for (name, settings, ok) in cases {
            assert_eq!(settings.validate().is_ok(), ok, "{name}");
        }
        let defaults = LeaseSettings::from_environment();
        assert_eq!(
            (
                defaults.lease_duration,
                defaults.renew_deadline,
                defaults.retry_period
            ),
            (
                Duration::from_secs(35),
                Duration::from_secs(30),
                Duration::from_secs(5)
            )
        );
        assert_eq!(defaults.name, "flink-gitops-leader");
        assert!(defaults.validate().is_ok());
    }

    #[test]
    fn lease_duration_seconds_round_up() {
        for (d, secs) in [(35_000, 35), (4_000, 4), (1_500, 2), (100, 1)] {
            let s = LeaseSettings {
                lease_duration: Duration::from_millis(d),
                ..settings()
            };
            assert_eq!(s.lease_duration_seconds(), secs, "{d} ms");
        }
    }

    #[test]
    fn expiry_counts_from_when_the_record_was_seen_not_from_its_renew_time() {
        let t0 = Instant::now();
        let s35 = spec(Some("other"), Some(35), 0);
        let fallback = Duration::from_secs(35);
        let cases = [
            // (record, seen at, now, expired)
            (&s35, 0, 0, false),
            (&s35, 0, 34_999, false),
            (&s35, 0, 35_000, true),
            (&s35, 10_000, 44_000, false),
            (&s35, 10_000, 45_000, true),
        ];
        for (record, seen, now, expired) in cases {
            let seen_at = t0 + Duration::from_millis(seen);
            let at = t0 + Duration::from_millis(now);
            assert_eq!(
                is_expired(record, seen_at, at, fallback),
                expired,
                "seen {seen} ms, now {now} ms"
            );
        }
        // No duration in the record: the elector's own lease duration counts.
        let none = spec(Some("other"), None, 0);
        assert!(!is_expired(
            &none,
            t0,
            t0 + Duration::from_secs(34),
            fallback
        ));
        assert!(is_expired(
            &none,
            t0,
            t0 + Duration::from_secs(35),
            fallback
        ));
        let zero = spec(Some("other"), Some(0), 0);
        assert!(!is_expired(
            &zero,
            t0,
            t0 + Duration::from_secs(1),
            fallback
        ));
    }

    #[test]
    fn decide_table() {
        let s = settings();
        let t0 = Instant::now();
        let now = wall(0);
        let ours = spec(Some("me"), Some(35), 3);
        let theirs = spec(Some("other"), Some(35), 3);
        let released_lease = spec(None, Some(1), 3);
        let empty_holder = spec(Some(""), Some(35), 3);
        enum Want {
            Create,
            Renew,
            Take,
            Follow(&'static str),
        }
        let cases: Vec<(&str, Option<Option<&LeaseSpec>>, u64, Want)> = vec![
            ("absent", None, 0, Want::Create),
            ("no spec", Some(None), 0, Want::Take),
            ("ours, fresh", Some(Some(&ours)), 0, Want::Renew),
            ("ours, long unseen", Some(Some(&ours)), 100, Want::Renew),
            (
                "theirs, fresh",
                Some(Some(&theirs)),
                0,
                Want::Follow("other"),
            ),
            (
                "theirs, 34 s unchanged",
                Some(Some(&theirs)),
                34,
                Want::Follow("other"),
            ),
            (
                "theirs, 35 s unchanged",
                Some(Some(&theirs)),
                35,
                Want::Take,
            ),
            ("released", Some(Some(&released_lease)), 0, Want::Take),
            ("empty holder", Some(Some(&empty_holder)), 0, Want::Take),
        ];
        for (name, current, unchanged_for, want) in cases {
            let d = decide(
                current,
                t0,
                t0 + Duration::from_secs(unchanged_for),
                now,
                &s,
            );
            match (want, d) {
                (Want::Create, Decision::Create(spec)) => {
                    assert_eq!(spec.lease_transitions, Some(0), "{name}");
                    assert_eq!(spec.holder_identity.as_deref(), Some("me"), "{name}");
                }
                (
                    Want::Renew,
                    Decision::Write {
                        takeover: false, ..
                    },
                ) => {}
                (Want::Take, Decision::Write { takeover: true, .. }) => {}
                (Want::Follow(h), Decision::Follow { holder }) => assert_eq!(holder, h, "{name}"),
                (_, d) => panic!("{name}: unexpected {d:?}"),
            }
        }
    }

    #[test]
    fn written_specs() {
        let s = settings();
        let now = wall(0);
        let mut old = spec(Some("other"), Some(15), 3);
        old.preferred_holder = Some("kept".into());
        old.strategy = Some("kept".into());

        let t = taken(Some(&old), now, &s);
        assert_eq!(t.holder_identity.as_deref(), Some("me"));
        assert_eq!(t.lease_duration_seconds, Some(35));
        assert_eq!(t.lease_transitions, Some(4), "a takeover is a transition");
        assert_eq!(t.acquire_time, Some(MicroTime(now)));
        assert_eq!(t.renew_time, Some(MicroTime(now)));
        assert_eq!(t.preferred_holder.as_deref(), Some("kept"));

        let fresh = taken(None, now, &s);
        assert_eq!(fresh.lease_transitions, Some(0));
        assert_eq!(fresh.acquire_time, Some(MicroTime(now)));

        let mine = spec(Some("me"), Some(35), 4);
        let r = renewed(Some(&mine), now, &s);
        assert_eq!(r.holder_identity.as_deref(), Some("me"));
        assert_eq!(r.lease_transitions, Some(4), "a renewal is no transition");
        assert_eq!(r.acquire_time, mine.acquire_time, "acquire time kept");
        assert_eq!(r.renew_time, Some(MicroTime(now)));

        let rel = released(Some(&mine), now);
        assert_eq!(holder(Some(&rel)), None);
        assert_eq!(rel.lease_duration_seconds, Some(1));
        assert_eq!(rel.lease_transitions, Some(4));
        assert_eq!(rel.renew_time, Some(MicroTime(now)));
        // A released Lease is taken at once by anyone, as a transition.
        let t0 = Instant::now();
        match decide(
            Some(Some(&rel)),
            t0,
            t0,
            now,
            &LeaseSettings {
                identity: "b".into(),
                ..s.clone()
            },
        ) {
            Decision::Write {
                spec,
                takeover: true,
            } => assert_eq!(spec.lease_transitions, Some(5)),
            d => panic!("unexpected {d:?}"),
        }
    }

    #[test]
    fn leading_holds_until_the_deadline_only() {
        let t0 = Instant::now();
        let until = t0 + Duration::from_secs(30);
        let cases = [
            (LeaderState::Leading { until }, 0, true),
            (LeaderState::Leading { until }, 29_999, true),
            (LeaderState::Leading { until }, 30_000, false),
            (
                LeaderState::Following {
                    holder: Some("x".into()),
                },
                0,
                false,
            ),
            (LeaderState::Following { holder: None }, 0, false),
            (LeaderState::Unknown, 0, false),
        ];
        for (state, at, leading) in cases {
            assert_eq!(
                state.is_leading_at(t0 + Duration::from_millis(at)),
                leading,
                "{state:?} at {at} ms"
            );
        }
    }

    #[test]
    fn the_agent_trailer_of_a_status_commit() {
        let cases = [
            (
                "a: deployed\n\nResource: x\nLifecycle: DEPLOYED\nAgent: pod-1_ab12cd34\n",
                Some("pod-1_ab12cd34"),
            ),
            ("a: deployed\n\nResource: x\nLifecycle: DEPLOYED\n", None),
            ("Agent:   \n", None),
            ("", None),
        ];
        for (message, agent) in cases {
            assert_eq!(agent_of_commit(message), agent, "{message:?}");
        }
    }

    #[test]
    fn identity_is_the_pod_name_with_a_suffix() {
        let a = default_identity();
        let b = default_identity();
        let (base, suffix) = a.rsplit_once('_').expect("suffix");
        assert!(!base.is_empty());
        assert_eq!(suffix.len(), 8);
        assert_ne!(a, b, "two electors in one process are told apart");
    }
}
