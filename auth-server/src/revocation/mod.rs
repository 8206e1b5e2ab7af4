//! Revocation in real time: the in-memory [`view::View`] of the revocation log every replica keeps,
//! fed by its [`follower`] (woken by PostgreSQL `LISTEN/NOTIFY`, polling as a fallback), which
//! `Validate`, the server's own auth layer and ext_authz consult instead of the database, and whose
//! rows `WatchRevocations` fans out to verifiers ([`Revocations::subscribe`]).
//!
//! A revocation made on a replica is in that replica's view before its RPC returns
//! ([`Revocations::sync`]); other replicas learn it when woken (milliseconds) or at the next poll
//! (at most [`follower::POLL_INTERVAL`] late). When the log has not been read for longer than
//! `AUTH_REVOCATION_MAX_STALENESS`, the view is not trusted: checks fail with
//! [`RevocationError::Stale`] (`UNAVAILABLE`). The age is the server's clock's; a view is also
//! never called stale while its follower has missed fewer than two polls by the monotonic clock, so
//! a step of the wall clock cannot fail `Validate` while the log is being read.

pub(crate) mod follower;
pub(crate) mod view;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use auth_interceptor::{Claims, JwksSource};
use tokio::sync::{Mutex, broadcast, watch};

use crate::clock::{Clock, unix_seconds};
use crate::store::{RevocationRecord, Store};
use view::{TokenRef, View};

/// How many log rows the fan-out holds for watchers that are behind; one that falls further behind
/// is ended and resumes from its sequence.
pub(crate) const FANOUT_CAPACITY: usize = 4096;

/// Why the view cannot answer.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// The log has not been read for longer than `AUTH_REVOCATION_MAX_STALENESS`.
    #[error("revocation state stale: the log was last read {age} s ago")]
    Stale {
        /// Seconds since the last successful read.
        age: i64,
    },
}

/// The replica's revocation state: the view, how far it has read the log, and the fan-out.
pub(crate) struct Revocations {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    view: RwLock<View>,
    /// The sequence of the last row applied.
    head: AtomicI64,
    /// When the log was last read successfully (unix seconds, server clock).
    last_read: AtomicI64,
    /// The same, in milliseconds of the monotonic clock since `started`.
    last_read_ms: AtomicU64,
    started: Instant,
    max_staleness: i64,
    /// One log read at a time (an RPC's catch-up and the follower's poll).
    reading: Mutex<()>,
    events: broadcast::Sender<Arc<RevocationRecord>>,
    /// Key changes reload this source.
    keys: JwksSource,
    /// Set at shutdown: streams end.
    stopping: watch::Sender<bool>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("head", &self.head())
            .field("max_staleness", &self.max_staleness)
            .finish_non_exhaustive()
    }
}

impl Revocations {
    /// Loads the whole log (every unexpired revocation) before returning, so the server serves
    /// with its view complete; `max_staleness` seconds is how long the view is trusted without a
    /// successful read.
    pub(crate) async fn load(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        keys: JwksSource,
        max_staleness: i64,
    ) -> Result<Arc<Self>, crate::store::StoreError> {
        let now = unix_seconds(&*clock);
        let this = Arc::new(Self {
            store,
            clock,
            view: RwLock::default(),
            head: AtomicI64::new(0),
            last_read: AtomicI64::new(now),
            last_read_ms: AtomicU64::new(0),
            started: Instant::now(),
            max_staleness,
            reading: Mutex::new(()),
            events: broadcast::channel(FANOUT_CAPACITY).0,
            keys,
            stopping: watch::channel(false).0,
        });
        // The keys were just loaded: the first read reloads nothing.
        this.read_log(false).await?;
        Ok(this)
    }

    /// Reads the log up to its end and applies it, now: call after a committed change that ended
    /// tokens, so the view has it before the RPC returns. A failure is logged (the follower retries).
    pub(crate) async fn sync(&self) {
        if let Err(e) = self.read_log(true).await {
            tracing::warn!(error = %e, "revocation log not read after a revocation; the follower retries");
        }
    }

    /// Fails when the view is too old to be trusted.
    pub(crate) fn check_fresh(&self) -> Result<(), RevocationError> {
        let age = unix_seconds(&*self.clock) - self.last_read.load(Ordering::Acquire);
        if age > self.max_staleness && self.missed_polls() {
            return Err(RevocationError::Stale { age });
        }
        Ok(())
    }

    /// True when the follower has not read the log for two poll intervals, by the monotonic clock.
    fn missed_polls(&self) -> bool {
        let since = Duration::from_millis(self.last_read_ms.load(Ordering::Acquire));
        self.started.elapsed().saturating_sub(since) > 2 * follower::POLL_INTERVAL
    }

    /// Records a successful read of the log.
    fn read_ok(&self) {
        self.last_read.store(self.now(), Ordering::Release);
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_read_ms.store(ms, Ordering::Release);
    }

    /// True when the token with `claims` (signed with `kid` when given) is revoked; an error when
    /// the view is stale.
    pub(crate) fn is_revoked(
        &self,
        claims: &Claims,
        kid: Option<&str>,
    ) -> Result<bool, RevocationError> {
        self.check(claims, |_| kid.map(str::to_owned))
    }

    /// True when the view holds a cut of `sub`'s tokens at or after `since` (unix seconds), or
    /// cannot tell (stale): what was read about `sub` at `since` may be out of date.
    pub(crate) fn subject_cut_since(&self, sub: &str, since: i64) -> bool {
        if self.check_fresh().is_err() {
            return true;
        }
        let view = self.view.read().unwrap_or_else(|p| p.into_inner());
        // `revoked` is `iat < not_before`; `since - 1 < not_before` is `not_before >= since`.
        let token = TokenRef {
            sid: "",
            sub,
            iat: since.saturating_sub(1),
            kid: None,
        };
        view.revoked(token, unix_seconds(&*self.clock))
    }

    /// [`Self::is_revoked`] for a compact JWT: its `kid` is read only when some key is revoked.
    pub(crate) fn is_token_revoked(
        &self,
        claims: &Claims,
        token: &str,
    ) -> Result<bool, RevocationError> {
        self.check(claims, |view| {
            view.has_revoked_keys()
                .then(|| jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid))
                .flatten()
        })
    }

    /// Checks `claims` against the view, with the token's `kid` as `kid_of` finds it (under the
    /// same read lock).
    fn check(
        &self,
        claims: &Claims,
        kid_of: impl FnOnce(&View) -> Option<String>,
    ) -> Result<bool, RevocationError> {
        self.check_fresh()?;
        let view = self.view.read().unwrap_or_else(|p| p.into_inner());
        let kid = kid_of(&view);
        let token = TokenRef {
            sid: &claims.sid,
            sub: &claims.sub,
            iat: i64::try_from(claims.iat).unwrap_or(i64::MAX),
            kid: kid.as_deref(),
        };
        Ok(view.revoked(token, unix_seconds(&*self.clock)))
    }

    /// The sequence of the last row applied.
    pub(crate) fn head(&self) -> i64 {
        self.head.load(Ordering::Acquire)
    }

    /// Seconds since the log was last read successfully.
    pub(crate) fn lag(&self) -> i64 {
        (unix_seconds(&*self.clock) - self.last_read.load(Ordering::Acquire)).max(0)
    }

    /// Entries in the view.
    pub(crate) fn len(&self) -> usize {
        self.view.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Every unexpired revocation with the sequence it is complete up to, taken atomically.
    pub(crate) fn snapshot(&self) -> (i64, Vec<RevocationRecord>) {
        let view = self.view.read().unwrap_or_else(|p| p.into_inner());
        (self.head(), view.rows())
    }

    /// The rows applied from now on, in order.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<RevocationRecord>> {
        self.events.subscribe()
    }

    /// Now, per the server's clock.
    pub(crate) fn now(&self) -> i64 {
        unix_seconds(&*self.clock)
    }

    /// The store the log is read from.
    pub(crate) fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// Resolves when the server is shutting down.
    pub(crate) fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Ends every stream (shutdown).
    pub(crate) fn stop(&self) {
        self.stopping.send_replace(true);
    }
}
