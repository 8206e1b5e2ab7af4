//! The revocation log (table `revocations`): its records, and the one function every token-ending
//! change calls, inside its own open transaction, to append to it.
//!
//! Appending is the last step of such a transaction: it takes the backend's log lock
//! ([`Dialect::LOCK_LOG`]) so commit order equals sequence order, inserts the rows, and sends the
//! backend's wake-up ([`Dialect::NOTIFY_LOG`], delivered at commit).

use async_trait::async_trait;
use sqlx::{Encode, Executor, FromRow, IntoArguments, Type};

use super::dialect::Dialect;
use super::sql::SqlStore;
use super::{RevocationStore, StoreError, StoreResult, Wakeups};

/// What a revocation row matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationKind {
    /// Every token of one session (`target` = sid).
    Session,
    /// Every token of one subject issued before `not_before` (`target` = sub).
    Subject,
    /// Every token signed with one key (`target` = kid).
    Key,
    /// Not a revocation: the signing keys changed, replicas reload them (never streamed).
    Keys,
}

impl RevocationKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Subject => "subject",
            Self::Key => "key",
            Self::Keys => "keys",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "session" => Self::Session,
            "subject" => Self::Subject,
            "key" => Self::Key,
            "keys" => Self::Keys,
            _ => return None,
        })
    }
}

/// A row of the revocation log.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct RevocationRecord {
    /// Position in the log: strictly increasing, in commit order.
    pub seq: i64,
    /// What it matches.
    #[sqlx(try_from = "String")]
    pub kind: RevocationKind,
    /// The sid, sub or kid.
    pub target: String,
    /// For [`RevocationKind::Subject`]: tokens issued (`iat`) before this are revoked.
    pub not_before: Option<i64>,
    /// After this no token it matches can still be valid.
    pub expires_at: i64,
    /// When it was appended.
    pub created_at: i64,
}

impl TryFrom<String> for RevocationKind {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| format!("unknown revocation kind {s:?}"))
    }
}

/// How far the log reaches: rows up to `pruned_through` may be gone; `head` is the newest sequence
/// (equal to `pruned_through` when every row has been pruned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBounds {
    /// The highest pruned sequence (0 when none was).
    pub pruned_through: i64,
    /// The newest sequence.
    pub head: i64,
}

/// A row to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewRevocation {
    pub(crate) kind: RevocationKind,
    pub(crate) target: String,
    pub(crate) not_before: Option<i64>,
}

impl NewRevocation {
    /// Every token of session `sid`.
    pub(crate) fn session(sid: impl Into<String>) -> Self {
        Self {
            kind: RevocationKind::Session,
            target: sid.into(),
            not_before: None,
        }
    }

    /// Every token of `sub` issued before `not_before`.
    pub(crate) fn subject(sub: impl Into<String>, not_before: i64) -> Self {
        Self {
            kind: RevocationKind::Subject,
            target: sub.into(),
            not_before: Some(not_before),
        }
    }

    /// Every token signed with `kid`.
    pub(crate) fn key(kid: impl Into<String>) -> Self {
        Self {
            kind: RevocationKind::Key,
            target: kid.into(),
            not_before: None,
        }
    }

    /// The signing keys changed.
    pub(crate) fn keys() -> Self {
        Self {
            kind: RevocationKind::Keys,
            target: String::new(),
            not_before: None,
        }
    }
}

/// Appends `rows` to the log in the caller's open transaction (`conn`), appended at `now` and
/// concerning tokens that are all expired by `expires_at`. Call it as the last step before commit:
/// it holds the log lock (PostgreSQL) until the transaction ends. Nothing to append, nothing done.
pub(crate) async fn append<DB>(
    conn: &mut DB::Connection,
    rows: &[NewRevocation],
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
{
    if rows.is_empty() {
        return Ok(());
    }
    if !DB::LOCK_LOG.is_empty() {
        sqlx::query(DB::LOCK_LOG).execute(&mut *conn).await?;
    }
    for row in rows {
        sqlx::query(
            "INSERT INTO revocations (kind, target, not_before, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(row.kind.as_str())
        .bind(row.target.as_str())
        .bind(row.not_before)
        .bind(expires_at)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    if !DB::NOTIFY_LOG.is_empty() {
        sqlx::query(DB::NOTIFY_LOG).execute(&mut *conn).await?;
    }
    Ok(())
}

#[async_trait]
impl<DB> RevocationStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> RevocationRecord: FromRow<'r, DB::Row>,
    (i64, i64): for<'r> FromRow<'r, DB::Row>,
{
    async fn revocations_after(
        &self,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<RevocationRecord>> {
        Ok(sqlx::query_as(
            "SELECT seq, kind, target, not_before, expires_at, created_at FROM revocations \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn revocation_bounds(&self) -> StoreResult<LogBounds> {
        let (pruned_through, head): (i64, i64) = sqlx::query_as(
            "SELECT pruned_through, \
                    COALESCE((SELECT MAX(seq) FROM revocations), pruned_through) \
             FROM revocation_horizon WHERE id = 1",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(LogBounds {
            pruned_through,
            head: head.max(pruned_through),
        })
    }

    async fn revocation_wakeups(&self) -> StoreResult<Option<Wakeups>> {
        use futures_util::StreamExt;
        let wakeups = DB::log_wakeups(&self.pool).await?;
        Ok(wakeups.map(|w| w.map(|r| r.map_err(StoreError::from)).boxed()))
    }
}
