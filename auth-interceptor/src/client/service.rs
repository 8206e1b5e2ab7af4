//! A [`TokenSource`] for a service account: `AuthService/IssueServiceToken` for one audience, cached
//! and renewed ahead of expiry (single-flight), with jittered backoff while the auth server is away.
//!
//! Time — a token's renewal point and expiry, backoff, an assertion's `iat`/`exp` — is read from an
//! injected [`Clock`] (the system clock unless [`ServiceTokenSource::with_clock`] says otherwise), so
//! tests move it instead of sleeping.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use auth_proto::v1::IssueServiceTokenRequest;
use auth_proto::v1::auth_service_client::AuthServiceClient;
use futures_util::future::BoxFuture;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::TokenSource;
use super::backoff::{MIN_BACKOFF, backoff, random};
use super::credentials::ServiceCredentials;
use crate::clock::Clock;

/// Timing of a [`ServiceTokenSource`].
#[derive(Debug, Clone)]
pub struct ServiceTokenSourceConfig {
    /// Renew once this fraction of the token's `expires_in` has passed (0.0 to 1.0, default 0.8:
    /// a 5-minute token is renewed after 4 minutes).
    pub renew_at: f64,
    /// Bound on one `IssueServiceToken` call (default 10 s).
    pub call_timeout: Duration,
    /// First wait after a failed call (default 1 s, at least 100 ms); doubles with each failure in a
    /// row, each wait drawn at random between half and all of it (jitter), so replicas do not retry
    /// in step.
    pub backoff_initial: Duration,
    /// Longest wait between attempts (default 60 s, at least `backoff_initial`). After a permanent refusal
    /// (`UNAUTHENTICATED`, `PERMISSION_DENIED`, `INVALID_ARGUMENT`) the source waits this long
    /// before asking again, answering the refusal meanwhile.
    pub backoff_max: Duration,
    /// Down-scoping: ask for only these of the account's roles (empty: all of them).
    pub scopes: Vec<String>,
}

impl Default for ServiceTokenSourceConfig {
    fn default() -> Self {
        Self {
            renew_at: 0.8,
            call_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            scopes: Vec::new(),
        }
    }
}

/// What every source of one account shares: the channel, the credentials, the timing and the clock.
struct Account {
    client: AuthServiceClient<Channel>,
    credentials: ServiceCredentials,
    config: ServiceTokenSourceConfig,
    clock: Arc<dyn Clock>,
}

struct Current {
    access: Arc<str>,
    /// Seconds since the Unix epoch.
    issued_at: u64,
    renew_after: u64,
    expires_at: u64,
    /// A service refused it ([`TokenSource::invalidate`]).
    refused: bool,
}

/// The last failure of a run of failures.
struct Failure {
    code: Code,
    message: String,
    permanent: bool,
    /// Failures in a row.
    attempts: u32,
    /// No call before this, milliseconds since the Unix epoch.
    retry_at_ms: u64,
}

impl Failure {
    fn status(&self) -> Status {
        Status::new(self.code, self.message.clone())
    }
}

struct Inner {
    account: Arc<Account>,
    audience: String,
    current: ArcSwapOption<Current>,
    failure: Mutex<Option<Failure>>,
    renew: tokio::sync::Mutex<()>,
    issues: AtomicU64,
    /// Tokens in a row replaced because a service refused them (spaces the replacements).
    refusals: AtomicU32,
}

/// Keeps a fresh service token for one audience.
///
/// The hot path is a lock-free read of the cached token. Once `renew_at` of its lifetime has passed,
/// the next caller asks for a new one (single-flight): concurrent callers meanwhile get the current
/// token, or, when there is none (the first call, or after expiry), wait for that one call. While the auth server is unavailable the current token is used until it
/// expires, and calls are spaced by a jittered exponential backoff (callers in between get the
/// current token or the last error at once). A permanent refusal (`UNAUTHENTICATED`: the secret,
/// key or account is no longer valid; `PERMISSION_DENIED`: an audience the account may not ask for)
/// is surfaced at once, drops the cached token, and is not retried before `backoff_max`. A token a
/// service refused ([`TokenSource::invalidate`], e.g. through
/// [`with_auth_retry`](super::with_auth_retry)) is replaced at once the first time; replacements
/// in a row are spaced like failed calls (1 s, 2 s, … up to `backoff_max` after the last one).
///
/// A source is for one audience; [`ServiceTokenSource::for_audience`] makes another sharing the
/// channel and credentials, which costs one small allocation.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use auth_interceptor::client::{
///     ClientAuthLayer, ServiceCredentials, ServiceTokenSource, ServiceTokenSourceConfig,
/// };
/// use auth_proto::demo::greeter_service_client::GreeterServiceClient;
/// use tower_layer::Layer;
///
/// let auth = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051").connect_lazy();
/// let creds = ServiceCredentials::secret_file("payments", "/var/run/secrets/payments/client-secret")?;
/// let orders = ServiceTokenSource::new(auth, creds, "orders.v1.OrderService",
///     ServiceTokenSourceConfig::default());
/// let greeter = orders.for_audience("demo.v1.GreeterService");
/// let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50052").connect_lazy();
/// let client = GreeterServiceClient::new(ClientAuthLayer::new(greeter).layer(channel));
/// # let _ = client; Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServiceTokenSource {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ServiceTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceTokenSource")
            .field("credentials", &self.inner.account.credentials)
            .field("audience", &self.inner.audience)
            .finish_non_exhaustive()
    }
}

impl ServiceTokenSource {
    /// A source of tokens for `audience` from the auth server at `channel` (nothing is sent until
    /// the first token is needed).
    pub fn new(
        channel: Channel,
        credentials: ServiceCredentials,
        audience: impl Into<String>,
        config: ServiceTokenSourceConfig,
    ) -> Self {
        let account = Arc::new(Account {
            client: AuthServiceClient::new(channel),
            credentials,
            config,
            clock: crate::clock::system(),
        });
        Self::of(account, audience.into())
    }

    fn of(account: Arc<Account>, audience: String) -> Self {
        Self {
            inner: Arc::new(Inner {
                account,
                audience,
                current: ArcSwapOption::empty(),
                failure: Mutex::new(None),
                renew: tokio::sync::Mutex::new(()),
                issues: AtomicU64::new(0),
                refusals: AtomicU32::new(0),
            }),
        }
    }

    /// Reads time from `clock` instead of the system clock. Returns a fresh source (nothing cached)
    /// for the same account and audience; sources made from it with
    /// [`ServiceTokenSource::for_audience`] share the clock.
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        let a = &self.inner.account;
        let account = Arc::new(Account {
            client: a.client.clone(),
            credentials: a.credentials.clone(),
            config: a.config.clone(),
            clock,
        });
        Self::of(account, self.inner.audience.clone())
    }

    /// A source for another audience of the same account, sharing the channel, credentials, timing
    /// and clock, with a token cache of its own.
    pub fn for_audience(&self, audience: impl Into<String>) -> Self {
        Self::of(self.inner.account.clone(), audience.into())
    }

    /// The audience this source asks tokens for.
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// Number of `IssueServiceToken` calls this source made.
    pub fn issue_count(&self) -> u64 {
        self.inner.issues.load(Ordering::Relaxed)
    }
}

impl Inner {
    fn now(&self) -> u64 {
        self.account.clock.unix_now()
    }

    fn fresh(&self, now: u64) -> Option<Arc<str>> {
        let cur = self.current.load();
        cur.as_ref()
            .filter(|c| now < c.renew_after)
            .map(|c| c.access.clone())
    }

    fn failure(&self) -> std::sync::MutexGuard<'_, Option<Failure>> {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn issue(&self, now: u64) -> Result<(String, u64), Status> {
        self.issues.fetch_add(1, Ordering::Relaxed);
        let credential = self
            .account
            .credentials
            .credential(now)
            .map_err(Status::failed_precondition)?;
        let mut client = self.account.client.clone();
        let call = client.issue_service_token(IssueServiceTokenRequest {
            client_id: self.account.credentials.client_id().to_owned(),
            credential: Some(credential),
            audience: self.audience.clone(),
            scopes: self.account.config.scopes.clone(),
        });
        let r = tokio::time::timeout(self.account.config.call_timeout, call)
            .await
            .map_err(|_| Status::unavailable("IssueServiceToken timed out"))??
            .into_inner();
        Ok((r.access_token, u64::try_from(r.expires_in).unwrap_or(0)))
    }

    /// The current token if it has not expired yet.
    fn usable(&self, now: u64) -> Option<Arc<str>> {
        let cur = self.current.load();
        cur.as_ref()
            .filter(|c| now < c.expires_at)
            .map(|c| c.access.clone())
    }

    async fn renew(&self) -> Result<Arc<str>, Status> {
        let _guard = match self.renew.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // Someone else is renewing: meanwhile the current token is good enough, if any.
                if let Some(t) = self.usable(self.now()) {
                    return Ok(t);
                }
                self.renew.lock().await
            }
        };
        let now = self.now();
        // Someone else renewed while we waited.
        if let Some(t) = self.fresh(now) {
            return Ok(t);
        }
        let usable = self.usable(now);
        let current = self.current.load_full();
        let replacing_refused = current
            .as_ref()
            .is_some_and(|c| c.refused && now < c.expires_at);
        if let Some(c) = current.as_ref().filter(|_| replacing_refused) {
            // A token a service refused is replaced at once the first time, then no more often than
            // the backoff allows: a service that refuses every token (a wrong audience, say) must
            // not turn each of its calls into an IssueServiceToken.
            let config = &self.account.config;
            let refusals = self.refusals.load(Ordering::Relaxed);
            let wait = backoff(config.backoff_initial, config.backoff_max, refusals, 1.0);
            let since = now.saturating_sub(c.issued_at).saturating_mul(1000);
            if refusals > 0 && u128::from(since) < wait.as_millis() {
                return Ok(c.access.clone());
            }
        }
        if let Some(f) = self.failure().as_ref()
            && now.saturating_mul(1000) < f.retry_at_ms
        {
            return match usable {
                Some(t) if !f.permanent => Ok(t),
                _ => Err(f.status()),
            };
        }
        match self.issue(now).await {
            Ok((access, lifetime)) => {
                let access: Arc<str> = access.into();
                let renew_in =
                    (lifetime as f64 * self.account.config.renew_at.clamp(0.0, 1.0)).floor() as u64;
                // Read the clock again: the call took time.
                let now = self.now();
                self.current.store(Some(Arc::new(Current {
                    access: access.clone(),
                    issued_at: now,
                    renew_after: now.saturating_add(renew_in),
                    expires_at: now.saturating_add(lifetime),
                    refused: false,
                })));
                if replacing_refused {
                    self.refusals.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.refusals.store(0, Ordering::Relaxed);
                }
                *self.failure() = None;
                Ok(access)
            }
            Err(status) => {
                let permanent = matches!(
                    status.code(),
                    Code::Unauthenticated | Code::PermissionDenied | Code::InvalidArgument
                );
                let attempts = self.failure().as_ref().map_or(0, |f| f.attempts) + 1;
                let config = &self.account.config;
                let wait = if permanent {
                    config
                        .backoff_max
                        .max(config.backoff_initial.max(MIN_BACKOFF))
                } else {
                    backoff(
                        config.backoff_initial,
                        config.backoff_max,
                        attempts,
                        random(),
                    )
                };
                let now_ms = self.now().saturating_mul(1000);
                *self.failure() = Some(Failure {
                    code: status.code(),
                    message: status.message().to_owned(),
                    permanent,
                    attempts,
                    retry_at_ms: now_ms.saturating_add(wait.as_millis() as u64),
                });
                let client_id = self.account.credentials.client_id();
                if permanent {
                    tracing::warn!(client_id, audience = %self.audience, code = ?status.code(),
                        "service token refused; not asking again for {} s", wait.as_secs());
                    self.current.store(None);
                    return Err(status);
                }
                tracing::warn!(client_id, audience = %self.audience, code = ?status.code(),
                    attempts, "service token renewal failed; retrying in {} ms", wait.as_millis());
                usable.ok_or(status)
            }
        }
    }
}

impl TokenSource for ServiceTokenSource {
    fn token(&self) -> BoxFuture<'_, Result<Arc<str>, Status>> {
        Box::pin(async move {
            match self.inner.fresh(self.inner.now()) {
                Some(t) => Ok(t),
                None => self.inner.renew().await,
            }
        })
    }

    fn invalidate(&self) {
        // The token was refused: the next caller asks for a new one, subject to the backoff of
        // failed calls and to the spacing of replacements (see `renew`), so a service refusing
        // every token cannot make this source hammer the auth server.
        if let Some(cur) = self.inner.current.load_full() {
            self.inner.current.store(Some(Arc::new(Current {
                access: cur.access.clone(),
                issued_at: cur.issued_at,
                renew_after: 0,
                expires_at: cur.expires_at,
                refused: true,
            })));
        }
    }
}
