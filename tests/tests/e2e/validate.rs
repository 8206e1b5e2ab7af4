//! Validate: valid tokens, revocation, expiry, and every forged-token case of the catalogue that applies
//! to the RPC (F01–F12, C01–C09, D04).

use crate::support::*;
use auth_proto::v1::{InvalidReason, ValidateRequest};
use serde_json::json;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

both_backends!(
    valid_token_claims_match_login,
    account_changes_revoke_tokens,
    expiry_uses_the_configured_leeway,
    forged_tokens_are_rejected,
    forged_claims_are_rejected,
    oversized_tokens_are_rejected,
);

async fn valid_token_claims_match_login(backend: Backend) {
    let s = TestServer::start(backend).await;
    let l = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let jwt = claims_of(&l.access_token);
    let v = s.validate(&l.access_token).await;
    assert!(v.valid, "{v:?}");
    assert_eq!(v.reason(), InvalidReason::Unspecified);
    let c = v.claims.expect("claims");
    assert_eq!(c.subject, jwt["sub"].as_str().expect("sub"));
    assert_eq!(c.username, ADMIN_USER);
    assert_eq!(c.roles, vec!["admin".to_owned()]);
    assert_eq!(c.session_id, jwt["sid"].as_str().expect("sid"));
    assert_eq!(c.token_id, jwt["jti"].as_str().expect("jti"));
    assert_eq!(c.issuer, "auth-server");
    assert_eq!(c.audience, vec!["internal".to_owned()]);
    assert_eq!(
        c.issue_time.expect("iat").seconds,
        jwt["iat"].as_i64().expect("iat")
    );
    assert_eq!(
        c.expire_time.expect("exp").seconds,
        jwt["exp"].as_i64().expect("exp")
    );
    s.shutdown().await;
}

/// Disabling or deleting a user is seen by Validate (from the revocation view the change's log row
/// feeds), Refresh and Login at once.
async fn account_changes_revoke_tokens(backend: Backend) {
    let s = TestServer::start(backend).await;
    let id = s.seed_user("ivan", "ivan-password-1", &["ops"]).await;
    let l = s.login("ivan", "ivan-password-1").await;
    assert!(s.validate(&l.access_token).await.valid);
    s.disable_user(&id).await;
    assert_invalid(
        &s.validate(&l.access_token).await,
        Some(InvalidReason::Revoked),
        "disabled",
    );
    let st = bounded(
        "refresh",
        s.auth_client().refresh(auth_proto::v1::RefreshRequest {
            refresh_token: l.refresh_token.clone(),
        }),
    )
    .await
    .expect_err("refresh of a disabled user");
    assert_status(
        &st,
        Code::Unauthenticated,
        "invalid token",
        &[&l.refresh_token],
    );
    let st = s
        .try_login("ivan", "ivan-password-1")
        .await
        .expect_err("disabled");
    assert_status(
        &st,
        Code::Unauthenticated,
        "invalid credentials",
        &["ivan-password-1"],
    );

    s.exec("UPDATE users SET disabled = (1=0) WHERE id = $1", &id)
        .await;
    let l2 = s.login("ivan", "ivan-password-1").await;
    assert!(s.validate(&l2.access_token).await.valid);
    s.delete_user(&id).await;
    assert_invalid(
        &s.validate(&l2.access_token).await,
        Some(InvalidReason::Revoked),
        "deleted",
    );
    s.shutdown().await;
}

async fn expiry_uses_the_configured_leeway(backend: Backend) {
    let s = TestServer::start(backend).await;
    let l = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    s.clock.advance(ACCESS_TTL + LEEWAY - 1);
    assert!(s.validate(&l.access_token).await.valid, "inside the leeway");
    s.clock.advance(2);
    let v = s.validate(&l.access_token).await;
    assert_invalid(&v, Some(InvalidReason::Expired), "past exp + leeway");
    s.shutdown().await;
}

async fn forged_tokens_are_rejected(backend: Backend) {
    let s = TestServer::start(backend).await;
    let l = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let tok = l.access_token.clone();
    let other = s.login(ADMIN_USER, ADMIN_PASSWORD).await.access_token;
    let forged = forged_token_cases(&s, &tok, &other).await;
    let before = s.db.fingerprint().await;
    let mut client = s.auth_client();
    for Case {
        what,
        token: t,
        reason,
    } in &forged.cases
    {
        let v = bounded(
            what,
            client.validate(ValidateRequest {
                access_token: t.clone(),
                ..Default::default()
            }),
        )
        .await
        .unwrap_or_else(|st| panic!("{what}: RPC failed: {st:?}"))
        .into_inner();
        assert_invalid(&v, *reason, what);
    }
    // F06: nothing connected to the listener.
    assert_never_contacted(&forged.listener).await;
    // D04: no lockout, no state change, still healthy, the real token still works.
    assert_eq!(s.db.fingerprint().await, before, "Validate wrote rows");
    let health = s
        .health_client()
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);
    assert!(
        s.validate(&tok).await.valid,
        "the original token still validates"
    );
    s.shutdown().await;
}

async fn forged_claims_are_rejected(backend: Backend) {
    let s = TestServer::start(backend).await;
    let l = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let key = s.signing_key().await;
    let h = key.header();
    let p = claims_of(&l.access_token);
    let now = s.now();

    // Sanity: the harness signs exactly like the server.
    assert!(
        s.validate(&key.sign(&h, &p)).await.valid,
        "S(h,p) with the real claims is valid"
    );

    let cases = forged_claim_cases(&key, &p, now);
    let before = s.db.fingerprint().await;
    for Case {
        what,
        token,
        reason,
    } in &cases
    {
        let v = s.validate(token).await;
        assert_invalid(&v, *reason, what);
    }
    assert_eq!(s.db.fingerprint().await, before);

    // C03, the other side: exp = now-(L-1) still verifies.
    let mut inside = p.clone();
    inside["iat"] = json!(now - ACCESS_TTL - LEEWAY + 1);
    inside["nbf"] = inside["iat"].clone();
    inside["exp"] = json!(now - LEEWAY + 1);
    assert!(
        s.validate(&key.sign(&h, &inside)).await.valid,
        "C03 exp=now-(L-1)"
    );
    // typ is matched case-insensitively, and the media-type form is accepted (RFC 9068 §2.1).
    let mut ht = h.clone();
    ht["typ"] = json!("application/at+jwt");
    assert!(
        s.validate(&key.sign(&ht, &p)).await.valid,
        "typ application/at+jwt"
    );
    // C09: the sub of a disabled user.
    let uid = s.seed_user("judy", "judy-password-1", &[]).await;
    let jl = s.login("judy", "judy-password-1").await;
    s.disable_user(&uid).await;
    let v = s
        .validate(&key.sign(&h, &claims_of(&jl.access_token)))
        .await;
    assert_invalid(&v, Some(InvalidReason::Revoked), "C09 disabled user");
    // A real session id with another user's sub.
    let v = s
        .validate(&key.sign(&h, &{
            let mut p2 = p.clone();
            p2["sid"] = claims_of(&jl.access_token)["sid"].clone();
            p2
        }))
        .await;
    assert_invalid(&v, Some(InvalidReason::Revoked), "C09 sid of another user");
    assert!(s.validate(&l.access_token).await.valid);
    s.shutdown().await;
}

async fn oversized_tokens_are_rejected(backend: Backend) {
    let s = TestServer::start(backend).await;
    let l = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    // Over the verifier's 8 KiB cap, under the 64 KiB message cap: TOO_LARGE.
    let big = format!(
        "{}.{}.{}",
        "a".repeat(4096),
        "b".repeat(4096),
        "c".repeat(100)
    );
    assert_invalid(
        &s.validate(&big).await,
        Some(InvalidReason::TooLarge),
        "9 KiB token",
    );
    // 100 KiB: TOO_LARGE, or refused by the transport; never valid.
    let huge = "a".repeat(100 * 1024);
    match s
        .auth_client()
        .validate(ValidateRequest {
            access_token: huge,
            ..Default::default()
        })
        .await
    {
        Ok(r) => assert_invalid(
            &r.into_inner(),
            Some(InvalidReason::TooLarge),
            "100 KiB token",
        ),
        Err(st) => {
            assert!(
                matches!(st.code(), Code::ResourceExhausted | Code::OutOfRange),
                "{st:?}"
            );
            assert_no_leak(&st, &[]);
        }
    }
    assert!(s.validate(&l.access_token).await.valid);
    s.shutdown().await;
}
