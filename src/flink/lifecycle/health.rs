//! The cluster health check as a pure function: is a running job unhealthy enough to be
//! restarted from its newest checkpoint? Mirrors the operator's `ClusterHealthEvaluator`
//! and `ClusterHealthObserver` (`kubernetes.operator.cluster.health-check.*`), over the
//! readings the agent took ([`HealthSample`], oldest first).
//!
//! Rules (the operator's keys and defaults):
//! - **restarts**: the restarts counted over the newest readings that span at least
//!   `…restarts.window` (2 min), scaled to the window, above `…restarts.threshold` (64).
//!   With readings spanning less than the window nothing is judged: a fresh agent (its
//!   readings are in memory) can only act later, never sooner.
//! - **checkpoint progress** (when `…checkpoint-progress.enabled`, default true, and
//!   `execution.checkpointing.interval` is set): no checkpoint completed over the last
//!   `…checkpoint-progress.window`, by default max(interval, checkpoint timeout) ×
//!   (tolerable failed checkpoints + 2).

use std::time::Duration;

use super::observe::HealthSample;
use crate::config;
use crate::flink::spec::quantity::parse_duration;
use crate::flink::spec::Spec;

/// What the health check needs from a spec; `None` from [`settings`] when it is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    pub restarts_window_ms: u64,
    pub restarts_threshold: u64,
    /// `None` when checkpoint progress is not checked.
    pub checkpoint_window_ms: Option<u64>,
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Healthy,
    /// Why, in words.
    Unhealthy(String),
}

fn duration(spec: &Spec, option: &config::FlinkOption) -> Option<Duration> {
    config::lookup(spec.flink_configuration(), option).and_then(|(_, v)| parse_duration(v))
}

/// The health check's settings for `spec`, `None` when
/// `kubernetes.operator.cluster.health-check.enabled` is not true.
pub fn settings(spec: &Spec) -> Option<HealthSettings> {
    let cfg = spec.flink_configuration();
    if !config::lookup_bool(cfg, &config::OP_HEALTH_CHECK, false) {
        return None;
    }
    let restarts_window = duration(spec, &config::OP_HEALTH_RESTARTS_WINDOW)
        .unwrap_or(config::DEFAULT_HEALTH_RESTARTS_WINDOW);
    let restarts_threshold = config::lookup(cfg, &config::OP_HEALTH_RESTARTS_THRESHOLD)
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .unwrap_or(config::DEFAULT_HEALTH_RESTARTS_THRESHOLD);
    let checkpointing = duration(spec, &config::CHECKPOINT_INTERVAL).filter(|d| !d.is_zero());
    let progress = config::lookup_bool(cfg, &config::OP_HEALTH_CHECKPOINT_PROGRESS, true);
    let checkpoint_window = match (progress, checkpointing) {
        (true, Some(interval)) => Some(
            duration(spec, &config::OP_HEALTH_CHECKPOINT_WINDOW).unwrap_or_else(|| {
                let timeout = duration(spec, &config::CHECKPOINT_TIMEOUT)
                    .unwrap_or(config::DEFAULT_CHECKPOINT_TIMEOUT);
                let tolerable = config::lookup(cfg, &config::CHECKPOINT_TOLERABLE_FAILURES)
                    .and_then(|(_, v)| v.trim().parse::<u32>().ok())
                    .unwrap_or(0);
                interval.max(timeout) * (tolerable + 2)
            }),
        ),
        _ => None,
    };
    Some(HealthSettings {
        restarts_window_ms: restarts_window.as_millis() as u64,
        restarts_threshold,
        checkpoint_window_ms: checkpoint_window.map(|d| d.as_millis() as u64),
    })
}

/// The newest reading at or before `since`: the start of a span that covers the window.
fn reading_at_or_before(samples: &[HealthSample], since: u64) -> Option<&HealthSample> {
    samples.iter().rev().find(|s| s.time_ms <= since)
}

/// Judges the readings (oldest first; the last is the newest) at `now_ms`.
pub fn evaluate(samples: &[HealthSample], now_ms: u64, s: &HealthSettings) -> Health {
    let Some(newest) = samples.last() else {
        return Health::Healthy;
    };
    if let Some(start) = reading_at_or_before(samples, now_ms.saturating_sub(s.restarts_window_ms))
    {
        let span = newest.time_ms.saturating_sub(start.time_ms).max(1);
        let restarts = newest.restarts.saturating_sub(start.restarts);
        // Scaled to the window (the operator's proportional count).
        let per_window = restarts.saturating_mul(s.restarts_window_ms) / span;
        if per_window > s.restarts_threshold {
            return Health::Unhealthy(format!(
                "{restarts} restarts in {} s (more than kubernetes.operator.cluster.health-check.restarts.threshold {} per {} s)",
                span / 1000,
                s.restarts_threshold,
                s.restarts_window_ms / 1000
            ));
        }
    }
    if let Some(window) = s.checkpoint_window_ms {
        if let Some(start) = reading_at_or_before(samples, now_ms.saturating_sub(window)) {
            if newest.completed_checkpoints <= start.completed_checkpoints {
                return Health::Unhealthy(format!(
                    "no checkpoint completed in {} s (kubernetes.operator.cluster.health-check.checkpoint-progress.window)",
                    window / 1000
                ));
            }
        }
    }
    Health::Healthy
}

/// How far back readings are worth keeping for `s`.
pub fn horizon_ms(s: &HealthSettings) -> u64 {
    s.restarts_window_ms
        .max(s.checkpoint_window_ms.unwrap_or(0))
        * 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, restarts: u64, checkpoints: u64) -> HealthSample {
        HealthSample {
            time_ms: secs * 1000,
            restarts,
            completed_checkpoints: checkpoints,
        }
    }

    const S: HealthSettings = HealthSettings {
        restarts_window_ms: 120_000,
        restarts_threshold: 64,
        checkpoint_window_ms: Some(60_000),
    };

    #[test]
    fn table() {
        let no_cp = HealthSettings {
            checkpoint_window_ms: None,
            ..S
        };
        let rows: Vec<(&str, Vec<HealthSample>, u64, HealthSettings, bool)> = vec![
            ("no readings", vec![], 1000, S, true),
            (
                "readings shorter than the window: not judged, however many restarts",
                vec![at(100, 0, 0), at(130, 500, 0)],
                130,
                no_cp,
                true,
            ),
            (
                "restarts over a full window above the threshold",
                vec![at(0, 0, 0), at(60, 30, 10), at(120, 65, 20)],
                120,
                no_cp,
                false,
            ),
            (
                "restarts at the threshold are healthy",
                vec![at(0, 0, 0), at(120, 64, 20)],
                120,
                no_cp,
                true,
            ),
            (
                "a longer span is scaled down to the window",
                vec![at(0, 0, 0), at(240, 100, 20)],
                240,
                no_cp,
                true,
            ),
            (
                "old restarts before the window do not count",
                vec![at(0, 0, 0), at(100, 500, 5), at(230, 510, 9)],
                230,
                no_cp,
                true,
            ),
            (
                "no checkpoint over the checkpoint window",
                vec![at(0, 0, 3), at(30, 0, 3), at(61, 0, 3)],
                61,
                S,
                false,
            ),
            (
                "checkpoints progress",
                vec![at(0, 0, 3), at(30, 0, 4), at(61, 0, 5)],
                61,
                S,
                true,
            ),
            (
                "no checkpoint, but not yet a full window of readings",
                vec![at(10, 0, 3), at(61, 0, 3)],
                61,
                S,
                true,
            ),
        ];
        for (why, samples, now, s, healthy) in rows {
            let got = evaluate(&samples, now * 1000, &s);
            assert_eq!(got == Health::Healthy, healthy, "{why}: {got:?}");
        }
    }
}
