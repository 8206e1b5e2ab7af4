//! A [`TokenSource`] for a user account: `Login`, then `Refresh` ahead of expiry. A service calling
//! other services should be a service account instead, with
//! [`ServiceTokenSource`](super::ServiceTokenSource): short-lived tokens for one audience, no
//! password and no 30-day refresh family.
//!
//! Token ages are measured on Tokio's clock (`tokio::time::Instant`), so tests under
//! `tokio::time::pause()` can move a token to its refresh point without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use auth_proto::v1::auth_service_client::AuthServiceClient;
use auth_proto::v1::{LoginRequest, RefreshRequest};
use futures_util::future::BoxFuture;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::TokenSource;

/// Timing of a [`LoginTokenSource`].
#[derive(Debug, Clone)]
pub struct LoginTokenSourceConfig {
    /// Refresh once this fraction of the token's `expires_in` has passed (default 0.8).
    pub refresh_at: f64,
    /// Bound on one `Login` or `Refresh` call (default 10 s).
    pub call_timeout: Duration,
}

impl Default for LoginTokenSourceConfig {
    fn default() -> Self {
        Self {
            refresh_at: 0.8,
            call_timeout: Duration::from_secs(10),
        }
    }
}

struct Current {
    access: Arc<str>,
    refresh_token: String,
    refresh_after: Instant,
    expires_at: Instant,
}

struct Inner {
    client: AuthServiceClient<Channel>,
    username: String,
    password: String,
    config: LoginTokenSourceConfig,
    current: ArcSwapOption<Current>,
    renew: tokio::sync::Mutex<()>,
    logins: AtomicU64,
    refreshes: AtomicU64,
}

/// Logs in with a username and password and keeps a fresh access token.
///
/// The hot path is a lock-free read of the current token. Once `refresh_at` of its lifetime has
/// passed, the next caller refreshes it while concurrent callers wait for that one refresh
/// (single-flight). A rejected refresh token leads to a fresh `Login`; a refresh that fails for another
/// reason (auth server unreachable) keeps using the current token until it expires.
#[derive(Clone)]
pub struct LoginTokenSource {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LoginTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginTokenSource")
            .field("username", &self.inner.username)
            .finish_non_exhaustive()
    }
}

struct Issued {
    access: String,
    refresh: String,
    expires_in: i64,
}

impl LoginTokenSource {
    /// A source logging in as `username` through the auth server at `channel` (nothing is sent until
    /// the first token is needed).
    pub fn new(
        channel: Channel,
        username: impl Into<String>,
        password: impl Into<String>,
        config: LoginTokenSourceConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                client: AuthServiceClient::new(channel),
                username: username.into(),
                password: password.into(),
                config,
                current: ArcSwapOption::empty(),
                renew: tokio::sync::Mutex::new(()),
                logins: AtomicU64::new(0),
                refreshes: AtomicU64::new(0),
            }),
        }
    }

    /// Number of `Login` calls made.
    pub fn login_count(&self) -> u64 {
        self.inner.logins.load(Ordering::Relaxed)
    }

    /// Number of `Refresh` calls made.
    pub fn refresh_count(&self) -> u64 {
        self.inner.refreshes.load(Ordering::Relaxed)
    }
}

impl Inner {
    fn fresh(&self) -> Option<Arc<str>> {
        let cur = self.current.load();
        cur.as_ref()
            .filter(|c| Instant::now() < c.refresh_after)
            .map(|c| c.access.clone())
    }

    async fn login(&self) -> Result<Issued, Status> {
        self.logins.fetch_add(1, Ordering::Relaxed);
        let mut client = self.client.clone();
        let call = client.login(LoginRequest {
            username: self.username.clone(),
            password: self.password.clone(),
        });
        let r = tokio::time::timeout(self.config.call_timeout, call)
            .await
            .map_err(|_| Status::unavailable("login timed out"))??
            .into_inner();
        Ok(Issued {
            access: r.access_token,
            refresh: r.refresh_token,
            expires_in: r.expires_in,
        })
    }

    async fn refresh(&self, refresh_token: String) -> Result<Issued, Status> {
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        let mut client = self.client.clone();
        let call = client.refresh(RefreshRequest { refresh_token });
        let r = tokio::time::timeout(self.config.call_timeout, call)
            .await
            .map_err(|_| Status::unavailable("refresh timed out"))??
            .into_inner();
        Ok(Issued {
            access: r.access_token,
            refresh: r.refresh_token,
            expires_in: r.expires_in,
        })
    }

    async fn renew(&self) -> Result<Arc<str>, Status> {
        let _guard = self.renew.lock().await;
        // Someone else renewed while we waited.
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let previous = self.current.load_full();
        let issued = match &previous {
            Some(prev) => match self.refresh(prev.refresh_token.clone()).await {
                Ok(issued) => issued,
                Err(s) if matches!(s.code(), Code::Unauthenticated | Code::InvalidArgument) => {
                    tracing::info!("refresh token rejected; logging in again");
                    self.login().await?
                }
                Err(s) => {
                    if Instant::now() < prev.expires_at {
                        tracing::warn!(code = ?s.code(), "token refresh failed; using the current token");
                        return Ok(prev.access.clone());
                    }
                    return Err(s);
                }
            },
            None => self.login().await?,
        };
        let now = Instant::now();
        let lifetime = Duration::from_secs(u64::try_from(issued.expires_in).unwrap_or(0));
        let access: Arc<str> = issued.access.into();
        self.current.store(Some(Arc::new(Current {
            access: access.clone(),
            refresh_token: issued.refresh,
            refresh_after: now + lifetime.mul_f64(self.config.refresh_at.clamp(0.0, 1.0)),
            expires_at: now + lifetime,
        })));
        Ok(access)
    }
}

impl TokenSource for LoginTokenSource {
    fn token(&self) -> BoxFuture<'_, Result<Arc<str>, Status>> {
        Box::pin(async move {
            match self.inner.fresh() {
                Some(t) => Ok(t),
                None => self.inner.renew().await,
            }
        })
    }

    fn invalidate(&self) {
        // Keep the refresh token; only make the access token due for renewal.
        if let Some(cur) = self.inner.current.load_full() {
            let now = Instant::now();
            self.inner.current.store(Some(Arc::new(Current {
                access: cur.access.clone(),
                refresh_token: cur.refresh_token.clone(),
                refresh_after: now,
                expires_at: now,
            })));
        }
    }
}
