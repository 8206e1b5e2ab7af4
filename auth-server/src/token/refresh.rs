//! Opaque refresh tokens: 256 random bits, base64url, stored only as their SHA-256 digest.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use crate::error::AuthError;

/// Random bytes in a refresh token.
pub const REFRESH_TOKEN_BYTES: usize = 32;
/// Length of a refresh token's text form (base64url, no padding).
pub const REFRESH_TOKEN_LEN: usize = 43;

/// A new refresh token and the digest to store.
pub fn generate() -> Result<(Zeroizing<String>, [u8; 32]), AuthError> {
    let mut raw = Zeroizing::new([0u8; REFRESH_TOKEN_BYTES]);
    aws_lc_rs::rand::fill(raw.as_mut()).map_err(|_| AuthError::Internal("rng".into()))?;
    let token = Zeroizing::new(URL_SAFE_NO_PAD.encode(raw.as_ref()));
    let digest = sha256(token.as_bytes());
    Ok((token, digest))
}

/// The digest under which a presented token is looked up, or `None` when it cannot be one of ours
/// (wrong length or alphabet): such input never reaches the database.
pub fn digest(token: &str) -> Option<[u8; 32]> {
    let well_formed = token.len() == REFRESH_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && URL_SAFE_NO_PAD
            .decode(token)
            .is_ok_and(|raw| raw.len() == REFRESH_TOKEN_BYTES);
    well_formed.then(|| sha256(token.as_bytes()))
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_digestible() {
        let (a, da) = generate().unwrap();
        let (b, _) = generate().unwrap();
        assert_ne!(*a, *b);
        assert_eq!(a.len(), REFRESH_TOKEN_LEN);
        assert_eq!(digest(&a), Some(da));
    }

    #[test]
    fn malformed_tokens_have_no_digest() {
        let (t, _) = generate().unwrap();
        for bad in [
            String::new(),
            "a".into(),
            "x".repeat(10 * 1024),
            "' OR '1'='1".into(),
            "\u{0}".repeat(43),
            t[..42].to_string(),
            format!("{}A", t.as_str()),
            format!("{}+", &t[..42]),
        ] {
            assert_eq!(digest(&bad), None, "{bad:?}");
        }
    }
}
