//! Jittered exponential backoff of the client's token sources: how long to wait after failures in a
//! row, never less than [`MIN_BACKOFF`], each wait drawn between half and all of its full length so
//! that replicas failing together do not retry together.

use std::time::Duration;

/// The shortest first wait, whatever the configuration says: a source never retries in a loop.
pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// The wait after the `attempts`-th failure in a row: `initial` (at least [`MIN_BACKOFF`]) doubled
/// for each earlier failure, capped at `max` (at least `initial`), then scaled to between half and all
/// of it by `jitter` (0.0 to 1.0).
pub(crate) fn backoff(initial: Duration, max: Duration, attempts: u32, jitter: f64) -> Duration {
    let initial = initial.max(MIN_BACKOFF);
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(30));
    let full = initial.saturating_mul(factor).min(max.max(initial));
    full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// A uniform draw from 0.0 to 1.0 for the jitter.
pub(crate) fn random() -> f64 {
    let mut b = [0u8; 4];
    // No randomness (never seen in practice): the longest wait, which is safe.
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        return 1.0;
    }
    f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_between_half_and_all() {
        let (one, max) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(backoff(one, max, 1, 1.0), one);
        assert_eq!(backoff(one, max, 1, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(one, max, 2, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(one, max, 4, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(one, max, 7, 1.0), max);
        assert_eq!(backoff(one, max, 7, 0.0), Duration::from_secs(30));
        assert_eq!(backoff(one, max, u32::MAX, 1.0), max, "no overflow");
        // A zero configuration still waits.
        assert_eq!(backoff(Duration::ZERO, Duration::ZERO, 1, 1.0), MIN_BACKOFF);
        // The draws spread: no two replicas are likely to retry in step.
        let waits: std::collections::HashSet<_> =
            (0..64).map(|_| backoff(one, max, 3, random())).collect();
        assert!(waits.len() > 32, "{waits:?}");
        assert!(
            waits
                .iter()
                .all(|w| *w >= Duration::from_secs(2) && *w <= Duration::from_secs(4))
        );
    }
}
