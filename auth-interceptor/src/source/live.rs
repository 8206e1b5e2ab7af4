//! A key set kept up to date from a [`KeySetFetcher`]: background refresh, single-flight rate-limited
//! refetch on unknown `kid` with a negative cache, bounded staleness, and a readiness signal that
//! carries the last fetch error.
//!
//! Durations are measured on Tokio's clock, so tests under `tokio::time::pause()` move them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tokio::time::Instant;

use super::jwks::KeySetFetcher;
use super::{KeySource, KeysUnavailable, KidRefresh};
use crate::keys::{KeySet, SharedKeys};

/// Timing of a [`JwksSource`].
#[derive(Debug, Clone)]
pub struct JwksSourceConfig {
    /// How often the key set is refetched in the background (default 5 min). This is also how long a
    /// key removed from the JWKS stays trusted here: keep it short when keys may be revoked.
    pub refresh_interval: Duration,
    /// How soon a failed background fetch is retried (default 5 s, never later than
    /// `refresh_interval`).
    pub retry_interval: Duration,
    /// At most one refetch triggered by unknown `kid`s per this interval (default 10 s). A token
    /// whose `kid` arrives while the refetch is rate-limited is answered `UNAVAILABLE` (retryable),
    /// not refused.
    pub min_refetch_interval: Duration,
    /// When an unknown `kid`'s refetch is rate-limited, wait for the next permitted refetch if it
    /// comes within this bound, instead of answering `UNAVAILABLE` at once (default 0: answer at
    /// once). The auth server, whose refetch is a database read, waits up to a second.
    pub max_kid_wait: Duration,
    /// How long a `kid` that a successful refetch did not produce is remembered as unknown (default
    /// 60 s). A failed refetch remembers nothing.
    pub negative_ttl: Duration,
    /// Bound on the number of remembered unknown `kid`s (default 1024).
    pub negative_capacity: usize,
    /// The last good key set is used at most this long after it was fetched; past that, requests
    /// fail closed with `UNAVAILABLE` (default 1 h).
    pub max_staleness: Duration,
}

impl Default for JwksSourceConfig {
    fn default() -> Self {
        Self {
            refresh_interval: Duration::from_secs(300),
            retry_interval: Duration::from_secs(5),
            min_refetch_interval: Duration::from_secs(10),
            max_kid_wait: Duration::ZERO,
            negative_ttl: Duration::from_secs(60),
            negative_capacity: 1024,
            max_staleness: Duration::from_secs(3600),
        }
    }
}

/// [`JwksSource::wait_for_keys`] gave up: no usable key set arrived in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no verification keys after {waited:?}: {}", .last_error.as_deref().unwrap_or("no fetch has completed yet"))]
pub struct NoKeys {
    /// How long it waited.
    pub waited: Duration,
    /// Why the last fetch did not produce keys (unreachable server with its address and cause, an
    /// invalid document, or an empty key set).
    pub last_error: Option<String>,
}

/// Why a fetched key set that is empty cannot be used.
const EMPTY_KEY_SET: &str = "the key set is empty (an auth server in HS256 mode publishes no keys: \
    build the key set from the shared secret with `KeySet::hs256`)";

struct Inner {
    fetcher: Box<dyn KeySetFetcher>,
    config: JwksSourceConfig,
    keys: SharedKeys,
    state: Mutex<FetchState>,
    fetches: AtomicU64,
    fetch_lock: tokio::sync::Mutex<()>,
    negative: quick_cache::sync::Cache<String, Instant>,
    ready: watch::Sender<bool>,
}

/// What the last fetches left behind.
#[derive(Debug, Default)]
struct FetchState {
    /// When the last successful fetch finished.
    last_success: Option<Instant>,
    /// When the last finished fetch started.
    last_started: Option<Instant>,
    /// Why the last fetch failed, or why its key set is unusable; `None` after a good fetch.
    last_error: Option<String>,
    /// Bumped by every finished fetch.
    generation: u64,
    /// Whether the last finished fetch succeeded.
    last_ok: bool,
    /// When the last refetch for an unknown `kid` started.
    last_kid_fetch: Option<Instant>,
}

/// Verification keys kept fresh from a [`KeySetFetcher`]. Cheap to clone; clones share everything.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use auth_interceptor::{GrpcJwksFetcher, JwksSource, JwksSourceConfig};
/// let fetcher = GrpcJwksFetcher::from_uri("http://127.0.0.1:50051")?;
/// let keys = JwksSource::start(fetcher, JwksSourceConfig::default());
/// keys.wait_for_keys(std::time::Duration::from_secs(10)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct JwksSource {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksSource")
            .field("keys", &self.inner.keys.load().len())
            .field("fetches", &self.fetch_count())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl JwksSource {
    /// Starts the source: fetches immediately, then every `refresh_interval`, on a background task
    /// that ends when the last clone is dropped.
    ///
    /// # Panics
    /// When called outside a Tokio runtime.
    pub fn start(fetcher: impl KeySetFetcher, config: JwksSourceConfig) -> Self {
        let source = Self::new(fetcher, config);
        tokio::spawn(refresh_loop(Arc::downgrade(&source.inner)));
        source
    }

    /// A source without the background task (refetches only on unknown `kid` and
    /// [`JwksSource::refresh`]).
    pub fn new(fetcher: impl KeySetFetcher, config: JwksSourceConfig) -> Self {
        let negative = quick_cache::sync::Cache::new(config.negative_capacity.max(1));
        Self {
            inner: Arc::new(Inner {
                fetcher: Box::new(fetcher),
                config,
                keys: SharedKeys::default(),
                state: Mutex::new(FetchState::default()),
                fetches: AtomicU64::new(0),
                fetch_lock: tokio::sync::Mutex::new(()),
                negative,
                ready: watch::channel(false).0,
            }),
        }
    }

    /// How many fetches were attempted so far (successful or not).
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// The shared snapshot this source updates.
    pub fn shared_keys(&self) -> SharedKeys {
        self.inner.keys.clone()
    }

    /// Time since the last successful fetch, if there was one.
    pub fn age(&self) -> Option<Duration> {
        self.inner.age()
    }

    /// Fetches now (joining a fetch already in flight). Errors when that fetch failed.
    pub async fn refresh(&self) -> Result<(), KeysUnavailable> {
        if self.inner.refresh().await {
            Ok(())
        } else {
            Err(KeysUnavailable)
        }
    }

    /// Resolves once a non-empty key set has been loaded.
    pub async fn ready(&self) {
        let mut rx = self.inner.ready.subscribe();
        // The sender lives in `inner`, which `self` keeps alive, so this cannot fail.
        let _ = rx.wait_for(|loaded| *loaded).await;
    }

    /// Waits at most `timeout` for the first non-empty key set; use at startup to fail fast. The
    /// error says why the last fetch did not produce keys.
    pub async fn wait_for_keys(&self, timeout: Duration) -> Result<(), NoKeys> {
        tokio::time::timeout(timeout, self.ready())
            .await
            .map_err(|_| NoKeys {
                waited: timeout,
                last_error: lock(&self.inner.state).last_error.clone(),
            })
    }
}

impl Inner {
    fn age(&self) -> Option<Duration> {
        lock(&self.state).last_success.map(|t| t.elapsed())
    }

    /// Single-flight: callers arriving while a fetch runs wait for it and share its result.
    async fn refresh(&self) -> bool {
        let seen = lock(&self.state).generation;
        let _guard = self.fetch_lock.lock().await;
        {
            let state = lock(&self.state);
            if state.generation != seen {
                return state.last_ok;
            }
        }
        self.fetch_once().await
    }

    /// One fetch; the caller holds `fetch_lock`.
    async fn fetch_once(&self) -> bool {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = self.fetcher.fetch().await;
        let mut state = lock(&self.state);
        state.last_started = Some(started);
        let ok = match result {
            Ok(set) => {
                tracing::debug!(keys = set.len(), "key set refreshed");
                let usable = !set.is_empty();
                self.keys.store(set);
                state.last_success = Some(Instant::now());
                state.last_error = (!usable).then(|| EMPTY_KEY_SET.to_owned());
                if usable {
                    self.ready.send_replace(true);
                }
                true
            }
            Err(error) => {
                tracing::warn!(%error, age = ?state.last_success.map(|t| t.elapsed()),
                    "key set fetch failed; keeping the last good key set");
                state.last_error = Some(error.to_string());
                false
            }
        };
        state.last_ok = ok;
        state.generation += 1;
        ok
    }

    fn is_negative(&self, kid: &str) -> bool {
        self.negative
            .get(kid)
            .is_some_and(|t| t.elapsed() < self.config.negative_ttl)
    }

    /// Refetches for an unknown `kid`, at most once per `min_refetch_interval` for all kids. Only a
    /// successful fetch that started after the `kid` was seen missing can make it
    /// [`KidRefresh::Absent`] (one such fetch settles every request waiting on it); when no fetch may
    /// be made now, the answer is [`KidRefresh::Unavailable`] unless the next one comes within
    /// `max_kid_wait`.
    async fn refresh_for_kid(&self, kid: &str) -> KidRefresh {
        let observed = Instant::now();
        if self.is_negative(kid) {
            return KidRefresh::Absent;
        }
        let _guard = loop {
            let guard = self.fetch_lock.lock().await;
            if self.keys.load().get(kid).is_some() {
                return KidRefresh::Found;
            }
            let wait = {
                let mut state = lock(&self.state);
                if state.last_ok && state.last_started.is_some_and(|t| t >= observed) {
                    // A fetch that began after we looked, and succeeded, did not bring the kid.
                    self.negative.insert(kid.to_owned(), Instant::now());
                    return KidRefresh::Absent;
                }
                let since = state.last_kid_fetch.map(|t| t.elapsed());
                match since {
                    Some(since) if since < self.config.min_refetch_interval => {
                        self.config.min_refetch_interval - since
                    }
                    _ => {
                        state.last_kid_fetch = Some(Instant::now());
                        Duration::ZERO
                    }
                }
            };
            if wait.is_zero() {
                break guard;
            }
            drop(guard);
            if wait > self.config.max_kid_wait
                || observed.elapsed() + wait > self.config.max_kid_wait
            {
                tracing::debug!("unknown kid; refetch rate-limited");
                return KidRefresh::Unavailable;
            }
            tokio::time::sleep(wait).await;
        };
        tracing::info!("unknown kid; refetching the key set");
        let ok = self.fetch_once().await;
        if self.keys.load().get(kid).is_some() {
            KidRefresh::Found
        } else if ok {
            self.negative.insert(kid.to_owned(), Instant::now());
            KidRefresh::Absent
        } else {
            KidRefresh::Unavailable
        }
    }
}

async fn refresh_loop(weak: Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let ok = inner.refresh().await;
        let interval = inner.config.refresh_interval;
        let wait = if ok {
            interval
        } else {
            inner.config.retry_interval.min(interval)
        };
        drop(inner);
        tokio::time::sleep(wait).await;
    }
}

impl KeySource for JwksSource {
    fn current(&self) -> Result<Arc<KeySet>, KeysUnavailable> {
        match self.inner.age() {
            Some(age) if age <= self.inner.config.max_staleness => Ok(self.inner.keys.load()),
            _ => Err(KeysUnavailable),
        }
    }

    fn refresh_for_kid<'a>(&'a self, kid: &'a str) -> BoxFuture<'a, KidRefresh> {
        Box::pin(self.inner.refresh_for_kid(kid))
    }

    fn hint_unknown_kid(&self, kid: &str) -> KidRefresh {
        if self.inner.is_negative(kid) {
            return KidRefresh::Absent;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let inner = self.inner.clone();
            let kid = kid.to_owned();
            handle.spawn(async move {
                inner.refresh_for_kid(&kid).await;
            });
        }
        KidRefresh::Unavailable
    }
}
