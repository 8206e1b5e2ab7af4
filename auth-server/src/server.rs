//! Assembles and runs the server: storage, keys, services, health, reflection, background tasks and
//! graceful shutdown.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use auth_interceptor::cache::TokenCache;
use auth_interceptor::{Verifier, VerifierConfig};
use auth_proto::v1::admin_service_server::AdminServiceServer;
use auth_proto::v1::auth_service_server::AuthServiceServer;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::clock::{Clock, SystemClock};
use crate::config::{Database, MasterKeySource, Settings};
use crate::error::AuthError;
use crate::keys::master::MasterKey;
use crate::keys::{KeyManager, SigningMode};
use crate::password::PasswordHasher;
use crate::service::admin::{ADMIN_ROLE, AdminServiceImpl};
use crate::service::auth::AuthServiceImpl;
use crate::state::{AppState, SessionPolicy};
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};
use crate::token::access::AccessTokenIssuer;

/// Largest request message the services accept (a login is well under 2 KiB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Largest header list accepted (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE).
pub const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// How often the database is probed for the health status.
const HEALTH_PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How often expired sessions and retired keys are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(600);
/// The gRPC service names reported by the health service.
pub const SERVICE_NAMES: [&str; 3] = ["", "auth.v1.AuthService", "auth.v1.AdminService"];

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Storage could not be opened or migrated.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// Keys, bootstrap or hasher setup failed.
    #[error("{0}")]
    Setup(#[from] AuthError),
    /// A configuration problem found at startup (one line: setting and reason).
    #[error("{0}")]
    Config(String),
    /// Socket or file I/O.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The gRPC transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Reflection descriptors could not be loaded.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Opens the configured database (creating the zero-config SQLite directory if needed).
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, ServeError> {
    Ok(match &settings.database {
        Database::Postgres(url) => {
            Arc::new(PgStore::connect(url, settings.config.db_max_connections).await?)
        }
        Database::Sqlite(url) => {
            if settings.config.database_url.is_none() {
                create_private_dir(&settings.config.data_dir)?;
            }
            Arc::new(SqliteStore::connect(url).await?)
        }
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Reads the master key file, or creates it with a fresh key (zero-config mode only).
fn master_key_from_file(path: &Path) -> Result<MasterKey, ServeError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => zeroize::Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                create_private_dir(dir)?;
            }
            let key =
                MasterKey::generate_base64().map_err(|e| ServeError::Config(e.to_string()))?;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            std::io::Write::write_all(&mut opts.open(path)?, key.as_bytes())?;
            tracing::warn!(path = %path.display(),
                "generated a master key file for the zero-config SQLite setup; set AUTH_MASTER_KEY in production");
            key
        }
        Err(e) => return Err(e.into()),
    };
    MasterKey::from_base64(&text)
        .map_err(|e| ServeError::Config(format!("master key file {}: {e}", path.display())))
}

/// Builds the shared state: keys (generated on first start), hasher, verifier, bootstrap admin.
pub async fn build_state(
    settings: Settings,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
) -> Result<Arc<AppState>, ServeError> {
    let c = &settings.config;
    let mode = match (settings.hs256_secret, settings.master_key) {
        (Some(secret), _) => SigningMode::SharedSecret { secret },
        (None, Some(MasterKeySource::Configured(master))) => SigningMode::Asymmetric {
            alg: c.signing_alg.algorithm(),
            master,
        },
        (None, Some(MasterKeySource::File(path))) => SigningMode::Asymmetric {
            alg: c.signing_alg.algorithm(),
            master: master_key_from_file(&path)?,
        },
        (None, None) => return Err(ServeError::Config("AUTH_MASTER_KEY: missing".into())),
    };
    let retire_after = c.access_token_ttl + c.leeway as i64;
    let keys = KeyManager::start(mode, store.clone(), retire_after, clock.now()).await?;
    let hasher = tokio::task::spawn_blocking({
        let (hash, policy) = (settings.hash, settings.password);
        move || PasswordHasher::new(hash, policy)
    })
    .await
    .map_err(|e| AuthError::Internal(e.to_string()))??;
    let mut vc = VerifierConfig::new(c.issuer.clone(), c.audience.clone());
    vc.leeway = Duration::from_secs(c.leeway);
    vc.max_lifetime = Duration::from_secs(c.access_token_ttl as u64);
    let state = Arc::new(AppState {
        store,
        hasher,
        keys,
        verifier: Verifier::new(vc),
        issuer: AccessTokenIssuer {
            issuer: c.issuer.clone(),
            audience: c.audience.clone(),
            ttl: c.access_token_ttl,
        },
        sessions: SessionPolicy {
            idle_ttl: c.refresh_idle_ttl,
            absolute_ttl: c.refresh_absolute_ttl,
        },
        clock,
        throttle: crate::throttle::Throttle::new(settings.throttle),
        token_cache: TokenCache::default(),
        proxy_header: c
            .trusted_proxy_header
            .as_deref()
            .and_then(|h| http::HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok()),
    });
    if let (Some(user), Some(password)) = (&c.bootstrap_admin_username, &c.bootstrap_admin_password)
    {
        bootstrap_admin(&state, user, password).await?;
    }
    Ok(state)
}

async fn bootstrap_admin(
    state: &AppState,
    username: &str,
    password: &str,
) -> Result<(), ServeError> {
    if state.store.count_users().await? > 0 {
        return Ok(());
    }
    let user = state
        .create_user(username, password, &[ADMIN_ROLE.to_owned()])
        .await
        .map_err(|e| match e {
            AuthError::InvalidArgument(m) => {
                ServeError::Config(format!("AUTH_BOOTSTRAP_ADMIN_*: {m}"))
            }
            other => other.into(),
        })?;
    tracing::info!(target: "audit", event = "user.bootstrapped", user_id = %user.id, username = %user.username);
    Ok(())
}

/// Runs the server on `listener` until `shutdown` resolves, then reports NOT_SERVING, drains in-flight
/// calls (at most `shutdown_grace`) and returns.
pub async fn serve(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_with_clock(settings, listener, shutdown, Arc::new(SystemClock)).await
}

/// [`serve`] with an explicit clock (tests move time).
pub async fn serve_with_clock(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    clock: Arc<dyn Clock>,
) -> Result<(), ServeError> {
    let grace = Duration::from_secs(settings.config.shutdown_grace);
    let reload_every = Duration::from_secs(settings.config.key_reload_interval);
    let retention = Retention {
        audit: settings.config.audit_retention_days * 24 * 3600,
        throttle: settings.config.login_failure_window,
    };
    let tls = tls_config(&settings.config)?;
    let store = open_store(&settings).await?;
    if !settings.config.skip_migrations {
        store.migrate().await?;
    }
    let state = build_state(settings, store, clock).await?;

    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, ServingStatus::Serving).await;
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let auth_layer = crate::policy::layer(&state)
        .map_err(|e| ServeError::Config(format!("access policy: {e}")))?;
    let tasks = spawn_background(state.clone(), health.clone(), reload_every, retention);

    let auth = AuthServiceServer::new(AuthServiceImpl::new(state.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let admin = AdminServiceServer::new(AdminServiceImpl::new(state.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let addr = listener.local_addr()?;
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let health_on_stop = health.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: reporting NOT_SERVING and draining in-flight calls");
        set_health(&health_on_stop, ServingStatus::NotServing).await;
        let _ = stop_tx.send(());
    };

    tracing::info!(%addr, "auth-server listening");
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let server = builder
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        .layer(crate::codec_errors::CodecErrorLayer)
        .layer(auth_layer)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(auth)
        .add_service(admin)
        .serve_with_incoming_shutdown(incoming, signal);
    tokio::pin!(server);
    let result = tokio::select! {
        r = &mut server => r,
        _ = async { let _ = stop_rx.await; tokio::time::sleep(grace).await } => {
            tracing::warn!("shutdown grace period over: closing remaining connections");
            Ok(())
        }
    };
    for t in tasks {
        t.abort();
    }
    result?;
    tracing::info!("auth-server stopped");
    Ok(())
}

/// The TLS settings, read from the configured PEM files (`None`: plaintext).
fn tls_config(c: &crate::config::Config) -> Result<Option<ServerTlsConfig>, ServeError> {
    let (Some(cert), Some(key)) = (&c.tls_cert, &c.tls_key) else {
        return Ok(None);
    };
    let read = |setting: &str, path: &Path| {
        std::fs::read(path).map_err(|e| {
            ServeError::Config(format!("{setting}: cannot read {}: {e}", path.display()))
        })
    };
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(
        read("AUTH_TLS_CERT", cert)?,
        read("AUTH_TLS_KEY", key)?,
    ));
    if let Some(ca) = &c.tls_client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read("AUTH_TLS_CLIENT_CA", ca)?));
    }
    Ok(Some(tls))
}

/// Reflection over exactly the services this server registers (the descriptor set also holds the demo
/// service of the examples, which is not served here).
fn reflection() -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(auth_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    for name in [
        "auth.v1.AuthService",
        "auth.v1.AdminService",
        "grpc.health.v1.Health",
    ] {
        builder = builder.with_service_name(name);
    }
    builder
}

async fn set_health(health: &HealthReporter, status: ServingStatus) {
    for name in SERVICE_NAMES {
        health.set_service_status(name, status).await;
    }
}

/// How long housekeeping keeps rows, seconds.
#[derive(Debug, Clone, Copy)]
struct Retention {
    audit: i64,
    throttle: i64,
}

fn spawn_background(
    state: Arc<AppState>,
    health: HealthReporter,
    reload_every: Duration,
    retention: Retention,
) -> Vec<tokio::task::JoinHandle<()>> {
    let probe = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut healthy = true;
            let mut tick = tokio::time::interval(HEALTH_PROBE_INTERVAL);
            loop {
                tick.tick().await;
                let ok = matches!(
                    tokio::time::timeout(HEALTH_PROBE_INTERVAL, state.store.ping()).await,
                    Ok(Ok(()))
                );
                if ok != healthy {
                    healthy = ok;
                    if ok {
                        tracing::info!("database reachable again: SERVING");
                    } else {
                        tracing::error!("database unreachable: NOT_SERVING");
                    }
                    let status = if ok {
                        ServingStatus::Serving
                    } else {
                        ServingStatus::NotServing
                    };
                    set_health(&health, status).await;
                }
            }
        })
    };
    let reload = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(reload_every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = state.keys.reload(state.now()).await {
                    tracing::warn!(error = %e, "signing key reload failed; keeping the current keys");
                }
            }
        })
    };
    let purge = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_INTERVAL);
        loop {
            tick.tick().await;
            let now = state.now();
            let purged = async {
                Ok::<_, crate::store::StoreError>((
                    state.store.purge_expired(now).await?,
                    state
                        .store
                        .purge_login_throttle(now - retention.throttle, now)
                        .await?,
                    state.store.purge_audit(now - retention.audit).await?,
                ))
            };
            match purged.await {
                Ok((sessions, throttle, audit)) if sessions + throttle + audit > 0 => {
                    tracing::info!(sessions, throttle, audit, "purged expired rows")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purge failed"),
            }
        }
    });
    vec![probe, reload, purge]
}
