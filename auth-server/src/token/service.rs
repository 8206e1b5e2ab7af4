//! Issuing service tokens: the RFC 9068 profile of user tokens, signed with the same keys, for a
//! service account — `sub` = the account id, `client_id` = its name, `aud` = the one audience asked
//! for, its roles (or the subset asked for), `"token_use": "service"`, and no `sid` or `username`.

use auth_interceptor::{Audience, Claims, TokenKind};

use super::access::IssuedAccessToken;
use crate::error::AuthError;
use crate::keys::Signer;
use crate::store::ServiceAccountRecord;

/// Issues service tokens.
#[derive(Debug, Clone)]
pub struct ServiceTokenIssuer {
    /// `iss` (the same as user tokens').
    pub issuer: String,
    /// Lifetime, seconds (`AUTH_SERVICE_TOKEN_TTL`).
    pub ttl: i64,
}

impl ServiceTokenIssuer {
    /// Signs a token for `account` naming `audience` and carrying `roles`.
    pub fn issue(
        &self,
        signer: &Signer,
        account: &ServiceAccountRecord,
        audience: &str,
        roles: Vec<String>,
        now: i64,
    ) -> Result<IssuedAccessToken, AuthError> {
        let now_u =
            u64::try_from(now).map_err(|_| AuthError::Internal("clock before 1970".into()))?;
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: account.id.clone(),
            aud: Audience::One(audience.to_owned()),
            exp: now_u + self.ttl.unsigned_abs(),
            iat: now_u,
            nbf: now_u,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            sid: String::new(),
            roles,
            username: String::new(),
            client_id: account.name.clone(),
            kind: TokenKind::Service,
        };
        super::access::sign(signer, claims, now + self.ttl)
    }
}
