//! Catalogue C cases and the `typ` rule: every claim is present, typed and checked.

use serde_json::{Value, json};

use crate::testing::{AUDIENCE, ISSUER, TestKey, claims, claims_at, verifier};
use crate::verify::unix_now;
use crate::{KeySet, Verifier, VerifierConfig, VerifyError};

fn setup() -> (TestKey, KeySet) {
    let k = TestKey::ed25519("k1");
    let set = k.key_set();
    (k, set)
}

fn with(field: &str, value: Value) -> Value {
    let mut c = claims("u1", &[]);
    c[field] = value;
    c
}

fn without(field: &str) -> Value {
    let mut c = claims("u1", &[]);
    c.as_object_mut().unwrap().remove(field);
    c
}

fn check(k: &TestKey, set: &KeySet, c: &Value) -> Result<crate::Claims, VerifyError> {
    verifier().verify(set, &k.sign(c))
}

#[test]
fn c01_missing_required_claims() {
    let (k, set) = setup();
    for field in [
        "exp",
        "iat",
        "nbf",
        "sub",
        "jti",
        "sid",
        "username",
        "client_id",
    ] {
        assert!(check(&k, &set, &without(field)).is_err(), "{field}");
    }
    assert_eq!(
        check(&k, &set, &without("iss")),
        Err(VerifyError::WrongIssuer)
    );
    assert_eq!(
        check(&k, &set, &without("aud")),
        Err(VerifyError::WrongAudience)
    );
    // `roles` may be absent (no roles).
    assert!(check(&k, &set, &without("roles")).unwrap().roles.is_empty());
}

#[test]
fn c02_mistyped_exp_and_nbf() {
    let (k, set) = setup();
    let big: Value = serde_json::from_str("18446744073709551616").unwrap();
    for exp in [
        json!("9999999999"),
        json!("never"),
        json!(true),
        json!(null),
        json!(-1),
        json!(1e300),
        big,
        json!(1.5),
    ] {
        assert!(
            check(&k, &set, &with("exp", exp.clone())).is_err(),
            "exp={exp}"
        );
    }
    assert!(check(&k, &set, &with("nbf", json!("x"))).is_err());
    assert!(check(&k, &set, &with("iat", json!("x"))).is_err());
    assert!(check(&k, &set, &with("roles", json!("admin"))).is_err());
    assert!(check(&k, &set, &with("roles", json!([1]))).is_err());
}

#[test]
fn c03_leeway_boundary_uses_configured_leeway() {
    let (k, set) = setup();
    let now = unix_now();
    let leeway = verifier().config().leeway.as_secs();
    assert_eq!(leeway, 30);
    let expired = claims_at("u1", &[], now - 600, 600 - (leeway + 1));
    assert_eq!(check(&k, &set, &expired), Err(VerifyError::Expired));
    let inside = claims_at("u1", &[], now - 600, 600 - (leeway - 1));
    assert!(check(&k, &set, &inside).is_ok());
    // verify_at with an explicit clock, and a verifier with zero leeway.
    let c = claims_at("u1", &[], now, 60);
    let token = k.sign(&c);
    assert!(
        verifier()
            .verify_at(&set, &token, now + 60 + leeway - 1)
            .is_ok()
    );
    assert_eq!(
        verifier().verify_at(&set, &token, now + 60 + leeway),
        Err(VerifyError::Expired)
    );
    let mut cfg = VerifierConfig::new(ISSUER, AUDIENCE);
    cfg.leeway = std::time::Duration::ZERO;
    let strict = Verifier::new(cfg);
    assert!(strict.verify_at(&set, &token, now + 59).is_ok());
    assert_eq!(
        strict.verify_at(&set, &token, now + 60),
        Err(VerifyError::Expired)
    );
}

#[test]
fn c04_lifetime_is_bounded() {
    let (k, set) = setup();
    let now = unix_now();
    let c = claims_at("u1", &[], now, 25 * 3600);
    assert_eq!(check(&k, &set, &c), Err(VerifyError::Malformed("lifetime")));
    let mut c = claims("u1", &[]);
    c["iat"] = json!(now + 10);
    c["exp"] = json!(now + 5);
    assert!(check(&k, &set, &c).is_err());
}

#[test]
fn c04_default_lifetime_bound_is_one_hour() {
    // A stolen signing key must not mint day-long tokens that verifiers accept: by default a token
    // may live 1 h (a small multiple of the auth server's 600 s), not a second more.
    let (k, set) = setup();
    let now = unix_now();
    let cfg = VerifierConfig::new(ISSUER, AUDIENCE);
    assert_eq!(cfg.max_lifetime, std::time::Duration::from_secs(3600));
    assert_eq!(cfg.max_lifetime, crate::DEFAULT_MAX_LIFETIME);
    assert!(check(&k, &set, &claims_at("u1", &[], now, 600)).is_ok());
    assert!(check(&k, &set, &claims_at("u1", &[], now, 3600)).is_ok());
    for ttl in [3601, 2 * 3600, 24 * 3600] {
        assert_eq!(
            check(&k, &set, &claims_at("u1", &[], now, ttl)),
            Err(VerifyError::Malformed("lifetime")),
            "{ttl}"
        );
    }
    // An issuer with a longer TTL needs a verifier configured for it.
    let mut cfg = VerifierConfig::new(ISSUER, AUDIENCE);
    cfg.max_lifetime = std::time::Duration::from_secs(2 * 3600);
    let long = Verifier::new(cfg);
    assert!(
        long.verify(&set, &k.sign(&claims_at("u1", &[], now, 2 * 3600)))
            .is_ok()
    );
    assert_eq!(
        long.verify(&set, &k.sign(&claims_at("u1", &[], now, 2 * 3600 + 1))),
        Err(VerifyError::Malformed("lifetime"))
    );
}

#[test]
fn c05_nbf_and_iat_in_the_future() {
    let (k, set) = setup();
    let now = unix_now();
    assert_eq!(
        check(&k, &set, &with("nbf", json!(now + 3600))),
        Err(VerifyError::NotYetValid)
    );
    let future = claims_at("u1", &[], now + 3600, 600);
    assert_eq!(check(&k, &set, &future), Err(VerifyError::NotYetValid));
    // Within the leeway is fine.
    assert!(check(&k, &set, &with("nbf", json!(now + 10))).is_ok());
}

#[test]
fn c06_c07_audience_and_issuer() {
    let (k, set) = setup();
    for aud in [
        json!(123),
        json!([1, 2]),
        json!("billing"),
        json!("SVC"),
        json!([]),
        json!(null),
    ] {
        assert!(
            check(&k, &set, &with("aud", aud.clone())).is_err(),
            "aud={aud}"
        );
    }
    assert_eq!(
        check(&k, &set, &with("aud", json!("billing"))),
        Err(VerifyError::WrongAudience)
    );
    // Any-of: a list containing our audience is accepted (documented on VerifierConfig::audiences).
    assert!(check(&k, &set, &with("aud", json!([AUDIENCE, "x"]))).is_ok());
    for iss in [
        json!("evil"),
        json!("https://AUTH.test"),
        json!(1),
        json!(null),
    ] {
        assert!(
            check(&k, &set, &with("iss", iss.clone())).is_err(),
            "iss={iss}"
        );
    }
    assert_eq!(
        check(&k, &set, &with("iss", json!("evil"))),
        Err(VerifyError::WrongIssuer)
    );
}

#[test]
fn c08_token_type_confusion() {
    let (k, set) = setup();
    let c = claims("u1", &[]);
    for typ in [
        json!("JWT"),
        json!("refresh+jwt"),
        json!(null),
        json!(""),
        json!(1),
    ] {
        let h = json!({"alg":"EdDSA","typ": typ,"kid":"k1"});
        assert!(
            verifier()
                .verify(&set, &k.sign_with_header(&h, &c))
                .is_err(),
            "typ={typ}"
        );
    }
    let h = json!({"alg":"EdDSA","kid":"k1"});
    assert_eq!(
        verifier().verify(&set, &k.sign_with_header(&h, &c)),
        Err(VerifyError::Malformed("typ"))
    );
    for typ in ["AT+JWT", "application/at+jwt"] {
        let h = json!({"alg":"EdDSA","typ": typ,"kid":"k1"});
        assert!(
            verifier().verify(&set, &k.sign_with_header(&h, &c)).is_ok(),
            "{typ}"
        );
    }
    // Missing or empty kid.
    for h in [
        json!({"alg":"EdDSA","typ":"at+jwt"}),
        json!({"alg":"EdDSA","typ":"at+jwt","kid":""}),
    ] {
        assert_eq!(
            verifier().verify(&set, &k.sign_with_header(&h, &c)),
            Err(VerifyError::Malformed("kid"))
        );
    }
}

#[test]
fn c09_subject_rules() {
    let (k, set) = setup();
    assert!(check(&k, &set, &without("sub")).is_err());
    assert_eq!(
        check(&k, &set, &with("sub", json!(""))),
        Err(VerifyError::Malformed("claims"))
    );
    assert!(check(&k, &set, &with("sub", json!(123))).is_err());
    assert!(check(&k, &set, &with("jti", json!(""))).is_err());
    assert!(check(&k, &set, &with("sid", json!(""))).is_err());
}

#[test]
fn structural_garbage_is_malformed() {
    let (_, set) = setup();
    for t in [
        "",
        ".",
        "..",
        "a.b",
        "a.b.c.d",
        "a b.c.d",
        "a+b.c.d",
        "YQ==.YQ.YQ",
        "e30.e30.e30",
    ] {
        assert!(verifier().verify(&set, t).is_err(), "{t:?}");
    }
}
