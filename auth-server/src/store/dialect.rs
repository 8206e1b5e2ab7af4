//! What differs between the SQL backends, and nothing else: how a writing transaction begins, how a
//! unique violation names its constraint, which migrations apply, and how affected rows are counted.
//! Each backend implements [`Dialect`] in one small file (`postgres.rs`, `sqlite.rs`); every query
//! lives once, in [`super::sql`].

use sqlx::Database;
use sqlx::error::DatabaseError;
use sqlx::migrate::{Migrate, Migrator};

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
