//! The one implementation of [`Store`]: every query, written once, for any backend that implements
//! [`Dialect`]. The SQL is the common subset of PostgreSQL and SQLite (`$n` parameters, `RETURNING`,
//! `ON CONFLICT`); what differs lives in the dialect files. This file holds users, sessions and
//! refresh tokens, and housekeeping; the other parts of the contract (its supertraits) are
//! implemented for [`SqlStore`] beside their SQL: `audit.rs`, `keys.rs`, `revocations.rs`,
//! `service_accounts.rs`, `throttle.rs`.

use async_trait::async_trait;
use sqlx::{
    ColumnIndex, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Row, Transaction, Type,
};

use super::dialect::Dialect;
use super::records::RolesColumn;
use super::revocations::{self, NewRevocation, RevocationRecord};
use super::rows::{
    LockRow, ReusedTokenRow, SessionOwnerRow, SpentTokenRow, session_columns, user_columns,
};
use super::{
    AuditEvent, NewSession, Reservation, RevokeScope, RotateOutcome, SessionRecord, SessionStatus,
    SigningKeyRecord, Store, StoreError, StoreResult, UserRecord, is_concurrent_duplicate,
};
use super::{ServiceAccountKeyRecord, ServiceAccountRecord, ServiceAccountStatus};

/// A [`Store`] over a connection pool of backend `DB` (see `PgStore` and `SqliteStore`).
#[derive(Debug)]
pub struct SqlStore<DB: Dialect> {
    pub(super) pool: Pool<DB>,
    /// Seconds after its issue an access token can still pass a verifier (lifetime + leeway).
    token_lifetime: i64,
}

impl<DB: Dialect> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            token_lifetime: self.token_lifetime,
        }
    }
}

impl<DB: Dialect> SqlStore<DB> {
    /// Wraps an existing pool.
    pub fn from_pool(pool: Pool<DB>) -> Self {
        Self {
            pool,
            token_lifetime: super::DEFAULT_TOKEN_LIFETIME,
        }
    }

    /// Sets how long after its issue an access token can still pass a verifier (its lifetime plus
    /// the verification leeway), seconds: the revocation log keeps each row that long. Defaults to
    /// [`super::DEFAULT_TOKEN_LIFETIME`], the longest allowed.
    pub fn with_token_lifetime(mut self, secs: i64) -> Self {
        self.token_lifetime = secs.max(1);
        self
    }

    /// Appends `rows` to the revocation log in `tx` (see [`revocations::append`]): they expire when
    /// every token issued up to `now` has.
    pub(super) async fn log(
        &self,
        tx: &mut DB::Connection,
        rows: &[NewRevocation],
        now: i64,
    ) -> Result<(), sqlx::Error>
    where
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
        for<'q> &'q str: Encode<'q, DB> + Type<DB>,
        for<'q> i64: Encode<'q, DB> + Type<DB>,
        for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    {
        let expires_at = now.saturating_add(self.token_lifetime);
        revocations::append::<DB>(tx, rows, now, expires_at).await
    }

    /// The underlying pool.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// Begins a transaction that writes (see [`Dialect::BEGIN_WRITE`]).
    pub(super) async fn begin_write(&self) -> Result<Transaction<'static, DB>, sqlx::Error> {
        self.pool.begin_with(DB::BEGIN_WRITE).await
    }
}

/// Ends every live session of `user_id` (but `except`) with `reason`, returning their ids: `$1` user,
/// `$2` except or NULL, `$3` now, `$4` reason.
const REVOKE_USER_SESSIONS: &str = "UPDATE sessions SET revoked_at = $3, revoke_reason = $4 \
     WHERE user_id = $1 AND revoked_at IS NULL AND absolute_expires_at > $3 \
     AND ($2 IS NULL OR id <> $2) RETURNING id";

/// The revocation rows of sessions just revoked, after `first` (the user's watermark, if any).
fn session_rows(first: Option<NewRevocation>, sids: Vec<String>) -> Vec<NewRevocation> {
    first
        .into_iter()
        .chain(sids.into_iter().map(NewRevocation::session))
        .collect()
}

/// Stores a refresh token in its session's current generation: `$1` digest, `$2` session, `$3` now,
/// `$4` expiry.
const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens \
     (token_hash, session_id, created_at, expires_at, generation) \
     VALUES ($1, $2, $3, $4, (SELECT generation FROM sessions WHERE id = $2))";

/// Every user holding the admin role, by its JSON-encoded name in the roles column.
const ADMINS: &str = "FROM users WHERE roles LIKE '%\"admin\"%'";

/// Locks the admin rows until the transaction ends, so concurrent changes to admins run one after
/// the other, and counts the enabled admins (call before the change).
async fn lock_admins<DB>(conn: &mut DB::Connection) -> StoreResult<i64>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    (i64,): for<'r> FromRow<'r, DB::Row>,
{
    let sql = format!("SELECT id {ADMINS} ORDER BY id{}", DB::LOCK_ROWS);
    sqlx::query(&sql).execute(&mut *conn).await?;
    enabled_admins(conn).await
}

async fn enabled_admins<DB>(conn: &mut DB::Connection) -> StoreResult<i64>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    (i64,): for<'r> FromRow<'r, DB::Row>,
{
    let sql = format!("SELECT COUNT(*) {ADMINS} AND disabled = FALSE");
    Ok(sqlx::query_scalar(&sql).fetch_one(conn).await?)
}

/// Fails with [`StoreError::LastAdmin`] when the change removed the last enabled admin (`before`
/// counted by [`lock_admins`]); returning the error drops, so rolls back, the transaction. A database
/// that had no admin (only users created by the operator) is not blocked.
async fn require_an_admin<DB>(conn: &mut DB::Connection, before: i64) -> StoreResult<()>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    (i64,): for<'r> FromRow<'r, DB::Row>,
{
    if before > 0 && enabled_admins(conn).await? == 0 {
        return Err(StoreError::LastAdmin);
    }
    Ok(())
}

/// Maps an insert error on `users` to a conflict when a unique rule was violated.
fn user_insert_error<DB: Dialect>(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            if DB::is_user_id_violation(d.as_ref()) {
                StoreError::Conflict("user id taken")
            } else if DB::is_username_skeleton_violation(d.as_ref()) {
                StoreError::LookAlike
            } else {
                StoreError::Conflict("username taken")
            }
        }
        _ => StoreError::Database(e),
    }
}

/// Rolls back a rotation that must leave no trace.
async fn reject<DB: Dialect>(tx: Transaction<'_, DB>) -> StoreResult<RotateOutcome> {
    tx.rollback().await?;
    Ok(RotateOutcome::Rejected)
}

#[async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'r> UserRecord: FromRow<'r, DB::Row>,
    for<'r> SessionRecord: FromRow<'r, DB::Row>,
    for<'r> SessionStatus: FromRow<'r, DB::Row>,
    for<'r> SigningKeyRecord: FromRow<'r, DB::Row>,
    for<'r> AuditEvent: FromRow<'r, DB::Row>,
    for<'r> SessionOwnerRow: FromRow<'r, DB::Row>,
    for<'r> SpentTokenRow: FromRow<'r, DB::Row>,
    for<'r> ReusedTokenRow: FromRow<'r, DB::Row>,
    for<'r> LockRow: FromRow<'r, DB::Row>,
    for<'r> Reservation: FromRow<'r, DB::Row>,
    for<'q> Option<&'q [u8]>: Encode<'q, DB> + Type<DB>,
    for<'r> ServiceAccountRecord: FromRow<'r, DB::Row>,
    for<'r> ServiceAccountKeyRecord: FromRow<'r, DB::Row>,
    for<'r> ServiceAccountStatus: FromRow<'r, DB::Row>,
    for<'r> RevocationRecord: FromRow<'r, DB::Row>,
    (i64, i64): for<'r> FromRow<'r, DB::Row>,
{
    async fn migrate(&self) -> StoreResult<()> {
        DB::migrator().run(&self.pool).await?;
        self.backfill_usernames().await
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_user(&self, user: &UserRecord) -> StoreResult<()> {
        let roles = RolesColumn::encode(&user.roles)?;
        let inserted = sqlx::query(concat!(
            "INSERT INTO users (",
            user_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(user.id.as_str())
        .bind(user.username.as_str())
        .bind(user.username_key.as_str())
        .bind(user.username_skeleton.as_deref())
        .bind(user.password_hash.as_deref())
        .bind(roles.as_str())
        .bind(user.disabled)
        .bind(user.created_at)
        .bind(user.updated_at)
        .execute(&self.pool)
        .await
        .map_err(user_insert_error::<DB>);
        match inserted {
            // A backend may report the skeleton before the key (SQLite does): the same name is
            // "taken", not "looks like".
            Err(StoreError::LookAlike) => {
                let same: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE username_key = $1")
                        .bind(user.username_key.as_str())
                        .fetch_one(&self.pool)
                        .await?;
                Err(if same > 0 {
                    StoreError::Conflict("username taken")
                } else {
                    StoreError::LookAlike
                })
            }
            other => other.map(|_| ()),
        }
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
        Ok(sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn user_by_username_key(&self, key: &str) -> StoreResult<Option<UserRecord>> {
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE username_key = $1"
        );
        Ok(sqlx::query_as(sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn list_users(
        &self,
        after_key: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<UserRecord>> {
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE ($1 IS NULL OR username_key > $1) ORDER BY username_key LIMIT $2"
        );
        Ok(sqlx::query_as(sql)
            .bind(after_key)
            .bind(limit.max(0))
            .fetch_all(&self.pool)
            .await?)
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
        let roles = RolesColumn::encode(roles)?;
        let mut tx = self.begin_write().await?;
        let admins = lock_admins(&mut *tx).await?;
        let sql = concat!(
            "UPDATE users SET roles = $2, updated_at = $3, tokens_not_before = $3 \
             WHERE id = $1 RETURNING ",
            user_columns!()
        );
        let user: Option<UserRecord> = sqlx::query_as(sql)
            .bind(id)
            .bind(roles.as_str())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        require_an_admin(&mut *tx, admins).await?;
        if user.is_some() {
            self.log(&mut tx, &[NewRevocation::subject(id, now)], now)
                .await?;
        }
        tx.commit().await?;
        Ok(user)
    }

    async fn set_disabled(
        &self,
        id: &str,
        disabled: bool,
        now: i64,
    ) -> StoreResult<Option<(UserRecord, u64)>> {
        let mut tx = self.begin_write().await?;
        let admins = lock_admins(&mut *tx).await?;
        let sql = concat!(
            "UPDATE users SET disabled = $2, updated_at = $3, \
             tokens_not_before = CASE WHEN $2 THEN $3 ELSE tokens_not_before END \
             WHERE id = $1 RETURNING ",
            user_columns!()
        );
        let user: Option<UserRecord> = sqlx::query_as(sql)
            .bind(id)
            .bind(disabled)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(user) = user else { return Ok(None) };
        require_an_admin(&mut *tx, admins).await?;
        let revoked = if disabled {
            let sids = sqlx::query(REVOKE_USER_SESSIONS)
                .bind(id)
                .bind(None::<&str>)
                .bind(now)
                .bind("user_disabled")
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<Result<Vec<_>, _>>()?;
            let count = sids.len() as u64;
            let rows = session_rows(Some(NewRevocation::subject(id, now)), sids);
            self.log(&mut tx, &rows, now).await?;
            count
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
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE users SET password_hash = $2, updated_at = $3, \
                 tokens_not_before = CASE WHEN $4 THEN $3 ELSE tokens_not_before END WHERE id = $1",
        )
        .bind(id)
        .bind(hash)
        .bind(now)
        // A transparent rehash ends no token; a password change or reset does.
        .bind(!matches!(scope, RevokeScope::None))
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&updated) == 0 {
            return Ok(None);
        }
        let except = match scope {
            RevokeScope::None => {
                tx.commit().await?;
                return Ok(Some(0));
            }
            RevokeScope::All => None,
            RevokeScope::AllExcept(keep) => Some(keep),
        };
        let sids = sqlx::query(REVOKE_USER_SESSIONS)
            .bind(id)
            .bind(except)
            .bind(now)
            .bind("password_changed")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<Vec<_>, _>>()?;
        let count = sids.len() as u64;
        let rows = session_rows(Some(NewRevocation::subject(id, now)), sids);
        self.log(&mut tx, &rows, now).await?;
        tx.commit().await?;
        Ok(Some(count))
    }

    async fn delete_user(&self, id: &str, now: i64) -> StoreResult<bool> {
        // The admins first (see `lock_admins`), then refresh tokens: those rows are then locked in the
        // same order as `rotate_refresh` locks them (token, then session), which avoids deadlocks with
        // a concurrent rotation on PostgreSQL.
        // Sessions go by `ON DELETE CASCADE`.
        let mut tx = self.begin_write().await?;
        let admins = lock_admins(&mut *tx).await?;
        sqlx::query(
            "DELETE FROM refresh_tokens \
             WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        require_an_admin(&mut *tx, admins).await?;
        let deleted = DB::rows_affected(&deleted) > 0;
        if deleted {
            // No token can be issued to a deleted user: every one up to this second is revoked.
            let rows = [NewRevocation::subject(id, now.saturating_add(1))];
            self.log(&mut tx, &rows, now).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn create_session(&self, session: &NewSession, now: i64) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, absolute_expires_at) \
             VALUES ($1, $2, $3, $3, $4)",
        )
        .bind(session.id.as_str())
        .bind(session.user_id.as_str())
        .bind(now)
        .bind(session.absolute_expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(INSERT_REFRESH)
            .bind(session.refresh_hash.as_slice())
            .bind(session.id.as_str())
            .bind(now)
            .bind(session.refresh_expires_at)
            .execute(&mut *tx)
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
        let mut tx = self.begin_write().await?;
        // Spending the token takes its row lock (PostgreSQL) or the write lock held since `BEGIN
        // IMMEDIATE` (SQLite): concurrent callers wait here, then find it spent.
        let spent: Option<SpentTokenRow> = sqlx::query_as(
            "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL \
             RETURNING session_id, expires_at",
        )
        .bind(old_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(spent) = spent else {
            let reused: Option<ReusedTokenRow> = sqlx::query_as(
                "SELECT s.id AS session_id, s.user_id, r.used_at, \
                        r.generation AS token_generation, s.generation AS session_generation \
                 FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id \
                 WHERE r.token_hash = $1",
            )
            .bind(old_hash)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(reused) = reused else {
                return reject(tx).await;
            };
            // A concurrent duplicate of the rotation that just won (its successor is still the live
            // token and it was spent moments ago) is refused without ending the session.
            if is_concurrent_duplicate(
                reused.used_at,
                reused.token_generation,
                reused.session_generation,
                now,
            ) {
                return reject(tx).await;
            }
            let done = sqlx::query(
                "UPDATE sessions SET revoked_at = $2, revoke_reason = 'refresh_reuse' \
                 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(reused.session_id.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if DB::rows_affected(&done) > 0 {
                let rows = [NewRevocation::session(reused.session_id.as_str())];
                self.log(&mut tx, &rows, now).await?;
            }
            tx.commit().await?;
            return Ok(RotateOutcome::Reused {
                session_id: reused.session_id,
                user_id: reused.user_id,
            });
        };
        // Every rejection below rolls the spend back.
        if spent.expires_at <= now {
            return reject(tx).await;
        }
        let session: Option<SessionRecord> = sqlx::query_as(concat!(
            "UPDATE sessions SET last_used_at = $2, generation = generation + 1 \
             WHERE id = $1 AND revoked_at IS NULL AND absolute_expires_at > $2 RETURNING ",
            session_columns!()
        ))
        .bind(spent.session_id.as_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(session) = session else {
            return reject(tx).await;
        };
        let user: Option<UserRecord> = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(session.user_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(user) = user else {
            return reject(tx).await;
        };
        if user.disabled {
            return reject(tx).await;
        }
        let refresh_expires_at = now
            .saturating_add(idle_ttl)
            .min(session.absolute_expires_at);
        sqlx::query(INSERT_REFRESH)
            .bind(new_hash)
            .bind(spent.session_id.as_str())
            .bind(now)
            .bind(refresh_expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(RotateOutcome::Rotated {
            session,
            user: Box::new(user),
            refresh_expires_at,
        })
    }

    async fn revoke_session_by_refresh(
        &self,
        hash: &[u8],
        now: i64,
    ) -> StoreResult<Option<(String, String)>> {
        let mut tx = self.begin_write().await?;
        let row: Option<SessionOwnerRow> = sqlx::query_as(
            "UPDATE sessions SET revoked_at = $2, revoke_reason = 'logout' \
             WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1) \
             AND revoked_at IS NULL AND absolute_expires_at > $2 \
             RETURNING id, user_id",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(r) = &row {
            self.log(&mut tx, &[NewRevocation::session(r.id.as_str())], now)
                .await?;
        }
        tx.commit().await?;
        Ok(row.map(|r| (r.id, r.user_id)))
    }

    async fn revoke_session(&self, session_id: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $2, revoke_reason = 'revoked' \
             WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(session_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let revoked = DB::rows_affected(&done) > 0;
        if revoked {
            self.log(&mut tx, &[NewRevocation::session(session_id)], now)
                .await?;
        }
        tx.commit().await?;
        Ok(revoked)
    }

    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        except: Option<&str>,
        now: i64,
    ) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let sids = sqlx::query(REVOKE_USER_SESSIONS)
            .bind(user_id)
            .bind(except)
            .bind(now)
            .bind("revoked")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<Vec<_>, _>>()?;
        let count = sids.len() as u64;
        self.log(&mut tx, &session_rows(None, sids), now).await?;
        tx.commit().await?;
        Ok(count)
    }

    async fn session_status(&self, session_id: &str) -> StoreResult<Option<SessionStatus>> {
        Ok(sqlx::query_as(
            "SELECT s.user_id, s.revoked_at IS NOT NULL AS revoked, s.absolute_expires_at, \
                    u.disabled AS user_disabled, u.tokens_not_before \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
        )
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn session_by_id(&self, session_id: &str) -> StoreResult<Option<SessionRecord>> {
        let sql = concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE id = $1"
        );
        Ok(sqlx::query_as(sql)
            .bind(session_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn list_active_sessions(
        &self,
        user_id: &str,
        now: i64,
    ) -> StoreResult<Vec<SessionRecord>> {
        let sql = concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND absolute_expires_at > $2 \
             ORDER BY created_at DESC, id DESC"
        );
        Ok(sqlx::query_as(sql)
            .bind(user_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let tokens = sqlx::query(
            "DELETE FROM refresh_tokens \
             WHERE session_id IN (SELECT id FROM sessions WHERE absolute_expires_at <= $1)",
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
        // A spent assertion past its `exp` can no longer be replayed: its `jti` is forgotten.
        let jtis = sqlx::query("DELETE FROM service_assertion_jtis WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        // The horizon first: a reader that sees a row gone also sees the horizon past it.
        sqlx::query(
            "UPDATE revocation_horizon SET pruned_through = \
               COALESCE((SELECT MAX(seq) FROM revocations WHERE expires_at <= $1 \
                         AND seq > revocation_horizon.pruned_through), pruned_through) \
             WHERE id = 1",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let log = sqlx::query("DELETE FROM revocations WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&tokens)
            + DB::rows_affected(&sessions)
            + DB::rows_affected(&keys)
            + DB::rows_affected(&jtis)
            + DB::rows_affected(&log))
    }
}
