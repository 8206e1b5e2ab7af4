//! Domain errors of the auth server and the single place where they become `tonic::Status`.
//!
//! Messages sent to callers are fixed and generic; details (SQL errors, verification reasons) are
//! logged here, never returned.

use tonic::Status;

use crate::password::PasswordRefused;
use crate::store::StoreError;

/// Message for every failed login, whatever the cause (unknown user, wrong password, disabled user).
pub(crate) const INVALID_CREDENTIALS: &str = "invalid credentials";
/// Message for every rejected refresh token or bearer token.
pub(crate) const INVALID_TOKEN: &str = "invalid token";

/// Everything an RPC of this server can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The request is malformed; the message says what to fix and echoes no input.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A password was refused by the policy (its fixed message says why, never what it was).
    #[error(transparent)]
    Password(#[from] PasswordRefused),
    /// Login failed (identical for every cause).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A refresh or bearer token was rejected; the reason is for logs only.
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    /// The caller is authenticated but not allowed.
    #[error("permission denied")]
    PermissionDenied,
    /// The named object does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The object already exists.
    #[error("{0}")]
    AlreadyExists(&'static str),
    /// The operation does not apply in the current state or mode.
    #[error("{0}")]
    FailedPrecondition(&'static str),
    /// Too many failed logins for this account or source: retry after `retry_after` seconds.
    #[error("throttled")]
    Throttled {
        /// Seconds until the next attempt is accepted.
        retry_after: i64,
    },
    /// A bounded resource (e.g. revocation watchers) is at its limit: retry later or elsewhere.
    #[error("{0}")]
    Exhausted(&'static str),
    /// Too many password hashes are queued: shed load (retryable elsewhere).
    #[error("overloaded")]
    Overloaded,
    /// The verification keys cannot be consulted right now (an unknown `kid` whose refetch is
    /// rate-limited or failed): retryable.
    #[error("verification keys unavailable")]
    KeysUnavailable,
    /// The revocation view is too old to be trusted (the log has been unreadable for longer than
    /// `AUTH_REVOCATION_MAX_STALENESS`): retryable.
    #[error(transparent)]
    Revocations(#[from] crate::revocation::RevocationError),
    /// Storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Any other internal failure (crypto, encoding); the detail is logged, not returned.
    #[error("internal: {0}")]
    Internal(String),
}

impl AuthError {
    /// Shorthand for [`AuthError::InvalidArgument`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        AuthError::InvalidArgument(msg.into())
    }
}

impl From<AuthError> for Status {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::InvalidArgument(msg) => Status::invalid_argument(msg),
            AuthError::Password(refused) => Status::invalid_argument(refused.to_string()),
            AuthError::InvalidCredentials => Status::unauthenticated(INVALID_CREDENTIALS),
            AuthError::InvalidToken(reason) => {
                tracing::debug!(reason, "token rejected");
                Status::unauthenticated(INVALID_TOKEN)
            }
            AuthError::PermissionDenied => Status::permission_denied("permission denied"),
            AuthError::NotFound(what) => Status::not_found(format!("{what} not found")),
            AuthError::AlreadyExists(msg) => Status::already_exists(msg),
            AuthError::FailedPrecondition(msg) => Status::failed_precondition(msg),
            AuthError::Throttled { retry_after } => {
                let mut status =
                    Status::resource_exhausted("too many failed attempts, retry later");
                if let Ok(v) = retry_after.max(1).to_string().parse() {
                    status.metadata_mut().insert("retry-after", v);
                }
                status
            }
            AuthError::Exhausted(msg) => Status::resource_exhausted(msg),
            AuthError::Overloaded => retry_later("server busy, retry later", "200"),
            AuthError::KeysUnavailable => {
                retry_later("verification keys unavailable, retry later", "1000")
            }
            AuthError::Revocations(e) => {
                tracing::warn!(error = %e, "revocation state stale");
                retry_later(
                    "revocation state unavailable, retry later",
                    crate::availability::DATABASE_DOWN_PUSHBACK_MS,
                )
            }
            AuthError::Store(e) => store_status(&e),
            AuthError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

/// `UNAVAILABLE` with gRPC retry pushback (A6): tells a retrying client or mesh when to come back.
fn retry_later(message: &str, pushback_ms: &'static str) -> Status {
    let mut status = Status::unavailable(message);
    status.metadata_mut().insert(
        "grpc-retry-pushback-ms",
        tonic::metadata::MetadataValue::from_static(pushback_ms),
    );
    status
}

impl From<StoreError> for Status {
    fn from(err: StoreError) -> Self {
        AuthError::Store(err).into()
    }
}

fn store_status(err: &StoreError) -> Status {
    match err {
        StoreError::Conflict(msg) => Status::already_exists(*msg),
        StoreError::LookAlike => {
            Status::already_exists("username looks too much like an existing username")
        }
        StoreError::LastAdmin => Status::failed_precondition(
            "refused: this would leave no enabled admin (promote or enable another admin first)",
        ),
        StoreError::Database(
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_),
        ) => {
            tracing::error!(error = %err, "database unavailable");
            retry_later(
                "storage unavailable",
                crate::availability::DATABASE_DOWN_PUSHBACK_MS,
            )
        }
        _ => {
            tracing::error!(error = %err, "storage error");
            Status::internal("internal error")
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn statuses_are_generic() {
        let s: Status = AuthError::InvalidCredentials.into();
        assert_eq!(
            (s.code(), s.message()),
            (Code::Unauthenticated, INVALID_CREDENTIALS)
        );
        let s: Status = AuthError::InvalidToken("reuse").into();
        assert_eq!(
            (s.code(), s.message()),
            (Code::Unauthenticated, INVALID_TOKEN)
        );
        let s: Status = AuthError::Store(StoreError::Database(sqlx::Error::PoolTimedOut)).into();
        assert_eq!(
            (s.code(), s.message()),
            (Code::Unavailable, "storage unavailable")
        );
        let s: Status = AuthError::Store(StoreError::Corrupt("roles".into())).into();
        assert_eq!((s.code(), s.message()), (Code::Internal, "internal error"));
        let s: Status = AuthError::Password(PasswordRefused::TooEasyToGuess).into();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().starts_with("password is too easy to guess"));
        let s: Status =
            AuthError::Revocations(crate::revocation::RevocationError::Stale { age: 61 }).into();
        assert_eq!(
            (s.code(), s.message()),
            (
                Code::Unavailable,
                "revocation state unavailable, retry later"
            )
        );
        let s: Status = AuthError::Overloaded.into();
        assert_eq!(s.code(), Code::Unavailable);
        assert!(s.metadata().get("grpc-retry-pushback-ms").is_some());
    }
}
