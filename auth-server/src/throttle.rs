//! Login throttling, stored in the database so every replica sees it: per-account exponential back-off
//! after a few consecutive failures (also for usernames that do not exist, so throttling reveals
//! nothing), capped so a victim cannot be locked out for long, plus a per-source limit against password
//! spraying. Refused attempts cost no password hash.

use crate::error::AuthError;
use crate::store::Store;

/// Throttling thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Off: nothing is counted or refused.
    pub enabled: bool,
    /// Consecutive failures of one account before back-off starts.
    pub account_free_failures: i64,
    /// Failures from one source address before back-off starts.
    pub source_free_failures: i64,
    /// Longest lock, seconds (the back-off doubles from 1 s up to this).
    pub max_delay: i64,
    /// Failures older than this many seconds are forgotten.
    pub window: i64,
}

impl ThrottlePolicy {
    /// Seconds to lock after `failures` consecutive failures when `free` are allowed: 0 below the
    /// threshold, then 1, 2, 4, … capped at `max_delay`.
    pub fn delay(&self, failures: i64, free: i64) -> i64 {
        if failures < free {
            return 0;
        }
        let exp = (failures - free).min(30) as u32;
        (1i64 << exp).min(self.max_delay)
    }
}

/// The throttle keys of one login attempt.
#[derive(Debug, Clone)]
pub(crate) struct AttemptKeys {
    account: String,
    source: String,
}

impl AttemptKeys {
    /// Keys for the canonical username and the source address.
    pub(crate) fn new(username_key: &str, source_ip: &str) -> Self {
        Self {
            account: format!("user:{username_key}"),
            source: format!("source:{source_ip}"),
        }
    }
}

/// Checks and updates the counters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Throttle {
    policy: ThrottlePolicy,
}

impl Throttle {
    /// A throttle enforcing `policy`.
    pub(crate) fn new(policy: ThrottlePolicy) -> Self {
        Self { policy }
    }

    /// Refuses the attempt (with the seconds to wait) while the account or the source is locked.
    pub(crate) async fn check(
        &self,
        store: &dyn Store,
        keys: &AttemptKeys,
        now: i64,
    ) -> Result<(), AuthError> {
        if !self.policy.enabled {
            return Ok(());
        }
        let until = store
            .login_locked_until(&keys.account, &keys.source)
            .await?;
        if until > now {
            Err(AuthError::Throttled {
                retry_after: until - now,
            })
        } else {
            Ok(())
        }
    }

    /// Counts a failed attempt against the account and the source, locking them as the policy says.
    /// Returns the account's consecutive failures.
    pub(crate) async fn failed(
        &self,
        store: &dyn Store,
        keys: &AttemptKeys,
        now: i64,
    ) -> Result<i64, AuthError> {
        if !self.policy.enabled {
            return Ok(0);
        }
        let p = &self.policy;
        let window_start = now - p.window;
        let account = store
            .record_login_failure(&keys.account, now, window_start)
            .await?;
        let source = store
            .record_login_failure(&keys.source, now, window_start)
            .await?;
        for (key, failures, free) in [
            (&keys.account, account, p.account_free_failures),
            (&keys.source, source, p.source_free_failures),
        ] {
            let delay = p.delay(failures, free);
            if delay > 0 {
                store.lock_login(key, now + delay).await?;
            }
        }
        Ok(account)
    }

    /// A successful login resets the account's counter (the source's decays with the window).
    pub(crate) async fn succeeded(
        &self,
        store: &dyn Store,
        keys: &AttemptKeys,
    ) -> Result<(), AuthError> {
        if self.policy.enabled {
            store.reset_login_failures(&keys.account).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_exponential_and_capped() {
        let p = ThrottlePolicy {
            enabled: true,
            account_free_failures: 5,
            source_free_failures: 20,
            max_delay: 900,
            window: 3600,
        };
        let delays: Vec<i64> = (1..=16).map(|n| p.delay(n, 5)).collect();
        assert_eq!(
            delays,
            vec![0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
        );
        assert_eq!(
            p.delay(10_000, 5),
            900,
            "capped: a victim is never locked out for longer"
        );
    }
}
