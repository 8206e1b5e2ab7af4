//! PostgreSQL implementation of [`Store`] (production backend).

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{FromRow, Postgres, Transaction};

use super::{
    AuditEvent, AuditQuery, KeyStatus, NewSession, RevokeScope, RotateOutcome, SessionRecord,
    SessionStatus, SigningKeyRecord, Store, StoreError, StoreResult, UserRecord,
    is_concurrent_duplicate, shared_sql,
};

/// How long a caller waits for a pooled connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// `SELECT` of every user column, followed by the given SQL tail.
macro_rules! select_user {
    ($tail:literal) => {
        concat!(
            "SELECT id, username, username_key, password_hash, roles, disabled, created_at, updated_at FROM users ",
            $tail
        )
    };
}

/// The user columns, for `RETURNING`.
const USER_COLS: &str =
    "id, username, username_key, password_hash, roles, disabled, created_at, updated_at";

/// `SELECT` of every session column, followed by the given SQL tail.
macro_rules! select_session {
    ($tail:literal) => {
        concat!(
            "SELECT id, user_id, created_at, last_used_at, absolute_expires_at, revoked_at FROM sessions ",
            $tail
        )
    };
}

/// A [`Store`] over a PostgreSQL connection pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` with a pool of at most `max_connections` (5 s acquire timeout).
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await?;
        Ok(Self { pool })
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[derive(FromRow)]
struct UserRow {
    id: String,
    username: String,
    username_key: String,
    password_hash: Option<String>,
    roles: String,
    disabled: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<UserRow> for UserRecord {
    type Error = StoreError;

    fn try_from(r: UserRow) -> StoreResult<Self> {
        Ok(UserRecord {
            roles: decode_roles(&r.roles)?,
            id: r.id,
            username: r.username,
            username_key: r.username_key,
            password_hash: r.password_hash,
            disabled: r.disabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(FromRow)]
struct SessionRow {
    id: String,
    user_id: String,
    created_at: i64,
    last_used_at: i64,
    absolute_expires_at: i64,
    revoked_at: Option<i64>,
}

impl From<SessionRow> for SessionRecord {
    fn from(r: SessionRow) -> Self {
        SessionRecord {
            id: r.id,
            user_id: r.user_id,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            absolute_expires_at: r.absolute_expires_at,
            revoked_at: r.revoked_at,
        }
    }
}

#[derive(FromRow)]
struct KeyRow {
    kid: String,
    alg: String,
    status: String,
    private_key_enc: Vec<u8>,
    public_jwk: String,
    created_at: i64,
    publish_until: Option<i64>,
}

impl TryFrom<KeyRow> for SigningKeyRecord {
    type Error = StoreError;

    fn try_from(r: KeyRow) -> StoreResult<Self> {
        Ok(SigningKeyRecord {
            status: KeyStatus::parse(&r.status)?,
            kid: r.kid,
            alg: r.alg,
            private_key_enc: r.private_key_enc,
            public_jwk: r.public_jwk,
            created_at: r.created_at,
            publish_until: r.publish_until,
        })
    }
}

/// Decodes the JSON roles column.
fn decode_roles(json: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(json)
        .map_err(|_| StoreError::Corrupt("roles column is not a JSON list of strings".into()))
}

/// Encodes roles for the roles column.
fn encode_roles(roles: &[String]) -> StoreResult<String> {
    serde_json::to_string(roles).map_err(|_| StoreError::Corrupt("roles cannot be encoded".into()))
}

/// True when `e` is a unique-constraint violation.
fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Maps an insert error on `users` to [`StoreError`].
fn user_insert_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            if d.constraint() == Some("users_pkey") {
                StoreError::Conflict("user id taken")
            } else {
                StoreError::Conflict("username taken")
            }
        }
        _ => StoreError::Database(e),
    }
}

/// Revokes the live sessions of `user_id` (except `except`) with `reason`; returns how many.
async fn revoke_user_in(
    conn: &mut PgConnection,
    user_id: &str,
    except: Option<&str>,
    now: i64,
    reason: &str,
) -> StoreResult<u64> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = $3, revoke_reason = $4 \
         WHERE user_id = $1 AND revoked_at IS NULL AND absolute_expires_at > $3 \
         AND ($2::text IS NULL OR id <> $2)",
    )
    .bind(user_id)
    .bind(except)
    .bind(now)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Rolls back a rotation that must leave no trace.
async fn reject(tx: Transaction<'_, Postgres>) -> StoreResult<RotateOutcome> {
    tx.rollback().await?;
    Ok(RotateOutcome::Rejected)
}

/// Inserts one refresh token.
async fn insert_refresh(
    conn: &mut PgConnection,
    hash: &[u8],
    session_id: &str,
    now: i64,
    expires_at: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at, generation) \
         VALUES ($1, $2, $3, $4, (SELECT generation FROM sessions WHERE id = $2))",
    )
    .bind(hash)
    .bind(session_id)
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts one signing key with the given status.
async fn insert_key(
    conn: &mut PgConnection,
    key: &SigningKeyRecord,
    status: KeyStatus,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, alg, status, private_key_enc, public_jwk, created_at, publish_until) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&key.kid)
    .bind(&key.alg)
    .bind(status.as_str())
    .bind(&key.private_key_enc)
    .bind(&key.public_jwk)
    .bind(key.created_at)
    .bind(key.publish_until)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    async fn record_login_failure(
        &self,
        key: &str,
        now: i64,
        window_start: i64,
    ) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(shared_sql::RECORD_LOGIN_FAILURE)
            .bind(key)
            .bind(now)
            .bind(window_start)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn lock_login(&self, key: &str, until: i64) -> StoreResult<()> {
        sqlx::query(shared_sql::LOCK_LOGIN)
            .bind(key)
            .bind(until)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn login_locked_until(&self, user_key: &str, source_key: &str) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(shared_sql::LOGIN_LOCKED_UNTIL)
            .bind(user_key)
            .bind(source_key)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn reset_login_failures(&self, key: &str) -> StoreResult<()> {
        sqlx::query(shared_sql::RESET_LOGIN_FAILURES)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn purge_login_throttle(&self, before: i64, now: i64) -> StoreResult<u64> {
        let done = sqlx::query(shared_sql::PURGE_LOGIN_THROTTLE)
            .bind(before)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn insert_audit(&self, e: &AuditEvent) -> StoreResult<()> {
        sqlx::query(shared_sql::INSERT_AUDIT)
            .bind(e.time)
            .bind(&e.event)
            .bind(&e.outcome)
            .bind(&e.actor)
            .bind(&e.subject)
            .bind(&e.source)
            .bind(&e.detail)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        let rows: Vec<shared_sql::AuditRow> = sqlx::query_as(shared_sql::LIST_AUDIT)
            .bind(&q.user_id)
            .bind(q.since)
            .bind(q.until)
            .bind(q.before_id)
            .bind(q.limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(AuditEvent::from).collect())
    }

    async fn purge_audit(&self, before: i64) -> StoreResult<u64> {
        Ok(sqlx::query(shared_sql::PURGE_AUDIT)
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_user(&self, user: &UserRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO users (id, username, username_key, password_hash, roles, disabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(&user.username_key)
        .bind(&user.password_hash)
        .bind(encode_roles(&user.roles)?)
        .bind(user.disabled)
        .bind(user.created_at)
        .bind(user.updated_at)
        .execute(&self.pool)
        .await
        .map_err(user_insert_error)?;
        Ok(())
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        let row: Option<UserRow> = sqlx::query_as(select_user!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(UserRecord::try_from).transpose()
    }

    async fn user_by_username_key(&self, key: &str) -> StoreResult<Option<UserRecord>> {
        let row: Option<UserRow> = sqlx::query_as(select_user!("WHERE username_key = $1"))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(UserRecord::try_from).transpose()
    }

    async fn list_users(
        &self,
        after_key: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<UserRecord>> {
        let rows: Vec<UserRow> = sqlx::query_as(select_user!(
            "WHERE ($1::text IS NULL OR username_key > $1) ORDER BY username_key LIMIT $2"
        ))
        .bind(after_key)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(UserRecord::try_from).collect()
    }

    async fn count_users(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn set_roles(
        &self,
        id: &str,
        roles: &[String],
        now: i64,
    ) -> StoreResult<Option<UserRecord>> {
        let sql = format!(
            "UPDATE users SET roles = $2, updated_at = $3 WHERE id = $1 RETURNING {USER_COLS}"
        );
        let row: Option<UserRow> = sqlx::query_as(&sql)
            .bind(id)
            .bind(encode_roles(roles)?)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.map(UserRecord::try_from).transpose()
    }

    async fn set_disabled(
        &self,
        id: &str,
        disabled: bool,
        now: i64,
    ) -> StoreResult<Option<(UserRecord, u64)>> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "UPDATE users SET disabled = $2, updated_at = $3 WHERE id = $1 RETURNING {USER_COLS}"
        );
        let row: Option<UserRow> = sqlx::query_as(&sql)
            .bind(id)
            .bind(disabled)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let user = UserRecord::try_from(row)?;
        let revoked = if disabled {
            revoke_user_in(&mut tx, id, None, now, "user_disabled").await?
        } else {
            0
        };
        tx.commit().await?;
        Ok(Some((user, revoked)))
    }

    async fn set_password_hash(
        &self,
        id: &str,
        hash: &str,
        now: i64,
        scope: RevokeScope<'_>,
    ) -> StoreResult<Option<u64>> {
        let mut tx = self.pool.begin().await?;
        let updated =
            sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(hash)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        let revoked = match scope {
            RevokeScope::None => 0,
            RevokeScope::All => revoke_user_in(&mut tx, id, None, now, "password_changed").await?,
            RevokeScope::AllExcept(keep) => {
                revoke_user_in(&mut tx, id, Some(keep), now, "password_changed").await?
            }
        };
        tx.commit().await?;
        Ok(Some(revoked))
    }

    async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        // Refresh tokens first: rows are then locked in the same order as `rotate_refresh` locks them
        // (token, then session), which avoids deadlocks with a concurrent rotation.
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn create_session(&self, session: &NewSession, now: i64) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, absolute_expires_at) \
             VALUES ($1, $2, $3, $3, $4)",
        )
        .bind(&session.id)
        .bind(&session.user_id)
        .bind(now)
        .bind(session.absolute_expires_at)
        .execute(&mut *tx)
        .await?;
        insert_refresh(
            &mut tx,
            &session.refresh_hash,
            &session.id,
            now,
            session.refresh_expires_at,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn rotate_refresh(
        &self,
        old_hash: &[u8],
        new_hash: &[u8],
        now: i64,
        idle_ttl: i64,
    ) -> StoreResult<RotateOutcome> {
        let mut tx = self.pool.begin().await?;
        // Spending the token takes its row lock: concurrent callers wait here, then find it spent.
        let spent: Option<(String, i64)> = sqlx::query_as(
            "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL \
             RETURNING session_id, expires_at",
        )
        .bind(old_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((session_id, expires_at)) = spent else {
            let owner: Option<(String, String, Option<i64>, i64, i64)> = sqlx::query_as(
                "SELECT s.id, s.user_id, r.used_at, r.generation, s.generation \
                 FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1",
            )
            .bind(old_hash)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((session_id, user_id, used_at, token_gen, session_gen)) = owner else {
                return reject(tx).await;
            };
            // A concurrent duplicate of the rotation that just won (its successor is still the live
            // token and it was spent moments ago) is refused without ending the session.
            if is_concurrent_duplicate(used_at, token_gen, session_gen, now) {
                return reject(tx).await;
            }
            sqlx::query(
                "UPDATE sessions SET revoked_at = $2, revoke_reason = 'refresh_reuse' \
                 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(&session_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(RotateOutcome::Reused {
                session_id,
                user_id,
            });
        };
        // Every rejection below rolls the spend back.
        if expires_at <= now {
            return reject(tx).await;
        }
        let session: Option<SessionRow> = sqlx::query_as(
            "UPDATE sessions SET last_used_at = $2, generation = generation + 1 \
             WHERE id = $1 AND revoked_at IS NULL AND absolute_expires_at > $2 \
             RETURNING id, user_id, created_at, last_used_at, absolute_expires_at, revoked_at",
        )
        .bind(&session_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(session) = session else {
            return reject(tx).await;
        };
        let user: Option<UserRow> = sqlx::query_as(select_user!("WHERE id = $1"))
            .bind(&session.user_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(user) = user.map(UserRecord::try_from).transpose()? else {
            return reject(tx).await;
        };
        if user.disabled {
            return reject(tx).await;
        }
        let refresh_expires_at = now
            .saturating_add(idle_ttl)
            .min(session.absolute_expires_at);
        insert_refresh(&mut tx, new_hash, &session_id, now, refresh_expires_at).await?;
        tx.commit().await?;
        Ok(RotateOutcome::Rotated {
            session: session.into(),
            user,
            refresh_expires_at,
        })
    }

    async fn revoke_session_by_refresh(
        &self,
        hash: &[u8],
        now: i64,
    ) -> StoreResult<Option<(String, String)>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "UPDATE sessions SET revoked_at = $2, revoke_reason = 'logout' \
             WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1) \
             AND revoked_at IS NULL AND absolute_expires_at > $2 \
             RETURNING id, user_id",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }

    async fn revoke_session(&self, session_id: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $2, revoke_reason = 'revoked' WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(session_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        except: Option<&str>,
        now: i64,
    ) -> StoreResult<u64> {
        let mut conn = self.pool.acquire().await?;
        revoke_user_in(&mut conn, user_id, except, now, "revoked").await
    }

    async fn session_status(&self, session_id: &str) -> StoreResult<Option<SessionStatus>> {
        let row: Option<(String, bool, i64, bool)> = sqlx::query_as(
            "SELECT s.user_id, s.revoked_at IS NOT NULL, s.absolute_expires_at, u.disabled \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
        )
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(user_id, revoked, absolute_expires_at, user_disabled)| SessionStatus {
                user_id,
                revoked,
                absolute_expires_at,
                user_disabled,
            },
        ))
    }

    async fn session_by_id(&self, session_id: &str) -> StoreResult<Option<SessionRecord>> {
        let row: Option<SessionRow> = sqlx::query_as(select_session!("WHERE id = $1"))
            .bind(session_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(SessionRecord::from))
    }

    async fn list_active_sessions(
        &self,
        user_id: &str,
        now: i64,
    ) -> StoreResult<Vec<SessionRecord>> {
        let rows: Vec<SessionRow> = sqlx::query_as(select_session!(
            "WHERE user_id = $1 AND revoked_at IS NULL AND absolute_expires_at > $2 ORDER BY created_at DESC, id DESC"
        ))
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(SessionRecord::from).collect())
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT kid, alg, status, private_key_enc, public_jwk, created_at, publish_until \
             FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(SigningKeyRecord::try_from).collect()
    }

    async fn init_signing_keys(&self, keys: &[SigningKeyRecord]) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM signing_keys WHERE status = 'current')",
        )
        .fetch_one(&mut *tx)
        .await?;
        if exists {
            return Ok(false);
        }
        for key in keys {
            match insert_key(&mut tx, key, key.status).await {
                Ok(()) => {}
                // Another replica inserted its keys concurrently and won.
                Err(e) if is_unique_violation(&e) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn rotate_signing_keys(
        &self,
        new_next: &SigningKeyRecord,
        retire_until: i64,
    ) -> StoreResult<(String, String)> {
        let mut tx = self.pool.begin().await?;
        let retired: Option<String> = sqlx::query_scalar(
            "UPDATE signing_keys SET status = 'retired', publish_until = $1 WHERE status = 'current' RETURNING kid",
        )
        .bind(retire_until)
        .fetch_optional(&mut *tx)
        .await?;
        let current: Option<String> = sqlx::query_scalar(
            "UPDATE signing_keys SET status = 'current' WHERE status = 'next' RETURNING kid",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let (Some(retired), Some(current)) = (retired, current) else {
            return Err(StoreError::Conflict("no current/next key"));
        };
        insert_key(&mut tx, new_next, KeyStatus::Next).await?;
        tx.commit().await?;
        Ok((current, retired))
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        let tokens = sqlx::query(
            "DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE absolute_expires_at <= $1)",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let sessions = sqlx::query("DELETE FROM sessions WHERE absolute_expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let keys =
            sqlx::query("DELETE FROM signing_keys WHERE status = 'retired' AND publish_until < $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(tokens.rows_affected() + sessions.rows_affected() + keys.rows_affected())
    }
}
