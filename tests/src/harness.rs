//! Starting and stopping a [`TestServer`]: an in-process `auth-server` on `127.0.0.1:0` with a fresh
//! database, a hand-driven clock and the suite's defaults ([`Options`] on top); the command-line
//! parsing it goes through; the time bounds every scenario and step runs under; and
//! [`both_backends!`], which turns a scenario into one test per backend.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use auth_server::clock::ManualClock;
use auth_server::config::Config;
use auth_server::keys::master::MasterKey;
use clap::Parser;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::database::{Db, PgDatabase};

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
/// `scenario::postgres` and `scenario::sqlite`. The support modules are compiled into each test
/// binary as its module `support` (see `lib.rs`), hence the `$crate::support::` paths.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    $crate::support::run_bounded(super::$name($crate::support::Backend::Postgres)).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    $crate::support::run_bounded(super::$name($crate::support::Backend::Sqlite)).await
                }
            }
        )*
    };
}
pub(crate) use both_backends;

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

/// Runs `serve` with `args` (valid settings) on `127.0.0.1:0` and returns the error it stops with at
/// startup; panics if it starts serving instead.
pub async fn startup_error(args: &[&str]) -> auth_server::server::ServeError {
    let settings = try_parse_config(args)
        .expect("parse")
        .validate()
        .expect("valid settings");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    bounded(
        "serve",
        auth_server::server::serve(settings, listener, std::future::pending()),
    )
    .await
    .expect_err("startup refused")
}

/// A random 48-character HS256 secret.
pub fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    )
}

/// A fresh random master key, base64 (the form of `--master-key` / `AUTH_MASTER_KEY`).
pub fn random_master_key() -> String {
    MasterKey::generate_base64()
        .expect("master key")
        .to_string()
}

/// How to start a test server.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Run in HS256 shared-secret mode with a random secret.
    pub hs256: bool,
    /// In HS256 mode, refuse HS256 tokens on the admin API (the server's default; the harness
    /// otherwise opts in with `--hs256-admin`, since most scenarios administer through it).
    pub hs256_admin_refused: bool,
    /// Extra command-line flags (a flag the harness sets by default, e.g. `--argon2-memory-kib`, is
    /// replaced).
    pub extra_args: Vec<String>,
}

impl Options {
    /// HS256 mode (with the admin API opted in).
    pub fn hs256() -> Self {
        Self {
            hs256: true,
            ..Self::default()
        }
    }

    /// HS256 mode with the server's default: the admin API refuses HS256 tokens.
    pub fn hs256_without_admin() -> Self {
        Self {
            hs256: true,
            hs256_admin_refused: true,
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

    /// The full `serve` flags for a server on `db_url` (data in `data_dir` for SQLite): the suite's
    /// defaults, replaced by any flag also in `extra_args`, then the keys (`reuse`d from an earlier
    /// start on the same database, or new), then `extra_args`. Returns the flags with the master key
    /// (asymmetric mode) or the HS256 secret.
    pub(crate) fn args(
        &self,
        db_url: &str,
        data_dir: Option<&std::path::Path>,
        reuse: Option<(Option<String>, Option<String>)>,
    ) -> (Vec<String>, Option<String>, Option<String>) {
        let mut args: Vec<String> = [
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--database-url",
            db_url,
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
            // Keys rotate when a test asks (with no pre-publication wait); the rotation tests set
            // their own schedule.
            "--key-rotation-interval",
            "0",
            "--key-prepublish",
            "0",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // A default flag also given in `extra_args` is dropped here: the caller's value wins.
        let mut i = 0;
        while i + 1 < args.len() {
            if self.extra_args.contains(&args[i]) {
                args.drain(i..i + 2);
            } else {
                i += 2;
            }
        }
        if let Some(dir) = data_dir {
            args.push("--data-dir".into());
            args.push(dir.display().to_string());
        }
        let (master_key, hs256_secret) = if self.hs256 {
            let secret = reuse
                .and_then(|(_, secret)| secret)
                .unwrap_or_else(random_secret);
            args.extend([
                "--signing-alg".into(),
                "HS256".into(),
                "--hs256-secret".into(),
                secret.clone(),
            ]);
            if !self.hs256_admin_refused {
                args.push("--hs256-admin".into());
            }
            (None, Some(secret))
        } else {
            let key = reuse
                .and_then(|(key, _)| key)
                .unwrap_or_else(random_master_key);
            args.extend(["--master-key".into(), key.clone()]);
            (Some(key), None)
        };
        args.extend(self.extra_args.iter().cloned());
        (args, master_key, hs256_secret)
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
    /// The address of its HTTP side port (`None` when started with `--http-addr ""`).
    pub http_addr: Option<SocketAddr>,
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

/// The client settings of the suite for `addr`: 5 s to connect, [`STEP_TIMEOUT`] per call.
pub(crate) fn endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5))
        .timeout(STEP_TIMEOUT)
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
        let data_dir = match &storage {
            Storage::Sqlite(dir) => Some(dir.path()),
            Storage::Pg(_) => None,
        };
        let (args, master_key, hs256_secret) = opts.args(&db_url, data_dir, None);
        let clock = ManualClock::default();
        let Spawned {
            addr,
            http_addr,
            stop,
            handle,
        } = spawn_server(&args, &clock).await;
        let mut server = TestServer {
            addr,
            http_addr,
            clock,
            db: Db::connect_lazy(backend, &db_url),
            db_url,
            backend,
            master_key,
            hs256_secret,
            channel: endpoint(addr).connect_lazy(),
            stop: Some(stop),
            handle: Some(handle),
            storage: Some(storage),
        };
        server.wait_serving().await;
        server
    }

    /// Stops the server gracefully and starts it again on the same database, with the same signing
    /// keys and clock, under `opts` (e.g. other argon2 costs). The address changes; clients made from
    /// [`TestServer::channel`] afterwards reach the new server.
    pub async fn restart_with(&mut self, opts: Options) {
        self.trigger_shutdown();
        self.join().await.expect("server stopped cleanly");
        let data_dir = match &self.storage {
            Some(Storage::Sqlite(dir)) => Some(dir.path().to_owned()),
            _ => None,
        };
        let reuse = (self.master_key.clone(), self.hs256_secret.clone());
        let (args, _, _) = opts.args(&self.db_url, data_dir.as_deref(), Some(reuse));
        let Spawned {
            addr,
            http_addr,
            stop,
            handle,
        } = spawn_server(&args, &self.clock).await;
        self.addr = addr;
        self.http_addr = http_addr;
        self.channel = endpoint(addr).connect_lazy();
        self.stop = Some(stop);
        self.handle = Some(handle);
        self.wait_serving().await;
    }

    /// Starts a second replica of this server: the same database and keys (master key or HS256
    /// secret) and the same clock (advancing one advances both), under `opts`. Its shutdown leaves
    /// the database to this server.
    pub async fn start_replica(&self, opts: Options) -> Self {
        let data_dir = match &self.storage {
            Some(Storage::Sqlite(dir)) => Some(dir.path().to_owned()),
            _ => None,
        };
        let reuse = (self.master_key.clone(), self.hs256_secret.clone());
        let (args, master_key, hs256_secret) =
            opts.args(&self.db_url, data_dir.as_deref(), Some(reuse));
        let Spawned {
            addr,
            http_addr,
            stop,
            handle,
        } = spawn_server(&args, &self.clock).await;
        let mut server = TestServer {
            addr,
            http_addr,
            clock: self.clock.clone(),
            db: Db::connect_lazy(self.backend, &self.db_url),
            db_url: self.db_url.clone(),
            backend: self.backend,
            master_key,
            hs256_secret,
            channel: endpoint(addr).connect_lazy(),
            stop: Some(stop),
            handle: Some(handle),
            storage: None,
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
        endpoint(self.addr).connect().await.expect("connect")
    }

    /// Tries to open a new connection.
    pub async fn new_channel_result(&self) -> Result<Channel, tonic::transport::Error> {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(2))
            .connect()
            .await
    }

    /// The server's "now".
    pub fn now(&self) -> i64 {
        self.clock.now()
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

/// A running server's parts: its gRPC address, its side port's address, its stop signal and its
/// task.
struct Spawned {
    addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<Result<(), auth_server::server::ServeError>>,
}

/// Starts `serve` with `args` (ports `127.0.0.1:0`) under `clock`.
async fn spawn_server(args: &[String], clock: &ManualClock) -> Spawned {
    let settings = parse_config(args).validate().expect("valid test settings");
    let listeners = auth_server::server::Listeners::bind(&settings)
        .await
        .expect("bind the test server's ports");
    let addr = listeners.grpc.local_addr().expect("local addr");
    let http_addr = listeners
        .http
        .as_ref()
        .map(|l| l.local_addr().expect("side port address"));
    let (stop, stop_rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(auth_server::server::serve_on(
        settings,
        listeners,
        async move {
            let _ = stop_rx.await;
        },
        Arc::new(clock.clone()),
    ));
    Spawned {
        addr,
        http_addr,
        stop,
        handle,
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
