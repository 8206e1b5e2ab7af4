//! PostgreSQL, the production backend: its [`Dialect`] and how to connect.

use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::StreamExt;
use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgListener, PgPoolOptions, PgQueryResult};
use sqlx::{Pool, Postgres};

use super::StoreResult;
use super::dialect::{Dialect, LogWakeups};
use super::sql::SqlStore;

/// The store on PostgreSQL.
pub type PgStore = SqlStore<Postgres>;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The channel the revocation log's appends notify.
const LOG_CHANNEL: &str = "auth_revocations";

impl Dialect for Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";
    const LOCK_ROWS: &'static str = " FOR UPDATE";
    // EXCLUSIVE conflicts with itself and with every writer of the table, not with readers.
    const LOCK_LOG: &'static str = "LOCK TABLE revocations IN EXCLUSIVE MODE";
    const NOTIFY_LOG: &'static str = "SELECT pg_notify('auth_revocations', '')";

    fn log_wakeups(
        pool: &Pool<Self>,
    ) -> BoxFuture<'static, Result<Option<LogWakeups>, sqlx::Error>> {
        let pool = pool.clone();
        Box::pin(async move {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(LOG_CHANNEL).await?;
            Ok(Some(listener.into_stream().map(|n| n.map(|_| ())).boxed()))
        })
    }

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
