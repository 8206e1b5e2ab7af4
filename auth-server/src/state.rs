//! Shared state of the services: storage, hasher, keys, the authorizer, clock and token lifetimes.

use std::sync::Arc;

use auth_interceptor::{AuthLayer, Claims, JwksSource};

use crate::clock::Clock;
use crate::error::AuthError;
use crate::keys::KeyManager;
use crate::password::PasswordHasher;
use crate::store::{NewSession, Store, StoreError, UserRecord};
use crate::token::access::AccessTokenIssuer;
use crate::token::refresh;

/// Session lifetimes, seconds.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// A refresh token unused this long expires.
    pub idle_ttl: i64,
    /// A session ends this long after login, however it is used.
    pub absolute_ttl: i64,
}

/// Everything the RPC handlers need.
pub(crate) struct AppState {
    /// Persistence.
    pub store: Arc<dyn Store>,
    /// Password hashing.
    pub hasher: PasswordHasher,
    /// Signing keys.
    pub keys: Arc<KeyManager>,
    /// The verification keys as a refreshing key source (fed from the database).
    pub key_source: JwksSource,
    /// The server's access layer; its authorizer also verifies for `Validate` (one verifier, one
    /// verified-token cache, one key source, one clock).
    pub auth: AuthLayer,
    /// Access-token issuing.
    pub issuer: AccessTokenIssuer,
    /// Service-token issuing.
    pub service_tokens: crate::token::service::ServiceTokenIssuer,
    /// MACs of service accounts' client secrets.
    pub secrets: crate::service_accounts::secret::SecretMacs,
    /// Service accounts read recently by `IssueServiceToken`.
    pub account_cache: crate::service_accounts::cache::AccountCache,
    /// The bounded audit of issued service tokens.
    pub issued_audit: crate::service_accounts::issued::IssuedTokens,
    /// Session lifetimes.
    pub sessions: SessionPolicy,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Login throttling.
    pub throttle: crate::throttle::Throttle,
    /// Labels attempted usernames in the audit trail and the throttle (never the raw name).
    pub labels: crate::labels::NameLabels,
    /// Header carrying the client address, set by a trusted proxy.
    pub proxy_header: Option<http::HeaderName>,
    /// Whether the database answers, as last probed.
    pub database: crate::availability::DatabaseStatus,
    /// AdminService refuses every call (HS256 mode without `AUTH_HS256_ADMIN`: whoever holds the
    /// shared secret could mint an admin token).
    pub admin_api_refused: bool,
    /// The server's metrics (exposed on the HTTP side port).
    pub metrics: crate::http::metrics::Metrics,
    /// The revocation view, its follower's state and the fan-out of `WatchRevocations`.
    pub revocations: Arc<crate::revocation::Revocations>,
    /// The bounds of `WatchRevocations`.
    pub watchers: crate::service::watch::Watchers,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("keys", &self.keys)
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

/// Tokens of a new or rotated session.
#[derive(Debug)]
pub(crate) struct TokenPair {
    /// Signed JWT.
    pub access_token: String,
    /// Opaque refresh token.
    pub refresh_token: zeroize::Zeroizing<String>,
    /// Access-token lifetime, seconds.
    pub expires_in: i64,
    /// Seconds until the refresh token expires if unused.
    pub refresh_expires_in: i64,
    /// Session id.
    pub session_id: String,
}

impl AppState {
    /// Now, per the state's clock.
    pub(crate) fn now(&self) -> i64 {
        crate::clock::unix_seconds(&*self.clock)
    }

    /// Starts a session for `user`: signs an access token, then stores the session and its first
    /// refresh token (nothing is written if signing fails).
    pub(crate) async fn start_session(&self, user: &UserRecord) -> Result<TokenPair, AuthError> {
        let now = self.now();
        let session_id = uuid::Uuid::now_v7().to_string();
        let absolute_expires_at = now.saturating_add(self.sessions.absolute_ttl);
        let access = self.issuer.issue(
            &self.keys.signer(),
            user,
            &session_id,
            now,
            absolute_expires_at,
        )?;
        let (refresh_token, refresh_hash) = refresh::generate()?;
        let refresh_expires_at = now
            .saturating_add(self.sessions.idle_ttl)
            .min(absolute_expires_at);
        let session = NewSession {
            id: session_id.clone(),
            user_id: user.id.clone(),
            refresh_hash: refresh_hash.to_vec(),
            refresh_expires_at,
            absolute_expires_at,
        };
        self.store.create_session(&session, now).await?;
        Ok(TokenPair {
            access_token: access.token,
            refresh_token,
            expires_in: access.exp - now,
            refresh_expires_in: refresh_expires_at - now,
            session_id,
        })
    }

    /// The clock-skew leeway of verification, seconds (also for client assertions).
    pub(crate) fn leeway(&self) -> i64 {
        let leeway = self.auth.authorizer().verifier().config().leeway.as_secs();
        i64::try_from(leeway).unwrap_or(i64::MAX)
    }

    /// Verifies an access token as the server's layer does (cache, key source with refetch, clock),
    /// with the audience rule of the call: the deployment's, or the calling service's own
    /// (`Validate` with an audience). One cache and one key source for every rule.
    pub(crate) async fn verify_access_token_for(
        &self,
        token: &str,
        audience: auth_interceptor::AudienceCheck<'_>,
    ) -> Result<Arc<Claims>, auth_interceptor::AuthError> {
        self.auth
            .authorizer()
            .verify_token_for(token, audience)
            .await
    }

    /// Creates a user with a password and roles (see [`create_user`]).
    pub(crate) async fn create_user(
        &self,
        username: &str,
        password: &str,
        roles: &[String],
    ) -> Result<UserRecord, AuthError> {
        create_user(
            &*self.store,
            &self.hasher,
            self.now(),
            username,
            password,
            roles,
        )
        .await
    }

    /// Syncs the revocation view with the log after a committed change that ended tokens, so this
    /// replica's checks see it before the RPC returns.
    pub(crate) async fn revoked(&self) {
        self.revocations.sync().await;
    }
}

/// Creates a user with a password and roles (admin API, CLI and bootstrap admin): validates the
/// username, roles and password policy, hashes, and stores; a taken username, or one that looks like
/// an existing one (same skeleton), is ALREADY_EXISTS.
pub(crate) async fn create_user(
    store: &dyn Store,
    hasher: &PasswordHasher,
    now: i64,
    username: &str,
    password: &str,
    roles: &[String],
) -> Result<UserRecord, AuthError> {
    let name = crate::username::parse(username)?;
    let roles = crate::input::roles(roles)?;
    let owner = crate::password::Owner {
        username_key: &name.key,
        roles: &roles,
    };
    let phc = hasher
        .hash(hasher.check_new_password(password, owner).await?)
        .await?;
    let user = UserRecord {
        id: uuid::Uuid::now_v7().to_string(),
        username: name.display,
        username_key: name.key,
        username_skeleton: Some(name.skeleton),
        password_hash: Some(phc),
        roles,
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    store.create_user(&user).await.map_err(|e| match e {
        StoreError::Conflict(_) => AuthError::AlreadyExists("username already exists"),
        other => other.into(),
    })?;
    Ok(user)
}
