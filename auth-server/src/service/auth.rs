//! `auth.v1.AuthService`: Login, Refresh, Validate, Logout, GetJwks and ChangePassword.

use std::sync::Arc;

use auth_interceptor::VerifyError;
use auth_proto::v1::auth_service_server::AuthService;
use auth_proto::v1::{
    AccessTokenClaims, ChangePasswordRequest, ChangePasswordResponse, GetJwksRequest,
    GetJwksResponse, InvalidReason, IssueServiceTokenRequest, IssueServiceTokenResponse,
    LoginRequest, LoginResponse, LogoutRequest, LogoutResponse, RefreshRequest, RefreshResponse,
    TokenKind, ValidateRequest, ValidateResponse, WatchRevocationsRequest,
};
use tonic::{Request, Response, Status};

use super::{admit, caller, source, timestamp};
use crate::audit::{Entry, Outcome};
use crate::error::AuthError;
use crate::http::metrics::{Grant, LoginResult, RevokeReason, ValidationReason, ValidationResult};
use crate::password::Owner;
use crate::state::AppState;
use crate::store::{RevokeScope, RotateOutcome};
use crate::throttle::AttemptKeys;
use crate::token::refresh;
use crate::username;

const TOKEN_TYPE: &str = "Bearer";

/// The `AuthService` implementation.
#[derive(Debug, Clone)]
pub(crate) struct AuthServiceImpl {
    state: Arc<AppState>,
}

impl AuthServiceImpl {
    /// A service over `state`.
    pub(crate) fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }

    async fn login(&self, peer: &str, req: LoginRequest) -> Result<LoginResponse, AuthError> {
        let st = &self.state;
        let name = username::parse(&req.username)?;
        let password = st.hasher.check_login_input(&req.password)?;
        let attempt = AttemptKeys::new(&st.labels, &name.key, peer);
        // A hashing slot first (a shed login is not counted), then the attempt is counted before the
        // password is checked: concurrent attempts, replicas and callers that give up mid-hash cannot
        // check more passwords than the throttle allows.
        let slot = st.hasher.slot().await?;
        let user = st.store.user_by_username_key(&name.key).await?;
        // The audit trail names an account by its id, and an attempted name that has no account by
        // its label: what was typed (perhaps a password in the wrong field) is never recorded.
        let subject = match &user {
            Some(u) => u.id.clone(),
            None => st.labels.unknown(&name.key),
        };
        if let Err(refusal) = admit(st, &attempt, peer, &subject).await? {
            return Err(refusal.error());
        }
        // Unknown users and password-less accounts are verified against a dummy hash: same cost.
        let phc = user.as_ref().and_then(|u| u.password_hash.clone());
        let verified = st.hasher.verify_in(slot, password.clone(), phc).await?;
        let user = match user {
            Some(u) if verified.ok && !u.disabled => u,
            other => {
                let cause = match other {
                    None => "unknown user",
                    Some(u) if u.disabled => "user disabled",
                    Some(_) => "wrong password",
                };
                let entry = Entry::new("login.failed", Outcome::Failure, peer)
                    .subject(&subject)
                    .detail(cause);
                st.audit(entry).await;
                return Err(AuthError::InvalidCredentials);
            }
        };
        if verified.needs_rehash {
            match st.hasher.hash(password).await {
                Ok(phc) => {
                    if let Err(e) = st
                        .store
                        .set_password_hash(&user.id, &phc, st.now(), RevokeScope::None)
                        .await
                    {
                        tracing::warn!(error = %e, user_id = %user.id, "password rehash not stored");
                    } else {
                        tracing::info!(user_id = %user.id, "password rehashed with current parameters");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "password rehash failed"),
            }
        }
        let pair = st.start_session(&user).await?;
        st.metrics.token_pair_issued(Grant::Password);
        st.throttle.succeeded(st.store.as_ref(), &attempt).await?;
        st.audit(
            Entry::new("login.succeeded", Outcome::Success, peer)
                .actor(&user.id)
                .subject(&pair.session_id),
        )
        .await;
        Ok(LoginResponse {
            access_token: pair.access_token,
            refresh_token: pair.refresh_token.to_string(),
            token_type: TOKEN_TYPE.into(),
            expires_in: pair.expires_in,
            refresh_expires_in: pair.refresh_expires_in,
        })
    }

    async fn refresh(&self, peer: &str, req: RefreshRequest) -> Result<RefreshResponse, AuthError> {
        let st = &self.state;
        let old = refresh::digest(&req.refresh_token)
            .ok_or(AuthError::InvalidToken("malformed refresh token"))?;
        let (token, new_hash) = refresh::generate()?;
        let now = st.now();
        match st
            .store
            .rotate_refresh(&old, &new_hash, now, st.sessions.idle_ttl)
            .await?
        {
            RotateOutcome::Rotated {
                session,
                user,
                refresh_expires_at,
            } => {
                let access = st.issuer.issue(
                    &st.keys.signer(),
                    &user,
                    &session.id,
                    now,
                    session.absolute_expires_at,
                )?;
                st.metrics.token_pair_issued(Grant::RefreshToken);
                st.audit(
                    Entry::new("refresh.succeeded", Outcome::Success, peer)
                        .actor(&user.id)
                        .subject(&session.id),
                )
                .await;
                Ok(RefreshResponse {
                    access_token: access.token,
                    refresh_token: token.to_string(),
                    token_type: TOKEN_TYPE.into(),
                    expires_in: access.exp - now,
                    refresh_expires_in: refresh_expires_at - now,
                })
            }
            RotateOutcome::Reused {
                session_id,
                user_id,
            } => {
                st.revoked().await;
                st.metrics.refresh_reuse_detected();
                st.metrics.sessions_revoked(RevokeReason::RefreshReuse, 1);
                let entry = Entry::new("refresh.reuse_detected", Outcome::Failure, peer)
                    .actor(&user_id)
                    .subject(&session_id)
                    .detail("spent refresh token presented again: session revoked");
                st.audit(entry).await;
                Err(AuthError::InvalidToken("refresh token reuse"))
            }
            RotateOutcome::Rejected => Err(AuthError::InvalidToken(
                "refresh token unknown, expired or revoked",
            )),
        }
    }

    async fn validate(&self, req: ValidateRequest) -> Result<ValidateResponse, AuthError> {
        let st = &self.state;
        let claims = match st.verify_access_token(&req.access_token).await {
            Ok(c) => c,
            Err(auth_interceptor::AuthError::Invalid(e)) => {
                tracing::debug!(reason = %e, "validate: token rejected");
                return Ok(invalid(reason(e)));
            }
            Err(e) if e.code() == tonic::Code::Unavailable => {
                return Err(AuthError::KeysUnavailable);
            }
            Err(e) => {
                tracing::debug!(reason = %e, "validate: token rejected");
                return Ok(invalid(InvalidReason::Malformed));
            }
        };
        // From memory: no database round trip (see `crate::revocation`).
        if st
            .revocations
            .is_token_revoked(&claims, &req.access_token)?
        {
            tracing::debug!(session_id = %claims.sid, "validate: token revoked");
            return Ok(invalid(InvalidReason::Revoked));
        }
        Ok(ValidateResponse {
            valid: true,
            reason: InvalidReason::Unspecified.into(),
            claims: Some(AccessTokenClaims {
                subject: claims.sub.clone(),
                username: claims.username.clone(),
                roles: claims.roles.clone(),
                session_id: claims.sid.clone(),
                token_id: claims.jti.clone(),
                issuer: claims.iss.clone(),
                audience: claims.aud.iter().map(str::to_owned).collect(),
                issue_time: Some(timestamp(claims.iat as i64)),
                expire_time: Some(timestamp(claims.exp as i64)),
                client_id: claims.client_id.clone(),
                kind: TokenKind::User.into(),
            }),
        })
    }

    async fn logout(&self, peer: &str, req: LogoutRequest) -> Result<LogoutResponse, AuthError> {
        // Same answer whether or not the token was known: no oracle.
        if let Some(hash) = refresh::digest(&req.refresh_token)
            && let Some((session_id, user_id)) = self
                .state
                .store
                .revoke_session_by_refresh(&hash, self.state.now())
                .await?
        {
            self.state.revoked().await;
            self.state.metrics.sessions_revoked(RevokeReason::Logout, 1);
            let entry = Entry::new("logout", Outcome::Success, peer)
                .actor(&user_id)
                .subject(&session_id);
            self.state.audit(entry).await;
        }
        Ok(LogoutResponse {})
    }

    async fn change_password(
        &self,
        peer: &str,
        claims: &auth_interceptor::Claims,
        req: ChangePasswordRequest,
    ) -> Result<ChangePasswordResponse, AuthError> {
        let st = &self.state;
        super::require_live_session(st, claims).await?;
        let old = st.hasher.check_login_input(&req.old_password)?;
        let user = st
            .store
            .user_by_id(&claims.sub)
            .await?
            .ok_or(AuthError::InvalidToken("user gone"))?;
        // The new password is judged before the old one is checked (nothing about the old one is
        // learnt from a refusal), against the user's name and roles as stored.
        let owner = Owner {
            username_key: &user.username_key,
            roles: &user.roles,
        };
        let new = st
            .hasher
            .check_new_password(&req.new_password, owner)
            .await?;
        // Guessing the old password with a stolen token is throttled like a login.
        let attempt = AttemptKeys::new(&st.labels, &user.username_key, peer);
        let slot = st.hasher.slot().await?;
        if let Err(refusal) = admit(st, &attempt, peer, &user.id).await? {
            return Err(refusal.error());
        }
        if !st
            .hasher
            .verify_in(slot, old, user.password_hash.clone())
            .await?
            .ok
        {
            st.audit(
                Entry::new("password.change_failed", Outcome::Failure, peer)
                    .actor(&user.id)
                    .subject(&user.id),
            )
            .await;
            return Err(AuthError::InvalidCredentials);
        }
        st.throttle.succeeded(st.store.as_ref(), &attempt).await?;
        let phc = st.hasher.hash(new).await?;
        let revoked = st
            .store
            .set_password_hash(
                &user.id,
                &phc,
                st.now(),
                RevokeScope::AllExcept(&claims.sid),
            )
            .await?
            .ok_or(AuthError::InvalidToken("user gone"))?;
        st.revoked().await;
        st.metrics
            .sessions_revoked(RevokeReason::PasswordChanged, revoked);
        let entry = Entry::new("password.changed", Outcome::Success, peer)
            .actor(&user.id)
            .subject(&user.id)
            .detail(format!("{revoked} other sessions ended"));
        st.audit(entry).await;
        Ok(ChangePasswordResponse {
            revoked_sessions: revoked as i64,
        })
    }
}

fn invalid(reason: InvalidReason) -> ValidateResponse {
    ValidateResponse {
        valid: false,
        claims: None,
        reason: reason.into(),
    }
}

fn reason(e: VerifyError) -> InvalidReason {
    match e {
        VerifyError::TooLarge => InvalidReason::TooLarge,
        VerifyError::UnknownKey => InvalidReason::UnknownKey,
        VerifyError::BadSignature => InvalidReason::BadSignature,
        VerifyError::Expired => InvalidReason::Expired,
        VerifyError::NotYetValid => InvalidReason::NotYetValid,
        VerifyError::WrongAudience => InvalidReason::WrongAudience,
        VerifyError::WrongIssuer => InvalidReason::WrongIssuer,
        _ => InvalidReason::Malformed,
    }
}

#[tonic::async_trait]
impl AuthService for AuthServiceImpl {
    async fn login(
        &self,
        request: Request<LoginRequest>,
    ) -> Result<Response<LoginResponse>, Status> {
        let peer = source(&request, &self.state);
        // The login runs to its end even if the caller goes away (deadline, RST_STREAM): an attempt
        // that was counted is also checked and audited, so cancelling changes nothing. What runs is
        // bounded by the hashing slots and queue, taken first.
        let this = self.clone();
        let login = tokio::spawn(async move {
            let answer = this.login(&peer, request.into_inner()).await;
            this.state.metrics.login(LoginResult::of(&answer));
            answer
        });
        let answer = login
            .await
            .map_err(|e| AuthError::Internal(format!("login task failed: {e}")))?;
        Ok(Response::new(answer?))
    }

    async fn refresh(
        &self,
        request: Request<RefreshRequest>,
    ) -> Result<Response<RefreshResponse>, Status> {
        let peer = source(&request, &self.state);
        Ok(Response::new(
            self.refresh(&peer, request.into_inner()).await?,
        ))
    }

    async fn validate(
        &self,
        request: Request<ValidateRequest>,
    ) -> Result<Response<ValidateResponse>, Status> {
        let answer = self.validate(request.into_inner()).await;
        let (result, reason) = match &answer {
            Ok(r) if r.valid => (ValidationResult::Valid, ValidationReason::None),
            Ok(r) => (ValidationResult::Invalid, r.reason().into()),
            Err(AuthError::KeysUnavailable) => {
                (ValidationResult::Error, ValidationReason::KeysUnavailable)
            }
            Err(_) => (ValidationResult::Error, ValidationReason::Failure),
        };
        self.state.metrics.validation(result, reason);
        Ok(Response::new(answer?))
    }

    async fn logout(
        &self,
        request: Request<LogoutRequest>,
    ) -> Result<Response<LogoutResponse>, Status> {
        let peer = source(&request, &self.state);
        Ok(Response::new(
            self.logout(&peer, request.into_inner()).await?,
        ))
    }

    async fn get_jwks(
        &self,
        _request: Request<GetJwksRequest>,
    ) -> Result<Response<GetJwksResponse>, Status> {
        Ok(Response::new(GetJwksResponse {
            jwks_json: self.state.keys.jwks_json().as_ref().clone(),
        }))
    }

    async fn change_password(
        &self,
        request: Request<ChangePasswordRequest>,
    ) -> Result<Response<ChangePasswordResponse>, Status> {
        let peer = source(&request, &self.state);
        let claims = caller(&request)?;
        Ok(Response::new(
            self.change_password(&peer, &claims, request.into_inner())
                .await?,
        ))
    }

    // TODO(issue 11): replaced by the service-account implementation.
    async fn issue_service_token(
        &self,
        _request: Request<IssueServiceTokenRequest>,
    ) -> Result<Response<IssueServiceTokenResponse>, Status> {
        Err(Status::unimplemented(
            "IssueServiceToken is not implemented yet",
        ))
    }

    type WatchRevocationsStream = super::watch::RevocationStream;

    async fn watch_revocations(
        &self,
        request: Request<WatchRevocationsRequest>,
    ) -> Result<Response<Self::WatchRevocationsStream>, Status> {
        let claims = caller(&request)?;
        let stream =
            super::watch::open(&self.state, claims, request.into_inner().after_sequence).await?;
        Ok(Response::new(stream))
    }
}
