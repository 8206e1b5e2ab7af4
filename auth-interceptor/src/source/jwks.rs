//! Where a refreshing key source gets its keys: the [`KeySetFetcher`] abstraction, and a JWKS read
//! from a file.

use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;

use crate::keys::{KeyError, KeySet};

/// Why a key set could not be fetched.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// The source could not be reached or answered with an error.
    #[error("JWKS source unreachable: {0}")]
    Unreachable(String),
    /// The source did not answer in time.
    #[error("JWKS fetch timed out")]
    Timeout,
    /// The document is not an acceptable JWKS.
    #[error("invalid JWKS: {0}")]
    Invalid(String),
}

impl From<KeyError> for FetchError {
    fn from(e: KeyError) -> Self {
        FetchError::Invalid(e.to_string())
    }
}

/// Fetches the current verification keys: a JWKS over gRPC ([`GrpcJwksFetcher`](super::GrpcJwksFetcher))
/// or from a file ([`FileJwksFetcher`]), or whatever else holds them (the auth server reads its own
/// database). A [`JwksSource`](super::JwksSource) calls it in the background and on unknown `kid`s.
pub trait KeySetFetcher: Send + Sync + 'static {
    /// One fetch of the current key set.
    fn fetch(&self) -> BoxFuture<'_, Result<KeySet, FetchError>>;
}

/// Reads a JWKS from a file on every fetch (so a rotated file is picked up by the refresh loop).
#[derive(Debug, Clone)]
pub struct FileJwksFetcher {
    path: PathBuf,
}

impl FileJwksFetcher {
    /// A fetcher reading `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl KeySetFetcher for FileJwksFetcher {
    fn fetch(&self) -> BoxFuture<'_, Result<KeySet, FetchError>> {
        Box::pin(async move {
            let json = tokio::fs::read_to_string(&self.path)
                .await
                .map_err(|e| FetchError::Unreachable(format!("{}: {e}", self.path.display())))?;
            Ok(KeySet::from_jwks_json(&json)?)
        })
    }
}

/// Loads a key set from a JWKS file once (for static configuration).
pub fn load_jwks_file(path: impl AsRef<Path>) -> Result<KeySet, FetchError> {
    let json = std::fs::read_to_string(path).map_err(|e| FetchError::Unreachable(e.to_string()))?;
    Ok(KeySet::from_jwks_json(&json)?)
}
