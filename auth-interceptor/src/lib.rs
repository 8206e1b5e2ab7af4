//! Verify `auth.v1` access tokens locally in any tonic service.
//!
//! This crate is the one token verifier of the project: the auth server's `Validate` RPC and every
//! downstream service use the same [`Verifier`], so a token is judged identically everywhere.

pub mod claims;
pub mod keys;
pub mod verify;

pub use claims::{Audience, Claims};
pub use keys::{KeyError, KeySet, SharedKeys, VerificationKey};
pub use verify::{Verifier, VerifierConfig, VerifyError};

/// Re-export of the `jsonwebtoken` algorithm type used in this crate's API.
pub use jsonwebtoken::Algorithm;
