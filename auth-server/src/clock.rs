//! The server's notion of "now": the same injectable [`Clock`] as the interceptor crate's, so the
//! server's own access layer and `Validate` judge token lifetimes identically, and tests can move
//! time (idle and absolute session expiry, throttling, token expiry) by hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

pub use auth_interceptor::{Clock, SystemClock};

/// Now, per `clock`, as the signed seconds the store and the token issuer work in.
pub(crate) fn unix_seconds(clock: &dyn Clock) -> i64 {
    i64::try_from(clock.unix_now()).unwrap_or(i64::MAX)
}

/// A clock that tests set and advance by hand. Starts at the system time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl Default for ManualClock {
    fn default() -> Self {
        Self(Arc::new(AtomicI64::new(unix_seconds(&SystemClock))))
    }
}

impl ManualClock {
    /// Moves the clock forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst);
    }

    /// Now, in seconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Clock for ManualClock {
    fn unix_now(&self) -> u64 {
        u64::try_from(self.now()).unwrap_or_default()
    }
}
