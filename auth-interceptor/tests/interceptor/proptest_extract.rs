//! Property tests of metadata extraction (catalogue M01–M06): `bearer_token` accepts exactly the
//! grammar `bearer 1*SP token` — scheme case-insensitive, token of base64url characters and dots — and
//! refuses everything else, without panicking on any bytes.

use auth_interceptor::bearer_token;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;

const MAX: usize = 8192;

fn headers(value: HeaderValue) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(AUTHORIZATION, value);
    h
}

/// The reference grammar, written independently of the implementation.
fn grammatical(v: &[u8]) -> Option<&[u8]> {
    if v.len() < 7 || !v[..6].eq_ignore_ascii_case(b"bearer") || v[6] != b' ' {
        return None;
    }
    let rest = &v[7..];
    let start = rest.iter().position(|b| *b != b' ')?;
    let token = &rest[start..];
    let ok = token
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    (ok && token.len() <= MAX).then_some(token)
}

fn scheme() -> impl Strategy<Value = String> {
    "[bB][eE][aA][rR][eE][rR]"
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{1,200}"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any case of the scheme, any run of spaces, any token of the alphabet: accepted, token intact.
    #[test]
    fn grammatical_values_are_accepted(s in scheme(), spaces in 1usize..5, t in token()) {
        let v = format!("{s}{}{t}", " ".repeat(spaces));
        let h = headers(HeaderValue::from_str(&v).unwrap());
        prop_assert_eq!(bearer_token(&h, MAX).ok(), Some(t.as_str()));
    }

    /// Arbitrary bytes (any that `http` lets into a header value): never a panic, and accepted exactly
    /// when the reference grammar accepts, with the same token.
    #[test]
    fn arbitrary_values_match_the_grammar(v in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(value) = HeaderValue::from_bytes(&v) {
            let h = headers(value);
            let got = bearer_token(&h, MAX).ok().map(str::as_bytes);
            prop_assert_eq!(got, grammatical(&v));
        }
    }

    /// Values built near the grammar (a scheme, separators, token characters and troublemakers).
    #[test]
    fn near_miss_values_match_the_grammar(
        s in prop_oneof![scheme(), Just("Basic".to_owned()), Just("Token".to_owned()), Just("Bearer:".to_owned()), Just(String::new())],
        sep in "[ \t,]{0,3}",
        t in "[A-Za-z0-9_.+/=, \t-]{0,40}",
    ) {
        let v = format!("{s}{sep}{t}");
        if let Ok(value) = HeaderValue::from_str(&v) {
            let h = headers(value);
            let got = bearer_token(&h, MAX).ok().map(str::as_bytes);
            prop_assert_eq!(got, grammatical(v.as_bytes()), "{:?}", v);
        }
    }

    /// A second `authorization` entry, whatever it holds, refuses the request (M05).
    #[test]
    fn two_entries_are_always_refused(t in token(), other in "[ -~]{0,40}") {
        let mut h = headers(HeaderValue::from_str(&format!("Bearer {t}")).unwrap());
        if let Ok(v) = HeaderValue::from_str(&other) {
            h.append(AUTHORIZATION, v);
            prop_assert!(bearer_token(&h, MAX).is_err());
        }
    }

    /// The size cap holds for every length around it.
    #[test]
    fn size_cap(len in 1usize..300, cap in 1usize..300) {
        let v = format!("Bearer {}", "a".repeat(len));
        let h = headers(HeaderValue::from_str(&v).unwrap());
        prop_assert_eq!(bearer_token(&h, cap).is_ok(), len <= cap);
    }
}

#[test]
fn bin_keys_are_never_consulted() {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization-bin",
        HeaderValue::from_static("QmVhcmVyIGEuYi5j"),
    );
    assert!(bearer_token(&h, MAX).is_err());
}
