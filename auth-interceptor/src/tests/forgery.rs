//! Catalogue F cases: forged, tampered and confused tokens never verify.

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::testing::{TestKey, b64, claims, hmac_sign, signing_input, verifier};
use crate::{KeySet, VerificationKey, VerifyError};

fn ed() -> (TestKey, KeySet) {
    let k = TestKey::ed25519("k1");
    let set = k.key_set();
    (k, set)
}

fn parts(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

#[test]
fn valid_tokens_of_each_family_verify() {
    let v = verifier();
    for k in [
        TestKey::ed25519("k1"),
        TestKey::es256("k1"),
        TestKey::hs256("k1", &[9u8; 32]),
    ] {
        let c = v.verify(&k.key_set(), &k.token("u1", &["admin"])).unwrap();
        assert_eq!(c.sub, "u1");
        assert!(c.has_role("admin"));
    }
}

#[test]
fn f01_alg_none_in_every_casing() {
    let (k, set) = ed();
    for alg in ["none", "None", "NONE", "nOnE"] {
        for header in [
            json!({"alg": alg, "typ": "JWT"}),
            json!({"alg": alg, "typ": "at+jwt", "kid": "k1"}),
        ] {
            let token = format!("{}.", signing_input(&header, &claims("u1", &[])));
            assert!(verifier().verify(&set, &token).is_err(), "{alg}");
            // With a real signature appended too.
            let signed = k.sign_with_header(&header, &claims("u1", &[]));
            assert!(verifier().verify(&set, &signed).is_err(), "{alg}");
        }
    }
}

#[test]
fn f02_null_missing_truncated_and_foreign_signatures() {
    let (k, set) = ed();
    let v = verifier();
    let tok = k.token("u1", &[]);
    let p = parts(&tok);
    let null_sig = format!("{}.{}.", p[0], p[1]);
    let no_sig = format!("{}.{}", p[0], p[1]);
    let truncated = &tok[..tok.len() - 4];
    for bad in [null_sig.as_str(), no_sig.as_str(), truncated] {
        assert!(v.verify(&set, bad).is_err(), "{bad}");
    }
    // Payload tampered (sub changed), original signature kept.
    let mut c = claims("u1", &[]);
    let good = k.sign(&c);
    c["sub"] = json!("u2");
    let forged = format!("{}.{}", signing_input(&k.header(), &c), parts(&good)[2]);
    assert_eq!(v.verify(&set, &forged), Err(VerifyError::BadSignature));
    // Signature copied from another valid token.
    let other = k.token("u2", &[]);
    let spliced = format!("{}.{}.{}", p[0], p[1], parts(&other)[2]);
    assert_eq!(v.verify(&set, &spliced), Err(VerifyError::BadSignature));
}

#[test]
fn f03_hs256_with_empty_key() {
    // An empty (or short) secret cannot even be configured.
    assert!(matches!(
        VerificationKey::hmac(Algorithm::HS256, b""),
        Err(crate::KeyError::WeakSecret)
    ));
    assert!(VerificationKey::hmac(Algorithm::HS256, &[1u8; 31]).is_err());
    // A token signed with "" is refused by an HMAC verifier with a real secret and by an EdDSA one.
    let hs = TestKey::hs256("k1", &[3u8; 32]);
    let input = signing_input(&hs.header(), &claims("u1", &[]));
    let token = format!("{input}.{}", hmac_sign(&input, Algorithm::HS256, b""));
    assert_eq!(
        verifier().verify(&hs.key_set(), &token),
        Err(VerifyError::BadSignature)
    );
    let (_, set) = ed();
    assert!(verifier().verify(&set, &token).is_err());
}

#[test]
fn f04_key_confusion_with_public_key_bytes() {
    let (k, set) = ed();
    let pem = k.spki_pem();
    let forms: Vec<Vec<u8>> = vec![
        pem.as_bytes().to_vec(),
        pem.trim_end().as_bytes().to_vec(),
        k.spki_der.clone(),
        k.jwk.to_string().into_bytes(),
        k.public_raw.clone(),
    ];
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        for secret in &forms {
            let header = json!({"alg": crate::verify::alg_name(alg), "typ": "at+jwt", "kid": "k1"});
            let input = signing_input(&header, &claims("u1", &["admin"]));
            let token = format!("{input}.{}", hmac_sign(&input, alg, secret));
            assert_eq!(
                verifier().verify(&set, &token),
                Err(VerifyError::Malformed("alg"))
            );
        }
    }
    // The same against an ES256 key set.
    let es = TestKey::es256("k1");
    let input = signing_input(
        &json!({"alg":"HS256","typ":"at+jwt","kid":"k1"}),
        &claims("u1", &[]),
    );
    let token = format!(
        "{input}.{}",
        hmac_sign(&input, Algorithm::HS256, &es.spki_der)
    );
    assert!(verifier().verify(&es.key_set(), &token).is_err());
}

#[test]
fn f05_f06_embedded_keys_and_key_pointers_are_refused() {
    let (k, set) = ed();
    let attacker = TestKey::ed25519("jwt_tool");
    let headers = [
        json!({"alg":"EdDSA","typ":"at+jwt","kid":"k1","jwk": attacker.jwk}),
        json!({"alg":"EdDSA","typ":"at+jwt","jwk": attacker.jwk}),
        json!({"alg":"HS256","typ":"at+jwt","kid":"k1","jwk":{"kty":"oct","k": b("secret")}}),
        json!({"alg":"EdDSA","typ":"at+jwt","kid":"k1","jku":"http://127.0.0.1:1/jwks.json"}),
        json!({"alg":"EdDSA","typ":"at+jwt","kid":"k1","x5u":"http://127.0.0.1:1/cert.pem"}),
        json!({"alg":"EdDSA","typ":"at+jwt","kid":"k1","x5c":["MIIB"]}),
    ];
    for h in &headers {
        // Signed by the attacker and, to isolate the header rule, by the real key.
        for signer in [&attacker, &k] {
            let token = signer.sign_with_header(h, &claims("u1", &["admin"]));
            assert!(verifier().verify(&set, &token).is_err(), "{h}");
        }
        let token = k.sign_with_header(h, &claims("u1", &[]));
        if h.get("kid").is_some() && h["alg"] == "EdDSA" {
            assert_eq!(
                verifier().verify(&set, &token),
                Err(VerifyError::Malformed("key reference header"))
            );
        }
    }
}

fn b(s: &str) -> String {
    b64(s)
}

#[test]
fn f08_psychic_and_malformed_ecdsa_signatures() {
    let es = TestKey::es256("k1");
    let set = es.key_set();
    let input = signing_input(&es.header(), &claims("u1", &["admin"]));
    let n = hex("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551");
    let mut der = vec![0x30, 0x44, 0x02, 0x20];
    der.extend_from_slice(&n);
    der.extend_from_slice(&[0x02, 0x20]);
    der.extend_from_slice(&n);
    let sigs: Vec<Vec<u8>> = vec![
        vec![0u8; 64],
        [n.clone(), n.clone()].concat(),
        der,
        vec![1u8; 63],
        vec![1u8; 65],
    ];
    assert_eq!("A".repeat(86), b64([0u8; 64]));
    for sig in sigs {
        let token = format!("{input}.{}", b64(&sig));
        assert!(verifier().verify(&set, &token).is_err());
    }
    let (k, set) = ed();
    let input = signing_input(&k.header(), &claims("u1", &[]));
    let token = format!("{input}.{}", b64([0u8; 64]));
    assert_eq!(
        verifier().verify(&set, &token),
        Err(VerifyError::BadSignature)
    );
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn f09_algorithm_substitution() {
    let es = TestKey::es256("k1");
    let (ed, ed_set) = ed();
    let c = claims("u1", &[]);
    // ES256-signed, header claims ES384.
    let t = es.sign_with_header(&json!({"alg":"ES384","typ":"at+jwt","kid":"k1"}), &c);
    assert_eq!(
        verifier().verify(&es.key_set(), &t),
        Err(VerifyError::Malformed("alg"))
    );
    // EdDSA-signed, header claims ES256.
    let t = ed.sign_with_header(&json!({"alg":"ES256","typ":"at+jwt","kid":"k1"}), &c);
    assert_eq!(
        verifier().verify(&ed_set, &t),
        Err(VerifyError::Malformed("alg"))
    );
    // A genuine ES256 token presented where k1 is an EdDSA key.
    let t = es.sign(&c);
    assert_eq!(
        verifier().verify(&ed_set, &t),
        Err(VerifyError::Malformed("alg"))
    );
}

#[test]
fn f10_every_member_tampered_without_resigning() {
    let (k, set) = ed();
    let c = claims("u1", &[]);
    let good = k.sign(&c);
    let sig = parts(&good)[2].clone();
    let values = [
        json!(null),
        json!(true),
        json!(false),
        json!("jwt_tool"),
        json!(0),
    ];
    let header = k.header();
    for (is_header, base) in [(true, &header), (false, &c)] {
        let Value::Object(map) = base else {
            unreachable!()
        };
        for name in map.keys() {
            for value in &values {
                let (mut h, mut p) = (header.clone(), c.clone());
                if is_header {
                    h[name] = value.clone()
                } else {
                    p[name] = value.clone()
                }
                let token = format!("{}.{sig}", signing_input(&h, &p));
                assert!(verifier().verify(&set, &token).is_err(), "{name}={value}");
            }
        }
    }
    let mut p = c.clone();
    p["role"] = json!("admin");
    let token = format!("{}.{sig}", signing_input(&header, &p));
    assert_eq!(
        verifier().verify(&set, &token),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn f12_crit_is_refused() {
    let (k, set) = ed();
    for h in [
        json!({"alg":"EdDSA","typ":"at+jwt","kid":"k1","crit":["b64"],"b64":false}),
        json!({"alg":"EdDSA","typ":"at+jwt","kid":"k1","crit":["x-unknown"],"x-unknown":1}),
    ] {
        let token = k.sign_with_header(&h, &claims("u1", &[]));
        assert_eq!(
            verifier().verify(&set, &token),
            Err(VerifyError::Malformed("crit header"))
        );
    }
}

#[test]
fn unknown_kid_and_oversized_token() {
    let (_, set) = ed();
    let other = TestKey::ed25519("k2");
    assert_eq!(
        verifier().verify(&set, &other.token("u1", &[])),
        Err(VerifyError::UnknownKey)
    );
    assert_eq!(verifier().token_kid(&other.token("u1", &[])).unwrap(), "k2");
    let big = format!(
        "{}.{}.{}",
        "a".repeat(4096),
        "b".repeat(4096),
        "c".repeat(10)
    );
    assert_eq!(verifier().verify(&set, &big), Err(VerifyError::TooLarge));
    assert_eq!(verifier().token_kid(&big), Err(VerifyError::TooLarge));
    // A large but well-formed token is still refused by size before anything else.
    let mut c = claims("u1", &[]);
    c["pad"] = json!("x".repeat(9000));
    let k = TestKey::ed25519("k1");
    assert_eq!(
        verifier().verify(&k.key_set(), &k.sign(&c)),
        Err(VerifyError::TooLarge)
    );
}

#[test]
fn error_messages_carry_no_token_content() {
    for e in [
        VerifyError::TooLarge,
        VerifyError::Malformed("alg"),
        VerifyError::UnknownKey,
        VerifyError::BadSignature,
    ] {
        let s = e.to_string();
        assert!(!s.contains("HS256") && !s.contains("k1"), "{s}");
    }
}
