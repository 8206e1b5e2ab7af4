//! The accounts `IssueServiceToken` has read recently, so that the secret path costs no database
//! read of the account (only the throttle's lock check remains): a bounded cache keyed by account
//! name, each row reused for at most [`TTL_SECS`] of the server's clock.
//!
//! A cached row is only ever used to *admit*: a request it would refuse (wrong secret, disabled,
//! audience or scope not allowed) is judged again on a fresh read, so a grant made on another
//! replica (a new secret, an enabled account, an added audience) is never refused because of the
//! cache. What *ends* tokens is seen at once: every such change (disable, delete, rotation without
//! overlap, key removal, a role or audience taken away) appends a SUBJECT row to the revocation log,
//! and a row read before that cut is not used once this replica's revocation view has the row (on
//! the replica that made the change before its RPC returned, on the others within the log's
//! propagation). Admin changes made on this replica also drop the row. A role or audience *added*
//! elsewhere shows in new tokens within [`TTL_SECS`].

use std::sync::Arc;

use crate::store::ServiceAccountRecord;

/// Longest a cached account row is used, seconds of the server's clock.
pub(crate) const TTL_SECS: i64 = 2;
/// Most accounts kept.
const CAPACITY: usize = 10_000;

/// One account as read at `read_at`.
#[derive(Debug)]
struct Cached {
    account: Arc<ServiceAccountRecord>,
    read_at: i64,
}

/// Recently read service accounts by name.
pub(crate) struct AccountCache {
    entries: quick_cache::sync::Cache<String, Arc<Cached>>,
}

impl std::fmt::Debug for AccountCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountCache")
            .field("len", &self.entries.len())
            .finish()
    }
}

impl Default for AccountCache {
    fn default() -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(CAPACITY),
        }
    }
}

impl AccountCache {
    /// The account named `name` as read less than [`TTL_SECS`] ago and not since cut by a
    /// revocation of its tokens (`cut_since(id, read_at)`: the revocation view has a cut of the
    /// account's tokens at or after `read_at`, or cannot tell); `None` means: read it.
    pub(crate) fn get(
        &self,
        name: &str,
        now: i64,
        cut_since: impl FnOnce(&str, i64) -> bool,
    ) -> Option<Arc<ServiceAccountRecord>> {
        let cached = self.entries.get(name)?;
        let fresh = now >= cached.read_at && now - cached.read_at < TTL_SECS;
        if fresh && !cut_since(&cached.account.id, cached.read_at) {
            return Some(cached.account.clone());
        }
        self.entries.remove(name);
        None
    }

    /// Remembers `account` as read at `now`.
    pub(crate) fn put(&self, account: Arc<ServiceAccountRecord>, now: i64) {
        let name = account.name.clone();
        self.entries.insert(
            name,
            Arc::new(Cached {
                account,
                read_at: now,
            }),
        );
    }

    /// Drops the account named `name` (after an admin change on this replica).
    pub(crate) fn forget(&self, name: &str) {
        self.entries.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str) -> Arc<ServiceAccountRecord> {
        Arc::new(ServiceAccountRecord {
            id: format!("id-{name}"),
            name: name.into(),
            description: String::new(),
            roles: vec![],
            audiences: vec!["orders".into()],
            disabled: false,
            secret_hash: vec![1; 32],
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            tokens_not_before: 0,
            created_at: 0,
            updated_at: 0,
            keys: vec![],
        })
    }

    const NO_CUT: fn(&str, i64) -> bool = |_, _| false;

    #[test]
    fn a_row_is_used_for_the_ttl_only_and_until_forgotten() {
        let cache = AccountCache::default();
        cache.put(account("payments"), 100);
        assert!(cache.get("payments", 100, NO_CUT).is_some());
        assert!(cache.get("payments", 100 + TTL_SECS - 1, NO_CUT).is_some());
        assert!(cache.get("payments", 100 + TTL_SECS, NO_CUT).is_none());
        assert!(cache.get("payments", 100, NO_CUT).is_none(), "dropped");
        cache.put(account("payments"), 200);
        cache.forget("payments");
        assert!(cache.get("payments", 200, NO_CUT).is_none());
        // A clock that went back does not make an old row young.
        cache.put(account("billing"), 300);
        assert!(cache.get("billing", 299, NO_CUT).is_none());
    }

    #[test]
    fn a_cut_of_the_accounts_tokens_makes_the_row_unusable() {
        let cache = AccountCache::default();
        cache.put(account("payments"), 100);
        let asked = std::cell::Cell::new(None);
        let cut = |id: &str, since: i64| {
            asked.set(Some((id.to_owned(), since)));
            true
        };
        assert!(cache.get("payments", 100, cut).is_none());
        assert_eq!(asked.take(), Some(("id-payments".to_owned(), 100)));
        assert!(cache.get("payments", 100, NO_CUT).is_none(), "dropped");
    }

    #[test]
    fn capacity_is_bounded() {
        let cache = AccountCache::default();
        for i in 0..(CAPACITY + 500) {
            cache.put(account(&format!("a{i}")), 1);
        }
        assert!(cache.entries.len() <= CAPACITY);
    }
}
