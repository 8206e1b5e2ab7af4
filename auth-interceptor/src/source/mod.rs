//! Where verification keys come from: the [`KeySource`] trait and its implementations.
//!
//! - [`SharedKeys`] (static keys, or keys the application updates itself — the auth server's case);
//! - [`JwksSource`]: a JWKS fetched by a [`JwksFetcher`] — the auth server's `GetJwks` RPC
//!   ([`GrpcJwksFetcher`]) or a file ([`FileJwksFetcher`]) — refreshed in the background, refetched
//!   (single-flight, rate-limited) when a token names an unknown `kid`, and failing closed once the
//!   last good key set is older than the configured maximum staleness.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::keys::{KeySet, SharedKeys};

mod grpc;
mod jwks;
mod live;

pub use grpc::GrpcJwksFetcher;
pub use jwks::{FetchError, FileJwksFetcher, JwksFetcher, load_jwks_file};
pub use live::{JwksSource, JwksSourceConfig};

/// No usable key set: never loaded, or older than the allowed staleness. Requests fail closed with
/// `UNAVAILABLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no usable verification keys")]
pub struct KeysUnavailable;

/// A source of verification keys for the request path.
///
/// [`KeySource::current`] is called on every request and must not block or lock across I/O.
pub trait KeySource: Send + Sync + 'static {
    /// The keys to verify with right now.
    fn current(&self) -> Result<Arc<KeySet>, KeysUnavailable>;

    /// A token named `kid`, which [`KeySource::current`] does not hold. A refreshing source may
    /// refetch (single-flight, rate-limited); the answer is true when a key set holding `kid` is now
    /// installed. The default does nothing.
    fn refresh_for_kid<'a>(&'a self, kid: &'a str) -> BoxFuture<'a, bool> {
        let _ = kid;
        Box::pin(async { false })
    }

    /// Like [`KeySource::refresh_for_kid`] without waiting: schedules the refetch in the background.
    /// Used by the synchronous [`AuthInterceptor`](crate::AuthInterceptor).
    fn hint_unknown_kid(&self, kid: &str) {
        let _ = kid;
    }
}

impl KeySource for SharedKeys {
    fn current(&self) -> Result<Arc<KeySet>, KeysUnavailable> {
        Ok(self.load())
    }
}

impl<T: KeySource> KeySource for Arc<T> {
    fn current(&self) -> Result<Arc<KeySet>, KeysUnavailable> {
        (**self).current()
    }
    fn refresh_for_kid<'a>(&'a self, kid: &'a str) -> BoxFuture<'a, bool> {
        (**self).refresh_for_kid(kid)
    }
    fn hint_unknown_kid(&self, kid: &str) {
        (**self).hint_unknown_kid(kid)
    }
}
