//! Catalogue K cases: how keys are loaded and bound to exactly one algorithm.

use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::testing::{TestKey, jwks_json};
use crate::{KeyError, KeySet, VerificationKey};

#[test]
fn k01_weak_hmac_secrets_are_refused() {
    for s in [&b""[..], b"secret", b"your-256-bit-secret", &[0u8; 31]] {
        assert!(matches!(
            VerificationKey::hmac(Algorithm::HS256, s),
            Err(KeyError::WeakSecret)
        ));
    }
    assert!(VerificationKey::hmac(Algorithm::EdDSA, &[0u8; 32]).is_err());
}

#[test]
fn k03_kid_bound_once_and_jwks_rules() {
    let a = TestKey::ed25519("k1");
    let b = TestKey::es256("k2");
    let set = KeySet::from_jwks_json(&jwks_json(&[&a, &b])).unwrap();
    assert_eq!(set.len(), 2);
    assert_eq!(set.get("k1").unwrap().algorithm(), Algorithm::EdDSA);
    assert_eq!(set.get("k2").unwrap().algorithm(), Algorithm::ES256);
    let dup = TestKey::ed25519("k1");
    assert!(matches!(
        KeySet::from_jwks_json(&jwks_json(&[&a, &dup])),
        Err(KeyError::DuplicateKid(_))
    ));
    // Missing alg, missing kid, wrong use, family mismatch, private members, garbage.
    let mut no_alg = a.jwk.clone();
    no_alg.as_object_mut().unwrap().remove("alg");
    let mut no_kid = a.jwk.clone();
    no_kid.as_object_mut().unwrap().remove("kid");
    let mut enc = a.jwk.clone();
    enc["use"] = json!("enc");
    let mut mismatch = a.jwk.clone();
    mismatch["alg"] = json!("ES256");
    let mut private = a.jwk.clone();
    private["d"] = json!("AAAA");
    let oct = json!({"kty":"oct","kid":"h","alg":"HS256","k":"c2VjcmV0"});
    for jwk in [no_alg, no_kid, enc, mismatch, private, oct] {
        let doc = json!({"keys":[jwk]}).to_string();
        assert!(KeySet::from_jwks_json(&doc).is_err(), "{doc}");
    }
    assert!(KeySet::from_jwks_json("not json").is_err());
    assert!(KeySet::from_jwks_json(r#"{"keys":[]}"#).unwrap().is_empty());
}

#[test]
fn public_pem_keys_load_and_verify() {
    let k = TestKey::ed25519("k1");
    let key = VerificationKey::from_public_pem(Algorithm::EdDSA, k.spki_pem().as_bytes()).unwrap();
    let set = KeySet::new().with("k1", key).unwrap();
    assert!(
        crate::testing::verifier()
            .verify(&set, &k.token("u1", &[]))
            .is_ok()
    );
    let e = TestKey::es256("k1");
    let key = VerificationKey::from_public_pem(Algorithm::ES256, e.spki_pem().as_bytes()).unwrap();
    let set = KeySet::new().with("k1", key).unwrap();
    assert!(
        crate::testing::verifier()
            .verify(&set, &e.token("u1", &[]))
            .is_ok()
    );
    assert!(VerificationKey::from_public_pem(Algorithm::HS256, b"x").is_err());
    assert!(
        format!(
            "{:?}",
            VerificationKey::hmac(Algorithm::HS256, &[7u8; 32]).unwrap()
        )
        .len()
            < 60
    );
}
