//! Password hashing with argon2id: explicit parameters, PHC strings, NFC normalisation, a bounded
//! blocking pool ([`pool`]), a dummy hash for unknown users, rehash detection, equal timing for hashes
//! with older parameters ([`pacing`]), and the rules for new passwords ([`policy`]).

mod engine;
mod pacing;
pub mod policy;
mod pool;

use std::sync::Arc;

use argon2::Params;
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

use crate::error::AuthError;
use crate::http::metrics::{HashOp, Metrics};
pub use policy::{Owner, PasswordPolicy, PasswordRefused, Score};
pub(crate) use pool::HashSlot;

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
    pacer: pacing::Pacer,
    pool: pool::Pool,
    policy: PasswordPolicy,
    dummy_hash: String,
    /// Where hash durations are recorded (none for the operator commands).
    metrics: Option<Metrics>,
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
    /// Builds a hasher: computes the dummy hash used for unknown users and verifies it twice (three
    /// hashes at startup, the first durations for [`pacing`]), and loads the strength estimator.
    /// Blocking: call it off the async threads.
    pub fn new(hash: HashParams, policy: PasswordPolicy) -> Result<Self, AuthError> {
        Self::build(hash, policy, Box::new(pacing::Sleep), None)
    }

    /// [`PasswordHasher::new`] recording every hash's duration in `metrics`.
    pub(crate) fn with_metrics(
        hash: HashParams,
        policy: PasswordPolicy,
        metrics: Metrics,
    ) -> Result<Self, AuthError> {
        Self::build(hash, policy, Box::new(pacing::Sleep), Some(metrics))
    }

    #[cfg(test)]
    fn with_pause(
        hash: HashParams,
        policy: PasswordPolicy,
        pause: Box<dyn pacing::Pause>,
    ) -> Result<Self, AuthError> {
        Self::build(hash, policy, pause, None)
    }

    fn build(
        hash: HashParams,
        policy: PasswordPolicy,
        pause: Box<dyn pacing::Pause>,
        metrics: Option<Metrics>,
    ) -> Result<Self, AuthError> {
        let params = Params::new(hash.memory_kib, hash.iterations, hash.parallelism, Some(32))
            .map_err(|e| AuthError::Internal(format!("argon2 params: {e}")))?;
        let engine = engine::Engine::new(params);
        let pacer = pacing::Pacer::new(pause);
        let mut dummy_secret = [0u8; 24];
        aws_lc_rs::rand::fill(&mut dummy_secret).map_err(|_| AuthError::Internal("rng".into()))?;
        let dummy_hash = pacer.hash(&engine, &dummy_secret)?;
        for _ in 0..2 {
            pacer.verify(&engine, &dummy_secret, &dummy_hash)?;
        }
        policy::warm_up();
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                pacer,
                pool: pool::Pool::new(hash.max_concurrent, hash.max_queued),
                policy,
                dummy_hash,
                metrics,
            }),
        })
    }

    /// The password policy.
    pub fn policy(&self) -> PasswordPolicy {
        self.inner.policy
    }

    /// Normalises a password presented at login; refuses empty or oversized input before any hashing.
    pub fn check_login_input(&self, password: &str) -> Result<Zeroizing<String>, AuthError> {
        Ok(self.inner.policy.login_input(password)?)
    }

    /// Normalises a new password for `owner` and applies the whole policy ([`policy`]): the cheap
    /// rules here, the strength estimate (milliseconds for long input) in a hashing slot on the
    /// blocking pool, so it is bounded like hashing and never runs on the async threads.
    pub async fn check_new_password(
        &self,
        password: &str,
        owner: Owner<'_>,
    ) -> Result<Zeroizing<String>, AuthError> {
        let policy = self.inner.policy;
        let nfc = policy.check_shape(password, owner)?;
        let (key, roles) = (owner.username_key.to_owned(), owner.roles.to_vec());
        self.inner
            .pool
            .run(move || {
                let owner = Owner {
                    username_key: &key,
                    roles: &roles,
                };
                policy.check_strength(&nfc, owner)?;
                Ok(nfc)
            })
            .await
    }

    /// Hashes an already-normalised password into a PHC string.
    pub async fn hash(&self, password: Zeroizing<String>) -> Result<String, AuthError> {
        let inner = self.inner.clone();
        self.inner
            .pool
            .run(move || {
                inner.timed(HashOp::Hash, || {
                    inner.pacer.hash(&inner.engine, password.as_bytes())
                })
            })
            .await
    }

    /// Verifies an already-normalised password against `phc`, or against the dummy hash when `phc` is
    /// `None` (unknown user, or an account without a password), so both cost the same; a `phc` with
    /// older parameters, or unusable, is padded to the same duration ([`pacing`]).
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
        self.inner.pool.slot().await
    }

    /// [`PasswordHasher::verify`] in a slot taken earlier.
    pub(crate) async fn verify_in(
        &self,
        slot: HashSlot,
        password: Zeroizing<String>,
        phc: Option<String>,
    ) -> Result<Verified, AuthError> {
        let inner = self.inner.clone();
        self.inner
            .pool
            .run_in(slot, move || {
                let real = phc.is_some();
                let phc = phc.as_deref().unwrap_or(&inner.dummy_hash);
                let checked = inner.timed(HashOp::Verify, || {
                    inner.pacer.verify(&inner.engine, password.as_bytes(), phc)
                });
                match checked {
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

    /// Logins waiting for a hashing slot, slots taken, and slots in all (for the metrics).
    pub(crate) fn occupancy(&self) -> (usize, usize, usize) {
        self.inner.pool.occupancy()
    }
}

impl Inner {
    /// Runs `f` (on a hashing thread), recording how long it took — padding included: the time the
    /// hashing slot was held.
    fn timed<T>(&self, op: HashOp, f: impl FnOnce() -> T) -> T {
        let started = std::time::Instant::now();
        let result = f();
        if let Some(m) = &self.metrics {
            m.password_hashed(op, started.elapsed());
        }
        result
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
            PasswordPolicy::default(),
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

    const NOBODY: Owner<'static> = Owner {
        username_key: "nobody-at-all",
        roles: &[],
    };

    #[tokio::test]
    async fn nfc_equivalent_passwords_match_and_nothing_is_truncated() {
        let h = hasher(1024);
        let new = h
            .check_new_password("ma\u{f1}ana-ma\u{f1}ana", NOBODY)
            .await
            .unwrap();
        let phc = h.hash(new).await.unwrap();
        let decomposed = h.check_login_input("man\u{303}ana-man\u{303}ana").unwrap();
        assert!(h.verify(decomposed, Some(phc)).await.unwrap().ok);
        let long = "Zq7!vR2#mK9p".repeat(9);
        let new = h.check_new_password(&long, NOBODY).await.unwrap();
        let phc = h.hash(new).await.unwrap();
        assert!(
            !h.verify(normalize(&long[..72]), Some(phc))
                .await
                .unwrap()
                .ok
        );
    }

    #[tokio::test]
    async fn new_passwords_go_through_the_whole_policy() {
        let h = hasher(1024);
        for (pw, refused) in [
            ("password", PasswordRefused::TooEasyToGuess),
            ("Nobody-At-All", PasswordRefused::SameAsUsername),
            ("short", PasswordRefused::TooShort(8)),
            ("", PasswordRefused::Empty),
        ] {
            match h.check_new_password(pw, NOBODY).await {
                Err(AuthError::Password(r)) => assert_eq!(r, refused, "{pw}"),
                other => panic!("{pw}: {other:?}"),
            }
        }
        assert!(matches!(
            h.check_login_input(&"a".repeat(1025)),
            Err(AuthError::Password(PasswordRefused::TooLong(1024)))
        ));
    }

    #[tokio::test]
    async fn hashes_with_older_parameters_are_padded_unknown_users_are_not() {
        let waits = pacing::Recorded::default();
        let h = PasswordHasher::with_pause(
            HashParams {
                memory_kib: 2048,
                iterations: 2,
                parallelism: 1,
                max_concurrent: 2,
                max_queued: 8,
            },
            PasswordPolicy::default(),
            Box::new(waits.clone()),
        )
        .unwrap();
        let current = h.hash(normalize("pw")).await.unwrap();
        let old = hasher(1024).hash(normalize("pw")).await.unwrap();
        h.verify(normalize("wrong"), None).await.unwrap();
        h.verify(normalize("wrong"), Some(current)).await.unwrap();
        assert!(waits.taken().is_empty(), "current parameters: no padding");
        let v = h
            .verify(normalize("wrong"), Some(old.clone()))
            .await
            .unwrap();
        assert!(!v.ok);
        assert!(
            h.verify(normalize("pw"), Some(old))
                .await
                .unwrap()
                .needs_rehash
        );
        h.verify(normalize("pw"), Some("not a phc".into()))
            .await
            .unwrap();
        assert_eq!(
            waits.taken().len(),
            3,
            "older parameters and an unusable hash are padded, right or wrong"
        );
    }
}
