//! Where the gRPC server listens, whether it speaks TLS (optionally requiring client certificates) or
//! plaintext, and the transport limits every connection gets (streams, timeouts, keepalive,
//! connection age, handshake time, open connections).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::time::Duration;

use auth_interceptor::ServerLimits;
use clap::Args;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use super::check::{ConfigError, bad, within};

/// Listener flags.
#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// Address the gRPC server listens on.
    #[arg(long, env = "AUTH_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,

    /// PEM certificate chain: serve gRPC over TLS (with `--tls-key`).
    #[arg(long, env = "AUTH_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "AUTH_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA bundle: require client certificates signed by it (mutual TLS).
    #[arg(long, env = "AUTH_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// Serve plaintext (h2c) on a non-loopback address, e.g. behind a mesh sidecar that terminates
    /// mTLS. Without it, a non-loopback address requires TLS.
    #[arg(long, env = "AUTH_ALLOW_PLAINTEXT")]
    pub allow_plaintext: bool,

    /// HTTP/2 streams one connection may have open at once [1..=10000].
    #[arg(long, env = "AUTH_MAX_CONCURRENT_STREAMS", default_value_t = 100)]
    pub max_concurrent_streams: u32,

    /// Longest time a call may take until its response starts, seconds [1..=600].
    #[arg(long, env = "AUTH_REQUEST_TIMEOUT", default_value_t = 10)]
    pub request_timeout: u64,

    /// Interval of HTTP/2 keepalive pings, seconds [1..=3600]; an unanswered ping closes the
    /// connection after AUTH_HTTP2_KEEPALIVE_TIMEOUT.
    #[arg(long, env = "AUTH_HTTP2_KEEPALIVE_INTERVAL", default_value_t = 30)]
    pub http2_keepalive_interval: u64,

    /// How long a keepalive ping may go unanswered, seconds [1..=600].
    #[arg(long, env = "AUTH_HTTP2_KEEPALIVE_TIMEOUT", default_value_t = 10)]
    pub http2_keepalive_timeout: u64,

    /// Age at which a connection is asked to go away (GOAWAY; clients reconnect), seconds
    /// [10..=86400]; it is closed AUTH_REQUEST_TIMEOUT later.
    #[arg(long, env = "AUTH_MAX_CONNECTION_AGE", default_value_t = 300)]
    pub max_connection_age: u64,

    /// Connections open at once [1..=1000000]; at the cap new connections wait (logged).
    #[arg(long, env = "AUTH_MAX_CONNECTIONS", default_value_t = 1000)]
    pub max_connections: usize,

    /// How long a new connection may take to send its first bytes before it is closed, seconds
    /// [1..=300].
    #[arg(long, env = "AUTH_HANDSHAKE_TIMEOUT", default_value_t = 10)]
    pub handshake_timeout: u64,
}

/// PEM files of the server's TLS identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
    /// CA bundle that client certificates must chain to (mutual TLS), if any.
    pub client_ca: Option<PathBuf>,
}

/// Validated listener settings.
#[derive(Debug, Clone)]
pub struct ListenSettings {
    /// Address to bind.
    pub addr: SocketAddr,
    /// TLS, or `None` for plaintext (only on loopback unless allowed).
    pub tls: Option<TlsFiles>,
    /// Transport limits of every connection.
    pub limits: ServerLimits,
}

impl ListenArgs {
    pub(super) fn validate(self) -> Result<ListenSettings, ConfigError> {
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert,
                key,
                client_ca: self.tls_client_ca,
            }),
            (Some(_), None) => return Err(bad("AUTH_TLS_KEY", "is required with AUTH_TLS_CERT")),
            (None, Some(_)) => return Err(bad("AUTH_TLS_CERT", "is required with AUTH_TLS_KEY")),
            (None, None) if self.tls_client_ca.is_some() => {
                return Err(bad(
                    "AUTH_TLS_CLIENT_CA",
                    "needs AUTH_TLS_CERT and AUTH_TLS_KEY",
                ));
            }
            (None, None) if !self.grpc_addr.ip().is_loopback() && !self.allow_plaintext => {
                return Err(bad(
                    "AUTH_GRPC_ADDR",
                    "a non-loopback address needs TLS (AUTH_TLS_CERT and AUTH_TLS_KEY), or AUTH_ALLOW_PLAINTEXT=true \
                     behind a sidecar that terminates mTLS",
                ));
            }
            (None, None) => None,
        };
        let secs = Duration::from_secs;
        let request_timeout = within(
            "AUTH_REQUEST_TIMEOUT",
            self.request_timeout,
            1,
            600,
            " seconds",
        )?;
        let limits = ServerLimits {
            max_concurrent_streams: within(
                "AUTH_MAX_CONCURRENT_STREAMS",
                self.max_concurrent_streams,
                1,
                10_000,
                "",
            )?,
            request_timeout: Some(secs(request_timeout)),
            http2_keepalive_interval: Some(secs(within(
                "AUTH_HTTP2_KEEPALIVE_INTERVAL",
                self.http2_keepalive_interval,
                1,
                3600,
                " seconds",
            )?)),
            http2_keepalive_timeout: secs(within(
                "AUTH_HTTP2_KEEPALIVE_TIMEOUT",
                self.http2_keepalive_timeout,
                1,
                600,
                " seconds",
            )?),
            max_connection_age: Some(secs(within(
                "AUTH_MAX_CONNECTION_AGE",
                self.max_connection_age,
                10,
                86_400,
                " seconds",
            )?)),
            max_connection_age_grace: Some(secs(request_timeout)),
            max_connections: Some(within(
                "AUTH_MAX_CONNECTIONS",
                self.max_connections,
                1,
                1_000_000,
                "",
            )?),
            handshake_timeout: Some(secs(within(
                "AUTH_HANDSHAKE_TIMEOUT",
                self.handshake_timeout,
                1,
                300,
                " seconds",
            )?)),
            ..ServerLimits::default()
        };
        Ok(ListenSettings {
            addr: self.grpc_addr,
            tls,
            limits,
        })
    }
}

impl TlsFiles {
    /// Reads the PEM files into tonic's TLS configuration; errors name the setting and the file.
    pub fn load(&self) -> Result<ServerTlsConfig, ConfigError> {
        let read = |setting: &'static str, path: &Path| {
            std::fs::read(path)
                .map_err(|e| bad(setting, format!("cannot read {}: {e}", path.display())))
        };
        let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(
            read("AUTH_TLS_CERT", &self.cert)?,
            read("AUTH_TLS_KEY", &self.key)?,
        ));
        if let Some(ca) = &self.client_ca {
            tls = tls.client_ca_root(Certificate::from_pem(read("AUTH_TLS_CLIENT_CA", ca)?));
        }
        Ok(tls)
    }
}
