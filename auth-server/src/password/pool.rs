//! The bounded hashing pool: at most "concurrent hashes" computations at once on the blocking
//! threads, at most "queue" callers waiting for one; beyond that, `Overloaded` at once.
//!
//! The bounds hold under cancellation: a hashing permit belongs to the blocking task that hashes (a
//! caller that gives up — client deadline, RST_STREAM — does not free it while argon2 still runs),
//! and a place in the wait queue is an RAII guard given back however the waiting future ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::error::AuthError;

/// Permits, the wait queue, and a count of the computations running.
pub(super) struct Pool {
    permits: Arc<Semaphore>,
    /// Permits in all.
    total: usize,
    /// Computations running right now (on blocking threads).
    hashing: Arc<AtomicUsize>,
    waiting: AtomicUsize,
    max_queued: usize,
}

/// A hashing permit taken ahead of the hash ([`super::PasswordHasher::slot`]).
#[derive(Debug)]
pub(crate) struct HashSlot(OwnedSemaphorePermit);

impl Pool {
    pub(super) fn new(max_concurrent: usize, max_queued: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            total: max_concurrent.max(1),
            hashing: Arc::new(AtomicUsize::new(0)),
            waiting: AtomicUsize::new(0),
            max_queued,
        }
    }

    /// A permit now, or after waiting in the bounded queue; beyond the queue, shed load.
    pub(super) async fn slot(&self) -> Result<HashSlot, AuthError> {
        match self.permits.clone().try_acquire_owned() {
            Ok(p) => return Ok(HashSlot(p)),
            Err(TryAcquireError::Closed) => {
                return Err(AuthError::Internal("hashing pool closed".into()));
            }
            Err(TryAcquireError::NoPermits) => {}
        }
        // Bounded queue: beyond it, fail fast instead of letting latency grow without bound. The
        // place is given back when this future ends, completed or dropped.
        let _place =
            QueueSlot::take(&self.waiting, self.max_queued).ok_or(AuthError::Overloaded)?;
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map(HashSlot)
            .map_err(|_| AuthError::Internal("hashing pool closed".into()))
    }

    /// Runs `f` on a blocking thread once a slot is free.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        let slot = self.slot().await?;
        self.run_in(slot, f).await
    }

    /// Runs `f` on a blocking thread in a slot taken earlier.
    pub(super) async fn run_in<T: Send + 'static>(
        &self,
        slot: HashSlot,
        f: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        let hashing = self.hashing.clone();
        // The permit moves into the blocking task: it is released when the hash is done, not when
        // the caller stops waiting for it.
        let permit = slot.0;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            hashing.fetch_add(1, Ordering::SeqCst);
            let result = f();
            hashing.fetch_sub(1, Ordering::SeqCst);
            result
        })
        .await
        .map_err(|e| AuthError::Internal(format!("hashing task failed: {e}")))?
    }

    /// Callers waiting for a permit, permits taken, and permits in all.
    pub(super) fn occupancy(&self) -> (usize, usize, usize) {
        let in_use = self.total.saturating_sub(self.permits.available_permits());
        (self.waiting.load(Ordering::SeqCst), in_use, self.total)
    }

    /// Computations running right now, whether or not their callers still wait for them.
    #[cfg(test)]
    pub(super) fn running(&self) -> usize {
        self.hashing.load(Ordering::SeqCst)
    }

    /// Callers waiting for a permit.
    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

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
    use super::super::{HashParams, PasswordHasher, PasswordPolicy, normalize};
    use super::*;

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
            PasswordPolicy::default(),
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
            PasswordPolicy::default(),
        )
        .unwrap();
        // Callers that give up almost at once: running and queued hashes alike are cancelled.
        let peak = Arc::new(AtomicUsize::new(0));
        let watch = {
            let (h, peak) = (h.clone(), peak.clone());
            tokio::spawn(async move {
                loop {
                    peak.fetch_max(h.inner.pool.running(), Ordering::SeqCst);
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
                assert!(
                    h.inner.pool.queued() <= 4,
                    "queue bound held: {}",
                    h.inner.pool.queued()
                );
            }
        }
        let peak = peak.load(Ordering::SeqCst);
        assert!(
            (1..=2).contains(&peak),
            "at most two hashes ran at once: {peak}"
        );
        // Once the abandoned hashes finish, every permit and queue place is back...
        for _ in 0..200 {
            if h.inner.pool.running() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            h.inner.pool.running(),
            0,
            "permits returned by the blocking tasks"
        );
        assert_eq!(
            h.inner.pool.queued(),
            0,
            "queue places returned by dropped waiters"
        );
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
