//! Login throttling, stored in the database so every replica sees it (OWASP ASVS 5 V6.1.1: it slows
//! guessing without letting anyone lock an owner out). Three keys per attempt:
//!
//! - **(account, source)**: the fast path — a few failures from one address at one account lock that
//!   pair with exponential back-off (1 s, 2 s, 4 s, … up to the cap). Someone else failing at your
//!   account from their address never locks *you* out through this key.
//! - **account** (all sources): a higher threshold with a short cap, so a distributed attack on one
//!   account is slowed while its owner, at another address, is refused for at most the short cap.
//! - **source** (all accounts): password spraying from one real client address.
//!
//! Usernames that do not exist are keyed the same way, so throttling reveals nothing. A key holds the
//! username's label (a keyed hash, see [`crate::labels`]), never the name: a password typed into the
//! username field is not stored, and one name still gives one bucket. Every attempt
//! is reserved (counted) atomically *before* the password is checked, so concurrent attempts or
//! replicas cannot check more passwords than the limit, and a caller who gives up mid-hash has still
//! spent the attempt. A lock re-arms only after the failures that earn it. Refused attempts cost no
//! hash, and are audited in aggregate (the 1st, 10th, 100th… refusal of a lock), so a throttled
//! source cannot fill the audit trail.

use crate::error::AuthError;
use crate::labels::NameLabels;
use crate::store::{AttemptRule, Store};

/// Throttling thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Off: nothing is counted or refused.
    pub enabled: bool,
    /// Failures of one account from one source before that pair locks.
    pub pair_free_failures: i64,
    /// Failures of one account from all sources before the account locks.
    pub account_free_failures: i64,
    /// Longest account-wide lock, seconds (short: its owner elsewhere is refused at most this long).
    pub account_max_delay: i64,
    /// Failures from one source address, any account, before the source locks.
    pub source_free_failures: i64,
    /// Longest lock of a pair or a source, seconds (the back-off doubles from 1 s up to this).
    pub max_delay: i64,
    /// Failures older than this many seconds are forgotten.
    pub window: i64,
}

/// The throttle keys of one login attempt.
#[derive(Debug, Clone)]
pub(crate) struct AttemptKeys {
    pair: String,
    account: String,
    source: String,
}

impl AttemptKeys {
    /// Keys for the canonical username (by its label) and the source address.
    pub(crate) fn new(labels: &NameLabels, username_key: &str, source_ip: &str) -> Self {
        let name = labels.digest(username_key);
        Self {
            pair: format!("pair:{name}|{source_ip}"),
            account: format!("user:{name}"),
            source: format!("source:{source_ip}"),
        }
    }
}

impl AttemptKeys {
    /// Keys for a service account's client id (by its label) and the source address, in buckets of
    /// their own: a client id never shares a bucket with a username (the source bucket is shared, so
    /// spraying from one address is slowed whatever it targets).
    pub(crate) fn for_client(labels: &NameLabels, client_id: &str, source_ip: &str) -> Self {
        let name = labels.digest(client_id);
        Self {
            pair: format!("client-pair:{name}|{source_ip}"),
            account: format!("client:{name}"),
            source: format!("source:{source_ip}"),
        }
    }
}

/// Why an attempt was refused without checking the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// Seconds until the attempt may be made.
    pub(crate) retry_after: i64,
    /// Which lock refused it (`pair`, `account` or `source`).
    pub(crate) lock: &'static str,
    /// How many attempts this lock refused so far, when this refusal is one to audit (the 1st, 10th,
    /// 100th, …); `None` otherwise.
    pub(crate) audit_count: Option<i64>,
}

impl Refusal {
    /// The status the caller gets.
    pub(crate) fn error(&self) -> AuthError {
        AuthError::Throttled {
            retry_after: self.retry_after,
        }
    }
}

/// Checks and updates the counters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Throttle {
    policy: ThrottlePolicy,
}

/// 1, 10, 100, …: the refusals worth an audit row.
fn worth_auditing(refused: i64) -> bool {
    let mut n = refused;
    while n >= 10 && n % 10 == 0 {
        n /= 10;
    }
    n == 1
}

impl Throttle {
    /// A throttle enforcing `policy`.
    pub(crate) fn new(policy: ThrottlePolicy) -> Self {
        Self { policy }
    }

    /// Admits an attempt — counting it, before any password is checked — or refuses it while one of
    /// its keys is locked.
    pub(crate) async fn admit(
        &self,
        store: &dyn Store,
        keys: &AttemptKeys,
        now: i64,
    ) -> Result<Result<(), Refusal>, AuthError> {
        if let Err(refusal) = self.check(store, keys, now).await? {
            return Ok(Err(refusal));
        }
        self.count(store, keys, now).await
    }

    /// Refuses an attempt while one of its keys is locked, counting nothing else (one read when no
    /// key is locked).
    pub(crate) async fn check(
        &self,
        store: &dyn Store,
        keys: &AttemptKeys,
        now: i64,
    ) -> Result<Result<(), Refusal>, AuthError> {
        if !self.policy.enabled {
            return Ok(Ok(()));
        }
        let all = [
            keys.source.as_str(),
            keys.account.as_str(),
            keys.pair.as_str(),
        ];
        let Some((key, until)) = store.login_lock(all, now).await? else {
            return Ok(Ok(()));
        };
        let refused = store.note_login_refused(&key).await?;
        let lock = self
            .named(keys)
            .iter()
            .find(|(_, k, _, _)| **k == key)
            .map_or("source", |(name, ..)| *name);
        Ok(Err(Refusal {
            retry_after: until - now,
            lock,
            audit_count: worth_auditing(refused).then_some(refused),
        }))
    }

    /// Counts one failure (or reserved attempt) against every key of `keys`, locking a key that
    /// reaches its threshold. A refusal means a concurrent attempt locked a key first.
    pub(crate) async fn count(
        &self,
        store: &dyn Store,
        keys: &AttemptKeys,
        now: i64,
    ) -> Result<Result<(), Refusal>, AuthError> {
        if !self.policy.enabled {
            return Ok(Ok(()));
        }
        let window_start = now.saturating_sub(self.policy.window);
        for (lock, key, free, max_delay) in self.named(keys) {
            let rule = AttemptRule {
                free,
                max_delay,
                window_start,
            };
            let r = store.reserve_login_attempt(key, now, rule).await?;
            if r.refused > 0 {
                // A concurrent attempt locked this key between the check and the reservation.
                return Ok(Err(Refusal {
                    retry_after: r.locked_until - now,
                    lock,
                    audit_count: worth_auditing(r.refused).then_some(r.refused),
                }));
            }
        }
        Ok(Ok(()))
    }

    /// The keys of an attempt with their names and rules.
    fn named<'k>(&self, keys: &'k AttemptKeys) -> [(&'static str, &'k String, i64, i64); 3] {
        let p = &self.policy;
        [
            ("source", &keys.source, p.source_free_failures, p.max_delay),
            (
                "account",
                &keys.account,
                p.account_free_failures,
                p.account_max_delay,
            ),
            ("pair", &keys.pair, p.pair_free_failures, p.max_delay),
        ]
    }

    /// A successful login forgets the pair's and the account's failures, and takes back the one it
    /// counted for the source (whose other failures decay with the window, so one good password does
    /// not unlock spraying, and many good ones from one address do not add up).
    pub(crate) async fn succeeded(
        &self,
        store: &dyn Store,
        keys: &AttemptKeys,
    ) -> Result<(), AuthError> {
        if self.policy.enabled {
            store.reset_login_failures(&keys.pair).await?;
            store.reset_login_failures(&keys.account).await?;
            store.refund_login_attempt(&keys.source).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_audited_at_powers_of_ten() {
        let audited: Vec<i64> = (1..=1000).filter(|n| worth_auditing(*n)).collect();
        assert_eq!(audited, vec![1, 10, 100, 1000]);
    }

    #[test]
    fn keys_separate_pair_account_and_source() {
        let labels = NameLabels::derive(&[3u8; 32]).unwrap();
        let k = AttemptKeys::new(&labels, "alice", "10.0.0.1");
        let name = labels.digest("alice");
        assert_eq!(k.pair, format!("pair:{name}|10.0.0.1"));
        assert_eq!(k.account, format!("user:{name}"));
        assert_eq!(k.source, "source:10.0.0.1");
        assert!(!format!("{k:?}").contains("alice"), "no name in a key");
        assert_eq!(
            AttemptKeys::new(&labels, "alice", "10.0.0.2").account,
            k.account,
            "one bucket per name"
        );
    }
}
