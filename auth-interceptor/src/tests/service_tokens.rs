//! Service tokens (`"token_use": "service"`): no `sid` or `username`, an audience of their own, and
//! no other `token_use` value accepted.

use serde_json::json;

use crate::testing::{AUDIENCE, ISSUER, TestKey, claims, service_claims, verifier};
use crate::verify::unix_now;
use crate::{AudienceCheck, Claims, TokenKind, Verifier, VerifierConfig, VerifyError};

fn orders() -> Verifier {
    Verifier::new(VerifierConfig::new(ISSUER, "orders.v1.OrderService"))
}

#[test]
fn a_service_token_verifies_for_its_own_audience_only() {
    let k = TestKey::ed25519("k1");
    let set = k.key_set();
    let token = k.sign(&service_claims(
        "acct-1",
        "payments",
        "orders.v1.OrderService",
        &["orders:refund"],
    ));
    let c = orders().verify(&set, &token).unwrap();
    assert_eq!(c.kind, TokenKind::Service);
    assert!(c.is_service());
    assert_eq!(
        (c.sub.as_str(), c.client_id.as_str()),
        ("acct-1", "payments")
    );
    assert!(c.sid.is_empty() && c.username.is_empty());
    assert!(c.has_role("orders:refund"));
    // Another service (the deployment-wide audience here) refuses it.
    assert_eq!(
        verifier().verify(&set, &token),
        Err(VerifyError::WrongAudience)
    );
    // A caller naming its audience explicitly gets the same answers.
    let now = unix_now();
    assert!(
        verifier()
            .verify_with_kid_for(
                &set,
                &token,
                now,
                AudienceCheck::Only("orders.v1.OrderService")
            )
            .is_ok()
    );
    assert_eq!(
        verifier()
            .verify_with_kid_for(&set, &token, now, AudienceCheck::Only("billing"))
            .unwrap_err(),
        VerifyError::WrongAudience
    );
}

#[test]
fn user_tokens_still_need_a_session_and_a_username() {
    let k = TestKey::ed25519("k1");
    let set = k.key_set();
    let mut c = claims("u1", &[]);
    c.as_object_mut().unwrap().remove("sid");
    assert_eq!(
        verifier().verify(&set, &k.sign(&c)),
        Err(VerifyError::Malformed("claims"))
    );
    let mut c = claims("u1", &[]);
    c["username"] = json!("");
    assert_eq!(
        verifier().verify(&set, &k.sign(&c)),
        Err(VerifyError::Malformed("claims"))
    );
    let user = verifier()
        .verify(&set, &k.sign(&claims("u1", &[])))
        .unwrap();
    assert_eq!(user.kind, TokenKind::User);
    assert!(!user.is_service());
}

#[test]
fn unknown_or_mistyped_token_use_is_malformed() {
    let k = TestKey::ed25519("k1");
    let set = k.key_set();
    for value in [
        json!("user"),
        json!("Service"),
        json!(""),
        json!(1),
        json!(null),
    ] {
        let mut c = service_claims("acct-1", "payments", AUDIENCE, &[]);
        c["token_use"] = value.clone();
        assert_eq!(
            verifier().verify(&set, &k.sign(&c)),
            Err(VerifyError::Malformed("claims")),
            "{value}"
        );
    }
    // A service token must name its client.
    let mut c = service_claims("acct-1", "payments", AUDIENCE, &[]);
    c["client_id"] = json!("");
    assert_eq!(
        verifier().verify(&set, &k.sign(&c)),
        Err(VerifyError::Malformed("claims"))
    );
}

#[test]
fn claims_serialize_as_they_are_issued() {
    let k = TestKey::ed25519("k1");
    let set = k.key_set();
    let service = orders()
        .verify(
            &set,
            &k.sign(&service_claims(
                "a",
                "payments",
                "orders.v1.OrderService",
                &[],
            )),
        )
        .unwrap();
    let json = serde_json::to_value(&service).unwrap();
    assert_eq!(json["token_use"], "service");
    assert!(json.get("sid").is_none() && json.get("username").is_none());
    let back: Claims = serde_json::from_value(json).unwrap();
    assert_eq!(back, service);
    let user = verifier()
        .verify(&set, &k.sign(&claims("u1", &[])))
        .unwrap();
    let json = serde_json::to_value(&user).unwrap();
    assert!(json.get("token_use").is_none());
    assert_eq!(json["sid"], "session-1");
}

#[tokio::test]
async fn the_cache_never_carries_an_audience_to_another_rule() {
    let k = TestKey::ed25519("k1");
    let auth = crate::Authorizer::new(verifier(), crate::SharedKeys::new(k.key_set()));
    let token = k.sign(&service_claims("acct-1", "payments", "orders", &[]));
    // Verified (and cached) for the audience a caller named...
    let claims = auth
        .verify_token_for(&token, AudienceCheck::Only("orders"))
        .await
        .unwrap();
    assert!(claims.is_service());
    assert_eq!(auth.cache().len(), 1);
    // ...the same token is still refused under the configured audience, and for another one.
    for refused in [
        auth.verify_token(&token).await,
        auth.verify_token_for(&token, AudienceCheck::Only("billing"))
            .await,
    ] {
        assert!(matches!(
            refused,
            Err(crate::AuthError::Invalid(VerifyError::WrongAudience))
        ));
    }
    assert!(
        auth.verify_token_for(&token, AudienceCheck::Only("orders"))
            .await
            .is_ok()
    );
}
