//! The shared storage test suite: every scenario is written once and run against SQLite (a fresh
//! temporary file) and PostgreSQL (a fresh database per test through `#[sqlx::test]`, which needs
//! `DATABASE_URL`).

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Barrier;

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::{
    CONCURRENT_REFRESH_WINDOW_SECS, KeyStatus, NewSession, RevokeScope, RotateOutcome,
    SigningKeyRecord, Store, StoreError, UserRecord,
};

/// Start of the test clock.
const T0: i64 = 1_800_000_000;
/// Idle lifetime of refresh tokens.
const IDLE: i64 = 3_600;
/// Absolute lifetime of sessions.
const ABS: i64 = 30 * 86_400;

/// A store plus raw access to its tables, so scenarios can check what was (not) written.
#[async_trait]
trait TestStore: Store {
    /// Runs a query returning one BIGINT, with text binds.
    async fn int(&self, sql: &str, binds: &[&str]) -> i64;
    /// Runs a query returning one optional text, with text binds.
    async fn text(&self, sql: &str, binds: &[&str]) -> Option<String>;
    /// A `'static` handle on the same database, for spawned tasks.
    fn shared(&self) -> Arc<dyn TestStore>;
}

/// Implements [`TestStore`] for a store type with a `pool()` accessor.
macro_rules! impl_test_store {
    ($store:ty) => {
        #[async_trait]
        impl TestStore for $store {
            async fn int(&self, sql: &str, binds: &[&str]) -> i64 {
                let mut q = sqlx::query_scalar(sql);
                for b in binds {
                    q = q.bind(*b);
                }
                q.fetch_one(self.pool()).await.unwrap()
            }
            async fn text(&self, sql: &str, binds: &[&str]) -> Option<String> {
                let mut q = sqlx::query_scalar(sql);
                for b in binds {
                    q = q.bind(*b);
                }
                q.fetch_optional(self.pool()).await.unwrap().flatten()
            }
            fn shared(&self) -> Arc<dyn TestStore> {
                Arc::new(self.clone())
            }
        }
    };
}

impl_test_store!(SqliteStore);
impl_test_store!(PgStore);

/// Generates, per scenario `name`, a module `name` with a `sqlite` and a `pg` test.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let store = $crate::store::sqlite::SqliteStore::open(&dir.path().join("auth.db")).await.unwrap();
                $crate::store::Store::migrate(&store).await.unwrap();
                super::$name(&store).await;
            }

            #[sqlx::test(migrations = "./migrations/postgres")]
            async fn pg(pool: sqlx::PgPool) {
                super::$name(&$crate::store::postgres::PgStore::from_pool(pool)).await;
            }
        }
    )*};
}

mod abuse;
mod keys;
mod revocations;
mod rotation;
mod sessions;
mod usernames;
mod users;

fn user(id: &str, name: &str) -> UserRecord {
    UserRecord {
        id: id.into(),
        username: name.into(),
        username_key: name.to_lowercase(),
        username_skeleton: Some(crate::username::skeleton(&name.to_lowercase())),
        password_hash: Some(format!("$argon2id$v=19$m=19456,t=2,p=1${id}")),
        roles: vec!["user".into()],
        disabled: false,
        created_at: T0,
        updated_at: T0,
    }
}

fn hash(tag: &str) -> Vec<u8> {
    let mut h = tag.as_bytes().to_vec();
    h.resize(32, 0);
    h
}

/// Creates a session for `user_id` at `now` whose first refresh token is `hash(token)`.
async fn session(s: &dyn TestStore, id: &str, user_id: &str, token: &str, now: i64) {
    let new = NewSession {
        id: id.into(),
        user_id: user_id.into(),
        refresh_hash: hash(token),
        refresh_expires_at: now + IDLE,
        absolute_expires_at: now + ABS,
    };
    s.create_session(&new, now).await.unwrap();
}

/// A user `u1` with session `s1` whose refresh token is `t0`.
async fn setup(s: &dyn TestStore) {
    s.create_user(&user("u1", "Alice")).await.unwrap();
    session(s, "s1", "u1", "t0", T0).await;
}

async fn count(s: &dyn TestStore, table_and_filter: &str) -> i64 {
    s.int(&format!("SELECT COUNT(*) FROM {table_and_filter}"), &[])
        .await
}

async fn reason(s: &dyn TestStore, session_id: &str) -> Option<String> {
    s.text(
        "SELECT revoke_reason FROM sessions WHERE id = $1",
        &[session_id],
    )
    .await
}

/// Everything a rotation could write, to check that a failed one wrote nothing.
async fn fingerprint(s: &dyn TestStore) -> [i64; 4] {
    [
        count(s, "refresh_tokens").await,
        count(s, "refresh_tokens WHERE used_at IS NOT NULL").await,
        count(s, "sessions WHERE revoked_at IS NOT NULL").await,
        s.int(
            "SELECT CAST(COALESCE(SUM(last_used_at), 0) AS BIGINT) FROM sessions",
            &[],
        )
        .await,
    ]
}

async fn rotate(s: &dyn TestStore, old: &str, new: &str, now: i64) -> RotateOutcome {
    s.rotate_refresh(&hash(old), &hash(new), now, IDLE)
        .await
        .unwrap()
}

#[tokio::test]
async fn sqlite_memory_url() {
    let store = SqliteStore::connect("sqlite::memory:", std::time::Duration::from_secs(1))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    setup(&store).await;
    assert!(matches!(
        rotate(&store, "t0", "t1", T0 + 1).await,
        RotateOutcome::Rotated { .. }
    ));
    assert_eq!(count(&store, "refresh_tokens").await, 2);
}

#[cfg(unix)]
#[tokio::test]
async fn sqlite_files_are_private_and_reopen() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.migrate().await.unwrap();
    setup(&store).await;
    store.pool().close().await;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let store = SqliteStore::open(&path).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.count_users().await.unwrap(), 1);
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(journal, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(fk, 1);

    // The zero-config URL form creates a missing file the same way.
    let path = dir.path().join("other.db");
    let store = SqliteStore::connect(
        &format!("sqlite://{}", path.display()),
        std::time::Duration::from_secs(1),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
