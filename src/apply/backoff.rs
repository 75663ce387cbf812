//! Per-resource retry timing, pure: exponential backoff with jitter, capped, reset on
//! success (kube-runtime's default error policy has the same shape). The jitter comes in
//! as a number in `[0, 1)` so the function is testable and property-tested.

use std::time::Duration;

use crate::config;

/// The delay before retry number `failures` (1 for the first retry): `base * 2^(failures-1)`
/// capped at `max`, then spread by up to +/- `jitter_ratio` of itself with `jitter` in
/// `[0, 1)` (0.5 is no spread). Never more than `max`, never less than half of `base`.
pub fn delay(
    failures: u32,
    jitter: f64,
    base: Duration,
    max: Duration,
    jitter_ratio: f64,
) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    let raw = base.saturating_mul(1u32 << exp).min(max);
    let j = jitter.clamp(0.0, 1.0);
    let factor = 1.0 + jitter_ratio.clamp(0.0, 0.5) * (2.0 * j - 1.0);
    let spread = Duration::from_secs_f64(raw.as_secs_f64() * factor);
    spread.min(max).max(base / 2)
}

/// [`delay`] with the agent's defaults ([`config::DEFAULT_BACKOFF_BASE`],
/// [`config::DEFAULT_BACKOFF_MAX`], [`config::DEFAULT_BACKOFF_JITTER`]).
pub fn default_delay(failures: u32, jitter: f64) -> Duration {
    delay(
        failures,
        jitter,
        config::DEFAULT_BACKOFF_BASE,
        config::DEFAULT_BACKOFF_MAX,
        config::DEFAULT_BACKOFF_JITTER,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn doubles_then_caps() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        let no_jitter = |n| delay(n, 0.5, base, max, 0.2);
        assert_eq!(no_jitter(1), Duration::from_secs(1));
        assert_eq!(no_jitter(2), Duration::from_secs(2));
        assert_eq!(no_jitter(4), Duration::from_secs(8));
        assert_eq!(no_jitter(7), Duration::from_secs(60));
        assert_eq!(no_jitter(u32::MAX), Duration::from_secs(60));
    }

    proptest! {
        #[test]
        fn bounded_and_monotone_without_jitter(n in 1u32..200, j in 0.0f64..1.0) {
            let base = Duration::from_millis(500);
            let max = Duration::from_secs(300);
            let d = delay(n, j, base, max, 0.2);
            prop_assert!(d <= max);
            prop_assert!(d >= base / 2);
            let a = delay(n, 0.5, base, max, 0.2);
            let b = delay(n + 1, 0.5, base, max, 0.2);
            prop_assert!(b >= a);
        }

        #[test]
        fn jitter_stays_within_its_ratio(n in 1u32..12, j in 0.0f64..1.0) {
            let base = Duration::from_millis(500);
            let max = Duration::from_secs(3600);
            let plain = delay(n, 0.5, base, max, 0.2).as_secs_f64();
            let d = delay(n, j, base, max, 0.2).as_secs_f64();
            prop_assert!(d >= plain * 0.8 - 1e-9 && d <= plain * 1.2 + 1e-9);
        }
    }
}
