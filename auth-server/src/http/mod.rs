//! The HTTP side port: plaintext HTTP/1.1 on its own listener (`AUTH_HTTP_ADDR`), next to the gRPC
//! port, for what a mesh and Kubernetes fetch over plain HTTP — the JWKS and the discovery document
//! ([`jwks`], [`discovery`]), Prometheus metrics ([`metrics`]) and probes ([`probes`]). It serves only
//! public data and metrics, never a token or a credential.
//!
//! It is reachable and unauthenticated, so it is bounded like the gRPC port: at most
//! [`MAX_CONNECTIONS`] connections (beyond, `503` and close), headers within [`MAX_HEADER_BYTES`] and
//! [`HEADER_READ_TIMEOUT`] (which also closes idle keep-alive connections), no request bodies, every
//! request answered within [`REQUEST_TIMEOUT`], and connections closed after
//! [`MAX_CONNECTION_AGE`]. Unknown paths are `404`, other methods than GET (and HEAD) `405`. It stops
//! with the gRPC server, after the drain: readiness says `503` meanwhile.

pub(crate) mod discovery;
mod jwks;
pub(crate) mod metrics;
mod probes;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use http::{HeaderValue, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tonic_health::server::{HealthReporter, HealthService};

use crate::config::PublicUrl;
use crate::state::AppState;

/// Connections open at once; beyond, a new connection gets `503` and is closed.
pub const MAX_CONNECTIONS: usize = 128;
/// Longest time a client may take to send a request's headers, and longest idle time of a
/// keep-alive connection.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head (request line and headers), bytes; beyond, `431`.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most header lines in one request.
pub const MAX_HEADERS: usize = 64;
/// Longest time a request may take to be answered (`503` after).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Age at which a connection is closed (after the request in progress).
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(60);

/// What the handlers share.
pub(crate) struct SidePort {
    app: Arc<AppState>,
    /// The gRPC health statuses (readiness).
    health: HealthService,
    /// `iss` of issued tokens.
    issuer: String,
    /// Absolute URL of the JWKS document.
    jwks_uri: String,
    /// `Cache-Control` of the key documents.
    cache_control: HeaderValue,
}

impl SidePort {
    /// The side port of `app`, reachable at `base`, ready as `health` says.
    pub(crate) fn new(
        app: Arc<AppState>,
        health: HealthReporter,
        base: &PublicUrl,
        reload_interval: Duration,
    ) -> Self {
        Self {
            issuer: app.issuer.issuer.clone(),
            jwks_uri: base.join(discovery::JWKS_PATH),
            cache_control: jwks::cache_control(reload_interval),
            health: HealthService::from_health_reporter(health),
            app,
        }
    }
}

/// The routes, with the request bounds.
pub(crate) fn router(side: Arc<SidePort>) -> Router {
    Router::new()
        .route(discovery::JWKS_PATH, get(jwks::get))
        .route(discovery::DISCOVERY_PATH, get(discovery::get))
        .route("/metrics", get(metrics::scrape::get))
        .route("/healthz/live", get(probes::live))
        .route("/healthz/ready", get(probes::ready))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(bounded))
        .with_state(side)
}

async fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "not found\n")
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, [(CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

/// No request bodies (nothing here reads one), and an answer within [`REQUEST_TIMEOUT`].
async fn bounded(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let declared = headers
        .get(CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || headers.contains_key(TRANSFER_ENCODING);
    if declared {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request bodies are not accepted\n",
        );
    }
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => plain(StatusCode::SERVICE_UNAVAILABLE, "timed out\n"),
    }
}

/// Serves `router` on `listener` until `stop` turns true, then lets open requests finish (at most
/// [`REQUEST_TIMEOUT`]) and returns.
pub(crate) async fn serve(listener: TcpListener, router: Router, mut stop: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, typically: back off instead of spinning.
                tracing::warn!(error = %e, "side port: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(
                max = MAX_CONNECTIONS,
                "side port: connection limit reached, refusing"
            );
            refuse(stream);
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = http1.serve_connection(TokioIo::new(stream), service);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::pin!(connection);
            tokio::select! {
                done = connection.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(error = %e, "side port: connection ended");
                    }
                    return;
                }
                _ = tokio::time::sleep(MAX_CONNECTION_AGE) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, connection).await;
        });
    }
    drop(listener);
    // Every open connection holds a permit: all of them back means all are closed.
    let all = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, permits.acquire_many(all)).await;
}

/// Answers a connection over the limit with `503` without reading from it, and closes it.
fn refuse(stream: TcpStream) {
    const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\
        retry-after: 1\r\nconnection: close\r\n\r\n";
    // A fresh socket's send buffer takes these bytes at once; if not, the client gets only the close.
    let _ = stream.try_write(REFUSAL);
}
