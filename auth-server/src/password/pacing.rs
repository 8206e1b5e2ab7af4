//! Equal answer times across an argon2 cost change: a verification that did not run at the current
//! parameters is padded to the measured duration of one that did.
//!
//! Unknown users are verified against a dummy hash at the current parameters, and so are users whose
//! hash is current; a user whose stored hash has older, cheaper parameters (not yet rehashed, which
//! happens only at a successful login) would answer in the old, shorter time — telling an attacker
//! that the account exists. So every current-parameter computation records how long it took, and a
//! verification at other parameters (or of an unusable stored hash) then waits until it has taken
//! the median of the last [`WINDOW`] of them.
//!
//! The wait happens on the blocking thread that verified, before it gives back its hashing permit:
//! the slot stays taken exactly as long as for a current hash (no capacity or queueing difference an
//! attacker could observe through other logins), a caller that goes away cannot shorten it (logins
//! run to completion anyway), and the concurrency bounds are unchanged. It waits rather than
//! computing a padding hash: no CPU is burnt, and a measured duration matches the current cost on
//! this machine under its present load, which an estimate from the parameters would not. The median
//! of recent samples follows load changes within a few logins and ignores the odd preempted one.
//!
//! A stored hash *more* expensive than the current parameters (the cost was lowered) still takes its
//! own, longer time: nothing can make it faster, and padding everyone to it would defeat lowering.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::engine::{Checked, Engine};
use crate::error::AuthError;

/// How many recent current-parameter durations the target is the median of.
pub(super) const WINDOW: usize = 31;

/// Waits on the calling (blocking) thread.
pub(super) trait Pause: Send + Sync {
    /// Blocks for `d`.
    fn pause(&self, d: Duration);
}

/// The real wait: [`std::thread::sleep`].
pub(super) struct Sleep;

impl Pause for Sleep {
    fn pause(&self, d: Duration) {
        if !d.is_zero() {
            std::thread::sleep(d);
        }
    }
}

/// Recent durations of current-parameter hashes, and the padding of the others.
pub(super) struct Pacer {
    samples: Mutex<Samples>,
    pause: Box<dyn Pause>,
}

/// A ring of the last [`WINDOW`] durations.
#[derive(Default)]
struct Samples {
    ring: Vec<Duration>,
    next: usize,
}

impl Pacer {
    pub(super) fn new(pause: Box<dyn Pause>) -> Self {
        Self {
            samples: Mutex::new(Samples::default()),
            pause,
        }
    }

    /// Records the duration of a computation at the current parameters.
    pub(super) fn record(&self, took: Duration) {
        let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if s.ring.len() < WINDOW {
            s.ring.push(took);
        } else {
            let i = s.next;
            s.ring[i] = took;
        }
        s.next = (s.next + 1) % WINDOW;
    }

    /// The median recorded duration (zero before any).
    pub(super) fn target(&self) -> Duration {
        let mut v = self
            .samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ring
            .clone();
        v.sort_unstable();
        match v.len() {
            0 => Duration::ZERO,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2,
        }
    }

    /// What is left to wait after `spent` so that the total is the target.
    pub(super) fn remaining(&self, spent: Duration) -> Duration {
        self.target().saturating_sub(spent)
    }

    /// Verifies `password` against `phc` and, unless that ran at the current parameters, waits for the
    /// rest of a current verification's duration (see the module documentation).
    pub(super) fn verify(
        &self,
        engine: &Engine,
        password: &[u8],
        phc: &str,
    ) -> Result<Checked, AuthError> {
        let started = Instant::now();
        let checked = engine.verify(password, phc);
        let spent = started.elapsed();
        match &checked {
            Ok(c) if c.current_params => self.record(spent),
            // Older parameters, or a stored hash that could not be used at all.
            _ => self.pause.pause(self.remaining(spent)),
        }
        checked
    }

    /// Hashes at the current parameters, recording the duration.
    pub(super) fn hash(&self, engine: &Engine, password: &[u8]) -> Result<String, AuthError> {
        let started = Instant::now();
        let phc = engine.hash(password)?;
        self.record(started.elapsed());
        Ok(phc)
    }
}

/// Records the waits instead of waiting (tests).
#[cfg(test)]
#[derive(Clone, Default)]
pub(super) struct Recorded(std::sync::Arc<Mutex<Vec<Duration>>>);

#[cfg(test)]
impl Recorded {
    /// The waits asked for so far.
    pub(super) fn taken(&self) -> Vec<Duration> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
impl Pause for Recorded {
    fn pause(&self, d: Duration) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(d);
    }
}

#[cfg(test)]
mod tests {
    use argon2::Params;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn engine(m: u32, t: u32) -> Engine {
        Engine::new(Params::new(m, t, 1, Some(32)).unwrap())
    }

    #[test]
    fn target_is_the_median_of_the_recent_window() {
        let p = Pacer::new(Box::new(Recorded::default()));
        assert_eq!(p.target(), Duration::ZERO);
        assert_eq!(p.remaining(ms(5)), Duration::ZERO);
        for d in [40, 41, 39] {
            p.record(ms(d));
        }
        assert_eq!(p.target(), ms(40));
        p.record(ms(43));
        assert_eq!(p.target(), (ms(40) + ms(41)) / 2);
        // An outlier (a preempted hash) moves the median by at most one rank.
        p.record(ms(900));
        assert_eq!(p.target(), ms(41));
        // Old samples leave the window: the machine got slower, the target follows.
        for _ in 0..WINDOW {
            p.record(ms(80));
        }
        assert_eq!(p.target(), ms(80));
        assert_eq!(p.remaining(ms(8)), ms(72));
        assert_eq!(p.remaining(ms(95)), Duration::ZERO, "never negative");
    }

    #[test]
    fn cheaper_and_unusable_hashes_pay_the_difference_current_ones_do_not() {
        let waits = Recorded::default();
        let p = Pacer::new(Box::new(waits.clone()));
        let current = engine(2048, 2);
        // A current hash twenty seconds long: whatever the cheaper verification takes, it waits for
        // the rest (recorded, not slept).
        p.record(Duration::from_secs(20));
        let old = engine(1024, 1).hash(b"pw").unwrap();
        let c = p.verify(&current, b"wrong", &old).unwrap();
        assert!(!c.ok && !c.current_params);
        let c = p.verify(&current, b"pw", &old).unwrap();
        assert!(c.ok && !c.current_params);
        p.verify(&current, b"pw", "not a phc").unwrap_err();
        let w = waits.taken();
        assert_eq!(w.len(), 3, "{w:?}");
        for d in w {
            assert!(
                d > Duration::from_secs(19) && d < Duration::from_secs(20),
                "{d:?}"
            );
        }
        // A current-parameter verification waits for nothing; it adds a sample instead.
        let mine = p.hash(&current, b"pw").unwrap();
        assert!(p.verify(&current, b"pw", &mine).unwrap().current_params);
        assert_eq!(waits.taken().len(), 3);
        assert_eq!(p.samples.lock().unwrap().ring.len(), 3);
    }

    #[test]
    fn a_costlier_old_hash_waits_for_nothing() {
        let waits = Recorded::default();
        let p = Pacer::new(Box::new(waits.clone()));
        p.record(Duration::from_nanos(1));
        let old = engine(2048, 2).hash(b"pw").unwrap();
        assert!(p.verify(&engine(1024, 1), b"pw", &old).unwrap().ok);
        assert_eq!(waits.taken(), vec![Duration::ZERO]);
    }
}
