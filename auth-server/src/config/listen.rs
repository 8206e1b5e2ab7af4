//! Where the gRPC server listens, and whether it speaks TLS (optionally requiring client
//! certificates) or plaintext.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use super::check::{ConfigError, bad};

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSettings {
    /// Address to bind.
    pub addr: SocketAddr,
    /// TLS, or `None` for plaintext (only on loopback unless allowed).
    pub tls: Option<TlsFiles>,
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
        Ok(ListenSettings {
            addr: self.grpc_addr,
            tls,
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
