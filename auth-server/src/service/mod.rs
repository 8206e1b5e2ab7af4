//! The gRPC services and the helpers they share.

pub(crate) mod admin;
pub(crate) mod auth;
pub(crate) mod watch;

use auth_interceptor::{Claims, RequestAuthExt};
use tonic::Request;

use crate::audit::{Entry, Outcome};
use crate::error::AuthError;
use crate::state::AppState;
use crate::throttle::{AttemptKeys, Refusal};

/// The verified claims the interceptor layer put in the request (absent → UNAUTHENTICATED).
pub(crate) fn caller<T>(request: &Request<T>) -> Result<Claims, AuthError> {
    request
        .auth_context()
        .map(|ctx| ctx.claims().clone())
        .ok_or(AuthError::InvalidToken("no verified token"))
}

/// Rejects a token whose session has ended or whose user was disabled, deleted or changed since it
/// was issued (the interceptor alone accepts such tokens until they expire), from the revocation
/// view; `UNAVAILABLE` when the view is stale.
pub(crate) async fn require_live_session(
    state: &AppState,
    claims: &Claims,
) -> Result<(), AuthError> {
    if state.revocations.is_revoked(claims, None)? {
        Err(AuthError::InvalidToken("session not live"))
    } else {
        Ok(())
    }
}

/// Admits a login (or old-password) attempt through the throttle, counting it before any password
/// is checked; a refusal is audited in aggregate (the 1st, 10th, 100th… refusal of one lock), so a
/// throttled client cannot flood the audit trail.
pub(crate) async fn admit(
    st: &AppState,
    attempt: &AttemptKeys,
    peer: &str,
    subject: &str,
) -> Result<Result<(), Refusal>, AuthError> {
    let admitted = st
        .throttle
        .admit(st.store.as_ref(), attempt, st.now())
        .await?;
    if let Err(refusal) = &admitted
        && let Some(count) = refusal.audit_count
    {
        let detail = format!(
            "{} locked for {} s more; {count} attempts refused by this lock",
            refusal.lock, refusal.retry_after
        );
        st.audit(
            Entry::new("login.throttled", Outcome::Refused, peer)
                .subject(subject)
                .detail(detail),
        )
        .await;
    }
    Ok(admitted)
}

/// The caller's IP address, for throttling and the audit trail: the TCP peer, or the rightmost
/// entry of the trusted proxy's header when one is configured.
pub(crate) fn source<T>(request: &Request<T>, state: &AppState) -> String {
    if let Some(header) = &state.proxy_header
        && let Some(ip) = rightmost_ip(request.metadata().as_ref().get_all(header))
    {
        return ip.to_string();
    }
    request
        .remote_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "-".into())
}

/// The rightmost address of a forwarding header, all its lines joined in order (RFC 9110 §5.3): the
/// proxy appends its line after any line the client sent, so only the last entry is the proxy's word.
fn rightmost_ip<'a>(
    lines: impl IntoIterator<Item = &'a http::HeaderValue>,
) -> Option<std::net::IpAddr> {
    let last_line = lines.into_iter().last()?.to_str().ok()?;
    last_line.rsplit(',').next()?.trim().parse().ok()
}

/// A protobuf timestamp from Unix seconds.
pub(crate) fn timestamp(secs: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: secs,
        nanos: 0,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::rightmost_ip;

    #[test]
    fn the_rightmost_entry_of_the_last_line_is_the_client() {
        let one = [HeaderValue::from_static("6.6.6.6, 198.51.100.7")];
        assert_eq!(rightmost_ip(&one).unwrap().to_string(), "198.51.100.7");
        // The client sent a line of its own; the proxy added another after it.
        let two = [
            HeaderValue::from_static("6.6.6.6"),
            HeaderValue::from_static("198.51.100.7"),
        ];
        assert_eq!(rightmost_ip(&two).unwrap().to_string(), "198.51.100.7");
        assert!(rightmost_ip(&[HeaderValue::from_static("not-an-ip")]).is_none());
        assert!(rightmost_ip(&[] as &[HeaderValue]).is_none());
    }
}
