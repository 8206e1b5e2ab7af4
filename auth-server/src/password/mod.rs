//! Password hashing with argon2id: explicit parameters, PHC strings, NFC normalisation, a bounded
//! blocking pool, a dummy hash for unknown users, and rehash detection.
//!
//! The bounds hold under cancellation: a hashing permit belongs to the blocking task that hashes (a
//! caller that gives up — client deadline, RST_STREAM — does not free it while argon2 still runs),
//! and a place in the wait queue is an RAII guard given back however the waiting future ends.

mod engine;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::Params;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

use crate::error::AuthError;
use crate::http::metrics::{HashOp, Metrics};

/// Argon2id cost parameters and the bounds of the hashing pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory per hash, KiB (OWASP minimum 19456).
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// Hashes running at once (blocking threads used).
    pub max_concurrent: usize,
    /// Callers allowed to wait for a hashing slot; beyond that, logins fail fast with UNAVAILABLE.
    pub max_queued: usize,
}

/// Password rules applied when a password is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Minimum length in characters (after NFC).
    pub min_chars: usize,
    /// Maximum length in bytes (after NFC); longer input is refused before any hashing.
    pub max_bytes: usize,
}

/// Outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The password matched.
    pub ok: bool,
    /// It matched, but the stored hash uses other parameters than the current ones: rehash it.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords off the async runtime with bounded concurrency.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    engine: engine::Engine,
    permits: Arc<Semaphore>,
    /// Permits in all.
    permits_total: usize,
    /// Where hash durations are recorded (none for the operator commands).
    metrics: Option<Metrics>,
    /// Hashes being computed right now (on blocking threads).
    hashing: Arc<AtomicUsize>,
    waiting: AtomicUsize,
    max_queued: usize,
    policy: PasswordPolicy,
    dummy_hash: String,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", self.inner.engine.params())
            .finish_non_exhaustive()
    }
}

/// NFC-normalises a password (NIST SP 800-63B §3.1.1.2); nothing else: no trimming, no case folding.
pub fn normalize(password: &str) -> Zeroizing<String> {
    Zeroizing::new(password.nfc().collect())
}

impl PasswordHasher {
    /// Builds a hasher; computes the dummy hash used for unknown users (one hash at startup).
    pub fn new(hash: HashParams, policy: PasswordPolicy) -> Result<Self, AuthError> {
        Self::build(hash, policy, None)
    }

    /// [`PasswordHasher::new`] recording every hash's duration in `metrics`.
    pub(crate) fn with_metrics(
        hash: HashParams,
        policy: PasswordPolicy,
        metrics: Metrics,
    ) -> Result<Self, AuthError> {
        Self::build(hash, policy, Some(metrics))
    }

    fn build(
        hash: HashParams,
        policy: PasswordPolicy,
        metrics: Option<Metrics>,
    ) -> Result<Self, AuthError> {
        let params = Params::new(hash.memory_kib, hash.iterations, hash.parallelism, Some(32))
            .map_err(|e| AuthError::Internal(format!("argon2 params: {e}")))?;
        let engine = engine::Engine::new(params);
        let mut dummy_secret = [0u8; 24];
        aws_lc_rs::rand::fill(&mut dummy_secret).map_err(|_| AuthError::Internal("rng".into()))?;
        let dummy_hash = engine.hash(&dummy_secret)?;
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                permits: Arc::new(Semaphore::new(hash.max_concurrent.max(1))),
                permits_total: hash.max_concurrent.max(1),
                metrics,
                hashing: Arc::new(AtomicUsize::new(0)),
                waiting: AtomicUsize::new(0),
                max_queued: hash.max_queued,
                policy,
                dummy_hash,
            }),
        })
    }

    /// The password policy.
    pub fn policy(&self) -> PasswordPolicy {
        self.inner.policy
    }

    /// Normalises a password presented at login; refuses empty or oversized input before any hashing.
    pub fn check_login_input(&self, password: &str) -> Result<Zeroizing<String>, AuthError> {
        if password.is_empty() {
            return Err(AuthError::invalid("password must not be empty"));
        }
        // Cheap bound before normalising: NFC never shrinks input by more than a small factor.
        if password.len() > self.inner.policy.max_bytes * 4 {
            return Err(self.too_long());
        }
        let nfc = normalize(password);
        if nfc.len() > self.inner.policy.max_bytes {
            return Err(self.too_long());
        }
        Ok(nfc)
    }

    /// Normalises a new password and applies the policy (length bounds, no control characters).
    pub fn check_new_password(&self, password: &str) -> Result<Zeroizing<String>, AuthError> {
        let nfc = self.check_login_input(password)?;
        if nfc.chars().count() < self.inner.policy.min_chars {
            return Err(AuthError::invalid(format!(
                "password must be at least {} characters",
                self.inner.policy.min_chars
            )));
        }
        if nfc.chars().any(|c| c.is_control()) {
            return Err(AuthError::invalid(
                "password must not contain control characters",
            ));
        }
        Ok(nfc)
    }

    fn too_long(&self) -> AuthError {
        AuthError::invalid(format!(
            "password must be at most {} bytes",
            self.inner.policy.max_bytes
        ))
    }

    /// Hashes an already-normalised password into a PHC string.
    pub async fn hash(&self, password: Zeroizing<String>) -> Result<String, AuthError> {
        let inner = self.inner.clone();
        self.run(HashOp::Hash, move || inner.engine.hash(password.as_bytes()))
            .await
    }

    /// Verifies an already-normalised password against `phc`, or against the dummy hash when `phc` is
    /// `None` (unknown user, or an account without a password), so both cost the same.
    pub async fn verify(
        &self,
        password: Zeroizing<String>,
        phc: Option<String>,
    ) -> Result<Verified, AuthError> {
        let slot = self.slot().await?;
        self.verify_in(slot, password, phc).await
    }

    /// A place to hash: a permit now, or after waiting in the bounded queue (beyond it, `Overloaded`).
    /// Taking it before counting a login attempt means a shed login is not counted, and a counted one
    /// is sure to be checked.
    pub(crate) async fn slot(&self) -> Result<HashSlot, AuthError> {
        Ok(HashSlot(self.permit().await?))
    }

    /// [`PasswordHasher::verify`] in a slot taken earlier.
    pub(crate) async fn verify_in(
        &self,
        slot: HashSlot,
        password: Zeroizing<String>,
        phc: Option<String>,
    ) -> Result<Verified, AuthError> {
        let inner = self.inner.clone();
        self.run_in(slot.0, HashOp::Verify, move || {
            let real = phc.is_some();
            let phc = phc.as_deref().unwrap_or(&inner.dummy_hash);
            match inner.engine.verify(password.as_bytes(), phc) {
                Ok(c) => Ok(Verified {
                    ok: c.ok && real,
                    needs_rehash: c.ok && real && !c.current_params,
                }),
                Err(e) => {
                    tracing::error!(error = %e, "stored password hash unusable");
                    Ok(Verified {
                        ok: false,
                        needs_rehash: false,
                    })
                }
            }
        })
        .await
    }

    /// Hashes being computed right now, whether or not their callers still wait for them.
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.inner.hashing.load(Ordering::SeqCst)
    }

    /// Callers waiting for a hashing permit.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.inner.waiting.load(Ordering::SeqCst)
    }

    /// Logins waiting for a permit, permits taken, and permits in all (for the metrics).
    pub(crate) fn occupancy(&self) -> (usize, usize, usize) {
        let inner = &self.inner;
        let in_use = inner
            .permits_total
            .saturating_sub(inner.permits.available_permits());
        (
            inner.waiting.load(Ordering::SeqCst),
            in_use,
            inner.permits_total,
        )
    }

    async fn run<T: Send + 'static>(
        &self,
        op: HashOp,
        f: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        let permit = self.permit().await?;
        self.run_in(permit, op, f).await
    }

    async fn run_in<T: Send + 'static>(
        &self,
        permit: OwnedSemaphorePermit,
        op: HashOp,
        f: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        let hashing = self.inner.hashing.clone();
        let metrics = self.inner.metrics.clone();
        // The permit moves into the blocking task: it is released when the hash is done, not when
        // the caller stops waiting for it.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            hashing.fetch_add(1, Ordering::SeqCst);
            let started = std::time::Instant::now();
            let result = f();
            if let Some(m) = &metrics {
                m.password_hashed(op, started.elapsed());
            }
            hashing.fetch_sub(1, Ordering::SeqCst);
            result
        })
        .await
        .map_err(|e| AuthError::Internal(format!("hashing task failed: {e}")))?
    }

    /// A hashing permit now, or after waiting in the bounded queue; beyond the queue, shed load.
    async fn permit(&self) -> Result<OwnedSemaphorePermit, AuthError> {
        let inner = &self.inner;
        match inner.permits.clone().try_acquire_owned() {
            Ok(p) => return Ok(p),
            Err(TryAcquireError::Closed) => {
                return Err(AuthError::Internal("hashing pool closed".into()));
            }
            Err(TryAcquireError::NoPermits) => {}
        }
        // Bounded queue: beyond it, fail fast instead of letting latency grow without bound. The
        // slot is given back when this future ends, completed or dropped.
        let _slot =
            QueueSlot::take(&inner.waiting, inner.max_queued).ok_or(AuthError::Overloaded)?;
        inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AuthError::Internal("hashing pool closed".into()))
    }
}

/// A hashing permit taken ahead of the hash ([`PasswordHasher::slot`]).
#[derive(Debug)]
pub(crate) struct HashSlot(OwnedSemaphorePermit);

/// A place in the hashing queue, held while waiting for a permit.
struct QueueSlot<'a>(&'a AtomicUsize);

impl<'a> QueueSlot<'a> {
    /// Takes a place unless `max` callers already wait.
    fn take(waiting: &'a AtomicUsize, max: usize) -> Option<Self> {
        waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(waiting))
    }
}

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(memory_kib: u32) -> PasswordHasher {
        PasswordHasher::new(
            HashParams {
                memory_kib,
                iterations: 2,
                parallelism: 1,
                max_concurrent: 2,
                max_queued: 8,
            },
            PasswordPolicy {
                min_chars: 8,
                max_bytes: 1024,
            },
        )
        .unwrap()
    }

    #[tokio::test]
    async fn hash_verify_and_rehash() {
        let h = hasher(1024);
        let phc = h.hash(normalize("correct horse")).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=2,p=1$"));
        let v = h
            .verify(normalize("correct horse"), Some(phc.clone()))
            .await
            .unwrap();
        assert_eq!(
            v,
            Verified {
                ok: true,
                needs_rehash: false
            }
        );
        assert!(
            !h.verify(normalize("wrong horse"), Some(phc.clone()))
                .await
                .unwrap()
                .ok
        );
        // Same password under new parameters: still verifies, flagged for rehash.
        let v = hasher(2048)
            .verify(normalize("correct horse"), Some(phc))
            .await
            .unwrap();
        assert_eq!(
            v,
            Verified {
                ok: true,
                needs_rehash: true
            }
        );
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let h = hasher(1024);
        assert!(!h.verify(normalize("anything"), None).await.unwrap().ok);
        assert!(
            !h.verify(normalize("x"), Some("not a phc".into()))
                .await
                .unwrap()
                .ok
        );
    }

    #[tokio::test]
    async fn nfc_equivalent_passwords_match_and_nothing_is_truncated() {
        let h = hasher(1024);
        let phc = h
            .hash(h.check_new_password("ma\u{f1}ana!!").unwrap())
            .await
            .unwrap();
        let decomposed = h.check_login_input("man\u{303}ana!!").unwrap();
        assert!(h.verify(decomposed, Some(phc)).await.unwrap().ok);
        let long = "p".repeat(100);
        let phc = h.hash(h.check_new_password(&long).unwrap()).await.unwrap();
        assert!(
            !h.verify(normalize(&long[..72]), Some(phc))
                .await
                .unwrap()
                .ok
        );
    }

    #[test]
    fn input_bounds() {
        let h = hasher(1024);
        assert!(matches!(
            h.check_login_input(""),
            Err(AuthError::InvalidArgument(_))
        ));
        assert!(h.check_login_input(&"a".repeat(1024)).is_ok());
        assert!(matches!(
            h.check_login_input(&"a".repeat(1025)),
            Err(AuthError::InvalidArgument(_))
        ));
        assert!(matches!(
            h.check_login_input(&"a".repeat(1 << 20)),
            Err(AuthError::InvalidArgument(_))
        ));
        assert!(matches!(
            h.check_new_password("short"),
            Err(AuthError::InvalidArgument(_))
        ));
        assert!(h.check_new_password("🔑 パスワード with spaces").is_ok());
    }

    #[tokio::test]
    async fn saturated_pool_sheds_load() {
        let h = PasswordHasher::new(
            HashParams {
                memory_kib: 8192,
                iterations: 3,
                parallelism: 1,
                max_concurrent: 1,
                max_queued: 1,
            },
            PasswordPolicy {
                min_chars: 8,
                max_bytes: 1024,
            },
        )
        .unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move { h.hash(normalize("password1")).await })
            })
            .collect();
        let mut shed = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Err(AuthError::Overloaded)) {
                shed += 1;
            }
        }
        assert!(
            shed >= 1,
            "at most one running and one queued: the rest are shed"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_hashes_keep_the_bounds() {
        let h = PasswordHasher::new(
            HashParams {
                memory_kib: 8192,
                iterations: 2,
                parallelism: 1,
                max_concurrent: 2,
                max_queued: 4,
            },
            PasswordPolicy {
                min_chars: 8,
                max_bytes: 1024,
            },
        )
        .unwrap();
        // Callers that give up almost at once: running and queued hashes alike are cancelled.
        let peak = Arc::new(AtomicUsize::new(0));
        let watch = {
            let (h, peak) = (h.clone(), peak.clone());
            tokio::spawn(async move {
                loop {
                    peak.fetch_max(h.running(), Ordering::SeqCst);
                    tokio::task::yield_now().await;
                }
            })
        };
        for _ in 0..40 {
            let calls: Vec<_> = (0..8)
                .map(|_| {
                    let h = h.clone();
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(
                            std::time::Duration::from_micros(200),
                            h.hash(normalize("password1")),
                        )
                        .await;
                    })
                })
                .collect();
            for c in calls {
                c.await.unwrap();
                assert!(h.queued() <= 4, "queue bound held: {}", h.queued());
            }
        }
        let peak = peak.load(Ordering::SeqCst);
        assert!(
            (1..=2).contains(&peak),
            "at most two hashes ran at once: {peak}"
        );
        // Once the abandoned hashes finish, every permit and queue place is back...
        for _ in 0..200 {
            if h.running() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(h.running(), 0, "permits returned by the blocking tasks");
        assert_eq!(h.queued(), 0, "queue places returned by dropped waiters");
        // Memory: at most one pooled buffer per permit was ever allocated and kept.
        assert!(
            h.inner.engine.pooled_buffers() <= 2,
            "{}",
            h.inner.engine.pooled_buffers()
        );
        watch.abort();
        // ...so genuine logins are not shed: three at once (two run, one waits) all succeed.
        let calls: Vec<_> = (0..3)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move { h.hash(normalize("password1")).await })
            })
            .collect();
        for c in calls {
            c.await.unwrap().unwrap();
        }
    }
}
