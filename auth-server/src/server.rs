//! Runs the server: the gRPC services with health and reflection behind the access-policy layer, and
//! the HTTP side port, until shutdown, then NOT_SERVING and a bounded drain.

use std::future::Future;
use std::sync::Arc;

use auth_proto::v1::admin_service_server::AdminServiceServer;
use auth_proto::v1::auth_service_server::AuthServiceServer;
use tokio::net::TcpListener;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::availability::RequireDatabaseLayer;
use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, PublicUrl, Settings};
use crate::error::AuthError;
use crate::housekeeping::{Retention, spawn_background};
use crate::http::SidePort;
use crate::http::metrics::{Metrics, methods};
use crate::service::admin::AdminServiceImpl;
use crate::service::auth::AuthServiceImpl;
use crate::shutdown::EndOnShutdown;
use crate::startup::{StateSettings, bootstrap_admin, build_state, open_store};
use crate::store::StoreError;

/// Largest request message the services accept (a login is well under 2 KiB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Largest header list accepted (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE).
pub const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// The gRPC service names reported by the health service.
pub const SERVICE_NAMES: [&str; 3] = ["", "auth.v1.AuthService", "auth.v1.AdminService"];
/// Every gRPC service the server serves (the ones whose methods get their own metric labels).
const SERVED_SERVICES: [&str; 5] = [
    "auth.v1.AuthService",
    "auth.v1.AdminService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

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
    /// A setting that could not be used (e.g. an unreadable TLS file).
    #[error("{0}")]
    Setting(#[from] ConfigError),
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

/// The sockets the server answers on: gRPC, and the HTTP side port unless it is off.
#[derive(Debug)]
pub struct Listeners {
    /// The gRPC port.
    pub grpc: TcpListener,
    /// The HTTP side port.
    pub http: Option<TcpListener>,
}

impl Listeners {
    /// Binds `AUTH_GRPC_ADDR` and `AUTH_HTTP_ADDR` (unless empty); the error names the setting.
    pub async fn bind(settings: &Settings) -> Result<Self, ServeError> {
        let grpc = bind("AUTH_GRPC_ADDR", settings.listen.addr).await?;
        let http = match settings.http.addr {
            Some(addr) => Some(bind("AUTH_HTTP_ADDR", addr).await?),
            None => None,
        };
        Ok(Self { grpc, http })
    }
}

async fn bind(setting: &str, addr: std::net::SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Config(format!("{setting}: cannot listen on {addr}: {e}")))
}

/// The side port's socket: given, or bound from `AUTH_HTTP_ADDR` once the server is set up.
enum SideSocket {
    Given(Option<TcpListener>),
    FromSettings,
}

/// Runs the server on the gRPC `listener` (and the side port on `AUTH_HTTP_ADDR`) until `shutdown`
/// resolves, then reports NOT_SERVING, drains in-flight calls (at most `shutdown_grace`) and
/// returns.
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
    run(
        settings,
        listener,
        SideSocket::FromSettings,
        shutdown,
        clock,
    )
    .await
}

/// [`serve_with_clock`] on sockets bound beforehand ([`Listeners::bind`]).
pub async fn serve_on(
    settings: Settings,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
    clock: Arc<dyn Clock>,
) -> Result<(), ServeError> {
    let Listeners { grpc, http } = listeners;
    run(settings, grpc, SideSocket::Given(http), shutdown, clock).await
}

async fn run(
    settings: Settings,
    listener: TcpListener,
    side_socket: SideSocket,
    shutdown: impl Future<Output = ()> + Send + 'static,
    clock: Arc<dyn Clock>,
) -> Result<(), ServeError> {
    let Settings {
        listen,
        http,
        database,
        keys,
        tokens,
        passwords,
        throttle,
        operations,
        extauthz,
        revocation,
    } = settings;
    let retention = Retention {
        audit: operations.audit_retention,
        throttle: throttle.policy.window,
    };
    if listen.tls.is_none() && !listen.addr.ip().is_loopback() && throttle.proxy_header.is_none() {
        // Behind a sidecar or NAT every client shares the proxy's address: per-source throttling
        // then treats all clients as one.
        tracing::warn!(
            addr = %listen.addr,
            "plaintext on a non-loopback address without AUTH_TRUSTED_PROXY_HEADER: login throttling \
             sees the proxy's address, not the clients'"
        );
    }
    let tls = listen.tls.as_ref().map(|t| t.load()).transpose()?;
    let methods = methods::served(&DESCRIPTOR_SETS, &SERVED_SERVICES)
        .map_err(|e| AuthError::Internal(e.to_string()))?;
    let metrics = Metrics::new(http.grpc_metrics.then_some(methods.as_slice()));
    let reload_interval = keys.reload_interval;
    let store = open_store(&database, Some(tokens.token_lifetime())).await?;
    let key_check = keys.reload_interval;
    let state = build_state(
        StateSettings {
            keys,
            tokens,
            passwords,
            throttle,
            revocation,
        },
        store,
        clock,
        metrics.clone(),
    )
    .await?;
    if let Some(admin) = &operations.bootstrap_admin {
        bootstrap_admin(&state, admin).await?;
    }

    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, ServingStatus::Serving).await;
    let serves_extauthz = extauthz.is_some();
    let reflection_v1 = reflection(serves_extauthz).build_v1()?;
    let reflection_v1alpha = reflection(serves_extauthz).build_v1alpha()?;

    let auth_layer = state.auth.clone();
    let mut tasks = spawn_background(state.clone(), health.clone(), retention);
    tasks.extend(crate::keys::rotation::spawn_scheduler(
        state.clone(),
        key_check,
    ));
    tasks.extend(crate::revocation::follower::spawn(
        state.revocations.clone(),
    ));

    let auth = AuthServiceServer::new(AuthServiceImpl::new(state.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let admin = AdminServiceServer::new(AdminServiceImpl::new(state.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let extauthz = extauthz.map(|settings| crate::extauthz::service(state.clone(), settings));
    let addr = listener.local_addr()?;
    let incoming = listen.limits.incoming(listener);
    let side_listener = match side_socket {
        SideSocket::Given(l) => l,
        SideSocket::FromSettings => match http.addr {
            Some(a) => Some(bind("AUTH_HTTP_ADDR", a).await?),
            None => None,
        },
    };
    let (side_stop, side_stopped) = tokio::sync::watch::channel(false);
    let side_port = match side_listener {
        Some(l) => {
            let side_addr = l.local_addr()?;
            let base = http
                .public_url
                .clone()
                .unwrap_or_else(|| PublicUrl::of_addr(side_addr));
            let side = SidePort::new(state.clone(), health.clone(), &base, reload_interval);
            let router = crate::http::router(Arc::new(side));
            tracing::info!(addr = %side_addr, public_url = base.as_str(),
                "HTTP side port listening (plaintext: JWKS, discovery, metrics, probes)");
            Some(tokio::spawn(crate::http::serve(l, router, side_stopped)))
        }
        None => None,
    };
    let grpc_metrics = metrics.grpc_layer();

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
    let health_on_stop = health.clone();
    let revocations = state.revocations.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: reporting NOT_SERVING and draining in-flight calls");
        set_health(&health_on_stop, ServingStatus::NotServing).await;
        // WatchRevocations streams end, naming the sequence to resume from elsewhere.
        revocations.stop();
        // Health Watch streams deliver NOT_SERVING, then end: the drain waits only for unary calls.
        let _ = stopping_tx.send(true);
        let _ = stop_tx.send(());
    };

    tracing::info!(%addr, "auth-server listening");
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    // Streams, timeouts, keepalive and connection age (the listener adds the connection cap and the
    // handshake timeout); the header list stays at MAX_HEADER_LIST_BYTES.
    let server = listen
        .limits
        .apply(builder)
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        // Outermost: every call is measured, including those the layers below refuse.
        .layer(tower::util::option_layer(grpc_metrics))
        .layer(crate::codec_errors::CodecErrorLayer)
        .layer(RequireDatabaseLayer(state.database.clone()))
        .layer(auth_layer)
        .add_service(EndOnShutdown::new(health_service, stopping_rx))
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(auth)
        .add_service(admin)
        .add_optional_service(extauthz)
        .serve_with_incoming_shutdown(incoming, signal);
    tokio::pin!(server);
    let result = tokio::select! {
        r = &mut server => r,
        _ = async { let _ = stop_rx.await; tokio::time::sleep(operations.shutdown_grace).await } => {
            tracing::warn!("shutdown grace period over: closing remaining connections");
            Ok(())
        }
    };
    for t in tasks {
        t.abort();
    }
    // The side port outlives the drain (readiness says 503 meanwhile) and stops with the server.
    let _ = side_stop.send(true);
    if let Some(side) = side_port {
        let _ = side.await;
    }
    result?;
    tracing::info!("auth-server stopped");
    Ok(())
}

/// The descriptors of every served service (for their methods' metric labels).
const DESCRIPTOR_SETS: [&[u8]; 4] = [
    auth_proto::FILE_DESCRIPTOR_SET,
    tonic_health::pb::FILE_DESCRIPTOR_SET,
    tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
];

/// Reflection over exactly the services this server registers (the descriptor set also holds the demo
/// service of the examples, which is not served here), Envoy's `Authorization` when `extauthz`.
fn reflection(extauthz: bool) -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(auth_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    if extauthz {
        builder = builder
            .register_encoded_file_descriptor_set(auth_proto::ENVOY_AUTH_V3_FILE_DESCRIPTOR_SET)
            .with_service_name(crate::extauthz::SERVICE_NAME);
    }
    for name in [
        "auth.v1.AuthService",
        "auth.v1.AdminService",
        "grpc.health.v1.Health",
    ] {
        builder = builder.with_service_name(name);
    }
    builder
}

pub(crate) async fn set_health(health: &HealthReporter, status: ServingStatus) {
    for name in SERVICE_NAMES {
        health.set_service_status(name, status).await;
    }
}
