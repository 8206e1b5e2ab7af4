//! Time, injected: the wall clock that token lifetimes are checked against. The verifier, the
//! verified-token cache and the layer's expiry deadlines all read one [`Clock`], so a service (and the
//! auth server's own `Validate`) judge a token's age the same way, and tests can move time instead of
//! sleeping.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time as whole seconds since the Unix epoch (the unit of `exp`).
pub trait Clock: Send + Sync + Debug + 'static {
    /// Seconds since the Unix epoch.
    fn unix_now(&self) -> u64;
}

/// The system's wall clock (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// A wall clock that advances with Tokio's clock: it starts at the system time and then moves with
/// `tokio::time::Instant`, so under `tokio::time::pause()` it stands still and
/// `tokio::time::advance` moves it — together with every Tokio timer. Meant for tests.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use auth_interceptor::{Clock, TokioClock};
/// let clock = TokioClock::new();
/// let t0 = clock.unix_now();
/// tokio::time::advance(std::time::Duration::from_secs(90)).await;
/// assert_eq!(clock.unix_now(), t0 + 90);
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start_unix: Duration,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading the system time now and following Tokio's clock from here.
    pub fn new() -> Self {
        Self {
            start_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            start: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn unix_now(&self) -> u64 {
        (self.start_unix + self.start.elapsed()).as_secs()
    }
}

/// The default clock, shared.
pub(crate) fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}
