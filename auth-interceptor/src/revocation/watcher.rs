//! [`RevocationWatcher`]: one background task following `WatchRevocations` on one of several auth
//! servers (failing over in turn), resuming from its last sequence, and a pruning task; both end when
//! the last handle is dropped.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use super::WhenStale;
use super::backoff;
use super::denylist::Denylist;
use super::status::{State, WatcherStatus};
use super::stream::{End, stream_once};
use crate::claims::Claims;
use crate::client::TokenSource;
use crate::clock::Clock;
use crate::error::AuthError;

/// Tuning of a [`RevocationWatcher`]; every field has a default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RevocationWatcherConfig {
    /// Delay before the second consecutive failed attempt (the first fails over at once); doubles
    /// up to `max_backoff`, each delay drawn from its upper half (default 250 ms).
    pub initial_backoff: Duration,
    /// Longest delay between attempts (default 30 s).
    pub max_backoff: Duration,
    /// Bound on opening one stream, response headers included (default 5 s).
    pub connect_timeout: Duration,
    /// A stream silent for this long is considered dead and reopened (default 45 s: three of the
    /// server's 15 s heartbeats).
    pub idle_timeout: Duration,
    /// Most entries the denylist holds (default 100 000; about 100 bytes each). Beyond it the
    /// watcher keeps what it has, reports itself not connected (`overflowed`) and asks for a fresh
    /// snapshot, with backoff, until one fits.
    pub capacity: usize,
    /// How long an entry outlives its `expire_time`: at least the verifier's `exp` leeway
    /// (default 60 s; the verifier's default leeway is 30 s).
    pub expiry_grace: Duration,
    /// How often expired entries are dropped (default 10 s).
    pub prune_interval: Duration,
    /// The clock that entry expiry is judged by (default: the system clock; use the authorizer's).
    pub clock: Arc<dyn Clock>,
}

impl Default for RevocationWatcherConfig {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(45),
            capacity: 100_000,
            expiry_grace: Duration::from_secs(60),
            prune_interval: Duration::from_secs(10),
            clock: crate::clock::system(),
        }
    }
}

/// Follows the auth server's revocation stream and keeps a local denylist for the
/// [`Authorizer`](crate::Authorizer) ([`Authorizer::with_revocation_watcher`](crate::Authorizer::with_revocation_watcher)).
///
/// - **Endpoints.** It streams from one endpoint at a time; when a stream cannot be opened, fails,
///   ends or falls silent for `idle_timeout`, it moves to the next endpoint (round robin), at once
///   after a stream that worked, then with exponential backoff and jitter.
/// - **Resumption.** It reconnects with `after_sequence` = the last sequence received, so nothing
///   issued during the outage is missed; before its first complete snapshot (or after an overflow)
///   it asks for a full snapshot, which replaces the whole list when its last part arrives.
/// - **Authentication.** Each attempt takes a token from the [`TokenSource`] (it needs the role
///   `revocations:watch`); a stream refused or ended with `UNAUTHENTICATED` invalidates it.
/// - **Memory.** Entries are dropped after their `expire_time` plus `expiry_grace`; at most
///   `capacity` are held.
/// - **Health.** [`RevocationWatcher::status`].
///
/// Clones share one watcher; its tasks stop when the last clone is dropped. Needs a Tokio runtime.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use auth_interceptor::client::StaticToken;
/// use auth_interceptor::{
///     Authorizer, GrpcJwksFetcher, JwksSource, JwksSourceConfig, Policy, RevocationWatcher,
///     RevocationWatcherConfig, Rule, Verifier, VerifierConfig,
/// };
/// use tonic::transport::Endpoint;
///
/// let watcher = RevocationWatcher::start(
///     [
///         Endpoint::from_static("http://auth-a:50051"),
///         Endpoint::from_static("http://auth-b:50051"),
///     ],
///     StaticToken::new("<a token with the role revocations:watch>"),
///     RevocationWatcherConfig::default(),
/// )?;
/// watcher.wait_current(Duration::from_secs(10)).await?;
///
/// let keys = JwksSource::start(
///     GrpcJwksFetcher::from_uri("http://auth-a:50051")?,
///     JwksSourceConfig::default(),
/// );
/// let policy = Policy::builder()
///     .required("demo.v1.GreeterService/*")
///     // Refuse with UNAVAILABLE once revocations may have been missed for 30 s.
///     .rule(
///         "demo.v1.GreeterService/AdminHello",
///         Rule::any_role(["admin"]).fail_closed_after(Duration::from_secs(30)),
///     )
///     .build()?;
/// let layer = Authorizer::new(Verifier::new(VerifierConfig::new("auth-server", "internal")), keys)
///     .with_revocation_watcher(watcher.clone())
///     .layer(policy)?;
/// let status = watcher.status();
/// println!("connected={} lag={:?} events={}", status.connected, status.lag, status.events_applied);
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RevocationWatcher {
    shared: Arc<Shared>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for RevocationWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationWatcher")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// Why [`RevocationWatcher::start`] refused to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WatcherError {
    /// No endpoint was given.
    #[error("a revocation watcher needs at least one auth-server endpoint")]
    NoEndpoints,
    /// A setting is out of its range (the message names it).
    #[error("revocation watcher: {0}")]
    InvalidConfig(&'static str),
}

impl RevocationWatcherConfig {
    /// Checks every setting's range.
    fn check(&self) -> Result<(), WatcherError> {
        let invalid = |ok: bool, what| {
            if ok {
                Ok(())
            } else {
                Err(WatcherError::InvalidConfig(what))
            }
        };
        invalid(self.capacity >= 1, "capacity must be at least 1")?;
        invalid(
            !self.initial_backoff.is_zero() && self.initial_backoff <= self.max_backoff,
            "initial_backoff must be positive and at most max_backoff",
        )?;
        invalid(
            !self.connect_timeout.is_zero(),
            "connect_timeout must be positive",
        )?;
        invalid(
            self.idle_timeout >= Duration::from_secs(1),
            "idle_timeout must be at least 1 s (the server's heartbeats come every 15 s)",
        )?;
        invalid(
            self.prune_interval >= Duration::from_millis(10),
            "prune_interval must be at least 10 ms",
        )
    }
}

pub(super) struct Shared {
    pub(super) state: RwLock<State>,
    pub(super) endpoints: Vec<String>,
    pub(super) clock: Arc<dyn Clock>,
    /// Bumped after every change of `state`, for [`RevocationWatcher::wait_until`].
    pub(super) changed: tokio::sync::watch::Sender<u64>,
}

struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl Shared {
    pub(super) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
    pub(super) fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
    pub(super) fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.write());
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        out
    }
}

impl RevocationWatcher {
    /// Starts watching `endpoints` (tried in this order, then round robin) with tokens from
    /// `tokens`. Returns at once; [`RevocationWatcher::wait_current`] waits for the first snapshot.
    /// Refused without an endpoint, or with a setting out of its range.
    pub fn start(
        endpoints: impl IntoIterator<Item = Endpoint>,
        tokens: impl TokenSource,
        config: RevocationWatcherConfig,
    ) -> Result<Self, WatcherError> {
        let endpoints: Vec<Endpoint> = endpoints.into_iter().collect();
        if endpoints.is_empty() {
            return Err(WatcherError::NoEndpoints);
        }
        config.check()?;
        let names = endpoints.iter().map(|e| e.uri().to_string()).collect();
        let channels = endpoints.iter().map(Endpoint::connect_lazy).collect();
        let grace = config.expiry_grace.as_secs();
        let shared = Arc::new(Shared {
            state: RwLock::new(State::new(Denylist::new(config.capacity, grace))),
            endpoints: names,
            clock: config.clock.clone(),
            changed: tokio::sync::watch::channel(0).0,
        });
        let pruner = tokio::spawn(prune_loop(shared.clone(), config.prune_interval));
        let follower = tokio::spawn(follow(shared.clone(), channels, Box::new(tokens), config));
        Ok(Self {
            shared,
            _tasks: Arc::new(Tasks(vec![pruner, follower])),
        })
    }

    /// The watcher's health now.
    pub fn status(&self) -> WatcherStatus {
        self.shared
            .read()
            .status(&self.shared.endpoints, Instant::now())
    }

    /// Waits (at most `timeout`) until `done` holds for the status; returns the last status seen
    /// either way (`Err` on timeout).
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&WatcherStatus) -> bool,
    ) -> Result<WatcherStatus, WatcherStatus> {
        let mut changes = self.shared.changed.subscribe();
        let wait = async {
            loop {
                let status = self.status();
                if done(&status) {
                    return status;
                }
                if changes.changed().await.is_err() {
                    return status;
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| self.status())
    }

    /// Waits (at most `timeout`) until the watcher is current (see [`WatcherStatus::connected`]).
    pub async fn wait_current(&self, timeout: Duration) -> Result<(), NotCurrent> {
        self.wait_until(timeout, |s| s.connected)
            .await
            .map(drop)
            .map_err(NotCurrent)
    }

    /// The request-path check of verified `claims` (signed with the key `kid()` names): revoked,
    /// or — for a rule that fails closed — stale beyond the rule's bound.
    pub(crate) fn check(
        &self,
        when_stale: WhenStale,
        claims: &Claims,
        kid: impl FnOnce() -> Option<String>,
    ) -> Result<(), AuthError> {
        let state = self.shared.read();
        if let Some(what) = state.list.check(claims, kid) {
            tracing::debug!(?what, "token revoked (revocation stream)");
            return Err(AuthError::Revoked);
        }
        if let WhenStale::RefuseAfter(bound) = when_stale
            && state.lag(Instant::now()) > bound
        {
            return Err(AuthError::RevocationsStale);
        }
        Ok(())
    }
}

/// The watcher did not become current in time; carries its status then.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the revocation watcher is not current (lag {:?}, reconnects {})", .0.lag, .0.reconnects)]
pub struct NotCurrent(pub WatcherStatus);

async fn prune_loop(shared: Arc<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = shared.clock.unix_now();
        let dropped = shared.update(|s| s.list.prune(now));
        if dropped > 0 {
            tracing::debug!(dropped, "expired revocations forgotten");
        }
    }
}

async fn follow(
    shared: Arc<Shared>,
    channels: Vec<Channel>,
    tokens: Box<dyn TokenSource>,
    config: RevocationWatcherConfig,
) {
    let mut failures: u32 = 0;
    for index in (0..channels.len()).cycle() {
        let channel = channels[index].clone();
        let end = stream_once(&shared, index, channel, tokens.as_ref(), &config).await;
        failures = match end {
            End::AfterWork => 0,
            End::Failed => failures.saturating_add(1),
        };
        shared.update(|s| s.reconnects += 1);
        let wait = backoff::delay(
            failures,
            config.initial_backoff,
            config.max_backoff,
            backoff::unit_random(),
        );
        tokio::time::sleep(wait).await;
    }
}
