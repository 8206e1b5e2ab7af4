//! PostgreSQL, the production backend: its [`Dialect`] and how to connect.

use std::time::Duration;

use sqlx::Postgres;
use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPoolOptions, PgQueryResult};

use super::StoreResult;
use super::dialect::Dialect;
use super::sql::SqlStore;

/// The store on PostgreSQL.
pub type PgStore = SqlStore<Postgres>;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

impl Dialect for Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";
    const LOCK_ROWS: &'static str = " FOR UPDATE";

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn is_user_id_violation(e: &dyn DatabaseError) -> bool {
        e.constraint() == Some("users_pkey")
    }

    fn is_username_skeleton_violation(e: &dyn DatabaseError) -> bool {
        e.constraint() == Some("users_username_skeleton_uniq")
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

impl PgStore {
    /// Connects to `url` with a pool of at most `max_connections`, callers waiting at most
    /// `acquire_timeout` for a connection.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(acquire_timeout)
            .connect(url)
            .await?;
        Ok(Self::from_pool(pool))
    }
}
