//! Signing keys: the published JWKS, rotation, retirement, HS256 mode (catalogue K01–K04).

use std::time::Duration;

use crate::support::*;
use auth_proto::v1::{InvalidReason, RotateSigningKeyRequest};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tonic::Code;

both_backends!(
    jwks_publishes_current_and_next_public_keys,
    rotation_keeps_old_tokens_valid_until_retired,
    hs256_mode_publishes_no_keys,
);

async fn jwks_publishes_current_and_next_public_keys(backend: Backend) {
    let s = TestServer::start(backend).await;
    let jwks = s.jwks().await;
    assert_eq!(jwks_kids(&jwks).len(), 2, "current and next: {jwks}");
    assert_public_jwks(&jwks, "EdDSA");
    let tok = s.admin_token().await;
    let current = header_of(&tok)["kid"].as_str().expect("kid").to_owned();
    assert_eq!(jwks_kids(&jwks)[0], current, "current key first");
    // Private keys are encrypted at rest: the stored bytes are not a PKCS#8 document in clear.
    let enc = s.db.current_key().await.2;
    assert!(
        !enc.windows(5).any(|w| w == b"\x30\x2e\x02\x01\x00"),
        "PKCS#8 header in clear"
    );
    s.shutdown().await;
}

async fn rotation_keeps_old_tokens_valid_until_retired(backend: Backend) {
    let s =
        TestServer::start_with(backend, Options::with_args(&["--key-reload-interval", "1"])).await;
    let before = s.admin_token().await;
    let jwks = s.jwks().await;
    let [current, next]: [String; 2] = jwks_kids(&jwks).try_into().expect("two keys");
    assert_eq!(header_of(&before)["kid"], current.as_str());

    let r = bounded(
        "rotate",
        s.admin_client_with(&before)
            .rotate_signing_key(RotateSigningKeyRequest::default()),
    )
    .await
    .expect("RotateSigningKey as admin")
    .into_inner();
    assert_eq!(r.current_kid, next, "the next key becomes current");
    assert_eq!(r.retired_kid, current);
    assert_ne!(r.next_kid, next);

    // Old tokens still validate; new ones are signed by the former next key.
    assert!(s.validate(&before).await.valid);
    let after = s.admin_token().await;
    assert_eq!(header_of(&after)["kid"], next.as_str());
    assert!(s.validate(&after).await.valid);
    let jwks = s.jwks().await;
    let published = jwks_kids(&jwks);
    assert_eq!(published.len(), 3, "current, next and retired: {jwks}");
    for k in [&current, &next, &r.next_kid] {
        assert!(published.contains(k), "{k} not published");
    }
    assert_public_jwks(&jwks, "EdDSA");

    // Past access TTL + leeway the retired key is dropped at the next reload (every second).
    s.clock.advance(ACCESS_TTL + LEEWAY + 1);
    poll_until(
        "retired key unpublished",
        Duration::from_secs(15),
        || async { (jwks_kids(&s.jwks().await).len() == 2).then_some(()) },
    )
    .await;
    let published = jwks_kids(&s.jwks().await);
    assert!(!published.contains(&current), "retired key still published");
    // A token signed by the retired key now names an unknown key (even if it were unexpired).
    let mut p = claims_of(&before);
    let now = s.now();
    p["iat"] = json!(now);
    p["nbf"] = json!(now);
    p["exp"] = json!(now + ACCESS_TTL);
    let v = s
        .validate(&resign_keep_signature(&before, &header_of(&before), &p))
        .await;
    assert_invalid(&v, Some(InvalidReason::UnknownKey), "retired kid");
    s.shutdown().await;
}

async fn hs256_mode_publishes_no_keys(backend: Backend) {
    let s = TestServer::start_with(backend, Options::hs256()).await;
    let json = bounded(
        "jwks",
        s.auth_client().get_jwks(auth_proto::v1::GetJwksRequest {}),
    )
    .await
    .expect("GetJwks")
    .into_inner()
    .jwks_json;
    assert_eq!(
        serde_json::from_str::<Value>(&json).expect("json"),
        json!({"keys": []})
    );

    let l = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let h = header_of(&l.access_token);
    assert_eq!(h["alg"], "HS256");
    assert_eq!(h["typ"], "at+jwt");
    let kid = h["kid"].as_str().expect("kid").to_owned();
    let secret = s.hs256_secret.clone().expect("secret");
    assert!(!kid.contains(&secret));
    assert!(s.validate(&l.access_token).await.valid);

    // The harness holds the secret: S(h,p) verifies, other secrets and algorithms do not.
    let p = claims_of(&l.access_token);
    let key = s.signing_key().await;
    assert!(s.validate(&key.sign(&key.header(), &p)).await.valid);
    let hh = jwt_header("HS256", &kid);
    for (what, t) in [
        ("F03 empty key", hmac_sign(b"", Algorithm::HS256, &hh, &p)),
        (
            "other secret",
            hmac_sign(b"secret", Algorithm::HS256, &hh, &p),
        ),
        (
            "HS512 with the secret",
            hmac_sign(
                secret.as_bytes(),
                Algorithm::HS512,
                &jwt_header("HS512", &kid),
                &p,
            ),
        ),
        (
            "typ JWT",
            hmac_sign(
                secret.as_bytes(),
                Algorithm::HS256,
                &json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
                &p,
            ),
        ),
    ] {
        assert_invalid(&s.validate(&t).await, None, what);
    }
    // Refresh works in HS256 mode too.
    let r = bounded(
        "refresh",
        s.auth_client().refresh(auth_proto::v1::RefreshRequest {
            refresh_token: l.refresh_token.clone(),
        }),
    )
    .await
    .expect("refresh");
    assert!(s.validate(&r.into_inner().access_token).await.valid);

    // No rotation in shared-secret mode.
    let st = bounded(
        "rotate",
        s.admin_client_with(&l.access_token)
            .rotate_signing_key(RotateSigningKeyRequest::default()),
    )
    .await
    .expect_err("no rotation in HS256 mode");
    assert_eq!(st.code(), Code::FailedPrecondition, "{st:?}");
    assert_no_leak(&st, &[&secret]);
    s.shutdown().await;
}
