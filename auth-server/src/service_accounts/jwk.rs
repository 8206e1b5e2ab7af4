//! The public keys service accounts register for client assertions: a JWK (RFC 7517) of an Ed25519
//! (`OKP`) or P-256 (`EC`) key with a `kid`. Private members are refused, the point is checked to
//! be a valid key of its curve, and only the public members are kept (normalized), so what is
//! stored is exactly what verifies.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value, json};

use crate::error::AuthError;

/// Longest accepted JWK document, in bytes.
pub(crate) const MAX_JWK_LEN: usize = 2048;
/// Longest `kid`, in bytes.
pub(crate) const MAX_KID_LEN: usize = 128;
/// JWK members that belong to private (or symmetric) keys.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A checked public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicJwk {
    /// Its key id.
    pub(crate) kid: String,
    /// The one algorithm it verifies.
    pub(crate) alg: Algorithm,
    /// Its public members as JSON (`kty`, `crv`, `x`, `y` for EC, `kid`, `alg`).
    pub(crate) json: String,
}

fn refused(why: &str) -> AuthError {
    AuthError::invalid(format!("public_jwk: {why}"))
}

fn member<'a>(jwk: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, AuthError> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| refused(&format!("the member \"{name}\" is required (a string)")))
}

/// A base64url coordinate of exactly 32 bytes.
fn coordinate(jwk: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(member(jwk, name)?)
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or_else(|| refused(&format!("\"{name}\" must be 32 bytes of base64url")))
}

/// Parses and checks a public JWK given by an operator.
pub(crate) fn parse(raw: &str) -> Result<PublicJwk, AuthError> {
    if raw.len() > MAX_JWK_LEN {
        return Err(refused(&format!("at most {MAX_JWK_LEN} bytes")));
    }
    let jwk: Map<String, Value> =
        serde_json::from_str(raw).map_err(|_| refused("must be a JSON object"))?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(refused(
            "private key members are refused: give the public key only",
        ));
    }
    let kid = kid(member(&jwk, "kid")?).map_err(|_| {
        refused(&format!(
            "\"kid\" must be 1-{MAX_KID_LEN} printable ASCII characters"
        ))
    })?;
    if jwk.get("use").is_some_and(|u| u != "sig") {
        return Err(refused("\"use\" must be \"sig\" when present"));
    }
    let (alg, public) = match (member(&jwk, "kty")?, member(&jwk, "crv")?) {
        ("OKP", "Ed25519") => {
            let x = coordinate(&jwk, "x")?;
            ParsedPublicKey::new(&ED25519, &x).map_err(|_| refused("not an Ed25519 public key"))?;
            let x = URL_SAFE_NO_PAD.encode(x);
            (
                Algorithm::EdDSA,
                json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA"}),
            )
        }
        ("EC", "P-256") => {
            let (x, y) = (coordinate(&jwk, "x")?, coordinate(&jwk, "y")?);
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
                .map_err(|_| refused("not a P-256 public key (the point is not on the curve)"))?;
            let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
            (
                Algorithm::ES256,
                json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256"}),
            )
        }
        _ => {
            return Err(refused(
                "only Ed25519 (OKP) and P-256 (EC) keys are accepted",
            ));
        }
    };
    let name = auth_interceptor::alg_name(alg);
    if jwk.get("alg").is_some_and(|a| a != name) {
        return Err(refused("\"alg\" does not match the key type"));
    }
    Ok(PublicJwk {
        kid: kid.to_owned(),
        alg,
        json: public.to_string(),
    })
}

/// Checks a key id: 1 to 128 printable ASCII characters.
pub(crate) fn kid(raw: &str) -> Result<&str, AuthError> {
    if raw.is_empty() || raw.len() > MAX_KID_LEN || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AuthError::invalid(format!(
            "kid must be 1-{MAX_KID_LEN} printable ASCII characters"
        )));
    }
    Ok(raw)
}

/// The verification key and algorithm of a stored (normalized) JWK.
pub(crate) fn decoding_key(stored: &str) -> Result<(Algorithm, DecodingKey), AuthError> {
    let corrupt = || AuthError::Internal("stored service account key is unreadable".into());
    let jwk: Map<String, Value> = serde_json::from_str(stored).map_err(|_| corrupt())?;
    let text = |name| jwk.get(name).and_then(Value::as_str).ok_or_else(corrupt);
    match text("alg")? {
        "EdDSA" => Ok((
            Algorithm::EdDSA,
            DecodingKey::from_ed_components(text("x")?).map_err(|_| corrupt())?,
        )),
        "ES256" => Ok((
            Algorithm::ES256,
            DecodingKey::from_ec_components(text("x")?, text("y")?).map_err(|_| corrupt())?,
        )),
        _ => Err(corrupt()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn ed25519_keys_are_normalized() {
        let k = parse(&format!(
            r#"{{"kty":"OKP","crv":"Ed25519","x":"{ED_X}","kid":"k1","use":"sig","extra":1}}"#
        ))
        .unwrap();
        assert_eq!((k.kid.as_str(), k.alg), ("k1", Algorithm::EdDSA));
        assert!(!k.json.contains("extra") && !k.json.contains("use"));
        let (alg, _) = decoding_key(&k.json).unwrap();
        assert_eq!(alg, Algorithm::EdDSA);
    }

    #[test]
    fn private_wrong_or_incomplete_keys_are_refused() {
        for bad in [
            format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{ED_X}","kid":"k1","d":"AAAA"}}"#),
            format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{ED_X}"}}"#),
            format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{ED_X}","kid":""}}"#),
            format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{ED_X}","kid":"k","alg":"ES256"}}"#),
            format!(r#"{{"kty":"OKP","crv":"X25519","x":"{ED_X}","kid":"k"}}"#),
            r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"k"}"#.to_owned(),
            r#"{"kty":"oct","k":"AAAA","kid":"k"}"#.to_owned(),
            r#"{"kty":"EC","crv":"P-256","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","kid":"k"}"#.to_owned(),
            "[]".to_owned(),
            "not json".to_owned(),
            "x".repeat(MAX_JWK_LEN + 1),
        ] {
            let e = parse(&bad).unwrap_err();
            assert!(matches!(e, AuthError::InvalidArgument(_)), "{bad}");
            assert!(!e.to_string().contains("AAAA"), "no key material echoed");
        }
    }
}
