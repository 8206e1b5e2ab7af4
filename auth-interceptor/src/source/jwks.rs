//! JWKS documents: the fetcher abstraction, and loading one from a file.

use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;

use crate::keys::{KeyError, KeySet};

/// Why a JWKS could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The source could not be reached or answered with an error.
    #[error("JWKS source unreachable: {0}")]
    Unreachable(String),
    /// The source did not answer in time.
    #[error("JWKS fetch timed out")]
    Timeout,
    /// The document is not an acceptable JWKS.
    #[error(transparent)]
    Invalid(#[from] KeyError),
}

/// Fetches a JWKS JSON document (`{"keys":[...]}`).
pub trait JwksFetcher: Send + Sync + 'static {
    /// One fetch of the current document.
    fn fetch(&self) -> BoxFuture<'_, Result<String, FetchError>>;
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

impl JwksFetcher for FileJwksFetcher {
    fn fetch(&self) -> BoxFuture<'_, Result<String, FetchError>> {
        Box::pin(async move {
            tokio::fs::read_to_string(&self.path)
                .await
                .map_err(|e| FetchError::Unreachable(e.to_string()))
        })
    }
}

/// Loads a key set from a JWKS file once (for static configuration).
pub fn load_jwks_file(path: impl AsRef<Path>) -> Result<KeySet, FetchError> {
    let json = std::fs::read_to_string(path).map_err(|e| FetchError::Unreachable(e.to_string()))?;
    Ok(KeySet::from_jwks_json(&json)?)
}
