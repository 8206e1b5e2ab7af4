//! The server layer on real sockets: statuses, per-method rules, metadata handling and forged tokens.

#![allow(clippy::unwrap_used)]

use crate::support::*;
use auth_interceptor::testing::{TestKey, b64, claims, hmac_sign, signing_input};
use auth_interceptor::{Access, Policy, Rule, SharedKeys};
use auth_proto::demo::greeter_service_server::GreeterServiceServer;
use auth_proto::demo::*;
use serde_json::json;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::service::Routes;
use tower_layer::Layer;

async fn setup() -> (
    TestKey,
    auth_proto::demo::greeter_service_client::GreeterServiceClient<tonic::transport::Channel>,
) {
    let key = TestKey::ed25519("k1");
    let layer = greeter_layer(SharedKeys::new(key.key_set()));
    let addr = serve_greeter(layer).await;
    (key, greeter_client(addr).await)
}

/// A malformed or invalid token: `UNAUTHENTICATED` with RFC 6750's `invalid_token` error code.
fn assert_unauthenticated(status: &tonic::Status) {
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(status.message(), "invalid token");
    assert_eq!(
        status.metadata().get("www-authenticate").unwrap(),
        "Bearer error=\"invalid_token\""
    );
}

/// No credentials at all: the same code and message, but a bare `Bearer` challenge without an error
/// code (RFC 6750 §3.1).
fn assert_no_token(status: &tonic::Status) {
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(status.message(), "invalid token");
    assert_eq!(status.metadata().get("www-authenticate").unwrap(), "Bearer");
}

#[tokio::test]
async fn every_status_and_per_method_rules() {
    let (key, mut c) = setup().await;
    // Public: no token needed, and a garbage token is not even looked at.
    let r = c
        .say_hello(SayHelloRequest { name: "x".into() })
        .await
        .unwrap();
    assert_eq!(r.into_inner().message, "Hello, x!");
    c.say_hello(with_auth(SayHelloRequest::default(), "Basic junk"))
        .await
        .unwrap();
    // Required: missing token.
    let s = c.who_am_i(WhoAmIRequest {}).await.unwrap_err();
    assert_no_token(&s);
    // Required: valid token; the handler sees the claims.
    let tok = key.token("u1", &["reader"]);
    let me = c
        .who_am_i(bearer(WhoAmIRequest {}, &tok))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.subject, "u1");
    assert_eq!(me.roles, vec!["reader"]);
    // Role missing: PERMISSION_DENIED with insufficient_scope.
    let s = c
        .admin_hello(bearer(AdminHelloRequest {}, &tok))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied);
    assert_eq!(s.message(), "permission denied");
    assert_eq!(
        s.metadata().get("www-authenticate").unwrap(),
        "Bearer error=\"insufficient_scope\""
    );
    // Role present.
    let admin = key.token("u2", &["admin"]);
    c.admin_hello(bearer(AdminHelloRequest {}, &admin))
        .await
        .unwrap();
    // No token at all on a role method: UNAUTHENTICATED, not PERMISSION_DENIED.
    assert_no_token(&c.admin_hello(AdminHelloRequest {}).await.unwrap_err());
}

#[tokio::test]
async fn streaming_rpcs_are_protected() {
    let (key, mut c) = setup().await;
    let s = c
        .stream_hello(StreamHelloRequest { count: 3 })
        .await
        .unwrap_err();
    assert_no_token(&s);
    let tok = key.token("u1", &[]);
    let mut stream = c
        .stream_hello(bearer(StreamHelloRequest { count: 3 }, &tok))
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(item) = stream.next().await {
        got.push(item.unwrap().message);
    }
    assert_eq!(
        got,
        vec![
            "Hello #1, user-u1!",
            "Hello #2, user-u1!",
            "Hello #3, user-u1!"
        ]
    );
}

#[tokio::test]
async fn deny_by_default_and_per_service_wrapping() {
    let key = TestKey::ed25519("k1");
    // Only SayHello is listed: every other method is denied.
    let policy = Policy::builder()
        .public("demo.v1.GreeterService/SayHello")
        .build()
        .unwrap();
    policy.check_services(&[GREETER]).unwrap();
    let layer = auth_interceptor::Authorizer::new(
        auth_interceptor::testing::verifier(),
        SharedKeys::new(key.key_set()),
    )
    .layer(policy)
    .unwrap();
    // Per-service: the wrapped server keeps its NamedService name.
    let addr = serve_routes(Routes::new(layer.layer(GreeterServiceServer::new(Greeter)))).await;
    let mut c = greeter_client(addr).await;
    c.say_hello(SayHelloRequest::default()).await.unwrap();
    assert_no_token(&c.who_am_i(WhoAmIRequest {}).await.unwrap_err());
    let tok = key.token("u1", &["admin"]);
    let s = c
        .who_am_i(bearer(WhoAmIRequest {}, &tok))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied);
    let s = c
        .stream_hello(bearer(StreamHelloRequest { count: 1 }, &tok))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn check_services_reports_unknown_services() {
    let p = Policy::builder()
        .required("demo.v1.GreeterServic/*")
        .build()
        .unwrap();
    assert!(p.check_services(&[GREETER]).is_err());
    assert_eq!(
        greeter_policy()
            .rule_for("/demo.v1.GreeterService/Nope")
            .access,
        Access::Deny
    );
}

#[tokio::test]
async fn metadata_rules_m01_to_m06_and_m09() {
    let (key, mut c) = setup().await;
    let tok = key.token("u1", &[]);
    // M03: case-insensitive scheme, and a run of spaces.
    for v in [
        format!("bearer {tok}"),
        format!("BEARER {tok}"),
        format!("Bearer  {tok}"),
    ] {
        c.who_am_i(with_auth(WhoAmIRequest {}, &v)).await.unwrap();
    }
    // M01, M02, M04.
    for v in [
        String::new(),
        "Basic dXNlcjpwYXNz".into(),
        format!("Token {tok}"),
        format!("Bearer{tok}"),
        "Bearer".into(),
        "Bearer ".into(),
        format!("Bearer\t{tok}"),
        format!("Bearer {tok} "),
        format!("Bearer {tok}, Bearer {tok}"),
    ] {
        let s = c
            .who_am_i(with_auth(WhoAmIRequest {}, &v))
            .await
            .unwrap_err();
        assert_unauthenticated(&s);
    }
    // M05: two authorization entries, in either order, even if both are valid.
    let other = key.token("u2", &[]);
    for (a, b) in [
        (tok.as_str(), "junk"),
        ("junk", tok.as_str()),
        (tok.as_str(), other.as_str()),
    ] {
        let mut r = tonic::Request::new(WhoAmIRequest {});
        r.metadata_mut().append(
            "authorization",
            MetadataValue::try_from(format!("Bearer {a}")).unwrap(),
        );
        r.metadata_mut().append(
            "authorization",
            MetadataValue::try_from(format!("Bearer {b}")).unwrap(),
        );
        assert_unauthenticated(&c.who_am_i(r).await.unwrap_err());
    }
    // M06: only as authorization-bin.
    let mut r = tonic::Request::new(WhoAmIRequest {});
    r.metadata_mut().insert_bin(
        "authorization-bin",
        MetadataValue::from_bytes(format!("Bearer {tok}").as_bytes()),
    );
    assert_no_token(&c.who_am_i(r).await.unwrap_err());
    // M09: identity never comes from other metadata.
    let mut r = bearer(WhoAmIRequest {}, &tok);
    r.metadata_mut()
        .insert("x-user-id", MetadataValue::from_static("u2"));
    r.metadata_mut()
        .insert("x-forwarded-user", MetadataValue::from_static("admin"));
    assert_eq!(c.who_am_i(r).await.unwrap().into_inner().subject, "u1");
    let mut r = tonic::Request::new(AdminHelloRequest {});
    r.metadata_mut()
        .insert("x-user-id", MetadataValue::from_static("admin"));
    assert_no_token(&c.admin_hello(r).await.unwrap_err());
}

#[tokio::test]
async fn m07_oversized_token_is_refused_and_server_stays_healthy() {
    let (key, mut c) = setup().await;
    // 9 KiB: under the transport's header limit, over the 8 KiB token cap.
    let mut big = claims("u1", &[]);
    big["pad"] = json!("x".repeat(9 * 1024));
    let s = c
        .who_am_i(bearer(WhoAmIRequest {}, &key.sign(&big)))
        .await
        .unwrap_err();
    assert_unauthenticated(&s);
    // 100 KiB: the transport refuses it; any non-OK status is fine.
    let huge = "a".repeat(100 * 1024);
    assert!(c.who_am_i(bearer(WhoAmIRequest {}, &huge)).await.is_err());
    let mut c = c.clone();
    c.who_am_i(bearer(WhoAmIRequest {}, &key.token("u1", &[])))
        .await
        .unwrap();
}

#[tokio::test]
async fn forged_tokens_are_refused_with_one_fixed_message() {
    let (key, mut c) = setup().await;
    let good = key.token("u1", &["admin"]);
    let p: Vec<&str> = good.split('.').collect();
    let c_admin = claims("u1", &["admin"]);
    let mut forged: Vec<String> = Vec::new();
    // F01
    for alg in ["none", "None", "NONE", "nOnE"] {
        forged.push(format!(
            "{}.",
            signing_input(&json!({"alg": alg, "typ": "JWT"}), &c_admin)
        ));
    }
    // F02
    forged.push(format!("{}.{}.", p[0], p[1]));
    forged.push(format!("{}.{}", p[0], p[1]));
    forged.push(good[..good.len() - 4].to_owned());
    let mut tampered = c_admin.clone();
    tampered["sub"] = json!("u2");
    forged.push(format!(
        "{}.{}",
        signing_input(&key.header(), &tampered),
        p[2]
    ));
    // F03, F04: HMAC with an empty key and with the public key in several forms.
    let hs = json!({"alg":"HS256","typ":"at+jwt","kid":"k1"});
    let input = signing_input(&hs, &c_admin);
    for secret in [
        Vec::new(),
        key.spki_pem().into_bytes(),
        key.spki_der.clone(),
        key.public_raw.clone(),
        key.jwk.to_string().into_bytes(),
    ] {
        forged.push(format!(
            "{input}.{}",
            hmac_sign(&input, jsonwebtoken::Algorithm::HS256, &secret)
        ));
    }
    // F05/F06: embedded key and key pointers.
    let attacker = TestKey::ed25519("jwt_tool");
    forged.push(attacker.sign_with_header(
        &json!({"alg":"EdDSA","typ":"at+jwt","jwk": attacker.jwk}),
        &c_admin,
    ));
    forged.push(key.sign_with_header(
        &json!({"alg":"EdDSA","typ":"at+jwt","kid":"k1","jku":"http://127.0.0.1:9/j"}),
        &c_admin,
    ));
    // F08: zero signature. F09: alg substitution. F12: crit.
    forged.push(format!("{}.{}.{}", p[0], p[1], b64([0u8; 64])));
    forged.push(key.sign_with_header(&json!({"alg":"ES256","typ":"at+jwt","kid":"k1"}), &c_admin));
    forged.push(key.sign_with_header(
        &json!({"alg":"EdDSA","typ":"at+jwt","kid":"k1","crit":["b64"],"b64":false}),
        &c_admin,
    ));
    // C08: wrong typ; unknown kid; C01/C07.
    forged.push(key.sign_with_header(&json!({"alg":"EdDSA","typ":"JWT","kid":"k1"}), &c_admin));
    forged.push(TestKey::ed25519("k2").token("u1", &["admin"]));
    let mut no_exp = c_admin.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    forged.push(key.sign(&no_exp));
    let mut evil = c_admin.clone();
    evil["iss"] = json!("evil");
    forged.push(key.sign(&evil));
    let mut aud = c_admin.clone();
    aud["aud"] = json!("SVC");
    forged.push(key.sign(&aud));
    for t in &forged {
        let s = c
            .admin_hello(bearer(AdminHelloRequest {}, t))
            .await
            .unwrap_err();
        assert_unauthenticated(&s);
    }
    // D04: many bad tokens cause no lockout.
    for i in 0..200 {
        let t = &forged[i % forged.len()];
        let _ = c.who_am_i(bearer(WhoAmIRequest {}, t)).await;
    }
    c.admin_hello(bearer(AdminHelloRequest {}, &good))
        .await
        .unwrap();
}

#[tokio::test]
async fn plain_interceptor_all_or_nothing() {
    let key = TestKey::ed25519("k1");
    let interceptor = authorizer(SharedKeys::new(key.key_set()))
        .interceptor(Rule::any_role(["admin"]))
        .unwrap();
    let addr = serve_routes(Routes::new(GreeterServiceServer::with_interceptor(
        Greeter,
        interceptor,
    )))
    .await;
    let mut c = greeter_client(addr).await;
    assert_no_token(&c.say_hello(SayHelloRequest::default()).await.unwrap_err());
    let reader = key.token("u1", &["reader"]);
    let s = c
        .who_am_i(bearer(WhoAmIRequest {}, &reader))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied);
    let admin = key.token("u2", &["admin"]);
    let me = c
        .who_am_i(bearer(WhoAmIRequest {}, &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.subject, "u2");
    assert_unauthenticated(
        &c.who_am_i(with_auth(WhoAmIRequest {}, &format!("Bearer\t{admin}")))
            .await
            .unwrap_err(),
    );
}

#[tokio::test]
async fn raw_layer_refuses_non_ascii_and_keeps_grpc_shape() {
    use tower::ServiceExt;
    let key = TestKey::ed25519("k1");
    let layer = greeter_layer(SharedKeys::new(key.key_set()));
    let inner = tower::service_fn(|req: http::Request<tonic::body::Body>| async move {
        // The handler sees the token marked sensitive and the verified identity.
        assert!(req.headers().get("authorization").unwrap().is_sensitive());
        assert!(
            req.extensions()
                .get::<auth_interceptor::AuthContext>()
                .is_some()
        );
        Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::empty()))
    });
    let svc = layer.layer(inner);
    let request = |value: &[u8]| {
        http::Request::builder()
            .uri("http://x/demo.v1.GreeterService/WhoAmI")
            .header(
                "authorization",
                http::HeaderValue::from_bytes(value).unwrap(),
            )
            .body(tonic::body::Body::empty())
            .unwrap()
    };
    let resp = svc
        .clone()
        .oneshot(request(b"Bearer a.\xff\xfe.c"))
        .await
        .unwrap();
    assert_eq!(resp.status(), http::StatusCode::OK);
    assert_eq!(resp.headers().get("grpc-status").unwrap(), "16");
    assert_eq!(
        resp.headers().get("grpc-message").unwrap(),
        "invalid%20token"
    );
    assert_eq!(
        resp.headers().get("www-authenticate").unwrap(),
        auth_interceptor::INVALID_TOKEN_CHALLENGE
    );
    let ok = format!("Bearer {}", key.token("u1", &[]));
    let resp = svc.oneshot(request(ok.as_bytes())).await.unwrap();
    assert!(resp.headers().get("grpc-status").is_none());
}

#[tokio::test]
async fn optional_rule_verifies_a_token_only_when_present() {
    let key = TestKey::ed25519("k1");
    let policy = Policy::builder()
        .optional("demo.v1.GreeterService/*")
        .build()
        .unwrap();
    let auth = auth_interceptor::Authorizer::new(
        auth_interceptor::testing::verifier(),
        SharedKeys::new(key.key_set()),
    );
    let mut c = greeter_client(serve_greeter(auth.layer(policy).unwrap()).await).await;
    // No token: the call goes through anonymously (the handler's `auth()?` then refuses it).
    c.say_hello(SayHelloRequest::default()).await.unwrap();
    assert_no_token(&c.who_am_i(WhoAmIRequest {}).await.unwrap_err());
    // A valid token is verified and handed to the handler; an invalid one is refused outright.
    let tok = key.token("u1", &[]);
    assert_eq!(
        c.who_am_i(bearer(WhoAmIRequest {}, &tok))
            .await
            .unwrap()
            .into_inner()
            .subject,
        "u1"
    );
    let s = c
        .say_hello(bearer(SayHelloRequest::default(), "a.b.c"))
        .await
        .unwrap_err();
    assert_unauthenticated(&s);
}
