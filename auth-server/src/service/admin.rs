//! `auth.v1.AdminService`: users, sessions and key rotation, for callers with the role `admin`.

use std::sync::Arc;

use auth_interceptor::Claims;
use auth_proto::v1::admin_service_server::AdminService;
use auth_proto::v1::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tonic::{Request, Response, Status};

use super::{caller, require_live_session, source, timestamp};
use crate::audit::{Entry, Outcome};
use crate::error::AuthError;
use crate::http::metrics::RevokeReason;
use crate::input;
use crate::password::Owner;
use crate::state::AppState;
use crate::store::{AuditQuery, RevokeScope, SessionRecord, UserRecord};

pub(crate) use crate::store::ADMIN_ROLE;
const DEFAULT_PAGE_SIZE: i64 = 100;
const MAX_PAGE_SIZE: i64 = 1000;

/// The `AdminService` implementation.
#[derive(Debug, Clone)]
pub(crate) struct AdminServiceImpl {
    state: Arc<AppState>,
}

/// The authenticated admin making a call, for authorisation and the audit log.
struct Admin {
    claims: Claims,
    peer: String,
}

impl AdminServiceImpl {
    /// A service over `state`.
    pub(crate) fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }

    /// Checks the caller on current state, when the handler runs (after the request message has
    /// arrived): the session is live, the token was not issued before the user's last role change,
    /// disable or password change, and the user — as stored now, not as the token remembers — is
    /// enabled and holds the role `admin`. Then splits the request.
    async fn admin<T>(&self, request: Request<T>) -> Result<(Admin, T), AuthError> {
        if self.state.admin_api_refused {
            tracing::info!("admin API refused: HS256 mode without AUTH_HS256_ADMIN");
            return Err(AuthError::PermissionDenied);
        }
        let claims = caller(&request)?;
        require_live_session(&self.state, &claims).await?;
        let current = self.state.store.user_by_id(&claims.sub).await?;
        if !current.is_some_and(|u| !u.disabled && u.roles.iter().any(|r| r == ADMIN_ROLE)) {
            return Err(AuthError::PermissionDenied);
        }
        let peer = source(&request, &self.state);
        Ok((Admin { claims, peer }, request.into_inner()))
    }

    async fn user(&self, id: &str) -> Result<UserRecord, AuthError> {
        let id = input::id("user_id", id)?;
        self.state
            .store
            .user_by_id(id)
            .await?
            .ok_or(AuthError::NotFound("user"))
    }
}

impl AdminServiceImpl {
    /// Records an admin action in the audit trail.
    async fn audit(&self, admin: &Admin, event: &'static str, subject: &str) {
        let entry = Entry::new(event, Outcome::Success, &admin.peer)
            .actor(&admin.claims.sub)
            .subject(subject);
        self.state.audit(entry).await;
    }
}

fn user_pb(u: UserRecord) -> User {
    User {
        id: u.id,
        username: u.username,
        roles: u.roles,
        disabled: u.disabled,
        create_time: Some(timestamp(u.created_at)),
        update_time: Some(timestamp(u.updated_at)),
    }
}

fn session_pb(s: SessionRecord) -> Session {
    Session {
        id: s.id,
        user_id: s.user_id,
        create_time: Some(timestamp(s.created_at)),
        last_use_time: Some(timestamp(s.last_used_at)),
        expire_time: Some(timestamp(s.absolute_expires_at)),
    }
}

fn not_self(admin: &Admin, user_id: &str, what: &'static str) -> Result<(), AuthError> {
    if admin.claims.sub == user_id {
        Err(AuthError::FailedPrecondition(what))
    } else {
        Ok(())
    }
}

/// Validates a requested page size (0 means the default).
fn page_size(requested: i32) -> Result<i64, AuthError> {
    match i64::from(requested) {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        _ => Err(AuthError::invalid(format!(
            "page_size must be between 0 and {MAX_PAGE_SIZE}"
        ))),
    }
}

/// Decodes an opaque page token (empty: first page).
fn decode_page_token(token: &str) -> Result<Option<String>, AuthError> {
    if token.is_empty() {
        return Ok(None);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    raw.map(Some)
        .ok_or_else(|| AuthError::invalid("page_token is not valid"))
}

/// Encodes a cursor as an opaque page token.
fn encode_page_token(cursor: &str) -> String {
    URL_SAFE_NO_PAD.encode(cursor)
}

type Rpc<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl AdminService for AdminServiceImpl {
    async fn create_user(&self, request: Request<CreateUserRequest>) -> Rpc<CreateUserResponse> {
        let (admin, req) = self.admin(request).await?;
        let user = self
            .state
            .create_user(&req.username, &req.password, &req.roles)
            .await?;
        self.audit(&admin, "user.created", &user.id).await;
        Ok(Response::new(CreateUserResponse {
            user: Some(user_pb(user)),
        }))
    }

    async fn get_user(&self, request: Request<GetUserRequest>) -> Rpc<GetUserResponse> {
        let (_admin, req) = self.admin(request).await?;
        let user = match (req.user_id.is_empty(), req.username.is_empty()) {
            (false, true) => self.user(&req.user_id).await?,
            (true, false) => {
                let name = crate::username::parse(&req.username)?;
                self.state
                    .store
                    .user_by_username_key(&name.key)
                    .await?
                    .ok_or(AuthError::NotFound("user"))?
            }
            _ => return Err(AuthError::invalid("set exactly one of user_id and username").into()),
        };
        Ok(Response::new(GetUserResponse {
            user: Some(user_pb(user)),
        }))
    }

    async fn list_users(&self, request: Request<ListUsersRequest>) -> Rpc<ListUsersResponse> {
        let (_admin, req) = self.admin(request).await?;
        let size = page_size(req.page_size)?;
        let after = decode_page_token(&req.page_token)?;
        let mut users = self
            .state
            .store
            .list_users(after.as_deref(), size + 1)
            .await?;
        let next_page_token = if users.len() as i64 > size {
            users.truncate(size as usize);
            users
                .last()
                .map(|u| encode_page_token(&u.username_key))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListUsersResponse {
            users: users.into_iter().map(user_pb).collect(),
            next_page_token,
        }))
    }

    async fn set_user_roles(
        &self,
        request: Request<SetUserRolesRequest>,
    ) -> Rpc<SetUserRolesResponse> {
        let (admin, req) = self.admin(request).await?;
        let id = input::id("user_id", &req.user_id)?;
        let roles = input::roles(&req.roles)?;
        if admin.claims.sub == id && !roles.iter().any(|r| r == ADMIN_ROLE) {
            return Err(AuthError::FailedPrecondition(
                "an admin cannot remove their own admin role",
            )
            .into());
        }
        let before = self.user(id).await?.roles;
        let user = self
            .state
            .store
            .set_roles(id, &roles, self.state.now())
            .await?
            .ok_or(AuthError::NotFound("user"))?;
        self.state.revoked().await;
        let entry = Entry::new("user.roles_set", Outcome::Success, &admin.peer)
            .actor(&admin.claims.sub)
            .subject(&user.id)
            .detail(format!(
                "[{}] -> [{}]",
                before.join(", "),
                user.roles.join(", ")
            ));
        self.state.audit(entry).await;
        Ok(Response::new(SetUserRolesResponse {
            user: Some(user_pb(user)),
        }))
    }

    async fn disable_user(&self, request: Request<DisableUserRequest>) -> Rpc<DisableUserResponse> {
        let (admin, req) = self.admin(request).await?;
        let id = input::id("user_id", &req.user_id)?;
        not_self(&admin, id, "an admin cannot disable their own account")?;
        let (user, revoked) = self
            .state
            .store
            .set_disabled(id, true, self.state.now())
            .await?
            .ok_or(AuthError::NotFound("user"))?;
        self.state.revoked().await;
        self.state
            .metrics
            .sessions_revoked(RevokeReason::UserDisabled, revoked);
        self.audit(&admin, "user.disabled", &user.id).await;
        Ok(Response::new(DisableUserResponse {
            user: Some(user_pb(user)),
            revoked_sessions: revoked as i64,
        }))
    }

    async fn enable_user(&self, request: Request<EnableUserRequest>) -> Rpc<EnableUserResponse> {
        let (admin, req) = self.admin(request).await?;
        let id = input::id("user_id", &req.user_id)?;
        let (user, _) = self
            .state
            .store
            .set_disabled(id, false, self.state.now())
            .await?
            .ok_or(AuthError::NotFound("user"))?;
        self.audit(&admin, "user.enabled", &user.id).await;
        Ok(Response::new(EnableUserResponse {
            user: Some(user_pb(user)),
        }))
    }

    async fn set_user_password(
        &self,
        request: Request<SetUserPasswordRequest>,
    ) -> Rpc<SetUserPasswordResponse> {
        let (admin, req) = self.admin(request).await?;
        let st = &self.state;
        let id = input::id("user_id", &req.user_id)?;
        // Existence first: the policy judges the password against this user's name and roles.
        let user = self.user(id).await?;
        let owner = Owner {
            username_key: &user.username_key,
            roles: &user.roles,
        };
        let password = st.hasher.check_new_password(&req.password, owner).await?;
        let phc = st.hasher.hash(password).await?;
        let revoked = st
            .store
            .set_password_hash(id, &phc, st.now(), RevokeScope::All)
            .await?
            .ok_or(AuthError::NotFound("user"))?;
        self.state.revoked().await;
        st.metrics
            .sessions_revoked(RevokeReason::PasswordChanged, revoked);
        self.audit(&admin, "user.password_set", id).await;
        Ok(Response::new(SetUserPasswordResponse {
            revoked_sessions: revoked as i64,
        }))
    }

    async fn delete_user(&self, request: Request<DeleteUserRequest>) -> Rpc<DeleteUserResponse> {
        let (admin, req) = self.admin(request).await?;
        let id = input::id("user_id", &req.user_id)?;
        not_self(&admin, id, "an admin cannot delete their own account")?;
        if !self.state.store.delete_user(id, self.state.now()).await? {
            return Err(AuthError::NotFound("user").into());
        }
        self.state.revoked().await;
        self.audit(&admin, "user.deleted", id).await;
        Ok(Response::new(DeleteUserResponse {}))
    }

    async fn list_user_sessions(
        &self,
        request: Request<ListUserSessionsRequest>,
    ) -> Rpc<ListUserSessionsResponse> {
        let (_admin, req) = self.admin(request).await?;
        let user = self.user(&req.user_id).await?;
        let sessions = self
            .state
            .store
            .list_active_sessions(&user.id, self.state.now())
            .await?;
        Ok(Response::new(ListUserSessionsResponse {
            sessions: sessions.into_iter().map(session_pb).collect(),
        }))
    }

    async fn revoke_session(
        &self,
        request: Request<RevokeSessionRequest>,
    ) -> Rpc<RevokeSessionResponse> {
        let (admin, req) = self.admin(request).await?;
        let id = input::id("session_id", &req.session_id)?;
        let revoked = self
            .state
            .store
            .revoke_session(id, self.state.now())
            .await?;
        self.state.revoked().await;
        if revoked {
            self.state.metrics.sessions_revoked(RevokeReason::Admin, 1);
            self.audit(&admin, "session.revoked", id).await;
        }
        Ok(Response::new(RevokeSessionResponse { revoked }))
    }

    async fn revoke_user_sessions(
        &self,
        request: Request<RevokeUserSessionsRequest>,
    ) -> Rpc<RevokeUserSessionsResponse> {
        let (admin, req) = self.admin(request).await?;
        let user = self.user(&req.user_id).await?;
        let revoked = self
            .state
            .store
            .revoke_user_sessions(&user.id, None, self.state.now())
            .await?;
        self.state.revoked().await;
        self.state
            .metrics
            .sessions_revoked(RevokeReason::Admin, revoked);
        self.audit(&admin, "user.sessions_revoked", &user.id).await;
        Ok(Response::new(RevokeUserSessionsResponse {
            revoked_sessions: revoked as i64,
        }))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<RotateSigningKeyRequest>,
    ) -> Rpc<RotateSigningKeyResponse> {
        let (admin, req) = self.admin(request).await?;
        let r = self
            .state
            .keys
            .rotate_on_request(self.state.now(), req.force)
            .await?;
        // The log row wakes the other replicas, which reload their keys at once.
        self.state.revoked().await;
        // Publish the rotation to this replica's verifiers now.
        if self.state.key_source.refresh().await.is_err() {
            tracing::warn!(
                "key source refresh after rotation failed; it retries in the background"
            );
        }
        let entry = Entry::new("key.rotated", Outcome::Success, &admin.peer)
            .actor(&admin.claims.sub)
            .subject(&r.current)
            .detail(r.audit_detail(req.force));
        self.state.audit(entry).await;
        Ok(Response::new(RotateSigningKeyResponse {
            current_kid: r.current,
            next_kid: r.next,
            retired_kid: r.retired,
        }))
    }

    async fn list_audit_events(
        &self,
        request: Request<ListAuditEventsRequest>,
    ) -> Rpc<ListAuditEventsResponse> {
        let (_admin, req) = self.admin(request).await?;
        let limit = page_size(req.page_size)?;
        let before_id = match decode_page_token(&req.page_token)? {
            None => None,
            Some(t) => Some(
                t.parse::<i64>()
                    .map_err(|_| AuthError::invalid("page_token is not valid"))?,
            ),
        };
        let query = AuditQuery {
            user_id: (!req.user_id.is_empty()).then(|| req.user_id.clone()),
            since: req.start_time.map(|t| t.seconds),
            until: req.end_time.map(|t| t.seconds),
            before_id,
            limit: limit + 1,
        };
        let mut events = self.state.store.list_audit(&query).await?;
        let next_page_token = if events.len() as i64 > limit {
            events.truncate(limit as usize);
            events
                .last()
                .map(|e| encode_page_token(&e.id.to_string()))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let events = events
            .into_iter()
            .map(|e| AuditEvent {
                id: e.id,
                time: Some(timestamp(e.time)),
                event: e.event,
                outcome: e.outcome,
                actor: e.actor.unwrap_or_default(),
                subject: e.subject.unwrap_or_default(),
                source: e.source.unwrap_or_default(),
                detail: e.detail.unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(ListAuditEventsResponse {
            events,
            next_page_token,
        }))
    }

    // TODO(issue 11): replaced by the service-account implementation.
    async fn create_service_account(
        &self,
        _request: Request<CreateServiceAccountRequest>,
    ) -> Rpc<CreateServiceAccountResponse> {
        Err(Status::unimplemented(
            "CreateServiceAccount is not implemented yet",
        ))
    }
    async fn get_service_account(
        &self,
        _request: Request<GetServiceAccountRequest>,
    ) -> Rpc<GetServiceAccountResponse> {
        Err(Status::unimplemented(
            "GetServiceAccount is not implemented yet",
        ))
    }
    async fn list_service_accounts(
        &self,
        _request: Request<ListServiceAccountsRequest>,
    ) -> Rpc<ListServiceAccountsResponse> {
        Err(Status::unimplemented(
            "ListServiceAccounts is not implemented yet",
        ))
    }
    async fn update_service_account(
        &self,
        _request: Request<UpdateServiceAccountRequest>,
    ) -> Rpc<UpdateServiceAccountResponse> {
        Err(Status::unimplemented(
            "UpdateServiceAccount is not implemented yet",
        ))
    }
    async fn disable_service_account(
        &self,
        _request: Request<DisableServiceAccountRequest>,
    ) -> Rpc<DisableServiceAccountResponse> {
        Err(Status::unimplemented(
            "DisableServiceAccount is not implemented yet",
        ))
    }
    async fn enable_service_account(
        &self,
        _request: Request<EnableServiceAccountRequest>,
    ) -> Rpc<EnableServiceAccountResponse> {
        Err(Status::unimplemented(
            "EnableServiceAccount is not implemented yet",
        ))
    }
    async fn delete_service_account(
        &self,
        _request: Request<DeleteServiceAccountRequest>,
    ) -> Rpc<DeleteServiceAccountResponse> {
        Err(Status::unimplemented(
            "DeleteServiceAccount is not implemented yet",
        ))
    }
    async fn rotate_service_account_secret(
        &self,
        _request: Request<RotateServiceAccountSecretRequest>,
    ) -> Rpc<RotateServiceAccountSecretResponse> {
        Err(Status::unimplemented(
            "RotateServiceAccountSecret is not implemented yet",
        ))
    }
    async fn add_service_account_key(
        &self,
        _request: Request<AddServiceAccountKeyRequest>,
    ) -> Rpc<AddServiceAccountKeyResponse> {
        Err(Status::unimplemented(
            "AddServiceAccountKey is not implemented yet",
        ))
    }
    async fn remove_service_account_key(
        &self,
        _request: Request<RemoveServiceAccountKeyRequest>,
    ) -> Rpc<RemoveServiceAccountKeyResponse> {
        Err(Status::unimplemented(
            "RemoveServiceAccountKey is not implemented yet",
        ))
    }
}
