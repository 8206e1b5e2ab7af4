//! The SQL of service accounts, written once for both backends: accounts, their secrets' MACs, their
//! public keys, the single-use `jti`s of client assertions, and — in one place,
//! `SqlStore::end_service_tokens` — every change that ends an account's tokens.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::dialect::Dialect;
use super::records::RolesColumn;
use super::revocations::NewRevocation;
use super::service_account_records::{
    KeyAdded, MAX_SERVICE_ACCOUNT_KEYS, ServiceAccountKeyRecord, ServiceAccountRecord,
    ServiceAccountStatus, ServiceAccountUpdate,
};
use super::sql::SqlStore;
use super::{ServiceAccountStore, StoreError, StoreResult};

/// The columns of `service_accounts` that [`ServiceAccountRecord`] decodes.
macro_rules! account_columns {
    () => {
        "id, name, description, roles, audiences, disabled, secret_hash, previous_secret_hash, \
         previous_secret_expires_at, tokens_not_before, created_at, updated_at"
    };
}

/// The columns of `service_account_keys` that [`ServiceAccountKeyRecord`] decodes.
const KEY_COLUMNS: &str = "kid, alg, public_jwk, created_at";

/// True when `after` lacks something `before` has.
fn takes_away(before: &[String], after: &[String]) -> bool {
    before.iter().any(|x| !after.contains(x))
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q [u8]>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'r> ServiceAccountRecord: FromRow<'r, DB::Row>,
    for<'r> ServiceAccountKeyRecord: FromRow<'r, DB::Row>,
    for<'r> ServiceAccountStatus: FromRow<'r, DB::Row>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
{
    /// Ends every token account `id` has obtained before `cut` (`now`, or `now + 1` for a disable or
    /// a deletion, after which the account obtains no token, so this second's end too): its `tokens_not_before` moves to `cut` and a SUBJECT row goes to
    /// the revocation log. Every change that ends an account's tokens (disable, delete, rotation
    /// without overlap, key removal, a role or audience taken away) goes through here, inside the
    /// change's transaction.
    async fn end_service_tokens(
        &self,
        conn: &mut DB::Connection,
        id: &str,
        cut: i64,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE service_accounts SET tokens_not_before = $2 WHERE id = $1")
            .bind(id)
            .bind(cut)
            .execute(&mut *conn)
            .await?;
        self.log(conn, &[NewRevocation::subject(id, cut)], now)
            .await?;
        Ok(())
    }

    /// One account by id (`by_name` false) or by name, with its keys, read through `conn`.
    async fn account_in(
        conn: &mut DB::Connection,
        by_name: bool,
        value: &str,
    ) -> StoreResult<Option<ServiceAccountRecord>> {
        let sql = if by_name {
            concat!(
                "SELECT ",
                account_columns!(),
                " FROM service_accounts WHERE name = $1"
            )
        } else {
            concat!(
                "SELECT ",
                account_columns!(),
                " FROM service_accounts WHERE id = $1"
            )
        };
        let account: Option<ServiceAccountRecord> = sqlx::query_as(sql)
            .bind(value)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(mut account) = account else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM service_account_keys WHERE account_id = $1 \
             ORDER BY created_at, kid"
        );
        account.keys = sqlx::query_as(&sql)
            .bind(account.id.as_str())
            .fetch_all(&mut *conn)
            .await?;
        Ok(Some(account))
    }
}

#[async_trait]
impl<DB> ServiceAccountStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q [u8]>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'r> ServiceAccountRecord: FromRow<'r, DB::Row>,
    for<'r> ServiceAccountKeyRecord: FromRow<'r, DB::Row>,
    for<'r> ServiceAccountStatus: FromRow<'r, DB::Row>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
{
    /// See `ServiceAccountStore::create_service_account`.
    async fn create_service_account(&self, account: &ServiceAccountRecord) -> StoreResult<()> {
        let roles = RolesColumn::encode(&account.roles)?;
        let audiences = RolesColumn::encode(&account.audiences)?;
        let done = sqlx::query(concat!(
            "INSERT INTO service_accounts (",
            account_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, 0, $8, $8)"
        ))
        .bind(account.id.as_str())
        .bind(account.name.as_str())
        .bind(account.description.as_str())
        .bind(roles.as_str())
        .bind(audiences.as_str())
        .bind(account.disabled)
        .bind(account.secret_hash.as_slice())
        .bind(account.created_at)
        .execute(&self.pool)
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                Err(StoreError::Conflict("service account name taken"))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// See `ServiceAccountStore::service_account`.
    async fn service_account(
        &self,
        by_name: bool,
        value: &str,
    ) -> StoreResult<Option<ServiceAccountRecord>> {
        let mut conn = self.pool.acquire().await?;
        Self::account_in(&mut *conn, by_name, value).await
    }

    /// See `ServiceAccountStore::service_account_for_token`: the account row alone (no keys), one query.
    async fn service_account_for_token(
        &self,
        name: &str,
    ) -> StoreResult<Option<ServiceAccountRecord>> {
        let sql = concat!(
            "SELECT ",
            account_columns!(),
            " FROM service_accounts WHERE name = $1"
        );
        Ok(sqlx::query_as(sql)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// See `ServiceAccountStore::service_account_keys`.
    async fn service_account_keys(&self, id: &str) -> StoreResult<Vec<ServiceAccountKeyRecord>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM service_account_keys WHERE account_id = $1 \
             ORDER BY created_at, kid"
        );
        Ok(sqlx::query_as(&sql).bind(id).fetch_all(&self.pool).await?)
    }

    /// See `ServiceAccountStore::list_service_accounts`.
    async fn list_service_accounts(
        &self,
        after_name: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<ServiceAccountRecord>> {
        let mut conn = self.pool.acquire().await?;
        let sql = concat!(
            "SELECT ",
            account_columns!(),
            " FROM service_accounts WHERE ($1 IS NULL OR name > $1) ORDER BY name LIMIT $2"
        );
        let mut accounts: Vec<ServiceAccountRecord> = sqlx::query_as(sql)
            .bind(after_name)
            .bind(limit.max(0))
            .fetch_all(&mut *conn)
            .await?;
        let sql = format!(
            "SELECT account_id, {KEY_COLUMNS} FROM service_account_keys WHERE account_id IN \
             (SELECT id FROM service_accounts WHERE ($1 IS NULL OR name > $1) ORDER BY name \
              LIMIT $2) ORDER BY created_at, kid"
        );
        let keys: Vec<(String, String, String, String, i64)> = sqlx::query_as(&sql)
            .bind(after_name)
            .bind(limit.max(0))
            .fetch_all(&mut *conn)
            .await?;
        for (account_id, kid, alg, public_jwk, created_at) in keys {
            if let Some(a) = accounts.iter_mut().find(|a| a.id == account_id) {
                a.keys.push(ServiceAccountKeyRecord {
                    kid,
                    alg,
                    public_jwk,
                    created_at,
                });
            }
        }
        Ok(accounts)
    }

    /// See `ServiceAccountStore::update_service_account`.
    async fn update_service_account(
        &self,
        id: &str,
        update: &ServiceAccountUpdate,
        now: i64,
    ) -> StoreResult<Option<ServiceAccountRecord>> {
        let roles = RolesColumn::encode(&update.roles)?;
        let audiences = RolesColumn::encode(&update.audiences)?;
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "SELECT roles, audiences FROM service_accounts WHERE id = $1{}",
            DB::LOCK_ROWS
        );
        let before: Option<(String, String)> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((roles_before, audiences_before)) = before else {
            return Ok(None);
        };
        let roles_before: Vec<String> = RolesColumn::decode(roles_before)?;
        let audiences_before: Vec<String> = RolesColumn::decode(audiences_before)?;
        sqlx::query(
            "UPDATE service_accounts SET roles = $2, audiences = $3, description = $4, \
             updated_at = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(roles.as_str())
        .bind(audiences.as_str())
        .bind(update.description.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if takes_away(&roles_before, &update.roles)
            || takes_away(&audiences_before, &update.audiences)
        {
            self.end_service_tokens(&mut tx, id, now, now).await?;
        }
        let account = Self::account_in(&mut *tx, false, id).await?;
        tx.commit().await?;
        Ok(account)
    }

    /// See `ServiceAccountStore::set_service_account_disabled`.
    async fn set_service_account_disabled(
        &self,
        id: &str,
        disabled: bool,
        now: i64,
    ) -> StoreResult<Option<ServiceAccountRecord>> {
        let mut tx = self.begin_write().await?;
        let done =
            sqlx::query("UPDATE service_accounts SET disabled = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(disabled)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        if DB::rows_affected(&done) == 0 {
            return Ok(None);
        }
        if disabled {
            // A disabled account obtains no token, so this second's tokens end too (the cut is
            // `now + 1`): nothing issued before the change survives it.
            self.end_service_tokens(&mut tx, id, now.saturating_add(1), now)
                .await?;
        }
        let account = Self::account_in(&mut *tx, false, id).await?;
        tx.commit().await?;
        Ok(account)
    }

    /// See `ServiceAccountStore::delete_service_account`.
    async fn delete_service_account(&self, id: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        self.end_service_tokens(&mut tx, id, now.saturating_add(1), now)
            .await?;
        // Keys go by `ON DELETE CASCADE`.
        let done = sqlx::query("DELETE FROM service_accounts WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&done) == 0 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// See `ServiceAccountStore::rotate_service_account_secret`.
    async fn rotate_service_account_secret(
        &self,
        id: &str,
        new_hash: &[u8],
        previous_until: Option<i64>,
        now: i64,
    ) -> StoreResult<Option<ServiceAccountRecord>> {
        let mut tx = self.begin_write().await?;
        // The current secret becomes the previous one (until `previous_until`), or is dropped.
        let done = sqlx::query(
            "UPDATE service_accounts SET \
               previous_secret_hash = CASE WHEN $3 IS NULL THEN NULL ELSE secret_hash END, \
               previous_secret_expires_at = $3, secret_hash = $2, updated_at = $4 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(new_hash)
        .bind(previous_until)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&done) == 0 {
            return Ok(None);
        }
        if previous_until.is_none() {
            self.end_service_tokens(&mut tx, id, now, now).await?;
        }
        let account = Self::account_in(&mut *tx, false, id).await?;
        tx.commit().await?;
        Ok(account)
    }

    /// See `ServiceAccountStore::add_service_account_key`.
    async fn add_service_account_key(
        &self,
        id: &str,
        key: &ServiceAccountKeyRecord,
    ) -> StoreResult<Option<KeyAdded>> {
        let mut tx = self.begin_write().await?;
        // Locking the account row serializes concurrent additions, so the bound holds.
        let sql = format!(
            "SELECT id FROM service_accounts WHERE id = $1{}",
            DB::LOCK_ROWS
        );
        let exists: Option<(String,)> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let held: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM service_account_keys WHERE account_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        if held >= MAX_SERVICE_ACCOUNT_KEYS as i64 {
            return Ok(Some(KeyAdded::Full));
        }
        let done = sqlx::query(
            "INSERT INTO service_account_keys (account_id, kid, alg, public_jwk, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(key.kid.as_str())
        .bind(key.alg.as_str())
        .bind(key.public_jwk.as_str())
        .bind(key.created_at)
        .execute(&mut *tx)
        .await;
        match done {
            Ok(_) => {}
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                return Ok(Some(KeyAdded::KidTaken));
            }
            Err(e) => return Err(e.into()),
        }
        sqlx::query("UPDATE service_accounts SET updated_at = $2 WHERE id = $1")
            .bind(id)
            .bind(key.created_at)
            .execute(&mut *tx)
            .await?;
        let account = Self::account_in(&mut *tx, false, id).await?;
        tx.commit().await?;
        Ok(account.map(|a| KeyAdded::Added(Box::new(a))))
    }

    /// See `ServiceAccountStore::remove_service_account_key`.
    async fn remove_service_account_key(
        &self,
        id: &str,
        kid: &str,
        now: i64,
    ) -> StoreResult<Option<ServiceAccountRecord>> {
        let mut tx = self.begin_write().await?;
        let done =
            sqlx::query("DELETE FROM service_account_keys WHERE account_id = $1 AND kid = $2")
                .bind(id)
                .bind(kid)
                .execute(&mut *tx)
                .await?;
        if DB::rows_affected(&done) == 0 {
            return Ok(None);
        }
        sqlx::query("UPDATE service_accounts SET updated_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        self.end_service_tokens(&mut tx, id, now, now).await?;
        let account = Self::account_in(&mut *tx, false, id).await?;
        tx.commit().await?;
        Ok(account)
    }

    /// See `ServiceAccountStore::service_account_status`.
    async fn service_account_status(&self, id: &str) -> StoreResult<Option<ServiceAccountStatus>> {
        Ok(
            sqlx::query_as(
                "SELECT disabled, tokens_not_before FROM service_accounts WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await?,
        )
    }

    /// See `ServiceAccountStore::spend_assertion_jti`.
    async fn spend_assertion_jti(
        &self,
        client: &str,
        jti: &str,
        expires_at: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO service_assertion_jtis (client, jti, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (client, jti) DO NOTHING",
        )
        .bind(client)
        .bind(jti)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done) == 1)
    }
}
