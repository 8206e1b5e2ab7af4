//! Request metadata → bearer token, following RFC 6750 §2.1 strictly (catalogue M01–M06).
//!
//! Exactly one `authorization` entry; scheme `Bearer` in any case; one run of spaces; a token made only
//! of base64url characters and dots. Anything else — tabs, trailing whitespace, a second credential,
//! non-ASCII bytes — is refused without decoding anything. `-bin` keys are never consulted.

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

use crate::error::AuthError;

/// Room for the scheme and separator on top of the token-size cap.
const SCHEME_ALLOWANCE: usize = 64;

/// Extracts the bearer token from `headers`.
///
/// `max_token_len` bounds the token; a longer `authorization` value is refused before it is parsed.
/// Returns [`AuthError::MissingToken`] when there is no `authorization` entry at all.
///
/// ```
/// use auth_interceptor::bearer_token;
/// let mut h = http::HeaderMap::new();
/// h.insert("authorization", "bearer abc.def.ghi".parse().unwrap());
/// assert_eq!(bearer_token(&h, 8192).unwrap(), "abc.def.ghi");
/// h.append("authorization", "Bearer x.y.z".parse().unwrap());
/// assert!(bearer_token(&h, 8192).is_err());
/// ```
pub fn bearer_token(headers: &HeaderMap, max_token_len: usize) -> Result<&str, AuthError> {
    bearer_token_in(
        headers
            .get_all(AUTHORIZATION)
            .iter()
            .map(HeaderValue::as_bytes),
        max_token_len,
    )
}

/// [`bearer_token`] over the raw bytes of every `authorization` value of a request, for callers that
/// hold its headers in another form (the auth server's Envoy `Check` reads them from the
/// `CheckRequest`). Same rules, same errors; bytes a header value cannot hold are refused.
///
/// ```
/// use auth_interceptor::bearer_token_in;
/// assert_eq!(bearer_token_in([&b"Bearer a.b.c"[..]], 8192).unwrap(), "a.b.c");
/// assert!(bearer_token_in([&b"Bearer a.b.c"[..], b"Bearer x.y.z"], 8192).is_err());
/// assert!(bearer_token_in(std::iter::empty(), 8192).is_err());
/// ```
pub fn bearer_token_in<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    max_token_len: usize,
) -> Result<&'a str, AuthError> {
    let mut values = values.into_iter();
    let value = values.next().ok_or(AuthError::MissingToken)?;
    if values.next().is_some() {
        return Err(AuthError::BadMetadata("duplicate authorization"));
    }
    if value.len() > max_token_len.saturating_add(SCHEME_ALLOWANCE) {
        return Err(AuthError::BadMetadata("too large"));
    }
    // `scheme 1*SP token`, every byte checked once: the scheme against "bearer", the separator as
    // spaces, the token against the token characters — so nothing else (tabs, controls, non-ASCII)
    // gets through anywhere.
    let space = value
        .iter()
        .position(|b| *b == b' ')
        .ok_or(AuthError::BadMetadata("scheme"))?;
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(AuthError::BadMetadata("scheme"));
    }
    // `1*SP` separates scheme and credentials (RFC 6750 §2.1); only spaces are stripped.
    let start = rest.iter().position(|b| *b != b' ').unwrap_or(rest.len());
    let token = &rest[start..];
    if token.is_empty() || !token.iter().all(|b| TOKEN_CHARS[usize::from(*b)]) {
        return Err(AuthError::BadMetadata("credentials"));
    }
    if token.len() > max_token_len {
        return Err(AuthError::BadMetadata("too large"));
    }
    // Only ASCII token characters are left.
    std::str::from_utf8(token).map_err(|_| AuthError::BadMetadata("credentials"))
}

/// The bytes of a token: base64url characters and dots, as a table (one lookup per byte on a path
/// every call takes).
const TOKEN_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.';
        b += 1;
    }
    table
};

/// Marks every `authorization` value sensitive, so it is never logged by `http`'s `Debug` output or
/// indexed by HPACK.
pub(crate) fn mark_sensitive(headers: &mut HeaderMap) {
    if let http::header::Entry::Occupied(mut entry) = headers.entry(AUTHORIZATION) {
        for value in entry.iter_mut() {
            value.set_sensitive(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // (A vertical tab cannot appear in a header value at all: `HeaderValue` refuses it.)
    fn one(v: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        h
    }

    #[test]
    fn accepts_bearer_in_any_case_and_space_runs() {
        for v in [
            "Bearer a.b.c",
            "bearer a.b.c",
            "BEARER a.b.c",
            "bEaReR a.b.c",
            "Bearer  a.b.c",
        ] {
            assert_eq!(
                bearer_token(&one(v.as_bytes()), 100).unwrap(),
                "a.b.c",
                "{v}"
            );
        }
    }

    #[test]
    fn m01_m02_m04_rejections() {
        assert_eq!(
            bearer_token(&HeaderMap::new(), 100),
            Err(AuthError::MissingToken)
        );
        for v in [
            "",
            "Basic dXNlcjpwYXNz",
            "Token a.b.c",
            "Bearera.b.c",
            "Bearer",
            "Bearer ",
            "Bearer\ta.b.c",
            "Bearer a.b.c ",
            "Bearer a.b.c\t",
            " Bearer a.b.c",
            "Bearer a, Bearer b",
            "Bearer a.b.c,x",
            "Bearer a+b/c=",
        ] {
            let h = one(v.as_bytes());
            let r = bearer_token(&h, 100);
            assert!(matches!(r, Err(AuthError::BadMetadata(_))), "{v:?}: {r:?}");
        }
    }

    #[test]
    fn m05_duplicates_m06_bin_and_non_ascii() {
        let mut h = one(b"Bearer a.b.c");
        h.append(AUTHORIZATION, HeaderValue::from_static("junk"));
        assert!(bearer_token(&h, 100).is_err());
        let mut h = HeaderMap::new();
        h.insert("authorization-bin", HeaderValue::from_static("YQ"));
        assert_eq!(bearer_token(&h, 100), Err(AuthError::MissingToken));
        let h = one(b"Bearer a.\xff\x80.c");
        let r = bearer_token(&h, 100);
        assert!(matches!(r, Err(AuthError::BadMetadata(_))));
    }

    #[test]
    fn raw_values_follow_the_same_rules() {
        for v in ["Bearer a.b.c", "bearer  a.b.c"] {
            assert_eq!(bearer_token_in([v.as_bytes()], 100), Ok("a.b.c"));
        }
        for v in [
            &b"Bearer a.b.c\n"[..],
            b"Bearer a.b.c\x7f",
            b"Bearer a.\xc3\xa9.c",
            b"Bearer\ta.b.c",
            b"Basic dXNlcjpwYXNz",
        ] {
            let r = bearer_token_in([v], 100);
            assert!(matches!(r, Err(AuthError::BadMetadata(_))), "{v:?}: {r:?}");
        }
        assert_eq!(
            bearer_token_in(std::iter::empty(), 100),
            Err(AuthError::MissingToken)
        );
    }

    #[test]
    fn size_cap_applies_before_parsing() {
        let long = format!("Bearer {}", "a".repeat(200));
        assert_eq!(
            bearer_token(&one(long.as_bytes()), 100),
            Err(AuthError::BadMetadata("too large"))
        );
        let edge = format!("Bearer {}", "a".repeat(100));
        assert!(bearer_token(&one(edge.as_bytes()), 100).is_ok());
        let over = format!("Bearer {}", "a".repeat(101));
        assert!(bearer_token(&one(over.as_bytes()), 100).is_err());
    }

    #[test]
    fn sensitive_marking() {
        let mut h = one(b"Bearer a.b.c");
        h.append(AUTHORIZATION, HeaderValue::from_static("x"));
        mark_sensitive(&mut h);
        assert!(
            h.get_all(AUTHORIZATION)
                .iter()
                .all(HeaderValue::is_sensitive)
        );
    }
}
