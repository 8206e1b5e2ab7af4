//! Authenticate and authorise every call of a tonic service locally, with `auth.v1` access tokens.
//!
//! This crate is the one token verifier of the project: the auth server's `Validate` RPC and every
//! downstream service use the same [`Verifier`], so a token is judged identically everywhere. On the
//! request path nothing calls the auth server (unless a method opts into a revocation check), no lock
//! is held across I/O, and key-set reads are lock-free.
//!
//! # Protecting a service
//!
//! ```no_run
//! # use auth_proto::demo::greeter_service_server::{GreeterService, GreeterServiceServer};
//! # async fn run(greeter: impl GreeterService) -> Result<(), Box<dyn std::error::Error>> {
//! use auth_interceptor::{
//!     Authorizer, GrpcJwksFetcher, JwksSource, JwksSourceConfig, Policy, Verifier, VerifierConfig,
//! };
//!
//! let fetcher = GrpcJwksFetcher::from_uri("http://127.0.0.1:50051")?;
//! let keys = JwksSource::start(fetcher, JwksSourceConfig::default());
//! keys.wait_for_keys(std::time::Duration::from_secs(10)).await?;
//! let policy = Policy::builder()
//!     .with_health()
//!     .public("demo.v1.GreeterService/SayHello")
//!     .required("demo.v1.GreeterService/*")
//!     .any_role("demo.v1.GreeterService/AdminHello", ["admin"])
//!     .build()?;
//! policy.check_services(&["demo.v1.GreeterService"])?;
//! let verifier = Verifier::new(VerifierConfig::new("auth-server", "internal"));
//! let auth = Authorizer::new(verifier, keys).layer(policy)?;
//! tonic::transport::Server::builder()
//!     .layer(auth)
//!     .add_service(GreeterServiceServer::new(greeter))
//!     .serve("127.0.0.1:50052".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Handlers read the caller with [`RequestAuthExt::auth`]: `let claims = request.auth()?;`.
//!
//! # Pieces
//!
//! - [`Policy`]: per-method rules (exact method, `pkg.Svc/*`, prefix), most specific wins, deny by
//!   default; presets for health and reflection.
//! - [`Authorizer`]: verifier + [`KeySource`] + policy (+ verified-token cache, + optional
//!   [`RevocationChecker`]); turned into an [`AuthLayer`] (tower; sees the method) or an
//!   [`AuthInterceptor`] (tonic; one rule for the whole service).
//! - Key sources ([`KeySource`]): [`SharedKeys`] for static or application-managed keys, [`JwksSource`]
//!   for a JWKS from `GetJwks` or a file, with background refresh, single-flight rate-limited refetch on
//!   unknown `kid`, bounded staleness and a readiness wait.
//! - [`client`]: [`client::ClientAuthLayer`] with a [`client::TokenSource`] (static, or logging in and
//!   refreshing a service account).
//!
//! # Behaviour worth knowing
//!
//! - Refusals are gRPC statuses with fixed messages: `UNAUTHENTICATED` "invalid token" (missing,
//!   malformed or invalid token) with `www-authenticate: Bearer error="invalid_token"` — or just
//!   `www-authenticate: Bearer` when the request carried no token at all (RFC 6750 §3.1);
//!   `PERMISSION_DENIED` with `error="insufficient_scope"`; `UNAVAILABLE` when no usable key set exists
//!   (retryable). The precise reason is logged through `tracing` (`debug` for bad tokens, `info` for
//!   refused roles, `warn` for missing keys), never the token.
//! - A token's `aud` may list several audiences; it is accepted when any is one of ours.
//! - Verification is local: a disabled user's or logged-out session's tokens keep working here until
//!   they expire (at most the access-token TTL, 10 min by default) unless the method's rule asks for
//!   revalidation ([`Rule::revalidate`]), which consults `Validate` (answers cached for a few seconds).
//! - Verified tokens are cached by SHA-256, never past `exp`, and only while their `kid` is still in
//!   the current key set: removing a key stops its tokens at the next key-set refresh.

mod authorizer;
mod cache;
mod claims;
pub mod client;
mod clock;
mod context;
mod error;
mod expiry;
mod extract;
mod interceptor;
mod keys;
mod layer;
mod policy;
mod revoke;
mod source;
mod verify;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

pub use authorizer::Authorizer;
pub use cache::{DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL, TokenCache};
pub use claims::{Audience, Claims};
pub use clock::{Clock, SystemClock, TokioClock};
pub use context::{AuthContext, RequestAuthExt};
pub use error::{
    AuthError, INSUFFICIENT_SCOPE_CHALLENGE, INVALID_TOKEN_CHALLENGE, INVALID_TOKEN_MESSAGE,
    MISSING_TOKEN_CHALLENGE, PERMISSION_DENIED_MESSAGE, UNAVAILABLE_MESSAGE,
};
pub use extract::bearer_token;
pub use interceptor::AuthInterceptor;
pub use keys::{KeyError, KeySet, MIN_HMAC_SECRET_LEN, SharedKeys, VerificationKey, hs256_kid};
pub use layer::{AuthLayer, AuthMiddleware};
pub use policy::{Access, Policy, PolicyBuilder, PolicyError, Rule};
pub use revoke::RevocationChecker;
pub use source::{
    DEFAULT_FETCH_TIMEOUT, FetchError, FileJwksFetcher, GrpcJwksFetcher, JwksSource,
    JwksSourceConfig, KeySetFetcher, KeySource, KeysUnavailable, KidRefresh, NoKeys,
    load_jwks_file,
};
pub use verify::{
    ACCESS_TOKEN_TYP, DEFAULT_MAX_LIFETIME, DEFAULT_MAX_TOKEN_LEN, Verified, Verifier,
    VerifierConfig, VerifyError, alg_name,
};

/// Re-export of the `jsonwebtoken` algorithm type used in this crate's API.
pub use jsonwebtoken::Algorithm;
