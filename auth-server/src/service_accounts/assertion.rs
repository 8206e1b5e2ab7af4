//! RFC 7523 client assertions (`private_key_jwt`): a JWT the service signs with one of its registered
//! keys. The header's `kid` picks the key and the algorithm is pinned to that key's; `iss` = `sub` =
//! the client id, `aud` = this server's issuer, `exp` not past and at most [`MAX_ASSERTION_LIFETIME`]
//! ahead (leeway as configured), a non-empty `jti` of at most 256 bytes. The caller makes the `jti`
//! single use ([`crate::store::Store::spend_assertion_jti`]) once everything else has passed.

use jsonwebtoken::{Validation, decode, decode_header};
use serde_json::Value;

use super::jwk;
use crate::error::AuthError;
use crate::store::ServiceAccountKeyRecord;

/// Longest accepted assertion, in bytes.
pub(crate) const MAX_ASSERTION_LEN: usize = 8 * 1024;
/// How far ahead an assertion's `exp` may be, seconds (RFC 7523 asks for a short one).
pub(crate) const MAX_ASSERTION_LIFETIME: i64 = 300;
/// Longest `jti`, in bytes.
pub(crate) const MAX_JTI_LEN: usize = 256;

/// Why an assertion was refused: for the audit trail only (the caller gets one generic answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AssertionRefused {
    /// Not a JWT, or a header this server does not accept.
    #[error("assertion malformed")]
    Malformed,
    /// No registered key has the header's `kid`.
    #[error("assertion key unknown")]
    UnknownKey,
    /// The signature, `iss`, `sub` or `aud` is wrong (or the `alg` is not the key's).
    #[error("assertion signature or claims wrong")]
    Invalid,
    /// `exp` is past.
    #[error("assertion expired")]
    Expired,
    /// `exp` is too far ahead, or `nbf`/`iat` in the future.
    #[error("assertion lifetime refused")]
    Lifetime,
    /// `jti` missing, empty or too long.
    #[error("assertion jti refused")]
    Jti,
}

/// A verified assertion: what makes it single use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// Its `jti`.
    pub(crate) jti: String,
    /// Its `exp`: the `jti` must be remembered until then.
    pub(crate) exp: i64,
}

/// Verifies `assertion` of `client_id` against its `keys`, for this server's `issuer`, at `now`.
pub(crate) fn verify(
    assertion: &str,
    client_id: &str,
    keys: &[ServiceAccountKeyRecord],
    issuer: &str,
    now: i64,
    leeway: i64,
) -> Result<Result<Accepted, AssertionRefused>, AuthError> {
    if assertion.len() > MAX_ASSERTION_LEN {
        return Ok(Err(AssertionRefused::Malformed));
    }
    let Ok(header) = decode_header(assertion) else {
        return Ok(Err(AssertionRefused::Malformed));
    };
    // Keys come from the registration only, never from the token.
    if header.jku.is_some() || header.jwk.is_some() || header.x5u.is_some() || header.x5c.is_some()
    {
        return Ok(Err(AssertionRefused::Malformed));
    }
    let Some(key) = header
        .kid
        .as_deref()
        .and_then(|kid| keys.iter().find(|k| k.kid == kid))
    else {
        return Ok(Err(AssertionRefused::UnknownKey));
    };
    let (alg, decoding) = jwk::decoding_key(&key.public_jwk)?;
    if header.alg != alg {
        return Ok(Err(AssertionRefused::Invalid));
    }
    let mut rules = Validation::new(alg);
    rules.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    rules.set_issuer(&[client_id]);
    rules.sub = Some(client_id.to_owned());
    rules.set_audience(&[issuer]);
    // Time is judged below against the server's clock.
    rules.validate_exp = false;
    rules.validate_nbf = false;
    let claims = match decode::<Value>(assertion, &decoding, &rules) {
        Ok(data) => data.claims,
        Err(_) => return Ok(Err(AssertionRefused::Invalid)),
    };
    // Times are integers; an optional one, when present, too.
    let time = |name| claims.get(name).map(Value::as_i64);
    let (Some(Some(exp)), nbf, iat) = (time("exp"), time("nbf"), time("iat")) else {
        return Ok(Err(AssertionRefused::Malformed));
    };
    if nbf == Some(None) || iat == Some(None) {
        return Ok(Err(AssertionRefused::Malformed));
    }
    if now >= exp.saturating_add(leeway) {
        return Ok(Err(AssertionRefused::Expired));
    }
    let future =
        |t: Option<Option<i64>>| t.flatten().is_some_and(|t| t > now.saturating_add(leeway));
    if exp > now.saturating_add(MAX_ASSERTION_LIFETIME + leeway) || future(nbf) || future(iat) {
        return Ok(Err(AssertionRefused::Lifetime));
    }
    match claims.get("jti").and_then(Value::as_str) {
        Some(jti) if !jti.is_empty() && jti.len() <= MAX_JTI_LEN => Ok(Ok(Accepted {
            jti: jti.to_owned(),
            exp,
        })),
        _ => Ok(Err(AssertionRefused::Jti)),
    }
}
