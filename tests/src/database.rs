//! The databases of the test servers: a fresh PostgreSQL database per server ([`PgDatabase`], dropped
//! afterwards) or a SQLite file, and [`Db`], direct SQL access to the rows behind the API — to inspect
//! them (counts, the before/after [`Db::fingerprint`] of calls that must change nothing, the signing
//! key) and to seed or alter them behind the API's back ([`TestServer::seed_user`],
//! [`TestServer::exec`]).

use std::time::Duration;

use super::harness::{Backend, TestServer, bounded};

/// A row of `signing_keys`, without the key material.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyRow {
    /// Key id.
    pub kid: String,
    /// `current`, `next` or `retired`.
    pub status: String,
    /// When it was created, that is first published.
    pub created_at: i64,
    /// When it became current.
    pub activated_at: Option<i64>,
    /// For a retired key: published until then.
    pub publish_until: Option<i64>,
}

impl KeyRow {
    /// Whether the server publishes it at `now`.
    pub fn published_at(&self, now: i64) -> bool {
        self.status != "retired" || self.publish_until.is_some_and(|t| t > now)
    }
}

/// Direct SQL access to the server's database, to inspect rows.
#[derive(Debug, Clone)]
pub enum Db {
    /// PostgreSQL pool.
    Pg(sqlx::PgPool),
    /// SQLite pool.
    Sqlite(sqlx::SqlitePool),
}

impl Db {
    /// A small pool on `url` that connects on first use (the server creates the database's tables).
    pub(crate) fn connect_lazy(backend: Backend, url: &str) -> Self {
        match backend {
            Backend::Postgres => Db::Pg(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_lazy(url)
                    .expect("pg pool"),
            ),
            Backend::Sqlite => Db::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_lazy(url)
                    .expect("sqlite pool"),
            ),
        }
    }

    /// Runs a query returning one integer (e.g. `SELECT COUNT(*) FROM users`).
    pub async fn scalar(&self, sql: &str) -> i64 {
        bounded(sql, async {
            match self {
                Db::Pg(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
                Db::Sqlite(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Number of rows of `table`.
    pub async fn count(&self, table: &str) -> i64 {
        self.scalar(&format!("SELECT COUNT(*) FROM {table}")).await
    }

    /// Row counts of users, sessions, revoked sessions, refresh tokens and used refresh tokens: a
    /// fingerprint to compare before and after a call that must not change anything.
    pub async fn fingerprint(&self) -> [i64; 6] {
        [
            self.count("users").await,
            self.count("sessions").await,
            self.scalar("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NOT NULL")
                .await,
            self.count("refresh_tokens").await,
            self.scalar("SELECT COUNT(*) FROM refresh_tokens WHERE used_at IS NOT NULL")
                .await,
            self.count("signing_keys").await,
        ]
    }

    /// Refresh-token rows that are live: unused, and whose session is not revoked.
    pub async fn live_refresh_tokens(&self) -> i64 {
        self.scalar(
            "SELECT COUNT(*) FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id \
             WHERE r.used_at IS NULL AND s.revoked_at IS NULL",
        )
        .await
    }

    /// The current signing key row: (kid, alg, encrypted PKCS#8).
    pub async fn current_key(&self) -> (String, String, Vec<u8>) {
        const SQL: &str =
            "SELECT kid, alg, private_key_enc FROM signing_keys WHERE status = 'current'";
        bounded("current key", async {
            match self {
                Db::Pg(p) => sqlx::query_as::<_, (String, String, Vec<u8>)>(SQL)
                    .fetch_one(p)
                    .await
                    .expect("current key"),
                Db::Sqlite(p) => sqlx::query_as::<_, (String, String, Vec<u8>)>(SQL)
                    .fetch_one(p)
                    .await
                    .expect("current key"),
            }
        })
        .await
    }

    /// The signing-key rows, oldest first.
    pub async fn signing_keys(&self) -> Vec<KeyRow> {
        const SQL: &str = "SELECT kid, status, created_at, activated_at, publish_until \
                           FROM signing_keys ORDER BY created_at, kid";
        bounded("signing keys", async {
            match self {
                Db::Pg(p) => sqlx::query_as(SQL).fetch_all(p).await,
                Db::Sqlite(p) => sqlx::query_as(SQL).fetch_all(p).await,
            }
        })
        .await
        .expect("signing keys")
    }

    /// The kid of the signing key with `status` (`current` or `next`).
    pub async fn key_with_status(&self, status: &str) -> String {
        self.signing_keys()
            .await
            .into_iter()
            .find(|k| k.status == status)
            .unwrap_or_else(|| panic!("no {status} key"))
            .kid
    }

    pub(crate) async fn close(&self) {
        match self {
            Db::Pg(p) => p.close().await,
            Db::Sqlite(p) => p.close().await,
        }
    }
}

impl TestServer {
    /// Creates a user without going through the admin API (as `auth-server user create` does), so
    /// scenarios that are not about administration do not depend on the admin authorisation layer.
    pub async fn seed_user(&self, name: &str, password: &str, roles: &[&str]) -> String {
        let hasher = auth_server::password::PasswordHasher::new(
            auth_server::password::HashParams {
                memory_kib: 8192,
                iterations: 1,
                parallelism: 1,
                max_concurrent: 1,
                max_queued: 8,
            },
            auth_server::password::PasswordPolicy::default(),
        )
        .expect("hasher");
        let hash = hasher
            .hash(auth_server::password::normalize(password))
            .await
            .expect("hash");
        let name_ = auth_server::username::parse(name).expect("valid username");
        let (display, key, skeleton) = (name_.display, name_.key, name_.skeleton);
        let id = uuid::Uuid::now_v7().to_string();
        let roles = serde_json::to_string(&roles).expect("roles json");
        let now = self.now();
        let sql_pg = "INSERT INTO users (id, username, username_key, username_skeleton, password_hash, roles, disabled, created_at, updated_at) VALUES ($1, $2, $3, $7, $4, $5, FALSE, $6, $6)";
        let sql_lite = "INSERT INTO users (id, username, username_key, username_skeleton, password_hash, roles, disabled, created_at, updated_at) VALUES (?1, ?2, ?3, ?7, ?4, ?5, 0, ?6, ?6)";
        match &self.db {
            Db::Pg(p) => sqlx::query(sql_pg)
                .bind(&id)
                .bind(&display)
                .bind(&key)
                .bind(&hash)
                .bind(&roles)
                .bind(now)
                .bind(&skeleton)
                .execute(p)
                .await
                .map(|_| ()),
            Db::Sqlite(p) => sqlx::query(sql_lite)
                .bind(&id)
                .bind(&display)
                .bind(&key)
                .bind(&hash)
                .bind(&roles)
                .bind(now)
                .bind(&skeleton)
                .execute(p)
                .await
                .map(|_| ()),
        }
        .expect("insert user");
        id
    }

    /// Runs a statement with one text parameter written `$1` (e.g. to disable a user behind the API's
    /// back). Booleans: write `(1=1)`, which both backends accept.
    pub async fn exec(&self, sql: &str, arg: &str) {
        bounded(sql, async {
            match &self.db {
                Db::Pg(p) => sqlx::query(sql).bind(arg).execute(p).await.map(|_| ()),
                Db::Sqlite(p) => sqlx::query(&sql.replace("$1", "?1"))
                    .bind(arg)
                    .execute(p)
                    .await
                    .map(|_| ()),
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// Base PostgreSQL URL (`DATABASE_URL`, else the local trust-auth server).
pub fn pg_base_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `base` with its database name replaced by `db`.
fn pg_url_for(base: &str, db: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (base, None),
    };
    let scheme_end = head.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match head[scheme_end..].find('/') {
        Some(i) => &head[..scheme_end + i],
        None => head,
    };
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
}

/// A fresh PostgreSQL database, dropped (best effort, `WITH (FORCE)`) on [`PgDatabase::drop_now`] or
/// when dropped.
#[derive(Debug)]
pub struct PgDatabase {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
    dropped: bool,
}

impl PgDatabase {
    /// Creates `auth_e2e_<random>`.
    pub async fn create() -> Self {
        use sqlx::Connection;
        let base = pg_base_url();
        let name = format!("auth_e2e_{}", uuid::Uuid::new_v4().simple());
        let mut conn = bounded("connect to postgres", sqlx::PgConnection::connect(&base))
            .await
            .expect("connect to the postgres database (is PostgreSQL running?)");
        bounded(
            "create database",
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn),
        )
        .await
        .expect("create database");
        let _ = conn.close().await;
        Self {
            url: pg_url_for(&base, &name),
            name,
            dropped: false,
        }
    }

    /// Drops the database now.
    pub async fn drop_now(&mut self) {
        if !self.dropped {
            self.dropped = true;
            drop_database(&self.name).await;
        }
    }
}

async fn drop_database(name: &str) {
    use sqlx::Connection;
    let fut = async {
        let mut conn = sqlx::PgConnection::connect(&pg_base_url()).await.ok()?;
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
        Some(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), fut).await;
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let name = self.name.clone();
        // Drop runs outside async context guarantees: use a private runtime on a helper thread.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(drop_database(&name));
            }
        })
        .join();
    }
}
