//! Issuing JWT access tokens per RFC 9068 (`typ: at+jwt`, `kid`, `iss`, `sub`, `aud`, `exp`, `iat`,
//! `nbf`, `jti`, `client_id`) plus `sid`, `roles` and `username`.

use auth_interceptor::{Audience, Claims};
use jsonwebtoken::Header;

use crate::error::AuthError;
use crate::keys::Signer;
use crate::store::UserRecord;

/// The `client_id` claim of tokens issued by password login.
pub const CLIENT_ID: &str = "auth-server";

/// Issues access tokens.
#[derive(Debug, Clone)]
pub struct AccessTokenIssuer {
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: String,
    /// Lifetime, seconds.
    pub ttl: i64,
}

/// A signed access token.
#[derive(Debug)]
pub struct IssuedAccessToken {
    /// The compact JWT.
    pub token: String,
    /// Its `jti`.
    pub jti: String,
    /// Its `exp`.
    pub exp: i64,
}

impl AccessTokenIssuer {
    /// Signs a token for `user` in session `sid`, expiring after the lifetime or at `session_end`
    /// (the session's absolute end), whichever comes first: no token outlives its session.
    pub fn issue(
        &self,
        signer: &Signer,
        user: &UserRecord,
        sid: &str,
        now: i64,
        session_end: i64,
    ) -> Result<IssuedAccessToken, AuthError> {
        let now_u =
            u64::try_from(now).map_err(|_| AuthError::Internal("clock before 1970".into()))?;
        let exp = now.saturating_add(self.ttl).min(session_end).max(now + 1);
        let exp_u = u64::try_from(exp).map_err(|_| AuthError::Internal("bad expiry".into()))?;
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: user.id.clone(),
            aud: Audience::One(self.audience.clone()),
            exp: exp_u,
            iat: now_u,
            nbf: now_u,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            sid: sid.to_owned(),
            roles: user.roles.clone(),
            username: user.username.clone(),
            client_id: CLIENT_ID.to_owned(),
            kind: auth_interceptor::TokenKind::User,
        };
        sign(signer, claims, exp)
    }
}

/// Signs `claims` as an RFC 9068 access token (`typ: at+jwt`, the signer's `kid`): the one signing
/// step of user and service tokens alike.
pub(crate) fn sign(
    signer: &Signer,
    claims: Claims,
    exp: i64,
) -> Result<IssuedAccessToken, AuthError> {
    let mut header = Header::new(signer.alg);
    header.typ = Some(auth_interceptor::ACCESS_TOKEN_TYP.to_owned());
    header.kid = Some(signer.kid.clone());
    let token = jsonwebtoken::encode(&header, &claims, &signer.key)
        .map_err(|e| AuthError::Internal(format!("signing failed: {e}")))?;
    Ok(IssuedAccessToken {
        token,
        jti: claims.jti,
        exp,
    })
}
