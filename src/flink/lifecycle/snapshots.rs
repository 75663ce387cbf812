//! Snapshots besides upgrades, as pure rules over the record: periodic savepoints and
//! checkpoints (when one is due), retries of failed triggers (with backoff), and the bounded
//! savepoint history (which savepoints to dispose of, which to forget).
//!
//! Data flow: [`super::decide`] asks [`periodic_trigger`] (and [`may_trigger`] for a manual
//! nonce) once a running job has nothing else to do; the trigger is an ordinary
//! `Step::TriggerSnapshot` with `periodic: true`, in flight as `InFlight::Snapshotting`;
//! [`super::transition`] records the result through [`finish`] or [`refused`]. The executor
//! asks [`cleanup`] for a resting resource, writes the disposals it returns to the record
//! first ([`Disposal`], the intent), then calls Flink and records the outcome with
//! [`disposal_sent`], [`disposal_done`] or [`disposal_failed`].
//!
//! Mirrors the operator's `SnapshotUtils.shouldTriggerSnapshot` (interval rule: the last
//! trigger plus the interval is before now; cron rule: the next time after the last trigger
//! is before now) and
//! `SnapshotObserver` (history bounded by `kubernetes.operator.savepoint.history.max.count`
//! and `.max.age`, oldest first, only savepoints of trigger type PERIODIC or UPGRADE, the
//! newest always kept). Where the operator keeps the last trigger time in memory, this
//! agent records it ([`Snapshots::last_periodic_savepoint`]), so a restart does not move
//! the schedule.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::decide::{nonce_key, savepoint_format, Step};
use super::observe::ObservedJob;
use super::record::{reason, InFlight, LastError, Record, Savepoint, SnapshotTrigger};
use crate::config;
pub use crate::flink::spec::cron::Schedule;
use crate::flink::spec::quantity::parse_duration;
use crate::flink::spec::Spec;

// ---------------------------------------------------------------------------------------
// What the record holds
// ---------------------------------------------------------------------------------------

/// The record's snapshot facts besides the savepoint history ([`Record::savepoints`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshots {
    /// RFC 3339 time the last periodic savepoint was triggered (the operator's
    /// `lastPeriodicSavepointTimestamp`); the schedule runs from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_periodic_savepoint: Option<String>,
    /// The same for periodic checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_periodic_checkpoint: Option<String>,
    /// The newest checkpoint the agent triggered (manual or periodic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checkpoint: Option<CheckpointTaken>,
    /// A savepoint trigger that failed, until one succeeds: the next is tried after a
    /// backoff ([`retry_delay`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoint_failure: Option<TriggerFailure>,
    /// The same for checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_failure: Option<TriggerFailure>,
    /// Savepoints of the history being disposed through Flink: written before the call,
    /// dropped (with the history entry) once Flink says the files are gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disposals: Vec<Disposal>,
}

impl Snapshots {
    /// Whether nothing is recorded (the field is then left out of the file).
    pub fn is_empty(&self) -> bool {
        *self == Snapshots::default()
    }

    fn failure_mut(&mut self, checkpoint: bool) -> &mut Option<TriggerFailure> {
        if checkpoint {
            &mut self.checkpoint_failure
        } else {
            &mut self.savepoint_failure
        }
    }

    /// The pending failure of a snapshot kind.
    pub fn failure(&self, checkpoint: bool) -> Option<&TriggerFailure> {
        if checkpoint {
            self.checkpoint_failure.as_ref()
        } else {
            self.savepoint_failure.as_ref()
        }
    }

    fn last_periodic(&self, checkpoint: bool) -> Option<&String> {
        if checkpoint {
            self.last_periodic_checkpoint.as_ref()
        } else {
            self.last_periodic_savepoint.as_ref()
        }
    }
}

/// A checkpoint the agent triggered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointTaken {
    /// Where Flink wrote it, when it said (`external_path` of the completed checkpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// RFC 3339 time it completed.
    pub time: String,
    /// `manual` (checkpointTriggerNonce) or `periodic`.
    pub trigger: SnapshotTrigger,
    /// The nonce it answered (manual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<i64>,
    pub job_id: String,
}

/// A snapshot trigger that failed, kept until one of the same kind succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerFailure {
    /// `manual` or `periodic`.
    pub trigger: SnapshotTrigger,
    /// The nonce it answered (manual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<i64>,
    /// Failed tries in a row.
    pub attempts: u32,
    /// RFC 3339 time of the last failure.
    pub time: String,
    /// Flink's cause.
    pub cause: String,
}

/// A savepoint being disposed (`POST /savepoint-disposal`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Disposal {
    pub location: String,
    /// RFC 3339 time the disposal was decided.
    pub since: String,
    /// Flink's id of the disposal operation, once asked (a disposal carries no caller id,
    /// so one sent but not recorded is simply sent again: disposing a savepoint that is
    /// already gone is done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_id: Option<String>,
    /// Failed tries in a row.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
    /// RFC 3339 time of the last failed try.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<String>,
    /// Why the last try failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

// ---------------------------------------------------------------------------------------
// Schedules
// ---------------------------------------------------------------------------------------

/// The periodic schedule a spec asks for (`checkpoint`: checkpoints, else savepoints); a
/// value that does not read is off here (validation reports it).
pub fn schedule(spec: &Spec, checkpoint: bool) -> Option<Schedule> {
    let option = if checkpoint {
        &config::OP_PERIODIC_CHECKPOINT
    } else {
        &config::OP_PERIODIC_SAVEPOINT
    };
    let (_, v) = config::lookup(spec.flink_configuration(), option)?;
    Schedule::parse(v).ok().flatten()
}

fn ms_of(time: &str) -> Option<u64> {
    humantime::parse_rfc3339(time)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
}

/// The wait before try `attempts + 1` of a failing trigger: 10 s doubling to 10 min.
pub fn retry_delay(attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(20);
    config::DEFAULT_SNAPSHOT_RETRY_BASE
        .saturating_mul(1u32 << exp)
        .min(config::DEFAULT_SNAPSHOT_RETRY_MAX)
}

/// Whether a snapshot of this kind may be triggered at `now_ms`: no failure pending, or its
/// backoff has passed.
pub fn may_trigger(rec: &Record, checkpoint: bool, now_ms: u64) -> bool {
    match rec.snapshots.failure(checkpoint) {
        None => true,
        Some(f) => ms_of(&f.time)
            .is_none_or(|t| now_ms >= t.saturating_add(retry_delay(f.attempts).as_millis() as u64)),
    }
}

/// Whether a periodic snapshot is due: the schedule from the last periodic trigger (or,
/// before the first, from when the record's lifecycle state last changed, as the operator
/// counts from the resource's creation) names a time before `now_ms`, and no failed try
/// waits for its backoff. Pure; table-tested below.
pub fn periodic_due(schedule: &Schedule, rec: &Record, checkpoint: bool, now_ms: u64) -> bool {
    if rec.snapshots.failure(checkpoint).is_some() {
        return may_trigger(rec, checkpoint, now_ms);
    }
    let last = rec
        .snapshots
        .last_periodic(checkpoint)
        .and_then(|t| ms_of(t))
        .or_else(|| ms_of(&rec.since));
    last.is_some_and(|l| schedule.due(l, now_ms))
}

/// The periodic savepoint or checkpoint due for a running job, if any (savepoints first).
pub fn periodic_trigger(
    spec: &Spec,
    rec: &Record,
    job: &ObservedJob,
    now_ms: u64,
    trigger_id: &str,
) -> Option<Step> {
    spec.job()?;
    [false, true].into_iter().find_map(|checkpoint| {
        let s = schedule(spec, checkpoint)?;
        periodic_due(&s, rec, checkpoint, now_ms).then(|| Step::TriggerSnapshot {
            job_id: job.job_id.clone(),
            trigger_id: trigger_id.to_string(),
            nonce: 0,
            checkpoint,
            periodic: true,
            format: savepoint_format(spec),
        })
    })
}

// ---------------------------------------------------------------------------------------
// Trigger results
// ---------------------------------------------------------------------------------------

fn what(checkpoint: bool, periodic: bool) -> &'static str {
    match (periodic, checkpoint) {
        (true, true) => "periodic checkpoint",
        (true, false) => "periodic savepoint",
        (false, true) => "checkpoint (checkpointTriggerNonce)",
        (false, false) => "savepoint (savepointTriggerNonce)",
    }
}

fn failure_reason(checkpoint: bool) -> &'static str {
    if checkpoint {
        reason::CHECKPOINT_FAILED
    } else {
        reason::SAVEPOINT_FAILED
    }
}

/// Records a failed try: Flink's cause as the last error, the failure count for the
/// backoff; a manual nonce is given up (recorded as acted on) after
/// [`config::DEFAULT_MANUAL_SNAPSHOT_ATTEMPTS`] tries.
fn failed(r: &mut Record, checkpoint: bool, periodic: bool, nonce: i64, cause: &str, now: &str) {
    let attempts = r.snapshots.failure(checkpoint).map_or(0, |f| f.attempts) + 1;
    let trigger = if periodic {
        SnapshotTrigger::Periodic
    } else {
        SnapshotTrigger::Manual
    };
    *r.snapshots.failure_mut(checkpoint) = Some(TriggerFailure {
        trigger,
        nonce: (!periodic).then_some(nonce),
        attempts,
        time: now.to_string(),
        cause: cause.to_string(),
    });
    let give_up = !periodic && attempts >= config::DEFAULT_MANUAL_SNAPSHOT_ATTEMPTS;
    let next = if give_up {
        "given up until the nonce changes".to_string()
    } else {
        format!(
            "next try in {}",
            humantime::format_duration(retry_delay(attempts))
        )
    };
    r.last_error = Some(LastError {
        reason: failure_reason(checkpoint).to_string(),
        message: format!(
            "{} failed (try {attempts}, {next}): {cause}",
            what(checkpoint, periodic)
        ),
        time: now.to_string(),
    });
    if give_up {
        r.nonces.insert(nonce_key(checkpoint).to_string(), nonce);
    }
}

/// The record after the in-flight snapshot finished: completed at `location` (`error`
/// none) or failed with Flink's cause.
pub fn finish(r: &mut Record, location: Option<&String>, error: Option<&String>, now: &str) {
    let Some(InFlight::Snapshotting {
        nonce,
        checkpoint,
        job_id,
        periodic,
        since,
        ..
    }) = r.in_flight.clone()
    else {
        return;
    };
    r.in_flight = None;
    if periodic {
        let at = if since.is_empty() { now } else { &since };
        let slot = if checkpoint {
            &mut r.snapshots.last_periodic_checkpoint
        } else {
            &mut r.snapshots.last_periodic_savepoint
        };
        *slot = Some(at.to_string());
    }
    if let Some(cause) = error {
        failed(r, checkpoint, periodic, nonce, cause, now);
        return;
    }
    if !periodic {
        r.nonces.insert(nonce_key(checkpoint).to_string(), nonce);
    }
    *r.snapshots.failure_mut(checkpoint) = None;
    if r.last_error
        .as_ref()
        .is_some_and(|e| e.reason == failure_reason(checkpoint))
    {
        r.last_error = None;
    }
    let trigger = if periodic {
        SnapshotTrigger::Periodic
    } else {
        SnapshotTrigger::Manual
    };
    if checkpoint {
        r.snapshots.last_checkpoint = Some(CheckpointTaken {
            location: location.cloned(),
            time: now.to_string(),
            trigger,
            nonce: (!periodic).then_some(nonce),
            job_id,
        });
    } else if let Some(loc) = location {
        if !r.savepoints.iter().any(|s| &s.location == loc) {
            r.savepoints.push(Savepoint {
                location: loc.clone(),
                time: now.to_string(),
                trigger,
                revision: r.last_reconciled_revision.clone().unwrap_or_default(),
                for_revision: None,
                job_id,
            });
        }
    }
}

/// The record after Flink refused the trigger itself (a stalled REST error).
pub fn refused(
    r: &mut Record,
    checkpoint: bool,
    periodic: bool,
    nonce: i64,
    message: &str,
    now: &str,
) {
    if let Some(InFlight::Snapshotting { since, .. }) = &r.in_flight {
        if periodic {
            let at = if since.is_empty() { now } else { since }.to_string();
            if checkpoint {
                r.snapshots.last_periodic_checkpoint = Some(at);
            } else {
                r.snapshots.last_periodic_savepoint = Some(at);
            }
        }
    }
    r.in_flight = None;
    failed(r, checkpoint, periodic, nonce, message, now);
}

// ---------------------------------------------------------------------------------------
// The bounded savepoint history
// ---------------------------------------------------------------------------------------

/// How a spec bounds its savepoint history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPolicy {
    /// `kubernetes.operator.savepoint.history.max.count` (at least 1).
    pub max_count: usize,
    /// `kubernetes.operator.savepoint.history.max.age`.
    pub max_age: Duration,
    /// `kubernetes.operator.savepoint.cleanup.enabled`: dispose of what leaves the history.
    pub dispose: bool,
}

impl HistoryPolicy {
    /// The policy a spec's configuration sets (operator defaults where unset or unreadable).
    pub fn of(spec: &Spec) -> HistoryPolicy {
        let cfg = spec.flink_configuration();
        HistoryPolicy {
            max_count: config::lookup(cfg, &config::OP_SAVEPOINT_HISTORY_COUNT)
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .unwrap_or(config::DEFAULT_SAVEPOINT_HISTORY_COUNT)
                .max(1),
            max_age: config::lookup(cfg, &config::OP_SAVEPOINT_HISTORY_AGE)
                .and_then(|(_, v)| parse_duration(v))
                .unwrap_or(config::DEFAULT_SAVEPOINT_HISTORY_AGE),
            dispose: config::lookup_bool(
                cfg,
                &config::OP_SAVEPOINT_CLEANUP,
                config::DEFAULT_SAVEPOINT_CLEANUP,
            ),
        }
    }
}

/// What leaves the history: savepoints to dispose of through Flink, and entries to forget
/// (retained checkpoints, which are Flink's to delete).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleanup {
    pub dispose: Vec<String>,
    pub forget: Vec<String>,
}

/// Locations a restore may still need: never disposed or forgotten. The recorded restore
/// point, the newest entry of the history, and the restore of a start in flight.
fn protected(rec: &Record) -> Vec<&str> {
    let mut keep: Vec<&str> = Vec::new();
    if let Some(p) = &rec.restore_path {
        keep.push(p);
    }
    if let Some(s) = rec.savepoints.last() {
        keep.push(&s.location);
    }
    if let Some(InFlight::Starting {
        restore: Some(p), ..
    }) = &rec.in_flight
    {
        keep.push(p);
    }
    keep
}

/// Which entries leave the history now (the operator's `SnapshotObserver` rule, oldest
/// first): of the savepoints the agent took on a schedule or for an upgrade, those past
/// `max_count` and those older than `max_age`, never a protected one. Retained checkpoints
/// recorded as restore points leave by the same count and age but are only forgotten.
/// Manual savepoints (a nonce) and final savepoints (suspend, delete) are the user's and
/// stay. Pure; table-tested below.
pub fn cleanup(rec: &Record, policy: &HistoryPolicy, now_ms: u64) -> Cleanup {
    let keep = protected(rec);
    let disposing: Vec<&str> = rec
        .snapshots
        .disposals
        .iter()
        .map(|d| d.location.as_str())
        .collect();
    let mut out = Cleanup::default();
    let max_age_ms = policy.max_age.as_millis() as u64;
    for (kinds, dispose) in [
        (
            &[SnapshotTrigger::Periodic, SnapshotTrigger::Upgrade][..],
            true,
        ),
        (&[SnapshotTrigger::Checkpoint][..], false),
    ] {
        let list: Vec<&Savepoint> = rec
            .savepoints
            .iter()
            .filter(|s| kinds.contains(&s.trigger))
            .collect();
        let mut leaving = 0usize;
        for s in &list {
            if disposing.contains(&s.location.as_str()) {
                leaving += 1;
                continue;
            }
            if keep.contains(&s.location.as_str()) {
                continue;
            }
            let too_many = list.len() - leaving > policy.max_count;
            let too_old = ms_of(&s.time).is_some_and(|t| now_ms.saturating_sub(t) > max_age_ms);
            if too_many || too_old {
                leaving += 1;
                if dispose && policy.dispose {
                    out.dispose.push(s.location.clone());
                } else {
                    out.forget.push(s.location.clone());
                }
            }
        }
    }
    out
}

/// The record with `cleanup` applied: forgotten entries dropped, disposals written as
/// intents. `None` when nothing changes.
pub fn start_cleanup(rec: &Record, cleanup: &Cleanup, now: &str) -> Option<Record> {
    if cleanup.dispose.is_empty() && cleanup.forget.is_empty() {
        return None;
    }
    let mut r = rec.clone();
    r.savepoints
        .retain(|s| !cleanup.forget.contains(&s.location));
    for location in &cleanup.dispose {
        r.snapshots.disposals.push(Disposal {
            location: location.clone(),
            since: now.to_string(),
            trigger_id: None,
            attempts: 0,
            failed_at: None,
            error: None,
        });
    }
    Some(r)
}

/// Whether a disposal should be sent (or polled) now: polled whenever it has a trigger id;
/// sent when never tried or its backoff has passed.
pub fn disposal_ready(d: &Disposal, now_ms: u64) -> bool {
    if d.trigger_id.is_some() || d.attempts == 0 {
        return true;
    }
    let wait = config::DEFAULT_DISPOSAL_RETRY_BASE
        .saturating_mul(1u32 << d.attempts.saturating_sub(1).min(20))
        .min(config::DEFAULT_SNAPSHOT_RETRY_MAX);
    d.failed_at
        .as_deref()
        .and_then(ms_of)
        .is_none_or(|t| now_ms >= t.saturating_add(wait.as_millis() as u64))
}

/// The record once Flink took the disposal (`trigger_id`) and is still working on it.
pub fn disposal_sent(rec: &Record, location: &str, trigger_id: &str) -> Record {
    let mut r = rec.clone();
    if let Some(d) = r
        .snapshots
        .disposals
        .iter_mut()
        .find(|d| d.location == location)
    {
        d.trigger_id = Some(trigger_id.to_string());
    }
    r
}

/// The record once the savepoint's files are gone: out of the disposals and the history.
pub fn disposal_done(rec: &Record, location: &str) -> Record {
    let mut r = rec.clone();
    r.snapshots.disposals.retain(|d| d.location != location);
    r.savepoints.retain(|s| s.location != location);
    r
}

/// The record after a failed try: counted for the backoff, the error kept on the disposal
/// (the resource itself is fine: its job runs).
pub fn disposal_failed(rec: &Record, location: &str, error: &str, now: &str) -> Record {
    let mut r = rec.clone();
    if let Some(d) = r
        .snapshots
        .disposals
        .iter_mut()
        .find(|d| d.location == location)
    {
        d.trigger_id = None;
        d.attempts += 1;
        d.failed_at = Some(now.to_string());
        d.error = Some(error.to_string());
    }
    r
}

#[cfg(test)]
#[path = "snapshots_tests.rs"]
mod tests;
