//! The shared storage test suite: every scenario is written once and run against SQLite (a fresh
//! temporary file) and PostgreSQL (a fresh database per test through `#[sqlx::test]`, which needs
//! `DATABASE_URL`).

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Barrier;

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::{
    KeyStatus, NewSession, RevokeScope, RotateOutcome, SigningKeyRecord, Store, StoreError,
    UserRecord,
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

/// Generates, per scenario, a module with a `sqlite` and a `pg` test.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let store = super::SqliteStore::open(&dir.path().join("auth.db")).await.unwrap();
                super::Store::migrate(&store).await.unwrap();
                super::$name(&store).await;
            }

            #[sqlx::test(migrations = "./migrations/postgres")]
            async fn pg(pool: sqlx::PgPool) {
                super::$name(&super::PgStore::from_pool(pool)).await;
            }
        }
    )*};
}

both_backends!(
    ping_and_migrate_again,
    user_crud_and_conflict,
    list_users_pages,
    roles_disable_enable,
    password_change_scopes,
    delete_user_cascades,
    rotate_chain,
    reuse_revokes_family,
    idle_and_absolute_expiry,
    disabled_user_cannot_rotate,
    concurrent_rotation_single_winner,
    revoke_by_refresh,
    revoke_sessions,
    session_status_query,
    active_sessions_listing,
    signing_key_lifecycle,
    purge_expired_rows,
);

fn user(id: &str, name: &str) -> UserRecord {
    UserRecord {
        id: id.into(),
        username: name.into(),
        username_key: name.to_lowercase(),
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

async fn ping_and_migrate_again(s: &dyn TestStore) {
    s.ping().await.unwrap();
    s.migrate().await.unwrap();
    assert_eq!(s.count_users().await.unwrap(), 0);
}

async fn user_crud_and_conflict(s: &dyn TestStore) {
    let mut alice = user("u1", "Alice");
    alice.roles = vec!["admin".into(), "user".into()];
    s.create_user(&alice).await.unwrap();
    let mut robot = user("u2", "Robot");
    robot.password_hash = None;
    robot.roles = vec![];
    s.create_user(&robot).await.unwrap();

    assert_eq!(s.user_by_id("u1").await.unwrap(), Some(alice.clone()));
    assert_eq!(s.user_by_username_key("alice").await.unwrap(), Some(alice));
    assert_eq!(s.user_by_id("u2").await.unwrap(), Some(robot));
    assert_eq!(s.user_by_id("nope").await.unwrap(), None);
    assert_eq!(
        s.user_by_username_key("Alice").await.unwrap(),
        None,
        "lookups use the canonical key"
    );

    let clash = user("u3", "ALICE");
    let err = s.create_user(&clash).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict("username taken")),
        "{err:?}"
    );
    assert_eq!(s.count_users().await.unwrap(), 2);
}

async fn list_users_pages(s: &dyn TestStore) {
    for (i, name) in ["dave", "bob", "erin", "alice", "carol"].iter().enumerate() {
        s.create_user(&user(&format!("u{i}"), name)).await.unwrap();
    }
    let keys = |v: Vec<UserRecord>| v.into_iter().map(|u| u.username_key).collect::<Vec<_>>();
    assert_eq!(keys(s.list_users(None, 2).await.unwrap()), ["alice", "bob"]);
    assert_eq!(
        keys(s.list_users(Some("bob"), 2).await.unwrap()),
        ["carol", "dave"]
    );
    assert_eq!(keys(s.list_users(Some("dave"), 2).await.unwrap()), ["erin"]);
    assert!(s.list_users(Some("erin"), 2).await.unwrap().is_empty());
    assert_eq!(s.list_users(None, 100).await.unwrap().len(), 5);
    assert!(s.list_users(None, 0).await.unwrap().is_empty());
    assert_eq!(s.count_users().await.unwrap(), 5);
}

async fn roles_disable_enable(s: &dyn TestStore) {
    setup(s).await;
    session(s, "s2", "u1", "x0", T0).await;
    session(s, "s3", "u1", "y0", T0).await;
    assert!(s.revoke_session("s3", T0 + 1).await.unwrap());

    let roles = vec!["admin".to_string()];
    let u = s.set_roles("u1", &roles, T0 + 5).await.unwrap().unwrap();
    assert_eq!((u.roles.clone(), u.updated_at), (roles, T0 + 5));
    assert_eq!(s.user_by_id("u1").await.unwrap(), Some(u));
    assert_eq!(s.set_roles("nope", &[], T0).await.unwrap(), None);

    let (u, revoked) = s.set_disabled("u1", true, T0 + 10).await.unwrap().unwrap();
    assert!(u.disabled);
    assert_eq!(u.updated_at, T0 + 10);
    assert_eq!(revoked, 2, "the already revoked session is not counted");
    assert_eq!(reason(s, "s1").await.as_deref(), Some("user_disabled"));
    assert_eq!(
        reason(s, "s3").await.as_deref(),
        Some("revoked"),
        "untouched"
    );
    assert_eq!(
        s.session_by_id("s3").await.unwrap().unwrap().revoked_at,
        Some(T0 + 1)
    );

    assert_eq!(
        s.set_disabled("u1", true, T0 + 11)
            .await
            .unwrap()
            .unwrap()
            .1,
        0
    );
    let (u, revoked) = s.set_disabled("u1", false, T0 + 12).await.unwrap().unwrap();
    assert!(!u.disabled);
    assert_eq!(revoked, 0);
    assert!(
        s.session_by_id("s1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some(),
        "enabling revives nothing"
    );
    assert!(s.set_disabled("nope", true, T0).await.unwrap().is_none());
}

async fn password_change_scopes(s: &dyn TestStore) {
    setup(s).await;
    session(s, "s2", "u1", "x0", T0).await;
    session(s, "s3", "u1", "y0", T0).await;

    assert_eq!(
        s.set_password_hash("u1", "h1", T0 + 1, RevokeScope::None)
            .await
            .unwrap(),
        Some(0)
    );
    let u = s.user_by_id("u1").await.unwrap().unwrap();
    assert_eq!(
        (u.password_hash.as_deref(), u.updated_at),
        (Some("h1"), T0 + 1)
    );

    assert_eq!(
        s.set_password_hash("u1", "h2", T0 + 2, RevokeScope::AllExcept("s2"))
            .await
            .unwrap(),
        Some(2)
    );
    assert!(
        s.session_by_id("s2")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    assert_eq!(reason(s, "s1").await.as_deref(), Some("password_changed"));

    assert_eq!(
        s.set_password_hash("u1", "h3", T0 + 3, RevokeScope::All)
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        s.session_by_id("s1").await.unwrap().unwrap().revoked_at,
        Some(T0 + 2),
        "untouched"
    );
    assert_eq!(
        s.user_by_id("u1")
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .as_deref(),
        Some("h3")
    );
    assert_eq!(
        s.set_password_hash("nope", "h", T0, RevokeScope::All)
            .await
            .unwrap(),
        None
    );
}

async fn delete_user_cascades(s: &dyn TestStore) {
    setup(s).await;
    assert!(matches!(
        rotate(s, "t0", "t1", T0 + 1).await,
        RotateOutcome::Rotated { .. }
    ));
    s.create_user(&user("u2", "Bob")).await.unwrap();
    session(s, "s2", "u2", "b0", T0).await;

    assert!(s.delete_user("u1").await.unwrap());
    assert!(!s.delete_user("u1").await.unwrap());
    assert_eq!(s.user_by_id("u1").await.unwrap(), None);
    assert_eq!(s.session_by_id("s1").await.unwrap(), None);
    assert_eq!(count(s, "sessions").await, 1);
    assert_eq!(
        count(s, "refresh_tokens").await,
        1,
        "only bob's token is left"
    );
    assert_eq!(rotate(s, "t1", "t2", T0 + 2).await, RotateOutcome::Rejected);
}

async fn rotate_chain(s: &dyn TestStore) {
    setup(s).await;
    let RotateOutcome::Rotated {
        session,
        user,
        refresh_expires_at,
    } = rotate(s, "t0", "t1", T0 + 10).await
    else {
        panic!("first rotation failed");
    };
    assert_eq!(
        (
            session.id.as_str(),
            session.created_at,
            session.last_used_at
        ),
        ("s1", T0, T0 + 10)
    );
    assert_eq!(user.id, "u1");
    assert_eq!(refresh_expires_at, T0 + 10 + IDLE);

    s.set_roles("u1", &["admin".into()], T0 + 11).await.unwrap();
    let RotateOutcome::Rotated { session, user, .. } = rotate(s, "t1", "t2", T0 + 20).await else {
        panic!("second rotation failed");
    };
    assert_eq!(session.last_used_at, T0 + 20);
    assert_eq!(user.roles, ["admin"], "the user is read at rotation time");
    assert_eq!(s.session_by_id("s1").await.unwrap(), Some(session));
    assert_eq!(count(s, "refresh_tokens WHERE used_at IS NULL").await, 1);
    assert_eq!(count(s, "refresh_tokens").await, 3);

    // Near the end of a session, the successor's expiry is capped by the absolute lifetime.
    let short = NewSession {
        id: "s2".into(),
        user_id: "u1".into(),
        refresh_hash: hash("x0"),
        refresh_expires_at: T0 + 1_000,
        absolute_expires_at: T0 + 1_000,
    };
    s.create_session(&short, T0).await.unwrap();
    let RotateOutcome::Rotated {
        refresh_expires_at, ..
    } = rotate(s, "x0", "x1", T0 + 500).await
    else {
        panic!("late rotation failed");
    };
    assert_eq!(refresh_expires_at, T0 + 1_000);
}

async fn reuse_revokes_family(s: &dyn TestStore) {
    setup(s).await;
    assert!(matches!(
        rotate(s, "t0", "t1", T0 + 1).await,
        RotateOutcome::Rotated { .. }
    ));
    let reused = rotate(s, "t0", "evil", T0 + 2).await;
    assert_eq!(
        reused,
        RotateOutcome::Reused {
            session_id: "s1".into(),
            user_id: "u1".into()
        }
    );
    assert_eq!(
        s.session_by_id("s1").await.unwrap().unwrap().revoked_at,
        Some(T0 + 2)
    );
    assert_eq!(reason(s, "s1").await.as_deref(), Some("refresh_reuse"));
    assert_eq!(
        count(s, "refresh_tokens").await,
        2,
        "no successor for the replayed token"
    );

    let before = fingerprint(s).await;
    assert_eq!(
        rotate(s, "t1", "t2", T0 + 3).await,
        RotateOutcome::Rejected,
        "the live token died with its family"
    );
    assert_eq!(fingerprint(s).await, before);
    // A second replay is still reported, and keeps the first revocation time.
    assert!(matches!(
        rotate(s, "t0", "evil", T0 + 4).await,
        RotateOutcome::Reused { .. }
    ));
    assert_eq!(
        s.session_by_id("s1").await.unwrap().unwrap().revoked_at,
        Some(T0 + 2)
    );
}

async fn idle_and_absolute_expiry(s: &dyn TestStore) {
    setup(s).await;
    let before = fingerprint(s).await;
    assert_eq!(
        rotate(s, "unknown", "t1", T0 + 1).await,
        RotateOutcome::Rejected
    );
    assert_eq!(
        rotate(s, "t0", "t1", T0 + IDLE).await,
        RotateOutcome::Rejected,
        "idle expiry"
    );
    assert_eq!(
        fingerprint(s).await,
        before,
        "failed rotations write nothing"
    );
    assert!(
        matches!(
            rotate(s, "t0", "t1", T0 + IDLE - 1).await,
            RotateOutcome::Rotated { .. }
        ),
        "still unspent"
    );

    // A token whose idle expiry outlives its session is rejected once the session is over.
    let new = NewSession {
        id: "s2".into(),
        user_id: "u1".into(),
        refresh_hash: hash("x0"),
        refresh_expires_at: T0 + 2_000,
        absolute_expires_at: T0 + 1_000,
    };
    s.create_session(&new, T0).await.unwrap();
    let before = fingerprint(s).await;
    assert_eq!(
        rotate(s, "x0", "x1", T0 + 1_000).await,
        RotateOutcome::Rejected,
        "absolute expiry"
    );
    assert_eq!(fingerprint(s).await, before);
    assert!(matches!(
        rotate(s, "x0", "x1", T0 + 999).await,
        RotateOutcome::Rotated { .. }
    ));

    // Revoked session.
    session(s, "s3", "u1", "y0", T0).await;
    assert!(s.revoke_session("s3", T0 + 1).await.unwrap());
    let before = fingerprint(s).await;
    assert_eq!(rotate(s, "y0", "y1", T0 + 2).await, RotateOutcome::Rejected);
    assert_eq!(fingerprint(s).await, before);
}

async fn disabled_user_cannot_rotate(s: &dyn TestStore) {
    let mut bob = user("u2", "Bob");
    bob.disabled = true;
    s.create_user(&bob).await.unwrap();
    session(s, "s2", "u2", "b0", T0).await;
    let before = fingerprint(s).await;
    assert_eq!(rotate(s, "b0", "b1", T0 + 1).await, RotateOutcome::Rejected);
    assert_eq!(fingerprint(s).await, before);

    // Disabling a user with a live session: the session is revoked, its token rejected.
    setup(s).await;
    s.set_disabled("u1", true, T0 + 1).await.unwrap();
    assert_eq!(rotate(s, "t0", "t1", T0 + 2).await, RotateOutcome::Rejected);
}

async fn concurrent_rotation_single_winner(s: &dyn TestStore) {
    const N: usize = 20;
    setup(s).await;
    let barrier = Arc::new(Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let (store, barrier) = (s.shared(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .rotate_refresh(&hash("t0"), &hash(&format!("n{i}")), T0 + 1, IDLE)
                    .await
            })
        })
        .collect();
    let (mut rotated, mut reused) = (0, 0);
    for task in tasks {
        match task.await.unwrap().unwrap() {
            RotateOutcome::Rotated { .. } => rotated += 1,
            RotateOutcome::Reused { .. } => reused += 1,
            RotateOutcome::Rejected => panic!("a concurrent caller was rejected"),
        }
    }
    assert_eq!((rotated, reused), (1, N - 1));
    assert_eq!(count(s, "refresh_tokens").await, 2, "exactly one successor");
    assert_eq!(count(s, "refresh_tokens WHERE used_at IS NULL").await, 1);
    // The losers look like a replay: the family is revoked (RFC 9700).
    assert_eq!(reason(s, "s1").await.as_deref(), Some("refresh_reuse"));
}

async fn revoke_by_refresh(s: &dyn TestStore) {
    setup(s).await;
    session(s, "s2", "u1", "x0", T0).await;
    assert!(matches!(
        rotate(s, "t0", "t1", T0 + 1).await,
        RotateOutcome::Rotated { .. }
    ));

    let owner = Some(("s1".to_string(), "u1".to_string()));
    assert_eq!(
        s.revoke_session_by_refresh(&hash("t0"), T0 + 2)
            .await
            .unwrap(),
        owner,
        "spent token"
    );
    assert_eq!(reason(s, "s1").await.as_deref(), Some("logout"));
    assert_eq!(
        s.revoke_session_by_refresh(&hash("t1"), T0 + 3)
            .await
            .unwrap(),
        None,
        "already revoked"
    );
    assert_eq!(
        s.session_by_id("s1").await.unwrap().unwrap().revoked_at,
        Some(T0 + 2)
    );

    let owner = Some(("s2".to_string(), "u1".to_string()));
    assert_eq!(
        s.revoke_session_by_refresh(&hash("x0"), T0 + 4)
            .await
            .unwrap(),
        owner,
        "live token"
    );
    assert_eq!(rotate(s, "x0", "x1", T0 + 5).await, RotateOutcome::Rejected);
    assert_eq!(
        s.revoke_session_by_refresh(&hash("unknown"), T0)
            .await
            .unwrap(),
        None
    );
}

async fn revoke_sessions(s: &dyn TestStore) {
    setup(s).await;
    for id in ["s2", "s3", "s4"] {
        session(s, id, "u1", id, T0).await;
    }
    assert!(s.revoke_session("s1", T0 + 1).await.unwrap());
    assert!(!s.revoke_session("s1", T0 + 2).await.unwrap());
    assert!(!s.revoke_session("nope", T0 + 2).await.unwrap());
    assert_eq!(
        s.revoke_user_sessions("u1", Some("s2"), T0 + 3)
            .await
            .unwrap(),
        2
    );
    assert_eq!(s.revoke_user_sessions("u1", None, T0 + 4).await.unwrap(), 1);
    assert_eq!(s.revoke_user_sessions("u1", None, T0 + 5).await.unwrap(), 0);
    assert_eq!(
        s.session_by_id("s1").await.unwrap().unwrap().revoked_at,
        Some(T0 + 1)
    );
    assert_eq!(
        s.session_by_id("s2").await.unwrap().unwrap().revoked_at,
        Some(T0 + 4)
    );
}

async fn session_status_query(s: &dyn TestStore) {
    setup(s).await;
    let st = s.session_status("s1").await.unwrap().unwrap();
    assert_eq!(
        (
            st.user_id.as_str(),
            st.revoked,
            st.absolute_expires_at,
            st.user_disabled
        ),
        ("u1", false, T0 + ABS, false)
    );
    s.set_disabled("u1", true, T0 + 1).await.unwrap();
    let st = s.session_status("s1").await.unwrap().unwrap();
    assert!(st.revoked && st.user_disabled);
    assert_eq!(s.session_status("nope").await.unwrap(), None);
}

async fn active_sessions_listing(s: &dyn TestStore) {
    setup(s).await;
    session(s, "s2", "u1", "x0", T0 + 10).await;
    session(s, "s3", "u1", "y0", T0 + 20).await;
    session(s, "s4", "u1", "z0", T0 - ABS + 100).await;
    s.create_user(&user("u2", "Bob")).await.unwrap();
    session(s, "s5", "u2", "b0", T0).await;
    assert!(s.revoke_session("s2", T0 + 30).await.unwrap());

    let ids = |v: Vec<super::SessionRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_active_sessions("u1", T0 + 99).await.unwrap()),
        ["s3", "s1", "s4"]
    );
    assert_eq!(
        ids(s.list_active_sessions("u1", T0 + 100).await.unwrap()),
        ["s3", "s1"],
        "s4 is over"
    );
    assert!(s.list_active_sessions("nope", T0).await.unwrap().is_empty());
}

fn key(kid: &str, status: KeyStatus, created_at: i64) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.into(),
        alg: "EdDSA".into(),
        status,
        private_key_enc: vec![1, 2, 3, kid.len() as u8],
        public_jwk: format!(r#"{{"kty":"OKP","kid":"{kid}"}}"#),
        created_at,
        publish_until: None,
    }
}

async fn signing_key_lifecycle(s: &dyn TestStore) {
    let err = s
        .rotate_signing_keys(&key("k0", KeyStatus::Next, T0), T0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(
        s.signing_keys().await.unwrap().is_empty(),
        "the failed rotation inserted nothing"
    );

    let first = [
        key("k1", KeyStatus::Current, T0),
        key("k2", KeyStatus::Next, T0 + 1),
    ];
    assert!(s.init_signing_keys(&first).await.unwrap());
    let other = [
        key("k8", KeyStatus::Current, T0),
        key("k9", KeyStatus::Next, T0),
    ];
    assert!(
        !s.init_signing_keys(&other).await.unwrap(),
        "a current key exists"
    );
    assert_eq!(s.signing_keys().await.unwrap(), first);

    let rotated = s
        .rotate_signing_keys(&key("k3", KeyStatus::Next, T0 + 10), T0 + 100)
        .await
        .unwrap();
    assert_eq!(rotated, ("k2".to_string(), "k1".to_string()));
    let rotated = s
        .rotate_signing_keys(&key("k4", KeyStatus::Next, T0 + 20), T0 + 200)
        .await
        .unwrap();
    assert_eq!(rotated, ("k3".to_string(), "k2".to_string()));
    let keys = s.signing_keys().await.unwrap();
    let states: Vec<_> = keys
        .iter()
        .map(|k| (k.kid.as_str(), k.status, k.publish_until))
        .collect();
    assert_eq!(
        states,
        [
            ("k1", KeyStatus::Retired, Some(T0 + 100)),
            ("k2", KeyStatus::Retired, Some(T0 + 200)),
            ("k3", KeyStatus::Current, None),
            ("k4", KeyStatus::Next, None),
        ]
    );
    assert_eq!(
        keys[3].private_key_enc,
        key("k4", KeyStatus::Next, 0).private_key_enc
    );

    assert_eq!(
        s.purge_expired(T0 + 100).await.unwrap(),
        0,
        "published until (inclusive)"
    );
    assert_eq!(s.purge_expired(T0 + 101).await.unwrap(), 1);
    let kids: Vec<_> = s
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, ["k2", "k3", "k4"]);
}

async fn purge_expired_rows(s: &dyn TestStore) {
    setup(s).await;
    assert!(matches!(
        rotate(s, "t0", "t1", T0 + 1).await,
        RotateOutcome::Rotated { .. }
    ));
    session(s, "s2", "u1", "x0", T0 + 10).await;
    assert_eq!(s.purge_expired(T0 + ABS - 1).await.unwrap(), 0);
    assert_eq!(
        s.purge_expired(T0 + ABS).await.unwrap(),
        3,
        "s1 and its two tokens"
    );
    assert_eq!(s.session_by_id("s1").await.unwrap(), None);
    assert!(s.session_by_id("s2").await.unwrap().is_some());
    assert_eq!(count(s, "refresh_tokens").await, 1);
    assert_eq!(s.count_users().await.unwrap(), 1, "users are never purged");
}

#[tokio::test]
async fn sqlite_memory_url() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
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
async fn sqlite_file_is_private_and_reopens() {
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
}
