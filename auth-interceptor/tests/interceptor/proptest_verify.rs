//! Property tests of token parsing and verification (catalogue F02, F10, I01, D04): arbitrary strings
//! and bytes never panic and never verify; any single-byte mutation of a valid token never verifies;
//! tampering with any claim without re-signing never verifies. Run against EdDSA, ES256 and HS256 keys.
//!
//! (`cargo fuzz` would cover the same surface with coverage guidance, but needs a nightly toolchain.)

use std::sync::OnceLock;

use auth_interceptor::testing::{self, TestKey};
use auth_interceptor::{KeySet, Verifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use serde_json::{Value, json};

struct Fixture {
    verifier: Verifier,
    keys: KeySet,
    tokens: Vec<String>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let ed = TestKey::ed25519("ed");
        let es = TestKey::es256("es");
        let hs = TestKey::hs256("hs", b"0123456789abcdefghijklmnopqrstuvwxyzABCDEF");
        let keys = KeySet::new()
            .with("ed", ed.verification_key())
            .and_then(|k| k.with("es", es.verification_key()))
            .and_then(|k| k.with("hs", hs.verification_key()))
            .expect("key set");
        let tokens = [&ed, &es, &hs]
            .iter()
            .map(|k| k.token("u1", &["admin"]))
            .collect();
        let f = Fixture {
            verifier: testing::verifier(),
            keys,
            tokens,
        };
        for t in &f.tokens {
            f.verifier
                .verify(&f.keys, t)
                .expect("fixture tokens verify");
        }
        f
    })
}

fn verifies(token: &str) -> bool {
    let f = fixture();
    f.verifier.verify(&f.keys, token).is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary strings never panic and never verify.
    #[test]
    fn arbitrary_strings_never_verify(s in ".{0,400}") {
        prop_assert!(!verifies(&s));
    }

    /// Arbitrary bytes (lossily made a string) never verify.
    #[test]
    fn arbitrary_bytes_never_verify(b in proptest::collection::vec(any::<u8>(), 0..600)) {
        prop_assert!(!verifies(&String::from_utf8_lossy(&b)));
    }

    /// Three base64url parts of arbitrary JSON-ish content never verify.
    #[test]
    fn arbitrary_three_part_tokens_never_verify(
        h in proptest::collection::vec(any::<u8>(), 0..200),
        p in proptest::collection::vec(any::<u8>(), 0..300),
        s in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let t = format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(h), URL_SAFE_NO_PAD.encode(p), URL_SAFE_NO_PAD.encode(s));
        prop_assert!(!verifies(&t));
    }

    /// A real header and payload with an arbitrary signature never verify.
    #[test]
    fn real_claims_with_arbitrary_signatures_never_verify(
        which in 0usize..3,
        sig in proptest::collection::vec(any::<u8>(), 0..130),
    ) {
        let t = &fixture().tokens[which];
        let (input, _) = t.rsplit_once('.').unwrap();
        let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));
        prop_assert!(!verifies(&forged));
    }

    /// Any single-byte change of a valid token (position and new byte arbitrary) never verifies.
    #[test]
    fn single_byte_mutations_never_verify(which in 0usize..3, pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let t = fixture().tokens[which].as_bytes();
        let i = pos.index(t.len());
        prop_assume!(t[i] != byte);
        let mut m = t.to_vec();
        m[i] = byte;
        prop_assert!(!verifies(&String::from_utf8_lossy(&m)));
    }

    /// Deleting or inserting one byte anywhere never verifies.
    #[test]
    fn single_byte_insertions_and_deletions_never_verify(
        which in 0usize..3,
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        delete in any::<bool>(),
    ) {
        let t = fixture().tokens[which].as_bytes();
        let mut m = t.to_vec();
        if delete {
            m.remove(pos.index(t.len()));
        } else {
            m.insert(pos.index(t.len() + 1), byte);
        }
        prop_assert!(!verifies(&String::from_utf8_lossy(&m)));
    }

    /// Any claim or header member set to an arbitrary JSON value, signature kept: never verifies
    /// (unless the value is unchanged).
    #[test]
    fn tampered_members_never_verify(which in 0usize..3, member in any::<prop::sample::Index>(), in_header in any::<bool>(), v in json_value()) {
        let t = &fixture().tokens[which];
        let mut parts = t.split('.');
        let (h, p, s) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let decode = |x: &str| -> Value { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(x).unwrap()).unwrap() };
        let (mut hv, mut pv) = (decode(h), decode(p));
        let target = if in_header { &mut hv } else { &mut pv };
        let obj = target.as_object_mut().unwrap();
        let key = obj.keys().nth(member.index(obj.len())).unwrap().clone();
        prop_assume!(obj[&key] != v);
        obj.insert(key, v);
        let forged = format!(
            "{}.{}.{s}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&hv).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&pv).unwrap()),
        );
        prop_assert!(!verifies(&forged));
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
        proptest::collection::vec(".{0,8}", 0..3).prop_map(|v| json!(v)),
    ]
}
