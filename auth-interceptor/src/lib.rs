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
//!     Authorizer, GrpcJwksFetcher, JwksSource, JwksSourceConfig, Policy, ServerLimits, Verifier,
//!     VerifierConfig,
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
//! let limits = ServerLimits::default();
//! let (_health, health_service) = tonic_health::server::health_reporter();
//! limits
//!     .server()
//!     .layer(auth)
//!     .add_service(health_service)
//!     .add_service(
//!         GreeterServiceServer::new(greeter)
//!             .max_decoding_message_size(limits.max_decoding_message_size),
//!     )
//!     .serve_with_incoming(limits.bind("127.0.0.1:50052".parse()?)?)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Handlers read the caller with [`RequestAuthExt::auth`]: `let claims = request.auth()?;`.
//!
//! # Pieces
//!
//! - [`Policy`]: per-method rules (exact method, `pkg.Svc/*`, prefix), most specific wins, deny by
//!   default; roles and calling service accounts ([`Rule::clients`]); presets for health and
//!   reflection; also from a TOML file ([`Policy::load`],
//!   [`Policy::from_toml`]) that the auth server's Envoy `ext_authz` enforces as well.
//! - [`Authorizer`]: verifier + [`KeySource`] + policy (+ verified-token cache, + optional
//!   [`RevocationWatcher`] and [`RevocationChecker`]); turned into an [`AuthLayer`] (tower; sees the
//!   method) or an [`AuthInterceptor`] (tonic; one rule for the whole service).
//! - [`RevocationWatcher`]: follows the auth server's `WatchRevocations` stream (failing over between
//!   several servers, resuming from its last sequence) and keeps a bounded local denylist of revoked
//!   sessions, subjects and keys; its health is a [`WatcherStatus`]. Each rule chooses, with
//!   [`Rule::fail_closed_after`], whether to refuse once the stream has been down too long.
//! - Key sources ([`KeySource`]): [`SharedKeys`] for static or application-managed keys (an HS256
//!   server's: [`KeySet::hs256`]), [`JwksSource`] for keys fetched by a [`KeySetFetcher`] (the auth
//!   server's `GetJwks` through [`GrpcJwksFetcher`], or a [`FileJwksFetcher`]), with background
//!   refresh, single-flight rate-limited refetch on unknown `kid`, bounded staleness and a readiness
//!   wait that says why it failed.
//! - Time: one injected [`Clock`] ([`SystemClock`] by default, [`TokioClock`] for tests that pause
//!   Tokio's clock) governs token lifetimes, cache ages and call expiry.
//! - [`ServerLimits`]: transport limits for the server itself (stream limit, request timeout,
//!   keepalive, connection lifetime, header and message sizes); tonic's defaults set none of them.
//! - [`client`]: [`client::ClientAuthLayer`] with a [`client::TokenSource`]: static, a service
//!   account's tokens for one audience ([`client::ServiceTokenSource`]: client secret or signed
//!   assertion, renewed ahead of expiry, backoff while the auth server is away), or a user logging
//!   in and refreshing.
//!
//! # Behaviour worth knowing
//!
//! - Refusals are gRPC statuses with fixed messages: `UNAUTHENTICATED` "invalid token" (missing,
//!   malformed or invalid token) with `www-authenticate: Bearer error="invalid_token"` — or just
//!   `www-authenticate: Bearer` when the request carried no token at all (RFC 6750 §3.1);
//!   `PERMISSION_DENIED` with `error="insufficient_scope"`; `UNAVAILABLE` when no usable key set exists
//!   (retryable). The precise reason is logged through `tracing` (`UNAUTHENTICATED` at debug,
//!   `PERMISSION_DENIED` at info, `UNAVAILABLE` at warn), never the token.
//! - A token's `aud` may list several audiences; it is accepted when any is one of ours. Give each
//!   service its own audience (`VerifierConfig::new(issuer, "orders.v1.OrderService")`) so that a
//!   token issued for one service is refused by every other.
//! - Verification is local: without a [`RevocationWatcher`], a disabled user's or logged-out
//!   session's tokens keep working here until they expire (at most the access-token TTL, 10 min by
//!   default) unless the method's rule asks for revalidation ([`Rule::revalidate`]), which consults
//!   `Validate` (answers cached for a few seconds). With one, they are refused (`UNAUTHENTICATED`,
//!   like an invalid token) as soon as the revocation reaches the watcher — milliseconds on a LAN —
//!   and, while the stream is down, each rule accepts verified tokens (the default) or, past its
//!   bound, answers `UNAVAILABLE`.
//! - A call lives no longer than its token: the layer cancels a handler still running (or still
//!   waiting for the request message) at `exp` + leeway, and ends a response stream still open then,
//!   with `UNAUTHENTICATED`. (The plain interceptor checks only when the call starts.)
//! - A token naming an unknown `kid` triggers one refetch (single-flight, at most one per
//!   [`JwksSourceConfig::min_refetch_interval`]); the kid is refused, and remembered as unknown, only
//!   when a successful fetch made after it was seen lacks it. While a refetch is rate-limited or has
//!   failed, the answer is `UNAVAILABLE` (retryable), so a key rotated in moments ago is never locked
//!   out by a forged token that used up the refetch, nor by a network blip.
//! - Verified tokens are cached by SHA-256, never past `exp`, and only while the very key that
//!   verified them (same `kid`, same key material) is in the current key set: removing a key, or
//!   reusing its `kid` for another key, stops its tokens at the next key-set refresh.

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
mod policy_file;
mod revocation;
mod revoke;
mod rule;
mod server;
mod source;
mod verify;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

pub use authorizer::Authorizer;
pub use cache::{DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL, TokenCache};
pub use claims::{Audience, Claims, SERVICE_TOKEN_USE, TokenKind};
pub use clock::{Clock, SystemClock, TokioClock};
pub use context::{AuthContext, RequestAuthExt};
pub use error::{
    AuthError, INSUFFICIENT_SCOPE_CHALLENGE, INVALID_TOKEN_CHALLENGE, INVALID_TOKEN_MESSAGE,
    MISSING_TOKEN_CHALLENGE, PERMISSION_DENIED_MESSAGE, UNAVAILABLE_MESSAGE,
};
pub use extract::{bearer_token, bearer_token_in};
pub use interceptor::AuthInterceptor;
pub use keys::{KeyError, KeySet, MIN_HMAC_SECRET_LEN, SharedKeys, VerificationKey, hs256_kid};
pub use layer::{AuthLayer, AuthMiddleware};
pub use policy::{Access, Policy, PolicyBuilder, PolicyError, Rule};
pub use policy_file::PolicyFileError;
pub use revocation::{
    NotCurrent, RevocationWatcher, RevocationWatcherConfig, WatcherError, WatcherStatus, WhenStale,
};
pub use revoke::RevocationChecker;
pub use server::{DEFAULT_MAX_DECODING_MESSAGE_SIZE, LimitedConnection, ServerLimits};
pub use source::{
    DEFAULT_FETCH_TIMEOUT, FetchError, FileJwksFetcher, GrpcJwksFetcher, JwksSource,
    JwksSourceConfig, KeySetFetcher, KeySource, KeysUnavailable, KidRefresh, NoKeys,
    load_jwks_file,
};
pub use verify::{
    ACCESS_TOKEN_TYP, AudienceCheck, DEFAULT_MAX_LIFETIME, DEFAULT_MAX_TOKEN_LEN, Verified,
    Verifier, VerifierConfig, VerifyError, alg_name,
};

/// Re-export of the `jsonwebtoken` algorithm type used in this crate's API.
pub use jsonwebtoken::Algorithm;
