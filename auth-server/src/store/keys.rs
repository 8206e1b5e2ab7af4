//! The SQL of signing keys (table `signing_keys`), written once for both backends: reading them, the
//! first start's insert (one replica wins), and the rotation — one conditional update, so of racing
//! replicas exactly one rotates — which also appends to the revocation log (every replica reloads;
//! a forced rotation revokes the retired key's tokens). The key lifecycle is `crate::keys`'.

use async_trait::async_trait;
use sqlx::{Encode, Executor, FromRow, IntoArguments, Type};

use super::dialect::Dialect;
use super::revocations::NewRevocation;
use super::rows::key_columns;
use super::sql::SqlStore;
use super::{KeyRotation, KeyStatus, KeyStore, SigningKeyRecord, StoreError, StoreResult};

/// Stores a signing key with the given status.
async fn insert_key<'c, DB>(
    conn: &'c mut DB::Connection,
    key: &SigningKeyRecord,
    status: KeyStatus,
) -> Result<(), sqlx::Error>
where
    DB: Dialect,
    &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
{
    sqlx::query(concat!(
        "INSERT INTO signing_keys (",
        key_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(key.kid.as_str())
    .bind(key.alg.as_str())
    .bind(status.as_str())
    .bind(key.private_key_enc.as_slice())
    .bind(key.public_jwk.as_str())
    .bind(key.created_at)
    .bind(key.publish_until)
    .bind(key.activated_at)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl<DB> KeyStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'r> SigningKeyRecord: FromRow<'r, DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (String,): FromRow<'r, DB::Row>,
{
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        let sql = concat!(
            "SELECT ",
            key_columns!(),
            " FROM signing_keys ORDER BY created_at, kid"
        );
        Ok(sqlx::query_as(sql).fetch_all(&self.pool).await?)
    }

    async fn init_signing_keys(&self, keys: &[SigningKeyRecord]) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let current: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE status = 'current'")
                .fetch_one(&mut *tx)
                .await?;
        if current > 0 {
            return Ok(false);
        }
        for key in keys {
            match insert_key(&mut *tx, key, key.status).await {
                Ok(_) => {}
                // Another replica inserted its keys concurrently and won.
                Err(sqlx::Error::Database(d)) if d.is_unique_violation() => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn rotate_signing_keys(
        &self,
        new_next: &SigningKeyRecord,
        rotation: &KeyRotation,
    ) -> StoreResult<Option<(String, String)>> {
        let mut tx = self.begin_write().await?;
        // One conditional update decides: a replica that lost the race (the row is no longer
        // current once it gets it) or came too early changes nothing.
        let retired: Option<String> = sqlx::query_scalar(
            "UPDATE signing_keys SET status = 'retired', publish_until = $1 \
             WHERE status = 'current' AND COALESCE(activated_at, created_at) <= $2 \
             AND EXISTS (SELECT 1 FROM signing_keys WHERE status = 'next' AND created_at <= $3) \
             RETURNING kid",
        )
        .bind(rotation.retire_until)
        .bind(rotation.current_since)
        .bind(rotation.next_since)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(retired) = retired else {
            let active: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM signing_keys WHERE status IN ('current', 'next')",
            )
            .fetch_one(&mut *tx)
            .await?;
            return match active {
                2 => Ok(None),
                _ => Err(StoreError::Conflict("no current/next key")),
            };
        };
        let current: Option<String> = sqlx::query_scalar(
            "UPDATE signing_keys SET status = 'current', activated_at = $1 \
             WHERE status = 'next' RETURNING kid",
        )
        .bind(rotation.now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(current) = current else {
            return Err(StoreError::Conflict("no current/next key"));
        };
        insert_key(&mut *tx, new_next, KeyStatus::Next).await?;
        // Every replica reloads its keys at once; a forced rotation also revokes the retired key's
        // tokens everywhere.
        let mut rows = vec![NewRevocation::keys()];
        if rotation.revoke_retired {
            rows.push(NewRevocation::key(retired.as_str()));
        }
        self.log(&mut tx, &rows, rotation.now).await?;
        tx.commit().await?;
        Ok(Some((current, retired)))
    }
}
