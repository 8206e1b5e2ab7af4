//! The single place where an authentication or authorisation failure becomes a `tonic::Status`.
//!
//! Callers get a short fixed message and an RFC 6750 §3 `www-authenticate` hint — a bare `Bearer`
//! challenge when the request carried no token, `error="invalid_token"` when it carried a bad one,
//! `error="insufficient_scope"` when the token lacks a role; the precise reason goes to `tracing`
//! only (never the token itself).

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::verify::VerifyError;

/// The fixed message of every `UNAUTHENTICATED` answer.
pub const INVALID_TOKEN_MESSAGE: &str = "invalid token";
/// The fixed message of every `PERMISSION_DENIED` answer.
pub const PERMISSION_DENIED_MESSAGE: &str = "permission denied";
/// The fixed message of every `UNAVAILABLE` answer (no usable keys, the revocation check failed, or
/// the revocation stream is stale beyond a fail-closed rule's bound).
pub const UNAVAILABLE_MESSAGE: &str = "authentication unavailable";

/// The `www-authenticate` value sent with `UNAUTHENTICATED` when the request carried no credentials
/// at all: RFC 6750 §3.1 says the server should then include no error code, only the scheme.
pub const MISSING_TOKEN_CHALLENGE: &str = "Bearer";
/// The `www-authenticate` value sent with `UNAUTHENTICATED` for a malformed, invalid, expired or
/// revoked token (RFC 6750 §3.1 `invalid_token`).
pub const INVALID_TOKEN_CHALLENGE: &str = "Bearer error=\"invalid_token\"";
/// The `www-authenticate` value sent with `PERMISSION_DENIED` (RFC 6750 §3.1 `insufficient_scope`).
pub const INSUFFICIENT_SCOPE_CHALLENGE: &str = "Bearer error=\"insufficient_scope\"";

/// Why a request was refused. Only [`AuthError::into_status`] turns it into what the caller sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `authorization` metadata where a token is required.
    #[error("missing bearer token")]
    MissingToken,
    /// The `authorization` metadata is not exactly one well-formed `Bearer` credential.
    #[error("malformed authorization metadata: {0}")]
    BadMetadata(&'static str),
    /// The token did not verify.
    #[error("token rejected: {0}")]
    Invalid(VerifyError),
    /// The auth server says the token's session or user is no longer active.
    #[error("token revoked")]
    Revoked,
    /// The token is valid but lacks a required role, or the method is denied to everyone.
    #[error("insufficient scope")]
    Forbidden,
    /// No usable key set (the key source is down beyond the staleness bound, or never answered), or
    /// the revocation check could not reach the auth server.
    #[error("key source unavailable")]
    Unavailable,
    /// The method's rule fails closed ([`Rule::fail_closed_after`](crate::Rule::fail_closed_after))
    /// and the revocation watcher has been stale for longer than its bound.
    #[error("revocation stream stale beyond the rule's bound")]
    RevocationsStale,
}

impl AuthError {
    /// The gRPC code this failure maps to.
    pub fn code(&self) -> Code {
        match self {
            AuthError::MissingToken
            | AuthError::BadMetadata(_)
            | AuthError::Invalid(_)
            | AuthError::Revoked => Code::Unauthenticated,
            AuthError::Forbidden => Code::PermissionDenied,
            AuthError::Unavailable | AuthError::RevocationsStale => Code::Unavailable,
        }
    }

    /// The status sent to the caller: fixed message plus a `www-authenticate` hint. A missing token
    /// gets the same code and message as an invalid one; only the challenge differs (no error code,
    /// RFC 6750 §3.1).
    pub fn into_status(self) -> Status {
        match self.code() {
            Code::Unauthenticated => with_challenge(
                Code::Unauthenticated,
                INVALID_TOKEN_MESSAGE,
                if matches!(self, AuthError::MissingToken) {
                    MISSING_TOKEN_CHALLENGE
                } else {
                    INVALID_TOKEN_CHALLENGE
                },
            ),
            Code::PermissionDenied => with_challenge(
                Code::PermissionDenied,
                PERMISSION_DENIED_MESSAGE,
                INSUFFICIENT_SCOPE_CHALLENGE,
            ),
            _ => Status::unavailable(UNAVAILABLE_MESSAGE),
        }
    }
}

impl From<VerifyError> for AuthError {
    fn from(e: VerifyError) -> Self {
        AuthError::Invalid(e)
    }
}

impl From<AuthError> for Status {
    fn from(e: AuthError) -> Self {
        e.into_status()
    }
}

/// Logs why a call to `method` was refused: bad tokens at `debug` (an attacker controls their
/// volume), authorisation failures at `info`, missing keys at `warn`. Never logs the token.
pub(crate) fn log_refusal(method: &str, error: &AuthError) {
    match error.code() {
        Code::Unauthenticated => tracing::debug!(method, %error, "request refused"),
        Code::PermissionDenied => tracing::info!(method, %error, "request refused"),
        _ => tracing::warn!(method, %error, "request refused"),
    }
}

fn with_challenge(code: Code, message: &str, challenge: &'static str) -> Status {
    let mut status = Status::new(code, message);
    status
        .metadata_mut()
        .insert("www-authenticate", MetadataValue::from_static(challenge));
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_fixed_and_carry_hints() {
        let challenge = |s: &Status| {
            s.metadata()
                .get("www-authenticate")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        };
        let s = AuthError::Invalid(VerifyError::Malformed("alg")).into_status();
        assert_eq!(s.code(), Code::Unauthenticated);
        assert_eq!(s.message(), "invalid token");
        assert_eq!(challenge(&s), "Bearer error=\"invalid_token\"");
        for e in [
            AuthError::BadMetadata("x"),
            AuthError::Invalid(VerifyError::Expired),
            AuthError::Revoked,
        ] {
            let s = e.into_status();
            assert_eq!(s.code(), Code::Unauthenticated);
            assert_eq!(s.message(), "invalid token");
            assert_eq!(challenge(&s), INVALID_TOKEN_CHALLENGE);
        }
        // No credentials at all: same code and message, but no error code (RFC 6750 §3.1).
        let s = AuthError::MissingToken.into_status();
        assert_eq!(s.code(), Code::Unauthenticated);
        assert_eq!(s.message(), "invalid token");
        assert_eq!(challenge(&s), "Bearer");
        assert_eq!(challenge(&s), MISSING_TOKEN_CHALLENGE);
        let s = AuthError::Forbidden.into_status();
        assert_eq!(s.code(), Code::PermissionDenied);
        assert_eq!(challenge(&s), "Bearer error=\"insufficient_scope\"");
        let s = AuthError::Unavailable.into_status();
        assert_eq!(s.code(), Code::Unavailable);
        assert!(s.metadata().get("www-authenticate").is_none());
    }
}
