//! Client side: attach `authorization: Bearer …` to outgoing calls from a [`TokenSource`].
//!
//! - [`StaticToken`]: a fixed token.
//! - [`ServiceTokenSource`]: a service account's token for one audience from
//!   `AuthService/IssueServiceToken` ([`ServiceCredentials`]: a client secret or a signing key),
//!   renewed ahead of expiry (single-flight), with jittered backoff while the auth server is away.
//! - [`LoginTokenSource`]: logs a user in through `AuthService/Login`, refreshes through
//!   `AuthService/Refresh` ahead of expiry (single-flight), and logs in again if the refresh token is
//!   rejected.
//! - [`ClientAuthLayer`]: the tower layer that puts the token on every request of a channel.
//! - [`with_auth_retry`]: runs a unary call and, if it fails with `UNAUTHENTICATED`, invalidates the
//!   token and runs it once more. The layer itself never retries: a request body is a stream that
//!   cannot be replayed, so only the caller can rebuild the request.
//!
//! Time in [`LoginTokenSource`] (a token's refresh point and expiry, call timeouts) is Tokio's clock,
//! so tests under `tokio::time::pause()` move it with `tokio::time::advance`; [`ServiceTokenSource`]
//! reads an injected [`Clock`](crate::Clock).

use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tonic::{Code, Status};

mod backoff;
mod credentials;
mod layer;
mod login;
mod service;

pub use credentials::{ASSERTION_TTL_SECS, AssertionKey, CredentialsError, ServiceCredentials};
pub use layer::{ClientAuth, ClientAuthLayer};
pub use login::{LoginTokenSource, LoginTokenSourceConfig};
/// Re-export of the `secrecy` type holding client secrets and private keys.
pub use secrecy::SecretString;
pub use service::{ServiceTokenSource, ServiceTokenSourceConfig};

/// Supplies the access token for outgoing calls.
pub trait TokenSource: Send + Sync + 'static {
    /// The access token to send now (without the `Bearer ` prefix).
    fn token(&self) -> BoxFuture<'_, Result<Arc<str>, Status>>;

    /// The server rejected the current token; the next [`TokenSource::token`] should obtain a new one
    /// if it can. The default does nothing.
    fn invalidate(&self) {}
}

impl<T: TokenSource + ?Sized> TokenSource for Arc<T> {
    fn token(&self) -> BoxFuture<'_, Result<Arc<str>, Status>> {
        (**self).token()
    }
    fn invalidate(&self) {
        (**self).invalidate()
    }
}

/// A fixed token.
#[derive(Clone)]
pub struct StaticToken(Arc<str>);

impl StaticToken {
    /// A source always answering `token`.
    pub fn new(token: impl Into<Arc<str>>) -> Self {
        Self(token.into())
    }
}

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticToken(..)")
    }
}

impl TokenSource for StaticToken {
    fn token(&self) -> BoxFuture<'_, Result<Arc<str>, Status>> {
        let t = self.0.clone();
        Box::pin(async move { Ok(t) })
    }
}

/// Runs `call`; if it fails with `UNAUTHENTICATED`, invalidates `source`'s token and runs `call` once
/// more (the client layer then attaches a fresh token). Only retry calls that are safe to repeat.
///
/// ```no_run
/// # async fn f(mut client: auth_proto::demo::greeter_service_client::GreeterServiceClient<
/// #     auth_interceptor::client::ClientAuth<tonic::transport::Channel>>,
/// #     source: auth_interceptor::client::LoginTokenSource) -> Result<(), tonic::Status> {
/// use auth_interceptor::client::with_auth_retry;
/// use auth_proto::demo::WhoAmIRequest;
/// let me = with_auth_retry(&source, || {
///     let mut c = client.clone();
///     async move { c.who_am_i(WhoAmIRequest {}).await }
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub async fn with_auth_retry<S, T, F, Fut>(source: &S, mut call: F) -> Result<T, Status>
where
    S: TokenSource + ?Sized,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    match call().await {
        Err(status) if status.code() == Code::Unauthenticated => {
            tracing::debug!("call refused as unauthenticated; retrying once with a fresh token");
            source.invalidate();
            call().await
        }
        other => other,
    }
}
