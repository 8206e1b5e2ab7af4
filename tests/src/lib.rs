//! Shared support of the end-to-end tests: starts a real `auth-server` in-process on a fresh PostgreSQL
//! database or SQLite file, with a hand-driven clock, and offers clients, helpers and a token forger
//! holding the server's signing key (the catalogue's `S(h,p)`).
//!
//! Scenarios live in `tests/tests/e2e/` (one test binary, a module per area) and
//! `tests/tests/security_logs.rs`; [`both_backends!`] turns one `async fn(Backend)` into a test
//! per storage backend.

// Test support code: a failed expectation is a failed test, and panicking with a message is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use auth_proto::v1::admin_service_client::AdminServiceClient;
use auth_proto::v1::auth_service_client::AuthServiceClient;
use auth_proto::v1::{
    CreateUserRequest, GetJwksRequest, LoginRequest, LoginResponse, User, ValidateRequest,
    ValidateResponse,
};
use auth_server::clock::ManualClock;
use auth_server::config::Config;
use auth_server::keys::master::MasterKey;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

pub mod forge;
pub mod greeter;
pub use forge::{
    Case, ForgedTokens, assert_never_contacted, forged_claim_cases, forged_token_cases, hex_bytes,
    jwt_header,
};
pub use greeter::{Greeter, GreeterServer};

/// Username of the bootstrap admin of every test server.
pub const ADMIN_USER: &str = "admin";
/// Password of the bootstrap admin of every test server.
pub const ADMIN_PASSWORD: &str = "admin-password-0123";
/// Default access-token lifetime of the server, seconds.
pub const ACCESS_TTL: i64 = 600;
/// Default verification leeway of the server, seconds.
pub const LEEWAY: i64 = 30;
/// Default refresh idle timeout, seconds.
pub const IDLE_TTL: i64 = 7 * 24 * 3600;
/// Default absolute session lifetime, seconds.
pub const ABSOLUTE_TTL: i64 = 30 * 24 * 3600;
/// Upper bound on any single test step that waits for the server.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Storage backend of a test server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh PostgreSQL database (`auth_e2e_<random>`), dropped afterwards.
    Postgres,
    /// A fresh SQLite file in a temporary directory.
    Sqlite,
}

/// Generates one `#[tokio::test]` per backend for each named scenario `async fn(Backend)`:
/// `scenario::postgres` and `scenario::sqlite`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    $crate::run_bounded(super::$name($crate::Backend::Postgres)).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    $crate::run_bounded(super::$name($crate::Backend::Sqlite)).await
                }
            }
        )*
    };
}

/// Runs a whole scenario with an overall bound so a hang fails instead of stalling the suite.
pub async fn run_bounded(fut: impl Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(150), fut)
        .await
        .expect("scenario timed out");
}

/// Bounds one awaited step.
pub async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: timed out"))
}

/// One gRPC reflection (v1) request and its answer, against `s`.
pub async fn reflect(
    s: &TestServer,
    request: tonic_reflection::pb::v1::server_reflection_request::MessageRequest,
) -> tonic_reflection::pb::v1::server_reflection_response::MessageResponse {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    let mut client = ServerReflectionClient::new(s.channel());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut stream = bounded(
        "reflection",
        client.server_reflection_info(tokio_stream::iter(vec![req])),
    )
    .await
    .expect("reflection")
    .into_inner();
    let answer = bounded("reflection answer", stream.message())
        .await
        .expect("stream")
        .expect("one answer");
    answer.message_response.expect("a reflection answer")
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    config: Config,
}

/// Parses `auth-server serve` flags (after the program name) into a [`Config`].
pub fn parse_config(args: &[String]) -> Config {
    let mut argv = vec!["auth-server".to_owned()];
    argv.extend(args.iter().cloned());
    Cli::try_parse_from(argv).expect("flags parse").config
}

/// Like [`parse_config`] but returns clap's error.
pub fn try_parse_config(args: &[&str]) -> Result<Config, clap::Error> {
    let mut argv = vec!["auth-server"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).map(|c| c.config)
}

/// How to start a test server.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Run in HS256 shared-secret mode with a random secret.
    pub hs256: bool,
    /// Extra command-line flags (a flag the harness sets by default, e.g. `--argon2-memory-kib`, is
    /// replaced).
    pub extra_args: Vec<String>,
}

impl Options {
    /// HS256 mode.
    pub fn hs256() -> Self {
        Self {
            hs256: true,
            ..Self::default()
        }
    }

    /// Extra flags.
    pub fn with_args(args: &[&str]) -> Self {
        Self {
            extra_args: args.iter().map(|s| (*s).to_owned()).collect(),
            ..Self::default()
        }
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

    async fn close(&self) {
        match self {
            Db::Pg(p) => p.close().await,
            Db::Sqlite(p) => p.close().await,
        }
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

/// Where a server's data lives.
#[derive(Debug)]
enum Storage {
    Pg(PgDatabase),
    Sqlite(tempfile::TempDir),
}

/// A running in-process server.
pub struct TestServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The server's clock; `advance` it to expire tokens and sessions.
    pub clock: ManualClock,
    /// The database URL the server uses.
    pub db_url: String,
    /// Row access to the server's database.
    pub db: Db,
    /// Which backend.
    pub backend: Backend,
    /// The master key (asymmetric mode).
    pub master_key: Option<String>,
    /// The HS256 secret (shared-secret mode).
    pub hs256_secret: Option<String>,
    channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), auth_server::server::ServeError>>>,
    storage: Option<Storage>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// A random 48-character HS256 secret.
pub fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    )
}

impl TestServer {
    /// Starts a server with default options.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, Options::default()).await
    }

    /// Starts a server and waits until health reports SERVING.
    pub async fn start_with(backend: Backend, opts: Options) -> Self {
        let (storage, db_url) = match backend {
            Backend::Postgres => {
                let db = PgDatabase::create().await;
                let url = db.url.clone();
                (Storage::Pg(db), url)
            }
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("auth.db").display());
                (Storage::Sqlite(dir), url)
            }
        };
        let mut args: Vec<String> = [
            "--grpc-addr",
            "127.0.0.1:0",
            "--database-url",
            &db_url,
            "--bootstrap-admin-username",
            ADMIN_USER,
            "--bootstrap-admin-password",
            ADMIN_PASSWORD,
            // The cheapest argon2 the configuration allows: the suite hashes a lot on 2 cores.
            "--argon2-memory-kib",
            "8192",
            "--argon2-iterations",
            "1",
            "--db-max-connections",
            "8",
            "--shutdown-grace",
            "5",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // A default flag also given in `extra_args` is dropped here: the caller's value wins.
        let mut i = 0;
        while i + 1 < args.len() {
            if opts.extra_args.contains(&args[i]) {
                args.drain(i..i + 2);
            } else {
                i += 2;
            }
        }
        if let Storage::Sqlite(dir) = &storage {
            args.push("--data-dir".into());
            args.push(dir.path().display().to_string());
        }
        let (master_key, hs256_secret) = if opts.hs256 {
            let secret = random_secret();
            args.extend([
                "--signing-alg".into(),
                "HS256".into(),
                "--hs256-secret".into(),
                secret.clone(),
            ]);
            (None, Some(secret))
        } else {
            let key = MasterKey::generate_base64()
                .expect("master key")
                .to_string();
            args.extend(["--master-key".into(), key.clone()]);
            (Some(key), None)
        };
        args.extend(opts.extra_args.iter().cloned());
        let settings = parse_config(&args).validate().expect("valid test settings");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let clock = ManualClock::default();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(auth_server::server::serve_with_clock(
            settings,
            listener,
            async move {
                let _ = stop_rx.await;
            },
            Arc::new(clock.clone()),
        ));
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(5))
            .timeout(STEP_TIMEOUT)
            .connect_lazy();
        let db = match backend {
            Backend::Postgres => Db::Pg(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_lazy(&db_url)
                    .expect("pg pool"),
            ),
            Backend::Sqlite => Db::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_lazy(&db_url)
                    .expect("sqlite pool"),
            ),
        };
        let mut server = TestServer {
            addr,
            clock,
            db_url,
            db,
            backend,
            master_key,
            hs256_secret,
            channel,
            stop: Some(stop_tx),
            handle: Some(handle),
            storage: Some(storage),
        };
        server.wait_serving().await;
        server
    }

    async fn wait_serving(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(h) = &self.handle
                && h.is_finished()
            {
                let h = self.handle.take().expect("handle");
                match h.await {
                    Ok(Ok(())) => panic!("server stopped before serving"),
                    Ok(Err(e)) => panic!("server failed to start: {e}"),
                    Err(e) => panic!("server task panicked: {e}"),
                }
            }
            let mut health = HealthClient::new(self.channel.clone());
            let ok = tokio::time::timeout(
                Duration::from_secs(2),
                health.check(HealthCheckRequest {
                    service: String::new(),
                }),
            )
            .await;
            if let Ok(Ok(r)) = &ok
                && r.get_ref().status == ServingStatus::Serving as i32
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "server did not become SERVING: {ok:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A channel to the server (HTTP/2, shared).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A new, separate connection (for tests that must not share the HTTP/2 connection).
    pub async fn new_channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(5))
            .timeout(STEP_TIMEOUT)
            .connect()
            .await
            .expect("connect")
    }

    /// Tries to open a new connection.
    pub async fn new_channel_result(&self) -> Result<Channel, tonic::transport::Error> {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(2))
            .connect()
            .await
    }

    /// An `AuthService` client.
    pub fn auth_client(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel())
    }

    /// An `AdminService` client sending `authorization: Bearer <token>` on every call.
    pub fn admin_client_with(
        &self,
        token: &str,
    ) -> AdminServiceClient<InterceptedService<Channel, BearerAuth>> {
        AdminServiceClient::with_interceptor(self.channel(), BearerAuth::new(token))
    }

    /// An `AdminService` client sending no credentials.
    pub fn admin_client(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel())
    }

    /// A health client.
    pub fn health_client(&self) -> HealthClient<Channel> {
        HealthClient::new(self.channel())
    }

    /// Logs in; panics on failure.
    pub async fn login(&self, user: &str, password: &str) -> LoginResponse {
        self.try_login(user, password)
            .await
            .unwrap_or_else(|s| panic!("login {user:?} failed: {s:?}"))
    }

    /// Logs in, returning the status on failure.
    pub async fn try_login(&self, user: &str, password: &str) -> Result<LoginResponse, Status> {
        bounded(
            "login",
            self.auth_client().login(LoginRequest {
                username: user.to_owned(),
                password: password.to_owned(),
            }),
        )
        .await
        .map(|r| r.into_inner())
    }

    /// Logs in as the bootstrap admin; returns the access token.
    pub async fn admin_token(&self) -> String {
        self.login(ADMIN_USER, ADMIN_PASSWORD).await.access_token
    }

    /// Creates a user through `AdminService/CreateUser` with `admin_token`.
    pub async fn create_user(
        &self,
        admin_token: &str,
        name: &str,
        password: &str,
        roles: &[&str],
    ) -> User {
        bounded(
            "create user",
            self.admin_client_with(admin_token)
                .create_user(CreateUserRequest {
                    username: name.to_owned(),
                    password: password.to_owned(),
                    roles: roles.iter().map(|r| (*r).to_owned()).collect(),
                }),
        )
        .await
        .unwrap_or_else(|s| panic!("create user {name:?} failed: {s:?}"))
        .into_inner()
        .user
        .expect("user in response")
    }

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
            auth_server::password::PasswordPolicy {
                min_chars: 1,
                max_bytes: 1024,
            },
        )
        .expect("hasher");
        let hash = hasher
            .hash(auth_server::password::normalize(password))
            .await
            .expect("hash");
        let name_ = auth_server::input::username(name).expect("valid username");
        let (display, key) = (name_.display, name_.key);
        let id = uuid::Uuid::now_v7().to_string();
        let roles = serde_json::to_string(&roles).expect("roles json");
        let now = self.now();
        let sql_pg = "INSERT INTO users (id, username, username_key, password_hash, roles, disabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, FALSE, $6, $6)";
        let sql_lite = "INSERT INTO users (id, username, username_key, password_hash, roles, disabled, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?6)";
        match &self.db {
            Db::Pg(p) => sqlx::query(sql_pg)
                .bind(&id)
                .bind(&display)
                .bind(&key)
                .bind(&hash)
                .bind(&roles)
                .bind(now)
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

    /// `Validate(token)`; panics on an RPC error.
    pub async fn validate(&self, token: &str) -> ValidateResponse {
        bounded(
            "validate",
            self.auth_client().validate(ValidateRequest {
                access_token: token.to_owned(),
            }),
        )
        .await
        .unwrap_or_else(|s| panic!("validate RPC failed: {s:?}"))
        .into_inner()
    }

    /// The published JWKS, parsed.
    pub async fn jwks(&self) -> Value {
        let json = bounded("jwks", self.auth_client().get_jwks(GetJwksRequest {}))
            .await
            .expect("GetJwks")
            .into_inner()
            .jwks_json;
        serde_json::from_str(&json).expect("JWKS is JSON")
    }

    /// The server's "now".
    pub fn now(&self) -> i64 {
        auth_server::clock::Clock::now(&self.clock)
    }

    /// The current signing key, decrypted with the master key (the catalogue's test key).
    pub async fn signing_key(&self) -> SigningKey {
        if let Some(secret) = &self.hs256_secret {
            let token = self.admin_token().await;
            let kid = header_of(&token)["kid"].as_str().expect("kid").to_owned();
            return SigningKey {
                kid,
                alg: Algorithm::HS256,
                key: EncodingKey::from_secret(secret.as_bytes()),
            };
        }
        let (kid, alg, enc) = self.db.current_key().await;
        let master = MasterKey::from_base64(self.master_key.as_deref().expect("master key"))
            .expect("master key parses");
        let pkcs8 = master.open(&kid, &enc).expect("decrypt signing key");
        let alg: Algorithm = alg.parse().expect("alg");
        let key = auth_server::keys::generate::encoding_key(alg, &pkcs8).expect("encoding key");
        SigningKey { kid, alg, key }
    }

    /// Whether the server task has ended.
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Triggers graceful shutdown without waiting for it.
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for `serve` to return (after [`TestServer::trigger_shutdown`]) and returns its result.
    pub async fn join(&mut self) -> Result<(), auth_server::server::ServeError> {
        let h = self.handle.take().expect("server still running");
        bounded("serve to return", h)
            .await
            .expect("server task panicked")
    }

    /// Stops the server, waits for it, and removes its database.
    pub async fn shutdown(mut self) {
        self.trigger_shutdown();
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), h).await;
        }
        self.db.close().await;
        if let Some(Storage::Pg(mut db)) = self.storage.take() {
            db.drop_now().await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
        // A PgDatabase in `storage` drops its database in its own Drop.
    }
}

/// Sends `authorization: Bearer <token>` on every call.
#[derive(Debug, Clone)]
pub struct BearerAuth(MetadataValue<Ascii>);

impl BearerAuth {
    /// For `token`.
    pub fn new(token: &str) -> Self {
        Self(format!("Bearer {token}").parse().expect("ascii token"))
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// Wraps `msg` in a request carrying `authorization: Bearer <token>`.
pub fn bearer<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    req
}

/// A key that signs tokens as the server does.
pub struct SigningKey {
    /// Its kid.
    pub kid: String,
    /// Its algorithm.
    pub alg: Algorithm,
    /// The private key.
    pub key: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({}, {:?})", self.kid, self.alg)
    }
}

impl SigningKey {
    /// The header the server puts on its tokens.
    pub fn header(&self) -> Value {
        serde_json::json!({"alg": auth_interceptor::verify::alg_name(self.alg), "typ": "at+jwt", "kid": self.kid})
    }

    /// `S(h, p)`: signs arbitrary header and payload JSON with this key.
    pub fn sign(&self, header: &Value, payload: &Value) -> String {
        sign_with(&self.key, self.alg, header, payload)
    }
}

/// base64url (no padding) of JSON.
pub fn b64_json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
}

/// Signs `header.payload` with `key` under `alg`, whatever the header says.
pub fn sign_with(key: &EncodingKey, alg: Algorithm, header: &Value, payload: &Value) -> String {
    let input = format!("{}.{}", b64_json(header), b64_json(payload));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).expect("sign");
    format!("{input}.{sig}")
}

/// Signs raw bytes as HMAC (`HS256`/`HS384`/`HS512`) with an arbitrary secret (empty allowed).
pub fn hmac_sign(secret: &[u8], alg: Algorithm, header: &Value, payload: &Value) -> String {
    let input = format!("{}.{}", b64_json(header), b64_json(payload));
    let algorithm = match alg {
        Algorithm::HS384 => aws_lc_rs::hmac::HMAC_SHA384,
        Algorithm::HS512 => aws_lc_rs::hmac::HMAC_SHA512,
        _ => aws_lc_rs::hmac::HMAC_SHA256,
    };
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(algorithm, secret),
        input.as_bytes(),
    );
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Decodes a JWT's header (no verification).
pub fn header_of(token: &str) -> Value {
    part_of(token, 0)
}

/// Decodes a JWT's payload (no verification).
pub fn claims_of(token: &str) -> Value {
    part_of(token, 1)
}

fn part_of(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).expect("JWT part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON part")
}

/// The signature part of a JWT.
pub fn signature_of(token: &str) -> &str {
    token.rsplit('.').next().expect("signature")
}

/// Replaces header and payload of `token` while keeping its signature (tampering).
pub fn resign_keep_signature(token: &str, header: &Value, payload: &Value) -> String {
    format!(
        "{}.{}.{}",
        b64_json(header),
        b64_json(payload),
        signature_of(token)
    )
}

/// Asserts `status` has `code` and exactly `message`, and leaks none of `secrets` nor SQL.
#[track_caller]
pub fn assert_status(status: &Status, code: Code, message: &str, secrets: &[&str]) {
    assert_eq!(
        (status.code(), status.message()),
        (code, message),
        "unexpected status {status:?}"
    );
    assert_no_leak(status, secrets);
}

/// Asserts a status message contains none of `secrets`, no SQL and no crate error text.
#[track_caller]
pub fn assert_no_leak(status: &Status, secrets: &[&str]) {
    let msg = status.message();
    for s in secrets {
        if s.len() >= 4 {
            assert!(!msg.contains(s), "status message leaks a secret: {msg:?}");
        }
    }
    let lower = msg.to_ascii_lowercase();
    for bad in [
        "select", "insert", "update ", "sqlx", "postgres", "sqlite", "panicked",
    ] {
        assert!(
            !lower.contains(bad),
            "status message leaks internals: {msg:?}"
        );
    }
}

/// Asserts a Validate answer is "not valid" with `reason` (or any reason when `None`) and no claims.
#[track_caller]
pub fn assert_invalid(
    resp: &ValidateResponse,
    reason: Option<auth_proto::v1::InvalidReason>,
    what: &str,
) {
    assert!(!resp.valid, "{what}: accepted: {resp:?}");
    assert!(resp.claims.is_none(), "{what}: claims returned: {resp:?}");
    assert_ne!(
        resp.reason,
        auth_proto::v1::InvalidReason::Unspecified as i32,
        "{what}: no reason"
    );
    if let Some(r) = reason {
        assert_eq!(resp.reason(), r, "{what}: wrong reason");
    }
}

/// Polls `f` until it returns `Some`, at most `timeout`.
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: timed out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A free local TCP port (bound then released; a tiny race is accepted).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl TestServer {
    /// The server still serves: health SERVING, and `good_token` still validates.
    pub async fn assert_healthy(&self, good_token: &str) {
        let h = bounded(
            "health",
            self.health_client().check(HealthCheckRequest {
                service: String::new(),
            }),
        )
        .await
        .expect("health")
        .into_inner();
        assert_eq!(h.status, ServingStatus::Serving as i32, "health");
        assert!(
            self.validate(good_token).await.valid,
            "a known-good token still validates"
        );
    }
}

/// A unary call of `path` with an already-encoded request body and metadata set by `meta`; the answer
/// is decoded as an empty message (unknown fields skipped).
pub async fn raw_unary(
    channel: Channel,
    path: &str,
    body: Vec<u8>,
    meta: impl FnOnce(&mut tonic::metadata::MetadataMap),
) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    bounded("ready", grpc.ready()).await.expect("channel ready");
    let mut req = tonic::Request::new(RawBytes(body));
    meta(req.metadata_mut());
    let path: http::uri::PathAndQuery = path.parse().expect("path");
    bounded(
        path.as_str(),
        grpc.unary(
            req,
            path.clone(),
            tonic_prost::ProstCodec::<RawBytes, ()>::default(),
        ),
    )
    .await
    .map(|_| ())
}

/// A message whose encoding is exactly its bytes (already-encoded protobuf fields).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawBytes(pub Vec<u8>);

impl prost::Message for RawBytes {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        buf.put_slice(&self.0);
    }
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }
    fn encoded_len(&self) -> usize {
        self.0.len()
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}
