//! The service-account calls of `auth.v1.AdminService` (create, get, list, update, disable, enable,
//! delete, rotate the secret, add and remove keys), as inherent methods the trait in
//! [`super::admin`] calls. Every call is made by an admin on a live user token, and audited
//! (`service_account.*`, subject = the account id); a secret is never logged or audited.

use auth_proto::v1::*;
use secrecy::ExposeSecret;
use tonic::{Request, Response};

use super::admin::{Admin, AdminServiceImpl, Rpc, decode_page_token, encode_page_token, page_size};
use super::timestamp;
use crate::audit::{Entry, Outcome};
use crate::error::AuthError;
use crate::input;
use crate::service_accounts::{
    DEFAULT_SECRET_OVERLAP_SECS, MAX_SECRET_OVERLAP_SECS, NewAccount, jwk,
};
use crate::store::{KeyAdded, ServiceAccountKeyRecord, ServiceAccountRecord, ServiceAccountUpdate};

/// The account as the API shows it (never a secret or its MAC).
fn account_pb(a: ServiceAccountRecord) -> ServiceAccount {
    ServiceAccount {
        id: a.id,
        name: a.name,
        description: a.description,
        roles: a.roles,
        allowed_audiences: a.audiences,
        disabled: a.disabled,
        keys: a
            .keys
            .into_iter()
            .map(|k| ServiceAccountKey {
                kid: k.kid,
                alg: k.alg,
                create_time: Some(timestamp(k.created_at)),
            })
            .collect(),
        create_time: Some(timestamp(a.created_at)),
        update_time: Some(timestamp(a.updated_at)),
        previous_secret_expire_time: a.previous_secret_expires_at.map(timestamp),
    }
}

/// The overlap of a rotation, seconds: unset → 24 h; 0 to 30 days in whole seconds.
fn overlap(requested: Option<prost_types::Duration>) -> Result<i64, AuthError> {
    let Some(d) = requested else {
        return Ok(DEFAULT_SECRET_OVERLAP_SECS);
    };
    if d.seconds < 0 || d.nanos != 0 || d.seconds > MAX_SECRET_OVERLAP_SECS {
        return Err(AuthError::invalid(format!(
            "overlap must be whole seconds from 0 to {MAX_SECRET_OVERLAP_SECS}"
        )));
    }
    Ok(d.seconds)
}

fn not_found() -> AuthError {
    AuthError::NotFound("service account")
}

impl AdminServiceImpl {
    /// Records a service-account call in the audit trail.
    async fn audit_account(
        &self,
        admin: &Admin,
        event: &'static str,
        subject: &str,
        detail: Option<String>,
    ) {
        let mut entry = Entry::new(event, Outcome::Success, &admin.peer)
            .actor(&admin.claims.sub)
            .subject(subject);
        entry.detail = detail;
        self.state.audit(entry).await;
    }

    pub(super) async fn create_service_account_rpc(
        &self,
        request: Request<CreateServiceAccountRequest>,
    ) -> Rpc<CreateServiceAccountResponse> {
        let (admin, req) = self.admin(request).await?;
        let st = &self.state;
        let new = NewAccount {
            name: &req.name,
            roles: &req.roles,
            audiences: &req.allowed_audiences,
            description: &req.description,
        };
        let (account, secret) =
            crate::service_accounts::create(&*st.store, &st.secrets, st.now(), new).await?;
        let detail = format!("name {}", account.name);
        self.audit_account(&admin, "service_account.created", &account.id, Some(detail))
            .await;
        Ok(Response::new(CreateServiceAccountResponse {
            service_account: Some(account_pb(account)),
            client_secret: secret.expose_secret().to_owned(),
        }))
    }

    pub(super) async fn get_service_account_rpc(
        &self,
        request: Request<GetServiceAccountRequest>,
    ) -> Rpc<GetServiceAccountResponse> {
        let (_admin, req) = self.admin(request).await?;
        let (by_name, value) = match (req.service_account_id.is_empty(), req.name.is_empty()) {
            (false, true) => (
                false,
                input::id("service_account_id", &req.service_account_id)?,
            ),
            (true, false) => (true, crate::service_accounts::input::name(&req.name)?),
            _ => {
                return Err(
                    AuthError::invalid("give exactly one of service_account_id or name").into(),
                );
            }
        };
        let account = self
            .state
            .store
            .service_account(by_name, value)
            .await?
            .ok_or_else(not_found)?;
        Ok(Response::new(GetServiceAccountResponse {
            service_account: Some(account_pb(account)),
        }))
    }

    pub(super) async fn list_service_accounts_rpc(
        &self,
        request: Request<ListServiceAccountsRequest>,
    ) -> Rpc<ListServiceAccountsResponse> {
        let (_admin, req) = self.admin(request).await?;
        let size = page_size(req.page_size)?;
        let after = decode_page_token(&req.page_token)?;
        let mut accounts = self
            .state
            .store
            .list_service_accounts(after.as_deref(), size + 1)
            .await?;
        let next_page_token = if accounts.len() as i64 > size {
            accounts.truncate(size as usize);
            accounts
                .last()
                .map(|a| encode_page_token(&a.name))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListServiceAccountsResponse {
            service_accounts: accounts.into_iter().map(account_pb).collect(),
            next_page_token,
        }))
    }

    pub(super) async fn update_service_account_rpc(
        &self,
        request: Request<UpdateServiceAccountRequest>,
    ) -> Rpc<UpdateServiceAccountResponse> {
        let (admin, req) = self.admin(request).await?;
        let id = input::id("service_account_id", &req.service_account_id)?;
        let update = ServiceAccountUpdate {
            roles: input::roles(&req.roles)?,
            audiences: crate::service_accounts::input::audiences(&req.allowed_audiences)?,
            description: crate::service_accounts::input::description(&req.description)?,
        };
        let st = &self.state;
        let account = st
            .store
            .update_service_account(id, &update, st.now())
            .await?
            .ok_or_else(not_found)?;
        // This replica's IssueServiceToken reads the account afresh (others within the cache's TTL,
        // or at once through the revocation view when tokens ended).
        st.account_cache.forget(&account.name);
        // Taking a role or an audience away ended tokens: this replica's view has it before we answer.
        st.revoked().await;
        let detail = format!(
            "roles {:?}, audiences {:?}",
            account.roles, account.audiences
        );
        self.audit_account(&admin, "service_account.updated", id, Some(detail))
            .await;
        Ok(Response::new(UpdateServiceAccountResponse {
            service_account: Some(account_pb(account)),
        }))
    }

    async fn set_disabled(
        &self,
        admin: &Admin,
        id: &str,
        disabled: bool,
    ) -> Result<ServiceAccountRecord, AuthError> {
        let id = input::id("service_account_id", id)?;
        let st = &self.state;
        let account = st
            .store
            .set_service_account_disabled(id, disabled, st.now())
            .await?
            .ok_or_else(not_found)?;
        st.account_cache.forget(&account.name);
        if disabled {
            st.revoked().await;
        }
        let event = if disabled {
            "service_account.disabled"
        } else {
            "service_account.enabled"
        };
        self.audit_account(admin, event, id, None).await;
        Ok(account)
    }

    pub(super) async fn disable_service_account_rpc(
        &self,
        request: Request<DisableServiceAccountRequest>,
    ) -> Rpc<DisableServiceAccountResponse> {
        let (admin, req) = self.admin(request).await?;
        let account = self
            .set_disabled(&admin, &req.service_account_id, true)
            .await?;
        Ok(Response::new(DisableServiceAccountResponse {
            service_account: Some(account_pb(account)),
        }))
    }

    pub(super) async fn enable_service_account_rpc(
        &self,
        request: Request<EnableServiceAccountRequest>,
    ) -> Rpc<EnableServiceAccountResponse> {
        let (admin, req) = self.admin(request).await?;
        let account = self
            .set_disabled(&admin, &req.service_account_id, false)
            .await?;
        Ok(Response::new(EnableServiceAccountResponse {
            service_account: Some(account_pb(account)),
        }))
    }

    pub(super) async fn delete_service_account_rpc(
        &self,
        request: Request<DeleteServiceAccountRequest>,
    ) -> Rpc<DeleteServiceAccountResponse> {
        let (admin, req) = self.admin(request).await?;
        let id = input::id("service_account_id", &req.service_account_id)?;
        let st = &self.state;
        if !st.store.delete_service_account(id, st.now()).await? {
            return Err(not_found().into());
        }
        st.revoked().await;
        self.audit_account(&admin, "service_account.deleted", id, None)
            .await;
        Ok(Response::new(DeleteServiceAccountResponse {}))
    }

    pub(super) async fn rotate_service_account_secret_rpc(
        &self,
        request: Request<RotateServiceAccountSecretRequest>,
    ) -> Rpc<RotateServiceAccountSecretResponse> {
        let (admin, req) = self.admin(request).await?;
        let id = input::id("service_account_id", &req.service_account_id)?;
        let overlap = overlap(req.overlap)?;
        let st = &self.state;
        let now = st.now();
        let (secret, mac) = st.secrets.generate()?;
        let previous_until = (overlap > 0).then(|| now + overlap);
        let account = st
            .store
            .rotate_service_account_secret(id, &mac, previous_until, now)
            .await?
            .ok_or_else(not_found)?;
        st.account_cache.forget(&account.name);
        if previous_until.is_none() {
            st.revoked().await;
        }
        let detail = match previous_until {
            Some(_) => format!("previous secret accepted {overlap} s more"),
            None => "previous secret revoked with the tokens issued".to_owned(),
        };
        self.audit_account(&admin, "service_account.secret_rotated", id, Some(detail))
            .await;
        Ok(Response::new(RotateServiceAccountSecretResponse {
            service_account: Some(account_pb(account)),
            client_secret: secret.expose_secret().to_owned(),
        }))
    }

    pub(super) async fn add_service_account_key_rpc(
        &self,
        request: Request<AddServiceAccountKeyRequest>,
    ) -> Rpc<AddServiceAccountKeyResponse> {
        let (admin, req) = self.admin(request).await?;
        let id = input::id("service_account_id", &req.service_account_id)?;
        let key = jwk::parse(&req.public_jwk)?;
        let st = &self.state;
        let record = ServiceAccountKeyRecord {
            kid: key.kid.clone(),
            alg: auth_interceptor::alg_name(key.alg).to_owned(),
            public_jwk: key.json,
            created_at: st.now(),
        };
        let account = match st.store.add_service_account_key(id, &record).await? {
            None => return Err(not_found().into()),
            Some(KeyAdded::Full) => {
                return Err(AuthError::FailedPrecondition(
                    "the service account has the most keys allowed (8): remove one first",
                )
                .into());
            }
            Some(KeyAdded::KidTaken) => {
                return Err(AuthError::AlreadyExists(
                    "the service account has a key with this kid",
                )
                .into());
            }
            Some(KeyAdded::Added(account)) => *account,
        };
        st.account_cache.forget(&account.name);
        let detail = format!("kid {} ({})", record.kid, record.alg);
        self.audit_account(&admin, "service_account.key_added", id, Some(detail))
            .await;
        Ok(Response::new(AddServiceAccountKeyResponse {
            service_account: Some(account_pb(account)),
        }))
    }

    pub(super) async fn remove_service_account_key_rpc(
        &self,
        request: Request<RemoveServiceAccountKeyRequest>,
    ) -> Rpc<RemoveServiceAccountKeyResponse> {
        let (admin, req) = self.admin(request).await?;
        let id = input::id("service_account_id", &req.service_account_id)?;
        let kid = jwk::kid(&req.kid)?;
        let st = &self.state;
        let account = st
            .store
            .remove_service_account_key(id, kid, st.now())
            .await?
            .ok_or(AuthError::NotFound("service account key"))?;
        st.account_cache.forget(&account.name);
        st.revoked().await;
        let detail = format!("kid {kid}");
        self.audit_account(&admin, "service_account.key_removed", id, Some(detail))
            .await;
        Ok(Response::new(RemoveServiceAccountKeyResponse {
            service_account: Some(account_pb(account)),
        }))
    }
}
