//! The SQL of the audit trail (table `audit_events`), written once for both backends: append, the
//! filtered newest-first page, and the retention purge. What is recorded is `crate::audit`'s.

use async_trait::async_trait;
use sqlx::{Encode, Executor, FromRow, IntoArguments, Type};

use super::dialect::Dialect;
use super::rows::audit_columns;
use super::sql::SqlStore;
use super::{AuditEvent, AuditQuery, AuditStore, StoreResult};

#[async_trait]
impl<DB> AuditStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'r> AuditEvent: FromRow<'r, DB::Row>,
{
    async fn insert_audit(&self, e: &AuditEvent) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_events (event_time, event, outcome, actor, subject, source, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(e.time)
        .bind(e.event.as_str())
        .bind(e.outcome.as_str())
        .bind(e.actor.as_deref())
        .bind(e.subject.as_deref())
        .bind(e.source.as_deref())
        .bind(e.detail.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        let sql = concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_events \
             WHERE ($1 IS NULL OR actor = $1 OR subject = $1) \
               AND ($2 IS NULL OR event_time >= $2) \
               AND ($3 IS NULL OR event_time < $3) \
               AND ($4 IS NULL OR id < $4) \
             ORDER BY id DESC LIMIT $5"
        );
        Ok(sqlx::query_as(sql)
            .bind(q.user_id.as_deref())
            .bind(q.since)
            .bind(q.until)
            .bind(q.before_id)
            .bind(q.limit)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn purge_audit(&self, before: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM audit_events WHERE event_time < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done))
    }
}
