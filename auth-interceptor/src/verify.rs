//! The access-token verifier shared by the auth server's `Validate` RPC and by the interceptor layer.
//!
//! `jsonwebtoken` checks the signature (`jsonwebtoken::crypto::verify`, aws-lc-rs); everything else is
//! enforced here, in this order (see `shared/security/catalogue.md`): a size cap before any decoding;
//! exactly three non-empty segments, each strict base64url; no `crit`, `jku`, `jwk`, `x5u` or `x5c`
//! header; `typ: at+jwt`; a `kid` that names a known key; the header `alg` equal to that key's one
//! algorithm; the signature; then the claims, strictly typed (`exp`, `nbf`, `iat` integers; `iss`, `sub`,
//! `jti` non-empty strings, and `sid`, `username` non-empty on user tokens; `token_use` absent or
//! `"service"`; no duplicate members): `iss` equal to ours, `aud` containing one of ours (or the one
//! audience a caller asks for, [`Verifier::verify_with_kid_for`]), `nbf`/`iat` not in the future, `exp` not past (with leeway), a bounded lifetime. Claims are only
//! parsed after the signature verified.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use crate::claims::{Audience, Claims, TokenKind};
use crate::keys::KeySet;

/// Default cap on the size of an access token, in bytes. Ours are well under 1 KiB.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// The `typ` header value of an RFC 9068 access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Default bound on a token's lifetime (`exp - iat`): 1 h, a small multiple of the auth server's
/// default access-token TTL (600 s). See [`VerifierConfig::max_lifetime`].
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The required `iss`.
    pub issuer: String,
    /// Accepted audiences; a token's `aud` must contain at least one of them.
    pub audiences: Vec<String>,
    /// Clock-skew allowance for `exp`, `nbf` and `iat` (default 30 s).
    pub leeway: Duration,
    /// Tokens longer than this are rejected before any decoding.
    pub max_token_len: usize,
    /// Upper bound on a token's lifetime, `exp - iat`: a token living longer is rejected (default
    /// [`DEFAULT_MAX_LIFETIME`], 1 h).
    ///
    /// This limits what a leaked signing key, or an issuer misconfigured or compromised, can mint:
    /// without it a forged token could claim any `exp`, and a stolen token could be used for as long
    /// as its forger liked. With it, every accepted token dies at most this long after it was issued.
    ///
    /// It must be at least the issuer's access-token lifetime (the auth server's
    /// `AUTH_ACCESS_TOKEN_TTL`, 600 s by default), or every genuine token is refused as malformed;
    /// keep it close to that lifetime. The auth server's own `Validate` sets it to exactly its TTL.
    pub max_lifetime: Duration,
}

impl VerifierConfig {
    /// A configuration with the default leeway (30 s), size cap (8 KiB) and lifetime bound (1 h).
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences: vec![audience.into()],
            leeway: Duration::from_secs(30),
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            max_lifetime: DEFAULT_MAX_LIFETIME,
        }
    }
}

/// Why a token was rejected. The caller of an RPC only ever sees a fixed message; this goes to logs
/// and, through `Validate`, to the machine-readable reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Larger than [`VerifierConfig::max_token_len`].
    #[error("token too large")]
    TooLarge,
    /// Not a well-formed access token; the string says which rule failed (never token content).
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The `kid` is not in the current key set.
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify under the key named by `kid`.
    #[error("bad signature")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `aud` is missing or contains none of the accepted audiences.
    #[error("wrong audience")]
    WrongAudience,
    /// `iss` is missing or not the expected issuer.
    #[error("wrong issuer")]
    WrongIssuer,
}

#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kid: Option<Cow<'a, str>>,
    crit: Option<serde::de::IgnoredAny>,
    jku: Option<serde::de::IgnoredAny>,
    jwk: Option<serde::de::IgnoredAny>,
    x5u: Option<serde::de::IgnoredAny>,
    x5c: Option<serde::de::IgnoredAny>,
}

/// [`Claims`] as decoded: `iss` and `aud` may be absent here so that their absence is reported by the
/// required-claims check as [`VerifyError::WrongIssuer`] / [`VerifyError::WrongAudience`] rather than
/// as a generic deserialization failure. Every other rule (types, duplicates) is the same.
#[derive(Deserialize)]
struct WireClaims {
    iss: Option<serde_json::Value>,
    sub: String,
    aud: Option<serde_json::Value>,
    exp: u64,
    iat: u64,
    nbf: u64,
    jti: String,
    #[serde(default)]
    sid: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    username: String,
    client_id: String,
    #[serde(default, rename = "token_use")]
    kind: TokenKind,
}

/// The audiences a token must name one of.
#[derive(Debug, Clone, Copy)]
pub enum AudienceCheck<'a> {
    /// The configured [`VerifierConfig::audiences`].
    Configured,
    /// Exactly this one (a caller that says which service it is, e.g. `Validate` with an audience).
    Only(&'a str),
}

impl AudienceCheck<'_> {
    /// True when `aud` names an accepted audience.
    pub fn accepts(&self, config: &VerifierConfig, aud: &Audience) -> bool {
        match self {
            AudienceCheck::Configured => config.audiences.iter().any(|ours| aud.contains(ours)),
            AudienceCheck::Only(one) => aud.contains(one),
        }
    }
}

impl WireClaims {
    /// Checks `iss` and `aud` against the configuration and converts.
    fn into_claims(
        self,
        config: &VerifierConfig,
        audience: AudienceCheck<'_>,
    ) -> Result<Claims, VerifyError> {
        let iss = match self.iss {
            Some(serde_json::Value::String(iss)) if iss == config.issuer => iss,
            _ => return Err(VerifyError::WrongIssuer),
        };
        let aud = match self.aud {
            Some(serde_json::Value::String(a)) => Audience::One(a),
            Some(serde_json::Value::Array(list)) => Audience::Many(
                list.into_iter()
                    .map(|v| match v {
                        serde_json::Value::String(a) => Ok(a),
                        _ => Err(VerifyError::WrongAudience),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(VerifyError::WrongAudience),
        };
        if !audience.accepts(config, &aud) {
            return Err(VerifyError::WrongAudience);
        }
        Ok(Claims {
            iss,
            sub: self.sub,
            aud,
            exp: self.exp,
            iat: self.iat,
            nbf: self.nbf,
            jti: self.jti,
            sid: self.sid,
            roles: self.roles,
            username: self.username,
            client_id: self.client_id,
            kind: self.kind,
        })
    }
}

/// Verifies access tokens against a [`KeySet`].
///
/// ```
/// use auth_interceptor::{KeySet, Verifier, VerifierConfig, VerificationKey, VerifyError};
/// use jsonwebtoken::Algorithm;
///
/// let keys = KeySet::new()
///     .with("k1", VerificationKey::hmac(Algorithm::HS256, &[7u8; 32]).unwrap())
///     .unwrap();
/// let verifier = Verifier::new(VerifierConfig::new("https://auth.internal", "orders"));
/// assert_eq!(verifier.verify(&keys, "not.a.token").unwrap_err(), VerifyError::Malformed("encoding"));
/// ```
#[derive(Debug, Clone)]
pub struct Verifier {
    config: VerifierConfig,
}

/// A verified token's claims and the `kid` of the key that verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The claims.
    pub claims: Claims,
    /// The key id from the token's header.
    pub kid: String,
}

impl Verifier {
    /// A verifier enforcing `config`.
    pub fn new(config: VerifierConfig) -> Self {
        Self { config }
    }

    /// The configuration this verifier enforces.
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Verifies `token` at the current time.
    pub fn verify(&self, keys: &KeySet, token: &str) -> Result<Claims, VerifyError> {
        self.verify_at(keys, token, unix_now())
    }

    /// Returns the `kid` a token names, after the same structural checks as [`Verifier::verify`]
    /// (size, encoding, header rules). Used to decide whether an unknown key warrants a refetch.
    pub fn token_kid(&self, token: &str) -> Result<String, VerifyError> {
        let (raw, _) = self.split(token)?;
        let (kid, _) = check_header(&raw)?;
        Ok(kid.into_owned())
    }

    /// Splits a token into its three segments after the size cap, and decodes the header segment.
    fn split<'t>(&self, token: &'t str) -> Result<(Vec<u8>, Segments<'t>), VerifyError> {
        if token.len() > self.config.max_token_len {
            return Err(VerifyError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Malformed("encoding"));
        };
        if h.is_empty() || p.is_empty() || s.is_empty() {
            return Err(VerifyError::Malformed("encoding"));
        }
        let header = URL_SAFE_NO_PAD
            .decode(h)
            .map_err(|_| VerifyError::Malformed("encoding"))?;
        let signed = &token[..h.len() + 1 + p.len()];
        Ok((
            header,
            Segments {
                signed,
                payload: p,
                signature: s,
            },
        ))
    }

    /// Verifies `token` as of `now` (seconds since the Unix epoch).
    pub fn verify_at(&self, keys: &KeySet, token: &str, now: u64) -> Result<Claims, VerifyError> {
        self.verify_with_kid(keys, token, now).map(|v| v.claims)
    }

    /// [`Verifier::verify_at`], also returning the `kid` (for caches keyed on the signing key).
    pub fn verify_with_kid(
        &self,
        keys: &KeySet,
        token: &str,
        now: u64,
    ) -> Result<Verified, VerifyError> {
        self.verify_with_kid_for(keys, token, now, AudienceCheck::Configured)
    }

    /// [`Verifier::verify_with_kid`] with the audience rule given by the caller: the configured
    /// audiences, or exactly one audience (every other rule is the configuration's).
    pub fn verify_with_kid_for(
        &self,
        keys: &KeySet,
        token: &str,
        now: u64,
        audience: AudienceCheck<'_>,
    ) -> Result<Verified, VerifyError> {
        let (raw, segments) = self.split(token)?;
        let (kid, alg) = check_header(&raw)?;
        let key = keys.get(&kid).ok_or(VerifyError::UnknownKey)?;
        // One key, one algorithm: the header never selects the algorithm (RFC 8725 §3.1).
        if alg != alg_name(key.alg) {
            return Err(VerifyError::Malformed("alg"));
        }
        match jsonwebtoken::crypto::verify(
            segments.signature,
            segments.signed.as_bytes(),
            &key.key,
            key.alg,
        ) {
            Ok(true) => {}
            Ok(false) => return Err(VerifyError::BadSignature),
            Err(_) => return Err(VerifyError::Malformed("signature")),
        }
        let payload = URL_SAFE_NO_PAD
            .decode(segments.payload)
            .map_err(|_| VerifyError::Malformed("encoding"))?;
        let wire: WireClaims =
            serde_json::from_slice(&payload).map_err(|_| VerifyError::Malformed("claims"))?;
        let claims = wire.into_claims(&self.config, audience)?;
        // A user token names its session and user; a service token has neither (its `sub` is the
        // account and `client_id` its name).
        let holder_named = match claims.kind {
            TokenKind::User => !claims.sid.is_empty() && !claims.username.is_empty(),
            TokenKind::Service => !claims.client_id.is_empty(),
        };
        if claims.sub.is_empty() || claims.jti.is_empty() || !holder_named {
            return Err(VerifyError::Malformed("claims"));
        }
        let leeway = self.config.leeway.as_secs();
        if claims.exp < claims.iat || claims.exp - claims.iat > self.config.max_lifetime.as_secs() {
            return Err(VerifyError::Malformed("lifetime"));
        }
        if now >= claims.exp.saturating_add(leeway) {
            return Err(VerifyError::Expired);
        }
        if claims.nbf > now.saturating_add(leeway) || claims.iat > now.saturating_add(leeway) {
            return Err(VerifyError::NotYetValid);
        }
        Ok(Verified {
            claims,
            kid: kid.into_owned(),
        })
    }
}

/// The segments of a compact JWS.
struct Segments<'t> {
    /// `header.payload`: the signed bytes.
    signed: &'t str,
    /// The payload segment (base64url).
    payload: &'t str,
    /// The signature segment (base64url).
    signature: &'t str,
}

/// Applies the header rules to a decoded header: no `crit`, no key references, `typ: at+jwt`, a `kid`.
/// Returns the `kid` and `alg`, borrowed from `raw` where possible.
fn check_header(raw: &[u8]) -> Result<(Cow<'_, str>, Cow<'_, str>), VerifyError> {
    let header: RawHeader<'_> =
        serde_json::from_slice(raw).map_err(|_| VerifyError::Malformed("header"))?;
    if header.crit.is_some() {
        return Err(VerifyError::Malformed("crit header"));
    }
    if header.jku.is_some() || header.jwk.is_some() || header.x5u.is_some() || header.x5c.is_some()
    {
        return Err(VerifyError::Malformed("key reference header"));
    }
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || t.eq_ignore_ascii_case("application/at+jwt")
    });
    if !typ_ok {
        return Err(VerifyError::Malformed("typ"));
    }
    let kid = header
        .kid
        .filter(|k| !k.is_empty())
        .ok_or(VerifyError::Malformed("kid"))?;
    Ok((kid, header.alg))
}

/// The JOSE name of an algorithm (`"EdDSA"`, `"ES256"`, ...).
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => "",
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
