//! Verify `auth.v1` access tokens locally in any tonic service.
//!
//! This crate is the one token verifier of the project: the auth server's `Validate` RPC and every
//! downstream service use the same [`Verifier`], so a token is judged identically everywhere.
//!
//! PLACEHOLDER_DOCS

pub mod authorizer;
pub mod cache;
pub mod claims;
pub mod client;
pub mod context;
pub mod error;
pub mod extract;
pub mod interceptor;
pub mod keys;
pub mod layer;
pub mod policy;
pub mod revoke;
pub mod source;
pub mod verify;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

pub use authorizer::Authorizer;
pub use claims::{Audience, Claims};
pub use context::{AuthContext, RequestAuthExt};
pub use error::AuthError;
pub use interceptor::AuthInterceptor;
pub use keys::{KeyError, KeySet, SharedKeys, VerificationKey};
pub use layer::{AuthLayer, AuthMiddleware};
pub use policy::{Access, Policy, PolicyBuilder, PolicyError, Rule};
pub use revoke::RevocationChecker;
pub use source::{JwksSource, JwksSourceConfig, KeySource, KeysUnavailable};
pub use verify::{Verifier, VerifierConfig, VerifyError};

/// Re-export of the `jsonwebtoken` algorithm type used in this crate's API.
pub use jsonwebtoken::Algorithm;
