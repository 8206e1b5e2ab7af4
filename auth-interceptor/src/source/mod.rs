//! Where verification keys come from: the [`KeySource`] trait and its implementations.
//!
//! - [`SharedKeys`] (static keys, or keys the application updates itself — the auth server's case);
//! - [`JwksSource`]: keys fetched by a [`KeySetFetcher`] — the auth server's `GetJwks` RPC
//!   ([`GrpcJwksFetcher`]), a JWKS file ([`FileJwksFetcher`]), or the auth server's own database —
//!   refreshed in the background, refetched (single-flight, rate-limited) when a token names an
//!   unknown `kid`, and failing closed once the last good key set is older than the configured
//!   maximum staleness.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::keys::{KeySet, SharedKeys};

mod grpc;
mod jwks;
mod live;

pub use grpc::{DEFAULT_FETCH_TIMEOUT, GrpcJwksFetcher};
pub use jwks::{FetchError, FileJwksFetcher, KeySetFetcher, load_jwks_file};
pub use live::{JwksSource, JwksSourceConfig, NoKeys};

/// No usable key set: never loaded, or older than the allowed staleness. Requests fail closed with
/// `UNAVAILABLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no usable verification keys")]
pub struct KeysUnavailable;

/// What a refetch for a token's unknown `kid` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KidRefresh {
    /// The key set now holds the `kid`: verify again.
    Found,
    /// A successful fetch did not bring the `kid`: the token names no key of ours
    /// (`UNAUTHENTICATED`).
    Absent,
    /// No fetch could be made now (rate-limited) or the fetch failed: nothing is known about the
    /// `kid`, so the caller should retry (`UNAVAILABLE`) — a key that was just rotated in is not
    /// locked out by a forged token that used up the refetch, nor by a network blip.
    Unavailable,
}

/// A source of verification keys for the request path.
///
/// [`KeySource::current`] is called on every request and must not block or lock across I/O.
pub trait KeySource: Send + Sync + 'static {
    /// The keys to verify with right now.
    fn current(&self) -> Result<Arc<KeySet>, KeysUnavailable>;

    /// A token named `kid`, which [`KeySource::current`] does not hold. A refreshing source may
    /// refetch (single-flight, rate-limited) and says what it found. The default (a static source)
    /// answers [`KidRefresh::Absent`].
    fn refresh_for_kid<'a>(&'a self, kid: &'a str) -> BoxFuture<'a, KidRefresh> {
        let _ = kid;
        Box::pin(async { KidRefresh::Absent })
    }

    /// Like [`KeySource::refresh_for_kid`] without waiting: schedules the refetch in the background
    /// and says whether the `kid` is already known to be absent ([`KidRefresh::Absent`]) or may yet
    /// appear ([`KidRefresh::Unavailable`]). Used by the synchronous
    /// [`AuthInterceptor`](crate::AuthInterceptor).
    fn hint_unknown_kid(&self, kid: &str) -> KidRefresh {
        let _ = kid;
        KidRefresh::Absent
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
    fn refresh_for_kid<'a>(&'a self, kid: &'a str) -> BoxFuture<'a, KidRefresh> {
        (**self).refresh_for_kid(kid)
    }
    fn hint_unknown_kid(&self, kid: &str) -> KidRefresh {
        (**self).hint_unknown_kid(kid)
    }
}
