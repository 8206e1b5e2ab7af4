//! Optional revocation check: asks the auth server's `Validate` RPC whether a token's session and user
//! are still active, for methods whose rule says [`Rule::revalidate`](crate::Rule::revalidate).
//!
//! Each question names the audience the service verified the token for (`ValidateRequest.audience`,
//! the first of the verifier's audiences that the token's `aud` contains), so the auth server judges
//! the token for this service and not for the deployment's default audience.
//!
//! Answers are cached briefly (default 5 s, bounded) by the hash of the token and that audience. If the auth server cannot be
//! reached the request fails closed with `UNAVAILABLE`.
//!
//! The answers live in a `quick_cache` sharded cache, like the verified-token cache; their age is
//! measured on Tokio's clock (`tokio::time::Instant`), so tests under `tokio::time::pause()` move it.

use std::time::Duration;

use auth_proto::v1::ValidateRequest;
use auth_proto::v1::auth_service_client::AuthServiceClient;
use aws_lc_rs::digest::SHA256;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::error::AuthError;

/// Bound on the number of cached answers.
const CAPACITY: usize = 10_000;

type TokenHash = [u8; 32];

/// Calls `auth.v1.AuthService/Validate` and caches the answers briefly.
pub struct RevocationChecker {
    client: AuthServiceClient<Channel>,
    ttl: Duration,
    timeout: Duration,
    /// Token hash → (valid, when the answer arrived).
    answers: quick_cache::sync::Cache<TokenHash, (bool, Instant)>,
}

impl std::fmt::Debug for RevocationChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationChecker")
            .field("ttl", &self.ttl)
            .field("timeout", &self.timeout)
            .field("cached", &self.answers.len())
            .finish_non_exhaustive()
    }
}

impl RevocationChecker {
    /// A checker over `channel`, caching answers 5 s (at most 10 000), each call bounded to 2 s.
    pub fn new(channel: Channel) -> Self {
        Self {
            client: AuthServiceClient::new(channel),
            ttl: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            answers: quick_cache::sync::Cache::new(CAPACITY),
        }
    }

    /// How long an answer is reused (keep it short: this is the revocation delay).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Bound on one `Validate` call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The cached answer for `key`, if it is younger than the TTL; an expired one is dropped (unless
    /// a fresh answer replaced it meanwhile).
    fn cached(&self, key: &TokenHash) -> Option<bool> {
        let (valid, at) = self.answers.get(key)?;
        if at.elapsed() < self.ttl {
            return Some(valid);
        }
        self.answers
            .remove_if(key, |(_, at)| at.elapsed() >= self.ttl);
        None
    }

    fn remember(&self, key: TokenHash, valid: bool) {
        if !self.ttl.is_zero() {
            self.answers.insert(key, (valid, Instant::now()));
        }
    }

    /// Ok when the auth server says the (already locally verified) token is still valid for
    /// `audience` (the calling service's own; empty: the auth server's default audience).
    pub async fn check(&self, token: &str, audience: &str) -> Result<(), AuthError> {
        let key = answer_key(token, audience);
        let valid = match self.cached(&key) {
            Some(v) => v,
            None => {
                let mut client = self.client.clone();
                let call = client.validate(ValidateRequest {
                    access_token: token.to_owned(),
                    audience: audience.to_owned(),
                });
                match tokio::time::timeout(self.timeout, call).await {
                    Ok(Ok(resp)) => {
                        let valid = resp.into_inner().valid;
                        self.remember(key, valid);
                        valid
                    }
                    Ok(Err(status)) => {
                        tracing::warn!(code = ?status.code(), "revocation check failed");
                        return Err(AuthError::Unavailable);
                    }
                    Err(_) => {
                        tracing::warn!("revocation check timed out");
                        return Err(AuthError::Unavailable);
                    }
                }
            }
        };
        if valid {
            Ok(())
        } else {
            Err(AuthError::Revoked)
        }
    }
}

/// The cache key of an answer: SHA-256 over the audience, a separator no audience contains, and the
/// token, so the same token asked for two audiences gets two answers.
fn answer_key(token: &str, audience: &str) -> TokenHash {
    let mut ctx = aws_lc_rs::digest::Context::new(&SHA256);
    ctx.update(audience.as_bytes());
    ctx.update(&[0]);
    ctx.update(token.as_bytes());
    let mut key: TokenHash = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker(ttl: Duration) -> RevocationChecker {
        let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        RevocationChecker::new(channel).with_ttl(ttl)
    }

    #[tokio::test(start_paused = true)]
    async fn answers_expire_on_tokios_clock_and_are_bounded() {
        let c = checker(Duration::from_secs(5));
        let key = [1u8; 32];
        assert_eq!(c.cached(&key), None);
        c.remember(key, false);
        assert_eq!(c.cached(&key), Some(false));
        tokio::time::advance(Duration::from_millis(4999)).await;
        assert_eq!(c.cached(&key), Some(false));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(c.cached(&key), None);
        assert_eq!(c.answers.len(), 0, "an expired answer is dropped");
        // Bounded.
        for i in 0..2 * CAPACITY as u64 {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&i.to_le_bytes());
            c.remember(k, true);
        }
        assert!(c.answers.len() <= CAPACITY);
        // A zero TTL reuses nothing.
        let off = checker(Duration::ZERO);
        off.remember(key, true);
        assert_eq!(off.cached(&key), None);
    }

    #[test]
    fn answers_are_kept_per_audience() {
        let t = "header.payload.signature";
        assert_ne!(answer_key(t, "orders"), answer_key(t, "payments"));
        assert_ne!(answer_key(t, ""), answer_key(t, "orders"));
        // The separator keeps (audience, token) pairs apart.
        assert_ne!(answer_key("b.c", "a"), answer_key("c", "a\0b."));
        assert_eq!(answer_key(t, "orders"), answer_key(t, "orders"));
    }
}
