//! What the agent tells Prometheus, and whether it is healthy and ready.
//!
//! One [`Telemetry`] per agent holds a `prometheus-client` registry with every metric
//! (names by Prometheus conventions: the `flink_gitops_` prefix, `_total` on counters,
//! `_seconds` on durations and times) and the readiness flags. The agent's loop, the
//! webhook receiver and the notification sinks write to it; the HTTP server
//! ([`crate::serve`]) reads it: [`Telemetry::encode`] renders the OpenMetrics text that
//! `/metrics` serves, [`Telemetry::ready`] answers `/readyz`.
//!
//! Per-resource values (resources by lifecycle state, the age of each job's newest
//! savepoint) are computed at scrape time from the facts the agent recorded last
//! ([`Telemetry::observe_record`], called on every record write), so an age keeps growing
//! between writes and a resource that left the agent's records leaves the metrics.
//!
//! The metrics (all prefixed `flink_gitops_`):
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `resources` | gauge | `state` | resources per lifecycle state (every state listed, 0 included) |
//! | `reconciles_total` | counter | `result` (`idle`, `requeue`, `error`) | reconciles of one resource |
//! | `reconcile_duration_seconds` | histogram | `result` | time of one reconcile |
//! | `reconcile_errors_total` | counter | `class` (`transient`, `waiting`, `stalled`) | failed reconciles by retry class |
//! | `drifted_resources` | gauge | | resources whose live state differs from Git |
//! | `git_fetches_total` | counter | | fetches of the branch started (polls and webhooks) |
//! | `git_fetch_failures_total` | counter | | fetches that failed |
//! | `git_fetch_duration_seconds` | histogram | | time of one fetch, failed ones included |
//! | `git_revision` | gauge | `revision` | 1 for the commit fetched last |
//! | `last_successful_sync_timestamp_seconds` | gauge | | unix time of the last successful fetch |
//! | `savepoints_total` | counter | `trigger` | savepoints recorded (upgrade, manual, periodic, suspend, delete) |
//! | `savepoint_failures_total` | counter | | savepoints that failed |
//! | `newest_savepoint_age_seconds` | gauge | `namespace`, `kind`, `name` | age of each job's newest savepoint |
//! | `webhook_requests_total` | counter | `result` | webhook requests by outcome ([`WebhookResult`]) |
//! | `notifications_total` | counter | `sink`, `result` (`delivered`, `failed`, `dropped`) | notifications by outcome |
//! | `leader` | gauge | | 1 while this agent may reconcile (always without leader election), 0 while it follows or waits for the Lease |

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::flink::lifecycle::record::{LifecycleState, Record, SnapshotTrigger};
use crate::flink::spec::ResourceKey;

/// Prefix of every metric name.
pub const METRIC_PREFIX: &str = "flink_gitops";

/// Content type of [`Telemetry::encode`]'s output (what `/metrics` answers a scraper that
/// asks for OpenMetrics with, as Prometheus does).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of [`Telemetry::encode_text`]'s output (what `/metrics` answers anyone
/// else with: the Prometheus text format that `promtool check metrics` reads).
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every lifecycle state, in the order the metrics list them.
const STATES: [LifecycleState; 9] = [
    LifecycleState::Created,
    LifecycleState::Deployed,
    LifecycleState::Stable,
    LifecycleState::Upgrading,
    LifecycleState::Suspended,
    LifecycleState::RollingBack,
    LifecycleState::RolledBack,
    LifecycleState::Failed,
    LifecycleState::Deleted,
];

/// How one reconcile ended, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ReconcileResult {
    /// At rest: looked at again after the interval or when Git moves.
    idle,
    /// A step in flight: looked at again after the fast poll.
    requeue,
    /// Failed; retried by its class.
    error,
}

/// An error's retry class, as a label ([`crate::apply::executor::ErrorClass`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ErrorClassLabel {
    transient,
    waiting,
    stalled,
}

/// What the webhook receiver did with a request ([`crate::serve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum WebhookResult {
    /// A push to the watched branch: a fetch was requested (202).
    accepted,
    /// A ping (GitHub) answered (200); no fetch.
    ping,
    /// Authentic, but not a push to the watched branch (204); no fetch.
    ignored,
    /// No signature or token (401).
    unauthorized,
    /// A signature or token that does not match (403).
    forbidden,
    /// Not a POST (405).
    method_not_allowed,
    /// Larger than the cap (413).
    too_large,
    /// Not JSON, or not the JSON of a push (400).
    bad_request,
    /// Webhooks are off: no secret configured (404).
    disabled,
}

/// What happened to one notification for one sink ([`crate::notify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum NotificationResult {
    delivered,
    /// Given up after the retries, or refused by the receiver (a 4xx other than 408/429).
    failed,
    /// Pushed out of a full queue by a newer one.
    dropped,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: ReconcileResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ClassLabels {
    class: ErrorClassLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RevisionLabels {
    revision: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TriggerLabels {
    trigger: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResourceLabels {
    namespace: String,
    kind: String,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WebhookLabels {
    result: WebhookResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct NotificationLabels {
    sink: String,
    result: NotificationResult,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// What the metrics know of one resource, from its record.
#[derive(Debug, Clone, Copy)]
struct ResourceView {
    state: LifecycleState,
    /// Unix seconds the newest savepoint completed.
    newest_savepoint: Option<f64>,
}

/// The agent's metrics and health. Shared as `Arc<Telemetry>`; every method takes `&self`
/// and never blocks for long (a mutex held for a map update).
pub struct Telemetry {
    registry: Registry,
    resources: Family<StateLabels, Gauge>,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_duration: Family<ResultLabels, Histogram, fn() -> Histogram>,
    errors: Family<ClassLabels, Counter>,
    drifted: Gauge,
    fetches: Counter,
    fetch_failures: Counter,
    fetch_duration: Histogram,
    revision: Family<RevisionLabels, Gauge>,
    last_sync: FloatGauge,
    savepoints: Family<TriggerLabels, Counter>,
    savepoint_failures: Counter,
    savepoint_age: Family<ResourceLabels, FloatGauge>,
    webhook: Family<WebhookLabels, Counter>,
    notifications: Family<NotificationLabels, Counter>,
    leader: Gauge,
    views: Mutex<BTreeMap<ResourceKey, ResourceView>>,
    drifted_keys: Mutex<BTreeSet<ResourceKey>>,
    status_loaded: AtomicBool,
    fetched: AtomicBool,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("ready", &self.ready())
            .finish_non_exhaustive()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

fn duration_histogram() -> Histogram {
    // 5 ms to ~80 s: a steady reconcile takes milliseconds, a savepoint upgrade minutes
    // (spread over many reconciles), a fetch of a large repository seconds.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Telemetry {
    /// A registry with every metric at zero; not ready.
    pub fn new() -> Telemetry {
        let mut registry = Registry::with_prefix(METRIC_PREFIX);
        let t = Telemetry {
            registry: Registry::default(),
            resources: Family::default(),
            reconciles: Family::default(),
            reconcile_duration: Family::new_with_constructor(duration_histogram),
            errors: Family::default(),
            drifted: Gauge::default(),
            fetches: Counter::default(),
            fetch_failures: Counter::default(),
            fetch_duration: duration_histogram(),
            revision: Family::default(),
            last_sync: FloatGauge::default(),
            savepoints: Family::default(),
            savepoint_failures: Counter::default(),
            savepoint_age: Family::default(),
            webhook: Family::default(),
            notifications: Family::default(),
            leader: Gauge::default(),
            views: Mutex::new(BTreeMap::new()),
            drifted_keys: Mutex::new(BTreeSet::new()),
            status_loaded: AtomicBool::new(false),
            fetched: AtomicBool::new(false),
        };
        registry.register(
            "resources",
            "Resources by lifecycle state",
            t.resources.clone(),
        );
        registry.register(
            "reconciles",
            "Reconciles of one resource, by how they ended",
            t.reconciles.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "Time of one reconcile of one resource",
            Unit::Seconds,
            t.reconcile_duration.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles by retry class",
            t.errors.clone(),
        );
        registry.register(
            "drifted_resources",
            "Resources whose live state differs from Git",
            t.drifted.clone(),
        );
        registry.register(
            "git_fetches",
            "Fetches of the branch started (interval polls and webhooks)",
            t.fetches.clone(),
        );
        registry.register(
            "git_fetch_failures",
            "Fetches of the branch that failed",
            t.fetch_failures.clone(),
        );
        registry.register_with_unit(
            "git_fetch_duration",
            "Time of one fetch of the branch",
            Unit::Seconds,
            t.fetch_duration.clone(),
        );
        registry.register(
            "git_revision",
            "1 for the commit fetched last",
            t.revision.clone(),
        );
        registry.register_with_unit(
            "last_successful_sync_timestamp",
            "Unix time of the last successful fetch of the branch",
            Unit::Seconds,
            t.last_sync.clone(),
        );
        registry.register(
            "savepoints",
            "Savepoints recorded, by trigger",
            t.savepoints.clone(),
        );
        registry.register(
            "savepoint_failures",
            "Savepoints that failed",
            t.savepoint_failures.clone(),
        );
        registry.register_with_unit(
            "newest_savepoint_age",
            "Age of each job's newest savepoint",
            Unit::Seconds,
            t.savepoint_age.clone(),
        );
        registry.register(
            "webhook_requests",
            "Webhook requests by outcome",
            t.webhook.clone(),
        );
        registry.register(
            "notifications",
            "Notifications by sink and outcome",
            t.notifications.clone(),
        );
        registry.register(
            "leader",
            "1 while this agent may reconcile (holds the leader election Lease, or runs without leader election)",
            t.leader.clone(),
        );
        Telemetry { registry, ..t }
    }

    // ------------------------------------------------------------------ health

    /// The status branch was read (the agent knows what it recorded).
    pub fn set_status_loaded(&self) {
        self.status_loaded.store(true, Ordering::SeqCst);
    }

    /// Ready once the status branch was read and the first fetch succeeded (`/readyz`).
    pub fn ready(&self) -> bool {
        self.status_loaded.load(Ordering::SeqCst) && self.fetched.load(Ordering::SeqCst)
    }

    /// Whether this agent may reconcile now (the `leader` gauge).
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The `leader` gauge: 1 while this agent may reconcile.
    pub fn leader(&self) -> bool {
        self.leader.get() == 1
    }

    // ------------------------------------------------------------------ the loop

    /// One reconcile ended after `took`. `error_class` is set for a failed one.
    pub fn observe_reconcile(
        &self,
        result: ReconcileResult,
        error_class: Option<ErrorClassLabel>,
        took: Duration,
    ) {
        let labels = ResultLabels { result };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if let Some(class) = error_class {
            self.errors.get_or_create(&ClassLabels { class }).inc();
        }
    }

    /// One fetch of the branch ended after `took`: with the commit it found, or failed.
    pub fn observe_fetch(&self, commit: Option<&str>, took: Duration) {
        self.fetches.inc();
        self.fetch_duration.observe(took.as_secs_f64());
        match commit {
            Some(c) => {
                if self
                    .revision
                    .get(&RevisionLabels {
                        revision: c.to_string(),
                    })
                    .is_none()
                {
                    self.revision.clear();
                    self.revision
                        .get_or_create(&RevisionLabels {
                            revision: c.to_string(),
                        })
                        .set(1);
                }
                self.last_sync.set(unix_now());
                self.fetched.store(true, Ordering::SeqCst);
            }
            None => {
                self.fetch_failures.inc();
            }
        }
    }

    /// Fetches started so far (tests and benchmarks watch it).
    pub fn fetches(&self) -> u64 {
        self.fetches.get()
    }

    // ------------------------------------------------------------------ records

    /// The record of a resource as just written (or read at start).
    pub fn observe_record(&self, record: &Record) {
        let view = ResourceView {
            state: record.derive_lifecycle(),
            newest_savepoint: record
                .newest_savepoint()
                .and_then(|s| humantime::parse_rfc3339_weak(&s.time).ok())
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64()),
        };
        if let Ok(mut views) = self.views.lock() {
            views.insert(record.key(), view);
        }
    }

    /// A savepoint was recorded for a resource.
    pub fn savepoint_taken(&self, trigger: SnapshotTrigger) {
        let trigger = match trigger {
            SnapshotTrigger::Upgrade => "upgrade",
            SnapshotTrigger::Manual => "manual",
            SnapshotTrigger::Periodic => "periodic",
            SnapshotTrigger::Suspend => "suspend",
            SnapshotTrigger::Delete => "delete",
            SnapshotTrigger::Checkpoint => "checkpoint",
        };
        self.savepoints
            .get_or_create(&TriggerLabels {
                trigger: trigger.to_string(),
            })
            .inc();
    }

    /// A savepoint failed.
    pub fn savepoint_failed(&self) {
        self.savepoint_failures.inc();
    }

    // ------------------------------------------------------------------ drift

    /// Whether `key`'s live state differs from Git now. `flink_gitops_drifted_resources`
    /// counts the resources last set `true`; call it on every drift check, with `false`
    /// once healed or gone.
    pub fn set_drifted(&self, key: &ResourceKey, drifted: bool) {
        if let Ok(mut keys) = self.drifted_keys.lock() {
            if drifted {
                keys.insert(key.clone());
            } else {
                keys.remove(key);
            }
            self.drifted.set(keys.len() as i64);
        }
    }

    /// Resources marked drifted now.
    pub fn drifted(&self) -> u64 {
        self.drifted.get().max(0) as u64
    }

    // ------------------------------------------------------------------ webhooks and notifications

    /// One webhook request ended.
    pub fn webhook_request(&self, result: WebhookResult) {
        self.webhook.get_or_create(&WebhookLabels { result }).inc();
    }

    /// Webhook requests that ended with `result` so far.
    pub fn webhook_requests(&self, result: WebhookResult) -> u64 {
        self.webhook
            .get(&WebhookLabels { result })
            .map(|c| c.get())
            .unwrap_or(0)
    }

    /// One notification for `sink` ended.
    pub fn notification(&self, sink: &str, result: NotificationResult) {
        self.notifications
            .get_or_create(&NotificationLabels {
                sink: sink.to_string(),
                result,
            })
            .inc();
    }

    /// Notifications for `sink` that ended with `result` so far.
    pub fn notifications(&self, sink: &str, result: NotificationResult) -> u64 {
        self.notifications
            .get(&NotificationLabels {
                sink: sink.to_string(),
                result,
            })
            .map(|c| c.get())
            .unwrap_or(0)
    }

    // ------------------------------------------------------------------ exposition

    /// The OpenMetrics text of every metric ([`CONTENT_TYPE`]), per-resource values
    /// computed now.
    pub fn encode(&self) -> String {
        self.refresh(unix_now());
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            // Writing to a String cannot fail; say so rather than serve half a page.
            out.clear();
            let _ = writeln!(out, "# EOF");
        }
        out
    }

    /// The same metrics in the Prometheus text format 0.0.4 ([`TEXT_CONTENT_TYPE`]): a
    /// counter's family is named with its `_total` as its samples are, and OpenMetrics'
    /// `# UNIT` and `# EOF` lines are left out.
    pub fn encode_text(&self) -> String {
        openmetrics_to_text(&self.encode())
    }

    fn refresh(&self, now: f64) {
        let Ok(views) = self.views.lock() else {
            return;
        };
        let mut counts: BTreeMap<String, i64> = STATES.iter().map(|s| (s.to_string(), 0)).collect();
        self.savepoint_age.clear();
        for (key, view) in views.iter() {
            *counts.entry(view.state.to_string()).or_insert(0) += 1;
            if let (Some(t), false) = (view.newest_savepoint, view.state == LifecycleState::Deleted)
            {
                self.savepoint_age
                    .get_or_create(&ResourceLabels {
                        namespace: key.namespace.clone(),
                        kind: key.kind.as_str().to_string(),
                        name: key.name.clone(),
                    })
                    .set((now - t).max(0.0));
            }
        }
        for (state, n) in counts {
            self.resources.get_or_create(&StateLabels { state }).set(n);
        }
    }
}

/// Rewrites OpenMetrics text (as `prometheus-client` writes it) into the Prometheus text
/// format 0.0.4.
fn openmetrics_to_text(open: &str) -> String {
    let mut out = String::with_capacity(open.len());
    let mut help: Option<(&str, &str)> = None;
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name, text));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let family = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            if let Some((_, text)) = help.take().filter(|(n, _)| *n == name) {
                let _ = writeln!(out, "# HELP {family} {text}");
            }
            let _ = writeln!(out, "# TYPE {family} {kind}");
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flink::lifecycle::record::Savepoint;
    use crate::flink::spec::Kind;

    #[test]
    fn names_follow_prometheus_conventions_and_per_resource_values_come_from_records() {
        let t = Telemetry::new();
        let key = ResourceKey::new("default", Kind::FlinkDeployment, "orders");
        let mut rec = Record::new(&key);
        rec.savepoints.push(Savepoint {
            location: "file:///sp/1".into(),
            time: "2020-01-01T00:00:00.000Z".into(),
            trigger: SnapshotTrigger::Manual,
            revision: "r".into(),
            for_revision: None,
            job_id: "j".into(),
        });
        t.observe_record(&rec);
        t.observe_reconcile(
            ReconcileResult::error,
            Some(ErrorClassLabel::transient),
            Duration::from_millis(3),
        );
        t.observe_fetch(Some("abc"), Duration::from_millis(10));
        t.observe_fetch(None, Duration::from_millis(10));
        t.set_drifted(&key, true);
        t.savepoint_taken(SnapshotTrigger::Manual);
        let text = t.encode();
        assert!(
            text.contains("flink_gitops_resources{state=\"CREATED\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("flink_gitops_resources{state=\"STABLE\"} 0"),
            "{text}"
        );
        assert!(text.contains("flink_gitops_reconciles_total{result=\"error\"} 1"));
        assert!(text.contains("flink_gitops_reconcile_errors_total{class=\"transient\"} 1"));
        assert!(text.contains("flink_gitops_git_fetches_total 2"));
        assert!(text.contains("flink_gitops_git_fetch_failures_total 1"));
        assert!(text.contains("flink_gitops_git_revision{revision=\"abc\"} 1"));
        assert!(text.contains("flink_gitops_drifted_resources 1"));
        assert!(text.contains("flink_gitops_savepoints_total{trigger=\"manual\"} 1"));
        assert!(text.contains("flink_gitops_reconcile_duration_seconds_bucket"));
        let age = text
            .lines()
            .find(|l| l.starts_with("flink_gitops_newest_savepoint_age_seconds{"))
            .unwrap_or_default();
        assert!(age.contains("name=\"orders\""), "{text}");
        let secs: f64 = age
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!(secs > 3600.0 * 24.0 * 365.0, "{age}");
        let plain = t.encode_text();
        assert!(plain.contains("# TYPE flink_gitops_git_fetches_total counter\n"));
        assert!(plain.contains("# HELP flink_gitops_git_fetches_total Fetches"));
        assert!(!plain.contains("# EOF") && !plain.contains("# UNIT"));
        assert!(!t.ready());
        t.set_status_loaded();
        assert!(t.ready());
        t.set_drifted(&key, false);
        assert_eq!(t.drifted(), 0);
    }
}
