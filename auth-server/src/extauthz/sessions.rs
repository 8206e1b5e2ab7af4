//! A small, bounded, short-lived cache of token state for `Check` (a user token's session, a service
//! token's account), so a token used for many calls does not cost one database read per call. An entry is reused for at most
//! `AUTH_EXTAUTHZ_SESSION_CACHE_TTL` seconds of the server's clock, so a logout, disable, deletion or
//! role change reaches `Check` at most that late (0 turns the cache off: every `Check` reads the
//! database, as `Validate` does). Liveness itself is always judged afresh against the token
//! (`TokenStatus::is_live`): only the row is reused. The revocation view of issue #12 replaces
//! this cache.

use std::sync::Arc;

use auth_interceptor::Claims;

use crate::liveness::TokenStatus;
use crate::store::{Store, StoreError};

/// Most sessions kept.
const CAPACITY: usize = 10_000;

/// A session's or account's state as read at `read_at`.
#[derive(Debug)]
struct Entry {
    status: Arc<TokenStatus>,
    read_at: i64,
}

/// Session rows read by `Check`, each reused for at most `ttl` seconds.
pub(crate) struct SessionCache {
    entries: Option<quick_cache::sync::Cache<String, Arc<Entry>>>,
    ttl: i64,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SessionCache {
    /// Reuses rows for `ttl_secs` seconds (0: never).
    pub(crate) fn new(ttl_secs: u64) -> Self {
        Self {
            entries: (ttl_secs > 0).then(|| quick_cache::sync::Cache::new(CAPACITY)),
            // At most 10 (validated): fits.
            ttl: i64::try_from(ttl_secs).unwrap_or(i64::MAX),
        }
    }

    /// The state behind `claims` at `now`: a reused row younger than the TTL, or one read from
    /// `store` (and kept).
    pub(crate) async fn status(
        &self,
        store: &dyn Store,
        claims: &Claims,
        now: i64,
    ) -> Result<Arc<TokenStatus>, StoreError> {
        let key = TokenStatus::cache_key(claims);
        if let Some(entries) = &self.entries
            && let Some(e) = entries.get(&key)
            && now.saturating_sub(e.read_at) < self.ttl
            && e.read_at <= now
        {
            return Ok(e.status.clone());
        }
        let status = Arc::new(TokenStatus::read(store, claims).await?);
        if let Some(entries) = &self.entries {
            entries.insert(
                key,
                Arc::new(Entry {
                    status: status.clone(),
                    read_at: now,
                }),
            );
        }
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{NewSession, UserRecord};

    const T0: i64 = 1_800_000_000;

    async fn store(dir: &tempfile::TempDir) -> SqliteStore {
        let s = SqliteStore::open(&dir.path().join("auth.db"))
            .await
            .unwrap();
        s.migrate().await.unwrap();
        s.create_user(&UserRecord {
            id: "u1".into(),
            username: "ann".into(),
            username_key: "ann".into(),
            username_skeleton: Some(crate::username::skeleton("ann")),
            password_hash: None,
            roles: vec![],
            disabled: false,
            created_at: T0,
            updated_at: T0,
        })
        .await
        .unwrap();
        s
    }

    fn user_token(sid: &str) -> Claims {
        Claims {
            iss: "auth-server".into(),
            sub: "u1".into(),
            aud: auth_interceptor::Audience::One("internal".into()),
            exp: T0 as u64 + 600,
            iat: T0 as u64,
            nbf: T0 as u64,
            jti: "j".into(),
            sid: sid.into(),
            roles: vec![],
            username: "ann".into(),
            client_id: "auth-server".into(),
            kind: auth_interceptor::TokenKind::User,
        }
    }

    fn found(status: &TokenStatus) -> bool {
        matches!(status, TokenStatus::Session(Some(_)))
    }

    async fn open_session(s: &SqliteStore, id: &str) {
        let new = NewSession {
            id: id.into(),
            user_id: "u1".into(),
            refresh_hash: format!("{id:0<32}").into_bytes(),
            refresh_expires_at: T0 + 100,
            absolute_expires_at: T0 + 1000,
        };
        s.create_session(&new, T0).await.unwrap();
    }

    #[tokio::test]
    async fn a_row_is_reused_for_the_ttl_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        let cache = SessionCache::new(2);
        // Read before the session exists: "no such session" is kept for the TTL too.
        let t = user_token("s1");
        assert!(!found(&cache.status(&s, &t, T0).await.unwrap()));
        open_session(&s, "s1").await;
        assert!(!found(&cache.status(&s, &t, T0 + 1).await.unwrap()));
        assert!(found(&cache.status(&s, &t, T0 + 2).await.unwrap()));
        let off = SessionCache::new(0);
        assert!(found(&off.status(&s, &t, T0).await.unwrap()));
        assert!(off.entries.is_none(), "TTL 0 keeps nothing");
    }

    #[tokio::test]
    async fn the_cache_holds_at_most_its_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        let cache = SessionCache::new(10);
        for i in 0..(CAPACITY + 2_000) {
            let t = user_token(&format!("sid-{i}"));
            cache.status(&s, &t, T0).await.unwrap();
        }
        let held = cache.entries.as_ref().unwrap().len();
        assert!(held <= CAPACITY, "{held} entries held");
    }
}
