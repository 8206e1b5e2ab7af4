//! What differs between the SQL backends, and nothing else: how a writing transaction begins, how a
//! unique violation names its constraint, which migrations apply, how affected rows are counted, and
//! how the revocation log keeps commit order and wakes other processes.
//! Each backend implements [`Dialect`] in one small file (`postgres.rs`, `sqlite.rs`); every query
//! lives once, in [`super::sql`].

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::error::DatabaseError;
use sqlx::migrate::{Migrate, Migrator};
use sqlx::{Database, Pool};

/// Wake-ups from other connections appending to the revocation log (see [`Dialect::log_wakeups`]).
pub type LogWakeups = BoxStream<'static, Result<(), sqlx::Error>>;

/// A SQL backend of the store. Implemented for [`sqlx::Postgres`] and [`sqlx::Sqlite`].
pub trait Dialect: Database<Connection: Migrate> {
    /// The statement that opens a transaction which writes. SQLite needs `BEGIN IMMEDIATE` so the
    /// transaction holds the write lock from its first statement (concurrent writers then queue on the
    /// busy timeout instead of failing when a read transaction tries to upgrade); PostgreSQL's row
    /// locks make a plain `BEGIN` enough.
    const BEGIN_WRITE: &'static str;

    /// Appended to a `SELECT` to lock the rows it reads until the transaction ends (`FOR UPDATE` on
    /// PostgreSQL; nothing on SQLite, where `BEGIN IMMEDIATE` already serializes writers).
    const LOCK_ROWS: &'static str;

    /// Run right before appending to the revocation log, in the appending transaction, so that
    /// transactions append (and commit) one at a time and sequence order is commit order: on
    /// PostgreSQL a `bigserial` is drawn at insert, so without it seq 11 could commit before seq 10
    /// and a reader already past 11 would never see 10. Empty on SQLite (`BEGIN IMMEDIATE` already
    /// serializes writers).
    const LOCK_LOG: &'static str;

    /// Run after appending to the revocation log, in the appending transaction: a wake-up for the
    /// other replicas, delivered at commit (PostgreSQL `NOTIFY`). Empty when the backend has none.
    const NOTIFY_LOG: &'static str;

    /// A stream that yields whenever another connection committed an append to the revocation log
    /// (PostgreSQL `LISTEN`), an error when the listening connection failed (it reconnects on the
    /// next poll); `None` when the backend has no such notification (SQLite: one process).
    fn log_wakeups(
        pool: &Pool<Self>,
    ) -> BoxFuture<'static, Result<Option<LogWakeups>, sqlx::Error>>;

    /// The backend's embedded migrations.
    fn migrator() -> &'static Migrator;

    /// True when the unique violation `e` is on the primary key of `users` (an id clash) rather than
    /// on the username.
    fn is_user_id_violation(e: &dyn DatabaseError) -> bool;

    /// True when the unique violation `e` is on the skeleton of the username (a look-alike of an
    /// existing account) rather than on the username itself.
    fn is_username_skeleton_violation(e: &dyn DatabaseError) -> bool;

    /// Rows changed by an `INSERT`, `UPDATE` or `DELETE`.
    fn rows_affected(result: &Self::QueryResult) -> u64;
}
