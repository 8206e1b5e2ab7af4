//! The gRPC services and the helpers they share.

pub(crate) mod admin;
pub(crate) mod auth;

use auth_interceptor::{Claims, RequestAuthExt};
use tonic::Request;

use crate::error::AuthError;
use crate::state::AppState;

/// The verified claims the interceptor layer put in the request (absent → UNAUTHENTICATED).
pub(crate) fn caller<T>(request: &Request<T>) -> Result<Claims, AuthError> {
    request
        .auth_context()
        .map(|ctx| ctx.claims().clone())
        .ok_or(AuthError::InvalidToken("no verified token"))
}

/// Rejects a token whose session has ended or whose user was disabled or deleted since it was issued
/// (the interceptor alone accepts such tokens until they expire).
pub(crate) async fn require_live_session(
    state: &AppState,
    claims: &Claims,
) -> Result<(), AuthError> {
    let status = state.store.session_status(&claims.sid).await?;
    if AppState::session_is_live(status.as_ref(), &claims.sub, state.now()) {
        Ok(())
    } else {
        Err(AuthError::InvalidToken("session not live"))
    }
}

/// The caller's IP address, for throttling and the audit trail: the TCP peer, or the rightmost
/// entry of the trusted proxy's header when one is configured.
pub(crate) fn source<T>(request: &Request<T>, state: &AppState) -> String {
    if let Some(header) = &state.proxy_header
        && let Some(value) = request
            .metadata()
            .as_ref()
            .get(header)
            .and_then(|v| v.to_str().ok())
        && let Some(ip) = value
            .rsplit(',')
            .next()
            .and_then(|v| v.trim().parse::<std::net::IpAddr>().ok())
    {
        return ip.to_string();
    }
    request
        .remote_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "-".into())
}

/// A protobuf timestamp from Unix seconds.
pub(crate) fn timestamp(secs: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: secs,
        nanos: 0,
    }
}
