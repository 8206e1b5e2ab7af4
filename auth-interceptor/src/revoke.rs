//! Optional revocation check: asks the auth server's `Validate` RPC whether a token's session and user
//! are still active, for methods whose rule says [`Rule::revalidate`](crate::Rule::revalidate).
//!
//! Answers are cached briefly (default 5 s, bounded) by token hash. If the auth server cannot be
//! reached the request fails closed with `UNAVAILABLE`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use auth_proto::v1::ValidateRequest;
use auth_proto::v1::auth_service_client::AuthServiceClient;
use aws_lc_rs::digest::{SHA256, digest};
use tonic::transport::Channel;

use crate::error::AuthError;

/// Calls `auth.v1.AuthService/Validate` and caches the answers briefly.
#[derive(Debug)]
pub struct RevocationChecker {
    client: AuthServiceClient<Channel>,
    ttl: Duration,
    timeout: Duration,
    capacity: usize,
    answers: Mutex<HashMap<[u8; 32], (bool, Instant)>>,
}

impl RevocationChecker {
    /// A checker over `channel`, caching answers 5 s (at most 10 000), each call bounded to 2 s.
    pub fn new(channel: Channel) -> Self {
        Self {
            client: AuthServiceClient::new(channel),
            ttl: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            capacity: 10_000,
            answers: Mutex::new(HashMap::new()),
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

    fn cached(&self, key: &[u8; 32]) -> Option<bool> {
        let map = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(valid, _)| *valid)
    }

    fn remember(&self, key: [u8; 32], valid: bool) {
        let mut map = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.capacity {
            let ttl = self.ttl;
            map.retain(|_, (_, at)| at.elapsed() < ttl);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(key, (valid, Instant::now()));
    }

    /// Ok when the auth server says the (already locally verified) token is still valid.
    pub async fn check(&self, token: &str) -> Result<(), AuthError> {
        let mut key = [0u8; 32];
        key.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
        let valid = match self.cached(&key) {
            Some(v) => v,
            None => {
                let mut client = self.client.clone();
                let call = client.validate(ValidateRequest {
                    access_token: token.to_owned(),
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
