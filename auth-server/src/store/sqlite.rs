//! SQLite, the zero-config default backend: its [`Dialect`] and how to open a database file (WAL,
//! `synchronous = NORMAL`, foreign keys on, a busy timeout, created private to its owner).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::{Pool, Sqlite};

use super::dialect::{Dialect, LogWakeups};
use super::sql::SqlStore;
use super::{StoreError, StoreResult};

/// How long a statement waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller of [`SqliteStore::open`] waits for a pooled connection before failing.
const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pool size for a database file (WAL: many readers, writers queue on the write lock).
const MAX_CONNECTIONS: u32 = 8;

/// The store on SQLite.
pub type SqliteStore = SqlStore<Sqlite>;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

impl Dialect for Sqlite {
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const LOCK_ROWS: &'static str = "";
    const LOCK_LOG: &'static str = "";
    const NOTIFY_LOG: &'static str = "";

    fn log_wakeups(
        _pool: &Pool<Self>,
    ) -> BoxFuture<'static, Result<Option<LogWakeups>, sqlx::Error>> {
        // One process writes the file; the server wakes its follower itself after each append.
        Box::pin(async { Ok(None) })
    }

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn is_user_id_violation(e: &dyn DatabaseError) -> bool {
        // SQLite names the column, not the constraint: "UNIQUE constraint failed: users.id".
        e.message().contains("users.id")
    }

    fn is_username_skeleton_violation(e: &dyn DatabaseError) -> bool {
        e.message().contains("users.username_skeleton")
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

impl SqliteStore {
    /// Opens (creating it if missing, readable by the owner only on unix) the database file at `path`,
    /// in WAL mode with `synchronous = NORMAL`, foreign keys on and a 5 s busy timeout.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new().filename(path);
        Self::open_file(options, true, DEFAULT_ACQUIRE_TIMEOUT).await
    }

    /// Connects to a `sqlite:` URL, e.g. `sqlite://data/auth.db` or `sqlite::memory:`, with the settings
    /// of [`SqliteStore::open`] and the given connection-acquire timeout. A missing file is created (0600 on unix) unless the URL says `mode=ro` or
    /// `mode=rw`. An in-memory database uses a single, never-recycled connection so that every query
    /// sees the same database.
    pub async fn connect(url: &str, acquire_timeout: Duration) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?;
        match url_mode(url) {
            _ if url.contains(":memory:") => Self::open_memory(options, acquire_timeout).await,
            Some("memory") => Self::open_memory(options, acquire_timeout).await,
            Some("ro" | "rw") => Self::open_file(options, false, acquire_timeout).await,
            _ => Self::open_file(options, true, acquire_timeout).await,
        }
    }

    async fn open_file(
        options: SqliteConnectOptions,
        create: bool,
        acquire_timeout: Duration,
    ) -> StoreResult<Self> {
        if create {
            create_private_file(options.get_filename()).await?;
        }
        let options = tune(options.create_if_missing(create)).journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self::from_pool(pool))
    }

    async fn open_memory(
        options: SqliteConnectOptions,
        acquire_timeout: Duration,
    ) -> StoreResult<Self> {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(acquire_timeout)
            .connect_with(tune(options))
            .await?;
        Ok(Self::from_pool(pool))
    }
}

/// The connection settings shared by every database.
fn tune(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
        .synchronous(SqliteSynchronous::Normal)
}

/// The `mode` query parameter of a SQLite URL.
fn url_mode(url: &str) -> Option<&str> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| pair.strip_prefix("mode="))
}

/// Creates `path` with mode 0600 (unix) unless it exists; SQLite gives its `-wal`/`-shm` files the same mode.
async fn create_private_file(path: &Path) -> StoreResult<()> {
    let mut open = tokio::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    open.mode(0o600);
    match open.open(path).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Database(sqlx::Error::Io(e))),
    }
}
