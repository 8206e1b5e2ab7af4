//! Reconnection delays: exponential growth with jitter, so a fleet of watchers that lost the same
//! replica does not reconnect in lockstep.

use std::time::Duration;

/// Delay before reconnection attempt number `failures` (consecutive failures since the last
/// stream that worked): none for the first (fail over at once), then `initial`, doubling up to
/// `max`, each drawn uniformly from its upper half (`[d/2, d]`) with `unit` in `[0, 1)`.
pub(crate) fn delay(failures: u32, initial: Duration, max: Duration, unit: f64) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let exp = failures.saturating_sub(1).min(32);
    let full = initial.saturating_mul(1u32 << exp.min(31)).min(max);
    full.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

/// A uniform draw in `[0, 1)` from the system's random source (0.5 when it fails: jitter is a
/// courtesy, not a secret).
pub(crate) fn unit_random() -> f64 {
    let mut b = [0u8; 8];
    match aws_lc_rs::rand::fill(&mut b) {
        Ok(()) => (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn grows_exponentially_up_to_the_cap_with_jitter_in_the_upper_half() {
        let (initial, max) = (100 * MS, 5000 * MS);
        assert_eq!(
            delay(0, initial, max, 0.9),
            Duration::ZERO,
            "first retry fails over at once"
        );
        let top: Vec<_> = (1..=8).map(|n| delay(n, initial, max, 1.0)).collect();
        assert_eq!(
            top,
            [100, 200, 400, 800, 1600, 3200, 5000, 5000].map(|m| m * MS)
        );
        let bottom: Vec<_> = (1..=3).map(|n| delay(n, initial, max, 0.0)).collect();
        assert_eq!(bottom, [50, 100, 200].map(|m| m * MS));
        // Huge failure counts neither overflow nor exceed the cap.
        assert_eq!(delay(u32::MAX, initial, max, 1.0), max);
    }

    #[test]
    fn the_random_unit_is_in_range_and_varies() {
        let draws: Vec<f64> = (0..64).map(|_| unit_random()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        assert!(draws.windows(2).any(|w| w[0] != w[1]));
    }
}
