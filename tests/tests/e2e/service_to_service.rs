//! Service to service (issue 11, the interceptor side): two interceptor-protected greeters on
//! loopback, each verifying with its own audience (`orders.v1.OrderService`, `demo.v1.GreeterService`)
//! on the auth server's clock. A token minted for one is refused by the other; a `.clients` rule
//! admits the named account only; a revalidating rule asks `Validate` about the service's own
//! audience; and `ServiceTokenSource` in a real client channel renews on the server's clock, signs
//! assertions the server accepts, surfaces a disabled account's refusal, picks up a secret rotated
//! in its mounted file, and rides out an outage of the auth server it talks to.

use std::sync::Arc;

use crate::support::*;
use auth_interceptor::client::{
    AssertionKey, ClientAuthLayer, SecretString, ServiceCredentials, ServiceTokenSource,
    ServiceTokenSourceConfig, TokenSource, with_auth_retry,
};
use auth_interceptor::{Policy, Rule};
use auth_proto::demo::greeter_service_client::GreeterServiceClient;
use auth_proto::demo::{AdminHelloRequest, WhoAmIRequest};
use auth_proto::v1::{
    AddServiceAccountKeyRequest, InvalidReason, RotateServiceAccountSecretRequest,
};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use tonic::Code;
use tower_layer::Layer;

both_backends!(
    a_token_minted_for_one_service_is_refused_by_another,
    a_clients_rule_admits_the_named_account_only,
    a_revalidating_rule_asks_about_the_services_own_audience,
    the_token_source_renews_on_the_servers_clock_and_surfaces_a_disabled_account,
    the_token_source_signs_assertions_the_server_accepts,
    a_secret_rotated_in_its_file_is_picked_up_after_a_revocation,
    the_token_source_rides_out_an_auth_server_outage,
);

const ORDERS: &str = "orders.v1.OrderService";
const GREETER: &str = "demo.v1.GreeterService";

/// WhoAmI for any valid token, AdminHello for the service account `payments` only.
fn policy() -> Policy {
    Policy::builder()
        .with_health()
        .required("demo.v1.GreeterService/WhoAmI")
        .clients("demo.v1.GreeterService/AdminHello", ["payments"])
        .build()
        .expect("policy")
}

async fn a_token_minted_for_one_service_is_refused_by_another(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.admin_token().await;
    let (payments, payments_secret) = s
        .create_service_account(&admin, "payments", &["refunds"], &[ORDERS])
        .await;
    let orders = GreeterServer::start_as(&s, ORDERS, policy()).await;
    let greeter = GreeterServer::start_as(&s, GREETER, policy()).await;

    let token = s.service_token("payments", &payments_secret, ORDERS).await;
    let me = orders
        .who_am_i(&token)
        .await
        .expect("its audience accepts it");
    assert_eq!(me.subject, payments.id);
    assert_eq!(me.roles, ["refunds"]);
    assert_eq!(me.username, "", "a service token names no user");
    let e = greeter
        .who_am_i(&token)
        .await
        .expect_err("another audience");
    assert_eq!(e.code(), Code::Unauthenticated);
    // Validate, asked by each service about itself, agrees with the layers.
    for (audience, valid, reason) in [
        (ORDERS, true, InvalidReason::Unspecified),
        (GREETER, false, InvalidReason::WrongAudience),
    ] {
        let r = s.validate_for(&token, audience).await;
        assert_eq!((r.valid, r.reason), (valid, reason as i32), "{audience}");
    }
    // The account may not ask for the other service's audience at all.
    let e = s
        .issue_service_token("payments", &payments_secret, GREETER)
        .await
        .expect_err("not an allowed audience");
    assert_eq!(e.code(), Code::PermissionDenied);
    // A user's token is for the deployment's audience: neither service takes it.
    for service in [&orders, &greeter] {
        let e = service.who_am_i(&admin).await.expect_err("user token");
        assert_eq!(e.code(), Code::Unauthenticated);
    }
    orders.shutdown().await;
    greeter.shutdown().await;
    s.shutdown().await;
}

async fn a_clients_rule_admits_the_named_account_only(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.admin_token().await;
    let (_, payments_secret) = s
        .create_service_account(&admin, "payments", &[], &[ORDERS])
        .await;
    let (_, billing_secret) = s
        .create_service_account(&admin, "billing", &[], &[ORDERS])
        .await;
    let orders = GreeterServer::start_as(&s, ORDERS, policy()).await;
    let (p, b) = (
        s.service_token("payments", &payments_secret, ORDERS).await,
        s.service_token("billing", &billing_secret, ORDERS).await,
    );
    orders.who_am_i(&p).await.expect("payments: any token");
    orders.who_am_i(&b).await.expect("billing: any token");
    orders
        .admin_hello(&p)
        .await
        .expect("payments is the client");
    let e = orders.admin_hello(&b).await.expect_err("billing is not");
    assert_eq!(e.code(), Code::PermissionDenied);
    orders.shutdown().await;
    s.shutdown().await;
}

async fn a_revalidating_rule_asks_about_the_services_own_audience(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.admin_token().await;
    let (payments, payments_secret) = s
        .create_service_account(&admin, "payments", &[], &[ORDERS])
        .await;
    let policy = Policy::builder()
        .rule(
            "demo.v1.GreeterService/WhoAmI",
            Rule::clients(["payments"]).revalidate(),
        )
        .build()
        .expect("policy");
    let orders = GreeterServer::start_as(&s, ORDERS, policy).await;
    let token = s.service_token("payments", &payments_secret, ORDERS).await;
    // Validate judges the token for ORDERS (for the default audience it would be refused).
    orders
        .who_am_i(&token)
        .await
        .expect("valid for the service's own audience");
    // Disabling the account ends its tokens at once for a revalidating rule.
    s.disable_service_account(&admin, &payments.id).await;
    let e = orders.who_am_i(&token).await.expect_err("disabled");
    assert_eq!(e.code(), Code::Unauthenticated);
    orders.shutdown().await;
    s.shutdown().await;
}

/// A source for `audience` of the account `name` with `secret`, reading `s`'s clock.
fn source(s: &TestServer, name: &str, secret: &str, audience: &str) -> ServiceTokenSource {
    let creds = ServiceCredentials::secret(name, SecretString::from(secret.to_owned()));
    ServiceTokenSource::new(
        s.channel(),
        creds,
        audience,
        ServiceTokenSourceConfig::default(),
    )
    .with_clock(Arc::new(s.clock.clone()))
}

async fn the_token_source_renews_on_the_servers_clock_and_surfaces_a_disabled_account(
    backend: Backend,
) {
    let s = TestServer::start(backend).await;
    let admin = s.admin_token().await;
    let (payments, payments_secret) = s
        .create_service_account(&admin, "payments", &[], &[ORDERS])
        .await;
    let ttl = s
        .issue_service_token("payments", &payments_secret, ORDERS)
        .await
        .expect("issue")
        .expires_in;
    let orders = GreeterServer::start_as(&s, ORDERS, policy()).await;
    let src = source(&s, "payments", &payments_secret, ORDERS);
    let mut client =
        GreeterServiceClient::new(ClientAuthLayer::new(src.clone()).layer(orders.channel()));
    let me = bounded("WhoAmI", client.who_am_i(WhoAmIRequest {}))
        .await
        .expect("through the source")
        .into_inner();
    assert_eq!(me.subject, payments.id);
    bounded("AdminHello", client.admin_hello(AdminHelloRequest {}))
        .await
        .expect("payments is the client");
    let first = src.token().await.expect("cached");
    assert_eq!(src.issue_count(), 1);

    // Past 80% of the lifetime on the server's clock: one new token, before the first expires.
    s.clock.advance(ttl * 8 / 10 + 1);
    bounded("WhoAmI", client.who_am_i(WhoAmIRequest {}))
        .await
        .expect("renewed");
    let second = src.token().await.expect("cached");
    assert_ne!(second, first);
    assert_eq!(src.issue_count(), 2);
    // Once the first has expired the service refuses it; the source's current one still works.
    s.clock.advance(ttl);
    let e = orders.who_am_i(&first).await.expect_err("expired");
    assert_eq!(e.code(), Code::Unauthenticated);
    bounded("WhoAmI", client.who_am_i(WhoAmIRequest {}))
        .await
        .expect("renewed again");
    assert_eq!(src.issue_count(), 3);

    // Disabled: at the next renewal the source surfaces UNAUTHENTICATED, and asks no more.
    s.disable_service_account(&admin, &payments.id).await;
    s.clock.advance(ttl);
    let e = bounded("WhoAmI", client.who_am_i(WhoAmIRequest {}))
        .await
        .expect_err("disabled");
    assert_eq!(e.code(), Code::Unauthenticated);
    assert_eq!(
        src.token().await.expect_err("disabled").code(),
        Code::Unauthenticated
    );
    assert_eq!(
        src.issue_count(),
        4,
        "a permanent refusal is not retried at once"
    );
    orders.shutdown().await;
    s.shutdown().await;
}

fn pem(der: &[u8]) -> SecretString {
    let b64 = STANDARD.encode(der);
    let body: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64"))
        .collect();
    SecretString::from(format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        body.join("\n")
    ))
}

async fn the_token_source_signs_assertions_the_server_accepts(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.admin_token().await;
    let (payments, _) = s
        .create_service_account(&admin, "payments", &[], &[ORDERS])
        .await;
    let rng = SystemRandom::new();
    let ed = Ed25519KeyPair::generate_pkcs8v1(&rng).expect("ed25519");
    let ed_x = Ed25519KeyPair::from_pkcs8(ed.as_ref())
        .expect("ed25519")
        .public_key()
        .as_ref()
        .to_vec();
    let ec = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("p256");
    let point = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ec.as_ref())
        .expect("p256")
        .public_key()
        .as_ref()
        .to_vec();
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let keys = [
        (
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&ed_x), "kid": "ed-1"}),
            AssertionKey::from_pem("ed-1", &pem(ed.as_ref())).expect("ed25519 pem"),
        ),
        (
            serde_json::json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]),
                "y": b64(&point[33..]), "kid": "ec-1"}),
            AssertionKey::from_pem("ec-1", &pem(ec.as_ref())).expect("p256 pem"),
        ),
    ];
    let orders = GreeterServer::start_as(&s, ORDERS, policy()).await;
    for (jwk, key) in keys {
        bounded(
            "AddServiceAccountKey",
            s.admin_client_with(&admin)
                .add_service_account_key(AddServiceAccountKeyRequest {
                    service_account_id: payments.id.clone(),
                    public_jwk: jwk.to_string(),
                }),
        )
        .await
        .expect("key registered");
        let creds =
            ServiceCredentials::assertion("payments", key, verifier_config().issuer.clone());
        let src = ServiceTokenSource::new(
            s.channel(),
            creds,
            ORDERS,
            ServiceTokenSourceConfig::default(),
        )
        .with_clock(Arc::new(s.clock.clone()));
        // Two tokens, two assertions (each jti is accepted once).
        let first = src.token().await.expect("assertion accepted");
        src.invalidate();
        let second = src.token().await.expect("a fresh assertion accepted");
        assert_ne!(first, second);
        let me = orders.who_am_i(&second).await.expect("a token for ORDERS");
        assert_eq!(me.subject, payments.id);
    }
    orders.shutdown().await;
    s.shutdown().await;
}

async fn a_secret_rotated_in_its_file_is_picked_up_after_a_revocation(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.admin_token().await;
    let (payments, secret) = s
        .create_service_account(&admin, "payments", &[], &[ORDERS])
        .await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("client-secret");
    std::fs::write(&file, format!("{secret}\n")).expect("write");
    let src = ServiceTokenSource::new(
        s.channel(),
        ServiceCredentials::secret_file("payments", &file).expect("secret file"),
        ORDERS,
        ServiceTokenSourceConfig::default(),
    )
    .with_clock(Arc::new(s.clock.clone()));
    // WhoAmI asks Validate on every call, so a revoked token is refused at once.
    let policy = Policy::builder()
        .rule(
            "demo.v1.GreeterService/WhoAmI",
            Rule::clients(["payments"]).revalidate(),
        )
        .build()
        .expect("policy");
    let orders = GreeterServer::start_as(&s, ORDERS, policy).await;
    let client =
        GreeterServiceClient::new(ClientAuthLayer::new(src.clone()).layer(orders.channel()));
    let who = || {
        let mut c = client.clone();
        async move { bounded("WhoAmI", c.who_am_i(WhoAmIRequest {})).await }
    };
    who().await.expect("with the first secret");
    // Tokens issued in the same second as a change survive it: let a second pass.
    s.clock.advance(1);
    // Rotated with no overlap: the old secret and its tokens end now. The operator writes the new
    // secret in place (as a Kubernetes secret volume update does).
    let new = bounded(
        "RotateServiceAccountSecret",
        s.admin_client_with(&admin).rotate_service_account_secret(
            RotateServiceAccountSecretRequest {
                service_account_id: payments.id.clone(),
                overlap: Some(prost_types::Duration {
                    seconds: 0,
                    nanos: 0,
                }),
            },
        ),
    )
    .await
    .expect("rotated")
    .into_inner()
    .client_secret;
    std::fs::write(&file, format!("{new}\n")).expect("write");
    let e = who().await.expect_err("the cached token was revoked");
    assert_eq!(e.code(), Code::Unauthenticated);
    // The caller's retry invalidates the token; the source reads the new secret for the next one.
    let me = with_auth_retry(&src, who)
        .await
        .expect("a token from the rotated secret")
        .into_inner();
    assert_eq!(me.subject, payments.id);
    assert_eq!(src.issue_count(), 2);
    orders.shutdown().await;
    s.shutdown().await;
}

async fn the_token_source_rides_out_an_auth_server_outage(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.admin_token().await;
    let (_, secret) = s
        .create_service_account(&admin, "payments", &[], &[ORDERS])
        .await;
    // The source talks to a replica (same database, keys and clock), which then goes away.
    let replica = s.start_replica(Options::default()).await;
    let src = source(&replica, "payments", &secret, ORDERS);
    let orders = GreeterServer::start_as(&s, ORDERS, policy()).await;
    let client =
        GreeterServiceClient::new(ClientAuthLayer::new(src.clone()).layer(orders.channel()));
    let who = || {
        let mut c = client.clone();
        async move { bounded("WhoAmI", c.who_am_i(WhoAmIRequest {})).await }
    };
    who().await.expect("a token from the replica");
    let ttl = s
        .issue_service_token("payments", &secret, ORDERS)
        .await
        .expect("issue")
        .expires_in;
    replica.shutdown().await;
    // Renewal fails: the current token carries on until it expires, one attempt per backoff wait.
    s.clock.advance(ttl * 8 / 10 + 1);
    who().await.expect("the current token, renewal failed");
    assert_eq!(src.issue_count(), 2);
    for _ in 0..5 {
        who().await.expect("the current token");
    }
    assert_eq!(src.issue_count(), 2, "no attempt before the backoff wait");
    s.clock.advance(1);
    who()
        .await
        .expect("the current token, second attempt failed");
    assert_eq!(src.issue_count(), 3);
    // Expired and still no auth server: UNAVAILABLE, retryable, without sending the call.
    s.clock.advance(ttl);
    let e = who().await.expect_err("no token");
    assert_eq!(e.code(), Code::Unavailable);
    orders.shutdown().await;
    s.shutdown().await;
}
