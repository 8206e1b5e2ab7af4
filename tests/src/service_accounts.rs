//! Service accounts in the scenarios: creating one as an admin, asking for tokens with its secret or
//! with an RFC 7523 assertion signed by an [`AssertionKey`], `Validate` with an audience, and the
//! rows that must not change when a call is refused.

use auth_proto::v1::issue_service_token_request::Credential;
use auth_proto::v1::{
    CreateServiceAccountRequest, DisableServiceAccountRequest, IssueServiceTokenRequest,
    IssueServiceTokenResponse, ServiceAccount, ValidateRequest, ValidateResponse,
};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tonic::Status;

use super::database::Db;
use super::harness::{TestServer, bounded};
use super::tokens::{jwt_header, sign_with};

/// A service account's key pair for client assertions.
pub struct AssertionKey {
    /// Its `kid`.
    pub kid: String,
    /// `EdDSA` or `ES256`.
    pub alg: Algorithm,
    /// The private key.
    pub key: EncodingKey,
    /// The public JWK, as `AddServiceAccountKey` takes it.
    pub public_jwk: String,
}

impl AssertionKey {
    /// A fresh key pair for `alg` (EdDSA or ES256).
    pub fn generate(alg: Algorithm) -> Self {
        let g = auth_server::keys::generate::generate(alg).expect("key pair");
        let key = auth_server::keys::generate::encoding_key(alg, &g.pkcs8).expect("encoding key");
        Self {
            kid: g.kid,
            alg,
            key,
            public_jwk: serde_json::to_string(&g.public_jwk).expect("JWK"),
        }
    }

    /// Signs `claims` with this key, its `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let header = jwt_header(auth_interceptor::alg_name(self.alg), &self.kid);
        sign_with(&self.key, self.alg, &header, claims)
    }

    /// A valid assertion of `client_id` for the server `s` at its clock: `exp` 60 s ahead, a fresh
    /// `jti`.
    pub fn assertion(&self, s: &TestServer, client_id: &str) -> String {
        self.sign(&assertion_claims(s, client_id))
    }
}

/// Valid assertion claims of `client_id` for `s` (its issuer is "auth-server", the harness default).
pub fn assertion_claims(s: &TestServer, client_id: &str) -> Value {
    let now = s.now();
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": "auth-server",
        "iat": now,
        "exp": now + 60,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

impl TestServer {
    /// Creates a service account as `admin_token`; returns it and its client secret. Panics on failure.
    pub async fn create_service_account(
        &self,
        admin_token: &str,
        name: &str,
        roles: &[&str],
        audiences: &[&str],
    ) -> (ServiceAccount, String) {
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
        (r.service_account.expect("account"), r.client_secret)
    }

    /// `IssueServiceToken` with a client secret.
    pub async fn issue_service_token(
        &self,
        client_id: &str,
        secret: &str,
        audience: &str,
    ) -> Result<IssueServiceTokenResponse, Status> {
        self.issue_service_token_with(
            client_id,
            Credential::ClientSecret(secret.into()),
            audience,
            &[],
        )
        .await
    }

    /// `IssueServiceToken` with any credential and scopes.
    pub async fn issue_service_token_with(
        &self,
        client_id: &str,
        credential: Credential,
        audience: &str,
        scopes: &[&str],
    ) -> Result<IssueServiceTokenResponse, Status> {
        bounded(
            "IssueServiceToken",
            self.auth_client()
                .issue_service_token(IssueServiceTokenRequest {
                    client_id: client_id.to_owned(),
                    credential: Some(credential),
                    audience: audience.to_owned(),
                    scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                }),
        )
        .await
        .map(|r| r.into_inner())
    }

    /// The access token `IssueServiceToken` gives `client_id` with `secret` for `audience`; panics
    /// on failure.
    pub async fn service_token(&self, client_id: &str, secret: &str, audience: &str) -> String {
        self.issue_service_token(client_id, secret, audience)
            .await
            .unwrap_or_else(|s| panic!("IssueServiceToken {client_id:?} for {audience:?}: {s:?}"))
            .access_token
    }

    /// `DisableServiceAccount(id)` as `admin_token`; panics on failure.
    pub async fn disable_service_account(&self, admin_token: &str, id: &str) {
        bounded(
            "DisableServiceAccount",
            self.admin_client_with(admin_token).disable_service_account(
                DisableServiceAccountRequest {
                    service_account_id: id.to_owned(),
                },
            ),
        )
        .await
        .unwrap_or_else(|s| panic!("disable service account failed: {s:?}"));
    }

    /// `Validate(token)` as the service `audience`; panics on an RPC error.
    pub async fn validate_for(&self, token: &str, audience: &str) -> ValidateResponse {
        bounded(
            "validate",
            self.auth_client().validate(ValidateRequest {
                access_token: token.to_owned(),
                audience: audience.to_owned(),
            }),
        )
        .await
        .unwrap_or_else(|s| panic!("validate RPC failed: {s:?}"))
        .into_inner()
    }
}

impl Db {
    /// Row counts of service accounts, their keys and spent assertion `jti`s, and the sum of the
    /// accounts' `updated_at` and `tokens_not_before`: compared before and after a refused call.
    pub async fn service_account_fingerprint(&self) -> [i64; 5] {
        [
            self.count("service_accounts").await,
            self.count("service_account_keys").await,
            self.count("service_assertion_jtis").await,
            self.scalar(
                "SELECT CAST(COALESCE(SUM(updated_at), 0) AS BIGINT) FROM service_accounts",
            )
            .await,
            self.scalar(
                "SELECT CAST(COALESCE(SUM(tokens_not_before), 0) AS BIGINT) FROM service_accounts",
            )
            .await,
        ]
    }
}
