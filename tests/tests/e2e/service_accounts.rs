//! Service accounts (issue 11), issuing: the client-secret and RFC 7523 assertion flows give a
//! service token for one allowed audience (`sub` = account id, `client_id`, `aud`, roles,
//! `token_use: service`, no `sid`); `Validate` judges it for the audience the caller names; every
//! failure to authenticate looks the same; wrong secrets are throttled; assertions are single use.

use auth_proto::v1::issue_service_token_request::Credential;
use auth_proto::v1::{AddServiceAccountKeyRequest, InvalidReason, TokenKind};
use jsonwebtoken::Algorithm;
use serde_json::json;
use tonic::Code;

use crate::support::*;

both_backends!(
    the_secret_flow_issues_a_token_for_one_allowed_audience,
    validate_judges_the_audience_the_caller_names,
    assertions_signed_with_ed25519_and_es256_keys_are_accepted_once,
    assertions_with_wrong_claims_are_refused_alike,
    every_failure_to_authenticate_looks_the_same,
    wrong_secrets_are_throttled_and_then_the_right_one_too,
    malformed_requests_are_invalid_arguments,
    issued_tokens_are_audited_once_per_account_audience_and_minute,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stops_issuing_as_soon_as_another_disables_the_account() {
    run_bounded(replica_stops_issuing(Backend::Postgres)).await
}

const ORDERS: &str = "orders.v1.OrderService";
const BILLING: &str = "billing.v1.BillingService";

async fn payments(s: &TestServer) -> (auth_proto::v1::ServiceAccount, String) {
    let root = s.admin_token().await;
    s.create_service_account(
        &root,
        "payments",
        &["orders:refund", "orders:read"],
        &[ORDERS, BILLING],
    )
    .await
}

#[track_caller]
fn assert_refused(
    r: Result<auth_proto::v1::IssueServiceTokenResponse, tonic::Status>,
    secrets: &[&str],
) {
    let status = r.expect_err("refused");
    assert_status(
        &status,
        Code::Unauthenticated,
        "invalid client credentials",
        secrets,
    );
}

async fn the_secret_flow_issues_a_token_for_one_allowed_audience(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (account, secret) = payments(&s).await;
    assert!(
        secret.starts_with("svcsec_") && secret.len() == 50,
        "secret form"
    );
    let r = s
        .issue_service_token("payments", &secret, ORDERS)
        .await
        .expect("issued");
    assert_eq!((r.token_type.as_str(), r.expires_in), ("Bearer", 300));
    let c = claims_of(&r.access_token);
    assert_eq!(c["sub"], account.id.as_str());
    assert_eq!(c["client_id"], "payments");
    assert_eq!(c["aud"], ORDERS, "one audience, as a string");
    assert_eq!(c["roles"], json!(["orders:refund", "orders:read"]));
    assert_eq!(c["token_use"], "service");
    assert_eq!(c["iss"], "auth-server");
    assert_eq!(
        c["exp"].as_i64().expect("exp") - c["iat"].as_i64().expect("iat"),
        300
    );
    assert!(c.get("sid").is_none() && c.get("username").is_none(), "{c}");
    assert_eq!(header_of(&r.access_token)["typ"], "at+jwt");
    // Down-scoped to a subset of the account's roles.
    let r = s
        .issue_service_token_with(
            "payments",
            Credential::ClientSecret(secret.clone()),
            BILLING,
            &["orders:read"],
        )
        .await
        .expect("down-scoped");
    assert_eq!(claims_of(&r.access_token)["roles"], json!(["orders:read"]));
    assert_eq!(claims_of(&r.access_token)["aud"], BILLING);
    // A role it does not hold cannot be asked for.
    let e = s
        .issue_service_token_with(
            "payments",
            Credential::ClientSecret(secret.clone()),
            ORDERS,
            &["admin"],
        )
        .await
        .expect_err("not its role");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    // An audience outside its allow-list is refused as such, after authentication.
    let e = s
        .issue_service_token("payments", &secret, "inventory.v1.Stock")
        .await
        .expect_err("not allowed");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert_no_leak(&e, &[&secret]);
}

async fn validate_judges_the_audience_the_caller_names(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (account, secret) = payments(&s).await;
    let token = s
        .issue_service_token("payments", &secret, ORDERS)
        .await
        .expect("the call succeeds")
        .access_token;
    let v = s.validate_for(&token, ORDERS).await;
    assert!(v.valid, "{v:?}");
    let c = v.claims.expect("claims");
    assert_eq!(
        (c.subject.as_str(), c.client_id.as_str()),
        (account.id.as_str(), "payments")
    );
    assert_eq!(c.kind(), TokenKind::Service);
    assert!(c.session_id.is_empty() && c.username.is_empty());
    assert_eq!(c.audience, vec![ORDERS.to_owned()]);
    // Another service, or the deployment's default audience, refuses it.
    assert_invalid(
        &s.validate_for(&token, BILLING).await,
        Some(InvalidReason::WrongAudience),
        "token for BILLING",
    );
    assert_invalid(
        &s.validate(&token).await,
        Some(InvalidReason::WrongAudience),
        "token for default",
    );
    // Again, from the verified-token cache: the audience is judged on every call.
    assert!(s.validate_for(&token, ORDERS).await.valid);
    assert_invalid(
        &s.validate_for(&token, BILLING).await,
        Some(InvalidReason::WrongAudience),
        "token for BILLING",
    );
    // A user token names the deployment's audience: valid by default, not for a service.
    let user = s.admin_token().await;
    let v = s.validate(&user).await;
    assert!(v.valid);
    assert_eq!(v.claims.expect("claims").kind(), TokenKind::User);
    assert_invalid(
        &s.validate_for(&user, ORDERS).await,
        Some(InvalidReason::WrongAudience),
        "user for ORDERS",
    );
    let bad = bounded(
        "validate",
        s.auth_client().validate(auth_proto::v1::ValidateRequest {
            access_token: token.clone(),
            audience: "has space".into(),
        }),
    )
    .await
    .expect_err("bad audience");
    assert_eq!(bad.code(), Code::InvalidArgument);
}

async fn add_key(s: &TestServer, root: &str, id: &str, key: &AssertionKey) {
    bounded(
        "AddServiceAccountKey",
        s.admin_client_with(root)
            .add_service_account_key(AddServiceAccountKeyRequest {
                service_account_id: id.to_owned(),
                public_jwk: key.public_jwk.clone(),
            }),
    )
    .await
    .expect("key added");
}

async fn assertions_signed_with_ed25519_and_es256_keys_are_accepted_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    let root = s.admin_token().await;
    let (account, _) = payments(&s).await;
    for alg in [Algorithm::EdDSA, Algorithm::ES256] {
        let key = AssertionKey::generate(alg);
        add_key(&s, &root, &account.id, &key).await;
        let assertion = key.assertion(&s, "payments");
        let r = s
            .issue_service_token_with(
                "payments",
                Credential::ClientAssertion(assertion.clone()),
                ORDERS,
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("{alg:?} assertion refused: {e:?}"));
        assert_eq!(claims_of(&r.access_token)["sub"], account.id.as_str());
        assert!(s.validate_for(&r.access_token, ORDERS).await.valid);
        // The same assertion again is a replay.
        let again = s
            .issue_service_token_with(
                "payments",
                Credential::ClientAssertion(assertion),
                ORDERS,
                &[],
            )
            .await;
        assert_refused(again, &[]);
    }
    assert_eq!(s.db.count("service_assertion_jtis").await, 2);
}

async fn assertions_with_wrong_claims_are_refused_alike(backend: Backend) {
    // More failures than the default throttle lets through in a row.
    let s =
        TestServer::start_with(backend, Options::with_args(&["--login-max-failures", "50"])).await;
    let root = s.admin_token().await;
    let (account, _) = payments(&s).await;
    let key = AssertionKey::generate(Algorithm::EdDSA);
    add_key(&s, &root, &account.id, &key).await;
    let now = s.now();
    let base = assertion_claims(&s, "payments");
    let with = |field: &str, value: serde_json::Value| {
        let mut c = base.clone();
        c[field] = value;
        c["jti"] = json!(uuid::Uuid::new_v4().to_string());
        c
    };
    let stranger = AssertionKey::generate(Algorithm::EdDSA);
    let cases = [
        ("wrong aud", key.sign(&with("aud", json!("someone-else")))),
        ("wrong iss", key.sign(&with("iss", json!("billing")))),
        ("wrong sub", key.sign(&with("sub", json!("billing")))),
        ("exp too far", key.sign(&with("exp", json!(now + 600)))),
        ("expired", key.sign(&with("exp", json!(now - 120)))),
        ("no jti", {
            let mut c = base.clone();
            c.as_object_mut().expect("object").remove("jti");
            key.sign(&c)
        }),
        ("unknown key", stranger.sign(&with("jti", json!("x")))),
        ("not a JWT", "not.a.jwt".to_owned()),
    ];
    let before = s.db.service_account_fingerprint().await;
    for (what, assertion) in cases {
        let r = s
            .issue_service_token_with(
                "payments",
                Credential::ClientAssertion(assertion),
                ORDERS,
                &[],
            )
            .await;
        assert!(r.is_err(), "{what} accepted");
        assert_refused(r, &[]);
    }
    assert_eq!(
        s.db.service_account_fingerprint().await,
        before,
        "nothing written"
    );
}

async fn every_failure_to_authenticate_looks_the_same(backend: Backend) {
    let s = TestServer::start(backend).await;
    let root = s.admin_token().await;
    let (_, secret) = payments(&s).await;
    let (other, other_secret) = s
        .create_service_account(&root, "reports", &[], &[ORDERS])
        .await;
    bounded(
        "disable",
        s.admin_client_with(&root).disable_service_account(
            auth_proto::v1::DisableServiceAccountRequest {
                service_account_id: other.id.clone(),
            },
        ),
    )
    .await
    .expect("disabled");
    let wrong = format!("svcsec_{}", "A".repeat(43));
    assert_refused(
        s.issue_service_token("nobody", &secret, ORDERS).await,
        &[&secret],
    );
    assert_refused(
        s.issue_service_token("payments", &wrong, ORDERS).await,
        &[&wrong],
    );
    assert_refused(
        s.issue_service_token("payments", &other_secret, ORDERS)
            .await,
        &[&other_secret],
    );
    assert_refused(
        s.issue_service_token("payments", "svcsec_short", ORDERS)
            .await,
        &[],
    );
    assert_refused(
        s.issue_service_token("reports", &other_secret, ORDERS)
            .await,
        &[&other_secret],
    );
    // A disabled account is refused before its audience is judged.
    assert_refused(
        s.issue_service_token("reports", &other_secret, "nope")
            .await,
        &[],
    );
}

async fn wrong_secrets_are_throttled_and_then_the_right_one_too(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (_, secret) = payments(&s).await;
    let wrong = format!("svcsec_{}", "B".repeat(43));
    // AUTH_LOGIN_MAX_FAILURES (5) failures of one client from one address lock the pair.
    for i in 0..5 {
        let e = s
            .issue_service_token("payments", &wrong, ORDERS)
            .await
            .expect_err("wrong");
        assert_eq!(e.code(), Code::Unauthenticated, "attempt {i}: {e:?}");
    }
    let e = s
        .issue_service_token("payments", &wrong, ORDERS)
        .await
        .expect_err("locked");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.metadata().get("retry-after").is_some());
    let e = s
        .issue_service_token("payments", &secret, ORDERS)
        .await
        .expect_err("still locked");
    assert_eq!(
        e.code(),
        Code::ResourceExhausted,
        "a right secret is throttled too: {e:?}"
    );
    // Once the lock has passed, the right secret works.
    s.clock.advance(2);
    s.issue_service_token("payments", &secret, ORDERS)
        .await
        .expect("after the lock");
    // Logins are other buckets: the admin still logs in.
    s.admin_token().await;
}

async fn malformed_requests_are_invalid_arguments(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (_, secret) = payments(&s).await;
    let mut cases = vec![
        ("", Some(Credential::ClientSecret(secret.clone())), ORDERS),
        ("payments", None, ORDERS),
        (
            "payments",
            Some(Credential::ClientSecret(String::new())),
            ORDERS,
        ),
        (
            "payments",
            Some(Credential::ClientSecret(secret.clone())),
            "",
        ),
    ];
    let long = "p".repeat(300);
    cases.push((
        long.as_str(),
        Some(Credential::ClientSecret(secret.clone())),
        ORDERS,
    ));
    for (client_id, credential, audience) in cases {
        let e = bounded(
            "IssueServiceToken",
            s.auth_client()
                .issue_service_token(auth_proto::v1::IssueServiceTokenRequest {
                    client_id: client_id.to_owned(),
                    credential,
                    audience: audience.to_owned(),
                    scopes: vec![],
                }),
        )
        .await
        .expect_err("malformed");
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert_no_leak(&e, &[&secret]);
    }
}

/// Tokens issued in a burst leave one audit row per account, audience and minute, naming how many
/// came after it; the metric counts each.
async fn issued_tokens_are_audited_once_per_account_audience_and_minute(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (account, secret) = payments(&s).await;
    for _ in 0..5 {
        s.service_token("payments", &secret, ORDERS).await;
    }
    s.service_token("payments", &secret, BILLING).await;
    let issued = |events: &[auth_proto::v1::AuditEvent]| -> Vec<String> {
        events
            .iter()
            .filter(|e| e.event == "service_token.issued" && e.subject == account.id)
            .map(|e| e.detail.clone())
            .collect()
    };
    let mut first = issued(&s.audit_events().await);
    first.sort();
    assert_eq!(
        first,
        vec![format!("audience {BILLING}"), format!("audience {ORDERS}")]
    );
    s.clock.advance(60);
    s.service_token("payments", &secret, ORDERS).await;
    let events = s.audit_events().await;
    let latest = issued(&events);
    assert_eq!(
        latest.first().map(String::as_str),
        Some(format!("audience {ORDERS}; 4 more issued since the last audited one").as_str()),
        "newest first: {latest:?}"
    );
    assert!(events.iter().all(|e| !e.detail.contains(&secret)));
    let issued_total = s.scrape().await.get(
        "auth_tokens_issued_total",
        &[("kind", "access"), ("grant", "client_credentials")],
    );
    assert_eq!(issued_total, Some(7.0));
    s.shutdown().await;
}

/// Replica B has the account in its cache of recently read accounts; once A disables it, B refuses
/// the secret within the revocation log's propagation (the cache is cut by the log, not by its TTL).
async fn replica_stops_issuing(backend: Backend) {
    let a = TestServer::start(backend).await;
    let b = a.start_replica(Options::default()).await;
    let (account, secret) = payments(&a).await;
    let root = a.admin_token().await;
    b.service_token("payments", &secret, ORDERS).await;
    b.service_token("payments", &secret, ORDERS).await;
    a.disable_service_account(&root, &account.id).await;
    poll_until(
        "replica B refusing the disabled account",
        std::time::Duration::from_secs(1),
        || async {
            b.issue_service_token("payments", &secret, ORDERS)
                .await
                .err()
        },
    )
    .await;
    b.shutdown().await;
    a.shutdown().await;
}
