//! The loops around [`Agent::reconcile`]: `run` (a fetch loop and per-resource scheduling
//! with requeues and backoff, in the shape of kube-runtime's controller) and `run_once`.
//! With leader election ([`super::AgentHooks::leadership`]) `run` reconciles only while
//! leading and ends when the leadership goes, as a controller-runtime manager does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{Agent, ErrorClass, ReconcileError, Requeue};
use crate::apply::backoff;
use crate::apply::runtime::Runtime;
use crate::flink::rest::FlinkApiFactory;
use crate::flink::spec::{Kind, ResourceKey};
use crate::leader::LeaderState;

/// Why [`Agent::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// `shutdown` turned true (or, waiting to lead, the elector went away).
    Shutdown,
    /// Leader election is on and the agent stopped leading: it stopped reconciling and
    /// aborted the reconciles in flight. The process should exit (non-zero) and start
    /// again as a follower, as controller-runtime does.
    LostLeadership,
}

/// Returns when the leadership state changes; never without leader election or once the
/// elector is gone (its last state then stands until its deadline).
async fn leadership_changed(rx: &mut Option<watch::Receiver<LeaderState>>) {
    match rx {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Until when the current leadership lets the agent act (`None`: no deadline).
fn leading_until(rx: &Option<watch::Receiver<LeaderState>>) -> Option<Instant> {
    match rx.as_ref().map(|r| r.borrow().clone()) {
        Some(LeaderState::Leading { until }) => Some(until),
        Some(_) => Some(Instant::now()),
        None => None,
    }
}

impl<R: Runtime, F: FlinkApiFactory> Agent<R, F> {
    /// Fetches once and reconciles every resource until none has a step in flight, or
    /// until [`AgentSettings::once_deadline`]. Session clusters and application clusters
    /// go before session jobs in each round.
    ///
    /// # Errors
    /// The fetch's error; a resource's error ends only that resource's turn.
    pub async fn run_once(
        &self,
    ) -> Result<BTreeMap<ResourceKey, Result<Requeue, ReconcileError>>, ReconcileError> {
        self.sync_observed().await?;
        let deadline = Instant::now() + self.settings.once_deadline;
        let mut results: BTreeMap<ResourceKey, Result<Requeue, ReconcileError>> = BTreeMap::new();
        let mut pending: BTreeSet<ResourceKey> = self.keys();
        while !pending.is_empty() {
            let mut next = BTreeSet::new();
            for kind in [Kind::FlinkDeployment, Kind::FlinkSessionJob] {
                for key in pending.iter().filter(|k| k.kind == kind) {
                    let result = self.reconcile_observed(key).await;
                    if matches!(result, Ok(Requeue::After(_))) {
                        next.insert(key.clone());
                    }
                    results.insert(key.clone(), result);
                }
            }
            // A session cluster may wait for its jobs and the jobs for the cluster: give
            // every resource a turn while anything is in flight.
            if !next.is_empty() {
                next = self.keys();
            }
            if next.is_empty() || Instant::now() > deadline {
                break;
            }
            let in_flight = self.records().values().any(|r| r.in_flight.is_some());
            if !in_flight
                && results
                    .values()
                    .all(|r| !matches!(r, Ok(Requeue::After(_))))
            {
                break;
            }
            tokio::time::sleep(self.settings.fast_poll).await;
            pending = next;
        }
        Ok(results)
    }

    /// Runs until `shutdown` turns true: a fetch every interval or at once when the
    /// [`super::FetchTrigger`] is pulled (debounced), and each resource reconciled on its
    /// own schedule (see the module docs).
    ///
    /// With leader election it fetches from the start but reconciles nothing until the
    /// elector leads (logging that it waits), and returns [`RunEnd::LostLeadership`] as soon
    /// as the leadership is gone or its renew deadline passes (WARN `lost leadership,
    /// stopping`), after aborting the reconciles in flight.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) -> RunEnd {
        let mut desired_rx = self.desired_tx.subscribe();
        // The fetch loop.
        let fetcher = {
            let agent = self.clone();
            let mut stop = shutdown.clone();
            let mut wake = agent.hooks.fetch_trigger.subscribe();
            tokio::spawn(async move {
                let mut failures = 0u32;
                loop {
                    let wait = match agent.sync_observed().await {
                        Ok(_) => {
                            failures = 0;
                            agent.settings.interval
                        }
                        Err(e) => {
                            failures += 1;
                            let d = backoff::default_delay(failures, agent.env.jitter())
                                .min(agent.settings.interval);
                            tracing::warn!(error = %e, retry_in = ?d, "fetch failed; the last good revision keeps reconciling");
                            d
                        }
                    };
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = Self::next_fetch_request(&mut wake, agent.settings.fetch_debounce) => {}
                        _ = stop.changed() => return,
                    }
                }
            })
        };
        let mut leadership = self.hooks.leadership.clone();
        if !self
            .wait_for_leadership(&mut leadership, &mut shutdown)
            .await
        {
            fetcher.abort();
            return RunEnd::Shutdown;
        }
        if let Some(end) = self.reload_records_on_leading(&mut shutdown).await {
            fetcher.abort();
            return end;
        }
        let mut end = RunEnd::Shutdown;
        let mut due: BTreeMap<ResourceKey, Instant> = BTreeMap::new();
        let mut failures: BTreeMap<ResourceKey, u32> = BTreeMap::new();
        let mut running: BTreeSet<ResourceKey> = BTreeSet::new();
        let mut tasks: tokio::task::JoinSet<(ResourceKey, Result<Requeue, ReconcileError>)> =
            tokio::task::JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            if !self.hooks.may_act() {
                tracing::warn!(state = ?leadership.as_ref().map(|r| r.borrow().clone()), "lost leadership, stopping");
                self.hooks.telemetry.set_leader(false);
                end = RunEnd::LostLeadership;
                break;
            }
            let now = Instant::now();
            // Start every resource that is due and not already being reconciled.
            for key in self.keys() {
                let at = *due.entry(key.clone()).or_insert(now);
                if at <= now && !running.contains(&key) {
                    running.insert(key.clone());
                    let agent = self.clone();
                    tasks.spawn(async move {
                        let result = agent.reconcile_observed(&key).await;
                        (key, result)
                    });
                }
            }
            let next_due = due
                .iter()
                .filter(|(k, _)| !running.contains(*k))
                .map(|(_, t)| *t)
                .min()
                .unwrap_or(now + self.settings.interval);
            let act_until = leading_until(&leadership);
            tokio::select! {
                _ = shutdown.changed() => {}
                changed = desired_rx.changed() => {
                    if changed.is_ok() {
                        // Git moved: the resources it changed look again now; the others
                        // are looked at within the interval as usual (they already are
                        // scheduled no later than one interval from their last look).
                        let now = Instant::now();
                        for key in self.changed_keys() {
                            let t = due.entry(key).or_insert(now);
                            *t = (*t).min(now);
                        }
                    }
                }
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok((key, result)) = joined {
                        running.remove(&key);
                        let now = Instant::now();
                        let when = match result {
                            Ok(Requeue::Idle) => {
                                failures.remove(&key);
                                now + self.settings.interval
                            }
                            Ok(Requeue::After(d)) => {
                                failures.remove(&key);
                                now + d
                            }
                            Err(e) => {
                                let n = failures.entry(key.clone()).or_insert(0);
                                *n += 1;
                                let d = match e.class() {
                                    ErrorClass::Waiting(d) => d,
                                    ErrorClass::Stalled => self.settings.interval,
                                    ErrorClass::Transient => backoff::default_delay(*n, self.env.jitter()),
                                };
                                tracing::warn!(resource = %key, error = %e, class = ?e.class(), retry_in = ?d, "reconcile failed");
                                now + d
                            }
                        };
                        due.insert(key, when);
                    }
                }
                _ = tokio::time::sleep_until(next_due) => {}
                _ = leadership_changed(&mut leadership) => {}
                _ = async {
                    match act_until {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
        }
        fetcher.abort();
        // Reconciles in flight are aborted at their next await: a step whose write-ahead
        // is on the branch but whose I/O did not run is what a crash leaves, and is
        // handled as one.
        tasks.shutdown().await;
        end
    }

    /// With leader election, reads the records from the status branch again once the
    /// elector leads, before the first reconcile: a replica that followed holds the copy it
    /// read when it started, and the leader before it has written since (with a record
    /// missing from that copy, the job would be deployed a second time). Retries a failed
    /// read with backoff for as long as it leads; `Some` with how [`Agent::run`] ends when
    /// the leadership or the agent stops first. Without leader election: `None` at once.
    async fn reload_records_on_leading(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<RunEnd> {
        self.hooks.leadership.as_ref()?;
        let mut failures = 0u32;
        loop {
            if *shutdown.borrow() {
                return Some(RunEnd::Shutdown);
            }
            if !self.hooks.may_act() {
                tracing::warn!("lost leadership before the first reconcile, stopping");
                self.hooks.telemetry.set_leader(false);
                return Some(RunEnd::LostLeadership);
            }
            let status = self.status.clone();
            let loaded = super::blocking("status load", self.settings.git_timeout, move || {
                status.load()
            })
            .await
            .and_then(|r| r.map_err(ReconcileError::from));
            match loaded {
                Ok(records) => {
                    tracing::info!(
                        records = records.len(),
                        "leading: read the status branch again"
                    );
                    records
                        .values()
                        .for_each(|r| self.hooks.telemetry.observe_record(r));
                    if let Ok(mut mine) = self.records.lock() {
                        *mine = records;
                    }
                    return None;
                }
                Err(e) => {
                    failures += 1;
                    let d = backoff::default_delay(failures, self.env.jitter())
                        .min(self.settings.interval);
                    tracing::warn!(error = %e, retry_in = ?d, "cannot read the status branch; not reconciling until it is read");
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }

    /// Waits until the elector leads (true), or for shutdown or the elector's end (false).
    /// Without leader election: true at once.
    async fn wait_for_leadership(
        &self,
        leadership: &mut Option<watch::Receiver<LeaderState>>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let Some(rx) = leadership.as_mut() else {
            self.hooks.telemetry.set_leader(true);
            return true;
        };
        self.hooks.telemetry.set_leader(false);
        let mut said = false;
        loop {
            if *shutdown.borrow() {
                return false;
            }
            let state = rx.borrow_and_update().clone();
            if state.is_leading() {
                tracing::info!("leading: reconciling");
                self.hooks.telemetry.set_leader(true);
                return true;
            }
            if !said {
                tracing::info!(
                    ?state,
                    "not leading: waiting for the Lease before reconciling (fetching meanwhile)"
                );
                said = true;
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return false;
                    }
                }
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        return false;
                    }
                }
            }
        }
    }
}
