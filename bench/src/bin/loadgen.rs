//! `loadgen`: drives the auth server's RPCs and the demo greeter (with and without the auth layer) and
//! reports calls/s, latency percentiles and the server's memory.
//!
//! ```text
//! loadgen greeter --alg EdDSA --protection layer            # spawns the greeter, measures WhoAmI
//! loadgen auth --scenario validate --db postgres            # spawns auth-server on a fresh database
//! loadgen auth --scenario login --rate 400 --concurrency 1024   # open loop: 400 logins/s offered
//! loadgen auth --scenario issue-service-token --db postgres # a service account's client secret
//! loadgen auth --scenario health --db postgres              # grpc.health.v1 Check: the baseline
//! loadgen argon2-limit                                      # cores ÷ time per argon2id hash
//! loadgen fanout --streams 1000 --connections 20 --revocations 200   # WatchRevocations fan-out
//! loadgen http --base http://127.0.0.1:8000 --scenario verify   # the Flask + PyJWT seed stack
//! loadgen table results.jsonl                               # Markdown table of the JSON lines
//! ```
//! Common flags: `--connections 4 --concurrency 64 --duration 10 --warmup 2 [--rate R]
//! [--label L] [--json-out FILE]`; `--addr` targets a running server instead of starting one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use auth_bench::greeter::Protection;
use auth_bench::http1::{H1Conn, H1Request};
use auth_bench::load::{CallFn, CallResult, LoadOpts};
use auth_bench::procs::{Server, free_addr, rss_sum};
use auth_bench::report::{Report, markdown_table};
use auth_bench::tokens::{BenchKey, KeySpec, parse_alg};
use auth_proto::demo::WhoAmIRequest;
use auth_proto::demo::greeter_service_client::GreeterServiceClient;
use auth_proto::v1::auth_service_client::AuthServiceClient;
use auth_proto::v1::{LoginRequest, RefreshRequest, ValidateRequest};
use base64::Engine;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Load generator for auth-server and the auth layer"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Measure WhoAmI of the demo greeter (started here unless --addr is given).
    Greeter(GreeterArgs),
    /// Measure Login, Refresh, Validate, IssueServiceToken or Health/Check of auth-server (started here unless --addr is given).
    Auth(AuthArgs),
    /// Measure the argon2id limit of this machine: cores ÷ time per hash.
    Argon2Limit(Argon2Args),
    /// Measure WatchRevocations fan-out: many streams on one started auth-server, then revocations.
    Fanout(FanoutArgs),
    /// Measure an HTTP/1.1 JSON service (the Flask + PyJWT seed stack).
    Http(HttpArgs),
    /// Render JSON-lines results as a Markdown table.
    Table {
        /// The JSON-lines file written through --json-out.
        file: PathBuf,
    },
    /// (Internal) serve the demo greeter.
    GreeterServer {
        /// Listen address.
        #[arg(long)]
        listen: SocketAddr,
        /// Protection.
        #[arg(long, value_enum)]
        protection: Protection,
        /// KeySpec JSON file.
        #[arg(long)]
        key_file: PathBuf,
    },
}

#[derive(Args, Clone)]
struct Common {
    /// HTTP/2 connections (calls are spread over them).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Calls in flight (closed loop), or the bound on calls in flight with --rate.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Unmeasured seconds of load before the measurement.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Open loop: calls started per second (latency counted from the intended start).
    #[arg(long)]
    rate: Option<f64>,
    /// Deadline of one call, seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Row label.
    #[arg(long)]
    label: Option<String>,
    /// Free-form note for the table.
    #[arg(long, default_value = "")]
    note: String,
    /// Append the result as a JSON line to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// With --addr: pids of the server's processes, for its memory figures.
    #[arg(long, value_delimiter = ',')]
    server_pids: Vec<u32>,
}

impl Common {
    fn load(&self) -> LoadOpts {
        LoadOpts {
            concurrency: self.concurrency.max(1),
            duration: Duration::from_secs_f64(self.duration),
            warmup: Duration::from_secs_f64(self.warmup),
            rate: self.rate,
            call_timeout: Duration::from_secs_f64(self.timeout),
        }
    }
}

#[derive(Args)]
struct GreeterArgs {
    /// Token algorithm.
    #[arg(long, default_value = "EdDSA")]
    alg: String,
    /// none | layer (default cache: warm) | layer-no-cache (every call verifies: cold).
    #[arg(long, value_enum, default_value = "layer")]
    protection: Protection,
    /// Target a running greeter instead (then --token is required).
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Bearer token for --addr.
    #[arg(long)]
    token: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Login,
    Refresh,
    Validate,
    /// IssueServiceToken with a client secret (a service account created first through the admin
    /// API).
    IssueServiceToken,
    /// grpc.health.v1.Health/Check: the server's floor, to compare the others with.
    Health,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Db {
    Sqlite,
    Postgres,
}

#[derive(Args)]
struct AuthArgs {
    /// Which RPC.
    #[arg(long, value_enum)]
    scenario: Scenario,
    #[command(flatten)]
    server: ServerArgs,
    /// Target a running auth-server instead (then --username/--password are required).
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Username for --addr.
    #[arg(long)]
    username: Option<String>,
    /// Password for --addr.
    #[arg(long)]
    password: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// How to start an auth-server.
#[derive(Args)]
struct ServerArgs {
    /// Database of the started server.
    #[arg(long, value_enum, default_value = "postgres")]
    db: Db,
    /// PostgreSQL server URL used to create (and drop) a throw-away database.
    #[arg(
        long,
        env = "BENCH_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pg_url: String,
    /// Signing algorithm of the started server.
    #[arg(long, default_value = "EdDSA")]
    alg: String,
    /// The auth-server binary (default: next to this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Extra environment for the started server, `KEY=VALUE` (repeatable).
    #[arg(long = "server-env")]
    server_env: Vec<String>,
}

#[derive(Args)]
struct FanoutArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Concurrent WatchRevocations streams.
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// HTTP/2 connections the streams are spread over (the server allows
    /// AUTH_MAX_CONCURRENT_STREAMS, 100 by default, per connection).
    #[arg(long, default_value_t = 20)]
    connections: usize,
    /// Revocations (logouts) issued one after the other.
    #[arg(long, default_value_t = 200)]
    revocations: usize,
    /// Milliseconds between two revocations.
    #[arg(long, default_value_t = 20)]
    gap_ms: u64,
    /// Label of the table rows.
    #[arg(long, default_value = "fan-out")]
    label: String,
}

#[derive(Args)]
struct Argon2Args {
    /// Memory cost, KiB.
    #[arg(long, default_value_t = 19456)]
    memory_kib: u32,
    /// Iterations.
    #[arg(long, default_value_t = 2)]
    iterations: u32,
    /// Lanes.
    #[arg(long, default_value_t = 1)]
    parallelism: u32,
    /// Hashes timed.
    #[arg(long, default_value_t = 20)]
    samples: u32,
    /// Append the result as a JSON line to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum HttpScenario {
    /// GET /hello: no auth.
    Hello,
    /// GET /whoami with a bearer token from POST /login: PyJWT verifies on every call.
    Verify,
    /// POST /login: argon2id check and token issue.
    Login,
}

#[derive(Args)]
struct HttpArgs {
    /// Base URL, e.g. http://127.0.0.1:8000.
    #[arg(long)]
    base: String,
    /// What to call.
    #[arg(long, value_enum)]
    scenario: HttpScenario,
    /// Login username.
    #[arg(long, default_value = "bench")]
    username: String,
    /// Login password.
    #[arg(long, default_value = "bench-password-1")]
    password: String,
    #[command(flatten)]
    common: Common,
}

fn status_kind(s: &tonic::Status) -> String {
    format!("{:?}", s.code())
}

fn finish(mut r: Report, common: &Common) -> anyhow::Result<()> {
    if !common.note.is_empty() {
        r.note = common.note.clone();
    }
    println!("{}", r.line());
    if let Some(p) = &common.json_out {
        r.append_json(p)?;
    }
    Ok(())
}

/// Channels to `addr`.
async fn channels(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<Channel>> {
    let mut out = Vec::new();
    for _ in 0..n.max(1) {
        let ch = Endpoint::from_shared(format!("http://{addr}"))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        out.push(ch);
    }
    Ok(out)
}

fn scratch_dir(tag: &str) -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("auth-bench-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

async fn greeter(args: GreeterArgs) -> anyhow::Result<()> {
    let alg = parse_alg(&args.alg)?;
    let c = &args.common;
    let mut server = None;
    let mut pids = c.server_pids.clone();
    let (addr, tokens) = match args.addr {
        Some(addr) => {
            let t = args.token.clone().context("--addr needs --token")?;
            (addr, vec![t])
        }
        None => {
            let key = BenchKey::generate(alg)?;
            let dir = scratch_dir(&format!("greeter-{}", args.alg))?;
            let key_file = dir.join("keys.json");
            std::fs::write(&key_file, serde_json::to_string(&key.spec)?)?;
            let addr = free_addr()?;
            let mut cmd = Command::new(std::env::current_exe()?);
            cmd.arg("greeter-server")
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--protection")
                .arg(protection_name(args.protection))
                .arg("--key-file")
                .arg(&key_file);
            let s = Server::spawn(cmd, addr, &dir.join("server.log"))?;
            pids.push(s.pid());
            server = Some((s, dir));
            // One token per connection: each client holds its own token, as in production.
            let tokens = (0..c.connections.max(1))
                .map(|i| key.token(&format!("client-{i}"), 3600))
                .collect::<anyhow::Result<Vec<_>>>()?;
            (addr, tokens)
        }
    };
    let chans = channels(addr, c.connections).await?;
    let clients: Arc<Vec<(GreeterServiceClient<Channel>, MetadataValue<_>)>> = Arc::new(
        chans
            .into_iter()
            .enumerate()
            .map(|(i, ch)| {
                let t = &tokens[i % tokens.len()];
                let v: MetadataValue<tonic::metadata::Ascii> = format!("Bearer {t}").parse()?;
                Ok((GreeterServiceClient::new(ch), v))
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
    );
    // Check once that the call succeeds, so an auth misconfiguration is not measured as speed.
    {
        let (client, v) = &clients[0];
        let mut req = tonic::Request::new(WhoAmIRequest {});
        req.metadata_mut().insert("authorization", v.clone());
        let who = client.clone().who_am_i(req).await?.into_inner();
        if args.protection != Protection::None && who.subject == "anonymous" {
            bail!("the layer did not authenticate the call");
        }
    }
    let call: CallFn = Arc::new(move |worker| {
        let (client, v) = &clients[worker % clients.len()];
        let mut client = client.clone();
        let mut req = tonic::Request::new(WhoAmIRequest {});
        req.metadata_mut().insert("authorization", v.clone());
        Box::pin(async move {
            client
                .who_am_i(req)
                .await
                .map(|_| ())
                .map_err(|s| status_kind(&s))
        })
    });
    let label = c.label.clone().unwrap_or_else(|| {
        format!(
            "greeter WhoAmI {} {}",
            protection_name(args.protection),
            args.alg
        )
    });
    let idle = rss_sum(&pids);
    let mut report = auth_bench::load::run(&label, &c.load(), call).await;
    report.idle_rss_mib = idle.0;
    report.peak_rss_mib = rss_sum(&pids).1;
    if let Some((s, dir)) = server {
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    }
    finish(report, c)
}

fn protection_name(p: Protection) -> &'static str {
    match p {
        Protection::None => "none",
        Protection::Layer => "layer",
        Protection::LayerNoCache => "layer-no-cache",
    }
}

/// A started auth-server and what it needs cleaning up.
struct AuthServer {
    server: Server,
    dir: PathBuf,
    pg: Option<(String, String)>,
}

async fn start_auth_server(args: &ServerArgs, password: &str) -> anyhow::Result<AuthServer> {
    let bin = match &args.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("exe dir")?
            .join("auth-server"),
    };
    if !bin.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p auth-server` or pass --server-bin",
            bin.display()
        );
    }
    let tag = format!(
        "auth-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    let dir = scratch_dir(&tag)?;
    let mut master = [0u8; 32];
    aws_lc_rs::rand::fill(&mut master).map_err(|_| anyhow::anyhow!("rng"))?;
    let addr = free_addr()?;
    let mut cmd = Command::new(bin);
    cmd.env("AUTH_GRPC_ADDR", addr.to_string())
        .env(
            "AUTH_MASTER_KEY",
            base64::engine::general_purpose::STANDARD.encode(master),
        )
        .env("AUTH_BOOTSTRAP_ADMIN_USERNAME", "bench")
        .env("AUTH_BOOTSTRAP_ADMIN_PASSWORD", password)
        .env("AUTH_SIGNING_ALG", &args.alg)
        .env("AUTH_DATA_DIR", dir.join("data"))
        // No HTTP side port (a --server-env may set one): 127.0.0.1:8080 may be taken.
        .env("AUTH_HTTP_ADDR", "");
    if args.alg == "HS256" {
        let mut s = [0u8; 32];
        aws_lc_rs::rand::fill(&mut s).map_err(|_| anyhow::anyhow!("rng"))?;
        cmd.env(
            "AUTH_HS256_SECRET",
            base64::engine::general_purpose::STANDARD.encode(s),
        );
    }
    let mut pg = None;
    if args.db == Db::Postgres {
        use sqlx::Connection;
        let name = format!(
            "auth_bench_{}_{}",
            std::process::id(),
            tag.replace('-', "_")
        );
        let mut conn = sqlx::PgConnection::connect(&args.pg_url)
            .await
            .context("connecting to PostgreSQL (--pg-url)")?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        cmd.env("AUTH_DATABASE_URL", url_with_db(&args.pg_url, &name));
        pg = Some((args.pg_url.clone(), name));
    }
    for kv in &args.server_env {
        let (k, v) = kv.split_once('=').context("--server-env KEY=VALUE")?;
        cmd.env(k, v);
    }
    let server = Server::spawn(cmd, addr, &dir.join("server.log"))?;
    Ok(AuthServer { server, dir, pg })
}

fn url_with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{root}/{db}{query}")
}

async fn stop_auth_server(s: AuthServer) {
    drop(s.server);
    if let Some((url, name)) = s.pg {
        use sqlx::Connection;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await;
        }
    }
    let _ = std::fs::remove_dir_all(s.dir);
}

/// The service account the IssueServiceToken scenario authenticates as.
const BENCH_CLIENT: &str = "bench-service";
/// The audience it asks tokens for.
const BENCH_AUDIENCE: &str = "bench.v1.Target";

/// Creates the bench service account (against a given server that has it already: rotates its
/// secret, without overlap); returns its client secret.
async fn create_bench_service_account(
    addr: SocketAddr,
    admin_token: &str,
) -> anyhow::Result<String> {
    use auth_proto::v1::admin_service_client::AdminServiceClient;
    let channel = channels(addr, 1).await?.remove(0);
    let bearer: MetadataValue<_> = format!("Bearer {admin_token}").parse()?;
    let mut admin =
        AdminServiceClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", bearer.clone());
            Ok(req)
        });
    let created = admin
        .create_service_account(auth_proto::v1::CreateServiceAccountRequest {
            name: BENCH_CLIENT.into(),
            roles: vec!["bench:call".into()],
            allowed_audiences: vec![BENCH_AUDIENCE.into()],
            description: "loadgen".into(),
        })
        .await;
    match created {
        Ok(r) => Ok(r.into_inner().client_secret),
        Err(s) if s.code() == tonic::Code::AlreadyExists => {
            let account = admin
                .get_service_account(auth_proto::v1::GetServiceAccountRequest {
                    name: BENCH_CLIENT.into(),
                    ..Default::default()
                })
                .await?
                .into_inner()
                .service_account
                .context("no account in the answer")?;
            let rotated = admin
                .rotate_service_account_secret(auth_proto::v1::RotateServiceAccountSecretRequest {
                    service_account_id: account.id,
                    overlap: None,
                })
                .await?;
            Ok(rotated.into_inner().client_secret)
        }
        Err(s) => bail!("creating the bench service account: {s}"),
    }
}

async fn login_retrying(
    client: &mut AuthServiceClient<Channel>,
    username: &str,
    password: &str,
) -> anyhow::Result<auth_proto::v1::LoginResponse> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client
            .login(LoginRequest {
                username: username.into(),
                password: password.into(),
            })
            .await
        {
            Ok(r) => return Ok(r.into_inner()),
            Err(s) if s.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(s) => bail!("login failed: {s}"),
        }
    }
}

async fn auth(args: AuthArgs) -> anyhow::Result<()> {
    let c = &args.common;
    let mut pids = c.server_pids.clone();
    let mut started = None;
    let (addr, username, password) = match args.addr {
        Some(a) => (
            a,
            args.username.clone().context("--addr needs --username")?,
            args.password.clone().context("--addr needs --password")?,
        ),
        None => {
            let password = format!("bench-{}", uuid::Uuid::new_v4().simple());
            let s = start_auth_server(&args.server, &password).await?;
            pids.push(s.server.pid());
            let addr = s.server.addr;
            started = Some(s);
            (addr, "bench".to_owned(), password)
        }
    };
    let result = auth_load(&args, addr, &username, &password, &pids).await;
    if let Some(s) = started {
        stop_auth_server(s).await;
    }
    finish(result?, c)
}

async fn auth_load(
    args: &AuthArgs,
    addr: SocketAddr,
    username: &str,
    password: &str,
    pids: &[u32],
) -> anyhow::Result<Report> {
    let c = &args.common;
    let clients: Arc<Vec<AuthServiceClient<Channel>>> = Arc::new(
        channels(addr, c.connections)
            .await?
            .into_iter()
            .map(AuthServiceClient::new)
            .collect(),
    );
    let mut first = clients[0].clone();
    let idle = rss_sum(pids);
    let scenario_name;
    let call: CallFn = match args.scenario {
        Scenario::Login => {
            scenario_name = "Login";
            let (u, p) = (username.to_owned(), password.to_owned());
            Arc::new(move |worker| {
                let mut client = clients[worker % clients.len()].clone();
                let req = LoginRequest {
                    username: u.clone(),
                    password: p.clone(),
                };
                Box::pin(async move {
                    client
                        .login(req)
                        .await
                        .map(|_| ())
                        .map_err(|s| status_kind(&s))
                })
            })
        }
        Scenario::Validate => {
            scenario_name = "Validate";
            let token = login_retrying(&mut first, username, password)
                .await?
                .access_token;
            Arc::new(move |worker| {
                let mut client = clients[worker % clients.len()].clone();
                let req = ValidateRequest {
                    access_token: token.clone(),
                    ..Default::default()
                };
                Box::pin(async move {
                    match client.validate(req).await {
                        Ok(r) if r.get_ref().valid => Ok(()),
                        Ok(_) => Err("valid=false".into()),
                        Err(s) => Err(status_kind(&s)),
                    }
                })
            })
        }
        Scenario::Refresh => {
            scenario_name = "Refresh";
            // One session per worker, each rotating its own refresh token.
            let workers = if c.rate.is_some() {
                c.concurrency.min(256)
            } else {
                c.concurrency
            };
            let mut chains = Vec::with_capacity(workers);
            for _ in 0..workers {
                let rt = login_retrying(&mut first, username, password)
                    .await?
                    .refresh_token;
                chains.push(tokio::sync::Mutex::new(rt));
            }
            let chains = Arc::new(chains);
            Arc::new(move |worker| {
                let mut client = clients[worker % clients.len()].clone();
                let chains = chains.clone();
                Box::pin(async move {
                    let mut rt = chains[worker % chains.len()].lock().await;
                    let req = RefreshRequest {
                        refresh_token: rt.clone(),
                    };
                    match client.refresh(req).await {
                        Ok(r) => {
                            *rt = r.into_inner().refresh_token;
                            Ok(())
                        }
                        Err(s) => Err(status_kind(&s)),
                    }
                }) as auth_bench::load::CallFuture
            })
        }
        Scenario::IssueServiceToken => {
            scenario_name = "IssueServiceToken";
            let admin = login_retrying(&mut first, username, password)
                .await?
                .access_token;
            let secret = create_bench_service_account(addr, &admin).await?;
            Arc::new(move |worker| {
                let mut client = clients[worker % clients.len()].clone();
                let req = auth_proto::v1::IssueServiceTokenRequest {
                    client_id: BENCH_CLIENT.into(),
                    credential: Some(
                        auth_proto::v1::issue_service_token_request::Credential::ClientSecret(
                            secret.clone(),
                        ),
                    ),
                    audience: BENCH_AUDIENCE.into(),
                    scopes: vec![],
                };
                Box::pin(async move {
                    client
                        .issue_service_token(req)
                        .await
                        .map(|_| ())
                        .map_err(|s| status_kind(&s))
                })
            })
        }
        Scenario::Health => {
            scenario_name = "Health/Check";
            let health: Arc<Vec<tonic_health::pb::health_client::HealthClient<Channel>>> = Arc::new(
                channels(addr, c.connections)
                    .await?
                    .into_iter()
                    .map(tonic_health::pb::health_client::HealthClient::new)
                    .collect(),
            );
            Arc::new(move |worker| {
                let mut client = health[worker % health.len()].clone();
                Box::pin(async move {
                    client
                        .check(tonic_health::pb::HealthCheckRequest::default())
                        .await
                        .map(|_| ())
                        .map_err(|s| status_kind(&s))
                })
            })
        }
    };
    let label = c.label.clone().unwrap_or_else(|| {
        let db = match (args.addr, args.server.db) {
            (Some(_), _) => "given server",
            (None, Db::Sqlite) => "SQLite",
            (None, Db::Postgres) => "PostgreSQL",
        };
        format!("auth-server {scenario_name} ({db}, {})", args.server.alg)
    });
    let mut report = auth_bench::load::run(&label, &c.load(), call).await;
    report.idle_rss_mib = idle.0;
    report.peak_rss_mib = rss_sum(pids).1;
    Ok(report)
}

async fn fanout(args: FanoutArgs) -> anyhow::Result<()> {
    let password = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let started = start_auth_server(&args.server, &password).await?;
    let opts = auth_bench::fanout::FanoutOpts {
        streams: args.streams,
        connections: args.connections,
        revocations: args.revocations,
        gap: Duration::from_millis(args.gap_ms),
        timeout: Duration::from_secs(10),
    };
    let result = auth_bench::fanout::run(started.server.addr, "bench", &password, &opts).await;
    let rss = rss_sum(&[started.server.pid()]);
    stop_auth_server(started).await;
    let report = result?;
    println!(
        "{} streams over {} connections open (snapshots received) in {:?}; server RSS {:.1} MiB \
         (peak {:.1} MiB)",
        report.streams, args.connections, report.open_time, rss.0, rss.1
    );
    println!("{}", report.markdown(&args.label));
    Ok(())
}

fn argon2_limit(a: Argon2Args) -> anyhow::Result<()> {
    use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
    let params = argon2::Params::new(a.memory_kib, a.iterations, a.parallelism, Some(32))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| anyhow::anyhow!("rng"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("{e}"))?;
    let phc = argon
        .hash_password(b"correct horse battery staple", &salt)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_string();
    let parsed = PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut times = Vec::new();
    for _ in 0..a.samples.max(3) {
        let t = Instant::now();
        argon2::Argon2::default()
            .verify_password(b"correct horse battery staple", &parsed)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|x, y| x.total_cmp(y));
    let median = times[times.len() / 2];
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let limit = cores as f64 / median;
    let r = Report {
        label: format!(
            "argon2id limit (m={} KiB, t={}, p={}): {cores} cores ÷ {:.1} ms",
            a.memory_kib,
            a.iterations,
            a.parallelism,
            median * 1000.0
        ),
        ok_per_sec: limit,
        p50_ms: median * 1000.0,
        p90_ms: times[times.len() * 9 / 10] * 1000.0,
        p99_ms: times[times.len() - 1] * 1000.0,
        max_ms: times[times.len() - 1] * 1000.0,
        load: "1 thread, no server".into(),
        seconds: times.iter().sum(),
        ..Report::default()
    };
    println!("{}", r.line());
    if let Some(p) = &a.json_out {
        r.append_json(p)?;
    }
    Ok(())
}

async fn http(args: HttpArgs) -> anyhow::Result<()> {
    let c = &args.common;
    let url: hyper::Uri = args.base.parse()?;
    let authority = url.authority().context("--base needs host:port")?;
    let addr: SocketAddr = tokio::net::lookup_host(authority.as_str())
        .await?
        .next()
        .context("resolving --base")?;
    let login_body = bytes::Bytes::from(serde_json::to_vec(&serde_json::json!({
        "username": args.username, "password": args.password
    }))?);
    let login = H1Request {
        method: hyper::Method::POST,
        path: "/login".into(),
        headers: vec![],
        body: login_body,
    };
    let req = match args.scenario {
        HttpScenario::Hello => H1Request {
            method: hyper::Method::GET,
            path: "/hello".into(),
            headers: vec![],
            body: bytes::Bytes::new(),
        },
        HttpScenario::Login => login.clone(),
        HttpScenario::Verify => {
            let (status, body) = H1Conn::new(addr).send(&login).await?;
            if status != 200 {
                bail!("login to {} failed: HTTP {status}", args.base);
            }
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            let token = v["access_token"].as_str().context("access_token")?;
            H1Request {
                method: hyper::Method::GET,
                path: "/whoami".into(),
                headers: vec![("authorization".into(), format!("Bearer {token}"))],
                body: bytes::Bytes::new(),
            }
        }
    };
    let conns: Arc<Vec<tokio::sync::Mutex<H1Conn>>> = Arc::new(
        (0..c.concurrency.max(1))
            .map(|_| tokio::sync::Mutex::new(H1Conn::new(addr)))
            .collect(),
    );
    let req = Arc::new(req);
    let call: CallFn = Arc::new(move |worker| {
        let (conns, req) = (conns.clone(), req.clone());
        Box::pin(async move {
            let mut conn = conns[worker % conns.len()].lock().await;
            let r: CallResult = match conn.send(&req).await {
                Ok((200, _)) => Ok(()),
                Ok((s, _)) => Err(format!("HTTP {s}")),
                Err(_) => Err("transport".into()),
            };
            r
        })
    });
    let label = c.label.clone().unwrap_or_else(|| {
        format!(
            "seed stack {}",
            match args.scenario {
                HttpScenario::Hello => "GET /hello",
                HttpScenario::Verify => "GET /whoami",
                HttpScenario::Login => "POST /login",
            }
        )
    });
    let pids = &c.server_pids;
    let idle = rss_sum(pids);
    let mut report = auth_bench::load::run(&label, &c.load(), call).await;
    report.idle_rss_mib = idle.0;
    report.peak_rss_mib = rss_sum(pids).1;
    finish(report, c)
}

async fn greeter_server(
    listen: SocketAddr,
    protection: Protection,
    key_file: PathBuf,
) -> anyhow::Result<()> {
    let spec: KeySpec = serde_json::from_str(&std::fs::read_to_string(key_file)?)?;
    auth_bench::greeter::serve(listen, spec.key_set()?, protection).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Greeter(a) => greeter(a).await,
        Cmd::Auth(a) => auth(a).await,
        Cmd::Argon2Limit(a) => argon2_limit(a),
        Cmd::Fanout(a) => fanout(a).await,
        Cmd::Http(a) => http(a).await,
        Cmd::Table { file } => {
            print!("{}", markdown_table(&std::fs::read_to_string(file)?)?);
            Ok(())
        }
        Cmd::GreeterServer {
            listen,
            protection,
            key_file,
        } => greeter_server(listen, protection, key_file).await,
    }
}
