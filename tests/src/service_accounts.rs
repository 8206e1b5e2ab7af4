//! Service accounts of a [`TestServer`] as the scenarios use them: create one (and get its secret),
//! ask `IssueServiceToken` for a token with the secret, disable one.

use auth_proto::v1::issue_service_token_request::Credential;
use auth_proto::v1::{
    CreateServiceAccountRequest, DisableServiceAccountRequest, IssueServiceTokenRequest,
    IssueServiceTokenResponse, ServiceAccount,
};
use tonic::Status;

use super::harness::{TestServer, bounded};

/// A created service account and its first client secret.
#[derive(Debug, Clone)]
pub struct CreatedAccount {
    /// The account as the server returned it.
    pub account: ServiceAccount,
    /// Its client secret (`svcsec_…`), shown once.
    pub secret: String,
}

impl TestServer {
    /// `AdminService/CreateServiceAccount` with `admin_token`; panics on failure.
    pub async fn create_service_account(
        &self,
        admin_token: &str,
        name: &str,
        roles: &[&str],
        audiences: &[&str],
    ) -> CreatedAccount {
        let r = bounded(
            "CreateServiceAccount",
            self.admin_client_with(admin_token).create_service_account(
                CreateServiceAccountRequest {
                    name: name.to_owned(),
                    roles: roles.iter().map(|r| (*r).to_owned()).collect(),
                    allowed_audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
                    description: String::new(),
                },
            ),
        )
        .await
        .unwrap_or_else(|s| panic!("create service account {name:?} failed: {s:?}"))
        .into_inner();
        CreatedAccount {
            account: r.service_account.expect("account in response"),
            secret: r.client_secret,
        }
    }

    /// `AuthService/IssueServiceToken` for `client_id` with `secret` and `audience`.
    pub async fn issue_service_token(
        &self,
        client_id: &str,
        secret: &str,
        audience: &str,
    ) -> Result<IssueServiceTokenResponse, Status> {
        bounded(
            "IssueServiceToken",
            self.auth_client()
                .issue_service_token(IssueServiceTokenRequest {
                    client_id: client_id.to_owned(),
                    credential: Some(Credential::ClientSecret(secret.to_owned())),
                    audience: audience.to_owned(),
                    scopes: Vec::new(),
                }),
        )
        .await
        .map(|r| r.into_inner())
    }

    /// The access token `IssueServiceToken` gives `account` for `audience`; panics on failure.
    pub async fn service_token(&self, account: &CreatedAccount, audience: &str) -> String {
        self.issue_service_token(&account.account.name, &account.secret, audience)
            .await
            .unwrap_or_else(|s| panic!("IssueServiceToken for {audience:?} failed: {s:?}"))
            .access_token
    }

    /// `AdminService/DisableServiceAccount` with `admin_token`; panics on failure.
    pub async fn disable_service_account(&self, admin_token: &str, account: &CreatedAccount) {
        bounded(
            "DisableServiceAccount",
            self.admin_client_with(admin_token).disable_service_account(
                DisableServiceAccountRequest {
                    service_account_id: account.account.id.clone(),
                },
            ),
        )
        .await
        .unwrap_or_else(|s| panic!("disable service account failed: {s:?}"));
    }
}
