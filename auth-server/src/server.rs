//! Runs the server: the gRPC services with health and reflection behind the access-policy layer,
//! until shutdown, then NOT_SERVING and a bounded drain.

use std::future::Future;
use std::sync::Arc;

use auth_proto::v1::admin_service_server::AdminServiceServer;
use auth_proto::v1::auth_service_server::AuthServiceServer;
use tokio::net::TcpListener;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::availability::RequireDatabaseLayer;
use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, Settings};
use crate::error::AuthError;
use crate::housekeeping::{Retention, spawn_background};
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
    let Settings {
        listen,
        database,
        keys,
        tokens,
        passwords,
        throttle,
        operations,
        extauthz,
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
    let store = open_store(&database).await?;
    let key_check = keys.reload_interval;
    let state = build_state(
        StateSettings {
            keys,
            tokens,
            passwords,
            throttle,
        },
        store,
        clock,
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

    let auth = AuthServiceServer::new(AuthServiceImpl::new(state.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let admin = AdminServiceServer::new(AdminServiceImpl::new(state.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let extauthz = extauthz.map(|settings| crate::extauthz::service(state.clone(), settings));
    let addr = listener.local_addr()?;
    let incoming = listen.limits.incoming(listener);

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
    let health_on_stop = health.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: reporting NOT_SERVING and draining in-flight calls");
        set_health(&health_on_stop, ServingStatus::NotServing).await;
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
    result?;
    tracing::info!("auth-server stopped");
    Ok(())
}

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
