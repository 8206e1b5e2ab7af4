//! A key set kept up to date from a [`JwksFetcher`]: background refresh, single-flight rate-limited
//! refetch on unknown `kid` with a negative cache, bounded staleness, and a readiness signal.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tokio::sync::watch;

use super::jwks::{FetchError, JwksFetcher};
use super::{KeySource, KeysUnavailable};
use crate::keys::{KeySet, SharedKeys};

/// Timing of a [`JwksSource`].
#[derive(Debug, Clone)]
pub struct JwksSourceConfig {
    /// How often the JWKS is refetched in the background (default 5 min).
    pub refresh_interval: Duration,
    /// How soon a failed background fetch is retried (default 5 s, never later than
    /// `refresh_interval`).
    pub retry_interval: Duration,
    /// At most one refetch triggered by unknown `kid`s per this interval (default 10 s).
    pub min_refetch_interval: Duration,
    /// How long a `kid` that a refetch did not produce is remembered as unknown (default 60 s).
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
            negative_ttl: Duration::from_secs(60),
            negative_capacity: 1024,
            max_staleness: Duration::from_secs(3600),
        }
    }
}

struct Inner {
    fetcher: Box<dyn JwksFetcher>,
    config: JwksSourceConfig,
    keys: SharedKeys,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last successful fetch, plus one; 0 = never.
    last_success: AtomicU64,
    last_ok: AtomicBool,
    generation: AtomicU64,
    fetches: AtomicU64,
    fetch_lock: tokio::sync::Mutex<()>,
    last_kid_fetch: Mutex<Option<Instant>>,
    negative: Mutex<HashMap<String, Instant>>,
    ready: watch::Sender<bool>,
}

/// Verification keys from a JWKS that is kept fresh. Cheap to clone; clones share everything.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use auth_interceptor::source::{GrpcJwksFetcher, JwksSource, JwksSourceConfig};
/// let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051").connect_lazy();
/// let keys = JwksSource::start(GrpcJwksFetcher::new(channel), JwksSourceConfig::default());
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
    pub fn start(fetcher: impl JwksFetcher, config: JwksSourceConfig) -> Self {
        let source = Self::new(fetcher, config);
        tokio::spawn(refresh_loop(Arc::downgrade(&source.inner)));
        source
    }

    /// A source without the background task (refetches only on unknown `kid` and
    /// [`JwksSource::refresh`]); mostly for tests.
    pub fn new(fetcher: impl JwksFetcher, config: JwksSourceConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                fetcher: Box::new(fetcher),
                config,
                keys: SharedKeys::default(),
                epoch: Instant::now(),
                last_success: AtomicU64::new(0),
                last_ok: AtomicBool::new(false),
                generation: AtomicU64::new(0),
                fetches: AtomicU64::new(0),
                fetch_lock: tokio::sync::Mutex::new(()),
                last_kid_fetch: Mutex::new(None),
                negative: Mutex::new(HashMap::new()),
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

    /// Resolves once a key set has been loaded.
    pub async fn ready(&self) {
        let mut rx = self.inner.ready.subscribe();
        // The sender lives in `inner`, which `self` keeps alive, so this cannot fail.
        let _ = rx.wait_for(|loaded| *loaded).await;
    }

    /// Waits at most `timeout` for the first key set; use at startup to fail fast.
    pub async fn wait_for_keys(&self, timeout: Duration) -> Result<(), KeysUnavailable> {
        tokio::time::timeout(timeout, self.ready())
            .await
            .map_err(|_| KeysUnavailable)
    }
}

impl Inner {
    fn age(&self) -> Option<Duration> {
        let last = self.last_success.load(Ordering::Acquire);
        (last != 0).then(|| {
            self.epoch
                .elapsed()
                .saturating_sub(Duration::from_millis(last - 1))
        })
    }

    /// Single-flight: callers arriving while a fetch runs wait for it and share its result.
    async fn refresh(&self) -> bool {
        let seen = self.generation.load(Ordering::Acquire);
        let _guard = self.fetch_lock.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            return self.last_ok.load(Ordering::Acquire);
        }
        self.fetch_once().await
    }

    async fn fetch_once(&self) -> bool {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = match self.fetcher.fetch().await {
            Ok(json) => KeySet::from_jwks_json(&json).map_err(FetchError::from),
            Err(e) => Err(e),
        };
        let ok = match result {
            Ok(set) => {
                tracing::debug!(keys = set.len(), "JWKS refreshed");
                lock(&self.negative).retain(|kid, _| set.get(kid).is_none());
                self.keys.store(set);
                let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
                self.last_success.store(ms + 1, Ordering::Release);
                self.ready.send_replace(true);
                true
            }
            Err(error) => {
                tracing::warn!(%error, age = ?self.age(), "JWKS fetch failed; keeping the last good key set");
                false
            }
        };
        self.last_ok.store(ok, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
        ok
    }

    fn is_negative(&self, kid: &str) -> bool {
        let map = lock(&self.negative);
        map.get(kid)
            .is_some_and(|t| t.elapsed() < self.config.negative_ttl)
    }

    fn remember_unknown(&self, kid: &str) {
        let mut map = lock(&self.negative);
        if map.len() >= self.config.negative_capacity {
            let ttl = self.config.negative_ttl;
            map.retain(|_, t| t.elapsed() < ttl);
            if map.len() >= self.config.negative_capacity {
                map.clear();
            }
        }
        map.insert(kid.to_owned(), Instant::now());
    }

    async fn refresh_for_kid(&self, kid: &str) -> bool {
        if self.is_negative(kid) {
            return false;
        }
        let seen = self.generation.load(Ordering::Acquire);
        let _guard = self.fetch_lock.lock().await;
        if self.keys.load().get(kid).is_some() {
            return true;
        }
        if self.generation.load(Ordering::Acquire) != seen {
            // A fetch finished while we waited and did not bring this kid.
            self.remember_unknown(kid);
            return false;
        }
        {
            let mut last = lock(&self.last_kid_fetch);
            if last.is_some_and(|t| t.elapsed() < self.config.min_refetch_interval) {
                tracing::debug!("unknown kid; refetch rate-limited");
                return false;
            }
            *last = Some(Instant::now());
        }
        tracing::info!("unknown kid; refetching JWKS");
        self.fetch_once().await;
        if self.keys.load().get(kid).is_some() {
            true
        } else {
            self.remember_unknown(kid);
            false
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

    fn refresh_for_kid<'a>(&'a self, kid: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(self.inner.refresh_for_kid(kid))
    }

    fn hint_unknown_kid(&self, kid: &str) {
        if self.inner.is_negative(kid) {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let inner = self.inner.clone();
            let kid = kid.to_owned();
            handle.spawn(async move {
                inner.refresh_for_kid(&kid).await;
            });
        }
    }
}
