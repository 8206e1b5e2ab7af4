//! Signing keys per algorithm and access tokens for the demo service, in the exact shape the auth
//! server issues (`typ: at+jwt`, `kid`, RFC 9068 claims).

use anyhow::{Context, bail};
use auth_interceptor::{Audience, Claims, KeySet, VerificationKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// `iss` of the demo service's tokens.
pub const ISSUER: &str = "auth-server";
/// `aud` of the demo service's tokens.
pub const AUDIENCE: &str = "internal";

/// Parses `EdDSA`, `ES256`, `RS256` or `HS256`.
pub fn parse_alg(s: &str) -> anyhow::Result<Algorithm> {
    Ok(match s {
        "EdDSA" => Algorithm::EdDSA,
        "ES256" => Algorithm::ES256,
        "RS256" => Algorithm::RS256,
        "HS256" => Algorithm::HS256,
        other => bail!("unsupported algorithm {other} (EdDSA, ES256, RS256, HS256)"),
    })
}

/// What the demo server needs to verify: a public JWKS, or the HS256 secret and its kid.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeySpec {
    /// JWKS JSON (asymmetric algorithms).
    pub jwks: Option<String>,
    /// HS256 key id.
    pub kid: Option<String>,
    /// HS256 secret, base64.
    pub secret_b64: Option<String>,
}

impl KeySpec {
    /// The verification key set.
    pub fn key_set(&self) -> anyhow::Result<KeySet> {
        if let Some(jwks) = &self.jwks {
            return KeySet::from_jwks_json(jwks).context("jwks");
        }
        let (Some(kid), Some(secret)) = (&self.kid, &self.secret_b64) else {
            bail!("key spec holds neither a JWKS nor an HS256 secret");
        };
        let secret = STANDARD.decode(secret)?;
        Ok(KeySet::new().with(
            kid.clone(),
            VerificationKey::hmac(Algorithm::HS256, &secret)?,
        )?)
    }
}

/// A fresh signing key and its public half.
pub struct BenchKey {
    /// Algorithm.
    pub alg: Algorithm,
    /// Key id.
    pub kid: String,
    /// Private key.
    pub encoding: EncodingKey,
    /// Public half, for the server.
    pub spec: KeySpec,
}

impl BenchKey {
    /// Generates a key for `alg` (RSA keys are 2048-bit, as the auth server's).
    pub fn generate(alg: Algorithm) -> anyhow::Result<Self> {
        if alg == Algorithm::HS256 {
            let mut secret = [0u8; 32];
            aws_lc_rs::rand::fill(&mut secret).map_err(|_| anyhow::anyhow!("rng"))?;
            let kid = "hs256-bench".to_owned();
            return Ok(Self {
                alg,
                kid: kid.clone(),
                encoding: EncodingKey::from_secret(&secret),
                spec: KeySpec {
                    jwks: None,
                    kid: Some(kid),
                    secret_b64: Some(STANDARD.encode(secret)),
                },
            });
        }
        let g = auth_server::keys::generate::generate(alg)?;
        let encoding = auth_server::keys::generate::encoding_key(alg, &g.pkcs8)?;
        let jwks = serde_json::json!({ "keys": [g.public_jwk] }).to_string();
        Ok(Self {
            alg,
            kid: g.kid,
            encoding,
            spec: KeySpec {
                jwks: Some(jwks),
                kid: None,
                secret_b64: None,
            },
        })
    }

    /// A signed access token for `sub`, valid for `ttl` seconds from now.
    pub fn token(&self, sub: &str, ttl: u64) -> anyhow::Result<String> {
        let now = auth_interceptor::Clock::unix_now(&auth_interceptor::SystemClock);
        let claims = Claims {
            iss: ISSUER.into(),
            sub: sub.into(),
            aud: Audience::One(AUDIENCE.into()),
            exp: now + ttl,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            sid: uuid::Uuid::now_v7().to_string(),
            roles: vec!["orders:read".into()],
            username: format!("user-{sub}"),
            client_id: "auth-server".into(),
            kind: auth_interceptor::TokenKind::User,
        };
        let mut header = Header::new(self.alg);
        header.typ = Some(auth_interceptor::ACCESS_TOKEN_TYP.into());
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &self.encoding)?)
    }
}
